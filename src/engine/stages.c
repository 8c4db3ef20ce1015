/* The registry of processing stages, in the order they run.
 *
 * resolve, attribute, score, intent, route, automate and relay. Test builds also carry a stage for
 * exercising the framework. */
#include "engine/stage.h"
#include "engine/conditions.h"
#include "engine/lead.h"
#include "engine/rules.h"

#include <pthread.h>
#include <stddef.h>
#include <string.h>

extern const struct lf_stage lf_stage_resolve;
extern const struct lf_stage lf_stage_attribute;
extern const struct lf_stage lf_stage_score;
extern const struct lf_stage lf_stage_intent;
extern const struct lf_stage lf_stage_route;
extern const struct lf_stage lf_stage_automate;
extern const struct lf_stage lf_stage_relay;
#ifdef LF_TESTING
extern const struct lf_stage lf_stage_test;
#endif

static const struct lf_stage *const production[] = {
    &lf_stage_resolve, &lf_stage_attribute, &lf_stage_score, &lf_stage_intent,
    &lf_stage_route,   &lf_stage_automate,  &lf_stage_relay, NULL,
};

static struct lf_stage table[sizeof(production) / sizeof(production[0]) + 1];

static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static int table_built;

/* Copies the registry into one array, with the test stage first when enabled; built once
 * (under table_lock) and only read afterwards. */
const struct lf_stage *lf_stages(const struct lf_config *cfg)
{
    pthread_mutex_lock(&table_lock);
    if (table_built) {
        pthread_mutex_unlock(&table_lock);
        return table;
    }
    size_t n = 0;
#ifdef LF_TESTING
    if (cfg->test_stages) table[n++] = lf_stage_test; /* first: it probes the framework */
#endif
    for (size_t i = 0; production[i]; i++) table[n++] = *production[i];
    (void)cfg;
    table[n] = (struct lf_stage){0};
    table_built = 1;
    pthread_mutex_unlock(&table_lock);
    return table;
}

int lf_stages_take_internal(void)
{
    for (size_t i = 0; production[i]; i++)
        if (production[i]->internal) return 1;
    return 0;
}

int lf_stage_rules(struct lf_stage_ctx *ctx, const char *tenant_id, struct lf_ruleset **out,
                   struct lf_err *err)
{
    if (ctx->rules && strcmp(ctx->rules->tenant_id, tenant_id) == 0) {
        *out = ctx->rules;
        return 0;
    }
    lf_rules_release(ctx->rules);
    ctx->rules = NULL;
    int rc = lf_rules_get(ctx->conn, tenant_id, &ctx->rules, err);
    if (rc == 0) *out = ctx->rules;
    return rc;
}

int lf_stage_cond_ctx(struct lf_stage_ctx *ctx, struct lf_event *ev, unsigned needs,
                      struct lf_cond_ctx *cc)
{
    *cc = (struct lf_cond_ctx){.event_type = ev->event_type,
                               .source = ev->source,
                               .utm_source = ev->utm_source,
                               .utm_medium = ev->utm_medium,
                               .utm_campaign = ev->utm_campaign,
                               .metadata = lf_event_metadata(ev)};
    int rc = 0;
    if (!ev->ctx_loaded && ev->lead_id && (needs & (LF_COND_NEEDS_LEAD | LF_COND_NEEDS_ORG))) {
        ev->ctx_loaded = 1;
        ev->lead_ctx = lf_lead_context(ctx->conn, ev->tenant_id, ev->lead_id, &rc);
        const char *org = json_string_value(json_object_get(ev->lead_ctx, "organization_id"));
        if (rc >= 0 && org && (needs & LF_COND_NEEDS_ORG))
            ev->org_ctx = lf_org_context(ctx->conn, ev->tenant_id, org, &rc);
    }
    cc->lead = ev->lead_ctx;
    cc->organization = ev->org_ctx;
    return rc < 0 ? rc : 0;
}

void lf_stage_ctx_end(struct lf_stage_ctx *ctx)
{
    lf_rules_release(ctx->rules);
    ctx->rules = NULL;
}
