#include "meridian/responses_parse.h"

#include "meridian/buf.h"
#include "meridian/codec.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct parser {
    mr_codec_build_t b;
    size_t item;       /* the input item being parsed */
    int history;       /* parsing the stored history, not the client's input */
    char where[64];    /* the item's JSON path, for messages */
    json_t *call_sigs; /* call id -> the signature a sealed reasoning item gave it */
} parser_t;

static int bad(parser_t *ps, const char *what)
{
    return mr_error_bad(ps->b.err, "invalid_type", "input", "%s %s", ps->where, what);
}

static mr_conv_str_t lit(const char *s)
{
    return (mr_conv_str_t){s, strlen(s)};
}

/* An item's type; a typeless object with a role is a message. */
static mr_conv_str_t item_type(const json_t *it)
{
    mr_conv_str_t t = mr_conv_str(json_object_get(it, "type"));

    if (!t.p && json_is_string(json_object_get(it, "role")))
        return lit("message");
    return t;
}

/* Items that make one assistant turn when in a row. */
static int assistant_side(const json_t *it)
{
    mr_conv_str_t t = item_type(it);

    return mr_conv_eq(t, "function_call") || mr_conv_eq(t, "reasoning") ||
           (mr_conv_eq(t, "message") &&
            mr_conv_eq(mr_conv_str(json_object_get(it, "role")), "assistant"));
}

static size_t parts_of(const json_t *it)
{
    const json_t *c = json_object_get(it, "content");
    return mr_conv_eq(item_type(it), "message") && json_is_array(c) ? json_array_size(c) : 1;
}

/* ------------------------------------------------------------ reasoning */

char *mr_responses_seal(const mr_conv_reasoning_t *r, mr_conv_str_t call_id)
{
    json_t *j;
    char *text, *enc, *out = NULL;

    if (!r->signature.p && !r->data.p)
        return NULL;
    j = json_object();
    if (j && call_id.p)
        json_object_set_new(j, "c", mr_codec_str(call_id));
    if (j && r->origin.kind.p)
        json_object_set_new(j, "k", mr_codec_str(r->origin.kind));
    if (j && r->origin.model.p)
        json_object_set_new(j, "m", mr_codec_str(r->origin.model));
    if (j && r->signature.p)
        json_object_set_new(j, "s", mr_codec_str(r->signature));
    if (j && r->data.p)
        json_object_set_new(j, "d", mr_codec_str(r->data));
    text = j ? json_dumps(j, MR_CONV_JSON_FLAGS) : NULL;
    json_decref(j);
    enc = text ? mr_codec_b64url_encode(text, strlen(text)) : NULL;
    if (enc && (out = malloc(strlen(enc) + sizeof(MR_RESPONSES_SEAL_PREFIX))))
        sprintf(out, "%s%s", MR_RESPONSES_SEAL_PREFIX, enc);
    free(text);
    free(enc);
    return out;
}

/* A tool call's signature, sealed in a reasoning item of its own, kept
 * until the call comes. 0 (the item makes no part) / -1. */
static int keep_call_signature(parser_t *ps, mr_conv_str_t call, mr_conv_str_t sig)
{
    if (!sig.p || strlen(call.p) != call.n)
        return 0;
    if ((!ps->call_sigs && !(ps->call_sigs = json_object())) ||
        json_object_set_new(ps->call_sigs, call.p, json_stringn(sig.p, sig.n)) < 0)
        return mr_codec_oom(&ps->b);
    return 0;
}

/* encrypted_content: ours opened again, anything else OpenAI's data. */
static int unseal(parser_t *ps, mr_conv_str_t enc, mr_conv_reasoning_t *r, mr_conv_str_t *call)
{
    const size_t pl = sizeof(MR_RESPONSES_SEAL_PREFIX) - 1;
    unsigned char *text = NULL;
    json_t *j = NULL;
    size_t n;

    if (!enc.p)
        return 0;
    if (enc.n > pl && memcmp(enc.p, MR_RESPONSES_SEAL_PREFIX, pl) == 0 &&
        (text = mr_codec_b64url_decode(enc.p + pl, enc.n - pl, &n)))
        j = json_loadb((const char *)text, n, JSON_ALLOW_NUL, NULL);
    free(text);
    if (!json_is_object(j)) {
        json_decref(j);
        r->data = enc;
        r->origin.kind = lit("openai");
        return 0;
    }
    if (!mr_conv_keep(ps->b.r->_arena, j))
        return mr_codec_oom(&ps->b);
    r->origin.kind = mr_conv_str(json_object_get(j, "k"));
    r->origin.model = mr_conv_str(json_object_get(j, "m"));
    r->signature = mr_conv_str(json_object_get(j, "s"));
    r->data = mr_conv_str(json_object_get(j, "d"));
    *call = mr_conv_str(json_object_get(j, "c"));
    return 0;
}

