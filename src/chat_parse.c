#include "meridian/chat_parse.h"

#include "meridian/codec.h"

#include <stdio.h>
#include <string.h>

typedef struct parser {
    mr_codec_build_t b;
    size_t turn; /* the message being parsed, for messages */
} parser_t;

/* A name -> value table, ended by {NULL, the value of any other name}. */
typedef struct name_value {
    const char *name;
    int value;
} name_value_t;

static int lookup(const name_value_t *t, const char *name)
{
    for (; t->name; t++)
        if (strcmp(name, t->name) == 0)
            break;
    return t->value;
}

/* ------------------------------------------------------------ content parts */

static int image_part(parser_t *ps, const json_t *part, mr_conv_media_t *m)
{
    const json_t *iu = json_object_get(part, "image_url");

    return mr_codec_media_url(
        &ps->b, json_is_string(iu) ? mr_conv_str(iu) : mr_conv_str(json_object_get(iu, "url")), m);
}

static int audio_part(parser_t *ps, const json_t *part, mr_conv_media_t *m)
{
    const json_t *a = json_object_get(part, "input_audio");
    const char *d = json_string_value(json_object_get(a, "data"));
    const char *fmt = json_string_value(json_object_get(a, "format"));
    char mime[32];

    m->format = mr_conv_str(json_object_get(a, "format"));
    if (!d || !fmt || strlen(fmt) > 16 || strchr(fmt, '/'))
        return 0; /* MR_CONV_SRC_MISSING */
    snprintf(mime, sizeof(mime), "audio/%s", fmt);
    m->media_type = mr_conv_copy(ps->b.r->_arena, mime, strlen(mime));
    if (!m->media_type.p)
        return mr_codec_oom(&ps->b);
    m->source = MR_CONV_SRC_BASE64;
    m->data = (mr_conv_str_t){d, strlen(d)};
    return 0;
}

static int file_part(parser_t *ps, const json_t *part, mr_conv_media_t *m)
{
    mr_conv_str_t fd = mr_conv_str(json_object_get(json_object_get(part, "file"), "file_data"));

    if (fd.p && mr_codec_media_url(&ps->b, fd, m) < 0)
        return -1;
    m->url = (mr_conv_str_t){NULL, 0}; /* file_data is data, never a link */
    if (m->source != MR_CONV_SRC_BASE64)
        m->source = fd.p ? MR_CONV_SRC_OTHER : MR_CONV_SRC_MISSING;
    return 0;
}

/* A text-like part: the string at `key`, else a flawed OTHER part. */
static void text_part(const json_t *part, const char *key, mr_conv_part_kind_t kind,
                      mr_conv_str_t type, mr_conv_part_t *p)
{
    const json_t *t = json_object_get(part, key);

    if (json_is_string(t)) {
        p->kind = kind;
        p->u.text = mr_conv_str(t);
    } else {
        p->kind = MR_CONV_OTHER;
        p->u.other.type = type;
        p->u.other.flaw = MR_CONV_FLAW_BAD_VALUE;
    }
}

/* One content part, as given: the dialect check judges it where it is. */
static int content_part(parser_t *ps, const json_t *part, mr_conv_part_t *p)
{
    mr_conv_str_t type = mr_conv_str(json_object_get(part, "type"));

    mr_codec_cache(part, &p->cache);
    if (!type.p) {
        p->kind = MR_CONV_OTHER;
        p->u.other.flaw = MR_CONV_FLAW_NO_TYPE;
        return 0;
    }
    if (strcmp(type.p, "text") == 0) {
        text_part(part, "text", MR_CONV_TEXT, type, p);
    } else if (strcmp(type.p, "refusal") == 0) {
        text_part(part, "refusal", MR_CONV_REFUSAL, type, p);
    } else if (strcmp(type.p, "image_url") == 0) {
        p->kind = MR_CONV_IMAGE;
        return image_part(ps, part, &p->u.media);
    } else if (strcmp(type.p, "input_audio") == 0) {
        p->kind = MR_CONV_AUDIO;
        return audio_part(ps, part, &p->u.media);
    } else if (strcmp(type.p, "file") == 0) {
        p->kind = MR_CONV_FILE;
        return file_part(ps, part, &p->u.media);
    } else if (strcmp(type.p, "thinking") == 0 || strcmp(type.p, "redacted_thinking") == 0) {
        /* Anthropic's own blocks, sent back as they came */
        p->kind = MR_CONV_REASONING;
        p->u.reasoning.text = mr_conv_str(json_object_get(part, "thinking"));
        p->u.reasoning.signature = mr_conv_str(json_object_get(part, "signature"));
        p->u.reasoning.data = mr_conv_str(json_object_get(part, "data"));
        p->u.reasoning.origin.kind = (mr_conv_str_t){"anthropic", 9};
    } else {
        p->kind = MR_CONV_OTHER;
        p->u.other.type = type;
    }
    return 0;
}

