/* Unit tests for src/core: UUIDv7, RFC 3339 time, HMAC and Standard Webhooks signatures,
 * base64, the token bucket, and error messages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/crypto.h"
#include "core/err.h"
#include "core/ratelimit.h"
#include "core/timeutil.h"

#include <stdio.h>
#include <string.h>

static void uuid7_shape_and_version(void **state)
{
    char id[LF_UUID_STRLEN + 1];
    lf_uuid7(id);
    assert_int_equal(strlen(id), 36);
    assert_true(lf_uuid_valid(id));
    assert_int_equal(id[14], '7');               /* version */
    assert_true(strchr("89ab", id[19]) != NULL); /* variant 10xx */
    assert_false(lf_uuid_valid("not-a-uuid"));
    assert_false(lf_uuid_valid("01a20fdd-ad6d-7658-9f6c-03248567a01"));
    assert_false(lf_uuid_valid("01a20fdd-ad6d-7658-9f6c-03248567a01g"));
    (void)state;
}

static void uuid7_strictly_increasing(void **state)
{
    char prev[LF_UUID_STRLEN + 1], cur[LF_UUID_STRLEN + 1];
    lf_uuid7(prev);
    for (int i = 0; i < 100000; i++) { /* many within one millisecond */
        lf_uuid7(cur);
        assert_true(strcmp(prev, cur) < 0);
        memcpy(prev, cur, sizeof cur);
    }
    (void)state;
}

static void uuid7_embeds_time(void **state)
{
    char id[LF_UUID_STRLEN + 1];
    int64_t before = lf_now_ms();
    lf_uuid7(id);
    char hex[13];
    memcpy(hex, id, 8);
    memcpy(hex + 8, id + 9, 4);
    hex[12] = '\0';
    long long ms = strtoll(hex, NULL, 16);
    assert_true(ms >= before && ms <= lf_now_ms() + 1);
    (void)state;
}

static void time_parse_forms(void **state)
{
    int64_t ms = 0;
    assert_int_equal(lf_time_parse("2026-11-20T10:00:00Z", &ms), 0);
    assert_int_equal(ms, 1795168800000LL);
    assert_int_equal(lf_time_parse("2026-11-20T10:00:00.123Z", &ms), 0);
    assert_int_equal(ms, 1795168800123LL);
    assert_int_equal(lf_time_parse("2026-11-20T12:00:00+02:00", &ms), 0);
    assert_int_equal(ms, 1795168800000LL);
    assert_int_equal(lf_time_parse("2026-11-20T05:30:00.5-04:30", &ms), 0);
    assert_int_equal(ms, 1795168800500LL);
    assert_int_equal(lf_time_parse("2026-11-20t10:00:00z", &ms), 0);
    assert_int_equal(lf_time_parse("1970-01-01T00:00:00Z", &ms), 0);
    assert_int_equal(ms, 0);
    assert_int_equal(lf_time_parse("2024-02-29T00:00:00Z", &ms), 0); /* leap year */
    (void)state;
}

static void time_parse_rejects(void **state)
{
    int64_t ms = 42;
    const char *bad[] = {"",
                         "2026-11-20",
                         "2026-11-20T10:00:00",      /* no zone */
                         "2026-13-01T00:00:00Z",     /* month */
                         "2026-02-29T00:00:00Z",     /* not a leap year */
                         "2100-02-29T00:00:00Z",     /* century, not leap */
                         "2026-11-31T00:00:00Z",     /* day */
                         "2026-11-20T24:00:00Z",     /* hour */
                         "2026-11-20T10:60:00Z",     /* minute */
                         "2026-11-20T10:00:00.Z",    /* empty fraction */
                         "2026-11-20T10:00:00Zjunk", /* trailing */
                         "2026-11-20T10:00:00+2:00", /* offset shape */
                         "20261120T100000Z",
                         "yesterday"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(lf_time_parse(bad[i], &ms), -LF_EINVAL);
        assert_int_equal(ms, 42); /* untouched on failure */
    }
    (void)state;
}

