/*
 * The Google Gemini dialect (Generative Language API, v1beta):
 *   chat        POST {base_url}/models/{model}:generateContent
 *   stream      POST {base_url}/models/{model}:streamGenerateContent?alt=sse
 *   embeddings  POST {base_url}/models/{model}:embedContent (one input)
 *               POST {base_url}/models/{model}:batchEmbedContents (an array)
 * The key goes in x-goog-api-key. Requests are rebuilt from the client's
 * parsed body (roles user/model, systemInstruction, generationConfig,
 * functionDeclarations, functionCall/functionResponse parts); answers and
 * streams are translated back into OpenAI's shapes. Every parameter's fate
 * is listed in docs/providers.md.
 */
#include "meridian/adapter.h"
#include "meridian/health.h"
#include "meridian/sse.h"
#include "xlate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* n (candidateCount) is capped so stream state stays a small fixed array. */
#define GEMINI_MAX_CANDIDATES 8
#define GEMINI_MAX_TOKENS_LIMIT 1000000

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
        return mr__xlate_bad(
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

static int add_inline(json_t *parts, const char *mime, const char *data, mr_error_t *err)
{
    if (json_array_append_new(
            parts, json_pack("{s:{s:s, s:s}}", "inlineData", "mimeType", mime, "data", data)) < 0)
        return mr__xlate_oom(err);
    return 0;
}

/* User content (string or parts) -> Gemini parts. */
static int user_parts(const json_t *content, const char *where, json_t *parts, mr_error_t *err)
{
    size_t k;
    const json_t *part;
    char mime[64];
    const char *data;

    if (!content || json_is_null(content))
        return 0;
    if (json_is_string(content)) {
        if (json_string_length(content) &&
            json_array_append_new(parts, json_pack("{s:O}", "text", content)) < 0)
            return mr__xlate_oom(err);
        return 0;
    }
    if (!json_is_array(content))
        return mr__xlate_bad(err, "invalid_type", "messages",
                             "%s.content must be a string or an array of parts", where);
    json_array_foreach(content, k, part)
    {
        const char *type = json_string_value(json_object_get(part, "type"));
        if (!type)
            return mr__xlate_bad(err, "invalid_type", "messages", "%s.content[%zu].type is missing",
                                 where, k);
        if (strcmp(type, "text") == 0) {
            const json_t *t = json_object_get(part, "text");
            if (!json_is_string(t))
                return mr__xlate_bad(err, "invalid_type", "messages",
                                     "%s.content[%zu].text must be a string", where, k);
            if (json_string_length(t) &&
                json_array_append_new(parts, json_pack("{s:O}", "text", t)) < 0)
                return mr__xlate_oom(err);
        } else if (strcmp(type, "image_url") == 0) {
            const json_t *iu = json_object_get(part, "image_url");
            const char *url = json_is_string(iu) ? json_string_value(iu)
                                                 : json_string_value(json_object_get(iu, "url"));
            if (!url || mr__xlate_data_url(url, mime, sizeof(mime), &data) < 0)
                return mr__xlate_bad(err, "unsupported_content", "messages",
                                     "%s.content[%zu]: gemini targets take images only as data: "
                                     "(base64) URLs",
                                     where, k);
            if (add_inline(parts, mime, data, err) < 0)
                return -1;
        } else if (strcmp(type, "input_audio") == 0) {
            const json_t *a = json_object_get(part, "input_audio");
            const char *d = json_string_value(json_object_get(a, "data"));
            const char *fmt = json_string_value(json_object_get(a, "format"));
            if (!d || !fmt || strlen(fmt) > 16 || strchr(fmt, '/'))
                return mr__xlate_bad(err, "invalid_type", "messages",
                                     "%s.content[%zu].input_audio needs data and format", where, k);
            snprintf(mime, sizeof(mime), "audio/%s", fmt);
            if (add_inline(parts, mime, d, err) < 0)
                return -1;
        } else if (strcmp(type, "file") == 0) {
            const char *fd =
                json_string_value(json_object_get(json_object_get(part, "file"), "file_data"));
            if (!fd || mr__xlate_data_url(fd, mime, sizeof(mime), &data) < 0)
                return mr__xlate_bad(err, "unsupported_content", "messages",
                                     "%s.content[%zu]: gemini targets take files only inline as "
                                     "file_data (data:...;base64,...)",
                                     where, k);
            if (add_inline(parts, mime, data, err) < 0)
                return -1;
        } else {
            return mr__xlate_bad(err, "unsupported_content", "messages",
                                 "%s.content[%zu]: %s parts cannot be sent to gemini", where, k,
                                 type);
        }
    }
    return 0;
}

/* Assistant tool_calls -> functionCall parts. */
static int call_parts(const json_t *calls, const char *where, json_t *parts, mr_error_t *err)
{
    size_t k;
    const json_t *c;

    if (!calls || json_is_null(calls))
        return 0;
    if (!json_is_array(calls))
        return mr__xlate_bad(err, "invalid_type", "messages", "%s.tool_calls must be an array",
                             where);
    json_array_foreach(calls, k, c)
    {
        const json_t *fn = json_object_get(c, "function");
        const json_t *name = json_object_get(fn, "name");
        const json_t *args = json_object_get(fn, "arguments");
        json_t *input;

        if (!json_is_string(name))
            return mr__xlate_bad(err, "invalid_type", "messages",
                                 "%s.tool_calls[%zu] must be a function call with a name", where,
                                 k);
        if (!args || json_is_null(args) || json_string_length(args) == 0)
            input = json_object();
        else if (json_is_string(args))
            input = json_loadb(json_string_value(args), json_string_length(args), 0, NULL);
        else
            input = NULL;
        if (!json_is_object(input)) {
            json_decref(input);
            return mr__xlate_bad(err, "invalid_value", "messages",
                                 "%s.tool_calls[%zu].function.arguments must be a JSON object "
                                 "text",
                                 where, k);
        }
        if (json_array_append_new(parts, json_pack("{s:{s:O, s:o}}", "functionCall", "name", name,
                                                   "args", input)) < 0)
            return mr__xlate_oom(err);
    }
    return 0;
}

/* A role:tool message -> a functionResponse part. The function's name is
 * not in the message: it comes from the assistant turn that made the call. */
static int response_part(const json_t *m, const json_t *names, const char *where, json_t *parts,
                         mr_error_t *err)
{
    const char *id = json_string_value(json_object_get(m, "tool_call_id"));
    const json_t *name = id ? json_object_get(names, id) : NULL;
    json_t *text, *resp;

    if (!id)
        return mr__xlate_bad(err, "invalid_type", "messages", "%s.tool_call_id is missing", where);
    if (!name)
        return mr__xlate_bad(err, "invalid_value", "messages",
                             "%s.tool_call_id \"%.100s\" matches no earlier assistant tool call",
                             where, id);
    if (mr__xlate_content_text(json_object_get(m, "content"), where, &text, err) < 0)
        return -1;
    /* a JSON object result is passed as is, anything else as {"content": text} */
    resp = json_loadb(json_string_value(text), json_string_length(text), 0, NULL);
    if (!json_is_object(resp)) {
        json_decref(resp);
        resp = json_pack("{s:O}", "content", text);
    }
    json_decref(text);
    if (json_array_append_new(parts, json_pack("{s:{s:O, s:o}}", "functionResponse", "name", name,
                                               "response", resp)) < 0)
        return mr__xlate_oom(err);
    return 0;
}

/* Appends parts as a `role` turn, merged into the previous one when it has
 * the same role. Takes the reference to parts. */
static int push_turn(json_t *contents, const char *role, json_t *parts)
{
    json_t *last = json_array_get(contents, json_array_size(contents) - 1);
    int rc;

    if (json_array_size(parts) == 0) {
        json_decref(parts);
        return 0;
    }
    if (last && strcmp(json_string_value(json_object_get(last, "role")), role) == 0) {
        rc = json_array_extend(json_object_get(last, "parts"), parts);
        json_decref(parts);
        return rc;
    }
    return json_array_append_new(contents, json_pack("{s:s, s:o}", "role", role, "parts", parts));
}

static int convert_messages(const json_t *messages, json_t *root, mr_error_t *err)
{
    json_t *contents = json_array(), *names = json_object();
    mr_buf_t system;
    size_t i, k;
    const json_t *m, *c;
    int rc = -1;

    mr_buf_init(&system, (size_t)-1);
    if (!contents || !names)
        goto oom;
    /* tool_call_id -> function name, from every assistant turn */
    json_array_foreach(messages, i, m)
    {
        json_array_foreach(json_object_get(m, "tool_calls"), k, c)
        {
            const char *id = json_string_value(json_object_get(c, "id"));
            const json_t *name = json_object_get(json_object_get(c, "function"), "name");
            if (id && json_is_string(name))
                json_object_set(names, id, (json_t *)name);
        }
    }
    json_array_foreach(messages, i, m)
    {
        char where[40];
        const char *role = json_string_value(json_object_get(m, "role"));
        const json_t *content = json_object_get(m, "content");
        json_t *parts;

        snprintf(where, sizeof(where), "messages[%zu]", i);
        if (!json_is_object(m) || !role) {
            mr__xlate_bad(err, "invalid_type", "messages", "%s must be an object with a role",
                          where);
            goto done;
        }
        if (strcmp(role, "system") == 0 || strcmp(role, "developer") == 0) {
            json_t *t;
            if (mr__xlate_content_text(content, where, &t, err) < 0)
                goto done;
            if (json_string_length(t) &&
                ((mr_buf_len(&system) && mr_buf_append(&system, "\n\n", 2) < 0) ||
                 mr_buf_append(&system, json_string_value(t), json_string_length(t)) < 0)) {
                json_decref(t);
                goto oom;
            }
            json_decref(t);
            continue;
        }
        if (!(parts = json_array()))
            goto oom;
        if (strcmp(role, "user") == 0) {
            if (user_parts(content, where, parts, err) < 0)
                goto fail_parts;
        } else if (strcmp(role, "assistant") == 0) {
            role = "model";
            if (content && !json_is_null(content)) {
                json_t *t;
                if (mr__xlate_content_text(content, where, &t, err) < 0)
                    goto fail_parts;
                if (json_string_length(t))
                    json_array_append_new(parts, json_pack("{s:o}", "text", t));
                else
                    json_decref(t);
            }
            if (call_parts(json_object_get(m, "tool_calls"), where, parts, err) < 0)
                goto fail_parts;
        } else if (strcmp(role, "tool") == 0) {
            /* the API documents only user and model roles: results are user parts */
            role = "user";
            if (response_part(m, names, where, parts, err) < 0)
                goto fail_parts;
        } else {
            mr__xlate_bad(err, "unsupported_content", "messages",
                          "%s: role \"%s\" cannot be sent to gemini", where, role);
            goto fail_parts;
        }
        if (push_turn(contents, role, parts) < 0)
            goto oom;
        continue;
    fail_parts:
        json_decref(parts);
        goto done;
    }
    json_object_set(root, "contents", contents);
    if (mr_buf_len(&system))
        json_object_set_new(
            root, "systemInstruction",
            json_pack("{s:[{s:s%}]}", "parts", "text", mr_buf_ptr(&system), mr_buf_len(&system)));
    rc = 0;
    goto done;
oom:
    mr__xlate_oom(err);
done:
    json_decref(contents);
    json_decref(names);
    mr_buf_free(&system);
    return rc;
}

static int convert_tools(const json_t *body, json_t *root, mr_error_t *err)
{
    const json_t *tools = json_object_get(body, "tools");
    const json_t *choice = json_object_get(body, "tool_choice");
    json_t *decls, *fcc = NULL;
    size_t i;
    const json_t *t;

    if (!tools || json_is_null(tools))
        return 0;
    if (!json_is_array(tools))
        return mr__xlate_bad(err, "invalid_type", "tools", "tools must be an array");
    if (json_array_size(tools) == 0)
        return 0;
    if (!(decls = json_array()))
        return mr__xlate_oom(err);
    json_array_foreach(tools, i, t)
    {
        const char *type = json_string_value(json_object_get(t, "type"));
        const json_t *fn = json_object_get(t, "function");
        const json_t *name = json_object_get(fn, "name");
        const json_t *desc = json_object_get(fn, "description");
        const json_t *params = json_object_get(fn, "parameters");
        json_t *d;

        if (!type || strcmp(type, "function") != 0 || !json_is_string(name)) {
            json_decref(decls);
            return mr__xlate_bad(err, "unsupported_parameter", "tools",
                                 "tools[%zu]: only function tools with a name can be sent to "
                                 "gemini",
                                 i);
        }
        d = json_pack("{s:O}", "name", name);
        if (d && json_is_string(desc))
            json_object_set(d, "description", (json_t *)desc);
        /* an empty object schema is refused: no parameters means none */
        if (d && json_is_object(params) &&
            json_object_size(json_object_get(params, "properties")) > 0)
            json_object_set_new(d, "parameters", schema_copy(params));
        if (json_array_append_new(decls, d) < 0) {
            json_decref(decls);
            return mr__xlate_oom(err);
        }
    }
    json_object_set_new(root, "tools", json_pack("[{s:o}]", "functionDeclarations", decls));

    if (json_is_string(choice)) {
        const char *c = json_string_value(choice);
        if (strcmp(c, "auto") == 0)
            fcc = json_pack("{s:s}", "mode", "AUTO");
        else if (strcmp(c, "none") == 0)
            fcc = json_pack("{s:s}", "mode", "NONE");
        else if (strcmp(c, "required") == 0)
            fcc = json_pack("{s:s}", "mode", "ANY");
        else
            return mr__xlate_bad(err, "invalid_value", "tool_choice",
                                 "tool_choice must be auto, none, required or a function");
    } else if (json_is_object(choice)) {
        const json_t *name = json_object_get(json_object_get(choice, "function"), "name");
        if (!json_is_string(name))
            return mr__xlate_bad(err, "unsupported_parameter", "tool_choice",
                                 "tool_choice must name a function");
        fcc = json_pack("{s:s, s:[O]}", "mode", "ANY", "allowedFunctionNames", name);
    } else if (choice && !json_is_null(choice)) {
        return mr__xlate_bad(err, "invalid_type", "tool_choice",
                             "tool_choice must be a string or an object");
    }
    if (fcc)
        json_object_set_new(root, "toolConfig", json_pack("{s:o}", "functionCallingConfig", fcc));
    return 0;
}

static int generation_config(const json_t *body, json_t *root, mr_error_t *err)
{
    json_t *gc = json_object(), *stop = NULL;
    const json_t *rf = json_object_get(body, "response_format");
    const char *rft = json_string_value(json_object_get(rf, "type"));
    long long v;
    double d;
    int rc;

    if (!gc)
        return mr__xlate_oom(err);
    if ((rc = mr__xlate_get_number(body, "temperature", &d, err)) < 0)
        goto fail;
    if (rc)
        json_object_set_new(gc, "temperature", json_real(d));
    if ((rc = mr__xlate_get_number(body, "top_p", &d, err)) < 0)
        goto fail;
    if (rc)
        json_object_set_new(gc, "topP", json_real(d));
    rc = mr__xlate_get_int(body, "max_completion_tokens", 1, GEMINI_MAX_TOKENS_LIMIT, &v, err);
    if (rc == 0)
        rc = mr__xlate_get_int(body, "max_tokens", 1, GEMINI_MAX_TOKENS_LIMIT, &v, err);
    if (rc < 0)
        goto fail;
    if (rc)
        json_object_set_new(gc, "maxOutputTokens", json_integer(v));
    if ((rc = mr__xlate_get_stop(body, &stop, err)) < 0)
        goto fail;
    if (rc)
        json_object_set_new(gc, "stopSequences", stop);
    if ((rc = mr__xlate_get_int(body, "n", 1, GEMINI_MAX_CANDIDATES, &v, err)) < 0)
        goto fail;
    if (rc && v != 1)
        json_object_set_new(gc, "candidateCount", json_integer(v));
    if ((rc = mr__xlate_get_number(body, "presence_penalty", &d, err)) < 0)
        goto fail;
    if (rc)
        json_object_set_new(gc, "presencePenalty", json_real(d));
    if ((rc = mr__xlate_get_number(body, "frequency_penalty", &d, err)) < 0)
        goto fail;
    if (rc)
        json_object_set_new(gc, "frequencyPenalty", json_real(d));
    if ((rc = mr__xlate_get_int(body, "seed", -2147483648LL, 2147483647LL, &v, err)) < 0)
        goto fail;
    if (rc)
        json_object_set_new(gc, "seed", json_integer(v));
    if (rft && strcmp(rft, "json_object") == 0) {
        json_object_set_new(gc, "responseMimeType", json_string("application/json"));
    } else if (rft && strcmp(rft, "json_schema") == 0) {
        const json_t *schema = json_object_get(json_object_get(rf, "json_schema"), "schema");
        json_object_set_new(gc, "responseMimeType", json_string("application/json"));
        if (json_is_object(schema))
            json_object_set_new(gc, "responseSchema", schema_copy(schema));
    } else if (rft && strcmp(rft, "text") != 0) {
        mr__xlate_bad(err, "unsupported_parameter", "response_format",
                      "response_format %s is not supported by gemini targets", rft);
        goto fail;
    }
    if (json_object_size(gc))
        json_object_set(root, "generationConfig", gc);
    json_decref(gc);
    return 0;
fail:
    json_decref(gc);
    return -1;
}

static int check_unsupported(const json_t *body, mr_error_t *err)
{
    const json_t *mod = json_object_get(body, "modalities");
    size_t i;
    const json_t *v;

    if (json_is_true(json_object_get(body, "logprobs")))
        return mr__xlate_bad(err, "unsupported_parameter", "logprobs",
                             "logprobs are not supported by gemini targets");
    if (json_object_get(body, "audio") && !json_is_null(json_object_get(body, "audio")))
        return mr__xlate_bad(err, "unsupported_parameter", "audio",
                             "audio output is not supported by gemini targets");
    json_array_foreach(mod, i, v)
    {
        if (!json_is_string(v) || strcmp(json_string_value(v), "text") != 0)
            return mr__xlate_bad(err, "unsupported_parameter", "modalities",
                                 "only the text modality is supported by gemini targets");
    }
    if (json_object_get(body, "functions") || json_object_get(body, "function_call"))
        return mr__xlate_bad(err, "unsupported_parameter", "functions",
                             "functions/function_call are deprecated: use tools/tool_choice");
    return 0;
}

static int chat_body(const mr_adapter_in_t *in, json_t **out, mr_error_t *err)
{
    const json_t *body = in->json;
    const json_t *messages = json_object_get(body, "messages");
    json_t *root;

    *out = NULL;
    if (!json_is_array(messages))
        return mr__xlate_bad(err, "invalid_type", "messages", "messages must be an array");
    if (check_unsupported(body, err) < 0)
        return -1;
    if (!(root = json_object()))
        return mr__xlate_oom(err);
    if (convert_messages(messages, root, err) < 0 || generation_config(body, root, err) < 0 ||
        convert_tools(body, root, err) < 0) {
        json_decref(root);
        return -1;
    }
    *out = root;
    return 0;
}

static int embed_body(const mr_adapter_in_t *in, json_t **out, const char **method, mr_error_t *err)
{
    const json_t *input = json_object_get(in->json, "input");
    json_t *root = NULL, *reqs;
    long long dims = 0;
    char model[1100];
    size_t i;
    const json_t *s;
    int has_dims;

    *out = NULL;
    if ((has_dims = mr__xlate_get_int(in->json, "dimensions", 1, 65536, &dims, err)) < 0)
        return -1;
    if (json_is_string(input)) {
        *method = "embedContent";
        root = json_pack("{s:{s:[{s:O}]}}", "content", "parts", "text", input);
        if (root && has_dims)
            json_object_set_new(root, "outputDimensionality", json_integer(dims));
        *out = root;
        return root ? 0 : mr__xlate_oom(err);
    }
    if (!json_is_array(input) || json_array_size(input) == 0)
        return mr__xlate_bad(err, "invalid_type", "input",
                             "input must be a string or a non-empty array of strings");
    snprintf(model, sizeof(model), "%s%s", strncmp(in->model, "models/", 7) ? "models/" : "",
             in->model);
    *method = "batchEmbedContents";
    if (!(reqs = json_array()))
        return mr__xlate_oom(err);
    json_array_foreach(input, i, s)
    {
        json_t *r;
        if (!json_is_string(s)) {
            json_decref(reqs);
            return mr__xlate_bad(err, "unsupported_parameter", "input",
                                 "gemini targets embed text only: input[%zu] is not a string", i);
        }
        r = json_pack("{s:s, s:{s:[{s:O}]}}", "model", model, "content", "parts", "text", s);
        if (r && has_dims)
            json_object_set_new(r, "outputDimensionality", json_integer(dims));
        if (json_array_append_new(reqs, r) < 0) {
            json_decref(reqs);
            return mr__xlate_oom(err);
        }
    }
    *out = json_pack("{s:o}", "requests", reqs);
    return *out ? 0 : mr__xlate_oom(err);
}

static int gemini_build(const mr_adapter_in_t *in, mr_adapter_req_t *out, mr_error_t *err)
{
    const mr_provider_t *p = in->provider;
    const char *method;
    json_t *root;
    struct curl_slist *h;
    int rc;

    memset(out, 0, sizeof(*out));
    if (!json_is_object(in->json))
        return mr__xlate_bad(err, "invalid_type", NULL, "the body must be a JSON object");
    if (in->endpoint == MR_EP_CHAT) {
        method = in->stream ? "streamGenerateContent?alt=sse" : "generateContent";
        rc = chat_body(in, &root, err);
    } else if (in->endpoint == MR_EP_EMBEDDINGS) {
        rc = embed_body(in, &root, &method, err);
    } else {
        return mr__xlate_bad(err, "unsupported_endpoint", NULL,
                             "provider %s (gemini) serves /v1/chat/completions and "
                             "/v1/embeddings, not /v1%s",
                             p->name, mr_endpoint_path(in->endpoint));
    }
    if (rc < 0)
        return -1;
    out->body = json_dumps(root, MR_XLATE_DUMP_FLAGS);
    json_decref(root);
    if (!out->body)
        goto oom;
    out->body_len = strlen(out->body);
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

static const char *finish_reason(const char *r)
{
    static const char *const filtered[] = {
        "SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY"};
    if (!r)
        return NULL;
    if (strcmp(r, "MAX_TOKENS") == 0)
        return "length";
    for (size_t i = 0; i < sizeof(filtered) / sizeof(filtered[0]); i++)
        if (strcmp(r, filtered[i]) == 0)
            return "content_filter";
    return "stop"; /* STOP, MALFORMED_FUNCTION_CALL, LANGUAGE, OTHER ... */
}

static long usage_int(const json_t *u, const char *key)
{
    const json_t *v = json_object_get(u, key);
    return json_is_integer(v) && json_integer_value(v) >= 0 ? (long)json_integer_value(v) : -1;
}

typedef struct usage4 {
    long prompt, completion, cached, reasoning;
} usage4_t;

/* OpenAI's completion_tokens include reasoning; Gemini counts thoughts apart. */
static void read_usage(const json_t *u, usage4_t *o)
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

/* The chat id and the stem of made-up tool call ids: the response id when
 * Gemini sends one, else a hash of the first bytes we got. */
static void make_ids(const json_t *root, const char *raw, size_t len, char *id, size_t idcap,
                     char *stem, size_t stemcap)
{
    const json_t *rid = json_object_get(root, "responseId");

    if (json_is_string(rid))
        mr__xlate_safe_id(json_string_value(rid), json_string_length(rid), "", stem, stemcap);
    else
        snprintf(stem, stemcap, "%016llx", (unsigned long long)mr__fnv64(MR_FNV64_INIT, raw, len));
    snprintf(id, idcap, "chatcmpl-%s", stem);
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

static void model_name(const json_t *root, const char *fallback, char *dst, size_t cap)
{
    mr__xlate_model(json_object_get(root, "modelVersion"), fallback, dst, cap);
}

/* One candidate -> one OpenAI choice. */
static json_t *choice_of(const json_t *cand, long index, const char *stem)
{
    const json_t *parts = json_object_get(json_object_get(cand, "content"), "parts");
    json_t *calls = json_array(), *msg, *ch;
    mr_buf_t text;
    size_t k;
    const json_t *part;
    int has_text = 0;
    const char *fin = finish_reason(json_string_value(json_object_get(cand, "finishReason")));

    mr_buf_init(&text, (size_t)-1);
    json_array_foreach(parts, k, part)
    {
        const json_t *t = json_object_get(part, "text");
        const json_t *fc = json_object_get(part, "functionCall");
        if (json_is_true(json_object_get(part, "thought")))
            continue;
        if (json_is_string(t)) {
            has_text = 1;
            mr_buf_append(&text, json_string_value(t), json_string_length(t));
        } else if (json_is_object(fc) && json_is_string(json_object_get(fc, "name"))) {
            const json_t *args = json_object_get(fc, "args");
            char *a = json_is_object(args) ? json_dumps(args, MR_XLATE_DUMP_FLAGS) : strdup("{}");
            char id[MR_XLATE_ID_MAX + 32];
            call_id(stem, index, (long)json_array_size(calls), json_object_get(fc, "id"), id,
                    sizeof(id));
            json_array_append_new(calls, json_pack("{s:s, s:s, s:{s:O, s:s}}", "id", id, "type",
                                                   "function", "function", "name",
                                                   json_object_get(fc, "name"), "arguments",
                                                   a ? a : "{}"));
            free(a);
        }
    }
    msg = json_pack("{s:s, s:o}", "role", "assistant", "content",
                    has_text || json_array_size(calls) == 0
                        ? json_stringn(mr_buf_ptr(&text), mr_buf_len(&text))
                        : json_null());
    mr_buf_free(&text);
    if (msg && json_array_size(calls))
        json_object_set(msg, "tool_calls", calls);
    if (msg)
        json_object_set_new(msg, "refusal", json_null());
    if (json_array_size(calls) && (!fin || strcmp(fin, "stop") == 0))
        fin = "tool_calls";
    json_decref(calls);
    ch = json_pack("{s:I, s:o, s:n, s:s}", "index", (json_int_t)index, "message", msg, "logprobs",
                   "finish_reason", fin ? fin : "stop");
    return ch;
}

static int base64_floats(const json_t *values, json_t **out)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = json_array_size(values), nb = n * 4, o = 0;
    unsigned char *raw = malloc(nb ? nb : 1);
    char *enc = malloc(4 * ((nb + 2) / 3) + 1);
    size_t i;
    const json_t *v;

    if (!raw || !enc) {
        free(raw);
        free(enc);
        return -1;
    }
    json_array_foreach(values, i, v)
    {
        float f = (float)json_number_value(v);
        unsigned char b[4];
        memcpy(b, &f, 4);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        raw[i * 4] = b[3], raw[i * 4 + 1] = b[2], raw[i * 4 + 2] = b[1], raw[i * 4 + 3] = b[0];
#else
        memcpy(raw + i * 4, b, 4);
#endif
    }
    for (i = 0; i + 2 < nb; i += 3) {
        unsigned x = (unsigned)raw[i] << 16 | (unsigned)raw[i + 1] << 8 | raw[i + 2];
        enc[o++] = b64[x >> 18], enc[o++] = b64[(x >> 12) & 63], enc[o++] = b64[(x >> 6) & 63],
        enc[o++] = b64[x & 63];
    }
    if (nb - i == 1) {
        unsigned x = (unsigned)raw[i] << 16;
        enc[o++] = b64[x >> 18], enc[o++] = b64[(x >> 12) & 63], enc[o++] = '=', enc[o++] = '=';
    } else if (nb - i == 2) {
        unsigned x = (unsigned)raw[i] << 16 | (unsigned)raw[i + 1] << 8;
        enc[o++] = b64[x >> 18], enc[o++] = b64[(x >> 12) & 63], enc[o++] = b64[(x >> 6) & 63],
        enc[o++] = '=';
    }
    enc[o] = '\0';
    *out = json_string(enc);
    free(raw);
    free(enc);
    return *out ? 0 : -1;
}

static int translate_embeddings(const mr_adapter_in_t *in, const json_t *root, mr_buf_t *out,
                                mr_usage_t *usage, mr_error_t *err)
{
    const json_t *one = json_object_get(root, "embedding");
    const json_t *many = json_object_get(root, "embeddings");
    const char *fmt = json_string_value(json_object_get(in->json, "encoding_format"));
    int b64 = fmt && strcmp(fmt, "base64") == 0;
    json_t *data = json_array(), *res;
    size_t n = json_is_array(many) ? json_array_size(many) : 1;
    long prompt = usage_int(json_object_get(root, "usageMetadata"), "promptTokenCount");

    if (!data)
        return mr__xlate_oom(err);
    if (!json_is_object(one) && !json_is_array(many))
        goto malformed;
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_is_array(many) ? json_array_get(many, i) : one;
        const json_t *values = json_object_get(e, "values");
        size_t k;
        const json_t *v;
        json_t *emb;
        if (!json_is_array(values))
            goto malformed;
        json_array_foreach(values, k, v)
        {
            if (!json_is_number(v))
                goto malformed;
        }
        if (b64) {
            if (base64_floats(values, &emb) < 0) {
                json_decref(data);
                return mr__xlate_oom(err);
            }
        } else {
            emb = json_deep_copy(values);
        }
        json_array_append_new(data, json_pack("{s:s, s:I, s:o}", "object", "embedding", "index",
                                              (json_int_t)i, "embedding", emb));
    }
    usage->prompt_tokens = prompt;
    usage->completion_tokens = 0;
    res = json_pack("{s:s, s:o, s:s, s:{s:I, s:I}}", "object", "list", "data", data, "model",
                    in->model, "usage", "prompt_tokens", (json_int_t)(prompt > 0 ? prompt : 0),
                    "total_tokens", (json_int_t)(prompt > 0 ? prompt : 0));
    if (!res)
        return mr__xlate_oom(err);
    if (!out) {
        json_decref(res);
        return 0;
    }
    if (mr__xlate_append_json(out, res) < 0) {
        mr_error_set(err, 502, "api_error", "upstream_too_large", NULL,
                     "provider %s: translated answer too large", in->provider->name);
        return -1;
    }
    return 0;
malformed:
    json_decref(data);
    mr_error_set(err, 502, "api_error", "upstream_malformed", NULL,
                 "provider %s: the answer is not a Gemini embedding response", in->provider->name);
    return -1;
}

static int gemini_translate(const mr_adapter_in_t *in, const char *body, size_t len, mr_buf_t *out,
                            mr_usage_t *usage, mr_error_t *err)
{
    json_t *root = json_loadb(body, len, JSON_ALLOW_NUL, NULL), *choices = NULL, *res;
    const json_t *cands = json_object_get(root, "candidates");
    usage4_t u = {-1, -1, -1, -1};
    char id[MR_XLATE_ID_MAX + 32], stem[MR_XLATE_ID_MAX + 16], model[MR_XLATE_ID_MAX + 16];
    size_t i;
    const json_t *c;
    int rc = -1;

    usage->prompt_tokens = usage->completion_tokens = -1;
    if (!json_is_object(root))
        goto malformed;
    if (in->endpoint == MR_EP_EMBEDDINGS) {
        rc = translate_embeddings(in, root, out, usage, err);
        json_decref(root);
        return rc;
    }
    if (cands && !json_is_array(cands))
        goto malformed;
    make_ids(root, body, len, id, sizeof(id), stem, sizeof(stem));
    model_name(root, in->model, model, sizeof(model));
    if (!(choices = json_array()))
        goto oom;
    json_array_foreach(cands, i, c)
    {
        const json_t *ix = json_object_get(c, "index");
        long index = json_is_integer(ix) && json_integer_value(ix) >= 0 &&
                             json_integer_value(ix) < GEMINI_MAX_CANDIDATES
                         ? (long)json_integer_value(ix)
                         : (long)i;
        if (!json_is_object(c))
            goto malformed;
        if (json_array_append_new(choices, choice_of(c, index, stem)) < 0)
            goto oom;
    }
    if (json_array_size(choices) == 0) {
        /* the prompt itself was blocked (promptFeedback.blockReason) */
        if (!json_object_get(json_object_get(root, "promptFeedback"), "blockReason"))
            goto malformed;
        json_array_append_new(choices,
                              json_pack("{s:i, s:{s:s, s:s, s:n}, s:n, s:s}", "index", 0, "message",
                                        "role", "assistant", "content", "", "refusal", "logprobs",
                                        "finish_reason", "content_filter"));
    }
    read_usage(json_object_get(root, "usageMetadata"), &u);
    usage->prompt_tokens = u.prompt;
    usage->completion_tokens = u.completion;
    res =
        json_pack("{s:s, s:s, s:I, s:s, s:O, s:o}", "id", id, "object", "chat.completion",
                  "created", (json_int_t)mr__xlate_created(in), "model", model, "choices", choices,
                  "usage", mr__xlate_usage(u.prompt, u.completion, u.cached, u.reasoning));
    if (!res)
        goto oom;
    if (!out) {
        json_decref(res);
    } else if (mr__xlate_append_json(out, res) < 0) {
        mr_error_set(err, 502, "api_error", "upstream_too_large", NULL,
                     "provider %s: translated answer too large", in->provider->name);
        goto done;
    }
    rc = 0;
    goto done;
malformed:
    mr_error_set(err, 502, "api_error", "upstream_malformed", NULL,
                 "provider %s: the answer is not a Gemini GenerateContentResponse",
                 in->provider->name);
    goto done;
oom:
    mr__xlate_oom(err);
done:
    json_decref(choices);
    json_decref(root);
    return rc;
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
    const char *finish;
} cand_state_t;

struct mr_stream_xlate {
    mr_sse_t sse;
    mr_buf_t *out; /* during a feed */
    const char *provider;
    const char *fallback_model;
    long long created;
    int wants_usage;
    int seen, blocked, failed, done;
    char id[MR_XLATE_ID_MAX + 32];
    char stem[MR_XLATE_ID_MAX + 16];
    char model[MR_XLATE_ID_MAX + 16];
    cand_state_t cand[GEMINI_MAX_CANDIDATES];
    int n_cand;
    usage4_t usage;
};

enum { EV_MALFORMED = 1, EV_UPSTREAM_ERROR = 2, EV_EMPTY = 3 };

static mr_stream_xlate_t *gemini_stream_new(const mr_adapter_in_t *in)
{
    mr_stream_xlate_t *x = calloc(1, sizeof(*x));

    if (!x)
        return NULL;
    mr_sse_init(&x->sse, MR_XLATE_LINE_MAX, MR_XLATE_EVENT_MAX);
    x->provider = in->provider ? in->provider->name : "gemini";
    x->fallback_model = in->model ? in->model : "";
    x->created = mr__xlate_created(in);
    x->wants_usage = in->client_wants_usage;
    x->usage = (usage4_t){-1, -1, -1, -1};
    return x;
}

static int emit_delta(mr_stream_xlate_t *x, long index, json_t *delta, const char *finish)
{
    json_t *c = mr__xlate_chunk(x->id, x->created, x->model);
    if (!c || !delta) {
        json_decref(c);
        json_decref(delta);
        return -1;
    }
    json_object_set_new(c, "choices",
                        json_pack("[o]", mr__xlate_choice_delta((int)index, delta, finish)));
    return mr__xlate_emit(x->out, c);
}

static cand_state_t *cand_get(mr_stream_xlate_t *x, long index, int *rc)
{
    for (int i = 0; i < x->n_cand; i++)
        if (x->cand[i].index == index)
            return &x->cand[i];
    if (x->n_cand == GEMINI_MAX_CANDIDATES) {
        *rc = EV_MALFORMED;
        return NULL;
    }
    x->cand[x->n_cand] = (cand_state_t){.index = index};
    *rc = emit_delta(x, index, json_pack("{s:s, s:s}", "role", "assistant", "content", ""), NULL);
    return *rc ? NULL : &x->cand[x->n_cand++];
}

static int on_candidate(mr_stream_xlate_t *x, const json_t *c, size_t pos)
{
    const json_t *ix = json_object_get(c, "index");
    const json_t *parts = json_object_get(json_object_get(c, "content"), "parts");
    const json_t *fr = json_object_get(c, "finishReason");
    long index = json_is_integer(ix) && json_integer_value(ix) >= 0 &&
                         json_integer_value(ix) < GEMINI_MAX_CANDIDATES
                     ? (long)json_integer_value(ix)
                     : (long)pos;
    cand_state_t *cs;
    size_t k;
    const json_t *part;
    int rc = 0;

    if (!json_is_object(c))
        return EV_MALFORMED;
    if (!(cs = cand_get(x, index, &rc)))
        return rc;
    json_array_foreach(parts, k, part)
    {
        const json_t *t = json_object_get(part, "text");
        const json_t *fc = json_object_get(part, "functionCall");
        if (json_is_true(json_object_get(part, "thought")))
            continue;
        if (json_is_string(t) && json_string_length(t) > 0) {
            rc = emit_delta(x, index, json_pack("{s:O}", "content", t), NULL);
        } else if (json_is_object(fc) && json_is_string(json_object_get(fc, "name"))) {
            /* Gemini sends a call whole: one delta with all its arguments */
            const json_t *args = json_object_get(fc, "args");
            char *a = json_is_object(args) ? json_dumps(args, MR_XLATE_DUMP_FLAGS) : strdup("{}");
            char id[MR_XLATE_ID_MAX + 32];
            if (!a)
                return -1;
            call_id(x->stem, index, cs->n_tools, json_object_get(fc, "id"), id, sizeof(id));
            rc = emit_delta(x, index,
                            json_pack("{s:[{s:i, s:s, s:s, s:{s:O, s:s}}]}", "tool_calls", "index",
                                      cs->n_tools, "id", id, "type", "function", "function", "name",
                                      json_object_get(fc, "name"), "arguments", a),
                            NULL);
            free(a);
            cs->n_tools++;
        }
        if (rc)
            return rc;
    }
    if (json_is_string(fr))
        cs->finish = finish_reason(json_string_value(fr));
    return 0;
}

static int on_event(void *ctx, const char *event, const char *data, size_t len)
{
    mr_stream_xlate_t *x = ctx;
    json_t *ev = json_loadb(data, len, JSON_ALLOW_NUL, NULL);
    const json_t *cands = json_object_get(ev, "candidates"), *e = json_object_get(ev, "error");
    size_t i;
    const json_t *c;
    int rc = 0;

    (void)event;
    if (!json_is_object(ev) || (cands && !json_is_array(cands))) {
        json_decref(ev);
        return EV_MALFORMED;
    }
    if (e) {
        const char *word = json_string_value(json_object_get(e, "status"));
        const char *msg = json_string_value(json_object_get(e, "message"));
        char code[64];
        lower_code(word ? word : "upstream_error", code, sizeof(code));
        mr__xlate_emit_error(x->out, mr__xlate_error_type(word, 502), code, "%s",
                             msg ? msg : "upstream reported an error mid-stream");
        json_decref(ev);
        return EV_UPSTREAM_ERROR;
    }
    if (!x->seen) {
        x->seen = 1;
        make_ids(ev, data, len, x->id, sizeof(x->id), x->stem, sizeof(x->stem));
        model_name(ev, x->fallback_model, x->model, sizeof(x->model));
    }
    json_array_foreach(cands, i, c)
    {
        if ((rc = on_candidate(x, c, i)) != 0)
            break;
    }
    if (json_object_get(json_object_get(ev, "promptFeedback"), "blockReason"))
        x->blocked = 1;
    read_usage(json_object_get(ev, "usageMetadata"), &x->usage);
    json_decref(ev);
    return rc;
}

static int fail(mr_stream_xlate_t *x, int rc, mr_buf_t *out)
{
    x->failed = 1;
    if (rc == EV_UPSTREAM_ERROR)
        return -1;
    if (rc == MR_SSE_TOO_LONG)
        mr__xlate_emit_error(out, "api_error", "upstream_stream_error",
                             "provider %s sent an event larger than %d bytes", x->provider,
                             MR_XLATE_EVENT_MAX);
    else if (rc == EV_MALFORMED)
        mr__xlate_emit_error(out, "api_error", "upstream_stream_error",
                             "provider %s sent a malformed Gemini event stream", x->provider);
    else if (rc == EV_EMPTY)
        mr__xlate_emit_error(out, "api_error", "upstream_stream_error",
                             "provider %s ended the stream without an answer", x->provider);
    else
        mr__xlate_emit_error(out, "api_error", "upstream_stream_error",
                             "provider %s: out of memory translating the stream", x->provider);
    return -1;
}

static int gemini_stream_feed(mr_stream_xlate_t *x, const char *p, size_t n, mr_buf_t *out)
{
    int rc;

    if (x->failed || x->done)
        return x->failed ? -1 : 0;
    x->out = out;
    rc = mr_sse_feed(&x->sse, p, n, on_event, x);
    x->out = NULL;
    return rc ? fail(x, rc, out) : 0;
}

/* Gemini has no end-of-message event: the finish chunks, the usage chunk
 * and [DONE] are written when the upstream closes the stream. */
static int finish(mr_stream_xlate_t *x)
{
    int rc;

    if (!x->seen)
        return EV_EMPTY;
    if (x->n_cand == 0) {
        cand_state_t *cs = cand_get(x, 0, &rc);
        if (!cs)
            return rc;
        cs->finish = x->blocked ? "content_filter" : "stop";
    }
    for (int i = 0; i < x->n_cand; i++) {
        const char *f = x->cand[i].finish ? x->cand[i].finish : "stop";
        if (x->cand[i].n_tools && strcmp(f, "stop") == 0)
            f = "tool_calls";
        if (emit_delta(x, x->cand[i].index, json_object(), f) < 0)
            return -1;
    }
    if (x->wants_usage) {
        json_t *c = mr__xlate_chunk(x->id, x->created, x->model);
        if (!c)
            return -1;
        json_object_set_new(c, "choices", json_array());
        json_object_set_new(c, "usage",
                            mr__xlate_usage(x->usage.prompt, x->usage.completion, x->usage.cached,
                                            x->usage.reasoning));
        if (mr__xlate_emit(x->out, c) < 0)
            return -1;
    }
    x->done = 1;
    return mr__xlate_emit_done(x->out);
}

static int gemini_stream_end(mr_stream_xlate_t *x, mr_buf_t *out)
{
    int rc;

    if (x->failed)
        return -1;
    if (x->done)
        return 0;
    x->out = out;
    rc = mr_sse_finish(&x->sse, on_event, x);
    if (rc == 0)
        rc = finish(x);
    x->out = NULL;
    return rc ? fail(x, rc, out) : 0;
}

static void gemini_stream_usage(const mr_stream_xlate_t *x, mr_usage_t *usage)
{
    usage->prompt_tokens = x->usage.prompt;
    usage->completion_tokens = x->usage.completion;
}

static void gemini_stream_free(mr_stream_xlate_t *x)
{
    if (!x)
        return;
    mr_sse_free(&x->sse);
    free(x);
}

const mr_adapter_t mr_adapter_gemini = {
    .name = "gemini",
    .build = gemini_build,
    .translate = gemini_translate,
    .stream_new = gemini_stream_new,
    .stream_feed = gemini_stream_feed,
    .stream_end = gemini_stream_end,
    .stream_usage = gemini_stream_usage,
    .stream_free = gemini_stream_free,
    .retryable = gemini_retryable,
    .translate_error = gemini_translate_error,
    .passthrough = 0,
};
