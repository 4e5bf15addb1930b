/*
 * state_mem — the memory engine (state_int.h): exact across the threads of
 * one process, and the local counters the redis backend falls back to.
 *
 * Entries (windows, pools, reservations, kv values, once-ids) live in a hash
 * table split into SHARDS shards, each behind its own mutex. A reservation
 * is stored in its pool's shard (the shard is chosen by the pool's name, the
 * bucket by the full "pool\x1fid"), so one shard lock covers a pool and its
 * reservations; a transaction locks the shards of its ops in ascending
 * order, checks every op, applies all or none, and unlocks. A lock is held
 * for a few hash lookups and a 61-slot window scan: never across I/O.
 *
 * A pool keeps its open reservations in a list ordered by deadline, so
 * expiry (on every access and from the sweep) takes them from the head.
 *
 * Spend survives restarts through the state file (state_file.c): when a
 * persisted pool changes its writer thread is woken and takes a snapshot
 * of the pools here, one shard lock at a time. A pool's recorded value is
 * its spent plus its open charge-on-expiry reservations: after a crash
 * those would expire and be charged anyway.
 */
#include "state_int.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SHARDS 64
#define SHARD_BUCKETS 1024
#define RING (MR_STATE_WINDOW_BUCKETS + 1)
#define RES_SEP '\x1f'
#define ONCE_SEP '\x1e'
#define KV_SEP '\x1d'

enum { E_WIN = 1, E_POOL, E_RES, E_KV, E_ONCE };

typedef struct entry entry_t;

typedef struct win {
    uint32_t window_ms;
    uint64_t bucket_ms;
    uint64_t ep[RING]; /* bucket number + 1 held by the slot; 0 = empty */
    int64_t cnt[RING];
} win_t;

typedef struct pool {
    int64_t spent;
    int64_t out;        /* open reservations */
    int64_t out_charge; /* of which charged on expiry */
    uint64_t remote_used;
    int64_t local_base; /* spent + out when Redis last reported remote_used */
    bool persist;
    entry_t *head, *tail; /* open reservations by deadline */
} pool_t;

typedef struct res {
    entry_t *pool;
    entry_t *prev, *next;
    int64_t amount;
    bool charge;
} res_t;

struct entry {
    entry_t *next;
    uint64_t hash;
    uint64_t expires_ms; /* window: after its last bucket; pool: key ttl; res: deadline */
    uint8_t type;
    union {
        win_t win;
        pool_t pool;
        res_t res;
        struct {
            char *val;
            size_t len;
        } kv;
    } u;
    char key[];
};

typedef struct shard {
    _Alignas(64) pthread_mutex_t mu;
    size_t n; /* entries linked: the sweep skips an empty shard's buckets */
    entry_t *b[SHARD_BUCKETS];
} shard_t;

struct mr_mem {
    shard_t shards[SHARDS];
    mr_mem_opts_t o;
    atomic_size_t kv_bytes;
    mr_state_file_t *file; /* NULL: spend is not kept */
    uint64_t load_now;     /* the clock while the file is read */
};

static uint64_t fnv(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h;
}

static shard_t *shard_of(mr_mem_t *m, const char *name)
{
    return &m->shards[fnv(name, strlen(name)) % SHARDS];
}

static entry_t *find(shard_t *s, const char *key, uint64_t h)
{
    for (entry_t *e = s->b[h % SHARD_BUCKETS]; e; e = e->next)
        if (e->hash == h && strcmp(e->key, key) == 0)
            return e;
    return NULL;
}

static entry_t *create(shard_t *s, const char *key, uint64_t h, uint8_t type)
{
    size_t n = strlen(key) + 1;
    entry_t *e = calloc(1, sizeof(*e) + n);
    if (!e)
        return NULL;
    memcpy(e->key, key, n);
    e->hash = h;
    e->type = type;
    e->next = s->b[h % SHARD_BUCKETS];
    s->b[h % SHARD_BUCKETS] = e;
    s->n++;
    return e;
}

static void unlink_entry(shard_t *s, entry_t *e)
{
    entry_t **pp = &s->b[e->hash % SHARD_BUCKETS];
    while (*pp && *pp != e)
        pp = &(*pp)->next;
    if (*pp) {
        *pp = e->next;
        s->n--;
    }
}

/* "pool" SEP "id" into buf; false when it does not fit. */
static bool sub_key(char *buf, size_t cap, const char *pool, char sep, const char *id)
{
    int n = snprintf(buf, cap, "%s%c%s", pool, sep, id);
    return n > 0 && (size_t)n < cap;
}

