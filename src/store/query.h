/* A query assembled from fixed SQL fragments and bound values, for list endpoints whose
 * filters vary. Fragments come from the code; values from input are only ever bound. */
#ifndef LF_QUERY_H
#define LF_QUERY_H

#include "store/db.h"
#include "core/mem.h"

#define LF_QUERY_MAX_ARGS 32

struct lf_query {
    struct lf_buf sql;
    struct {
        char type;     /* 's' text or 'I' integer */
        const char *s; /* borrowed: must outlive the statement's use */
        int64_t i;
    } args[LF_QUERY_MAX_ARGS];
    int nargs;
};

/* Appends a fragment with no parameter. */
void lf_query_sql(struct lf_query *q, const char *fragment);
/* Appends a fragment holding one `?` and its text value. */
void lf_query_text(struct lf_query *q, const char *fragment, const char *value);
/* Appends a fragment holding one `?` and its integer value. */
void lf_query_int(struct lf_query *q, const char *fragment, int64_t value);
/* Appends the keyset condition of a newest-first page: rows strictly after the cursor (at, id)
 * in the order "<t>created_at DESC, <t>id DESC", where t is a table alias with its dot, or "". */
void lf_query_before(struct lf_query *q, const char *t, int64_t at, const char *id);
/* Prepares the query on c and binds its values. Returns the statement or NULL. */
struct lf_stmt *lf_query_prepare(struct lf_query *q, struct lf_conn *c, struct lf_err *err);
void lf_query_free(struct lf_query *q);

#endif
