/* Team members (the owners deals are assigned to) and reassignment: list, get, create, patch,
 * delete, and moving a member's open deals and tasks to others. Owner picking and the
 * current_leads bookkeeping are the deal engine's (src/engine/deal.h); this file only calls
 * it. current_leads and last_assigned_at are never written here directly. */
#include "api/api.h"
#include "engine/automation.h"
#include "engine/deal.h"
#include "engine/identity.h"
#include "core/crypto.h"
#include "core/log.h"
#include "core/timeutil.h"

#include <stdio.h>
#include <string.h>

#define MEMBER_COLS                                                                                \
    "id, email, name, role, region, is_active, max_leads, current_leads, last_assigned_at,"        \
    " away_until, created_at, updated_at"
#define NAME_MAX_LEN   200    /* characters of a name */
#define REGION_MAX_LEN 100    /* characters of a region */
#define MAX_LEADS_MAX  100000 /* the largest max_leads accepted */

/* The member keys a body may hold, in the order of their columns. */
static const char *const member_keys[] = {"email",     "name",      "role",      "region",
                                          "max_leads", "is_active", "away_until"};
#define NKEYS (sizeof member_keys / sizeof member_keys[0])
/* Keys of the member object that only the server writes. */
static const char *const member_readonly[] = {
    "id", "current_leads", "last_assigned_at", "load", "available", "created_at", "updated_at"};

/* A member's row (MEMBER_COLS) as JSON; available and load as of now. */
static json_t *member_json(struct lf_stmt *st, int64_t now)
{
    int active = lf_stmt_int(st, 5) != 0;
    int64_t max = lf_stmt_int(st, 6), cur = lf_stmt_int(st, 7);
    int away = !lf_stmt_isnull(st, 9) && lf_stmt_int(st, 9) > now;
    /* the same test lf_owner_pick makes */
    int available = active && !away && max > 0 && cur < max;
    return json_pack("{s:o, s:o, s:o, s:o, s:o, s:b, s:I, s:I, s:f, s:o, s:o, s:b, s:o, s:o}", "id",
                     lf_json_text(lf_stmt_text(st, 0)), "email", lf_json_text(lf_stmt_text(st, 1)),
                     "name", lf_json_text(lf_stmt_text(st, 2)), "role",
                     lf_json_text(lf_stmt_text(st, 3)), "region", lf_json_text(lf_stmt_text(st, 4)),
                     "is_active", active, "max_leads", (json_int_t)max, "current_leads",
                     (json_int_t)cur, "load", max > 0 ? (double)cur / (double)max : 0.0,
                     "last_assigned_at", lf_json_time(lf_stmt_int(st, 8), lf_stmt_isnull(st, 8)),
                     "away_until", lf_json_time(lf_stmt_int(st, 9), lf_stmt_isnull(st, 9)),
                     "available", available, "created_at", lf_json_time(lf_stmt_int(st, 10), 0),
                     "updated_at", lf_json_time(lf_stmt_int(st, 11), 0));
}

static json_t *load_member(struct lf_conn *c, const char *tenant, const char *id, int *rc)
{
    struct lf_stmt *st = lf_db_prepare(
        c, "SELECT " MEMBER_COLS " FROM team_members WHERE tenant_id = ? AND id = ?", NULL);
    if (st == NULL) {
        *rc = -LF_EINTERNAL;
        return NULL;
    }
    lf_stmt_bind(st, "ss", tenant, id);
    *rc = lf_stmt_step(st);
    json_t *o = *rc == LF_DB_ROW ? member_json(st, lf_now_ms()) : NULL;
    lf_stmt_done(st);
    return o;
}

static void reply_member(struct lf_req *r, struct lf_conn *c, const char *id, int status)
{
    int rc;
    json_t *o = load_member(c, r->auth.tenant_id, id, &rc);
    lf_api_reply_found(r, o, rc, status, "team member", id);
}