/* A reasoning item into p: its summary (or content) texts, joined by a
 * blank line when several, and its seal. 1 when p holds it; 0 when it
 * carries nothing for a part: empty, or the seal of a tool call's
 * signature (kept for the call: call_signature). */
static int reasoning(parser_t *ps, const json_t *it, mr_conv_part_t *p)
{
    mr_conv_str_t call = {0};
    const json_t *list = json_object_get(it, "summary"), *s;
    mr_buf_t text;
    size_t i, n = 0;
    int rc = 0;

    if (!json_array_size(list))
        list = json_object_get(it, "content");
    p->kind = MR_CONV_REASONING;
    mr_buf_init(&text, MR_CONV_MAX_BYTES);
    json_array_foreach(list, i, s)
    {
        const json_t *t = json_object_get(s, "text");
        if (!json_is_string(t))
            continue;
        if ((n++ && mr_buf_append(&text, "\n\n", 2) < 0) ||
            mr_buf_append(&text, json_string_value(t), json_string_length(t)) < 0)
            rc = -1;
    }
    if (rc == 0 && n > 0) {
        p->u.reasoning.text = mr_conv_copy(ps->b.r->_arena, mr_buf_ptr(&text), mr_buf_len(&text));
        rc = p->u.reasoning.text.p ? 0 : -1;
    }
    mr_buf_free(&text);
    if (rc < 0)
        return mr_codec_oom(&ps->b);
    if (unseal(ps, mr_conv_str(json_object_get(it, "encrypted_content")), &p->u.reasoning, &call) <
        0)
        return -1;
    if (call.p)
        return keep_call_signature(ps, call, p->u.reasoning.signature);
    return p->u.reasoning.text.p || p->u.reasoning.signature.p || p->u.reasoning.data.p;
}

/* The signature a sealed reasoning item gave the call (copied into the
 * arena: the map goes when the parse ends). */
static int call_signature(parser_t *ps, mr_conv_tool_call_t *c)
{
    const json_t *sig = c->id.p ? json_object_get(ps->call_sigs, c->id.p) : NULL;

    if (!sig)
        return 0;
    c->signature = mr_conv_copy(ps->b.r->_arena, json_string_value(sig), json_string_length(sig));
    return c->signature.p ? 0 : mr_codec_oom(&ps->b);
}

/* ------------------------------------------------------------ parts */

static void flawed(mr_conv_part_t *p, mr_conv_str_t type, mr_conv_flaw_t flaw)
{
    p->kind = MR_CONV_OTHER;
    p->u.other.type = type;
    p->u.other.flaw = flaw;
}

static int text_part(const json_t *pj, const char *key, mr_conv_part_kind_t kind,
                     mr_conv_str_t type, mr_conv_part_t *p)
{
    const json_t *t = json_object_get(pj, key);

    if (!json_is_string(t)) {
        flawed(p, type, MR_CONV_FLAW_BAD_VALUE);
        return 0;
    }
    p->kind = kind;
    p->u.text = mr_conv_str(t);
    return 0;
}

static int image(parser_t *ps, const json_t *pj, mr_conv_media_t *m)
{
    const json_t *url = json_object_get(pj, "image_url");

    if (json_is_string(url))
        return mr_codec_media_url(&ps->b, mr_conv_str(url), m);
    m->url = mr_conv_str(json_object_get(pj, "file_id"));
    m->source = m->url.p ? MR_CONV_SRC_OTHER : MR_CONV_SRC_MISSING;
    return 0;
}

