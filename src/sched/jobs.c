/* The table of scheduled jobs; each job is one file of src/sched/. */
#include "sched/scheduler.h"

extern const struct lf_job lf_job_score_decay;
extern const struct lf_job lf_job_stage_timers;
extern const struct lf_job lf_job_slack_digest;

const struct lf_job *const lf_jobs[] = {
    &lf_job_score_decay,
    &lf_job_stage_timers,
    &lf_job_slack_digest,
    NULL,
};
