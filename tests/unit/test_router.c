/* Unit tests for src/http/router.c: matching, parameters, 404 versus 405. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "http/router.h"

static void h(struct lf_req *r)
{
    (void)r;
}

static const struct lf_route table_a[] = {
    {"POST", "/api/v1/events", h, LF_AUTH_INGEST, 0, 1, 0, 0},
    {"POST", "/api/v1/events/batch", h, LF_AUTH_INGEST, 0, 1, 0, 0},
    {"GET", "/api/v1/events/status/pending", h, LF_AUTH_TOKEN, LF_ROLES_READ, 0, 0, 0},
    {"GET", "/api/v1/events/{id}", h, LF_AUTH_TOKEN, LF_ROLES_READ, 0, 0, 0},
    {"POST", "/api/v1/events/{id}/replay", h, LF_AUTH_TOKEN, LF_ROLES_MANAGE, 0, 0, 0},
    {NULL, NULL, NULL, 0, 0, 0, 0, 0},
};
static const struct lf_route table_b[] = {
    {"GET", "/api/v1/pipelines/{pid}/stages/{sid}", h, LF_AUTH_TOKEN, LF_ROLES_READ, 0, 0, 0},
    {"DELETE", "/api/v1/pipelines/{pid}/stages/{sid}", h, LF_AUTH_TOKEN, LF_ROLES_ADMIN, 0, 0, 0},
    {"GET", "/health", h, LF_AUTH_NONE, 0, 0, 0, 0},
    {NULL, NULL, NULL, 0, 0, 0, 0, 0},
};
static const struct lf_route *const tables[] = {table_a, table_b, NULL};

static int setup(void **state)
{
    lf_router_init(tables);
    (void)state;
    return 0;
}

static void numbers_routes(void **state)
{
    assert_int_equal(lf_router_count(), 8);
    for (int i = 0; i < 8; i++) assert_int_equal(lf_router_get(i)->index, i);
    assert_null(lf_router_get(8));
    (void)state;
}

static void matches_static_before_params(void **state)
{
    struct lf_arena a = {0};
    const char *params[LF_MAX_PARAMS] = {0};
    int status = 0;
    const struct lf_route *r = lf_router_match("POST", "/api/v1/events/batch", &a, params, &status);
    assert_non_null(r);
    assert_string_equal(r->pattern, "/api/v1/events/batch");
    r = lf_router_match("GET", "/api/v1/events/status/pending", &a, params, &status);
    assert_string_equal(r->pattern, "/api/v1/events/status/pending");
    lf_arena_free(&a);
    (void)state;
}

static void captures_params(void **state)
{
    struct lf_arena a = {0};
    const char *params[LF_MAX_PARAMS] = {0};
    int status = 0;
    const struct lf_route *r =
        lf_router_match("GET", "/api/v1/events/abc-123", &a, params, &status);
    assert_non_null(r);
    assert_string_equal(params[0], "abc-123");
    r = lf_router_match("DELETE", "/api/v1/pipelines/p1/stages/s2", &a, params, &status);
    assert_non_null(r);
    assert_string_equal(params[0], "p1");
    assert_string_equal(params[1], "s2");
    r = lf_router_match("POST", "/api/v1/events/e9/replay", &a, params, &status);
    assert_string_equal(r->pattern, "/api/v1/events/{id}/replay");
    assert_string_equal(params[0], "e9");
    lf_arena_free(&a);
    (void)state;
}

static void not_found_and_method(void **state)
{
    struct lf_arena a = {0};
    const char *params[LF_MAX_PARAMS] = {0};
    int status = 0;
    assert_null(lf_router_match("GET", "/api/v1/nothing", &a, params, &status));
    assert_int_equal(status, 404);
    assert_null(lf_router_match("GET", "/api/v1/events/", &a, params, &status)); /* empty id */
    assert_null(lf_router_match("GET", "/api/v1/events/a/b/c", &a, params, &status));
    assert_int_equal(status, 404);
    assert_null(lf_router_match("DELETE", "/api/v1/events/abc", &a, params, &status));
    assert_int_equal(status, 405);
    assert_null(lf_router_match("PUT", "/health", &a, params, &status));
    assert_int_equal(status, 405);
    lf_arena_free(&a);
    (void)state;
}

static void trailing_slash_tolerated(void **state)
{
    struct lf_arena a = {0};
    const char *params[LF_MAX_PARAMS] = {0};
    int status = 0;
    assert_non_null(lf_router_match("GET", "/health/", &a, params, &status));
    assert_null(lf_router_match("GET", "/healthz", &a, params, &status));
    lf_arena_free(&a);
    (void)state;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(numbers_routes),           cmocka_unit_test(matches_static_before_params),
        cmocka_unit_test(captures_params),          cmocka_unit_test(not_found_and_method),
        cmocka_unit_test(trailing_slash_tolerated),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
