/* Unit tests for Slack (src/outbound/slack.c): the request signature and the Block Kit
 * messages (button values, escaping, cuts at Slack's limits). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "outbound/outbound.h"
#include "core/crypto.h"
#include "core/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Slack's own example (api.slack.com, "Verifying requests from Slack"). */
static const char *const SECRET = "8f742231b10e8888abcd99yyyzzz85a5";
static const char *const TS = "1531420618";
static const char *const BODY =
    "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id="
    "G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-"
    "collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F3977008"
    "85554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c44"
    "7fce8b6703c";
static const char *const SIG =
    "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";
#define NOW_MS (1531420618LL * 1000)

static int verify(const char *secret, const char *ts, const char *body, const char *sig,
                  int64_t now)
{
    return lf_slack_verify(secret, ts, body, body ? strlen(body) : 0, sig, now);
}

static void test_verify_valid(void **state)
{
    (void)state;
    assert_int_equal(verify(SECRET, TS, BODY, SIG, NOW_MS), 0);
    /* within five minutes either way */
    assert_int_equal(verify(SECRET, TS, BODY, SIG, NOW_MS + 300 * 1000), 0);
    assert_int_equal(verify(SECRET, TS, BODY, SIG, NOW_MS - 300 * 1000), 0);
    /* hex in upper case is the same signature */
    char upper[80];
    snprintf(upper, sizeof upper, "v0=%s", SIG + 3);
    for (char *p = upper + 3; *p; p++)
        if (*p >= 'a' && *p <= 'f') *p = (char)(*p - 32);
    assert_int_equal(verify(SECRET, TS, BODY, upper, NOW_MS), 0);
    /* an empty body signs too */
    unsigned char mac[LF_SHA256_LEN];
    char hex[2 * LF_SHA256_LEN + 1], sig[80];
    lf_hmac_sha256(SECRET, strlen(SECRET), "v0:1531420618:", 14, mac);
    lf_hex_encode(mac, LF_SHA256_LEN, hex);
    snprintf(sig, sizeof sig, "v0=%s", hex);
    assert_int_equal(lf_slack_verify(SECRET, TS, NULL, 0, sig, NOW_MS), 0);
}

static void test_verify_bad(void **state)
{
    (void)state;
    char body[1024];
    snprintf(body, sizeof body, "%s", BODY);
    body[10] ^= 1; /* one bit of the body */
    assert_int_equal(verify(SECRET, TS, body, SIG, NOW_MS), -LF_EAUTH);
    assert_int_equal(verify("another secret", TS, BODY, SIG, NOW_MS), -LF_EAUTH);
    assert_int_equal(verify(SECRET, "1531420619", BODY, SIG, NOW_MS), -LF_EAUTH);
    char sig[80];
    snprintf(sig, sizeof sig, "%s", SIG);
    sig[20] = sig[20] == '0' ? '1' : '0';
    assert_int_equal(verify(SECRET, TS, BODY, sig, NOW_MS), -LF_EAUTH);
}

/* More than five minutes off, in the past (a replay) or the future. */
static void test_verify_stale(void **state)
{
    (void)state;
    assert_int_equal(verify(SECRET, TS, BODY, SIG, NOW_MS + 301 * 1000), -LF_EAUTH);
    assert_int_equal(verify(SECRET, TS, BODY, SIG, NOW_MS - 301 * 1000), -LF_EAUTH);
    assert_int_equal(verify(SECRET, TS, BODY, SIG, 0), -LF_EAUTH);
}

static void test_verify_malformed(void **state)
{
    (void)state;
    char sig[80];
    assert_int_equal(verify(SECRET, TS, BODY, NULL, NOW_MS), -LF_EAUTH);
    assert_int_equal(verify(SECRET, NULL, BODY, SIG, NOW_MS), -LF_EAUTH);
    assert_int_equal(verify(NULL, TS, BODY, SIG, NOW_MS), -LF_EAUTH);
    assert_int_equal(verify("", TS, BODY, SIG, NOW_MS), -LF_EAUTH);
    assert_int_equal(verify(SECRET, "", BODY, SIG, NOW_MS), -LF_EAUTH);
    assert_int_equal(verify(SECRET, "1531420618.5", BODY, SIG, NOW_MS), -LF_EAUTH);
    assert_int_equal(verify(SECRET, "-1531420618", BODY, SIG, NOW_MS), -LF_EAUTH);
    assert_int_equal(verify(SECRET, " 1531420618", BODY, SIG, NOW_MS), -LF_EAUTH);
    assert_int_equal(verify(SECRET, "99999999999999999999", BODY, SIG, NOW_MS), -LF_EAUTH);
    snprintf(sig, sizeof sig, "v1=%s", SIG + 3); /* another version */
    assert_int_equal(verify(SECRET, TS, BODY, sig, NOW_MS), -LF_EAUTH);
    snprintf(sig, sizeof sig, "%s", SIG + 3); /* no version */
    assert_int_equal(verify(SECRET, TS, BODY, sig, NOW_MS), -LF_EAUTH);
    snprintf(sig, sizeof sig, "%.66s", SIG); /* cut short */
    assert_int_equal(verify(SECRET, TS, BODY, sig, NOW_MS), -LF_EAUTH);
    snprintf(sig, sizeof sig, "%s0", SIG); /* too long */
    assert_int_equal(verify(SECRET, TS, BODY, sig, NOW_MS), -LF_EAUTH);
    assert_int_equal(verify(SECRET, TS, BODY, "v0=", NOW_MS), -LF_EAUTH);
    /* a body with a NUL inside is signed over all its bytes */
    assert_int_equal(lf_slack_verify(SECRET, TS, "a\0b", 3, SIG, NOW_MS), -LF_EAUTH);
}

