/*
 * conv — the neutral conversation model under the dialect adapters.
 *
 * A chat request (mr_conv_req_t), an answer (mr_conv_answer_t) and the typed
 * events of a streamed answer (mr_conv_event_t), free of any wire dialect.
 * An inbound parser (chat_parse.h: OpenAI chat) builds the request once per
 * client request; a translating adapter checks it against its dialect's
 * capabilities (mr_conv_check, the one place where "this dialect cannot
 * express that" becomes a 400), emits its request dialect from it, and
 * parses its answer dialect into an answer or into events, which an outbound
 * writer (chat_write.h) turns into the client's bytes.
 *
 * Ownership — borrowing: every string is a view (mr_conv_str_t) into a
 * jansson tree the object holds a reference to (the client's body, an
 * upstream answer) or into the object's own arena; views are NUL-terminated
 * at p[n] (they may contain NULs before). JSON-valued members (schemas,
 * metadata, tool arguments) are json_t pointers into the same trees, or
 * trees the object owns. One owner per request / answer: mr_conv_req_free and
 * mr_conv_answer_free release the arena, the owned trees and the references
 * at once. A built request is never modified: every attempt of its client
 * request reads it.
 *
 * Bounds: at most MR_CONV_MAX_TURNS turns, MR_CONV_MAX_PARTS parts in all,
 * MR_CONV_MAX_TOOLS tools and MR_CONV_MAX_BYTES of arena per object; a parser
 * that would pass one fails with a 400 (client request) or a 502 (upstream
 * answer) naming the limit.
 *
 * Threading: none; an object is used by one worker thread. Errors: functions
 * return 0, or -1 with *err filled (status, type, code, param, message).
 */
#ifndef MERIDIAN_CONV_H
#define MERIDIAN_CONV_H

#include "meridian/buf.h"
#include "meridian/error.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define MR_CONV_MAX_TURNS 65536
#define MR_CONV_MAX_PARTS 262144
#define MR_CONV_MAX_TOOLS 4096
#define MR_CONV_MAX_BYTES ((size_t)32 * 1024 * 1024)

/* How the model's users write JSON: compact, in insertion order, reals with
 * 15 significant digits (a client's 0.7 stays 0.7). */
#define MR_CONV_JSON_FLAGS                                                                         \
    (JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY | JSON_REAL_PRECISION(15))

/* A string view; p == NULL means absent (n is then 0). */
typedef struct mr_conv_str {
    const char *p;
    size_t n;
} mr_conv_str_t;

/* A prompt-cache marker (`cache_control`): type.p == NULL when there is none. */
typedef struct mr_conv_cache {
    mr_conv_str_t type; /* "ephemeral" */
    mr_conv_str_t ttl;  /* "5m", "1h"; absent when not given */
} mr_conv_cache_t;

/* ---- parts ------------------------------------------------------------- */

typedef enum mr_conv_part_kind {
    MR_CONV_TEXT,
    MR_CONV_REFUSAL,
    MR_CONV_IMAGE,
    MR_CONV_AUDIO,
    MR_CONV_FILE,
    MR_CONV_TOOL_CALL,
    MR_CONV_TOOL_RESULT,
    MR_CONV_REASONING,
    /* a content part the model cannot carry: an unknown type, or a known
     * one with a flaw (mr_conv_flaw_t); kept so that the dialect check
     * reports it where the client put it */
    MR_CONV_OTHER,
} mr_conv_part_kind_t;

typedef enum mr_conv_flaw {
    MR_CONV_FLAW_NONE,      /* a well-formed part of a type the model does not know */
    MR_CONV_FLAW_NO_TYPE,   /* the part has no "type" */
    MR_CONV_FLAW_BAD_VALUE, /* e.g. a text part whose text is not a string */
} mr_conv_flaw_t;

/* Where the bytes of an image / audio / file part are. */
typedef enum mr_conv_source {
    MR_CONV_SRC_MISSING, /* no URL / data given */
    MR_CONV_SRC_BASE64,  /* data (+ media_type) inline */
    MR_CONV_SRC_URL,     /* an http(s) URL to fetch */
    MR_CONV_SRC_OTHER,   /* a URL of another scheme, or data that is not base64 */
} mr_conv_source_t;

