/* The condition language of rules: validation, compilation and matching.
 *
 * DESIGN. A list compiles into one flat array of nodes in document order. A leaf holds what
 * matching needs ready to use: the field kind, the lead/organization key, the metadata path
 * split into segments (with each all-digit segment also parsed as an array index), and the
 * values lower-cased with their lengths and, where they are numbers or numeric strings, their
 * numeric value. An {"any": [...]} group is a node followed by its members; its span says how
 * many nodes follow inside it, so the top level is the AND of the nodes that are not inside a
 * group, and a group is the OR of its direct members. Matching walks that array, reads the
 * context, and never allocates. A compiled list is never written after lf_conds_compile
 * returns, so threads may match against one list at the same time.
 *
 * Details the header leaves open:
 * - Limits: 64 conditions per list, counted over the leaves of every group (a group itself is
 *   not counted); groups nest 4 deep (a top-level group is depth 1); metadata paths have at
 *   most 8 segments; in/not_in take at most 1000 values.
 * - A JSON null list is "always true" like NULL and []. For exists/not_exists a "value" of
 *   null counts as omitted.
 * - A numeric string is 1 to 63 bytes of [0-9+-.eE] that strtod reads entirely to a finite
 *   number (so no hex, inf, nan or white space). Digits only, without '.', 'e' or 'E', are
 *   compared as 64-bit integers, so large ids compare exactly; otherwise as doubles.
 * - eq with a string value on an actual number is true when the string is numeric and equal
 *   in value (5 equals "5" and "5.0"); eq with a number value on an actual string is true when
 *   the string is numeric and equal in value. Two strings always compare as text.
 * - contains on an actual array is true when an element equals the value: a string element
 *   ignoring case, a number element when the value is a numeric string of the same value.
 *   contains/prefix/suffix on anything else that is not a string is false.
 * - A metadata segment of digits indexes an array; on an object it is an ordinary key.
 * - Compiling reports every problem it finds, up to 20, then stops looking. */
#include "engine/conditions.h"
#include "core/err.h"
#include "core/mem.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Writes the path of a part of a condition into sub; a path too long for the buffer is cut
 * (it only names a place in an error message). */
static void sub_path(char *sub, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sub, size, fmt, ap);
    va_end(ap);
}

#define MAX_CONDS    64   /* conditions per list, over all groups */
#define MAX_DEPTH    4    /* nesting of any groups */
#define MAX_SEGS     8    /* segments of a metadata path */
#define MAX_IN       1000 /* values of in/not_in */
#define MAX_NUM_TEXT 63   /* longest string read as a number */
#define MAX_PROBLEMS 20   /* problems recorded in err before compiling gives up */

enum kind {
    K_EVENT_TYPE,
    K_SOURCE,
    K_UTM_SOURCE,
    K_UTM_MEDIUM,
    K_UTM_CAMPAIGN,
    K_METADATA,
    K_LEAD_TEXT,
    K_LEAD_NUMBER,
    K_ORG,
    K_ANY, /* an OR group */
};

enum op {
    OP_EQ,
    OP_NE,
    OP_IN,
    OP_NOT_IN,
    OP_CONTAINS,
    OP_PREFIX,
    OP_SUFFIX,
    OP_GT,
    OP_GTE,
    OP_LT,
    OP_LTE,
    OP_EXISTS,
    OP_NOT_EXISTS,
    OP_COUNT_
};

static const char *const op_names[OP_COUNT_] = {
    "eq", "ne",  "in", "not_in", "contains", "prefix",     "suffix",
    "gt", "gte", "lt", "lte",    "exists",   "not_exists",
};

