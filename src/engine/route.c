/* Stage 5, route: after each processed event, a lead still in the pool (routing_status
 * unrouted) is
 *   - routed, when its score reaches min_score, its intent confidence min_confidence, the
 *     runner-up intent is more than ambiguity_margin points of confidence behind, and the
 *     setting maps its primary intent to a pipeline;
 *   - sent to manual review with one lead.routing_conflict, when its score reaches
 *     conflict_min_score but it has intent signals that do not decide (ambiguous, too little
 *     confidence, or an intent no pipeline takes);
 *   - sent to the Discovery pipeline, when its score reaches discovery_min_score and it has
 *     no intent signal at all;
 *   - otherwise left in the pool.
 * Routed and manual-review leads are never moved again here; only a person or a rule does. The
 * decision reads the lead as the score and intent stages left it (ev->lead_ctx), so a lead
 * below every threshold costs no statement. */
#include "engine/route.h"
#include "engine/deal.h"
#include "engine/emit.h"
#include "engine/rules.h"
#include "engine/score.h"
#include "engine/settings.h"
#include "engine/stage.h"
#include "core/crypto.h"
#include "core/jsonx.h"

#include <stdio.h>
#include <string.h>

/* The tenant's first Discovery pipeline. LF_DB_ROW, LF_DB_DONE or negative. */
static int discovery_pipeline(struct lf_conn *c, const char *tenant_id, char id[40], char slug[64])
{
    struct lf_stmt *st = lf_db_prepare(c,
                                       "SELECT id, slug FROM pipelines WHERE tenant_id = ?"
                                       " AND is_discovery = 1 ORDER BY position, id LIMIT 1",
                                       NULL);
    if (st == NULL) return -LF_EINTERNAL;
    lf_stmt_bind(st, "s", tenant_id);
    int rc = lf_stmt_step(st);
    if (rc == LF_DB_ROW) {
        snprintf(id, 40, "%s", lf_stmt_text(st, 0));
        snprintf(slug, 64, "%s", lf_stmt_text(st, 1));
    }
    lf_stmt_done(st);
    return rc;
}

static int log_decision(struct lf_conn *c, const char *tenant_id, const char *lead_id,
                        const char *kind, const char *pipeline_id, const char *deal_id,
                        const char *previous, const char *by, int64_t first_event_at, int64_t now)
{
    char id[40];
    lf_uuid7(id);
    return lf_db_run(c, NULL,
                     "INSERT INTO routing_log (id, tenant_id, lead_id, kind, pipeline_id, deal_id,"
                     " previous, decided_by, first_event_at, created_at)"
                     " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     "ssssssssNI", id, tenant_id, lead_id, kind, pipeline_id, deal_id, previous, by,
                     first_event_at, now);
}

/* The lead's routing status, pipeline and first event time. LF_DB_ROW, LF_DB_DONE or <0. */
static int lead_routing(struct lf_conn *c, const char *tenant_id, const char *lead_id,
                        char status[24], char pipeline[40], int64_t *first)
{
    struct lf_stmt *st = lf_db_prepare(c,
                                       "SELECT routing_status, pipeline_id,"
                                       " COALESCE(first_touch_at, created_at) FROM leads"
                                       " WHERE tenant_id = ? AND id = ? AND merged_into IS NULL",
                                       NULL);
    if (st == NULL) return -LF_EINTERNAL;
    lf_stmt_bind(st, "ss", tenant_id, lead_id);
    int rc = lf_stmt_step(st);
    if (rc == LF_DB_ROW) {
        snprintf(status, 24, "%s", lf_stmt_text(st, 0));
        const char *p = lf_stmt_text(st, 1);
        snprintf(pipeline, 40, "%s", p ? p : "");
        *first = lf_stmt_int(st, 2);
    }
    lf_stmt_done(st);
    return rc;
}

