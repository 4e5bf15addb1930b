/*
 * config_http — server_names and cors.allow_origins.
 */
#include "meridian/config_http.h"

#include <stdlib.h>
#include <string.h>

static bool host_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
}

/* A DNS name or an IPv4 literal, already lower-case: [a-z0-9.-]+. */
static bool valid_host(const char *h, size_t n)
{
    if (n == 0 || n > MR_HOST_NAME_MAX || h[0] == '.' || h[0] == '-')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!host_char(h[i]))
            return false;
    return true;
}

/* "[v6]" at the start of h: its length, 0 when not a bracketed literal. */
static size_t bracketed(const char *h)
{
    size_t n = 1;

    if (h[0] != '[')
        return 0;
    while (h[n] && ((h[n] >= '0' && h[n] <= '9') || (h[n] >= 'a' && h[n] <= 'f') || h[n] == ':' ||
                    h[n] == '.'))
        n++;
    return h[n] == ']' && n > 2 ? n + 1 : 0;
}

/* "http://host[:port]" or "https://..." with nothing after: what browsers
 * send as Origin (no path, no trailing '/', no userinfo). */
static bool valid_origin(const char *o)
{
    const char *h = !strncmp(o, "http://", 7) ? o + 7 : !strncmp(o, "https://", 8) ? o + 8 : NULL;
    size_t hn, pn;

    if (!h)
        return false;
    hn = bracketed(h);
    if (!hn) {
        hn = strcspn(h, ":");
        if (!valid_host(h, hn))
            return false;
    }
    if (!h[hn])
        return true;
    pn = strspn(h + hn + 1, "0123456789");
    return h[hn] == ':' && pn >= 1 && pn <= 5 && !h[hn + 1 + pn];
}

static void lower(char *s)
{
    for (; *s; s++)
        if (*s >= 'A' && *s <= 'Z')
            *s = (char)(*s - 'A' + 'a');
}

typedef bool (*entry_ok_fn)(mr_loader_t *ld, const char *v);

/* An array of at most MR_HOST_NAMES_MAX strings at `key` of obj, each
 * lower-cased and accepted by ok() (which writes its own message). */
static int load_list(mr_loader_t *ld, json_t *obj, const char *key, entry_ok_fn ok, char ***out,
                     size_t *n_out)
{
    json_t *arr = json_object_get(obj, key);
    size_t saved, n;

    if (!arr)
        return 0;
    saved = mr_loader_key(ld, key);
    if (!json_is_array(arr))
        return mr_loader_fail(ld, "must be an array of strings (got %s)", mr_loader_type_name(arr));
    n = json_array_size(arr);
    if (n > MR_HOST_NAMES_MAX)
        return mr_loader_fail(ld, "at most %d entries", MR_HOST_NAMES_MAX);
    if (n && !(*out = calloc(n, sizeof(char *))))
        return mr_loader_fail(ld, "out of memory");
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(arr, i);
        size_t si = mr_loader_index(ld, i);
        if (!json_is_string(v))
            return mr_loader_fail(ld, "must be a string (got %s)", mr_loader_type_name(v));
        if (!((*out)[i] = strdup(json_string_value(v))))
            return mr_loader_fail(ld, "out of memory");
        *n_out = i + 1;
        lower((*out)[i]);
        if (!ok(ld, (*out)[i]))
            return -1;
        mr_loader_pop(ld, si);
    }
    mr_loader_pop(ld, saved);
    return 0;
}

static bool server_name_ok(mr_loader_t *ld, const char *v)
{
    char q[MR_LOADER_QUOTE_MAX];

    if (valid_host(v, strlen(v)))
        return true;
    mr_loader_fail(ld,
                   "%s is not a host name: letters, digits, '-' and '.', no port, no scheme "
                   "(e.g. \"gateway.internal\")",
                   mr_loader_quote(q, sizeof(q), v));
    return false;
}

static bool origin_ok(mr_loader_t *ld, const char *v)
{
    char q[MR_LOADER_QUOTE_MAX];

    if (!strcmp(v, "*")) {
        if (ld->cfg->n_keys)
            return true;
        mr_loader_fail(ld, "\"*\" lets every web page call the gateway; it is only accepted "
                           "when gateway keys are configured (\"keys\")");
        return false;
    }
    if (valid_origin(v))
        return true;
    mr_loader_fail(ld,
                   "%s is not an origin: scheme://host[:port] as browsers send it, e.g. "
                   "\"https://app.example.com\" or \"http://localhost:3000\" (no path, no "
                   "trailing '/')",
                   mr_loader_quote(q, sizeof(q), v));
    return false;
}

int mr_config_http_load(mr_loader_t *ld, json_t *root)
{
    static const char *const cors_keys[] = {"allow_origins", NULL};
    mr_config_t *cfg = ld->cfg;
    json_t *cors = json_object_get(root, "cors");
    size_t saved;

    if (load_list(ld, root, "server_names", server_name_ok, &cfg->server_names,
                  &cfg->n_server_names) < 0)
        return -1;
    if (!cors)
        return 0;
    saved = mr_loader_key(ld, "cors");
    if (mr_loader_object(ld, cors) < 0 || mr_loader_check_keys(ld, cors, cors_keys) < 0 ||
        load_list(ld, cors, "allow_origins", origin_ok, &cfg->cors_origins, &cfg->n_cors_origins) <
            0)
        return -1;
    mr_loader_pop(ld, saved);
    return 0;
}
