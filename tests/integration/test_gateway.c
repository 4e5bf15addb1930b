/*
 * The real meridian binary between a client and two mock upstreams:
 * passthrough bytes, streaming timing, failover for every fault kind, error
 * bodies, the header contract, key handling, bad input, keep-alive reuse,
 * client disconnects and the command line.
 */
#include "harness.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define KEY_A "sk-provider-a-secret-0123456789"
#define KEY_B "sk-provider-b-secret-9876543210"
#define CLIENT_KEY "sk-client-should-never-travel"

static th_proc_t mock_a, mock_b, gw;

static const char *const json_hdrs[] = {"Authorization: Bearer " CLIENT_KEY, NULL};

static char *gateway_config(void)
{
    return th_strf(
        "{\"listen\":\"127.0.0.1:0\","
        /* these tests hammer failing mocks on purpose: keep breakers and the
         * retry budget out of the way (test_breaker covers them) */
        " \"health\":{\"failure_threshold\":1000000}, "
        "\"retry_budget\":{\"min_retries_per_s\":100000},"
        " \"providers\":{"
        "  \"a\":{\"kind\":\"openai\",\"base_url\":\"http://127.0.0.1:%d/v1\","
        "        \"api_key\":\"${TEST_KEY_A}\",\"vendor\":\"vendor-a\"},"
        "  \"b\":{\"kind\":\"openai\",\"base_url\":\"http://127.0.0.1:%d/v1\","
        "        \"api_key\":\"" KEY_B "\",\"vendor\":\"vendor-b\","
        "        \"forward_headers\":[\"OpenAI-Organization\",\"x-absent\"]},"
        "  \"dead\":{\"kind\":\"openai\",\"base_url\":\"http://127.0.0.1:%d/v1\","
        "        \"api_key\":\"sk-dead\"},"
        "  \"off\":{\"kind\":\"openai\",\"base_url\":\"http://127.0.0.1:%d/v1\","
        "        \"api_key\":\"${MERIDIAN_TEST_UNSET_KEY}\"}},"
        " \"routes\":{"
        "  \"chat\":{\"targets\":[{\"provider\":\"a\",\"model\":\"m-a\"},"
        "                        {\"provider\":\"b\",\"model\":\"m-b\"}]},"
        "  \"dead-first\":{\"targets\":[{\"provider\":\"dead\",\"model\":\"m-dead\"},"
        "                              {\"provider\":\"b\",\"model\":\"m-b\"}]},"
        "  \"only-off\":{\"targets\":[{\"provider\":\"off\",\"model\":\"m-off\"}]},"
        "  \"one-try\":{\"max_attempts\":1,\"targets\":[{\"provider\":\"a\",\"model\":\"m-a\"},"
        "                        {\"provider\":\"b\",\"model\":\"m-b\"}]}},"
        " \"timeouts\":{\"connect_ms\":1000,\"first_byte_ms\":800,\"request_ms\":4000,"
        "               \"stream_idle_ms\":1500},"
        " \"limits\":{\"max_body_bytes\":65536,\"max_header_bytes\":8192}}",
        mock_a.port, mock_b.port, th_refused_port(), th_refused_port());
}

static int group_setup(void **state)
{
    (void)state;
    if (th_start_mock(&mock_a, "a") < 0 || th_start_mock(&mock_b, "b") < 0)
        return -1;
    char *cfg = gateway_config();
    const char *env[] = {"TEST_KEY_A=" KEY_A, NULL};
    /* two workers whatever the machine: the multi-worker path is the one tested */
    const char *args[] = {"--workers", "2", NULL};
    int rc = th_start_meridian_ex(&gw, cfg, args, env);
    free(cfg);
    return rc;
}

static int group_teardown(void **state)
{
    (void)state;
    int rc = th_stop(&gw);
    th_stop(&mock_a);
    th_stop(&mock_b);
    /* SIGTERM drains and exits 0 */
    return rc == 0 ? 0 : -1;
}

static int reset_mocks(void **state)
{
    (void)state;
    return th_mock_reset(&mock_a) | th_mock_reset(&mock_b);
}

static void post(const char *path, const char *body, th_response_t *r)
{
    char url[256];
    th_http("POST", th_url_buf(&gw, path, url, sizeof(url)), json_hdrs, body, strlen(body), r);
}

static void assert_header(const th_response_t *r, const char *name, const char *want)
{
    char buf[256];
    const char *v = th_header(r, name, buf, sizeof(buf));
    if (!v || strcmp(v, want) != 0)
        fail_msg("header %s: want \"%s\", got \"%s\"\nheaders:\n%s", name, want, v ? v : "(none)",
                 r->headers);
}