/* A message's content: null (no parts), a string (one text part) or an
 * array of parts. `extra` more parts are reserved after them. */
static int content(parser_t *ps, const json_t *c, size_t extra, mr_conv_part_t **parts, size_t *n)
{
    size_t k;
    const json_t *part;

    *n = 0;
    if (!c || json_is_null(c))
        return (*parts = mr_codec_parts(&ps->b, extra)) ? 0 : -1;
    if (json_is_string(c)) {
        if (!(*parts = mr_codec_parts(&ps->b, 1 + extra)))
            return -1;
        (*parts)[0].kind = MR_CONV_TEXT;
        (*parts)[0].u.text = mr_conv_str(c);
        *n = 1;
        return 0;
    }
    if (!json_is_array(c))
        return mr_error_bad(ps->b.err, "invalid_type", ps->b.r->turns_param,
                            "%s[%zu].content must be a string or an array of parts",
                            ps->b.r->turns_param, ps->turn);
    if (json_array_size(c) > MR_CONV_MAX_PARTS)
        return mr_error_bad(ps->b.err, "conversation_too_large", ps->b.r->turns_param,
                            "%s[%zu].content: more than %d parts", ps->b.r->turns_param, ps->turn,
                            MR_CONV_MAX_PARTS);
    if (!(*parts = mr_codec_parts(&ps->b, json_array_size(c) + extra)))
        return -1;
    json_array_foreach(c, k, part)
    {
        if (content_part(ps, part, &(*parts)[k]) < 0)
            return -1;
    }
    *n = json_array_size(c);
    return 0;
}

/* ------------------------------------------------------------ turns */

static int tool_call(parser_t *ps, const json_t *c, mr_conv_tool_call_t *call)
{
    const json_t *fn = json_object_get(c, "function");
    const json_t *args = json_object_get(fn, "arguments");
    const char *type = json_string_value(json_object_get(c, "type"));

    call->id = mr_conv_str(json_object_get(c, "id"));
    call->name = mr_conv_str(json_object_get(fn, "name"));
    /* Gemini's thought signature, as Google's OpenAI-compatible API sends it */
    call->signature = mr_conv_str(json_object_get(
        json_object_get(json_object_get(c, "extra_content"), "google"), "thought_signature"));
    if (call->signature.p)
        call->origin.kind = (mr_conv_str_t){"gemini", 6};
    call->type_ok = !type || strcmp(type, "function") == 0;
    return mr_codec_args_text(&ps->b, args, call);
}

/* OpenRouter's reasoning_details formats -> provider kinds. */
static mr_conv_str_t format_kind(const char *format)
{
    if (format && strncmp(format, "anthropic-", 10) == 0)
        return (mr_conv_str_t){"anthropic", 9};
    if (format && strncmp(format, "google-", 7) == 0)
        return (mr_conv_str_t){"gemini", 6};
    return (mr_conv_str_t){NULL, 0};
}

/* One reasoning_details item: reasoning.text (text, signature),
 * reasoning.summary, reasoning.encrypted (data); 0 when it is none. */
static int detail_part(const json_t *d, mr_conv_part_t *p)
{
    const char *type = json_string_value(json_object_get(d, "type"));
    mr_conv_reasoning_t *r = &p->u.reasoning;

    if (!type)
        return 0;
    if (!strcmp(type, "reasoning.text")) {
        r->text = mr_conv_str(json_object_get(d, "text"));
        r->signature = mr_conv_str(json_object_get(d, "signature"));
    } else if (!strcmp(type, "reasoning.summary")) {
        r->text = mr_conv_str(json_object_get(d, "summary"));
    } else if (!strcmp(type, "reasoning.encrypted")) {
        r->data = mr_conv_str(json_object_get(d, "data"));
    } else {
        return 0;
    }
    p->kind = MR_CONV_REASONING;
    r->origin.kind = format_kind(json_string_value(json_object_get(d, "format")));
    r->origin.model = mr_conv_str(json_object_get(d, "model"));
    return 1;
}

