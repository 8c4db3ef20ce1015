/* A processing stage and the event it works on. Each stage is one file; the registry in
 * src/engine/stages.c lists them in order. */
#ifndef LF_STAGE_H
#define LF_STAGE_H

#include "app.h"

#include <jansson.h>
#include <stdint.h>

struct lf_ruleset;
struct lf_cond_ctx;

/* An event being processed, loaded by the worker. Strings are owned by the event. */
struct lf_event {
    char id[40];
    char tenant_id[40];
    char *source;
    char *event_type;
    char *origin;        /* external | internal */
    char *lead_id;       /* NULL until a stage resolves it */
    char *identity_text; /* the stored JSON text of the lead object, or NULL */
    char *metadata_text;
    char *utm_source, *utm_medium, *utm_campaign;
    int64_t occurred_at;
    int64_t received_at;
    int attempts;     /* tries before this one */
    json_t *identity; /* parsed lazily by lf_event_identity */
    json_t *metadata; /* parsed lazily by lf_event_metadata */
    json_t *result;   /* what stages report; stored as the event's result */
    json_t *lead_ctx; /* the lead as conditions read it, loaded by lf_stage_cond_ctx */
    json_t *org_ctx;  /* its organization, when a rule reads one */
    int ctx_loaded;   /* lead_ctx/org_ctx have been looked up */
    char *outcome;    /* a stage may set a short word ("suppressed"); NULL: processed */
};

/* The event's lead object and metadata, parsed on first use (never NULL: an empty object
 * when absent). Borrowed. */
json_t *lf_event_identity(struct lf_event *ev);
json_t *lf_event_metadata(struct lf_event *ev);

/* What a stage works with: the writer connection inside the batch's transaction (the stage
 * runs inside the event's savepoint) and the batch's clock. */
struct lf_stage_ctx {
    struct lf_app *app;
    struct lf_conn *conn;
    int64_t now; /* epoch ms, the same for the whole batch */
    /* Facts that hold for the whole batch, looked up once: */
    char erasures_tenant[40]; /* the tenant erasures_any is about ("" before the first look) */
    int erasures_any;         /* that tenant has at least one erasure record */
    struct lf_ruleset *rules; /* the rules of the tenant last asked for (lf_stage_rules) */
};

/* Lends the tenant's rules for the rest of the batch (looked up once per tenant and batch).
 * Returns 0 or a negative code with err set. */
int lf_stage_rules(struct lf_stage_ctx *ctx, const char *tenant_id, struct lf_ruleset **out,
                   struct lf_err *err);
/* Fills cc for matching ev: the event's fields and metadata, and (when needs asks, loaded once
 * per event) the lead and its organization. Returns 0 or a negative code. */
int lf_stage_cond_ctx(struct lf_stage_ctx *ctx, struct lf_event *ev, unsigned needs,
                      struct lf_cond_ctx *cc);
/* Gives back what the batch borrowed. */
void lf_stage_ctx_end(struct lf_stage_ctx *ctx);

struct lf_stage {
    const char *name;
    int internal; /* 1: also runs for domain events (origin internal); 0: external only */
    /* Returns 0, or a negative code with err set: the event's work is rolled back, it is
     * marked failed and retried with backoff. A stage may end processing early by setting
     * ev->outcome and returning LF_STAGE_STOP. */
    int (*fn)(struct lf_stage_ctx *ctx, struct lf_event *ev, struct lf_err *err);
    /* 1: also runs after an earlier stage ended processing early (LF_STAGE_STOP), unless the
     * event was suppressed (an erased person's). The relay stage: an event without a person
     * is still relayed. */
    int after_stop;
};

#define LF_STAGE_STOP 1

/* The stages in order, ended by a NULL name. */
const struct lf_stage *lf_stages(const struct lf_config *cfg);

/* 1 when some stage takes internal (domain) events. While none does, a domain event is
 * stored already processed (src/engine/emit.c): there is nothing to hand it to. */
int lf_stages_take_internal(void);

#endif
