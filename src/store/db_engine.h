/* What an engine driver provides to the SQL layer (src/store/db.c). Only db.c and the
 * driver files include this header. */
#ifndef LF_DB_ENGINE_H
#define LF_DB_ENGINE_H

#include "store/db.h"

struct lf_db_engine {
    const char *name;
    int single_writer; /* 1: one writer connection for the process (SQLite) */
    /* Opens a connection; writer says whether it will write. */
    int (*connect)(const char *url, const struct lf_db_opts *opts, int writer, void **h,
                   struct lf_err *err);
    void (*disconnect)(void *h);
    int (*prepare)(void *h, const char *sql, void **st, struct lf_err *err);
    void (*finalize)(void *st);
    int (*bind_text)(void *st, int idx, const char *s);
    int (*bind_int)(void *st, int idx, int64_t v);
    int (*bind_null)(void *st, int idx);
    int (*step)(void *st);
    void (*reset)(void *st);
    int (*columns)(void *st);
    const char *(*name_of)(void *st, int col);
    int (*isnull)(void *st, int col);
    int64_t (*col_int)(void *st, int col);
    const char *(*col_text)(void *st, int col);
    int (*exec)(void *h, const char *sql, struct lf_err *err);
    int64_t (*changes)(void *h);
    const char *(*errmsg)(void *h);
    /* Checks that the connection still reaches the store the url names (for health). Returns 0
     * or -LF_ESTORE with the reason in err. */
    int (*check)(void *h, const char *url, struct lf_err *err);
    /* The statement that begins a write transaction. */
    const char *begin_sql;
};

extern const struct lf_db_engine lf_db_sqlite;

#endif
