#include "meridian/chat_answer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A choice that made tool calls and stopped normally finished for them:
 * some OpenAI-compatible APIs say "stop" there. */
static mr_conv_finish_t finish_reason(const char *r, int calls)
{
    if (r && strcmp(r, "length") == 0)
        return MR_CONV_FINISH_LENGTH;
    if (r && strcmp(r, "content_filter") == 0)
        return MR_CONV_FINISH_CONTENT_FILTER;
    if (calls || (r && (strcmp(r, "tool_calls") == 0 || strcmp(r, "function_call") == 0)))
        return MR_CONV_FINISH_TOOL_CALLS;
    return MR_CONV_FINISH_STOP;
}

static void read_usage(const json_t *u, mr_conv_usage_t *o)
{
    const json_t *pd = json_object_get(u, "prompt_tokens_details");
    long cached = mr_codec_count(pd, "cached_tokens");

    if (!json_is_object(u))
        return;
    o->prompt = mr_codec_count(u, "prompt_tokens");
    o->completion = mr_codec_count(u, "completion_tokens");
    o->cached = cached >= 0 ? cached : mr_codec_count(u, "prompt_cache_hit_tokens");
    o->reasoning =
        mr_codec_count(json_object_get(u, "completion_tokens_details"), "reasoning_tokens");
}

/* The id of a tool call: the upstream's when it is safe, else made from
 * the answer's id and the call's position. */
static void call_id(const char *stem, long choice, long k, const json_t *given, char *dst,
                    size_t cap)
{
    char key[MR_CODEC_ID_MAX + 64];

    if (json_string_length(given) > 0) {
        mr_codec_safe_id(json_string_value(given), json_string_length(given), "call_", dst, cap);
        return;
    }
    snprintf(key, sizeof(key), "%s/%ld/%ld", stem, choice, k);
    mr_codec_safe_id(key, strlen(key), "call_", dst, cap);
}

/* ------------------------------------------------------------ answers */

typedef struct answer {
    const mr_chat_answer_in_t *in;
    mr_conv_answer_t *a;
    const char *stem; /* the answer's id */
} answer_t;

static mr_conv_part_t *next_part(mr_conv_choice_t *ch)
{
    return &ch->parts[ch->n_parts++];
}

static void reasoning_part(const answer_t *x, mr_conv_choice_t *ch, mr_conv_str_t text,
                           mr_conv_str_t data, mr_conv_str_t sig)
{
    mr_conv_part_t *p = next_part(ch);

    p->kind = MR_CONV_REASONING;
    p->u.reasoning.text = text;
    p->u.reasoning.data = data;
    p->u.reasoning.signature = sig;
    p->u.reasoning.origin.kind =
        (mr_conv_str_t){x->in->kind, x->in->kind ? strlen(x->in->kind) : 0};
    p->u.reasoning.origin.model = x->a->model;
}

/* reasoning_details when the upstream gives them (they carry signatures),
 * else reasoning_content / reasoning. */
static void reasoning(const answer_t *x, const json_t *msg, mr_conv_choice_t *ch)
{
    const json_t *details = json_object_get(msg, "reasoning_details"), *d;
    const json_t *rtext = json_object_get(msg, "reasoning_content");
    size_t i;

    json_array_foreach(details, i, d)
    {
        const char *type = json_string_value(json_object_get(d, "type"));
        mr_conv_str_t sig = mr_conv_str(json_object_get(d, "signature"));
        if (!type)
            continue;
        if (strcmp(type, "reasoning.text") == 0)
            reasoning_part(x, ch, mr_conv_str(json_object_get(d, "text")), (mr_conv_str_t){0}, sig);
        else if (strcmp(type, "reasoning.encrypted") == 0)
            reasoning_part(x, ch, (mr_conv_str_t){0}, mr_conv_str(json_object_get(d, "data")), sig);
        else if (strcmp(type, "reasoning.summary") == 0)
            reasoning_part(x, ch, mr_conv_str(json_object_get(d, "summary")), (mr_conv_str_t){0},
                           sig);
    }
    if (json_array_size(details))
        return;
    if (!json_is_string(rtext))
        rtext = json_object_get(msg, "reasoning");
    if (json_string_length(rtext))
        reasoning_part(x, ch, mr_conv_str(rtext), (mr_conv_str_t){0}, (mr_conv_str_t){0});
}

