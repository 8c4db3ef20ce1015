/* Domain events: what the engine itself decides, written to the events table, where the
 * timeline, the events API and replay see them. While a stage takes internal events they are
 * written pending, so workers hand them to it; while none does, they are written processed
 * (processing them would run nothing, and cost a second write of every domain event). */
#include "engine/emit.h"
#include "engine/stage.h"
#include "core/crypto.h"

#include <stdio.h>
#include <stdlib.h>

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
    return rc;
}
