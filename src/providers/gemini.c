/*
 * The Google Gemini dialect (Generative Language API, v1beta):
 *   chat        POST {base_url}/models/{model}:generateContent
 *   stream      POST {base_url}/models/{model}:streamGenerateContent?alt=sse
 *   embeddings  POST {base_url}/models/{model}:embedContent (one input)
 *               POST {base_url}/models/{model}:batchEmbedContents (an array)
 * The key goes in x-goog-api-key. Chat requests are emitted from the
 * conversation model by gemini_request.c; answers and streams are parsed
 * by gemini_answer.c, embeddings are gemini_embed.c's. Every parameter's
 * fate is listed in docs/providers.md.
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
    .reasoning = 1,
    .schema_keywords = mr__gemini_schema_keywords,
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

/* Members of the model Gemini has no field for. */
static const char *const ignored[] = {"top_logprobs",        "metadata",         "user",
                                      "parallel_tool_calls", "prompt_cache_key", NULL};

/* ... and what it leaves out besides (recorded; hints whose absence
 * changes no answer's shape are no reason to skip it). */
static const char *const leaves_out[] = {
    "top_logprobs", "metadata",      "user", "parallel_tool_calls", "prompt_cache_key", "top_k",
    "thinking",     "cache_control", NULL};

static const char *gemini_unsupported(const mr_conv_req_t *conv)
{
    return mr__xlate_unsupported(&caps, conv, ignored);
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
        if (mr__xlate_body(&caps, mr__gemini_emit, leaves_out, in, out, err) < 0)
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
    .unsupported = gemini_unsupported,
    .passthrough = 0,
    .uses_conv = 1,
};
