/* Scoring rules, intent rules, the backtest of a scoring rule, and a lead's score with every
 * row that makes it up. A rule change bumps the tenant's rule version in its transaction:
 * events processed after it use the new rules; nothing already scored is rescored. */
#include "api/api.h"
#include "engine/conditions.h"
#include "engine/lead.h"
#include "engine/rules.h"
#include "engine/score.h"
#include "engine/settings.h"
#include "core/crypto.h"
#include "core/mem.h"
#include "core/timeutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RULES_MAX      1000
#define BACKTEST_MAX   200000 /* events a backtest reads at most */
#define SCORE_ROWS_MAX 1000   /* rows of a lead's score breakdown */

/* The two rule resources differ in table, columns and checks; the handlers are shared. */
struct rule_kind {
    const char *table;
    const char *what; /* "scoring rule" */
    const char *cols; /* selected, in the order of json_cols */
    const char *const *json_cols;
    const char *json_types; /* per column: s text, i integer, n integer or null, j JSON, b bool,
                               t time */
    int (*check)(json_t *body, int creating, struct lf_err *err);
    const char *order;
};

static const char *const score_cols[] = {
    "id",       "slug",      "name",        "event_type",   "conditions",
    "points",   "category",  "max_per_day", "max_per_lead", "expires_after_days",
    "priority", "is_active", "created_at",  "updated_at",   NULL};
static const char *const intent_cols[] = {
    "id",           "slug",      "intent",     "event_type", "conditions", "points",
    "max_per_lead", "is_active", "created_at", "updated_at", NULL};

static const struct rule_kind score_kind = {
    "scoring_rules",
    "scoring rule",
    "id, slug, name, event_type, conditions, points, category, max_per_day, max_per_lead,"
    " expires_after_days, priority, is_active, created_at, updated_at",
    score_cols,
    "sssssisnnnibtt",
    lf_score_rule_check,
    " ORDER BY priority, slug",
};

static const struct rule_kind intent_kind = {
    "intent_rules",
    "intent rule",
    "id, slug, intent, event_type, conditions, points, max_per_lead, is_active, created_at,"
    " updated_at",
    intent_cols,
    "sssssinbtt",
    lf_intent_rule_check,
    " ORDER BY intent, slug",
};

static json_t *rule_json(const struct rule_kind *k, struct lf_stmt *st)
{
    json_t *o = json_object();
    for (int i = 0; k->json_cols[i]; i++) {
        json_t *v;
        switch (k->json_types[i]) {
        case 'i': v = json_integer(lf_stmt_int(st, i)); break;
        case 'n': v = lf_stmt_isnull(st, i) ? json_null() : json_integer(lf_stmt_int(st, i)); break;
        case 'b': v = json_boolean(lf_stmt_int(st, i)); break;
        case 'j': v = lf_json_parse(lf_stmt_text(st, i)); break;
        case 't': v = lf_json_time(lf_stmt_int(st, i), lf_stmt_isnull(st, i)); break;
        default: v = lf_json_text(lf_stmt_text(st, i));
        }
        if (strcmp(k->json_cols[i], "conditions") == 0) {
            json_decref(v);
            v = lf_json_parse(lf_stmt_text(st, i));
        }
        json_object_set_new(o, k->json_cols[i], v);
    }
    return o;
}

/* The rule by id or slug; NULL with *rc LF_DB_DONE when there is none. */
static json_t *load_rule(const struct rule_kind *k, struct lf_conn *c, const char *tenant,
                         const char *ref, int *rc)
{
    char sql[512];
    snprintf(sql, sizeof sql, "SELECT %s FROM %s WHERE tenant_id = ? AND (id = ? OR slug = ?)",
             k->cols, k->table);
    struct lf_stmt *st = lf_db_prepare(c, sql, NULL);
    if (st == NULL) {
        *rc = -LF_EINTERNAL;
        return NULL;
    }
    lf_stmt_bind(st, "sss", tenant, ref, ref);
    json_t *o = (*rc = lf_stmt_step(st)) == LF_DB_ROW ? rule_json(k, st) : NULL;
    lf_stmt_done(st);
    return o;
}

