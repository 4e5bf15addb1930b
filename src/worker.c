#include "meridian/worker.h"

#include "meridian/log.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const mr_config_t *config(const mr_worker_t *w)
{
    return mr_gateway_generation(&w->gateway)->cfg;
}

/* ---- reload: a snapshot posted by worker 0 -------------------------------- */

static void on_reload(uv_async_t *h)
{
    mr_worker_t *w = h->data;
    mr_snapshot_t *s = mr_reload_take(w->shared->reload, (unsigned)w->index);

    if (!s)
        return;
    const mr_generation_t *cur = mr_gateway_generation(&w->gateway);
    mr_generation_t *g =
        w->draining ? NULL : mr_generation_new(s, w->shared->metrics, (unsigned)w->index, w->sl);
    if (g) {
        mr_gateway_use(&w->gateway, g);
        mr_info("worker %d: config generation %u live (%zu providers, %zu routes)", w->index, g->id,
                g->cfg->n_providers, g->cfg->n_routes);
    } else if (!w->draining) {
        mr_error("worker %d: out of memory for generation %u; still serving generation %u",
                 w->index, s->id, cur->id);
    }
    mr_snapshot_release(s);
}

/* ---- drain ---------------------------------------------------------------- */

static void finish_drain(mr_worker_t *w)
{
    if (w->stopped)
        return;
    w->stopped = 1;
    mr_reload_detach(w->shared->reload, (unsigned)w->index);
    uv_timer_stop(&w->drain_timer);
    mr_server_stop(&w->server);
    mr_upstream_close(&w->upstream);
    /* after the last request ended: its settlement went out on this handle */
    mr_state_loop_close(w->sl);
    w->sl = NULL;
    uv_close((uv_handle_t *)&w->reload_async, NULL);
    uv_close((uv_handle_t *)&w->sigterm, NULL);
    uv_close((uv_handle_t *)&w->sigint, NULL);
    uv_close((uv_handle_t *)&w->sighup, NULL);
    uv_close((uv_handle_t *)&w->sigusr1, NULL);
    uv_close((uv_handle_t *)&w->status_timer, NULL);
    uv_close((uv_handle_t *)&w->drain_timer, NULL);
    uv_close((uv_handle_t *)&w->trim_timer, NULL);
}

static void on_request_freed(void *ud)
{
    mr_worker_t *w = ud;
    if (w->draining && mr_gateway_in_flight(&w->gateway) == 0)
        finish_drain(w);
}

static void drain_timer(mr_worker_t *w, uint64_t ms);

static void on_drain_timeout(uv_timer_t *t)
{
    mr_worker_t *w = t->data;
    size_t n = mr_gateway_in_flight(&w->gateway);

    if (w->draining == 1) {
        mr_warn("drain deadline reached with %zu request(s) in flight; aborting them", n);
        w->draining = 2;
        mr_gateway_abort_all(&w->gateway);
        if (mr_gateway_in_flight(&w->gateway) == 0) {
            finish_drain(w);
            return;
        }
        /* Aborted connections close on the next MHD run; give them a short,
         * bounded moment, then stop regardless. */
        drain_timer(w, 1000);
        return;
    }
    finish_drain(w);
}

static void drain_timer(mr_worker_t *w, uint64_t ms)
{
    if (uv_timer_start(&w->drain_timer, on_drain_timeout, ms, 0) != 0) {
        mr_error("worker %d: cannot arm the drain timer; stopping now", w->index);
        finish_drain(w);
    }
}

static void start_drain(mr_worker_t *w, int signum)
{
    if (w->draining) {
        mr_warn("second signal: stopping now");
        w->draining = 2;
        mr_gateway_abort_all(&w->gateway);
        drain_timer(w, 200);
        return;
    }
    mr_info("%s: draining %zu in-flight request(s) for up to %u ms", strsignal(signum),
            mr_gateway_in_flight(&w->gateway), config(w)->timeouts.drain_ms);
    w->draining = 1;
    mr_server_quiesce(&w->server);
    if (mr_gateway_in_flight(&w->gateway) == 0) {
        finish_drain(w);
        return;
    }
    drain_timer(w, config(w)->timeouts.drain_ms);
}

