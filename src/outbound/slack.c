/* Slack: the Block Kit messages (plain text, the hot-lead alert, the routing conflict with a
 * button per candidate pipeline), the check of Slack's request signature, and the
 * incoming-webhook URL of a tenant's channel.
 *
 * Every text a message carries is cut to Slack's limit for its place (a section's text 3,000
 * characters, a field 2,000, a header 150, a button 75) at a character boundary, ending in
 * "…" when cut: Slack refuses a whole message when one text is too long. Text that comes from
 * leads is mrkdwn-escaped (&, <, >), so a lead named "<!channel>" cannot notify a channel or
 * forge a link. */
#include "outbound/outbound.h"
#include "core/crypto.h"
#include "core/mem.h"
#include "engine/settings.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SIG_TOLERANCE_S 300  /* Slack's advice: refuse requests older than five minutes */
#define SECTION_MAX     3000 /* characters of a section's text (and the fallback text) */
#define FIELD_MAX       2000 /* characters of a section field */
#define HEADER_MAX      150  /* characters of a header */
#define CONTEXT_MAX     2000 /* characters of a context element */
#define BUTTON_TEXT_MAX 75   /* characters of a button's text */
#define BUTTON_VALUE    2000 /* characters of a button's value */
#define BUTTONS_MAX     25   /* elements of an actions block */

/* ---- text cut to a limit */

/* Text being built up to max characters. Pieces (a character, or an escape like "&amp;") are
 * never split; cut remembers where the text can end with room left for the ellipsis. */
struct text {
    struct lf_buf b;
    size_t chars; /* characters in b */
    size_t max;   /* characters allowed, the ellipsis included */
    size_t cut;   /* bytes of the longest prefix of at most max - 1 characters */
    int over;     /* a piece did not fit: the rest is dropped */
};

static void text_init(struct text *t, size_t max)
{
    memset(t, 0, sizeof *t);
    t->max = max;
}

static void piece(struct text *t, const char *p, size_t n, size_t chars)
{
    if (t->over) return;
    if (t->chars + chars > t->max) {
        t->over = 1;
        return;
    }
    lf_buf_append(&t->b, p, n);
    t->chars += chars;
    if (t->chars < t->max) t->cut = t->b.len;
}

/* Appends s (valid UTF-8; NULL appends nothing); with escape, &, < and > as mrkdwn wants them. */
static void put(struct text *t, const char *s, int escape)
{
    for (const unsigned char *p = (const unsigned char *)s; p && *p && !t->over;) {
        if (escape && *p == '&') {
            piece(t, "&amp;", 5, 5);
            p++;
        } else if (escape && *p == '<') {
            piece(t, "&lt;", 4, 4);
            p++;
        } else if (escape && *p == '>') {
            piece(t, "&gt;", 4, 4);
            p++;
        } else {
            size_t n = 1; /* a character: its lead byte and continuation bytes */
            while (p[n] && (p[n] & 0xC0) == 0x80) n++;
            piece(t, (const char *)p, n, 1);
            p += n;
        }
    }
}

/* Appends a short formatted text (numbers, ids: at most 511 bytes, never cut in a
 * character's middle); lead data goes through put. */