int lf_route_lead(struct lf_conn *c, const char *tenant_id, const char *lead_id,
                  const char *pipeline, const char *owner, const char *kind, const char *by,
                  const char *cause, int64_t now, int with_deal, char deal_id[40],
                  struct lf_err *err)
{
    char status[24], previous_pipeline[40], pid[40], slug[64], deal[40] = "";
    int64_t first = 0;
    int rc = lead_routing(c, tenant_id, lead_id, status, previous_pipeline, &first);
    if (rc == LF_DB_DONE) return lf_err_set(err, -LF_ENOTFOUND, "no lead %s", lead_id);
    if (rc < 0) return rc;
    rc = lf_pipeline_find(c, tenant_id, pipeline, pid, slug);
    if (rc == LF_DB_DONE) return lf_err_field(err, "pipeline", "no pipeline %s", pipeline);
    if (rc < 0) return rc;
    rc = lf_db_run(c, err,
                   "UPDATE leads SET pipeline_id = ?, routing_status = 'routed', routed_at = ?,"
                   " updated_at = ? WHERE tenant_id = ? AND id = ?",
                   "sIIss", pid, now, now, tenant_id, lead_id);
    struct lf_deal_new d = {.lead_id = lead_id,
                            .pipeline_id = pid,
                            .expected_close_at = -1,
                            .owner = owner,
                            .strategy = -1,
                            .by = by,
                            .cause = cause};
    int created = rc < 0 ? rc : with_deal ? lf_deal_create(c, tenant_id, &d, now, deal, err) : 0;
    rc = created < 0 ? created : 0;
    if (rc >= 0 && created == 0 && owner &&
        *deal) /* the lead's open deal there gets the owner asked for */
        rc = lf_deal_assign(c, tenant_id, deal, owner, now, err);
    if (rc >= 0)
        rc = log_decision(c, tenant_id, lead_id, kind, pid, *deal ? deal : NULL, status, by, first,
                          now);
    if (rc >= 0) {
        json_t *data =
            json_pack("{s:s, s:s, s:s, s:s, s:s?, s:s, s:s?, s:b}", "pipeline_id", pid, "pipeline",
                      slug, "deal_id", *deal ? deal : NULL, "kind", kind, "by", by,
                      "previous_status", status, "previous_pipeline_id",
                      *previous_pipeline ? previous_pipeline : NULL, "deal_created", created == 1);
        rc = lf_emit(c, tenant_id, "lead.routed", lead_id, cause, data, now);
        json_decref(data);
    }
    if (rc >= 0 && deal_id) snprintf(deal_id, 40, "%s", deal);
    return rc < 0 ? rc : 0;
}

int lf_routing_pipeline_renamed(struct lf_conn *c, const char *tenant_id, const char *old_slug,
                                const char *new_slug, int64_t now)
{
    if (new_slug && strcmp(old_slug, new_slug) == 0) return 0;
    json_t *routing = lf_settings_get(c, tenant_id, "routing");
    json_t *map = json_object_get(routing, "intent_pipelines");
    const char *intent;
    json_t *v, *tmp;
    int changed = 0, rc = 0;
    json_object_foreach_safe(map, tmp, intent, v)
    {
        if (!json_is_string(v) || strcmp(json_string_value(v), old_slug) != 0) continue;
        if (new_slug)
            json_object_set_new(map, intent, json_string(new_slug));
        else
            json_object_del(map, intent);
        changed = 1;
    }
    if (changed) rc = lf_settings_put(c, tenant_id, "routing", routing, now);
    if (changed && rc == 0) rc = lf_rules_bump(c, tenant_id);
    json_decref(routing);
    return rc < 0 ? rc : 0;
}

static int ctx_int(json_t *o, const char *key)
{
    return (int)json_integer_value(json_object_get(o, key));
}

/* Sends the lead to manual review with one lead.routing_conflict naming the candidates. */
static int conflict(struct lf_stage_ctx *ctx, struct lf_event *ev, const char *reason,
                    json_t *summary, const struct lf_routing_settings *rt, int min_evidence)
{
    char status[24], previous[40];
    int64_t first = 0;
    int rc = lead_routing(ctx->conn, ev->tenant_id, ev->lead_id, status, previous, &first);
    if (rc != LF_DB_ROW) return rc < 0 ? rc : 0;
    int top = 0, total = 0;
    lf_intent_primary(summary, &top, &total);
    json_t *candidates = json_array();
    const char *intent;
    json_t *v;
    json_object_foreach(summary, intent, v)
    {
        int p = (int)json_integer_value(v);
        if (p <= 0) continue;
        const char *slug = json_string_value(json_object_get(rt->intent_pipelines, intent));
        char pid[40] = "", pslug[64] = "";
        if (slug && (rc = lf_pipeline_find(ctx->conn, ev->tenant_id, slug, pid, pslug)) < 0) break;
        json_array_append_new(candidates,
                              json_pack("{s:s, s:i, s:i, s:s?, s:s?}", "intent", intent, "points",
                                        p, "confidence",
                                        lf_intent_confidence(p, total, min_evidence), "pipeline_id",
                                        *pid ? pid : NULL, "pipeline", *pslug ? pslug : NULL));
    }
    if (rc >= 0)
        rc = lf_db_run(ctx->conn, NULL,
                       "UPDATE leads SET routing_status = 'manual_review', updated_at = ?"
                       " WHERE tenant_id = ? AND id = ? AND routing_status = 'unrouted'",
                       "Iss", ctx->now, ev->tenant_id, ev->lead_id);
    if (rc >= 0)
        rc = log_decision(ctx->conn, ev->tenant_id, ev->lead_id, "conflict", NULL, NULL, status,
                          "router", first, ctx->now);
    if (rc >= 0) {
        json_t *data =
            json_pack("{s:s, s:i, s:O, s:i, s:O}", "reason", reason, "score",
                      ctx_int(ev->lead_ctx, "total_score"), "primary_intent",
                      json_object_get(ev->lead_ctx, "primary_intent"), "confidence",
                      ctx_int(ev->lead_ctx, "intent_confidence"), "candidates", candidates);
        rc = lf_emit(ctx->conn, ev->tenant_id, "lead.routing_conflict", ev->lead_id, ev->id, data,
                     ctx->now);
        json_decref(data);
    }
    json_decref(candidates);
    if (rc >= 0) {
        json_object_set_new(ev->lead_ctx, "routing_status", json_string("manual_review"));
        json_object_set_new(ev->result, "route",
                            json_pack("{s:s, s:s}", "decision", "manual_review", "reason", reason));
    }
    return rc < 0 ? rc : 0;
}