/* content as a string, or as an array of text parts */
static void text(const json_t *msg, mr_conv_choice_t *ch)
{
    const json_t *c = json_object_get(msg, "content"), *part;
    const json_t *refusal = json_object_get(msg, "refusal");
    size_t i;

    if (json_is_string(c)) {
        mr_conv_part_t *p = next_part(ch);
        p->kind = MR_CONV_TEXT;
        p->u.text = mr_conv_str(c);
    }
    json_array_foreach(c, i, part)
    {
        const json_t *t = json_object_get(part, "text");
        if (json_is_string(t)) {
            mr_conv_part_t *p = next_part(ch);
            p->kind = MR_CONV_TEXT;
            p->u.text = mr_conv_str(t);
        }
    }
    if (json_string_length(refusal)) {
        mr_conv_part_t *p = next_part(ch);
        p->kind = MR_CONV_REFUSAL;
        p->u.text = mr_conv_str(refusal);
    }
}

static int tool_call(const answer_t *x, const json_t *tc, long choice, long k, mr_conv_part_t *p)
{
    const json_t *fn = json_object_get(tc, "function"), *args = json_object_get(fn, "arguments");
    const json_t *google = json_object_get(json_object_get(tc, "extra_content"), "google");
    mr_conv_tool_call_t *c = &p->u.call;
    char id[MR_CODEC_ID_MAX];

    p->kind = MR_CONV_TOOL_CALL;
    call_id(x->stem, choice, k, json_object_get(tc, "id"), id, sizeof(id));
    c->id = mr_conv_copy(x->a->_arena, id, strlen(id));
    c->name = mr_conv_str(json_object_get(fn, "name"));
    if (!c->name.p)
        c->name = (mr_conv_str_t){"", 0};
    c->type_ok = 1;
    c->signature = mr_conv_str(json_object_get(google, "thought_signature"));
    if (json_is_string(args)) {
        c->args = mr_conv_str(args);
    } else {
        /* some APIs send the arguments as an object */
        char *s = json_is_object(args) ? json_dumps(args, MR_CONV_JSON_FLAGS) : strdup("{}");
        c->args = s ? mr_conv_copy(x->a->_arena, s, strlen(s)) : (mr_conv_str_t){0};
        free(s);
    }
    return c->id.p && c->args.p ? 0 : -1;
}

static int choice_of(const answer_t *x, const json_t *cj, size_t pos, mr_conv_choice_t *ch)
{
    const json_t *msg = json_object_get(cj, "message"), *ix = json_object_get(cj, "index");
    const json_t *calls = json_object_get(msg, "tool_calls"), *tc;
    size_t n = json_array_size(json_object_get(msg, "reasoning_details")) +
               json_array_size(json_object_get(msg, "content")) + json_array_size(calls) + 4;
    size_t k;
    long n_calls = 0;

    ch->index = json_is_integer(ix) && json_integer_value(ix) >= 0 &&
                        json_integer_value(ix) < MR_CONV_MAX_TURNS
                    ? (long)json_integer_value(ix)
                    : (long)pos;
    if (!(ch->parts = mr_conv_alloc(x->a->_arena, n, sizeof(*ch->parts))))
        return -1;
    reasoning(x, msg, ch);
    text(msg, ch);
    json_array_foreach(calls, k, tc)
    {
        if (!json_is_object(tc))
            continue;
        if (tool_call(x, tc, ch->index, n_calls++, next_part(ch)) < 0)
            return -1;
    }
    ch->finish =
        finish_reason(json_string_value(json_object_get(cj, "finish_reason")), n_calls > 0);
    return 0;
}

static int malformed(const mr_chat_answer_in_t *in, mr_error_t *err)
{
    mr_error_set(err, 502, "api_error", "upstream_malformed", NULL,
                 "the %s answer is not an OpenAI chat completion",
                 in->kind ? in->kind : "upstream");
    return -1;
}

int mr_chat_answer_parse(const mr_chat_answer_in_t *in, const json_t *root, mr_conv_answer_t *a,
                         mr_error_t *err)
{
    const json_t *choices = json_object_get(root, "choices"), *c;
    const json_t *jid = json_object_get(root, "id");
    char id[MR_CODEC_ID_MAX], model[MR_CODEC_ID_MAX];
    answer_t x = {.in = in, .a = a, .stem = id};
    size_t i;

    if (!json_is_object(root) || !json_is_array(choices))
        return malformed(in, err);
    mr_codec_safe_id(json_string_value(jid), json_string_length(jid), "chatcmpl-", id, sizeof(id));
    mr_codec_model(json_object_get(root, "model"), in->model, model, sizeof(model));
    a->id = mr_conv_copy(a->_arena, id, strlen(id));
    a->model = mr_conv_copy(a->_arena, model, strlen(model));
    a->choices = mr_conv_alloc(a->_arena, json_array_size(choices) + 1, sizeof(*a->choices));
    if (!a->id.p || !a->model.p || !a->choices)
        goto oom;
    json_array_foreach(choices, i, c)
    {
        if (!json_is_object(c))
            return malformed(in, err);
        if (choice_of(&x, c, i, &a->choices[a->n_choices++]) < 0)
            goto oom;
    }
    read_usage(json_object_get(root, "usage"), &a->usage);
    return 0;
oom:
    mr_error_set(err, 500, "api_error", "internal_error", NULL, "out of memory");
    return -1;
}

