/*
 * Golden tests of the inbound dialects' codecs (Anthropic Messages, OpenAI
 * Responses) against every target dialect, through the conversation model.
 * Fixtures under tests/golden/<client>-<target>/:
 *
 *   request/<case>.in.json       the client's body
 *   request/<case>.history.json  optional (responses): the stored items a
 *                                previous_response_id resolved to
 *   request/<case>.out.json      the upstream body the target gets
 *   request/<case>.err           instead: the 400's code
 *   request/<case>.dropped       optional: the members the model records
 *                                as dropped, one a line, in order
 *   response/<case>.in.json      the target's complete answer
 *   response/<case>.out.json     the client's body (or .err: the code)
 *   stream/<case>.in.sse         the target's event stream
 *   stream/<case>.out.sse        the client's event stream
 *   {response,stream}/<case>.req.json  optional: the client's request
 *
 * Clients: messages (messages_parse, messages_write), responses
 * (responses_parse, responses_write). Targets: openai (chat_emit,
 * chat_answer), anthropic and gemini (their adapters' emitters and
 * parsers). Bodies are compared as JSON values, streams event by event;
 * every stream is also fed split at every byte and one byte at a time and
 * must give the same bytes. Streams are checked for their dialect's shape
 * (event names, block / item indexes, sequence numbers, one terminal
 * event, tool arguments that parse). MERIDIAN_GOLDEN_UPDATE=1 rewrites the
 * expected files (review the diff).
 */
#include "meridian/adapter.h"
#include "meridian/chat_answer.h"
#include "meridian/chat_emit.h"
#include "meridian/messages_parse.h"
#include "meridian/messages_write.h"
#include "meridian/responses_parse.h"
#include "meridian/responses_write.h"
#include "meridian/sse.h"

#include "../../src/providers/anthropic.h"
#include "../../src/providers/gemini.h"

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

#define GOLDEN MERIDIAN_SOURCE_DIR "/tests/golden"
#define OUT_LIMIT (8u * 1024 * 1024)
#define MAX_CASES 128

_Static_assert((int)MR_CODEC_MALFORMED == (int)MR_XLATE_MALFORMED &&
                   (int)MR_CODEC_UPSTREAM_ERROR == (int)MR_XLATE_UPSTREAM_ERROR &&
                   (int)MR_CODEC_TRUNCATED == (int)MR_XLATE_TRUNCATED,
               "stream parser results are shared with the translating adapters");

typedef enum { MESSAGES, RESPONSES } client_t;
typedef enum { OPENAI, ANTHROPIC, GEMINI } target_t;

typedef struct pair {
    const char *dir;
    client_t client;
    target_t target;
} pair_t;

static const char *const kinds[] = {"openai", "anthropic", "gemini"};

static int updating(void)
{
    const char *v = getenv("MERIDIAN_GOLDEN_UPDATE");
    return v && *v && strcmp(v, "0") != 0;
}

/* ---------------------------------------------------------------- files */

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long n;

    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    buf[n] = '\0';
    if (len)
        *len = (size_t)n;
    return buf;
}

static void spit(const char *path, const char *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    fclose(f);
}

static json_t *load(const char *path, int must)
{
    json_error_t e;
    json_t *j = json_load_file(path, JSON_REJECT_DUPLICATES, &e);

    if (!j && must)
        fail_msg("%s: %s (line %d)", path, e.text, e.line);
    return j;
}

static void check_json(const char *path, json_t *got, const char *what)
{
    json_t *want;

    if (updating()) {
        char *s = json_dumps(got, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15));
        size_t n = strlen(s);
        s = realloc(s, n + 2);
        s[n] = '\n';
        spit(path, s, n + 1);
        free(s);
    }
    want = load(path, 1);
    if (!json_equal(got, want))
        fail_msg("%s differs; got:\n%s", what,
                 json_dumps(got, JSON_INDENT(2) | JSON_PRESERVE_ORDER));
    json_decref(want);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static size_t cases(const char *dir, const char *suffix, char **names)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    size_t n = 0, sl = strlen(suffix);

    if (!d)
        fail_msg("no fixtures in %s", dir);
    while ((e = readdir(d)) && n < MAX_CASES) {
        size_t l = strlen(e->d_name);
        if (l > sl && strcmp(e->d_name + l - sl, suffix) == 0)
            names[n++] = strndup(e->d_name, l - sl);
    }
    closedir(d);
    qsort(names, n, sizeof(*names), by_name);
    if (n == 0)
        fail_msg("no %s fixtures in %s", suffix, dir);
    return n;
}

