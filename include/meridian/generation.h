/*
 * generation — one loaded config and what each worker derives from it.
 *
 * A snapshot (mr_snapshot_t) is the immutable part: a validated config and
 * the GET /v1/models body built from it (plus the process-wide cache
 * affinity table of its targets, which locks itself). It is made once per start or
 * reload and shared by every worker; its reference count is atomic, so any
 * thread may acquire or release it, and the last release frees the config.
 *
 * A generation (mr_generation_t) is one worker's view of a snapshot: its
 * soft state, circuit breakers, in-flight counts and metric slots. Requests
 * hold a reference for their whole life, so a reload never changes the
 * rules under a request in flight; the generation is freed when its last
 * user leaves. Generations are used only by their worker's thread (their
 * reference count is plain).
 */
#ifndef MERIDIAN_GENERATION_H
#define MERIDIAN_GENERATION_H

#include "meridian/affinity.h"
#include "meridian/config.h"
#include "meridian/health.h"
#include "meridian/metrics.h"
#include "meridian/softstate.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

typedef struct mr_snapshot {
    mr_config_t *cfg;  /* owned */
    char *models_body; /* GET /v1/models, built once */
    size_t models_len;
    unsigned id; /* 0 for the start-up config, then 1, 2, ... per reload */
    atomic_uint refs;
    /* Cache affinity pins of this config's targets, shared by the workers
     * (affinity.h: locked inside); a reload starts an empty table. */
    mr_affinity_t *affinity;
} mr_snapshot_t;

/* Takes ownership of cfg (freed here even on failure). One reference for the
 * caller; NULL when out of memory. */
mr_snapshot_t *mr_snapshot_new(mr_config_t *cfg, unsigned id);
mr_snapshot_t *mr_snapshot_acquire(mr_snapshot_t *s);
/* NULL ok. */
void mr_snapshot_release(mr_snapshot_t *s);

typedef struct mr_generation {
    const mr_config_t *cfg; /* snap->cfg */
    mr_snapshot_t *snap;    /* one reference, held for the generation's life */
    mr_softstate_mem_t ss;  /* vendor shares, latencies, round robin: indexed by this config */
    mr_health_t health;     /* circuit breakers per target id; carried over on reload */
    unsigned *inflight;     /* upstream transfers per provider (index in cfg->providers) */
    mr_metrics_view_t *mv;  /* this worker's metric slots for this config */
    unsigned refs;
    unsigned id; /* snap->id */
} mr_generation_t;

/* Worker `worker`'s generation of `snap` (a new reference to it is taken);
 * `seed` drives its soft state. With `prev`, the breakers of targets still
 * configured carry over. One reference for the caller; NULL when out of
 * memory. */
mr_generation_t *mr_generation_new(mr_snapshot_t *snap, mr_metrics_t *metrics, unsigned worker,
                                   uint64_t seed, const mr_generation_t *prev);
mr_generation_t *mr_generation_acquire(mr_generation_t *g);
/* NULL ok. */
void mr_generation_release(mr_generation_t *g);

/* A target's breaker as /metrics and /status show it, after a change. */
void mr_generation_publish_breaker(mr_generation_t *g, size_t id, const mr_target_t *t,
                                   uint64_t now_ms);

#endif
