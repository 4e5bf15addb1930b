/*
 * modelref — what a request's `model` string names: a route of the config,
 * or one provider's model addressed directly as "provider/model".
 *
 *   1. the text must be usable: no control characters anywhere (C0, DEL,
 *      C1, U+2028/2029), no whitespace around it (400 invalid_model), so a
 *      name cannot differ from a configured one only by what a person or a
 *      log does not show;
 *   2. an exact route name wins (a route name may contain '/'); then a
 *      route alias (routes.NAME.aliases: exact names or `*` patterns,
 *      which the config keeps from overlapping each other, route names
 *      and provider/ prefixes);
 *   3. else "provider/model", split at the first '/': the provider must exist
 *      (404) and allow direct addressing (providers.NAME.allow_direct, 403
 *      direct_model_not_allowed); the model is matched to the provider's
 *      configured targets the way that provider resolves model names
 *      (mr_modelref_same_model, docs/routing.md), so that a spelling the
 *      provider would serve as a configured target is that target, with its
 *      creator, tags and prices, and is sent with the configured spelling.
 *
 * Pure functions over the immutable config; results borrow from the config
 * and from the caller's string. No heap, no global state, any thread.
 */
#ifndef MERIDIAN_MODELREF_H
#define MERIDIAN_MODELREF_H

#include "meridian/catalogue.h"
#include "meridian/error.h"

#include <stdbool.h>
#include <stddef.h>

/* Bytes of a client-supplied model name quoted back in a message. */
#define MR_MODELREF_QUOTE_MAX 200

typedef struct mr_modelref {
    const mr_route_t *route;     /* a route ... */
    const mr_provider_t *direct; /* ... or a provider addressed directly */
    const char *model;           /* direct: the upstream model (the target's spelling when one
                                    matched, else the client's, borrowed) */
    const mr_target_t *target;   /* direct: the configured target it resolved to, or NULL */
} mr_modelref_t;

/*
 * Resolves `model`. `what` names it in messages ("model", "fallback model"),
 * `param` is the error's param ("model", "models"). 0, or -1 with *err:
 *   400 invalid_model             control characters or surrounding whitespace
 *   400 (no code)                 empty; "provider/" or "/model"
 *   404 model_not_found           no such route or provider
 *   403 direct_model_not_allowed  the provider has allow_direct false
 */
int mr_modelref_resolve(const mr_config_t *cfg, const char *model, const char *what,
                        const char *param, mr_modelref_t *out, mr_error_t *err);

/* Would a provider of `kind` serve `asked` as its model `configured`?
 * openai, anthropic: byte for byte; gemini: the same, ignoring a leading
 * "models/"; azure: deployment names, ASCII case-insensitively. */
bool mr_modelref_same_model(mr_provider_kind_t kind, const char *configured, const char *asked);

/* The first route target (file order) of provider `p` that `model` names
 * under mr_modelref_same_model, or NULL. */
const mr_target_t *mr_modelref_find_target(const mr_config_t *cfg, const mr_provider_t *p,
                                           const char *model);

/* `s` (its first `len` bytes) cut to MR_MODELREF_QUOTE_MAX on a UTF-8
 * boundary, "..." appended when cut, into buf. Returns buf. */
const char *mr_modelref_quote(char *buf, size_t n, const char *s, size_t len);

#endif
