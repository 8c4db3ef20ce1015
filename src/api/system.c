/* Operational endpoints: health, metrics and the OpenAPI document. Public, unauthenticated:
 * they reveal no tenant's data. */
#include "api/api.h"
#include "engine/ingest.h"
#include "http/router.h"
#include "core/embedded.h"
#include "core/metrics.h"
#include "core/timeutil.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

static void health(struct lf_req *r)
{
    struct lf_err err = {0};
    int ok = lf_db_check(r->app->db, &err) == 0;
    json_t *body = json_pack("{s:s, s:s, s:s, s:s, s:I, s:i}", "status", ok ? "ok" : "unavailable",
                             "store", ok ? "ok" : (err.msg[0] ? err.msg : "unusable"), "engine",
                             lf_db_engine_name(r->app->db), "version", LF_VERSION, "uptime_s",
                             (json_int_t)((lf_now_ms() - r->app->started_at) / 1000),
                             "ingest_queue", r->app->ingest ? lf_ingest_depth(r->app->ingest) : 0);
    lf_reply_json(r, ok ? 200 : 503, body);
    lf_err_clear(&err);
}

/* "METHOD pattern" of every route, made once (the table is fixed before serving). */
static char route_names[256][128];
static pthread_once_t route_names_once = PTHREAD_ONCE_INIT;

static void make_route_names(void)
{
    for (int k = 0; k < lf_router_count() && k < 256; k++) {
        const struct lf_route *rt = lf_router_get(k);
        snprintf(route_names[k], sizeof route_names[k], "%s %s", rt->method, rt->pattern);
    }
}

static const char *route_name(int i)
{
    pthread_once(&route_names_once, make_route_names);
    return i >= 0 && i < 256 ? route_names[i] : "";
}

static void metrics(struct lf_req *r)
{
    struct lf_buf out = {0};
    lf_metrics_render(&out, route_name, lf_router_count());
    int64_t due = 0;
    struct lf_conn *c = lf_db_acquire(r->app->db, LF_DB_READ, NULL);
    if (c) {
        lf_db_int(c, NULL, &due, "SELECT count(*) FROM events WHERE next_attempt_at IS NOT NULL",
                  NULL);
        lf_db_release(c);
    }
    lf_buf_printf(&out,
                  "# HELP leadflow_events_pending Events waiting to be processed (all tenants).\n"
                  "# TYPE leadflow_events_pending gauge\nleadflow_events_pending %lld\n"
                  "# HELP leadflow_ingest_queue_depth Events waiting for the ingest writer.\n"
                  "# TYPE leadflow_ingest_queue_depth gauge\nleadflow_ingest_queue_depth %d\n"
                  "# HELP leadflow_uptime_seconds Seconds since the process started.\n"
                  "# TYPE leadflow_uptime_seconds gauge\nleadflow_uptime_seconds %lld\n",
                  (long long)due, r->app->ingest ? lf_ingest_depth(r->app->ingest) : 0,
                  (long long)((lf_now_ms() - r->app->started_at) / 1000));
    lf_reply_text(r, 200, "text/plain; version=0.0.4", out.data, out.len);
    lf_buf_free(&out);
}

static void openapi(struct lf_req *r)
{
    const struct lf_embedded *doc = lf_embedded_find(lf_embedded_api, "openapi.json");
    if (doc == NULL) {
        lf_reply_error(r, -LF_ENOTFOUND, NULL);
        return;
    }
    lf_reply_text(r, 200, "application/json", doc->data, doc->len);
}

const struct lf_route lf_system_routes[] = {
    {"GET", "/health", health, LF_AUTH_NONE, 0, 0, 0, 0},
    {"GET", "/metrics", metrics, LF_AUTH_NONE, 0, 0, 0, 0},
    {"GET", "/api/v1/openapi.json", openapi, LF_AUTH_NONE, 0, 0, 0, 0},
    {NULL, NULL, NULL, 0, 0, 0, 0, 0},
};
