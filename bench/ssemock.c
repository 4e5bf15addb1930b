/*
 * bench/ssemock.c — the upstream of bench/llm: an OpenAI-shaped token-stream
 * emitter for thousands of concurrent streams. Linux only: one thread, one
 * epoll loop, plain non-blocking sockets, HTTP/1.1 keep-alive.
 *
 *   ssemock --port P [--interval-ms E] [--events K] [--backlog B] [--slack-us S]
 *
 * POST .../chat/completions answers 200 text/event-stream (chunked): the
 * first event at once, then one every E ms (default 25), K in all (default
 * 400; fewer when the request body has "max_tokens": n), then an OpenAI usage
 * chunk when the body asks for it ("include_usage": true, as Meridian does),
 * then `data: [DONE]`. Every event is a chat.completion.chunk with three
 * extra members the load generator reads:
 *   "t": CLOCK_MONOTONIC ns when the event was written,
 *   "d": ns when it was due (t - d is this emitter's own lag),
 *   "i": its index in the stream.
 * CLOCK_MONOTONIC is one clock for every process on the machine, so the
 * client's arrival time minus "t" is the event's delay through the path.
 * GET .../models answers a one-model list (readiness checks); anything else
 * 404. Listens on 127.0.0.1 only. Stops on SIGTERM/SIGINT (default action).
 *
 * All streams share one interval, so the queue of due events is a FIFO ring:
 * an event is re-queued at its due time + E, never before one queued earlier.
 * The loop sleeps with epoll_pwait2 (ns timeout, Linux >= 5.11) until the
 * head is due, then sends every event due within the next S µs (default 50):
 * one wake-up for a few events at high rates, no bursts that would queue.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define IN_MAX 8192           /* a request head + body must fit */
#define OUT_MAX (1024 * 1024) /* unsent bytes held for a peer that does not read */
#define EVENT_MAX 512
#define EMIT_BATCH 256 /* events sent between two looks at the sockets */

enum { S_READ, S_STREAM };

typedef struct {
    int fd, state, usage, close_after, want_out;
    int sent, total; /* events of the current stream */
    uint32_t serial; /* current stream; ring entries of older ones are stale */
    uint64_t due;
    size_t in_len;
    char *out; /* bytes the socket did not take yet */
    size_t out_len, out_off;
    char in[IN_MAX];
} conn_t;

typedef struct {
    int fd;
    uint32_t serial;
} slot_t;

static conn_t **conns; /* by fd */
static int max_fd, ep, lfd;
static slot_t *ring;
static size_t ring_cap, ring_head, ring_len;
static uint64_t interval_ns = 25000000ull, slack_ns = 50000ull;
static int events_default = 400;
static uint32_t next_serial = 1;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *m)
{
    fprintf(stderr, "ssemock: %s: %s\n", m, strerror(errno));
    exit(1);
}

static void close_conn(conn_t *c)
{
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    conns[c->fd] = NULL;
    free(c->out);
    free(c);
}

static void set_out(conn_t *c, int on)
{
    if (c->want_out == on)
        return;
    c->want_out = on;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | (on ? EPOLLOUT : 0u),
                             .data.fd = c->fd};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Writes what is pending, then p[0, n); keeps what the socket refuses.
 * Returns -1 when the connection must be closed. */
static int send_bytes(conn_t *c, const char *p, size_t n)
{
    while (c->out_off < c->out_len) {
        ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (w < 0 && errno == EAGAIN)
            break;
        if (w <= 0)
            return -1;
        c->out_off += (size_t)w;
    }
    if (c->out_off == c->out_len) {
        c->out_off = c->out_len = 0;
        while (n) {
            ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
            if (w < 0 && errno == EAGAIN)
                break;
            if (w <= 0)
                return -1;
            p += w;
            n -= (size_t)w;
        }
    }
    if (n) {
        if (c->out_len + n > OUT_MAX)
            return -1; /* the peer stopped reading: it would only grow */
        char *o = c->out ? c->out : malloc(OUT_MAX);
        if (!o)
            return -1;
        c->out = o;
        memcpy(c->out + c->out_len, p, n);
        c->out_len += n;
    }
    set_out(c, c->out_off < c->out_len);
    return 0;
}

