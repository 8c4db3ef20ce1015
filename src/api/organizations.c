/* The organizations resource: list (q, domain), get with its leads, create, patch, delete. */
#include "api/api.h"
#include "engine/lead.h"
#include "engine/settings.h"
#include "core/crypto.h"
#include "core/log.h"
#include "core/timeutil.h"

#include <stdio.h>
#include <string.h>

#define ORG_COLS                                                                                   \
    "id, name, domain, vat_id, country, industry, size, moco_id, created_at, updated_at"
#define ORG_LEADS 100

/* The writable fields, as column and JSON key. */
static const char *const org_fields[] = {"name", "domain", "vat_id", "country", "industry", "size"};
#define NORG (sizeof org_fields / sizeof org_fields[0])

static json_t *org_json(struct lf_stmt *st)
{
    json_t *o = json_pack("{s:s, s:s}", "id", lf_stmt_text(st, 0), "name", lf_stmt_text(st, 1));
    for (int i = 2; i < 8; i++)
        json_object_set_new(o, lf_stmt_name(st, i), lf_json_text(lf_stmt_text(st, i)));
    json_object_set_new(o, "created_at", lf_json_time(lf_stmt_int(st, 8), 0));
    json_object_set_new(o, "updated_at", lf_json_time(lf_stmt_int(st, 9), 0));
    return o;
}

/* Lower-cases a domain in place; 1 when it looks like one. */
static int domain_ok(char *d)
{
    size_t n = strlen(d);
    if (n < 3 || n > 200 || strchr(d, '.') == NULL || strchr(d, '@') || strchr(d, '/') ||
        strchr(d, ' '))
        return 0;
    for (char *p = d; *p; p++)
        if (*p >= 'A' && *p <= 'Z') *p = (char)(*p + 32);
    return 1;
}

/* Validates body's fields; copies a normalised domain into domain (256 bytes). */
static void check_org(json_t *body, int creating, char *domain, struct lf_err *err)
{
    const char *key;
    json_t *v;
    json_object_foreach(body, key, v)
    {
        int known = 0;
        for (size_t i = 0; i < NORG; i++) known |= strcmp(key, org_fields[i]) == 0;
        if (!known)
            lf_err_field(err, key,
                         "may not be set (allowed: name, domain, vat_id, country, "
                         "industry, size)");
        else if (!json_is_null(v) && (!json_is_string(v) || json_string_length(v) > 200))
            lf_err_field(err, key, "must be a string of at most 200 characters");
    }
    json_t *name = json_object_get(body, "name");
    if ((creating && name == NULL) ||
        (name && (!json_is_string(name) || !json_string_length(name))))
        lf_err_field(err, "name", "is required");
    const char *d = json_string_value(json_object_get(body, "domain"));
    if (d) {
        snprintf(domain, 256, "%s", d);
        if (!domain_ok(domain)) lf_err_field(err, "domain", "must be a domain such as lab.example");
    }
}

static json_t *load_org(struct lf_conn *c, const char *tenant, const char *id, int *rc)
{
    struct lf_stmt *st = lf_db_prepare(
        c, "SELECT " ORG_COLS " FROM organizations WHERE tenant_id = ? AND id = ?", NULL);
    if (st == NULL) {
        *rc = -LF_EINTERNAL;
        return NULL;
    }
    lf_stmt_bind(st, "ss", tenant, id);
    *rc = lf_stmt_step(st);
    json_t *o = *rc == LF_DB_ROW ? org_json(st) : NULL;
    lf_stmt_done(st);
    return o;
}

