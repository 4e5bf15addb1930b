#include "meridian/generation.h"

#include "meridian/log.h"

#include <stdint.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Breaker hints name a target "provider/model"; longer names than a hint
 * holds are "provider/#" and a hash of the model (the same everywhere). */
#define HINT_NAME_MAX MR_STATE_HINT_NAME_MAX

/* ---- the process-wide soft state ----------------------------------------- */

/* Breaker state follows a (provider, model) pair across reloads, so a
 * reload does not hand a broken host fresh traffic. */
static void carry_health(mr_snapshot_t *to, const mr_snapshot_t *from)
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

/* Every distinct target of the config, by id. */
static const mr_target_t **targets_by_id(const mr_config_t *cfg)
{
    const mr_target_t **by = calloc(cfg->n_target_ids ? cfg->n_target_ids : 1, sizeof(*by));

    for (size_t r = 0; by && r < cfg->n_routes; r++)
        for (size_t t = 0; t < cfg->routes[r].n_targets; t++)
            if (!by[cfg->routes[r].targets[t].id])
                by[cfg->routes[r].targets[t].id] = &cfg->routes[r].targets[t];
    return by;
}

static char *hint_name(const mr_target_t *t)
{
    char buf[HINT_NAME_MAX];
    size_t np = strlen(t->provider->name), nm = strlen(t->model);

    if (np + 1 + nm < sizeof(buf)) {
        memcpy(buf, t->provider->name, np);
        buf[np] = '/';
        memcpy(buf + np + 1, t->model, nm + 1);
    } else {
        uint64_t h = 1469598103934665603ULL;
        for (const unsigned char *p = (const unsigned char *)t->model; *p; p++)
            h = (h ^ *p) * 1099511628211ULL;
        snprintf(buf, sizeof(buf), "%s/#%016llx", t->provider->name, (unsigned long long)h);
    }
    return strdup(buf);
}

/* The breaker gauges follow every change, under the breaker's lock. */
static void on_breaker(void *ud, size_t id, uint64_t open_until_ms, uint64_t now_ms)
{
    const mr_snapshot_t *s = ud;
    uint64_t reopen = 0;

    if (open_until_ms)
        reopen = mr_metrics_now_ms() + (open_until_ms > now_ms ? open_until_ms - now_ms : 0);
    mr_metrics_breaker_set(s->env.metrics, s->breaker_slots[id], reopen);
}

/* Metric series and hint names per target id. */
static int index_targets(mr_snapshot_t *s)
{
    const mr_config_t *cfg = s->cfg;
    size_t n = cfg->n_target_ids ? cfg->n_target_ids : 1;
    const mr_target_t **by = targets_by_id(cfg);
    int rc = 0;

    s->breaker_slots = calloc(n, sizeof(*s->breaker_slots));
    s->hint_names = calloc(n, sizeof(*s->hint_names));
    s->hint_seen = calloc(n, sizeof(*s->hint_seen));
    if (!by || !s->breaker_slots || !s->hint_names || !s->hint_seen)
        rc = -1;
    for (size_t i = 0; rc == 0 && i < cfg->n_target_ids; i++) {
        if (!by[i]) { /* every id names a target: the loader made them */
            rc = -1;
            break;
        }
        if (s->env.metrics) {
            const char *values[] = {by[i]->provider->name, by[i]->model};
            s->breaker_slots[i] = mr_metrics_series(s->env.metrics, MR_MF_BREAKER, values);
        }
        if (!(s->hint_names[i] = hint_name(by[i])))
            rc = -1;
    }
    free(by);
    return rc;
}

/* The router's exclusion hook: a provider at or over its budget. */
static bool over_budget(void *ud, const mr_provider_t *p, const mr_target_t *t, char *rule,
                        size_t rule_len, char *reason, size_t reason_len)
{
    const mr_snapshot_t *s = ud;

    (void)t;
    if (!s->limits || !mr_limits_provider_over(s->limits, (size_t)(p - s->cfg->providers)))
        return false;
    snprintf(rule, rule_len, "budget_usd");
    snprintf(reason, reason_len, "provider %s has used its budget of $%.2f for this %s", p->name,
             p->budget_usd, mr_budget_period_name(p->budget_period));
    return true;
}

