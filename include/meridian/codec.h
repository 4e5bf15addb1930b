/*
 * codec — what the dialect codecs share (chat_emit, chat_answer,
 * messages_parse, messages_write, responses_parse, responses_write).
 *
 * Building a conversation model (conv.h) from a client body: bounded part
 * allocation, number members kept as set / unset / bad, cache markers,
 * media sources, tool-call arguments, tool results named after their
 * calls, and the list of top-level members the model does not carry.
 * Writing: typed SSE events and safe ids. Stream parsers of answer
 * dialects return 0, -1 (out of memory) or one of MR_CODEC_*.
 *
 * Pure functions over caller-owned values; no global state; any thread.
 * Functions that take an mr_codec_build_t fill its error on failure (a 400
 * naming the client's JSON path, or a 500 when memory ran out).
 */
#ifndef MERIDIAN_CODEC_H
#define MERIDIAN_CODEC_H

#include "meridian/buf.h"
#include "meridian/conv.h"
#include "meridian/error.h"

#include <jansson.h>
#include <stddef.h>

/* Stream parser results besides 0 and -1; the same values and meanings as
 * the translating adapters' (src/providers/xlate.h), so one glue serves
 * every answer dialect. */
enum {
    MR_CODEC_MALFORMED = 1,      /* not the dialect's event stream */
    MR_CODEC_UPSTREAM_ERROR = 2, /* the parser already sent MR_CONV_EV_ERROR */
    MR_CODEC_TRUNCATED = 3,      /* the stream ended before the answer did */
};

/* Ids and model names the writers copy into every event. */
#define MR_CODEC_ID_MAX 160

/* ---- building a request model ------------------------------------------ */

typedef struct mr_codec_build {
    mr_conv_req_t *r;
    size_t n_parts; /* allocated so far, bounded by MR_CONV_MAX_PARTS */
    mr_error_t *err;
    size_t dropped_cap; /* room in r->dropped */
} mr_codec_build_t;

/* An allocation failed: the client's 400 conversation_too_large when the
 * arena is past its bound, else a 500. Returns -1. */
int mr_codec_oom(mr_codec_build_t *b);

/* n zeroed parts (at least one, so the array is never NULL), counted
 * against MR_CONV_MAX_PARTS; NULL with the error set. */
mr_conv_part_t *mr_codec_parts(mr_codec_build_t *b, size_t n);

/* Turns, allocated once the caller knows how many (at most
 * MR_CONV_MAX_TURNS, else a 400 naming `param`). 0 / -1. */
int mr_codec_turns(mr_codec_build_t *b, size_t n, const char *param);

/* Appends a turn of `role` holding the string `text` as its one text part
 * (src: the client's item index + 1, or 0). The turn, or NULL with the
 * error set. */
mr_conv_turn_t *mr_codec_text_turn(mr_codec_build_t *b, mr_conv_role_t role, const char *role_name,
                                   const json_t *text, size_t src);

/* obj[key] as a number parameter named `param` in messages: null or absent
 * is unset; the wrong type (for integers: not integral) is BAD. */
void mr_codec_num(const json_t *obj, const char *key, const char *param, int integer,
                  mr_conv_num_t *v);

/* obj.cache_control into *c (type absent when there is none). */
void mr_codec_cache(const json_t *obj, mr_conv_cache_t *c);

/* An image / file URL: "data:<mime>[;params];base64,<payload>" becomes a
 * base64 source (media type lower-cased into the arena), http(s) a URL,
 * anything else OTHER, absent MISSING. 0 / -1. */
int mr_codec_media_url(mr_codec_build_t *b, mr_conv_str_t url, mr_conv_media_t *m);

/* A base64 source with its media type (lower-cased copy). 0 / -1. */
int mr_codec_media_base64(mr_codec_build_t *b, mr_conv_str_t media_type, mr_conv_str_t data,
                          mr_conv_media_t *m);

/* Tool-call arguments given as a JSON text (`args` a string; null or "" is
 * an empty object): call->args is the text, call->args_json the object or
 * NULL when the text is not one. 0 / -1. */
int mr_codec_args_text(mr_codec_build_t *b, const json_t *args, mr_conv_tool_call_t *call);

/* Tool-call arguments given as a JSON object (anything else: an empty
 * one): call->args_json is it, call->args its compact text. 0 / -1. */
int mr_codec_args_object(mr_codec_build_t *b, const json_t *input, mr_conv_tool_call_t *call);

/* Names every tool result after the last tool call with its id in any
 * assistant turn, for dialects that match results by name. 0 / -1. */
int mr_codec_name_results(mr_codec_build_t *b);

/* Records the members of `body` not in `carried` (n names, sorted by
 * strcmp) as the model's dropped members. 0 / -1. */
int mr_codec_dropped(mr_codec_build_t *b, const json_t *body, const char *const *carried, size_t n);

/* Records one more dropped piece by its JSON path ("tools[3]"). 0 / -1. */
int mr_codec_drop(mr_codec_build_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The tools member v of a dialect: not an array sets tools_bad; more than
 * MR_CONV_MAX_TOOLS is a 400; a tool `keep` refuses (a hosted or server
 * tool: meaningful only to a target of the client's own dialect) is
 * dropped and recorded as "tools[i]"; `fill` reads the others. 0 / -1. */
int mr_codec_tools(mr_codec_build_t *b, const json_t *v, int (*keep)(const json_t *tool),
                   void (*fill)(const json_t *tool, mr_conv_tool_t *out));

/* ---- answers and events -------------------------------------------------- */

/* Copies s[0, len) into dst (cap bytes) when it is 1..128 bytes of
 * [A-Za-z0-9_.:-]; otherwise writes prefix + 16 hex digits of its hash, so
 * a hostile upstream cannot put arbitrary bytes into every event. */
void mr_codec_safe_id(const char *s, size_t len, const char *prefix, char *dst, size_t cap);

/* The model an answer names: `upstream` when it is a JSON string of 1 to
 * 128 bytes without NUL, else `fallback` cut to 128 bytes on a UTF-8
 * character boundary. cap must exceed 128. */
void mr_codec_model(const json_t *upstream, const char *fallback, char *dst, size_t cap);

/* A view copied into dst (cap bytes, NUL-terminated), cut to fit on a
 * UTF-8 character boundary. */
void mr_codec_view_copy(mr_conv_str_t s, char *dst, size_t cap);

/* A non-negative integer member (a token count), -1 when absent or not one. */
long mr_codec_count(const json_t *obj, const char *key);

/* "event: <event>\ndata: <data>\n\n" appended ignoring out's limit (stream
 * output; the gateway pauses the upstream on that limit); takes the data
 * reference. 0, or -1 when out of memory. */
int mr_codec_sse(mr_buf_t *out, const char *event, json_t *data);

/* j (compact) appended to out within its limit; takes the reference. 0 / -1. */
int mr_codec_append_json(mr_buf_t *out, json_t *j);

/* base64url (RFC 4648 section 5, no padding) of p[0, n) as a malloc'd
 * NUL-terminated string; NULL when out of memory. */
char *mr_codec_b64url_encode(const void *p, size_t n);

/* The bytes of a base64url text (padding and the standard alphabet's '+'
 * and '/' accepted) as a malloc'd buffer, *len set (NUL-terminated for
 * convenience); NULL when s is not base64 or memory ran out. */
unsigned char *mr_codec_b64url_decode(const char *s, size_t n, size_t *len);

/* A JSON string of a view ("" when absent). */
json_t *mr_codec_str(mr_conv_str_t s);

#endif