static char *path_of(const pair_t *p, const char *kind, const char *name, const char *suffix)
{
    char *s;
    assert_true(asprintf(&s, "%s/%s/%s/%s%s", GOLDEN, p->dir, kind, name, suffix) > 0);
    return s;
}

/* An error fixture: the code the case must fail with, or NULL. */
static char *want_error(const pair_t *p, const char *kind, const char *name)
{
    char *path = path_of(p, kind, name, ".err");
    char *code = slurp(path, NULL);

    free(path);
    if (code)
        code[strcspn(code, "\n")] = '\0';
    return code;
}

/* ---------------------------------------------------------------- targets */

static const mr_provider_t *provider(target_t t)
{
    static mr_provider_t p[3];
    static const char *const base[] = {"https://api.openai.test/v1",
                                       "https://api.anthropic.test/v1",
                                       "https://gemini.test/v1beta"};
    static const mr_provider_kind_t kind[] = {MR_KIND_OPENAI, MR_KIND_ANTHROPIC, MR_KIND_GEMINI};

    p[t] = (mr_provider_t){.name = (char *)"test-provider",
                           .kind = kind[t],
                           .base_url = (char *)(uintptr_t)base[t],
                           .api_key = (char *)"test-key",
                           .vendor = (char *)"test-vendor",
                           .region = (char *)"",
                           .jurisdiction = (char *)"",
                           .enabled = true};
    return &p[t];
}

static void adapter_in(target_t t, const json_t *body, const mr_conv_req_t *conv,
                       mr_adapter_in_t *in)
{
    *in = (mr_adapter_in_t){.provider = provider(t),
                            .endpoint = MR_EP_CHAT,
                            .model = "test-model",
                            .stream = conv ? conv->stream : 0,
                            .client_wants_usage = 1,
                            .json = body,
                            .created = 1700000000,
                            .conv = conv};
}

static int parse_client(const pair_t *p, const json_t *body, const json_t *history,
                        mr_conv_req_t **r, mr_error_t *err)
{
    return p->client == MESSAGES ? mr_messages_parse(body, r, err)
                                 : mr_responses_parse(body, history, r, err);
}

/* The upstream body the target gets for the client's body. */
static json_t *upstream_body(const pair_t *p, const json_t *body, const json_t *history,
                             mr_conv_req_t **r, mr_error_t *err)
{
    mr_chat_emit_opts_t o = {.model = "test-model"};
    mr_adapter_in_t in;
    mr_adapter_req_t req = {0};
    char *text = NULL;
    size_t len = 0;
    json_t *out;

    if (parse_client(p, body, history, r, err) < 0)
        return NULL;
    if (p->target == OPENAI) {
        o.stream = (*r)->stream;
        if (mr_chat_emit_body(*r, &o, &text, &len, err) < 0)
            return NULL;
    } else {
        adapter_in(p->target, body, *r, &in);
        if ((p->target == ANTHROPIC ? mr_adapter_anthropic : mr_adapter_gemini)
                .build(&in, &req, err) < 0)
            return NULL;
        assert_null(strstr(req.body, "test-key"));
        text = req.body;
        len = req.body_len;
        req.body = NULL;
        mr_adapter_req_free(&req);
    }
    out = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
    if (!out)
        fail_msg("%s: the upstream body is not JSON: %s", p->dir, text);
    free(text);
    return out;
}

static void check_dropped(const pair_t *p, const char *name, const mr_conv_req_t *r)
{
    char *path = path_of(p, "request", name, ".dropped");
    char *want = slurp(path, NULL), *got = calloc(1, 4096);

    assert_non_null(got);
    for (size_t i = 0; i < r->n_dropped; i++)
        snprintf(got + strlen(got), 4096 - strlen(got), "%s\n", r->dropped[i].p);
    if (updating() && (want || r->n_dropped))
        spit(path, got, strlen(got));
    free(want);
    want = slurp(path, NULL);
    if (strcmp(want ? want : "", got) != 0)
        fail_msg("%s/%s: dropped members differ; got:\n%s", p->dir, name, got);
    free(want);
    free(got);
    free(path);
}

