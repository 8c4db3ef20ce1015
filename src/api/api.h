/* What the API files share: their route tables and a few helpers for handlers. */
#ifndef LF_API_H
#define LF_API_H

#include "app.h"
#include "core/jsonx.h"
#include "http/http.h"
#include "store/db.h"
#include "store/query.h"

extern const struct lf_route lf_events_routes[];
extern const struct lf_route lf_sources_routes[];
extern const struct lf_route lf_system_routes[];
extern const struct lf_route lf_leads_routes[];
extern const struct lf_route lf_organizations_routes[];
extern const struct lf_route lf_scoring_routes[];
extern const struct lf_route lf_scheduler_routes[];
extern const struct lf_route lf_reports_routes[];
extern const struct lf_route lf_pipelines_routes[];
extern const struct lf_route lf_deals_routes[];
extern const struct lf_route lf_team_routes[];
extern const struct lf_route lf_tasks_routes[];
extern const struct lf_route lf_routing_routes[];
extern const struct lf_route lf_automation_routes[];
extern const struct lf_route lf_deliveries_routes[];
extern const struct lf_route lf_subscriptions_routes[];
extern const struct lf_route lf_slack_routes[];
extern const struct lf_route lf_integrations_routes[];
#ifdef LF_TESTING
extern const struct lf_route lf_testing_routes[];
#endif

/* Every route table, NULL-terminated, for lf_router_init. */
extern const struct lf_route *const lf_api_tables[];

/* Acquires a connection for the handler; on failure answers 503 and returns NULL. */
struct lf_conn *lf_api_conn(struct lf_req *r, enum lf_db_mode mode);

/* Reads an optional RFC 3339 query argument. Returns 0 (*out = -1 when absent) or
 * -LF_EINVAL naming the argument in err. */
int lf_api_time_arg(struct lf_req *r, const char *name, int64_t *out, struct lf_err *err);

/* Answers a resource looked up by id: o (stolen) with status; when o is NULL, a 404 "no
 * <what> <id>" (rc LF_DB_DONE), a 500 (rc LF_DB_ROW: the row would not make JSON), or the
 * store's error (rc negative). */
void lf_api_reply_found(struct lf_req *r, json_t *o, int rc, int status, const char *what,
                        const char *id);

/* Wraps a list: {"items": items (stolen), "next_cursor": cursor or null}. */
json_t *lf_api_page(json_t *items, const char *next_cursor);

#define LF_CURSOR_MAX 80

/* Makes one list item from the current row of st and writes the cursor that resumes after it
 * into cursor (LF_CURSOR_MAX bytes). */
typedef json_t *lf_row_fn(struct lf_stmt *st, void *arg, char *cursor);

/* Steps st, a query ending in LIMIT limit + 1, and answers the page: an item per row (at most
 * limit) and next_cursor from the limit-th item when there is one more row; or the store's
 * error. extra (stolen, may be NULL) is merged into the page. Finishes st (NULL st: answers
 * 500); the caller still releases the connection. */
void lf_api_reply_rows(struct lf_req *r, struct lf_stmt *st, int limit, lf_row_fn *row, void *arg,
                       json_t *extra);

/* A LIKE pattern matching q anywhere, case-insensitively: '%' + lower-cased q with '%', '_'
 * and the backslash escaped + '%'. Use with " LIKE ? ESCAPE" and a backslash, on a lower-cased
 * column. */
char *lf_api_like(struct lf_arena *a, const char *q);

/* 1 when v is one of the NULL-ended set. */
int lf_api_one_of(const char *v, const char *const *set);
/* Adds an error for every member of the object o not in allowed (NULL-ended), named prefix +
 * key: "is not a member of this body (allowed: a, b, c)". */
void lf_api_members(json_t *o, const char *const *allowed, const char *prefix, struct lf_err *err);

/* The query argument "cursor" in the form "<number>.<id>" (the sort value or time and the id
 * of the previous page's last item): NULL when absent; else the id part (borrowed from the
 * request) with *value set, or NULL with the problem named "cursor" in err. */
const char *lf_api_cursor(struct lf_req *r, long long *value, struct lf_err *err);

/* A whole-number query argument: absent leaves *present 0; present and valid sets *out and
 * *present 1; else -LF_EINVAL naming the argument in err. Returns 0 or -LF_EINVAL. */
int lf_api_int_arg(struct lf_req *r, const char *name, int64_t *out, int *present,
                   struct lf_err *err);

/* The characters (UTF-8 code points) of a JSON string. */
size_t lf_api_chars(json_t *s);

/* 1 when s is a slug: 1..63 of [a-z0-9_-], starting with a letter or digit. */
int lf_api_is_slug(const char *s);

#endif
