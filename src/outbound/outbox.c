/* The outbox: one INSERT for every kind of delivery. */
#include "outbound/outbound.h"
#include "core/crypto.h"
#include "core/jsonx.h"

#include <stdio.h>
#include <stdlib.h>

int lf_outbox_put(struct lf_conn *c, const char *tenant_id, const char *kind,
                  const char *subscription_id, const char *event_id, const char *target,
                  json_t *payload, int64_t now, char id_out[40])
{
    char id[40];
    lf_uuid7(id);
    if (id_out) snprintf(id_out, 40, "%s", id);
    char *body = lf_json_dump(payload);
    int rc = lf_db_run(c, NULL,
                       "INSERT INTO deliveries (id, tenant_id, kind, subscription_id, event_id,"
                       " target, payload, status, next_attempt_at, created_at, updated_at)"
                       " VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?)",
                       "sssssssIII", id, tenant_id, kind, subscription_id, event_id, target, body,
                       now, now, now);
    free(body);
    return rc < 0 ? rc : 0;
}
