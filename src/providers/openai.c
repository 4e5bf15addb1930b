/*
 * The OpenAI dialect: any OpenAI-compatible API. Bodies pass through byte
 * for byte apart from what the gateway must rewrite; streams pass through
 * event by event while usage is read on the way (and the usage chunk the
 * gateway asked for on the client's behalf is removed).
 */
#include "meridian/adapter.h"
#include "meridian/health.h"
#include "meridian/json_span.h"
#include "openai.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EVENT_MAX (1024 * 1024) /* one SSE event; providers send a few KiB */

static const char *const endpoint_paths[MR_EP_COUNT] = {"/chat/completions", "/completions",
                                                        "/embeddings"};

const char *mr_endpoint_path(mr_endpoint_t ep)
{
    return ep < MR_EP_COUNT ? endpoint_paths[ep] : "";
}

struct curl_slist *mr_adapter_header(struct curl_slist *list, const char *name, const char *value)
{
    char line[8192];
    struct curl_slist *n;

    if (snprintf(line, sizeof(line), "%s: %s", name, value) >= (int)sizeof(line))
        n = NULL;
    else
        n = curl_slist_append(list, line);
    /* the line may hold a key: do not leave it on the stack */
    memset(line, 0, sizeof(line));
    if (!n)
        curl_slist_free_all(list);
    return n;
}

struct curl_slist *mr_adapter_extra_headers(struct curl_slist *list, const mr_adapter_in_t *in)
{
    for (const char *const *h = in->extra_headers; h && *h && list; h++) {
        struct curl_slist *n = curl_slist_append(list, *h);
        if (!n) {
            curl_slist_free_all(list);
            return NULL;
        }
        list = n;
    }
    return list;
}

struct curl_slist *mr_adapter_headers(const mr_adapter_in_t *in, const char *auth_name,
                                      const char *auth_prefix)
{
    const char *key = in->provider->api_key;
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");

    /* curl's default "Expect: 100-continue" costs a round trip per POST */
    h = h ? curl_slist_append(h, "Expect:") : NULL;
    if (h && key && key[0]) {
        char auth[8192];
        if (snprintf(auth, sizeof(auth), "%s%s", auth_prefix, key) < (int)sizeof(auth)) {
            h = mr_adapter_header(h, auth_name, auth);
        } else { /* a key we cannot send: fail, never send without it */
            curl_slist_free_all(h);
            h = NULL;
        }
        memset(auth, 0, sizeof(auth)); /* held a key */
    }
    return h ? mr_adapter_extra_headers(h, in) : NULL;
}

static int wants_usage_member(const mr_adapter_in_t *in)
{
    const json_t *so = json_object_get(in->json, "stream_options");
    return in->client_wants_usage || json_is_true(json_object_get(so, "include_usage"));
}

/* The gateway's scan locates every member the edits touch: nothing to
 * strip means no working copy (*direct), the edits apply to the body. */
static int scanned_spans(const mr_adapter_in_t *in, const mr_json_span_t **model,
                         const mr_json_span_t **so)
{
    const mr_json_span_t *sp;

    if (!in->scan || !mr_json_scan_lookup(in->scan, "model", model) ||
        !mr_json_scan_lookup(in->scan, "stream_options", so))
        return 0;
    for (const char *const *k = in->strip; k && *k; k++)
        if (!mr_json_scan_lookup(in->scan, *k, &sp) || sp)
            return 0;
    return 1;
}

/* Deletes the top-level member `key` (if present) from buf[0, *len) in place.
 * Members are cut one at a time on the current text, so two adjacent cut
 * members never claim the same comma (overlapping edits). */
static void strip_member(char *buf, size_t *len, const char *key)
{
    mr_json_span_t sp;
    size_t off, cut;

    if (mr_json_find_member(buf, *len, key, &sp) != 0)
        return;
    mr_json_member_cut(buf, *len, &sp, &off, &cut);
    memmove(buf + off, buf + off + cut, *len - off - cut);
    *len -= cut;
}