static const char *const lead_text[] = {LF_COND_LEAD_TEXT};
static const char *const lead_number[] = {LF_COND_LEAD_NUMBER};
static const char *const lead_all[] = {LF_COND_LEAD_TEXT, LF_COND_LEAD_NUMBER};
static const char *const org_text[] = {LF_COND_ORG_TEXT};
static const char *const plain_fields[] = {
    "event_type",   "source",          "utm.source",   "utm.medium",
    "utm.campaign", "metadata.<path>", "lead.<field>", "organization.<field>",
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* A number with its exact integer value when it has one. */
struct num {
    double d;   /* the value (rounded for integers beyond 2^53) */
    int64_t i;  /* the exact value when is_int */
    int is_int; /* a JSON integer or a string of digits */
};

enum vtype { V_STR, V_NUM, V_TRUE, V_FALSE };

/* One value of a condition (in/not_in have several). */
struct val {
    enum vtype type;
    char *s;      /* V_STR: lower-cased, owned */
    size_t len;   /* V_STR: bytes of s */
    int num_ok;   /* n holds a number: V_NUM, or a V_STR that is a numeric string */
    struct num n; /* the numeric value when num_ok */
};

struct node {
    enum kind kind;
    enum op op;                /* leaves only */
    size_t span;               /* groups: nodes after this one that belong to the group */
    const char *key;           /* K_LEAD_*, K_ORG: the field name (static storage) */
    char *path;                /* K_METADATA: the path with NULs between segments; owned */
    const char *seg[MAX_SEGS]; /* K_METADATA: the segments, pointing into path */
    size_t idx[MAX_SEGS];      /* K_METADATA: a segment as array index, or SIZE_MAX */
    size_t nseg;               /* K_METADATA: segments used */
    int need_num;              /* an actual string must also be read as a number */
    struct val *vals;          /* owned; NULL for exists/not_exists */
    size_t nvals;
};

struct lf_conds {
    struct node *nodes; /* owned, document order */
    size_t n;
    unsigned needs; /* LF_COND_NEEDS_* */
};

/* ---- Text and numbers ------------------------------------------------------------------ */

static inline unsigned char lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c + ('a' - 'A')) : c;
}

/* Whether a (any case) equals v (lower case) over n bytes. */
static int same_ci(const char *a, const char *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)a[i]) != (unsigned char)v[i]) return 0;
    return 1;
}

static int text_eq(const char *a, size_t alen, const char *v, size_t vlen)
{
    return alen == vlen && same_ci(a, v, vlen);
}

static int text_prefix(const char *a, size_t alen, const char *v, size_t vlen)
{
    return alen >= vlen && same_ci(a, v, vlen);
}

static int text_suffix(const char *a, size_t alen, const char *v, size_t vlen)
{
    return alen >= vlen && same_ci(a + alen - vlen, v, vlen);
}

static int text_contains(const char *a, size_t alen, const char *v, size_t vlen)
{
    if (vlen == 0) return 1;
    if (alen < vlen) return 0;
    for (size_t i = 0; i + vlen <= alen; i++)
        if (lower((unsigned char)a[i]) == (unsigned char)v[0] &&
            same_ci(a + i + 1, v + 1, vlen - 1))
            return 1;
    return 0;
}

/* Reads s (len bytes, not necessarily NUL-terminated) as a numeric string into out. Returns 1
 * when it is one, else 0. Uses only the stack. */
static int parse_num(const char *s, size_t len, struct num *out)
{
    char buf[MAX_NUM_TEXT + 1];
    int integral = 1;
    if (len == 0 || len > MAX_NUM_TEXT) return 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '.' || c == 'e' || c == 'E')
            integral = 0;
        else if (!(c >= '0' && c <= '9') && c != '+' && c != '-')
            return 0;
    }
    memcpy(buf, s, len);
    buf[len] = '\0';
    char *end = NULL;
    double d = strtod(buf, &end);
    if (end != buf + len || !isfinite(d)) return 0;
    out->d = d;
    out->is_int = 0;
    if (integral) {
        errno = 0;
        long long i = strtoll(buf, &end, 10);
        if (errno == 0 && end == buf + len) {
            out->i = i;
            out->is_int = 1;
        }
    }
    return 1;
}

