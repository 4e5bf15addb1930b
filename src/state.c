/*
 * state — the front of the state module (state.h): life of the state and of
 * its loop handles, dispatch to the backend, reservation ids, the breaker
 * hint cache, statistics, and what the redis backend does while Redis is
 * away (the outage path and the replay journal).
 *
 * The journal holds the ops Redis must still see: closes of reservations
 * Redis holds, charges of reservations made locally, and window hits
 * counted locally. Each carries an id that makes replaying it twice
 * harmless (a reservation id, or a fresh once-id), so a replay whose answer
 * was lost is simply sent again. The primary loop replays it in order,
 * one batch at a time.
 */
#include "state_int.h"

#include "meridian/log.h"

#include <stdint.h>
#include <arpa/inet.h>
#include <inttypes.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define SWEEP_MS 1000
#define JOURNAL_MERGE_SCAN 64

static uint64_t real_clock(void *arg)
{
    struct timespec ts;
    (void)arg;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t mr_state_now(const mr_state_t *st)
{
    return st->o.clock(st->o.clock_arg);
}

mr_state_t *mr_state_of(const mr_state_loop_t *sl)
{
    return sl->st;
}

mr_state_backend_t mr_state_backend(const mr_state_t *st)
{
    return st ? st->o.backend : MR_STATE_MEMORY;
}

const char *mr_state_backend_name(mr_state_backend_t b)
{
    return b == MR_STATE_REDIS ? "redis" : "memory";
}

const char *mr_state_outage_name(mr_state_outage_t o)
{
    return o == MR_OUTAGE_DENY ? "deny" : "local";
}

/* A reservation made locally expired and was charged: Redis must hear it. */
static void expired_charge(void *arg, const char *key, const char *id, int64_t amount)
{
    mr_state_t *st = arg;
    mr_state_op_t op;
    memset(&op, 0, sizeof(op));
    op.kind = MR_OP_POOL_CHARGE;
    snprintf(op.key, sizeof(op.key), "%s", key);
    snprintf(op.id, sizeof(op.id), "%s", id);
    op.amount = amount;
    op.persist = true;
    mr_state_journal_push(st, &op);
}

static int copy_opts(mr_state_t *st, const mr_state_opts_t *o, char *err, size_t errlen)
{
    st->o = *o;
    st->ns = strdup(o->ns ? o->ns : "meridian");
    st->state_file = o->state_file ? strdup(o->state_file) : NULL;
    if (!st->ns || (o->state_file && !st->state_file)) {
        snprintf(err, errlen, "state: out of memory");
        return -1;
    }
    st->o.ns = st->ns;
    st->o.state_file = st->state_file;
    st->o.redis_url = NULL; /* parsed into addr; may hold a password */
    if (!st->o.clock)
        st->o.clock = real_clock;
    if (!st->o.command_timeout_ms)
        st->o.command_timeout_ms = MR_STATE_DEFAULT_TIMEOUT_MS;
    if (!st->o.hint_poll_ms)
        st->o.hint_poll_ms = MR_STATE_DEFAULT_HINT_POLL_MS;
    if (!st->o.heartbeat_ms)
        st->o.heartbeat_ms = MR_STATE_DEFAULT_HEARTBEAT_MS;
    if (!st->o.backoff_max_ms)
        st->o.backoff_max_ms = MR_STATE_DEFAULT_BACKOFF_MAX_MS;
    return 0;
}

static int make_backend(mr_state_t *st, const mr_state_opts_t *o, char *err, size_t errlen)
{
    mr_mem_opts_t mo = {0};
    if (o->backend == MR_STATE_REDIS) {
        if (!o->redis_url) {
            snprintf(err, errlen, "state.redis_url: required with \"backend\": \"redis\"");
            return -1;
        }
        if (mr_redis_parse_url(o->redis_url, &st->addr, err, errlen) != 0)
            return -1;
        st->journal = calloc(MR_STATE_JOURNAL_MAX, sizeof(*st->journal));
        if (!st->journal) {
            snprintf(err, errlen, "state: out of memory");
            return -1;
        }
        mo.on_expired_charge = expired_charge;
        mo.hook_arg = st;
    } else {
        mo.file = st->state_file;
        atomic_store(&st->up, true);
    }
    return mr_mem_new(&mo, mr_state_now(st), &st->mem, err, errlen);
}

int mr_state_new(const mr_state_opts_t *opts, mr_state_t **out, char *err, size_t errlen)
{
    mr_state_t *st = calloc(1, sizeof(*st));
    uint64_t rnd = 0;

    *out = NULL;
    if (!st) {
        snprintf(err, errlen, "state: out of memory");
        return -1;
    }
    pthread_mutex_init(&st->mu, NULL);
    if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
        rnd = real_clock(NULL) ^ (uint64_t)(uintptr_t)st;
    snprintf(st->instance, sizeof(st->instance), "%016" PRIx64, rnd);
    atomic_store(&st->live, 1);
    if (copy_opts(st, opts, err, errlen) != 0 || make_backend(st, opts, err, errlen) != 0) {
        mr_state_free(st);
        return -1;
    }
    *out = st;
    return 0;
}

void mr_state_free(mr_state_t *st)
{
    if (!st)
        return;
    mr_mem_free(st->mem);
    if (st->addr.password) {
        explicit_bzero(st->addr.password, strlen(st->addr.password));
        free(st->addr.password);
    }
    free(st->journal);
    free(st->ns);
    free(st->state_file);
    pthread_mutex_destroy(&st->mu);
    free(st);
}

/* ---- loops ------------------------------------------------------------ */

static void on_tick(uv_timer_t *t)
{
    mr_state_loop_t *sl = t->data;
    mr_state_t *st = sl->st;
    uint64_t now = mr_state_now(st);
    /* the redis backend ticks every hint_poll_ms; the sweep wants ~1 s */
    if (now - sl->last_sweep_ms >= SWEEP_MS || now < sl->last_sweep_ms) {
        sl->last_sweep_ms = now;
        mr_mem_sweep(st->mem, now);
    }
    if (st->o.backend == MR_STATE_REDIS)
        mr_redis_tick(sl);
}

static void become_primary(mr_state_loop_t *sl)
{
    uint64_t every = sl->st->o.backend == MR_STATE_REDIS ? sl->st->o.hint_poll_ms : SWEEP_MS;
    sl->primary = true;
    uv_timer_start(&sl->tick, on_tick, every, every);
}

/* The first loop, or any loop after the primary closed, takes the duties.
 * One atomic load on every call; a compare-and-swap only when it is free. */
static void claim_primary(mr_state_loop_t *sl)
{
    mr_state_loop_t *none = NULL;
    if (sl->primary || sl->closing || atomic_load(&sl->st->primary) != NULL)
        return;
    if (atomic_compare_exchange_strong(&sl->st->primary, &none, sl))
        become_primary(sl);
}

int mr_state_attach(mr_state_t *st, uv_loop_t *loop, mr_state_loop_t **out, char *err,
                    size_t errlen)
{
    mr_state_loop_t *sl = calloc(1, sizeof(*sl));
    *out = NULL;
    if (!sl || uv_timer_init(loop, &sl->tick) != 0) {
        free(sl);
        snprintf(err, errlen, "state: cannot set up a loop handle");
        return -1;
    }
    sl->st = st;
    sl->loop = loop;
    sl->tick.data = sl;
    pthread_mutex_lock(&st->mu);
    st->n_loops++;
    pthread_mutex_unlock(&st->mu);
    if (st->o.backend == MR_STATE_REDIS && mr_redis_attach(sl, err, errlen) != 0) {
        sl->closing = true;
        mr_state_loop_close(sl);
        return -1;
    }
    claim_primary(sl);
    *out = sl;
    return 0;
}

void mr_state_handle_closed(mr_state_loop_t *sl)
{
    if (--sl->pending_closes == 0)
        free(sl);
}

static void tick_closed(uv_handle_t *h)
{
    mr_state_handle_closed(h->data);
}

void mr_state_loop_close(mr_state_loop_t *sl)
{
    mr_state_t *st;
    if (!sl)
        return;
    st = sl->st;
    sl->closing = true;
    pthread_mutex_lock(&st->mu);
    mr_state_loop_t *me = sl;
    atomic_compare_exchange_strong(&st->primary, &me, NULL);
    st->n_loops--;
    pthread_mutex_unlock(&st->mu);
    sl->pending_closes++;
    if (st->o.backend == MR_STATE_REDIS)
        mr_redis_close(sl); /* adds its own pending closes */
    uv_close((uv_handle_t *)&sl->tick, tick_closed);
}

void mr_state_new_id(mr_state_loop_t *sl, char out[MR_STATE_ID_MAX])
{
    uint64_t n = atomic_fetch_add(&sl->st->seq, 1) + 1;
    snprintf(out, MR_STATE_ID_MAX, "%s-%" PRIu64, sl->st->instance, n);
}

void mr_state_key_escape(const char *in, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)in; *p && o + 4 < cap; p++) {
        if (*p < 0x21 || *p == '{' || *p == '}' || *p == '%' || *p == ':' || *p >= 0x7f) {
            out[o++] = '%';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 15];
        } else {
            out[o++] = (char)*p;
        }
    }
    out[o] = '\0';
}

