/*
 * bench/h1client.h — the HTTP/1.1 client pieces both load generators
 * (bench/loadgen.c, bench/ssegen.c) use: the target (--host, --port, --path,
 * --body, --header: one POST prebuilt once), a non-blocking connect, the
 * monotonic clock, and the response framing (status line, Content-Length,
 * chunked transfer coding, or a body that ends with the connection).
 * Header-only (static functions), one target per process; the framing does
 * not allocate: the caller owns the receive buffer, and body bytes go to a
 * callback as they are decoded.
 */
#ifndef BENCH_H1CLIENT_H
#define BENCH_H1CLIENT_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define H1_MAXHDR 16

/* Where the requests go and the request itself (built by h1_target_ready). */
typedef struct {
    const char *host, *path, *body, *hdrs[H1_MAXHDR];
    int nhdrs, port;
    struct sockaddr_in sa;
    char *req;
    size_t reqlen;
} h1_target_t;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Takes a target option (--host, --port, --path, --body, --header): 1 if it
 * was one, 0 if not, -1 if it cannot be taken (too many headers). */
static int h1_target_arg(h1_target_t *t, const char *name, const char *v)
{
    if (!t->host)
        t->host = "127.0.0.1", t->path = "/", t->body = "";
    if (!strcmp(name, "--host"))
        t->host = v;
    else if (!strcmp(name, "--port"))
        t->port = atoi(v);
    else if (!strcmp(name, "--path"))
        t->path = v;
    else if (!strcmp(name, "--body"))
        t->body = v;
    else if (!strcmp(name, "--header")) {
        if (t->nhdrs == H1_MAXHDR)
            return -1;
        t->hdrs[t->nhdrs++] = v;
    } else
        return 0;
    return 1;
}

/* Checks the address (loopback only) and builds the POST; 0 or -1 with a
 * message on stderr. */
static int h1_target_ready(h1_target_t *t, const char *prog)
{
    if (t->port <= 0 || t->port > 65535 || !t->host) {
        fprintf(stderr, "%s: --port is missing or not a port\n", prog);
        return -1;
    }
    memset(&t->sa, 0, sizeof t->sa);
    t->sa.sin_family = AF_INET;
    t->sa.sin_port = htons((uint16_t)t->port);
    if (inet_pton(AF_INET, t->host, &t->sa.sin_addr) != 1 ||
        (ntohl(t->sa.sin_addr.s_addr) >> 24) != 127) {
        fprintf(stderr, "%s: --host must be a 127.x.x.x address\n", prog);
        return -1;
    }
    size_t cap = 1024 + strlen(t->path) + strlen(t->body);
    for (int i = 0; i < t->nhdrs; i++)
        cap += strlen(t->hdrs[i]) + 2;
    if (!(t->req = malloc(cap)))
        return -1;
    int n = snprintf(t->req, cap,
                     "POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
                     "Authorization: Bearer sk-client\r\nContent-Length: %zu\r\n",
                     t->path, t->host, t->port, strlen(t->body));
    for (int i = 0; i < t->nhdrs; i++)
        n += snprintf(t->req + n, cap - (size_t)n, "%s\r\n", t->hdrs[i]);
    n += snprintf(t->req + n, cap - (size_t)n, "\r\n%s", t->body);
    t->reqlen = (size_t)n;
    return 0;
}

/* A non-blocking TCP_NODELAY socket connecting to the target: the fd, or -1. */
static int h1_connect(const h1_target_t *t)
{
    int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (const struct sockaddr *)&t->sa, sizeof t->sa) < 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    return fd;
}

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
