/* Automation rules (list, get, create, change, delete, enable, disable, the dry run) and the
 * automation log. A rule body is checked by the engine (lf_auto_rule_check) inside the
 * transaction that saves it, since its references to pipelines, stages, members and
 * subscriptions are looked up and stage slugs become ids. Every rule change bumps the tenant's
 * rule version in its transaction: events processed after it use the new rules. */
#include "api/api.h"
#include "engine/automation.h"
#include "engine/lead.h"
#include "engine/rules.h"
#include "core/crypto.h"
#include "core/log.h"
#include "core/timeutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RULES_MAX 1000 /* rules a list answers at most, in one page */

#define RULE_COLS                                                                                  \
    "id, name, description, trigger_type, trigger_config, action_type, action_config, priority,"   \
    " is_active, max_executions_per_hour, last_executed_at, execution_count, created_at,"          \
    " updated_at"

/* The members of the rule object, in the order of RULE_COLS, and how each column reads:
 * s text or null, j stored JSON, i integer, n integer or null, b bool, t time or null. */
static const struct {
    const char *name;
    char type;
} rule_members[] = {
    {"id", 's'},
    {"name", 's'},
    {"description", 's'},
    {"trigger_type", 's'},
    {"trigger_config", 'j'},
    {"action_type", 's'},
    {"action_config", 'j'},
    {"priority", 'i'},
    {"is_active", 'b'},
    {"max_executions_per_hour", 'n'},
    {"last_executed_at", 't'},
    {"execution_count", 'i'},
    {"created_at", 't'},
    {"updated_at", 't'},
    {NULL, 0},
};

static const char *const log_statuses[] = {"executed", "failed", "skipped", NULL};

/* The rule object of the current row of st (selected as RULE_COLS). */
static json_t *rule_json(struct lf_stmt *st)
{
    json_t *o = json_object();
    for (int i = 0; rule_members[i].name; i++) {
        json_t *v;
        switch (rule_members[i].type) {
        case 'j': v = lf_json_parse(lf_stmt_text(st, i)); break;
        case 'i': v = json_integer(lf_stmt_int(st, i)); break;
        case 'n': v = lf_stmt_isnull(st, i) ? json_null() : json_integer(lf_stmt_int(st, i)); break;
        case 'b': v = json_boolean(lf_stmt_int(st, i)); break;
        case 't': v = lf_json_time(lf_stmt_int(st, i), lf_stmt_isnull(st, i)); break;
        default: v = lf_json_text(lf_stmt_text(st, i));
        }
        json_object_set_new(o, rule_members[i].name, v);
    }
    return o;
}

/* The tenant's rule id as an object; NULL with *rc LF_DB_DONE when there is none, or a
 * negative code. */
static json_t *load_rule(struct lf_conn *c, const char *tenant, const char *id, int *rc)
{
    struct lf_stmt *st = lf_db_prepare(
        c, "SELECT " RULE_COLS " FROM automation_rules WHERE tenant_id = ? AND id = ?", NULL);
    if (st == NULL) {
        *rc = -LF_EINTERNAL;
        return NULL;
    }
    lf_stmt_bind(st, "ss", tenant, id);
    json_t *o = (*rc = lf_stmt_step(st)) == LF_DB_ROW ? rule_json(st) : NULL;
    lf_stmt_done(st);
    return o;
}

/* Answers the rule id with status, or 404 / the store's error. */
static void reply_rule(struct lf_req *r, struct lf_conn *c, const char *id, int status)
{
    int rc;
    json_t *o = load_rule(c, r->auth.tenant_id, id, &rc);
    lf_api_reply_found(r, o, rc, status, "automation rule", id);
}

/* ---- rules */

/* GET /automation/rules: every rule (at most RULES_MAX) by priority, creation and id;
 * filters trigger_type, action_type, is_active. */
