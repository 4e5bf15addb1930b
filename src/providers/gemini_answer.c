/*
 * The Gemini dialect, answer half (gemini.h): GenerateContentResponse
 * bodies into the conversation model's answer (one choice per candidate),
 * and streamGenerateContent events into its events. Thought parts are kept
 * as reasoning, thought signatures on them and on function calls.
 */
#include "gemini.h"
#include "xlate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static mr_conv_finish_t finish_reason(const char *r)
{
    static const char *const filtered[] = {
        "SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY"};
    if (!r)
        return MR_CONV_FINISH_UNSET;
    if (strcmp(r, "MAX_TOKENS") == 0)
        return MR_CONV_FINISH_LENGTH;
    for (size_t i = 0; i < sizeof(filtered) / sizeof(filtered[0]); i++)
        if (strcmp(r, filtered[i]) == 0)
            return MR_CONV_FINISH_CONTENT_FILTER;
    return MR_CONV_FINISH_STOP; /* STOP, MALFORMED_FUNCTION_CALL, LANGUAGE, OTHER ... */
}

/* A choice that made tool calls and stopped normally finished for them. */
static mr_conv_finish_t call_finish(mr_conv_finish_t f, int calls)
{
    return calls && (f == MR_CONV_FINISH_UNSET || f == MR_CONV_FINISH_STOP)
               ? MR_CONV_FINISH_TOOL_CALLS
               : f;
}

/* OpenAI's completion_tokens include reasoning; Gemini counts thoughts apart. */
static void read_usage(const json_t *u, mr_conv_usage_t *o)
{
    long cand = mr_codec_count(u, "candidatesTokenCount"),
         th = mr_codec_count(u, "thoughtsTokenCount");
    long tool = mr_codec_count(u, "toolUsePromptTokenCount");

    if (!json_is_object(u))
        return;
    o->prompt = mr_codec_count(u, "promptTokenCount");
    if (o->prompt >= 0 && tool > 0)
        o->prompt += tool;
    o->completion = cand >= 0 || th >= 0 ? (cand > 0 ? cand : 0) + (th > 0 ? th : 0) : -1;
    o->cached = mr_codec_count(u, "cachedContentTokenCount");
    o->reasoning = th;
}

/* The stem of the chat id and of made-up tool call ids: the response id
 * when Gemini sends one, else a hash of the first bytes we got. */
static void make_stem(const json_t *root, const char *raw, size_t len, char *stem, size_t cap)
{
    const json_t *rid = json_object_get(root, "responseId");

    if (json_is_string(rid))
        mr_codec_safe_id(json_string_value(rid), json_string_length(rid), "", stem, cap);
    else
        snprintf(stem, cap, "%016llx", (unsigned long long)mr__fnv64(MR_FNV64_INIT, raw, len));
}

static void call_id(const char *stem, long cand, long k, const json_t *given, char *dst, size_t cap)
{
    char key[MR_XLATE_ID_MAX + 64];

    if (json_is_string(given) && json_string_length(given) > 0) {
        mr_codec_safe_id(json_string_value(given), json_string_length(given), "call_", dst, cap);
        return;
    }
    snprintf(key, sizeof(key), "%s/%ld/%ld", stem, cand, k);
    snprintf(dst, cap, "call_%016llx",
             (unsigned long long)mr__fnv64(MR_FNV64_INIT, key, strlen(key)));
}

/* The candidate's index when it is a sane one, else its position. */
static long cand_index(const json_t *c, size_t pos)
{
    const json_t *ix = json_object_get(c, "index");

    return json_is_integer(ix) && json_integer_value(ix) >= 0 &&
                   json_integer_value(ix) < GEMINI_MAX_CANDIDATES
               ? (long)json_integer_value(ix)
               : (long)pos;
}

/* One Gemini part -> model parts (at most 2, returned): a thought is
 * reasoning; a text part's thought signature is an opaque reasoning part
 * before its text; a function call keeps its signature. Signatures are this
 * target's (kind gemini, `model`). */
