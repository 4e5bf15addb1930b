/*
 * Translation fidelity through the real binary and the mock upstream:
 *   - cache_control on a tool and on a system block reaches the Anthropic
 *     mock in place; the cached and cache-write tokens it reports, and their
 *     cost at the target's prices, are in the response's usage, in /metrics
 *     and in the audit record;
 *   - a stream the upstream closes early (Connection: close, no terminal
 *     event) ends with an SSE error event and outcome "truncated";
 *   - an upstream that sends only a role chunk and closes is failed over:
 *     one clean answer from the second target, x-meridian-attempts: 2;
 *   - cache affinity: 50 turns of one prompt_cache_key under round_robin
 *     reach one target, 50 conversations split evenly;
 *   - capabilities and provider.require_parameters skip targets (and
 *     /v1/gateway/route says why);
 *   - signatures round trip through the mocks (Anthropic thinking, Gemini
 *     thought signatures);
 *   - libcurl's silent re-send on a dead keep-alive connection is counted.
 * One worker, so that keep-alive reuse and round robin are deterministic.
 */
#include "harness.h"
#include "promtext.h"

#include <stdbool.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static th_proc_t mock_x, mock_a, mock_b, gw;
static char *access_path, *audit_path;

static const char *const rr_hdrs[] = {"x-meridian-policy: rr", NULL};

static int group_setup(void **state)
{
    (void)state;
    if (th_start_mock(&mock_x, "x") < 0 || th_start_mock(&mock_a, "a") < 0 ||
        th_start_mock(&mock_b, "b") < 0)
        return -1;
    access_path = th_write_temp("", ".log");
    audit_path = th_write_temp("", ".jsonl");
    unlink(access_path);
    unlink(audit_path);
    char *cfg =
        th_strf("{\"listen\":\"127.0.0.1:0\","
                " \"health\":{\"failure_threshold\":1000000},"
                " \"retry_budget\":{\"min_retries_per_s\":100000},"
                " \"access_log\":\"%s\", \"audit\":{\"path\":\"%s\"},"
                " \"providers\":{"
                "  \"claude\":{\"kind\":\"anthropic\",\"base_url\":\"http://127.0.0.1:%d/v1\","
                "             \"api_key\":\"sk-ant\"},"
                "  \"gem\":{\"kind\":\"gemini\",\"base_url\":\"http://127.0.0.1:%d/v1beta\","
                "          \"api_key\":\"goog\"},"
                "  \"oa\":{\"kind\":\"openai\",\"base_url\":\"http://127.0.0.1:%d/v1\","
                "         \"api_key\":\"sk-a\",\"vendor\":\"va\",\"keepalive_s\":60},"
                "  \"ob\":{\"kind\":\"openai\",\"base_url\":\"http://127.0.0.1:%d/v1\","
                "         \"api_key\":\"sk-b\",\"vendor\":\"vb\"}},"
                " \"routes\":{"
                "  \"claude\":{\"targets\":[{\"provider\":\"claude\",\"model\":\"claude-test\","
                "              \"input_per_mtok\":3,\"output_per_mtok\":15}]},"
                "  \"gem\":{\"targets\":[{\"provider\":\"gem\",\"model\":\"gemini-3-test\"}]},"
                "  \"pair\":{\"targets\":[{\"provider\":\"oa\",\"model\":\"m-a\"},"
                "                       {\"provider\":\"ob\",\"model\":\"m-b\"}]},"
                "  \"caps\":{\"targets\":[{\"provider\":\"claude\",\"model\":\"claude-test\"},"
                "                       {\"provider\":\"ob\",\"model\":\"m-b\"}]}},"
                " \"policies\":{\"rr\":{\"strategy\":\"round_robin\",\"session_ttl_s\":600}},"
                " \"timeouts\":{\"connect_ms\":1000,\"first_byte_ms\":3000,\"request_ms\":10000,"
                "               \"stream_idle_ms\":3000}}",
                access_path, audit_path, mock_x.port, mock_x.port, mock_a.port, mock_b.port);
    const char *args[] = {"--workers", "1", NULL};
    int rc = th_start_meridian_ex(&gw, cfg, args, NULL);
    free(cfg);
    return rc;
}