static void reply_org(struct lf_req *r, struct lf_conn *c, const char *id, int status, int leads)
{
    struct lf_err err = {0};
    int rc;
    json_t *o = load_org(c, r->auth.tenant_id, id, &rc);
    if (o == NULL) {
        if (rc >= 0) lf_err_set(&err, -LF_ENOTFOUND, "no organization %s", id);
        lf_reply_error(r, rc >= 0 ? -LF_ENOTFOUND : rc, &err);
        lf_err_clear(&err);
        return;
    }
    if (leads) {
        json_t *tiers = lf_settings_get(c, r->auth.tenant_id, "tiers");
        json_t *list = json_array();
        int64_t count = 0;
        lf_db_int(c, NULL, &count,
                  "SELECT count(*) FROM leads WHERE tenant_id = ? AND organization_id = ?"
                  " AND merged_into IS NULL AND erased_at IS NULL",
                  "ss", r->auth.tenant_id, id);
        struct lf_stmt *st = lf_db_prepare(c,
                                           "SELECT " LF_LEAD_COLS " FROM leads WHERE tenant_id = ?"
                                           " AND organization_id = ? AND merged_into IS NULL"
                                           " AND erased_at IS NULL"
                                           " ORDER BY total_score DESC, id LIMIT ?",
                                           NULL);
        if (st) {
            lf_stmt_bind(st, "ssi", r->auth.tenant_id, id, ORG_LEADS);
            while (lf_stmt_step(st) == LF_DB_ROW)
                json_array_append_new(list, lf_lead_row_json(st, tiers));
            lf_stmt_done(st);
        }
        json_decref(tiers);
        json_object_set_new(o, "lead_count", json_integer(count));
        json_object_set_new(o, "leads", list);
    }
    lf_reply_json(r, status, o);
}

static json_t *org_row(struct lf_stmt *st, void *arg, char *cursor)
{
    (void)arg;
    snprintf(cursor, LF_CURSOR_MAX, "%s", lf_stmt_text(st, 0));
    return org_json(st);
}

static void list_orgs(struct lf_req *r)
{
    struct lf_err err = {0};
    struct lf_query q = {0};
    int limit;
    const char *cursor;
    lf_req_page(r, &limit, &cursor, &err);
    const char *text = lf_req_query(r, "q"), *domain = lf_req_query(r, "domain");
    if (text && (strlen(text) == 0 || strlen(text) > 100))
        lf_err_field(&err, "q", "must be 1 to 100 characters");
    if (err.code) {
        lf_reply_error(r, err.code, &err);
        goto out;
    }
    lf_query_text(&q, "SELECT " ORG_COLS " FROM organizations WHERE tenant_id = ?",
                  r->auth.tenant_id);
    if (domain) lf_query_text(&q, " AND domain = lower(?)", domain);
    if (text) {
        char *pat = lf_api_like(&r->arena, text);
        lf_query_text(&q, " AND (lower(name) LIKE ? ESCAPE '\\'", pat);
        lf_query_text(&q, " OR domain LIKE ? ESCAPE '\\')", pat);
    }
    if (cursor) lf_query_text(&q, " AND id > ?", cursor);
    lf_query_int(&q, " ORDER BY id LIMIT ?", limit + 1);
    struct lf_conn *c = lf_api_conn(r, LF_DB_READ);
    if (c == NULL) goto out;
    lf_api_reply_rows(r, lf_query_prepare(&q, c, &err), limit, org_row, NULL, NULL);
    lf_db_release(c);
out:
    lf_query_free(&q);
    lf_err_clear(&err);
}

static void get_org(struct lf_req *r)
{
    struct lf_conn *c = lf_api_conn(r, LF_DB_READ);
    if (c == NULL) return;
    reply_org(r, c, r->params[0], 200, 1);
    lf_db_release(c);
}