typedef struct mr_conv_media {
    mr_conv_source_t source;
    mr_conv_str_t url;        /* SRC_URL / SRC_OTHER: as given */
    mr_conv_str_t media_type; /* SRC_BASE64: lower case, "image/png", "audio/wav" */
    mr_conv_str_t data;       /* SRC_BASE64: the base64 text */
    mr_conv_str_t format;     /* audio: "wav", "mp3" as given */
} mr_conv_media_t;

/* Where a signature was made: the provider kind ("anthropic", "gemini")
 * and the target model; either absent when unknown. A signature only
 * validates where it was made (mr_conv_origin_ok). */
typedef struct mr_conv_origin {
    mr_conv_str_t kind;
    mr_conv_str_t model;
} mr_conv_origin_t;

typedef struct mr_conv_tool_call {
    mr_conv_str_t id;        /* absent when not a string */
    mr_conv_str_t name;      /* absent when not a string */
    int type_ok;             /* the call's type is "function" or absent */
    mr_conv_str_t args;      /* the arguments' JSON text as given (absent: none) */
    json_t *args_json;       /* the arguments as an object (owned); NULL when
                              * they are not a JSON object text */
    mr_conv_str_t signature; /* opaque (Gemini's thoughtSignature), or absent */
    mr_conv_origin_t origin; /* of the signature */
} mr_conv_tool_call_t;

typedef struct mr_conv_part mr_conv_part_t;

typedef struct mr_conv_tool_result {
    mr_conv_str_t call_id; /* absent when not a string */
    mr_conv_str_t name;    /* the function's name, from the assistant call with
                            * call_id (last one wins); absent when none */
    mr_conv_part_t *content;
    size_t n_content;
    int as_string; /* the client gave the content as one string (or null) */
    int is_error;
} mr_conv_tool_result_t;

/* Thinking / reasoning: text (signed or not) and / or opaque data (Anthropic
 * redacted_thinking, a Gemini text part's thought signature). Signatures and
 * data only validate where they were made: origin. */
typedef struct mr_conv_reasoning {
    mr_conv_str_t text;
    mr_conv_str_t data;
    mr_conv_str_t signature;
    mr_conv_origin_t origin;
} mr_conv_reasoning_t;

struct mr_conv_part {
    mr_conv_part_kind_t kind;
    mr_conv_cache_t cache;
    union {
        mr_conv_str_t text; /* TEXT, REFUSAL */
        mr_conv_media_t media;
        mr_conv_tool_call_t call;
        mr_conv_tool_result_t result;
        mr_conv_reasoning_t reasoning;
        struct {
            mr_conv_str_t type; /* as given; absent with FLAW_NO_TYPE */
            mr_conv_flaw_t flaw;
        } other;
    } u;
};

/* ---- requests ---------------------------------------------------------- */

typedef enum mr_conv_role {
    MR_CONV_ROLE_SYSTEM,
    MR_CONV_ROLE_DEVELOPER,
    MR_CONV_ROLE_USER,
    MR_CONV_ROLE_ASSISTANT,
    MR_CONV_ROLE_TOOL,
    MR_CONV_ROLE_OTHER, /* a role the model does not know: role_name (absent:
                         * the turn was not an object with a role) */
} mr_conv_role_t;

/* One turn. System text lives in SYSTEM / DEVELOPER turns at the position
 * the client gave them (dialects with one system field hoist them). A TOOL
 * turn holds one TOOL_RESULT part; an ASSISTANT turn its text parts, then
 * its TOOL_CALL parts. */
typedef struct mr_conv_turn {
    mr_conv_role_t role;
    mr_conv_str_t role_name; /* as given */
    mr_conv_part_t *parts;
    size_t n_parts;
    int has_content; /* a content member was given (not null) */
    mr_conv_cache_t cache;
    /* Where the client put it, for messages: the index of its item plus
     * one (0: the turn's own index, as in chat, one message one turn), and
     * the index of the item's content block that is parts[0]. */
    size_t src, src_part;
} mr_conv_turn_t;

typedef struct mr_conv_tool {
    int type_ok;        /* a function tool */
    mr_conv_str_t type; /* as given */
    mr_conv_str_t name; /* absent when not a string */
    mr_conv_str_t description;
    const json_t *parameters; /* the JSON schema as given; NULL when absent */
    int strict;               /* -1 unset */
    mr_conv_cache_t cache;
} mr_conv_tool_t;

