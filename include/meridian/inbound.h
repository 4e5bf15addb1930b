/*
 * inbound — the client dialects the gateway serves, one descriptor each:
 * its endpoints, how its request body becomes the conversation model, how
 * answers, stream events and errors are written back in it, and which
 * adapter serves an attempt of it on each provider kind (or, with
 * `native`, on a provider flagged as serving the dialect itself).
 *
 *   dialect   endpoints                                   passthrough kinds
 *   chat      /v1/chat/completions, completions, embeddings  openai, azure
 *   messages  /v1/messages, /v1/messages/count_tokens       anthropic
 *   responses /v1/responses                                 providers with
 *                                                           responses_api
 *
 * On a passthrough kind the client's bytes go upstream with only `model`
 * changed and the answer comes back unchanged (watched for its usage, its
 * first content and its terminal event). Every other kind is translated:
 * the body is parsed once per request into the model (`parse`), the
 * target's adapter emits its dialect from it, and its answers and events
 * come back through this dialect's writer. Errors everywhere — the
 * gateway's refusals, upstream errors, mid-stream failures — take this
 * dialect's shape. A new dialect (issue 15: OpenAI Responses) is one more
 * descriptor.
 *
 * The descriptors are constant; a stream writer is state of writer_size
 * bytes owned by the caller (writer_init, then writer_free). Error bodies
 * are malloc'd for the caller. Pure functions, any thread; a writer is
 * used by one thread.
 */
#ifndef MERIDIAN_INBOUND_H
#define MERIDIAN_INBOUND_H

#include "meridian/adapter.h"
#include "meridian/buf.h"
#include "meridian/config.h"
#include "meridian/conv.h"
#include "meridian/error.h"

#include <jansson.h>
#include <stddef.h>

typedef enum mr_dialect {
    MR_DIALECT_CHAT = 0,
    MR_DIALECT_MESSAGES,
    MR_DIALECT_RESPONSES,
    MR_DIALECT_COUNT,
} mr_dialect_t;

/* What a stream writer starts from. */
typedef struct mr_inbound_stream_opts {
    long long created;        /* chat: "created" of every chunk */
    int wants_usage;          /* chat: stream_options.include_usage */
    const char *origin_kind;  /* the provider kind that signs the stream's reasoning; may be NULL */
    const char *origin_model; /* ... and its target model */
    long input_estimate;      /* messages: message_start's input before the upstream says; -1 */
    void *client_ctx;         /* the dialect's request state (mr_adapter_in_t.client_ctx) */
} mr_inbound_stream_opts_t;

typedef struct mr_inbound {
    mr_dialect_t dialect;
    const char *name; /* "chat", "messages": the audit record's `dialect` */

    /* The request body as a conversation (chat_parse, messages_parse). */
    int (*parse)(const json_t *body, mr_conv_req_t **out, mr_error_t *err);
    /* The string member naming the request's conversation for cache
     * affinity, or NULL (chat: prompt_cache_key, else user; messages:
     * metadata.user_id). */
    const json_t *(*session)(const json_t *body);

    /* A complete answer in this dialect, appended to out (client_ctx: the
     * request's state, may be NULL). 0, or -1 with a 502 in *err (an answer
     * it cannot express, or too large). */
    int (*write_answer)(const mr_conv_answer_t *a, long long created, void *client_ctx,
                        mr_buf_t *out, mr_error_t *err);

    /* The stream writer: init, then one writer_event per model event, with
     * writer_set_out around them; writer_flush at the end of each upstream
     * event (Messages holds message_start until then, for its input count);
     * writer_content once an event carrying content went out (the commit
     * point); writer_failed when the writer ended the stream itself (an
     * event sequence the dialect cannot carry). */
    size_t writer_size;
    void (*writer_init)(void *w, const mr_inbound_stream_opts_t *o);
    int (*writer_event)(void *w, const mr_conv_event_t *ev);
    void (*writer_set_out)(void *w, mr_buf_t *out);
    int (*writer_flush)(void *w);
    int (*writer_content)(const void *w);
    void (*writer_usage)(const void *w, mr_conv_usage_t *u);
    int (*writer_failed)(const void *w);
    void (*writer_free)(void *w);

    /* The gateway's error e in this dialect's shape, with an optional extra
     * member inside the error object ("attempts", "excluded"; borrowed). */
    char *(*error_body)(const mr_error_t *e, const char *extra_key, json_t *extra, size_t *len);
    /* One SSE error event appended to out (ignoring its limit); type is
     * an OpenAI error type, code may be NULL. */
    void (*stream_error)(mr_buf_t *out, const char *type, const char *code, const char *message);
    /* When set, a gateway-side failure of a stream already under way is
     * written by this instead (Responses: response.failed, numbered after
     * the events sent), with the request's client_ctx (not NULL). */
    void (*stream_fail)(void *client_ctx, mr_buf_t *out, const char *message);
    /* An upstream error body as translate_error left it (OpenAI's shape, or
     * already this dialect's) in this dialect's shape: malloc'd, or NULL
     * when it is kept as it is. */
    char *(*reshape_error)(const char *body, size_t len, int status, size_t *out_len);

    /* The dialect's feature-flag request header (messages: anthropic-beta),
     * forwarded to a target only with the flags its provider accepts
     * (providers.NAME.anthropic_beta); the others are recorded as dropped.
     * NULL: none. */
    const char *flags_header;

    /* Request headers the dialect's adapters set themselves (version,
     * flags): never copied by a provider's forward_headers. NULL-terminated. */
    const char *const *own_headers;

    /* The adapter that serves an attempt of endpoint ep on a provider of
     * kind, NULL when this build has none. */
    const mr_adapter_t *(*adapter)(mr_endpoint_t ep, mr_provider_kind_t kind);
    /* Whether a target of kind gets the client's bytes (the dialect's own). */
    int (*passthrough)(mr_provider_kind_t kind);
    /* When set: the adapter of a provider that serves this dialect itself
     * (a provider flag), tried before `adapter`; NULL when p does not. */
    const mr_adapter_t *(*native)(mr_endpoint_t ep, const mr_provider_t *p);
} mr_inbound_t;

extern const mr_inbound_t mr_inbound_chat;
extern const mr_inbound_t mr_inbound_messages;
extern const mr_inbound_t mr_inbound_responses; /* responses_inbound.c */

/* The dialect of an endpoint; chat for the gateway's own answers. */
const mr_inbound_t *mr_inbound_of(mr_endpoint_t ep);

/* The adapter that serves an attempt of endpoint ep on provider p in
 * dialect in: the provider's native one if it has one, else its kind's;
 * NULL when this build has none. */
const mr_adapter_t *mr_inbound_adapter(const mr_inbound_t *in, mr_endpoint_t ep,
                                       const mr_provider_t *p);

/* Whether requests of ep are conversations (chat, messages, responses)
 * and may stream. */
int mr_inbound_is_conversation(mr_endpoint_t ep);

/* count_tokens for a target without one: {"input_tokens":N}, N the
 * request body's bytes / 4 rounded up (MR_INBOUND_ESTIMATE_METHOD, sent
 * in the x-meridian-token-estimate header), malloc'd. NULL: out of memory. */
#define MR_INBOUND_ESTIMATE_METHOD "bytes/4"
char *mr_inbound_token_estimate(size_t body_len, size_t *len);

#endif
