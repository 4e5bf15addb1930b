/*
 * POST /v1/messages and /v1/messages/count_tokens through the real binary:
 * Anthropic targets get the client's bytes with only `model` changed (and
 * the anthropic-beta flags their provider accepts), the answer unchanged;
 * OpenAI-compatible targets are translated both ways; streams keep
 * Anthropic's event order and message_start's input count, fail over
 * invisibly before the first content and end with `event: error` after it;
 * every refusal, from the guard to the limits, has Anthropic's error shape;
 * an EU-bound key never reaches a non-EU host; count_tokens is forwarded or
 * estimated (marked), never a 404; the audit record names the dialect and
 * what each target did not get.
 */
#include "harness.h"
#include "promtext.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Gateway keys: the config holds only their SHA-256 (printf %s KEY | sha256sum). */
#define KEY_EU "mk-team-eu-7f3a9c1e5b2d4086"
#define KEY_EU_SHA "1d610a3b87f55108fc46966cc210b624c8da3669b092ca80311dd9f4eec7710b"
#define KEY_OPS "mk-ops-0c4e8a2b6d9f1357"
#define KEY_OPS_SHA "919f50fcc9f09dca405ea918f73c89018900f92ec6227ffcf157b1c485a0fa52"
#define KEY_LIM "mk-limited-3b9d2f7a1c5e8046"
#define KEY_LIM_SHA "cd9ac90999f06d50b9fbe4fba2cf937b16c7c6939ab85ca1e6a1b70cec83c3c2"

static th_proc_t mock_a, mock_e, mock_o, mock_b, gw;
static char *audit_path;

static const char *const ops[] = {"x-api-key: " KEY_OPS, "anthropic-version: 2023-06-01", NULL};

static int group_setup(void **state)
{
    (void)state;
    if (th_start_mock(&mock_a, "a") < 0 || th_start_mock(&mock_e, "e") < 0 ||
        th_start_mock(&mock_o, "o") < 0 || th_start_mock(&mock_b, "b") < 0)
        return -1;
    audit_path = th_write_temp("", ".jsonl");
    char *cfg = th_strf(
        "{\"listen\":\"127.0.0.1:0\", \"audit\":{\"path\":\"%s\"},"
        " \"health\":{\"failure_threshold\":1000000},"
        " \"retry_budget\":{\"min_retries_per_s\":100000},"
        " \"limits\":{\"max_body_bytes\":65536},"
        " \"providers\":{"
        "  \"ant\":{\"kind\":\"anthropic\",\"base_url\":\"http://127.0.0.1:%d/v1\","
        "          \"api_key\":\"sk-ant-up\",\"region\":\"us\",\"jurisdiction\":\"US\","
        "          \"anthropic_beta\":[\"claude-code-*\",\"interleaved-thinking-2025-05-14\"]},"
        "  \"ant-eu\":{\"kind\":\"anthropic\",\"base_url\":\"http://127.0.0.1:%d/v1\","
        "             \"api_key\":\"sk-ant-eu\",\"region\":\"eu\",\"jurisdiction\":\"DE\","
        "             \"api_version\":\"2023-01-01\"},"
        "  \"oai\":{\"kind\":\"openai\",\"base_url\":\"http://127.0.0.1:%d/v1\","
        "          \"api_key\":\"sk-oai-up\",\"region\":\"us\"},"
        "  \"oai-b\":{\"kind\":\"openai\",\"base_url\":\"http://127.0.0.1:%d/v1\","
        "            \"api_key\":\"sk-oai-b\",\"region\":\"us\"}},"
        " \"routes\":{"
        "  \"claude\":{\"aliases\":[\"claude-sonnet-*\",\"sonnet\"],"
        "             \"targets\":[{\"provider\":\"ant\",\"model\":\"claude-up\"}]},"
        "  "
        "\"gpt\":{\"aliases\":[\"gpt-*\"],\"targets\":[{\"provider\":\"oai\",\"model\":\"gpt-up\"}]"
        "},"
        "  \"mixed\":{\"targets\":[{\"provider\":\"ant\",\"model\":\"claude-up\"},"
        "                         {\"provider\":\"ant-eu\",\"model\":\"claude-eu\"}]},"
        "  \"fo\":{\"targets\":[{\"provider\":\"ant\",\"model\":\"claude-up\"},"
        "                      {\"provider\":\"oai-b\",\"model\":\"gpt-b\"}]},"
        "  \"fo-oai\":{\"targets\":[{\"provider\":\"oai\",\"model\":\"gpt-up\"},"
        "                          {\"provider\":\"oai-b\",\"model\":\"gpt-b\"}]}},"
        " \"policies\":{\"eu-only\":{\"allow\":{\"region\":[\"eu\"]}}},"
        " \"keys\":{\"team-eu\":{\"sha256\":\"" KEY_EU_SHA "\",\"policy\":\"eu-only\"},"
        "          \"ops\":{\"sha256\":\"" KEY_OPS_SHA "\"},"
        "          \"limited\":{\"sha256\":\"" KEY_LIM_SHA "\",\"limits\":{\"rpm\":1}}},"
        " \"timeouts\":{\"connect_ms\":1000,\"first_byte_ms\":3000,\"request_ms\":8000,"
        "               \"stream_idle_ms\":3000}}",
        audit_path, mock_a.port, mock_e.port, mock_o.port, mock_b.port);
    int rc = th_start_meridian(&gw, cfg, NULL);
    free(cfg);
    return rc;
}

