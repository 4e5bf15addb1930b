#include "meridian/conv.h"

#include <stdint.h>
#include "meridian/catalogue.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ the arena */

/* The first chunk lives in the arena's own allocation: a small request or
 * answer costs one malloc; later chunks double the arena. */
#define FIRST_CHUNK 2048

typedef struct chunk {
    struct chunk *next;
    size_t size, used;
    max_align_t data[];
} chunk_t;

typedef struct kept {
    json_t *j;
    struct kept *next;
} kept_t;

struct mr_conv_arena {
    chunk_t *head;
    size_t total; /* bytes of every chunk */
    int over;     /* an allocation was refused at MR_CONV_MAX_BYTES */
    kept_t *kept; /* trees owned, released with the arena */
    max_align_t first[];
};

static chunk_t *first_chunk(mr_conv_arena_t *a)
{
    return (chunk_t *)a->first;
}

static mr_conv_arena_t *arena_new(const json_t *src)
{
    mr_conv_arena_t *a = malloc(sizeof(*a) + sizeof(chunk_t) + FIRST_CHUNK);

    if (!a)
        return NULL;
    *a = (mr_conv_arena_t){.head = first_chunk(a), .total = FIRST_CHUNK};
    *a->head = (chunk_t){.size = FIRST_CHUNK};
    if (src && !mr_conv_keep(a, json_incref((json_t *)(uintptr_t)src))) {
        free(a);
        return NULL;
    }
    return a;
}

static void arena_free(mr_conv_arena_t *a)
{
    if (!a)
        return;
    /* the kept list lives in the chunks: walk it before they go */
    for (kept_t *k = a->kept; k; k = k->next)
        json_decref(k->j);
    for (chunk_t *c = a->head, *next; c != first_chunk(a); c = next) {
        next = c->next;
        free(c);
    }
    free(a);
}

void *mr_conv_alloc(mr_conv_arena_t *a, size_t n, size_t size)
{
    const size_t align = sizeof(max_align_t);
    size_t bytes, at;
    chunk_t *c = a->head;

    if (size && n > (MR_CONV_MAX_BYTES / size)) {
        a->over = 1;
        return NULL;
    }
    bytes = n * size;
    at = (c->used + align - 1) / align * align;
    if (at + bytes > c->size) {
        size_t cap = bytes > a->total ? bytes : a->total;
        if (a->total + cap > MR_CONV_MAX_BYTES)
            cap = bytes; /* the last chunk that fits */
        if (a->total + cap > MR_CONV_MAX_BYTES) {
            a->over = 1;
            return NULL;
        }
        if (!(c = malloc(sizeof(*c) + cap)))
            return NULL;
        *c = (chunk_t){.next = a->head, .size = cap};
        a->head = c;
        a->total += cap;
        at = 0;
    }
    c->used = at + bytes;
    return memset((char *)c->data + at, 0, bytes);
}

mr_conv_str_t mr_conv_copy(mr_conv_arena_t *a, const char *p, size_t n)
{
    char *s = mr_conv_alloc(a, n + 1, 1);

    if (!s)
        return (mr_conv_str_t){NULL, 0};
    memcpy(s, p, n);
    return (mr_conv_str_t){s, n};
}

int mr_conv_arena_over(const mr_conv_arena_t *a)
{
    return a->over;
}

json_t *mr_conv_keep(mr_conv_arena_t *a, json_t *j)
{
    kept_t *k;

    if (!j)
        return NULL;
    if (!(k = mr_conv_alloc(a, 1, sizeof(*k)))) {
        json_decref(j);
        return NULL;
    }
    k->j = j;
    k->next = a->kept;
    a->kept = k;
    return j;
}

/* ------------------------------------------------------------ objects */

