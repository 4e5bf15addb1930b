/*
 * Golden tests of the dialect adapters, driven by fixture files under
 * tests/golden/<dialect>/:
 *
 *   request/<case>.in.json    an OpenAI client body
 *   request/<case>.out.json   the upstream body the adapter must build
 *   request/<case>.http       optional: the URL on line 1, then header lines
 *                             that must be in the upstream request
 *   request/<case>.err        instead of .out.json: build must fail with this
 *                             error code (400)
 *   response/<case>.in.json   a complete upstream 2xx body
 *   response/<case>.out.json  the OpenAI body it must become
 *   stream/<case>.in.sse      upstream event-stream bytes
 *   stream/<case>.out.sse     the OpenAI event stream the client must get
 *   {response,stream}/<case>.req.json   optional: the client's request (for
 *                             stream_options.include_usage, encoding_format...)
 *   <dir>/<case>.target       optional: the target's model instead of
 *                             "test-model" (one line)
 *   request/<case>.dropped    optional: how many reasoning signatures the
 *                             build must leave out (signatures_dropped)
 *   conversation/<case>/      a two-turn conversation (run_conversations):
 *                             turn1.req.json, turn1.answer.{json,sse},
 *                             turn2.tail.json, turn2.out.json
 *
 * The endpoint is chat unless the case name starts with "embed" or
 * "completions". Every attempt gets model "test-model" and created
 * 1700000000, so outputs are deterministic; bodies are compared as JSON
 * values, streams event by event (each "data:" parsed as JSON, "[DONE]"
 * literally). Every stream is also fed split at every byte boundary (two
 * pieces) and one byte at a time: the output bytes and results must be
 * identical to a single feed.
 *
 * MERIDIAN_GOLDEN_UPDATE=1 rewrites the expected files from the current
 * output (review the diff before committing!).
 */
#include "meridian/adapter.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "golden_util.h"

/* ---------------------------------------------------------------- requests */

static void check_http(const char *path, const char *name, const mr_adapter_req_t *r)
{
    char *want = read_file(path, NULL);
    char *save = NULL;

    if (!want)
        return;
    char *line = strtok_r(want, "\n", &save);
    if (!line || strcmp(line, r->url) != 0)
        fail_msg("%s: url\n want %s\n got  %s", name, line ? line : "", r->url);
    while ((line = strtok_r(NULL, "\n", &save))) {
        int found = 0;
        for (const struct curl_slist *h = r->headers; h && !found; h = h->next)
            found = strcmp(h->data, line) == 0;
        if (!found)
            fail_msg("%s: header \"%s\" missing", name, line);
    }
    free(want);
}

