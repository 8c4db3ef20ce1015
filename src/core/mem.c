/* Allocation wrappers, the growable buffer and the per-request arena. */
#include "core/mem.h"
#include "core/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void oom(size_t n)
{
    fprintf(stderr, "{\"level\":\"fatal\",\"msg\":\"out of memory\",\"bytes\":%zu}\n", n);
    abort();
}

void *lf_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL) oom(n);
    return p;
}

void *lf_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (p == NULL) oom(n * size);
    return p;
}

void *lf_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (q == NULL) oom(n);
    return q;
}

char *lf_xstrdup(const char *s)
{
    return lf_xstrndup(s, strlen(s));
}

char *lf_xstrndup(const char *s, size_t n)
{
    char *d = lf_xmalloc(n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

static int buf_reserve(struct lf_buf *b, size_t extra)
{
    if (b->max && b->len + extra > b->max) return -LF_ETOOLARGE;
    size_t need = b->len + extra + 1;
    if (need <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) cap *= 2;
    char *d = realloc(b->data, cap);
    if (d == NULL) return -LF_ENOMEM;
    b->data = d;
    b->cap = cap;
    return 0;
}

int lf_buf_append(struct lf_buf *b, const void *data, size_t n)
{
    int rc = buf_reserve(b, n);
    if (rc < 0) return rc;
    memcpy(b->data + b->len, data, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int lf_buf_puts(struct lf_buf *b, const char *s)
{
    return lf_buf_append(b, s, strlen(s));
}

int lf_buf_printf(struct lf_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return -LF_EINVAL;
    int rc = buf_reserve(b, (size_t)n);
    if (rc < 0) return rc;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

void lf_buf_reset(struct lf_buf *b)
{
    b->len = 0;
    if (b->data) b->data[0] = '\0';
}

void lf_buf_free(struct lf_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

char *lf_buf_take(struct lf_buf *b)
{
    char *d = b->data ? b->data : lf_xstrdup("");
    b->data = NULL;
    b->len = b->cap = 0;
    return d;
}

struct lf_arena_chunk {
    struct lf_arena_chunk *next;
    size_t used, size;
    _Alignas(16) unsigned char mem[];
};

#define ARENA_CHUNK 4096

void *lf_arena_alloc(struct lf_arena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    struct lf_arena_chunk *c = a->head;
    if (c == NULL || c->size - c->used < n) {
        size_t size = n > ARENA_CHUNK ? n : ARENA_CHUNK;
        c = lf_xmalloc(sizeof(*c) + size);
        c->used = 0;
        c->size = size;
        c->next = a->head;
        a->head = c;
    }
    void *p = c->mem + c->used;
    c->used += n;
    return p;
}

char *lf_arena_strndup(struct lf_arena *a, const char *s, size_t n)
{
    char *d = lf_arena_alloc(a, n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *lf_arena_strdup(struct lf_arena *a, const char *s)
{
    return s ? lf_arena_strndup(a, s, strlen(s)) : NULL;
}

char *lf_arena_printf(struct lf_arena *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) n = 0;
    char *d = lf_arena_alloc(a, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(d, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return d;
}

void lf_arena_free(struct lf_arena *a)
{
    struct lf_arena_chunk *c = a->head;
    while (c) {
        struct lf_arena_chunk *next = c->next;
        free(c);
        c = next;
    }
    a->head = NULL;
}