/* ---- messages */

static const char *text_of(json_t *o)
{
    return json_string_value(json_object_get(o, "text"));
}

/* The block of the given type (the first). */
static json_t *block(json_t *msg, const char *type)
{
    size_t i;
    json_t *b;
    json_array_foreach(json_object_get(msg, "blocks"), i, b)
    {
        if (strcmp(json_string_value(json_object_get(b, "type")), type) == 0) return b;
    }
    return NULL;
}

static size_t chars(const char *s)
{
    return lf_utf8_chars(s, strlen(s));
}

static int ends_with(const char *s, const char *end)
{
    size_t n = strlen(s), m = strlen(end);
    return n >= m && strcmp(s + n - m, end) == 0;
}

#define TENANT "0190a0b0-0000-7000-8000-000000000001"
#define LEAD   "0190a0b0-0000-7000-8000-000000000002"
#define P_B2B  "0190a0b0-0000-7000-8000-0000000000b2"
#define P_RES  "0190a0b0-0000-7000-8000-0000000000e5"

/* A button's value: "route:<tenant>:<lead>:<pipeline>:<mac>". */
static void assert_button_value(json_t *b, const char *pipeline)
{
    char head[200], mac[LF_SLACK_MAC_LEN + 1], want[240];
    snprintf(head, sizeof head, "route:%s:%s:%s", TENANT, LEAD, pipeline);
    lf_slack_button_mac(head, mac);
    snprintf(want, sizeof want, "%s:%s", head, mac);
    assert_string_equal(json_string_value(json_object_get(b, "value")), want);
}

static json_t *conflict_data(const char *b2b_name)
{
    return json_pack("{s:s, s:i, s:n, s:i, s:[{s:s, s:i, s:i, s:s, s:s}, {s:s, s:i, s:i, s:s,"
                     " s:s}, {s:s, s:i, s:i, s:n, s:n}]}",
                     "reason", "ambiguous", "score", 60, "primary_intent", "confidence", 50,
                     "candidates", "intent", "b2b", "points", 40, "confidence", 44, "pipeline_id",
                     P_B2B, "pipeline", b2b_name, "intent", "research", "points", 40, "confidence",
                     44, "pipeline_id", P_RES, "pipeline", "research", "intent", "jobs", "points",
                     10, "confidence", 11, "pipeline_id", "pipeline");
}

/* One button per candidate with a pipeline; the value names tenant, lead and pipeline. */
static void test_conflict_buttons(void **state)
{
    (void)state;
    json_t *lead = json_pack("{s:s, s:s, s:s, s:s, s:{s:s}}", "id", LEAD, "email",
                             "ada@corp.example", "first_name", "Ada", "last_name", "Lovelace",
                             "organization", "name", "Analytical Engines");
    json_t *data = conflict_data("b2b");
    json_t *msg = lf_slack_conflict(TENANT, lead, data);
    assert_non_null(msg);
    assert_non_null(strstr(text_of(msg), "Ada Lovelace"));
    json_t *section = block(msg, "section");
    const char *text = text_of(json_object_get(section, "text"));
    assert_non_null(strstr(text, "ada@corp.example"));
    assert_non_null(strstr(text, "Analytical Engines"));
    assert_non_null(strstr(text, "*b2b*: 40 points"));
    assert_non_null(strstr(text, "*research*: 40 points"));
    assert_non_null(strstr(text, "*jobs*: 10 points"));
    assert_non_null(strstr(text, "too close to call"));
    json_t *buttons = json_object_get(block(msg, "actions"), "elements");
    assert_int_equal(json_array_size(buttons), 2);
    json_t *b = json_array_get(buttons, 0);
    assert_string_equal(json_string_value(json_object_get(b, "type")), "button");
    assert_string_equal(json_string_value(json_object_get(b, "action_id")), "route_lead");
    assert_button_value(b, P_B2B);
    assert_string_equal(text_of(json_object_get(b, "text")), "Route to b2b");
    b = json_array_get(buttons, 1);
    assert_button_value(b, P_RES);
    json_decref(msg);

    /* no candidate with a pipeline: no actions block at all (Slack refuses an empty one) */
    json_t *none = json_pack("{s:s, s:i, s:[{s:s, s:i, s:i}]}", "reason", "no_pipeline", "score",
                             70, "candidates", "intent", "jobs", "points", 30, "confidence", 100);
    msg = lf_slack_conflict(TENANT, lead, none);
    assert_null(block(msg, "actions"));
    assert_non_null(
        strstr(text_of(json_object_get(block(msg, "section"), "text")), "maps to no pipeline"));
    json_decref(msg);
    json_decref(none);
    json_decref(data);
    json_decref(lead);
}

