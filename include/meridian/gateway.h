/*
 * gateway — a worker's request path: the MHD access and completion
 * callbacks, the in-flight request list, the config generation new requests
 * start under (whose snapshot holds the process-wide retry budget,
 * breakers and limits) and the random sources for request ids and backoff
 * jitter.
 *
 * The worker embeds one mr_gateway_t, hands it the loop, server, upstream
 * and shared services (mr_gateway_init) and passes it as MHD's `cls`. It
 * owns the worker's memory budget (memacct.h), sized from the generation
 * new requests use. The
 * gateway includes the layers below it (dispatch, proxy, observe, request,
 * attempt) and nothing above: it calls the worker back only through
 * `on_request_freed` (after each request's memory is gone), so that a drain
 * can finish.
 *
 * Everything runs on the worker's loop thread.
 */
#ifndef MERIDIAN_GATEWAY_H
#define MERIDIAN_GATEWAY_H

#include "meridian/generation.h"
#include "meridian/health.h"
#include "meridian/request.h"

#include <microhttpd.h>
#include <stddef.h>
#include <stdint.h>

typedef struct mr_gateway {
    mr_request_env_t env;   /* what every request borrows */
    mr_memacct_t mem;       /* limits.worker_memory_bytes: bytes its requests hold */
    mr_pool_cache_t chunks; /* idle arena chunks, reused by the next requests */
    mr_request_t *spare;    /* freed request objects kept for reuse (a list) */
    size_t n_spare;
    mr_generation_t *gen;   /* new requests use it; one reference */
    mr_request_t *requests; /* in flight */
    size_t n_requests;
    size_t peak_requests; /* most in flight since the last mr_gateway_trim */
    uint64_t started;     /* requests ever started */
    uint64_t trimmed_at;  /* `started` at the last trim with nothing in flight */
    int trim_heap;        /* released: mr_gateway_trim trims the heap next */
    uint64_t rng[2];      /* request ids */
    uint64_t backoff_rng;
} mr_gateway_t;

typedef struct mr_gateway_opts {
    uv_loop_t *loop;
    mr_server_t *server; /* may not be started yet */
    mr_upstream_t *upstream;
    mr_metrics_t *metrics;
    mr_reqlog_t *reqlog;
    mr_status_t *status;
    unsigned worker;
    void (*on_request_freed)(void *ud);
    void *ud;
} mr_gateway_opts_t;

/* Takes over `gen`'s reference. Cannot fail. */
void mr_gateway_init(mr_gateway_t *gw, const mr_gateway_opts_t *o, mr_generation_t *gen);
/* Every request must have been freed. Releases the generation. */
void mr_gateway_free(mr_gateway_t *gw);

/* New requests use `gen` from now on (the reference passes to the gateway;
 * requests in flight keep theirs). */
void mr_gateway_use(mr_gateway_t *gw, mr_generation_t *gen);
const mr_generation_t *mr_gateway_generation(const mr_gateway_t *gw);
size_t mr_gateway_in_flight(const mr_gateway_t *gw);
/* Gives memory back once traffic has fallen; call from a timer, off the
 * request path, once a period. When at most half the requests of the last
 * period's peak are in flight and requests came since the last trim with
 * nothing in flight, frees the spare request objects, idle arena chunks and
 * idle upstream transfers and connections (mr_upstream_trim) and returns
 * MR_TRIM_RELEASED: call again on the next loop turn (their handles' close
 * callbacks free them in between), and that call returns free heap to the
 * system when glibc holds at least MR_GATEWAY_TRIM_MIN bytes free
 * (malloc_trim: every arena, so every worker's). */
#define MR_GATEWAY_TRIM_MIN (16u << 20)
typedef enum { MR_TRIM_NONE, MR_TRIM_RELEASED, MR_TRIM_HEAP } mr_gateway_trim_t;
mr_gateway_trim_t mr_gateway_trim(mr_gateway_t *gw);

/* MHD_AccessHandlerCallback; cls is the mr_gateway_t. */
enum MHD_Result mr_gateway_handle(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls);
/* MHD_RequestCompletedCallback; cls is the mr_gateway_t. */
void mr_gateway_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                          enum MHD_RequestTerminationCode toe);
/* Drain deadline reached: abort every in-flight request (upstream transfers
 * cancelled, suspended connections resumed so MHD closes them). */
void mr_gateway_abort_all(mr_gateway_t *gw);

#endif
