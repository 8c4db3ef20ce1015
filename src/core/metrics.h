/* Process metrics, rendered in the Prometheus text format. */
#ifndef LF_METRICS_H
#define LF_METRICS_H

#include "core/mem.h"

#include <stdint.h>

enum lf_counter {
    LF_M_EVENTS_INGESTED,   /* events committed by the ingest writer */
    LF_M_EVENTS_DUPLICATE,  /* events refused as repeats of an idempotency key */
    LF_M_EVENTS_REJECTED,   /* events refused as invalid, unauthorised or over a limit */
    LF_M_EVENTS_PROCESSED,  /* events that went through every stage */
    LF_M_EVENTS_FAILED,     /* processing tries that failed */
    LF_M_INGEST_COMMITS,    /* group commits */
    LF_M_INGEST_QUEUE_FULL, /* submissions refused with 503 */
    LF_M_COUNTERS_
};

enum lf_histogram {
    LF_H_REQUEST_SECONDS, /* HTTP request latency */
    LF_H_INGEST_BATCH,    /* events per group commit */
    LF_H_COMMIT_SECONDS,  /* group commit latency */
    LF_H_PROCESS_BATCH,   /* events per worker transaction */
    LF_H_HISTOGRAMS_
};

/* THREAD SAFETY: every update is an atomic add; rendering reads without a lock and may see
 * a sum and a count from slightly different instants. */
void lf_metrics_inc(enum lf_counter c, uint64_t n);
void lf_metrics_observe(enum lf_histogram h, double value);
/* One HTTP request: route index (or -1 when no route matched), status and duration. */
void lf_metrics_request(int route, int status, double seconds);

/* Appends the text exposition of every metric; route_name(i) names route i. */
void lf_metrics_render(struct lf_buf *out, const char *(*route_name)(int i), int nroutes);

#endif
