/*
 * OpenAI-compatible and Azure targets for clients of another dialect
 * (Anthropic Messages; inbound.h): the request is emitted as a chat
 * completions body from the conversation model (chat_emit.h), and the
 * target's chat answers and chunk streams are read back into the model
 * (chat_answer.h) for the client dialect's writer. URL and credentials are
 * the openai / azure adapters' own (openai.h).
 */
#include "meridian/adapter.h"
#include "meridian/chat_answer.h"
#include "meridian/chat_emit.h"
#include "meridian/inbound.h"
#include "openai.h"
#include "xlate.h"

#include <string.h>

/* Members of the model an OpenAI-compatible chat request has no field for. */
static const char *const ignored[] = {"top_k", "thinking", "metadata", "cached_content", NULL};
/* ... recorded when left out, with the cache markers (hints). */
static const char *const leaves_out[] = {"top_k",          "thinking",      "metadata",
                                         "cached_content", "cache_control", NULL};

/* Chat has no field for a signature: every one in the conversation (a
 * reasoning part's signature or opaque data, a call's thought signature)
 * is left out on purpose, and counted for the audit record. */
static unsigned signatures_in(const mr_conv_req_t *conv)
{
    unsigned n = 0;

    for (size_t i = 0; i < conv->n_turns; i++)
        for (size_t k = 0; k < conv->turns[i].n_parts; k++) {
            const mr_conv_part_t *p = &conv->turns[i].parts[k];
            if (p->kind == MR_CONV_REASONING)
                n += p->u.reasoning.signature.p || p->u.reasoning.data.p;
            else if (p->kind == MR_CONV_TOOL_CALL)
                n += p->u.call.signature.p != NULL;
        }
    return n;
}

static int chat_emit(mr_xlate_emit_t *e, const mr_conv_req_t *conv, json_t **root, mr_error_t *err)
{
    mr_chat_emit_opts_t o = {.model = e->in->model, .stream = e->in->stream};
    e->dropped += signatures_in(conv);
    return mr_chat_emit(conv, &o, root, err);
}

int mr__openai_request_body(const mr_adapter_in_t *in, mr_adapter_req_t *out, mr_error_t *err)
{
    if (!in->client || in->client->dialect == MR_DIALECT_CHAT)
        return mr_openai_body(in, 1, &out->body, &out->body_len, err);
    return mr__xlate_body(&mr_chat_emit_caps, chat_emit, leaves_out, in, out, err);
}

static const char *chat_unsupported(const mr_conv_req_t *conv)
{
    return mr__xlate_unsupported(&mr_chat_emit_caps, conv, ignored);
}

/* ---- answers and streams ------------------------------------------------ */

static mr_chat_answer_in_t answer_in(const mr_adapter_in_t *in)
{
    return (mr_chat_answer_in_t){
        .model = in->model,
        .kind = in->provider ? mr_provider_kind_name(in->provider->kind) : "openai",
    };
}

static int answer(const mr_adapter_in_t *in, const json_t *root, const char *raw, size_t len,
                  mr_conv_answer_t *a, mr_error_t *err)
{
    mr_chat_answer_in_t cin = answer_in(in);

    (void)raw;
    (void)len;
    return mr_chat_answer_parse(&cin, root, a, err);
}

static void stream_init(void *st, const mr_adapter_in_t *in)
{
    mr_chat_answer_in_t cin = answer_in(in);
    mr_chat_stream_init(st, &cin);
}

static int stream_event(void *st, const char *event, const char *data, size_t len,
                        const mr_conv_sink_t *sink)
{
    (void)event; /* chat chunks carry no event names */
    return mr_chat_stream_event(st, data, len, sink);
}

static int stream_end(void *st, const mr_conv_sink_t *sink)
{
    return mr_chat_stream_end(st, sink);
}

static const mr_xlate_parser_t parser = {
    .answer = answer,
    .stream_size = sizeof(mr_chat_stream_t),
    .stream_init = stream_init,
    .stream_event = stream_event,
    .stream_end = stream_end,
    .malformed = "a malformed chat completion chunk stream",
    .truncated = "ended the stream before data: [DONE]",
};

static int translate(const mr_adapter_in_t *in, const char *body, size_t len, mr_buf_t *out,
                     mr_usage_t *usage, mr_error_t *err)
{
    return mr__xlate_translate(&parser, in, body, len, out, usage, err);
}

static mr_stream_xlate_t *stream_new(const mr_adapter_in_t *in)
{
    return mr__xlate_stream_new(&parser, in);
}

#define CHAT_CONV_ADAPTER(NAME, BUILD)                                                             \
    {                                                                                              \
        .name = NAME, .build = BUILD, .translate = translate, .stream_new = stream_new,            \
        .stream_feed = mr__xlate_stream_feed, .stream_end = mr__xlate_stream_end,                  \
        .stream_usage = mr__xlate_stream_usage, .stream_content = mr__xlate_stream_content,        \
        .stream_free = mr__xlate_stream_free, .retryable = mr__openai_retryable,                   \
        .translate_error = mr__openai_translate_error, .unsupported = chat_unsupported,            \
        .passthrough = 0, .uses_conv = 1,                                                          \
    }

const mr_adapter_t mr_adapter_openai_conv = CHAT_CONV_ADAPTER("openai", mr__openai_build);
const mr_adapter_t mr_adapter_azure_conv = CHAT_CONV_ADAPTER("azure", mr__azure_build);
