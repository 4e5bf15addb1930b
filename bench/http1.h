/*
 * bench/http1.h — HTTP/1.1 response framing for the load generators
 * (bench/loadgen.c, bench/ssegen.c): status line, Content-Length, chunked
 * transfer coding, or a body that ends with the connection. Header-only
 * (static functions), no allocation: the caller owns the receive buffer and
 * passes it in; body bytes go to a callback as they are decoded.
 */
#ifndef BENCH_HTTP1_H
#define BENCH_HTTP1_H

#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum { H1_HEAD, H1_CL, H1_CSIZE, H1_CDATA, H1_CCRLF, H1_TRAILER, H1_EOF };

typedef struct {
    int phase, chunked, close_after, status;
    long long remain;
} h1_resp_t;

/* Called with each run of decoded body bytes (n > 0). */
typedef void (*h1_body_fn)(void *ud, const char *p, size_t n);

static void h1_reset(h1_resp_t *r)
{
    memset(r, 0, sizeof *r);
    r->phase = H1_HEAD;
    r->remain = -1;
}

/* Reads the status and the framing headers of the head p[0, hlen). */
static void h1_head(h1_resp_t *r, char *p, size_t hlen)
{
    char *end = p + hlen;
    r->status = 0;
    if (hlen > 12 && strncmp(p, "HTTP/1.", 7) == 0)
        r->status = atoi(p + 9);
    r->remain = -1;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            break;
        *nl = 0;
        if (strncasecmp(p, "content-length:", 15) == 0)
            r->remain = atoll(p + 15);
        else if (strncasecmp(p, "transfer-encoding:", 18) == 0 && strcasestr(p, "chunked"))
            r->chunked = 1;
        else if (strncasecmp(p, "connection:", 11) == 0 && strcasestr(p, "close"))
            r->close_after = 1;
        p = nl + 1;
    }
    if (r->chunked)
        r->phase = H1_CSIZE;
    else if (r->remain >= 0)
        r->phase = H1_CL;
    else
        r->phase = H1_EOF, r->close_after = 1;
}

/* One framing step on b[0, n): sets *used (bytes consumed); returns 1 when
 * the response is complete, 0 to go on (*used == 0: more bytes needed),
 * -1 on a protocol error. */
static int h1_step(h1_resp_t *r, char *b, size_t n, size_t cap, size_t *used, h1_body_fn fn,
                   void *ud)
{
    *used = 0;
    if (r->phase == H1_HEAD) {
        char *e = memmem(b, n, "\r\n\r\n", 4);
        if (!e)
            return n >= cap - 1 ? -1 : 0;
        *used = (size_t)(e - b) + 4;
        h1_head(r, b, *used);
        return r->phase == H1_CL && r->remain == 0;
    }
    if (r->phase == H1_CL || r->phase == H1_CDATA || r->phase == H1_EOF) {
        size_t take = r->phase == H1_EOF || (size_t)r->remain > n ? n : (size_t)r->remain;
        if (!take)
            return 0;
        fn(ud, b, take);
        *used = take;
        if (r->phase == H1_EOF || (r->remain -= (long long)take) > 0)
            return 0;
        if (r->phase == H1_CL)
            return 1;
        r->phase = H1_CCRLF;
        return 0;
    }
    if (r->phase == H1_CCRLF) {
        if (n < 2)
            return 0;
        *used = 2;
        r->phase = H1_CSIZE;
        return 0;
    }
    char *nl = memchr(b, '\n', n); /* H1_CSIZE, H1_TRAILER: one line */
    if (!nl)
        return n >= 512 ? -1 : 0;
    *used = (size_t)(nl - b) + 1;
    if (r->phase == H1_TRAILER)
        return *used <= 2;
    long long sz = strtoll(b, NULL, 16);
    if (sz < 0)
        return -1;
    r->phase = sz ? H1_CDATA : H1_TRAILER;
    r->remain = sz;
    return 0;
}

/* Consumes what it can of buf[0, *blen) (cap: the buffer's size), moving
 * the rest to the front. Returns 1 when the response is complete, 0 when
 * more is needed, -1 on a protocol error. */
static int h1_parse(h1_resp_t *r, char *buf, size_t *blen, size_t cap, h1_body_fn fn, void *ud)
{
    size_t off = 0, used;
    int rc = 0;
    while (rc == 0 && off < *blen) {
        rc = h1_step(r, buf + off, *blen - off, cap, &used, fn, ud);
        off += used;
        if (rc == 0 && used == 0)
            break;
    }
    if (off) {
        memmove(buf, buf + off, *blen - off);
        *blen -= off;
    }
    return rc;
}

#endif
