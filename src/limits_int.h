/*
 * limits_int — what limits.c (the engine) and limits_view.c (periods,
 * answers, snapshots) share; not part of the public surface (limits.h is).
 */
#ifndef MERIDIAN_LIMITS_INT_H
#define MERIDIAN_LIMITS_INT_H

#include "meridian/limits.h"

#include <stdatomic.h>

#define DAY_MS 86400000ULL

/* What this process last saw of a key, and its counters (any thread). */
typedef struct kcache {
    atomic_uint_fast64_t allowed, unavailable, spend;
    atomic_uint_fast64_t limited[MR_LIMIT_PROVIDER_BUDGET + 1];
    atomic_uint_fast64_t req_used, tok_used, in_flight, spent, used, period_end, as_of;
} kcache_t;

typedef struct lkey {
    char name[MR_LIMITS_NAME_MAX];
    char enc[MR_LIMITS_NAME_MAX * 3];
    uint32_t rpm, tpm, par;
    int64_t budget; /* nusd; 0: none */
    mr_budget_period_t period;
    kcache_t c;
} lkey_t;

typedef struct lprov {
    char name[MR_LIMITS_NAME_MAX];
    char enc[MR_LIMITS_NAME_MAX * 3];
    int64_t budget;
    mr_budget_period_t period;
    atomic_uint_fast64_t used, period_end, spend;
} lprov_t;

struct mr_limits_engine {
    mr_state_t *st;
    atomic_int refs;
    lkey_t *keys;
    size_t n_keys;
    lprov_t *provs;
    size_t n_provs;
    uint32_t ttl_ms, default_out, bpt;
};

static inline const lkey_t *key_of(const mr_limits_engine_t *L, size_t key)
{
    return key < L->n_keys ? &L->keys[key] : NULL;
}

#endif
