/*
 * The Azure OpenAI dialect: OpenAI's API under a per-deployment path,
 *   {base_url}/openai/deployments/{deployment}/chat/completions?api-version=V
 *   (also /completions and /embeddings), key in the api-key header.
 * The deployment is the target's model. Bodies, answers, streams and errors
 * are OpenAI's, so everything but the URL and the credentials header is the
 * openai adapter's (openai.h) unchanged.
 */
#include "meridian/adapter.h"
#include "openai.h"
#include "xlate.h"

#include <stdlib.h>
#include <string.h>

/* The API version sent when the configuration names none (see
 * docs/providers.md for the proposed provider key). */
#define AZURE_API_VERSION "2024-10-21"

int mr__azure_build(const mr_adapter_in_t *in, mr_adapter_req_t *out, mr_error_t *err)
{
    const mr_provider_t *p = in->provider;
    char deployment[512];
    struct curl_slist *h;

    memset(out, 0, sizeof(*out));
    if (!in->model || !*in->model ||
        mr__xlate_path_escape(in->model, 0, deployment, sizeof(deployment)) < 0)
        return mr_error_bad(err, "invalid_value", "model",
                            "provider %s (azure): the deployment name must be 1 to 170 bytes, "
                            "and not \".\" or \"..\"",
                            p->name);
    if (mr__openai_request_body(in, out, err) < 0)
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

const mr_adapter_t mr_adapter_azure = {
    .name = "azure",
    .build = mr__azure_build,
    .translate = mr__openai_translate,
    .stream_new = mr__openai_stream_new,
    .stream_feed = mr__openai_stream_feed,
    .stream_end = mr__openai_stream_end,
    .stream_usage = mr__openai_stream_usage,
    .stream_content = mr__openai_stream_content,
    .stream_free = mr__openai_stream_free,
    .retryable = mr__openai_retryable,
    .translate_error = mr__openai_translate_error,
    .passthrough = 1,
};
