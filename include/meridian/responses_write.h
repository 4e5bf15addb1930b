/*
 * responses_write — answers and stream events of the conversation model
 * (conv.h) as the OpenAI Responses API, for clients of POST /v1/responses
 * whose target does not serve it; and the stored form of a response.
 *
 * Answers: the `response` object — id, object, created_at, status
 * (completed; incomplete with incomplete_details.reason max_output_tokens
 * or content_filter; failed with error {code, message}), the request's
 * parameters echoed (instructions, model, tools, tool_choice, text,
 * reasoning, temperature, top_p, truncation, store, metadata, …), output
 * items of choice 0 in the answer's order — `reasoning` (summary_text; the
 * signature or opaque data sealed into encrypted_content, see
 * responses_parse.h, written only when the request's include asked for
 * reasoning.encrypted_content), `message` (output_text, refusal) and
 * `function_call` (call_id, name, arguments) — and usage (input_tokens with
 * input_tokens_details.cached_tokens, output_tokens with
 * output_tokens_details.reasoning_tokens, total_tokens).
 *
 * Streams: typed SSE events numbered by sequence_number: response.created,
 * response.in_progress, then per item response.output_item.added, its
 * parts and deltas (content_part.added, output_text.delta / .done,
 * content_part.done; reasoning_summary_part.added,
 * reasoning_summary_text.delta / .done, reasoning_summary_part.done;
 * function_call_arguments.delta / .done) and response.output_item.done;
 * then exactly one of response.completed, response.incomplete or
 * response.failed (an upstream error, or an event sequence the API cannot
 * carry, mid-stream).
 *
 * Storing (issue 15, previous_response_id): mr_responses_entry builds what
 * the store keeps — the client's response object, the input items that led
 * to it (the previous response's history, then this request's input) and
 * the output items with their seals even when the client did not ask for
 * them — and mr_responses_history turns an entry back into the items a
 * chained request starts from (responses_parse.h takes them). The stream
 * writer calls on_final with the final response before it appends the
 * terminal event: write-before-completed. A store that answers later (Redis)
 * must hold the terminal event's bytes (from final_at on) until its write
 * is acknowledged, so a follow-up sent the instant response.completed
 * arrives finds the response.
 *
 * Output goes to caller-owned buffers: a body respects the buffer's limit;
 * stream output ignores it (bounded per event; the items kept for the final
 * event are bounded by MR_CONV_MAX_BYTES, past which the response fails).
 * The writer owns the items it keeps: mr_responses_writer_free. One thread.
 */
#ifndef MERIDIAN_RESPONSES_WRITE_H
#define MERIDIAN_RESPONSES_WRITE_H

#include "meridian/buf.h"
#include "meridian/codec.h"
#include "meridian/conv.h"
#include "meridian/error.h"

#include <jansson.h>
#include <stddef.h>

typedef struct mr_responses_ctx {
    const char *id;        /* "resp_…", made by the gateway */
    long long created_at;  /* unix seconds */
    const json_t *request; /* the client's body: echoed members (borrowed) */
    const char *model;     /* the model when the answer names none */
    const char *origin;    /* the target's provider kind: streamed reasoning's origin */
} mr_responses_ctx_t;

/* The response object of a->choices[0] appended to out. *entry (when not
 * NULL) gets the store's entry for it (history: the items the request's
 * previous_response_id resolved to, or NULL). 0, or -1 with *err (502 when
 * out's limit is passed, 500 out of memory). */
int mr_responses_write_answer(const mr_conv_answer_t *a, const mr_responses_ctx_t *ctx,
                              const json_t *history, mr_buf_t *out, json_t **entry,
                              mr_error_t *err);

/* {"response", "input", "output"}: a new object (the arguments borrowed,
 * NULL when out of memory). */
json_t *mr_responses_entry(const json_t *request, const json_t *history, const json_t *response,
                           const json_t *sealed_output);

/* An entry's input items followed by its output items: a new array (NULL
 * when the entry is not one, or out of memory). */
json_t *mr_responses_history(const json_t *entry);

/* Called once before the terminal event is appended, with the final
 * response object and the output items with their seals (both borrowed
 * for the call). */
typedef void (*mr_responses_final_cb)(void *arg, const json_t *response,
                                      const json_t *sealed_output);

typedef struct mr_responses_writer {
    mr_buf_t *out; /* where events go: set by the caller around each feed */
    mr_responses_ctx_t ctx;
    mr_responses_final_cb on_final;
    void *on_final_arg;
    size_t final_at; /* offset in *out where the terminal event starts */
    /* private */
    long _seq;
    int _started, _ended, _failed, _include, _kind, _tool;
    json_t *_output; /* finished items, sealed */
    mr_buf_t _text;  /* the open item's text, reasoning or arguments */
    mr_buf_t _sig;   /* the open reasoning's signature */
    char _item_id[MR_CODEC_ID_MAX + 32];
    char _call_id[MR_CODEC_ID_MAX];
    char _name[MR_CODEC_ID_MAX * 2];
    char _model[MR_CODEC_ID_MAX];
    size_t _bytes; /* of the finished items */
    mr_conv_finish_t _finish;
    mr_conv_usage_t _usage;
} mr_responses_writer_t;

/* ctx is copied (its pointers must outlive the writer). 0, or -1 when out
 * of memory. */
int mr_responses_writer_init(mr_responses_writer_t *w, const mr_responses_ctx_t *ctx);
void mr_responses_writer_free(mr_responses_writer_t *w);

/* An mr_conv_sink_t event function (ctx: the writer). 0, or -1 when out of
 * memory. Events of choices other than 0 are not written. */
int mr_responses_write_event(void *w, const mr_conv_event_t *ev);

/* Whether an event carrying content (an output item) was written: the
 * commit point (before it, the gateway may still fail over). */
int mr_responses_writer_content(const mr_responses_writer_t *w);
/* Whether the writer ended the stream with response.failed. */
int mr_responses_writer_failed(const mr_responses_writer_t *w);
/* The usage the stream reported (MR_CONV_USAGE_UNKNOWN's fields when none). */
mr_conv_usage_t mr_responses_writer_usage(const mr_responses_writer_t *w);

/* A gateway-side failure after the stream began (the upstream went away,
 * a timeout): response.failed with this code ("server_error") and message.
 * Nothing is written once the response ended. 0 / -1. */
int mr_responses_write_failed(mr_responses_writer_t *w, const char *code, const char *message);

#endif
