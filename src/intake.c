#include "meridian/intake.h"

#include "meridian/inbound.h"
#include "meridian/json_span.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The top-level members the scan locates (request.h's scan.keys): what
 * routing and limits read, and what the passthrough adapters edit. */
enum {
    K_MODEL,
    K_STREAM,
    K_STREAM_OPTIONS,
    K_MODELS,
    K_PROVIDER,
    K_MAX_TOKENS,
    K_MAX_COMPLETION_TOKENS,
    K_MAX_OUTPUT_TOKENS,
    K_PROMPT_CACHE_KEY,
    K_USER,
    K_METADATA,
};
static const char *const scanned_keys[] = {
    "model",
    "stream",
    "stream_options",
    "models",
    "provider",
    "max_tokens",
    "max_completion_tokens",
    "max_output_tokens",
    "prompt_cache_key",
    "user",
    "metadata",
    NULL,
};

/* What an upstream copy may add to the body: the model's name, an inserted
 * stream_options member. */
#define COPY_SLACK 256

int mr_intake_hold_copy(mr_request_t *r, size_t len)
{
    if (r->copy_credit)
        return 0;
    if (mr_mem_charge(&r->mem, len + COPY_SLACK) < 0)
        return -1;
    r->copy_credit = len + COPY_SLACK;
    return 0;
}

void mr_intake_release_copy(mr_request_t *r)
{
    mr_mem_release(&r->mem, r->copy_credit);
    r->copy_credit = 0;
}

size_t mr_intake_tree_estimate(size_t values, size_t members, size_t string_bytes)
{
    /* jansson: a json_t per value (32-48 bytes with malloc's header), a
     * hashtable pair per member (~48 + its key), a copy of each string,
     * tables of pointers; true, false and null are shared. Rounded up: a
     * body of one-byte numbers measures ~46 bytes a value. */
    return values * 64 + members * 48 + string_bytes;
}

static const char *body_of(const mr_request_t *r, size_t *len)
{
    *len = mr_buf_len(&r->body);
    return mr_buf_ptr(&r->body);
}

/* Line and column of byte `at`, for the message of a refused body. */
static void position(const char *p, size_t at, size_t *line, size_t *col)
{
    const char *nl = NULL;

    *line = 1;
    for (size_t i = 0; i < at; i++)
        if (p[i] == '\n') {
            (*line)++;
            nl = p + i;
        }
    *col = (size_t)(p + at - (nl ? nl + 1 : p)) + 1;
}

static int scan_body(mr_request_t *r, mr_error_t *e)
{
    size_t len, line, col;
    const char *p = body_of(r, &len);

    if (len == 0)
        return mr_error_bad(e, "invalid_request_error", NULL,
                            "request body is empty: expected a JSON object");
    r->scan.keys = scanned_keys;
    if (mr_json_scan(p, len, &r->scan) < 0) {
        position(p, r->scan.error_at, &line, &col);
        return mr_error_bad(e, "invalid_json", NULL,
                            "request body is not valid JSON: %s (line %zu, column %zu)",
                            r->scan.error, line, col);
    }
    if (!r->scan.object)
        return mr_error_bad(e, "invalid_request_error", NULL, "request body must be a JSON object");
    return 0;
}

static const char *span_text(const mr_request_t *r, const mr_json_span_t *sp)
{
    return mr_buf_ptr(&r->body) + sp->value_off;
}

static int span_is(const mr_request_t *r, const mr_json_span_t *sp, const char *lit)
{
    return sp && sp->value_len == strlen(lit) && !memcmp(span_text(r, sp), lit, sp->value_len);
}

static int read_model(mr_request_t *r, mr_error_t *e)
{
    const mr_json_span_t *sp = mr_json_scan_get(&r->scan, K_MODEL);
    size_t n;

    if (!sp || span_is(r, sp, "null"))
        return mr_error_bad(e, "missing_required_parameter", "model",
                            "you must provide a model parameter");
    if (*span_text(r, sp) != '"' || sp->value_len <= 2)
        return mr_error_bad(e, "invalid_type", "model", "model must be a non-empty string");
    if (!(r->model = mr_pool_alloc(&r->pool, sp->value_len))) {
        mr_error_set(e, 503, NULL, "overloaded", NULL,
                     "the gateway is holding as much request and answer data as it may "
                     "(limits.worker_memory_bytes); retry shortly");
        return -1;
    }
    n = mr_json_string_decode(span_text(r, sp), sp->value_len, r->model);
    if (strlen(r->model) != n)
        return mr_error_bad(e, "invalid_type", "model", "model must not contain NUL characters");
    return 0;
}

