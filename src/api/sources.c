/* The sources resource: who may send events, and the secret each signs with (admin only).
 * A secret is shown once, when it is made (on create and on rotation). */
#include "api/api.h"
#include "http/auth.h"
#include "core/crypto.h"
#include "core/log.h"
#include "core/timeutil.h"

#include <stdio.h>
#include <string.h>

#define SOURCE_COLS "id, slug, name, rate_limit_per_s, is_active, created_at, updated_at"

static json_t *source_json(struct lf_stmt *st)
{
    return json_pack("{s:s, s:s, s:s, s:I, s:b, s:o, s:o}", "id", lf_stmt_text(st, 0), "slug",
                     lf_stmt_text(st, 1), "name", lf_stmt_text(st, 2), "rate_limit_per_s",
                     (json_int_t)lf_stmt_int(st, 3), "is_active", (int)lf_stmt_int(st, 4),
                     "created_at", lf_json_time(lf_stmt_int(st, 5), 0), "updated_at",
                     lf_json_time(lf_stmt_int(st, 6), 0));
}

/* Loads one source of the tenant as JSON; NULL when there is none. */
static json_t *load_source(struct lf_conn *c, const char *tenant_id, const char *id, int *rc)
{
    struct lf_stmt *st = lf_db_prepare(
        c, "SELECT " SOURCE_COLS " FROM sources WHERE tenant_id = ? AND id = ?", NULL);
    if (st == NULL) {
        *rc = -LF_EINTERNAL;
        return NULL;
    }
    lf_stmt_bind(st, "ss", tenant_id, id);
    *rc = lf_stmt_step(st);
    json_t *o = *rc == LF_DB_ROW ? source_json(st) : NULL;
    lf_stmt_done(st);
    return o;
}

/* Validates name, rate_limit_per_s and is_active where present. */
static void check_common(json_t *body, struct lf_err *err)
{
    json_t *name = json_object_get(body, "name");
    if (name &&
        (!json_is_string(name) || json_string_length(name) == 0 || json_string_length(name) > 200))
        lf_err_field(err, "name", "must be a string of 1 to 200 characters");
    json_t *rate = json_object_get(body, "rate_limit_per_s");
    if (rate && (!json_is_integer(rate) || json_integer_value(rate) < 0 ||
                 json_integer_value(rate) > 1000000))
        lf_err_field(err, "rate_limit_per_s",
                     "must be a whole number from 0 (no limit) to 1000000");
    json_t *active = json_object_get(body, "is_active");
    if (active && !json_is_boolean(active)) lf_err_field(err, "is_active", "must be true or false");
}

static void create_source(struct lf_req *r)
{
    struct lf_err err = {0};
    json_t *body = lf_req_json(r, &err);
    if (body) {
        const char *slug = json_string_value(json_object_get(body, "slug"));
        if (!lf_api_is_slug(slug))
            lf_err_field(&err, "slug", "is required: 1 to 63 of a-z, 0-9, '_' and '-'");
        if (!json_object_get(body, "name")) lf_err_field(&err, "name", "is required");
        check_common(body, &err);
    }
    if (err.code) {
        lf_reply_error(r, err.code, &err);
        goto out;
    }
    struct lf_conn *c = lf_api_conn(r, LF_DB_WRITE);
    if (c == NULL) goto out;
    char id[40], secret[LF_SECRET_BUFSZ];
    lf_uuid7(id);
    lf_secret_new(secret, sizeof secret);
    int64_t now = lf_now_ms();
    json_t *active = json_object_get(body, "is_active");
    int rc = lf_db_run(c, &err,
                       "INSERT INTO sources (id, tenant_id, slug, name, secret, rate_limit_per_s,"
                       " is_active, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       "sssssIiII", id, r->auth.tenant_id,
                       json_string_value(json_object_get(body, "slug")),
                       json_string_value(json_object_get(body, "name")), secret,
                       (int64_t)json_integer_value(json_object_get(body, "rate_limit_per_s")),
                       active ? json_is_true(active) : 1, now, now);
    json_t *src = rc >= 0 ? load_source(c, r->auth.tenant_id, id, &rc) : NULL;
    lf_db_release(c);
    if (rc == -LF_ECONSTRAINT) {
        lf_err_clear(&err);
        lf_err_field(&err, "slug", "is taken by another source");
        lf_reply_error(r, -LF_ECONFLICT, &err);
    } else if (src == NULL) {
        lf_reply_error(r, rc < 0 ? rc : -LF_EINTERNAL, &err);
    } else {
        json_object_set_new(src, "secret", json_string(secret));
        lf_auth_sources_changed(r->app);
        lf_log_info("source created", "{s:s, s:s}", "source", id, "by", r->auth.sub);
        lf_reply_json(r, 201, src);
    }
out:
    json_decref(body);
    lf_err_clear(&err);
}

