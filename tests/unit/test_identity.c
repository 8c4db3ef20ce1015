/* Unit tests for identity normalisation, free-mail detection, tiers and CSV row mapping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "engine/identity.h"
#include "engine/importer.h"
#include "engine/settings.h"
#include "core/err.h"

#include <string.h>

static void expect(enum lf_identity_kind kind, const char *in, const char *want)
{
    char out[LF_IDENTITY_MAX];
    int rc = lf_identity_normalise(kind, in, out);
    if (want == NULL) {
        assert_int_equal(rc, -LF_EINVAL);
        assert_string_equal(out, "");
    } else {
        assert_int_equal(rc, 0);
        assert_string_equal(out, want);
    }
}

static void emails(void **state)
{
    expect(LF_ID_EMAIL, "  Ada@Lab.Example ", "ada@lab.example");
    expect(LF_ID_EMAIL, "first.last+tag@sub.domain.co.uk", "first.last+tag@sub.domain.co.uk");
    expect(LF_ID_EMAIL, "no-at-sign", NULL);
    expect(LF_ID_EMAIL, "@lab.example", NULL);
    expect(LF_ID_EMAIL, "a@b@c.example", NULL);
    expect(LF_ID_EMAIL, "a@nodot", NULL);
    expect(LF_ID_EMAIL, "a@.example", NULL);
    expect(LF_ID_EMAIL, "a@example.", NULL);
    expect(LF_ID_EMAIL, "a b@example.com", NULL);
    expect(LF_ID_EMAIL, "a@example.com, b@example.com", NULL);
    expect(LF_ID_EMAIL, "", NULL);
    (void)state;
}

static void linkedin_urls(void **state)
{
    const char *want = "linkedin.com/in/ada-lovelace";
    expect(LF_ID_LINKEDIN, "https://www.linkedin.com/in/ada-lovelace/", want);
    expect(LF_ID_LINKEDIN, "http://linkedin.com/in/Ada-Lovelace", want);
    expect(LF_ID_LINKEDIN, "HTTPS://WWW.LINKEDIN.COM/in/ada-lovelace?trk=abc#x", want);
    expect(LF_ID_LINKEDIN, "linkedin.com/in/ada-lovelace//", want);
    expect(LF_ID_LINKEDIN, "https://de.linkedin.com/in/ada-lovelace", want);
    expect(LF_ID_LINKEDIN, "https://example.com/in/ada", NULL);
    expect(LF_ID_LINKEDIN, "https://www.linkedin.com/", NULL);
    (void)state;
}

static void phones(void **state)
{
    expect(LF_ID_PHONE, "+49 30 1234-567", "+49301234567");
    expect(LF_ID_PHONE, "0049 (30) 1234567", "+49301234567");
    expect(LF_ID_PHONE, "030/1234567", "0301234567");
    expect(LF_ID_PHONE, "12345", NULL); /* too short */
    expect(LF_ID_PHONE, "+49 30 CALL-ME", NULL);
    expect(LF_ID_PHONE, "1234567890123456", NULL); /* longer than E.164 */
    (void)state;
}

static void plain_ids(void **state)
{
    expect(LF_ID_PORTAL, "  p-123 ", "p-123");
    expect(LF_ID_EXTERNAL, "   ", NULL);
    char long_id[300];
    memset(long_id, 'x', sizeof long_id - 1);
    long_id[sizeof long_id - 1] = '\0';
    expect(LF_ID_WAALAXY, long_id, NULL);
    (void)state;
}

static void from_lead_object(void **state)
{
    json_t *lead = json_pack("{s:s, s:i, s:s, s:s, s:s, s:o}", "portal_id", "p-9", "lemlist_id", 77,
                             "email", "Eve@X.Example", "linkedin_url", "not a url", "first_name",
                             "Eve", "phone", json_null());
    struct lf_identity ids[LF_ID_KINDS_];
    json_t *invalid = json_array();
    int n = lf_identities_from_lead(lead, ids, invalid);
    assert_int_equal(n, 3);
    assert_int_equal(ids[0].kind, LF_ID_EMAIL); /* email first */
    assert_string_equal(ids[0].value, "eve@x.example");
    assert_int_equal(ids[1].kind, LF_ID_PORTAL);
    assert_int_equal(ids[2].kind, LF_ID_LEMLIST);
    assert_string_equal(ids[2].value, "77");
    assert_int_equal(json_array_size(invalid), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(invalid, 0), "field")),
                        "linkedin_url");
    json_decref(invalid);
    json_decref(lead);
    assert_int_equal(lf_identities_from_lead(NULL, ids, NULL), 0);
    (void)state;
}

