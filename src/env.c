/*
 * env — ${VAR} expansion: one pass over the input, bounded output, defaults
 * checked for syntax even when unused, values never re-expanded.
 */
#include "meridian/env.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Growable string with a hard maximum, used by the env expander. */
typedef struct sbuf {
    char *p;
    size_t len, cap, max;
    bool failed;   /* out of memory or over max: contents are incomplete */
    bool too_long; /* failed because of max */
} sbuf_t;

static void sb_putn(sbuf_t *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->max) {
        b->failed = b->too_long = true;
        return;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->failed = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

/* ------------------------------------------------------------------------ */
/* ${VAR} expansion                                                          */
/* ------------------------------------------------------------------------ */

typedef struct expander {
    const char *s;
    size_t pos;
    sbuf_t out;
    char *missing; /* first variable referenced without default and unset */
    mr_env_visit_fn visit;
    void *ctx;
    char *err;
    size_t errlen;
} expander_t;

static int x_fail(expander_t *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int x_fail(expander_t *x, const char *fmt, ...)
{
    if (x->err && x->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(x->err, x->errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static bool is_name_start(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

static bool is_name_char(char c)
{
    return is_name_start(c) || (c >= '0' && c <= '9');
}

/*
 * Expand a sequence until end of input (top level) or an unmatched '}'
 * (inside a default). `active` is false while parsing a default that is not
 * used: the syntax is still checked, nothing is emitted or looked up.
 */
static int x_seq(expander_t *x, int depth, bool active)
{
    for (;;) {
        char c = x->s[x->pos];

        if (c == '\0')
            return 0;
        if (c == '}' && depth > 0)
            return 0;
        if (c != '$') {
            size_t run = 1;
            while (x->s[x->pos + run] && x->s[x->pos + run] != '$' &&
                   !(depth > 0 && x->s[x->pos + run] == '}'))
                run++;
            if (active)
                sb_putn(&x->out, x->s + x->pos, run);
            x->pos += run;
            continue;
        }
        if (x->s[x->pos + 1] == '$') { /* "$$" -> "$" */
            if (active)
                sb_putn(&x->out, "$", 1);
            x->pos += 2;
            continue;
        }
        if (x->s[x->pos + 1] != '{') { /* lone '$' is literal */
            if (active)
                sb_putn(&x->out, "$", 1);
            x->pos += 1;
            continue;
        }

        size_t open = x->pos;
        size_t name_at = x->pos + 2;
        size_t n = 0;

        if (depth + 1 > MR_ENV_DEPTH_MAX)
            return x_fail(x, "\"${\" nested more than %d deep at offset %zu", MR_ENV_DEPTH_MAX,
                          open);
        if (x->s[name_at] == '}')
            return x_fail(x, "empty variable name \"${}\" at offset %zu", open);
        if (x->s[name_at] == '\0')
            return x_fail(x, "unterminated \"${\" at offset %zu", open);
        if (!is_name_start(x->s[name_at]))
            return x_fail(x,
                          "invalid variable name at offset %zu "
                          "(names match [A-Za-z_][A-Za-z0-9_]*)",
                          name_at);
        while (is_name_char(x->s[name_at + n]))
            n++;

        char name[MR_ENV_NAME_MAX + 1];
        if (n >= sizeof(name))
            return x_fail(x, "variable name longer than %zu bytes at offset %zu", sizeof(name) - 1,
                          name_at);
        memcpy(name, x->s + name_at, n);
        name[n] = '\0';

        size_t after = name_at + n;
        const char *val = NULL;

        if (active) {
            val = getenv(name);
            if (x->visit)
                x->visit(name, val, x->ctx);
        }
        if (x->s[after] == '}') {
            x->pos = after + 1;
            if (active) {
                if (val)
                    sb_putn(&x->out, val, strlen(val));
                else if (!x->missing && !(x->missing = strdup(name)))
                    return x_fail(x, "out of memory");
            }
            continue;
        }
        if (x->s[after] == ':' && x->s[after + 1] == '-') {
            bool use_default = active && (!val || !*val);
            x->pos = after + 2;
            if (x_seq(x, depth + 1, use_default) < 0)
                return -1;
            if (x->s[x->pos] != '}')
                return x_fail(x, "unterminated \"${\" at offset %zu", open);
            x->pos++;
            if (active && !use_default)
                sb_putn(&x->out, val, strlen(val));
            continue;
        }
        if (x->s[after] == '\0')
            return x_fail(x, "unterminated \"${\" at offset %zu", open);
        return x_fail(x,
                      "expected \"}\" or \":-\" after the variable name at offset %zu "
                      "(names match [A-Za-z_][A-Za-z0-9_]*)",
                      after);
    }
}

int mr_env_expand_visit(const char *in, char **out, char **missing, mr_env_visit_fn visit,
                        void *ctx, char *err, size_t errlen)
{
    expander_t x = {.s = in,
                    .out = {.max = MR_ENV_EXPANDED_MAX},
                    .visit = visit,
                    .ctx = ctx,
                    .err = err,
                    .errlen = errlen};
    int rc;

    *out = NULL;
    if (missing)
        *missing = NULL;
    rc = x_seq(&x, 0, true);
    if (rc == 0 && x.out.failed)
        rc = x.out.too_long
                 ? x_fail(&x, "expanded value longer than %d bytes", MR_ENV_EXPANDED_MAX - 1)
                 : x_fail(&x, "out of memory");
    if (rc == 0 && !x.out.p && !(x.out.p = strdup("")))
        rc = x_fail(&x, "out of memory");
    if (rc < 0) {
        free(x.out.p);
        free(x.missing);
        return -1;
    }
    if (x.missing) {
        free(x.out.p);
        if (missing)
            *missing = x.missing;
        else
            free(x.missing);
        return 1;
    }
    *out = x.out.p;
    return 0;
}

int mr_env_expand(const char *in, char **out, char **missing, char *err, size_t errlen)
{
    return mr_env_expand_visit(in, out, missing, NULL, NULL, err, errlen);
}
