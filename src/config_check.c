/*
 * config_check — cross-references, min_vendors and the exposure rule.
 */
#include "meridian/config_check.h"

#include "meridian/policy.h" /* static filters for the min_vendors check */

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* References                                                                */
/* ------------------------------------------------------------------------ */

int mr_config_check_provider_ref(mr_loader_t *ld, const char *name, const mr_provider_t **out)
{
    const mr_config_t *cfg = ld->cfg;
    char q[MR_LOADER_QUOTE_MAX], hint[MR_LOADER_QUOTE_MAX];
    mr_loader_suggest_t s;

    if ((*out = mr_config_find_provider(cfg, name)))
        return 0;
    mr_loader_suggest_init(&s, name);
    for (size_t i = 0; i < cfg->n_providers; i++)
        mr_loader_suggest_try(&s, cfg->providers[i].name);
    return mr_loader_fail(ld, "unknown provider %s%s", mr_loader_quote(q, sizeof(q), name),
                          mr_loader_suggest_text(&s, hint, sizeof(hint)));
}

int mr_config_check_policy_ref(mr_loader_t *ld, const char *name, const mr_policy_t **out)
{
    const mr_config_t *cfg = ld->cfg;
    char q[MR_LOADER_QUOTE_MAX], hint[MR_LOADER_QUOTE_MAX];
    mr_loader_suggest_t s;

    if ((*out = mr_config_find_policy(cfg, name)))
        return 0;
    mr_loader_suggest_init(&s, name);
    for (size_t i = 0; i < cfg->n_policies; i++)
        mr_loader_suggest_try(&s, cfg->policies[i].name);
    return mr_loader_fail(ld, "unknown policy %s%s", mr_loader_quote(q, sizeof(q), name),
                          s.best            ? mr_loader_suggest_text(&s, hint, sizeof(hint))
                          : cfg->n_policies ? ""
                                            : " (define it under \"policies\")");
}

/* Feed every tag name of `tags` to the suggester; true when one is `name`. */
static bool tags_have(const mr_tag_t *tags, size_t n, const char *name, mr_loader_suggest_t *s)
{
    bool found = false;

    for (size_t i = 0; i < n; i++) {
        found |= !strcmp(tags[i].name, name);
        mr_loader_suggest_try(s, tags[i].name);
    }
    return found;
}

int mr_config_check_attr_ref(mr_loader_t *ld, const char *attr)
{
    const mr_config_t *cfg = ld->cfg;
    char hint[MR_LOADER_QUOTE_MAX];
    mr_loader_suggest_t s;
    bool found = mr_attr_is_builtin(attr);

    mr_loader_suggest_init(&s, attr);
    for (const char *const *a = mr_attr_builtins(); *a; a++)
        mr_loader_suggest_try(&s, *a);
    for (size_t i = 0; i < cfg->n_providers; i++)
        found |= tags_have(cfg->providers[i].tags, cfg->providers[i].n_tags, attr, &s);
    for (size_t i = 0; i < cfg->n_routes; i++)
        for (size_t j = 0; j < cfg->routes[i].n_targets; j++)
            found |= tags_have(cfg->routes[i].targets[j].tags, cfg->routes[i].targets[j].n_tags,
                               attr, &s);
    if (found)
        return 0;
    return mr_loader_fail(ld,
                          "unknown attribute%s: use provider, model, kind, vendor, region, "
                          "jurisdiction, creator or a tag name some provider or target carries",
                          mr_loader_suggest_text(&s, hint, sizeof(hint)));
}

/* ------------------------------------------------------------------------ */
/* min_vendors                                                               */
/* ------------------------------------------------------------------------ */

/*
 * min_vendors: every route must offer that many distinct vendors among the
 * targets the policy's static filters let through. Disabled providers count
 * as available (the check is about the file, not about which variables
 * happen to be set where --check runs).
 */
