/*
 * The one JSON string escaper (mr_json_escape, mr_json_quote): every control
 * character, '"', '\\', U+2028/2029, C1 controls, invalid UTF-8 of every
 * kind, output bounded without splitting an escape, and whatever the input,
 * a literal that both the project's validator and jansson accept.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meridian/json_span.h"

/* s[0..n) escaped with room for everything, NUL-terminated (static). */
static const char *esc(const char *s, size_t n)
{
    static char out[4096];
    size_t used, k;

    assert_true(n * MR_JSON_ESCAPE_MAX < sizeof(out));
    k = mr_json_escape(s, n, out, n * MR_JSON_ESCAPE_MAX, &used);
    assert_int_equal(used, n);
    out[k] = '\0';
    return out;
}

#define ESC(lit) esc(lit, sizeof(lit) - 1)

/* The escape as a quoted literal must be one JSON text for both parsers. */
static void assert_valid_literal(const char *s, size_t n)
{
    char *q = malloc(n * MR_JSON_ESCAPE_MAX + 3);
    size_t used, k;
    json_t *j;

    assert_non_null(q);
    q[0] = '"';
    k = 1 + mr_json_escape(s, n, q + 1, n * MR_JSON_ESCAPE_MAX, &used);
    q[k++] = '"';
    assert_int_equal(used, n);
    assert_int_equal(mr_json_validate(q, k), 0);
    j = json_loadb(q, k, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    if (!j)
        fail_msg("jansson refused %.*s", (int)k, q);
    json_decref(j);
    free(q);
}

static void test_every_control_character(void **state)
{
    static const char *const want[32] = {
        "\\u0000", "\\u0001", "\\u0002", "\\u0003", "\\u0004", "\\u0005", "\\u0006", "\\u0007",
        "\\b",     "\\t",     "\\n",     "\\u000b", "\\f",     "\\r",     "\\u000e", "\\u000f",
        "\\u0010", "\\u0011", "\\u0012", "\\u0013", "\\u0014", "\\u0015", "\\u0016", "\\u0017",
        "\\u0018", "\\u0019", "\\u001a", "\\u001b", "\\u001c", "\\u001d", "\\u001e", "\\u001f",
    };
    (void)state;

    for (unsigned c = 0; c < 32; c++) {
        char in = (char)c;
        assert_string_equal(esc(&in, 1), want[c]);
        assert_valid_literal(&in, 1);
    }
    assert_string_equal(ESC("\x7f"), "\\u007f");
    assert_string_equal(ESC("a\r\nb\tc"), "a\\r\\nb\\tc");
    assert_string_equal(ESC("\"q\" \\ /"), "\\\"q\\\" \\\\ /");
}

static void test_printable_and_valid_utf8_unchanged(void **state)
{
    char all[95];
    (void)state;

    for (int i = 0; i < 95; i++)
        all[i] = (char)(0x20 + i);
    /* every printable ASCII byte but '"' and '\\' is copied */
    const char *e = esc(all, sizeof(all));
    assert_int_equal(strlen(e), sizeof(all) + 2);
    assert_string_equal(ESC("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xc2\xa0 \xf4\x8f\xbf\xbf"),
                        "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xc2\xa0 \xf4\x8f\xbf\xbf");
    assert_string_equal(ESC("\xe2\x80\xa7\xe2\x80\xaa"), "\xe2\x80\xa7\xe2\x80\xaa");
}

static void test_line_separators_and_c1(void **state)
{
    (void)state;
    assert_string_equal(ESC("a\xe2\x80\xa8z"), "a\\u2028z");
    assert_string_equal(ESC("a\xe2\x80\xa9z"), "a\\u2029z");
    assert_string_equal(ESC("\xc2\x80\xc2\x85\xc2\x9b\xc2\x9f"), "\\u0080\\u0085\\u009b\\u009f");
    assert_valid_literal("\xe2\x80\xa8\xc2\x9b", 5);
}

static void test_invalid_utf8(void **state)
{
    static const struct {
        const char *in;
        size_t n;
        const char *out;
    } cases[] = {
        {"\xff", 1, "\\ufffd"},
        {"\x80", 1, "\\ufffd"},                                  /* a lone continuation */
        {"caf\xc3", 4, "caf\\ufffd"},                            /* a 2-byte character cut */
        {"\xe2\x82", 2, "\\ufffd\\ufffd"},                       /* a 3-byte one cut */
        {"\xf0\x9f\x98", 3, "\\ufffd\\ufffd\\ufffd"},            /* a 4-byte one cut */
        {"\xc3(", 2, "\\ufffd("},                                /* lead byte, no continuation */
        {"\xc0\xaf", 2, "\\ufffd\\ufffd"},                       /* overlong '/' */
        {"\xe0\x80\xaf", 3, "\\ufffd\\ufffd\\ufffd"},            /* overlong, 3 bytes */
        {"\xed\xa0\x80", 3, "\\ufffd\\ufffd\\ufffd"},            /* a UTF-16 surrogate */
        {"\xf4\x90\x80\x80", 4, "\\ufffd\\ufffd\\ufffd\\ufffd"}, /* past U+10FFFF */
        {"\xf5\x80", 2, "\\ufffd\\ufffd"},
        {"\xfe\xff", 2, "\\ufffd\\ufffd"},
        {"a\xff\"\n", 4, "a\\ufffd\\\"\\n"},
    };
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_string_equal(esc(cases[i].in, cases[i].n), cases[i].out);
        assert_valid_literal(cases[i].in, cases[i].n);
        assert_true(mr_utf8_valid_len(cases[i].in, cases[i].n) < cases[i].n);
    }
    assert_int_equal(mr_utf8_valid_len("ab\xc3\xa9", 4), 4);
    assert_int_equal(mr_utf8_valid_len("ab\xc3\xa9\xe2\x82", 6), 4);
    assert_int_equal(mr_utf8_char_len("\xe2\x82\xac", 3), 3);
    assert_int_equal(mr_utf8_char_len("\xe2\x82\xac", 2), 0);
}

