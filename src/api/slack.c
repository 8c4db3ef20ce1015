/* Slack: the interactions endpoint (a button of a routing-conflict message routes the lead)
 * and the tenant's Slack setting (the default incoming-webhook URL and one per channel).
 *
 * The interactions endpoint has no token: Slack signs each request with the app's signing
 * secret (SLACK_SIGNING_SECRET), and the tenant, lead and pipeline come from the button's
 * value, which leadflow wrote into the message itself. Slack shows the text of a 200 answer to
 * the person who clicked, so a button that cannot route (the lead is gone or already routed)
 * answers 200 with a sentence saying why; only a bad signature (401), a missing secret (503)
 * and a body that is not Slack's form (400, 415) are problem documents. */
#include "api/api.h"
#include "core/crypto.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "engine/automation.h"
#include "engine/deal.h"
#include "engine/lead.h"
#include "engine/route.h"
#include "engine/settings.h"
#include "http/server.h"
#include "outbound/outbound.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CHANNELS_MAX 50   /* named channels in the setting */
#define CHANNEL_MAX  80   /* characters of a channel name (automation's limit) */
#define URL_MAX      2000 /* bytes of a webhook URL: the relay and dispatcher hold 2 KiB */
#define USER_MAX     100  /* characters of the Slack user name kept in "slack:<user>" */

/* ---- the form body */

