/*
 * observe — what a finished API request leaves behind: its metrics
 * (requests, latency, attempts by outcome, tokens, cost), its access-log
 * line and its audit record (reqlog.h).
 *
 * Called once per request when MHD reports completion, on the request's
 * loop thread; writes only this worker's metric row and log queues. The
 * gateway's own endpoints (models, health, metrics, status, explain) are
 * not observed.
 */
#ifndef MERIDIAN_OBSERVE_H
#define MERIDIAN_OBSERVE_H

#include "meridian/request.h"

/* USD of `u` at target t's prices: uncached input at input_per_mtok, cache
 * reads at cached_input_per_mtok, cache writes at cache_write_per_mtok,
 * output at output_per_mtok; -1 when t has no input or output price. */
double mr_observe_cost(const mr_target_t *t, const mr_usage_t *u);

/* An answer without reported usage is estimated: a token per 4 bytes of
 * the request body and of the answer the client received. */
#define MR_OBSERVE_BYTES_PER_TOKEN 4

/* `completed`: MHD delivered the whole answer (else the client left). */
void mr_observe_request(mr_request_t *r, int completed);

#endif
