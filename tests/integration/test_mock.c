/*
 * Tests of the mock upstream (and of the harness itself), so that gateway
 * integration tests can trust both. Faults are observed with raw libcurl
 * clients where the exact client-side error matters.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define MOCK_NAME "mock-a"

static th_proc_t g_mock;

static const char CHAT_REQ[] =
    "{\"model\":\"m1\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
static const char CHAT_RESP[] =
    "{\"id\":\"chatcmpl-mock\",\"object\":\"chat.completion\",\"created\":1700000000,"
    "\"model\":\"m1\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
    "\"content\":\"Hello from " MOCK_NAME "\"},\"finish_reason\":\"stop\"}],"
    "\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":4,\"total_tokens\":9}}";
static const char STREAM_REQ[] = "{\"model\":\"m1\",\"stream\":true,\"messages\":[]}";
static const char STREAM_USAGE_REQ[] = "{\"model\":\"m1\",\"stream\":true,\"messages\":[],"
                                       "\"stream_options\":{\"include_usage\":true}}";

/* ------------------------------------------------------------------ helpers */

static char *url(const char *path)
{
    return th_url(&g_mock, path);
}

/* Request against the mock; asserts the transfer itself worked. */
static void req_ok(const char *method, const char *path, const char *body, th_response_t *r)
{
    char *u = url(path);
    int rc = th_http(method, u, NULL, body, body ? strlen(body) : 0, r);
    free(u);
    if (rc != 0)
        fail_msg("%s %s: curl error %d", method, path, r->curl_code);
}

static void scenario(const char *json)
{
    assert_int_equal(th_mock_scenario(&g_mock, json), 0);
}

static long stat_of(const char *key)
{
    long v = th_mock_stat(&g_mock, key);
    assert_true(v >= 0);
    return v;
}

static void assert_header(const th_response_t *r, const char *name, const char *want)
{
    char buf[256];
    const char *v = th_header(r, name, buf, sizeof(buf));
    if (!v)
        fail_msg("missing header %s in:\n%s", name, r->headers);
    assert_string_equal(v, want);
}

/* A raw libcurl POST, independent of the harness, for fault observation. */
typedef struct raw {
    char *body;
    size_t len;
    int writes;
    double write_ms[64];
    size_t write_len[64];
    double t0;
} raw_t;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static size_t raw_write(char *data, size_t size, size_t nmemb, void *ud)
{
    raw_t *r = ud;
    size_t n = size * nmemb;
    char *p = realloc(r->body, r->len + n + 1);
    if (!p)
        return 0;
    r->body = p;
    memcpy(r->body + r->len, data, n);
    r->len += n;
    r->body[r->len] = '\0';
    if (r->writes < 64) {
        r->write_ms[r->writes] = now_ms() - r->t0;
        r->write_len[r->writes] = n;
    }
    r->writes++;
    return n;
}

static CURLcode raw_post(const char *path, const char *body, long *status, raw_t *out)
{
    memset(out, 0, sizeof(*out));
    out->t0 = now_ms();
    char *u = url(path);
    CURL *h = curl_easy_init();
    struct curl_slist *hs = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(h, CURLOPT_URL, u);
    curl_easy_setopt(h, CURLOPT_PROXY, "");
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hs);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 30000L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, raw_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, out);
    CURLcode rc = curl_easy_perform(h);
    *status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
    curl_easy_cleanup(h);
    curl_slist_free_all(hs);
    free(u);
    if (!out->body)
        out->body = calloc(1, 1);
    return rc;
}

/* ------------------------------------------------------------------ fixtures */

static int group_setup(void **state)
{
    (void)state;
    return th_start_mock(&g_mock, MOCK_NAME);
}

static int group_teardown(void **state)
{
    (void)state;
    int st = th_stop(&g_mock);
    if (st != 0)
        fprintf(stderr, "mock exited with status %d\n", st);
    return st == 0 ? 0 : -1;
}

static int reset(void **state)
{
    (void)state;
    /* The mock counts a response as completed only after its last byte left,
     * which can be just after the client has it: wait for the previous test's
     * requests to be counted, or they land in the next test's counters. */
    if (th_mock_wait_stat(&g_mock, "in_flight", 0, 5000) < 0)
        return -1;
    return th_mock_reset(&g_mock);
}

/* -------------------------------------------------------------- happy paths */

