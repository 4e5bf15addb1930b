#include "meridian/json_span.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

static int valid(const char *s)
{
    return mr_json_validate(s, strlen(s)) == 0;
}

static void test_validate_accepts(void **state)
{
    (void)state;
    const char *ok[] = {
        "{}",
        "[]",
        " {\"a\":1} ",
        "\"x\"",
        "0",
        "-0.5e+10",
        "true",
        "null",
        "{\"a\":[1,2,{\"b\":null}],\"c\":\"\\u00e9\\n\"}",
        "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"",
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        assert_true(valid(ok[i]));
}

static void test_validate_rejects(void **state)
{
    (void)state;
    const char *bad[] = {
        "",
        "{",
        "{\"a\":}",
        "{\"a\" 1}",
        "[1,]",
        "{,}",
        "01",
        "1.",
        "-",
        ".5",
        "1e",
        "tru",
        "\"\\x\"",
        "\"\\u12g4\"",
        "\"a\nb\"",
        "{} {}",
        "\"\xc3\"",
        "\"\xed\xa0\x80\"",
        "\"\xc0\xaf\"",
        "this is not json {{{",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (valid(bad[i]))
            fail_msg("accepted invalid JSON #%zu: %s", i, bad[i]);
    }
}

static void test_validate_depth_bounded(void **state)
{
    char deep[2 * MR_JSON_MAX_DEPTH + 8];
    size_t n = 0;
    (void)state;
    for (int i = 0; i < MR_JSON_MAX_DEPTH + 2; i++)
        deep[n++] = '[';
    for (int i = 0; i < MR_JSON_MAX_DEPTH + 2; i++)
        deep[n++] = ']';
    assert_int_equal(mr_json_validate(deep, n), -1);
}

static void test_find_member(void **state)
{
    const char *j = "{ \"messages\": [{\"model\":\"inner\"}], \"model\" : \"chat\", \"x\":1}";
    mr_json_span_t sp;
    (void)state;
    assert_int_equal(mr_json_find_member(j, strlen(j), "model", &sp), 0);
    assert_int_equal(sp.value_len, 6);
    assert_memory_equal(j + sp.value_off, "\"chat\"", 6);
    assert_memory_equal(j + sp.member_off, "\"model\"", 7);
    assert_int_equal(mr_json_find_member(j, strlen(j), "missing", &sp), -1);
    assert_int_equal(mr_json_find_member("[1]", 3, "model", &sp), -1);
    /* keys compare decoded, as the upstream's parser reads them: an escaped
     * spelling is the same member */
    const char *esc = "{\"x\":0, \"mod\\u0065l\":1}";
    assert_int_equal(mr_json_find_member(esc, strlen(esc), "model", &sp), 0);
    assert_int_equal(sp.member_off, 8);
    assert_memory_equal(esc + sp.value_off, "1", 1);
    const char *esc2 =
        "{\"\\u006D\\u006f\\/dels\":1, \"a\\nb\":2, \"\\ud83d\\ude00\":3, \"\\u00e9\":4}";
    assert_int_equal(mr_json_find_member(esc2, strlen(esc2), "mo/dels", &sp), 0);
    assert_int_equal(mr_json_find_member(esc2, strlen(esc2), "models", &sp), -1);
    assert_int_equal(mr_json_find_member(esc2, strlen(esc2), "a\nb", &sp), 0);
    assert_memory_equal(esc2 + sp.value_off, "2", 1);
    assert_int_equal(mr_json_find_member(esc2, strlen(esc2), "a\\nb", &sp), -1);
    assert_int_equal(mr_json_find_member(esc2, strlen(esc2), "\xf0\x9f\x98\x80", &sp), 0);
    assert_memory_equal(esc2 + sp.value_off, "3", 1);
    assert_int_equal(mr_json_find_member(esc2, strlen(esc2), "\xc3\xa9", &sp), 0);
    assert_memory_equal(esc2 + sp.value_off, "4", 1);
    assert_int_equal(mr_json_find_member(esc2, strlen(esc2), "mod", &sp), -1);
}

static void test_quote(void **state)
{
    char out[64];
    size_t n;
    (void)state;
    n = mr_json_quote("a\"b\\c\n\x01", out);
    out[n] = '\0';
    assert_string_equal(out, "\"a\\\"b\\\\c\\n\\u0001\"");
    assert_true(valid(out));
}

static char *cut(const char *j, const char *key)
{
    mr_json_span_t sp;
    size_t off, n, out_len;
    assert_int_equal(mr_json_find_member(j, strlen(j), key, &sp), 0);
    mr_json_member_cut(j, strlen(j), &sp, &off, &n);
    mr_json_edit_t e = {off, n, "", 0};
    char *out = mr_json_apply(j, strlen(j), &e, 1, &out_len);
    assert_true(valid(out));
    return out;
}

static void test_member_cut(void **state)
{
    (void)state;
    const struct {
        const char *in, *key, *want;
    } cases[] = {
        {"{\"a\":1,\"provider\":{\"x\":[1]},\"b\":2}", "provider", "{\"a\":1,\"b\":2}"},
        {"{\"provider\": {} , \"b\":2}", "provider", "{\"b\":2}"},
        {"{\"a\":1, \"provider\":null }", "provider", "{\"a\":1 }"},
        {"{\"provider\":1}", "provider", "{}"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *out = cut(cases[i].in, cases[i].key);
        assert_string_equal(out, cases[i].want);
        free(out);
    }
}

static void test_apply_edits_unsorted(void **state)
{
    const char *j = "{\"model\":\"chat\",\"x\":1}";
    size_t n;
    (void)state;
    mr_json_edit_t e[] = {{20, 1, "2", 1}, {9, 6, "\"gpt-4o\"", 8}, {1, 0, "\"s\":1,", 6}};
    char *out = mr_json_apply(j, strlen(j), e, 3, &n);
    assert_string_equal(out, "{\"s\":1,\"model\":\"gpt-4o\",\"x\":2}");
    assert_int_equal(n, strlen(out));
    free(out);
}

static void test_apply_refuses_overlap(void **state)
{
    const char *j = "{\"a\":1,\"b\":2}";
    size_t n;
    (void)state;
    mr_json_edit_t e[] = {{1, 6, "", 0}, {6, 2, "", 0}};
    assert_null(mr_json_apply(j, strlen(j), e, 2, &n));
    mr_json_edit_t past[] = {{10, 9, "", 0}};
    assert_null(mr_json_apply(j, strlen(j), past, 1, &n));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validate_accepts),
        cmocka_unit_test(test_validate_rejects),
        cmocka_unit_test(test_validate_depth_bounded),
        cmocka_unit_test(test_find_member),
        cmocka_unit_test(test_quote),
        cmocka_unit_test(test_member_cut),
        cmocka_unit_test(test_apply_edits_unsorted),
        cmocka_unit_test(test_apply_refuses_overlap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