static void mark_dirty(mr_mem_t *m)
{
    mr_state_file_dirty(m->file);
}

/* ---- windows ---------------------------------------------------------- */

static uint64_t win_bucket_ms(uint32_t window_ms)
{
    return window_ms / MR_STATE_WINDOW_BUCKETS ? window_ms / MR_STATE_WINDOW_BUCKETS : 1;
}

static void win_reset(win_t *w, uint32_t window_ms)
{
    memset(w, 0, sizeof(*w));
    w->window_ms = window_ms;
    w->bucket_ms = win_bucket_ms(window_ms);
}

static int64_t win_count(const win_t *w, uint64_t b)
{
    size_t i = (size_t)(b % RING);
    return w->ep[i] == b + 1 ? w->cnt[i] : 0;
}

/* The count at now; until it is 0 (reset) and until it is below limit. */
static void win_read(const win_t *w, uint64_t now, uint64_t limit, mr_state_op_result_t *r)
{
    uint64_t cur = now / w->bucket_ms, first = cur >= RING - 1 ? cur - (RING - 1) : 0;
    int64_t sum = 0;
    uint64_t newest = UINT64_MAX;

    for (uint64_t b = first; b <= cur; b++) {
        int64_t c = win_count(w, b);
        sum += c;
        if (c > 0)
            newest = b;
    }
    r->used = sum > 0 ? (uint64_t)sum : 0;
    r->spent = r->used;
    r->reset_ms = newest == UINT64_MAX ? 0 : (newest + RING) * w->bucket_ms - now;
    r->retry_ms = 0;
    if (limit == 0 || r->used < limit)
        return;
    for (uint64_t b = first; b <= cur; b++) {
        sum -= win_count(w, b);
        if (sum < (int64_t)limit) {
            r->retry_ms = (b + RING) * w->bucket_ms - now;
            return;
        }
    }
}

static bool win_add(win_t *w, uint64_t at, uint64_t now, int64_t n)
{
    uint64_t b = at / w->bucket_ms, cur = now / w->bucket_ms;
    size_t i = (size_t)(b % RING);
    if (b + RING - 1 < cur || b > cur)
        return false; /* out of the window: nothing to correct */
    if (w->ep[i] != b + 1) {
        w->ep[i] = b + 1;
        w->cnt[i] = 0;
    }
    w->cnt[i] += n;
    return true;
}

static entry_t *win_get(shard_t *s, const mr_state_op_t *op, bool make, uint64_t now)
{
    uint64_t h = fnv(op->key, strlen(op->key));
    entry_t *e = find(s, op->key, h);
    if (e && e->type != E_WIN)
        return NULL;
    if (!e && make && (e = create(s, op->key, h, E_WIN)) != NULL)
        win_reset(&e->u.win, op->window_ms);
    if (e && e->u.win.window_ms != op->window_ms)
        win_reset(&e->u.win, op->window_ms); /* a new length: start over */
    if (e && make)
        e->expires_ms = now + op->window_ms + 2 * e->u.win.bucket_ms;
    return e;
}

/* ---- pools ------------------------------------------------------------ */

static uint64_t pool_key_ttl(const mr_state_op_t *op)
{
    uint64_t t = op->key_ttl_ms ? op->key_ttl_ms : 2ULL * op->ttl_ms;
    return t < 3600000ULL && !op->key_ttl_ms ? 3600000ULL : t;
}

/* Closes an open reservation: charges `cost` (< 0: nothing) and frees it.
 * s NULL: the caller took it out of its bucket already. */
static void res_close(mr_mem_t *m, shard_t *s, entry_t *re, int64_t cost)
{
    res_t *r = &re->u.res;
    pool_t *p = &r->pool->u.pool;

    p->out -= r->amount;
    if (r->charge)
        p->out_charge -= r->amount;
    if (cost > 0)
        p->spent += cost;
    if (r->prev)
        r->prev->u.res.next = r->next;
    else
        p->head = r->next;
    if (r->next)
        r->next->u.res.prev = r->prev;
    else
        p->tail = r->prev;
    if (p->persist)
        mark_dirty(m);
    if (s)
        unlink_entry(s, re);
    free(re);
}

