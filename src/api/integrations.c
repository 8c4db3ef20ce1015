/* Integrations: Moco's payment webhook (an invoice paid marks its deal paid) and the status of
 * each outbound integration (configured, switched on, last success and error, backlog). */
#include "api/api.h"
#include "engine/automation.h"
#include "engine/deal.h"
#include "engine/emit.h"
#include "engine/settings.h"
#include "core/crypto.h"
#include "core/log.h"
#include "core/timeutil.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#define MOCO_BODY_MAX   (256 * 1024) /* bytes of a Moco webhook body; an invoice is far less */
#define MOCO_ID_MAX_LEN 64           /* bytes of a Moco id given as text */

/* ---- Moco's payment webhook */

/* 1 when the request carries the shared secret: X-Moco-Signature, Moco's own scheme (the hex
 * HMAC-SHA256 of the raw body keyed with the secret), or X-Leadflow-Webhook-Secret, the secret
 * itself (for senders that cannot sign). Both compare in constant time. */
static int moco_authentic(struct lf_req *r, const char *secret)
{
    const char *sig = lf_req_header(r, "X-Moco-Signature");
    if (sig) {
        unsigned char mac[LF_SHA256_LEN];
        char hex[2 * LF_SHA256_LEN + 1], given[2 * LF_SHA256_LEN + 1];
        lf_hmac_sha256(secret, strlen(secret), r->body.data ? r->body.data : "", r->body.len, mac);
        lf_hex_encode(mac, sizeof mac, hex);
        size_t n = strlen(sig);
        if (n == 2 * LF_SHA256_LEN) { /* hex of either case */
            for (size_t i = 0; i < n; i++)
                given[i] = (char)(sig[i] >= 'A' && sig[i] <= 'F' ? sig[i] - 'A' + 'a' : sig[i]);
            given[n] = '\0';
            if (lf_consttime_eq(hex, 2 * LF_SHA256_LEN, given, n)) return 1;
        }
    }
    const char *shared = lf_req_header(r, "X-Leadflow-Webhook-Secret");
    return shared && lf_consttime_eq(shared, strlen(shared), secret, strlen(secret));
}

/* The invoice's id as text into id: Moco sends a number; a string is taken too. Returns 0 or
 * -LF_EINVAL naming "id" in err. */
static int invoice_id(json_t *body, char id[MOCO_ID_MAX_LEN + 1], struct lf_err *err)
{
    json_t *v = json_object_get(body, "id");
    if (json_is_integer(v) && json_integer_value(v) > 0) {
        snprintf(id, MOCO_ID_MAX_LEN + 1, "%lld", (long long)json_integer_value(v));
        return 0;
    }
    if (json_is_string(v) && json_string_length(v) > 0 &&
        json_string_length(v) <= MOCO_ID_MAX_LEN &&
        strlen(json_string_value(v)) == json_string_length(v)) {
        snprintf(id, MOCO_ID_MAX_LEN + 1, "%s", json_string_value(v));
        return 0;
    }
    return lf_err_field(err, "id", "is required: the Moco invoice's id (a positive integer)");
}

/* A deal a Moco invoice bills. */
struct billed {
    char tenant_id[40], id[40], lead_id[40];
    int64_t paid_at; /* -1: not paid */
};

/* The deal billed by Moco invoice id, in any tenant: the id is Moco's, unique in the one Moco
 * account the process bills to (should a restored backup ever make two deals carry one, the
 * oldest is taken). LF_DB_ROW (b filled), LF_DB_DONE or a negative code. */
