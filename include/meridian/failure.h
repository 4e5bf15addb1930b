/*
 * failure — why an upstream attempt ended, as one enum value set where the
 * failure happens (curl's code in upstream.c, the HTTP status and the answer
 * in attempt.c, the gateway's timers in proxy.c). Every decision reads the
 * value, never the human message: whether another candidate may be tried,
 * whether it counts toward a 504, what the circuit breaker hears and which
 * `outcome` label /metrics gives it. The message stays for humans (logs,
 * error bodies, the audit record's "error").
 *
 * Each value has a stable short name ("connect_failed", "timeout", ...):
 * the audit record prints it, and it is all a client learns of a failed
 * attempt (error messages, attempts[]); the human message, which may quote
 * curl (internal addresses) or the upstream, goes to the log and the audit
 * file only (docs/security.md, findings 6 and 7).
 *
 * Pure tables and functions: no state, no heap, any thread.
 */
#ifndef MERIDIAN_FAILURE_H
#define MERIDIAN_FAILURE_H

#include "meridian/health.h"
#include "meridian/metrics.h"

#include <stdbool.h>

typedef enum {
    MR_FAIL_NONE = 0, /* a 2xx answer the gateway used */
    /* transport, mapped once from curl's code (mr_upstream_failure) */
    MR_FAIL_RESOLVE,   /* the provider's host name did not resolve */
    MR_FAIL_CONNECT,   /* no TCP connection */
    MR_FAIL_TIMEOUT,   /* the connect timeout (timeouts.connect_ms, upstream.c) */
    MR_FAIL_RESET,     /* reset, send/receive error, empty or cut-off reply */
    MR_FAIL_TLS,       /* handshake or certificate */
    MR_FAIL_PROTOCOL,  /* malformed HTTP, HTTP/2 framing, bad content encoding */
    MR_FAIL_TRANSPORT, /* any other transfer error */
    /* the HTTP status of the answer */
    MR_FAIL_HTTP_429,        /* rate limited */
    MR_FAIL_HTTP_OVERLOADED, /* 503, 529 */
    MR_FAIL_HTTP_5XX,        /* any other 5xx */
    MR_FAIL_HTTP_RETRYABLE,  /* 408, 409, or an error body the dialect marks retryable */
    MR_FAIL_HTTP_AUTH,       /* 401, 403, 407: the provider refused the gateway's key */
    MR_FAIL_HTTP_CLIENT,     /* another 4xx: the client's problem, passed on */
    MR_FAIL_HTTP_OTHER,      /* 1xx/3xx: passed on as it is */
    /* a 2xx answer the gateway cannot use */
    MR_FAIL_INVALID_BODY, /* not JSON */
    MR_FAIL_UNUSABLE,     /* the dialect adapter could not parse it */
    MR_FAIL_NOT_SSE,      /* a stream that is not an event stream */
    MR_FAIL_STREAM_ERROR, /* the stream reported an error or broke off */
    MR_FAIL_EMPTY_STREAM, /* the stream ended without an event */
    MR_FAIL_TRUNCATED,    /* ended before the dialect's terminal event / complete JSON */
    MR_FAIL_TOO_LARGE,    /* over limits.max_response_bytes */
    /* the gateway's timers */
    MR_FAIL_FIRST_BYTE, /* a stream's response head not within timeouts.first_byte_ms */
    /* A non-streamed answer not complete within first_byte_ms or the
     * deadline: a long generation (a client asking for many tokens) looks
     * exactly like a hung host, so the breaker does not hear it. */
    MR_FAIL_ANSWER_TIMEOUT,
    MR_FAIL_DEADLINE,    /* a stream's timeouts.request_ms reached before commit */
    MR_FAIL_BODY_STALL,  /* a stream's head arrived, no event by the first-byte timeout */
    MR_FAIL_STREAM_IDLE, /* committed stream silent for timeouts.stream_idle_ms */
    /* the gateway itself: the provider is not at fault */
    MR_FAIL_CLIENT_GONE,  /* the client closed the connection */
    MR_FAIL_SHUTDOWN,     /* the drain deadline aborted the request */
    MR_FAIL_RETRY_BUDGET, /* the worker's retry budget refused the failover */
    MR_FAIL_NO_MEMORY,
    MR_FAIL_UNSUPPORTED, /* the provider's kind has no adapter in this build */
    MR_FAIL_COUNT,
} mr_failure_t;

/* The stable short name ("none", "connect_failed", ...); "unknown" out of range. */
const char *mr_failure_name(mr_failure_t f);

/* Before anything reached the client, may the request go on to the next
 * candidate? (Within the attempt cap and the deadline, which the caller
 * checks.) */
bool mr_failure_retryable(mr_failure_t f);

/* Counts toward "every attempt timed out", which makes the answer a 504. */
bool mr_failure_is_timeout(mr_failure_t f);

/* Whether an attempt that was sent tells the breaker how it went; when not
 * (the client left, shutdown, nothing sent), a probe slot is given back. */
bool mr_failure_reaches_breaker(mr_failure_t f);

/* What the breaker hears (meaningful when mr_failure_reaches_breaker). */
mr_outcome_t mr_failure_breaker(mr_failure_t f);

/* The `outcome` label of meridian_upstream_attempts_total. The gateway's own
 * endings count as "success" there: the provider was not at fault and the
 * exported vocabulary has no neutral label. */
mr_attempt_outcome_t mr_failure_metric(mr_failure_t f);

/* An HTTP answer: 2xx NONE; 401, 403, 407 HTTP_AUTH (whatever the dialect
 * says: the provider's key is broken, not the request); otherwise, by
 * whether the dialect says it may be retried (mr_adapter_t.retryable), one
 * of the other MR_FAIL_HTTP_* values. */
mr_failure_t mr_failure_from_status(long status, bool retryable);

#endif
