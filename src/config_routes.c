/*
 * config_routes — the loaders of "providers" and "routes" (and the targets
 * inside routes): one focused function per object, called by the config
 * loader (config.h) in that order, since targets refer to providers.
 *
 * Secrets: an api_key value is never copied into a message, a warning or
 * anything but mr_provider_t.api_key; only the name of its variable is.
 */
#include "meridian/config_routes.h"

#include "meridian/config_check.h"
#include "meridian/env.h"
#include "meridian/glob.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* ------------------------------------------------------------------------ */
/* Shared by providers and targets                                           */
/* ------------------------------------------------------------------------ */

/*
 * "tags": {"license": "apache-2.0", ...}. Provider tag values are
 * ${VAR}-expanded like every provider string; target tags are not.
 */
static int load_tags(mr_loader_t *ld, json_t *obj, bool expand, mr_tag_t **tags, size_t *n)
{
    json_t *t = json_object_get(obj, "tags"), *v;
    const char *name;
    size_t saved, count;
    char q[MR_LOADER_QUOTE_MAX];

    if (!t)
        return 0;
    saved = mr_loader_key(ld, "tags");
    if (!json_is_object(t))
        return mr_loader_fail(ld,
                              "must be an object mapping tag names to strings, e.g. "
                              "{\"license\": \"apache-2.0\"} (got %s)",
                              mr_loader_type_name(t));
    count = json_object_size(t) - (json_object_get(t, "$comment") ? 1 : 0);
    if (count > MR_TAGS_MAX)
        return mr_loader_fail(ld, "at most %d tags (got %zu)", MR_TAGS_MAX, count);
    if (count && !(*tags = calloc(count, sizeof(**tags))))
        return mr_loader_fail(ld, "out of memory");
    json_object_foreach(t, name, v)
    {
        size_t s = mr_loader_key(ld, name);
        char *val = NULL;

        if (!strcmp(name, "$comment")) {
            if (!json_is_string(v))
                return mr_loader_fail(ld, "must be a string (got %s)", mr_loader_type_name(v));
            mr_loader_pop(ld, s);
            continue;
        }
        if (!mr_loader_valid_tag_name(name))
            return mr_loader_fail(ld,
                                  "invalid tag name: use 1 to %d letters, digits, '_', '-' or '.', "
                                  "starting with a letter or '_'",
                                  MR_NAME_MAX);
        if (mr_attr_is_builtin(name))
            return mr_loader_fail(ld, "%s is a built-in attribute and cannot be a tag",
                                  mr_loader_quote(q, sizeof(q), name));
        if (!json_is_string(v))
            return mr_loader_fail(ld, "must be a string (got %s)", mr_loader_type_name(v));
        if (expand) {
            if (mr_loader_expand(ld, json_string_value(v), &val) < 0)
                return -1;
        } else if (!(val = strdup(json_string_value(v)))) {
            return mr_loader_fail(ld, "out of memory");
        }
        (*tags)[*n].value = val;
        if (!((*tags)[*n].name = strdup(name)))
            return mr_loader_fail(ld, "out of memory");
        (*n)++;
        if (mr_loader_text(ld, val, false, MR_TAG_VALUE_MAX) < 0)
            return -1;
        mr_loader_pop(ld, s);
    }
    mr_loader_pop(ld, saved);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Providers                                                                 */
/* ------------------------------------------------------------------------ */

static bool valid_route_name(const char *s);

/* Validate and normalise base_url in place (trailing '/' stripped).
 * Credentials are looked for first, with or without a valid scheme: every
 * later message quotes the URL. */
static int check_base_url(mr_loader_t *ld, char *url)
{
    char q[MR_LOADER_QUOTE_MAX];
    const char *rest = strstr(url, "://");
    size_t n;

    rest = rest ? rest + 3 : url;
    if (memchr(rest, '@', strcspn(rest, "/")))
        return mr_loader_fail(ld, "must not contain credentials (user:password@); use api_key");
    if (!strncasecmp(url, "http://", 7))
        rest = url + 7;
    else if (!strncasecmp(url, "https://", 8))
        rest = url + 8;
    else
        return mr_loader_fail(ld, "must start with http:// or https:// (got %s)",
                              mr_loader_quote(q, sizeof(q), url));
    if (*rest == '\0' || *rest == '/')
        return mr_loader_fail(ld, "missing host (got %s)", mr_loader_quote(q, sizeof(q), url));
    for (const unsigned char *p = (const unsigned char *)url; *p; p++)
        if (*p <= ' ' || *p == 0x7f)
            return mr_loader_fail(ld, "must not contain spaces or control characters (got %s)",
                                  mr_loader_quote(q, sizeof(q), url));
    if (strpbrk(url, "?#"))
        return mr_loader_fail(
            ld, "must not contain a query or fragment (request paths are appended to it)");
    n = strlen(url);
    while (n > 0 && url[n - 1] == '/')
        url[--n] = '\0';
    return 0;
}

/* The first variable an api_key consults is the provider's key_env. */
static void note_first_var(const char *name, const char *value, void *ctx)
{
    char *first = ctx;

    (void)value;
    if (!*first)
        snprintf(first, MR_ENV_NAME_MAX + 1, "%s", name);
}

/* Disable `p` because of variable `var` (taken over): "VAR is not set". */
static int disable_provider(mr_loader_t *ld, mr_provider_t *p, char *var, const char *why)
{
    p->key_env = var;
    p->enabled = false;
    if (asprintf(&p->disabled_reason, "%s %s", var, why) < 0) {
        p->disabled_reason = NULL;
        return mr_loader_fail(ld, "out of memory");
    }
    return 0;
}

/*
 * api_key: a variable that is unset, empty or holds a control character
 * disables the provider (one warning) instead of failing the load; the same
 * in a literal is an error. The value itself is never part of a message.
 */
static int load_api_key(mr_loader_t *ld, json_t *obj, mr_provider_t *p)
{
    json_t *v = json_object_get(obj, "api_key");
    char why[256], first[MR_ENV_NAME_MAX + 1] = "", *val = NULL, *missing = NULL, *var;
    size_t saved;
    int rc;

    p->enabled = true;
    if (!v)
        return 0;
    saved = mr_loader_key(ld, "api_key");
    if (!json_is_string(v))
        return mr_loader_fail(ld, "must be a string (got %s)", mr_loader_type_name(v));
    rc = mr_env_expand_visit(json_string_value(v), &val, &missing, note_first_var, first, why,
                             sizeof(why));
    if (rc < 0)
        return mr_loader_fail(ld, "%s", why);
    if (rc == 1) {
        if (disable_provider(ld, p, missing, "is not set") < 0)
            return -1;
    } else if (*val == '\0' || mr_loader_has_control(val)) {
        bool empty = *val == '\0';
        explicit_bzero(val, strlen(val)); /* it may still be a secret */
        free(val);
        if (!*first)
            return mr_loader_fail(ld, empty ? "must not be empty (omit api_key when the provider "
                                              "takes no key)"
                                            : "must not contain control characters");
        if (!(var = strdup(first)))
            return mr_loader_fail(ld, "out of memory");
        if (disable_provider(ld, p, var, empty ? "is empty" : "contains a control character") < 0)
            return -1;
    } else {
        p->api_key = val;
        if (*first && !(p->key_env = strdup(first)))
            return mr_loader_fail(ld, "out of memory");
    }
    mr_loader_pop(ld, saved);
    if (!p->enabled)
        return mr_loader_warn(ld, "provider \"%s\" disabled: %s", p->name, p->disabled_reason);
    return 0;
}

/* Headers that are the gateway's business: credentials, hop-by-hop, framing. */
static const char *const never_forwarded[] = {"authorization",
                                              "proxy-authorization",
                                              "x-api-key",
                                              "api-key",
                                              "x-goog-api-key",
                                              "cookie",
                                              "host",
                                              "connection",
                                              "keep-alive",
                                              "te",
                                              "trailer",
                                              "transfer-encoding",
                                              "upgrade",
                                              "content-length",
                                              "content-type",
                                              "expect",
                                              "proxy-connection",
                                              NULL};

/* "capabilities": ["tools", "vision", ...], replacing *caps when given. */
static int load_capabilities(mr_loader_t *ld, json_t *obj, uint32_t *caps)
{
    json_t *arr = json_object_get(obj, "capabilities");
    size_t saved;
    uint32_t out = 0, bit;
    char all[160];

    if (!arr)
        return 0;
    saved = mr_loader_key(ld, "capabilities");
    if (!json_is_array(arr))
        return mr_loader_fail(ld, "must be an array of capability names (got %s)",
                              mr_loader_type_name(arr));
    for (size_t i = 0; i < json_array_size(arr); i++) {
        const char *name = json_string_value(json_array_get(arr, i));
        size_t si = mr_loader_index(ld, i);
        if (!name || mr_capability_parse(name, &bit) < 0)
            return mr_loader_fail(ld, "must be one of: %s",
                                  mr_capabilities_format(MR_CAP_ALL, all, sizeof(all)));
        out |= bit;
        mr_loader_pop(ld, si);
    }
    mr_loader_pop(ld, saved);
    *caps = out;
    return 0;
}

static int load_forward_headers(mr_loader_t *ld, json_t *obj, mr_provider_t *p)
{
    json_t *arr = json_object_get(obj, "forward_headers");
    size_t saved;

    if (!arr)
        return 0;
    saved = mr_loader_key(ld, "forward_headers");
    if (!json_is_array(arr))
        return mr_loader_fail(ld, "must be an array of header names (got %s)",
                              mr_loader_type_name(arr));
    if (json_array_size(arr) > MR_FORWARD_HEADERS_MAX)
        return mr_loader_fail(ld, "at most %d headers", MR_FORWARD_HEADERS_MAX);
    if (json_array_size(arr) &&
        !(p->forward_headers = calloc(json_array_size(arr), sizeof(char *))))
        return mr_loader_fail(ld, "out of memory");
    for (size_t i = 0; i < json_array_size(arr); i++) {
        json_t *h = json_array_get(arr, i);
        size_t si = mr_loader_index(ld, i);
        if (!json_is_string(h) || json_string_length(h) == 0 || json_string_length(h) > 64)
            return mr_loader_fail(ld, "must be a header name of 1 to 64 characters");
        char *name = strdup(json_string_value(h));
        if (!name)
            return mr_loader_fail(ld, "out of memory");
        p->forward_headers[i] = name;
        p->n_forward_headers = i + 1;
        for (char *c = name; *c; c++) {
            if (*c >= 'A' && *c <= 'Z')
                *c = (char)(*c - 'A' + 'a');
            else if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-' ||
                       *c == '_' || *c == '.'))
                return mr_loader_fail(ld, "\"%s\" is not a header name", json_string_value(h));
        }
        for (const char *const *n = never_forwarded; *n; n++)
            if (strcmp(name, *n) == 0)
                return mr_loader_fail(ld,
                                      "\"%s\" is never forwarded: credentials, hop-by-hop and "
                                      "framing headers belong to the gateway",
                                      name);
        mr_loader_pop(ld, si);
    }
    mr_loader_pop(ld, saved);
    return 0;
}