/* A small output buffer: never a split escape or character, and resuming at
 * *used gives the same bytes as one call with room for all. */
static void test_bounded_output(void **state)
{
    static const char in[] = "ab\"\xe2\x82\xac\n\xff\xf0\x9f\x98\x80z\xe2\x80\xa8";
    const size_t n = sizeof(in) - 1;
    char whole[256];
    size_t used, wlen = mr_json_escape(in, n, whole, sizeof(whole), &used);
    (void)state;

    assert_int_equal(used, n);
    /* 6 bytes always hold the next escape or character */
    for (size_t cap = MR_JSON_ESCAPE_MAX; cap <= wlen; cap++) {
        char out[256], piece[256];
        size_t o = 0, at = 0;
        while (at < n) {
            size_t k = mr_json_escape(in + at, n - at, piece, cap, &used);
            assert_true(k <= cap);
            assert_true(used > 0);
            memcpy(out + o, piece, k);
            o += k;
            at += used;
        }
        assert_int_equal(o, wlen);
        assert_memory_equal(out, whole, wlen);
    }
    /* too small for the next escape: nothing consumed, nothing written */
    assert_int_equal(mr_json_escape("\n", 1, whole, 1, &used), 0);
    assert_int_equal(used, 0);
}

static void test_quote(void **state)
{
    char out[64];
    size_t n;
    (void)state;

    n = mr_json_quote("m\r\t\"\x01", out);
    assert_int_equal(n, strlen("\"m\\r\\t\\\"\\u0001\""));
    assert_memory_equal(out, "\"m\\r\\t\\\"\\u0001\"", n);
    n = mr_json_quote("", out);
    assert_memory_equal(out, "\"\"", n);
}

/* Every 1- and 2-byte input: the literal is always valid JSON. */
static void test_all_short_inputs_are_valid(void **state)
{
    char in[2];
    (void)state;

    for (unsigned a = 0; a < 256; a++) {
        in[0] = (char)a;
        assert_valid_literal(in, 1);
        for (unsigned b = 0; b < 256; b++) {
            in[1] = (char)b;
            assert_valid_literal(in, 2);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_control_character),
        cmocka_unit_test(test_printable_and_valid_utf8_unchanged),
        cmocka_unit_test(test_line_separators_and_c1),
        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_bounded_output),
        cmocka_unit_test(test_quote),
        cmocka_unit_test(test_all_short_inputs_are_valid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
