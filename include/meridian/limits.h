/*
 * limits — per-key rate limits, concurrency caps and budgets, and per-provider
 * budgets, on top of the shared state (state.h). docs/scaling.md describes
 * the guarantees; this header is the gateway's contract.
 *
 * Per key: rpm (requests per minute), tpm (prompt + completion tokens per
 * minute), max_parallel (requests in flight), budget_usd per budget_period
 * (day | month | total; UTC boundaries). Per provider: budget_usd per
 * budget_period. Money is counted in nano-dollars (nusd, 1e-9 USD) as
 * integers; prices are USD per million tokens, so one token at P $/Mtok
 * costs P * 1000 nusd.
 *
 * Reserve, then settle. A request is admitted (mr_limits_admit) by one
 * state transaction: an rpm hit, a tpm hit of its estimated tokens, a
 * max_parallel lease and a budget reservation of its worst-case cost, all
 * or none. Estimates:
 *   prompt tokens  ceil(body bytes / bytes_per_token); bytes_per_token
 *                  defaults to 1, an upper bound for text (a byte-level BPE
 *                  token covers at least one byte; JSON syntax only adds
 *                  bytes), so the prompt is never under-reserved
 *   output tokens  the request's max_tokens / max_completion_tokens /
 *                  max_output_tokens, else default_output_tokens (4096)
 *   cost           prompt * input price + output * output price at the most
 *                  expensive target the request may go to
 * Each attempt on a provider with a budget reserves its own worst case at
 * that target's price (mr_limits_attempt); mr_limits_attempt_done settles it
 * with the usage the upstream reported. mr_limits_finish settles the key's
 * budget with the sum, corrects tpm by (real - estimated) tokens and ends
 * the lease. A reservation whose request dies is released by finish; one
 * never settled (the instance died) expires after reservation_ttl_ms and
 * is charged at its reserved amount.
 *
 * Budget guarantee: admission requires spent + outstanding < budget, and
 * reservation and check are one atomic step, so whatever the concurrency,
 * spent <= budget + one request's reservation, provided each request's
 * real cost is within its reservation (true when its usage is within the
 * estimate above). A request that succeeded without reporting usage is
 * charged its reservation; one that failed without usage, nothing.
 *
 * Asynchronous calls (admit, attempt, refresh) either finish before they
 * return (MR_LIMITS_DONE: the verdict is in r->verdict and cb is NOT
 * called) or return MR_LIMITS_PENDING and call cb once, later, on the same
 * loop. A pending call may be abandoned with mr_limits_cancel (the client
 * left): whatever it reserves when it completes is released.
 *
 * Threading and ownership: mr_limits_new returns an engine (immutable
 * limits plus lock-free counters) the caller owns; any thread may use it
 * with its own loop's state handle. mr_limits_free drops the owner's
 * reference; calls still in flight keep the engine alive until they end.
 * mr_limits_req_t is the caller's (embed it in the request), zeroed by
 * mr_limits_admit, used by one thread.
 */
#ifndef MERIDIAN_LIMITS_H
#define MERIDIAN_LIMITS_H

#include "meridian/buf.h"
#include "meridian/catalogue.h" /* mr_budget_period_t and its names */
#include "meridian/state.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MR_LIMITS_NAME_MAX 65     /* bytes of a key or provider name (MR_NAME_MAX + NUL) */
#define MR_LIMITS_WINDOW_MS 60000 /* rpm and tpm windows */
#define MR_LIMITS_DEFAULT_OUTPUT_TOKENS 4096
#define MR_LIMITS_DEFAULT_BYTES_PER_TOKEN 1
#define MR_LIMITS_DEFAULT_TTL_MS 600000 /* an unsettled reservation lives 10 min */
#define MR_LIMITS_MAX_HEADERS 7
#define MR_LIMITS_NUSD_PER_USD 1000000000.0
#define MR_LIMITS_NO_KEY SIZE_MAX

typedef struct mr_limits_key_spec {
    const char *name;      /* keys.NAME */
    uint32_t rpm;          /* 0: none */
    uint32_t tpm;          /* 0: none */
    uint32_t max_parallel; /* 0: none */
    double budget_usd;     /* 0: none */
    mr_budget_period_t budget_period;
} mr_limits_key_spec_t;

typedef struct mr_limits_provider_spec {
    const char *name;  /* providers.NAME */
    double budget_usd; /* 0: none */
    mr_budget_period_t budget_period;
} mr_limits_provider_spec_t;

typedef struct mr_limits_spec {
    const mr_limits_key_spec_t *keys; /* index = the gateway's key index */
    size_t n_keys;
    const mr_limits_provider_spec_t *providers; /* index = the config's provider index */
    size_t n_providers;
    uint32_t reservation_ttl_ms;    /* 0: MR_LIMITS_DEFAULT_TTL_MS; keep it above request_ms */
    uint32_t default_output_tokens; /* 0: MR_LIMITS_DEFAULT_OUTPUT_TOKENS */
    uint32_t bytes_per_token;       /* 0: MR_LIMITS_DEFAULT_BYTES_PER_TOKEN */
} mr_limits_spec_t;

