/* The leads resource: list with filters and sorts, get, create, patch, delete, timeline and
 * merge. Bulk import lives in src/api/imports.c. A merged lead's id answers its survivor. */
#include "api/api.h"
#include "engine/automation.h"
#include "engine/emit.h"
#include "engine/lead.h"
#include "engine/settings.h"
#include "core/crypto.h"
#include "core/log.h"
#include "core/timeutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define Q_MAX     100
#define FIELD_MAX 200

static const char *const statuses[] = {"new",          "contacted", "qualified",
                                       "disqualified", "customer",  NULL};
static const char *const stages[] = {"subscriber",  "lead",     "mql", "sql",
                                     "opportunity", "customer", NULL};
static const char *const routings[] = {"unrouted", "routed", "manual_review", NULL};

/* The sorts a list accepts: the column, and whether it is descending. */
struct sort {
    const char *name;
    const char *column; /* NULL: by id (creation order) */
    int desc;
};
static const struct sort sorts[] = {
    {"-created_at", NULL, 1},
    {"created_at", NULL, 0},
    {"-total_score", "total_score", 1},
    {"total_score", "total_score", 0},
    {"-last_activity_at", "last_activity_at", 1},
    {"last_activity_at", "last_activity_at", 0},
    {NULL, NULL, 0},
};

/* How list_leads makes an item and its cursor: "<id>" in creation order, "<value>.<id>" for
 * the other sorts (value: the sort column of the row). */
struct lead_rows {
    const struct sort *sort;
    json_t *tiers;
};

static json_t *lead_row(struct lf_stmt *st, void *arg, char *cursor)
{
    const struct lead_rows *lr = arg;
    json_t *lead = lf_lead_row_json(st, lr->tiers);
    const char *id = lf_stmt_text(st, 0);
    if (lr->sort->column == NULL) {
        snprintf(cursor, LF_CURSOR_MAX, "%s", id);
    } else { /* columns 17 and 27 of LF_LEAD_COLS: total_score, last_activity_at */
        int col = strcmp(lr->sort->column, "total_score") == 0 ? 17 : 27;
        snprintf(cursor, LF_CURSOR_MAX, "%lld.%s", (long long)lf_stmt_int(st, col), id);
    }
    return lead;
}

