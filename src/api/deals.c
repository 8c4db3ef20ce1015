/* Deals: list, get, create, patch, move, close and reopen. The deal engine (src/engine/deal.c)
 * does the work (stage history, domain events, owners' current_leads); these handlers check
 * the input, resolve slugs and hold each write in one transaction, so bad input changes
 * nothing. */
#include "api/api.h"
#include "engine/automation.h"
#include "engine/deal.h"
#include "engine/lead.h"
#include "core/crypto.h"
#include "core/log.h"
#include "core/timeutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NAME_MAX_LEN   200  /* bytes of a deal's name */
#define REASON_MAX_LEN 1000 /* bytes of a close reason */

static const char *const statuses[] = {"open", "won", "lost", NULL};

/* A stage of the tenant: by id or slug within pipeline_id, or by id alone when pipeline_id is
 * NULL. LF_DB_ROW (id written), LF_DB_DONE or negative. */
static int find_stage(struct lf_conn *c, const char *tenant, const char *pipeline_id,
                      const char *ref, char id[40])
{
    struct lf_stmt *st =
        pipeline_id ? lf_db_prepare(c,
                                    "SELECT id FROM pipeline_stages WHERE tenant_id = ?"
                                    " AND pipeline_id = ? AND (id = ? OR slug = ?)",
                                    NULL)
                    : lf_db_prepare(
                          c, "SELECT id FROM pipeline_stages WHERE tenant_id = ? AND id = ?", NULL);
    if (st == NULL) return -LF_EINTERNAL;
    if (pipeline_id)
        lf_stmt_bind(st, "ssss", tenant, pipeline_id, ref, ref);
    else
        lf_stmt_bind(st, "ss", tenant, ref);
    int rc = lf_stmt_step(st);
    if (rc == LF_DB_ROW) snprintf(id, 40, "%s", lf_stmt_text(st, 0));
    lf_stmt_done(st);
    return rc;
}

/* Answers the full deal with status, or 404 / the store's error. */
static void reply_deal(struct lf_req *r, struct lf_conn *c, const char *id, int status)
{
    int rc;
    json_t *o = lf_deal_json(c, r->auth.tenant_id, id, 1, &rc);
    lf_api_reply_found(r, o, rc, status, "deal", id);
}

/* ---- list */

/* The sorts the list accepts: the expression ordered by, and the LF_DEAL_COLS column its
 * cursor value is read from. closed_at is null while a deal is open; such deals sort as -1. */
struct sort {
    const char *name;
    const char *expr; /* fixed SQL, never from input */
    int col;
    int desc;
};
static const struct sort sorts[] = {
    {"-created_at", "created_at", 17, 1},
    {"created_at", "created_at", 17, 0},
    {"-value_cents", "value_cents", 5, 1},
    {"value_cents", "value_cents", 5, 0},
    {"-stage_entered_at", "stage_entered_at", 10, 1},
    {"stage_entered_at", "stage_entered_at", 10, 0},
    {"-closed_at", "COALESCE(closed_at, -1)", 13, 1},
    {"closed_at", "COALESCE(closed_at, -1)", 13, 0},
    {NULL, NULL, 0, 0},
};

/* An item: the deal's summary (as lf_deal_json without full); the cursor "<value>.<id>". */
static json_t *deal_row(struct lf_stmt *st, void *arg, char *cursor)
{
    const struct sort *sort = arg;
    long long v = lf_stmt_isnull(st, sort->col) ? -1 : (long long)lf_stmt_int(st, sort->col);
    snprintf(cursor, LF_CURSOR_MAX, "%lld.%s", v, lf_stmt_text(st, 0));
    json_t *o = lf_deal_row_json(st, 0);
    if (o) {
        json_object_set_new(o, "pipeline", lf_json_text(lf_stmt_text(st, LF_DEAL_NCOLS)));
        json_object_set_new(o, "stage", lf_json_text(lf_stmt_text(st, LF_DEAL_NCOLS + 1)));
    }
    return o;
}