static int group_teardown(void **state)
{
    (void)state;
    int rc = th_stop(&gw);
    th_stop(&mock_x);
    th_stop(&mock_a);
    th_stop(&mock_b);
    unlink(access_path);
    unlink(audit_path);
    free(access_path);
    free(audit_path);
    return rc == 0 ? 0 : -1;
}

static int reset_mocks(void **state)
{
    (void)state;
    return th_mock_reset(&mock_x) | th_mock_reset(&mock_a) | th_mock_reset(&mock_b);
}

static void post(const char *body, const char *const *headers, th_response_t *r)
{
    char url[256];
    th_http("POST", th_url_buf(&gw, "/v1/chat/completions", url, sizeof(url)), headers, body,
            strlen(body), r);
}

static json_t *ok_json(const th_response_t *r)
{
    if (r->status != 200)
        fail_msg("want 200, got %ld: %s", r->status, r->body);
    json_t *j = th_json(r);
    if (!j)
        fail_msg("body is not JSON: %s", r->body);
    return j;
}

static const char *header(const th_response_t *r, const char *name, char *buf, size_t n)
{
    const char *v = th_header(r, name, buf, n);
    return v ? v : "";
}

/* The line of a log file (access log or audit) for request `id`, parsed;
 * polled for a bounded time (the writer thread is asynchronous). */
static json_t *log_record(const char *path, const char *id)
{
    json_t *j = th_log_record(path, id);
    if (!j)
        fail_msg("no record of request %s in %s", id, path);
    return j;
}