static json_t *source_row(struct lf_stmt *st, void *arg, char *cursor)
{
    (void)arg;
    snprintf(cursor, LF_CURSOR_MAX, "%s", lf_stmt_text(st, 0));
    return source_json(st);
}

static void list_sources(struct lf_req *r)
{
    struct lf_err err = {0};
    struct lf_query q = {0};
    int limit;
    const char *cursor;
    if (lf_req_page(r, &limit, &cursor, &err) < 0) {
        lf_reply_error(r, err.code, &err);
        goto out;
    }
    lf_query_text(&q, "SELECT " SOURCE_COLS " FROM sources WHERE tenant_id = ?", r->auth.tenant_id);
    if (cursor) lf_query_text(&q, " AND id > ?", cursor);
    lf_query_int(&q, " ORDER BY id LIMIT ?", limit + 1);
    struct lf_conn *c = lf_api_conn(r, LF_DB_READ);
    if (c == NULL) goto out;
    lf_api_reply_rows(r, lf_query_prepare(&q, c, &err), limit, source_row, NULL, NULL);
    lf_db_release(c);
out:
    lf_query_free(&q);
    lf_err_clear(&err);
}

static void get_source(struct lf_req *r)
{
    struct lf_conn *c = lf_api_conn(r, LF_DB_READ);
    if (c == NULL) return;
    int rc;
    json_t *src = load_source(c, r->auth.tenant_id, r->params[0], &rc);
    lf_db_release(c);
    struct lf_err err = {0};
    if (src) {
        lf_reply_json(r, 200, src);
    } else {
        if (rc == LF_DB_DONE) lf_err_set(&err, -LF_ENOTFOUND, "no source %s", r->params[0]);
        lf_reply_error(r, rc == LF_DB_DONE ? -LF_ENOTFOUND : rc, &err);
    }
    lf_err_clear(&err);
}

