/*
 * config — loading, validating and resolving meridian.json.
 *
 * A loaded mr_config_t is immutable: it is built once by mr_config_load_*,
 * then shared read-only by every worker until mr_config_free. All strings and
 * arrays inside it are owned by the config and live exactly as long as it.
 * Loading uses no global state and may run on any thread; env expansion reads
 * the process environment (getenv) at load time only.
 *
 * Errors are returned as a status plus a one-line message in a caller buffer
 * that names the origin (file name), the JSON path and the reason, e.g.
 *   config/meridian.json: routes.chat.targets[1].provider: unknown provider "mistrall"
 *
 * Policy evaluation lives in policy.h, gateway keys in auth.h; this header
 * only describes what the file says (docs/configuration.md, docs/routing.md).
 */
#ifndef MERIDIAN_CONFIG_H
#define MERIDIAN_CONFIG_H

#include "meridian/env.h" /* mr_env_expand, the ${VAR} expansion of loading */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define MR_CONFIG_DEFAULT_PATH "config/meridian.json"

typedef enum {
    MR_KIND_OPENAI = 0, /* any OpenAI-compatible API: bytes pass through */
    MR_KIND_ANTHROPIC,
    MR_KIND_GEMINI,
    MR_KIND_AZURE,
} mr_provider_kind_t;

/* A free-form attribute of a provider or target ("license": "apache-2.0"). */
typedef struct mr_tag {
    char *name;
    char *value;
} mr_tag_t;

typedef struct mr_provider {
    char *name; /* key in "providers" */
    mr_provider_kind_t kind;
    char *base_url;     /* expanded, no trailing '/' */
    char *api_key;      /* expanded secret; NULL when the provider takes none */
    char *vendor;       /* NULL-free: defaults to name */
    char *region;       /* "" when not given */
    char *jurisdiction; /* "" when not given; upper-case ISO-3166 alpha-2 */
    char **models;      /* extra models advertised in /v1/models (may be 0) */
    size_t n_models;
    char *api_version;       /* anthropic-version / Azure api-version; NULL: the adapter's */
    long default_max_tokens; /* anthropic max_tokens when the client gives none; 0: 4096 */
    unsigned max_inflight;   /* concurrent transfers per worker; 0: unlimited */
    char **forward_headers;  /* client headers passed upstream, lower-case (may be 0) */
    size_t n_forward_headers;
    bool enabled;          /* false when its key variable is unset */
    char *key_env;         /* variable named by api_key ("${X}" -> "X"), else NULL */
    char *disabled_reason; /* set when !enabled: "MISTRAL_API_KEY is not set" */
    bool retains_data;     /* stores prompts/completions beyond the request (default false) */
    bool zdr;              /* zero data retention guaranteed (default false) */
    bool http2;            /* offer HTTP/2 upstream (TLS ALPN; https only) */
    char *ca_file;         /* PEM bundle that verifies the upstream; NULL: the system's */
    mr_tag_t *tags;        /* inherited by every target on this provider */
    size_t n_tags;
    size_t vendor_index; /* index of `vendor` in mr_config_t.vendors */
} mr_provider_t;

typedef struct mr_target {
    const mr_provider_t *provider;          /* points into mr_config_t.providers */
    char *model;                            /* upstream model name sent to the provider */
    char *creator;                          /* who made the model; default provider->vendor */
    bool open_weights;                      /* default false */
    bool has_input_price, has_output_price; /* false: price unknown */
    double input_per_mtok, output_per_mtok; /* USD per million tokens, >= 0 */
    uint32_t weight;                        /* 1..1000000, default 1 (strategy weighted) */
    mr_tag_t *tags;                         /* own tags; shadow the provider's */
    size_t n_tags;
    /* Stable id of the (provider, model) pair, shared by every target with
     * the same pair in any route: 0 <= id < mr_config_t.n_target_ids. Soft
     * state (latency) is keyed by it; valid for the life of this config. */
    uint32_t id;
} mr_target_t;

