/*
 * xlate — what the translating adapters (anthropic, gemini) share.
 *
 * Private to src/providers/: not part of any public header. A translating
 * dialect is its capabilities and an emitter of its request body from the
 * conversation model (conv.h) — <dialect>.c — plus an mr_xlate_parser_t of
 * its complete answers (into an mr_conv_answer_t) and of its event streams
 * (into mr_conv_event_t events) — <dialect>_answer.c. The functions below
 * turn these into the adapter's build / translate / stream entries: the
 * model is checked against the capabilities (mr_conv_check, the one place
 * where a request the dialect cannot express becomes a 400), answers and
 * events are written by the client dialect's writer (in->client,
 * inbound.h; chat_write.h when unset), and stream failures become one error
 * event in that dialect. Everything else here is a pure helper
 * (no global state).
 */
#ifndef MERIDIAN_PROVIDERS_XLATE_H
#define MERIDIAN_PROVIDERS_XLATE_H

#include "meridian/adapter.h"
#include "meridian/buf.h"
#include "meridian/codec.h"
#include "meridian/conv.h"
#include "meridian/error.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* Bounds of the stream translators: one upstream SSE line / one event's data. */
#define MR_XLATE_LINE_MAX (1024 * 1024)
#define MR_XLATE_EVENT_MAX (1024 * 1024)
/* Upstream ids and model names copied into every chunk are at most this long. */
#define MR_XLATE_ID_MAX 128

/* ---- a translating dialect ---------------------------------------------- */

/* Results of a stream parser's event and end functions besides 0 and -1
 * (out of memory): the glue turns them into the one error event. */
enum {
    MR_XLATE_MALFORMED = 1,      /* not the dialect's event stream */
    MR_XLATE_UPSTREAM_ERROR = 2, /* the parser already sent MR_CONV_EV_ERROR */
    MR_XLATE_TRUNCATED = 3,      /* the stream ended before the answer did */
};

/* What an emitter works with: the attempt, and what it leaves out. */
typedef struct mr_xlate_emit {
    const mr_adapter_in_t *in;
    const char *kind; /* the target's provider kind: "anthropic", "gemini" */
    unsigned dropped; /* signatures (and signed reasoning) not sent: foreign */
} mr_xlate_emit_t;

/* The request half: the upstream body for a checked model, into *root. */
typedef int (*mr_xlate_emit_fn)(mr_xlate_emit_t *e, const mr_conv_req_t *conv, json_t **root,
                                mr_error_t *err);

/* The answer half (<dialect>_answer.c). */
typedef struct mr_xlate_parser {
    /* A complete 2xx answer (root: the parsed body, NULL when it is not
     * JSON; raw: its bytes) into *a (initialised by the caller). 0, or -1
     * with a 502 upstream_malformed naming in->provider. */
    int (*answer)(const mr_adapter_in_t *in, const json_t *root, const char *raw, size_t len,
                  mr_conv_answer_t *a, mr_error_t *err);
    /* Stream parser: state of stream_size bytes, zeroed then initialised;
     * one call per upstream SSE event, then `end` when the upstream closed
     * cleanly. 0, -1 or MR_XLATE_*. */
    size_t stream_size;
    void (*stream_init)(void *st, const mr_adapter_in_t *in);
    int (*stream_event)(void *st, const char *event, const char *data, size_t len,
                        const mr_conv_sink_t *sink);
    int (*stream_end)(void *st, const mr_conv_sink_t *sink);
    const char *malformed; /* "a malformed Anthropic event stream" */
    const char *truncated; /* "ended the stream before the message was complete" */
} mr_xlate_parser_t;

/* The upstream body of a conversation request: in->conv (or the client's
 * body parsed here, with the client dialect's parser, when the caller has
 * no model), checked against caps, then emitted and serialised into out
 * (body, body_len, signatures_dropped; with in->conv also `dropped`: the
 * members the model does not carry and those of leaves_out the request
 * uses). 0, or -1 with *err. */
int mr__xlate_body(const mr_conv_caps_t *caps, mr_xlate_emit_fn emit, const char *const *leaves_out,
                   const mr_adapter_in_t *in, mr_adapter_req_t *out, mr_error_t *err);
/* The longest feature flag (anthropic-beta) kept by name; longer ones
 * are never forwarded. */
#define MR_XLATE_FLAG_MAX 128

/* The client's feature-flag header (in->client->flags_header, read with
 * in->client_header) split at commas: the flags the provider accepts
 * (providers.NAME.anthropic_beta patterns) into kept (comma-separated,
 * cap bytes; NULL: none is sent, as for a translated target), the others
 * into out->betas_dropped. */
void mr__xlate_flags(const mr_adapter_in_t *in, char *kept, size_t cap, mr_adapter_req_t *out);

/* Records in out->dropped what the target does not get of conv: the
 * members the model does not carry, then those of leaves_out (names as in
 * mr__xlate_unsupported, plus top_k, thinking and cache_control) that the
 * request uses. */
void mr__xlate_record_dropped(const mr_conv_req_t *conv, const char *const *leaves_out,
                              mr_adapter_req_t *out);
/* mr_adapter_t.translate for a chat answer. */
int mr__xlate_translate(const mr_xlate_parser_t *ps, const mr_adapter_in_t *in, const char *body,
                        size_t len, mr_buf_t *out, mr_usage_t *usage, mr_error_t *err);
