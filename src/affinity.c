#include "meridian/affinity.h"

#include "meridian/sha256.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/*
 * An open-addressing hash table (linear probing, keys are digests so their
 * low bits are the slot) whose entries also form an LRU list by index.
 * Deleting an entry from a probe chain re-inserts the entries after it
 * (backward shift), so lookups never meet tombstones.
 */

#define NIL UINT32_MAX

typedef struct entry {
    uint64_t key; /* 0: free */
    uint64_t expires_ms;
    uint32_t target;
    uint32_t prev, next; /* LRU: prev is more recent */
} entry_t;

struct mr_affinity {
    pthread_mutex_t mu;
    size_t cap, mask, count, max; /* max: entries kept (3/4 of the slots) */
    uint32_t head, tail;          /* most and least recently used */
    entry_t slots[];
};

mr_affinity_t *mr_affinity_new(size_t capacity)
{
    size_t cap = 16;
    mr_affinity_t *a;

    while (cap < capacity + capacity / 3 && cap < ((size_t)1 << 30))
        cap <<= 1;
    if (!(a = calloc(1, sizeof(*a) + cap * sizeof(entry_t))))
        return NULL;
    if (pthread_mutex_init(&a->mu, NULL) != 0) {
        free(a);
        return NULL;
    }
    a->cap = cap;
    a->mask = cap - 1;
    a->max = capacity < cap * 3 / 4 ? (capacity ? capacity : 1) : cap * 3 / 4;
    a->head = a->tail = NIL;
    return a;
}

void mr_affinity_free(mr_affinity_t *a)
{
    if (!a)
        return;
    pthread_mutex_destroy(&a->mu);
    free(a);
}

uint64_t mr_affinity_key(const char *const *scope, size_t n_scope, const char *name, size_t n)
{
    mr_sha256_t h;
    uint8_t d[MR_SHA256_DIGEST_LEN];
    uint64_t k = 0;

    mr_sha256_init(&h);
    for (size_t i = 0; i < n_scope; i++)
        mr_sha256_update(&h, scope[i] ? scope[i] : "", (scope[i] ? strlen(scope[i]) : 0) + 1);
    mr_sha256_update(&h, name, n);
    mr_sha256_final(&h, d);
    for (int i = 0; i < 8; i++)
        k = k << 8 | d[i];
    return k ? k : 1;
}

/* ---- the LRU list ---- */

static void unlink_entry(mr_affinity_t *a, uint32_t i)
{
    entry_t *e = &a->slots[i];

    if (e->prev != NIL)
        a->slots[e->prev].next = e->next;
    else
        a->head = e->next;
    if (e->next != NIL)
        a->slots[e->next].prev = e->prev;
    else
        a->tail = e->prev;
}

static void push_front(mr_affinity_t *a, uint32_t i)
{
    entry_t *e = &a->slots[i];

    e->prev = NIL;
    e->next = a->head;
    if (a->head != NIL)
        a->slots[a->head].prev = i;
    a->head = i;
    if (a->tail == NIL)
        a->tail = i;
}

/* An entry moved to slot `to` (backward shift): its list neighbours follow. */
static void moved(mr_affinity_t *a, uint32_t to)
{
    entry_t *e = &a->slots[to];

    if (e->prev != NIL)
        a->slots[e->prev].next = to;
    else
        a->head = to;
    if (e->next != NIL)
        a->slots[e->next].prev = to;
    else
        a->tail = to;
}

/* ---- the table ---- */

static uint32_t find(const mr_affinity_t *a, uint64_t key)
{
    for (size_t i = key & a->mask;; i = (i + 1) & a->mask) {
        if (a->slots[i].key == key)
            return (uint32_t)i;
        if (a->slots[i].key == 0)
            return NIL;
    }
}

/* Whether slot k lies in the cyclic range (lo, hi]. */
static bool between(size_t k, size_t lo, size_t hi)
{
    return lo < hi ? lo < k && k <= hi : lo < k || k <= hi;
}

/* Removes slot i and shifts the rest of its probe chain back: an entry
 * whose home slot is not between the hole and itself moves into the hole. */
static void remove_at(mr_affinity_t *a, uint32_t i)
{
    size_t hole = i, j = i;

    unlink_entry(a, i);
    a->slots[i].key = 0;
    a->count--;
    for (;;) {
        j = (j + 1) & a->mask;
        if (a->slots[j].key == 0)
            return;
        if (!between(a->slots[j].key & a->mask, hole, j)) {
            a->slots[hole] = a->slots[j];
            moved(a, (uint32_t)hole);
            a->slots[j].key = 0;
            hole = j;
        }
    }
}

static uint32_t insert(mr_affinity_t *a, uint64_t key)
{
    size_t i = key & a->mask;

    while (a->slots[i].key != 0)
        i = (i + 1) & a->mask;
    a->slots[i].key = key;
    a->count++;
    push_front(a, (uint32_t)i);
    return (uint32_t)i;
}

bool mr_affinity_get(mr_affinity_t *a, uint64_t key, uint64_t now_ms, uint32_t *target_id,
                     uint64_t *expires_ms)
{
    bool found = false;
    uint32_t i;

    if (!a || !key)
        return false;
    pthread_mutex_lock(&a->mu);
    if ((i = find(a, key)) != NIL) {
        if (a->slots[i].expires_ms > now_ms) {
            *target_id = a->slots[i].target;
            if (expires_ms)
                *expires_ms = a->slots[i].expires_ms;
            found = true;
        } else {
            remove_at(a, i);
        }
    }
    pthread_mutex_unlock(&a->mu);
    return found;
}

void mr_affinity_put(mr_affinity_t *a, uint64_t key, uint32_t target_id, uint64_t now_ms,
                     uint64_t ttl_ms)
{
    uint32_t i;

    if (!a || !key)
        return;
    pthread_mutex_lock(&a->mu);
    if ((i = find(a, key)) != NIL) {
        unlink_entry(a, i);
        push_front(a, i);
    } else {
        if (a->count >= a->max)
            remove_at(a, a->tail);
        i = insert(a, key);
    }
    a->slots[i].target = target_id;
    a->slots[i].expires_ms = now_ms + ttl_ms;
    pthread_mutex_unlock(&a->mu);
}

size_t mr_affinity_count(mr_affinity_t *a)
{
    size_t n;

    pthread_mutex_lock(&a->mu);
    n = a->count;
    pthread_mutex_unlock(&a->mu);
    return n;
}