static void run_requests(const pair_t *p)
{
    char dir[512], *names[MAX_CASES];
    size_t n;

    snprintf(dir, sizeof(dir), "%s/%s/request", GOLDEN, p->dir);
    n = cases(dir, ".in.json", names);
    for (size_t i = 0; i < n; i++) {
        char *in_path = path_of(p, "request", names[i], ".in.json");
        char *hist_path = path_of(p, "request", names[i], ".history.json");
        char *out_path = path_of(p, "request", names[i], ".out.json");
        char *code = want_error(p, "request", names[i]);
        json_t *body = load(in_path, 1), *history = load(hist_path, 0), *got;
        mr_conv_req_t *r = NULL;
        mr_error_t err = {0};

        got = upstream_body(p, body, history, &r, &err);
        if (code) {
            if (got)
                fail_msg("%s/%s: succeeded, expected error %s", p->dir, names[i], code);
            if (err.status != 400 || !err.code || strcmp(err.code, code) != 0)
                fail_msg("%s/%s: error %d %s (%s), expected 400 %s", p->dir, names[i], err.status,
                         err.code ? err.code : "null", err.message, code);
        } else {
            char what[300];
            if (!got)
                fail_msg("%s/%s: failed: %d %s", p->dir, names[i], err.status, err.message);
            snprintf(what, sizeof(what), "%s/%s: the upstream body", p->dir, names[i]);
            check_json(out_path, got, what);
            check_dropped(p, names[i], r);
        }
        json_decref(got);
        json_decref(body);
        json_decref(history);
        mr_conv_req_free(r);
        free(code);
        free(in_path);
        free(hist_path);
        free(out_path);
        free(names[i]);
    }
}

/* ---------------------------------------------------------------- answers */

static json_t *client_request(const pair_t *p, const char *kind, const char *name)
{
    char *path = path_of(p, kind, name, ".req.json");
    json_t *j = load(path, 0);

    free(path);
    return j ? j : json_pack("{s:s}", "model", "client-model");
}

static int parse_answer(const pair_t *p, const json_t *root, const char *raw, size_t len,
                        mr_conv_answer_t *a, mr_error_t *err)
{
    mr_chat_answer_in_t cin = {.model = "test-model", .kind = "openai"};
    mr_adapter_in_t in;

    if (p->target == OPENAI)
        return mr_chat_answer_parse(&cin, root, a, err);
    adapter_in(p->target, NULL, NULL, &in);
    return (p->target == ANTHROPIC ? &mr__anthropic_parser : &mr__gemini_parser)
        ->answer(&in, root, raw, len, a, err);
}

static mr_responses_ctx_t responses_ctx(const pair_t *p, const json_t *req)
{
    return (mr_responses_ctx_t){.id = "resp_test",
                                .created_at = 1700000000,
                                .request = req,
                                .model = "test-model",
                                .origin = kinds[p->target]};
}

