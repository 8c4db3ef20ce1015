/* The score decay job: score rows past expires_at are marked expired and their leads
 * recomputed (sums, total, lifecycle, hot re-arm, lead.scored); leads whose intent signals
 * left the intent window (leads.intent_expires_at passed) get their intent re-derived. Works in
 * batches of BATCH leads per transaction, so ingest and processing keep going while it runs. */
#include "sched/scheduler.h"
#include "engine/automation.h"
#include "engine/lead.h"
#include "engine/score.h"
#include "core/mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BATCH 500

struct counts {
    int64_t rows_expired, leads_rescored, scores_changed, intents_reevaluated, intents_changed;
};

/* Reads up to BATCH lead ids from st (bound by the caller) into ids; finishes st. */
static int lead_batch(struct lf_stmt *st, char ids[][40])
{
    int n = 0, rc;
    while (n < BATCH && (rc = lf_stmt_step(st)) == LF_DB_ROW)
        snprintf(ids[n++], 40, "%s", lf_stmt_text(st, 0));
    lf_stmt_done(st);
    return rc < 0 ? rc : n;
}

/* What the job does to one lead, inside the batch's transaction. */
typedef int lead_fn(struct lf_conn *c, struct lf_job_run *run, const char *tenant,
                    const char *lead_id, const struct lf_score_settings *s, struct counts *k,
                    struct lf_err *err);

/* Runs fn for the leads select_sql (binding tenant, now, limit) finds, BATCH leads per
 * transaction, until a batch comes back short or the process stops. fn must take each lead
 * out of what select_sql finds, or the loop would see it again. */
static int each_lead(struct lf_job_run *run, const char *tenant, const char *select_sql,
                     lead_fn *fn, const struct lf_score_settings *s, struct counts *k,
                     struct lf_err *err)
{
    char(*ids)[40] = lf_xcalloc(BATCH, 40);
    int rc = 0;
    while (!*run->stop) {
        struct lf_conn *c = lf_db_acquire(run->app->db, LF_DB_WRITE, err);
        if (c == NULL) {
            rc = -LF_ESTORE;
            break;
        }
        rc = lf_automate_begin(c);
        struct lf_stmt *st = rc < 0 ? NULL : lf_db_prepare(c, select_sql, err);
        if (st) lf_stmt_bind(st, "sIi", tenant, run->now, BATCH);
        int n = st ? lead_batch(st, ids) : -LF_EINTERNAL;
        rc = n < 0 ? n : 0;
        for (int i = 0; rc >= 0 && i < n; i++) rc = fn(c, run, tenant, ids[i], s, k, err);
        if (rc >= 0)
            rc = lf_automate_commit(c, tenant, run->now, err);
        else
            lf_automate_rollback(c);
        lf_db_release(c);
        if (rc < 0 || n < BATCH) break;
    }
    free(ids);
    return rc;
}

/* Expires the lead's due rows and recomputes it: its rows leave the partial index the
 * select reads, so the next batch finds the next leads. */
static int expire_lead(struct lf_conn *c, struct lf_job_run *run, const char *tenant,
                       const char *lead_id, const struct lf_score_settings *s, struct counts *k,
                       struct lf_err *err)
{
    int rows = lf_db_run(c, err,
                         "UPDATE score_history SET expired_at = ? WHERE tenant_id = ?"
                         " AND lead_id = ? AND +expires_at <= ? AND expired_at IS NULL",
                         "IssI", run->now, tenant, lead_id, run->now);
    if (rows < 0) return rows;
    int rc =
        lf_score_recompute(c, tenant, lead_id, s, "decay", run->cause, run->now, NULL, NULL, NULL);
    if (rc < 0) return rc;
    k->rows_expired += rows;
    k->leads_rescored++;
    k->scores_changed += rc;
    return 0;
}

