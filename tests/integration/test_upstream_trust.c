/*
 * What a hostile or broken upstream can make the gateway say (issue 11):
 *
 *   6   an upstream 401/403/407 is the provider's broken key: a 502
 *       upstream_auth_failed naming it, the next provider tried, not the
 *       provider's other targets; any upstream text a client or the audit
 *       file gets has the provider key scrubbed (the log line too)
 *   7   curl's text (internal addresses) never reaches the client, only the
 *       stable failure name; the log and the audit record keep the detail
 *   11  answers are application/json or text/event-stream, whatever the
 *       upstream said, with X-Content-Type-Options: nosniff
 *   13a a slow non-streamed answer (first_byte_ms exceeded) does not open
 *       the breaker; a stream's first-byte timeout and connect failures do
 *   17  timeouts.connect_ms is enforced (by upstream.c's own timer, not
 *       curl's option): a host that never completes the handshake fails
 *       the attempt as `timeout` and the next provider answers
 *
 * One worker, so every breaker is the one /v1/gateway/providers shows.
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
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#define KEY_A "sk-live-0123456789abcdef"
#define KEY_B "sk-b-secret-000111222"

static th_proc_t mock_a, mock_b, gw;
static char *audit_path;

static int group_setup(void **state)
{
    (void)state;
    if (th_start_mock(&mock_a, "a") < 0 || th_start_mock(&mock_b, "b") < 0)
        return -1;
    audit_path = th_strf("%s/meridian-trust-audit-%d.jsonl",
                         getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (int)getpid());
    unlink(audit_path);
    char *cfg = th_strf(
        "{\"listen\":\"127.0.0.1:0\","
        " \"timeouts\":{\"connect_ms\":1000,\"first_byte_ms\":1000,\"request_ms\":8000},"
        " \"health\":{\"failure_threshold\":2,\"cooldown_ms\":600000},"
        " \"retry_budget\":{\"min_retries_per_s\":100000},"
        " \"audit\":{\"path\":\"%s\",\"bodies\":true},"
        " \"providers\":{"
        "  \"a\":{\"kind\":\"openai\",\"base_url\":\"http://127.0.0.1:%d/v1\",\"api_key\":\"" KEY_A
        "\"},"
        "  \"b\":{\"kind\":\"openai\",\"base_url\":\"http://127.0.0.1:%d/v1\",\"api_key\":\"" KEY_B
        "\"},"
        "  "
        "\"s\":{\"kind\":\"openai\",\"base_url\":\"http://127.0.0.1:%d/v1\",\"api_key\":\"sk-s\"},"
        "  \"dead\":{\"kind\":\"openai\",\"base_url\":\"http://127.0.0.1:%d/v1\"}},"
        " \"routes\":{"
        "  \"auth\":{\"targets\":[{\"provider\":\"a\",\"model\":\"m1\"},"
        "                        {\"provider\":\"a\",\"model\":\"m2\"},"
        "                        {\"provider\":\"b\",\"model\":\"m3\"}]},"
        "  \"auth-only\":{\"targets\":[{\"provider\":\"a\",\"model\":\"m1\"}]},"
        "  \"dead\":{\"targets\":[{\"provider\":\"dead\",\"model\":\"x\"}]},"
        "  \"slow\":{\"targets\":[{\"provider\":\"s\",\"model\":\"m\"}]}}}",
        audit_path, mock_a.port, mock_b.port, mock_b.port, th_refused_port());
    const char *args[] = {"--workers", "1", NULL};
    int rc = th_start_meridian_ex(&gw, cfg, args, NULL);
    free(cfg);
    return rc;
}

static int group_teardown(void **state)
{
    (void)state;
    int rc = th_stop(&gw);
    th_stop(&mock_a);
    th_stop(&mock_b);
    unlink(audit_path);
    free(audit_path);
    return rc == 0 ? 0 : -1;
}

static int reset_mocks(void **state)
{
    (void)state;
    return th_mock_reset(&mock_a) || th_mock_reset(&mock_b) ? -1 : 0;
}

static void chat(const char *model, int stream, th_response_t *r)
{
    char url[256], body[160];
    snprintf(body, sizeof(body), "{\"model\":\"%s\",\"stream\":%s}", model,
             stream ? "true" : "false");
    th_http("POST", th_url_buf(&gw, "/v1/chat/completions", url, sizeof(url)), NULL, body,
            strlen(body), r);
}

static void assert_no_text(const char *hay, const char *needle)
{
    if (hay && strstr(hay, needle))
        fail_msg("\"%s\" found in:\n%s", needle, hay);
}

static const char *error_code(json_t *root)
{
    return json_string_value(json_object_get(json_object_get(root, "error"), "code"));
}

static json_t *first_attempt(json_t *root)
{
    return json_array_get(json_object_get(json_object_get(root, "error"), "attempts"), 0);
}

static void assert_header(const th_response_t *r, const char *name, const char *want)
{
    char buf[256];
    const char *v = th_header(r, name, buf, sizeof(buf));
    if (!v || strcmp(v, want))
        fail_msg("%s: \"%s\", want \"%s\"", name, v ? v : "(none)", want);
}

/* The breaker state of provider p's target, as this (only) worker sees it. */
static char *breaker_state(const char *p)
{
    char url[256];
    th_response_t r;
    char *state = NULL;
    th_http("GET", th_url_buf(&gw, "/v1/gateway/providers", url, sizeof(url)), NULL, NULL, 0, &r);
    json_t *root = th_json(&r), *e;
    size_t i;
    json_array_foreach(json_object_get(root, "data"), i, e)
    {
        if (!strcmp(json_string_value(json_object_get(e, "provider")), p))
            state = strdup(json_string_value(json_object_get(e, "state")));
    }
    json_decref(root);
    th_response_free(&r);
    assert_non_null(state);
    return state;
}

