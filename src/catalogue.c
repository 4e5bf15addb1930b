/*
 * catalogue — name tables, lookups and the destructor of mr_config_t.
 * Pure data and pure functions: nothing here parses JSON or reads the
 * environment (that is the loader, config.h).
 */
#include "meridian/catalogue.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Names                                                                     */
/* ------------------------------------------------------------------------ */

static const char *const kind_names[MR_PROVIDER_KIND_COUNT] = {"openai", "anthropic", "gemini",
                                                               "azure"};
static const char *const strategy_names[MR_STRATEGY_COUNT] = {"priority", "weighted", "round_robin",
                                                              "least_latency", "cheapest"};
static const char *const diversity_names[MR_DIVERSITY_COUNT] = {"none", "vendor", "region",
                                                                "jurisdiction"};
static const char *const builtin_attrs[] = {"provider", "model",        "kind",    "vendor",
                                            "region",   "jurisdiction", "creator", NULL};

const char *mr_provider_kind_name(mr_provider_kind_t kind)
{
    return (unsigned)kind < MR_PROVIDER_KIND_COUNT ? kind_names[kind] : "unknown";
}

const char *mr_strategy_name(mr_strategy_t s)
{
    return (unsigned)s < MR_STRATEGY_COUNT ? strategy_names[s] : "unknown";
}

const char *mr_diversity_name(mr_diversity_t d)
{
    return (unsigned)d < MR_DIVERSITY_COUNT ? diversity_names[d] : "unknown";
}

int mr_provider_kind_parse(const char *name, mr_provider_kind_t *out)
{
    for (unsigned i = 0; i < MR_PROVIDER_KIND_COUNT; i++)
        if (!strcmp(name, kind_names[i])) {
            *out = (mr_provider_kind_t)i;
            return 0;
        }
    return -1;
}

int mr_attr_is_builtin(const char *name)
{
    for (const char *const *a = builtin_attrs; *a; a++)
        if (!strcmp(*a, name))
            return 1;
    return 0;
}

const char *const *mr_attr_builtins(void)
{
    return builtin_attrs;
}

/* ------------------------------------------------------------------------ */
/* Lookups                                                                   */
/* ------------------------------------------------------------------------ */

const mr_provider_t *mr_config_find_provider(const mr_config_t *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_providers; i++)
        if (cfg->providers[i].name && !strcmp(cfg->providers[i].name, name))
            return &cfg->providers[i];
    return NULL;
}

const mr_route_t *mr_config_find_route(const mr_config_t *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_routes; i++)
        if (cfg->routes[i].name && !strcmp(cfg->routes[i].name, name))
            return &cfg->routes[i];
    return NULL;
}

const mr_policy_t *mr_config_find_policy(const mr_config_t *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_policies; i++)
        if (cfg->policies[i].name && !strcmp(cfg->policies[i].name, name))
            return &cfg->policies[i];
    return NULL;
}

const char *mr_target_attr(const mr_target_t *t, const char *name)
{
    const mr_provider_t *p = t->provider;

    /* most frequent first; a tag can never shadow a built-in (load rejects it) */
    if (!strcmp(name, "region"))
        return p->region;
    if (!strcmp(name, "jurisdiction"))
        return p->jurisdiction;
    if (!strcmp(name, "vendor"))
        return p->vendor;
    if (!strcmp(name, "creator"))
        return t->creator ? t->creator : p->vendor;
    if (!strcmp(name, "provider"))
        return p->name;
    if (!strcmp(name, "model"))
        return t->model;
    if (!strcmp(name, "kind"))
        return mr_provider_kind_name(p->kind);
    for (size_t i = 0; i < t->n_tags; i++)
        if (!strcmp(t->tags[i].name, name))
            return t->tags[i].value;
    for (size_t i = 0; i < p->n_tags; i++)
        if (!strcmp(p->tags[i].name, name))
            return p->tags[i].value;
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Lifetime                                                                  */
/* ------------------------------------------------------------------------ */

static void free_strings(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static void free_tags(mr_tag_t *tags, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(tags[i].name);
        free(tags[i].value);
    }
    free(tags);
}

static void free_rules(mr_attr_rule_t *rules, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(rules[i].attr);
        free_strings(rules[i].values, rules[i].n_values);
    }
    free(rules);
}

static void free_provider(mr_provider_t *p)
{
    free(p->name);
    free(p->base_url);
    free(p->ca_file);
    if (p->api_key) {
        /* best effort: do not leave the secret in freed heap memory */
        explicit_bzero(p->api_key, strlen(p->api_key));
        free(p->api_key);
    }
    free(p->vendor);
    free(p->api_version);
    free(p->region);
    free(p->jurisdiction);
    free_strings(p->models, p->n_models);
    free_strings(p->forward_headers, p->n_forward_headers);
    free(p->key_env);
    free(p->disabled_reason);
    free_tags(p->tags, p->n_tags);
}

static void free_route(mr_route_t *r)
{
    free(r->name);
    for (size_t j = 0; j < r->n_targets; j++) {
        free(r->targets[j].model);
        free(r->targets[j].creator);
        free_tags(r->targets[j].tags, r->targets[j].n_tags);
    }
    free(r->targets);
}

void mr_config_free(mr_config_t *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < cfg->n_providers; i++)
        free_provider(&cfg->providers[i]);
    free(cfg->providers);
    for (size_t i = 0; i < cfg->n_routes; i++)
        free_route(&cfg->routes[i]);
    free(cfg->routes);
    for (size_t i = 0; i < cfg->n_policies; i++) {
        free(cfg->policies[i].name);
        free_rules(cfg->policies[i].allow, cfg->policies[i].n_allow);
        free_rules(cfg->policies[i].deny, cfg->policies[i].n_deny);
    }
    free(cfg->policies);
    for (size_t i = 0; i < cfg->n_keys; i++) {
        free(cfg->keys[i].name);
        explicit_bzero(cfg->keys[i].digest, sizeof(cfg->keys[i].digest));
    }
    free(cfg->keys);
    free(cfg->vendors);
    free_strings(cfg->warnings, cfg->n_warnings);
    free(cfg->listen_host);
    free(cfg->access_log);
    free(cfg->audit.path);
    free(cfg->origin);
    free(cfg);
}
