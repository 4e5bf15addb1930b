/*
 * gemini — the Gemini dialect's answer half (gemini_answer.c) and its
 * embeddings (gemini_embed.c), for its adapter (gemini.c). Private to
 * src/providers/; pure functions, any thread.
 */
#ifndef MERIDIAN_PROVIDERS_GEMINI_H
#define MERIDIAN_PROVIDERS_GEMINI_H

#include "meridian/adapter.h"
#include "xlate.h"

#include <jansson.h>

/* n (candidateCount) is capped so stream state stays a small fixed array. */
#define GEMINI_MAX_CANDIDATES 8

/* GenerateContentResponse bodies and streams into the conversation model. */
extern const mr_xlate_parser_t mr__gemini_parser;

/* The GenerateContentRequest of a checked conversation (gemini_request.c). */
int mr__gemini_emit(mr_xlate_emit_t *e, const mr_conv_req_t *conv, json_t **out, mr_error_t *err);

/* The JSON Schema keywords responseJsonSchema takes. */
extern const char *const mr__gemini_schema_keywords[];

/* The upstream body of an embeddings request (*method: "embedContent" or
 * "batchEmbedContents"). 0 with a new *out, or -1 with a 400. */
int mr__gemini_embed_body(const mr_adapter_in_t *in, json_t **out, const char **method,
                          mr_error_t *err);

/* mr_adapter_t.translate for embeddings answers. */
int mr__gemini_embeddings(const mr_adapter_in_t *in, const char *body, size_t len, mr_buf_t *out,
                          mr_usage_t *usage, mr_error_t *err);

#endif
