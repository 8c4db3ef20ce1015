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

#endif
