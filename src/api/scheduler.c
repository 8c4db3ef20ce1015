/* Scheduled jobs: their schedules, last and next runs, and running one now (admin). A
 * scheduled run spans every tenant; what a tenant sees of its result is its own part. */
#include "api/api.h"
#include "sched/cron.h"
#include "sched/scheduler.h"
#include "core/timeutil.h"

#include <stdio.h>
#include <string.h>

/* The caller's view of a run's result: counts for its tenant only. */
static json_t *tenant_view(json_t *result, const char *tenant)
{
    if (!json_is_object(result)) return json_null();
    json_t *by = json_object_get(result, "by_tenant");
    if (by == NULL) return json_incref(result);
    json_t *o = json_object();
    json_t *mine = json_object_get(by, tenant);
    if (mine) json_object_update(o, mine);
    const char *keys[] = {"duration_ms", "ok", "error", "interrupted"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        json_t *v = json_object_get(result, keys[i]);
        if (v) json_object_set(o, keys[i], v);
    }
    return o;
}

static json_t *job_json(struct lf_req *r, struct lf_conn *c, const struct lf_job *job)
{
    const struct lf_config *cfg = &r->app->cfg;
    const char *expr = job->cron(cfg);
    struct lf_cron cron;
    int64_t now = lf_now_ms();
    int64_t next = lf_cron_parse(expr, &cron, NULL) == 0 ? lf_cron_next(&cron, now) : -1;
    json_t *o = json_pack("{s:s, s:s, s:s, s:b, s:o, s:o}", "name", job->name, "description",
                          job->help, "schedule", expr, "enabled", job->enabled(cfg), "next_run_at",
                          lf_json_time(next, !job->enabled(cfg) || !cfg->scheduler), "last_run",
                          json_null());
    struct lf_stmt *st = lf_db_prepare(c,
                                       "SELECT slot, trigger_kind, node, started_at, finished_at,"
                                       " result FROM scheduler_runs WHERE job = ?"
                                       " AND tenant_id IN ('*', ?)"
                                       " ORDER BY started_at DESC LIMIT 1",
                                       NULL);
    if (st == NULL) return o;
    lf_stmt_bind(st, "ss", job->name, r->auth.tenant_id);
    if (lf_stmt_step(st) == LF_DB_ROW) {
        json_t *result = lf_json_parse(lf_stmt_text(st, 5));
        int scheduled = strcmp(lf_stmt_text(st, 1), "schedule") == 0;
        json_object_set_new(
            o, "last_run",
            json_pack("{s:o, s:s, s:s, s:o, s:o, s:b, s:o}", "slot",
                      lf_json_time(lf_stmt_int(st, 0), !scheduled), "trigger", lf_stmt_text(st, 1),
                      "node", lf_stmt_text(st, 2), "started_at",
                      lf_json_time(lf_stmt_int(st, 3), 0), "finished_at",
                      lf_json_time(lf_stmt_int(st, 4), lf_stmt_isnull(st, 4)), "running",
                      lf_stmt_isnull(st, 4), "result", tenant_view(result, r->auth.tenant_id)));
        json_decref(result);
    }
    lf_stmt_done(st);
    return o;
}

static void list_jobs(struct lf_req *r)
{
    struct lf_conn *c = lf_api_conn(r, LF_DB_READ);
    if (c == NULL) return;
    json_t *items = json_array();
    for (int j = 0; lf_jobs[j]; j++) json_array_append_new(items, job_json(r, c, lf_jobs[j]));
    lf_db_release(c);
    lf_reply_json(
        r, 200,
        json_pack("{s:o, s:b}", "items", items, "scheduler_running", r->app->cfg.scheduler));
}

static const struct lf_job *find_job(struct lf_req *r)
{
    const struct lf_job *job = lf_job_find(r->params[0]);
    if (job == NULL) {
        struct lf_err err = {0};
        lf_err_set(&err, -LF_ENOTFOUND, "no job %s", r->params[0]);
        lf_reply_error(r, -LF_ENOTFOUND, &err);
        lf_err_clear(&err);
    }
    return job;
}

static void get_job(struct lf_req *r)
{
    const struct lf_job *job = find_job(r);
    if (job == NULL) return;
    struct lf_conn *c = lf_api_conn(r, LF_DB_READ);
    if (c == NULL) return;
    json_t *o = job_json(r, c, job);
    lf_db_release(c);
    lf_reply_json(r, 200, o);
}

/* Runs the job now, for the caller's tenant, and answers with its result. A job switched off
 * by its feature flag runs too: asking for it by hand is the operator's decision. */
static void run_job(struct lf_req *r)
{
    const struct lf_job *job = find_job(r);
    if (job == NULL) return;
    struct lf_err err = {0};
    json_t *result = NULL;
    int rc = lf_sched_run_now(r->app, job, r->auth.tenant_id, &result, &err);
    if (rc < 0 && result == NULL) {
        lf_reply_error(r, rc, &err);
    } else {
        json_t *view = tenant_view(result, r->auth.tenant_id);
        lf_reply_json(
            r, 200, json_pack("{s:s, s:b, s:o}", "job", job->name, "ok", rc == 0, "result", view));
    }
    json_decref(result);
    lf_err_clear(&err);
}

const struct lf_route lf_scheduler_routes[] = {
    {"GET", "/api/v1/scheduler/jobs", list_jobs, LF_AUTH_TOKEN, LF_ROLES_READ, 0, 0, 0},
    {"GET", "/api/v1/scheduler/jobs/{job}", get_job, LF_AUTH_TOKEN, LF_ROLES_READ, 0, 0, 0},
    {"POST", "/api/v1/scheduler/jobs/{job}/run", run_job, LF_AUTH_TOKEN, LF_ROLES_ADMIN, 0, 0, 0},
    {NULL, NULL, NULL, 0, 0, 0, 0, 0},
};
