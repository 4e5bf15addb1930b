/*
 * chat_parse — an OpenAI chat completions body into the conversation model.
 *
 * The one inbound parser of the chat dialect (conv.h): the gateway calls it
 * once per client request whose target translates, and every attempt reads
 * the result. It refuses only what no dialect could make sense of (a body
 * that is not an object, messages that are not an array of objects with a
 * role, content that is neither a string nor an array, an over-large
 * conversation); everything a target may or may not express is recorded
 * as given and judged by mr_conv_check with the target's capabilities.
 *
 * The model borrows from `body` (it takes a reference: the caller may drop
 * its own at any time). Pure function of its input; any thread.
 */
#ifndef MERIDIAN_CHAT_PARSE_H
#define MERIDIAN_CHAT_PARSE_H

#include "meridian/conv.h"
#include "meridian/error.h"

#include <jansson.h>

/* 0 with a new model in *out (the caller frees it: mr_conv_req_free), or -1
 * with *err (400, or 500 when out of memory). */
int mr_chat_parse(const json_t *body, mr_conv_req_t **out, mr_error_t *err);

#endif
