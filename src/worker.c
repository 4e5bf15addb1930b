#include "meridian/worker.h"

#include "meridian/gateway.h"
#include "meridian/log.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

static void add_model(json_t *data, const char *id, const char *owner)
{
    json_t *m = json_object();
    json_object_set_new(m, "id", json_string(id));
    json_object_set_new(m, "object", json_string("model"));
    json_object_set_new(m, "created", json_integer(0));
    json_object_set_new(m, "owned_by", json_string(owner));
    json_array_append_new(data, m);
}

static int has_model(json_t *data, const char *id)
{
    size_t i;
    json_t *m;
    json_array_foreach(data, i, m)
    {
        if (strcmp(json_string_value(json_object_get(m, "id")), id) == 0)
            return 1;
    }
    return 0;
}

static void add_provider_model(json_t *data, const mr_provider_t *p, const char *model)
{
    char id[512];

    if (!p->enabled)
        return;
    snprintf(id, sizeof(id), "%s/%s", p->name, model);
    if (!has_model(data, id))
        add_model(data, id, p->vendor);
}

/* GET /v1/models never changes while a config is live: build it once. */
static int build_models(mr_generation_t *g)
{
    const mr_config_t *cfg = g->cfg;
    json_t *root = json_object(), *data = json_array();

    for (size_t i = 0; i < cfg->n_routes; i++)
        add_model(data, cfg->routes[i].name, "meridian");
    for (size_t i = 0; i < cfg->n_routes; i++)
        for (size_t t = 0; t < cfg->routes[i].n_targets; t++)
            add_provider_model(data, cfg->routes[i].targets[t].provider,
                               cfg->routes[i].targets[t].model);
    for (size_t i = 0; i < cfg->n_providers; i++)
        for (size_t m = 0; m < cfg->providers[i].n_models; m++)
            add_provider_model(data, &cfg->providers[i], cfg->providers[i].models[m]);
    json_object_set_new(root, "object", json_string("list"));
    json_object_set_new(root, "data", data);
    g->models_body = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (!g->models_body)
        return -1;
    g->models_len = strlen(g->models_body);
    return 0;
}

static mr_generation_t *generation_new(const mr_worker_t *w, const mr_config_t *cfg,
                                       mr_config_t *owned, unsigned id, uint64_t seed)
{
    mr_generation_t *g = calloc(1, sizeof(*g));
    if (!g)
        return NULL;
    if (!(g->mv = mr_metrics_view_new(w->shared->metrics, (unsigned)w->index, cfg))) {
        free(g);
        return NULL;
    }
    g->cfg = cfg;
    g->owned = owned;
    g->id = id;
    g->refs = 1;
    if (mr_softstate_mem_init(&g->ss, cfg, seed) < 0) {
        mr_metrics_view_free(g->mv);
        free(g);
        return NULL;
    }
    mr_health_opts_t ho = {cfg->health.failure_threshold, cfg->health.cooldown_ms,
                           cfg->health.max_cooldown_ms, cfg->health.probe_timeout_ms};
    if (mr_health_init(&g->health, cfg->n_target_ids, &ho) < 0) {
        mr_softstate_mem_free(&g->ss);
        mr_metrics_view_free(g->mv);
        free(g);
        return NULL;
    }
    g->inflight = calloc(cfg->n_providers ? cfg->n_providers : 1, sizeof(*g->inflight));
    if (!g->inflight || build_models(g) < 0) {
        free(g->inflight);
        mr_health_free(&g->health);
        mr_softstate_mem_free(&g->ss);
        mr_metrics_view_free(g->mv);
        free(g);
        return NULL;
    }
    return g;
}

mr_generation_t *mr_worker_acquire(mr_worker_t *w)
{
    w->gen->refs++;
    return w->gen;
}

void mr_worker_release(mr_generation_t *g)
{
    if (!g || --g->refs > 0)
        return;
    free(g->models_body);
    free(g->inflight);
    mr_health_free(&g->health);
    mr_softstate_mem_free(&g->ss);
    mr_metrics_view_free(g->mv);
    mr_config_free(g->owned);
    free(g);
}

static void init_retry_budget(mr_worker_t *w, const mr_config_t *cfg)
{
    mr_retry_budget_opts_t o = {cfg->retry_budget.ratio, cfg->retry_budget.window_s,
                                cfg->retry_budget.min_retries_per_s};
    mr_retry_budget_init(&w->retry_budget, &o);
}

/* Breaker state follows a (provider, model) pair across reloads, so a
 * reload does not hand a broken host fresh traffic. */
