/*
 * The Google Gemini dialect (Generative Language API, v1beta):
 *   chat        POST {base_url}/models/{model}:generateContent
 *   stream      POST {base_url}/models/{model}:streamGenerateContent?alt=sse
 *   embeddings  POST {base_url}/models/{model}:embedContent (one input)
 *               POST {base_url}/models/{model}:batchEmbedContents (an array)
 * The key goes in x-goog-api-key. Chat requests are emitted from the
 * conversation model (conv.h: roles user/model, systemInstruction,
 * generationConfig, functionDeclarations, functionCall/functionResponse
 * parts); answers and streams are parsed into the model's answer and events
 * (thought parts included), which the chat writer turns into OpenAI's
 * shapes. Embeddings are gemini_embed.c's. Every parameter's fate is listed
 * in docs/providers.md.
 */
#include "meridian/adapter.h"
#include "meridian/health.h"
#include "gemini.h"
#include "xlate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* n (candidateCount) is capped so stream state stays a small fixed array. */
#define GEMINI_MAX_CANDIDATES 8
#define GEMINI_MAX_TOKENS_LIMIT 1000000

static const mr_conv_caps_t caps = {
    .name = "gemini",
    .n_max = GEMINI_MAX_CANDIDATES,
    .choices_max = GEMINI_MAX_CANDIDATES,
    .max_output_limit = GEMINI_MAX_TOKENS_LIMIT,
    .audio_in = 1,
    .json_object = 1,
    .json_schema = 1,
    .penalties = 1,
    .seed = 1,
    .result_by_name = 1,
};

/* ------------------------------------------------------------ requests */

static int gemini_url(const mr_adapter_in_t *in, const char *method, char **url, mr_error_t *err)
{
    char path[1024];
    const char *m = in->model;

    if (strncmp(m, "models/", 7) == 0 || strncmp(m, "tunedModels/", 12) == 0)
        path[0] = '\0';
    else
        memcpy(path, "models/", 8);
    if (!*m || mr__xlate_path_escape(m, 1, path + strlen(path), sizeof(path) - strlen(path)) < 0)
        return mr_error_bad(
            err, "invalid_value", "model",
            "model name too long for a gemini URL, or a \".\" or \"..\" path segment");
    *url = mr__xlate_url(in->provider->base_url, "/%s:%s", path, method);
    return *url ? 0 : mr__xlate_oom(err);
}

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

/* A copy of an OpenAI (JSON Schema) parameters object that Gemini accepts:
 * unsupported keywords are removed wherever a schema may appear (property
 * names themselves are kept). Depth is bounded by the parser (2048). */
static json_t *schema_copy(const json_t *s)
{
    json_t *out;
    const char *k;
    json_t *v;

    if (json_is_array(s)) {
        size_t i;
        out = json_array();
        json_array_foreach(s, i, v) json_array_append_new(out, schema_copy(v));
        return out;
    }
    if (!json_is_object(s))
        return json_deep_copy(s);
    out = json_object();
    json_object_foreach((json_t *)s, k, v)
    {
        if (schema_key_dropped(k))
            continue;
        if ((strcmp(k, "properties") == 0 || strcmp(k, "$defs") == 0 ||
             strcmp(k, "definitions") == 0) &&
            json_is_object(v)) {
            json_t *props = json_object();
            const char *pk;
            json_t *pv;
            json_object_foreach(v, pk, pv) json_object_set_new(props, pk, schema_copy(pv));
            json_object_set_new(out, k, props);
        } else if (json_is_object(v) || json_is_array(v)) {
            json_object_set_new(out, k, schema_copy(v));
        } else {
            json_object_set(out, k, v);
        }
    }
    return out;
}