int mr_openai_body(const mr_adapter_in_t *in, int set_model, char **body, size_t *len,
                   mr_error_t *err)
{
    mr_json_edit_t edits[2];
    size_t n = 0, slen = in->body_len;
    mr_json_span_t sp;
    const mr_json_span_t *model_at = NULL, *so_at = NULL;
    int direct = set_model && scanned_spans(in, &model_at, &so_at);
    const char *src = in->body;
    char *quoted = NULL, *opts = NULL, *copy = NULL;
    int rc = -1;

    /* The edits below need strict JSON. jansson accepts a few texts that
     * are not, e.g. a NUL byte after a number ({"a":1\0,"model":...});
     * forwarding those would skip edits the gateway relies on (model,
     * gateway-only members). The gateway's scan is that check. */
    if (!in->scan && mr_json_validate(in->body, in->body_len) < 0) {
        mr_error_set(err, 400, "invalid_request_error", "invalid_json", NULL,
                     "request body is not valid JSON");
        goto done;
    }
    if (!direct) {
        if (!(copy = malloc(in->body_len + 1)))
            goto oom;
        memcpy(copy, in->body, in->body_len);
        copy[slen] = '\0';
        /* deletions first, each on the text the previous one left */
        for (const char *const *k = in->strip; k && *k; k++)
            strip_member(copy, &slen, *k);
        if (!set_model)
            strip_member(copy, &slen, "model");
        src = copy;
        model_at = set_model && mr_json_find_member(src, slen, "model", &sp) == 0 ? &sp : NULL;
    }
    /* then at most two non-overlapping edits: the model's value, and
     * stream_options (a value, or a member inserted after the '{') */
    if (model_at) {
        sp = *model_at;
        quoted = malloc(6 * strlen(in->model) + 3);
        if (!quoted)
            goto oom;
        edits[n++] =
            (mr_json_edit_t){sp.value_off, sp.value_len, quoted, mr_json_quote(in->model, quoted)};
    }
    /* Usage is wanted for every stream (metrics, budgets): ask for it even
     * when the client did not; the stream translator drops that chunk. */
    if (in->stream && !wants_usage_member(in)) {
        if (!direct)
            so_at = mr_json_find_member(src, slen, "stream_options", &sp) == 0 ? &sp : NULL;
        if (so_at) {
            sp = *so_at;
            json_t *so = json_loadb(src + sp.value_off, sp.value_len, 0, NULL);
            if (!json_is_object(so)) {
                json_decref(so);
                so = json_object();
            }
            json_object_set_new(so, "include_usage", json_true());
            opts = json_dumps(so, JSON_COMPACT | JSON_PRESERVE_ORDER);
            json_decref(so);
            if (!opts)
                goto oom;
            edits[n++] = (mr_json_edit_t){sp.value_off, sp.value_len, opts, strlen(opts)};
        } else {
            static const char ins[] = "\"stream_options\":{\"include_usage\":true},";
            const char *brace = memchr(src, '{', slen);
            size_t at = brace ? (size_t)(brace - src) + 1 : 0;
            /* an object that is empty after edits still takes the member */
            edits[n++] = (mr_json_edit_t){at, 0, ins, sizeof(ins) - 1};
        }
    }
    *body = mr_json_apply(src, slen, edits, n, len);
    if (!*body)
        goto oom;
    rc = 0;
    goto done;
oom:
    mr_error_set(err, 500, "api_error", "internal_error", NULL, "out of memory");
done:
    free(copy);
    free(quoted);
    free(opts);
    return rc;
}

static int openai_build(const mr_adapter_in_t *in, mr_adapter_req_t *out, mr_error_t *err)
{
    const mr_provider_t *p = in->provider;
    size_t blen = strlen(p->base_url), plen = strlen(mr_endpoint_path(in->endpoint));
    struct curl_slist *h;

    memset(out, 0, sizeof(*out));
    if (mr_openai_body(in, 1, &out->body, &out->body_len, err) < 0)
        return -1;
    out->url = malloc(blen + plen + 1);
    if (!out->url)
        goto oom;
    memcpy(out->url, p->base_url, blen);
    memcpy(out->url + blen, mr_endpoint_path(in->endpoint), plen + 1);
    h = mr_adapter_headers(in, "Authorization", "Bearer ");
    if (!h)
        goto oom;
    out->headers = h;
    return 0;
oom:
    mr_adapter_req_free(out);
    mr_error_set(err, 500, "api_error", "internal_error", NULL, "out of memory");
    return -1;
}

/* Reads prompt/completion tokens from a usage object. */
static void usage_from(const json_t *u, mr_usage_t *usage)
{
    const json_t *pt = json_object_get(u, "prompt_tokens");
    const json_t *ct = json_object_get(u, "completion_tokens");
    if (json_is_integer(pt))
        usage->prompt_tokens = (long)json_integer_value(pt);
    if (json_is_integer(ct))
        usage->completion_tokens = (long)json_integer_value(ct);
}