typedef struct mr_route {
    char *name;
    mr_target_t *targets;
    size_t n_targets;
    unsigned max_attempts; /* route override, else the global value */
    size_t index;          /* position in mr_config_t.routes (soft-state key) */
} mr_route_t;

typedef enum {
    MR_STRATEGY_PRIORITY = 0,  /* config order */
    MR_STRATEGY_WEIGHTED,      /* weighted random order by target weight */
    MR_STRATEGY_ROUND_ROBIN,   /* config order rotated by a per-route counter */
    MR_STRATEGY_LEAST_LATENCY, /* ascending EWMA time-to-first-byte, unknown first */
    MR_STRATEGY_CHEAPEST,      /* ascending input+output price, unknown last */
} mr_strategy_t;

typedef enum {
    MR_DIVERSITY_NONE = 0,
    MR_DIVERSITY_VENDOR,
    MR_DIVERSITY_REGION,
    MR_DIVERSITY_JURISDICTION,
} mr_diversity_t;

/* One allow/deny list: attribute name -> accepted (or refused) values. */
typedef struct mr_attr_rule {
    char *attr; /* "region", "jurisdiction", "vendor", ..., or a tag name */
    char **values;
    size_t n_values;
} mr_attr_rule_t;

typedef struct mr_policy {
    char *name;
    size_t index;          /* position in mr_config_t.policies */
    mr_attr_rule_t *allow; /* a target must match every allow list ... */
    size_t n_allow;
    mr_attr_rule_t *deny; /* ... and no deny list */
    size_t n_deny;
    bool open_weights_only;
    bool deny_data_collection; /* data_collection "deny": excludes retains_data */
    bool zdr_only;
    bool has_max_input, has_max_output; /* max_price members present */
    double max_input_per_mtok, max_output_per_mtok;
    mr_strategy_t strategy;
    bool strategy_set; /* "strategy" given explicitly */
    mr_diversity_t diversity;
    bool diversity_set;
    double max_vendor_share; /* (0,1]; 0 when not set */
    uint32_t share_window_s; /* default 60 */
    uint32_t min_vendors;    /* 0 when not set; checked at load (static filters) */
    int share_slot;          /* 0..n_share_policies-1 when max_vendor_share is set, else -1 */
    char hash[65];           /* hex SHA-256 of the canonical form (mr_policy_hash) */
} mr_policy_t;

/* A gateway key: only the SHA-256 of the secret is ever stored. */
typedef struct mr_key {
    char *name;
    uint8_t digest[32];
    const mr_policy_t *policy; /* bound policy, or NULL */
} mr_key_t;

typedef struct mr_timeouts {
    uint32_t connect_ms;     /* TCP/TLS connect to an upstream */
    uint32_t first_byte_ms;  /* request sent -> upstream response headers */
    uint32_t request_ms;     /* overall deadline of one client request, all attempts */
    uint32_t stream_idle_ms; /* max gap between two upstream chunks once streaming */
    uint32_t client_idle_s;  /* idle client connection timeout (MHD) */
    uint32_t drain_ms;       /* SIGTERM/SIGINT: how long in-flight requests may finish */
} mr_timeouts_t;

typedef struct mr_limits {
    size_t max_body_bytes;      /* request body; over it -> 413 */
    size_t max_header_bytes;    /* sum of request header lines; over it -> 431 */
    size_t max_response_bytes;  /* buffered non-stream upstream body; over it -> 502 */
    size_t stream_buffer_bytes; /* per-stream buffer before the upstream is paused */
    unsigned max_connections;   /* concurrent client connections */
} mr_limits_t;

/* Circuit breakers and the retry budget (health.h); 0 means health.h's default. */
typedef struct mr_health_cfg {
    uint32_t failure_threshold;
    uint32_t cooldown_ms;
    uint32_t max_cooldown_ms;
    uint32_t probe_timeout_ms;
} mr_health_cfg_t;