/* OpenRouter carries a Gemini function call's thought signature as a
 * reasoning.encrypted item whose id is the call's id: such an item belongs
 * to the call (returned), not to the reasoning. */
static const json_t *call_signature_item(const json_t *m, const char *call_id)
{
    const json_t *d;
    size_t k;

    json_array_foreach(json_object_get(m, "reasoning_details"), k, d)
    {
        const char *id = json_string_value(json_object_get(d, "id"));
        const char *type = json_string_value(json_object_get(d, "type"));
        if (call_id && id && type && !strcmp(id, call_id) && !strcmp(type, "reasoning.encrypted") &&
            json_is_string(json_object_get(d, "data")))
            return d;
    }
    return NULL;
}

static int is_call_signature(const json_t *m, const json_t *d)
{
    const char *id = json_string_value(json_object_get(d, "id"));
    const json_t *c;
    size_t k;

    json_array_foreach(json_object_get(m, "tool_calls"), k, c)
    {
        const char *cid = json_string_value(json_object_get(c, "id"));
        if (id && cid && !strcmp(id, cid) && call_signature_item(m, cid) == d)
            return 1;
    }
    return 0;
}

/* The reasoning of an assistant message, before its content: its
 * reasoning_details, else its unsigned reasoning_content / reasoning text. */
static size_t reasoning_parts(const json_t *m, mr_conv_part_t *parts)
{
    const json_t *details = json_object_get(m, "reasoning_details"), *d;
    mr_conv_str_t text = mr_conv_str(json_object_get(m, "reasoning_content"));
    size_t k, n = 0;

    json_array_foreach(details, k, d)
    {
        if (!is_call_signature(m, d))
            n += (size_t)detail_part(d, &parts[n]);
    }
    if (n == 0 && (text.p || (text = mr_conv_str(json_object_get(m, "reasoning"))).p)) {
        parts[0].kind = MR_CONV_REASONING;
        parts[0].u.reasoning.text = text;
        n = 1;
    }
    return n;
}

/* A call without extra_content takes its signature from reasoning_details. */
static void call_signature(const json_t *m, mr_conv_tool_call_t *call)
{
    const json_t *d = call->signature.p ? NULL : call_signature_item(m, call->id.p);

    if (!d)
        return;
    call->signature = mr_conv_str(json_object_get(d, "data"));
    call->origin.kind = format_kind(json_string_value(json_object_get(d, "format")));
    if (!call->origin.kind.p)
        call->origin.kind = (mr_conv_str_t){"gemini", 6};
    call->origin.model = mr_conv_str(json_object_get(d, "model"));
}

/* A call's Gemini signature whose model is not said gets the model of the
 * message's Gemini reasoning, when that says it (same answer, same model). */
static void model_of_calls(mr_conv_turn_t *t)
{
    mr_conv_str_t model = {NULL, 0};

    for (size_t i = 0; i < t->n_parts && !model.p; i++)
        if (t->parts[i].kind == MR_CONV_REASONING &&
            mr_conv_eq(t->parts[i].u.reasoning.origin.kind, "gemini"))
            model = t->parts[i].u.reasoning.origin.model;
    for (size_t i = 0; i < t->n_parts && model.p; i++) {
        mr_conv_tool_call_t *c = &t->parts[i].u.call;
        if (t->parts[i].kind == MR_CONV_TOOL_CALL && c->signature.p && !c->origin.model.p &&
            mr_conv_eq(c->origin.kind, "gemini"))
            c->origin.model = model;
    }
}

