/*
 * attempt — one upstream try of a request (h2o's rp_generator_t): the
 * candidate, its breaker slot, the adapter's input and upstream request, the
 * forwarded client headers, the stream translator, the transfer, the answer's
 * status and body or stream buffer, timing, and how it ended (failure.h).
 *
 * Life: mr_attempt_new -> mr_attempt_build -> mr_attempt_start -> events ->
 * mr_attempt_free. Nothing is reset between tries: the next try is a new
 * object. The owner (the proxy) hears of the transfer through one callback;
 * it decides what to do (commit, fail over, finish) and frees the attempt.
 * A committed streaming attempt lives on after its transfer until the
 * client has read its buffer.
 *
 * Breaker rule: every attempt either reports one outcome to its target's
 * breaker (sent and ended for a reason mr_failure_reaches_breaker accepts —
 * a committed stream when it ends —, or a committed probe) or gives its
 * probe slot back; mr_attempt_free guarantees it.
 * The same for the provider's max_inflight slot the owner took for it:
 * given back when the transfer ends, or by mr_attempt_free.
 *
 * A non-streamed 2xx answer is buffered whole (validated, usage read, a
 * failover possible) up to relay_max (limits.stream_buffer_bytes) or what
 * the memory budget lets it hold; a larger one from a passthrough dialect
 * is relayed like a stream: OUTPUT asks the owner to commit, the client
 * drains `out` and the upstream is paused while `out` is full. Such an
 * answer is not checked as JSON; its usage is read from its last bytes.
 *
 * Fields without `_` are read-only for the owner. Loop thread only. Events
 * other than DONE come from inside libcurl: the owner must not free, cancel
 * or unpause the attempt there. DONE comes from outside: the owner may free
 * the attempt and start another.
 */
#ifndef MERIDIAN_ATTEMPT_H
#define MERIDIAN_ATTEMPT_H

#include "meridian/adapter.h"
#include "meridian/buf.h"
#include "meridian/error.h"
#include "meridian/failure.h"
#include "meridian/generation.h"
#include "meridian/memacct.h"
#include "meridian/pool.h"
#include "meridian/inbound.h"
#include "meridian/reqlog.h"
#include "meridian/router.h"
#include "meridian/upstream.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#define MR_ATTEMPT_MAX_FORWARD 32                     /* client headers forwarded per attempt */
#define MR_ATTEMPT_ERROR_BODY_MAX ((size_t)64 * 1024) /* upstream error bodies kept */
#define MR_ATTEMPT_TAIL 4096 /* a relayed answer's last bytes, kept for its usage */

typedef struct mr_attempt mr_attempt_t;

typedef enum {
    MR_ATTEMPT_HEAD,     /* the response head arrived (status, ctype) */
    MR_ATTEMPT_PROGRESS, /* stream bytes accepted: the upstream is alive */
    MR_ATTEMPT_PAUSED,   /* `out` is full: the upstream waits until it drains */
    MR_ATTEMPT_OUTPUT,   /* client-bound bytes were appended to `out` */
    MR_ATTEMPT_DONE,     /* the transfer is over: failure, error, status final */
} mr_attempt_event_t;

typedef void (*mr_attempt_cb)(void *owner, mr_attempt_t *a, mr_attempt_event_t ev);

/* Returns the value of the client's request header `name`, or NULL. */
typedef const char *(*mr_header_fn)(void *ud, const char *name);

typedef struct mr_attempt_args {
    const mr_candidate_t *cand;
    size_t health_id;    /* breaker slot from mr_generation_acquire_target; SIZE_MAX: none */
    bool probe;          /* ... holding the half-open probe */
    bool inflight_taken; /* a max_inflight slot of the provider (mr_generation_inflight_take) */
    mr_generation_t *gen;
    uv_loop_t *loop;
    /* the client's request; all borrowed for the attempt's life */
    const mr_inbound_t *inbound; /* its dialect (NULL: chat) */
    mr_endpoint_t endpoint;
    int stream;
    int client_wants_usage;
    const char *body;
    size_t body_len;
    const mr_json_scan_t *scan; /* the body's scan (adapter.h) */
    const json_t *json;         /* NULL unless a translating adapter needs it */
    mr_adapter_conv_t *conv;    /* the request's conversation model, parsed at most once */
    void *client_ctx;           /* the dialect's request state (mr_adapter_in_t.client_ctx) */
    mr_header_fn header;
    void *header_ud;
    mr_memhold_t *mem; /* the request's share of the worker's budget: the upstream
                          copy of the body and the answer buffer are charged to it */
    mr_pool_t *pool;   /* the request's arena: the attempt, its header lines and a relay's tail come
                          from it (NULL: malloc'd) and outlive mr_attempt_free */
    const char *request_id; /* for log lines */
    mr_attempt_cb cb;
    void *owner;
} mr_attempt_args_t;

