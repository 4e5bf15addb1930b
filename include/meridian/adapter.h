/*
 * adapter — one provider dialect behind the client's dialect.
 *
 * For each upstream attempt the gateway asks an adapter (by the client's
 * dialect and the target's mr_provider_kind_t, inbound.h) to build the
 * upstream request, then to translate what comes back: a complete body, an
 * event stream (incrementally, chunk by chunk, with bounded state), or an
 * error. When the client speaks the target's own dialect (an OpenAI chat
 * client on openai / azure, a Messages client on anthropic) the adapter
 * passes the client's bytes with only `model` changed and the answer's
 * bytes unchanged, watching them for usage, content and the terminal event.
 * Every completed request yields token usage (mr_usage_t) whatever the
 * dialect, for metrics and budgets.
 *
 * Translating adapters work on the conversation model (conv.h): the
 * client's body is parsed into it once per client request (mr_adapter_conv,
 * on the first attempt that needs it, with the client dialect's parser) and
 * every later attempt reuses it; answers and events are written by the
 * client dialect's writer (in->client; OpenAI chat when NULL). The
 * passthrough adapters never parse it.
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
    MR_EP_MESSAGES,     /* Anthropic Messages (inbound.h) */
    MR_EP_COUNT_TOKENS, /* Anthropic Messages count_tokens */
    MR_EP_RESPONSES,    /* OpenAI Responses (responses_inbound.h) */
    MR_EP_COUNT,
} mr_endpoint_t;

struct mr_inbound; /* inbound.h: the client's dialect */

/* What the attempt's adapter leaves out of the client's request, for the
 * audit record: member names (static strings or views of the request's
 * conversation model, valid for the request's life) and anthropic-beta flags. */
#define MR_ADAPTER_DROPPED_MAX 16
#define MR_ADAPTER_BETAS_MAX 256

/* Token counts of one answer, -1 when the upstream did not say. OpenAI's
 * conventions: prompt_tokens includes the input read from and written to a
 * prompt cache, completion_tokens includes reasoning. */
typedef struct mr_usage {
    long prompt_tokens;
    long completion_tokens;
    long cached_tokens;      /* input read from a prompt cache */
    long cache_write_tokens; /* input written to a prompt cache */
    long reasoning_tokens;
} mr_usage_t;

#define MR_USAGE_UNKNOWN ((mr_usage_t){-1, -1, -1, -1, -1})

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
    /* The client's dialect: its writer gets translated answers and events,
     * its parser built `conv`. NULL: OpenAI chat (the adapters' own). */
    const struct mr_inbound *client;
    /* The client's request header `name` (NULL when absent); may be NULL. */
    const char *(*client_header)(void *ud, const char *name);
    void *client_header_ud;
    /* The client dialect's state of this request (Responses: the response
     * id and its store), passed to its writers; NULL when it has none. */
    void *client_ctx;
} mr_adapter_in_t;

/* The upstream request an adapter builds; everything owned by it. */
typedef struct mr_adapter_req {
    char *url;
    struct curl_slist *headers; /* includes the provider's credentials */
    char *body;
    size_t body_len;
    /* Reasoning signatures (thinking blocks, thought signatures) of the
     * conversation that were not sent: made by another provider kind or
     * model, they would be rejected (docs/providers.md). */
    unsigned signatures_dropped;
    /* Members of the client's request the target does not get (audit). */
    const char *dropped[MR_ADAPTER_DROPPED_MAX];
    unsigned n_dropped;
    /* anthropic-beta flags not sent to it, comma-separated ("" none) */
    char betas_dropped[MR_ADAPTER_BETAS_MAX];
} mr_adapter_req_t;

void mr_adapter_req_free(mr_adapter_req_t *r);

typedef struct mr_stream_xlate mr_stream_xlate_t;

typedef struct mr_adapter {
    const char *name;
    /* Builds the upstream request. 0, or -1 with *err (a 400 when the
     * client's body cannot be expressed in this dialect). */
    int (*build)(const mr_adapter_in_t *in, mr_adapter_req_t *out, mr_error_t *err);
    /* Translates a complete 2xx upstream body into the client dialect's
     * body appended to `out`, and fills *usage. 0, or -1 with *err (the upstream answer
     * is malformed: the gateway treats that as a failed attempt). */
    int (*translate)(const mr_adapter_in_t *in, const char *body, size_t len, mr_buf_t *out,
                     mr_usage_t *usage, mr_error_t *err);
    /* Stream translation: feed upstream bytes as they come (split anywhere);
     * SSE bytes in the client's dialect are appended to `out`. feed
     * returns 0, or -1 when the upstream stream is malformed or reported an
     * error — in that case the client dialect's SSE error event has already
     * been appended and the stream must end. end is called once when the
     * upstream finished cleanly and appends what remains (OpenAI: final
     * chunk, usage chunk when the client asked, "data: [DONE]"); it returns
     * MR_ADAPTER_TRUNCATED (after an error event) when the stream ended
     * without its dialect's terminal event (OpenAI [DONE], Anthropic
     * message_stop, every Gemini candidate's finishReason).
     * stream_content says whether an event that carries content (text,
     * reasoning, a tool call) has been written: the gateway holds what comes
     * before (a role-only chunk) so that a failure there can fail over. */
    mr_stream_xlate_t *(*stream_new)(const mr_adapter_in_t *in);
    int (*stream_feed)(mr_stream_xlate_t *x, const char *p, size_t n, mr_buf_t *out);
    int (*stream_end)(mr_stream_xlate_t *x, mr_buf_t *out);
    void (*stream_usage)(const mr_stream_xlate_t *x, mr_usage_t *usage);
    int (*stream_content)(const mr_stream_xlate_t *x);
    void (*stream_free)(mr_stream_xlate_t *x);
    /* Whether a non-2xx answer may be retried on another target (429, 5xx,
     * 529, Anthropic overloaded_error...). */
    int (*retryable)(long status, const char *body, size_t len);
    /* Turns a non-2xx upstream body into an OpenAI-shaped error body
     * appended to `out` (keeping the provider's message); a passthrough
     * adapter of another client dialect keeps that dialect's shape (the
     * gateway reshapes the others: inbound.h). */
    void (*translate_error)(const mr_provider_t *p, long status, const char *body, size_t len,
                            mr_buf_t *out);
    /* The first parameter of a chat request this dialect would not carry
     * (refused, or dropped), NULL when it carries every one: what
     * provider.require_parameters skips targets for. NULL function: the
     * dialect passes the client's bytes (it carries everything). */
    const char *(*unsupported)(const mr_conv_req_t *conv);
    /* Set when complete 2xx bodies are already in the client's dialect: the
     * gateway then forwards the upstream bytes untouched and calls translate
     * with out == NULL only to read the usage. */
    int passthrough;
    /* Set when requests are built from the conversation model. */
    int uses_conv;
} mr_adapter_t;

