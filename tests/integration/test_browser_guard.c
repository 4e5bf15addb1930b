/*
 * Browser-borne requests (issue 11, finding 1), every status and header in
 * C; tests/browser/cross_origin.mjs runs the same attacks from real pages in
 * Chromium.
 *
 *   415  a POST without Content-Type: application/json (a page's Blob body
 *        has none and needs no preflight)
 *   421  a Host that does not name the gateway (DNS rebinding)
 *   403  an Origin that is not allowed (cors.allow_origins), /healthz too
 *   204  a CORS preflight from an allowed origin, before authentication,
 *        allowing only the request headers SDKs send
 *   CORS headers on the answers an allowed origin gets, streams included
 * and the config rules: "*" only with keys, origins and names well-formed.
 */
#include "harness.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define KEY "mk-browser-test-key-0001"
#define KEY_SHA "0cd8591c6d7bfbd1334aeff09903870de2f6cb1e63cb393afdb1eab3a8d0ace5"
#define AUTH "Authorization: Bearer " KEY
#define APP "http://app.example:3000"

static th_proc_t mock, gw;

static int group_setup(void **state)
{
    (void)state;
    if (th_start_mock(&mock, "m") < 0)
        return -1;
    char *cfg =
        th_strf("{\"listen\":\"127.0.0.1:0\","
                " \"server_names\":[\"gw.internal\"],"
                " \"cors\":{\"allow_origins\":[\"" APP "\"]},"
                " \"keys\":{\"k\":{\"sha256\":\"" KEY_SHA "\"}},"
                " \"providers\":{\"m\":{\"kind\":\"openai\","
                "   \"base_url\":\"http://127.0.0.1:%d/v1\",\"api_key\":\"sk-m\"}},"
                " \"routes\":{\"chat\":{\"targets\":[{\"provider\":\"m\",\"model\":\"x\"}]}}}",
                mock.port);
    int rc = th_start_meridian(&gw, cfg, NULL);
    free(cfg);
    return rc;
}

static int group_teardown(void **state)
{
    (void)state;
    int rc = th_stop(&gw);
    th_stop(&mock);
    return rc == 0 ? 0 : -1;
}

static int reset_mock(void **state)
{
    (void)state;
    return th_mock_reset(&mock);
}

/* A request with extra header lines (NULL-terminated); the body is JSON
 * text or NULL. */
static void call(const char *method, const char *path, const char *const *headers, const char *body,
                 th_response_t *r)
{
    char url[256];
    th_http(method, th_url_buf(&gw, path, url, sizeof(url)), headers, body, body ? strlen(body) : 0,
            r);
}

static const char *code_of(const th_response_t *r, char *buf, size_t n)
{
    json_t *root = th_json(r);
    const char *c = json_string_value(json_object_get(json_object_get(root, "error"), "code"));
    snprintf(buf, n, "%s", c ? c : "(none)");
    json_decref(root);
    return buf;
}

static void expect(const th_response_t *r, long status, const char *code)
{
    char buf[64];
    if (r->status != status || (code && strcmp(code_of(r, buf, sizeof(buf)), code)))
        fail_msg("HTTP %ld %s, want %ld %s: %.300s", r->status, code_of(r, buf, sizeof(buf)),
                 status, code ? code : "", r->body);
}

static void expect_header(const th_response_t *r, const char *name, const char *want)
{
    char buf[512];
    const char *v = th_header(r, name, buf, sizeof(buf));
    if (want ? !v || strcmp(v, want) : v != NULL)
        fail_msg("%s: \"%s\", want \"%s\"", name, v ? v : "(none)", want ? want : "(none)");
}

static const char chat_body[] = "{\"model\":\"chat\"}";

/* ---- Content-Type ---------------------------------------------------------- */

static void test_post_needs_json(void **state)
{
    th_response_t r;
    (void)state;
    const char *none[] = {AUTH, "Content-Type:", NULL};
    call("POST", "/v1/chat/completions", none, chat_body, &r);
    expect(&r, 415, "unsupported_media_type");
    th_response_free(&r);
    const char *text[] = {AUTH, "Content-Type: text/plain", NULL};
    call("POST", "/v1/chat/completions", text, chat_body, &r);
    expect(&r, 415, "unsupported_media_type");
    th_response_free(&r);
    const char *form[] = {AUTH, "Content-Type: application/x-www-form-urlencoded", NULL};
    call("POST", "/v1/chat/completions", form, chat_body, &r);
    expect(&r, 415, "unsupported_media_type");
    th_response_free(&r);
    assert_int_equal(th_mock_stat(&mock, "requests"), 0);
    /* with a charset it is JSON; /healthz (GET) needs none */
    const char *json[] = {AUTH, "Content-Type: application/json; charset=utf-8", NULL};
    call("POST", "/v1/chat/completions", json, chat_body, &r);
    expect(&r, 200, NULL);
    th_response_free(&r);
    call("GET", "/healthz", NULL, NULL, &r);
    expect(&r, 200, NULL);
    th_response_free(&r);
}