static void list_rules(struct lf_req *r)
{
    struct lf_err err = {0};
    struct lf_query q = {0};
    const char *trigger = lf_req_query(r, "trigger_type");
    const char *action = lf_req_query(r, "action_type");
    const char *active = lf_req_query(r, "is_active");
    if (trigger && lf_auto_trigger_parse(trigger) < 0)
        lf_err_field(&err, "trigger_type",
                     "must be one of event, score_threshold, intent_detected, stage_entered,"
                     " time_in_stage");
    if (action && lf_auto_action_parse(action) < 0)
        lf_err_field(&err, "action_type",
                     "must be one of move_to_stage, assign_owner, send_notification,"
                     " create_task, sync_moco, update_field, route_to_pipeline, send_webhook");
    if (active && !lf_api_one_of(active, (const char *const[]){"true", "false", "1", "0", NULL}))
        lf_err_field(&err, "is_active", "must be true or false");
    if (err.code) {
        lf_reply_error(r, err.code, &err);
        goto out;
    }
    lf_query_text(&q, "SELECT " RULE_COLS " FROM automation_rules WHERE tenant_id = ?",
                  r->auth.tenant_id);
    if (trigger) lf_query_text(&q, " AND trigger_type = ?", trigger);
    if (action) lf_query_text(&q, " AND action_type = ?", action);
    if (active)
        lf_query_int(&q, " AND is_active = ?", !strcmp(active, "true") || !strcmp(active, "1"));
    lf_query_int(&q, " ORDER BY priority, created_at, id LIMIT ?", RULES_MAX);
    struct lf_conn *c = lf_api_conn(r, LF_DB_READ);
    if (c == NULL) goto out;
    struct lf_stmt *st = lf_query_prepare(&q, c, &err);
    json_t *items = json_array();
    int rc = st ? 0 : -LF_EINTERNAL;
    while (st && (rc = lf_stmt_step(st)) == LF_DB_ROW) json_array_append_new(items, rule_json(st));
    if (st) lf_stmt_done(st);
    lf_db_release(c);
    if (rc < 0) {
        json_decref(items);
        lf_reply_error(r, rc, &err);
    } else {
        lf_reply_json(r, 200, lf_api_page(items, NULL));
    }
out:
    lf_query_free(&q);
    lf_err_clear(&err);
}

static void get_rule(struct lf_req *r)
{
    struct lf_conn *c = lf_api_conn(r, LF_DB_READ);
    if (c == NULL) return;
    reply_rule(r, c, r->params[0], 200);
    lf_db_release(c);
}

/* Sets one column of the rule to a checked body value, bound by its JSON type. col is a key
 * lf_auto_rule_check accepted, so one of the rule's column names. */
static int set_column(struct lf_conn *c, const char *tenant, const char *id, const char *col,
                      json_t *v, struct lf_err *err)
{
    char sql[160];
    snprintf(sql, sizeof sql, "UPDATE automation_rules SET %s = ? WHERE tenant_id = ? AND id = ?",
             col);
    if (json_is_null(v)) return lf_db_run(c, err, sql, "nss", tenant, id);
    if (json_is_boolean(v)) return lf_db_run(c, err, sql, "iss", json_is_true(v), tenant, id);
    if (json_is_integer(v))
        return lf_db_run(c, err, sql, "Iss", (int64_t)json_integer_value(v), tenant, id);
    if (json_is_string(v)) return lf_db_run(c, err, sql, "sss", json_string_value(v), tenant, id);
    char *text = lf_json_dump(v); /* trigger_config, action_config */
    int rc = lf_db_run(c, err, sql, "sss", text, tenant, id);
    free(text);
    return rc;
}

/* POST /automation/rules (creating) and PATCH /automation/rules/{id}: the body is checked on
 * the writer in the transaction that saves it, so the pipelines, stages, members and
 * subscriptions it names cannot change in between. */
