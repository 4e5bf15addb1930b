/*
 * chat_answer — OpenAI chat completion answers into the conversation model
 * (conv.h): a complete `chat.completion` body into an mr_conv_answer_t, a
 * `chat.completion.chunk` event stream into mr_conv_event_t events, for
 * clients of the other dialects (Messages, Responses) on OpenAI-compatible
 * and Azure targets.
 *
 * Read besides text and tool calls: `refusal`, reasoning as
 * `reasoning_details` (OpenRouter: text with signature, encrypted data,
 * summaries) or else `reasoning_content` / `reasoning`, Gemini's
 * `extra_content.google.thought_signature` on tool calls (complete answers),
 * usage with `prompt_tokens_details.cached_tokens` (DeepSeek's
 * `prompt_cache_hit_tokens`) and `completion_tokens_details.reasoning_tokens`,
 * error chunks `{"error":{…}}` and the terminal `data: [DONE]`: a stream
 * that ends without it is truncated.
 *
 * The stream state is a plain value owned by the caller (no heap); ids and
 * models are bounded copies, tool calls are renumbered 0, 1, … per choice
 * (at most MR_CHAT_STREAM_TOOLS, choices at most MR_CHAT_STREAM_CHOICES:
 * more is a malformed stream). Events borrow from the parsed chunk for the
 * duration of the sink call. One thread per state.
 */
#ifndef MERIDIAN_CHAT_ANSWER_H
#define MERIDIAN_CHAT_ANSWER_H

#include "meridian/codec.h"
#include "meridian/conv.h"
#include "meridian/error.h"

#include <jansson.h>
#include <stddef.h>

#define MR_CHAT_STREAM_CHOICES 8
#define MR_CHAT_STREAM_TOOLS 128

/* Where an answer came from: the target's model (the answer's model when
 * it names none) and provider kind (the origin of its reasoning). */
typedef struct mr_chat_answer_in {
    const char *model;
    const char *kind; /* "openai", "azure" */
} mr_chat_answer_in_t;

/* A parsed 2xx body (root; NULL when it was not JSON) into *a, initialised
 * by the caller (mr_conv_answer_init with root). 0, or -1 with a 502
 * upstream_malformed. */
int mr_chat_answer_parse(const mr_chat_answer_in_t *in, const json_t *root, mr_conv_answer_t *a,
                         mr_error_t *err);

typedef struct mr_chat_stream_choice {
    long index;
    int finished;
    int n_tools;
    long tools[MR_CHAT_STREAM_TOOLS]; /* upstream tool index of each call */
} mr_chat_stream_choice_t;

typedef struct mr_chat_stream {
    mr_chat_answer_in_t in;
    char id[MR_CODEC_ID_MAX];
    char model[MR_CODEC_ID_MAX];
    int seen, done;
    int n_choices;
    mr_chat_stream_choice_t choices[MR_CHAT_STREAM_CHOICES];
    mr_conv_usage_t usage;
} mr_chat_stream_t;

void mr_chat_stream_init(mr_chat_stream_t *st, const mr_chat_answer_in_t *in);

/* One upstream SSE event's data (the `event:` field is not read). 0, -1
 * or MR_CODEC_*; nothing is sent after END or ERROR. */
int mr_chat_stream_event(mr_chat_stream_t *st, const char *data, size_t len,
                         const mr_conv_sink_t *sink);

/* The upstream closed the stream: 0 after `[DONE]`, else MR_CODEC_TRUNCATED. */
int mr_chat_stream_end(mr_chat_stream_t *st, const mr_conv_sink_t *sink);

#endif