static void reply_missing(struct lf_req *r, const struct rule_kind *k, int rc)
{
    struct lf_err err = {0};
    if (rc >= 0) lf_err_set(&err, -LF_ENOTFOUND, "no %s %s", k->what, r->params[0]);
    lf_reply_error(r, rc >= 0 ? -LF_ENOTFOUND : rc, &err);
    lf_err_clear(&err);
}

static void list_rules(struct lf_req *r, const struct rule_kind *k)
{
    struct lf_query q = {0};
    char sql[512];
    snprintf(sql, sizeof sql, "SELECT %s FROM %s WHERE tenant_id = ?", k->cols, k->table);
    lf_query_text(&q, sql, r->auth.tenant_id);
    const char *type = lf_req_query(r, "event_type"), *active = lf_req_query(r, "is_active");
    const char *cat = lf_req_query(r, "category"), *intent = lf_req_query(r, "intent");
    if (active && strcmp(active, "true") && strcmp(active, "false") && strcmp(active, "1") &&
        strcmp(active, "0")) {
        struct lf_err err = {0};
        lf_err_field(&err, "is_active", "must be true or false");
        lf_reply_error(r, err.code, &err);
        lf_err_clear(&err);
        lf_query_free(&q);
        return;
    }
    if (type) lf_query_text(&q, " AND event_type = ?", type);
    if (active)
        lf_query_int(&q, " AND is_active = ?", !strcmp(active, "true") || !strcmp(active, "1"));
    if (cat && k == &score_kind) lf_query_text(&q, " AND category = ?", cat);
    if (intent && k == &intent_kind) lf_query_text(&q, " AND intent = ?", intent);
    lf_query_sql(&q, k->order);
    lf_query_int(&q, " LIMIT ?", RULES_MAX);
    struct lf_conn *c = lf_api_conn(r, LF_DB_READ);
    if (c) {
        struct lf_err err = {0};
        struct lf_stmt *st = lf_query_prepare(&q, c, &err);
        json_t *items = json_array();
        int rc = st ? 0 : -LF_EINTERNAL;
        while (st && (rc = lf_stmt_step(st)) == LF_DB_ROW)
            json_array_append_new(items, rule_json(k, st));
        if (st) lf_stmt_done(st);
        lf_db_release(c);
        if (rc < 0) {
            json_decref(items);
            lf_reply_error(r, rc, &err);
        } else {
            lf_reply_json(r, 200, lf_api_page(items, NULL));
        }
        lf_err_clear(&err);
    }
    lf_query_free(&q);
}

static void get_rule(struct lf_req *r, const struct rule_kind *k)
{
    struct lf_conn *c = lf_api_conn(r, LF_DB_READ);
    if (c == NULL) return;
    int rc;
    json_t *o = load_rule(k, c, r->auth.tenant_id, r->params[0], &rc);
    lf_db_release(c);
    if (o)
        lf_reply_json(r, 200, o);
    else
        reply_missing(r, k, rc);
}

/* The column value of one body key, bound by its JSON type. */
static int set_column(struct lf_conn *c, const struct rule_kind *k, const char *tenant,
                      const char *id, const char *col, json_t *v, struct lf_err *err)
{
    char sql[256];
    snprintf(sql, sizeof sql, "UPDATE %s SET %s = ? WHERE tenant_id = ? AND id = ?", k->table, col);
    if (json_is_null(v)) return lf_db_run(c, err, sql, "nss", tenant, id);
    if (json_is_boolean(v)) return lf_db_run(c, err, sql, "iss", json_is_true(v), tenant, id);
    if (json_is_integer(v))
        return lf_db_run(c, err, sql, "Iss", (int64_t)json_integer_value(v), tenant, id);
    if (json_is_string(v)) return lf_db_run(c, err, sql, "sss", json_string_value(v), tenant, id);
    char *text = lf_json_dump(v); /* conditions */
    int rc = lf_db_run(c, err, sql, "sss", text, tenant, id);
    free(text);
    return rc;
}

