/*
 * router — request models -> ordered upstream candidates under a policy stack.
 *
 * Resolution of one model:
 *   1. an exact route name (so a route may itself contain '/');
 *   2. "provider/model", split at the first '/': the provider name never
 *      contains '/', the upstream model may ("together/meta-llama/Llama-3").
 *
 * Each model of the request's list becomes a *group* of candidates, built
 * and ordered on its own (filters, strategy, vendor share, diversity,
 * provider.order, allow_fallbacks, cap) and appended to the plan, so a
 * fallback model is only tried after the models before it. Every target that
 * does not become a candidate is kept in plan->excluded with its reason
 * (provenance, 403/503 messages).
 *
 * Ordering works on small fixed arrays (at most MR_MAX_CANDIDATES) with
 * stable insertion sorts: no heap anywhere on this path.
 */
#include "meridian/router.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

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

/* ------------------------------------------------------------------------ */
/* Model resolution                                                          */
/* ------------------------------------------------------------------------ */

typedef struct resolved {
    const mr_route_t *route;     /* a route ... */
    const mr_provider_t *direct; /* ... or provider/model */
    const char *direct_model;    /* points into the caller's string */
} resolved_t;

/* `what` is "model" for the request's model, "fallback model" for models[]. */
static int resolve_model(const mr_config_t *cfg, const char *model, const char *what,
                         const char *param, resolved_t *out, mr_error_t *err)
{
    char q[MODEL_QUOTE_MAX + 8];
    const char *slash;
    size_t plen;

    memset(out, 0, sizeof(*out));
    if (!model || !*model) {
        mr_error_set(err, 400, NULL, NULL, param,
                     "missing %s: use a route name or provider/model; see GET /v1/models", what);
        return -1;
    }
    if ((out->route = mr_config_find_route(cfg, model)))
        return 0;

    slash = strchr(model, '/');
    if (!slash) {
        const mr_provider_t *p = mr_config_find_provider(cfg, model);
        if (p)
            mr_error_set(err, 404, NULL, "model_not_found", param,
                         "%s \"%s\" is not a route or provider/model (to address provider "
                         "\"%s\" directly use \"%s/MODEL\"); see GET /v1/models",
                         what, clip(q, sizeof(q), model, strlen(model)), p->name, p->name);
        else
            mr_error_set(err, 404, NULL, "model_not_found", param,
                         "%s \"%s\" is not a route or provider/model; see GET /v1/models", what,
                         clip(q, sizeof(q), model, strlen(model)));
        return -1;
    }
    plen = (size_t)(slash - model);
    if (plen == 0 || slash[1] == '\0') {
        mr_error_set(err, 400, NULL, NULL, param,
                     "%s \"%s\" is not of the form provider/model: %s is empty", what,
                     clip(q, sizeof(q), model, strlen(model)),
                     plen == 0 ? "the provider name" : "the model name");
        return -1;
    }
    for (size_t i = 0; i < cfg->n_providers; i++) {
        const mr_provider_t *p = &cfg->providers[i];
        if (strlen(p->name) == plen && !memcmp(p->name, model, plen)) {
            out->direct = p;
            out->direct_model = slash + 1;
            return 0;
        }
    }
    {
        char qp[MODEL_QUOTE_MAX + 8];
        mr_error_set(err, 404, NULL, "model_not_found", param,
                     "%s \"%s\" is not a route, and \"%s\" is not a provider; "
                     "see GET /v1/models",
                     what, clip(q, sizeof(q), model, strlen(model)),
                     clip(qp, sizeof(qp), model, plen));
    }
    return -1;
}

/* The configured target for a direct provider/model, so that its creator,
 * prices, tags and latency apply; the first one in file order. */
