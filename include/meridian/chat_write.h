/*
 * chat_write — answers and stream events of the conversation model as the
 * OpenAI chat completions dialect: a `chat.completion` body, or
 * `chat.completion.chunk` SSE events ending in `data: [DONE]`.
 *
 * The one outbound writer of every translating adapter (conv.h). Reasoning
 * goes where OpenAI-compatible reasoning APIs put it: its text in
 * `reasoning_content`, and every block — text with its signature, opaque
 * data — in OpenRouter's `reasoning_details` items, stamped with where they
 * were made (`format`, and Meridian's `model`) so that a later turn can send
 * them back only where they validate; a Gemini function call's thought
 * signature goes in `extra_content.google.thought_signature`, as Google's
 * own OpenAI-compatible API writes it. Output goes to caller-owned mr_buf_t
 * buffers: a complete body respects the buffer's limit; stream output
 * ignores it (the gateway uses that limit to pause the upstream, and what
 * one event produces is bounded by the event). The writer state is a plain
 * value owned by the caller; no heap of its own. One thread.
 */
#ifndef MERIDIAN_CHAT_WRITE_H
#define MERIDIAN_CHAT_WRITE_H

#include "meridian/buf.h"
#include "meridian/conv.h"

/* Ids and model names the writer copies into every chunk: longer ones are
 * the parser's problem (it must bound them), the writer cuts them here. */
#define MR_CHAT_ID_MAX 160

/* The chat.completion of `a` ("created" given), appended to out. 0, or -1
 * when it does not fit out's limit or memory ran out. */
int mr_chat_write_answer(const mr_conv_answer_t *a, long long created, mr_buf_t *out);

typedef struct mr_chat_writer {
    mr_buf_t *out; /* where events go: set by the caller around each feed */
    long long created;
    int wants_usage; /* stream_options.include_usage: a usage chunk at the end */
    char id[MR_CHAT_ID_MAX];
    char model[MR_CHAT_ID_MAX];
    mr_conv_usage_t usage; /* the last MR_CONV_EV_USAGE */
    /* where the stream's signatures are made (mr_chat_writer_origin) */
    char origin_kind[16];
    char origin_model[MR_CHAT_ID_MAX];
    int content; /* an event carrying content (text, reasoning, a tool call) was written */
} mr_chat_writer_t;

void mr_chat_writer_init(mr_chat_writer_t *w, long long created, int wants_usage);
/* The provider kind and target model that sign this stream's reasoning
 * (copied; cut to fit). */
void mr_chat_writer_origin(mr_chat_writer_t *w, const char *kind, const char *model);

/* An mr_conv_sink_t event function (ctx: the writer): one event as chunks
 * appended to w->out. 0, or -1 when out of memory. */
int mr_chat_write_event(void *w, const mr_conv_event_t *ev);

/* Appends one OpenAI-shaped SSE error event
 * `data: {"error":{"message","type","param":null,"code"}}`. */
void mr_chat_write_error(mr_buf_t *out, const char *type, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
