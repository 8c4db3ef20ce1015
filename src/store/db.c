/* The SQL layer: the connection pool and the per-connection statement cache, over an engine.
 *
 * DESIGN / THREAD SAFETY
 * A connection is used by one thread at a time: whoever acquired it. With a single-writer
 * engine (SQLite) the process keeps one writer connection behind writer_lock, so writes are
 * serialised here rather than by the engine's busy loop, and any number of reader
 * connections in a pool behind pool_lock (a reader waits on pool_cond when all are lent and
 * the pool is at max_readers). With a multi-writer engine every connection comes from the
 * pool and may write. The statement cache lives on the connection, so it needs no lock. */
#include "store/db.h"
#include "store/db_engine.h"
#include "core/log.h"
#include "core/mem.h"

#include <pthread.h>
#include <stdio.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define STMT_CACHE 128

struct lf_stmt {
    struct lf_conn *conn;
    void *h;       /* the engine's statement */
    char *sql;     /* owned copy, the cache key */
    uint64_t hash; /* of sql */
};

struct lf_conn {
    struct lf_db *db;
    void *h;                          /* the engine's connection */
    int writer;                       /* 1 for the single writer */
    int in_tx;                        /* a transaction is open */
    struct lf_stmt cache[STMT_CACHE]; /* open addressing on hash */
    unsigned evict;                   /* next slot to evict when the cache is full */
    struct lf_conn *next_free;        /* pool free list */
};

struct lf_db {
    const struct lf_db_engine *eng;
    char *url;
    struct lf_db_opts opts;
    struct lf_conn *writer;      /* single-writer engines only */
    pthread_mutex_t writer_lock; /* held while the writer is lent */
    pthread_mutex_t pool_lock;   /* protects free, count */
    pthread_cond_t pool_cond;    /* signalled when a pooled connection comes back */
    struct lf_conn *free;        /* idle pooled connections */
    struct lf_conn **all;        /* every pooled connection, for close */
    int count;                   /* pooled connections open */
};

static int conn_open(struct lf_db *db, int writer, struct lf_conn **out, struct lf_err *err)
{
    void *h = NULL;
    int rc = db->eng->connect(db->url, &db->opts, writer, &h, err);
    if (rc < 0) return rc;
    struct lf_conn *c = lf_xcalloc(1, sizeof(*c));
    c->db = db;
    c->h = h;
    c->writer = writer;
    *out = c;
    return 0;
}

static void conn_close(struct lf_conn *c)
{
    for (int i = 0; i < STMT_CACHE; i++) {
        if (c->cache[i].h) c->db->eng->finalize(c->cache[i].h);
        free(c->cache[i].sql);
    }
    c->db->eng->disconnect(c->h);
    free(c);
}

int lf_db_open(const char *url, const struct lf_db_opts *opts, struct lf_db **out,
               struct lf_err *err)
{
    if (strncmp(url, "postgres://", 11) == 0 || strncmp(url, "postgresql://", 13) == 0)
        return lf_err_set(err, -LF_EINVAL,
                          "the PostgreSQL engine is not built yet; use a SQLite file path");
    struct lf_db *db = lf_xcalloc(1, sizeof(*db));
    db->eng = &lf_db_sqlite;
    db->url = lf_xstrdup(url);
    db->opts = *opts;
    if (db->opts.max_readers < 1) db->opts.max_readers = 8;
    db->all = lf_xcalloc((size_t)db->opts.max_readers, sizeof(*db->all));
    pthread_mutex_init(&db->writer_lock, NULL);
    pthread_mutex_init(&db->pool_lock, NULL);
    pthread_cond_init(&db->pool_cond, NULL);
    if (db->eng->single_writer) {
        int rc = conn_open(db, 1, &db->writer, err);
        if (rc < 0) {
            lf_db_close(db);
            return rc;
        }
    }
    *out = db;
    return 0;
}

void lf_db_close(struct lf_db *db)
{
    if (db == NULL) return;
    if (db->writer) conn_close(db->writer);
    for (int i = 0; i < db->count; i++) conn_close(db->all[i]);
    free(db->all);
    pthread_mutex_destroy(&db->writer_lock);
    pthread_mutex_destroy(&db->pool_lock);
    pthread_cond_destroy(&db->pool_cond);
    free(db->url);
    free(db);
}

int lf_db_check(struct lf_db *db, struct lf_err *err)
{
    struct lf_conn *c = lf_db_acquire(db, LF_DB_READ, err);
    if (c == NULL) return -LF_ESTORE;
    int64_t one = 0;
    int rc = lf_db_int(c, err, &one, "SELECT count(*) FROM tenants", NULL);
    if (rc == LF_DB_ROW)
        rc = lf_db_conn_check(c, err);
    else if (rc >= 0)
        rc = -LF_ESTORE;
    lf_db_release(c);
    return rc < 0 ? -LF_ESTORE : 0;
}