static int group_teardown(void **state)
{
    (void)state;
    th_stop(&gw);
    th_stop(&mock_a);
    th_stop(&mock_e);
    th_stop(&mock_o);
    th_stop(&mock_b);
    unlink(audit_path);
    free(audit_path);
    return 0;
}

static int reset_mocks(void **state)
{
    (void)state;
    return th_mock_reset(&mock_a) | th_mock_reset(&mock_e) | th_mock_reset(&mock_o) |
           th_mock_reset(&mock_b);
}

/* ---- helpers ---------------------------------------------------------- */

static void post(const char *path, const char *const *headers, const char *body, th_response_t *r)
{
    char url[256];
    th_http("POST", th_url_buf(&gw, path, url, sizeof(url)), headers, body, strlen(body), r);
}

static const char *header(const th_response_t *r, const char *name, char *buf, size_t n)
{
    const char *v = th_header(r, name, buf, n);
    return v ? v : "";
}

/* The mock's only recorded request. */
static json_t *only_request(const th_proc_t *mock)
{
    json_t *all = th_mock_requests(mock);
    assert_int_equal(json_array_size(all), 1);
    json_t *one = json_incref(json_array_get(all, 0));
    json_decref(all);
    return one;
}

static const char *rec_header(const json_t *rec, const char *name)
{
    return json_string_value(json_object_get(json_object_get(rec, "headers"), name));
}

/* Anthropic's error shape with `type`, and the status. */
static void assert_error(const th_response_t *r, long status, const char *type)
{
    json_t *j = th_json(r);
    if (r->status != status || !j)
        fail_msg("want %ld %s, got %ld: %s", status, type, r->status, r->body);
    const char *t = json_string_value(json_object_get(j, "type"));
    const char *et = json_string_value(json_object_get(json_object_get(j, "error"), "type"));
    const char *msg = json_string_value(json_object_get(json_object_get(j, "error"), "message"));
    if (!t || strcmp(t, "error") != 0 || !et || strcmp(et, type) != 0 || !msg || !*msg)
        fail_msg("want an Anthropic %s error, got: %s", type, r->body);
    json_decref(j);
}

/* The audit record of request `id` (the writer thread is asynchronous). */
static json_t *audit_record(const char *id)
{
    json_t *j = th_log_record(audit_path, id);
    if (!j)
        fail_msg("no audit record of %s", id);
    return j;
}