static void run_responses(const pair_t *p)
{
    char dir[512], *names[MAX_CASES];
    size_t n;

    snprintf(dir, sizeof(dir), "%s/%s/response", GOLDEN, p->dir);
    n = cases(dir, ".in.json", names);
    for (size_t i = 0; i < n; i++) {
        char *in_path = path_of(p, "response", names[i], ".in.json");
        char *out_path = path_of(p, "response", names[i], ".out.json");
        char *code = want_error(p, "response", names[i]);
        json_t *req = client_request(p, "response", names[i]), *root, *entry = NULL, *got;
        size_t len;
        char *raw = slurp(in_path, &len), what[300];
        mr_responses_ctx_t ctx = responses_ctx(p, req);
        mr_conv_answer_t a;
        mr_error_t err = {0};
        mr_buf_t out;
        int rc;

        assert_non_null(raw);
        root = json_loadb(raw, len, 0, NULL);
        assert_int_equal(mr_conv_answer_init(&a, root), 0);
        mr_buf_init(&out, OUT_LIMIT);
        rc = parse_answer(p, root, raw, len, &a, &err);
        if (rc == 0)
            rc = p->client == MESSAGES
                     ? mr_messages_write_answer(&a, &out, &err)
                     : mr_responses_write_answer(&a, &ctx, NULL, &out, &entry, &err);
        snprintf(what, sizeof(what), "%s/%s: the client's body", p->dir, names[i]);
        if (code) {
            if (rc == 0 || !err.code || strcmp(err.code, code) != 0)
                fail_msg("%s: %d %s, expected error %s", what, rc, err.code ? err.code : "", code);
        } else {
            if (rc != 0)
                fail_msg("%s: failed: %s", what, err.message);
            got = json_loadb(mr_buf_ptr(&out), mr_buf_len(&out), JSON_REJECT_DUPLICATES, NULL);
            assert_non_null(got);
            check_json(out_path, got, what);
            /* what the store keeps: the same response, and the input */
            if (entry)
                assert_true(json_equal(json_object_get(entry, "response"), got));
            json_decref(got);
        }
        json_decref(entry);
        json_decref(root);
        json_decref(req);
        mr_conv_answer_free(&a);
        mr_buf_free(&out);
        free(raw);
        free(code);
        free(in_path);
        free(out_path);
        free(names[i]);
    }
}

/* ---------------------------------------------------------------- streams */

/* The gateway's glue, as the wiring step will have it: SSE -> the target's
 * stream parser -> the client's writer; a failure becomes the client
 * dialect's error event. */
typedef struct glue {
    const pair_t *p;
    mr_sse_t sse;
    mr_chat_stream_t chat;
    void *xstate;
    const mr_xlate_parser_t *xp;
    mr_messages_writer_t mw;
    mr_responses_writer_t rw;
    mr_conv_sink_t sink;
    mr_buf_t out;
    int failed, ended;
    json_t *final_resp; /* what on_final saw */
    size_t final_at;
} glue_t;

static void on_final(void *arg, const json_t *response, const json_t *sealed)
{
    glue_t *g = arg;

    assert_true(json_is_array(sealed));
    assert_null(g->final_resp);
    g->final_resp = json_deep_copy(response);
    g->final_at = mr_buf_len(&g->out);
}

static void glue_init(glue_t *g, const pair_t *p, const json_t *req)
{
    mr_adapter_in_t in;
    mr_chat_answer_in_t cin = {.model = "test-model", .kind = "openai"};
    mr_responses_ctx_t ctx = responses_ctx(p, req);

    memset(g, 0, sizeof(*g));
    g->p = p;
    mr_sse_init(&g->sse, 1 << 20, 1 << 20);
    mr_buf_init(&g->out, OUT_LIMIT);
    if (p->target == OPENAI) {
        mr_chat_stream_init(&g->chat, &cin);
    } else {
        g->xp = p->target == ANTHROPIC ? &mr__anthropic_parser : &mr__gemini_parser;
        g->xstate = calloc(1, g->xp->stream_size);
        adapter_in(p->target, NULL, NULL, &in);
        g->xp->stream_init(g->xstate, &in);
    }
    if (p->client == MESSAGES) {
        mr_messages_writer_init(&g->mw, -1);
        g->mw.out = &g->out;
        g->sink = (mr_conv_sink_t){mr_messages_write_event, &g->mw};
    } else {
        assert_int_equal(mr_responses_writer_init(&g->rw, &ctx), 0);
        g->rw.out = &g->out;
        g->rw.on_final = on_final;
        g->rw.on_final_arg = g;
        g->sink = (mr_conv_sink_t){mr_responses_write_event, &g->rw};
    }
}

static void glue_free(glue_t *g)
{
    mr_sse_free(&g->sse);
    free(g->xstate);
    if (g->p->client == MESSAGES)
        mr_messages_writer_free(&g->mw);
    else
        mr_responses_writer_free(&g->rw);
    json_decref(g->final_resp);
}

static int on_event(void *ctx, const char *event, const char *data, size_t len)
{
    glue_t *g = ctx;
    int rc = g->p->target == OPENAI ? mr_chat_stream_event(&g->chat, data, len, &g->sink)
                                    : g->xp->stream_event(g->xstate, event, data, len, &g->sink);

    if (rc == 0 && g->p->client == MESSAGES && mr_messages_writer_flush(&g->mw) < 0)
        rc = -1;
    if (rc == 0 && g->p->client == MESSAGES && mr_messages_writer_failed(&g->mw))
        rc = MR_CODEC_UPSTREAM_ERROR; /* the writer ended the stream */
    return rc;
}

