/* A stage for testing the processing framework, built only into test builds
 * (LF_TESTING) and enabled by LEADFLOW_TEST_STAGES=1. Driven by the event's metadata:
 *   test_fail: true        fail every try
 *   test_fail_times: N     fail the first N tries, then succeed
 *   test_sleep_ms: N       take N ms (for drain tests)
 * It records {"test": "ok", "attempt": n} in the result. */
#ifdef LF_TESTING
#include "engine/stage.h"

#include <time.h>

static int run(struct lf_stage_ctx *ctx, struct lf_event *ev, struct lf_err *err)
{
    json_t *md = lf_event_metadata(ev);
    json_int_t sleep_ms = json_integer_value(json_object_get(md, "test_sleep_ms"));
    if (sleep_ms > 0 && sleep_ms < 10000) {
        struct timespec ts = {sleep_ms / 1000, (long)(sleep_ms % 1000) * 1000000};
        nanosleep(&ts, NULL);
    }
    if (json_is_true(json_object_get(md, "test_fail")))
        return lf_err_set(err, -LF_EINTERNAL, "test stage: asked to fail");
    json_int_t times = json_integer_value(json_object_get(md, "test_fail_times"));
    if (ev->attempts < times)
        return lf_err_set(err, -LF_EINTERNAL, "test stage: failing try %d of %lld",
                          ev->attempts + 1, (long long)times);
    json_object_set_new(ev->result, "test", json_string("ok"));
    json_object_set_new(ev->result, "attempt", json_integer(ev->attempts + 1));
    (void)ctx;
    return 0;
}

const struct lf_stage lf_stage_test = {"test", 0, run, 0};
#endif