/* The limits engine of the config's keys and providers (indexes are the
 * config's); an unsettled reservation outlives its request by a minute. */
static int make_limits(mr_snapshot_t *s, const mr_snapshot_t *prev)
{
    const mr_config_t *cfg = s->cfg;
    mr_limits_key_spec_t *keys = calloc(cfg->n_keys ? cfg->n_keys : 1, sizeof(*keys));
    mr_limits_provider_spec_t *provs =
        calloc(cfg->n_providers ? cfg->n_providers : 1, sizeof(*provs));
    uint64_t ttl = (uint64_t)cfg->timeouts.request_ms + 60000;
    int rc = -1;

    if (keys && provs) {
        char err[256];
        for (size_t i = 0; i < cfg->n_keys; i++) {
            const mr_key_limits_t *l = &cfg->keys[i].limits;
            keys[i] = (mr_limits_key_spec_t){cfg->keys[i].name, l->rpm,        l->tpm,
                                             l->max_parallel,   l->budget_usd, l->budget_period};
        }
        for (size_t i = 0; i < cfg->n_providers; i++)
            provs[i] =
                (mr_limits_provider_spec_t){cfg->providers[i].name, cfg->providers[i].budget_usd,
                                            cfg->providers[i].budget_period};
        mr_limits_spec_t spec = {.keys = keys,
                                 .n_keys = cfg->n_keys,
                                 .providers = provs,
                                 .n_providers = cfg->n_providers,
                                 .reservation_ttl_ms =
                                     ttl > UINT32_MAX ? UINT32_MAX : (uint32_t)ttl};
        if ((rc = mr_limits_new(s->env.state, &spec, &s->limits, err, sizeof(err))) != 0)
            mr_error("config generation %u: %s", s->id, err);
    }
    if (rc == 0 && prev && prev->limits)
        mr_limits_carry(s->limits, prev->limits);
    free(keys);
    free(provs);
    return rc;
}

/* ---- vendor shares across instances (redis backend) ---------------------- */

#define SHARE_REFRESH_MS 500

/* Per policy with max_vendor_share, one Redis window per tracked vendor and
 * one for the total: what Redis last said (remote) and what this process
 * had counted itself when that read was sent (base). */
struct mr_share_sync {
    size_t nv; /* windows per policy: tracked vendors + the total */
    size_t n;  /* n_share_policies * nv */
    char (*keys)[MR_STATE_KEY_MAX];
    uint32_t *window_ms; /* per window */
    const mr_policy_t **policy;
    atomic_uint_fast64_t *remote, *base;
    atomic_uint_fast64_t next_ms;
};

typedef struct share_read {
    mr_snapshot_t *snap; /* a reference until the answer */
    size_t first, n;
    uint64_t base[MR_STATE_MAX_OPS];
} share_read_t;

static void free_share(struct mr_share_sync *sh)
{
    if (!sh)
        return;
    free(sh->keys);
    free(sh->window_ms);
    free(sh->policy);
    free(sh->remote);
    free(sh->base);
    free(sh);
}

static void share_keys(struct mr_share_sync *sh, const mr_config_t *cfg)
{
    char pol[MR_STATE_KEY_MAX / 4], ven[MR_STATE_KEY_MAX / 4];

    for (size_t i = 0; i < cfg->n_policies; i++) {
        const mr_policy_t *p = &cfg->policies[i];
        if (p->share_slot < 0)
            continue;
        mr_state_key_escape(p->name, pol, sizeof(pol));
        for (size_t v = 0; v < sh->nv; v++) {
            size_t k = (size_t)p->share_slot * sh->nv + v;
            mr_state_key_escape(v + 1 < sh->nv ? cfg->vendors[v] : "*", ven, sizeof(ven));
            snprintf(sh->keys[k], sizeof(sh->keys[k]), "s:%s:%s", pol, ven);
            sh->window_ms[k] = p->share_window_s * 1000;
            sh->policy[k] = p;
        }
    }
}

