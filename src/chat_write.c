#include "meridian/chat_write.h"

#include "meridian/error.h"

#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static json_t *str_json(mr_conv_str_t s)
{
    return json_stringn(s.p ? s.p : "", s.n);
}

/* {"prompt_tokens","completion_tokens","total_tokens"} (+ details when
 * positive: prompt_tokens_details.cached_tokens and cache_write_tokens, as
 * OpenRouter writes cache writes; completion_tokens_details.reasoning_tokens);
 * unknown counts are written as 0. */
static json_t *usage_json(const mr_conv_usage_t *u)
{
    long p = u->prompt > 0 ? u->prompt : 0, c = u->completion > 0 ? u->completion : 0;
    json_int_t total = p > LONG_MAX - c ? LONG_MAX : (json_int_t)p + c; /* counts are untrusted */
    json_t *j = json_pack("{s:I, s:I, s:I}", "prompt_tokens", (json_int_t)p, "completion_tokens",
                          (json_int_t)c, "total_tokens", total);
    json_t *pd = json_object();

    if (pd && u->cached > 0)
        json_object_set_new(pd, "cached_tokens", json_integer(u->cached));
    if (pd && u->cache_write > 0)
        json_object_set_new(pd, "cache_write_tokens", json_integer(u->cache_write));
    if (j && json_object_size(pd))
        json_object_set(j, "prompt_tokens_details", pd);
    json_decref(pd);
    if (j && u->reasoning > 0)
        json_object_set_new(j, "completion_tokens_details",
                            json_pack("{s:I}", "reasoning_tokens", (json_int_t)u->reasoning));
    return j;
}

/* ------------------------------------------------------------ reasoning */

/* OpenRouter's `format` of a provider kind's reasoning. */
static const char *format_of(const char *kind, size_t n)
{
    if (kind && n == 9 && !memcmp(kind, "anthropic", 9))
        return "anthropic-claude-v1";
    if (kind && n == 6 && !memcmp(kind, "gemini", 6))
        return "google-gemini-v1";
    return "unknown";
}

/* One reasoning_details item: {"type", <key>: value, "index", "format",
 * "model"}; the model only when known. NULL when out of memory. */
static json_t *detail(const char *type, const char *key, mr_conv_str_t value, long index,
                      mr_conv_origin_t o)
{
    json_t *d = json_pack("{s:s, s:o, s:I, s:s}", "type", type, key, str_json(value), "index",
                          (json_int_t)index, "format", format_of(o.kind.p, o.kind.n));

    if (d && o.model.p)
        json_object_set_new(d, "model", str_json(o.model));
    return d;
}

/* The items of one reasoning part: text (with its signature), or data. */
static json_t *part_detail(const mr_conv_reasoning_t *r, long index)
{
    json_t *d;

    if (r->data.p && !r->text.p)
        return detail("reasoning.encrypted", "data", r->data, index, r->origin);
    d = detail("reasoning.text", "text", r->text, index, r->origin);
    if (d && r->signature.p)
        json_object_set_new(d, "signature", str_json(r->signature));
    return d;
}

/* {"google":{"thought_signature":sig}} */
static json_t *extra_content(mr_conv_str_t sig)
{
    return json_pack("{s:{s:o}}", "google", "thought_signature", str_json(sig));
}

/* ------------------------------------------------------------ answers */

static json_t *call_json(const mr_conv_tool_call_t *c)
{
    json_t *j = json_pack("{s:o, s:s, s:{s:o, s:o}}", "id", str_json(c->id), "type", "function",
                          "function", "name", str_json(c->name), "arguments", str_json(c->args));

    if (j && c->signature.p)
        json_object_set_new(j, "extra_content", extra_content(c->signature));
    return j;
}

/* What a choice's parts become: the text joined, the reasoning text joined,
 * the reasoning blocks and the tool calls, in order. */
typedef struct message_parts {
    mr_buf_t text, reasoning;
    int has_text, has_reasoning;
    json_t *calls, *details;
} message_parts_t;

static int collect(const mr_conv_choice_t *ch, message_parts_t *m)
{
    for (size_t k = 0; k < ch->n_parts; k++) {
        const mr_conv_part_t *p = &ch->parts[k];
        const mr_conv_reasoning_t *r = &p->u.reasoning;
        int rc = 0;
        if (p->kind == MR_CONV_TEXT) {
            m->has_text = 1;
            rc = mr_buf_append(&m->text, p->u.text.p, p->u.text.n);
        } else if (p->kind == MR_CONV_TOOL_CALL) {
            rc = json_array_append_new(m->calls, call_json(&p->u.call));
        } else if (p->kind == MR_CONV_REASONING && (r->text.p || r->data.p)) {
            m->has_reasoning |= r->text.p != NULL;
            if (r->text.p)
                rc = mr_buf_append(&m->reasoning, r->text.p, r->text.n);
            if (rc == 0)
                rc = json_array_append_new(m->details,
                                           part_detail(r, (long)json_array_size(m->details)));
        }
        if (rc < 0)
            return -1;
    }
    return 0;
}

