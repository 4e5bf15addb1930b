/*
 * Route aliases and anthropic-beta allow-lists (issue 14): the `*`
 * patterns of glob.h checked against a brute-force model, alias
 * resolution (a route's own name always wins; exact and pattern aliases),
 * the load-time refusals that name both clashing parties, and the
 * per-provider filter of anthropic-beta flags (what is kept, what is
 * recorded as dropped).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/providers/xlate.h"
#include "meridian/config.h"
#include "meridian/glob.h"
#include "meridian/inbound.h"
#include "meridian/modelref.h"

/* ---- glob ---------------------------------------------------------------- */

/* The obviously correct matcher: recursive, exponential, fine for tiny inputs. */
static bool slow_match(const char *p, const char *s)
{
    if (*p == '\0')
        return *s == '\0';
    if (*p == '*')
        return slow_match(p + 1, s) || (*s && slow_match(p, s + 1));
    return *s == *p && slow_match(p + 1, s + 1);
}

/* Every string over {a, b} of length 0..n into out (n <= 8), count returned. */
static size_t all_strings(size_t n, char out[][9])
{
    size_t k = 0;
    for (size_t len = 0; len <= n; len++)
        for (unsigned bits = 0; bits < (1u << len); bits++) {
            for (size_t i = 0; i < len; i++)
                out[k][i] = (bits >> i) & 1 ? 'b' : 'a';
            out[k][len] = '\0';
            k++;
        }
    return k;
}

/* Every pattern over {a, b, *} of length 0..4 into out, count returned. */
static size_t all_patterns(char out[][5])
{
    static const char sym[] = "ab*";
    size_t k = 0;
    for (size_t len = 0; len <= 4; len++) {
        unsigned total = 1;
        for (size_t i = 0; i < len; i++)
            total *= 3;
        for (unsigned v = 0; v < total; v++) {
            unsigned x = v;
            for (size_t i = 0; i < len; i++, x /= 3)
                out[k][i] = sym[x % 3];
            out[k][len] = '\0';
            k++;
        }
    }
    return k;
}

static void test_glob_match(void **state)
{
    (void)state;
    assert_true(mr_glob_match("claude-sonnet-*", "claude-sonnet-4-5-20250929"));
    assert_true(mr_glob_match("claude-sonnet-*", "claude-sonnet-"));
    assert_false(mr_glob_match("claude-sonnet-*", "claude-haiku-4-5"));
    assert_false(mr_glob_match("sonnet", "sonnet-4"));
    assert_true(mr_glob_match("*", ""));
    assert_true(mr_glob_match("*-2025-*", "interleaved-thinking-2025-05-14"));
    assert_false(mr_glob_match("Claude-*", "claude-x")); /* case matters */
    assert_true(mr_glob_is_pattern("a*"));
    assert_false(mr_glob_is_pattern("a"));

    static char pats[121][5], strs[511][9];
    size_t np = all_patterns(pats), ns = all_strings(8, strs);
    for (size_t i = 0; i < np; i++)
        for (size_t j = 0; j < ns; j++)
            if (mr_glob_match(pats[i], strs[j]) != slow_match(pats[i], strs[j]))
                fail_msg("match(\"%s\", \"%s\") wrong", pats[i], strs[j]);
}

/* overlap(a, b) iff some string both match: two patterns of at most 4
 * symbols that share a string share one of at most 8 bytes. */
static void test_glob_overlap(void **state)
{
    (void)state;
    static char pats[121][5], strs[511][9];
    static bool m[121][511];
    size_t np = all_patterns(pats), ns = all_strings(8, strs);
    for (size_t i = 0; i < np; i++)
        for (size_t k = 0; k < ns; k++)
            m[i][k] = slow_match(pats[i], strs[k]);
    for (size_t i = 0; i < np; i++)
        for (size_t j = 0; j < np; j++) {
            bool want = false;
            for (size_t k = 0; k < ns && !want; k++)
                want = m[i][k] && m[j][k];
            if (mr_glob_overlap(pats[i], pats[j]) != want)
                fail_msg("overlap(\"%s\", \"%s\") should be %d", pats[i], pats[j], want);
        }
    assert_true(mr_glob_overlap("claude-*", "*-4-5"));
    assert_false(mr_glob_overlap("claude-sonnet-*", "claude-haiku-*"));
}

