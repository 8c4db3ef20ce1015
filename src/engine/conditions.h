/* The condition language of scoring, intent and automation rules (DESIGN §5).
 *
 * A rule's conditions are a JSON list of {"field", "op", "value"}, all of which must hold;
 * {"any": [ … ]} is an OR group (groups nest). Fields: event_type, source, utm.source,
 * utm.medium, utm.campaign, metadata.<path> (dotted, nested objects; a segment of digits
 * indexes an array), lead.<field>, organization.<field>. Ops: eq ne in not_in contains prefix
 * suffix gt gte lt lte exists not_exists. Text comparisons ignore (ASCII) case.
 *
 * A list is validated and compiled once (lf_conds_compile); matching (lf_conds_match) reads
 * only the context it is given, never the database, and allocates nothing. */
#ifndef LF_CONDITIONS_H
#define LF_CONDITIONS_H

#include "core/err.h"

#include <jansson.h>

/* What a condition reads. Every member may be NULL (the field is then absent). lead and
 * organization are flat objects keyed by field name (see LF_COND_LEAD_* below); numbers are
 * JSON integers, text is JSON strings or null. */
struct lf_cond_ctx {
    const char *event_type;
    const char *source;
    const char *utm_source, *utm_medium, *utm_campaign;
    json_t *metadata;
    json_t *lead;
    json_t *organization;
};

/* The lead fields a condition may name: text ones, then numeric ones. */
#define LF_COND_LEAD_TEXT                                                                          \
    "email", "first_name", "last_name", "job_title", "phone", "country", "region", "status",       \
        "lifecycle_stage", "routing_status", "pipeline_id", "organization_id", "primary_intent",   \
        "first_touch_source", "first_touch_campaign", "last_touch_source", "last_touch_campaign"
#define LF_COND_LEAD_NUMBER                                                                        \
    "total_score", "demographic_score", "engagement_score", "behavior_score", "intent_confidence"
/* The organization fields (all text). */
#define LF_COND_ORG_TEXT "name", "domain", "vat_id", "country", "industry", "size"

/* What a compiled list reads besides the event itself. */
#define LF_COND_NEEDS_LEAD 1u
#define LF_COND_NEEDS_ORG  2u

struct lf_conds;

/* Validates and compiles a conditions list (NULL or [] compile to "always true"). On error
 * returns NULL and sets err to -LF_EINVAL with one field per problem, named from prefix, e.g.
 * prefix "conditions" gives "conditions[1].op" or "conditions[0].any[2].value", and a message
 * that says what is allowed ("unknown op 'equals' (allowed: eq, ne, …)", "must be a number
 * for gt", "unknown lead field 'jobtitle'"). */
struct lf_conds *lf_conds_compile(json_t *list, const char *prefix, struct lf_err *err);

/* 1 when every condition holds for ctx, else 0. */
int lf_conds_match(const struct lf_conds *c, const struct lf_cond_ctx *ctx);

/* LF_COND_NEEDS_* bits: whether any condition names a lead or organization field. */
unsigned lf_conds_needs(const struct lf_conds *c);

void lf_conds_free(struct lf_conds *c);

#endif
