/*
 * config_print — the resolved routing table that `meridian --check` prints.
 *
 * The settings lines come from the settings table (catalogue.h), so every
 * scalar key shows its effective value, defaults included. No secrets: an
 * api_key never appears, only the variable it came from; key digests are
 * not printed either.
 */
#include "meridian/config_print.h"

#include <stdbool.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Settings                                                                  */
/* ------------------------------------------------------------------------ */

/* A section whose required member has no value was not in the file. */
static bool section_absent(const mr_setting_t *rows, size_t n, const mr_config_t *cfg)
{
    for (size_t i = 0; i < n; i++) {
        const char *v;
        if (!(rows[i].flags & MR_SETTING_REQUIRED) || rows[i].type != MR_SETTING_STRING)
            continue;
        memcpy(&v, (const char *)cfg + rows[i].offset, sizeof(v));
        if (!v)
            return true;
    }
    return false;
}

static bool same_section(const mr_setting_t *a, const mr_setting_t *b)
{
    return a->section && b->section && !strcmp(a->section, b->section);
}

/* "max_attempts 3", then one line per section: "timeouts connect_ms=5000 ...". */
static void print_settings(const mr_config_t *cfg, FILE *out)
{
    size_t n, i = 0;
    const mr_setting_t *rows = mr_settings(&n);
    char v[256];

    while (i < n) {
        size_t end = i + 1;

        if (!rows[i].section) {
            if (!(rows[i].flags & MR_SETTING_QUIET))
                fprintf(out, "%s %s\n", rows[i].key,
                        mr_setting_format(&rows[i], cfg, v, sizeof(v)));
            i++;
            continue;
        }
        while (end < n && same_section(&rows[i], &rows[end]))
            end++;
        fprintf(out, "%s", rows[i].section);
        if (section_absent(rows + i, end - i, cfg))
            fprintf(out, " off");
        else
            for (; i < end; i++)
                fprintf(out, " %s=%s", rows[i].key, mr_setting_format(&rows[i], cfg, v, sizeof(v)));
        fputc('\n', out);
        i = end;
    }
}

/* "server_names a, b" and "cors allow_origins=[...]": who may call over HTTP. */
static void print_lists(const mr_config_t *cfg, FILE *out)
{
    fprintf(out, "server_names");
    for (size_t i = 0; i < cfg->n_server_names; i++)
        fprintf(out, "%s%s", i ? ", " : " ", cfg->server_names[i]);
    fprintf(out, "%s\ncors allow_origins=[", cfg->n_server_names ? "" : " (none)");
    for (size_t i = 0; i < cfg->n_cors_origins; i++)
        fprintf(out, "%s%s", i ? ", " : "", cfg->cors_origins[i]);
    fprintf(out, "]\n");
}

/* ------------------------------------------------------------------------ */
/* Policies and keys                                                         */
/* ------------------------------------------------------------------------ */

static int width_of(const char *s)
{
    return (int)strlen(s);
}

static void print_rules(FILE *out, const char *what, const mr_attr_rule_t *r, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        fprintf(out, " %s %s=[", what, r[i].attr);
        for (size_t j = 0; j < r[i].n_values; j++)
            fprintf(out, "%s%s", j ? ", " : "", r[i].values[j]);
        fputc(']', out);
    }
}

/* " budget=$5/day" (nothing without a budget). */
static void print_budget(double usd, mr_budget_period_t period, FILE *out)
{
    if (usd > 0)
        fprintf(out, " budget_usd=%g budget_period=%s", usd, mr_budget_period_name(period));
}

/* "  limits rpm=30 tpm=... max_parallel=... budget_usd=5 budget_period=day". */
static void print_key_limits(const mr_key_limits_t *l, FILE *out)
{
    if (!l->rpm && !l->tpm && !l->max_parallel && !(l->budget_usd > 0))
        return;
    fprintf(out, "  limits");
    if (l->rpm)
        fprintf(out, " rpm=%u", l->rpm);
    if (l->tpm)
        fprintf(out, " tpm=%u", l->tpm);
    if (l->max_parallel)
        fprintf(out, " max_parallel=%u", l->max_parallel);
    print_budget(l->budget_usd, l->budget_period, out);
}

