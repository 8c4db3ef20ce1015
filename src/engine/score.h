/* Scoring and intent: what the score and intent stages, the decay job and the API share. */
#ifndef LF_SCORE_H
#define LF_SCORE_H

#include "engine/rules.h"
#include "store/db.h"

#include <jansson.h>
#include <stdint.h>

#define LF_DAY_MS INT64_C(86400000)

/* What changed a lead's total, for lead.scored and the decay job's counts. */
struct lf_score_change {
    int old_total, new_total;
    int hot_armed;         /* before the change */
    const char *lifecycle; /* before the change; may be NULL */
    const char *reason;    /* "event" | "decay" | … */
    json_t *rules;         /* borrowed, may be NULL: the rule slugs that applied */
    /* set by lf_score_settle: */
    const char *new_lifecycle; /* after the change (static or ch->lifecycle) */
    int new_armed;
};

/* Settles what follows from a lead's new total (already stored): lifecycle subscriber|lead ->
 * mql at the MQL threshold; lead.hot when the total reaches the hot threshold while armed
 * (then disarmed); re-armed once the total is hot_rearm_margin (or more) below it; lead.scored when
 * the total changed. cause makes the emitted events' keys (an event id, "decay:<run>"). Sets
 * *hot to 1 when lead.hot was emitted (hot may be NULL). Returns 0 or a negative code. */
int lf_score_settle(struct lf_conn *c, const char *tenant_id, const char *lead_id,
                    struct lf_score_change *ch, const struct lf_score_settings *s,
                    const char *cause, int64_t now, int *hot);

/* Recomputes a lead's category sums, total and score_expires_at from its unexpired score
 * rows (marking rows past expires_at expired first), then settles the change (rules, may be
 * NULL, are named in lead.scored). Sets *total_out to the new total and *hot as
 * lf_score_settle does (both may be NULL). Returns 1 when the total changed, 0 when not, or
 * a negative code. */
int lf_score_recompute(struct lf_conn *c, const char *tenant_id, const char *lead_id,
                       const struct lf_score_settings *s, const char *reason, const char *cause,
                       int64_t now, json_t *rules, int *total_out, int *hot);

/* intent_confidence = round(100 * top / max(total, min_evidence)), clamped to 0..100. */
int lf_intent_confidence(int top, int total, int min_evidence);

/* The primary intent of a summary ({intent: points}): the intent with the most points when
 * it is positive and no other has as many (a tie means none). Sets *top and *total (the sum
 * of positive points). Returns the name (borrowed from summary) or NULL. */
const char *lf_intent_primary(json_t *summary, int *top, int *total);

/* Re-derives a lead's intent_summary, primary_intent and intent_confidence from its signals
 * in the window ending at now; emits lead.intent_detected when the primary intent changes to
 * a new one (previous: the stored primary intent, may be NULL). Returns 1 when the primary
 * intent changed, 0 when not, or a negative code. */
int lf_intent_recompute(struct lf_conn *c, const char *tenant_id, const char *lead_id,
                        const struct lf_score_settings *s, const char *previous, const char *cause,
                        int64_t now);

#endif