static void putf(struct text *t, int escape, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void putf(struct text *t, int escape, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    put(t, buf, escape);
}

/* The text as a JSON string (the builder is emptied); cut with "…" when it ran over. */
static json_t *text_json(struct text *t)
{
    if (t->over) {
        t->b.len = t->cut;
        lf_buf_append(&t->b, "\xE2\x80\xA6", 3); /* U+2026 */
    }
    json_t *s = json_stringn(t->b.data ? t->b.data : "", t->b.len);
    lf_buf_free(&t->b);
    return s ? s : json_string("");
}

/* s cut to max characters, escaped or not, as a JSON string. */
static json_t *clip(const char *s, size_t max, int escape)
{
    struct text t;
    text_init(&t, max);
    put(&t, s, escape);
    return text_json(&t);
}

static json_t *mrkdwn(json_t *text)
{
    return json_pack("{s:s, s:o}", "type", "mrkdwn", "text", text);
}

static json_t *plain(json_t *text)
{
    return json_pack("{s:s, s:o, s:b}", "type", "plain_text", "text", text, "emoji", 1);
}

/* A section field "*label*\nvalue" (value escaped). */
static json_t *field(const char *label, const char *value)
{
    struct text t;
    text_init(&t, FIELD_MAX);
    putf(&t, 0, "*%s*\n", label);
    put(&t, value && *value ? value : "—", 1);
    return mrkdwn(text_json(&t));
}

static json_t *message(json_t *fallback, json_t *blocks)
{
    return json_pack("{s:o, s:o}", "text", fallback, "blocks", blocks);
}

/* ---- reading the lead, whichever shape it comes in */

/* A string member, or NULL when absent, null or not a string. */
static const char *str(json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

/* An integer at o.a (or o.a.b when b is given); *found says whether it was there. */
static long long num(json_t *o, const char *a, const char *b, int *found)
{
    json_t *v = json_object_get(o, a);
    if (b) v = json_object_get(v, b);
    if (found) *found = json_is_integer(v);
    return json_is_integer(v) ? (long long)json_integer_value(v) : 0;
}

/* The lead's name: "first last", else its email, else "a lead". Into out. */
static void lead_name(json_t *lead, char *out, size_t size)
{
    const char *first = str(lead, "first_name"), *last = str(lead, "last_name");
    if ((first && *first) || (last && *last))
        snprintf(out, size, "%s%s%s", first ? first : "",
                 first && *first && last && *last ? " " : "", last ? last : "");
    else
        snprintf(out, size, "%s", str(lead, "email") ? str(lead, "email") : "a lead");
    lf_utf8_sanitize(out); /* the cut may split a character */
}

/* The lead's company: the organization's name (lf_lead_json with full), or a "company" or
 * "organization" string; NULL when none. */
static const char *lead_company(json_t *lead)
{
    json_t *org = json_object_get(lead, "organization");
    if (json_is_object(org)) return str(org, "name");
    if (json_is_string(org)) return json_string_value(org);
    return str(lead, "company");
}

/* The lead's primary intent and confidence: lf_lead_json's intent {primary, confidence}, or
 * the flat primary_intent / intent_confidence of a lead context. */
static const char *lead_intent(json_t *lead, long long *confidence)
{
    json_t *intent = json_object_get(lead, "intent");
    if (json_is_object(intent)) {
        *confidence = num(intent, "confidence", NULL, NULL);
        return str(intent, "primary");
    }
    *confidence = num(lead, "intent_confidence", NULL, NULL);
    return str(lead, "primary_intent");
}

/* The tier: lf_lead_json's score.tier or a flat score_tier. */
static const char *lead_tier(json_t *lead)
{
    json_t *score = json_object_get(lead, "score");
    return json_is_object(score) ? str(score, "tier") : str(lead, "score_tier");
}

static long long lead_score(json_t *lead)
{
    int found;
    long long v = num(lead, "score", "total", &found);
    return found ? v : num(lead, "total_score", NULL, NULL);
}

/* The lead's first-touch source: lf_lead_json's first_touch.source or a flat one. */
static const char *lead_source(json_t *lead)
{
    json_t *ft = json_object_get(lead, "first_touch");
    return json_is_object(ft) ? str(ft, "source") : str(lead, "first_touch_source");
}

/* ---- messages */

json_t *lf_slack_text_message(const char *text)
{
    json_t *blocks = json_pack("[{s:s, s:o}]", "type", "section", "text",
                               mrkdwn(clip(text ? text : "", SECTION_MAX, 1)));
    return message(clip(text ? text : "", SECTION_MAX, 1), blocks);
}

json_t *lf_slack_hot_lead(json_t *lead, json_t *data)
{
    char name[512];
    lead_name(lead, name, sizeof name);
    int have;
    long long score = num(data, "score", NULL, &have);
    if (!have) score = lead_score(lead);
    long long previous = num(data, "previous_score", NULL, NULL);
    long long threshold = num(data, "threshold", NULL, &have);

    struct text t;
    text_init(&t, SECTION_MAX);
    put(&t, "🔥 Hot lead: ", 0);
    put(&t, name, 1);
    putf(&t, 0, " scored %lld", score);
    json_t *fallback = text_json(&t);

    json_t *fields = json_array();
    json_array_append_new(fields, field("Name", name));
    json_array_append_new(fields, field("Email", str(lead, "email")));
    json_array_append_new(fields, field("Company", lead_company(lead)));
    char buf[160];
    if (have)
        snprintf(buf, sizeof buf, "%lld (was %lld; hot at %lld)", score, previous, threshold);
    else
        snprintf(buf, sizeof buf, "%lld", score);
    json_array_append_new(fields, field("Score", buf));
    long long confidence;
    const char *intent = lead_intent(lead, &confidence);
    if (intent && *intent) {
        struct text it;
        text_init(&it, 200);
        put(&it, intent, 0);
        putf(&it, 0, " (%lld%% confidence)", confidence);
        json_t *s = text_json(&it);
        json_array_append_new(fields, field("Intent", json_string_value(s)));
        json_decref(s);
    } else {
        json_array_append_new(fields, field("Intent", NULL));
    }

    text_init(&t, CONTEXT_MAX);
    const char *tier = lead_tier(lead), *source = lead_source(lead), *id = str(lead, "id");
    putf(&t, 1, "Tier %s", tier ? tier : "hot");
    if (source && *source) {
        put(&t, " · first touch ", 0);
        put(&t, source, 1);
    }
    if (id) putf(&t, 1, " · lead %s", id);
    json_t *context = json_pack("[o]", mrkdwn(text_json(&t)));

    json_t *blocks = json_pack("[{s:s, s:o}, {s:s, s:o}, {s:s, s:o}]", "type", "header", "text",
                               plain(clip("🔥 Hot lead", HEADER_MAX, 0)), "type", "section",
                               "fields", fields, "type", "context", "elements", context);
    return message(fallback, blocks);
}

/* Why the router asked a person, in words. */
static void conflict_reason(struct text *t, const char *reason, long long confidence)
{
    if (reason && strcmp(reason, "ambiguous") == 0)
        put(t, "its intents are too close to call", 0);
    else if (reason && strcmp(reason, "low_confidence") == 0)
        putf(t, 0, "its intent is not clear enough (%lld%% confidence)", confidence);
    else if (reason && strcmp(reason, "no_pipeline") == 0)
        put(t, "its intent maps to no pipeline", 0);
    else {
        put(t, "of ", 0);
        put(t, reason ? reason : "an unknown reason", 1);
    }
}

void lf_slack_button_mac(const char *value, char out[LF_SLACK_MAC_LEN + 1])
{
    const struct lf_config *cfg = lf_relay_config();
    const char *key = cfg && cfg->jwt_secret ? cfg->jwt_secret : "";
    unsigned char mac[LF_SHA256_LEN];
    char hex[2 * LF_SHA256_LEN + 1];
    lf_hmac_sha256(key, strlen(key), value, strlen(value), mac);
    lf_hex_encode(mac, LF_SHA256_LEN, hex);
    memcpy(out, hex, LF_SLACK_MAC_LEN);
    out[LF_SLACK_MAC_LEN] = '\0';
}

/* The button routing the lead into a candidate's pipeline; NULL when the value would not fit. */
static json_t *route_button(const char *tenant_id, const char *lead_id, json_t *cand)
{
    const char *pid = str(cand, "pipeline_id"), *pipeline = str(cand, "pipeline");
    char value[BUTTON_VALUE + 1], mac[LF_SLACK_MAC_LEN + 1];
    int n = snprintf(value, sizeof value, "route:%s:%s:%s", tenant_id, lead_id, pid);
    if (n < 0 || (size_t)n + 1 + LF_SLACK_MAC_LEN >= sizeof value) return NULL;
    lf_slack_button_mac(value, mac);
    snprintf(value + n, sizeof value - (size_t)n, ":%s", mac);
    struct text t;
    text_init(&t, BUTTON_TEXT_MAX);
    put(&t, "Route to ", 0);
    put(&t, pipeline && *pipeline ? pipeline : pid, 0);
    return json_pack("{s:s, s:o, s:s, s:s}", "type", "button", "text", plain(text_json(&t)),
                     "action_id", "route_lead", "value", value);
}

json_t *lf_slack_conflict(const char *tenant_id, json_t *lead, json_t *data)
{
    char name[512];
    lead_name(lead, name, sizeof name);
    const char *email = str(lead, "email"), *company = lead_company(lead);
    const char *lead_id = str(lead, "id");
    int have;
    long long score = num(data, "score", NULL, &have);
    if (!have) score = lead_score(lead);

    struct text t;
    text_init(&t, SECTION_MAX);
    put(&t, "Routing conflict: ", 0);
    put(&t, name, 1);
    put(&t, " needs a pipeline", 0);
    json_t *fallback = text_json(&t);

    text_init(&t, SECTION_MAX);
    put(&t, "*", 0);
    put(&t, name, 1);
    put(&t, "*", 0);
    if (email && strcmp(email, name) != 0) {
        put(&t, " (", 0);
        put(&t, email, 1);
        if (company && *company) {
            put(&t, ", ", 0);
            put(&t, company, 1);
        }
        put(&t, ")", 0);
    } else if (company && *company) {
        put(&t, " (", 0);
        put(&t, company, 1);
        put(&t, ")", 0);
    }
    putf(&t, 0, ", score %lld, needs a person to pick its pipeline: ", score);
    conflict_reason(&t, str(data, "reason"), num(data, "confidence", NULL, NULL));
    put(&t, ".", 0);
    json_t *buttons = json_array();
    json_t *candidates = json_object_get(data, "candidates");
    size_t i;
    json_t *cand;
    json_array_foreach(candidates, i, cand)
    {
        const char *intent = str(cand, "intent"), *pipeline = str(cand, "pipeline");
        put(&t, "\n• *", 0);
        put(&t, intent ? intent : "?", 1);
        putf(&t, 0, "*: %lld points (%lld%% confidence)", num(cand, "points", NULL, NULL),
             num(cand, "confidence", NULL, NULL));
        if (pipeline && *pipeline) {
            put(&t, " → ", 0);
            put(&t, pipeline, 1);
        } else {
            put(&t, ", no pipeline", 0);
        }
        json_t *b = str(cand, "pipeline_id") && lead_id && tenant_id &&
                            json_array_size(buttons) < BUTTONS_MAX
                        ? route_button(tenant_id, lead_id, cand)
                        : NULL;
        if (b) json_array_append_new(buttons, b);
    }
    json_t *blocks = json_pack("[{s:s, s:o}, {s:s, s:o}]", "type", "header", "text",
                               plain(clip("🔀 Routing conflict", HEADER_MAX, 0)), "type", "section",
                               "text", mrkdwn(text_json(&t)));
    if (json_array_size(buttons) > 0)
        json_array_append_new(blocks,
                              json_pack("{s:s, s:o}", "type", "actions", "elements", buttons));
    else
        json_decref(buttons);
    return message(fallback, blocks);
}

/* ---- the request signature */

int lf_slack_verify(const char *secret, const char *timestamp, const char *body, size_t len,
                    const char *sig, int64_t now)
{
    if (secret == NULL || *secret == '\0' || timestamp == NULL || sig == NULL ||
        (body == NULL && len > 0))
        return -LF_EAUTH;
    /* the timestamp: decimal seconds, near now (an old request may be a replay) */
    size_t tn = strlen(timestamp);
    if (tn == 0 || tn > 12 || strspn(timestamp, "0123456789") != tn) return -LF_EAUTH;
    long long ts = strtoll(timestamp, NULL, 10);
    long long skew = (long long)(now / 1000) - ts;
    if (skew > SIG_TOLERANCE_S || skew < -SIG_TOLERANCE_S) return -LF_EAUTH;
    if (strncmp(sig, "v0=", 3) != 0 || strlen(sig + 3) != 2 * LF_SHA256_LEN) return -LF_EAUTH;

    /* the signed text: "v0:" timestamp ":" body */
    size_t n = 3 + tn + 1 + len;
    char *base = malloc(n);
    if (base == NULL) return -LF_ENOMEM;
    memcpy(base, "v0:", 3);
    memcpy(base + 3, timestamp, tn);
    base[3 + tn] = ':';
    if (len) memcpy(base + 4 + tn, body, len);
    unsigned char mac[LF_SHA256_LEN];
    lf_hmac_sha256(secret, strlen(secret), base, n, mac);
    free(base);
    char want[2 * LF_SHA256_LEN + 1], got[2 * LF_SHA256_LEN + 1];
    lf_hex_encode(mac, LF_SHA256_LEN, want);
    for (size_t i = 0; i < 2 * LF_SHA256_LEN; i++) {
        char c = sig[3 + i];
        got[i] = c >= 'A' && c <= 'F' ? (char)(c + 32) : c; /* hex in either case */
    }
    return lf_consttime_eq(want, 2 * LF_SHA256_LEN, got, 2 * LF_SHA256_LEN) ? 0 : -LF_EAUTH;
}

/* ---- the channel's URL */

int lf_slack_url(struct lf_conn *c, const struct lf_config *cfg, const char *tenant_id,
                 const char *channel, char *url, size_t size)
{
    json_t *s = c && tenant_id ? lf_settings_get(c, tenant_id, "slack") : NULL;
    const char *u = NULL;
    if (channel && *channel == '#') channel++; /* "#sales" is the channel "sales" */
    if (channel && *channel && strcmp(channel, "default") != 0)
        u = str(json_object_get(s, "channels"), channel);
    if (u == NULL || *u == '\0') u = str(s, "default_url");
    if ((u == NULL || *u == '\0') && cfg) u = cfg->slack_webhook_url;
    int rc = 0;
    if (u && *u) {
        if (strlen(u) >= size)
            rc = -LF_ETOOLARGE;
        else {
            snprintf(url, size, "%s", u);
            rc = 1;
        }
    }
    json_decref(s);
    return rc;
}
