/*
 * The Azure OpenAI dialect: OpenAI's API under a per-deployment path,
 *   {base_url}/openai/deployments/{deployment}/chat/completions?api-version=V
 *   (also /completions and /embeddings), key in the api-key header.
 * The deployment is the target's model. Bodies, answers, streams and errors
 * are OpenAI's, so everything but the URL and the credentials header goes
 * through the openai adapter (mr_adapter_openai) unchanged.
 */
#include "meridian/adapter.h"
#include "xlate.h"

#include <stdlib.h>
#include <string.h>

/* The API version sent when the configuration names none (see
 * docs/providers.md for the proposed provider key). */
#define AZURE_API_VERSION "2024-10-21"

static int azure_build(const mr_adapter_in_t *in, mr_adapter_req_t *out, mr_error_t *err)
{
    const mr_provider_t *p = in->provider;
    char deployment[512];
    struct curl_slist *h;

    memset(out, 0, sizeof(*out));
    if (!in->model || !*in->model ||
        mr__xlate_path_escape(in->model, 0, deployment, sizeof(deployment)) < 0)
        return mr__xlate_bad(err, "invalid_value", "model",
                             "provider %s (azure): the deployment name must be 1 to 170 bytes, "
                             "and not \".\" or \"..\"",
                             p->name);
    if (mr_openai_body(in, 1, &out->body, &out->body_len, err) < 0)
        return -1;
    out->url =
        mr__xlate_url(p->base_url, "/openai/deployments/%s%s?api-version=%s", deployment,
                      mr_endpoint_path(in->endpoint),
                      in->provider->api_version ? in->provider->api_version : AZURE_API_VERSION);
    if (!out->url)
        goto oom;
    h = mr_adapter_headers(in, "api-key", "");
    if (!h)
        goto oom;
    out->headers = h;
    return 0;
oom:
    mr_adapter_req_free(out);
    return mr__xlate_oom(err);
}

/* The rest is OpenAI's: called through the openai adapter's table (a
 * static initialiser cannot copy another object's function pointers). */

static int azure_translate(const mr_adapter_in_t *in, const char *body, size_t len, mr_buf_t *out,
                           mr_usage_t *usage, mr_error_t *err)
{
    return mr_adapter_openai.translate(in, body, len, out, usage, err);
}

static mr_stream_xlate_t *azure_stream_new(const mr_adapter_in_t *in)
{
    return mr_adapter_openai.stream_new(in);
}

static int azure_stream_feed(mr_stream_xlate_t *x, const char *p, size_t n, mr_buf_t *out)
{
    return mr_adapter_openai.stream_feed(x, p, n, out);
}

static int azure_stream_end(mr_stream_xlate_t *x, mr_buf_t *out)
{
    return mr_adapter_openai.stream_end(x, out);
}

static void azure_stream_usage(const mr_stream_xlate_t *x, mr_usage_t *usage)
{
    mr_adapter_openai.stream_usage(x, usage);
}

static void azure_stream_free(mr_stream_xlate_t *x)
{
    mr_adapter_openai.stream_free(x);
}

static int azure_retryable(long status, const char *body, size_t len)
{
    return mr_adapter_openai.retryable(status, body, len);
}

static void azure_translate_error(const mr_provider_t *p, long status, const char *body, size_t len,
                                  mr_buf_t *out)
{
    mr_adapter_openai.translate_error(p, status, body, len, out);
}

const mr_adapter_t mr_adapter_azure = {
    .name = "azure",
    .build = azure_build,
    .translate = azure_translate,
    .stream_new = azure_stream_new,
    .stream_feed = azure_stream_feed,
    .stream_end = azure_stream_end,
    .stream_usage = azure_stream_usage,
    .stream_free = azure_stream_free,
    .retryable = azure_retryable,
    .translate_error = azure_translate_error,
    .passthrough = 1,
};
