/*
 * state — counters, reservations, leases, hints and a small key/value store
 * shared by every worker of a process (backend "memory") or by every
 * instance behind a load balancer (backend "redis"). docs/scaling.md says
 * what each guarantees; limits.h is the main user.
 *
 * The unit of work is a transaction (mr_state_txn_t): up to MR_STATE_MAX_OPS
 * operations on named counters, checked together and applied together, so
 * a request that passes its rpm check but not its budget counts in neither.
 *
 *   WINDOW_HIT    sliding window: admit when the count in the window is
 *                 below `limit` (0: no check), then add `amount` to the
 *                 current bucket
 *   WINDOW_ADD    add `amount` (may be negative) to the bucket that held
 *                 `at_ms` while it is still in the window; never denies
 *   WINDOW_GET    read the count
 *   POOL_RESERVE  a pool has `spent` and `outstanding` (the sum of open
 *                 reservations): admit when spent + outstanding < `limit`
 *                 (0: no check), then hold `amount` under reservation `id`
 *                 for `ttl_ms`. A budget is a pool; so is a gauge such as
 *                 max_parallel (amount 1, charge_on_expiry false).
 *   POOL_SETTLE   close reservation `id`: spent += amount (the real cost)
 *   POOL_RELEASE  close reservation `id`, charging nothing
 *   POOL_CHARGE   spent += amount, once per `id` (reconciliation)
 *   POOL_GET      read spent and outstanding
 * Settling or releasing an id that is not open (settled before, released,
 * expired) changes nothing: every close is idempotent, so a retried settle
 * never counts twice. An open reservation older than its ttl expires:
 * charged at its reserved amount when charge_on_expiry (a budget: the
 * instance that held it died without saying what was spent, so the worst
 * case is booked), dropped otherwise (a lease).
 *
 * Windows. A window of W ms has 60 buckets of B = max(1, W / 60) ms; a hit
 * counts in its bucket and the 60 after it, i.e. for between W and W + B
 * ms. Any interval of W ms therefore admits at most `limit` hits (exact,
 * also across instances through Redis); a freed slot comes back up to B ms
 * late (1 s for a minute window).
 *
 * Time. Every operation is stamped by the state's clock (opts.clock: UTC
 * milliseconds since the epoch; tests inject one). Instances sharing Redis
 * must have synchronised clocks (NTP): a skew of S ms moves window edges by
 * S ms.
 *
 * Results are delivered to a callback on the loop the call was made on. The
 * memory backend (and the redis backend when it answers from local counters
 * or refuses at once) calls it BEFORE mr_state_exec returns; the redis
 * backend otherwise calls it from the loop, within opts.command_timeout_ms
 * (a hung Redis never holds a caller longer). Every accepted call gets
 * exactly one callback.
 *
 * Redis outage (backend "redis"). Admission (WINDOW_HIT, POOL_RESERVE) with
 * on_outage "deny" answers MR_STATE_UNAVAILABLE; with "local" it runs on
 * this process's own counters with every limit divided by the number of
 * live instances last seen (floor, at least 1; a budget's remaining amount
 * last seen, divided the same way), and the result says `local`. Closes and
 * additions are never lost: while Redis is away they are applied locally
 * (reservations made locally) or journalled, and replayed when it returns,
 * each at most once (reservation ids, once-ids). Reconnects use jittered
 * exponential backoff. mr_state_status shows all of it.
 *
 * Threading and ownership. mr_state_new returns a process-wide state the
 * caller owns; free it with mr_state_free after every loop handle is
 * closed. Each event loop that uses it calls mr_state_attach once, from the
 * loop's thread, and uses the returned handle only from that thread;
 * mr_state_loop_close (same thread) closes its uv handles, and the loop must
 * run until they are closed. mr_state_hint_get, mr_state_status and
 * mr_state_now may be called from any thread.
 *
 * Errors: functions return 0 or -1; those with an err buffer fill it with a
 * message naming the config key ("state.redis_url: ...").
 */
#ifndef MERIDIAN_STATE_H
#define MERIDIAN_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define MR_STATE_MAX_OPS 6
#define MR_STATE_KEY_MAX 256 /* bytes of a counter name, NUL included */
#define MR_STATE_ID_MAX 48   /* bytes of a reservation id, NUL included */
#define MR_STATE_WINDOW_BUCKETS 60
#define MR_STATE_HINTS_MAX 256               /* distinct targets with a breaker hint */
#define MR_STATE_HINT_NAME_MAX 160           /* bytes of a hint's target name, NUL included */
#define MR_STATE_KV_VALUE_MAX (1u << 20)     /* bytes of one kv value */
#define MR_STATE_KV_MEM_MAX (64u << 20)      /* memory backend: bytes of all kv values */
#define MR_STATE_JOURNAL_MAX 8192            /* redis: ops kept for replay after an outage */
#define MR_STATE_ONCE_TTL_MS 86400000ULL     /* how long a once-id is remembered (1 day) */
#define MR_STATE_DEFAULT_TIMEOUT_MS 250      /* redis: one command, connect included */
#define MR_STATE_DEFAULT_HINT_POLL_MS 250    /* redis: breaker hints read this often */
#define MR_STATE_DEFAULT_HEARTBEAT_MS 2000   /* redis: instance announced this often */
#define MR_STATE_DEFAULT_BACKOFF_MAX_MS 2000 /* redis: reconnect delay cap */

