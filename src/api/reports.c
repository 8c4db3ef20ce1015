/* Reports over the tenant's leads: how many sit in each score tier (with the bounds used),
 * and per primary intent in each confidence band. Merged and erased leads are not counted. */
#include "api/api.h"
#include "engine/settings.h"

#include <stdint.h>
#include <string.h>

static const char *const tier_names[] = {"cold", "warm", "mql", "hot"};

static void score_tiers(struct lf_req *r)
{
    struct lf_conn *c = lf_api_conn(r, LF_DB_READ);
    if (c == NULL) return;
    json_t *tiers = lf_settings_get(c, r->auth.tenant_id, "tiers");
    json_t *items = json_array();
    int64_t total = 0;
    int rc = 0;
    for (int i = 0; i < 4 && rc >= 0; i++) {
        int lo, hi;
        lf_tier_range(tier_names[i], tiers, &lo, &hi);
        int64_t n = 0;
        rc = lf_db_int(c, NULL, &n,
                       "SELECT count(*) FROM leads WHERE tenant_id = ? AND total_score >= ?"
                       " AND total_score < ? AND merged_into IS NULL AND erased_at IS NULL",
                       "sII", r->auth.tenant_id, (int64_t)lo, (int64_t)hi);
        total += n;
        json_array_append_new(
            items, json_pack("{s:s, s:o, s:o, s:I}", "tier", tier_names[i], "min_score",
                             lo == INT32_MIN ? json_null() : json_integer(lo), "max_score",
                             hi == INT32_MAX ? json_null() : json_integer(hi - 1), "leads",
                             (json_int_t)n));
    }
    json_decref(tiers);
    lf_db_release(c);
    if (rc < 0) {
        json_decref(items);
        lf_reply_error(r, rc, NULL);
        return;
    }
    lf_reply_json(r, 200, json_pack("{s:o, s:I}", "tiers", items, "total", (json_int_t)total));
}

/* Confidence bands: low < 40 <= medium < 70 <= high. */
static void intents(struct lf_req *r)
{
    struct lf_conn *c = lf_api_conn(r, LF_DB_READ);
    if (c == NULL) return;
    struct lf_stmt *st = lf_db_prepare(
        c,
        "SELECT primary_intent, CASE WHEN intent_confidence >= 70 THEN 'high'"
        " WHEN intent_confidence >= 40 THEN 'medium' ELSE 'low' END, count(*) FROM leads"
        " WHERE tenant_id = ? AND merged_into IS NULL AND erased_at IS NULL"
        " GROUP BY 1, 2 ORDER BY 1, 2",
        NULL);
    int rc = st ? lf_stmt_bind(st, "s", r->auth.tenant_id) : -LF_EINTERNAL;
    json_t *by = json_object();
    int64_t none = 0, total = 0;
    while (rc >= 0 && (rc = lf_stmt_step(st)) == LF_DB_ROW) {
        int64_t n = lf_stmt_int(st, 2);
        total += n;
        const char *intent = lf_stmt_text(st, 0);
        if (intent == NULL) {
            none += n;
            continue;
        }
        json_t *o = json_object_get(by, intent);
        if (o == NULL) {
            o = json_pack("{s:s, s:i, s:{s:i, s:i, s:i}}", "intent", intent, "leads", 0, "bands",
                          "low", 0, "medium", 0, "high", 0);
            json_object_set_new(by, intent, o);
        }
        json_object_set_new(o, "leads",
                            json_integer(json_integer_value(json_object_get(o, "leads")) + n));
        json_object_set_new(json_object_get(o, "bands"), lf_stmt_text(st, 1), json_integer(n));
    }
    if (st) lf_stmt_done(st);
    lf_db_release(c);
    if (rc < 0) {
        json_decref(by);
        lf_reply_error(r, rc, NULL);
        return;
    }
    json_t *items = json_array();
    const char *key;
    json_t *v;
    json_object_foreach(by, key, v) json_array_append(items, v);
    json_decref(by);
    lf_reply_json(r, 200,
                  json_pack("{s:o, s:I, s:I, s:{s:[i,i], s:[i,i], s:[i,i]}}", "intents", items,
                            "no_intent", (json_int_t)none, "total", (json_int_t)total, "bands",
                            "low", 0, 39, "medium", 40, 69, "high", 70, 100));
}

const struct lf_route lf_reports_routes[] = {
    {"GET", "/api/v1/reports/score-tiers", score_tiers, LF_AUTH_TOKEN, LF_ROLES_READ, 0, 0, 0},
    {"GET", "/api/v1/reports/intents", intents, LF_AUTH_TOKEN, LF_ROLES_READ, 0, 0, 0},
    {NULL, NULL, NULL, 0, 0, 0, 0, 0},
};