static int assistant_turn(parser_t *ps, const json_t *m, mr_conv_turn_t *t)
{
    const json_t *calls = json_object_get(m, "tool_calls"), *c;
    const json_t *details = json_object_get(m, "reasoning_details");
    size_t n_calls = json_array_size(calls), n_reason = json_array_size(details) + 1, k;
    mr_conv_part_t *content_parts;
    size_t n_content;

    if (calls && !json_is_null(calls) && !json_is_array(calls))
        return mr_error_bad(ps->b.err, "invalid_type", ps->b.r->turns_param,
                            "%s[%zu].tool_calls must be an array", ps->b.r->turns_param, ps->turn);
    if (n_calls > MR_CONV_MAX_PARTS || n_reason > MR_CONV_MAX_PARTS)
        return mr_error_bad(ps->b.err, "conversation_too_large", ps->b.r->turns_param,
                            "%s[%zu]: more than %d tool calls or reasoning details",
                            ps->b.r->turns_param, ps->turn, MR_CONV_MAX_PARTS);
    if (!(t->parts = mr_codec_parts(&ps->b, n_reason)))
        return -1;
    t->n_parts = reasoning_parts(m, t->parts);
    if (content(ps, t->has_content ? json_object_get(m, "content") : NULL, n_calls, &content_parts,
                &n_content) < 0)
        return -1;
    /* reasoning first, then the content parts and calls, in one array */
    if (t->n_parts) {
        mr_conv_part_t *all = mr_codec_parts(&ps->b, t->n_parts + n_content + n_calls);
        if (!all)
            return -1;
        memcpy(all, t->parts, t->n_parts * sizeof(*all));
        memcpy(all + t->n_parts, content_parts, n_content * sizeof(*all));
        t->parts = all;
        t->n_parts += n_content;
    } else {
        t->parts = content_parts;
        t->n_parts = n_content;
    }
    json_array_foreach(calls, k, c)
    {
        mr_conv_part_t *p = &t->parts[t->n_parts++];
        p->kind = MR_CONV_TOOL_CALL;
        mr_codec_cache(c, &p->cache);
        if (tool_call(ps, c, &p->u.call) < 0)
            return -1;
        call_signature(m, &p->u.call);
    }
    model_of_calls(t);
    return 0;
}

static int tool_turn(parser_t *ps, const json_t *m, mr_conv_turn_t *t)
{
    const json_t *c = json_object_get(m, "content");
    mr_conv_tool_result_t *res;

    if (!(t->parts = mr_codec_parts(&ps->b, 1)))
        return -1;
    t->n_parts = 1;
    t->parts[0].kind = MR_CONV_TOOL_RESULT;
    res = &t->parts[0].u.result;
    res->call_id = mr_conv_str(json_object_get(m, "tool_call_id"));
    res->as_string = !json_is_array(c);
    return content(ps, c, 0, &res->content, &res->n_content);
}

static const name_value_t roles[] = {
    {"system", MR_CONV_ROLE_SYSTEM}, {"developer", MR_CONV_ROLE_DEVELOPER},
    {"user", MR_CONV_ROLE_USER},     {"assistant", MR_CONV_ROLE_ASSISTANT},
    {"tool", MR_CONV_ROLE_TOOL},     {NULL, MR_CONV_ROLE_OTHER},
};

static int turn(parser_t *ps, const json_t *m, size_t i, mr_conv_turn_t *t)
{
    const json_t *c = json_object_get(m, "content");

    ps->turn = i;
    t->role_name = mr_conv_str(json_object_get(m, "role"));
    t->role = MR_CONV_ROLE_OTHER;
    if (!json_is_object(m) || !t->role_name.p) {
        t->role_name.p = NULL; /* refused by the check, in its turn */
        return 0;
    }
    t->role = (mr_conv_role_t)lookup(roles, t->role_name.p);
    t->has_content = c && !json_is_null(c);
    mr_codec_cache(m, &t->cache);
    switch (t->role) {
    case MR_CONV_ROLE_ASSISTANT:
        return assistant_turn(ps, m, t);
    case MR_CONV_ROLE_TOOL:
        return tool_turn(ps, m, t);
    case MR_CONV_ROLE_OTHER:
        return 0; /* refused by every dialect: its content is not looked at */
    default:
        return content(ps, c, 0, &t->parts, &t->n_parts);
    }
}

/* Each tool result gets the name of the call it answers: the last call
 * with its id in any message's tool_calls, for dialects that match results
 * by function name. */
