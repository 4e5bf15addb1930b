/*
 * guard — what keeps web pages out of a gateway they happen to reach
 * (docs/security.md, finding 1). A loopback listener is reachable from every
 * browser tab on the machine: a page may send "simple" cross-origin POSTs
 * (no preflight), and through DNS rebinding may read the answers. So:
 *
 *   Host     must name the gateway: its listen address, "localhost", any IP
 *            literal when it listens on a wildcard address, or a
 *            server_names entry (any port: rebinding changes the name, and
 *            port mappings legitimately change the port). Else 421.
 *   Origin   a request carrying one is refused (403) unless the origin is in
 *            cors.allow_origins ("*" there: any, only accepted with keys) or
 *            is the gateway's own (scheme://Host, a page it served).
 *   CORS     for an allowed origin, preflights are answered and answers carry
 *            Access-Control-Allow-Origin; only the request headers SDKs send
 *            are allowed (mr_guard_allow_headers).
 *
 * Pure functions over the immutable config and the request's header values
 * (borrowed, NUL-terminated); no heap, no state, any thread.
 */
#ifndef MERIDIAN_GUARD_H
#define MERIDIAN_GUARD_H

#include "meridian/catalogue.h"

#include <stdbool.h>
#include <stddef.h>

/* Seconds a browser may cache a preflight answer (Access-Control-Max-Age). */
#define MR_GUARD_PREFLIGHT_MAX_AGE 600
/* What answers to an allowed origin let its scripts read. */
#define MR_GUARD_EXPOSE_HEADERS                                                                    \
    "x-request-id, x-meridian-provider, x-meridian-model, x-meridian-vendor, "                     \
    "x-meridian-region, x-meridian-jurisdiction, x-meridian-attempts, x-meridian-policy, "         \
    "retry-after"

/* Does the Host header value name this gateway? NULL (an HTTP/1.0 request
 * without one) is accepted: no browser sends a request without Host. */
bool mr_guard_host_ok(const mr_config_t *cfg, const char *host);

/* May a page at `origin` call the gateway? `host` is the request's (checked)
 * Host header, for the gateway's own origin. */
bool mr_guard_origin_ok(const mr_config_t *cfg, const char *origin, const char *host);

/* The names of Access-Control-Request-Headers (comma-separated, any case)
 * that SDKs send and the gateway reads or forwards — authorization,
 * content-type, accept, x-api-key, x-meridian-policy, x-request-id and
 * every openai-*, anthropic-* and x-stainless-* header — lower-cased into
 * out, comma-separated; the others are left out, so the browser refuses the
 * request. Returns out ("" when none or when it does not fit). */
const char *mr_guard_allow_headers(const char *requested, char *out, size_t n);

#endif