typedef struct mr_state mr_state_t;
typedef struct mr_state_loop mr_state_loop_t;

typedef enum {
    MR_STATE_MEMORY = 0,
    MR_STATE_REDIS,
} mr_state_backend_t;

typedef enum {
    MR_OUTAGE_LOCAL = 0, /* serve on local counters, limits divided by live instances */
    MR_OUTAGE_DENY,      /* answer MR_STATE_UNAVAILABLE (the gateway's 503) */
} mr_state_outage_t;

typedef struct mr_state_opts {
    mr_state_backend_t backend;
    /* redis://[:password@]host[:port][/db]; host is an IP address or a name
     * resolved once, in mr_state_new. The password never reaches a message. */
    const char *redis_url;
    mr_state_outage_t on_outage;
    /* Memory backend: the file that keeps spend (pools reserved with
     * persist) across restarts; NULL: not kept. */
    const char *state_file;
    /* Redis key prefix; NULL: "meridian". Keys are PREFIX:{name}[:sub]. */
    const char *ns;
    uint32_t command_timeout_ms; /* 0: MR_STATE_DEFAULT_TIMEOUT_MS */
    uint32_t hint_poll_ms;       /* 0: MR_STATE_DEFAULT_HINT_POLL_MS */
    uint32_t heartbeat_ms;       /* 0: MR_STATE_DEFAULT_HEARTBEAT_MS; TTL is 3x */
    uint32_t backoff_max_ms;     /* 0: MR_STATE_DEFAULT_BACKOFF_MAX_MS */
    /* UTC milliseconds since the epoch; NULL: CLOCK_REALTIME. Any thread. */
    uint64_t (*clock)(void *arg);
    void *clock_arg;
} mr_state_opts_t;

typedef enum {
    MR_OP_WINDOW_HIT = 0,
    MR_OP_WINDOW_ADD,
    MR_OP_WINDOW_GET,
    MR_OP_POOL_RESERVE,
    MR_OP_POOL_SETTLE,
    MR_OP_POOL_RELEASE,
    MR_OP_POOL_CHARGE,
    MR_OP_POOL_GET,
    MR_OP__COUNT
} mr_state_op_kind_t;

typedef struct mr_state_op {
    mr_state_op_kind_t kind;
    char key[MR_STATE_KEY_MAX]; /* counter name: printable, no '{' '}' */
    /* reservation id (RESERVE/SETTLE/RELEASE), once-id (CHARGE, and
     * WINDOW_ADD when not empty) */
    char id[MR_STATE_ID_MAX];
    int64_t amount;        /* hit / delta / reservation / settled cost / charge */
    uint64_t limit;        /* window limit, pool cap; 0: unchecked */
    uint32_t window_ms;    /* window ops */
    uint64_t at_ms;        /* WINDOW_ADD: when the hit being corrected was made */
    uint32_t ttl_ms;       /* RESERVE: the reservation's lifetime */
    bool charge_on_expiry; /* RESERVE */
    bool persist;          /* RESERVE/SETTLE/CHARGE: the pool is spend (state file) */
    bool local;            /* SETTLE/RELEASE: the reservation was made on local counters */
    /* pool ops: how long the pool outlives its last change (Redis PEXPIRE;
     * memory: then forgotten once empty); 0: 2 x ttl_ms, at least 1 hour */
    uint64_t key_ttl_ms;
} mr_state_op_t;

typedef struct mr_state_txn {
    unsigned n;
    mr_state_op_t ops[MR_STATE_MAX_OPS];
} mr_state_txn_t;

typedef enum {
    MR_STATE_OK = 0,
    MR_STATE_DENIED,      /* an admission check failed; nothing was applied */
    MR_STATE_UNAVAILABLE, /* Redis away and on_outage "deny" (or the loop is closing) */
} mr_state_status_t;

typedef struct mr_state_op_result {
    uint64_t used;     /* window: count after the op; pool: spent + outstanding after */
    uint64_t spent;    /* pool: spent after the op */
    uint64_t reset_ms; /* window: until the count is back to 0 */
    uint64_t retry_ms; /* window: until the count is below the limit (0: it is) */
    bool applied;      /* SETTLE/RELEASE/CHARGE/WINDOW_ADD: it changed something */
} mr_state_op_result_t;

typedef struct mr_state_result {
    mr_state_status_t status;
    int denied_op; /* index of the op that denied, else -1 */
    bool local;    /* answered from local counters (Redis outage, "local") */
    mr_state_op_result_t r[MR_STATE_MAX_OPS];
} mr_state_result_t;

typedef void (*mr_state_cb)(void *arg, const mr_state_result_t *res);