static void json_num(const json_t *j, struct num *out)
{
    if (json_is_integer(j)) {
        out->i = json_integer_value(j);
        out->d = (double)out->i;
        out->is_int = 1;
    } else {
        out->d = json_real_value(j);
        out->i = 0;
        out->is_int = 0;
    }
}

/* <0, 0 or >0 as a is below, equal to or above b. */
static int num_cmp(const struct num *a, const struct num *b)
{
    if (a->is_int && b->is_int) return a->i < b->i ? -1 : a->i > b->i;
    return a->d < b->d ? -1 : a->d > b->d;
}

/* ---- Matching -------------------------------------------------------------------------- */

enum atype { A_NONE, A_STR, A_NUM, A_TRUE, A_FALSE, A_ARRAY, A_OBJECT };

/* The value a condition reads from the context. */
struct actual {
    enum atype type;
    const char *s; /* A_STR */
    size_t len;    /* A_STR */
    int num_ok;    /* n holds a number: A_NUM, or an A_STR read as a number */
    struct num n;
    const json_t *j; /* A_ARRAY */
};

static void from_text(struct actual *a, const char *s)
{
    if (s == NULL) return;
    a->type = A_STR;
    a->s = s;
    a->len = strlen(s);
}

static void from_json(struct actual *a, const json_t *j)
{
    switch (j ? json_typeof(j) : JSON_NULL) {
    case JSON_STRING:
        a->type = A_STR;
        a->s = json_string_value(j);
        a->len = json_string_length(j);
        break;
    case JSON_INTEGER:
    case JSON_REAL:
        a->type = A_NUM;
        a->num_ok = 1;
        json_num(j, &a->n);
        break;
    case JSON_TRUE: a->type = A_TRUE; break;
    case JSON_FALSE: a->type = A_FALSE; break;
    case JSON_ARRAY:
        a->type = A_ARRAY;
        a->j = j;
        break;
    case JSON_OBJECT: a->type = A_OBJECT; break;
    case JSON_NULL: break;
    }
}

static const json_t *metadata_at(const struct node *nd, const json_t *cur)
{
    for (size_t i = 0; cur && i < nd->nseg; i++) {
        if (json_is_object(cur))
            cur = json_object_get(cur, nd->seg[i]);
        else if (json_is_array(cur) && nd->idx[i] != SIZE_MAX)
            cur = json_array_get(cur, nd->idx[i]);
        else
            cur = NULL;
    }
    return cur;
}

static void read_actual(const struct node *nd, const struct lf_cond_ctx *ctx, struct actual *a)
{
    memset(a, 0, sizeof *a);
    switch (nd->kind) {
    case K_EVENT_TYPE: from_text(a, ctx->event_type); break;
    case K_SOURCE: from_text(a, ctx->source); break;
    case K_UTM_SOURCE: from_text(a, ctx->utm_source); break;
    case K_UTM_MEDIUM: from_text(a, ctx->utm_medium); break;
    case K_UTM_CAMPAIGN: from_text(a, ctx->utm_campaign); break;
    case K_METADATA: from_json(a, metadata_at(nd, ctx->metadata)); break;
    case K_LEAD_TEXT:
    case K_LEAD_NUMBER: from_json(a, json_object_get(ctx->lead, nd->key)); break;
    case K_ORG: from_json(a, json_object_get(ctx->organization, nd->key)); break;
    case K_ANY: break;
    }
    if (a->type == A_STR && nd->need_num) a->num_ok = parse_num(a->s, a->len, &a->n);
}

static int val_eq(const struct val *v, const struct actual *a)
{
    switch (v->type) {
    case V_STR:
        if (a->type == A_STR) return text_eq(a->s, a->len, v->s, v->len);
        return a->type == A_NUM && v->num_ok && num_cmp(&a->n, &v->n) == 0;
    case V_NUM: return a->num_ok && num_cmp(&a->n, &v->n) == 0;
    case V_TRUE: return a->type == A_TRUE;
    case V_FALSE: return a->type == A_FALSE;
    }
    return 0;
}

