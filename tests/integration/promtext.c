/*
 * promtext — strict Prometheus text format 0.0.4 parser. See promtext.h for
 * the contract.
 */
#include "promtext.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

enum { PT_UNTYPED, PT_COUNTER, PT_GAUGE, PT_HISTOGRAM, PT_SUMMARY };

static const char *const pt_type_names[] = {"untyped", "counter", "gauge", "histogram", "summary"};

/* What a sample is within its family. */
enum { PS_PLAIN, PS_BUCKET, PS_SUM, PS_COUNT };

#define PT_NONE SIZE_MAX

typedef struct {
    int type;
    int typed;
    int has_help;
    int closed; /* another family's line followed this one's samples */
    size_t n_samples;
} prom_fam_state_t;

/* Open-addressing hash map: byte-string key -> size_t. */
typedef struct {
    char *key; /* NULL: empty slot */
    size_t len;
    size_t val;
    uint64_t hash;
} prom_slot_t;

typedef struct {
    prom_slot_t *slots;
    size_t cap, n;
} prom_map_t;

/* One histogram or summary series: a label set (without le/quantile). */
typedef struct {
    size_t fam;
    size_t first_line;
    char *desc; /* "x{a=\"b\"}" for messages */
    int n_points;
    double last_bound, last_cum; /* previous bucket's le and count, or quantile */
    int has_inf;
    double inf_cum;
    int has_count;
    double count;
    size_t count_line;
} prom_group_t;

typedef struct {
    char **names, **values;
    size_t n, cap_names, cap_values;
} prom_labels_t;

typedef struct {
    prom_doc_t *doc;
    size_t cap_samples, cap_families;
    prom_fam_state_t *fs; /* parallel to doc->families */
    prom_map_t series;
    prom_map_t group_map;
    prom_group_t *groups;
    size_t n_groups, cap_groups;
    size_t last_fam;
    size_t line;
    char *err;
    size_t errlen;
} prom_parser_t;

/* ------------------------------------------------------------ utilities */

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static int
prom_fail(prom_parser_t *p, const char *fmt, ...)
{
    if (p->err && p->errlen) {
        int k = snprintf(p->err, p->errlen, "line %zu: ", p->line);
        if (k >= 0 && (size_t)k < p->errlen) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(p->err + k, p->errlen - (size_t)k, fmt, ap);
            va_end(ap);
        }
    }
    return -1;
}

static int prom_oom(prom_parser_t *p)
{
    return prom_fail(p, "out of memory");
}

static int prom_grow(void **arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t nc = *cap ? *cap * 2 : 16;
    while (nc < need)
        nc *= 2;
    void *n = realloc(*arr, nc * elem);
    if (!n)
        return -1;
    memset((char *)n + *cap * elem, 0, (nc - *cap) * elem);
    *arr = n;
    *cap = nc;
    return 0;
}

static char *prom_strndup(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

static int prom_is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static int prom_is_alpha_(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static int prom_is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int prom_has_suffix(const char *s, size_t n, const char *suf)
{
    size_t k = strlen(suf);
    return n > k && memcmp(s + n - k, suf, k) == 0;
}

/* Strict UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF. */
static int prom_utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t k;
        unsigned cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            k = 1;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            k = 2;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            k = 3;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if (n - i <= k)
            return 0;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xC0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + j] & 0x3F);
        }
        if ((k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) || cp > 0x10FFFF ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += k + 1;
    }
    return 1;
}

/* Go ParseFloat as the format uses it, restricted to decimal notation:
 * [+-]?(d+(.d*)?|.d+)([eE][+-]?d+)?, or exactly +Inf, -Inf, NaN.
 * 0 ok, -1 bad syntax, -2 out of range. */
static int prom_parse_float(const char *s, size_t n, double *out)
{
    if (n == 4 && memcmp(s, "+Inf", 4) == 0) {
        *out = INFINITY;
        return 0;
    }
    if (n == 4 && memcmp(s, "-Inf", 4) == 0) {
        *out = -INFINITY;
        return 0;
    }
    if (n == 3 && memcmp(s, "NaN", 3) == 0) {
        *out = NAN;
        return 0;
    }
    size_t i = 0, digits = 0;
    if (i < n && (s[i] == '+' || s[i] == '-'))
        i++;
    while (i < n && prom_is_digit(s[i]))
        i++, digits++;
    if (i < n && s[i] == '.') {
        i++;
        while (i < n && prom_is_digit(s[i]))
            i++, digits++;
    }
    if (digits == 0)
        return -1;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        size_t ed = 0;
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        while (i < n && prom_is_digit(s[i]))
            i++, ed++;
        if (ed == 0)
            return -1;
    }
    if (i != n)
        return -1;
    char *copy = prom_strndup(s, n), *end = NULL;
    if (!copy)
        return -1;
    errno = 0;
    double v = strtod(copy, &end);
    int bad = end != copy + n; /* e.g. a locale with another decimal point */
    int range = errno == ERANGE && isinf(v);
    free(copy);
    if (bad)
        return -1;
    if (range)
        return -2;
    *out = v;
    return 0;
}