/* http2: HTTP/2 by ALPN on an https base_url. Cleartext HTTP/2 (prior
 * knowledge) is refused: libcurl 7.88 cannot reuse such a connection (the
 * second request on it fails), which would make every request a new one. */
static int load_http2(mr_loader_t *ld, json_t *obj, mr_provider_t *p)
{
    if (mr_loader_bool(ld, obj, "http2", &p->http2) < 0)
        return -1;
    if (p->http2 && strncasecmp(p->base_url, "https://", 8) != 0) {
        mr_loader_key(ld, "http2");
        return mr_loader_fail(ld, "needs an https base_url (HTTP/2 is negotiated with TLS ALPN; "
                                  "cleartext HTTP/2 is not supported)");
    }
    return 0;
}

static int load_kind(mr_loader_t *ld, json_t *obj, mr_provider_t *p)
{
    char *s = NULL;
    int rc = 0;

    if (mr_loader_expanded(ld, obj, "kind", true, &s) < 0)
        return -1;
    if (mr_provider_kind_parse(s, &p->kind) < 0) {
        char q[MR_LOADER_QUOTE_MAX];
        mr_loader_key(ld, "kind");
        rc = mr_loader_fail(ld, "must be one of openai, anthropic, gemini, azure (got %s)",
                            mr_loader_quote(q, sizeof(q), s));
    }
    free(s);
    return rc;
}