static int resolve_names(parser_t *ps, const json_t *messages)
{
    mr_conv_req_t *r = ps->b.r;
    json_t *names; /* call id -> name, borrowed */
    size_t i, k;
    const json_t *m, *c;
    int rc;

    for (i = 0; i < r->n_turns && r->turns[i].role != MR_CONV_ROLE_TOOL; i++)
        ;
    if (i == r->n_turns)
        return 0; /* no results to name */
    names = json_object();
    rc = names ? 0 : -1;

    json_array_foreach(messages, i, m)
    {
        json_array_foreach(json_object_get(m, "tool_calls"), k, c)
        {
            const char *id = json_string_value(json_object_get(c, "id"));
            json_t *name = json_object_get(json_object_get(c, "function"), "name");
            if (rc == 0 && id && json_is_string(name) && json_object_set(names, id, name) < 0)
                rc = -1;
        }
    }
    for (i = 0; rc == 0 && i < r->n_turns; i++) {
        mr_conv_tool_result_t *res;
        if (r->turns[i].role != MR_CONV_ROLE_TOOL)
            continue;
        res = &r->turns[i].parts[0].u.result;
        if (res->call_id.p)
            res->name = mr_conv_str(json_object_get(names, res->call_id.p));
    }
    json_decref(names);
    return rc < 0 ? mr_codec_oom(&ps->b) : 0;
}

/* ------------------------------------------------------------ parameters */

/* A number member named as the client spelt it. */
static void num(const json_t *body, const char *key, int integer, mr_conv_num_t *v)
{
    mr_codec_num(body, key, key, integer, v);
}

static int stop(parser_t *ps, const json_t *v)
{
    mr_conv_req_t *r = ps->b.r;
    size_t i;

    if (!v || json_is_null(v))
        return 0;
    if (json_is_array(v)) {
        const json_t *s;
        json_array_foreach(v, i, s)
        {
            r->stop_bad |= !json_is_string(s);
        }
    } else if (!json_is_string(v)) {
        r->stop_bad = 1;
    }
    if (r->stop_bad)
        return 0;
    r->n_stop = json_is_string(v) ? 1 : json_array_size(v);
    if (!(r->stop = mr_conv_alloc(r->_arena, r->n_stop, sizeof(*r->stop))))
        return mr_codec_oom(&ps->b);
    for (i = 0; i < r->n_stop; i++)
        r->stop[i] = mr_conv_str(json_is_string(v) ? v : json_array_get(v, i));
    return 0;
}

static void format(const json_t *rf, mr_conv_format_t *f)
{
    static const name_value_t kinds[] = {{"text", MR_CONV_FORMAT_TEXT},
                                         {"json_object", MR_CONV_FORMAT_JSON_OBJECT},
                                         {"json_schema", MR_CONV_FORMAT_JSON_SCHEMA},
                                         {NULL, MR_CONV_FORMAT_OTHER}};
    const json_t *js = json_object_get(rf, "json_schema");
    const json_t *strict = json_object_get(js, "strict");

    f->type = mr_conv_str(json_object_get(rf, "type"));
    if (!f->type.p)
        return;
    f->kind = (mr_conv_format_kind_t)lookup(kinds, f->type.p);
    f->name = mr_conv_str(json_object_get(js, "name"));
    f->schema = json_object_get(js, "schema");
    f->strict = json_is_boolean(strict) ? json_is_true(strict) : -1;
}

static int tools(parser_t *ps, const json_t *body)
{
    mr_conv_req_t *r = ps->b.r;
    const json_t *v = json_object_get(body, "tools"), *t;
    size_t i;

    if (!v || json_is_null(v))
        return 0;
    if (!json_is_array(v)) {
        r->tools_bad = 1;
        return 0;
    }
    if (json_array_size(v) > MR_CONV_MAX_TOOLS)
        return mr_error_bad(ps->b.err, "conversation_too_large", "tools",
                            "more than %d tools: too many to translate", MR_CONV_MAX_TOOLS);
    r->n_tools = json_array_size(v);
    if (r->n_tools && !(r->tools = mr_conv_alloc(r->_arena, r->n_tools, sizeof(*r->tools))))
        return mr_codec_oom(&ps->b);
    json_array_foreach(v, i, t)
    {
        mr_conv_tool_t *tool = &r->tools[i];
        const json_t *fn = json_object_get(t, "function");
        const json_t *strict = json_object_get(fn, "strict");
        tool->type = mr_conv_str(json_object_get(t, "type"));
        tool->type_ok = mr_conv_eq(tool->type, "function");
        tool->name = mr_conv_str(json_object_get(fn, "name"));
        tool->description = mr_conv_str(json_object_get(fn, "description"));
        tool->parameters = json_object_get(fn, "parameters");
        tool->strict = json_is_boolean(strict) ? json_is_true(strict) : -1;
        mr_codec_cache(t, &tool->cache);
    }
    return 0;
}