static void assert_breaker(const char *p, const char *want)
{
    char *s = breaker_state(p);
    if (strcmp(s, want))
        fail_msg("breaker of %s is %s, want %s", p, s, want);
    free(s);
}

/* ---- 6: upstream authentication failures, scrubbed --------------------- */

static const char echo_401[] =
    "{\"status\":401,\"count\":1,\"body\":\"{\\\"error\\\":{\\\"message\\\":\\\"Incorrect API "
    "key provided: Bearer " KEY_A "\\\",\\\"type\\\":\\\"invalid_request_error\\\","
    "\\\"code\\\":\\\"invalid_api_key\\\"}}\"}";

static void test_upstream_401_fails_over(void **state)
{
    th_response_t r;
    (void)state;
    assert_int_equal(th_mock_scenario(&mock_a, echo_401), 0);
    chat("auth", 0, &r);
    assert_int_equal(r.status, 200);
    assert_header(&r, "x-meridian-provider", "b");
    assert_header(&r, "x-meridian-attempts", "2");
    th_response_free(&r);
    /* a/m2 was not tried: the same key would be refused */
    assert_int_equal(th_mock_stat(&mock_a, "requests"), 1);
    assert_int_equal(th_mock_stat(&mock_b, "requests"), 1);
}

static void test_upstream_401_is_a_502(void **state)
{
    th_response_t r;
    (void)state;
    assert_int_equal(th_mock_scenario(&mock_a, echo_401), 0);
    chat("auth-only", 0, &r);
    assert_int_equal(r.status, 502);
    json_t *root = th_json(&r);
    assert_non_null(root);
    assert_string_equal(error_code(root), "upstream_auth_failed");
    const char *msg = json_string_value(json_object_get(json_object_get(root, "error"), "message"));
    assert_non_null(strstr(msg, "a (auth_failed, HTTP 401"));
    json_t *att = first_attempt(root);
    assert_string_equal(json_string_value(json_object_get(att, "error")), "auth_failed");
    json_decref(root);
    assert_no_text(r.body, KEY_A);
    th_response_free(&r);
    /* the provider's message is the operator's, scrubbed */
    assert_int_equal(th_wait_log(&gw, "Incorrect API key provided: Bearer ***", 5000), 0);
    char *log = th_read_log(&gw);
    assert_no_text(log, KEY_A);
    free(log);
}

static void test_passthrough_error_scrubbed(void **state)
{
    th_response_t r;
    (void)state;
    assert_int_equal(th_mock_scenario(&mock_b,
                                      "{\"status\":400,\"count\":1,\"body\":\"{\\\"error\\\":{"
                                      "\\\"message\\\":\\\"bad request from key " KEY_B
                                      " (x-api-key " KEY_B ")\\\"}}\"}"),
                     0);
    chat("b/m3", 0, &r);
    assert_int_equal(r.status, 400);
    assert_no_text(r.body, KEY_B);
    assert_non_null(strstr(r.body, "bad request from key *** (x-api-key ***)"));
    th_response_free(&r);
}

/* ---- 7: internal addresses stay in the log ------------------------------ */

