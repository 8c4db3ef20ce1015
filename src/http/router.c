/* The route table: every API file's routes, matched by method and path.
 * The table is built once at start and only read afterwards, so it needs no lock. */
#include "http/router.h"

#include <string.h>

#define MAX_ROUTES 256

static struct lf_route routes[MAX_ROUTES];
static int nroutes;

void lf_router_init(const struct lf_route *const *tables)
{
    nroutes = 0;
    for (; *tables; tables++)
        for (const struct lf_route *r = *tables; r->method && nroutes < MAX_ROUTES; r++) {
            routes[nroutes] = *r;
            routes[nroutes].index = nroutes;
            nroutes++;
        }
}

int lf_router_count(void)
{
    return nroutes;
}

const struct lf_route *lf_router_get(int i)
{
    return i >= 0 && i < nroutes ? &routes[i] : NULL;
}

/* Matches path against pattern; on success stores the {…} segments into params. */
static int match(const char *pattern, const char *path, struct lf_arena *arena, const char **params)
{
    int n = 0;
    const char *p = pattern, *s = path;
    while (*p && *s) {
        if (*p == '{') {
            const char *pend = strchr(p, '}');
            const char *send = strchr(s, '/');
            if (send == NULL) send = s + strlen(s);
            if (send == s || pend == NULL || n >= LF_MAX_PARAMS) return 0;
            if (params) params[n] = lf_arena_strndup(arena, s, (size_t)(send - s));
            n++;
            p = pend + 1;
            s = send;
        } else {
            if (*p != *s) return 0;
            p++;
            s++;
        }
    }
    /* A single trailing slash on the request is tolerated. */
    if (*p == '\0' && s[0] == '/' && s[1] == '\0') return 1;
    return *p == '\0' && *s == '\0';
}

const struct lf_route *lf_router_match(const char *method, const char *path, struct lf_arena *arena,
                                       const char **params, int *status)
{
    int path_matched = 0;
    for (int i = 0; i < nroutes; i++) {
        if (!match(routes[i].pattern, path, arena, NULL)) continue;
        path_matched = 1;
        if (strcmp(routes[i].method, method) != 0) continue;
        match(routes[i].pattern, path, arena, params);
        return &routes[i];
    }
    *status = path_matched ? 405 : 404;
    return NULL;
}
