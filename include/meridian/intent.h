/*
 * intent — what a request asks of the routing beyond its model: the
 * capabilities it needs of a target, with provider.require_parameters the
 * parameters each dialect would not carry (docs/routing.md, capabilities),
 * and the conversation it belongs to with the target that conversation is
 * pinned to (cache affinity, affinity.h). The proxy puts them in the request
 * layer of the policy stack before planning; the explain endpoint asks for
 * a pin.
 *
 * Reads the request (its body, its conversation model — parsed here only
 * when a target may lack a capability, then kept for the attempts — its
 * headers, its gateway key) and its generation's affinity table; the
 * request's loop thread only. Nothing fails: what cannot be read is left
 * unset, for the attempts to refuse.
 */
#ifndef MERIDIAN_INTENT_H
#define MERIDIAN_INTENT_H

#include "meridian/policy.h"
#include "meridian/request.h"

#include <stddef.h>
#include <stdint.h>

/* rp->needs and, with rp->require_parameters, rp->unsupported. */
void mr_intent_needs(mr_request_t *r, mr_request_policy_t *rp);

/* The request's conversation — its prompt_cache_key, else its user, else
 * the x-meridian-session header — into r->session_key and
 * r->session_ttl_ms (the stack's session_ttl_s), and its pin into
 * st->request.has_pin / pin. No conversation: nothing is set. */
void mr_intent_session(mr_request_t *r, mr_policy_stack_t *st);

/* The session key of conversation `name` (n bytes) for `model` in r's scope
 * (its gateway key), in *key, and the target it is pinned to now: 1 with
 * *target_id and *expires_ms (uv_now's clock), 0 when not pinned. */
int mr_intent_session_pin(const mr_request_t *r, const char *model, const char *name, size_t n,
                          uint64_t *key, uint32_t *target_id, uint64_t *expires_ms);

#endif