static void list_deals(struct lf_req *r)
{
    struct lf_err err = {0};
    struct lf_query q = {0};
    struct lf_conn *c = NULL;
    const char *tenant = r->auth.tenant_id;
    char pipeline_id[40] = "", stage_id[40] = "", frag[160];
    int limit = 50, rc = 0;
    lf_req_limit(r, &limit, &err);

    const struct sort *sort = &sorts[0];
    const char *sort_arg = lf_req_query(r, "sort");
    if (sort_arg) {
        for (sort = sorts; sort->name && strcmp(sort->name, sort_arg) != 0; sort++) {
        }
        if (sort->name == NULL) {
            lf_err_field(&err, "sort",
                         "must be one of created_at, value_cents, stage_entered_at, closed_at,"
                         " each optionally with a leading '-'");
            sort = &sorts[0];
        }
    }
    /* the cursor: "<value>.<id>", the sort value and id of the previous page's last deal */
    long long cur_val;
    const char *cur_id = lf_api_cursor(r, &cur_val, &err);
    const char *status = lf_req_query(r, "status");
    if (status && !lf_api_one_of(status, statuses))
        lf_err_field(&err, "status", "must be open, won or lost");
    const char *lead = lf_req_query(r, "lead");
    if (lead && !lf_uuid_valid(lead)) lf_err_field(&err, "lead", "must be a lead id");
    const char *owner = lf_req_query(r, "owner");
    if (owner && *owner == '\0')
        lf_err_field(&err, "owner", "must be a team member's id, or none for unassigned deals");
    int64_t vmin = 0, vmax = 0, since = -1, until = -1;
    int has_min, has_max;
    lf_api_int_arg(r, "value_min", &vmin, &has_min, &err);
    lf_api_int_arg(r, "value_max", &vmax, &has_max, &err);
    lf_api_time_arg(r, "since", &since, &err);
    lf_api_time_arg(r, "until", &until, &err);
    const char *pipeline = lf_req_query(r, "pipeline"), *stage = lf_req_query(r, "stage");
    if (err.code) goto fail;

    c = lf_api_conn(r, LF_DB_READ);
    if (c == NULL) goto out;
    /* references by slug become ids; one the tenant does not have is a bad argument */
    if (pipeline) {
        rc = lf_pipeline_find(c, tenant, pipeline, pipeline_id, NULL);
        if (rc == LF_DB_DONE)
            lf_err_field(&err, "pipeline", "is not an id or slug of one of the tenant's pipelines");
    }
    if (rc >= 0 && stage && (pipeline == NULL || pipeline_id[0])) {
        rc = find_stage(c, tenant, pipeline ? pipeline_id : NULL, stage, stage_id);
        if (rc == LF_DB_DONE)
            lf_err_field(&err, "stage",
                         pipeline ? "is not an id or slug of a stage of that pipeline"
                                  : "is not a stage id of the tenant (a slug needs pipeline)");
    }
    if (rc < 0) {
        lf_reply_error(r, rc, NULL);
        goto out;
    }
    if (err.code) goto fail;

    lf_query_sql(&q, "SELECT " LF_DEAL_COLS ", (SELECT slug FROM pipelines p WHERE"
                     " p.tenant_id = deals.tenant_id AND p.id = deals.pipeline_id),"
                     " (SELECT slug FROM pipeline_stages s WHERE s.tenant_id = deals.tenant_id"
                     " AND s.id = deals.stage_id) FROM deals");
    lf_query_text(&q, " WHERE tenant_id = ?", tenant);
    if (pipeline_id[0]) lf_query_text(&q, " AND pipeline_id = ?", pipeline_id);
    if (stage_id[0]) lf_query_text(&q, " AND stage_id = ?", stage_id);
    if (status) lf_query_text(&q, " AND status = ?", status);
    if (lead) lf_query_text(&q, " AND lead_id = ?", lead);
    if (owner && strcmp(owner, "none") == 0)
        lf_query_sql(&q, " AND assigned_to IS NULL");
    else if (owner)
        lf_query_text(&q, " AND assigned_to = ?", owner);
    if (has_min) lf_query_int(&q, " AND value_cents >= ?", vmin);
    if (has_max) lf_query_int(&q, " AND value_cents <= ?", vmax);
    if (since >= 0) lf_query_int(&q, " AND created_at >= ?", since);
    if (until >= 0) lf_query_int(&q, " AND created_at < ?", until);
    if (cur_id) { /* strictly after the cursor in the sort's order, ties broken by id */
        snprintf(frag, sizeof frag, " AND (%s %s ?", sort->expr, sort->desc ? "<" : ">");
        lf_query_int(&q, frag, cur_val);
        snprintf(frag, sizeof frag, " OR (%s = ?", sort->expr);
        lf_query_int(&q, frag, cur_val);
        lf_query_text(&q, sort->desc ? " AND id < ?))" : " AND id > ?))", cur_id);
    }
    snprintf(frag, sizeof frag, " ORDER BY %s %s, id %s", sort->expr, sort->desc ? "DESC" : "ASC",
             sort->desc ? "DESC" : "ASC");
    lf_query_sql(&q, frag);
    lf_query_int(&q, " LIMIT ?", limit + 1);
    lf_api_reply_rows(r, lf_query_prepare(&q, c, &err), limit, deal_row, (void *)sort, NULL);
    goto out;
fail:
    lf_reply_error(r, err.code, &err);
out:
    if (c) lf_db_release(c);
    lf_query_free(&q);
    lf_err_clear(&err);
}

