/* A token bucket. */
#ifndef LF_RATELIMIT_H
#define LF_RATELIMIT_H

#include <stdint.h>

struct lf_bucket {
    double tokens;   /* available now */
    int64_t last_us; /* when tokens was last brought up to date; 0 before the first take */
};

/* Takes n tokens from a bucket refilled at rate per second and holding at most burst.
 * Returns 0, or -LF_ERATE and sets *retry_after_ms to when n tokens will be there (n larger
 * than burst can never be taken: *retry_after_ms is then the time to refill the bucket). */
int lf_bucket_take(struct lf_bucket *b, double rate, double burst, double n, int64_t now_us,
                   int64_t *retry_after_ms);

#endif