static void carry_health(mr_generation_t *to, const mr_generation_t *from)
{
    const mr_config_t *nc = to->cfg, *oc = from->cfg;
    size_t *map = malloc((nc->n_target_ids ? nc->n_target_ids : 1) * sizeof(*map));

    if (!map)
        return; /* health starts fresh: safe, only less informed */
    for (size_t i = 0; i < nc->n_target_ids; i++)
        map[i] = SIZE_MAX;
    for (size_t r = 0; r < nc->n_routes; r++)
        for (size_t t = 0; t < nc->routes[r].n_targets; t++) {
            const mr_target_t *nt = &nc->routes[r].targets[t];
            for (size_t r2 = 0; r2 < oc->n_routes && map[nt->id] == SIZE_MAX; r2++)
                for (size_t t2 = 0; t2 < oc->routes[r2].n_targets; t2++) {
                    const mr_target_t *ot = &oc->routes[r2].targets[t2];
                    if (strcmp(ot->provider->name, nt->provider->name) == 0 &&
                        strcmp(ot->model, nt->model) == 0) {
                        map[nt->id] = ot->id;
                        break;
                    }
                }
        }
    mr_health_carry(&to->health, &from->health, map);
    free(map);
}

static int same_text(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

/* SIGHUP: a new generation for new requests; requests in flight keep theirs.
 * A file that does not load changes nothing. */
static void reload(mr_worker_t *w)
{
    char err[1024];
    mr_config_t *cfg = NULL;
    const mr_config_t *old = w->gen->cfg;

    if (mr_config_load_file(w->config_path, &cfg, err, sizeof(err)) < 0 ||
        (w->listen_override &&
         mr_config_set_listen(cfg, w->listen_override, err, sizeof(err)) < 0) ||
        mr_config_check_exposure(cfg, err, sizeof(err)) < 0) {
        mr_error("worker %d: reload rejected, still serving generation %u: %s", w->index,
                 w->gen->id, err);
        mr_config_free(cfg);
        return;
    }
    if (!same_text(cfg->access_log, old->access_log) ||
        !same_text(cfg->audit.path, old->audit.path) || cfg->audit.bodies != old->audit.bodies)
        mr_warn("worker %d: access_log and audit changes take a restart; keeping the open files",
                w->index);
    if (strcmp(cfg->listen_host, old->listen_host) != 0 || cfg->listen_port != old->listen_port)
        mr_warn("worker %d: a new listen address takes a restart; still on %s:%u", w->index,
                old->listen_host, (unsigned)old->listen_port);
    mr_generation_t *g = generation_new(w, cfg, cfg, w->gen->id + 1, w->rng[0] ^ w->gen->id);
    if (!g) {
        mr_error("worker %d: reload failed: out of memory", w->index);
        mr_config_free(cfg);
        return;
    }
    carry_health(g, w->gen);
    init_retry_budget(w, cfg);
    mr_worker_release(w->gen);
    w->gen = g;
    mr_info("worker %d: config generation %u live (%zu providers, %zu routes)", w->index, g->id,
            cfg->n_providers, cfg->n_routes);
}

static void finish_drain(mr_worker_t *w)
{
    if (w->stopped)
        return;
    w->stopped = 1;
    uv_timer_stop(&w->drain_timer);
    mr_server_stop(&w->server);
    mr_upstream_close(&w->upstream);
    uv_close((uv_handle_t *)&w->sigterm, NULL);
    uv_close((uv_handle_t *)&w->sigint, NULL);
    uv_close((uv_handle_t *)&w->sighup, NULL);
    uv_close((uv_handle_t *)&w->sigusr1, NULL);
    uv_close((uv_handle_t *)&w->status_timer, NULL);
    uv_close((uv_handle_t *)&w->drain_timer, NULL);
}

void mr_worker_request_ended(mr_worker_t *w)
{
    if (w->draining && w->n_requests == 0)
        finish_drain(w);
}

static void on_drain_timeout(uv_timer_t *t)
{
    mr_worker_t *w = t->data;

    if (w->draining == 1) {
        mr_warn("drain deadline reached with %zu request(s) in flight; aborting them",
                w->n_requests);
        w->draining = 2;
        mr_gateway_abort_all(w);
        if (w->n_requests == 0) {
            finish_drain(w);
            return;
        }
        /* Aborted connections close on the next MHD run; give them a short,
         * bounded moment, then stop regardless. */
        uv_timer_start(&w->drain_timer, on_drain_timeout, 1000, 0);
        return;
    }
    finish_drain(w);
}

static void on_signal(uv_signal_t *s, int signum)
{
    mr_worker_t *w = s->data;

    if (signum == SIGHUP) {
        if (!w->draining)
            reload(w);
        return;
    }
    if (signum == SIGUSR1) {
        mr_info("SIGUSR1: reopening the access log and audit file");
        mr_reqlog_reopen(w->shared->reqlog);
        return;
    }
    if (w->draining) {
        mr_warn("second signal: stopping now");
        w->draining = 2;
        mr_gateway_abort_all(w);
        uv_timer_start(&w->drain_timer, on_drain_timeout, 200, 0);
        return;
    }
    mr_info("%s: draining %zu in-flight request(s) for up to %u ms", strsignal(signum),
            w->n_requests, w->gen->cfg->timeouts.drain_ms);
    w->draining = 1;
    mr_server_quiesce(&w->server);
    if (w->n_requests == 0) {
        finish_drain(w);
        return;
    }
    uv_timer_start(&w->drain_timer, on_drain_timeout, w->gen->cfg->timeouts.drain_ms, 0);
}

static void on_status_timer(uv_timer_t *t)
{
    mr_worker_t *w = t->data;
    mr_status_sample(w->shared->status);
}

int mr_worker_init(mr_worker_t *w, int index, const mr_config_t *cfg, const char *config_path,
                   const char *listen_override, const mr_shared_t *shared, int listen_fd, char *err,
                   size_t errlen)
{
    memset(w, 0, sizeof(*w));
    w->index = index;
    w->shared = shared;
    w->config_path = config_path;
    w->listen_override = listen_override;
    if (getrandom(w->rng, sizeof(w->rng), 0) != sizeof(w->rng)) {
        w->rng[0] = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)w;
        w->rng[1] = 0x9E3779B97F4A7C15ull;
    }
    w->rng[1] |= 1; /* xorshift needs a non-zero state */
    w->backoff_rng = w->rng[0] | 1;
    if (uv_loop_init(&w->loop) != 0) {
        snprintf(err, errlen, "could not create the event loop");
        return -1;
    }
    if (!(w->gen = generation_new(w, cfg, NULL, 0, w->rng[0] ^ (uint64_t)index))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    init_retry_budget(w, cfg);
    if (mr_upstream_init(&w->upstream, &w->loop) < 0) {
        snprintf(err, errlen, "could not initialise libcurl's multi interface");
        return -1;
    }
    mr_server_opts_t so = {
        .listen_fd = listen_fd,
        .max_connections = cfg->limits.max_connections,
        .client_idle_s = cfg->timeouts.client_idle_s,
        /* MHD keeps the raw headers and ~60 bytes per parsed header in this
         * pool: at header limit + 16 KiB a request of 350 small headers
         * (10 KiB, within our limit) got MHD's HTML 431; twice the limit
         * leaves room for ~500 headers, so that we, not MHD, answer. */
        .connection_memory = cfg->limits.max_header_bytes * 2 + 16384,
        .handler = mr_gateway_handle,
        .completed = mr_gateway_completed,
        .cls = w,
    };
    if (mr_server_start(&w->server, &w->loop, &so, err, errlen) < 0)
        return -1;
    uv_signal_init(&w->loop, &w->sigterm);
    uv_signal_init(&w->loop, &w->sigint);
    uv_signal_init(&w->loop, &w->sighup);
    uv_signal_init(&w->loop, &w->sigusr1);
    uv_timer_init(&w->loop, &w->status_timer);
    uv_timer_init(&w->loop, &w->drain_timer);
    w->sigterm.data = w->sigint.data = w->sighup.data = w->drain_timer.data = w;
    w->sigusr1.data = w->status_timer.data = w;
    uv_signal_start(&w->sigterm, on_signal, SIGTERM);
    uv_signal_start(&w->sigint, on_signal, SIGINT);
    uv_signal_start(&w->sighup, on_signal, SIGHUP);
    if (index == 0) {
        /* one reopen and one sampler per process, not per worker */
        uv_signal_start(&w->sigusr1, on_signal, SIGUSR1);
        uv_timer_start(&w->status_timer, on_status_timer, MR_STATUS_STEP_MS, MR_STATUS_STEP_MS);
        uv_unref((uv_handle_t *)&w->status_timer);
    }
    return 0;
}

int mr_worker_run(mr_worker_t *w)
{
    uv_run(&w->loop, UV_RUN_DEFAULT);
    mr_info("worker %d stopped", w->index);
    return 0;
}

void mr_worker_free(mr_worker_t *w)
{
    mr_worker_release(w->gen);
    w->gen = NULL;
    uv_loop_close(&w->loop);
}
