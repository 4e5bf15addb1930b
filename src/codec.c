#include "meridian/codec.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ------------------------------------------------------------ building */

int mr_codec_oom(mr_codec_build_t *b)
{
    if (mr_conv_arena_over(b->r->_arena))
        return mr_error_bad(b->err, "conversation_too_large", NULL,
                            "the conversation needs more than %zu MiB of gateway memory to "
                            "translate",
                            MR_CONV_MAX_BYTES >> 20);
    mr_error_set(b->err, 500, NULL, "internal_error", NULL, "out of memory");
    return -1;
}

mr_conv_part_t *mr_codec_parts(mr_codec_build_t *b, size_t n)
{
    mr_conv_part_t *p;

    if (n > MR_CONV_MAX_PARTS - b->n_parts) {
        mr_error_bad(b->err, "conversation_too_large", b->r->turns_param,
                     "more than %d content parts and tool calls in all: too many to translate",
                     MR_CONV_MAX_PARTS);
        return NULL;
    }
    if (n == 0)
        n = 1;
    if (!(p = mr_conv_alloc(b->r->_arena, n, sizeof(*p))))
        mr_codec_oom(b);
    b->n_parts += n;
    return p;
}

int mr_codec_turns(mr_codec_build_t *b, size_t n, const char *param)
{
    mr_conv_req_t *r = b->r;

    if (n > MR_CONV_MAX_TURNS)
        return mr_error_bad(b->err, "conversation_too_large", param,
                            "more than %d %s: too many to translate", MR_CONV_MAX_TURNS, param);
    if (n && !(r->turns = mr_conv_alloc(r->_arena, n, sizeof(*r->turns))))
        return mr_codec_oom(b);
    return 0;
}

mr_conv_turn_t *mr_codec_text_turn(mr_codec_build_t *b, mr_conv_role_t role, const char *role_name,
                                   const json_t *text, size_t src)
{
    mr_conv_turn_t *t = &b->r->turns[b->r->n_turns++];

    *t = (mr_conv_turn_t){.role = role, .role_name = {role_name, strlen(role_name)}, .src = src};
    t->has_content = 1;
    if (!(t->parts = mr_codec_parts(b, 1)))
        return NULL;
    t->n_parts = 1;
    t->parts[0].kind = MR_CONV_TEXT;
    t->parts[0].u.text = mr_conv_str(text);
    return t;
}

void mr_codec_num(const json_t *obj, const char *key, const char *param, int integer,
                  mr_conv_num_t *v)
{
    const json_t *j = json_object_get(obj, key);
    double d;

    v->param = param;
    v->integer = integer;
    if (!j || json_is_null(j))
        return;
    v->state = MR_CONV_BAD;
    if (!json_is_number(j))
        return;
    d = json_number_value(j);
    /* an integer given as 1e2 is one; 1.5 or 1e300 is not */
    if (integer && !json_is_integer(j) && !(d > -9e15 && d < 9e15 && (double)(long long)d == d))
        return;
    v->state = MR_CONV_SET;
    v->v = d;
}

void mr_codec_cache(const json_t *obj, mr_conv_cache_t *c)
{
    const json_t *cc = json_object_get(obj, "cache_control");

    c->type = mr_conv_str(json_object_get(cc, "type"));
    c->ttl = mr_conv_str(json_object_get(cc, "ttl"));
}

/* A media type of [A-Za-z0-9/+.-], lower-cased into the arena. 1 when it
 * is one, 0 when not, -1 out of memory. */
static int media_type(mr_codec_build_t *b, const char *s, size_t n, mr_conv_str_t *out)
{
    char mime[64];

    if (n == 0 || n >= sizeof(mime))
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!(isalnum(c) || c == '/' || c == '+' || c == '-' || c == '.'))
            return 0;
        mime[i] = (char)tolower(c);
    }
    *out = mr_conv_copy(b->r->_arena, mime, n);
    return out->p ? 1 : mr_codec_oom(b);
}

