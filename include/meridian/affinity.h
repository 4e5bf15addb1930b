/*
 * affinity — cache affinity: a conversation stays on the target that served
 * its first turn, so that the provider's prompt cache (which lives on that
 * provider, often on that model) keeps paying off; weighted, round-robin and
 * vendor-share routing decide new conversations only.
 *
 * A conversation is a session key: a 64-bit digest of its scope (the gateway
 * key and the requested model, so that tenants never steer each other) and
 * of what names it (prompt_cache_key, user, or the x-meridian-session
 * header). The table maps it to a target id (mr_target_t.id, valid for one
 * config) until the pin expires; every served turn renews it (and re-pins
 * the conversation to whoever served it when the pinned target could not).
 *
 * Soft state in the style of softstate.h: bounded (MR_AFFINITY_MAX entries,
 * the least recently used one evicted when full), lossy (a reload starts
 * from an empty table; a pin lost only costs one cache miss), the clock is
 * the caller's. One table per config snapshot, shared by every worker of
 * the process: calls lock a mutex held for a lookup or an insert, never
 * across anything else. Out of memory at creation is the only error.
 */
#ifndef MERIDIAN_AFFINITY_H
#define MERIDIAN_AFFINITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MR_AFFINITY_MAX 65536 /* sessions remembered per process (about 2.5 MiB) */

typedef struct mr_affinity mr_affinity_t;

/* A table of at most `capacity` sessions (rounded up to a power of two,
 * at least 16); NULL when out of memory. */
mr_affinity_t *mr_affinity_new(size_t capacity);
/* NULL ok. */
void mr_affinity_free(mr_affinity_t *a);

/* The session key of `name` (n bytes) in `scope` (a NUL-terminated list of
 * strings: key name, model...). Never 0, which means "no session". */
uint64_t mr_affinity_key(const char *const *scope, size_t n_scope, const char *name, size_t n);

/* The target a live session is pinned to: true with *target_id and the
 * pin's expiry (*expires_ms, same clock as now_ms) when there is one. */
bool mr_affinity_get(mr_affinity_t *a, uint64_t key, uint64_t now_ms, uint32_t *target_id,
                     uint64_t *expires_ms);

/* Pins (or renews) `key` to `target_id` until now_ms + ttl_ms. */
void mr_affinity_put(mr_affinity_t *a, uint64_t key, uint32_t target_id, uint64_t now_ms,
                     uint64_t ttl_ms);

/* Sessions stored now (live or expired but not yet reused), for tests. */
size_t mr_affinity_count(mr_affinity_t *a);

#endif