static void test_chat_deterministic(void **state)
{
    (void)state;
    th_response_t a, b;
    req_ok("POST", "/v1/chat/completions", CHAT_REQ, &a);
    req_ok("POST", "/v1/chat/completions", CHAT_REQ, &b);
    assert_int_equal(a.status, 200);
    assert_int_equal(b.status, 200);
    assert_int_equal(a.body_len, b.body_len);
    assert_memory_equal(a.body, b.body, a.body_len);
    assert_string_equal(a.body, CHAT_RESP);
    assert_header(&a, "content-type", "application/json");
    assert_header(&a, "X-Mock-Name", MOCK_NAME);
    th_response_free(&a);
    th_response_free(&b);
}

static void test_other_endpoints(void **state)
{
    (void)state;
    th_response_t r;
    /* any base path: matched by suffix */
    req_ok("POST", "/openai/v1/completions", "{\"model\":\"t1\",\"prompt\":\"x\"}", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(
        r.body,
        "{\"id\":\"cmpl-mock\",\"object\":\"text_completion\",\"created\":1700000000,\"model\":"
        "\"t1\",\"choices\":[{\"index\":0,\"text\":\"Hello from " MOCK_NAME
        "\",\"logprobs\":null,\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":5,"
        "\"completion_tokens\":4,\"total_tokens\":9}}");
    th_response_free(&r);

    req_ok("POST", "/v1/embeddings", "{\"model\":\"e1\",\"input\":\"x\"}", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"object\":\"list\",\"data\":[{\"object\":\"embedding\","
                                "\"index\":0,\"embedding\":[0.1,0.2,0.3]}],\"model\":\"e1\","
                                "\"usage\":{\"prompt_tokens\":2,\"total_tokens\":2}}");
    th_response_free(&r);

    req_ok("GET", "/v1/models", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body,
                        "{\"object\":\"list\",\"data\":[{\"id\":\"mock-model\",\"object\":"
                        "\"model\",\"created\":1700000000,\"owned_by\":\"" MOCK_NAME "\"}]}");
    th_response_free(&r);

    req_ok("GET", "/v1/nothing-here", NULL, &r);
    assert_int_equal(r.status, 404);
    th_response_free(&r);

    req_ok("GET", "/v1/chat/completions", NULL, &r);
    assert_int_equal(r.status, 405);
    assert_header(&r, "Allow", "POST");
    th_response_free(&r);
}

static void test_bad_json_is_openai_error(void **state)
{
    (void)state;
    th_response_t r;
    req_ok("POST", "/v1/chat/completions", "{nope", &r);
    assert_int_equal(r.status, 400);
    json_t *j = th_json(&r);
    assert_non_null(j);
    json_t *e = json_object_get(j, "error");
    assert_true(json_is_string(json_object_get(e, "message")));
    assert_string_equal(json_string_value(json_object_get(e, "type")), "invalid_request_error");
    assert_true(json_is_null(json_object_get(e, "param")));
    assert_true(json_is_null(json_object_get(e, "code")));
    json_decref(j);
    th_response_free(&r);
}

/* Checks a chat stream's events: n content chunks, finish, [usage], [DONE]. */
static void check_stream(const th_response_t *r, int chunks, int usage)
{
    char **ev;
    size_t n;
    assert_int_equal(th_sse_events(r->body, r->body_len, &ev, &n), 0);
    assert_int_equal(n, (size_t)chunks + 2 + (usage ? 1 : 0));
    for (int i = 0; i < chunks; i++) {
        json_t *j = json_loads(ev[i], 0, NULL);
        assert_non_null(j);
        assert_string_equal(json_string_value(json_object_get(j, "object")),
                            "chat.completion.chunk");
        json_t *c0 = json_array_get(json_object_get(j, "choices"), 0);
        json_t *delta = json_object_get(c0, "delta");
        char want[16];
        snprintf(want, sizeof(want), "tok%d ", i);
        assert_string_equal(json_string_value(json_object_get(delta, "content")), want);
        assert_true(json_is_null(json_object_get(c0, "finish_reason")));
        if (i == 0)
            assert_string_equal(json_string_value(json_object_get(delta, "role")), "assistant");
        else
            assert_null(json_object_get(delta, "role"));
        json_decref(j);
    }
    json_t *fin = json_loads(ev[chunks], 0, NULL);
    json_t *c0 = json_array_get(json_object_get(fin, "choices"), 0);
    assert_string_equal(json_string_value(json_object_get(c0, "finish_reason")), "stop");
    assert_int_equal(json_object_size(json_object_get(c0, "delta")), 0);
    json_decref(fin);
    if (usage) {
        json_t *u = json_loads(ev[chunks + 1], 0, NULL);
        assert_int_equal(json_array_size(json_object_get(u, "choices")), 0);
        assert_int_equal(
            json_integer_value(json_object_get(json_object_get(u, "usage"), "total_tokens")), 9);
        json_decref(u);
    }
    assert_string_equal(ev[n - 1], "[DONE]");
    th_sse_free(ev, n);
}

static void test_stream_events_and_timing(void **state)
{
    (void)state;
    scenario("{\"chunk_delay_ms\":100,\"chunks\":5}");
    th_response_t r;
    req_ok("POST", "/v1/chat/completions", STREAM_USAGE_REQ, &r);
    assert_int_equal(r.status, 200);
    assert_header(&r, "Content-Type", "text/event-stream");
    assert_header(&r, "Transfer-Encoding", "chunked");
    check_stream(&r, 5, 1);
    /* 7 events after the first, 100 ms before each */
    assert_true(r.t_total_ms >= 690);
    if (!(r.t_first_byte_ms >= 0 && r.t_first_byte_ms < r.t_total_ms - 250))
        fail_msg("first byte at %.1f ms, total %.1f ms", r.t_first_byte_ms, r.t_total_ms);
    th_response_free(&r);

    /* without include_usage, and with another chunk count */
    scenario("{\"chunks\":2}");
    req_ok("POST", "/v1/chat/completions", STREAM_REQ, &r);
    check_stream(&r, 2, 0);
    th_response_free(&r);
}

static void test_stream_one_event_per_write(void **state)
{
    (void)state;
    scenario("{\"chunk_delay_ms\":150,\"chunks\":3}");
    raw_t raw;
    long status;
    assert_int_equal(raw_post("/v1/chat/completions", STREAM_REQ, &status, &raw), CURLE_OK);
    assert_int_equal(status, 200);
    /* 3 chunks + finish + [DONE], each its own write, spaced by the delay (150 ms;
     * checked with slack for a loaded machine) */
    assert_int_equal(raw.writes, 5);
    size_t off = 0;
    for (int i = 0; i < raw.writes; i++) {
        const char *ev = raw.body + off;
        assert_true(strncmp(ev, "data: ", 6) == 0);
        assert_true(raw.write_len[i] > 8);
        assert_memory_equal(ev + raw.write_len[i] - 2, "\n\n", 2);
        assert_null(memmem(ev, raw.write_len[i] - 2, "\n\n", 2));
        if (i > 0)
            assert_true(raw.write_ms[i] - raw.write_ms[i - 1] >= 50);
        off += raw.write_len[i];
    }
    assert_int_equal(off, raw.len);
    free(raw.body);
}

static void test_completions_stream(void **state)
{
    (void)state;
    th_response_t r;
    req_ok("POST", "/v1/completions", "{\"model\":\"t1\",\"stream\":true}", &r);
    char **ev;
    size_t n;
    assert_int_equal(th_sse_events(r.body, r.body_len, &ev, &n), 0);
    assert_int_equal(n, 7);
    json_t *j = json_loads(ev[1], 0, NULL);
    assert_string_equal(json_string_value(json_object_get(j, "object")), "text_completion");
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(j, "choices"), 0), "text")),
                        "tok1 ");
    json_decref(j);
    assert_string_equal(ev[6], "[DONE]");
    th_sse_free(ev, n);
    th_response_free(&r);
}

