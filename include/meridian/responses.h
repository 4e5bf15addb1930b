/*
 * responses — the OpenAI Responses endpoints' own work (issue 15), between
 * dispatch and the proxy:
 *
 *   POST   /v1/responses                  mr_responses_prepare, then the proxy
 *   GET    /v1/responses/{id}             the stored response object
 *   GET    /v1/responses/{id}/input_items its input items, as a list
 *   DELETE /v1/responses/{id}             forgets it
 *
 * prepare gives the request its Responses state (responses_inbound.h): a
 * new response id, and the store unless the body says "store": false; a
 * previous_response_id is looked up under the caller's gateway key (another
 * key's id, or any id without a key when keys exist, is "not found": 404)
 * and its stored input and output items are put before the body's `input`,
 * so every target — translated or native — gets the whole conversation and
 * the chained turn is routed like any other request (the key's policy
 * again). The body is re-serialised then (a native target gets those bytes).
 *
 * The store is the snapshot env's (generation.h), answering at once (the
 * memory backend); a backend that answers later is refused with a 503 here
 * until the request path can wait for it. Errors take OpenAI's shape. Runs
 * on the request's worker thread.
 */
#ifndef MERIDIAN_RESPONSES_H
#define MERIDIAN_RESPONSES_H

#include "meridian/request.h"

#include <microhttpd.h>

/* 0 when the proxy may go on (also for a body that is not a JSON object:
 * the proxy refuses it), or -1 with the refusal answered in *ret. */
int mr_responses_prepare(mr_request_t *r, enum MHD_Result *ret);

/* GET or DELETE (del) of r->path_arg: "ID" or "ID/input_items". */
enum MHD_Result mr_responses_item(mr_request_t *r, int del);

#endif