mr_state_op_t *mr_state_txn_add(mr_state_txn_t *txn, mr_state_op_kind_t kind, const char *key,
                                const char *id)
{
    if (txn->n >= MR_STATE_MAX_OPS)
        return NULL;
    mr_state_op_t *op = &txn->ops[txn->n++];
    memset(op, 0, sizeof(*op));
    op->kind = kind;
    snprintf(op->key, sizeof(op->key), "%s", key ? key : "");
    snprintf(op->id, sizeof(op->id), "%s", id ? id : "");
    return op;
}

static bool txn_valid(const mr_state_txn_t *t)
{
    if (t->n == 0 || t->n > MR_STATE_MAX_OPS)
        return false;
    for (unsigned i = 0; i < t->n; i++) {
        const mr_state_op_t *op = &t->ops[i];
        if ((unsigned)op->kind >= MR_OP__COUNT || !op->key[0] ||
            !memchr(op->key, '\0', sizeof(op->key)) || strpbrk(op->key, "{}\x1d\x1e\x1f") ||
            !memchr(op->id, '\0', sizeof(op->id)))
            return false;
        if ((op->kind == MR_OP_WINDOW_HIT || op->kind == MR_OP_WINDOW_ADD ||
             op->kind == MR_OP_WINDOW_GET) &&
            op->window_ms == 0)
            return false;
        if ((op->kind == MR_OP_POOL_RESERVE || op->kind == MR_OP_POOL_SETTLE ||
             op->kind == MR_OP_POOL_RELEASE) &&
            !op->id[0])
            return false;
    }
    return true;
}