static int in_list(const struct node *nd, const struct actual *a)
{
    for (size_t i = 0; i < nd->nvals; i++)
        if (val_eq(&nd->vals[i], a)) return 1;
    return 0;
}

/* contains on an array: an element equal to the (string) value. */
static int array_has(const json_t *arr, const struct val *v)
{
    size_t i;
    const json_t *e;
    json_array_foreach(arr, i, e)
    {
        if (json_is_string(e)) {
            if (text_eq(json_string_value(e), json_string_length(e), v->s, v->len)) return 1;
        } else if (json_is_number(e) && v->num_ok) {
            struct num n;
            json_num(e, &n);
            if (num_cmp(&n, &v->n) == 0) return 1;
        }
    }
    return 0;
}

static int leaf_match(const struct node *nd, const struct lf_cond_ctx *ctx)
{
    struct actual a;
    read_actual(nd, ctx, &a);
    const struct val *v = nd->vals;
    switch (nd->op) {
    case OP_EQ: return val_eq(v, &a);
    case OP_NE: return !val_eq(v, &a);
    case OP_IN: return in_list(nd, &a);
    case OP_NOT_IN: return !in_list(nd, &a);
    case OP_CONTAINS:
        if (a.type == A_ARRAY) return array_has(a.j, v);
        return a.type == A_STR && text_contains(a.s, a.len, v->s, v->len);
    case OP_PREFIX: return a.type == A_STR && text_prefix(a.s, a.len, v->s, v->len);
    case OP_SUFFIX: return a.type == A_STR && text_suffix(a.s, a.len, v->s, v->len);
    case OP_GT: return a.num_ok && num_cmp(&a.n, &v->n) > 0;
    case OP_GTE: return a.num_ok && num_cmp(&a.n, &v->n) >= 0;
    case OP_LT: return a.num_ok && num_cmp(&a.n, &v->n) < 0;
    case OP_LTE: return a.num_ok && num_cmp(&a.n, &v->n) <= 0;
    case OP_EXISTS: return a.type != A_NONE && !(a.type == A_STR && a.len == 0);
    case OP_NOT_EXISTS: return a.type == A_NONE || (a.type == A_STR && a.len == 0);
    case OP_COUNT_: break;
    }
    return 0;
}

static int node_match(const struct node *nd, const struct lf_cond_ctx *ctx);

/* Whether all (or, with any, one) of the nodes [first, end) that are not inside a nested group
 * hold. */
static int range_match(const struct node *first, const struct node *end, int any,
                       const struct lf_cond_ctx *ctx)
{
    for (const struct node *nd = first; nd < end; nd += nd->span + 1)
        if (node_match(nd, ctx) == any) return any;
    return !any;
}

static int node_match(const struct node *nd, const struct lf_cond_ctx *ctx)
{
    if (nd->kind == K_ANY) return range_match(nd + 1, nd + 1 + nd->span, 1, ctx);
    return leaf_match(nd, ctx);
}

int lf_conds_match(const struct lf_conds *c, const struct lf_cond_ctx *ctx)
{
    assert(ctx != NULL);
    if (c == NULL) return 1;
    return range_match(c->nodes, c->nodes + c->n, 0, ctx);
}

unsigned lf_conds_needs(const struct lf_conds *c)
{
    return c ? c->needs : 0;
}

void lf_conds_free(struct lf_conds *c)
{
    if (c == NULL) return;
    for (size_t i = 0; i < c->n; i++) {
        struct node *nd = &c->nodes[i];
        for (size_t k = 0; k < nd->nvals; k++) free(nd->vals[k].s);
        free(nd->vals);
        free(nd->path);
    }
    free(c->nodes);
    free(c);
}

