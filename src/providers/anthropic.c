/*
 * The Anthropic Messages dialect (POST {base_url}/messages).
 *
 * Requests are emitted from the conversation model (conv.h): system and
 * developer turns become `system`, tool results user `tool_result` blocks,
 * assistant tool calls `tool_use` blocks, and consecutive turns of one role
 * are merged (Anthropic wants user and assistant turns to alternate).
 * Answers and event streams are parsed by anthropic_answer.c; every
 * parameter's fate is listed in docs/providers.md.
 */
#include "meridian/adapter.h"
#include "meridian/health.h"
#include "anthropic.h"
#include "xlate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Provider settings the configuration does not carry (yet); see
 * docs/providers.md for the proposed keys. */
#define ANTHROPIC_VERSION "2023-06-01"
#define ANTHROPIC_DEFAULT_MAX_TOKENS 4096
#define ANTHROPIC_MAX_TOKENS_LIMIT 1000000

static const mr_conv_caps_t caps = {
    .name = "anthropic",
    .n_max = 128,
    .choices_max = 1,
    .max_output_limit = ANTHROPIC_MAX_TOKENS_LIMIT,
    .image_url = 1,
    .file_type = "application/pdf",
    .call_needs_id = 1,
    .rich_results = 1,
};

/* ------------------------------------------------------------ requests */

/* Anthropic ids must match ^[a-zA-Z0-9_-]+$: other bytes become '_' (the
 * same mapping on both sides, so tool_use and tool_result still pair). */
