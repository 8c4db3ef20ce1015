/* Deliveries: the outbox as the API shows it. Lists the tenant's deliveries (newest first, with
 * filters and keyset pages), shows one with its attempt log, and retries one by hand. The engine
 * and the relay write the rows and the dispatcher (src/outbound/dispatcher.c) sends them; the
 * only change made here is a manual retry, which puts a delivery back in the dispatcher's queue
 * (lf_delivery_requeue) and wakes it. */
#include "api/api.h"
#include "outbound/outbound.h"
#include "core/crypto.h"
#include "core/log.h"
#include "core/timeutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ATTEMPT_LOG_MAX 1000 /* attempt rows a single delivery answers at most */

/* The columns delivery_json reads, in its order. */
#define DELIVERY_COLS                                                                              \
    "id, kind, subscription_id, event_id, target, payload, status, attempts, next_attempt_at,"     \
    " last_status, last_error, delivered_at, created_at, updated_at, step"
#define COL_CREATED_AT 12 /* created_at in DELIVERY_COLS: the list's sort value */

static const char *const kinds[] = {"webhook", "slack", "moco", NULL};
static const char *const statuses[] = {"pending", "in_flight", "succeeded", "failed", "dead", NULL};

/* A nullable integer column as a JSON integer or null. */
static json_t *int_or_null(struct lf_stmt *st, int col)
{
    return lf_stmt_isnull(st, col) ? json_null() : json_integer(lf_stmt_int(st, col));
}

/* A nullable epoch-ms column as an RFC 3339 string or null. */
static json_t *time_or_null(struct lf_stmt *st, int col)
{
    return lf_json_time(lf_stmt_int(st, col), lf_stmt_isnull(st, col));
}

/* The current row of st (DELIVERY_COLS) as a delivery. The stored payload is parsed; text
 * that does not parse answers null. */
static json_t *delivery_json(struct lf_stmt *st)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", lf_json_text(lf_stmt_text(st, 0)));
    json_object_set_new(o, "kind", lf_json_text(lf_stmt_text(st, 1)));
    json_object_set_new(o, "subscription_id", lf_json_text(lf_stmt_text(st, 2)));
    json_object_set_new(o, "event_id", lf_json_text(lf_stmt_text(st, 3)));
    json_object_set_new(o, "target", lf_json_text(lf_stmt_text(st, 4)));
    json_object_set_new(o, "payload", lf_json_parse(lf_stmt_text(st, 5)));
    json_object_set_new(o, "status", lf_json_text(lf_stmt_text(st, 6)));
    json_object_set_new(o, "attempts", json_integer(lf_stmt_int(st, 7)));
    json_object_set_new(o, "next_attempt_at", time_or_null(st, 8));
    json_object_set_new(o, "last_status", int_or_null(st, 9));
    json_object_set_new(o, "last_error", lf_json_text(lf_stmt_text(st, 10)));
    json_object_set_new(o, "delivered_at", time_or_null(st, 11));
    json_object_set_new(o, "created_at", time_or_null(st, COL_CREATED_AT));
    json_object_set_new(o, "updated_at", time_or_null(st, 13));
    json_object_set_new(o, "step", lf_json_text(lf_stmt_text(st, 14)));
    return o;
}

/* An item of the list; the cursor is "<created_at>.<id>". */
static json_t *delivery_row(struct lf_stmt *st, void *arg, char *cursor)
{
    (void)arg;
    snprintf(cursor, LF_CURSOR_MAX, "%lld.%s", (long long)lf_stmt_int(st, COL_CREATED_AT),
             lf_stmt_text(st, 0));
    return delivery_json(st);
}

/* GET /deliveries: newest first (created_at, then id, both descending); filters kind, status,
 * event, subscription and since (created_at at or after it). */