int lf_db_conn_check(struct lf_conn *c, struct lf_err *err)
{
    return c->db->eng->check(c->h, c->db->url, err);
}

const char *lf_db_engine_name(const struct lf_db *db)
{
    return db->eng->name;
}

struct lf_conn *lf_db_acquire(struct lf_db *db, enum lf_db_mode mode, struct lf_err *err)
{
    if (mode == LF_DB_WRITE && db->eng->single_writer) {
        pthread_mutex_lock(&db->writer_lock);
        return db->writer;
    }
    pthread_mutex_lock(&db->pool_lock);
    for (;;) {
        if (db->free) {
            struct lf_conn *c = db->free;
            db->free = c->next_free;
            pthread_mutex_unlock(&db->pool_lock);
            return c;
        }
        if (db->count < db->opts.max_readers) break;
        pthread_cond_wait(&db->pool_cond, &db->pool_lock);
    }
    db->count++; /* reserve the slot, open outside the lock */
    pthread_mutex_unlock(&db->pool_lock);
    struct lf_conn *c = NULL;
    int rc = conn_open(db, !db->eng->single_writer, &c, err);
    pthread_mutex_lock(&db->pool_lock);
    if (rc < 0) {
        db->count--;
        pthread_cond_signal(&db->pool_cond);
        pthread_mutex_unlock(&db->pool_lock);
        lf_log_error("store connection failed", "{s:s}", "error", err ? err->msg : "");
        return NULL;
    }
    for (int i = 0; i < db->opts.max_readers; i++)
        if (db->all[i] == NULL) {
            db->all[i] = c;
            break;
        }
    pthread_mutex_unlock(&db->pool_lock);
    return c;
}

void lf_db_release(struct lf_conn *c)
{
    if (c == NULL) return;
    struct lf_db *db = c->db;
    if (c->in_tx) lf_db_rollback(c);
    if (c->writer && db->eng->single_writer) {
        pthread_mutex_unlock(&db->writer_lock);
        return;
    }
    pthread_mutex_lock(&db->pool_lock);
    c->next_free = db->free;
    db->free = c;
    pthread_cond_signal(&db->pool_cond);
    pthread_mutex_unlock(&db->pool_lock);
}

int lf_db_exec(struct lf_conn *c, const char *sql, struct lf_err *err)
{
    return c->db->eng->exec(c->h, sql, err);
}

int lf_db_begin(struct lf_conn *c)
{
    int rc = lf_db_exec(c, c->writer ? c->db->eng->begin_sql : "BEGIN", NULL);
    if (rc == 0) c->in_tx = 1;
    return rc;
}

int lf_db_commit(struct lf_conn *c)
{
    int rc = lf_db_exec(c, "COMMIT", NULL);
    if (rc < 0) lf_db_rollback(c);
    c->in_tx = 0;
    return rc;
}

int lf_db_rollback(struct lf_conn *c)
{
    c->in_tx = 0;
    return lf_db_exec(c, "ROLLBACK", NULL);
}

/* Savepoints run once per event on the hot path: they go through the statement cache rather
 * than being parsed again each time. */
static int savepoint_cmd(struct lf_conn *c, const char *verb, const char *name)
{
    char sql[96];
    snprintf(sql, sizeof(sql), "%s %s", verb, name);
    struct lf_stmt *st = lf_db_prepare(c, sql, NULL);
    if (st == NULL) return -LF_EINTERNAL;
    int rc = lf_stmt_step(st);
    lf_stmt_done(st);
    return rc < 0 ? rc : 0;
}

int lf_db_savepoint(struct lf_conn *c, const char *name)
{
    return savepoint_cmd(c, "SAVEPOINT", name);
}

int lf_db_savepoint_release(struct lf_conn *c, const char *name)
{
    return savepoint_cmd(c, "RELEASE SAVEPOINT", name);
}

int lf_db_savepoint_rollback(struct lf_conn *c, const char *name)
{
    return savepoint_cmd(c, "ROLLBACK TO SAVEPOINT", name);
}