static void get_deal(struct lf_req *r)
{
    struct lf_conn *c = lf_api_conn(r, LF_DB_READ);
    if (c == NULL) return;
    reply_deal(r, c, r->params[0], 200);
    lf_db_release(c);
}

/* ---- writes */

/* An optional string member: NULL when absent or null; an error when of another type or not
 * 1..max bytes. */
static const char *opt_string(json_t *body, const char *name, size_t max, struct lf_err *err)
{
    json_t *v = json_object_get(body, name);
    if (v == NULL || json_is_null(v)) return NULL;
    if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > max) {
        lf_err_field(err, name, "must be a string of 1 to %zu characters", max);
        return NULL;
    }
    return json_string_value(v);
}

static int is_currency(const char *s)
{
    if (s == NULL || strlen(s) != 3) return 0;
    for (int i = 0; i < 3; i++)
        if (s[i] < 'A' || s[i] > 'Z') return 0;
    return 1;
}

/* Checks the members a create and a patch share: name, value_cents, currency,
 * expected_close_at (written to *close_at; -1 for null) and owner. */
static void check_fields(json_t *body, int creating, int64_t *close_at, struct lf_err *err)
{
    json_t *v = json_object_get(body, "name");
    if (v && !(creating && json_is_null(v))) {
        if (!json_is_string(v) || json_string_length(v) == 0 ||
            json_string_length(v) > NAME_MAX_LEN)
            lf_err_field(err, "name", "must be a string of 1 to %d characters", NAME_MAX_LEN);
    }
    v = json_object_get(body, "value_cents");
    if (v && (!json_is_integer(v) || json_integer_value(v) < 0 ||
              json_integer_value(v) > LF_DEAL_VALUE_MAX))
        lf_err_field(err, "value_cents", "must be a whole number of cents from 0 to %lld",
                     (long long)LF_DEAL_VALUE_MAX);
    v = json_object_get(body, "currency");
    if (v && !is_currency(json_string_value(v)))
        lf_err_field(err, "currency", "must be an ISO 4217 code: three upper-case letters");
    *close_at = -1;
    v = json_object_get(body, "expected_close_at");
    if (v && !json_is_null(v) &&
        (!json_is_string(v) || lf_time_parse(json_string_value(v), close_at) < 0))
        lf_err_field(err, "expected_close_at", "must be an RFC 3339 date-time or null");
    v = json_object_get(body, "owner");
    if (v && !json_is_null(v) && (!json_is_string(v) || json_string_length(v) == 0))
        lf_err_field(err, "owner", "must be a team member's id, or null");
}