static void res_expire(mr_mem_t *m, shard_t *s, entry_t *re)
{
    res_t *r = &re->u.res;
    if (r->charge && m->o.on_expired_charge) {
        const char *id = strchr(re->key, RES_SEP);
        m->o.on_expired_charge(m->o.hook_arg, r->pool->key, id ? id + 1 : "", r->amount);
    }
    res_close(m, s, re, r->charge ? r->amount : -1);
}

static void pool_sweep(mr_mem_t *m, shard_t *s, entry_t *pe, uint64_t now)
{
    while (pe->u.pool.head && pe->u.pool.head->expires_ms <= now)
        res_expire(m, s, pe->u.pool.head);
}

static entry_t *pool_get(mr_mem_t *m, shard_t *s, const char *key, bool make, uint64_t now)
{
    uint64_t h = fnv(key, strlen(key));
    entry_t *e = find(s, key, h);
    if (e && e->type != E_POOL)
        return NULL;
    if (!e && make)
        e = create(s, key, h, E_POOL);
    if (e)
        pool_sweep(m, s, e, now);
    return e;
}

static void pool_read(const entry_t *pe, mr_state_op_result_t *r)
{
    const pool_t *p = &pe->u.pool;
    r->spent = p->spent > 0 ? (uint64_t)p->spent : 0;
    r->used = p->spent + p->out > 0 ? (uint64_t)(p->spent + p->out) : 0;
}

static entry_t *res_find(shard_t *s, const char *pool, const char *id)
{
    char k[MR_STATE_KEY_MAX + MR_STATE_ID_MAX + 2];
    if (!sub_key(k, sizeof(k), pool, RES_SEP, id))
        return NULL;
    entry_t *e = find(s, k, fnv(k, strlen(k)));
    return e && e->type == E_RES ? e : NULL;
}

static bool res_open(shard_t *s, entry_t *pe, const mr_state_op_t *op, uint64_t now)
{
    char k[MR_STATE_KEY_MAX + MR_STATE_ID_MAX + 2];
    pool_t *p = &pe->u.pool;
    entry_t *re;

    if (!sub_key(k, sizeof(k), op->key, RES_SEP, op->id) ||
        (re = create(s, k, fnv(k, strlen(k)), E_RES)) == NULL)
        return false;
    re->expires_ms = now + op->ttl_ms;
    re->u.res.pool = pe;
    re->u.res.amount = op->amount;
    re->u.res.charge = op->charge_on_expiry;
    /* deadlines mostly arrive in order: insert from the tail */
    entry_t *at = p->tail;
    while (at && at->expires_ms > re->expires_ms)
        at = at->u.res.prev;
    re->u.res.prev = at;
    re->u.res.next = at ? at->u.res.next : p->head;
    if (re->u.res.next)
        re->u.res.next->u.res.prev = re;
    else
        p->tail = re;
    if (at)
        at->u.res.next = re;
    else
        p->head = re;
    p->out += op->amount;
    if (op->charge_on_expiry)
        p->out_charge += op->amount;
    return true;
}

/* Once-ids: true when `id` under `pool` is new (and now remembered). */
static bool once_first(shard_t *s, const char *pool, const char *id, uint64_t now)
{
    char k[MR_STATE_KEY_MAX + MR_STATE_ID_MAX + 2];
    if (!id[0] || !sub_key(k, sizeof(k), pool, ONCE_SEP, id))
        return true;
    uint64_t h = fnv(k, strlen(k));
    if (find(s, k, h))
        return false;
    entry_t *e = create(s, k, h, E_ONCE);
    if (e)
        e->expires_ms = now + MR_STATE_ONCE_TTL_MS;
    return true;
}

/* ---- transactions ----------------------------------------------------- */

/* The cap an op is checked against: exact, or this instance's share. */
static bool over_cap(const entry_t *pe, const mr_state_op_t *op, unsigned div)
{
    if (op->limit == 0)
        return false;
    int64_t used = pe ? pe->u.pool.spent + pe->u.pool.out : 0;
    if (div == 0)
        return used >= (int64_t)op->limit;
    uint64_t base = pe ? pe->u.pool.remote_used : 0;
    int64_t mine = used - (pe ? pe->u.pool.local_base : 0);
    uint64_t share = op->limit > base ? (op->limit - base) / div : 0;
    return mine >= (int64_t)share;
}

static uint64_t window_limit(uint64_t limit, unsigned div)
{
    if (limit == 0 || div <= 1)
        return limit;
    return (limit / div) ? (limit / div) : 1;
}

