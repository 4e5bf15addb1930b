/*
 * The Anthropic Messages dialect (POST {base_url}/messages): its
 * capabilities, the upstream request and the error mapping. Bodies are
 * emitted from the conversation model by anthropic_request.c; answers and
 * event streams are parsed by anthropic_answer.c; every parameter's fate is
 * listed in docs/providers.md.
 */
#include "meridian/adapter.h"
#include "meridian/health.h"
#include "anthropic.h"
#include "xlate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ANTHROPIC_VERSION "2023-06-01"
#define ANTHROPIC_MAX_TOKENS_LIMIT 1000000

static const mr_conv_caps_t caps = {
    .name = "anthropic",
    .n_max = 128,
    .choices_max = 1,
    .max_output_limit = ANTHROPIC_MAX_TOKENS_LIMIT,
    .image_url = 1,
    .file_type = "application/pdf",
    .call_needs_id = 1,
    .rich_results = 1,
    .json_schema = 1,
    .reasoning = 1,
    .schema_keywords = mr__anthropic_schema_keywords,
    .schema_value_ok = mr__anthropic_schema_value_ok,
};

/* Members of the model Anthropic has no field for. */
static const char *const ignored[] = {
    "presence_penalty", "frequency_penalty", "seed",           "top_logprobs",
    "metadata",         "prompt_cache_key",  "cached_content", NULL};

static const char *anthropic_unsupported(const mr_conv_req_t *conv)
{
    return mr__xlate_unsupported(&caps, conv, ignored);
}

static int anthropic_build(const mr_adapter_in_t *in, mr_adapter_req_t *out, mr_error_t *err)
{
    const mr_provider_t *p = in->provider;
    struct curl_slist *h;

    memset(out, 0, sizeof(*out));
    if (in->endpoint != MR_EP_CHAT)
        return mr_error_bad(err, "unsupported_endpoint", NULL,
                            "provider %s (anthropic) serves only /v1/chat/completions, not /v1%s",
                            p->name, mr_endpoint_path(in->endpoint));
    if (mr__xlate_body(&caps, mr__anthropic_emit, ignored, in, out, err) < 0)
        return -1;
    if (!(out->url = mr__xlate_url(p->base_url, "/messages")))
        goto oom;
    h = mr_adapter_headers(in, "x-api-key", "");
    /* a forwarded anthropic-version (forward_headers) replaces ours */
    if (h && !mr__xlate_has_header(in, "anthropic-version"))
        h = mr_adapter_header(h, "anthropic-version",
                              in->provider->api_version ? in->provider->api_version
                                                        : ANTHROPIC_VERSION);
    if (!h)
        goto oom;
    out->headers = h;
    return 0;
oom:
    mr_adapter_req_free(out);
    return mr__xlate_oom(err);
}

/* ------------------------------------------------------------ errors */

int mr__anthropic_retryable(long status, const char *body, size_t len)
{
    json_t *root;
    const char *type;
    int r;

    if (mr_retryable_status(status)) /* 408, 409, 429, 5xx */
        return 1;
    root = json_loadb(body, len, 0, NULL);
    type = json_string_value(json_object_get(json_object_get(root, "error"), "type"));
    r = type && (strcmp(type, "overloaded_error") == 0 || strcmp(type, "rate_limit_error") == 0 ||
                 strcmp(type, "api_error") == 0);
    json_decref(root);
    return r;
}

static void anthropic_translate_error(const mr_provider_t *p, long status, const char *body,
                                      size_t len, mr_buf_t *out)
{
    json_t *root = json_loadb(body, len, 0, NULL);
    const json_t *e = json_object_get(root, "error");
    const char *msg = json_string_value(json_object_get(e, "message"));
    const char *type = json_string_value(json_object_get(e, "type"));
    const json_t *code = json_object_get(e, "code");
    char fallback[300];

    if (!msg) {
        mr__xlate_error_fallback(p, status, body, len, fallback, sizeof(fallback));
        msg = fallback;
        type = NULL;
    }
    /* an OpenAI-shaped body (a compatible proxy) keeps its code */
    mr__xlate_error_body(out, msg, mr__xlate_error_type(type, status),
                         json_is_string(code) ? json_string_value(code)
                         : type               ? type
                                              : "upstream_error");
    json_decref(root);
}

static int anthropic_translate(const mr_adapter_in_t *in, const char *body, size_t len,
                               mr_buf_t *out, mr_usage_t *usage, mr_error_t *err)
{
    return mr__xlate_translate(&mr__anthropic_parser, in, body, len, out, usage, err);
}

static mr_stream_xlate_t *anthropic_stream_new(const mr_adapter_in_t *in)
{
    return mr__xlate_stream_new(&mr__anthropic_parser, in);
}

const mr_adapter_t mr_adapter_anthropic = {
    .name = "anthropic",
    .build = anthropic_build,
    .translate = anthropic_translate,
    .stream_new = anthropic_stream_new,
    .stream_feed = mr__xlate_stream_feed,
    .stream_end = mr__xlate_stream_end,
    .stream_usage = mr__xlate_stream_usage,
    .stream_content = mr__xlate_stream_content,
    .stream_free = mr__xlate_stream_free,
    .retryable = mr__anthropic_retryable,
    .translate_error = anthropic_translate_error,
    .unsupported = anthropic_unsupported,
    .passthrough = 0,
    .uses_conv = 1,
};