/* Creates the state (memory: reads opts->state_file; redis: parses and
 * resolves the URL, nothing connects yet). 0, or -1 with err, e.g.
 * "state.redis_url: expected redis://host:port/db" or "state file X: ...". */
int mr_state_new(const mr_state_opts_t *opts, mr_state_t **out, char *err, size_t errlen);
/* Flushes the state file (memory) and frees. After every loop closed. NULL ok. */
void mr_state_free(mr_state_t *st);

/* Binds the state to `loop` (redis: starts connecting). The first loop
 * attached also runs the periodic duties (sweeping expired entries,
 * heartbeat, hint polling, journal replay) until it closes. */
int mr_state_attach(mr_state_t *st, uv_loop_t *loop, mr_state_loop_t **out, char *err,
                    size_t errlen);
/* Pending calls are answered MR_STATE_UNAVAILABLE; handles close on the
 * next loop turns; the handle is freed then. */
void mr_state_loop_close(mr_state_loop_t *sl);

mr_state_t *mr_state_of(const mr_state_loop_t *sl);
mr_state_backend_t mr_state_backend(const mr_state_t *st); /* NULL: memory */
uint64_t mr_state_now(const mr_state_t *st);

/* A reservation id unique across instances and restarts ("<instance>-<n>"). */
void mr_state_new_id(mr_state_loop_t *sl, char out[MR_STATE_ID_MAX]);

/* Runs a transaction (copied; `txn` may go after the call). 0 when accepted
 * (exactly one callback follows, maybe before this returns); -1 when the
 * txn is malformed (n out of range, empty key, key with '{' or '}'): no
 * callback. */
int mr_state_exec(mr_state_loop_t *sl, const mr_state_txn_t *txn, mr_state_cb cb, void *arg);

/* A name (a key, provider, policy or vendor) as part of a counter name:
 * '{', '}', '%', ':', blanks, control and non-ASCII bytes percent-encoded,
 * cut at a whole escape to fit cap. */
void mr_state_key_escape(const char *in, char *out, size_t cap);

/* Helpers that fill one op (the rest zeroed); key and id are truncated to
 * their maxima. */
mr_state_op_t *mr_state_txn_add(mr_state_txn_t *txn, mr_state_op_kind_t kind, const char *key,
                                const char *id);

/* ---- breaker hints --------------------------------------------------- */

/* "target is open until until_ms" (UTC ms): memory: every worker sees it at
 * once; redis: every instance within hint_poll_ms + a round trip. */
void mr_state_hint_publish(mr_state_loop_t *sl, const char *target, uint64_t until_ms);
/* true and *until_ms when a hint for target is still in force. Any thread. */
bool mr_state_hint_get(mr_state_t *st, const char *target, uint64_t *until_ms);
/* Grows whenever a hint is added or moved later (any thread): a caller
 * that remembers the version it read needs no lock until it changes. */
uint64_t mr_state_hints_version(const mr_state_t *st);

/* ---- key/value with TTL (the Responses store) ------------------------ */

typedef void (*mr_state_kv_cb)(void *arg, mr_state_status_t status, const char *val, size_t len);
/* Stores a copy (len <= MR_STATE_KV_VALUE_MAX) for ttl_ms. cb may be NULL. */
int mr_state_kv_set(mr_state_loop_t *sl, const char *key, const char *val, size_t len,
                    uint64_t ttl_ms, mr_state_kv_cb cb, void *arg);
/* cb gets the value (borrowed for the call) or val NULL when absent. */
int mr_state_kv_get(mr_state_loop_t *sl, const char *key, mr_state_kv_cb cb, void *arg);
int mr_state_kv_del(mr_state_loop_t *sl, const char *key);

/* ---- what /metrics and /status show ---------------------------------- */

typedef struct mr_state_stats {
    mr_state_backend_t backend;
    mr_state_outage_t on_outage;
    bool redis_up;             /* every attached loop's connection is up (memory: true) */
    uint64_t outage_since_ms;  /* 0 when up */
    uint64_t outages;          /* up -> down transitions */
    uint64_t reconnects;       /* connections established after the first */
    uint64_t command_timeouts; /* commands answered by our timer, not Redis */
    uint64_t local_answers;    /* admissions decided on local counters */
    uint64_t denied_unavailable;
    uint64_t journal_len;     /* ops waiting for Redis */
    uint64_t journal_dropped; /* ops lost because the journal was full */
    uint64_t replayed;        /* journalled ops Redis accepted */
    uint64_t live_instances;  /* last seen (redis), 1 for memory */
    uint64_t file_writes;     /* memory: state file replaced */
    uint64_t file_errors;     /* memory: failed writes (logged) */
} mr_state_stats_t;

/* Takes the engine's mutex for a moment (hence non-const); any thread. */
void mr_state_stats(mr_state_t *st, mr_state_stats_t *out);

const char *mr_state_backend_name(mr_state_backend_t b);
const char *mr_state_outage_name(mr_state_outage_t o);

#endif