void mr_state_answer_unavailable(mr_state_cb cb, void *arg)
{
    mr_state_result_t res;
    memset(&res, 0, sizeof(res));
    res.status = MR_STATE_UNAVAILABLE;
    res.denied_op = -1;
    cb(arg, &res);
}

int mr_state_exec(mr_state_loop_t *sl, const mr_state_txn_t *txn, mr_state_cb cb, void *arg)
{
    mr_state_result_t res;
    if (!txn_valid(txn) || !cb)
        return -1;
    claim_primary(sl);
    if (sl->closing) {
        mr_state_answer_unavailable(cb, arg);
    } else if (sl->st->o.backend == MR_STATE_MEMORY) {
        mr_mem_exec(sl->st->mem, txn, mr_state_now(sl->st), 0, &res);
        cb(arg, &res);
    } else {
        mr_redis_exec(sl, txn, cb, arg);
    }
    return 0;
}

/* ---- the outage path (redis backend) ---------------------------------- */

static bool is_admission(const mr_state_op_t *op)
{
    return op->kind == MR_OP_WINDOW_HIT || op->kind == MR_OP_POOL_RESERVE;
}

/* Ops Redis holds the other half of: only the journal can deliver them. */
static bool remote_only(const mr_state_op_t *op)
{
    return ((op->kind == MR_OP_POOL_SETTLE || op->kind == MR_OP_POOL_RELEASE) && !op->local) ||
           op->kind == MR_OP_POOL_CHARGE;
}

/* What Redis must hear about op i of a txn applied locally. */
static void journal_effect(mr_state_loop_t *sl, const mr_state_op_t *op,
                           const mr_state_op_result_t *r, uint64_t now)
{
    mr_state_op_t j = *op;
    if (op->kind == MR_OP_WINDOW_HIT || op->kind == MR_OP_WINDOW_ADD) {
        j.kind = MR_OP_WINDOW_ADD;
        j.at_ms = op->kind == MR_OP_WINDOW_HIT ? now : op->at_ms;
        j.limit = 0;
        if (!j.id[0] || op->kind == MR_OP_WINDOW_HIT)
            mr_state_new_id(sl, j.id);
    } else if (op->kind == MR_OP_POOL_SETTLE && op->local && r->applied) {
        j.kind = MR_OP_POOL_CHARGE; /* once per reservation id */
        j.local = false;
    } else {
        return;
    }
    mr_state_journal_push(sl->st, &j);
}

