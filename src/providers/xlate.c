#include "xlate.h"

#include <ctype.h>
#include <math.h>
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

void mr__xlate_safe_id(const char *s, size_t len, const char *fallback_prefix, char *dst,
                       size_t cap)
{
    int ok = s && len > 0 && len <= MR_XLATE_ID_MAX && len < cap;

    for (size_t i = 0; ok && i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        ok = isalnum(c) || c == '_' || c == '-' || c == '.' || c == ':';
    }
    if (ok) {
        memcpy(dst, s, len);
        dst[len] = '\0';
        return;
    }
    snprintf(dst, cap, "%s%016llx", fallback_prefix,
             (unsigned long long)mr__fnv64(MR_FNV64_INIT, s ? s : "", s ? len : 0));
}

void mr__xlate_model(const json_t *upstream, const char *fallback, char *dst, size_t cap)
{
    const char *s = json_string_value(upstream);
    size_t n = json_string_length(upstream);

    if (!s || n == 0 || n > MR_XLATE_ID_MAX || strlen(s) != n) {
        s = fallback ? fallback : "";
        n = strlen(s);
        if (n > MR_XLATE_ID_MAX) {
            n = MR_XLATE_ID_MAX;
            while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
                n--; /* s[n] continues a character: cut before it starts */
        }
    }
    if (n >= cap)
        n = 0;
    memcpy(dst, s, n);
    dst[n] = '\0';
}

int mr__xlate_append_json(mr_buf_t *out, json_t *j)
{
    char *s;
    int rc;

    if (!j)
        return -1;
    s = json_dumps(j, MR_XLATE_DUMP_FLAGS);
    json_decref(j);
    if (!s)
        return -1;
    rc = mr_buf_append(out, s, strlen(s));
    free(s);
    return rc;
}

int mr__xlate_emit(mr_buf_t *out, json_t *j)
{
    char *s;
    size_t n;
    int rc;

    if (!j)
        return -1;
    s = json_dumps(j, MR_XLATE_DUMP_FLAGS);
    json_decref(j);
    if (!s)
        return -1;
    n = strlen(s);
    rc = mr_buf_append_force(out, "data: ", 6);
    rc = rc ? rc : mr_buf_append_force(out, s, n);
    rc = rc ? rc : mr_buf_append_force(out, "\n\n", 2);
    free(s);
    return rc;
}

int mr__xlate_emit_done(mr_buf_t *out)
{
    static const char done[] = "data: [DONE]\n\n";
    return mr_buf_append_force(out, done, sizeof(done) - 1);
}

void mr__xlate_emit_error(mr_buf_t *out, const char *type, const char *code, const char *fmt, ...)
{
    mr_error_t e;
    va_list ap;
    size_t len;
    char *body;

    e.status = 502;
    e.type = type ? type : "api_error";
    e.code = code;
    e.param = NULL;
    va_start(ap, fmt);
    vsnprintf(e.message, sizeof(e.message), fmt, ap);
    va_end(ap);
    body = mr_error_body(&e, NULL, NULL, &len);
    if (!body)
        return;
    mr_buf_append_force(out, "data: ", 6);
    mr_buf_append_force(out, body, len);
    mr_buf_append_force(out, "\n\n", 2);
    free(body);
}

json_t *mr__xlate_usage(long prompt, long completion, long cached, long reasoning)
{
    long p = prompt > 0 ? prompt : 0, c = completion > 0 ? completion : 0;
    json_t *u = json_pack("{s:I, s:I, s:I}", "prompt_tokens", (json_int_t)p, "completion_tokens",
                          (json_int_t)c, "total_tokens", (json_int_t)(p + c));
    if (u && cached > 0)
        json_object_set_new(u, "prompt_tokens_details",
                            json_pack("{s:I}", "cached_tokens", (json_int_t)cached));
    if (u && reasoning > 0)
        json_object_set_new(u, "completion_tokens_details",
                            json_pack("{s:I}", "reasoning_tokens", (json_int_t)reasoning));
    return u;
}

json_t *mr__xlate_chunk(const char *id, long long created, const char *model)
{
    return json_pack("{s:s, s:s, s:I, s:s}", "id", id, "object", "chat.completion.chunk", "created",
                     (json_int_t)created, "model", model);
}

json_t *mr__xlate_choice_delta(int index, json_t *delta, const char *finish)
{
    return json_pack("{s:i, s:o, s:n, s:o}", "index", index, "delta", delta ? delta : json_object(),
                     "logprobs", "finish_reason", finish ? json_string(finish) : json_null());
}