static int find_billed(struct lf_conn *c, const char *invoice, struct billed *b)
{
    struct lf_stmt *st =
        lf_db_prepare(c,
                      "SELECT tenant_id, id, lead_id, paid_at FROM deals WHERE moco_invoice_id = ?"
                      " ORDER BY created_at, id LIMIT 1",
                      NULL);
    if (st == NULL) return -LF_EINTERNAL;
    lf_stmt_bind(st, "s", invoice);
    int rc = lf_stmt_step(st);
    if (rc == LF_DB_ROW) {
        snprintf(b->tenant_id, sizeof b->tenant_id, "%s", lf_stmt_text(st, 0));
        snprintf(b->id, sizeof b->id, "%s", lf_stmt_text(st, 1));
        snprintf(b->lead_id, sizeof b->lead_id, "%s",
                 lf_stmt_text(st, 2) ? lf_stmt_text(st, 2) : "");
        b->paid_at = lf_stmt_isnull(st, 3) ? -1 : lf_stmt_int(st, 3);
    }
    lf_stmt_done(st);
    return rc;
}

/* Marks the deal paid at now and emits deal.paid {deal_id, moco_invoice_id, amount, currency,
 * deal}, in the caller's transaction. The invoice's gross total and currency go in when Moco
 * sent them. Returns 0 or a negative code. */
static int mark_paid(struct lf_conn *c, const struct billed *b, const char *invoice, json_t *body,
                     int64_t now, struct lf_err *err)
{
    int rc = lf_db_run(c, err,
                       "UPDATE deals SET paid_at = ?, updated_at = ?"
                       " WHERE tenant_id = ? AND id = ? AND paid_at IS NULL",
                       "IIss", now, now, b->tenant_id, b->id);
    if (rc < 0) return rc;
    json_t *data = json_pack("{s:s, s:s}", "deal_id", b->id, "moco_invoice_id", invoice);
    json_t *amount = json_object_get(body, "gross_total");
    if (json_is_number(amount)) json_object_set(data, "amount", amount);
    json_t *currency = json_object_get(body, "currency");
    if (json_is_string(currency)) json_object_set(data, "currency", currency);
    json_t *deal = lf_deal_json(c, b->tenant_id, b->id, 0, &rc);
    if (deal == NULL) {
        json_decref(data);
        return rc < 0 ? rc : -LF_EINTERNAL;
    }
    json_object_set_new(data, "deal", deal); /* as every deal.* event carries it */
    char cause[MOCO_ID_MAX_LEN + 16];
    snprintf(cause, sizeof cause, "moco-invoice:%s", invoice);
    rc = lf_emit(c, b->tenant_id, "deal.paid", *b->lead_id ? b->lead_id : NULL, cause, data, now);
    json_decref(data);
    return rc < 0 ? rc : 0;
}

/* Answers {"status": status} with "reason" and "deal_id" when given. */
static void moco_reply(struct lf_req *r, int code, const char *status, const char *reason,
                       const char *deal_id)
{
    json_t *o = json_pack("{s:s}", "status", status);
    if (reason) json_object_set_new(o, "reason", json_string(reason));
    if (deal_id) json_object_set_new(o, "deal_id", json_string(deal_id));
    lf_reply_json(r, code, o);
}

/* POST /integrations/moco/webhook: Moco's invoice webhook (X-Moco-Target: Invoice). An
 * invoice paid (status "paid", or the event "pay") marks its deal paid once and emits deal.paid
 * (200 {"status": "paid"}; a repeat is 200 {"status": "already_paid"}). Whatever leadflow has
 * no use for (another target, an invoice not paid, an invoice no deal carries) is 202
 * {"status": "ignored"}: Moco retries errors, and these are none. Unauthenticated by token;
 * the shared secret MOCO_WEBHOOK_SECRET authenticates it (unset: 503). */