/* The error body must be exactly OpenAI's shape; returns error.code. */
static const char *assert_openai_error(const th_response_t *r, long status, json_t **root_out)
{
    if (r->status != status)
        fail_msg("status: want %ld, got %ld; body: %s", status, r->status, r->body);
    json_t *root = th_json(r);
    assert_non_null(root);
    json_t *err = json_object_get(root, "error");
    assert_true(json_is_object(err));
    assert_true(json_is_string(json_object_get(err, "message")));
    assert_true(strlen(json_string_value(json_object_get(err, "message"))) > 0);
    assert_true(json_is_string(json_object_get(err, "type")));
    assert_true(json_object_get(err, "param") != NULL);
    assert_true(json_object_get(err, "code") != NULL);
    char ct[128];
    assert_non_null(th_header(r, "content-type", ct, sizeof(ct)));
    assert_string_equal(ct, "application/json");
    assert_non_null(th_header(r, "x-request-id", ct, sizeof(ct)));
    *root_out = root;
    return json_string_value(json_object_get(err, "code"));
}

static void assert_served_by(const th_response_t *r, const char *provider, const char *attempts)
{
    if (r->status != 200)
        fail_msg("want 200 from %s, got %ld: %s", provider, r->status, r->body);
    assert_header(r, "x-meridian-provider", provider);
    assert_header(r, "x-meridian-attempts", attempts);
}

/* ---- passthrough ----------------------------------------------------- */

/* Odd spacing and number formatting must survive: only model is rewritten. */
#define ODD_BODY(model, extra)                                                                     \
    "{ \"messages\" : [ {\"role\":\"user\",\"content\":\"h\\u00e9llo\"} ],\n  \"model\":" model    \
    " , \"temperature\": 0.70, \"max_tokens\": 1e2" extra " }"

static void test_nonstream_byte_exact(void **state)
{
    th_response_t via, direct;
    char url[256];
    (void)state;

    post("/v1/chat/completions", ODD_BODY("\"a/upstream-x\"", ""), &via);
    assert_served_by(&via, "a", "1");
    json_t *seen = th_mock_requests(&mock_a);
    assert_int_equal(json_array_size(seen), 1);
    json_t *rec = json_array_get(seen, 0);
    assert_string_equal(json_string_value(json_object_get(rec, "path")), "/v1/chat/completions");
    /* the body the provider got is the client's, byte for byte, but for model */
    assert_string_equal(json_string_value(json_object_get(rec, "body")),
                        ODD_BODY("\"upstream-x\"", ""));
    json_decref(seen);

    const char *dbody = ODD_BODY("\"upstream-x\"", "");
    th_http("POST", th_url_buf(&mock_a, "/v1/chat/completions", url, sizeof(url)), NULL, dbody,
            strlen(dbody), &direct);
    assert_int_equal(direct.status, 200);
    assert_int_equal(via.body_len, direct.body_len);
    assert_memory_equal(via.body, direct.body, direct.body_len);
    th_response_free(&via);
    th_response_free(&direct);
}

static void test_stream_byte_exact(void **state)
{
    th_response_t via, direct;
    char url[256], ct[128];
    (void)state;

    post("/v1/chat/completions", ODD_BODY("\"a/s\"", ", \"stream\": true"), &via);
    assert_served_by(&via, "a", "1");
    assert_non_null(th_header(&via, "content-type", ct, sizeof(ct)));
    assert_non_null(strstr(ct, "text/event-stream"));
    const char *dbody = ODD_BODY("\"s\"", ", \"stream\": true");
    th_http("POST", th_url_buf(&mock_a, "/v1/chat/completions", url, sizeof(url)), NULL, dbody,
            strlen(dbody), &direct);
    assert_int_equal(via.body_len, direct.body_len);
    assert_memory_equal(via.body, direct.body, direct.body_len);

    /* usage is requested upstream on the client's behalf (for accounting);
     * the extra usage chunk is removed, so the bytes above still match */
    char *want = th_strf("{\"stream_options\":{\"include_usage\":true},%s",
                         ODD_BODY("\"s\"", ", \"stream\": true") + 1);
    json_t *seen = th_mock_requests(&mock_a);
    assert_string_equal(json_string_value(json_object_get(json_array_get(seen, 0), "body")), want);
    free(want);
    json_decref(seen);

    char **ev;
    size_t n;
    th_sse_events(via.body, via.body_len, &ev, &n);
    assert_int_equal(n, 7); /* 5 content chunks, finish chunk, [DONE] */
    assert_string_equal(ev[n - 1], "[DONE]");
    th_sse_free(ev, n);
    th_response_free(&via);
    th_response_free(&direct);
}

static void test_stream_usage_when_asked(void **state)
{
    th_response_t r;
    (void)state;
    post("/v1/chat/completions",
         "{\"model\":\"chat\",\"stream\":true,\"stream_options\":{\"include_usage\":true}}", &r);
    assert_served_by(&r, "a", "1");
    char **ev;
    size_t n;
    th_sse_events(r.body, r.body_len, &ev, &n);
    assert_int_equal(n, 8); /* the usage chunk is the client's: kept */
    assert_non_null(strstr(ev[6], "\"usage\":{\"prompt_tokens\":5"));
    th_sse_free(ev, n);
    th_response_free(&r);
    /* stream_options present without include_usage: only that member changes */
    post("/v1/chat/completions",
         "{\"model\":\"chat\",\"stream\":true,\"stream_options\":{\"x\":1}}", &r);
    th_sse_events(r.body, r.body_len, &ev, &n);
    assert_int_equal(n, 7);
    th_sse_free(ev, n);
    th_response_free(&r);
    json_t *seen = th_mock_requests(&mock_a);
    assert_string_equal(json_string_value(json_object_get(json_array_get(seen, 1), "body")),
                        "{\"model\":\"m-a\",\"stream\":true,"
                        "\"stream_options\":{\"x\":1,\"include_usage\":true}}");
    json_decref(seen);
}

