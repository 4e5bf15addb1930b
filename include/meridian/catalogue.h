/*
 * catalogue — what a loaded configuration is made of: the types of
 * mr_config_t (providers, routes, targets, policies, keys, limits...), the
 * constants that bound them, the name tables of their enums, the attribute
 * lookup every policy filter uses, and the table of scalar settings that
 * drives loading, defaults, bounds messages, `--check` and the docs check.
 *
 * This is the leaf of the config layers: it depends on nothing else of
 * Meridian, so modules that only read a config (policy, router, health...)
 * depend on it and not on the loader (config.h).
 *
 * Ownership: an mr_config_t owns every string and array inside it; it is
 * built by the loader (config.h), immutable afterwards, shared read-only by
 * every thread, and released once with mr_config_free. Everything else here
 * is a pure function over it or over static tables: no global mutable state,
 * callable from any thread. Borrowed results (names, attribute values,
 * lookups) live as long as the config or the program.
 */
#ifndef MERIDIAN_CATALOGUE_H
#define MERIDIAN_CATALOGUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- bounds of the configuration (docs/configuration.md) ---------------- */

#define MR_MAX_CANDIDATES 32  /* targets of one route = candidates of one plan (router.h) */
#define MR_ATTEMPTS_MAX 16    /* max_attempts, top level and per route */
#define MR_NAME_MAX 64        /* provider, policy, key and tag names */
#define MR_ROUTE_NAME_MAX 256 /* route names (what clients send as model) */
#define MR_LABEL_MAX 64       /* vendor, region, creator, api_version */
#define MR_TAGS_MAX 32        /* tags of one provider or target */
#define MR_TAG_VALUE_MAX 128  /* bytes of one tag value */
#define MR_FORWARD_HEADERS_MAX 32
#define MR_ALIASES_MAX 64        /* routes.NAME.aliases */
#define MR_ANTHROPIC_BETA_MAX 64 /* providers.NAME.anthropic_beta */
#define MR_POLICIES_MAX 256
#define MR_RULE_VALUES_MAX 256 /* values of one allow/deny list */
#define MR_RULE_VALUE_MAX 256  /* bytes of one such value */
#define MR_KEYS_MAX 4096
#define MR_HOST_NAMES_MAX 64   /* server_names, cors.allow_origins entries */
#define MR_HOST_NAME_MAX 253   /* bytes of one host name (an origin: scheme + host + port) */
#define MR_PRICE_MAX 1000000.0 /* USD per million tokens */
#define MR_SHARE_WINDOW_S 60   /* default policy share_window_s */
#define MR_BUDGET_USD_MAX 1e9  /* budget_usd of a key or provider */
#define MR_RPM_MAX 100000000   /* keys.NAME.limits.rpm */
#define MR_TPM_MAX 4000000000u /* keys.NAME.limits.tpm */
#define MR_PARALLEL_MAX 1000000
#define MR_KEEPALIVE_S 4     /* default provider keepalive_s: below 5 s idle timeouts */
#define MR_SESSION_TTL_S 300 /* default policy session_ttl_s (cache affinity) */

/* ---- defaults shared with health.h -------------------------------------- */

#define MR_HEALTH_FAILURE_THRESHOLD 5    /* consecutive failures that open */
#define MR_HEALTH_COOLDOWN_MS 30000      /* first open */
#define MR_HEALTH_MAX_COOLDOWN_MS 300000 /* cap of doubling and of Retry-After */
#define MR_HEALTH_PROBE_TIMEOUT_MS 60000 /* a probe that never reports frees its slot */
#define MR_RETRY_RATIO 0.2               /* retries per request over the window */
#define MR_RETRY_WINDOW_S 10             /* sliding window, 1 s buckets */
#define MR_RETRY_MIN_PER_S 5             /* floor: retries per second always allowed */
#define MR_RETRY_MAX_WINDOW_S 60         /* ring size: windows are capped to this */
/* min_retries_per_s value meaning "no floor" (0 means the default). */
#define MR_RETRY_NO_FLOOR UINT32_MAX
/* Records of one worker waiting for the audit writer (= logsink's default). */
#define MR_AUDIT_QUEUE_BYTES (8u << 20)

