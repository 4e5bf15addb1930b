/*
 * The Anthropic Messages dialect, request half (anthropic.h): the Messages
 * body of a checked conversation.
 *
 * System and developer turns become `system` (a string, or text blocks when
 * they carry cache markers), tool results user `tool_result` blocks,
 * assistant tool calls `tool_use` blocks, and consecutive turns of one role
 * are merged (Anthropic wants user and assistant turns to alternate).
 * Assistant reasoning made by Anthropic for this model goes back as
 * `thinking` / `redacted_thinking` blocks where it was; foreign reasoning is
 * left out and counted. Cache markers land on the block they were given on
 * (a message's on its last block; the request's on the last block of the
 * conversation). Every parameter's fate is listed in docs/providers.md.
 */
#include "anthropic.h"
#include "xlate.h"

#include <stdlib.h>
#include <string.h>

#define ANTHROPIC_DEFAULT_MAX_TOKENS 4096
#define ANTHROPIC_MIN_BUDGET 1024 /* the smallest thinking budget Anthropic takes */

/* ------------------------------------------------------------ blocks */

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

/* Sets o's cache_control from a marker (nothing when there is none). */
static void set_cache(json_t *o, const mr_conv_cache_t *c)
{
    json_t *cc;

    if (!o || !c->type.p || !(cc = json_pack("{s:o}", "type", mr__xlate_str(c->type))))
        return;
    if (c->ttl.p)
        json_object_set_new(cc, "ttl", mr__xlate_str(c->ttl));
    json_object_set_new(o, "cache_control", cc);
}

/* A message's marker goes on its last block. */
static void set_cache_last(json_t *items, const mr_conv_cache_t *c)
{
    set_cache(json_array_get(items, json_array_size(items) - 1), c);
}

static int add_text(json_t *blocks, const char *p, size_t n, const mr_conv_cache_t *c)
{
    json_t *b;

    if (n == 0) /* Anthropic rejects empty text blocks */
        return 0;
    if (!(b = json_pack("{s:s, s:s%}", "type", "text", "text", p, n)))
        return -1;
    set_cache(b, c);
    return json_array_append_new(blocks, b);
}

static json_t *source(const mr_conv_media_t *m)
{
    if (m->source == MR_CONV_SRC_URL)
        return json_pack("{s:s, s:s}", "type", "url", "url", m->url.p);
    return json_pack("{s:s, s:s, s:s}", "type", "base64", "media_type", m->media_type.p, "data",
                     m->data.p);
}

/* User parts (checked: text, images, PDF files) -> blocks. */
static int user_parts(const mr_conv_part_t *parts, size_t n, json_t *blocks)
{
    for (size_t k = 0; k < n; k++) {
        const mr_conv_part_t *p = &parts[k];
        json_t *b = NULL;
        if (p->kind == MR_CONV_TEXT) {
            if (add_text(blocks, p->u.text.p, p->u.text.n, &p->cache) < 0)
                return -1;
            continue;
        }
        if (p->kind != MR_CONV_IMAGE && p->kind != MR_CONV_FILE)
            continue;
        if (!(b = json_pack("{s:s, s:o}", "type", p->kind == MR_CONV_IMAGE ? "image" : "document",
                            "source", source(&p->u.media))))
            return -1;
        set_cache(b, &p->cache);
        if (json_array_append_new(blocks, b) < 0)
            return -1;
    }
    return 0;
}

static int user_blocks(mr_xlate_emit_t *e, const mr_conv_turn_t *t, json_t *blocks)
{
    (void)e;
    if (user_parts(t->parts, t->n_parts, blocks) < 0)
        return -1;
    set_cache_last(blocks, &t->cache);
    return 0;
}

/* A reasoning part made here for this model -> thinking / redacted_thinking;
 * reasoning Anthropic cannot check (foreign, or text without a signature)
 * is left out: it would be rejected. */
static int thinking_block(mr_xlate_emit_t *e, const mr_conv_reasoning_t *r, json_t *blocks)
{
    if (!r->signature.p && !r->data.p)
        return 0; /* unsigned text (another model's reasoning_content) */
    if (!mr__xlate_origin_ok(e, &r->origin))
        return 0;
    if (r->data.p && !r->text.p)
        return json_array_append_new(blocks, json_pack("{s:s, s:o}", "type", "redacted_thinking",
                                                       "data", mr__xlate_str(r->data)));
    return json_array_append_new(blocks, json_pack("{s:s, s:o, s:o}", "type", "thinking",
                                                   "thinking", mr__xlate_str(r->text), "signature",
                                                   mr__xlate_str(r->signature)));
}

