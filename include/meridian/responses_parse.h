/*
 * responses_parse — an OpenAI Responses request body (POST /v1/responses)
 * into the conversation model (conv.h), for targets that do not serve the
 * Responses API themselves (native ones get the client's bytes).
 *
 *   instructions                       -> a SYSTEM turn, first
 *   history (a stored response's input and output items, for
 *   previous_response_id), then input  -> turns:
 *     input as a string                -> one USER turn
 *     message items (role user / system / developer / assistant; content
 *       a string or input_text, input_image, input_file, input_audio,
 *       output_text, refusal parts)    -> turns of that role
 *     function_call, reasoning items and assistant messages in a row
 *                                      -> one ASSISTANT turn, in order
 *     function_call_output             -> a TOOL turn (output a string or
 *                                         input_text / input_image parts)
 *     any other item (item_reference, hosted tools' calls, …) is kept as a
 *     turn of that name for the dialect check to refuse where it is
 *   tools (function; hosted and custom tools are dropped and recorded as
 *   "tools[i]"), tool_choice (auto / none / required / a function; others
 *   dropped), parallel_tool_calls, text.format (text, json_object,
 *   json_schema), reasoning.effort / summary, max_output_tokens,
 *   temperature, top_p, top_logprobs, metadata, store, previous_response_id
 *   (carried: the gateway resolves it into `history`), include
 *   (reasoning.encrypted_content), prompt_cache_key, user, stream. Every
 *   other member (truncation, service_tier, background, …) is recorded in
 *   the model's dropped list.
 *
 * Reasoning items round-trip: the writer (responses_write.h) seals a
 * reasoning part's signature or opaque data, and its origin, into
 * `encrypted_content` ("mr1." + base64url JSON, not secret: the client
 * sees the reasoning text anyway); this parser opens it again. Any other
 * encrypted_content is OpenAI's, kept as opaque data of origin "openai".
 * Reasoning items that carry nothing (no text, no seal) make no part.
 *
 * The model holds references to `body` and `history` and borrows from them.
 * Refuses only what no target could read (400s naming the JSON path). Pure;
 * any thread.
 */
#ifndef MERIDIAN_RESPONSES_PARSE_H
#define MERIDIAN_RESPONSES_PARSE_H

#include "meridian/conv.h"
#include "meridian/error.h"

#include <jansson.h>

#define MR_RESPONSES_SEAL_PREFIX "mr1."

/* 0 with a new model in *out (the caller frees it: mr_conv_req_free), or -1
 * with *err (400, or 500 when out of memory). history: NULL or an array of
 * items. */
int mr_responses_parse(const json_t *body, const json_t *history, mr_conv_req_t **out,
                       mr_error_t *err);

/* The request's input as an array of items (a string input is one user
 * message item), for the store; a new array, NULL when out of memory. */
json_t *mr_responses_input_items(const json_t *body);

/* A reasoning part's signature / data and origin sealed as
 * encrypted_content: a malloc'd string, NULL when it has nothing to seal
 * (or memory ran out). With a call id (else absent) it seals that tool
 * call's signature (Gemini's thought signatures): the writer puts it in a
 * reasoning item of its own before the function_call, and this parser
 * gives the signature back to the call with that call_id. */
char *mr_responses_seal(const mr_conv_reasoning_t *r, mr_conv_str_t call_id);

#endif