static void save_rule(struct lf_req *r, int creating)
{
    struct lf_err err = {0};
    json_t *body = lf_req_json(r, &err), *current = NULL;
    if (body == NULL) {
        lf_reply_error(r, err.code, &err);
        lf_err_clear(&err);
        return;
    }
    struct lf_conn *c = lf_api_conn(r, LF_DB_WRITE);
    if (c == NULL) {
        json_decref(body);
        return;
    }
    const char *tenant = r->auth.tenant_id;
    char id[40] = "";
    int64_t now = lf_now_ms();
    int rc = lf_db_begin(c);
    if (rc == 0 && !creating) {
        snprintf(id, sizeof id, "%s", r->params[0]);
        current = load_rule(c, tenant, id, &rc);
        if (current == NULL && rc >= 0)
            rc = lf_err_set(&err, -LF_ENOTFOUND, "no automation rule %s", r->params[0]);
    }
    if (rc >= 0) rc = lf_auto_rule_check(c, tenant, body, creating, current, &err);
    if (rc >= 0 && creating) {
        /* the required columns and the defaults; the body's members are set below */
        lf_uuid7(id);
        rc = lf_db_run(c, &err,
                       "INSERT INTO automation_rules (id, tenant_id, name, description,"
                       " trigger_type, trigger_config, action_type, action_config, priority,"
                       " is_active, max_executions_per_hour, execution_count, created_at,"
                       " updated_at) VALUES (?, ?, ?, NULL, ?, '{}', ?, '{}', 100, 1, NULL, 0,"
                       " ?, ?)",
                       "sssssII", id, tenant, json_string_value(json_object_get(body, "name")),
                       json_string_value(json_object_get(body, "trigger_type")),
                       json_string_value(json_object_get(body, "action_type")), now, now);
    }
    const char *key;
    json_t *v;
    json_object_foreach(body, key, v)
    {
        if (rc < 0) break;
        rc = set_column(c, tenant, id, key, v, &err);
    }
    if (rc >= 0 && !creating)
        rc = lf_db_run(c, &err,
                       "UPDATE automation_rules SET updated_at = ? WHERE tenant_id = ? AND id = ?",
                       "Iss", now, tenant, id);
    if (rc >= 0) rc = lf_rules_bump(c, tenant);
    if (rc >= 0) rc = lf_db_commit(c);
    if (rc < 0) lf_db_rollback(c);
    if (rc >= 0) {
        lf_log_info(creating ? "automation rule created" : "automation rule changed", "{s:s, s:s}",
                    "rule_id", id, "by", r->auth.sub);
        reply_rule(r, c, id, creating ? 201 : 200);
    } else {
        lf_reply_error(r, rc, &err);
    }
    lf_db_release(c);
    json_decref(current);
    json_decref(body);
    lf_err_clear(&err);
}

static void create_rule(struct lf_req *r)
{
    save_rule(r, 1);
}

static void patch_rule(struct lf_req *r)
{
    save_rule(r, 0);
}

/* Deletes the rule (active -1) or sets is_active (0 or 1), in a transaction that bumps the
 * rule version. Returns 0, or a negative code with err (-LF_ENOTFOUND: no rule). */
static int change_rule(struct lf_conn *c, const char *tenant, const char *id, int active,
                       struct lf_err *err)
{
    int rc = lf_db_begin(c);
    if (rc == 0 && active < 0)
        rc = lf_db_run(c, err, "DELETE FROM automation_rules WHERE tenant_id = ? AND id = ?", "ss",
                       tenant, id);
    else if (rc == 0)
        rc = lf_db_run(c, err,
                       "UPDATE automation_rules SET is_active = ?, updated_at = ?"
                       " WHERE tenant_id = ? AND id = ?",
                       "iIss", active, lf_now_ms(), tenant, id);
    if (rc > 0)
        rc = lf_rules_bump(c, tenant);
    else if (rc == 0)
        rc = lf_err_set(err, -LF_ENOTFOUND, "no automation rule %s", id);
    if (rc == 0)
        rc = lf_db_commit(c);
    else
        lf_db_rollback(c);
    return rc;
}

