/*
 * memacct — a worker's budget for the bytes its requests hold in flight
 * (limits.worker_memory_bytes; docs/security.md, finding 5): request bodies
 * as they arrive, the estimated size of parse trees, upstream answers being
 * buffered, stream buffers, upstream request copies.
 *
 * A worker owns one mr_memacct_t; each request holds an mr_memhold_t on it
 * (what that request holds, given back in one go when it ends). Buffers
 * (buf.h) may point at a hold, so that their growth is charged as it
 * happens. A charge past the limit is refused (the caller answers 503
 * `overloaded` or holds the upstream back); a forced charge always succeeds
 * (bytes already in hand, such as a gateway-written trailer), so `used` may
 * pass `limit` by what was forced.
 *
 * Plain counters: one loop thread only (each worker has its own account).
 */
#ifndef MERIDIAN_MEMACCT_H
#define MERIDIAN_MEMACCT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct mr_memacct {
    size_t limit;     /* 0: unlimited */
    size_t used;      /* charged now */
    size_t peak;      /* highest `used` since mr_memacct_take_peak */
    uint64_t refused; /* charges refused */
} mr_memacct_t;

typedef struct mr_memhold {
    mr_memacct_t *acct; /* NULL: nothing is counted */
    size_t held;
} mr_memhold_t;

void mr_memacct_init(mr_memacct_t *a, size_t limit);
/* The peak since the last call, which restarts it at `used`. */
size_t mr_memacct_take_peak(mr_memacct_t *a);

/* 0 when `n` more bytes fit under the limit (charged), -1 when not. */
int mr_mem_charge(mr_memhold_t *h, size_t n);
/* Charges `n` bytes whatever the limit. */
void mr_mem_force(mr_memhold_t *h, size_t n);
/* Gives back `n` of the bytes the hold has (at most what it holds). */
void mr_mem_release(mr_memhold_t *h, size_t n);
/* Gives back everything the hold has. */
void mr_mem_release_all(mr_memhold_t *h);
/* Whether `n` more bytes could be charged now. */
bool mr_mem_fits(const mr_memhold_t *h, size_t n);

#endif
