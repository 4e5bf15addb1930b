/*
 * models — the bodies of GET /v1/models: every route, every exact route
 * alias, and every provider/model a client may address directly (targets
 * and providers' extra models, for enabled providers with allow_direct).
 * Pattern aliases ("claude-*") name no model and are not listed.
 *
 *   OpenAI's list     {"object":"list","data":[{"id","object":"model","created":0,"owned_by"}]}
 *   Anthropic's list  {"data":[{"type":"model","id","display_name","created_at"}],
 *                      "has_more":false,"first_id","last_id"}
 *
 * Built once per config (a snapshot holds them); the answer is chosen by
 * the request's anthropic-version header. Pure; any thread.
 */
#ifndef MERIDIAN_MODELS_H
#define MERIDIAN_MODELS_H

#include "meridian/config.h"

#include <stddef.h>

typedef struct mr_models_bodies {
    char *openai; /* malloc'd JSON */
    size_t openai_len;
    char *anthropic;
    size_t anthropic_len;
} mr_models_bodies_t;

/* 0, or -1 when out of memory (nothing to free then). */
int mr_models_build(const mr_config_t *cfg, mr_models_bodies_t *out);
void mr_models_free(mr_models_bodies_t *b);

#endif
