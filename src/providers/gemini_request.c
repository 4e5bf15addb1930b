/*
 * The Gemini dialect, request half (gemini.h): the GenerateContentRequest of
 * a checked conversation: roles user/model, systemInstruction,
 * generationConfig (with thinkingConfig and structured outputs),
 * functionDeclarations, functionCall/functionResponse parts, cachedContent.
 *
 * Reasoning Gemini made for this model goes back where it was: thought
 * parts with their signatures, a text part's signature on that text, a
 * function call's on the call; foreign signatures are left out and counted.
 * Every parameter's fate is listed in docs/providers.md.
 */
#include "gemini.h"
#include "xlate.h"

#include <stdlib.h>
#include <string.h>

/* JSON Schema keywords Gemini's OpenAPI-subset schemas reject. */
static int schema_key_dropped(const char *k)
{
    static const char *const drop[] = {"$schema", "$id", "$comment", "additionalProperties",
                                       "strict"};
    for (size_t i = 0; i < sizeof(drop) / sizeof(drop[0]); i++)
        if (strcmp(k, drop[i]) == 0)
            return 1;
    return 0;
}

/* A copy of a JSON Schema without the keywords `dropped` names, wherever a
 * schema may appear (property names themselves are kept). Depth is bounded
 * by the parser (2048). */
static json_t *schema_copy(const json_t *s, int (*dropped)(const char *k))
{
    json_t *out;
    const char *k;
    json_t *v;

    if (json_is_array(s)) {
        size_t i;
        out = json_array();
        json_array_foreach(s, i, v)
        {
            json_array_append_new(out, schema_copy(v, dropped));
        }
        return out;
    }
    if (!json_is_object(s))
        return json_deep_copy(s);
    out = json_object();
    json_object_foreach((json_t *)s, k, v)
    {
        if (dropped(k))
            continue;
        if ((strcmp(k, "properties") == 0 || strcmp(k, "$defs") == 0 ||
             strcmp(k, "definitions") == 0) &&
            json_is_object(v)) {
            json_t *props = json_object();
            const char *pk;
            json_t *pv;
            json_object_foreach(v, pk, pv)
            {
                json_object_set_new(props, pk, schema_copy(pv, dropped));
            }
            json_object_set_new(out, k, props);
        } else if (json_is_object(v) || json_is_array(v)) {
            json_object_set_new(out, k, schema_copy(v, dropped));
        } else {
            json_object_set(out, k, v);
        }
    }
    return out;
}

/* User parts (checked: text, base64 images, audio and files) -> Gemini parts. */
static int user_parts(mr_xlate_emit_t *e, const mr_conv_turn_t *t, json_t *out)
{
    (void)e;
    for (size_t k = 0; k < t->n_parts; k++) {
        const mr_conv_part_t *p = &t->parts[k];
        json_t *g = NULL;
        if (p->kind == MR_CONV_TEXT && p->u.text.n)
            g = json_pack("{s:o}", "text", mr__xlate_str(p->u.text));
        else if (p->kind == MR_CONV_IMAGE || p->kind == MR_CONV_AUDIO || p->kind == MR_CONV_FILE)
            g = json_pack("{s:{s:s, s:s}}", "inlineData", "mimeType", p->u.media.media_type.p,
                          "data", p->u.media.data.p);
        else
            continue;
        if (json_array_append_new(out, g) < 0)
            return -1;
    }
    return 0;
}

/* Gemini 3 refuses a model turn whose first function call has no thought
 * signature (parallel calls after it carry none); when the one it came with
 * cannot be sent (another model made the call), Google documents this value
 * to skip the check. Older models (and other model names) get none. */
#define GEMINI_SKIP_SIGNATURE "skip_thought_signature_validator"

static int needs_call_signatures(const char *model)
{
    const char *g = strstr(model, "gemini-");
    return g && strtol(g + 7, NULL, 10) >= 3;
}

/* Consecutive text parts joined into one part, carrying `sig` (a signature
 * that came with the text); returns the index after the run. */
