/*
 * The Anthropic Messages dialect, answer half (anthropic.h): complete
 * messages into the conversation model's answer, event streams
 * (message_start, content blocks, message_delta, message_stop) into its
 * events. Thinking blocks are kept as reasoning.
 */
#include "anthropic.h"
#include "xlate.h"

#include <stdlib.h>
#include <string.h>

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

/* Anthropic's input_tokens excludes cached input; OpenAI's prompt_tokens
 * includes it. Cache reads and writes are kept apart as well. */
void mr__anthropic_usage(const json_t *u, mr_conv_usage_t *o)
{
    long in = mr_codec_count(u, "input_tokens"), cr = mr_codec_count(u, "cache_read_input_tokens");
    long cw = mr_codec_count(u, "cache_creation_input_tokens");

    o->cached = cr;
    o->cache_write = cw;
    o->prompt = in < 0 ? -1 : in + (cw > 0 ? cw : 0) + (cr > 0 ? cr : 0);
    o->completion = mr_codec_count(u, "output_tokens");
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
    mr_codec_safe_id(json_string_value(tj), json_string_length(tj), "toolu_", tid, sizeof(tid));
    c->id = mr_conv_copy(arena, tid, strlen(tid));
    c->name = (mr_conv_str_t){name ? name : "", name ? strlen(name) : 0};
    c->args = mr_conv_copy(arena, args, strlen(args));
    free(args);
    return c->id.p && c->args.p ? 0 : -1;
}

/* One content block -> a part; 0 when it carries nothing for the model.
 * Thinking is signed by this target (kind anthropic, model). */
static int block_part(mr_conv_arena_t *arena, const json_t *b, const char *model, mr_conv_part_t *p)
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
        p->u.reasoning.origin.kind = (mr_conv_str_t){"anthropic", 9};
        p->u.reasoning.origin.model = (mr_conv_str_t){model, model ? strlen(model) : 0};
    } else {
        return 0; /* server tool blocks: not representable */
    }
    return 1;
}

static int parse_answer(const mr_adapter_in_t *in, const json_t *root, const char *raw, size_t len,
                        mr_conv_answer_t *a, mr_error_t *err)
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
        int rc = block_part(a->_arena, b, in->model, &ch->parts[ch->n_parts]);
        if (rc < 0)
            return mr__xlate_oom(err);
        ch->n_parts += (size_t)rc;
    }
    ch->finish = finish_reason(json_string_value(json_object_get(root, "stop_reason")));
    mr__anthropic_usage(json_object_get(root, "usage"), &a->usage);
    mr_codec_safe_id(json_string_value(jid), json_string_length(jid), "msg_", id, sizeof(id));
    mr_codec_model(json_object_get(root, "model"), in->model, model, sizeof(model));
    a->id = mr_conv_copy(a->_arena, id, strlen(id));
    a->model = mr_conv_copy(a->_arena, model, strlen(model));
    return a->id.p && a->model.p ? 0 : mr__xlate_oom(err);
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
    int n_reasoning; /* reasoning blocks started: the open one is n_reasoning - 1 */
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
    mr_codec_safe_id(json_string_value(jid), json_string_length(jid), "msg_", x->id, sizeof(x->id));
    mr_codec_model(json_object_get(m, "model"), x->fallback_model, x->model, sizeof(x->model));
    mr__anthropic_usage(json_object_get(m, "usage"), &x->usage);
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

    mr_codec_safe_id(json_string_value(tj), json_string_length(tj), "toolu_", tid, sizeof(tid));
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

/* A thinking block: its text and signature follow as deltas (a start that
 * already carries some is sent too); a redacted one is whole at its start. */
static int on_thinking_start(stream_t *x, const json_t *b, const char *type,
                             const mr_conv_sink_t *sink)
{
    const json_t *text = json_object_get(b, "thinking"), *sig = json_object_get(b, "signature");
    int i = x->n_reasoning++, rc = 0;

    x->kind = BLOCK_THINKING;
    if (type[0] == 'r') {
        const json_t *data = json_object_get(b, "data");
        if (!json_is_string(data))
            return MR_XLATE_MALFORMED;
        return send_text(sink, MR_CONV_EV_REASONING_DATA, i, mr_conv_str(data));
    }
    if (json_string_length(text))
        rc = send_text(sink, MR_CONV_EV_REASONING, i, mr_conv_str(text));
    if (rc == 0 && json_string_length(sig))
        rc = send_text(sink, MR_CONV_EV_SIGNATURE, i, mr_conv_str(sig));
    return rc;
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
    if (strcmp(type, "thinking") == 0 || strcmp(type, "redacted_thinking") == 0)
        return on_thinking_start(x, b, type, sink);
    x->kind = BLOCK_OTHER;
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
        return send_text(sink, type[0] == 't' ? MR_CONV_EV_REASONING : MR_CONV_EV_SIGNATURE,
                         x->n_reasoning - 1, mr_conv_str(v));
    return 0; /* citations_delta ... */
}

static int on_message_delta(stream_t *x, const json_t *ev, const mr_conv_sink_t *sink)
{
    const json_t *d = json_object_get(ev, "delta"), *u = json_object_get(ev, "usage");
    const json_t *sr = json_object_get(d, "stop_reason");
    long v;

    if (json_is_string(sr))
        x->finish = finish_reason(json_string_value(sr));
    if ((v = mr_codec_count(u, "output_tokens")) >= 0)
        x->usage.completion = v;
    if (mr_codec_count(u, "input_tokens") >= 0) {
        mr_conv_usage_t n = x->usage;
        mr__anthropic_usage(u, &n);
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

    (void)sink;
    if (x->stopped)
        return 0;
    /* without message_stop the message may have been cut anywhere (an
     * upstream closing a Connection: close response early looks like an
     * ordinary end to HTTP): never passed off as complete */
    return MR_XLATE_TRUNCATED;
}

const mr_xlate_parser_t mr__anthropic_parser = {
    .answer = parse_answer,
    .stream_size = sizeof(stream_t),
    .stream_init = stream_init,
    .stream_event = stream_event,
    .stream_end = stream_end,
    .malformed = "a malformed Anthropic event stream",
    .truncated = "ended the stream before message_stop",
};
