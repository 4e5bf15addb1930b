/*
 * loader — path-tracked reading of a config document.
 *
 * The path is a small string stack inside the loader: descending into a
 * member appends ".key" (or ["key"]), an array element "[i]", and popping
 * truncates back. A failure leaves the path where it was, so the message
 * names the offending value without the caller saying where it is.
 */
#include "meridian/loader.h"

#include "meridian/env.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define QUOTE_INPUT_MAX 80      /* input bytes quoted before "..." */
#define URL_END "/?#\"' \t\r\n" /* where the authority of a URL in a message ends */

/* ------------------------------------------------------------------------ */
/* Credentials in messages                                                   */
/* ------------------------------------------------------------------------ */

static bool is_host_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '-' || c == '_' || c == '~' || c == '%';
}

/* host, host:port, [v6], [v6]:port or nothing. */
static bool plain_authority(const char *p, size_t n)
{
    size_t h = 0;

    if (n && p[0] == '[') {
        const char *e = memchr(p, ']', n);
        if (!e)
            return false;
        h = (size_t)(e - p) + 1;
    } else {
        while (h < n && is_host_char(p[h]))
            h++;
    }
    if (h < n && p[h] == ':')
        for (h++; h < n && p[h] >= '0' && p[h] <= '9'; h++)
            ;
    return h == n;
}

/* Bytes to hide at p, just after a "://": the userinfo before the
 * authority's last '@'; when there is no '@', the whole authority unless it
 * is a plain host[:port]. 0: nothing to hide. */
static size_t userinfo_len(const char *p)
{
    size_t n = strcspn(p, URL_END);

    for (size_t i = n; i > 0; i--)
        if (p[i - 1] == '@')
            return i - 1;
    return plain_authority(p, n) ? 0 : n;
}

static bool after_scheme(const char *start, const char *p)
{
    return p - start >= 3 && !strncmp(p - 3, "://", 3);
}

void mr_loader_redact(const char *in, char *out, size_t n)
{
    const char *p = in;
    size_t o = 0;

    if (n == 0)
        return;
    while (*p && o + 1 < n) {
        size_t hide = after_scheme(in, p) ? userinfo_len(p) : 0;
        if (hide) {
            for (const char *h = "***"; *h && o + 1 < n; h++)
                out[o++] = *h;
            p += hide;
        } else {
            out[o++] = *p++;
        }
    }
    out[o] = '\0';
}

static void hide_secret(char *msg, const char *secret)
{
    size_t len = strlen(secret);
    char *p;

    if (len < MR_LOADER_SECRET_MIN)
        return;
    while ((p = strstr(msg, secret))) {
        memcpy(p, "***", 3);
        memmove(p + 3, p + len, strlen(p + len) + 1);
    }
}

static void hide_var(const char *name, const char *value, void *msg)
{
    (void)name;
    if (value)
        hide_secret(msg, value);
}

/* Every api_key of the document, expanded, and each variable it reads:
 * also those of providers not loaded yet, whose values are secrets too. */
static void hide_keys(json_t *root, char *msg)
{
    json_t *providers = json_object_get(root, "providers"), *p;
    const char *name;

    if (!json_is_object(providers))
        return;
    json_object_foreach(providers, name, p)
    {
        const char *raw = json_string_value(json_object_get(p, "api_key"));
        char *val = NULL;

        if (raw && mr_env_expand_visit(raw, &val, NULL, hide_var, msg, NULL, 0) == 0) {
            hide_secret(msg, val);
            explicit_bzero(val, strlen(val));
            free(val);
        }
    }
}

/* A composed message or warning (modified) as it may be shown, into out. */
static void show(const mr_loader_t *ld, char *msg, char *out, size_t n)
{
    if (ld->root)
        hide_keys(ld->root, msg);
    mr_loader_redact(msg, out, n);
}

/* ------------------------------------------------------------------------ */
/* Small helpers                                                             */
/* ------------------------------------------------------------------------ */

bool mr_loader_has_control(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return true;
    return false;
}

