/*
 * The OpenAI Responses API through the real binary: POST /v1/responses
 * translated onto chat and Anthropic targets and passed through to a
 * provider with responses_api (the client's bytes, only model changed,
 * nothing injected; the answer untouched); the typed event order and
 * sequence numbers; response.failed for failures after the first content;
 * failover before it; GET / DELETE / input_items in OpenAI's shapes;
 * previous_response_id with the history upstream even when sent the
 * instant response.completed arrived; store:false; scoping by gateway key
 * (another key: 404; no key when keys exist: 401 before any lookup);
 * a policy-bound key's chained turn; the store's count, byte and TTL
 * bounds through the config; metrics and the audit record.
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
#include <time.h>
#include <unistd.h>

#define KEY_EU "mk-team-eu-7f3a9c1e5b2d4086"
#define KEY_EU_SHA "1d610a3b87f55108fc46966cc210b624c8da3669b092ca80311dd9f4eec7710b"
#define KEY_OPS "mk-ops-0c4e8a2b6d9f1357"
#define KEY_OPS_SHA "919f50fcc9f09dca405ea918f73c89018900f92ec6227ffcf157b1c485a0fa52"
#define KEY_LIM "mk-limited-3b9d2f7a1c5e8046"
#define KEY_LIM_SHA "cd9ac90999f06d50b9fbe4fba2cf937b16c7c6939ab85ca1e6a1b70cec83c3c2"

static th_proc_t mock_o, mock_a, mock_e, mock_n, mock_b, gw;
static char *audit_path;

static const char *const ops[] = {"Authorization: Bearer " KEY_OPS, NULL};
static const char *const other[] = {"Authorization: Bearer " KEY_LIM, NULL};
static const char *const eu[] = {"Authorization: Bearer " KEY_EU, NULL};

/* An upstream of `kind` on the mock at `port`, with extra members. */
static char *provider(const char *name, const char *kind, int port, const char *path,
                      const char *extra)
{
    return th_strf("\"%s\":{\"kind\":\"%s\",\"base_url\":\"http://127.0.0.1:%d%s\","
                   "\"api_key\":\"sk-%s\",%s}",
                   name, kind, port, path, name, extra);
}

static char *providers_json(void)
{
    char *p[7] = {
        provider("oai", "openai", mock_o.port, "/v1", "\"region\":\"us\""),
        provider("ant", "anthropic", mock_a.port, "/v1", "\"region\":\"us\""),
        provider("ant-eu", "anthropic", mock_e.port, "/v1", "\"region\":\"eu\""),
        provider("nat", "openai", mock_n.port, "/v1", "\"region\":\"us\",\"responses_api\":true"),
        provider("bad", "openai", mock_b.port, "/v1", "\"region\":\"us\""),
        provider("gem", "gemini", mock_o.port, "/v1beta", "\"region\":\"us\""),
        provider("az", "azure", mock_o.port, "", "\"region\":\"us\""),
    };
    char *out =
        th_strf("\"providers\":{%s,%s,%s,%s,%s,%s,%s},\"routes\":{"
                " \"gpt\":{\"targets\":[{\"provider\":\"oai\",\"model\":\"gpt-up\"}]},"
                " \"claude\":{\"targets\":[{\"provider\":\"ant\",\"model\":\"claude-up\"}]},"
                " \"native\":{\"targets\":[{\"provider\":\"nat\",\"model\":\"gpt-nat\"}]},"
                " \"gemini\":{\"targets\":[{\"provider\":\"gem\",\"model\":\"gemini-up\"}]},"
                " \"azure\":{\"targets\":[{\"provider\":\"az\",\"model\":\"az-dep\"}]},"
                " \"fo\":{\"targets\":[{\"provider\":\"bad\",\"model\":\"gpt-bad\"},"
                "                     {\"provider\":\"oai\",\"model\":\"gpt-up\"}]},"
                " \"mixed\":{\"targets\":[{\"provider\":\"ant\",\"model\":\"claude-up\"},"
                "                        {\"provider\":\"ant-eu\",\"model\":\"claude-eu\"}]}}",
                p[0], p[1], p[2], p[3], p[4], p[5], p[6]);
    for (size_t i = 0; i < 7; i++)
        free(p[i]);
    return out;
}