static void list_leads(struct lf_req *r)
{
    struct lf_err err = {0};
    struct lf_query q = {0};
    int limit = 50;
    const char *tenant = r->auth.tenant_id;
    lf_req_limit(r, &limit, &err);
    const struct sort *sort = &sorts[0];
    const char *sort_arg = lf_req_query(r, "sort");
    if (sort_arg) {
        for (sort = sorts; sort->name && strcmp(sort->name, sort_arg) != 0; sort++) {
        }
        if (sort->name == NULL) {
            lf_err_field(&err, "sort",
                         "must be one of created_at, total_score, last_activity_at,"
                         " each optionally with a leading '-'");
            sort = &sorts[0];
        }
    }
    /* The cursor: "<id>" for creation order, "<value>.<id>" for the other sorts. */
    const char *cursor = lf_req_query(r, "cursor");
    long long cur_val = 0;
    const char *cur_id = NULL;
    if (cursor) {
        if (sort->column == NULL) {
            cur_id = lf_uuid_valid(cursor) ? cursor : NULL;
        } else {
            const char *dot = strchr(cursor, '.');
            char *end;
            cur_val = strtoll(cursor, &end, 10);
            if (dot && end == dot && lf_uuid_valid(dot + 1)) cur_id = dot + 1;
        }
        if (cur_id == NULL)
            lf_err_field(&err, "cursor", "is not a cursor this API gave out for this sort");
    }

    lf_query_text(&q, "SELECT " LF_LEAD_COLS " FROM leads WHERE tenant_id = ?", tenant);
    lf_query_sql(&q, " AND merged_into IS NULL AND erased_at IS NULL");
    static const char *const text_filters[][2] = {
        {"status", " AND status = ?"},
        {"lifecycle_stage", " AND lifecycle_stage = ?"},
        {"routing_status", " AND routing_status = ?"},
        {"pipeline_id", " AND pipeline_id = ?"},
        {"primary_intent", " AND primary_intent = ?"},
        {"organization_id", " AND organization_id = ?"},
    };
    for (size_t i = 0; i < sizeof text_filters / sizeof text_filters[0]; i++) {
        const char *v = lf_req_query(r, text_filters[i][0]);
        if (v == NULL) continue;
        if ((i == 0 && !lf_api_one_of(v, statuses)) || (i == 1 && !lf_api_one_of(v, stages)) ||
            (i == 2 && !lf_api_one_of(v, routings)))
            lf_err_field(&err, text_filters[i][0], "is not one of the allowed values");
        lf_query_text(&q, text_filters[i][1], v);
    }
    int64_t gte = 0, lte = 0;
    int has_gte, has_lte;
    lf_api_int_arg(r, "score_gte", &gte, &has_gte, &err);
    lf_api_int_arg(r, "score_lte", &lte, &has_lte, &err);
    if (has_gte) lf_query_int(&q, " AND total_score >= ?", gte);
    if (has_lte) lf_query_int(&q, " AND total_score <= ?", lte);
    const char *tier = lf_req_query(r, "tier");
    const char *text = lf_req_query(r, "q");
    if (text && (strlen(text) == 0 || strlen(text) > Q_MAX))
        lf_err_field(&err, "q", "must be 1 to %d characters", Q_MAX);
    int64_t created_since = -1, active_since = -1;
    lf_api_time_arg(r, "created_since", &created_since, &err);
    lf_api_time_arg(r, "active_since", &active_since, &err);
    if (created_since >= 0) lf_query_int(&q, " AND created_at >= ?", created_since);
    if (active_since >= 0) lf_query_int(&q, " AND last_activity_at >= ?", active_since);
    const char *owner = lf_req_query(r, "owner");
    if (owner) {
        lf_query_text(&q, " AND id IN (SELECT lead_id FROM deals WHERE tenant_id = ?", tenant);
        lf_query_text(&q, " AND assigned_to = ? AND status = 'open')", owner);
    }
    if (text && !err.code) {
        char *pat = lf_api_like(&r->arena, text);
        lf_query_text(&q, " AND (lower(email) LIKE ? ESCAPE '\\'", pat);
        lf_query_text(&q,
                      " OR lower(COALESCE(first_name, '') || ' ' || COALESCE(last_name, ''))"
                      " LIKE ? ESCAPE '\\'",
                      pat);
        lf_query_text(
            &q, " OR organization_id IN (SELECT id FROM organizations WHERE tenant_id = ?", tenant);
        lf_query_text(&q, " AND lower(name) LIKE ? ESCAPE '\\'))", pat);
    }

    struct lf_conn *c = err.code ? NULL : lf_api_conn(r, LF_DB_READ);
    if (err.code) {
        lf_reply_error(r, err.code, &err);
        goto out;
    }
    if (c == NULL) goto out;
    json_t *tiers = lf_settings_get(c, tenant, "tiers");
    if (tier) {
        int lo, hi;
        if (lf_tier_range(tier, tiers, &lo, &hi) < 0) {
            lf_err_field(&err, "tier", "must be cold, warm, mql or hot");
            lf_reply_error(r, err.code, &err);
            json_decref(tiers);
            lf_db_release(c);
            goto out;
        }
        lf_query_int(&q, " AND total_score >= ?", lo);
        lf_query_int(&q, " AND total_score < ?", hi);
    }
    if (sort->column == NULL) {
        if (cur_id) lf_query_text(&q, sort->desc ? " AND id < ?" : " AND id > ?", cur_id);
        lf_query_sql(&q, sort->desc ? " ORDER BY id DESC" : " ORDER BY id");
    } else {
        char frag[160];
        if (cur_id) {
            snprintf(frag, sizeof frag, " AND (%s %s ?", sort->column, sort->desc ? "<" : ">");
            lf_query_int(&q, frag, cur_val);
            snprintf(frag, sizeof frag, " OR (%s = ?", sort->column);
            lf_query_int(&q, frag, cur_val);
            lf_query_text(&q, sort->desc ? " AND id < ?))" : " AND id > ?))", cur_id);
        }
        snprintf(frag, sizeof frag, " ORDER BY %s %s, id %s", sort->column,
                 sort->desc ? "DESC" : "ASC", sort->desc ? "DESC" : "ASC");
        lf_query_sql(&q, frag);
    }
    lf_query_int(&q, " LIMIT ?", limit + 1);

    struct lead_rows rows = {sort, tiers};
    lf_api_reply_rows(r, lf_query_prepare(&q, c, &err), limit, lead_row, &rows, NULL);
    json_decref(tiers);
    lf_db_release(c);
out:
    lf_query_free(&q);
    lf_err_clear(&err);
}