/* ---- the types of a loaded configuration -------------------------------- */

typedef enum {
    MR_KIND_OPENAI = 0, /* any OpenAI-compatible API: bytes pass through */
    MR_KIND_ANTHROPIC,
    MR_KIND_GEMINI,
    MR_KIND_AZURE,
} mr_provider_kind_t;

/* The period a budget_usd covers; UTC boundaries (limits.h). */
typedef enum {
    MR_PERIOD_TOTAL = 0, /* never resets */
    MR_PERIOD_DAY,       /* resets at 00:00 UTC */
    MR_PERIOD_MONTH,     /* resets at 00:00 UTC on the first */
} mr_budget_period_t;
/* What a target can do for a request (target `capabilities`): a request that
 * needs one skips targets without it (docs/routing.md). Bits of a uint32_t. */
typedef enum {
    MR_CAP_TOOLS = 1u << 0,        /* function tools and tool results */
    MR_CAP_VISION = 1u << 1,       /* image parts */
    MR_CAP_AUDIO = 1u << 2,        /* input_audio parts */
    MR_CAP_FILES = 1u << 3,        /* file parts (PDF...) */
    MR_CAP_JSON_OBJECT = 1u << 4,  /* response_format json_object */
    MR_CAP_JSON_SCHEMA = 1u << 5,  /* response_format json_schema */
    MR_CAP_REASONING = 1u << 6,    /* reasoning effort / thinking asked for */
    MR_CAP_PROMPT_CACHE = 1u << 7, /* cache_control markers, cached content */
} mr_capability_t;
#define MR_CAP_COUNT 8
#define MR_CAP_ALL ((uint32_t)((1u << MR_CAP_COUNT) - 1))

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
    unsigned max_inflight;   /* concurrent transfers, all workers; 0: unlimited */
    unsigned keepalive_s;    /* idle connections older than this are not reused */
    char **forward_headers;  /* client headers passed upstream, lower-case (may be 0) */
    size_t n_forward_headers;
    /* anthropic-beta flags a Messages client may send it (patterns with
     * `*`, glob.h): given, else ["*"] for kind anthropic and none for the
     * other kinds, which are translated (may be 0) */
    char **anthropic_beta;
    size_t n_anthropic_beta;
    bool enabled;          /* false when its key variable is unset */
    char *key_env;         /* variable named by api_key ("${X}" -> "X"), else NULL */
    char *disabled_reason; /* set when !enabled: "MISTRAL_API_KEY is not set" */
    bool retains_data;     /* stores prompts/completions beyond the request (default false) */
    bool zdr;              /* zero data retention guaranteed (default false) */
    bool http2;            /* offer HTTP/2 upstream (TLS ALPN; https only) */
    bool responses_api;    /* serves POST {base_url}/responses (Responses clients pass through) */
    bool allow_direct;     /* "NAME/model" may address it (default true) */
    char *ca_file;         /* PEM bundle that verifies the upstream; NULL: the system's */
    mr_tag_t *tags;        /* inherited by every target on this provider */
    size_t n_tags;
    size_t vendor_index; /* index of `vendor` in mr_config_t.vendors */
    double budget_usd;   /* spend cap per budget_period; 0: none */
    mr_budget_period_t budget_period;
    uint32_t capabilities; /* MR_CAP_* of its targets: given, else the kind's defaults */
} mr_provider_t;

