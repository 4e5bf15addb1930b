#include "meridian/json_span.h"

#include <stdlib.h>
#include <string.h>

typedef struct scanner {
    const char *p;
    const char *end;
} scanner_t;

static void skip_ws(scanner_t *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

static int is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Length of a valid UTF-8 sequence starting at p, 0 if invalid. */
static size_t utf8_len(const unsigned char *p, const unsigned char *end)
{
    unsigned c = p[0];
    size_t n;
    unsigned min;

    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        n = 2, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF)
        n = 3, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4)
        n = 4, min = 0x10000;
    else
        return 0;
    if ((size_t)(end - p) < n)
        return 0;
    unsigned cp = c & (0xFF >> (n + 1));
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

static int scan_string(scanner_t *s)
{
    if (s->p >= s->end || *s->p != '"')
        return -1;
    s->p++;
    while (s->p < s->end) {
        unsigned char c = (unsigned char)*s->p;
        if (c == '"') {
            s->p++;
            return 0;
        }
        if (c < 0x20)
            return -1;
        if (c == '\\') {
            if (++s->p >= s->end)
                return -1;
            switch (*s->p) {
            case '"':
            case '\\':
            case '/':
            case 'b':
            case 'f':
            case 'n':
            case 'r':
            case 't':
                s->p++;
                break;
            case 'u':
                if (s->end - s->p < 5 || !is_hex(s->p[1]) || !is_hex(s->p[2]) || !is_hex(s->p[3]) ||
                    !is_hex(s->p[4]))
                    return -1;
                s->p += 5;
                break;
            default:
                return -1;
            }
            continue;
        }
        size_t n = utf8_len((const unsigned char *)s->p, (const unsigned char *)s->end);
        if (n == 0)
            return -1;
        s->p += n;
    }
    return -1;
}

static int scan_digits(scanner_t *s)
{
    const char *start = s->p;
    while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
        s->p++;
    return s->p > start ? 0 : -1;
}

static int scan_number(scanner_t *s)
{
    if (s->p < s->end && *s->p == '-')
        s->p++;
    if (s->p < s->end && *s->p == '0')
        s->p++;
    else if (scan_digits(s) < 0)
        return -1;
    if (s->p < s->end && *s->p == '.') {
        s->p++;
        if (scan_digits(s) < 0)
            return -1;
    }
    if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
        s->p++;
        if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
            s->p++;
        if (scan_digits(s) < 0)
            return -1;
    }
    return 0;
}

static int scan_literal(scanner_t *s, const char *lit)
{
    size_t n = strlen(lit);
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, lit, n) != 0)
        return -1;
    s->p += n;
    return 0;
}

static int scan_value(scanner_t *s, int depth)
{
    if (s->p >= s->end)
        return -1;
    switch (*s->p) {
    case '"':
        return scan_string(s);
    case 't':
        return scan_literal(s, "true");
    case 'f':
        return scan_literal(s, "false");
    case 'n':
        return scan_literal(s, "null");
    case '{':
    case '[': {
        char close = *s->p == '{' ? '}' : ']';
        int object = close == '}';
        if (depth >= MR_JSON_MAX_DEPTH)
            return -1;
        s->p++;
        skip_ws(s);
        if (s->p < s->end && *s->p == close) {
            s->p++;
            return 0;
        }
        for (;;) {
            if (object) {
                if (scan_string(s) < 0)
                    return -1;
                skip_ws(s);
                if (s->p >= s->end || *s->p != ':')
                    return -1;
                s->p++;
                skip_ws(s);
            }
            if (scan_value(s, depth + 1) < 0)
                return -1;
            skip_ws(s);
            if (s->p >= s->end)
                return -1;
            if (*s->p == ',') {
                s->p++;
                skip_ws(s);
                continue;
            }
            if (*s->p != close)
                return -1;
            s->p++;
            return 0;
        }
    }
    default:
        return scan_number(s);
    }
}

int mr_json_validate(const char *buf, size_t len)
{
    scanner_t s = {buf, buf + len};

    skip_ws(&s);
    if (scan_value(&s, 0) < 0)
        return -1;
    skip_ws(&s);
    return s.p == s.end ? 0 : -1;
}

static unsigned hex4(const char *p)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v = v << 4 | (unsigned)(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
    }
    return v;
}

/* Whether the body of a valid JSON string literal, raw[0, n) between the
 * quotes, decodes to exactly key[0, klen). Keys are compared as a JSON parser
 * (jansson, the upstream) reads them, so "mod\u0065l" is the member "model". */