mr_conv_req_t *mr_conv_req_new(const json_t *src)
{
    mr_conv_arena_t *a = arena_new(src);
    mr_conv_req_t *r = a ? mr_conv_alloc(a, 1, sizeof(*r)) : NULL;

    if (!r) {
        arena_free(a);
        return NULL;
    }
    r->_arena = a;
    r->turns_param = "messages";
    r->parallel_tool_calls = -1;
    r->format.strict = -1;
    r->reasoning.budget = -1;
    return r;
}

void mr_conv_req_free(mr_conv_req_t *r)
{
    if (r)
        arena_free(r->_arena); /* r lives in it */
}

int mr_conv_answer_init(mr_conv_answer_t *a, const json_t *src)
{
    memset(a, 0, sizeof(*a));
    a->usage = MR_CONV_USAGE_UNKNOWN;
    a->_arena = arena_new(src);
    return a->_arena ? 0 : -1;
}

void mr_conv_answer_free(mr_conv_answer_t *a)
{
    arena_free(a->_arena);
    memset(a, 0, sizeof(*a));
}

mr_conv_str_t mr_conv_str(const json_t *j)
{
    if (!json_is_string(j))
        return (mr_conv_str_t){NULL, 0};
    return (mr_conv_str_t){json_string_value(j), json_string_length(j)};
}

int mr_conv_eq(mr_conv_str_t s, const char *lit)
{
    return s.p && s.n == strlen(lit) && memcmp(s.p, lit, s.n) == 0;
}

const char *mr_conv_finish_name(mr_conv_finish_t f)
{
    switch (f) {
    case MR_CONV_FINISH_LENGTH:
        return "length";
    case MR_CONV_FINISH_TOOL_CALLS:
        return "tool_calls";
    case MR_CONV_FINISH_CONTENT_FILTER:
        return "content_filter";
    case MR_CONV_FINISH_UNSET:
    case MR_CONV_FINISH_STOP:
        break;
    }
    return "stop";
}

/* ------------------------------------------------------------ needs */

static uint32_t part_needs(const mr_conv_part_t *p)
{
    uint32_t n = p->cache.type.p ? MR_CAP_PROMPT_CACHE : 0;

    switch (p->kind) {
    case MR_CONV_IMAGE:
        return n | MR_CAP_VISION;
    case MR_CONV_AUDIO:
        return n | MR_CAP_AUDIO;
    case MR_CONV_FILE:
        return n | MR_CAP_FILES;
    case MR_CONV_TOOL_CALL:
        return n | MR_CAP_TOOLS;
    case MR_CONV_TOOL_RESULT:
        n |= MR_CAP_TOOLS;
        for (size_t k = 0; k < p->u.result.n_content; k++)
            n |= part_needs(&p->u.result.content[k]);
        return n;
    default:
        return n;
    }
}

static uint32_t reasoning_needs(const mr_conv_reasoning_req_t *r)
{
    int off = r->effort == MR_CONV_EFFORT_NONE || r->budget == 0;
    int on = (r->effort != MR_CONV_EFFORT_UNSET && r->effort != MR_CONV_EFFORT_BAD) ||
             r->budget > 0 || r->anthropic || r->gemini;
    return on && !off ? MR_CAP_REASONING : 0;
}

uint32_t mr_conv_needs(const mr_conv_req_t *r)
{
    uint32_t n = reasoning_needs(&r->reasoning);

    if (r->n_tools)
        n |= MR_CAP_TOOLS;
    if (r->format.kind == MR_CONV_FORMAT_JSON_OBJECT)
        n |= MR_CAP_JSON_OBJECT;
    if (r->format.kind == MR_CONV_FORMAT_JSON_SCHEMA)
        n |= MR_CAP_JSON_SCHEMA;
    if (r->audio_out)
        n |= MR_CAP_AUDIO;
    if (r->cache.type.p || r->cached_content.p)
        n |= MR_CAP_PROMPT_CACHE;
    for (size_t i = 0; i < r->n_tools; i++)
        if (r->tools[i].cache.type.p)
            n |= MR_CAP_PROMPT_CACHE;
    for (size_t i = 0; i < r->n_turns; i++) {
        const mr_conv_turn_t *t = &r->turns[i];
        if (t->cache.type.p)
            n |= MR_CAP_PROMPT_CACHE;
        for (size_t k = 0; k < t->n_parts; k++)
            n |= part_needs(&t->parts[k]);
    }
    return n;
}

