/* Unit tests for cron expressions: parsing, rejection, and the next and previous match. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "sched/cron.h"
#include "core/err.h"
#include "core/timeutil.h"

#include <string.h>

#define BIT(n) (UINT64_C(1) << (n))

/* Epoch ms of an RFC 3339 time; fails the test on a typo. */
static int64_t ms(const char *s)
{
    int64_t v = 0;
    assert_int_equal(lf_time_parse(s, &v), 0);
    return v;
}

static struct lf_cron parse_ok(const char *expr)
{
    struct lf_cron c;
    struct lf_err err = {0};
    memset(&c, 0, sizeof c);
    int rc = lf_cron_parse(expr, &c, &err);
    if (rc != 0) print_error("'%s': %s\n", expr, err.msg);
    assert_int_equal(rc, 0);
    assert_int_equal(err.code, 0);
    return c;
}

/* The bits lo..hi stepping by step. */
static uint64_t span(int lo, int hi, int step)
{
    uint64_t m = 0;
    for (int v = lo; v <= hi; v += step) m |= BIT(v);
    return m;
}

/* Asserts that next(expr, from) is want (NULL for -1). */
static void expect_next(const char *expr, const char *from, const char *want)
{
    struct lf_cron c = parse_ok(expr);
    int64_t got = lf_cron_next(&c, ms(from));
    int64_t exp = want != NULL ? ms(want) : -1;
    if (got != exp) {
        char buf[LF_TIME_BUFSZ];
        print_error("next('%s', %s) = %s\n", expr, from,
                    got < 0 ? "-1" : lf_time_format(got, buf, sizeof buf));
    }
    assert_int_equal(got, exp);
}

static void expect_prev(const char *expr, const char *at, const char *want)
{
    struct lf_cron c = parse_ok(expr);
    int64_t got = lf_cron_prev(&c, ms(at));
    int64_t exp = want != NULL ? ms(want) : -1;
    if (got != exp) {
        char buf[LF_TIME_BUFSZ];
        print_error("prev('%s', %s) = %s\n", expr, at,
                    got < 0 ? "-1" : lf_time_format(got, buf, sizeof buf));
    }
    assert_int_equal(got, exp);
}

static void plain_fields(void **state)
{
    struct lf_cron c = parse_ok("* * * * *");
    assert_true(c.minutes == span(0, 59, 1));
    assert_int_equal(c.hours, span(0, 23, 1));
    assert_int_equal(c.days, span(1, 31, 1));
    assert_int_equal(c.months, span(1, 12, 1));
    assert_int_equal(c.weekdays, span(0, 6, 1));
    assert_true(c.days_star);
    assert_true(c.weekdays_star);

    c = parse_ok("5 4 3 2 1");
    assert_true(c.minutes == BIT(5));
    assert_int_equal(c.hours, BIT(4));
    assert_int_equal(c.days, BIT(3));
    assert_int_equal(c.months, BIT(2));
    assert_int_equal(c.weekdays, BIT(1));
    assert_false(c.days_star);
    assert_false(c.weekdays_star);

    c = parse_ok("59 23 31 12 6"); /* every maximum */
    assert_true(c.minutes == BIT(59));
    assert_int_equal(c.hours, BIT(23));
    assert_int_equal(c.days, BIT(31));
    assert_int_equal(c.months, BIT(12));
    assert_int_equal(c.weekdays, BIT(6));

    c = parse_ok("00 07 09 01 00"); /* leading zeros */
    assert_true(c.minutes == BIT(0));
    assert_int_equal(c.hours, BIT(7));
    assert_int_equal(c.days, BIT(9));
    (void)state;
}

