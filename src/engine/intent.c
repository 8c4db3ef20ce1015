/* Stage 4, intent: matching intent rules add signals (once per event and rule, within the
 * rule's per-lead cap); the lead's intent is then re-derived from the signals of the window:
 * points per intent, the primary intent (a tie means none) and its confidence
 * round(100 * top / max(total, min_evidence)). A signal's time is the event's occurred_at
 * (never later than now), so old events count only while they are inside the window. */
#include "engine/emit.h"
#include "engine/lead.h"
#include "engine/score.h"
#include "engine/stage.h"
#include "core/crypto.h"
#include "core/jsonx.h"

#include <stdlib.h>
#include <string.h>

int lf_intent_confidence(int top, int total, int min_evidence)
{
    int64_t d = total > min_evidence ? total : min_evidence;
    if (d <= 0 || top <= 0) return 0;
    int64_t v = (200 * (int64_t)top + d) / (2 * d); /* round half up */
    return v > 100 ? 100 : (int)v;
}

const char *lf_intent_primary(json_t *summary, int *top, int *total)
{
    const char *key, *best = NULL;
    json_t *v;
    int first = 0, second = 0, sum = 0;
    json_object_foreach(summary, key, v)
    {
        int p = (int)json_integer_value(v);
        if (p > 0) sum += p;
        if (best == NULL || p > first) {
            second = best ? first : second;
            first = p;
            best = key;
        } else if (p > second) {
            second = p;
        }
    }
    *top = first > 0 ? first : 0;
    *total = sum;
    return first > 0 && first > second ? best : NULL;
}

int lf_intent_recompute(struct lf_conn *c, const char *tenant_id, const char *lead_id,
                        const struct lf_score_settings *s, const char *previous, const char *cause,
                        int64_t now)
{
    struct lf_stmt *st = lf_db_prepare(c,
                                       "SELECT intent, SUM(points) FROM intent_signals"
                                       " WHERE tenant_id = ? AND lead_id = ? AND detected_at > ?"
                                       " GROUP BY intent ORDER BY intent",
                                       NULL);
    if (st == NULL) return -LF_EINTERNAL;
    lf_stmt_bind(st, "ssI", tenant_id, lead_id, now - s->intent_window_days * LF_DAY_MS);
    json_t *summary = json_object();
    int rc;
    while ((rc = lf_stmt_step(st)) == LF_DB_ROW)
        json_object_set_new(summary, lf_stmt_text(st, 0), json_integer(lf_stmt_int(st, 1)));
    lf_stmt_done(st);
    int top, total;
    const char *primary = lf_intent_primary(summary, &top, &total);
    int confidence = primary ? lf_intent_confidence(top, total, s->intent_min_evidence) : 0;
    char *text = json_object_size(summary) ? lf_json_dump(summary) : NULL;
    if (rc >= 0)
        rc = lf_db_run(c, NULL,
                       "UPDATE leads SET primary_intent = ?, intent_confidence = ?,"
                       " intent_summary = ?, updated_at = ? WHERE tenant_id = ? AND id = ?",
                       "sisIss", primary, confidence, text, now, tenant_id, lead_id);
    int changed = (primary == NULL) != (previous == NULL) ||
                  (primary && previous && strcmp(primary, previous) != 0);
    if (rc >= 0 && changed && primary) {
        json_t *data =
            json_pack("{s:s, s:i, s:o, s:O}", "intent", primary, "confidence", confidence,
                      "previous_intent", lf_json_text(previous), "summary", summary);
        rc = lf_emit(c, tenant_id, "lead.intent_detected", lead_id, cause, data, now);
        json_decref(data);
    }
    free(text);
    json_decref(summary);
    return rc < 0 ? rc : changed;
}

static int run(struct lf_stage_ctx *ctx, struct lf_event *ev, struct lf_err *err)
{
    if (ev->lead_id == NULL) return 0;
    struct lf_ruleset *rs;
    int rc = lf_stage_rules(ctx, ev->tenant_id, &rs, err);
    if (rc < 0) return rc;
    const struct lf_rule_list *list = lf_rules_intent_for(rs, ev->event_type);
    if (list->n == 0) return 0;
    struct lf_cond_ctx cc;
    rc = lf_stage_cond_ctx(ctx, ev, rs->needs | LF_COND_NEEDS_LEAD, &cc);
    if (rc < 0) return rc;
    if (ev->lead_ctx == NULL) return 0;

    int64_t at = ev->occurred_at < ctx->now ? ev->occurred_at : ctx->now;
    json_t *added = json_array();
    for (int k = 0; k < list->n && rc >= 0; k++) {
        const struct lf_intent_rule *r = &rs->intent[list->idx[k]];
        if (!lf_conds_match(r->conds, &cc)) continue;
        if (r->max_per_lead) {
            int64_t n = 0;
            rc = lf_db_int(ctx->conn, NULL, &n,
                           "SELECT count(*) FROM intent_signals WHERE tenant_id = ?"
                           " AND lead_id = ? AND rule_id = ?",
                           "sss", ev->tenant_id, ev->lead_id, r->id);
            if (rc < 0 || n >= r->max_per_lead) continue;
        }
        char id[40];
        lf_uuid7(id);
        rc = lf_db_run(ctx->conn, NULL,
                       "INSERT INTO intent_signals (id, tenant_id, lead_id, intent, rule_id,"
                       " event_id, points, detected_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                       " ON CONFLICT (event_id, rule_id) DO NOTHING",
                       "ssssssiI", id, ev->tenant_id, ev->lead_id, r->intent, r->id, ev->id,
                       r->points, at);
        if (rc == 1) json_array_append_new(added, json_string(r->slug));
    }
    if (rc >= 0 && json_array_size(added) > 0) {
        const char *prev = json_string_value(json_object_get(ev->lead_ctx, "primary_intent"));
        rc = lf_intent_recompute(ctx->conn, ev->tenant_id, ev->lead_id, &rs->settings, prev, ev->id,
                                 ctx->now);
        json_object_set_new(ev->result, "intent", json_pack("{s:O}", "rules", added));
    }
    json_decref(added);
    return rc < 0 ? rc : 0;
}

const struct lf_stage lf_stage_intent = {"intent", 0, run};
