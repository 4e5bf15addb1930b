/*
 * config — the entry points of loading, and the scalar keys.
 *
 * The loader walks the JSON document once, validating as it goes and
 * building an mr_config_t: first the table-driven scalar settings that
 * everything else reads (listen, max_attempts, timeouts, limits, health,
 * retry_budget), then providers, routes, policies and keys with their own
 * loaders (default_policy right after policies), then the remaining settings
 * and the whole-document checks. Every
 * object has a fixed set of keys; anything else is an error. Partial state
 * is owned by the config under construction, so any failure is just
 * mr_config_free() of what has been built so far.
 */
#include "meridian/config.h"

#include "meridian/config_http.h"
#include "meridian/config_policies.h"
#include "meridian/config_routes.h"
#include "meridian/loader.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    char why[160];
    char *host = NULL;
    uint16_t port = 0;

    if (parse_listen(hostport, &host, &port, why, sizeof(why)) < 0) {
        if (err && errlen) {
            char q[MR_LOADER_QUOTE_MAX], msg[512];
            snprintf(msg, sizeof(msg), "invalid listen address %s: %s",
                     mr_loader_quote(q, sizeof(q), hostport), why);
            mr_loader_redact(msg, err, errlen);
        }
        return -1;
    }
    free(cfg->listen_host);
    cfg->listen_host = host;
    cfg->listen_port = port;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Table-driven settings                                                     */
/* ------------------------------------------------------------------------ */

static void store_uint(void *at, const mr_setting_t *s, uint64_t v)
{
    if (s->size == sizeof(uint64_t)) {
        memcpy(at, &v, sizeof(v));
    } else {
        uint32_t w = (uint32_t)v;
        memcpy(at, &w, sizeof(w));
    }
}

static int load_uint(mr_loader_t *ld, json_t *obj, const mr_setting_t *s, void *at)
{
    json_int_t v = (json_int_t)s->def;
    bool given = obj && json_object_get(obj, s->key);

    if (given && mr_loader_int(ld, obj, s->key, (json_int_t)s->min, (json_int_t)s->max, &v) < 0)
        return -1;
    if (given && v == 0 && (s->flags & MR_SETTING_ZERO_AS))
        store_uint(at, s, (uint64_t)s->zero_as);
    else
        store_uint(at, s, (uint64_t)v);
    return 0;
}

static int load_number(mr_loader_t *ld, json_t *obj, const mr_setting_t *s, void *at)
{
    double d = s->def;
    bool given = false;

    if (obj && mr_loader_number(ld, obj, s->key, s->min, s->max, false, &given, &d) < 0)
        return -1;
    if (given && d == 0 && (s->flags & MR_SETTING_ZERO_AS))
        d = s->zero_as;
    memcpy(at, &d, sizeof(d));
    return 0;
}

static int load_bool(mr_loader_t *ld, json_t *obj, const mr_setting_t *s, void *at)
{
    /* loaded after the keys (MR_STAGE_LAST), so n_keys is known here */
    bool b = s->def != 0 && !((s->flags & MR_SETTING_OFF_WITH_KEYS) && ld->cfg->n_keys);

    if (obj && mr_loader_bool(ld, obj, s->key, &b) < 0)
        return -1;
    memcpy(at, &b, sizeof(b));
    return 0;
}

static bool means_off(const mr_setting_t *s, const char *v)
{
    return (s->flags & MR_SETTING_OFF_IS_NULL) && (!*v || !strcmp(v, "off"));
}

static int load_string(mr_loader_t *ld, json_t *obj, const mr_setting_t *s, void *at)
{
    bool required = obj && (s->flags & MR_SETTING_REQUIRED);
    char *v = NULL;

    if (obj && mr_loader_expanded(ld, obj, s->key, required, &v) < 0)
        return -1;
    if (!v && s->def_str && !(v = strdup(s->def_str)))
        return mr_loader_fail(ld, "out of memory");
    if (v && means_off(s, v)) {
        free(v);
        v = NULL;
    }
    memcpy(at, &v, sizeof(v)); /* the config owns it from here */
    return 0;
}

