/*
 * The Anthropic Messages dialect (POST {base_url}/messages).
 *
 * Requests are emitted from the conversation model (conv.h): system and
 * developer turns become `system`, tool results user `tool_result` blocks,
 * assistant tool calls `tool_use` blocks, and consecutive turns of one role
 * are merged (Anthropic wants user and assistant turns to alternate).
 * Answers and event streams are parsed into the model's answer and events
 * (thinking blocks included), which the chat writer turns into OpenAI's
 * shapes; every parameter's fate is listed in docs/providers.md.
 */
#include "meridian/adapter.h"
#include "meridian/health.h"
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
    json_t *msgs = json_array();
    mr_buf_t system;
    int rc = msgs ? 0 : -1;

    mr_buf_init(&system, (size_t)-1);
    for (size_t i = 0; rc == 0 && i < conv->n_turns; i++) {
        const mr_conv_turn_t *t = &conv->turns[i];
        const char *role = "user";
        json_t *blocks = json_array();
        if (!blocks) {
            rc = -1;
            break;
        }
        if (t->role == MR_CONV_ROLE_USER) {
            rc = user_blocks(t->parts, t->n_parts, blocks);
        } else if (t->role == MR_CONV_ROLE_ASSISTANT) {
            role = "assistant";
            rc = assistant_blocks(t, blocks);
        } else if (t->role == MR_CONV_ROLE_TOOL) {
            rc = result_block(&t->parts[0].u.result, blocks);
        }
        /* system turns: below; other roles were refused by the check */
        if (rc == 0)
            rc = mr__xlate_push_turn(msgs, role, "content", blocks);
        else
            json_decref(blocks);
    }
    if (rc == 0)
        rc = mr__xlate_system_text(conv, &system);
    if (rc == 0) {
        tidy_turns(msgs);
        if (mr_buf_len(&system))
            json_object_set_new(root, "system",
                                json_stringn(mr_buf_ptr(&system), mr_buf_len(&system)));
        json_object_set(root, "messages", msgs);
    }
    json_decref(msgs);
    mr_buf_free(&system);
    return rc;
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

