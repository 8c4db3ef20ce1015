/* A tenant's scoring and intent rules, and the settings the score and intent stages read,
 * compiled once into memory and shared by every worker.
 *
 * The rules API bumps the tenant's row in rule_versions in the transaction that changes a
 * rule or setting; lf_rules_get compares that version with the compiled set's and recompiles
 * when it moved, so a change applies to the next batch any worker in any process claims. */
#ifndef LF_RULES_H
#define LF_RULES_H

#include "engine/automation.h"
#include "engine/conditions.h"
#include "store/db.h"

#include <jansson.h>
#include <stdint.h>

enum lf_score_category { LF_CAT_DEMOGRAPHIC, LF_CAT_ENGAGEMENT, LF_CAT_BEHAVIOR, LF_CAT_COUNT };

/* "demographic" | "engagement" | "behavior"; and back (-1 for an unknown name). */
const char *lf_category_name(int cat);
int lf_category_parse(const char *name);

struct lf_score_rule {
    char id[40];
    char *slug;
    char *event_type; /* or "*" */
    struct lf_conds *conds;
    int points; /* may be negative */
    int category;
    int max_per_day;        /* 0: no cap */
    int max_per_lead;       /* 0: no cap */
    int expires_after_days; /* 0: never */
};

struct lf_intent_rule {
    char id[40];
    char *slug;
    char *intent;
    char *event_type;
    struct lf_conds *conds;
    int points;
    int max_per_lead; /* 0: no cap */
};

/* The routing setting (DESIGN §6), with its defaults where unset. */
struct lf_routing_settings {
    int min_score;            /* 40 */
    int min_confidence;       /* 60 */
    int conflict_min_score;   /* 60 */
    int ambiguity_margin;     /* 15 */
    int discovery_min_score;  /* 60 */
    json_t *intent_pipelines; /* {intent: pipeline slug} (owned), NULL for none */
};

/* The settings the stages read, with the defaults of DESIGN §5 where unset. */
struct lf_score_settings {
    int mql_threshold;       /* scoring.mql_threshold, 40 */
    int hot_threshold;       /* scoring.hot_threshold, 80 */
    int hot_rearm_margin;    /* scoring.hot_rearm_margin, 10 */
    int intent_window_days;  /* intent.window_days, 180 */
    int intent_min_evidence; /* intent.min_evidence, 30 */
    json_t *tiers;           /* the "tiers" setting (owned), NULL for the defaults */
    struct lf_routing_settings routing;
};

/* Which rules apply to one event type, in priority order ("*" rules merged in). */
struct lf_rule_list {
    int *idx; /* indexes into the set's score or intent array */
    int n;
};

/* A tenant's compiled rules; read-only once built, reference counted. */
struct lf_ruleset {
    char tenant_id[40];
    int64_t version;
    struct lf_score_rule *score;
    int nscore;
    struct lf_intent_rule *intent;
    int nintent;
    struct lf_score_settings settings;
    unsigned needs; /* LF_COND_NEEDS_* of every rule's conditions */
    /* Per event type: the applicable rules. Sorted by type for bsearch; types no rule names
     * use the "*" lists. */
    char **types;
    struct lf_rule_list *score_by_type, *intent_by_type;
    int ntypes;
    struct lf_rule_list score_any, intent_any;
    struct lf_auto_rule *autos; /* active automation rules in priority order */
    int nauto;
    int auto_triggers[LF_TRIG_COUNT]; /* how many of them have each trigger */
    int refs;                         /* protected by the cache lock */
};

/* Lends the tenant's current rule set, compiling it when the stored version moved. Reads
 * one row (the version) on c. Returns 0 and sets *out (release with lf_rules_release), or a
 * negative code with err set. */
int lf_rules_get(struct lf_conn *c, const char *tenant_id, struct lf_ruleset **out,
                 struct lf_err *err);
void lf_rules_release(struct lf_ruleset *rs);

/* The score and intent rules for an event type. Borrowed from rs. */
const struct lf_rule_list *lf_rules_score_for(const struct lf_ruleset *rs, const char *type);
const struct lf_rule_list *lf_rules_intent_for(const struct lf_ruleset *rs, const char *type);

/* 1 when s names an event type as rules may (letters, digits, '_', '.', '-', ':', as ingest
 * takes them; at most 100 bytes) or is "*". */
int lf_event_type_ok(const char *s);

/* Marks the tenant's rules changed (in the caller's transaction). Returns 0 or negative. */
int lf_rules_bump(struct lf_conn *c, const char *tenant_id);

/* Reads the score/intent/routing settings of a tenant (defaults where unset); free them with
 * lf_score_settings_clear. */
void lf_score_settings_load(struct lf_conn *c, const char *tenant_id,
                            struct lf_score_settings *out);
void lf_score_settings_clear(struct lf_score_settings *s);

/* Validates a scoring or intent rule body (creating: the required keys must be present; else
 * a patch of the given ones). Every problem goes to err (not NULL) as a field. Returns 0 or
 * -LF_EINVAL. */
int lf_score_rule_check(json_t *body, int creating, struct lf_err *err);
int lf_intent_rule_check(json_t *body, int creating, struct lf_err *err);

/* Compiles one stored scoring rule row's values. Returns 0, or -LF_EINVAL (err set). */
int lf_score_rule_compile(struct lf_score_rule *r, const char *id, const char *slug,
                          const char *event_type, const char *conditions, int points,
                          const char *category, int max_per_day, int max_per_lead,
                          int expires_after_days, struct lf_err *err);
void lf_score_rule_clear(struct lf_score_rule *r);

/* Frees the whole cache (at exit, for leak checks). */
void lf_rules_cache_free(void);

#endif