/* ------------------------------------------------------------------- faults */

static void test_fault_status_retry_after(void **state)
{
    (void)state;
    scenario("{\"status\":503,\"retry_after\":\"2\",\"count\":1}");
    raw_t raw;
    long status;
    assert_int_equal(raw_post("/v1/chat/completions", CHAT_REQ, &status, &raw), CURLE_OK);
    assert_int_equal(status, 503);
    assert_string_equal(raw.body, "{\"error\":{\"message\":\"mock " MOCK_NAME
                                  " status 503\",\"type\":\"server_error\",\"param\":null,"
                                  "\"code\":null}}");
    free(raw.body);

    th_response_t r;
    scenario("{\"status\":429,\"retry_after\":7,\"count\":1}");
    req_ok("POST", "/v1/chat/completions", CHAT_REQ, &r);
    assert_int_equal(r.status, 429);
    assert_header(&r, "Retry-After", "7");
    th_response_free(&r);

    /* popped: plain 200 again, no Retry-After */
    req_ok("POST", "/v1/chat/completions", CHAT_REQ, &r);
    assert_int_equal(r.status, 200);
    char buf[32];
    assert_null(th_header(&r, "Retry-After", buf, sizeof(buf)));
    th_response_free(&r);
}

static void test_fault_reset_before_headers(void **state)
{
    (void)state;
    scenario("{\"fault\":\"reset_before_headers\",\"count\":1}");
    raw_t raw;
    long status;
    CURLcode rc = raw_post("/v1/chat/completions", CHAT_REQ, &status, &raw);
    if (rc != CURLE_GOT_NOTHING && rc != CURLE_RECV_ERROR)
        fail_msg("expected GOT_NOTHING/RECV_ERROR, got %d (%s)", rc, curl_easy_strerror(rc));
    assert_int_equal(status, 0);
    assert_int_equal(raw.len, 0);
    free(raw.body);
    assert_int_equal(stat_of("requests"), 1);
    assert_int_equal(stat_of("aborted"), 0); /* injected, not a client abort */

    th_response_t r;
    req_ok("POST", "/v1/chat/completions", CHAT_REQ, &r);
    assert_int_equal(r.status, 200);
    th_response_free(&r);
}