typedef struct mr_limits_engine mr_limits_engine_t;

typedef struct mr_limits_price {
    double input_per_mtok; /* USD per million tokens; 0 when unknown */
    double output_per_mtok;
} mr_limits_price_t;

typedef struct mr_limits_estimate {
    size_t body_bytes;          /* the request body as received */
    uint32_t max_output_tokens; /* from the body; 0: the default */
    mr_limits_price_t worst;    /* the highest prices among the plan's candidates */
} mr_limits_estimate_t;

typedef struct mr_limits_usage {
    uint64_t prompt_tokens;
    uint64_t completion_tokens;
} mr_limits_usage_t;

typedef enum {
    MR_LIMITS_ALLOW = 0,
    MR_LIMITS_RATE_LIMITED, /* 429 rate_limit_exceeded, Retry-After */
    MR_LIMITS_QUOTA,        /* 429 insufficient_quota */
    MR_LIMITS_UNAVAILABLE,  /* 503: Redis away and on_outage "deny" */
    MR_LIMITS_PROVIDER_OVER /* attempt: this provider is over its budget; try the next */
} mr_limits_outcome_t;

typedef enum {
    MR_LIMIT_NONE = 0,
    MR_LIMIT_RPM,
    MR_LIMIT_TPM,
    MR_LIMIT_PARALLEL,
    MR_LIMIT_BUDGET,
    MR_LIMIT_PROVIDER_BUDGET,
} mr_limit_kind_t;

typedef struct mr_limits_verdict {
    mr_limits_outcome_t outcome;
    mr_limit_kind_t limit;  /* what refused (NONE when allowed) */
    uint32_t retry_after_s; /* 429: Retry-After; 0: no header (a total budget) */
    bool local;             /* decided on local counters during a Redis outage */
    bool has_requests;      /* the key has rpm: the -requests headers apply */
    uint64_t limit_requests, remaining_requests, reset_requests_ms;
    bool has_tokens; /* the key has tpm: the -tokens headers apply */
    uint64_t limit_tokens, remaining_tokens, reset_tokens_ms;
} mr_limits_verdict_t;

enum { MR_LIMITS_PENDING = 0, MR_LIMITS_DONE = 1 };

typedef struct mr_limits_req mr_limits_req_t;
typedef void (*mr_limits_cb)(void *arg, mr_limits_req_t *r);
struct mr_limits_call;

/* Per request; fields with `_` are the engine's. */
struct mr_limits_req {
    mr_limits_verdict_t verdict; /* of the last admit or attempt */
    mr_limits_engine_t *_L;
    mr_state_loop_t *_sl;
    struct mr_limits_call *_call; /* in flight, or NULL */
    size_t _key;
    bool _admitted, _finished;
    bool _local_lease, _local_budget;
    char _id[MR_STATE_ID_MAX];
    char _budget_key[MR_STATE_KEY_MAX];
    uint64_t _at_ms;
    int64_t _prompt_est, _out_est, _tok_est, _cost_est;
    int64_t _cost;   /* settled so far, all attempts */
    int64_t _tokens; /* reported so far */
    bool _usage_known;
    /* the attempt holding a provider reservation */
    size_t _prov;
    bool _prov_held, _prov_local;
    char _prov_id[MR_STATE_ID_MAX];
    char _prov_key[MR_STATE_KEY_MAX];
    int64_t _prov_est;
    mr_limits_price_t _price;
    unsigned _attempts;
};

/* Copies the spec. 0, or -1 with err naming the key ("keys.NAME.limits.
 * budget_usd: must be >= 0"). */
int mr_limits_new(mr_state_t *st, const mr_limits_spec_t *spec, mr_limits_engine_t **out, char *err,
                  size_t errlen);
void mr_limits_free(mr_limits_engine_t *L);
/* A reload: `to` takes over what `from` saw and counted for the keys and
 * providers of the same names (the /metrics counters keep counting). */
void mr_limits_carry(mr_limits_engine_t *to, const mr_limits_engine_t *from);

/* true when key `key` (or provider) has any limit: requests of keys without
 * limits need no admit (admit answers DONE/ALLOW without a state call). */
bool mr_limits_key_limited(const mr_limits_engine_t *L, size_t key);

/* Before the first attempt. key MR_LIMITS_NO_KEY: unauthenticated, ALLOW. */
int mr_limits_admit(mr_limits_engine_t *L, mr_state_loop_t *sl, mr_limits_req_t *r, size_t key,
                    const mr_limits_estimate_t *est, mr_limits_cb cb, void *arg);

/* Before each attempt on provider index `provider` at `price` (after admit
 * allowed). ALLOW or PROVIDER_OVER (skip the target, like an open breaker)
 * or UNAVAILABLE. A previous attempt's reservation must have been closed
 * by mr_limits_attempt_done. */