static int check_min_vendors(mr_loader_t *ld)
{
    const mr_config_t *cfg = ld->cfg;

    for (size_t i = 0; i < cfg->n_policies; i++) {
        const mr_policy_t *p = &cfg->policies[i];
        if (!p->min_vendors)
            continue;
        for (size_t r = 0; r < cfg->n_routes; r++) {
            const mr_route_t *route = &cfg->routes[r];
            const char *vendors[MR_MAX_CANDIDATES];
            size_t nv = 0, o = 0;
            char list[512] = "", q[MR_LOADER_QUOTE_MAX];

            for (size_t j = 0; j < route->n_targets; j++) {
                const mr_target_t *t = &route->targets[j];
                bool dup = false;
                if (mr_policy_check_target(p, t, NULL, 0, NULL, 0) < 0)
                    continue;
                for (size_t k = 0; k < nv; k++)
                    dup |= !strcmp(vendors[k], t->provider->vendor);
                if (!dup)
                    vendors[nv++] = t->provider->vendor;
            }
            if (nv >= p->min_vendors)
                continue;
            for (size_t k = 0; k < nv && o < sizeof(list); k++)
                o +=
                    (size_t)snprintf(list + o, sizeof(list) - o, "%s%s", k ? ", " : "", vendors[k]);
            mr_loader_key(ld, "routes");
            mr_loader_key(ld, route->name);
            if (nv == 0)
                return mr_loader_fail(
                    ld, "policy %s needs min_vendors %u but no target remains under it",
                    mr_loader_quote(q, sizeof(q), p->name), p->min_vendors);
            return mr_loader_fail(
                ld, "policy %s needs min_vendors %u but only %zu vendor%s remain%s: %s",
                mr_loader_quote(q, sizeof(q), p->name), p->min_vendors, nv, nv == 1 ? "" : "s",
                nv == 1 ? "s" : "", list);
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Exposure                                                                  */
/* ------------------------------------------------------------------------ */

/* 127.0.0.0/8, ::1 and ::ffff:127.0.0.0/104. */
static bool is_loopback(const char *host)
{
    unsigned char a[sizeof(struct in6_addr)];
    static const unsigned char v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

    if (inet_pton(AF_INET, host, a) == 1)
        return a[0] == 127;
    if (inet_pton(AF_INET6, host, a) == 1) {
        static const unsigned char one[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
        return !memcmp(a, one, 16) || (!memcmp(a, v4mapped, 12) && a[12] == 127);
    }
    return false;
}

int mr_config_check_exposure(const mr_config_t *cfg, char *err, size_t errlen)
{
    bool v6 = strchr(cfg->listen_host, ':') != NULL;

    if (cfg->n_keys || cfg->allow_unauthenticated || is_loopback(cfg->listen_host))
        return 0;
    if (err && errlen)
        snprintf(err, errlen,
                 "refusing to listen on %s%s%s:%u without authentication: no gateway keys are "
                 "configured; add \"keys\" (docs/configuration.md#keys) or set "
                 "\"allow_unauthenticated\": true in %s",
                 v6 ? "[" : "", cfg->listen_host, v6 ? "]" : "", (unsigned)cfg->listen_port,
                 cfg->origin ? cfg->origin : "the config");
    return -1;
}

static const char *period_name(int i)
{
    return mr_budget_period_name((mr_budget_period_t)i);
}

int mr_config_check_budget(mr_loader_t *ld, json_t *obj, double *usd, mr_budget_period_t *period)
{
    bool present = false;
    int p = MR_PERIOD_TOTAL;

    if (mr_loader_number(ld, obj, "budget_usd", 0, MR_BUDGET_USD_MAX, true, &present, usd) < 0 ||
        mr_loader_enum(ld, obj, "budget_period", period_name, MR_PERIOD_MONTH + 1, &present, &p) <
            0)
        return -1;
    *period = (mr_budget_period_t)p;
    return 0;
}

/* A redis backend needs a redis:// URL (the host is resolved at start). */
static int check_state(mr_loader_t *ld)
{
    const mr_state_cfg_t *st = &ld->cfg->state;

    if (st->backend == 1 && !st->redis_url) {
        mr_loader_key(ld, "state");
        return mr_loader_fail(ld, "\"backend\": \"redis\" needs \"redis_url\": "
                                  "\"redis://HOST:PORT/DB\"");
    }
    if (st->redis_url && strncmp(st->redis_url, "redis://", 8) != 0) {
        mr_loader_key(ld, "state");
        mr_loader_key(ld, "redis_url");
        return mr_loader_fail(ld, "must be a redis URL such as redis://10.0.0.5:6379/0, a "
                                  "password written before the host and an @ (rediss:// and "
                                  "unix sockets are not supported)");
    }
    return 0;
}

/* One request of the largest size must fit a worker's budget: its body and
 * the upstream copy of it. */
static int check_memory(mr_loader_t *ld)
{
    const mr_limits_t *l = &ld->cfg->limits;

    if (l->worker_memory_bytes / 2 >= l->max_body_bytes)
        return 0;
    mr_loader_key(ld, "limits");
    mr_loader_key(ld, "worker_memory_bytes");
    return mr_loader_fail(ld,
                          "%zu is less than twice limits.max_body_bytes (%zu): a request of that "
                          "size could never be served (it holds its body and the upstream copy)",
                          l->worker_memory_bytes, l->max_body_bytes);
}

int mr_config_check_document(mr_loader_t *ld)
{
    char why[512];

    if (check_min_vendors(ld) < 0 || check_state(ld) < 0 || check_memory(ld) < 0)
        return -1;
    if (mr_config_check_exposure(ld->cfg, why, sizeof(why)) < 0) {
        mr_loader_key(ld, "listen");
        return mr_loader_fail(ld, "%s", why);
    }
    return 0;
}