static void test_fault_reset_mid_body_stream(void **state)
{
    (void)state;
    scenario("{\"fault\":\"reset_mid_body\",\"reset_after_chunks\":2,\"count\":1}");
    raw_t raw;
    long status;
    CURLcode rc = raw_post("/v1/chat/completions", STREAM_REQ, &status, &raw);
    if (rc != CURLE_PARTIAL_FILE && rc != CURLE_RECV_ERROR)
        fail_msg("expected PARTIAL_FILE/RECV_ERROR, got %d (%s)", rc, curl_easy_strerror(rc));
    assert_int_equal(status, 200);
    char **ev;
    size_t n;
    assert_int_equal(th_sse_events(raw.body, raw.len, &ev, &n), 0);
    assert_int_equal(n, 2);
    assert_non_null(strstr(ev[0], "\"tok0 \""));
    assert_non_null(strstr(ev[1], "\"tok1 \""));
    th_sse_free(ev, n);
    free(raw.body);
}

static void test_fault_reset_mid_body_plain(void **state)
{
    (void)state;
    th_response_t full;
    req_ok("POST", "/v1/chat/completions", CHAT_REQ, &full);
    assert_int_equal(full.status, 200);

    scenario("{\"fault\":\"reset_mid_body\",\"count\":1}");
    th_response_t r;
    char *u = url("/v1/chat/completions");
    assert_int_equal(th_http("POST", u, NULL, CHAT_REQ, strlen(CHAT_REQ), &r), -1);
    free(u);
    if (r.curl_code != CURLE_PARTIAL_FILE && r.curl_code != CURLE_RECV_ERROR)
        fail_msg("expected PARTIAL_FILE/RECV_ERROR, got %d", r.curl_code);
    assert_int_equal(r.status, 200);
    char want[32];
    snprintf(want, sizeof(want), "%zu", full.body_len);
    assert_header(&r, "Content-Length", want);
    assert_int_equal(r.body_len, full.body_len / 2);
    assert_memory_equal(r.body, full.body, r.body_len);
    th_response_free(&r);
    th_response_free(&full);
}

static void test_fault_garbage(void **state)
{
    (void)state;
    scenario("{\"fault\":\"garbage\",\"count\":1}");
    raw_t raw;
    long status;
    assert_int_equal(raw_post("/v1/chat/completions", CHAT_REQ, &status, &raw), CURLE_OK);
    assert_int_equal(status, 200);
    assert_string_equal(raw.body, "this is not json {{{");
    free(raw.body);

    th_response_t r;
    scenario("{\"fault\":\"garbage\",\"count\":1}");
    req_ok("POST", "/v1/chat/completions", CHAT_REQ, &r);
    assert_header(&r, "Content-Type", "application/json");
    assert_null(th_json(&r));
    th_response_free(&r);
}