static void on_signal(uv_signal_t *s, int signum)
{
    mr_worker_t *w = s->data;

    if (signum == SIGHUP) {
        if (!w->draining)
            mr_reload_run(w->shared->reload);
        return;
    }
    if (signum == SIGUSR1) {
        mr_info("SIGUSR1: reopening the access log and audit file");
        mr_reqlog_reopen(w->shared->reqlog);
        return;
    }
    start_drain(w, signum);
}

static void on_status_timer(uv_timer_t *t)
{
    mr_worker_t *w = t->data;
    mr_status_sample(w->shared->status);
}

/* How often a worker looks whether traffic fell (issue 17: RSS back near
 * idle within a minute of a burst's end). */
#define TRIM_EVERY_MS 10000

static void on_trim_timer(uv_timer_t *t)
{
    mr_worker_t *w = t->data;
    switch (mr_gateway_trim(&w->gateway)) {
    case MR_TRIM_RELEASED:
        /* again on the next loop turn (libuv 1.44 runs a 0 ms timer
         * started from a timer callback in the same turn), then every
         * period as before */
        (void)uv_timer_start(t, on_trim_timer, 1, TRIM_EVERY_MS);
        break;
    case MR_TRIM_HEAP:
        mr_debug("worker %d: traffic fell, free heap returned to the system", w->index);
        break;
    case MR_TRIM_NONE:
        break;
    }
}

/* ---- set-up ---------------------------------------------------------------- */

/* The worker's own handles: every one initialised, and started where it
 * runs from the start; on failure every initialised one is closed. */
static int init_handles(mr_worker_t *w, char *err, size_t errlen)
{
    uv_handle_t *done[8];
    size_t n = 0;
    uv_signal_t *sigs[] = {&w->sigterm, &w->sigint, &w->sighup, &w->sigusr1};

    if (uv_async_init(&w->loop, &w->reload_async, on_reload) != 0)
        goto fail;
    done[n++] = (uv_handle_t *)&w->reload_async;
    for (size_t i = 0; i < 4; i++) {
        if (uv_signal_init(&w->loop, sigs[i]) != 0)
            goto fail;
        done[n++] = (uv_handle_t *)sigs[i];
    }
    if (uv_timer_init(&w->loop, &w->status_timer) != 0)
        goto fail;
    done[n++] = (uv_handle_t *)&w->status_timer;
    if (uv_timer_init(&w->loop, &w->drain_timer) != 0)
        goto fail;
    done[n++] = (uv_handle_t *)&w->drain_timer;
    if (uv_timer_init(&w->loop, &w->trim_timer) != 0)
        goto fail;
    done[n++] = (uv_handle_t *)&w->trim_timer;
    for (size_t i = 0; i < n; i++)
        done[i]->data = w;
    if (uv_signal_start(&w->sigterm, on_signal, SIGTERM) != 0 ||
        uv_signal_start(&w->sigint, on_signal, SIGINT) != 0 ||
        uv_timer_start(&w->trim_timer, on_trim_timer, TRIM_EVERY_MS, TRIM_EVERY_MS) != 0)
        goto fail;
    uv_unref((uv_handle_t *)&w->trim_timer);
    if (w->index == 0) {
        /* one reload, one reopen and one sampler per process, not per worker */
        if (uv_signal_start(&w->sighup, on_signal, SIGHUP) != 0 ||
            uv_signal_start(&w->sigusr1, on_signal, SIGUSR1) != 0 ||
            uv_timer_start(&w->status_timer, on_status_timer, MR_STATUS_STEP_MS,
                           MR_STATUS_STEP_MS) != 0)
            goto fail;
        uv_unref((uv_handle_t *)&w->status_timer);
    }
    return 0;

fail:
    snprintf(err, errlen, "could not set up the event loop's signal and timer handles");
    while (n)
        uv_close(done[--n], NULL);
    return -1;
}