static int hex_digit(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* Decodes n bytes of application/x-www-form-urlencoded text ('+' is a space, %XX a byte) into
 * out (at least n + 1 bytes; decoding never grows). Returns the length, or -1 for a bad
 * escape. */
static long form_decode(const char *in, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (in[i] == '+') {
            out[o++] = ' ';
        } else if (in[i] == '%') {
            int hi = i + 2 < n ? hex_digit(in[i + 1]) : -1;
            int lo = hi >= 0 ? hex_digit(in[i + 2]) : -1;
            if (hi < 0 || lo < 0) return -1;
            out[o++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            out[o++] = in[i];
        }
    }
    out[o] = '\0';
    return (long)o;
}

/* The value of the form field `name` in body, decoded; NULL when absent or malformed. The
 * caller frees it. */
static char *form_field(const char *body, size_t len, const char *name)
{
    size_t nl = strlen(name);
    for (size_t i = 0; i < len;) {
        const char *amp = memchr(body + i, '&', len - i);
        size_t end = amp ? (size_t)(amp - body) : len;
        if (end - i > nl && memcmp(body + i, name, nl) == 0 && body[i + nl] == '=') {
            size_t vs = i + nl + 1, vn = end - vs;
            char *out = malloc(vn + 1);
            if (out && form_decode(body + vs, vn, out) < 0) {
                free(out);
                out = NULL;
            }
            return out;
        }
        i = end + 1;
    }
    return NULL;
}

/* ---- routing a lead from a button */

/* The text Slack shows (printf-style, cut to 1000 bytes at a character), and whether it
 * replaces the message (a routing done) or is shown to the person alone (why nothing was
 * done). */
static json_t *answer(int replace, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static json_t *answer(int replace, const char *fmt, ...)
{
    char text[1000];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    lf_utf8_sanitize(text);
    return json_pack("{s:s, s:b, s:s}", "response_type", replace ? "in_channel" : "ephemeral",
                     "replace_original", replace, "text", text);
}

/* Splits "route:<tenant>:<lead>:<pipeline>:<mac>" into its three ids after checking the mac
 * (lf_slack_button_mac: leadflow made this button). Returns 0 or -1. */
static int parse_value(const char *value, char tenant[40], char lead[40], char pipeline[40])
{
    char *ids[3] = {tenant, lead, pipeline};
    if (value == NULL || strncmp(value, "route:", 6) != 0) return -1;
    const char *p = value + 6;
    for (int i = 0; i < 3; i++) {
        size_t n = strcspn(p, ":");
        if (n != LF_UUID_STRLEN || p[n] != ':') return -1;
        memcpy(ids[i], p, n);
        ids[i][n] = '\0';
        if (!lf_uuid_valid(ids[i])) return -1;
        p += n + 1;
    }
    size_t signed_len = (size_t)(p - 1 - value);
    char head[200], mac[LF_SLACK_MAC_LEN + 1];
    if (signed_len >= sizeof head || strlen(p) != LF_SLACK_MAC_LEN) return -1;
    memcpy(head, value, signed_len);
    head[signed_len] = '\0';
    lf_slack_button_mac(head, mac);
    return lf_consttime_eq(mac, LF_SLACK_MAC_LEN, p, LF_SLACK_MAC_LEN) ? 0 : -1;
}

/* s with &, < and > escaped as Slack's mrkdwn wants them, into out (cut at a character). */
static void mrkdwn_escape(const char *s, char *out, size_t size)
{
    size_t o = 0;
    for (; *s; s++) {
        const char *e = *s == '&' ? "&amp;" : *s == '<' ? "&lt;" : *s == '>' ? "&gt;" : NULL;
        size_t n = e ? strlen(e) : 1;
        if (o + n >= size) break;
        memcpy(out + o, e ? e : s, n);
        o += n;
    }
    out[o] = '\0';
    lf_utf8_sanitize(out); /* the cut may split a character */
}

/* The lead's email (or id), escaped for mrkdwn, and, when routed, its pipeline's slug. LF_DB_ROW,
 * LF_DB_DONE or negative. */
static int lead_state(struct lf_conn *c, const char *tenant, const char *lead, char *label,
                      size_t size, char routed_to[64])
{
    struct lf_stmt *st = lf_db_prepare(c,
                                       "SELECT l.email, l.routing_status, p.slug FROM leads l"
                                       " LEFT JOIN pipelines p ON p.tenant_id = l.tenant_id"
                                       " AND p.id = l.pipeline_id"
                                       " WHERE l.tenant_id = ? AND l.id = ?",
                                       NULL);
    if (st == NULL) return -LF_EINTERNAL;
    lf_stmt_bind(st, "ss", tenant, lead);
    int rc = lf_stmt_step(st);
    if (rc == LF_DB_ROW) {
        const char *email = lf_stmt_text(st, 0), *status = lf_stmt_text(st, 1);
        const char *slug = lf_stmt_text(st, 2);
        mrkdwn_escape(email ? email : lead, label, size);
        routed_to[0] = '\0';
        if (status && strcmp(status, "routed") == 0)
            snprintf(routed_to, 64, "%s", slug ? slug : "a pipeline");
    }
    lf_stmt_done(st);
    return rc;
}

/* Routes by one button: the lead into the pipeline, with its deal, recorded as a manual
 * routing by the Slack user, and the automation it triggers, in one transaction (as
 * POST /leads/{id}/route does). Returns Slack's answer, or NULL with the reply sent (the store
 * failed). */
static json_t *route_by_button(struct lf_req *r, const char *value, const char *by)
{
    char tenant[40], lead_ref[40], pipeline[40];
    if (parse_value(value, tenant, lead_ref, pipeline) < 0)
        return answer(0, "This button is not one leadflow made; nothing was routed.");
    struct lf_conn *c = lf_api_conn(r, LF_DB_WRITE);
    if (c == NULL) return NULL;
    struct lf_err err = {0};
    json_t *out = NULL;
    char lead[40], label[320], routed_to[64], pid[40], slug[64], deal[40] = "", cause[80];
    char op[40]; /* the cause of what the routing emits: unique per click */
    lf_uuid7(op);
    snprintf(cause, sizeof cause, "slack:%s", op);
    int64_t now = lf_now_ms();
    int64_t tenants = 0;
    int routed = 0;
    int rc = lf_db_int(c, &err, &tenants, "SELECT count(*) FROM tenants WHERE id = ?", "s", tenant);
    if (rc >= 0 && tenants == 0) {
        out = answer(0, "This button's tenant is gone from leadflow; nothing was routed.");
        goto out;
    }
    rc = rc < 0 ? rc : lf_automate_begin(c);
    if (rc < 0) goto out;
    int found = lf_lead_resolve_id(c, tenant, lead_ref, lead);
    int state = found == 1 ? lead_state(c, tenant, lead, label, sizeof label, routed_to) : found;
    int have_pipeline =
        state == LF_DB_ROW ? lf_pipeline_find(c, tenant, pipeline, pid, slug) : state;
    rc = have_pipeline < 0 ? have_pipeline : 0;
    if (rc < 0) {
        /* the store failed: answered below */
    } else if (state != LF_DB_ROW) {
        out = answer(0, "That lead no longer exists in leadflow; nothing was routed.");
    } else if (*routed_to) {
        out = answer(0, "%s is already routed to %s; nothing was changed.", label, routed_to);
    } else if (have_pipeline != LF_DB_ROW) {
        out = answer(0, "That pipeline no longer exists; %s was not routed.", label);
    } else {
        rc = lf_route_lead(c, tenant, lead, pid, NULL, "manual", by, cause, now, 1, deal, &err);
        if (rc == 0) rc = lf_automate_commit(c, tenant, lf_now_ms(), &err);
        routed = rc == 0;
    }
    if (!routed) lf_automate_rollback(c);
    if (routed) {
        out = answer(1, "Routed %s to %s by %s", label, slug, by + 6 /* past "slack:" */);
        lf_log_info("lead routed from Slack", "{s:s, s:s, s:s, s:s, s:s}", "tenant_id", tenant,
                    "lead_id", lead, "pipeline", slug, "deal_id", deal, "by", by);
    } else if (rc == -LF_ENOTFOUND || rc == -LF_EINVAL) {
        /* the lead or pipeline went between the look and the routing */
        out = answer(0, "%s was not routed: %s", label, err.msg);
    }
out:
    lf_db_release(c);
    if (out == NULL) {
        lf_log_error("Slack routing failed", "{s:s, s:s, s:s}", "request_id", r->request_id,
                     "value", value, "error", err.msg[0] ? err.msg : lf_strerror(rc));
        lf_reply_error(r, rc < 0 ? rc : -LF_EINTERNAL, &err);
    }
    lf_err_clear(&err);
    return out;
}

/* "slack:<user name or id>" for the routing log. */
static void slack_by(json_t *payload, char *out, size_t size)
{
    json_t *user = json_object_get(payload, "user");
    const char *who = json_string_value(json_object_get(user, "username"));
    if (who == NULL || *who == '\0') who = json_string_value(json_object_get(user, "name"));
    if (who == NULL || *who == '\0') who = json_string_value(json_object_get(user, "id"));
    snprintf(out, size, "slack:%.*s", USER_MAX, who && *who ? who : "unknown");
    lf_utf8_sanitize(out); /* the cut may split a character */
}

/* POST /integrations/slack/interactions: Slack's form body payload=<JSON>. */
static void interactions(struct lf_req *r)
{
    struct lf_err err = {0};
    const char *secret = r->app->cfg.slack_signing_secret;
    const char *ct = lf_req_header(r, "Content-Type");
    char *form = NULL;
    json_t *payload = NULL, *reply = NULL;
    if (secret == NULL || *secret == '\0') {
        lf_err_set(&err, -LF_EBUSY, "Slack is not configured (SLACK_SIGNING_SECRET is not set)");
        goto fail;
    }
    if (lf_slack_verify(secret, lf_req_header(r, "X-Slack-Request-Timestamp"), r->body.data,
                        r->body.len, lf_req_header(r, "X-Slack-Signature"), lf_now_ms()) < 0) {
        lf_err_set(&err, -LF_EAUTH,
                   "the Slack signature (X-Slack-Signature, X-Slack-Request-Timestamp) is"
                   " missing, wrong or more than five minutes old");
        goto fail;
    }
    if (ct == NULL || strncasecmp(ct, "application/x-www-form-urlencoded", 33) != 0 ||
        (ct[33] != '\0' && ct[33] != ';' && ct[33] != ' ')) {
        lf_err_set(&err, -LF_EMEDIA,
                   "Content-Type must be application/x-www-form-urlencoded, not '%s'",
                   ct ? ct : "(none)");
        goto fail;
    }
    form = form_field(r->body.data ? r->body.data : "", r->body.len, "payload");
    json_error_t je;
    payload = form ? json_loads(form, JSON_REJECT_DUPLICATES, &je) : NULL;
    if (!json_is_object(payload)) {
        lf_err_set(&err, -LF_EINVAL, "the body must be a form with payload=<a JSON object>");
        goto fail;
    }
    const char *type = json_string_value(json_object_get(payload, "type"));
    if (type == NULL || strcmp(type, "block_actions") != 0) {
        lf_reply_json(r, 200, NULL); /* nothing leadflow acts on */
        goto out;
    }
    char by[USER_MAX + 16];
    slack_by(payload, by, sizeof by);
    size_t i;
    json_t *action;
    json_array_foreach(json_object_get(payload, "actions"), i, action)
    {
        const char *id = json_string_value(json_object_get(action, "action_id"));
        if (id == NULL || strcmp(id, "route_lead") != 0) continue;
        json_decref(reply);
        reply = route_by_button(r, json_string_value(json_object_get(action, "value")), by);
        if (reply == NULL) goto out; /* answered: the store failed */
    }
    lf_reply_json(r, 200, reply); /* no route_lead action: an empty 200 */
    reply = NULL;
    goto out;
fail:
    lf_reply_error(r, err.code, &err);
out:
    json_decref(reply);
    json_decref(payload);
    free(form);
    lf_err_clear(&err);
}

/* ---- the setting */

/* The setting as the API shows it: stored values over the empty defaults, and whether the
 * process-wide fallbacks are set (never their values: a webhook URL is a credential). */
static json_t *slack_doc(struct lf_req *r, struct lf_conn *c)
{
    const struct lf_config *cfg = &r->app->cfg;
    json_t *s = lf_settings_get(c, r->auth.tenant_id, "slack");
    json_t *url = json_object_get(s, "default_url"), *channels = json_object_get(s, "channels");
    json_t *doc =
        json_pack("{s:o, s:o, s:b, s:b, s:b}", "default_url",
                  json_is_string(url) ? json_incref(url) : json_null(), "channels",
                  json_is_object(channels) ? json_incref(channels) : json_object(),
                  "env_webhook_configured", cfg->slack_webhook_url && *cfg->slack_webhook_url,
                  "alerts_enabled", cfg->enable_slack_alerts, "interactions_configured",
                  cfg->slack_signing_secret && *cfg->slack_signing_secret);
    json_decref(s);
    return doc;
}

static void get_slack(struct lf_req *r)
{
    struct lf_conn *c = lf_api_conn(r, LF_DB_READ);
    if (c == NULL) return;
    json_t *doc = slack_doc(r, c);
    lf_db_release(c);
    lf_reply_json(r, 200, doc);
}

/* Checks a webhook URL; the problem goes to err under field. Names are not resolved (the
 * writer is held here): the dispatcher refuses private addresses when it connects. */
static void check_url(struct lf_req *r, json_t *v, const char *field, struct lf_err *err)
{
    struct lf_err e = {0};
    if (!json_is_string(v))
        lf_err_field(err, field, "must be an http(s) URL");
    else if (strlen(json_string_value(v)) > URL_MAX)
        lf_err_field(err, field, "must be at most %d bytes", URL_MAX);
    else if (lf_target_check_quick(&r->app->cfg, json_string_value(v), &e) < 0)
        lf_err_field(err, field, "%s", e.msg);
    lf_err_clear(&e);
}

/* Checks body's keys and merges them into the stored setting s. */
static void merge_slack(struct lf_req *r, json_t *body, json_t *s, struct lf_err *err)
{
    const char *key;
    json_t *v;
    json_object_foreach(body, key, v)
    {
        if (strcmp(key, "default_url") == 0) {
            if (!json_is_null(v)) check_url(r, v, key, err);
            json_object_set(s, key, v);
        } else if (strcmp(key, "channels") == 0) {
            if (!json_is_object(v)) {
                lf_err_field(err, key, "must be an object mapping channel names to URLs");
                continue;
            }
            if (json_object_size(v) > CHANNELS_MAX) { /* each URL may cost a DNS lookup */
                lf_err_field(err, key, "at most %d channels", CHANNELS_MAX);
                continue;
            }
            json_t *map = json_object();
            const char *name;
            json_t *url;
            json_object_foreach(v, name, url)
            {
                char f[128];
                snprintf(f, sizeof f, "channels.%.80s", name);
                lf_utf8_sanitize(f);
                const char *bare = name[0] == '#' ? name + 1 : name; /* stored without '#' */
                size_t n = lf_utf8_chars(bare, strlen(bare));
                if (n == 0 || n > CHANNEL_MAX)
                    lf_err_field(err, f, "a channel name is 1 to %d characters", CHANNEL_MAX);
                else if (strcmp(bare, "default") == 0)
                    lf_err_field(err, f, "\"default\" is default_url");
                else if (json_object_get(map, bare))
                    lf_err_field(err, f, "names the channel %s twice (with and without '#')", bare);
                else
                    check_url(r, url, f, err);
                json_object_set(map, bare, url);
            }
            json_object_set_new(s, key, map);
        } else {
            lf_err_field(err, key, "unknown key; the Slack setting takes default_url and channels");
        }
    }
}

/* PUT /settings/slack: the keys given replace the stored ones (default_url null clears it;
 * channels replaces the whole map). */
static void put_slack(struct lf_req *r)
{
    struct lf_err err = {0};
    json_t *body = lf_req_json(r, &err);
    if (body == NULL) {
        lf_reply_error(r, err.code, &err);
        lf_err_clear(&err);
        return;
    }
    struct lf_conn *c = lf_api_conn(r, LF_DB_WRITE);
    if (c == NULL) {
        json_decref(body);
        return;
    }
    json_t *s = lf_settings_get(c, r->auth.tenant_id, "slack");
    if (!json_is_object(s)) {
        json_decref(s);
        s = json_object();
    }
    merge_slack(r, body, s, &err);
    int rc = err.code;
    if (json_is_null(json_object_get(s, "default_url"))) json_object_del(s, "default_url");
    if (rc == 0) rc = lf_settings_put(c, r->auth.tenant_id, "slack", s, lf_now_ms());
    json_t *doc = rc == 0 ? slack_doc(r, c) : NULL;
    lf_db_release(c);
    if (doc) {
        lf_log_info("Slack setting changed", "{s:s, s:s}", "tenant_id", r->auth.tenant_id, "by",
                    r->auth.sub);
        lf_reply_json(r, 200, doc);
    } else {
        lf_reply_error(r, rc, &err);
    }
    json_decref(s);
    json_decref(body);
    lf_err_clear(&err);
}

const struct lf_route lf_slack_routes[] = {
    {"POST", "/api/v1/integrations/slack/interactions", interactions, LF_AUTH_NONE, 0, 0, 0, 0},
    {"GET", "/api/v1/settings/slack", get_slack, LF_AUTH_TOKEN, LF_ROLES_ADMIN, 0, 0, 0},
    {"PUT", "/api/v1/settings/slack", put_slack, LF_AUTH_TOKEN, LF_ROLES_ADMIN, 1, 0, 0},
    {NULL, NULL, NULL, 0, 0, 0, 0, 0},
};
