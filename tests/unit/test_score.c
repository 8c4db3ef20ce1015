/* Unit tests for the intent confidence formula and the choice of the primary intent (ties
 * mean none). The tier mapping is tested in test_identity.c, beside the settings it reads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "engine/score.h"

#include <stdio.h>
#include <string.h>

static void confidence(void **state)
{
    /* round(100 * top / max(total, min_evidence)) */
    assert_int_equal(lf_intent_confidence(20, 20, 30), 67); /* 66.67 up */
    assert_int_equal(lf_intent_confidence(15, 15, 30), 50);
    assert_int_equal(lf_intent_confidence(30, 30, 30), 100);
    assert_int_equal(lf_intent_confidence(40, 60, 30), 67);
    assert_int_equal(lf_intent_confidence(1, 3, 0), 33);     /* 33.3 down */
    assert_int_equal(lf_intent_confidence(1, 8, 0), 13);     /* 12.5 rounds half up */
    assert_int_equal(lf_intent_confidence(50, 100, 30), 50); /* total above min_evidence */
    assert_int_equal(lf_intent_confidence(0, 0, 30), 0);
    assert_int_equal(lf_intent_confidence(5, 0, 0), 0);        /* no evidence at all */
    assert_int_equal(lf_intent_confidence(200, 100, 30), 100); /* clamped */
    (void)state;
}

static const char *primary(const char *json, int *top, int *total)
{
    static char name[32];
    json_t *s = json_loads(json, 0, NULL);
    const char *p = lf_intent_primary(s, top, total);
    snprintf(name, sizeof name, "%s", p ? p : "(none)");
    json_decref(s);
    return name;
}

static void primary_intent(void **state)
{
    int top, total;
    assert_string_equal(primary("{\"research\": 20}", &top, &total), "research");
    assert_int_equal(top, 20);
    assert_int_equal(total, 20);
    assert_string_equal(primary("{\"research\": 20, \"b2b\": 20}", &top, &total), "(none)");
    assert_int_equal(total, 40);
    assert_string_equal(primary("{\"b2b\": 20, \"research\": 20, \"co\": 25}", &top, &total), "co");
    assert_int_equal(top, 25);
    assert_string_equal(primary("{\"co\": 25, \"b2b\": 25, \"research\": 5}", &top, &total),
                        "(none)");
    assert_string_equal(primary("{\"a\": 5, \"b\": 9, \"c\": 9, \"d\": 1}", &top, &total),
                        "(none)");
    assert_string_equal(primary("{\"a\": 9, \"b\": 5, \"c\": 8}", &top, &total), "a");
    assert_int_equal(total, 22);
    assert_string_equal(primary("{}", &top, &total), "(none)");
    assert_int_equal(top, 0);
    assert_string_equal(primary("{\"a\": 0}", &top, &total), "(none)");
    assert_string_equal(primary("{\"a\": -5, \"b\": 3}", &top, &total), "b");
    assert_int_equal(total, 3); /* negative points count as none towards the total */
    (void)state;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(confidence),
        cmocka_unit_test(primary_intent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
