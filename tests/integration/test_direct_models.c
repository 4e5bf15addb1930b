/*
 * A policy's creator and tag rules cannot be bypassed by spelling a direct
 * model differently (issue 11, finding 4). OpenAI-compatible model ids are
 * matched exactly, so "mock/M-EU" is not the target "mock/m-eu": an
 * unconfigured direct model, which fails closed under a policy with rules on
 * target attributes; a name with white space around it or a control
 * character is a 400; a provider may refuse direct addressing altogether.
 * The mock must receive nothing of what is refused.
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

static th_proc_t mock, gw;

static int group_setup(void **state)
{
    (void)state;
    if (th_start_mock(&mock, "m") < 0)
        return -1;
    char *cfg = th_strf("{\"listen\":\"127.0.0.1:0\","
                        " \"providers\":{"
                        "  \"mock\":{\"kind\":\"openai\",\"base_url\":\"http://127.0.0.1:%d/v1\","
                        "    \"api_key\":\"sk-m\",\"region\":\"eu\"}},"
                        " \"routes\":{"
                        "  \"eu-chat\":{\"targets\":[{\"provider\":\"mock\",\"model\":\"m-eu\","
                        "    \"creator\":\"acme\",\"tags\":{\"license\":\"proprietary\"}}]}},"
                        " \"policies\":{"
                        "  \"no-acme\":{\"deny\":{\"creator\":[\"acme\"]}},"
                        "  \"open-licence\":{\"deny\":{\"license\":[\"proprietary\"]}},"
                        "  \"eu\":{\"allow\":{\"region\":[\"eu\"]}}}}",
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

static const char *or_empty(const char *s)
{
    return s ? s : "";
}

/* POST a chat with `model` (a JSON string literal's content) under the
 * header policy `policy` (NULL: none); returns the status, *code the error
 * code (or "") into buf. */
static long chat(const char *model, const char *policy, char *code, size_t n, char *msg, size_t mn)
{
    char url[256], hdr[96];
    char *body = th_strf("{\"model\":\"%s\"}", model);
    const char *h[] = {policy ? hdr : NULL, NULL};
    th_response_t r;

    snprintf(hdr, sizeof(hdr), "x-meridian-policy: %s", policy ? policy : "");
    th_http("POST", th_url_buf(&gw, "/v1/chat/completions", url, sizeof(url)), h, body,
            strlen(body), &r);
    json_t *root = th_json(&r);
    json_t *e = json_object_get(root, "error");
    snprintf(code, n, "%s", or_empty(json_string_value(json_object_get(e, "code"))));
    if (msg)
        snprintf(msg, mn, "%s", or_empty(json_string_value(json_object_get(e, "message"))));
    json_decref(root);
    long s = r.status;
    th_response_free(&r);
    free(body);
    return s;
}

static void expect(const char *model, const char *policy, long status, const char *code,
                   const char *in_message)
{
    char got[64], msg[1024];
    long s = chat(model, policy, got, sizeof(got), msg, sizeof(msg));
    if (s != status || (code && strcmp(got, code)) || (in_message && !strstr(msg, in_message)))
        fail_msg("%s under %s: HTTP %ld %s \"%s\", want %ld %s \"%s\"", model,
                 policy ? policy : "-", s, got, msg, status, code ? code : "",
                 in_message ? in_message : "");
}

static void test_spelling_cannot_bypass(void **state)
{
    (void)state;
    /* the configured target is denied by its creator ... */
    expect("mock/m-eu", "no-acme", 403, "policy_denied", "creator acme denied");
    /* ... and so is every spelling the provider might serve as it */
    expect("mock/M-EU", "no-acme", 403, "policy_denied", "not a configured target");
    expect("mock/M-EU", "no-acme", 403, "policy_denied", "deny.creator");
    expect("mock/M-EU", "open-licence", 403, "policy_denied", "deny.license");
    expect("mock/m-eu ", "no-acme", 400, "invalid_model", "white space");
    expect(" mock/m-eu", NULL, 400, "invalid_model", NULL);
    expect("mock/m-eu\\t", "no-acme", 400, "invalid_model", NULL);
    expect("mock/m-eu\\u00a0", "no-acme", 400, "invalid_model", NULL);
    expect("mock/m\\u0001eu", "no-acme", 400, "invalid_model", NULL);
    expect("eu-chat\\n", NULL, 400, "invalid_model", NULL);
    assert_int_equal(th_mock_stat(&mock, "requests"), 0);
}

static void test_unconfigured_direct_models_still_work(void **state)
{
    char code[64];
    (void)state;
    /* without rules on target attributes, an unlisted model is judged on
     * its provider: served as the client spelled it */
    assert_int_equal(chat("mock/M-EU", "eu", code, sizeof(code), NULL, 0), 200);
    assert_int_equal(chat("mock/anything", NULL, code, sizeof(code), NULL, 0), 200);
    json_t *reqs = th_mock_requests(&mock);
    assert_int_equal(json_array_size(reqs), 2);
    json_t *sent =
        json_loads(json_string_value(json_object_get(json_array_get(reqs, 0), "body")), 0, NULL);
    assert_string_equal(json_string_value(json_object_get(sent, "model")), "M-EU");
    json_decref(sent);
    json_decref(reqs);
}

/* A provider that may only be reached through its routes (its own gateway:
 * the rest of this file also runs against builds without allow_direct). */
static void test_allow_direct_false(void **state)
{
    char url[256];
    th_response_t r;
    th_proc_t main_gw = gw;
    (void)state;
    char *cfg =
        th_strf("{\"listen\":\"127.0.0.1:0\","
                " \"providers\":{"
                "  \"mock\":{\"kind\":\"openai\",\"base_url\":\"http://127.0.0.1:%d/v1\"},"
                "  \"closed\":{\"kind\":\"openai\",\"base_url\":\"http://127.0.0.1:%d/v1\","
                "    \"allow_direct\":false}},"
                " \"routes\":{"
                "  \"open-chat\":{\"targets\":[{\"provider\":\"mock\",\"model\":\"m1\"}]},"
                "  \"closed-chat\":{\"targets\":[{\"provider\":\"closed\",\"model\":\"c1\"}]}}}",
                mock.port, mock.port);
    memset(&gw, 0, sizeof(gw));
    assert_int_equal(th_start_meridian(&gw, cfg, NULL), 0);
    free(cfg);
    expect("closed/c1", NULL, 403, "direct_model_not_allowed", "providers.closed.allow_direct");
    expect("closed/other", NULL, 403, "direct_model_not_allowed", NULL);
    assert_int_equal(th_mock_stat(&mock, "requests"), 0);
    expect("closed-chat", NULL, 200, NULL, NULL);
    /* /v1/models does not offer what cannot be asked for */
    th_http("GET", th_url_buf(&gw, "/v1/models", url, sizeof(url)), NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    assert_null(strstr(r.body, "\"closed/"));
    assert_non_null(strstr(r.body, "\"mock/m1\""));
    th_response_free(&r);
    assert_int_equal(th_stop(&gw), 0);
    gw = main_gw;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_spelling_cannot_bypass, reset_mock),
        cmocka_unit_test_setup(test_unconfigured_direct_models_still_work, reset_mock),
        cmocka_unit_test_setup(test_allow_direct_false, reset_mock),
    };
    th_init();
    int rc = cmocka_run_group_tests(tests, group_setup, group_teardown);
    th_cleanup();
    return rc;
}
