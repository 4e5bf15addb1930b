#include "meridian/messages_parse.h"

#include "meridian/codec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct parser {
    mr_codec_build_t b;
    size_t msg;     /* the message being parsed */
    char where[64]; /* its content's JSON path, for messages */
    int assistant;  /* it is the assistant's */
} parser_t;

static int is_type(const json_t *block, const char *type)
{
    const char *t = json_string_value(json_object_get(block, "type"));
    return t && strcmp(t, type) == 0;
}

static int bad(parser_t *ps, size_t k, const char *what)
{
    return mr_error_bad(ps->b.err, "invalid_type", "messages", "%s[%zu] %s", ps->where, k, what);
}

/* ------------------------------------------------------------ blocks */

static void other(mr_conv_part_t *p, mr_conv_str_t type, mr_conv_flaw_t flaw)
{
    p->kind = MR_CONV_OTHER;
    p->u.other.type = type;
    p->u.other.flaw = flaw;
}

/* base64 / url / file sources of image and document blocks */
static int source(parser_t *ps, const json_t *src, mr_conv_media_t *m)
{
    const json_t *type = json_object_get(src, "type");

    if (mr_conv_eq(mr_conv_str(type), "base64"))
        return mr_codec_media_base64(&ps->b, mr_conv_str(json_object_get(src, "media_type")),
                                     mr_conv_str(json_object_get(src, "data")), m);
    if (mr_conv_eq(mr_conv_str(type), "url"))
        return mr_codec_media_url(&ps->b, mr_conv_str(json_object_get(src, "url")), m);
    /* a file id or an unknown source: no bytes a target could be sent */
    m->source = src ? MR_CONV_SRC_OTHER : MR_CONV_SRC_MISSING;
    m->url = mr_conv_str(json_object_get(src, "file_id"));
    return 0;
}

/* A document: a plain-text (or content-string) one is text for the model. */
static int document(parser_t *ps, const json_t *b, mr_conv_part_t *p)
{
    const json_t *src = json_object_get(b, "source");
    const json_t *text = mr_conv_eq(mr_conv_str(json_object_get(src, "type")), "text")
                             ? json_object_get(src, "data")
                             : json_object_get(src, "content");

    if (json_is_string(text)) {
        p->kind = MR_CONV_TEXT;
        p->u.text = mr_conv_str(text);
        return 0;
    }
    p->kind = MR_CONV_FILE;
    return source(ps, src, &p->u.media);
}

static void thinking(const json_t *b, int redacted, mr_conv_part_t *p)
{
    p->kind = MR_CONV_REASONING;
    if (redacted) {
        p->u.reasoning.data = mr_conv_str(json_object_get(b, "data"));
        return;
    }
    p->u.reasoning.text = mr_conv_str(json_object_get(b, "thinking"));
    p->u.reasoning.signature = mr_conv_str(json_object_get(b, "signature"));
}

/* One content block as given: the dialect check judges it where it is. */
static int block(parser_t *ps, const json_t *b, mr_conv_part_t *p)
{
    mr_conv_str_t type = mr_conv_str(json_object_get(b, "type"));
    const json_t *text = json_object_get(b, "text");

    mr_codec_cache(b, &p->cache);
    if (!type.p) {
        other(p, type, MR_CONV_FLAW_NO_TYPE);
    } else if (mr_conv_eq(type, "text")) {
        if (json_is_string(text)) {
            p->kind = MR_CONV_TEXT;
            p->u.text = mr_conv_str(text);
        } else {
            other(p, type, MR_CONV_FLAW_BAD_VALUE);
        }
    } else if (mr_conv_eq(type, "image")) {
        p->kind = MR_CONV_IMAGE;
        return source(ps, json_object_get(b, "source"), &p->u.media);
    } else if (mr_conv_eq(type, "document")) {
        return document(ps, b, p);
    } else if (mr_conv_eq(type, "tool_use") && ps->assistant) {
        p->kind = MR_CONV_TOOL_CALL;
        p->u.call.id = mr_conv_str(json_object_get(b, "id"));
        p->u.call.name = mr_conv_str(json_object_get(b, "name"));
        p->u.call.type_ok = 1;
        return mr_codec_args_object(&ps->b, json_object_get(b, "input"), &p->u.call);
    } else if ((mr_conv_eq(type, "thinking") || mr_conv_eq(type, "redacted_thinking")) &&
               ps->assistant) {
        thinking(b, type.p[0] == 'r', p);
    } else { /* unknown, or the assistant's blocks elsewhere */
        other(p, type, MR_CONV_FLAW_NONE);
    }
    return 0;
}

/* content: a string (one text part) or an array of blocks, the ones that
 * are tool results skipped when `skip_results`. */