/* 0 when the member exists, -LF_ENOTFOUND (named in err) when not, or a store error. */
static int member_known(struct lf_conn *c, const char *tenant, const char *id, struct lf_err *err)
{
    int64_t n = 0;
    int rc =
        lf_db_int(c, err, &n, "SELECT count(*) FROM team_members WHERE tenant_id = ? AND id = ?",
                  "ss", tenant, id);
    if (rc < 0) return rc;
    return n ? 0 : lf_err_set(err, -LF_ENOTFOUND, "no team member %s", id);
}

/* A true|false query argument: -1 when absent, 0 or 1, or -LF_EINVAL naming it in err. */
static int bool_arg(struct lf_req *r, const char *name, struct lf_err *err)
{
    const char *v = lf_req_query(r, name);
    if (v == NULL) return -1;
    if (strcmp(v, "true") == 0) return 1;
    if (strcmp(v, "false") == 0) return 0;
    lf_err_field(err, name, "must be true or false");
    return -1;
}

static json_t *member_row(struct lf_stmt *st, void *arg, char *cursor)
{
    snprintf(cursor, LF_CURSOR_MAX, "%s", lf_stmt_text(st, 0));
    return member_json(st, *(const int64_t *)arg);
}

/* GET /team: oldest first, by id; filters role, region, is_active, available. */
static void list_team(struct lf_req *r)
{
    struct lf_err err = {0};
    struct lf_query q = {0};
    int limit;
    const char *cursor;
    int64_t now = lf_now_ms();
    lf_req_page(r, &limit, &cursor, &err);
    const char *role = lf_req_query(r, "role"), *region = lf_req_query(r, "region");
    int active = bool_arg(r, "is_active", &err), available = bool_arg(r, "available", &err);
    if (err.code) {
        lf_reply_error(r, err.code, &err);
        goto out;
    }
    lf_query_text(&q, "SELECT " MEMBER_COLS " FROM team_members WHERE tenant_id = ?",
                  r->auth.tenant_id);
    if (role) lf_query_text(&q, " AND role = ?", role);
    if (region) lf_query_text(&q, " AND lower(region) = lower(?)", region);
    if (active >= 0) lf_query_int(&q, " AND is_active = ?", active);
    if (available >= 0) {
        /* the eligibility test of lf_owner_pick, without role and region */
        lf_query_int(&q,
                     available
                         ? " AND (is_active = 1 AND (away_until IS NULL OR away_until <= ?)"
                         : " AND NOT (is_active = 1 AND (away_until IS NULL OR away_until <= ?)",
                     now);
        lf_query_sql(&q, " AND max_leads > 0 AND current_leads < max_leads)");
    }
    if (cursor) lf_query_text(&q, " AND id > ?", cursor);
    lf_query_int(&q, " ORDER BY id LIMIT ?", limit + 1);
    struct lf_conn *c = lf_api_conn(r, LF_DB_READ);
    if (c == NULL) goto out;
    lf_api_reply_rows(r, lf_query_prepare(&q, c, &err), limit, member_row, &now, NULL);
    lf_db_release(c);
out:
    lf_query_free(&q);
    lf_err_clear(&err);
}

static void get_member(struct lf_req *r)
{
    struct lf_conn *c = lf_api_conn(r, LF_DB_READ);
    if (c == NULL) return;
    reply_member(r, c, r->params[0], 200);
    lf_db_release(c);
}

/* The checked values of a member body; has[i] says whether member_keys[i] was given. */
struct member_in {
    int has[NKEYS];
    char email[LF_IDENTITY_MAX]; /* normalised */
    const char *name, *role;     /* borrowed from the body */
    const char *region;          /* NULL: null */
    int64_t max_leads;
    int is_active;
    int64_t away_until; /* -1: null */
};

