/*
 * router — request `model` -> ordered upstream candidates.
 *
 * Resolution order:
 *   1. an exact route name (so a route may itself contain '/');
 *   2. "provider/model", split at the first '/': the provider name never
 *      contains '/', the upstream model may ("together/meta-llama/Llama-3").
 * Disabled targets are kept in plan->excluded with their reason, so the
 * decision can be explained later (provenance) and so a 503 can name the
 * variables that would enable them.
 */
#include "meridian/router.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* How much of a client-supplied model name is quoted back in a message. */
#define MODEL_QUOTE_MAX 200

/*
 * Copy at most MODEL_QUOTE_MAX bytes of s into buf (cut on a UTF-8 boundary,
 * "..." appended when cut) so an error message stays bounded and valid.
 */
static const char *clip(char *buf, size_t n, const char *s, size_t len)
{
    size_t take = len;

    if (take > MODEL_QUOTE_MAX) {
        take = MODEL_QUOTE_MAX;
        while (take > 0 && ((unsigned char)s[take] & 0xC0) == 0x80)
            take--;
    }
    snprintf(buf, n, "%.*s%s", (int)take, s, take < len ? "..." : "");
    return buf;
}

/* Append "set A, B or C" for the distinct key variables of the exclusions. */
static size_t append_vars(char *buf, size_t n, const mr_plan_t *plan)
{
    const char *vars[MR_MAX_CANDIDATES];
    size_t nv = 0, o = 0;

    for (size_t i = 0; i < plan->n_excluded; i++) {
        const char *v = plan->excluded[i].provider->key_env;
        bool dup = false;
        for (size_t k = 0; v && k < nv; k++)
            dup |= !strcmp(vars[k], v);
        if (v && !dup)
            vars[nv++] = v;
    }
    for (size_t k = 0; k < nv && o < n; k++) {
        int w = snprintf(buf + o, n - o, "%s%s",
                         k == 0        ? "set "
                         : k + 1 == nv ? " or "
                                       : ", ",
                         vars[k]);
        if (w < 0)
            break;
        o += (size_t)w;
    }
    if (o >= n)
        o = n ? n - 1 : 0;
    return nv;
}

static void exclude(mr_plan_t *plan, const mr_provider_t *p, const char *model)
{
    mr_exclusion_t *x = &plan->excluded[plan->n_excluded++];

    x->provider = p;
    x->model = model;
    x->reason = p->disabled_reason ? p->disabled_reason : "disabled";
}

static int plan_route(const mr_config_t *cfg, const mr_route_t *route, mr_plan_t *plan,
                      mr_error_t *err)
{
    unsigned cap;

    (void)cfg;
    plan->route = route;
    for (size_t i = 0; i < route->n_targets && i < MR_MAX_CANDIDATES; i++) {
        const mr_target_t *t = &route->targets[i];
        if (t->provider->enabled) {
            plan->candidates[plan->n_candidates].provider = t->provider;
            plan->candidates[plan->n_candidates].model = t->model;
            plan->n_candidates++;
        } else {
            exclude(plan, t->provider, t->model);
        }
    }
    if (plan->n_candidates == 0) {
        char vars[MR_ERROR_MESSAGE_MAX];
        if (append_vars(vars, sizeof(vars), plan) > 0)
            mr_error_set(err, 503, NULL, "no_enabled_provider", "model",
                         "route \"%s\" has no enabled provider: %s", route->name, vars);
        else
            mr_error_set(err, 503, NULL, "no_enabled_provider", "model",
                         "route \"%s\" has no enabled provider (%s: %s)", route->name,
                         plan->excluded[0].provider->name, plan->excluded[0].reason);
        return -1;
    }
    cap = route->max_attempts;
    plan->max_attempts = cap < plan->n_candidates ? cap : (unsigned)plan->n_candidates;
    return 0;
}

int mr_router_plan(const mr_config_t *cfg, const char *model, mr_plan_t *plan, mr_error_t *err)
{
    char q[MODEL_QUOTE_MAX + 8];
    const mr_route_t *route;
    const mr_provider_t *prov = NULL;
    const char *slash;
    size_t plen;

    memset(plan, 0, sizeof(*plan));
    if (!model || !*model) {
        mr_error_set(err, 400, NULL, NULL, "model",
                     "missing model: use a route name or provider/model; see GET /v1/models");
        return -1;
    }

    route = mr_config_find_route(cfg, model);
    if (route)
        return plan_route(cfg, route, plan, err);

    slash = strchr(model, '/');
    if (!slash) {
        const mr_provider_t *p = mr_config_find_provider(cfg, model);
        if (p)
            mr_error_set(err, 404, NULL, "model_not_found", "model",
                         "model \"%s\" is not a route or provider/model (to address provider "
                         "\"%s\" directly use \"%s/MODEL\"); see GET /v1/models",
                         clip(q, sizeof(q), model, strlen(model)), p->name, p->name);
        else
            mr_error_set(err, 404, NULL, "model_not_found", "model",
                         "model \"%s\" is not a route or provider/model; see GET /v1/models",
                         clip(q, sizeof(q), model, strlen(model)));
        return -1;
    }

    plen = (size_t)(slash - model);
    if (plen == 0 || slash[1] == '\0') {
        mr_error_set(err, 400, NULL, NULL, "model",
                     "model \"%s\" is not of the form provider/model: %s is empty",
                     clip(q, sizeof(q), model, strlen(model)),
                     plen == 0 ? "the provider name" : "the model name");
        return -1;
    }
    for (size_t i = 0; i < cfg->n_providers; i++) {
        const mr_provider_t *p = &cfg->providers[i];
        if (strlen(p->name) == plen && !memcmp(p->name, model, plen)) {
            prov = p;
            break;
        }
    }
    if (!prov) {
        char qp[MODEL_QUOTE_MAX + 8];
        mr_error_set(err, 404, NULL, "model_not_found", "model",
                     "model \"%s\" is not a route, and \"%s\" is not a provider; "
                     "see GET /v1/models",
                     clip(q, sizeof(q), model, strlen(model)), clip(qp, sizeof(qp), model, plen));
        return -1;
    }
    if (!prov->enabled) {
        exclude(plan, prov, slash + 1);
        if (prov->key_env)
            mr_error_set(err, 503, NULL, "no_enabled_provider", "model",
                         "provider \"%s\" is disabled (%s): set %s", prov->name,
                         plan->excluded[0].reason, prov->key_env);
        else
            mr_error_set(err, 503, NULL, "no_enabled_provider", "model",
                         "provider \"%s\" is disabled (%s)", prov->name, plan->excluded[0].reason);
        return -1;
    }
    plan->candidates[0].provider = prov;
    plan->candidates[0].model = slash + 1;
    plan->n_candidates = 1;
    plan->max_attempts = cfg->max_attempts < 1 ? cfg->max_attempts : 1;
    return 0;
}
