/*
 * The Gemini dialect's embeddings (gemini.h): /v1/embeddings requests as
 * embedContent / batchEmbedContents bodies, and their answers as OpenAI's
 * embedding list.
 */
#include "gemini.h"
#include "xlate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int mr__gemini_embed_body(const mr_adapter_in_t *in, json_t **out, const char **method,
                          mr_error_t *err)
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
        return mr_error_bad(err, "invalid_type", "input",
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
            return mr_error_bad(err, "unsupported_parameter", "input",
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

static int translate(const mr_adapter_in_t *in, const json_t *root, mr_buf_t *out,
                     mr_usage_t *usage, mr_error_t *err)
{
    const json_t *one = json_object_get(root, "embedding");
    const json_t *many = json_object_get(root, "embeddings");
    const char *fmt = json_string_value(json_object_get(in->json, "encoding_format"));
    int b64 = fmt && strcmp(fmt, "base64") == 0;
    json_t *data = json_array(), *res;
    size_t n = json_is_array(many) ? json_array_size(many) : 1;
    long prompt = mr_codec_count(json_object_get(root, "usageMetadata"), "promptTokenCount");

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
    *usage = MR_USAGE_UNKNOWN;
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
    if (mr_codec_append_json(out, res) < 0) {
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

int mr__gemini_embeddings(const mr_adapter_in_t *in, const char *body, size_t len, mr_buf_t *out,
                          mr_usage_t *usage, mr_error_t *err)
{
    json_t *root = json_loadb(body, len, JSON_ALLOW_NUL, NULL);
    int rc;

    *usage = MR_USAGE_UNKNOWN;
    if (!json_is_object(root)) {
        json_decref(root);
        mr_error_set(err, 502, "api_error", "upstream_malformed", NULL,
                     "provider %s: the answer is not a Gemini GenerateContentResponse",
                     in->provider->name);
        return -1;
    }
    rc = translate(in, root, out, usage, err);
    json_decref(root);
    return rc;
}