/* Lead data is escaped: a lead cannot notify a channel or forge a link. */
static void test_escaping(void **state)
{
    (void)state;
    json_t *lead = json_pack("{s:s, s:s, s:s}", "id", LEAD, "email", "x@corp.example", "first_name",
                             "<!channel> & <https://evil.example|click>");
    json_t *data = json_pack("{s:i, s:i, s:i}", "score", 90, "previous_score", 70, "threshold", 80);
    json_t *msg = lf_slack_hot_lead(lead, data);
    char *dump = json_dumps(msg, 0);
    assert_null(strstr(dump, "<!channel>"));
    assert_null(strstr(dump, "<https://"));
    assert_non_null(strstr(dump, "&lt;!channel&gt; &amp; &lt;https://evil.example|click&gt;"));
    free(dump);
    json_decref(msg);
    msg = lf_slack_text_message("deal <b> & co");
    assert_string_equal(text_of(json_object_get(block(msg, "section"), "text")),
                        "deal &lt;b&gt; &amp; co");
    json_decref(msg);
    json_decref(data);
    json_decref(lead);
}

static void test_hot_lead(void **state)
{
    (void)state;
    json_t *lead = json_pack("{s:s, s:s, s:s, s:s, s:{s:i, s:s}, s:{s:s, s:i}, s:{s:s}, s:{s:s}}",
                             "id", LEAD, "email", "ada@corp.example", "first_name", "Ada",
                             "last_name", "Lovelace", "score", "total", 100, "tier", "hot",
                             "intent", "primary", "b2b", "confidence", 80, "organization", "name",
                             "Analytical Engines", "first_touch", "source", "google");
    json_t *data =
        json_pack("{s:i, s:i, s:i}", "score", 100, "previous_score", 50, "threshold", 80);
    json_t *msg = lf_slack_hot_lead(lead, data);
    assert_string_equal(text_of(json_object_get(block(msg, "header"), "text")), "🔥 Hot lead");
    json_t *fields = json_object_get(block(msg, "section"), "fields");
    assert_int_equal(json_array_size(fields), 5);
    assert_string_equal(text_of(json_array_get(fields, 0)), "*Name*\nAda Lovelace");
    assert_string_equal(text_of(json_array_get(fields, 1)), "*Email*\nada@corp.example");
    assert_string_equal(text_of(json_array_get(fields, 2)), "*Company*\nAnalytical Engines");
    assert_string_equal(text_of(json_array_get(fields, 3)), "*Score*\n100 (was 50; hot at 80)");
    assert_string_equal(text_of(json_array_get(fields, 4)), "*Intent*\nb2b (80% confidence)");
    const char *ctx =
        text_of(json_array_get(json_object_get(block(msg, "context"), "elements"), 0));
    assert_non_null(strstr(ctx, "hot"));
    assert_non_null(strstr(ctx, "google"));
    assert_non_null(strstr(ctx, LEAD));
    assert_non_null(strstr(text_of(msg), "Ada Lovelace"));
    json_decref(msg);
    /* the flat shape (a lead context) and a lead with nothing but an email */
    json_decref(lead);
    lead = json_pack("{s:s, s:i, s:s, s:i}", "email", "bo@corp.example", "total_score", 85,
                     "primary_intent", "research", "intent_confidence", 60);
    msg = lf_slack_hot_lead(lead, NULL);
    fields = json_object_get(block(msg, "section"), "fields");
    assert_string_equal(text_of(json_array_get(fields, 0)), "*Name*\nbo@corp.example");
    assert_string_equal(text_of(json_array_get(fields, 2)), "*Company*\n—");
    assert_string_equal(text_of(json_array_get(fields, 3)), "*Score*\n85");
    assert_string_equal(text_of(json_array_get(fields, 4)), "*Intent*\nresearch (60% confidence)");
    json_decref(msg);
    json_decref(data);
    json_decref(lead);
}

