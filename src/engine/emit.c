/* Domain events: what the engine itself decides, written to the events table, where the
 * timeline, the events API and replay see them. While a stage takes internal events they are
 * written pending, so workers hand them to it; while none does, they are written processed
 * (processing them would run nothing, and cost a second write of every domain event). */
#include "engine/emit.h"
#include "engine/stage.h"
#include "outbound/outbound.h"
#include "core/crypto.h"

#include "core/mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* This thread's capture (see emit.h). */
static _Thread_local struct {
    int on;
    int depth;
    struct lf_emitted *v;
    size_t n, cap;
} capture;

static void note(const char *id, const char *tenant_id, const char *type, const char *lead_id,
                 json_t *data)
{
    if (capture.n == capture.cap) {
        capture.cap = capture.cap ? 2 * capture.cap : 16;
        capture.v = lf_xrealloc(capture.v, capture.cap * sizeof(*capture.v));
    }
    struct lf_emitted *e = &capture.v[capture.n++];
    snprintf(e->id, sizeof e->id, "%s", id);
    snprintf(e->tenant_id, sizeof e->tenant_id, "%s", tenant_id);
    e->type = lf_xstrdup(type);
    e->lead_id = lead_id ? lf_xstrdup(lead_id) : NULL;
    e->data = json_incref(data);
    e->depth = capture.depth;
}

void lf_emit_truncate(size_t n)
{
    while (capture.n > n) {
        struct lf_emitted *e = &capture.v[--capture.n];
        free(e->type);
        free(e->lead_id);
        json_decref(e->data);
    }
}

void lf_emit_capture_start(void)
{
    lf_emit_truncate(0);
    capture.on = 1;
    capture.depth = 0;
}

void lf_emit_capture_stop(void)
{
    lf_emit_truncate(0);
    free(capture.v);
    memset(&capture, 0, sizeof capture);
}

int lf_emit_capturing(void)
{
    return capture.on;
}

const struct lf_emitted *lf_emit_captured(size_t i)
{
    return i < capture.n ? &capture.v[i] : NULL;
}

size_t lf_emit_captured_count(void)
{
    return capture.n;
}

int lf_emit_set_depth(int depth)
{
    int old = capture.depth;
    capture.depth = depth;
    return old;
}

int lf_emit(struct lf_conn *c, const char *tenant_id, const char *type, const char *lead_id,
            const char *cause, json_t *data, int64_t now)
{
    char id[40], key[200];
    lf_uuid7(id);
    snprintf(key, sizeof key, LF_DOMAIN_KEY_PREFIX "%s:%s:%s", type, cause,
             lead_id ? lead_id : "-");
    char *metadata = data ? json_dumps(data, JSON_COMPACT) : NULL;
    int rc;
    if (lf_stages_take_internal())
        rc = lf_db_run(c, NULL,
                       "INSERT INTO events (id, tenant_id, source, event_type, idempotency_key,"
                       " origin, lead_id, metadata, occurred_at, received_at, status,"
                       " next_attempt_at, updated_at)"
                       " VALUES (?, ?, 'leadflow', ?, ?, 'internal', ?, ?, ?, ?, 'pending', ?, ?)"
                       " ON CONFLICT (tenant_id, idempotency_key) DO NOTHING",
                       "ssssssIIII", id, tenant_id, type, key, lead_id, metadata, now, now, now,
                       now);
    else
        rc = lf_db_run(c, NULL,
                       "INSERT INTO events (id, tenant_id, source, event_type, idempotency_key,"
                       " origin, lead_id, metadata, occurred_at, received_at, status, attempts,"
                       " processed_at, result, updated_at)"
                       " VALUES (?, ?, 'leadflow', ?, ?, 'internal', ?, ?, ?, ?, 'processed', 1,"
                       " ?, '{\"stages\":[],\"outcome\":\"processed\"}', ?)"
                       " ON CONFLICT (tenant_id, idempotency_key) DO NOTHING",
                       "ssssssIIII", id, tenant_id, type, key, lead_id, metadata, now, now, now,
                       now);
    free(metadata);
    if (rc == 1 && capture.on) note(id, tenant_id, type, lead_id, data);
    if (rc == 1) {
        struct lf_relay_ev r = {.id = id,
                                .type = type,
                                .source = "leadflow",
                                .lead_id = lead_id,
                                .internal = 1,
                                .occurred_at = now,
                                .metadata = data};
        int relayed = lf_relay_event(c, tenant_id, &r, now);
        if (relayed < 0) return relayed;
    }
    return rc;
}