/* base_url (validated, normalised) and ca_file (must be readable now). */
static int load_endpoint(mr_loader_t *ld, json_t *obj, mr_provider_t *p)
{
    size_t saved;

    if (mr_loader_expanded(ld, obj, "base_url", true, &p->base_url) < 0)
        return -1;
    saved = mr_loader_key(ld, "base_url");
    if (check_base_url(ld, p->base_url) < 0)
        return -1;
    mr_loader_pop(ld, saved);
    if (mr_loader_expanded(ld, obj, "ca_file", false, &p->ca_file) < 0)
        return -1;
    if (p->ca_file && access(p->ca_file, R_OK) != 0) {
        mr_loader_key(ld, "ca_file");
        return mr_loader_fail(ld, "%s: %s", p->ca_file, strerror(errno));
    }
    return 0;
}

/* An optional expanded label (vendor, region) with a default. */
static int load_label(mr_loader_t *ld, json_t *obj, const char *key, const char *def,
                      bool allow_empty, char **out)
{
    if (mr_loader_expanded(ld, obj, key, false, out) < 0)
        return -1;
    if (!*out && !(*out = strdup(def)))
        return mr_loader_fail(ld, "out of memory");
    return mr_loader_label(ld, key, *out, allow_empty);
}

/* jurisdiction: "" or an ISO 3166-1 alpha-2 code, stored upper case. */
static int load_jurisdiction(mr_loader_t *ld, json_t *obj, mr_provider_t *p)
{
    size_t saved;

    if (mr_loader_expanded(ld, obj, "jurisdiction", false, &p->jurisdiction) < 0)
        return -1;
    if (!p->jurisdiction && !(p->jurisdiction = strdup("")))
        return mr_loader_fail(ld, "out of memory");
    if (!*p->jurisdiction)
        return 0;
    saved = mr_loader_key(ld, "jurisdiction");
    if (mr_loader_jurisdiction(ld, p->jurisdiction) < 0)
        return -1;
    mr_loader_pop(ld, saved);
    return 0;
}

