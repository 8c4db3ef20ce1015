/* Selecting events by filter, and replay: setting events back to pending. Stages are
 * idempotent per (event, rule), so a replayed event is never counted twice, while
 * subscribers receive it again. */
#include "engine/replay.h"

#include <string.h>

int lf_event_status_valid(const char *s)
{
    return s && (!strcmp(s, "pending") || !strcmp(s, "processing") || !strcmp(s, "processed") ||
                 !strcmp(s, "failed"));
}

int lf_event_filter_any(const struct lf_event_filter *f)
{
    return f->status || f->event_type || f->source || f->lead_id || f->since >= 0 || f->until >= 0;
}

void lf_event_filter_sql(struct lf_query *q, const struct lf_event_filter *f)
{
    if (f->status) lf_query_text(q, " AND status = ?", f->status);
    /* The same term as the events_status partial index, so the planner can use it. */
    if (f->status && strcmp(f->status, "processed") != 0)
        lf_query_sql(q, " AND status IN ('pending', 'processing', 'failed')");
    if (f->event_type) lf_query_text(q, " AND event_type = ?", f->event_type);
    if (f->source) lf_query_text(q, " AND source = ?", f->source);
    if (f->lead_id) lf_query_text(q, " AND lead_id = ?", f->lead_id);
    if (f->since >= 0) lf_query_int(q, " AND received_at >= ?", f->since);
    if (f->until >= 0) lf_query_int(q, " AND received_at < ?", f->until);
}

int lf_event_replay(struct lf_conn *c, const char *tenant_id, const char *id, int64_t now)
{
    return lf_db_run(c, NULL,
                     "UPDATE events SET status = 'pending', attempts = 0, next_attempt_at = ?,"
                     " error_message = NULL, updated_at = ? WHERE tenant_id = ? AND id = ?",
                     "IIss", now, now, tenant_id, id);
}

int lf_events_replay(struct lf_conn *c, const char *tenant_id, const struct lf_event_filter *f,
                     int limit, int64_t now, struct lf_err *err)
{
    struct lf_query q = {0};
    lf_query_int(&q, "UPDATE events SET status = 'pending', attempts = 0, next_attempt_at = ?",
                 now);
    lf_query_int(&q, ", error_message = NULL, updated_at = ?", now);
    lf_query_text(&q, " WHERE id IN (SELECT id FROM events WHERE tenant_id = ?", tenant_id);
    lf_event_filter_sql(&q, f);
    lf_query_int(&q, " ORDER BY id LIMIT ?)", limit);
    struct lf_stmt *st = lf_query_prepare(&q, c, err);
    int rc = st ? lf_stmt_step(st) : -LF_EINTERNAL;
    lf_stmt_done(st);
    lf_query_free(&q);
    if (rc < 0) return lf_err_set(err, rc, "replay failed: %s", lf_db_errmsg(c));
    return (int)lf_db_changes(c);
}