static int emit_tools(const mr_conv_req_t *conv, json_t *root)
{
    json_t *out, *tc;

    if (conv->n_tools == 0)
        return 0;
    if (!(out = json_array()))
        return -1;
    for (size_t i = 0; i < conv->n_tools; i++) {
        const mr_conv_tool_t *t = &conv->tools[i];
        json_t *tool = json_pack("{s:o}", "name", mr__xlate_str(t->name));
        if (tool && t->description.p)
            json_object_set_new(tool, "description", mr__xlate_str(t->description));
        if (tool)
            json_object_set_new(tool, "input_schema",
                                json_is_object(t->parameters)
                                    ? json_incref((json_t *)t->parameters)
                                    : json_pack("{s:s, s:{}}", "type", "object", "properties"));
        if (json_array_append_new(out, tool) < 0) {
            json_decref(out);
            return -1;
        }
    }
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

static const mr_xlate_dialect_t dialect;

static int anthropic_build(const mr_adapter_in_t *in, mr_adapter_req_t *out, mr_error_t *err)
{
    const mr_provider_t *p = in->provider;
    struct curl_slist *h;

    memset(out, 0, sizeof(*out));
    if (in->endpoint != MR_EP_CHAT)
        return mr_error_bad(err, "unsupported_endpoint", NULL,
                            "provider %s (anthropic) serves only /v1/chat/completions, not /v1%s",
                            p->name, mr_endpoint_path(in->endpoint));
    if (mr__xlate_body(&dialect, in, &out->body, &out->body_len, err) < 0)
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

/* ------------------------------------------------------------ answers */

static mr_conv_finish_t finish_reason(const char *stop_reason)
{
    if (!stop_reason)
        return MR_CONV_FINISH_STOP;
    if (strcmp(stop_reason, "max_tokens") == 0 ||
        strcmp(stop_reason, "model_context_window_exceeded") == 0)
        return MR_CONV_FINISH_LENGTH;
    if (strcmp(stop_reason, "tool_use") == 0)
        return MR_CONV_FINISH_TOOL_CALLS;
    if (strcmp(stop_reason, "refusal") == 0)
        return MR_CONV_FINISH_CONTENT_FILTER;
    return MR_CONV_FINISH_STOP; /* end_turn, stop_sequence, pause_turn */
}

static long usage_int(const json_t *u, const char *key)
{
    const json_t *v = json_object_get(u, key);
    return json_is_integer(v) && json_integer_value(v) >= 0 ? (long)json_integer_value(v) : -1;
}

/* Anthropic's input_tokens excludes cached input; OpenAI's prompt_tokens
 * includes it. Cache reads and writes are kept apart as well. */
static void read_usage(const json_t *u, mr_conv_usage_t *o)
{
    long in = usage_int(u, "input_tokens"), cw = usage_int(u, "cache_creation_input_tokens"),
         cr = usage_int(u, "cache_read_input_tokens");

    o->cached = cr;
    o->cache_write = cw;
    o->prompt = in < 0 ? -1 : in + (cw > 0 ? cw : 0) + (cr > 0 ? cr : 0);
}

/* A tool_use block -> a call: a safe id, the name, the input as JSON text. */
static int tool_use(mr_conv_arena_t *arena, const json_t *b, mr_conv_tool_call_t *c)
{
    const json_t *input = json_object_get(b, "input"), *tj = json_object_get(b, "id");
    const char *name = json_string_value(json_object_get(b, "name"));
    char *args = json_is_object(input) ? json_dumps(input, MR_CONV_JSON_FLAGS) : strdup("{}");
    char tid[MR_XLATE_ID_MAX + 32];

    if (!args)
        return -1;
    mr__xlate_safe_id(json_string_value(tj), json_string_length(tj), "toolu_", tid, sizeof(tid));
    c->id = mr_conv_copy(arena, tid, strlen(tid));
    c->name = (mr_conv_str_t){name ? name : "", name ? strlen(name) : 0};
    c->args = mr_conv_copy(arena, args, strlen(args));
    free(args);
    return c->id.p && c->args.p ? 0 : -1;
}

/* One content block -> a part; 0 when it carries nothing for the model. */
static int block_part(mr_conv_arena_t *arena, const json_t *b, mr_conv_part_t *p)
{
    const char *type = json_string_value(json_object_get(b, "type"));
    const json_t *text = json_object_get(b, "text");

    if (!type)
        return 0;
    if (strcmp(type, "text") == 0 && json_is_string(text)) {
        p->kind = MR_CONV_TEXT;
        p->u.text = mr_conv_str(text);
    } else if (strcmp(type, "tool_use") == 0) {
        p->kind = MR_CONV_TOOL_CALL;
        return tool_use(arena, b, &p->u.call) < 0 ? -1 : 1;
    } else if (strcmp(type, "thinking") == 0 || strcmp(type, "redacted_thinking") == 0) {
        p->kind = MR_CONV_REASONING;
        p->u.reasoning.text = mr_conv_str(json_object_get(b, "thinking"));
        p->u.reasoning.data = mr_conv_str(json_object_get(b, "data"));
        p->u.reasoning.signature = mr_conv_str(json_object_get(b, "signature"));
        p->u.reasoning.origin_kind = (mr_conv_str_t){"anthropic", 9};
    } else {
        return 0; /* server tool blocks: not representable */
    }
    return 1;
}

static int anthropic_parse_answer(const mr_adapter_in_t *in, const json_t *root, const char *raw,
                                  size_t len, mr_conv_answer_t *a, mr_error_t *err)
{
    const json_t *content = json_object_get(root, "content"), *b;
    const json_t *jid = json_object_get(root, "id");
    char id[MR_XLATE_ID_MAX + 32], model[MR_XLATE_ID_MAX + 32];
    mr_conv_choice_t *ch;
    size_t i;

    (void)raw;
    (void)len;
    if (!json_is_object(root) || !json_is_array(content)) {
        mr_error_set(err, 502, "api_error", "upstream_malformed", NULL,
                     "provider %s: the answer is not an Anthropic message", in->provider->name);
        return -1;
    }
    if (!(ch = a->choices = mr_conv_alloc(a->_arena, 1, sizeof(*ch))) ||
        !(ch->parts = mr_conv_alloc(a->_arena, json_array_size(content) + 1, sizeof(*ch->parts))))
        return mr__xlate_oom(err);
    a->n_choices = 1;
    json_array_foreach(content, i, b)
    {
        int rc = block_part(a->_arena, b, &ch->parts[ch->n_parts]);
        if (rc < 0)
            return mr__xlate_oom(err);
        ch->n_parts += (size_t)rc;
    }
    ch->finish = finish_reason(json_string_value(json_object_get(root, "stop_reason")));
    read_usage(json_object_get(root, "usage"), &a->usage);
    a->usage.completion = usage_int(json_object_get(root, "usage"), "output_tokens");
    mr__xlate_safe_id(json_string_value(jid), json_string_length(jid), "msg_", id, sizeof(id));
    mr__xlate_model(json_object_get(root, "model"), in->model, model, sizeof(model));
    a->id = mr_conv_copy(a->_arena, id, strlen(id));
    a->model = mr_conv_copy(a->_arena, model, strlen(model));
    return a->id.p && a->model.p ? 0 : mr__xlate_oom(err);
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

/* ------------------------------------------------------------ streams */

enum { BLOCK_NONE, BLOCK_TEXT, BLOCK_TOOL, BLOCK_THINKING, BLOCK_OTHER };

typedef struct stream {
    const char *fallback_model;
    char id[MR_XLATE_ID_MAX + 32];
    char model[MR_XLATE_ID_MAX + 32];
    int started, stopped;
    long block;    /* index of the open content block, -1 none */
    int kind;      /* BLOCK_* of the open block */
    int tool;      /* OpenAI tool_calls index of the open tool block */
    int tool_args; /* argument pieces sent for it */
    int n_tools;
    mr_conv_finish_t finish;
    mr_conv_usage_t usage;
} stream_t;

static void stream_init(void *st, const mr_adapter_in_t *in)
{
    stream_t *x = st;

    x->fallback_model = in->model ? in->model : "";
    x->block = -1;
    x->usage = MR_CONV_USAGE_UNKNOWN;
}

static int send_text(const mr_conv_sink_t *sink, mr_conv_event_kind_t kind, int index,
                     mr_conv_str_t text)
{
    return mr__xlate_send(sink, (mr_conv_event_t){.kind = kind, .index = index, .text = text});
}

static int send_args(stream_t *x, const mr_conv_sink_t *sink, const char *args, size_t n)
{
    x->tool_args += n > 0;
    return send_text(sink, MR_CONV_EV_TOOL_ARGS, x->tool, (mr_conv_str_t){args, n});
}

static int close_block(stream_t *x, const mr_conv_sink_t *sink)
{
    int rc = 0;
    /* a tool without arguments still needs valid JSON for the client */
    if (x->kind == BLOCK_TOOL && x->tool_args == 0)
        rc = send_args(x, sink, "{}", 2);
    x->block = -1;
    x->kind = BLOCK_NONE;
    return rc;
}

static int send_usage(stream_t *x, const mr_conv_sink_t *sink)
{
    return mr__xlate_send(sink, (mr_conv_event_t){.kind = MR_CONV_EV_USAGE, .usage = &x->usage});
}

static int finish(stream_t *x, const mr_conv_sink_t *sink)
{
    mr_conv_finish_t f = x->finish ? x->finish : MR_CONV_FINISH_STOP;

    if (x->block >= 0 && close_block(x, sink) < 0)
        return -1;
    x->stopped = 1;
    if (mr__xlate_send(sink, (mr_conv_event_t){.kind = MR_CONV_EV_FINISH, .finish = f}) < 0)
        return -1;
    return mr__xlate_send(sink, (mr_conv_event_t){.kind = MR_CONV_EV_END});
}

static int on_message_start(stream_t *x, const json_t *ev, const mr_conv_sink_t *sink)
{
    const json_t *m = json_object_get(ev, "message");
    const json_t *jid = json_object_get(m, "id");

    if (x->started || !json_is_object(m))
        return MR_XLATE_MALFORMED;
    x->started = 1;
    mr__xlate_safe_id(json_string_value(jid), json_string_length(jid), "msg_", x->id,
                      sizeof(x->id));
    mr__xlate_model(json_object_get(m, "model"), x->fallback_model, x->model, sizeof(x->model));
    read_usage(json_object_get(m, "usage"), &x->usage);
    x->usage.completion = usage_int(json_object_get(m, "usage"), "output_tokens");
    if (send_usage(x, sink) < 0)
        return -1;
    return mr__xlate_send(sink, (mr_conv_event_t){.kind = MR_CONV_EV_START,
                                                  .id = {x->id, strlen(x->id)},
                                                  .name = {x->model, strlen(x->model)}});
}

static int on_tool_start(stream_t *x, const json_t *b, const mr_conv_sink_t *sink)
{
    const json_t *tj = json_object_get(b, "id"), *name = json_object_get(b, "name");
    const json_t *input = json_object_get(b, "input");
    char tid[MR_XLATE_ID_MAX + 32];

    mr__xlate_safe_id(json_string_value(tj), json_string_length(tj), "toolu_", tid, sizeof(tid));
    if (!json_is_string(name))
        return MR_XLATE_MALFORMED;
    x->kind = BLOCK_TOOL;
    x->tool = x->n_tools++;
    if (mr__xlate_send(sink, (mr_conv_event_t){.kind = MR_CONV_EV_TOOL_START,
                                               .index = x->tool,
                                               .id = {tid, strlen(tid)},
                                               .name = mr_conv_str(name),
                                               .text = {"", 0}}) < 0)
        return -1;
    /* the input normally streams as input_json_delta; a non-empty one
     * given up front is sent whole */
    if (json_object_size(input) > 0) {
        char *args = json_dumps(input, MR_CONV_JSON_FLAGS);
        int rc = args ? send_args(x, sink, args, strlen(args)) : -1;
        free(args);
        return rc;
    }
    return 0;
}

static int on_block_start(stream_t *x, const json_t *ev, const mr_conv_sink_t *sink)
{
    const json_t *idx = json_object_get(ev, "index");
    const json_t *b = json_object_get(ev, "content_block");
    const char *type = json_string_value(json_object_get(b, "type"));

    if (!json_is_integer(idx) || !type)
        return MR_XLATE_MALFORMED;
    if (x->block >= 0 && close_block(x, sink) < 0)
        return -1;
    x->block = (long)json_integer_value(idx);
    x->tool_args = 0;
    if (strcmp(type, "text") == 0) {
        const json_t *t = json_object_get(b, "text");
        x->kind = BLOCK_TEXT;
        return json_string_length(t) ? send_text(sink, MR_CONV_EV_TEXT, 0, mr_conv_str(t)) : 0;
    }
    if (strcmp(type, "tool_use") == 0)
        return on_tool_start(x, b, sink);
    x->kind = strcmp(type, "thinking") == 0 ? BLOCK_THINKING : BLOCK_OTHER;
    return 0;
}

static int on_block_delta(stream_t *x, const json_t *ev, const mr_conv_sink_t *sink)
{
    const json_t *idx = json_object_get(ev, "index");
    const json_t *d = json_object_get(ev, "delta");
    const char *type = json_string_value(json_object_get(d, "type"));
    const json_t *v;

    if (!json_is_integer(idx) || !type || x->block < 0 || json_integer_value(idx) != x->block)
        return MR_XLATE_MALFORMED;
    if (strcmp(type, "text_delta") == 0) {
        v = json_object_get(d, "text");
        if (x->kind != BLOCK_TEXT || !json_is_string(v))
            return MR_XLATE_MALFORMED;
        return json_string_length(v) ? send_text(sink, MR_CONV_EV_TEXT, 0, mr_conv_str(v)) : 0;
    }
    if (strcmp(type, "input_json_delta") == 0) {
        v = json_object_get(d, "partial_json");
        if (!json_is_string(v))
            return MR_XLATE_MALFORMED;
        if (x->kind != BLOCK_TOOL || json_string_length(v) == 0)
            return 0; /* server tool inputs are not forwarded */
        return send_args(x, sink, json_string_value(v), json_string_length(v));
    }
    v = json_object_get(d, strcmp(type, "thinking_delta") == 0 ? "thinking" : "signature");
    if (x->kind == BLOCK_THINKING && json_is_string(v) &&
        (strcmp(type, "thinking_delta") == 0 || strcmp(type, "signature_delta") == 0))
        return send_text(sink, type[0] == 't' ? MR_CONV_EV_REASONING : MR_CONV_EV_SIGNATURE, 0,
                         mr_conv_str(v));
    return 0; /* citations_delta ... */
}

static int on_message_delta(stream_t *x, const json_t *ev, const mr_conv_sink_t *sink)
{
    const json_t *d = json_object_get(ev, "delta"), *u = json_object_get(ev, "usage");
    const json_t *sr = json_object_get(d, "stop_reason");
    long v;

    if (json_is_string(sr))
        x->finish = finish_reason(json_string_value(sr));
    if ((v = usage_int(u, "output_tokens")) >= 0)
        x->usage.completion = v;
    if (usage_int(u, "input_tokens") >= 0) {
        mr_conv_usage_t n = x->usage;
        read_usage(u, &n);
        x->usage.prompt = n.prompt;
        if (n.cached >= 0)
            x->usage.cached = n.cached;
        if (n.cache_write >= 0)
            x->usage.cache_write = n.cache_write;
    }
    return send_usage(x, sink);
}

static int on_error(const json_t *ev, const mr_conv_sink_t *sink)
{
    const json_t *e = json_object_get(ev, "error");
    const char *type = json_string_value(json_object_get(e, "type"));
    const char *msg = json_string_value(json_object_get(e, "message"));

    msg = msg ? msg : "upstream reported an error mid-stream";
    if (mr__xlate_send(sink, (mr_conv_event_t){.kind = MR_CONV_EV_ERROR,
                                               .err_type = mr__xlate_error_type(type, 502),
                                               .err_code = type ? type : "upstream_error",
                                               .text = {msg, strlen(msg)}}) < 0)
        return -1;
    return MR_XLATE_UPSTREAM_ERROR;
}

static int dispatch(stream_t *x, const char *type, const json_t *ev, const mr_conv_sink_t *sink)
{
    if (strcmp(type, "error") == 0)
        return on_error(ev, sink);
    if (strcmp(type, "message_start") == 0)
        return on_message_start(x, ev, sink);
    if (strcmp(type, "ping") == 0)
        return 0;
    if (!x->started)
        return MR_XLATE_MALFORMED;
    if (strcmp(type, "content_block_start") == 0)
        return on_block_start(x, ev, sink);
    if (strcmp(type, "content_block_delta") == 0)
        return on_block_delta(x, ev, sink);
    if (strcmp(type, "content_block_stop") == 0)
        return x->block >= 0 ? close_block(x, sink) : 0;
    if (strcmp(type, "message_delta") == 0)
        return on_message_delta(x, ev, sink);
    if (strcmp(type, "message_stop") == 0)
        return finish(x, sink);
    return 0; /* unknown event types are skipped: the API may add some */
}

static int stream_event(void *st, const char *event, const char *data, size_t len,
                        const mr_conv_sink_t *sink)
{
    stream_t *x = st;
    json_t *ev;
    const char *type;
    int rc;

    if (x->stopped)
        return 0; /* nothing follows message_stop */
    ev = json_loadb(data, len, JSON_ALLOW_NUL, NULL);
    type = json_string_value(json_object_get(ev, "type"));
    if (!type && ev)
        type = event; /* the data's own "type" wins over the event field */
    rc = json_is_object(ev) && type && *type ? dispatch(x, type, ev, sink) : MR_XLATE_MALFORMED;
    json_decref(ev);
    return rc;
}

static int stream_end(void *st, const mr_conv_sink_t *sink)
{
    stream_t *x = st;

    if (x->stopped)
        return 0;
    /* message_delta came but message_stop did not: the answer is complete */
    return x->started && x->finish ? finish(x, sink) : MR_XLATE_TRUNCATED;
}

static const mr_xlate_dialect_t dialect = {
    .caps = &caps,
    .emit = anthropic_emit,
    .parse_answer = anthropic_parse_answer,
    .stream_size = sizeof(stream_t),
    .stream_init = stream_init,
    .stream_event = stream_event,
    .stream_end = stream_end,
    .malformed = "a malformed Anthropic event stream",
    .truncated = "ended the stream before the message was complete",
};

static int anthropic_translate(const mr_adapter_in_t *in, const char *body, size_t len,
                               mr_buf_t *out, mr_usage_t *usage, mr_error_t *err)
{
    return mr__xlate_translate(&dialect, in, body, len, out, usage, err);
}

static mr_stream_xlate_t *anthropic_stream_new(const mr_adapter_in_t *in)
{
    return mr__xlate_stream_new(&dialect, in);
}

const mr_adapter_t mr_adapter_anthropic = {
    .name = "anthropic",
    .build = anthropic_build,
    .translate = anthropic_translate,
    .stream_new = anthropic_stream_new,
    .stream_feed = mr__xlate_stream_feed,
    .stream_end = mr__xlate_stream_end,
    .stream_usage = mr__xlate_stream_usage,
    .stream_free = mr__xlate_stream_free,
    .retryable = anthropic_retryable,
    .translate_error = anthropic_translate_error,
    .passthrough = 0,
    .uses_conv = 1,
};
