/*
 * The same OpenAI-client scenarios against every dialect, through the real
 * meridian binary: an anthropic, a gemini and an azure provider on one mock
 * upstream (which speaks all three by path), plus an openai provider on a
 * second mock for failover. Plain chat, streaming (with and without
 * include_usage), a tool call round trip (complete and streamed), errors
 * (before and in the middle of a stream), failover from a dialect target to
 * an openai one, embeddings, and the credentials each dialect must carry.
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

#define CLIENT_KEY "sk-client-should-never-travel"

static th_proc_t mock_x, mock_b, gw;

/* One provider kind under test. */
typedef struct kind {
    const char *provider;   /* provider name in the config */
    const char *model;      /* its target's upstream model */
    const char *auth;       /* the credentials header the upstream must get */
    const char *key;        /* ... and its value */
    const char *path;       /* upstream path of a non-stream chat */
    const char *error_code; /* error.code of a translated 400 */
    int tools;              /* the mock calls tools in this dialect */
} kind_t;

static const kind_t kinds[] = {
    {"claude", "claude-test", "x-api-key", "sk-ant-test-key", "/v1/messages",
     "invalid_request_error", 1},
    {"gem", "gemini-test", "x-goog-api-key", "goog-test-key",
     "/v1beta/models/gemini-test:generateContent", "invalid_argument", 1},
    {"az", "az-deployment", "api-key", "az-test-key",
     "/openai/deployments/az-deployment/chat/completions", NULL, 0},
};
#define N_KINDS (sizeof(kinds) / sizeof(kinds[0]))

static const char *const json_hdrs[] = {"Authorization: Bearer " CLIENT_KEY, NULL};

static int group_setup(void **state)
{
    (void)state;
    if (th_start_mock(&mock_x, "x") < 0 || th_start_mock(&mock_b, "b") < 0)
        return -1;
    char *cfg = th_strf(
        "{\"listen\":\"127.0.0.1:0\","
        /* these tests hammer failing mocks on purpose: keep breakers and the
         * retry budget out of the way (test_breaker covers them) */
        " \"health\":{\"failure_threshold\":1000000}, "
        "\"retry_budget\":{\"min_retries_per_s\":100000},"
        " \"providers\":{"
        "  \"claude\":{\"kind\":\"anthropic\",\"base_url\":\"http://127.0.0.1:%d/v1\","
        "             \"api_key\":\"sk-ant-test-key\"},"
        "  \"gem\":{\"kind\":\"gemini\",\"base_url\":\"http://127.0.0.1:%d/v1beta\","
        "          \"api_key\":\"goog-test-key\"},"
        "  \"az\":{\"kind\":\"azure\",\"base_url\":\"http://127.0.0.1:%d\","
        "         \"api_key\":\"az-test-key\",\"api_version\":\"2025-01-01-preview\"},"
        "  \"b\":{\"kind\":\"openai\",\"base_url\":\"http://127.0.0.1:%d/v1\","
        "        \"api_key\":\"sk-b\"}},"
        " \"routes\":{"
        "  \"claude-first\":{\"targets\":[{\"provider\":\"claude\",\"model\":\"claude-test\"},"
        "                               {\"provider\":\"b\",\"model\":\"m-b\"}]},"
        "  \"gem-first\":{\"targets\":[{\"provider\":\"gem\",\"model\":\"gemini-test\"},"
        "                            {\"provider\":\"b\",\"model\":\"m-b\"}]},"
        "  \"az-first\":{\"targets\":[{\"provider\":\"az\",\"model\":\"az-deployment\"},"
        "                           {\"provider\":\"b\",\"model\":\"m-b\"}]}},"
        " \"timeouts\":{\"connect_ms\":1000,\"first_byte_ms\":2000,\"request_ms\":8000,"
        "               \"stream_idle_ms\":2000}}",
        mock_x.port, mock_x.port, mock_x.port, mock_b.port);
    int rc = th_start_meridian(&gw, cfg, NULL);
    free(cfg);
    return rc;
}

static int group_teardown(void **state)
{
    (void)state;
    int rc = th_stop(&gw);
    th_stop(&mock_x);
    th_stop(&mock_b);
    return rc == 0 ? 0 : -1;
}

static int reset_mocks(void **state)
{
    (void)state;
    return th_mock_reset(&mock_x) | th_mock_reset(&mock_b);
}

static void post(const char *path, const char *body, th_response_t *r)
{
    char url[256];
    th_http("POST", th_url_buf(&gw, path, url, sizeof(url)), json_hdrs, body, strlen(body), r);
}