typedef struct mr_target {
    const mr_provider_t *provider;          /* points into mr_config_t.providers */
    char *model;                            /* upstream model name sent to the provider */
    char *creator;                          /* who made the model; default provider->vendor */
    bool open_weights;                      /* default false */
    bool has_input_price, has_output_price; /* false: price unknown */
    double input_per_mtok, output_per_mtok; /* USD per million tokens, >= 0 */
    /* Input read from / written to a prompt cache, USD per million tokens:
     * given, else input_per_mtok times the kind's factor
     * (mr_cache_price_factors); meaningful when has_input_price. */
    double cached_input_per_mtok, cache_write_per_mtok;
    uint32_t capabilities; /* MR_CAP_*: given, else the provider's */
    uint32_t weight;       /* 1..1000000, default 1 (strategy weighted) */
    mr_tag_t *tags;        /* own tags; shadow the provider's */
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
    /* other names clients may use for it: exact, or patterns with `*`
     * (glob.h); no name matches two routes or aliases (checked at load) */
    char **aliases;
    size_t n_aliases;
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
    uint32_t share_window_s; /* default MR_SHARE_WINDOW_S */
    uint32_t min_vendors;    /* 0 when not set; checked at load (static filters) */
    uint32_t session_ttl_s;  /* cache affinity pin lifetime (default MR_SESSION_TTL_S) */
    bool session_ttl_set;    /* "session_ttl_s" given explicitly */
    int share_slot;          /* 0..n_share_policies-1 when max_vendor_share is set, else -1 */
    char hash[65];           /* hex SHA-256 of the canonical form (mr_policy_hash) */
} mr_policy_t;

/* keys.NAME.limits: 0 everywhere is "no limit". */
typedef struct mr_key_limits {
    uint32_t rpm;          /* requests per minute */
    uint32_t tpm;          /* prompt + completion tokens per minute */
    uint32_t max_parallel; /* requests in flight */
    double budget_usd;     /* spend cap per budget_period */
    mr_budget_period_t budget_period;
} mr_key_limits_t;

/* A gateway key: only the SHA-256 of the secret is ever stored. */
typedef struct mr_key {
    char *name;
    uint8_t digest[32];
    const mr_policy_t *policy; /* bound policy, or NULL */
    mr_key_limits_t limits;
    bool admin; /* may read every key's GET /v1/gateway/keys/NAME */
} mr_key_t;

typedef struct mr_timeouts {
    uint32_t connect_ms;       /* TCP/TLS connect to an upstream */
    uint32_t first_byte_ms;    /* request sent -> upstream response headers */
    uint32_t request_ms;       /* overall deadline of one client request, all attempts */
    uint32_t stream_idle_ms;   /* max gap between two upstream chunks once streaming */
    uint32_t client_idle_s;    /* idle client connection timeout (MHD) */
    uint32_t keepalive_idle_s; /* a kept-alive connection between requests */
    uint32_t drain_ms;         /* SIGTERM/SIGINT: how long in-flight requests may finish */
    uint32_t commit_hold_ms;   /* a stream is held this long at most before content */
} mr_timeouts_t;

typedef struct mr_limits {
    size_t max_body_bytes;           /* request body; over it -> 413 */
    size_t max_header_bytes;         /* sum of request header lines; over it -> 431 */
    size_t max_response_bytes;       /* buffered non-stream upstream body; over it -> 502 */
    size_t stream_buffer_bytes;      /* per-stream buffer before the upstream is paused */
    size_t commit_hold_bytes;        /* a stream is held before content until this many bytes */
    size_t worker_memory_bytes;      /* a worker's bytes in flight (memacct.h); over -> 503 */
    unsigned max_connections;        /* concurrent client connections */
    unsigned max_connections_per_ip; /* ... from one client address (per worker) */
} mr_limits_t;

/* Circuit breakers and the retry budget (health.h). The loader stores the
 * resolved defaults; health.h still reads a 0 as its default. */
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

/* Shared state (state.h). The enums are indexes of the names in the
 * settings table, in state.h's order. */
typedef struct mr_state_cfg {
    unsigned backend;   /* 0 "memory", 1 "redis" */
    char *redis_url;    /* ${VAR}-expanded; may hold a password: never printed */
    unsigned on_outage; /* 0 "local", 1 "deny" */
    char *file;         /* memory backend: where spend is kept; NULL: not kept */
} mr_state_cfg_t;
/* Stored Responses (respstore.h): the in-process store's bounds, fixed at
 * start (a reload keeps the running store). */