int mr__xlate_data_url(const char *url, char *mime, size_t cap, const char **data)
{
    const char *comma, *semi;
    size_t mlen;

    if (strncasecmp(url, "data:", 5) != 0)
        return -1;
    comma = strchr(url + 5, ',');
    if (!comma)
        return -1;
    /* the media type ends at the first ';' (parameters such as charset are
     * dropped); ";base64" must be the last parameter */
    if (comma - url < 12 || strncasecmp(comma - 7, ";base64", 7) != 0)
        return -1;
    semi = memchr(url + 5, ';', (size_t)(comma - (url + 5)));
    mlen = (size_t)(semi - (url + 5));
    if (mlen == 0 || mlen >= cap)
        return -1;
    memcpy(mime, url + 5, mlen);
    mime[mlen] = '\0';
    for (size_t i = 0; i < mlen; i++) {
        unsigned char c = (unsigned char)mime[i];
        if (!(isalnum(c) || c == '/' || c == '+' || c == '-' || c == '.'))
            return -1;
        mime[i] = (char)tolower(c);
    }
    *data = comma + 1;
    return 0;
}

int mr__xlate_bad(mr_error_t *err, const char *code, const char *param, const char *fmt, ...)
{
    va_list ap;

    err->status = 400;
    err->type = "invalid_request_error";
    err->code = code;
    err->param = param;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
    return -1;
}

int mr__xlate_oom(mr_error_t *err)
{
    mr_error_set(err, 500, "api_error", "internal_error", NULL, "out of memory");
    return -1;
}

int mr__xlate_get_number(const json_t *obj, const char *key, double *out, mr_error_t *err)
{
    const json_t *v = json_object_get(obj, key);

    if (!v || json_is_null(v))
        return 0;
    if (!json_is_number(v) || !isfinite(json_number_value(v)))
        return mr__xlate_bad(err, "invalid_type", NULL, "%s must be a number", key);
    *out = json_number_value(v);
    return 1;
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
        return mr__xlate_bad(err, "invalid_type", NULL, "%s must be an integer", key);
    if (!(d >= (double)lo && d <= (double)hi))
        return mr__xlate_bad(err, "invalid_value", NULL, "%s must be between %lld and %lld", key,
                             lo, hi);
    *out = (long long)d;
    return 1;
}

int mr__xlate_get_stop(const json_t *obj, json_t **out, mr_error_t *err)
{
    const json_t *v = json_object_get(obj, "stop");
    size_t i;
    const json_t *s;

    *out = NULL;
    if (!v || json_is_null(v))
        return 0;
    if (json_is_string(v)) {
        *out = json_pack("[O]", v);
        return *out ? 1 : mr__xlate_oom(err);
    }
    if (!json_is_array(v))
        return mr__xlate_bad(err, "invalid_type", "stop",
                             "stop must be a string or an array of strings");
    json_array_foreach(v, i, s)
    {
        if (!json_is_string(s))
            return mr__xlate_bad(err, "invalid_type", "stop",
                                 "stop must be a string or an array of strings");
    }
    if (json_array_size(v) == 0)
        return 0;
    *out = json_deep_copy(v);
    return *out ? 1 : mr__xlate_oom(err);
}

int mr__xlate_content_text(const json_t *content, const char *where, json_t **out, mr_error_t *err)
{
    mr_buf_t b;
    size_t i;
    const json_t *part;

    *out = NULL;
    if (!content || json_is_null(content)) {
        *out = json_string("");
        return *out ? 0 : mr__xlate_oom(err);
    }
    if (json_is_string(content)) {
        *out = json_stringn(json_string_value(content), json_string_length(content));
        return *out ? 0 : mr__xlate_oom(err);
    }
    if (!json_is_array(content))
        return mr__xlate_bad(err, "invalid_type", "messages",
                             "%s.content must be a string or an array of parts", where);
    mr_buf_init(&b, (size_t)-1);
    json_array_foreach(content, i, part)
    {
        const char *type = json_string_value(json_object_get(part, "type"));
        const json_t *t = NULL;
        if (type && strcmp(type, "text") == 0)
            t = json_object_get(part, "text");
        else if (type && strcmp(type, "refusal") == 0)
            t = json_object_get(part, "refusal");
        if (!json_is_string(t)) {
            mr_buf_free(&b);
            return mr__xlate_bad(err, "unsupported_content", "messages",
                                 "%s.content[%zu]: only text parts are allowed here", where, i);
        }
        if (mr_buf_append(&b, json_string_value(t), json_string_length(t)) < 0) {
            mr_buf_free(&b);
            return mr__xlate_oom(err);
        }
    }
    *out = json_stringn(mr_buf_ptr(&b), mr_buf_len(&b));
    mr_buf_free(&b);
    return *out ? 0 : mr__xlate_oom(err);
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
    char *s = j ? json_dumps(j, MR_XLATE_DUMP_FLAGS) : NULL;

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
