#include "meridian/messages_write.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { BLOCK_NONE, BLOCK_TEXT, BLOCK_THINKING, BLOCK_REDACTED, BLOCK_TOOL };

static const char *stop_reason(mr_conv_finish_t f)
{
    switch (f) {
    case MR_CONV_FINISH_LENGTH:
        return "max_tokens";
    case MR_CONV_FINISH_TOOL_CALLS:
        return "tool_use";
    case MR_CONV_FINISH_CONTENT_FILTER:
        return "refusal";
    default:
        return "end_turn";
    }
}

/* Anthropic counts cache reads and writes apart from input_tokens. */
static long input_tokens(const mr_conv_usage_t *u)
{
    long in =
        u->prompt - (u->cached > 0 ? u->cached : 0) - (u->cache_write > 0 ? u->cache_write : 0);
    return in > 0 ? in : 0;
}

/* usage: input_tokens (when known, or `fallback` >= 0), output_tokens, and
 * the cache counts the upstream gave. */
static json_t *usage_json(const mr_conv_usage_t *u, long fallback)
{
    json_t *j = json_object();
    long in = u->prompt >= 0 ? input_tokens(u) : fallback;

    if (!j)
        return NULL;
    if (in >= 0)
        json_object_set_new(j, "input_tokens", json_integer(in));
    if (u->cache_write >= 0)
        json_object_set_new(j, "cache_creation_input_tokens", json_integer(u->cache_write));
    if (u->cached >= 0)
        json_object_set_new(j, "cache_read_input_tokens", json_integer(u->cached));
    json_object_set_new(j, "output_tokens", json_integer(u->completion > 0 ? u->completion : 0));
    return j;
}

/* "msg_" + the upstream's id (unless it is one already) */
static void message_id(mr_conv_str_t id, char *dst, size_t cap)
{
    char safe[MR_CODEC_ID_MAX];

    mr_codec_safe_id(id.p, id.n, "", safe, sizeof(safe));
    snprintf(dst, cap, "%s%s", strncmp(safe, "msg_", 4) == 0 ? "" : "msg_", safe);
}

/* ------------------------------------------------------------ answers */

static json_t *thinking_block(const mr_conv_reasoning_t *r)
{
    if (!r->text.p && r->data.p)
        return json_pack("{s:s, s:o}", "type", "redacted_thinking", "data", mr_codec_str(r->data));
    return json_pack("{s:s, s:o, s:o}", "type", "thinking", "thinking", mr_codec_str(r->text),
                     "signature", mr_codec_str(r->signature));
}

/* tool_use.input must be an object: the arguments' JSON text parsed */
static json_t *tool_block(const mr_conv_tool_call_t *c)
{
    json_t *input = c->args.n ? json_loadb(c->args.p, c->args.n, 0, NULL) : json_object();

    if (!json_is_object(input)) {
        json_decref(input);
        return NULL;
    }
    return json_pack("{s:s, s:o, s:o, s:o}", "type", "tool_use", "id", mr_codec_str(c->id), "name",
                     mr_codec_str(c->name), "input", input);
}

static int content(const mr_conv_choice_t *ch, json_t *blocks, mr_error_t *err)
{
    for (size_t k = 0; ch && k < ch->n_parts; k++) {
        const mr_conv_part_t *p = &ch->parts[k];
        json_t *b = NULL;
        if ((p->kind == MR_CONV_TEXT || p->kind == MR_CONV_REFUSAL) && p->u.text.n == 0)
            continue; /* Anthropic refuses empty text blocks sent back */
        if (p->kind == MR_CONV_TEXT || p->kind == MR_CONV_REFUSAL)
            b = json_pack("{s:s, s:o}", "type", "text", "text", mr_codec_str(p->u.text));
        else if (p->kind == MR_CONV_REASONING)
            b = thinking_block(&p->u.reasoning);
        else if (p->kind == MR_CONV_TOOL_CALL && !(b = tool_block(&p->u.call))) {
            mr_error_set(err, 502, "api_error", "upstream_malformed", NULL,
                         "the upstream's tool call %.100s has arguments that are not a JSON "
                         "object",
                         p->u.call.name.p ? p->u.call.name.p : "");
            return -1;
        } else if (!b) {
            continue;
        }
        if (json_array_append_new(blocks, b) < 0)
            goto oom;
    }
    return 0;
oom:
    mr_error_set(err, 500, "api_error", "internal_error", NULL, "out of memory");
    return -1;
}

