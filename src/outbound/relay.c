/* The relay: which stored events go where. Every event (external, after the stages, or
 * domain, as lf_emit writes it) whose type matches an active subscription's patterns gets a
 * webhook delivery in the same transaction; some domain events also start Slack alerts and
 * Moco work.
 *
 * Each tenant's active subscriptions (id and patterns) are cached; the subscriptions API and
 * the dispatcher bump one generation counter after committing a change, and a tenant's entry
 * is reloaded (inside the caller's transaction) when its generation is older. A tenant
 * without subscriptions costs a mutex and a lookup per event. */
#include "outbound/outbound.h"
#include "engine/deal.h"
#include "engine/lead.h"
#include "engine/settings.h"
#include "engine/stage.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/timeutil.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct lf_config *config;

void lf_relay_configure(const struct lf_config *cfg)
{
    config = cfg;
}

const struct lf_config *lf_relay_config(void)
{
    return config;
}

/* ---- the cache of active subscriptions */

struct sub {
    char id[40];
    char *url;
    char **patterns;
    size_t n;
};

struct tenant_subs {
    char tenant_id[40];
    uint64_t generation;
    struct sub *subs;
    size_t n;
    struct tenant_subs *next;
};

static _Atomic uint64_t generation = 1;
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct tenant_subs *cache;

void lf_subs_changed(void)
{
    atomic_fetch_add(&generation, 1);
}

int lf_event_pattern_match(const char *pattern, const char *type)
{
    if (strcmp(pattern, "*") == 0) return 1;
    size_t n = strlen(pattern);
    if (n >= 2 && pattern[n - 2] == '.' && pattern[n - 1] == '*')
        return strncmp(pattern, type, n - 1) == 0 && type[n - 1] != '\0';
    return strcmp(pattern, type) == 0;
}

static void subs_clear(struct tenant_subs *t);

void lf_relay_free(void)
{
    pthread_mutex_lock(&cache_lock);
    while (cache) {
        struct tenant_subs *t = cache;
        cache = t->next;
        subs_clear(t);
        free(t);
    }
    pthread_mutex_unlock(&cache_lock);
}

static void subs_clear(struct tenant_subs *t)
{
    for (size_t i = 0; i < t->n; i++) {
        for (size_t j = 0; j < t->subs[i].n; j++) free(t->subs[i].patterns[j]);
        free(t->subs[i].patterns);
        free(t->subs[i].url);
    }
    free(t->subs);
    t->subs = NULL;
    t->n = 0;
}

/* Loads the tenant's active subscriptions into t (under cache_lock). */
static int subs_load(struct lf_conn *c, struct tenant_subs *t, uint64_t gen)
{
    subs_clear(t);
    struct lf_stmt *st = lf_db_prepare(c,
                                       "SELECT id, event_types, url FROM subscriptions"
                                       " WHERE tenant_id = ? AND is_active = 1 ORDER BY id",
                                       NULL);
    if (st == NULL) return -LF_ESTORE;
    lf_stmt_bind(st, "s", t->tenant_id);
    size_t cap = 0;
    int rc;
    while ((rc = lf_stmt_step(st)) == LF_DB_ROW) {
        if (t->n == cap) {
            cap = cap ? 2 * cap : 4;
            t->subs = lf_xrealloc(t->subs, cap * sizeof(*t->subs));
        }
        struct sub *s = &t->subs[t->n++];
        memset(s, 0, sizeof *s);
        snprintf(s->id, sizeof s->id, "%s", lf_stmt_text(st, 0));
        s->url = lf_xstrdup(lf_stmt_text(st, 2) ? lf_stmt_text(st, 2) : "");
        json_t *types = json_loads(lf_stmt_text(st, 1) ? lf_stmt_text(st, 1) : "[]", 0, NULL);
        size_t i;
        json_t *v;
        s->patterns = lf_xcalloc(json_array_size(types) + 1, sizeof(char *));
        json_array_foreach(types, i, v) if (json_is_string(v)) s->patterns[s->n++] =
            lf_xstrdup(json_string_value(v));
        json_decref(types);
    }
    lf_stmt_done(st);
    if (rc < 0) {
        subs_clear(t);
        return rc;
    }
    t->generation = gen;
    return 0;
}

/* A matching subscription: its id and URL (the delivery's target, for people; the dispatcher
 * sends to the URL the subscription has when it sends). */
struct match {
    char id[40];
    char *url;
};

/* The tenant's active subscriptions matching type, into *out (the caller frees it with
 * matches_free). Returns how many, or a negative code. */