/* Answers the full document of a lead (following merges) with status, or an error. */
static void reply_lead(struct lf_req *r, struct lf_conn *c, const char *id, int status)
{
    char live[40];
    struct lf_err err = {0};
    int rc = lf_lead_resolve_id(c, r->auth.tenant_id, id, live);
    json_t *doc = NULL;
    if (rc == 1) {
        json_t *tiers = lf_settings_get(c, r->auth.tenant_id, "tiers");
        doc = lf_lead_json(c, r->auth.tenant_id, live, 1, tiers, &rc);
        json_decref(tiers);
    }
    if (doc) {
        if (strcmp(live, id) != 0) json_object_set_new(doc, "requested_id", json_string(id));
        lf_reply_json(r, status, doc);
    } else {
        if (rc >= 0) lf_err_set(&err, -LF_ENOTFOUND, "no lead %s", id);
        lf_reply_error(r, rc >= 0 ? -LF_ENOTFOUND : rc, &err);
    }
    lf_err_clear(&err);
}

static void get_lead(struct lf_req *r)
{
    struct lf_conn *c = lf_api_conn(r, LF_DB_READ);
    if (c == NULL) return;
    reply_lead(r, c, r->params[0], 200);
    lf_db_release(c);
}

/* Checks the writable profile fields of body: strings up to FIELD_MAX (null clears), and the
 * enumerations. */
static void check_profile(json_t *body, struct lf_err *err)
{
    static const char *const fields[] = {LF_LEAD_PROFILE_FIELDS, "company"};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        json_t *v = json_object_get(body, fields[i]);
        if (v && !json_is_null(v) && (!json_is_string(v) || json_string_length(v) > FIELD_MAX))
            lf_err_field(err, fields[i], "must be a string of at most %d characters", FIELD_MAX);
    }
    json_t *st = json_object_get(body, "status");
    if (st && !lf_api_one_of(json_string_value(st), statuses))
        lf_err_field(err, "status", "must be new, contacted, qualified, disqualified or customer");
    json_t *lc = json_object_get(body, "lifecycle_stage");
    if (lc && !lf_api_one_of(json_string_value(lc), stages))
        lf_err_field(err, "lifecycle_stage",
                     "must be subscriber, lead, mql, sql, opportunity or customer");
}

/* Sets status and lifecycle_stage from body when present. */
static int set_enums(struct lf_conn *c, const char *tenant, const char *id, json_t *body,
                     int64_t now)
{
    int rc = 0;
    const char *st = json_string_value(json_object_get(body, "status"));
    const char *lc = json_string_value(json_object_get(body, "lifecycle_stage"));
    if (st)
        rc = lf_db_run(c, NULL,
                       "UPDATE leads SET status = ?, updated_at = ? WHERE tenant_id = ? AND id = ?",
                       "sIss", st, now, tenant, id);
    if (rc >= 0 && lc)
        rc = lf_db_run(
            c, NULL,
            "UPDATE leads SET lifecycle_stage = ?, updated_at = ? WHERE tenant_id = ? AND id = ?",
            "sIss", lc, now, tenant, id);
    return rc < 0 ? rc : 0;
}