static int ring_push(conn_t *c)
{
    if (ring_len == ring_cap)
        return -1;
    size_t i = (ring_head + ring_len) % ring_cap;
    ring[i].fd = c->fd;
    ring[i].serial = c->serial;
    ring_len++;
    return 0;
}

/* One chunk-framed event: content for index i < total, then the tail. */
static size_t format_event(conn_t *c, char *buf, uint64_t due)
{
    char ev[EVENT_MAX];
    int n = snprintf(ev, sizeof ev,
                     "data: {\"id\":\"chatcmpl-llmbench\",\"object\":\"chat.completion.chunk\","
                     "\"created\":1700000000,\"model\":\"gpt-4o-mini-2024-07-18\","
                     "\"system_fingerprint\":\"fp_llmbench\",\"choices\":[{\"index\":0,"
                     "\"delta\":{\"content\":\" tok%d\"},\"logprobs\":null,\"finish_reason\":%s}],"
                     "\"t\":%llu,\"d\":%llu,\"i\":%d}\n\n",
                     c->sent, c->sent + 1 == c->total ? "\"stop\"" : "null",
                     (unsigned long long)now_ns(), (unsigned long long)due, c->sent);
    return (size_t)sprintf(buf, "%x\r\n%.*s\r\n", n, n, ev);
}

static const char TAIL_USAGE[] =
    "data: {\"id\":\"chatcmpl-llmbench\",\"object\":\"chat.completion.chunk\","
    "\"created\":1700000000,\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[],"
    "\"usage\":{\"prompt_tokens\":8,\"completion_tokens\":400,\"total_tokens\":408}}\n\n";
static const char TAIL_DONE[] = "data: [DONE]\n\n";

/* Sends the next event of c's stream; the last one carries the stream's end. */
static int emit(conn_t *c, uint64_t due)
{
    char buf[EVENT_MAX + sizeof TAIL_USAGE + 64];
    size_t n = format_event(c, buf, due);
    c->sent++;
    if (c->sent == c->total) {
        size_t tl = (c->usage ? sizeof TAIL_USAGE - 1 : 0) + sizeof TAIL_DONE - 1;
        n += (size_t)sprintf(buf + n, "%zx\r\n%s%s\r\n0\r\n\r\n", tl, c->usage ? TAIL_USAGE : "",
                             TAIL_DONE);
    }
    if (send_bytes(c, buf, n) < 0)
        return -1;
    if (c->sent < c->total) {
        c->due = due + interval_ns;
        return ring_push(c);
    }
    c->state = S_READ;
    return 0;
}

static int serve(conn_t *c);

/* Sends what is due, at most EMIT_BATCH events: behind schedule, new
 * connections and requests must still be served, or their first events
 * would wait until the backlog is gone. */
static void emit_due(void)
{
    for (int sent = 0; ring_len && sent < EMIT_BATCH;) {
        slot_t s = ring[ring_head];
        conn_t *c = conns[s.fd];
        if (c && c->serial == s.serial && c->state == S_STREAM && c->due > now_ns() + slack_ns)
            return;
        ring_head = (ring_head + 1) % ring_cap;
        ring_len--;
        if (!c || c->serial != s.serial || c->state != S_STREAM)
            continue; /* the stream ended or its connection closed */
        /* at the stream's end: a request that came in meanwhile, or close */
        sent++;
        if (emit(c, c->due) < 0 || (c->state == S_READ && serve(c) < 0))
            close_conn(c);
    }
}

/* Where the value of the member "key" starts in the body (JSON as any
 * client writes it), or NULL. */
static const char *value_of(const char *b, size_t n, const char *key)
{
    const char *k = memmem(b, n, key, strlen(key)), *e = b + n;
    if (!k)
        return NULL;
    for (k += strlen(key); k < e && (*k == '"' || *k == ' ' || *k == ':'); k++)
        ;
    return k;
}

