/* Pipeline workers: claim pending events in order and run them through the stages.
 *
 * DESIGN / THREAD SAFETY
 * A worker takes the store's writer connection, begins a transaction, claims the oldest due
 * events (pending ones, and failed ones whose retry time has come: the rows with
 * next_attempt_at set), runs each through the stages inside its own savepoint, records the
 * outcome on the event row, and commits. A failing stage rolls back only its event's
 * savepoint. On SQLite the writer is one connection, so batches run one at a time and the
 * events of one lead are processed in arrival order; with several workers the next batch
 * is claimed as soon as the previous commit is done. Because claim and processing share one
 * transaction, a crash rolls the claim back and the events are simply pending again; rows
 * marked 'processing' by an engine that claims separately are put back at start
 * (lf_workers_recover). `lock` protects stop and seq; the ingest writer bumps seq and
 * signals `cond` after each commit. */
#include "engine/worker.h"
#include "outbound/outbound.h"
#include "engine/emit.h"
#include "engine/stage.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/metrics.h"
#include "core/timeutil.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct lf_workers {
    struct lf_app *app;
    pthread_t *threads;
    int n;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int stop;
    unsigned seq; /* bumped by every notify */
};

#define IDLE_WAIT_MS       250
#define MAX_RETRY_DELAY_MS (3600 * 1000)

int64_t lf_retry_delay_ms(const struct lf_config *cfg, int attempts)
{
    int64_t d = cfg->retry_base_ms;
    for (int i = 1; i < attempts && d < MAX_RETRY_DELAY_MS; i++) d *= 4;
    return d < MAX_RETRY_DELAY_MS ? d : MAX_RETRY_DELAY_MS;
}

static json_t *parse_object(const char *text)
{
    json_t *v = text ? json_loads(text, 0, NULL) : NULL;
    if (!json_is_object(v)) {
        json_decref(v);
        v = json_object();
    }
    return v;
}

json_t *lf_event_identity(struct lf_event *ev)
{
    if (ev->identity == NULL) ev->identity = parse_object(ev->identity_text);
    return ev->identity;
}

json_t *lf_event_metadata(struct lf_event *ev)
{
    if (ev->metadata == NULL) ev->metadata = parse_object(ev->metadata_text);
    return ev->metadata;
}

static char *dup_or_null(const char *s)
{
    return s ? lf_xstrdup(s) : NULL;
}

static void event_free(struct lf_event *ev)
{
    free(ev->source);
    free(ev->event_type);
    free(ev->origin);
    free(ev->lead_id);
    free(ev->identity_text);
    free(ev->metadata_text);
    free(ev->utm_source);
    free(ev->utm_medium);
    free(ev->utm_campaign);
    free(ev->outcome);
    json_decref(ev->identity);
    json_decref(ev->metadata);
    json_decref(ev->result);
    json_decref(ev->lead_ctx);
    json_decref(ev->org_ctx);
}

static const char *const claim_sql =
    "SELECT id, tenant_id, source, event_type, origin, lead_id, identity, metadata, utm_source,"
    " utm_medium, utm_campaign, occurred_at, received_at, attempts FROM events"
    " WHERE next_attempt_at IS NOT NULL AND next_attempt_at <= ?"
    " ORDER BY next_attempt_at, id LIMIT ?";

static int claim(struct lf_conn *c, int64_t now, int limit, struct lf_event **out)
{
    struct lf_stmt *st = lf_db_prepare(c, claim_sql, NULL);
    if (st == NULL) return -LF_EINTERNAL;
    lf_stmt_bind(st, "Ii", now, limit);
    struct lf_event *evs = lf_xcalloc((size_t)limit, sizeof(*evs));
    int n = 0, rc = LF_DB_DONE;
    while (n < limit && (rc = lf_stmt_step(st)) == LF_DB_ROW) {
        struct lf_event *ev = &evs[n++];
        snprintf(ev->id, sizeof ev->id, "%s", lf_stmt_text(st, 0));
        snprintf(ev->tenant_id, sizeof ev->tenant_id, "%s", lf_stmt_text(st, 1));
        ev->source = dup_or_null(lf_stmt_text(st, 2));
        ev->event_type = dup_or_null(lf_stmt_text(st, 3));
        ev->origin = dup_or_null(lf_stmt_text(st, 4));
        ev->lead_id = dup_or_null(lf_stmt_text(st, 5));
        ev->identity_text = dup_or_null(lf_stmt_text(st, 6));
        ev->metadata_text = dup_or_null(lf_stmt_text(st, 7));
        ev->utm_source = dup_or_null(lf_stmt_text(st, 8));
        ev->utm_medium = dup_or_null(lf_stmt_text(st, 9));
        ev->utm_campaign = dup_or_null(lf_stmt_text(st, 10));
        ev->occurred_at = lf_stmt_int(st, 11);
        ev->received_at = lf_stmt_int(st, 12);
        ev->attempts = (int)lf_stmt_int(st, 13);
    }
    lf_stmt_done(st);
    if (n < limit && rc < 0) {
        for (int i = 0; i < n; i++) event_free(&evs[i]);
        free(evs);
        return rc;
    }
    *out = evs;
    return n;
}

