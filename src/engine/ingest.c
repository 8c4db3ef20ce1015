/* Durable ingestion: request threads hand validated events to one writer that commits them
 * in batches (group commit) and then tells each request its outcome.
 *
 * DESIGN / THREAD SAFETY
 * `lock` protects the queue (head, tail, depth, stopping). Request threads append a job and
 * signal `cond`; the writer thread takes up to ingest_batch_max events' worth of whole jobs,
 * and, when ingest_wait_us is set and the batch is not full, waits that long for more.
 * Without a wait, batches still form: whatever arrives while one commit is being written to
 * disk goes into the next. The writer inserts the batch in one transaction on the store's
 * writer connection, commits (the commit is durable per LEADFLOW_SYNC), and only then calls
 * each job's done(), which resumes the waiting request: nothing is acknowledged before it is
 * on disk. If the transaction fails, every job in it learns the error and nothing of the
 * batch is stored. A repeated idempotency key is found by the unique index: within one
 * batch, the first copy is stored and the later ones are told the first one's id. */
#include "engine/ingest.h"
#include "engine/worker.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/metrics.h"
#include "core/timeutil.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct lf_ingest {
    struct lf_app *app;
    pthread_t thread;
    int joined; /* the thread has been joined (lf_ingest_stop ran) */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct lf_ingest_job *head, *tail;
    int depth;    /* events queued */
    int stopping; /* refuse submissions; exit once the queue is empty */
};

void lf_ingest_item_clear(struct lf_ingest_item *it)
{
    free(it->idempotency_key);
    free(it->source);
    free(it->event_type);
    free(it->identity);
    free(it->metadata);
    free(it->utm_source);
    free(it->utm_medium);
    free(it->utm_campaign);
    memset(it, 0, sizeof(*it));
}

int lf_ingest_submit(struct lf_ingest *ing, struct lf_ingest_job *job, struct lf_err *err)
{
    pthread_mutex_lock(&ing->lock);
    if (ing->stopping || ing->depth + job->n > ing->app->cfg.ingest_queue_max) {
        int stopping = ing->stopping;
        pthread_mutex_unlock(&ing->lock);
        lf_metrics_inc(LF_M_INGEST_QUEUE_FULL, 1);
        lf_err_set(err, -LF_EBUSY, "%s",
                   stopping ? "the server is shutting down" : "the ingest queue is full");
        if (err) err->retry_after_s = 1;
        return -LF_EBUSY;
    }
    job->next = NULL;
    if (ing->tail)
        ing->tail->next = job;
    else
        ing->head = job;
    ing->tail = job;
    ing->depth += job->n;
    pthread_cond_signal(&ing->cond);
    pthread_mutex_unlock(&ing->lock);
    return 0;
}

int lf_ingest_depth(struct lf_ingest *ing)
{
    pthread_mutex_lock(&ing->lock);
    int d = ing->depth;
    pthread_mutex_unlock(&ing->lock);
    return d;
}

static const char *const insert_sql =
    "INSERT INTO events (id, tenant_id, source, event_type, idempotency_key, origin, identity,"
    " metadata, utm_source, utm_medium, utm_campaign, occurred_at, received_at, status,"
    " next_attempt_at, updated_at)"
    " VALUES (?, ?, ?, ?, ?, 'external', ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?)"
    " ON CONFLICT (tenant_id, idempotency_key) DO NOTHING";

static const char *const existing_sql =
    "SELECT id FROM events WHERE tenant_id = ? AND idempotency_key = ?";

/* Inserts one item. Returns 0 or a store error. */
static int insert_item(struct lf_conn *c, const char *tenant_id, struct lf_ingest_item *it)
{
    struct lf_err err = {0};
    int changed = lf_db_run(c, &err, insert_sql, "ssssssssssIIII", it->id, tenant_id, it->source,
                            it->event_type, it->idempotency_key, it->identity, it->metadata,
                            it->utm_source, it->utm_medium, it->utm_campaign, it->occurred_at,
                            it->received_at, it->received_at, it->received_at);
    if (changed < 0) {
        lf_log_error("ingest insert failed", "{s:s, s:s}", "event_id", it->id, "error", err.msg);
        lf_err_clear(&err);
        return changed;
    }
    if (changed == 1) {
        it->outcome = LF_INGEST_STORED;
        return 0;
    }
    struct lf_stmt *st = lf_db_prepare(c, existing_sql, NULL);
    if (st == NULL) return -LF_EINTERNAL;
    lf_stmt_bind(st, "ss", tenant_id, it->idempotency_key);
    int rc = lf_stmt_step(st);
    if (rc == LF_DB_ROW) {
        snprintf(it->existing_id, sizeof it->existing_id, "%s", lf_stmt_text(st, 0));
        it->outcome = LF_INGEST_DUPLICATE;
        rc = 0;
    } else if (rc == LF_DB_DONE) {
        rc = -LF_EINTERNAL; /* a conflict without a row: cannot happen */
    }
    lf_stmt_done(st);
    return rc;
}