/* models: extra names for /v1/models, each expanded. */
static int load_models(mr_loader_t *ld, json_t *obj, mr_provider_t *p)
{
    json_t *models = json_object_get(obj, "models");
    size_t saved, n;

    if (!models)
        return 0;
    saved = mr_loader_key(ld, "models");
    if (!json_is_array(models))
        return mr_loader_fail(ld, "must be an array of strings (got %s)",
                              mr_loader_type_name(models));
    n = json_array_size(models);
    if (n && !(p->models = calloc(n, sizeof(char *))))
        return mr_loader_fail(ld, "out of memory");
    for (size_t i = 0; i < n; i++) {
        json_t *m = json_array_get(models, i);
        size_t si = mr_loader_index(ld, i);

        if (!json_is_string(m))
            return mr_loader_fail(ld, "must be a string (got %s)", mr_loader_type_name(m));
        if (mr_loader_expand(ld, json_string_value(m), &p->models[i]) < 0)
            return -1;
        p->n_models = i + 1;
        if (mr_loader_text(ld, p->models[i], false, 0) < 0)
            return -1;
        mr_loader_pop(ld, si);
    }
    mr_loader_pop(ld, saved);
    return 0;
}

/* Dialect settings: the anthropic-version header / Azure api-version query
 * and Anthropic's max_tokens fallback; plus the process's transfer cap and
 * how long an idle connection may be reused. */