/* Checks every key of body into m; required ones must be there when creating. */
static void check_member(json_t *body, int creating, struct member_in *m, struct lf_err *err)
{
    const char *key;
    json_t *v;
    json_object_foreach(body, key, v)
    {
        size_t i = 0;
        while (i < NKEYS && strcmp(key, member_keys[i]) != 0) i++;
        if (i == NKEYS) {
            int ro = 0;
            for (size_t j = 0; j < sizeof member_readonly / sizeof member_readonly[0]; j++)
                ro |= strcmp(key, member_readonly[j]) == 0;
            if (ro)
                lf_err_field(err, key, "is read-only");
            else
                lf_err_field(err, key,
                             "may not be set (allowed: email, name, role, region, max_leads,"
                             " is_active, away_until)");
            continue;
        }
        m->has[i] = 1;
        switch (i) {
        case 0: /* email */
            if (!json_is_string(v) ||
                lf_identity_normalise(LF_ID_EMAIL, json_string_value(v), m->email) < 0)
                lf_err_field(err, key, "is not a plausible email address");
            break;
        case 1: /* name */
            if (!json_is_string(v) || lf_api_chars(v) == 0 || lf_api_chars(v) > NAME_MAX_LEN)
                lf_err_field(err, key, "must be a string of 1 to %d characters", NAME_MAX_LEN);
            m->name = json_string_value(v);
            break;
        case 2: /* role */
            if (!lf_api_is_slug(json_string_value(v)))
                lf_err_field(err, key,
                             "must be a slug: 1 to 63 of a-z, 0-9, '_' and '-', such as"
                             " account_executive");
            m->role = json_string_value(v);
            break;
        case 3: /* region */
            if (!json_is_null(v) &&
                (!json_is_string(v) || lf_api_chars(v) == 0 || lf_api_chars(v) > REGION_MAX_LEN))
                lf_err_field(err, key, "must be a string of 1 to %d characters, or null",
                             REGION_MAX_LEN);
            m->region = json_string_value(v);
            break;
        case 4: /* max_leads */
            if (!json_is_integer(v) || json_integer_value(v) < 1 ||
                json_integer_value(v) > MAX_LEADS_MAX)
                lf_err_field(err, key, "must be a whole number from 1 to %d", MAX_LEADS_MAX);
            m->max_leads = json_integer_value(v);
            break;
        case 5: /* is_active */
            if (!json_is_boolean(v)) lf_err_field(err, key, "must be true or false");
            m->is_active = json_is_true(v);
            break;
        default: /* away_until */
            m->away_until = -1;
            if (!json_is_null(v) &&
                (!json_is_string(v) || lf_time_parse(json_string_value(v), &m->away_until) < 0))
                lf_err_field(err, key, "must be an RFC 3339 date-time, or null");
        }
    }
    static const int required[] = {0, 1, 2};
    for (size_t i = 0; creating && i < sizeof required / sizeof required[0]; i++)
        if (!m->has[required[i]]) lf_err_field(err, member_keys[required[i]], "is required");
}

/* Writes one checked key (member_keys[i]) of m to the member's row. */
static int set_key(struct lf_conn *c, const char *tenant, const char *id, size_t i,
                   const struct member_in *m, struct lf_err *err)
{
    char sql[128];
    /* the column is a name from member_keys, never from input */
    snprintf(sql, sizeof sql, "UPDATE team_members SET %s = ? WHERE tenant_id = ? AND id = ?",
             member_keys[i]);
    switch (i) {
    case 0: return lf_db_run(c, err, sql, "sss", m->email, tenant, id);
    case 1: return lf_db_run(c, err, sql, "sss", m->name, tenant, id);
    case 2: return lf_db_run(c, err, sql, "sss", m->role, tenant, id);
    case 3: return lf_db_run(c, err, sql, "sss", m->region, tenant, id);
    case 4: return lf_db_run(c, err, sql, "Iss", m->max_leads, tenant, id);
    case 5: return lf_db_run(c, err, sql, "iss", m->is_active, tenant, id);
    default: return lf_db_run(c, err, sql, "Nss", m->away_until, tenant, id);
    }
}