void mr_state_outage_exec(mr_state_loop_t *sl, const mr_state_txn_t *t, mr_state_cb cb, void *arg)
{
    mr_state_t *st = sl->st;
    mr_state_txn_t local = {0};
    mr_state_result_t lres, res;
    unsigned map[MR_STATE_MAX_OPS], div = (unsigned)atomic_load(&st->live);
    bool admission = false;
    uint64_t now = mr_state_now(st);

    for (unsigned i = 0; i < t->n; i++)
        admission |= is_admission(&t->ops[i]);
    if (admission && st->o.on_outage == MR_OUTAGE_DENY) {
        atomic_fetch_add(&st->denied_unavailable, 1);
        mr_state_answer_unavailable(cb, arg);
        return;
    }
    for (unsigned i = 0; i < t->n; i++)
        if (!remote_only(&t->ops[i])) {
            map[i] = local.n;
            local.ops[local.n++] = t->ops[i];
        }
    memset(&lres, 0, sizeof(lres));
    if (local.n)
        mr_mem_exec(st->mem, &local, now, div ? div : 1, &lres);
    memset(&res, 0, sizeof(res));
    res.status = lres.status;
    res.local = true;
    res.denied_op = -1;
    for (unsigned i = 0; i < t->n; i++) {
        if (remote_only(&t->ops[i])) {
            res.r[i].applied = true; /* delivered later, at most once */
            if (res.status == MR_STATE_OK)
                mr_state_journal_push(st, &t->ops[i]);
            continue;
        }
        res.r[i] = lres.r[map[i]];
        if (lres.denied_op == (int)map[i])
            res.denied_op = (int)i;
        if (res.status == MR_STATE_OK)
            journal_effect(sl, &t->ops[i], &res.r[i], now);
    }
    if (admission)
        atomic_fetch_add(&st->local_answers, 1);
    cb(arg, &res);
}

/* ---- the journal ------------------------------------------------------ */

static bool merge_window_add(mr_state_t *st, const mr_state_op_t *op)
{
    uint64_t bms =
        op->window_ms / MR_STATE_WINDOW_BUCKETS ? op->window_ms / MR_STATE_WINDOW_BUCKETS : 1;
    size_t scanned = 0;
    for (size_t i = st->n_journal; i > 0 && scanned < JOURNAL_MERGE_SCAN; i--, scanned++) {
        mr_journal_entry_t *e = &st->journal[i - 1];
        if (e->inflight)
            return false;
        if (e->op.kind == MR_OP_WINDOW_ADD && e->op.window_ms == op->window_ms &&
            e->op.at_ms / bms == op->at_ms / bms && strcmp(e->op.key, op->key) == 0) {
            e->op.amount += op->amount;
            return true;
        }
    }
    return false;
}

void mr_state_journal_push(mr_state_t *st, const mr_state_op_t *op)
{
    pthread_mutex_lock(&st->mu);
    if (op->kind == MR_OP_WINDOW_ADD && merge_window_add(st, op)) {
        /* folded into an entry not yet sent */
    } else if (st->n_journal < MR_STATE_JOURNAL_MAX) {
        st->journal[st->n_journal].op = *op;
        st->journal[st->n_journal++].inflight = false;
    } else {
        atomic_fetch_add(&st->journal_dropped, 1);
    }
    pthread_mutex_unlock(&st->mu);
}

size_t mr_state_journal_take(mr_state_t *st, mr_state_op_t *ops, size_t max)
{
    size_t n = 0;
    pthread_mutex_lock(&st->mu);
    if (st->n_journal && !st->journal[0].inflight)
        for (; n < max && n < st->n_journal; n++) {
            st->journal[n].inflight = true;
            ops[n] = st->journal[n].op;
        }
    pthread_mutex_unlock(&st->mu);
    return n;
}

void mr_state_journal_done(mr_state_t *st, size_t n, bool ok)
{
    pthread_mutex_lock(&st->mu);
    if (n > st->n_journal)
        n = st->n_journal;
    if (ok) {
        memmove(st->journal, st->journal + n, (st->n_journal - n) * sizeof(*st->journal));
        st->n_journal -= n;
        atomic_fetch_add(&st->replayed, n);
    } else {
        for (size_t i = 0; i < n; i++)
            st->journal[i].inflight = false;
    }
    pthread_mutex_unlock(&st->mu);
}

/* ---- connection state, hints, statistics ------------------------------ */