static const mr_target_t *find_target(const mr_config_t *cfg, const mr_provider_t *p,
                                      const char *model)
{
    for (size_t i = 0; i < cfg->n_routes; i++)
        for (size_t j = 0; j < cfg->routes[i].n_targets; j++) {
            const mr_target_t *t = &cfg->routes[i].targets[j];
            if (t->provider == p && !strcmp(t->model, model))
                return t;
        }
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Planning state                                                            */
/* ------------------------------------------------------------------------ */

/* One model's candidates while they are being ordered. */
typedef struct group {
    mr_candidate_t c[MR_MAX_CANDIDATES];
    size_t n;
} group_t;

typedef struct planner {
    const mr_config_t *cfg;
    const mr_policy_stack_t *st; /* NULL: no policy */
    mr_softstate_t *ss;
    uint64_t now_ms;
    bool commit; /* false for explain: do not advance round-robin counters */
    mr_plan_t *plan;
    size_t n_allowed; /* targets that passed every filter (enabled or not) */
} planner_t;

static mr_exclusion_t *add_exclusion(mr_plan_t *plan, const mr_provider_t *p, const char *model,
                                     const mr_target_t *t, unsigned group, mr_exclusion_kind_t kind)
{
    mr_exclusion_t *x;

    plan->n_excluded_total++;
    if (plan->n_excluded >= MR_MAX_CANDIDATES)
        return NULL;
    if (plan->n_excluded == plan->excluded_cap) {
        size_t cap = plan->excluded_cap ? plan->excluded_cap * 2 : 4;
        mr_exclusion_t *more = realloc(plan->excluded, cap * sizeof(*more));
        if (!more)
            return NULL; /* counted in n_excluded_total, not listed */
        plan->excluded = more;
        plan->excluded_cap = cap;
    }
    x = &plan->excluded[plan->n_excluded++];
    memset(x, 0, sizeof(*x));
    x->provider = p;
    x->model = model;
    x->target = t;
    x->group = group;
    x->kind = kind;
    return x;
}

/* Copies src into dst, cut to fit: a long reason loses its tail, not the plan. */
static void copy_cut(char *dst, size_t cap, const char *src)
{
    size_t n = strnlen(src, cap - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static void exclude_candidate(mr_plan_t *plan, const mr_candidate_t *c, mr_exclusion_kind_t kind,
                              const char *rule, const char *policy, const char *reason)
{
    mr_exclusion_t *x = add_exclusion(plan, c->provider, c->model, c->target, c->group, kind);

    if (!x)
        return;
    x->policy = policy;
    copy_cut(x->rule, sizeof(x->rule), rule);
    copy_cut(x->reason, sizeof(x->reason), reason);
}

/*
 * Already a candidate of an earlier model of the list, or filtered out or
 * disabled there (the same verdict would follow)? A pair cut only by an
 * earlier model's attempt cap or allow_fallbacks may serve this model.
 */
static bool seen_before(const mr_plan_t *plan, unsigned group, const mr_provider_t *p,
                        const char *model)
{
    for (size_t i = 0; i < plan->n_candidates; i++)
        if (plan->candidates[i].group < group && plan->candidates[i].provider == p &&
            !strcmp(plan->candidates[i].model, model))
            return true;
    for (size_t i = 0; i < plan->n_excluded; i++) {
        const mr_exclusion_t *x = &plan->excluded[i];
        if (x->group < group && x->provider == p && !strcmp(x->model, model) &&
            (x->kind == MR_EXCLUDED_POLICY || x->kind == MR_EXCLUDED_DISABLED))
            return true;
    }
    return false;
}

/*
 * Filters, then the disabled check, for one target. Enabled targets that
 * pass go into the group.
 */
static void admit(planner_t *pl, group_t *g, unsigned group, const mr_provider_t *p,
                  const char *model, const mr_target_t *configured, const mr_target_t *eval)
{
    mr_plan_t *plan = pl->plan;

    if (group > 0 && seen_before(plan, group, p, model))
        return;
    if (pl->st) {
        char reason[MR_REASON_MAX], rule[MR_RULE_MAX];
        const char *policy;
        if (mr_policy_stack_check_target(pl->st, eval, reason, sizeof(reason), rule, sizeof(rule),
                                         &policy) < 0) {
            mr_exclusion_t *x =
                add_exclusion(plan, p, model, configured, group, MR_EXCLUDED_POLICY);
            if (x) {
                x->policy = policy;
                memcpy(x->rule, rule, sizeof(rule));
                memcpy(x->reason, reason, sizeof(reason));
            }
            return;
        }
    }
    pl->n_allowed++;
    if (!p->enabled) {
        mr_exclusion_t *x = add_exclusion(plan, p, model, configured, group, MR_EXCLUDED_DISABLED);
        if (x) {
            snprintf(x->rule, sizeof(x->rule), "disabled");
            snprintf(x->reason, sizeof(x->reason), "%s",
                     p->disabled_reason ? p->disabled_reason : "disabled");
        }
        return;
    }
    g->c[g->n].provider = p;
    g->c[g->n].model = model;
    g->c[g->n].target = configured;
    g->c[g->n].group = group;
    g->c[g->n].demoted = false;
    g->n++;
}

/* ------------------------------------------------------------------------ */
/* Ordering                                                                  */
/* ------------------------------------------------------------------------ */

/* Stable insertion sort by a double key; `unknown` entries go first or last. */
static void sort_by_key(group_t *g, double *key, bool *known, bool unknown_first)
{
    for (size_t i = 1; i < g->n; i++) {
        mr_candidate_t c = g->c[i];
        double k = key[i];
        bool kn = known[i];
        size_t j = i;
        while (j > 0) {
            bool before; /* does (kn, k) sort strictly before entry j-1? */
            if (kn != known[j - 1])
                before = unknown_first ? !kn : kn;
            else
                before = kn && k < key[j - 1];
            if (!before)
                break;
            g->c[j] = g->c[j - 1];
            key[j] = key[j - 1];
            known[j] = known[j - 1];
            j--;
        }
        g->c[j] = c;
        key[j] = k;
        known[j] = kn;
    }
}

static uint32_t weight_of(const mr_candidate_t *c)
{
    return c->target ? c->target->weight : 1;
}

/* Weighted random order without replacement: each position draws among the
 * remaining candidates with probability weight / remaining weight. */
static void order_weighted(planner_t *pl, group_t *g)
{
    if (!pl->ss) {
        /* no randomness available: the most likely order */
        double key[MR_MAX_CANDIDATES];
        bool known[MR_MAX_CANDIDATES];
        for (size_t i = 0; i < g->n; i++)
            key[i] = -(double)weight_of(&g->c[i]), known[i] = true;
        sort_by_key(g, key, known, false);
        return;
    }
    for (size_t pos = 0; pos + 1 < g->n; pos++) {
        uint64_t sum = 0, r;
        size_t pick = pos;
        for (size_t i = pos; i < g->n; i++)
            sum += weight_of(&g->c[i]);
        /* modulo bias is below 2^-37 for sums up to 32 * 10^6 */
        r = pl->ss->ops->random(pl->ss) % sum;
        for (size_t i = pos; i < g->n; i++) {
            uint64_t w = weight_of(&g->c[i]);
            if (r < w) {
                pick = i;
                break;
            }
            r -= w;
        }
        mr_candidate_t c = g->c[pick];
        memmove(&g->c[pos + 1], &g->c[pos], (pick - pos) * sizeof(c));
        g->c[pos] = c;
    }
}

static void order_round_robin(planner_t *pl, group_t *g, const mr_route_t *route)
{
    mr_candidate_t tmp[MR_MAX_CANDIDATES];
    size_t k;

    if (!route || g->n < 2)
        return;
    k = (size_t)(mr_softstate_rr_next(pl->ss, route->index, pl->commit) % g->n);
    for (size_t i = 0; i < g->n; i++)
        tmp[i] = g->c[(i + k) % g->n];
    memcpy(g->c, tmp, g->n * sizeof(tmp[0]));
}

static void order_least_latency(planner_t *pl, group_t *g)
{
    double key[MR_MAX_CANDIDATES];
    bool known[MR_MAX_CANDIDATES];

    for (size_t i = 0; i < g->n; i++) {
        key[i] = 0;
        known[i] =
            g->c[i].target && mr_softstate_ttfb(pl->ss, g->c[i].target->id, pl->now_ms, &key[i]);
    }
    /* unknown first: a target nobody measured yet (or lately) gets measured */
    sort_by_key(g, key, known, true);
}

static void order_cheapest(group_t *g)
{
    double key[MR_MAX_CANDIDATES];
    bool known[MR_MAX_CANDIDATES];

    for (size_t i = 0; i < g->n; i++) {
        const mr_target_t *t = g->c[i].target;
        known[i] = t && t->has_input_price && t->has_output_price;
        key[i] = known[i] ? t->input_per_mtok + t->output_per_mtok : 0;
    }
    sort_by_key(g, key, known, false);
}

/* Is the candidate's vendor at or over the cap of a layer of the stack? */
static bool over_share(planner_t *pl, const mr_candidate_t *c)
{
    const mr_policy_t *layers[2] = {pl->plan->key_policy, pl->plan->chosen_policy};

    for (size_t i = 0; i < 2; i++) {
        const mr_policy_t *p = layers[i];
        uint64_t served, total;
        if (!p || p->max_vendor_share <= 0)
            continue;
        mr_softstate_share(pl->ss, p, c->provider->vendor_index, pl->now_ms, &served, &total);
        /* an empty window gives every vendor share 0 */
        if (total > 0 && (double)served >= p->max_vendor_share * (double)total - 1e-9)
            return true;
    }
    return false;
}

/* Stable partition: vendors under their cap first, capped ones behind. */
static void order_vendor_share(planner_t *pl, group_t *g)
{
    mr_candidate_t tmp[MR_MAX_CANDIDATES];
    size_t o = 0;

    if (!pl->ss || (!pl->plan->key_policy && !pl->plan->chosen_policy))
        return;
    for (size_t i = 0; i < g->n; i++)
        g->c[i].demoted = over_share(pl, &g->c[i]);
    for (size_t i = 0; i < g->n; i++)
        if (!g->c[i].demoted)
            tmp[o++] = g->c[i];
    for (size_t i = 0; i < g->n; i++)
        if (g->c[i].demoted)
            tmp[o++] = g->c[i];
    memcpy(g->c, tmp, g->n * sizeof(tmp[0]));
}

static const char *axis_value(const mr_candidate_t *c, mr_diversity_t axis)
{
    switch (axis) {
    case MR_DIVERSITY_VENDOR:
        return c->provider->vendor;
    case MR_DIVERSITY_REGION:
        return c->provider->region;
    case MR_DIVERSITY_JURISDICTION:
        return c->provider->jurisdiction;
    case MR_DIVERSITY_NONE:
        break;
    }
    return "";
}

/*
 * Greedy: at each position take the earliest remaining candidate whose axis
 * value differs from the previous candidate's, else the earliest remaining.
 * `prev` is the last candidate of the models before (NULL for the first).
 */
static void order_diversity(group_t *g, mr_diversity_t axis, const mr_candidate_t *prev_in)
{
    const char *prev = prev_in ? axis_value(prev_in, axis) : NULL;

    if (axis == MR_DIVERSITY_NONE)
        return;
    for (size_t pos = 0; pos < g->n; pos++) {
        size_t pick = pos;
        if (prev)
            for (size_t j = pos; j < g->n; j++)
                if (strcasecmp(axis_value(&g->c[j], axis), prev) != 0) {
                    pick = j;
                    break;
                }
        mr_candidate_t c = g->c[pick];
        memmove(&g->c[pos + 1], &g->c[pos], (pick - pos) * sizeof(c));
        g->c[pos] = c;
        prev = axis_value(&g->c[pos], axis);
    }
}

/* provider.order: those providers first, in the order given, then the rest. */
static void order_request(const mr_request_policy_t *rp, group_t *g)
{
    double key[MR_MAX_CANDIDATES];
    bool known[MR_MAX_CANDIDATES];

    if (!rp->present || rp->order.n == 0)
        return;
    for (size_t i = 0; i < g->n; i++) {
        known[i] = false;
        key[i] = 0;
        for (size_t k = 0; k < rp->order.n && !known[i]; k++)
            if (!strcasecmp(rp->order.names[k], g->c[i].provider->name))
                known[i] = true, key[i] = (double)k;
    }
    sort_by_key(g, key, known, false);
}

/* ------------------------------------------------------------------------ */
/* Plan                                                                      */
/* ------------------------------------------------------------------------ */

static void plan_begin(mr_plan_t *plan, const mr_policy_stack_t *st, const char *const *models,
                       size_t n_models)
{
    mr_exclusion_t *storage = plan->excluded;
    size_t cap = plan->excluded_cap;

    memset(plan, 0, sizeof(*plan));
    plan->excluded = storage;
    plan->excluded_cap = cap;
    plan->n_models = n_models < MR_MAX_MODELS ? n_models : MR_MAX_MODELS;
    for (size_t i = 0; i < plan->n_models; i++)
        plan->models[i] = models[i];
    plan->strategy = MR_STRATEGY_PRIORITY;
    plan->strategy_from = "default";
    plan->diversity = MR_DIVERSITY_NONE;
    plan->diversity_from = "default";
    if (!st)
        return;
    plan->key_policy = st->key;
    plan->chosen_policy = st->chosen;
    plan->chosen_by_header = st->chosen_by_header;
    plan->request_layer = st->request.present;
    snprintf(plan->policy_label, sizeof(plan->policy_label), "%s", st->label);
    plan->strategy = mr_policy_stack_strategy(st, &plan->strategy_from);
    plan->diversity = mr_policy_stack_diversity(st, &plan->diversity_from);
}

/* "route \"chat\"", "provider/model \"a/b\"" or "models \"chat\", \"fast\"". */
static void describe_subject(const mr_plan_t *plan, char *buf, size_t n)
{
    char q[MODEL_QUOTE_MAX + 8];
    size_t o;

    if (plan->n_models == 1) {
        if (plan->route)
            snprintf(buf, n, "route \"%s\"", plan->route->name);
        else
            snprintf(buf, n, "\"%s\"",
                     clip(q, sizeof(q), plan->models[0], strlen(plan->models[0])));
        return;
    }
    o = (size_t)snprintf(buf, n, "models");
    for (size_t i = 0; i < plan->n_models && o < n; i++)
        o += (size_t)snprintf(buf + o, n - o, "%s \"%s\"", i ? "," : "",
                              clip(q, sizeof(q), plan->models[i], strlen(plan->models[i])));
}

/* "set A, B or C" for the distinct key variables of the disabled exclusions. */
static size_t append_vars(char *buf, size_t n, const mr_plan_t *plan)
{
    const char *vars[MR_MAX_CANDIDATES];
    size_t nv = 0, o = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < plan->n_excluded; i++) {
        const char *v = plan->excluded[i].provider->key_env;
        bool dup = false;
        if (plan->excluded[i].kind != MR_EXCLUDED_DISABLED)
            continue;
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
    return nv;
}

static void fail_disabled(const mr_plan_t *plan, mr_error_t *err)
{
    char vars[MR_ERROR_MESSAGE_MAX], subject[512], pol[MR_POLICY_LABEL_MAX + 16] = "";
    const mr_exclusion_t *first = NULL;
    const char *param = plan->n_models > 1 ? "models" : "model";

    for (size_t i = 0; i < plan->n_excluded && !first; i++)
        if (plan->excluded[i].kind == MR_EXCLUDED_DISABLED)
            first = &plan->excluded[i];
    if (plan->policy_label[0])
        snprintf(pol, sizeof(pol), " under policy %s", plan->policy_label);
    if (plan->n_models == 1 && !plan->route && first) {
        const mr_provider_t *p = first->provider;
        if (p->key_env)
            mr_error_set(err, 503, NULL, "no_enabled_provider", param,
                         "provider \"%s\" is disabled (%s)%s: set %s", p->name, first->reason, pol,
                         p->key_env);
        else
            mr_error_set(err, 503, NULL, "no_enabled_provider", param,
                         "provider \"%s\" is disabled (%s)%s", p->name, first->reason, pol);
        return;
    }
    describe_subject(plan, subject, sizeof(subject));
    if (append_vars(vars, sizeof(vars), plan) > 0)
        mr_error_set(err, 503, NULL, "no_enabled_provider", param,
                     "%s %s no enabled provider%s: %s", subject,
                     plan->n_models > 1 ? "have" : "has", pol, vars);
    else
        mr_error_set(err, 503, NULL, "no_enabled_provider", param,
                     "%s %s no enabled provider%s (%s: %s)", subject,
                     plan->n_models > 1 ? "have" : "has", pol, first ? first->provider->name : "?",
                     first ? first->reason : "disabled");
}

static void fail_denied(const mr_plan_t *plan, mr_error_t *err)
{
    char subject[512], list[MR_ERROR_MESSAGE_MAX];
    size_t o = 0, shown = 0;

    describe_subject(plan, subject, sizeof(subject));
    list[0] = '\0';
    for (size_t i = 0; i < plan->n_excluded; i++) {
        const mr_exclusion_t *x = &plan->excluded[i];
        char item[MR_REASON_MAX + 160];
        int w = snprintf(item, sizeof(item), "%s%s/%s: %s", shown ? "; " : "", x->provider->name,
                         x->model, x->reason);
        if (w < 0)
            break;
        /* snprintf returns the untruncated length; a client's long model
         * name must not make the copy read past `item` */
        if ((size_t)w >= sizeof(item))
            w = (int)sizeof(item) - 1;
        if (o + (size_t)w + 24 >= sizeof(list) - 200)
            break;
        memcpy(list + o, item, (size_t)w + 1);
        o += (size_t)w;
        shown++;
    }
    if (shown < plan->n_excluded_total)
        snprintf(list + o, sizeof(list) - o, "%s... (%zu more)", shown ? "; " : "",
                 plan->n_excluded_total - shown);
    mr_error_set(err, 403, NULL, "policy_denied", NULL,
                 "no target of %s is allowed under policy %s: %s", subject, plan->policy_label,
                 list);
}

/* The candidate on target `id` first, the others in their order after it:
 * false when it is none of them. */
static bool pin_first(group_t *g, uint32_t id)
{
    for (size_t i = 0; i < g->n; i++) {
        if (g->c[i].target && g->c[i].target->id == id) {
            mr_candidate_t c = g->c[i];
            memmove(&g->c[1], &g->c[0], i * sizeof(c));
            g->c[0] = c;
            return true;
        }
    }
    return false;
}

/* Build and order the group of model `gi`; append it to the plan. Returns the
 * group's attempt cap contribution. */
static unsigned plan_group(planner_t *pl, unsigned gi, const resolved_t *res, bool last)
{
    mr_plan_t *plan = pl->plan;
    const mr_request_policy_t *rp = pl->st ? &pl->st->request : NULL;
    group_t g = {.n = 0};
    unsigned cap;

    if (res->route) {
        for (size_t i = 0; i < res->route->n_targets && i < MR_MAX_CANDIDATES; i++) {
            const mr_target_t *t = &res->route->targets[i];
            admit(pl, &g, gi, t->provider, t->model, t, t);
        }
        cap = res->route->max_attempts;
    } else {
        const mr_target_t *t = find_target(pl->cfg, res->direct, res->direct_model);
        /* a pair in no route is judged on its provider's attributes alone */
        mr_target_t tmp = {.provider = res->direct,
                           .model = (char *)res->direct_model,
                           .creator = res->direct->vendor,
                           .weight = 1,
                           .capabilities = res->direct->capabilities};
        admit(pl, &g, gi, res->direct, res->direct_model, t, t ? t : &tmp);
        cap = 1;
    }

    /* cache affinity: a pinned session stays put; the strategy decides new ones */
    bool pinned = gi == 0 && rp && rp->has_pin && pin_first(&g, rp->pin);
    plan->pinned |= pinned;
    switch (pinned ? MR_STRATEGY_PRIORITY : plan->strategy) {
    case MR_STRATEGY_PRIORITY:
        break;
    case MR_STRATEGY_WEIGHTED:
        order_weighted(pl, &g);
        break;
    case MR_STRATEGY_ROUND_ROBIN:
        order_round_robin(pl, &g, res->route);
        break;
    case MR_STRATEGY_LEAST_LATENCY:
        order_least_latency(pl, &g);
        break;
    case MR_STRATEGY_CHEAPEST:
        order_cheapest(&g);
        break;
    }
    if (!pinned)
        order_vendor_share(pl, &g);
    order_diversity(&g, plan->diversity,
                    plan->n_candidates ? &plan->candidates[plan->n_candidates - 1] : NULL);
    if (rp)
        order_request(rp, &g);

    if (rp && rp->present && !rp->allow_fallbacks && rp->order.n == 0)
        while (g.n > 1)
            exclude_candidate(plan, &g.c[--g.n], MR_EXCLUDED_FALLBACKS, "allow_fallbacks",
                              "request",
                              "allow_fallbacks false: only the first candidate is tried "
                              "(request)");
    if (!last && g.n > cap) {
        /* sized for the longest quote; exclude_candidate truncates to MR_REASON_MAX */
        char why[MR_REASON_MAX + MODEL_QUOTE_MAX + 8], q[MODEL_QUOTE_MAX + 8];
        snprintf(why, sizeof(why), "beyond max_attempts %u of \"%s\"; the next model follows", cap,
                 clip(q, sizeof(q), plan->models[gi], strlen(plan->models[gi])));
        /* keep the exclusion list in candidate order */
        for (size_t i = cap; i < g.n; i++)
            exclude_candidate(plan, &g.c[i], MR_EXCLUDED_CAP, "max_attempts", NULL, why);
        g.n = cap;
    }
    for (size_t i = 0; i < g.n; i++) {
        if (plan->n_candidates >= MR_MAX_CANDIDATES) {
            exclude_candidate(plan, &g.c[i], MR_EXCLUDED_CAP, "max_candidates", NULL,
                              "more than 32 candidates in one plan");
            continue;
        }
        plan->candidates[plan->n_candidates++] = g.c[i];
    }
    return cap < g.n ? cap : (unsigned)g.n;
}

static int plan_core(const mr_config_t *cfg, const mr_policy_stack_t *st, const char *const *models,
                     size_t n_models, mr_softstate_t *ss, uint64_t now_ms, bool commit,
                     mr_plan_t *plan, mr_error_t *err)
{
    planner_t pl = {.cfg = cfg, .ss = ss, .now_ms = now_ms, .commit = commit, .plan = plan};
    resolved_t res[MR_MAX_MODELS] = {0};
    unsigned total_cap = 0;

    if (st && mr_policy_stack_empty(st))
        st = NULL;
    pl.st = st;
    plan_begin(plan, st, models, n_models);
    if (n_models == 0 || !models) {
        mr_error_set(err, 400, NULL, NULL, "model",
                     "missing model: use a route name or provider/model; see GET /v1/models");
        return -1;
    }
    for (size_t i = 0; i < plan->n_models; i++)
        if (resolve_model(cfg, models[i], i ? "fallback model" : "model", i ? "models" : "model",
                          &res[i], err) < 0)
            return -1;
    plan->route = res[0].route;
    for (size_t i = 0; i < plan->n_models; i++)
        total_cap += plan_group(&pl, (unsigned)i, &res[i], i + 1 == plan->n_models);

    if (pl.n_allowed == 0) {
        fail_denied(plan, err);
        return -1;
    }
    if (plan->n_candidates == 0) {
        fail_disabled(plan, err);
        return -1;
    }
    if (total_cap > MR_MAX_PLAN_ATTEMPTS)
        total_cap = MR_MAX_PLAN_ATTEMPTS;
    plan->max_attempts = total_cap < plan->n_candidates ? total_cap : (unsigned)plan->n_candidates;
    return 0;
}

int mr_router_plan_policy(const mr_config_t *cfg, const mr_policy_stack_t *stack,
                          const char *const *models, size_t n_models, mr_softstate_t *ss,
                          uint64_t now_ms, mr_plan_t *plan, mr_error_t *err)
{
    return plan_core(cfg, stack, models, n_models, ss, now_ms, true, plan, err);
}

int mr_router_plan(const mr_config_t *cfg, const char *model, mr_plan_t *plan, mr_error_t *err)
{
    const char *models[1] = {model};

    return plan_core(cfg, NULL, models, 1, NULL, 0, true, plan, err);
}

int mr_router_models_from_request(const char *model, const json_t *models,
                                  const char *out[MR_MAX_MODELS], size_t *n_out, mr_error_t *err)
{
    size_t i, n = 0;
    const json_t *v;

    out[n++] = model;
    *n_out = n;
    if (!models || json_is_null(models))
        return 0;
    if (!json_is_array(models)) {
        mr_error_set(err, 400, NULL, NULL, "models",
                     "models must be an array of fallback model names");
        return -1;
    }
    if (json_array_size(models) > MR_MAX_MODELS - 1) {
        mr_error_set(err, 400, NULL, NULL, "models",
                     "models lists %zu models; at most %d fallback models are accepted",
                     json_array_size(models), MR_MAX_MODELS - 1);
        return -1;
    }
    json_array_foreach(models, i, v)
    {
        const char *s = json_string_value(v);
        bool dup = false;
        if (!s || !*s) {
            mr_error_set(err, 400, NULL, NULL, "models",
                         "models[%zu] must be a non-empty string (a route name or "
                         "provider/model)",
                         i);
            return -1;
        }
        for (size_t k = 0; k < n; k++)
            dup |= out[k] && !strcmp(out[k], s);
        if (!dup)
            out[n++] = s;
    }
    *n_out = n;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Soft-state feedback                                                       */
/* ------------------------------------------------------------------------ */

void mr_router_record_served(mr_softstate_t *ss, const mr_plan_t *plan,
                             const mr_candidate_t *served, uint64_t now_ms)
{
    const mr_policy_t *layers[2] = {plan->key_policy, plan->chosen_policy};

    if (!ss || !served)
        return;
    for (size_t i = 0; i < 2; i++)
        if (layers[i] && layers[i]->max_vendor_share > 0)
            mr_softstate_record_served(ss, layers[i], served->provider->vendor_index, now_ms);
}

void mr_router_record_ttfb(mr_softstate_t *ss, const mr_candidate_t *c, uint32_t ttfb_ms,
                           uint64_t now_ms)
{
    if (ss && c && c->target)
        mr_softstate_record_ttfb(ss, c->target->id, ttfb_ms, now_ms);
}

/* ------------------------------------------------------------------------ */
/* Explain                                                                   */
/* ------------------------------------------------------------------------ */

static const char *kind_name(mr_exclusion_kind_t k)
{
    switch (k) {
    case MR_EXCLUDED_POLICY:
        return "policy";
    case MR_EXCLUDED_DISABLED:
        return "disabled";
    case MR_EXCLUDED_FALLBACKS:
        return "allow_fallbacks";
    case MR_EXCLUDED_CAP:
        return "attempt_cap";
    }
    return "unknown";
}

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

json_t *mr_plan_exclusions_json(const mr_plan_t *plan)
{
    json_t *arr = json_array();

    for (size_t i = 0; arr && i < plan->n_excluded; i++) {
        const mr_exclusion_t *x = &plan->excluded[i];
        json_t *o = json_object();
        if (!o)
            break;
        json_object_set_new(o, "provider", json_string(x->provider->name));
        json_object_set_new(o, "model", json_string(x->model));
        json_object_set_new(o, "for_model",
                            str_or_null(x->group < plan->n_models ? plan->models[x->group] : NULL));
        json_object_set_new(o, "kind", json_string(kind_name(x->kind)));
        json_object_set_new(o, "rule", json_string(x->rule));
        json_object_set_new(o, "policy", str_or_null(x->policy));
        json_object_set_new(o, "reason", json_string(x->reason));
        json_array_append_new(arr, o);
    }
    return arr;
}

static json_t *policy_entry(const mr_policy_t *p, const char *layer)
{
    json_t *o = json_object();

    json_object_set_new(o, "name", json_string(p->name));
    json_object_set_new(o, "layer", json_string(layer));
    json_object_set_new(o, "sha256", json_string(mr_policy_hash(p)));
    return o;
}

static json_t *plan_json(const mr_plan_t *plan, mr_softstate_t *ss, uint64_t now_ms, int rc,
                         const mr_error_t *err)
{
    json_t *o = json_object(), *arr;

    if (!o)
        return NULL;
    arr = json_array();
    for (size_t i = 0; i < plan->n_models; i++)
        json_array_append_new(arr, json_string(plan->models[i]));
    json_object_set_new(o, "models", arr);
    json_object_set_new(o, "route", str_or_null(plan->route ? plan->route->name : NULL));
    json_object_set_new(o, "policy", json_string(plan->policy_label));
    arr = json_array();
    if (plan->key_policy)
        json_array_append_new(arr, policy_entry(plan->key_policy, "key"));
    if (plan->chosen_policy)
        json_array_append_new(
            arr, policy_entry(plan->chosen_policy, plan->chosen_by_header ? "header" : "default"));
    json_object_set_new(o, "policies", arr);
    json_object_set_new(o, "request_policy", json_boolean(plan->request_layer));
    json_object_set_new(o, "strategy", json_string(mr_strategy_name(plan->strategy)));
    json_object_set_new(o, "strategy_from", json_string(plan->strategy_from));
    json_object_set_new(o, "fallback_diversity", json_string(mr_diversity_name(plan->diversity)));
    json_object_set_new(o, "diversity_from", json_string(plan->diversity_from));
    json_object_set_new(o, "max_attempts", json_integer(rc == 0 ? plan->max_attempts : 0));
    arr = json_array();
    for (size_t i = 0; arr && i < plan->n_candidates; i++) {
        const mr_candidate_t *c = &plan->candidates[i];
        const mr_provider_t *p = c->provider;
        json_t *e = json_object();
        double ttfb;
        json_object_set_new(e, "rank", json_integer((json_int_t)i + 1));
        json_object_set_new(e, "provider", json_string(p->name));
        json_object_set_new(e, "model", json_string(c->model));
        json_object_set_new(e, "for_model", json_string(plan->models[c->group]));
        json_object_set_new(e, "vendor", json_string(p->vendor));
        json_object_set_new(e, "region", json_string(p->region));
        json_object_set_new(e, "jurisdiction", json_string(p->jurisdiction));
        json_object_set_new(e, "creator", json_string(c->target ? c->target->creator : p->vendor));
        json_object_set_new(e, "open_weights", json_boolean(c->target && c->target->open_weights));
        json_object_set_new(e, "demoted", json_boolean(c->demoted));
        if (i == 0 && plan->pinned)
            json_object_set_new(e, "pinned", json_true());
        if (c->target && mr_softstate_ttfb(ss, c->target->id, now_ms, &ttfb))
            json_object_set_new(e, "ttfb_ms", json_real(ttfb));
        if (c->target && c->target->has_input_price)
            json_object_set_new(e, "input_per_mtok", json_real(c->target->input_per_mtok));
        if (c->target && c->target->has_output_price)
            json_object_set_new(e, "output_per_mtok", json_real(c->target->output_per_mtok));
        json_array_append_new(arr, e);
    }
    json_object_set_new(o, "candidates", arr);
    json_object_set_new(o, "excluded", mr_plan_exclusions_json(plan));
    json_object_set_new(o, "excluded_total", json_integer((json_int_t)plan->n_excluded_total));
    json_object_set_new(o, "status", json_integer(rc == 0 ? 200 : err->status));
    if (rc != 0) {
        json_t *e = json_object();
        json_object_set_new(e, "code", str_or_null(err->code));
        json_object_set_new(e, "message", json_string(err->message));
        json_object_set_new(o, "error", e);
    }
    return o;
}

int mr_router_explain(const mr_config_t *cfg, const mr_policy_stack_t *stack,
                      const char *const *models, size_t n_models, mr_softstate_t *ss,
                      uint64_t now_ms, json_t **out, mr_error_t *err)
{
    mr_plan_t plan = {0};
    mr_error_t e;
    int rc = plan_core(cfg, stack, models, n_models, ss, now_ms, false, &plan, &e);

    *out = NULL;
    if (rc < 0 && e.status != 403 && e.status != 503) {
        mr_plan_release(&plan);
        *err = e;
        return -1;
    }
    *out = plan_json(&plan, ss, now_ms, rc, &e);
    mr_plan_release(&plan);
    if (!*out) {
        mr_error_set(err, 500, NULL, NULL, NULL, "out of memory");
        return -1;
    }
    return 0;
}

void mr_plan_release(mr_plan_t *plan)
{
    if (!plan)
        return;
    free(plan->excluded);
    plan->excluded = NULL;
    plan->excluded_cap = 0;
    plan->n_excluded = 0;
}

static const char *jstr(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

void mr_router_explain_print(const json_t *ex, FILE *out)
{
    const json_t *arr, *e, *models = json_object_get(ex, "models");
    size_t i, n_excluded;
    int w = 0;

    fprintf(out, "model");
    json_array_foreach(models, i, e)
    {
        fprintf(out, "%s %s", i ? "," : "", json_string_value(e));
    }
    if (json_is_string(json_object_get(ex, "route")))
        fprintf(out, "  (route %s)", jstr(ex, "route"));
    fputc('\n', out);

    /* "policy eu-only (key, sha256:...) + diverse (header, ...) + request" */
    arr = json_object_get(ex, "policies");
    fprintf(out, "policy");
    json_array_foreach(arr, i, e)
    {
        fprintf(out, "%s %s (%s, sha256:%.12s)", i ? " +" : "", jstr(e, "name"), jstr(e, "layer"),
                jstr(e, "sha256"));
    }
    if (json_is_true(json_object_get(ex, "request_policy")))
        fprintf(out, "%s request (provider object)", json_array_size(arr) ? " +" : "");
    if (!*jstr(ex, "policy"))
        fprintf(out, " (none)");
    fputc('\n', out);
    fprintf(out, "strategy %s (%s), fallback_diversity %s (%s), max_attempts %lld\n",
            jstr(ex, "strategy"), jstr(ex, "strategy_from"), jstr(ex, "fallback_diversity"),
            jstr(ex, "diversity_from"),
            (long long)json_integer_value(json_object_get(ex, "max_attempts")));

    arr = json_object_get(ex, "candidates");
    json_array_foreach(arr, i, e)
    {
        int l = (int)(strlen(jstr(e, "provider")) + 1 + strlen(jstr(e, "model")));
        if (l > w)
            w = l;
    }
    fprintf(out, "candidates:%s\n", json_array_size(arr) ? "" : " (none)");
    json_array_foreach(arr, i, e)
    {
        int l = (int)(strlen(jstr(e, "provider")) + 1 + strlen(jstr(e, "model")));
        fprintf(out, "  %zu. %s/%s%*s  vendor=%s region=%s jurisdiction=%s creator=%s", i + 1,
                jstr(e, "provider"), jstr(e, "model"), w - l, "", jstr(e, "vendor"),
                *jstr(e, "region") ? jstr(e, "region") : "-",
                *jstr(e, "jurisdiction") ? jstr(e, "jurisdiction") : "-", jstr(e, "creator"));
        if (json_array_size(models) > 1)
            fprintf(out, " for=%s", jstr(e, "for_model"));
        if (json_is_number(json_object_get(e, "ttfb_ms")))
            fprintf(out, " ttfb=%.0fms", json_number_value(json_object_get(e, "ttfb_ms")));
        if (json_is_true(json_object_get(e, "demoted")))
            fprintf(out, " [over max_vendor_share: moved behind]");
        if (json_is_true(json_object_get(e, "pinned")))
            fprintf(out, " [session pinned here: cache affinity]");
        fputc('\n', out);
    }

    arr = json_object_get(ex, "excluded");
    n_excluded = (size_t)json_integer_value(json_object_get(ex, "excluded_total"));
    if (json_array_size(arr))
        fprintf(out, "excluded:\n");
    json_array_foreach(arr, i, e)
    {
        fprintf(out, "  - %s/%s: %s%s\n", jstr(e, "provider"), jstr(e, "model"),
                strcmp(jstr(e, "kind"), "disabled") ? "" : "disabled: ", jstr(e, "reason"));
    }
    if (n_excluded > json_array_size(arr))
        fprintf(out, "  ... and %zu more\n", n_excluded - json_array_size(arr));

    if (json_integer_value(json_object_get(ex, "status")) == 200) {
        size_t n = json_array_size(json_object_get(ex, "candidates"));
        fprintf(out, "result: 200, %zu candidate%s\n", n, n == 1 ? "" : "s");
    } else {
        const json_t *er = json_object_get(ex, "error");
        fprintf(out, "result: %lld %s: %s\n",
                (long long)json_integer_value(json_object_get(ex, "status")), jstr(er, "code"),
                jstr(er, "message"));
    }
}

int mr_router_explain_text(const mr_config_t *cfg, const char *model, const char *policy, FILE *out,
                           mr_error_t *err)
{
    mr_policy_stack_t st;
    json_t *ex = NULL;
    const char *models[1] = {model};
    int rc;

    if (mr_policy_stack_init(&st, cfg, NULL, policy, NULL, err) < 0)
        return -1;
    if (mr_router_explain(cfg, &st, models, 1, NULL, 0, &ex, err) < 0)
        return -1;
    mr_router_explain_print(ex, out);
    rc = json_integer_value(json_object_get(ex, "status")) == 200 ? 0 : 1;
    json_decref(ex);
    return rc;
}
