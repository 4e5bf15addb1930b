#include "meridian/json_span.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <stdio.h>
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

/* ---- mr_json_scan ------------------------------------------------------- */

static int scan_ok(const char *t, mr_json_scan_t *sc)
{
    return mr_json_scan(t, strlen(t), sc) == 0;
}

static void test_scan_agrees_with_validate(void **state)
{
    const char *texts[] = {
        "{}",    "[]",       " {\"a\":1} ",
        "\"x\"", "0",        "-0.5e+10",
        "true",  "null",     "{\"a\":[1,2,{\"b\":null}],\"c\":\"\\u00e9\\n\"}",
        "",      "{",        "{\"a\":}",
        "[1,]",  "01",       "\"\\u12g4\"",
        "{} {}", "\"\xc3\"", "{\"a\":1,}",
    };
    mr_json_scan_t sc = {0};
    (void)state;
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++)
        if (scan_ok(texts[i], &sc) != valid(texts[i]))
            fail_msg("scan and validate disagree on #%zu: %s", i, texts[i]);
    assert_false(scan_ok("[1,", &sc));
    assert_string_equal(sc.error, "unexpected end of text");
    assert_int_equal(sc.error_at, 3);
}

static void test_scan_refuses_duplicates(void **state)
{
    const char *dup[] = {
        "{\"a\":1,\"a\":2}",
        "{\"a\":1,\"\\u0061\":2}",
        "{\"x\":{\"b\":[{\"c\":1,\"d\":2,\"c\":3}]}}",
        "{\"\\ud83d\\ude00\":1,\"\xf0\x9f\x98\x80\":2}",
        "[{},{\"k\":1,\"k\":1}]",
    };
    const char *fine[] = {
        "{\"a\":{\"a\":{\"a\":1}},\"b\":[{\"a\":1},{\"a\":2}]}",
        "{\"a\":1,\"A\":2,\"a \":3,\"\\u0062\":4}",
    };
    mr_json_scan_t sc = {0};
    (void)state;
    for (size_t i = 0; i < sizeof(dup) / sizeof(dup[0]); i++) {
        if (scan_ok(dup[i], &sc))
            fail_msg("accepted a duplicate member #%zu: %s", i, dup[i]);
        assert_string_equal(sc.error, "duplicate object key");
    }
    for (size_t i = 0; i < sizeof(fine) / sizeof(fine[0]); i++)
        if (!scan_ok(fine[i], &sc))
            fail_msg("refused #%zu: %s (%s)", i, fine[i], sc.error);
}

/* Objects with more keys than the stack holds inline, one of them twice or not. */
static void test_scan_many_keys(void **state)
{
    size_t n = 5000, cap = n * 32 + 64, o = 0;
    char *t = malloc(cap);
    mr_json_scan_t sc = {0};
    (void)state;
    assert_non_null(t);
    t[o++] = '{';
    for (size_t i = 0; i < n; i++)
        o += (size_t)snprintf(t + o, cap - o, "%s\"k%zu\":{\"in\":%zu}", i ? "," : "", i, i);
    t[o++] = '}';
    if (mr_json_scan(t, o, &sc) != 0)
        fail_msg("refused: %s at %zu", sc.error, sc.error_at);
    assert_int_equal(sc.members, 2 * n);
    /* the last key repeats the first, spelled with an escape */
    o--;
    o += (size_t)snprintf(t + o, cap - o, ",\"\\u006b0\":1}");
    assert_int_equal(mr_json_scan(t, o, &sc), -1);
    assert_string_equal(sc.error, "duplicate object key");
    free(t);
}

static void test_scan_locates_top_members(void **state)
{
    static const char *const keys[] = {"model", "stream", "missing", NULL};
    const char *t = "{\"messages\":[{\"model\":\"inner\",\"stream\":0}],\"mod\\u0065l\" : \"chat\","
                    "\"stream\":true}";
    mr_json_scan_t sc = {.keys = keys};
    (void)state;
    assert_int_equal(mr_json_scan(t, strlen(t), &sc), 0);
    assert_true(sc.object);
    const mr_json_span_t *m = mr_json_scan_get(&sc, 0), *st = mr_json_scan_get(&sc, 1);
    assert_non_null(m);
    assert_non_null(st);
    assert_null(mr_json_scan_get(&sc, 2));
    assert_int_equal(m->value_len, 6);
    assert_memory_equal(t + m->value_off, "\"chat\"", 6);
    assert_memory_equal(t + m->member_off, "\"mod\\u0065l\"", 12);
    assert_memory_equal(t + st->value_off, "true", 4);
    /* counts: the top object, the array, its object, 2 strings/numbers
     * inside, "chat", true: 7 values; 4 members; string bytes of keys and
     * strings between their quotes */
    assert_int_equal(sc.values, 7);
    assert_int_equal(sc.members, 5);
    assert_int_equal(sc.string_bytes, 8 + 5 + 5 + 6 + 10 + 4 + 6);
}

/* Random texts from a small grammar (keys from a tiny alphabet, so that
 * duplicates are frequent, escapes included): the scan accepts exactly
 * what jansson with JSON_REJECT_DUPLICATES accepts. */
static uint64_t rng = 88172645463325252ull;

static unsigned rnd(unsigned n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)(rng % n);
}

static void gen(char *t, size_t *o, size_t cap, int depth)
{
    static const char *const keys[] = {"\"a\"", "\"b\"", "\"\\u0061\"", "\"c\\n\"", "\"c\\u000a\""};
    static const char *const atoms[] = {"1", "-2.5e3", "true", "null", "\"s\"", "\"\\u00e9\""};
    unsigned k = depth > 3 ? 0 : rnd(3);

    if (*o + 64 > cap)
        k = 0;
    if (k == 0) {
        *o += (size_t)snprintf(t + *o, cap - *o, "%s", atoms[rnd(6)]);
        return;
    }
    t[(*o)++] = k == 1 ? '[' : '{';
    for (unsigned i = 0, n = rnd(4); i < n && *o + 64 < cap; i++) {
        if (i)
            t[(*o)++] = ',';
        if (k == 2)
            *o += (size_t)snprintf(t + *o, cap - *o, "%s:", keys[rnd(5)]);
        gen(t, o, cap, depth + 1);
    }
    t[(*o)++] = k == 1 ? ']' : '}';
}

static void test_scan_matches_jansson(void **state)
{
    char t[4096];
    mr_json_scan_t sc = {0};
    unsigned accepted = 0;
    (void)state;
    for (int i = 0; i < 20000; i++) {
        size_t o = 0;
        gen(t, &o, sizeof(t) - 8, 0);
        json_t *j = json_loadb(t, o, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, NULL);
        int ours = mr_json_scan(t, o, &sc) == 0;
        if (ours != (j != NULL))
            fail_msg("scan %s, jansson %s: %.*s", ours ? "accepts" : "refuses",
                     j ? "accepts" : "refuses", (int)o, t);
        accepted += ours;
        json_decref(j);
    }
    print_message("%u of 20000 random texts accepted\n", accepted);
    assert_true(accepted > 1000 && accepted < 19000);
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
        cmocka_unit_test(test_scan_agrees_with_validate),
        cmocka_unit_test(test_scan_refuses_duplicates),
        cmocka_unit_test(test_scan_many_keys),
        cmocka_unit_test(test_scan_locates_top_members),
        cmocka_unit_test(test_scan_matches_jansson),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
