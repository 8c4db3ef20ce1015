/* Pipeline workers: claim pending events in order and run them through the stages. */
#ifndef LF_WORKER_H
#define LF_WORKER_H

#include "app.h"

/* Puts events left 'processing' by a crash back to pending. Returns how many, or negative. */
int lf_workers_recover(struct lf_app *app, struct lf_err *err);
/* Starts cfg.workers threads (none when 0). */
int lf_workers_start(struct lf_app *app, struct lf_err *err);
/* Wakes the workers: new events are there. Callable from any thread. */
void lf_workers_notify(struct lf_workers *w);
/* Lets each worker finish the batch in hand, then joins them. */
void lf_workers_stop(struct lf_app *app);

/* Processes one batch on the calling thread. Returns the number of events processed (0 when
 * none were due) or a negative code. For the CLI and tests. */
int lf_workers_run_batch(struct lf_app *app, int limit);

/* The delay before the next try after `attempts` failed tries, in ms. */
int64_t lf_retry_delay_ms(const struct lf_config *cfg, int attempts);

#endif
