/* Unit tests for automation templates and rule compilation (src/engine/auto_rules.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "engine/automation.h"
#include "core/err.h"

#include <stdlib.h>
#include <string.h>

static void render_is(const char *tpl, json_t *vars, const char *want)
{
    char *got = lf_template_render(tpl, vars);
    assert_string_equal(got, want);
    free(got);
}

/* Every occurrence is replaced; missing and null values are empty; numbers print as numbers;
 * braces that are not placeholders stay text. */
static void test_render(void **state)
{
    (void)state;
    json_t *vars = json_pack("{s:s, s:n, s:i, s:s}", "lead.first_name", "Ada", "lead.last_name",
                             "lead.score", 87, "deal.value", "12500.50 EUR");
    render_is("Hi {lead.first_name}, {lead.first_name}!", vars, "Hi Ada, Ada!");
    render_is("{lead.last_name}|{owner.name}|{lead.score}", vars, "||87");
    render_is("{deal.value} {not a placeholder} { } {", vars,
              "12500.50 EUR {not a placeholder} { } {");
    render_is("", vars, "");
    render_is("no placeholders", vars, "no placeholders");
    json_decref(vars);
}

static void test_check(void **state)
{
    (void)state;
    struct lf_err err = {0};
    assert_int_equal(lf_template_check("{lead.email} {deal.stage} {owner.name}", "t", &err), 0);
    assert_int_equal(err.code, 0);
    assert_int_equal(lf_template_check("{lead.nme}", "action_config.title", &err), -LF_EINVAL);
    json_t *f = json_array_get(err.fields, 0);
    assert_string_equal(json_string_value(json_object_get(f, "field")), "action_config.title");
    assert_non_null(strstr(json_string_value(json_object_get(f, "message")), "{lead.nme}"));
    lf_err_clear(&err);
    /* braces around spaces, or empty, are text; a near miss is an unknown placeholder */
    assert_int_equal(lf_template_check("{ lead.email } {} {", "t", &err), 0);
    assert_int_equal(lf_template_check("{Lead.Email}", "t", &err), -LF_EINVAL);
    lf_err_clear(&err);
    assert_int_equal(lf_template_check("{lead.emai1}", "t", &err), -LF_EINVAL);
    lf_err_clear(&err);
}

static void test_compile(void **state)
{
    (void)state;
    struct lf_auto_rule r;
    assert_int_equal(lf_auto_rule_compile(&r, "id1", "n", "time_in_stage",
                                          "{\"days\": 2, \"hours\": 3, \"stage\": \"s1\"}",
                                          "create_task", "{\"title\": \"x\"}", 0),
                     0);
    assert_int_equal(r.trigger, LF_TRIG_TIME);
    assert_true(r.in_stage_ms == (2 * 24 + 3) * 3600000LL);
    assert_string_equal(r.stage, "s1");
    lf_auto_rule_clear(&r);
    assert_int_equal(lf_auto_rule_compile(&r, "id2", "n", "event", "{\"event_type\": \"x\"}",
                                          "sync_moco", "{\"operation\": \"create_offer\"}", 5),
                     0);
    assert_int_equal(r.max_per_hour, 5);
    assert_string_equal(r.event_type, "x");
    lf_auto_rule_clear(&r);
    /* what no longer compiles is left out */
    assert_int_equal(lf_auto_rule_compile(&r, "id3", "n", "event", "{}", "create_task", "{}", 0),
                     -LF_EINVAL);
    assert_int_equal(lf_auto_rule_compile(&r, "id4", "n", "nope", "{}", "create_task", "{}", 0),
                     -LF_EINVAL);
    assert_int_equal(lf_auto_rule_compile(&r, "id5", "n", "time_in_stage", "{\"days\": 0}",
                                          "create_task", "{}", 0),
                     -LF_EINVAL);
}

static void test_names(void **state)
{
    (void)state;
    for (int i = 0; i < LF_TRIG_COUNT; i++)
        assert_int_equal(lf_auto_trigger_parse(lf_auto_trigger_name(i)), i);
    for (int i = 0; i < LF_ACT_COUNT; i++)
        assert_int_equal(lf_auto_action_parse(lf_auto_action_name(i)), i);
    assert_int_equal(lf_auto_trigger_parse("Event"), -1);
    assert_int_equal(lf_auto_action_parse(NULL), -1);
    assert_non_null(lf_auto_message_text("hot_lead"));
    assert_null(lf_auto_message_text("cold_lead"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render),
        cmocka_unit_test(test_check),
        cmocka_unit_test(test_compile),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
