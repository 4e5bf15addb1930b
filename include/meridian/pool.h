/*
 * pool — a request's arena (h2o's h2o_mem_pool_t): the small pieces a
 * request allocates (its model, the attempt history, each attempt, the
 * forwarded header lines) come from fixed-size chunks and are all given back
 * in one go when the request ends, with no free per piece and no forest of
 * frees on error paths. Chunks go back to the worker's cache, so a steady
 * stream of requests costs no malloc for them; a piece larger than half a
 * chunk is allocated on its own (charged to the pool's memory hold, when it
 * has one: memacct.h) and freed with the pool.
 *
 * Bounded: a pool holds at most `limit` bytes (chunks and large pieces);
 * past it, and when out of memory, an allocation returns NULL. Pieces are
 * aligned for any type (16 bytes).
 *
 * Ownership: the request embeds its mr_pool_t; the worker (its gateway) owns
 * the cache, which must outlive every pool using it. Loop thread only.
 */
#ifndef MERIDIAN_POOL_H
#define MERIDIAN_POOL_H

#include "meridian/memacct.h"

#include <stddef.h>

#define MR_POOL_CHUNK 4096 /* bytes of a chunk, its header included */

typedef struct mr_pool_chunk mr_pool_chunk_t;
typedef struct mr_pool_large mr_pool_large_t;

/* Idle chunks of one worker, at most `max` of them. */
typedef struct mr_pool_cache {
    mr_pool_chunk_t *chunks;
    size_t n;
    size_t max;
} mr_pool_cache_t;

typedef struct mr_pool {
    mr_pool_chunk_t *chunk; /* the current chunk; older ones behind it */
    size_t used;            /* bytes used in the current chunk */
    mr_pool_large_t *large; /* pieces allocated on their own */
    size_t bytes;           /* chunks and large pieces held */
    size_t limit;
    mr_pool_cache_t *cache; /* NULL: chunks are freed, not kept */
    mr_memhold_t *hold;     /* large pieces are charged to it; NULL: not counted */
} mr_pool_t;

void mr_pool_cache_init(mr_pool_cache_t *c, size_t max_chunks);
/* Frees the idle chunks. */
void mr_pool_cache_free(mr_pool_cache_t *c);

/* An empty pool: no allocation until the first piece (no hold: set
 * p->hold after). */
void mr_pool_init(mr_pool_t *p, mr_pool_cache_t *cache, size_t limit);
/* n bytes, uninitialised; NULL past the limit or out of memory. */
void *mr_pool_alloc(mr_pool_t *p, size_t n);
/* n * size zeroed bytes; NULL also when the product overflows. */
void *mr_pool_calloc(mr_pool_t *p, size_t n, size_t size);
/* A NUL-terminated copy of s[0, n). */
char *mr_pool_strndup(mr_pool_t *p, const char *s, size_t n);
/* Gives every piece back (chunks to the cache); the pool is empty again. */
void mr_pool_clear(mr_pool_t *p);

#endif