/* DELETE /automation/rules/{id}: the rule goes; its log entries stay (their rule reads null). */
static void delete_rule(struct lf_req *r)
{
    struct lf_conn *c = lf_api_conn(r, LF_DB_WRITE);
    if (c == NULL) return;
    struct lf_err err = {0};
    int rc = change_rule(c, r->auth.tenant_id, r->params[0], -1, &err);
    lf_db_release(c);
    if (rc == 0) {
        lf_log_info("automation rule deleted", "{s:s, s:s}", "rule_id", r->params[0], "by",
                    r->auth.sub);
        lf_reply_json(r, 204, NULL);
    } else {
        lf_reply_error(r, rc, &err);
    }
    lf_err_clear(&err);
}

/* POST /automation/rules/{id}/enable and /disable: no body is read. */
static void set_active(struct lf_req *r, int active)
{
    struct lf_conn *c = lf_api_conn(r, LF_DB_WRITE);
    if (c == NULL) return;
    struct lf_err err = {0};
    int rc = change_rule(c, r->auth.tenant_id, r->params[0], active, &err);
    if (rc == 0)
        reply_rule(r, c, r->params[0], 200);
    else
        lf_reply_error(r, rc, &err);
    lf_db_release(c);
    lf_err_clear(&err);
}

static void enable_rule(struct lf_req *r)
{
    set_active(r, 1);
}

static void disable_rule(struct lf_req *r)
{
    set_active(r, 0);
}

/* Checks the "event" member of a dry run: absent or null, an event id, or an event described
 * by event_type (required), metadata (an object), source and utm_* (strings). */
static void check_dry_event(json_t *event, struct lf_err *err)
{
    static const char *const members[] = {"event_type", "metadata",     "source", "utm_source",
                                          "utm_medium", "utm_campaign", NULL};
    if (event == NULL || json_is_null(event)) return;
    if (json_is_string(event)) {
        if (!lf_uuid_valid(json_string_value(event)))
            lf_err_field(err, "event", "must be an event id, or an object describing an event");
        return;
    }
    if (!json_is_object(event)) {
        lf_err_field(err, "event", "must be an event id, or an object describing an event");
        return;
    }
    lf_api_members(event, members, "event.", err);
    json_t *type = json_object_get(event, "event_type");
    if (!json_is_string(type) || json_string_length(type) == 0 || json_string_length(type) > 100)
        lf_err_field(err, "event.event_type", "is required: an event type of 1 to 100 characters");
    json_t *md = json_object_get(event, "metadata");
    if (md && !json_is_null(md) && !json_is_object(md))
        lf_err_field(err, "event.metadata", "must be an object");
    if (md && json_is_null(md)) json_object_del(event, "metadata");
    for (int i = 2; members[i]; i++) {
        json_t *v = json_object_get(event, members[i]);
        if (v && !json_is_null(v) && !json_is_string(v)) {
            char name[64];
            snprintf(name, sizeof name, "event.%s", members[i]);
            lf_err_field(err, name, "must be a string or null");
        }
        if (v && json_is_null(v)) json_object_del(event, members[i]);
    }
}

/* POST /automation/rules/{id}/test {"lead_id", "event"}: whether the rule (active or not)
 * would fire for the lead, and what it and the rules it chains would do. The engine runs it in
 * a transaction of its own that it rolls back, so the writer is taken outside one. */
