/*
 * generation — one loaded config, the process-wide state derived from it,
 * and what each worker derives from it.
 *
 * A snapshot (mr_snapshot_t) is a validated config, the GET /v1/models body
 * built from it, and the soft state every worker of the process shares for
 * that config: circuit breakers, vendor-share windows, latencies and the
 * round-robin counters, the retry budget, in-flight counts per provider, and
 * the limits engine (per-key limits, provider budgets) over the process's
 * shared state (state.h), and the cache affinity table of its targets
 * (affinity.h; a reload starts an empty one). It is made once per start or reload (breakers
 * and per-key counters carried over from the snapshot it replaces) and
 * shared by every worker; its reference count is atomic, so any thread may
 * acquire or release it, and the last release frees it. Each shared part is
 * safe for concurrent use: breakers, soft state and the retry budget take
 * their own short mutex, in-flight counts are atomics, the limits engine
 * is lock-free over the sharded state.
 * * A generation (mr_generation_t) is one worker's view of a snapshot: its
 * metric slots, its own in-flight gauge and its loop's state handle. With
 * the redis backend the vendor-share windows count every instance: each
 * served request is also added to a window in Redis, and a share read
 * adds what Redis last said (read again at most every 500 ms, without
 * waiting) to what this process counted since.
 * Requests hold a reference for their whole life, so a reload never changes
 * the rules under a request in flight; the generation is freed when its last
 * user leaves. Generations are used only by their worker's thread (their
 * reference count is plain).
 */
#ifndef MERIDIAN_GENERATION_H
#define MERIDIAN_GENERATION_H

#include "meridian/affinity.h"
#include "meridian/config.h"
#include "meridian/health.h"
#include "meridian/limits.h"
#include "meridian/metrics.h"
#include "meridian/models.h"
#include "meridian/respstore.h"
#include "meridian/softstate.h"
#include "meridian/state.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What snapshots are built with, the same for all of a process's. */
typedef struct mr_snapshot_env {
    mr_state_t *state;     /* borrowed; NULL: no limits, budgets or breaker hints */
    mr_metrics_t *metrics; /* borrowed; NULL: breaker gauges are not published */
    uint64_t seed;         /* the soft state's PRNG */
    /* Stored Responses (respstore.h), process-wide and kept across reloads;
     * borrowed; NULL: nothing is stored (previous_response_id gets 404). */
    const mr_respstore_backend_t *responses;
} mr_snapshot_env_t;

typedef struct mr_snapshot {
    mr_config_t *cfg;          /* owned */
    mr_models_bodies_t models; /* GET /v1/models, built once */
    unsigned id;               /* 0 for the start-up config, then 1, 2, ... per reload */
    atomic_uint refs;
    mr_snapshot_env_t env;

    /* process-wide, shared by every worker's generation of this snapshot */
    mr_health_t health;              /* breakers per target id; carried over on reload */
    mr_softstate_mem_t ss;           /* vendor shares, latencies, round robin */
    mr_retry_budget_t retry_budget;  /* failovers per request volume */
    atomic_uint *inflight;           /* upstream transfers per provider index */
    mr_limits_engine_t *limits;      /* NULL without env.state */
    uint32_t *breaker_slots;         /* metrics series per target id */
    char **hint_names;               /* per target id: its name in breaker hints */
    atomic_uint_fast64_t *hint_seen; /* per target id: the hints version last applied */
    struct mr_share_sync *share;     /* redis: vendor shares of every instance; else NULL */
    /* Cache affinity pins of this config's targets, shared by the workers
     * (affinity.h: locked inside); a reload starts an empty table. */
    mr_affinity_t *affinity;
} mr_snapshot_t;

/* Takes ownership of cfg (freed here even on failure). The first snapshot
 * of a process (id 0). One reference for the caller; NULL when out of
 * memory. */
mr_snapshot_t *mr_snapshot_new(mr_config_t *cfg, const mr_snapshot_env_t *env);
/* The next one (id + 1) with prev's env: the breakers of targets still
 * configured and the per-key counters carry over. */
mr_snapshot_t *mr_snapshot_next(const mr_snapshot_t *prev, mr_config_t *cfg);
mr_snapshot_t *mr_snapshot_acquire(mr_snapshot_t *s);
/* NULL ok. */
void mr_snapshot_release(mr_snapshot_t *s);

/* The router's soft state as a worker sees it: the snapshot's, whose
 * vendor shares also count every other instance's (through Redis). */
typedef struct mr_generation_ss {
    mr_softstate_t super;
    struct mr_generation *g;
} mr_generation_ss_t;

typedef struct mr_generation {
    const mr_config_t *cfg; /* snap->cfg */
    mr_snapshot_t *snap;    /* one reference, held for the generation's life */
    mr_softstate_t *ss;     /* what the router reads and feeds (&_ss.super or &snap->ss.super) */
    mr_generation_ss_t _ss;
    mr_health_t *health;        /* &snap->health */
    mr_limits_engine_t *limits; /* snap->limits (NULL: none) */
    mr_state_loop_t *sl;        /* the worker's state handle (NULL: none) */
    unsigned *inflight;         /* this worker's transfers per provider (its gauge row) */
    mr_metrics_view_t *mv;      /* this worker's metric slots for this config */
    unsigned refs;
    unsigned id; /* snap->id */
} mr_generation_t;

/* Worker `worker`'s generation of `snap` (a new reference to it is taken);
 * `sl` is the worker's state handle (borrowed, may be NULL). One reference
 * for the caller; NULL when out of memory. */
mr_generation_t *mr_generation_new(mr_snapshot_t *snap, mr_metrics_t *metrics, unsigned worker,
                                   mr_state_loop_t *sl);
mr_generation_t *mr_generation_acquire(mr_generation_t *g);
/* NULL ok. */
void mr_generation_release(mr_generation_t *g);

/* ---- the request path's calls into the shared state -------------------- */

/* The breaker of target `id` (SIZE_MAX: untracked, ALLOW) before an
 * attempt: a breaker hint from another instance opens it first. On SKIP,
 * *retry_in_ms says when it stops being open. */
mr_health_verdict_t mr_generation_acquire_target(mr_generation_t *g, size_t id, uint64_t now_ms,
                                                 uint64_t *retry_in_ms);
/* Every target's breaker takes the hints in force (for a view of them). */
void mr_generation_sync_hints(mr_generation_t *g, uint64_t now_ms);
/* An attempt's outcome; a breaker it opens is announced to the other
 * instances (a breaker hint). */
void mr_generation_report(mr_generation_t *g, size_t id, bool probe, mr_outcome_t outcome,
                          long retry_after_s, uint32_t ttfb_ms, uint64_t now_ms);
/* A probe slot given back. */
void mr_generation_cancel(mr_generation_t *g, size_t id, uint64_t now_ms);

/* Takes one of provider p's max_inflight slots (all workers, exact: a
 * compare-and-swap); false when p is at its limit. */
bool mr_generation_inflight_take(mr_generation_t *g, const mr_provider_t *p);
/* Gives a taken slot back. */
void mr_generation_inflight_give(mr_generation_t *g, const mr_provider_t *p);

#endif