/* Whether the JSON array `arr` holds the string s. */
static int has_string(const json_t *arr, const char *s)
{
    size_t i;
    const json_t *v;
    json_array_foreach(arr, i, v)
    {
        if (json_string_value(v) && !strcmp(json_string_value(v), s))
            return 1;
    }
    return 0;
}

/* "event: X" names of an SSE body, in order, joined by spaces. */
static void event_names(const char *body, char *out, size_t cap)
{
    out[0] = '\0';
    for (const char *p = strstr(body, "event: "); p; p = strstr(p + 1, "\nevent: ")) {
        const char *name = p[0] == '\n' ? p + 8 : p + 7;
        size_t n = strcspn(name, "\r\n");
        snprintf(out + strlen(out), cap - strlen(out), "%s%.*s", out[0] ? " " : "", (int)n, name);
    }
}

/* message_start's usage.input_tokens in an SSE body, -1 when absent. */
static long start_input_tokens(const char *body, size_t len)
{
    char **ev;
    size_t n;
    long v = -1;

    assert_int_equal(th_sse_events(body, len, &ev, &n), 0);
    json_t *j = n ? json_loads(ev[0], 0, NULL) : NULL;
    const json_t *u = json_object_get(json_object_get(j, "message"), "usage");
    if (json_is_integer(json_object_get(u, "input_tokens")))
        v = (long)json_integer_value(json_object_get(u, "input_tokens"));
    json_decref(j);
    th_sse_free(ev, n);
    return v;
}

/* ---- passthrough ------------------------------------------------------ */

/* A conversation with a signed thinking block, cache_control on a block
 * and a tool, and a top-level member no version of the API has yet. */
#define EXACT_BODY(MODEL)                                                                          \
    "{\"model\":\"" MODEL "\",\"max_tokens\":1024,"                                                \
    "\"thinking\":{\"type\":\"enabled\",\"budget_tokens\":512},"                                   \
    "\"system\":[{\"type\":\"text\",\"text\":\"Be brief.\","                                       \
    "\"cache_control\":{\"type\":\"ephemeral\",\"ttl\":\"1h\"}}],"                                 \
    "\"messages\":[{\"role\":\"user\",\"content\":\"2+2?\"},"                                      \
    "{\"role\":\"assistant\",\"content\":[{\"type\":\"thinking\",\"thinking\":\"Add them.\","      \
    "\"signature\":\"EqQBCkYIBxgCKkBzaWduYXR1cmUgYnl0ZXM=\"},{\"type\":\"text\",\"text\":\"4\"}]}" \
    ","                                                                                            \
    "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"and 3+3?\","                    \
    "\"cache_control\":{\"type\":\"ephemeral\"}}]}],"                                              \
    "\"tools\":[{\"name\":\"calc\",\"description\":\"math\",\"input_schema\":{\"type\":"           \
    "\"object\"},\"cache_control\":{\"type\":\"ephemeral\"}}],"                                    \
    "\"future_field_2099\":{\"nested\":[1,2.50,\"\\u00e9\"]} }"

