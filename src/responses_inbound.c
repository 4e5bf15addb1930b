#include "meridian/responses_inbound.h"

#include "meridian/codec.h"
#include "meridian/error.h"
#include "meridian/inbound.h"
#include "meridian/log.h"
#include "meridian/responses_parse.h"
#include "meridian/responses_write.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the request's state ------------------------------------------------ */

mr_responses_req_t *mr_responses_req_new(json_t *body, const char *id, long long created_at,
                                         const mr_respstore_backend_t *store, const char *scope,
                                         uint64_t ttl_ms)
{
    mr_responses_req_t *q = calloc(1, sizeof(*q));

    if (!q)
        return NULL;
    snprintf(q->id, sizeof(q->id), "%s", id);
    snprintf(q->scope, sizeof(q->scope), "%s", scope ? scope : "");
    q->created_at = created_at;
    q->request = json_incref(body);
    q->model = json_string_value(json_object_get(body, "model"));
    q->store = store;
    q->ttl_ms = ttl_ms;
    return q;
}

void mr_responses_req_free(void *req)
{
    mr_responses_req_t *q = req;

    if (!q)
        return;
    json_decref(q->request);
    free(q);
}

/* entry as JSON text under (scope, id). The memory store has it when put
 * returns: before the caller appends the terminal event or queues the body. */
