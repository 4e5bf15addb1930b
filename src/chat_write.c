#include "meridian/chat_write.h"

#include "meridian/error.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static json_t *str_json(mr_conv_str_t s)
{
    return json_stringn(s.p ? s.p : "", s.n);
}

/* {"prompt_tokens","completion_tokens","total_tokens"} (+ details when
 * positive); unknown counts are written as 0. */
static json_t *usage_json(const mr_conv_usage_t *u)
{
    long p = u->prompt > 0 ? u->prompt : 0, c = u->completion > 0 ? u->completion : 0;
    json_t *j = json_pack("{s:I, s:I, s:I}", "prompt_tokens", (json_int_t)p, "completion_tokens",
                          (json_int_t)c, "total_tokens", (json_int_t)p + (json_int_t)c);

    if (j && u->cached > 0)
        json_object_set_new(j, "prompt_tokens_details",
                            json_pack("{s:I}", "cached_tokens", (json_int_t)u->cached));
    if (j && u->reasoning > 0)
        json_object_set_new(j, "completion_tokens_details",
                            json_pack("{s:I}", "reasoning_tokens", (json_int_t)u->reasoning));
    return j;
}

/* ------------------------------------------------------------ answers */

static json_t *call_json(const mr_conv_tool_call_t *c)
{
    return json_pack("{s:o, s:s, s:{s:o, s:o}}", "id", str_json(c->id), "type", "function",
                     "function", "name", str_json(c->name), "arguments", str_json(c->args));
}

/* The text parts joined ("content", null when the answer is only tool
 * calls), then the calls. */
static json_t *message_json(const mr_conv_choice_t *ch)
{
    json_t *calls = json_array(), *msg = NULL;
    mr_buf_t text;
    int has_text = 0;

    mr_buf_init(&text, (size_t)-1);
    for (size_t k = 0; calls && k < ch->n_parts; k++) {
        const mr_conv_part_t *p = &ch->parts[k];
        if (p->kind == MR_CONV_TEXT) {
            has_text = 1;
            if (mr_buf_append(&text, p->u.text.p, p->u.text.n) < 0)
                goto done;
        } else if (p->kind == MR_CONV_TOOL_CALL &&
                   json_array_append_new(calls, call_json(&p->u.call)) < 0) {
            goto done;
        }
    }
    if (!calls)
        goto done;
    msg = json_pack("{s:s, s:o}", "role", "assistant", "content",
                    has_text || json_array_size(calls) == 0
                        ? json_stringn(mr_buf_ptr(&text), mr_buf_len(&text))
                        : json_null());
    if (msg && json_array_size(calls))
        json_object_set(msg, "tool_calls", calls);
    if (msg)
        json_object_set_new(msg, "refusal", json_null());
done:
    json_decref(calls);
    mr_buf_free(&text);
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

void mr_chat_writer_init(mr_chat_writer_t *w, long long created, int wants_usage)
{
    memset(w, 0, sizeof(*w));
    w->created = created;
    w->wants_usage = wants_usage;
    w->usage = MR_CONV_USAGE_UNKNOWN;
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

/* prefix + s, cut on a UTF-8 character boundary to fit (parsers bound
 * what they pass: this only keeps a longer one valid). */
static void copy_id(char *dst, const char *prefix, mr_conv_str_t s)
{
    size_t room = MR_CHAT_ID_MAX - 1 - strlen(prefix), n = s.n < room ? s.n : room;

    while (n < s.n && n > 0 && ((unsigned char)s.p[n] & 0xC0) == 0x80)
        n--;
    snprintf(dst, MR_CHAT_ID_MAX, "%s%.*s", prefix, (int)n, s.p ? s.p : "");
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
        return emit_delta(w, ev->choice, json_pack("{s:o}", "content", str_json(ev->text)), NULL);
    case MR_CONV_EV_TOOL_START:
        return emit_delta(w, ev->choice,
                          json_pack("{s:[{s:i, s:o, s:s, s:{s:o, s:o}}]}", "tool_calls", "index",
                                    ev->index, "id", str_json(ev->id), "type", "function",
                                    "function", "name", str_json(ev->name), "arguments",
                                    str_json(ev->text)),
                          NULL);
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
    case MR_CONV_EV_REASONING: /* the chat dialect has no member for these yet */
    case MR_CONV_EV_SIGNATURE:
        break;
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
