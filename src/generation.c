#include "meridian/generation.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the snapshot: config + /v1/models body, shared ---------------------- */

static int add_model(json_t *data, const char *id, const char *owner)
{
    json_t *m = json_pack("{s:s,s:s,s:i,s:s}", "id", id, "object", "model", "created", 0,
                          "owned_by", owner);
    return json_array_append_new(data, m);
}

static int has_model(const json_t *data, const char *id)
{
    size_t i;
    const json_t *m;
    json_array_foreach(data, i, m)
    {
        if (strcmp(json_string_value(json_object_get(m, "id")), id) == 0)
            return 1;
    }
    return 0;
}

static int add_provider_model(json_t *data, const mr_provider_t *p, const char *model)
{
    char id[512];

    if (!p->enabled)
        return 0;
    snprintf(id, sizeof(id), "%s/%s", p->name, model);
    return has_model(data, id) ? 0 : add_model(data, id, p->vendor);
}

/* GET /v1/models never changes while a config is live: build it once. */
static int build_models(mr_snapshot_t *s)
{
    const mr_config_t *cfg = s->cfg;
    json_t *data = json_array();
    int rc = data ? 0 : -1;

    for (size_t i = 0; rc == 0 && i < cfg->n_routes; i++)
        rc = add_model(data, cfg->routes[i].name, "meridian");
    for (size_t i = 0; rc == 0 && i < cfg->n_routes; i++)
        for (size_t t = 0; rc == 0 && t < cfg->routes[i].n_targets; t++)
            rc = add_provider_model(data, cfg->routes[i].targets[t].provider,
                                    cfg->routes[i].targets[t].model);
    for (size_t i = 0; rc == 0 && i < cfg->n_providers; i++)
        for (size_t m = 0; rc == 0 && m < cfg->providers[i].n_models; m++)
            rc = add_provider_model(data, &cfg->providers[i], cfg->providers[i].models[m]);
    json_t *root = rc == 0 ? json_pack("{s:s,s:O}", "object", "list", "data", data) : NULL;
    json_decref(data);
    s->models_body = root ? json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(root);
    if (!s->models_body)
        return -1;
    s->models_len = strlen(s->models_body);
    return 0;
}

mr_snapshot_t *mr_snapshot_new(mr_config_t *cfg, unsigned id)
{
    mr_snapshot_t *s = calloc(1, sizeof(*s));

    if (!s) {
        mr_config_free(cfg);
        return NULL;
    }
    s->cfg = cfg;
    s->id = id;
    atomic_init(&s->refs, 1);
    if (build_models(s) < 0 || !(s->affinity = mr_affinity_new(MR_AFFINITY_MAX))) {
        free(s->models_body);
        mr_config_free(cfg);
        free(s);
        return NULL;
    }
    return s;
}

mr_snapshot_t *mr_snapshot_acquire(mr_snapshot_t *s)
{
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    return s;
}

void mr_snapshot_release(mr_snapshot_t *s)
{
    /* acq_rel: the thread that frees sees every other thread's last use */
    if (!s || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
        return;
    free(s->models_body);
    mr_affinity_free(s->affinity);
    mr_config_free(s->cfg);
    free(s);
}

/* ---- a worker's generation ---------------------------------------------- */

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

mr_generation_t *mr_generation_new(mr_snapshot_t *snap, mr_metrics_t *metrics, unsigned worker,
                                   uint64_t seed, const mr_generation_t *prev)
{
    const mr_config_t *cfg = snap->cfg;
    mr_generation_t *g = calloc(1, sizeof(*g));

    if (!g)
        return NULL;
    g->cfg = cfg;
    g->id = snap->id;
    g->refs = 1;
    if (!(g->mv = mr_metrics_view_new(metrics, worker, cfg)))
        goto fail;
    if (mr_softstate_mem_init(&g->ss, cfg, seed) < 0)
        goto fail_mv;
    mr_health_opts_t ho = {cfg->health.failure_threshold, cfg->health.cooldown_ms,
                           cfg->health.max_cooldown_ms, cfg->health.probe_timeout_ms};
    if (mr_health_init(&g->health, cfg->n_target_ids, &ho) < 0)
        goto fail_ss;
    if (!(g->inflight = calloc(cfg->n_providers ? cfg->n_providers : 1, sizeof(*g->inflight))))
        goto fail_health;
    if (prev)
        carry_health(g, prev);
    g->snap = mr_snapshot_acquire(snap);
    return g;

fail_health:
    mr_health_free(&g->health);
fail_ss:
    mr_softstate_mem_free(&g->ss);
fail_mv:
    mr_metrics_view_free(g->mv);
fail:
    free(g);
    return NULL;
}

mr_generation_t *mr_generation_acquire(mr_generation_t *g)
{
    g->refs++;
    return g;
}

void mr_generation_release(mr_generation_t *g)
{
    if (!g || --g->refs > 0)
        return;
    free(g->inflight);
    mr_health_free(&g->health);
    mr_softstate_mem_free(&g->ss);
    mr_metrics_view_free(g->mv);
    mr_snapshot_release(g->snap);
    free(g);
}

void mr_generation_publish_breaker(mr_generation_t *g, size_t id, const mr_target_t *t,
                                   uint64_t now_ms)
{
    if (id == SIZE_MAX || !t)
        return;
    mr_health_state_t st = mr_health_state(&g->health, id, now_ms);
    mr_metrics_breaker(g->mv, t, (int)st,
                       mr_metrics_now_ms() + mr_health_retry_in_ms(&g->health, id, now_ms));
}