/* MR_SETTING_NONEMPTY rows, checked once their whole section is loaded. */
static int check_nonempty(mr_loader_t *ld, const mr_setting_t *rows, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *v;
        if (rows[i].type != MR_SETTING_STRING || !(rows[i].flags & MR_SETTING_NONEMPTY))
            continue;
        memcpy(&v, (const char *)ld->cfg + rows[i].offset, sizeof(v));
        if (v && !*v) {
            mr_loader_key(ld, rows[i].key);
            return mr_loader_fail(ld, "must not be empty");
        }
    }
    return 0;
}

static int load_listen(mr_loader_t *ld, json_t *root, const mr_setting_t *s)
{
    mr_config_t *cfg = ld->cfg;
    char *v = NULL, why[160];
    int rc;

    if (mr_loader_expanded(ld, root, s->key, false, &v) < 0)
        return -1;
    if (!v && !(v = strdup(s->def_str)))
        return mr_loader_fail(ld, "out of memory");
    rc = parse_listen(v, &cfg->listen_host, &cfg->listen_port, why, sizeof(why));
    if (rc < 0) {
        char q[MR_LOADER_QUOTE_MAX];
        mr_loader_key(ld, s->key);
        mr_loader_fail(ld, "invalid address %s: %s", mr_loader_quote(q, sizeof(q), v), why);
    }
    free(v);
    return rc;
}

static int load_policy_ref(mr_loader_t *ld, json_t *obj, const mr_setting_t *s, void *at)
{
    const mr_policy_t *p = NULL;
    const char *name = NULL;

    if (obj && mr_loader_plain(ld, obj, s->key, false, &name) < 0)
        return -1;
    if (name) {
        size_t saved = mr_loader_key(ld, s->key);
        if (mr_config_check_policy_ref(ld, name, &p) < 0)
            return -1;
        mr_loader_pop(ld, saved);
    }
    memcpy(at, &p, sizeof(p));
    return 0;
}

/* One of the row's names, stored as its index (the message lists them
 * as mr_loader_enum does). */
static int load_enum(mr_loader_t *ld, json_t *obj, const mr_setting_t *s, void *at)
{
    unsigned v = (unsigned)s->def;
    const char *name = NULL;

    if (obj && mr_loader_plain(ld, obj, s->key, false, &name) < 0)
        return -1;
    for (unsigned i = 0; name && s->names[i]; i++)
        if (!strcmp(name, s->names[i])) {
            v = i;
            name = NULL;
            break;
        }
    if (name) {
        char q[MR_LOADER_QUOTE_MAX], list[256] = "";
        size_t o = 0;
        for (unsigned i = 0; s->names[i] && o < sizeof(list); i++)
            o += (size_t)snprintf(list + o, sizeof(list) - o, "%s%s", i ? ", " : "", s->names[i]);
        mr_loader_key(ld, s->key);
        return mr_loader_fail(ld, "must be one of %s (got %s)", list,
                              mr_loader_quote(q, sizeof(q), name));
    }
    memcpy(at, &v, sizeof(v));
    return 0;
}

/* One row: its member of `obj` (the section, NULL when the section is not
 * in the file), or its default. */
static int load_setting(mr_loader_t *ld, json_t *obj, const mr_setting_t *s)
{
    void *at = (char *)ld->cfg + s->offset;

    switch (s->type) {
    case MR_SETTING_UINT:
        return load_uint(ld, obj, s, at);
    case MR_SETTING_NUMBER:
        return load_number(ld, obj, s, at);
    case MR_SETTING_BOOL:
        return load_bool(ld, obj, s, at);
    case MR_SETTING_STRING:
        return load_string(ld, obj, s, at);
    case MR_SETTING_LISTEN:
        return load_listen(ld, obj, s);
    case MR_SETTING_POLICY:
        return load_policy_ref(ld, obj, s, at);
    case MR_SETTING_ENUM:
        return load_enum(ld, obj, s, at);
    }
    return mr_loader_fail(ld, "%s: unknown setting type", s->key);
}

