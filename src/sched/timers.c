/* The stage timers job: fires time_in_stage automation rules for deals that have been in
 * their stage long enough, once per deal and stage entry (src/engine/automate.c does the
 * work). */
#include "sched/scheduler.h"
#include "engine/automation.h"

static int run_timers(struct lf_job_run *run, struct lf_err *err)
{
    return lf_automate_timers(run->app->db, run->tenant_id, run->now, run->result, run->stop, err);
}

static const char *timers_cron(const struct lf_config *cfg)
{
    return cfg->stage_timers_cron;
}

static int timers_enabled(const struct lf_config *cfg)
{
    (void)cfg;
    return 1;
}

const struct lf_job lf_job_stage_timers = {
    "stage_timers",
    "fires time_in_stage automation rules for deals whose time in their stage has come",
    timers_cron,
    timers_enabled,
    run_timers,
};