static size_t text_run(const mr_conv_turn_t *t, size_t k, mr_conv_str_t *sig, json_t *out, int *rc)
{
    mr_buf_t text;

    mr_buf_init(&text, (size_t)-1);
    for (; k < t->n_parts && *rc == 0; k++) {
        const mr_conv_part_t *p = &t->parts[k];
        if (p->kind != MR_CONV_TEXT && p->kind != MR_CONV_REFUSAL)
            break;
        *rc = mr_buf_append(&text, p->u.text.p, p->u.text.n);
    }
    if (*rc == 0 && (mr_buf_len(&text) || sig->p)) {
        json_t *g = json_pack("{s:s%}", "text", mr_buf_ptr(&text), mr_buf_len(&text));
        if (g && sig->p)
            json_object_set_new(g, "thoughtSignature", mr__xlate_str(*sig));
        *sig = (mr_conv_str_t){NULL, 0};
        *rc = json_array_append_new(out, g);
    }
    mr_buf_free(&text);
    return k;
}

/* A reasoning part made by Gemini for this model: a thought goes back as it
 * came (when signed: unsigned thoughts need not be sent), a text part's
 * signature waits for the text it belongs to (*sig). */
static int thought_part(mr_xlate_emit_t *e, const mr_conv_reasoning_t *r, mr_conv_str_t *sig,
                        json_t *out)
{
    if ((!r->signature.p && !r->data.p) || !mr__xlate_origin_ok(e, &r->origin))
        return 0;
    if (r->data.p) {
        *sig = r->data;
        return 0;
    }
    return json_array_append_new(out, json_pack("{s:o, s:b, s:o}", "text", mr__xlate_str(r->text),
                                                "thought", 1, "thoughtSignature",
                                                mr__xlate_str(r->signature)));
}

static int call_part(mr_xlate_emit_t *e, const mr_conv_tool_call_t *c, int first,
                     mr_conv_str_t *sig, json_t *out)
{
    json_t *g = json_pack("{s:{s:o, s:O}}", "functionCall", "name", mr__xlate_str(c->name), "args",
                          c->args_json);

    if (c->signature.p && mr__xlate_origin_ok(e, &c->origin))
        json_object_set_new(g, "thoughtSignature", mr__xlate_str(c->signature));
    else if (sig->p) /* a signature whose text never came */
        json_object_set_new(g, "thoughtSignature", mr__xlate_str(*sig));
    else if (first && needs_call_signatures(e->in->model))
        json_object_set_new(g, "thoughtSignature", json_string(GEMINI_SKIP_SIGNATURE));
    *sig = (mr_conv_str_t){NULL, 0};
    return json_array_append_new(out, g);
}

/* Thoughts, text and functionCall parts in the order of the turn's parts,
 * each with the thought signature it came with. */
static int model_parts(mr_xlate_emit_t *e, const mr_conv_turn_t *t, json_t *out)
{
    mr_conv_str_t sig = {NULL, 0};
    size_t k = 0;
    int rc = 0, calls = 0;

    while (rc == 0 && k < t->n_parts) {
        const mr_conv_part_t *p = &t->parts[k];
        if (p->kind == MR_CONV_TEXT || p->kind == MR_CONV_REFUSAL) {
            k = text_run(t, k, &sig, out, &rc);
            continue;
        }
        if (p->kind == MR_CONV_REASONING)
            rc = thought_part(e, &p->u.reasoning, &sig, out);
        else if (p->kind == MR_CONV_TOOL_CALL)
            rc = call_part(e, &p->u.call, calls++ == 0, &sig, out);
        k++;
    }
    if (rc == 0 && sig.p) /* a trailing signature: on an empty text part */
        rc = json_array_append_new(
            out, json_pack("{s:s, s:o}", "text", "", "thoughtSignature", mr__xlate_str(sig)));
    return rc;
}

/* A tool result -> a functionResponse part named after the call it answers:
 * a JSON object result is passed as is, anything else as {"content": text}. */
