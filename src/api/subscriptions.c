/* Webhook subscriptions, the targets of the event relay: create (the secret is shown once),
 * list, get, change, delete, rotate the secret, enable, and recover what failed in a window.
 * Everything here is admin only: a subscription sends the tenant's events out of the service,
 * and its secret signs them.
 *
 * Every committed change tells the relay (lf_subs_changed), so the next event reloads the
 * tenant's active subscriptions. A URL is checked (lf_target_check, which may resolve a name)
 * before the writer is taken. */
#include "api/api.h"
#include "core/crypto.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "engine/rules.h"
#include "http/server.h"
#include "outbound/outbound.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define URL_MAX          2048                 /* characters of a subscription's URL */
#define DESCRIPTION_MAX  500                  /* characters of its description */
#define PATTERNS_MAX     50                   /* event type patterns of one subscription */
#define ROTATION_OVERLAP (24LL * 3600 * 1000) /* the old secret still signs this long, ms */
#define RECOVER_BATCH    500                  /* deliveries a recover requeues per transaction */

/* The columns sub_json reads, in its order. */
#define SUB_COLS                                                                                   \
    "id, url, description, event_types, is_active, disabled_reason, failing_since,"                \
    " previous_secret_until, created_at, updated_at"
#define COL_CREATED_AT 8 /* created_at in SUB_COLS: the list's sort value */

static const char *const statuses[] = {"pending", "in_flight", "succeeded", "failed", "dead", NULL};

/* The current row of st (SUB_COLS) as a subscription, never with a secret. The rotation's
 * overlap shows while it lasts (now: epoch ms). */
static json_t *sub_json(struct lf_stmt *st, int64_t now)
{
    int64_t until = lf_stmt_isnull(st, 7) ? -1 : lf_stmt_int(st, 7);
    json_t *o = json_object();
    json_object_set_new(o, "id", lf_json_text(lf_stmt_text(st, 0)));
    json_object_set_new(o, "url", lf_json_text(lf_stmt_text(st, 1)));
    json_object_set_new(o, "description", lf_json_text(lf_stmt_text(st, 2)));
    json_object_set_new(o, "event_types", lf_json_parse(lf_stmt_text(st, 3)));
    json_object_set_new(o, "is_active", json_boolean(lf_stmt_int(st, 4)));
    json_object_set_new(o, "disabled_reason", lf_json_text(lf_stmt_text(st, 5)));
    json_object_set_new(o, "failing_since",
                        lf_json_time(lf_stmt_int(st, 6), lf_stmt_isnull(st, 6)));
    json_object_set_new(o, "secret_rotated_until", lf_json_time(until, until <= now));
    json_object_set_new(o, "created_at", lf_json_time(lf_stmt_int(st, COL_CREATED_AT), 0));
    json_object_set_new(o, "updated_at", lf_json_time(lf_stmt_int(st, 9), 0));
    return o;
}

/* Adds "delivery_counts" {status: n} (every status, 0 when none) of the subscription's
 * deliveries to o. Returns 0 or a negative code. */
static int add_counts(struct lf_conn *c, const char *tenant, const char *id, json_t *o)
{
    json_t *counts = json_object();
    for (int i = 0; statuses[i]; i++) json_object_set_new(counts, statuses[i], json_integer(0));
    json_object_set_new(o, "delivery_counts", counts);
    struct lf_stmt *st =
        lf_db_prepare(c,
                      "SELECT status, COUNT(*) FROM deliveries"
                      " WHERE tenant_id = ? AND subscription_id = ? GROUP BY status",
                      NULL);
    if (st == NULL) return -LF_EINTERNAL;
    int rc = lf_stmt_bind(st, "ss", tenant, id);
    while (rc >= 0 && (rc = lf_stmt_step(st)) == LF_DB_ROW)
        json_object_set_new(counts, lf_stmt_text(st, 0), json_integer(lf_stmt_int(st, 1)));
    lf_stmt_done(st);
    return rc < 0 ? rc : 0;
}

/* The tenant's subscription id (with its delivery counts when counts); NULL with *rc
 * LF_DB_DONE when there is none, or a negative code. The caller owns the result. */