/* file_data is a data: URL; file_url a URL; a file id has no bytes. */
static int file(parser_t *ps, const json_t *pj, mr_conv_media_t *m)
{
    mr_conv_str_t data = mr_conv_str(json_object_get(pj, "file_data"));

    if (data.p)
        return mr_codec_media_url(&ps->b, data, m) < 0 ? -1 : 0;
    if ((data = mr_conv_str(json_object_get(pj, "file_url"))).p)
        return mr_codec_media_url(&ps->b, data, m);
    m->url = mr_conv_str(json_object_get(pj, "file_id"));
    m->source = m->url.p ? MR_CONV_SRC_OTHER : MR_CONV_SRC_MISSING;
    return 0;
}

static int audio(parser_t *ps, const json_t *pj, mr_conv_media_t *m)
{
    const json_t *a = json_object_get(pj, "input_audio");
    mr_conv_str_t fmt = mr_conv_str(json_object_get(a, "format"));
    char mime[32];

    m->format = fmt;
    if (!fmt.p || fmt.n > 16 || strchr(fmt.p, '/'))
        return 0; /* MR_CONV_SRC_MISSING */
    snprintf(mime, sizeof(mime), "audio/%s", fmt.p);
    return mr_codec_media_base64(&ps->b, lit(mime), mr_conv_str(json_object_get(a, "data")), m);
}

static int part(parser_t *ps, const json_t *pj, mr_conv_part_t *p)
{
    mr_conv_str_t type = mr_conv_str(json_object_get(pj, "type"));

    if (!type.p) {
        flawed(p, type, MR_CONV_FLAW_NO_TYPE);
        return 0;
    }
    if (mr_conv_eq(type, "input_text") || mr_conv_eq(type, "output_text"))
        return text_part(pj, "text", MR_CONV_TEXT, type, p);
    if (mr_conv_eq(type, "refusal"))
        return text_part(pj, "refusal", MR_CONV_REFUSAL, type, p);
    if (mr_conv_eq(type, "input_image")) {
        p->kind = MR_CONV_IMAGE;
        return image(ps, pj, &p->u.media);
    }
    if (mr_conv_eq(type, "input_file")) {
        p->kind = MR_CONV_FILE;
        return file(ps, pj, &p->u.media);
    }
    if (mr_conv_eq(type, "input_audio")) {
        p->kind = MR_CONV_AUDIO;
        return audio(ps, pj, &p->u.media);
    }
    flawed(p, type, MR_CONV_FLAW_NONE);
    return 0;
}

/* content: a string (one text part) or an array of parts, appended at
 * parts[*n]. */
static int content(parser_t *ps, const json_t *c, mr_conv_part_t *parts, size_t *n)
{
    size_t k;
    const json_t *pj;

    if (json_is_string(c)) {
        parts[*n].kind = MR_CONV_TEXT;
        parts[(*n)++].u.text = mr_conv_str(c);
        return 0;
    }
    if (!json_is_array(c))
        return bad(ps, "content must be a string or an array of parts");
    json_array_foreach(c, k, pj)
    {
        if (part(ps, pj, &parts[(*n)++]) < 0)
            return -1;
    }
    return 0;
}

/* ------------------------------------------------------------ items */

static const struct {
    const char *name;
    mr_conv_role_t role;
} roles[] = {{"user", MR_CONV_ROLE_USER},
             {"system", MR_CONV_ROLE_SYSTEM},
             {"developer", MR_CONV_ROLE_DEVELOPER}};

static int message(parser_t *ps, const json_t *it, mr_conv_turn_t *t)
{
    const json_t *c = json_object_get(it, "content");

    t->role_name = mr_conv_str(json_object_get(it, "role"));
    t->role = MR_CONV_ROLE_OTHER;
    for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++)
        if (mr_conv_eq(t->role_name, roles[i].name))
            t->role = roles[i].role;
    if (t->role == MR_CONV_ROLE_OTHER)
        return 0; /* refused by the check */
    t->has_content = 1;
    if (!(t->parts = mr_codec_parts(&ps->b, json_array_size(c) + 1)))
        return -1;
    return content(ps, c, t->parts, &t->n_parts);
}

