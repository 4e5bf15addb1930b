/*
 * router — turns a request's model (and fallback models) into the ordered
 * list of upstream candidates to try, under a policy stack (policy.h).
 *
 * `model` is either a route name from the config or "provider/model", which
 * addresses one provider directly (modelref.h resolves it: the spelling
 * rules, allow_direct, matching to configured targets). A direct model that
 * is no configured target is refused when a layer has rules on target
 * attributes (creator, model, tags): it fails closed.
 *
 * Order of the rules (docs/routing.md):
 *   1. filters      every layer of the stack, for every target; then disabled
 *                   providers are set aside (kept as exclusions with reasons)
 *   2. strategy     priority | weighted | round_robin | least_latency | cheapest
 *   3. vendor share vendors at/over a max_vendor_share cap move behind the rest
 *   4. diversity    fallback_diversity: consecutive candidates differ on the axis
 *   5. provider.order, then allow_fallbacks false keeps only the first
 *   6. attempt cap  route max_attempts (per model when there are several)
 * Steps 2-6 run per model of the request's list; the lists are concatenated.
 *
 * The plan is a caller-owned value with no heap: it borrows the config, the
 * model strings passed in (keep them alive as long as the plan) and holds its
 * exclusion reasons inline. Pure apart from the soft state passed in (round-
 * robin counter, PRNG); one soft state per thread.
 */
#ifndef MERIDIAN_ROUTER_H
#define MERIDIAN_ROUTER_H

#include "meridian/config.h"
#include "meridian/error.h"
#include "meridian/policy.h"
#include "meridian/softstate.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* MR_MAX_CANDIDATES (catalogue.h) bounds a route's targets and a plan. */
#define MR_MAX_MODELS 8         /* the request's model + up to 7 fallback models */
#define MR_MAX_PLAN_ATTEMPTS 16 /* attempt cap over all models of a request */
#define MR_REASON_MAX 192
#define MR_RULE_MAX 80

typedef struct mr_candidate {
    const mr_provider_t *provider;
    const char *model; /* upstream model name */
    /* The configured target (for a direct provider/model: the first route
     * target with that pair, if any); NULL when the pair is in no route. */
    const mr_target_t *target;
    unsigned group; /* index of the model (plan->models) it serves */
    bool demoted;   /* moved behind by max_vendor_share */
} mr_candidate_t;

typedef enum {
    MR_EXCLUDED_POLICY = 0, /* a filter of the stack */
    MR_EXCLUDED_DISABLED,   /* provider disabled (key variable unset) */
    MR_EXCLUDED_FALLBACKS,  /* provider.allow_fallbacks false */
    MR_EXCLUDED_CAP,        /* beyond a fallback model's attempt cap / MR_MAX_CANDIDATES */
    MR_EXCLUDED_BUDGET,     /* the soft state's hook: provider over its budget_usd */
} mr_exclusion_kind_t;

/* Why a target is not a candidate; kept for provenance and error messages. */
typedef struct mr_exclusion {
    const mr_provider_t *provider;
    const char *model;
    const mr_target_t *target; /* as in mr_candidate_t */
    mr_exclusion_kind_t kind;
    const char *policy; /* excluding layer: a policy name or "request"; NULL otherwise */
    unsigned group;
    char rule[MR_RULE_MAX];     /* "allow.jurisdiction", "disabled", "provider.only" ... */
    char reason[MR_REASON_MAX]; /* "jurisdiction US not in [FR, DE] (policy eu-only)" */
} mr_exclusion_t;

