#include "meridian/json_span.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct scan_ext scan_ext_t;

typedef struct scanner {
    const char *p;
    const char *end;
    scan_ext_t *x; /* mr_json_scan's bookkeeping; NULL for a plain validation */
} scanner_t;

static int ext_string(scanner_t *s, const char *start);
static int ext_value(scanner_t *s);
static size_t ext_object_open(const scanner_t *s);
static int ext_key(scanner_t *s, const char *kstart, int depth);
static int ext_member_value(scanner_t *s, const char *vstart, int depth);
static int ext_object_close(scanner_t *s, size_t mark);

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
    const char *start = s->p;

    if (s->p >= s->end || *s->p != '"')
        return -1;
    s->p++;
    while (s->p < s->end) {
        unsigned char c = (unsigned char)*s->p;
        if (c == '"') {
            s->p++;
            return s->x ? ext_string(s, start) : 0;
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
    if (s->p >= s->end || (s->x && ext_value(s) < 0))
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
        size_t mark = object && s->x ? ext_object_open(s) : 0;
        if (depth >= MR_JSON_MAX_DEPTH)
            return -1;
        s->p++;
        skip_ws(s);
        if (s->p < s->end && *s->p == close) {
            s->p++;
            return 0;
        }
        for (;;) {
            const char *vstart;
            if (object) {
                const char *kstart = s->p;
                if (scan_string(s) < 0 || (s->x && ext_key(s, kstart, depth) < 0))
                    return -1;
                skip_ws(s);
                if (s->p >= s->end || *s->p != ':')
                    return -1;
                s->p++;
                skip_ws(s);
            }
            vstart = s->p;
            if (scan_value(s, depth + 1) < 0 ||
                (object && s->x && ext_member_value(s, vstart, depth) < 0))
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
            return object && s->x ? ext_object_close(s, mark) : 0;
        }
    }
    default:
        return scan_number(s);
    }
}

int mr_json_validate(const char *buf, size_t len)
{
    scanner_t s = {buf, buf + len, NULL};

    skip_ws(&s);
    if (scan_value(&s, 0) < 0)
        return -1;
    skip_ws(&s);
    return s.p == s.end ? 0 : -1;
}