static int has_true(const char *b, size_t n, const char *key)
{
    const char *v = value_of(b, n, key);
    return v && (size_t)(b + n - v) >= 4 && memcmp(v, "true", 4) == 0;
}

static long int_member(const char *b, size_t n, const char *key)
{
    const char *v = value_of(b, n, key);
    return v && v < b + n && *v >= '0' && *v <= '9' ? strtol(v, NULL, 10) : -1;
}

static int answer(conn_t *c, const char *status, const char *ctype, const char *body)
{
    char buf[1024];
    int n = snprintf(buf, sizeof buf,
                     "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s\r\n%s", status,
                     ctype, strlen(body), c->close_after ? "Connection: close\r\n" : "", body);
    return send_bytes(c, buf, (size_t)n);
}

static int start_stream(conn_t *c, const char *body, size_t blen)
{
    static const char head[] = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                               "Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n";
    long max = int_member(body, blen, "\"max_tokens\"");
    c->usage = has_true(body, blen, "\"include_usage\"");
    c->total = max > 0 && max < events_default ? (int)max : events_default;
    c->sent = 0;
    c->state = S_STREAM;
    c->serial = next_serial++; /* unique: a reused fd must not match old ring entries */
    if (send_bytes(c, head, sizeof head - 1) < 0)
        return -1;
    return emit(c, now_ns());
}

/* Length of the complete request at c->in (head + body), 0 if incomplete,
 * -1 if it cannot be served. */
static long request_len(conn_t *c, size_t *hlen)
{
    char *e = memmem(c->in, c->in_len, "\r\n\r\n", 4);
    if (!e)
        return c->in_len >= IN_MAX ? -1 : 0;
    *hlen = (size_t)(e - c->in) + 4;
    long clen = 0;
    for (char *p = c->in; p < e;) {
        char *nl = memchr(p, '\n', (size_t)(e + 2 - p)); /* e + 1 ends the last line */
        if (!nl)
            break;
        if (strncasecmp(p, "content-length:", 15) == 0)
            clen = strtol(p + 15, NULL, 10);
        else if (strncasecmp(p, "transfer-encoding:", 18) == 0)
            return -1; /* chunked request bodies: no client here sends them */
        else if (strncasecmp(p, "connection:", 11) == 0 && memmem(p, (size_t)(nl - p), "close", 5))
            c->close_after = 1;
        p = nl + 1;
    }
    if (clen < 0 || *hlen + (size_t)clen > IN_MAX)
        return -1;
    return *hlen + (size_t)clen <= c->in_len ? (long)(*hlen + (size_t)clen) : 0;
}

static int serve(conn_t *c)
{
    while (c->state == S_READ) {
        size_t hlen = 0;
        long len = request_len(c, &hlen);
        if (len < 0)
            return -1;
        if (len == 0) /* nothing (complete) to serve: close now if the last answer said so */
            return c->close_after && c->out_off == c->out_len ? -1 : 0;
        const char *sp = memchr(c->in, ' ', hlen), *sp2 = sp ? memchr(sp + 1, ' ', hlen) : NULL;
        size_t plen = sp && sp2 ? (size_t)(sp2 - sp - 1) : 0;
        int rc;
        if (plen >= 17 && strncmp(c->in, "POST ", 5) == 0 &&
            memcmp(sp2 - 17, "/chat/completions", 17) == 0)
            rc = start_stream(c, c->in + hlen, (size_t)len - hlen);
        else if (plen >= 7 && strncmp(c->in, "GET ", 4) == 0 && memcmp(sp2 - 7, "/models", 7) == 0)
            rc = answer(
                c, "200 OK", "application/json",
                "{\"object\":\"list\",\"data\":[{\"id\":\"gpt-4o-mini\",\"object\":\"model\","
                "\"created\":1700000000,\"owned_by\":\"llmbench\"}]}");
        else
            rc = answer(c, "404 Not Found", "application/json",
                        "{\"error\":{\"message\":\"ssemock: no such "
                        "path\",\"type\":\"invalid_request_error\"}}");
        memmove(c->in, c->in + len, c->in_len - (size_t)len);
        c->in_len -= (size_t)len;
        if (rc < 0)
            return -1;
    }
    return 0;
}