static void chat(const kind_t *k, const char *extra, th_response_t *r)
{
    char *body = th_strf("{\"model\":\"%s/%s\",\"messages\":[{\"role\":\"user\",\"content\":"
                         "\"Hello?\"}]%s}",
                         k->provider, k->model, extra ? extra : "");
    post("/v1/chat/completions", body, r);
    free(body);
}

static void assert_header(const th_response_t *r, const char *name, const char *want)
{
    char buf[256];
    const char *v = th_header(r, name, buf, sizeof(buf));
    if (!v || strcmp(v, want) != 0)
        fail_msg("header %s: want \"%s\", got \"%s\"", name, want, v ? v : "(none)");
}

static json_t *ok_json(const th_response_t *r, const kind_t *k)
{
    if (r->status != 200)
        fail_msg("%s: want 200, got %ld: %s", k->provider, r->status, r->body);
    assert_header(r, "x-meridian-provider", k->provider);
    json_t *j = th_json(r);
    if (!j)
        fail_msg("%s: body is not JSON: %s", k->provider, r->body);
    return j;
}

/* The one request the mock got: path, credentials, no client key. */
static json_t *the_upstream_request(const kind_t *k)
{
    json_t *seen = th_mock_requests(&mock_x);
    if (json_array_size(seen) != 1)
        fail_msg("%s: the mock got %zu requests", k->provider, json_array_size(seen));
    json_t *rec = json_incref(json_array_get(seen, 0));
    json_decref(seen);
    json_t *h = json_object_get(rec, "headers");
    const char *auth = json_string_value(json_object_get(h, k->auth));
    if (!auth || strcmp(auth, k->key) != 0)
        fail_msg("%s: header %s = %s", k->provider, k->auth, auth ? auth : "(none)");
    assert_null(json_object_get(h, "authorization"));
    char *dump = json_dumps(rec, 0);
    assert_null(strstr(dump, CLIENT_KEY));
    free(dump);
    return rec;
}

/* ---- plain chat ------------------------------------------------------ */

static void test_plain_chat(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_KINDS; i++) {
        const kind_t *k = &kinds[i];
        th_response_t r;
        assert_int_equal(th_mock_reset(&mock_x), 0);
        chat(k, ",\"temperature\":0.5,\"max_tokens\":50", &r);
        json_t *j = ok_json(&r, k);
        json_t *c0 = json_array_get(json_object_get(j, "choices"), 0);
        json_t *msg = json_object_get(c0, "message");
        assert_string_equal(json_string_value(json_object_get(j, "object")), "chat.completion");
        assert_string_equal(json_string_value(json_object_get(msg, "role")), "assistant");
        assert_string_equal(json_string_value(json_object_get(msg, "content")), "Hello from x");
        assert_string_equal(json_string_value(json_object_get(c0, "finish_reason")), "stop");
        json_t *u = json_object_get(j, "usage");
        assert_int_equal(json_integer_value(json_object_get(u, "prompt_tokens")), 5);
        assert_int_equal(json_integer_value(json_object_get(u, "completion_tokens")), 4);
        assert_int_equal(json_integer_value(json_object_get(u, "total_tokens")), 9);
        assert_true(json_is_string(json_object_get(j, "id")));
        assert_true(json_is_integer(json_object_get(j, "created")));
        json_decref(j);

        json_t *rec = the_upstream_request(k);
        assert_string_equal(json_string_value(json_object_get(rec, "path")), k->path);
        json_t *up = json_loads(json_string_value(json_object_get(rec, "body")), 0, NULL);
        assert_non_null(up);
        if (strcmp(k->provider, "claude") == 0) {
            assert_string_equal(json_string_value(json_object_get(up, "model")), k->model);
            assert_int_equal(json_integer_value(json_object_get(up, "max_tokens")), 50);
        } else if (strcmp(k->provider, "gem") == 0) {
            json_t *gc = json_object_get(up, "generationConfig");
            assert_int_equal(json_integer_value(json_object_get(gc, "maxOutputTokens")), 50);
        } else {
            assert_string_equal(
                json_string_value(json_object_get(json_object_get(rec, "query"), "api-version")),
                "2025-01-01-preview");
        }
        json_decref(up);
        json_decref(rec);
        th_response_free(&r);
    }
}

/* ---- streaming ------------------------------------------------------- */

typedef struct streamed {
    char text[512];
    char finish[32];
    char tool_name[64];
    char tool_args[512];
    char tool_id[128];
    int usage_chunks;
    long prompt, completion;
    int done;
    int errors;
    size_t events;
} streamed_t;