/* [+-]?digits within int64. */
static int prom_parse_timestamp(const char *s, size_t n)
{
    size_t i = 0;
    if (i < n && (s[i] == '+' || s[i] == '-'))
        i++;
    if (i == n)
        return -1;
    for (size_t j = i; j < n; j++)
        if (!prom_is_digit(s[j]))
            return -1;
    char *copy = prom_strndup(s, n), *end = NULL;
    if (!copy)
        return -1;
    errno = 0;
    (void)strtoll(copy, &end, 10);
    int ok = errno == 0 && end == copy + n;
    free(copy);
    return ok ? 0 : -2;
}

/* ------------------------------------------------------------- hash map */

static uint64_t prom_hash(const char *k, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)k[i];
        h *= 1099511628211ULL;
    }
    return h;
}

static int prom_map_rehash(prom_map_t *m)
{
    size_t nc = m->cap ? m->cap * 2 : 64;
    prom_slot_t *ns = calloc(nc, sizeof(*ns));
    if (!ns)
        return -1;
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->slots[i].key)
            continue;
        size_t j = m->slots[i].hash & (nc - 1);
        while (ns[j].key)
            j = (j + 1) & (nc - 1);
        ns[j] = m->slots[i];
    }
    free(m->slots);
    m->slots = ns;
    m->cap = nc;
    return 0;
}

/* Looks key up; when absent inserts it (taking ownership) with *val.
 * 1: found (*val set, key still the caller's), 0: inserted, -1: no memory. */
static int prom_map_put(prom_map_t *m, char *key, size_t len, size_t *val)
{
    if ((m->n + 1) * 2 > m->cap && prom_map_rehash(m) != 0)
        return -1;
    uint64_t h = prom_hash(key, len);
    size_t j = h & (m->cap - 1);
    while (m->slots[j].key) {
        prom_slot_t *s = &m->slots[j];
        if (s->hash == h && s->len == len && memcmp(s->key, key, len) == 0) {
            *val = s->val;
            return 1;
        }
        j = (j + 1) & (m->cap - 1);
    }
    m->slots[j].key = key;
    m->slots[j].len = len;
    m->slots[j].val = *val;
    m->slots[j].hash = h;
    m->n++;
    return 0;
}

static void prom_map_free(prom_map_t *m)
{
    for (size_t i = 0; i < m->cap; i++)
        free(m->slots[i].key);
    free(m->slots);
    m->slots = NULL;
    m->cap = m->n = 0;
}

/* --------------------------------------------------------------- labels */

static void prom_labels_free(prom_labels_t *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->names[i]);
        free(l->values[i]);
    }
    free(l->names);
    free(l->values);
    memset(l, 0, sizeof(*l));
}

static const char *prom_label_get(const prom_labels_t *l, const char *name)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->names[i], name) == 0)
            return l->values[i];
    return NULL;
}

static int prom_key_append(char **buf, size_t *len, size_t *cap, const void *data, size_t n)
{
    uint32_t n32 = (uint32_t)n;
    if (prom_grow((void **)buf, cap, *len + sizeof(n32) + n, 1) != 0)
        return -1;
    memcpy(*buf + *len, &n32, sizeof(n32));
    memcpy(*buf + *len + sizeof(n32), data, n);
    *len += sizeof(n32) + n;
    return 0;
}

/* Canonical key of head + the label set without `skip` (may be NULL),
 * label order ignored: length-prefixed fields, labels sorted by name. */
static char *prom_series_key(const char *head, size_t head_len, const prom_labels_t *l,
                             const char *skip, size_t *klen)
{
    size_t *idx = NULL, n = 0, len = 0, cap = 0;
    char *buf = NULL;

    if (l->n && !(idx = malloc(l->n * sizeof(*idx))))
        return NULL;
    for (size_t i = 0; i < l->n; i++) {
        if (skip && strcmp(l->names[i], skip) == 0)
            continue;
        size_t j = n++;
        while (j > 0 && strcmp(l->names[idx[j - 1]], l->names[i]) > 0) {
            idx[j] = idx[j - 1];
            j--;
        }
        idx[j] = i;
    }
    int rc = prom_key_append(&buf, &len, &cap, head, head_len);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        rc = prom_key_append(&buf, &len, &cap, l->names[idx[i]], strlen(l->names[idx[i]]));
        if (rc == 0)
            rc = prom_key_append(&buf, &len, &cap, l->values[idx[i]], strlen(l->values[idx[i]]));
    }
    free(idx);
    if (rc != 0) {
        free(buf);
        return NULL;
    }
    *klen = len;
    return buf;
}