int mr_codec_media_url(mr_codec_build_t *b, mr_conv_str_t url, mr_conv_media_t *m)
{
    const char *s = url.p, *comma, *semi;
    int rc;

    m->url = url;
    if (!s)
        return 0; /* MR_CONV_SRC_MISSING */
    m->source = MR_CONV_SRC_OTHER;
    if (strncmp(s, "https://", 8) == 0 || strncmp(s, "http://", 7) == 0) {
        m->source = MR_CONV_SRC_URL;
        return 0;
    }
    /* parameters such as charset are dropped; ";base64" must be the last */
    if (strncasecmp(s, "data:", 5) != 0 || !(comma = strchr(s + 5, ',')) || comma - s < 12 ||
        strncasecmp(comma - 7, ";base64", 7) != 0)
        return 0;
    semi = memchr(s + 5, ';', (size_t)(comma - (s + 5)));
    if ((rc = media_type(b, s + 5, (size_t)(semi - (s + 5)), &m->media_type)) <= 0)
        return rc;
    m->source = MR_CONV_SRC_BASE64;
    m->data = (mr_conv_str_t){comma + 1, strlen(comma + 1)};
    return 0;
}

int mr_codec_media_base64(mr_codec_build_t *b, mr_conv_str_t type, mr_conv_str_t data,
                          mr_conv_media_t *m)
{
    int rc;

    if (!data.p || !type.p) {
        m->source = data.p || type.p ? MR_CONV_SRC_OTHER : MR_CONV_SRC_MISSING;
        return 0;
    }
    if ((rc = media_type(b, type.p, type.n, &m->media_type)) < 0)
        return -1;
    m->source = rc ? MR_CONV_SRC_BASE64 : MR_CONV_SRC_OTHER;
    m->data = data;
    return 0;
}

int mr_codec_args_text(mr_codec_build_t *b, const json_t *args, mr_conv_tool_call_t *call)
{
    json_t *obj = NULL;

    call->args = mr_conv_str(args);
    if (!args || json_is_null(args) || json_string_length(args) == 0)
        obj = json_object();
    else if (json_is_string(args))
        obj = json_loadb(json_string_value(args), json_string_length(args), 0, NULL);
    if (obj && !json_is_object(obj)) {
        json_decref(obj);
        return 0; /* args_json NULL: not an object text */
    }
    if (obj && !(call->args_json = mr_conv_keep(b->r->_arena, obj)))
        return mr_codec_oom(b);
    return 0;
}

int mr_codec_args_object(mr_codec_build_t *b, const json_t *input, mr_conv_tool_call_t *call)
{
    json_t *obj = json_is_object(input) ? json_incref((json_t *)(uintptr_t)input) : json_object();
    char *text = obj ? json_dumps(obj, MR_CONV_JSON_FLAGS) : NULL;

    if (!(call->args_json = mr_conv_keep(b->r->_arena, obj)) || !text) {
        free(text);
        return mr_codec_oom(b);
    }
    call->args = mr_conv_copy(b->r->_arena, text, strlen(text));
    free(text);
    return call->args.p ? 0 : mr_codec_oom(b);
}

int mr_codec_name_results(mr_codec_build_t *b)
{
    mr_conv_req_t *r = b->r;
    json_t *names = json_object(); /* call id -> name */
    int rc = names ? 0 : -1;

    for (size_t i = 0; rc == 0 && i < r->n_turns; i++) {
        const mr_conv_turn_t *t = &r->turns[i];
        for (size_t k = 0; rc == 0 && t->role == MR_CONV_ROLE_ASSISTANT && k < t->n_parts; k++) {
            const mr_conv_tool_call_t *c = &t->parts[k].u.call;
            if (t->parts[k].kind == MR_CONV_TOOL_CALL && c->id.p && c->name.p &&
                strlen(c->id.p) == c->id.n)
                rc = json_object_set_new(names, c->id.p, json_stringn(c->name.p, c->name.n));
        }
    }
    for (size_t i = 0; rc == 0 && i < r->n_turns; i++) {
        mr_conv_tool_result_t *res;
        const json_t *name;
        if (r->turns[i].role != MR_CONV_ROLE_TOOL)
            continue;
        res = &r->turns[i].parts[0].u.result;
        if (!res->call_id.p || !(name = json_object_get(names, res->call_id.p)))
            continue;
        res->name = mr_conv_copy(r->_arena, json_string_value(name), json_string_length(name));
        rc = res->name.p ? 0 : -1;
    }
    json_decref(names);
    return rc < 0 ? mr_codec_oom(b) : 0;
}

