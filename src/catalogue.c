/*
 * catalogue — name tables, lookups, the scalar settings table and the
 * destructor of mr_config_t. Pure data and pure functions: nothing here
 * parses JSON or reads the environment (that is the loader, config.h).
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
static const char *const period_names[] = {"total", "day", "month"};
static const char *const builtin_attrs[] = {"provider", "model",        "kind",    "vendor",
                                            "region",   "jurisdiction", "creator", NULL};

static const char *const cap_names[MR_CAP_COUNT] = {
    "tools", "vision", "audio", "files", "json_object", "json_schema", "reasoning", "prompt_cache"};

const char *mr_capability_name(unsigned i)
{
    return i < MR_CAP_COUNT ? cap_names[i] : "unknown";
}

int mr_capability_parse(const char *name, uint32_t *bit)
{
    for (unsigned i = 0; i < MR_CAP_COUNT; i++)
        if (!strcmp(name, cap_names[i])) {
            *bit = 1u << i;
            return 0;
        }
    return -1;
}

const char *mr_capabilities_format(uint32_t caps, char *buf, size_t n)
{
    size_t o = 0;

    if (n)
        buf[0] = '\0';
    for (unsigned i = 0; i < MR_CAP_COUNT && o < n; i++)
        if (caps & (1u << i)) {
            int w = snprintf(buf + o, n - o, "%s%s", o ? ", " : "", cap_names[i]);
            o += w > 0 ? (size_t)w : 0;
        }
    return buf;
}

/* What each dialect can carry (docs/providers.md): OpenAI-compatible APIs
 * get everything (the bytes pass through: the operator narrows). */
uint32_t mr_capabilities_default(mr_provider_kind_t kind)
{
    switch (kind) {
    case MR_KIND_ANTHROPIC:
        return MR_CAP_TOOLS | MR_CAP_VISION | MR_CAP_FILES | MR_CAP_JSON_SCHEMA | MR_CAP_REASONING |
               MR_CAP_PROMPT_CACHE;
    case MR_KIND_GEMINI:
        return MR_CAP_ALL;
    case MR_KIND_OPENAI:
    case MR_KIND_AZURE:
        break;
    }
    return MR_CAP_ALL;
}

/* Anthropic: reads 0.1x, 5-minute writes 1.25x; Gemini: implicit cache
 * reads 0.25x, no write surcharge; OpenAI-compatible: reads 0.5x (OpenAI's
 * first discount), writes at the input price. */
void mr_cache_price_factors(mr_provider_kind_t kind, double *read, double *write)
{
    *write = 1.0;
    switch (kind) {
    case MR_KIND_ANTHROPIC:
        *read = 0.1;
        *write = 1.25;
        return;
    case MR_KIND_GEMINI:
        *read = 0.25;
        return;
    case MR_KIND_OPENAI:
    case MR_KIND_AZURE:
        break;
    }
    *read = 0.5;
}

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

const char *mr_budget_period_name(mr_budget_period_t p)
{
    return (unsigned)p <= MR_PERIOD_MONTH ? period_names[p] : "unknown";
}

int mr_budget_period_parse(const char *s, mr_budget_period_t *out)
{
    for (unsigned i = 0; i <= MR_PERIOD_MONTH; i++)
        if (!strcmp(s, period_names[i])) {
            *out = (mr_budget_period_t)i;
            return 0;
        }
    return -1;
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
    free_strings(p->anthropic_beta, p->n_anthropic_beta);
    free(p->key_env);
    free(p->disabled_reason);
    free_tags(p->tags, p->n_tags);
}

static void free_route(mr_route_t *r)
{
    free(r->name);
    free_strings(r->aliases, r->n_aliases);
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
    free_strings(cfg->server_names, cfg->n_server_names);
    free_strings(cfg->cors_origins, cfg->n_cors_origins);
    free(cfg->vendors);
    free_strings(cfg->warnings, cfg->n_warnings);
    free(cfg->listen_host);
    free(cfg->access_log);
    free(cfg->audit.path);
    if (cfg->state.redis_url) /* may hold a password */
        explicit_bzero(cfg->state.redis_url, strlen(cfg->state.redis_url));
    free(cfg->state.redis_url);
    free(cfg->state.file);
    free(cfg->origin);
    free(cfg);
}

