/*
 * Unit tests of the SSE parser and of the dialect adapters' edges that the
 * golden fixtures do not cover: error bodies, retryability, headers and
 * secrets, bounded buffers, output limits.
 */
#include "meridian/adapter.h"
#include "meridian/sse.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- sse */

typedef struct collected {
    char text[4096]; /* "event|data\n" per event */
    int stop_after;  /* return 7 from the callback after this many events; 0 = never */
    int n;
} collected_t;

static int collect(void *ctx, const char *event, const char *data, size_t len)
{
    collected_t *c = ctx;
    size_t at = strlen(c->text);
    assert_int_equal(data[len], '\0');
    snprintf(c->text + at, sizeof(c->text) - at, "%s|%.*s\n", event, (int)len, data);
    c->n++;
    return c->stop_after && c->n >= c->stop_after ? 7 : 0;
}

static void test_sse_fields_and_line_ends(void **state)
{
    static const char in[] = ": comment\r\n"
                             "event: a\r\ndata: one\r\ndata:two\r\nid: 5\r\nretry: 10\r\n\r\n"
                             "data\n\n"              /* a field without colon: empty data */
                             "event: only-event\n\n" /* no data: not dispatched */
                             "data:  lead\rdata: x\r\r"
                             "unknown: y\ndata: last";
    collected_t c;
    mr_sse_t s;
    (void)state;

    /* whole, then every split, then byte by byte: same events */
    for (size_t split = 0; split <= sizeof(in) - 1; split++) {
        memset(&c, 0, sizeof(c));
        mr_sse_init(&s, 64, 64);
        if (split == 0) {
            for (size_t i = 0; i < sizeof(in) - 1; i++)
                assert_int_equal(mr_sse_feed(&s, in + i, 1, collect, &c), 0);
        } else {
            assert_int_equal(mr_sse_feed(&s, in, split, collect, &c), 0);
            assert_int_equal(mr_sse_feed(&s, in + split, sizeof(in) - 1 - split, collect, &c), 0);
        }
        assert_int_equal(mr_sse_finish(&s, collect, &c), 0);
        assert_string_equal(c.text, "a|one\ntwo\n|\n| lead\nx\n|last\n");
        mr_sse_free(&s);
    }
}

static void test_sse_limits(void **state)
{
    collected_t c = {0};
    mr_sse_t s;
    char line[100];
    (void)state;

    /* a line longer than max_line fails, whether it arrives whole or not */
    memset(line, 'x', sizeof(line));
    mr_sse_init(&s, 32, 1024);
    assert_int_equal(mr_sse_feed(&s, "data: ok\n\n", 10, collect, &c), 0);
    assert_int_equal(mr_sse_feed(&s, line, 20, collect, &c), 0);
    assert_int_equal(mr_sse_feed(&s, line, 20, collect, &c), MR_SSE_TOO_LONG);
    assert_int_equal(mr_sse_feed(&s, "\n\n", 2, collect, &c), MR_SSE_TOO_LONG); /* sticky */
    assert_int_equal(mr_sse_finish(&s, collect, &c), MR_SSE_TOO_LONG);
    assert_string_equal(c.text, "|ok\n");
    mr_sse_free(&s);

    /* an event whose data lines add up past max_data fails */
    memset(&c, 0, sizeof(c));
    mr_sse_init(&s, 32, 20);
    assert_int_equal(mr_sse_feed(&s, "data: 0123456789\ndata: 012345678\n", 33, collect, &c),
                     0); /* 10 + 1 + 9 = 20 */
    assert_int_equal(mr_sse_feed(&s, "data: x\n", 8, collect, &c), MR_SSE_TOO_LONG);
    mr_sse_free(&s);

    /* the callback's value stops parsing */
    memset(&c, 0, sizeof(c));
    c.stop_after = 1;
    mr_sse_init(&s, 32, 32);
    assert_int_equal(mr_sse_feed(&s, "data: a\n\ndata: b\n\n", 18, collect, &c), 7);
    assert_string_equal(c.text, "|a\n");
    mr_sse_free(&s);
}

/* ---------------------------------------------------------------- helpers */

static mr_provider_t provider(mr_provider_kind_t kind, char *base)
{
    mr_provider_t p;
    memset(&p, 0, sizeof(p));
    p.name = (char *)"prov";
    p.kind = kind;
    p.base_url = base;
    p.api_key = (char *)"sk-secret-key";
    p.vendor = (char *)"v";
    p.region = p.jurisdiction = (char *)"";
    p.enabled = true;
    return p;
}