static int key_equals(const char *raw, size_t n, const char *key, size_t klen)
{
    size_t i = 0, k = 0;

    while (i < n) {
        unsigned char b[4];
        size_t bl = 1;
        if (raw[i] != '\\') {
            b[0] = (unsigned char)raw[i++];
        } else {
            char esc = raw[i + 1];
            i += 2;
            switch (esc) {
            case 'b':
                b[0] = '\b';
                break;
            case 'f':
                b[0] = '\f';
                break;
            case 'n':
                b[0] = '\n';
                break;
            case 'r':
                b[0] = '\r';
                break;
            case 't':
                b[0] = '\t';
                break;
            case 'u': {
                unsigned cp = hex4(raw + i);
                i += 4;
                if (cp >= 0xD800 && cp <= 0xDBFF && n - i >= 6 && raw[i] == '\\' &&
                    raw[i + 1] == 'u') {
                    unsigned lo = hex4(raw + i + 2);
                    if (lo >= 0xDC00 && lo <= 0xDFFF) {
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                        i += 6;
                    }
                }
                if (cp < 0x80) {
                    b[0] = (unsigned char)cp;
                } else if (cp < 0x800) {
                    b[0] = (unsigned char)(0xC0 | cp >> 6);
                    b[1] = (unsigned char)(0x80 | (cp & 0x3F));
                    bl = 2;
                } else if (cp < 0x10000) {
                    b[0] = (unsigned char)(0xE0 | cp >> 12);
                    b[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
                    b[2] = (unsigned char)(0x80 | (cp & 0x3F));
                    bl = 3;
                } else {
                    b[0] = (unsigned char)(0xF0 | cp >> 18);
                    b[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3F));
                    b[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
                    b[3] = (unsigned char)(0x80 | (cp & 0x3F));
                    bl = 4;
                }
                break;
            }
            default: /* '"', '\\', '/' */
                b[0] = (unsigned char)esc;
            }
        }
        if (klen - k < bl || memcmp(key + k, b, bl) != 0)
            return 0;
        k += bl;
    }
    return k == klen;
}

int mr_json_find_member(const char *buf, size_t len, const char *key, mr_json_span_t *span)
{
    scanner_t s = {buf, buf + len};
    size_t klen = strlen(key);

    skip_ws(&s);
    if (s.p >= s.end || *s.p != '{')
        return -1;
    s.p++;
    skip_ws(&s);
    while (s.p < s.end && *s.p == '"') {
        const char *kstart = s.p;
        if (scan_string(&s) < 0)
            return -1;
        size_t rlen = (size_t)(s.p - kstart) - 2;
        int match = memchr(kstart + 1, '\\', rlen)
                        ? key_equals(kstart + 1, rlen, key, klen)
                        : rlen == klen && memcmp(kstart + 1, key, klen) == 0;
        skip_ws(&s);
        if (s.p >= s.end || *s.p != ':')
            return -1;
        s.p++;
        skip_ws(&s);
        const char *vstart = s.p;
        if (scan_value(&s, 1) < 0)
            return -1;
        if (match) {
            span->member_off = (size_t)(kstart - buf);
            span->value_off = (size_t)(vstart - buf);
            span->value_len = (size_t)(s.p - vstart);
            return 0;
        }
        skip_ws(&s);
        if (s.p < s.end && *s.p == ',') {
            s.p++;
            skip_ws(&s);
        }
    }
    return -1;
}

size_t mr_json_quote(const char *str, char *out)
{
    static const char hex[] = "0123456789abcdef";
    char *o = out;

    *o++ = '"';
    for (const unsigned char *p = (const unsigned char *)str; *p; p++) {
        switch (*p) {
        case '"':
            *o++ = '\\', *o++ = '"';
            break;
        case '\\':
            *o++ = '\\', *o++ = '\\';
            break;
        case '\n':
            *o++ = '\\', *o++ = 'n';
            break;
        case '\r':
            *o++ = '\\', *o++ = 'r';
            break;
        case '\t':
            *o++ = '\\', *o++ = 't';
            break;
        default:
            if (*p < 0x20) {
                *o++ = '\\', *o++ = 'u', *o++ = '0', *o++ = '0';
                *o++ = hex[*p >> 4], *o++ = hex[*p & 15];
            } else {
                *o++ = (char)*p;
            }
        }
    }
    *o++ = '"';
    return (size_t)(o - out);
}

static int is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

void mr_json_member_cut(const char *buf, size_t len, const mr_json_span_t *span, size_t *off,
                        size_t *cut_len)
{
    size_t end = span->value_off + span->value_len;
    size_t p = end;

    while (p < len && is_ws(buf[p]))
        p++;
    if (p < len && buf[p] == ',') {
        /* not the last member: take the comma after it and the space before the next */
        p++;
        while (p < len && is_ws(buf[p]))
            p++;
        *off = span->member_off;
        *cut_len = p - span->member_off;
        return;
    }
    /* the last member: take the comma before it, if any */
    size_t q = span->member_off;
    while (q > 0 && is_ws(buf[q - 1]))
        q--;
    if (q > 0 && buf[q - 1] == ',')
        q--;
    *off = q;
    *cut_len = end - q;
}

static int edit_cmp(const void *a, const void *b)
{
    const mr_json_edit_t *x = a, *y = b;
    return x->off < y->off ? -1 : x->off > y->off;
}

char *mr_json_apply(const char *buf, size_t len, mr_json_edit_t *edits, size_t n, size_t *out_len)
{
    size_t total = len, pos = 0, o = 0;
    char *out;

    qsort(edits, n, sizeof(*edits), edit_cmp);
    for (size_t i = 0; i < n; i++) {
        /* overlapping or out-of-range edits are a caller bug: refuse, never copy */
        if (edits[i].off + edits[i].len > len ||
            (i && edits[i].off < edits[i - 1].off + edits[i - 1].len))
            return NULL;
        total = total - edits[i].len + edits[i].rep_len;
    }
    out = malloc(total + 1);
    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        memcpy(out + o, buf + pos, edits[i].off - pos);
        o += edits[i].off - pos;
        memcpy(out + o, edits[i].rep, edits[i].rep_len);
        o += edits[i].rep_len;
        pos = edits[i].off + edits[i].len;
    }
    memcpy(out + o, buf + pos, len - pos);
    o += len - pos;
    out[o] = '\0';
    *out_len = o;
    return out;
}