static void moco_webhook(struct lf_req *r)
{
    const char *secret = r->app->cfg.moco_webhook_secret;
    const char *target = lf_req_header(r, "X-Moco-Target");
    const char *event = lf_req_header(r, "X-Moco-Event");
    struct lf_err err = {0};
    struct lf_conn *c = NULL;
    json_t *body = NULL;
    char invoice[MOCO_ID_MAX_LEN + 1];
    struct billed b;
    int64_t now = lf_now_ms();
    int rc;
    if (secret == NULL || *secret == '\0') {
        rc = lf_err_set(&err, -LF_EBUSY,
                        "Moco webhook is not configured: MOCO_WEBHOOK_SECRET is not set");
        goto fail;
    }
    if (!moco_authentic(r, secret)) {
        rc = lf_err_set(&err, -LF_EAUTH,
                        "neither X-Moco-Signature (hex HMAC-SHA256 of the body) nor"
                        " X-Leadflow-Webhook-Secret matches the Moco webhook secret");
        goto fail;
    }
    body = lf_req_json(r, &err);
    if (body == NULL || (rc = invoice_id(body, invoice, &err)) < 0) {
        rc = err.code;
        goto fail;
    }
    const char *status = json_string_value(json_object_get(body, "status"));
    if (target && strcasecmp(target, "Invoice") != 0) {
        moco_reply(r, 202, "ignored", "not an invoice", NULL);
        goto out;
    }
    if (!(status && strcmp(status, "paid") == 0) && !(event && strcasecmp(event, "pay") == 0)) {
        moco_reply(r, 202, "ignored", "the invoice is not paid", NULL);
        goto out;
    }

    c = lf_api_conn(r, LF_DB_WRITE);
    if (c == NULL) goto out;
    /* the lookup is in the transaction too: Moco may deliver one payment twice at once */
    if ((rc = lf_automate_begin(c)) < 0) goto fail;
    rc = find_billed(c, invoice, &b);
    if (rc != LF_DB_ROW || b.paid_at >= 0) {
        lf_automate_rollback(c);
        if (rc < 0) goto fail;
        if (rc == LF_DB_DONE)
            moco_reply(r, 202, "ignored", "no deal carries this invoice", NULL);
        else
            moco_reply(r, 200, "already_paid", NULL, b.id);
        goto out;
    }
    rc = mark_paid(c, &b, invoice, body, now, &err);
    if (rc >= 0)
        rc = lf_automate_commit(c, b.tenant_id, now, &err); /* rolls back when it fails */
    else
        lf_automate_rollback(c);
    if (rc < 0) goto fail; /* the commit woke the dispatcher for deal.paid's deliveries */
    lf_log_info("deal paid", "{s:s, s:s, s:s, s:s?}", "tenant_id", b.tenant_id, "deal_id", b.id,
                "moco_invoice_id", invoice, "moco_event", event);
    moco_reply(r, 200, "paid", NULL, b.id);
    goto out;
fail:
    lf_reply_error(r, rc, &err);
out:
    if (c) lf_db_release(c);
    json_decref(body);
    lf_err_clear(&err);
}

/* ---- status */

enum { WEBHOOK, SLACK, MOCO, KINDS };
static const char *const kind_names[KINDS] = {"webhook", "slack", "moco"};

static int kind_index(const char *name)
{
    for (int k = 0; k < KINDS; k++)
        if (name && strcmp(name, kind_names[k]) == 0) return k;
    return -1;
}

static int set(const char *s)
{
    return s && *s;
}

/* 1 when the tenant's "slack" setting names an incoming-webhook URL (its default or a
 * channel's). */
static int slack_setting_has_url(json_t *slack)
{
    if (set(json_string_value(json_object_get(slack, "default_url")))) return 1;
    const char *name;
    json_t *url;
    json_object_foreach(json_object_get(slack, "channels"), name, url)
    {
        if (set(json_string_value(url))) return 1;
    }
    return 0;
}

/* Adds last_success_at, last_error and last_error_at from integration_status (nulls when the
 * dispatcher has written nothing for a kind). Returns 0 or a negative code. */