static int blocks(parser_t *ps, const json_t *c, int skip_results, mr_conv_part_t **parts,
                  size_t *n)
{
    size_t k, want = json_array_size(c);
    const json_t *b;

    *n = 0;
    if (json_is_string(c)) {
        if (!(*parts = mr_codec_parts(&ps->b, 1)))
            return -1;
        (*parts)[0].kind = MR_CONV_TEXT;
        (*parts)[0].u.text = mr_conv_str(c);
        *n = 1;
        return 0;
    }
    if (!(*parts = mr_codec_parts(&ps->b, want)))
        return -1;
    json_array_foreach(c, k, b)
    {
        if (skip_results && is_type(b, "tool_result"))
            continue;
        if (!json_is_object(b))
            return bad(ps, k, "must be an object");
        if (block(ps, b, &(*parts)[(*n)++]) < 0)
            return -1;
    }
    return 0;
}

/* ------------------------------------------------------------ turns */

static int tool_result(parser_t *ps, const json_t *b, size_t k, mr_conv_turn_t *t)
{
    const json_t *c = json_object_get(b, "content");
    mr_conv_tool_result_t *res;
    int rc;

    if (!(t->parts = mr_codec_parts(&ps->b, 1)))
        return -1;
    t->role = MR_CONV_ROLE_TOOL;
    t->n_parts = 1;
    t->parts[0].kind = MR_CONV_TOOL_RESULT;
    mr_codec_cache(b, &t->parts[0].cache);
    res = &t->parts[0].u.result;
    res->call_id = mr_conv_str(json_object_get(b, "tool_use_id"));
    res->is_error = json_is_true(json_object_get(b, "is_error"));
    res->as_string = !json_is_array(c);
    if (c && !json_is_null(c) && !json_is_string(c) && !json_is_array(c))
        return bad(ps, k, "content must be a string or an array");
    snprintf(ps->where, sizeof(ps->where), "messages[%zu].content[%zu].content", ps->msg, k);
    rc = json_is_null(c) ? 0 : blocks(ps, c, 0, &res->content, &res->n_content);
    snprintf(ps->where, sizeof(ps->where), "messages[%zu].content", ps->msg);
    return rc;
}

static size_t n_results(const json_t *m)
{
    const json_t *c = json_object_get(m, "content"), *b;
    size_t k, n = 0;

    if (!mr_conv_eq(mr_conv_str(json_object_get(m, "role")), "user"))
        return 0;
    json_array_foreach(c, k, b)
    {
        n += is_type(b, "tool_result");
    }
    return n;
}

/* The turns one message becomes: its tool results, then the rest. */
static size_t turns_of(const json_t *m)
{
    size_t r = n_results(m);
    return r == 0 ? 1 : r + (json_array_size(json_object_get(m, "content")) > r);
}

/* A user message: one TOOL turn per tool_result, then a USER turn with the
 * other blocks (if any). Returns the turns filled. */
static int user(parser_t *ps, const json_t *m, mr_conv_turn_t *t, size_t *used)
{
    const json_t *c = json_object_get(m, "content"), *b;
    size_t k, n = 0, first = 0;
    int others = 0;

    json_array_foreach(c, k, b)
    {
        if (!is_type(b, "tool_result")) {
            first = others++ ? first : k;
            continue;
        }
        t[n] = (mr_conv_turn_t){.src = ps->msg + 1, .has_content = 1};
        if (tool_result(ps, b, k, &t[n++]) < 0)
            return -1;
    }
    *used = n;
    if (n && !others)
        return 0;
    t[n] = (mr_conv_turn_t){.role = MR_CONV_ROLE_USER, .role_name = {"user", 4}};
    t[n].src = ps->msg + 1;
    t[n].src_part = first;
    t[n].has_content = 1;
    *used = n + 1;
    return blocks(ps, c, 1, &t[n].parts, &t[n].n_parts);
}

