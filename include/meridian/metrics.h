/*
 * metrics — Prometheus counters, gauges and histograms, kept per worker and
 * summed when scraped (GET /metrics).
 *
 * One mr_metrics_t per process, created by main and shared by every worker.
 * A series (a family plus label values) is created on first use and lives
 * until the process exits. Label values come only from the configuration
 * (route, provider, model, policy names and the attributes of providers)
 * and from fixed vocabularies (status classes, outcomes), never from client
 * input, so the number of series is bounded by the config; MR_METRICS_MAX_SLOTS
 * is a last guard (a series that does not fit is counted in
 * meridian_metrics_series_dropped_total and its updates go nowhere).
 *
 * Threading: every series has one row of slots per worker. Worker w writes
 * only row w (single writer: relaxed atomic stores, no lock prefix); the
 * scrape reads every row with relaxed loads. Breaker series are the
 * exception: process-wide state, written in row 0 under the breaker's lock. Creating a series takes
 * a mutex; updating one never does. Workers cache slot numbers in an mr_metrics_view_t per config
 * generation, so a request's updates are array lookups.
 */
#ifndef MERIDIAN_METRICS_H
#define MERIDIAN_METRICS_H

#include "meridian/buf.h"
#include "meridian/config.h"

#include <stddef.h>
#include <stdint.h>

#define MR_METRICS_MAX_SLOTS (1u << 20) /* per worker, over all series */
/* A histogram series: this many bucket slots (the last is +Inf), then the
 * sum of the observations in µs, then their count. */
#define MR_METRICS_BUCKETS 17

typedef enum {
    MR_MF_REQUESTS = 0, /* counter {route,endpoint,provider,vendor,region,jurisdiction,
                           status_class} */
    MR_MF_DURATION,     /* histogram {route,provider,stream}: request start to last byte */
    MR_MF_TTFB,         /* histogram {route,provider,stream}: start to first response byte */
    MR_MF_ATTEMPTS,     /* counter {provider,vendor,region,jurisdiction,outcome} */
    MR_MF_FALLBACKS,    /* counter {route,provider,reason}: failed attempt, next one tried */
    MR_MF_SKIPPED,      /* counter {provider,reason}: candidate not tried */
    MR_MF_TOKENS,       /* counter {provider,type} */
    MR_MF_COST,         /* counter {provider}: USD from target prices */
    MR_MF_BREAKER,      /* gauge {provider,model,state}: 1 for the process's breaker state */
    MR_MF_INFLIGHT,     /* gauge {provider}: upstream transfers now */
    MR_MF_DENIALS,      /* counter {policy}: requests refused by a policy (403) */
    MR_MF_RETRY_DENIED, /* counter {}: failovers the retry budget refused */
    MR_MF_RESENDS,      /* counter {provider}: requests libcurl sent again by itself */
    MR_MF_COUNT,
} mr_metric_family_t;

/* Values of the `status_class` label. */
typedef enum {
    MR_SC_2XX = 0,
    MR_SC_3XX,
    MR_SC_4XX,
    MR_SC_5XX,
    MR_SC_ABORTED, /* the client left before the response was complete */
    MR_SC_COUNT,
} mr_status_class_t;

/* Values of `outcome` (attempts) and `reason` (fallbacks). */
typedef enum {
    MR_AO_SUCCESS = 0,
    MR_AO_HTTP_4XX, /* passed to the client, not retried */
    MR_AO_HTTP_429,
    MR_AO_HTTP_5XX,
    MR_AO_TIMEOUT,
    MR_AO_CONNECT,
    MR_AO_TRANSPORT, /* reset, protocol error, cancelled */
    MR_AO_INVALID,   /* an answer the gateway could not use */
    MR_AO_COUNT,
} mr_attempt_outcome_t;

typedef enum {
    MR_SKIP_CIRCUIT_OPEN = 0,
    MR_SKIP_MAX_INFLIGHT,
    MR_SKIP_BUDGET, /* its provider's budget_usd (or the state) refused the attempt */
    MR_SKIP_COUNT,
} mr_skip_reason_t;

typedef struct mr_metrics mr_metrics_t;

/* n_workers rows of slots. 0, or -1 when out of memory. */
int mr_metrics_new(unsigned n_workers, mr_metrics_t **out);
void mr_metrics_free(mr_metrics_t *m);
unsigned mr_metrics_workers(const mr_metrics_t *m);

/* Slot base of the series of `family` with these label values (as many as
 * the family has labels, in the order listed above), created when new. 0
 * (a slot nobody renders) when the slot space is exhausted. Any thread. */
uint32_t mr_metrics_series(mr_metrics_t *m, mr_metric_family_t family, const char *const *values);

/* Single-writer updates of worker `w`'s row. */
void mr_metrics_add(mr_metrics_t *m, unsigned w, uint32_t slot, uint64_t v);
void mr_metrics_set(mr_metrics_t *m, unsigned w, uint32_t slot, uint64_t v);
/* Histogram of microseconds (the exposition is in seconds). */
void mr_metrics_observe_us(mr_metrics_t *m, unsigned w, uint32_t base, uint64_t us);