/* Writes the fields of body (create: a new row with id; patch: the given ones). */
static void save_org(struct lf_req *r, int creating)
{
    struct lf_err err = {0};
    char domain[256] = "";
    json_t *body = lf_req_json(r, &err);
    if (body) check_org(body, creating, domain, &err);
    if (err.code) {
        lf_reply_error(r, err.code, &err);
        json_decref(body);
        lf_err_clear(&err);
        return;
    }
    struct lf_conn *c = lf_api_conn(r, LF_DB_WRITE);
    if (c == NULL) {
        json_decref(body);
        return;
    }
    char id[40];
    int64_t now = lf_now_ms();
    int rc = lf_db_begin(c); /* all fields or none */
    if (rc == 0 && creating) {
        lf_uuid7(id);
        rc = lf_db_run(c, &err,
                       "INSERT INTO organizations (id, tenant_id, name, created_at, updated_at)"
                       " VALUES (?, ?, ?, ?, ?)",
                       "sssII", id, r->auth.tenant_id,
                       json_string_value(json_object_get(body, "name")), now, now);
    } else if (rc == 0) {
        snprintf(id, sizeof id, "%s", r->params[0]);
        rc = lf_db_run(c, &err,
                       "UPDATE organizations SET updated_at = ? WHERE tenant_id = ? AND id = ?",
                       "Iss", now, r->auth.tenant_id, id);
        if (rc == 0) rc = lf_err_set(&err, -LF_ENOTFOUND, "no organization %s", id);
    }
    for (size_t i = 1; rc >= 0 && i < NORG; i++) { /* name is set above for creates */
        json_t *v = json_object_get(body, org_fields[i]);
        if (v == NULL) continue;
        char sql[128];
        snprintf(sql, sizeof sql, "UPDATE organizations SET %s = ? WHERE tenant_id = ? AND id = ?",
                 org_fields[i]);
        rc = lf_db_run(c, &err, sql, "sss", i == 1 && domain[0] ? domain : json_string_value(v),
                       r->auth.tenant_id, id);
    }
    if (rc >= 0 && !creating && json_is_string(json_object_get(body, "name")))
        rc = lf_db_run(c, &err, "UPDATE organizations SET name = ? WHERE tenant_id = ? AND id = ?",
                       "sss", json_string_value(json_object_get(body, "name")), r->auth.tenant_id,
                       id);
    if (rc == -LF_ECONSTRAINT) {
        lf_err_clear(&err);
        lf_err_field(&err, "domain", "belongs to another organization");
        rc = -LF_ECONFLICT;
    }
    if (rc >= 0)
        rc = lf_db_commit(c);
    else
        lf_db_rollback(c);
    if (rc >= 0)
        reply_org(r, c, id, creating ? 201 : 200, 0);
    else
        lf_reply_error(r, rc, &err);
    lf_db_release(c);
    json_decref(body);
    lf_err_clear(&err);
}

static void create_org(struct lf_req *r)
{
    save_org(r, 1);
}

static void patch_org(struct lf_req *r)
{
    save_org(r, 0);
}

static void delete_org(struct lf_req *r)
{
    struct lf_conn *c = lf_api_conn(r, LF_DB_WRITE);
    if (c == NULL) return;
    struct lf_err err = {0};
    int64_t now = lf_now_ms();
    int rc = lf_db_begin(c);
    if (rc == 0)
        rc = lf_db_run(c, &err,
                       "UPDATE leads SET organization_id = NULL, updated_at = ? WHERE tenant_id = ?"
                       " AND organization_id = ?",
                       "Iss", now, r->auth.tenant_id, r->params[0]);
    if (rc >= 0)
        rc = lf_db_run(c, &err, "DELETE FROM organizations WHERE tenant_id = ? AND id = ?", "ss",
                       r->auth.tenant_id, r->params[0]);
    if (rc == 0) rc = lf_err_set(&err, -LF_ENOTFOUND, "no organization %s", r->params[0]);
    if (rc > 0)
        rc = lf_db_commit(c);
    else
        lf_db_rollback(c);
    lf_db_release(c);
    if (rc == 0)
        lf_reply_json(r, 204, NULL);
    else
        lf_reply_error(r, rc, &err);
    lf_err_clear(&err);
}

const struct lf_route lf_organizations_routes[] = {
    {"GET", "/api/v1/organizations", list_orgs, LF_AUTH_TOKEN, LF_ROLES_READ, 0, 0, 0},
    {"POST", "/api/v1/organizations", create_org, LF_AUTH_TOKEN, LF_ROLES_WRITE, 1, 0, 0},
    {"GET", "/api/v1/organizations/{id}", get_org, LF_AUTH_TOKEN, LF_ROLES_READ, 0, 0, 0},
    {"PATCH", "/api/v1/organizations/{id}", patch_org, LF_AUTH_TOKEN, LF_ROLES_WRITE, 1, 0, 0},
    {"DELETE", "/api/v1/organizations/{id}", delete_org, LF_AUTH_TOKEN, LF_ROLES_MANAGE, 0, 0, 0},
    {NULL, NULL, NULL, 0, 0, 0, 0, 0},
};