/* ---- Compiling ------------------------------------------------------------------------- */

struct compile {
    struct lf_conds *c;
    size_t cap;     /* nodes allocated */
    size_t counted; /* conditions seen, against MAX_CONDS */
    int problems;   /* problems found */
    int full;       /* too many conditions or problems: stop looking */
    struct lf_err *err;
};

static void problem(struct compile *st, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void problem(struct compile *st, const char *path, const char *fmt, ...)
{
    char text[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (st->problems++ < MAX_PROBLEMS) lf_err_field(st->err, path, "%s", text);
    if (st->problems >= MAX_PROBLEMS) st->full = 1;
}

/* Writes "a, b, c" into buf, ending in ", …" when not all names fit. */
static void name_list(char *buf, size_t cap, const char *const *names, size_t n)
{
    static const char more[] = ", …";
    size_t len = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        size_t need = strlen(names[i]) + (i ? 2 : 0);
        if (len + need + sizeof more > cap) {
            snprintf(buf + len, cap - len, "%s", more);
            return;
        }
        snprintf(buf + len, cap - len, "%s%s", i ? ", " : "", names[i]);
        len += need;
    }
}

/* The edit distance of a and b when both are short, else a large number. */
static size_t distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), row[41];
    if (la > 40 || lb > 40) return SIZE_MAX;
    for (size_t j = 0; j <= lb; j++) row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (lower((unsigned char)a[i - 1]) != (unsigned char)b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* Reports an unknown name of what ("field", "lead field", "op", …), suggesting a close
 * allowed name and listing as many allowed names as the message holds. */
static void unknown_name(struct compile *st, const char *path, const char *what, const char *name,
                         const char *const *names, size_t n)
{
    char head[160], list[256];
    const char *near = NULL;
    size_t best = 3; /* suggest only within an edit distance of 2 */
    for (size_t i = 0; i < n; i++) {
        size_t d = distance(name, names[i]);
        if (d < best) {
            best = d;
            near = names[i];
        }
    }
    int hl;
    if (near)
        hl = snprintf(head, sizeof head, "unknown %s '%.40s' (did you mean %s? allowed: ", what,
                      name, near);
    else
        hl = snprintf(head, sizeof head, "unknown %s '%.40s' (allowed: ", what, name);
    size_t room = 255 - (size_t)hl - 1; /* lf_err_field keeps 255 bytes; 1 for ')' */
    name_list(list, room < sizeof list ? room : sizeof list, names, n);
    problem(st, path, "%s%s)", head, list);
}

static int find_name(const char *name, const char *const *names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(name, names[i]) == 0) return (int)i;
    return -1;
}

/* The text of j when it is a string without NUL bytes, else NULL. */
static const char *plain_text(const json_t *j)
{
    const char *s = json_string_value(j);
    return s && strlen(s) == json_string_length(j) ? s : NULL;
}

static struct node *new_node(struct compile *st)
{
    struct lf_conds *c = st->c;
    if (c->n == st->cap) {
        st->cap = st->cap ? 2 * st->cap : 16;
        c->nodes = lf_xrealloc(c->nodes, st->cap * sizeof *c->nodes);
    }
    struct node *nd = &c->nodes[c->n++];
    memset(nd, 0, sizeof *nd);
    return nd;
}

static const char *kind_desc(enum kind k)
{
    return k == K_LEAD_NUMBER ? "a number" : "text";
}