/* Derives the lead's intent again, which moves its intent_expires_at on (or clears it). */
static int reintent_lead(struct lf_conn *c, struct lf_job_run *run, const char *tenant,
                         const char *lead_id, const struct lf_score_settings *s, struct counts *k,
                         struct lf_err *err)
{
    (void)err;
    int rc;
    json_t *lead = lf_lead_context(c, tenant, lead_id, &rc);
    if (lead == NULL) return rc < 0 ? rc : -LF_EINTERNAL; /* selected in this transaction */
    const char *prev = json_string_value(json_object_get(lead, "primary_intent"));
    rc = lf_intent_recompute(c, tenant, lead_id, s, prev, run->cause, run->now);
    json_decref(lead);
    if (rc < 0) return rc;
    k->intents_reevaluated++;
    k->intents_changed += rc;
    return 0;
}

static json_t *counts_json(const struct counts *k)
{
    return json_pack("{s:I, s:I, s:I, s:I, s:I}", "rows_expired", (json_int_t)k->rows_expired,
                     "leads_rescored", (json_int_t)k->leads_rescored, "scores_changed",
                     (json_int_t)k->scores_changed, "intents_reevaluated",
                     (json_int_t)k->intents_reevaluated, "intents_changed",
                     (json_int_t)k->intents_changed);
}

static int run_decay(struct lf_job_run *run, struct lf_err *err)
{
    /* the tenants to work on: the one asked for, or all */
    json_t *tenants = json_array();
    int rc = 0;
    if (run->tenant_id) {
        json_array_append_new(tenants, json_string(run->tenant_id));
    } else {
        struct lf_conn *c = lf_db_acquire(run->app->db, LF_DB_READ, err);
        struct lf_stmt *st = c ? lf_db_prepare(c, "SELECT id FROM tenants ORDER BY id", err) : NULL;
        while (st && (rc = lf_stmt_step(st)) == LF_DB_ROW)
            json_array_append_new(tenants, json_string(lf_stmt_text(st, 0)));
        if (st) lf_stmt_done(st);
        if (c) lf_db_release(c);
        if (c == NULL || st == NULL) rc = -LF_ESTORE;
    }
    struct counts all = {0};
    json_t *by_tenant = json_object();
    size_t i;
    json_t *t;
    json_array_foreach(tenants, i, t)
    {
        if (rc < 0) break;
        const char *tenant = json_string_value(t);
        struct counts k = {0};
        struct lf_score_settings s;
        struct lf_conn *c = lf_db_acquire(run->app->db, LF_DB_READ, err);
        if (c == NULL) {
            rc = -LF_ESTORE;
            break;
        }
        lf_score_settings_load(c, tenant, &s);
        lf_db_release(c);
        rc = each_lead(run, tenant,
                       "SELECT DISTINCT lead_id FROM score_history WHERE tenant_id = ?"
                       " AND expires_at <= ? AND expired_at IS NULL LIMIT ?",
                       expire_lead, &s, &k, err);
        if (rc >= 0)
            rc = each_lead(run, tenant,
                           "SELECT id FROM leads WHERE tenant_id = ? AND intent_expires_at <= ?"
                           " LIMIT ?",
                           reintent_lead, &s, &k, err);
        lf_score_settings_clear(&s);
        all.rows_expired += k.rows_expired;
        all.leads_rescored += k.leads_rescored;
        all.scores_changed += k.scores_changed;
        all.intents_reevaluated += k.intents_reevaluated;
        all.intents_changed += k.intents_changed;
        json_object_set_new(by_tenant, tenant, counts_json(&k));
    }
    json_object_update_new(run->result, counts_json(&all));
    json_object_set_new(run->result, "by_tenant", by_tenant);
    json_decref(tenants);
    return rc < 0 ? rc : 0;
}

static const char *decay_cron(const struct lf_config *cfg)
{
    return cfg->score_decay_cron;
}

static int decay_enabled(const struct lf_config *cfg)
{
    return cfg->enable_score_decay;
}

const struct lf_job lf_job_score_decay = {
    "score_decay",
    "expires score rows past their expiry and recomputes the leads; re-derives intents whose "
    "signals left the window",
    decay_cron,
    decay_enabled,
    run_decay,
};