/* A non-negative integer member of a valid JSON object text, -1 when it is
 * absent or not one (as json_is_integer would say: 5.0 is not). */
static long count_member(const char *obj, size_t len, const char *key)
{
    mr_json_span_t sp;
    char num[24], *end;

    if (mr_json_find_member(obj, len, key, &sp) != 0 || sp.value_len == 0 ||
        sp.value_len >= sizeof(num))
        return -1;
    memcpy(num, obj + sp.value_off, sp.value_len);
    num[sp.value_len] = '\0';
    errno = 0;
    long v = strtol(num, &end, 10);
    return *end == '\0' && errno == 0 && v >= 0 ? v : -1;
}

int mr__openai_translate(const mr_adapter_in_t *in, const char *body, size_t len, mr_buf_t *out,
                         mr_usage_t *usage, mr_error_t *err)
{
    mr_json_span_t sp;

    (void)in;
    (void)err;
    usage->prompt_tokens = usage->completion_tokens = -1;
    /* Only the usage counts are read, in place (the body was validated and
     * is forwarded as is): no parse, no allocation on the hot path. */
    if (mr_json_find_member(body, len, "usage", &sp) == 0) {
        usage->prompt_tokens = count_member(body + sp.value_off, sp.value_len, "prompt_tokens");
        usage->completion_tokens =
            count_member(body + sp.value_off, sp.value_len, "completion_tokens");
    }
    if (out && mr_buf_append(out, body, len) < 0) {
        mr_error_set(err, 502, "api_error", "upstream_too_large", NULL,
                     "upstream response too large");
        return -1;
    }
    return 0;
}

struct mr_stream_xlate {
    mr_buf_t ev;    /* an event still missing its terminating blank line */
    int drop_usage; /* the gateway asked for usage, the client did not */
    mr_usage_t usage;
};

mr_stream_xlate_t *mr__openai_stream_new(const mr_adapter_in_t *in)
{
    mr_stream_xlate_t *x = calloc(1, sizeof(*x));
    if (!x)
        return NULL;
    mr_buf_init(&x->ev, EVENT_MAX);
    x->drop_usage = !in->client_wants_usage;
    x->usage.prompt_tokens = x->usage.completion_tokens = -1;
    return x;
}

/* End of the first event in p[0, n): the offset just past its blank line,
 * or 0 when the event is not complete yet. */
static size_t event_end(const char *p, size_t n)
{
    for (size_t i = 0; i + 1 < n; i++) {
        if (p[i] != '\n')
            continue;
        if (p[i + 1] == '\n')
            return i + 2;
        if (p[i + 1] == '\r' && i + 2 < n && p[i + 2] == '\n')
            return i + 3;
    }
    return 0;
}

/* Whether the event carries a usage object ("usage": { ...), cheaply. */
static const char *usage_object(const char *p, size_t n)
{
    const char *u = memmem(p, n, "\"usage\"", 7);
    if (!u)
        return NULL;
    const char *q = u + 7, *end = p + n;
    while (q < end && (*q == ' ' || *q == ':'))
        q++;
    return q < end && *q == '{' ? u : NULL;
}

/* An event whose data is an error object: OpenAI-compatible servers report
 * failures inside a 200 stream this way. */
static int is_error_event(const char *p, size_t n)
{
    const char *data = memmem(p, n, "data:", 5);
    if (!data)
        return 0;
    const char *s = data + 5, *end = p + n;
    while (s < end && *s == ' ')
        s++;
    return (size_t)(end - s) >= 8 && memcmp(s, "{\"error\"", 8) == 0;
}

static int emit_event(mr_stream_xlate_t *x, const char *p, size_t n, mr_buf_t *out)
{
    if (is_error_event(p, n)) {
        /* forwarded as is, and the stream ends here (or, when nothing has
         * reached the client yet, the gateway fails over) */
        mr_buf_append_force(out, p, n);
        return -1;
    }
    if (usage_object(p, n)) {
        const char *data = memmem(p, n, "data:", 5);
        if (data) {
            const char *s = data + 5, *end = p + n;
            while (s < end && *s == ' ')
                s++;
            const char *eol = memchr(s, '\n', (size_t)(end - s));
            json_t *chunk = json_loadb(s, (size_t)((eol ? eol : end) - s), 0, NULL);
            const json_t *choices = json_object_get(chunk, "choices");
            usage_from(json_object_get(chunk, "usage"), &x->usage);
            int usage_only = json_is_array(choices) && json_array_size(choices) == 0;
            json_decref(chunk);
            if (x->drop_usage && usage_only)
                return 0;
        }
    }
    return mr_buf_append_force(out, p, n);
}

