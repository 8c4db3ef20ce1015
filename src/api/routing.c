/* The routing setting (thresholds, the intent → pipeline map, the assignment strategy) and
 * routing a lead by hand. The setting is read by the route stage from the rule cache, so a
 * change bumps the tenant's rule version in its transaction. */
#include "api/api.h"
#include "core/crypto.h"
#include "engine/automation.h"
#include "engine/deal.h"
#include "engine/lead.h"
#include "engine/route.h"
#include "engine/rules.h"
#include "engine/settings.h"
#include "core/timeutil.h"

#include <stdio.h>
#include <string.h>

/* The integer keys: name, lowest and highest allowed value. */
static const struct {
    const char *key;
    int lo, hi;
} int_keys[] = {
    {"min_score", -100000, 100000},           {"min_confidence", 0, 100},
    {"conflict_min_score", -100000, 100000},  {"ambiguity_margin", 0, 100},
    {"discovery_min_score", -100000, 100000},
};
#define N_INT_KEYS (sizeof int_keys / sizeof int_keys[0])

/* The effective setting: stored values over the defaults. */
static json_t *routing_doc(struct lf_conn *c, const char *tenant)
{
    struct lf_score_settings s;
    lf_score_settings_load(c, tenant, &s);
    const struct lf_routing_settings *rt = &s.routing;
    json_t *map = rt->intent_pipelines ? json_deep_copy(rt->intent_pipelines) : json_object();
    json_t *doc = json_pack(
        "{s:i, s:i, s:i, s:i, s:i, s:s, s:o}", "min_score", rt->min_score, "min_confidence",
        rt->min_confidence, "conflict_min_score", rt->conflict_min_score, "ambiguity_margin",
        rt->ambiguity_margin, "discovery_min_score", rt->discovery_min_score, "assignment_strategy",
        lf_strategy_name(lf_strategy_default(c, tenant)), "intent_pipelines", map);
    lf_score_settings_clear(&s);
    return doc;
}

static void get_routing(struct lf_req *r)
{
    struct lf_conn *c = lf_api_conn(r, LF_DB_READ);
    if (c == NULL) return;
    json_t *doc = routing_doc(c, r->auth.tenant_id);
    lf_db_release(c);
    lf_reply_json(r, 200, doc);
}

/* Checks body's keys and merges them into doc; pipelines named in intent_pipelines must exist
 * (stored by slug). Every problem goes to err. */
static void merge_routing(struct lf_conn *c, const char *tenant, json_t *body, json_t *doc,
                          struct lf_err *err)
{
    const char *key;
    json_t *v;
    json_object_foreach(body, key, v)
    {
        size_t i;
        for (i = 0; i < N_INT_KEYS; i++)
            if (strcmp(key, int_keys[i].key) == 0) break;
        if (i < N_INT_KEYS) {
            if (!json_is_integer(v) || json_integer_value(v) < int_keys[i].lo ||
                json_integer_value(v) > int_keys[i].hi)
                lf_err_field(err, key, "must be an integer from %d to %d", int_keys[i].lo,
                             int_keys[i].hi);
            else
                json_object_set(doc, key, v);
        } else if (strcmp(key, "assignment_strategy") == 0) {
            if (lf_strategy_parse(json_string_value(v)) < 0)
                lf_err_field(err, key, "must be round_robin, capacity_based or manual");
            else
                json_object_set(doc, key, v);
        } else if (strcmp(key, "intent_pipelines") == 0) {
            if (!json_is_object(v)) {
                lf_err_field(err, key, "must be an object mapping intents to pipelines");
                continue;
            }
            json_t *map = json_object();
            const char *intent;
            json_t *p;
            json_object_foreach(v, intent, p)
            {
                char field[320], id[40] = "", slug[64] = "";
                snprintf(field, sizeof field, "intent_pipelines.%.256s", intent);
                if (!lf_api_is_slug(intent)) {
                    lf_err_field(err, field, "an intent is a slug ([a-z0-9_-], 1-63)");
                    continue;
                }
                if (!json_is_string(p)) {
                    lf_err_field(err, field, "must name a pipeline (id or slug)");
                    continue;
                }
                int rc = lf_pipeline_find(c, tenant, json_string_value(p), id, slug);
                if (rc < 0) {
                    lf_err_set(err, rc, "the store failed");
                    break;
                }
                if (*id == '\0')
                    lf_err_field(err, field, "no pipeline %s", json_string_value(p));
                else
                    json_object_set_new(map, intent, json_string(slug));
            }
            json_object_set_new(doc, key, map);
        } else {
            lf_err_field(err, key,
                         "unknown key; routing takes min_score, min_confidence,"
                         " conflict_min_score, ambiguity_margin, discovery_min_score,"
                         " assignment_strategy and intent_pipelines");
        }
    }
}