typedef struct mr_plan {
    const mr_route_t *route; /* route of the first model; NULL for provider/model */
    mr_candidate_t candidates[MR_MAX_CANDIDATES];
    size_t n_candidates;
    /* Allocated on the first exclusion (most plans have none), reused when
     * the plan is planned again, freed by mr_plan_release. */
    mr_exclusion_t *excluded;
    size_t excluded_cap;
    size_t n_excluded;       /* entries stored (at most MR_MAX_CANDIDATES) */
    size_t n_excluded_total; /* including those that did not fit */
    unsigned max_attempts;   /* never more than n_candidates */

    /* provenance: what the plan was made from */
    const char *models[MR_MAX_MODELS]; /* borrowed from the caller */
    size_t n_models;
    const mr_policy_t *key_policy;    /* NULL when none */
    bool key_is_default;              /* key_policy is default_policy (policy_header narrow_only) */
    const mr_policy_t *chosen_policy; /* header or default policy; NULL when none */
    bool chosen_by_header;
    bool request_layer;                     /* a `provider` object took part */
    char policy_label[MR_POLICY_LABEL_MAX]; /* x-meridian-policy response header; "" = none */
    mr_strategy_t strategy;
    const char *strategy_from; /* "request", a policy name, or "default" */
    mr_diversity_t diversity;
    const char *diversity_from;
    bool pinned; /* the first candidate is the session's pinned target (cache affinity) */
} mr_plan_t;

/*
 * Without any policy (exactly the behaviour before policies existed).
 * Returns 0 with at least one candidate, else -1 with *err filled:
 *   404 model_not_found       unknown route / provider
 *   400 invalid_request_error empty model, "provider/" with empty model
 *   503 no_enabled_provider   every target disabled; the message names the
 *                             variables to set ("set MISTRAL_API_KEY or ...")
 */
int mr_router_plan(const mr_config_t *cfg, const char *model, mr_plan_t *plan, mr_error_t *err);

/*
 * The full planner. models[0] is the request's `model`, models[1..] its
 * fallback `models` (mr_router_models_from_request builds that list; at most
 * MR_MAX_MODELS are used); each string must outlive the plan.
 * `stack` may be NULL (no policy). `ss` may be NULL (no soft state:
 * round_robin does not rotate, least_latency sees every latency as unknown,
 * weighted orders by descending weight, no share caps).
 * Errors as mr_router_plan, plus:
 *   403 policy_denied         the stack's filters leave no target; the message
 *                             names the policy and lists every excluded target
 *                             with its reason (param null)
 *   503 no_enabled_provider   targets pass the filters but all are disabled;
 *                             the message also names the policy
 *   503 provider_budget_exhausted  the soft state excluded the rest: every
 *                             provider left is over its budget_usd
 * Errors about a fallback model carry param "models".
 */
int mr_router_plan_policy(const mr_config_t *cfg, const mr_policy_stack_t *stack,
                          const char *const *models, size_t n_models, mr_softstate_t *ss,
                          uint64_t now_ms, mr_plan_t *plan, mr_error_t *err);

/* mr_router_plan_policy without advancing round-robin counters: what the
 * request would be planned as, for explaining (router_explain.h). */
int mr_router_plan_preview(const mr_config_t *cfg, const mr_policy_stack_t *stack,
                           const char *const *models, size_t n_models, mr_softstate_t *ss,
                           uint64_t now_ms, mr_plan_t *plan, mr_error_t *err);

/* A plan passed to the planners must be zero-initialised ({0}) or planned
 * before (its exclusion storage is reused); mr_plan_release frees that
 * storage when the plan is done with. NULL ok. */
void mr_plan_release(mr_plan_t *plan);

/*
 * The request's model list: out[0] = model, then the strings of the body's
 * `models` array (NULL or JSON null: none) without repeats. Pointers borrow
 * from `model` and the JSON. 400 (param "models") when `models` is not an
 * array of non-empty strings or lists more than MR_MAX_MODELS - 1 entries.
 */
int mr_router_models_from_request(const char *model, const json_t *models,
                                  const char *out[MR_MAX_MODELS], size_t *n_out, mr_error_t *err);

/* ---- soft-state feedback: call from the gateway ----------------------- */

/* A request finished successfully (or committed its stream) on `served`:
 * counts it for every max_vendor_share policy of the plan's stack. */
void mr_router_record_served(mr_softstate_t *ss, const mr_plan_t *plan,
                             const mr_candidate_t *served, uint64_t now_ms);

/* An attempt on `c` got its response head after `ttfb_ms` (or failed before
 * that: record the time it was given, e.g. timeouts.first_byte_ms, so a
 * failing target does not look fast). No-op for targets in no route. */
void mr_router_record_ttfb(mr_softstate_t *ss, const mr_candidate_t *c, uint32_t ttfb_ms,
                           uint64_t now_ms);

#endif