static void test_fault_stall_until_client_leaves(void **state)
{
    (void)state;
    scenario("{\"fault\":\"stall\",\"count\":1}");
    th_http_opts_t o = {.timeout_ms = 300};
    th_response_t r;
    char *u = url("/v1/chat/completions");
    assert_int_equal(th_http_ex(&o, "POST", u, NULL, CHAT_REQ, strlen(CHAT_REQ), &r), -1);
    assert_int_equal(r.curl_code, CURLE_OPERATION_TIMEDOUT);
    assert_int_equal(r.status, 0);
    assert_true(r.t_total_ms < 5000);
    th_response_free(&r);
    /* the mock notices the client left and frees the connection's thread */
    assert_int_equal(th_mock_wait_stat(&g_mock, "in_flight", 0, 5000), 0);
    assert_int_equal(stat_of("aborted"), 1);

    assert_int_equal(th_http("POST", u, NULL, CHAT_REQ, strlen(CHAT_REQ), &r), 0);
    assert_int_equal(r.status, 200);
    th_response_free(&r);
    free(u);
}

static void test_headers_delay(void **state)
{
    (void)state;
    scenario("{\"headers_delay_ms\":300,\"count\":1}");
    th_response_t r;
    req_ok("POST", "/v1/chat/completions", CHAT_REQ, &r);
    assert_int_equal(r.status, 200);
    if (r.t_first_byte_ms < 295)
        fail_msg("first byte after %.1f ms, expected >= 300", r.t_first_byte_ms);
    th_response_free(&r);
}

static void test_client_abort_mid_stream(void **state)
{
    (void)state;
    scenario("{\"chunk_delay_ms\":200,\"chunks\":20}");
    th_http_opts_t o = {.abort_after_bytes = 1};
    th_response_t r;
    char *u = url("/v1/chat/completions");
    assert_int_equal(th_http_ex(&o, "POST", u, NULL, STREAM_REQ, strlen(STREAM_REQ), &r), -1);
    free(u);
    assert_int_equal(r.curl_code, CURLE_WRITE_ERROR);
    assert_true(r.t_total_ms < 2000);
    th_response_free(&r);
    assert_int_equal(th_mock_wait_stat(&g_mock, "in_flight", 0, 3000), 0);
    assert_int_equal(stat_of("aborted"), 1);
    assert_int_equal(stat_of("completed"), 0);
}

static void test_count_queue_then_default(void **state)
{
    (void)state;
    scenario("{\"status\":502}"); /* persistent default */
    scenario("{\"status\":429,\"count\":2}");
    scenario("{\"status\":500,\"count\":1}");
    const long want[] = {429, 429, 500, 502, 502};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        th_response_t r;
        req_ok("GET", "/v1/models", NULL, &r);
        if (r.status != want[i])
            fail_msg("request %zu: status %ld, want %ld", i, r.status, want[i]);
        th_response_free(&r);
    }
    assert_int_equal(th_mock_reset(&g_mock), 0);
    th_response_t r;
    req_ok("GET", "/v1/models", NULL, &r);
    assert_int_equal(r.status, 200);
    th_response_free(&r);
}

static void test_custom_body_and_headers(void **state)
{
    (void)state;
    scenario("{\"status\":400,\"body\":\"{\\\"error\\\":{\\\"message\\\":\\\"bad\\\"}}\","
             "\"headers\":{\"x-ratelimit-remaining\":\"0\"},\"count\":1}");
    th_response_t r;
    req_ok("POST", "/v1/chat/completions", CHAT_REQ, &r);
    assert_int_equal(r.status, 400);
    assert_string_equal(r.body, "{\"error\":{\"message\":\"bad\"}}");
    assert_header(&r, "x-ratelimit-remaining", "0");
    th_response_free(&r);
}

static void test_scenario_validation(void **state)
{
    (void)state;
    assert_int_equal(th_mock_scenario(&g_mock, "{\"fault\":\"bogus\"}"), -1);
    assert_int_equal(th_mock_scenario(&g_mock, "{\"stauts\":500}"), -1);
    assert_int_equal(th_mock_scenario(&g_mock, "{\"status\":99}"), -1);
    assert_int_equal(th_mock_scenario(&g_mock, "{\"count\":0}"), -1);
    assert_int_equal(th_mock_scenario(&g_mock, "not json"), -1);
    /* nothing was installed */
    th_response_t r;
    req_ok("GET", "/v1/models", NULL, &r);
    assert_int_equal(r.status, 200);
    th_response_free(&r);
}

