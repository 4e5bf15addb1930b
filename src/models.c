#include "meridian/models.h"

#include "meridian/glob.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int has_model(const json_t *ids, const char *id)
{
    return json_object_get(ids, id) != NULL;
}

static int add(json_t *ids, json_t *order, const char *id, const char *owner)
{
    if (has_model(ids, id))
        return 0;
    if (json_object_set_new(ids, id, json_string(owner)) < 0)
        return -1;
    return json_array_append_new(order, json_string(id));
}

static int add_provider_model(json_t *ids, json_t *order, const mr_provider_t *p, const char *model)
{
    char id[512];

    if (!p->enabled || !p->allow_direct)
        return 0;
    snprintf(id, sizeof(id), "%s/%s", p->name, model);
    return add(ids, order, id, p->vendor);
}

/* Routes, their exact aliases, then the direct provider/model names, in
 * config order, each once. */
static int collect(const mr_config_t *cfg, json_t *ids, json_t *order)
{
    int rc = 0;

    for (size_t i = 0; rc == 0 && i < cfg->n_routes; i++) {
        const mr_route_t *r = &cfg->routes[i];
        rc = add(ids, order, r->name, "meridian");
        for (size_t a = 0; rc == 0 && a < r->n_aliases; a++)
            if (!mr_glob_is_pattern(r->aliases[a]))
                rc = add(ids, order, r->aliases[a], "meridian");
    }
    for (size_t i = 0; rc == 0 && i < cfg->n_routes; i++)
        for (size_t t = 0; rc == 0 && t < cfg->routes[i].n_targets; t++)
            rc = add_provider_model(ids, order, cfg->routes[i].targets[t].provider,
                                    cfg->routes[i].targets[t].model);
    for (size_t i = 0; rc == 0 && i < cfg->n_providers; i++)
        for (size_t m = 0; rc == 0 && m < cfg->providers[i].n_models; m++)
            rc = add_provider_model(ids, order, &cfg->providers[i], cfg->providers[i].models[m]);
    return rc;
}

static char *dump(json_t *root, size_t *len)
{
    char *s = root ? json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;

    json_decref(root);
    *len = s ? strlen(s) : 0;
    return s;
}

static char *openai_list(const json_t *ids, const json_t *order, size_t *len)
{
    json_t *data = json_array();
    size_t i;
    const json_t *id;

    json_array_foreach(order, i, id)
    {
        const char *s = json_string_value(id);
        json_array_append_new(data, json_pack("{s:s,s:s,s:i,s:O}", "id", s, "object", "model",
                                              "created", 0, "owned_by", json_object_get(ids, s)));
    }
    return dump(json_pack("{s:s,s:o}", "object", "list", "data", data), len);
}

/* Anthropic's list (GET /v1/models with anthropic-version): one page. */
static char *anthropic_list(const json_t *order, size_t *len)
{
    json_t *data = json_array();
    size_t i, n = json_array_size(order);
    const json_t *id;

    json_array_foreach(order, i, id)
    {
        json_array_append_new(data,
                              json_pack("{s:s,s:O,s:O,s:s}", "type", "model", "id", id,
                                        "display_name", id, "created_at", "1970-01-01T00:00:00Z"));
    }
    return dump(json_pack("{s:o,s:b,s:O,s:O}", "data", data, "has_more", 0, "first_id",
                          n ? json_array_get(order, 0) : json_null(), "last_id",
                          n ? json_array_get(order, n - 1) : json_null()),
                len);
}

int mr_models_build(const mr_config_t *cfg, mr_models_bodies_t *out)
{
    json_t *ids = json_object(), *order = json_array();

    memset(out, 0, sizeof(*out));
    if (ids && order && collect(cfg, ids, order) == 0) {
        out->openai = openai_list(ids, order, &out->openai_len);
        out->anthropic = anthropic_list(order, &out->anthropic_len);
    }
    json_decref(ids);
    json_decref(order);
    if (out->openai && out->anthropic)
        return 0;
    mr_models_free(out);
    return -1;
}

void mr_models_free(mr_models_bodies_t *b)
{
    free(b->openai);
    free(b->anthropic);
    memset(b, 0, sizeof(*b));
}
