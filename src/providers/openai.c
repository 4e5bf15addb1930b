/*
 * The OpenAI dialect: any OpenAI-compatible API. Bodies pass through byte
 * for byte apart from what the gateway must rewrite; streams pass through
 * event by event while usage is read on the way (and the usage chunk the
 * gateway asked for on the client's behalf is removed).
 */
#include "meridian/adapter.h"
#include "meridian/health.h"
#include "meridian/json_span.h"
#include "meridian/sse.h"
#include "openai.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EVENT_MAX (1024 * 1024) /* one SSE event; providers send a few KiB */

static const char *const endpoint_paths[MR_EP_COUNT] = {
    "/chat/completions", "/completions",           "/embeddings",
    "/messages",         "/messages/count_tokens", "/responses"};

static const char *const endpoint_names[MR_EP_COUNT] = {"chat",     "completions",  "embeddings",
                                                        "messages", "count_tokens", "responses"};

const char *mr_endpoint_path(mr_endpoint_t ep)
{
    return ep < MR_EP_COUNT ? endpoint_paths[ep] : "";
}

const char *mr_endpoint_name(mr_endpoint_t ep)
{
    return ep < MR_EP_COUNT ? endpoint_names[ep] : "none";
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

int mr__openai_build(const mr_adapter_in_t *in, mr_adapter_req_t *out, mr_error_t *err)
{
    const mr_provider_t *p = in->provider;
    size_t blen = strlen(p->base_url), plen = strlen(mr_endpoint_path(in->endpoint));
    struct curl_slist *h;

    memset(out, 0, sizeof(*out));
    if (mr__openai_request_body(in, out, err) < 0)
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

/* A count member of obj, -1 when absent or not a non-negative integer. */
static long count(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    return json_is_integer(v) && json_integer_value(v) >= 0 ? (long)json_integer_value(v) : -1;
}

/* The first of two count members that is there. */
static long count2(const json_t *obj, const char *a, const char *b)
{
    long v = count(obj, a);
    return v >= 0 ? v : count(obj, b);
}

/* The counts of an OpenAI usage object, with the extensions compatible
 * servers use for cache reads (DeepSeek's prompt_cache_hit_tokens) and
 * writes (OpenRouter's cache_write_tokens). Absent counts stay as they were. */
static void usage_from(const json_t *u, mr_usage_t *usage)
{
    const json_t *pd = json_object_get(u, "prompt_tokens_details");
    const json_t *cd = json_object_get(u, "completion_tokens_details");
    long v;

    if (!json_is_object(u))
        return;
    if ((v = count(u, "prompt_tokens")) >= 0)
        usage->prompt_tokens = v;
    if ((v = count(u, "completion_tokens")) >= 0)
        usage->completion_tokens = v;
    if ((v = count(pd, "cached_tokens")) >= 0 || (v = count(u, "prompt_cache_hit_tokens")) >= 0)
        usage->cached_tokens = v;
    if ((v = count2(pd, "cache_write_tokens", "cache_creation_tokens")) >= 0)
        usage->cache_write_tokens = v;
    if ((v = count(cd, "reasoning_tokens")) >= 0)
        usage->reasoning_tokens = v;
}

int mr__openai_translate(const mr_adapter_in_t *in, const char *body, size_t len, mr_buf_t *out,
                         mr_usage_t *usage, mr_error_t *err)
{
    (void)in;
    return mr_adapter_passthrough_answer(body, len, usage_from, out, usage, err);
}

struct mr_stream_xlate {
    mr_buf_t ev;    /* an event still missing its terminating blank line */
    int drop_usage; /* the gateway asked for usage, the client did not */
    int done;       /* data: [DONE] came: the stream is complete */
    int content;    /* an event carrying content came (the commit point) */
    const char *provider;
    mr_usage_t usage;
};

mr_stream_xlate_t *mr__openai_stream_new(const mr_adapter_in_t *in)
{
    mr_stream_xlate_t *x = calloc(1, sizeof(*x));
    if (!x)
        return NULL;
    mr_buf_init(&x->ev, EVENT_MAX);
    x->drop_usage = !in->client_wants_usage;
    x->usage = MR_USAGE_UNKNOWN;
    x->provider = in->provider ? in->provider->name : "?";
    return x;
}

/* The first "usage" in p[0, n), as memmem would find it: memchr for its
 * 'u' is several times cheaper on every event than memmem's set-up and
 * two-byte hashing (a chunk has few u's outside its text). */
static const char *usage_key(const char *p, size_t n)
{
    const char *q = p, *end = p + n;

    while ((q = memchr(q, 'u', (size_t)(end - q)))) {
        if (q > p && q[-1] == '"' && (size_t)(end - q) >= 6 && !memcmp(q, "usage\"", 6))
            return q - 1;
        q++;
    }
    return NULL;
}

/* Whether the event carries a usage object ("usage": { ...), cheaply. */
static const char *usage_object(const char *p, size_t n)
{
    const char *u = usage_key(p, n);
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
    /* nearly every event starts with its data line: no memmem set-up then */
    const char *data = n >= 5 && !memcmp(p, "data:", 5) ? p : memmem(p, n, "data:", 5);
    if (!data)
        return 0;
    const char *s = data + 5, *end = p + n;
    while (s < end && *s == ' ')
        s++;
    return (size_t)(end - s) >= 8 && memcmp(s, "{\"error\"", 8) == 0;
}

/* The value of the event's first data line, or NULL. */
static const char *data_of(const char *p, size_t n, size_t *len)
{
    const char *d = n >= 5 && !memcmp(p, "data:", 5) ? p : memmem(p, n, "\ndata:", 6);
    const char *s, *end = p + n, *eol;

    if (!d)
        return NULL;
    s = d + (d == p ? 5 : 6);
    if (s < end && *s == ' ')
        s++;
    eol = memchr(s, '\n', (size_t)(end - s));
    *len = (size_t)((eol ? eol : end) - s);
    if (*len && s[*len - 1] == '\r')
        (*len)--;
    return s;
}

/* A JSON text's value at v[0, n) is a non-empty string or array. */
static int some_value(const char *v, size_t n)
{
    if (n > 2 && v[0] == '"')
        return 1;
    if (n < 2 || v[0] != '[')
        return 0;
    for (size_t i = 1; i < n; i++)
        if (v[i] != ' ' && v[i] != '\t' && v[i] != '\n' && v[i] != '\r')
            return v[i] != ']';
    return 0;
}

/* Member `key` of the object o[0, n) is a non-empty string or array. */
static int has_some(const char *o, size_t n, const char *key)
{
    mr_json_span_t sp;

    return mr_json_find_member(o, n, key, &sp) == 0 && some_value(o + sp.value_off, sp.value_len);
}

/* One choice carries content: text, reasoning, a refusal, a tool call
 * (chat) or text (legacy completions). */
static int choice_has_content(const char *c, size_t n)
{
    static const char *const kinds[] = {"content", "reasoning_content", "reasoning",
                                        "refusal", "tool_calls",        "reasoning_details"};
    mr_json_span_t sp;

    if (mr_json_find_member(c, n, "delta", &sp) == 0)
        for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++)
            if (has_some(c + sp.value_off, sp.value_len, kinds[k]))
                return 1;
    return has_some(c, n, "text");
}

/* Whether a chunk carries content, read in place: this runs on the first
 * events of every stream, where a parse tree cost ~40 allocations. A role-
 * only first chunk does not; data the gateway cannot read is not held back
 * either. */
static int chunk_has_content(const char *d, size_t len)
{
    mr_json_span_t sp;
    const char *p, *end;

    if (mr_json_validate(d, len) < 0)
        return 1;
    if (mr_json_find_member(d, len, "choices", &sp) < 0 || d[sp.value_off] != '[')
        return 0;
    p = d + sp.value_off + 1;
    end = d + sp.value_off + sp.value_len - 1; /* the closing ']' */
    while (p < end) {
        size_t n;
        if (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == ',') {
            p++;
            continue;
        }
        n = mr_json_value_len(p, (size_t)(end - p));
        if (!n)
            return 1;
        if (*p == '{' && choice_has_content(p, n))
            return 1;
        p += n;
    }
    return 0;
}

/* What the gateway learns from an event on its way: the end of the stream,
 * and until content came, whether this one carries some. */
static void inspect(mr_stream_xlate_t *x, const char *p, size_t n)
{
    size_t len;
    const char *d = data_of(p, n, &len);

    if (!d)
        return;
    if (len == 6 && !memcmp(d, "[DONE]", 6)) {
        x->done = 1;
        return;
    }
    if (!x->content)
        x->content = chunk_has_content(d, len);
}

static int emit_event(mr_stream_xlate_t *x, const char *p, size_t n, mr_buf_t *out)
{
    inspect(x, p, n);
    if (is_error_event(p, n)) {
        /* forwarded as is, and the stream ends here (or, when nothing has
         * reached the client yet, the gateway fails over) */
        mr_buf_append_force(out, p, n);
        return -1;
    }
    size_t len;
    const char *d;
    mr_json_span_t ch;
    if (usage_object(p, n) && (d = data_of(p, n, &len)) && mr_json_validate(d, len) == 0) {
        mr_adapter_usage_member(d, len, usage_from, &x->usage);
        if (x->drop_usage && mr_json_find_member(d, len, "choices", &ch) == 0 &&
            !some_value(d + ch.value_off, ch.value_len) && d[ch.value_off] == '[')
            return 0; /* the usage-only chunk the client did not ask for */
    }
    return mr_buf_append_force(out, p, n);
}

int mr__openai_stream_feed(mr_stream_xlate_t *x, const char *p, size_t n, mr_buf_t *out)
{
    size_t end;

    if (mr_buf_len(&x->ev) == 0) {
        /* common case: whole events in this chunk, no copy into ev */
        while (n && (end = mr_sse_event_end(p, n)) > 0) {
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
    while ((end = mr_sse_event_end(mr_buf_ptr(&x->ev), mr_buf_len(&x->ev))) > 0) {
        char tmp[256];
        /* copy out piecewise: ev is consumed as it is emitted */
        if (usage_object(mr_buf_ptr(&x->ev), end) || is_error_event(mr_buf_ptr(&x->ev), end)) {
            int rc = emit_event(x, mr_buf_ptr(&x->ev), end, out);
            x->ev.start += end;
            if (rc < 0)
                return -1;
        } else {
            size_t left = end;
            inspect(x, mr_buf_ptr(&x->ev), end);
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
too_big:
    mr_adapter_stream_error(out, "provider %s sent an event larger than %d bytes", x->provider,
                            EVENT_MAX);
    return -1;
}

int mr__openai_stream_end(mr_stream_xlate_t *x, mr_buf_t *out)
{
    int rc = 0;
    if (mr_buf_len(&x->ev))
        rc = emit_event(x, mr_buf_ptr(&x->ev), mr_buf_len(&x->ev), out);
    mr_buf_reset(&x->ev);
    if (rc == 0 && !x->done) {
        /* HTTP cannot tell an early close of a Connection: close response
         * from its end: without [DONE] the answer may be cut anywhere */
        mr_adapter_stream_error(out, "provider %s ended the stream before data: [DONE]",
                                x->provider);
        return MR_ADAPTER_TRUNCATED;
    }
    return rc;
}

int mr__openai_stream_content(const mr_stream_xlate_t *x)
{
    return x->content;
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
    .build = mr__openai_build,
    .translate = mr__openai_translate,
    .stream_new = mr__openai_stream_new,
    .stream_feed = mr__openai_stream_feed,
    .stream_end = mr__openai_stream_end,
    .stream_usage = mr__openai_stream_usage,
    .stream_content = mr__openai_stream_content,
    .stream_free = mr__openai_stream_free,
    .retryable = mr__openai_retryable,
    .translate_error = mr__openai_translate_error,
    .passthrough = 1,
};
