#include "meridian/adapter.h"

#include <stdlib.h>

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