const char *mr_loader_quote(char *buf, size_t n, const char *s)
{
    size_t o = 0, i = 0, shown = 0;

    if (n < 8) {
        if (n)
            buf[0] = '\0';
        return buf;
    }
    buf[o++] = '"';
    for (; shown < QUOTE_INPUT_MAX && s[i]; i++, shown++) {
        unsigned char c = (unsigned char)s[i];
        size_t hide = after_scheme(s, s + i) ? userinfo_len(s + i) : 0;
        if (o + 6 >= n)
            break;
        if (hide) {
            /* credentials first, so that a long value is never cut inside them */
            memcpy(buf + o, "***", 3);
            o += 3;
            i += hide - 1;
        } else if (c == '"' || c == '\\') {
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

const char *mr_loader_type_name(const json_t *v)
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

bool mr_loader_valid_name(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > MR_NAME_MAX || !is_name_char(s[0]))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!is_name_char(s[i]) && s[i] != '-' && s[i] != '.')
            return false;
    return true;
}

bool mr_loader_valid_tag_name(const char *s)
{
    return mr_loader_valid_name(s) && is_name_start(s[0]);
}

/* ------------------------------------------------------------------------ */
/* Did you mean                                                              */
/* ------------------------------------------------------------------------ */

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

void mr_loader_suggest_init(mr_loader_suggest_t *s, const char *word)
{
    *s = (mr_loader_suggest_t){.word = word, .best_d = SIZE_MAX};
}

void mr_loader_suggest_try(mr_loader_suggest_t *s, const char *cand)
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

const char *mr_loader_suggest_text(const mr_loader_suggest_t *s, char *buf, size_t n)
{
    char q[MR_LOADER_QUOTE_MAX - 40]; /* room for the words around it */

    if (!s->best) {
        buf[0] = '\0';
        return buf;
    }
    snprintf(buf, n, " (did you mean %s?)", mr_loader_quote(q, sizeof(q), s->best));
    return buf;
}

/* ------------------------------------------------------------------------ */
/* Messages and the path                                                     */
/* ------------------------------------------------------------------------ */

int mr_loader_fail(mr_loader_t *ld, const char *fmt, ...)
{
    char msg[768], line[1536];
    va_list ap;

    if (!ld->err || !ld->errlen)
        return -1;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (ld->plen)
        snprintf(line, sizeof(line), "%s: %s: %s", ld->origin, ld->path, msg);
    else
        snprintf(line, sizeof(line), "%s: %s", ld->origin, msg);
    show(ld, line, ld->err, ld->errlen);
    return -1;
}

int mr_loader_warn(mr_loader_t *ld, const char *fmt, ...)
{
    mr_config_t *cfg = ld->cfg;
    char buf[512], shown[512];
    va_list ap;
    char **w;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    show(ld, buf, shown, sizeof(shown));
    w = realloc(cfg->warnings, (cfg->n_warnings + 1) * sizeof(*w));
    if (!w)
        return mr_loader_fail(ld, "out of memory");
    cfg->warnings = w;
    if (!(w[cfg->n_warnings] = strdup(shown)))
        return mr_loader_fail(ld, "out of memory");
    cfg->n_warnings++;
    return 0;
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

static void path_append(mr_loader_t *ld, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void path_append(mr_loader_t *ld, const char *fmt, ...)
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

size_t mr_loader_key(mr_loader_t *ld, const char *key)
{
    size_t saved = ld->plen;

    if (key_needs_brackets(key)) {
        char q[MR_LOADER_QUOTE_MAX];
        path_append(ld, "[%s]", mr_loader_quote(q, sizeof(q), key));
    } else {
        path_append(ld, "%s%s", ld->plen ? "." : "", key);
    }
    return saved;
}

size_t mr_loader_index(mr_loader_t *ld, size_t i)
{
    size_t saved = ld->plen;
    path_append(ld, "[%zu]", i);
    return saved;
}

void mr_loader_pop(mr_loader_t *ld, size_t saved)
{
    ld->plen = saved;
    ld->path[saved] = '\0';
}

/* ------------------------------------------------------------------------ */
/* Typed members                                                             */
/* ------------------------------------------------------------------------ */

int mr_loader_check_keys(mr_loader_t *ld, json_t *obj, const char *const *known)
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
        size_t saved = mr_loader_key(ld, key);
        if (!strcmp(key, "$comment")) {
            if (!json_is_string(v))
                return mr_loader_fail(ld, "must be a string (got %s)", mr_loader_type_name(v));
            mr_loader_pop(ld, saved);
            continue;
        }
        mr_loader_suggest_t s;
        char hint[MR_LOADER_QUOTE_MAX];
        mr_loader_suggest_init(&s, key);
        for (const char *const *k = known; *k; k++)
            mr_loader_suggest_try(&s, *k);
        return mr_loader_fail(ld, "unknown key%s", mr_loader_suggest_text(&s, hint, sizeof(hint)));
    }
    return 0;
}

int mr_loader_int(mr_loader_t *ld, json_t *obj, const char *key, json_int_t min, json_int_t max,
                  json_int_t *out)
{
    json_t *v = json_object_get(obj, key);
    size_t saved;

    if (!v)
        return 0;
    saved = mr_loader_key(ld, key);
    if (json_is_real(v))
        return mr_loader_fail(ld, "must be an integer from %lld to %lld (got %g)", (long long)min,
                              (long long)max, json_real_value(v));
    if (!json_is_integer(v))
        return mr_loader_fail(ld, "must be an integer from %lld to %lld (got %s)", (long long)min,
                              (long long)max, mr_loader_type_name(v));
    if (json_integer_value(v) < min || json_integer_value(v) > max)
        return mr_loader_fail(ld, "must be an integer from %lld to %lld (got %lld)", (long long)min,
                              (long long)max, (long long)json_integer_value(v));
    *out = json_integer_value(v);
    mr_loader_pop(ld, saved);
    return 0;
}

int mr_loader_number(mr_loader_t *ld, json_t *obj, const char *key, double min, double max,
                     bool min_exclusive, bool *present, double *out)
{
    json_t *v = json_object_get(obj, key);
    const char *from = min_exclusive ? "greater than" : "from";
    const char *to = min_exclusive ? "and at most" : "to";
    size_t saved;
    double d;

    if (present)
        *present = false;
    if (!v)
        return 0;
    saved = mr_loader_key(ld, key);
    if (!json_is_number(v))
        return mr_loader_fail(ld, "must be a number %s %g %s %g (got %s)", from, min, to, max,
                              mr_loader_type_name(v));
    d = json_number_value(v);
    if (!(min_exclusive ? d > min : d >= min) || !(d <= max))
        return mr_loader_fail(ld, "must be a number %s %g %s %g (got %g)", from, min, to, max, d);
    *out = d;
    if (present)
        *present = true;
    mr_loader_pop(ld, saved);
    return 0;
}

int mr_loader_bool(mr_loader_t *ld, json_t *obj, const char *key, bool *out)
{
    json_t *v = json_object_get(obj, key);
    size_t saved;

    if (!v)
        return 0;
    saved = mr_loader_key(ld, key);
    if (!json_is_boolean(v))
        return mr_loader_fail(ld, "must be true or false (got %s)", mr_loader_type_name(v));
    *out = json_is_true(v);
    mr_loader_pop(ld, saved);
    return 0;
}

int mr_loader_plain(mr_loader_t *ld, json_t *obj, const char *key, bool required, const char **out)
{
    json_t *v = json_object_get(obj, key);
    size_t saved = mr_loader_key(ld, key);

    *out = NULL;
    if (!v) {
        if (required)
            return mr_loader_fail(ld, "missing (required)");
        mr_loader_pop(ld, saved);
        return 0;
    }
    if (!json_is_string(v))
        return mr_loader_fail(ld, "must be a string (got %s)", mr_loader_type_name(v));
    *out = json_string_value(v);
    mr_loader_pop(ld, saved);
    return 0;
}

int mr_loader_expand(mr_loader_t *ld, const char *raw, char **out)
{
    char why[256], *missing = NULL;
    int rc = mr_env_expand(raw, out, &missing, why, sizeof(why));

    if (rc < 0)
        return mr_loader_fail(ld, "%s", why);
    if (rc == 1) {
        mr_loader_fail(ld, "${%s} is not set (write ${%s:-default} to give a fallback)", missing,
                       missing);
        free(missing);
        return -1;
    }
    return 0;
}

int mr_loader_expanded(mr_loader_t *ld, json_t *obj, const char *key, bool required, char **out)
{
    const char *raw;
    size_t saved;

    *out = NULL;
    if (mr_loader_plain(ld, obj, key, required, &raw) < 0)
        return -1;
    if (!raw)
        return 0;
    saved = mr_loader_key(ld, key);
    if (mr_loader_expand(ld, raw, out) < 0)
        return -1;
    mr_loader_pop(ld, saved);
    return 0;
}

int mr_loader_enum(mr_loader_t *ld, json_t *obj, const char *key, const char *(*name)(int), int n,
                   bool *present, int *out)
{
    const char *v;
    char q[MR_LOADER_QUOTE_MAX], list[256];
    size_t o = 0;

    *present = false;
    if (mr_loader_plain(ld, obj, key, false, &v) < 0)
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
    mr_loader_key(ld, key); /* the message names the member */
    return mr_loader_fail(ld, "must be one of %s (got %s)", list, mr_loader_quote(q, sizeof(q), v));
}

int mr_loader_jurisdiction(mr_loader_t *ld, char *j)
{
    bool ok = strlen(j) == 2;

    for (size_t i = 0; ok && i < 2; i++)
        ok = (j[i] >= 'A' && j[i] <= 'Z') || (j[i] >= 'a' && j[i] <= 'z');
    if (!ok) {
        char q[MR_LOADER_QUOTE_MAX];
        return mr_loader_fail(ld,
                              "must be a two-letter ISO 3166-1 country code such as \"FR\" "
                              "(got %s)",
                              mr_loader_quote(q, sizeof(q), j));
    }
    for (size_t i = 0; i < 2; i++)
        if (j[i] >= 'a' && j[i] <= 'z')
            j[i] = (char)(j[i] - 'a' + 'A');
    return 0;
}

int mr_loader_object(mr_loader_t *ld, json_t *obj)
{
    if (!json_is_object(obj))
        return mr_loader_fail(ld, "must be an object (got %s)", mr_loader_type_name(obj));
    return 0;
}

int mr_loader_text(mr_loader_t *ld, const char *v, bool allow_empty, size_t max)
{
    if (!allow_empty && !*v)
        return mr_loader_fail(ld, "must not be empty");
    if (max && strlen(v) > max)
        return mr_loader_fail(ld, "must be at most %zu bytes", max);
    if (mr_loader_has_control(v))
        return mr_loader_fail(ld, "must not contain control characters");
    return 0;
}

int mr_loader_label(mr_loader_t *ld, const char *key, const char *v, bool allow_empty)
{
    size_t saved = mr_loader_key(ld, key);

    if (mr_loader_text(ld, v, allow_empty, MR_LABEL_MAX) < 0)
        return -1;
    mr_loader_pop(ld, saved);
    return 0;
}

int mr_loader_name(mr_loader_t *ld, const char *noun, const char *name, char **out)
{
    if (!mr_loader_valid_name(name))
        return mr_loader_fail(ld,
                              "invalid %s name: use 1 to %d letters, digits, '_', '-' or '.', "
                              "starting with a letter, digit or '_'",
                              noun, MR_NAME_MAX);
    if (!(*out = strdup(name)))
        return mr_loader_fail(ld, "out of memory");
    return 0;
}

int mr_loader_named(mr_loader_t *ld, json_t *root, const char *key, const char *noun,
                    const char *nouns, size_t min, size_t max, void **arr, size_t elem,
                    size_t *count, mr_loader_one_fn one)
{
    json_t *obj = json_object_get(root, key), *v;
    const char *name;
    size_t saved, n, i = 0;

    if (!obj && min == 0)
        return 0;
    saved = mr_loader_key(ld, key);
    if (!obj)
        return mr_loader_fail(ld, "missing (required): define at least one %s", noun);
    if (!json_is_object(obj))
        return mr_loader_fail(ld, "must be an object mapping %s names to %s (got %s)", noun, nouns,
                              mr_loader_type_name(obj));
    n = json_object_size(obj) - (json_object_get(obj, "$comment") ? 1 : 0);
    if (n < min)
        return mr_loader_fail(ld, "must define at least one %s", noun);
    if (n > max)
        return mr_loader_fail(ld, "at most %zu %s (got %zu)", max, nouns, n);
    if (n && !(*arr = calloc(n, elem)))
        return mr_loader_fail(ld, "out of memory");
    json_object_foreach(obj, name, v)
    {
        size_t s = mr_loader_key(ld, name);
        if (!strcmp(name, "$comment")) {
            if (!json_is_string(v))
                return mr_loader_fail(ld, "must be a string (got %s)", mr_loader_type_name(v));
        } else {
            *count = i + 1;
            if (one(ld, name, v, i++) < 0)
                return -1;
        }
        mr_loader_pop(ld, s);
    }
    mr_loader_pop(ld, saved);
    return 0;
}