/* Texts past Slack's limits are cut at a character, ending in "…". */
static void test_truncation(void **state)
{
    (void)state;
    /* a section: 3,000 characters of two-byte ones */
    char *long_text = malloc(5000 * 2 + 1);
    for (int i = 0; i < 5000; i++) memcpy(long_text + 2 * i, "ü", 2);
    long_text[10000] = '\0';
    json_t *msg = lf_slack_text_message(long_text);
    const char *s = text_of(json_object_get(block(msg, "section"), "text"));
    assert_int_equal(chars(s), 3000);
    assert_true(ends_with(s, "ü…"));
    assert_true(chars(text_of(msg)) <= 3000);
    json_decref(msg);
    /* exactly at the limit: nothing cut */
    long_text[3000 * 2] = '\0';
    msg = lf_slack_text_message(long_text);
    assert_string_equal(text_of(json_object_get(block(msg, "section"), "text")), long_text);
    json_decref(msg);
    /* an escape is never split: 2,998 characters, then "&amp;" would not fit */
    memset(long_text, 'a', 2998);
    memcpy(long_text + 2998, "&&", 3);
    msg = lf_slack_text_message(long_text);
    s = text_of(json_object_get(block(msg, "section"), "text"));
    assert_int_equal(chars(s), 2999);
    assert_true(ends_with(s, "a…"));
    json_decref(msg);
    /* a button: 75 characters at most; its value is never cut */
    char name[201];
    for (int i = 0; i < 100; i++) memcpy(name + 2 * i, "é", 2);
    name[200] = '\0';
    json_t *lead = json_pack("{s:s, s:s}", "id", LEAD, "email", "ada@corp.example");
    json_t *data = conflict_data(name);
    msg = lf_slack_conflict(TENANT, lead, data);
    json_t *b = json_array_get(json_object_get(block(msg, "actions"), "elements"), 0);
    const char *bt = text_of(json_object_get(b, "text"));
    assert_int_equal(chars(bt), 75);
    assert_true(strncmp(bt, "Route to é", strlen("Route to é")) == 0);
    assert_true(ends_with(bt, "é…"));
    assert_button_value(b, P_B2B);
    json_decref(msg);
    json_decref(data);
    /* a field: 2,000 characters */
    json_decref(lead);
    memset(long_text, 'x', 2500);
    long_text[2500] = '\0';
    lead = json_pack("{s:s, s:s}", "id", LEAD, "email", long_text);
    msg = lf_slack_hot_lead(lead, NULL);
    const char *f = text_of(json_array_get(json_object_get(block(msg, "section"), "fields"), 1));
    assert_int_equal(chars(f), 2000);
    assert_true(ends_with(f, "x…"));
    assert_true(chars(text_of(msg)) <= 3000);
    json_decref(msg);
    json_decref(lead);
    /* a name longer than the builders' name buffer is cut at a character, never emptied */
    for (int i = 0; i < 400; i++) memcpy(long_text + 2 * i, "é", 2);
    long_text[800] = '\0';
    lead = json_pack("{s:s, s:s, s:s}", "id", LEAD, "email", "e@corp.example", "first_name",
                     long_text);
    msg = lf_slack_hot_lead(lead, NULL);
    assert_true(strncmp(text_of(msg), "🔥 Hot lead: éé", strlen("🔥 Hot lead: éé")) == 0);
    f = text_of(json_array_get(json_object_get(block(msg, "section"), "fields"), 0));
    assert_true(chars(f) > 200 && ends_with(f, "é"));
    json_decref(msg);
    json_decref(lead);
    free(long_text);
}

/* Without a store: SLACK_WEBHOOK_URL or nothing. */
static void test_url_fallback(void **state)
{
    (void)state;
    struct lf_config cfg;
    memset(&cfg, 0, sizeof cfg);
    char url[64];
    assert_int_equal(lf_slack_url(NULL, &cfg, NULL, NULL, url, sizeof url), 0);
    cfg.slack_webhook_url = "https://hooks.slack.com/services/T/B/x";
    assert_int_equal(lf_slack_url(NULL, &cfg, NULL, "sales", url, sizeof url), 1);
    assert_string_equal(url, "https://hooks.slack.com/services/T/B/x");
    assert_int_equal(lf_slack_url(NULL, &cfg, NULL, "default", url, 8), -LF_ETOOLARGE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_verify_valid),     cmocka_unit_test(test_verify_bad),
        cmocka_unit_test(test_verify_stale),     cmocka_unit_test(test_verify_malformed),
        cmocka_unit_test(test_conflict_buttons), cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_hot_lead),         cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_url_fallback),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
