/* Five-field cron expressions: the parser, and the search for the next and previous match.
 *
 * DESIGN. Parsing turns each field into a bit set, so matching a minute is five bit tests.
 * The search walks days, not minutes: a month not in the set is skipped whole, a day that does
 * not match is skipped whole, and inside a matching day the first (or last) hour and minute
 * are found in the bit sets. That bounds the work at about 2,900 days for the 8-year horizon,
 * whatever the expression, so an impossible one ("0 0 30 2 *") fails as quickly as any. */
#include "sched/cron.h"
#include "core/timeutil.h"

#include <assert.h>
#include <stddef.h>
#include <string.h>

#define MS_PER_MIN  INT64_C(60000)
#define MS_PER_DAY  INT64_C(86400000)
#define MIN_PER_DAY INT64_C(1440)
#define HORIZON_Y   8                          /* years searched before giving up */
#define TIME_LIMIT  INT64_C(10000000000000000) /* |ms| accepted: about 317,000 years */
#define MAX_DIGITS  3                          /* longest number accepted in a field */
#define QUOTE_MAX   40                         /* longest piece of input quoted in a message */

struct field {
    const char *name;         /* as it appears in messages */
    int lo, hi;               /* the numbers accepted */
    int star_hi;              /* where `*` and `a/n` end: hi, but 6 for day-of-week */
    const char *const *names; /* three-letter names, or NULL */
    int names_base;           /* the value of names[0] */
    int seven_is_sunday;      /* 7 sets bit 0 (day-of-week) */
};

static const char *const month_names[] = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL",
                                          "AUG", "SEP", "OCT", "NOV", "DEC", NULL};
static const char *const weekday_names[] = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT", NULL};

/* Day-of-week accepts 7 for Sunday, but `*` and `a/n` stop at Saturday, so "1/2" is Monday,
 * Wednesday and Friday rather than picking up Sunday through 7. */
static const struct field fields[5] = {
    {"minute", 0, 59, 59, NULL, 0, 0},
    {"hour", 0, 23, 23, NULL, 0, 0},
    {"day-of-month", 1, 31, 31, NULL, 0, 0},
    {"month", 1, 12, 12, month_names, 1, 0},
    {"day-of-week", 0, 7, 6, weekday_names, 0, 1},
};

static int is_blank(char ch)
{
    return ch == ' ' || ch == '\t';
}

static int is_digit(char ch)
{
    return ch >= '0' && ch <= '9';
}