/* POST /team (creating) and PATCH /team/{id}: all keys or none, in one transaction. */
static void save_member(struct lf_req *r, int creating)
{
    struct lf_err err = {0};
    struct member_in m = {.max_leads = 50, .is_active = 1, .away_until = -1};
    json_t *body = lf_req_json(r, &err);
    if (body) check_member(body, creating, &m, &err);
    if (err.code) {
        lf_reply_error(r, err.code, &err);
        goto out;
    }
    struct lf_conn *c = lf_api_conn(r, LF_DB_WRITE);
    if (c == NULL) goto out;
    const char *tenant = r->auth.tenant_id;
    char id[40];
    int64_t now = lf_now_ms();
    int rc = lf_automate_begin(c);
    if (rc == 0 && creating) {
        lf_uuid7(id);
        rc = lf_db_run(c, &err,
                       "INSERT INTO team_members (id, tenant_id, email, name, role, region,"
                       " is_active, max_leads, current_leads, away_until, created_at, updated_at)"
                       " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?)",
                       "ssssssiINII", id, tenant, m.email, m.name, m.role, m.region, m.is_active,
                       m.max_leads, m.away_until, now, now);
    } else if (rc == 0) {
        snprintf(id, sizeof id, "%s", r->params[0]);
        rc = lf_db_run(c, &err,
                       "UPDATE team_members SET updated_at = ? WHERE tenant_id = ? AND id = ?",
                       "Iss", now, tenant, id);
        if (rc == 0) rc = lf_err_set(&err, -LF_ENOTFOUND, "no team member %s", id);
        for (size_t i = 0; rc >= 0 && i < NKEYS; i++)
            if (m.has[i]) rc = set_key(c, tenant, id, i, &m, &err);
    }
    if (rc == -LF_ECONSTRAINT) { /* the only unique key besides the id */
        lf_err_clear(&err);
        lf_err_field(&err, "email", "belongs to another team member");
        rc = -LF_ECONFLICT;
    }
    if (rc >= 0)
        rc = lf_automate_commit(c, r->auth.tenant_id, lf_now_ms(), &err);
    else
        lf_automate_rollback(c);
    if (rc >= 0) {
        lf_log_info(creating ? "team member created" : "team member changed", "{s:s, s:s}",
                    "member_id", id, "by", r->auth.sub);
        reply_member(r, c, id, creating ? 201 : 200);
    } else {
        lf_reply_error(r, rc, &err);
    }
    lf_db_release(c);
out:
    json_decref(body);
    lf_err_clear(&err);
}

static void create_member(struct lf_req *r)
{
    save_member(r, 1);
}

static void patch_member(struct lf_req *r)
{
    save_member(r, 0);
}

/* DELETE /team/{id}: refused while the member owns open deals; their open tasks become
 * unassigned; closed deals and finished tasks keep the id as history. */
static void delete_member(struct lf_req *r)
{
    struct lf_conn *c = lf_api_conn(r, LF_DB_WRITE);
    if (c == NULL) return;
    struct lf_err err = {0};
    const char *tenant = r->auth.tenant_id, *id = r->params[0];
    int64_t now = lf_now_ms(), open = 0;
    int rc = lf_automate_begin(c);
    if (rc == 0) rc = member_known(c, tenant, id, &err);
    if (rc >= 0)
        rc = lf_db_int(c, &err, &open,
                       "SELECT count(*) FROM deals WHERE tenant_id = ? AND assigned_to = ?"
                       " AND status = 'open'",
                       "ss", tenant, id);
    if (rc >= 0 && open > 0) {
        rc = lf_err_set(&err, -LF_ECONFLICT,
                        "team member %s owns %lld open deal%s; reassign %s first"
                        " (POST /api/v1/team/%s/reassign)",
                        id, (long long)open, open == 1 ? "" : "s", open == 1 ? "it" : "them", id);
        err.ext = json_pack("{s:I}", "open_deals", (json_int_t)open);
    }
    if (rc >= 0)
        rc = lf_db_run(c, &err,
                       "UPDATE tasks SET assigned_to = NULL, updated_at = ? WHERE tenant_id = ?"
                       " AND assigned_to = ? AND status = 'open'",
                       "Iss", now, tenant, id);
    if (rc >= 0)
        rc = lf_db_run(c, &err, "DELETE FROM team_members WHERE tenant_id = ? AND id = ?", "ss",
                       tenant, id);
    if (rc >= 0)
        rc = lf_automate_commit(c, r->auth.tenant_id, lf_now_ms(), &err);
    else
        lf_automate_rollback(c);
    lf_db_release(c);
    if (rc >= 0) {
        lf_log_info("team member deleted", "{s:s, s:s}", "member_id", id, "by", r->auth.sub);
        lf_reply_json(r, 204, NULL);
    } else {
        lf_reply_error(r, rc, &err);
    }
    lf_err_clear(&err);
}

