/* Process metrics, rendered in the Prometheus text format.
 *
 * THREAD SAFETY: counters and histogram buckets are relaxed atomics; nothing here locks. */
#include "core/metrics.h"

#include <stdatomic.h>
#include <string.h>

#define MAX_ROUTES 256
#define MAX_STATUS 600

static _Atomic uint64_t counters[LF_M_COUNTERS_];
static _Atomic uint64_t requests[MAX_ROUTES + 1][MAX_STATUS]; /* last row: no route */

static const char *const counter_names[LF_M_COUNTERS_][2] = {
    {"leadflow_events_ingested_total", "Events committed by the ingest writer."},
    {"leadflow_events_duplicate_total", "Events refused as repeats of an idempotency key."},
    {"leadflow_events_rejected_total", "Events refused as invalid or unauthorised."},
    {"leadflow_events_processed_total", "Events that went through every stage."},
    {"leadflow_events_failed_total", "Processing tries that failed."},
    {"leadflow_ingest_commits_total", "Group commits of the ingest writer."},
    {"leadflow_ingest_queue_full_total", "Submissions refused because the queue was full."},
};

#define NBUCKETS 14
struct histogram {
    const char *name, *help;
    double bounds[NBUCKETS]; /* upper bounds; unused trailing ones are 0 */
    _Atomic uint64_t buckets[NBUCKETS + 1];
    _Atomic uint64_t count;
    _Atomic uint64_t sum_micro; /* sum of values times 1e6 */
};

static struct histogram histograms[LF_H_HISTOGRAMS_] = {
    {"leadflow_http_request_duration_seconds",
     "HTTP request latency.",
     {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
     {0},
     0,
     0},
    {"leadflow_ingest_batch_size",
     "Events per group commit.",
     {1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 0, 0},
     {0},
     0,
     0},
    {"leadflow_ingest_commit_duration_seconds",
     "Group commit latency.",
     {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
     {0},
     0,
     0},
    {"leadflow_process_batch_size",
     "Events per worker transaction.",
     {1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 0, 0},
     {0},
     0,
     0},
};

void lf_metrics_inc(enum lf_counter c, uint64_t n)
{
    atomic_fetch_add_explicit(&counters[c], n, memory_order_relaxed);
}

void lf_metrics_observe(enum lf_histogram h, double value)
{
    struct histogram *hg = &histograms[h];
    int i = 0;
    while (i < NBUCKETS && hg->bounds[i] > 0 && value > hg->bounds[i]) i++;
    if (i < NBUCKETS && hg->bounds[i] == 0) i = NBUCKETS;
    atomic_fetch_add_explicit(&hg->buckets[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&hg->count, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&hg->sum_micro, (uint64_t)(value * 1e6), memory_order_relaxed);
}

void lf_metrics_request(int route, int status, double seconds)
{
    if (route < 0 || route >= MAX_ROUTES) route = MAX_ROUTES;
    if (status < 0 || status >= MAX_STATUS) status = 0;
    atomic_fetch_add_explicit(&requests[route][status], 1, memory_order_relaxed);
    lf_metrics_observe(LF_H_REQUEST_SECONDS, seconds);
}

void lf_metrics_render(struct lf_buf *out, const char *(*route_name)(int i), int nroutes)
{
    for (int c = 0; c < LF_M_COUNTERS_; c++)
        lf_buf_printf(out, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", counter_names[c][0],
                      counter_names[c][1], counter_names[c][0], counter_names[c][0],
                      (unsigned long long)atomic_load(&counters[c]));

    lf_buf_puts(out, "# HELP leadflow_http_requests_total HTTP requests by route and status.\n"
                     "# TYPE leadflow_http_requests_total counter\n");
    for (int r = 0; r <= MAX_ROUTES; r++) {
        if (r < MAX_ROUTES && r >= nroutes) continue;
        const char *name = r < MAX_ROUTES ? route_name(r) : "unmatched";
        for (int s = 0; s < MAX_STATUS; s++) {
            uint64_t n = atomic_load_explicit(&requests[r][s], memory_order_relaxed);
            if (n)
                lf_buf_printf(out,
                              "leadflow_http_requests_total{route=\"%s\",status=\"%d\"} %llu\n",
                              name, s, (unsigned long long)n);
        }
    }
    for (int h = 0; h < LF_H_HISTOGRAMS_; h++) {
        struct histogram *hg = &histograms[h];
        lf_buf_printf(out, "# HELP %s %s\n# TYPE %s histogram\n", hg->name, hg->help, hg->name);
        uint64_t cum = 0;
        for (int i = 0; i < NBUCKETS && hg->bounds[i] > 0; i++) {
            cum += atomic_load(&hg->buckets[i]);
            lf_buf_printf(out, "%s_bucket{le=\"%g\"} %llu\n", hg->name, hg->bounds[i],
                          (unsigned long long)cum);
        }
        uint64_t count = atomic_load(&hg->count);
        lf_buf_printf(out, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %g\n%s_count %llu\n", hg->name,
                      (unsigned long long)count, hg->name,
                      (double)atomic_load(&hg->sum_micro) / 1e6, hg->name,
                      (unsigned long long)count);
    }
}