/* Check phase: true when op may proceed; fills r with the current values. */
static bool check_op(mr_mem_t *m, shard_t *s, const mr_state_op_t *op, uint64_t now, unsigned div,
                     mr_state_op_result_t *r)
{
    if (op->kind == MR_OP_WINDOW_HIT || op->kind == MR_OP_WINDOW_GET) {
        entry_t *e = win_get(s, op, false, now);
        uint64_t lim = window_limit(op->limit, div);
        if (!e)
            return true;
        win_read(&e->u.win, now, lim, r);
        return op->kind != MR_OP_WINDOW_HIT || lim == 0 || r->used < lim;
    }
    if (op->kind == MR_OP_POOL_RESERVE || op->kind == MR_OP_POOL_GET) {
        entry_t *pe = pool_get(m, s, op->key, false, now);
        if (pe)
            pool_read(pe, r);
        if (op->kind == MR_OP_POOL_GET || (pe && res_find(s, op->key, op->id)))
            return true; /* a retried reserve holds already */
        return !over_cap(pe, op, div);
    }
    return true;
}

static void apply_pool(mr_mem_t *m, shard_t *s, const mr_state_op_t *op, uint64_t now,
                       mr_state_op_result_t *r)
{
    entry_t *pe = pool_get(m, s, op->key, op->kind != MR_OP_POOL_GET, now);
    if (!pe)
        return;
    pool_t *p = &pe->u.pool;
    if (op->kind == MR_OP_POOL_RESERVE && !res_find(s, op->key, op->id)) {
        r->applied = res_open(s, pe, op, now);
        if (op->ttl_ms && now + op->ttl_ms > pe->expires_ms)
            pe->expires_ms = now + op->ttl_ms;
    } else if (op->kind == MR_OP_POOL_SETTLE || op->kind == MR_OP_POOL_RELEASE) {
        entry_t *re = res_find(s, op->key, op->id);
        if (re) {
            res_close(m, s, re, op->kind == MR_OP_POOL_SETTLE ? op->amount : -1);
            r->applied = true;
        }
    } else if (op->kind == MR_OP_POOL_CHARGE && once_first(s, op->key, op->id, now)) {
        p->spent += op->amount;
        r->applied = true;
    }
    if (op->kind != MR_OP_POOL_GET) {
        if (op->persist && !p->persist)
            p->persist = true;
        uint64_t until = now + pool_key_ttl(op);
        if (until > pe->expires_ms || op->key_ttl_ms)
            pe->expires_ms = until;
        if (p->persist && r->applied)
            mark_dirty(m);
    }
    pool_read(pe, r);
}

static void apply_op(mr_mem_t *m, shard_t *s, const mr_state_op_t *op, uint64_t now,
                     mr_state_op_result_t *r)
{
    entry_t *e;
    memset(r, 0, sizeof(*r));
    switch (op->kind) {
    case MR_OP_WINDOW_HIT:
    case MR_OP_WINDOW_ADD:
        if (op->kind == MR_OP_WINDOW_ADD && !once_first(s, op->key, op->id, now))
            break;
        e = win_get(s, op, true, now);
        if (!e)
            break;
        r->applied =
            win_add(&e->u.win, op->kind == MR_OP_WINDOW_HIT ? now : op->at_ms, now, op->amount);
        win_read(&e->u.win, now, op->limit, r);
        break;
    case MR_OP_WINDOW_GET:
        if ((e = win_get(s, op, false, now)) != NULL)
            win_read(&e->u.win, now, op->limit, r);
        break;
    default:
        apply_pool(m, s, op, now, r);
    }
}

/* Locks the shards of t's ops, each once, in address order; returns how
 * many are in `order`. */
static size_t lock_shards(mr_mem_t *m, const mr_state_txn_t *t, shard_t **order)
{
    size_t n = 0;
    for (unsigned i = 0; i < t->n; i++) {
        shard_t *s = shard_of(m, t->ops[i].key);
        size_t j = 0;
        while (j < n && order[j] < s)
            j++;
        if (j < n && order[j] == s)
            continue;
        memmove(order + j + 1, order + j, (n - j) * sizeof(shard_t *));
        order[j] = s;
        n++;
    }
    for (size_t i = 0; i < n; i++)
        pthread_mutex_lock(&order[i]->mu);
    return n;
}