/* Runs the stages for one event inside its savepoint and records the outcome. Returns 1 when
 * processed, 0 when it failed (recorded), negative when the store failed (batch aborts). */
static int process_one(struct lf_stage_ctx *ctx, const struct lf_stage *stages, struct lf_event *ev)
{
    struct lf_err err = {0};
    int rc = lf_db_savepoint(ctx->conn, "ev");
    if (rc < 0) return rc;
    lf_emit_capture_start(); /* the automate stage runs what this event's domain events trigger */
    ev->result = json_object();
    json_t *ran = json_array();
    int stage_rc = 0;
    int internal = ev->origin && strcmp(ev->origin, "internal") == 0;
    int stopped = 0;
    for (const struct lf_stage *s = stages; s->name && stage_rc >= 0; s++) {
        if (internal && !s->internal) continue;
        if (stopped && (!s->after_stop || (ev->outcome && !strcmp(ev->outcome, "suppressed"))))
            continue;
        json_array_append_new(ran, json_string(s->name));
        stage_rc = s->fn(ctx, ev, &err);
        if (stage_rc == LF_STAGE_STOP) {
            stopped = 1;
            stage_rc = 0;
        }
    }
    json_object_set_new(ev->result, "stages", ran);

    if (stage_rc >= 0) {
        rc = lf_db_savepoint_release(ctx->conn, "ev");
        json_object_set_new(ev->result, "outcome",
                            json_string(ev->outcome ? ev->outcome : "processed"));
        char *result = json_dumps(ev->result, JSON_COMPACT);
        if (rc == 0)
            rc = lf_db_run(ctx->conn, NULL,
                           "UPDATE events SET status = 'processed', attempts = attempts + 1,"
                           " next_attempt_at = NULL, error_message = NULL, processed_at = ?,"
                           " result = ?, lead_id = ?, updated_at = ? WHERE id = ?",
                           "IssIs", ctx->now, result, ev->lead_id, ctx->now, ev->id);
        free(result);
        lf_err_clear(&err);
        return rc < 0 ? rc : 1;
    }

    rc = lf_db_savepoint_rollback(ctx->conn, "ev");
    if (rc == 0) rc = lf_db_savepoint_release(ctx->conn, "ev");
    int attempts = ev->attempts + 1;
    int64_t next = attempts >= ctx->app->cfg.max_attempts
                       ? -1
                       : ctx->now + lf_retry_delay_ms(&ctx->app->cfg, attempts);
    const char *msg = err.msg[0] ? err.msg : lf_strerror(stage_rc);
    if (rc == 0)
        rc = lf_db_run(ctx->conn, NULL,
                       "UPDATE events SET status = 'failed', attempts = ?, next_attempt_at = ?,"
                       " error_message = ?, updated_at = ? WHERE id = ?",
                       "iNsIs", attempts, next, msg, ctx->now, ev->id);
    lf_log_warn("event failed", "{s:s, s:s, s:i, s:b}", "event_id", ev->id, "error", msg, "attempt",
                attempts, "final", next < 0);
    lf_err_clear(&err);
    return rc < 0 ? rc : 0;
}

