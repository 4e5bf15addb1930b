/*
 * messages_write — answers and stream events of the conversation model
 * (conv.h) as Anthropic Messages, for clients of POST /v1/messages whose
 * target speaks another dialect; and Anthropic-shaped errors.
 *
 * Answers: a `message` body (choice 0): text, thinking (with signature),
 * redacted_thinking and tool_use blocks in the answer's order, stop_reason
 * (stop -> end_turn, length -> max_tokens, tool_calls -> tool_use,
 * content_filter -> refusal), usage with Anthropic's split of the input
 * (input_tokens excludes cache reads and writes).
 *
 * Streams: `message_start`, per block `content_block_start` (a `ping` after
 * the first), `content_block_delta` (text_delta, thinking_delta,
 * signature_delta, input_json_delta), `content_block_stop`, then
 * `message_delta` (stop_reason and usage) and `message_stop`; an upstream
 * error is `event: error`. message_start carries the real input token count
 * whenever the upstream reports it before the first content of its event:
 * the writer holds what follows the START event until a usage event with
 * the input count arrives or the caller calls mr_messages_writer_flush —
 * which the glue does after each upstream event — so a count that comes in
 * the same upstream event as the first text (Gemini) still reaches
 * message_start. Otherwise the input is the caller's estimate (or 0), and
 * message_delta carries the real count at the end.
 *
 * Output goes to caller-owned mr_buf_t buffers: a body respects the
 * buffer's limit, stream output ignores it (bounded per event; the held
 * part by MR_MESSAGES_HOLD_MAX). The writer is a value owned by the caller
 * (mr_messages_writer_free releases its hold buffer). One thread.
 */
#ifndef MERIDIAN_MESSAGES_WRITE_H
#define MERIDIAN_MESSAGES_WRITE_H

#include "meridian/buf.h"
#include "meridian/codec.h"
#include "meridian/conv.h"
#include "meridian/error.h"

#include <stddef.h>

/* Most bytes held back before message_start; past it message_start goes
 * out with what is known. */
#define MR_MESSAGES_HOLD_MAX ((size_t)4 << 20)

/* The message of a->choices[0] appended to out. 0, or -1 with *err (502
 * upstream_malformed: tool arguments that are not a JSON object, which
 * Anthropic's `input` cannot carry; 502 when out's limit is passed). */
int mr_messages_write_answer(const mr_conv_answer_t *a, mr_buf_t *out, mr_error_t *err);

typedef struct mr_messages_writer {
    mr_buf_t *out; /* where events go: set by the caller around each feed */
    /* input tokens for message_start while the upstream has not said
     * (an estimate the caller made); -1: 0 */
    long input_estimate;
    /* private */
    mr_buf_t _held;
    char _id[MR_CODEC_ID_MAX];
    char _model[MR_CODEC_ID_MAX];
    int _seen, _started, _ended, _failed, _pinged;
    int _block, _kind, _tool, _n_blocks;
    mr_conv_finish_t _finish;
    mr_conv_usage_t _usage;
} mr_messages_writer_t;

void mr_messages_writer_init(mr_messages_writer_t *w, long input_estimate);
void mr_messages_writer_free(mr_messages_writer_t *w);

/* An mr_conv_sink_t event function (ctx: the writer). 0, or -1 when out of
 * memory. Events of choices other than 0 are not written (Messages has one). */
int mr_messages_write_event(void *w, const mr_conv_event_t *ev);

/* The end of one upstream event: message_start (if started but held) and
 * what it held go out. 0 / -1. */
int mr_messages_writer_flush(mr_messages_writer_t *w);

/* Whether a content block went out (text, thinking, a tool call): the
 * gateway's commit point. */
int mr_messages_writer_content(const mr_messages_writer_t *w);
/* The counts of the last usage event (MR_CONV_USAGE_UNKNOWN before). */
void mr_messages_writer_usage(const mr_messages_writer_t *w, mr_conv_usage_t *u);

/* Whether the writer ended the stream with an error event of its own (an
 * event sequence Messages cannot express: arguments for a tool call after
 * another began). The stream must then end. */
int mr_messages_writer_failed(const mr_messages_writer_t *w);

/* Anthropic's error type for an HTTP status: 401 authentication_error, 403
 * permission_error, 404 not_found_error, 429 rate_limit_error, 503 and 529
 * overloaded_error, other 5xx api_error, other 4xx invalid_request_error. */
const char *mr_messages_error_type(int status);

/* {"type":"error","error":{"type":…,"message":…}} for e (type from its
 * status), malloc'd (*len set); NULL when out of memory. */
char *mr_messages_error_body(const mr_error_t *e, size_t *len);

/* `event: error` with that shape appended to out (ignoring its limit).
 * type: an Anthropic type, or an OpenAI one (mapped: rate_limit_error,
 * service_unavailable_error -> overloaded_error, ...); NULL: api_error. */
void mr_messages_write_error(mr_buf_t *out, const char *type, const char *message);

#endif
