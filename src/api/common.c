/* Helpers shared by the API handlers, and the list of every route table. */
#include "api/api.h"
#include "core/crypto.h"
#include "core/timeutil.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

const struct lf_route *const lf_api_tables[] = {
    lf_system_routes,
    lf_events_routes,
    lf_sources_routes,
    lf_leads_routes,
    lf_organizations_routes,
    lf_scoring_routes,
    lf_scheduler_routes,
    lf_reports_routes,
    lf_pipelines_routes,
    lf_deals_routes,
    lf_team_routes,
    lf_tasks_routes,
    lf_routing_routes,
    lf_automation_routes,
    lf_deliveries_routes,
    lf_subscriptions_routes,
    lf_slack_routes,
    lf_integrations_routes,
#ifdef LF_TESTING
    lf_testing_routes,
#endif
    NULL,
};

struct lf_conn *lf_api_conn(struct lf_req *r, enum lf_db_mode mode)
{
    struct lf_err err = {0};
    struct lf_conn *c = lf_db_acquire(r->app->db, mode, &err);
    if (c == NULL) {
        lf_err_set(&err, -LF_ESTORE, "the store is unavailable");
        lf_reply_error(r, -LF_ESTORE, &err);
    }
    lf_err_clear(&err);
    return c;
}

int lf_api_time_arg(struct lf_req *r, const char *name, int64_t *out, struct lf_err *err)
{
    const char *v = lf_req_query(r, name);
    *out = -1;
    if (v == NULL) return 0;
    if (lf_time_parse(v, out) < 0)
        return lf_err_field(err, name, "must be an RFC 3339 date-time, e.g. 2026-11-20T10:00:00Z");
    return 0;
}

void lf_api_reply_found(struct lf_req *r, json_t *o, int rc, int status, const char *what,
                        const char *id)
{
    if (o) {
        lf_reply_json(r, status, o);
        return;
    }
    struct lf_err err = {0};
    if (rc == LF_DB_DONE)
        rc = lf_err_set(&err, -LF_ENOTFOUND, "no %s %s", what, id);
    else if (rc >= 0)
        rc = lf_err_set(&err, -LF_EINTERNAL, "%s %s could not be read", what, id);
    lf_reply_error(r, rc, &err);
    lf_err_clear(&err);
}

int lf_api_one_of(const char *v, const char *const *set)
{
    for (; v && *set; set++)
        if (strcmp(v, *set) == 0) return 1;
    return 0;
}

void lf_api_members(json_t *o, const char *const *allowed, const char *prefix, struct lf_err *err)
{
    char list[512] = "";
    size_t n = 0;
    for (const char *const *a = allowed; *a && n < sizeof list; a++)
        n += (size_t)snprintf(list + n, sizeof list - n, "%s%s", n ? ", " : "", *a);
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v)
    {
        if (lf_api_one_of(key, allowed)) continue;
        char name[160];
        snprintf(name, sizeof name, "%s%s", prefix, key);
        lf_err_field(err, name, "is not a member of this body (allowed: %s)",
                     *list ? list : "none");
    }
}

int lf_api_int_arg(struct lf_req *r, const char *name, int64_t *out, int *present,
                   struct lf_err *err)
{
    const char *v = lf_req_query(r, name);
    *present = 0;
    if (v == NULL) return 0;
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (*v == '\0' || *end != '\0' || errno)
        return lf_err_field(err, name, "must be a whole number");
    *out = n;
    *present = 1;
    return 0;
}

const char *lf_api_cursor(struct lf_req *r, long long *value, struct lf_err *err)
{
    const char *cursor = lf_req_query(r, "cursor");
    *value = 0;
    if (cursor == NULL) return NULL;
    char *end;
    errno = 0;
    long long v = strtoll(cursor, &end, 10);
    if (end == cursor || *end != '.' || errno || !lf_uuid_valid(end + 1)) {
        lf_err_field(err, "cursor", "is not a cursor this API gave out");
        return NULL;
    }
    *value = v;
    return end + 1;
}

size_t lf_api_chars(json_t *s)
{
    return lf_utf8_chars(json_string_value(s), json_string_length(s));
}

json_t *lf_api_page(json_t *items, const char *next_cursor)
{
    return json_pack("{s:o, s:o}", "items", items, "next_cursor", lf_json_text(next_cursor));
}

char *lf_api_like(struct lf_arena *a, const char *q)
{
    size_t n = strlen(q);
    char *p = lf_arena_alloc(a, 2 * n + 3), *o = p;
    *o++ = '%';
    for (size_t i = 0; i < n; i++) {
        char ch = q[i];
        if (ch == '%' || ch == '_' || ch == '\\') *o++ = '\\';
        *o++ = (char)(ch >= 'A' && ch <= 'Z' ? ch + 32 : ch);
    }
    *o++ = '%';
    *o = '\0';
    return p;
}

void lf_api_reply_rows(struct lf_req *r, struct lf_stmt *st, int limit, lf_row_fn *row, void *arg,
                       json_t *extra)
{
    json_t *items = json_array();
    char cursor[LF_CURSOR_MAX] = "", next[LF_CURSOR_MAX] = "";
    int rc = st ? 0 : -LF_EINTERNAL;
    while (st && (rc = lf_stmt_step(st)) == LF_DB_ROW) {
        if ((int)json_array_size(items) == limit) { /* one more row: there is a next page */
            memcpy(next, cursor, sizeof next);
            break;
        }
        json_array_append_new(items, row(st, arg, cursor));
    }
    lf_stmt_done(st);
    if (rc < 0) {
        json_decref(items);
        json_decref(extra);
        lf_reply_error(r, rc, NULL);
        return;
    }
    json_t *page = lf_api_page(items, next[0] ? next : NULL);
    if (extra) json_object_update(page, extra);
    json_decref(extra);
    lf_reply_json(r, 200, page);
}

int lf_api_is_slug(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > 63) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int ok =
            (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (i > 0 && (c == '_' || c == '-'));
        if (!ok) return 0;
    }
    return 1;
}
