/* Routing leads from the global pool into pipelines (DESIGN §6): the route stage decides for
 * pooled leads after each processed event; lf_route_lead does the routing for the stage, a
 * person (the API, a Slack button) and automation. */
#ifndef LF_ROUTE_H
#define LF_ROUTE_H

#include "core/err.h"
#include "store/db.h"

#include <stdint.h>

/* Routes the lead into the pipeline (by id or slug): pipeline_id, routing_status routed,
 * routed_at; the open deal in the pipeline's first open stage unless the lead has one there
 * (given owner, else picked by the tenant's strategy); a routing_log row; lead.routed and
 * deal.created. kind: "auto", "discovery" (the router) or "manual" (a person, any routing
 * status), "automation" (a rule). with_deal 0 routes without opening a deal. Writes the deal's
 * id into deal_id (may be NULL; "" when none). Returns 0, or a negative code with err:
 * -LF_ENOTFOUND (lead, pipeline or owner). */
int lf_route_lead(struct lf_conn *c, const char *tenant_id, const char *lead_id,
                  const char *pipeline, const char *owner, const char *kind, const char *by,
                  const char *cause, int64_t now, int with_deal, char deal_id[40],
                  struct lf_err *err);

/* Keeps the routing setting's intent → pipeline map true when a pipeline's slug changes from
 * old_slug to new_slug, or when it is deleted (new_slug NULL: its intents map to nothing).
 * Bumps the rule version when the map changed. Returns 0 or a negative code. */
int lf_routing_pipeline_renamed(struct lf_conn *c, const char *tenant_id, const char *old_slug,
                                const char *new_slug, int64_t now);

#endif