static int load_dialect(mr_loader_t *ld, json_t *obj, mr_provider_t *p)
{
    json_int_t max_tokens = 0, inflight = 0, keepalive = MR_KEEPALIVE_S;

    if (mr_loader_expanded(ld, obj, "api_version", false, &p->api_version) < 0 ||
        (p->api_version && mr_loader_label(ld, "api_version", p->api_version, false) < 0) ||
        mr_loader_int(ld, obj, "default_max_tokens", 1, 1000000, &max_tokens) < 0 ||
        mr_loader_int(ld, obj, "max_inflight", 1, 1000000, &inflight) < 0 ||
        mr_loader_int(ld, obj, "keepalive_s", 1, 3600, &keepalive) < 0)
        return -1;
    p->keepalive_s = (unsigned)keepalive;
    p->default_max_tokens = (long)max_tokens;
    p->max_inflight = (unsigned)inflight;
    return 0;
}

/* An array of 0 to max plain strings (not expanded), each 1 to MR_ROUTE_NAME_MAX
 * bytes of printable text without spaces: route aliases, anthropic-beta
 * patterns. *out is left NULL when the key is absent. */
static int load_names(mr_loader_t *ld, json_t *obj, const char *key, size_t max, char ***out,
                      size_t *n)
{
    json_t *arr = json_object_get(obj, key);
    size_t saved, len;

    if (!arr)
        return 0;
    saved = mr_loader_key(ld, key);
    if (!json_is_array(arr))
        return mr_loader_fail(ld, "must be an array of strings (got %s)", mr_loader_type_name(arr));
    if ((len = json_array_size(arr)) > max)
        return mr_loader_fail(ld, "at most %zu names (got %zu)", max, len);
    if (!(*out = calloc(len ? len : 1, sizeof(char *))))
        return mr_loader_fail(ld, "out of memory");
    for (size_t i = 0; i < len; i++) {
        const char *v = json_string_value(json_array_get(arr, i));
        size_t si = mr_loader_index(ld, i);
        if (!v || !valid_route_name(v))
            return mr_loader_fail(ld,
                                  "must be a string of 1 to %d bytes without spaces or control "
                                  "characters",
                                  MR_ROUTE_NAME_MAX);
        if (!((*out)[i] = strdup(v)))
            return mr_loader_fail(ld, "out of memory");
        *n = i + 1;
        mr_loader_pop(ld, si);
    }
    mr_loader_pop(ld, saved);
    return 0;
}

/* anthropic_beta: the anthropic-beta flags (patterns with `*`) a Messages
 * client's request may carry to it. Default: every flag for kind anthropic
 * (the API they belong to), none for the others (translated). */
static int load_anthropic_beta(mr_loader_t *ld, json_t *obj, mr_provider_t *p)
{
    if (load_names(ld, obj, "anthropic_beta", MR_ANTHROPIC_BETA_MAX, &p->anthropic_beta,
                   &p->n_anthropic_beta) < 0)
        return -1;
    if (p->anthropic_beta || p->kind != MR_KIND_ANTHROPIC)
        return 0;
    if (!(p->anthropic_beta = calloc(1, sizeof(char *))) || !(p->anthropic_beta[0] = strdup("*")))
        return mr_loader_fail(ld, "out of memory");
    p->n_anthropic_beta = 1;
    return 0;
}

/* responses_api: the provider serves the Responses API itself, at
 * {base_url}/responses (docs/providers.md); OpenAI-style kinds only. */
static int load_responses_api(mr_loader_t *ld, json_t *obj, mr_provider_t *p)
{
    if (mr_loader_bool(ld, obj, "responses_api", &p->responses_api) < 0)
        return -1;
    if (p->responses_api && p->kind != MR_KIND_OPENAI && p->kind != MR_KIND_AZURE) {
        mr_loader_key(ld, "responses_api");
        return mr_loader_fail(ld,
                              "only openai and azure providers serve the Responses API "
                              "(this one is %s)",
                              mr_provider_kind_name(p->kind));
    }
    return 0;
}