static void test_rule(struct lf_req *r)
{
    static const char *const members[] = {"lead_id", "event", NULL};
    struct lf_err err = {0};
    json_t *body = lf_req_json(r, &err), *out = NULL;
    const char *lead = NULL;
    if (body) {
        lf_api_members(body, members, "", &err);
        lead = json_string_value(json_object_get(body, "lead_id"));
        if (lead == NULL || *lead == '\0') lf_err_field(&err, "lead_id", "is required: a lead id");
        check_dry_event(json_object_get(body, "event"), &err);
    }
    if (err.code) {
        lf_reply_error(r, err.code, &err);
        goto out;
    }
    struct lf_conn *c = lf_api_conn(r, LF_DB_WRITE);
    if (c == NULL) goto out;
    const char *tenant = r->auth.tenant_id;
    char live[40] = "";
    /* a merged lead's id stands for its survivor; an unknown one goes to the engine as given,
     * which names the missing rule first, then the missing lead */
    int rc = lf_lead_resolve_id(c, tenant, lead, live);
    const char *subject = rc == 1 ? live : lead;
    if (rc >= 0) {
        json_t *event = json_object_get(body, "event");
        out = lf_automate_dry_run(c, tenant, r->params[0], subject,
                                  json_is_null(event) ? NULL : event, lf_now_ms(), &err);
        /* the engine leaves err empty for a store error of its own */
        if (out == NULL) rc = err.code ? err.code : -LF_EINTERNAL;
    }
    lf_db_release(c);
    if (out) {
        json_object_set_new(out, "rule_id", json_string(r->params[0]));
        json_object_set_new(out, "lead_id", json_string(subject));
        if (strcmp(subject, lead) != 0)
            json_object_set_new(out, "requested_lead_id", json_string(lead));
        lf_reply_json(r, 200, out);
    } else {
        lf_reply_error(r, rc, &err);
    }
out:
    json_decref(body);
    lf_err_clear(&err);
}

/* ---- the log */

#define LOG_COLS                                                                                   \
    "l.id, l.rule_id, r.name, l.lead_id, l.deal_id, l.event_id, l.trigger_key, l.trigger_type,"    \
    " l.action_type, l.status, l.success, l.depth, l.result, l.error, l.created_at"

/* A log entry as an item; the cursor is "<created_at>.<id>". */
static json_t *log_row(struct lf_stmt *st, void *arg, char *cursor)
{
    (void)arg;
    int64_t at = lf_stmt_int(st, 14);
    snprintf(cursor, LF_CURSOR_MAX, "%lld.%s", (long long)at, lf_stmt_text(st, 0));
    return json_pack("{s:s, s:s, s:o, s:s, s:o, s:o, s:s, s:o, s:o, s:s, s:b, s:i, s:o, s:o,"
                     " s:o}",
                     "id", lf_stmt_text(st, 0), "rule_id", lf_stmt_text(st, 1), "rule",
                     lf_json_text(lf_stmt_text(st, 2)), "lead_id", lf_stmt_text(st, 3), "deal_id",
                     lf_json_text(lf_stmt_text(st, 4)), "event_id",
                     lf_json_text(lf_stmt_text(st, 5)), "trigger_key", lf_stmt_text(st, 6),
                     "trigger_type", lf_json_text(lf_stmt_text(st, 7)), "action_type",
                     lf_json_text(lf_stmt_text(st, 8)), "status", lf_stmt_text(st, 9), "success",
                     (int)lf_stmt_int(st, 10), "depth", (int)lf_stmt_int(st, 11), "result",
                     lf_json_parse(lf_stmt_text(st, 12)), "error",
                     lf_json_text(lf_stmt_text(st, 13)), "created_at", lf_json_time(at, 0));
}

/* GET /automation/logs: newest first; filters rule, lead, deal, event (ids), success, status,
 * since. */