/* Rows [0, n) from `obj` (NULL: all defaults), then their non-empty checks. */
static int load_rows(mr_loader_t *ld, json_t *obj, const mr_setting_t *rows, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (load_setting(ld, obj, &rows[i]) < 0)
            return -1;
    return check_nonempty(ld, rows, n);
}

static bool same_section(const mr_setting_t *a, const mr_setting_t *b)
{
    return a->section && b->section && !strcmp(a->section, b->section);
}

/* The keys of rows [0, n), NULL-terminated, malloc'd (NULL: out of memory). */
static const char **section_keys(const mr_setting_t *rows, size_t n)
{
    const char **keys = calloc(n + 1, sizeof(*keys));

    for (size_t i = 0; keys && i < n; i++)
        keys[i] = rows[i].key;
    return keys;
}

/* The rows [0, n) of one section object: it must be an object with no
 * other members; when absent, every row takes its default. */
static int load_section(mr_loader_t *ld, json_t *root, const mr_setting_t *rows, size_t n)
{
    json_t *obj = json_object_get(root, rows[0].section);
    size_t saved = ld->plen;

    if (obj) {
        const char **keys = section_keys(rows, n);
        int rc;

        saved = mr_loader_key(ld, rows[0].section);
        if (!keys)
            return mr_loader_fail(ld, "out of memory");
        rc = mr_loader_object(ld, obj) < 0 ? -1 : mr_loader_check_keys(ld, obj, keys);
        free(keys);
        if (rc < 0)
            return -1;
    }
    if (load_rows(ld, obj, rows, n) < 0)
        return -1;
    mr_loader_pop(ld, saved);
    return 0;
}

