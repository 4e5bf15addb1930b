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

#include "meridian/modelref.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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

/* The soft state's verdict (a provider over its budget): true when it
 * excluded the target. */
static bool admit_state(planner_t *pl, unsigned group, const mr_provider_t *p, const char *model,
                        const mr_target_t *configured)
{
    char rule[MR_RULE_MAX], reason[MR_REASON_MAX];

    if (!mr_softstate_excluded(pl->ss, p, configured, rule, sizeof(rule), reason, sizeof(reason)))
        return false;
    exclude_candidate(
        pl->plan,
        &(mr_candidate_t){.provider = p, .model = model, .target = configured, .group = group},
        MR_EXCLUDED_BUDGET, rule, NULL, reason);
    return true;
}

/*
 * Filters, then the disabled check and the soft state's, for one target.
 * Enabled targets that pass go into the group.
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
    if (admit_state(pl, group, p, model, configured))
        return;
    g->c[g->n].provider = p;
    g->c[g->n].model = model;
    g->c[g->n].target = configured;
    g->c[g->n].group = group;
    g->c[g->n].demoted = false;
    g->n++;
}

/*
 * A direct provider/model. A pair in no route is judged on its provider's
 * attributes alone, which is only sound when no layer has a rule on what
 * only a configured target knows (creator, model, tags): then it is
 * refused, failing closed, rather than let a spelling the provider serves
 * as a configured model slip past that model's rules.
 */
static void admit_direct(planner_t *pl, group_t *g, unsigned gi, const mr_modelref_t *res)
{
    mr_target_t tmp = {.provider = res->direct,
                       .model = (char *)(uintptr_t)res->model,
                       .creator = res->direct->vendor,
                       .weight = 1,
                       .capabilities = res->direct->capabilities};
    mr_candidate_t c = {.provider = res->direct, .model = res->model, .group = gi};
    char rule[MR_RULE_MAX], reason[MR_REASON_MAX];
    const char *policy;

    if (res->target || !pl->st ||
        !mr_policy_stack_needs_target(pl->st, rule, sizeof(rule), &policy)) {
        admit(pl, g, gi, res->direct, res->model, res->target, res->target ? res->target : &tmp);
        return;
    }
    if (gi > 0 && seen_before(pl->plan, gi, res->direct, res->model))
        return;
    snprintf(reason, sizeof(reason),
             "not a configured target, and %s needs one (policy %s: unconfigured direct models "
             "fail closed)",
             rule, policy);
    exclude_candidate(pl->plan, &c, MR_EXCLUDED_POLICY, rule, policy, reason);
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
        double key[MR_MAX_CANDIDATES] = {0};
        bool known[MR_MAX_CANDIDATES] = {0};
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
    double key[MR_MAX_CANDIDATES] = {0};
    bool known[MR_MAX_CANDIDATES] = {0};

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
    double key[MR_MAX_CANDIDATES] = {0};
    bool known[MR_MAX_CANDIDATES] = {0};

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
    double key[MR_MAX_CANDIDATES] = {0};
    bool known[MR_MAX_CANDIDATES] = {0};

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
    plan->key_is_default = st->key_is_default;
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
    char q[MR_MODELREF_QUOTE_MAX + 8];
    size_t o;

    if (plan->n_models == 1) {
        if (plan->route)
            snprintf(buf, n, "route \"%s\"", plan->route->name);
        else
            snprintf(buf, n, "\"%s\"",
                     mr_modelref_quote(q, sizeof(q), plan->models[0], strlen(plan->models[0])));
        return;
    }
    o = (size_t)snprintf(buf, n, "models");
    for (size_t i = 0; i < plan->n_models && o < n; i++)
        o += (size_t)snprintf(
            buf + o, n - o, "%s \"%s\"", i ? "," : "",
            mr_modelref_quote(q, sizeof(q), plan->models[i], strlen(plan->models[i])));
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

static bool has_budget_exclusion(const mr_plan_t *plan)
{
    for (size_t i = 0; i < plan->n_excluded; i++)
        if (plan->excluded[i].kind == MR_EXCLUDED_BUDGET)
            return true;
    return false;
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
static unsigned plan_group(planner_t *pl, unsigned gi, const mr_modelref_t *res, bool last)
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
        admit_direct(pl, &g, gi, res);
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
        char why[MR_REASON_MAX + MR_MODELREF_QUOTE_MAX + 8], q[MR_MODELREF_QUOTE_MAX + 8];
        snprintf(why, sizeof(why), "beyond max_attempts %u of \"%s\"; the next model follows", cap,
                 mr_modelref_quote(q, sizeof(q), plan->models[gi], strlen(plan->models[gi])));
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
    mr_modelref_t res[MR_MAX_MODELS] = {0};
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
        if (mr_modelref_resolve(cfg, models[i], i ? "fallback model" : "model",
                                i ? "models" : "model", &res[i], err) < 0)
            return -1;
    plan->route = res[0].route;
    for (size_t i = 0; i < plan->n_models; i++)
        total_cap += plan_group(&pl, (unsigned)i, &res[i], i + 1 == plan->n_models);

    if (pl.n_allowed == 0) {
        fail_denied(plan, err);
        return -1;
    }
    if (plan->n_candidates == 0) {
        if (has_budget_exclusion(plan))
            mr_error_set(err, 503, NULL, "provider_budget_exhausted",
                         plan->n_models > 1 ? "models" : "model",
                         "every provider that may serve this request has used its budget_usd for "
                         "this period (see the exclusions: GET /v1/gateway/route?model=...)");
        else
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

int mr_router_plan_preview(const mr_config_t *cfg, const mr_policy_stack_t *stack,
                           const char *const *models, size_t n_models, mr_softstate_t *ss,
                           uint64_t now_ms, mr_plan_t *plan, mr_error_t *err)
{
    return plan_core(cfg, stack, models, n_models, ss, now_ms, false, plan, err);
}

int mr_router_plan(const mr_config_t *cfg, const char *model, mr_plan_t *plan, mr_error_t *err)
{
    const char *models[1] = {model};

    return plan_core(cfg, NULL, models, 1, NULL, 0, true, plan, err);
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