/* max_tokens, max_completion_tokens or max_output_tokens: the first that is
 * a positive integer (as a parser reads it: 5.0 is not one), capped. */
static uint32_t read_max_output(const mr_request_t *r)
{
    for (int k = K_MAX_TOKENS; k <= K_MAX_OUTPUT_TOKENS; k++) {
        const mr_json_span_t *sp = mr_json_scan_get(&r->scan, (size_t)k);
        char num[32], *end;
        if (!sp || sp->value_len >= sizeof(num) || memchr(span_text(r, sp), '.', sp->value_len) ||
            memchr(span_text(r, sp), 'e', sp->value_len) ||
            memchr(span_text(r, sp), 'E', sp->value_len))
            continue;
        memcpy(num, span_text(r, sp), sp->value_len);
        num[sp->value_len] = '\0';
        errno = 0;
        long long v = strtoll(num, &end, 10);
        if (*end || v <= 0)
            continue;
        return errno == ERANGE || v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
    }
    return 0;
}

int mr_intake_read(mr_request_t *r, mr_error_t *e)
{
    const mr_json_span_t *stream, *so;
    mr_json_span_t usage;

    if (r->scan.keys) /* read already (a Responses request, before its store) */
        return 0;
    if (scan_body(r, e) < 0 || read_model(r, e) < 0)
        return -1;
    stream = mr_json_scan_get(&r->scan, K_STREAM);
    if (stream && !span_is(r, stream, "true") && !span_is(r, stream, "false") &&
        !span_is(r, stream, "null"))
        return mr_error_bad(e, "invalid_type", "stream", "stream must be a boolean");
    r->stream = (mr_inbound_is_conversation(r->endpoint) || r->endpoint == MR_EP_COMPLETIONS) &&
                span_is(r, stream, "true");
    if (r->stream)
        mr_server_stream_socket(r->conn);
    so = mr_json_scan_get(&r->scan, K_STREAM_OPTIONS);
    r->client_wants_usage =
        so && *span_text(r, so) == '{' &&
        mr_json_find_member(span_text(r, so), so->value_len, "include_usage", &usage) == 0 &&
        usage.value_len == 4 && !memcmp(span_text(r, so) + usage.value_off, "true", 4);
    r->max_output_tokens = read_max_output(r);
    return 0;
}

static int refuse_overloaded(mr_request_t *r, size_t need, mr_error_t *e)
{
    const mr_memacct_t *a = r->mem.acct;

    if (a && a->limit && need > a->limit) {
        mr_error_set(e, 413, NULL, "request_too_large", NULL,
                     "parsing this body takes about %zu MiB, more than this worker may hold "
                     "(limits.worker_memory_bytes, %zu MiB): send fewer, larger JSON values",
                     need >> 20, a->limit >> 20);
        return -1;
    }
    mr_error_set(e, 503, NULL, "overloaded", NULL,
                 "the gateway is holding as much request and answer data as it may "
                 "(limits.worker_memory_bytes); retry shortly");
    return -1;
}

/* A tree of p[0, n), its estimated size charged (and added to *charged). */
static json_t *charged_tree(mr_request_t *r, const char *p, size_t n, const mr_json_scan_t *sc,
                            size_t *charged, mr_error_t *e)
{
    size_t est = mr_intake_tree_estimate(sc->values, sc->members, sc->string_bytes);
    json_error_t jerr;
    json_t *j;

    if (mr_mem_charge(&r->mem, est) < 0) {
        refuse_overloaded(r, est, e);
        return NULL;
    }
    *charged += est;
    if (!(j = json_loadb(p, n, JSON_REJECT_DUPLICATES, &jerr)))
        /* valid JSON jansson refuses: a number out of its range, a NUL */
        mr_error_bad(e, "invalid_json", NULL,
                     "request body is not valid JSON: %s (line %d, "
                     "column %d)",
                     jerr.text, jerr.line, jerr.column);
    return j;
}