/* "name{a=\"v\",...}" without `skip`, escaped as in the format. */
static char *prom_series_desc(const char *name, const prom_labels_t *l, const char *skip)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return NULL;
    fputs(name, f);
    int first = 1;
    for (size_t i = 0; i < l->n; i++) {
        if (skip && strcmp(l->names[i], skip) == 0)
            continue;
        fprintf(f, "%s%s=\"", first ? "{" : ",", l->names[i]);
        first = 0;
        for (const char *c = l->values[i]; *c; c++) {
            if (*c == '\\' || *c == '"')
                fputc('\\', f), fputc(*c, f);
            else if (*c == '\n')
                fputs("\\n", f);
            else
                fputc(*c, f);
        }
        fputc('"', f);
    }
    if (!first)
        fputc('}', f);
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

/* ------------------------------------------------------------- families */

static size_t prom_find_family(const prom_parser_t *p, const char *name, size_t n)
{
    const prom_doc_t *d = p->doc;
    if (p->last_fam != PT_NONE) {
        const char *f = d->families[p->last_fam].name;
        if (strlen(f) == n && memcmp(f, name, n) == 0)
            return p->last_fam;
    }
    for (size_t i = d->n_families; i-- > 0;) {
        const char *f = d->families[i].name;
        if (strlen(f) == n && memcmp(f, name, n) == 0)
            return i;
    }
    return PT_NONE;
}

static size_t prom_add_family(prom_parser_t *p, const char *name, size_t n)
{
    prom_doc_t *d = p->doc;
    size_t cap = p->cap_families;
    if (prom_grow((void **)&d->families, &p->cap_families, d->n_families + 1,
                  sizeof(*d->families)) != 0)
        return PT_NONE;
    if (prom_grow((void **)&p->fs, &cap, d->n_families + 1, sizeof(*p->fs)) != 0)
        return PT_NONE;
    prom_family_t *f = &d->families[d->n_families];
    f->name = prom_strndup(name, n);
    f->type = strdup("untyped");
    f->help = NULL;
    if (!f->name || !f->type) {
        free(f->name);
        free(f->type);
        memset(f, 0, sizeof(*f));
        return PT_NONE;
    }
    memset(&p->fs[d->n_families], 0, sizeof(*p->fs));
    return d->n_families++;
}

/* If name is x_bucket/x_sum/x_count of a histogram (or summary) x already
 * typed, its family index, with *kind; else PT_NONE. */
static size_t prom_parent_family(const prom_parser_t *p, const char *name, size_t n, int *kind)
{
    static const struct {
        const char *suffix;
        int kind;
        int summary_too;
    } sfx[] = {{"_bucket", PS_BUCKET, 0}, {"_sum", PS_SUM, 1}, {"_count", PS_COUNT, 1}};
    for (size_t i = 0; i < sizeof(sfx) / sizeof(sfx[0]); i++) {
        if (!prom_has_suffix(name, n, sfx[i].suffix))
            continue;
        size_t f = prom_find_family(p, name, n - strlen(sfx[i].suffix));
        if (f == PT_NONE || !p->fs[f].typed)
            continue;
        if (p->fs[f].type == PT_HISTOGRAM || (sfx[i].summary_too && p->fs[f].type == PT_SUMMARY)) {
            *kind = sfx[i].kind;
            return f;
        }
    }
    return PT_NONE;
}

/* A line for family f follows: close the previous family if it had samples
 * and is another one; fail when f itself was closed. */
static int prom_touch_family(prom_parser_t *p, size_t f, const char *what)
{
    if (p->last_fam != PT_NONE && p->last_fam != f && p->fs[p->last_fam].n_samples > 0)
        p->fs[p->last_fam].closed = 1;
    if (p->fs[f].closed)
        return prom_fail(p,
                         "%s for family %s after another family's lines: a family's lines must "
                         "be contiguous",
                         what, p->doc->families[f].name);
    p->last_fam = f;
    return 0;
}

/* ----------------------------------------------------------------- lines */

/* Reads a metric name at s[*i]; 0 when none starts there. */
static size_t prom_scan_metric_name(const char *s, size_t n, size_t i)
{
    size_t j = i;
    if (j < n && (prom_is_alpha_(s[j]) || s[j] == ':')) {
        j++;
        while (j < n && (prom_is_alpha_(s[j]) || prom_is_digit(s[j]) || s[j] == ':'))
            j++;
    }
    return j - i;
}

