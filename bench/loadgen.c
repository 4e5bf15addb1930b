/*
 * bench/loadgen.c — the small load generator bench/run compiles on the fly
 * (cc -O2, into its temp dir) for what wrk cannot do. Linux only: plain
 * non-blocking sockets, one epoll loop, one thread, HTTP/1.1 keep-alive.
 *
 *   loadgen rate --port P --path PATH --body JSON [--header 'K: V']...
 *                --rate R --duration S [--warmup S] [--conns C]
 *     Open loop at a fixed rate (wrk2's method): request i is due at
 *     t0 + i/R whatever happened before; it goes out on the first idle
 *     connection (it waits in a queue when all C are busy). Latency is
 *     counted from the time the request was DUE, so a server that stalls is
 *     charged for the requests that queued behind the stall (no coordinated
 *     omission). "ttfb" is due time -> first byte of the response body (for
 *     a stream: the first byte of the first SSE event). Requests due during
 *     the warm-up are sent but not recorded. Prints one line:
 *       rate=R requests=N errors=E unfinished=U achieved=X p50_ms=.. p99_ms=..
 *       ttfb_p50_ms=.. ttfb_p99_ms=.. lag_p99_ms=..
 *     lag = due -> written to the socket: when it is large the generator (or
 *     the machine) could not keep up, and the figures mean little.
 *
 *   loadgen hold --port P --path PATH --body JSON [--header 'K: V']...
 *                --streams N [--ramp K] [--open-timeout S] [--hold S]
 *     Opens N connections, K at a time, each sending one (streaming)
 *     request; a stream counts as open once its first body byte arrived.
 *     When all N are open (or failed, or the open timeout passed) it prints
 *       READY open=N failed=F pending=P open_ms=T ttfc_p50_ms=.. ttfc_p99_ms=..
 *     (ttfc: request written -> first body byte, i.e. time to first chunk,
 *     with K streams being opened at once)
 *     then keeps reading (and discarding) every stream for S seconds — the
 *     caller samples the server's memory meanwhile — and prints
 *       END open=N still_open=O ended=E failed=F [reasons...]
 *     ended = streams that finished or were closed by the server during the
 *     hold (a slow upstream should keep them all open).
 *
 * Address: 127.0.0.1 only (--host may name another loopback address).
 * Everything is bounded: rate mode stops 10 s after the last due request,
 * hold mode after open-timeout + hold.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "h1client.h"

#define BUFSZ 4096 /* a response head or a chunk-size line must fit */

enum { C_CONNECTING, C_IDLE, C_BUSY, C_HELD, C_DEAD };

typedef struct {
    int fd, state, got_first, idx, out_on;
    h1_resp_t h;
    size_t outoff, blen;
    uint64_t due, sent, first;
    char *buf;
} conn_t;

static h1_target_t tg;
static int ep, tfd;

/* counters */
static long long n_conn_err, n_status_err, n_eof_err, n_ended;
static int last_bad_status;

static void die(const char *m)
{
    fprintf(stderr, "loadgen: %s: %s\n", m, strerror(errno));
    exit(1);
}

static int open_conn(conn_t *c)
{
    c->fd = h1_connect(&tg);
    if (c->fd < 0)
        return -1;
    c->state = C_CONNECTING;
    c->blen = 0;
    h1_reset(&c->h);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    c->out_on = 1;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0)
        die("epoll_ctl");
    return 0;
}

static void close_conn(conn_t *c)
{
    if (c->fd >= 0) {
        epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
    }
    c->fd = -1;
    c->state = C_DEAD;
}

static void want_out(conn_t *c, int on)
{
    if (c->out_on == on)
        return;
    c->out_on = on;
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* write what is left of the request; 0 ok (maybe partial), -1 error */
static int flush_req(conn_t *c)
{
    while (c->outoff < tg.reqlen) {
        ssize_t w = send(c->fd, tg.req + c->outoff, tg.reqlen - c->outoff, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EAGAIN)
                break;
            return -1;
        }
        c->outoff += (size_t)w;
    }
    want_out(c, c->outoff < tg.reqlen);
    return 0;
}

static int send_req(conn_t *c, uint64_t due)
{
    c->state = C_BUSY;
    c->due = due;
    c->got_first = 0;
    c->blen = 0;
    c->outoff = 0;
    h1_reset(&c->h);
    c->sent = now_ns();
    return flush_req(c);
}

static void mark_first(conn_t *c)
{
    if (!c->got_first) {
        c->got_first = 1;
        c->first = now_ns();
    }
}