static int response_part(mr_xlate_emit_t *e, const mr_conv_turn_t *t, json_t *out)
{
    const mr_conv_tool_result_t *res = &t->parts[0].u.result;
    mr_buf_t text;
    json_t *resp = NULL;

    (void)e;
    mr_buf_init(&text, (size_t)-1);
    if (mr_conv_join_text(res->content, res->n_content, &text) == 0) {
        resp = json_loadb(mr_buf_ptr(&text), mr_buf_len(&text), 0, NULL);
        if (!json_is_object(resp)) {
            json_decref(resp);
            resp = json_pack("{s:s%}", "content", mr_buf_ptr(&text), mr_buf_len(&text));
        }
    }
    mr_buf_free(&text);
    return json_array_append_new(out, json_pack("{s:{s:o, s:o}}", "functionResponse", "name",
                                                mr__xlate_str(res->name), "response", resp));
}

static int emit_contents(mr_xlate_emit_t *e, const mr_conv_req_t *conv, json_t *root)
{
    /* the API documents only user and model roles: results are user parts */
    static const mr_xlate_turns_t turns = {"model", "parts", user_parts, model_parts,
                                           response_part};
    mr_buf_t system;
    json_t *contents;
    int rc = -1;

    mr_buf_init(&system, (size_t)-1);
    if ((contents = mr__xlate_turns(e, conv, &turns)) &&
        mr__xlate_system_text(conv, &system) == 0) {
        json_object_set_new(root, "contents", contents);
        contents = NULL;
        if (mr_buf_len(&system))
            json_object_set_new(root, "systemInstruction",
                                json_pack("{s:[{s:s%}]}", "parts", "text", mr_buf_ptr(&system),
                                          mr_buf_len(&system)));
        rc = 0;
    }
    json_decref(contents);
    mr_buf_free(&system);
    return rc;
}

static json_t *calling_config(const mr_conv_tool_choice_t *c)
{
    switch (c->mode) {
    case MR_CONV_CHOICE_AUTO:
        return json_pack("{s:s}", "mode", "AUTO");
    case MR_CONV_CHOICE_NONE:
        return json_pack("{s:s}", "mode", "NONE");
    case MR_CONV_CHOICE_REQUIRED:
        return json_pack("{s:s}", "mode", "ANY");
    case MR_CONV_CHOICE_FUNCTION:
        return json_pack("{s:s, s:[o]}", "mode", "ANY", "allowedFunctionNames",
                         mr__xlate_str(c->name));
    default:
        return NULL;
    }
}

/* The tool's parameters cleaned; none when it declares no properties (an
 * empty object schema is refused). */
static json_t *parameters(const json_t *p)
{
    if (!json_is_object(p) || json_object_size(json_object_get(p, "properties")) == 0)
        return NULL;
    return schema_copy(p, schema_key_dropped);
}

static int emit_tools(const mr_conv_req_t *conv, json_t *root)
{
    json_t *decls, *fcc;

    if (conv->n_tools == 0)
        return 0;
    if (!(decls = mr__xlate_tools(conv, "parameters", parameters)))
        return -1;
    json_object_set_new(root, "tools", json_pack("[{s:o}]", "functionDeclarations", decls));
    if ((fcc = calling_config(&conv->tool_choice)))
        json_object_set_new(root, "toolConfig", json_pack("{s:o}", "functionCallingConfig", fcc));
    return 0;
}

static void set_number(json_t *gc, const char *key, const mr_conv_num_t *v)
{
    if (v->state == MR_CONV_SET)
        json_object_set_new(gc, key, v->integer ? json_integer((json_int_t)v->v) : json_real(v->v));
}

/* reasoning_effort -> thinkingBudget (Google's own mapping for its
 * OpenAI-compatible API; docs/providers.md). */
static long effort_budget(mr_conv_effort_t e)
{
    switch (e) {
    case MR_CONV_EFFORT_NONE:
        return 0;
    case MR_CONV_EFFORT_MINIMAL:
        return 512;
    case MR_CONV_EFFORT_LOW:
        return 1024;
    case MR_CONV_EFFORT_MEDIUM:
        return 8192;
    case MR_CONV_EFFORT_HIGH:
        return 24576;
    default:
        return -1;
    }
}

/* Gemini's own thinking_config as its REST API spells it (camelCase). */
static json_t *native_thinking(const json_t *tc)
{
    static const char *const names[][2] = {{"thinking_budget", "thinkingBudget"},
                                           {"include_thoughts", "includeThoughts"},
                                           {"thinking_level", "thinkingLevel"}};
    json_t *out = json_object(), *v;
    const char *k;

    json_object_foreach((json_t *)tc, k, v)
    {
        const char *name = k;
        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
            if (!strcmp(k, names[i][0]))
                name = names[i][1];
        json_object_set(out, name, v);
    }
    return out;
}