static size_t prom_skip_blanks(const char *s, size_t n, size_t i)
{
    while (i < n && prom_is_blank(s[i]))
        i++;
    return i;
}

static size_t prom_token_end(const char *s, size_t n, size_t i)
{
    while (i < n && !prom_is_blank(s[i]))
        i++;
    return i;
}

static int prom_parse_meta(prom_parser_t *p, const char *s, size_t n, size_t i, int is_type)
{
    const char *kw = is_type ? "TYPE" : "HELP";
    size_t start = prom_skip_blanks(s, n, i);
    if (start == n)
        return prom_fail(p, "%s line without a metric name", kw);
    size_t nl = prom_scan_metric_name(s, n, start);
    if (nl == 0 || (start + nl < n && !prom_is_blank(s[start + nl])))
        return prom_fail(p, "invalid metric name \"%.*s\" in %s line",
                         (int)(prom_token_end(s, n, start) - start), s + start, kw);
    const char *name = s + start;
    i = prom_skip_blanks(s, n, start + nl);

    int kind;
    size_t parent = prom_parent_family(p, name, nl, &kind);
    if (parent != PT_NONE)
        return prom_fail(p, "%s line for %.*s, a sample name of %s %s", kw, (int)nl, name,
                         pt_type_names[p->fs[parent].type], p->doc->families[parent].name);

    size_t f = prom_find_family(p, name, nl);
    if (f == PT_NONE && (f = prom_add_family(p, name, nl)) == PT_NONE)
        return prom_oom(p);
    if (prom_touch_family(p, f, kw) != 0)
        return -1;
    prom_family_t *fam = &p->doc->families[f];
    prom_fam_state_t *fs = &p->fs[f];

    if (!is_type) {
        if (fs->has_help)
            return prom_fail(p, "second HELP line for %s", fam->name);
        /* The rest of the line is the docstring: \\ and \n are the escapes. */
        char *h = malloc(n - i + 1);
        size_t o = 0;
        if (!h)
            return prom_oom(p);
        for (; i < n; i++) {
            if (s[i] != '\\') {
                h[o++] = s[i];
                continue;
            }
            if (i + 1 < n && s[i + 1] == '\\')
                h[o++] = '\\';
            else if (i + 1 < n && s[i + 1] == 'n')
                h[o++] = '\n';
            else {
                free(h);
                if (i + 1 == n)
                    return prom_fail(p, "HELP text of %s ends with a lone backslash", fam->name);
                return prom_fail(p, "invalid escape sequence \"\\%c\" in HELP text of %s", s[i + 1],
                                 fam->name);
            }
            i++;
        }
        h[o] = '\0';
        if (!prom_utf8_valid((const unsigned char *)h, o)) {
            free(h);
            return prom_fail(p, "HELP text of %s is not valid UTF-8", fam->name);
        }
        fam->help = h;
        fs->has_help = 1;
        return 0;
    }

    if (fs->typed)
        return prom_fail(p, "second TYPE line for %s", fam->name);
    if (fs->n_samples > 0)
        return prom_fail(p, "TYPE line for %s after its first sample", fam->name);
    size_t te = prom_token_end(s, n, i);
    if (te == i)
        return prom_fail(p, "TYPE line for %s without a type", fam->name);
    int type = -1;
    for (int t = 0; t < (int)(sizeof(pt_type_names) / sizeof(pt_type_names[0])); t++)
        if (strlen(pt_type_names[t]) == te - i && memcmp(pt_type_names[t], s + i, te - i) == 0)
            type = t;
    if (type < 0)
        return prom_fail(p, "unknown metric type \"%.*s\" for %s", (int)(te - i), s + i, fam->name);
    if (prom_skip_blanks(s, n, te) != n)
        return prom_fail(p, "text after the type in the TYPE line for %s", fam->name);
    if (type == PT_HISTOGRAM || type == PT_SUMMARY) {
        static const char *const sfx[] = {"_bucket", "_sum", "_count"};
        for (size_t k = type == PT_HISTOGRAM ? 0 : 1; k < 3; k++) {
            char child[512];
            int cl = snprintf(child, sizeof(child), "%s%s", fam->name, sfx[k]);
            if (cl < 0 || (size_t)cl >= sizeof(child))
                continue;
            if (prom_find_family(p, child, (size_t)cl) != PT_NONE)
                return prom_fail(p, "TYPE %s for %s after a family %s was seen",
                                 pt_type_names[type], fam->name, child);
        }
    }
    free(fam->type);
    if (!(fam->type = strdup(pt_type_names[type])))
        return prom_oom(p);
    fs->type = type;
    fs->typed = 1;
    return 0;
}

