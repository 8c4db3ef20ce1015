/* The SQL layer: one interface over the SQLite and PostgreSQL engines.
 *
 * Callers write portable SQL with `?` placeholders, prepare it on a connection they acquired
 * (statements are cached per connection), bind values, and step through rows. Nothing here
 * names an engine; src/store/db_sqlite.c (and later db_pg.c) implement struct lf_db_engine.
 *
 * Ownership: a connection is lent by lf_db_acquire and returned by lf_db_release; a statement
 * is lent by lf_db_prepare and belongs to the connection's cache; lf_stmt_done makes it
 * reusable. Text returned by lf_stmt_text is valid until the next step or lf_stmt_done. */
#ifndef LF_DB_H
#define LF_DB_H

#include "core/err.h"

#include <stddef.h>
#include <stdint.h>

struct lf_db;
struct lf_conn;
struct lf_stmt;

enum lf_db_mode {
    LF_DB_READ,  /* a reader: sees committed data, may not write */
    LF_DB_WRITE, /* the writer: on SQLite one at a time across the process */
};

#define LF_DB_DONE 0
#define LF_DB_ROW  1

struct lf_db_opts {
    int sync_full;   /* 1: every commit reaches the disk before it returns */
    int max_readers; /* reader connections kept open at most */
};

/* Opens the store named by url (a file path; "postgres://…" once that engine exists).
 * Returns 0 and sets *out, or a negative code with the reason in err. */
int lf_db_open(const char *url, const struct lf_db_opts *opts, struct lf_db **out,
               struct lf_err *err);
/* Closes every connection. No connection may be lent out. */
void lf_db_close(struct lf_db *db);
/* Checks that the store answers and is the one configured (for /health): runs a query on a
 * reader connection and asks the engine. Returns 0 or -LF_ESTORE with the reason in err. */
int lf_db_check(struct lf_db *db, struct lf_err *err);
/* The engine's part of lf_db_check on a connection already held (cheap: no query). */
int lf_db_conn_check(struct lf_conn *c, struct lf_err *err);
/* "sqlite" or "postgres". */
const char *lf_db_engine_name(const struct lf_db *db);

/* Lends a connection; blocks while the writer is in use. Returns NULL (with err set) only
 * when no connection can be opened. */
struct lf_conn *lf_db_acquire(struct lf_db *db, enum lf_db_mode mode, struct lf_err *err);
/* Gives the connection back. An open transaction is rolled back first. */
void lf_db_release(struct lf_conn *c);

/* Transactions. begin on the writer takes the engine's write lock at once. */
int lf_db_begin(struct lf_conn *c);
int lf_db_commit(struct lf_conn *c);
int lf_db_rollback(struct lf_conn *c);
/* Savepoints; name must be a fixed identifier from the code. */
int lf_db_savepoint(struct lf_conn *c, const char *name);
int lf_db_savepoint_release(struct lf_conn *c, const char *name);
int lf_db_savepoint_rollback(struct lf_conn *c, const char *name);

/* Runs SQL without parameters (may hold several statements). */
int lf_db_exec(struct lf_conn *c, const char *sql, struct lf_err *err);

/* Lends the cached prepared statement for sql, reset and with no bindings. Returns NULL with
 * err set when the SQL does not compile. */
struct lf_stmt *lf_db_prepare(struct lf_conn *c, const char *sql, struct lf_err *err);

/* Binds parameters from position 1 on, one per format letter:
 *   s  const char *   text, NULL binds NULL
 *   I  int64_t        integer
 *   i  int            integer
 *   N  int64_t        integer, but a negative value binds NULL
 *   n  (none)         NULL
 * Returns 0 or a negative code. */
int lf_stmt_bind(struct lf_stmt *st, const char *fmt, ...);
/* Binds one value at a 1-based position. */
int lf_stmt_bind_text(struct lf_stmt *st, int idx, const char *s);
int lf_stmt_bind_int(struct lf_stmt *st, int idx, int64_t v);
int lf_stmt_bind_null(struct lf_stmt *st, int idx);

/* LF_DB_ROW, LF_DB_DONE, or a negative code (-LF_ECONSTRAINT for a unique violation,
 * -LF_EBUSY when locked too long, -LF_ESTORE when the disk or database is unusable). */
int lf_stmt_step(struct lf_stmt *st);
/* Resets the statement so it holds no lock and can be prepared again. */
void lf_stmt_done(struct lf_stmt *st);

int lf_stmt_columns(struct lf_stmt *st);
const char *lf_stmt_name(struct lf_stmt *st, int col);
int lf_stmt_isnull(struct lf_stmt *st, int col);
int64_t lf_stmt_int(struct lf_stmt *st, int col);
/* NULL for a NULL column. */
const char *lf_stmt_text(struct lf_stmt *st, int col);

/* Prepares, binds (as lf_stmt_bind), steps to the end and resets. Returns the number of rows
 * changed, or a negative code with the reason in err. */
int lf_db_run(struct lf_conn *c, struct lf_err *err, const char *sql, const char *fmt, ...);

/* Prepares, binds and steps once; the first column of the first row as an integer into *out.
 * Returns LF_DB_ROW, LF_DB_DONE (no row; *out untouched) or a negative code. */
int lf_db_int(struct lf_conn *c, struct lf_err *err, int64_t *out, const char *sql, const char *fmt,
              ...);

/* Rows changed by the last statement run on this connection. */
int64_t lf_db_changes(struct lf_conn *c);

/* The engine's last error message on this connection. */
const char *lf_db_errmsg(struct lf_conn *c);

#endif