static int load_provider(mr_loader_t *ld, const char *name, json_t *obj, mr_provider_t *p)
{
    static const char *const keys[] = {"kind",          "base_url",
                                       "api_key",       "vendor",
                                       "region",        "jurisdiction",
                                       "models",        "retains_data",
                                       "zdr",           "http2",
                                       "tags",          "forward_headers",
                                       "api_version",   "default_max_tokens",
                                       "max_inflight",  "ca_file",
                                       "budget_usd",    "budget_period",
                                       "allow_direct",  "capabilities",
                                       "keepalive_s",   "anthropic_beta",
                                       "responses_api", NULL};

    p->allow_direct = true;
    if (mr_loader_name(ld, "provider", name, &p->name) < 0 || mr_loader_object(ld, obj) < 0)
        return -1;
    if (mr_loader_check_keys(ld, obj, keys) < 0 || load_kind(ld, obj, p) < 0 ||
        load_endpoint(ld, obj, p) < 0 ||
        load_label(ld, obj, "vendor", name, false, &p->vendor) < 0 ||
        load_label(ld, obj, "region", "", true, &p->region) < 0 ||
        load_jurisdiction(ld, obj, p) < 0 || load_models(ld, obj, p) < 0 ||
        load_forward_headers(ld, obj, p) < 0 || load_dialect(ld, obj, p) < 0 ||
        load_anthropic_beta(ld, obj, p) < 0 ||
        mr_loader_bool(ld, obj, "retains_data", &p->retains_data) < 0 ||
        mr_loader_bool(ld, obj, "zdr", &p->zdr) < 0 || load_http2(ld, obj, p) < 0 ||
        mr_loader_bool(ld, obj, "allow_direct", &p->allow_direct) < 0 ||
        load_responses_api(ld, obj, p) < 0 || load_tags(ld, obj, true, &p->tags, &p->n_tags) < 0 ||
        mr_config_check_budget(ld, obj, &p->budget_usd, &p->budget_period) < 0)
        return -1;
    p->capabilities = mr_capabilities_default(p->kind);
    if (load_capabilities(ld, obj, &p->capabilities) < 0)
        return -1;
    /* api_key last: it may add a warning, which should only happen for an
     * otherwise valid provider. */
    return load_api_key(ld, obj, p);
}

static int load_provider_at(mr_loader_t *ld, const char *name, json_t *v, size_t i)
{
    return load_provider(ld, name, v, &ld->cfg->providers[i]);
}

int mr_config_routes_load_providers(mr_loader_t *ld, json_t *root)
{
    mr_config_t *cfg = ld->cfg;
    return mr_loader_named(ld, root, "providers", "provider", "providers", 1, SIZE_MAX,
                           (void **)&cfg->providers, sizeof(*cfg->providers), &cfg->n_providers,
                           load_provider_at);
}

/* ------------------------------------------------------------------------ */
/* Routes and targets                                                        */
/* ------------------------------------------------------------------------ */

static bool valid_route_name(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > MR_ROUTE_NAME_MAX)
        return false;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p <= ' ' || *p == 0x7f)
            return false;
    return true;
}

/* cached_input_per_mtok and cache_write_per_mtok: given, else derived from
 * input_per_mtok by the provider kind's factors. */
static int load_cache_prices(mr_loader_t *ld, json_t *obj, mr_target_t *t)
{
    bool has_read = false, has_write = false;
    double read, write;

    mr_cache_price_factors(t->provider->kind, &read, &write);
    t->cached_input_per_mtok = t->input_per_mtok * read;
    t->cache_write_per_mtok = t->input_per_mtok * write;
    if (mr_loader_number(ld, obj, "cached_input_per_mtok", 0, MR_PRICE_MAX, false, &has_read,
                         &read) < 0 ||
        mr_loader_number(ld, obj, "cache_write_per_mtok", 0, MR_PRICE_MAX, false, &has_write,
                         &write) < 0)
        return -1;
    if ((has_read || has_write) && !t->has_input_price)
        return mr_loader_fail(ld, "%s needs input_per_mtok: the cache prices refine it",
                              has_read ? "cached_input_per_mtok" : "cache_write_per_mtok");
    if (has_read)
        t->cached_input_per_mtok = read;
    if (has_write)
        t->cache_write_per_mtok = write;
    return 0;
}

