/*
 * worker — one event loop and everything that runs on it.
 *
 * A worker context owns a libuv loop, the HTTP server (MHD on that loop),
 * the upstream client (curl multi on that loop), the gateway (the request
 * path: in-flight requests and the generation they start under), its
 * handle on the shared state (a Redis connection with the redis backend),
 * its signal handlers and drain. Nothing here is global: more workers are more
 * contexts, each used only by the thread that runs mr_worker_run, except
 * for the reload wake (mr_reload_t posts to it from worker 0's thread).
 */
#ifndef MERIDIAN_WORKER_H
#define MERIDIAN_WORKER_H

#include "meridian/gateway.h"
#include "meridian/generation.h"
#include "meridian/metrics.h"
#include "meridian/reload.h"
#include "meridian/reqlog.h"
#include "meridian/respstore.h"
#include "meridian/server.h"
#include "meridian/state.h"
#include "meridian/status.h"
#include "meridian/upstream.h"

#include <stdint.h>
#include <uv.h>

/* Process-wide services the workers share, created by main before the
 * workers and freed after them. Each is safe for concurrent use as its
 * header describes. */
typedef struct mr_shared {
    mr_metrics_t *metrics;
    mr_reqlog_t *reqlog;
    mr_status_t *status; /* sampled by worker 0 */
    mr_reload_t *reload; /* SIGHUP, handled by worker 0, posted to all */
    mr_state_t *state;   /* limits, budgets, breaker hints (state.h); each worker attaches */
    /* stored Responses (respstore.h): the in-process store and its table */
    mr_respstore_mem_t *responses;
    mr_respstore_backend_t responses_be;
} mr_shared_t;

typedef struct mr_worker {
    uv_loop_t loop;
    int index; /* 0..workers-1, for log lines */
    const mr_shared_t *shared;
    mr_server_t server;
    mr_upstream_t upstream;
    mr_gateway_t gateway;
    mr_state_loop_t *sl;     /* this loop's handle on the shared state; closed at drain */
    uv_async_t reload_async; /* a snapshot was posted */
    uv_signal_t sigterm;
    uv_signal_t sigint;
    uv_signal_t sighup;      /* worker 0: reload, once for every worker */
    uv_signal_t sigusr1;     /* worker 0: reopen the access log and audit file */
    uv_timer_t status_timer; /* worker 0: samples traffic for /status */
    uv_timer_t drain_timer;
    uv_timer_t trim_timer; /* gives memory back after a burst (mr_gateway_trim) */
    int draining;
    int stopped;
} mr_worker_t;

/* Builds the worker around an already listening socket (ownership of
 * listen_fd passes to the worker, closed on failure too). Its first
 * generation is `snap` (a reference is taken). `shared` is borrowed. 0, or
 * -1 with err and nothing left to free. */
int mr_worker_init(mr_worker_t *w, int index, mr_snapshot_t *snap, const mr_shared_t *shared,
                   int listen_fd, char *err, size_t errlen);
/* Runs until SIGINT/SIGTERM drained everything; returns the process exit code. */
int mr_worker_run(mr_worker_t *w);
/* Frees what mr_worker_init built; call after mr_worker_run returned. */
void mr_worker_free(mr_worker_t *w);

#endif