static void time_format_roundtrip(void **state)
{
    char buf[LF_TIME_BUFSZ];
    assert_string_equal(lf_time_format(1795168800123LL, buf, sizeof buf),
                        "2026-11-20T10:00:00.123Z");
    assert_string_equal(lf_time_format(0, buf, sizeof buf), "1970-01-01T00:00:00.000Z");
    assert_string_equal(lf_time_format(951782400000LL, buf, sizeof buf),
                        "2000-02-29T00:00:00.000Z");
    for (int64_t ms = 0; ms < 4102444800000LL; ms += 86400000LL * 37 + 12345) {
        int64_t back = -1;
        assert_int_equal(lf_time_parse(lf_time_format(ms, buf, sizeof buf), &back), 0);
        assert_int_equal(back, ms);
    }
    (void)state;
}

static void hmac_signature_verify(void **state)
{
    const char *secret = "whsec_abc";
    const char *body = "{\"event_type\":\"download\"}";
    unsigned char mac[LF_SHA256_LEN];
    char hex[2 * LF_SHA256_LEN + 1], header[80];
    lf_hmac_sha256(secret, strlen(secret), body, strlen(body), mac);
    lf_hex_encode(mac, sizeof mac, hex);
    snprintf(header, sizeof header, "sha256=%s", hex);
    assert_int_equal(lf_signature_verify(secret, body, strlen(body), header), 0);
    /* upper-case hex is accepted too */
    for (char *p = header + 7; *p; p++)
        if (*p >= 'a' && *p <= 'f') *p = (char)(*p - 32);
    assert_int_equal(lf_signature_verify(secret, body, strlen(body), header), 0);
    assert_int_equal(lf_signature_verify("whsec_other", body, strlen(body), header), -LF_EAUTH);
    assert_int_equal(lf_signature_verify(secret, "{}", 2, header), -LF_EAUTH);
    assert_int_equal(lf_signature_verify(secret, body, strlen(body), hex), -LF_EAUTH);
    assert_int_equal(lf_signature_verify(secret, body, strlen(body), "sha256=abcd"), -LF_EAUTH);
    assert_int_equal(lf_signature_verify(secret, body, strlen(body), NULL), -LF_EAUTH);
    (void)state;
}