/* Label set at s[*i] == '{'; on success *i is past the '}'. */
static int prom_parse_labels(prom_parser_t *p, const char *s, size_t n, size_t *ip,
                             prom_labels_t *l)
{
    size_t i = prom_skip_blanks(s, n, *ip + 1);
    if (i < n && s[i] == '}') {
        *ip = i + 1;
        return 0;
    }
    for (;;) {
        size_t ns = i;
        if (i < n && prom_is_alpha_(s[i])) {
            i++;
            while (i < n && (prom_is_alpha_(s[i]) || prom_is_digit(s[i])))
                i++;
        }
        if (i == ns) {
            if (i == n)
                return prom_fail(p, "unterminated label set");
            return prom_fail(p, "invalid label name starting at \"%.*s\"",
                             (int)(prom_token_end(s, n, ns) - ns), s + ns);
        }
        size_t nl = i - ns;
        if (nl >= 2 && s[ns] == '_' && s[ns + 1] == '_')
            return prom_fail(p, "label name \"%.*s\" starts with \"__\" (reserved)", (int)nl,
                             s + ns);
        for (size_t k = 0; k < l->n; k++)
            if (strlen(l->names[k]) == nl && memcmp(l->names[k], s + ns, nl) == 0)
                return prom_fail(p, "duplicate label name \"%.*s\"", (int)nl, s + ns);
        i = prom_skip_blanks(s, n, i);
        if (i >= n || s[i] != '=')
            return prom_fail(p, "expected '=' after label name \"%.*s\"", (int)nl, s + ns);
        i = prom_skip_blanks(s, n, i + 1);
        if (i >= n || s[i] != '"')
            return prom_fail(p, "expected '\"' to open the value of label \"%.*s\"", (int)nl,
                             s + ns);
        i++;
        char *v = malloc(n - i + 1);
        size_t o = 0;
        if (!v)
            return prom_oom(p);
        for (;;) {
            if (i >= n) {
                free(v);
                return prom_fail(p, "unterminated value of label \"%.*s\"", (int)nl, s + ns);
            }
            char c = s[i++];
            if (c == '"')
                break;
            if (c != '\\') {
                v[o++] = c;
                continue;
            }
            if (i >= n) {
                free(v);
                return prom_fail(p, "unterminated value of label \"%.*s\"", (int)nl, s + ns);
            }
            c = s[i++];
            if (c == '\\' || c == '"')
                v[o++] = c;
            else if (c == 'n')
                v[o++] = '\n';
            else {
                free(v);
                return prom_fail(p,
                                 "invalid escape sequence \"\\%c\" in the value of label \"%.*s\"",
                                 c, (int)nl, s + ns);
            }
        }
        v[o] = '\0';
        if (!prom_utf8_valid((const unsigned char *)v, o)) {
            free(v);
            return prom_fail(p, "value of label \"%.*s\" is not valid UTF-8", (int)nl, s + ns);
        }
        char *name = prom_strndup(s + ns, nl);
        if (!name || prom_grow((void **)&l->names, &l->cap_names, l->n + 1, sizeof(char *)) != 0 ||
            prom_grow((void **)&l->values, &l->cap_values, l->n + 1, sizeof(char *)) != 0) {
            free(name);
            free(v);
            return prom_oom(p);
        }
        l->names[l->n] = name;
        l->values[l->n] = v;
        l->n++;

        i = prom_skip_blanks(s, n, i);
        if (i < n && s[i] == '}') {
            *ip = i + 1;
            return 0;
        }
        if (i >= n || s[i] != ',')
            return prom_fail(p, "expected ',' or '}' after the value of label \"%.*s\"", (int)nl,
                             s + ns);
        i = prom_skip_blanks(s, n, i + 1);
        if (i < n && s[i] == '}') { /* trailing comma */
            *ip = i + 1;
            return 0;
        }
    }
}