/* ------------------------------------------------------------------------ */
/* Scalar settings                                                           */
/* ------------------------------------------------------------------------ */

#define KIB 1024.0
#define MIB (1024.0 * KIB)
#define GIB (1024.0 * MIB)
#define AT(field) .offset = offsetof(mr_config_t, field), .size = sizeof(((mr_config_t *)0)->field)
#define UINT(sec, k, field, lo, hi, d)                                                             \
    {                                                                                              \
        .section = sec, .key = k, .type = MR_SETTING_UINT, AT(field), .min = lo, .max = hi,        \
        .def = d                                                                                   \
    }

static const char *const state_backends[] = {"memory", "redis", NULL};
static const char *const state_outages[] = {"local", "deny", NULL};
static const char *const policy_header_names[] = {"narrow_only", "replace", "ignore", NULL};

/*
 * docs/configuration.md documents every row (tests/unit/test_config_docs.c
 * checks it). Row order is load order, which is also the order of --check.
 */
static const mr_setting_t settings[] = {
    {.key = "listen", .type = MR_SETTING_LISTEN, AT(listen_host), .def_str = "127.0.0.1:8080"},
    UINT(NULL, "max_attempts", max_attempts, 1, MR_ATTEMPTS_MAX, 3),
    UINT("timeouts", "connect_ms", timeouts.connect_ms, 1, 600000, 5000),
    UINT("timeouts", "first_byte_ms", timeouts.first_byte_ms, 1, 3600000, 60000),
    UINT("timeouts", "request_ms", timeouts.request_ms, 1, 86400000, 300000),
    UINT("timeouts", "stream_idle_ms", timeouts.stream_idle_ms, 1, 3600000, 60000),
    UINT("timeouts", "client_idle_s", timeouts.client_idle_s, 1, 86400, 60),
    UINT("timeouts", "keepalive_idle_s", timeouts.keepalive_idle_s, 1, 86400, 5),
    UINT("timeouts", "drain_ms", timeouts.drain_ms, 1, 3600000, 10000),
    UINT("timeouts", "commit_hold_ms", timeouts.commit_hold_ms, 0, 600000, 10000),
    UINT("limits", "max_body_bytes", limits.max_body_bytes, KIB, GIB, 4 * MIB),
    UINT("limits", "max_header_bytes", limits.max_header_bytes, KIB, MIB, 16 * KIB),
    UINT("limits", "max_response_bytes", limits.max_response_bytes, KIB, GIB, 64 * MIB),
    UINT("limits", "stream_buffer_bytes", limits.stream_buffer_bytes, KIB, 64 * MIB, 256 * KIB),
    UINT("limits", "commit_hold_bytes", limits.commit_hold_bytes, 0, 64 * MIB, 64 * KIB),
    UINT("limits", "worker_memory_bytes", limits.worker_memory_bytes, 2 * MIB, 1024 * GIB,
         256 * MIB),
    UINT("limits", "max_connections", limits.max_connections, 1, 1000000, 4096),
    UINT("limits", "max_connections_per_ip", limits.max_connections_per_ip, 1, 1000000, 1024),
    UINT("health", "failure_threshold", health.failure_threshold, 1, 1000000,
         MR_HEALTH_FAILURE_THRESHOLD),
    UINT("health", "cooldown_ms", health.cooldown_ms, 1, 86400000, MR_HEALTH_COOLDOWN_MS),
    UINT("health", "max_cooldown_ms", health.max_cooldown_ms, 1, 86400000,
         MR_HEALTH_MAX_COOLDOWN_MS),
    UINT("health", "probe_timeout_ms", health.probe_timeout_ms, 1, 86400000,
         MR_HEALTH_PROBE_TIMEOUT_MS),
    /* health.h reads 0 as "default": an explicit 0 means "only the floor" */
    {.section = "retry_budget",
     .key = "ratio",
     .type = MR_SETTING_NUMBER,
     AT(retry_budget.ratio),
     .min = 0,
     .max = 100,
     .def = MR_RETRY_RATIO,
     .zero_as = -1,
     .flags = MR_SETTING_ZERO_AS},
    UINT("retry_budget", "window_s", retry_budget.window_s, 1, MR_RETRY_MAX_WINDOW_S,
         MR_RETRY_WINDOW_S),
    /* ... and an explicit 0 here means "no floor at all" */
    {.section = "retry_budget",
     .key = "min_retries_per_s",
     .type = MR_SETTING_UINT,
     AT(retry_budget.min_retries_per_s),
     .min = 0,
     .max = 1000000,
     .def = MR_RETRY_MIN_PER_S,
     .zero_as = MR_RETRY_NO_FLOOR,
     .flags = MR_SETTING_ZERO_AS},
    {.key = "default_policy",
     .type = MR_SETTING_POLICY,
     AT(default_policy),
     .flags = MR_SETTING_QUIET,
     .stage = MR_STAGE_AFTER_POLICIES},
    {.key = "allow_unauthenticated",
     .type = MR_SETTING_BOOL,
     AT(allow_unauthenticated),
     .flags = MR_SETTING_QUIET,
     .stage = MR_STAGE_LAST},
    {.key = "public_metrics",
     .type = MR_SETTING_BOOL,
     AT(public_metrics),
     .def = 1,
     .flags = MR_SETTING_OFF_WITH_KEYS,
     .stage = MR_STAGE_LAST},
    {.key = "policy_header",
     .type = MR_SETTING_ENUM,
     AT(policy_header),
     .names = policy_header_names, /* default: index 0, narrow_only */
     .stage = MR_STAGE_LAST},
    {.key = "access_log",
     .type = MR_SETTING_STRING,
     AT(access_log),
     .def_str = "off",
     .flags = MR_SETTING_OFF_IS_NULL,
     .stage = MR_STAGE_LAST},
    {.section = "audit",
     .key = "path",
     .type = MR_SETTING_STRING,
     AT(audit.path),
     .flags = MR_SETTING_REQUIRED | MR_SETTING_NONEMPTY,
     .stage = MR_STAGE_LAST},
    {.section = "audit",
     .key = "bodies",
     .type = MR_SETTING_BOOL,
     AT(audit.bodies),
     .stage = MR_STAGE_LAST},
    {.section = "audit",
     .key = "queue_bytes",
     .type = MR_SETTING_UINT,
     AT(audit.queue_bytes),
     .min = 4 * KIB,
     .max = 16 * GIB,
     .def = MR_AUDIT_QUEUE_BYTES,
     .stage = MR_STAGE_LAST},
    /* shared state (state.h): created once at start, a reload keeps it */
    {.section = "state",
     .key = "backend",
     .type = MR_SETTING_ENUM,
     AT(state.backend),
     .names = state_backends,
     .stage = MR_STAGE_LAST},
    {.section = "state",
     .key = "redis_url",
     .type = MR_SETTING_STRING,
     AT(state.redis_url),
     .flags = MR_SETTING_NONEMPTY | MR_SETTING_URL_SECRET,
     .stage = MR_STAGE_LAST},
    {.section = "state",
     .key = "on_outage",
     .type = MR_SETTING_ENUM,
     AT(state.on_outage),
     .names = state_outages,
     .stage = MR_STAGE_LAST},
    {.section = "state",
     .key = "file",
     .type = MR_SETTING_STRING,
     AT(state.file),
     .flags = MR_SETTING_NONEMPTY,
     .stage = MR_STAGE_LAST},
    /* stored Responses (respstore.h): created once at start, a reload keeps it */
    {.section = "responses",
     .key = "max_entries",
     .type = MR_SETTING_UINT,
     AT(responses.max_entries),
     .min = 1,
     .max = 100000000,
     .def = 10000,
     .stage = MR_STAGE_LAST},
    {.section = "responses",
     .key = "max_bytes",
     .type = MR_SETTING_UINT,
     AT(responses.max_bytes),
     .min = 64 * KIB,
     .max = 64 * GIB,
     .def = 256 * MIB,
     .stage = MR_STAGE_LAST},
    {.section = "responses",
     .key = "ttl_s",
     .type = MR_SETTING_UINT,
     AT(responses.ttl_s),
     .min = 1,
     .max = 365 * 86400,
     .def = 30 * 86400,
     .stage = MR_STAGE_LAST},
};