static void test_gateway_only_members_stripped(void **state)
{
    th_response_t r;
    (void)state;
    post("/v1/chat/completions",
         "{\"provider\":{\"only\":[\"a\"]},\"model\":\"chat\",\"models\":[\"b/m-b\"],\"n\":1}", &r);
    assert_served_by(&r, "a", "1");
    th_response_free(&r);
    json_t *seen = th_mock_requests(&mock_a);
    assert_string_equal(json_string_value(json_object_get(json_array_get(seen, 0), "body")),
                        "{\"model\":\"m-a\",\"n\":1}");
    json_decref(seen);
}

static void test_other_endpoints_pass_through(void **state)
{
    th_response_t r;
    (void)state;
    post("/v1/embeddings", "{\"model\":\"b/emb\",\"input\":\"x\"}", &r);
    assert_served_by(&r, "b", "1");
    assert_non_null(strstr(r.body, "\"embedding\":[0.1,0.2,0.3]"));
    th_response_free(&r);
    post("/v1/completions", "{\"model\":\"chat\",\"prompt\":\"x\"}", &r);
    assert_served_by(&r, "a", "1");
    assert_non_null(strstr(r.body, "text_completion"));
    th_response_free(&r);
    /* the /v1-less base URL some clients use works too */
    post("/chat/completions", "{\"model\":\"chat\"}", &r);
    assert_served_by(&r, "a", "1");
    th_response_free(&r);
    json_t *seen = th_mock_requests(&mock_b);
    assert_string_equal(json_string_value(json_object_get(json_array_get(seen, 0), "path")),
                        "/v1/embeddings");
    json_decref(seen);
}

/* ---- streaming timing ------------------------------------------------ */

static void test_first_chunk_before_upstream_finishes(void **state)
{
    th_response_t r;
    (void)state;
    assert_int_equal(th_mock_scenario(&mock_a, "{\"chunks\":5,\"chunk_delay_ms\":250}"), 0);
    post("/v1/chat/completions", "{\"model\":\"chat\",\"stream\":true}", &r);
    assert_served_by(&r, "a", "1");
    print_message("first chunk after %.1f ms, stream complete after %.1f ms\n", r.t_first_byte_ms,
                  r.t_total_ms);
    /* the upstream needs >= 6 x 250 ms; the first event must not wait for it */
    assert_true(r.t_total_ms >= 1400);
    assert_true(r.t_first_byte_ms >= 0);
    assert_true(r.t_first_byte_ms < r.t_total_ms - 1000);
    char **ev;
    size_t n;
    th_sse_events(r.body, r.body_len, &ev, &n);
    assert_int_equal(n, 7);
    th_sse_free(ev, n);
    th_response_free(&r);
}

/* ---- headers and keys ------------------------------------------------ */

static void test_header_contract_and_keys(void **state)
{
    th_response_t r;
    char url[256];
    const char *hdrs[] = {"Authorization: Bearer " CLIENT_KEY, "x-request-id: trace-123.abc",
                          "OpenAI-Organization: org-client", NULL};
    (void)state;
    th_http("POST", th_url_buf(&gw, "/v1/chat/completions", url, sizeof(url)), hdrs,
            "{\"model\":\"chat\"}", 16, &r);
    assert_served_by(&r, "a", "1");
    assert_header(&r, "x-request-id", "trace-123.abc");
    th_response_free(&r);

    post("/v1/chat/completions", "{\"model\":\"chat\"}", &r);
    char id1[128], id2[128];
    assert_non_null(th_header(&r, "x-request-id", id1, sizeof(id1)));
    th_response_free(&r);
    post("/v1/chat/completions", "{\"model\":\"chat\"}", &r);
    assert_non_null(th_header(&r, "x-request-id", id2, sizeof(id2)));
    assert_string_not_equal(id1, id2);
    th_response_free(&r);

    json_t *seen = th_mock_requests(&mock_a);
    size_t i;
    json_t *rec;
    json_array_foreach(seen, i, rec)
    {
        json_t *h = json_object_get(rec, "headers");
        assert_string_equal(json_string_value(json_object_get(h, "authorization")),
                            "Bearer " KEY_A);
        assert_null(json_object_get(h, "openai-organization"));
        char *dump = json_dumps(rec, 0);
        assert_null(strstr(dump, CLIENT_KEY));
        free(dump);
    }
    json_decref(seen);
    /* b allows OpenAI-Organization through; still never the client's key */
    th_http("POST", th_url_buf(&gw, "/v1/chat/completions", url, sizeof(url)), hdrs,
            "{\"model\":\"b/x\"}", 15, &r);
    assert_served_by(&r, "b", "1");
    th_response_free(&r);
    seen = th_mock_requests(&mock_b);
    json_t *bh = json_object_get(json_array_get(seen, 0), "headers");
    assert_string_equal(json_string_value(json_object_get(bh, "openai-organization")),
                        "org-client");
    assert_null(json_object_get(bh, "x-absent"));
    assert_string_equal(json_string_value(json_object_get(bh, "authorization")), "Bearer " KEY_B);
    json_decref(seen);
    /* the provider key never comes back to the client */
    post("/v1/chat/completions", "{\"model\":\"chat\"}", &r);
    assert_null(strstr(r.headers, KEY_A));
    assert_null(strstr(r.body, KEY_A));
    th_response_free(&r);
}