/* POST /deals: a deal for a lead in a pipeline (one open deal per lead and pipeline). */
static void create_deal(struct lf_req *r)
{
    static const char *const allowed[] = {
        "lead_id",  "pipeline",          "stage", "name",     "value_cents",
        "currency", "expected_close_at", "owner", "strategy", NULL};
    struct lf_err err = {0};
    json_t *body = lf_req_json(r, &err);
    struct lf_deal_new d = {.expected_close_at = -1, .strategy = -1, .by = r->auth.sub};
    const char *lead = NULL, *pipeline = NULL;
    if (body) {
        lf_api_members(body, allowed, "", &err);
        lead = json_string_value(json_object_get(body, "lead_id"));
        if (lead == NULL || *lead == '\0') lf_err_field(&err, "lead_id", "is required: a lead id");
        pipeline = json_string_value(json_object_get(body, "pipeline"));
        if (pipeline == NULL || *pipeline == '\0')
            lf_err_field(&err, "pipeline", "is required: a pipeline id or slug");
        d.stage_id = opt_string(body, "stage", 100, &err);
        check_fields(body, 1, &d.expected_close_at, &err);
        d.name = json_string_value(json_object_get(body, "name"));
        d.value_cents = json_integer_value(json_object_get(body, "value_cents"));
        d.currency = json_string_value(json_object_get(body, "currency"));
        d.owner = json_string_value(json_object_get(body, "owner"));
        json_t *s = json_object_get(body, "strategy");
        if (s && !json_is_null(s) && (d.strategy = lf_strategy_parse(json_string_value(s))) < 0)
            lf_err_field(&err, "strategy", "must be round_robin, capacity_based or manual");
    }
    if (err.code) {
        lf_reply_error(r, err.code, &err);
        goto out;
    }
    struct lf_conn *c = lf_api_conn(r, LF_DB_WRITE);
    if (c == NULL) goto out;
    const char *tenant = r->auth.tenant_id;
    char lead_id[40], pipeline_id[40], id[40] = "", cause[80], op[40];
    lf_uuid7(op); /* a cause of the server's own: a client's X-Request-Id may repeat */
    snprintf(cause, sizeof cause, "api:%s", op);
    d.cause = cause;
    int64_t now = lf_now_ms();
    int rc = lf_automate_begin(c);
    if (rc == 0) { /* a merged lead's id stands for its survivor, as in the leads API */
        rc = lf_lead_resolve_id(c, tenant, lead, lead_id);
        if (rc == 0) rc = lf_err_set(&err, -LF_ENOTFOUND, "no lead %s", lead);
    }
    if (rc >= 0) {
        rc = lf_pipeline_find(c, tenant, pipeline, pipeline_id, NULL);
        if (rc == LF_DB_DONE) rc = lf_err_set(&err, -LF_ENOTFOUND, "no pipeline %s", pipeline);
    }
    if (rc >= 0) {
        d.lead_id = lead_id;
        d.pipeline_id = pipeline_id;
        rc = lf_deal_create(c, tenant, &d, now, id, &err);
        if (rc == 0) {
            rc = lf_err_set(&err, -LF_ECONFLICT,
                            "the lead has an open deal in this pipeline already: deal %s", id);
            err.ext = json_pack("{s:s}", "existing_deal_id", id);
        }
    }
    if (rc >= 0)
        rc = lf_automate_commit(c, r->auth.tenant_id, lf_now_ms(), &err);
    else
        lf_automate_rollback(c);
    if (rc >= 0) {
        lf_log_info("deal created", "{s:s, s:s, s:s, s:s}", "deal_id", id, "lead_id", lead_id,
                    "pipeline_id", pipeline_id, "by", r->auth.sub);
        reply_deal(r, c, id, 201);
    } else {
        lf_reply_error(r, rc, &err);
    }
    lf_db_release(c);
out:
    json_decref(body);
    lf_err_clear(&err);
}

/* PATCH /deals/{id}: name, value, currency, expected close and owner. Stage and status change
 * only through move, close and reopen, which keep the history. */