static int message(parser_t *ps, const json_t *m, mr_conv_turn_t *t, size_t *used)
{
    const json_t *c = json_object_get(m, "content");
    mr_conv_str_t role = mr_conv_str(json_object_get(m, "role"));

    *used = 1;
    *t = (mr_conv_turn_t){.role = MR_CONV_ROLE_OTHER, .role_name = role, .src = ps->msg + 1};
    if (!json_is_object(m) || !role.p) {
        t->role_name.p = NULL; /* refused by the check, in its turn */
        t->role_name.n = 0;
        return 0;
    }
    if (!mr_conv_eq(role, "user") && !mr_conv_eq(role, "assistant") && !mr_conv_eq(role, "system"))
        return 0; /* refused by every dialect: its content is not looked at */
    if (!json_is_string(c) && !json_is_array(c))
        return mr_error_bad(ps->b.err, "invalid_type", "messages",
                            "messages[%zu].content must be a string or an array of blocks",
                            ps->msg);
    snprintf(ps->where, sizeof(ps->where), "messages[%zu].content", ps->msg);
    ps->assistant = mr_conv_eq(role, "assistant");
    if (mr_conv_eq(role, "system")) {
        /* a system turn in the conversation (Claude Code sends them): a
         * SYSTEM turn where it stands */
        t->role = MR_CONV_ROLE_SYSTEM;
        t->has_content = 1;
        return blocks(ps, c, 0, &t->parts, &t->n_parts);
    }
    if (!ps->assistant)
        return user(ps, m, t, used);
    t->role = MR_CONV_ROLE_ASSISTANT;
    t->has_content = 1;
    return blocks(ps, c, 0, &t->parts, &t->n_parts);
}

/* system: a string, or text blocks, each a SYSTEM turn of its own (the
 * dialects with one system field join turns with a blank line; blocks of
 * one turn would be glued together). */
static size_t system_turns(const json_t *sys)
{
    return json_is_array(sys) ? json_array_size(sys) : sys && !json_is_null(sys);
}

static int system_prompt(parser_t *ps, const json_t *sys)
{
    size_t k;
    const json_t *b;

    if (!sys || json_is_null(sys))
        return 0;
    if (json_is_string(sys))
        return mr_codec_text_turn(&ps->b, MR_CONV_ROLE_SYSTEM, "system", sys, 0) ? 0 : -1;
    if (!json_is_array(sys))
        return mr_error_bad(ps->b.err, "invalid_type", "system",
                            "system must be a string or an array of text blocks");
    snprintf(ps->where, sizeof(ps->where), "system");
    ps->assistant = 0;
    json_array_foreach(sys, k, b)
    {
        /* the turn is made with an empty text, then the block read into it */
        mr_conv_turn_t *t = mr_codec_text_turn(&ps->b, MR_CONV_ROLE_SYSTEM, "system", NULL, 0);
        if (!t)
            return -1;
        if (!json_is_object(b))
            return bad(ps, k, "must be an object");
        if (block(ps, b, &t->parts[0]) < 0)
            return -1;
    }
    return 0;
}

static int turns(parser_t *ps, const json_t *body)
{
    const json_t *msgs = json_object_get(body, "messages"), *m;
    const json_t *sys = json_object_get(body, "system");
    mr_conv_req_t *r = ps->b.r;
    size_t i, n = system_turns(sys);

    json_array_foreach(msgs, i, m)
    {
        n += turns_of(m);
    }
    if (mr_codec_turns(&ps->b, n, "messages") < 0 || system_prompt(ps, sys) < 0)
        return -1;
    json_array_foreach(msgs, i, m)
    {
        size_t used;
        ps->msg = i;
        if (message(ps, m, &r->turns[r->n_turns], &used) < 0)
            return -1;
        r->n_turns += used;
    }
    return mr_codec_name_results(&ps->b);
}

/* ------------------------------------------------------------ parameters */

/* Custom tools (no type, or "custom"); server tools mean something only to
 * Anthropic, which gets the client's bytes: dropped and recorded. */
static int custom_tool(const json_t *t)
{
    const json_t *type = json_object_get(t, "type");
    return !json_is_object(t) || !type || mr_conv_eq(mr_conv_str(type), "custom");
}

static void read_tool(const json_t *t, mr_conv_tool_t *tool)
{
    tool->type_ok = json_is_object(t);
    tool->type = mr_conv_str(json_object_get(t, "type"));
    tool->parameters = json_object_get(t, "input_schema");
    mr_codec_cache(t, &tool->cache);
}

static void tool_choice(const json_t *v, mr_conv_req_t *r)
{
    static const struct {
        const char *type;
        mr_conv_choice_mode_t mode;
    } modes[] = {{"auto", MR_CONV_CHOICE_AUTO},
                 {"any", MR_CONV_CHOICE_REQUIRED},
                 {"none", MR_CONV_CHOICE_NONE},
                 {"tool", MR_CONV_CHOICE_FUNCTION}};
    mr_conv_str_t type = mr_conv_str(json_object_get(v, "type"));
    mr_conv_tool_choice_t *tc = &r->tool_choice;

    if (!v || json_is_null(v))
        return;
    if (!json_is_object(v)) {
        tc->mode = MR_CONV_CHOICE_BAD_TYPE;
        return;
    }
    tc->mode = MR_CONV_CHOICE_BAD_MODE;
    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++)
        if (mr_conv_eq(type, modes[i].type))
            tc->mode = modes[i].mode;
    tc->name = mr_conv_str(json_object_get(v, "name"));
    if (tc->mode == MR_CONV_CHOICE_FUNCTION && !tc->name.p)
        tc->mode = MR_CONV_CHOICE_BAD_NAME;
    if (json_is_true(json_object_get(v, "disable_parallel_tool_use")))
        r->parallel_tool_calls = 0;
}