void mr_mem_exec(mr_mem_t *m, const mr_state_txn_t *t, uint64_t now, unsigned div,
                 mr_state_result_t *res)
{
    shard_t *order[MR_STATE_MAX_OPS];
    size_t n_locked = lock_shards(m, t, order);

    memset(res, 0, sizeof(*res));
    res->denied_op = -1;
    res->local = div > 0;
    for (unsigned i = 0; i < t->n && res->denied_op < 0; i++)
        if (!check_op(m, shard_of(m, t->ops[i].key), &t->ops[i], now, div, &res->r[i]))
            res->denied_op = (int)i;
    if (res->denied_op >= 0)
        res->status = MR_STATE_DENIED;
    else
        for (unsigned i = 0; i < t->n; i++)
            apply_op(m, shard_of(m, t->ops[i].key), &t->ops[i], now, &res->r[i]);
    while (n_locked)
        pthread_mutex_unlock(&order[--n_locked]->mu);
}

void mr_mem_note_remote(mr_mem_t *m, const char *key, uint64_t used, uint64_t now)
{
    shard_t *s = shard_of(m, key);
    pthread_mutex_lock(&s->mu);
    entry_t *pe = find(s, key, fnv(key, strlen(key)));
    if (!pe)
        pe = create(s, key, fnv(key, strlen(key)), E_POOL);
    if (pe && pe->type == E_POOL) {
        pe->u.pool.remote_used = used;
        pe->u.pool.local_base = pe->u.pool.spent + pe->u.pool.out;
        if (pe->expires_ms < now + MR_STATE_ONCE_TTL_MS)
            pe->expires_ms = now + MR_STATE_ONCE_TTL_MS; /* the base is worth a day */
    }
    pthread_mutex_unlock(&s->mu);
}

/* ---- sweep and kv ----------------------------------------------------- */

static void free_entry(mr_mem_t *m, entry_t *e)
{
    if (e->type == E_KV) {
        atomic_fetch_sub(&m->kv_bytes, e->u.kv.len);
        free(e->u.kv.val);
    }
    free(e);
}

/* true when e may go now (expired, and for a pool: nothing open). */
static bool sweep_due(const entry_t *e, uint64_t now)
{
    if (e->type == E_POOL)
        return !e->u.pool.head && e->expires_ms <= now;
    return e->expires_ms <= now;
}

void mr_mem_sweep(mr_mem_t *m, uint64_t now)
{
    for (size_t i = 0; i < SHARDS; i++) {
        shard_t *s = &m->shards[i];
        pthread_mutex_lock(&s->mu);
        /* 64 Ki bucket heads walked every second stall the loop that
         * sweeps (~0.5 ms here), idle or not: visit only shards in use */
        for (size_t b = 0; s->n && b < SHARD_BUCKETS; b++) {
            entry_t **pp = &s->b[b];
            while (*pp) {
                entry_t *e = *pp;
                if (!sweep_due(e, now)) {
                    pp = &e->next;
                    continue;
                }
                *pp = e->next;
                s->n--;
                if (e->type == E_RES)
                    res_expire(m, NULL, e); /* charged or dropped, and freed */
                else
                    free_entry(m, e);
            }
        }
        pthread_mutex_unlock(&s->mu);
    }
}

int mr_mem_kv_set(mr_mem_t *m, const char *key, const char *val, size_t len, uint64_t expires_ms)
{
    char k[MR_STATE_KEY_MAX + 2];
    bool stored = false;
    if (len > MR_STATE_KV_VALUE_MAX || !sub_key(k, sizeof(k), "", KV_SEP, key))
        return -1;
    if (atomic_fetch_add(&m->kv_bytes, len) + len > MR_STATE_KV_MEM_MAX) {
        atomic_fetch_sub(&m->kv_bytes, len);
        return -1;
    }
    char *copy = malloc(len ? len : 1);
    shard_t *s = shard_of(m, k);
    uint64_t h = fnv(k, strlen(k));
    if (copy) {
        memcpy(copy, val, len);
        pthread_mutex_lock(&s->mu);
        entry_t *e = find(s, k, h);
        if (!e)
            e = create(s, k, h, E_KV);
        if (e && e->type == E_KV) {
            atomic_fetch_sub(&m->kv_bytes, e->u.kv.len);
            free(e->u.kv.val);
            e->u.kv.val = copy; /* the entry owns it now */
            e->u.kv.len = len;
            e->expires_ms = expires_ms;
            stored = true;
        }
        pthread_mutex_unlock(&s->mu);
    }
    if (!stored) {
        atomic_fetch_sub(&m->kv_bytes, len);
        free(copy);
    }
    return stored ? 0 : -1;
}