static int load_target(mr_loader_t *ld, json_t *obj, mr_target_t *t)
{
    static const char *const keys[] = {"provider",
                                       "model",
                                       "creator",
                                       "open_weights",
                                       "input_per_mtok",
                                       "output_per_mtok",
                                       "cached_input_per_mtok",
                                       "cache_write_per_mtok",
                                       "weight",
                                       "tags",
                                       "capabilities",
                                       NULL};
    json_int_t weight = 1;
    const char *prov, *model;
    size_t saved;

    if (!json_is_object(obj))
        return mr_loader_fail(
            ld,
            "must be an object like {\"provider\": \"NAME\", \"model\": \"MODEL\"} "
            "(got %s)",
            mr_loader_type_name(obj));
    if (mr_loader_check_keys(ld, obj, keys) < 0)
        return -1;
    if (mr_loader_plain(ld, obj, "provider", true, &prov) < 0)
        return -1;
    saved = mr_loader_key(ld, "provider");
    if (!*prov)
        return mr_loader_fail(ld, "must not be empty");
    if (mr_config_check_provider_ref(ld, prov, &t->provider) < 0)
        return -1;
    mr_loader_pop(ld, saved);

    if (mr_loader_plain(ld, obj, "model", true, &model) < 0)
        return -1;
    saved = mr_loader_key(ld, "model");
    if (mr_loader_text(ld, model, false, 0) < 0)
        return -1;
    if (!(t->model = strdup(model)))
        return mr_loader_fail(ld, "out of memory");
    mr_loader_pop(ld, saved);

    if (mr_loader_plain(ld, obj, "creator", false, &model) < 0)
        return -1;
    if (!(t->creator = strdup(model ? model : t->provider->vendor)))
        return mr_loader_fail(ld, "out of memory");
    if (mr_loader_label(ld, "creator", t->creator, false) < 0)
        return -1;
    if (mr_loader_bool(ld, obj, "open_weights", &t->open_weights) < 0 ||
        mr_loader_number(ld, obj, "input_per_mtok", 0, MR_PRICE_MAX, false, &t->has_input_price,
                         &t->input_per_mtok) < 0 ||
        mr_loader_number(ld, obj, "output_per_mtok", 0, MR_PRICE_MAX, false, &t->has_output_price,
                         &t->output_per_mtok) < 0 ||
        mr_loader_int(ld, obj, "weight", 1, 1000000, &weight) < 0 ||
        load_tags(ld, obj, false, &t->tags, &t->n_tags) < 0 || load_cache_prices(ld, obj, t) < 0)
        return -1;
    t->weight = (uint32_t)weight;
    t->capabilities = t->provider->capabilities;
    return load_capabilities(ld, obj, &t->capabilities);
}

static int load_route(mr_loader_t *ld, const char *name, json_t *obj, mr_route_t *r)
{
    static const char *const keys[] = {"targets", "max_attempts", "aliases", NULL};
    json_t *targets;
    json_int_t attempts = ld->cfg->max_attempts;
    size_t saved, n;

    if (!valid_route_name(name))
        return mr_loader_fail(ld,
                              "invalid route name: must be 1 to %d bytes without spaces or control "
                              "characters",
                              MR_ROUTE_NAME_MAX);
    if (!json_is_object(obj))
        return mr_loader_fail(ld, "must be an object with \"targets\" (got %s)",
                              mr_loader_type_name(obj));
    if (!(r->name = strdup(name)))
        return mr_loader_fail(ld, "out of memory");
    if (mr_loader_check_keys(ld, obj, keys) < 0)
        return -1;
    if (mr_loader_int(ld, obj, "max_attempts", 1, MR_ATTEMPTS_MAX, &attempts) < 0 ||
        load_names(ld, obj, "aliases", MR_ALIASES_MAX, &r->aliases, &r->n_aliases) < 0)
        return -1;
    r->max_attempts = (unsigned)attempts;

    targets = json_object_get(obj, "targets");
    saved = mr_loader_key(ld, "targets");
    if (!targets)
        return mr_loader_fail(ld, "missing (required)");
    if (!json_is_array(targets))
        return mr_loader_fail(ld, "must be an array of {\"provider\", \"model\"} objects (got %s)",
                              mr_loader_type_name(targets));
    n = json_array_size(targets);
    if (n == 0)
        return mr_loader_fail(ld, "must list at least one target");
    if (n > MR_MAX_CANDIDATES)
        return mr_loader_fail(ld, "must list at most %d targets (got %zu)", MR_MAX_CANDIDATES, n);
    if (!(r->targets = calloc(n, sizeof(*r->targets))))
        return mr_loader_fail(ld, "out of memory");
    for (size_t i = 0; i < n; i++) {
        size_t si = mr_loader_index(ld, i);
        r->n_targets = i + 1;
        if (load_target(ld, json_array_get(targets, i), &r->targets[i]) < 0)
            return -1;
        mr_loader_pop(ld, si);
    }
    mr_loader_pop(ld, saved);
    return 0;
}

