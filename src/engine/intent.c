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

/* Stores a lead's intent derived from summary ({intent: points} of the window; borrowed):
 * primary intent, confidence, the summary, and expires (when the oldest counted signal leaves
 * the window; -1 for none); emits lead.intent_detected when the primary intent changes to a
 * new one. Sets *primary_out (borrowed from summary, may be NULL) and *conf_out. Returns 1
 * when the primary intent changed, 0 when not, or a negative code. */
static int store_intent(struct lf_conn *c, const char *tenant_id, const char *lead_id,
                        json_t *summary, int min_evidence, int64_t expires, const char *previous,
                        const char *cause, int64_t now, const char **primary_out, int *conf_out)
{
    int top, total;
    const char *primary = lf_intent_primary(summary, &top, &total);
    int confidence = primary ? lf_intent_confidence(top, total, min_evidence) : 0;
    char *text = json_object_size(summary) ? lf_json_dump(summary) : NULL;
    int rc = lf_db_run(c, NULL,
                       "UPDATE leads SET primary_intent = ?, intent_confidence = ?,"
                       " intent_summary = ?, intent_expires_at = ?, updated_at = ?"
                       " WHERE tenant_id = ? AND id = ?",
                       "sisNIss", primary, confidence, text, expires, now, tenant_id, lead_id);
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
    if (primary_out) *primary_out = primary;
    if (conf_out) *conf_out = confidence;
    return rc < 0 ? rc : changed;
}

int lf_intent_recompute(struct lf_conn *c, const char *tenant_id, const char *lead_id,
                        const struct lf_score_settings *s, const char *previous, const char *cause,
                        int64_t now)
{
    int64_t window = s->intent_window_days * LF_DAY_MS;
    struct lf_stmt *st = lf_db_prepare(c,
                                       "SELECT intent, SUM(points), MIN(detected_at)"
                                       " FROM intent_signals WHERE tenant_id = ? AND lead_id = ?"
                                       " AND detected_at > ? GROUP BY intent ORDER BY intent",
                                       NULL);
    if (st == NULL) return -LF_EINTERNAL;
    lf_stmt_bind(st, "ssI", tenant_id, lead_id, now - window);
    json_t *summary = json_object();
    int64_t oldest = -1;
    int rc;
    while ((rc = lf_stmt_step(st)) == LF_DB_ROW) {
        json_object_set_new(summary, lf_stmt_text(st, 0), json_integer(lf_stmt_int(st, 1)));
        int64_t t = lf_stmt_int(st, 2);
        if (oldest < 0 || t < oldest) oldest = t;
    }
    lf_stmt_done(st);
    if (rc >= 0)
        rc = store_intent(c, tenant_id, lead_id, summary, s->intent_min_evidence,
                          oldest < 0 ? -1 : oldest + window, previous, cause, now, NULL, NULL);
    json_decref(summary);
    return rc;
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
    json_t *added = json_array(), *points = json_array(); /* [intent, points] in the window */
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
        if (rc == 1) {
            json_array_append_new(added, json_string(r->slug));
            if (at > ctx->now - rs->settings.intent_window_days * LF_DAY_MS)
                json_array_append_new(points, json_pack("[s, i]", r->intent, r->points));
        }
    }
    if (rc >= 0 && json_array_size(added) > 0) {
        const char *prev = json_string_value(json_object_get(ev->lead_ctx, "primary_intent"));
        json_t *exp = json_object_get(ev->lead_ctx, "intent_expires_at");
        json_t *summary =
            lf_json_parse(json_string_value(json_object_get(ev->lead_ctx, "intent_summary")));
        const char *primary = NULL;
        int confidence = 0;
        if ((json_is_integer(exp) && json_integer_value(exp) <= ctx->now) ||
            (!json_is_null(summary) && !json_is_object(summary))) {
            /* a counted signal left the window: sum the window again */
            rc = lf_intent_recompute(ctx->conn, ev->tenant_id, ev->lead_id, &rs->settings, prev,
                                     ev->id, ctx->now);
            /* later stages read the lead as it is now: load it again when they ask */
            json_decref(ev->lead_ctx);
            json_decref(ev->org_ctx);
            ev->lead_ctx = ev->org_ctx = NULL;
            ev->ctx_loaded = 0;
        } else {
            /* add the new signals to the summary: the cost does not grow with the lead's
             * history (a crawler on one address sends thousands of events) */
            int64_t window = rs->settings.intent_window_days * LF_DAY_MS;
            int64_t expires = json_is_integer(exp) ? json_integer_value(exp) : -1;
            if (!json_is_object(summary)) {
                json_decref(summary);
                summary = json_object();
            }
            size_t i;
            json_t *p;
            json_array_foreach(points, i, p)
            {
                const char *intent = json_string_value(json_array_get(p, 0));
                json_int_t n = json_integer_value(json_object_get(summary, intent));
                json_object_set_new(summary, intent,
                                    json_integer(n + json_integer_value(json_array_get(p, 1))));
            }
            if (json_array_size(points) && (expires < 0 || at + window < expires))
                expires = at + window;
            rc = store_intent(ctx->conn, ev->tenant_id, ev->lead_id, summary,
                              rs->settings.intent_min_evidence, expires, prev, ev->id, ctx->now,
                              &primary, &confidence);
            if (rc >= 0) { /* later stages read the lead as it is now */
                char *text = lf_json_dump(summary);
                json_object_set_new(ev->lead_ctx, "intent_summary", json_string(text));
                json_object_set_new(ev->lead_ctx, "primary_intent", lf_json_text(primary));
                json_object_set_new(ev->lead_ctx, "intent_confidence", json_integer(confidence));
                json_object_set_new(ev->lead_ctx, "intent_expires_at", json_integer(expires));
                free(text);
            }
        }
        json_decref(summary);
        json_object_set_new(ev->result, "intent", json_pack("{s:O}", "rules", added));
    }
    json_decref(added);
    json_decref(points);
    return rc < 0 ? rc : 0;
}

const struct lf_stage lf_stage_intent = {"intent", 0, run, 0};
