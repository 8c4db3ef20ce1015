/* Unit tests for src/outbound: the retry schedule and its jitter bounds, Retry-After, and
 * subscription pattern matching. (The Standard Webhooks vectors are in test_core.c; Slack's
 * signature in test_slack.c.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "outbound/outbound.h"

static const int64_t base_ms[] = {5000, 300000, 1800000, 7200000, 18000000, 36000000, 36000000};

static void schedule_within_jitter(void **state)
{
    for (int attempts = 1; attempts < LF_DELIVERY_MAX_ATTEMPTS; attempts++) {
        int64_t base = base_ms[attempts - 1];
        assert_int_equal(lf_delivery_delay_ms(attempts, 0.5), base);
        int64_t lo = lf_delivery_delay_ms(attempts, 0.0),
                hi = lf_delivery_delay_ms(attempts, 0.9999);
        assert_int_equal(lo, base - base / 5);
        assert_true(hi < base + base / 5 && hi > base + base / 5 - base / 1000);
        for (int k = 0; k < 100; k++) {
            int64_t d = lf_delivery_delay_ms(attempts, k / 100.0);
            assert_true(d >= base * 8 / 10 && d <= base * 12 / 10);
        }
    }
    (void)state;
}

static void schedule_ends_dead(void **state)
{
    assert_int_equal(LF_DELIVERY_MAX_ATTEMPTS, 8);
    assert_int_equal(lf_delivery_delay_ms(8, 0.5), -1);
    assert_int_equal(lf_delivery_delay_ms(9, 0.5), -1);
    (void)state;
}

static void retry_after_bounds(void **state)
{
    int64_t now = 1764000000000LL;
    assert_int_equal(lf_retry_after_ms("120", now), 120000);
    assert_int_equal(lf_retry_after_ms("0", now), 1000);          /* at least a second */
    assert_int_equal(lf_retry_after_ms("999999", now), 36000000); /* at most 10 h */
    assert_int_equal(lf_retry_after_ms(NULL, now), -1);
    assert_int_equal(lf_retry_after_ms("", now), -1);
    assert_int_equal(lf_retry_after_ms("soon", now), -1);
    /* an HTTP date 90 s after now */
    assert_int_equal(lf_retry_after_ms("Mon, 24 Nov 2025 16:01:30 GMT", 1764000000000LL), 90000);
    (void)state;
}

static void patterns(void **state)
{
    assert_true(lf_event_pattern_match("*", "lead.scored"));
    assert_true(lf_event_pattern_match("lead.*", "lead.scored"));
    assert_true(lf_event_pattern_match("lead.*", "lead.routing.x"));
    assert_false(lf_event_pattern_match("lead.*", "lead"));
    assert_false(lf_event_pattern_match("lead.*", "leads.scored"));
    assert_false(lf_event_pattern_match("lead.*", "deal.created"));
    assert_true(lf_event_pattern_match("deal.won", "deal.won"));
    assert_false(lf_event_pattern_match("deal.won", "deal.lost"));
    assert_true(lf_event_pattern_match("job.created", "job.created"));
    (void)state;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(schedule_within_jitter),
        cmocka_unit_test(schedule_ends_dead),
        cmocka_unit_test(retry_after_bounds),
        cmocka_unit_test(patterns),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