/* Splits a metadata path into nd. Returns 0 or -1 after reporting the problem. */
static int metadata_path(struct compile *st, const char *path, const char *fpath, struct node *nd)
{
    size_t len = strlen(path);
    if (len == 0) {
        problem(st, fpath, "metadata needs a path, e.g. metadata.form");
        return -1;
    }
    nd->path = lf_xstrndup(path, len);
    char *p = nd->path;
    for (;;) {
        char *dot = memchr(p, '.', len - (size_t)(p - nd->path));
        size_t seglen = dot ? (size_t)(dot - p) : strlen(p);
        if (seglen == 0) {
            problem(st, fpath, "metadata path '%.60s' has an empty segment", path);
            return -1;
        }
        if (nd->nseg == MAX_SEGS) {
            problem(st, fpath, "metadata path '%.60s' has more than %d segments", path, MAX_SEGS);
            return -1;
        }
        size_t idx = SIZE_MAX;
        if (seglen <= 9 && strspn(p, "0123456789") == seglen) idx = (size_t)strtoul(p, NULL, 10);
        nd->seg[nd->nseg] = p;
        nd->idx[nd->nseg] = idx;
        nd->nseg++;
        if (dot == NULL) break;
        *dot = '\0';
        p = dot + 1;
    }
    return 0;
}

/* Parses the field name into nd. Returns 0 or -1 after reporting the problem. */
static int parse_field(struct compile *st, const char *f, const char *fpath, struct node *nd)
{
    static const struct {
        const char *name;
        enum kind kind;
    } plain[] = {
        {"event_type", K_EVENT_TYPE},     {"source", K_SOURCE},
        {"utm.source", K_UTM_SOURCE},     {"utm.medium", K_UTM_MEDIUM},
        {"utm.campaign", K_UTM_CAMPAIGN},
    };
    for (size_t i = 0; i < COUNT(plain); i++) {
        if (strcmp(f, plain[i].name) == 0) {
            nd->kind = plain[i].kind;
            return 0;
        }
    }
    if (strncmp(f, "metadata.", 9) == 0 || strcmp(f, "metadata") == 0) {
        nd->kind = K_METADATA;
        return metadata_path(st, f[8] ? f + 9 : "", fpath, nd);
    }
    if (strncmp(f, "lead.", 5) == 0) {
        int i = find_name(f + 5, lead_text, COUNT(lead_text));
        if (i >= 0) {
            nd->kind = K_LEAD_TEXT;
            nd->key = lead_text[i];
            st->c->needs |= LF_COND_NEEDS_LEAD;
            return 0;
        }
        i = find_name(f + 5, lead_number, COUNT(lead_number));
        if (i >= 0) {
            nd->kind = K_LEAD_NUMBER;
            nd->key = lead_number[i];
            st->c->needs |= LF_COND_NEEDS_LEAD;
            return 0;
        }
        unknown_name(st, fpath, "lead field", f + 5, lead_all, COUNT(lead_all));
        return -1;
    }
    if (strncmp(f, "organization.", 13) == 0) {
        int i = find_name(f + 13, org_text, COUNT(org_text));
        if (i >= 0) {
            nd->kind = K_ORG;
            nd->key = org_text[i];
            st->c->needs |= LF_COND_NEEDS_ORG;
            return 0;
        }
        unknown_name(st, fpath, "organization field", f + 13, org_text, COUNT(org_text));
        return -1;
    }
    unknown_name(st, fpath, "field", f, plain_fields, COUNT(plain_fields));
    return -1;
}

/* Fills v from a string or number j (booleans too when bool_ok). Returns 0, or -1 for any
 * other type. */
static int compile_val(const json_t *j, int bool_ok, struct val *v)
{
    memset(v, 0, sizeof *v);
    if (json_is_string(j)) {
        size_t len = json_string_length(j);
        v->type = V_STR;
        v->s = lf_xmalloc(len + 1);
        memcpy(v->s, json_string_value(j), len + 1);
        for (size_t i = 0; i < len; i++) v->s[i] = (char)lower((unsigned char)v->s[i]);
        v->len = len;
        v->num_ok = parse_num(v->s, len, &v->n);
        return 0;
    }
    if (json_is_number(j)) {
        v->type = V_NUM;
        v->num_ok = 1;
        json_num(j, &v->n);
        return 0;
    }
    if (bool_ok && json_is_boolean(j)) {
        v->type = json_is_true(j) ? V_TRUE : V_FALSE;
        return 0;
    }
    return -1;
}