/* Histogram and summary bookkeeping for one sample. */
static int prom_check_group(prom_parser_t *p, size_t f, int kind, const char *sname,
                            const prom_labels_t *l, double value)
{
    const char *fname = p->doc->families[f].name;
    int hist = p->fs[f].type == PT_HISTOGRAM;
    const char *special = hist ? "le" : "quantile";
    const char *sv = prom_label_get(l, special);
    double bound = 0;

    if (kind == PS_PLAIN && hist)
        return prom_fail(p,
                         "sample %s in histogram %s: only %s_bucket, %s_sum and %s_count "
                         "are allowed",
                         sname, fname, fname, fname, fname);
    if (kind == PS_SUM || kind == PS_COUNT) {
        if (sv)
            return prom_fail(p, "%s has a \"%s\" label", sname, special);
        if (kind == PS_COUNT && !(value >= 0))
            return prom_fail(p, "%s is %g: a count must be >= 0", sname, value);
    } else {
        if (!sv)
            return prom_fail(p, "%s without a \"%s\" label", sname, special);
        int rc = prom_parse_float(sv, strlen(sv), &bound);
        if (rc != 0 || isnan(bound))
            return prom_fail(p, "%s=\"%s\" of %s is not a number", special, sv, sname);
        if (hist && !(value >= 0))
            return prom_fail(p, "bucket %s{le=\"%s\"} is %g: bucket counts must be >= 0", sname, sv,
                             value);
        if (!hist && (bound < 0 || bound > 1))
            return prom_fail(p, "quantile=\"%s\" of %s is outside [0, 1]", sv, sname);
    }

    size_t klen, g = p->n_groups;
    char *key = prom_series_key((const char *)&f, sizeof(f), l, special, &klen);
    if (!key)
        return prom_oom(p);
    int found = prom_map_put(&p->group_map, key, klen, &g);
    if (found != 0)
        free(key);
    if (found < 0)
        return prom_oom(p);
    if (found == 0) {
        if (prom_grow((void **)&p->groups, &p->cap_groups, p->n_groups + 1, sizeof(*p->groups)) !=
            0)
            return prom_oom(p);
        prom_group_t *ng = &p->groups[p->n_groups++];
        memset(ng, 0, sizeof(*ng));
        ng->fam = f;
        ng->first_line = p->line;
        if (!(ng->desc = prom_series_desc(fname, l, special)))
            return prom_oom(p);
    }
    prom_group_t *gr = &p->groups[g];

    if (kind == PS_COUNT) {
        gr->has_count = 1;
        gr->count = value;
        gr->count_line = p->line;
        return 0;
    }
    if (kind == PS_SUM)
        return 0;
    if (gr->n_points > 0 && !(bound > gr->last_bound))
        return prom_fail(p, "%s=\"%s\" of %s after %s=\"%g\": %s must increase", special, sv,
                         gr->desc, special, gr->last_bound, hist ? "buckets" : "quantiles");
    if (hist && gr->n_points > 0 && value < gr->last_cum)
        return prom_fail(p,
                         "bucket le=\"%s\" of %s is %g, less than the previous bucket's %g: "
                         "counts are cumulative",
                         sv, gr->desc, value, gr->last_cum);
    gr->n_points++;
    gr->last_bound = bound;
    gr->last_cum = value;
    if (hist && isinf(bound) && bound > 0) {
        gr->has_inf = 1;
        gr->inf_cum = value;
    }
    return 0;
}

