/* Stage 1, resolve: find the event's lead by any identity (email first), create it when there
 * is none, merge when the identities point at two leads, attach new identities, fill empty
 * profile fields and link an organization. An event without an identity touches no lead
 * (result no_identity); an email on the erasure list is dropped (result suppressed).
 *
 * Concurrency: on SQLite batches run one at a time, so two events for one new person see each
 * other. Across processes (or engines with several writers) the unique index on
 * (tenant_id, kind, value) decides: the loser's attach fails, the event is retried, and on the
 * retry it finds the lead the winner made. */
#include "engine/stage.h"
#include "engine/emit.h"
#include "engine/lead.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Whether email is on the tenant's erasure list. Most tenants have none: that is looked up once
 * per batch, and only a tenant with erasures pays a lookup per event. */
static int suppressed(struct lf_stage_ctx *ctx, const char *tenant_id, const char *email)
{
    if (strcmp(ctx->erasures_tenant, tenant_id) != 0) {
        int64_t any = 0;
        int rc =
            lf_db_int(ctx->conn, NULL, &any,
                      "SELECT count(*) FROM (SELECT 1 FROM erasures WHERE tenant_id = ? LIMIT 1)"
                      " t",
                      "s", tenant_id);
        if (rc < 0) return rc;
        snprintf(ctx->erasures_tenant, sizeof ctx->erasures_tenant, "%s", tenant_id);
        ctx->erasures_any = any > 0;
    }
    return ctx->erasures_any ? lf_lead_suppressed(ctx->conn, tenant_id, email) : 0;
}

static int run(struct lf_stage_ctx *ctx, struct lf_event *ev, struct lf_err *err)
{
    json_t *lead = lf_event_identity(ev);
    struct lf_identity ids[LF_ID_KINDS_];
    int n = lf_identities_from_lead(lead, ids, NULL);
    if (n == 0) {
        ev->outcome = strdup("no_identity");
        return LF_STAGE_STOP;
    }
    const char *email = ids[0].kind == LF_ID_EMAIL ? ids[0].value : NULL;
    if (email) {
        int sup = suppressed(ctx, ev->tenant_id, email);
        if (sup < 0) return lf_err_set(err, sup, "suppression check failed");
        if (sup) {
            ev->outcome = strdup("suppressed");
            return LF_STAGE_STOP;
        }
    }

    char found[LF_LEAD_MATCH_MAX][40], lead_id[40];
    int known[LF_ID_KINDS_];
    int m = lf_lead_find(ctx->conn, ev->tenant_id, ids, n, found, known);
    if (m < 0) return lf_err_set(err, m, "identity lookup failed");
    int rc = 0;
    json_t *merged = json_array();
    struct lf_lead_snapshot snap = {0, 0};
    if (m == 0) {
        rc = lf_lead_create(ctx->conn, ev->tenant_id, ctx->now, lead_id);
    } else {
        memcpy(lead_id, found[0], sizeof lead_id); /* the oldest survives */
        for (int i = 1; i < m && rc == 0; i++) {
            rc = lf_lead_merge(ctx->conn, ev->tenant_id, lead_id, found[i], ev->id, ctx->now);
            json_array_append_new(merged, json_string(found[i]));
        }
        if (rc == 0)
            rc = lf_lead_snapshot(ctx->conn, ev->tenant_id, lead_id, &snap) == LF_DB_ROW
                     ? 0
                     : -LF_EINTERNAL;
    }
    /* Only identities no lead holds yet need writing; after a merge every known one is the
     * survivor's. */
    struct lf_identity fresh[LF_ID_KINDS_];
    int nfresh = 0;
    for (int i = 0; i < n; i++)
        if (!known[i]) fresh[nfresh++] = ids[i];
    if (rc == 0 && nfresh)
        rc = lf_lead_attach(ctx->conn, ev->tenant_id, lead_id, fresh, nfresh, ctx->now);
    if (rc >= 0)
        rc = lf_lead_fill_missing(ctx->conn, ev->tenant_id, lead_id, lead, &snap, ctx->now);
    if (rc >= 0 && !snap.has_org)
        rc = lf_lead_link_org(ctx->conn, ev->tenant_id, lead_id,
                              json_string_value(json_object_get(lead, "company")), email, ctx->now);
    if (rc >= 0 && m == 0) {
        json_t *data =
            json_pack("{s:o, s:s, s:s}", "email", email ? json_string(email) : json_null(),
                      "source", ev->source, "event_id", ev->id);
        rc = lf_emit(ctx->conn, ev->tenant_id, "lead.created", lead_id, ev->id, data, ctx->now);
        json_decref(data);
    }
    if (rc < 0) {
        json_decref(merged);
        return lf_err_set(err, rc, "resolve: %s",
                          rc == -LF_ECONFLICT ? "an identity belongs to another lead"
                                              : lf_strerror(rc));
    }
    free(ev->lead_id);
    ev->lead_id = strdup(lead_id);
    json_object_set_new(
        ev->result, "lead",
        json_pack("{s:s, s:b, s:o}", "id", lead_id, "created", m == 0, "merged", merged));
    return 0;
}

const struct lf_stage lf_stage_resolve = {"resolve", 0, run, 0};
