/* The SQLite engine: WAL, synchronous FULL (or NORMAL), a busy timeout, and the mapping of
 * SQLite's result codes onto LF_E… codes. The only file that includes sqlite3.h.
 *
 * THREAD SAFETY: connections are opened with SQLITE_OPEN_NOMUTEX; the SQL layer guarantees
 * one thread at a time per connection. */
#include "store/db_engine.h"
#include "core/log.h"
#include "core/mem.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define BUSY_TIMEOUT_MS 10000

/* A connection: the SQLite handle and the identity of the file it opened. */
struct sq_conn {
    sqlite3 *db;
    dev_t dev;
    ino_t ino;
};

static int map_rc(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_OK: return 0;
    case SQLITE_ROW: return LF_DB_ROW;
    case SQLITE_DONE: return LF_DB_DONE;
    case SQLITE_CONSTRAINT: return -LF_ECONSTRAINT;
    case SQLITE_BUSY:
    case SQLITE_LOCKED: return -LF_EBUSY;
    case SQLITE_NOMEM: return -LF_ENOMEM;
    case SQLITE_TOOBIG: return -LF_ETOOLARGE;
    case SQLITE_FULL:
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN:
    case SQLITE_READONLY:
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
    case SQLITE_PROTOCOL: return -LF_ESTORE;
    default: return -LF_EINTERNAL;
    }
}

static int exec_raw(sqlite3 *h, const char *sql, struct lf_err *err)
{
    char *msg = NULL;
    int rc = sqlite3_exec(h, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        int code = map_rc(rc);
        lf_err_set(err, code, "%s", msg ? msg : sqlite3_errmsg(h));
        sqlite3_free(msg);
        return code;
    }
    return 0;
}

static int sq_exec(void *h, const char *sql, struct lf_err *err)
{
    return exec_raw(((struct sq_conn *)h)->db, sql, err);
}

/* Process-wide settings, made once before the first connection: connections are never
 * shared between threads at once (the SQL layer lends them), and the allocator's statistics,
 * which take a global mutex on every allocation, are not needed. */
static pthread_once_t configured = PTHREAD_ONCE_INIT;

static void configure(void)
{
    sqlite3_config(SQLITE_CONFIG_MULTITHREAD);
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    sqlite3_initialize();
}

static int sq_connect(const char *url, const struct lf_db_opts *opts, int writer, void **out,
                      struct lf_err *err)
{
    pthread_once(&configured, configure);
    sqlite3 *h = NULL;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    int rc = sqlite3_open_v2(url, &h, flags, NULL);
    if (rc != SQLITE_OK) {
        lf_err_set(err, -LF_ESTORE, "cannot open %s: %s", url, h ? sqlite3_errmsg(h) : "");
        sqlite3_close(h);
        return -LF_ESTORE;
    }
    sqlite3_busy_timeout(h, BUSY_TIMEOUT_MS);
    sqlite3_extended_result_codes(h, 1);
    char pragmas[512];
    snprintf(pragmas, sizeof(pragmas),
             "PRAGMA journal_mode=WAL; PRAGMA synchronous=%s; PRAGMA foreign_keys=OFF;"
             "PRAGMA temp_store=MEMORY; PRAGMA cache_size=-65536; PRAGMA mmap_size=268435456;"
             "%s",
             opts->sync_full ? "FULL" : "NORMAL", writer ? "" : "PRAGMA query_only=1;");
    rc = exec_raw(h, pragmas, err);
    struct stat st;
    if (rc == 0 && stat(url, &st) != 0) rc = lf_err_set(err, -LF_ESTORE, "cannot stat %s", url);
    if (rc < 0) {
        sqlite3_close(h);
        return rc;
    }
    struct sq_conn *c = lf_xcalloc(1, sizeof(*c));
    c->db = h;
    c->dev = st.st_dev;
    c->ino = st.st_ino;
    *out = c;
    return 0;
}

static void sq_disconnect(void *h)
{
    struct sq_conn *c = h;
    sqlite3_close(c->db);
    free(c);
}

static int sq_prepare(void *h, const char *sql, void **st, struct lf_err *err)
{
    sqlite3 *db = ((struct sq_conn *)h)->db;
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, NULL);
    if (rc != SQLITE_OK) return lf_err_set(err, map_rc(rc), "%s", sqlite3_errmsg(db));
    *st = s;
    return 0;
}

static void sq_finalize(void *st)
{
    sqlite3_finalize(st);
}

static int sq_bind_text(void *st, int idx, const char *s)
{
    return map_rc(sqlite3_bind_text(st, idx, s, -1, SQLITE_TRANSIENT));
}

static int sq_bind_int(void *st, int idx, int64_t v)
{
    return map_rc(sqlite3_bind_int64(st, idx, v));
}

static int sq_bind_null(void *st, int idx)
{
    return map_rc(sqlite3_bind_null(st, idx));
}

static int sq_step(void *st)
{
    return map_rc(sqlite3_step(st));
}

static void sq_reset(void *st)
{
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

static int sq_columns(void *st)
{
    return sqlite3_column_count(st);
}

static const char *sq_name(void *st, int col)
{
    return sqlite3_column_name(st, col);
}

static int sq_isnull(void *st, int col)
{
    return sqlite3_column_type(st, col) == SQLITE_NULL;
}

static int64_t sq_col_int(void *st, int col)
{
    return sqlite3_column_int64(st, col);
}

static const char *sq_col_text(void *st, int col)
{
    return (const char *)sqlite3_column_text(st, col);
}

static int64_t sq_changes(void *h)
{
    return sqlite3_changes64(((struct sq_conn *)h)->db);
}

static const char *sq_errmsg(void *h)
{
    return sqlite3_errmsg(((struct sq_conn *)h)->db);
}

/* The file at url must still be the one this connection has open: a database deleted or
 * replaced under a running server would take writes that no restart ever sees. */
static int sq_check(void *h, const char *url, struct lf_err *err)
{
    struct sq_conn *c = h;
    struct stat st;
    if (stat(url, &st) != 0)
        return lf_err_set(err, -LF_ESTORE, "the database file %s is gone", url);
    if (st.st_dev != c->dev || st.st_ino != c->ino)
        return lf_err_set(err, -LF_ESTORE, "the database file %s was replaced", url);
    return 0;
}

const struct lf_db_engine lf_db_sqlite = {
    .name = "sqlite",
    .single_writer = 1,
    .connect = sq_connect,
    .disconnect = sq_disconnect,
    .prepare = sq_prepare,
    .finalize = sq_finalize,
    .bind_text = sq_bind_text,
    .bind_int = sq_bind_int,
    .bind_null = sq_bind_null,
    .step = sq_step,
    .reset = sq_reset,
    .columns = sq_columns,
    .name_of = sq_name,
    .isnull = sq_isnull,
    .col_int = sq_col_int,
    .col_text = sq_col_text,
    .exec = sq_exec,
    .changes = sq_changes,
    .errmsg = sq_errmsg,
    .check = sq_check,
    .begin_sql = "BEGIN IMMEDIATE",
};
