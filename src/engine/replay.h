/* Selecting events by filter, and replay: setting events back to pending. */
#ifndef LF_REPLAY_H
#define LF_REPLAY_H

#include "store/db.h"
#include "store/query.h"

/* A filter on a tenant's events; NULL strings and negative times are unset. */
struct lf_event_filter {
    const char *status; /* pending | processing | processed | failed */
    const char *event_type;
    const char *source;
    const char *lead_id;
    int64_t since; /* received_at >= since, epoch ms */
    int64_t until; /* received_at < until */
};

#define LF_EVENT_FILTER_NONE                                                                       \
    {                                                                                              \
        NULL, NULL, NULL, NULL, -1, -1                                                             \
    }

/* 1 when s is an event status. */
int lf_event_status_valid(const char *s);
/* 1 when the filter names at least one condition. */
int lf_event_filter_any(const struct lf_event_filter *f);
/* Appends " AND …" conditions for f to q. */
void lf_event_filter_sql(struct lf_query *q, const struct lf_event_filter *f);

/* Sets one event back to pending (attempts cleared). Returns 1, 0 when the tenant has no
 * such event, or a negative code. */
int lf_event_replay(struct lf_conn *c, const char *tenant_id, const char *id, int64_t now);
/* Sets up to limit events matching f (oldest first) back to pending. Returns the count or a
 * negative code. */
int lf_events_replay(struct lf_conn *c, const char *tenant_id, const struct lf_event_filter *f,
                     int limit, int64_t now, struct lf_err *err);

#endif