static json_t *error_of(mr_buf_t *b)
{
    json_t *j = json_loadb(mr_buf_ptr(b), mr_buf_len(b), 0, NULL);
    json_t *e = json_object_get(j, "error");
    assert_non_null(e);
    assert_true(json_is_string(json_object_get(e, "message")));
    assert_true(json_is_string(json_object_get(e, "type")));
    assert_true(json_is_null(json_object_get(e, "param")));
    assert_non_null(json_object_get(e, "code"));
    json_incref(e);
    json_decref(j);
    return e;
}

/* ---------------------------------------------------------------- errors */

static void test_anthropic_errors(void **state)
{
    const mr_adapter_t *a = &mr_adapter_anthropic;
    mr_provider_t p = provider(MR_KIND_ANTHROPIC, "http://x/v1");
    static const char overloaded[] =
        "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}";
    static const char invalid[] =
        "{\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\","
        "\"message\":\"max_tokens: too big\"}}";
    mr_buf_t b;
    json_t *e;
    (void)state;

    assert_true(a->retryable(529, overloaded, strlen(overloaded)));
    assert_true(a->retryable(429, "", 0));
    assert_true(a->retryable(500, "x", 1));
    assert_true(a->retryable(408, "", 0));
    /* overloaded_error is retryable whatever the status */
    assert_true(a->retryable(400, overloaded, strlen(overloaded)));
    assert_false(a->retryable(400, invalid, strlen(invalid)));
    assert_false(a->retryable(401, "not json", 8));

    mr_buf_init(&b, 4096);
    a->translate_error(&p, 529, overloaded, strlen(overloaded), &b);
    e = error_of(&b);
    assert_string_equal(json_string_value(json_object_get(e, "message")), "Overloaded");
    assert_string_equal(json_string_value(json_object_get(e, "code")), "overloaded_error");
    assert_string_equal(json_string_value(json_object_get(e, "type")), "service_unavailable_error");
    json_decref(e);
    mr_buf_reset(&b);
    a->translate_error(&p, 400, invalid, strlen(invalid), &b);
    e = error_of(&b);
    assert_string_equal(json_string_value(json_object_get(e, "message")), "max_tokens: too big");
    assert_string_equal(json_string_value(json_object_get(e, "type")), "invalid_request_error");
    json_decref(e);
    mr_buf_reset(&b);
    /* not JSON: the status and a printable snippet */
    a->translate_error(&p, 502,
                       "<html>\x01"
                       "bad gateway</html>",
                       25, &b);
    e = error_of(&b);
    assert_non_null(strstr(json_string_value(json_object_get(e, "message")), "HTTP 502"));
    assert_non_null(strstr(json_string_value(json_object_get(e, "message")), "?bad gateway"));
    assert_string_equal(json_string_value(json_object_get(e, "code")), "upstream_error");
    json_decref(e);
    mr_buf_free(&b);
}

static void test_gemini_errors(void **state)
{
    const mr_adapter_t *g = &mr_adapter_gemini;
    mr_provider_t p = provider(MR_KIND_GEMINI, "http://x/v1beta");
    static const char quota[] = "{\"error\":{\"code\":429,\"message\":\"Quota exceeded\","
                                "\"status\":\"RESOURCE_EXHAUSTED\"}}";
    static const char arr[] = "[{\"error\":{\"code\":400,\"message\":\"API key not valid\","
                              "\"status\":\"INVALID_ARGUMENT\"}}]";
    mr_buf_t b;
    json_t *e;
    (void)state;

    assert_true(g->retryable(429, quota, strlen(quota)));
    assert_true(g->retryable(503, "", 0));
    assert_false(g->retryable(400, arr, strlen(arr)));
    mr_buf_init(&b, 4096);
    g->translate_error(&p, 429, quota, strlen(quota), &b);
    e = error_of(&b);
    assert_string_equal(json_string_value(json_object_get(e, "message")), "Quota exceeded");
    assert_string_equal(json_string_value(json_object_get(e, "code")), "resource_exhausted");
    assert_string_equal(json_string_value(json_object_get(e, "type")), "rate_limit_error");
    json_decref(e);
    mr_buf_reset(&b);
    g->translate_error(&p, 400, arr, strlen(arr), &b);
    e = error_of(&b);
    assert_string_equal(json_string_value(json_object_get(e, "message")), "API key not valid");
    assert_string_equal(json_string_value(json_object_get(e, "code")), "invalid_argument");
    json_decref(e);
    mr_buf_free(&b);
}

