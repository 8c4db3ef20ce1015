/* The automation engine (DESIGN §7): rules of one trigger and one action, checked when saved,
 * compiled into the tenant's rule set, and run after routing in the transaction of what
 * triggered them.
 *
 * Triggers: event (an event type, "*" for any, and conditions), score_threshold (score_gte:
 * once per lead and threshold), intent_detected (intent, confidence_gte), stage_entered (a
 * pipeline's stage: every move into it, by routing, a person or an action), time_in_stage
 * (days and hours in a stage, optionally one pipeline or stage: checked by the stage_timers
 * job, once per deal and stage entry). Actions: move_to_stage, assign_owner, send_notification,
 * create_task, sync_moco, update_field, route_to_pipeline, send_webhook; the three that leave
 * the process write an outbox row (deliveries) in the same transaction.
 *
 * Every execution claims (rule, lead, trigger key) in automation_logs first: the unique key
 * makes once-only triggers once-only however many workers see the event, and a replay never
 * runs a rule twice. Then the depth (a chain stops at LF_AUTO_MAX_DEPTH) and the hourly budget
 * are checked, the action runs inside its own savepoint (a failing action undoes only itself),
 * and the log row, the rule's counters and, for a success, automation.executed record it. */
#ifndef LF_AUTOMATION_H
#define LF_AUTOMATION_H

#include "core/err.h"
#include "engine/conditions.h"
#include "store/db.h"

#include <jansson.h>
#include <stdint.h>

#define LF_AUTO_MAX_DEPTH 5

enum lf_auto_trigger {
    LF_TRIG_EVENT,
    LF_TRIG_SCORE,
    LF_TRIG_INTENT,
    LF_TRIG_STAGE,
    LF_TRIG_TIME,
    LF_TRIG_COUNT
};

enum lf_auto_action {
    LF_ACT_MOVE,
    LF_ACT_ASSIGN,
    LF_ACT_NOTIFY,
    LF_ACT_TASK,
    LF_ACT_MOCO,
    LF_ACT_FIELD,
    LF_ACT_ROUTE,
    LF_ACT_WEBHOOK,
    LF_ACT_COUNT
};

/* Names and back (-1 for an unknown name). */
const char *lf_auto_trigger_name(int trigger);
int lf_auto_trigger_parse(const char *name);
const char *lf_auto_action_name(int action);
int lf_auto_action_parse(const char *name);

/* A compiled rule (one row of automation_rules). */
struct lf_auto_rule {
    char id[40];
    char *name;
    int trigger;            /* enum lf_auto_trigger */
    int action;             /* enum lf_auto_action */
    json_t *trigger_config; /* as stored (owned) */
    json_t *action_config;  /* as stored (owned) */
    int max_per_hour;       /* 0: no budget */
    /* From trigger_config: */
    const char *event_type; /* event: a type or "*" (borrowed from trigger_config) */
    struct lf_conds *conds; /* event: its conditions (always true when none) */
    int score_gte;          /* score_threshold */
    const char *intent;     /* intent_detected: NULL for any intent */
    int confidence_gte;     /* intent_detected */
    const char *pipeline;   /* stage_entered, time_in_stage: a pipeline id or NULL */
    const char *stage;      /* stage_entered, time_in_stage: a stage id or NULL */
    int64_t in_stage_ms;    /* time_in_stage */
};

/* Checks a rule body from the API: name, description, trigger_type, trigger_config,
 * action_type, action_config, priority, is_active, max_executions_per_hour. creating: the
 * required keys must be present; else a patch, whose configs are checked against the types in
 * current (the stored rule as JSON: the patch's types win). Every problem goes to err as a
 * field ("trigger_config.score_gte", "action_config.title": "unknown placeholder {lead.nme}
 * (known: …)"). References to stored things (pipelines, stages, members, subscriptions) are
 * checked and normalised on c: a stage_entered/time_in_stage trigger's "pipeline" and
 * "stage" (id or slug) become ids. Returns 0 (body may have been rewritten in place) or
 * -LF_EINVAL, or another negative code for a store error. */
int lf_auto_rule_check(struct lf_conn *c, const char *tenant_id, json_t *body, int creating,
                       json_t *current, struct lf_err *err);

/* Compiles a stored rule. Returns 0, or -LF_EINVAL when the stored configs no longer compile
 * (the rule is then left out of the set). */
int lf_auto_rule_compile(struct lf_auto_rule *r, const char *id, const char *name,
                         const char *trigger_type, const char *trigger_config,
                         const char *action_type, const char *action_config, int max_per_hour);
void lf_auto_rule_clear(struct lf_auto_rule *r);

/* Templates: text with placeholders {lead.first_name}, {lead.last_name}, {lead.email},
 * {lead.score}, {lead.intent}, {lead.company}, {deal.name}, {deal.value}, {deal.stage},
 * {deal.pipeline}, {owner.name}, {owner.email}. */

