/*
 * router_explain — a routing decision made readable: what the router would
 * plan for a request's models under a policy stack, without calling any
 * upstream and without advancing round-robin counters, as JSON
 * (GET /v1/gateway/route, the body of a 403) or as text (`meridian
 * --explain`). docs/routing.md#explain describes the output.
 *
 * Pure functions over the config and the caller's soft state; returned JSON
 * is a new reference the caller owns. Any thread, one soft state per thread.
 */
#ifndef MERIDIAN_ROUTER_EXPLAIN_H
#define MERIDIAN_ROUTER_EXPLAIN_H

#include "meridian/router.h"

#include <jansson.h>
#include <stdio.h>

/*
 * What mr_router_plan_policy would decide, without calling any upstream and
 * without advancing round-robin counters. On 0, *out is a new JSON object:
 *   {"models": [...], "route": "chat"|null, "policy": "eu-only+request",
 *    "policies": [{"name", "layer": "key"|"header"|"default", "sha256"}...],
 *    "request_policy": bool, "strategy", "strategy_from",
 *    "fallback_diversity", "diversity_from", "max_attempts",
 *    "candidates": [{"rank", "provider", "model", "for_model", "vendor",
 *                    "region", "jurisdiction", "creator", "open_weights",
 *                    "demoted", ["pinned"], ["ttfb_ms"], ["input_per_mtok", "output_per_mtok"]}],
 *    "excluded": [{"provider", "model", "for_model", "kind", "rule",
 *                  "policy", "reason"}], "excluded_total",
 *    "status": 200|403|503, ["error": {"code", "message"}]}
 * 403 and 503 outcomes are explained (status says so). -1 with *err only
 * when there is nothing to explain (400/404: bad or unknown model).
 */
int mr_router_explain(const mr_config_t *cfg, const mr_policy_stack_t *stack,
                      const char *const *models, size_t n_models, mr_softstate_t *ss,
                      uint64_t now_ms, json_t **out, mr_error_t *err);

/* The plan's exclusions as a JSON array (as in "excluded" above), e.g. to add
 * to a 403 body with mr_error_body(e, "excluded", arr, ...). New reference. */
json_t *mr_plan_exclusions_json(const mr_plan_t *plan);

/* Render an explanation (from mr_router_explain) as text. */
void mr_router_explain_print(const json_t *explain, FILE *out);

/*
 * `meridian --explain MODEL [--policy NAME]`: no gateway key, no provider
 * object, no soft state. Prints the explanation to `out`. Returns 0 when the
 * model would route, 1 when explained but it would fail (403/503), -1 with
 * *err when it cannot be explained (unknown policy or model).
 */
int mr_router_explain_text(const mr_config_t *cfg, const char *model, const char *policy, FILE *out,
                           mr_error_t *err);

#endif