static void scrape(prom_doc_t *doc)
{
    char url[256], err[256];
    th_response_t r;

    th_http("GET", th_url_buf(&gw, "/metrics", url, sizeof(url)), NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    if (prom_parse(r.body, r.body_len, doc, err, sizeof(err)) != 0)
        fail_msg("exposition rejected: %s", err);
    th_response_free(&r);
}

#define L(...) ((const char *const[]){__VA_ARGS__, NULL})

static double delta(const prom_doc_t *a, const prom_doc_t *b, const char *name,
                    const char *const *labels)
{
    double x = prom_sum(a, name, labels), y = prom_sum(b, name, labels);
    return (isnan(y) ? 0 : y) - (isnan(x) ? 0 : x);
}

/* The only request a mock recorded, its body parsed. */
static json_t *recorded_body(const th_proc_t *mock, size_t i)
{
    json_t *seen = th_mock_requests(mock);
    if (json_array_size(seen) <= i)
        fail_msg("the mock got %zu requests", json_array_size(seen));
    json_t *body =
        json_loads(json_string_value(json_object_get(json_array_get(seen, i), "body")), 0, NULL);
    json_decref(seen);
    assert_non_null(body);
    return body;
}

/* ------------------------------------------------------------ caching */

static void test_cache_control_in_place_and_cost(void **state)
{
    static const char body[] =
        "{\"model\":\"claude\",\"messages\":["
        "{\"role\":\"system\",\"content\":[{\"type\":\"text\",\"text\":\"Long stable prompt.\","
        "\"cache_control\":{\"type\":\"ephemeral\"}}]},"
        "{\"role\":\"user\",\"content\":\"Hi\"}],"
        "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"lookup\",\"parameters\":"
        "{\"type\":\"object\",\"properties\":{\"q\":{\"type\":\"string\"}}}},"
        "\"cache_control\":{\"type\":\"ephemeral\",\"ttl\":\"1h\"}}],\"tool_choice\":\"none\"}";
    prom_doc_t d0, d1;
    th_response_t r;
    char id[128];
    (void)state;

    scrape(&d0);
    post(body, NULL, &r);
    json_t *j = ok_json(&r);
    /* in place at the Anthropic mock */
    json_t *up = recorded_body(&mock_x, 0);
    json_t *sys = json_array_get(json_object_get(up, "system"), 0);
    assert_string_equal(json_string_value(json_object_get(sys, "text")), "Long stable prompt.");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(sys, "cache_control"), "type")),
        "ephemeral");
    json_t *tcc = json_object_get(json_array_get(json_object_get(up, "tools"), 0), "cache_control");
    assert_string_equal(json_string_value(json_object_get(tcc, "ttl")), "1h");
    json_decref(up);
    /* the response's usage: 5 plain + 200 written + 1000 read */
    json_t *u = json_object_get(j, "usage");
    assert_int_equal(json_integer_value(json_object_get(u, "prompt_tokens")), 1205);
    json_t *pd = json_object_get(u, "prompt_tokens_details");
    assert_int_equal(json_integer_value(json_object_get(pd, "cached_tokens")), 1000);
    assert_int_equal(json_integer_value(json_object_get(pd, "cache_write_tokens")), 200);
    /* $3 input (0.3 cached, 3.75 written by default), $15 output per Mtok */
    const double cost = (5 * 3.0 + 1000 * 0.3 + 200 * 3.75 + 4 * 15.0) / 1e6;
    scrape(&d1);
    assert_true(
        fabs(delta(&d0, &d1, "meridian_tokens_total", L("provider", "claude", "type", "cached")) -
             1000) < 1e-9);
    assert_true(fabs(delta(&d0, &d1, "meridian_tokens_total",
                           L("provider", "claude", "type", "cache_write")) -
                     200) < 1e-9);
    assert_true(fabs(delta(&d0, &d1, "meridian_cost_usd_total", L("provider", "claude")) - cost) <
                1e-9);
    json_t *rec = log_record(audit_path, header(&r, "x-request-id", id, sizeof(id)));
    assert_int_equal(json_integer_value(json_object_get(rec, "cached_tokens")), 1000);
    assert_int_equal(json_integer_value(json_object_get(rec, "cache_write_tokens")), 200);
    assert_true(fabs(json_number_value(json_object_get(rec, "cost_usd")) - cost) < 1e-12);
    assert_string_equal(json_string_value(json_object_get(rec, "usage")), "reported");
    printf("# cost of the cached request: %.9f USD (at full input price: %.9f)\n", cost,
           (1205 * 3.0 + 4 * 15.0) / 1e6);
    json_decref(rec);
    prom_free(&d0);
    prom_free(&d1);
    json_decref(j);
    th_response_free(&r);
}

/* ------------------------------------------------------------ stream integrity */

/* Events whose data contains `needle` ("[DONE]": the event that is it). */
static size_t count_events(const th_response_t *r, const char *needle)
{
    char **ev;
    size_t n, hits = 0;

    th_sse_events(r->body, r->body_len, &ev, &n);
    for (size_t i = 0; i < n; i++)
        hits += strcmp(needle, "[DONE]") ? strstr(ev[i], needle) != NULL : !strcmp(ev[i], needle);
    th_sse_free(ev, n);
    return hits;
}