static int call_output(parser_t *ps, const json_t *it, mr_conv_turn_t *t)
{
    const json_t *out = json_object_get(it, "output");
    mr_conv_tool_result_t *res;

    t->role = MR_CONV_ROLE_TOOL;
    t->role_name = lit("tool");
    t->has_content = 1;
    if (!(t->parts = mr_codec_parts(&ps->b, 1)))
        return -1;
    t->n_parts = 1;
    t->parts[0].kind = MR_CONV_TOOL_RESULT;
    res = &t->parts[0].u.result;
    res->call_id = mr_conv_str(json_object_get(it, "call_id"));
    res->as_string = !json_is_array(out);
    if (!(res->content = mr_codec_parts(&ps->b, json_array_size(out) + 1)))
        return -1;
    if (!out || json_is_null(out))
        return 0;
    return content(ps, out, res->content, &res->n_content);
}

/* One item of an assistant run into its turn's next parts. */
static int assistant_item(parser_t *ps, const json_t *it, mr_conv_turn_t *t)
{
    mr_conv_str_t type = item_type(it);
    mr_conv_part_t *p = &t->parts[t->n_parts];

    if (mr_conv_eq(type, "message"))
        return content(ps, json_object_get(it, "content"), t->parts, &t->n_parts);
    if (mr_conv_eq(type, "reasoning")) {
        int used = reasoning(ps, it, p);
        if (used < 0)
            return -1;
        if (used)
            t->n_parts++;
        else
            memset(p, 0, sizeof(*p));
        return 0;
    }
    t->n_parts++;
    p->kind = MR_CONV_TOOL_CALL;
    p->u.call.id = mr_conv_str(json_object_get(it, "call_id"));
    p->u.call.name = mr_conv_str(json_object_get(it, "name"));
    p->u.call.type_ok = 1;
    if (call_signature(ps, &p->u.call) < 0)
        return -1;
    return mr_codec_args_text(&ps->b, json_object_get(it, "arguments"), &p->u.call);
}

static size_t count_turns(const json_t *list)
{
    size_t i, n = 0;
    const json_t *it;
    int run = 0;

    if (json_is_string(list))
        return 1;
    json_array_foreach(list, i, it)
    {
        int a = assistant_side(it);
        n += !(a && run);
        run = a;
    }
    return n;
}

/* An assistant run from list[i]: its turn with room for all its parts. */
static int open_run(parser_t *ps, const json_t *list, size_t i, mr_conv_turn_t *t)
{
    size_t n = 0;

    for (size_t k = i; k < json_array_size(list) && assistant_side(json_array_get(list, k)); k++)
        n += parts_of(json_array_get(list, k));
    t->role = MR_CONV_ROLE_ASSISTANT;
    t->role_name = lit("assistant");
    t->has_content = 1;
    return (t->parts = mr_codec_parts(&ps->b, n)) ? 0 : -1;
}

static int item(parser_t *ps, const json_t *it, mr_conv_turn_t *t)
{
    mr_conv_str_t type = item_type(it);

    if (!json_is_object(it))
        return 0; /* role absent: refused by the check, in its place */
    if (mr_conv_eq(type, "message"))
        return message(ps, it, t);
    if (mr_conv_eq(type, "function_call_output"))
        return call_output(ps, it, t);
    t->role_name = type.p ? type : lit("(no type)"); /* refused by the check */
    return 0;
}

static int items(parser_t *ps, const json_t *list)
{
    mr_conv_req_t *r = ps->b.r;
    mr_conv_turn_t *run = NULL;
    size_t i;
    const json_t *it;

    json_array_foreach(list, i, it)
    {
        mr_conv_turn_t *t = &r->turns[r->n_turns];
        ps->item = i;
        snprintf(ps->where, sizeof(ps->where), "%s[%zu]", ps->history ? "history" : "input", i);
        if (!assistant_side(it)) {
            run = NULL;
            *t = (mr_conv_turn_t){.role = MR_CONV_ROLE_OTHER, .src = ps->history ? 0 : i + 1};
            r->n_turns++;
            if (item(ps, it, t) < 0)
                return -1;
            continue;
        }
        if (!run) {
            run = t;
            *run = (mr_conv_turn_t){.src = ps->history ? 0 : i + 1};
            r->n_turns++;
            if (open_run(ps, list, i, run) < 0)
                return -1;
        }
        if (assistant_item(ps, it, run) < 0)
            return -1;
    }
    return 0;
}