static void list_logs(struct lf_req *r)
{
    static const char *const id_args[][2] = {{"rule", "l.rule_id"},
                                             {"lead", "l.lead_id"},
                                             {"deal", "l.deal_id"},
                                             {"event", "l.event_id"}};
    struct lf_err err = {0};
    struct lf_query q = {0};
    int limit;
    lf_req_limit(r, &limit, &err);
    /* the cursor: "<created_at>.<id>" of the previous page's last entry */
    long long cur_at;
    const char *cur_id = lf_api_cursor(r, &cur_at, &err);
    const char *ids[4];
    for (int i = 0; i < 4; i++) {
        ids[i] = lf_req_query(r, id_args[i][0]);
        if (ids[i] && !lf_uuid_valid(ids[i])) lf_err_field(&err, id_args[i][0], "must be an id");
    }
    const char *success = lf_req_query(r, "success"), *status = lf_req_query(r, "status");
    if (success && strcmp(success, "true") != 0 && strcmp(success, "false") != 0)
        lf_err_field(&err, "success", "must be true or false");
    if (status && !lf_api_one_of(status, log_statuses))
        lf_err_field(&err, "status", "must be executed, failed or skipped");
    int64_t since = -1;
    lf_api_time_arg(r, "since", &since, &err);
    if (err.code) {
        lf_reply_error(r, err.code, &err);
        goto out;
    }
    lf_query_text(&q,
                  "SELECT " LOG_COLS " FROM automation_logs l LEFT JOIN automation_rules r"
                  " ON r.tenant_id = l.tenant_id AND r.id = l.rule_id WHERE l.tenant_id = ?",
                  r->auth.tenant_id);
    for (int i = 0; i < 4; i++) {
        char frag[40];
        snprintf(frag, sizeof frag, " AND %s = ?", id_args[i][1]);
        if (ids[i]) lf_query_text(&q, frag, ids[i]);
    }
    if (success) lf_query_int(&q, " AND l.success = ?", strcmp(success, "true") == 0);
    if (status) lf_query_text(&q, " AND l.status = ?", status);
    if (since >= 0) lf_query_int(&q, " AND l.created_at >= ?", since);
    if (cur_id) lf_query_before(&q, "l.", cur_at, cur_id);
    lf_query_int(&q, " ORDER BY l.created_at DESC, l.id DESC LIMIT ?", limit + 1);
    struct lf_conn *c = lf_api_conn(r, LF_DB_READ);
    if (c == NULL) goto out;
    lf_api_reply_rows(r, lf_query_prepare(&q, c, &err), limit, log_row, NULL, NULL);
    lf_db_release(c);
out:
    lf_query_free(&q);
    lf_err_clear(&err);
}

const struct lf_route lf_automation_routes[] = {
    {"GET", "/api/v1/automation/rules", list_rules, LF_AUTH_TOKEN, LF_ROLES_READ, 0, 0, 0},
    {"POST", "/api/v1/automation/rules", create_rule, LF_AUTH_TOKEN, LF_ROLES_MANAGE, 1, 0, 0},
    {"GET", "/api/v1/automation/rules/{id}", get_rule, LF_AUTH_TOKEN, LF_ROLES_READ, 0, 0, 0},
    {"PATCH", "/api/v1/automation/rules/{id}", patch_rule, LF_AUTH_TOKEN, LF_ROLES_MANAGE, 1, 0, 0},
    {"DELETE", "/api/v1/automation/rules/{id}", delete_rule, LF_AUTH_TOKEN, LF_ROLES_MANAGE, 0, 0,
     0},
    {"POST", "/api/v1/automation/rules/{id}/enable", enable_rule, LF_AUTH_TOKEN, LF_ROLES_MANAGE, 0,
     0, 0},
    {"POST", "/api/v1/automation/rules/{id}/disable", disable_rule, LF_AUTH_TOKEN, LF_ROLES_MANAGE,
     0, 0, 0},
    {"POST", "/api/v1/automation/rules/{id}/test", test_rule, LF_AUTH_TOKEN, LF_ROLES_MANAGE, 1, 0,
     0},
    {"GET", "/api/v1/automation/logs", list_logs, LF_AUTH_TOKEN, LF_ROLES_READ, 0, 0, 0},
    {NULL, NULL, NULL, 0, 0, 0, 0, 0},
};