int mr_limits_attempt(mr_limits_engine_t *L, mr_limits_req_t *r, size_t provider,
                      const mr_limits_price_t *price, mr_limits_cb cb, void *arg);

/* The attempt ended: `usage` as the upstream reported it (NULL: none);
 * `succeeded`: its answer went to the client. Never waits. */
void mr_limits_attempt_done(mr_limits_req_t *r, const mr_limits_usage_t *usage, bool succeeded);

/* The request ended (answered, failed or the client left): settles the
 * budget, corrects tpm, ends the lease. Never waits; idempotent. Cancels a
 * pending call first. */
void mr_limits_finish(mr_limits_req_t *r);

/* Abandons a pending call (see above). */
void mr_limits_cancel(mr_limits_req_t *r);

/* From the last state answers this process saw: is the provider at or over
 * its budget in the current period? For routing: skip it without an
 * attempt. Any thread. */
bool mr_limits_provider_over(const mr_limits_engine_t *L, size_t provider);

/* ---- answers ----------------------------------------------------------- */

typedef struct mr_limits_header {
    const char *name;
    char value[32];
} mr_limits_header_t;

/* The x-ratelimit-* headers (limit/remaining/reset for requests and
 * tokens, those the key has) and, for a 429 with a delay, Retry-After.
 * Returns how many were written to out. */
size_t mr_limits_headers(const mr_limits_verdict_t *v,
                         mr_limits_header_t out[MR_LIMITS_MAX_HEADERS]);

/* OpenAI's reset format: "250ms", "1s", "6m0s", "1h2m3.5s". */
void mr_limits_format_duration(uint64_t ms, char *buf, size_t len);

/* The error message for a refusal, naming the key and the limit
 * ("key \"team-a\" is over its rpm limit of 30; retry in 12 s"). */
void mr_limits_message(const mr_limits_engine_t *L, const mr_limits_req_t *r, char *buf,
                       size_t len);

/* ---- periods ----------------------------------------------------------- */

/* The period holding now_ms (UTC): an id ("d2028-02-29", "m2028-02",
 * "total"), its start and its end (exclusive; UINT64_MAX for total). */
void mr_limits_period(mr_budget_period_t p, uint64_t now_ms, char *id, size_t idlen,
                      uint64_t *start_ms, uint64_t *end_ms);

/* ---- visibility -------------------------------------------------------- */

typedef struct mr_limits_key_stats {
    uint64_t allowed;
    uint64_t limited[MR_LIMIT_PROVIDER_BUDGET + 1]; /* by mr_limit_kind_t */
    uint64_t unavailable;
    uint64_t spend_nusd; /* settled by this process since start */
} mr_limits_key_stats_t;

void mr_limits_key_stats(const mr_limits_engine_t *L, size_t key, mr_limits_key_stats_t *out);
/* Settled by this process on provider `p` since start. */
uint64_t mr_limits_provider_spend_nusd(const mr_limits_engine_t *L, size_t p);

/*
 * For GET /v1/gateway/keys/{name} and /status: a new object (caller owns)
 * from the last values this process saw (refresh first for fresh ones):
 *   {"name","limits":{"rpm","tpm","max_parallel","budget_usd","budget_period"},
 *    "usage":{"requests","tokens","in_flight","spent_usd","reserved_usd",
 *             "remaining_usd","period","period_ends_ms"},
 *    "limited":{"rpm","tpm","max_parallel","budget"},"as_of_ms"}
 * Members for limits the key does not have are absent. NULL for an unknown
 * key.
 */
json_t *mr_limits_key_json(const mr_limits_engine_t *L, size_t key);
/* {"providers":{NAME:{"budget_usd","budget_period","used_usd" (spent and
 * reserved in the period, as last seen),"remaining_usd","settled_here_usd"
 * (by this process since start),"over"}}} for every provider with a
 * budget. */
json_t *mr_limits_providers_json(const mr_limits_engine_t *L);

/* /status: {"state": {backend, on_outage, redis_up, outage_since_ms,
 * outages, reconnects, live_instances, journal_len, ...}, "budgets":
 * {"keys": {NAME: mr_limits_key_json, for keys with limits}, "providers":
 * as in mr_limits_providers_json}}. A new object. */
json_t *mr_limits_status_json(const mr_limits_engine_t *L);

/* /metrics: per key (labels: the configured names) the admissions by
 * outcome, the spend settled by this process, the budget and what is used
 * of it as last seen; per provider the same for its budget; the state's
 * status (up, outage mode, outages, reconnects, journal...). Appended in
 * the text exposition format. */
void mr_limits_render_metrics(const mr_limits_engine_t *L, mr_buf_t *out);

/* Reads the key's current counters from the state into the values above
 * (providers' are refreshed by every attempt); DONE or PENDING like admit,
 * r is only the call's handle (zeroed here). */
int mr_limits_refresh(mr_limits_engine_t *L, mr_state_loop_t *sl, mr_limits_req_t *r, size_t key,
                      mr_limits_cb cb, void *arg);

#endif