static int subs_matching(struct lf_conn *c, const char *tenant_id, const char *type,
                         struct match **out)
{
    uint64_t gen = atomic_load(&generation);
    pthread_mutex_lock(&cache_lock);
    struct tenant_subs *t = cache;
    while (t && strcmp(t->tenant_id, tenant_id) != 0) t = t->next;
    if (t == NULL) {
        t = lf_xcalloc(1, sizeof *t);
        snprintf(t->tenant_id, sizeof t->tenant_id, "%s", tenant_id);
        t->next = cache;
        cache = t;
    }
    int rc = 0;
    if (t->generation != gen) rc = subs_load(c, t, gen);
    int n = 0;
    *out = NULL;
    for (size_t i = 0; rc == 0 && i < t->n; i++)
        for (size_t j = 0; j < t->subs[i].n; j++)
            if (lf_event_pattern_match(t->subs[i].patterns[j], type)) {
                *out = lf_xrealloc(*out, (size_t)(n + 1) * sizeof(**out));
                memcpy((*out)[n].id, t->subs[i].id, 40);
                (*out)[n++].url = lf_xstrdup(t->subs[i].url);
                break;
            }
    pthread_mutex_unlock(&cache_lock);
    return rc < 0 ? rc : n;
}

/* ---- payloads */

/* The deal a domain event is about: its metadata's "deal_id", or the "deal" object deal
 * events carry. NULL when none. */
static const char *deal_of(json_t *metadata)
{
    const char *id = json_string_value(json_object_get(metadata, "deal_id"));
    return id ? id : json_string_value(json_object_get(json_object_get(metadata, "deal"), "id"));
}

/* The "event" object of a payload. */
static json_t *event_json(const struct lf_relay_ev *ev)
{
    char at[40];
    json_t *o =
        json_pack("{s:s, s:s, s:s, s:s?, s:s, s:O?}", "id", ev->id, "type", ev->type, "source",
                  ev->source ? ev->source : "leadflow", "lead_id", ev->lead_id, "occurred_at",
                  lf_time_format(ev->occurred_at, at, sizeof at), "metadata", ev->metadata);
    if (ev->received_at)
        json_object_set_new(o, "received_at",
                            json_string(lf_time_format(ev->received_at, at, sizeof at)));
    if (ev->utm_source || ev->utm_medium || ev->utm_campaign)
        json_object_set_new(o, "utm",
                            json_pack("{s:s?, s:s?, s:s?}", "source", ev->utm_source, "medium",
                                      ev->utm_medium, "campaign", ev->utm_campaign));
    return o;
}

/* The webhook payload for ev: the event and, for domain events, its lead and deal. */
static json_t *webhook_payload(struct lf_conn *c, const char *tenant_id,
                               const struct lf_relay_ev *ev, int64_t now, int *rc)
{
    char at[40];
    json_t *data = json_pack("{s:o}", "event", event_json(ev));
    if (ev->internal && ev->lead_id) {
        json_t *lead = lf_lead_json(c, tenant_id, ev->lead_id, 0, NULL, rc);
        if (*rc < 0) goto fail;
        if (lead) json_object_set_new(data, "lead", lead);
    }
    const char *deal_id = deal_of(ev->metadata);
    if (ev->internal && deal_id) {
        json_t *deal = lf_deal_json(c, tenant_id, deal_id, 0, rc);
        if (*rc < 0) goto fail;
        if (deal) json_object_set_new(data, "deal", deal);
    }
    *rc = 0;
    return json_pack("{s:s, s:s, s:s, s:o}", "id", ev->id, "type", ev->type, "timestamp",
                     lf_time_format(now, at, sizeof at), "data", data);
fail:
    json_decref(data);
    return NULL;
}

/* ---- Slack and Moco work started by domain events */

static int slack_alert(struct lf_conn *c, const char *tenant_id, const struct lf_relay_ev *ev,
                       int64_t now)
{
    char url[2048];
    int rc = lf_slack_url(c, config, tenant_id, NULL, url, sizeof url);
    if (rc <= 0 || ev->lead_id == NULL) return rc;
    json_t *lead = lf_lead_json(c, tenant_id, ev->lead_id, 1, NULL, &rc);
    if (lead == NULL) return rc < 0 ? rc : 0;
    json_t *msg = strcmp(ev->type, "lead.hot") == 0
                      ? lf_slack_hot_lead(lead, ev->metadata)
                      : lf_slack_conflict(tenant_id, lead, ev->metadata);
    json_decref(lead);
    json_object_set_new(msg, "channel", json_string("default"));
    rc = lf_outbox_put(c, tenant_id, "slack", NULL, ev->id, "default", msg, now, NULL);
    json_decref(msg);
    return rc < 0 ? rc : 1;
}