/* What an SDK would rebuild from the stream. */
static void collect(const th_response_t *r, streamed_t *s)
{
    char **ev;
    size_t n;
    memset(s, 0, sizeof(*s));
    th_sse_events(r->body, r->body_len, &ev, &n);
    s->events = n;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(ev[i], "[DONE]") == 0) {
            s->done++;
            continue;
        }
        json_t *j = json_loads(ev[i], 0, NULL);
        if (!j)
            fail_msg("event %zu is not JSON: %s", i, ev[i]);
        if (json_object_get(j, "error")) {
            s->errors++;
            json_decref(j);
            continue;
        }
        assert_string_equal(json_string_value(json_object_get(j, "object")),
                            "chat.completion.chunk");
        json_t *u = json_object_get(j, "usage");
        if (json_is_object(u)) {
            s->usage_chunks++;
            s->prompt = (long)json_integer_value(json_object_get(u, "prompt_tokens"));
            s->completion = (long)json_integer_value(json_object_get(u, "completion_tokens"));
        }
        json_t *c0 = json_array_get(json_object_get(j, "choices"), 0);
        json_t *d = json_object_get(c0, "delta");
        const char *t = json_string_value(json_object_get(d, "content"));
        if (t)
            strncat(s->text, t, sizeof(s->text) - strlen(s->text) - 1);
        const char *f = json_string_value(json_object_get(c0, "finish_reason"));
        if (f)
            snprintf(s->finish, sizeof(s->finish), "%s", f);
        json_t *tc = json_array_get(json_object_get(d, "tool_calls"), 0);
        if (tc) {
            json_t *fn = json_object_get(tc, "function");
            const char *name = json_string_value(json_object_get(fn, "name"));
            const char *args = json_string_value(json_object_get(fn, "arguments"));
            const char *id = json_string_value(json_object_get(tc, "id"));
            if (name)
                snprintf(s->tool_name, sizeof(s->tool_name), "%s", name);
            if (id)
                snprintf(s->tool_id, sizeof(s->tool_id), "%s", id);
            if (args)
                strncat(s->tool_args, args, sizeof(s->tool_args) - strlen(s->tool_args) - 1);
        }
        json_decref(j);
    }
    th_sse_free(ev, n);
}

static void test_stream(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_KINDS; i++) {
        const kind_t *k = &kinds[i];
        th_response_t r;
        streamed_t s;
        char ct[128];

        assert_int_equal(th_mock_reset(&mock_x), 0);
        chat(k, ",\"stream\":true,\"stream_options\":{\"include_usage\":true}", &r);
        if (r.status != 200)
            fail_msg("%s: %ld %s", k->provider, r.status, r.body);
        assert_non_null(th_header(&r, "content-type", ct, sizeof(ct)));
        assert_non_null(strstr(ct, "text/event-stream"));
        collect(&r, &s);
        if (strcmp(s.text, "tok0 tok1 tok2 tok3 tok4 ") != 0)
            fail_msg("%s: streamed text \"%s\"\n%s", k->provider, s.text, r.body);
        assert_string_equal(s.finish, "stop");
        assert_int_equal(s.usage_chunks, 1);
        assert_int_equal(s.prompt, 5);
        assert_int_equal(s.completion, 4);
        assert_int_equal(s.done, 1);
        assert_int_equal(s.errors, 0);
        th_response_free(&r);
        json_decref(the_upstream_request(k));

        /* without include_usage no usage chunk reaches the client */
        chat(k, ",\"stream\":true", &r);
        collect(&r, &s);
        assert_string_equal(s.text, "tok0 tok1 tok2 tok3 tok4 ");
        assert_int_equal(s.usage_chunks, 0);
        assert_int_equal(s.done, 1);
        th_response_free(&r);
    }
}

/* ---- tools ----------------------------------------------------------- */

#define TOOLS                                                                                      \
    ",\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\","                   \
    "\"description\":\"Weather\",\"parameters\":{\"type\":\"object\",\"properties\":"              \
    "{\"city\":{\"type\":\"string\"}},\"required\":[\"city\"]}}}]"

