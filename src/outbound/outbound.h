/* Outbound (DESIGN §8): everything that leaves the process goes through the outbox
 * (`deliveries`), written in the transaction that decided it; the dispatcher sends it.
 *
 *   outbox.c      writing deliveries (one INSERT for every kind)
 *   relay.c       which stored events go to which webhook subscriptions (a cache of each
 *                 tenant's active subscriptions), plus the Slack and Moco work that domain
 *                 events start (hot lead, routing conflict, deal won)
 *   dispatcher.c  the thread that claims due deliveries and sends them with libcurl's multi
 *                 interface, records every try, retries on the schedule, disables failing
 *                 subscriptions
 *   moco.c        the Moco steps of a delivery (customer → offer → invoice, ids stored)
 *   slack.c       Block Kit messages, Slack's request signature, the channel's URL
 *   targets.c     which URLs a subscription may point at
 */
#ifndef LF_OUTBOUND_H
#define LF_OUTBOUND_H

#include "app.h"
#include "core/err.h"
#include "store/db.h"

#include <jansson.h>
#include <stdint.h>

/* ---- outbox ------------------------------------------------------------------------------ */

/* Writes one pending delivery (due now) of kind "webhook" | "slack" | "moco". subscription_id
 * and event_id may be NULL. payload is borrowed. Writes its id into id_out (may be NULL).
 * Returns 0 or a negative code. */
int lf_outbox_put(struct lf_conn *c, const char *tenant_id, const char *kind,
                  const char *subscription_id, const char *event_id, const char *target,
                  json_t *payload, int64_t now, char id_out[40]);
/* After a commit: wakes the dispatcher when this thread wrote deliveries since the last call. */
void lf_outbox_committed(void);

/* ---- relay ------------------------------------------------------------------------------- */

/* Tells the relay that the process's configuration is cfg (Slack and Moco switches); called
 * once at start. Without it no Slack or Moco work is written (webhooks still are). */
void lf_relay_configure(const struct lf_config *cfg);
/* The configuration lf_relay_configure was given (NULL before). */
const struct lf_config *lf_relay_config(void);
/* Frees the cache of subscriptions (at exit). */
void lf_relay_free(void);

/* Subscriptions changed (created, patched, deleted, enabled, disabled): call after the commit,
 * so the next event reloads the tenant's active subscriptions. */
void lf_subs_changed(void);

/* 1 when the event type matches the pattern: "*" (everything), "lead.*" (a prefix up to a
 * dot, any depth), or the exact type. */
int lf_event_pattern_match(const char *pattern, const char *type);

/* A stored event as the relay sees it (all borrowed). */
struct lf_relay_ev {
    const char *id, *type, *source, *lead_id; /* lead_id may be NULL */
    int internal;                             /* a domain event (written by lf_emit) */
    int64_t occurred_at;
    json_t *metadata;                                   /* may be NULL */
    int64_t received_at;                                /* external events; 0 for domain ones */
    const char *utm_source, *utm_medium, *utm_campaign; /* may be NULL */
};

/* Writes a webhook delivery for every active subscription of the tenant whose patterns match
 * the event's type, in the caller's transaction; payload {"id", "type", "timestamp", "data":
 * {"event", and for domain events "lead" and "deal" when it is about one}}. For domain events
 * it also writes the Slack alert (lead.hot, lead.routing_conflict: ENABLE_SLACK_ALERTS and a
 * Slack URL) and the Moco work (deal.won: Moco configured, tenant setting
 * moco.create_on_won, default true). Returns the number of deliveries written, or a negative
 * code. */
int lf_relay_event(struct lf_conn *c, const char *tenant_id, const struct lf_relay_ev *ev,
                   int64_t now);

/* ---- dispatcher -------------------------------------------------------------------------- */

#define LF_DELIVERY_MAX_ATTEMPTS 8

/* The delay before try number attempts+1 after `attempts` failed tries (1..7): 5 s, 5 min,
 * 30 min, 2 h, 5 h, 10 h, 10 h, each within ±20% (jitter: a uniform number in [0, 1)).
 * -1 when attempts >= LF_DELIVERY_MAX_ATTEMPTS (the delivery is dead). */
int64_t lf_delivery_delay_ms(int attempts, double jitter);

/* A Retry-After header value (seconds or an HTTP date) as a delay in ms from now, clamped to
 * [1 s, 10 h]; -1 when absent or unreadable. */
int64_t lf_retry_after_ms(const char *value, int64_t now);

/* Puts deliveries left in_flight by a crash back to pending (due now). Returns how many. */
int lf_dispatcher_recover(struct lf_app *app, struct lf_err *err);
/* Starts the dispatcher thread. Returns 0 or a negative code. */
int lf_dispatcher_start(struct lf_app *app, struct lf_err *err);
/* Wakes the dispatcher: deliveries are due (callable from any thread, also when stopped). */
void lf_dispatcher_notify(void);
/* Stops claiming, lets the tries in hand finish (bounded), records them, joins the thread. */
void lf_dispatcher_stop(struct lf_app *app);

