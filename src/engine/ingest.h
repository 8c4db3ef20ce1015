/* Durable ingestion: request threads hand validated events to one writer that commits them
 * in batches (group commit) and then tells each request its outcome. */
#ifndef LF_INGEST_H
#define LF_INGEST_H

#include "app.h"

#include <stdint.h>

/* One event to store. Every string is owned by the item (freed by lf_ingest_item_clear). */
struct lf_ingest_item {
    char id[40]; /* the new event's id, chosen before submission */
    char *idempotency_key;
    char *source;
    char *event_type;
    char *identity; /* JSON text of the lead object, or NULL */
    char *metadata; /* JSON text, or NULL */
    char *utm_source, *utm_medium, *utm_campaign;
    int64_t occurred_at;
    int64_t received_at;
    /* Outcome, set by the writer before done() is called: */
    int outcome;          /* LF_INGEST_STORED, LF_INGEST_DUPLICATE, or a negative code */
    char existing_id[40]; /* for a duplicate: the id stored first */
};

#define LF_INGEST_STORED    0
#define LF_INGEST_DUPLICATE 1

/* One submission: the events of one request, all in the same tenant. */
struct lf_ingest_job {
    char tenant_id[40];
    struct lf_ingest_item *items; /* owned by the submitter */
    int n;
    /* Called on the writer thread once the job's outcome is known (committed or failed).
     * It must not block; it typically resumes the suspended request. */
    void (*done)(struct lf_ingest_job *job);
    void *arg;
    struct lf_ingest_job *next; /* queue link, the writer's */
};

void lf_ingest_item_clear(struct lf_ingest_item *it);

/* Starts the writer thread. */
int lf_ingest_start(struct lf_app *app, struct lf_err *err);
/* Queues job. Returns 0 (done will be called exactly once), or -LF_EBUSY when the queue is
 * full or the writer is stopping (done is then never called). */
int lf_ingest_submit(struct lf_ingest *ing, struct lf_ingest_job *job, struct lf_err *err);
/* Events queued and not yet committed. */
int lf_ingest_depth(struct lf_ingest *ing);
/* Refuses new submissions (-LF_EBUSY), commits everything queued (every done() is called),
 * and joins the thread. app->ingest stays valid for the HTTP threads until lf_ingest_free. */
void lf_ingest_stop(struct lf_app *app);
/* Frees the stopped writer; no HTTP thread may use it any more. */
void lf_ingest_free(struct lf_app *app);

#endif
