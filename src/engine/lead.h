/* The lead model: finding leads by identity, creating them, attaching identities, filling the
 * profile, linking organizations, merging, and the lead as JSON. Shared by the resolve stage,
 * the leads API and bulk import; every function works inside the caller's transaction. */
#ifndef LF_LEAD_H
#define LF_LEAD_H

#include "engine/identity.h"
#include "store/db.h"

#include <jansson.h>
#include <stdint.h>

#define LF_LEAD_MATCH_MAX LF_ID_KINDS_

/* The distinct leads holding any of ids, oldest first (ids are UUIDv7, so by id). Returns the
 * count (0..LF_LEAD_MATCH_MAX) or a negative code. When known is not NULL, known[i] is set to 1
 * for each identity some lead holds already, 0 for a new one. */
int lf_lead_find(struct lf_conn *c, const char *tenant_id, const struct lf_identity *ids, int n,
                 char out[][40], int *known);

/* What a lead has already, so callers can skip writes that would change nothing. */
struct lf_lead_snapshot {
    int has_org;         /* organization_id is set */
    unsigned has_fields; /* bit i: profile field i (LF_LEAD_PROFILE_FIELDS order) is set */
};

/* Reads the snapshot of a lead. Returns LF_DB_ROW, LF_DB_DONE (no such lead) or negative. */
int lf_lead_snapshot(struct lf_conn *c, const char *tenant_id, const char *lead_id,
                     struct lf_lead_snapshot *out);

/* Creates an empty lead with an id chosen here (written to id, 40 bytes). Returns 0 or a
 * negative code. */
int lf_lead_create(struct lf_conn *c, const char *tenant_id, int64_t now, char id[40]);

/* Attaches the identities the lead does not hold yet. Returns the number attached, or
 * -LF_ECONFLICT when one belongs to another lead (nothing is attached then, since the caller
 * runs this in a savepoint), or another negative code. Sets leads.email from the email
 * identity when empty. */
int lf_lead_attach(struct lf_conn *c, const char *tenant_id, const char *lead_id,
                   const struct lf_identity *ids, int n, int64_t now);

/* Profile fields taken from a lead object (events, API, import). */
#define LF_LEAD_PROFILE_FIELDS "first_name", "last_name", "job_title", "phone", "country", "region"

/* Sets the profile fields present in obj. With overwrite 0 only empty fields are filled (an
 * event never overwrites); with 1 given values replace stored ones (a person's edit, an
 * import). Returns 0 or a negative code. */
int lf_lead_fill(struct lf_conn *c, const char *tenant_id, const char *lead_id, json_t *obj,
                 int overwrite, int64_t now);

/* As lf_lead_fill without overwrite, but only for fields the snapshot says are empty; runs no
 * statement when there is nothing to fill. */
int lf_lead_fill_missing(struct lf_conn *c, const char *tenant_id, const char *lead_id, json_t *obj,
                         const struct lf_lead_snapshot *snap, int64_t now);

/* Links the lead to an organization when it has none: found by the email's domain (free-mail
 * domains excepted) or the company name (case-insensitive), created when new. Returns 0 or a
 * negative code. */
int lf_lead_link_org(struct lf_conn *c, const char *tenant_id, const char *lead_id,
                     const char *company, const char *email, int64_t now);

/* Merges loser into survivor: events, score rows, intent signals, deals (one per pipeline:
 * the loser's deal in a pipeline the survivor already has is closed as lost, reason
 * "merged"), tasks and identities move; profile fields the survivor lacks are taken over;
 * first touch becomes the earlier, last touch the later; the loser keeps merged_into.
 * Emits lead.merged (cause names what asked for it). Returns 0, -LF_ENOTFOUND when either lead
 * is missing or already merged, or a negative code. */
int lf_lead_merge(struct lf_conn *c, const char *tenant_id, const char *survivor, const char *loser,
                  const char *cause, int64_t now);

/* 1 when the email is on the tenant's erasure list (suppressed), 0 when not, or negative. */
int lf_lead_suppressed(struct lf_conn *c, const char *tenant_id, const char *email);
/* The erasure-list hash of an email: lower-case hex SHA-256 of the normalised email. */
void lf_email_hash(const char *email, char out[65]);

/* The survivor of id: id itself, or where its merges lead. Writes out (40 bytes). Returns 1,
 * 0 when the tenant has no such lead, or negative. */
int lf_lead_resolve_id(struct lf_conn *c, const char *tenant_id, const char *id, char out[40]);

/* The lead as conditions read it (struct lf_cond_ctx): a flat object with every field of
 * LF_COND_LEAD_TEXT and LF_COND_LEAD_NUMBER, plus for the score and intent stages
 * "hot_armed" (integer), "score_expires_at" and "intent_expires_at" (integer or null) and
 * "intent_summary" (the stored JSON text or null). NULL when missing
 * (*rc LF_DB_DONE) or on a store error (*rc negative). The caller owns the result. */
json_t *lf_lead_context(struct lf_conn *c, const char *tenant_id, const char *id, int *rc);
/* The organization as conditions read it: LF_COND_ORG_TEXT fields. NULL as above. */
json_t *lf_org_context(struct lf_conn *c, const char *tenant_id, const char *id, int *rc);

/* The columns lf_lead_row_json reads, in its order. */
#define LF_LEAD_COLS                                                                               \
    "id, email, first_name, last_name, job_title, phone, country, region, organization_id,"        \
    " status, lifecycle_stage, routing_status, pipeline_id, routed_at, demographic_score,"         \
    " engagement_score, behavior_score, total_score, primary_intent, intent_confidence,"           \
    " intent_summary, first_touch_source, first_touch_campaign, first_touch_at,"                   \
    " last_touch_source, last_touch_campaign, last_touch_at, last_activity_at, merged_into,"       \
    " created_at, updated_at"

/* A row of LF_LEAD_COLS as JSON; tiers is the tenant's "tiers" setting (NULL: defaults). */
json_t *lf_lead_row_json(struct lf_stmt *st, json_t *tiers);

/* The lead as JSON: profile, status, score by category with its tier, intent, attribution,
 * times; with full, also its identities and organization. NULL when missing (rc is then
 * LF_DB_DONE) or on a store error (rc negative). */
json_t *lf_lead_json(struct lf_conn *c, const char *tenant_id, const char *id, int full,
                     json_t *tiers, int *rc);

#endif