/* Checks the value against the op and compiles it into nd, reporting any problem. */
static void compile_value(struct compile *st, const json_t *value, enum op op, const char *vpath,
                          struct node *nd)
{
    const char *name = op_names[op];
    if (value == NULL && op != OP_EXISTS && op != OP_NOT_EXISTS) {
        problem(st, vpath, "is required for %s", name);
        return;
    }
    switch (op) {
    case OP_EXISTS:
    case OP_NOT_EXISTS:
        if (value && !json_is_null(value)) {
            problem(st, vpath, "must be omitted for %s", name);
            return;
        }
        return;
    case OP_EQ:
    case OP_NE:
        nd->vals = lf_xcalloc(1, sizeof *nd->vals);
        nd->nvals = 1;
        if (compile_val(value, 1, nd->vals) == 0) return;
        nd->nvals = 0;
        problem(st, vpath, "must be a string, a number or a boolean for %s", name);
        return;
    case OP_IN:
    case OP_NOT_IN: {
        size_t n = json_array_size(value);
        if (n == 0) {
            problem(st, vpath, "must be a non-empty array of strings and numbers for %s", name);
            return;
        }
        if (n > MAX_IN) {
            problem(st, vpath, "must have at most %d values for %s", MAX_IN, name);
            return;
        }
        nd->vals = lf_xcalloc(n, sizeof *nd->vals);
        for (size_t i = 0; i < n; i++) {
            if (compile_val(json_array_get(value, i), 0, &nd->vals[nd->nvals]) < 0) {
                char ipath[300];
                sub_path(ipath, sizeof ipath, "%s[%zu]", vpath, i);
                problem(st, ipath, "must be a string or a number");
                return;
            }
            nd->nvals++;
        }
        return;
    }
    case OP_CONTAINS:
    case OP_PREFIX:
    case OP_SUFFIX:
        if (json_string_length(value) == 0) { /* 0 for a non-string too */
            problem(st, vpath, "must be a non-empty string for %s", name);
            return;
        }
        nd->vals = lf_xcalloc(1, sizeof *nd->vals);
        nd->nvals = 1;
        compile_val(value, 0, nd->vals);
        return;
    case OP_GT:
    case OP_GTE:
    case OP_LT:
    case OP_LTE:
        if (!json_is_number(value)) {
            problem(st, vpath, "must be a number for %s", name);
            return;
        }
        nd->vals = lf_xcalloc(1, sizeof *nd->vals);
        nd->nvals = 1;
        compile_val(value, 0, nd->vals);
        return;
    case OP_COUNT_: break;
    }
}

static void compile_list(struct compile *st, const json_t *list, const char *path, int depth);

/* An {"any": [...]} group at path (depth counts groups, 1 at the top level). */
static void compile_group(struct compile *st, const json_t *obj, const char *path, int depth)
{
    char sub[300];
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)obj, key, v)
    {
        if (strcmp(key, "any") == 0) continue;
        sub_path(sub, sizeof sub, "%s.%.40s", path, key);
        problem(st, sub, "unknown key '%.40s' (an any group has only the key any)", key);
    }
    if (depth > MAX_DEPTH) {
        problem(st, path, "any groups nest at most %d deep", MAX_DEPTH);
        return;
    }
    const json_t *members = json_object_get(obj, "any");
    sub_path(sub, sizeof sub, "%s.any", path);
    if (json_array_size(members) == 0) {
        problem(st, sub, "must be a non-empty array of conditions");
        return;
    }
    size_t at = st->c->n;
    struct node *nd = new_node(st);
    nd->kind = K_ANY;
    compile_list(st, members, sub, depth);
    st->c->nodes[at].span = st->c->n - at - 1; /* new_node may have moved the array */
}

