/* The outbox: one INSERT for every kind of delivery. */
#include "outbound/outbound.h"
#include "core/crypto.h"
#include "core/jsonx.h"

#include <stdio.h>
#include <stdlib.h>

/* Deliveries this thread wrote since it last told the dispatcher. */
static _Thread_local unsigned written;

int lf_outbox_put(struct lf_conn *c, const char *tenant_id, const char *kind,
                  const char *subscription_id, const char *event_id, const char *target,
                  json_t *payload, int64_t now, char id_out[40])
{
    char id[40];
    lf_uuid7(id);
    if (id_out) snprintf(id_out, 40, "%s", id);
    char *body = lf_json_dump(payload);
    const char *message_id = json_string_value(json_object_get(payload, "id"));
    int rc = lf_db_run(c, NULL,
                       "INSERT INTO deliveries (id, tenant_id, kind, subscription_id, event_id,"
                       " target, payload, message_id, status, next_attempt_at, created_at,"
                       " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?)",
                       "ssssssssIII", id, tenant_id, kind, subscription_id, event_id, target, body,
                       message_id, now, now, now);
    free(body);
    if (rc >= 0) written++;
    return rc < 0 ? rc : 0;
}

void lf_outbox_committed(void)
{
    if (written == 0) return;
    written = 0;
    lf_dispatcher_notify();
}