static void glue_fail(glue_t *g, int rc)
{
    static const char *const why[] = {
        [MR_CODEC_MALFORMED] = "provider test-provider sent a malformed event stream",
        [MR_CODEC_TRUNCATED] = "provider test-provider ended the stream before the answer did",
    };
    const char *msg = rc > 0 && rc <= MR_CODEC_TRUNCATED && why[rc] ? why[rc] : "stream failed";

    g->failed = 1;
    if (rc == MR_CODEC_UPSTREAM_ERROR)
        return; /* the writer has written it */
    if (g->p->client == MESSAGES)
        mr_messages_write_error(&g->out, "api_error", msg);
    else
        assert_int_equal(mr_responses_write_failed(&g->rw, "server_error", msg), 0);
}

static void glue_feed(glue_t *g, const char *p, size_t n)
{
    int rc;

    if (g->failed)
        return;
    if ((rc = mr_sse_feed(&g->sse, p, n, on_event, g)) != 0)
        glue_fail(g, rc);
}

static void glue_end(glue_t *g)
{
    int rc;

    if (g->failed)
        return;
    rc = mr_sse_finish(&g->sse, on_event, g);
    if (rc == 0)
        rc = g->p->target == OPENAI ? mr_chat_stream_end(&g->chat, &g->sink)
                                    : g->xp->stream_end(g->xstate, &g->sink);
    if (rc != 0)
        glue_fail(g, rc);
}

/* Feeds text in pieces ending at cuts[]; returns the glue (caller frees). */
static void run_stream(glue_t *g, const pair_t *p, const json_t *req, const char *text,
                       const size_t *cuts, size_t ncuts)
{
    size_t at = 0;

    glue_init(g, p, req);
    for (size_t i = 0; i < ncuts; i++) {
        glue_feed(g, text + at, cuts[i] - at);
        at = cuts[i];
    }
    glue_end(g);
}

/* "event: X\ndata: J\n\n" events as [[X, J], ...] */
static json_t *events_of(const char *p, size_t n, const char *what)
{
    json_t *arr = json_array();
    const char *end = p + n;

    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p)), *sep = NULL;
        json_t *data;
        if (!nl || strncmp(p, "event: ", 7) != 0 || strncmp(nl + 1, "data: ", 6) != 0 ||
            !(sep = strstr(nl + 1, "\n\n")))
            fail_msg("%s: not an event: %.*s", what, (int)(end - p), p);
        data = json_loadb(nl + 7, (size_t)(sep - nl - 7), JSON_REJECT_DUPLICATES, NULL);
        if (!json_is_object(data))
            fail_msg("%s: data is not a JSON object: %.*s", what, (int)(sep - nl - 7), nl + 7);
        json_array_append_new(arr, json_pack("[s%, o]", p + 7, (size_t)(nl - p - 7), data));
        p = sep + 2;
    }
    return arr;
}

static const char *type_of(const json_t *data)
{
    return json_string_value(json_object_get(data, "type"));
}

static void check_args(json_t *args, const char *what)
{
    const char *k;
    json_t *v;

    json_object_foreach(args, k, v)
    {
        json_t *parsed = json_loads(json_string_value(v), 0, NULL);
        if (!json_is_object(parsed))
            fail_msg("%s: tool %s arguments are not a JSON object: %s", what, k,
                     json_string_value(v));
        json_decref(parsed);
    }
}

/* message_start first; blocks opened, filled and closed in index order;
 * message_delta then message_stop last, or error last. */