/* ---- aliases ------------------------------------------------------------- */

#define P(name, kind) "\"" name "\":{\"kind\":\"" kind "\",\"base_url\":\"http://h\"}"
#define T(p, m) "{\"provider\":\"" p "\",\"model\":\"" m "\"}"

static mr_config_t *load(const char *routes, char *err, size_t n)
{
    char json[2048];
    mr_config_t *cfg = NULL;
    snprintf(json, sizeof(json),
             "{\"providers\":{" P("an", "anthropic") "," P("oa", "openai") "},"
                                                                           " \"routes\":{%s}}",
             routes);
    err[0] = '\0';
    if (mr_config_load_string(json, "aliases.json", &cfg, err, n) != 0)
        return NULL;
    return cfg;
}

static const char *route_of(const mr_config_t *cfg, const char *model)
{
    mr_modelref_t ref;
    mr_error_t err = {0};
    if (mr_modelref_resolve(cfg, model, "model", "model", &ref, &err) != 0)
        return NULL;
    return ref.route ? ref.route->name : ref.direct->name;
}

static void test_alias_resolution(void **state)
{
    (void)state;
    char err[512];
    mr_config_t *cfg =
        load("\"claude\":{\"aliases\":[\"claude-sonnet-*\",\"sonnet\"],\"targets\":[" T(
                 "an", "c") "]},"
                            " \"gpt\":{\"aliases\":[\"gpt-*\",\"claude-via-gpt\"],\"targets\":[" T(
                                "oa", "g") "]},"
                                           " \"sonnet-2\":{\"targets\":[" T("oa", "g") "]}",
             err, sizeof(err));
    if (!cfg)
        fail_msg("%s", err);
    assert_string_equal(route_of(cfg, "claude-sonnet-4-5-20250929"), "claude");
    assert_string_equal(route_of(cfg, "sonnet"), "claude");
    assert_string_equal(route_of(cfg, "gpt-4o"), "gpt");
    assert_string_equal(route_of(cfg, "claude-via-gpt"), "gpt");
    assert_string_equal(route_of(cfg, "sonnet-2"), "sonnet-2");     /* a route, not the alias */
    assert_string_equal(route_of(cfg, "an/claude-sonnet-4"), "an"); /* provider/model */
    assert_null(route_of(cfg, "claude-haiku-4-5"));
    assert_null(route_of(cfg, "sonnet-3")); /* "sonnet" is exact */
    mr_config_free(cfg);
}

/* The load fails with a message naming both parties. */
static void refused(const char *routes, const char *a, const char *b)
{
    char err[512];
    mr_config_t *cfg = load(routes, err, sizeof(err));
    if (cfg) {
        mr_config_free(cfg);
        fail_msg("loaded: %s", routes);
    }
    if (!strstr(err, a) || !strstr(err, b))
        fail_msg("\"%s\" does not name %s and %s", err, a, b);
}

static void test_alias_clashes(void **state)
{
    (void)state;
    /* an alias that shadows a route */
    refused("\"claude\":{\"aliases\":[\"gpt*\"],\"targets\":[" T(
                "an", "c") "]},"
                           " \"gpt\":{\"targets\":[" T("oa", "g") "]}",
            "\"gpt*\"", "\"gpt\"");
    /* two aliases that can claim one name, in two routes and in one */
    refused("\"a\":{\"aliases\":[\"claude-*\"],\"targets\":[" T(
                "an", "c") "]},"
                           " \"b\":{\"aliases\":[\"claude-sonnet-4-5\"],\"targets\":[" T("oa",
                                                                                         "g") "]}",
            "\"claude-*\"", "\"claude-sonnet-4-5\"");
    refused("\"a\":{\"aliases\":[\"x-*\",\"x-1\"],\"targets\":[" T("an", "c") "]}", "\"x-*\"",
            "\"x-1\"");
    /* an alias that would capture provider/model */
    refused("\"a\":{\"aliases\":[\"an/*\"],\"targets\":[" T("an", "c") "]}", "\"an/*\"", "\"an\"");
}