static int load_route_at(mr_loader_t *ld, const char *name, json_t *v, size_t i)
{
    ld->cfg->routes[i].index = i;
    return load_route(ld, name, v, &ld->cfg->routes[i]);
}

/* Fails at routes.R.aliases[i] with the printf message. */
static int alias_fail(mr_loader_t *ld, const mr_route_t *r, size_t i, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int alias_fail(mr_loader_t *ld, const mr_route_t *r, size_t i, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    mr_loader_key(ld, "routes");
    mr_loader_key(ld, r->name);
    mr_loader_key(ld, "aliases");
    mr_loader_index(ld, i);
    return mr_loader_fail(ld, "%s", msg);
}

/* Alias `a` (routes[ri].aliases[ai]) against every earlier alias: no name
 * may be claimed by two of them. */
static int check_alias_pairs(mr_loader_t *ld, size_t ri, size_t ai)
{
    const mr_config_t *cfg = ld->cfg;
    const mr_route_t *r = &cfg->routes[ri];
    const char *a = r->aliases[ai];

    for (size_t rj = 0; rj <= ri; rj++) {
        const mr_route_t *o = &cfg->routes[rj];
        for (size_t aj = 0; aj < (rj == ri ? ai : o->n_aliases); aj++)
            if (mr_glob_overlap(a, o->aliases[aj]))
                return alias_fail(ld, r, ai,
                                  "alias \"%s\" of route \"%s\" and alias \"%s\" of route "
                                  "\"%s\" can match the same model name; make them distinct",
                                  a, r->name, o->aliases[aj], o->name);
    }
    return 0;
}

/* An alias must not claim a route's own name, nor the provider/model
 * names that address a provider directly. */
static int check_alias(mr_loader_t *ld, size_t ri, size_t ai)
{
    const mr_config_t *cfg = ld->cfg;
    const mr_route_t *r = &cfg->routes[ri];
    const char *a = r->aliases[ai];
    char direct[MR_NAME_MAX + 3];

    for (size_t k = 0; k < cfg->n_routes; k++)
        if (mr_glob_match(a, cfg->routes[k].name))
            return alias_fail(ld, r, ai,
                              "alias \"%s\" of route \"%s\" matches the name of route "
                              "\"%s\", which always wins: remove or narrow the alias",
                              a, r->name, cfg->routes[k].name);
    for (size_t k = 0; k < cfg->n_providers; k++) {
        snprintf(direct, sizeof(direct), "%s/*", cfg->providers[k].name);
        if (mr_glob_overlap(a, direct))
            return alias_fail(ld, r, ai,
                              "alias \"%s\" of route \"%s\" can match \"%s/MODEL\", which "
                              "addresses provider \"%s\" directly",
                              a, r->name, cfg->providers[k].name, cfg->providers[k].name);
    }
    return check_alias_pairs(ld, ri, ai);
}

int mr_config_routes_load(mr_loader_t *ld, json_t *root)
{
    mr_config_t *cfg = ld->cfg;

    if (mr_loader_named(ld, root, "routes", "route", "routes", 0, SIZE_MAX, (void **)&cfg->routes,
                        sizeof(*cfg->routes), &cfg->n_routes, load_route_at) < 0)
        return -1;
    for (size_t i = 0; i < cfg->n_routes; i++)
        for (size_t a = 0; a < cfg->routes[i].n_aliases; a++)
            if (check_alias(ld, i, a) < 0)
                return -1;
    return 0;
}