/* The policies section of --check: one line per policy, then the keys. */
static void print_policies(const mr_config_t *cfg, FILE *out)
{
    int wn = 0;

    if (cfg->n_policies == 0)
        fprintf(out, "policies: (none)\n");
    else if (cfg->default_policy)
        fprintf(out, "policies: (default %s)\n", cfg->default_policy->name);
    else
        fprintf(out, "policies: (no default_policy: requests without one are unfiltered)\n");
    for (size_t i = 0; i < cfg->n_policies; i++)
        if (width_of(cfg->policies[i].name) > wn)
            wn = width_of(cfg->policies[i].name);
    for (size_t i = 0; i < cfg->n_policies; i++) {
        const mr_policy_t *p = &cfg->policies[i];
        fprintf(out, "  %-*s ", wn, p->name);
        print_rules(out, "allow", p->allow, p->n_allow);
        print_rules(out, "deny", p->deny, p->n_deny);
        if (p->open_weights_only)
            fprintf(out, " open_weights_only");
        if (p->deny_data_collection)
            fprintf(out, " data_collection=deny");
        if (p->zdr_only)
            fprintf(out, " zdr_only");
        if (p->has_max_input)
            fprintf(out, " max_price.input=%g", p->max_input_per_mtok);
        if (p->has_max_output)
            fprintf(out, " max_price.output=%g", p->max_output_per_mtok);
        if (p->strategy_set)
            fprintf(out, " strategy=%s", mr_strategy_name(p->strategy));
        if (p->diversity_set)
            fprintf(out, " fallback_diversity=%s", mr_diversity_name(p->diversity));
        if (p->max_vendor_share > 0)
            fprintf(out, " max_vendor_share=%g share_window_s=%u", p->max_vendor_share,
                    p->share_window_s);
        if (p->min_vendors)
            fprintf(out, " min_vendors=%u", p->min_vendors);
        fprintf(out, "  sha256:%.12s\n", p->hash);
    }
    if (cfg->n_keys == 0) {
        fprintf(out, "keys: (none: %s)\n",
                cfg->allow_unauthenticated ? "unauthenticated, allow_unauthenticated is true"
                                           : "unauthenticated, loopback only");
        return;
    }
    fprintf(out, "keys: %zu\n", cfg->n_keys);
    for (size_t i = 0; i < cfg->n_keys; i++) {
        const mr_key_t *k = &cfg->keys[i];
        fprintf(out, "  %s%s%s%s", k->name, k->policy ? " -> policy " : "",
                k->policy ? k->policy->name : "", k->admin ? "  admin" : "");
        print_key_limits(&k->limits, out);
        fputc('\n', out);
    }
}

/* ------------------------------------------------------------------------ */
/* Providers and routes                                                      */
/* ------------------------------------------------------------------------ */

static void print_providers(const mr_config_t *cfg, FILE *out)
{
    int wn = 0, wk = 0, wu = 0;
    size_t enabled = 0;

    for (size_t i = 0; i < cfg->n_providers; i++) {
        const mr_provider_t *p = &cfg->providers[i];
        if (width_of(p->name) > wn)
            wn = width_of(p->name);
        if (width_of(mr_provider_kind_name(p->kind)) > wk)
            wk = width_of(mr_provider_kind_name(p->kind));
        if (width_of(p->base_url) > wu)
            wu = width_of(p->base_url);
        enabled += p->enabled;
    }
    fprintf(out, "providers: (%zu of %zu enabled)\n", enabled, cfg->n_providers);
    for (size_t i = 0; i < cfg->n_providers; i++) {
        const mr_provider_t *p = &cfg->providers[i];
        fprintf(out, "  %-*s  %-*s  %-*s  vendor=%s region=%s jurisdiction=%s  ", wn, p->name, wk,
                mr_provider_kind_name(p->kind), wu, p->base_url, p->vendor,
                *p->region ? p->region : "-", *p->jurisdiction ? p->jurisdiction : "-");
        if (p->enabled)
            fprintf(out, "enabled");
        else
            fprintf(out, "disabled (%s)", p->disabled_reason);
        if (p->max_inflight)
            fprintf(out, " max_inflight=%u", p->max_inflight);
        print_budget(p->budget_usd, p->budget_period, out);
        fputc('\n', out);
        if (p->n_models) {
            fprintf(out, "  %-*s  models:", wn, "");
            for (size_t j = 0; j < p->n_models; j++)
                fprintf(out, "%s %s", j ? "," : "", p->models[j]);
            fputc('\n', out);
        }
    }
}

/* A route without an enabled target: the variables to set, in the same
 * wording as the router's 503. */
static void print_dead_route(const mr_route_t *r, FILE *out)
{
    const char *vars[MR_MAX_CANDIDATES];
    size_t nv = 0;

    for (size_t j = 0; j < r->n_targets; j++) {
        const char *v = r->targets[j].provider->key_env;
        bool dup = false;
        for (size_t k = 0; v && k < nv; k++)
            dup |= !strcmp(vars[k], v);
        if (v && !dup && nv < MR_MAX_CANDIDATES)
            vars[nv++] = v;
    }
    fprintf(out, "    -> no enabled target");
    for (size_t k = 0; k < nv; k++)
        fprintf(out, "%s%s", k == 0 ? ": set " : k + 1 == nv ? " or " : ", ", vars[k]);
    fputc('\n', out);
}

static void print_route(const mr_route_t *r, FILE *out)
{
    size_t live = 0;
    int wt = 0;

    for (size_t j = 0; j < r->n_targets; j++) {
        int w = width_of(r->targets[j].provider->name) + 1 + width_of(r->targets[j].model);
        if (w > wt)
            wt = w;
    }
    fprintf(out, "  %s  (max_attempts %u)\n", r->name, r->max_attempts);
    for (size_t j = 0; j < r->n_targets; j++) {
        const mr_target_t *t = &r->targets[j];
        if (t->provider->enabled) {
            live++;
            fprintf(out, "    %zu. %s/%s\n", j + 1, t->provider->name, t->model);
        } else {
            int pad = wt - width_of(t->provider->name) - 1 - width_of(t->model);
            fprintf(out, "    %zu. %s/%s%*s   [disabled: %s]\n", j + 1, t->provider->name, t->model,
                    pad, "", t->provider->disabled_reason);
        }
    }
    if (live == 0)
        print_dead_route(r, out);
}

void mr_config_print_table(const mr_config_t *cfg, FILE *out)
{
    print_settings(cfg, out);
    print_lists(cfg, out);
    print_providers(cfg, out);
    fprintf(out, "routes:%s\n",
            cfg->n_routes ? "" : " (none; address providers as provider/model)");
    for (size_t i = 0; i < cfg->n_routes; i++)
        print_route(&cfg->routes[i], out);
    print_policies(cfg, out);
}
