/*
 * health — per-target circuit breakers, the retry budget, backoff and
 * retryability: the gateway's defences against failing providers and
 * against multiplying load during an outage (docs/operations.md).
 *
 * Pure and loop-agnostic: nothing here reads a clock, arms a timer or
 * touches libuv. Every call takes the caller's `now_ms` (any monotonic
 * millisecond clock, such as uv_now), so a fake clock drives the tests and
 * every state change is a function of (reports, now). Time-driven
 * transitions (open -> half-open, a forgotten probe) are evaluated lazily
 * when the state is read; no timer is needed.
 *
 * Targets are identified by a caller-supplied dense index 0 <= id < n (the
 * config's mr_target_t.id). An id out of range is ignored by every call
 * (acquire answers ALLOW, state CLOSED, json NULL).
 *
 * Ownership: the caller owns every struct here (embed it, or allocate it).
 * mr_health_init allocates one array of n targets, released by
 * mr_health_free; the retry budget allocates nothing but a mutex (released
 * by mr_retry_budget_free); backoff allocates nothing.
 *
 * Threading: one breaker set and one retry budget per process (per config
 * snapshot), shared by every worker: each call takes the instance's mutex
 * for a few loads and stores, never across I/O or a callback other than
 * the breaker listener. The callers' clocks must agree (uv_now of any loop
 * of the process: CLOCK_MONOTONIC). No globals.
 */
#ifndef MERIDIAN_HEALTH_H
#define MERIDIAN_HEALTH_H

#include "meridian/catalogue.h" /* the MR_HEALTH_* and MR_RETRY_* defaults */

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- per-target health: the circuit breaker ---------------------------- */

#define MR_HEALTH_EWMA_ALPHA 0.2     /* weight of a new sample in both EWMAs */
#define MR_HEALTH_NO_TTFB UINT32_MAX /* report without a response head */

typedef enum {
    MR_HEALTH_CLOSED = 0, /* serving */
    MR_HEALTH_OPEN,       /* cooling down: skipped until the cooldown ends */
    MR_HEALTH_HALF_OPEN,  /* cooldown over: one probe request decides */
} mr_health_state_t;

typedef enum {
    MR_HEALTH_ALLOW = 0, /* closed: go ahead (reporting is expected, not required) */
    MR_HEALTH_SKIP,      /* open, or half-open with the probe taken: try another target */
    MR_HEALTH_PROBE,     /* half-open and the probe slot is now yours: you MUST later call
                            mr_health_report or mr_health_cancel for this id */
} mr_health_verdict_t;

typedef enum {
    MR_OUTCOME_SUCCESS = 0,  /* the target answered (2xx, or a 4xx that is the client's fault) */
    MR_OUTCOME_FAILURE,      /* 5xx, 408/409, connect error, timeout, reset, invalid body */
    MR_OUTCOME_RATE_LIMITED, /* 429 */
    MR_OUTCOME_OVERLOADED,   /* 503, 529 */
} mr_outcome_t;

/* A field left 0 takes its default (MR_HEALTH_*, catalogue.h); a NULL
 * opts means all defaults. max_cooldown_ms below cooldown_ms is raised to it. */
typedef struct mr_health_opts {
    uint32_t failure_threshold;
    uint32_t cooldown_ms;
    uint32_t max_cooldown_ms;
    uint32_t probe_timeout_ms;
} mr_health_opts_t;

/*
 * One target. The first four fields are statistics, readable by anyone
 * (e.g. for metrics); the `_` fields are the breaker's and private.
 */
typedef struct mr_health_target {
    double ewma_ttfb_ms; /* EWMA of time to the response head; seeded by the first sample */
    double error_rate;   /* EWMA of non-success outcomes (0..1), starts at 0 */
    uint64_t requests;   /* reports received */
    uint64_t failures;   /* reports with an outcome other than SUCCESS */

    uint32_t _ttfb_samples;
    uint32_t _consecutive; /* failures since the last success */
    uint32_t _opens;       /* breaker opens since the last close (cooldown exponent) */
    bool _tripped;         /* not closed: open while now < _open_until_ms, else half-open */
    uint64_t _opened_at_ms;
    uint64_t _open_until_ms;
    uint64_t _probe_until_ms; /* probe slot taken while now < this; 0 = free */
} mr_health_target_t;

/* A target's breaker changed (opened, extended, closed): `open_until_ms`
 * is 0 when it closed. Called with the instance's mutex held, on the thread
 * that caused the change: it must not call back into the instance. */