void mr_state_conn_up(mr_state_t *st, bool up)
{
    bool was, now_up;
    pthread_mutex_lock(&st->mu);
    was = st->loops_up == st->n_loops && st->n_loops > 0 && atomic_load(&st->up);
    if (up)
        st->loops_up++;
    else if (st->loops_up)
        st->loops_up--;
    now_up = st->loops_up > 0 && st->loops_up >= st->n_loops;
    pthread_mutex_unlock(&st->mu);
    if (up && atomic_fetch_add(&st->connects, 1) > 0)
        atomic_fetch_add(&st->reconnects, 1);
    if (was && !now_up) {
        atomic_fetch_add(&st->outages, 1);
        atomic_store(&st->outage_since, mr_state_now(st));
        mr_warn("state: Redis unreachable; on_outage \"%s\" until it returns",
                mr_state_outage_name(st->o.on_outage));
    } else if (now_up && !was) {
        if (atomic_load(&st->outage_since))
            mr_info("state: Redis is back; replaying what was counted meanwhile");
        atomic_store(&st->outage_since, 0);
    }
    atomic_store(&st->up, now_up);
}

void mr_state_hints_set(mr_state_t *st, const char *target, uint64_t until_ms)
{
    size_t oldest = 0;
    pthread_mutex_lock(&st->mu);
    for (size_t i = 0; i < st->n_hints; i++) {
        if (strcmp(st->hints[i].target, target) == 0) {
            if (until_ms > st->hints[i].until_ms) {
                st->hints[i].until_ms = until_ms;
                atomic_fetch_add(&st->hints_version, 1);
            }
            pthread_mutex_unlock(&st->mu);
            return;
        }
        if (st->hints[i].until_ms < st->hints[oldest].until_ms)
            oldest = i;
    }
    if (st->n_hints < MR_STATE_HINTS_MAX)
        oldest = st->n_hints++;
    snprintf(st->hints[oldest].target, sizeof(st->hints[oldest].target), "%s", target);
    st->hints[oldest].until_ms = until_ms;
    atomic_fetch_add(&st->hints_version, 1);
    pthread_mutex_unlock(&st->mu);
}

uint64_t mr_state_hints_version(const mr_state_t *st)
{
    return atomic_load(&((mr_state_t *)(uintptr_t)st)->hints_version);
}

bool mr_state_hint_get(mr_state_t *st, const char *target, uint64_t *until_ms)
{
    uint64_t now = mr_state_now(st);
    bool found = false;
    pthread_mutex_lock(&st->mu);
    for (size_t i = 0; i < st->n_hints && !found; i++)
        if (strcmp(st->hints[i].target, target) == 0 && st->hints[i].until_ms > now) {
            *until_ms = st->hints[i].until_ms;
            found = true;
        }
    pthread_mutex_unlock(&st->mu);
    return found;
}

void mr_state_hint_publish(mr_state_loop_t *sl, const char *target, uint64_t until_ms)
{
    mr_state_hints_set(sl->st, target, until_ms);
    if (sl->st->o.backend == MR_STATE_REDIS && !sl->closing)
        mr_redis_hint_publish(sl, target, until_ms);
}

int mr_state_kv_set(mr_state_loop_t *sl, const char *key, const char *val, size_t len,
                    uint64_t ttl_ms, mr_state_kv_cb cb, void *arg)
{
    mr_state_t *st = sl->st;
    if (!key[0] || strlen(key) >= MR_STATE_KEY_MAX || len > MR_STATE_KV_VALUE_MAX)
        return -1;
    if (st->o.backend == MR_STATE_REDIS)
        return mr_redis_kv_set(sl, key, val, len, ttl_ms, cb, arg);
    uint64_t now = mr_state_now(st);
    int rc = mr_mem_kv_set(st->mem, key, val, len, now + ttl_ms);
    if (cb)
        cb(arg, rc == 0 ? MR_STATE_OK : MR_STATE_UNAVAILABLE, NULL, 0);
    return 0;
}

int mr_state_kv_get(mr_state_loop_t *sl, const char *key, mr_state_kv_cb cb, void *arg)
{
    mr_state_t *st = sl->st;
    size_t len = 0;
    if (!key[0] || strlen(key) >= MR_STATE_KEY_MAX || !cb)
        return -1;
    if (st->o.backend == MR_STATE_REDIS)
        return mr_redis_kv_get(sl, key, cb, arg);
    char *v = mr_mem_kv_get(st->mem, key, mr_state_now(st), &len);
    cb(arg, MR_STATE_OK, v, len);
    free(v);
    return 0;
}