int mr_conv_origin_ok(const mr_conv_origin_t *o, const char *kind, const char *model)
{
    return mr_conv_eq(o->kind, kind) && (!o->model.p || (model && mr_conv_eq(o->model, model)));
}

/* Effort names in order of mr_conv_effort_t (UNSET and BAD have none). */
static const char *const effort_names[] = {NULL, "none", "minimal", "low", "medium", "high"};

const char *mr_conv_effort_name(mr_conv_effort_t e)
{
    return e > MR_CONV_EFFORT_UNSET && e < MR_CONV_EFFORT_BAD ? effort_names[e] : NULL;
}

mr_conv_effort_t mr_conv_effort_of(mr_conv_str_t name)
{
    if (!name.p)
        return MR_CONV_EFFORT_UNSET;
    for (int e = MR_CONV_EFFORT_UNSET + 1; e < MR_CONV_EFFORT_BAD; e++)
        if (strlen(effort_names[e]) == name.n && memcmp(effort_names[e], name.p, name.n) == 0)
            return (mr_conv_effort_t)e;
    return MR_CONV_EFFORT_BAD;
}

mr_conv_effort_t mr_conv_effort_for_budget(long budget)
{
    if (budget <= 0)
        return MR_CONV_EFFORT_NONE;
    if (budget <= 1024)
        return MR_CONV_EFFORT_MINIMAL;
    if (budget <= 4096)
        return MR_CONV_EFFORT_LOW;
    if (budget <= 16384)
        return MR_CONV_EFFORT_MEDIUM;
    return MR_CONV_EFFORT_HIGH;
}

int mr_conv_join_text(const mr_conv_part_t *parts, size_t n, mr_buf_t *out)
{
    for (size_t i = 0; i < n; i++) {
        const mr_conv_part_t *p = &parts[i];
        if ((p->kind == MR_CONV_TEXT || p->kind == MR_CONV_REFUSAL) &&
            mr_buf_append(out, p->u.text.p, p->u.text.n) < 0)
            return -1;
    }
    return 0;
}

/* ------------------------------------------------------------ the check
 *
 * Every refusal of a translating dialect, in one walk: the request-level
 * features first, then each turn where the client put it, then sampling
 * parameters and tools. Messages name the JSON path and the dialect. */

typedef struct check {
    const mr_conv_caps_t *caps;
    const char *param; /* the turns' member, "messages" */
    size_t turn;       /* the turn being checked: messages say "messages[3]" */
    size_t part0;      /* the client's index of the turn's first part */
    mr_error_t *err;
} check_t;

static int unsupported(const check_t *ck, const char *param, const char *what)
{
    return mr_error_bad(ck->err, "unsupported_parameter", param, "%s not supported by %s targets",
                        what, ck->caps->name);
}

/* An integer parameter within [lo, hi]; UNSET passes. */
static int check_int(const mr_conv_num_t *v, long long lo, long long hi, mr_error_t *err)
{
    if (v->state == MR_CONV_BAD)
        return mr_error_bad(err, "invalid_type", NULL, "%s must be an integer", v->param);
    if (v->state == MR_CONV_SET && !(v->v >= (double)lo && v->v <= (double)hi))
        return mr_error_bad(err, "invalid_value", NULL, "%s must be between %lld and %lld",
                            v->param, lo, hi);
    return 0;
}

static int check_number(const mr_conv_num_t *v, mr_error_t *err)
{
    if (v->state == MR_CONV_BAD)
        return mr_error_bad(err, "invalid_type", NULL, "%s must be a number", v->param);
    return 0;
}