static int group_setup(void **state)
{
    (void)state;
    if (th_start_mock(&mock_o, "o") < 0 || th_start_mock(&mock_a, "a") < 0 ||
        th_start_mock(&mock_e, "e") < 0 || th_start_mock(&mock_n, "n") < 0 ||
        th_start_mock(&mock_b, "b") < 0)
        return -1;
    audit_path = th_write_temp("", ".jsonl");
    char *prov = providers_json();
    char *cfg =
        th_strf("{\"listen\":\"127.0.0.1:0\", \"audit\":{\"path\":\"%s\"}, %s,"
                " \"health\":{\"failure_threshold\":1000000},"
                " \"retry_budget\":{\"min_retries_per_s\":100000},"
                " \"policies\":{\"eu-only\":{\"allow\":{\"region\":[\"eu\"]}}},"
                " \"keys\":{\"team-eu\":{\"sha256\":\"" KEY_EU_SHA "\",\"policy\":\"eu-only\"},"
                "          \"ops\":{\"sha256\":\"" KEY_OPS_SHA "\"},"
                "          \"other\":{\"sha256\":\"" KEY_LIM_SHA "\",\"limits\":{\"rpm\":30}}},"
                " \"timeouts\":{\"connect_ms\":1000,\"first_byte_ms\":3000,\"request_ms\":10000,"
                "               \"stream_idle_ms\":1000}}",
                audit_path, prov);
    int rc = th_start_meridian(&gw, cfg, NULL);
    free(prov);
    free(cfg);
    return rc;
}

static int group_teardown(void **state)
{
    (void)state;
    th_stop(&gw);
    th_stop(&mock_o);
    th_stop(&mock_a);
    th_stop(&mock_e);
    th_stop(&mock_n);
    th_stop(&mock_b);
    unlink(audit_path);
    free(audit_path);
    return 0;
}

static int reset_mocks(void **state)
{
    (void)state;
    return th_mock_reset(&mock_o) | th_mock_reset(&mock_a) | th_mock_reset(&mock_e) |
           th_mock_reset(&mock_n) | th_mock_reset(&mock_b);
}

/* ---- helpers ---------------------------------------------------------- */

static void call(const th_proc_t *g, const char *method, const char *path,
                 const char *const *headers, const char *body, th_response_t *r)
{
    char url[512];
    th_http(method, th_url_buf(g, path, url, sizeof(url)), headers, body, body ? strlen(body) : 0,
            r);
}

static const char *header(const th_response_t *r, const char *name, char *buf, size_t n)
{
    const char *v = th_header(r, name, buf, n);
    return v ? v : "";
}

/* 200 and a response object: its id into id. */
static json_t *response_ok(const th_response_t *r, char *id, size_t n)
{
    json_t *j = th_json(r);
    if (r->status != 200 || !j)
        fail_msg("want 200, got %ld: %s", r->status, r->body);
    assert_string_equal(json_string_value(json_object_get(j, "object")), "response");
    snprintf(id, n, "%s", json_string_value(json_object_get(j, "id")));
    return j;
}

/* OpenAI's error shape with this status, code (and param when not NULL). */
static void assert_error(const th_response_t *r, long status, const char *code, const char *param)
{
    json_t *j = th_json(r);
    const json_t *e = json_object_get(j, "error");
    if (r->status != status || !json_is_object(e))
        fail_msg("want %ld %s, got %ld: %s", status, code, r->status, r->body);
    assert_non_null(json_string_value(json_object_get(e, "message")));
    assert_non_null(json_string_value(json_object_get(e, "type")));
    assert_true(json_object_get(e, "param") != NULL);
    if (code)
        assert_string_equal(json_string_value(json_object_get(e, "code")), code);
    if (param)
        assert_string_equal(json_string_value(json_object_get(e, "param")), param);
    json_decref(j);
}

static json_t *requests_of(const th_proc_t *mock)
{
    json_t *all = th_mock_requests(mock);
    assert_non_null(all);
    return all;
}

/* The body of the mock's last recorded request, parsed. */
static json_t *last_body(const th_proc_t *mock)
{
    json_t *all = requests_of(mock);
    size_t n = json_array_size(all);
    assert_true(n > 0);
    json_t *b =
        json_loads(json_string_value(json_object_get(json_array_get(all, n - 1), "body")), 0, NULL);
    json_decref(all);
    assert_non_null(b);
    return b;
}

/* The types of a stream's events (their data's "type"), space-separated,
 * deltas of one kind collapsed to one; and whether sequence_number counts
 * 0, 1, 2 ... without a gap. */
static void stream_types(const th_response_t *r, char *out, size_t cap, int *contiguous)
{
    char **ev;
    size_t n;
    char last[96] = "";

    out[0] = '\0';
    *contiguous = 1;
    assert_int_equal(th_sse_events(r->body, r->body_len, &ev, &n), 0);
    for (size_t i = 0; i < n; i++) {
        json_t *j = json_loads(ev[i], 0, NULL);
        const char *t = json_string_value(json_object_get(j, "type"));
        json_int_t seq = json_integer_value(json_object_get(j, "sequence_number"));
        if (!json_is_integer(json_object_get(j, "sequence_number")) || seq != (json_int_t)i)
            *contiguous = 0;
        if (t && strcmp(t, last) != 0)
            snprintf(out + strlen(out), cap - strlen(out), "%s%s", out[0] ? " " : "", t);
        snprintf(last, sizeof(last), "%s", t ? t : "");
        json_decref(j);
    }
    th_sse_free(ev, n);
}