int lf_workers_run_batch(struct lf_app *app, int limit)
{
    struct lf_err err = {0};
    struct lf_conn *c = lf_db_acquire(app->db, LF_DB_WRITE, &err);
    if (c == NULL) return -LF_ESTORE;
    struct lf_stage_ctx ctx = {.app = app, .conn = c, .now = lf_now_ms()};
    const struct lf_stage *stages = lf_stages(&app->cfg);
    struct lf_event *evs = NULL;
    int n = 0, processed = 0, failed = 0;
    int rc = lf_db_begin(c);
    if (rc == 0) rc = n = claim(c, ctx.now, limit, &evs);
    for (int i = 0; rc >= 0 && i < n; i++) {
        rc = process_one(&ctx, stages, &evs[i]);
        if (rc == 1)
            processed++;
        else if (rc == 0)
            failed++;
    }
    if (rc >= 0 && n > 0 && (rc = lf_db_commit(c)) == 0)
        lf_outbox_committed(); /* wake the dispatcher for what the batch wrote */
    else if (n == 0 && rc >= 0)
        rc = lf_db_rollback(c);
    lf_stage_ctx_end(&ctx);
    lf_emit_capture_stop();
    if (rc < 0) {
        lf_db_rollback(c);
        lf_log_error("processing batch failed", "{s:s, s:s}", "error", lf_strerror(rc), "detail",
                     lf_db_errmsg(c));
    }
    lf_db_release(c);
    for (int i = 0; i < n; i++) event_free(&evs[i]);
    free(evs);
    lf_err_clear(&err);
    if (rc < 0) return rc;
    if (n > 0) {
        lf_metrics_inc(LF_M_EVENTS_PROCESSED, (uint64_t)processed);
        lf_metrics_inc(LF_M_EVENTS_FAILED, (uint64_t)failed);
        lf_metrics_observe(LF_H_PROCESS_BATCH, n);
    }
    return n;
}

int lf_workers_recover(struct lf_app *app, struct lf_err *err)
{
    struct lf_conn *c = lf_db_acquire(app->db, LF_DB_WRITE, err);
    if (c == NULL) return -LF_ESTORE;
    int64_t now = lf_now_ms();
    int rc = lf_db_run(c, err,
                       "UPDATE events SET status = 'pending', next_attempt_at = ?, updated_at = ?"
                       " WHERE status = 'processing'",
                       "II", now, now);
    lf_db_release(c);
    if (rc > 0) lf_log_info("recovered events left processing", "{s:i}", "events", rc);
    return rc;
}

static void *worker_main(void *arg)
{
    struct lf_workers *w = arg;
    pthread_mutex_lock(&w->lock);
    while (!w->stop) {
        unsigned seen = w->seq;
        pthread_mutex_unlock(&w->lock);
        int n = lf_workers_run_batch(w->app, w->app->cfg.batch_size);
        pthread_mutex_lock(&w->lock);
        if (n > 0 || w->stop) continue;
        if (w->seq != seen && n == 0) continue;
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        int wait_ms = n < 0 ? 1000 : IDLE_WAIT_MS;
        until.tv_nsec += (long)wait_ms * 1000000;
        until.tv_sec += until.tv_nsec / 1000000000;
        until.tv_nsec %= 1000000000;
        pthread_cond_timedwait(&w->cond, &w->lock, &until);
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

int lf_workers_start(struct lf_app *app, struct lf_err *err)
{
    struct lf_workers *w = lf_xcalloc(1, sizeof(*w));
    w->app = app;
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cond, NULL);
    w->threads = lf_xcalloc((size_t)(app->cfg.workers ? app->cfg.workers : 1), sizeof(pthread_t));
    app->workers = w;
    for (int i = 0; i < app->cfg.workers; i++) {
        if (pthread_create(&w->threads[i], NULL, worker_main, w) != 0)
            return lf_err_set(err, -LF_EINTERNAL, "cannot start worker %d", i);
        w->n++;
    }
    return 0;
}

void lf_workers_notify(struct lf_workers *w)
{
    pthread_mutex_lock(&w->lock);
    w->seq++;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

void lf_workers_stop(struct lf_app *app)
{
    struct lf_workers *w = app->workers;
    if (w == NULL) return;
    pthread_mutex_lock(&w->lock);
    w->stop = 1;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
    for (int i = 0; i < w->n; i++) pthread_join(w->threads[i], NULL);
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->cond);
    free(w->threads);
    free(w);
    app->workers = NULL;
}
