#include "meridian/worker.h"

#include "meridian/gateway.h"
#include "meridian/log.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

static const char *const endpoint_suffix[MR_EP_COUNT] = {"/chat/completions", "/completions",
                                                         "/embeddings"};

static char *concat(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *p = malloc(la + lb + 1);
    if (p) {
        memcpy(p, a, la);
        memcpy(p + la, b, lb + 1);
    }
    return p;
}

static int build_provider_rt(mr_worker_t *w)
{
    const mr_config_t *cfg = w->cfg;

    w->prov = calloc(cfg->n_providers ? cfg->n_providers : 1, sizeof(*w->prov));
    if (!w->prov)
        return -1;
    for (size_t i = 0; i < cfg->n_providers; i++) {
        const mr_provider_t *p = &cfg->providers[i];
        mr_provider_rt_t *rt = &w->prov[i];
        struct curl_slist *h = NULL, *tmp;

        for (int e = 0; e < MR_EP_COUNT; e++) {
            rt->url[e] = concat(p->base_url, endpoint_suffix[e]);
            if (!rt->url[e])
                return -1;
        }
        /* curl adds "Expect: 100-continue" to larger POSTs, which costs a
         * round trip per request; providers do not need it. */
        const char *fixed[] = {"Content-Type: application/json",
                               "Expect:", "User-Agent: meridian/" MERIDIAN_VERSION};
        for (size_t k = 0; k < sizeof(fixed) / sizeof(fixed[0]); k++) {
            if (!(tmp = curl_slist_append(h, fixed[k])))
                goto oom;
            h = tmp;
        }
        if (p->api_key && p->api_key[0]) {
            char *auth = concat("Authorization: Bearer ", p->api_key);
            if (!auth)
                goto oom;
            tmp = curl_slist_append(h, auth);
            /* The copy in curl's list is the only one kept; wipe ours. */
            memset(auth, 0, strlen(auth));
            free(auth);
            if (!tmp)
                goto oom;
            h = tmp;
        }
        rt->headers = h;
        continue;
    oom:
        curl_slist_free_all(h);
        return -1;
    }
    return 0;
}

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
static int build_models(mr_worker_t *w)
{
    const mr_config_t *cfg = w->cfg;
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
    w->models_body = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (!w->models_body)
        return -1;
    w->models_len = strlen(w->models_body);
    return 0;
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

    if (w->draining) {
        mr_warn("second signal: stopping now");
        w->draining = 2;
        mr_gateway_abort_all(w);
        uv_timer_start(&w->drain_timer, on_drain_timeout, 200, 0);
        return;
    }
    mr_info("%s: draining %zu in-flight request(s) for up to %u ms", strsignal(signum),
            w->n_requests, w->cfg->timeouts.drain_ms);
    w->draining = 1;
    mr_server_quiesce(&w->server);
    if (w->n_requests == 0) {
        finish_drain(w);
        return;
    }
    uv_timer_start(&w->drain_timer, on_drain_timeout, w->cfg->timeouts.drain_ms, 0);
}

int mr_worker_init(mr_worker_t *w, const mr_config_t *cfg, int listen_fd, char *err, size_t errlen)
{
    memset(w, 0, sizeof(*w));
    w->cfg = cfg;
    if (getrandom(w->rng, sizeof(w->rng), 0) != sizeof(w->rng)) {
        w->rng[0] = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)w;
        w->rng[1] = 0x9E3779B97F4A7C15ull;
    }
    w->rng[1] |= 1; /* xorshift needs a non-zero state */
    if (uv_loop_init(&w->loop) != 0) {
        snprintf(err, errlen, "could not create the event loop");
        return -1;
    }
    if (build_provider_rt(w) < 0 || build_models(w) < 0) {
        snprintf(err, errlen, "out of memory building provider templates");
        return -1;
    }
    if (mr_upstream_init(&w->upstream, &w->loop) < 0) {
        snprintf(err, errlen, "could not initialise libcurl's multi interface");
        return -1;
    }
    mr_server_opts_t so = {
        .listen_fd = listen_fd,
        .max_connections = cfg->limits.max_connections,
        .client_idle_s = cfg->timeouts.client_idle_s,
        /* MHD keeps headers in this pool; leave room above our own header
         * limit so we, not MHD, answer oversized headers (in JSON). */
        .connection_memory = cfg->limits.max_header_bytes * 2 + 16384,
        .handler = mr_gateway_handle,
        .completed = mr_gateway_completed,
        .cls = w,
    };
    if (mr_server_start(&w->server, &w->loop, &so, err, errlen) < 0)
        return -1;
    uv_signal_init(&w->loop, &w->sigterm);
    uv_signal_init(&w->loop, &w->sigint);
    uv_timer_init(&w->loop, &w->drain_timer);
    w->sigterm.data = w->sigint.data = w->drain_timer.data = w;
    uv_signal_start(&w->sigterm, on_signal, SIGTERM);
    uv_signal_start(&w->sigint, on_signal, SIGINT);
    return 0;
}

int mr_worker_run(mr_worker_t *w)
{
    uv_run(&w->loop, UV_RUN_DEFAULT);
    mr_info("stopped");
    return 0;
}

void mr_worker_free(mr_worker_t *w)
{
    if (w->prov) {
        for (size_t i = 0; i < w->cfg->n_providers; i++) {
            for (int e = 0; e < MR_EP_COUNT; e++)
                free(w->prov[i].url[e]);
            curl_slist_free_all(w->prov[i].headers);
        }
        free(w->prov);
        w->prov = NULL;
    }
    free(w->models_body);
    w->models_body = NULL;
    uv_loop_close(&w->loop);
}