static void check_messages_shape(const json_t *events, const char *what)
{
    json_t *args = json_object(), *ev;
    long open = -1, next = 0;
    size_t i, n = json_array_size(events);
    int error =
        n && strcmp(type_of(json_array_get(json_array_get(events, n - 1), 1)), "error") == 0;

    json_array_foreach(events, i, ev)
    {
        const char *name = json_string_value(json_array_get(ev, 0));
        const json_t *d = json_array_get(ev, 1);
        const char *type = type_of(d);
        char key[32];
        if (!type || strcmp(name, type) != 0)
            fail_msg("%s: event %zu: name %s, type %s", what, i, name, type ? type : "none");
        if (i == 0 && strcmp(type, "message_start") != 0 && !error)
            fail_msg("%s: the first event is %s", what, type);
        if (strcmp(type, "content_block_start") == 0) {
            assert_int_equal(open, -1);
            open = json_integer_value(json_object_get(d, "index"));
            assert_int_equal(open, next++);
        } else if (strcmp(type, "content_block_delta") == 0 ||
                   strcmp(type, "content_block_stop") == 0) {
            assert_int_equal(json_integer_value(json_object_get(d, "index")), open);
            const json_t *pj = json_object_get(json_object_get(d, "delta"), "partial_json");
            snprintf(key, sizeof(key), "%ld", open);
            if (pj) {
                const char *old = json_string_value(json_object_get(args, key));
                char *joined;
                assert_true(asprintf(&joined, "%s%s", old ? old : "", json_string_value(pj)) >= 0);
                json_object_set_new(args, key, json_string(joined));
                free(joined);
            }
            if (type[14] == 's')
                open = -1;
        } else if (strcmp(type, "message_delta") == 0) {
            assert_int_equal(open, -1);
        }
    }
    if (!error && n &&
        strcmp(type_of(json_array_get(json_array_get(events, n - 1), 1)), "message_stop") != 0)
        fail_msg("%s: the stream does not end with message_stop", what);
    if (!error)
        check_args(args, what);
    json_decref(args);
}

/* sequence_number 0, 1, 2...; created first; exactly one terminal event,
 * last; deltas only into the open item. */
static void check_responses_shape(const json_t *events, const char *what)
{
    json_t *args = json_object(), *ev;
    size_t i, n = json_array_size(events), terminals = 0;
    long open = -1;

    json_array_foreach(events, i, ev)
    {
        const char *name = json_string_value(json_array_get(ev, 0));
        const json_t *d = json_array_get(ev, 1);
        const char *type = type_of(d);
        if (!type || strcmp(name, type) != 0)
            fail_msg("%s: event %zu: name %s, type %s", what, i, name, type ? type : "none");
        if (json_integer_value(json_object_get(d, "sequence_number")) != (json_int_t)i)
            fail_msg("%s: event %zu has sequence_number %lld", what, i,
                     (long long)json_integer_value(json_object_get(d, "sequence_number")));
        if (i == 0)
            assert_string_equal(type, "response.created");
        if (strcmp(type, "response.completed") == 0 || strcmp(type, "response.incomplete") == 0 ||
            strcmp(type, "response.failed") == 0) {
            terminals++;
            assert_int_equal(i, n - 1);
        }
        if (strcmp(type, "response.output_item.added") == 0) {
            assert_int_equal(open, -1);
            open = json_integer_value(json_object_get(d, "output_index"));
        } else if (json_object_get(d, "output_index")) {
            assert_int_equal(json_integer_value(json_object_get(d, "output_index")), open);
        }
        if (strcmp(type, "response.output_item.done") == 0)
            open = -1;
        if (strcmp(type, "response.function_call_arguments.done") == 0)
            json_object_set(args, json_string_value(json_object_get(d, "item_id")),
                            json_object_get(d, "arguments"));
    }
    assert_int_equal(terminals, 1);
    if (strcmp(type_of(json_array_get(json_array_get(events, n - 1), 1)), "response.failed") != 0)
        check_args(args, what);
    json_decref(args);
}

static void same_bytes(const glue_t *a, const glue_t *b, const char *what)
{
    if (a->failed != b->failed || mr_buf_len(&a->out) != mr_buf_len(&b->out) ||
        memcmp(mr_buf_ptr(&a->out), mr_buf_ptr(&b->out), mr_buf_len(&a->out)) != 0)
        fail_msg("%s: differs from a single feed\n--- single:\n%.*s\n--- split:\n%.*s", what,
                 (int)mr_buf_len(&a->out), mr_buf_ptr(&a->out), (int)mr_buf_len(&b->out),
                 mr_buf_ptr(&b->out));
}

