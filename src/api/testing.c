/* Test-only endpoints, compiled into test builds (LF_TESTING) and nowhere else: the clock
 * that tests move to exercise expiry, windows and schedules. */
#ifdef LF_TESTING
#include "api/api.h"
#include "outbound/outbound.h"
#include "core/timeutil.h"

static void clock_reply(struct lf_req *r)
{
    char buf[LF_TIME_BUFSZ];
    lf_reply_json(r, 200, json_pack("{s:s}", "now", lf_time_format(lf_now_ms(), buf, sizeof buf)));
}

static void set_clock(struct lf_req *r)
{
    struct lf_err err = {0};
    json_t *body = lf_req_json(r, &err);
    int64_t t;
    const char *now = json_string_value(json_object_get(body, "now"));
    if (body && (now == NULL || lf_time_parse(now, &t) < 0))
        lf_err_field(&err, "now", "is required: an RFC 3339 date-time");
    if (err.code) {
        lf_reply_error(r, err.code, &err);
    } else {
        lf_clock_set(t);
        lf_dispatcher_notify(); /* deliveries may be due at the new time */
        clock_reply(r);
    }
    json_decref(body);
    lf_err_clear(&err);
}

const struct lf_route lf_testing_routes[] = {
    {"GET", "/api/v1/test/clock", clock_reply, LF_AUTH_TOKEN, LF_ROLES_ADMIN, 0, 0, 0},
    {"PUT", "/api/v1/test/clock", set_clock, LF_AUTH_TOKEN, LF_ROLES_ADMIN, 1, 0, 0},
    {NULL, NULL, NULL, 0, 0, 0, 0, 0},
};
#else
typedef int lf_testing_routes_unused; /* an empty translation unit is not ISO C */
#endif