static int check_format(const mr_conv_format_t *f, const mr_conv_caps_t *c, mr_error_t *err)
{
    if (f->kind == MR_CONV_FORMAT_OTHER ||
        (f->kind == MR_CONV_FORMAT_JSON_OBJECT && !c->json_object) ||
        (f->kind == MR_CONV_FORMAT_JSON_SCHEMA && !c->json_schema))
        return mr_error_bad(err, "unsupported_parameter", "response_format",
                            "response_format %s is not supported by %s targets", f->type.p,
                            c->name);
    return 0;
}

/* Request-level features. A parameter the dialect maps (n, response_format)
 * is judged with the sampling parameters instead, after the turns. */
static int check_features(const mr_conv_req_t *r, const check_t *ck)
{
    const mr_conv_caps_t *c = ck->caps;
    const mr_conv_format_t *f = &r->format;

    if (c->choices_max < c->n_max) {
        if (check_int(&r->n, 1, c->n_max, ck->err) < 0)
            return -1;
        if (r->n.state == MR_CONV_SET && r->n.v > c->choices_max)
            return unsupported(ck, "n", "n > 1 is");
    }
    if (r->logprobs && !c->logprobs)
        return unsupported(ck, "logprobs", "logprobs are");
    if (!c->json_object && !c->json_schema && check_format(f, c, ck->err) < 0)
        return -1;
    if (r->audio_out && !c->audio_out)
        return unsupported(ck, "audio", "audio output is");
    if (r->non_text_modal && !c->audio_out)
        return mr_error_bad(ck->err, "unsupported_parameter", "modalities",
                            "only the text modality is supported by %s targets", c->name);
    if (r->legacy_functions)
        return mr_error_bad(ck->err, "unsupported_parameter", "functions",
                            "functions/function_call are deprecated: use tools/tool_choice");
    return 0;
}

