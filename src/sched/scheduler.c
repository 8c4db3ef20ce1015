/* The scheduler thread and manual runs.
 *
 * DESIGN / THREAD SAFETY
 * One thread per process wakes every second (or when stopped), reads the clock and, for
 * each enabled job, works out the latest slot of its cron schedule at or before now. A slot
 * newer than the last one this process saw is claimed with an insert into scheduler_runs
 * whose (job, slot) key is unique: the process whose insert lands runs the job; the others
 * see the row and move on. So a slot runs once across processes sharing the store. At start,
 * the last slot seen is the newest one recorded for the job, so a slot that passed while no
 * process was running runs once (only the newest missed one); a job never run before waits
 * for its next slot. A run is recorded (finished_at, result) when it ends; a run cut short
 * by a crash keeps finished_at NULL and its slot is not retried.
 * `lock` and `cond` let lf_sched_stop wake the thread; `stop` is atomic because jobs poll it
 * between batches. Manual runs happen on the requesting thread; their claim row (trigger
 * 'manual', slot = minus the request time) keeps two identical requests in one millisecond
 * apart, and never takes a scheduled slot's key. */
#include "sched/scheduler.h"
#include "sched/cron.h"
#include "core/jsonx.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/timeutil.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_JOBS 16

struct lf_sched {
    struct lf_app *app;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    _Atomic int stop;
    struct lf_cron cron[MAX_JOBS];
    int64_t last_slot[MAX_JOBS]; /* the newest slot seen per job; -1 before the first look */
    int enabled[MAX_JOBS];
};

const struct lf_job *lf_job_find(const char *name)
{
    for (int j = 0; lf_jobs[j]; j++)
        if (name && strcmp(lf_jobs[j]->name, name) == 0) return lf_jobs[j];
    return NULL;
}

/* Inserts the claim row. Returns 1 when this call claimed it, 0 when taken, or negative. */
static int claim(struct lf_app *app, const char *job, int64_t slot, const char *tenant,
                 const char *kind, int64_t now, struct lf_err *err)
{
    struct lf_conn *c = lf_db_acquire(app->db, LF_DB_WRITE, err);
    if (c == NULL) return -LF_ESTORE;
    int rc =
        lf_db_run(c, err,
                  "INSERT INTO scheduler_runs (tenant_id, job, slot, node, started_at,"
                  " trigger_kind) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (job, slot) DO NOTHING",
                  "ssIsIs", tenant, job, slot, app->node, now, kind);
    lf_db_release(c);
    return rc;
}

/* Runs the job for a claimed slot and records how it ended. */
static int execute(struct lf_app *app, const struct lf_job *job, int64_t slot, const char *tenant,
                   const _Atomic int *stop, json_t **result, struct lf_err *err)
{
    static const _Atomic int never = 0;
    int64_t started = lf_now_ms(), t0 = lf_mono_us();
    struct lf_job_run run = {
        .app = app,
        .tenant_id = tenant,
        .now = started,
        .result = json_object(),
        .stop = stop ? stop : &never,
    };
    snprintf(run.cause, sizeof run.cause, "%s:%lld", job->name, (long long)started);
    int rc = job->run(&run, err);
    int64_t ms = (lf_mono_us() - t0) / 1000;
    json_object_set_new(run.result, "duration_ms", json_integer(ms));
    json_object_set_new(run.result, "ok", json_boolean(rc == 0));
    if (rc < 0)
        json_object_set_new(run.result, "error",
                            json_string(err && err->msg[0] ? err->msg : lf_strerror(rc)));
    if (*run.stop) json_object_set_new(run.result, "interrupted", json_true());
    char *text = lf_json_dump(run.result);
    struct lf_conn *c = lf_db_acquire(app->db, LF_DB_WRITE, NULL);
    if (c) {
        lf_db_run(
            c, NULL,
            "UPDATE scheduler_runs SET finished_at = ?, result = ? WHERE job = ? AND slot = ?",
            "IssI", lf_now_ms(), text, job->name, slot);
        lf_db_release(c);
    }
    free(text);
    if (rc < 0)
        lf_log_error("job failed", "{s:s, s:s}", "job", job->name, "error",
                     err && err->msg[0] ? err->msg : lf_strerror(rc));
    else
        lf_log_info("job finished", "{s:s, s:I, s:O}", "job", job->name, "duration_ms",
                    (json_int_t)ms, "result", run.result);
    if (result)
        *result = run.result;
    else
        json_decref(run.result);
    return rc;
}

