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

/* `completed`: MHD delivered the whole answer (else the client left). */
void mr_observe_request(mr_request_t *r, int completed);

#endif
