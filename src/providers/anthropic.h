/*
 * anthropic — the Anthropic dialect's request half (anthropic_request.c) and
 * answer half (anthropic_answer.c), for its adapter (anthropic.c). Private
 * to src/providers/.
 */
#ifndef MERIDIAN_PROVIDERS_ANTHROPIC_H
#define MERIDIAN_PROVIDERS_ANTHROPIC_H

#include "xlate.h"

/* Messages answers and event streams into the conversation model. */
extern const mr_xlate_parser_t mr__anthropic_parser;

/* The Messages body of a checked conversation (anthropic_request.c). */
int mr__anthropic_emit(mr_xlate_emit_t *e, const mr_conv_req_t *conv, json_t **out,
                       mr_error_t *err);

/* An Anthropic usage object's counts (input_tokens excludes cached input;
 * the model's prompt includes it). */
void mr__anthropic_usage(const json_t *u, mr_conv_usage_t *o);

/* mr_adapter_t.retryable: 408, 409, 429, 5xx, and overloaded_error,
 * rate_limit_error or api_error bodies whatever the status. */
int mr__anthropic_retryable(long status, const char *body, size_t len);

/* The JSON Schema keywords structured outputs take, and their value rules. */
extern const char *const mr__anthropic_schema_keywords[];
int mr__anthropic_schema_value_ok(const char *keyword, const json_t *v);

#endif
