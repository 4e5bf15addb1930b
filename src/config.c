/*
 * config — loading, validating and resolving meridian.json.
 *
 * The loader walks the JSON document once, validating as it goes and
 * building an mr_config_t. Every object has a fixed set of keys; anything
 * else is an error. Every error is one line, "<origin>: <json.path>: <why>",
 * where the path is kept in a small stack inside the loader while it
 * descends. Partial state is owned by the config under construction, so any
 * failure is just mr_config_free() of what has been built so far.
 *
 * Secrets: api_key values are never copied into a message, a warning or the
 * printed table; only the names of the variables they came from are.
 */
#include "meridian/config.h"
#include "meridian/env.h"
#include "meridian/policy.h" /* static filters for the min_vendors check */
#include "meridian/sha256.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* Defaults and bounds; docs/configuration.md documents each one. */
#define DEF_LISTEN_HOST "127.0.0.1"
#define DEF_LISTEN_PORT 8080
#define DEF_MAX_ATTEMPTS 3

#define KIB 1024LL
#define MIB (1024LL * 1024LL)
#define GIB (1024LL * 1024LL * 1024LL)

#define MAX_CONFIG_FILE_BYTES (16 * MIB) /* refuse to read anything bigger */

#define PATH_BUF 512

/* ------------------------------------------------------------------------ */
/* Small helpers                                                             */
/* ------------------------------------------------------------------------ */

static bool has_control(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return true;
    return false;
}

/*
 * Quote `s` for a one-line message: double quotes, backslash escapes for '"'
 * and '\', \xNN for control bytes, at most ~80 input bytes then "...".
 * Returns buf so it can be used directly as a printf argument.
 */
static const char *quote(char *buf, size_t n, const char *s)
{
    size_t o = 0, i = 0;

    if (n < 8) {
        if (n)
            buf[0] = '\0';
        return buf;
    }
    buf[o++] = '"';
    for (; s[i] && i < 80; i++) {
        unsigned char c = (unsigned char)s[i];
        if (o + 6 >= n)
            break;
        if (c == '"' || c == '\\') {
            buf[o++] = '\\';
            buf[o++] = (char)c;
        } else if (c < 0x20 || c == 0x7f) {
            o += (size_t)snprintf(buf + o, n - o, "\\x%02x", c);
        } else {
            buf[o++] = (char)c;
        }
    }
    if (s[i] && o + 5 < n) {
        /* do not leave half a UTF-8 sequence before the ellipsis */
        while (o > 1 && ((unsigned char)buf[o - 1] & 0xC0) == 0x80)
            o--;
        if (o > 1 && ((unsigned char)buf[o - 1] & 0xC0) == 0xC0)
            o--;
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o++] = '"';
    buf[o] = '\0';
    return buf;
}

/* Case-insensitive Levenshtein distance, SIZE_MAX for long strings. */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    size_t prev[65], cur[65];

    if (la > 64 || lb > 64)
        return SIZE_MAX;
    for (size_t j = 0; j <= lb; j++)
        prev[j] = j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            int ca = a[i - 1], cb = b[j - 1];
            if (ca >= 'A' && ca <= 'Z')
                ca += 'a' - 'A';
            if (cb >= 'A' && cb <= 'Z')
                cb += 'a' - 'A';
            size_t best = prev[j - 1] + (ca != cb);
            if (prev[j] + 1 < best)
                best = prev[j] + 1;
            if (cur[j - 1] + 1 < best)
                best = cur[j - 1] + 1;
            cur[j] = best;
        }
        memcpy(prev, cur, (lb + 1) * sizeof(size_t));
    }
    return prev[lb];
}

/* "Did you mean" accumulator: feed candidates, keep the closest plausible. */
typedef struct suggest {
    const char *word;
    const char *best;
    size_t best_d;
} suggest_t;

static void suggest_try(suggest_t *s, const char *cand)
{
    size_t lw = strlen(s->word), lc = strlen(cand);
    size_t longest = lw > lc ? lw : lc, shortest = lw < lc ? lw : lc;
    size_t limit = longest <= 4 ? 1 : longest <= 8 ? 2 : 3;
    size_t d = edit_distance(s->word, cand);
    /* "max_body" for "max_body_bytes": a truncated key is a plausible typo */
    bool prefix = shortest >= 3 && !strncasecmp(s->word, cand, shortest);

    if (d == SIZE_MAX || (!prefix && (d > limit || d >= shortest)))
        return;
    if (d < s->best_d) {
        s->best = cand;
        s->best_d = d;
    }
}

/* " (did you mean \"x\"?)" or "" */
static const char *suggest_text(const suggest_t *s, char *buf, size_t n)
{
    char q[160];

    if (!s->best) {
        buf[0] = '\0';
        return buf;
    }
    snprintf(buf, n, " (did you mean %s?)", quote(q, sizeof(q), s->best));
    return buf;
}

static const char *json_type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "object";
    case JSON_ARRAY:
        return "array";
    case JSON_STRING:
        return "string";
    case JSON_INTEGER:
        return "integer";
    case JSON_REAL:
        return "number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "boolean";
    case JSON_NULL:
        return "null";
    }
    return "value";
}