static void test_body_too_large(void **state)
{
    (void)state;
    scenario("{\"status\":500,\"count\":1}");
    size_t n = 17u * 1024u * 1024u;
    char *big = malloc(n);
    assert_non_null(big);
    memset(big, 'a', n);
    th_response_t r;
    char *u = url("/v1/chat/completions");
    assert_int_equal(th_http("POST", u, NULL, big, n, &r), 0);
    free(big);
    assert_int_equal(r.status, 413);
    th_response_free(&r);
    /* the 413 did not consume the queued scenario */
    assert_int_equal(th_http("POST", u, NULL, CHAT_REQ, strlen(CHAT_REQ), &r), 0);
    assert_int_equal(r.status, 500);
    th_response_free(&r);
    free(u);
    json_t *reqs = th_mock_requests(&g_mock);
    assert_int_equal(json_array_size(reqs), 2);
    assert_true(json_is_true(json_object_get(json_array_get(reqs, 0), "body_truncated")));
    json_decref(reqs);
}

/* ---------------------------------------------------------------- recording */

static void test_recording(void **state)
{
    (void)state;
    const char *hdrs[] = {"Authorization: Bearer sk-test-123", "X-Trace: abc", NULL};
    th_response_t r;
    char *u = url("/v1/chat/completions");
    assert_int_equal(th_http("POST", u, hdrs, CHAT_REQ, strlen(CHAT_REQ), &r), 0);
    free(u);
    th_response_free(&r);
    req_ok("GET", "/v1/models", NULL, &r);
    th_response_free(&r);

    json_t *reqs = th_mock_requests(&g_mock);
    assert_non_null(reqs);
    assert_int_equal(json_array_size(reqs), 2); /* control requests are not recorded */
    json_t *a = json_array_get(reqs, 0);
    assert_string_equal(json_string_value(json_object_get(a, "method")), "POST");
    assert_string_equal(json_string_value(json_object_get(a, "path")), "/v1/chat/completions");
    json_t *h = json_object_get(a, "headers");
    assert_string_equal(json_string_value(json_object_get(h, "authorization")),
                        "Bearer sk-test-123");
    assert_string_equal(json_string_value(json_object_get(h, "x-trace")), "abc");
    assert_string_equal(json_string_value(json_object_get(h, "content-type")), "application/json");
    assert_string_equal(json_string_value(json_object_get(a, "body")), CHAT_REQ);
    json_t *b = json_array_get(reqs, 1);
    assert_string_equal(json_string_value(json_object_get(b, "method")), "GET");
    assert_string_equal(json_string_value(json_object_get(b, "path")), "/v1/models");
    assert_string_equal(json_string_value(json_object_get(b, "body")), "");
    assert_null(json_object_get(json_object_get(b, "headers"), "authorization"));
    json_decref(reqs);

    assert_int_equal(th_mock_reset(&g_mock), 0);
    reqs = th_mock_requests(&g_mock);
    assert_int_equal(json_array_size(reqs), 0);
    json_decref(reqs);
    assert_int_equal(stat_of("requests"), 0);
}

static void test_keepalive_connection_count(void **state)
{
    (void)state;
    CURL *easy = curl_easy_init();
    assert_non_null(easy);
    th_http_opts_t o = {.easy = easy};
    char *u = url("/v1/chat/completions");
    for (int i = 0; i < 3; i++) {
        th_response_t r;
        assert_int_equal(th_http_ex(&o, "POST", u, NULL, CHAT_REQ, strlen(CHAT_REQ), &r), 0);
        assert_int_equal(r.status, 200);
        th_response_free(&r);
    }
    curl_easy_cleanup(easy);
    assert_int_equal(stat_of("requests"), 3);
    assert_int_equal(stat_of("connections"), 1);
    json_t *reqs = th_mock_requests(&g_mock);
    json_int_t c0 = json_integer_value(json_object_get(json_array_get(reqs, 0), "connection"));
    assert_true(c0 > 0);
    for (size_t i = 1; i < 3; i++)
        assert_int_equal(json_integer_value(json_object_get(json_array_get(reqs, i), "connection")),
                         c0);
    json_decref(reqs);

    /* fresh handles: one connection each */
    for (int i = 0; i < 2; i++) {
        th_response_t r;
        assert_int_equal(th_http("POST", u, NULL, CHAT_REQ, strlen(CHAT_REQ), &r), 0);
        th_response_free(&r);
    }
    free(u);
    assert_int_equal(stat_of("connections"), 3);
    assert_int_equal(stat_of("completed"), 5);
}