static void tool_choice(const json_t *v, mr_conv_tool_choice_t *tc)
{
    static const name_value_t modes[] = {{"auto", MR_CONV_CHOICE_AUTO},
                                         {"none", MR_CONV_CHOICE_NONE},
                                         {"required", MR_CONV_CHOICE_REQUIRED},
                                         {NULL, MR_CONV_CHOICE_BAD_MODE}};

    if (json_is_string(v)) {
        tc->mode = (mr_conv_choice_mode_t)lookup(modes, json_string_value(v));
    } else if (json_is_object(v)) {
        tc->name = mr_conv_str(json_object_get(json_object_get(v, "function"), "name"));
        tc->mode = tc->name.p ? MR_CONV_CHOICE_FUNCTION : MR_CONV_CHOICE_BAD_NAME;
    } else if (v && !json_is_null(v)) {
        tc->mode = MR_CONV_CHOICE_BAD_TYPE;
    }
}

/* Top-level members the model carries (or the gateway consumed), sorted
 * for bsearch. */
static const char *const carried_members[] = {"audio",
                                              "cache_control",
                                              "cachedContent",
                                              "cached_content",
                                              "extra_body",
                                              "frequency_penalty",
                                              "function_call",
                                              "functions",
                                              "google",
                                              "logprobs",
                                              "max_completion_tokens",
                                              "max_tokens",
                                              "messages",
                                              "metadata",
                                              "modalities",
                                              "model",
                                              "n",
                                              "parallel_tool_calls",
                                              "presence_penalty",
                                              "prompt_cache_key",
                                              "reasoning",
                                              "reasoning_effort",
                                              "response_format",
                                              "seed",
                                              "stop",
                                              "stream",
                                              "stream_options",
                                              "temperature",
                                              "thinking",
                                              "tool_choice",
                                              "tools",
                                              "top_logprobs",
                                              "top_p",
                                              "user"};

/* A member of Google's extension object, in the spellings its OpenAI-
 * compatible API documents ("google" merged from the SDKs' extra_body, or
 * "extra_body.google"), else at the top level; snake or camel case. */
static const json_t *google_member(const json_t *body, const char *snake, const char *camel)
{
    const json_t *homes[] = {json_object_get(body, "google"),
                             json_object_get(json_object_get(body, "extra_body"), "google"), body};
    for (size_t i = 0; i < sizeof(homes) / sizeof(homes[0]); i++) {
        const json_t *v = json_object_get(homes[i], snake);
        if ((v || (v = json_object_get(homes[i], camel))) && !json_is_null(v))
            return v;
    }
    return NULL;
}

/* reasoning_effort, OpenRouter's reasoning {effort, max_tokens}, and the
 * dialects' own fields: Anthropic's thinking, Gemini's thinking_config. */
static void reasoning(const json_t *body, mr_conv_reasoning_req_t *rr)
{
    const json_t *opt = json_object_get(body, "reasoning");
    const json_t *effort = json_object_get(body, "reasoning_effort");
    const json_t *max = json_object_get(opt, "max_tokens");
    const json_t *thinking = json_object_get(body, "thinking");
    const json_t *tc = google_member(body, "thinking_config", "thinkingConfig");

    if (!effort || json_is_null(effort))
        effort = json_object_get(opt, "effort");
    rr->effort_name = mr_conv_str(effort);
    rr->effort = effort && !json_is_null(effort) && !json_is_string(effort)
                     ? MR_CONV_EFFORT_BAD
                     : mr_conv_effort_of(rr->effort_name);
    if (json_is_integer(max) && json_integer_value(max) >= 0 && json_integer_value(max) < 1 << 30)
        rr->budget = (long)json_integer_value(max);
    rr->anthropic = json_is_object(thinking) ? thinking : NULL;
    rr->gemini = json_is_object(tc) ? tc : NULL;
}