/* The last event's data of a stream, parsed. */
static json_t *last_event(const th_response_t *r)
{
    char **ev;
    size_t n;
    assert_int_equal(th_sse_events(r->body, r->body_len, &ev, &n), 0);
    json_t *j = n ? json_loads(ev[n - 1], 0, NULL) : NULL;
    th_sse_free(ev, n);
    assert_non_null(j);
    return j;
}

static json_t *audit_record(const char *id)
{
    json_t *j = th_log_record(audit_path, id);
    if (!j)
        fail_msg("no audit record of %s", id);
    return j;
}

#define TYPES_TEXT                                                                                 \
    "response.created response.in_progress response.output_item.added "                            \
    "response.content_part.added response.output_text.delta response.output_text.done "            \
    "response.content_part.done response.output_item.done response.completed"

/* ---- translation ------------------------------------------------------ */

static void test_translated_chat(void **state)
{
    (void)state;
    const char *body =
        "{\"model\":\"gpt\",\"instructions\":\"Be terse.\",\"input\":[{\"type\":\"message\","
        "\"role\":\"user\",\"content\":[{\"type\":\"input_text\",\"text\":\"hi\"}]}],"
        "\"tools\":[{\"type\":\"function\",\"name\":\"calc\",\"parameters\":{\"type\":\"object\"}}]"
        ","
        "\"max_output_tokens\":99,\"metadata\":{\"k\":\"v\"}}";
    th_response_t r, g;
    char id[160], rid[96], path[256];

    call(&gw, "POST", "/v1/responses", ops, body, &r);
    json_t *j = response_ok(&r, id, sizeof(id));
    assert_int_equal(strncmp(id, "resp_", 5), 0);
    assert_string_equal(json_string_value(json_object_get(j, "status")), "completed");
    const json_t *item = json_array_get(json_object_get(j, "output"), 0);
    assert_string_equal(json_string_value(json_object_get(item, "type")), "message");
    const json_t *part = json_array_get(json_object_get(item, "content"), 0);
    assert_string_equal(json_string_value(json_object_get(part, "text")), "Hello from o");
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(j, "usage"), "input_tokens")), 5);
    assert_string_equal(header(&r, "x-meridian-provider", rid, sizeof(rid)), "oai");
    /* upstream: a chat request */
    json_t *all = requests_of(&mock_o);
    assert_string_equal(json_string_value(json_object_get(json_array_get(all, 0), "path")),
                        "/v1/chat/completions");
    json_decref(all);
    json_t *up = last_body(&mock_o);
    assert_string_equal(json_string_value(json_object_get(up, "model")), "gpt-up");
    assert_int_equal(json_array_size(json_object_get(up, "messages")), 2);
    assert_int_equal(json_array_size(json_object_get(up, "tools")), 1);
    json_decref(up);
    /* the audit record names the dialect */
    json_t *rec = audit_record(header(&r, "x-request-id", rid, sizeof(rid)));
    assert_string_equal(json_string_value(json_object_get(rec, "dialect")), "responses");
    json_decref(rec);
    /* GET gives the same object */
    snprintf(path, sizeof(path), "/v1/responses/%s", id);
    call(&gw, "GET", path, ops, NULL, &g);
    assert_int_equal(g.status, 200);
    assert_string_equal(g.body, r.body);
    th_response_free(&g);
    /* input_items: newest first by default, oldest first with order=asc */
    snprintf(path, sizeof(path), "/v1/responses/%s/input_items?order=asc", id);
    call(&gw, "GET", path, ops, NULL, &g);
    json_t *list = th_json(&g);
    assert_int_equal(g.status, 200);
    assert_string_equal(json_string_value(json_object_get(list, "object")), "list");
    assert_int_equal(json_array_size(json_object_get(list, "data")), 1);
    json_decref(list);
    th_response_free(&g);
    json_decref(j);
    th_response_free(&r);
}

static void test_translated_anthropic_stream(void **state)
{
    (void)state;
    th_response_t r;
    char types[2048];
    int contiguous;

    call(&gw, "POST", "/v1/responses", ops,
         "{\"model\":\"claude\",\"input\":\"hi\",\"stream\":true}", &r);
    assert_int_equal(r.status, 200);
    stream_types(&r, types, sizeof(types), &contiguous);
    assert_string_equal(types, TYPES_TEXT);
    assert_true(contiguous);
    json_t *up = last_body(&mock_a);
    assert_string_equal(json_string_value(json_object_get(up, "model")), "claude-up");
    assert_true(json_is_true(json_object_get(up, "stream")));
    json_decref(up);
    th_response_free(&r);
}