static void test_parallel_requests(void **state)
{
    (void)state;
    scenario("{\"headers_delay_ms\":300}");
    char *u = url("/v1/chat/completions");
    th_request_t reqs[5];
    th_response_t outs[5];
    for (size_t i = 0; i < 5; i++)
        reqs[i] = (th_request_t){"POST", u, NULL, CHAT_REQ, strlen(CHAT_REQ)};
    assert_int_equal(th_http_parallel(reqs, 5, outs), 0);
    double worst = 0;
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(outs[i].status, 200);
        assert_string_equal(outs[i].body, CHAT_RESP);
        if (outs[i].t_total_ms > worst)
            worst = outs[i].t_total_ms;
        th_response_free(&outs[i]);
    }
    free(u);
    /* served concurrently: far less than 5 x 300 ms */
    if (worst >= 1200)
        fail_msg("slowest of 5 parallel requests took %.1f ms", worst);
    assert_int_equal(stat_of("connections"), 5);
}

/* ----------------------------------------------------------------- harness */

static void test_sse_parser(void **state)
{
    (void)state;
    const char s[] = "data: a\n\ndata:b\r\ndata: c\r\n\r\n: comment\nevent: x\ndata: [DONE]\n\n"
                     "\n\ndata: tail";
    char **ev;
    size_t n;
    assert_int_equal(th_sse_events(s, sizeof(s) - 1, &ev, &n), 0);
    assert_int_equal(n, 4);
    assert_string_equal(ev[0], "a");
    assert_string_equal(ev[1], "b\nc");
    assert_string_equal(ev[2], "[DONE]");
    assert_string_equal(ev[3], "tail");
    th_sse_free(ev, n);
    assert_int_equal(th_sse_events("", 0, &ev, &n), 0);
    assert_int_equal(n, 0);
    th_sse_free(ev, n);
}

static void test_refused_port(void **state)
{
    (void)state;
    int port = th_refused_port();
    assert_true(port > 0);
    char u[64];
    snprintf(u, sizeof(u), "http://127.0.0.1:%d/v1/models", port);
    th_response_t r;
    assert_int_equal(th_http("GET", u, NULL, NULL, 0, &r), -1);
    assert_int_equal(r.curl_code, CURLE_COULDNT_CONNECT);
    assert_int_equal(r.status, 0);
    th_response_free(&r);
}

static void test_mock_stops_promptly_while_stalled(void **state)
{
    (void)state;
    th_proc_t m;
    assert_int_equal(th_start_mock(&m, "mock-b"), 0);
    assert_int_equal(th_mock_scenario(&m, "{\"fault\":\"stall\"}"), 0);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)m.port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    const char req[] = "GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_int_equal(write(fd, req, sizeof(req) - 1), (ssize_t)(sizeof(req) - 1));
    assert_int_equal(th_mock_wait_stat(&m, "in_flight", 1, 5000), 0);
    double t0 = now_ms();
    assert_int_equal(th_stop(&m), 0);
    double took = now_ms() - t0;
    if (took > 3000)
        fail_msg("mock took %.0f ms to stop with a stalled request", took);
    char buf[16];
    assert_int_equal(read(fd, buf, sizeof(buf)), 0); /* closed without a response */
    close(fd);
}

/* A stand-in for meridian: a shell script, to test th_start_meridian's
 * readiness parsing, environment and exit-status handling. */
static char *fake_meridian(const char *script)
{
    char *path = th_write_temp(script, ".sh");
    assert_non_null(path);
    assert_int_equal(chmod(path, 0700), 0);
    assert_int_equal(setenv("MERIDIAN_BIN", path, 1), 0);
    return path;
}

