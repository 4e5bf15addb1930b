/*
 * modelref — a request's model string -> a route, or a provider's model.
 */
#include "meridian/modelref.h"

#include "meridian/glob.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

const char *mr_modelref_quote(char *buf, size_t n, const char *s, size_t len)
{
    size_t take = len;

    if (take > MR_MODELREF_QUOTE_MAX) {
        take = MR_MODELREF_QUOTE_MAX;
        while (take > 0 && ((unsigned char)s[take] & 0xC0) == 0x80)
            take--;
    }
    snprintf(buf, n, "%.*s%s", (int)take, s, take < len ? "..." : "");
    return buf;
}

/* ---- the text ------------------------------------------------------------ */

/* C0, DEL, C1 (U+0080-009F) and the line/paragraph separators U+2028/2029. */
static bool has_control(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] < 0x20 || p[i] == 0x7F)
            return true;
        if (p[i] == 0xC2 && i + 1 < n && p[i + 1] >= 0x80 && p[i + 1] <= 0x9F)
            return true;
        if (p[i] == 0xE2 && i + 2 < n && p[i + 1] == 0x80 && (p[i + 2] | 1) == 0xA9)
            return true;
    }
    return false;
}

/* Bytes of the white space starting at p (exactly n bytes looked at), 0 when
 * none: ' ', U+00A0, U+1680, U+2000-200B, U+202F, U+205F, U+3000, U+FEFF. */
static size_t space_len(const unsigned char *p, size_t n)
{
    if (n >= 1 && p[0] == ' ')
        return 1;
    if (n >= 2 && p[0] == 0xC2 && p[1] == 0xA0)
        return 2;
    if (n < 3)
        return 0;
    if ((p[0] == 0xE1 && p[1] == 0x9A && p[2] == 0x80) ||
        (p[0] == 0xE2 && p[1] == 0x80 && (p[2] <= 0x8B || p[2] == 0xAF)) ||
        (p[0] == 0xE2 && p[1] == 0x81 && p[2] == 0x9F) ||
        (p[0] == 0xE3 && p[1] == 0x80 && p[2] == 0x80) ||
        (p[0] == 0xEF && p[1] == 0xBB && p[2] == 0xBF))
        return 3;
    return 0;
}

static bool spaced(const unsigned char *p, size_t n)
{
    if (space_len(p, n))
        return true;
    for (size_t k = 1; k <= 3 && k <= n; k++)
        if (space_len(p + n - k, k) == k)
            return true;
    return false;
}

static int check_text(const char *model, const char *what, const char *param, mr_error_t *err)
{
    const unsigned char *p = (const unsigned char *)model;
    size_t n = strlen(model);
    char q[MR_MODELREF_QUOTE_MAX + 8];

    if (!has_control(p, n) && !spaced(p, n))
        return 0;
    mr_error_set(err, 400, NULL, "invalid_model", param,
                 "%s \"%s\" has control characters or white space around it; send the route "
                 "name or provider/model exactly (see GET /v1/models)",
                 what, mr_modelref_quote(q, sizeof(q), model, n));
    return -1;
}

/* ---- matching a provider's model names ------------------------------------ */

static const char *without_models_prefix(const char *m)
{
    return strncmp(m, "models/", 7) == 0 ? m + 7 : m;
}

bool mr_modelref_same_model(mr_provider_kind_t kind, const char *configured, const char *asked)
{
    switch (kind) {
    case MR_KIND_GEMINI:
        return !strcmp(without_models_prefix(configured), without_models_prefix(asked));
    case MR_KIND_AZURE:
        return !strcasecmp(configured, asked);
    case MR_KIND_OPENAI:
    case MR_KIND_ANTHROPIC:
        break;
    }
    return !strcmp(configured, asked);
}

const mr_target_t *mr_modelref_find_target(const mr_config_t *cfg, const mr_provider_t *p,
                                           const char *model)
{
    for (size_t i = 0; i < cfg->n_routes; i++)
        for (size_t j = 0; j < cfg->routes[i].n_targets; j++) {
            const mr_target_t *t = &cfg->routes[i].targets[j];
            if (t->provider == p && mr_modelref_same_model(p->kind, t->model, model))
                return t;
        }
    return NULL;
}