/* The member's open deals with what picking an owner for each needs: [{id, role, region}]. */
static json_t *open_deals(struct lf_conn *c, const char *tenant, const char *member, int *rc)
{
    struct lf_stmt *st = lf_db_prepare(
        c,
        "SELECT d.id, p.owner_role, l.region FROM deals d"
        " LEFT JOIN pipelines p ON p.tenant_id = d.tenant_id AND p.id = d.pipeline_id"
        " LEFT JOIN leads l ON l.tenant_id = d.tenant_id AND l.id = d.lead_id"
        " WHERE d.tenant_id = ? AND d.assigned_to = ? AND d.status = 'open' ORDER BY d.id",
        NULL);
    if (st == NULL) {
        *rc = -LF_EINTERNAL;
        return NULL;
    }
    json_t *deals = json_array();
    lf_stmt_bind(st, "ss", tenant, member);
    while ((*rc = lf_stmt_step(st)) == LF_DB_ROW)
        json_array_append_new(deals, json_pack("{s:s, s:o, s:o}", "id", lf_stmt_text(st, 0), "role",
                                               lf_json_text(lf_stmt_text(st, 1)), "region",
                                               lf_json_text(lf_stmt_text(st, 2))));
    lf_stmt_done(st);
    if (*rc < 0) {
        json_decref(deals);
        return NULL;
    }
    return deals;
}

/* POST /team/{id}/reassign {"to": member} | {"strategy": "round_robin"|"capacity_based"}:
 * every open deal of the member to `to`, or to whom the strategy picks for it (never the
 * member); the member's open tasks on a moved deal follow it, and with `to` all their other
 * open tasks too. Deals nobody can take stay and are listed in "left". One transaction. */