int mr_messages_write_answer(const mr_conv_answer_t *a, mr_buf_t *out, mr_error_t *err)
{
    const mr_conv_choice_t *ch = a->n_choices ? &a->choices[0] : NULL;
    json_t *blocks = json_array();
    char id[MR_CODEC_ID_MAX + 8];

    if (!blocks) {
        mr_error_set(err, 500, "api_error", "internal_error", NULL, "out of memory");
        return -1;
    }
    if (content(ch, blocks, err) < 0) {
        json_decref(blocks);
        return -1;
    }
    message_id(a->id, id, sizeof(id));
    if (mr_codec_append_json(
            out, json_pack("{s:s, s:s, s:s, s:o, s:o, s:s, s:n, s:o}", "id", id, "type", "message",
                           "role", "assistant", "model", mr_codec_str(a->model), "content", blocks,
                           "stop_reason", stop_reason(ch ? ch->finish : MR_CONV_FINISH_STOP),
                           "stop_sequence", "usage", usage_json(&a->usage, 0))) < 0) {
        mr_error_set(err, 502, "api_error", "upstream_too_large", NULL,
                     "the translated answer is too large");
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------ errors */

const char *mr_messages_error_type(int status)
{
    switch (status) {
    case 401:
        return "authentication_error";
    case 403:
        return "permission_error";
    case 404:
        return "not_found_error";
    case 429:
        return "rate_limit_error";
    case 503:
    case 529:
        return "overloaded_error";
    default:
        return status >= 500 ? "api_error" : "invalid_request_error";
    }
}

/* An OpenAI error type (or an Anthropic one, kept) as Anthropic's. */
static const char *anthropic_type(const char *type)
{
    static const struct {
        const char *from, *to;
    } map[] = {
        {"invalid_request_error", "invalid_request_error"},
        {"authentication_error", "authentication_error"},
        {"permission_error", "permission_error"},
        {"not_found_error", "not_found_error"},
        {"rate_limit_error", "rate_limit_error"},
        {"overloaded_error", "overloaded_error"},
        {"service_unavailable_error", "overloaded_error"},
        {"api_error", "api_error"},
    };
    for (size_t i = 0; type && i < sizeof(map) / sizeof(map[0]); i++)
        if (strcmp(map[i].from, type) == 0)
            return map[i].to;
    return "api_error";
}

static json_t *error_json(const char *type, mr_conv_str_t message)
{
    json_t *msg = json_stringn(message.p ? message.p : "", message.n);

    if (!msg) /* not UTF-8: keep it readable */
        msg = json_string("the upstream's error message is not valid UTF-8");
    return json_pack("{s:s, s:{s:s, s:o}}", "type", "error", "error", "type", type, "message", msg);
}

char *mr_messages_error_body(const mr_error_t *e, size_t *len)
{
    json_t *j = error_json(mr_messages_error_type(e->status),
                           (mr_conv_str_t){e->message, strlen(e->message)});
    char *s = j ? json_dumps(j, MR_CONV_JSON_FLAGS) : NULL;

    json_decref(j);
    if (s && len)
        *len = strlen(s);
    return s;
}

static void error_event(mr_buf_t *out, const char *type, mr_conv_str_t message)
{
    mr_codec_sse(out, "error", error_json(anthropic_type(type), message));
}

void mr_messages_write_error(mr_buf_t *out, const char *type, const char *message)
{
    error_event(out, type, (mr_conv_str_t){message, message ? strlen(message) : 0});
}

/* ------------------------------------------------------------ streams */

void mr_messages_writer_init(mr_messages_writer_t *w, long input_estimate)
{
    memset(w, 0, sizeof(*w));
    w->input_estimate = input_estimate;
    w->_block = -1;
    w->_usage = MR_CONV_USAGE_UNKNOWN;
    mr_buf_init(&w->_held, MR_MESSAGES_HOLD_MAX);
}

void mr_messages_writer_free(mr_messages_writer_t *w)
{
    mr_buf_free(&w->_held);
}

int mr_messages_writer_content(const mr_messages_writer_t *w)
{
    return w->_n_blocks > 0;
}

void mr_messages_writer_usage(const mr_messages_writer_t *w, mr_conv_usage_t *u)
{
    *u = w->_usage;
}

int mr_messages_writer_failed(const mr_messages_writer_t *w)
{
    return w->_failed;
}

/* Where content events go: held until message_start is out. */
static mr_buf_t *target(mr_messages_writer_t *w)
{
    return w->_started ? w->out : &w->_held;
}

static int start(mr_messages_writer_t *w)
{
    json_t *msg;

    if (w->_started)
        return 0;
    w->_started = 1;
    msg = json_pack("{s:s, s:s, s:s, s:[], s:s, s:n, s:n, s:o}", "id", w->_id, "type", "message",
                    "role", "assistant", "content", "model", w->_model, "stop_reason",
                    "stop_sequence", "usage",
                    usage_json(&w->_usage, w->input_estimate >= 0 ? w->input_estimate : 0));
    if (mr_codec_sse(w->out, "message_start",
                     json_pack("{s:s, s:o}", "type", "message_start", "message", msg)) < 0 ||
        mr_buf_append_force(w->out, mr_buf_ptr(&w->_held), mr_buf_len(&w->_held)) < 0)
        return -1;
    mr_buf_free(&w->_held);
    return 0;
}

static int emit(mr_messages_writer_t *w, const char *event, json_t *data)
{
    mr_buf_t *t = target(w);

    if (t == &w->_held && mr_buf_len(t) > MR_MESSAGES_HOLD_MAX / 2 && start(w) < 0)
        return -1; /* enough held: the count will not come in time */
    return mr_codec_sse(target(w), event, data);
}

static int close_block(mr_messages_writer_t *w)
{
    int rc = 0;

    if (w->_block >= 0)
        rc = emit(w, "content_block_stop",
                  json_pack("{s:s, s:i}", "type", "content_block_stop", "index", w->_block));
    w->_block = -1;
    w->_kind = BLOCK_NONE;
    return rc;
}

static void seen(mr_messages_writer_t *w, mr_conv_str_t id, mr_conv_str_t model)
{
    if (w->_seen)
        return;
    w->_seen = 1;
    message_id(id, w->_id, sizeof(w->_id));
    mr_codec_view_copy(model, w->_model, sizeof(w->_model));
}

static int open_block(mr_messages_writer_t *w, int kind, json_t *block)
{
    int rc;

    seen(w, (mr_conv_str_t){0}, (mr_conv_str_t){0});
    if (close_block(w) < 0) {
        json_decref(block);
        return -1;
    }
    w->_block = w->_n_blocks++;
    w->_kind = kind;
    rc = emit(w, "content_block_start",
              json_pack("{s:s, s:i, s:o}", "type", "content_block_start", "index", w->_block,
                        "content_block", block));
    if (rc == 0 && !w->_pinged) {
        w->_pinged = 1;
        rc = emit(w, "ping", json_pack("{s:s}", "type", "ping"));
    }
    return rc;
}

static int delta(mr_messages_writer_t *w, const char *type, const char *key, mr_conv_str_t s)
{
    if (s.n == 0)
        return 0;
    return emit(w, "content_block_delta",
                json_pack("{s:s, s:i, s:{s:s, s:o}}", "type", "content_block_delta", "index",
                          w->_block, "delta", "type", type, key, mr_codec_str(s)));
}

static int on_text(mr_messages_writer_t *w, int kind, mr_conv_str_t s)
{
    if (s.n == 0)
        return 0;
    if (w->_kind != kind) {
        json_t *block = kind == BLOCK_TEXT ? json_pack("{s:s, s:s}", "type", "text", "text", "")
                                           : json_pack("{s:s, s:s, s:s}", "type", "thinking",
                                                       "thinking", "", "signature", "");
        if (open_block(w, kind, block) < 0)
            return -1;
    }
    return kind == BLOCK_TEXT ? delta(w, "text_delta", "text", s)
                              : delta(w, "thinking_delta", "thinking", s);
}

static int on_tool(mr_messages_writer_t *w, const mr_conv_event_t *ev)
{
    w->_tool = ev->index;
    if (open_block(w, BLOCK_TOOL,
                   json_pack("{s:s, s:o, s:o, s:{}}", "type", "tool_use", "id",
                             mr_codec_str(ev->id), "name", mr_codec_str(ev->name), "input")) < 0)
        return -1;
    return delta(w, "input_json_delta", "partial_json", ev->text);
}

/* Arguments of a call whose block is closed cannot be sent any more. */
static int fail(mr_messages_writer_t *w, const char *message)
{
    if (start(w) < 0)
        return -1;
    w->_failed = 1;
    mr_messages_write_error(w->out, "api_error", message);
    return 0;
}

static int on_args(mr_messages_writer_t *w, const mr_conv_event_t *ev)
{
    if (w->_kind != BLOCK_TOOL || w->_tool != ev->index)
        return ev->text.n ? fail(w, "the upstream interleaved the arguments of two tool calls, "
                                    "which Messages streams cannot carry")
                          : 0;
    return delta(w, "input_json_delta", "partial_json", ev->text);
}

static int on_end(mr_messages_writer_t *w)
{
    seen(w, (mr_conv_str_t){0}, (mr_conv_str_t){0});
    if (start(w) < 0 || close_block(w) < 0)
        return -1;
    w->_ended = 1;
    if (mr_codec_sse(w->out, "message_delta",
                     json_pack("{s:s, s:{s:s, s:n}, s:o}", "type", "message_delta", "delta",
                               "stop_reason", stop_reason(w->_finish), "stop_sequence", "usage",
                               usage_json(&w->_usage, -1))) < 0)
        return -1;
    return mr_codec_sse(w->out, "message_stop", json_pack("{s:s}", "type", "message_stop"));
}

static int on_error(mr_messages_writer_t *w, const mr_conv_event_t *ev)
{
    /* what was held came before the error: it goes out first */
    if (w->_seen && start(w) < 0)
        return -1;
    w->_ended = 1;
    error_event(w->out,
                ev->err_code && strstr(ev->err_code, "_error") ? ev->err_code : ev->err_type,
                ev->text);
    return 0;
}

static int on_usage(mr_messages_writer_t *w, const mr_conv_usage_t *u)
{
    w->_usage = *u;
    return w->_seen && u->prompt >= 0 ? start(w) : 0;
}

int mr_messages_write_event(void *ctx, const mr_conv_event_t *ev)
{
    mr_messages_writer_t *w = ctx;

    if (w->_ended || w->_failed)
        return 0;
    if (ev->choice != 0 && ev->kind != MR_CONV_EV_USAGE && ev->kind != MR_CONV_EV_END &&
        ev->kind != MR_CONV_EV_ERROR)
        return 0;
    switch (ev->kind) {
    case MR_CONV_EV_START:
        seen(w, ev->id, ev->name);
        return w->_usage.prompt >= 0 ? start(w) : 0;
    case MR_CONV_EV_TEXT:
        return on_text(w, BLOCK_TEXT, ev->text);
    case MR_CONV_EV_REASONING:
        return on_text(w, BLOCK_THINKING, ev->text);
    case MR_CONV_EV_SIGNATURE:
        return w->_kind == BLOCK_THINKING ? delta(w, "signature_delta", "signature", ev->text) : 0;
    case MR_CONV_EV_REASONING_DATA:
        /* redacted thinking arrives whole, in its content_block_start */
        return ev->text.n ? open_block(w, BLOCK_REDACTED,
                                       json_pack("{s:s, s:o}", "type", "redacted_thinking", "data",
                                                 mr_codec_str(ev->text)))
                          : 0;
    case MR_CONV_EV_TOOL_START:
        return on_tool(w, ev);
    case MR_CONV_EV_TOOL_ARGS:
        return on_args(w, ev);
    case MR_CONV_EV_USAGE:
        return on_usage(w, ev->usage);
    case MR_CONV_EV_FINISH:
        w->_finish = ev->finish;
        return close_block(w);
    case MR_CONV_EV_END:
        return on_end(w);
    case MR_CONV_EV_ERROR:
        return on_error(w, ev);
    }
    return 0;
}

int mr_messages_writer_flush(mr_messages_writer_t *w)
{
    return w->_seen && !w->_ended && !w->_failed ? start(w) : 0;
}