static int parameters(parser_t *ps, const json_t *body)
{
    mr_conv_req_t *r = ps->b.r;
    const json_t *mct = json_object_get(body, "max_completion_tokens");
    const json_t *ptc = json_object_get(body, "parallel_tool_calls");
    const json_t *audio = json_object_get(body, "audio");
    size_t i;
    const json_t *v;

    num(body, "temperature", 0, &r->temperature);
    num(body, "top_p", 0, &r->top_p);
    num(body, "presence_penalty", 0, &r->presence_penalty);
    num(body, "frequency_penalty", 0, &r->frequency_penalty);
    num(body, "seed", 1, &r->seed);
    num(body, "n", 1, &r->n);
    num(body, "top_logprobs", 1, &r->top_logprobs);
    /* max_completion_tokens wins; max_tokens is not looked at then */
    num(body, mct && !json_is_null(mct) ? "max_completion_tokens" : "max_tokens", 1,
        &r->max_output);
    r->logprobs = json_is_true(json_object_get(body, "logprobs"));
    format(json_object_get(body, "response_format"), &r->format);
    r->audio_out = audio && !json_is_null(audio);
    json_array_foreach(json_object_get(body, "modalities"), i, v)
    {
        r->non_text_modal |= !json_is_string(v) || strcmp(json_string_value(v), "text") != 0;
    }
    r->legacy_functions =
        json_object_get(body, "functions") || json_object_get(body, "function_call");
    r->stream = json_is_true(json_object_get(body, "stream"));
    r->include_usage =
        json_is_true(json_object_get(json_object_get(body, "stream_options"), "include_usage"));
    r->parallel_tool_calls = json_is_boolean(ptc) ? json_is_true(ptc) : -1;
    r->user = mr_conv_str(json_object_get(body, "user"));
    r->metadata = json_object_get(body, "metadata");
    reasoning(body, &r->reasoning);
    r->prompt_cache_key = mr_conv_str(json_object_get(body, "prompt_cache_key"));
    r->cached_content = mr_conv_str(google_member(body, "cached_content", "cachedContent"));
    mr_codec_cache(body, &r->cache);
    tool_choice(json_object_get(body, "tool_choice"), &r->tool_choice);
    if (stop(ps, json_object_get(body, "stop")) < 0 || tools(ps, body) < 0)
        return -1;
    return mr_codec_dropped(&ps->b, body, carried_members,
                            sizeof(carried_members) / sizeof(carried_members[0]));
}

int mr_chat_parse(const json_t *body, mr_conv_req_t **out, mr_error_t *err)
{
    const json_t *messages = json_object_get(body, "messages"), *m;
    parser_t ps = {.b = {.err = err}};
    size_t i;

    *out = NULL;
    if (!json_is_object(body))
        return mr_error_bad(err, "invalid_type", NULL, "the body must be a JSON object");
    if (!json_is_array(messages))
        return mr_error_bad(err, "invalid_type", "messages", "messages must be an array");
    if (!(ps.b.r = mr_conv_req_new(body))) {
        mr_error_set(err, 500, NULL, "internal_error", NULL, "out of memory");
        return -1;
    }
    if (json_array_size(messages) > MR_CONV_MAX_TURNS) {
        mr_error_bad(err, "conversation_too_large", "messages",
                     "more than %d messages: too many to translate", MR_CONV_MAX_TURNS);
        goto fail;
    }
    ps.b.r->n_turns = json_array_size(messages);
    if (ps.b.r->n_turns &&
        !(ps.b.r->turns = mr_conv_alloc(ps.b.r->_arena, ps.b.r->n_turns, sizeof(*ps.b.r->turns)))) {
        mr_codec_oom(&ps.b);
        goto fail;
    }
    json_array_foreach(messages, i, m)
    {
        if (turn(&ps, m, i, &ps.b.r->turns[i]) < 0)
            goto fail;
    }
    if (resolve_names(&ps, messages) < 0 || parameters(&ps, body) < 0)
        goto fail;
    *out = ps.b.r;
    return 0;
fail:
    mr_conv_req_free(ps.b.r);
    return -1;
}