/* Sum over workers of one slot. Any thread. */
uint64_t mr_metrics_sum(const mr_metrics_t *m, uint32_t slot);

/* Each existing series of `family`: its label values and slot base. Any
 * thread; series created meanwhile may or may not be visited. */
typedef void (*mr_metrics_visit_fn)(void *ud, const char *const *values, uint32_t base);
void mr_metrics_visit(const mr_metrics_t *m, mr_metric_family_t family, mr_metrics_visit_fn fn,
                      void *ud);

/* The whole exposition (text format 0.0.4) appended to out. Any thread. */
int mr_metrics_render(const mr_metrics_t *m, mr_buf_t *out);

/* Appends one sample line (`name{labels} value`), escaping label values;
 * labels is a NULL-terminated name, value, name, value... list (may be NULL). */
void mr_metrics_write_sample(mr_buf_t *out, const char *name, const char *const *labels,
                             double value);

/* The "# HELP" and "# TYPE" lines of a family rendered outside the
 * registry (type "counter" or "gauge"). */
void mr_metrics_write_family(mr_buf_t *out, const char *name, const char *type, const char *help);

/* CLOCK_MONOTONIC in ms: the clock of a breaker's reopen time. */
uint64_t mr_metrics_now_ms(void);

/* A target's breaker (a MR_MF_BREAKER series from mr_metrics_series) is
 * closed (reopen_at_ms 0) or open until reopen_at_ms (this clock). The
 * series is process-wide, not per worker: call it wherever the breaker
 * changes, under the breaker's lock, from any thread. */
void mr_metrics_breaker_set(mr_metrics_t *m, uint32_t slot, uint64_t reopen_at_ms);
/* counts[closed, open, half_open]: 1 for the breaker's state (an open one
 * past its cooldown counts as half-open), all 0 before its first change. */
void mr_metrics_breaker_counts(const mr_metrics_t *m, uint32_t base, unsigned counts[3]);

/*
 * A worker's slot cache for one config generation: the series of each
 * (route, provider, ...) combination resolved on first use. Owned by the
 * generation; used only by its worker's thread.
 */
typedef struct mr_metrics_view mr_metrics_view_t;

mr_metrics_view_t *mr_metrics_view_new(mr_metrics_t *m, unsigned worker, const mr_config_t *cfg);
void mr_metrics_view_free(mr_metrics_view_t *v);

/* A route key: a route's index, or one of these. */
#define MR_ROUTE_DIRECT ((size_t)-1) /* provider/model addressed directly */
#define MR_ROUTE_NONE ((size_t)-2)   /* no route resolved (bad request, unknown model) */

/* Values of the `endpoint` label: the API endpoints (adapter.h's
 * mr_endpoint_t, named by mr_endpoint_name) fit in this many. */
#define MR_METRICS_ENDPOINTS 8

typedef struct mr_metrics_req {
    size_t route;                  /* route index, MR_ROUTE_DIRECT or MR_ROUTE_NONE */
    unsigned endpoint;             /* < MR_METRICS_ENDPOINTS */
    const char *endpoint_name;     /* its label value: "chat", "messages" ... (static) */
    const mr_provider_t *provider; /* whose answer the client got; NULL: the gateway's */
    mr_status_class_t status_class;
    int stream;
    uint64_t total_us;
    uint64_t ttfb_us; /* UINT64_MAX when no byte went out */
} mr_metrics_req_t;

void mr_metrics_request(mr_metrics_view_t *v, const mr_metrics_req_t *rq);
void mr_metrics_attempt(mr_metrics_view_t *v, size_t route, const mr_provider_t *p,
                        mr_attempt_outcome_t outcome, int fell_back);
void mr_metrics_skipped(mr_metrics_view_t *v, const mr_provider_t *p, mr_skip_reason_t why);
/* Values of the `type` label of meridian_tokens_total. */
typedef enum {
    MR_TOK_PROMPT = 0, /* includes cached input */
    MR_TOK_COMPLETION, /* includes reasoning */
    MR_TOK_CACHED,     /* input read from a prompt cache */
    MR_TOK_CACHE_WRITE,
    MR_TOK_REASONING,
    MR_TOK_COUNT,
} mr_token_type_t;

/* counts[t] < 0 is unknown and skipped; cost in USD (0 when unpriced). */
void mr_metrics_usage(mr_metrics_view_t *v, const mr_provider_t *p, const long counts[MR_TOK_COUNT],
                      double cost_usd);
/* A request the transport re-sent on a fresh connection (upstream.h). */
void mr_metrics_resend(mr_metrics_view_t *v, const mr_provider_t *p);
void mr_metrics_inflight(mr_metrics_view_t *v, const mr_provider_t *p, unsigned n);
/* policy: a configured policy's name, or NULL for the request's own layer. */
void mr_metrics_denial(mr_metrics_view_t *v, const char *policy);
void mr_metrics_retry_denied(mr_metrics_view_t *v);

mr_status_class_t mr_status_class(int http_status);
const char *mr_attempt_outcome_name(mr_attempt_outcome_t o);

#endif
