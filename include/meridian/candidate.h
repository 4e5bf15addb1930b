/*
 * candidate — which candidate of a request's plan an attempt goes to next:
 * the first, in plan order, whose provider is below its max_inflight (all
 * workers), whose breaker lets traffic through (a breaker hint from another
 * instance counts) and whose provider's budget admits the attempt's
 * worst-case cost. Skipped candidates are counted in the request (for the
 * error that lists them) and in the skipped-candidates metric.
 *
 * A candidate returned holds a max_inflight slot and maybe the breaker's
 * half-open probe; the attempt made on it takes them over
 * (mr_attempt_args_t). A provider reservation may wait for Redis: then
 * the candidate is held in the request (r->held_cand) with its slots until
 * the answer, which calls `resume`.
 *
 * Loop thread of the request only.
 */
#ifndef MERIDIAN_CANDIDATE_H
#define MERIDIAN_CANDIDATE_H

#include "meridian/admit.h"
#include "meridian/request.h"

#include <stdbool.h>
#include <stddef.h>

/* The next candidate with its breaker slot (*health_id, SIZE_MAX when
 * untracked; *probe when it holds the probe); NULL when none is left, or
 * when a reservation is pending (r->held_cand set: `resume` follows). */
const mr_candidate_t *mr_candidate_next(mr_request_t *r, size_t *health_id, bool *probe,
                                        mr_admit_cb resume);

/* After `resume`: the held candidate if its provider admitted it (slots as
 * above), else NULL (it was skipped: call mr_candidate_next again). */
const mr_candidate_t *mr_candidate_held(mr_request_t *r, size_t *health_id, bool *probe);

/* The request ends while a candidate is held: its slots go back. */
void mr_candidate_drop_held(mr_request_t *r);

#endif