/* Gemini and Azure chat: the same object and events, their own upstream. */
static void test_translated_gemini_azure(void **state)
{
    (void)state;
    const char *models[] = {"gemini", "azure"};
    const char *paths[] = {"/v1beta/models/gemini-up:generateContent",
                           "/openai/deployments/az-dep/chat/completions"};
    th_response_t r;
    char id[160], types[2048];
    int contiguous;

    for (size_t i = 0; i < 2; i++) {
        char *body = th_strf("{\"model\":\"%s\",\"input\":\"hi\"}", models[i]);
        th_mock_reset(&mock_o);
        call(&gw, "POST", "/v1/responses", ops, body, &r);
        json_t *j = response_ok(&r, id, sizeof(id));
        const json_t *item = json_array_get(json_object_get(j, "output"), 0);
        assert_string_equal(json_string_value(json_object_get(item, "type")), "message");
        json_t *all = requests_of(&mock_o);
        assert_string_equal(json_string_value(json_object_get(json_array_get(all, 0), "path")),
                            paths[i]);
        json_decref(all);
        json_decref(j);
        th_response_free(&r);
        free(body);
        body = th_strf("{\"model\":\"%s\",\"input\":\"hi\",\"stream\":true}", models[i]);
        call(&gw, "POST", "/v1/responses", ops, body, &r);
        assert_int_equal(r.status, 200);
        stream_types(&r, types, sizeof(types), &contiguous);
        assert_string_equal(types, TYPES_TEXT);
        assert_true(contiguous);
        th_response_free(&r);
        free(body);
    }
}

/* ---- native passthrough ----------------------------------------------- */

#define NATIVE_BODY(MODEL, STREAM)                                                                 \
    "{\"model\":\"" MODEL "\",\"input\":[{\"role\":\"user\",\"content\":\"hi\"}],"                 \
    "\"include\":[\"reasoning.encrypted_content\"],\"store\":true," STREAM                         \
    "\"future_field_2099\":{\"nested\":[1,2.50,\"\\u00e9\"]} }"

static void test_native_passthrough(void **state)
{
    (void)state;
    const char *sent = NATIVE_BODY("native", ""), *want = NATIVE_BODY("gpt-nat", "");
    const char *const nh[] = {"Authorization: Bearer sk-nat", NULL};
    th_response_t r, direct, g;
    char url[256], types[2048], dtypes[2048];
    int contiguous;

    call(&gw, "POST", "/v1/responses", ops, sent, &r);
    assert_int_equal(r.status, 200);
    json_t *all = requests_of(&mock_n);
    const json_t *rec = json_array_get(all, 0);
    assert_string_equal(json_string_value(json_object_get(rec, "path")), "/v1/responses");
    if (strcmp(json_string_value(json_object_get(rec, "body")), want) != 0)
        fail_msg("the upstream body differs:\n%s\n%s",
                 json_string_value(json_object_get(rec, "body")), want);
    json_decref(all);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/responses", mock_n.port);
    th_http("POST", url, nh, want, strlen(want), &direct);
    assert_int_equal(r.body_len, direct.body_len);
    assert_memory_equal(r.body, direct.body, r.body_len);
    th_response_free(&direct);
    /* kept under the provider's id */
    json_t *dj = th_json(&r);
    char *path = th_strf("/v1/responses/%s", json_string_value(json_object_get(dj, "id")));
    assert_int_equal(strncmp(path, "/v1/responses/resp_mock_n_", 26), 0);
    call(&gw, "GET", path, ops, NULL, &g);
    free(path);
    json_decref(dj);
    th_response_free(&r);
    assert_int_equal(g.status, 200);
    th_response_free(&g);

    /* streamed: no stream_options injected, the events untouched */
    const char *ssent = NATIVE_BODY("native", "\"stream\":true,");
    const char *swant = NATIVE_BODY("gpt-nat", "\"stream\":true,");
    th_mock_reset(&mock_n);
    call(&gw, "POST", "/v1/responses", ops, ssent, &r);
    assert_int_equal(r.status, 200);
    json_t *up = last_body(&mock_n);
    assert_null(json_object_get(up, "stream_options"));
    json_decref(up);
    all = requests_of(&mock_n);
    assert_string_equal(json_string_value(json_object_get(json_array_get(all, 0), "body")), swant);
    json_decref(all);
    th_http("POST", url, nh, swant, strlen(swant), &direct);
    stream_types(&r, types, sizeof(types), &contiguous);
    assert_true(contiguous);
    stream_types(&direct, dtypes, sizeof(dtypes), &contiguous);
    assert_string_equal(types, dtypes);
    assert_int_equal(r.body_len, direct.body_len);
    assert_memory_equal(r.body, direct.body, r.body_len);
    th_response_free(&direct);
    th_response_free(&r);
}

/* ---- chaining ---------------------------------------------------------- */

/* The follow-up leaves the instant the stream's last byte (response.completed)
 * arrived; the next target (another vendor) gets the whole conversation. */