/* ---------------------------------------------------------------- requests */

static void build(const mr_adapter_t *ad, const mr_provider_t *p, mr_endpoint_t ep,
                  const char *body, const char *const *extra, mr_adapter_req_t *req)
{
    mr_adapter_in_t in;
    mr_error_t err;
    json_t *j = json_loads(body, 0, NULL);
    assert_non_null(j);
    memset(&in, 0, sizeof(in));
    in.provider = p;
    in.endpoint = ep;
    in.model = "m-1";
    in.stream = json_is_true(json_object_get(j, "stream"));
    in.body = body;
    in.body_len = strlen(body);
    in.json = j;
    in.extra_headers = extra;
    if (ad->build(&in, req, &err) != 0)
        fail_msg("build: %s", err.message);
    json_decref(j);
}

static int has_header(const mr_adapter_req_t *r, const char *line)
{
    for (const struct curl_slist *h = r->headers; h; h = h->next)
        if (strcmp(h->data, line) == 0)
            return 1;
    return 0;
}

static int count_prefix(const mr_adapter_req_t *r, const char *prefix)
{
    int n = 0;
    for (const struct curl_slist *h = r->headers; h; h = h->next)
        n += strncasecmp(h->data, prefix, strlen(prefix)) == 0;
    return n;
}

static void test_headers(void **state)
{
    mr_provider_t pa = provider(MR_KIND_ANTHROPIC, "http://a/v1");
    mr_provider_t pg = provider(MR_KIND_GEMINI, "http://g/v1beta");
    mr_provider_t pz = provider(MR_KIND_AZURE, "http://z");
    const char *extra[] = {"anthropic-beta: tools-2024", "anthropic-version: 2024-01-01", NULL};
    mr_adapter_req_t r;
    (void)state;

    build(&mr_adapter_anthropic, &pa, MR_EP_CHAT, "{\"messages\":[]}", extra, &r);
    assert_string_equal(r.url, "http://a/v1/messages");
    assert_true(has_header(&r, "x-api-key: sk-secret-key"));
    assert_true(has_header(&r, "anthropic-beta: tools-2024"));
    /* a forwarded anthropic-version replaces ours: sent once */
    assert_int_equal(count_prefix(&r, "anthropic-version:"), 1);
    assert_true(has_header(&r, "anthropic-version: 2024-01-01"));
    assert_int_equal(count_prefix(&r, "authorization:"), 0);
    mr_adapter_req_free(&r);

    build(&mr_adapter_gemini, &pg, MR_EP_CHAT, "{\"messages\":[],\"stream\":true}", NULL, &r);
    assert_string_equal(r.url, "http://g/v1beta/models/m-1:streamGenerateContent?alt=sse");
    assert_true(has_header(&r, "x-goog-api-key: sk-secret-key"));
    assert_int_equal(count_prefix(&r, "authorization:"), 0);
    mr_adapter_req_free(&r);

    build(&mr_adapter_azure, &pz, MR_EP_CHAT, "{\"model\":\"x\",\"messages\":[]}", NULL, &r);
    assert_string_equal(r.url,
                        "http://z/openai/deployments/m-1/chat/completions?api-version=2024-10-21");
    assert_true(has_header(&r, "api-key: sk-secret-key"));
    assert_int_equal(count_prefix(&r, "authorization:"), 0);
    mr_adapter_req_free(&r);

    /* no key configured: no credentials header at all */
    pa.api_key = NULL;
    build(&mr_adapter_anthropic, &pa, MR_EP_CHAT, "{\"messages\":[]}", NULL, &r);
    assert_int_equal(count_prefix(&r, "x-api-key:"), 0);
    mr_adapter_req_free(&r);
}

