/*
 * proxy — the state machine of a proxied request: plan -> attempts ->
 * commit -> finish.
 *
 *   plan      the body is validated, the router turns `model` into ordered
 *             candidates under the policy stack; the connection is suspended
 *   attempts  one mr_attempt_t per try (attempt.h); a failure the enum calls
 *             retryable moves to the next candidate (breaker, max_inflight,
 *             retry budget, backoff for a repeated target, attempt cap and
 *             deadline permitting); the request's one uv_timer_t bounds each
 *             try (first byte, deadline, stream idle) and waits out backoffs
 *   commit    a stream's first bytes resume the connection; once the client
 *             has the head there is no failover, and a failure ends the
 *             stream with an SSE error event
 *   finish    the answer (buffered success, passed-on error, or an error
 *             listing every attempt: 502, 503, 504, 429) is prepared and the
 *             connection resumed for MHD to take it
 *
 * Suspended connections are invisible to MHD, so the proxy watches for the
 * client leaving (uv_poll_t for UV_DISCONNECT, armed 25 ms into a suspension)
 * and cancels the upstream transfer when it does.
 *
 * Everything runs on the request's loop thread; the request (request.h)
 * holds all state, the proxy none.
 */
#ifndef MERIDIAN_PROXY_H
#define MERIDIAN_PROXY_H

#include "meridian/failure.h"
#include "meridian/request.h"

#include <microhttpd.h>

/* The body is complete: validate, plan, start the first attempt. From the
 * access handler; answers 400/403/404/503 at once when it cannot route. */
enum MHD_Result mr_proxy_begin(mr_request_t *r);

/* The access handler was called again after the body (the connection was
 * resumed): queue what is ready, re-suspend, or close. */
enum MHD_Result mr_proxy_resumed(mr_request_t *r);

/* The client left (MR_FAIL_CLIENT_GONE) or the drain deadline passed
 * (MR_FAIL_SHUTDOWN): the attempt is cancelled and recorded, and the
 * connection resumed so that MHD closes it. */
void mr_proxy_abort(mr_request_t *r, mr_failure_t why);

/* MHD is done with the request: stop watching the client and end an attempt
 * still in flight (recorded as client_gone), before it is observed. */
void mr_proxy_finish(mr_request_t *r);

/* Frees what the proxy allocated in the request (attempt, plan, history,
 * parsed body). */
void mr_proxy_free(mr_request_t *r);

#endif