static int add_last(struct lf_conn *c, const char *tenant, json_t *out[KINDS])
{
    struct lf_stmt *st = lf_db_prepare(c,
                                       "SELECT kind, last_success_at, last_error, last_error_at"
                                       " FROM integration_status WHERE tenant_id = ?",
                                       NULL);
    if (st == NULL) return -LF_EINTERNAL;
    int rc = lf_stmt_bind(st, "s", tenant);
    while (rc >= 0 && (rc = lf_stmt_step(st)) == LF_DB_ROW) {
        int k = kind_index(lf_stmt_text(st, 0));
        if (k < 0) continue;
        json_object_set_new(out[k], "last_success_at",
                            lf_json_time(lf_stmt_int(st, 1), lf_stmt_isnull(st, 1)));
        json_object_set_new(out[k], "last_error", lf_json_text(lf_stmt_text(st, 2)));
        json_object_set_new(out[k], "last_error_at",
                            lf_json_time(lf_stmt_int(st, 3), lf_stmt_isnull(st, 3)));
    }
    lf_stmt_done(st);
    return rc < 0 ? rc : 0;
}

/* Adds backlog (deliveries pending, failed or in flight) and dead per kind. Returns 0 or a
 * negative code. */
static int add_counts(struct lf_conn *c, const char *tenant, json_t *out[KINDS])
{
    struct lf_stmt *st = lf_db_prepare(
        c,
        "SELECT kind, CASE WHEN status = 'dead' THEN 1 ELSE 0 END AS dead, count(*)"
        " FROM deliveries WHERE tenant_id = ? AND status IN ('pending', 'failed', 'in_flight',"
        " 'dead') GROUP BY kind, dead",
        NULL);
    if (st == NULL) return -LF_EINTERNAL;
    int rc = lf_stmt_bind(st, "s", tenant);
    while (rc >= 0 && (rc = lf_stmt_step(st)) == LF_DB_ROW) {
        int k = kind_index(lf_stmt_text(st, 0));
        if (k < 0) continue;
        json_object_set_new(out[k], lf_stmt_int(st, 1) ? "dead" : "backlog",
                            json_integer(lf_stmt_int(st, 2)));
    }
    lf_stmt_done(st);
    return rc < 0 ? rc : 0;
}

/* The tenant's webhook subscriptions: {"active": n, "disabled": n}. NULL on a store error
 * (*rc negative). */
static json_t *subscription_counts(struct lf_conn *c, const char *tenant, int *rc)
{
    struct lf_stmt *st = lf_db_prepare(c,
                                       "SELECT is_active, count(*) FROM subscriptions"
                                       " WHERE tenant_id = ? GROUP BY is_active",
                                       NULL);
    if (st == NULL) {
        *rc = -LF_EINTERNAL;
        return NULL;
    }
    json_int_t active = 0, disabled = 0;
    *rc = lf_stmt_bind(st, "s", tenant);
    while (*rc >= 0 && (*rc = lf_stmt_step(st)) == LF_DB_ROW) {
        if (lf_stmt_int(st, 0))
            active += lf_stmt_int(st, 1);
        else
            disabled += lf_stmt_int(st, 1);
    }
    lf_stmt_done(st);
    return *rc < 0 ? NULL : json_pack("{s:I, s:I}", "active", active, "disabled", disabled);
}

/* GET /integrations/status: per integration (webhook, slack, moco) whether it is configured and
 * switched on, the dispatcher's last success and error for the tenant, and the tenant's backlog
 * (deliveries not yet succeeded or dead) and dead deliveries. */