static int stop_sequences(parser_t *ps, const json_t *v)
{
    mr_conv_req_t *r = ps->b.r;
    size_t i;
    const json_t *s;

    if (!v || json_is_null(v))
        return 0;
    r->stop_bad = !json_is_array(v);
    json_array_foreach(v, i, s)
    {
        r->stop_bad |= !json_is_string(s);
    }
    if (r->stop_bad || json_array_size(v) == 0)
        return 0;
    if (!(r->stop = mr_conv_alloc(r->_arena, json_array_size(v), sizeof(*r->stop))))
        return mr_codec_oom(&ps->b);
    json_array_foreach(v, i, s)
    {
        r->stop[r->n_stop++] = mr_conv_str(s);
    }
    return 0;
}

/* output_config.format, else the beta's top-level output_format:
 * {"type":"json_schema","schema":{…}} */
static void format(const json_t *body, mr_conv_format_t *f)
{
    const json_t *of = json_object_get(json_object_get(body, "output_config"), "format");

    if (!of)
        of = json_object_get(body, "output_format");
    if (!of || json_is_null(of))
        return;
    f->type = mr_conv_str(json_object_get(of, "type"));
    f->kind =
        mr_conv_eq(f->type, "json_schema") ? MR_CONV_FORMAT_JSON_SCHEMA : MR_CONV_FORMAT_OTHER;
    f->schema = json_object_get(of, "schema");
    if (!f->type.p)
        f->type = (mr_conv_str_t){"(none)", 6};
}

/* Members the model carries, sorted for bsearch. */
static const char *const carried[] = {
    "cache_control", "max_tokens",     "messages", "metadata", "model",       "output_config",
    "output_format", "stop_sequences", "stream",   "system",   "temperature", "thinking",
    "tool_choice",   "tools",          "top_k",    "top_p",
};

static int parameters(parser_t *ps, const json_t *body)
{
    mr_conv_req_t *r = ps->b.r;
    const json_t *think = json_object_get(body, "thinking");

    mr_codec_num(body, "max_tokens", "max_tokens", 1, &r->max_output);
    mr_codec_num(body, "temperature", "temperature", 0, &r->temperature);
    mr_codec_num(body, "top_p", "top_p", 0, &r->top_p);
    mr_codec_num(body, "top_k", "top_k", 1, &r->top_k);
    mr_codec_num(think, "budget_tokens", "thinking.budget_tokens", 1, &r->thinking_budget);
    r->thinking_type = mr_conv_str(json_object_get(think, "type"));
    r->reasoning.effort_name =
        mr_conv_str(json_object_get(json_object_get(body, "output_config"), "effort"));
    r->reasoning.effort = mr_conv_effort_of(r->reasoning.effort_name);
    r->stream = json_is_true(json_object_get(body, "stream"));
    r->include_usage = 1; /* Messages answers always carry usage */
    r->user = mr_conv_str(json_object_get(json_object_get(body, "metadata"), "user_id"));
    mr_codec_cache(body, &r->cache);
    format(body, &r->format);
    tool_choice(json_object_get(body, "tool_choice"), r);
    if (mr_codec_dropped(&ps->b, body, carried, sizeof(carried) / sizeof(carried[0])) < 0 ||
        stop_sequences(ps, json_object_get(body, "stop_sequences")) < 0)
        return -1;
    return mr_codec_tools(&ps->b, json_object_get(body, "tools"), custom_tool, read_tool);
}

int mr_messages_parse(const json_t *body, mr_conv_req_t **out, mr_error_t *err)
{
    parser_t ps = {.b = {.err = err}};

    *out = NULL;
    if (!json_is_object(body))
        return mr_error_bad(err, "invalid_type", NULL, "the body must be a JSON object");
    if (!json_is_array(json_object_get(body, "messages")))
        return mr_error_bad(err, "invalid_type", "messages", "messages must be an array");
    if (!(ps.b.r = mr_conv_req_new(body))) {
        mr_error_set(err, 500, NULL, "internal_error", NULL, "out of memory");
        return -1;
    }
    if (turns(&ps, body) < 0 || parameters(&ps, body) < 0) {
        mr_conv_req_free(ps.b.r);
        return -1;
    }
    *out = ps.b.r;
    return 0;
}