static bool is_name_start(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

static bool is_name_char(char c)
{
    return is_name_start(c) || (c >= '0' && c <= '9');
}

/* ------------------------------------------------------------------------ */
/* listen address                                                            */
/* ------------------------------------------------------------------------ */

/* Parse "HOST:PORT" / "[V6]:PORT"; *host is malloc'd, without brackets. */
static int parse_listen(const char *s, char **host, uint16_t *port, char *why, size_t whylen)
{
    const char *h, *he, *p;
    char hbuf[INET6_ADDRSTRLEN + 1];
    unsigned char addr[sizeof(struct in6_addr)];
    bool v6 = false;

    if (s[0] == '[') {
        h = s + 1;
        he = strchr(h, ']');
        if (!he) {
            snprintf(why, whylen, "missing \"]\" after the IPv6 address");
            return -1;
        }
        if (he[1] != ':') {
            snprintf(why, whylen, "missing \":PORT\" after \"]\"");
            return -1;
        }
        p = he + 2;
        v6 = true;
    } else {
        he = strrchr(s, ':');
        if (!he) {
            snprintf(why, whylen, "missing \":PORT\" (expected HOST:PORT, e.g. 127.0.0.1:8080)");
            return -1;
        }
        h = s;
        p = he + 1;
        if (memchr(h, ':', (size_t)(he - h))) {
            snprintf(why, whylen, "IPv6 addresses must be bracketed, e.g. [::1]:8080");
            return -1;
        }
    }
    if (he == h) {
        snprintf(why, whylen, "missing host (use 0.0.0.0 or [::] to listen on all interfaces)");
        return -1;
    }
    if ((size_t)(he - h) >= sizeof(hbuf)) {
        snprintf(why, whylen, "host is not an IP address");
        return -1;
    }
    memcpy(hbuf, h, (size_t)(he - h));
    hbuf[he - h] = '\0';
    if (inet_pton(v6 ? AF_INET6 : AF_INET, hbuf, addr) != 1) {
        snprintf(why, whylen,
                 v6 ? "host is not a valid IPv6 address"
                    : "host must be an IPv4 address or a bracketed IPv6 address "
                      "(host names are not resolved)");
        return -1;
    }

    size_t nd = strspn(p, "0123456789");
    unsigned long v = 0;
    /* digits only (strtoul alone would take "+80" or " 80"); saturates high */
    if (nd == 0 || p[nd] != '\0' || (v = strtoul(p, NULL, 10)) > 65535) {
        snprintf(why, whylen, "port must be a number from 0 to 65535");
        return -1;
    }
    if (!(*host = strdup(hbuf))) {
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    *port = (uint16_t)v;
    return 0;
}

int mr_config_set_listen(mr_config_t *cfg, const char *hostport, char *err, size_t errlen)
{
    char why[160], q[200];
    char *host = NULL;
    uint16_t port = 0;

    if (parse_listen(hostport, &host, &port, why, sizeof(why)) < 0) {
        if (err && errlen)
            snprintf(err, errlen, "invalid listen address %s: %s", quote(q, sizeof(q), hostport),
                     why);
        return -1;
    }
    free(cfg->listen_host);
    cfg->listen_host = host;
    cfg->listen_port = port;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Loader                                                                    */
/* ------------------------------------------------------------------------ */

typedef struct loader {
    const char *origin;
    char *err;
    size_t errlen;
    char path[PATH_BUF]; /* "routes.chat.targets[1].provider" */
    size_t plen;
    mr_config_t *cfg;
} loader_t;

static int fail(loader_t *ld, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(loader_t *ld, const char *fmt, ...)
{
    char msg[768];
    va_list ap;

    if (!ld->err || !ld->errlen)
        return -1;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (ld->plen)
        snprintf(ld->err, ld->errlen, "%s: %s: %s", ld->origin, ld->path, msg);
    else
        snprintf(ld->err, ld->errlen, "%s: %s", ld->origin, msg);
    return -1;
}

/* Keys that would make a dotted path ambiguous are written ["like.this"]. */
static bool key_needs_brackets(const char *k)
{
    if (!*k)
        return true;
    for (const unsigned char *p = (const unsigned char *)k; *p; p++)
        if (*p <= ' ' || *p == 0x7f || *p == '.' || *p == '[' || *p == ']' || *p == '"' ||
            *p == '\\')
            return true;
    return false;
}

static void path_append(loader_t *ld, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void path_append(loader_t *ld, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (ld->plen >= sizeof(ld->path) - 1)
        return;
    va_start(ap, fmt);
    n = vsnprintf(ld->path + ld->plen, sizeof(ld->path) - ld->plen, fmt, ap);
    va_end(ap);
    if (n < 0)
        ld->path[ld->plen] = '\0';
    else if ((size_t)n >= sizeof(ld->path) - ld->plen)
        ld->plen = sizeof(ld->path) - 1;
    else
        ld->plen += (size_t)n;
}

/* Descend into member `key`; returns the length to restore with path_pop. */
static size_t path_key(loader_t *ld, const char *key)
{
    size_t saved = ld->plen;
    char q[200];

    if (key_needs_brackets(key))
        path_append(ld, "[%s]", quote(q, sizeof(q), key));
    else
        path_append(ld, "%s%s", ld->plen ? "." : "", key);
    return saved;
}

static size_t path_index(loader_t *ld, size_t i)
{
    size_t saved = ld->plen;
    path_append(ld, "[%zu]", i);
    return saved;
}

static void path_pop(loader_t *ld, size_t saved)
{
    ld->plen = saved;
    ld->path[saved] = '\0';
}

static int add_warning(loader_t *ld, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int add_warning(loader_t *ld, const char *fmt, ...)
{
    mr_config_t *cfg = ld->cfg;
    char buf[512];
    va_list ap;
    char **w;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    w = realloc(cfg->warnings, (cfg->n_warnings + 1) * sizeof(*w));
    if (!w)
        return fail(ld, "out of memory");
    cfg->warnings = w;
    if (!(w[cfg->n_warnings] = strdup(buf)))
        return fail(ld, "out of memory");
    cfg->n_warnings++;
    return 0;
}

/* Reject every key of `obj` not in `known` (NULL-terminated). "$comment" is
 * accepted in every object and must be a string. */
static int check_keys(loader_t *ld, json_t *obj, const char *const *known)
{
    const char *key;
    json_t *v;

    json_object_foreach(obj, key, v)
    {
        bool ok = false;
        for (const char *const *k = known; *k; k++)
            if (!strcmp(*k, key))
                ok = true;
        if (ok)
            continue;
        size_t saved = path_key(ld, key);
        if (!strcmp(key, "$comment")) {
            if (!json_is_string(v))
                return fail(ld, "must be a string (got %s)", json_type_name(v));
            path_pop(ld, saved);
            continue;
        }
        suggest_t s = {.word = key, .best_d = SIZE_MAX};
        char hint[200];
        for (const char *const *k = known; *k; k++)
            suggest_try(&s, *k);
        return fail(ld, "unknown key%s", suggest_text(&s, hint, sizeof(hint)));
    }
    return 0;
}

/* Look up an optional integer member; *out keeps its default when absent. */
static int get_int(loader_t *ld, json_t *obj, const char *key, json_int_t min, json_int_t max,
                   json_int_t *out)
{
    json_t *v = json_object_get(obj, key);
    size_t saved;

    if (!v)
        return 0;
    saved = path_key(ld, key);
    if (json_is_real(v))
        return fail(ld, "must be an integer from %lld to %lld (got %g)", (long long)min,
                    (long long)max, json_real_value(v));
    if (!json_is_integer(v))
        return fail(ld, "must be an integer from %lld to %lld (got %s)", (long long)min,
                    (long long)max, json_type_name(v));
    if (json_integer_value(v) < min || json_integer_value(v) > max)
        return fail(ld, "must be an integer from %lld to %lld (got %lld)", (long long)min,
                    (long long)max, (long long)json_integer_value(v));
    *out = json_integer_value(v);
    path_pop(ld, saved);
    return 0;
}

/*
 * Fetch a string member and ${VAR}-expand it. An unset variable is an error
 * here (api_key has its own rules). *out is NULL when absent and not required.
 * On failure the path is left pointing at `key` for the message.
 */
static int get_expanded(loader_t *ld, json_t *obj, const char *key, bool required, char **out)
{
    json_t *v = json_object_get(obj, key);
    char why[256], *missing = NULL;
    size_t saved;
    int rc;

    *out = NULL;
    if (!v) {
        if (!required)
            return 0;
        saved = path_key(ld, key);
        return fail(ld, "missing (required)");
    }
    saved = path_key(ld, key);
    if (!json_is_string(v))
        return fail(ld, "must be a string (got %s)", json_type_name(v));
    rc = mr_env_expand(json_string_value(v), out, &missing, why, sizeof(why));
    if (rc < 0)
        return fail(ld, "%s", why);
    if (rc == 1) {
        rc = fail(ld, "${%s} is not set (write ${%s:-default} to give a fallback)", missing,
                  missing);
        free(missing);
        return rc;
    }
    path_pop(ld, saved);
    return 0;
}

/* Fetch a required or optional plain (unexpanded) string member. */
static int get_plain(loader_t *ld, json_t *obj, const char *key, bool required, const char **out)
{
    json_t *v = json_object_get(obj, key);
    size_t saved = path_key(ld, key);

    *out = NULL;
    if (!v) {
        if (required)
            return fail(ld, "missing (required)");
        path_pop(ld, saved);
        return 0;
    }
    if (!json_is_string(v))
        return fail(ld, "must be a string (got %s)", json_type_name(v));
    *out = json_string_value(v);
    path_pop(ld, saved);
    return 0;
}

/* Optional boolean member; *out keeps its default when absent. */
static int get_bool(loader_t *ld, json_t *obj, const char *key, bool *out)
{
    json_t *v = json_object_get(obj, key);
    size_t saved;

    if (!v)
        return 0;
    saved = path_key(ld, key);
    if (!json_is_boolean(v))
        return fail(ld, "must be true or false (got %s)", json_type_name(v));
    *out = json_is_true(v);
    path_pop(ld, saved);
    return 0;
}

/*
 * Optional number member (integer or real) within [min, max], or (min, max]
 * when min_exclusive. *present says whether it was given.
 */
static int get_number(loader_t *ld, json_t *obj, const char *key, double min, double max,
                      bool min_exclusive, bool *present, double *out)
{
    json_t *v = json_object_get(obj, key);
    size_t saved;
    double d;

    if (present)
        *present = false;
    if (!v)
        return 0;
    saved = path_key(ld, key);
    if (!json_is_number(v))
        return fail(ld, "must be a number %s %g %s %g (got %s)",
                    min_exclusive ? "greater than" : "from", min,
                    min_exclusive ? "and at most" : "to", max, json_type_name(v));
    d = json_number_value(v);
    if (!(min_exclusive ? d > min : d >= min) || !(d <= max))
        return fail(ld, "must be a number %s %g %s %g (got %g)",
                    min_exclusive ? "greater than" : "from", min,
                    min_exclusive ? "and at most" : "to", max, d);
    *out = d;
    if (present)
        *present = true;
    path_pop(ld, saved);
    return 0;
}

/* Tag and policy names: 1..64 of [A-Za-z0-9_.-], starting with [A-Za-z0-9_]. */
static bool valid_name(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > MR_NAME_MAX || !is_name_char(s[0]))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!is_name_char(s[i]) && s[i] != '-' && s[i] != '.')
            return false;
    return true;
}

/*
 * "tags": {"license": "apache-2.0", ...}. Provider tag values are
 * ${VAR}-expanded like every provider string; target tags are not.
 */
static int load_tags(loader_t *ld, json_t *obj, bool expand, mr_tag_t **tags, size_t *n)
{
    json_t *t = json_object_get(obj, "tags"), *v;
    const char *name;
    size_t saved, count;
    char q[200];

    if (!t)
        return 0;
    saved = path_key(ld, "tags");
    if (!json_is_object(t))
        return fail(ld,
                    "must be an object mapping tag names to strings, e.g. "
                    "{\"license\": \"apache-2.0\"} (got %s)",
                    json_type_name(t));
    count = json_object_size(t) - (json_object_get(t, "$comment") ? 1 : 0);
    if (count > MR_TAGS_MAX)
        return fail(ld, "at most %d tags (got %zu)", MR_TAGS_MAX, count);
    if (count && !(*tags = calloc(count, sizeof(**tags))))
        return fail(ld, "out of memory");
    json_object_foreach(t, name, v)
    {
        size_t s = path_key(ld, name);
        char *val = NULL;

        if (!strcmp(name, "$comment")) {
            if (!json_is_string(v))
                return fail(ld, "must be a string (got %s)", json_type_name(v));
            path_pop(ld, s);
            continue;
        }
        if (!valid_name(name) || !is_name_start(name[0]))
            return fail(ld,
                        "invalid tag name: use 1 to %d letters, digits, '_', '-' or '.', "
                        "starting with a letter or '_'",
                        MR_NAME_MAX);
        if (mr_attr_is_builtin(name))
            return fail(ld, "%s is a built-in attribute and cannot be a tag",
                        quote(q, sizeof(q), name));
        if (!json_is_string(v))
            return fail(ld, "must be a string (got %s)", json_type_name(v));
        if (expand) {
            char why[256], *missing = NULL;
            int rc = mr_env_expand(json_string_value(v), &val, &missing, why, sizeof(why));
            if (rc < 0)
                return fail(ld, "%s", why);
            if (rc == 1) {
                fail(ld, "${%s} is not set (write ${%s:-default} to give a fallback)", missing,
                     missing);
                free(missing);
                return -1;
            }
        } else if (!(val = strdup(json_string_value(v)))) {
            return fail(ld, "out of memory");
        }
        (*tags)[*n].value = val;
        if (!((*tags)[*n].name = strdup(name)))
            return fail(ld, "out of memory");
        (*n)++;
        if (!*val)
            return fail(ld, "must not be empty");
        if (strlen(val) > MR_TAG_VALUE_MAX)
            return fail(ld, "must be at most %d bytes", MR_TAG_VALUE_MAX);
        if (has_control(val))
            return fail(ld, "must not contain control characters");
        path_pop(ld, s);
    }
    path_pop(ld, saved);
    return 0;
}

static bool valid_provider_name(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > MR_NAME_MAX)
        return false;
    if (!(is_name_char(s[0])))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!is_name_char(s[i]) && s[i] != '-' && s[i] != '.')
            return false;
    return true;
}

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

/* Validate and normalise base_url in place (trailing '/' stripped). */
static int check_base_url(loader_t *ld, char *url)
{
    char q[200];
    const char *rest;
    size_t n;

    if (!strncasecmp(url, "http://", 7))
        rest = url + 7;
    else if (!strncasecmp(url, "https://", 8))
        rest = url + 8;
    else
        return fail(ld, "must start with http:// or https:// (got %s)", quote(q, sizeof(q), url));
    if (*rest == '\0' || *rest == '/')
        return fail(ld, "missing host (got %s)", quote(q, sizeof(q), url));
    for (const unsigned char *p = (const unsigned char *)url; *p; p++)
        if (*p <= ' ' || *p == 0x7f)
            return fail(ld, "must not contain spaces or control characters (got %s)",
                        quote(q, sizeof(q), url));
    if (strpbrk(url, "?#"))
        return fail(ld, "must not contain a query or fragment (request paths are appended to it)");
    n = strcspn(rest, "/");
    if (memchr(rest, '@', n))
        return fail(ld, "must not contain credentials (user:password@); use api_key");
    n = strlen(url);
    while (n > 0 && url[n - 1] == '/')
        url[--n] = '\0';
    return 0;
}

/* A short label (vendor, region): no control characters, bounded. */
static int check_label(loader_t *ld, const char *key, const char *v, bool allow_empty)
{
    size_t saved = path_key(ld, key);

    if (!allow_empty && !*v)
        return fail(ld, "must not be empty");
    if (strlen(v) > MR_LABEL_MAX)
        return fail(ld, "must be at most %d bytes", MR_LABEL_MAX);
    if (has_control(v))
        return fail(ld, "must not contain control characters");
    path_pop(ld, saved);
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
static int disable_provider(loader_t *ld, mr_provider_t *p, char *var, const char *why)
{
    p->key_env = var;
    p->enabled = false;
    if (asprintf(&p->disabled_reason, "%s %s", var, why) < 0) {
        p->disabled_reason = NULL;
        return fail(ld, "out of memory");
    }
    return 0;
}

/*
 * api_key: a variable that is unset, empty or holds a control character
 * disables the provider (one warning) instead of failing the load; the same
 * in a literal is an error. The value itself is never part of a message.
 */
static int load_api_key(loader_t *ld, json_t *obj, mr_provider_t *p)
{
    json_t *v = json_object_get(obj, "api_key");
    char why[256], first[MR_ENV_NAME_MAX + 1] = "", *val = NULL, *missing = NULL, *var;
    size_t saved;
    int rc;

    p->enabled = true;
    if (!v)
        return 0;
    saved = path_key(ld, "api_key");
    if (!json_is_string(v))
        return fail(ld, "must be a string (got %s)", json_type_name(v));
    rc = mr_env_expand_visit(json_string_value(v), &val, &missing, note_first_var, first, why,
                             sizeof(why));
    if (rc < 0)
        return fail(ld, "%s", why);
    if (rc == 1) {
        if (disable_provider(ld, p, missing, "is not set") < 0)
            return -1;
    } else if (*val == '\0' || has_control(val)) {
        bool empty = *val == '\0';
        explicit_bzero(val, strlen(val)); /* it may still be a secret */
        free(val);
        if (!*first)
            return fail(ld, empty ? "must not be empty (omit api_key when the provider "
                                    "takes no key)"
                                  : "must not contain control characters");
        if (!(var = strdup(first)))
            return fail(ld, "out of memory");
        if (disable_provider(ld, p, var, empty ? "is empty" : "contains a control character") < 0)
            return -1;
    } else {
        p->api_key = val;
        if (*first && !(p->key_env = strdup(first)))
            return fail(ld, "out of memory");
    }
    path_pop(ld, saved);
    if (!p->enabled)
        return add_warning(ld, "provider \"%s\" disabled: %s", p->name, p->disabled_reason);
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

static int load_forward_headers(loader_t *ld, json_t *obj, mr_provider_t *p)
{
    json_t *arr = json_object_get(obj, "forward_headers");
    size_t saved;

    if (!arr)
        return 0;
    saved = path_key(ld, "forward_headers");
    if (!json_is_array(arr))
        return fail(ld, "must be an array of header names (got %s)", json_type_name(arr));
    if (json_array_size(arr) > 32)
        return fail(ld, "at most 32 headers");
    if (json_array_size(arr) &&
        !(p->forward_headers = calloc(json_array_size(arr), sizeof(char *))))
        return fail(ld, "out of memory");
    for (size_t i = 0; i < json_array_size(arr); i++) {
        json_t *h = json_array_get(arr, i);
        size_t si = path_index(ld, i);
        if (!json_is_string(h) || json_string_length(h) == 0 || json_string_length(h) > 64)
            return fail(ld, "must be a header name of 1 to 64 characters");
        char *name = strdup(json_string_value(h));
        if (!name)
            return fail(ld, "out of memory");
        p->forward_headers[i] = name;
        p->n_forward_headers = i + 1;
        for (char *c = name; *c; c++) {
            if (*c >= 'A' && *c <= 'Z')
                *c = (char)(*c - 'A' + 'a');
            else if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-' ||
                       *c == '_' || *c == '.'))
                return fail(ld, "\"%s\" is not a header name", json_string_value(h));
        }
        for (const char *const *n = never_forwarded; *n; n++)
            if (strcmp(name, *n) == 0)
                return fail(ld,
                            "\"%s\" is never forwarded: credentials, hop-by-hop and "
                            "framing headers belong to the gateway",
                            name);
        path_pop(ld, si);
    }
    path_pop(ld, saved);
    return 0;
}

/* http2: HTTP/2 by ALPN on an https base_url. Cleartext HTTP/2 (prior
 * knowledge) is refused: libcurl 7.88 cannot reuse such a connection (the
 * second request on it fails), which would make every request a new one. */
static int load_http2(loader_t *ld, json_t *obj, mr_provider_t *p)
{
    if (get_bool(ld, obj, "http2", &p->http2) < 0)
        return -1;
    if (p->http2 && strncasecmp(p->base_url, "https://", 8) != 0) {
        path_key(ld, "http2");
        return fail(ld, "needs an https base_url (HTTP/2 is negotiated with TLS ALPN; "
                        "cleartext HTTP/2 is not supported)");
    }
    return 0;
}

static int load_provider(loader_t *ld, const char *name, json_t *obj, mr_provider_t *p)
{
    static const char *const keys[] = {
        "kind",        "base_url",           "api_key",      "vendor",  "region", "jurisdiction",
        "models",      "retains_data",       "zdr",          "http2",   "tags",   "forward_headers",
        "api_version", "default_max_tokens", "max_inflight", "ca_file", NULL};
    char q[200];
    char *s = NULL;
    json_t *models;
    size_t saved;

    if (!valid_provider_name(name))
        return fail(ld,
                    "invalid provider name: use 1 to %d letters, digits, '_', '-' or '.', "
                    "starting with a letter, digit or '_'",
                    MR_NAME_MAX);
    if (!json_is_object(obj))
        return fail(ld, "must be an object (got %s)", json_type_name(obj));
    if (!(p->name = strdup(name)))
        return fail(ld, "out of memory");
    if (check_keys(ld, obj, keys) < 0)
        return -1;

    /* kind */
    if (get_expanded(ld, obj, "kind", true, &s) < 0)
        return -1;
    if (mr_provider_kind_parse(s, &p->kind) < 0) {
        saved = path_key(ld, "kind");
        fail(ld, "must be one of openai, anthropic, gemini, azure (got %s)",
             quote(q, sizeof(q), s));
        free(s);
        return -1;
    }
    free(s);

    /* base_url */
    if (get_expanded(ld, obj, "base_url", true, &p->base_url) < 0)
        return -1;
    saved = path_key(ld, "base_url");
    if (check_base_url(ld, p->base_url) < 0)
        return -1;
    path_pop(ld, saved);
    if (get_expanded(ld, obj, "ca_file", false, &p->ca_file) < 0)
        return -1;
    if (p->ca_file && access(p->ca_file, R_OK) != 0) {
        saved = path_key(ld, "ca_file");
        return fail(ld, "%s: %s", p->ca_file, strerror(errno));
    }

    /* vendor, region, jurisdiction */
    if (get_expanded(ld, obj, "vendor", false, &p->vendor) < 0)
        return -1;
    if (!p->vendor && !(p->vendor = strdup(name)))
        return fail(ld, "out of memory");
    if (check_label(ld, "vendor", p->vendor, false) < 0)
        return -1;
    if (get_expanded(ld, obj, "region", false, &p->region) < 0)
        return -1;
    if (!p->region && !(p->region = strdup("")))
        return fail(ld, "out of memory");
    if (check_label(ld, "region", p->region, true) < 0)
        return -1;
    if (get_expanded(ld, obj, "jurisdiction", false, &p->jurisdiction) < 0)
        return -1;
    if (!p->jurisdiction && !(p->jurisdiction = strdup("")))
        return fail(ld, "out of memory");
    if (*p->jurisdiction) {
        char *j = p->jurisdiction;
        bool ok = strlen(j) == 2;
        for (size_t i = 0; ok && i < 2; i++)
            ok = (j[i] >= 'A' && j[i] <= 'Z') || (j[i] >= 'a' && j[i] <= 'z');
        if (!ok) {
            saved = path_key(ld, "jurisdiction");
            return fail(ld, "must be a two-letter ISO 3166-1 country code such as \"FR\" (got %s)",
                        quote(q, sizeof(q), j));
        }
        for (size_t i = 0; i < 2; i++)
            if (j[i] >= 'a' && j[i] <= 'z')
                j[i] = (char)(j[i] - 'a' + 'A');
    }

    /* models */
    models = json_object_get(obj, "models");
    if (models) {
        saved = path_key(ld, "models");
        if (!json_is_array(models))
            return fail(ld, "must be an array of strings (got %s)", json_type_name(models));
        if (json_array_size(models) &&
            !(p->models = calloc(json_array_size(models), sizeof(char *))))
            return fail(ld, "out of memory");
        for (size_t i = 0; i < json_array_size(models); i++) {
            json_t *m = json_array_get(models, i);
            char why[256], *missing = NULL;
            size_t si = path_index(ld, i);
            int rc;

            if (!json_is_string(m))
                return fail(ld, "must be a string (got %s)", json_type_name(m));
            rc = mr_env_expand(json_string_value(m), &p->models[i], &missing, why, sizeof(why));
            if (rc < 0)
                return fail(ld, "%s", why);
            if (rc == 1) {
                fail(ld, "${%s} is not set (write ${%s:-default} to give a fallback)", missing,
                     missing);
                free(missing);
                return -1;
            }
            p->n_models = i + 1;
            if (!*p->models[i])
                return fail(ld, "must not be empty");
            if (has_control(p->models[i]))
                return fail(ld, "must not contain control characters");
            path_pop(ld, si);
        }
        path_pop(ld, saved);
    }

    if (load_forward_headers(ld, obj, p) < 0)
        return -1;
    /* dialect settings: anthropic-version header / Azure api-version query */
    if (get_expanded(ld, obj, "api_version", false, &p->api_version) < 0)
        return -1;
    if (p->api_version && check_label(ld, "api_version", p->api_version, false) < 0)
        return -1;
    json_int_t max_tokens = 0;
    if (get_int(ld, obj, "default_max_tokens", 1, 1000000, &max_tokens) < 0)
        return -1;
    p->default_max_tokens = (long)max_tokens;
    json_int_t inflight = 0;
    if (get_int(ld, obj, "max_inflight", 1, 1000000, &inflight) < 0)
        return -1;
    p->max_inflight = (unsigned)inflight;
    if (get_bool(ld, obj, "retains_data", &p->retains_data) < 0 ||
        get_bool(ld, obj, "zdr", &p->zdr) < 0 || load_http2(ld, obj, p) < 0 ||
        load_tags(ld, obj, true, &p->tags, &p->n_tags) < 0)
        return -1;

    /* api_key last: it may add a warning, which should only happen for an
     * otherwise valid provider. */
    return load_api_key(ld, obj, p);
}

/*
 * The shape shared by "providers", "routes", "policies" and "keys": an object
 * mapping names to entries, "$comment" allowed. Allocates *arr for the
 * entries (at most `max`, at least `min`), then calls one() for each with its
 * index, after raising *count so a failure frees what was loaded so far.
 */
typedef int (*load_one_fn)(loader_t *ld, const char *name, json_t *v, size_t index);

static int load_named(loader_t *ld, json_t *root, const char *key, const char *noun,
                      const char *nouns, size_t min, size_t max, void **arr, size_t elem,
                      size_t *count, load_one_fn one)
{
    json_t *obj = json_object_get(root, key), *v;
    const char *name;
    size_t saved, n, i = 0;

    if (!obj && min == 0)
        return 0;
    saved = path_key(ld, key);
    if (!obj)
        return fail(ld, "missing (required): define at least one %s", noun);
    if (!json_is_object(obj))
        return fail(ld, "must be an object mapping %s names to %s (got %s)", noun, nouns,
                    json_type_name(obj));
    n = json_object_size(obj) - (json_object_get(obj, "$comment") ? 1 : 0);
    if (n < min)
        return fail(ld, "must define at least one %s", noun);
    if (n > max)
        return fail(ld, "at most %zu %s (got %zu)", max, nouns, n);
    if (n && !(*arr = calloc(n, elem)))
        return fail(ld, "out of memory");
    json_object_foreach(obj, name, v)
    {
        size_t s = path_key(ld, name);
        if (!strcmp(name, "$comment")) {
            if (!json_is_string(v))
                return fail(ld, "must be a string (got %s)", json_type_name(v));
        } else {
            *count = i + 1;
            if (one(ld, name, v, i++) < 0)
                return -1;
        }
        path_pop(ld, s);
    }
    path_pop(ld, saved);
    return 0;
}

static int load_provider_at(loader_t *ld, const char *name, json_t *v, size_t i)
{
    return load_provider(ld, name, v, &ld->cfg->providers[i]);
}

static int load_providers(loader_t *ld, json_t *root)
{
    mr_config_t *cfg = ld->cfg;
    return load_named(ld, root, "providers", "provider", "providers", 1, SIZE_MAX,
                      (void **)&cfg->providers, sizeof(*cfg->providers), &cfg->n_providers,
                      load_provider_at);
}

static int load_target(loader_t *ld, json_t *obj, mr_target_t *t)
{
    static const char *const keys[] = {"provider",     "model",          "creator",
                                       "open_weights", "input_per_mtok", "output_per_mtok",
                                       "weight",       "tags",           NULL};
    const mr_config_t *cfg = ld->cfg;
    json_int_t weight = 1;
    const char *prov, *model;
    char q[200], hint[200];
    size_t saved;

    if (!json_is_object(obj))
        return fail(ld,
                    "must be an object like {\"provider\": \"NAME\", \"model\": \"MODEL\"} "
                    "(got %s)",
                    json_type_name(obj));
    if (check_keys(ld, obj, keys) < 0)
        return -1;
    if (get_plain(ld, obj, "provider", true, &prov) < 0)
        return -1;
    saved = path_key(ld, "provider");
    if (!*prov)
        return fail(ld, "must not be empty");
    t->provider = mr_config_find_provider(cfg, prov);
    if (!t->provider) {
        suggest_t s = {.word = prov, .best_d = SIZE_MAX};
        for (size_t i = 0; i < cfg->n_providers; i++)
            suggest_try(&s, cfg->providers[i].name);
        return fail(ld, "unknown provider %s%s", quote(q, sizeof(q), prov),
                    suggest_text(&s, hint, sizeof(hint)));
    }
    path_pop(ld, saved);

    if (get_plain(ld, obj, "model", true, &model) < 0)
        return -1;
    saved = path_key(ld, "model");
    if (!*model)
        return fail(ld, "must not be empty");
    if (has_control(model))
        return fail(ld, "must not contain control characters");
    if (!(t->model = strdup(model)))
        return fail(ld, "out of memory");
    path_pop(ld, saved);

    if (get_plain(ld, obj, "creator", false, &model) < 0)
        return -1;
    if (!(t->creator = strdup(model ? model : t->provider->vendor)))
        return fail(ld, "out of memory");
    if (check_label(ld, "creator", t->creator, false) < 0)
        return -1;
    if (get_bool(ld, obj, "open_weights", &t->open_weights) < 0 ||
        get_number(ld, obj, "input_per_mtok", 0, MR_PRICE_MAX, false, &t->has_input_price,
                   &t->input_per_mtok) < 0 ||
        get_number(ld, obj, "output_per_mtok", 0, MR_PRICE_MAX, false, &t->has_output_price,
                   &t->output_per_mtok) < 0 ||
        get_int(ld, obj, "weight", 1, 1000000, &weight) < 0 ||
        load_tags(ld, obj, false, &t->tags, &t->n_tags) < 0)
        return -1;
    t->weight = (uint32_t)weight;
    return 0;
}

static int load_route(loader_t *ld, const char *name, json_t *obj, mr_route_t *r)
{
    static const char *const keys[] = {"targets", "max_attempts", NULL};
    json_t *targets;
    json_int_t attempts = ld->cfg->max_attempts;
    size_t saved, n;

    if (!valid_route_name(name))
        return fail(ld,
                    "invalid route name: must be 1 to %d bytes without spaces or control "
                    "characters",
                    MR_ROUTE_NAME_MAX);
    if (!json_is_object(obj))
        return fail(ld, "must be an object with \"targets\" (got %s)", json_type_name(obj));
    if (!(r->name = strdup(name)))
        return fail(ld, "out of memory");
    if (check_keys(ld, obj, keys) < 0)
        return -1;
    if (get_int(ld, obj, "max_attempts", 1, MR_ATTEMPTS_MAX, &attempts) < 0)
        return -1;
    r->max_attempts = (unsigned)attempts;

    targets = json_object_get(obj, "targets");
    saved = path_key(ld, "targets");
    if (!targets)
        return fail(ld, "missing (required)");
    if (!json_is_array(targets))
        return fail(ld, "must be an array of {\"provider\", \"model\"} objects (got %s)",
                    json_type_name(targets));
    n = json_array_size(targets);
    if (n == 0)
        return fail(ld, "must list at least one target");
    if (n > MR_MAX_CANDIDATES)
        return fail(ld, "must list at most %d targets (got %zu)", MR_MAX_CANDIDATES, n);
    if (!(r->targets = calloc(n, sizeof(*r->targets))))
        return fail(ld, "out of memory");
    for (size_t i = 0; i < n; i++) {
        size_t si = path_index(ld, i);
        r->n_targets = i + 1;
        if (load_target(ld, json_array_get(targets, i), &r->targets[i]) < 0)
            return -1;
        path_pop(ld, si);
    }
    path_pop(ld, saved);
    return 0;
}

static int load_route_at(loader_t *ld, const char *name, json_t *v, size_t i)
{
    ld->cfg->routes[i].index = i;
    return load_route(ld, name, v, &ld->cfg->routes[i]);
}

static int load_routes(loader_t *ld, json_t *root)
{
    mr_config_t *cfg = ld->cfg;
    return load_named(ld, root, "routes", "route", "routes", 0, SIZE_MAX, (void **)&cfg->routes,
                      sizeof(*cfg->routes), &cfg->n_routes, load_route_at);
}

/* health: the circuit breakers (docs/operations.md); 0 keeps health.h's default */
static int load_health(loader_t *ld, json_t *root)
{
    static const char *const keys[] = {"failure_threshold", "cooldown_ms", "max_cooldown_ms",
                                       "probe_timeout_ms", NULL};
    json_t *obj = json_object_get(root, "health");
    json_int_t threshold = 0, cooldown = 0, max_cooldown = 0, probe = 0;
    size_t saved;

    if (!obj)
        return 0;
    saved = path_key(ld, "health");
    if (!json_is_object(obj))
        return fail(ld, "must be an object (got %s)", json_type_name(obj));
    if (check_keys(ld, obj, keys) < 0 ||
        get_int(ld, obj, "failure_threshold", 1, 1000000, &threshold) < 0 ||
        get_int(ld, obj, "cooldown_ms", 1, 86400000, &cooldown) < 0 ||
        get_int(ld, obj, "max_cooldown_ms", 1, 86400000, &max_cooldown) < 0 ||
        get_int(ld, obj, "probe_timeout_ms", 1, 86400000, &probe) < 0)
        return -1;
    ld->cfg->health.failure_threshold = (uint32_t)threshold;
    ld->cfg->health.cooldown_ms = (uint32_t)cooldown;
    ld->cfg->health.max_cooldown_ms = (uint32_t)max_cooldown;
    ld->cfg->health.probe_timeout_ms = (uint32_t)probe;
    path_pop(ld, saved);
    return 0;
}

/* retry_budget: retries as a share of requests (docs/operations.md) */
static int load_retry_budget(loader_t *ld, json_t *root)
{
    static const char *const keys[] = {"ratio", "window_s", "min_retries_per_s", NULL};
    json_t *obj = json_object_get(root, "retry_budget");
    json_int_t window = 0, min_per_s = -1;
    bool has_ratio = false;
    size_t saved;

    if (!obj)
        return 0;
    saved = path_key(ld, "retry_budget");
    if (!json_is_object(obj))
        return fail(ld, "must be an object (got %s)", json_type_name(obj));
    if (check_keys(ld, obj, keys) < 0 ||
        get_number(ld, obj, "ratio", 0, 100, false, &has_ratio, &ld->cfg->retry_budget.ratio) < 0 ||
        get_int(ld, obj, "window_s", 1, 60, &window) < 0 ||
        get_int(ld, obj, "min_retries_per_s", 0, 1000000, &min_per_s) < 0)
        return -1;
    /* ratio 0 means "floor only" here; health.h reads 0 as its default */
    if (has_ratio && ld->cfg->retry_budget.ratio == 0)
        ld->cfg->retry_budget.ratio = -1;
    ld->cfg->retry_budget.window_s = (uint32_t)window;
    /* absent: health.h's default floor; an explicit 0: no floor at all */
    ld->cfg->retry_budget.min_retries_per_s = min_per_s < 0    ? 0
                                              : min_per_s == 0 ? MR_RETRY_NO_FLOOR
                                                               : (uint32_t)min_per_s;
    path_pop(ld, saved);
    return 0;
}

/* access_log: "stdout" | "off" | PATH (default off) */
static int load_access_log(loader_t *ld, json_t *root)
{
    char *v = NULL;

    if (get_expanded(ld, root, "access_log", false, &v) < 0)
        return -1;
    if (v && (strcmp(v, "off") == 0 || v[0] == '\0')) {
        free(v);
        v = NULL;
    }
    ld->cfg->access_log = v;
    return 0;
}

/* audit: {"path": PATH, "bodies": false, "queue_bytes": N} */
static int load_audit(loader_t *ld, json_t *root)
{
    static const char *const keys[] = {"path", "bodies", "queue_bytes", NULL};
    json_t *obj = json_object_get(root, "audit");
    json_int_t queue = 0;
    size_t saved;

    if (!obj)
        return 0;
    saved = path_key(ld, "audit");
    if (!json_is_object(obj))
        return fail(ld, "must be an object (got %s)", json_type_name(obj));
    if (check_keys(ld, obj, keys) < 0 ||
        get_expanded(ld, obj, "path", true, &ld->cfg->audit.path) < 0 ||
        get_bool(ld, obj, "bodies", &ld->cfg->audit.bodies) < 0 ||
        get_int(ld, obj, "queue_bytes", 4096, (json_int_t)1 << 34, &queue) < 0)
        return -1;
    if (ld->cfg->audit.path[0] == '\0') {
        path_key(ld, "path");
        return fail(ld, "must not be empty");
    }
    ld->cfg->audit.queue_bytes = (size_t)queue;
    path_pop(ld, saved);
    return 0;
}

static int load_timeouts(loader_t *ld, json_t *root)
{
    static const char *const keys[] = {
        "connect_ms",    "first_byte_ms", "request_ms", "stream_idle_ms",
        "client_idle_s", "drain_ms",      NULL};
    mr_timeouts_t *t = &ld->cfg->timeouts;
    json_t *obj = json_object_get(root, "timeouts");
    json_int_t connect = 5000, first_byte = 60000, request = 300000, stream_idle = 60000,
               client_idle = 60, drain = 10000;
    size_t saved;

    if (obj) {
        saved = path_key(ld, "timeouts");
        if (!json_is_object(obj))
            return fail(ld, "must be an object (got %s)", json_type_name(obj));
        if (check_keys(ld, obj, keys) < 0 ||
            get_int(ld, obj, "connect_ms", 1, 600000, &connect) < 0 ||
            get_int(ld, obj, "first_byte_ms", 1, 3600000, &first_byte) < 0 ||
            get_int(ld, obj, "request_ms", 1, 86400000, &request) < 0 ||
            get_int(ld, obj, "stream_idle_ms", 1, 3600000, &stream_idle) < 0 ||
            get_int(ld, obj, "client_idle_s", 1, 86400, &client_idle) < 0 ||
            get_int(ld, obj, "drain_ms", 1, 3600000, &drain) < 0)
            return -1;
        path_pop(ld, saved);
    }
    t->connect_ms = (uint32_t)connect;
    t->first_byte_ms = (uint32_t)first_byte;
    t->request_ms = (uint32_t)request;
    t->stream_idle_ms = (uint32_t)stream_idle;
    t->client_idle_s = (uint32_t)client_idle;
    t->drain_ms = (uint32_t)drain;
    return 0;
}

static int load_limits(loader_t *ld, json_t *root)
{
    static const char *const keys[] = {"max_body_bytes",     "max_header_bytes",
                                       "max_response_bytes", "stream_buffer_bytes",
                                       "max_connections",    NULL};
    mr_limits_t *l = &ld->cfg->limits;
    json_t *obj = json_object_get(root, "limits");
    json_int_t body = 8 * MIB, header = 16 * KIB, response = 64 * MIB, stream = 256 * KIB,
               conns = 4096;
    size_t saved;

    if (obj) {
        saved = path_key(ld, "limits");
        if (!json_is_object(obj))
            return fail(ld, "must be an object (got %s)", json_type_name(obj));
        if (check_keys(ld, obj, keys) < 0 ||
            get_int(ld, obj, "max_body_bytes", KIB, GIB, &body) < 0 ||
            get_int(ld, obj, "max_header_bytes", KIB, MIB, &header) < 0 ||
            get_int(ld, obj, "max_response_bytes", KIB, GIB, &response) < 0 ||
            get_int(ld, obj, "stream_buffer_bytes", KIB, 64 * MIB, &stream) < 0 ||
            get_int(ld, obj, "max_connections", 1, 1000000, &conns) < 0)
            return -1;
        path_pop(ld, saved);
    }
    l->max_body_bytes = (size_t)body;
    l->max_header_bytes = (size_t)header;
    l->max_response_bytes = (size_t)response;
    l->stream_buffer_bytes = (size_t)stream;
    l->max_connections = (unsigned)conns;
    return 0;
}

static int load_listen(loader_t *ld, json_t *root)
{
    mr_config_t *cfg = ld->cfg;
    char *s = NULL, why[160], q[200];
    size_t saved;

    if (get_expanded(ld, root, "listen", false, &s) < 0)
        return -1;
    if (!s) {
        if (!(cfg->listen_host = strdup(DEF_LISTEN_HOST)))
            return fail(ld, "out of memory");
        cfg->listen_port = DEF_LISTEN_PORT;
        return 0;
    }
    saved = path_key(ld, "listen");
    if (parse_listen(s, &cfg->listen_host, &cfg->listen_port, why, sizeof(why)) < 0) {
        fail(ld, "invalid address %s: %s", quote(q, sizeof(q), s), why);
        free(s);
        return -1;
    }
    free(s);
    path_pop(ld, saved);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Derived indexes                                                           */
/* ------------------------------------------------------------------------ */

/*
 * Dense indexes soft state is keyed by: distinct vendors (providers sharing
 * a vendor share one index) and distinct (provider, model) target pairs.
 * Both follow file order, so they are stable for a given file.
 */
static int derive_indexes(loader_t *ld)
{
    mr_config_t *cfg = ld->cfg;

    if (!(cfg->vendors = calloc(cfg->n_providers ? cfg->n_providers : 1, sizeof(char *))))
        return fail(ld, "out of memory");
    for (size_t i = 0; i < cfg->n_providers; i++) {
        mr_provider_t *p = &cfg->providers[i];
        size_t v = 0;
        while (v < cfg->n_vendors && strcmp(cfg->vendors[v], p->vendor))
            v++;
        if (v == cfg->n_vendors)
            cfg->vendors[cfg->n_vendors++] = p->vendor;
        p->vendor_index = v;
    }
    for (size_t i = 0; i < cfg->n_routes; i++) {
        for (size_t j = 0; j < cfg->routes[i].n_targets; j++) {
            mr_target_t *t = &cfg->routes[i].targets[j];
            bool found = false;
            for (size_t a = 0; a <= i && !found; a++) {
                size_t end = a == i ? j : cfg->routes[a].n_targets;
                for (size_t b = 0; b < end && !found; b++) {
                    const mr_target_t *o = &cfg->routes[a].targets[b];
                    if (o->provider == t->provider && !strcmp(o->model, t->model)) {
                        t->id = o->id;
                        found = true;
                    }
                }
            }
            if (!found)
                t->id = cfg->n_target_ids++;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Policies                                                                  */
/* ------------------------------------------------------------------------ */

static bool has_tag(const mr_tag_t *tags, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(tags[i].name, name))
            return true;
    return false;
}

/* A built-in attribute, or a tag some provider or target carries. */
static bool known_attr(const mr_config_t *cfg, const char *name)
{
    if (mr_attr_is_builtin(name))
        return true;
    for (size_t i = 0; i < cfg->n_providers; i++)
        if (has_tag(cfg->providers[i].tags, cfg->providers[i].n_tags, name))
            return true;
    for (size_t i = 0; i < cfg->n_routes; i++)
        for (size_t j = 0; j < cfg->routes[i].n_targets; j++)
            if (has_tag(cfg->routes[i].targets[j].tags, cfg->routes[i].targets[j].n_tags, name))
                return true;
    return false;
}

static void suggest_attr(const mr_config_t *cfg, suggest_t *s)
{
    for (const char *const *a = mr_attr_builtins(); *a; a++)
        suggest_try(s, *a);
    for (size_t i = 0; i < cfg->n_providers; i++)
        for (size_t k = 0; k < cfg->providers[i].n_tags; k++)
            suggest_try(s, cfg->providers[i].tags[k].name);
    for (size_t i = 0; i < cfg->n_routes; i++)
        for (size_t j = 0; j < cfg->routes[i].n_targets; j++)
            for (size_t k = 0; k < cfg->routes[i].targets[j].n_tags; k++)
                suggest_try(s, cfg->routes[i].targets[j].tags[k].name);
}

/* "allow" / "deny": {"region": ["eu", "ch"], "license": ["mit"]} */
static int load_rules(loader_t *ld, json_t *pol, const char *key, mr_attr_rule_t **out, size_t *n)
{
    json_t *o = json_object_get(pol, key), *v;
    const char *attr;
    size_t saved, count;
    char q[200], hint[200];

    if (!o)
        return 0;
    saved = path_key(ld, key);
    if (!json_is_object(o))
        return fail(ld,
                    "must be an object mapping attribute names to arrays of values, e.g. "
                    "{\"region\": [\"eu\"]} (got %s)",
                    json_type_name(o));
    count = json_object_size(o) - (json_object_get(o, "$comment") ? 1 : 0);
    if (count == 0)
        return fail(ld, "must name at least one attribute");
    if (!(*out = calloc(count, sizeof(**out))))
        return fail(ld, "out of memory");
    json_object_foreach(o, attr, v)
    {
        size_t s = path_key(ld, attr), nv;
        mr_attr_rule_t *r;

        if (!strcmp(attr, "$comment")) {
            if (!json_is_string(v))
                return fail(ld, "must be a string (got %s)", json_type_name(v));
            path_pop(ld, s);
            continue;
        }
        if (!known_attr(ld->cfg, attr)) {
            suggest_t sg = {.word = attr, .best_d = SIZE_MAX};
            suggest_attr(ld->cfg, &sg);
            return fail(ld,
                        "unknown attribute%s: use provider, model, kind, vendor, region, "
                        "jurisdiction, creator or a tag name some provider or target carries",
                        suggest_text(&sg, hint, sizeof(hint)));
        }
        if (!json_is_array(v) || json_array_size(v) == 0)
            return fail(ld, "must be a non-empty array of strings (got %s)",
                        json_is_array(v) ? "an empty array" : json_type_name(v));
        nv = json_array_size(v);
        if (nv > MR_RULE_VALUES_MAX)
            return fail(ld, "at most %d values (got %zu)", MR_RULE_VALUES_MAX, nv);
        r = &(*out)[(*n)++];
        if (!(r->attr = strdup(attr)) || !(r->values = calloc(nv, sizeof(char *))))
            return fail(ld, "out of memory");
        for (size_t i = 0; i < nv; i++) {
            json_t *e = json_array_get(v, i);
            size_t si = path_index(ld, i);
            const char *val;

            if (!json_is_string(e))
                return fail(ld, "must be a string (got %s)", json_type_name(e));
            val = json_string_value(e);
            if (!*val)
                return fail(ld, "must not be empty");
            if (strlen(val) > MR_RULE_VALUE_MAX)
                return fail(ld, "must be at most %d bytes", MR_RULE_VALUE_MAX);
            if (has_control(val))
                return fail(ld, "must not contain control characters");
            if (!(r->values[r->n_values] = strdup(val)))
                return fail(ld, "out of memory");
            r->n_values++;
            if (!strcmp(attr, "jurisdiction")) {
                char *j = r->values[r->n_values - 1];
                bool ok = strlen(j) == 2;
                for (size_t k = 0; ok && k < 2; k++)
                    ok = (j[k] >= 'A' && j[k] <= 'Z') || (j[k] >= 'a' && j[k] <= 'z');
                if (!ok)
                    return fail(ld,
                                "must be a two-letter ISO 3166-1 country code such as \"FR\" "
                                "(got %s)",
                                quote(q, sizeof(q), j));
                for (size_t k = 0; k < 2; k++)
                    if (j[k] >= 'a' && j[k] <= 'z')
                        j[k] = (char)(j[k] - 'a' + 'A');
            } else if (!strcmp(attr, "kind")) {
                mr_provider_kind_t kind;
                if (mr_provider_kind_parse(val, &kind) < 0)
                    return fail(ld, "must be one of openai, anthropic, gemini, azure (got %s)",
                                quote(q, sizeof(q), val));
            }
            path_pop(ld, si);
        }
        path_pop(ld, s);
    }
    path_pop(ld, saved);
    return 0;
}

/* A string member that must be one of name(0..n-1); *out its index. */
static int get_enum(loader_t *ld, json_t *obj, const char *key, const char *(*name)(int), int n,
                    bool *present, int *out)
{
    const char *v;
    char q[200], list[256];
    size_t o = 0;

    *present = false;
    if (get_plain(ld, obj, key, false, &v) < 0)
        return -1;
    if (!v)
        return 0;
    for (int i = 0; i < n; i++)
        if (!strcmp(v, name(i))) {
            *out = i;
            *present = true;
            return 0;
        }
    for (int i = 0; i < n && o < sizeof(list); i++)
        o += (size_t)snprintf(list + o, sizeof(list) - o, "%s%s", i ? ", " : "", name(i));
    path_key(ld, key); /* the message names the member */
    return fail(ld, "must be one of %s (got %s)", list, quote(q, sizeof(q), v));
}

static const char *data_collection_name(int i)
{
    return i == 0 ? "allow" : "deny";
}

static const char *strategy_name(int i)
{
    return mr_strategy_name((mr_strategy_t)i);
}

static const char *diversity_name(int i)
{
    return mr_diversity_name((mr_diversity_t)i);
}

static int load_policy(loader_t *ld, const char *name, json_t *obj, mr_policy_t *p)
{
    static const char *const keys[] = {
        "allow",       "deny",     "open_weights_only",  "data_collection",  "zdr_only",
        "max_price",   "strategy", "fallback_diversity", "max_vendor_share", "share_window_s",
        "min_vendors", NULL};
    json_t *mp;
    json_int_t window = MR_SHARE_WINDOW_S, minv = 0;
    bool present, has_share;
    int e = 0;

    p->share_slot = -1;
    if (!valid_name(name))
        return fail(ld,
                    "invalid policy name: use 1 to %d letters, digits, '_', '-' or '.', "
                    "starting with a letter, digit or '_'",
                    MR_NAME_MAX);
    if (!json_is_object(obj))
        return fail(ld, "must be an object (got %s)", json_type_name(obj));
    if (!(p->name = strdup(name)))
        return fail(ld, "out of memory");
    if (check_keys(ld, obj, keys) < 0 || load_rules(ld, obj, "allow", &p->allow, &p->n_allow) < 0 ||
        load_rules(ld, obj, "deny", &p->deny, &p->n_deny) < 0 ||
        get_bool(ld, obj, "open_weights_only", &p->open_weights_only) < 0 ||
        get_bool(ld, obj, "zdr_only", &p->zdr_only) < 0)
        return -1;
    if (get_enum(ld, obj, "data_collection", data_collection_name, 2, &present, &e) < 0)
        return -1;
    p->deny_data_collection = present && e == 1;

    mp = json_object_get(obj, "max_price");
    if (mp) {
        static const char *const mkeys[] = {"input", "output", NULL};
        size_t saved = path_key(ld, "max_price");
        if (!json_is_object(mp))
            return fail(ld,
                        "must be an object like {\"input\": 1.0, \"output\": 3.0} in USD per "
                        "million tokens (got %s)",
                        json_type_name(mp));
        if (check_keys(ld, mp, mkeys) < 0 ||
            get_number(ld, mp, "input", 0, MR_PRICE_MAX, false, &p->has_max_input,
                       &p->max_input_per_mtok) < 0 ||
            get_number(ld, mp, "output", 0, MR_PRICE_MAX, false, &p->has_max_output,
                       &p->max_output_per_mtok) < 0)
            return -1;
        if (!p->has_max_input && !p->has_max_output)
            return fail(ld, "must set \"input\", \"output\" or both");
        path_pop(ld, saved);
    }

    if (get_enum(ld, obj, "strategy", strategy_name, MR_STRATEGY_COUNT, &p->strategy_set, &e) < 0)
        return -1;
    p->strategy = p->strategy_set ? (mr_strategy_t)e : MR_STRATEGY_PRIORITY;
    if (get_enum(ld, obj, "fallback_diversity", diversity_name, MR_DIVERSITY_COUNT,
                 &p->diversity_set, &e) < 0)
        return -1;
    p->diversity = p->diversity_set ? (mr_diversity_t)e : MR_DIVERSITY_NONE;
    if (get_number(ld, obj, "max_vendor_share", 0, 1, true, &has_share, &p->max_vendor_share) < 0 ||
        get_int(ld, obj, "share_window_s", 1, 86400, &window) < 0 ||
        get_int(ld, obj, "min_vendors", 1, 32, &minv) < 0)
        return -1;
    if (!has_share)
        p->max_vendor_share = 0;
    p->share_window_s = (uint32_t)window;
    p->min_vendors = (uint32_t)minv;
    return 0;
}

/* Hex SHA-256 of the canonical JSON form (docs/routing.md, "Policy hash"). */
static int hash_policy(loader_t *ld, mr_policy_t *p)
{
    json_t *j = mr_policy_to_json(p);
    char *s = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    uint8_t d[MR_SHA256_DIGEST_LEN];

    json_decref(j);
    if (!s)
        return fail(ld, "out of memory");
    mr_sha256(s, strlen(s), d);
    mr_sha256_hex(d, p->hash);
    free(s);
    return 0;
}

static int load_policy_at(loader_t *ld, const char *name, json_t *v, size_t i)
{
    mr_config_t *cfg = ld->cfg;
    mr_policy_t *p = &cfg->policies[i];

    p->index = i;
    if (load_policy(ld, name, v, p) < 0 || hash_policy(ld, p) < 0)
        return -1;
    if (p->max_vendor_share > 0)
        p->share_slot = (int)cfg->n_share_policies++;
    return 0;
}

static int load_policies(loader_t *ld, json_t *root)
{
    mr_config_t *cfg = ld->cfg;
    return load_named(ld, root, "policies", "policy", "policies", 0, MR_POLICIES_MAX,
                      (void **)&cfg->policies, sizeof(*cfg->policies), &cfg->n_policies,
                      load_policy_at);
}

/* Resolve a policy reference at the current path; *out stays NULL if absent. */
static int resolve_policy(loader_t *ld, const char *name, const mr_policy_t **out)
{
    const mr_config_t *cfg = ld->cfg;
    char q[200], hint[200];
    suggest_t s = {.word = name, .best_d = SIZE_MAX};

    if ((*out = mr_config_find_policy(cfg, name)))
        return 0;
    for (size_t i = 0; i < cfg->n_policies; i++)
        suggest_try(&s, cfg->policies[i].name);
    return fail(ld, "unknown policy %s%s", quote(q, sizeof(q), name),
                s.best ? suggest_text(&s, hint, sizeof(hint))
                       : (cfg->n_policies ? "" : " (define it under \"policies\")"));
}

static int load_default_policy(loader_t *ld, json_t *root)
{
    const char *name;
    size_t saved;

    if (get_plain(ld, root, "default_policy", false, &name) < 0)
        return -1;
    if (!name)
        return 0;
    saved = path_key(ld, "default_policy");
    if (resolve_policy(ld, name, &ld->cfg->default_policy) < 0)
        return -1;
    path_pop(ld, saved);
    return 0;
}

static int load_key(loader_t *ld, const char *name, json_t *obj, mr_key_t *k)
{
    static const char *const keys[] = {"sha256", "policy", NULL};
    const char *hex, *pol;
    size_t saved;

    if (!valid_name(name))
        return fail(ld,
                    "invalid key name: use 1 to %d letters, digits, '_', '-' or '.', "
                    "starting with a letter, digit or '_'",
                    MR_NAME_MAX);
    if (!json_is_object(obj))
        return fail(ld,
                    "must be an object like {\"sha256\": \"<64 hex digits>\", \"policy\": "
                    "\"NAME\"} (got %s)",
                    json_type_name(obj));
    if (!(k->name = strdup(name)))
        return fail(ld, "out of memory");
    if (check_keys(ld, obj, keys) < 0 || get_plain(ld, obj, "sha256", true, &hex) < 0)
        return -1;
    saved = path_key(ld, "sha256");
    /* never quote the value back: a pasted secret must not reach a log */
    if (mr_sha256_from_hex(hex, k->digest) < 0)
        return fail(ld, "must be the SHA-256 of the key as 64 hex digits, e.g. the output of "
                        "`printf %%s \"$KEY\" | sha256sum` (the secret itself never goes in "
                        "the file)");
    for (size_t i = 0; i < (size_t)(k - ld->cfg->keys); i++)
        if (!memcmp(ld->cfg->keys[i].digest, k->digest, sizeof(k->digest)))
            return fail(ld, "same digest as keys.%s: give every key its own secret",
                        ld->cfg->keys[i].name);
    path_pop(ld, saved);
    if (get_plain(ld, obj, "policy", false, &pol) < 0)
        return -1;
    if (pol) {
        saved = path_key(ld, "policy");
        if (resolve_policy(ld, pol, &k->policy) < 0)
            return -1;
        path_pop(ld, saved);
    }
    return 0;
}

static int load_key_at(loader_t *ld, const char *name, json_t *v, size_t i)
{
    return load_key(ld, name, v, &ld->cfg->keys[i]);
}

static int load_keys(loader_t *ld, json_t *root)
{
    mr_config_t *cfg = ld->cfg;
    return load_named(ld, root, "keys", "key", "keys", 0, MR_KEYS_MAX, (void **)&cfg->keys,
                      sizeof(*cfg->keys), &cfg->n_keys, load_key_at);
}

/*
 * min_vendors: every route must offer that many distinct vendors among the
 * targets the policy's static filters let through. Disabled providers count
 * as available (the check is about the file, not about which variables
 * happen to be set where --check runs).
 */
static int check_min_vendors(loader_t *ld)
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
            char list[512] = "", q[200];

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
            path_key(ld, "routes");
            path_key(ld, route->name);
            if (nv == 0)
                return fail(ld, "policy %s needs min_vendors %u but no target remains under it",
                            quote(q, sizeof(q), p->name), p->min_vendors);
            return fail(ld, "policy %s needs min_vendors %u but only %zu vendor%s remain%s: %s",
                        quote(q, sizeof(q), p->name), p->min_vendors, nv, nv == 1 ? "" : "s",
                        nv == 1 ? "s" : "", list);
        }
    }
    return 0;
}

static int load_root(loader_t *ld, json_t *root)
{
    static const char *const keys[] = {
        "listen", "providers",    "routes",         "max_attempts", "timeouts",
        "limits", "policies",     "default_policy", "keys",         "allow_unauthenticated",
        "health", "retry_budget", "access_log",     "audit",        "public_metrics",
        NULL};
    json_int_t attempts = DEF_MAX_ATTEMPTS;

    if (!json_is_object(root))
        return fail(ld, "the top level must be a JSON object (got %s)", json_type_name(root));
    if (check_keys(ld, root, keys) < 0 || load_listen(ld, root) < 0 ||
        get_int(ld, root, "max_attempts", 1, MR_ATTEMPTS_MAX, &attempts) < 0)
        return -1;
    ld->cfg->max_attempts = (unsigned)attempts;
    if (load_timeouts(ld, root) < 0 || load_limits(ld, root) < 0 || load_health(ld, root) < 0 ||
        load_retry_budget(ld, root) < 0 || load_providers(ld, root) < 0 ||
        load_routes(ld, root) < 0 || derive_indexes(ld) < 0 || load_policies(ld, root) < 0 ||
        load_default_policy(ld, root) < 0 || load_keys(ld, root) < 0 ||
        get_bool(ld, root, "allow_unauthenticated", &ld->cfg->allow_unauthenticated) < 0 ||
        get_bool(ld, root, "public_metrics", &ld->cfg->public_metrics) < 0 ||
        load_access_log(ld, root) < 0 || load_audit(ld, root) < 0 || check_min_vendors(ld) < 0)
        return -1;
    if (mr_config_check_exposure(ld->cfg, NULL, 0) < 0) {
        char why[512];
        size_t saved = path_key(ld, "listen");
        mr_config_check_exposure(ld->cfg, why, sizeof(why));
        fail(ld, "%s", why);
        path_pop(ld, saved);
        return -1;
    }
    return 0;
}

static int load_json(json_t *root, const char *origin, mr_config_t **out, char *err, size_t errlen)
{
    loader_t ld = {.origin = origin, .err = err, .errlen = errlen};

    if (!(ld.cfg = calloc(1, sizeof(*ld.cfg))) || !(ld.cfg->origin = strdup(origin))) {
        free(ld.cfg);
        fail(&ld, "out of memory");
        return -1;
    }
    ld.cfg->public_metrics = true;
    if (load_root(&ld, root) < 0) {
        mr_config_free(ld.cfg);
        return -1;
    }
    *out = ld.cfg;
    return 0;
}

static int load_buffer(const char *buf, size_t len, const char *origin, mr_config_t **out,
                       char *err, size_t errlen)
{
    json_error_t je;
    json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
    int rc;

    if (!root) {
        if (err && errlen)
            snprintf(err, errlen, "%s:%d:%d: invalid JSON: %s", origin, je.line, je.column,
                     je.text);
        return -1;
    }
    rc = load_json(root, origin, out, err, errlen);
    json_decref(root);
    return rc;
}

int mr_config_load_string(const char *json, const char *origin, mr_config_t **out, char *err,
                          size_t errlen)
{
    *out = NULL;
    if (!origin)
        origin = "<string>";
    return load_buffer(json, strlen(json), origin, out, err, errlen);
}

int mr_config_load_file(const char *path, mr_config_t **out, char *err, size_t errlen)
{
    FILE *f;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int rc;

    *out = NULL;
    if (!(f = fopen(path, "rb"))) {
        if (err && errlen)
            snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    for (;;) {
        if (len == cap) {
            size_t ncap = cap ? cap * 2 : 16384;
            char *nb;
            if (cap >= (size_t)MAX_CONFIG_FILE_BYTES) {
                if (err && errlen)
                    snprintf(err, errlen, "%s: file larger than %lld bytes", path,
                             MAX_CONFIG_FILE_BYTES);
                goto fail;
            }
            if (!(nb = realloc(buf, ncap))) {
                if (err && errlen)
                    snprintf(err, errlen, "%s: out of memory", path);
                goto fail;
            }
            buf = nb;
            cap = ncap;
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0) {
            if (ferror(f)) {
                if (err && errlen)
                    snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
                goto fail;
            }
            break;
        }
    }
    fclose(f);
    rc = load_buffer(buf ? buf : "", len, path, out, err, errlen);
    free(buf);
    return rc;
fail:
    fclose(f);
    free(buf);
    return -1;
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

/* ------------------------------------------------------------------------ */
/* --check table                                                             */
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
    for (size_t i = 0; i < cfg->n_keys; i++)
        fprintf(out, "  %s%s%s\n", cfg->keys[i].name, cfg->keys[i].policy ? " -> policy " : "",
                cfg->keys[i].policy ? cfg->keys[i].policy->name : "");
}

void mr_config_print_table(const mr_config_t *cfg, FILE *out)
{
    int wn = 0, wk = 0, wu = 0;
    size_t enabled = 0;

    if (strchr(cfg->listen_host, ':'))
        fprintf(out, "listen [%s]:%u\n", cfg->listen_host, (unsigned)cfg->listen_port);
    else
        fprintf(out, "listen %s:%u\n", cfg->listen_host, (unsigned)cfg->listen_port);
    fprintf(out, "max_attempts %u\n", cfg->max_attempts);
    fprintf(out,
            "timeouts connect_ms=%u first_byte_ms=%u request_ms=%u stream_idle_ms=%u "
            "client_idle_s=%u drain_ms=%u\n",
            cfg->timeouts.connect_ms, cfg->timeouts.first_byte_ms, cfg->timeouts.request_ms,
            cfg->timeouts.stream_idle_ms, cfg->timeouts.client_idle_s, cfg->timeouts.drain_ms);
    fprintf(out,
            "limits max_body_bytes=%zu max_header_bytes=%zu max_response_bytes=%zu "
            "stream_buffer_bytes=%zu max_connections=%u\n",
            cfg->limits.max_body_bytes, cfg->limits.max_header_bytes,
            cfg->limits.max_response_bytes, cfg->limits.stream_buffer_bytes,
            cfg->limits.max_connections);

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
            fprintf(out, "enabled\n");
        else
            fprintf(out, "disabled (%s)\n", p->disabled_reason);
        if (p->n_models) {
            fprintf(out, "  %-*s  models:", wn, "");
            for (size_t j = 0; j < p->n_models; j++)
                fprintf(out, "%s %s", j ? "," : "", p->models[j]);
            fputc('\n', out);
        }
    }

    fprintf(out, "routes:%s\n",
            cfg->n_routes ? "" : " (none; address providers as provider/model)");
    for (size_t i = 0; i < cfg->n_routes; i++) {
        const mr_route_t *r = &cfg->routes[i];
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
                fprintf(out, "    %zu. %s/%s%*s   [disabled: %s]\n", j + 1, t->provider->name,
                        t->model, pad, "", t->provider->disabled_reason);
            }
        }
        if (live == 0) {
            /* Same wording as the router's 503: which variables to set. */
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
    }
    print_policies(cfg, out);
}