typedef struct mr_responses_cfg {
    uint64_t max_entries;
    uint64_t max_bytes;
    uint32_t ttl_s;
} mr_responses_cfg_t;

/* What the x-meridian-policy request header may do (policy_header). */
typedef enum {
    MR_POLICY_HEADER_NARROW_ONLY = 0, /* adds a layer under the default policy */
    MR_POLICY_HEADER_REPLACE,         /* replaces the default policy (before 0.2.0) */
    MR_POLICY_HEADER_IGNORE,          /* is not read */
} mr_policy_header_t;

/* Provenance: the audit file (reqlog.h); path NULL when off. */
typedef struct mr_audit_cfg {
    char *path;
    bool bodies;        /* also record request and response bodies */
    size_t queue_bytes; /* per worker, not yet written (default MR_AUDIT_QUEUE_BYTES) */
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
    bool public_metrics; /* /metrics, /status, /status.json without a key (default: no keys) */
    mr_policy_header_t policy_header;
    char **server_names; /* host names the Host header may carry besides the listen address */
    size_t n_server_names;
    char **cors_origins; /* cors.allow_origins: "scheme://host[:port]", or "*" (keys only) */
    size_t n_cors_origins;
    char *access_log; /* "stdout" or a path; NULL when "off" (the default) */
    mr_audit_cfg_t audit;
    mr_state_cfg_t state;
    mr_responses_cfg_t responses;

    /* Derived indexes (soft-state keys), fixed for the life of the config. */
    uint32_t n_target_ids; /* distinct (provider, model) pairs over all routes */
    const char **vendors;  /* distinct provider vendors, borrowed from providers */
    size_t n_vendors;
    size_t n_share_policies; /* policies with max_vendor_share */
    /* What every provider and target can do: a request needing nothing
     * beyond it is not checked against capabilities (MR_CAP_*). */
    uint32_t common_capabilities;
} mr_config_t;

/* ---- names and lookups -------------------------------------------------- */

#define MR_PROVIDER_KIND_COUNT 4
#define MR_STRATEGY_COUNT 5
#define MR_DIVERSITY_COUNT 4

/* The file's spelling of an enum value; "unknown" when out of range. */
const char *mr_provider_kind_name(mr_provider_kind_t kind);
const char *mr_strategy_name(mr_strategy_t s);
const char *mr_diversity_name(mr_diversity_t d);
const char *mr_budget_period_name(mr_budget_period_t p);
/* The period spelled `s` ("total", "day", "month"): 0, or -1. */
int mr_budget_period_parse(const char *s, mr_budget_period_t *out);

/* The name of capability bit `i` (0..MR_CAP_COUNT-1): "tools", "vision"... */
const char *mr_capability_name(unsigned i);
/* The bit spelled `name`: 0, or -1 when it names none. */
int mr_capability_parse(const char *name, uint32_t *bit);
/* "tools, vision, ..." of a mask into buf (n bytes); returns buf. */
const char *mr_capabilities_format(uint32_t caps, char *buf, size_t n);
/* What targets of a provider kind can do unless configured otherwise. */
uint32_t mr_capabilities_default(mr_provider_kind_t kind);
/* The default prices of cache reads and writes, as factors of the input
 * price, by provider kind (docs/configuration.md). */
void mr_cache_price_factors(mr_provider_kind_t kind, double *read, double *write);

/* The kind spelled `name` into *out: 0, or -1 when it names none. */
int mr_provider_kind_parse(const char *name, mr_provider_kind_t *out);

const mr_provider_t *mr_config_find_provider(const mr_config_t *cfg, const char *name);
const mr_route_t *mr_config_find_route(const mr_config_t *cfg, const char *name);
const mr_policy_t *mr_config_find_policy(const mr_config_t *cfg, const char *name);

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