static void test_harness_start_meridian(void **state)
{
    (void)state;
    char *bin = fake_meridian("#!/bin/sh\n"
                              "trap 'echo got TERM; exit 0' TERM\n"
                              "echo \"args=$* var=$MY_VAR proxy=${http_proxy:-none}\"\n"
                              "cat \"$2\"; echo\n"
                              "printf '2026-11-26T05:00:00.123Z info  listening on 127.0.0.1:4'\n"
                              "sleep 0.2\n"
                              "echo '242 (1 worker)'\n"
                              "while :; do sleep 0.02; done\n");
    setenv("http_proxy", "http://proxy.invalid:3128", 1);
    const char *env[] = {"MY_VAR=42", NULL};
    const char *args[] = {"--extra", NULL};
    th_proc_t p;
    assert_int_equal(th_start_meridian_ex(&p, "{\"hello\":1}", args, env), 0);
    unsetenv("http_proxy");
    assert_int_equal(p.port, 4242); /* not 4: the token was still being written */
    char *log = th_read_log(&p);
    assert_non_null(log);
    char *want =
        th_strf("args=--config %s --listen 127.0.0.1:0 --extra var=42 proxy=none", p.config_path);
    if (!strstr(log, want))
        fail_msg("log lacks \"%s\":\n%s", want, log);
    free(want);
    assert_non_null(strstr(log, "{\"hello\":1}"));
    free(log);
    char logp[256], cfgp[256];
    snprintf(logp, sizeof(logp), "%s", p.log_path);
    snprintf(cfgp, sizeof(cfgp), "%s", p.config_path);
    assert_int_equal(th_signal(&p, 0), 0);
    assert_int_equal(th_stop(&p), 0);
    if (!getenv("MERIDIAN_TEST_KEEP_LOGS")) {
        assert_int_not_equal(access(logp, F_OK), 0);
        assert_int_not_equal(access(cfgp, F_OK), 0);
    }
    assert_int_equal(th_stop(&p), -1);
    unsetenv("MERIDIAN_BIN");
    unlink(bin);
    free(bin);
}

static void test_harness_meridian_exits_early(void **state)
{
    (void)state;
    char *bin = fake_meridian("#!/bin/sh\necho 'config error: bad key' >&2\nexit 3\n");
    th_proc_t p;
    assert_int_equal(th_start_meridian(&p, "{}", NULL), -1);
    assert_int_equal(p.pid, 0);

    const char *args[] = {"--check", NULL};
    char *out = NULL;
    assert_int_equal(th_run_meridian(args, NULL, &out), 3);
    assert_non_null(out);
    assert_non_null(strstr(out, "config error: bad key"));
    free(out);
    unsetenv("MERIDIAN_BIN");
    unlink(bin);
    free(bin);
}

int main(void)
{
    th_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_chat_deterministic, reset),
        cmocka_unit_test_setup(test_other_endpoints, reset),
        cmocka_unit_test_setup(test_bad_json_is_openai_error, reset),
        cmocka_unit_test_setup(test_stream_events_and_timing, reset),
        cmocka_unit_test_setup(test_stream_one_event_per_write, reset),
        cmocka_unit_test_setup(test_completions_stream, reset),
        cmocka_unit_test_setup(test_fault_status_retry_after, reset),
        cmocka_unit_test_setup(test_fault_reset_before_headers, reset),
        cmocka_unit_test_setup(test_fault_reset_mid_body_stream, reset),
        cmocka_unit_test_setup(test_fault_reset_mid_body_plain, reset),
        cmocka_unit_test_setup(test_fault_garbage, reset),
        cmocka_unit_test_setup(test_fault_stall_until_client_leaves, reset),
        cmocka_unit_test_setup(test_headers_delay, reset),
        cmocka_unit_test_setup(test_client_abort_mid_stream, reset),
        cmocka_unit_test_setup(test_count_queue_then_default, reset),
        cmocka_unit_test_setup(test_custom_body_and_headers, reset),
        cmocka_unit_test_setup(test_scenario_validation, reset),
        cmocka_unit_test_setup(test_body_too_large, reset),
        cmocka_unit_test_setup(test_recording, reset),
        cmocka_unit_test_setup(test_keepalive_connection_count, reset),
        cmocka_unit_test_setup(test_parallel_requests, reset),
        cmocka_unit_test(test_sse_parser),
        cmocka_unit_test(test_refused_port),
        cmocka_unit_test(test_mock_stops_promptly_while_stalled),
        cmocka_unit_test(test_harness_start_meridian),
        cmocka_unit_test(test_harness_meridian_exits_early),
    };
    int rc = cmocka_run_group_tests(tests, group_setup, group_teardown);
    th_cleanup();
    return rc;
}