static void save_rule(struct lf_req *r, const struct rule_kind *k, int creating)
{
    struct lf_err err = {0};
    json_t *body = lf_req_json(r, &err);
    if (body) k->check(body, creating, &err);
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
    const char *tenant = r->auth.tenant_id;
    char id[40] = "";
    int64_t now = lf_now_ms();
    int rc = lf_db_begin(c);
    if (rc == 0 && creating) {
        lf_uuid7(id);
        /* the required columns; the rest are set below */
        if (k == &score_kind)
            rc = lf_db_run(c, &err,
                           "INSERT INTO scoring_rules (id, tenant_id, slug, name, event_type,"
                           " points, category, created_at, updated_at)"
                           " VALUES (?, ?, ?, ?, ?, 0, 'engagement', ?, ?)",
                           "sssssII", id, tenant, json_string_value(json_object_get(body, "slug")),
                           json_string_value(json_object_get(body, "name")),
                           json_string_value(json_object_get(body, "event_type")), now, now);
        else
            rc = lf_db_run(c, &err,
                           "INSERT INTO intent_rules (id, tenant_id, slug, intent, event_type,"
                           " points, created_at, updated_at) VALUES (?, ?, ?, ?, ?, 0, ?, ?)",
                           "sssssII", id, tenant, json_string_value(json_object_get(body, "slug")),
                           json_string_value(json_object_get(body, "intent")),
                           json_string_value(json_object_get(body, "event_type")), now, now);
    } else if (rc == 0) {
        struct lf_stmt *st = NULL;
        char sql[256];
        snprintf(sql, sizeof sql, "SELECT id FROM %s WHERE tenant_id = ? AND (id = ? OR slug = ?)",
                 k->table);
        st = lf_db_prepare(c, sql, &err);
        rc = st ? lf_stmt_bind(st, "sss", tenant, r->params[0], r->params[0]) : -LF_EINTERNAL;
        if (rc == 0) rc = lf_stmt_step(st);
        if (rc == LF_DB_ROW) snprintf(id, sizeof id, "%s", lf_stmt_text(st, 0));
        if (st) lf_stmt_done(st);
        if (rc == LF_DB_DONE)
            rc = lf_err_set(&err, -LF_ENOTFOUND, "no %s %s", k->what, r->params[0]);
        if (rc > 0) rc = 0;
    }
    const char *key;
    json_t *v;
    json_object_foreach(body, key, v)
    {
        if (rc < 0) break;
        /* key is one of the checked rule keys, so a column name from the code's table */
        rc = set_column(c, k, tenant, id, key, v, &err);
    }
    if (rc >= 0) {
        char sql[128];
        snprintf(sql, sizeof sql, "UPDATE %s SET updated_at = ? WHERE tenant_id = ? AND id = ?",
                 k->table);
        rc = lf_db_run(c, &err, sql, "Iss", now, tenant, id);
    }
    if (rc >= 0) rc = lf_rules_bump(c, tenant);
    if (rc == -LF_ECONSTRAINT) {
        lf_err_clear(&err);
        lf_err_field(&err, "slug", "is taken by another %s", k->what);
        rc = -LF_ECONFLICT;
    }
    if (rc >= 0) rc = lf_db_commit(c);
    if (rc < 0) lf_db_rollback(c);
    json_t *o = rc >= 0 ? load_rule(k, c, tenant, id, &rc) : NULL;
    lf_db_release(c);
    if (o)
        lf_reply_json(r, creating ? 201 : 200, o);
    else
        lf_reply_error(r, rc < 0 ? rc : -LF_EINTERNAL, &err);
    json_decref(body);
    lf_err_clear(&err);
}

