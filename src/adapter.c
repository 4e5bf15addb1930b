#include "meridian/adapter.h"

#include "meridian/chat_parse.h"
#include "meridian/chat_write.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void mr_adapter_req_free(mr_adapter_req_t *r)
{
    free(r->url);
    curl_slist_free_all(r->headers);
    free(r->body);
    r->url = NULL;
    r->headers = NULL;
    r->body = NULL;
    r->body_len = 0;
}

void mr_adapter_stream_error(mr_buf_t *out, const char *fmt, ...)
{
    char msg[MR_ERROR_MESSAGE_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    mr_chat_write_error(out, "api_error", "upstream_stream_error", "%s", msg);
}

void mr_adapter_drop(mr_adapter_req_t *out, const char *name)
{
    for (unsigned i = 0; i < out->n_dropped; i++)
        if (strcmp(out->dropped[i], name) == 0)
            return;
    if (out->n_dropped < MR_ADAPTER_DROPPED_MAX)
        out->dropped[out->n_dropped++] = name;
}

const mr_adapter_t *mr_adapter_for(mr_provider_kind_t kind)
{
    switch (kind) {
    case MR_KIND_OPENAI:
        return &mr_adapter_openai;
    case MR_KIND_ANTHROPIC:
        return &mr_adapter_anthropic;
    case MR_KIND_GEMINI:
        return &mr_adapter_gemini;
    case MR_KIND_AZURE:
        return &mr_adapter_azure;
    }
    return NULL;
}

int mr_adapter_conv_parse(mr_adapter_conv_t *cache, const json_t *json, mr_error_t *err)
{
    if (!cache->tried) {
        cache->tried = 1;
        if ((cache->parse ? cache->parse : mr_chat_parse)(json, &cache->req, err) < 0) {
            cache->req = NULL;
            /* later attempts give the same error; without memory for the
             * copy they report that instead */
            if ((cache->err = malloc(sizeof(*cache->err))))
                *cache->err = *err;
            return -1;
        }
    }
    if (!cache->req) {
        if (cache->err)
            *err = *cache->err;
        else
            mr_error_set(err, 503, NULL, "overloaded", NULL, "the gateway is out of memory");
        return -1;
    }
    return 0;
}

int mr_adapter_conv(const mr_adapter_t *ad, mr_adapter_conv_t *cache, mr_adapter_in_t *in,
                    mr_error_t *err)
{
    if (!ad->uses_conv || in->endpoint != MR_EP_CHAT)
        return 0;
    if (mr_adapter_conv_parse(cache, in->json, err) < 0)
        return -1;
    in->conv = cache->req;
    return 0;
}

void mr_adapter_conv_free(mr_adapter_conv_t *cache)
{
    mr_conv_req_free(cache->req);
    free(cache->err);
    cache->req = NULL;
    cache->err = NULL;
    cache->tried = 0;
}

void mr_adapter_usage_member(const char *obj, size_t len, mr_adapter_usage_fn read,
                             mr_usage_t *usage)
{
    mr_json_span_t sp;

    if (mr_json_find_member(obj, len, "usage", &sp) == 0) {
        json_t *u = json_loadb(obj + sp.value_off, sp.value_len, 0, NULL);
        read(u, usage);
        json_decref(u);
    }
}

int mr_adapter_passthrough_answer(const char *body, size_t len, mr_adapter_usage_fn read,
                                  mr_buf_t *out, mr_usage_t *usage, mr_error_t *err)
{
    *usage = MR_USAGE_UNKNOWN;
    mr_adapter_usage_member(body, len, read, usage);
    if (out && mr_buf_append(out, body, len) < 0) {
        mr_error_set(err, 502, "api_error", "upstream_too_large", NULL,
                     "upstream response too large");
        return -1;
    }
    return 0;
}