const mr_setting_t *mr_settings(size_t *n)
{
    *n = sizeof(settings) / sizeof(settings[0]);
    return settings;
}

const char *mr_setting_path(const mr_setting_t *s, char *buf, size_t n)
{
    snprintf(buf, n, "%s%s%s", s->section ? s->section : "", s->section ? "." : "", s->key);
    return buf;
}

/* A UINT or NUMBER value as a double (exact: every stored value is < 2^53). */
static double number_at(const mr_setting_t *s, const mr_config_t *cfg)
{
    const void *at = (const char *)cfg + s->offset;
    double d;

    if (s->type == MR_SETTING_NUMBER) {
        memcpy(&d, at, sizeof(d));
    } else if (s->size == sizeof(uint64_t)) {
        uint64_t v;
        memcpy(&v, at, sizeof(v));
        d = (double)v;
    } else {
        uint32_t v;
        memcpy(&v, at, sizeof(v));
        d = v;
    }
    /* zero_as is what a given 0 became: show the 0 the file says */
    return (s->flags & MR_SETTING_ZERO_AS) && d == s->zero_as ? 0 : d;
}

static const char *format_listen(const mr_config_t *cfg, char *buf, size_t n)
{
    bool v6 = strchr(cfg->listen_host, ':') != NULL;

    snprintf(buf, n, "%s%s%s:%u", v6 ? "[" : "", cfg->listen_host, v6 ? "]" : "",
             (unsigned)cfg->listen_port);
    return buf;
}

