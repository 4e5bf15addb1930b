/*
 * request — one client HTTP request as the request path's layers share it:
 * the MHD connection, what the client sent, the routing plan, the history of
 * upstream attempts, and the answer on its way out; plus the calls that
 * queue an answer on the connection.
 *
 * Layers (each its own module, none including a layer above it):
 *   gateway   creates and frees requests (MHD callbacks, the in-flight list)
 *   dispatch  the endpoint table: which handler, auth, 404/405/415/413
 *   proxy     plan -> attempts -> commit -> finish, timers, suspension
 *   admit     per-key limits and provider budgets (the limits engine)
 *   attempt   one upstream try (mr_attempt_t), created and freed per try
 *   observe   metrics, access log and audit record of a finished request
 * The fields below are grouped by the layer that writes them; any layer may
 * read them.
 *
 * Ownership: the gateway allocates the request on MHD's first call for a
 * connection's request and frees it after MHD reports completion and its uv
 * handles have closed. It owns its body, parsed JSON, model, attempt history,
 * current attempt, prepared answer and a reference to its generation, and
 * holds what they take of the worker's memory budget (`mem`, given back in
 * one go when it is freed). Every call runs on the owning worker's loop
 * thread.
 */
#ifndef MERIDIAN_REQUEST_H
#define MERIDIAN_REQUEST_H

#include "meridian/adapter.h"
#include "meridian/attempt.h"
#include "meridian/buf.h"
#include "meridian/config.h"
#include "meridian/error.h"
#include "meridian/generation.h"
#include "meridian/health.h"
#include "meridian/json_span.h"
#include "meridian/memacct.h"
#include "meridian/inbound.h"
#include "meridian/metrics.h"
#include "meridian/pool.h"
#include "meridian/reqlog.h"
#include "meridian/router.h"
#include "meridian/server.h"
#include "meridian/sha256.h"
#include "meridian/status.h"
#include "meridian/upstream.h"

#include <jansson.h>
#include <microhttpd.h>
#include <stdint.h>
#include <uv.h>

/* What requests borrow from their gateway (set once, outlives them all). */
typedef struct mr_request_env {
    uv_loop_t *loop;
    mr_server_t *server;
    mr_upstream_t *upstream;
    mr_metrics_t *metrics;
    mr_reqlog_t *reqlog;
    mr_status_t *status;
    mr_memacct_t *mem;          /* the worker's budget for bytes in flight */
    mr_pool_cache_t *chunks;    /* the worker's idle arena chunks (pool.h) */
    uint64_t *backoff_rng;      /* jitter for retries of the same target */
    unsigned worker;            /* index, for logs, metrics rows and /providers */
    void (*on_freed)(void *ud); /* after a request's memory is gone (drain) */
    void *on_freed_ud;
} mr_request_env_t;

typedef enum {
    MR_RS_BODY,      /* receiving the request body */
    MR_RS_UPSTREAM,  /* suspended while an attempt runs */
    MR_RS_RESPOND,   /* a full answer is prepared; resumed to queue it */
    MR_RS_STREAM_GO, /* first stream bytes arrived; resumed to queue the stream */
    MR_RS_STREAMING, /* streamed answer queued */
    MR_RS_ABORT,     /* client left or drain deadline: resumed to be closed */
    MR_RS_DONE,      /* answer queued */
} mr_request_state_t;

typedef struct mr_request mr_request_t;
struct mr_dispatch_row; /* dispatch.h */

struct mr_request {
    /* gateway: identity, connection, lifetime */
    const mr_request_env_t *env;
    mr_generation_t *gen; /* the config this request runs under, start to end */
    struct MHD_Connection *conn;
    mr_request_t *prev, *next; /* the gateway's in-flight list */
    mr_request_state_t state;
    char id[72];
    uint64_t start_ms; /* uv_now at creation */
    uint64_t start_ns;
    double unix_time; /* arrival, for the logs */
    uv_timer_t timer; /* the proxy's: attempt timeouts and backoff */
    uv_timer_t watch_timer;
    uv_poll_t client_poll;
    int poll_inited;
    int open_handles;
    mr_memhold_t mem; /* what it holds of the worker's budget, given back when it ends */
    mr_pool_t pool;   /* its arena: pieces that live as long as it does */

    /* dispatch: what was asked */
    const struct mr_dispatch_row *row; /* NULL: refused before a row matched */
    mr_endpoint_t endpoint;            /* MR_EP_COUNT for the gateway's own answers */
    const mr_inbound_t *inbound;       /* the client's dialect: its errors' shape (never NULL) */
    const char *allow;                 /* the Allow header of a 405 */
    unsigned method;                   /* dispatch's method bit (GET, HEAD, POST, DELETE) */
    const mr_key_t *key;               /* the gateway key that authenticated it, if keys are on */
    char path_arg[160];      /* what follows a prefix row's path: a key name, a response id
                              * [+ "/input_items"] ("" when too long) */
    size_t info_key;         /* GET /v1/gateway/keys/NAME: NAME's index */
    const char *cors_origin; /* an allowed Origin, echoed in answers (MHD's copy) */
    int preflight;           /* a CORS preflight, answered after the (empty) body */
    mr_buf_t body;
    int body_too_large;
    int body_refused;     /* the worker's budget could not take the body: 503 */
    int close_connection; /* answer with Connection: close */

