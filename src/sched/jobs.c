/* The table of scheduled jobs; each job is one file of src/sched/. */
#include "sched/scheduler.h"

extern const struct lf_job lf_job_score_decay;

const struct lf_job *const lf_jobs[] = {
    &lf_job_score_decay,
    NULL,
};