static int cmp_key(const void *key, const void *item)
{
    return strcmp(key, *(const char *const *)item);
}

/* Room for one more dropped piece: the list doubles in the arena. */
static int drop_room(mr_codec_build_t *b)
{
    mr_conv_req_t *r = b->r;
    mr_conv_str_t *more;

    if (r->n_dropped < b->dropped_cap)
        return 0;
    if (!(more = mr_conv_alloc(r->_arena, 2 * b->dropped_cap + 8, sizeof(*more))))
        return mr_codec_oom(b);
    if (r->n_dropped)
        memcpy(more, r->dropped, r->n_dropped * sizeof(*more));
    r->dropped = more;
    b->dropped_cap = 2 * b->dropped_cap + 8;
    return 0;
}

int mr_codec_dropped(mr_codec_build_t *b, const json_t *body, const char *const *carried, size_t n)
{
    const char *key;
    const json_t *v;

    json_object_foreach((json_t *)(uintptr_t)body, key, v)
    {
        (void)v;
        if (bsearch(key, carried, n, sizeof(*carried), cmp_key))
            continue;
        if (drop_room(b) < 0)
            return -1;
        b->r->dropped[b->r->n_dropped++] = (mr_conv_str_t){key, strlen(key)};
    }
    return 0;
}

int mr_codec_drop(mr_codec_build_t *b, const char *fmt, ...)
{
    char path[128];
    va_list ap;
    mr_conv_str_t s;

    va_start(ap, fmt);
    vsnprintf(path, sizeof(path), fmt, ap);
    va_end(ap);
    s = mr_conv_copy(b->r->_arena, path, strlen(path));
    if (!s.p || drop_room(b) < 0)
        return s.p ? -1 : mr_codec_oom(b);
    b->r->dropped[b->r->n_dropped++] = s;
    return 0;
}

int mr_codec_tools(mr_codec_build_t *b, const json_t *v, int (*keep)(const json_t *tool),
                   void (*fill)(const json_t *tool, mr_conv_tool_t *out))
{
    mr_conv_req_t *r = b->r;
    size_t i;
    const json_t *t;

    if (!v || json_is_null(v))
        return 0;
    if (!json_is_array(v)) {
        r->tools_bad = 1;
        return 0;
    }
    if (json_array_size(v) > MR_CONV_MAX_TOOLS)
        return mr_error_bad(b->err, "conversation_too_large", "tools",
                            "more than %d tools: too many to translate", MR_CONV_MAX_TOOLS);
    if (!(r->tools = mr_conv_alloc(r->_arena, json_array_size(v) + 1, sizeof(*r->tools))))
        return mr_codec_oom(b);
    json_array_foreach(v, i, t)
    {
        const json_t *strict = json_object_get(t, "strict");
        mr_conv_tool_t *tool = &r->tools[r->n_tools];
        if (!keep(t)) {
            if (mr_codec_drop(b, "tools[%zu]", i) < 0)
                return -1;
            continue;
        }
        tool->strict = json_is_boolean(strict) ? json_is_true(strict) : -1;
        tool->description = mr_conv_str(json_object_get(t, "description"));
        tool->name = mr_conv_str(json_object_get(t, "name"));
        fill(t, tool);
        r->n_tools++;
    }
    return 0;
}

/* ------------------------------------------------------------ writing */