typedef enum mr_conv_choice_mode {
    MR_CONV_CHOICE_UNSET,
    MR_CONV_CHOICE_AUTO,
    MR_CONV_CHOICE_NONE,
    MR_CONV_CHOICE_REQUIRED,
    MR_CONV_CHOICE_FUNCTION, /* name */
    MR_CONV_CHOICE_BAD_MODE, /* a string other than auto / none / required */
    MR_CONV_CHOICE_BAD_NAME, /* an object that names no function */
    MR_CONV_CHOICE_BAD_TYPE, /* neither a string nor an object */
} mr_conv_choice_mode_t;

typedef struct mr_conv_tool_choice {
    mr_conv_choice_mode_t mode;
    mr_conv_str_t name;
} mr_conv_tool_choice_t;

typedef enum mr_conv_format_kind {
    MR_CONV_FORMAT_UNSET,
    MR_CONV_FORMAT_TEXT,
    MR_CONV_FORMAT_JSON_OBJECT,
    MR_CONV_FORMAT_JSON_SCHEMA,
    MR_CONV_FORMAT_OTHER, /* another type: type */
} mr_conv_format_kind_t;

typedef struct mr_conv_format {
    mr_conv_format_kind_t kind;
    mr_conv_str_t type; /* as given */
    mr_conv_str_t name;
    const json_t *schema; /* NULL when absent */
    int strict;           /* -1 unset */
} mr_conv_format_t;

/* How hard the model should think (OpenAI reasoning_effort). */
typedef enum mr_conv_effort {
    MR_CONV_EFFORT_UNSET,
    MR_CONV_EFFORT_NONE, /* no reasoning */
    MR_CONV_EFFORT_MINIMAL,
    MR_CONV_EFFORT_LOW,
    MR_CONV_EFFORT_MEDIUM,
    MR_CONV_EFFORT_HIGH,
    MR_CONV_EFFORT_BAD, /* another value: refused by dialects that map it */
} mr_conv_effort_t;

/* The reasoning asked for, in every spelling the model knows. A dialect's
 * own native field wins over the neutral ones (docs/providers.md has the
 * mapping table). */
typedef struct mr_conv_reasoning_req {
    mr_conv_effort_t effort; /* reasoning_effort, else OpenRouter reasoning.effort */
    mr_conv_str_t effort_name;
    long budget;             /* OpenRouter reasoning.max_tokens; -1 unset */
    const json_t *anthropic; /* Anthropic's own "thinking" object; NULL when absent */
    const json_t *gemini;    /* Gemini's thinking_config / thinkingConfig object */
} mr_conv_reasoning_req_t;

/* A number parameter. Parsers keep a value of the wrong type as BAD rather
 * than failing: only a dialect that uses the parameter refuses it
 * (mr_conv_check), as each did before the model existed. */
typedef enum mr_conv_num_state {
    MR_CONV_UNSET,
    MR_CONV_SET,
    MR_CONV_BAD, /* not a number (for integers: not an integral one) */
} mr_conv_num_state_t;

typedef struct mr_conv_num {
    mr_conv_num_state_t state;
    int integer;       /* must be an integral number */
    double v;          /* SET: the value */
    const char *param; /* the client's name for it, for messages */
} mr_conv_num_t;

typedef struct mr_conv_req {
    const char *turns_param; /* the client's name of the turns, for messages ("messages") */
    mr_conv_turn_t *turns;
    size_t n_turns;
    mr_conv_tool_t *tools;
    size_t n_tools;
    int tools_bad; /* "tools" is neither an array nor null */
    mr_conv_tool_choice_t tool_choice;
    int parallel_tool_calls; /* -1 unset, 0, 1 */
    mr_conv_format_t format;

    /* sampling and limits */
    mr_conv_num_t temperature, top_p, presence_penalty, frequency_penalty, seed;
    mr_conv_num_t n, top_logprobs;
    mr_conv_num_t max_output; /* max_completion_tokens, else max_tokens */
    mr_conv_str_t *stop;
    size_t n_stop;
    int stop_bad; /* neither a string nor an array of strings */
    int logprobs;
    mr_conv_reasoning_req_t reasoning;

    /* output and delivery */
    int stream, include_usage;
    int audio_out;      /* audio output asked for */
    int non_text_modal; /* a modality other than text asked for */
    int legacy_functions;

    mr_conv_str_t user;
    const json_t *metadata;
    mr_conv_str_t prompt_cache_key;
    mr_conv_cache_t cache;        /* a request-level marker (automatic caching) */
    mr_conv_str_t cached_content; /* Gemini cachedContent: a cache's resource name */

    /* members of the other inbound dialects (messages_parse.h,
     * responses_parse.h); chat leaves them unset */
    mr_conv_num_t top_k;                /* Messages top_k */
    mr_conv_str_t thinking_type;        /* Messages thinking.type: enabled, disabled, adaptive */
    mr_conv_num_t thinking_budget;      /* Messages thinking.budget_tokens */
    mr_conv_str_t reasoning_summary;    /* Responses reasoning.summary */
    int no_store;                       /* Responses "store": false */
    mr_conv_str_t previous_response_id; /* Responses: resolved by the gateway, not here */
    int include_encrypted;              /* Responses include: reasoning.encrypted_content */

    /* top-level members the parser saw and the model does not carry */
    mr_conv_str_t *dropped;
    size_t n_dropped;

    struct mr_conv_arena *_arena;
} mr_conv_req_t;

