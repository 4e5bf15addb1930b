/*
 * adapter — one provider dialect behind the OpenAI interface.
 *
 * Clients always speak OpenAI. For each upstream attempt the gateway asks the
 * target provider's adapter (by mr_provider_kind_t) to build the upstream
 * request, then to translate what comes back: a complete body, an event
 * stream (incrementally, chunk by chunk, with bounded state), or an error.
 * Every completed request yields token usage (mr_usage_t) whatever the
 * dialect, for metrics and budgets.
 *
 * Translating adapters (anthropic, gemini) work on the conversation model
 * (conv.h): the client's chat body is parsed into it once per client
 * request (mr_adapter_conv, on the first attempt that needs it) and every
 * later attempt reuses it; the passthrough adapters (openai, azure) never
 * parse it.
 *
 * Adapters are stateless tables of functions; per-request state lives in an
 * mr_stream_xlate_t created by stream_new and owned by the caller until
 * stream_free. Everything is called on one worker thread; nothing blocks.
 * Output is appended to caller-owned mr_buf_t buffers (whose limits bound
 * what a translation may produce). Secrets (the provider key) only ever go
 * into the upstream request's headers.
 */
#ifndef MERIDIAN_ADAPTER_H
#define MERIDIAN_ADAPTER_H

#include "meridian/buf.h"
#include "meridian/config.h"
#include "meridian/conv.h"
#include "meridian/error.h"
#include "meridian/json_span.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stddef.h>

typedef enum {
    MR_EP_CHAT = 0,
    MR_EP_COMPLETIONS,
    MR_EP_EMBEDDINGS,
    MR_EP_COUNT,
} mr_endpoint_t;

typedef struct mr_usage {
    long prompt_tokens;     /* -1 when unknown */
    long completion_tokens; /* -1 when unknown */
} mr_usage_t;

/* What the gateway knows about one attempt. All pointers are borrowed and
 * stay valid for the whole request (across every call for this attempt). */
typedef struct mr_adapter_in {
    const mr_provider_t *provider;
    mr_endpoint_t endpoint;
    const char *model;      /* the target's upstream model */
    int stream;             /* client asked for "stream": true */
    int client_wants_usage; /* stream_options.include_usage was true */
    const char *body;       /* the client's raw, validated JSON body */
    size_t body_len;
    /* The gateway's scan of `body` (validated, no duplicate members) and
     * where its top-level members are; NULL: the adapter locates them. */
    const mr_json_scan_t *scan;
    const json_t *json; /* the same body parsed (an object); NULL on the passthrough
                           path when `scan` is set (passthrough adapters read spans) */
    const char *const
        *strip; /* top-level members never forwarded (gateway-only), NULL-terminated */
    const char *const
        *extra_headers; /* allowed client headers "Name: value", NULL-terminated; may be NULL */
    /* "created" of answers that translating adapters (anthropic, gemini)
     * make up: unix seconds; 0 = time(NULL) at the call. Tests pin it. */
    long long created;
    /* The client's chat body as a conversation (set by mr_adapter_conv for
     * adapters with uses_conv); NULL: a translating adapter parses `json`
     * itself for this call. */
    const mr_conv_req_t *conv;
} mr_adapter_in_t;

/* The upstream request an adapter builds; everything owned by it. */
typedef struct mr_adapter_req {
    char *url;
    struct curl_slist *headers; /* includes the provider's credentials */
    char *body;
    size_t body_len;
} mr_adapter_req_t;

void mr_adapter_req_free(mr_adapter_req_t *r);

typedef struct mr_stream_xlate mr_stream_xlate_t;