static void run_streams(const pair_t *p)
{
    char dir[512], what[300], *names[MAX_CASES];
    size_t n;

    snprintf(dir, sizeof(dir), "%s/%s/stream", GOLDEN, p->dir);
    n = cases(dir, ".in.sse", names);
    for (size_t i = 0; i < n; i++) {
        char *in_path = path_of(p, "stream", names[i], ".in.sse");
        char *out_path = path_of(p, "stream", names[i], ".out.sse");
        json_t *req = client_request(p, "stream", names[i]), *got, *want;
        size_t len, want_len, *cuts;
        char *input = slurp(in_path, &len), *expected;
        glue_t whole, split;

        assert_non_null(input);
        run_stream(&whole, p, req, input, &len, 1);
        if (updating())
            spit(out_path, mr_buf_ptr(&whole.out), mr_buf_len(&whole.out));
        expected = slurp(out_path, &want_len);
        if (!expected)
            fail_msg("%s missing", out_path);
        snprintf(what, sizeof(what), "%s/%s", p->dir, names[i]);
        got = events_of(mr_buf_ptr(&whole.out), mr_buf_len(&whole.out), what);
        want = events_of(expected, want_len, out_path);
        if (!json_equal(got, want))
            fail_msg("%s: stream differs; got:\n%.*s", what, (int)mr_buf_len(&whole.out),
                     mr_buf_ptr(&whole.out));
        if (p->client == MESSAGES)
            check_messages_shape(got, what);
        else
            check_responses_shape(got, what);
        if (p->client == RESPONSES) {
            /* the store saw the final response before its event was written */
            json_t *last = json_array_get(json_array_get(got, json_array_size(got) - 1), 1);
            assert_non_null(whole.final_resp);
            assert_true(json_equal(whole.final_resp, json_object_get(last, "response")));
            assert_true(whole.final_at < mr_buf_len(&whole.out));
            assert_memory_equal(mr_buf_ptr(&whole.out) + whole.final_at, "event: response.", 16);
        }
        for (size_t k = 1; k < len; k++) {
            size_t two[2] = {k, len};
            run_stream(&split, p, req, input, two, 2);
            snprintf(what, sizeof(what), "%s/%s split at %zu", p->dir, names[i], k);
            same_bytes(&whole, &split, what);
            glue_free(&split);
            mr_buf_free(&split.out);
        }
        cuts = malloc(len * sizeof(*cuts));
        for (size_t k = 0; k < len; k++)
            cuts[k] = k + 1;
        run_stream(&split, p, req, input, cuts, len);
        snprintf(what, sizeof(what), "%s/%s byte by byte", p->dir, names[i]);
        same_bytes(&whole, &split, what);
        glue_free(&split);
        mr_buf_free(&split.out);
        free(cuts);
        glue_free(&whole);
        mr_buf_free(&whole.out);
        json_decref(got);
        json_decref(want);
        json_decref(req);
        free(expected);
        free(input);
        free(in_path);
        free(out_path);
        free(names[i]);
    }
}

/* ---------------------------------------------------------------- cases */

static const pair_t pairs[] = {
    {"messages-openai", MESSAGES, OPENAI},   {"messages-gemini", MESSAGES, GEMINI},
    {"responses-openai", RESPONSES, OPENAI}, {"responses-anthropic", RESPONSES, ANTHROPIC},
    {"responses-gemini", RESPONSES, GEMINI},
};

static void test_requests(void **state)
{
    run_requests(*state);
}

static void test_responses(void **state)
{
    run_responses(*state);
}

static void test_streams(void **state)
{
    run_streams(*state);
}

#define PAIR_TESTS(i)                                                                              \
    cmocka_unit_test_prestate(test_requests, (void *)(uintptr_t)&pairs[i]),                        \
        cmocka_unit_test_prestate(test_responses, (void *)(uintptr_t)&pairs[i]),                   \
        cmocka_unit_test_prestate(test_streams, (void *)(uintptr_t)&pairs[i])

int main(void)
{
    const struct CMUnitTest tests[] = {PAIR_TESTS(0), PAIR_TESTS(1), PAIR_TESTS(2), PAIR_TESTS(3),
                                       PAIR_TESTS(4)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