size_t mr_json_value_len(const char *buf, size_t len)
{
    scanner_t s = {buf, buf + len, NULL};

    return scan_value(&s, 0) == 0 ? (size_t)(s.p - buf) : 0;
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

/* The next decoded character of a valid JSON string body raw[0, n) at *i,
 * as UTF-8 in b (1..4 bytes, returned); *i moves past it. */
static size_t decode_unit(const char *raw, size_t n, size_t *i, unsigned char b[4])
{
    unsigned cp;

    if (raw[*i] != '\\') {
        b[0] = (unsigned char)raw[(*i)++];
        return 1;
    }
    char esc = raw[*i + 1];
    *i += 2;
    switch (esc) {
    case 'b':
        b[0] = '\b';
        return 1;
    case 'f':
        b[0] = '\f';
        return 1;
    case 'n':
        b[0] = '\n';
        return 1;
    case 'r':
        b[0] = '\r';
        return 1;
    case 't':
        b[0] = '\t';
        return 1;
    case 'u':
        break;
    default: /* '"', '\\', '/' */
        b[0] = (unsigned char)esc;
        return 1;
    }
    cp = hex4(raw + *i);
    *i += 4;
    if (cp >= 0xD800 && cp <= 0xDBFF && n - *i >= 6 && raw[*i] == '\\' && raw[*i + 1] == 'u') {
        unsigned lo = hex4(raw + *i + 2);
        if (lo >= 0xDC00 && lo <= 0xDFFF) {
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            *i += 6;
        }
    }
    if (cp < 0x80) {
        b[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        b[0] = (unsigned char)(0xC0 | cp >> 6);
        b[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        b[0] = (unsigned char)(0xE0 | cp >> 12);
        b[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
        b[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    b[0] = (unsigned char)(0xF0 | cp >> 18);
    b[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3F));
    b[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
    b[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Whether the body of a valid JSON string literal, raw[0, n) between the
 * quotes, decodes to exactly key[0, klen). Keys are compared as a JSON parser
 * (jansson, the upstream) reads them, so "mod\u0065l" is the member "model". */
static int key_equals(const char *raw, size_t n, const char *key, size_t klen)
{
    size_t i = 0, k = 0;

    while (i < n) {
        unsigned char b[4];
        size_t bl = decode_unit(raw, n, &i, b);
        if (klen - k < bl || memcmp(key + k, b, bl) != 0)
            return 0;
        k += bl;
    }
    return k == klen;
}

int mr_json_find_member(const char *buf, size_t len, const char *key, mr_json_span_t *span)
{
    scanner_t s = {buf, buf + len, NULL};
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

/* ---- mr_json_scan: one pass that validates, refuses duplicate members at
 * every depth and locates the top-level members a caller names ---------- */

/* A member key of an object still open: where its literal starts, and the
 * hash of its decoded text. The keys of the open objects form a stack; an
 * object's keys are checked for duplicates when it closes, then popped. */
typedef struct keyent {
    uint32_t hash;
    uint32_t off;
} keyent_t;

#define INLINE_KEYS 256 /* enough for ordinary bodies: no allocation */

struct scan_ext {
    const char *base;
    mr_json_scan_t *out;
    keyent_t *keys;
    size_t n, cap;
    keyent_t inline_keys[INLINE_KEYS];
    size_t pending_key; /* index in out->keys of the top-level key just read, or SIZE_MAX */
};

static int ext_fail(scanner_t *s, const char *at, const char *why)
{
    s->x->out->error = why;
    s->x->out->error_at = (size_t)(at - s->x->base);
    return -1;
}

static int ext_string(scanner_t *s, const char *start)
{
    s->x->out->string_bytes += (size_t)(s->p - start) - 2;
    return 0;
}

static int ext_value(scanner_t *s)
{
    s->x->out->values++;
    return 0;
}

static size_t ext_object_open(const scanner_t *s)
{
    return s->x->n;
}

/* The length of the body of the valid string literal starting at lit. */
static size_t literal_body_len(const char *lit)
{
    size_t i = 1;
    while (lit[i] != '"')
        i += lit[i] == '\\' ? 2 : 1;
    return i - 1;
}

/* FNV-1a over the decoded text. */
static uint32_t key_hash(const char *raw, size_t n)
{
    uint32_t h = 2166136261u;
    size_t i = 0;

    while (i < n) {
        unsigned char b[4];
        size_t bl = decode_unit(raw, n, &i, b);
        for (size_t k = 0; k < bl; k++)
            h = (h ^ b[k]) * 16777619u;
    }
    return h;
}

/* Whether two string bodies decode to the same text. */
static int raw_keys_equal(const char *a, size_t an, const char *b, size_t bn)
{
    size_t i = 0, j = 0;
    unsigned char x[4], y[4];
    size_t xl = 0, xo = 0, yl = 0, yo = 0;

    if (!memchr(a, '\\', an) && !memchr(b, '\\', bn))
        return an == bn && memcmp(a, b, an) == 0;
    /* byte by byte: an escape decodes to several bytes the other may spell raw */
    for (;;) {
        if (xo == xl) {
            if (i == an)
                break;
            xl = decode_unit(a, an, &i, x);
            xo = 0;
        }
        if (yo == yl) {
            if (j == bn)
                return 0;
            yl = decode_unit(b, bn, &j, y);
            yo = 0;
        }
        if (x[xo++] != y[yo++])
            return 0;
    }
    return yo == yl && j == bn;
}

static int ext_push(scan_ext_t *x, uint32_t hash, uint32_t off)
{
    if (x->n == x->cap) {
        size_t cap = x->cap * 2;
        keyent_t *k = x->keys == x->inline_keys ? malloc(cap * sizeof(*k))
                                                : realloc(x->keys, cap * sizeof(*k));
        if (!k)
            return -1;
        if (x->keys == x->inline_keys)
            memcpy(k, x->inline_keys, sizeof(x->inline_keys));
        x->keys = k;
        x->cap = cap;
    }
    x->keys[x->n++] = (keyent_t){hash, off};
    return 0;
}

static int ext_key(scanner_t *s, const char *kstart, int depth)
{
    scan_ext_t *x = s->x;
    mr_json_scan_t *o = x->out;
    size_t rlen = (size_t)(s->p - kstart) - 2;

    o->members++;
    if (ext_push(x, key_hash(kstart + 1, rlen), (uint32_t)(kstart - x->base)) < 0)
        return ext_fail(s, kstart, "out of memory");
    if (depth > 0)
        return 0;
    x->pending_key = SIZE_MAX;
    for (size_t i = 0; o->keys && o->keys[i] && i < MR_JSON_SCAN_KEYS; i++)
        if (key_equals(kstart + 1, rlen, o->keys[i], strlen(o->keys[i]))) {
            o->at[i].member_off = (size_t)(kstart - x->base);
            x->pending_key = i;
            break;
        }
    return 0;
}

static int ext_member_value(scanner_t *s, const char *vstart, int depth)
{
    scan_ext_t *x = s->x;

    if (depth == 0 && x->pending_key != SIZE_MAX) {
        mr_json_scan_t *o = x->out;
        o->at[x->pending_key].value_off = (size_t)(vstart - x->base);
        o->at[x->pending_key].value_len = (size_t)(s->p - vstart);
        o->found |= 1u << x->pending_key;
        x->pending_key = SIZE_MAX;
    }
    return 0;
}

static int keyent_cmp(const void *a, const void *b)
{
    const keyent_t *x = a, *y = b;
    if (x->hash != y->hash)
        return x->hash < y->hash ? -1 : 1;
    return x->off < y->off ? -1 : x->off > y->off;
}

static int same_key(const scan_ext_t *x, const keyent_t *a, const keyent_t *b)
{
    const char *ka = x->base + a->off, *kb = x->base + b->off;
    return a->hash == b->hash &&
           raw_keys_equal(ka + 1, literal_body_len(ka), kb + 1, literal_body_len(kb));
}

/* The object whose keys are keys[mark, n) closed: a key twice refuses the
 * text (as jansson's JSON_REJECT_DUPLICATES does). Few keys are compared
 * pairwise; many are sorted by hash so that only neighbours compare. */
static int ext_object_close(scanner_t *s, size_t mark)
{
    scan_ext_t *x = s->x;
    keyent_t *k = x->keys + mark;
    size_t n = x->n - mark;

    if (n <= 8) {
        for (size_t i = 1; i < n; i++)
            for (size_t j = 0; j < i; j++)
                if (same_key(x, &k[j], &k[i]))
                    return ext_fail(s, x->base + k[i].off, "duplicate object key");
    } else {
        qsort(k, n, sizeof(*k), keyent_cmp);
        for (size_t i = 1; i < n; i++)
            if (same_key(x, &k[i - 1], &k[i]))
                return ext_fail(s, x->base + k[i].off, "duplicate object key");
    }
    x->n = mark;
    return 0;
}

int mr_json_scan(const char *buf, size_t len, mr_json_scan_t *out)
{
    scan_ext_t x = {.base = buf, .out = out, .cap = INLINE_KEYS, .pending_key = SIZE_MAX};
    scanner_t s = {buf, buf + len, &x};
    int rc = -1;

    x.keys = x.inline_keys;
    memset(out->at, 0, sizeof(out->at));
    out->found = 0;
    out->values = out->members = out->string_bytes = 0;
    out->error = NULL;
    out->error_at = 0;
    if (len > UINT32_MAX) {
        out->error = "text larger than 4 GiB";
        return -1;
    }
    skip_ws(&s);
    out->object = s.p < s.end && *s.p == '{';
    if (scan_value(&s, 0) == 0) {
        skip_ws(&s);
        rc = s.p == s.end ? 0 : -1;
    }
    if (rc < 0 && !out->error) {
        out->error = s.p >= s.end ? "unexpected end of text" : "invalid JSON";
        out->error_at = (size_t)(s.p - buf);
    }
    if (x.keys != x.inline_keys)
        free(x.keys);
    return rc;
}

const mr_json_span_t *mr_json_scan_get(const mr_json_scan_t *s, size_t key)
{
    return key < MR_JSON_SCAN_KEYS && (s->found & (1u << key)) ? &s->at[key] : NULL;
}

int mr_json_scan_lookup(const mr_json_scan_t *s, const char *key, const mr_json_span_t **span)
{
    for (size_t i = 0; s->keys && s->keys[i] && i < MR_JSON_SCAN_KEYS; i++)
        if (!strcmp(s->keys[i], key)) {
            *span = mr_json_scan_get(s, i);
            return 1;
        }
    return 0;
}

size_t mr_json_string_decode(const char *lit, size_t n, char *out)
{
    size_t i = 0, o = 0;

    n -= 2; /* the quotes */
    lit++;
    while (i < n) {
        unsigned char b[4];
        size_t bl = decode_unit(lit, n, &i, b);
        memcpy(out + o, b, bl);
        o += bl;
    }
    out[o] = '\0';
    return o;
}

size_t mr_utf8_char_len(const char *p, size_t avail)
{
    return utf8_len((const unsigned char *)p, (const unsigned char *)p + avail);
}

size_t mr_utf8_valid_len(const char *s, size_t n)
{
    size_t i = 0, k;

    while (i < n) {
        if ((unsigned char)s[i] < 0x80) {
            i++;
            continue;
        }
        if ((k = mr_utf8_char_len(s + i, n - i)) == 0)
            break;
        i += k;
    }
    return i;
}

/* "\u" and four hex digits. */
static size_t u_escape(char *e, unsigned cp)
{
    static const char hex[] = "0123456789abcdef";

    e[0] = '\\';
    e[1] = 'u';
    e[2] = hex[cp >> 12 & 15];
    e[3] = hex[cp >> 8 & 15];
    e[4] = hex[cp >> 4 & 15];
    e[5] = hex[cp & 15];
    return 6;
}

/*
 * The escape for the character at p (one that is not plain printable
 * ASCII): its bytes in e (or *raw pointing at p when it is copied as is),
 * the output length returned and the input length in *in.
 */
static size_t escape_one(const unsigned char *p, const unsigned char *end, char e[6],
                         const unsigned char **raw, size_t *in)
{
    static const char shorts[] = "btn?fr"; /* the escape letter for bytes 8..13 */
    unsigned c = p[0];
    size_t n;

    *in = 1;
    *raw = NULL;
    if (c == '"' || c == '\\') {
        e[0] = '\\';
        e[1] = (char)c;
        return 2;
    }
    if (c >= 8 && c <= 13 && c != 11) {
        e[0] = '\\';
        e[1] = shorts[c - 8];
        return 2;
    }
    if (c < 0x80)
        return u_escape(e, c); /* the other C0 controls and DEL */
    n = utf8_len(p, end);
    if (n == 0)
        return u_escape(e, 0xFFFD);
    *in = n;
    if (c == 0xC2 && p[1] < 0xA0)
        return u_escape(e, p[1]); /* C1: U+0080..U+009F */
    if (c == 0xE2 && p[1] == 0x80 && (p[2] == 0xA8 || p[2] == 0xA9))
        return u_escape(e, 0x2000 | (p[2] & 0x3F)); /* U+2028, U+2029 */
    *raw = p;
    return n;
}

static int plain_ascii(unsigned char c)
{
    return c >= 0x20 && c < 0x7F && c != '"' && c != '\\';
}

size_t mr_json_escape(const char *s, size_t n, char *out, size_t cap, size_t *used)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    size_t o = 0;

    while (p < end) {
        const unsigned char *run = p, *raw;
        char e[6];
        size_t k, in;

        while (p < end && plain_ascii(*p) && (size_t)(p - run) < cap - o)
            p++;
        memcpy(out + o, run, (size_t)(p - run));
        o += (size_t)(p - run);
        if (p == end || plain_ascii(*p))
            break; /* done, or out is full */
        k = escape_one(p, end, e, &raw, &in);
        if (k > cap - o)
            break;
        memcpy(out + o, raw ? (const char *)raw : e, k);
        o += k;
        p += in;
    }
    *used = (size_t)(p - (const unsigned char *)s);
    return o;
}

size_t mr_json_quote(const char *str, char *out)
{
    size_t n = strlen(str), used;
    size_t o = 1 + mr_json_escape(str, n, out + 1, MR_JSON_ESCAPE_MAX * n, &used);

    out[0] = '"';
    out[o++] = '"';
    return o;
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