int mr__openai_stream_feed(mr_stream_xlate_t *x, const char *p, size_t n, mr_buf_t *out)
{
    size_t end;

    if (mr_buf_len(&x->ev) == 0) {
        /* common case: whole events in this chunk, no copy into ev */
        while (n && (end = event_end(p, n)) > 0) {
            if (emit_event(x, p, end, out) < 0)
                return -1;
            p += end;
            n -= end;
        }
        if (n && mr_buf_append(&x->ev, p, n) < 0)
            goto too_big;
        return 0;
    }
    if (mr_buf_append(&x->ev, p, n) < 0)
        goto too_big;
    while ((end = event_end(mr_buf_ptr(&x->ev), mr_buf_len(&x->ev))) > 0) {
        char tmp[256];
        /* copy out piecewise: ev is consumed as it is emitted */
        if (usage_object(mr_buf_ptr(&x->ev), end) || is_error_event(mr_buf_ptr(&x->ev), end)) {
            int rc = emit_event(x, mr_buf_ptr(&x->ev), end, out);
            x->ev.start += end;
            if (rc < 0)
                return -1;
        } else {
            size_t left = end;
            while (left) {
                size_t k = mr_buf_read(&x->ev, tmp, left < sizeof(tmp) ? left : sizeof(tmp));
                if (mr_buf_append_force(out, tmp, k) < 0)
                    return -1;
                left -= k;
            }
        }
        if (x->ev.start == x->ev.end)
            mr_buf_reset(&x->ev);
    }
    return 0;
too_big:;
    static const char e[] =
        "data: {\"error\":{\"message\":\"upstream sent an event larger than 1 MiB\","
        "\"type\":\"api_error\",\"param\":null,\"code\":\"upstream_stream_error\"}}\n\n";
    mr_buf_append_force(out, e, sizeof(e) - 1);
    return -1;
}

int mr__openai_stream_end(mr_stream_xlate_t *x, mr_buf_t *out)
{
    int rc = 0;
    if (mr_buf_len(&x->ev))
        rc = emit_event(x, mr_buf_ptr(&x->ev), mr_buf_len(&x->ev), out);
    mr_buf_reset(&x->ev);
    return rc;
}

void mr__openai_stream_usage(const mr_stream_xlate_t *x, mr_usage_t *usage)
{
    *usage = x->usage;
}

void mr__openai_stream_free(mr_stream_xlate_t *x)
{
    if (!x)
        return;
    mr_buf_free(&x->ev);
    free(x);
}

int mr__openai_retryable(long status, const char *body, size_t len)
{
    (void)body;
    (void)len;
    return mr_retryable_status(status); /* 408, 409, 429, 5xx */
}

void mr__openai_translate_error(const mr_provider_t *p, long status, const char *body, size_t len,
                                mr_buf_t *out)
{
    mr_json_span_t sp;
    mr_error_t e;
    char snippet[200];
    size_t n;

    if (len && mr_json_validate(body, len) == 0 &&
        mr_json_find_member(body, len, "error", &sp) == 0 &&
        mr_buf_append_force(out, body, len) == 0)
        return;
    n = len < sizeof(snippet) - 1 ? len : sizeof(snippet) - 1;
    for (size_t i = 0; i < n; i++)
        snippet[i] = (body[i] >= 0x20 && body[i] < 0x7f) ? body[i] : '?';
    snippet[n] = '\0';
    mr_error_set(&e, (int)status, NULL, "upstream_error", NULL, "provider %s answered HTTP %ld: %s",
                 p->name, status, snippet);
    char *b = mr_error_body(&e, NULL, NULL, &n);
    if (b)
        mr_buf_append_force(out, b, n);
    free(b);
}

const mr_adapter_t mr_adapter_openai = {
    .name = "openai",
    .build = openai_build,
    .translate = mr__openai_translate,
    .stream_new = mr__openai_stream_new,
    .stream_feed = mr__openai_stream_feed,
    .stream_end = mr__openai_stream_end,
    .stream_usage = mr__openai_stream_usage,
    .stream_free = mr__openai_stream_free,
    .retryable = mr__openai_retryable,
    .translate_error = mr__openai_translate_error,
    .passthrough = 1,
};