static void ranges_steps_lists(void **state)
{
    struct lf_cron c = parse_ok("10-20 9-17 1-7 3-5 1-5");
    assert_true(c.minutes == span(10, 20, 1));
    assert_int_equal(c.hours, span(9, 17, 1));
    assert_int_equal(c.days, span(1, 7, 1));
    assert_int_equal(c.months, span(3, 5, 1));
    assert_int_equal(c.weekdays, span(1, 5, 1));

    c = parse_ok("*/7 */6 */10 */3 */2");
    assert_true(c.minutes == span(0, 56, 7)); /* 0, 7, ..., 56 */
    assert_int_equal(c.hours, BIT(0) | BIT(6) | BIT(12) | BIT(18));
    assert_int_equal(c.days, BIT(1) | BIT(11) | BIT(21) | BIT(31));
    assert_int_equal(c.months, BIT(1) | BIT(4) | BIT(7) | BIT(10));
    assert_int_equal(c.weekdays, BIT(0) | BIT(2) | BIT(4) | BIT(6));
    assert_true(c.days_star); /* a step over `*` still counts as `*` */
    assert_true(c.weekdays_star);

    c = parse_ok("5-59/20 0-23/12 2-31/15 1-12/11 1-5/2");
    assert_true(c.minutes == (BIT(5) | BIT(25) | BIT(45)));
    assert_int_equal(c.hours, BIT(0) | BIT(12));
    assert_int_equal(c.days, BIT(2) | BIT(17));
    assert_int_equal(c.months, BIT(1) | BIT(12));
    assert_int_equal(c.weekdays, BIT(1) | BIT(3) | BIT(5));

    c = parse_ok("30/10 20/2 25/3 11/1 1/2"); /* `a/n` runs to the field's maximum */
    assert_true(c.minutes == (BIT(30) | BIT(40) | BIT(50)));
    assert_int_equal(c.hours, BIT(20) | BIT(22));
    assert_int_equal(c.days, BIT(25) | BIT(28) | BIT(31));
    assert_int_equal(c.months, BIT(11) | BIT(12));
    assert_int_equal(c.weekdays, BIT(1) | BIT(3) | BIT(5)); /* not Sunday through 7 */

    c = parse_ok("1,2,3-5/2 0,12 1,15,31 6,12 0,3");
    assert_true(c.minutes == (BIT(1) | BIT(2) | BIT(3) | BIT(5)));
    assert_int_equal(c.hours, BIT(0) | BIT(12));
    assert_int_equal(c.days, BIT(1) | BIT(15) | BIT(31));
    assert_int_equal(c.months, BIT(6) | BIT(12));
    assert_int_equal(c.weekdays, BIT(0) | BIT(3));

    c = parse_ok("0,0,0 1-3,2-4 * * *"); /* overlaps are harmless */
    assert_true(c.minutes == BIT(0));
    assert_int_equal(c.hours, span(1, 4, 1));

    c = parse_ok("*/59 */23 */30 */11 */6"); /* the largest steps */
    assert_true(c.minutes == (BIT(0) | BIT(59)));
    assert_int_equal(c.hours, BIT(0) | BIT(23));
    assert_int_equal(c.days, BIT(1) | BIT(31));
    assert_int_equal(c.months, BIT(1) | BIT(12));
    assert_int_equal(c.weekdays, BIT(0) | BIT(6));

    c = parse_ok("0 0 *,15 * 1"); /* begins with `*`, so day-of-month counts as star */
    assert_true(c.days_star);
    assert_false(c.weekdays_star);
    (void)state;
}

static void names_and_sunday(void **state)
{
    struct lf_cron c = parse_ok("0 0 * JAN-MAR,jun,Dec MON-FRI");
    assert_int_equal(c.months, BIT(1) | BIT(2) | BIT(3) | BIT(6) | BIT(12));
    assert_int_equal(c.weekdays, span(1, 5, 1));

    c = parse_ok("0 0 * * sun,Sat");
    assert_int_equal(c.weekdays, BIT(0) | BIT(6));
    c = parse_ok("0 0 * * 7");
    assert_int_equal(c.weekdays, BIT(0));
    c = parse_ok("0 0 * * 5-7"); /* Friday to Sunday */
    assert_int_equal(c.weekdays, BIT(5) | BIT(6) | BIT(0));
    c = parse_ok("0 0 * * 0-7");
    assert_int_equal(c.weekdays, span(0, 6, 1));
    c = parse_ok("0 0 * * FRI-7");
    assert_int_equal(c.weekdays, BIT(5) | BIT(6) | BIT(0));
    c = parse_ok("0 0 * * 7/3"); /* `a/n` from 7 is just Sunday */
    assert_int_equal(c.weekdays, BIT(0));
    c = parse_ok("0 0 * FEB/3 MON-FRI/2");
    assert_int_equal(c.months, BIT(2) | BIT(5) | BIT(8) | BIT(11));
    assert_int_equal(c.weekdays, BIT(1) | BIT(3) | BIT(5));
    c = parse_ok("0 0 * * SUN-SAT");
    assert_int_equal(c.weekdays, span(0, 6, 1));
    (void)state;
}