static void create_lead(struct lf_req *r)
{
    struct lf_err err = {0};
    json_t *body = lf_req_json(r, &err);
    struct lf_identity ids[LF_ID_KINDS_];
    int n = 0;
    if (body) {
        json_t *invalid = json_array();
        n = lf_identities_from_lead(body, ids, invalid);
        size_t i;
        json_t *e;
        json_array_foreach(invalid, i, e)
        {
            lf_err_field(&err, json_string_value(json_object_get(e, "field")), "%s",
                         json_string_value(json_object_get(e, "message")));
        }
        json_decref(invalid);
        if (n == 0 && !err.code)
            lf_err_field(&err, "email",
                         "a lead needs at least one identity (email, portal_id, "
                         "waalaxy_id, lemlist_id, linkedin_url, phone, external_id)");
        check_profile(body, &err);
    }
    if (err.code) {
        lf_reply_error(r, err.code, &err);
        goto out;
    }
    struct lf_conn *c = lf_api_conn(r, LF_DB_WRITE);
    if (c == NULL) goto out;
    int64_t now = lf_now_ms();
    char id[40], found[LF_LEAD_MATCH_MAX][40], cause[80];
    char op[40]; /* a cause of the server's own: a client's X-Request-Id may repeat */
    lf_uuid7(op);
    snprintf(cause, sizeof cause, "api:%s", op);
    const char *email = ids[0].kind == LF_ID_EMAIL ? ids[0].value : NULL;
    int rc = lf_automate_begin(c);
    int m = rc == 0 ? lf_lead_find(c, r->auth.tenant_id, ids, n, found, NULL) : rc;
    int sup = m == 0 && email ? lf_lead_suppressed(c, r->auth.tenant_id, email) : 0;
    if (m > 0) {
        lf_err_set(&err, -LF_ECONFLICT, "an identity of this lead belongs to lead %s", found[0]);
        err.ext = json_pack("{s:s}", "lead_id", found[0]);
        rc = -LF_ECONFLICT;
    } else if (sup > 0) {
        rc = lf_err_set(&err, -LF_ECONFLICT, "this email was erased and may not be stored again");
    } else if (m < 0 || sup < 0) {
        rc = m < 0 ? m : sup;
    } else {
        rc = lf_lead_create(c, r->auth.tenant_id, now, id);
        if (rc == 0) rc = lf_lead_attach(c, r->auth.tenant_id, id, ids, n, now);
        if (rc >= 0) rc = lf_lead_fill(c, r->auth.tenant_id, id, body, 1, now);
        if (rc >= 0) rc = set_enums(c, r->auth.tenant_id, id, body, now);
        if (rc >= 0)
            rc = lf_lead_link_org(c, r->auth.tenant_id, id,
                                  json_string_value(json_object_get(body, "company")), email, now);
        if (rc >= 0) {
            json_t *data = json_pack("{s:o, s:s}", "email",
                                     email ? json_string(email) : json_null(), "source", "api");
            rc = lf_emit(c, r->auth.tenant_id, "lead.created", id, cause, data, now);
            json_decref(data);
        }
    }
    if (rc >= 0)
        rc = lf_automate_commit(c, r->auth.tenant_id, lf_now_ms(), &err);
    else
        lf_automate_rollback(c);
    if (rc >= 0) {
        lf_log_info("lead created", "{s:s, s:s}", "lead_id", id, "by", r->auth.sub);
        reply_lead(r, c, id, 201);
    } else {
        lf_reply_error(r, rc, &err);
    }
    lf_db_release(c);
out:
    json_decref(body);
    lf_err_clear(&err);
}

