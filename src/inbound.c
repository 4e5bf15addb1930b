#include "meridian/inbound.h"

#include "meridian/chat_parse.h"
#include "meridian/chat_write.h"
#include "meridian/messages_parse.h"
#include "meridian/messages_write.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const mr_adapter_t *mr_inbound_adapter(const mr_inbound_t *in, mr_endpoint_t ep,
                                       const mr_provider_t *p)
{
    const mr_adapter_t *ad = in->native ? in->native(ep, p) : NULL;

    return ad ? ad : in->adapter(ep, p->kind);
}

int mr_inbound_is_conversation(mr_endpoint_t ep)
{
    return ep == MR_EP_CHAT || ep == MR_EP_MESSAGES || ep == MR_EP_RESPONSES;
}

char *mr_inbound_token_estimate(size_t body_len, size_t *len)
{
    char *s;
    int n = asprintf(&s, "{\"input_tokens\":%zu}", (body_len + 3) / 4);

    if (n < 0)
        return NULL;
    *len = (size_t)n;
    return s;
}

/* ---- chat: OpenAI chat completions ------------------------------------ */

static const json_t *chat_session(const json_t *body)
{
    const json_t *v = json_object_get(body, "prompt_cache_key");
    return json_string_length(v) ? v : json_object_get(body, "user");
}

static int chat_answer(const mr_conv_answer_t *a, long long created, void *client_ctx,
                       mr_buf_t *out, mr_error_t *err)
{
    (void)client_ctx;
    if (mr_chat_write_answer(a, created, out) == 0)
        return 0;
    mr_error_set(err, 502, "api_error", "upstream_too_large", NULL,
                 "the translated answer is too large");
    return -1;
}

static void chat_writer_init(void *w, const mr_inbound_stream_opts_t *o)
{
    mr_chat_writer_init(w, o->created, o->wants_usage);
    if (o->origin_kind)
        mr_chat_writer_origin(w, o->origin_kind, o->origin_model ? o->origin_model : "");
}

static void chat_set_out(void *w, mr_buf_t *out)
{
    ((mr_chat_writer_t *)w)->out = out;
}

static int chat_content(const void *w)
{
    return ((const mr_chat_writer_t *)w)->content;
}

static void chat_usage(const void *w, mr_conv_usage_t *u)
{
    *u = ((const mr_chat_writer_t *)w)->usage;
}

/* The chat writer has nothing to flush, never fails on its own and holds
 * no heap. */
static int nothing(const void *w)
{
    (void)w;
    return 0;
}

static int chat_flush(void *w)
{
    return nothing(w);
}

static void chat_free(void *w)
{
    (void)w;
}

static char *chat_error_body(const mr_error_t *e, const char *extra_key, json_t *extra, size_t *len)
{
    return mr_error_body(e, extra ? extra_key : NULL, extra, len);
}

static void chat_stream_error(mr_buf_t *out, const char *type, const char *code,
                              const char *message)
{
    mr_chat_write_error(out, type, code, "%s", message);
}

static const mr_adapter_t *chat_adapter(mr_endpoint_t ep, mr_provider_kind_t kind)
{
    (void)ep; /* the chat adapters serve every OpenAI endpoint */
    return mr_adapter_for(kind);
}

static int chat_passthrough(mr_provider_kind_t kind)
{
    return kind == MR_KIND_OPENAI || kind == MR_KIND_AZURE;
}

const mr_inbound_t mr_inbound_chat = {
    .dialect = MR_DIALECT_CHAT,
    .name = "chat",
    .parse = mr_chat_parse,
    .session = chat_session,
    .write_answer = chat_answer,
    .writer_size = sizeof(mr_chat_writer_t),
    .writer_init = chat_writer_init,
    .writer_event = mr_chat_write_event,
    .writer_set_out = chat_set_out,
    .writer_flush = chat_flush,
    .writer_content = chat_content,
    .writer_usage = chat_usage,
    .writer_failed = nothing,
    .writer_free = chat_free,
    .error_body = chat_error_body,
    .stream_error = chat_stream_error,
    .reshape_error = NULL,
    .flags_header = NULL,
    .own_headers = NULL,
    .adapter = chat_adapter,
    .passthrough = chat_passthrough,
};

/* ---- messages: Anthropic Messages ------------------------------------- */

static const json_t *messages_session(const json_t *body)
{
    return json_object_get(json_object_get(body, "metadata"), "user_id");
}

static int messages_answer(const mr_conv_answer_t *a, long long created, void *client_ctx,
                           mr_buf_t *out, mr_error_t *err)
{
    (void)created; /* a message has no creation time */
    (void)client_ctx;
    return mr_messages_write_answer(a, out, err);
}