struct mr_attempt {
    const mr_candidate_t *cand;
    size_t health_id; /* its target's breaker, SIZE_MAX when untracked */
    const mr_adapter_t *adapter;
    int stream;
    long status;      /* HTTP status, 0 before the head */
    long retry_after; /* the answer's Retry-After seconds, -1 when none */
    char ctype[128];  /* the answer's Content-Type, "" when none */
    int got_head;
    mr_buf_t out;             /* the buffered body, or the client-bound stream buffer */
    size_t relay_max;         /* what `out` holds for a client before the upstream is paused */
    int relaying;             /* a non-streamed 2xx answer larger than relay_max: relayed as it
                                 comes (passthrough dialects), the client reading `out` */
    long long content_length; /* the answer's Content-Length, -1 when not given */
    mr_usage_t usage;         /* once the answer is complete; -1 when unknown */
    int committed;            /* the client has the head: `out` is the client's */
    int paused;               /* the upstream waits for `out` to drain */
    int stream_errored;       /* the translator ended the stream with an error event */
    mr_failure_t failure;     /* MR_FAIL_NONE until it fails */
    unsigned resends;         /* the transport re-sent the request by itself */
    char error[160];          /* the failure for the log and audit (key scrubbed), "" when none */
    uint64_t start_ns;        /* sent (or created) */
    uint32_t ms;              /* duration, set when it ends */

    /* private */
    mr_attempt_args_t _args;
    mr_adapter_in_t _in;
    char *_fwd[MR_ATTEMPT_MAX_FORWARD + 1];
    mr_adapter_req_t _req;
    size_t _req_charge; /* the upstream body's bytes charged to _args.mem */
    mr_stream_xlate_t *_xl;
    mr_transfer_t *_xfer;
    const mr_provider_t *_inflight_on;
    int _sent;             /* the transfer started: the upstream got the request */
    int _reported;         /* the breaker heard the outcome, or the probe went back */
    int _ended;            /* mr_attempt_end ran */
    mr_failure_t _invalid; /* why on_data aborted the transfer, read in DONE */
    int _paused_once;      /* debug log once per attempt */
    uint64_t _relayed;     /* bytes of a relayed answer received */
    char *_tail;           /* its last MR_ATTEMPT_TAIL bytes: where its usage is */
    size_t _tail_len;
};

/* A new attempt on args->cand, owning the breaker and max_inflight slots in
 * args. NULL when out of memory (the slots are given back). */
mr_attempt_t *mr_attempt_new(const mr_attempt_args_t *args);

/* Builds the upstream request (adapter, forwarded headers, translator).
 *   0   ready to start
 *   -1  failed before anything was sent (a->failure: UNSUPPORTED,
 *       NO_MEMORY): an attempt, to record and free
 *   -2  this dialect cannot express the request: *e is the client's 400
 *       (or a 503 `overloaded`: the worker's budget cannot take the
 *       upstream copy of the body now); not an attempt (free it, try
 *       another candidate) */
int mr_attempt_build(mr_attempt_t *a, mr_error_t *e);

/* Sends it. 0, or -1 with a->failure set (curl refused the transfer). */
int mr_attempt_start(mr_attempt_t *a, mr_upstream_t *u, long connect_timeout_ms);

/* True while its transfer runs. */
bool mr_attempt_running(const mr_attempt_t *a);

/* Stops the transfer now (a timer fired, the client left); ends the attempt
 * with `failure` and `why`. No callback follows. */
void mr_attempt_cancel(mr_attempt_t *a, mr_failure_t failure, const char *why);

/* The failure ends the attempt: time, latency feedback and breaker report
 * (once). Runs by itself before DONE and in mr_attempt_cancel; call it for an
 * attempt that failed in mr_attempt_build or mr_attempt_start. */
void mr_attempt_end(mr_attempt_t *a);

/* Whether a stream has written an event that carries content (text,
 * reasoning, a tool call): the commit point (proxy.h). */
bool mr_attempt_has_content(const mr_attempt_t *a);

/* The client got the response head: its bytes now belong to the client.
 * The breaker hears the stream's (or relayed answer's) outcome when it ends
 * (success, or the failure that cut it), a half-open probe's at once (a success).
 * The attempt stops borrowing the request's parse tree and conversation
 * model: no failover can need them now, and the request frees them. */
void mr_attempt_commit(mr_attempt_t *a);

/* The client's reader drained `out` below half: let the upstream go on. */
void mr_attempt_unpause(mr_attempt_t *a);

/* After commit: ends the client's stream with an SSE error event (in the
 * client's dialect) naming the provider and the failure (for one the
 * translator did not already report); `why`, which may quote curl, goes to
 * the log only. */
void mr_attempt_stream_error(mr_attempt_t *a, mr_failure_t failure, const char *why);

/* A non-2xx answer as the error body the client gets, in its dialect's
 * shape (malloc'd). */
char *mr_attempt_error_body(mr_attempt_t *a, size_t *len);

/* The history record of the attempt (provider, model, status, failure...). */
void mr_attempt_record(const mr_attempt_t *a, mr_attempt_rec_t *rec);

/* Cancels a running transfer, gives back an unreported probe, frees. NULL ok. */
void mr_attempt_free(mr_attempt_t *a);

#endif