/* User parts (checked: text, base64 images, audio and files) -> Gemini parts. */
static int user_parts(const mr_conv_part_t *parts, size_t n, json_t *out)
{
    for (size_t k = 0; k < n; k++) {
        const mr_conv_part_t *p = &parts[k];
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

/* Assistant text (joined into one part), then functionCall parts. */
static int model_parts(const mr_conv_turn_t *t, json_t *out)
{
    mr_buf_t text;
    int rc;

    mr_buf_init(&text, (size_t)-1);
    rc = mr_conv_join_text(t->parts, t->n_parts, &text);
    if (rc == 0 && mr_buf_len(&text))
        rc = json_array_append_new(
            out, json_pack("{s:s%}", "text", mr_buf_ptr(&text), mr_buf_len(&text)));
    mr_buf_free(&text);
    for (size_t k = 0; rc == 0 && k < t->n_parts; k++) {
        const mr_conv_tool_call_t *c = &t->parts[k].u.call;
        if (t->parts[k].kind == MR_CONV_TOOL_CALL)
            rc =
                json_array_append_new(out, json_pack("{s:{s:o, s:O}}", "functionCall", "name",
                                                     mr__xlate_str(c->name), "args", c->args_json));
    }
    return rc;
}

/* A tool result -> a functionResponse part named after the call it answers:
 * a JSON object result is passed as is, anything else as {"content": text}. */
static int response_part(const mr_conv_tool_result_t *res, json_t *out)
{
    mr_buf_t text;
    json_t *resp = NULL;

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

static int emit_contents(const mr_conv_req_t *conv, json_t *root)
{
    json_t *contents = json_array();
    mr_buf_t system;
    int rc = contents ? 0 : -1;

    mr_buf_init(&system, (size_t)-1);
    for (size_t i = 0; rc == 0 && i < conv->n_turns; i++) {
        const mr_conv_turn_t *t = &conv->turns[i];
        const char *role = "user";
        json_t *parts = json_array();
        if (!parts) {
            rc = -1;
            break;
        }
        if (t->role == MR_CONV_ROLE_USER) {
            rc = user_parts(t->parts, t->n_parts, parts);
        } else if (t->role == MR_CONV_ROLE_ASSISTANT) {
            role = "model";
            rc = model_parts(t, parts);
        } else if (t->role == MR_CONV_ROLE_TOOL) {
            /* the API documents only user and model roles: results are user parts */
            rc = response_part(&t->parts[0].u.result, parts);
        }
        if (rc == 0)
            rc = mr__xlate_push_turn(contents, role, "parts", parts);
        else
            json_decref(parts);
    }
    if (rc == 0)
        rc = mr__xlate_system_text(conv, &system);
    if (rc == 0) {
        json_object_set(root, "contents", contents);
        if (mr_buf_len(&system))
            json_object_set_new(root, "systemInstruction",
                                json_pack("{s:[{s:s%}]}", "parts", "text", mr_buf_ptr(&system),
                                          mr_buf_len(&system)));
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

static int emit_tools(const mr_conv_req_t *conv, json_t *root)
{
    json_t *decls, *fcc;

    if (conv->n_tools == 0)
        return 0;
    if (!(decls = json_array()))
        return -1;
    for (size_t i = 0; i < conv->n_tools; i++) {
        const mr_conv_tool_t *t = &conv->tools[i];
        json_t *d = json_pack("{s:o}", "name", mr__xlate_str(t->name));
        if (d && t->description.p)
            json_object_set_new(d, "description", mr__xlate_str(t->description));
        /* an empty object schema is refused: no parameters means none */
        if (d && json_is_object(t->parameters) &&
            json_object_size(json_object_get(t->parameters, "properties")) > 0)
            json_object_set_new(d, "parameters", schema_copy(t->parameters));
        if (json_array_append_new(decls, d) < 0) {
            json_decref(decls);
            return -1;
        }
    }
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
        json_object_set_new(gc, "responseSchema", schema_copy(f->schema));
    if (json_object_size(gc))
        json_object_set(root, "generationConfig", gc);
    json_decref(gc);
    return 0;
}

static int gemini_emit(const mr_adapter_in_t *in, const mr_conv_req_t *conv, json_t **out,
                       mr_error_t *err)
{
    json_t *root = json_object();

    (void)in;
    if (!root || emit_contents(conv, root) < 0 || generation_config(conv, root) < 0 ||
        emit_tools(conv, root) < 0) {
        json_decref(root);
        return mr__xlate_oom(err);
    }
    *out = root;
    return 0;
}

static const mr_xlate_dialect_t dialect;

static int gemini_build(const mr_adapter_in_t *in, mr_adapter_req_t *out, mr_error_t *err)
{
    const mr_provider_t *p = in->provider;
    const char *method;
    json_t *root;
    struct curl_slist *h;

    memset(out, 0, sizeof(*out));
    if (!json_is_object(in->json))
        return mr_error_bad(err, "invalid_type", NULL, "the body must be a JSON object");
    if (in->endpoint == MR_EP_CHAT) {
        method = in->stream ? "streamGenerateContent?alt=sse" : "generateContent";
        if (mr__xlate_body(&dialect, in, &out->body, &out->body_len, err) < 0)
            return -1;
    } else if (in->endpoint == MR_EP_EMBEDDINGS) {
        if (mr__gemini_embed_body(in, &root, &method, err) < 0)
            return -1;
        out->body = json_dumps(root, MR_CONV_JSON_FLAGS);
        json_decref(root);
        if (!out->body)
            goto oom;
        out->body_len = strlen(out->body);
    } else {
        return mr_error_bad(err, "unsupported_endpoint", NULL,
                            "provider %s (gemini) serves /v1/chat/completions and "
                            "/v1/embeddings, not /v1%s",
                            p->name, mr_endpoint_path(in->endpoint));
    }
    if (gemini_url(in, method, &out->url, err) < 0) {
        mr_adapter_req_free(out);
        return -1;
    }
    h = mr_adapter_headers(in, "x-goog-api-key", "");
    if (!h)
        goto oom;
    out->headers = h;
    return 0;
oom:
    mr_adapter_req_free(out);
    return mr__xlate_oom(err);
}

/* ------------------------------------------------------------ answers */

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

static long usage_int(const json_t *u, const char *key)
{
    const json_t *v = json_object_get(u, key);
    return json_is_integer(v) && json_integer_value(v) >= 0 ? (long)json_integer_value(v) : -1;
}

/* OpenAI's completion_tokens include reasoning; Gemini counts thoughts apart. */
static void read_usage(const json_t *u, mr_conv_usage_t *o)
{
    long cand = usage_int(u, "candidatesTokenCount"), th = usage_int(u, "thoughtsTokenCount");
    long tool = usage_int(u, "toolUsePromptTokenCount");

    if (!json_is_object(u))
        return;
    o->prompt = usage_int(u, "promptTokenCount");
    if (o->prompt >= 0 && tool > 0)
        o->prompt += tool;
    o->completion = cand >= 0 || th >= 0 ? (cand > 0 ? cand : 0) + (th > 0 ? th : 0) : -1;
    o->cached = usage_int(u, "cachedContentTokenCount");
    o->reasoning = th;
}

/* The stem of the chat id and of made-up tool call ids: the response id
 * when Gemini sends one, else a hash of the first bytes we got. */
static void make_stem(const json_t *root, const char *raw, size_t len, char *stem, size_t cap)
{
    const json_t *rid = json_object_get(root, "responseId");

    if (json_is_string(rid))
        mr__xlate_safe_id(json_string_value(rid), json_string_length(rid), "", stem, cap);
    else
        snprintf(stem, cap, "%016llx", (unsigned long long)mr__fnv64(MR_FNV64_INIT, raw, len));
}

static void call_id(const char *stem, long cand, long k, const json_t *given, char *dst, size_t cap)
{
    char key[MR_XLATE_ID_MAX + 64];

    if (json_is_string(given) && json_string_length(given) > 0) {
        mr__xlate_safe_id(json_string_value(given), json_string_length(given), "call_", dst, cap);
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

/* One Gemini part -> a model part; 0 when it carries nothing for the model. */
static int answer_part(mr_conv_arena_t *arena, const json_t *part, const char *stem, long index,
                       long n_calls, mr_conv_part_t *p)
{
    const json_t *t = json_object_get(part, "text"), *fc = json_object_get(part, "functionCall");
    mr_conv_str_t sig = mr_conv_str(json_object_get(part, "thoughtSignature"));
    char id[MR_XLATE_ID_MAX + 32], *a;

    if (json_is_true(json_object_get(part, "thought"))) {
        p->kind = MR_CONV_REASONING;
        p->u.reasoning.text = mr_conv_str(t);
        p->u.reasoning.signature = sig;
        p->u.reasoning.origin_kind = (mr_conv_str_t){"gemini", 6};
        return 1;
    }
    if (json_is_string(t)) {
        p->kind = MR_CONV_TEXT;
        p->u.text = mr_conv_str(t);
        return 1;
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
    free(a);
    return p->u.call.id.p && p->u.call.args.p ? 1 : -1;
}

/* One candidate -> one choice. */
static int choice_of(mr_conv_arena_t *arena, const json_t *cand, long index, const char *stem,
                     mr_conv_choice_t *ch)
{
    const json_t *parts = json_object_get(json_object_get(cand, "content"), "parts"), *part;
    long n_calls = 0;
    size_t k;

    ch->index = index;
    if (!(ch->parts = mr_conv_alloc(arena, json_array_size(parts) + 1, sizeof(*ch->parts))))
        return -1;
    json_array_foreach(parts, k, part)
    {
        mr_conv_part_t *p = &ch->parts[ch->n_parts];
        int rc = answer_part(arena, part, stem, index, n_calls, p);
        if (rc < 0)
            return -1;
        ch->n_parts += (size_t)rc;
        n_calls += rc && p->kind == MR_CONV_TOOL_CALL;
    }
    ch->finish = call_finish(
        finish_reason(json_string_value(json_object_get(cand, "finishReason"))), n_calls > 0);
    return 0;
}

static int gemini_parse_answer(const mr_adapter_in_t *in, const json_t *root, const char *raw,
                               size_t len, mr_conv_answer_t *a, mr_error_t *err)
{
    const json_t *cands = json_object_get(root, "candidates"), *c;
    char stem[MR_XLATE_ID_MAX + 16], model[MR_XLATE_ID_MAX + 16];
    size_t i;

    if (!json_is_object(root) || (cands && !json_is_array(cands)))
        goto malformed;
    make_stem(root, raw, len, stem, sizeof(stem));
    mr__xlate_model(json_object_get(root, "modelVersion"), in->model, model, sizeof(model));
    a->id = mr_conv_copy(a->_arena, stem, strlen(stem));
    a->model = mr_conv_copy(a->_arena, model, strlen(model));
    a->choices = mr_conv_alloc(a->_arena, json_array_size(cands) + 1, sizeof(*a->choices));
    if (!a->id.p || !a->model.p || !a->choices)
        return mr__xlate_oom(err);
    json_array_foreach(cands, i, c)
    {
        if (!json_is_object(c))
            goto malformed;
        if (choice_of(a->_arena, c, cand_index(c, i), stem, &a->choices[a->n_choices++]) < 0)
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

static int gemini_translate(const mr_adapter_in_t *in, const char *body, size_t len, mr_buf_t *out,
                            mr_usage_t *usage, mr_error_t *err)
{
    if (in->endpoint == MR_EP_EMBEDDINGS)
        return mr__gemini_embeddings(in, body, len, out, usage, err);
    return mr__xlate_translate(&dialect, in, body, len, out, usage, err);
}

/* ------------------------------------------------------------ errors */

/* Gemini errors are {"error":{code,message,status}}, sometimes in an array. */
static const json_t *error_of(const json_t *root)
{
    if (json_is_array(root))
        root = json_array_get(root, 0);
    return json_object_get(root, "error");
}

static int retryable_status_word(const char *s)
{
    return s && (strcmp(s, "RESOURCE_EXHAUSTED") == 0 || strcmp(s, "UNAVAILABLE") == 0 ||
                 strcmp(s, "INTERNAL") == 0 || strcmp(s, "DEADLINE_EXCEEDED") == 0);
}

static int gemini_retryable(long status, const char *body, size_t len)
{
    json_t *root;
    int r;

    if (mr_retryable_status(status)) /* 408, 409, 429, 5xx */
        return 1;
    root = json_loadb(body, len, 0, NULL);
    r = retryable_status_word(json_string_value(json_object_get(error_of(root), "status")));
    json_decref(root);
    return r;
}

/* "RESOURCE_EXHAUSTED" -> "resource_exhausted" */
static void lower_code(const char *s, char *dst, size_t cap)
{
    size_t i = 0;
    for (; s && s[i] && i + 1 < cap; i++)
        dst[i] = (s[i] >= 'A' && s[i] <= 'Z') ? (char)(s[i] + 32) : s[i];
    dst[i] = '\0';
}

static void gemini_translate_error(const mr_provider_t *p, long status, const char *body,
                                   size_t len, mr_buf_t *out)
{
    json_t *root = json_loadb(body, len, 0, NULL);
    const json_t *e = error_of(root);
    const char *msg = json_string_value(json_object_get(e, "message"));
    const char *word = json_string_value(json_object_get(e, "status"));
    char fallback[300], code[64];

    if (!msg) {
        mr__xlate_error_fallback(p, status, body, len, fallback, sizeof(fallback));
        msg = fallback;
        word = NULL;
    }
    lower_code(word ? word : "upstream_error", code, sizeof(code));
    mr__xlate_error_body(out, msg, mr__xlate_error_type(word, status), code);
    json_decref(root);
}

/* ------------------------------------------------------------ streams */

typedef struct cand_state {
    long index;
    int n_tools;
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

/* One part of a streamed candidate -> its event(s). */
static int on_part(stream_t *x, cand_state_t *cs, const json_t *part, const mr_conv_sink_t *sink)
{
    const json_t *t = json_object_get(part, "text"), *fc = json_object_get(part, "functionCall");
    const json_t *args = json_object_get(fc, "args");
    char id[MR_XLATE_ID_MAX + 32], *a;
    int rc;

    if (json_is_true(json_object_get(part, "thought")))
        return json_string_length(t)
                   ? mr__xlate_send(sink, (mr_conv_event_t){.kind = MR_CONV_EV_REASONING,
                                                            .choice = cs->index,
                                                            .text = mr_conv_str(t)})
                   : 0;
    if (json_is_string(t) && json_string_length(t) > 0)
        return mr__xlate_send(sink, (mr_conv_event_t){.kind = MR_CONV_EV_TEXT,
                                                      .choice = cs->index,
                                                      .text = mr_conv_str(t)});
    if (!json_is_object(fc) || !json_is_string(json_object_get(fc, "name")))
        return 0;
    /* Gemini sends a call whole: one start with all its arguments */
    if (!(a = json_is_object(args) ? json_dumps(args, MR_CONV_JSON_FLAGS) : strdup("{}")))
        return -1;
    call_id(x->stem, cs->index, cs->n_tools, json_object_get(fc, "id"), id, sizeof(id));
    rc = mr__xlate_send(sink, (mr_conv_event_t){.kind = MR_CONV_EV_TOOL_START,
                                                .choice = cs->index,
                                                .index = cs->n_tools++,
                                                .id = {id, strlen(id)},
                                                .name = mr_conv_str(json_object_get(fc, "name")),
                                                .text = {a, strlen(a)}});
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
    if (json_is_string(fr))
        cs->finish = finish_reason(json_string_value(fr));
    return 0;
}

static int on_error(const json_t *e, const mr_conv_sink_t *sink)
{
    const char *word = json_string_value(json_object_get(e, "status"));
    const char *msg = json_string_value(json_object_get(e, "message"));
    char code[64];

    lower_code(word ? word : "upstream_error", code, sizeof(code));
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
        mr__xlate_model(json_object_get(ev, "modelVersion"), x->fallback_model, x->model,
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

/* Gemini has no end-of-message event: the choices finish, and the answer
 * ends, when the upstream closes the stream. */
static int stream_end(void *st, const mr_conv_sink_t *sink)
{
    stream_t *x = st;
    int rc;

    if (!x->seen)
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

static const mr_xlate_dialect_t dialect = {
    .caps = &caps,
    .emit = gemini_emit,
    .parse_answer = gemini_parse_answer,
    .stream_size = sizeof(stream_t),
    .stream_init = stream_init,
    .stream_event = stream_event,
    .stream_end = stream_end,
    .malformed = "a malformed Gemini event stream",
    .truncated = "ended the stream without an answer",
};

static mr_stream_xlate_t *gemini_stream_new(const mr_adapter_in_t *in)
{
    return mr__xlate_stream_new(&dialect, in);
}

const mr_adapter_t mr_adapter_gemini = {
    .name = "gemini",
    .build = gemini_build,
    .translate = gemini_translate,
    .stream_new = gemini_stream_new,
    .stream_feed = mr__xlate_stream_feed,
    .stream_end = mr__xlate_stream_end,
    .stream_usage = mr__xlate_stream_usage,
    .stream_free = mr__xlate_stream_free,
    .retryable = gemini_retryable,
    .translate_error = gemini_translate_error,
    .passthrough = 0,
    .uses_conv = 1,
};
