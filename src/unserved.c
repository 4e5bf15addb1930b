/*
 * The answers of a request that no attempt served, in the client dialect's
 * error shape: the router's refusals and the fixed failure vocabulary
 * (docs/security.md, docs/routing.md#errors).
 */
#include "meridian/unserved.h"

#include "meridian/admit.h"
#include "meridian/log.h"
#include "meridian/router_explain.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static json_t *attempts_json(const mr_request_t *r)
{
    json_t *arr = json_array();
    for (unsigned i = 0; i < r->n_attempts; i++) {
        const mr_attempt_rec_t *a = &r->attempts[i];
        json_t *o = json_object();
        json_object_set_new(o, "provider", json_string(a->provider->name));
        json_object_set_new(o, "model", json_string(a->model));
        json_object_set_new(o, "status", a->status ? json_integer(a->status) : json_null());
        /* the stable name only: curl's text may hold internal addresses */
        json_object_set_new(o, "error",
                            a->failure ? json_string(mr_failure_name(a->failure)) : json_null());
        json_object_set_new(o, "ms", json_integer(a->ms));
        json_array_append_new(arr, o);
    }
    return arr;
}

static void describe_attempt(const mr_attempt_rec_t *a, char *out, size_t n)
{
    if (a->status)
        snprintf(out, n, "%s (%s, HTTP %ld, %u ms)", a->provider->name, mr_failure_name(a->failure),
                 a->status, a->ms);
    else
        snprintf(out, n, "%s (%s, %u ms)", a->provider->name, mr_failure_name(a->failure), a->ms);
}

/* Targets the policy stack kept out of this request. */
static size_t policy_excluded(const mr_request_t *r)
{
    size_t n = 0;
    for (size_t i = 0; i < r->plan.n_excluded; i++)
        n += r->plan.excluded[i].kind == MR_EXCLUDED_POLICY;
    return n;
}

/* No attempt was made: a dialect could not express the request, every
 * provider is at max_inflight, or every circuit is open. */
static void prepare_unattempted(mr_request_t *r)
{
    mr_error_t e;

    if (r->build_error && r->n_skipped == 0 && r->n_busy == 0 && r->n_over_budget == 0) {
        if (r->build_error->status == 503) /* the worker's memory budget: soon */
            r->retry_after_out = 1;
        mr_request_prepare_error(r, r->build_error, NULL, NULL);
    } else if (r->n_over_budget && !r->n_skipped && !r->n_busy) {
        /* every candidate's provider is over its budget (or its check is
         * unavailable under on_outage "deny") */
        if (r->lim.verdict.outcome == MR_LIMITS_UNAVAILABLE)
            mr_admit_refusal(r, &e);
        else
            mr_error_set(&e, 503, NULL, "provider_budget_exhausted", NULL,
                         "every provider that may serve \"%s\" has used its budget_usd for this "
                         "period",
                         r->model);
        mr_request_prepare_error(r, &e, NULL, NULL);
    } else if (r->n_skipped == 0) {
        /* every candidate's provider is saturated (max_inflight): shed load */
        r->retry_after_out = 1;
        mr_error_set(&e, 429, NULL, "providers_busy", NULL,
                     "every provider for \"%s\" is at its max_inflight limit; retry shortly",
                     r->model);
        mr_request_prepare_error(r, &e, NULL, NULL);
    } else {
        /* every candidate's circuit is open: fail fast, tell the client when */
        r->retry_after_out = (long)((r->skipped_retry_ms + 999) / 1000);
        if (r->retry_after_out < 1)
            r->retry_after_out = 1;
        mr_error_set(&e, 503, NULL, "targets_unavailable", NULL,
                     "all %u candidate target%s of \"%s\" are failing (circuit open); retry in "
                     "%ld s%s%s",
                     r->n_skipped, r->n_skipped == 1 ? "" : "s", r->model, r->retry_after_out,
                     r->plan.policy_label[0] ? " under policy " : "", r->plan.policy_label);
        mr_request_prepare_error(r, &e, NULL, NULL);
    }
}

/* The status and code of "every attempt failed", read from their failures. */
static int failed_status(mr_request_t *r, const char **code)
{
    unsigned n429 = 0, ntimeout = 0, noverload = 0, nauth = 0, nmem = 0;

    for (unsigned i = 0; i < r->n_attempts; i++) {
        mr_failure_t f = r->attempts[i].failure;
        nmem += f == MR_FAIL_NO_MEMORY;
        nauth += f == MR_FAIL_HTTP_AUTH;
        n429 += f == MR_FAIL_HTTP_429;
        noverload += f == MR_FAIL_HTTP_429 || f == MR_FAIL_HTTP_OVERLOADED;
        ntimeout += mr_failure_is_timeout(f);
    }
    if (r->deadline_hit || ntimeout == r->n_attempts) {
        *code = "upstream_timeout";
        return 504;
    }
    if (n429 == r->n_attempts) {
        *code = "upstream_rate_limited";
        return 429;
    }
    if (nmem == r->n_attempts) { /* the worker's memory budget, not the providers */
        *code = "overloaded";
        r->retry_after_out = 1;
        return 503;
    }
    if (nauth == r->n_attempts) {
        *code = "upstream_auth_failed";
        return 502;
    }
    /* Every host overloaded, or others exist but the policy forbids them:
     * the service the client may use is unavailable, not merely broken. */
    if (noverload == r->n_attempts || policy_excluded(r)) {
        *code = "upstream_unavailable";
        return 503;
    }
    *code = "upstream_failed";
    return 502;
}