/* ------------------------------------------------------------ streams */

void mr_chat_stream_init(mr_chat_stream_t *st, const mr_chat_answer_in_t *in)
{
    memset(st, 0, sizeof(*st));
    st->in = *in;
    st->usage = MR_CONV_USAGE_UNKNOWN;
}

static int send_ev(const mr_conv_sink_t *sink, mr_conv_event_t ev)
{
    return sink->event(sink->ctx, &ev);
}

static int send_text(const mr_conv_sink_t *sink, mr_conv_event_kind_t kind, long choice,
                     const json_t *text)
{
    if (!json_string_length(text))
        return 0;
    return send_ev(sink,
                   (mr_conv_event_t){.kind = kind, .choice = choice, .text = mr_conv_str(text)});
}

/* A choice's state; the first time, the choice starts. */
static mr_chat_stream_choice_t *choice_get(mr_chat_stream_t *st, long index,
                                           const mr_conv_sink_t *sink, int *rc)
{
    mr_chat_stream_choice_t *cs;

    for (int i = 0; i < st->n_choices; i++)
        if (st->choices[i].index == index)
            return &st->choices[i];
    if (st->n_choices == MR_CHAT_STREAM_CHOICES) {
        *rc = MR_CODEC_MALFORMED;
        return NULL;
    }
    cs = &st->choices[st->n_choices];
    *cs = (mr_chat_stream_choice_t){.index = index};
    *rc = send_ev(sink, (mr_conv_event_t){.kind = MR_CONV_EV_START,
                                          .choice = index,
                                          .id = {st->id, strlen(st->id)},
                                          .name = {st->model, strlen(st->model)}});
    if (*rc)
        return NULL;
    st->n_choices++;
    return cs;
}

static int delta_reasoning(mr_chat_stream_choice_t *cs, const json_t *delta,
                           const mr_conv_sink_t *sink)
{
    const json_t *details = json_object_get(delta, "reasoning_details"), *d;
    const json_t *rtext = json_object_get(delta, "reasoning_content");
    size_t i;

    json_array_foreach(details, i, d)
    {
        int rc = send_text(sink, MR_CONV_EV_REASONING, cs->index, json_object_get(d, "text"));
        if (rc == 0)
            rc = send_text(sink, MR_CONV_EV_REASONING, cs->index, json_object_get(d, "summary"));
        if (rc == 0)
            rc = send_text(sink, MR_CONV_EV_SIGNATURE, cs->index, json_object_get(d, "signature"));
        if (rc)
            return rc;
    }
    if (json_array_size(details))
        return 0;
    if (!json_is_string(rtext))
        rtext = json_object_get(delta, "reasoning");
    return send_text(sink, MR_CONV_EV_REASONING, cs->index, rtext);
}

static int delta_tool(mr_chat_stream_t *st, mr_chat_stream_choice_t *cs, const json_t *tc,
                      size_t pos, const mr_conv_sink_t *sink)
{
    const json_t *ix = json_object_get(tc, "index"), *fn = json_object_get(tc, "function");
    const json_t *name = json_object_get(fn, "name"), *args = json_object_get(fn, "arguments");
    long up = json_is_integer(ix) ? (long)json_integer_value(ix) : (long)pos;
    char id[MR_CODEC_ID_MAX];
    int k;

    for (k = 0; k < cs->n_tools && cs->tools[k] != up; k++)
        ;
    if (k < cs->n_tools) /* a call already started: its arguments go on */
        return send_ev(sink, (mr_conv_event_t){.kind = MR_CONV_EV_TOOL_ARGS,
                                               .choice = cs->index,
                                               .index = k,
                                               .text = mr_conv_str(args)});
    if (!json_is_string(name) || cs->n_tools == MR_CHAT_STREAM_TOOLS)
        return MR_CODEC_MALFORMED; /* a call must start with its name */
    cs->tools[cs->n_tools++] = up;
    call_id(st->id, cs->index, k, json_object_get(tc, "id"), id, sizeof(id));
    return send_ev(sink, (mr_conv_event_t){.kind = MR_CONV_EV_TOOL_START,
                                           .choice = cs->index,
                                           .index = k,
                                           .id = {id, strlen(id)},
                                           .name = mr_conv_str(name),
                                           .text = json_is_string(args) ? mr_conv_str(args)
                                                                        : (mr_conv_str_t){"", 0}});
}