static int prom_parse_sample(prom_parser_t *p, const char *s, size_t n, size_t i)
{
    prom_labels_t l = {0};
    size_t nl = prom_scan_metric_name(s, n, i);
    const char *name = s + i;
    int rc = -1;

    if (nl == 0)
        return prom_fail(p, "invalid metric name at \"%.*s\"", (int)(prom_token_end(s, n, i) - i),
                         s + i);
    i += nl;
    if (i < n && !prom_is_blank(s[i]) && s[i] != '{')
        return prom_fail(p, "invalid character '%c' in metric name \"%.*s\"", s[i],
                         (int)(prom_token_end(s, n, name - s) - (size_t)(name - s)), name);
    i = prom_skip_blanks(s, n, i);
    if (i < n && s[i] == '{' && prom_parse_labels(p, s, n, &i, &l) != 0)
        goto out;
    i = prom_skip_blanks(s, n, i);
    size_t ve = prom_token_end(s, n, i);
    if (ve == i) {
        prom_fail(p, "sample %.*s without a value", (int)nl, name);
        goto out;
    }
    double value;
    int fr = prom_parse_float(s + i, ve - i, &value);
    if (fr != 0) {
        prom_fail(p, "%s value \"%.*s\" of %.*s", fr == -2 ? "out-of-range" : "invalid",
                  (int)(ve - i), s + i, (int)nl, name);
        goto out;
    }
    i = prom_skip_blanks(s, n, ve);
    if (i < n) {
        size_t te = prom_token_end(s, n, i);
        int tr = prom_parse_timestamp(s + i, te - i);
        if (tr != 0) {
            prom_fail(p, "%s timestamp \"%.*s\" of %.*s", tr == -2 ? "out-of-range" : "invalid",
                      (int)(te - i), s + i, (int)nl, name);
            goto out;
        }
        if (prom_skip_blanks(s, n, te) != n) {
            prom_fail(p, "unexpected text after the timestamp of %.*s", (int)nl, name);
            goto out;
        }
    }

    /* The family. */
    int kind = PS_PLAIN;
    size_t f = prom_parent_family(p, name, nl, &kind);
    if (f == PT_NONE) {
        kind = PS_PLAIN;
        f = prom_find_family(p, name, nl);
        if (f == PT_NONE && (f = prom_add_family(p, name, nl)) == PT_NONE) {
            prom_oom(p);
            goto out;
        }
    }
    if (prom_touch_family(p, f, "sample") != 0)
        goto out;

    char *sname = prom_strndup(name, nl);
    if (!sname) {
        prom_oom(p);
        goto out;
    }

    /* The same series twice. */
    size_t klen, none = 0;
    char *key = prom_series_key(name, nl, &l, NULL, &klen);
    int dup = key ? prom_map_put(&p->series, key, klen, &none) : -1;
    if (dup != 0) {
        free(key);
        if (dup < 0)
            prom_oom(p);
        else {
            char *desc = prom_series_desc(sname, &l, NULL);
            prom_fail(p, "duplicate series %s", desc ? desc : sname);
            free(desc);
        }
        free(sname);
        goto out;
    }

    switch (p->fs[f].type) {
    case PT_COUNTER:
        if (!(value >= 0)) {
            prom_fail(p, "counter %s is %g: counters must be >= 0", sname, value);
            free(sname);
            goto out;
        }
        break;
    case PT_HISTOGRAM:
    case PT_SUMMARY:
        if (prom_check_group(p, f, kind, sname, &l, value) != 0) {
            free(sname);
            goto out;
        }
        break;
    default:
        break;
    }

    prom_doc_t *d = p->doc;
    char *fam = strdup(d->families[f].name);
    if (!fam ||
        prom_grow((void **)&d->samples, &p->cap_samples, d->n_samples + 1, sizeof(*d->samples))) {
        free(fam);
        free(sname);
        prom_oom(p);
        goto out;
    }
    prom_sample_t *smp = &d->samples[d->n_samples++];
    smp->name = sname;
    smp->family = fam;
    smp->n_labels = l.n;
    smp->label_names = l.n ? l.names : NULL;
    smp->label_values = l.n ? l.values : NULL;
    smp->value = value;
    if (l.n)
        memset(&l, 0, sizeof(l));
    p->fs[f].n_samples++;
    rc = 0;
out:
    prom_labels_free(&l);
    return rc;
}

static int prom_parse_line(prom_parser_t *p, const char *s, size_t n)
{
    if (memchr(s, '\0', n))
        return prom_fail(p, "NUL byte");
    size_t i = prom_skip_blanks(s, n, 0);
    if (i == n)
        return 0; /* empty line */
    if (s[i] != '#')
        return prom_parse_sample(p, s, n, i);
    i = prom_skip_blanks(s, n, i + 1);
    size_t te = prom_token_end(s, n, i);
    if (te - i == 4 && memcmp(s + i, "HELP", 4) == 0)
        return prom_parse_meta(p, s, n, te, 0);
    if (te - i == 4 && memcmp(s + i, "TYPE", 4) == 0)
        return prom_parse_meta(p, s, n, te, 1);
    return 0; /* a comment */
}

static int prom_check_groups(prom_parser_t *p)
{
    for (size_t g = 0; g < p->n_groups; g++) {
        const prom_group_t *gr = &p->groups[g];
        const char *fname = p->doc->families[gr->fam].name;
        if (p->fs[gr->fam].type != PT_HISTOGRAM)
            continue;
        p->line = gr->first_line;
        if (!gr->has_inf)
            return prom_fail(p, "histogram %s has no le=\"+Inf\" bucket", gr->desc);
        if (!gr->has_count)
            return prom_fail(p, "histogram %s has no %s_count", gr->desc, fname);
        if (gr->inf_cum != gr->count) {
            p->line = gr->count_line;
            return prom_fail(p, "histogram %s: %s_count %g differs from the +Inf bucket %g",
                             gr->desc, fname, gr->count, gr->inf_cum);
        }
    }
    return 0;
}