static void reassign(struct lf_req *r)
{
    struct lf_err err = {0};
    json_t *body = lf_req_json(r, &err), *deals = NULL, *moved = json_array(), *left = json_array();
    const char *tenant = r->auth.tenant_id, *member = r->params[0], *to = NULL;
    int strategy = -1;
    struct lf_conn *c = NULL;
    if (body) {
        const char *key;
        json_t *v;
        json_object_foreach(body, key, v)
        {
            if (strcmp(key, "to") != 0 && strcmp(key, "strategy") != 0)
                lf_err_field(&err, key, "may not be set (allowed: to, strategy)");
        }
        json_t *tv = json_object_get(body, "to"), *sv = json_object_get(body, "strategy");
        if ((tv == NULL) == (sv == NULL))
            lf_err_field(&err, "to",
                         "give exactly one of to (a team member id) and strategy"
                         " (round_robin or capacity_based)");
        if (tv && !json_is_string(tv)) lf_err_field(&err, "to", "must be a team member id");
        to = json_string_value(tv);
        if (to && strcmp(to, member) == 0)
            lf_err_field(&err, "to", "is the member whose deals are reassigned");
        if (sv) {
            strategy = lf_strategy_parse(json_string_value(sv));
            if (strategy != LF_ASSIGN_ROUND_ROBIN && strategy != LF_ASSIGN_CAPACITY)
                lf_err_field(&err, "strategy", "must be round_robin or capacity_based");
        }
    }
    if (err.code) {
        lf_reply_error(r, err.code, &err);
        goto out;
    }
    if ((c = lf_api_conn(r, LF_DB_WRITE)) == NULL) goto out;
    int64_t now = lf_now_ms();
    int64_t tasks = 0;
    int rc = lf_automate_begin(c);
    if (rc == 0) rc = member_known(c, tenant, member, &err);
    if (rc >= 0 && to) rc = member_known(c, tenant, to, &err);
    if (rc >= 0) deals = open_deals(c, tenant, member, &rc);
    size_t i;
    json_t *d;
    json_array_foreach(deals, i, d)
    {
        if (rc < 0) break;
        const char *deal = json_string_value(json_object_get(d, "id"));
        char owner[40] = "";
        if (to) {
            snprintf(owner, sizeof owner, "%s", to);
        } else {
            rc = lf_owner_pick(c, tenant, json_string_value(json_object_get(d, "role")),
                               json_string_value(json_object_get(d, "region")), strategy, member,
                               now, owner);
            if (rc == 0) {
                json_array_append_new(left, json_string(deal));
                continue;
            }
        }
        if (rc >= 0) rc = lf_deal_assign(c, tenant, deal, owner, now, &err);
        if (rc >= 0)
            rc = lf_db_run(c, &err,
                           "UPDATE tasks SET assigned_to = ?, updated_at = ? WHERE tenant_id = ?"
                           " AND deal_id = ? AND assigned_to = ? AND status = 'open'",
                           "sIsss", owner, now, tenant, deal, member);
        if (rc >= 0) {
            tasks += rc;
            json_array_append_new(moved, json_pack("{s:s, s:s}", "deal_id", deal, "to", owner));
        }
    }
    if (rc >= 0 && to) {
        rc = lf_db_run(c, &err,
                       "UPDATE tasks SET assigned_to = ?, updated_at = ? WHERE tenant_id = ?"
                       " AND assigned_to = ? AND status = 'open'",
                       "sIss", to, now, tenant, member);
        if (rc >= 0) tasks += rc;
    }
    if (rc >= 0)
        rc = lf_automate_commit(c, r->auth.tenant_id, lf_now_ms(), &err);
    else
        lf_automate_rollback(c);
    lf_db_release(c);
    if (rc >= 0) {
        lf_log_info("team member reassigned", "{s:s, s:I, s:I, s:s}", "member_id", member, "deals",
                    (json_int_t)json_array_size(moved), "left", (json_int_t)json_array_size(left),
                    "by", r->auth.sub);
        lf_reply_json(r, 200,
                      json_pack("{s:I, s:O, s:O, s:I}", "reassigned",
                                (json_int_t)json_array_size(moved), "left", left, "deals", moved,
                                "tasks_reassigned", (json_int_t)tasks));
    } else {
        lf_reply_error(r, rc, &err);
    }
out:
    json_decref(deals);
    json_decref(moved);
    json_decref(left);
    json_decref(body);
    lf_err_clear(&err);
}

const struct lf_route lf_team_routes[] = {
    {"GET", "/api/v1/team", list_team, LF_AUTH_TOKEN, LF_ROLES_READ, 0, 0, 0},
    {"POST", "/api/v1/team", create_member, LF_AUTH_TOKEN, LF_ROLES_MANAGE, 1, 0, 0},
    {"GET", "/api/v1/team/{id}", get_member, LF_AUTH_TOKEN, LF_ROLES_READ, 0, 0, 0},
    {"PATCH", "/api/v1/team/{id}", patch_member, LF_AUTH_TOKEN, LF_ROLES_MANAGE, 1, 0, 0},
    {"DELETE", "/api/v1/team/{id}", delete_member, LF_AUTH_TOKEN, LF_ROLES_MANAGE, 0, 0, 0},
    {"POST", "/api/v1/team/{id}/reassign", reassign, LF_AUTH_TOKEN, LF_ROLES_MANAGE, 1, 0, 0},
    {NULL, NULL, NULL, 0, 0, 0, 0, 0},
};
