/*
 * softstate — the little mutable state routing depends on.
 *
 *   served   per (policy, vendor) request counts over a sliding window, for
 *            max_vendor_share
 *   ttfb     per target an EWMA of time-to-first-byte, for least_latency
 *   rr       per route a counter, for round_robin
 *   random   a PRNG, for weighted
 *
 * It is an interface (mr_softstate_t, a table of operations) so that a
 * shared implementation (Redis, issue "many instances") can replace the
 * in-memory one without touching the router; every operation takes the
 * caller's clock (`now_ms`, any monotonic millisecond clock such as uv_now)
 * so tests drive a fake clock and nothing here reads the time.
 *
 * Keys are the config's dense indexes, valid for the life of one config:
 *   policy  mr_policy_t.share_slot (policies with max_vendor_share), name for
 *           an implementation that needs a stable string
 *   vendor  mr_provider_t.vendor_index (mr_config_t.vendors[i] is its name)
 *   target  mr_target_t.id: one id per distinct (provider, model) pair, so
 *           the same upstream model in two routes shares its latency
 *   route   mr_route_t.index
 *
 * Threading: one instance per process (per config snapshot), shared by
 * every worker: the in-memory implementation takes its mutex for each
 * operation (array updates, never I/O), so shares, latencies and the
 * round-robin counter are exact across workers. No globals.
 */
#ifndef MERIDIAN_SOFTSTATE_H
#define MERIDIAN_SOFTSTATE_H

#include "meridian/config.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct mr_softstate mr_softstate_t;

typedef struct mr_softstate_ops {
    /* One request under `policy` was served by `vendor`. */
    void (*record_served)(mr_softstate_t *ss, const mr_policy_t *policy, size_t vendor,
                          uint64_t now_ms);
    /* Requests served by `vendor` and by anyone under `policy` within the
     * policy's share_window_s ending at now_ms. */
    void (*share)(mr_softstate_t *ss, const mr_policy_t *policy, size_t vendor, uint64_t now_ms,
                  uint64_t *served, uint64_t *total);
    /* A time-to-first-byte sample of target `id`, in milliseconds. */
    void (*record_ttfb)(mr_softstate_t *ss, uint32_t target_id, uint32_t ttfb_ms, uint64_t now_ms);
    /* The EWMA of target `id`; false when unknown (never measured, or the last
     * sample is older than MR_SS_TTFB_STALE_MS). */
    bool (*ttfb)(mr_softstate_t *ss, uint32_t target_id, uint64_t now_ms, double *ewma_ms);
    /* The round-robin counter of `route`; advanced by one when `advance`. */
    uint64_t (*rr_next)(mr_softstate_t *ss, size_t route, bool advance);
    /* 64 uniformly distributed random bits. */
    uint64_t (*random)(mr_softstate_t *ss);
    /* Should routing skip this target now (a provider over its budget)? true
     * fills rule and reason for the plan's exclusion. May be NULL. */
    bool (*excluded)(mr_softstate_t *ss, const mr_provider_t *p, const mr_target_t *t, char *rule,
                     size_t rule_len, char *reason, size_t reason_len);
} mr_softstate_ops_t;

/* Embed as the first member of an implementation. */
struct mr_softstate {
    const mr_softstate_ops_t *ops;
};

/* ---- the in-memory implementation -------------------------------------- */

#define MR_SS_BUCKETS 60              /* ring buckets per share window */
#define MR_SS_MAX_VENDORS 256         /* vendors tracked per window (see below) */
#define MR_SS_EWMA_ALPHA 0.2          /* weight of a new TTFB sample */
#define MR_SS_TTFB_STALE_MS 300000ULL /* older samples count as unknown (5 min) */

/*
 * One sliding window per policy with max_vendor_share: MR_SS_BUCKETS ring
 * buckets of max(1 s, share_window_s / MR_SS_BUCKETS) each, so a 60 s window
 * has one bucket per second and slides by one second. The window is the
 * current (partial) bucket plus the previous ones, MR_SS_BUCKETS in all.
 */