int mr_state_kv_del(mr_state_loop_t *sl, const char *key)
{
    if (!key[0] || strlen(key) >= MR_STATE_KEY_MAX)
        return -1;
    if (sl->st->o.backend == MR_STATE_REDIS)
        return mr_redis_kv_del(sl, key);
    mr_mem_kv_del(sl->st->mem, key);
    return 0;
}

void mr_state_stats(mr_state_t *st, mr_state_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    out->backend = st->o.backend;
    out->on_outage = st->o.on_outage;
    out->redis_up = atomic_load(&st->up);
    out->outage_since_ms = atomic_load(&st->outage_since);
    out->outages = atomic_load(&st->outages);
    out->reconnects = atomic_load(&st->reconnects);
    out->command_timeouts = atomic_load(&st->timeouts);
    out->local_answers = atomic_load(&st->local_answers);
    out->denied_unavailable = atomic_load(&st->denied_unavailable);
    out->journal_dropped = atomic_load(&st->journal_dropped);
    out->replayed = atomic_load(&st->replayed);
    out->live_instances = atomic_load(&st->live);
    pthread_mutex_lock(&st->mu);
    out->journal_len = st->n_journal;
    pthread_mutex_unlock(&st->mu);
    mr_mem_file_stats(st->mem, &out->file_writes, &out->file_errors);
}

/* ---- the URL ---------------------------------------------------------- */

static int resolve(const char *host, mr_redis_addr_t *out, char *err, size_t errlen)
{
    struct addrinfo hints = {0}, *ai = NULL;
    unsigned char buf[sizeof(struct in6_addr)];
    if (inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1) {
        snprintf(out->host, sizeof(out->host), "%.*s", (int)sizeof(out->host) - 1, host);
        return 0;
    }
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(host, NULL, &hints, &ai);
    if (rc != 0 || !ai) {
        snprintf(err, errlen, "state.redis_url: cannot resolve \"%s\": %s", host, gai_strerror(rc));
        return -1;
    }
    const void *a = ai->ai_family == AF_INET6
                        ? (const void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr
                        : (const void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr;
    inet_ntop(ai->ai_family, a, out->host, sizeof(out->host));
    freeaddrinfo(ai);
    return 0;
}

/* host[:port] or [v6][:port], then /db. */
static int parse_hostport(const char *p, mr_redis_addr_t *out, char *host, size_t hostcap,
                          char *err, size_t errlen)
{
    const char *end = p + strcspn(p, "/"), *colon;
    if (*p == '[') {
        const char *rb = memchr(p, ']', (size_t)(end - p));
        if (!rb || (size_t)(rb - p - 1) >= hostcap)
            goto bad;
        snprintf(host, hostcap, "%.*s", (int)(rb - p - 1), p + 1);
        colon = rb[1] == ':' ? rb + 1 : NULL;
    } else {
        colon = memchr(p, ':', (size_t)(end - p));
        size_t hl = (size_t)((colon ? colon : end) - p);
        if (hl == 0 || hl >= hostcap)
            goto bad;
        snprintf(host, hostcap, "%.*s", (int)hl, p);
    }
    out->port = 6379;
    if (colon) {
        char *e;
        long port = strtol(colon + 1, &e, 10);
        if (e != end || port < 1 || port > 65535)
            goto bad;
        out->port = (int)port;
    }
    if (*end == '/' && end[1]) {
        char *e;
        long db = strtol(end + 1, &e, 10);
        if (*e || db < 0 || db > 1000000)
            goto bad;
        out->db = (int)db;
    }
    return 0;
bad:
    snprintf(err, errlen, "state.redis_url: expected redis://[:password@]host[:port][/db]");
    return -1;
}

int mr_redis_parse_url(const char *url, mr_redis_addr_t *out, char *err, size_t errlen)
{
    char host[256];
    const char *p, *at;
    memset(out, 0, sizeof(*out));
    if (strncmp(url, "redis://", 8) != 0) {
        snprintf(err, errlen,
                 "state.redis_url: expected redis://[:password@]host[:port][/db] (rediss:// and "
                 "unix sockets are not supported)");
        return -1;
    }
    p = url + 8;
    at = strrchr(p, '@');
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        const char *pw = colon ? colon + 1 : p;
        if (at > pw && (out->password = strndup(pw, (size_t)(at - pw))) == NULL) {
            snprintf(err, errlen, "state: out of memory");
            return -1;
        }
        p = at + 1;
    }
    if (parse_hostport(p, out, host, sizeof(host), err, errlen) != 0 ||
        resolve(host, out, err, errlen) != 0) {
        free(out->password);
        out->password = NULL;
        return -1;
    }
    return 0;
}