static void list_deliveries(struct lf_req *r)
{
    struct lf_err err = {0};
    struct lf_query q = {0};
    int limit;
    int64_t since = -1;
    lf_req_limit(r, &limit, &err);
    /* the cursor: "<created_at>.<id>" of the previous page's last delivery */
    long long cur_at;
    const char *cur_id = lf_api_cursor(r, &cur_at, &err);
    const char *kind = lf_req_query(r, "kind"), *status = lf_req_query(r, "status");
    const char *event = lf_req_query(r, "event"), *sub = lf_req_query(r, "subscription");
    if (kind && !lf_api_one_of(kind, kinds))
        lf_err_field(&err, "kind", "must be webhook, slack or moco");
    if (status && !lf_api_one_of(status, statuses))
        lf_err_field(&err, "status", "must be pending, in_flight, succeeded, failed or dead");
    if (event && !lf_uuid_valid(event)) lf_err_field(&err, "event", "must be an event id");
    if (sub && !lf_uuid_valid(sub)) lf_err_field(&err, "subscription", "must be a subscription id");
    lf_api_time_arg(r, "since", &since, &err);
    if (err.code) {
        lf_reply_error(r, err.code, &err);
        goto out;
    }
    lf_query_text(&q, "SELECT " DELIVERY_COLS " FROM deliveries WHERE tenant_id = ?",
                  r->auth.tenant_id);
    if (kind) lf_query_text(&q, " AND kind = ?", kind);
    if (status) lf_query_text(&q, " AND status = ?", status);
    if (event) lf_query_text(&q, " AND event_id = ?", event);
    if (sub) lf_query_text(&q, " AND subscription_id = ?", sub);
    if (since >= 0) lf_query_int(&q, " AND created_at >= ?", since);
    if (cur_id) lf_query_before(&q, "", cur_at, cur_id);
    lf_query_int(&q, " ORDER BY created_at DESC, id DESC LIMIT ?", limit + 1);
    struct lf_conn *c = lf_api_conn(r, LF_DB_READ);
    if (c == NULL) goto out;
    lf_api_reply_rows(r, lf_query_prepare(&q, c, &err), limit, delivery_row, NULL, NULL);
    lf_db_release(c);
out:
    lf_query_free(&q);
    lf_err_clear(&err);
}

/* The attempts of the tenant's delivery id, oldest first (at most ATTEMPT_LOG_MAX), into log.
 * Returns 0 or a negative code. */
static int load_attempts(struct lf_conn *c, const char *tenant, const char *id, json_t *log)
{
    struct lf_stmt *st = lf_db_prepare(
        c,
        "SELECT attempt, started_at, duration_ms, status_code, error, response_excerpt, target"
        " FROM delivery_attempts WHERE tenant_id = ? AND delivery_id = ?"
        " ORDER BY attempt, started_at, id LIMIT ?",
        NULL);
    if (st == NULL) return -LF_EINTERNAL;
    int rc = lf_stmt_bind(st, "ssi", tenant, id, ATTEMPT_LOG_MAX);
    while (rc >= 0 && (rc = lf_stmt_step(st)) == LF_DB_ROW) {
        json_t *a = json_object();
        json_object_set_new(a, "attempt", json_integer(lf_stmt_int(st, 0)));
        json_object_set_new(a, "started_at", time_or_null(st, 1));
        json_object_set_new(a, "duration_ms", int_or_null(st, 2));
        json_object_set_new(a, "status_code", int_or_null(st, 3));
        json_object_set_new(a, "error", lf_json_text(lf_stmt_text(st, 4)));
        json_object_set_new(a, "response_excerpt", lf_json_text(lf_stmt_text(st, 5)));
        json_object_set_new(a, "target", lf_json_text(lf_stmt_text(st, 6)));
        json_array_append_new(log, a);
    }
    lf_stmt_done(st);
    return rc < 0 ? rc : 0;
}

/* The tenant's delivery id with "attempt_log", or NULL with *rc LF_DB_DONE (no such
 * delivery) or a negative code. The caller owns the result. */
static json_t *load_delivery(struct lf_conn *c, const char *tenant, const char *id, int *rc)
{
    struct lf_stmt *st = lf_db_prepare(
        c, "SELECT " DELIVERY_COLS " FROM deliveries WHERE tenant_id = ? AND id = ?", NULL);
    if (st == NULL) {
        *rc = -LF_EINTERNAL;
        return NULL;
    }
    lf_stmt_bind(st, "ss", tenant, id);
    *rc = lf_stmt_step(st);
    json_t *o = *rc == LF_DB_ROW ? delivery_json(st) : NULL;
    lf_stmt_done(st);
    if (o == NULL) return NULL;
    json_t *log = json_array();
    *rc = load_attempts(c, tenant, id, log);
    if (*rc < 0) {
        json_decref(log);
        json_decref(o);
        return NULL;
    }
    json_object_set_new(o, "attempt_log", log);
    return o;
}