/* stream_end's result for a stream cut before its terminal event. */
#define MR_ADAPTER_TRUNCATED (-2)

/* Appends one OpenAI-shaped SSE error event (type api_error, code
 * upstream_stream_error) with the printf message. */
void mr_adapter_stream_error(mr_buf_t *out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Reads a usage object of the provider's dialect into *usage. */
typedef void (*mr_adapter_usage_fn)(const json_t *usage_obj, mr_usage_t *usage);

/* The usage object at obj[0, len)'s member "usage", when there is one, read
 * by `read` (only that object is parsed: a few hundred bytes, never the
 * whole answer or event). obj must be valid JSON. */
void mr_adapter_usage_member(const char *obj, size_t len, mr_adapter_usage_fn read,
                             mr_usage_t *usage);

/* A passthrough answer's translate: usage read as above (*usage is
 * MR_USAGE_UNKNOWN without one), the body appended to out unchanged (when
 * out is not NULL). 0, or -1 with a 502 in err when out cannot take it. */
int mr_adapter_passthrough_answer(const char *body, size_t len, mr_adapter_usage_fn read,
                                  mr_buf_t *out, mr_usage_t *usage, mr_error_t *err);

/* The adapter of a provider kind; NULL when this build has none. */
const mr_adapter_t *mr_adapter_for(mr_provider_kind_t kind);

/* A client request's conversation model, built at most once (owned by the
 * request, zero-initialised; shared read-only by its attempts). */
typedef struct mr_adapter_conv {
    /* the client dialect's parser (inbound.h); NULL: OpenAI chat */
    int (*parse)(const json_t *body, mr_conv_req_t **out, mr_error_t *err);
    mr_conv_req_t *req;
    int tried;       /* the parse ran */
    mr_error_t *err; /* its error when it failed (malloc'd: a request carries no
                      * 1 KiB message it rarely needs) */
} mr_adapter_conv_t;

/* The chat body `json` as a conversation in *cache, parsed on the first
 * call (later calls return the same result). 0, or -1 with *err. */
int mr_adapter_conv_parse(mr_adapter_conv_t *cache, const json_t *json, mr_error_t *err);

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
/* Endpoint path suffix: "/chat/completions", "/completions", "/embeddings",
 * "/messages", "/messages/count_tokens", "/responses". */
const char *mr_endpoint_path(mr_endpoint_t ep);
/* Its metrics label: "chat", "completions", "embeddings", "messages",
 * "count_tokens", "responses" ("none" past them). */
const char *mr_endpoint_name(mr_endpoint_t ep);

/* Records `name` in out->dropped (once; past the bound it is not listed). */
void mr_adapter_drop(mr_adapter_req_t *out, const char *name);

/* The adapters, for tests and fuzzers. Chat clients get the first four.
 * For clients of another dialect (inbound.h): openai_conv and azure_conv
 * emit chat requests from the conversation model and translate answers
 * back; anthropic_messages passes a Messages client's bytes through;
 * anthropic_count forwards count_tokens, none_count refuses it (a target
 * that has no count_tokens); openai_responses passes a Responses client's
 * bytes to a provider that serves the Responses API. */
extern const mr_adapter_t mr_adapter_openai;
extern const mr_adapter_t mr_adapter_anthropic;
extern const mr_adapter_t mr_adapter_gemini;
extern const mr_adapter_t mr_adapter_azure;
extern const mr_adapter_t mr_adapter_openai_conv;
extern const mr_adapter_t mr_adapter_azure_conv;
extern const mr_adapter_t mr_adapter_anthropic_messages;
extern const mr_adapter_t mr_adapter_anthropic_count;
extern const mr_adapter_t mr_adapter_none_count;
/* A Responses client's bytes to a provider with responses_api (openai or
 * azure credentials by its kind), at {base_url}/responses. */
extern const mr_adapter_t mr_adapter_openai_responses;

#endif
