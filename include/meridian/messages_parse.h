/*
 * messages_parse — an Anthropic Messages request body (POST /v1/messages)
 * into the conversation model (conv.h), for targets of another dialect.
 * (Anthropic targets get the client's bytes; this parser is for the rest.)
 *
 *   system (string or text blocks, with cache_control)  -> a SYSTEM turn
 *   messages[] with role system (string or text blocks) -> a SYSTEM turn
 *     where it stands (mid-conversation system messages)
 *   messages[].content blocks                          -> parts, in order:
 *     text, image (base64 / url / file), document (base64 PDF / url / file;
 *     a plain-text document is text), tool_use, thinking (with its
 *     signature), redacted_thinking; other block types are kept as OTHER
 *     parts for the dialect check to refuse where they are
 *   tool_result blocks of a user message -> TOOL turns (before the user
 *     turn holding the rest of the message), named after their tool_use
 *   tools (custom; server tools are dropped and recorded as "tools[i]"),
 *   tool_choice (auto / any / tool / none, disable_parallel_tool_use),
 *   thinking (type, budget_tokens), output_config (effort, format) and
 *   the beta output_format, max_tokens, stop_sequences, temperature,
 *   top_p, top_k, metadata.user_id (-> user), stream, cache_control
 * Every other top-level member (context_management, service_tier,
 * container, mcp_servers, …) is recorded in the model's dropped list.
 *
 * Like chat_parse it refuses only what no target could make sense of (not
 * an object, messages not an array, content neither a string nor an array
 * of blocks, past the model's bounds): 400s naming the JSON path. The model
 * holds a reference to `body` and borrows from it. Pure; any thread.
 */
#ifndef MERIDIAN_MESSAGES_PARSE_H
#define MERIDIAN_MESSAGES_PARSE_H

#include "meridian/conv.h"
#include "meridian/error.h"

#include <jansson.h>

/* 0 with a new model in *out (the caller frees it: mr_conv_req_free), or -1
 * with *err (400, or 500 when out of memory). */
int mr_messages_parse(const json_t *body, mr_conv_req_t **out, mr_error_t *err);

#endif