static void messages_writer_init(void *w, const mr_inbound_stream_opts_t *o)
{
    mr_messages_writer_init(w, o->input_estimate);
}

static void messages_set_out(void *w, mr_buf_t *out)
{
    ((mr_messages_writer_t *)w)->out = out;
}

static int messages_flush(void *w)
{
    return mr_messages_writer_flush(w);
}

static int messages_content(const void *w)
{
    return mr_messages_writer_content(w);
}

static void messages_usage(const void *w, mr_conv_usage_t *u)
{
    mr_messages_writer_usage(w, u);
}

static int messages_failed(const void *w)
{
    return mr_messages_writer_failed(w);
}

static void messages_free(void *w)
{
    mr_messages_writer_free(w);
}

/* Anthropic's shape, {"type":"error","error":{"type","message"}}, the type
 * from the status; extra goes inside "error" as in the chat shape. */
static char *messages_error_body(const mr_error_t *e, const char *extra_key, json_t *extra,
                                 size_t *len)
{
    char *s = mr_messages_error_body(e, len);
    json_t *j;

    if (!s || !extra)
        return s;
    j = json_loads(s, 0, NULL);
    free(s);
    json_object_set(json_object_get(j, "error"), extra_key, extra);
    s = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(j);
    if (s)
        *len = strlen(s);
    return s;
}

static void messages_stream_error(mr_buf_t *out, const char *type, const char *code,
                                  const char *message)
{
    (void)code; /* Anthropic's error events carry a type and a message */
    mr_messages_write_error(out, type, message);
}

/* An OpenAI-shaped error (what the translating adapters make) as
 * Anthropic's; an Anthropic-shaped one (an Anthropic target's own) kept. */
static char *messages_reshape_error(const char *body, size_t len, int status, size_t *out_len)
{
    json_t *root = json_loadb(body, len, 0, NULL);
    const char *msg = json_string_value(json_object_get(json_object_get(root, "error"), "message"));
    const char *type = json_string_value(json_object_get(root, "type"));
    mr_error_t e;
    char *s = NULL;

    if (json_is_object(root) && !(type && strcmp(type, "error") == 0)) {
        mr_error_set(&e, status, NULL, NULL, NULL, "%s",
                     msg ? msg : "the upstream answered with an error");
        s = mr_messages_error_body(&e, out_len);
    } else if (!root) {
        mr_error_set(&e, status, NULL, NULL, NULL, "%.*s", (int)(len < 300 ? len : 300), body);
        s = mr_messages_error_body(&e, out_len);
    }
    json_decref(root);
    return s;
}

static const mr_adapter_t *messages_adapter(mr_endpoint_t ep, mr_provider_kind_t kind)
{
    if (ep == MR_EP_COUNT_TOKENS)
        return kind == MR_KIND_ANTHROPIC ? &mr_adapter_anthropic_count : &mr_adapter_none_count;
    switch (kind) {
    case MR_KIND_ANTHROPIC:
        return &mr_adapter_anthropic_messages;
    case MR_KIND_OPENAI:
        return &mr_adapter_openai_conv;
    case MR_KIND_AZURE:
        return &mr_adapter_azure_conv;
    case MR_KIND_GEMINI:
        return &mr_adapter_gemini;
    }
    return NULL;
}

static const char *const messages_own_headers[] = {"anthropic-beta", "anthropic-version", NULL};

static int messages_passthrough(mr_provider_kind_t kind)
{
    return kind == MR_KIND_ANTHROPIC;
}

const mr_inbound_t mr_inbound_messages = {
    .dialect = MR_DIALECT_MESSAGES,
    .name = "messages",
    .parse = mr_messages_parse,
    .session = messages_session,
    .write_answer = messages_answer,
    .writer_size = sizeof(mr_messages_writer_t),
    .writer_init = messages_writer_init,
    .writer_event = mr_messages_write_event,
    .writer_set_out = messages_set_out,
    .writer_flush = messages_flush,
    .writer_content = messages_content,
    .writer_usage = messages_usage,
    .writer_failed = messages_failed,
    .writer_free = messages_free,
    .error_body = messages_error_body,
    .stream_error = messages_stream_error,
    .reshape_error = messages_reshape_error,
    .flags_header = "anthropic-beta",
    .own_headers = messages_own_headers,
    .adapter = messages_adapter,
    .passthrough = messages_passthrough,
};

const mr_inbound_t *mr_inbound_of(mr_endpoint_t ep)
{
    if (ep == MR_EP_RESPONSES)
        return &mr_inbound_responses;
    return ep == MR_EP_MESSAGES || ep == MR_EP_COUNT_TOKENS ? &mr_inbound_messages
                                                            : &mr_inbound_chat;
}