static json_t *load_sub(struct lf_conn *c, const char *tenant, const char *id, int counts, int *rc)
{
    struct lf_stmt *st = lf_db_prepare(
        c, "SELECT " SUB_COLS " FROM subscriptions WHERE tenant_id = ? AND id = ?", NULL);
    if (st == NULL) {
        *rc = -LF_EINTERNAL;
        return NULL;
    }
    lf_stmt_bind(st, "ss", tenant, id);
    json_t *o = (*rc = lf_stmt_step(st)) == LF_DB_ROW ? sub_json(st, lf_now_ms()) : NULL;
    lf_stmt_done(st);
    if (o && counts && (*rc = add_counts(c, tenant, id, o)) < 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* Answers the subscription id (with its counts) with status, or 404 / the store's error. */
static void reply_sub(struct lf_req *r, struct lf_conn *c, const char *id, int status)
{
    int rc;
    json_t *o = load_sub(c, r->auth.tenant_id, id, 1, &rc);
    lf_api_reply_found(r, o, rc, status, "subscription", id);
}

/* ---- reading */

/* An item of the list; the cursor is "<created_at>.<id>". */
static json_t *sub_row(struct lf_stmt *st, void *arg, char *cursor)
{
    snprintf(cursor, LF_CURSOR_MAX, "%lld.%s", (long long)lf_stmt_int(st, COL_CREATED_AT),
             lf_stmt_text(st, 0));
    return sub_json(st, *(int64_t *)arg);
}

/* GET /subscriptions: newest first (created_at, then id, both descending); filter active. */
static void list_subs(struct lf_req *r)
{
    struct lf_err err = {0};
    struct lf_query q = {0};
    int limit;
    lf_req_limit(r, &limit, &err);
    long long cur_at;
    const char *cur_id = lf_api_cursor(r, &cur_at, &err);
    const char *active = lf_req_query(r, "active");
    if (active && strcmp(active, "true") != 0 && strcmp(active, "false") != 0)
        lf_err_field(&err, "active", "must be true or false");
    if (err.code) {
        lf_reply_error(r, err.code, &err);
        goto out;
    }
    lf_query_text(&q, "SELECT " SUB_COLS " FROM subscriptions WHERE tenant_id = ?",
                  r->auth.tenant_id);
    if (active) lf_query_int(&q, " AND is_active = ?", strcmp(active, "true") == 0);
    if (cur_id) lf_query_before(&q, "", cur_at, cur_id);
    lf_query_int(&q, " ORDER BY created_at DESC, id DESC LIMIT ?", limit + 1);
    struct lf_conn *c = lf_api_conn(r, LF_DB_READ);
    if (c == NULL) goto out;
    int64_t now = lf_now_ms();
    lf_api_reply_rows(r, lf_query_prepare(&q, c, &err), limit, sub_row, &now, NULL);
    lf_db_release(c);
out:
    lf_query_free(&q);
    lf_err_clear(&err);
}

/* GET /subscriptions/{id}: the subscription and how many of its deliveries are in each status. */
static void get_sub(struct lf_req *r)
{
    struct lf_conn *c = lf_api_conn(r, LF_DB_READ);
    if (c == NULL) return;
    reply_sub(r, c, r->params[0], 200);
    lf_db_release(c);
}

/* ---- the body of a create or a change */

/* What a create or a change asks for; members not in the body are absent (NULL, -1). */
struct sub_body {
    const char *url;
    json_t *event_types;     /* the patterns, an array (borrowed from the body) */
    int has_description;     /* description given: set it (NULL clears it) */
    const char *description; /* NULL or a string of 1..DESCRIPTION_MAX characters */
    int is_active;           /* -1 absent, else 0 or 1 */
};

/* 1 when s is an event type pattern: "*", "<prefix>.*" (a prefix that is an event type), or
 * an exact event type. */
static int pattern_ok(const char *s)
{
    size_t n = strlen(s);
    if (strcmp(s, "*") == 0) return 1;
    if (n > 2 && strcmp(s + n - 2, ".*") == 0) {
        char prefix[128];
        if (n - 2 >= sizeof prefix) return 0;
        memcpy(prefix, s, n - 2);
        prefix[n - 2] = '\0';
        return strcmp(prefix, "*") != 0 && lf_event_type_ok(prefix);
    }
    return lf_event_type_ok(s);
}

static void check_patterns(json_t *v, struct lf_err *err)
{
    if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > PATTERNS_MAX) {
        lf_err_field(err, "event_types",
                     "must be a list of 1 to %d event type patterns (\"*\", \"lead.*\","
                     " \"deal.won\")",
                     PATTERNS_MAX);
        return;
    }
    size_t i;
    json_t *p;
    json_array_foreach(v, i, p)
    {
        char name[48];
        snprintf(name, sizeof name, "event_types[%zu]", i);
        if (!json_is_string(p) || !pattern_ok(json_string_value(p)))
            lf_err_field(err, name,
                         "must be \"*\", a prefix pattern such as \"lead.*\", or an event type"
                         " (letters, digits, '_', '.', '-', ':'; at most 100 characters)");
    }
}

/* Checks the body of a create (creating) or a change into b. The URL's target is checked too,
 * which may resolve its host name. Returns 0 or -LF_EINVAL with every problem in err. */
static int check_body(struct lf_req *r, json_t *body, int creating, struct sub_body *b,
                      struct lf_err *err)
{
    static const char *const created[] = {"url", "event_types", "description", NULL};
    static const char *const changed[] = {"url", "event_types", "description", "is_active", NULL};
    json_t *v;
    memset(b, 0, sizeof *b);
    b->is_active = -1;
    lf_api_members(body, creating ? created : changed, "", err);
    v = json_object_get(body, "url");
    if (v == NULL && creating) {
        lf_err_field(err, "url", "is required: the http or https URL events are sent to");
    } else if (v &&
               (!json_is_string(v) || json_string_length(v) == 0 || lf_api_chars(v) > URL_MAX)) {
        lf_err_field(err, "url", "must be an http or https URL of at most %d characters", URL_MAX);
    } else if (v) {
        struct lf_err terr = {0};
        if (lf_target_check(&r->app->cfg, json_string_value(v), &terr) < 0) {
            int first = err->msg[0] == '\0';
            lf_err_field(err, "url", "%s", terr.msg);
            if (first) snprintf(err->msg, sizeof err->msg, "%s", terr.msg);
        }
        lf_err_clear(&terr);
        b->url = json_string_value(v);
    }
    if ((v = json_object_get(body, "event_types")) != NULL) {
        check_patterns(v, err);
        b->event_types = v;
    }
    if ((v = json_object_get(body, "description")) != NULL) {
        b->has_description = 1;
        if (json_is_string(v) && lf_api_chars(v) <= DESCRIPTION_MAX)
            b->description = json_string_length(v) ? json_string_value(v) : NULL;
        else if (!json_is_null(v))
            lf_err_field(err, "description", "must be a string of at most %d characters, or null",
                         DESCRIPTION_MAX);
    }
    if ((v = json_object_get(body, "is_active")) != NULL) {
        if (json_is_boolean(v))
            b->is_active = json_is_true(v);
        else
            lf_err_field(err, "is_active", "must be true or false");
    }
    return err->code;
}

/* ---- writing */

/* Commits the transaction of a change when rc is not negative, else rolls it back; after a
 * commit tells the relay, and wakes the dispatcher for what the change wrote (a disable emits
 * subscription.disabled, which other subscriptions may take). Returns rc or the commit's
 * error. */
static int finish(struct lf_conn *c, int rc)
{
    if (rc >= 0) rc = lf_db_commit(c);
    if (rc < 0) {
        lf_db_rollback(c);
        return rc;
    }
    lf_subs_changed();
    lf_outbox_committed();
    return rc;
}

/* POST /subscriptions {url, event_types, description}: answers 201 with the subscription and
 * its secret, which is never shown again. */
static void create_sub(struct lf_req *r)
{
    struct lf_err err = {0};
    struct sub_body b;
    struct lf_conn *c = NULL;
    char *types = NULL;
    json_t *body = lf_req_json(r, &err);
    if (body == NULL || check_body(r, body, 1, &b, &err) < 0) {
        lf_reply_error(r, err.code, &err);
        goto out;
    }
    types = b.event_types ? lf_json_dump(b.event_types) : strdup("[\"*\"]");
    if ((c = lf_api_conn(r, LF_DB_WRITE)) == NULL) goto out;
    char id[LF_UUID_STRLEN + 1], secret[LF_SECRET_BUFSZ];
    lf_uuid7(id);
    lf_secret_new(secret, sizeof secret);
    int64_t now = lf_now_ms();
    int rc = lf_db_begin(c);
    if (rc >= 0)
        rc = lf_db_run(c, &err,
                       "INSERT INTO subscriptions (id, tenant_id, url, description, event_types,"
                       " secret, is_active, created_at, updated_at)"
                       " VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?)",
                       "ssssssII", id, r->auth.tenant_id, b.url, b.description, types, secret, now,
                       now);
    if ((rc = finish(c, rc)) < 0) {
        lf_reply_error(r, rc, &err);
        goto out;
    }
    lf_log_info("subscription created", "{s:s, s:s, s:s}", "subscription_id", id, "by", r->auth.sub,
                "request_id", r->request_id);
    json_t *o = load_sub(c, r->auth.tenant_id, id, 0, &rc);
    if (o) json_object_set_new(o, "secret", json_string(secret));
    lf_api_reply_found(r, o, rc, 201, "subscription", id);
out:
    if (c) lf_db_release(c);
    free(types);
    json_decref(body);
    lf_err_clear(&err);
}

/* Applies a checked change to the tenant's subscription id in the caller's transaction.
 * Returns 0, or a negative code with err (-LF_ENOTFOUND: no such subscription). */
static int apply_change(struct lf_req *r, struct lf_conn *c, const char *id,
                        const struct sub_body *b, int64_t now, struct lf_err *err)
{
    const char *tenant = r->auth.tenant_id;
    int rc =
        lf_db_run(c, err, "UPDATE subscriptions SET updated_at = ? WHERE tenant_id = ? AND id = ?",
                  "Iss", now, tenant, id);
    if (rc == 0) return lf_err_set(err, -LF_ENOTFOUND, "no subscription %s", id);
    if (rc >= 0 && b->url) {
        rc = lf_db_run(c, err, "UPDATE subscriptions SET url = ? WHERE tenant_id = ? AND id = ?",
                       "sss", b->url, tenant, id);
        /* what has not been delivered yet goes to the new URL (a retry or a recover too) */
        if (rc >= 0)
            rc = lf_db_run(c, err,
                           "UPDATE deliveries SET target = ?, updated_at = ? WHERE tenant_id = ?"
                           " AND subscription_id = ? AND status IN ('pending', 'failed', 'dead')",
                           "sIss", b->url, now, tenant, id);
    }
    if (rc >= 0 && b->event_types) {
        char *types = lf_json_dump(b->event_types);
        rc = lf_db_run(c, err,
                       "UPDATE subscriptions SET event_types = ? WHERE tenant_id = ? AND id = ?",
                       "sss", types, tenant, id);
        free(types);
    }
    if (rc >= 0 && b->has_description)
        rc = lf_db_run(c, err,
                       "UPDATE subscriptions SET description = ? WHERE tenant_id = ? AND id = ?",
                       "sss", b->description, tenant, id);
    if (rc >= 0 && b->is_active == 1)
        rc = lf_db_run(c, err,
                       "UPDATE subscriptions SET is_active = 1, disabled_reason = NULL,"
                       " failing_since = NULL WHERE tenant_id = ? AND id = ?",
                       "ss", tenant, id);
    if (rc >= 0 && b->is_active == 0) {
        char reason[160];
        snprintf(reason, sizeof reason, "disabled by %s", r->auth.sub);
        rc = lf_subscription_disable(c, tenant, id, reason, now);
    }
    return rc < 0 ? rc : 0;
}

/* PATCH /subscriptions/{id} {url, event_types, description, is_active}: is_active false
 * disables it (the reason names who), true enables it. */
static void patch_sub(struct lf_req *r)
{
    struct lf_err err = {0};
    struct sub_body b;
    struct lf_conn *c = NULL;
    json_t *body = lf_req_json(r, &err);
    if (body == NULL || check_body(r, body, 0, &b, &err) < 0) {
        lf_reply_error(r, err.code, &err);
        goto out;
    }
    if ((c = lf_api_conn(r, LF_DB_WRITE)) == NULL) goto out;
    int rc = lf_db_begin(c);
    if (rc >= 0) rc = apply_change(r, c, r->params[0], &b, lf_now_ms(), &err);
    if ((rc = finish(c, rc)) < 0) {
        lf_reply_error(r, rc, &err);
        goto out;
    }
    lf_log_info("subscription changed", "{s:s, s:s, s:s}", "subscription_id", r->params[0], "by",
                r->auth.sub, "request_id", r->request_id);
    reply_sub(r, c, r->params[0], 200);
out:
    if (c) lf_db_release(c);
    json_decref(body);
    lf_err_clear(&err);
}

/* DELETE /subscriptions/{id}: the subscription goes; its deliveries not yet sent die (they
 * stay readable, with the reason). One in flight ends as its try ends. */
static void delete_sub(struct lf_req *r)
{
    const char *tenant = r->auth.tenant_id, *id = r->params[0];
    struct lf_err err = {0};
    struct lf_conn *c = lf_api_conn(r, LF_DB_WRITE);
    if (c == NULL) return;
    int64_t now = lf_now_ms();
    int rc = lf_db_begin(c);
    if (rc >= 0)
        rc = lf_db_run(c, &err, "DELETE FROM subscriptions WHERE tenant_id = ? AND id = ?", "ss",
                       tenant, id);
    if (rc == 0) rc = lf_err_set(&err, -LF_ENOTFOUND, "no subscription %s", id);
    if (rc >= 0)
        rc = lf_db_run(c, &err,
                       "UPDATE deliveries SET status = 'dead', last_error = 'subscription deleted',"
                       " next_attempt_at = NULL, updated_at = ? WHERE tenant_id = ?"
                       " AND subscription_id = ? AND status IN ('pending', 'failed')",
                       "Iss", now, tenant, id);
    int dead = rc;
    if ((rc = finish(c, rc)) < 0) {
        lf_reply_error(r, rc, &err);
    } else {
        lf_log_info("subscription deleted", "{s:s, s:i, s:s, s:s}", "subscription_id", id,
                    "deliveries_dead", dead, "by", r->auth.sub, "request_id", r->request_id);
        lf_reply_json(r, 204, NULL);
    }
    lf_db_release(c);
    lf_err_clear(&err);
}

/* POST /subscriptions/{id}/rotate-secret: a new secret; the current one becomes the previous
 * one and still signs for 24 hours (a second rotation within them replaces it, so at most two
 * secrets sign). Answers the new secret, shown only here. */
static void rotate_secret(struct lf_req *r)
{
    const char *id = r->params[0];
    struct lf_err err = {0};
    struct lf_conn *c = lf_api_conn(r, LF_DB_WRITE);
    if (c == NULL) return;
    char secret[LF_SECRET_BUFSZ];
    lf_secret_new(secret, sizeof secret);
    int64_t now = lf_now_ms(), until = now + ROTATION_OVERLAP;
    int rc = lf_db_begin(c);
    if (rc >= 0)
        rc = lf_db_run(c, &err,
                       "UPDATE subscriptions SET previous_secret = secret,"
                       " previous_secret_until = ?, secret = ?, updated_at = ?"
                       " WHERE tenant_id = ? AND id = ?",
                       "IsIss", until, secret, now, r->auth.tenant_id, id);
    if (rc == 0) rc = lf_err_set(&err, -LF_ENOTFOUND, "no subscription %s", id);
    if ((rc = finish(c, rc)) < 0) {
        lf_reply_error(r, rc, &err);
    } else {
        lf_log_info("subscription secret rotated", "{s:s, s:s, s:s}", "subscription_id", id, "by",
                    r->auth.sub, "request_id", r->request_id);
        lf_reply_json(r, 200,
                      json_pack("{s:s, s:s, s:o}", "id", id, "secret", secret,
                                "previous_secret_expires_at", lf_json_time(until, 0)));
    }
    lf_db_release(c);
    lf_err_clear(&err);
}

/* POST /subscriptions/{id}/enable: active again, its failure record cleared. */
static void enable_sub(struct lf_req *r)
{
    const char *id = r->params[0];
    struct lf_err err = {0};
    struct lf_conn *c = lf_api_conn(r, LF_DB_WRITE);
    if (c == NULL) return;
    int rc = lf_db_begin(c);
    if (rc >= 0)
        rc = lf_db_run(c, &err,
                       "UPDATE subscriptions SET is_active = 1, disabled_reason = NULL,"
                       " failing_since = NULL, updated_at = ? WHERE tenant_id = ? AND id = ?",
                       "Iss", lf_now_ms(), r->auth.tenant_id, id);
    if (rc == 0) rc = lf_err_set(&err, -LF_ENOTFOUND, "no subscription %s", id);
    if ((rc = finish(c, rc)) < 0) {
        lf_reply_error(r, rc, &err);
    } else {
        lf_log_info("subscription enabled", "{s:s, s:s, s:s}", "subscription_id", id, "by",
                    r->auth.sub, "request_id", r->request_id);
        reply_sub(r, c, id, 200);
    }
    lf_db_release(c);
    lf_err_clear(&err);
}

/* ---- recover */

/* Reads a body member that must be an RFC 3339 date-time into *out (-1 when absent or null). */
static void body_time(json_t *body, const char *name, int64_t *out, struct lf_err *err)
{
    json_t *v = json_object_get(body, name);
    *out = -1;
    if (v == NULL || json_is_null(v)) return;
    if (!json_is_string(v) || lf_time_parse(json_string_value(v), out) < 0) {
        *out = -1;
        lf_err_field(err, name, "must be an RFC 3339 date-time, e.g. 2026-11-20T10:00:00Z");
    }
}

/* One batch of a recover, in its own transaction: requeues the failed or dead deliveries of
 * the subscription created in [since, until) after the keyset (*at, last), at most
 * RECOVER_BATCH, and moves the keyset on. The subscription must be active (checked in each
 * batch, so a disable in between stops the recover). ids holds RECOVER_BATCH ids. Returns the
 * number of deliveries looked at (the batch is the last when fewer than RECOVER_BATCH) with
 * *requeued increased, or a negative code with err. */
static int recover_batch(struct lf_conn *c, const char *tenant, const char *id, int64_t until,
                         int64_t *at, char last[40], char (*ids)[40], int *requeued,
                         struct lf_err *err)
{
    int64_t active = 0;
    int rc = lf_db_begin(c);
    if (rc >= 0)
        rc = lf_db_int(c, err, &active,
                       "SELECT is_active FROM subscriptions WHERE tenant_id = ? AND id = ?", "ss",
                       tenant, id);
    if (rc == LF_DB_DONE) rc = lf_err_set(err, -LF_ENOTFOUND, "no subscription %s", id);
    if (rc >= 0 && !active)
        rc = lf_err_set(err, -LF_ECONFLICT,
                        "subscription %s is disabled; enable it first, then recover", id);
    struct lf_stmt *st = NULL;
    if (rc >= 0)
        st = lf_db_prepare(c,
                           "SELECT id, created_at FROM deliveries WHERE tenant_id = ?"
                           " AND subscription_id = ? AND status IN ('failed', 'dead')"
                           " AND created_at < ? AND (created_at > ? OR (created_at = ? AND id > ?))"
                           " ORDER BY created_at, id LIMIT ?",
                           err);
    if (rc >= 0 && st == NULL) rc = -LF_EINTERNAL;
    int n = 0;
    if (st) {
        rc = lf_stmt_bind(st, "ssIIIsi", tenant, id, until, *at, *at, last, RECOVER_BATCH);
        while (rc >= 0 && (rc = lf_stmt_step(st)) == LF_DB_ROW) {
            snprintf(ids[n], sizeof ids[n], "%s", lf_stmt_text(st, 0));
            *at = lf_stmt_int(st, 1);
            n++;
        }
        lf_stmt_done(st);
    }
    if (n > 0) snprintf(last, 40, "%s", ids[n - 1]);
    int64_t now = lf_now_ms();
    int done = 0;
    for (int i = 0; rc >= 0 && i < n; i++) {
        rc = lf_delivery_requeue(c, tenant, ids[i], now);
        if (rc > 0) done++;
    }
    if (rc >= 0) rc = lf_db_commit(c);
    if (rc < 0) {
        lf_db_rollback(c);
        return rc;
    }
    *requeued += done;
    return n;
}

/* POST /subscriptions/{id}/recover {since, until}: sends again every delivery of the
 * subscription that failed or died and was created in [since, until) (until: now when absent;
 * a later one is taken as now). The subscription must be enabled first (409). Works in
 * batches, each its own transaction, so other writers are not held up; answers 202 with the
 * number requeued: the dispatcher sends them soon. */
static void recover_sub(struct lf_req *r)
{
    static const char *const members[] = {"since", "until", NULL};
    const char *tenant = r->auth.tenant_id, *id = r->params[0];
    struct lf_err err = {0};
    int64_t since, until, now = lf_now_ms();
    json_t *body = lf_req_json(r, &err);
    if (body) {
        lf_api_members(body, members, "", &err);
        body_time(body, "since", &since, &err);
        body_time(body, "until", &until, &err);
        if (json_object_get(body, "since") == NULL || json_is_null(json_object_get(body, "since")))
            lf_err_field(&err, "since", "is required: the start of the window (RFC 3339)");
        if (until < 0 || until > now) until = now;
        if (err.code == 0 && since >= until)
            lf_err_field(&err, "since", "must be before until (and before now)");
    }
    if (err.code) {
        lf_reply_error(r, err.code, &err);
        goto out;
    }
    int requeued = 0, rc;
    int64_t at = since;
    char last[40] = ""; /* the keyset: rows after (at, last); "" sorts before every id */
    char(*ids)[40] = lf_arena_alloc(&r->arena, RECOVER_BATCH * sizeof *ids);
    do {
        struct lf_conn *c = lf_api_conn(r, LF_DB_WRITE);
        if (c == NULL) goto out;
        rc = recover_batch(c, tenant, id, until, &at, last, ids, &requeued, &err);
        lf_db_release(c);
        if (requeued > 0) lf_dispatcher_notify();
    } while (rc == RECOVER_BATCH);
    /* a failure after some batches still reports them: they were committed */
    if (rc < 0 && requeued == 0) {
        lf_reply_error(r, rc, &err);
        goto out;
    }
    lf_log_info("subscription recovered", "{s:s, s:i, s:s, s:s}", "subscription_id", id, "requeued",
                requeued, "by", r->auth.sub, "request_id", r->request_id);
    lf_reply_json(r, 202,
                  json_pack("{s:s, s:i, s:o, s:o}", "id", id, "requeued", requeued, "since",
                            lf_json_time(since, 0), "until", lf_json_time(until, 0)));
out:
    json_decref(body);
    lf_err_clear(&err);
}

const struct lf_route lf_subscriptions_routes[] = {
    {"GET", "/api/v1/subscriptions", list_subs, LF_AUTH_TOKEN, LF_ROLES_ADMIN, 0, 0, 0},
    {"POST", "/api/v1/subscriptions", create_sub, LF_AUTH_TOKEN, LF_ROLES_ADMIN, 1, 0, 0},
    {"GET", "/api/v1/subscriptions/{id}", get_sub, LF_AUTH_TOKEN, LF_ROLES_ADMIN, 0, 0, 0},
    {"PATCH", "/api/v1/subscriptions/{id}", patch_sub, LF_AUTH_TOKEN, LF_ROLES_ADMIN, 1, 0, 0},
    {"DELETE", "/api/v1/subscriptions/{id}", delete_sub, LF_AUTH_TOKEN, LF_ROLES_ADMIN, 0, 0, 0},
    {"POST", "/api/v1/subscriptions/{id}/rotate-secret", rotate_secret, LF_AUTH_TOKEN,
     LF_ROLES_ADMIN, 0, 0, 0},
    {"POST", "/api/v1/subscriptions/{id}/enable", enable_sub, LF_AUTH_TOKEN, LF_ROLES_ADMIN, 0, 0,
     0},
    {"POST", "/api/v1/subscriptions/{id}/recover", recover_sub, LF_AUTH_TOKEN, LF_ROLES_ADMIN, 1, 0,
     0},
    {NULL, NULL, NULL, 0, 0, 0, 0, 0},
};