static void on_body(void *ud, const char *p, size_t n)
{
    (void)p;
    (void)n;
    mark_first(ud);
}

/* read all available; 1 response complete, 0 more needed, -1 error/EOF */
static int on_readable(conn_t *c, int *eof)
{
    *eof = 0;
    for (;;) {
        if (c->blen >= BUFSZ)
            return -1;
        ssize_t r = recv(c->fd, c->buf + c->blen, BUFSZ - c->blen, 0);
        if (r < 0) {
            if (errno == EAGAIN)
                return 0;
            return -1;
        }
        if (r == 0) {
            *eof = 1;
            if (c->h.phase == H1_EOF)
                return 1;
            return -1;
        }
        c->blen += (size_t)r;
        int p = h1_parse(&c->h, c->buf, &c->blen, BUFSZ, on_body, c);
        if (p != 0)
            return p;
    }
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct_ms(uint64_t *v, size_t n, double p)
{
    if (!n)
        return -1;
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return (double)v[i] / 1e6;
}

static void arm_timer(uint64_t at)
{
    struct itimerspec its = {0};
    if (at) {
        its.it_value.tv_sec = (time_t)(at / 1000000000ull);
        its.it_value.tv_nsec = (long)(at % 1000000000ull);
    }
    timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);
}