static int make_share(mr_snapshot_t *s)
{
    const mr_config_t *cfg = s->cfg;
    struct mr_share_sync *sh;

    if (!cfg->n_share_policies || mr_state_backend(s->env.state) != MR_STATE_REDIS)
        return 0;
    if (!(sh = calloc(1, sizeof(*sh))))
        return -1;
    s->share = sh;
    sh->nv = (cfg->n_vendors < MR_SS_MAX_VENDORS ? cfg->n_vendors : MR_SS_MAX_VENDORS) + 1;
    sh->n = cfg->n_share_policies * sh->nv;
    sh->keys = calloc(sh->n, sizeof(*sh->keys));
    sh->window_ms = calloc(sh->n, sizeof(*sh->window_ms));
    sh->policy = calloc(sh->n, sizeof(*sh->policy));
    sh->remote = calloc(sh->n, sizeof(*sh->remote));
    sh->base = calloc(sh->n, sizeof(*sh->base));
    if (!sh->keys || !sh->window_ms || !sh->policy || !sh->remote || !sh->base)
        return -1;
    share_keys(sh, cfg);
    return 0;
}

static void ignore_answer(void *arg, const mr_state_result_t *res)
{
    (void)arg;
    (void)res;
}

/* What this process counted itself in window k. */
static uint64_t local_count(mr_snapshot_t *s, size_t k, uint64_t now_ms)
{
    const struct mr_share_sync *sh = s->share;
    uint64_t served, total;
    size_t v = k % sh->nv;

    mr_softstate_share(&s->ss.super, sh->policy[k], v + 1 < sh->nv ? v : SIZE_MAX, now_ms, &served,
                       &total);
    return v + 1 < sh->nv ? served : total;
}

static void on_share_read(void *arg, const mr_state_result_t *res)
{
    share_read_t *rd = arg;
    struct mr_share_sync *sh = rd->snap->share;

    if (res->status == MR_STATE_OK && !res->local) /* an outage answers from local counters */
        for (size_t j = 0; j < rd->n; j++) {
            atomic_store(&sh->remote[rd->first + j], res->r[j].used);
            atomic_store(&sh->base[rd->first + j], rd->base[j]);
        }
    mr_snapshot_release(rd->snap);
    free(rd);
}

/* Reads every window from Redis again, at most every SHARE_REFRESH_MS
 * (whichever worker comes first); nothing waits for the answers. */
static void refresh_shares(mr_generation_t *g, uint64_t now_ms)
{
    struct mr_share_sync *sh = g->snap->share;
    uint64_t next = atomic_load(&sh->next_ms);

    if (now_ms < next ||
        !atomic_compare_exchange_strong(&sh->next_ms, &next, now_ms + SHARE_REFRESH_MS))
        return;
    for (size_t first = 0; first < sh->n; first += MR_STATE_MAX_OPS) {
        share_read_t *rd = calloc(1, sizeof(*rd));
        mr_state_txn_t txn = {0};
        if (!rd)
            return;
        rd->first = first;
        rd->n = sh->n - first < MR_STATE_MAX_OPS ? sh->n - first : MR_STATE_MAX_OPS;
        for (size_t j = 0; j < rd->n; j++) {
            mr_state_txn_add(&txn, MR_OP_WINDOW_GET, sh->keys[first + j], NULL)->window_ms =
                sh->window_ms[first + j];
            rd->base[j] = local_count(g->snap, first + j, now_ms);
        }
        rd->snap = mr_snapshot_acquire(g->snap);
        if (mr_state_exec(g->sl, &txn, on_share_read, rd) != 0) {
            mr_snapshot_release(rd->snap);
            free(rd);
        }
    }
}