static void patch_deal(struct lf_req *r)
{
    static const char *const allowed[] = {"name", "value_cents", "currency", "expected_close_at",
                                          "owner"};
    static const char *const by_action[][2] = {
        {"stage", "is changed by POST /api/v1/deals/{id}/move"},
        {"stage_id", "is changed by POST /api/v1/deals/{id}/move"},
        {"status", "is changed by POST /api/v1/deals/{id}/close and /reopen"},
        {"outcome", "is changed by POST /api/v1/deals/{id}/close and /reopen"},
        {"close_reason", "is changed by POST /api/v1/deals/{id}/close and /reopen"},
        {"closed_at", "is changed by POST /api/v1/deals/{id}/close and /reopen"},
        {"assigned_to", "is changed through the member owner"},
    };
    struct lf_err err = {0};
    json_t *body = lf_req_json(r, &err);
    int64_t close_at = -1;
    if (body) {
        const char *key;
        json_t *v;
        json_object_foreach(body, key, v)
        {
            const char *why = "may not be set (allowed: name, value_cents, currency,"
                              " expected_close_at, owner)";
            int ok = 0;
            for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++)
                ok |= strcmp(key, allowed[i]) == 0;
            for (size_t i = 0; i < sizeof by_action / sizeof by_action[0]; i++)
                if (strcmp(key, by_action[i][0]) == 0) why = by_action[i][1];
            if (!ok) lf_err_field(&err, key, "%s", why);
        }
        check_fields(body, 0, &close_at, &err);
    }
    if (err.code) {
        lf_reply_error(r, err.code, &err);
        goto out;
    }
    struct lf_conn *c = lf_api_conn(r, LF_DB_WRITE);
    if (c == NULL) goto out;
    const char *tenant = r->auth.tenant_id, *id = r->params[0];
    int64_t now = lf_now_ms(), n = 0;
    int rc = lf_automate_begin(c);
    if (rc == 0)
        rc = lf_db_int(c, &err, &n, "SELECT count(*) FROM deals WHERE tenant_id = ? AND id = ?",
                       "ss", tenant, id);
    if (rc >= 0 && n == 0) rc = lf_err_set(&err, -LF_ENOTFOUND, "no deal %s", id);
    json_t *v;
    if (rc >= 0 && (v = json_object_get(body, "name")))
        rc = lf_db_run(c, &err,
                       "UPDATE deals SET name = ?, updated_at = ? WHERE tenant_id = ? AND id = ?",
                       "sIss", json_string_value(v), now, tenant, id);
    if (rc >= 0 && (v = json_object_get(body, "value_cents")))
        rc = lf_db_run(
            c, &err,
            "UPDATE deals SET value_cents = ?, updated_at = ? WHERE tenant_id = ? AND id = ?",
            "IIss", (int64_t)json_integer_value(v), now, tenant, id);
    if (rc >= 0 && (v = json_object_get(body, "currency")))
        rc = lf_db_run(
            c, &err, "UPDATE deals SET currency = ?, updated_at = ? WHERE tenant_id = ? AND id = ?",
            "sIss", json_string_value(v), now, tenant, id);
    if (rc >= 0 && json_object_get(body, "expected_close_at"))
        rc = lf_db_run(c, &err,
                       "UPDATE deals SET expected_close_at = ?, updated_at = ?"
                       " WHERE tenant_id = ? AND id = ?",
                       "NIss", close_at, now, tenant, id);
    if (rc >= 0 && (v = json_object_get(body, "owner")))
        rc = lf_deal_assign(c, tenant, id, json_string_value(v), now, &err);
    if (rc >= 0)
        rc = lf_automate_commit(c, r->auth.tenant_id, lf_now_ms(), &err);
    else
        lf_automate_rollback(c);
    if (rc >= 0)
        reply_deal(r, c, id, 200);
    else
        lf_reply_error(r, rc, &err);
    lf_db_release(c);
out:
    json_decref(body);
    lf_err_clear(&err);
}

enum action { ACT_MOVE, ACT_CLOSE, ACT_REOPEN };

/* Runs one engine call on the deal of the path in a transaction and answers the deal. */
static void run_action(struct lf_req *r, enum action act, const char *stage, const char *outcome,
                       const char *reason)
{
    struct lf_conn *c = lf_api_conn(r, LF_DB_WRITE);
    if (c == NULL) return;
    struct lf_err err = {0};
    const char *tenant = r->auth.tenant_id, *id = r->params[0], *by = r->auth.sub;
    char cause[80], op[40];
    lf_uuid7(op); /* a cause of the server's own: a client's X-Request-Id may repeat */
    snprintf(cause, sizeof cause, "api:%s", op);
    int64_t now = lf_now_ms();
    int rc = lf_automate_begin(c);
    if (rc == 0 && act == ACT_MOVE)
        rc = lf_deal_move(c, tenant, id, stage, by, cause, now, &err);
    else if (rc == 0 && act == ACT_CLOSE)
        rc = lf_deal_close(c, tenant, id, outcome, reason, by, cause, now, &err);
    else if (rc == 0)
        rc = lf_deal_reopen(c, tenant, id, by, cause, now, &err);
    if (rc >= 0)
        rc = lf_automate_commit(c, r->auth.tenant_id, lf_now_ms(), &err);
    else
        lf_automate_rollback(c);
    if (rc >= 0) {
        static const char *const what[] = {"deal moved", "deal closed", "deal reopened"};
        lf_log_info(what[act], "{s:s, s:s}", "deal_id", id, "by", by);
        reply_deal(r, c, id, 200);
    } else {
        lf_reply_error(r, rc, &err);
    }
    lf_db_release(c);
    lf_err_clear(&err);
}

