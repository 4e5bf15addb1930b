#include "meridian/pool.h"

#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ALIGN 16

struct mr_pool_chunk {
    mr_pool_chunk_t *prev;
    alignas(ALIGN) char data[];
};

struct mr_pool_large {
    mr_pool_large_t *next;
    size_t size;
    alignas(ALIGN) char data[];
};

#define CHUNK_DATA (MR_POOL_CHUNK - offsetof(mr_pool_chunk_t, data))

void mr_pool_cache_init(mr_pool_cache_t *c, size_t max_chunks)
{
    c->chunks = NULL;
    c->n = 0;
    c->max = max_chunks;
}

void mr_pool_cache_free(mr_pool_cache_t *c)
{
    while (c->chunks) {
        mr_pool_chunk_t *k = c->chunks;
        c->chunks = k->prev;
        free(k);
    }
    c->n = 0;
}

void mr_pool_init(mr_pool_t *p, mr_pool_cache_t *cache, size_t limit)
{
    memset(p, 0, sizeof(*p));
    p->limit = limit;
    p->cache = cache;
    p->used = CHUNK_DATA; /* no current chunk: the first piece takes one */
}

static mr_pool_chunk_t *chunk_new(mr_pool_t *p)
{
    mr_pool_chunk_t *k;

    if (p->cache && p->cache->chunks) {
        k = p->cache->chunks;
        p->cache->chunks = k->prev;
        p->cache->n--;
    } else if (!(k = malloc(MR_POOL_CHUNK))) {
        return NULL;
    }
    k->prev = p->chunk;
    p->chunk = k;
    p->used = 0;
    p->bytes += MR_POOL_CHUNK;
    return k;
}

static void *large_new(mr_pool_t *p, size_t n)
{
    mr_pool_large_t *l;

    if (n > SIZE_MAX - sizeof(*l) || p->bytes + sizeof(*l) + n > p->limit)
        return NULL;
    if (p->hold && mr_mem_charge(p->hold, sizeof(*l) + n) < 0)
        return NULL;
    if (!(l = malloc(sizeof(*l) + n))) {
        if (p->hold)
            mr_mem_release(p->hold, sizeof(*l) + n);
        return NULL;
    }
    l->next = p->large;
    l->size = sizeof(*l) + n;
    p->large = l;
    p->bytes += l->size;
    return l->data;
}

void *mr_pool_alloc(mr_pool_t *p, size_t n)
{
    size_t at = (p->used + ALIGN - 1) & ~(size_t)(ALIGN - 1);

    if (n > CHUNK_DATA / 2)
        return large_new(p, n);
    if (at + n > CHUNK_DATA) {
        if (p->bytes + MR_POOL_CHUNK > p->limit || !chunk_new(p))
            return NULL;
        at = 0;
    }
    p->used = at + n;
    return p->chunk->data + at;
}

void *mr_pool_calloc(mr_pool_t *p, size_t n, size_t size)
{
    void *q;

    if (size && n > SIZE_MAX / size)
        return NULL;
    if ((q = mr_pool_alloc(p, n * size)))
        memset(q, 0, n * size);
    return q;
}

char *mr_pool_strndup(mr_pool_t *p, const char *s, size_t n)
{
    char *q = n < SIZE_MAX ? mr_pool_alloc(p, n + 1) : NULL;

    if (q) {
        memcpy(q, s, n);
        q[n] = '\0';
    }
    return q;
}

void mr_pool_clear(mr_pool_t *p)
{
    while (p->large) {
        mr_pool_large_t *l = p->large;
        p->large = l->next;
        if (p->hold)
            mr_mem_release(p->hold, l->size);
        free(l);
    }
    while (p->chunk) {
        mr_pool_chunk_t *k = p->chunk;
        p->chunk = k->prev;
        if (p->cache && p->cache->n < p->cache->max) {
            k->prev = p->cache->chunks;
            p->cache->chunks = k;
            p->cache->n++;
        } else {
            free(k);
        }
    }
    p->bytes = 0;
    p->used = CHUNK_DATA;
}