static int start_server(mr_worker_t *w, int listen_fd, char *err, size_t errlen)
{
    const mr_config_t *cfg = config(w);
    mr_server_opts_t so = {
        .listen_fd = listen_fd,
        .max_connections = cfg->limits.max_connections,
        .max_per_ip = cfg->limits.max_connections_per_ip,
        .client_idle_s = cfg->timeouts.client_idle_s,
        .keepalive_idle_s = cfg->timeouts.keepalive_idle_s,
        /* MHD keeps the raw headers and ~60 bytes per parsed header in this
         * pool: at header limit + 16 KiB a request of 350 small headers
         * (10 KiB, within our limit) got MHD's HTML 431; twice the limit
         * leaves room for ~500 headers, so that we, not MHD, answer. */
        .connection_memory = cfg->limits.max_header_bytes * 2 + 16384,
        .handler = mr_gateway_handle,
        .completed = mr_gateway_completed,
        .cls = &w->gateway,
    };
    return mr_server_start(&w->server, &w->loop, &so, err, errlen);
}

int mr_worker_init(mr_worker_t *w, int index, mr_snapshot_t *snap, const mr_shared_t *shared,
                   int listen_fd, char *err, size_t errlen)
{
    memset(w, 0, sizeof(*w));
    w->index = index;
    w->shared = shared;
    if (uv_loop_init(&w->loop) != 0) {
        snprintf(err, errlen, "could not create the event loop");
        close(listen_fd);
        return -1;
    }
    if (shared->state && mr_state_attach(shared->state, &w->loop, &w->sl, err, errlen) < 0) {
        close(listen_fd);
        goto fail_loop;
    }
    mr_generation_t *g = mr_generation_new(snap, shared->metrics, (unsigned)index, w->sl);
    if (!g) {
        snprintf(err, errlen, "out of memory");
        close(listen_fd);
        goto fail_state;
    }
    if (mr_upstream_init(&w->upstream, &w->loop) < 0) {
        snprintf(err, errlen, "could not initialise libcurl's multi interface");
        mr_generation_release(g);
        close(listen_fd);
        goto fail_state;
    }
    mr_gateway_opts_t go = {
        .loop = &w->loop,
        .server = &w->server,
        .upstream = &w->upstream,
        .metrics = shared->metrics,
        .reqlog = shared->reqlog,
        .status = shared->status,
        .worker = (unsigned)index,
        .on_request_freed = on_request_freed,
        .ud = w,
    };
    mr_gateway_init(&w->gateway, &go, g);
    if (start_server(w, listen_fd, err, errlen) < 0) /* it owns listen_fd now */
        goto fail_upstream;
    if (init_handles(w, err, errlen) < 0)
        goto fail_server;
    mr_reload_attach(shared->reload, (unsigned)index, &w->reload_async);
    return 0;

fail_server:
    mr_server_stop(&w->server);
fail_upstream:
    mr_upstream_close(&w->upstream);
    mr_gateway_free(&w->gateway);
fail_state:
    mr_state_loop_close(w->sl);
    w->sl = NULL;
fail_loop:
    uv_run(&w->loop, UV_RUN_DEFAULT); /* close callbacks */
    uv_loop_close(&w->loop);
    return -1;
}

int mr_worker_run(mr_worker_t *w)
{
    uv_run(&w->loop, UV_RUN_DEFAULT);
    mr_info("worker %d stopped", w->index);
    return 0;
}

void mr_worker_free(mr_worker_t *w)
{
    finish_drain(w); /* a worker that never ran still has its handles open */
    uv_run(&w->loop, UV_RUN_DEFAULT);
    mr_gateway_free(&w->gateway);
    uv_loop_close(&w->loop);
}