static void test_model_in_url_is_escaped(void **state)
{
    mr_provider_t pg = provider(MR_KIND_GEMINI, "http://g/v1beta");
    mr_adapter_in_t in;
    mr_adapter_req_t r;
    mr_error_t err;
    json_t *j = json_loads("{\"messages\":[]}", 0, NULL);
    (void)state;
    memset(&in, 0, sizeof(in));
    in.provider = &pg;
    in.model = "models/gem ini?x#y";
    in.body = "{\"messages\":[]}";
    in.body_len = strlen(in.body);
    in.json = j;
    assert_int_equal(mr_adapter_gemini.build(&in, &r, &err), 0);
    assert_string_equal(r.url, "http://g/v1beta/models/gem%20ini%3Fx%23y:generateContent");
    mr_adapter_req_free(&r);
    /* dot segments would move the request (and key) to another path once
     * curl resolves them: refused; dots inside a name are fine */
    static const char *const dots[] = {"../../v1/files", "models/..", "a/./b", ".", ".."};
    for (size_t i = 0; i < sizeof(dots) / sizeof(dots[0]); i++) {
        in.model = dots[i];
        assert_int_equal(mr_adapter_gemini.build(&in, &r, &err), -1);
        assert_int_equal(err.status, 400);
    }
    in.model = "gemini-1.5..flash/.x";
    assert_int_equal(mr_adapter_gemini.build(&in, &r, &err), 0);
    assert_string_equal(r.url, "http://g/v1beta/models/gemini-1.5..flash/.x:generateContent");
    mr_adapter_req_free(&r);
    mr_provider_t pz = provider(MR_KIND_AZURE, "http://z");
    in.provider = &pz;
    in.model = "..";
    assert_int_equal(mr_adapter_azure.build(&in, &r, &err), -1);
    assert_int_equal(err.status, 400);
    in.model = "../x"; /* '/' is escaped in a deployment: one segment */
    assert_int_equal(mr_adapter_azure.build(&in, &r, &err), 0);
    assert_string_equal(
        r.url, "http://z/openai/deployments/..%2Fx/chat/completions?api-version=2024-10-21");
    mr_adapter_req_free(&r);
    json_decref(j);
}

/* A client may spell a member with escapes ("provid\u0065r" is "provider" to
 * every JSON parser): the gateway routes on the decoded name, so the OpenAI
 * dialects must strip and rewrite that spelling too, never forward the
 * gateway-only members, the route name or a second stream_options. */
static void test_escaped_members(void **state)
{
    static const char *const strip[] = {"provider", "models", NULL};
    static const char body[] =
        "{\"mod\\u0065l\":\"chat\",\"provid\\u0065r\":{\"only\":[\"a\"]},\"m\\u006fdels\":[\"x\"],"
        "\"messages\":[],\"stream\":true,\"stream_opti\\u006fns\":{\"include_usage\":false}}";
    mr_provider_t po = provider(MR_KIND_OPENAI, "http://o/v1");
    mr_provider_t pz = provider(MR_KIND_AZURE, "http://z");
    const mr_provider_t *ps[] = {&po, &pz};
    json_t *j = json_loads(body, JSON_REJECT_DUPLICATES, NULL);
    (void)state;
    assert_non_null(j);
    for (size_t i = 0; i < 2; i++) {
        mr_adapter_in_t in = {.provider = ps[i],
                              .endpoint = MR_EP_CHAT,
                              .model = "m-1",
                              .stream = 1,
                              .body = body,
                              .body_len = strlen(body),
                              .json = j,
                              .strip = strip};
        mr_adapter_req_t r;
        mr_error_t err;
        assert_int_equal(mr_adapter_for(ps[i]->kind)->build(&in, &r, &err), 0);
        json_t *up = json_loadb(r.body, r.body_len, JSON_REJECT_DUPLICATES, NULL);
        if (!up)
            fail_msg("not JSON without duplicates: %.*s", (int)r.body_len, r.body);
        assert_null(json_object_get(up, "provider"));
        assert_null(json_object_get(up, "models"));
        assert_string_equal(json_string_value(json_object_get(up, "model")), "m-1");
        assert_true(
            json_is_true(json_object_get(json_object_get(up, "stream_options"), "include_usage")));
        json_decref(up);
        mr_adapter_req_free(&r);
    }
    json_decref(j);

    /* jansson skips a NUL after a number; the raw bytes would then hide
     * members from the edits: refused as not JSON */
    static const char nul[] = "{\"x\":1\0,\"model\":\"chat\",\"provider\":{}}";
    j = json_loadb(nul, sizeof(nul) - 1, JSON_REJECT_DUPLICATES, NULL);
    if (j) { /* this jansson accepts it */
        mr_adapter_in_t in = {.provider = &po,
                              .endpoint = MR_EP_CHAT,
                              .model = "m-1",
                              .body = nul,
                              .body_len = sizeof(nul) - 1,
                              .json = j,
                              .strip = strip};
        mr_adapter_req_t r;
        mr_error_t err;
        assert_int_equal(mr_adapter_openai.build(&in, &r, &err), -1);
        assert_int_equal(err.status, 400);
        json_decref(j);
    }
}

