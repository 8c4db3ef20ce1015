/* Five-field cron expressions (minute hour day-of-month month day-of-week), in UTC.
 *
 * Each field is `*`, a number, a range `a-b`, a step `*\/n`, `a-b/n` or `a/n` (a to the
 * field's maximum), or a comma-separated list of those. Months may be named JAN..DEC and days
 * SUN..SAT (any case); day-of-week 7 is Sunday too. As in Vixie cron, when both day-of-month
 * and day-of-week are restricted (neither starts with `*`), a day matches if either does. */
#ifndef LF_CRON_H
#define LF_CRON_H

#include "core/err.h"

#include <stdint.h>

struct lf_cron {
    uint64_t minutes;                 /* bit m: minute m (0..59) */
    uint32_t hours;                   /* bit h: 0..23 */
    uint32_t days;                    /* bit d: day of month 1..31 */
    uint16_t months;                  /* bit m: 1..12 */
    uint8_t weekdays;                 /* bit w: 0..6, Sunday = 0 */
    uint8_t days_star, weekdays_star; /* the field began with `*` */
};

/* Parses expr. Returns 0, or -LF_EINVAL with a message naming the bad field and why
 * ("hour: 24 is out of range 0-23", "expected 5 fields, got 6"). */
int lf_cron_parse(const char *expr, struct lf_cron *out, struct lf_err *err);

/* The first minute strictly after `after` (epoch ms) that the expression matches, as epoch
 * ms (a whole minute). -1 when none comes within the next 8 years (e.g. "0 0 30 2 *"). */
int64_t lf_cron_next(const struct lf_cron *c, int64_t after);

/* The latest matching minute at or before `at` (epoch ms), as epoch ms; -1 when none in the
 * previous 8 years. This is the slot a scheduler runs for at time `at`. */
int64_t lf_cron_prev(const struct lf_cron *c, int64_t at);

#endif