static void patch_source(struct lf_req *r)
{
    static const char *const allowed[] = {"name", "rate_limit_per_s", "is_active", "rotate_secret"};
    struct lf_err err = {0};
    json_t *body = lf_req_json(r, &err);
    const char *key;
    json_t *v;
    if (body) {
        json_object_foreach(body, key, v)
        {
            int ok = 0;
            for (int i = 0; i < 4; i++) ok |= strcmp(key, allowed[i]) == 0;
            if (!ok)
                lf_err_field(&err, key,
                             "may not be changed (allowed: name, rate_limit_per_s, "
                             "is_active, rotate_secret)");
        }
        check_common(body, &err);
        json_t *rot = json_object_get(body, "rotate_secret");
        if (rot && !json_is_boolean(rot))
            lf_err_field(&err, "rotate_secret", "must be true or false");
    }
    if (err.code) {
        lf_reply_error(r, err.code, &err);
        goto out;
    }
    struct lf_conn *c = lf_api_conn(r, LF_DB_WRITE);
    if (c == NULL) goto out;
    int64_t now = lf_now_ms();
    char secret[LF_SECRET_BUFSZ] = "";
    int rotate = json_is_true(json_object_get(body, "rotate_secret"));
    if (rotate) lf_secret_new(secret, sizeof secret);
    json_t *name = json_object_get(body, "name"), *rate = json_object_get(body, "rate_limit_per_s"),
           *active = json_object_get(body, "is_active");
    struct lf_query q = {0};
    lf_query_int(&q, "UPDATE sources SET updated_at = ?", now);
    if (name) lf_query_text(&q, ", name = ?", json_string_value(name));
    if (rate) lf_query_int(&q, ", rate_limit_per_s = ?", json_integer_value(rate));
    if (active) lf_query_int(&q, ", is_active = ?", json_is_true(active));
    if (rotate) lf_query_text(&q, ", secret = ?", secret);
    lf_query_text(&q, " WHERE tenant_id = ?", r->auth.tenant_id);
    lf_query_text(&q, " AND id = ?", r->params[0]);
    struct lf_stmt *st = lf_query_prepare(&q, c, &err);
    int rc = st ? lf_stmt_step(st) : -LF_EINTERNAL;
    lf_stmt_done(st);
    int64_t changed = rc >= 0 ? lf_db_changes(c) : 0;
    json_t *src = changed ? load_source(c, r->auth.tenant_id, r->params[0], &rc) : NULL;
    lf_db_release(c);
    lf_query_free(&q);
    if (src) {
        if (rotate) json_object_set_new(src, "secret", json_string(secret));
        lf_auth_sources_changed(r->app);
        lf_log_info("source changed", "{s:s, s:b, s:s}", "source", r->params[0], "rotated", rotate,
                    "by", r->auth.sub);
        lf_reply_json(r, 200, src);
    } else if (rc < 0) {
        lf_reply_error(r, rc, &err);
    } else {
        lf_err_set(&err, -LF_ENOTFOUND, "no source %s", r->params[0]);
        lf_reply_error(r, -LF_ENOTFOUND, &err);
    }
out:
    json_decref(body);
    lf_err_clear(&err);
}

static void delete_source(struct lf_req *r)
{
    struct lf_conn *c = lf_api_conn(r, LF_DB_WRITE);
    if (c == NULL) return;
    struct lf_err err = {0};
    int rc = lf_db_run(c, &err, "DELETE FROM sources WHERE tenant_id = ? AND id = ?", "ss",
                       r->auth.tenant_id, r->params[0]);
    lf_db_release(c);
    if (rc > 0) {
        lf_auth_sources_changed(r->app);
        lf_log_info("source deleted", "{s:s, s:s}", "source", r->params[0], "by", r->auth.sub);
        lf_reply_json(r, 204, NULL);
    } else if (rc == 0) {
        lf_err_set(&err, -LF_ENOTFOUND, "no source %s", r->params[0]);
        lf_reply_error(r, -LF_ENOTFOUND, &err);
    } else {
        lf_reply_error(r, rc, &err);
    }
    lf_err_clear(&err);
}

const struct lf_route lf_sources_routes[] = {
    {"POST", "/api/v1/sources", create_source, LF_AUTH_TOKEN, LF_ROLES_ADMIN, 1, 0, 0},
    {"GET", "/api/v1/sources", list_sources, LF_AUTH_TOKEN, LF_ROLES_ADMIN, 0, 0, 0},
    {"GET", "/api/v1/sources/{id}", get_source, LF_AUTH_TOKEN, LF_ROLES_ADMIN, 0, 0, 0},
    {"PATCH", "/api/v1/sources/{id}", patch_source, LF_AUTH_TOKEN, LF_ROLES_ADMIN, 1, 0, 0},
    {"DELETE", "/api/v1/sources/{id}", delete_source, LF_AUTH_TOKEN, LF_ROLES_ADMIN, 0, 0, 0},
    {NULL, NULL, NULL, 0, 0, 0, 0, 0},
};