/* ---- failover -------------------------------------------------------- */

static void failover_case(const char *scenario, int stream)
{
    th_response_t r;
    assert_int_equal(th_mock_reset(&mock_a), 0);
    assert_int_equal(th_mock_reset(&mock_b), 0);
    assert_int_equal(th_mock_scenario(&mock_a, scenario), 0);
    post("/v1/chat/completions",
         stream ? "{\"model\":\"chat\",\"stream\":true}" : "{\"model\":\"chat\"}", &r);
    char who[64];
    if (r.status != 200 || !th_header(&r, "x-meridian-provider", who, sizeof(who)) ||
        strcmp(who, "b") != 0)
        fail_msg("scenario %s (stream %d): got %ld from %s: %s", scenario, stream, r.status,
                 th_header(&r, "x-meridian-provider", who, sizeof(who)) ? who : "-", r.body);
    assert_served_by(&r, "b", "2");
    assert_non_null(strstr(r.body, stream ? "tok0" : "Hello from b"));
    long a_requests = th_mock_stat(&mock_a, "requests");
    assert_true(a_requests == 1 || (a_requests == 2 && strstr(scenario, "\"count\":2")));
    assert_int_equal(th_mock_stat(&mock_b, "requests"), 1);
    /* a's model was m-a, b's is m-b: each attempt rewrites model for its target */
    json_t *seen = th_mock_requests(&mock_b);
    assert_non_null(strstr(json_string_value(json_object_get(json_array_get(seen, 0), "body")),
                           "\"model\":\"m-b\""));
    json_decref(seen);
    th_response_free(&r);
}

static void test_failover_each_fault(void **state)
{
    static const char *const faults[] = {
        "{\"status\":500,\"count\":1}",
        "{\"status\":502,\"count\":1}",
        "{\"status\":503,\"count\":1}",
        "{\"status\":529,\"count\":1}",
        "{\"status\":429,\"count\":1}", /* with Retry-After: test_breaker */
        "{\"status\":408,\"count\":1}",
        "{\"status\":409,\"count\":1}",
        /* curl re-sends once by itself when a *reused* keep-alive connection
         * dies before any response byte (a stale connection), so this fault
         * must hit twice to reach the gateway's failover */
        "{\"fault\":\"reset_before_headers\",\"count\":2}",
        /* streams: head sent, then reset before any event, so nothing has
         * reached the client yet (a reset after an event is a race between
         * committing and failing over; test_stream_failure_after_first_byte
         * covers the committed case deterministically) */
        "{\"fault\":\"reset_mid_body\",\"reset_after_chunks\":0,\"count\":1}",
        "{\"fault\":\"garbage\",\"count\":1}",
        "{\"fault\":\"stall\",\"count\":1}", /* first_byte_ms = 800 */
        "{\"headers_delay_ms\":3000,\"count\":1}",
    };
    (void)state;
    for (size_t i = 0; i < sizeof(faults) / sizeof(faults[0]); i++) {
        failover_case(faults[i], 0);
        failover_case(faults[i], 1);
    }
}

static void test_failover_connect_refused(void **state)
{
    th_response_t r;
    (void)state;
    post("/v1/chat/completions", "{\"model\":\"dead-first\"}", &r);
    assert_served_by(&r, "b", "2");
    th_response_free(&r);
    post("/v1/chat/completions", "{\"model\":\"dead-first\",\"stream\":true}", &r);
    assert_served_by(&r, "b", "2");
    th_response_free(&r);
}

static void test_stream_failure_after_first_byte(void **state)
{
    th_response_t r;
    (void)state;
    assert_int_equal(th_mock_scenario(&mock_a, "{\"chunks\":5,\"chunk_delay_ms\":100,"
                                               "\"fault\":\"reset_mid_body\","
                                               "\"reset_after_chunks\":2,\"count\":1}"),
                     0);
    post("/v1/chat/completions", "{\"model\":\"chat\",\"stream\":true}", &r);
    /* committed: no failover, the stream ends with an error event, never hangs */
    assert_int_equal(r.curl_code, CURLE_OK);
    assert_served_by(&r, "a", "1");
    char **ev;
    size_t n;
    th_sse_events(r.body, r.body_len, &ev, &n);
    assert_int_equal(n, 3);
    assert_non_null(strstr(ev[0], "tok0"));
    assert_non_null(strstr(ev[1], "tok1"));
    json_t *err = json_loads(ev[2], 0, NULL);
    assert_non_null(err);
    assert_string_equal(json_string_value(json_object_get(json_object_get(err, "error"), "code")),
                        "upstream_stream_error");
    json_decref(err);
    th_sse_free(ev, n);
    assert_int_equal(th_mock_stat(&mock_b, "requests"), 0);
    th_response_free(&r);
}

