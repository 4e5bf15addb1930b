/*
 * The Google Gemini dialect (Generative Language API, v1beta):
 *   chat        POST {base_url}/models/{model}:generateContent
 *   stream      POST {base_url}/models/{model}:streamGenerateContent?alt=sse
 *   embeddings  POST {base_url}/models/{model}:embedContent (one input)
 *               POST {base_url}/models/{model}:batchEmbedContents (an array)
 * The key goes in x-goog-api-key. Chat requests are emitted from the
 * conversation model (conv.h: roles user/model, systemInstruction,
 * generationConfig, functionDeclarations, functionCall/functionResponse
 * parts); answers and streams are parsed by gemini_answer.c, embeddings
 * are gemini_embed.c's. Every parameter's fate is listed in
 * docs/providers.md.
 */
#include "meridian/adapter.h"
#include "meridian/health.h"
#include "gemini.h"
#include "xlate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    /* the API documents only user and model roles: results are user parts */
    static const mr_xlate_turns_t turns = {"model", "parts", user_parts, model_parts,
                                           response_part};
    mr_buf_t system;
    json_t *contents;

    mr_buf_init(&system, (size_t)-1);
    if ((contents = mr__xlate_turns(conv, &turns, &system))) {
        json_object_set_new(root, "contents", contents);
        if (mr_buf_len(&system))
            json_object_set_new(root, "systemInstruction",
                                json_pack("{s:[{s:s%}]}", "parts", "text", mr_buf_ptr(&system),
                                          mr_buf_len(&system)));
    }
    mr_buf_free(&system);
    return contents ? 0 : -1;
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
    return schema_copy(p);
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
        if (mr__xlate_body(&caps, gemini_emit, in, &out->body, &out->body_len, err) < 0)
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

static int gemini_translate(const mr_adapter_in_t *in, const char *body, size_t len, mr_buf_t *out,
                            mr_usage_t *usage, mr_error_t *err)
{
    if (in->endpoint == MR_EP_EMBEDDINGS)
        return mr__gemini_embeddings(in, body, len, out, usage, err);
    return mr__xlate_translate(&mr__gemini_parser, in, body, len, out, usage, err);
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
    mr__xlate_lower(word ? word : "upstream_error", code, sizeof(code));
    mr__xlate_error_body(out, msg, mr__xlate_error_type(word, status), code);
    json_decref(root);
}

static mr_stream_xlate_t *gemini_stream_new(const mr_adapter_in_t *in)
{
    return mr__xlate_stream_new(&mr__gemini_parser, in);
}

const mr_adapter_t mr_adapter_gemini = {
    .name = "gemini",
    .build = gemini_build,
    .translate = gemini_translate,
    .stream_new = gemini_stream_new,
    .stream_feed = mr__xlate_stream_feed,
    .stream_end = mr__xlate_stream_end,
    .stream_usage = mr__xlate_stream_usage,
    .stream_content = mr__xlate_stream_content,
    .stream_free = mr__xlate_stream_free,
    .retryable = gemini_retryable,
    .translate_error = gemini_translate_error,
    .passthrough = 0,
    .uses_conv = 1,
};
