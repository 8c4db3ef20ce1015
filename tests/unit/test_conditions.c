/* Unit tests for the rule condition language: every op on every field kind, and validation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "engine/conditions.h"
#include "core/embedded.h"
#include "core/err.h"

#include <stdio.h>
#include <string.h>

/* Parses JSON written with ' for " (the tests read better without escapes). */
static json_t *js(const char *text)
{
    char buf[4096];
    size_t n = strlen(text);
    assert_true(n < sizeof buf);
    for (size_t i = 0; i <= n; i++) buf[i] = text[i] == '\'' ? '"' : text[i];
    json_error_t je;
    json_t *j = json_loads(buf, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
    if (j == NULL) fail_msg("bad test JSON %s: %s", text, je.text);
    return j;
}

/* The context most tests match against. */
static struct lf_cond_ctx fx;

static int setup(void **state)
{
    fx.event_type = "Page_View";
    fx.source = "Website";
    fx.utm_source = "LinkedIn";
    fx.utm_medium = "CPC";
    fx.utm_campaign = "Spring-Launch_2024";
    fx.metadata = js("{'path': '/Products/Pricing?plan=Pro', 'asset_type': 'WhitePaper', 'qty': 5,"
                     " 'ratio': 0.5, 'count_text': '42', 'real_text': '2.50',"
                     " 'big': 9007199254740993, 'flag': true, 'off': false, 'nothing': null,"
                     " 'empty': '', 'word': 'ten', 'hex': '0x10', 'spaced': ' 5',"
                     " 'umlaut': '\\u00c4pfel', 'tags': ['Alpha', 'beta', 7, 2.5],"
                     " 'items': [{'sku': 'A-1', 'price': 19.5}, {'sku': 'B-2', 'price': '20'}],"
                     " 'a': {'b': {'c': {'d': {'e': {'f': {'g': {'h': 'deep'}}}}}}},"
                     " 'obj': {'0': 'zero-key'}}");
    fx.lead = js("{'email': 'Ada@Uni-Lab.EDU', 'job_title': 'Head of Research', 'country': 'DE',"
                 " 'first_name': '', 'phone': null, 'total_score': 45, 'engagement_score': 0,"
                 " 'intent_confidence': 80}");
    fx.organization = js("{'name': 'Acme GmbH', 'domain': 'acme.example', 'industry': 'Biotech',"
                         " 'size': null, 'country': ''}");
    (void)state;
    return 0;
}

static int teardown(void **state)
{
    json_decref(fx.metadata);
    json_decref(fx.lead);
    json_decref(fx.organization);
    (void)state;
    return 0;
}

/* Compiles list (JSON with ') and matches it against ctx. */
static int m_ctx(const struct lf_cond_ctx *ctx, const char *list)
{
    struct lf_err err = {0};
    json_t *j = js(list);
    struct lf_conds *c = lf_conds_compile(j, "conditions", &err);
    if (c == NULL) fail_msg("%s does not compile: %s", list, err.msg);
    int r = lf_conds_match(c, ctx);
    lf_conds_free(c);
    json_decref(j);
    lf_err_clear(&err);
    return r;
}

static int m(const char *list)
{
    return m_ctx(&fx, list);
}

/* One condition against ctx; value is JSON with ', or NULL to leave it out. */
static int one_ctx(const struct lf_cond_ctx *ctx, const char *field, const char *op,
                   const char *value)
{
    char list[1024];
    if (value)
        snprintf(list, sizeof list, "[{'field': '%s', 'op': '%s', 'value': %s}]", field, op, value);
    else
        snprintf(list, sizeof list, "[{'field': '%s', 'op': '%s'}]", field, op);
    return m_ctx(ctx, list);
}

static int one(const char *field, const char *op, const char *value)
{
    return one_ctx(&fx, field, op, value);
}

/* Expects compiling j (which it takes) under prefix to fail with a problem on field whose
 * message contains part. */
static void bad_json(json_t *j, const char *prefix, const char *field, const char *part)
{
    struct lf_err err = {0};
    assert_null(lf_conds_compile(j, prefix, &err));
    assert_int_equal(err.code, -LF_EINVAL);
    size_t i;
    json_t *f;
    json_array_foreach(err.fields, i, f)
    {
        const char *name = json_string_value(json_object_get(f, "field"));
        const char *msg = json_string_value(json_object_get(f, "message"));
        if (strcmp(name, field) == 0 && strstr(msg, part)) {
            lf_err_clear(&err);
            json_decref(j);
            return;
        }
    }
    char *dump = json_dumps(err.fields, JSON_COMPACT);
    fail_msg("no problem on %s containing \"%s\"; got %s", field, part, dump);
}

static void bad(const char *list, const char *field, const char *part)
{
    bad_json(js(list), "conditions", field, part);
}

static json_t *leaf(const char *field, const char *op, json_t *value)
{
    json_t *c = json_pack("{s:s, s:s}", "field", field, "op", op);
    if (value) json_object_set_new(c, "value", value);
    return c;
}

static void text_fields(void **state)
{
    assert_true(one("event_type", "eq", "'page_view'"));
    assert_true(one("event_type", "eq", "'PAGE_VIEW'"));
    assert_false(one("event_type", "eq", "'page'"));
    assert_false(one("event_type", "ne", "'page_view'"));
    assert_true(one("event_type", "ne", "'download'"));
    assert_true(one("event_type", "in", "['download', 'PAGE_VIEW']"));
    assert_false(one("event_type", "in", "['download', 5]"));
    assert_true(one("event_type", "not_in", "['download']"));
    assert_false(one("event_type", "not_in", "['Page_view']"));
    assert_true(one("event_type", "contains", "'_VIEW'"));
    assert_false(one("event_type", "contains", "'views'"));
    assert_true(one("event_type", "prefix", "'page'"));
    assert_false(one("event_type", "prefix", "'view'"));
    assert_true(one("event_type", "suffix", "'VIEW'"));
    assert_false(one("event_type", "suffix", "'page'"));
    assert_true(one("event_type", "exists", NULL));
    assert_false(one("event_type", "not_exists", NULL));
    assert_false(one("event_type", "eq", "true"));
    assert_true(one("event_type", "ne", "true"));

    assert_true(one("source", "eq", "'WEBSITE'"));
    assert_true(one("source", "in", "['email', 'website']"));
    assert_true(one("utm.source", "contains", "'inked'"));
    assert_true(one("utm.source", "not_in", "['google']"));
    assert_true(one("utm.medium", "eq", "'cpc'"));
    assert_false(one("utm.medium", "ne", "'Cpc'"));
    assert_true(one("utm.campaign", "prefix", "'spring-'"));
    assert_true(one("utm.campaign", "suffix", "'_2024'"));
    assert_true(one("utm.campaign", "contains", "'LAUNCH'"));
    assert_false(one("utm.campaign", "eq", "2024"));
    assert_true(one("utm.campaign", "exists", NULL));
    (void)state;
}

static void metadata_fields(void **state)
{
    assert_true(one("metadata.path", "contains", "'pricing'"));
    assert_true(one("metadata.path", "prefix", "'/products'"));
    assert_true(one("metadata.path", "suffix", "'PLAN=PRO'"));
    assert_true(one("metadata.path", "eq", "'/products/pricing?plan=pro'"));
    assert_true(one("metadata.asset_type", "eq", "'WhItEpApEr'"));
    assert_true(one("metadata.asset_type", "in", "['protocol', 'whitepaper']"));
    assert_false(one("metadata.asset_type", "not_in", "['WHITEPAPER']"));
    assert_true(one("metadata.asset_type", "ne", "'datasheet'"));

    /* Nested objects (8 segments is the limit), array indexes, digit keys on objects. */
    assert_true(one("metadata.a.b.c.d.e.f.g.h", "eq", "'DEEP'"));
    assert_true(one("metadata.a.b.c", "exists", NULL));
    assert_true(one("metadata.items.1.sku", "eq", "'b-2'"));
    assert_true(one("metadata.items.0.sku", "prefix", "'a-'"));
    assert_false(one("metadata.items.2.sku", "exists", NULL));
    assert_true(one("metadata.items.0.price", "gt", "19"));
    assert_true(one("metadata.items.1.price", "gte", "20"));
    assert_false(one("metadata.items.1.price", "lt", "20"));
    assert_true(one("metadata.tags.0", "eq", "'alpha'"));
    assert_true(one("metadata.tags.2", "eq", "7"));
    assert_true(one("metadata.obj.0", "eq", "'zero-key'"));
    assert_false(one("metadata.path.0", "exists", NULL)); /* a string has no elements */
    assert_false(one("metadata.items.x", "exists", NULL));

    /* Numbers. */
    assert_true(one("metadata.qty", "gt", "4"));
    assert_false(one("metadata.qty", "gt", "5"));
    assert_true(one("metadata.qty", "gte", "5"));
    assert_true(one("metadata.qty", "lt", "5.5"));
    assert_false(one("metadata.qty", "lte", "4.9"));
    assert_true(one("metadata.qty", "lte", "5"));
    assert_true(one("metadata.ratio", "lt", "1"));
    assert_true(one("metadata.ratio", "gte", "0.5"));
    assert_true(one("metadata.count_text", "gt", "41.5"));
    assert_true(one("metadata.count_text", "lte", "42"));
    assert_false(one("metadata.word", "gt", "0"));
    assert_false(one("metadata.word", "lt", "0"));
    assert_false(one("metadata.flag", "gt", "0"));
    assert_false(one("metadata.tags", "gt", "0"));
    assert_false(one("metadata.hex", "gt", "0")); /* hex is not a numeric string */
    assert_false(one("metadata.spaced", "gt", "0"));

    /* contains on an array is element equality. */
    assert_true(one("metadata.tags", "contains", "'ALPHA'"));
    assert_false(one("metadata.tags", "contains", "'alp'"));
    assert_true(one("metadata.tags", "contains", "'7'"));
    assert_true(one("metadata.tags", "contains", "'2.5'"));
    assert_false(one("metadata.tags", "contains", "'8'"));
    assert_false(one("metadata.tags", "prefix", "'alpha'"));
    assert_false(one("metadata.qty", "contains", "'5'"));
    assert_false(one("metadata.a", "contains", "'b'"));

    /* exists: present, not null, not the empty string. */
    assert_false(one("metadata.empty", "exists", NULL));
    assert_true(one("metadata.empty", "not_exists", NULL));
    assert_true(one("metadata.empty", "eq", "''"));
    assert_false(one("metadata.nothing", "exists", NULL));
    assert_true(one("metadata.tags", "exists", NULL));
    assert_true(one("metadata.a", "exists", NULL));
    assert_true(one("metadata.off", "exists", NULL));
    assert_true(one("metadata.qty", "exists", NULL));
    assert_false(one("metadata.qty", "not_exists", NULL));
    assert_true(one("metadata.qty", "exists", "null")); /* a null value counts as omitted */

    /* A metadata object that is not one, or none at all. */
    struct lf_cond_ctx arr = {.metadata = js("[{'k': 'v'}]")};
    assert_true(one_ctx(&arr, "metadata.0.k", "eq", "'V'"));
    assert_false(one_ctx(&arr, "metadata.k", "exists", NULL));
    json_decref(arr.metadata);
    (void)state;
}

static void lead_fields(void **state)
{
    assert_true(one("lead.job_title", "contains", "'head'"));
    assert_true(one("lead.job_title", "prefix", "'HEAD OF'"));
    assert_true(one("lead.job_title", "suffix", "'research'"));
    assert_true(one("lead.job_title", "eq", "'head of research'"));
    assert_false(one("lead.job_title", "ne", "'head of research'"));
    assert_false(one("lead.job_title", "in", "['CEO', 'CTO']"));
    assert_true(one("lead.job_title", "not_in", "['CEO', 'CTO']"));
    assert_true(one("lead.job_title", "exists", NULL));
    assert_true(one("lead.country", "in", "['de', 'AT', 'CH']"));
    assert_true(one("lead.email", "suffix", "'.edu'"));
    assert_true(one("lead.email", "contains", "'uni-'"));
    assert_false(one("lead.first_name", "exists", NULL));
    assert_true(one("lead.first_name", "not_exists", NULL));
    assert_false(one("lead.phone", "exists", NULL));

    assert_true(one("lead.total_score", "gt", "40"));
    assert_false(one("lead.total_score", "gt", "45"));
    assert_true(one("lead.total_score", "gte", "45"));
    assert_false(one("lead.total_score", "lt", "45"));
    assert_true(one("lead.total_score", "lt", "45.5"));
    assert_true(one("lead.total_score", "lte", "45"));
    assert_true(one("lead.total_score", "eq", "45"));
    assert_true(one("lead.total_score", "eq", "'45'"));
    assert_false(one("lead.total_score", "ne", "45"));
    assert_true(one("lead.total_score", "in", "[10, 45]"));
    assert_false(one("lead.total_score", "not_in", "[45]"));
    assert_true(one("lead.total_score", "exists", NULL));
    assert_true(one("lead.engagement_score", "eq", "0"));
    assert_true(one("lead.engagement_score", "exists", NULL)); /* 0 is a value */
    assert_true(one("lead.intent_confidence", "gte", "80.0"));
    assert_false(one("lead.demographic_score", "exists", NULL));
    (void)state;
}

static void organization_fields(void **state)
{
    assert_true(one("organization.name", "contains", "'gmbh'"));
    assert_true(one("organization.name", "prefix", "'acme '"));
    assert_false(one("organization.name", "suffix", "'acme'"));
    assert_false(one("organization.name", "eq", "'acme'"));
    assert_true(one("organization.name", "ne", "'acme'"));
    assert_true(one("organization.domain", "suffix", "'.EXAMPLE'"));
    assert_true(one("organization.industry", "in", "['biotech', 'pharma']"));
    assert_false(one("organization.industry", "not_in", "['BIOTECH']"));
    assert_true(one("organization.industry", "exists", NULL));
    assert_false(one("organization.size", "exists", NULL));
    assert_true(one("organization.country", "not_exists", NULL));
    assert_false(one("organization.vat_id", "exists", NULL));
    (void)state;
}

/* A field that is absent or null: eq/in/contains/prefix/suffix/gt…/exists are false; ne,
 * not_in and not_exists are true. */
static void missing_fields(void **state)
{
    static const struct {
        const char *op, *value;
        int want;
        int numeric; /* needs a field that holds numbers */
        int textual; /* needs a field that holds text */
    } ops[] = {
        {"eq", "'a'", 0, 0, 0},       {"eq", "0", 0, 0, 0},        {"eq", "false", 0, 0, 0},
        {"eq", "''", 0, 0, 0},        {"ne", "'a'", 1, 0, 0},      {"ne", "0", 1, 0, 0},
        {"ne", "true", 1, 0, 0},      {"in", "['a', 0]", 0, 0, 0}, {"not_in", "['a', 0]", 1, 0, 0},
        {"contains", "'a'", 0, 0, 1}, {"prefix", "'a'", 0, 0, 1},  {"suffix", "'a'", 0, 0, 1},
        {"gt", "0", 0, 1, 0},         {"gte", "0", 0, 1, 0},       {"lt", "0", 0, 1, 0},
        {"lte", "0", 0, 1, 0},        {"exists", NULL, 0, 0, 0},   {"not_exists", NULL, 1, 0, 0},
    };
    static const struct {
        const char *field;
        int text, number; /* the ops it accepts */
        int absent;       /* absent or null in the fixture too */
    } fields[] = {
        {"event_type", 1, 0, 0},
        {"source", 1, 0, 0},
        {"utm.source", 1, 0, 0},
        {"utm.medium", 1, 0, 0},
        {"utm.campaign", 1, 0, 0},
        {"metadata.path", 1, 1, 0},
        {"metadata.x.y", 1, 1, 1},
        {"metadata.nothing", 1, 1, 1},
        {"metadata.tags.9", 1, 1, 1},
        {"metadata.items.0.colour", 1, 1, 1},
        {"lead.job_title", 1, 0, 0},
        {"lead.phone", 1, 0, 1},
        {"lead.region", 1, 0, 1},
        {"lead.total_score", 0, 1, 0},
        {"lead.demographic_score", 0, 1, 1},
        {"organization.name", 1, 0, 0},
        {"organization.size", 1, 0, 1},
        {"organization.vat_id", 1, 0, 1},
    };
    struct lf_cond_ctx empty = {0};
    for (size_t f = 0; f < sizeof fields / sizeof fields[0]; f++) {
        for (size_t o = 0; o < sizeof ops / sizeof ops[0]; o++) {
            if ((ops[o].numeric && !fields[f].number) || (ops[o].textual && !fields[f].text))
                continue;
            int got = one_ctx(&empty, fields[f].field, ops[o].op, ops[o].value);
            if (got != ops[o].want)
                fail_msg("%s %s %s on an empty context: %d", fields[f].field, ops[o].op,
                         ops[o].value ? ops[o].value : "", got);
            if (!fields[f].absent) continue;
            got = one(fields[f].field, ops[o].op, ops[o].value);
            if (got != ops[o].want)
                fail_msg("%s %s %s on the fixture: %d", fields[f].field, ops[o].op,
                         ops[o].value ? ops[o].value : "", got);
        }
    }
    (void)state;
}

static void coercions(void **state)
{
    assert_true(one("metadata.qty", "eq", "5.0")); /* integer vs real */
    assert_true(one("metadata.ratio", "eq", "0.5"));
    assert_false(one("metadata.ratio", "eq", "0"));
    assert_true(one("metadata.qty", "eq", "'5'")); /* a number vs a numeric string */
    assert_true(one("metadata.qty", "eq", "'5.0'"));
    assert_true(one("metadata.qty", "eq", "'+5'"));
    assert_false(one("metadata.qty", "eq", "' 5'"));
    assert_false(one("metadata.qty", "eq", "'5 apples'"));
    assert_true(one("metadata.ratio", "eq", "'.5'"));
    assert_true(one("metadata.count_text", "eq", "42")); /* a numeric string vs a number */
    assert_true(one("metadata.count_text", "eq", "42.0"));
    assert_true(one("metadata.count_text", "eq", "'42'"));
    assert_false(one("metadata.count_text", "eq", "'42.0'")); /* two strings compare as text */
    assert_true(one("metadata.real_text", "eq", "2.5"));
    assert_true(one("metadata.real_text", "gt", "2.4"));
    assert_false(one("metadata.real_text", "gt", "2.5"));
    assert_false(one("metadata.word", "eq", "10"));
    assert_false(one("metadata.hex", "eq", "16"));
    assert_false(one("metadata.spaced", "eq", "5"));
    assert_true(one("metadata.big", "eq", "9007199254740993")); /* integers compare exactly */
    assert_false(one("metadata.big", "eq", "9007199254740992"));
    assert_true(one("metadata.big", "gt", "9007199254740992"));
    assert_true(one("metadata.big", "eq", "'9007199254740993'"));
    assert_true(one("metadata.qty", "in", "['4', '5']"));
    assert_true(one("metadata.count_text", "in", "[41, 42]"));
    assert_false(one("metadata.count_text", "not_in", "[42]"));
    assert_false(one("metadata.qty", "ne", "'5'"));
    /* Case folding is ASCII only. */
    assert_false(one("metadata.umlaut", "eq", "'\\u00e4pfel'"));
    assert_true(one("metadata.umlaut", "eq", "'\\u00c4PFEL'"));
    (void)state;
}

static void booleans(void **state)
{
    assert_true(one("metadata.flag", "eq", "true"));
    assert_false(one("metadata.flag", "eq", "false"));
    assert_false(one("metadata.flag", "ne", "true"));
    assert_true(one("metadata.flag", "ne", "false"));
    assert_true(one("metadata.off", "eq", "false"));
    assert_false(one("metadata.off", "eq", "true"));
    assert_false(one("metadata.flag", "eq", "'true'"));
    assert_false(one("metadata.flag", "eq", "1"));
    assert_false(one("metadata.qty", "eq", "true"));
    assert_false(one("metadata.empty", "eq", "false"));
    struct lf_cond_ctx ctx = {.metadata = js("{'s': 'true'}")};
    assert_false(one_ctx(&ctx, "metadata.s", "eq", "true")); /* only a JSON boolean */
    json_decref(ctx.metadata);
    (void)state;
}

#define T_ "{'field': 'source', 'op': 'eq', 'value': 'website'}"
#define F_ "{'field': 'source', 'op': 'eq', 'value': 'email'}"

static void any_groups(void **state)
{
    assert_true(m("[{'any': [" F_ ", " T_ "]}]"));
    assert_true(m("[{'any': [" T_ ", " F_ "]}]"));
    assert_false(m("[{'any': [" F_ ", " F_ "]}]"));
    assert_true(m("[{'any': [" T_ "]}]"));
    /* Groups and conditions are ANDed at the top level. */
    assert_false(m("[{'any': [" T_ ", " F_ "]}, " F_ "]"));
    assert_true(m("[{'any': [" F_ ", " T_ "]}, " T_ "]"));
    assert_false(m("[" T_ ", {'any': [" F_ "]}, " T_ "]"));
    assert_true(m("[" T_ ", " T_ ", " T_ "]"));
    assert_false(m("[" T_ ", " T_ ", " F_ "]"));
    /* Nested groups: the OR reaches through, and what follows a group is still checked. */
    assert_true(m("[{'any': [" F_ ", {'any': [" F_ ", {'any': [" T_ "]}]}]}]"));
    assert_false(m("[{'any': [" F_ ", {'any': [" F_ ", {'any': [" F_ "]}]}]}]"));
    assert_true(m("[{'any': [{'any': [" F_ "]}, " T_ "]}, " T_ "]"));
    assert_false(m("[{'any': [{'any': [" T_ "]}, " F_ "]}, " F_ "]"));
    assert_false(m("[{'any': [{'any': [" F_ ", " F_ "]}, {'any': [" F_ "]}]}, " T_ "]"));
    assert_true(m("[{'any': [{'any': [" F_ ", " F_ "]}, {'any': [" F_ ", " T_ "]}]}, " T_ "]"));
    /* Four deep is allowed. */
    assert_true(m("[{'any': [{'any': [{'any': [{'any': [" F_ ", " T_ "]}]}]}]}]"));
    (void)state;
}

static void empty_lists(void **state)
{
    struct lf_err err = {0};
    struct lf_cond_ctx none = {0};
    struct lf_conds *c = lf_conds_compile(NULL, "conditions", &err);
    assert_non_null(c);
    assert_true(lf_conds_match(c, &none));
    assert_true(lf_conds_match(c, &fx));
    assert_int_equal(lf_conds_needs(c), 0);
    lf_conds_free(c);
    assert_true(m("[]"));
    assert_true(m_ctx(&none, "[]"));
    assert_true(m("null"));
    assert_int_equal(err.code, 0);
    lf_conds_free(NULL);
    (void)state;
}

static unsigned needs(const char *list)
{
    json_t *j = js(list);
    struct lf_conds *c = lf_conds_compile(j, "conditions", NULL);
    assert_non_null(c);
    unsigned n = lf_conds_needs(c);
    lf_conds_free(c);
    json_decref(j);
    return n;
}

static void needs_bits(void **state)
{
    assert_int_equal(needs("[]"), 0);
    assert_int_equal(needs("[" T_ ", {'field': 'metadata.x', 'op': 'exists'}]"), 0);
    assert_int_equal(needs("[{'field': 'lead.total_score', 'op': 'gt', 'value': 1}]"),
                     LF_COND_NEEDS_LEAD);
    assert_int_equal(needs("[{'field': 'organization.size', 'op': 'exists'}]"), LF_COND_NEEDS_ORG);
    assert_int_equal(needs("[" T_ ", {'any': [" F_ ", {'any': [{'field': 'lead.email', 'op': "
                           "'exists'}, {'field': 'organization.name', 'op': 'exists'}]}]}]"),
                     LF_COND_NEEDS_LEAD | LF_COND_NEEDS_ORG);
    (void)state;
}

static void unknown_names(void **state)
{
    bad("[{'field': 'evt', 'op': 'eq', 'value': 'x'}]", "conditions[0].field",
        "unknown field 'evt' (allowed: event_type, source, utm.source, utm.medium, utm.campaign, "
        "metadata.<path>, lead.<field>, organization.<field>)");
    bad("[{'field': 'utm.term', 'op': 'eq', 'value': 'x'}]", "conditions[0].field",
        "unknown field 'utm.term'");
    bad("[{'field': 'utm_source', 'op': 'eq', 'value': 'x'}]", "conditions[0].field",
        "did you mean utm.source?");
    bad("[{'field': 'lead.jobtitle', 'op': 'eq', 'value': 'x'}]", "conditions[0].field",
        "unknown lead field 'jobtitle' (did you mean job_title? allowed: email, first_name");
    bad("[{'field': 'lead.', 'op': 'eq', 'value': 'x'}]", "conditions[0].field",
        "unknown lead field ''");
    bad("[{'field': 'organization.website', 'op': 'eq', 'value': 'x'}]", "conditions[0].field",
        "unknown organization field 'website' (allowed: name, domain, vat_id, country, "
        "industry, size)");
    bad("[" T_ ", {'field': 'source', 'op': 'equals', 'value': 'x'}]", "conditions[1].op",
        "unknown op 'equals' (allowed: eq, ne, in, not_in, contains, prefix, suffix, gt, gte, "
        "lt, lte, exists, not_exists)");
    bad("[{'field': 'source', 'op': 'not-in', 'value': ['x']}]", "conditions[0].op",
        "did you mean not_in?");
    bad("[{'field': 'source', 'op': 'EQ', 'value': 'x'}]", "conditions[0].op", "unknown op");
    bad("[{'field': 'source', 'op': 'eq', 'value': 'x', 'weight': 2}]", "conditions[0].weight",
        "unknown key 'weight'");
    bad("[{'any': [" T_ "], 'note': 'x'}]", "conditions[0].note", "unknown key 'note'");
    bad("[{'any': [" T_ ", {'field': 'source', 'op': 'eq', 'value': 'x', 'Field': 1}]}]",
        "conditions[0].any[1].Field", "unknown key 'Field'");
    (void)state;
}

static void missing_parts(void **state)
{
    bad("[{'op': 'eq', 'value': 'x'}]", "conditions[0].field", "is required");
    bad("[{'field': 'source', 'value': 'x'}]", "conditions[0].op", "is required");
    bad("[{'field': 'source', 'op': 'eq'}]", "conditions[0].value", "is required for eq");
    bad("[{'field': 'source', 'op': 'in'}]", "conditions[0].value", "is required for in");
    bad("[{'field': 'lead.total_score', 'op': 'gt'}]", "conditions[0].value", "is required for gt");
    bad("[{'field': 5, 'op': 'eq', 'value': 'x'}]", "conditions[0].field", "must be a string");
    bad("[{'field': 'source\\u0000x', 'op': 'eq', 'value': 'x'}]", "conditions[0].field",
        "must be a string");
    bad("[{'field': 'source', 'op': ['eq'], 'value': 'x'}]", "conditions[0].op",
        "must be a string");
    bad("['source']", "conditions[0]", "must be an object");
    bad("[" T_ ", 5]", "conditions[1]", "must be an object");
    bad("[{}]", "conditions[0].field", "is required");
    (void)state;
}

static void wrong_values(void **state)
{
    static const char *const eq = "must be a string, a number or a boolean for eq";
    bad("[{'field': 'source', 'op': 'eq', 'value': ['x']}]", "conditions[0].value", eq);
    bad("[{'field': 'source', 'op': 'eq', 'value': null}]", "conditions[0].value", eq);
    bad("[{'field': 'source', 'op': 'eq', 'value': {}}]", "conditions[0].value", eq);
    bad("[{'field': 'source', 'op': 'ne', 'value': []}]", "conditions[0].value",
        "must be a string, a number or a boolean for ne");
    bad("[{'field': 'source', 'op': 'in', 'value': 'x'}]", "conditions[0].value",
        "must be a non-empty array of strings and numbers for in");
    bad("[{'field': 'source', 'op': 'not_in', 'value': []}]", "conditions[0].value",
        "must be a non-empty array of strings and numbers for not_in");
    bad("[{'field': 'source', 'op': 'in', 'value': ['a', true]}]", "conditions[0].value[1]",
        "must be a string or a number");
    bad("[{'field': 'source', 'op': 'in', 'value': [['a']]}]", "conditions[0].value[0]",
        "must be a string or a number");
    bad("[{'field': 'source', 'op': 'in', 'value': [null]}]", "conditions[0].value[0]",
        "must be a string or a number");
    bad("[{'field': 'metadata.x', 'op': 'contains', 'value': 5}]", "conditions[0].value",
        "must be a non-empty string for contains");
    bad("[{'field': 'metadata.x', 'op': 'prefix', 'value': ''}]", "conditions[0].value",
        "must be a non-empty string for prefix");
    bad("[{'field': 'metadata.x', 'op': 'suffix', 'value': ['a']}]", "conditions[0].value",
        "must be a non-empty string for suffix");
    bad("[{'field': 'metadata.x', 'op': 'gt', 'value': '5'}]", "conditions[0].value",
        "must be a number for gt");
    bad("[{'field': 'metadata.x', 'op': 'gte', 'value': true}]", "conditions[0].value",
        "must be a number for gte");
    bad("[{'field': 'lead.total_score', 'op': 'lt', 'value': null}]", "conditions[0].value",
        "must be a number for lt");
    bad("[{'field': 'lead.total_score', 'op': 'lte', 'value': [1]}]", "conditions[0].value",
        "must be a number for lte");
    bad("[{'field': 'source', 'op': 'exists', 'value': 'x'}]", "conditions[0].value",
        "must be omitted for exists");
    bad("[{'field': 'source', 'op': 'not_exists', 'value': false}]", "conditions[0].value",
        "must be omitted for not_exists");

    /* in takes at most 1000 values. */
    json_t *vals = json_array();
    for (int i = 0; i < 1000; i++) json_array_append_new(vals, json_integer(i));
    json_t *list = json_pack("[o]", leaf("metadata.n", "in", json_incref(vals)));
    struct lf_conds *c = lf_conds_compile(list, "conditions", NULL);
    assert_non_null(c);
    struct lf_cond_ctx ctx = {.metadata = js("{'n': '999'}")};
    assert_true(lf_conds_match(c, &ctx));
    json_decref(ctx.metadata);
    lf_conds_free(c);
    json_decref(list);
    json_array_append_new(vals, json_string("one more"));
    bad_json(json_pack("[o]", leaf("metadata.n", "in", vals)), "conditions", "conditions[0].value",
             "at most 1000 values for in");
    (void)state;
}

static void op_field_mismatch(void **state)
{
    bad("[{'field': 'lead.job_title', 'op': 'gt', 'value': 5}]", "conditions[0].op",
        "gt compares numbers; lead.job_title is text");
    bad("[{'field': 'event_type', 'op': 'lt', 'value': 5}]", "conditions[0].op",
        "lt compares numbers; event_type is text");
    bad("[{'field': 'source', 'op': 'gte', 'value': 5}]", "conditions[0].op", "compares numbers");
    bad("[{'field': 'utm.source', 'op': 'lte', 'value': 5}]", "conditions[0].op",
        "compares numbers");
    bad("[{'field': 'utm.medium', 'op': 'gt', 'value': 5}]", "conditions[0].op",
        "compares numbers");
    bad("[{'field': 'utm.campaign', 'op': 'gt', 'value': 5}]", "conditions[0].op",
        "compares numbers");
    bad("[{'field': 'organization.size', 'op': 'gte', 'value': 50}]", "conditions[0].op",
        "gte compares numbers; organization.size is text");
    bad("[{'field': 'lead.total_score', 'op': 'contains', 'value': '4'}]", "conditions[0].op",
        "contains compares text; lead.total_score is a number");
    bad("[{'field': 'lead.behavior_score', 'op': 'prefix', 'value': '4'}]", "conditions[0].op",
        "prefix compares text");
    bad("[{'field': 'lead.intent_confidence', 'op': 'suffix', 'value': '4'}]", "conditions[0].op",
        "suffix compares text");
    (void)state;
}

static void metadata_paths(void **state)
{
    bad("[{'field': 'metadata.a..b', 'op': 'exists'}]", "conditions[0].field",
        "metadata path 'a..b' has an empty segment");
    bad("[{'field': 'metadata..a', 'op': 'exists'}]", "conditions[0].field", "empty segment");
    bad("[{'field': 'metadata.a.', 'op': 'exists'}]", "conditions[0].field", "empty segment");
    bad("[{'field': 'metadata.', 'op': 'exists'}]", "conditions[0].field", "needs a path");
    bad("[{'field': 'metadata', 'op': 'exists'}]", "conditions[0].field", "needs a path");
    bad("[{'field': 'metadata.a.b.c.d.e.f.g.h.i', 'op': 'exists'}]", "conditions[0].field",
        "more than 8 segments");
    (void)state;
}

static void group_errors(void **state)
{
    bad("[{'any': []}]", "conditions[0].any", "must be a non-empty array of conditions");
    bad("[{'any': 'x'}]", "conditions[0].any", "must be a non-empty array of conditions");
    bad("[{'any': null}]", "conditions[0].any", "must be a non-empty array of conditions");
    bad("[" T_ ", {'any': [" T_ ", {'any': []}]}]", "conditions[1].any[1].any",
        "must be a non-empty array");
    bad("[{'any': [{'any': [{'any': [{'any': [{'any': [" T_ "]}]}]}]}]}]",
        "conditions[0].any[0].any[0].any[0].any[0]", "nest at most 4 deep");
    bad("[{'any': [" T_ ", " T_ ", {'field': 'source', 'op': 'in', 'value': 'x'}]}]",
        "conditions[0].any[2].value", "non-empty array");
    bad("[" T_ ", {'any': [" F_ ", {'any': [" T_ ", {'field': 'lead.x', 'op': 'exists'}]}]}]",
        "conditions[1].any[1].any[1].field", "unknown lead field 'x'");
    (void)state;
}

static void limits(void **state)
{
    /* 64 conditions, some inside groups, compile; a 65th does not. */
    json_t *list = json_array(), *g1 = json_array(), *g2 = json_array();
    for (int i = 0; i < 30; i++) json_array_append_new(list, js(T_));
    for (int i = 0; i < 20; i++) json_array_append_new(g1, js(F_));
    for (int i = 0; i < 14; i++) json_array_append_new(g2, js(i == 13 ? T_ : F_));
    json_array_append_new(g1, json_pack("{s:o}", "any", g2));
    json_array_append_new(list, json_pack("{s:o}", "any", g1));
    struct lf_conds *c = lf_conds_compile(list, "conditions", NULL);
    assert_non_null(c);
    assert_true(lf_conds_match(c, &fx));
    lf_conds_free(c);
    json_array_append_new(g2, js(T_));
    bad_json(list, "conditions", "conditions[30].any[20].any[14]", "at most 64 conditions");

    list = json_array();
    for (int i = 0; i < 100; i++) json_array_append_new(list, js(T_));
    bad_json(list, "conditions", "conditions[64]", "at most 64 conditions");
    (void)state;
}

static void whole_list(void **state)
{
    bad("{'field': 'source', 'op': 'eq', 'value': 'x'}", "conditions",
        "must be an array of conditions");
    bad("'source'", "conditions", "must be an array of conditions");
    bad_json(js("[{'field': 'source', 'op': 'equals', 'value': 'x'}]"), "rules[3].conditions",
             "rules[3].conditions[0].op", "unknown op");
    bad_json(js("5"), "rules[3].conditions", "rules[3].conditions", "must be an array");

    /* Every problem is reported, one field each. */
    struct lf_err err = {0};
    json_t *j = js("[{'field': 'lead.nope', 'op': 'gt', 'value': 'x'}, " T_
                   ", {'field': 'source', 'op': 'contains', 'value': ''}]");
    assert_null(lf_conds_compile(j, "conditions", &err));
    assert_int_equal(err.code, -LF_EINVAL);
    assert_int_equal(json_array_size(err.fields), 3);
    const char *want[] = {"conditions[0].field", "conditions[0].value", "conditions[2].value"};
    for (size_t i = 0; i < 3; i++)
        assert_string_equal(
            json_string_value(json_object_get(json_array_get(err.fields, i), "field")), want[i]);
    assert_non_null(strstr(err.msg, "conditions[0].field"));
    lf_err_clear(&err);

    /* The number of problems recorded has a cap. */
    json_t *many = json_array();
    for (int i = 0; i < 60; i++) json_array_append_new(many, js("{'field': 'x', 'op': 'y'}"));
    assert_null(lf_conds_compile(many, "conditions", &err));
    assert_true(json_array_size(err.fields) <= 20);
    lf_err_clear(&err);
    json_decref(many);

    /* err may be NULL. */
    assert_null(lf_conds_compile(j, "conditions", NULL));
    json_decref(j);
    (void)state;
}

/* Every default rule's conditions compile. */
static void defaults_compile(void **state)
{
    static const char *const files[] = {"scoring_rules.json", "intent_rules.json"};
    for (size_t f = 0; f < 2; f++) {
        const struct lf_embedded *e = lf_embedded_find(lf_embedded_defaults, files[f]);
        assert_non_null(e);
        json_error_t je;
        json_t *rules = json_loadb(e->data, e->len, 0, &je);
        assert_non_null(rules);
        assert_true(json_array_size(rules) > 0);
        size_t i;
        json_t *rule;
        json_array_foreach(rules, i, rule)
        {
            char prefix[64];
            struct lf_err err = {0};
            snprintf(prefix, sizeof prefix, "%s[%zu].conditions", files[f], i);
            json_t *conds = json_object_get(rule, "conditions");
            assert_non_null(conds);
            struct lf_conds *c = lf_conds_compile(conds, prefix, &err);
            if (c == NULL) fail_msg("%s: %s", prefix, err.msg);
            lf_conds_free(c);
        }
        json_decref(rules);
    }

    /* Two of them, read the way the engine will. */
    const struct lf_embedded *e = lf_embedded_find(lf_embedded_defaults, "scoring_rules.json");
    json_t *rules = json_loadb(e->data, e->len, 0, NULL);
    size_t i;
    json_t *rule;
    int seen = 0;
    json_array_foreach(rules, i, rule)
    {
        const char *slug = json_string_value(json_object_get(rule, "slug"));
        struct lf_conds *c = lf_conds_compile(json_object_get(rule, "conditions"), "c", NULL);
        assert_non_null(c);
        if (strcmp(slug, "title-decision-maker") == 0) {
            assert_int_equal(lf_conds_needs(c), LF_COND_NEEDS_LEAD);
            assert_true(lf_conds_match(c, &fx)); /* "Head of Research" */
            seen++;
        } else if (strcmp(slug, "pricing-page") == 0) {
            assert_int_equal(lf_conds_needs(c), 0);
            assert_true(lf_conds_match(c, &fx));
            seen++;
        } else if (strcmp(slug, "country-dach") == 0) {
            assert_true(lf_conds_match(c, &fx));
            struct lf_cond_ctx none = {0};
            assert_false(lf_conds_match(c, &none));
            seen++;
        }
        lf_conds_free(c);
    }
    assert_int_equal(seen, 3);
    json_decref(rules);
    (void)state;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(text_fields),      cmocka_unit_test(metadata_fields),
        cmocka_unit_test(lead_fields),      cmocka_unit_test(organization_fields),
        cmocka_unit_test(missing_fields),   cmocka_unit_test(coercions),
        cmocka_unit_test(booleans),         cmocka_unit_test(any_groups),
        cmocka_unit_test(empty_lists),      cmocka_unit_test(needs_bits),
        cmocka_unit_test(unknown_names),    cmocka_unit_test(missing_parts),
        cmocka_unit_test(wrong_values),     cmocka_unit_test(op_field_mismatch),
        cmocka_unit_test(metadata_paths),   cmocka_unit_test(group_errors),
        cmocka_unit_test(limits),           cmocka_unit_test(whole_list),
        cmocka_unit_test(defaults_compile),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