/* ---- Host -------------------------------------------------------------- */

static void test_host_names_the_gateway(void **state)
{
    th_response_t r;
    char host[64];
    (void)state;
    static const char *const foreign[] = {"evil.example", "127.0.0.2", "[::1]", "localhost.",
                                          "gw.internal.evil.example"};
    for (size_t i = 0; i < sizeof(foreign) / sizeof(foreign[0]); i++) {
        snprintf(host, sizeof(host), "Host: %s:%d", foreign[i], gw.port);
        const char *h[] = {AUTH, host, NULL};
        call("POST", "/v1/chat/completions", h, chat_body, &r);
        expect(&r, 421, "misdirected_request");
        expect_header(&r, "x-content-type-options", "nosniff");
        th_response_free(&r);
        call("GET", "/healthz", h, NULL, &r);
        expect(&r, 421, "misdirected_request");
        th_response_free(&r);
    }
    assert_int_equal(th_mock_stat(&mock, "requests"), 0);
    /* the listen address, localhost, a server name: with or without a port */
    static const char *const own[] = {"127.0.0.1", "localhost", "LocalHost", "gw.internal",
                                      "GW.internal:8443"};
    for (size_t i = 0; i < sizeof(own) / sizeof(own[0]); i++) {
        snprintf(host, sizeof(host), "Host: %s", own[i]);
        const char *h[] = {AUTH, host, NULL};
        call("POST", "/v1/chat/completions", h, chat_body, &r);
        expect(&r, 200, NULL);
        th_response_free(&r);
    }
}

/* ---- Origin ------------------------------------------------------------- */

static void test_foreign_origin_refused(void **state)
{
    th_response_t r;
    char own[96];
    (void)state;
    static const char *const foreign[] = {"Origin: http://127.0.0.1:1", "Origin: null",
                                          "Origin: https://app.example:3000",
                                          "Origin: http://app.example:30000"};
    for (size_t i = 0; i < sizeof(foreign) / sizeof(foreign[0]); i++) {
        const char *h[] = {AUTH, foreign[i], NULL};
        call("POST", "/v1/chat/completions", h, chat_body, &r);
        expect(&r, 403, "origin_not_allowed");
        expect_header(&r, "access-control-allow-origin", NULL);
        th_response_free(&r);
        call("GET", "/healthz", h, NULL, &r);
        expect(&r, 403, "origin_not_allowed");
        th_response_free(&r);
    }
    assert_int_equal(th_mock_stat(&mock, "requests"), 0);
    /* a page the gateway itself served (the status page) is its own origin */
    snprintf(own, sizeof(own), "Origin: http://127.0.0.1:%d", gw.port);
    const char *h[] = {AUTH, own, NULL};
    call("POST", "/v1/chat/completions", h, chat_body, &r);
    expect(&r, 200, NULL);
    th_response_free(&r);
}

static void test_allowed_origin_gets_cors(void **state)
{
    th_response_t r;
    (void)state;
    const char *h[] = {AUTH, "Origin: " APP, NULL};
    call("POST", "/v1/chat/completions", h, chat_body, &r);
    expect(&r, 200, NULL);
    expect_header(&r, "access-control-allow-origin", APP);
    expect_header(&r, "vary", "Origin");
    char buf[512];
    assert_non_null(strstr(th_header(&r, "access-control-expose-headers", buf, sizeof(buf)),
                           "x-meridian-provider"));
    th_response_free(&r);
    /* a stream */
    call("POST", "/v1/chat/completions", h, "{\"model\":\"chat\",\"stream\":true}", &r);
    expect(&r, 200, NULL);
    expect_header(&r, "access-control-allow-origin", APP);
    th_response_free(&r);
    /* a refusal still carries them, so the page can read why */
    const char *nokey[] = {"Origin: " APP, NULL};
    call("POST", "/v1/chat/completions", nokey, chat_body, &r);
    expect(&r, 401, NULL);
    expect_header(&r, "access-control-allow-origin", APP);
    th_response_free(&r);
}

/* ---- Preflight ---------------------------------------------------------- */

