/*
 * worker — one event loop and everything that runs on it.
 *
 * A worker context owns a libuv loop, the HTTP server (MHD on that loop), the
 * upstream client (curl multi on that loop), the list of in-flight requests
 * and the per-provider request templates (URLs, header lists) derived from
 * the shared read-only config. Nothing here is global: more workers are more
 * contexts, each used only by the thread that runs mr_worker_run.
 *
 * The config is borrowed and must outlive the worker.
 */
#ifndef MERIDIAN_WORKER_H
#define MERIDIAN_WORKER_H

#include "meridian/adapter.h"
#include "meridian/config.h"
#include "meridian/server.h"
#include "meridian/upstream.h"

#include <stdint.h>
#include <uv.h>

/* Request templates for one provider, built once per worker. */
typedef struct mr_provider_rt {
    char *url[MR_EP_COUNT];
    struct curl_slist *headers; /* Content-Type, Authorization (secret), Expect */
} mr_provider_rt_t;

typedef struct mr_request mr_request_t;

typedef struct mr_worker {
    uv_loop_t loop;
    const mr_config_t *cfg;
    mr_server_t server;
    mr_upstream_t upstream;
    mr_provider_rt_t *prov; /* indexed like cfg->providers */
    char *models_body;      /* GET /v1/models, built once */
    size_t models_len;
    mr_request_t *requests; /* in flight, intrusive list */
    size_t n_requests;
    uint64_t rng[2];
    uv_signal_t sigterm;
    uv_signal_t sigint;
    uv_timer_t drain_timer;
    int draining;
    int stopped;
} mr_worker_t;

/* Builds the worker around an already listening socket (ownership of
 * listen_fd passes to the worker). 0, or -1 with err. */
int mr_worker_init(mr_worker_t *w, const mr_config_t *cfg, int listen_fd, char *err, size_t errlen);
/* Runs until SIGINT/SIGTERM drained everything; returns the process exit code. */
int mr_worker_run(mr_worker_t *w);
/* Frees what mr_worker_init built; call after mr_worker_run returned. */
void mr_worker_free(mr_worker_t *w);

/* Index of a provider inside cfg->providers. */
static inline size_t mr_worker_provider_index(const mr_worker_t *w, const mr_provider_t *p)
{
    return (size_t)(p - w->cfg->providers);
}

/* Called by the gateway when a request ends, to let a drain finish. */
void mr_worker_request_ended(mr_worker_t *w);

#endif
