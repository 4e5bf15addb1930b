/*
 * gemini — the Gemini dialect's embeddings, kept apart from its chat half
 * (gemini.c). Private to src/providers/; pure functions, any thread.
 */
#ifndef MERIDIAN_PROVIDERS_GEMINI_H
#define MERIDIAN_PROVIDERS_GEMINI_H

#include "meridian/adapter.h"

#include <jansson.h>

/* The upstream body of an embeddings request (*method: "embedContent" or
 * "batchEmbedContents"). 0 with a new *out, or -1 with a 400. */
int mr__gemini_embed_body(const mr_adapter_in_t *in, json_t **out, const char **method,
                          mr_error_t *err);

/* mr_adapter_t.translate for embeddings answers. */
int mr__gemini_embeddings(const mr_adapter_in_t *in, const char *body, size_t len, mr_buf_t *out,
                          mr_usage_t *usage, mr_error_t *err);

#endif