static void test_tool_round_trip(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_KINDS; i++) {
        const kind_t *k = &kinds[i];
        th_response_t r;
        if (!k->tools)
            continue;
        assert_int_equal(th_mock_reset(&mock_x), 0);
        chat(k, TOOLS, &r);
        json_t *j = ok_json(&r, k);
        json_t *c0 = json_array_get(json_object_get(j, "choices"), 0);
        assert_string_equal(json_string_value(json_object_get(c0, "finish_reason")), "tool_calls");
        json_t *tc =
            json_array_get(json_object_get(json_object_get(c0, "message"), "tool_calls"), 0);
        assert_string_equal(json_string_value(json_object_get(tc, "type")), "function");
        json_t *fn = json_object_get(tc, "function");
        assert_string_equal(json_string_value(json_object_get(fn, "name")), "get_weather");
        json_t *args = json_loads(json_string_value(json_object_get(fn, "arguments")), 0, NULL);
        assert_string_equal(json_string_value(json_object_get(args, "city")), "mock");
        json_decref(args);
        const char *id = json_string_value(json_object_get(tc, "id"));
        assert_non_null(id);

        /* the client runs the tool and sends the result back */
        char *body = th_strf(
            "{\"model\":\"%s/%s\",\"messages\":[{\"role\":\"user\",\"content\":\"Weather?\"},"
            "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"%s\","
            "\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
            "\"arguments\":\"{\\\"city\\\":\\\"mock\\\"}\"}}]},"
            "{\"role\":\"tool\",\"tool_call_id\":\"%s\",\"content\":\"18C sunny\"}]" TOOLS "}",
            k->provider, k->model, id, id);
        json_decref(j);
        th_response_free(&r);
        post("/v1/chat/completions", body, &r);
        free(body);
        j = ok_json(&r, k);
        c0 = json_array_get(json_object_get(j, "choices"), 0);
        const char *text =
            json_string_value(json_object_get(json_object_get(c0, "message"), "content"));
        if (!text || !strstr(text, "tool result") || !strstr(text, "18C sunny"))
            fail_msg("%s: answer after the tool result: %s", k->provider, r.body);
        assert_string_equal(json_string_value(json_object_get(c0, "finish_reason")), "stop");
        json_decref(j);
        th_response_free(&r);

        /* streamed: the arguments arrive in pieces and add up */
        chat(k, ",\"stream\":true" TOOLS, &r);
        streamed_t s;
        collect(&r, &s);
        assert_string_equal(s.finish, "tool_calls");
        assert_string_equal(s.tool_name, "get_weather");
        assert_true(s.tool_id[0] != '\0');
        args = json_loads(s.tool_args, 0, NULL);
        if (!args)
            fail_msg("%s: streamed arguments \"%s\" are not JSON", k->provider, s.tool_args);
        assert_string_equal(json_string_value(json_object_get(args, "city")), "mock");
        json_decref(args);
        assert_int_equal(s.done, 1);
        th_response_free(&r);
    }
}

/* ---- errors and failover ---------------------------------------------- */

static void test_client_error_translated(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_KINDS; i++) {
        const kind_t *k = &kinds[i];
        th_response_t r;
        assert_int_equal(th_mock_reset(&mock_x), 0);
        assert_int_equal(th_mock_scenario(&mock_x, "{\"status\":400,\"count\":1}"), 0);
        chat(k, NULL, &r);
        if (r.status != 400)
            fail_msg("%s: want 400, got %ld: %s", k->provider, r.status, r.body);
        json_t *j = th_json(&r);
        json_t *e = json_object_get(j, "error");
        assert_non_null(
            strstr(json_string_value(json_object_get(e, "message")), "mock x status 400"));
        assert_true(json_is_string(json_object_get(e, "type")));
        assert_non_null(json_object_get(e, "param"));
        if (k->error_code)
            assert_string_equal(json_string_value(json_object_get(e, "code")), k->error_code);
        json_decref(j);
        th_response_free(&r);
        assert_int_equal(th_mock_stat(&mock_x, "requests"), 1); /* a 400 is not retried */
    }
}

static void test_failover_to_openai(void **state)
{
    static const char *const faults[] = {"{\"status\":529,\"count\":1}",
                                         "{\"status\":503,\"count\":1}",
                                         "{\"status\":429,\"count\":1}"};
    static const char *const routes[] = {"claude-first", "gem-first", "az-first"};
    (void)state;
    for (size_t i = 0; i < N_KINDS; i++) {
        for (size_t f = 0; f < sizeof(faults) / sizeof(faults[0]); f++) {
            for (int stream = 0; stream < 2; stream++) {
                th_response_t r;
                assert_int_equal(th_mock_reset(&mock_x), 0);
                assert_int_equal(th_mock_reset(&mock_b), 0);
                assert_int_equal(th_mock_scenario(&mock_x, faults[f]), 0);
                char *body = th_strf("{\"model\":\"%s\",\"messages\":[{\"role\":\"user\","
                                     "\"content\":\"hi\"}]%s}",
                                     routes[i], stream ? ",\"stream\":true" : "");
                post("/v1/chat/completions", body, &r);
                free(body);
                if (r.status != 200)
                    fail_msg("%s %s: %ld %s", routes[i], faults[f], r.status, r.body);
                assert_header(&r, "x-meridian-provider", "b");
                assert_header(&r, "x-meridian-attempts", "2");
                assert_non_null(strstr(r.body, stream ? "tok0" : "Hello from b"));
                assert_int_equal(th_mock_stat(&mock_x, "requests"), 1);
                assert_int_equal(th_mock_stat(&mock_b, "requests"), 1);
                th_response_free(&r);
            }
        }
    }
}