/* POST /deals/{id}/move {"stage"}. */
static void move_deal(struct lf_req *r)
{
    static const char *const allowed[] = {"stage", NULL};
    struct lf_err err = {0};
    json_t *body = lf_req_json(r, &err);
    const char *stage = NULL;
    if (body) {
        lf_api_members(body, allowed, "", &err);
        stage = json_string_value(json_object_get(body, "stage"));
        if (stage == NULL || *stage == '\0')
            lf_err_field(&err, "stage", "is required: a stage id or slug of the deal's pipeline");
    }
    if (err.code)
        lf_reply_error(r, err.code, &err);
    else
        run_action(r, ACT_MOVE, stage, NULL, NULL);
    json_decref(body);
    lf_err_clear(&err);
}

/* POST /deals/{id}/close {"outcome", "reason"}. */
static void close_deal(struct lf_req *r)
{
    static const char *const allowed[] = {"outcome", "reason", NULL};
    struct lf_err err = {0};
    json_t *body = lf_req_json(r, &err);
    const char *outcome = NULL, *reason = NULL;
    if (body) {
        lf_api_members(body, allowed, "", &err);
        outcome = json_string_value(json_object_get(body, "outcome"));
        if (outcome == NULL || (strcmp(outcome, "won") != 0 && strcmp(outcome, "lost") != 0))
            lf_err_field(&err, "outcome", "is required: won or lost");
        reason = opt_string(body, "reason", REASON_MAX_LEN, &err);
    }
    if (err.code)
        lf_reply_error(r, err.code, &err);
    else
        run_action(r, ACT_CLOSE, NULL, outcome, reason);
    json_decref(body);
    lf_err_clear(&err);
}

/* POST /deals/{id}/reopen: the body may be empty or {}. */
static void reopen_deal(struct lf_req *r)
{
    struct lf_err err = {0};
    json_t *body = r->body.len ? lf_req_json(r, &err) : NULL;
    static const char *const none[] = {NULL};
    if (body) lf_api_members(body, none, "", &err);
    if (err.code)
        lf_reply_error(r, err.code, &err);
    else
        run_action(r, ACT_REOPEN, NULL, NULL, NULL);
    json_decref(body);
    lf_err_clear(&err);
}

const struct lf_route lf_deals_routes[] = {
    {"GET", "/api/v1/deals", list_deals, LF_AUTH_TOKEN, LF_ROLES_READ, 0, 0, 0},
    {"POST", "/api/v1/deals", create_deal, LF_AUTH_TOKEN, LF_ROLES_WRITE, 1, 0, 0},
    {"GET", "/api/v1/deals/{id}", get_deal, LF_AUTH_TOKEN, LF_ROLES_READ, 0, 0, 0},
    {"PATCH", "/api/v1/deals/{id}", patch_deal, LF_AUTH_TOKEN, LF_ROLES_WRITE, 1, 0, 0},
    {"POST", "/api/v1/deals/{id}/move", move_deal, LF_AUTH_TOKEN, LF_ROLES_WRITE, 1, 0, 0},
    {"POST", "/api/v1/deals/{id}/close", close_deal, LF_AUTH_TOKEN, LF_ROLES_WRITE, 1, 0, 0},
    {"POST", "/api/v1/deals/{id}/reopen", reopen_deal, LF_AUTH_TOKEN, LF_ROLES_WRITE, 0, 0, 0},
    {NULL, NULL, NULL, 0, 0, 0, 0, 0},
};
