/* The route table: every API file's routes, matched by method and path. */
#ifndef LF_ROUTER_H
#define LF_ROUTER_H

#include "http/http.h"

/* Builds the table from a NULL-terminated list of route arrays (each ended by a route with a
 * NULL method) and numbers the routes. Not thread-safe; call once before serving. */
void lf_router_init(const struct lf_route *const *tables);

/* Finds the route for method and path and fills params (pointers into a copy kept in arena).
 * Returns the route, or NULL with *status 404 (no path matches) or 405 (the path matches, the
 * method does not). */
const struct lf_route *lf_router_match(const char *method, const char *path, struct lf_arena *arena,
                                       const char **params, int *status);

/* Number of routes, and the pattern of route i, for metrics. */
int lf_router_count(void);
const struct lf_route *lf_router_get(int i);

#endif