static mr_generation_t *gen_of(mr_softstate_t *ss)
{
    return ((mr_generation_ss_t *)ss)->g;
}

static mr_softstate_t *mem_of(mr_softstate_t *ss)
{
    return &gen_of(ss)->snap->ss.super;
}

static void gss_record_served(mr_softstate_t *ss, const mr_policy_t *p, size_t vendor,
                              uint64_t now_ms)
{
    mr_generation_t *g = gen_of(ss);
    struct mr_share_sync *sh = g->snap->share;
    mr_state_txn_t txn = {0};

    mr_softstate_record_served(mem_of(ss), p, vendor, now_ms);
    if (!p || p->share_slot < 0)
        return;
    size_t k = (size_t)p->share_slot * sh->nv;
    size_t ks[2] = {vendor + 1 < sh->nv ? k + vendor : SIZE_MAX, k + sh->nv - 1};
    for (size_t i = 0; i < 2; i++) {
        if (ks[i] == SIZE_MAX)
            continue;
        mr_state_op_t *op = mr_state_txn_add(&txn, MR_OP_WINDOW_ADD, sh->keys[ks[i]], NULL);
        op->amount = 1;
        op->window_ms = sh->window_ms[ks[i]];
        op->at_ms = mr_state_now(g->snap->env.state);
    }
    mr_state_exec(g->sl, &txn, ignore_answer, NULL);
}

/* Redis' count as last read, plus what this process counted since. */
static uint64_t merged(const struct mr_share_sync *sh, size_t k, uint64_t local)
{
    uint64_t base = atomic_load(&sh->base[k]);
    return atomic_load(&sh->remote[k]) + (local > base ? local - base : 0);
}

static void gss_share(mr_softstate_t *ss, const mr_policy_t *p, size_t vendor, uint64_t now_ms,
                      uint64_t *served, uint64_t *total)
{
    mr_generation_t *g = gen_of(ss);
    const struct mr_share_sync *sh = g->snap->share;

    mr_softstate_share(mem_of(ss), p, vendor, now_ms, served, total);
    if (!p || p->share_slot < 0)
        return;
    refresh_shares(g, now_ms);
    size_t k = (size_t)p->share_slot * sh->nv;
    *total = merged(sh, k + sh->nv - 1, *total);
    if (vendor + 1 < sh->nv)
        *served = merged(sh, k + vendor, *served);
}

static void gss_record_ttfb(mr_softstate_t *ss, uint32_t id, uint32_t ms, uint64_t now_ms)
{
    mr_softstate_record_ttfb(mem_of(ss), id, ms, now_ms);
}

static bool gss_ttfb(mr_softstate_t *ss, uint32_t id, uint64_t now_ms, double *ewma_ms)
{
    return mr_softstate_ttfb(mem_of(ss), id, now_ms, ewma_ms);
}

static uint64_t gss_rr_next(mr_softstate_t *ss, size_t route, bool advance)
{
    return mr_softstate_rr_next(mem_of(ss), route, advance);
}

static uint64_t gss_random(mr_softstate_t *ss)
{
    mr_softstate_t *m = mem_of(ss);
    return m->ops->random(m);
}

static bool gss_excluded(mr_softstate_t *ss, const mr_provider_t *p, const mr_target_t *t,
                         char *rule, size_t rule_len, char *reason, size_t reason_len)
{
    return mr_softstate_excluded(mem_of(ss), p, t, rule, rule_len, reason, reason_len);
}

static const mr_softstate_ops_t gss_ops = {
    .record_served = gss_record_served,
    .share = gss_share,
    .record_ttfb = gss_record_ttfb,
    .ttfb = gss_ttfb,
    .rr_next = gss_rr_next,
    .random = gss_random,
    .excluded = gss_excluded,
};