static int put_entry(mr_responses_req_t *q, const char *id, const json_t *entry)
{
    char *val = entry ? json_dumps(entry, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    int rc = -1;

    if (val &&
        mr_respstore_put(q->store, q->scope, id, val, strlen(val), q->ttl_ms, NULL, NULL) == 0) {
        q->stored++;
        rc = 0;
    }
    free(val);
    return rc;
}

int mr_responses_req_store(mr_responses_req_t *q, const json_t *response,
                           const json_t *sealed_output)
{
    const char *id = json_string_value(json_object_get(response, "id"));
    const json_t *output = sealed_output ? sealed_output : json_object_get(response, "output");
    json_t *entry;
    int rc;

    if (!q || !q->store)
        return 0;
    if (!id || !mr_respstore_id_ok(id)) {
        mr_warn("responses: an answer without a usable id is not stored");
        return -1;
    }
    entry = mr_responses_entry(q->request, NULL, response, json_is_array(output) ? output : NULL);
    rc = put_entry(q, id, entry);
    json_decref(entry);
    return rc;
}

static void stream_error(mr_buf_t *out, const char *type, const char *code, const char *message);

void mr_responses_native_failed(mr_responses_req_t *q, mr_buf_t *out, const char *message)
{
    if (!q) {
        stream_error(out, "api_error", "server_error", message);
        return;
    }
    json_t *ev =
        json_pack("{s:s, s:I, s:{s:s, s:s, s:I, s:s, s:{s:s, s:s}, s:s?, s:[]}}", "type",
                  "response.failed", "sequence_number", (json_int_t)q->next_seq++, "response", "id",
                  q->upstream_id[0] ? q->upstream_id : q->id, "object", "response", "created_at",
                  (json_int_t)q->created_at, "status", "failed", "error", "code", "server_error",
                  "message", message, "model", q->model, "output");

    if (ev)
        mr_codec_sse(out, "response.failed", ev);
}

/* ---- the dialect ---------------------------------------------------------- */

static int parse(const json_t *body, mr_conv_req_t **out, mr_error_t *err)
{
    /* previous_response_id was resolved into `input` by the gateway */
    return mr_responses_parse(body, NULL, out, err);
}

static const json_t *session(const json_t *body)
{
    const json_t *v = json_object_get(body, "prompt_cache_key");
    return json_string_length(v) ? v : json_object_get(body, "user");
}

/* The writer's context from the request's state (tests and fuzzers have
 * none: a fixed id, nothing echoed). */
static mr_responses_ctx_t ctx_of(const mr_responses_req_t *q, const char *origin, long long created)
{
    return (mr_responses_ctx_t){
        .id = q ? q->id : "resp_0",
        .created_at = q ? q->created_at : created,
        .request = q ? q->request : NULL,
        .model = q ? q->model : NULL,
        .origin = origin,
    };
}

static int write_answer(const mr_conv_answer_t *a, long long created, void *client_ctx,
                        mr_buf_t *out, mr_error_t *err)
{
    mr_responses_req_t *q = client_ctx;
    mr_responses_ctx_t c = ctx_of(q, NULL, created);
    json_t *entry = NULL;
    int rc = mr_responses_write_answer(a, &c, NULL, out, q && q->store ? &entry : NULL, err);

    if (rc == 0 && entry)
        put_entry(q, q->id, entry);
    json_decref(entry);
    return rc;
}

static void on_final(void *arg, const json_t *response, const json_t *sealed_output)
{
    mr_responses_req_store(arg, response, sealed_output);
}

static void writer_init(void *w, const mr_inbound_stream_opts_t *o)
{
    mr_responses_req_t *q = o->client_ctx;
    mr_responses_ctx_t c = ctx_of(q, o->origin_kind, o->created);
    mr_responses_writer_t *rw = w;

    if (mr_responses_writer_init(rw, &c) < 0)
        mr_warn("responses: out of memory starting a stream");
    if (q) {
        rw->on_final = on_final;
        rw->on_final_arg = q;
        q->live = rw; /* one attempt streams at a time */
    }
}

static void writer_set_out(void *w, mr_buf_t *out)
{
    ((mr_responses_writer_t *)w)->out = out;
}

static int writer_flush(void *w)
{
    (void)w; /* every event is written whole */
    return 0;
}

static int writer_content(const void *w)
{
    return mr_responses_writer_content(w);
}

static void writer_usage(const void *w, mr_conv_usage_t *u)
{
    *u = mr_responses_writer_usage(w);
}

static int writer_failed(const void *w)
{
    return mr_responses_writer_failed(w);
}

static void writer_free(void *w)
{
    mr_responses_writer_t *rw = w;
    mr_responses_req_t *q = rw->on_final_arg;

    if (q && q->live == rw)
        q->live = NULL;
    mr_responses_writer_free(rw);
}

static char *error_body(const mr_error_t *e, const char *extra_key, json_t *extra, size_t *len)
{
    return mr_error_body(e, extra ? extra_key : NULL, extra, len);
}

/* Without the request's state (no writer to number it): the API's
 * stand-alone `error` event. */
static void stream_error(mr_buf_t *out, const char *type, const char *code, const char *message)
{
    json_t *ev = json_pack("{s:s, s:s?, s:s, s:s?, s:I}", "type", "error", "code", code, "message",
                           message, "param", NULL, "sequence_number", (json_int_t)0);

    (void)type;
    if (ev)
        mr_codec_sse(out, "error", ev);
}

/* A gateway-side failure mid-stream: response.failed, numbered after the
 * events the client has, by the live writer (translated) or after the
 * upstream's last sequence_number (native). */
static void stream_fail(void *client_ctx, mr_buf_t *out, const char *message)
{
    mr_responses_req_t *q = client_ctx;
    mr_responses_writer_t *w = q->live;

    if (!w) {
        mr_responses_native_failed(q, out, message);
        return;
    }
    w->out = out;
    mr_responses_write_failed(w, "server_error", message);
    w->out = NULL;
}

static const mr_adapter_t *adapter(mr_endpoint_t ep, mr_provider_kind_t kind)
{
    (void)ep;
    switch (kind) {
    case MR_KIND_OPENAI:
        return &mr_adapter_openai_conv;
    case MR_KIND_AZURE:
        return &mr_adapter_azure_conv;
    case MR_KIND_ANTHROPIC:
        return &mr_adapter_anthropic;
    case MR_KIND_GEMINI:
        return &mr_adapter_gemini;
    }
    return NULL;
}

static const mr_adapter_t *native(mr_endpoint_t ep, const mr_provider_t *p)
{
    (void)ep;
    return p->responses_api ? &mr_adapter_openai_responses : NULL;
}

static int no_kind_passthrough(mr_provider_kind_t kind)
{
    (void)kind; /* only providers flagged responses_api (native) */
    return 0;
}

const mr_inbound_t mr_inbound_responses = {
    .dialect = MR_DIALECT_RESPONSES,
    .name = "responses",
    .parse = parse,
    .session = session,
    .write_answer = write_answer,
    .writer_size = sizeof(mr_responses_writer_t),
    .writer_init = writer_init,
    .writer_event = mr_responses_write_event,
    .writer_set_out = writer_set_out,
    .writer_flush = writer_flush,
    .writer_content = writer_content,
    .writer_usage = writer_usage,
    .writer_failed = writer_failed,
    .writer_free = writer_free,
    .error_body = error_body,
    .stream_error = stream_error,
    .stream_fail = stream_fail,
    .reshape_error = NULL,
    .flags_header = NULL,
    .own_headers = NULL,
    .adapter = adapter,
    .passthrough = no_kind_passthrough,
    .native = native,
};
