/* The scheduler: jobs on cron schedules (UTC), each run claimed in scheduler_runs first so a
 * slot runs once however many processes share the store. */
#ifndef LF_SCHEDULER_H
#define LF_SCHEDULER_H

#include "app.h"

#include <jansson.h>
#include <stdint.h>

/* One run of a job. */
struct lf_job_run {
    struct lf_app *app;
    const char *tenant_id;   /* NULL: every tenant (a scheduled run); else a manual run's tenant */
    int64_t now;             /* the run's clock */
    char cause[64];          /* names the run in emitted events' keys: "<job>:<started ms>" */
    json_t *result;          /* the job adds its counts here (an object, owned by the run) */
    const _Atomic int *stop; /* non-zero when the process is stopping: end early */
};

struct lf_job {
    const char *name;
    const char *help;
    const char *(*cron)(const struct lf_config *cfg); /* its schedule */
    int (*enabled)(const struct lf_config *cfg);
    /* Does the work; returns 0 or a negative code with err set. Runs on the scheduler
     * thread (or a request's, for a manual run); takes store connections as it needs. */
    int (*run)(struct lf_job_run *run, struct lf_err *err);
};

/* The jobs, ended by NULL. */
extern const struct lf_job *const lf_jobs[];
const struct lf_job *lf_job_find(const char *name);

/* Starts the scheduler thread (when cfg.scheduler is on). Returns 0 or negative. */
int lf_sched_start(struct lf_app *app, struct lf_err *err);
/* Asks a running job to end early and joins the thread. */
void lf_sched_stop(struct lf_app *app);

/* Runs a job now for one tenant, recorded as a manual run. Sets *result (the caller owns it).
 * Returns 0, or a negative code with err set (-LF_ECONFLICT when asked twice at once). */
int lf_sched_run_now(struct lf_app *app, const struct lf_job *job, const char *tenant_id,
                     json_t **result, struct lf_err *err);

#endif
