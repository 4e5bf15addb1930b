#include "meridian/respstore.h"

#include "meridian/sha256.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ------------------------------------------------------------ the front */

int mr_respstore_id_ok(const char *id)
{
    size_t n = 0;

    for (; id && id[n]; n++) {
        char c = id[n];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-') ||
            n == MR_RESPSTORE_ID_MAX)
            return 0;
    }
    return n > 0;
}

void mr_respstore_new_id(const unsigned char random[16], char out[MR_RESPSTORE_ID_MAX + 1])
{
    static const char hex[] = "0123456789abcdef";

    memcpy(out, "resp_", 5);
    for (int i = 0; i < 16; i++) {
        out[5 + 2 * i] = hex[random[i] >> 4];
        out[6 + 2 * i] = hex[random[i] & 15];
    }
    out[37] = '\0';
}

int mr_respstore_key(const char *scope, const char *id, char out[MR_RESPSTORE_KEY_MAX])
{
    uint8_t d[MR_SHA256_DIGEST_LEN];
    char hex[MR_SHA256_HEX_LEN + 1];

    if (!mr_respstore_id_ok(id))
        return -1;
    mr_sha256(scope ? scope : "", scope ? strlen(scope) : 0, d);
    mr_sha256_hex(d, hex);
    snprintf(out, MR_RESPSTORE_KEY_MAX, "resp:%.32s:%s", hex, id);
    return 0;
}

int mr_respstore_put(const mr_respstore_backend_t *be, const char *scope, const char *id,
                     const char *val, size_t len, uint64_t ttl_ms, mr_respstore_cb cb, void *arg)
{
    char key[MR_RESPSTORE_KEY_MAX];

    if (mr_respstore_key(scope, id, key) < 0)
        return -1;
    return be->set(be->ctx, key, val, len, ttl_ms, cb, arg);
}

int mr_respstore_get(const mr_respstore_backend_t *be, const char *scope, const char *id,
                     mr_respstore_cb cb, void *arg)
{
    char key[MR_RESPSTORE_KEY_MAX];

    if (mr_respstore_key(scope, id, key) < 0)
        return -1;
    return be->get(be->ctx, key, cb, arg);
}

int mr_respstore_del(const mr_respstore_backend_t *be, const char *scope, const char *id,
                     mr_respstore_cb cb, void *arg)
{
    char key[MR_RESPSTORE_KEY_MAX];

    if (mr_respstore_key(scope, id, key) < 0)
        return -1;
    return be->del(be->ctx, key, cb, arg);
}

/* ------------------------------------------------------------ memory */

typedef struct entry {
    struct entry *chain;         /* next in its bucket */
    struct entry *newer, *older; /* the LRU list */
    uint64_t expires_ms;
    uint64_t hash;
    size_t bytes; /* charged against max_bytes */
    size_t len;
    char *val;
    char key[]; /* NUL-terminated; the value follows it */
} entry_t;

struct mr_respstore_mem {
    pthread_mutex_t lock;
    mr_respstore_mem_opts_t o;
    entry_t **buckets;
    size_t mask;
    entry_t *newest, *oldest;
    mr_respstore_mem_stats_t st;
};