static void patch_lead(struct lf_req *r)
{
    static const char *const allowed[] = {LF_LEAD_PROFILE_FIELDS, "status", "lifecycle_stage",
                                          "email"};
    struct lf_err err = {0};
    json_t *body = lf_req_json(r, &err);
    char email[LF_IDENTITY_MAX] = "";
    if (body) {
        const char *key;
        json_t *v;
        json_object_foreach(body, key, v)
        {
            int ok = 0;
            for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++)
                ok |= strcmp(key, allowed[i]) == 0;
            if (!ok)
                lf_err_field(&err, key,
                             "may not be set (allowed: first_name, last_name, job_title,"
                             " phone, country, region, status, lifecycle_stage, email)");
        }
        check_profile(body, &err);
        json_t *e = json_object_get(body, "email");
        if (e && (!json_is_string(e) ||
                  lf_identity_normalise(LF_ID_EMAIL, json_string_value(e), email) < 0))
            lf_err_field(&err, "email", "is not a plausible email address");
    }
    if (err.code) {
        lf_reply_error(r, err.code, &err);
        goto out;
    }
    struct lf_conn *c = lf_api_conn(r, LF_DB_WRITE);
    if (c == NULL) goto out;
    char id[40];
    int64_t now = lf_now_ms();
    const char *tenant = r->auth.tenant_id;
    int rc = lf_automate_begin(c);
    int found = rc == 0 ? lf_lead_resolve_id(c, tenant, r->params[0], id) : rc;
    if (found == 0)
        rc = lf_err_set(&err, -LF_ENOTFOUND, "no lead %s", r->params[0]);
    else if (found < 0)
        rc = found;
    if (rc == 0) {
        /* Clearing with null is an overwrite with nothing. */
        static const char *const fields[] = {LF_LEAD_PROFILE_FIELDS};
        for (size_t i = 0; i < sizeof fields / sizeof fields[0] && rc >= 0; i++) {
            if (!json_is_null(json_object_get(body, fields[i]))) continue;
            char sql[128];
            snprintf(sql, sizeof sql, "UPDATE leads SET %s = NULL WHERE tenant_id = ? AND id = ?",
                     fields[i]);
            rc = lf_db_run(c, NULL, sql, "ss", tenant, id);
        }
        if (rc >= 0) rc = lf_lead_fill(c, tenant, id, body, 1, now);
        if (rc >= 0) rc = set_enums(c, tenant, id, body, now);
    }
    if (rc >= 0 && email[0]) { /* a new email is a new identity; the old one goes */
        struct lf_identity ident = {LF_ID_EMAIL, ""};
        memcpy(ident.value, email, sizeof ident.value);
        char owner[1][40];
        int m = lf_lead_find(c, tenant, &ident, 1, owner, NULL);
        int sup = m == 0 ? lf_lead_suppressed(c, tenant, email) : 0;
        if (m < 0 || sup < 0) {
            rc = m < 0 ? m : sup;
        } else if (sup) {
            rc = lf_err_set(&err, -LF_ECONFLICT,
                            "this email was erased and may not be stored again");
        } else if (m > 0 && strcmp(owner[0], id) == 0) { /* held already: make it the main one */
            rc = lf_db_run(
                c, NULL,
                "UPDATE leads SET email = ?, updated_at = ? WHERE tenant_id = ? AND id = ?", "sIss",
                email, now, tenant, id);
        } else if (m > 0) {
            rc = lf_err_set(&err, -LF_ECONFLICT, "email %s belongs to lead %s", email, owner[0]);
            err.ext = json_pack("{s:s}", "lead_id", owner[0]);
        } else if (m == 0) {
            rc = lf_db_run(c, NULL,
                           "DELETE FROM lead_identities WHERE tenant_id = ? AND lead_id = ?"
                           " AND kind = 'email' AND value = (SELECT email FROM leads WHERE"
                           " tenant_id = ? AND id = ?)",
                           "ssss", tenant, id, tenant, id);
            if (rc >= 0)
                rc = lf_db_run(c, NULL,
                               "UPDATE leads SET email = NULL WHERE tenant_id = ? AND id = ?", "ss",
                               tenant, id);
            if (rc >= 0) rc = lf_lead_attach(c, tenant, id, &ident, 1, now);
        }
    }
    if (rc >= 0)
        rc = lf_automate_commit(c, r->auth.tenant_id, lf_now_ms(), &err);
    else
        lf_automate_rollback(c);
    if (rc >= 0)
        reply_lead(r, c, id, 200);
    else
        lf_reply_error(r, rc, &err);
    lf_db_release(c);
out:
    json_decref(body);
    lf_err_clear(&err);
}