/* ---------------------------------------------------------------- bounds */

static const char anthropic_start[] =
    "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\","
    "\"model\":\"claude\",\"usage\":{\"input_tokens\":1}}}\n\n"
    "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\","
    "\"text\":\"\"}}\n\n";

static void test_stream_line_bound(void **state)
{
    mr_provider_t p = provider(MR_KIND_ANTHROPIC, "http://a/v1");
    mr_adapter_in_t in = {.provider = &p, .model = "m", .stream = 1};
    mr_stream_xlate_t *x = mr_adapter_anthropic.stream_new(&in);
    mr_buf_t out;
    char *chunk = malloc(64 * 1024);
    int rc = 0;
    (void)state;

    memset(chunk, 'a', 64 * 1024);
    mr_buf_init(&out, 1 << 20);
    assert_int_equal(
        mr_adapter_anthropic.stream_feed(x, anthropic_start, sizeof(anthropic_start) - 1, &out), 0);
    assert_int_equal(mr_adapter_anthropic.stream_feed(x, "data: {\"x\":\"", 12, &out), 0);
    /* a line that never ends: fails once past 1 MiB, memory stays bounded */
    size_t fed = 0;
    while (rc == 0 && fed < 4u * 1024 * 1024) {
        rc = mr_adapter_anthropic.stream_feed(x, chunk, 64 * 1024, &out);
        fed += 64 * 1024;
    }
    assert_int_equal(rc, -1);
    assert_true(fed <= 1024 * 1024 + 64 * 1024);
    assert_non_null(strstr(mr_buf_ptr(&out), "larger than"));
    /* after a failure nothing more comes out */
    size_t len = mr_buf_len(&out);
    assert_int_equal(mr_adapter_anthropic.stream_feed(x, "\n\n", 2, &out), -1);
    assert_int_equal(mr_adapter_anthropic.stream_end(x, &out), -1);
    assert_int_equal(mr_buf_len(&out), len);
    mr_adapter_anthropic.stream_free(x);
    mr_buf_free(&out);
    free(chunk);
}

static void test_stream_output_ignores_limit(void **state)
{
    mr_provider_t p = provider(MR_KIND_ANTHROPIC, "http://a/v1");
    mr_adapter_in_t in = {.provider = &p, .model = "m", .stream = 1};
    mr_stream_xlate_t *x = mr_adapter_anthropic.stream_new(&in);
    mr_buf_t out;
    (void)state;

    /* like the openai adapter, stream output is appended past the limit:
     * the gateway pauses the upstream when its buffer is full */
    mr_buf_init(&out, 100);
    assert_int_equal(
        mr_adapter_anthropic.stream_feed(x, anthropic_start, sizeof(anthropic_start) - 1, &out), 0);
    assert_true(mr_buf_len(&out) > 100);
    assert_non_null(strstr(mr_buf_ptr(&out), "\"role\":\"assistant\""));
    mr_adapter_anthropic.stream_free(x);
    mr_buf_free(&out);
}

static void test_hostile_ids_are_bounded(void **state)
{
    mr_provider_t p = provider(MR_KIND_ANTHROPIC, "http://a/v1");
    mr_adapter_in_t in = {.provider = &p, .model = "fallback-model", .stream = 1};
    mr_stream_xlate_t *x = mr_adapter_anthropic.stream_new(&in);
    mr_buf_t out;
    size_t n = 300000;
    char *ev = malloc(n + 200);
    (void)state;

    /* a 300 kB message id and model: each chunk carries a short stand-in */
    int k = sprintf(ev, "data: {\"type\":\"message_start\",\"message\":{\"id\":\"");
    memset(ev + k, 'i', n);
    k += (int)n;
    k += sprintf(ev + k, "\",\"model\":\"\\u0000x\"}}\n\n");
    mr_buf_init(&out, 1 << 20);
    assert_int_equal(mr_adapter_anthropic.stream_feed(x, ev, (size_t)k, &out), 0);
    assert_true(mr_buf_len(&out) < 1024);
    assert_non_null(strstr(mr_buf_ptr(&out), "\"model\":\"fallback-model\""));
    assert_non_null(strstr(mr_buf_ptr(&out), "\"id\":\"chatcmpl-msg_"));
    mr_adapter_anthropic.stream_free(x);
    mr_buf_free(&out);
    free(ev);
}