static void test_cut_stream_is_truncated(void **state)
{
    static const char body[] =
        "{\"model\":\"oa/"
        "m-a\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}";
    th_response_t r;
    char id[128];
    (void)state;

    /* the delay lets the gateway commit on the first content before the cut */
    assert_int_equal(
        th_mock_scenario(&mock_a, "{\"close_after_events\":2,\"chunk_delay_ms\":300,\"count\":1}"),
        0);
    post(body, NULL, &r);
    assert_int_equal(r.status, 200);
    /* two chunks, then one error event, never [DONE] */
    if (count_events(&r, "[DONE]"))
        fail_msg("a complete stream: %s", r.body);
    assert_int_equal(count_events(&r, "tok1"), 1);
    assert_int_equal(count_events(&r, "[DONE]"), 0);
    char **ev;
    size_t n;
    th_sse_events(r.body, r.body_len, &ev, &n);
    assert_true(n >= 3);
    assert_non_null(strstr(ev[n - 1], "\"error\""));
    th_sse_free(ev, n);
    header(&r, "x-request-id", id, sizeof(id));
    json_t *line = log_record(access_path, id);
    assert_string_equal(json_string_value(json_object_get(line, "outcome")), "truncated");
    json_decref(line);
    json_t *rec = log_record(audit_path, id);
    json_t *att = json_array_get(json_object_get(rec, "attempts"), 0);
    assert_string_equal(json_string_value(json_object_get(att, "failure")), "truncated");
    json_decref(rec);
    th_response_free(&r);
}

static void test_role_only_then_close_fails_over(void **state)
{
    static const char body[] =
        "{\"model\":\"pair\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}";
    th_response_t r;
    char buf[64];
    (void)state;

    assert_int_equal(th_mock_scenario(&mock_a, "{\"role_first\":true,\"close_after_events\":1,"
                                               "\"count\":1}"),
                     0);
    post(body, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(header(&r, "x-meridian-attempts", buf, sizeof(buf)), "2");
    assert_string_equal(header(&r, "x-meridian-provider", buf, sizeof(buf)), "ob");
    /* one clean answer: one role chunk, its five content chunks, [DONE] */
    assert_int_equal(count_events(&r, "\"role\""), 1);
    assert_int_equal(count_events(&r, "\"error\""), 0);
    assert_int_equal(count_events(&r, "tok4"), 1);
    assert_int_equal(count_events(&r, "[DONE]"), 1);
    assert_int_equal(th_mock_stat(&mock_a, "requests"), 1);
    th_response_free(&r);
}

/* ------------------------------------------------------------ affinity */

/* n turns, each its own conversation (distinct) or all one. */
static void turns(bool distinct, int n, int *to_a, int *to_b)
{
    *to_a = *to_b = 0;
    for (int i = 0; i < n; i++) {
        char key[64], prov[64];
        th_response_t r;
        snprintf(key, sizeof(key), distinct ? "conversation-%d" : "one-conversation", i);
        char *body = th_strf("{\"model\":\"pair\",\"prompt_cache_key\":\"%s\",\"messages\":"
                             "[{\"role\":\"user\",\"content\":\"turn %d\"}]}",
                             key, i);
        post(body, rr_hdrs, &r);
        free(body);
        assert_int_equal(r.status, 200);
        header(&r, "x-meridian-provider", prov, sizeof(prov));
        *to_a += !strcmp(prov, "oa");
        *to_b += !strcmp(prov, "ob");
        th_response_free(&r);
    }
}

static void test_session_affinity(void **state)
{
    int a, b;
    (void)state;

    turns(false, 50, &a, &b);
    printf("# one prompt_cache_key, 50 turns: %d to oa, %d to ob\n", a, b);
    assert_true((a == 50 && b == 0) || (a == 0 && b == 50));
    turns(true, 50, &a, &b);
    printf("# 50 prompt_cache_keys: %d to oa, %d to ob\n", a, b);
    assert_int_equal(a + b, 50);
    assert_true(a >= 20 && b >= 20);
    /* the pinned session shows in the explanation */
    char url[256];
    th_response_t r;
    th_http("GET",
            th_url_buf(&gw, "/v1/gateway/route?model=pair&policy=rr&session=one-conversation", url,
                       sizeof(url)),
            NULL, NULL, 0, &r);
    json_t *ex = ok_json(&r);
    assert_true(json_is_true(json_object_get(json_object_get(ex, "session"), "pinned")));
    assert_true(json_is_true(
        json_object_get(json_array_get(json_object_get(ex, "candidates"), 0), "pinned")));
    json_decref(ex);
    th_response_free(&r);
}

/* ------------------------------------------------------------ capabilities */

static void test_capabilities_skip(void **state)
{
    th_response_t r;
    char buf[64], url[256];
    (void)state;

    /* json_object has no Anthropic form: the openai target serves it */
    post("{\"model\":\"caps\",\"response_format\":{\"type\":\"json_object\"},\"messages\":"
         "[{\"role\":\"user\",\"content\":\"x\"}]}",
         NULL, &r);
    json_decref(ok_json(&r));
    assert_string_equal(header(&r, "x-meridian-provider", buf, sizeof(buf)), "ob");
    assert_string_equal(header(&r, "x-meridian-attempts", buf, sizeof(buf)), "1");
    th_response_free(&r);
    /* presence_penalty: anthropic drops it; with require_parameters it is skipped */
    post("{\"model\":\"caps\",\"presence_penalty\":0.5,\"messages\":"
         "[{\"role\":\"user\",\"content\":\"x\"}]}",
         NULL, &r);
    json_decref(ok_json(&r));
    assert_string_equal(header(&r, "x-meridian-provider", buf, sizeof(buf)), "claude");
    th_response_free(&r);
    post("{\"model\":\"caps\",\"presence_penalty\":0.5,\"provider\":{\"require_parameters\":true},"
         "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
         NULL, &r);
    json_decref(ok_json(&r));
    assert_string_equal(header(&r, "x-meridian-provider", buf, sizeof(buf)), "ob");
    th_response_free(&r);
    /* the explanation names the reason */
    th_http(
        "GET",
        th_url_buf(&gw, "/v1/gateway/route?model=caps&needs=json_object,tools", url, sizeof(url)),
        NULL, NULL, 0, &r);
    json_t *ex = ok_json(&r);
    json_t *x = json_array_get(json_object_get(ex, "excluded"), 0);
    assert_string_equal(json_string_value(json_object_get(x, "rule")), "capabilities");
    assert_non_null(strstr(json_string_value(json_object_get(x, "reason")), "json_object"));
    json_decref(ex);
    th_response_free(&r);
    /* nothing can serve it: a 400 naming why */
    post("{\"model\":\"claude\",\"response_format\":{\"type\":\"json_object\"},\"messages\":"
         "[{\"role\":\"user\",\"content\":\"x\"}]}",
         NULL, &r);
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(r.body, "no_capable_target"));
    th_response_free(&r);
}

