/*
 * unserved — what the client gets when no upstream answer serves its
 * request: the router refused it (403 listing every excluded target and
 * why; 400 no_capable_target when only the request's own needs excluded
 * them; 404, 400 as the router said), no attempt could be made (the
 * dialect could not express it: its 400; every provider at max_inflight:
 * 429 providers_busy; every circuit open: 503 targets_unavailable with
 * Retry-After; every provider over its budget: 503), or every attempt
 * failed (502 / 503 / 504 / 429 listing each attempt by its stable failure
 * name, never curl's text).
 *
 * Bodies take the client dialect's shape (r->inbound). Reads the request;
 * the request's loop thread only.
 */
#ifndef MERIDIAN_UNSERVED_H
#define MERIDIAN_UNSERVED_H

#include "meridian/request.h"

#include <microhttpd.h>

/* The router's refusal e of r's plan, queued now (counts policy denials). */
enum MHD_Result mr_unserved_plan_error(mr_request_t *r, mr_error_t *e);

/* The error of a request whose candidates all failed or were skipped,
 * prepared for MR_RS_RESPOND (r->out_*; r->retry_after_out when due). */
void mr_unserved_prepare(mr_request_t *r);

#endif
