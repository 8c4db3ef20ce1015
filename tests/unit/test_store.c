/* Unit tests for src/store and the processing framework: the SQL layer on a real SQLite file,
 * migrations, seeding, savepoints, error mapping, and a worker batch with the test stage. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "app.h"
#include "core/crypto.h"
#include "core/timeutil.h"
#include "engine/worker.h"
#include "store/migrate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct fixture {
    char path[64];
    struct lf_app app;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    snprintf(f->path, sizeof f->path, "/tmp/lf-unit-%d-XXXXXX", (int)getpid());
    int fd = mkstemp(f->path);
    close(fd);
    struct lf_err err = {0};
    assert_int_equal(lf_config_load(&f->app.cfg, &err), 0);
    f->app.cfg.test_stages = 1;
    f->app.cfg.retry_base_ms = 1000;
    f->app.cfg.max_attempts = 3;
    struct lf_db_opts opts = {0, 4};
    assert_int_equal(lf_db_open(f->path, &opts, &f->app.db, &err), 0);
    int applied = -1;
    assert_int_equal(lf_migrate(f->app.db, &applied, &err), 0);
    assert_true(applied >= 1);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    lf_db_close(f->app.db);
    lf_config_free(&f->app.cfg);
    char side[96];
    unlink(f->path);
    snprintf(side, sizeof side, "%s-wal", f->path);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", f->path);
    unlink(side);
    free(f);
    return 0;
}

static void migrate_is_idempotent(void **state)
{
    struct fixture *f = *state;
    int applied = -1;
    struct lf_err err = {0};
    assert_int_equal(lf_migrate(f->app.db, &applied, &err), 0);
    assert_int_equal(applied, 0);
}

static int64_t count(struct lf_db *db, const char *sql, const char *tenant)
{
    struct lf_conn *c = lf_db_acquire(db, LF_DB_READ, NULL);
    int64_t n = -1;
    assert_int_equal(lf_db_int(c, NULL, &n, sql, "s", tenant), LF_DB_ROW);
    lf_db_release(c);
    return n;
}

static void seed_loads_defaults_once(void **state)
{
    struct fixture *f = *state;
    char id[40], again[40];
    struct lf_err err = {0};
    assert_int_equal(lf_seed_tenant(f->app.db, "default", "Default", id, &err), 0);
    assert_int_equal(count(f->app.db, "SELECT count(*) FROM pipelines WHERE tenant_id = ?", id), 4);
    int64_t stages =
        count(f->app.db, "SELECT count(*) FROM pipeline_stages WHERE tenant_id = ?", id);
    int64_t rules = count(f->app.db, "SELECT count(*) FROM scoring_rules WHERE tenant_id = ?", id);
    int64_t intents = count(f->app.db, "SELECT count(*) FROM intent_rules WHERE tenant_id = ?", id);
    int64_t team = count(f->app.db, "SELECT count(*) FROM team_members WHERE tenant_id = ?", id);
    int64_t settings = count(f->app.db, "SELECT count(*) FROM settings WHERE tenant_id = ?", id);
    assert_true(stages >= 20 && rules >= 10 && intents >= 6 && team >= 4 && settings >= 4);
    assert_int_equal(lf_seed_tenant(f->app.db, "default", "Default", again, &err), 0);
    assert_string_equal(id, again);
    assert_int_equal(count(f->app.db, "SELECT count(*) FROM scoring_rules WHERE tenant_id = ?", id),
                     rules);
    assert_int_equal(lf_tenant_lookup(f->app.db, "default", NULL, &err), LF_DB_ROW);
    assert_int_equal(lf_tenant_lookup(f->app.db, "nobody", NULL, &err), LF_DB_DONE);
}

static void bind_step_and_types(void **state)
{
    struct fixture *f = *state;
    struct lf_conn *c = lf_db_acquire(f->app.db, LF_DB_WRITE, NULL);
    assert_int_equal(lf_db_exec(c, "CREATE TABLE t (a TEXT, b BIGINT)", NULL), 0);
    assert_int_equal(lf_db_run(c, NULL, "INSERT INTO t VALUES (?, ?)", "sI", "x", (int64_t)1 << 40),
                     1);
    assert_int_equal(lf_db_run(c, NULL, "INSERT INTO t VALUES (?, ?)", "sN", NULL, (int64_t)-1), 1);
    struct lf_stmt *st = lf_db_prepare(c, "SELECT a, b FROM t ORDER BY rowid", NULL);
    assert_int_equal(lf_stmt_step(st), LF_DB_ROW);
    assert_string_equal(lf_stmt_text(st, 0), "x");
    assert_int_equal(lf_stmt_int(st, 1), (int64_t)1 << 40);
    assert_int_equal(lf_stmt_step(st), LF_DB_ROW);
    assert_true(lf_stmt_isnull(st, 0));
    assert_true(lf_stmt_isnull(st, 1));
    assert_null(lf_stmt_text(st, 0));
    assert_int_equal(lf_stmt_step(st), LF_DB_DONE);
    lf_stmt_done(st);
    /* the same SQL comes back from the cache, reset */
    assert_ptr_equal(lf_db_prepare(c, "SELECT a, b FROM t ORDER BY rowid", NULL), st);
    lf_stmt_done(st);
    struct lf_err err = {0};
    assert_null(lf_db_prepare(c, "SELEKT nonsense", &err));
    assert_true(err.code < 0);
    lf_db_release(c);
}

