/*
 * responses_inbound — the OpenAI Responses API as a client dialect
 * (inbound.h's mr_inbound_responses) and the per-request state its writers
 * and adapters share: the response id, the client's body, and where (and
 * whether) the finished response is stored.
 *
 * Translated targets (chat, Anthropic, Gemini) get the body parsed by
 * responses_parse.h and answer through responses_write.h, whose final
 * response is stored before response.completed is appended (the memory
 * store has it when put returns). Providers with `responses_api` get the
 * client's bytes (openai_responses.c); their answer is stored under the
 * upstream's own id by mr_responses_req_store, also before the terminal
 * event is forwarded.
 *
 * Ownership: an mr_responses_req_t belongs to its client request (freed by
 * mr_responses_req_free, the request's client_ctx_free); it holds a
 * reference to the body it was made from and borrows the store, which
 * outlives every request. One worker thread.
 */
#ifndef MERIDIAN_RESPONSES_INBOUND_H
#define MERIDIAN_RESPONSES_INBOUND_H

#include "meridian/buf.h"
#include "meridian/respstore.h"

#include <jansson.h>
#include <stdint.h>

typedef struct mr_responses_req {
    char id[MR_RESPSTORE_ID_MAX + 1]; /* the gateway's id of a translated answer */
    long long created_at;
    json_t *request;                     /* the client's body, history resolved (owned ref) */
    const char *model;                   /* the client's model (in request) */
    const mr_respstore_backend_t *store; /* NULL: store:false, or no store */
    char scope[72];                      /* the gateway key's name, "" without keys */
    uint64_t ttl_ms;
    void *live;    /* the current translated stream's writer, for stream_fail */
    long next_seq; /* native streams: the sequence_number after the last seen */
    char upstream_id[MR_RESPSTORE_ID_MAX + 1]; /* native streams: the response's id */
    unsigned stored;                           /* entries written (tests, logs) */
} mr_responses_req_t;

/* A new state for body (referenced), NULL when out of memory. id: the new
 * response's id; store NULL keeps nothing. */
mr_responses_req_t *mr_responses_req_new(json_t *body, const char *id, long long created_at,
                                         const mr_respstore_backend_t *store, const char *scope,
                                         uint64_t ttl_ms);
void mr_responses_req_free(void *req);

/* Stores `response` (an object with its "id") with the request's input
 * items and output (sealed_output, else response.output). Nothing when the
 * request keeps nothing. 0, or -1 when it could not be stored. */
int mr_responses_req_store(mr_responses_req_t *q, const json_t *response,
                           const json_t *sealed_output);

/* A response.failed event for a native stream the gateway ends itself,
 * numbered after the upstream's events, appended to out. */
void mr_responses_native_failed(mr_responses_req_t *q, mr_buf_t *out, const char *message);

#endif