/* A {"field", "op", "value"} condition at path. */
static void compile_leaf(struct compile *st, const json_t *obj, const char *path)
{
    char sub[300];
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)obj, key, v)
    {
        if (strcmp(key, "field") == 0 || strcmp(key, "op") == 0 || strcmp(key, "value") == 0)
            continue;
        sub_path(sub, sizeof sub, "%s.%.40s", path, key);
        problem(st, sub, "unknown key '%.40s' (allowed: field, op, value; or any alone)", key);
    }
    struct node *nd = new_node(st);
    int field_ok = 0, op_ok = 0;

    const json_t *field = json_object_get(obj, "field");
    const char *fname = plain_text(field);
    sub_path(sub, sizeof sub, "%s.field", path);
    if (field == NULL)
        problem(st, sub, "is required");
    else if (fname == NULL)
        problem(st, sub, "must be a string");
    else
        field_ok = parse_field(st, fname, sub, nd) == 0;

    const json_t *op = json_object_get(obj, "op");
    sub_path(sub, sizeof sub, "%s.op", path);
    if (op == NULL) {
        problem(st, sub, "is required");
    } else if (plain_text(op) == NULL) {
        problem(st, sub, "must be a string");
    } else {
        int i = find_name(plain_text(op), op_names, OP_COUNT_);
        if (i < 0)
            unknown_name(st, sub, "op", plain_text(op), op_names, OP_COUNT_);
        else {
            nd->op = (enum op)i;
            op_ok = 1;
        }
    }

    if (field_ok && op_ok) {
        int numeric = nd->op >= OP_GT && nd->op <= OP_LTE;
        int textual = nd->op >= OP_CONTAINS && nd->op <= OP_SUFFIX;
        if ((numeric && nd->kind != K_METADATA && nd->kind != K_LEAD_NUMBER) ||
            (textual && nd->kind == K_LEAD_NUMBER))
            problem(st, sub, "%s compares %s; %.60s is %s", op_names[nd->op],
                    numeric ? "numbers" : "text", fname, kind_desc(nd->kind));
    }
    if (op_ok) {
        sub_path(sub, sizeof sub, "%s.value", path);
        compile_value(st, json_object_get(obj, "value"), nd->op, sub, nd);
    }

    /* A node with a problem stays (lf_conds_free frees it); the list is dropped at the end. */
    nd->need_num = nd->op >= OP_GT && nd->op <= OP_LTE;
    for (size_t k = 0; k < nd->nvals; k++)
        if (nd->vals[k].type == V_NUM) nd->need_num = 1;
}

/* The members of list, an array, whose elements are at path[i]. */
static void compile_list(struct compile *st, const json_t *list, const char *path, int depth)
{
    char sub[300];
    size_t i;
    const json_t *el;
    json_array_foreach(list, i, el)
    {
        if (st->full) return;
        sub_path(sub, sizeof sub, "%s[%zu]", path, i);
        if (json_is_object(el) && json_object_get(el, "any")) {
            compile_group(st, el, sub, depth + 1);
            continue;
        }
        if (++st->counted > MAX_CONDS) {
            problem(st, sub, "a list has at most %d conditions", MAX_CONDS);
            st->full = 1;
            return;
        }
        if (!json_is_object(el)) {
            problem(st, sub,
                    "must be an object: {\"field\", \"op\", \"value\"} or {\"any\": [...]}");
            continue;
        }
        compile_leaf(st, el, sub);
    }
}

struct lf_conds *lf_conds_compile(json_t *list, const char *prefix, struct lf_err *err)
{
    struct compile st = {.err = err};
    if (prefix == NULL) prefix = "conditions";
    st.c = lf_xcalloc(1, sizeof *st.c);
    if (list && !json_is_array(list) && !json_is_null(list))
        problem(&st, prefix, "must be an array of conditions");
    else if (list)
        compile_list(&st, list, prefix, 0);
    if (st.problems) {
        lf_conds_free(st.c);
        return NULL;
    }
    return st.c;
}
