/* Sales work: deals, the owners they are assigned to, and tasks. Shared by the route stage,
 * the API and automation. Every function works inside the caller's transaction, writes the
 * stage history and the domain events, and keeps team_members.current_leads equal to the
 * number of open deals the member owns.
 *
 * `by` names who acted ("router", a token subject); `cause` what led to it (an event id, or
 * "api:<request id>"), which keys the domain events so a replay never emits twice. */
#ifndef LF_DEAL_H
#define LF_DEAL_H

#include "core/err.h"
#include "store/db.h"

#include <jansson.h>
#include <stdint.h>

/* The tenant's pipeline named by ref (id or slug): its id and, when slug is not NULL, its slug
 * (64 bytes). LF_DB_ROW, LF_DB_DONE (none) or a negative code. */
int lf_pipeline_find(struct lf_conn *c, const char *tenant_id, const char *ref, char id[40],
                     char *slug);

/* Owner assignment strategies. */
enum lf_strategy { LF_ASSIGN_ROUND_ROBIN, LF_ASSIGN_CAPACITY, LF_ASSIGN_MANUAL };

/* "round_robin" | "capacity_based" | "manual" and back; -1 for an unknown name. */
int lf_strategy_parse(const char *name);
const char *lf_strategy_name(int strategy);
/* The tenant's routing.assignment_strategy setting (round_robin when unset). */
int lf_strategy_default(struct lf_conn *c, const char *tenant_id);

/* Picks an owner among the members who are active, have role, are not away at now
 * (away_until unset or passed), own fewer open deals than max_leads and are not except (may
 * be NULL); preferring those in region (case-insensitive) when any of them is. round_robin:
 * the one assigned longest ago (never assigned first, then the oldest member); capacity_based:
 * the lowest current_leads / max_leads, ties as round robin. Changes nothing. Returns 1 and
 * writes out, 0 when nobody is eligible or the strategy is manual, or a negative code. */
int lf_owner_pick(struct lf_conn *c, const char *tenant_id, const char *role, const char *region,
                  int strategy, const char *except, int64_t now, char out[40]);

/* The largest deal value in cents (100 billion in the currency's units): sums over a
 * pipeline stay far from the 64-bit limit. */
#define LF_DEAL_VALUE_MAX 10000000000000LL

struct lf_deal_new {
    const char *lead_id;
    const char *pipeline_id;
    const char *stage_id;      /* NULL: the pipeline's first open stage */
    const char *name;          /* NULL: "<lead name or email> — <pipeline name>" */
    int64_t value_cents;       /* 0..LF_DEAL_VALUE_MAX */
    const char *currency;      /* NULL: EUR */
    int64_t expected_close_at; /* -1: none */
    const char *owner;         /* a member id; NULL: picked by strategy */
    int strategy;              /* when owner is NULL; -1: the tenant's default */
    const char *by;
    const char *cause;
};

/* Creates an open deal: the first history row, an owner (given, or picked; when the strategy
 * is manual or nobody is eligible: no owner, an "Assign an owner" task and a Slack
 * notification in the outbox), deal.created. Returns 1 and writes id; 0 when the lead has an
 * open deal in the pipeline already (its id written, nothing changed); or a negative code
 * with err: -LF_ENOTFOUND (lead, pipeline, stage or owner), -LF_EINVAL (a stage of another
 * pipeline, or not an open one). */
int lf_deal_create(struct lf_conn *c, const char *tenant_id, const struct lf_deal_new *d,
                   int64_t now, char id[40], struct lf_err *err);

/* Moves an open deal to a stage of its pipeline (by id or slug): stage_entered_at, a history
 * row, deal.stage_changed. A won or lost stage closes the deal as lf_deal_close does (reason
 * NULL). Returns 1, 0 when the deal is in that stage already, or a negative code with err:
 * -LF_ENOTFOUND (deal or stage), -LF_ECONFLICT (the deal is closed: reopen it first). */
int lf_deal_move(struct lf_conn *c, const char *tenant_id, const char *deal_id, const char *stage,
                 const char *by, const char *cause, int64_t now, struct lf_err *err);