static void test_stream_idle_timeout_ends_stream(void **state)
{
    th_response_t r;
    (void)state;
    /* second event 3 s after the first; stream_idle_ms is 1500 */
    assert_int_equal(
        th_mock_scenario(&mock_a, "{\"chunks\":3,\"chunk_delay_ms\":3000,\"count\":1}"), 0);
    post("/v1/chat/completions", "{\"model\":\"chat\",\"stream\":true}", &r);
    assert_int_equal(r.curl_code, CURLE_OK);
    assert_true(r.t_total_ms < 2900);
    char **ev;
    size_t n;
    th_sse_events(r.body, r.body_len, &ev, &n);
    assert_int_equal(n, 2);
    assert_non_null(strstr(ev[1], "(stream_idle)"));
    th_sse_free(ev, n);
    th_response_free(&r);
}

/* The idle timer is not re-armed per event: a stream whose events come
 * closer than stream_idle_ms runs past that bound many times over. */
static void test_stream_steady_outlives_idle_timeout(void **state)
{
    th_response_t r;
    (void)state;
    /* 4 content events 900 ms apart (~3.6 s in all); stream_idle_ms is 1500 */
    assert_int_equal(th_mock_scenario(&mock_a, "{\"chunks\":4,\"chunk_delay_ms\":900,\"count\":1}"),
                     0);
    post("/v1/chat/completions", "{\"model\":\"chat\",\"stream\":true}", &r);
    assert_int_equal(r.curl_code, CURLE_OK);
    assert_true(r.t_total_ms > 2000);
    assert_null(strstr(r.body, "stream_idle"));
    assert_non_null(strstr(r.body, "data: [DONE]"));
    th_response_free(&r);
}

/* ---- everything fails ------------------------------------------------ */

static void test_all_attempts_fail(void **state)
{
    th_response_t r;
    json_t *root;
    (void)state;
    th_mock_scenario(&mock_a, "{\"status\":500}");
    th_mock_scenario(&mock_b, "{\"fault\":\"reset_before_headers\"}");
    post("/v1/chat/completions", "{\"model\":\"chat\"}", &r);
    assert_string_equal(assert_openai_error(&r, 502, &root), "upstream_failed");
    assert_header(&r, "x-meridian-attempts", "2");
    json_t *attempts = json_object_get(json_object_get(root, "error"), "attempts");
    assert_int_equal(json_array_size(attempts), 2);
    json_t *a0 = json_array_get(attempts, 0), *a1 = json_array_get(attempts, 1);
    assert_string_equal(json_string_value(json_object_get(a0, "provider")), "a");
    assert_int_equal(json_integer_value(json_object_get(a0, "status")), 500);
    assert_string_equal(json_string_value(json_object_get(a1, "provider")), "b");
    assert_string_equal(json_string_value(json_object_get(a1, "error")), "reset");
    assert_true(json_is_integer(json_object_get(a1, "ms")));
    const char *msg = json_string_value(json_object_get(json_object_get(root, "error"), "message"));
    assert_non_null(strstr(msg, "a (server_error, HTTP 500"));
    assert_non_null(strstr(msg, "b ("));
    json_decref(root);
    th_response_free(&r);

    th_mock_scenario(&mock_a, "{\"status\":429}");
    th_mock_scenario(&mock_b, "{\"status\":429}");
    post("/v1/chat/completions", "{\"model\":\"chat\",\"stream\":true}", &r);
    assert_string_equal(assert_openai_error(&r, 429, &root), "upstream_rate_limited");
    json_decref(root);
    th_response_free(&r);

    th_mock_scenario(&mock_a, "{\"status\":503}");
    th_mock_scenario(&mock_b, "{\"status\":529}");
    post("/v1/chat/completions", "{\"model\":\"chat\"}", &r);
    assert_string_equal(assert_openai_error(&r, 503, &root), "upstream_unavailable");
    json_decref(root);
    th_response_free(&r);

    th_mock_scenario(&mock_a, "{\"fault\":\"stall\"}");
    th_mock_scenario(&mock_b, "{\"fault\":\"stall\"}");
    post("/v1/chat/completions", "{\"model\":\"chat\"}", &r);
    assert_string_equal(assert_openai_error(&r, 504, &root), "upstream_timeout");
    assert_true(r.t_total_ms < 3500); /* 2 x first_byte_ms, not the 30 s client timeout */
    json_decref(root);
    th_response_free(&r);
}

static void test_attempt_cap(void **state)
{
    th_response_t r;
    json_t *root;
    (void)state;
    th_mock_scenario(&mock_a, "{\"status\":500}");
    post("/v1/chat/completions", "{\"model\":\"one-try\"}", &r);
    assert_openai_error(&r, 502, &root);
    assert_header(&r, "x-meridian-attempts", "1");
    assert_int_equal(th_mock_stat(&mock_b, "requests"), 0);
    json_decref(root);
    th_response_free(&r);
}