/* ---- answers ----------------------------------------------------------- */

typedef enum mr_conv_finish {
    MR_CONV_FINISH_UNSET,
    MR_CONV_FINISH_STOP,
    MR_CONV_FINISH_LENGTH,
    MR_CONV_FINISH_TOOL_CALLS,
    MR_CONV_FINISH_CONTENT_FILTER,
} mr_conv_finish_t;

/* Token counts, -1 when unknown. prompt includes cached input (OpenAI's
 * convention); completion includes reasoning. */
typedef struct mr_conv_usage {
    long prompt, completion, cached, cache_write, reasoning;
} mr_conv_usage_t;

#define MR_CONV_USAGE_UNKNOWN ((mr_conv_usage_t){-1, -1, -1, -1, -1})

typedef struct mr_conv_choice {
    long index;
    mr_conv_part_t *parts; /* TEXT, REASONING, TOOL_CALL (call ids always set) */
    size_t n_parts;
    mr_conv_finish_t finish;
} mr_conv_choice_t;

typedef struct mr_conv_answer {
    mr_conv_str_t id;    /* the upstream's id (bounded, safe bytes) */
    mr_conv_str_t model; /* the upstream's model, else the target's */
    mr_conv_choice_t *choices;
    size_t n_choices;
    mr_conv_usage_t usage;
    struct mr_conv_arena *_arena;
} mr_conv_answer_t;

/* ---- stream events ----------------------------------------------------- */

/* What a dialect's stream parser reports, in order. Pointers are borrowed
 * for the duration of the sink call only. */
typedef enum mr_conv_event_kind {
    MR_CONV_EV_START,          /* choice begins: id, name = model */
    MR_CONV_EV_TEXT,           /* text delta: text */
    MR_CONV_EV_REASONING,      /* reasoning block `index`, text delta: text */
    MR_CONV_EV_SIGNATURE,      /* reasoning block `index`'s signature: text */
    MR_CONV_EV_REASONING_DATA, /* opaque reasoning block `index`: text = data */
    MR_CONV_EV_TOOL_START,     /* tool call `index`: id, name, text = first arguments,
                                * signature (Gemini's, may be absent) */
    MR_CONV_EV_TOOL_ARGS,      /* arguments delta of tool call `index`: text */
    MR_CONV_EV_USAGE,          /* the counts so far: usage */
    MR_CONV_EV_FINISH,         /* choice ends: finish */
    MR_CONV_EV_END,            /* the answer is complete (after every FINISH) */
    MR_CONV_EV_ERROR,          /* the upstream failed: err_type, err_code, text */
} mr_conv_event_kind_t;

typedef struct mr_conv_event {
    mr_conv_event_kind_t kind;
    long choice;
    int index;
    mr_conv_str_t id, name, text, signature;
    mr_conv_finish_t finish;
    const mr_conv_usage_t *usage;
    const char *err_type, *err_code;
} mr_conv_event_t;

/* Where events go (an outbound writer). Returns 0, or -1 when the output
 * cannot take it (out of memory): the stream then fails. */
typedef struct mr_conv_sink {
    int (*event)(void *ctx, const mr_conv_event_t *ev);
    void *ctx;
} mr_conv_sink_t;

/* ---- capabilities and the check ---------------------------------------- */

/* What a translating dialect can express. mr_conv_check refuses the rest
 * with today's 400s, naming the dialect. */