static void run_requests(const char *dname)
{
    dialect_t *d = dialect(dname);
    char dir[512], path[600], *names[MAX_CASES];
    size_t n;

    snprintf(dir, sizeof(dir), "%s/%s/request", GOLDEN_DIR, dname);
    n = list_cases(dir, ".in.json", names);
    if (n == 0)
        fail_msg("no request fixtures in %s", dir);
    for (size_t i = 0; i < n; i++) {
        size_t raw_len;
        mr_adapter_in_t in;
        mr_adapter_req_t req;
        mr_error_t err;

        snprintf(path, sizeof(path), "%s/%s.in.json", dir, names[i]);
        char *raw = read_file(path, &raw_len);
        assert_non_null(raw);
        json_t *json = load_json(path);
        make_in(&in, d, names[i], json, raw, raw_len);
        in.model = case_target(dir, names[i]);
        memset(&err, 0, sizeof(err));
        int rc = d->ad->build(&in, &req, &err);

        snprintf(path, sizeof(path), "%s/%s.err", dir, names[i]);
        char *want_err = read_file(path, NULL);
        if (want_err) {
            want_err[strcspn(want_err, "\n")] = '\0';
            if (rc == 0)
                fail_msg("%s/%s: build succeeded, expected error %s:\n%.*s", dname, names[i],
                         want_err, (int)req.body_len, req.body);
            if (err.status != 400 || !err.code || strcmp(err.code, want_err) != 0)
                fail_msg("%s/%s: error %d %s (%s), expected 400 %s", dname, names[i], err.status,
                         err.code ? err.code : "null", err.message, want_err);
            assert_true(strlen(err.message) > 0);
            free(want_err);
        } else {
            if (rc != 0)
                fail_msg("%s/%s: build failed: %d %s %s", dname, names[i], err.status,
                         err.code ? err.code : "", err.message);
            json_t *got = json_loadb(req.body, req.body_len, JSON_REJECT_DUPLICATES, NULL);
            if (!got)
                fail_msg("%s/%s: upstream body is not JSON: %.*s", dname, names[i],
                         (int)req.body_len, req.body);
            snprintf(path, sizeof(path), "%s/%s.out.json", dir, names[i]);
            if (update_mode()) {
                write_json(path, got);
            }
            json_t *want = load_json(path);
            if (!json_equal(got, want)) {
                char *g = json_dumps(got, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
                fail_msg("%s/%s: upstream body differs; got:\n%s", dname, names[i], g);
            }
            snprintf(path, sizeof(path), "%s/%s.http", dir, names[i]);
            check_http(path, names[i], &req);
            snprintf(path, sizeof(path), "%s/%s.dropped", dir, names[i]);
            char *dropped = read_file(path, NULL);
            if ((unsigned)(dropped ? atoi(dropped) : 0) != req.signatures_dropped)
                fail_msg("%s/%s: %u signatures dropped, expected %s", dname, names[i],
                         req.signatures_dropped, dropped ? dropped : "0");
            free(dropped);
            /* the key goes into a header, never into the URL or the body */
            assert_null(strstr(req.url, "test-key"));
            assert_null(strstr(req.body, "test-key"));
            json_decref(want);
            json_decref(got);
            free_req(&req);
        }
        json_decref(json);
        free(raw);
    }
    free_cases(names, n);
    free(d);
}

/* ---------------------------------------------------------------- responses */

static void run_responses(const char *dname)
{
    dialect_t *d = dialect(dname);
    char dir[512], path[600], *names[MAX_CASES];
    size_t n;

    snprintf(dir, sizeof(dir), "%s/%s/response", GOLDEN_DIR, dname);
    n = list_cases(dir, ".in.json", names);
    if (n == 0)
        fail_msg("no response fixtures in %s", dir);
    for (size_t i = 0; i < n; i++) {
        size_t len;
        char *raw;
        mr_adapter_in_t in;
        mr_buf_t out;
        mr_usage_t usage;
        mr_error_t err;

        json_t *creq = case_request(dir, names[i], 0, &raw);
        make_in(&in, d, names[i], creq, raw, strlen(raw));
        in.model = case_target(dir, names[i]);
        snprintf(path, sizeof(path), "%s/%s.in.json", dir, names[i]);
        char *body = read_file(path, &len);
        assert_non_null(body);
        mr_buf_init(&out, OUT_LIMIT);
        if (d->ad->translate(&in, body, len, &out, &usage, &err) != 0)
            fail_msg("%s/%s: translate failed: %s", dname, names[i], err.message);
        json_t *got = json_loadb(mr_buf_ptr(&out), mr_buf_len(&out), JSON_REJECT_DUPLICATES, NULL);
        if (!got)
            fail_msg("%s/%s: output is not JSON: %.*s", dname, names[i], (int)mr_buf_len(&out),
                     mr_buf_ptr(&out));
        snprintf(path, sizeof(path), "%s/%s.out.json", dir, names[i]);
        if (update_mode()) {
            write_json(path, got);
        }
        json_t *want = load_json(path);
        if (!json_equal(got, want)) {
            char *g = json_dumps(got, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
            fail_msg("%s/%s: OpenAI body differs; got:\n%s", dname, names[i], g);
        }
        /* the usage the gateway records is the one the client sees */
        json_t *u = json_object_get(got, "usage");
        if (json_is_object(u)) {
            /* unknown counts (-1) are written as 0 */
            assert_int_equal(usage.prompt_tokens < 0 ? 0 : usage.prompt_tokens,
                             json_integer_value(json_object_get(u, "prompt_tokens")));
            if (json_object_get(u, "completion_tokens"))
                assert_int_equal(usage.completion_tokens < 0 ? 0 : usage.completion_tokens,
                                 json_integer_value(json_object_get(u, "completion_tokens")));
        }
        /* out == NULL reads the usage only */
        mr_usage_t u2;
        assert_int_equal(d->ad->translate(&in, body, len, NULL, &u2, &err), 0);
        assert_int_equal(u2.prompt_tokens, usage.prompt_tokens);
        assert_int_equal(u2.completion_tokens, usage.completion_tokens);
        json_decref(want);
        json_decref(got);
        mr_buf_free(&out);
        free(body);
        free(raw);
        json_decref(creq);
    }
    free_cases(names, n);
    free(d);
}

/* ---------------------------------------------------------------- streams */

typedef struct run {
    mr_buf_t out;
    int rc; /* 0, or -1 when a feed or the end failed */
    mr_usage_t usage;
} run_t;

/* Feeds p[0,n) in pieces: cuts[] are the piece ends (ascending, last = n). */
static void feed_run(const mr_adapter_t *ad, const mr_adapter_in_t *in, const char *p,
                     const size_t *cuts, size_t ncuts, run_t *r)
{
    mr_stream_xlate_t *x = ad->stream_new(in);
    size_t at = 0;

    assert_non_null(x);
    mr_buf_init(&r->out, OUT_LIMIT);
    r->rc = 0;
    for (size_t i = 0; i < ncuts && r->rc == 0; i++) {
        r->rc = ad->stream_feed(x, p + at, cuts[i] - at, &r->out);
        at = cuts[i];
    }
    if (r->rc == 0)
        r->rc = ad->stream_end(x, &r->out);
    ad->stream_usage(x, &r->usage);
    ad->stream_free(x);
}

static void assert_same_run(const run_t *a, const run_t *b, const char *what)
{
    if (a->rc != b->rc || mr_buf_len(&a->out) != mr_buf_len(&b->out) ||
        memcmp(mr_buf_ptr(&a->out), mr_buf_ptr(&b->out), mr_buf_len(&a->out)) != 0)
        fail_msg("%s: output differs from a single feed (rc %d vs %d)\n--- single:\n%.*s\n--- "
                 "split:\n%.*s",
                 what, a->rc, b->rc, (int)mr_buf_len(&a->out), mr_buf_ptr(&a->out),
                 (int)mr_buf_len(&b->out), mr_buf_ptr(&b->out));
    assert_int_equal(a->usage.prompt_tokens, b->usage.prompt_tokens);
    assert_int_equal(a->usage.completion_tokens, b->usage.completion_tokens);
}

/* What an SDK rebuilds from a successful stream: per choice and tool call,
 * the concatenated arguments must be one valid JSON text; every chunk has
 * the chunk shape. */
static void check_stream_shape(const json_t *events, const char *what)
{
    json_t *args = json_object(); /* "choice/tool" -> accumulated text */
    size_t i, k;
    json_t *ev;

    json_array_foreach(events, i, ev)
    {
        json_t *ch;
        if (json_is_string(ev) || json_object_get(ev, "error"))
            continue;
        const char *obj = json_string_value(json_object_get(ev, "object"));
        if (!json_is_array(json_object_get(ev, "choices")) || !obj ||
            (strcmp(obj, "chat.completion.chunk") != 0 && strcmp(obj, "") != 0))
            fail_msg("%s: event %zu is not a chat.completion.chunk", what, i);
        json_array_foreach(json_object_get(ev, "choices"), k, ch)
        {
            size_t t;
            json_t *tc;
            json_array_foreach(json_object_get(json_object_get(ch, "delta"), "tool_calls"), t, tc)
            {
                char key[64];
                const char *a = json_string_value(
                    json_object_get(json_object_get(tc, "function"), "arguments"));
                snprintf(key, sizeof(key), "%lld/%lld",
                         (long long)json_integer_value(json_object_get(ch, "index")),
                         (long long)json_integer_value(json_object_get(tc, "index")));
                const char *old = json_string_value(json_object_get(args, key));
                char *joined = NULL;
                assert_true(asprintf(&joined, "%s%s", old ? old : "", a ? a : "") >= 0);
                json_object_set_new(args, key, json_string(joined));
                free(joined);
            }
        }
    }
    const char *key;
    json_t *v;
    json_object_foreach(args, key, v)
    {
        json_t *parsed = json_loads(json_string_value(v), 0, NULL);
        if (!json_is_object(parsed))
            fail_msg("%s: tool call %s arguments are not a JSON object: %s", what, key,
                     json_string_value(v));
        json_decref(parsed);
    }
    json_decref(args);
}

static void run_streams(const char *dname)
{
    dialect_t *d = dialect(dname);
    char dir[512], path[600], what[300], *names[MAX_CASES];
    size_t n;

    snprintf(dir, sizeof(dir), "%s/%s/stream", GOLDEN_DIR, dname);
    n = list_cases(dir, ".in.sse", names);
    if (n == 0)
        fail_msg("no stream fixtures in %s", dir);
    for (size_t i = 0; i < n; i++) {
        size_t len;
        char *raw;
        mr_adapter_in_t in;
        run_t whole, split;

        json_t *creq = case_request(dir, names[i], 1, &raw);
        make_in(&in, d, names[i], creq, raw, strlen(raw));
        in.model = case_target(dir, names[i]);
        snprintf(path, sizeof(path), "%s/%s.in.sse", dir, names[i]);
        char *input = read_file(path, &len);
        assert_non_null(input);
        assert_true(len > 0);

        feed_run(d->ad, &in, input, &len, 1, &whole);
        snprintf(path, sizeof(path), "%s/%s.out.sse", dir, names[i]);
        if (update_mode())
            write_file(path, mr_buf_ptr(&whole.out), mr_buf_len(&whole.out));
        size_t want_len;
        char *want = read_file(path, &want_len);
        if (!want)
            fail_msg("%s/%s: %s missing", dname, names[i], path);
        snprintf(what, sizeof(what), "%s/%s (expected)", dname, names[i]);
        json_t *we = events_of(want, want_len, what);
        snprintf(what, sizeof(what), "%s/%s (output)", dname, names[i]);
        json_t *ge = events_of(mr_buf_ptr(&whole.out), mr_buf_len(&whole.out), what);
        if (!json_equal(we, ge))
            fail_msg("%s/%s: stream differs; got:\n%.*s", dname, names[i],
                     (int)mr_buf_len(&whole.out), mr_buf_ptr(&whole.out));
        /* a stream that ends in an error event reports failure */
        json_t *last = json_array_get(ge, json_array_size(ge) - 1);
        int ends_in_error = json_is_object(last) && json_object_get(last, "error");
        /* (passthrough dialects forward upstream error events as they are) */
        if (!d->ad->passthrough && (whole.rc < 0) != ends_in_error)
            fail_msg("%s/%s: result %d, expected %s", dname, names[i], whole.rc,
                     ends_in_error ? "a failure" : "0");
        /* a stream cut before its terminal event says so */
        if (whole.rc < 0 && (strstr(names[i], "truncated") || strstr(names[i], "cut")) &&
            whole.rc != MR_ADAPTER_TRUNCATED)
            fail_msg("%s/%s: result %d, expected MR_ADAPTER_TRUNCATED", dname, names[i], whole.rc);
        snprintf(what, sizeof(what), "%s/%s", dname, names[i]);
        if (whole.rc == 0)
            check_stream_shape(ge, what);
        /* the usage the gateway records is the one the client sees */
        size_t ei;
        json_t *ev;
        json_array_foreach(ge, ei, ev)
        {
            json_t *u = json_object_get(ev, "usage");
            if (json_is_object(u)) {
                assert_int_equal(whole.usage.prompt_tokens < 0 ? 0 : whole.usage.prompt_tokens,
                                 json_integer_value(json_object_get(u, "prompt_tokens")));
                assert_int_equal(whole.usage.completion_tokens < 0 ? 0
                                                                   : whole.usage.completion_tokens,
                                 json_integer_value(json_object_get(u, "completion_tokens")));
            }
        }
        json_decref(we);
        json_decref(ge);
        free(want);

        /* split at every byte boundary: p[0,k) + p[k,len) */
        for (size_t k = 1; k < len; k++) {
            size_t cuts[2] = {k, len};
            feed_run(d->ad, &in, input, cuts, 2, &split);
            snprintf(what, sizeof(what), "%s/%s split at %zu", dname, names[i], k);
            assert_same_run(&whole, &split, what);
            mr_buf_free(&split.out);
        }
        /* one byte at a time */
        size_t *cuts = malloc(len * sizeof(*cuts));
        assert_non_null(cuts);
        for (size_t k = 0; k < len; k++)
            cuts[k] = k + 1;
        feed_run(d->ad, &in, input, cuts, len, &split);
        snprintf(what, sizeof(what), "%s/%s byte by byte", dname, names[i]);
        assert_same_run(&whole, &split, what);
        mr_buf_free(&split.out);
        free(cuts);

        mr_buf_free(&whole.out);
        free(input);
        free(raw);
        json_decref(creq);
    }
    free_cases(names, n);
    free(d);
}

static void test_anthropic_requests(void **state)
{
    (void)state;
    run_requests("anthropic");
}
static void test_anthropic_responses(void **state)
{
    (void)state;
    run_responses("anthropic");
}
static void test_anthropic_streams(void **state)
{
    (void)state;
    run_streams("anthropic");
}
static void test_gemini_requests(void **state)
{
    (void)state;
    run_requests("gemini");
}
static void test_gemini_responses(void **state)
{
    (void)state;
    run_responses("gemini");
}
static void test_gemini_streams(void **state)
{
    (void)state;
    run_streams("gemini");
}
static void test_azure_requests(void **state)
{
    (void)state;
    run_requests("azure");
}
static void test_azure_responses(void **state)
{
    (void)state;
    run_responses("azure");
}
static void test_azure_streams(void **state)
{
    (void)state;
    run_streams("azure");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_anthropic_requests), cmocka_unit_test(test_anthropic_responses),
        cmocka_unit_test(test_anthropic_streams),  cmocka_unit_test(test_gemini_requests),
        cmocka_unit_test(test_gemini_responses),   cmocka_unit_test(test_gemini_streams),
        cmocka_unit_test(test_azure_requests),     cmocka_unit_test(test_azure_responses),
        cmocka_unit_test(test_azure_streams),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