void mr_codec_safe_id(const char *s, size_t len, const char *prefix, char *dst, size_t cap)
{
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a 64 */
    int ok = s && len > 0 && len <= 128 && len < cap;

    for (size_t i = 0; ok && i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        ok = isalnum(c) || c == '_' || c == '-' || c == '.' || c == ':';
    }
    if (ok) {
        memcpy(dst, s, len);
        dst[len] = '\0';
        return;
    }
    for (size_t i = 0; s && i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 0x100000001b3ULL;
    snprintf(dst, cap, "%s%016llx", prefix, (unsigned long long)h);
}

void mr_codec_model(const json_t *upstream, const char *fallback, char *dst, size_t cap)
{
    const char *s = json_string_value(upstream);
    size_t n = json_string_length(upstream);

    if (!s || n == 0 || n > 128 || strlen(s) != n) {
        s = fallback ? fallback : "";
        n = strlen(s);
        if (n > 128)
            for (n = 128; n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80;)
                n--; /* s[n] continues a character: cut before it starts */
    }
    if (n >= cap)
        n = 0;
    memcpy(dst, s, n);
    dst[n] = '\0';
}

void mr_codec_view_copy(mr_conv_str_t s, char *dst, size_t cap)
{
    size_t n = s.n < cap ? s.n : cap - 1;

    while (n < s.n && n > 0 && ((unsigned char)s.p[n] & 0xC0) == 0x80)
        n--; /* s.p[n] continues a character: cut before it starts */
    if (n)
        memcpy(dst, s.p, n);
    dst[n] = '\0';
}

long mr_codec_count(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    return json_is_integer(v) && json_integer_value(v) >= 0 ? (long)json_integer_value(v) : -1;
}

int mr_codec_sse(mr_buf_t *out, const char *event, json_t *data)
{
    char *s = data ? json_dumps(data, MR_CONV_JSON_FLAGS) : NULL;
    int rc = -1;

    /* event may point into data: data goes last */
    if (s && mr_buf_append_force(out, "event: ", 7) == 0 &&
        mr_buf_append_force(out, event, strlen(event)) == 0 &&
        mr_buf_append_force(out, "\ndata: ", 7) == 0 && mr_buf_append_force(out, s, strlen(s)) == 0)
        rc = mr_buf_append_force(out, "\n\n", 2);
    json_decref(data);
    free(s);
    return rc;
}

int mr_codec_append_json(mr_buf_t *out, json_t *j)
{
    char *s = j ? json_dumps(j, MR_CONV_JSON_FLAGS) : NULL;
    int rc = s ? mr_buf_append(out, s, strlen(s)) : -1;

    json_decref(j);
    free(s);
    return rc;
}

json_t *mr_codec_str(mr_conv_str_t s)
{
    return json_stringn(s.p ? s.p : "", s.n);
}

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

char *mr_codec_b64url_encode(const void *p, size_t n)
{
    const unsigned char *in = p;
    char *out = malloc(n / 3 * 4 + 5), *o = out;

    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        size_t left = n - i;
        if (left > 1)
            v |= (uint32_t)in[i + 1] << 8;
        if (left > 2)
            v |= in[i + 2];
        *o++ = b64url[v >> 18 & 63];
        *o++ = b64url[v >> 12 & 63];
        if (left > 1)
            *o++ = b64url[v >> 6 & 63];
        if (left > 2)
            *o++ = b64url[v & 63];
    }
    *o = '\0';
    return out;
}

static int b64_value(unsigned char c)
{
    const char *at = c ? strchr(b64url, c) : NULL;

    if (at)
        return (int)(at - b64url);
    return c == '+' ? 62 : c == '/' ? 63 : -1;
}

unsigned char *mr_codec_b64url_decode(const char *s, size_t n, size_t *len)
{
    unsigned char *out;
    uint32_t acc = 0;
    size_t bits = 0, o = 0;

    while (n > 0 && s[n - 1] == '=')
        n--;
    if (n % 4 == 1 || !(out = malloc(n / 4 * 3 + 3)))
        return NULL;
    for (size_t i = 0; i < n; i++) {
        int v = b64_value((unsigned char)s[i]);
        if (v < 0) {
            free(out);
            return NULL;
        }
        acc = acc << 6 | (uint32_t)v;
        if ((bits += 6) >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    out[o] = '\0';
    *len = o;
    return out;
}
