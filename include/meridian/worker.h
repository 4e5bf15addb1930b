/*
 * worker — one event loop and everything that runs on it.
 *
 * A worker context owns a libuv loop, the HTTP server (MHD on that loop), the
 * upstream client (curl multi on that loop), the list of in-flight requests
 * and the config generations they use. Nothing here is global: more workers are more
 * contexts, each used only by the thread that runs mr_worker_run.
 *
 */
#ifndef MERIDIAN_WORKER_H
#define MERIDIAN_WORKER_H

#include "meridian/adapter.h"
#include "meridian/config.h"
#include "meridian/health.h"
#include "meridian/metrics.h"
#include "meridian/reqlog.h"
#include "meridian/server.h"
#include "meridian/softstate.h"
#include "meridian/status.h"
#include "meridian/upstream.h"

#include <stdint.h>
#include <uv.h>

/* One loaded config and what the worker derives from it. Requests hold a
 * reference for their whole life, so a reload never changes the rules under
 * a request in flight; the generation is freed when its last user leaves. */
typedef struct mr_generation {
    const mr_config_t *cfg;
    mr_config_t *owned; /* freed with the generation; NULL for main's config */
    char *models_body;  /* GET /v1/models, built once per generation */
    size_t models_len;
    mr_softstate_mem_t ss; /* vendor shares, latencies, round robin: indexed by this config */
    mr_health_t health;    /* circuit breakers per target id; carried over on reload */
    unsigned *inflight;    /* upstream transfers per provider (index in cfg->providers) */
    mr_metrics_view_t *mv; /* this worker's metric slots for this config */
    unsigned refs;
    unsigned id; /* 0 for the start-up config, then 1, 2, ... per reload */
} mr_generation_t;

typedef struct mr_request mr_request_t;

/* Process-wide services the workers share, created by main before the
 * workers and freed after them. Each is safe for concurrent use as its
 * header describes. */
typedef struct mr_shared {
    mr_metrics_t *metrics;
    mr_reqlog_t *reqlog;
    mr_status_t *status; /* sampled by worker 0 */
} mr_shared_t;

typedef struct mr_worker {
    uv_loop_t loop;
    int index;               /* 0..workers-1, for log lines */
    mr_generation_t *gen;    /* the config new requests use */
    const char *config_path; /* re-read on SIGHUP */
    const char *listen_override;
    const mr_shared_t *shared;
    mr_server_t server;
    mr_upstream_t upstream;
    mr_request_t *requests;         /* in flight, intrusive list */
    mr_retry_budget_t retry_budget; /* retries allowed per request volume, this worker */
    uint64_t backoff_rng;           /* jitter for retries of the same target */
    size_t n_requests;
    uint64_t rng[2];
    uv_signal_t sigterm;
    uv_signal_t sigint;
    uv_signal_t sighup;
    uv_signal_t sigusr1;     /* worker 0: reopen the access log and audit file */
    uv_timer_t status_timer; /* worker 0: samples traffic for /status */
    uv_timer_t drain_timer;
    int draining;
    int stopped;
} mr_worker_t;

/* Builds the worker around an already listening socket (ownership of
 * listen_fd passes to the worker). `cfg` (borrowed, must outlive the worker)
 * is the first generation; SIGHUP re-reads `config_path` (re-applying
 * `listen_override` when not NULL). `shared` is borrowed. 0, or -1 with err. */
int mr_worker_init(mr_worker_t *w, int index, const mr_config_t *cfg, const char *config_path,
                   const char *listen_override, const mr_shared_t *shared, int listen_fd, char *err,
                   size_t errlen);
/* Runs until SIGINT/SIGTERM drained everything; returns the process exit code. */
int mr_worker_run(mr_worker_t *w);
/* Frees what mr_worker_init built; call after mr_worker_run returned. */
void mr_worker_free(mr_worker_t *w);

/* The current generation, with a reference the caller must release. */
mr_generation_t *mr_worker_acquire(mr_worker_t *w);
void mr_worker_release(mr_generation_t *gen);

/* Called by the gateway when a request ends, to let a drain finish. */
void mr_worker_request_ended(mr_worker_t *w);

#endif