/* One routing member as a tree, charged by its own scan's counts. */
static int routing_member(mr_request_t *r, int key, json_t **out, mr_error_t *e)
{
    const mr_json_span_t *sp = mr_json_scan_get(&r->scan, (size_t)key);
    mr_json_scan_t sc = {0};

    if (!sp || *out)
        return 0;
    if (mr_json_scan(span_text(r, sp), sp->value_len, &sc) < 0)
        return refuse_overloaded(r, 0, e); /* valid already: only memory fails */
    *out = charged_tree(r, span_text(r, sp), sp->value_len, &sc, &r->tree_charge, e);
    return *out ? 0 : -1;
}

int mr_intake_routing(mr_request_t *r, const json_t **models, json_t **provider, mr_error_t *e)
{
    if (routing_member(r, K_MODELS, &r->models_json, e) < 0 ||
        routing_member(r, K_PROVIDER, &r->provider_json, e) < 0)
        return -1;
    *models = r->models_json;
    *provider = r->provider_json;
    return 0;
}

/* The conversation model holds about what the tree holds: charged once,
 * before it is parsed. */
static int charge_conv(mr_request_t *r, mr_error_t *e)
{
    size_t est = mr_intake_tree_estimate(r->scan.values, r->scan.members, r->scan.string_bytes);

    if (r->conv_charge)
        return 0;
    if (mr_mem_charge(&r->mem, est) < 0)
        return refuse_overloaded(r, est * 2, e);
    r->conv_charge = est;
    return 0;
}

int mr_intake_prepare(mr_request_t *r, const mr_adapter_t *ad, mr_error_t *e)
{
    size_t len;
    const char *p = body_of(r, &len);

    if (!ad || ad->passthrough)
        return 0;
    if (!r->json && !(r->json = charged_tree(r, p, len, &r->scan, &r->tree_charge, e)))
        return -1;
    if (!ad->uses_conv || !mr_inbound_is_conversation(r->endpoint) || r->conv.tried)
        return 0;
    return charge_conv(r, e);
}

/* Whether routing must read the body's tree: a Responses request (its
 * native passthrough reads the input items), or a session member naming
 * the conversation for cache affinity. */
static bool routing_needs_tree(const mr_request_t *r)
{
    return r->endpoint == MR_EP_RESPONSES || mr_json_scan_get(&r->scan, K_PROMPT_CACHE_KEY) ||
           mr_json_scan_get(&r->scan, K_USER) || mr_json_scan_get(&r->scan, K_METADATA);
}

int mr_intake_routing_tree(mr_request_t *r, bool conv, mr_error_t *e)
{
    size_t len;
    const char *p = body_of(r, &len);
    bool need = routing_needs_tree(r);
    mr_error_t ce;

    conv = conv && mr_inbound_is_conversation(r->endpoint);
    if (!need && !conv)
        return 0;
    if (!r->json && !(r->json = charged_tree(r, p, len, &r->scan, &r->tree_charge, need ? e : &ce)))
        return need ? -1 : 0; /* capabilities unread: see the header */
    if (conv && charge_conv(r, &ce) < 0 && !need)
        mr_intake_release(r);
    return 0;
}

void mr_intake_release(mr_request_t *r)
{
    size_t est =
        r->json ? mr_intake_tree_estimate(r->scan.values, r->scan.members, r->scan.string_bytes)
                : 0;

    /* the routing members stay: the plan borrows from them */
    json_decref(r->json);
    r->json = NULL;
    mr_adapter_conv_free(&r->conv);
    mr_mem_release(&r->mem, est + r->conv_charge);
    r->tree_charge -= est < r->tree_charge ? est : r->tree_charge;
    r->conv_charge = 0;
}

void mr_intake_body_changed(mr_request_t *r)
{
    mr_intake_release(r);
    memset(&r->scan, 0, sizeof(r->scan));
}
