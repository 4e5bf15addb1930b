/*
 * Native Responses passthrough: a Responses client on a provider with
 * `responses_api` (OpenAI, Azure's v1 API, any vendor serving it). The
 * client's bytes go to {base_url}/responses with only `model` changed and
 * the gateway's own members removed (previous_response_id, already
 * resolved into `input` by the gateway; provider, models); nothing is
 * injected. The answer comes back untouched, read on the way for its
 * usage, its first output item (the commit point), its sequence numbers
 * and its terminal event, whose response is stored (responses_inbound.h)
 * before the event is forwarded.
 *
 * One exception to "untouched request": reasoning items the gateway sealed
 * itself ("mr1." encrypted_content, another vendor's signatures) would be
 * refused by the provider, so they are left out and counted as
 * signatures_dropped.
 */
#include "meridian/adapter.h"
#include "meridian/codec.h"
#include "meridian/responses_inbound.h"
#include "meridian/responses_parse.h"
#include "meridian/sse.h"
#include "openai.h"
#include "xlate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EVENT_MAX (1024 * 1024) /* one SSE event; a final response may be large */

static const char *const strip[] = {"provider", "models", "previous_response_id", NULL};

static int sealed_here(const json_t *item)
{
    const char *enc = json_string_value(json_object_get(item, "encrypted_content"));
    return enc && !strncmp(enc, MR_RESPONSES_SEAL_PREFIX, strlen(MR_RESPONSES_SEAL_PREFIX));
}

static size_t count_sealed(const json_t *input)
{
    size_t i, n = 0;
    const json_t *it;

    json_array_foreach(input, i, it) n += sealed_here(it);
    return n;
}