/* ------------------------------------------------------------ signatures */

/* Sends the conversation so far plus the answer's message and a tool result
 * for its first call; returns the mock's record of that second request. */
static json_t *second_turn(const char *route, const th_proc_t *mock, json_t *msgs,
                           const json_t *answer, const char *extra)
{
    json_t *msg = json_object_get(json_array_get(json_object_get(answer, "choices"), 0), "message");
    const char *call = json_string_value(
        json_object_get(json_array_get(json_object_get(msg, "tool_calls"), 0), "id"));
    th_response_t r;

    assert_non_null(call);
    json_array_append(msgs, msg);
    json_array_append_new(msgs, json_pack("{s:s, s:s, s:s}", "role", "tool", "tool_call_id", call,
                                          "content", "{\"ok\":true}"));
    char *m = json_dumps(msgs, JSON_COMPACT);
    char *body = th_strf("{\"model\":\"%s\",\"messages\":%s%s}", route, m, extra);
    post(body, NULL, &r);
    json_decref(ok_json(&r));
    th_response_free(&r);
    free(m);
    free(body);
    return recorded_body(mock, 1);
}

static void test_signatures_round_trip(void **state)
{
    static const char tools[] =
        ",\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"lookup\",\"parameters\":"
        "{\"type\":\"object\",\"properties\":{\"q\":{\"type\":\"string\"}}}}}]";
    th_response_t r;
    (void)state;

    /* Anthropic: thinking + tool use, the thinking block back before the call */
    char *extra = th_strf("%s,\"reasoning_effort\":\"low\"", tools);
    char *body = th_strf("{\"model\":\"claude\",\"messages\":[{\"role\":\"user\",\"content\":"
                         "\"q?\"}]%s}",
                         extra);
    post(body, NULL, &r);
    json_t *ans = ok_json(&r);
    th_response_free(&r);
    json_t *msgs = json_pack("[{s:s, s:s}]", "role", "user", "content", "q?");
    json_t *up = second_turn("claude", &mock_x, msgs, ans, extra);
    json_t *blocks = json_object_get(json_array_get(json_object_get(up, "messages"), 1), "content");
    json_t *b0 = json_array_get(blocks, 0);
    assert_string_equal(json_string_value(json_object_get(b0, "type")), "thinking");
    assert_string_equal(json_string_value(json_object_get(b0, "signature")), "mock-sig-x");
    assert_string_equal(json_string_value(json_object_get(json_array_get(blocks, 2), "type")),
                        "tool_use");
    json_decref(up);
    json_decref(msgs);
    json_decref(ans);
    free(body);
    free(extra);

    /* Gemini: the function call's thought signature back on the call */
    assert_int_equal(th_mock_reset(&mock_x), 0);
    body = th_strf("{\"model\":\"gem\",\"messages\":[{\"role\":\"user\",\"content\":\"q?\"}]%s}",
                   tools);
    post(body, NULL, &r);
    ans = ok_json(&r);
    th_response_free(&r);
    msgs = json_pack("[{s:s, s:s}]", "role", "user", "content", "q?");
    up = second_turn("gem", &mock_x, msgs, ans, tools);
    json_t *parts = json_object_get(json_array_get(json_object_get(up, "contents"), 1), "parts");
    json_t *fc = json_array_get(parts, 1);
    assert_non_null(json_object_get(fc, "functionCall"));
    assert_string_equal(json_string_value(json_object_get(fc, "thoughtSignature")), "mock-sig-x");
    json_decref(up);
    json_decref(msgs);
    json_decref(ans);
    free(body);
}