static int moco_configured(void)
{
    return config && config->moco_api_key && *config->moco_api_key &&
           ((config->moco_base_url && *config->moco_base_url) ||
            (config->moco_subdomain && *config->moco_subdomain));
}

/* A won deal creates the customer and the offer in Moco (tenant setting "moco"
 * {"create_on_won": true} by default), as two deliveries the dispatcher runs in order. */
static int moco_on_won(struct lf_conn *c, const char *tenant_id, const struct lf_relay_ev *ev,
                       int64_t now)
{
    const char *deal_id = deal_of(ev->metadata);
    if (deal_id == NULL || ev->lead_id == NULL) return 0;
    json_t *setting = lf_settings_get(c, tenant_id, "moco");
    json_t *on = json_object_get(setting, "create_on_won");
    int wanted = on == NULL || json_is_true(on);
    json_decref(setting);
    if (!wanted) return 0;
    char org[40] = "";
    struct lf_stmt *st =
        lf_db_prepare(c, "SELECT organization_id FROM leads WHERE tenant_id = ? AND id = ?", NULL);
    if (st == NULL) return -LF_ESTORE;
    lf_stmt_bind(st, "ss", tenant_id, ev->lead_id);
    int rc = lf_stmt_step(st);
    if (rc == LF_DB_ROW && lf_stmt_text(st, 0))
        snprintf(org, sizeof org, "%s", lf_stmt_text(st, 0));
    lf_stmt_done(st);
    if (rc < 0) return rc;
    if (!*org) return 0; /* nobody to bill */
    static const char *const ops[] = {"create_customer", "create_offer"};
    static const char *const paths[] = {"/companies", "/offers"};
    for (int i = 0; i < 2 && rc >= 0; i++) {
        json_t *p =
            json_pack("{s:s, s:s, s:s, s:s, s:s}", "operation", ops[i], "lead_id", ev->lead_id,
                      "organization_id", org, "deal_id", deal_id, "cause", "deal.won");
        rc = lf_outbox_put(c, tenant_id, "moco", NULL, ev->id, paths[i], p, now, NULL);
        json_decref(p);
    }
    return rc < 0 ? rc : 2;
}

/* ---- the relay */

int lf_relay_event(struct lf_conn *c, const char *tenant_id, const struct lf_relay_ev *ev,
                   int64_t now)
{
    struct match *m = NULL;
    int n = subs_matching(c, tenant_id, ev->type, &m);
    int rc = n, written = 0;
    if (n > 0) {
        json_t *payload = webhook_payload(c, tenant_id, ev, now, &rc);
        for (int i = 0; payload && rc >= 0 && i < n; i++)
            rc = lf_outbox_put(c, tenant_id, "webhook", m[i].id, ev->id, m[i].url, payload, now,
                               NULL);
        json_decref(payload);
        if (rc >= 0) written = n;
    }
    for (int i = 0; i < n; i++) free(m[i].url);
    free(m);
    if (rc < 0 || !ev->internal || config == NULL) return rc < 0 ? rc : written;
    if (config->enable_slack_alerts &&
        (strcmp(ev->type, "lead.hot") == 0 || strcmp(ev->type, "lead.routing_conflict") == 0))
        rc = slack_alert(c, tenant_id, ev, now);
    else if (strcmp(ev->type, "deal.won") == 0 && moco_configured())
        rc = moco_on_won(c, tenant_id, ev, now);
    else
        rc = 0;
    return rc < 0 ? rc : written + rc;
}

/* The relay stage: last, after everything the event did; it also runs for an event that
 * ended early without a person (no_identity), never for a suppressed one. */
static int relay_stage(struct lf_stage_ctx *ctx, struct lf_event *ev, struct lf_err *err)
{
    struct lf_relay_ev r = {.id = ev->id,
                            .type = ev->event_type,
                            .source = ev->source,
                            .lead_id = ev->lead_id,
                            .occurred_at = ev->occurred_at,
                            .metadata = lf_event_metadata(ev),
                            .received_at = ev->received_at,
                            .utm_source = ev->utm_source,
                            .utm_medium = ev->utm_medium,
                            .utm_campaign = ev->utm_campaign};
    int rc = lf_relay_event(ctx->conn, ev->tenant_id, &r, ctx->now);
    if (rc < 0) return lf_err_set(err, rc, "relaying the event failed");
    if (rc > 0) json_object_set_new(ev->result, "deliveries", json_integer(rc));
    return 0;
}

const struct lf_stage lf_stage_relay = {"relay", 0, relay_stage, 1};