static void freemail(void **state)
{
    assert_true(lf_email_is_freemail("someone@gmail.com"));
    assert_true(lf_email_is_freemail("x@gmx.de"));
    assert_false(lf_email_is_freemail("ada@lab.example"));
    assert_false(lf_email_is_freemail("ada@notgmail.com"));
    assert_false(lf_email_is_freemail("no-at"));
    (void)state;
}

static void tiers(void **state)
{
    assert_string_equal(lf_tier_of(-5, NULL), "cold");
    assert_string_equal(lf_tier_of(19, NULL), "cold");
    assert_string_equal(lf_tier_of(20, NULL), "warm");
    assert_string_equal(lf_tier_of(40, NULL), "mql");
    assert_string_equal(lf_tier_of(79, NULL), "mql");
    assert_string_equal(lf_tier_of(80, NULL), "hot");
    json_t *custom = json_pack("{s:i, s:i, s:i}", "warm", 10, "mql", 50, "hot", 100);
    assert_string_equal(lf_tier_of(49, custom), "warm");
    int lo, hi;
    assert_int_equal(lf_tier_range("mql", custom, &lo, &hi), 0);
    assert_int_equal(lo, 50);
    assert_int_equal(hi, 100);
    assert_int_equal(lf_tier_range("hot", NULL, &lo, &hi), 0);
    assert_int_equal(lo, 80);
    assert_int_equal(hi, INT32_MAX);
    assert_int_equal(lf_tier_range("tepid", NULL, &lo, &hi), -LF_EINVAL);
    json_decref(custom);
    (void)state;
}

static void csv_rows(void **state)
{
    const char *text = "\xef\xbb\xbf"
                       "Email , First_Name,Shoe\r\n"
                       "a@x.example,\"Ann, B\",44\r\n"
                       "\r\n"
                       "  b@x.example  ,,\n";
    json_t *rows = NULL, *unknown = NULL;
    struct lf_err err = {0};
    assert_int_equal(lf_import_parse_csv(text, strlen(text), &rows, &unknown, &err), 0);
    assert_int_equal(json_array_size(rows), 2); /* the blank line is skipped */
    json_t *r0 = json_array_get(rows, 0), *r1 = json_array_get(rows, 1);
    assert_string_equal(json_string_value(json_object_get(r0, "email")), "a@x.example");
    assert_string_equal(json_string_value(json_object_get(r0, "first_name")), "Ann, B");
    assert_string_equal(json_string_value(json_object_get(r1, "email")), "b@x.example");
    assert_null(json_object_get(r1, "first_name")); /* empty cells are left out */
    assert_int_equal(json_array_size(unknown), 1);
    assert_string_equal(json_string_value(json_array_get(unknown, 0)), "shoe");
    json_decref(rows);
    json_decref(unknown);
    (void)state;
}

static void csv_errors(void **state)
{
    struct {
        const char *text;
        const char *needle;
    } cases[] = {
        {"email\n\"a@x.example\n", "line"},
        {"email,name\na@x.example,b\"c\n", "line 2"},
        {"email\n\xff\xfe@x.example\n", "UTF-8"},
        {"", "empty"},
        {"email,Email\n", "twice"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *rows = (json_t *)1, *unknown = (json_t *)1;
        struct lf_err err = {0};
        assert_int_equal(
            lf_import_parse_csv(cases[i].text, strlen(cases[i].text), &rows, &unknown, &err),
            -LF_EINVAL);
        assert_null(rows);
        assert_non_null(strstr(err.msg, cases[i].needle));
    }
    (void)state;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(emails),
        cmocka_unit_test(linkedin_urls),
        cmocka_unit_test(phones),
        cmocka_unit_test(plain_ids),
        cmocka_unit_test(from_lead_object),
        cmocka_unit_test(freemail),
        cmocka_unit_test(tiers),
        cmocka_unit_test(csv_rows),
        cmocka_unit_test(csv_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