static uint64_t hash_sql(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

struct lf_stmt *lf_db_prepare(struct lf_conn *c, const char *sql, struct lf_err *err)
{
    uint64_t h = hash_sql(sql);
    unsigned start = (unsigned)(h % STMT_CACHE);
    struct lf_stmt *slot = NULL;
    for (unsigned i = 0; i < STMT_CACHE; i++) {
        struct lf_stmt *s = &c->cache[(start + i) % STMT_CACHE];
        if (s->h == NULL) {
            slot = s;
            break;
        }
        if (s->hash == h && strcmp(s->sql, sql) == 0) {
            c->db->eng->reset(s->h);
            return s;
        }
    }
    if (slot == NULL) { /* full: evict one, round robin */
        slot = &c->cache[c->evict++ % STMT_CACHE];
        c->db->eng->finalize(slot->h);
        free(slot->sql);
        memset(slot, 0, sizeof(*slot));
    }
    void *st = NULL;
    if (c->db->eng->prepare(c->h, sql, &st, err) < 0) {
        lf_log_error("sql does not compile", "{s:s, s:s}", "sql", sql, "error",
                     c->db->eng->errmsg(c->h));
        return NULL;
    }
    slot->conn = c;
    slot->h = st;
    slot->sql = lf_xstrdup(sql);
    slot->hash = h;
    return slot;
}

static int bind_va(struct lf_stmt *st, const char *fmt, va_list ap)
{
    const struct lf_db_engine *e = st->conn->db->eng;
    int rc = 0;
    for (int i = 0; fmt && fmt[i] && rc == 0; i++) {
        int idx = i + 1;
        switch (fmt[i]) {
        case 's': {
            const char *s = va_arg(ap, const char *);
            rc = s ? e->bind_text(st->h, idx, s) : e->bind_null(st->h, idx);
            break;
        }
        case 'I': rc = e->bind_int(st->h, idx, va_arg(ap, int64_t)); break;
        case 'i': rc = e->bind_int(st->h, idx, va_arg(ap, int)); break;
        case 'N': {
            int64_t v = va_arg(ap, int64_t);
            rc = v < 0 ? e->bind_null(st->h, idx) : e->bind_int(st->h, idx, v);
            break;
        }
        case 'n': rc = e->bind_null(st->h, idx); break;
        default: rc = -LF_EINTERNAL;
        }
    }
    return rc;
}

int lf_stmt_bind(struct lf_stmt *st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = bind_va(st, fmt, ap);
    va_end(ap);
    return rc;
}

int lf_stmt_bind_text(struct lf_stmt *st, int idx, const char *s)
{
    const struct lf_db_engine *e = st->conn->db->eng;
    return s ? e->bind_text(st->h, idx, s) : e->bind_null(st->h, idx);
}

int lf_stmt_bind_int(struct lf_stmt *st, int idx, int64_t v)
{
    return st->conn->db->eng->bind_int(st->h, idx, v);
}

int lf_stmt_bind_null(struct lf_stmt *st, int idx)
{
    return st->conn->db->eng->bind_null(st->h, idx);
}

int lf_stmt_step(struct lf_stmt *st)
{
    return st->conn->db->eng->step(st->h);
}

void lf_stmt_done(struct lf_stmt *st)
{
    if (st) st->conn->db->eng->reset(st->h);
}

int lf_stmt_columns(struct lf_stmt *st)
{
    return st->conn->db->eng->columns(st->h);
}

const char *lf_stmt_name(struct lf_stmt *st, int col)
{
    return st->conn->db->eng->name_of(st->h, col);
}

int lf_stmt_isnull(struct lf_stmt *st, int col)
{
    return st->conn->db->eng->isnull(st->h, col);
}

int64_t lf_stmt_int(struct lf_stmt *st, int col)
{
    return st->conn->db->eng->col_int(st->h, col);
}

const char *lf_stmt_text(struct lf_stmt *st, int col)
{
    return st->conn->db->eng->col_text(st->h, col);
}

int64_t lf_db_changes(struct lf_conn *c)
{
    return c->db->eng->changes(c->h);
}

const char *lf_db_errmsg(struct lf_conn *c)
{
    return c->db->eng->errmsg(c->h);
}

static int step_error(struct lf_conn *c, struct lf_err *err, int rc)
{
    return lf_err_set(err, rc, "%s: %s", lf_strerror(rc), lf_db_errmsg(c));
}

int lf_db_run(struct lf_conn *c, struct lf_err *err, const char *sql, const char *fmt, ...)
{
    struct lf_stmt *st = lf_db_prepare(c, sql, err);
    if (st == NULL) return -LF_EINTERNAL;
    va_list ap;
    va_start(ap, fmt);
    int rc = bind_va(st, fmt, ap);
    va_end(ap);
    if (rc == 0) {
        while ((rc = lf_stmt_step(st)) == LF_DB_ROW) {
        }
    }
    if (rc < 0)
        rc = step_error(c, err, rc);
    else
        rc = (int)c->db->eng->changes(c->h);
    lf_stmt_done(st);
    return rc;
}

int lf_db_int(struct lf_conn *c, struct lf_err *err, int64_t *out, const char *sql, const char *fmt,
              ...)
{
    struct lf_stmt *st = lf_db_prepare(c, sql, err);
    if (st == NULL) return -LF_EINTERNAL;
    va_list ap;
    va_start(ap, fmt);
    int rc = bind_va(st, fmt, ap);
    va_end(ap);
    if (rc == 0) rc = lf_stmt_step(st);
    if (rc == LF_DB_ROW)
        *out = lf_stmt_int(st, 0);
    else if (rc < 0)
        rc = step_error(c, err, rc);
    lf_stmt_done(st);
    return rc;
}