static int route_to(struct lf_stage_ctx *ctx, struct lf_event *ev, const char *pipeline,
                    const char *kind, struct lf_err *err)
{
    char deal[40];
    int rc = lf_route_lead(ctx->conn, ev->tenant_id, ev->lead_id, pipeline, NULL, kind, "router",
                           ev->id, ctx->now, 1, deal, err);
    if (rc < 0) return rc;
    json_object_set_new(ev->lead_ctx, "routing_status", json_string("routed"));
    json_object_set_new(
        ev->result, "route",
        json_pack("{s:s, s:s, s:s}", "decision", kind, "pipeline", pipeline, "deal_id", deal));
    return 0;
}

static int run(struct lf_stage_ctx *ctx, struct lf_event *ev, struct lf_err *err)
{
    if (ev->lead_id == NULL) return 0;
    struct lf_ruleset *rs;
    int rc = lf_stage_rules(ctx, ev->tenant_id, &rs, err);
    if (rc < 0) return rc;
    struct lf_cond_ctx cc;
    rc = lf_stage_cond_ctx(ctx, ev, LF_COND_NEEDS_LEAD, &cc);
    if (rc < 0) return rc;
    json_t *lead = ev->lead_ctx;
    if (lead == NULL) return 0;
    const char *status = json_string_value(json_object_get(lead, "routing_status"));
    if (status == NULL || strcmp(status, "unrouted") != 0) return 0;
    const struct lf_routing_settings *rt = &rs->settings.routing;
    int score = ctx_int(lead, "total_score");
    int lowest = rt->min_score;
    if (rt->conflict_min_score < lowest) lowest = rt->conflict_min_score;
    if (rt->discovery_min_score < lowest) lowest = rt->discovery_min_score;
    if (score < lowest) return 0; /* the common case: nothing to decide */

    json_t *summary = lf_json_parse(json_string_value(json_object_get(lead, "intent_summary")));
    if (!json_is_object(summary)) {
        json_decref(summary);
        summary = json_object();
    }
    int min_evidence = rs->settings.intent_min_evidence;
    int top = 0, total = 0, second = 0, signals = 0;
    const char *primary = lf_intent_primary(summary, &top, &total);
    const char *key;
    json_t *v;
    json_object_foreach(summary, key, v)
    {
        int p = (int)json_integer_value(v);
        if (p > 0) signals = 1;
        if (p > 0 && p <= top && (primary == NULL || strcmp(key, primary) != 0) && p > second)
            second = p;
    }
    int conf = lf_intent_confidence(top, total, min_evidence);
    int runner_up = lf_intent_confidence(second, total, min_evidence);
    int ambiguous = primary == NULL || (second > 0 && conf - runner_up <= rt->ambiguity_margin);
    const char *pipeline =
        primary ? json_string_value(json_object_get(rt->intent_pipelines, primary)) : NULL;
    char pid[40], pslug[64];
    int decided = signals && !ambiguous && conf >= rt->min_confidence, have_pipeline = 0;
    if (decided && pipeline) {
        rc = lf_pipeline_find(ctx->conn, ev->tenant_id, pipeline, pid, pslug);
        have_pipeline = rc == LF_DB_ROW;
    }
    if (rc < 0) {
        /* fall through to the cleanup */
    } else if (decided && have_pipeline) {
        /* a clear intent with a pipeline: routed once the score is there, else it waits in the
         * pool (also when min_score is set above conflict_min_score) */
        if (score >= rt->min_score) rc = route_to(ctx, ev, pslug, "auto", err);
    } else if (signals && score >= rt->conflict_min_score) {
        rc = conflict(ctx, ev,
                      ambiguous                   ? "ambiguous"
                      : conf < rt->min_confidence ? "low_confidence"
                                                  : "no_pipeline",
                      summary, rt, min_evidence);
    } else if (!signals && score >= rt->discovery_min_score) {
        rc = discovery_pipeline(ctx->conn, ev->tenant_id, pid, pslug);
        if (rc == LF_DB_ROW) rc = route_to(ctx, ev, pslug, "discovery", err);
    }
    json_decref(summary);
    return rc < 0 ? rc : 0;
}

const struct lf_stage lf_stage_route = {"route", 0, run, 0};
