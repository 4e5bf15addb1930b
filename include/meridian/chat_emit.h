/*
 * chat_emit — the conversation model (conv.h) as an OpenAI chat
 * completions request body, so that clients of the other dialects
 * (Messages, Responses) can reach OpenAI-compatible and Azure targets.
 *
 * The model must have passed mr_conv_check with mr_chat_emit_caps (what
 * the chat dialect cannot express is refused there); mr_chat_emit_body
 * does the check, the emit and the serialisation in one call. What the
 * dialect has no member for is left out, as docs/providers.md lists
 * (reasoning parts, cache markers, top_k, thinking, metadata, is_error).
 *
 * The result is a new tree the caller owns (strings copied; nothing
 * borrows from the model). Pure function of its inputs; any thread.
 */
#ifndef MERIDIAN_CHAT_EMIT_H
#define MERIDIAN_CHAT_EMIT_H

#include "meridian/conv.h"
#include "meridian/error.h"

#include <jansson.h>
#include <stddef.h>

typedef struct mr_chat_emit_opts {
    const char *model; /* the target's upstream model */
    int stream;        /* "stream": true with stream_options.include_usage */
    /* the output limit's member: "max_tokens" (NULL: the default, which
     * every OpenAI-compatible API reads) or "max_completion_tokens" */
    const char *max_tokens_key;
} mr_chat_emit_opts_t;

/* What an OpenAI-compatible chat target can express. */
extern const mr_conv_caps_t mr_chat_emit_caps;

/* The body of a checked model into *out (a new object). 0, or -1 with
 * *err (500: out of memory). */
int mr_chat_emit(const mr_conv_req_t *r, const mr_chat_emit_opts_t *o, json_t **out,
                 mr_error_t *err);

/* Check, emit and serialise: 0 with a malloc'd body in *body / *len, or -1
 * with *err (the client's 400 naming the JSON path, or a 500). */
int mr_chat_emit_body(const mr_conv_req_t *r, const mr_chat_emit_opts_t *o, char **body,
                      size_t *len, mr_error_t *err);

#endif