static void test_error_mid_stream(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_KINDS; i++) {
        const kind_t *k = &kinds[i];
        th_response_t r;
        streamed_t s;
        assert_int_equal(th_mock_reset(&mock_x), 0);
        /* the delay lets the first chunks reach the client (committing the
         * stream) before the error: an error before any byte fails over */
        assert_int_equal(th_mock_scenario(&mock_x, "{\"error_after_chunks\":2,"
                                                   "\"chunk_delay_ms\":150,\"count\":1}"),
                         0);
        chat(k, ",\"stream\":true", &r);
        assert_int_equal(r.curl_code, CURLE_OK);
        if (r.status != 200)
            fail_msg("%s: %ld %s", k->provider, r.status, r.body);
        collect(&r, &s);
        assert_string_equal(s.text, "tok0 tok1 ");
        if (s.errors != 1)
            fail_msg("%s: %d error events in\n%s", k->provider, s.errors, r.body);
        assert_int_equal(s.done, 0);
        /* the error event is the last one */
        char **ev;
        size_t n;
        th_sse_events(r.body, r.body_len, &ev, &n);
        json_t *last = json_loads(ev[n - 1], 0, NULL);
        json_t *e = json_object_get(last, "error");
        assert_true(json_is_string(json_object_get(e, "message")));
        json_decref(last);
        th_sse_free(ev, n);
        th_response_free(&r);
    }
}

/* ---- other endpoints ----------------------------------------------------- */

static void test_embeddings(void **state)
{
    th_response_t r;
    (void)state;
    post("/v1/embeddings", "{\"model\":\"gem/text-embedding-004\",\"input\":\"hello\"}", &r);
    json_t *j = ok_json(&r, &kinds[1]);
    json_t *d0 = json_array_get(json_object_get(j, "data"), 0);
    assert_string_equal(json_string_value(json_object_get(j, "object")), "list");
    assert_int_equal(json_array_size(json_object_get(d0, "embedding")), 3);
    json_decref(j);
    th_response_free(&r);
    json_t *seen = th_mock_requests(&mock_x);
    assert_string_equal(json_string_value(json_object_get(json_array_get(seen, 0), "path")),
                        "/v1beta/models/text-embedding-004:embedContent");
    json_decref(seen);

    post("/v1/embeddings", "{\"model\":\"gem/text-embedding-004\",\"input\":[\"a\",\"b\"]}", &r);
    j = ok_json(&r, &kinds[1]);
    assert_int_equal(json_array_size(json_object_get(j, "data")), 2);
    json_decref(j);
    th_response_free(&r);

    post("/v1/embeddings", "{\"model\":\"az/emb-deployment\",\"input\":\"hello\"}", &r);
    j = ok_json(&r, &kinds[2]);
    assert_int_equal(json_array_size(json_object_get(json_array_get(json_object_get(j, "data"), 0),
                                                     "embedding")),
                     3);
    json_decref(j);
    th_response_free(&r);

    /* anthropic has no embeddings: a clear 400, nothing sent upstream */
    assert_int_equal(th_mock_reset(&mock_x), 0);
    post("/v1/embeddings", "{\"model\":\"claude/claude-test\",\"input\":\"hello\"}", &r);
    if (r.status != 400 || !strstr(r.body, "unsupported_endpoint"))
        fail_msg("anthropic embeddings: %ld %s", r.status, r.body);
    th_response_free(&r);
    assert_int_equal(th_mock_stat(&mock_x, "requests"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_plain_chat, reset_mocks),
        cmocka_unit_test_setup(test_stream, reset_mocks),
        cmocka_unit_test_setup(test_tool_round_trip, reset_mocks),
        cmocka_unit_test_setup(test_client_error_translated, reset_mocks),
        cmocka_unit_test_setup(test_failover_to_openai, reset_mocks),
        cmocka_unit_test_setup(test_error_mid_stream, reset_mocks),
        cmocka_unit_test_setup(test_embeddings, reset_mocks),
    };
    th_init();
    int rc = cmocka_run_group_tests(tests, group_setup, group_teardown);
    th_cleanup();
    return rc;
}