/* ------------------------------------------------------------------ rate */
static int run_rate(double rate, double dur, double warm, int nconns)
{
    conn_t *cs = calloc((size_t)nconns, sizeof *cs);
    int *idle = malloc(sizeof(int) * (size_t)nconns), nidle = 0, connected = 0;
    if (!cs || !idle)
        die("calloc");
    for (int i = 0; i < nconns; i++) {
        cs[i].buf = malloc(BUFSZ);
        cs[i].idx = i;
        if (!cs[i].buf || open_conn(&cs[i]) < 0)
            die("connect");
    }
    struct epoll_event evs[256];
    uint64_t deadline = now_ns() + 5000000000ull;
    while (connected < nconns) {
        int k = epoll_wait(ep, evs, 256, 100);
        for (int i = 0; i < k; i++) {
            conn_t *c = evs[i].data.ptr;
            int err = 0;
            socklen_t l = sizeof err;
            getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
            if (err) {
                errno = err;
                die("connect");
            }
            if (c->state == C_CONNECTING) {
                c->state = C_IDLE;
                want_out(c, 0);
                idle[nidle++] = c->idx;
                connected++;
            }
        }
        if (now_ns() > deadline) {
            errno = ETIMEDOUT;
            die("connect");
        }
    }
    uint64_t interval = (uint64_t)(1e9 / rate);
    long long total = (long long)((warm + dur) * rate), nwarm = (long long)(warm * rate);
    size_t cap = (size_t)(total - nwarm) + 16;
    uint64_t *lat = malloc(cap * sizeof *lat), *ttfb = malloc(cap * sizeof *ttfb), *lag = malloc(cap * sizeof *lag);
    size_t nlat = 0, nttfb = 0, nlag = 0;
    if (!lat || !ttfb || !lag)
        die("malloc");
    struct epoll_event tev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &tev);
    uint64_t t0 = now_ns() + 1000000ull, tend = t0 + (uint64_t)total * interval;
    uint64_t hard = tend + 10000000000ull, first_measured = t0 + (uint64_t)nwarm * interval, last_done = 0;
    long long next = 0, inflight = 0;
    for (;;) {
        uint64_t now = now_ns();
        long long due = now < t0 ? 0 : (long long)((now - t0) / interval) + 1;
        if (due > total)
            due = total;
        while (next < due && nidle > 0) {
            conn_t *c = &cs[idle[--nidle]];
            uint64_t d = t0 + (uint64_t)next * interval;
            if (send_req(c, d) < 0) {
                if (next >= nwarm)
                    n_eof_err++;
                close_conn(c);
                if (open_conn(c) < 0)
                    die("reconnect");
            } else {
                inflight++;
                if (next >= nwarm && nlag < cap)
                    lag[nlag++] = c->sent - d;
            }
            next++;
        }
        if (next >= total && inflight == 0)
            break;
        if (now > hard)
            break;
        arm_timer(next < total && next >= due ? t0 + (uint64_t)next * interval : 0);
        int k = epoll_wait(ep, evs, 256, next < due ? 50 : 200);
        for (int i = 0; i < k; i++) {
            conn_t *c = evs[i].data.ptr;
            if (!c) {
                uint64_t x;
                (void)!read(tfd, &x, sizeof x);
                continue;
            }
            if (c->state == C_CONNECTING) {
                int err = 0;
                socklen_t l = sizeof err;
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
                if (err) {
                    n_conn_err++;
                    close_conn(c);
                    if (open_conn(c) < 0)
                        die("reconnect");
                    continue;
                }
                c->state = C_IDLE;
                want_out(c, 0);
                idle[nidle++] = (int)(c - cs);
                continue;
            }
            if ((evs[i].events & EPOLLOUT) && c->state == C_BUSY && c->outoff < tg.reqlen) {
                if (flush_req(c) < 0)
                    goto fail;
            }
            if (!(evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
                continue;
            int eof, r;
            if (c->state != C_BUSY) { /* idle connection closed by the server */
                char tmp[64];
                ssize_t got = recv(c->fd, tmp, sizeof tmp, 0);
                if (got == 0 || (got < 0 && errno != EAGAIN)) {
                    for (int j = 0; j < nidle; j++)
                        if (idle[j] == (int)(c - cs)) {
                            idle[j] = idle[--nidle];
                            break;
                        }
                    close_conn(c);
                    if (open_conn(c) < 0)
                        die("reconnect");
                }
                continue;
            }
            r = on_readable(c, &eof);
            if (r == 0)
                continue;
            if (r < 0)
                goto fail;
            /* complete */
            inflight--;
            {
                uint64_t t = now_ns();
                last_done = t;
                if (c->due >= first_measured) {
                    if (c->h.status == 200) {
                        lat[nlat++] = t - c->due;
                        if (c->got_first)
                            ttfb[nttfb++] = c->first - c->due;
                    } else {
                        n_status_err++;
                        last_bad_status = c->h.status;
                    }
                }
            }
            if (c->h.close_after || eof) {
                close_conn(c);
                if (open_conn(c) < 0)
                    die("reconnect");
            } else {
                c->state = C_IDLE;
                idle[nidle++] = (int)(c - cs);
            }
            continue;
        fail:
            inflight--;
            if (c->due >= first_measured)
                n_eof_err++;
            close_conn(c);
            if (open_conn(c) < 0)
                die("reconnect");
        }
    }
    qsort(lat, nlat, sizeof *lat, cmp_u64);
    qsort(ttfb, nttfb, sizeof *ttfb, cmp_u64);
    qsort(lag, nlag, sizeof *lag, cmp_u64);
    double span = (double)((last_done > first_measured ? last_done : tend) - first_measured) / 1e9;
    printf("rate=%.0f requests=%zu errors=%lld unfinished=%lld achieved=%.0f p50_ms=%.3f p99_ms=%.3f "
           "ttfb_p50_ms=%.3f ttfb_p99_ms=%.3f lag_p99_ms=%.3f",
           rate, nlat, n_status_err + n_eof_err + n_conn_err, inflight + (total - next),
           span > 0 ? (double)nlat / span : 0, pct_ms(lat, nlat, 0.50), pct_ms(lat, nlat, 0.99),
           pct_ms(ttfb, nttfb, 0.50), pct_ms(ttfb, nttfb, 0.99), pct_ms(lag, nlag, 0.99));
    if (n_status_err)
        printf(" last_bad_status=%d", last_bad_status);
    printf("\n");
    return 0;
}

/* ------------------------------------------------------------------ hold */
static int run_hold(int n, int ramp, double open_to, double hold)
{
    conn_t *cs = calloc((size_t)n, sizeof *cs);
    if (!cs)
        die("calloc");
    int started = 0, opening = 0, open = 0, failed = 0;
    uint64_t *ttfc = malloc(sizeof(uint64_t) * (size_t)n);
    size_t nttfc = 0;
    if (!ttfc)
        die("malloc");
    long long fail_connect = 0, fail_status = 0, fail_closed = 0, fail_other = 0;
    int bad_status = 0;
    struct epoll_event evs[512];
    uint64_t t0 = now_ns(), open_deadline = t0 + (uint64_t)(open_to * 1e9), ready_at = 0, hold_end = 0;
    for (;;) {
        while (!ready_at && opening < ramp && started < n) {
            conn_t *c = &cs[started++];
            c->buf = malloc(BUFSZ);
            if (!c->buf)
                die("malloc");
            if (open_conn(c) < 0) {
                fail_connect++;
                failed++;
                free(c->buf);
                c->buf = NULL;
                c->state = C_DEAD;
                if (errno == EMFILE || errno == ENFILE) {
                    fprintf(stderr, "loadgen: out of file descriptors after %d streams\n", started);
                    n = started; /* stop opening */
                }
                continue;
            }
            opening++;
        }
        uint64_t now = now_ns();
        if (!ready_at && (open + failed >= n || now > open_deadline)) {
            ready_at = now;
            hold_end = now + (uint64_t)(hold * 1e9);
            qsort(ttfc, nttfc, sizeof *ttfc, cmp_u64);
            printf("READY open=%d failed=%d pending=%d open_ms=%.0f ttfc_p50_ms=%.3f ttfc_p99_ms=%.3f\n", open,
                   failed, opening, (double)(now - t0) / 1e6, pct_ms(ttfc, nttfc, 0.50), pct_ms(ttfc, nttfc, 0.99));
            fflush(stdout);
        }
        if (ready_at && now >= hold_end)
            break;
        int k = epoll_wait(ep, evs, 512, 100);
        for (int i = 0; i < k; i++) {
            conn_t *c = evs[i].data.ptr;
            if (c->state == C_CONNECTING) {
                int err = 0;
                socklen_t l = sizeof err;
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
                if (err) {
                    fail_connect++;
                    goto failed;
                }
                if (send_req(c, now_ns()) < 0) {
                    fail_connect++;
                    goto failed;
                }
                continue;
            }
            if ((evs[i].events & EPOLLOUT) && c->outoff < tg.reqlen) {
                if (flush_req(c) < 0) {
                    fail_other++;
                    goto failed;
                }
            }
            if (!(evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
                continue;
            {
                int eof, r = on_readable(c, &eof);
                if (c->state == C_BUSY && c->h.phase != H1_HEAD && c->h.status != 200) {
                    fail_status++;
                    bad_status = c->h.status;
                    goto failed;
                }
                if (c->state == C_BUSY && c->got_first) {
                    ttfc[nttfc++] = c->first - c->sent;
                    c->state = C_HELD;
                    opening--;
                    open++;
                }
                if (r == 0)
                    continue;
                if (c->state == C_HELD) { /* finished or closed while held */
                    n_ended++;
                    close_conn(c);
                    continue;
                }
                fail_closed++;
            }
        failed:
            if (c->state != C_HELD) {
                opening--;
                failed++;
            }
            close_conn(c);
        }
    }
    int still = 0;
    for (int i = 0; i < started; i++)
        if (cs[i].state == C_HELD)
            still++;
    printf("END open=%d still_open=%d ended=%lld failed=%d connect_err=%lld status_err=%lld "
           "closed_before_first_byte=%lld other=%lld",
           open, still, n_ended, failed, fail_connect, fail_status, fail_closed, fail_other);
    if (fail_status)
        printf(" last_bad_status=%d", bad_status);
    printf("\n");
    fflush(stdout);
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: loadgen rate|hold --port P --path PATH --body JSON [--header 'K: V']...\n"
                    "  rate: --rate R --duration S [--warmup S] [--conns C]\n"
                    "  hold: --streams N [--ramp K] [--open-timeout S] [--hold S]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    if (argc < 2)
        usage();
    const char *mode = argv[1];
    double rate = 0, dur = 5, warm = 1, open_to = 60, hold = 5;
    int conns = 32, streams = 0, ramp = 256;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            usage();
        i++;
        int took = h1_target_arg(&tg, a, v);
        if (took < 0)
            usage();
        else if (took)
            continue;
        else if (!strcmp(a, "--rate"))
            rate = atof(v);
        else if (!strcmp(a, "--duration"))
            dur = atof(v);
        else if (!strcmp(a, "--warmup"))
            warm = atof(v);
        else if (!strcmp(a, "--conns"))
            conns = atoi(v);
        else if (!strcmp(a, "--streams"))
            streams = atoi(v);
        else if (!strcmp(a, "--ramp"))
            ramp = atoi(v);
        else if (!strcmp(a, "--open-timeout"))
            open_to = atof(v);
        else if (!strcmp(a, "--hold"))
            hold = atof(v);
        else
            usage();
    }
    if (h1_target_ready(&tg, "loadgen") < 0)
        return 2;
    signal(SIGPIPE, SIG_IGN);
    ep = epoll_create1(EPOLL_CLOEXEC);
    tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (ep < 0 || tfd < 0)
        die("epoll/timerfd");
    if (!strcmp(mode, "rate")) {
        if (rate <= 0 || dur <= 0 || warm < 0 || conns <= 0)
            usage();
        return run_rate(rate, dur, warm, conns);
    }
    if (!strcmp(mode, "hold")) {
        if (streams <= 0 || ramp <= 0)
            usage();
        return run_hold(streams, ramp, open_to, hold);
    }
    usage();
    return 2;
}