static void test_passthrough_bytes(void **state)
{
    (void)state;
    const char *const h[] = {"x-api-key: " KEY_OPS, "anthropic-version: 2023-06-01",
                             "anthropic-beta: claude-code-20250219, context-management-2025-06-27,"
                             "interleaved-thinking-2025-05-14",
                             NULL};
    const char *sent = EXACT_BODY("claude-sonnet-4-5"), *want = EXACT_BODY("claude-up");
    th_response_t r, direct;
    char id[80], url[256];

    post("/v1/messages?beta=true", h, sent, &r);
    assert_int_equal(r.status, 200);
    json_t *up = only_request(&mock_a);
    const char *body = json_string_value(json_object_get(up, "body"));
    if (strcmp(body, want) != 0)
        fail_msg("the upstream body differs from the client's:\n%s\n%s", body, want);
    assert_string_equal(rec_header(up, "x-api-key"), "sk-ant-up");
    assert_null(rec_header(up, "authorization"));
    assert_string_equal(rec_header(up, "anthropic-version"), "2023-06-01");
    assert_string_equal(rec_header(up, "anthropic-beta"),
                        "claude-code-20250219,interleaved-thinking-2025-05-14");
    char *all = json_dumps(up, 0);
    assert_null(strstr(all, KEY_OPS));
    free(all);
    /* the answer is the upstream's, byte for byte */
    const char *const dh[] = {"x-api-key: sk-ant-up", "anthropic-version: 2023-06-01", NULL};
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/messages", mock_a.port);
    th_http("POST", url, dh, want, strlen(want), &direct);
    assert_int_equal(direct.status, 200);
    assert_int_equal(r.body_len, direct.body_len);
    assert_memory_equal(r.body, direct.body, r.body_len);
    assert_string_equal(header(&r, "x-meridian-provider", id, sizeof(id)), "ant");
    /* the audit record: the dialect, the flag the provider does not take */
    json_t *rec = audit_record(header(&r, "x-request-id", id, sizeof(id)));
    assert_string_equal(json_string_value(json_object_get(rec, "dialect")), "messages");
    assert_string_equal(json_string_value(json_object_get(rec, "endpoint")), "/messages");
    const json_t *att = json_array_get(json_object_get(rec, "attempts"), 0);
    assert_true(has_string(json_object_get(att, "betas_dropped"), "context-management-2025-06-27"));
    assert_int_equal(json_array_size(json_object_get(att, "betas_dropped")), 1);
    assert_int_equal(json_array_size(json_object_get(att, "dropped")), 0);
    json_decref(rec);
    json_decref(up);
    th_response_free(&r);
    th_response_free(&direct);
}

/* Claude Code's members on an OpenAI-compatible target: what chat cannot
 * use is dropped and recorded, not refused. */
static void test_translated(void **state)
{
    (void)state;
    const char *const h[] = {"x-api-key: " KEY_OPS, "anthropic-version: 2023-06-01",
                             "anthropic-beta: claude-code-20250219", NULL};
    const char *body =
        "{\"model\":\"gpt-4o\",\"max_tokens\":200,"
        "\"system\":[{\"type\":\"text\",\"text\":\"You are terse.\","
        "\"cache_control\":{\"type\":\"ephemeral\"}}],"
        "\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"hi\"}]},"
        "{\"role\":\"system\",\"content\":[{\"type\":\"text\",\"text\":\"a reminder\"}]}],"
        "\"tools\":[{\"name\":\"Read\",\"description\":\"read a file\",\"input_schema\":"
        "{\"type\":\"object\",\"properties\":{\"path\":{\"type\":\"string\"}}}}],"
        "\"thinking\":{\"type\":\"adaptive\"},\"context_management\":{\"edits\":[]},"
        "\"output_config\":{\"effort\":\"medium\"},\"metadata\":{\"user_id\":\"u-1\"}}";
    th_response_t r;
    char id[80];

    post("/v1/messages", h, body, &r);
    json_t *j = th_json(&r);
    if (r.status != 200 || !j)
        fail_msg("want 200, got %ld: %s", r.status, r.body);
    assert_string_equal(json_string_value(json_object_get(j, "type")), "message");
    assert_string_equal(json_string_value(json_object_get(j, "stop_reason")), "end_turn");
    const json_t *c0 = json_array_get(json_object_get(j, "content"), 0);
    assert_string_equal(json_string_value(json_object_get(c0, "text")), "Hello from o");
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(j, "usage"), "input_tokens")), 5);
    json_t *up = only_request(&mock_o);
    assert_string_equal(json_string_value(json_object_get(up, "path")), "/v1/chat/completions");
    json_t *chat = json_loads(json_string_value(json_object_get(up, "body")), 0, NULL);
    assert_string_equal(json_string_value(json_object_get(chat, "model")), "gpt-up");
    assert_int_equal(json_array_size(json_object_get(chat, "messages")), 3);
    assert_int_equal(json_array_size(json_object_get(chat, "tools")), 1);
    assert_null(json_object_get(chat, "thinking"));
    assert_null(json_object_get(chat, "context_management"));
    assert_null(rec_header(up, "anthropic-beta"));
    json_t *rec = audit_record(header(&r, "x-request-id", id, sizeof(id)));
    const json_t *att = json_array_get(json_object_get(rec, "attempts"), 0);
    const json_t *dropped = json_object_get(att, "dropped");
    assert_true(has_string(dropped, "context_management"));
    assert_true(has_string(dropped, "thinking"));
    assert_true(has_string(dropped, "cache_control"));
    assert_true(has_string(json_object_get(att, "betas_dropped"), "claude-code-20250219"));
    json_decref(rec);
    json_decref(chat);
    json_decref(up);
    json_decref(j);
    th_response_free(&r);
}