static void delete_lead(struct lf_req *r)
{
    static const char *const cleanup[] = {
        "UPDATE team_members SET current_leads = CASE WHEN current_leads > n THEN"
        " current_leads - n ELSE 0 END FROM (SELECT tenant_id AS t, assigned_to AS who,"
        " count(*) AS n FROM deals WHERE tenant_id = ? AND lead_id = ? AND status = 'open'"
        " GROUP BY tenant_id, assigned_to) AS gone"
        " WHERE team_members.tenant_id = gone.t AND team_members.id = gone.who",
        "UPDATE events SET lead_id = NULL WHERE tenant_id = ? AND lead_id = ?",
        "DELETE FROM lead_identities WHERE tenant_id = ? AND lead_id = ?",
        "DELETE FROM score_history WHERE tenant_id = ? AND lead_id = ?",
        "DELETE FROM intent_signals WHERE tenant_id = ? AND lead_id = ?",
        "DELETE FROM tasks WHERE tenant_id = ? AND lead_id = ?",
        "DELETE FROM deal_stage_history WHERE tenant_id = ? AND deal_id IN (SELECT d.id FROM"
        " deals d WHERE d.tenant_id = deal_stage_history.tenant_id AND d.lead_id = ?)",
        "DELETE FROM routing_log WHERE tenant_id = ? AND lead_id = ?",
        "DELETE FROM automation_logs WHERE tenant_id = ? AND lead_id IN (SELECT m.id FROM leads m"
        " WHERE m.tenant_id = automation_logs.tenant_id AND m.merged_into = ?)",
        "DELETE FROM automation_logs WHERE tenant_id = ? AND lead_id = ?",
        "DELETE FROM deals WHERE tenant_id = ? AND lead_id = ?",
        "DELETE FROM leads WHERE tenant_id = ? AND merged_into = ?",
        "DELETE FROM leads WHERE tenant_id = ? AND id = ?",
    };
    struct lf_conn *c = lf_api_conn(r, LF_DB_WRITE);
    if (c == NULL) return;
    struct lf_err err = {0};
    char id[40];
    int rc = lf_automate_begin(c);
    int found = rc == 0 ? lf_lead_resolve_id(c, r->auth.tenant_id, r->params[0], id) : rc;
    if (found == 0)
        rc = lf_err_set(&err, -LF_ENOTFOUND, "no lead %s", r->params[0]);
    else if (found < 0)
        rc = found;
    else if (strcmp(id, r->params[0]) != 0) /* never delete a survivor through a merged id */
        rc = lf_err_set(&err, -LF_ECONFLICT, "lead %s was merged into %s; delete that one",
                        r->params[0], id);
    for (size_t i = 0; rc >= 0 && i < sizeof cleanup / sizeof cleanup[0]; i++)
        rc = lf_db_run(c, &err, cleanup[i], "ss", r->auth.tenant_id, id);
    if (rc >= 0)
        rc = lf_automate_commit(c, r->auth.tenant_id, lf_now_ms(), &err);
    else
        lf_automate_rollback(c);
    lf_db_release(c);
    if (rc >= 0) {
        lf_log_info("lead deleted", "{s:s, s:s}", "lead_id", id, "by", r->auth.sub);
        lf_reply_json(r, 204, NULL);
    } else {
        lf_reply_error(r, rc, &err);
    }
    lf_err_clear(&err);
}