typedef struct mr_ss_window {
    uint64_t _bucket_ms;
    size_t _n_buckets;
    uint64_t _epoch[MR_SS_BUCKETS]; /* bucket number + 1 held by each slot; 0 = empty */
    uint32_t _total[MR_SS_BUCKETS];
    uint32_t *_counts; /* [_n_vendors][MR_SS_BUCKETS] */
} mr_ss_window_t;

typedef struct mr_ss_ttfb {
    double ewma_ms;
    uint64_t at_ms; /* clock of the last sample */
    uint32_t samples;
} mr_ss_ttfb_t;

/*
 * Memory is sized once from the config and never grows with traffic:
 *   n_share_policies * (MR_SS_BUCKETS * (12 + 4 * min(n_vendors, MR_SS_MAX_VENDORS)))
 *   + n_target_ids * 24 + n_routes * 8 bytes.
 * Past MR_SS_MAX_VENDORS distinct vendors the extra vendors are not tracked:
 * their requests still count in the window total, their own share reads 0,
 * so a cap never moves them back.
 */
typedef struct mr_softstate_mem {
    mr_softstate_t super; /* pass &m->super to the router */
    const mr_config_t *_cfg;
    mr_ss_window_t *_windows; /* [cfg->n_share_policies] */
    size_t _n_windows;
    size_t _n_vendors;
    mr_ss_ttfb_t *_ttfb; /* [cfg->n_target_ids] */
    uint32_t _n_targets;
    uint64_t *_rr; /* [cfg->n_routes] */
    size_t _n_routes;
    uint64_t _rng[2]; /* xorshift128+ */
    pthread_mutex_t _mu;
    /* the `excluded` operation, delegated (NULL: nothing is excluded) */
    bool (*_exclude)(void *ud, const mr_provider_t *p, const mr_target_t *t, char *rule,
                     size_t rule_len, char *reason, size_t reason_len);
    void *_exclude_ud;
} mr_softstate_mem_t;

/* Size the state for `cfg` (which must outlive it) and seed the PRNG (any
 * value; 0 is fine). 0, or -1 when out of memory (nothing to free then). */
int mr_softstate_mem_init(mr_softstate_mem_t *m, const mr_config_t *cfg, uint64_t seed);
void mr_softstate_mem_free(mr_softstate_mem_t *m);
/* The hook behind `excluded` (called without the mutex, any thread). */
void mr_softstate_mem_set_exclude(mr_softstate_mem_t *m,
                                  bool (*fn)(void *ud, const mr_provider_t *p, const mr_target_t *t,
                                             char *rule, size_t rule_len, char *reason,
                                             size_t reason_len),
                                  void *ud);

/* ---- convenience wrappers (NULL ss: no state, harmless defaults) ------- */

static inline void mr_softstate_record_served(mr_softstate_t *ss, const mr_policy_t *p,
                                              size_t vendor, uint64_t now_ms)
{
    if (ss)
        ss->ops->record_served(ss, p, vendor, now_ms);
}

static inline void mr_softstate_share(mr_softstate_t *ss, const mr_policy_t *p, size_t vendor,
                                      uint64_t now_ms, uint64_t *served, uint64_t *total)
{
    *served = *total = 0;
    if (ss)
        ss->ops->share(ss, p, vendor, now_ms, served, total);
}

static inline void mr_softstate_record_ttfb(mr_softstate_t *ss, uint32_t target_id,
                                            uint32_t ttfb_ms, uint64_t now_ms)
{
    if (ss)
        ss->ops->record_ttfb(ss, target_id, ttfb_ms, now_ms);
}

static inline bool mr_softstate_ttfb(mr_softstate_t *ss, uint32_t target_id, uint64_t now_ms,
                                     double *ewma_ms)
{
    return ss ? ss->ops->ttfb(ss, target_id, now_ms, ewma_ms) : false;
}

static inline uint64_t mr_softstate_rr_next(mr_softstate_t *ss, size_t route, bool advance)
{
    return ss ? ss->ops->rr_next(ss, route, advance) : 0;
}

static inline bool mr_softstate_excluded(mr_softstate_t *ss, const mr_provider_t *p,
                                         const mr_target_t *t, char *rule, size_t rule_len,
                                         char *reason, size_t reason_len)
{
    return ss && ss->ops->excluded &&
           ss->ops->excluded(ss, p, t, rule, rule_len, reason, reason_len);
}

#endif