static void test_client_error_not_retried(void **state)
{
    th_response_t r;
    json_t *root;
    (void)state;
    th_mock_scenario(&mock_a, "{\"status\":400,\"count\":1}");
    post("/v1/chat/completions", "{\"model\":\"chat\"}", &r);
    assert_openai_error(&r, 400, &root);
    assert_header(&r, "x-meridian-provider", "a");
    assert_header(&r, "x-meridian-attempts", "1");
    assert_int_equal(th_mock_stat(&mock_b, "requests"), 0);
    json_decref(root);
    th_response_free(&r);
    /* a non-JSON error body is wrapped in the OpenAI shape */
    th_mock_scenario(&mock_a, "{\"status\":404,\"body\":\"<html>nope</html>\","
                              "\"content_type\":\"text/html\",\"count\":1}");
    post("/v1/chat/completions", "{\"model\":\"chat\"}", &r);
    assert_openai_error(&r, 404, &root);
    json_decref(root);
    th_response_free(&r);
}

/* ---- bad input ------------------------------------------------------- */

static void test_bad_input(void **state)
{
    static const struct {
        const char *method, *path, *ctype, *body;
        long status;
        const char *code;
    } cases[] = {
        {"POST", "/v1/chat/completions", NULL, "{\"model\":", 400, "invalid_json"},
        {"POST", "/v1/chat/completions", NULL, "", 400, "invalid_request_error"},
        {"POST", "/v1/chat/completions", NULL, "[1,2]", 400, "invalid_request_error"},
        {"POST", "/v1/chat/completions", NULL, "{\"a\":1,\"a\":2}", 400, "invalid_json"},
        {"POST", "/v1/chat/completions", NULL, "{\"messages\":[]}", 400,
         "missing_required_parameter"},
        {"POST", "/v1/chat/completions", NULL, "{\"model\":\"\"}", 400, "invalid_type"},
        {"POST", "/v1/chat/completions", NULL, "{\"model\":42}", 400, "invalid_type"},
        {"POST", "/v1/chat/completions", NULL, "{\"model\":\"chat\",\"stream\":1}", 400,
         "invalid_type"},
        {"POST", "/v1/chat/completions", NULL, "{\"model\":\"gpt-nope\"}", 404, "model_not_found"},
        {"POST", "/v1/chat/completions", NULL, "{\"model\":\"zzz/model\"}", 404, "model_not_found"},
        {"POST", "/v1/chat/completions", "Content-Type: text/plain", "{\"model\":\"chat\"}", 415,
         "unsupported_media_type"},
        {"POST", "/v1/chat/completions", "Content-Type: application/x-www-form-urlencoded",
         "model=chat", 415, "unsupported_media_type"},
        {"POST", "/v1/nope", NULL, "{}", 404, "unknown_url"},
        {"GET", "/", NULL, NULL, 404, "unknown_url"},
        {"GET", "/v1/chat/completions", NULL, NULL, 405, "method_not_allowed"},
        {"DELETE", "/v1/models", NULL, NULL, 405, "method_not_allowed"},
        {"POST", "/v1/chat/completions", NULL, "{\"model\":\"only-off\"}", 503,
         "no_enabled_provider"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        th_response_t r;
        json_t *root;
        char url[256];
        const char *hdrs[] = {cases[i].ctype, NULL};
        th_http(cases[i].method, th_url_buf(&gw, cases[i].path, url, sizeof(url)), hdrs,
                cases[i].body, cases[i].body ? strlen(cases[i].body) : 0, &r);
        const char *code = assert_openai_error(&r, cases[i].status, &root);
        if (!code || strcmp(code, cases[i].code) != 0)
            fail_msg("case %zu (%s %s %s): code %s, want %s", i, cases[i].method, cases[i].path,
                     cases[i].body ? cases[i].body : "", code ? code : "null", cases[i].code);
        if (cases[i].status == 503)
            assert_non_null(strstr(
                json_string_value(json_object_get(json_object_get(root, "error"), "message")),
                "MERIDIAN_TEST_UNSET_KEY"));
        json_decref(root);
        th_response_free(&r);
    }
    assert_int_equal(th_mock_stat(&mock_a, "requests") + th_mock_stat(&mock_b, "requests"), 0);
}

static void test_size_limits(void **state)
{
    th_response_t r;
    json_t *root;
    char url[256];
    (void)state;
    size_t n = 70000;
    char *big = malloc(n + 1);
    memset(big, ' ', n);
    memcpy(big, "{\"model\":\"chat\",\"x\":\"", 21);
    memcpy(big + n - 2, "\"}", 2);
    big[n] = '\0';
    post("/v1/chat/completions", big, &r);
    assert_string_equal(assert_openai_error(&r, 413, &root), "request_too_large");
    json_decref(root);
    th_response_free(&r);
    /* chunked upload: no Content-Length to reject early */
    const char *chunked[] = {"Transfer-Encoding: chunked", NULL};
    th_http("POST", th_url_buf(&gw, "/v1/chat/completions", url, sizeof(url)), chunked, big, n, &r);
    assert_string_equal(assert_openai_error(&r, 413, &root), "request_too_large");
    json_decref(root);
    th_response_free(&r);

    char *hdr = malloc(9000 + 16);
    memcpy(hdr, "X-Filler: ", 10);
    memset(hdr + 10, 'h', 9000);
    hdr[9010] = '\0';
    const char *hdrs[] = {hdr, NULL};
    th_http("POST", th_url_buf(&gw, "/v1/chat/completions", url, sizeof(url)), hdrs,
            "{\"model\":\"chat\"}", 16, &r);
    assert_string_equal(assert_openai_error(&r, 431, &root), "headers_too_large");
    json_decref(root);
    th_response_free(&r);
    free(hdr);
    free(big);

    /* still serving */
    th_http("GET", th_url_buf(&gw, "/healthz", url, sizeof(url)), NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    th_response_free(&r);
}

/* ---- local endpoints ------------------------------------------------- */

static void test_models(void **state)
{
    th_response_t r;
    char url[256];
    (void)state;
    th_http("GET", th_url_buf(&gw, "/v1/models", url, sizeof(url)), NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    json_t *root = th_json(&r);
    assert_string_equal(json_string_value(json_object_get(root, "object")), "list");
    json_t *data = json_object_get(root, "data");
    int chat = 0, a_ma = 0, off = 0;
    size_t i;
    json_t *m;
    json_array_foreach(data, i, m)
    {
        const char *id = json_string_value(json_object_get(m, "id"));
        assert_string_equal(json_string_value(json_object_get(m, "object")), "model");
        chat += strcmp(id, "chat") == 0;
        a_ma += strcmp(id, "a/m-a") == 0;
        off += strcmp(id, "off/m-off") == 0;
    }
    assert_int_equal(chat, 1);
    assert_int_equal(a_ma, 1);
    assert_int_equal(off, 0); /* disabled providers are not advertised */
    json_decref(root);
    assert_non_null(th_header(&r, "x-request-id", url, sizeof(url)));
    th_response_free(&r);
}

/* ---- connections ----------------------------------------------------- */

static void test_upstream_keepalive(void **state)
{
    char url[256];
    CURL *client = curl_easy_init();
    th_http_opts_t reuse = {.easy = client};
    (void)state;
    th_url_buf(&gw, "/v1/chat/completions", url, sizeof(url));
    /* one client connection: one worker, one upstream connection */
    for (int i = 0; i < 20; i++) {
        th_response_t r;
        const char *b = i % 2 ? "{\"model\":\"a/x\",\"stream\":true}" : "{\"model\":\"a/x\"}";
        th_http_ex(&reuse, "POST", url, json_hdrs, b, strlen(b), &r);
        assert_int_equal(r.status, 200);
        th_response_free(&r);
    }
    curl_easy_cleanup(client);
    assert_int_equal(th_mock_stat(&mock_a, "requests"), 20);
    assert_int_equal(th_mock_stat(&mock_a, "connections"), 1);
    /* a new client connection each time: at most one upstream connection per worker */
    for (int i = 0; i < 20; i++) {
        th_response_t r;
        post("/v1/chat/completions", "{\"model\":\"a/x\"}", &r);
        assert_int_equal(r.status, 200);
        th_response_free(&r);
    }
    assert_true(th_mock_stat(&mock_a, "connections") <= 2);
}

static void test_client_disconnect_aborts_upstream(void **state)
{
    th_response_t r;
    char url[256];
    th_http_opts_t o = {.timeout_ms = 300};
    (void)state;
    /* waiting for the head */
    th_mock_scenario(&mock_a, "{\"headers_delay_ms\":20000,\"count\":1}");
    th_http_ex(&o, "POST", th_url_buf(&gw, "/v1/chat/completions", url, sizeof(url)), NULL,
               "{\"model\":\"a/x\"}", 15, &r);
    assert_int_equal(r.curl_code, CURLE_OPERATION_TIMEDOUT);
    th_response_free(&r);
    assert_int_equal(th_mock_wait_stat(&mock_a, "aborted", 1, 3000), 0);
    /* mid-stream */
    th_mock_scenario(&mock_a, "{\"chunks\":50,\"chunk_delay_ms\":100,\"count\":1}");
    th_http_opts_t o2 = {.abort_after_bytes = 10};
    th_http_ex(&o2, "POST", th_url_buf(&gw, "/v1/chat/completions", url, sizeof(url)), NULL,
               "{\"model\":\"a/x\",\"stream\":true}", 29, &r);
    th_response_free(&r);
    assert_int_equal(th_mock_wait_stat(&mock_a, "aborted", 2, 3000), 0);
    assert_int_equal(th_mock_wait_stat(&mock_a, "in_flight", 0, 3000), 0);
}

static void test_concurrent_mixed(void **state)
{
    enum { N = 64 };
    th_request_t reqs[N];
    th_response_t outs[N];
    char url[256];
    (void)state;
    th_mock_scenario(&mock_a, "{\"chunks\":5,\"chunk_delay_ms\":20}");
    th_url_buf(&gw, "/v1/chat/completions", url, sizeof(url));
    for (int i = 0; i < N; i++) {
        const char *b = i % 2 ? "{\"model\":\"chat\",\"stream\":true}" : "{\"model\":\"chat\"}";
        reqs[i] = (th_request_t){"POST", url, json_hdrs, b, strlen(b)};
    }
    assert_int_equal(th_http_parallel(reqs, N, outs), 0);
    for (int i = 0; i < N; i++) {
        assert_served_by(&outs[i], "a", "1");
        assert_non_null(strstr(outs[i].body, i % 2 ? "[DONE]" : "Hello from a"));
        th_response_free(&outs[i]);
    }
}

/* ---- command line ---------------------------------------------------- */

static void test_cli(void **state)
{
    char *out = NULL;
    (void)state;
    const char *shipped = MERIDIAN_SOURCE_DIR "/config/meridian.json";
    const char *check[] = {"--check", "--config", shipped, NULL};
    assert_int_equal(th_run_meridian(check, NULL, &out), 0);
    assert_non_null(strstr(out, "routes"));
    assert_non_null(strstr(out, "chat"));
    free(out);

    char *typo = th_write_temp("{\"providers\":{\"x\":{\"kind\":\"openai\","
                               "\"base_url\":\"http://127.0.0.1:1\",\"api_kye\":\"k\"}}}",
                               ".json");
    const char *bad[] = {"--check", "--config", typo, NULL};
    assert_int_equal(th_run_meridian(bad, NULL, &out), 1);
    assert_non_null(strstr(out, "providers.x.api_kye"));
    assert_non_null(strstr(out, typo));
    free(out);
    unlink(typo);
    free(typo);

    const char *usage[] = {"--bogus", NULL};
    assert_int_equal(th_run_meridian(usage, NULL, &out), 2);
    free(out);
    const char *version[] = {"--version", NULL};
    assert_int_equal(th_run_meridian(version, NULL, &out), 0);
    assert_non_null(strstr(out, "meridian "));
    free(out);
}

static void send_sigterm(void *ud)
{
    assert_int_equal(th_signal(ud, SIGTERM), 0);
}

/* SIGTERM while a stream is running: the stream finishes, then exit 0. */
static void test_sigterm_drains(void **state)
{
    th_proc_t d = {0};
    char *cfg = gateway_config();
    const char *env[] = {"TEST_KEY_A=" KEY_A, NULL};
    char url[256];
    (void)state;
    assert_int_equal(th_start_meridian(&d, cfg, env), 0);
    free(cfg);
    th_mock_scenario(&mock_a, "{\"chunks\":6,\"chunk_delay_ms\":150,\"count\":1}");

    th_during_t run;
    th_post_during(th_url_buf(&d, "/v1/chat/completions", url, sizeof(url)),
                   "{\"model\":\"chat\",\"stream\":true}", send_sigterm, &d, &run);
    assert_true(run.hook_ran);
    assert_int_equal(run.curl_code, CURLE_OK);
    assert_int_equal(run.status, 200);
    assert_true(run.bytes > 800);
    assert_int_equal(th_wait_exit(&d, 5000), 0);
    th_stop(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_nonstream_byte_exact, reset_mocks),
        cmocka_unit_test_setup(test_stream_byte_exact, reset_mocks),
        cmocka_unit_test_setup(test_stream_usage_when_asked, reset_mocks),
        cmocka_unit_test_setup(test_gateway_only_members_stripped, reset_mocks),
        cmocka_unit_test_setup(test_other_endpoints_pass_through, reset_mocks),
        cmocka_unit_test_setup(test_first_chunk_before_upstream_finishes, reset_mocks),
        cmocka_unit_test_setup(test_header_contract_and_keys, reset_mocks),
        cmocka_unit_test_setup(test_failover_each_fault, reset_mocks),
        cmocka_unit_test_setup(test_failover_connect_refused, reset_mocks),
        cmocka_unit_test_setup(test_stream_failure_after_first_byte, reset_mocks),
        cmocka_unit_test_setup(test_stream_idle_timeout_ends_stream, reset_mocks),
        cmocka_unit_test_setup(test_stream_steady_outlives_idle_timeout, reset_mocks),
        cmocka_unit_test_setup(test_all_attempts_fail, reset_mocks),
        cmocka_unit_test_setup(test_attempt_cap, reset_mocks),
        cmocka_unit_test_setup(test_client_error_not_retried, reset_mocks),
        cmocka_unit_test_setup(test_bad_input, reset_mocks),
        cmocka_unit_test_setup(test_size_limits, reset_mocks),
        cmocka_unit_test_setup(test_models, reset_mocks),
        cmocka_unit_test_setup(test_upstream_keepalive, reset_mocks),
        cmocka_unit_test_setup(test_client_disconnect_aborts_upstream, reset_mocks),
        cmocka_unit_test_setup(test_concurrent_mixed, reset_mocks),
        cmocka_unit_test_setup(test_cli, reset_mocks),
        cmocka_unit_test_setup(test_sigterm_drains, reset_mocks),
    };
    th_init();
    int rc = cmocka_run_group_tests(tests, group_setup, group_teardown);
    th_cleanup();
    return rc;
}