/* thinkingConfig: the client's own wins; else a budget from
 * reasoning.max_tokens or reasoning_effort, with the thoughts returned. */
static void thinking_config(const mr_conv_reasoning_req_t *r, json_t *gc)
{
    long budget = r->budget >= 0 ? r->budget : effort_budget(r->effort);

    if (r->gemini)
        json_object_set_new(gc, "thinkingConfig", native_thinking(r->gemini));
    else if (budget >= 0)
        json_object_set_new(gc, "thinkingConfig",
                            json_pack("{s:I, s:b}", "thinkingBudget", (json_int_t)budget,
                                      "includeThoughts", budget > 0));
}

/* What responseJsonSchema takes (Gemini's structured outputs), plus the
 * annotations that constrain nothing: those are removed from the copy. */
const char *const mr__gemini_schema_keywords[] = {"$id",
                                                  "$defs",
                                                  "$ref",
                                                  "$anchor",
                                                  "type",
                                                  "format",
                                                  "title",
                                                  "description",
                                                  "enum",
                                                  "items",
                                                  "prefixItems",
                                                  "minItems",
                                                  "maxItems",
                                                  "minimum",
                                                  "maximum",
                                                  "anyOf",
                                                  "oneOf",
                                                  "properties",
                                                  "additionalProperties",
                                                  "required",
                                                  "propertyOrdering",
                                                  "nullable",
                                                  "$schema",
                                                  "$comment",
                                                  "examples",
                                                  "default",
                                                  "deprecated",
                                                  NULL};

/* The annotations responseJsonSchema is sent without: they constrain
 * nothing. */
static int annotation(const char *k)
{
    return !strcmp(k, "$schema") || !strcmp(k, "$comment") || !strcmp(k, "examples") ||
           !strcmp(k, "default") || !strcmp(k, "deprecated");
}

static int generation_config(const mr_conv_req_t *conv, json_t *root)
{
    json_t *gc = json_object();
    const mr_conv_format_t *f = &conv->format;

    if (!gc)
        return -1;
    set_number(gc, "temperature", &conv->temperature);
    set_number(gc, "topP", &conv->top_p);
    set_number(gc, "maxOutputTokens", &conv->max_output);
    if (conv->n_stop) {
        json_t *stop = json_array();
        for (size_t i = 0; stop && i < conv->n_stop; i++)
            json_array_append_new(stop, mr__xlate_str(conv->stop[i]));
        json_object_set_new(gc, "stopSequences", stop);
    }
    if (conv->n.state == MR_CONV_SET && conv->n.v != 1)
        set_number(gc, "candidateCount", &conv->n);
    set_number(gc, "presencePenalty", &conv->presence_penalty);
    set_number(gc, "frequencyPenalty", &conv->frequency_penalty);
    set_number(gc, "seed", &conv->seed);
    if (f->kind == MR_CONV_FORMAT_JSON_OBJECT || f->kind == MR_CONV_FORMAT_JSON_SCHEMA)
        json_object_set_new(gc, "responseMimeType", json_string("application/json"));
    if (f->kind == MR_CONV_FORMAT_JSON_SCHEMA && json_is_object(f->schema))
        json_object_set_new(gc, "responseJsonSchema", schema_copy(f->schema, annotation));
    thinking_config(&conv->reasoning, gc);
    if (json_object_size(gc))
        json_object_set(root, "generationConfig", gc);
    json_decref(gc);
    return 0;
}

int mr__gemini_emit(mr_xlate_emit_t *e, const mr_conv_req_t *conv, json_t **out, mr_error_t *err)
{
    json_t *root = json_object();

    if (!root || emit_contents(e, conv, root) < 0 || generation_config(conv, root) < 0 ||
        emit_tools(conv, root) < 0) {
        json_decref(root);
        return mr__xlate_oom(err);
    }
    if (conv->cached_content.p)
        json_object_set_new(root, "cachedContent", mr__xlate_str(conv->cached_content));
    *out = root;
    return 0;
}