static void delete_rule(struct lf_req *r, const struct rule_kind *k)
{
    struct lf_conn *c = lf_api_conn(r, LF_DB_WRITE);
    if (c == NULL) return;
    struct lf_err err = {0};
    char sql[128];
    snprintf(sql, sizeof sql, "DELETE FROM %s WHERE tenant_id = ? AND (id = ? OR slug = ?)",
             k->table);
    int rc = lf_db_begin(c);
    if (rc == 0) rc = lf_db_run(c, &err, sql, "sss", r->auth.tenant_id, r->params[0], r->params[0]);
    if (rc > 0)
        rc = lf_rules_bump(c, r->auth.tenant_id);
    else if (rc == 0)
        rc = lf_err_set(&err, -LF_ENOTFOUND, "no %s %s", k->what, r->params[0]);
    if (rc == 0)
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

#define RULE_HANDLERS(prefix, kind)                                                                \
    static void prefix##_list(struct lf_req *r)                                                    \
    {                                                                                              \
        list_rules(r, &kind);                                                                      \
    }                                                                                              \
    static void prefix##_get(struct lf_req *r)                                                     \
    {                                                                                              \
        get_rule(r, &kind);                                                                        \
    }                                                                                              \
    static void prefix##_create(struct lf_req *r)                                                  \
    {                                                                                              \
        save_rule(r, &kind, 1);                                                                    \
    }                                                                                              \
    static void prefix##_patch(struct lf_req *r)                                                   \
    {                                                                                              \
        save_rule(r, &kind, 0);                                                                    \
    }                                                                                              \
    static void prefix##_delete(struct lf_req *r)                                                  \
    {                                                                                              \
        delete_rule(r, &kind);                                                                     \
    }

RULE_HANDLERS(score, score_kind)
RULE_HANDLERS(intent, intent_kind)

/* POST /scoring/rules/{id}/backtest {"since", "until"}: what the rule (active or not) would
 * have given over the stored external events of the window, as of each lead's profile
 * today, with its caps counted from the start of the window. Reads only. */
static void backtest(struct lf_req *r)
{
    struct lf_err err = {0};
    json_t *body = lf_req_json(r, &err);
    int64_t since = -1, until = -1;
    const char *names[2] = {"since", "until"};
    int64_t *slots[2] = {&since, &until};
    for (int i = 0; body && i < 2; i++) {
        const char *v = json_string_value(json_object_get(body, names[i]));
        if (v == NULL || lf_time_parse(v, slots[i]) < 0)
            lf_err_field(&err, names[i], "is required: an RFC 3339 date-time");
    }
    if (err.code == 0 && until <= since) lf_err_field(&err, "until", "must be after since");
    if (err.code == 0 && until - since > 400 * LF_DAY_MS)
        lf_err_field(&err, "until", "the window may span at most 400 days");
    if (err.code) {
        lf_reply_error(r, err.code, &err);
        json_decref(body);
        lf_err_clear(&err);
        return;
    }
    struct lf_conn *c = lf_api_conn(r, LF_DB_READ);
    if (c == NULL) {
        json_decref(body);
        return;
    }
    const char *tenant = r->auth.tenant_id;
    struct lf_stmt *st = lf_db_prepare(c,
                                       "SELECT id, slug, event_type, conditions, points, category,"
                                       " max_per_day, max_per_lead, expires_after_days"
                                       " FROM scoring_rules WHERE tenant_id = ?"
                                       " AND (id = ? OR slug = ?)",
                                       &err);
    struct lf_score_rule rule = {0};
    int rc = st ? lf_stmt_bind(st, "sss", tenant, r->params[0], r->params[0]) : -LF_EINTERNAL;
    if (rc == 0) rc = lf_stmt_step(st);
    if (rc == LF_DB_ROW)
        rc = lf_score_rule_compile(
            &rule, lf_stmt_text(st, 0), lf_stmt_text(st, 1), lf_stmt_text(st, 2),
            lf_stmt_text(st, 3), (int)lf_stmt_int(st, 4), lf_stmt_text(st, 5),
            (int)lf_stmt_int(st, 6), (int)lf_stmt_int(st, 7), (int)lf_stmt_int(st, 8), &err);
    else if (rc == LF_DB_DONE)
        rc = lf_err_set(&err, -LF_ENOTFOUND, "no scoring rule %s", r->params[0]);
    if (st) lf_stmt_done(st);

    struct lf_query q = {0};
    lf_query_text(&q,
                  "SELECT id, lead_id, event_type, source, utm_source, utm_medium, utm_campaign,"
                  " metadata, occurred_at FROM events WHERE tenant_id = ?",
                  tenant);
    if (rc >= 0 && strcmp(rule.event_type, "*") != 0)
        lf_query_text(&q, " AND event_type = ?", rule.event_type);
    lf_query_int(&q, " AND origin = 'external' AND lead_id IS NOT NULL AND occurred_at >= ?",
                 since);
    lf_query_int(&q, " AND occurred_at < ?", until);
    /* by lead, so each lead's profile is read once; by time within a lead, for the caps */
    lf_query_int(&q, " ORDER BY lead_id, occurred_at, id LIMIT ?", BACKTEST_MAX + 1);
    st = rc >= 0 ? lf_query_prepare(&q, c, &err) : NULL;
    if (rc >= 0 && st == NULL) rc = -LF_EINTERNAL;

    /* caps are counted in memory: per lead, and per lead and UTC day */
    json_t *per_lead = json_object(), *per_day = json_object(), *lead = NULL;
    char lead_id[40] = "";
    int64_t scanned = 0, matched = 0, capped = 0, points = 0, leads = 0;
    int truncated = 0;
    unsigned needs = rc >= 0 ? lf_conds_needs(rule.conds) : 0;
    json_t *org = NULL;
    while (rc >= 0 && (rc = lf_stmt_step(st)) == LF_DB_ROW) {
        if (scanned == BACKTEST_MAX) {
            truncated = 1;
            break;
        }
        scanned++;
        const char *lid = lf_stmt_text(st, 1);
        if ((needs || rule.max_per_lead || rule.max_per_day) && strcmp(lid, lead_id) != 0) {
            snprintf(lead_id, sizeof lead_id, "%s", lid);
            json_decref(lead);
            json_decref(org);
            lead = org = NULL;
            int lrc = 0;
            if (needs) lead = lf_lead_context(c, tenant, lead_id, &lrc);
            const char *oid = json_string_value(json_object_get(lead, "organization_id"));
            if (oid && (needs & LF_COND_NEEDS_ORG)) org = lf_org_context(c, tenant, oid, &lrc);
        }
        json_t *meta = lf_json_parse(lf_stmt_text(st, 7));
        struct lf_cond_ctx cc = {
            .event_type = lf_stmt_text(st, 2),
            .source = lf_stmt_text(st, 3),
            .utm_source = lf_stmt_text(st, 4),
            .utm_medium = lf_stmt_text(st, 5),
            .utm_campaign = lf_stmt_text(st, 6),
            .metadata = json_is_object(meta) ? meta : NULL,
            .lead = lead,
            .organization = org,
        };
        int hit = lf_conds_match(rule.conds, &cc);
        json_decref(meta);
        if (!hit) continue;
        matched++;
        char day_key[64];
        int64_t at = lf_stmt_int(st, 8);
        snprintf(day_key, sizeof day_key, "%s:%lld", lid, (long long)(at / LF_DAY_MS));
        json_int_t nl = json_integer_value(json_object_get(per_lead, lid));
        json_int_t nd = json_integer_value(json_object_get(per_day, day_key));
        if ((rule.max_per_lead && nl >= rule.max_per_lead) ||
            (rule.max_per_day && nd >= rule.max_per_day)) {
            capped++;
            continue;
        }
        if (nl == 0) leads++;
        json_object_set_new(per_lead, lid, json_integer(nl + 1));
        if (rule.max_per_day) json_object_set_new(per_day, day_key, json_integer(nd + 1));
        points += rule.points;
    }
    if (st) lf_stmt_done(st);
    lf_db_release(c);
    if (rc >= 0) {
        char a[LF_TIME_BUFSZ], b[LF_TIME_BUFSZ];
        json_t *o = json_pack(
            "{s:{s:s, s:s}, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:b}", "rule", "id", rule.id, "slug",
            rule.slug, "since", lf_time_format(since, a, sizeof a), "until",
            lf_time_format(until, b, sizeof b), "events_scanned", (json_int_t)scanned,
            "events_matched", (json_int_t)matched, "events_capped", (json_int_t)capped, "leads",
            (json_int_t)leads, "points", (json_int_t)points, "truncated", truncated);
        lf_reply_json(r, 200, o);
    } else {
        lf_reply_error(r, rc, &err);
    }
    json_decref(per_lead);
    json_decref(per_day);
    json_decref(lead);
    json_decref(org);
    lf_score_rule_clear(&rule);
    lf_query_free(&q);
    json_decref(body);
    lf_err_clear(&err);
}

/* GET /leads/{id}/score: the points by category, each with the rows that make them up (the
 * newest SCORE_ROWS_MAX rows), expired rows listed apart. */
static void lead_score(struct lf_req *r)
{
    struct lf_conn *c = lf_api_conn(r, LF_DB_READ);
    if (c == NULL) return;
    struct lf_err err = {0};
    const char *tenant = r->auth.tenant_id;
    char live[40];
    int rc = lf_lead_resolve_id(c, tenant, r->params[0], live);
    json_t *lead = rc == 1 ? lf_lead_context(c, tenant, live, &rc) : NULL;
    if (lead == NULL) {
        lf_db_release(c);
        if (rc >= 0) lf_err_set(&err, -LF_ENOTFOUND, "no lead %s", r->params[0]);
        lf_reply_error(r, rc >= 0 ? -LF_ENOTFOUND : rc, &err);
        lf_err_clear(&err);
        return;
    }
    struct lf_stmt *st = lf_db_prepare(
        c,
        "SELECT h.id, h.rule_id, s.slug, s.name, h.event_id, e.event_type, h.category, h.points,"
        " h.occurred_at, h.created_at, h.expires_at, h.expired_at FROM score_history h"
        " LEFT JOIN scoring_rules s ON s.tenant_id = h.tenant_id AND s.id = h.rule_id"
        " LEFT JOIN events e ON e.id = h.event_id"
        " WHERE h.tenant_id = ? AND h.lead_id = ? ORDER BY h.created_at DESC, h.id DESC LIMIT ?",
        &err);
    json_t *cats = json_object(), *expired = json_array();
    for (int i = 0; i < LF_CAT_COUNT; i++)
        json_object_set_new(cats, lf_category_name(i),
                            json_pack("{s:i, s:[]}", "points", 0, "rows"));
    int n = 0;
    rc = st ? lf_stmt_bind(st, "ssi", tenant, live, SCORE_ROWS_MAX + 1) : -LF_EINTERNAL;
    while (rc >= 0 && (rc = lf_stmt_step(st)) == LF_DB_ROW) {
        if (++n > SCORE_ROWS_MAX) break;
        json_t *row =
            json_pack("{s:s, s:{s:s, s:o, s:o}, s:{s:s, s:o}, s:s, s:i, s:o, s:o, s:o, s:o}", "id",
                      lf_stmt_text(st, 0), "rule", "id", lf_stmt_text(st, 1), "slug",
                      lf_json_text(lf_stmt_text(st, 2)), "name", lf_json_text(lf_stmt_text(st, 3)),
                      "event", "id", lf_stmt_text(st, 4), "type", lf_json_text(lf_stmt_text(st, 5)),
                      "category", lf_stmt_text(st, 6), "points", (int)lf_stmt_int(st, 7),
                      "occurred_at", lf_json_time(lf_stmt_int(st, 8), lf_stmt_isnull(st, 8)),
                      "scored_at", lf_json_time(lf_stmt_int(st, 9), 0), "expires_at",
                      lf_json_time(lf_stmt_int(st, 10), lf_stmt_isnull(st, 10)), "expired_at",
                      lf_json_time(lf_stmt_int(st, 11), lf_stmt_isnull(st, 11)));
        if (!lf_stmt_isnull(st, 11)) {
            json_array_append_new(expired, row);
            continue;
        }
        json_t *cat = json_object_get(cats, lf_stmt_text(st, 6));
        if (cat == NULL) {
            json_decref(row);
            continue;
        }
        json_array_append_new(json_object_get(cat, "rows"), row);
    }
    if (st) lf_stmt_done(st);
    /* the sums are the lead's stored ones, which the rows (when not truncated) add up to */
    static const char *const cols[] = {"demographic_score", "engagement_score", "behavior_score"};
    for (int i = 0; i < LF_CAT_COUNT; i++)
        json_object_set(json_object_get(cats, lf_category_name(i)), "points",
                        json_object_get(lead, cols[i]));
    json_t *tiers = lf_settings_get(c, tenant, "tiers");
    lf_db_release(c);
    if (rc >= 0) {
        int total = (int)json_integer_value(json_object_get(lead, "total_score"));
        json_t *o = json_pack("{s:s, s:i, s:s, s:O, s:O, s:b}", "lead_id", live, "total", total,
                              "tier", lf_tier_of(total, tiers), "categories", cats, "expired",
                              expired, "truncated", n > SCORE_ROWS_MAX);
        if (strcmp(live, r->params[0]) != 0)
            json_object_set_new(o, "requested_id", json_string(r->params[0]));
        lf_reply_json(r, 200, o);
    } else {
        lf_reply_error(r, rc, &err);
    }
    json_decref(tiers);
    json_decref(cats);
    json_decref(expired);
    json_decref(lead);
    lf_err_clear(&err);
}

const struct lf_route lf_scoring_routes[] = {
    {"GET", "/api/v1/scoring/rules", score_list, LF_AUTH_TOKEN, LF_ROLES_READ, 0, 0, 0},
    {"POST", "/api/v1/scoring/rules", score_create, LF_AUTH_TOKEN, LF_ROLES_MANAGE, 1, 0, 0},
    {"GET", "/api/v1/scoring/rules/{id}", score_get, LF_AUTH_TOKEN, LF_ROLES_READ, 0, 0, 0},
    {"PATCH", "/api/v1/scoring/rules/{id}", score_patch, LF_AUTH_TOKEN, LF_ROLES_MANAGE, 1, 0, 0},
    {"DELETE", "/api/v1/scoring/rules/{id}", score_delete, LF_AUTH_TOKEN, LF_ROLES_MANAGE, 0, 0, 0},
    {"POST", "/api/v1/scoring/rules/{id}/backtest", backtest, LF_AUTH_TOKEN, LF_ROLES_READ, 1, 0,
     0},
    {"GET", "/api/v1/intent/rules", intent_list, LF_AUTH_TOKEN, LF_ROLES_READ, 0, 0, 0},
    {"POST", "/api/v1/intent/rules", intent_create, LF_AUTH_TOKEN, LF_ROLES_MANAGE, 1, 0, 0},
    {"GET", "/api/v1/intent/rules/{id}", intent_get, LF_AUTH_TOKEN, LF_ROLES_READ, 0, 0, 0},
    {"PATCH", "/api/v1/intent/rules/{id}", intent_patch, LF_AUTH_TOKEN, LF_ROLES_MANAGE, 1, 0, 0},
    {"DELETE", "/api/v1/intent/rules/{id}", intent_delete, LF_AUTH_TOKEN, LF_ROLES_MANAGE, 0, 0, 0},
    {"GET", "/api/v1/leads/{id}/score", lead_score, LF_AUTH_TOKEN, LF_ROLES_READ, 0, 0, 0},
    {NULL, NULL, NULL, 0, 0, 0, 0, 0},
};