/* ---- streams ---------------------------------------------------------- */

#define STREAM_BODY(MODEL)                                                                         \
    "{\"model\":\"" MODEL "\",\"max_tokens\":64,\"stream\":true,"                                  \
    "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"

static const char *const stream_order =
    "message_start content_block_start ping content_block_delta content_block_delta "
    "content_block_delta content_block_delta content_block_delta content_block_stop "
    "message_delta message_stop";

static void test_streams(void **state)
{
    (void)state;
    const char *models[] = {"sonnet", "gpt-4.1"};
    long input[] = {5, 0}; /* a chat upstream reports usage at the end: an estimate */
    char names[1024], url[256];

    for (size_t i = 0; i < 2; i++) {
        th_response_t r;
        post("/v1/messages", ops, i ? STREAM_BODY("gpt-4.1") : STREAM_BODY("sonnet"), &r);
        assert_int_equal(r.status, 200);
        event_names(r.body, names, sizeof(names));
        if (strcmp(names, stream_order) != 0)
            fail_msg("%s: event order %s", models[i], names);
        long in = start_input_tokens(r.body, r.body_len);
        if (input[i] ? in != input[i] : in <= 0)
            fail_msg("%s: message_start input_tokens %ld", models[i], in);
        assert_non_null(strstr(r.body, "\"input_tokens\":5,\"output_tokens\":4") ||
                                strstr(r.body, "\"output_tokens\":4")
                            ? r.body
                            : NULL);
        th_response_free(&r);
    }
    /* the passthrough stream is the upstream's, byte for byte */
    th_response_t r, direct;
    const char *const dh[] = {"x-api-key: k", "anthropic-version: 2023-06-01", NULL};
    post("/v1/messages", ops, STREAM_BODY("claude"), &r);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/messages", mock_a.port);
    th_http("POST", url, dh, STREAM_BODY("claude-up"), strlen(STREAM_BODY("claude-up")), &direct);
    assert_int_equal(r.body_len, direct.body_len);
    assert_memory_equal(r.body, direct.body, r.body_len);
    th_response_free(&r);
    th_response_free(&direct);
}

/* After content, an upstream error ends the client's stream with
 * Anthropic's `event: error`, from either kind of target. */
static void test_midstream_error(void **state)
{
    (void)state;
    const char *models[] = {"claude", "gpt"};
    const th_proc_t *mocks[] = {&mock_a, &mock_o};

    for (size_t i = 0; i < 2; i++) {
        th_response_t r;
        char names[1024];
        /* delayed chunks: the first content is committed before the error */
        th_mock_scenario(mocks[i], "{\"error_after_chunks\":2,\"chunk_delay_ms\":30,\"count\":1}");
        post("/v1/messages", ops, i ? STREAM_BODY("gpt") : STREAM_BODY("claude"), &r);
        assert_int_equal(r.status, 200);
        event_names(r.body, names, sizeof(names));
        const char *last = strrchr(names, ' ');
        if (!last || strcmp(last + 1, "error") != 0 || strstr(names, "message_stop"))
            fail_msg("%s: %s", models[i], names);
        const char *data = strstr(r.body, "event: error\ndata: ");
        assert_non_null(data);
        json_t *e = json_loadb(data + 19, strcspn(data + 19, "\n"), 0, NULL);
        assert_string_equal(json_string_value(json_object_get(e, "type")), "error");
        assert_non_null(json_string_value(json_object_get(json_object_get(e, "error"), "type")));
        json_decref(e);
        th_response_free(&r);
    }
}

