/* Time: the clock, and RFC 3339 parsing and formatting of epoch milliseconds. */
#ifndef LF_TIMEUTIL_H
#define LF_TIMEUTIL_H

#include <stdint.h>
#include <stddef.h>

/* Wall-clock time in milliseconds since the Unix epoch (UTC). Every module reads the time
 * through this one function. */
int64_t lf_now_ms(void);
/* Moves the clock lf_now_ms reads so that it reads now_ms at this moment and runs on from
 * there. For tests only (wired up in LF_TESTING builds). */
void lf_clock_set(int64_t now_ms);

/* A monotonic clock in microseconds, for durations. */
int64_t lf_mono_us(void);

/* Parses an RFC 3339 date-time ("2026-11-20T10:00:00Z", fractions, "+02:00" offsets) into
 * epoch milliseconds. Returns 0 and sets *out, or -LF_EINVAL (leaving *out untouched). */
int lf_time_parse(const char *s, int64_t *out);

/* Formats epoch milliseconds as "2026-11-20T10:00:00.000Z" into buf (at least 25 bytes).
 * Returns buf. */
#define LF_TIME_BUFSZ 32
char *lf_time_format(int64_t ms, char *buf, size_t size);

/* Days since 1970-01-01 of a proleptic Gregorian date, and back. */
int64_t lf_days_from_civil(int64_t y, unsigned m, unsigned d);
void lf_civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d);

#endif