/* Consecutive text parts joined into one block (with the last marker of the
 * run); returns the index after the run, or (size_t)-1. */
static size_t text_run(const mr_conv_turn_t *t, size_t k, json_t *blocks)
{
    const mr_conv_cache_t *cache = &t->parts[k].cache;
    mr_buf_t text;
    int rc = 0;

    mr_buf_init(&text, (size_t)-1);
    for (; k < t->n_parts && rc == 0; k++) {
        const mr_conv_part_t *p = &t->parts[k];
        if (p->kind != MR_CONV_TEXT && p->kind != MR_CONV_REFUSAL)
            break;
        if (p->cache.type.p)
            cache = &p->cache;
        rc = mr_buf_append(&text, p->u.text.p, p->u.text.n);
    }
    if (rc == 0)
        rc = add_text(blocks, mr_buf_ptr(&text), mr_buf_len(&text), cache);
    mr_buf_free(&text);
    return rc < 0 ? (size_t)-1 : k;
}

/* Reasoning, text and tool_use blocks in the order of the turn's parts. */
static int assistant_blocks(mr_xlate_emit_t *e, const mr_conv_turn_t *t, json_t *blocks)
{
    size_t k = 0;
    int rc = 0;

    while (rc == 0 && k < t->n_parts) {
        const mr_conv_part_t *p = &t->parts[k];
        if (p->kind == MR_CONV_TEXT || p->kind == MR_CONV_REFUSAL) {
            if ((k = text_run(t, k, blocks)) == (size_t)-1)
                return -1;
            continue;
        }
        if (p->kind == MR_CONV_REASONING) {
            rc = thinking_block(e, &p->u.reasoning, blocks);
        } else if (p->kind == MR_CONV_TOOL_CALL) {
            /* tool_use has no signature: another provider's is left out */
            e->dropped += p->u.call.signature.p != NULL;
            json_t *b =
                json_pack("{s:s, s:o, s:o, s:O}", "type", "tool_use", "id", tool_id(p->u.call.id),
                          "name", mr__xlate_str(p->u.call.name), "input", p->u.call.args_json);
            set_cache(b, &p->cache);
            rc = json_array_append_new(blocks, b);
        }
        k++;
    }
    if (rc == 0)
        set_cache_last(blocks, &t->cache);
    return rc;
}