typedef struct mr_conv_caps {
    const char *name;           /* "anthropic": in messages */
    int n_max;                  /* n is validated as 1..n_max */
    int choices_max;            /* n above it: unsupported */
    long long max_output_limit; /* max tokens are validated as 1..limit */
    unsigned char image_url;    /* images by http(s) URL (else base64 only) */
    unsigned char audio_in;     /* input_audio parts */
    const char *file_type;      /* the one inline file type taken; NULL: any */
    unsigned char json_object, json_schema;
    unsigned char penalties, seed; /* presence/frequency penalty, seed read */
    unsigned char call_needs_id;   /* tool calls must have an id and type function */
    unsigned char result_by_name;  /* tool results are matched by function name */
    unsigned char rich_results;    /* tool results may hold user parts (images) */
    unsigned char logprobs;        /* logprobs: true */
    unsigned char audio_out;       /* audio output, non-text modalities */
    unsigned char reasoning;       /* maps reasoning_effort (a bad one is refused) */
    /* The JSON Schema keywords a json_schema response format may use (NULL-
     * terminated; NULL: any), and a check of a keyword's value (NULL: any):
     * anything else is refused naming the keyword and its path. */
    const char *const *schema_keywords;
    int (*schema_value_ok)(const char *keyword, const json_t *value);
} mr_conv_caps_t;

/* 0 when every part of req can be expressed with caps, else -1 with the
 * client's 400 in *err. Parameters a dialect does not read are not looked
 * at (a BAD value the target ignores is no error). */
int mr_conv_check(const mr_conv_req_t *req, const mr_conv_caps_t *caps, mr_error_t *err);

/* What a request needs of a target, as catalogue.h's MR_CAP_* bits: tools
 * (tools, calls, results), vision (images), audio (audio in or out), files,
 * json_object / json_schema (response_format), reasoning (asked for and not
 * "none"), prompt_cache (a cache marker anywhere, or Gemini cachedContent). */
uint32_t mr_conv_needs(const mr_conv_req_t *r);

/* Whether a signature made at `o` validates on a target of provider kind
 * `kind` and model `model`: the kinds match, and the models when o says. */
int mr_conv_origin_ok(const mr_conv_origin_t *o, const char *kind, const char *model);

/* The effort a token budget stands for (thinking.budget_tokens ->
 * reasoning_effort), the inverse of the dialects' tables. */
mr_conv_effort_t mr_conv_effort_for_budget(long budget);
/* An effort's name as dialects spell it ("none", "minimal", "low", "medium",
 * "high"): UNSET when absent, BAD for any other value. */
mr_conv_effort_t mr_conv_effort_of(mr_conv_str_t name);
/* "minimal", "low"... ; NULL for UNSET and BAD. */
const char *mr_conv_effort_name(mr_conv_effort_t e);

/* ---- building (parsers) and releasing ---------------------------------- */

typedef struct mr_conv_arena mr_conv_arena_t;

/* New empty request / answer holding a reference to `src` (may be NULL).
 * NULL when out of memory. */
mr_conv_req_t *mr_conv_req_new(const json_t *src);
void mr_conv_req_free(mr_conv_req_t *r);
int mr_conv_answer_init(mr_conv_answer_t *a, const json_t *src);
void mr_conv_answer_free(mr_conv_answer_t *a);

/* Zeroed memory for n items of `size` from the arena, or NULL when out of
 * memory or past MR_CONV_MAX_BYTES (mr_conv_arena_over says which). */
void *mr_conv_alloc(mr_conv_arena_t *a, size_t n, size_t size);
/* A NUL-terminated copy of p[0, n) in the arena; absent on failure. */
mr_conv_str_t mr_conv_copy(mr_conv_arena_t *a, const char *p, size_t n);
int mr_conv_arena_over(const mr_conv_arena_t *a);
/* Takes ownership of j (freed with the arena); returns j. */
json_t *mr_conv_keep(mr_conv_arena_t *a, json_t *j);

/* A view of a JSON string (absent when j is not a string). */
mr_conv_str_t mr_conv_str(const json_t *j);
/* Whether s equals the C string lit. */
int mr_conv_eq(mr_conv_str_t s, const char *lit);

/* OpenAI's name of a finish reason ("stop", "length", "tool_calls",
 * "content_filter"); UNSET gives "stop". */
const char *mr_conv_finish_name(mr_conv_finish_t f);

/* Text of the TEXT and REFUSAL parts of parts[0, n), appended to out (its
 * limit applies). 0 / -1. */
int mr_conv_join_text(const mr_conv_part_t *parts, size_t n, mr_buf_t *out);

#endif