static int turns(parser_t *ps, const json_t *body, const json_t *history)
{
    const json_t *input = json_object_get(body, "input");
    const json_t *instr = json_object_get(body, "instructions");
    size_t n = json_is_string(instr) + count_turns(history) + count_turns(input);

    if (instr && !json_is_null(instr) && !json_is_string(instr))
        return mr_error_bad(ps->b.err, "invalid_type", "instructions",
                            "instructions must be a string");
    if (input && !json_is_string(input) && !json_is_array(input))
        return mr_error_bad(ps->b.err, "invalid_type", "input",
                            "input must be a string or an array of items");
    if (mr_codec_turns(&ps->b, n, "input") < 0)
        return -1;
    if (json_is_string(instr) &&
        !mr_codec_text_turn(&ps->b, MR_CONV_ROLE_SYSTEM, "system", instr, 0))
        return -1;
    ps->history = 1;
    if (items(ps, history) < 0)
        return -1;
    ps->history = 0;
    if (json_is_string(input) ? !mr_codec_text_turn(&ps->b, MR_CONV_ROLE_USER, "user", input, 1)
                              : items(ps, input) < 0)
        return -1;
    return mr_codec_name_results(&ps->b);
}

/* ------------------------------------------------------------ parameters */

/* Function tools; hosted and custom tools mean something only to a target
 * serving the Responses API itself: dropped and recorded. */
static int function_tool(const json_t *t)
{
    return mr_conv_eq(mr_conv_str(json_object_get(t, "type")), "function");
}

static void read_tool(const json_t *t, mr_conv_tool_t *tool)
{
    tool->type_ok = 1;
    tool->type = lit("function");
    tool->parameters = json_object_get(t, "parameters");
    if (json_is_null(tool->parameters))
        tool->parameters = NULL;
}

static int tool_choice(parser_t *ps, const json_t *v)
{
    mr_conv_tool_choice_t *tc = &ps->b.r->tool_choice;
    mr_conv_str_t s = mr_conv_str(v);

    if (!v || json_is_null(v))
        return 0;
    if (s.p) {
        tc->mode = mr_conv_eq(s, "auto")       ? MR_CONV_CHOICE_AUTO
                   : mr_conv_eq(s, "none")     ? MR_CONV_CHOICE_NONE
                   : mr_conv_eq(s, "required") ? MR_CONV_CHOICE_REQUIRED
                                               : MR_CONV_CHOICE_BAD_MODE;
        return 0;
    }
    if (!json_is_object(v)) {
        tc->mode = MR_CONV_CHOICE_BAD_TYPE;
        return 0;
    }
    if (!mr_conv_eq(mr_conv_str(json_object_get(v, "type")), "function"))
        return mr_codec_drop(&ps->b, "tool_choice"); /* a hosted tool, allowed_tools */
    tc->name = mr_conv_str(json_object_get(v, "name"));
    tc->mode = tc->name.p ? MR_CONV_CHOICE_FUNCTION : MR_CONV_CHOICE_BAD_NAME;
    return 0;
}

static void format(const json_t *f, mr_conv_format_t *out)
{
    const json_t *strict = json_object_get(f, "strict");

    if (!f || json_is_null(f))
        return;
    out->type = mr_conv_str(json_object_get(f, "type"));
    out->kind = mr_conv_eq(out->type, "text")          ? MR_CONV_FORMAT_TEXT
                : mr_conv_eq(out->type, "json_object") ? MR_CONV_FORMAT_JSON_OBJECT
                : mr_conv_eq(out->type, "json_schema") ? MR_CONV_FORMAT_JSON_SCHEMA
                                                       : MR_CONV_FORMAT_OTHER;
    if (!out->type.p)
        out->type = lit("(none)");
    out->name = mr_conv_str(json_object_get(f, "name"));
    out->schema = json_object_get(f, "schema");
    out->strict = json_is_boolean(strict) ? json_is_true(strict) : -1;
}