static void test_transport_error_vocabulary(void **state)
{
    th_response_t r;
    (void)state;
    chat("dead", 0, &r);
    assert_int_equal(r.status, 502);
    json_t *root = th_json(&r);
    json_t *att = first_attempt(root);
    assert_string_equal(json_string_value(json_object_get(att, "error")), "connect_failed");
    const char *msg = json_string_value(json_object_get(json_object_get(root, "error"), "message"));
    assert_non_null(strstr(msg, "dead (connect_failed, "));
    json_decref(root);
    assert_no_text(r.body, "127.0.0.1");
    assert_no_text(r.body, "Failed to connect");
    th_response_free(&r);
    /* the operator still learns where it failed */
    assert_int_equal(th_wait_log(&gw, "failed (connect_failed), status 0: Failed to connect", 5000),
                     0);
}

/* The audit record keeps the failure name, the status and curl's text (the
 * operator's file), and never the provider key. */
static void test_audit_keeps_detail_without_keys(void **state)
{
    (void)state;
    /* every request so far is recorded once it is done */
    assert_int_equal(th_wait_lines(audit_path, 4, 5000), 0);
    char *audit = th_read_file(audit_path, NULL);
    assert_non_null(audit);
    assert_no_text(audit, KEY_A);
    assert_no_text(audit, KEY_B);
    assert_non_null(strstr(audit, "\"failure\":\"connect_failed\""));
    assert_non_null(strstr(audit, "Failed to connect"));
    assert_non_null(strstr(audit, "\"failure\":\"auth_failed\""));
    free(audit);
}

/* ---- 11: the content type is the gateway's ------------------------------ */

static void test_content_type_is_fixed(void **state)
{
    th_response_t r;
    char url[256];
    (void)state;
    assert_int_equal(
        th_mock_scenario(
            &mock_b, "{\"count\":1,\"content_type\":\"text/html\",\"body\":\"{\\\"id\\\":\\\"x\\\","
                     "\\\"object\\\":\\\"chat.completion\\\",\\\"choices\\\":[{\\\"index\\\":0,"
                     "\\\"message\\\":{\\\"role\\\":\\\"assistant\\\",\\\"content\\\":"
                     "\\\"<script>alert(1)</script>\\\"},\\\"finish_reason\\\":\\\"stop\\\"}]}\"}"),
        0);
    chat("b/m3", 0, &r);
    assert_int_equal(r.status, 200);
    assert_header(&r, "content-type", "application/json");
    assert_header(&r, "x-content-type-options", "nosniff");
    th_response_free(&r);
    assert_int_equal(th_mock_scenario(&mock_b, "{\"count\":1,\"headers\":{\"content-type\":"
                                               "\"text/html\"}}"),
                     0);
    chat("b/m3", 1, &r);
    assert_int_equal(r.status, 200);
    assert_header(&r, "content-type", "text/event-stream");
    assert_header(&r, "x-content-type-options", "nosniff");
    th_response_free(&r);
    /* the gateway's own answers and errors too */
    th_http("GET", th_url_buf(&gw, "/healthz", url, sizeof(url)), NULL, NULL, 0, &r);
    assert_header(&r, "x-content-type-options", "nosniff");
    th_response_free(&r);
    th_http("GET", th_url_buf(&gw, "/nope", url, sizeof(url)), NULL, NULL, 0, &r);
    assert_int_equal(r.status, 404);
    assert_header(&r, "x-content-type-options", "nosniff");
    th_response_free(&r);
}

/* ---- 13a: what opens a breaker ------------------------------------------ */

static void test_slow_answers_do_not_open_the_breaker(void **state)
{
    th_response_t r;
    (void)state;
    /* a client asking for a long generation: every answer takes longer than
     * first_byte_ms; twice the failure threshold */
    json_t *last = NULL;
    for (int i = 0; i < 4; i++) {
        assert_int_equal(th_mock_scenario(&mock_b, "{\"count\":1,\"headers_delay_ms\":2500}"), 0);
        chat("slow", 0, &r);
        assert_int_equal(r.status, 504);
        json_decref(last);
        last = th_json(&r);
        th_response_free(&r);
    }
    /* (before the fix: "open", and every tenant got 503 targets_unavailable) */
    assert_breaker("s", "closed");
    assert_string_equal(json_string_value(json_object_get(first_attempt(last), "error")),
                        "answer_timeout");
    json_decref(last);
    chat("slow", 0, &r); /* other tenants still get through */
    assert_int_equal(r.status, 200);
    th_response_free(&r);

    /* a stream's response head is due at once: its timeout counts */
    for (int i = 0; i < 2; i++) {
        assert_int_equal(th_mock_scenario(&mock_b, "{\"count\":1,\"headers_delay_ms\":2500}"), 0);
        chat("slow", 1, &r);
        assert_int_equal(r.status, 504);
        th_response_free(&r);
    }
    assert_breaker("s", "open");
    /* and so do connect failures */
    for (int i = 0; i < 2; i++) {
        chat("dead", 0, &r);
        th_response_free(&r);
    }
    assert_breaker("dead", "open");
}