/* The built-in attribute names, NULL-terminated (for suggestions). */
const char *const *mr_attr_builtins(void);

/* Release a config and everything it owns; secrets are wiped first. NULL is
 * accepted. Also frees a partly built config (the loader's failure path). */
void mr_config_free(mr_config_t *cfg);

/* ---- scalar settings: one row per key ----------------------------------- */

typedef enum {
    MR_SETTING_UINT = 0, /* unsigned integer of `size` bytes (4 or 8) */
    MR_SETTING_NUMBER,   /* double */
    MR_SETTING_BOOL,     /* bool */
    MR_SETTING_STRING,   /* char *, ${VAR}-expanded, owned by the config */
    MR_SETTING_LISTEN,   /* "HOST:PORT" into listen_host and listen_port */
    MR_SETTING_POLICY,   /* a policy name into a const mr_policy_t * */
    MR_SETTING_ENUM,     /* one of `names` into an unsigned (its index) */
} mr_setting_type_t;

/* When a row is loaded, relative to the named objects (providers, routes,
 * policies, keys): a default_policy needs the policies, and the order of
 * the first error in a file with several is part of the behaviour. */
typedef enum {
    MR_STAGE_FIRST = 0,      /* before providers */
    MR_STAGE_AFTER_POLICIES, /* after policies, before keys */
    MR_STAGE_LAST,           /* after keys */
} mr_setting_stage_t;

#define MR_SETTING_REQUIRED 0x01      /* must be given when its section is */
#define MR_SETTING_NONEMPTY 0x02      /* a string that must not be "" (checked after its section) */
#define MR_SETTING_OFF_IS_NULL 0x04   /* a string where "off" and "" mean none (NULL) */
#define MR_SETTING_ZERO_AS 0x08       /* a given 0 is stored as zero_as (0 reads as default) */
#define MR_SETTING_QUIET 0x10         /* --check shows it elsewhere, not on a settings line */
#define MR_SETTING_URL_SECRET 0x20    /* a URL whose user info is shown as "***" */
#define MR_SETTING_OFF_WITH_KEYS 0x40 /* a bool whose default is false when keys are set */

/*
 * One scalar setting, redis-style: where it is in the file (a top-level key,
 * or a member of a fixed-shape section object such as "timeouts"), its
 * type, where it lives in mr_config_t, its bounds (UINT and NUMBER; every
 * bound and default is exactly representable in a double) and its default.
 * Rows are in load order and a section's rows are consecutive; the loader,
 * `--check` (config_print.h) and the docs check read the same table.
 */
typedef struct mr_setting {
    const char *section; /* NULL at the top level */
    const char *key;
    mr_setting_type_t type;
    size_t offset; /* of the value in mr_config_t */
    size_t size;   /* of the value */
    double min, max;
    double def;               /* UINT, NUMBER, BOOL (0 or 1), ENUM (an index of names) */
    const char *def_str;      /* STRING, LISTEN; NULL: no default (NULL value) */
    double zero_as;           /* with MR_SETTING_ZERO_AS */
    const char *const *names; /* ENUM: the spellings, NULL-terminated */
    unsigned flags;
    mr_setting_stage_t stage;
} mr_setting_t;

/* The table (static, program lifetime) and its row count. */
const mr_setting_t *mr_settings(size_t *n);

/* The JSON path of a row, "timeouts.connect_ms" or "max_attempts", in buf. */
const char *mr_setting_path(const mr_setting_t *s, char *buf, size_t n);

/*
 * The setting's value as the file would spell it (5000, 0.2, true,
 * "127.0.0.1:8080" without quotes, "[::1]:8080"), written to buf; with cfg
 * NULL, its default. A string without value is "off" for OFF_IS_NULL rows,
 * else "none". Returns buf (always terminated when n > 0).
 */
const char *mr_setting_format(const mr_setting_t *s, const mr_config_t *cfg, char *buf, size_t n);

#endif
