/* Allocation wrappers, the growable buffer and the per-request arena. */
#ifndef LF_MEM_H
#define LF_MEM_H

#include <stdarg.h>
#include <stddef.h>

/* Small internal allocations: abort the process on out-of-memory. Never use these for a size
 * taken from input; use the capped buffer below instead. */
void *lf_xmalloc(size_t n);
void *lf_xcalloc(size_t n, size_t size);
void *lf_xrealloc(void *p, size_t n);
char *lf_xstrdup(const char *s);
char *lf_xstrndup(const char *s, size_t n);

/* A growable byte buffer with a hard cap. The data is always NUL-terminated. */
struct lf_buf {
    char *data; /* owned; NULL until the first append */
    size_t len; /* bytes used, without the terminating NUL */
    size_t cap; /* bytes allocated */
    size_t max; /* hard limit on len; 0 means no limit (internal use only) */
};

/* Appends n bytes. Returns 0, or -LF_ETOOLARGE past max, or -LF_ENOMEM. */
int lf_buf_append(struct lf_buf *b, const void *data, size_t n);
int lf_buf_puts(struct lf_buf *b, const char *s);
int lf_buf_printf(struct lf_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void lf_buf_reset(struct lf_buf *b);
void lf_buf_free(struct lf_buf *b);
/* Hands the data over to the caller (who frees it) and empties the buffer. */
char *lf_buf_take(struct lf_buf *b);

/* A bump allocator: everything allocated from it is freed at once by lf_arena_free. */
struct lf_arena_chunk;
struct lf_arena {
    struct lf_arena_chunk *head; /* newest chunk first */
};

void *lf_arena_alloc(struct lf_arena *a, size_t n);
char *lf_arena_strdup(struct lf_arena *a, const char *s);
char *lf_arena_strndup(struct lf_arena *a, const char *s, size_t n);
char *lf_arena_printf(struct lf_arena *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void lf_arena_free(struct lf_arena *a);

#endif