/* ---- resolution ------------------------------------------------------------ */

static int not_found(const mr_config_t *cfg, const char *model, const char *what, const char *param,
                     mr_error_t *err)
{
    char q[MR_MODELREF_QUOTE_MAX + 8];
    const mr_provider_t *p = mr_config_find_provider(cfg, model);

    if (p)
        mr_error_set(err, 404, NULL, "model_not_found", param,
                     "%s \"%s\" is not a route or provider/model (to address provider \"%s\" "
                     "directly use \"%s/MODEL\"); see GET /v1/models",
                     what, mr_modelref_quote(q, sizeof(q), model, strlen(model)), p->name, p->name);
    else
        mr_error_set(err, 404, NULL, "model_not_found", param,
                     "%s \"%s\" is not a route or provider/model; see GET /v1/models", what,
                     mr_modelref_quote(q, sizeof(q), model, strlen(model)));
    return -1;
}

static const mr_provider_t *provider_named(const mr_config_t *cfg, const char *name, size_t len)
{
    for (size_t i = 0; i < cfg->n_providers; i++)
        if (strlen(cfg->providers[i].name) == len && !memcmp(cfg->providers[i].name, name, len))
            return &cfg->providers[i];
    return NULL;
}

/* The route one of whose aliases names `model` (exact, or a `*` pattern);
 * the config guarantees at most one does. */
static const mr_route_t *route_by_alias(const mr_config_t *cfg, const char *model)
{
    for (size_t i = 0; i < cfg->n_routes; i++)
        for (size_t a = 0; a < cfg->routes[i].n_aliases; a++)
            if (mr_glob_match(cfg->routes[i].aliases[a], model))
                return &cfg->routes[i];
    return NULL;
}

int mr_modelref_resolve(const mr_config_t *cfg, const char *model, const char *what,
                        const char *param, mr_modelref_t *out, mr_error_t *err)
{
    char q[MR_MODELREF_QUOTE_MAX + 8];
    const char *slash;
    size_t plen;

    memset(out, 0, sizeof(*out));
    if (!model || !*model) {
        mr_error_set(err, 400, NULL, NULL, param,
                     "missing %s: use a route name or provider/model; see GET /v1/models", what);
        return -1;
    }
    if (check_text(model, what, param, err) < 0)
        return -1;
    if ((out->route = mr_config_find_route(cfg, model)) ||
        (out->route = route_by_alias(cfg, model)))
        return 0;
    if (!(slash = strchr(model, '/')))
        return not_found(cfg, model, what, param, err);
    plen = (size_t)(slash - model);
    if (plen == 0 || slash[1] == '\0') {
        mr_error_set(err, 400, NULL, NULL, param,
                     "%s \"%s\" is not of the form provider/model: %s is empty", what,
                     mr_modelref_quote(q, sizeof(q), model, strlen(model)),
                     plen == 0 ? "the provider name" : "the model name");
        return -1;
    }
    if (!(out->direct = provider_named(cfg, model, plen))) {
        char qp[MR_MODELREF_QUOTE_MAX + 8];
        mr_error_set(err, 404, NULL, "model_not_found", param,
                     "%s \"%s\" is not a route, and \"%s\" is not a provider; see GET /v1/models",
                     what, mr_modelref_quote(q, sizeof(q), model, strlen(model)),
                     mr_modelref_quote(qp, sizeof(qp), model, plen));
        return -1;
    }
    if (!out->direct->allow_direct) {
        mr_error_set(err, 403, NULL, "direct_model_not_allowed", param,
                     "%s \"%s\": provider \"%s\" is not addressed directly "
                     "(providers.%s.allow_direct is false); use a route name, see GET /v1/models",
                     what, mr_modelref_quote(q, sizeof(q), model, strlen(model)), out->direct->name,
                     out->direct->name);
        return -1;
    }
    out->target = mr_modelref_find_target(cfg, out->direct, slash + 1);
    out->model = out->target ? out->target->model : slash + 1;
    return 0;
}
