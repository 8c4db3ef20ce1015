/* Domain events: what the engine itself decides, written to the events table. They are
 * pending like any event, so workers hand them to the stages that take internal events
 * (automation, outbound), and subscribers, the timeline and replay see them. */
#include "engine/emit.h"
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
    int rc =
        lf_db_run(c, NULL,
                  "INSERT INTO events (id, tenant_id, source, event_type, idempotency_key,"
                  " origin, lead_id, metadata, occurred_at, received_at, status,"
                  " next_attempt_at, updated_at)"
                  " VALUES (?, ?, 'leadflow', ?, ?, 'internal', ?, ?, ?, ?, 'pending', ?, ?)"
                  " ON CONFLICT (tenant_id, idempotency_key) DO NOTHING",
                  "ssssssIIII", id, tenant_id, type, key, lead_id, metadata, now, now, now, now);
    free(metadata);
    return rc;
}