static void hmac_rfc4231_case2(void **state)
{
    unsigned char mac[LF_SHA256_LEN];
    char hex[65];
    const char *data = "what do ya want for nothing?";
    lf_hmac_sha256("Jefe", 4, data, strlen(data), mac);
    lf_hex_encode(mac, sizeof mac, hex);
    assert_string_equal(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    (void)state;
}

/* The vector from the Standard Webhooks specification. */
static void stdwebhooks_spec_vector(void **state)
{
    const char *secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const char *id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const char *body = "{\"test\": 2432232314}";
    char sig[LF_SIG_BUFSZ];
    assert_int_equal(
        lf_stdwebhook_sign(secret, id, 1614265330, body, strlen(body), sig, sizeof sig), 0);
    assert_string_equal(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    assert_int_equal(lf_stdwebhook_verify(secret, id, 1614265330, body, strlen(body), sig), 0);
    /* any of several space-separated signatures may match */
    assert_int_equal(
        lf_stdwebhook_verify(secret, id, 1614265330, body, strlen(body),
                             "v1,bm90IGl0 v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="),
        0);
    assert_int_equal(lf_stdwebhook_verify(secret, id, 1614265331, body, strlen(body), sig),
                     -LF_EAUTH);
    assert_int_equal(lf_stdwebhook_verify(secret, "msg_other", 1614265330, body, strlen(body), sig),
                     -LF_EAUTH);
    assert_int_equal(lf_stdwebhook_verify(secret, id, 1614265330, "{}", 2, sig), -LF_EAUTH);
    assert_int_equal(lf_stdwebhook_verify(secret, id, 1614265330, body, strlen(body), "v2,abc"),
                     -LF_EAUTH);
    (void)state;
}

static void stdwebhooks_second_vector(void **state)
{
    const char *secret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const char *body = "{\"email\":\"test@example.com\",\"username\":\"test_user\"}";
    char sig[LF_SIG_BUFSZ];
    assert_int_equal(lf_stdwebhook_sign(secret, "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk", 1649367553, body,
                                        strlen(body), sig, sizeof sig),
                     0);
    assert_string_equal(sig, "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=");
    (void)state;
}

static void base64_roundtrip(void **state)
{
    unsigned char in[40], out[64];
    char enc[80];
    for (size_t n = 0; n <= sizeof in; n++) {
        for (size_t i = 0; i < n; i++) in[i] = (unsigned char)(i * 37 + n);
        lf_base64_encode(in, n, enc);
        assert_int_equal(lf_base64_decode(enc, strlen(enc), out, sizeof out), (int)n);
        assert_memory_equal(in, out, n);
    }
    assert_int_equal(lf_base64_decode("abc", 3, out, sizeof out), -LF_EINVAL);
    assert_int_equal(lf_base64_decode("a$c=", 4, out, sizeof out), -LF_EINVAL);
    (void)state;
}

static void secret_shape(void **state)
{
    char a[LF_SECRET_BUFSZ], b[LF_SECRET_BUFSZ];
    unsigned char raw[64];
    lf_secret_new(a, sizeof a);
    lf_secret_new(b, sizeof b);
    assert_memory_equal(a, "whsec_", 6);
    assert_int_equal(lf_base64_decode(a + 6, strlen(a + 6), raw, sizeof raw), 32);
    assert_string_not_equal(a, b);
    (void)state;
}

static void consttime(void **state)
{
    assert_true(lf_consttime_eq("abc", 3, "abc", 3));
    assert_false(lf_consttime_eq("abc", 3, "abd", 3));
    assert_false(lf_consttime_eq("abc", 3, "abcd", 4));
    (void)state;
}

static void bucket_burst_then_refill(void **state)
{
    struct lf_bucket b = {0};
    int64_t retry = 0, t = 1000000;
    for (int i = 0; i < 10; i++) assert_int_equal(lf_bucket_take(&b, 10, 10, 1, t, &retry), 0);
    assert_int_equal(lf_bucket_take(&b, 10, 10, 1, t, &retry), -LF_ERATE);
    assert_true(retry > 0 && retry <= 101);
    t += 100000; /* 0.1 s refills one token */
    assert_int_equal(lf_bucket_take(&b, 10, 10, 1, t, &retry), 0);
    assert_int_equal(lf_bucket_take(&b, 10, 10, 1, t, &retry), -LF_ERATE);
    t += 10000000; /* long idle: capped at the burst */
    for (int i = 0; i < 10; i++) assert_int_equal(lf_bucket_take(&b, 10, 10, 1, t, &retry), 0);
    assert_int_equal(lf_bucket_take(&b, 10, 10, 1, t, &retry), -LF_ERATE);
    (void)state;
}

static void bucket_takes_many(void **state)
{
    struct lf_bucket b = {0};
    int64_t retry = 0;
    assert_int_equal(lf_bucket_take(&b, 100, 100, 60, 1, &retry), 0);
    assert_int_equal(lf_bucket_take(&b, 100, 100, 60, 1, &retry), -LF_ERATE);
    assert_true(retry >= 200 && retry <= 201); /* 20 missing at 100/s */
    (void)state;
}

static void errors_have_messages(void **state)
{
    for (int c = 1; c < LF_ERR_LAST_; c++) {
        assert_non_null(lf_strerror(-c));
        assert_string_not_equal(lf_strerror(-c), "unknown error");
    }
    assert_string_equal(lf_strerror(-LF_ENOTFOUND), "not found");
    assert_string_equal(lf_strerror(9999), "unknown error");
    struct lf_err err = {0};
    assert_int_equal(lf_err_field(&err, "event_type", "is required"), -LF_EINVAL);
    lf_err_field(&err, "lead", "must be an object");
    assert_int_equal(err.code, -LF_EINVAL);
    assert_int_equal(json_array_size(err.fields), 2);
    assert_string_equal(err.msg, "event_type: is required");
    lf_err_clear(&err);
    assert_null(err.fields);
    (void)state;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(uuid7_shape_and_version),
        cmocka_unit_test(uuid7_strictly_increasing),
        cmocka_unit_test(uuid7_embeds_time),
        cmocka_unit_test(time_parse_forms),
        cmocka_unit_test(time_parse_rejects),
        cmocka_unit_test(time_format_roundtrip),
        cmocka_unit_test(hmac_signature_verify),
        cmocka_unit_test(hmac_rfc4231_case2),
        cmocka_unit_test(stdwebhooks_spec_vector),
        cmocka_unit_test(stdwebhooks_second_vector),
        cmocka_unit_test(base64_roundtrip),
        cmocka_unit_test(secret_shape),
        cmocka_unit_test(consttime),
        cmocka_unit_test(bucket_burst_then_refill),
        cmocka_unit_test(bucket_takes_many),
        cmocka_unit_test(errors_have_messages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
