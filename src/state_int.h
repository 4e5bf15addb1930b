/*
 * state_int — what state.c, state_mem.c and state_redis.c share; not part
 * of the public surface (state.h is).
 *
 *   state.c        the front: mr_state_t, loop handles, dispatch, ids, hints,
 *                  statistics, the outage path and the replay journal, the URL
 *   state_mem.c    the memory engine: the backend "memory", and the local
 *                  counters of the backend "redis"
 *   state_file.c   the memory backend's state file and its writer thread
 *   state_redis.c  one hiredis connection per loop, the Lua transaction,
 *                  heartbeat, hint polling, replay
 */
#ifndef MERIDIAN_STATE_INT_H
#define MERIDIAN_STATE_INT_H

#include "meridian/state.h"

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>

/* ---- the memory engine ------------------------------------------------ */

typedef struct mr_mem mr_mem_t;

typedef struct mr_mem_opts {
    const char *file; /* NULL: no persistence */
    /* A reservation made with charge_on_expiry expired and was charged
     * (the redis backend journals it). Called with a shard lock held: it
     * must not call back into the engine. NULL: nothing. */
    void (*on_expired_charge)(void *arg, const char *key, const char *id, int64_t amount);
    void *hook_arg;
} mr_mem_opts_t;

int mr_mem_new(const mr_mem_opts_t *o, uint64_t now, mr_mem_t **out, char *err, size_t errlen);
void mr_mem_free(mr_mem_t *m);
/* div 0: exact (the backend "memory"); div >= 1: a Redis outage, limits
 * divided by div and budgets by what Redis last said was left. */
void mr_mem_exec(mr_mem_t *m, const mr_state_txn_t *t, uint64_t now, unsigned div,
                 mr_state_result_t *res);
/* Redis said pool `key` is at `used`: the base the local share is cut from. */
void mr_mem_note_remote(mr_mem_t *m, const char *key, uint64_t used, uint64_t now);
void mr_mem_sweep(mr_mem_t *m, uint64_t now);
int mr_mem_kv_set(mr_mem_t *m, const char *key, const char *val, size_t len, uint64_t expires_ms);
/* A malloc'd copy (caller frees) or NULL when absent. */
char *mr_mem_kv_get(mr_mem_t *m, const char *key, uint64_t now, size_t *len);
void mr_mem_kv_del(mr_mem_t *m, const char *key);
void mr_mem_file_stats(mr_mem_t *m, uint64_t *writes, uint64_t *errors);

/* ---- the state file --------------------------------------------------- */

typedef struct mr_state_file mr_state_file_t;

/* The engine's persisted pools: {"KEY":{"spent":N,"expires_ms":N}} (a new
 * reference; called on the writer thread). */
typedef json_t *(*mr_state_file_snap_fn)(void *arg);
/* One pool read back at start; -1 with why. */
typedef int (*mr_state_file_load_fn)(void *arg, const char *key, int64_t spent, uint64_t expires_ms,
                                     char *why, size_t whylen);

/* Reads `path` (absent: a first start) through load, then starts the writer
 * thread. -1 with err naming the file: it is left untouched. */
int mr_state_file_open(const char *path, mr_state_file_load_fn load, mr_state_file_snap_fn snap,
                       void *arg, mr_state_file_t **out, char *err, size_t errlen);
/* A persisted pool changed: the writer saves soon (at most 10 times a second). */
void mr_state_file_dirty(mr_state_file_t *f);
/* Stops the writer after one last save. NULL ok. */
void mr_state_file_close(mr_state_file_t *f);
void mr_state_file_stats(mr_state_file_t *f, uint64_t *writes, uint64_t *errors);

/* ---- the front -------------------------------------------------------- */

typedef struct mr_state_hint {
    char target[MR_STATE_HINT_NAME_MAX];
    uint64_t until_ms;
} mr_state_hint_t;

typedef struct mr_redis_addr {
    char host[64]; /* numeric, resolved in mr_state_new */
    int port;
    int db;
    char *password; /* owned; NULL when none */
} mr_redis_addr_t;

/* One journalled op and whether a replay carries it now. */
typedef struct mr_journal_entry {
    mr_state_op_t op;
    bool inflight;
} mr_journal_entry_t;

struct mr_state {
    mr_state_opts_t o; /* strings below are owned copies */
    char *ns;
    char *state_file;
    mr_redis_addr_t addr;
    mr_mem_t *mem;
    char instance[20]; /* 16 hex digits of a random 64-bit id */
    atomic_uint_fast64_t seq;

    pthread_mutex_t mu;                 /* loops, hints, journal: never held across I/O */
    _Atomic(mr_state_loop_t *) primary; /* the loop with the periodic duties */
    unsigned n_loops, loops_up;
    mr_state_hint_t hints[MR_STATE_HINTS_MAX];
    size_t n_hints;
    mr_journal_entry_t *journal; /* [MR_STATE_JOURNAL_MAX] */
    size_t n_journal;

    atomic_bool up;
    atomic_uint_fast64_t outage_since, outages, reconnects, timeouts, local_answers,
        denied_unavailable, journal_dropped, replayed, live, connects, hints_version;
};

struct mr_redis_conn;

struct mr_state_loop {
    mr_state_t *st;
    uv_loop_t *loop;
    uv_timer_t tick; /* the primary's periodic duties */
    bool primary;
    bool closing;
    unsigned pending_closes;
    uint64_t last_sweep_ms;
    struct mr_redis_conn *rc; /* redis backend */
};

/* state.c, for state_redis.c */
void mr_state_conn_up(mr_state_t *st, bool up);
void mr_state_outage_exec(mr_state_loop_t *sl, const mr_state_txn_t *t, mr_state_cb cb, void *arg);
void mr_state_journal_push(mr_state_t *st, const mr_state_op_t *op);
/* Marks up to max entries in flight and copies them out; returns how many. */
size_t mr_state_journal_take(mr_state_t *st, mr_state_op_t *ops, size_t max);
/* The n taken entries were applied (ok) or must be offered again. */
void mr_state_journal_done(mr_state_t *st, size_t n, bool ok);
void mr_state_hints_set(mr_state_t *st, const char *target, uint64_t until_ms);
void mr_state_handle_closed(mr_state_loop_t *sl);
/* An accepted call's callback, for a loop that is closing or broken. */
void mr_state_answer_unavailable(mr_state_cb cb, void *arg);

/* redis://[:password@]host[:port][/db], the host resolved now (state.c). */
int mr_redis_parse_url(const char *url, mr_redis_addr_t *out, char *err, size_t errlen);

/* state_redis.c */
int mr_redis_attach(mr_state_loop_t *sl, char *err, size_t errlen);
void mr_redis_close(mr_state_loop_t *sl);
void mr_redis_exec(mr_state_loop_t *sl, const mr_state_txn_t *t, mr_state_cb cb, void *arg);
void mr_redis_tick(mr_state_loop_t *sl);
void mr_redis_hint_publish(mr_state_loop_t *sl, const char *target, uint64_t until_ms);
int mr_redis_kv_set(mr_state_loop_t *sl, const char *key, const char *val, size_t len,
                    uint64_t ttl_ms, mr_state_kv_cb cb, void *arg);
int mr_redis_kv_get(mr_state_loop_t *sl, const char *key, mr_state_kv_cb cb, void *arg);
int mr_redis_kv_del(mr_state_loop_t *sl, const char *key);

#endif
