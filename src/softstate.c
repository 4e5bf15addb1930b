/*
 * softstate — the in-memory implementation of the soft-state interface.
 *
 * Everything is sized from the config in mr_softstate_mem_init; the request
 * path only indexes arrays, under the instance's mutex (every worker shares
 * one instance). Windows are rings of per-bucket counters: a slot
 * remembers which bucket number it holds, so a stale slot is recognised and
 * zeroed lazily on the next write, and ignored by reads — no timers.
 */
#include "meridian/softstate.h"

#include <stdlib.h>
#include <string.h>

static mr_ss_window_t *window_of(mr_softstate_mem_t *m, const mr_policy_t *p)
{
    if (!p || p->share_slot < 0 || (size_t)p->share_slot >= m->_n_windows)
        return NULL;
    return &m->_windows[p->share_slot];
}

static void record_served(mr_softstate_t *ss, const mr_policy_t *p, size_t vendor, uint64_t now_ms)
{
    mr_softstate_mem_t *m = (mr_softstate_mem_t *)ss;
    mr_ss_window_t *w = window_of(m, p);
    uint64_t b;
    size_t slot;

    if (!w)
        return;
    b = now_ms / w->_bucket_ms;
    slot = (size_t)(b % w->_n_buckets);
    if (w->_epoch[slot] != b + 1) {
        w->_epoch[slot] = b + 1;
        w->_total[slot] = 0;
        for (size_t v = 0; v < m->_n_vendors; v++)
            w->_counts[v * MR_SS_BUCKETS + slot] = 0;
    }
    w->_total[slot]++;
    if (vendor < m->_n_vendors)
        w->_counts[vendor * MR_SS_BUCKETS + slot]++;
}

/* A slot is in the window when it holds one of the last _n_buckets buckets
 * (a bucket "from the future", after a clock step back, counts as current). */
static bool in_window(const mr_ss_window_t *w, size_t slot, uint64_t b)
{
    uint64_t e = w->_epoch[slot];

    if (e == 0)
        return false;
    e--;
    return e > b || b - e < w->_n_buckets;
}

static void share(mr_softstate_t *ss, const mr_policy_t *p, size_t vendor, uint64_t now_ms,
                  uint64_t *served, uint64_t *total)
{
    mr_softstate_mem_t *m = (mr_softstate_mem_t *)ss;
    mr_ss_window_t *w = window_of(m, p);
    uint64_t b;

    *served = *total = 0;
    if (!w)
        return;
    b = now_ms / w->_bucket_ms;
    for (size_t s = 0; s < w->_n_buckets; s++) {
        if (!in_window(w, s, b))
            continue;
        *total += w->_total[s];
        if (vendor < m->_n_vendors)
            *served += w->_counts[vendor * MR_SS_BUCKETS + s];
    }
}

static void record_ttfb(mr_softstate_t *ss, uint32_t id, uint32_t ttfb_ms, uint64_t now_ms)
{
    mr_softstate_mem_t *m = (mr_softstate_mem_t *)ss;
    mr_ss_ttfb_t *t;

    if (id >= m->_n_targets)
        return;
    t = &m->_ttfb[id];
    /* a stale average says nothing about now: start again from this sample */
    if (t->samples == 0 || (now_ms > t->at_ms && now_ms - t->at_ms > MR_SS_TTFB_STALE_MS))
        t->ewma_ms = ttfb_ms, t->samples = 0;
    else
        t->ewma_ms = MR_SS_EWMA_ALPHA * ttfb_ms + (1 - MR_SS_EWMA_ALPHA) * t->ewma_ms;
    t->samples++;
    t->at_ms = now_ms;
}

static bool ttfb(mr_softstate_t *ss, uint32_t id, uint64_t now_ms, double *ewma_ms)
{
    mr_softstate_mem_t *m = (mr_softstate_mem_t *)ss;
    const mr_ss_ttfb_t *t;

    if (id >= m->_n_targets)
        return false;
    t = &m->_ttfb[id];
    if (t->samples == 0 || (now_ms > t->at_ms && now_ms - t->at_ms > MR_SS_TTFB_STALE_MS))
        return false;
    *ewma_ms = t->ewma_ms;
    return true;
}

static uint64_t rr_next(mr_softstate_t *ss, size_t route, bool advance)
{
    mr_softstate_mem_t *m = (mr_softstate_mem_t *)ss;
    uint64_t v;

    if (route >= m->_n_routes)
        return 0;
    v = m->_rr[route];
    if (advance)
        m->_rr[route]++;
    return v;
}

/* xorshift128+ (Vigna): fast, 2^128-1 period, good enough to shuffle targets. */
static uint64_t random_bits(mr_softstate_t *ss)
{
    mr_softstate_mem_t *m = (mr_softstate_mem_t *)ss;
    uint64_t s1 = m->_rng[0];
    const uint64_t s0 = m->_rng[1];

    m->_rng[0] = s0;
    s1 ^= s1 << 23;
    m->_rng[1] = s1 ^ s0 ^ (s1 >> 18) ^ (s0 >> 5);
    return m->_rng[1] + s0;
}

/* ---- the operations: each under the mutex ------------------------------ */

static void lock(mr_softstate_t *ss)
{
    pthread_mutex_lock(&((mr_softstate_mem_t *)ss)->_mu);
}