static void savepoints_and_constraints(void **state)
{
    struct fixture *f = *state;
    struct lf_conn *c = lf_db_acquire(f->app.db, LF_DB_WRITE, NULL);
    lf_db_exec(c, "CREATE TABLE u (k TEXT PRIMARY KEY)", NULL);
    assert_int_equal(lf_db_begin(c), 0);
    assert_int_equal(lf_db_run(c, NULL, "INSERT INTO u VALUES (?)", "s", "a"), 1);
    assert_int_equal(lf_db_savepoint(c, "ev"), 0);
    assert_int_equal(lf_db_run(c, NULL, "INSERT INTO u VALUES (?)", "s", "b"), 1);
    assert_int_equal(lf_db_savepoint_rollback(c, "ev"), 0);
    assert_int_equal(lf_db_savepoint_release(c, "ev"), 0);
    struct lf_err err = {0};
    assert_int_equal(lf_db_run(c, &err, "INSERT INTO u VALUES (?)", "s", "a"), -LF_ECONSTRAINT);
    lf_err_clear(&err);
    assert_int_equal(lf_db_commit(c), 0);
    int64_t n = 0;
    assert_int_equal(lf_db_int(c, NULL, &n, "SELECT count(*) FROM u", NULL), LF_DB_ROW);
    assert_int_equal(n, 1); /* a kept, b rolled back to the savepoint */
    lf_db_release(c);
}

static void readers_cannot_write(void **state)
{
    struct fixture *f = *state;
    struct lf_conn *c = lf_db_acquire(f->app.db, LF_DB_READ, NULL);
    struct lf_err err = {0};
    assert_true(lf_db_run(c, &err, "CREATE TABLE nope (a TEXT)", NULL) < 0);
    lf_err_clear(&err);
    lf_db_release(c);
}

static void insert_event(struct lf_db *db, const char *tenant, const char *metadata, char *id)
{
    struct lf_conn *c = lf_db_acquire(db, LF_DB_WRITE, NULL);
    int64_t now = lf_now_ms();
    lf_uuid7(id);
    assert_int_equal(
        lf_db_run(c, NULL,
                  "INSERT INTO events (id, tenant_id, source, event_type, idempotency_key,"
                  " metadata, occurred_at, received_at, next_attempt_at, updated_at)"
                  " VALUES (?, ?, 'test', 'unit', ?, ?, ?, ?, ?, ?)",
                  "ssssIIII", id, tenant, id, metadata, now, now, now, now),
        1);
    lf_db_release(c);
}