int lf_sched_run_now(struct lf_app *app, const struct lf_job *job, const char *tenant_id,
                     json_t **result, struct lf_err *err)
{
    int64_t now = lf_now_ms();
    /* a manual run's slot is minus its time, apart from the scheduled (whole-minute) slots */
    int rc = claim(app, job->name, -now, tenant_id, "manual", now, err);
    if (rc == 0)
        return lf_err_set(err, -LF_ECONFLICT, "job %s was started in this very millisecond",
                          job->name);
    if (rc < 0) return rc;
    const _Atomic int *stop = app->sched ? &app->sched->stop : NULL;
    return execute(app, job, -now, tenant_id, stop, result, err);
}

/* The newest scheduled slot recorded for a job, or -1. */
static int64_t newest_slot(struct lf_app *app, const char *job)
{
    int64_t slot = -1;
    struct lf_conn *c = lf_db_acquire(app->db, LF_DB_READ, NULL);
    if (c == NULL) return -1;
    lf_db_int(c, NULL, &slot,
              "SELECT COALESCE(MAX(slot), -1) FROM scheduler_runs WHERE job = ?"
              " AND trigger_kind = 'schedule'",
              "s", job);
    lf_db_release(c);
    return slot;
}

static void tick(struct lf_sched *s)
{
    int64_t now = lf_now_ms();
    for (int j = 0; lf_jobs[j] && !s->stop; j++) {
        if (!s->enabled[j]) continue;
        int64_t slot = lf_cron_prev(&s->cron[j], now);
        if (slot < 0) continue;
        if (s->last_slot[j] < 0) {
            /* first look: runs the newest missed slot, unless the job never ran */
            int64_t newest = newest_slot(s->app, lf_jobs[j]->name);
            s->last_slot[j] = newest >= 0 ? newest : slot;
        }
        if (slot <= s->last_slot[j]) continue;
        struct lf_err err = {0};
        int rc = claim(s->app, lf_jobs[j]->name, slot, "*", "schedule", now, &err);
        if (rc >= 0) s->last_slot[j] = slot; /* a failed claim is tried again next second */
        if (rc < 0)
            lf_log_warn("job slot not claimed", "{s:s, s:s}", "job", lf_jobs[j]->name, "error",
                        err.msg[0] ? err.msg : lf_strerror(rc));
        if (rc == 1) execute(s->app, lf_jobs[j], slot, NULL, &s->stop, NULL, &err);
        lf_err_clear(&err);
    }
}

static void *sched_main(void *arg)
{
    struct lf_sched *s = arg;
    while (!s->stop) {
        tick(s);
        pthread_mutex_lock(&s->lock);
        if (!s->stop) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += 1;
            pthread_cond_timedwait(&s->cond, &s->lock, &until);
        }
        pthread_mutex_unlock(&s->lock);
    }
    return NULL;
}

int lf_sched_start(struct lf_app *app, struct lf_err *err)
{
    struct lf_sched *s = lf_xcalloc(1, sizeof(*s));
    s->app = app;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, NULL);
    for (int j = 0; lf_jobs[j]; j++) {
        if (j == MAX_JOBS) abort(); /* the table outgrew the array */
        s->last_slot[j] = -1;
        s->enabled[j] = lf_jobs[j]->enabled(&app->cfg);
        struct lf_err why = {0};
        if (lf_cron_parse(lf_jobs[j]->cron(&app->cfg), &s->cron[j], &why) < 0) {
            lf_err_set(err, -LF_EINVAL, "schedule of job %s: %s", lf_jobs[j]->name, why.msg);
            lf_err_clear(&why);
            free(s);
            return -LF_EINVAL;
        }
    }
    app->sched = s;
    if (!app->cfg.scheduler) return 0;
    if (pthread_create(&s->thread, NULL, sched_main, s) != 0) {
        app->sched = NULL;
        free(s);
        return lf_err_set(err, -LF_EINTERNAL, "cannot start the scheduler");
    }
    return 0;
}

void lf_sched_stop(struct lf_app *app)
{
    struct lf_sched *s = app->sched;
    if (s == NULL) return;
    pthread_mutex_lock(&s->lock);
    s->stop = 1;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
    if (app->cfg.scheduler) pthread_join(s->thread, NULL);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->cond);
    app->sched = NULL;
    free(s);
}