static void test_preflight(void **state)
{
    th_response_t r;
    (void)state;
    /* no key: browsers never send credentials on a preflight */
    const char *h[] = {"Origin: " APP, "Access-Control-Request-Method: POST",
                       "Access-Control-Request-Headers: authorization,content-type,"
                       "X-Stainless-OS, x-evil, anthropic-version",
                       NULL};
    call("OPTIONS", "/v1/chat/completions", h, NULL, &r);
    expect(&r, 204, NULL);
    expect_header(&r, "access-control-allow-origin", APP);
    expect_header(&r, "access-control-allow-methods", "POST");
    expect_header(&r, "access-control-allow-headers",
                  "authorization, content-type, x-stainless-os, anthropic-version");
    expect_header(&r, "access-control-max-age", "600");
    expect_header(&r, "vary", "Origin");
    th_response_free(&r);
    call("OPTIONS", "/v1/models", h, NULL, &r);
    expect(&r, 204, NULL);
    expect_header(&r, "access-control-allow-methods", "GET, HEAD");
    th_response_free(&r);
    /* from a foreign origin: refused; unknown path: 404 */
    const char *foreign[] = {"Origin: http://evil.example", "Access-Control-Request-Method: POST",
                             NULL};
    call("OPTIONS", "/v1/chat/completions", foreign, NULL, &r);
    expect(&r, 403, "origin_not_allowed");
    th_response_free(&r);
    call("OPTIONS", "/v1/nope", h, NULL, &r);
    expect(&r, 404, NULL);
    th_response_free(&r);
    /* OPTIONS that is not a preflight is an ordinary request: 405 with a key */
    const char *plain[] = {AUTH, NULL};
    call("OPTIONS", "/v1/chat/completions", plain, NULL, &r);
    expect(&r, 405, "method_not_allowed");
    th_response_free(&r);
    assert_int_equal(th_mock_stat(&mock, "requests"), 0);
}

/* ---- The config --------------------------------------------------------- */

static void check_config(const char *json, int want_rc, const char *want_text)
{
    char *path = th_write_temp(json, ".json"), *out = NULL;
    const char *args[] = {"--check", "--config", path, NULL};
    int rc = th_run_meridian(args, NULL, &out);
    if (rc != want_rc || (want_text && (!out || !strstr(out, want_text))))
        fail_msg("--check exit %d, want %d (\"%s\"):\n%s", rc, want_rc, want_text ? want_text : "",
                 out ? out : "");
    free(out);
    unlink(path);
    free(path);
}

#define PROVIDERS "\"providers\":{\"p\":{\"kind\":\"openai\",\"base_url\":\"http://h\"}}"
#define KEYS ",\"keys\":{\"k\":{\"sha256\":\"" KEY_SHA "\"}}"

static void test_config_rules(void **state)
{
    (void)state;
    check_config("{" PROVIDERS ",\"cors\":{\"allow_origins\":[\"*\"]}}", 1,
                 "cors.allow_origins[0]: \"*\" lets every web page call the gateway; it is only "
                 "accepted when gateway keys are configured");
    check_config("{" PROVIDERS KEYS ",\"cors\":{\"allow_origins\":[\"*\"]}}", 0, NULL);
    check_config("{" PROVIDERS ",\"cors\":{\"allow_origins\":[\"https://a.example/\"]}}", 1,
                 "cors.allow_origins[0]: \"https://a.example/\" is not an origin");
    check_config("{" PROVIDERS ",\"cors\":{\"allow_origins\":[\"null\"]}}", 1, "is not an origin");
    check_config("{" PROVIDERS ",\"cors\":{\"origins\":[]}}", 1, "cors.origins: unknown key");
    check_config("{" PROVIDERS ",\"server_names\":[\"gw.example:8080\"]}", 1,
                 "server_names[0]: \"gw.example:8080\" is not a host name");
    check_config("{" PROVIDERS ",\"server_names\":[\"GW.Example\"],\"cors\":{\"allow_origins\":"
                 "[\"http://[::1]:3000\",\"https://App.Example\"]}}",
                 0, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_post_needs_json, reset_mock),
        cmocka_unit_test_setup(test_host_names_the_gateway, reset_mock),
        cmocka_unit_test_setup(test_foreign_origin_refused, reset_mock),
        cmocka_unit_test_setup(test_allowed_origin_gets_cors, reset_mock),
        cmocka_unit_test_setup(test_preflight, reset_mock),
        cmocka_unit_test(test_config_rules),
    };
    th_init();
    int rc = cmocka_run_group_tests(tests, group_setup, group_teardown);
    th_cleanup();
    return rc;
}