static int includes(const json_t *v, const char *what)
{
    size_t i;
    const json_t *s;

    json_array_foreach(v, i, s)
    {
        if (mr_conv_eq(mr_conv_str(s), what))
            return 1;
    }
    return 0;
}

/* Members the model carries (or the gateway consumes), sorted for bsearch. */
static const char *const carried[] = {
    "include",
    "input",
    "instructions",
    "max_output_tokens",
    "metadata",
    "model",
    "parallel_tool_calls",
    "previous_response_id",
    "prompt_cache_key",
    "reasoning",
    "store",
    "stream",
    "temperature",
    "text",
    "tool_choice",
    "tools",
    "top_logprobs",
    "top_p",
    "user",
};

static int parameters(parser_t *ps, const json_t *body)
{
    mr_conv_req_t *r = ps->b.r;
    const json_t *rsn = json_object_get(body, "reasoning");
    const json_t *ptc = json_object_get(body, "parallel_tool_calls");
    const json_t *summary = json_object_get(rsn, "summary");

    mr_codec_num(body, "max_output_tokens", "max_output_tokens", 1, &r->max_output);
    mr_codec_num(body, "temperature", "temperature", 0, &r->temperature);
    mr_codec_num(body, "top_p", "top_p", 0, &r->top_p);
    mr_codec_num(body, "top_logprobs", "top_logprobs", 1, &r->top_logprobs);
    r->reasoning.effort_name = mr_conv_str(json_object_get(rsn, "effort"));
    r->reasoning.effort = mr_conv_effort_of(r->reasoning.effort_name);
    r->reasoning_summary =
        mr_conv_str(json_is_string(summary) ? summary : json_object_get(rsn, "generate_summary"));
    r->parallel_tool_calls = json_is_boolean(ptc) ? json_is_true(ptc) : -1;
    r->stream = json_is_true(json_object_get(body, "stream"));
    r->include_usage = 1; /* Responses answers always carry usage */
    r->no_store = json_is_false(json_object_get(body, "store"));
    r->previous_response_id = mr_conv_str(json_object_get(body, "previous_response_id"));
    r->include_encrypted =
        includes(json_object_get(body, "include"), "reasoning.encrypted_content");
    r->metadata = json_object_get(body, "metadata");
    r->user = mr_conv_str(json_object_get(body, "user"));
    r->prompt_cache_key = mr_conv_str(json_object_get(body, "prompt_cache_key"));
    format(json_object_get(json_object_get(body, "text"), "format"), &r->format);
    if (mr_codec_dropped(&ps->b, body, carried, sizeof(carried) / sizeof(carried[0])) < 0 ||
        tool_choice(ps, json_object_get(body, "tool_choice")) < 0)
        return -1;
    return mr_codec_tools(&ps->b, json_object_get(body, "tools"), function_tool, read_tool);
}

int mr_responses_parse(const json_t *body, const json_t *history, mr_conv_req_t **out,
                       mr_error_t *err)
{
    parser_t ps = {.b = {.err = err}};

    *out = NULL;
    if (!json_is_object(body))
        return mr_error_bad(err, "invalid_type", NULL, "the body must be a JSON object");
    if (!(ps.b.r = mr_conv_req_new(body)) ||
        (history && !mr_conv_keep(ps.b.r->_arena, json_incref((json_t *)(uintptr_t)history)))) {
        mr_conv_req_free(ps.b.r);
        mr_error_set(err, 500, NULL, "internal_error", NULL, "out of memory");
        return -1;
    }
    ps.b.r->turns_param = "input";
    if (turns(&ps, body, json_is_array(history) ? history : NULL) < 0 ||
        parameters(&ps, body) < 0) {
        json_decref(ps.call_sigs);
        mr_conv_req_free(ps.b.r);
        return -1;
    }
    json_decref(ps.call_sigs);
    *out = ps.b.r;
    return 0;
}

json_t *mr_responses_input_items(const json_t *body)
{
    const json_t *input = json_object_get(body, "input");

    if (json_is_string(input))
        return json_pack("[{s:s, s:s, s:[{s:s, s:O}]}]", "type", "message", "role", "user",
                         "content", "type", "input_text", "text", input);
    return json_is_array(input) ? json_deep_copy(input) : json_array();
}