static void on_readable(conn_t *c)
{
    for (;;) {
        if (c->in_len == IN_MAX) { /* no client here sends that much during a stream */
            close_conn(c);
            return;
        }
        ssize_t r = recv(c->fd, c->in + c->in_len, IN_MAX - c->in_len, 0);
        if (r < 0 && errno == EAGAIN)
            break;
        if (r <= 0) {
            close_conn(c);
            return;
        }
        c->in_len += (size_t)r;
    }
    if (serve(c) < 0)
        close_conn(c);
}

static void on_accept(void)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        conn_t *c = fd < max_fd ? calloc(1, sizeof *c) : NULL;
        if (!c) {
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* events are small */
        c->fd = fd;
        conns[fd] = c;
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.fd = fd};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
            close_conn(c);
    }
}

static void setup(int port, int backlog)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    getrlimit(RLIMIT_NOFILE, &rl);
    max_fd = rl.rlim_cur > 1048576 ? 1048576 : (int)rl.rlim_cur;
    ring_cap = 2 * (size_t)max_fd; /* live streams + stale entries of closed ones */
    conns = calloc((size_t)max_fd, sizeof *conns);
    ring = calloc(ring_cap, sizeof *ring);
    if (!conns || !ring)
        die("calloc");
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (lfd < 0)
        die("socket");
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(lfd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(lfd, backlog) < 0)
        die("bind/listen 127.0.0.1");
    socklen_t sl = sizeof sa;
    getsockname(lfd, (struct sockaddr *)&sa, &sl);
    printf("PORT %d\n", ntohs(sa.sin_port));
    fflush(stdout);
    ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) < 0)
        die("epoll");
}

int main(int argc, char **argv)
{
    int port = -1, backlog = 4096;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--port"))
            port = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--interval-ms"))
            interval_ns = (uint64_t)(atof(argv[i + 1]) * 1e6);
        else if (!strcmp(argv[i], "--events"))
            events_default = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--backlog"))
            backlog = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--slack-us"))
            slack_ns = (uint64_t)atoi(argv[i + 1]) * 1000;
        else
            port = -2;
    }
    if (port < 0 || port > 65535 || argc % 2 == 0 || interval_ns < 100000 || events_default < 1) {
        fprintf(stderr, "usage: ssemock --port P [--interval-ms E] [--events K] [--backlog B] "
                        "[--slack-us S]\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    setup(port, backlog);
    struct epoll_event evs[1024];
    for (;;) {
        emit_due();
        /* Sleep to the next due event with ns precision: events go out when
         * due, spread as a real population of streams spreads them, not in
         * millisecond bursts that would queue behind each other in a relay. */
        struct timespec ts, *tp = NULL;
        if (ring_len) { /* a stale head (stream gone) is popped at once */
            const conn_t *h = conns[ring[ring_head].fd];
            uint64_t now = now_ns(), due = h && h->serial == ring[ring_head].serial ? h->due : 0,
                     wait = due > now ? due - now : 0;
            ts.tv_sec = (time_t)(wait / 1000000000ull);
            ts.tv_nsec = (long)(wait % 1000000000ull);
            tp = &ts;
        }
        int k = epoll_pwait2(ep, evs, 1024, tp, NULL);
        for (int i = 0; i < k; i++) {
            int fd = evs[i].data.fd;
            if (fd == lfd) {
                on_accept();
                continue;
            }
            conn_t *c = conns[fd];
            if (!c)
                continue;
            if ((evs[i].events & EPOLLOUT) && send_bytes(c, "", 0) < 0) {
                close_conn(c);
                continue;
            }
            if (evs[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
                on_readable(c);
            else if (c->close_after && c->state == S_READ && c->out_off == c->out_len)
                close_conn(c); /* "Connection: close" answer fully written */
        }
    }
}