/* A URL with its user info (a password) replaced by three stars: it never
 * reaches --check's output. */
static const char *format_url(const char *url, char *buf, size_t n)
{
    const char *auth = strstr(url, "://");
    const char *host = auth ? auth + 3 : url;
    const char *at = strchr(host, '@'), *slash = strchr(host, '/');

    if (at && (!slash || at < slash))
        snprintf(buf, n, "%.*s***%s", (int)(host - url), url, at);
    else
        snprintf(buf, n, "%s", url);
    return buf;
}

const char *mr_setting_format(const mr_setting_t *s, const mr_config_t *cfg, char *buf, size_t n)
{
    const void *at = cfg ? (const char *)cfg + s->offset : NULL;
    const char *str = s->def_str;

    if (n == 0)
        return buf;
    switch (s->type) {
    case MR_SETTING_UINT:
    case MR_SETTING_NUMBER:
        snprintf(buf, n, s->type == MR_SETTING_UINT ? "%.0f" : "%g",
                 cfg ? number_at(s, cfg) : s->def);
        return buf;
    case MR_SETTING_BOOL: {
        bool b = s->def != 0;
        if (cfg)
            memcpy(&b, at, sizeof(b));
        snprintf(buf, n, "%s", b ? "true" : "false");
        return buf;
    }
    case MR_SETTING_LISTEN:
        if (cfg)
            return format_listen(cfg, buf, n);
        break;
    case MR_SETTING_POLICY: {
        const mr_policy_t *p = NULL;
        if (cfg)
            memcpy(&p, at, sizeof(p));
        str = p ? p->name : NULL;
        break;
    }
    case MR_SETTING_ENUM: {
        unsigned v = (unsigned)s->def;
        if (cfg)
            memcpy(&v, at, sizeof(v));
        str = s->names[v];
        break;
    }
    case MR_SETTING_STRING:
        if (cfg)
            memcpy(&str, at, sizeof(str));
        if (str && (s->flags & MR_SETTING_URL_SECRET))
            return format_url(str, buf, n);
        break;
    }
    snprintf(buf, n, "%s", str ? str : (s->flags & MR_SETTING_OFF_IS_NULL) ? "off" : "none");
    return buf;
}