/* ------------------------------------------------------------ re-sends */

static void test_silent_resend_counted(void **state)
{
    static const char body[] =
        "{\"model\":\"oa/m-a\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}";
    prom_doc_t d0, d1;
    th_response_t r;
    (void)state;

    post(body, NULL, &r); /* a warm keep-alive connection to oa */
    assert_int_equal(r.status, 200);
    th_response_free(&r);
    scrape(&d0);
    /* the reused connection dies before answering: libcurl re-sends */
    assert_int_equal(th_mock_scenario(&mock_a, "{\"fault\":\"reset_before_headers\",\"count\":1}"),
                     0);
    post(body, NULL, &r);
    assert_int_equal(r.status, 200);
    th_response_free(&r);
    scrape(&d1);
    double resends = delta(&d0, &d1, "meridian_upstream_resends_total", L("provider", "oa"));
    printf("# re-sends counted: %.0f (mock requests: %ld)\n", resends,
           th_mock_stat(&mock_a, "requests"));
    assert_true(resends == 1);
    assert_int_equal(th_mock_stat(&mock_a, "requests"), 3);
    prom_free(&d0);
    prom_free(&d1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_cache_control_in_place_and_cost, reset_mocks),
        cmocka_unit_test_setup(test_cut_stream_is_truncated, reset_mocks),
        cmocka_unit_test_setup(test_role_only_then_close_fails_over, reset_mocks),
        cmocka_unit_test_setup(test_session_affinity, reset_mocks),
        cmocka_unit_test_setup(test_capabilities_skip, reset_mocks),
        cmocka_unit_test_setup(test_signatures_round_trip, reset_mocks),
        cmocka_unit_test_setup(test_silent_resend_counted, reset_mocks),
    };
    th_init();
    int rc = cmocka_run_group_tests(tests, group_setup, group_teardown);
    th_cleanup();
    return rc;
}