static int answer_part(mr_conv_arena_t *arena, const json_t *part, const char *stem, long index,
                       long n_calls, mr_conv_str_t model, mr_conv_part_t *p)
{
    const json_t *t = json_object_get(part, "text"), *fc = json_object_get(part, "functionCall");
    mr_conv_str_t sig = mr_conv_str(json_object_get(part, "thoughtSignature"));
    mr_conv_origin_t origin = {{"gemini", 6}, model};
    char id[MR_XLATE_ID_MAX + 32], *a;

    if (json_is_true(json_object_get(part, "thought"))) {
        p->kind = MR_CONV_REASONING;
        p->u.reasoning.text = mr_conv_str(t);
        p->u.reasoning.signature = sig;
        p->u.reasoning.origin = origin;
        return 1;
    }
    if (json_is_string(t)) {
        int n = 0;
        if (sig.p)
            p[n++] = (mr_conv_part_t){.kind = MR_CONV_REASONING,
                                      .u.reasoning = {.data = sig, .origin = origin}};
        p[n].kind = MR_CONV_TEXT;
        p[n].u.text = mr_conv_str(t);
        return n + 1;
    }
    if (!json_is_object(fc) || !json_is_string(json_object_get(fc, "name")))
        return 0;
    p->kind = MR_CONV_TOOL_CALL;
    a = json_is_object(json_object_get(fc, "args"))
            ? json_dumps(json_object_get(fc, "args"), MR_CONV_JSON_FLAGS)
            : strdup("{}");
    call_id(stem, index, n_calls, json_object_get(fc, "id"), id, sizeof(id));
    p->u.call.id = mr_conv_copy(arena, id, strlen(id));
    p->u.call.name = mr_conv_str(json_object_get(fc, "name"));
    p->u.call.args = a ? mr_conv_copy(arena, a, strlen(a)) : (mr_conv_str_t){"{}", 2};
    p->u.call.signature = sig;
    if (sig.p)
        p->u.call.origin = origin;
    free(a);
    return p->u.call.id.p && p->u.call.args.p ? 1 : -1;
}

/* One candidate -> one choice. */
static int choice_of(mr_conv_arena_t *arena, const json_t *cand, long index, const char *stem,
                     mr_conv_str_t model, mr_conv_choice_t *ch)
{
    const json_t *parts = json_object_get(json_object_get(cand, "content"), "parts"), *part;
    long n_calls = 0;
    size_t k;

    ch->index = index;
    if (!(ch->parts = mr_conv_alloc(arena, 2 * json_array_size(parts) + 1, sizeof(*ch->parts))))
        return -1;
    json_array_foreach(parts, k, part)
    {
        mr_conv_part_t *p = &ch->parts[ch->n_parts];
        int rc = answer_part(arena, part, stem, index, n_calls, model, p);
        if (rc < 0)
            return -1;
        ch->n_parts += (size_t)rc;
        n_calls += rc && p->kind == MR_CONV_TOOL_CALL;
    }
    ch->finish = call_finish(
        finish_reason(json_string_value(json_object_get(cand, "finishReason"))), n_calls > 0);
    return 0;
}

static int parse_answer(const mr_adapter_in_t *in, const json_t *root, const char *raw, size_t len,
                        mr_conv_answer_t *a, mr_error_t *err)
{
    const json_t *cands = json_object_get(root, "candidates"), *c;
    char stem[MR_XLATE_ID_MAX + 16], model[MR_XLATE_ID_MAX + 16];
    mr_conv_str_t target = {in->model, in->model ? strlen(in->model) : 0};
    size_t i;

    if (!json_is_object(root) || (cands && !json_is_array(cands)))
        goto malformed;
    make_stem(root, raw, len, stem, sizeof(stem));
    mr_codec_model(json_object_get(root, "modelVersion"), in->model, model, sizeof(model));
    a->id = mr_conv_copy(a->_arena, stem, strlen(stem));
    a->model = mr_conv_copy(a->_arena, model, strlen(model));
    a->choices = mr_conv_alloc(a->_arena, json_array_size(cands) + 1, sizeof(*a->choices));
    if (!a->id.p || !a->model.p || !a->choices)
        return mr__xlate_oom(err);
    json_array_foreach(cands, i, c)
    {
        if (!json_is_object(c))
            goto malformed;
        if (choice_of(a->_arena, c, cand_index(c, i), stem, target, &a->choices[a->n_choices++]) <
            0)
            return mr__xlate_oom(err);
    }
    if (a->n_choices == 0) {
        /* the prompt itself was blocked (promptFeedback.blockReason) */
        if (!json_object_get(json_object_get(root, "promptFeedback"), "blockReason"))
            goto malformed;
        a->choices[a->n_choices++].finish = MR_CONV_FINISH_CONTENT_FILTER;
    }
    read_usage(json_object_get(root, "usageMetadata"), &a->usage);
    return 0;
malformed:
    mr_error_set(err, 502, "api_error", "upstream_malformed", NULL,
                 "provider %s: the answer is not a Gemini GenerateContentResponse",
                 in->provider->name);
    return -1;
}

/* ------------------------------------------------------------ streams */

typedef struct cand_state {
    long index;
    int n_tools;
    int n_reasoning; /* reasoning blocks started */
    int in_thought;  /* the last part was a thought: the block goes on */
    int finished;    /* a finishReason came */
    mr_conv_finish_t finish;
} cand_state_t;