/* ---- anthropic-beta ------------------------------------------------------ */

static const char *beta_header;

static const char *header_fn(void *ud, const char *name)
{
    (void)ud;
    return strcmp(name, "anthropic-beta") == 0 ? beta_header : NULL;
}

/* The flags kept for provider p ("" when none) and those dropped. */
static void filter(const mr_provider_t *p, const char *header, bool translated, char *kept,
                   mr_adapter_req_t *out)
{
    mr_adapter_in_t in = {
        .provider = p, .client = &mr_inbound_messages, .client_header = header_fn};
    beta_header = header;
    memset(out, 0, sizeof(*out));
    mr__xlate_flags(&in, translated ? NULL : kept, 512, out);
}

static void test_beta_filter(void **state)
{
    (void)state;
    char err[512], kept[512];
    char json[] = "{\"providers\":{"
                  " \"any\":{\"kind\":\"anthropic\",\"base_url\":\"http://h\"},"
                  " \"few\":{\"kind\":\"anthropic\",\"base_url\":\"http://h\","
                  "          \"anthropic_beta\":[\"claude-code-*\",\"fine-2025\"]},"
                  " \"none\":{\"kind\":\"anthropic\",\"base_url\":\"http://h\","
                  "           \"anthropic_beta\":[]},"
                  " \"oa\":{\"kind\":\"openai\",\"base_url\":\"http://h\"}},"
                  " \"routes\":{\"r\":{\"targets\":[" T("any", "c") "]}}}";
    mr_config_t *cfg = NULL;
    mr_adapter_req_t out;
    if (mr_config_load_string(json, "beta.json", &cfg, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    const mr_provider_t *any = mr_config_find_provider(cfg, "any"),
                        *few = mr_config_find_provider(cfg, "few"),
                        *none = mr_config_find_provider(cfg, "none"),
                        *oa = mr_config_find_provider(cfg, "oa");

    /* an anthropic provider accepts every flag by default */
    filter(any, "claude-code-20250219, fine-2025 ,x-1", false, kept, &out);
    assert_string_equal(kept, "claude-code-20250219,fine-2025,x-1");
    assert_string_equal(out.betas_dropped, "");

    filter(few, "claude-code-20250219,other-2025,fine-2025", false, kept, &out);
    assert_string_equal(kept, "claude-code-20250219,fine-2025");
    assert_string_equal(out.betas_dropped, "other-2025");

    filter(none, "a-1,b-2", false, kept, &out);
    assert_string_equal(kept, "");
    assert_string_equal(out.betas_dropped, "a-1,b-2");

    /* a translated target gets none; no header, nothing recorded */
    filter(oa, "claude-code-20250219", true, kept, &out);
    assert_string_equal(out.betas_dropped, "claude-code-20250219");
    filter(any, NULL, false, kept, &out);
    assert_string_equal(kept, "");
    assert_string_equal(out.betas_dropped, "");

    /* a flag that is not a plain name never reaches the upstream's header */
    filter(any, "ok-1,bad\r\nx: y", false, kept, &out);
    assert_string_equal(kept, "ok-1");
    assert_non_null(strstr(out.betas_dropped, "bad"));
    mr_config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_glob_match),       cmocka_unit_test(test_glob_overlap),
        cmocka_unit_test(test_alias_resolution), cmocka_unit_test(test_alias_clashes),
        cmocka_unit_test(test_beta_filter),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