static uint64_t mono_ms(void *arg)
{
    struct timespec ts;

    (void)arg;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t hash_key(const char *k)
{
    uint64_t h = 0xcbf29ce484222325ULL;

    for (; *k; k++)
        h = (h ^ (unsigned char)*k) * 0x100000001b3ULL;
    return h;
}

mr_respstore_mem_t *mr_respstore_mem_new(const mr_respstore_mem_opts_t *opts)
{
    mr_respstore_mem_t *m = calloc(1, sizeof(*m));
    size_t n = 64;

    if (!m)
        return NULL;
    m->o = *opts;
    if (!m->o.max_entries)
        m->o.max_entries = 10000;
    if (!m->o.max_bytes)
        m->o.max_bytes = (size_t)256 << 20;
    if (!m->o.max_ttl_ms)
        m->o.max_ttl_ms = 30ULL * 24 * 3600 * 1000;
    if (!m->o.clock)
        m->o.clock = mono_ms;
    while (n < m->o.max_entries && n < ((size_t)1 << 24))
        n <<= 1;
    m->mask = n - 1;
    if (!(m->buckets = calloc(n, sizeof(entry_t *))) || pthread_mutex_init(&m->lock, NULL) != 0) {
        free(m->buckets);
        free(m);
        return NULL;
    }
    return m;
}

void mr_respstore_mem_free(mr_respstore_mem_t *m)
{
    if (!m)
        return;
    for (entry_t *e = m->newest, *next; e; e = next) {
        next = e->older;
        free(e);
    }
    pthread_mutex_destroy(&m->lock);
    free(m->buckets);
    free(m);
}

static entry_t **slot_of(mr_respstore_mem_t *m, const char *key, uint64_t h)
{
    entry_t **s = &m->buckets[h & m->mask];

    while (*s && ((*s)->hash != h || strcmp((*s)->key, key) != 0))
        s = &(*s)->chain;
    return s;
}

static void lru_unlink(mr_respstore_mem_t *m, entry_t *e)
{
    if (e->newer)
        e->newer->older = e->older;
    else
        m->newest = e->older;
    if (e->older)
        e->older->newer = e->newer;
    else
        m->oldest = e->newer;
}

static void lru_push(mr_respstore_mem_t *m, entry_t *e)
{
    e->newer = NULL;
    e->older = m->newest;
    if (m->newest)
        m->newest->newer = e;
    m->newest = e;
    if (!m->oldest)
        m->oldest = e;
}

static void drop(mr_respstore_mem_t *m, entry_t *e)
{
    entry_t **s = slot_of(m, e->key, e->hash);

    *s = e->chain;
    lru_unlink(m, e);
    m->st.entries--;
    m->st.bytes -= e->bytes;
    free(e);
}

static int mem_set(void *ctx, const char *key, const char *val, size_t len, uint64_t ttl_ms,
                   mr_respstore_cb cb, void *arg)
{
    mr_respstore_mem_t *m = ctx;
    size_t kl = strlen(key), bytes = sizeof(entry_t) + kl + 1 + len;
    uint64_t h = hash_key(key);
    mr_respstore_status_t st = MR_RESPSTORE_OK;
    entry_t *e = NULL;

    if (!val && len)
        return -1;
    if (len > MR_RESPSTORE_VALUE_MAX || bytes > m->o.max_bytes)
        st = MR_RESPSTORE_TOO_LARGE;
    else if (!(e = malloc(bytes)))
        st = MR_RESPSTORE_UNAVAILABLE;
    pthread_mutex_lock(&m->lock);
    if (st == MR_RESPSTORE_OK) {
        memcpy(e->key, key, kl + 1);
        e->val = e->key + kl + 1;
        if (len)
            memcpy(e->val, val, len);
        e->len = len;
        e->bytes = bytes;
        e->hash = h;
        if (!ttl_ms || ttl_ms > m->o.max_ttl_ms)
            ttl_ms = m->o.max_ttl_ms;
        e->expires_ms = m->o.clock(m->o.clock_arg) + ttl_ms;
        entry_t *old = *slot_of(m, key, h);
        if (old)
            drop(m, old);
        while (m->oldest &&
               (m->st.entries >= m->o.max_entries || m->st.bytes + bytes > m->o.max_bytes)) {
            m->st.evicted++;
            drop(m, m->oldest);
        }
        e->chain = m->buckets[h & m->mask];
        m->buckets[h & m->mask] = e;
        lru_push(m, e);
        m->st.entries++;
        m->st.bytes += bytes;
    } else if (st == MR_RESPSTORE_TOO_LARGE) {
        m->st.too_large++;
    }
    pthread_mutex_unlock(&m->lock);
    if (cb)
        cb(arg, st, NULL, 0);
    return 0;
}

/* The live entry under key (an expired one is dropped), with m locked. */
static entry_t *find(mr_respstore_mem_t *m, const char *key)
{
    entry_t *e = *slot_of(m, key, hash_key(key));

    if (e && m->o.clock(m->o.clock_arg) >= e->expires_ms) {
        m->st.expired++;
        drop(m, e);
        e = NULL;
    }
    return e;
}

static int mem_get(void *ctx, const char *key, mr_respstore_cb cb, void *arg)
{
    mr_respstore_mem_t *m = ctx;
    mr_respstore_status_t st = MR_RESPSTORE_NOT_FOUND;
    char *copy = NULL;
    size_t len = 0;
    entry_t *e;

    if (!cb)
        return -1;
    pthread_mutex_lock(&m->lock);
    if ((e = find(m, key))) {
        lru_unlink(m, e);
        lru_push(m, e);
        /* the entry may go once the lock is released: the caller gets a copy */
        len = e->len;
        st = (copy = malloc(len + 1)) ? MR_RESPSTORE_OK : MR_RESPSTORE_UNAVAILABLE;
        if (copy) {
            memcpy(copy, e->val, len);
            copy[len] = '\0';
        }
    }
    pthread_mutex_unlock(&m->lock);
    cb(arg, st, copy, copy ? len : 0);
    free(copy);
    return 0;
}

static int mem_del(void *ctx, const char *key, mr_respstore_cb cb, void *arg)
{
    mr_respstore_mem_t *m = ctx;
    entry_t *e;
    int found;

    pthread_mutex_lock(&m->lock);
    e = find(m, key);
    found = e != NULL;
    if (found)
        drop(m, e);
    pthread_mutex_unlock(&m->lock);
    if (cb)
        cb(arg, found ? MR_RESPSTORE_OK : MR_RESPSTORE_NOT_FOUND, NULL, 0);
    return 0;
}

mr_respstore_backend_t mr_respstore_mem_backend(mr_respstore_mem_t *m)
{
    return (mr_respstore_backend_t){mem_set, mem_get, mem_del, m};
}

void mr_respstore_mem_stats(mr_respstore_mem_t *m, mr_respstore_mem_stats_t *out)
{
    pthread_mutex_lock(&m->lock);
    *out = m->st;
    pthread_mutex_unlock(&m->lock);
}