static void integrations_status(struct lf_req *r)
{
    const struct lf_config *cfg = &r->app->cfg;
    const char *tenant = r->auth.tenant_id;
    struct lf_conn *c = lf_api_conn(r, LF_DB_READ);
    if (c == NULL) return;
    json_t *out[KINDS];
    for (int k = 0; k < KINDS; k++)
        out[k] =
            json_pack("{s:b, s:b, s:n, s:n, s:n, s:i, s:i}", "configured", 1, "enabled", 1,
                      "last_success_at", "last_error", "last_error_at", "backlog", 0, "dead", 0);
    json_t *slack = lf_settings_get(c, tenant, "slack");
    json_object_set_new(out[SLACK], "configured",
                        json_boolean(set(cfg->slack_webhook_url) || slack_setting_has_url(slack)));
    json_decref(slack);
    json_object_set_new(out[SLACK], "enabled", json_boolean(cfg->enable_slack_alerts));
    json_object_set_new(out[SLACK], "interactions", json_boolean(set(cfg->slack_signing_secret)));
    json_object_set_new(out[MOCO], "configured",
                        json_boolean(set(cfg->moco_api_key) &&
                                     (set(cfg->moco_subdomain) || set(cfg->moco_base_url))));
    json_object_set_new(out[MOCO], "enabled", json_boolean(cfg->enable_moco_sync));
    json_object_set_new(out[MOCO], "payment_webhook", json_boolean(set(cfg->moco_webhook_secret)));
    int rc = add_last(c, tenant, out);
    if (rc >= 0) rc = add_counts(c, tenant, out);
    json_t *subs = rc >= 0 ? subscription_counts(c, tenant, &rc) : NULL;
    lf_db_release(c);
    if (rc < 0) {
        for (int k = 0; k < KINDS; k++) json_decref(out[k]);
        lf_reply_error(r, rc, NULL);
        return;
    }
    json_object_set_new(out[WEBHOOK], "subscriptions", subs);
    lf_reply_json(r, 200,
                  json_pack("{s:{s:o, s:o, s:o}}", "integrations", kind_names[WEBHOOK],
                            out[WEBHOOK], kind_names[SLACK], out[SLACK], kind_names[MOCO],
                            out[MOCO]));
}

/* The tenant's Moco setting: {"create_on_won": true} unless set otherwise. */
static json_t *moco_setting(struct lf_conn *c, const char *tenant_id)
{
    json_t *s = lf_settings_get(c, tenant_id, "moco");
    json_t *on = json_object_get(s, "create_on_won");
    json_t *doc = json_pack("{s:b}", "create_on_won", on == NULL || json_is_true(on));
    json_decref(s);
    return doc;
}

static void get_moco(struct lf_req *r)
{
    struct lf_conn *c = lf_api_conn(r, LF_DB_READ);
    if (c == NULL) return;
    json_t *doc = moco_setting(c, r->auth.tenant_id);
    lf_db_release(c);
    lf_reply_json(r, 200, doc);
}

/* PUT {"create_on_won": bool}: whether a won deal creates the customer and the offer in Moco. */
static void put_moco(struct lf_req *r)
{
    static const char *const members[] = {"create_on_won", NULL};
    struct lf_err err = {0};
    json_t *body = lf_req_json(r, &err);
    if (body) {
        lf_api_members(body, members, "", &err);
        if (!json_is_boolean(json_object_get(body, "create_on_won")))
            lf_err_field(&err, "create_on_won", "must be true or false");
    }
    struct lf_conn *c = err.code == 0 ? lf_api_conn(r, LF_DB_WRITE) : NULL;
    if (c) {
        int rc = lf_settings_put(c, r->auth.tenant_id, "moco", body, lf_now_ms());
        json_t *doc = rc == 0 ? moco_setting(c, r->auth.tenant_id) : NULL;
        lf_db_release(c);
        if (doc)
            lf_reply_json(r, 200, doc);
        else
            lf_reply_error(r, rc, NULL);
    } else if (err.code) {
        lf_reply_error(r, err.code, &err);
    }
    json_decref(body);
    lf_err_clear(&err);
}

const struct lf_route lf_integrations_routes[] = {
    {"GET", "/api/v1/settings/moco", get_moco, LF_AUTH_TOKEN, LF_ROLES_READ, 0, 0, 0},
    {"PUT", "/api/v1/settings/moco", put_moco, LF_AUTH_TOKEN, LF_ROLES_ADMIN, 1, 0, 0},
    {"POST", "/api/v1/integrations/moco/webhook", moco_webhook, LF_AUTH_NONE, 0, 0, 0,
     MOCO_BODY_MAX},
    {"GET", "/api/v1/integrations/status", integrations_status, LF_AUTH_TOKEN, LF_ROLES_READ, 0, 0,
     0},
    {NULL, NULL, NULL, 0, 0, 0, 0, 0},
};
