/* Domain events: what the engine itself decides, written to the events table with source
 * "leadflow" and origin "internal", in the caller's transaction. */
#ifndef LF_EMIT_H
#define LF_EMIT_H

#include "store/db.h"

#include <jansson.h>
#include <stdint.h>

/* Domain events' idempotency keys start with this; clients may not use it (their keys share
 * the tenant's key space). */
#define LF_DOMAIN_KEY_PREFIX "leadflow:"

/* Writes event `type` about lead_id (may be NULL) with data (borrowed; may be NULL) as its
 * metadata. cause names what led to it (an event id, or "api:<request id>"); the idempotency
 * key is "<type>:<cause>:<lead_id>", so replaying the cause never emits twice. Returns 1 when
 * written, 0 when it existed already, or a negative code. */
int lf_emit(struct lf_conn *c, const char *tenant_id, const char *type, const char *lead_id,
            const char *cause, json_t *data, int64_t now);

/* Capture: while a thread captures, every domain event it writes is also noted in a list, so
 * the automation engine can run the rules the event triggers before the transaction commits.
 * The list belongs to the thread (a transaction never leaves its thread). */
struct lf_emitted {
    char id[40];
    char tenant_id[40];
    char *type;
    char *lead_id; /* may be NULL */
    json_t *data;  /* the event's metadata (a reference), may be NULL */
    int depth;     /* the automation chain depth that wrote it (0: not automation) */
};

/* Starts capturing on this thread with an empty list (dropping what an earlier capture left). */
void lf_emit_capture_start(void);
/* Stops capturing and frees the list. */
void lf_emit_capture_stop(void);
/* 1 while this thread captures. */
int lf_emit_capturing(void);
/* The i-th noted event, or NULL past the end (the list may grow while it is read). Borrowed:
 * valid until the list is truncated or capture stops. */
const struct lf_emitted *lf_emit_captured(size_t i);
/* How many events are noted; lf_emit_truncate(n) forgets those after the first n (their
 * writes were rolled back). */
size_t lf_emit_captured_count(void);
void lf_emit_truncate(size_t n);
/* Sets the chain depth noted with the events written from now on; returns the previous one. */
int lf_emit_set_depth(int depth);

#endif