static void test_malformed_answers(void **state)
{
    static const char *const bodies[] = {"", "[]", "{\"content\":\"x\"}", "not json", "{}"};
    mr_provider_t pa = provider(MR_KIND_ANTHROPIC, "http://a/v1");
    mr_provider_t pg = provider(MR_KIND_GEMINI, "http://g/v1beta");
    mr_adapter_in_t ia = {.provider = &pa, .model = "m"}, ig = {.provider = &pg, .model = "m"};
    mr_buf_t out;
    mr_usage_t u;
    mr_error_t err;
    (void)state;

    mr_buf_init(&out, 1 << 20);
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        assert_int_equal(
            mr_adapter_anthropic.translate(&ia, bodies[i], strlen(bodies[i]), &out, &u, &err), -1);
        assert_int_equal(err.status, 502);
        assert_int_equal(
            mr_adapter_gemini.translate(&ig, bodies[i], strlen(bodies[i]), &out, &u, &err), -1);
        assert_int_equal(mr_buf_len(&out), 0);
    }
    mr_buf_free(&out);
}

/* With the gateway's scan (intake.c) the OpenAI dialects read the members'
 * places from it and no parse tree: the upstream body is the same, byte for
 * byte, as when they look for the members themselves in the parsed body. */
static void test_scanned_body_same_bytes(void **state)
{
    static const char *const strip[] = {"provider", "models", NULL};
    static const char *const keys[] = {"model",  "stream",   "stream_options",
                                       "models", "provider", NULL};
    static const char *const bodies[] = {
        "{\"model\":\"chat\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
        "{ \"messages\": [], \"model\" : \"chat\" , \"stream\":true }",
        "{\"model\":\"chat\",\"stream\":true,\"stream_options\":{\"x\":1}}",
        "{\"model\":\"chat\",\"stream\":true,\"stream_options\":{\"include_usage\":true}}",
        "{\"mod\\u0065l\":\"chat\",\"stream\":true,\"provider\":{\"only\":[\"a\"]},\"models\":[]}",
        "{\"stream\":true}",
    };
    mr_provider_t po = provider(MR_KIND_OPENAI, "http://o/v1");
    (void)state;
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        const char *b = bodies[i];
        json_t *j = json_loads(b, JSON_REJECT_DUPLICATES, NULL);
        mr_json_scan_t sc = {.keys = keys};
        mr_adapter_in_t in = {.provider = &po,
                              .endpoint = MR_EP_CHAT,
                              .model = "m-1",
                              .stream = strstr(b, "\"stream\":true") != NULL,
                              .client_wants_usage = strstr(b, "\"include_usage\":true") != NULL,
                              .body = b,
                              .body_len = strlen(b),
                              .json = j,
                              .strip = strip};
        mr_adapter_req_t plain, scanned;
        mr_error_t err;
        assert_non_null(j);
        assert_int_equal(mr_json_scan(b, strlen(b), &sc), 0);
        assert_int_equal(mr_adapter_openai.build(&in, &plain, &err), 0);
        in.scan = &sc;
        in.json = NULL;
        assert_int_equal(mr_adapter_openai.build(&in, &scanned, &err), 0);
        if (plain.body_len != scanned.body_len || memcmp(plain.body, scanned.body, plain.body_len))
            fail_msg("#%zu: %.*s != %.*s", i, (int)plain.body_len, plain.body,
                     (int)scanned.body_len, scanned.body);
        mr_adapter_req_free(&plain);
        mr_adapter_req_free(&scanned);
        json_decref(j);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sse_fields_and_line_ends),
        cmocka_unit_test(test_sse_limits),
        cmocka_unit_test(test_anthropic_errors),
        cmocka_unit_test(test_gemini_errors),
        cmocka_unit_test(test_headers),
        cmocka_unit_test(test_model_in_url_is_escaped),
        cmocka_unit_test(test_escaped_members),
        cmocka_unit_test(test_scanned_body_same_bytes),
        cmocka_unit_test(test_stream_line_bound),
        cmocka_unit_test(test_stream_output_ignores_limit),
        cmocka_unit_test(test_hostile_ids_are_bounded),
        cmocka_unit_test(test_malformed_answers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