static void event_row(struct lf_db *db, const char *id, char *status, int *attempts, int *due)
{
    struct lf_conn *c = lf_db_acquire(db, LF_DB_READ, NULL);
    struct lf_stmt *st = lf_db_prepare(
        c, "SELECT status, attempts, next_attempt_at IS NOT NULL FROM events WHERE id = ?", NULL);
    lf_stmt_bind(st, "s", id);
    assert_int_equal(lf_stmt_step(st), LF_DB_ROW);
    snprintf(status, 16, "%s", lf_stmt_text(st, 0));
    *attempts = (int)lf_stmt_int(st, 1);
    *due = (int)lf_stmt_int(st, 2);
    lf_stmt_done(st);
    lf_db_release(c);
}

/* A failing event does not stop the others, is retried with backoff, and stays failed after
 * max_attempts. */
static void worker_batch_failures_and_retries(void **state)
{
    struct fixture *f = *state;
    char ok[40], flaky[40], bad[40], status[16];
    int attempts, due;
    insert_event(f->app.db, "t1", "{}", ok);
    insert_event(f->app.db, "t1", "{\"test_fail_times\": 1}", flaky);
    insert_event(f->app.db, "t1", "{\"test_fail\": true}", bad);
    assert_int_equal(lf_workers_run_batch(&f->app, 100), 3);
    event_row(f->app.db, ok, status, &attempts, &due);
    assert_string_equal(status, "processed");
    assert_int_equal(attempts, 1);
    assert_false(due);
    event_row(f->app.db, flaky, status, &attempts, &due);
    assert_string_equal(status, "failed");
    assert_true(due);
    /* not due yet: the retry waits retry_base_ms */
    assert_int_equal(lf_workers_run_batch(&f->app, 100), 0);
    f->app.cfg.retry_base_ms = 0; /* make retries due at once for the rest of the test */
    struct lf_conn *c = lf_db_acquire(f->app.db, LF_DB_WRITE, NULL);
    lf_db_run(c, NULL, "UPDATE events SET next_attempt_at = 0 WHERE next_attempt_at IS NOT NULL",
              NULL);
    lf_db_release(c);
    assert_int_equal(lf_workers_run_batch(&f->app, 100), 2);
    event_row(f->app.db, flaky, status, &attempts, &due);
    assert_string_equal(status, "processed");
    assert_int_equal(attempts, 2);
    assert_int_equal(lf_workers_run_batch(&f->app, 100), 1); /* bad: third and last try */
    event_row(f->app.db, bad, status, &attempts, &due);
    assert_string_equal(status, "failed");
    assert_int_equal(attempts, 3);
    assert_false(due); /* stays failed for an operator */
    assert_int_equal(lf_workers_run_batch(&f->app, 100), 0);
}

static void retry_delays_grow(void **state)
{
    struct lf_config cfg = {0};
    cfg.retry_base_ms = 2000;
    assert_int_equal(lf_retry_delay_ms(&cfg, 1), 2000);
    assert_int_equal(lf_retry_delay_ms(&cfg, 2), 8000);
    assert_int_equal(lf_retry_delay_ms(&cfg, 3), 32000);
    assert_int_equal(lf_retry_delay_ms(&cfg, 30), 3600000);
    (void)state;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(migrate_is_idempotent, setup, teardown),
        cmocka_unit_test_setup_teardown(seed_loads_defaults_once, setup, teardown),
        cmocka_unit_test_setup_teardown(bind_step_and_types, setup, teardown),
        cmocka_unit_test_setup_teardown(savepoints_and_constraints, setup, teardown),
        cmocka_unit_test_setup_teardown(readers_cannot_write, setup, teardown),
        cmocka_unit_test_setup_teardown(worker_batch_failures_and_retries, setup, teardown),
        cmocka_unit_test(retry_delays_grow),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
