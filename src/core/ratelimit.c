/* A token bucket. Not thread-safe by itself: the caller holds the lock of its owner. */
#include "core/ratelimit.h"
#include "core/err.h"

int lf_bucket_take(struct lf_bucket *b, double rate, double burst, double n, int64_t now_us,
                   int64_t *retry_after_ms)
{
    if (b->last_us == 0) {
        b->tokens = burst;
    } else if (now_us > b->last_us) {
        b->tokens += (double)(now_us - b->last_us) / 1e6 * rate;
        if (b->tokens > burst) b->tokens = burst;
    }
    b->last_us = now_us;
    if (b->tokens >= n) {
        b->tokens -= n;
        return 0;
    }
    double missing = (n <= burst ? n : burst) - b->tokens;
    int64_t ms = (int64_t)(missing / rate * 1000.0) + 1;
    if (retry_after_ms) *retry_after_ms = ms;
    return -LF_ERATE;
}