static int make_soft(mr_snapshot_t *s, const mr_snapshot_t *prev)
{
    const mr_config_t *cfg = s->cfg;
    mr_health_opts_t ho = {cfg->health.failure_threshold, cfg->health.cooldown_ms,
                           cfg->health.max_cooldown_ms, cfg->health.probe_timeout_ms};
    mr_retry_budget_opts_t ro = {cfg->retry_budget.ratio, cfg->retry_budget.window_s,
                                 cfg->retry_budget.min_retries_per_s};

    if (mr_softstate_mem_init(&s->ss, cfg, s->env.seed ^ s->id) < 0)
        return -1;
    mr_softstate_mem_set_exclude(&s->ss, over_budget, s);
    if (mr_health_init(&s->health, cfg->n_target_ids, &ho) < 0)
        return -1;
    mr_retry_budget_init(&s->retry_budget, &ro);
    if (!(s->inflight = calloc(cfg->n_providers ? cfg->n_providers : 1, sizeof(*s->inflight))) ||
        index_targets(s) < 0 || (s->env.state && (make_limits(s, prev) < 0 || make_share(s) < 0)))
        return -1;
    if (prev) {
        carry_health(s, prev);
        /* the gauges follow this snapshot's breakers now: late reports to
         * the old ones (requests still in flight) must not overwrite them */
        mr_health_set_listener((mr_health_t *)(uintptr_t)&prev->health, NULL, NULL);
    }
    if (s->env.metrics) {
        mr_health_set_listener(&s->health, on_breaker, s);
        mr_health_announce(&s->health, mr_metrics_now_ms());
    }
    return 0;
}

static void free_soft(mr_snapshot_t *s)
{
    free_share(s->share);
    mr_limits_free(s->limits);
    for (size_t i = 0; s->hint_names && i < s->cfg->n_target_ids; i++)
        free(s->hint_names[i]);
    free(s->hint_names);
    free(s->hint_seen);
    free(s->breaker_slots);
    free(s->inflight);
    if (s->health.opts.cooldown_ms) { /* initialised */
        mr_health_free(&s->health);
        mr_retry_budget_free(&s->retry_budget);
    }
    if (s->ss.super.ops)
        mr_softstate_mem_free(&s->ss);
}

static mr_snapshot_t *snapshot_make(mr_config_t *cfg, unsigned id, const mr_snapshot_env_t *env,
                                    const mr_snapshot_t *prev)
{
    mr_snapshot_t *s = calloc(1, sizeof(*s));

    if (!s) {
        mr_config_free(cfg);
        return NULL;
    }
    s->cfg = cfg;
    s->id = id;
    s->env = *env;
    atomic_init(&s->refs, 1);
    if (mr_models_build(cfg, &s->models) < 0 || make_soft(s, prev) < 0 ||
        !(s->affinity = mr_affinity_new(MR_AFFINITY_MAX))) {
        free_soft(s);
        mr_models_free(&s->models);
        mr_config_free(cfg);
        free(s);
        return NULL;
    }
    return s;
}

mr_snapshot_t *mr_snapshot_new(mr_config_t *cfg, const mr_snapshot_env_t *env)
{
    return snapshot_make(cfg, 0, env, NULL);
}

mr_snapshot_t *mr_snapshot_next(const mr_snapshot_t *prev, mr_config_t *cfg)
{
    return snapshot_make(cfg, prev->id + 1, &prev->env, prev);
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
    free_soft(s);
    mr_affinity_free(s->affinity);
    mr_models_free(&s->models);
    mr_config_free(s->cfg);
    free(s);
}

/* ---- a worker's generation ---------------------------------------------- */

