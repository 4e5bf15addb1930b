/*
 * router — turns a request's `model` into the ordered list of upstream
 * candidates to try.
 *
 * `model` is either a route name from the config or "provider/model", which
 * addresses one provider directly (the provider name is everything before the
 * first '/'; a route whose name contains '/' wins over that split).
 *
 * The plan borrows everything from the config: it is valid only while that
 * config lives, holds no heap memory and is filled in place by the caller.
 * Pure functions, callable from any thread.
 */
#ifndef MERIDIAN_ROUTER_H
#define MERIDIAN_ROUTER_H

#include "meridian/config.h"
#include "meridian/error.h"

#define MR_MAX_CANDIDATES 32

typedef struct mr_candidate {
    const mr_provider_t *provider;
    const char *model; /* upstream model name */
} mr_candidate_t;

/* Why a target of the route is not a candidate; kept for provenance. */
typedef struct mr_exclusion {
    const mr_provider_t *provider;
    const char *model;
    const char *reason; /* borrowed from the config, e.g. provider->disabled_reason */
} mr_exclusion_t;

typedef struct mr_plan {
    const mr_route_t *route;   /* NULL for direct provider/model addressing */
    mr_candidate_t candidates[MR_MAX_CANDIDATES];
    size_t n_candidates;
    mr_exclusion_t excluded[MR_MAX_CANDIDATES];
    size_t n_excluded;
    unsigned max_attempts;     /* min(route/global cap, n_candidates) */
} mr_plan_t;

/* Returns 0 with at least one candidate, else -1 with *err filled:
 *   404 model_not_found       unknown route / provider
 *   400 invalid_request_error empty model, "provider/" with empty model
 *   503 no_enabled_provider   every target disabled; the message names the
 *                             variables to set ("set MISTRAL_API_KEY or ...") */
int mr_router_plan(const mr_config_t *cfg, const char *model, mr_plan_t *plan, mr_error_t *err);

#endif