typedef struct mr_retry_budget_cfg {
    double ratio; /* retries per request over the window; -1: only the floor */
    uint32_t window_s;
    uint32_t min_retries_per_s;
} mr_retry_budget_cfg_t;

/* Provenance: the audit file (reqlog.h); path NULL when off. */
typedef struct mr_audit_cfg {
    char *path;
    bool bodies;        /* also record request and response bodies */
    size_t queue_bytes; /* per worker, not yet written; 0: logsink's default */
} mr_audit_cfg_t;

typedef struct mr_config {
    char *origin;      /* file name or "<string>", used in messages */
    char *listen_host; /* "127.0.0.1", "::1", "0.0.0.0" ... */
    uint16_t listen_port;
    mr_provider_t *providers;
    size_t n_providers;
    mr_route_t *routes;
    size_t n_routes;
    unsigned max_attempts; /* default 3, 1..16 */
    mr_timeouts_t timeouts;
    mr_health_cfg_t health;
    mr_retry_budget_cfg_t retry_budget;
    mr_limits_t limits;
    char **warnings; /* non-fatal findings (disabled providers), for the caller to log */
    size_t n_warnings;

    mr_policy_t *policies; /* file order */
    size_t n_policies;
    const mr_policy_t *default_policy; /* NULL when not set */
    mr_key_t *keys;
    size_t n_keys;
    bool allow_unauthenticated;
    bool public_metrics; /* /metrics, /status, /status.json without a key (default true) */
    char *access_log;    /* "stdout" or a path; NULL when "off" (the default) */
    mr_audit_cfg_t audit;

    /* Derived indexes (soft-state keys), fixed for the life of the config. */
    uint32_t n_target_ids; /* distinct (provider, model) pairs over all routes */
    const char **vendors;  /* distinct provider vendors, borrowed from providers */
    size_t n_vendors;
    size_t n_share_policies; /* policies with max_vendor_share */
} mr_config_t;

/* Load and validate. On success *out owns a new config and 0 is returned; on
 * failure -1 is returned, *out is NULL and err holds the message. */
int mr_config_load_file(const char *path, mr_config_t **out, char *err, size_t errlen);
int mr_config_load_string(const char *json, const char *origin, mr_config_t **out, char *err,
                          size_t errlen);
void mr_config_free(mr_config_t *cfg);

/* Override the listen address ("HOST:PORT", "[::1]:PORT"); 0 or -1 + err. */
int mr_config_set_listen(mr_config_t *cfg, const char *hostport, char *err, size_t errlen);

const mr_provider_t *mr_config_find_provider(const mr_config_t *cfg, const char *name);
const mr_route_t *mr_config_find_route(const mr_config_t *cfg, const char *name);
const mr_policy_t *mr_config_find_policy(const mr_config_t *cfg, const char *name);

/*
 * With no gateway keys and allow_unauthenticated false, Meridian may only
 * listen on a loopback address (127.0.0.0/8, ::1). Loading checks the file's
 * `listen`; call this again after mr_config_set_listen. 0, or -1 with a
 * one-line message saying how to fix it.
 */
int mr_config_check_exposure(const mr_config_t *cfg, char *err, size_t errlen);

/*
 * The value of a target attribute, the single lookup every allow/deny list
 * uses: "provider", "model", "kind", "vendor", "region", "jurisdiction",
 * "creator", else the target's tag of that name, else its provider's tag.
 * Returns a borrowed string ("" for an empty region/jurisdiction) or NULL
 * when the target has no such attribute.
 */
const char *mr_target_attr(const mr_target_t *t, const char *name);

/* true for the built-in attribute names listed above. */
int mr_attr_is_builtin(const char *name);

/* The resolved routing table as printed by --check. */
void mr_config_print_table(const mr_config_t *cfg, FILE *out);

const char *mr_provider_kind_name(mr_provider_kind_t kind);
const char *mr_strategy_name(mr_strategy_t s);
const char *mr_diversity_name(mr_diversity_t d);

#endif