static void put_routing(struct lf_req *r)
{
    struct lf_err err = {0};
    json_t *body = lf_req_json(r, &err);
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
    int rc = lf_automate_begin(c);
    json_t *doc = rc == 0 ? routing_doc(c, tenant) : NULL;
    if (doc) merge_routing(c, tenant, body, doc, &err);
    if (rc == 0 && err.code) rc = err.code;
    if (rc == 0) rc = lf_settings_put(c, tenant, "routing", doc, lf_now_ms());
    if (rc == 0) rc = lf_rules_bump(c, tenant);
    if (rc == 0) rc = lf_automate_commit(c, r->auth.tenant_id, lf_now_ms(), &err);
    if (rc < 0) lf_automate_rollback(c);
    json_decref(doc);
    doc = rc == 0 ? routing_doc(c, tenant) : NULL;
    lf_db_release(c);
    if (doc)
        lf_reply_json(r, 200, doc);
    else
        lf_reply_error(r, rc, &err);
    json_decref(body);
    lf_err_clear(&err);
}

/* POST /leads/{id}/route {pipeline, owner?}: a person routes the lead, whatever its status. */
static void route_lead(struct lf_req *r)
{
    struct lf_err err = {0};
    json_t *body = lf_req_json(r, &err);
    const char *pipeline = NULL, *owner = NULL;
    if (body) {
        const char *key;
        json_t *v;
        json_object_foreach(body, key, v)
        {
            if (strcmp(key, "pipeline") == 0 && json_is_string(v))
                pipeline = json_string_value(v);
            else if (strcmp(key, "owner") == 0 && (json_is_string(v) || json_is_null(v)))
                owner = json_string_value(v);
            else if (strcmp(key, "pipeline") == 0 || strcmp(key, "owner") == 0)
                lf_err_field(&err, key, "must be a string (an id or a slug)");
            else
                lf_err_field(&err, key, "unknown key; route takes pipeline and owner");
        }
        if (pipeline == NULL && !err.code) lf_err_field(&err, "pipeline", "is required");
    }
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
    char lead[40], deal[40] = "", cause[80];
    char op[40]; /* a client's X-Request-Id may repeat: the cause must not */
    lf_uuid7(op);
    snprintf(cause, sizeof cause, "api:%s", op);
    int rc = lf_automate_begin(c);
    int found = rc == 0 ? lf_lead_resolve_id(c, tenant, r->params[0], lead) : rc;
    if (found == 0)
        rc = lf_err_set(&err, -LF_ENOTFOUND, "no lead %s", r->params[0]);
    else if (found < 0)
        rc = found;
    if (rc == 0)
        rc = lf_route_lead(c, tenant, lead, pipeline, owner, "manual", r->auth.sub, cause,
                           lf_now_ms(), 1, deal, &err);
    if (rc == 0) rc = lf_automate_commit(c, r->auth.tenant_id, lf_now_ms(), &err);
    if (rc < 0) lf_automate_rollback(c);
    json_t *out = NULL;
    if (rc == 0) {
        int rl, rd;
        json_t *tiers = lf_settings_get(c, tenant, "tiers");
        out = json_pack("{s:o, s:o}", "lead", lf_lead_json(c, tenant, lead, 0, tiers, &rl), "deal",
                        lf_deal_json(c, tenant, deal, 1, &rd));
        json_decref(tiers);
    }
    lf_db_release(c);
    if (out)
        lf_reply_json(r, 200, out);
    else
        lf_reply_error(r, rc < 0 ? rc : -LF_EINTERNAL, &err);
    json_decref(body);
    lf_err_clear(&err);
}

const struct lf_route lf_routing_routes[] = {
    {"GET", "/api/v1/settings/routing", get_routing, LF_AUTH_TOKEN, LF_ROLES_READ, 0, 0, 0},
    {"PUT", "/api/v1/settings/routing", put_routing, LF_AUTH_TOKEN, LF_ROLES_MANAGE, 1, 0, 0},
    {"POST", "/api/v1/leads/{id}/route", route_lead, LF_AUTH_TOKEN, LF_ROLES_WRITE, 1, 0, 0},
    {NULL, NULL, NULL, 0, 0, 0, 0, 0},
};