/* ---- 17: the connect timeout ------------------------------------------- */

#define BACKLOG_FILLERS 3

/* A loopback listener whose accept queue is full and never drained: the
 * kernel drops further SYNs, so a connect to it hangs (no refusal). fds[0]
 * is the listener, the rest fill its queue; returns its port, -1 on error. */
static int full_listener(int fds[1 + BACKLOG_FILLERS])
{
    struct sockaddr_in sa;
    socklen_t sl = sizeof(sa);

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    fds[0] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fds[0] < 0 || bind(fds[0], (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        listen(fds[0], 0) != 0 || getsockname(fds[0], (struct sockaddr *)&sa, &sl) != 0)
        return -1;
    for (int i = 1; i <= BACKLOG_FILLERS; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fds[i] < 0)
            return -1;
        (void)connect(fds[i], (struct sockaddr *)&sa, sizeof(sa)); /* EINPROGRESS */
    }
    return ntohs(sa.sin_port);
}

static void test_connect_timeout_is_enforced(void **state)
{
    int fds[1 + BACKLOG_FILLERS] = {-1, -1, -1, -1};
    th_proc_t gw2;
    th_response_t r;
    char url[256];
    const char body[] = "{\"model\":\"hang\",\"stream\":false}";
    (void)state;

    int port = full_listener(fds);
    assert_true(port > 0);
    /* first_byte_ms far above connect_ms: only the connect timeout can end
     * the first attempt as `timeout` (curl's own default is 300 s) */
    char *cfg =
        th_strf("{\"listen\":\"127.0.0.1:0\","
                " \"timeouts\":{\"connect_ms\":300,\"first_byte_ms\":20000,\"request_ms\":30000},"
                " \"providers\":{"
                "  \"hang\":{\"kind\":\"openai\",\"base_url\":\"http://127.0.0.1:%d/v1\"},"
                "  \"b\":{\"kind\":\"openai\",\"base_url\":\"http://127.0.0.1:%d/v1\"}},"
                " \"routes\":{\"hang\":{\"targets\":[{\"provider\":\"hang\",\"model\":\"x\"},"
                "                               {\"provider\":\"b\",\"model\":\"m\"}]}}}",
                port, mock_b.port);
    const char *args[] = {"--workers", "1", NULL};
    int rc = th_start_meridian_ex(&gw2, cfg, args, NULL);
    free(cfg);
    assert_int_equal(rc, 0);
    th_http("POST", th_url_buf(&gw2, "/v1/chat/completions", url, sizeof(url)), NULL, body,
            strlen(body), &r);
    assert_int_equal(r.status, 200);
    assert_header(&r, "x-meridian-provider", "b");
    assert_header(&r, "x-meridian-attempts", "2");
    th_response_free(&r);
    assert_int_equal(
        th_wait_log(&gw2, "failed (timeout), status 0: Connection timed out after 300 milliseconds",
                    5000),
        0);
    assert_int_equal(th_stop(&gw2), 0);
    for (int i = 0; i < 1 + BACKLOG_FILLERS; i++)
        close(fds[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_upstream_401_fails_over, reset_mocks),
        cmocka_unit_test_setup(test_upstream_401_is_a_502, reset_mocks),
        cmocka_unit_test_setup(test_passthrough_error_scrubbed, reset_mocks),
        cmocka_unit_test_setup(test_transport_error_vocabulary, reset_mocks),
        cmocka_unit_test_setup(test_audit_keeps_detail_without_keys, reset_mocks),
        cmocka_unit_test_setup(test_content_type_is_fixed, reset_mocks),
        cmocka_unit_test_setup(test_slow_answers_do_not_open_the_breaker, reset_mocks),
        cmocka_unit_test_setup(test_connect_timeout_is_enforced, reset_mocks),
    };
    th_init();
    int rc = cmocka_run_group_tests(tests, group_setup, group_teardown);
    th_cleanup();
    return rc;
}