/* The text parts joined ("content", null when the answer is only tool
 * calls), then the calls, the reasoning text and its details. */
static json_t *message_json(const mr_conv_choice_t *ch)
{
    message_parts_t m = {.calls = json_array(), .details = json_array()};
    json_t *msg = NULL;

    mr_buf_init(&m.text, (size_t)-1);
    mr_buf_init(&m.reasoning, (size_t)-1);
    if (!m.calls || !m.details || collect(ch, &m) < 0)
        goto done;
    msg = json_pack("{s:s, s:o}", "role", "assistant", "content",
                    m.has_text || json_array_size(m.calls) == 0
                        ? json_stringn(mr_buf_ptr(&m.text), mr_buf_len(&m.text))
                        : json_null());
    if (msg && json_array_size(m.calls))
        json_object_set(msg, "tool_calls", m.calls);
    if (msg)
        json_object_set_new(msg, "refusal", json_null());
    if (msg && m.has_reasoning)
        json_object_set_new(msg, "reasoning_content",
                            json_stringn(mr_buf_ptr(&m.reasoning), mr_buf_len(&m.reasoning)));
    if (msg && json_array_size(m.details))
        json_object_set(msg, "reasoning_details", m.details);
done:
    json_decref(m.calls);
    json_decref(m.details);
    mr_buf_free(&m.text);
    mr_buf_free(&m.reasoning);
    return msg;
}

static int append_json(mr_buf_t *out, json_t *j)
{
    char *s = j ? json_dumps(j, MR_CONV_JSON_FLAGS) : NULL;
    int rc = s ? mr_buf_append(out, s, strlen(s)) : -1;

    json_decref(j);
    free(s);
    return rc;
}

int mr_chat_write_answer(const mr_conv_answer_t *a, long long created, mr_buf_t *out)
{
    json_t *choices = json_array();
    char id[MR_CHAT_ID_MAX];

    for (size_t i = 0; choices && i < a->n_choices; i++) {
        const mr_conv_choice_t *ch = &a->choices[i];
        if (json_array_append_new(choices, json_pack("{s:I, s:o, s:n, s:s}", "index",
                                                     (json_int_t)ch->index, "message",
                                                     message_json(ch), "logprobs", "finish_reason",
                                                     mr_conv_finish_name(ch->finish))) < 0) {
            json_decref(choices);
            return -1;
        }
    }
    snprintf(id, sizeof(id), "chatcmpl-%s", a->id.p ? a->id.p : "");
    return append_json(out, json_pack("{s:s, s:s, s:I, s:o, s:o, s:o}", "id", id, "object",
                                      "chat.completion", "created", (json_int_t)created, "model",
                                      str_json(a->model), "choices", choices, "usage",
                                      usage_json(&a->usage)));
}

/* ------------------------------------------------------------ streams */

/* prefix + s, cut on a UTF-8 character boundary to fit (parsers bound
 * what they pass: this only keeps a longer one valid). */
static void copy_id(char *dst, const char *prefix, mr_conv_str_t s)
{
    size_t room = MR_CHAT_ID_MAX - 1 - strlen(prefix), n = s.n < room ? s.n : room;

    while (n < s.n && n > 0 && ((unsigned char)s.p[n] & 0xC0) == 0x80)
        n--;
    snprintf(dst, MR_CHAT_ID_MAX, "%s%.*s", prefix, (int)n, s.p ? s.p : "");
}

void mr_chat_writer_init(mr_chat_writer_t *w, long long created, int wants_usage)
{
    memset(w, 0, sizeof(*w));
    w->created = created;
    w->wants_usage = wants_usage;
    w->usage = MR_CONV_USAGE_UNKNOWN;
}

void mr_chat_writer_origin(mr_chat_writer_t *w, const char *kind, const char *model)
{
    snprintf(w->origin_kind, sizeof(w->origin_kind), "%s", kind ? kind : "");
    copy_id(w->origin_model, "", (mr_conv_str_t){model, model ? strlen(model) : 0});
}

/* "data: <j>\n\n", ignoring the buffer's limit; takes the reference. */
static int emit(mr_buf_t *out, json_t *j)
{
    char *s = j ? json_dumps(j, MR_CONV_JSON_FLAGS) : NULL;
    int rc = -1;

    json_decref(j);
    if (s && mr_buf_append_force(out, "data: ", 6) == 0 &&
        mr_buf_append_force(out, s, strlen(s)) == 0)
        rc = mr_buf_append_force(out, "\n\n", 2);
    free(s);
    return rc;
}

static json_t *chunk(const mr_chat_writer_t *w)
{
    return json_pack("{s:s, s:s, s:I, s:s}", "id", w->id, "object", "chat.completion.chunk",
                     "created", (json_int_t)w->created, "model", w->model);
}