typedef struct stream {
    const char *fallback_model;
    int seen, blocked;
    char stem[MR_XLATE_ID_MAX + 16];
    char model[MR_XLATE_ID_MAX + 16];
    cand_state_t cand[GEMINI_MAX_CANDIDATES];
    int n_cand;
    mr_conv_usage_t usage;
} stream_t;

static void stream_init(void *st, const mr_adapter_in_t *in)
{
    stream_t *x = st;

    x->fallback_model = in->model ? in->model : "";
    x->usage = MR_CONV_USAGE_UNKNOWN;
}

/* A candidate's state; the first time, the choice starts. */
static cand_state_t *cand_get(stream_t *x, long index, const mr_conv_sink_t *sink, int *rc)
{
    for (int i = 0; i < x->n_cand; i++)
        if (x->cand[i].index == index)
            return &x->cand[i];
    if (x->n_cand == GEMINI_MAX_CANDIDATES) {
        *rc = MR_XLATE_MALFORMED;
        return NULL;
    }
    x->cand[x->n_cand] = (cand_state_t){.index = index};
    *rc = mr__xlate_send(sink, (mr_conv_event_t){.kind = MR_CONV_EV_START,
                                                 .choice = index,
                                                 .id = {x->stem, strlen(x->stem)},
                                                 .name = {x->model, strlen(x->model)}});
    return *rc ? NULL : &x->cand[x->n_cand++];
}

/* A thought part: its text (and signature) in the current reasoning block,
 * a new one after anything else. */
static int on_thought(cand_state_t *cs, const json_t *t, mr_conv_str_t sig,
                      const mr_conv_sink_t *sink)
{
    int rc = 0;

    if (!cs->in_thought)
        cs->n_reasoning++;
    cs->in_thought = 1;
    if (json_string_length(t))
        rc = mr__xlate_send(sink, (mr_conv_event_t){.kind = MR_CONV_EV_REASONING,
                                                    .choice = cs->index,
                                                    .index = cs->n_reasoning - 1,
                                                    .text = mr_conv_str(t)});
    if (rc == 0 && sig.p)
        rc = mr__xlate_send(sink, (mr_conv_event_t){.kind = MR_CONV_EV_SIGNATURE,
                                                    .choice = cs->index,
                                                    .index = cs->n_reasoning - 1,
                                                    .text = sig});
    return rc;
}

/* A text part; its thought signature first, as an opaque reasoning block. */
static int on_text(cand_state_t *cs, const json_t *t, mr_conv_str_t sig, const mr_conv_sink_t *sink)
{
    int rc = 0;

    cs->in_thought = 0;
    if (sig.p)
        rc = mr__xlate_send(sink, (mr_conv_event_t){.kind = MR_CONV_EV_REASONING_DATA,
                                                    .choice = cs->index,
                                                    .index = cs->n_reasoning++,
                                                    .text = sig});
    if (rc == 0 && json_string_length(t) > 0)
        rc = mr__xlate_send(sink, (mr_conv_event_t){.kind = MR_CONV_EV_TEXT,
                                                    .choice = cs->index,
                                                    .text = mr_conv_str(t)});
    return rc;
}

/* One part of a streamed candidate -> its event(s). */
static int on_part(stream_t *x, cand_state_t *cs, const json_t *part, const mr_conv_sink_t *sink)
{
    const json_t *t = json_object_get(part, "text"), *fc = json_object_get(part, "functionCall");
    const json_t *args = json_object_get(fc, "args");
    mr_conv_str_t sig = mr_conv_str(json_object_get(part, "thoughtSignature"));
    char id[MR_XLATE_ID_MAX + 32], *a;
    int rc;

    if (json_is_true(json_object_get(part, "thought")))
        return on_thought(cs, t, sig, sink);
    if (json_is_string(t))
        return on_text(cs, t, sig, sink);
    if (!json_is_object(fc) || !json_is_string(json_object_get(fc, "name")))
        return 0;
    cs->in_thought = 0;
    /* Gemini sends a call whole: one start with all its arguments */
    if (!(a = json_is_object(args) ? json_dumps(args, MR_CONV_JSON_FLAGS) : strdup("{}")))
        return -1;
    call_id(x->stem, cs->index, cs->n_tools, json_object_get(fc, "id"), id, sizeof(id));
    rc = mr__xlate_send(sink, (mr_conv_event_t){.kind = MR_CONV_EV_TOOL_START,
                                                .choice = cs->index,
                                                .index = cs->n_tools++,
                                                .id = {id, strlen(id)},
                                                .name = mr_conv_str(json_object_get(fc, "name")),
                                                .text = {a, strlen(a)},
                                                .signature = sig});
    free(a);
    return rc;
}