typedef void (*mr_health_listener_t)(void *ud, size_t id, uint64_t open_until_ms, uint64_t now_ms);

typedef struct mr_health {
    mr_health_opts_t opts; /* resolved (no zero fields) */
    mr_health_target_t *_t;
    size_t _n;
    pthread_mutex_t _mu;
    mr_health_listener_t _listener;
    void *_listener_ud;
} mr_health_t;

/* n_targets may be 0. Returns 0, or -1 when out of memory (nothing to free). */
int mr_health_init(mr_health_t *h, size_t n_targets, const mr_health_opts_t *opts);
void mr_health_free(mr_health_t *h);

/* Tell `fn` about every change from now on (NULL: nobody). Any thread. */
void mr_health_set_listener(mr_health_t *h, mr_health_listener_t fn, void *ud);
/* Tell the listener every target's state as it is (after a carry). */
void mr_health_announce(mr_health_t *h, uint64_t now_ms);

/*
 * Config reload: copies the state of every dst target whose map[id] names a
 * src target (map has dst->_n entries; SIZE_MAX or an out-of-range value =
 * a new target, left fresh). Everything is carried (breaker state, open-until
 * on the same clock, statistics) except an in-flight probe: its report will
 * go to `src`, so a carried half-open target starts with its probe slot free.
 * dst keeps its own opts.
 */
void mr_health_carry(mr_health_t *dst, const mr_health_t *src, const size_t *map);

/*
 * The state at now_ms (CLOSED for an unknown id). Read-only: use it to order
 * or explain a plan; use mr_health_acquire when an attempt actually starts.
 */
mr_health_state_t mr_health_state(const mr_health_t *h, size_t id, uint64_t now_ms);

/* true when mr_health_acquire would not answer SKIP right now. Read-only. */
bool mr_health_available(const mr_health_t *h, size_t id, uint64_t now_ms);

/* The target's record, for reading its statistics; NULL for an unknown id.
 * Borrowed, unlocked: for a single-threaded owner (tests). */
const mr_health_target_t *mr_health_target(const mr_health_t *h, size_t id);

/* Milliseconds until the target stops being OPEN (0 when it is not). */
uint64_t mr_health_retry_in_ms(const mr_health_t *h, size_t id, uint64_t now_ms);

/*
 * Call immediately before sending an attempt to target `id`:
 *   CLOSED                           -> ALLOW
 *   OPEN                             -> SKIP
 *   HALF_OPEN, probe slot free       -> PROBE (slot taken until now + probe_timeout_ms)
 *   HALF_OPEN, probe in flight       -> SKIP
 */
mr_health_verdict_t mr_health_acquire(mr_health_t *h, size_t id, uint64_t now_ms);

/*
 * Another instance opened the target until until_ms (a breaker hint, on
 * this clock): open it until then unless it is open already (an open
 * breaker keeps its own time). The cooldown doubling is untouched; after
 * until_ms the breaker is half-open and one probe decides, as after its own
 * cooldown. True when it changed.
 */
bool mr_health_open_until(mr_health_t *h, size_t id, uint64_t until_ms, uint64_t now_ms);

/*
 * A PROBE that will not report an outcome (the attempt was never sent, the
 * client left, the request was cancelled) gives its slot back; the next
 * acquire may probe at once. Statistics are untouched. Only the holder of
 * the probe may call it.
 */
void mr_health_cancel(mr_health_t *h, size_t id, uint64_t now_ms);

/*
 * One attempt on `id` ended. Report once per attempt (a stream: when it
 * committed, or when it failed before committing).
 *   retry_after_s  the Retry-After delta-seconds of a 429/503/529, or -1;
 *                  used only with RATE_LIMITED / OVERLOADED
 *   ttfb_ms        time to the response head, or MR_HEALTH_NO_TTFB
 * Statistics: requests/failures count it, the EWMAs take it (a failure with
 * no head leaves the TTFB EWMA alone). Breaker, by state at now_ms:
 *   RATE_LIMITED/OVERLOADED with retry_after_s > 0, any state: open now
 *       until now + min(retry_after_s, max_cooldown_ms) (an open target is
 *       never shortened; the consecutive count grows; the doubling does not)
 *   CLOSED    success: consecutive = 0. Non-success: consecutive + 1;
 *             at failure_threshold: open for cooldown_ms
 *   OPEN      statistics only: a late report of an attempt that started
 *             before the target opened neither closes nor extends it
 *   HALF_OPEN success: closed, consecutive and doubling reset.
 *             Non-success: open again for min(cooldown * 2^opens, max)
 * Either way an in-flight probe's slot is released (a report in HALF_OPEN
 * is the probe's answer). Returns the time the target is open until when
 * this report opened it or made it open longer, else 0 (what other
 * instances should hear: mr_state_hint_publish).
 */