/* The body without the gateway's sealed reasoning items, re-serialised. */
static int body_unsealed(const mr_adapter_in_t *in, mr_adapter_req_t *out, mr_error_t *err)
{
    json_t *b = json_deep_copy(in->json), *input = json_object_get(b, "input");
    size_t i = 0;

    while (input && i < json_array_size(input)) {
        if (sealed_here(json_array_get(input, i))) {
            json_array_remove(input, i);
            out->signatures_dropped++;
        } else {
            i++;
        }
    }
    for (const char *const *k = strip; b && *k; k++)
        json_object_del(b, *k);
    if (b)
        json_object_set_new(b, "model", json_string(in->model));
    out->body = b ? json_dumps(b, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(b);
    if (!out->body)
        return mr__xlate_oom(err);
    out->body_len = strlen(out->body);
    return 0;
}

static int build(const mr_adapter_in_t *in, mr_adapter_req_t *out, mr_error_t *err)
{
    const mr_provider_t *p = in->provider;
    mr_adapter_in_t c = *in;
    int rc;

    memset(out, 0, sizeof(*out));
    c.stream = 0; /* mr_openai_body: no stream_options for a Responses body */
    c.strip = strip;
    if (count_sealed(json_object_get(in->json, "input")))
        rc = body_unsealed(in, out, err);
    else
        rc = mr_openai_body(&c, 1, &out->body, &out->body_len, err);
    if (rc < 0)
        return -1;
    out->url = mr__xlate_url(p->base_url, "/responses");
    out->headers = p->kind == MR_KIND_AZURE ? mr_adapter_headers(in, "api-key", "")
                                            : mr_adapter_headers(in, "Authorization", "Bearer ");
    if (!out->url || !out->headers) {
        mr_adapter_req_free(out);
        return mr__xlate_oom(err);
    }
    return 0;
}

static long count(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    return json_is_integer(v) && json_integer_value(v) >= 0 ? (long)json_integer_value(v) : -1;
}

static void usage_of(const json_t *u, mr_usage_t *usage)
{
    if (!json_is_object(u))
        return;
    usage->prompt_tokens = count(u, "input_tokens");
    usage->completion_tokens = count(u, "output_tokens");
    usage->cached_tokens = count(json_object_get(u, "input_tokens_details"), "cached_tokens");
    usage->reasoning_tokens =
        count(json_object_get(u, "output_tokens_details"), "reasoning_tokens");
}

/* A complete answer: forwarded by the gateway as it is (out is NULL);
 * read for its usage and stored before the body is queued. */
static int translate(const mr_adapter_in_t *in, const char *body, size_t len, mr_buf_t *out,
                     mr_usage_t *usage, mr_error_t *err)
{
    json_t *root = json_loadb(body, len, 0, NULL);

    (void)out;
    *usage = MR_USAGE_UNKNOWN;
    if (!json_is_object(root)) {
        json_decref(root);
        mr_error_set(err, 502, "api_error", "upstream_malformed", NULL,
                     "provider %s answered /responses with a body that is not a JSON object",
                     in->provider->name);
        return -1;
    }
    usage_of(json_object_get(root, "usage"), usage);
    mr_responses_req_store(in->client_ctx, root, NULL);
    json_decref(root);
    return 0;
}

/* ---- streams ---------------------------------------------------------- */

struct mr_stream_xlate {
    mr_buf_t ev; /* an event not complete yet */
    mr_sse_t sse;
    mr_responses_req_t *q;
    const char *provider;
    mr_usage_t usage;
    int content, done, error;
};

static mr_stream_xlate_t *stream_new(const mr_adapter_in_t *in)
{
    mr_stream_xlate_t *x = calloc(1, sizeof(*x));

    if (!x)
        return NULL;
    mr_buf_init(&x->ev, EVENT_MAX);
    mr_sse_init(&x->sse, EVENT_MAX, EVENT_MAX);
    x->q = in->client_ctx;
    x->provider = in->provider ? in->provider->name : "?";
    x->usage = MR_USAGE_UNKNOWN;
    return x;
}

static int is_terminal(const char *type)
{
    return !strcmp(type, "response.completed") || !strcmp(type, "response.incomplete") ||
           !strcmp(type, "response.failed");
}

/* What one upstream event tells: its number, the response's id, the
 * commit point, the end (its response stored here, before it is sent). */
static int on_event(void *ctx, const char *event, const char *data, size_t len)
{
    mr_stream_xlate_t *x = ctx;
    json_t *ev = json_loadb(data, len, 0, NULL);
    const char *type = json_string_value(json_object_get(ev, "type"));
    const json_t *resp = json_object_get(ev, "response");
    long seq = count(ev, "sequence_number");

    if (!type)
        type = event;
    if (x->q && seq >= 0)
        x->q->next_seq = seq + 1;
    const char *id = json_string_value(json_object_get(resp, "id"));
    if (x->q && id && strlen(id) <= MR_RESPSTORE_ID_MAX)
        snprintf(x->q->upstream_id, sizeof(x->q->upstream_id), "%s", id);
    if (!strcmp(type, "error")) {
        x->error = 1;
    } else if (is_terminal(type)) {
        x->done = x->content = 1;
        usage_of(json_object_get(resp, "usage"), &x->usage);
        mr_responses_req_store(x->q, resp, NULL);
    } else if (strcmp(type, "response.created") && strcmp(type, "response.in_progress") &&
               strcmp(type, "response.queued")) {
        x->content = 1;
    }
    json_decref(ev);
    return 0;
}

/* One whole event: read, then forwarded byte for byte. */
static int emit_event(mr_stream_xlate_t *x, const char *p, size_t n, mr_buf_t *out)
{
    if (mr_sse_feed(&x->sse, p, n, on_event, x) != 0)
        x->error = 1;
    if (mr_buf_append_force(out, p, n) < 0)
        return -1;
    return x->error ? -1 : 0;
}

/* The stream being fed: where its events go. */
typedef struct feed {
    mr_stream_xlate_t *x;
    mr_buf_t *out;
} feed_t;

/* 1 when the stream must end (an error event, out of memory): -1 is the
 * splitter's own "too large". */
static int each_event(void *ctx, const char *ev, size_t len)
{
    feed_t *f = ctx;
    return emit_event(f->x, ev, len, f->out) < 0;
}

static int stream_feed(mr_stream_xlate_t *x, const char *p, size_t n, mr_buf_t *out)
{
    feed_t f = {x, out};
    int rc = mr_sse_whole_events(&x->ev, p, n, each_event, &f);

    if (rc == -1)
        mr_responses_native_failed(x->q, out, "the provider sent an event larger than 1 MiB");
    return rc ? -1 : 0;
}

static int stream_end(mr_stream_xlate_t *x, mr_buf_t *out)
{
    char msg[200];

    if (mr_buf_len(&x->ev) && emit_event(x, mr_buf_ptr(&x->ev), mr_buf_len(&x->ev), out) < 0)
        return -1;
    mr_buf_reset(&x->ev);
    if (x->done)
        return 0;
    snprintf(msg, sizeof(msg), "provider %s ended the stream before its response was complete",
             x->provider);
    mr_responses_native_failed(x->q, out, msg);
    return MR_ADAPTER_TRUNCATED;
}

static void stream_usage(const mr_stream_xlate_t *x, mr_usage_t *usage)
{
    *usage = x->usage;
}

static int stream_content(const mr_stream_xlate_t *x)
{
    return x->content;
}

static void stream_free(mr_stream_xlate_t *x)
{
    if (!x)
        return;
    mr_buf_free(&x->ev);
    mr_sse_free(&x->sse);
    free(x);
}

const mr_adapter_t mr_adapter_openai_responses = {
    .name = "openai_responses",
    .build = build,
    .translate = translate,
    .stream_new = stream_new,
    .stream_feed = stream_feed,
    .stream_end = stream_end,
    .stream_usage = stream_usage,
    .stream_content = stream_content,
    .stream_free = stream_free,
    .retryable = mr__openai_retryable,
    .translate_error = mr__openai_translate_error,
    .unsupported = NULL,
    .passthrough = 1,
    .uses_conv = 0,
};