static int result_block(mr_xlate_emit_t *e, const mr_conv_turn_t *t, json_t *blocks)
{
    const mr_conv_tool_result_t *res = &t->parts[0].u.result;
    json_t *c, *b;

    (void)e;
    if (res->as_string) {
        mr_buf_t text;
        mr_buf_init(&text, (size_t)-1);
        c = mr_conv_join_text(res->content, res->n_content, &text) < 0
                ? NULL
                : json_stringn(mr_buf_ptr(&text), mr_buf_len(&text));
        mr_buf_free(&text);
    } else if ((c = json_array()) && user_parts(res->content, res->n_content, c) < 0) {
        json_decref(c);
        c = NULL;
    }
    b = json_pack("{s:s, s:o, s:o}", "type", "tool_result", "tool_use_id", tool_id(res->call_id),
                  "content", c);
    set_cache(b, &t->cache);
    return json_array_append_new(blocks, b);
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

/* ------------------------------------------------------------ system */

static int has_system_marker(const mr_conv_req_t *conv)
{
    for (size_t i = 0; i < conv->n_turns; i++) {
        const mr_conv_turn_t *t = &conv->turns[i];
        if (t->role != MR_CONV_ROLE_SYSTEM && t->role != MR_CONV_ROLE_DEVELOPER)
            continue;
        if (t->cache.type.p)
            return 1;
        for (size_t k = 0; k < t->n_parts; k++)
            if (t->parts[k].cache.type.p)
                return 1;
    }
    return 0;
}

/* System text blocks that keep their cache markers in place. */
static json_t *system_blocks(const mr_conv_req_t *conv)
{
    json_t *blocks = json_array();

    for (size_t i = 0; blocks && i < conv->n_turns; i++) {
        const mr_conv_turn_t *t = &conv->turns[i];
        size_t before = json_array_size(blocks);
        if (t->role != MR_CONV_ROLE_SYSTEM && t->role != MR_CONV_ROLE_DEVELOPER)
            continue;
        if (user_parts(t->parts, t->n_parts, blocks) < 0) {
            json_decref(blocks);
            return NULL;
        }
        if (json_array_size(blocks) > before)
            set_cache_last(blocks, &t->cache);
    }
    return blocks;
}

static int emit_system(const mr_conv_req_t *conv, json_t *root)
{
    mr_buf_t text;
    json_t *sys = NULL;
    int rc = 0;

    if (has_system_marker(conv))
        return (sys = system_blocks(conv)) ? json_object_set_new(root, "system", sys) : -1;
    mr_buf_init(&text, (size_t)-1);
    if (mr__xlate_system_text(conv, &text) < 0)
        rc = -1;
    else if (mr_buf_len(&text))
        rc =
            json_object_set_new(root, "system", json_stringn(mr_buf_ptr(&text), mr_buf_len(&text)));
    mr_buf_free(&text);
    return rc;
}

static int emit_messages(mr_xlate_emit_t *e, const mr_conv_req_t *conv, json_t *root)
{
    static const mr_xlate_turns_t turns = {"assistant", "content", user_blocks, assistant_blocks,
                                           result_block};
    json_t *msgs = mr__xlate_turns(e, conv, &turns), *last;

    if (!msgs)
        return -1;
    /* the request's marker (automatic caching): the end of the conversation */
    last = json_array_get(msgs, json_array_size(msgs) - 1);
    set_cache_last(json_object_get(last, "content"), &conv->cache);
    tidy_turns(msgs);
    json_object_set_new(root, "messages", msgs);
    return emit_system(conv, root);
}

/* ------------------------------------------------------------ tools */

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

/* The tool's parameters, or a schema of no parameters. */
static json_t *input_schema(const json_t *parameters)
{
    return json_is_object(parameters) ? json_incref((json_t *)parameters)
                                      : json_pack("{s:s, s:{}}", "type", "object", "properties");
}

static int emit_tools(const mr_conv_req_t *conv, json_t *root)
{
    json_t *out, *tc;

    if (conv->n_tools == 0)
        return 0;
    if (!(out = mr__xlate_tools(conv, "input_schema", input_schema)))
        return -1;
    for (size_t i = 0; i < conv->n_tools; i++)
        set_cache(json_array_get(out, i), &conv->tools[i].cache);
    json_object_set_new(root, "tools", out);
    if ((tc = tool_choice(conv)))
        json_object_set_new(root, "tool_choice", tc);
    return 0;
}

/* ------------------------------------------------------------ reasoning */

/* reasoning_effort -> thinking.budget_tokens (docs/providers.md). */
static long effort_budget(mr_conv_effort_t e)
{
    switch (e) {
    case MR_CONV_EFFORT_MINIMAL:
        return 1024;
    case MR_CONV_EFFORT_LOW:
        return 2048;
    case MR_CONV_EFFORT_MEDIUM:
        return 8192;
    case MR_CONV_EFFORT_HIGH:
        return 24576;
    default:
        return 0;
    }
}

/* `thinking` and max_tokens: the client's own thinking object wins; else a
 * budget from reasoning.max_tokens or reasoning_effort, kept below
 * max_tokens (which counts thinking, as OpenAI's max_completion_tokens
 * counts reasoning). With thinking on, temperature and top_p are not sent:
 * Anthropic refuses them then. Returns 1 when thinking is on, 0 off, -1. */
static int emit_thinking(mr_xlate_emit_t *e, const mr_conv_req_t *conv, json_t *root,
                         mr_error_t *err)
{
    const mr_conv_reasoning_req_t *r = &conv->reasoning;
    const mr_provider_t *p = e->in->provider;
    long long max =
        p->default_max_tokens > 0 ? p->default_max_tokens : ANTHROPIC_DEFAULT_MAX_TOKENS;
    long budget = r->budget >= 0 ? r->budget : effort_budget(r->effort);

    if (r->anthropic) {
        json_object_set(root, "thinking", (json_t *)r->anthropic);
        budget = (long)json_integer_value(json_object_get(r->anthropic, "budget_tokens"));
    } else if (budget > 0) {
        if (budget < ANTHROPIC_MIN_BUDGET)
            budget = ANTHROPIC_MIN_BUDGET;
        if (conv->max_output.state == MR_CONV_SET && budget >= (long long)conv->max_output.v)
            budget = (long)conv->max_output.v - 1;
        if (budget < ANTHROPIC_MIN_BUDGET)
            return mr_error_bad(err, "invalid_value", conv->max_output.param,
                                "%s %.0f leaves no room for reasoning: anthropic targets need a "
                                "thinking budget of at least %d tokens below it",
                                conv->max_output.param, conv->max_output.v, ANTHROPIC_MIN_BUDGET);
        json_object_set_new(
            root, "thinking",
            json_pack("{s:s, s:I}", "type", "enabled", "budget_tokens", (json_int_t)budget));
    }
    if (conv->max_output.state == MR_CONV_SET)
        max = (long long)conv->max_output.v;
    else if (budget > 0)
        max += budget; /* room for the answer after the thinking */
    json_object_set_new(root, "max_tokens", json_integer(max));
    return json_object_get(root, "thinking") &&
           !mr_conv_eq(mr_conv_str(json_object_get(r->anthropic, "type")), "disabled");
}

/* ------------------------------------------------------------ structured outputs */

/* What Anthropic's structured outputs take (its grammar compiler): the
 * structure keywords and annotations, not numeric / length bounds. */
const char *const mr__anthropic_schema_keywords[] = {
    "type",    "properties",  "required", "additionalProperties",
    "items",   "enum",        "const",    "anyOf",
    "allOf",   "$ref",        "$defs",    "definitions",
    "default", "description", "title",    "format",
    "pattern", "minItems",    "examples", "$schema",
    "$id",     "$comment",    NULL};

int mr__anthropic_schema_value_ok(const char *keyword, const json_t *v)
{
    if (!strcmp(keyword, "additionalProperties"))
        return json_is_false(v);
    if (!strcmp(keyword, "minItems"))
        return json_is_integer(v) && (json_integer_value(v) == 0 || json_integer_value(v) == 1);
    return 1;
}

/* A copy of a schema where every object schema closes its properties
 * (Anthropic requires additionalProperties false). */
static json_t *closed_schema(const json_t *s)
{
    json_t *out = json_deep_copy(s), *v;
    const char *k;

    if (!json_is_object(out))
        return out;
    if (mr_conv_eq(mr_conv_str(json_object_get(out, "type")), "object") &&
        !json_object_get(out, "additionalProperties"))
        json_object_set_new(out, "additionalProperties", json_false());
    json_object_foreach(out, k, v)
    {
        size_t i;
        json_t *item;
        if (!strcmp(k, "properties") || !strcmp(k, "$defs") || !strcmp(k, "definitions")) {
            const char *name;
            json_object_foreach(v, name, item)
            {
                json_object_set_new(v, name, closed_schema(item));
            }
        } else if (!strcmp(k, "items")) {
            json_object_set_new(out, k, closed_schema(v));
        } else if (!strcmp(k, "anyOf") || !strcmp(k, "allOf")) {
            json_array_foreach(v, i, item)
            {
                json_array_set_new(v, i, closed_schema(item));
            }
        }
    }
    return out;
}

/* response_format json_schema -> output_config.format (checked). */
static void emit_format(const mr_conv_req_t *conv, json_t *root)
{
    const mr_conv_format_t *f = &conv->format;

    if (f->kind != MR_CONV_FORMAT_JSON_SCHEMA || !json_is_object(f->schema))
        return;
    json_object_set_new(root, "output_config",
                        json_pack("{s:{s:s, s:o}}", "format", "type", "json_schema", "schema",
                                  closed_schema(f->schema)));
}

/* ------------------------------------------------------------ the body */

static void emit_sampling(const mr_conv_req_t *conv, int thinking, json_t *root)
{
    /* OpenAI's range is 0..2, Anthropic's 0..1 */
    if (!thinking && conv->temperature.state == MR_CONV_SET) {
        double d = conv->temperature.v;
        json_object_set_new(root, "temperature", json_real(d < 0 ? 0 : d > 1 ? 1 : d));
    }
    if (!thinking && conv->top_p.state == MR_CONV_SET)
        json_object_set_new(root, "top_p", json_real(conv->top_p.v));
    if (conv->n_stop) {
        json_t *stop = json_array();
        for (size_t i = 0; stop && i < conv->n_stop; i++)
            json_array_append_new(stop, mr__xlate_str(conv->stop[i]));
        json_object_set_new(root, "stop_sequences", stop);
    }
}

int mr__anthropic_emit(mr_xlate_emit_t *e, const mr_conv_req_t *conv, json_t **out, mr_error_t *err)
{
    json_t *root = json_object();
    int thinking;

    if (!root || json_object_set_new(root, "model", json_string(e->in->model)) < 0 ||
        emit_messages(e, conv, root) < 0)
        goto oom;
    if ((thinking = emit_thinking(e, conv, root, err)) < 0) {
        json_decref(root);
        return -1;
    }
    emit_sampling(conv, thinking, root);
    if (e->in->stream)
        json_object_set_new(root, "stream", json_true());
    if (emit_tools(conv, root) < 0)
        goto oom;
    emit_format(conv, root);
    if (conv->user.p)
        json_object_set_new(root, "metadata",
                            json_pack("{s:o}", "user_id", mr__xlate_str(conv->user)));
    *out = root;
    return 0;
oom:
    json_decref(root);
    return mr__xlate_oom(err);
}