static json_t *tool_id(mr_conv_str_t id)
{
    char *s = malloc(id.n + 1);
    json_t *out;

    if (!s)
        return NULL;
    for (size_t i = 0; i < id.n; i++) {
        char c = id.p[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '_' || c == '-';
        s[i] = ok ? c : '_';
    }
    out = json_stringn(s, id.n);
    free(s);
    return out;
}

static int add_text(json_t *blocks, const char *p, size_t n)
{
    if (n == 0) /* Anthropic rejects empty text blocks */
        return 0;
    return json_array_append_new(blocks, json_pack("{s:s, s:s%}", "type", "text", "text", p, n));
}

static json_t *source(const mr_conv_media_t *m)
{
    if (m->source == MR_CONV_SRC_URL)
        return json_pack("{s:s, s:s}", "type", "url", "url", m->url.p);
    return json_pack("{s:s, s:s, s:s}", "type", "base64", "media_type", m->media_type.p, "data",
                     m->data.p);
}

/* User parts (checked: text, images, PDF files) -> blocks. */
static int user_blocks(const mr_conv_part_t *parts, size_t n, json_t *blocks)
{
    for (size_t k = 0; k < n; k++) {
        const mr_conv_part_t *p = &parts[k];
        int rc = 0;
        if (p->kind == MR_CONV_TEXT)
            rc = add_text(blocks, p->u.text.p, p->u.text.n);
        else if (p->kind == MR_CONV_IMAGE || p->kind == MR_CONV_FILE)
            rc = json_array_append_new(blocks,
                                       json_pack("{s:s, s:o}", "type",
                                                 p->kind == MR_CONV_IMAGE ? "image" : "document",
                                                 "source", source(&p->u.media)));
        if (rc < 0)
            return -1;
    }
    return 0;
}

/* Text parts joined into one block (assistant content), then tool_use blocks. */
static int assistant_blocks(const mr_conv_turn_t *t, json_t *blocks)
{
    mr_buf_t text;
    int rc;

    mr_buf_init(&text, (size_t)-1);
    rc = mr_conv_join_text(t->parts, t->n_parts, &text);
    if (rc == 0)
        rc = add_text(blocks, mr_buf_ptr(&text), mr_buf_len(&text));
    mr_buf_free(&text);
    for (size_t k = 0; rc == 0 && k < t->n_parts; k++) {
        const mr_conv_tool_call_t *c = &t->parts[k].u.call;
        if (t->parts[k].kind == MR_CONV_TOOL_CALL)
            rc = json_array_append_new(
                blocks, json_pack("{s:s, s:o, s:o, s:O}", "type", "tool_use", "id", tool_id(c->id),
                                  "name", mr__xlate_str(c->name), "input", c->args_json));
    }
    return rc;
}

static int result_block(const mr_conv_tool_result_t *res, json_t *blocks)
{
    json_t *c;

    if (res->as_string) {
        mr_buf_t text;
        mr_buf_init(&text, (size_t)-1);
        c = mr_conv_join_text(res->content, res->n_content, &text) < 0
                ? NULL
                : json_stringn(mr_buf_ptr(&text), mr_buf_len(&text));
        mr_buf_free(&text);
    } else if ((c = json_array()) && user_blocks(res->content, res->n_content, c) < 0) {
        json_decref(c);
        c = NULL;
    }
    return json_array_append_new(blocks,
                                 json_pack("{s:s, s:o, s:o}", "type", "tool_result", "tool_use_id",
                                           tool_id(res->call_id), "content", c));
}

/* tool_result blocks must lead a user turn; a lone plain text block is
 * sent as a string. */
static void tidy_turns(json_t *msgs)
{
    size_t i, k;
    json_t *m;

    json_array_foreach(msgs, i, m)
    {
        json_t *blocks = json_object_get(m, "content");
        json_t *sorted = json_array();
        const json_t *b;
        for (int pass = 0; pass < 2 && sorted; pass++)
            json_array_foreach(blocks, k, b)
            {
                int tr = strcmp(json_string_value(json_object_get(b, "type")), "tool_result") == 0;
                if (tr == (pass == 0))
                    json_array_append(sorted, (json_t *)b);
            }
        if (sorted)
            json_object_set_new(m, "content", sorted);
        blocks = json_object_get(m, "content");
        b = json_array_get(blocks, 0);
        if (json_array_size(blocks) == 1 && json_object_size(b) == 2 &&
            strcmp(json_string_value(json_object_get(b, "type")), "text") == 0)
            json_object_set(m, "content", json_object_get(b, "text"));
    }
}

static int emit_messages(const mr_conv_req_t *conv, json_t *root)
{
    static const mr_xlate_turns_t turns = {"assistant", "content", user_blocks, assistant_blocks,
                                           result_block};
    mr_buf_t system;
    json_t *msgs;

    mr_buf_init(&system, (size_t)-1);
    if ((msgs = mr__xlate_turns(conv, &turns, &system))) {
        tidy_turns(msgs);
        if (mr_buf_len(&system))
            json_object_set_new(root, "system",
                                json_stringn(mr_buf_ptr(&system), mr_buf_len(&system)));
        json_object_set_new(root, "messages", msgs);
    }
    mr_buf_free(&system);
    return msgs ? 0 : -1;
}

static json_t *tool_choice(const mr_conv_req_t *conv)
{
    const mr_conv_tool_choice_t *c = &conv->tool_choice;
    json_t *tc = NULL;

    switch (c->mode) {
    case MR_CONV_CHOICE_AUTO:
        tc = json_pack("{s:s}", "type", "auto");
        break;
    case MR_CONV_CHOICE_NONE:
        tc = json_pack("{s:s}", "type", "none");
        break;
    case MR_CONV_CHOICE_REQUIRED:
        tc = json_pack("{s:s}", "type", "any");
        break;
    case MR_CONV_CHOICE_FUNCTION:
        tc = json_pack("{s:s, s:o}", "type", "tool", "name", mr__xlate_str(c->name));
        break;
    default:
        break;
    }
    if (conv->parallel_tool_calls == 0 && c->mode != MR_CONV_CHOICE_NONE) {
        if (!tc)
            tc = json_pack("{s:s}", "type", "auto");
        if (tc)
            json_object_set_new(tc, "disable_parallel_tool_use", json_true());
    }
    return tc;
}

/* The tool's parameters, or a schema of no parameters. */
static json_t *input_schema(const json_t *parameters)
{
    return json_is_object(parameters) ? json_incref((json_t *)parameters)
                                      : json_pack("{s:s, s:{}}", "type", "object", "properties");
}

static int emit_tools(const mr_conv_req_t *conv, json_t *root)
{
    json_t *out, *tc;

    if (conv->n_tools == 0)
        return 0;
    if (!(out = mr__xlate_tools(conv, "input_schema", input_schema)))
        return -1;
    json_object_set_new(root, "tools", out);
    if ((tc = tool_choice(conv)))
        json_object_set_new(root, "tool_choice", tc);
    return 0;
}

static int anthropic_emit(const mr_adapter_in_t *in, const mr_conv_req_t *conv, json_t **out,
                          mr_error_t *err)
{
    json_t *root = json_object();
    long long max_tokens = in->provider->default_max_tokens > 0 ? in->provider->default_max_tokens
                                                                : ANTHROPIC_DEFAULT_MAX_TOKENS;

    if (!root || json_object_set_new(root, "model", json_string(in->model)) < 0 ||
        emit_messages(conv, root) < 0)
        goto oom;
    if (conv->max_output.state == MR_CONV_SET)
        max_tokens = (long long)conv->max_output.v;
    json_object_set_new(root, "max_tokens", json_integer(max_tokens));
    /* OpenAI's range is 0..2, Anthropic's 0..1 */
    if (conv->temperature.state == MR_CONV_SET) {
        double d = conv->temperature.v;
        json_object_set_new(root, "temperature", json_real(d < 0 ? 0 : d > 1 ? 1 : d));
    }
    if (conv->top_p.state == MR_CONV_SET)
        json_object_set_new(root, "top_p", json_real(conv->top_p.v));
    if (conv->n_stop) {
        json_t *stop = json_array();
        for (size_t i = 0; stop && i < conv->n_stop; i++)
            json_array_append_new(stop, mr__xlate_str(conv->stop[i]));
        json_object_set_new(root, "stop_sequences", stop);
    }
    if (in->stream)
        json_object_set_new(root, "stream", json_true());
    if (emit_tools(conv, root) < 0)
        goto oom;
    if (conv->user.p)
        json_object_set_new(root, "metadata",
                            json_pack("{s:o}", "user_id", mr__xlate_str(conv->user)));
    *out = root;
    return 0;
oom:
    json_decref(root);
    return mr__xlate_oom(err);
}

static int anthropic_build(const mr_adapter_in_t *in, mr_adapter_req_t *out, mr_error_t *err)
{
    const mr_provider_t *p = in->provider;
    struct curl_slist *h;

    memset(out, 0, sizeof(*out));
    if (in->endpoint != MR_EP_CHAT)
        return mr_error_bad(err, "unsupported_endpoint", NULL,
                            "provider %s (anthropic) serves only /v1/chat/completions, not /v1%s",
                            p->name, mr_endpoint_path(in->endpoint));
    if (mr__xlate_body(&caps, anthropic_emit, in, &out->body, &out->body_len, err) < 0)
        return -1;
    if (!(out->url = mr__xlate_url(p->base_url, "/messages")))
        goto oom;
    h = mr_adapter_headers(in, "x-api-key", "");
    /* a forwarded anthropic-version (forward_headers) replaces ours */
    if (h && !mr__xlate_has_header(in, "anthropic-version"))
        h = mr_adapter_header(h, "anthropic-version",
                              in->provider->api_version ? in->provider->api_version
                                                        : ANTHROPIC_VERSION);
    if (!h)
        goto oom;
    out->headers = h;
    return 0;
oom:
    mr_adapter_req_free(out);
    return mr__xlate_oom(err);
}

/* ------------------------------------------------------------ errors */

static int anthropic_retryable(long status, const char *body, size_t len)
{
    json_t *root;
    const char *type;
    int r;

    if (mr_retryable_status(status)) /* 408, 409, 429, 5xx */
        return 1;
    root = json_loadb(body, len, 0, NULL);
    type = json_string_value(json_object_get(json_object_get(root, "error"), "type"));
    r = type && (strcmp(type, "overloaded_error") == 0 || strcmp(type, "rate_limit_error") == 0 ||
                 strcmp(type, "api_error") == 0);
    json_decref(root);
    return r;
}

static void anthropic_translate_error(const mr_provider_t *p, long status, const char *body,
                                      size_t len, mr_buf_t *out)
{
    json_t *root = json_loadb(body, len, 0, NULL);
    const json_t *e = json_object_get(root, "error");
    const char *msg = json_string_value(json_object_get(e, "message"));
    const char *type = json_string_value(json_object_get(e, "type"));
    const json_t *code = json_object_get(e, "code");
    char fallback[300];

    if (!msg) {
        mr__xlate_error_fallback(p, status, body, len, fallback, sizeof(fallback));
        msg = fallback;
        type = NULL;
    }
    /* an OpenAI-shaped body (a compatible proxy) keeps its code */
    mr__xlate_error_body(out, msg, mr__xlate_error_type(type, status),
                         json_is_string(code) ? json_string_value(code)
                         : type               ? type
                                              : "upstream_error");
    json_decref(root);
}

static int anthropic_translate(const mr_adapter_in_t *in, const char *body, size_t len,
                               mr_buf_t *out, mr_usage_t *usage, mr_error_t *err)
{
    return mr__xlate_translate(&mr__anthropic_parser, in, body, len, out, usage, err);
}

static mr_stream_xlate_t *anthropic_stream_new(const mr_adapter_in_t *in)
{
    return mr__xlate_stream_new(&mr__anthropic_parser, in);
}

const mr_adapter_t mr_adapter_anthropic = {
    .name = "anthropic",
    .build = anthropic_build,
    .translate = anthropic_translate,
    .stream_new = anthropic_stream_new,
    .stream_feed = mr__xlate_stream_feed,
    .stream_end = mr__xlate_stream_end,
    .stream_usage = mr__xlate_stream_usage,
    .stream_content = mr__xlate_stream_content,
    .stream_free = mr__xlate_stream_free,
    .retryable = anthropic_retryable,
    .translate_error = anthropic_translate_error,
    .passthrough = 0,
    .uses_conv = 1,
};