static void whitespace(void **state)
{
    struct lf_cron a = parse_ok("0 8 * * 1-5");
    struct lf_cron b = parse_ok("  0\t8 \t *    *\t1-5 \t ");
    assert_memory_equal(&a, &b, sizeof a);
    (void)state;
}

static void rejections(void **state)
{
    static const struct {
        const char *expr, *needle;
    } cases[] = {
        {"", "expected 5 fields, got 0"},
        {"   \t ", "expected 5 fields, got 0"},
        {"* * * *", "expected 5 fields, got 4"},
        {"* * * * * *", "expected 5 fields, got 6"},
        {"@daily", "expected 5 fields, got 1"},
        {"0 0 L", "expected 5 fields, got 3"},
        {"0 0 L * *", "day-of-month: unexpected 'L' in 'L'"},
        {"60 * * * *", "minute: 60 is out of range 0-59"},
        {"* 24 * * *", "hour: 24 is out of range 0-23"},
        {"* * 0 * *", "day-of-month: 0 is out of range 1-31"},
        {"* * 32 * *", "day-of-month: 32 is out of range 1-31"},
        {"* * * 0 *", "month: 0 is out of range 1-12"},
        {"* * * 13 *", "month: 13 is out of range 1-12"},
        {"* * * * 8", "day-of-week: 8 is out of range 0-7"},
        {"0-60 * * * *", "minute: 60 is out of range 0-59"},
        {"* 20-10 * * *", "hour: range 20-10 is reversed"},
        {"* * * DEC-JAN *", "month: range 12-1 is reversed"},
        {"* * * * SAT-SUN", "day-of-week: range 6-0 is reversed"},
        {"*/0 * * * *", "minute: step 0 is not allowed"},
        {"* 1-5/0 * * *", "hour: step 0 is not allowed"},
        {"*/60 * * * *", "minute: step 60 is larger than the field span 0-59"},
        {"* */24 * * *", "hour: step 24 is larger than the field span 0-23"},
        {"* * */31 * *", "day-of-month: step 31 is larger than the field span 1-31"},
        {"* * * */12 *", "month: step 12 is larger than the field span 1-12"},
        {"* * * * */7", "day-of-week: step 7 is larger than the field span 0-6"},
        {"1,,2 * * * *", "minute: empty list item"},
        {",1 * * * *", "minute: empty list item"},
        {"* 1, * * *", "hour: empty list item"},
        {"* * , * *", "day-of-month: empty list item"},
        {"5x * * * *", "minute: unexpected 'x' in '5x'"},
        {"1-2-3 * * * *", "minute: unexpected '-' in '1-2-3'"},
        {"*/5/2 * * * *", "minute: unexpected '/' in '*/5/2'"},
        {"** * * * *", "minute: unexpected '*' in '**'"},
        {"*5 * * * *", "minute: unexpected '5' in '*5'"},
        {"*-5 * * * *", "minute: unexpected '-' in '*-5'"},
        {"5- * * * *", "minute: missing number at the end of '5-'"},
        {"5/ * * * *", "minute: missing number at the end of '5/'"},
        {"-5 * * * *", "minute: unexpected '-' in '-5'"},
        {"+5 * * * *", "minute: unexpected '+' in '+5'"},
        {"*/MON * * * *", "minute: unexpected 'M' in '*/MON'"},
        {"0 0 ? * *", "day-of-month: unexpected '?' in '?'"},
        {"0 0 15W * *", "day-of-month: unexpected 'W' in '15W'"},
        {"0 0 * * 5#3", "day-of-week: unexpected '#' in '5#3'"},
        {"0 0 * * 5L", "day-of-week: unexpected 'L' in '5L'"},
        {"0 JAN * * *", "hour: unexpected 'J' in 'JAN'"},
        {"0 0 * MON *", "month: unknown name 'MON'"},
        {"0 0 * * JAN", "day-of-week: unknown name 'JAN'"},
        {"0 0 * * MONDAY", "day-of-week: unknown name 'MONDAY'"},
        {"0 0 * JANUARY *", "month: unknown name 'JANUARY'"},
        {"0 0 * JA *", "month: unknown name 'JA'"},
        {"0005 * * * *", "minute: number '0005' has too many digits"},
        {"99999999999999999999 * * * *", "minute: number '99999999999999999999' has too many"},
        {"*/1000 * * * *", "minute: number '1000' has too many digits"},
        {"0 0 1\n * *", "day-of-month: unexpected"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct lf_cron c;
        memset(&c, 0xab, sizeof c);
        struct lf_err err = {0};
        int rc = lf_cron_parse(cases[i].expr, &c, &err);
        if (rc != -LF_EINVAL || strstr(err.msg, cases[i].needle) == NULL)
            print_error("'%s': rc %d, message '%s'\n", cases[i].expr, rc, err.msg);
        assert_int_equal(rc, -LF_EINVAL);
        assert_int_equal(err.code, -LF_EINVAL);
        assert_non_null(strstr(err.msg, cases[i].needle));
        for (size_t k = 0; k < sizeof c; k++) /* the output is untouched on failure */
            assert_int_equal(((unsigned char *)&c)[k], 0xab);
        assert_int_equal(lf_cron_parse(cases[i].expr, &c, NULL), -LF_EINVAL); /* err optional */
    }
    struct lf_err err = {0};
    struct lf_cron c;
    assert_int_equal(lf_cron_parse(NULL, &c, &err), -LF_EINVAL);
    (void)state;
}

static void daily_at_two(void **state)
{
    const char *e = "0 2 * * *";
    expect_next(e, "2025-03-01T01:59:59Z", "2025-03-01T02:00:00Z");
    expect_next(e, "2025-03-01T02:00:00Z", "2025-03-02T02:00:00Z"); /* at a slot: the next one */
    expect_next(e, "2025-03-01T02:00:00.001Z", "2025-03-02T02:00:00Z");
    expect_next(e, "2025-02-28T03:00:00Z", "2025-03-01T02:00:00Z");
    expect_prev(e, "2025-03-01T02:00:00Z", "2025-03-01T02:00:00Z"); /* at a slot: that slot */
    expect_prev(e, "2025-03-01T02:00:59.999Z", "2025-03-01T02:00:00Z");
    expect_prev(e, "2025-03-01T01:59:59.999Z", "2025-02-28T02:00:00Z");
    expect_prev(e, "2025-03-01T23:59:00Z", "2025-03-01T02:00:00Z");
    (void)state;
}

static void every_quarter_hour(void **state)
{
    const char *e = "*/15 * * * *";
    expect_next(e, "2025-03-01T10:07:30Z", "2025-03-01T10:15:00Z");
    expect_next(e, "2025-03-01T10:15:00Z", "2025-03-01T10:30:00Z");
    expect_next(e, "2025-03-01T10:45:00Z", "2025-03-01T11:00:00Z");
    expect_next(e, "2025-03-01T23:50:00Z", "2025-03-02T00:00:00Z");
    expect_prev(e, "2025-03-01T10:14:59.999Z", "2025-03-01T10:00:00Z");
    expect_prev(e, "2025-03-01T10:15:00Z", "2025-03-01T10:15:00Z");
    expect_prev(e, "2025-03-01T00:05:00Z", "2025-03-01T00:00:00Z");
    expect_prev(e, "2025-03-01T00:00:00Z", "2025-03-01T00:00:00Z");
    expect_prev(e, "2025-02-28T23:59:59Z", "2025-02-28T23:45:00Z");
    (void)state;
}

static void weekdays_skip_the_weekend(void **state)
{
    const char *e = "0 8 * * 1-5";
    expect_next(e, "2025-03-07T09:00:00Z", "2025-03-10T08:00:00Z"); /* Friday to Monday */
    expect_next(e, "2025-03-07T07:59:00Z", "2025-03-07T08:00:00Z");
    expect_next(e, "2025-03-08T12:00:00Z", "2025-03-10T08:00:00Z"); /* from Saturday */
    expect_prev(e, "2025-03-10T07:59:00Z", "2025-03-07T08:00:00Z"); /* Monday back to Friday */
    expect_prev(e, "2025-03-09T23:00:00Z", "2025-03-07T08:00:00Z");
    expect_next("0 8 * * MON-FRI", "2025-03-07T09:00:00Z", "2025-03-10T08:00:00Z");
    expect_next("0 9 * * 0,7", "2025-03-07T09:00:00Z", "2025-03-09T09:00:00Z"); /* Sunday */
    expect_next("0 9 * * 5-7", "2025-03-07T09:00:00Z", "2025-03-08T09:00:00Z");
    expect_next("0 9 * * 5-7", "2025-03-09T09:00:00Z", "2025-03-14T09:00:00Z");
    (void)state;
}

static void month_ends(void **state)
{
    const char *e = "0 0 31 * *";
    expect_next(e, "2025-01-31T00:00:00Z", "2025-03-31T00:00:00Z"); /* skips February */
    expect_next(e, "2025-03-31T00:00:00Z", "2025-05-31T00:00:00Z"); /* skips April */
    expect_next(e, "2025-07-31T00:00:00Z", "2025-08-31T00:00:00Z");
    expect_next(e, "2025-08-31T00:00:00Z", "2025-10-31T00:00:00Z");
    expect_prev(e, "2025-05-30T12:00:00Z", "2025-03-31T00:00:00Z");
    expect_prev(e, "2025-03-30T12:00:00Z", "2025-01-31T00:00:00Z");
    expect_next("0 0 30 * *", "2025-01-30T00:00:00Z", "2025-03-30T00:00:00Z");
    expect_next("0 12 1 * *", "2025-01-31T13:00:00Z", "2025-02-01T12:00:00Z");
    expect_prev("0 12 28-31 * *", "2025-03-01T00:00:00Z", "2025-02-28T12:00:00Z");
    (void)state;
}

static void leap_years(void **state)
{
    const char *e = "0 0 29 2 *";
    expect_next(e, "2025-03-01T00:00:00Z", "2028-02-29T00:00:00Z");
    expect_next(e, "2024-02-29T00:00:00Z", "2028-02-29T00:00:00Z");
    expect_next(e, "2024-02-28T23:59:00Z", "2024-02-29T00:00:00Z");
    expect_prev(e, "2027-06-01T00:00:00Z", "2024-02-29T00:00:00Z");
    expect_prev(e, "2024-02-29T00:00:00Z", "2024-02-29T00:00:00Z");
    expect_prev(e, "2024-02-28T23:59:00Z", "2020-02-29T00:00:00Z");
    /* 2100 is no leap year: the longest gap there is, and still inside 8 years */
    expect_next(e, "2096-02-29T00:00:00Z", "2104-02-29T00:00:00Z");
    expect_prev(e, "2104-02-28T00:00:00Z", "2096-02-29T00:00:00Z");
    expect_next("0 0 28 2 *", "2025-02-28T00:00:00Z", "2026-02-28T00:00:00Z");
    expect_next("0 0 1 3 *", "2024-02-29T12:00:00Z", "2024-03-01T00:00:00Z");
    (void)state;
}

static void impossible(void **state)
{
    expect_next("0 0 30 2 *", "2025-03-01T00:00:00Z", NULL);
    expect_prev("0 0 30 2 *", "2025-03-01T00:00:00Z", NULL);
    expect_next("0 0 31 4,6,9,11 *", "2025-01-01T00:00:00Z", NULL);
    expect_prev("0 0 31 APR,JUN,SEP,NOV *", "2025-01-01T00:00:00Z", NULL);
    expect_next("0 0 31 2 *", "2025-01-01T00:00:00Z", NULL);
    /* Restricting day-of-week too makes it possible: "30 Feb or any Monday in Feb" */
    expect_next("0 0 30 2 1", "2025-03-01T00:00:00Z", "2026-02-02T00:00:00Z");
    /* With day-of-month starred they are ANDed: "*\/30" is the 1st (or 31st), so this is a
     * 1 February that falls on a Monday. */
    expect_next("0 0 */30 2 1", "2025-03-01T00:00:00Z", "2027-02-01T00:00:00Z");
    (void)state;
}

static void steps_and_lists(void **state)
{
    expect_next("5-59/20 * * * *", "2025-03-01T10:05:00Z", "2025-03-01T10:25:00Z");
    expect_next("5-59/20 * * * *", "2025-03-01T10:45:00Z", "2025-03-01T11:05:00Z");
    expect_prev("5-59/20 * * * *", "2025-03-01T10:04:59Z", "2025-03-01T09:45:00Z");
    expect_next("1,2,3-5/2 * * * *", "2025-03-01T10:02:00Z", "2025-03-01T10:03:00Z");
    expect_next("1,2,3-5/2 * * * *", "2025-03-01T10:03:00Z", "2025-03-01T10:05:00Z");
    expect_next("1,2,3-5/2 * * * *", "2025-03-01T10:05:00Z", "2025-03-01T11:01:00Z");
    expect_prev("1,2,3-5/2 * * * *", "2025-03-01T10:04:00Z", "2025-03-01T10:03:00Z");
    expect_next("*/7 * * * *", "2025-03-01T10:56:00Z", "2025-03-01T11:00:00Z");
    expect_prev("*/7 * * * *", "2025-03-01T10:59:00Z", "2025-03-01T10:56:00Z");
    expect_next("30 9-17/4 * * *", "2025-03-01T17:30:00Z", "2025-03-02T09:30:00Z");
    expect_next("0 0 1 */3 *", "2025-02-15T00:00:00Z", "2025-04-01T00:00:00Z");
    expect_prev("0 0 1 */3 *", "2025-02-15T00:00:00Z", "2025-01-01T00:00:00Z");
    (void)state;
}

static void day_of_month_or_day_of_week(void **state)
{
    /* Both restricted: every 13th and every Friday. 13 March 2025 is a Thursday. */
    const char *e = "0 0 13 * 5";
    expect_next(e, "2025-03-07T00:00:00Z", "2025-03-13T00:00:00Z");
    expect_next(e, "2025-03-13T00:00:00Z", "2025-03-14T00:00:00Z");
    expect_next(e, "2025-03-14T00:00:00Z", "2025-03-21T00:00:00Z");
    expect_prev(e, "2025-03-13T23:00:00Z", "2025-03-13T00:00:00Z");
    expect_prev(e, "2025-03-12T23:00:00Z", "2025-03-07T00:00:00Z");
    /* One starred: both must match, and the starred one always does. */
    expect_next("0 0 13 * *", "2025-03-07T00:00:00Z", "2025-03-13T00:00:00Z");
    expect_next("0 0 * * 5", "2025-03-07T00:00:00Z", "2025-03-14T00:00:00Z");
    expect_next("0 0 13 * 5-7", "2025-06-12T00:00:00Z", "2025-06-13T00:00:00Z");
    /* "*\/2" begins with `*`, so it is ANDed with Friday: odd days that are Fridays
     * (7 March yes, 14 March no, 21 March yes). */
    expect_next("0 0 */2 * 5", "2025-03-07T00:00:00Z", "2025-03-21T00:00:00Z");
    expect_next("0 0 1-31/2 * 5", "2025-03-07T00:00:00Z", "2025-03-09T00:00:00Z"); /* OR */
    (void)state;
}

static void year_rollover(void **state)
{
    expect_next("* * * * *", "2025-12-31T23:59:00Z", "2026-01-01T00:00:00Z");
    expect_next("0 0 1 1 *", "2025-12-31T23:59:00Z", "2026-01-01T00:00:00Z");
    expect_next("59 23 31 12 *", "2025-12-31T23:59:00Z", "2026-12-31T23:59:00Z");
    expect_prev("59 23 31 12 *", "2026-01-01T00:00:00Z", "2025-12-31T23:59:00Z");
    expect_prev("* * * * *", "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z");
    expect_prev("0 0 1 1 *", "2025-12-31T23:59:00Z", "2025-01-01T00:00:00Z");
    expect_next("0 0 * JAN MON", "2025-12-31T00:00:00Z", "2026-01-05T00:00:00Z");
    (void)state;
}

static void sub_minute_and_before_1970(void **state)
{
    struct lf_cron c = parse_ok("* * * * *");
    assert_int_equal(lf_cron_next(&c, ms("2025-03-01T10:00:30.500Z")), ms("2025-03-01T10:01:00Z"));
    assert_int_equal(lf_cron_prev(&c, ms("2025-03-01T10:00:30.500Z")), ms("2025-03-01T10:00:00Z"));
    assert_int_equal(lf_cron_next(&c, -1), 0);
    assert_int_equal(lf_cron_prev(&c, -1), -60000);
    assert_int_equal(lf_cron_next(&c, -60000), 0);
    assert_int_equal(lf_cron_prev(&c, -60000), -60000);
    c = parse_ok("0 0 * * 4"); /* 1 January 1970 was a Thursday */
    assert_int_equal(lf_cron_prev(&c, 0), 0);
    assert_int_equal(lf_cron_prev(&c, -1), -7 * 86400000LL);
    /* Absurd times give up rather than overflow. */
    assert_int_equal(lf_cron_next(&c, INT64_MAX), -1);
    assert_int_equal(lf_cron_prev(&c, INT64_MIN), -1);
    (void)state;
}

/* An independent matcher for the brute-force comparison below. */
static int matches(const struct lf_cron *c, int64_t minute)
{
    int64_t day = minute / 1440; /* only used for times after 1970 */
    int mod = (int)(minute % 1440);
    int64_t y;
    unsigned m, d;
    lf_civil_from_days(day, &y, &m, &d);
    int wday = (int)((day + 4) % 7);
    int dom = (c->days >> d) & 1, dow = (c->weekdays >> wday) & 1;
    int day_ok = (c->days_star || c->weekdays_star) ? dom && dow : dom || dow;
    return ((c->minutes >> (mod % 60)) & 1) && ((c->hours >> (mod / 60)) & 1) &&
           ((c->months >> m) & 1) && day_ok;
}

static void agrees_with_brute_force(void **state)
{
    static const char *const exprs[] = {
        "* * * * *",           "*/15 * * * *",         "0 8 * * 1-5",
        "0 0 13 * 5",          "0 0 */2 * 5",          "5-59/20 1,2,3-5/2 * * 0,6",
        "7 */5 1-10 * MON",    "0 12 * JAN-MAR SAT-7", "0 0 31 * *",
        "*/7 22-23 28-31 * *", "0 0 1,15 * 3",
    };
    const int64_t window = 40 * 1440; /* minutes searched by brute force */
    uint64_t rng = 88172645463325252ULL;
    int64_t base = ms("2024-01-01T00:00:00Z");
    for (size_t e = 0; e < sizeof exprs / sizeof exprs[0]; e++) {
        struct lf_cron c;
        assert_int_equal(lf_cron_parse(exprs[e], &c, NULL), 0);
        for (int i = 0; i < 8; i++) {
            rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
            int64_t from = base + (int64_t)(rng % (3ULL * 365 * 86400000));
            int64_t t0 = from / 60000, want = -1;
            for (int64_t t = t0 + 1; t <= t0 + window; t++)
                if (matches(&c, t)) {
                    want = t * 60000;
                    break;
                }
            int64_t got = lf_cron_next(&c, from);
            if (want >= 0)
                assert_int_equal(got, want);
            else
                assert_true(got == -1 || got > (t0 + window) * 60000);
            want = -1;
            for (int64_t t = t0; t >= t0 - window; t--)
                if (matches(&c, t)) {
                    want = t * 60000;
                    break;
                }
            got = lf_cron_prev(&c, from);
            if (want >= 0)
                assert_int_equal(got, want);
            else
                assert_true(got == -1 || got < (t0 - window) * 60000);
        }
    }
    (void)state;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(plain_fields),
        cmocka_unit_test(ranges_steps_lists),
        cmocka_unit_test(names_and_sunday),
        cmocka_unit_test(whitespace),
        cmocka_unit_test(rejections),
        cmocka_unit_test(daily_at_two),
        cmocka_unit_test(every_quarter_hour),
        cmocka_unit_test(weekdays_skip_the_weekend),
        cmocka_unit_test(month_ends),
        cmocka_unit_test(leap_years),
        cmocka_unit_test(impossible),
        cmocka_unit_test(steps_and_lists),
        cmocka_unit_test(day_of_month_or_day_of_week),
        cmocka_unit_test(year_rollover),
        cmocka_unit_test(sub_minute_and_before_1970),
        cmocka_unit_test(agrees_with_brute_force),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