/* Checks every placeholder of text; a problem goes to err as field. Returns 0 or -LF_EINVAL. */
int lf_template_check(const char *text, const char *field, struct lf_err *err);
/* Replaces every placeholder with its value from vars (an object keyed "lead.first_name" …;
 * a missing or null value is empty). The caller frees the result. */
char *lf_template_render(const char *text, json_t *vars);

/* The text of a named message (send_notification's "template": hot_lead, lead_routed,
 * deal_created, deal_won, deal_lost, stage_entered), or NULL. */
const char *lf_auto_message_text(const char *name);

struct lf_ruleset;

/* What can trigger rules: an event (external, or a domain event another stage, a person or an
 * action wrote), or a deal's time in its stage (the stage_timers job). */
struct lf_auto_fact {
    const char *event_id;   /* the event (NULL for a timer) */
    const char *event_type; /* NULL for a timer */
    const char *source;
    const char *utm_source, *utm_medium, *utm_campaign;
    json_t *metadata;     /* the event's metadata (domain events: their data); may be NULL */
    const char *lead_id;  /* facts without a lead trigger nothing */
    const char *deal_id;  /* the deal it is about, or NULL */
    int depth;            /* the chain depth of what wrote it (0: not automation) */
    int internal;         /* 1: a domain event the engine wrote (captured), never a client's */
    int64_t timer_key_at; /* timer: the deal's stage_entered_at */
};

/* One run of the engine for a tenant, in the caller's transaction on conn. */
struct lf_auto_run {
    struct lf_conn *conn;
    const char *tenant_id;
    struct lf_ruleset *rules; /* the tenant's set (borrowed) */
    int64_t now;
    json_t *report;   /* when not NULL, an array: one object per execution is appended */
    const char *only; /* when not NULL, only this rule runs (dry runs, timers) */
};

/* Runs the rules fact triggers, then the rules the domain events captured since capture index
 * *next trigger (and those their actions write, chain depth permitting), advancing *next.
 * Capture must be on (lf_emit_capture_start). Returns the number of executions, or a negative
 * code for a store error (action failures are logged, not returned). */
int lf_automate(struct lf_auto_run *run, const struct lf_auto_fact *fact, size_t *next,
                struct lf_err *err);

/* 1 when the tenant's set has active automation rules. */
int lf_automate_any(const struct lf_ruleset *rs);

/* For API transactions: begins a transaction on c with capture on. lf_automate_commit runs the
 * rules the transaction's domain events trigger and commits (rolling back on a store error);
 * lf_automate_rollback rolls back. Both stop the capture. Return 0 or a negative code. */
int lf_automate_begin(struct lf_conn *c);
int lf_automate_commit(struct lf_conn *c, const char *tenant_id, int64_t now, struct lf_err *err);
int lf_automate_rollback(struct lf_conn *c);

/* The automation rules about a stage (stage_entered and time_in_stage rules naming it), as the
 * stage's "automation" list: [{id, name, trigger_type, action_type, is_active}] in priority
 * order. NULL on a store error (*rc negative). */
json_t *lf_auto_stage_rules(struct lf_conn *c, const char *tenant_id, const char *stage_id,
                            int *rc);

/* Deletes the stage_entered and time_in_stage rules naming stage_id (or, when stage_id is NULL,
 * pipeline_id) and bumps the rule version when any went. Returns how many, or negative. */
int lf_auto_stage_rules_delete(struct lf_conn *c, const char *tenant_id, const char *pipeline_id,
                               const char *stage_id);

/* The dry run of POST /automation/rules/{id}/test: would rule_id fire for the lead (and event:
 * an event id, an object {event_type, metadata, source, utm_*}, or NULL), and what it would
 * do. Runs the action, and the rules the events it writes trigger, in a transaction that is
 * rolled back. Returns an object {would_fire, reason, trigger_key, executions: [one per
 * execution, the rule's first, chained ones with their depth], events: [the domain events
 * they would write]} or NULL with err set (-LF_ENOTFOUND lead, rule or event,
 * -LF_EINVAL event). c must be the writer and not in a transaction. */
json_t *lf_automate_dry_run(struct lf_conn *c, const char *tenant_id, const char *rule_id,
                            const char *lead_id, json_t *event, int64_t now, struct lf_err *err);

/* The time_in_stage sweep for one tenant (NULL: all): fires due rules for deals whose time in
 * their stage passed the rule's, once per deal and stage entry. Works in transactions of at
 * most 200 deals. Adds counts to result. Returns 0 or a negative code. */
struct lf_db;
int lf_automate_timers(struct lf_db *db, const char *tenant_id, int64_t now, json_t *result,
                       const _Atomic int *stop, struct lf_err *err);

#endif