static void test_chain_immediately(void **state)
{
    (void)state;
    th_response_t r, f;
    char id[160], body[512];
    struct timespec t0, t1;

    call(&gw, "POST", "/v1/responses", ops,
         "{\"model\":\"claude\",\"input\":\"first question\",\"stream\":true}", &r);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    json_t *done = last_event(&r);
    assert_string_equal(json_string_value(json_object_get(done, "type")), "response.completed");
    snprintf(id, sizeof(id), "%s",
             json_string_value(json_object_get(json_object_get(done, "response"), "id")));
    snprintf(body, sizeof(body),
             "{\"model\":\"gpt\",\"input\":\"second question\",\"previous_response_id\":\"%s\"}",
             id);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    call(&gw, "POST", "/v1/responses", ops, body, &f);
    printf("# follow-up sent %.3f ms after response.completed arrived\n",
           (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
    assert_int_equal(f.status, 200);
    json_t *up = last_body(&mock_o);
    const json_t *msgs = json_object_get(up, "messages");
    assert_int_equal(json_array_size(msgs), 3);
    assert_string_equal(json_string_value(json_object_get(json_array_get(msgs, 0), "content")),
                        "first question");
    assert_string_equal(json_string_value(json_object_get(json_array_get(msgs, 1), "role")),
                        "assistant");
    assert_non_null(
        strstr(json_string_value(json_object_get(json_array_get(msgs, 1), "content")), "tok0"));
    assert_string_equal(json_string_value(json_object_get(json_array_get(msgs, 2), "content")),
                        "second question");
    json_t *fj = th_json(&f);
    assert_string_equal(json_string_value(json_object_get(fj, "previous_response_id")), id);
    json_decref(fj);
    json_decref(up);
    json_decref(done);
    th_response_free(&f);
    th_response_free(&r);
}

/* A function-calling loop on a native target: the history goes upstream
 * as input items, previous_response_id does not. */
static void test_chain_native(void **state)
{
    (void)state;
    th_response_t r, f;
    char id[160], body[512];

    call(&gw, "POST", "/v1/responses", ops, "{\"model\":\"gpt\",\"input\":\"q1\"}", &r);
    json_t *j = response_ok(&r, id, sizeof(id));
    snprintf(body, sizeof(body),
             "{\"model\":\"native\",\"previous_response_id\":\"%s\",\"input\":[{\"type\":"
             "\"function_call_output\",\"call_id\":\"call_1\",\"output\":\"42\"}]}",
             id);
    call(&gw, "POST", "/v1/responses", ops, body, &f);
    assert_int_equal(f.status, 200);
    json_t *up = last_body(&mock_n);
    assert_null(json_object_get(up, "previous_response_id"));
    const json_t *input = json_object_get(up, "input");
    assert_int_equal(json_array_size(input), 3);
    assert_string_equal(json_string_value(json_object_get(json_array_get(input, 2), "type")),
                        "function_call_output");
    json_decref(up);
    json_decref(j);
    th_response_free(&f);
    th_response_free(&r);
}

static void test_store_false(void **state)
{
    (void)state;
    th_response_t r, g;
    char id[160], path[256], body[512];

    call(&gw, "POST", "/v1/responses", ops, "{\"model\":\"gpt\",\"input\":\"x\",\"store\":false}",
         &r);
    json_t *j = response_ok(&r, id, sizeof(id));
    assert_true(json_is_false(json_object_get(j, "store")));
    snprintf(path, sizeof(path), "/v1/responses/%s", id);
    call(&gw, "GET", path, ops, NULL, &g);
    assert_error(&g, 404, "response_not_found", NULL);
    th_response_free(&g);
    snprintf(body, sizeof(body),
             "{\"model\":\"gpt\",\"input\":\"y\",\"previous_response_id\":\"%s\"}", id);
    call(&gw, "POST", "/v1/responses", ops, body, &g);
    assert_error(&g, 404, "previous_response_not_found", "previous_response_id");
    assert_int_equal(th_mock_stat(&mock_o, "requests"), 1);
    th_response_free(&g);
    json_decref(j);
    th_response_free(&r);
}

/* ---- keys and policy --------------------------------------------------- */

static void test_key_scope(void **state)
{
    (void)state;
    th_response_t r, g;
    char id[160], path[256], body[512];

    call(&gw, "POST", "/v1/responses", ops, "{\"model\":\"gpt\",\"input\":\"secret\"}", &r);
    json_t *j = response_ok(&r, id, sizeof(id));
    snprintf(path, sizeof(path), "/v1/responses/%s", id);
    snprintf(body, sizeof(body),
             "{\"model\":\"gpt\",\"input\":\"y\",\"previous_response_id\":\"%s\"}", id);
    call(&gw, "GET", path, other, NULL, &g);
    assert_error(&g, 404, "response_not_found", NULL);
    th_response_free(&g);
    call(&gw, "POST", "/v1/responses", other, body, &g);
    assert_error(&g, 404, "previous_response_not_found", "previous_response_id");
    th_response_free(&g);
    call(&gw, "DELETE", path, other, NULL, &g);
    assert_error(&g, 404, "response_not_found", NULL);
    th_response_free(&g);
    /* no key at all, when keys exist: refused before any lookup */
    call(&gw, "GET", path, NULL, NULL, &g);
    assert_error(&g, 401, NULL, NULL);
    assert_null(strstr(g.body, "secret"));
    th_response_free(&g);
    assert_int_equal(th_mock_stat(&mock_o, "requests"), 1);
    /* still there for its key, until it deletes it */
    call(&gw, "GET", path, ops, NULL, &g);
    assert_int_equal(g.status, 200);
    th_response_free(&g);
    call(&gw, "DELETE", path, ops, NULL, &g);
    json_t *d = th_json(&g);
    assert_int_equal(g.status, 200);
    assert_true(json_is_true(json_object_get(d, "deleted")));
    json_decref(d);
    th_response_free(&g);
    call(&gw, "GET", path, ops, NULL, &g);
    assert_error(&g, 404, "response_not_found", NULL);
    th_response_free(&g);
    json_decref(j);
    th_response_free(&r);
}

/* An EU-bound key's chained turns stay in the EU, whatever model they name. */
static void test_policy_chain(void **state)
{
    (void)state;
    th_response_t r, f;
    char id[160], body[512], prov[64];

    call(&gw, "POST", "/v1/responses", eu, "{\"model\":\"mixed\",\"input\":\"q1\"}", &r);
    json_t *j = response_ok(&r, id, sizeof(id));
    assert_string_equal(header(&r, "x-meridian-provider", prov, sizeof(prov)), "ant-eu");
    snprintf(body, sizeof(body),
             "{\"model\":\"mixed\",\"input\":\"q2\",\"previous_response_id\":\"%s\"}", id);
    call(&gw, "POST", "/v1/responses", eu, body, &f);
    assert_int_equal(f.status, 200);
    assert_string_equal(header(&f, "x-meridian-provider", prov, sizeof(prov)), "ant-eu");
    th_response_free(&f);
    snprintf(body, sizeof(body),
             "{\"model\":\"claude\",\"input\":\"q3\",\"previous_response_id\":\"%s\"}", id);
    call(&gw, "POST", "/v1/responses", eu, body, &f);
    assert_true(f.status >= 400);
    assert_non_null(strstr(f.body, "\"error\""));
    th_response_free(&f);
    assert_int_equal(th_mock_stat(&mock_a, "requests"), 0);
    assert_int_equal(th_mock_stat(&mock_e, "requests"), 2);
    json_decref(j);
    th_response_free(&r);
}

/* ---- failures ---------------------------------------------------------- */

static void test_failover(void **state)
{
    (void)state;
    th_response_t r;
    char prov[64], types[2048];
    int contiguous;

    th_mock_scenario(&mock_b, "{\"status\":500}");
    call(&gw, "POST", "/v1/responses", ops, "{\"model\":\"fo\",\"input\":\"hi\"}", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(header(&r, "x-meridian-provider", prov, sizeof(prov)), "oai");
    th_response_free(&r);
    call(&gw, "POST", "/v1/responses", ops, "{\"model\":\"fo\",\"input\":\"hi\",\"stream\":true}",
         &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(header(&r, "x-meridian-provider", prov, sizeof(prov)), "oai");
    stream_types(&r, types, sizeof(types), &contiguous);
    assert_string_equal(types, TYPES_TEXT);
    assert_true(contiguous);
    assert_int_equal(th_mock_stat(&mock_b, "requests"), 2);
    th_response_free(&r);
}

static void assert_failed_last(const th_response_t *r)
{
    char types[2048];
    int contiguous;

    assert_int_equal(r->status, 200);
    stream_types(r, types, sizeof(types), &contiguous);
    assert_true(contiguous);
    assert_null(strstr(types, "response.completed"));
    json_t *last = last_event(r);
    assert_string_equal(json_string_value(json_object_get(last, "type")), "response.failed");
    const json_t *resp = json_object_get(last, "response");
    assert_string_equal(json_string_value(json_object_get(resp, "status")), "failed");
    assert_non_null(json_string_value(json_object_get(json_object_get(resp, "error"), "message")));
    json_decref(last);
}

static void test_response_failed(void **state)
{
    (void)state;
    th_response_t r;

    /* the upstream's error after content: translated */
    th_mock_scenario(&mock_o, "{\"error_after_chunks\":2,\"chunk_delay_ms\":30,\"count\":1}");
    call(&gw, "POST", "/v1/responses", ops, "{\"model\":\"gpt\",\"input\":\"hi\",\"stream\":true}",
         &r);
    assert_failed_last(&r);
    th_response_free(&r);
    /* the gateway's: the upstream goes quiet past stream_idle_ms */
    th_mock_scenario(&mock_o, "{\"chunk_delay_ms\":2500,\"count\":1}");
    call(&gw, "POST", "/v1/responses", ops, "{\"model\":\"gpt\",\"input\":\"hi\",\"stream\":true}",
         &r);
    assert_failed_last(&r);
    th_response_free(&r);
    /* a native stream cut before its terminal event, numbered after it */
    th_mock_scenario(&mock_n, "{\"close_after_events\":6,\"chunk_delay_ms\":30,\"count\":1}");
    call(&gw, "POST", "/v1/responses", ops,
         "{\"model\":\"native\",\"input\":\"hi\",\"stream\":true}", &r);
    assert_failed_last(&r);
    th_response_free(&r);
}

static void test_errors(void **state)
{
    (void)state;
    th_response_t r;

    call(&gw, "GET", "/v1/responses/resp_nope", ops, NULL, &r);
    assert_error(&r, 404, "response_not_found", NULL);
    th_response_free(&r);
    call(&gw, "GET", "/v1/responses/bad$id", ops, NULL, &r);
    assert_error(&r, 404, "response_not_found", NULL);
    th_response_free(&r);
    call(&gw, "GET", "/v1/responses/resp_x/other", ops, NULL, &r);
    assert_error(&r, 404, "unknown_url", NULL);
    th_response_free(&r);
    call(&gw, "PUT", "/v1/responses/resp_x", ops, "{}", &r);
    assert_error(&r, 405, "method_not_allowed", NULL);
    th_response_free(&r);
    call(&gw, "POST", "/v1/responses", ops, "{\"model\":\"gpt\",", &r);
    assert_error(&r, 400, "invalid_json", NULL);
    th_response_free(&r);
    call(&gw, "POST", "/v1/responses", ops, "{\"model\":\"gpt\",\"input\":\"x\",\"store\":\"yes\"}",
         &r);
    assert_error(&r, 400, "invalid_type", "store");
    th_response_free(&r);
    call(&gw, "POST", "/v1/responses", ops,
         "{\"model\":\"gpt\",\"input\":\"x\",\"previous_response_id\":\"resp_unknown\"}", &r);
    assert_error(&r, 404, "previous_response_not_found", "previous_response_id");
    th_response_free(&r);
    call(&gw, "POST", "/v1/responses", ops, "{\"input\":\"x\"}", &r);
    assert_error(&r, 400, "missing_required_parameter", "model");
    th_response_free(&r);
    call(&gw, "POST", "/v1/responses", ops, "{\"model\":\"nope\",\"input\":\"x\"}", &r);
    assert_true(r.status == 404 || r.status == 400);
    assert_error(&r, r.status, NULL, NULL);
    th_response_free(&r);
    assert_int_equal(th_mock_stat(&mock_o, "requests"), 0);
}

/* Reasoning signed by Anthropic, chained onto a chat target: the signature
 * is left out on purpose and counted; the same chain back to Anthropic
 * gives it back. */
static void test_signatures(void **state)
{
    (void)state;
    th_response_t r, f;
    char id[160], body[512], rid[96];

    call(&gw, "POST", "/v1/responses", ops,
         "{\"model\":\"claude\",\"input\":\"think\",\"reasoning\":{\"effort\":\"high\"},"
         "\"include\":[\"reasoning.encrypted_content\"]}",
         &r);
    json_t *j = response_ok(&r, id, sizeof(id));
    const json_t *rs = json_array_get(json_object_get(j, "output"), 0);
    assert_string_equal(json_string_value(json_object_get(rs, "type")), "reasoning");
    assert_int_equal(
        strncmp(json_string_value(json_object_get(rs, "encrypted_content")), "mr1.", 4), 0);
    snprintf(body, sizeof(body),
             "{\"model\":\"gpt\",\"input\":\"next\",\"previous_response_id\":\"%s\"}", id);
    call(&gw, "POST", "/v1/responses", ops, body, &f);
    assert_int_equal(f.status, 200);
    json_t *rec = audit_record(header(&f, "x-request-id", rid, sizeof(rid)));
    assert_int_equal(json_integer_value(json_object_get(rec, "signatures_dropped")), 1);
    json_decref(rec);
    th_response_free(&f);
    snprintf(body, sizeof(body),
             "{\"model\":\"claude\",\"input\":\"next\",\"previous_response_id\":\"%s\"}", id);
    call(&gw, "POST", "/v1/responses", ops, body, &f);
    assert_int_equal(f.status, 200);
    json_t *up = last_body(&mock_a);
    char *sent = json_dumps(up, JSON_COMPACT);
    assert_non_null(strstr(sent, "\"signature\":\"mock-sig-a\""));
    free(sent);
    json_decref(up);
    rec = audit_record(header(&f, "x-request-id", rid, sizeof(rid)));
    assert_int_equal(json_integer_value(json_object_get(rec, "signatures_dropped")), 0);
    json_decref(rec);
    th_response_free(&f);
    json_decref(j);
    th_response_free(&r);
}

/* A key's rpm: the refusal in OpenAI's shape, nothing upstream. */
static void test_limits(void **state)
{
    (void)state;
    th_response_t r;
    long refused = 0;

    for (int i = 0; i < 40 && !refused; i++) {
        call(&gw, "POST", "/v1/responses", other, "{\"model\":\"gpt\",\"input\":\"x\"}", &r);
        if (r.status == 429) {
            assert_error(&r, 429, NULL, NULL);
            refused = i + 1;
        } else {
            assert_int_equal(r.status, 200);
        }
        th_response_free(&r);
    }
    assert_true(refused > 0);
    assert_int_equal(th_mock_stat(&mock_o, "requests"), refused - 1);
}

static void test_metrics(void **state)
{
    (void)state;
    char url[256], err[256];
    th_response_t r;
    prom_doc_t doc;

    call(&gw, "POST", "/v1/responses", ops, "{\"model\":\"gpt\",\"input\":\"m\"}", &r);
    th_response_free(&r);
    th_http("GET", th_url_buf(&gw, "/metrics", url, sizeof(url)), ops, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    if (prom_parse(r.body, r.body_len, &doc, err, sizeof(err)) != 0)
        fail_msg("exposition rejected: %s", err);
    const char *lbl[] = {"endpoint", "responses", "provider", "oai", "status_class", "2xx", NULL};
    assert_true(prom_sum(&doc, "meridian_requests_total", lbl) >= 1);
    prom_free(&doc);
    th_response_free(&r);
}

/* ---- the store's bounds, through the config ---------------------------- */

static void start_bounded(th_proc_t *g, const char *responses)
{
    char *prov = providers_json();
    char *cfg = th_strf("{\"listen\":\"127.0.0.1:0\", %s, \"responses\":%s}", prov, responses);
    assert_int_equal(th_start_meridian(g, cfg, NULL), 0);
    free(prov);
    free(cfg);
}

static int exists(const th_proc_t *g, const char *id)
{
    th_response_t r;
    char path[256];
    snprintf(path, sizeof(path), "/v1/responses/%s", id);
    call(g, "GET", path, NULL, NULL, &r);
    int s = (int)r.status;
    th_response_free(&r);
    return s == 200;
}

static void create(const th_proc_t *g, const char *input, char *id, size_t n)
{
    th_response_t r;
    char *body = th_strf("{\"model\":\"gpt\",\"input\":\"%s\"}", input);
    call(g, "POST", "/v1/responses", NULL, body, &r);
    json_decref(response_ok(&r, id, n));
    th_response_free(&r);
    free(body);
}

static void test_store_bounds(void **state)
{
    (void)state;
    th_proc_t g;
    char ids[12][160];
    char *big = malloc(8193);

    /* by count: the least recently used goes */
    start_bounded(&g, "{\"max_entries\":2}");
    for (int i = 0; i < 3; i++)
        create(&g, "x", ids[i], sizeof(ids[i]));
    assert_false(exists(&g, ids[0]));
    assert_true(exists(&g, ids[1]) && exists(&g, ids[2]));
    th_stop(&g);
    /* by bytes: 64 KiB holds about seven 8 KiB conversations */
    memset(big, 'b', 8192);
    big[8192] = '\0';
    start_bounded(&g, "{\"max_bytes\":65536}");
    for (int i = 0; i < 12; i++)
        create(&g, big, ids[i], sizeof(ids[i]));
    assert_false(exists(&g, ids[0]));
    assert_true(exists(&g, ids[11]));
    th_stop(&g);
    /* by TTL: there, then gone (bounded poll) */
    start_bounded(&g, "{\"ttl_s\":1}");
    create(&g, "x", ids[0], sizeof(ids[0]));
    int gone = 0;
    for (int waited = 0; waited < 5000 && !gone; waited += 50) {
        gone = !exists(&g, ids[0]);
        if (!gone)
            th_pause_ms(50);
    }
    assert_true(gone);
    th_stop(&g);
    free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_translated_chat, reset_mocks),
        cmocka_unit_test_setup(test_translated_anthropic_stream, reset_mocks),
        cmocka_unit_test_setup(test_translated_gemini_azure, reset_mocks),
        cmocka_unit_test_setup(test_native_passthrough, reset_mocks),
        cmocka_unit_test_setup(test_chain_immediately, reset_mocks),
        cmocka_unit_test_setup(test_chain_native, reset_mocks),
        cmocka_unit_test_setup(test_store_false, reset_mocks),
        cmocka_unit_test_setup(test_key_scope, reset_mocks),
        cmocka_unit_test_setup(test_policy_chain, reset_mocks),
        cmocka_unit_test_setup(test_failover, reset_mocks),
        cmocka_unit_test_setup(test_response_failed, reset_mocks),
        cmocka_unit_test_setup(test_errors, reset_mocks),
        cmocka_unit_test_setup(test_signatures, reset_mocks),
        cmocka_unit_test_setup(test_metrics, reset_mocks),
        cmocka_unit_test_setup(test_limits, reset_mocks),
        cmocka_unit_test_setup(test_store_bounds, reset_mocks),
    };
    th_init();
    int rc = cmocka_run_group_tests(tests, group_setup, group_teardown);
    th_cleanup();
    return rc;
}