/* GET /deliveries/{id}: the delivery and its attempts; 404 when the tenant has no such one. */
static void get_delivery(struct lf_req *r)
{
    struct lf_conn *c = lf_api_conn(r, LF_DB_READ);
    if (c == NULL) return;
    int rc;
    json_t *o = load_delivery(c, r->auth.tenant_id, r->params[0], &rc);
    lf_db_release(c);
    lf_api_reply_found(r, o, rc, 200, "delivery", r->params[0]);
}

/* The status of the tenant's delivery id into status: LF_DB_ROW, LF_DB_DONE (no such delivery)
 * or a negative code. */
static int delivery_status(struct lf_conn *c, const char *tenant, const char *id, char status[16])
{
    struct lf_stmt *st =
        lf_db_prepare(c, "SELECT status FROM deliveries WHERE tenant_id = ? AND id = ?", NULL);
    if (st == NULL) return -LF_EINTERNAL;
    lf_stmt_bind(st, "ss", tenant, id);
    int rc = lf_stmt_step(st);
    if (rc == LF_DB_ROW) snprintf(status, 16, "%s", lf_stmt_text(st, 0));
    lf_stmt_done(st);
    return rc;
}

/* POST /deliveries/{id}/retry: puts the delivery back in the queue, due now, keeping its attempt
 * log, and answers it (202: the dispatcher sends it soon). Any delivery may be sent again, a
 * succeeded one too (a receiver that lost it asks for it again; the webhook-id stays the same,
 * so it can tell); only one being sent right now is refused (409), since its try has not
 * ended and its result would overwrite the retry. */
static void retry_delivery(struct lf_req *r)
{
    const char *tenant = r->auth.tenant_id, *id = r->params[0];
    struct lf_err err = {0};
    char status[16] = "";
    struct lf_conn *c = lf_api_conn(r, LF_DB_WRITE);
    if (c == NULL) return;
    int rc = lf_db_begin(c);
    if (rc >= 0) rc = delivery_status(c, tenant, id, status);
    if (rc == LF_DB_DONE)
        rc = lf_err_set(&err, -LF_ENOTFOUND, "no delivery %s", id);
    else if (rc == LF_DB_ROW) /* 0 also when the dispatcher claimed it since the read */
        rc = strcmp(status, "in_flight") == 0 ? 0 : lf_delivery_requeue(c, tenant, id, lf_now_ms());
    if (rc == 0)
        rc =
            lf_err_set(&err, -LF_ECONFLICT,
                       "delivery %s is being sent right now; retry it once that try has ended", id);
    if (rc > 0) rc = lf_db_commit(c);
    if (rc < 0) {
        lf_db_rollback(c);
        lf_reply_error(r, rc, &err);
        goto out;
    }
    lf_dispatcher_notify();
    lf_log_info("delivery retried", "{s:s, s:s, s:s, s:s}", "delivery_id", id, "was", status, "by",
                r->auth.sub, "request_id", r->request_id);
    json_t *o = load_delivery(c, tenant, id, &rc);
    lf_api_reply_found(r, o, rc, 202, "delivery", id);
out:
    lf_db_release(c);
    lf_err_clear(&err);
}

const struct lf_route lf_deliveries_routes[] = {
    {"GET", "/api/v1/deliveries", list_deliveries, LF_AUTH_TOKEN, LF_ROLES_READ, 0, 0, 0},
    {"GET", "/api/v1/deliveries/{id}", get_delivery, LF_AUTH_TOKEN, LF_ROLES_READ, 0, 0, 0},
    {"POST", "/api/v1/deliveries/{id}/retry", retry_delivery, LF_AUTH_TOKEN, LF_ROLES_MANAGE, 0, 0,
     0},
    {NULL, NULL, NULL, 0, 0, 0, 0, 0},
};
