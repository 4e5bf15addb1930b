/*
 * xlate — helpers shared by the translating adapters (anthropic, gemini).
 *
 * Private to src/providers/: not part of any public header. Everything here
 * is a pure function of its arguments (no global state); JSON is built with
 * jansson and written compactly in insertion order, reals with 15
 * significant digits so a client's 0.7 stays 0.7.
 */
#ifndef MERIDIAN_PROVIDERS_XLATE_H
#define MERIDIAN_PROVIDERS_XLATE_H

#include "meridian/adapter.h"
#include "meridian/buf.h"
#include "meridian/error.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* Bounds of the stream translators: one upstream SSE line / one event's data. */
#define MR_XLATE_LINE_MAX (1024 * 1024)
#define MR_XLATE_EVENT_MAX (1024 * 1024)
/* Upstream ids and model names copied into every chunk are at most this long. */
#define MR_XLATE_ID_MAX 128

#define MR_XLATE_DUMP_FLAGS                                                                        \
    (JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY | JSON_REAL_PRECISION(15))

/* Unix time for "created": in->created when set (tests), else time(NULL). */
long long mr__xlate_created(const mr_adapter_in_t *in);

/* FNV-1a 64 of p[0, n), continuing from `h` (start with MR_FNV64_INIT). */
#define MR_FNV64_INIT 0xcbf29ce484222325ULL
uint64_t mr__fnv64(uint64_t h, const void *p, size_t n);

/* Copies `s` into dst (cap bytes) when it is 1..MR_XLATE_ID_MAX bytes of
 * [A-Za-z0-9_.:-]; otherwise writes prefix + 16 hex digits of its hash.
 * Ids go into every chunk, so a hostile upstream cannot blow them up. */
void mr__xlate_safe_id(const char *s, size_t len, const char *fallback_prefix, char *dst,
                       size_t cap);

/* The "model" of translated answers: the upstream's (a JSON string of 1 to
 * MR_XLATE_ID_MAX bytes without NUL), else `fallback` cut to at most
 * MR_XLATE_ID_MAX bytes on a UTF-8 character boundary. cap must exceed
 * MR_XLATE_ID_MAX. */
void mr__xlate_model(const json_t *upstream, const char *fallback, char *dst, size_t cap);

/* Appends j (compact) to out, respecting out's limit; takes the reference.
 * 0, or -1 (too large / out of memory). */
int mr__xlate_append_json(mr_buf_t *out, json_t *j);
/* Appends "data: <j>\n\n"; takes the reference. Stream output ignores
 * out's limit, as the openai adapter's does: the gateway uses the limit to
 * pause the upstream (backpressure), and what one feed produces is bounded
 * by its input (a few hundred bytes of envelope per event at most, checked
 * by the fuzzers). 0, or -1 when out of memory. */
int mr__xlate_emit(mr_buf_t *out, json_t *j);
/* Appends "data: [DONE]\n\n". 0 / -1. */
int mr__xlate_emit_done(mr_buf_t *out);
/* Appends (ignoring the limit) one OpenAI-shaped SSE error event. */
void mr__xlate_emit_error(mr_buf_t *out, const char *type, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* {"prompt_tokens","completion_tokens","total_tokens"} (+ details when > 0);
 * unknown (-1) counts are written as 0. */
json_t *mr__xlate_usage(long prompt, long completion, long cached, long reasoning);

/* A chunk skeleton: {"id","object":"chat.completion.chunk","created","model"}. */
json_t *mr__xlate_chunk(const char *id, long long created, const char *model);
/* {"index":i,"delta":delta,"logprobs":null,"finish_reason":finish|null};
 * takes delta's reference. */
json_t *mr__xlate_choice_delta(int index, json_t *delta, const char *finish);

/* Splits "data:<mime>;base64,<payload>". 0 and the pieces (pointing into
 * url; mime copied into `mime`, cap bytes), -1 when not a base64 data URL. */
int mr__xlate_data_url(const char *url, char *mime, size_t cap, const char **data);

/* Optional members of the client's body. Each returns 0 when absent (or
 * null), 1 when present and well-typed (value stored), -1 with a 400 in
 * *err naming the parameter when present with the wrong type/range. */
int mr__xlate_get_number(const json_t *obj, const char *key, double *out, mr_error_t *err);
int mr__xlate_get_int(const json_t *obj, const char *key, long long lo, long long hi,
                      long long *out, mr_error_t *err);
/* The "stop" parameter: string or array of strings -> a new array. */
int mr__xlate_get_stop(const json_t *obj, json_t **out, mr_error_t *err);

/* Text of a message's content: a string, or an array of {"type":"text"}
 * (and "refusal") parts joined; NULL content gives "". 0 with a new
 * string in *out, or -1 with a 400 (where = "messages[3]"). */
int mr__xlate_content_text(const json_t *content, const char *where, json_t **out, mr_error_t *err);

/* 400 unsupported_parameter / unsupported_content helpers. */
int mr__xlate_bad(mr_error_t *err, const char *code, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
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