char *mr_mem_kv_get(mr_mem_t *m, const char *key, uint64_t now, size_t *len)
{
    char k[MR_STATE_KEY_MAX + 2], *out = NULL;
    if (!sub_key(k, sizeof(k), "", KV_SEP, key))
        return NULL;
    shard_t *s = shard_of(m, k);
    pthread_mutex_lock(&s->mu);
    entry_t *e = find(s, k, fnv(k, strlen(k)));
    if (e && e->type == E_KV && e->expires_ms > now && (out = malloc(e->u.kv.len + 1)) != NULL) {
        memcpy(out, e->u.kv.val, e->u.kv.len);
        out[e->u.kv.len] = '\0';
        *len = e->u.kv.len;
    }
    pthread_mutex_unlock(&s->mu);
    return out;
}

void mr_mem_kv_del(mr_mem_t *m, const char *key)
{
    char k[MR_STATE_KEY_MAX + 2];
    if (!sub_key(k, sizeof(k), "", KV_SEP, key))
        return;
    shard_t *s = shard_of(m, k);
    pthread_mutex_lock(&s->mu);
    entry_t *e = find(s, k, fnv(k, strlen(k)));
    if (e && e->type == E_KV) {
        unlink_entry(s, e);
        free_entry(m, e);
    }
    pthread_mutex_unlock(&s->mu);
}

/* ---- the state file (state_file.c) ---------------------------------- */

/* The persisted pools as {"key":{"spent":N,"expires_ms":N}}. */
static json_t *snapshot(void *arg)
{
    mr_mem_t *m = arg;
    json_t *pools = json_object();
    for (size_t i = 0; pools && i < SHARDS; i++) {
        shard_t *s = &m->shards[i];
        pthread_mutex_lock(&s->mu);
        for (size_t b = 0; b < SHARD_BUCKETS; b++)
            for (entry_t *e = s->b[b]; e; e = e->next) {
                if (e->type != E_POOL || !e->u.pool.persist)
                    continue;
                int64_t v = e->u.pool.spent + e->u.pool.out_charge;
                json_object_set_new(
                    pools, e->key,
                    json_pack("{sIsI}", "spent", (json_int_t)v, "expires_ms",
                              (json_int_t)(e->expires_ms > INT64_MAX ? INT64_MAX : e->expires_ms)));
            }
        pthread_mutex_unlock(&s->mu);
    }
    return pools;
}

/* One pool of the file, read at start (before any loop runs). */
static int load_pool(void *arg, const char *key, int64_t spent, uint64_t expires_ms, char *why,
                     size_t whylen)
{
    mr_mem_t *m = arg;
    if (expires_ms <= m->load_now)
        return 0; /* its period is over */
    shard_t *s = shard_of(m, key);
    entry_t *pe = pool_get(m, s, key, true, m->load_now);
    if (!pe) {
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    pe->u.pool.spent = spent;
    pe->u.pool.persist = true;
    pe->expires_ms = expires_ms;
    return 0;
}

/* ---- life ------------------------------------------------------------- */

int mr_mem_new(const mr_mem_opts_t *o, uint64_t now, mr_mem_t **out, char *err, size_t errlen)
{
    mr_mem_t *m = calloc(1, sizeof(*m));
    *out = NULL;
    if (!m) {
        snprintf(err, errlen, "state: out of memory");
        return -1;
    }
    m->o = *o;
    for (size_t i = 0; i < SHARDS; i++)
        pthread_mutex_init(&m->shards[i].mu, NULL);
    m->load_now = now;
    if (o->file &&
        mr_state_file_open(o->file, load_pool, snapshot, m, &m->file, err, errlen) != 0) {
        mr_mem_free(m);
        return -1;
    }
    *out = m;
    return 0;
}

void mr_mem_file_stats(mr_mem_t *m, uint64_t *writes, uint64_t *errors)
{
    mr_state_file_stats(m->file, writes, errors);
}

void mr_mem_free(mr_mem_t *m)
{
    if (!m)
        return;
    mr_state_file_close(m->file); /* its last save reads the shards */
    for (size_t i = 0; i < SHARDS; i++) {
        for (size_t b = 0; b < SHARD_BUCKETS; b++)
            for (entry_t *e = m->shards[i].b[b], *n; e; e = n) {
                n = e->next;
                free_entry(m, e);
            }
        pthread_mutex_destroy(&m->shards[i].mu);
    }
    free(m);
}
