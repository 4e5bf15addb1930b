/*
 * dispatch — the endpoint table: which paths the gateway serves, with which
 * methods, under which authentication, and the handler that answers once
 * the request's body is in.
 *
 *   POST /v1/chat/completions, /v1/completions, /v1/embeddings  key   proxy (chat)
 *   POST /v1/messages, /v1/messages/count_tokens                 key   proxy (messages)
 *   GET|HEAD /v1/models                                          key   models list
 *   GET /v1/gateway/route, /v1/gateway/providers                 key   explain, breakers
 *   GET /v1/gateway/keys/NAME                  the key itself or an admin   its limits, usage
 *   GET|HEAD /healthz                                            none  {"status":"ok"}
 *   GET|HEAD /metrics, /status, /status.json                     key unless public_metrics
 *
 * "/v1" paths are also served without the prefix; the others only as
 * written (a query such as Claude Code's ?beta=true is not part of the
 * path). Each API row speaks a client dialect (inbound.h): every answer to
 * it, refusals included, takes that dialect's error shape. The key comes
 * from Authorization: Bearer, else x-api-key. Before anything else a
 * request must name the gateway in Host
 * (421) and, when it carries an Origin, come from an allowed one (403);
 * a CORS preflight from an allowed origin is answered 204 without a key
 * (guard.h). The key is checked before the path is looked at (an unknown
 * path is a 401 without a key, then a 404); a known path with another
 * method is a 405 with Allow; a POST must say Content-Type:
 * application/json (415). Static bodies (the status page, /healthz, the
 * models list of the request's generation) are handed to MHD without a
 * copy.
 *
 * Stateless: the table is constant; every call runs on the request's loop
 * thread.
 */
#ifndef MERIDIAN_DISPATCH_H
#define MERIDIAN_DISPATCH_H

#include "meridian/request.h"

#include <microhttpd.h>
#include <stddef.h>

/* MHD's first call for a request: limits, the table row, authentication,
 * method and content checks. Refusals are answered at once. */
enum MHD_Result mr_dispatch_first(mr_request_t *r, const char *url, const char *method);

/* MHD's calls in MR_RS_BODY: upload data is appended (413 past
 * limits.max_body_bytes); the call without data runs the row's handler. */
enum MHD_Result mr_dispatch_body(mr_request_t *r, const char *data, size_t *size);

#endif