static void unlock(mr_softstate_t *ss)
{
    pthread_mutex_unlock(&((mr_softstate_mem_t *)ss)->_mu);
}

static void mem_record_served(mr_softstate_t *ss, const mr_policy_t *p, size_t vendor,
                              uint64_t now_ms)
{
    lock(ss);
    record_served(ss, p, vendor, now_ms);
    unlock(ss);
}

static void mem_share(mr_softstate_t *ss, const mr_policy_t *p, size_t vendor, uint64_t now_ms,
                      uint64_t *served, uint64_t *total)
{
    lock(ss);
    share(ss, p, vendor, now_ms, served, total);
    unlock(ss);
}

static void mem_record_ttfb(mr_softstate_t *ss, uint32_t id, uint32_t ttfb_ms, uint64_t now_ms)
{
    lock(ss);
    record_ttfb(ss, id, ttfb_ms, now_ms);
    unlock(ss);
}

static bool mem_ttfb(mr_softstate_t *ss, uint32_t id, uint64_t now_ms, double *ewma_ms)
{
    lock(ss);
    bool known = ttfb(ss, id, now_ms, ewma_ms);
    unlock(ss);
    return known;
}

static uint64_t mem_rr_next(mr_softstate_t *ss, size_t route, bool advance)
{
    lock(ss);
    uint64_t v = rr_next(ss, route, advance);
    unlock(ss);
    return v;
}

static uint64_t mem_random(mr_softstate_t *ss)
{
    lock(ss);
    uint64_t v = random_bits(ss);
    unlock(ss);
    return v;
}

static bool mem_excluded(mr_softstate_t *ss, const mr_provider_t *p, const mr_target_t *t,
                         char *rule, size_t rule_len, char *reason, size_t reason_len)
{
    mr_softstate_mem_t *m = (mr_softstate_mem_t *)ss;
    return m->_exclude && m->_exclude(m->_exclude_ud, p, t, rule, rule_len, reason, reason_len);
}

static const mr_softstate_ops_t mem_ops = {
    .record_served = mem_record_served,
    .share = mem_share,
    .record_ttfb = mem_record_ttfb,
    .ttfb = mem_ttfb,
    .rr_next = mem_rr_next,
    .random = mem_random,
    .excluded = mem_excluded,
};

void mr_softstate_mem_set_exclude(mr_softstate_mem_t *m,
                                  bool (*fn)(void *ud, const mr_provider_t *p, const mr_target_t *t,
                                             char *rule, size_t rule_len, char *reason,
                                             size_t reason_len),
                                  void *ud)
{
    m->_exclude = fn;
    m->_exclude_ud = ud;
}

/* splitmix64: expands any seed (0 included) into a non-zero xorshift state. */
static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

int mr_softstate_mem_init(mr_softstate_mem_t *m, const mr_config_t *cfg, uint64_t seed)
{
    memset(m, 0, sizeof(*m));
    m->super.ops = &mem_ops;
    pthread_mutex_init(&m->_mu, NULL);
    m->_cfg = cfg;
    m->_n_vendors = cfg->n_vendors < MR_SS_MAX_VENDORS ? cfg->n_vendors : MR_SS_MAX_VENDORS;
    m->_n_targets = cfg->n_target_ids;
    m->_n_routes = cfg->n_routes;
    if ((m->_n_targets && !(m->_ttfb = calloc(m->_n_targets, sizeof(*m->_ttfb)))) ||
        (m->_n_routes && !(m->_rr = calloc(m->_n_routes, sizeof(*m->_rr)))) ||
        (cfg->n_share_policies &&
         !(m->_windows = calloc(cfg->n_share_policies, sizeof(*m->_windows)))))
        goto oom;
    for (size_t i = 0; i < cfg->n_policies; i++) {
        const mr_policy_t *p = &cfg->policies[i];
        mr_ss_window_t *w;
        uint64_t window_ms;

        if (p->share_slot < 0 || (size_t)p->share_slot >= cfg->n_share_policies)
            continue;
        w = &m->_windows[p->share_slot];
        window_ms = (uint64_t)p->share_window_s * 1000;
        w->_bucket_ms = (window_ms + MR_SS_BUCKETS - 1) / MR_SS_BUCKETS;
        if (w->_bucket_ms < 1000)
            w->_bucket_ms = 1000;
        w->_n_buckets = (size_t)((window_ms + w->_bucket_ms - 1) / w->_bucket_ms);
        if (w->_n_buckets < 1)
            w->_n_buckets = 1;
        if (m->_n_vendors &&
            !(w->_counts = calloc(m->_n_vendors * MR_SS_BUCKETS, sizeof(*w->_counts))))
            goto oom;
    }
    m->_n_windows = cfg->n_share_policies;
    m->_rng[0] = splitmix64(&seed);
    m->_rng[1] = splitmix64(&seed);
    if (!m->_rng[0] && !m->_rng[1])
        m->_rng[1] = 1;
    return 0;
oom:
    m->_n_windows = cfg->n_share_policies;
    mr_softstate_mem_free(m);
    return -1;
}

void mr_softstate_mem_free(mr_softstate_mem_t *m)
{
    for (size_t i = 0; m->_windows && i < m->_n_windows; i++)
        free(m->_windows[i]._counts);
    free(m->_windows);
    free(m->_ttfb);
    free(m->_rr);
    pthread_mutex_destroy(&m->_mu);
    memset(m, 0, sizeof(*m));
}