/* A timeline row (kind, id, at, a, b, c, d, e, f, g) as an item; the cursor is "<at>.<id>". */
static json_t *timeline_row(struct lf_stmt *st, void *arg, char *cursor)
{
    (void)arg;
    const char *kind = lf_stmt_text(st, 0);
    int64_t at = lf_stmt_int(st, 2);
    snprintf(cursor, LF_CURSOR_MAX, "%lld.%s", (long long)at, lf_stmt_text(st, 1));
    json_t *item = json_pack("{s:s, s:s, s:o}", "kind", kind, "id", lf_stmt_text(st, 1), "at",
                             lf_json_time(at, 0));
    if (strcmp(kind, "score") == 0) {
        json_object_set_new(item, "category", lf_json_text(lf_stmt_text(st, 3)));
        json_object_set_new(item, "rule", lf_json_text(lf_stmt_text(st, 4)));
        json_object_set_new(item, "points", json_integer(atoll(lf_stmt_text(st, 5))));
        json_object_set_new(item, "event_id", lf_json_text(lf_stmt_text(st, 6)));
    } else if (strcmp(kind, "automation") == 0) { /* what fired, why and what it did */
        json_object_set_new(item, "status", lf_json_text(lf_stmt_text(st, 3)));
        json_object_set_new(item, "rule", lf_json_text(lf_stmt_text(st, 4)));
        json_object_set_new(item, "action_type", lf_json_text(lf_stmt_text(st, 5)));
        json_object_set_new(item, "result", lf_json_parse(lf_stmt_text(st, 6)));
        json_object_set_new(item, "trigger_type", lf_json_text(lf_stmt_text(st, 7)));
        json_object_set_new(item, "error", lf_json_text(lf_stmt_text(st, 8)));
        json_object_set_new(item, "rule_id", lf_json_text(lf_stmt_text(st, 9)));
    } else {
        json_object_set_new(item, "event_type", lf_json_text(lf_stmt_text(st, 3)));
        json_object_set_new(item, "source", lf_json_text(lf_stmt_text(st, 4)));
        json_object_set_new(item, "status", lf_json_text(lf_stmt_text(st, 5)));
        json_object_set_new(item, "metadata", lf_json_parse(lf_stmt_text(st, 6)));
    }
    return item;
}

static void timeline(struct lf_req *r)
{
    struct lf_err err = {0};
    int limit;
    lf_req_limit(r, &limit, &err);
    long long cur_at;
    const char *cur_id = lf_api_cursor(r, &cur_at, &err);
    if (err.code) {
        lf_reply_error(r, err.code, &err);
        lf_err_clear(&err);
        return;
    }
    struct lf_conn *c = lf_api_conn(r, LF_DB_READ);
    if (c == NULL) return;
    char id[40];
    const char *tenant = r->auth.tenant_id;
    int found = lf_lead_resolve_id(c, tenant, r->params[0], id);
    if (found <= 0) {
        lf_db_release(c);
        if (found == 0) lf_err_set(&err, -LF_ENOTFOUND, "no lead %s", r->params[0]);
        lf_reply_error(r, found == 0 ? -LF_ENOTFOUND : found, &err);
        lf_err_clear(&err);
        return;
    }
    struct lf_query q = {0};
    lf_query_sql(&q, "SELECT kind, id, at, a, b, c, d, e, f, g FROM (SELECT CASE WHEN"
                     " origin = 'internal' THEN 'domain_event' ELSE 'event' END AS kind, id,"
                     " occurred_at AS at, event_type AS a, source AS b, status AS c,"
                     " metadata AS d, NULL AS e, NULL AS f, NULL AS g FROM events");
    lf_query_text(&q, " WHERE tenant_id = ?", tenant);
    lf_query_text(&q, " AND lead_id = ?", id);
    lf_query_sql(&q, " UNION ALL SELECT 'score', s.id, s.created_at, s.category, r.name,"
                     " CAST(s.points AS TEXT), s.event_id, NULL, NULL, NULL FROM score_history s"
                     " LEFT JOIN scoring_rules r ON r.id = s.rule_id");
    lf_query_text(&q, " WHERE s.tenant_id = ?", tenant);
    lf_query_text(&q, " AND s.lead_id = ?", id);
    lf_query_sql(&q, " UNION ALL SELECT 'automation', a.id, a.created_at, a.status, r.name,"
                     " a.action_type, a.result, a.trigger_type, a.error, a.rule_id"
                     " FROM automation_logs a LEFT JOIN automation_rules r ON r.id = a.rule_id");
    lf_query_text(&q, " WHERE a.tenant_id = ?", tenant);
    lf_query_text(&q, " AND a.lead_id = ?) t", id);
    if (cur_id) {
        lf_query_int(&q, " WHERE (at < ?", cur_at);
        lf_query_int(&q, " OR (at = ?", cur_at);
        lf_query_text(&q, " AND id < ?))", cur_id);
    }
    lf_query_int(&q, " ORDER BY at DESC, id DESC LIMIT ?", limit + 1);
    lf_api_reply_rows(r, lf_query_prepare(&q, c, &err), limit, timeline_row, NULL,
                      json_pack("{s:s}", "lead_id", id));
    lf_db_release(c);
    lf_query_free(&q);
    lf_err_clear(&err);
}