/* One chunk whose only choice carries `delta` (taken). */
static int emit_delta(const mr_chat_writer_t *w, long choice, json_t *delta, const char *finish)
{
    json_t *c = chunk(w);

    if (!c || !delta) {
        json_decref(c);
        json_decref(delta);
        return -1;
    }
    json_object_set_new(c, "choices",
                        json_pack("[{s:I, s:o, s:n, s:o}]", "index", (json_int_t)choice, "delta",
                                  delta, "logprobs", "finish_reason",
                                  finish ? json_string(finish) : json_null()));
    return emit(w->out, c);
}

static int end_answer(mr_chat_writer_t *w)
{
    static const char done[] = "data: [DONE]\n\n";

    if (w->wants_usage) {
        json_t *c = chunk(w);
        if (!c)
            return -1;
        json_object_set_new(c, "choices", json_array());
        json_object_set_new(c, "usage", usage_json(&w->usage));
        if (emit(w->out, c) < 0)
            return -1;
    }
    return mr_buf_append_force(w->out, done, sizeof(done) - 1);
}

/* The delta of a tool call's start, with its Gemini signature. */
static json_t *tool_start(const mr_conv_event_t *ev)
{
    json_t *call = json_pack("{s:i, s:o, s:s, s:{s:o, s:o}}", "index", ev->index, "id",
                             str_json(ev->id), "type", "function", "function", "name",
                             str_json(ev->name), "arguments", str_json(ev->text));

    if (call && ev->signature.p)
        json_object_set_new(call, "extra_content", extra_content(ev->signature));
    return call ? json_pack("{s:[o]}", "tool_calls", call) : NULL;
}

/* A reasoning event as a delta: text also as reasoning_content; every
 * piece as a reasoning_details item that clients merge by index. */
static json_t *reasoning_delta(const mr_chat_writer_t *w, const mr_conv_event_t *ev)
{
    mr_conv_origin_t o = {{w->origin_kind[0] ? w->origin_kind : NULL, strlen(w->origin_kind)},
                          {w->origin_model[0] ? w->origin_model : NULL, strlen(w->origin_model)}};
    json_t *d, *delta = json_object();

    if (ev->kind == MR_CONV_EV_REASONING) {
        d = detail("reasoning.text", "text", ev->text, ev->index, o);
        if (delta)
            json_object_set_new(delta, "reasoning_content", str_json(ev->text));
    } else if (ev->kind == MR_CONV_EV_SIGNATURE) {
        d = detail("reasoning.text", "signature", ev->text, ev->index, o);
    } else {
        d = detail("reasoning.encrypted", "data", ev->text, ev->index, o);
    }
    if (!delta || !d) {
        json_decref(d);
        json_decref(delta);
        return NULL;
    }
    json_object_set_new(delta, "reasoning_details", json_pack("[o]", d));
    return delta;
}

int mr_chat_write_event(void *ctx, const mr_conv_event_t *ev)
{
    mr_chat_writer_t *w = ctx;

    switch (ev->kind) {
    case MR_CONV_EV_START:
        copy_id(w->id, "chatcmpl-", ev->id);
        copy_id(w->model, "", ev->name);
        return emit_delta(w, ev->choice,
                          json_pack("{s:s, s:s}", "role", "assistant", "content", ""), NULL);
    case MR_CONV_EV_TEXT:
        w->content = 1;
        return emit_delta(w, ev->choice, json_pack("{s:o}", "content", str_json(ev->text)), NULL);
    case MR_CONV_EV_REASONING:
    case MR_CONV_EV_SIGNATURE:
    case MR_CONV_EV_REASONING_DATA:
        w->content = 1;
        return emit_delta(w, ev->choice, reasoning_delta(w, ev), NULL);
    case MR_CONV_EV_TOOL_START:
        w->content = 1;
        return emit_delta(w, ev->choice, tool_start(ev), NULL);
    case MR_CONV_EV_TOOL_ARGS:
        return emit_delta(w, ev->choice,
                          json_pack("{s:[{s:i, s:{s:o}}]}", "tool_calls", "index", ev->index,
                                    "function", "arguments", str_json(ev->text)),
                          NULL);
    case MR_CONV_EV_USAGE:
        w->usage = *ev->usage;
        return 0;
    case MR_CONV_EV_FINISH:
        return emit_delta(w, ev->choice, json_object(), mr_conv_finish_name(ev->finish));
    case MR_CONV_EV_END:
        return end_answer(w);
    case MR_CONV_EV_ERROR:
        mr_chat_write_error(w->out, ev->err_type, ev->err_code, "%s", ev->text.p ? ev->text.p : "");
        return 0;
    }
    return 0;
}

void mr_chat_write_error(mr_buf_t *out, const char *type, const char *code, const char *fmt, ...)
{
    mr_error_t e;
    va_list ap;
    size_t len;
    char *body;

    e.status = 502;
    e.type = type ? type : "api_error";
    e.code = code;
    e.param = NULL;
    va_start(ap, fmt);
    vsnprintf(e.message, sizeof(e.message), fmt, ap);
    va_end(ap);
    body = mr_error_body(&e, NULL, NULL, &len);
    if (!body)
        return;
    mr_buf_append_force(out, "data: ", 6);
    mr_buf_append_force(out, body, len);
    mr_buf_append_force(out, "\n\n", 2);
    free(body);
}
