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
 */
#ifndef MERIDIAN_CONFIG_H
#define MERIDIAN_CONFIG_H

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

typedef struct mr_provider {
    char *name;              /* key in "providers" */
    mr_provider_kind_t kind;
    char *base_url;          /* expanded, no trailing '/' */
    char *api_key;           /* expanded secret; NULL when the provider takes none */
    char *vendor;            /* NULL-free: defaults to name */
    char *region;            /* "" when not given */
    char *jurisdiction;      /* "" when not given; upper-case ISO-3166 alpha-2 */
    char **models;           /* extra models advertised in /v1/models (may be 0) */
    size_t n_models;
    bool enabled;            /* false when its key variable is unset */
    char *key_env;           /* variable named by api_key ("${X}" -> "X"), else NULL */
    char *disabled_reason;   /* set when !enabled: "MISTRAL_API_KEY is not set" */
} mr_provider_t;

typedef struct mr_target {
    const mr_provider_t *provider; /* points into mr_config_t.providers */
    char *model;                   /* upstream model name sent to the provider */
} mr_target_t;

typedef struct mr_route {
    char *name;
    mr_target_t *targets;
    size_t n_targets;
    unsigned max_attempts; /* route override, else the global value */
} mr_route_t;

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

typedef struct mr_config {
    char *origin;       /* file name or "<string>", used in messages */
    char *listen_host;  /* "127.0.0.1", "::1", "0.0.0.0" ... */
    uint16_t listen_port;
    mr_provider_t *providers;
    size_t n_providers;
    mr_route_t *routes;
    size_t n_routes;
    unsigned max_attempts; /* default 3, 1..16 */
    mr_timeouts_t timeouts;
    mr_limits_t limits;
    char **warnings;       /* non-fatal findings (disabled providers), for the caller to log */
    size_t n_warnings;
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

/* The resolved routing table as printed by --check. */
void mr_config_print_table(const mr_config_t *cfg, FILE *out);

/* Expand ${VAR} and ${VAR:-default} in `in`. Returns 0 and a malloc'd string
 * in *out; when a referenced variable without default is unset, returns 1,
 * *out is NULL and *missing (malloc'd) names the first such variable.
 * Malformed syntax ("${", "${}") returns -1 with err set. "$$" is a literal '$'. */
int mr_env_expand(const char *in, char **out, char **missing, char *err, size_t errlen);

const char *mr_provider_kind_name(mr_provider_kind_t kind);

#endif