/* Sets a delivery back to pending and due now (a manual retry or a recover), keeping its
 * attempt log. Returns 1 when set, 0 when it was in flight, or a negative code. */
int lf_delivery_requeue(struct lf_conn *c, const char *tenant_id, const char *delivery_id,
                        int64_t now);

/* ---- subscriptions ----------------------------------------------------------------------- */

/* Disables a subscription (is_active 0, disabled_reason) and emits subscription.disabled, in
 * the caller's transaction; call lf_subs_changed after the commit. Returns 1 when it was
 * active, 0 when not, or a negative code. */
int lf_subscription_disable(struct lf_conn *c, const char *tenant_id, const char *id,
                            const char *reason, int64_t now);

/* 0 when url may be a subscription's (or a webhook action's) target: http or https, a host,
 * not this service's own listen address; unless cfg->allow_private_targets, not loopback,
 * link-local or private (literal addresses, "localhost", and names that resolve to those).
 * Else -LF_EINVAL with the reason in err. */
int lf_target_check(const struct lf_config *cfg, const char *url, struct lf_err *err);
/* The same without resolving names (only literal addresses and "localhost" are judged): for
 * checks made while the store's writer is held, where a slow resolver would stall everyone.
 * The dispatcher refuses private addresses at connect time anyway. */
int lf_target_check_quick(const struct lf_config *cfg, const char *url, struct lf_err *err);
/* 1 when the address (struct sockaddr *) is loopback, private, link-local, unspecified or
 * otherwise not a public unicast address. */
int lf_addr_private(const void *sockaddr);

/* ---- Moco ------------------------------------------------------------------------------- */

/* The next request of a Moco delivery. A delivery's operation (create_customer, create_offer,
 * create_invoice) takes one to three steps (customer → offer → invoice), each one request;
 * before each, the stored Moco ids are read, so a retry never creates twice. */
struct lf_moco_req {
    char step[16];   /* customer | offer | invoice */
    char path[32];   /* /companies | /offers | /invoices */
    char *body;      /* JSON text (owned) */
    char org_id[40]; /* whose customer */
    char deal_id[40];
};
/* Reads the delivery's payload (operation, organization_id, deal_id) and the store: returns 1
 * and fills req when a step is to be sent, 0 when the operation is complete (its ids are
 * stored), or a negative code with err (the organization or deal is gone: the delivery is
 * dead). */
int lf_moco_prepare(struct lf_conn *c, const char *tenant_id, const char *payload,
                    struct lf_moco_req *req, struct lf_err *err);
/* Stores the id in Moco's answer to req's step (only where none is stored yet). Returns 0, or
 * a negative code with err when the answer carries no id. */
int lf_moco_store(struct lf_conn *c, const char *tenant_id, const struct lf_moco_req *req,
                  const char *answer, size_t len, int64_t now, struct lf_err *err);
/* The company body Moco's POST /companies takes, from the organization; its stored Moco id
 * into moco_id ("" when none). NULL when the organization does not exist (rc LF_DB_DONE) or
 * on a store error (rc negative). */
json_t *lf_moco_company(struct lf_conn *c, const char *tenant_id, const char *org_id,
                        char moco_id[64], int *rc);

/* ---- Slack ------------------------------------------------------------------------------- */

/* Verifies Slack's request signature: sig is "v0=<hex HMAC-SHA256 of v0:timestamp:body>"
 * with the signing secret; timestamp within 5 minutes of now (ms). 0 or -LF_EAUTH. */
int lf_slack_verify(const char *secret, const char *timestamp, const char *body, size_t len,
                    const char *sig, int64_t now);

/* Block Kit messages: {"text": fallback, "blocks": [...]} (new references). */
json_t *lf_slack_text_message(const char *text);
json_t *lf_slack_hot_lead(json_t *lead, json_t *data);
/* Buttons' values are "route:<tenant id>:<lead id>:<pipeline id>:<mac>" (lf_slack_button_mac). */
json_t *lf_slack_conflict(const char *tenant_id, json_t *lead, json_t *data);

/* The mac ending a button's value: 32 hex digits of HMAC-SHA256 over the value before it
 * ("route:<tenant>:<lead>:<pipeline>") keyed with the server's secret (LEADFLOW_JWT_SECRET).
 * Slack's signature proves a click came through the Slack app; the mac proves leadflow made
 * the button, so nobody can route another tenant's lead with a hand-made one. */
#define LF_SLACK_MAC_LEN 32
void lf_slack_button_mac(const char *value, char out[LF_SLACK_MAC_LEN + 1]);

/* The incoming-webhook URL for a channel (NULL or "default": the default) of the tenant:
 * the tenant setting "slack" {"default_url", "channels": {name: url}}, else
 * SLACK_WEBHOOK_URL. Writes it into url; returns 1 when there is one, 0 when Slack is not
 * configured for it, or a negative code. */
int lf_slack_url(struct lf_conn *c, const struct lf_config *cfg, const char *tenant_id,
                 const char *channel, char *url, size_t size);

#endif