/* Every row of `stage`, in table order: a top-level key, or a section. */
static int load_settings(mr_loader_t *ld, json_t *root, mr_setting_stage_t stage)
{
    size_t n, i = 0;
    const mr_setting_t *rows = mr_settings(&n);

    while (i < n) {
        size_t end = i + 1;

        while (end < n && same_section(&rows[i], &rows[end]))
            end++;
        if (rows[i].stage == stage && (rows[i].section ? load_section(ld, root, rows + i, end - i)
                                                       : load_rows(ld, root, rows + i, 1)) < 0)
            return -1;
        i = end;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* The document                                                              */
/* ------------------------------------------------------------------------ */

/* The top-level keys: each setting or section, then the named objects. */
static const char **root_keys(void)
{
    static const char *const named[] = {"providers", "routes",       "policies",
                                        "keys",      "server_names", "cors"};
    size_t n, k = 0, nn = sizeof(named) / sizeof(named[0]);
    const mr_setting_t *rows = mr_settings(&n);
    const char **keys = calloc(n + nn + 1, sizeof(*keys));

    if (!keys)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (!rows[i].section || !i || !same_section(&rows[i - 1], &rows[i]))
            keys[k++] = rows[i].section ? rows[i].section : rows[i].key;
    for (size_t i = 0; i < nn; i++)
        keys[k++] = named[i];
    return keys;
}

static int check_root_keys(mr_loader_t *ld, json_t *root)
{
    const char **keys = root_keys();
    int rc;

    if (!keys)
        return mr_loader_fail(ld, "out of memory");
    rc = mr_loader_check_keys(ld, root, keys);
    free(keys);
    return rc;
}

/*
 * Dense indexes soft state is keyed by: distinct vendors (providers sharing
 * a vendor share one index) and distinct (provider, model) target pairs.
 * Both follow file order, so they are stable for a given file.
 */
static int derive_indexes(mr_loader_t *ld)
{
    mr_config_t *cfg = ld->cfg;

    cfg->common_capabilities = MR_CAP_ALL;
    if (!(cfg->vendors = calloc(cfg->n_providers ? cfg->n_providers : 1, sizeof(char *))))
        return mr_loader_fail(ld, "out of memory");
    for (size_t i = 0; i < cfg->n_providers; i++) {
        mr_provider_t *p = &cfg->providers[i];
        size_t v = 0;
        while (v < cfg->n_vendors && strcmp(cfg->vendors[v], p->vendor))
            v++;
        if (v == cfg->n_vendors)
            cfg->vendors[cfg->n_vendors++] = p->vendor;
        p->vendor_index = v;
        cfg->common_capabilities &= p->capabilities;
    }
    for (size_t i = 0; i < cfg->n_routes; i++) {
        for (size_t j = 0; j < cfg->routes[i].n_targets; j++) {
            mr_target_t *t = &cfg->routes[i].targets[j];
            bool found = false;
            cfg->common_capabilities &= t->capabilities;
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

static int load_root(mr_loader_t *ld, json_t *root)
{
    if (!json_is_object(root))
        return mr_loader_fail(ld, "the top level must be a JSON object (got %s)",
                              mr_loader_type_name(root));
    if (check_root_keys(ld, root) < 0 || load_settings(ld, root, MR_STAGE_FIRST) < 0 ||
        mr_config_routes_load_providers(ld, root) < 0 || mr_config_routes_load(ld, root) < 0 ||
        derive_indexes(ld) < 0 || mr_config_policies_load(ld, root) < 0 ||
        load_settings(ld, root, MR_STAGE_AFTER_POLICIES) < 0 ||
        mr_config_policies_load_keys(ld, root) < 0 || load_settings(ld, root, MR_STAGE_LAST) < 0 ||
        mr_config_http_load(ld, root) < 0)
        return -1;
    return mr_config_check_document(ld);
}

static int load_json(json_t *root, const char *origin, mr_config_t **out, char *err, size_t errlen)
{
    mr_loader_t ld = {.origin = origin, .err = err, .errlen = errlen, .root = root};

    if (!(ld.cfg = calloc(1, sizeof(*ld.cfg))) || !(ld.cfg->origin = strdup(origin))) {
        free(ld.cfg);
        return mr_loader_fail(&ld, "out of memory");
    }
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
        char msg[768];
        /* jansson may quote the token it stopped in, e.g. a URL */
        snprintf(msg, sizeof(msg), "%s:%d:%d: invalid JSON: %s", origin, je.line, je.column,
                 je.text);
        if (err && errlen)
            mr_loader_redact(msg, err, errlen);
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

/* The whole file into a malloc'd buffer of at most MR_CONFIG_FILE_MAX bytes. */
static int read_file(FILE *f, const char *path, char **out, size_t *len, char *err, size_t errlen)
{
    char *buf = NULL;
    size_t cap = 0, n;

    *len = 0;
    do {
        if (*len == cap) {
            char *nb;
            if (cap >= (size_t)MR_CONFIG_FILE_MAX) {
                snprintf(err, errlen, "%s: file larger than %d bytes", path, MR_CONFIG_FILE_MAX);
                goto fail;
            }
            if (!(nb = realloc(buf, cap = cap ? cap * 2 : 16384))) {
                snprintf(err, errlen, "%s: out of memory", path);
                goto fail;
            }
            buf = nb;
        }
        n = fread(buf + *len, 1, cap - *len, f);
        *len += n;
    } while (n > 0);
    if (ferror(f)) {
        snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
        goto fail;
    }
    *out = buf;
    return 0;
fail:
    free(buf);
    return -1;
}

int mr_config_load_file(const char *path, mr_config_t **out, char *err, size_t errlen)
{
    char scratch[1], *buf = NULL;
    size_t len;
    FILE *f;
    int rc;

    *out = NULL;
    if (!err || !errlen) {
        err = scratch;
        errlen = sizeof(scratch);
    }
    if (!(f = fopen(path, "rb"))) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    rc = read_file(f, path, &buf, &len, err, errlen);
    fclose(f);
    if (rc < 0)
        return -1;
    rc = load_buffer(buf ? buf : "", len, path, out, err, errlen);
    free(buf);
    return rc;
}