static int on_choice(mr_chat_stream_t *st, const json_t *c, size_t pos, const mr_conv_sink_t *sink)
{
    const json_t *ix = json_object_get(c, "index"), *delta = json_object_get(c, "delta");
    const json_t *fr = json_object_get(c, "finish_reason"), *tc;
    long index = json_is_integer(ix) ? (long)json_integer_value(ix) : (long)pos;
    mr_chat_stream_choice_t *cs;
    size_t k;
    int rc = 0;

    if (!json_is_object(c) || index < 0 || !(cs = choice_get(st, index, sink, &rc)))
        return rc ? rc : MR_CODEC_MALFORMED;
    if (cs->finished)
        return 0;
    if ((rc = delta_reasoning(cs, delta, sink)) != 0 ||
        (rc = send_text(sink, MR_CONV_EV_TEXT, index, json_object_get(delta, "content"))) != 0 ||
        (rc = send_text(sink, MR_CONV_EV_TEXT, index, json_object_get(delta, "refusal"))) != 0)
        return rc;
    json_array_foreach(json_object_get(delta, "tool_calls"), k, tc)
    {
        if ((rc = delta_tool(st, cs, tc, k, sink)) != 0)
            return rc;
    }
    if (!json_is_string(fr))
        return 0;
    cs->finished = 1;
    return send_ev(
        sink, (mr_conv_event_t){.kind = MR_CONV_EV_FINISH,
                                .choice = index,
                                .finish = finish_reason(json_string_value(fr), cs->n_tools > 0)});
}

/* [DONE]: choices without a finish reason stop; an answer that never
 * started is one empty choice. */
static int on_done(mr_chat_stream_t *st, const mr_conv_sink_t *sink)
{
    int rc = 0;

    st->done = 1;
    if (st->n_choices == 0 && !choice_get(st, 0, sink, &rc))
        return rc;
    for (int i = 0; i < st->n_choices; i++) {
        mr_chat_stream_choice_t *cs = &st->choices[i];
        if (!cs->finished &&
            send_ev(sink, (mr_conv_event_t){.kind = MR_CONV_EV_FINISH,
                                            .choice = cs->index,
                                            .finish = finish_reason(NULL, cs->n_tools > 0)}) < 0)
            return -1;
        cs->finished = 1;
    }
    return send_ev(sink, (mr_conv_event_t){.kind = MR_CONV_EV_END});
}

static int on_error(mr_chat_stream_t *st, const json_t *e, const mr_conv_sink_t *sink)
{
    const char *msg = json_string_value(json_object_get(e, "message"));
    const char *type = json_string_value(json_object_get(e, "type"));
    const char *code = json_string_value(json_object_get(e, "code"));

    st->done = 1;
    msg = msg ? msg : "upstream reported an error mid-stream";
    if (send_ev(sink, (mr_conv_event_t){.kind = MR_CONV_EV_ERROR,
                                        .err_type = type ? type : "api_error",
                                        .err_code = code   ? code
                                                    : type ? type
                                                           : "upstream_error",
                                        .text = {msg, strlen(msg)}}) < 0)
        return -1;
    return MR_CODEC_UPSTREAM_ERROR;
}

static int on_chunk(mr_chat_stream_t *st, const json_t *ev, const mr_conv_sink_t *sink)
{
    const json_t *choices = json_object_get(ev, "choices"), *u = json_object_get(ev, "usage"), *c;
    const json_t *jid = json_object_get(ev, "id");
    size_t i;

    if (json_is_object(json_object_get(ev, "error")))
        return on_error(st, json_object_get(ev, "error"), sink);
    if (choices && !json_is_array(choices))
        return MR_CODEC_MALFORMED;
    if (!st->seen) {
        st->seen = 1;
        mr_codec_safe_id(json_string_value(jid), json_string_length(jid), "chatcmpl-", st->id,
                         sizeof(st->id));
        mr_codec_model(json_object_get(ev, "model"), st->in.model, st->model, sizeof(st->model));
    }
    json_array_foreach(choices, i, c)
    {
        int rc = on_choice(st, c, i, sink);
        if (rc != 0)
            return rc;
    }
    if (!json_is_object(u))
        return 0;
    read_usage(u, &st->usage);
    return send_ev(sink, (mr_conv_event_t){.kind = MR_CONV_EV_USAGE, .usage = &st->usage});
}

int mr_chat_stream_event(mr_chat_stream_t *st, const char *data, size_t len,
                         const mr_conv_sink_t *sink)
{
    json_t *ev;
    int rc;

    if (st->done)
        return 0; /* nothing follows [DONE] or an error */
    if (len == 6 && memcmp(data, "[DONE]", 6) == 0)
        return on_done(st, sink);
    ev = json_loadb(data, len, JSON_ALLOW_NUL, NULL);
    rc = json_is_object(ev) ? on_chunk(st, ev, sink) : MR_CODEC_MALFORMED;
    json_decref(ev);
    return rc;
}

int mr_chat_stream_end(mr_chat_stream_t *st, const mr_conv_sink_t *sink)
{
    (void)sink;
    return st->done ? 0 : MR_CODEC_TRUNCATED;
}
