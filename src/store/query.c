/* A query assembled from fixed SQL fragments and bound values. */
#include "store/query.h"

#include <assert.h>
#include <stdio.h>

void lf_query_sql(struct lf_query *q, const char *fragment)
{
    lf_buf_puts(&q->sql, fragment);
}

void lf_query_text(struct lf_query *q, const char *fragment, const char *value)
{
    assert(q->nargs < LF_QUERY_MAX_ARGS);
    lf_buf_puts(&q->sql, fragment);
    q->args[q->nargs].type = 's';
    q->args[q->nargs].s = value;
    q->nargs++;
}

void lf_query_int(struct lf_query *q, const char *fragment, int64_t value)
{
    assert(q->nargs < LF_QUERY_MAX_ARGS);
    lf_buf_puts(&q->sql, fragment);
    q->args[q->nargs].type = 'I';
    q->args[q->nargs].i = value;
    q->nargs++;
}

struct lf_stmt *lf_query_prepare(struct lf_query *q, struct lf_conn *c, struct lf_err *err)
{
    struct lf_stmt *st = lf_db_prepare(c, q->sql.data, err);
    if (st == NULL) return NULL;
    for (int i = 0; i < q->nargs; i++) {
        if (q->args[i].type == 's')
            lf_stmt_bind_text(st, i + 1, q->args[i].s);
        else
            lf_stmt_bind_int(st, i + 1, q->args[i].i);
    }
    return st;
}

void lf_query_free(struct lf_query *q)
{
    lf_buf_free(&q->sql);
    q->nargs = 0;
}

void lf_query_before(struct lf_query *q, const char *t, int64_t at, const char *id)
{
    char frag[64];
    snprintf(frag, sizeof frag, " AND (%screated_at < ?", t);
    lf_query_int(q, frag, at);
    snprintf(frag, sizeof frag, " OR (%screated_at = ?", t);
    lf_query_int(q, frag, at);
    snprintf(frag, sizeof frag, " AND %sid < ?))", t);
    lf_query_text(q, frag, id);
}