/* Commits the jobs of one batch; sets each item's outcome. */
static void write_batch(struct lf_ingest *ing, struct lf_ingest_job *jobs, int nevents)
{
    int64_t t0 = lf_mono_us();
    struct lf_err err = {0};
    int stored = 0, dups = 0;
    struct lf_conn *c = lf_db_acquire(ing->app->db, LF_DB_WRITE, &err);
    /* A store that is no longer the configured one (a deleted or replaced file) would take
     * the events and lose them: refuse instead. */
    int rc = c ? lf_db_conn_check(c, &err) : -LF_ESTORE;
    if (rc == 0) rc = lf_db_begin(c);
    for (struct lf_ingest_job *j = jobs; rc == 0 && j; j = j->next)
        for (int i = 0; rc == 0 && i < j->n; i++) rc = insert_item(c, j->tenant_id, &j->items[i]);
    if (rc == 0)
        rc = lf_db_commit(c);
    else if (c)
        lf_db_rollback(c);
    lf_db_release(c);
    if (rc < 0) {
        /* Nothing of this batch is stored; every request hears so. */
        lf_log_error("ingest commit failed", "{s:i, s:s}", "events", nevents, "error",
                     lf_strerror(rc));
        if (rc != -LF_EBUSY) rc = -LF_ESTORE;
    }
    for (struct lf_ingest_job *j = jobs; j; j = j->next)
        for (int i = 0; i < j->n; i++) {
            if (rc < 0)
                j->items[i].outcome = rc;
            else if (j->items[i].outcome == LF_INGEST_DUPLICATE)
                dups++;
            else
                stored++;
        }
    lf_err_clear(&err);
    double secs = (double)(lf_mono_us() - t0) / 1e6;
    lf_metrics_observe(LF_H_COMMIT_SECONDS, secs);
    lf_metrics_observe(LF_H_INGEST_BATCH, nevents);
    lf_metrics_inc(LF_M_INGEST_COMMITS, 1);
    lf_metrics_inc(LF_M_EVENTS_INGESTED, (uint64_t)stored);
    lf_metrics_inc(LF_M_EVENTS_DUPLICATE, (uint64_t)dups);
    if (stored && ing->app->workers) lf_workers_notify(ing->app->workers);
}

static void deadline_after(struct timespec *ts, int us)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_nsec += (long)us * 1000;
    ts->tv_sec += ts->tv_nsec / 1000000000;
    ts->tv_nsec %= 1000000000;
}

static void *writer_main(void *arg)
{
    struct lf_ingest *ing = arg;
    const struct lf_config *cfg = &ing->app->cfg;
    pthread_mutex_lock(&ing->lock);
    for (;;) {
        while (ing->head == NULL && !ing->stopping) pthread_cond_wait(&ing->cond, &ing->lock);
        if (ing->head == NULL && ing->stopping) break;
        if (cfg->ingest_wait_us > 0 && ing->depth < cfg->ingest_batch_max && !ing->stopping) {
            struct timespec until;
            deadline_after(&until, cfg->ingest_wait_us);
            while (ing->depth < cfg->ingest_batch_max && !ing->stopping &&
                   pthread_cond_timedwait(&ing->cond, &ing->lock, &until) != ETIMEDOUT) {
            }
        }
        /* Take whole jobs up to the batch size (a single larger job goes alone). */
        struct lf_ingest_job *first = ing->head, *last = first;
        int n = first->n;
        while (last->next && n + last->next->n <= cfg->ingest_batch_max) {
            last = last->next;
            n += last->n;
        }
        ing->head = last->next;
        if (ing->head == NULL) ing->tail = NULL;
        last->next = NULL;
        ing->depth -= n;
        pthread_mutex_unlock(&ing->lock);

        write_batch(ing, first, n);
        for (struct lf_ingest_job *j = first, *next; j; j = next) {
            next = j->next; /* done() may free the job */
            j->done(j);
        }
        pthread_mutex_lock(&ing->lock);
    }
    pthread_mutex_unlock(&ing->lock);
    return NULL;
}

int lf_ingest_start(struct lf_app *app, struct lf_err *err)
{
    struct lf_ingest *ing = lf_xcalloc(1, sizeof(*ing));
    ing->app = app;
    pthread_mutex_init(&ing->lock, NULL);
    pthread_cond_init(&ing->cond, NULL);
    if (pthread_create(&ing->thread, NULL, writer_main, ing) != 0) {
        free(ing);
        return lf_err_set(err, -LF_EINTERNAL, "cannot start the ingest writer");
    }
    app->ingest = ing;
    return 0;
}

void lf_ingest_stop(struct lf_app *app)
{
    struct lf_ingest *ing = app->ingest;
    if (ing == NULL || ing->joined) return;
    pthread_mutex_lock(&ing->lock);
    ing->stopping = 1;
    pthread_cond_signal(&ing->cond);
    pthread_mutex_unlock(&ing->lock);
    pthread_join(ing->thread, NULL);
    ing->joined = 1;
}

void lf_ingest_free(struct lf_app *app)
{
    struct lf_ingest *ing = app->ingest;
    if (ing == NULL) return;
    lf_ingest_stop(app);
    pthread_mutex_destroy(&ing->lock);
    pthread_cond_destroy(&ing->cond);
    free(ing);
    app->ingest = NULL;
}
