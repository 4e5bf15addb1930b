/*
 * admit — the limits engine (limits.h) on the request path: a request's
 * admission against its key's rpm, tpm, max_parallel and budget once its
 * plan is ready; a budget reservation per attempt on a provider with a
 * budget; the settlement of each attempt with the usage its upstream
 * reported (streams included); the refusals as the client's errors; the end.
 *
 * The request embeds its mr_limits_req_t (r->lim). Calls that may wait for
 * Redis return MR_LIMITS_DONE (decided, nothing follows) or
 * MR_LIMITS_PENDING: `done(r)` follows once, on the request's loop, within
 * the state's command timeout; the caller keeps the connection suspended
 * meanwhile. Without a limits engine (no state) everything is allowed at
 * once. mr_admit_finish, always called when the request ends, cancels a
 * pending call, releases what the request still holds and settles its key's
 * budget; it never waits.
 *
 * Every call runs on the request's loop thread.
 */
#ifndef MERIDIAN_ADMIT_H
#define MERIDIAN_ADMIT_H

#include "meridian/request.h"

#include <stdbool.h>

typedef void (*mr_admit_cb)(mr_request_t *r);

/* The request's admission (after planning: the estimate takes the highest
 * prices among the plan's candidates). */
int mr_admit_request(mr_request_t *r, mr_admit_cb done);

/* The last admission's refusal as the client's answer: 429
 * rate_limit_exceeded or insufficient_quota (with Retry-After in
 * r->retry_after_out), 503 state_unavailable; false when it allowed. */
bool mr_admit_refusal(mr_request_t *r, mr_error_t *e);

/* Before an attempt on candidate c: its provider's budget reservation.
 * After DONE (or `done`), mr_admit_attempt_allowed says whether to go on;
 * a refused candidate is skipped like an open circuit. */
int mr_admit_attempt(mr_request_t *r, const mr_candidate_t *c, mr_admit_cb done);
bool mr_admit_attempt_allowed(const mr_request_t *r);

/* The attempt admitted last is over: settled with its reported usage
 * (a succeeded one without usage at its reservation), or released. `a` is
 * NULL when it never came to be. Once per attempt; a no-op after that. */
void mr_admit_attempt_end(mr_request_t *r, const mr_attempt_t *a);

/* The client left while a call was pending: its answer is dropped (what it
 * reserved is given back). */
void mr_admit_cancel(mr_request_t *r);

/* The request is over: see above. Idempotent. */
void mr_admit_finish(mr_request_t *r);

/* GET /v1/gateway/keys/NAME: reads key `key`'s counters (DONE or PENDING
 * like the others), then mr_admit_key_json gives the answer's body. */
int mr_admit_key_refresh(mr_request_t *r, size_t key, mr_admit_cb done);
json_t *mr_admit_key_json(const mr_request_t *r, size_t key);

#endif
