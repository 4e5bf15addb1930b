#include "xlate.h"

#include "meridian/chat_parse.h"
#include "meridian/glob.h"
#include "meridian/inbound.h"
#include "meridian/sse.h"

#include <ctype.h>
#include <math.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

long long mr__xlate_created(const mr_adapter_in_t *in)
{
    return in && in->created > 0 ? in->created : (long long)time(NULL);
}

uint64_t mr__fnv64(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

int mr__xlate_oom(mr_error_t *err)
{
    mr_error_set(err, 500, "api_error", "internal_error", NULL, "out of memory");
    return -1;
}

int mr__xlate_get_int(const json_t *obj, const char *key, long long lo, long long hi,
                      long long *out, mr_error_t *err)
{
    const json_t *v = json_object_get(obj, key);
    double d;

    if (!v || json_is_null(v))
        return 0;
    if (json_is_integer(v))
        d = (double)json_integer_value(v);
    else if (json_is_real(v) && json_real_value(v) > -9e15 && json_real_value(v) < 9e15 &&
             (double)(long long)json_real_value(v) == json_real_value(v))
        d = json_real_value(v); /* 1e2 */
    else
        return mr_error_bad(err, "invalid_type", NULL, "%s must be an integer", key);
    if (!(d >= (double)lo && d <= (double)hi))
        return mr_error_bad(err, "invalid_value", NULL, "%s must be between %lld and %lld", key, lo,
                            hi);
    *out = (long long)d;
    return 1;
}

void mr__xlate_usage(const mr_conv_usage_t *u, mr_usage_t *out)
{
    *out = (mr_usage_t){u->prompt, u->completion, u->cached, u->cache_write, u->reasoning};
}

void mr__xlate_lower(const char *s, char *dst, size_t cap)
{
    size_t i = 0;
    for (; s && s[i] && i + 1 < cap; i++)
        dst[i] = (s[i] >= 'A' && s[i] <= 'Z') ? (char)(s[i] + 32) : s[i];
    dst[i] = '\0';
}

int mr__xlate_has_header(const mr_adapter_in_t *in, const char *name)
{
    size_t n = strlen(name);

    for (const char *const *h = in->extra_headers; h && *h; h++)
        if (strncasecmp(*h, name, n) == 0 && (*h)[n] == ':')
            return 1;
    return 0;
}

char *mr__xlate_url(const char *base, const char *fmt, ...)
{
    va_list ap;
    int n;
    size_t blen = strlen(base);
    char *url;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    url = malloc(blen + (size_t)n + 1);
    if (!url)
        return NULL;
    memcpy(url, base, blen);
    va_start(ap, fmt);
    vsnprintf(url + blen, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return url;
}

int mr__xlate_path_escape(const char *s, int keep_slash, char *dst, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;

    /* A "." or ".." segment would be resolved away by curl (RFC 3986 dot
     * segments), sending the request, key included, to another path of the
     * provider's host: refused. */
    for (const char *seg = s;;) {
        size_t n = keep_slash ? strcspn(seg, "/") : strlen(seg);
        if ((n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.'))
            return -1;
        if (!seg[n])
            break;
        seg += n + 1;
    }
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        int plain = isalnum(*p) || *p == '.' || *p == '_' || *p == '~' || *p == '-' ||
                    (keep_slash && *p == '/');
        if (o + (plain ? 1 : 3) >= cap)
            return -1;
        if (plain) {
            dst[o++] = (char)*p;
        } else {
            dst[o++] = '%';
            dst[o++] = hex[*p >> 4];
            dst[o++] = hex[*p & 15];
        }
    }
    if (o >= cap)
        return -1;
    dst[o] = '\0';
    return 0;
}

const char *mr__xlate_error_type(const char *t, long status)
{
    static const struct {
        const char *upstream, *openai;
    } map[] = {
        {"invalid_request_error", "invalid_request_error"},
        {"authentication_error", "authentication_error"},
        {"permission_error", "permission_error"},
        {"not_found_error", "invalid_request_error"},
        {"request_too_large", "invalid_request_error"},
        {"rate_limit_error", "rate_limit_error"},
        {"api_error", "api_error"},
        {"overloaded_error", "service_unavailable_error"},
        {"INVALID_ARGUMENT", "invalid_request_error"},
        {"FAILED_PRECONDITION", "invalid_request_error"},
        {"NOT_FOUND", "invalid_request_error"},
        {"UNAUTHENTICATED", "authentication_error"},
        {"PERMISSION_DENIED", "permission_error"},
        {"RESOURCE_EXHAUSTED", "rate_limit_error"},
        {"INTERNAL", "api_error"},
        {"UNAVAILABLE", "service_unavailable_error"},
        {"DEADLINE_EXCEEDED", "api_error"},
    };
    for (size_t i = 0; t && i < sizeof(map) / sizeof(map[0]); i++)
        if (strcmp(map[i].upstream, t) == 0)
            return map[i].openai;
    return mr_error_type_for_status(status > 0 ? (int)status : 502);
}

void mr__xlate_error_body(mr_buf_t *out, const char *message, const char *type, const char *code)
{
    json_t *j = json_pack("{s:{s:s, s:s, s:n, s:s?}}", "error", "message", message, "type", type,
                          "param", "code", code);
    char *s = j ? json_dumps(j, MR_CONV_JSON_FLAGS) : NULL;

    json_decref(j);
    if (s)
        mr_buf_append_force(out, s, strlen(s));
    free(s);
}

void mr__xlate_error_fallback(const mr_provider_t *p, long status, const char *body, size_t len,
                              char *dst, size_t cap)
{
    char snippet[200];
    size_t n = len < sizeof(snippet) - 1 ? len : sizeof(snippet) - 1;

    for (size_t i = 0; i < n; i++)
        snippet[i] = (body[i] >= 0x20 && body[i] < 0x7f) ? body[i] : '?';
    snippet[n] = '\0';
    snprintf(dst, cap, "provider %s answered HTTP %ld%s%s", p ? p->name : "?", status,
             n ? ": " : "", snippet);
}

/* ------------------------------------------------------------ requests */

json_t *mr__xlate_str(mr_conv_str_t s)
{
    return json_stringn(s.p ? s.p : "", s.n);
}

int mr__xlate_system_text(const mr_conv_req_t *conv, mr_buf_t *out)
{
    for (size_t i = 0; i < conv->n_turns; i++) {
        const mr_conv_turn_t *t = &conv->turns[i];
        size_t n = 0;
        if (t->role != MR_CONV_ROLE_SYSTEM && t->role != MR_CONV_ROLE_DEVELOPER)
            continue;
        for (size_t k = 0; k < t->n_parts; k++)
            n += t->parts[k].u.text.n; /* text-only: checked */
        if (n == 0)
            continue;
        if ((mr_buf_len(out) && mr_buf_append(out, "\n\n", 2) < 0) ||
            mr_conv_join_text(t->parts, t->n_parts, out) < 0)
            return -1;
    }
    return 0;
}

/* Appends items as a `role` turn, merged into the previous turn when it has
 * the same role; takes items. */
static int push_turn(json_t *turns, const char *role, const char *key, json_t *items)
{
    json_t *last = json_array_get(turns, json_array_size(turns) - 1);

    if (json_array_size(items) == 0) {
        json_decref(items);
        return 0;
    }
    if (last && strcmp(json_string_value(json_object_get(last, "role")), role) == 0) {
        int rc = json_array_extend(json_object_get(last, key), items);
        json_decref(items);
        return rc;
    }
    return json_array_append_new(turns, json_pack("{s:s, s:o}", "role", role, key, items));
}

int mr__xlate_origin_ok(mr_xlate_emit_t *e, const mr_conv_origin_t *o)
{
    if (mr_conv_origin_ok(o, e->kind, e->in->model))
        return 1;
    e->dropped++;
    return 0;
}

json_t *mr__xlate_turns(mr_xlate_emit_t *e, const mr_conv_req_t *conv, const mr_xlate_turns_t *d)
{
    json_t *turns = json_array();
    int rc = turns ? 0 : -1;

    for (size_t i = 0; rc == 0 && i < conv->n_turns; i++) {
        const mr_conv_turn_t *t = &conv->turns[i];
        const char *role = t->role == MR_CONV_ROLE_ASSISTANT ? d->assistant : "user";
        json_t *items = json_array();
        if (!items)
            rc = -1;
        else if (t->role == MR_CONV_ROLE_USER)
            rc = d->user(e, t, items);
        else if (t->role == MR_CONV_ROLE_ASSISTANT)
            rc = d->assistant_items(e, t, items);
        else if (t->role == MR_CONV_ROLE_TOOL)
            rc = d->result(e, t, items);
        /* system turns: joined below; other roles were refused by the check */
        if (rc == 0)
            rc = push_turn(turns, role, d->key, items);
        else
            json_decref(items);
    }
    if (rc < 0) {
        json_decref(turns);
        return NULL;
    }
    return turns;
}

json_t *mr__xlate_tools(const mr_conv_req_t *conv, const char *schema_key,
                        json_t *(*schema)(const json_t *parameters))
{
    json_t *out = json_array();

    for (size_t i = 0; out && i < conv->n_tools; i++) {
        const mr_conv_tool_t *t = &conv->tools[i];
        json_t *tool = json_pack("{s:o}", "name", mr__xlate_str(t->name)), *s;
        if (tool && t->description.p)
            json_object_set_new(tool, "description", mr__xlate_str(t->description));
        if (tool && (s = schema(t->parameters)))
            json_object_set_new(tool, schema_key, s);
        if (json_array_append_new(out, tool) < 0) {
            json_decref(out);
            out = NULL;
        }
    }
    return out;
}

/* The client dialect of an adapter's input (OpenAI chat when unset). */
static const mr_inbound_t *client_of(const mr_adapter_in_t *in)
{
    return in && in->client ? in->client : &mr_inbound_chat;
}

int mr__xlate_body(const mr_conv_caps_t *caps, mr_xlate_emit_fn emit, const char *const *leaves_out,
                   const mr_adapter_in_t *in, mr_adapter_req_t *out, mr_error_t *err)
{
    mr_conv_req_t *own = NULL;
    const mr_conv_req_t *conv = in->conv;
    mr_xlate_emit_t e = {.in = in, .kind = caps->name};
    json_t *root = NULL;
    int rc = -1;

    out->body = NULL;
    if (!conv && client_of(in)->parse(in->json, &own, err) < 0)
        return -1;
    if (!conv)
        conv = own;
    if (mr_conv_check(conv, caps, err) < 0 || emit(&e, conv, &root, err) < 0)
        goto done;
    if (!(out->body = json_dumps(root, MR_CONV_JSON_FLAGS))) {
        mr__xlate_oom(err);
        goto done;
    }
    out->body_len = strlen(out->body);
    out->signatures_dropped = e.dropped;
    if (!own) /* the request's model outlives the attempt's record */
        mr__xlate_record_dropped(conv, leaves_out, out);
    mr__xlate_flags(in, NULL, 0, out); /* a translated target takes none */
    rc = 0;
done:
    json_decref(root);
    mr_conv_req_free(own);
    return rc;
}

/* Appends `flag` (n bytes) to a comma-separated list of cap bytes; false
 * when it does not fit. */
static bool list_add(char *list, size_t cap, const char *flag, size_t n)
{
    size_t len = strlen(list), sep = len > 0;

    if (len + sep + n + 1 > cap)
        return false;
    if (sep)
        list[len++] = ',';
    memcpy(list + len, flag, n);
    list[len + n] = '\0';
    return true;
}

/* A flag the provider's allow-list names; only plain names ever go into
 * the upstream's header. */
static bool flag_accepted(const mr_provider_t *p, const char *flag)
{
    for (const char *c = flag; *c; c++)
        if (!isalnum((unsigned char)*c) && *c != '-' && *c != '_' && *c != '.')
            return false;
    for (size_t i = 0; p && i < p->n_anthropic_beta; i++)
        if (mr_glob_match(p->anthropic_beta[i], flag))
            return true;
    return false;
}

void mr__xlate_flags(const mr_adapter_in_t *in, char *kept, size_t cap, mr_adapter_req_t *out)
{
    const char *name = in->client ? in->client->flags_header : NULL;
    const char *v =
        name && in->client_header ? in->client_header(in->client_header_ud, name) : NULL;
    char flag[MR_XLATE_FLAG_MAX + 1];

    if (kept)
        kept[0] = '\0';
    out->betas_dropped[0] = '\0';
    while (v && *v) {
        size_t n, t;
        bool cut;
        v += strspn(v, " \t,");
        n = t = strcspn(v, ",");
        while (t && (v[t - 1] == ' ' || v[t - 1] == '\t'))
            t--;
        cut = t > MR_XLATE_FLAG_MAX;
        if (cut)
            t = MR_XLATE_FLAG_MAX; /* recorded cut, never sent */
        memcpy(flag, v, t);
        flag[t] = '\0';
        v += n;
        if (t == 0)
            continue;
        if (cut || !kept || !flag_accepted(in->provider, flag) || !list_add(kept, cap, flag, t))
            list_add(out->betas_dropped, sizeof(out->betas_dropped), flag, t);
    }
}

/* Whether a turn, part or tool of the request carries a cache marker. */
static int any_cache_marker(const mr_conv_req_t *r)
{
    int found = r->cache.type.p != NULL;

    for (size_t i = 0; !found && i < r->n_turns; i++)
        for (size_t k = 0; !found && k < r->turns[i].n_parts; k++)
            found = r->turns[i].parts[k].cache.type.p != NULL;
    for (size_t i = 0; !found && i < r->n_tools; i++)
        found = r->tools[i].cache.type.p != NULL;
    return found;
}

/* Whether the request uses the model member `name`. */
static int uses(const mr_conv_req_t *r, const char *name)
{
    const mr_conv_num_t *nums[] = {&r->presence_penalty, &r->frequency_penalty, &r->seed,
                                   &r->top_logprobs};
    for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++)
        if (!strcmp(name, nums[i]->param ? nums[i]->param : ""))
            return nums[i]->state != MR_CONV_UNSET;
    if (!strcmp(name, "metadata"))
        return r->metadata && !json_is_null(r->metadata);
    if (!strcmp(name, "user"))
        return r->user.p != NULL;
    if (!strcmp(name, "parallel_tool_calls"))
        return r->parallel_tool_calls >= 0;
    if (!strcmp(name, "prompt_cache_key"))
        return r->prompt_cache_key.p != NULL;
    if (!strcmp(name, "cached_content"))
        return r->cached_content.p != NULL;
    if (!strcmp(name, "top_k"))
        return r->top_k.state != MR_CONV_UNSET;
    if (!strcmp(name, "thinking"))
        return r->thinking_type.p != NULL;
    if (!strcmp(name, "cache_control"))
        return any_cache_marker(r);
    return 0;
}

void mr__xlate_record_dropped(const mr_conv_req_t *conv, const char *const *leaves_out,
                              mr_adapter_req_t *out)
{
    for (size_t i = 0; i < conv->n_dropped; i++)
        if (!mr_conv_eq(conv->dropped[i], "provider") && !mr_conv_eq(conv->dropped[i], "models"))
            mr_adapter_drop(out, conv->dropped[i].p);
    for (; leaves_out && *leaves_out; leaves_out++)
        if (uses(conv, *leaves_out))
            mr_adapter_drop(out, *leaves_out);
}

const char *mr__xlate_unsupported(const mr_conv_caps_t *caps, const mr_conv_req_t *conv,
                                  const char *const *ignored)
{
    mr_error_t err;

    if (mr_conv_check(conv, caps, &err) < 0)
        return err.param ? err.param : conv->turns_param;
    for (size_t i = 0; i < conv->n_dropped; i++)
        if (!mr_conv_eq(conv->dropped[i], "provider") && !mr_conv_eq(conv->dropped[i], "models"))
            return conv->dropped[i].p; /* the gateway's own members are no parameters */
    for (; *ignored; ignored++)
        if (uses(conv, *ignored))
            return *ignored;
    return NULL;
}

/* ------------------------------------------------------------ answers */

int mr__xlate_translate(const mr_xlate_parser_t *ps, const mr_adapter_in_t *in, const char *body,
                        size_t len, mr_buf_t *out, mr_usage_t *usage, mr_error_t *err)
{
    json_t *root = json_loadb(body, len, JSON_ALLOW_NUL, NULL);
    mr_conv_answer_t a;
    int rc = -1;

    *usage = MR_USAGE_UNKNOWN;
    if (mr_conv_answer_init(&a, root) < 0) {
        json_decref(root);
        return mr__xlate_oom(err);
    }
    json_decref(root); /* the answer holds its own reference */
    if (ps->answer(in, root, body, len, &a, err) < 0) {
        if (mr_conv_arena_over(a._arena))
            mr_error_set(err, 502, "api_error", "upstream_too_large", NULL,
                         "provider %s: the answer needs more than %zu MiB to translate",
                         in->provider->name, MR_CONV_MAX_BYTES >> 20);
        goto done;
    }
    mr__xlate_usage(&a.usage, usage);
    if (out && client_of(in)->write_answer(&a, mr__xlate_created(in), in->client_ctx, out, err) < 0)
        goto done;
    rc = 0;
done:
    mr_conv_answer_free(&a);
    return rc;
}

/* ------------------------------------------------------------ streams */

struct mr_stream_xlate {
    const mr_xlate_parser_t *ps;
    const mr_inbound_t *client;
    mr_sse_t sse;
    mr_conv_sink_t sink;
    void *writer; /* the client dialect's, after the parser's state */
    const char *provider;
    void *client_ctx;
    int failed, ended;
    max_align_t state[]; /* the dialect parser's, then the writer's */
};

int mr__xlate_send(const mr_conv_sink_t *sink, mr_conv_event_t ev)
{
    return sink->event(sink->ctx, &ev);
}

static size_t aligned(size_t n)
{
    return (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
}

mr_stream_xlate_t *mr__xlate_stream_new(const mr_xlate_parser_t *ps, const mr_adapter_in_t *in)
{
    const mr_inbound_t *client = client_of(in);
    mr_stream_xlate_t *x =
        calloc(1, sizeof(*x) + aligned(ps->stream_size) + aligned(client->writer_size));
    mr_inbound_stream_opts_t o = {
        .created = mr__xlate_created(in),
        .wants_usage = in->client_wants_usage,
        /* message_start's input before the upstream reports it */
        .input_estimate = in->body_len ? (long)((in->body_len + 3) / 4) : -1,
        .client_ctx = in->client_ctx,
    };

    if (!x)
        return NULL;
    x->ps = ps;
    x->client = client;
    x->writer = (char *)x->state + aligned(ps->stream_size);
    mr_sse_init(&x->sse, MR_XLATE_LINE_MAX, MR_XLATE_EVENT_MAX);
    if (in->provider) {
        o.origin_kind = mr_provider_kind_name(in->provider->kind);
        o.origin_model = in->model;
    }
    client->writer_init(x->writer, &o);
    x->sink = (mr_conv_sink_t){client->writer_event, x->writer};
    x->provider = in->provider ? in->provider->name : "?";
    x->client_ctx = in->client_ctx;
    ps->stream_init(x->state, in);
    return x;
}

/* One upstream event through the parser into the writer; the writer may
 * end the stream itself (an event sequence its dialect cannot carry). */
static int on_sse(void *ctx, const char *event, const char *data, size_t len)
{
    mr_stream_xlate_t *x = ctx;
    int rc = x->ps->stream_event(x->state, event, data, len, &x->sink);

    if (rc == 0 && x->client->writer_flush(x->writer) < 0)
        rc = -1;
    if (rc == 0 && x->client->writer_failed(x->writer))
        rc = MR_XLATE_UPSTREAM_ERROR;
    return rc;
}

/* Turns a failure into the one error event the client sees. */
static int fail(mr_stream_xlate_t *x, int rc, mr_buf_t *out)
{
    char msg[MR_ERROR_MESSAGE_MAX];

    if (x->failed)
        return -1;
    x->failed = 1;
    if (rc == MR_XLATE_UPSTREAM_ERROR)
        return -1; /* the parser (or the writer) sent it */
    if (rc == MR_SSE_TOO_LONG)
        snprintf(msg, sizeof(msg), "provider %s sent an event larger than %d bytes", x->provider,
                 MR_XLATE_EVENT_MAX);
    else if (rc == MR_XLATE_TRUNCATED)
        snprintf(msg, sizeof(msg), "provider %s %s", x->provider, x->ps->truncated);
    else if (rc == MR_XLATE_MALFORMED)
        snprintf(msg, sizeof(msg), "provider %s sent %s", x->provider, x->ps->malformed);
    else
        snprintf(msg, sizeof(msg), "provider %s: out of memory translating the stream",
                 x->provider);
    if (x->client->stream_fail && x->client_ctx)
        x->client->stream_fail(x->client_ctx, out, msg);
    else
        x->client->stream_error(out, "api_error", "upstream_stream_error", msg);
    return rc == MR_XLATE_TRUNCATED ? MR_ADAPTER_TRUNCATED : -1;
}

int mr__xlate_stream_feed(mr_stream_xlate_t *x, const char *p, size_t n, mr_buf_t *out)
{
    int rc;

    if (x->failed || x->ended)
        return x->failed ? -1 : 0;
    x->client->writer_set_out(x->writer, out);
    rc = mr_sse_feed(&x->sse, p, n, on_sse, x);
    x->client->writer_set_out(x->writer, NULL);
    return rc ? fail(x, rc, out) : 0;
}

int mr__xlate_stream_end(mr_stream_xlate_t *x, mr_buf_t *out)
{
    int rc;

    if (x->failed || x->ended)
        return x->failed ? -1 : 0;
    x->client->writer_set_out(x->writer, out);
    rc = mr_sse_finish(&x->sse, on_sse, x);
    if (rc == 0)
        rc = x->ps->stream_end(x->state, &x->sink);
    x->client->writer_set_out(x->writer, NULL);
    x->ended = rc == 0;
    return rc ? fail(x, rc, out) : 0;
}

void mr__xlate_stream_usage(const mr_stream_xlate_t *x, mr_usage_t *usage)
{
    mr_conv_usage_t u;

    x->client->writer_usage(x->writer, &u);
    mr__xlate_usage(&u, usage);
}

int mr__xlate_stream_content(const mr_stream_xlate_t *x)
{
    return x->client->writer_content(x->writer);
}

void mr__xlate_stream_free(mr_stream_xlate_t *x)
{
    if (!x)
        return;
    mr_sse_free(&x->sse);
    x->client->writer_free(x->writer);
    free(x);
}