/* mr_adapter_t's stream entries. */
mr_stream_xlate_t *mr__xlate_stream_new(const mr_xlate_parser_t *ps, const mr_adapter_in_t *in);
int mr__xlate_stream_feed(mr_stream_xlate_t *x, const char *p, size_t n, mr_buf_t *out);
int mr__xlate_stream_end(mr_stream_xlate_t *x, mr_buf_t *out);
void mr__xlate_stream_usage(const mr_stream_xlate_t *x, mr_usage_t *usage);
int mr__xlate_stream_content(const mr_stream_xlate_t *x);
void mr__xlate_stream_free(mr_stream_xlate_t *x);

/* Sends one event to a sink. */
int mr__xlate_send(const mr_conv_sink_t *sink, mr_conv_event_t ev);

/* mr_adapter_t.unsupported for a dialect with capabilities `caps` that
 * leaves out the model's members named in `ignored` (NULL-terminated:
 * presence_penalty, frequency_penalty, seed, top_logprobs, metadata, user,
 * parallel_tool_calls, prompt_cache_key, cached_content). */
const char *mr__xlate_unsupported(const mr_conv_caps_t *caps, const mr_conv_req_t *conv,
                                  const char *const *ignored);

/* ---- emitting requests -------------------------------------------------- */

/* How a dialect with one system field and merged user / assistant turns
 * writes each turn's items (blocks, parts) into a JSON array. */
typedef struct mr_xlate_turns {
    const char *assistant; /* the assistant's role name: "assistant", "model" */
    const char *key;       /* the turn's member holding the items: "content" */
    int (*user)(mr_xlate_emit_t *e, const mr_conv_turn_t *t, json_t *items);
    int (*assistant_items)(mr_xlate_emit_t *e, const mr_conv_turn_t *t, json_t *items);
    int (*result)(mr_xlate_emit_t *e, const mr_conv_turn_t *t, json_t *items);
} mr_xlate_turns_t;

/* The checked conversation's user, assistant and tool turns as dialect
 * turns {"role", key: items}, consecutive ones of one role merged (tool
 * results are user items); system turns are left to the caller
 * (mr__xlate_system_text). The array, or NULL when out of memory. */
json_t *mr__xlate_turns(mr_xlate_emit_t *e, const mr_conv_req_t *conv, const mr_xlate_turns_t *d);
/* The text of every system and developer turn, in order, joined by a blank
 * line (empty ones skipped), appended to out. 0 / -1. */
int mr__xlate_system_text(const mr_conv_req_t *conv, mr_buf_t *out);

/* Whether a reasoning part or a call's signature may go to this target (its
 * origin is e->kind and the attempt's model); when not, it is counted in
 * e->dropped: the caller leaves it out. */
int mr__xlate_origin_ok(mr_xlate_emit_t *e, const mr_conv_origin_t *o);
/* The function tools as [{"name", "description"?, <schema_key>: schema}]:
 * schema(parameters) gives the member's value, NULL to leave it out. NULL
 * when out of memory. */
json_t *mr__xlate_tools(const mr_conv_req_t *conv, const char *schema_key,
                        json_t *(*schema)(const json_t *parameters));
/* A JSON string of a view ("" when absent). */
json_t *mr__xlate_str(mr_conv_str_t s);

/* ---- helpers ------------------------------------------------------------ */

/* Unix time for "created": in->created when set (tests), else time(NULL). */
long long mr__xlate_created(const mr_adapter_in_t *in);

/* FNV-1a 64 of p[0, n), continuing from `h` (start with MR_FNV64_INIT). */
#define MR_FNV64_INIT 0xcbf29ce484222325ULL
uint64_t mr__fnv64(uint64_t h, const void *p, size_t n);

/* The model's counts as the gateway's (same conventions, see adapter.h). */
void mr__xlate_usage(const mr_conv_usage_t *u, mr_usage_t *out);

/* "RESOURCE_EXHAUSTED" -> "resource_exhausted", cut to cap bytes. */
void mr__xlate_lower(const char *s, char *dst, size_t cap);

/* An optional integer member of the client's body: 0 when absent (or
 * null), 1 when present and within [lo, hi] (stored), -1 with a 400. */
int mr__xlate_get_int(const json_t *obj, const char *key, long long lo, long long hi,
                      long long *out, mr_error_t *err);

int mr__xlate_oom(mr_error_t *err);

/* Whether in->extra_headers already carries header `name` (any case). */
int mr__xlate_has_header(const mr_adapter_in_t *in, const char *name);

/* base URL + the rest (printf), malloc'd; NULL on failure. */
char *mr__xlate_url(const char *base, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Percent-encodes everything outside [A-Za-z0-9._~-] (and '/' when
 * keep_slash) into dst (cap bytes). 0, or -1 when it does not fit or when a
 * segment is "." or ".." (a path that would escape the intended one). */
int mr__xlate_path_escape(const char *s, int keep_slash, char *dst, size_t cap);

/* OpenAI error type for an upstream error type/status word (anthropic
 * "overloaded_error", gemini "RESOURCE_EXHAUSTED"), falling back to the
 * HTTP status's type. */
const char *mr__xlate_error_type(const char *upstream_type, long status);

/* Appends an OpenAI error body {"error":{message,type,param:null,code}}. */
void mr__xlate_error_body(mr_buf_t *out, const char *message, const char *type, const char *code);
/* The message used when an upstream error body has no usable message. */
void mr__xlate_error_fallback(const mr_provider_t *p, long status, const char *body, size_t len,
                              char *dst, size_t cap);

#endif