/* Content refused at part k of the current turn: "<where>.content[k]<fmt>". */
static int refuse_part(const check_t *ck, const char *code, size_t k, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int refuse_part(const check_t *ck, const char *code, size_t k, const char *fmt, ...)
{
    char what[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    return mr_error_bad(ck->err, code, ck->param, "%s[%zu].content[%zu]%s", ck->param, ck->turn,
                        ck->part0 + k, what);
}

/* System, developer and assistant content (which may also hold reasoning),
 * and text-only tool results. */
static int check_text_only(const mr_conv_part_t *parts, size_t n, int reasoning, const check_t *ck)
{
    for (size_t k = 0; k < n; k++)
        if (parts[k].kind != MR_CONV_TEXT && parts[k].kind != MR_CONV_REFUSAL &&
            !(reasoning && parts[k].kind == MR_CONV_REASONING))
            return refuse_part(ck, "unsupported_content", k, ": only text parts are allowed here");
    return 0;
}

static int check_image(const mr_conv_media_t *m, size_t k, const check_t *ck)
{
    const mr_conv_caps_t *c = ck->caps;

    if (m->source == MR_CONV_SRC_BASE64 || (m->source == MR_CONV_SRC_URL && c->image_url))
        return 0;
    if (!c->image_url)
        return refuse_part(ck, "unsupported_content", k,
                           ": %s targets take images only as data: (base64) URLs", c->name);
    if (m->source == MR_CONV_SRC_MISSING)
        return refuse_part(ck, "invalid_type", k, ".image_url.url is missing");
    return refuse_part(ck, "unsupported_content", k,
                       ": image URLs must be data: (base64) or http(s) URLs");
}

static int check_file(const mr_conv_media_t *m, size_t k, const check_t *ck)
{
    const char *type = ck->caps->file_type;

    if (!type && m->source != MR_CONV_SRC_BASE64)
        return refuse_part(ck, "unsupported_content", k,
                           ": %s targets take files only inline as file_data "
                           "(data:...;base64,...)",
                           ck->caps->name);
    if (type && (m->source != MR_CONV_SRC_BASE64 || !mr_conv_eq(m->media_type, type)))
        return refuse_part(ck, "unsupported_content", k,
                           ": only PDF files given inline as file_data "
                           "(data:application/pdf;base64,...) can be sent to %s",
                           ck->caps->name);
    return 0;
}

static int cannot_send(const check_t *ck, size_t k, const char *type)
{
    return refuse_part(ck, "unsupported_content", k, ": %s parts cannot be sent to %s", type,
                       ck->caps->name);
}

static int check_user_part(const mr_conv_part_t *p, size_t k, const check_t *ck)
{
    switch (p->kind) {
    case MR_CONV_TEXT:
        return 0;
    case MR_CONV_IMAGE:
        return check_image(&p->u.media, k, ck);
    case MR_CONV_AUDIO:
        if (!ck->caps->audio_in)
            return cannot_send(ck, k, "input_audio");
        if (p->u.media.source != MR_CONV_SRC_BASE64)
            return refuse_part(ck, "invalid_type", k, ".input_audio needs data and format");
        return 0;
    case MR_CONV_FILE:
        return check_file(&p->u.media, k, ck);
    case MR_CONV_OTHER:
        if (p->u.other.flaw == MR_CONV_FLAW_NO_TYPE)
            return refuse_part(ck, "invalid_type", k, ".type is missing");
        if (p->u.other.flaw == MR_CONV_FLAW_BAD_VALUE && mr_conv_eq(p->u.other.type, "text"))
            return refuse_part(ck, "invalid_type", k, ".text must be a string");
        return cannot_send(ck, k, p->u.other.type.p);
    default: /* refusal parts (no parser puts calls or results here) */
        return cannot_send(ck, k, "refusal");
    }
}

/* User content, and tool results of dialects that take user parts there. */
static int check_user_parts(const mr_conv_part_t *parts, size_t n, const check_t *ck)
{
    for (size_t k = 0; k < n; k++)
        if (check_user_part(&parts[k], k, ck) < 0)
            return -1;
    return 0;
}

static int check_calls(const mr_conv_turn_t *t, const check_t *ck)
{
    size_t k = 0;

    for (size_t i = 0; i < t->n_parts; i++) {
        const mr_conv_tool_call_t *call = &t->parts[i].u.call;
        if (t->parts[i].kind != MR_CONV_TOOL_CALL)
            continue;
        if (ck->caps->call_needs_id && (call->id.n == 0 || !call->name.p || !call->type_ok))
            return mr_error_bad(
                ck->err, "invalid_type", ck->param,
                "%s[%zu].tool_calls[%zu] must be a function call with an id and a name", ck->param,
                ck->turn, k);
        if (!call->name.p)
            return mr_error_bad(ck->err, "invalid_type", ck->param,
                                "%s[%zu].tool_calls[%zu] must be a function call with a name",
                                ck->param, ck->turn, k);
        if (!call->args_json)
            return mr_error_bad(
                ck->err, "invalid_value", ck->param,
                "%s[%zu].tool_calls[%zu].function.arguments must be a JSON object text", ck->param,
                ck->turn, k);
        k++;
    }
    return 0;
}

static int check_result(const mr_conv_tool_result_t *res, const check_t *ck)
{
    if (!res->call_id.p || (ck->caps->call_needs_id && res->call_id.n == 0))
        return mr_error_bad(ck->err, "invalid_type", ck->param, "%s[%zu].tool_call_id is missing",
                            ck->param, ck->turn);
    if (ck->caps->result_by_name && !res->name.p)
        return mr_error_bad(
            ck->err, "invalid_value", ck->param,
            "%s[%zu].tool_call_id \"%.100s\" matches no earlier assistant tool call", ck->param,
            ck->turn, res->call_id.p);
    if (ck->caps->rich_results && !res->as_string)
        return check_user_parts(res->content, res->n_content, ck);
    return check_text_only(res->content, res->n_content, 0, ck);
}

static int check_turn(const mr_conv_turn_t *t, check_t *ck)
{
    switch (t->role) {
    case MR_CONV_ROLE_SYSTEM:
    case MR_CONV_ROLE_DEVELOPER:
        return check_text_only(t->parts, t->n_parts, 0, ck);
    case MR_CONV_ROLE_USER:
        return check_user_parts(t->parts, t->n_parts, ck);
    case MR_CONV_ROLE_ASSISTANT:
        /* reasoning the client sends back is the emitters' to keep or drop;
         * parts after a call (other dialects keep their order) are checked too */
        for (size_t k = 0; k < t->n_parts; k++) {
            mr_conv_part_kind_t kind = t->parts[k].kind;
            if (kind != MR_CONV_TEXT && kind != MR_CONV_REFUSAL && kind != MR_CONV_REASONING &&
                kind != MR_CONV_TOOL_CALL)
                return refuse_part(ck, "unsupported_content", k,
                                   ": only text parts are allowed here");
        }
        return check_calls(t, ck);
    case MR_CONV_ROLE_TOOL:
        return check_result(&t->parts[0].u.result, ck);
    case MR_CONV_ROLE_OTHER:
        break;
    }
    if (!t->role_name.p)
        return mr_error_bad(ck->err, "invalid_type", ck->param,
                            "%s[%zu] must be an object with a role", ck->param, ck->turn);
    return mr_error_bad(ck->err, "unsupported_content", ck->param,
                        "%s[%zu]: role \"%s\" cannot be sent to %s", ck->param, ck->turn,
                        t->role_name.p, ck->caps->name);
}

/* Whether `key` is in the NULL-terminated list. */
static int listed(const char *const *list, const char *key)
{
    for (; *list; list++)
        if (!strcmp(*list, key))
            return 1;
    return 0;
}

/* Members whose value is one subschema, an array or a map of them. */
static const char *const sub_one[] = {"items", "additionalProperties", "not", "contains", NULL};
static const char *const sub_array[] = {"anyOf", "oneOf", "allOf", "prefixItems", NULL};
static const char *const sub_map[] = {"properties", "$defs", "definitions", "patternProperties",
                                      NULL};

typedef struct schema_walk {
    const mr_conv_caps_t *caps;
    char path[256];
    mr_error_t *err;
} schema_walk_t;

static int check_schema(schema_walk_t *w, const json_t *s, int depth);

/* Appends ".name" or "[i]" to the walk's path for the duration of a call. */
static int check_sub(schema_walk_t *w, const json_t *s, int depth, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int check_sub(schema_walk_t *w, const json_t *s, int depth, const char *fmt, ...)
{
    size_t at = strlen(w->path);
    va_list ap;
    int rc;

    va_start(ap, fmt);
    vsnprintf(w->path + at, sizeof(w->path) - at, fmt, ap);
    va_end(ap);
    rc = check_schema(w, s, depth + 1);
    w->path[at] = '\0';
    return rc;
}

/* Every keyword of a schema (and of its subschemas) must be one the dialect
 * can express: never silently dropped. Depth is bounded by the JSON parser. */
static int check_schema(schema_walk_t *w, const json_t *s, int depth)
{
    const char *k;
    const json_t *v, *item;
    size_t i;

    if (!json_is_object(s) || depth > 64)
        return 0;
    json_object_foreach((json_t *)(uintptr_t)s, k, v)
    {
        if (!listed(w->caps->schema_keywords, k) ||
            (w->caps->schema_value_ok && !w->caps->schema_value_ok(k, v)))
            return mr_error_bad(w->err, "unsupported_parameter", "response_format",
                                "%s: the JSON Schema keyword \"%.64s\"%s is not supported by %s "
                                "structured outputs",
                                w->path, k,
                                listed(w->caps->schema_keywords, k) ? " with this value" : "",
                                w->caps->name);
        if (listed(sub_one, k) && check_sub(w, v, depth, ".%s", k) < 0)
            return -1;
        if (listed(sub_array, k)) {
            json_array_foreach(v, i, item)
            {
                if (check_sub(w, item, depth, ".%s[%zu]", k, i) < 0)
                    return -1;
            }
        }
        if (listed(sub_map, k)) {
            const char *name;
            json_object_foreach((json_t *)(uintptr_t)v, name, item)
            {
                if (check_sub(w, item, depth, ".%s.%.40s", k, name) < 0)
                    return -1;
            }
        }
    }
    return 0;
}

static int check_reasoning(const mr_conv_req_t *r, const mr_conv_caps_t *c, mr_error_t *err)
{
    if (!c->reasoning || r->reasoning.effort != MR_CONV_EFFORT_BAD)
        return 0;
    return mr_error_bad(err, "invalid_value", "reasoning_effort",
                        "reasoning_effort \"%.40s\" must be none, minimal, low, medium or high",
                        r->reasoning.effort_name.p ? r->reasoning.effort_name.p : "?");
}

static int check_sampling(const mr_conv_req_t *r, const mr_conv_caps_t *c, mr_error_t *err)
{
    if (check_reasoning(r, c, err) < 0)
        return -1;
    if (c->schema_keywords && r->format.kind == MR_CONV_FORMAT_JSON_SCHEMA) {
        schema_walk_t w = {.caps = c, .path = "response_format.json_schema.schema", .err = err};
        if (check_schema(&w, r->format.schema, 0) < 0)
            return -1;
    }
    if (check_int(&r->max_output, 1, c->max_output_limit, err) < 0 ||
        check_number(&r->temperature, err) < 0 || check_number(&r->top_p, err) < 0)
        return -1;
    if (r->stop_bad)
        return mr_error_bad(err, "invalid_type", "stop",
                            "stop must be a string or an array of strings");
    if (c->choices_max >= c->n_max && check_int(&r->n, 1, c->n_max, err) < 0)
        return -1;
    if (c->penalties && (check_number(&r->presence_penalty, err) < 0 ||
                         check_number(&r->frequency_penalty, err) < 0))
        return -1;
    if (c->seed && check_int(&r->seed, -2147483648LL, 2147483647LL, err) < 0)
        return -1;
    if ((c->json_object || c->json_schema) && check_format(&r->format, c, err) < 0)
        return -1;
    return 0;
}

static int check_tools(const mr_conv_req_t *r, const mr_conv_caps_t *c, mr_error_t *err)
{
    if (r->tools_bad)
        return mr_error_bad(err, "invalid_type", "tools", "tools must be an array");
    if (r->n_tools == 0)
        return 0; /* a tool_choice without tools is not looked at */
    for (size_t i = 0; i < r->n_tools; i++)
        if (!r->tools[i].type_ok || !r->tools[i].name.p)
            return mr_error_bad(err, "unsupported_parameter", "tools",
                                "tools[%zu]: only function tools with a name can be sent to %s", i,
                                c->name);
    switch (r->tool_choice.mode) {
    case MR_CONV_CHOICE_BAD_MODE:
        return mr_error_bad(err, "invalid_value", "tool_choice",
                            "tool_choice must be auto, none, required or a function");
    case MR_CONV_CHOICE_BAD_NAME:
        return mr_error_bad(err, "unsupported_parameter", "tool_choice",
                            "tool_choice must name a function");
    case MR_CONV_CHOICE_BAD_TYPE:
        return mr_error_bad(err, "invalid_type", "tool_choice",
                            "tool_choice must be a string or an object");
    default:
        return 0;
    }
}

int mr_conv_check(const mr_conv_req_t *r, const mr_conv_caps_t *c, mr_error_t *err)
{
    check_t ck = {.caps = c, .param = r->turns_param, .err = err};

    if (check_features(r, &ck) < 0)
        return -1;
    for (size_t i = 0; i < r->n_turns; i++) {
        ck.turn = r->turns[i].src ? r->turns[i].src - 1 : i;
        ck.part0 = r->turns[i].src_part;
        if (check_turn(&r->turns[i], &ck) < 0)
            return -1;
    }
    if (check_sampling(r, c, err) < 0)
        return -1;
    return check_tools(r, c, err);
}
