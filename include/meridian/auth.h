/*
 * auth — gateway keys.
 *
 * The config holds only the SHA-256 of each key (keys.NAME.sha256). A request
 * presents `Authorization: Bearer <secret>` (or `x-api-key: <secret>`, as
 * Anthropic's clients do); the secret is hashed and the
 * digest compared with every configured digest in constant time: all keys are
 * always walked and all 32 bytes of each compared through an OR-accumulator,
 * so the time taken does not depend on which key (if any) matches or on where
 * a wrong secret first differs. The secret never appears in a message.
 *
 * Pure functions over the immutable config; any thread; no heap.
 */
#ifndef MERIDIAN_AUTH_H
#define MERIDIAN_AUTH_H

#include "meridian/config.h"
#include "meridian/error.h"

#include <stddef.h>
#include <stdint.h>

#define MR_AUTH_MAX_SECRET 4096 /* longer bearer tokens are rejected (401) unhashed */

/*
 * Check one request's Authorization header (NULL when absent).
 *   - no keys configured: 0, *key_out = NULL (authentication is off);
 *   - a valid key: 0, *key_out = the matching key (its policy binds the request);
 *   - otherwise: -1 and err = 401 "invalid_api_key" (type authentication_error).
 */
int mr_auth_check(const mr_config_t *cfg, const char *authorization_header,
                  const mr_key_t **key_out, mr_error_t *err);

/*
 * The same for a request that may present its key either way: the
 * Authorization header (Bearer) when it has one, else x-api-key (the raw
 * key, as Anthropic's SDKs send it). Missing both: 401.
 */
int mr_auth_check_request(const mr_config_t *cfg, const char *authorization, const char *api_key,
                          const mr_key_t **key_out, mr_error_t *err);

/*
 * The constant-time core: compare `digest` with every configured key. Returns
 * the matching key or NULL. When `bytes_compared` is non-NULL it receives the
 * number of byte comparisons made (always 32 * cfg->n_keys; tests use it to
 * show no early exit).
 */
const mr_key_t *mr_auth_find_digest(const mr_config_t *cfg, const uint8_t digest[32],
                                    size_t *bytes_compared);

#endif