int prom_parse(const char *text, size_t len, prom_doc_t *out, char *err, size_t errlen)
{
    prom_parser_t p = {0};
    int rc = 0;

    memset(out, 0, sizeof(*out));
    if (err && errlen)
        err[0] = '\0';
    p.doc = out;
    p.err = err;
    p.errlen = errlen;
    p.last_fam = PT_NONE;

    size_t pos = 0;
    while (rc == 0 && pos < len) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        p.line++;
        if (!nl) {
            rc = prom_fail(&p, "no line feed at the end of the text");
            break;
        }
        rc = prom_parse_line(&p, text + pos, (size_t)(nl - (text + pos)));
        pos = (size_t)(nl - text) + 1;
    }
    if (rc == 0)
        rc = prom_check_groups(&p);

    prom_map_free(&p.series);
    prom_map_free(&p.group_map);
    for (size_t g = 0; g < p.n_groups; g++)
        free(p.groups[g].desc);
    free(p.groups);
    free(p.fs);
    if (rc != 0)
        prom_free(out);
    return rc;
}

void prom_free(prom_doc_t *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->n_samples; i++) {
        prom_sample_t *s = &d->samples[i];
        for (size_t k = 0; k < s->n_labels; k++) {
            free(s->label_names[k]);
            free(s->label_values[k]);
        }
        free(s->label_names);
        free(s->label_values);
        free(s->name);
        free(s->family);
    }
    free(d->samples);
    for (size_t i = 0; i < d->n_families; i++) {
        free(d->families[i].name);
        free(d->families[i].type);
        free(d->families[i].help);
    }
    free(d->families);
    memset(d, 0, sizeof(*d));
}

/* ------------------------------------------------------------- queries */

static int prom_sample_matches(const prom_sample_t *s, const char *const *labels)
{
    for (size_t i = 0; labels && labels[i]; i += 2) {
        const char *want = labels[i + 1];
        int ok = 0;
        for (size_t k = 0; k < s->n_labels && !ok; k++)
            ok = strcmp(s->label_names[k], labels[i]) == 0 && want &&
                 strcmp(s->label_values[k], want) == 0;
        if (!ok)
            return 0;
    }
    return 1;
}

double prom_sum(const prom_doc_t *d, const char *name, const char *const *labels)
{
    double sum = 0;
    int any = 0;
    for (size_t i = 0; d && i < d->n_samples; i++) {
        const prom_sample_t *s = &d->samples[i];
        if (strcmp(s->name, name) == 0 && prom_sample_matches(s, labels)) {
            sum += s->value;
            any = 1;
        }
    }
    return any ? sum : NAN;
}

size_t prom_count(const prom_doc_t *d, const char *name)
{
    size_t n = 0;
    for (size_t i = 0; d && i < d->n_samples; i++)
        n += strcmp(d->samples[i].name, name) == 0;
    return n;
}

/* ------------------------------------------------------------- promtool */

/* The executable `prog` in $PATH (as execvp searches it), malloc'd, or NULL. */
static char *prom_which(const char *prog)
{
    const char *path = getenv("PATH");
    if (!path)
        path = "/bin:/usr/bin";
    for (const char *c = path;;) {
        const char *e = strchr(c, ':');
        size_t dl = e ? (size_t)(e - c) : strlen(c);
        char *full = NULL;
        if (asprintf(&full, "%.*s/%s", (int)(dl ? dl : 1), dl ? c : ".", prog) < 0)
            return NULL;
        struct stat st;
        if (stat(full, &st) == 0 && S_ISREG(st.st_mode) && access(full, X_OK) == 0)
            return full;
        free(full);
        if (!e)
            return NULL;
        c = e + 1;
    }
}

int prom_promtool_check(const char *text, size_t len)
{
    char *tool = prom_which("promtool");
    if (!tool)
        return 77;

    int rc = 1;
    FILE *in = tmpfile();
    if (!in) {
        perror("promtool check: tmpfile");
        goto out;
    }
    if ((len && fwrite(text, 1, len, in) != len) || fflush(in) != 0 ||
        lseek(fileno(in), 0, SEEK_SET) != 0) {
        perror("promtool check: writing the input");
        goto out;
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        perror("promtool check: fork");
        goto out;
    }
    if (pid == 0) {
        if (dup2(fileno(in), STDIN_FILENO) < 0 || dup2(STDERR_FILENO, STDOUT_FILENO) < 0)
            _exit(126);
        execl(tool, "promtool", "check", "metrics", (char *)NULL);
        _exit(127);
    }
    int status;
    pid_t w;
    while ((w = waitpid(pid, &status, 0)) < 0 && errno == EINTR)
        ;
    if (w < 0) {
        perror("promtool check: waitpid");
        goto out;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        rc = 0;
    else if (WIFEXITED(status))
        fprintf(stderr, "promtool check metrics (%s): exit status %d\n", tool, WEXITSTATUS(status));
    else
        fprintf(stderr, "promtool check metrics (%s): killed by signal %d\n", tool,
                WIFSIGNALED(status) ? WTERMSIG(status) : 0);
out:
    if (in)
        fclose(in);
    free(tool);
    return rc;
}