static int is_alpha(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

static char to_upper(char ch)
{
    return ch >= 'a' && ch <= 'z' ? (char)(ch - 'a' + 'A') : ch;
}

/* Reads a run of digits at *p (before end) into *out and advances *p. Returns 0, or
 * -LF_EINVAL when there is no digit or more than MAX_DIGITS of them. */
static int read_number(const struct field *f, const char **p, const char *end, int *out,
                       const char *tok, size_t toklen, struct lf_err *err)
{
    const char *s = *p;
    int v = 0, n = 0;
    while (s < end && is_digit(*s)) {
        if (++n > MAX_DIGITS) {
            while (s < end && is_digit(*s)) s++;
            return lf_err_set(err, -LF_EINVAL, "%s: number '%.*s' has too many digits", f->name,
                              (int)(s - *p > QUOTE_MAX ? QUOTE_MAX : s - *p), *p);
        }
        v = v * 10 + (*s++ - '0');
    }
    if (n == 0) {
        if (s == end)
            return lf_err_set(err, -LF_EINVAL, "%s: missing number at the end of '%.*s'", f->name,
                              (int)(toklen > QUOTE_MAX ? QUOTE_MAX : toklen), tok);
        return lf_err_set(err, -LF_EINVAL, "%s: unexpected '%c' in '%.*s'", f->name, *s,
                          (int)(toklen > QUOTE_MAX ? QUOTE_MAX : toklen), tok);
    }
    *p = s;
    *out = v;
    return 0;
}

/* Reads a value (a number in range, or a name where the field has names) at *p. */
static int read_value(const struct field *f, const char **p, const char *end, int *out,
                      const char *tok, size_t toklen, struct lf_err *err)
{
    const char *s = *p;
    if (s < end && is_alpha(*s) && f->names != NULL) {
        while (s < end && is_alpha(*s)) s++;
        size_t len = (size_t)(s - *p);
        for (int i = 0; len == 3 && f->names[i] != NULL; i++) {
            const char *name = f->names[i];
            if (to_upper((*p)[0]) == name[0] && to_upper((*p)[1]) == name[1] &&
                to_upper((*p)[2]) == name[2]) {
                *out = f->names_base + i;
                *p = s;
                return 0;
            }
        }
        return lf_err_set(err, -LF_EINVAL, "%s: unknown name '%.*s'", f->name,
                          (int)(len > QUOTE_MAX ? QUOTE_MAX : len), *p);
    }
    int v;
    int rc = read_number(f, p, end, &v, tok, toklen, err);
    if (rc < 0) return rc;
    if (v < f->lo || v > f->hi)
        return lf_err_set(err, -LF_EINVAL, "%s: %d is out of range %d-%d", f->name, v, f->lo,
                          f->hi);
    *out = v;
    return 0;
}

/* Parses one list item [s, end): `*`, `*\/n`, `a`, `a-b`, `a/n` or `a-b/n`, adding its values
 * to *bits. tok/toklen is the whole field, for messages. */
static int parse_item(const struct field *f, const char *s, const char *end, uint64_t *bits,
                      const char *tok, size_t toklen, struct lf_err *err)
{
    int a, b, step = 1, rc;
    int star = 0, range = 0;
    const char *p = s;
    if (p == end) return lf_err_set(err, -LF_EINVAL, "%s: empty list item", f->name);
    if (*p == '*') {
        star = 1;
        a = f->lo;
        b = f->star_hi;
        p++;
    } else {
        if ((rc = read_value(f, &p, end, &a, tok, toklen, err)) < 0) return rc;
        b = a;
        if (p < end && *p == '-') {
            p++;
            if ((rc = read_value(f, &p, end, &b, tok, toklen, err)) < 0) return rc;
            range = 1;
        }
    }
    if (p < end && *p == '/') {
        p++;
        if ((rc = read_number(f, &p, end, &step, tok, toklen, err)) < 0) return rc;
        if (step == 0) return lf_err_set(err, -LF_EINVAL, "%s: step 0 is not allowed", f->name);
        if (step > f->star_hi - f->lo)
            return lf_err_set(err, -LF_EINVAL, "%s: step %d is larger than the field span %d-%d",
                              f->name, step, f->lo, f->star_hi);
        if (!star && !range) b = a > f->star_hi ? a : f->star_hi; /* `a/n`: a to the maximum */
    }
    if (p < end)
        return lf_err_set(err, -LF_EINVAL, "%s: unexpected '%c' in '%.*s'", f->name, *p,
                          (int)(toklen > QUOTE_MAX ? QUOTE_MAX : toklen), tok);
    if (b < a) return lf_err_set(err, -LF_EINVAL, "%s: range %d-%d is reversed", f->name, a, b);
    for (int v = a; v <= b; v += step)
        *bits |= UINT64_C(1) << (v == 7 && f->seven_is_sunday ? 0 : v);
    return 0;
}

/* Parses one whitespace-free field [tok, tok + len) as a comma-separated list. */
static int parse_field(const struct field *f, const char *tok, size_t len, uint64_t *bits,
                       struct lf_err *err)
{
    const char *end = tok + len, *s = tok;
    *bits = 0;
    for (;;) {
        const char *comma = memchr(s, ',', (size_t)(end - s));
        const char *item_end = comma != NULL ? comma : end;
        int rc = parse_item(f, s, item_end, bits, tok, len, err);
        if (rc < 0) return rc;
        if (comma == NULL) return 0;
        s = comma + 1;
    }
}

int lf_cron_parse(const char *expr, struct lf_cron *out, struct lf_err *err)
{
    const char *tok[5];
    size_t len[5];
    int n = 0;
    if (expr == NULL) return lf_err_set(err, -LF_EINVAL, "expected 5 fields, got none");
    for (const char *p = expr; *p != '\0';) {
        if (is_blank(*p)) {
            p++;
            continue;
        }
        const char *start = p;
        while (*p != '\0' && !is_blank(*p)) p++;
        if (n < 5) {
            tok[n] = start;
            len[n] = (size_t)(p - start);
        }
        n++;
    }
    if (n != 5) return lf_err_set(err, -LF_EINVAL, "expected 5 fields, got %d", n);

    uint64_t bits[5];
    for (int i = 0; i < 5; i++) {
        int rc = parse_field(&fields[i], tok[i], len[i], &bits[i], err);
        if (rc < 0) return rc;
    }
    struct lf_cron c = {
        .minutes = bits[0],
        .hours = (uint32_t)bits[1],
        .days = (uint32_t)bits[2],
        .months = (uint16_t)bits[3],
        .weekdays = (uint8_t)bits[4],
        .days_star = tok[2][0] == '*',
        .weekdays_star = tok[4][0] == '*',
    };
    *out = c;
    return 0;
}

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* The lowest member of set in [from, top], or -1. */
static int next_bit(uint64_t set, int from, int top)
{
    for (int i = from; i <= top; i++)
        if (set >> i & 1) return i;
    return -1;
}

/* The highest member of set in [0, from], or -1. */
static int prev_bit(uint64_t set, int from)
{
    for (int i = from; i >= 0; i--)
        if (set >> i & 1) return i;
    return -1;
}

/* ms moved by `years` calendar years at the same time of day (29 February lands on 1 March). */
static int64_t shift_years(int64_t ms, int years)
{
    int64_t day = floor_div(ms, MS_PER_DAY), y;
    unsigned m, d;
    lf_civil_from_days(day, &y, &m, &d);
    return lf_days_from_civil(y + years, m, d) * MS_PER_DAY + (ms - day * MS_PER_DAY);
}

/* Whether day (days since the epoch, day-of-month mday) passes the two day fields: either of
 * them when both are restricted, both otherwise (Vixie cron). A field counts as unrestricted
 * when its text began with `*`, so "*\/2" in day-of-month is ANDed with day-of-week. */
static int day_matches(const struct lf_cron *c, int64_t day, unsigned mday)
{
    int wday = (int)(((day + 4) % 7 + 7) % 7); /* 1970-01-01 was a Thursday */
    int dom = (c->days >> mday) & 1, dow = (c->weekdays >> wday) & 1;
    if (!c->days_star && !c->weekdays_star) return dom || dow;
    return dom && dow;
}

int64_t lf_cron_next(const struct lf_cron *c, int64_t after)
{
    assert(c != NULL);
    if (after < -TIME_LIMIT || after > TIME_LIMIT) return -1;
    int64_t limit = shift_years(after, HORIZON_Y);
    int64_t last_day = floor_div(limit, MS_PER_DAY);
    int64_t t = floor_div(after, MS_PER_MIN) + 1; /* strictly after */
    int64_t day = floor_div(t, MIN_PER_DAY);
    int hour = (int)(t - day * MIN_PER_DAY) / 60, minute = (int)(t - day * MIN_PER_DAY) % 60;
    while (day <= last_day) {
        int64_t y;
        unsigned m, d;
        lf_civil_from_days(day, &y, &m, &d);
        if (!((c->months >> m) & 1)) { /* on to the first of the next month */
            day = m == 12 ? lf_days_from_civil(y + 1, 1, 1) : lf_days_from_civil(y, m + 1, 1);
            hour = minute = 0;
            continue;
        }
        if (day_matches(c, day, d)) {
            for (int h = next_bit(c->hours, hour, 23); h >= 0; h = next_bit(c->hours, h + 1, 23)) {
                int mi = next_bit(c->minutes, h == hour ? minute : 0, 59);
                if (mi < 0) continue;
                int64_t r = ((day * 24 + h) * 60 + mi) * MS_PER_MIN;
                return r <= limit ? r : -1;
            }
        }
        day++;
        hour = minute = 0;
    }
    return -1;
}

int64_t lf_cron_prev(const struct lf_cron *c, int64_t at)
{
    assert(c != NULL);
    if (at < -TIME_LIMIT || at > TIME_LIMIT) return -1;
    int64_t limit = shift_years(at, -HORIZON_Y);
    int64_t first_day = floor_div(limit, MS_PER_DAY);
    int64_t t = floor_div(at, MS_PER_MIN); /* at or before */
    int64_t day = floor_div(t, MIN_PER_DAY);
    int hour = (int)(t - day * MIN_PER_DAY) / 60, minute = (int)(t - day * MIN_PER_DAY) % 60;
    while (day >= first_day) {
        int64_t y;
        unsigned m, d;
        lf_civil_from_days(day, &y, &m, &d);
        if (!((c->months >> m) & 1)) { /* back to the last day of the previous month */
            day = lf_days_from_civil(y, m, 1) - 1;
            hour = 23;
            minute = 59;
            continue;
        }
        if (day_matches(c, day, d)) {
            for (int h = prev_bit(c->hours, hour); h >= 0; h = prev_bit(c->hours, h - 1)) {
                int mi = prev_bit(c->minutes, h == hour ? minute : 59);
                if (mi < 0) continue;
                int64_t r = ((day * 24 + h) * 60 + mi) * MS_PER_MIN;
                return r >= limit ? r : -1;
            }
        }
        day--;
        hour = 23;
        minute = 59;
    }
    return -1;
}