/* Closes an open deal as "won" or "lost" with reason (may be NULL): into the pipeline's first
 * stage of that kind when it has one (history row, deal.stage_changed); status, closed_at,
 * close_reason; the owner's current_leads drops; deal.won (the lead becomes a customer:
 * status and lifecycle_stage) or deal.lost. Returns 1, or a negative code with err:
 * -LF_ENOTFOUND, -LF_EINVAL (outcome), -LF_ECONFLICT (closed already). */
int lf_deal_close(struct lf_conn *c, const char *tenant_id, const char *deal_id,
                  const char *outcome, const char *reason, const char *by, const char *cause,
                  int64_t now, struct lf_err *err);

/* Reopens a closed deal into the open stage it left (else the first open stage): history
 * row, deal.stage_changed (with "reopened": true); status open, closed_at and close_reason
 * cleared; the owner's current_leads rises. Returns 1, or a negative code with err:
 * -LF_ENOTFOUND, -LF_ECONFLICT (open already, or the lead has another open deal in the
 * pipeline). */
int lf_deal_reopen(struct lf_conn *c, const char *tenant_id, const char *deal_id, const char *by,
                   const char *cause, int64_t now, struct lf_err *err);

/* Gives the deal to owner (a member id) or to nobody (NULL): assigned_at, the new owner's
 * last_assigned_at, and both members' current_leads while the deal is open. Returns 1, 0 when
 * unchanged, or a negative code with err: -LF_ENOTFOUND (deal or member). */
int lf_deal_assign(struct lf_conn *c, const char *tenant_id, const char *deal_id, const char *owner,
                   int64_t now, struct lf_err *err);

/* The columns lf_deal_row_json reads, in its order (prefix them yourself when joining). */
#define LF_DEAL_COLS                                                                               \
    "id, lead_id, pipeline_id, stage_id, name, value_cents, currency, status, assigned_to,"        \
    " assigned_at, stage_entered_at, expected_close_at, close_reason, closed_at, moco_offer_id,"   \
    " moco_invoice_id, paid_at, created_at, updated_at"
#define LF_DEAL_NCOLS 19

/* A row of LF_DEAL_COLS (from column `first` on) as JSON. */
json_t *lf_deal_row_json(struct lf_stmt *st, int first);

/* The deal as JSON with "pipeline" and "stage" (their slugs); with full, also "lead" (id,
 * email, names, score, intent, status), "history" (oldest first) and "tasks". NULL when missing
 * (*rc LF_DB_DONE) or on a store error (*rc negative). */
json_t *lf_deal_json(struct lf_conn *c, const char *tenant_id, const char *id, int full, int *rc);

struct lf_task_new {
    const char *lead_id; /* may be NULL */
    const char *deal_id; /* may be NULL; its lead is taken when lead_id is NULL */
    const char *title;
    const char *task_type;   /* NULL: "todo" */
    const char *assigned_to; /* a member id, or NULL */
    const char *notes;       /* may be NULL */
    int64_t due_at;          /* -1: none */
    const char *by;
    const char *cause;
};

/* Creates an open task and emits task.created. Returns 0 and writes id, or a negative code
 * with err: -LF_ENOTFOUND (lead, deal or member). */
int lf_task_create(struct lf_conn *c, const char *tenant_id, const struct lf_task_new *t,
                   int64_t now, char id[40], struct lf_err *err);

#define LF_TASK_COLS                                                                               \
    "id, lead_id, deal_id, title, task_type, assigned_to, due_at, status, completed_at, notes,"    \
    " created_by, created_at, updated_at"

/* A row of LF_TASK_COLS as JSON ("overdue": open and due before now). */
json_t *lf_task_row_json(struct lf_stmt *st, int64_t now);

/* Writes a Slack message into the outbox (a `slack` delivery, pending, dispatched by the
 * outbound module): {"channel": channel or null for the default, "text": text}. event_id (may
 * be NULL) is what it is about. The delivery's id goes to id (may be NULL). Returns 0 or a
 * negative code. */
int lf_outbox_slack(struct lf_conn *c, const char *tenant_id, const char *channel, const char *text,
                    const char *event_id, int64_t now, char id[40]);

#endif