uint64_t mr_health_report(mr_health_t *h, size_t id, mr_outcome_t outcome, long retry_after_s,
                          uint32_t ttfb_ms, uint64_t now_ms);
/* The same for an attempt that may or may not hold the probe slot: in
 * HALF_OPEN only the probe's answer (probe = true) closes or re-opens the
 * target and frees the slot; any other attempt's answer (one sent before the
 * target opened) updates statistics only. mr_health_report is this with
 * probe = true. */
uint64_t mr_health_report_attempt(mr_health_t *h, size_t id, bool probe, mr_outcome_t outcome,
                                  long retry_after_s, uint32_t ttfb_ms, uint64_t now_ms);

/* The outcome of an upstream HTTP status (0 = no response: FAILURE):
 * 2xx/3xx and the 4xx that are the client's problem are SUCCESS (the target
 * is up), 429 RATE_LIMITED, 503/529 OVERLOADED, 408/409/other 5xx FAILURE.
 * A 2xx whose body is unusable is the caller's FAILURE. */
mr_outcome_t mr_health_outcome(long status);

/*
 * For GET /v1/gateway/providers. A new object (the caller owns the
 * reference), NULL for an unknown id or out of memory:
 *   state                "closed" | "open" | "half_open"
 *   consecutive_failures
 *   opened_at_ms         when it last opened, on the caller's clock; only when not closed
 *   retry_in_ms          until it stops being open (0 unless open)
 *   probe_in_flight      only when half_open
 *   ewma_ttfb_ms         whole ms, null before the first sample
 *   error_rate           0..1, rounded to 4 decimals
 *   requests, failures
 */
json_t *mr_health_json(const mr_health_t *h, size_t id, uint64_t now_ms);

/* ---- the retry budget -------------------------------------------------- */

/* Zero fields take their defaults (set ratio < 0 for "only the floor",
 * min_retries_per_s MR_RETRY_NO_FLOOR for no floor); a NULL opts means all
 * defaults. The defaults (MR_RETRY_*) are in catalogue.h. */

typedef struct mr_retry_budget_opts {
    double ratio;
    uint32_t window_s;
    uint32_t min_retries_per_s;
} mr_retry_budget_opts_t;

/*
 * Within any window (the current second and the window_s - 1 before it):
 *   retries <= floor(ratio * requests) + min_retries_per_s * window_s
 * A request is a client request (its first attempt); a retry is any later
 * attempt of it, on the same or another target. Fixed size, no heap.
 */
typedef struct mr_retry_budget {
    mr_retry_budget_opts_t opts; /* resolved */
    uint64_t requests;           /* since init: for metrics (read them with _stats) */
    uint64_t retries;            /* granted */
    uint64_t denied;
    uint64_t _epoch[MR_RETRY_MAX_WINDOW_S]; /* second + 1 held by a slot; 0 = empty */
    uint32_t _req[MR_RETRY_MAX_WINDOW_S];
    uint32_t _retry[MR_RETRY_MAX_WINDOW_S];
    pthread_mutex_t _mu;
} mr_retry_budget_t;

void mr_retry_budget_init(mr_retry_budget_t *b, const mr_retry_budget_opts_t *opts);
void mr_retry_budget_free(mr_retry_budget_t *b);
/* requests, retries and denied, read together. */
void mr_retry_budget_stats(mr_retry_budget_t *b, uint64_t out[3]);
/* Counts one client request. */
void mr_retry_budget_request(mr_retry_budget_t *b, uint64_t now_ms);
/* May one retry proceed now? When true it is counted; when false `denied` grows. */
bool mr_retry_budget_try(mr_retry_budget_t *b, uint64_t now_ms);

/* ---- backoff and retryability ------------------------------------------ */

/*
 * Delay before retrying the SAME target: full jitter, uniform in
 * [0, min(cap_ms, base_ms * 2^attempt)] (attempt 0 = the first retry).
 * xorshift64 on *rng_state, advanced by each call: the same state gives the
 * same delays. A zero state is replaced by a fixed non-zero seed.
 */
uint32_t mr_backoff_ms(unsigned attempt, uint32_t base_ms, uint32_t cap_ms, uint64_t *rng_state);

/* May a request that got `status` be tried again (elsewhere or later)?
 * 408, 409, 429 and every 5xx (529 included): yes; anything else: no. */
bool mr_retryable_status(long status);

#endif