/* An Anthropic target that closes before any content (message_start, a
 * block start, then nothing) is failed over invisibly. */
static void test_commit_failover(void **state)
{
    (void)state;
    th_response_t r;
    char names[1024], n[16];

    th_mock_scenario(&mock_a, "{\"close_after_events\":2,\"count\":1}");
    post("/v1/messages", ops, STREAM_BODY("fo"), &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(header(&r, "x-meridian-attempts", n, sizeof(n)), "2");
    event_names(r.body, names, sizeof(names));
    if (strcmp(names, stream_order) != 0)
        fail_msg("event order %s: %s", names, r.body);
    assert_non_null(strstr(r.body, "tok0"));
    assert_null(strstr(r.body, "event: error"));
    th_response_free(&r);
    /* and a non-stream answer from a 500ing translated target */
    th_mock_scenario(&mock_o, "{\"status\":500,\"count\":1}");
    post("/v1/messages", ops, "{\"model\":\"fo-oai\",\"max_tokens\":9,\"messages\":[]}", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(header(&r, "x-meridian-attempts", n, sizeof(n)), "2");
    assert_non_null(strstr(r.body, "Hello from b"));
    th_response_free(&r);
}

/* ---- errors ------------------------------------------------------------ */

static void test_errors(void **state)
{
    (void)state;
    const char *ok = "{\"model\":\"claude\",\"max_tokens\":9,\"messages\":[]}";
    const char *const none[] = {"anthropic-version: 2023-06-01", NULL};
    const char *const bad[] = {"x-api-key: mk-wrong", NULL};
    const char *const bearer[] = {"Authorization: Bearer " KEY_OPS, NULL};
    const char *const text[] = {"x-api-key: " KEY_OPS, "Content-Type: text/plain", NULL};
    const char *const page[] = {"x-api-key: " KEY_OPS, "Origin: http://evil.test", NULL};
    char url[256];
    th_response_t r;

    post("/v1/messages", none, ok, &r);
    assert_error(&r, 401, "authentication_error");
    th_response_free(&r);
    post("/v1/messages", bad, ok, &r);
    assert_error(&r, 401, "authentication_error");
    th_response_free(&r);
    post("/v1/messages", bearer, ok, &r); /* ANTHROPIC_AUTH_TOKEN sends Bearer */
    assert_int_equal(r.status, 200);
    th_response_free(&r);
    post("/v1/messages", ops, "{\"model\":\"nope\",\"max_tokens\":9,\"messages\":[]}", &r);
    assert_error(&r, 404, "not_found_error");
    th_response_free(&r);
    post("/v1/messages", ops, "{\"model\":", &r);
    assert_error(&r, 400, "invalid_request_error");
    th_response_free(&r);
    post("/v1/messages", text, ok, &r);
    assert_error(&r, 415, "invalid_request_error");
    th_response_free(&r);
    post("/v1/messages", page, ok, &r);
    assert_error(&r, 403, "permission_error");
    th_response_free(&r);
    char *big = calloc(1, 70000);
    memset(big, ' ', 69999);
    memcpy(big, ok, strlen(ok));
    post("/v1/messages", ops, big, &r);
    assert_error(&r, 413, "invalid_request_error");
    th_response_free(&r);
    free(big);
    th_http("GET", th_url_buf(&gw, "/v1/messages", url, sizeof(url)), ops, NULL, 0, &r);
    assert_error(&r, 405, "invalid_request_error");
    th_response_free(&r);
    /* an Anthropic target's own 400 reaches the client as it is */
    th_mock_scenario(&mock_a, "{\"status\":400,\"count\":1}");
    post("/v1/messages", ops, ok, &r);
    assert_error(&r, 400, "invalid_request_error");
    assert_non_null(strstr(r.body, "mock a status 400"));
    th_response_free(&r);
    /* a translated target's (OpenAI-shaped) 400 in Anthropic's shape */
    th_mock_scenario(&mock_o, "{\"status\":400,\"count\":1}");
    post("/v1/messages", ops, "{\"model\":\"gpt\",\"max_tokens\":9,\"messages\":[]}", &r);
    assert_error(&r, 400, "invalid_request_error");
    assert_non_null(strstr(r.body, "mock o status 400"));
    th_response_free(&r);
    /* every target failing: the gateway's error, listing the attempts */
    th_mock_scenario(&mock_o, "{\"status\":500,\"count\":1}");
    th_mock_scenario(&mock_b, "{\"status\":500,\"count\":1}");
    post("/v1/messages", ops, "{\"model\":\"fo-oai\",\"max_tokens\":9,\"messages\":[]}", &r);
    assert_error(&r, 502, "api_error");
    assert_non_null(strstr(r.body, "\"attempts\""));
    th_response_free(&r);
}

static void test_limits(void **state)
{
    (void)state;
    const char *const lim[] = {"x-api-key: " KEY_LIM, NULL};
    const char *body = "{\"model\":\"claude\",\"max_tokens\":9,\"messages\":[]}";
    char ra[16];
    th_response_t r;

    post("/v1/messages", lim, body, &r);
    assert_int_equal(r.status, 200);
    th_response_free(&r);
    post("/v1/messages", lim, body, &r);
    assert_error(&r, 429, "rate_limit_error");
    assert_true(atoi(header(&r, "retry-after", ra, sizeof(ra))) > 0);
    th_response_free(&r);
}

/* A key bound to an EU policy never reaches the US host listed first. */
static void test_eu_policy(void **state)
{
    (void)state;
    const char *const eu[] = {"x-api-key: " KEY_EU, "anthropic-version: 2023-06-01", NULL};
    char p[32];

    for (int stream = 0; stream < 2; stream++) {
        th_response_t r;
        post("/v1/messages", eu,
             stream ? STREAM_BODY("mixed")
                    : "{\"model\":\"mixed\",\"max_tokens\":9,\"messages\":[]}",
             &r);
        assert_int_equal(r.status, 200);
        assert_string_equal(header(&r, "x-meridian-provider", p, sizeof(p)), "ant-eu");
        th_response_free(&r);
    }
    /* ... nor through a direct model */
    th_response_t r;
    post("/v1/messages", eu, "{\"model\":\"ant/claude-up\",\"max_tokens\":9,\"messages\":[]}", &r);
    assert_error(&r, 403, "permission_error");
    th_response_free(&r);
    assert_int_equal(th_mock_stat(&mock_a, "requests"), 0);
    assert_int_equal(th_mock_stat(&mock_e, "requests"), 2);
    /* the provider's api_version wins over the client's anthropic-version */
    json_t *seen = th_mock_requests(&mock_e);
    assert_string_equal(rec_header(json_array_get(seen, 0), "anthropic-version"), "2023-01-01");
    json_decref(seen);
}

static void test_count_tokens(void **state)
{
    (void)state;
    const char *body =
        "{\"model\":\"sonnet\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
    char est[32];
    th_response_t r;

    /* forwarded to the Anthropic target: the mock counts bytes / 10 */
    post("/v1/messages/count_tokens?beta=true", ops, body, &r);
    assert_int_equal(r.status, 200);
    json_t *up = only_request(&mock_a);
    assert_string_equal(json_string_value(json_object_get(up, "path")),
                        "/v1/messages/count_tokens");
    size_t len = strlen(json_string_value(json_object_get(up, "body")));
    char want[64];
    snprintf(want, sizeof(want), "{\"input_tokens\":%zu}", len / 10);
    assert_string_equal(r.body, want);
    assert_null(th_header(&r, "x-meridian-token-estimate", est, sizeof(est)));
    json_decref(up);
    th_response_free(&r);
    /* no Anthropic target: an estimate, marked */
    const char *gbody = "{\"model\":\"gpt\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
    post("/v1/messages/count_tokens", ops, gbody, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(header(&r, "x-meridian-token-estimate", est, sizeof(est)), "bytes/4");
    snprintf(want, sizeof(want), "{\"input_tokens\":%zu}", (strlen(gbody) + 3) / 4);
    assert_string_equal(r.body, want);
    assert_int_equal(th_mock_stat(&mock_o, "requests"), 0);
    th_response_free(&r);
    /* keys, the guard and policies apply as to /v1/messages */
    const char *const none[] = {"anthropic-version: 2023-06-01", NULL};
    const char *const text[] = {"x-api-key: " KEY_OPS, "Content-Type: text/plain", NULL};
    const char *const eu[] = {"x-api-key: " KEY_EU, NULL};
    post("/v1/messages/count_tokens", none, body, &r);
    assert_error(&r, 401, "authentication_error");
    th_response_free(&r);
    post("/v1/messages/count_tokens", text, body, &r);
    assert_error(&r, 415, "invalid_request_error");
    th_response_free(&r);
    post("/v1/messages/count_tokens", eu,
         "{\"model\":\"mixed\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(th_mock_stat(&mock_e, "requests"), 1);
    assert_int_equal(th_mock_stat(&mock_a, "requests"), 1); /* the first one only */
    th_response_free(&r);
}

static void test_models_and_metrics(void **state)
{
    (void)state;
    char url[256], err[256];
    th_response_t r;
    prom_doc_t doc;

    th_http("GET", th_url_buf(&gw, "/v1/models", url, sizeof(url)), ops, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    json_t *j = th_json(&r);
    assert_false(json_is_true(json_object_get(j, "has_more")));
    assert_string_equal(json_string_value(json_object_get(j, "first_id")), "claude");
    assert_non_null(strstr(r.body, "{\"type\":\"model\",\"id\":\"sonnet\""));
    assert_null(strstr(r.body, "claude-sonnet-*"));
    json_decref(j);
    th_response_free(&r);

    post("/v1/messages", ops, "{\"model\":\"claude\",\"max_tokens\":9,\"messages\":[]}", &r);
    th_response_free(&r);
    th_http("GET", th_url_buf(&gw, "/metrics", url, sizeof(url)), ops, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    if (prom_parse(r.body, r.body_len, &doc, err, sizeof(err)) != 0)
        fail_msg("exposition rejected: %s", err);
    const char *msgs[] = {"endpoint", "messages", "provider", "ant", "status_class", "2xx", NULL};
    const char *count[] = {"endpoint", "count_tokens", NULL};
    assert_true(prom_sum(&doc, "meridian_requests_total", msgs) >= 1);
    assert_true(prom_sum(&doc, "meridian_requests_total", count) >= 1);
    prom_free(&doc);
    th_response_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_passthrough_bytes, reset_mocks),
        cmocka_unit_test_setup(test_translated, reset_mocks),
        cmocka_unit_test_setup(test_streams, reset_mocks),
        cmocka_unit_test_setup(test_midstream_error, reset_mocks),
        cmocka_unit_test_setup(test_commit_failover, reset_mocks),
        cmocka_unit_test_setup(test_errors, reset_mocks),
        cmocka_unit_test_setup(test_limits, reset_mocks),
        cmocka_unit_test_setup(test_eu_policy, reset_mocks),
        cmocka_unit_test_setup(test_count_tokens, reset_mocks),
        cmocka_unit_test_setup(test_models_and_metrics, reset_mocks),
    };
    th_init();
    int rc = cmocka_run_group_tests(tests, group_setup, group_teardown);
    th_cleanup();
    return rc;
}