mr_generation_t *mr_generation_new(mr_snapshot_t *snap, mr_metrics_t *metrics, unsigned worker,
                                   mr_state_loop_t *sl)
{
    const mr_config_t *cfg = snap->cfg;
    mr_generation_t *g = calloc(1, sizeof(*g));

    if (!g)
        return NULL;
    g->cfg = cfg;
    g->id = snap->id;
    g->refs = 1;
    g->ss = &snap->ss.super;
    if (snap->share && sl) {
        g->_ss = (mr_generation_ss_t){{&gss_ops}, g};
        g->ss = &g->_ss.super;
    }
    g->health = &snap->health;
    g->limits = snap->limits;
    g->sl = sl;
    if (!(g->mv = mr_metrics_view_new(metrics, worker, cfg)) ||
        !(g->inflight = calloc(cfg->n_providers ? cfg->n_providers : 1, sizeof(*g->inflight)))) {
        mr_metrics_view_free(g->mv);
        free(g);
        return NULL;
    }
    g->snap = mr_snapshot_acquire(snap);
    return g;
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
    mr_metrics_view_free(g->mv);
    mr_snapshot_release(g->snap);
    free(g);
}

/* ---- breakers, hints and in-flight counts -------------------------------- */

/* A hint another instance published (or this one, through Redis) opens
 * the breaker until its time. Checked only when the hints changed since
 * this target last looked: one atomic load otherwise. */
static void apply_hint(mr_generation_t *g, size_t id, uint64_t now_ms)
{
    mr_snapshot_t *s = g->snap;
    mr_state_t *st = s->env.state;
    uint64_t until, ver;

    if (!st || (ver = mr_state_hints_version(st)) == atomic_load(&s->hint_seen[id]))
        return;
    atomic_store(&s->hint_seen[id], ver);
    if (mr_state_hint_get(st, s->hint_names[id], &until)) {
        uint64_t utc = mr_state_now(st);
        if (until > utc)
            mr_health_open_until(g->health, id, now_ms + (until - utc), now_ms);
    }
}

void mr_generation_sync_hints(mr_generation_t *g, uint64_t now_ms)
{
    for (size_t id = 0; id < g->cfg->n_target_ids; id++)
        apply_hint(g, id, now_ms);
}

mr_health_verdict_t mr_generation_acquire_target(mr_generation_t *g, size_t id, uint64_t now_ms,
                                                 uint64_t *retry_in_ms)
{
    mr_health_verdict_t v;

    *retry_in_ms = 0;
    if (id == SIZE_MAX || id >= g->cfg->n_target_ids)
        return MR_HEALTH_ALLOW;
    apply_hint(g, id, now_ms);
    v = mr_health_acquire(g->health, id, now_ms);
    if (v == MR_HEALTH_SKIP)
        *retry_in_ms = mr_health_retry_in_ms(g->health, id, now_ms);
    return v;
}

void mr_generation_report(mr_generation_t *g, size_t id, bool probe, mr_outcome_t outcome,
                          long retry_after_s, uint32_t ttfb_ms, uint64_t now_ms)
{
    mr_state_t *st = g->snap->env.state;
    uint64_t until;

    if (id == SIZE_MAX)
        return;
    until = mr_health_report_attempt(g->health, id, probe, outcome, retry_after_s, ttfb_ms, now_ms);
    if (until > now_ms && st && g->sl)
        mr_state_hint_publish(g->sl, g->snap->hint_names[id], mr_state_now(st) + (until - now_ms));
}

void mr_generation_cancel(mr_generation_t *g, size_t id, uint64_t now_ms)
{
    if (id != SIZE_MAX)
        mr_health_cancel(g->health, id, now_ms);
}

bool mr_generation_inflight_take(mr_generation_t *g, const mr_provider_t *p)
{
    size_t i = (size_t)(p - g->cfg->providers);
    atomic_uint *n = &g->snap->inflight[i];
    unsigned cur = atomic_load(n);

    do {
        if (p->max_inflight && cur >= p->max_inflight)
            return false;
    } while (!atomic_compare_exchange_weak(n, &cur, cur + 1));
    mr_metrics_inflight(g->mv, p, ++g->inflight[i]);
    return true;
}

void mr_generation_inflight_give(mr_generation_t *g, const mr_provider_t *p)
{
    size_t i = (size_t)(p - g->cfg->providers);

    atomic_fetch_sub(&g->snap->inflight[i], 1);
    mr_metrics_inflight(g->mv, p, --g->inflight[i]);
}