    /* proxy: the body (intake.h), the plan and the attempts */
    mr_json_scan_t scan; /* the body's one scan: where its top-level members are */
    json_t *json;        /* the parsed body, built for the first translating attempt */
    json_t *models_json; /* the body's `models` and `provider`, for routing */
    json_t *provider_json;
    size_t tree_charge;         /* the trees' estimated size, charged to `mem` */
    size_t copy_credit;         /* the body's upstream copy, charged ahead (intake.h) */
    size_t conv_charge;         /* ... and the conversation model's */
    uint32_t max_output_tokens; /* max_tokens & co., 0 when absent (admit.c) */
    mr_adapter_conv_t conv; /* the body as a conversation, built by the first translating attempt */
    void *client_ctx;       /* the dialect's state of this request (Responses), or NULL ... */
    void (*client_ctx_free)(void *ctx); /* ... and who frees it (mr_proxy_free) */
    char *model;                        /* the client's model; the plan points into it */
    const char *models[MR_MAX_MODELS];
    size_t n_models;
    int stream;
    int client_wants_usage;
    int planned;
    mr_plan_t plan;
    uint64_t session_key;    /* cache affinity: the conversation's key, 0 when none */
    uint32_t session_ttl_ms; /* ... and how long a served turn pins it */
    size_t next_candidate;
    mr_attempt_rec_t *attempts; /* history: plan.max_attempts slots */
    unsigned n_attempts;
    mr_attempt_t *att;          /* the current attempt; after commit, the one streaming */
    int sent_any;               /* an attempt was sent: later ones are retries */
    int deadline_hit;           /* timeouts.request_ms passed */
    int budget_denied;          /* the retry budget stopped a failover */
    unsigned n_skipped;         /* candidates skipped: circuit open */
    unsigned n_busy;            /* candidates skipped: provider at max_inflight */
    uint64_t skipped_retry_ms;  /* soonest an open circuit closes */
    size_t last_target_id;      /* the previous attempt's target, SIZE_MAX when none */
    unsigned same_target_tries; /* backoff exponent for repeats of one target */
    mr_error_t *build_error;    /* a candidate's dialect cannot express this request
                                 * (in the arena: most requests never need one) */
    int suspended;
    int committed;          /* stream: the client has the response head */
    uint64_t hold_until_ms; /* stream: output held before content until then; 0 none */
    uint64_t idle_from_ms;  /* stream: the idle timeout counts from here (last chunk) */
    int hold_expired;       /* ... and the hold is over: commit what there is */
    int upstream_done;      /* stream: nothing more will be added to att->out */

    /* admit: limits and budgets (admit.h) */
    mr_limits_req_t lim;
    void (*admit_done)(mr_request_t *r); /* a limits call is pending */
    bool lim_attempt_open;               /* an attempt's check ran and it is not settled */
    unsigned n_over_budget;              /* candidates skipped: provider budget or state */
    const mr_candidate_t *held_cand;     /* waiting for its provider's reservation ... */
    size_t held_id;                      /* ... with its breaker slot */
    bool held_probe;

    /* the answer */
    const mr_provider_t *served_by;    /* whose answer the client got; NULL: the gateway's */
    const mr_candidate_t *served_cand; /* ... and which target */
    mr_usage_t usage;                  /* of the served answer; -1 when unknown */
    int usage_estimated;               /* observe estimated it: the upstream said nothing */
    int token_estimate;                /* count_tokens answered by the gateway's estimate */
    long retry_after_out;              /* Retry-After to send, 0 for none */
    int out_status;                    /* a prepared answer (MR_RS_RESPOND) */
    char *out_body;
    size_t out_len;
    const char *out_ctype;
    int final_status; /* HTTP status queued, 0 before */

    /* observe: what the client received */
    uint64_t first_byte_ns; /* first response byte handed to MHD, 0 before */
    int audit;              /* hash what the client receives */
    mr_sha256_t resp_sha;
    mr_buf_t resp_copy;  /* audit.bodies: the first bytes the client received */
    uint64_t resp_bytes; /* all the bytes the client received (counted without audit too) */
};

/* Queues `body` (ownership passes to MHD, freed with free) with the headers
 * every answer carries; `ctype` NULL: no Content-Type (an empty answer).
 * From inside the access handler only. */
enum MHD_Result mr_request_queue(mr_request_t *r, int status, char *body, size_t len,
                                 const char *ctype);
/* The same for a body that outlives the connection (static, or owned by the
 * request's generation): no copy. */
enum MHD_Result mr_request_queue_static(mr_request_t *r, int status, const char *body, size_t len,
                                        const char *ctype);
/* An error in the client dialect's shape (r->inbound), queued now /
 * prepared for MR_RS_RESPOND (with an optional extra member such as
 * "attempts"; borrowed). */
enum MHD_Result mr_request_error(mr_request_t *r, const mr_error_t *e);
enum MHD_Result mr_request_errorf(mr_request_t *r, int status, const char *code, const char *param,
                                  const char *fmt, ...) __attribute__((format(printf, 5, 6)));
void mr_request_prepare_error(mr_request_t *r, const mr_error_t *e, const char *extra_key,
                              json_t *extra);
/* Queues what mr_request_prepare_error (or the proxy) prepared. */
enum MHD_Result mr_request_queue_prepared(mr_request_t *r);

/* A CORS preflight's answer: 204 with the methods, the allowed request
 * headers (a list, "" for none) and how long it may be cached. */
enum MHD_Result mr_request_queue_preflight(mr_request_t *r, const char *methods,
                                           const char *headers);

/* Adds bytes the client receives to the audit digest (and copy). */
void mr_request_audit_bytes(mr_request_t *r, const char *p, size_t n);
/* The headers every answer carries: x-request-id, nosniff, attempts,
 * provenance, and for an allowed Origin the CORS ones. */
void mr_request_common_headers(const mr_request_t *r, struct MHD_Response *resp);

#endif