static void merge_leads(struct lf_req *r)
{
    struct lf_err err = {0};
    json_t *body = lf_req_json(r, &err);
    const char *other = body ? json_string_value(json_object_get(body, "other_id")) : NULL;
    if (body && !lf_uuid_valid(other)) lf_err_field(&err, "other_id", "must be a lead id");
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
    char survivor[40], loser[40], cause[80];
    char op[40]; /* a cause of the server's own: a client's X-Request-Id may repeat */
    lf_uuid7(op);
    snprintf(cause, sizeof cause, "api:%s", op);
    const char *tenant = r->auth.tenant_id;
    int64_t now = lf_now_ms();
    int rc = lf_automate_begin(c);
    int a = rc == 0 ? lf_lead_resolve_id(c, tenant, r->params[0], survivor) : rc;
    int b = a == 1 ? lf_lead_resolve_id(c, tenant, other, loser) : a;
    if (a == 0 || b == 0) {
        rc = lf_err_set(&err, -LF_ENOTFOUND, "no lead %s", a == 0 ? r->params[0] : other);
    } else if (a < 0 || b < 0) {
        rc = a < 0 ? a : b;
    } else if (strcmp(survivor, loser) == 0) {
        rc = lf_err_field(&err, "other_id", "is the same lead (or was merged into it already)");
    } else {
        if (strcmp(loser, survivor) < 0) { /* the same rule as the stage: the older survives */
            char t[40];
            memcpy(t, survivor, sizeof t);
            memcpy(survivor, loser, sizeof t);
            memcpy(loser, t, sizeof t);
        }
        rc = lf_lead_merge(c, tenant, survivor, loser, cause, now);
    }
    if (rc >= 0)
        rc = lf_automate_commit(c, r->auth.tenant_id, lf_now_ms(), &err);
    else
        lf_automate_rollback(c);
    if (rc >= 0) {
        lf_log_info("leads merged", "{s:s, s:s, s:s}", "survivor", survivor, "merged", loser, "by",
                    r->auth.sub);
        reply_lead(r, c, survivor, 200);
    } else {
        lf_reply_error(r, rc, &err);
    }
    lf_db_release(c);
    json_decref(body);
    lf_err_clear(&err);
}

void lf_api_import(struct lf_req *r);

const struct lf_route lf_leads_routes[] = {
    {"GET", "/api/v1/leads", list_leads, LF_AUTH_TOKEN, LF_ROLES_READ, 0, 0, 0},
    {"POST", "/api/v1/leads", create_lead, LF_AUTH_TOKEN, LF_ROLES_WRITE, 1, 0, 0},
    {"POST", "/api/v1/leads/bulk", lf_api_import, LF_AUTH_TOKEN, LF_ROLES_WRITE, 0, 0,
     64 * 1024 * 1024},
    {"GET", "/api/v1/leads/{id}", get_lead, LF_AUTH_TOKEN, LF_ROLES_READ, 0, 0, 0},
    {"PATCH", "/api/v1/leads/{id}", patch_lead, LF_AUTH_TOKEN, LF_ROLES_WRITE, 1, 0, 0},
    {"DELETE", "/api/v1/leads/{id}", delete_lead, LF_AUTH_TOKEN, LF_ROLES_MANAGE, 0, 0, 0},
    {"GET", "/api/v1/leads/{id}/timeline", timeline, LF_AUTH_TOKEN, LF_ROLES_READ, 0, 0, 0},
    {"POST", "/api/v1/leads/{id}/merge", merge_leads, LF_AUTH_TOKEN, LF_ROLES_WRITE, 1, 0, 0},
    {NULL, NULL, NULL, 0, 0, 0, 0, 0},
};