typedef struct mr_adapter {
    const char *name;
    /* Builds the upstream request. 0, or -1 with *err (a 400 when the
     * client's body cannot be expressed in this dialect). */
    int (*build)(const mr_adapter_in_t *in, mr_adapter_req_t *out, mr_error_t *err);
    /* Translates a complete 2xx upstream body into the OpenAI body appended
     * to `out`, and fills *usage. 0, or -1 with *err (the upstream answer
     * is malformed: the gateway treats that as a failed attempt). */
    int (*translate)(const mr_adapter_in_t *in, const char *body, size_t len, mr_buf_t *out,
                     mr_usage_t *usage, mr_error_t *err);
    /* Stream translation: feed upstream bytes as they come (split anywhere);
     * OpenAI SSE bytes ready for the client are appended to `out`. feed
     * returns 0, or -1 when the upstream stream is malformed or reported an
     * error — in that case an OpenAI-shaped SSE error event has already
     * been appended and the stream must end. end is called once when the
     * upstream finished cleanly and appends what remains (final chunk,
     * usage chunk when the client asked, "data: [DONE]"). */
    mr_stream_xlate_t *(*stream_new)(const mr_adapter_in_t *in);
    int (*stream_feed)(mr_stream_xlate_t *x, const char *p, size_t n, mr_buf_t *out);
    int (*stream_end)(mr_stream_xlate_t *x, mr_buf_t *out);
    void (*stream_usage)(const mr_stream_xlate_t *x, mr_usage_t *usage);
    void (*stream_free)(mr_stream_xlate_t *x);
    /* Whether a non-2xx answer may be retried on another target (429, 5xx,
     * 529, Anthropic overloaded_error...). */
    int (*retryable)(long status, const char *body, size_t len);
    /* Turns a non-2xx upstream body into an OpenAI-shaped error body
     * appended to `out` (keeping the provider's message). */
    void (*translate_error)(const mr_provider_t *p, long status, const char *body, size_t len,
                            mr_buf_t *out);
    /* Set when complete 2xx bodies are already OpenAI's: the gateway then
     * forwards the upstream bytes untouched and calls translate with
     * out == NULL only to read the usage. */
    int passthrough;
    /* Set when chat requests are built from the conversation model. */
    int uses_conv;
} mr_adapter_t;

/* The adapter of a provider kind; NULL when this build has none. */
const mr_adapter_t *mr_adapter_for(mr_provider_kind_t kind);

/* A client request's conversation model, built at most once (owned by the
 * request, zero-initialised; shared read-only by its attempts). */
typedef struct mr_adapter_conv {
    mr_conv_req_t *req;
    int tried;      /* the parse ran */
    mr_error_t err; /* its error when it failed */
} mr_adapter_conv_t;

/* Sets in->conv when `ad` uses the model for in->endpoint, parsing in->json
 * into *cache on the first call. 0, or -1 with *err (the client's 400 when
 * its body is not a conversation: the same for every translating attempt). */
int mr_adapter_conv(const mr_adapter_t *ad, mr_adapter_conv_t *cache, mr_adapter_in_t *in,
                    mr_error_t *err);
void mr_adapter_conv_free(mr_adapter_conv_t *cache);

/* ---- shared by OpenAI-like dialects (openai, azure) ---------------------- */

/* The client's body as the upstream gets it: `model` replaced by in->model
 * (or removed when !set_model), in->strip members removed and, for streams,
 * stream_options.include_usage forced on; every other byte unchanged. With
 * in->scan the body is not scanned again (and copied once when nothing is
 * stripped); without it, it is validated first. Reads no parse tree.
 * 0 with a malloc'd *body, or -1 with *err. */
int mr_openai_body(const mr_adapter_in_t *in, int set_model, char **body, size_t *len,
                   mr_error_t *err);
/* Appends "name: value" to a curl header list; on allocation failure frees
 * the list and returns NULL. */
struct curl_slist *mr_adapter_header(struct curl_slist *list, const char *name, const char *value);
/* Appends in->extra_headers; same failure rule. */
struct curl_slist *mr_adapter_extra_headers(struct curl_slist *list, const mr_adapter_in_t *in);
/* The header list every dialect starts from: Content-Type JSON, no Expect,
 * the provider's key as "auth_name: auth_prefix<key>" when it has one, then
 * in->extra_headers. NULL on allocation failure. */
struct curl_slist *mr_adapter_headers(const mr_adapter_in_t *in, const char *auth_name,
                                      const char *auth_prefix);
/* Endpoint path suffix: "/chat/completions", "/completions", "/embeddings". */
const char *mr_endpoint_path(mr_endpoint_t ep);

/* The adapters, for tests and fuzzers. */
extern const mr_adapter_t mr_adapter_openai;
extern const mr_adapter_t mr_adapter_anthropic;
extern const mr_adapter_t mr_adapter_gemini;
extern const mr_adapter_t mr_adapter_azure;

#endif