void mr_unserved_prepare(mr_request_t *r)
{
    if (r->n_attempts == 0) {
        prepare_unattempted(r);
        return;
    }
    char list[MR_ERROR_MESSAGE_MAX];
    size_t used = 0;
    for (unsigned i = 0; i < r->n_attempts; i++) {
        char one[256];
        describe_attempt(&r->attempts[i], one, sizeof(one));
        used += (size_t)snprintf(list + used, used < sizeof(list) ? sizeof(list) - used : 0, "%s%s",
                                 i ? "; " : "", one);
        if (used >= sizeof(list))
            used = sizeof(list) - 1;
    }
    const char *code;
    int status = failed_status(r, &code);
    size_t excluded = policy_excluded(r);
    char policy[MR_POLICY_LABEL_MAX + 96] = "";
    if (r->plan.policy_label[0] && excluded)
        snprintf(policy, sizeof(policy),
                 " under policy %s (%zu other target%s excluded by the policy)",
                 r->plan.policy_label, excluded, excluded == 1 ? "" : "s");
    else if (r->plan.policy_label[0])
        snprintf(policy, sizeof(policy), " under policy %s", r->plan.policy_label);
    char notes[96] = "";
    if (r->n_skipped || r->n_busy || r->budget_denied)
        snprintf(notes, sizeof(notes), " [skipped: %u circuit open, %u at max_inflight%s]",
                 r->n_skipped, r->n_busy, r->budget_denied ? "; retry budget exhausted" : "");
    mr_error_t e;
    mr_error_set(&e, status, "api_error", code, NULL, "%s after %u attempt%s%s: %s%s",
                 r->deadline_hit                         ? "request deadline exceeded"
                 : !strcmp(code, "upstream_auth_failed") ? "the provider refused the gateway's "
                                                           "credentials (the operator must fix "
                                                           "its api_key)"
                                                         : "upstream failed",
                 r->n_attempts, r->n_attempts == 1 ? "" : "s", policy, list, notes);
    json_t *extra = attempts_json(r);
    mr_request_prepare_error(r, &e, "attempts", extra);
    json_decref(extra);
}

/* Whether every exclusion is the request's own needs (capabilities,
 * require_parameters): then no target can serve it, which is a 400. */
static bool only_needs_excluded(const mr_plan_t *plan)
{
    for (size_t i = 0; i < plan->n_excluded; i++)
        if (strcmp(plan->excluded[i].rule, "capabilities") != 0 &&
            strcmp(plan->excluded[i].rule, "provider.require_parameters") != 0)
            return false;
    return plan->n_excluded > 0 && plan->n_excluded == plan->n_excluded_total;
}

enum MHD_Result mr_unserved_plan_error(mr_request_t *r, mr_error_t *e)
{
    mr_debug("%s: not routed: %d %s: %s", r->id, e->status, e->code ? e->code : "-", e->message);
    if (e->status == 403 && only_needs_excluded(&r->plan))
        mr_error_set(e, 400, "invalid_request_error", "no_capable_target", NULL,
                     "no target of \"%.200s\" can serve this request: %s", r->model,
                     r->plan.excluded[0].reason);
    else if (e->status != 403)
        return mr_request_error(r, e);
    /* one denial per policy layer that excluded something */
    for (size_t i = 0; e->status == 403 && i < r->plan.n_excluded; i++) {
        const mr_exclusion_t *x = &r->plan.excluded[i];
        size_t k = 0;
        if (x->kind != MR_EXCLUDED_POLICY)
            continue;
        while (k < i && !(r->plan.excluded[k].kind == MR_EXCLUDED_POLICY &&
                          strcmp(r->plan.excluded[k].policy ? r->plan.excluded[k].policy : "",
                                 x->policy ? x->policy : "") == 0))
            k++;
        if (k == i)
            mr_metrics_denial(r->gen->mv,
                              x->policy && strcmp(x->policy, "request") != 0 ? x->policy : NULL);
    }
    json_t *excluded = mr_plan_exclusions_json(&r->plan);
    size_t len = 0;
    char *body = r->inbound->error_body(e, "excluded", excluded, &len);
    json_decref(excluded);
    if (!body)
        return MHD_NO;
    return mr_request_queue(r, e->status, body, len, "application/json");
}