static int on_candidate(stream_t *x, const json_t *c, size_t pos, const mr_conv_sink_t *sink)
{
    const json_t *fr = json_object_get(c, "finishReason"), *part;
    cand_state_t *cs;
    size_t k;
    int rc = 0;

    if (!json_is_object(c))
        return MR_XLATE_MALFORMED;
    if (!(cs = cand_get(x, cand_index(c, pos), sink, &rc)))
        return rc;
    json_array_foreach(json_object_get(json_object_get(c, "content"), "parts"), k, part)
    {
        if ((rc = on_part(x, cs, part, sink)) != 0)
            return rc;
    }
    if (json_is_string(fr)) {
        cs->finish = finish_reason(json_string_value(fr));
        cs->finished = 1;
    }
    return 0;
}

static int on_error(const json_t *e, const mr_conv_sink_t *sink)
{
    const char *word = json_string_value(json_object_get(e, "status"));
    const char *msg = json_string_value(json_object_get(e, "message"));
    char code[64];

    mr__xlate_lower(word ? word : "upstream_error", code, sizeof(code));
    msg = msg ? msg : "upstream reported an error mid-stream";
    if (mr__xlate_send(sink, (mr_conv_event_t){.kind = MR_CONV_EV_ERROR,
                                               .err_type = mr__xlate_error_type(word, 502),
                                               .err_code = code,
                                               .text = {msg, strlen(msg)}}) < 0)
        return -1;
    return MR_XLATE_UPSTREAM_ERROR;
}

static int stream_event(void *st, const char *event, const char *data, size_t len,
                        const mr_conv_sink_t *sink)
{
    stream_t *x = st;
    json_t *ev = json_loadb(data, len, JSON_ALLOW_NUL, NULL);
    const json_t *cands = json_object_get(ev, "candidates"), *e = json_object_get(ev, "error");
    const json_t *u = json_object_get(ev, "usageMetadata"), *c;
    size_t i;
    int rc = 0;

    (void)event;
    if (!json_is_object(ev) || (cands && !json_is_array(cands)) || e) {
        rc = json_is_object(ev) && !(cands && !json_is_array(cands)) ? on_error(e, sink)
                                                                     : MR_XLATE_MALFORMED;
        json_decref(ev);
        return rc;
    }
    if (!x->seen) {
        x->seen = 1;
        make_stem(ev, data, len, x->stem, sizeof(x->stem));
        mr_codec_model(json_object_get(ev, "modelVersion"), x->fallback_model, x->model,
                       sizeof(x->model));
    }
    json_array_foreach(cands, i, c)
    {
        if ((rc = on_candidate(x, c, i, sink)) != 0)
            break;
    }
    if (json_object_get(json_object_get(ev, "promptFeedback"), "blockReason"))
        x->blocked = 1;
    if (json_is_object(u)) {
        read_usage(u, &x->usage);
        mr__xlate_send(sink, (mr_conv_event_t){.kind = MR_CONV_EV_USAGE, .usage = &x->usage});
    }
    json_decref(ev);
    return rc;
}

/* Gemini has no end-of-message event: the answer ends when the upstream
 * closes the stream — complete only if every candidate got its
 * finishReason (or the prompt was blocked); else it was cut short. */
static int stream_end(void *st, const mr_conv_sink_t *sink)
{
    stream_t *x = st;
    int rc;

    if (!x->seen || (x->n_cand == 0 && !x->blocked))
        return MR_XLATE_TRUNCATED;
    for (int i = 0; i < x->n_cand; i++)
        if (!x->cand[i].finished)
            return MR_XLATE_TRUNCATED;
    if (x->n_cand == 0) {
        cand_state_t *cs = cand_get(x, 0, sink, &rc);
        if (!cs)
            return rc;
        cs->finish = x->blocked ? MR_CONV_FINISH_CONTENT_FILTER : MR_CONV_FINISH_STOP;
    }
    for (int i = 0; i < x->n_cand; i++) {
        const cand_state_t *cs = &x->cand[i];
        if (mr__xlate_send(sink,
                           (mr_conv_event_t){.kind = MR_CONV_EV_FINISH,
                                             .choice = cs->index,
                                             .finish = call_finish(cs->finish, cs->n_tools)}) < 0)
            return -1;
    }
    return mr__xlate_send(sink, (mr_conv_event_t){.kind = MR_CONV_EV_END});
}

const mr_xlate_parser_t mr__gemini_parser = {
    .answer = parse_answer,
    .stream_size = sizeof(stream_t),
    .stream_init = stream_init,
    .stream_event = stream_event,
    .stream_end = stream_end,
    .malformed = "a malformed Gemini event stream",
    .truncated = "ended the stream before its final finishReason",
};
