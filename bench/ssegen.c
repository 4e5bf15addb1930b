/*
 * bench/ssegen.c — the client of bench/llm: N concurrent token streams, open
 * loop, against a target that relays bench/ssemock.c's events. Linux only:
 * one thread, one epoll loop, plain non-blocking sockets.
 *
 *   ssegen --port P --path PATH --body JSON [--header 'K: V']...
 *          --streams N --events K [--interval-ms E] [--ramp-s R]
 *          [--timeout-s T] [--pids P,P..] [--upstream-pids P,..] [--host 127.x.x.x]
 *
 * Stream i is due at t0 + i*R/N (staggered starts) and starts then whatever
 * the others do: one connection, one POST, the answer read to its end (K
 * events and `data: [DONE]`), then closed. For every event the arrival time
 * minus its "t" (the emitter's CLOCK_MONOTONIC write time) is the delay
 * through the path; "d" and "i" give the emitter's own lag and the sequence.
 *
 * The steady phase runs from the moment every stream has started and got its
 * first event (or failed) — not before t0 + R + 0.2 s, and not after half of
 * what is left, if some never get one — until t0 + (K-1)*E, when the first
 * stream's last event is due: all N streams open, no stream starting or
 * ending (steady_open: connections held then; steady_waiting: of those, still
 * without a first event). Over it this measures the CPU time (utime + stime in
 * /proc, all threads) of --pids and of --upstream-pids and its own, each
 * divided by the events that arrived; the largest VmRSS of --pids (sampled
 * every 200 ms); the delay distribution; and the CPU the rest of the machine
 * used. Prints one line, "RESULT key=value ...", described in docs/benchmarks.md.
 * Bounded: everything stops at t0 + R + (K-1)*E + T (default T 10 s) and
 * streams still open then count as errors (err_timeout).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "h1client.h"

#define BUFSZ 4096  /* receive buffer per stream */
#define EV_MAX 4096 /* one SSE event */
#define MAXPIDS 16
#define NBUCKETS 29801
#define MS 1000000ull

enum { S_WAIT, S_CONNECTING, S_READING, S_DONE, S_FAILED };

typedef struct {
    int fd, state, out_on, events, last_i, done_seen, got_first;
    uint64_t due;
    size_t outoff, blen, evlen;
    h1_resp_t h;
    char *buf, *ev;
} stream_t;

/* Log-linear histogram of nanosecond values: 1 µs steps to 10 ms, 100 µs to
 * 1 s, 10 ms to 100 s. */
typedef struct {
    uint64_t n, max;
    uint32_t b[NBUCKETS];
} hist_t;

static h1_target_t tg;
static int ep, n_events = 400;
static int pids[MAXPIDS], npids, up_pids[MAXPIDS], nup_pids;
static uint64_t arrival, interval_ns = 25 * MS;
static int steady_on;
static int active, waiting; /* streams open; of those, without their first event yet */
static long long n_completed, n_opened, ev_total, ev_steady, err_connect, err_status, err_closed,
    err_incomplete, err_gap, err_event, err_timeout;
static int last_status;
static hist_t h_delay, h_delay_all, h_uplag, h_ttfe, h_startlag;

static void die(const char *m)
{
    fprintf(stderr, "ssegen: %s: %s\n", m, strerror(errno));
    exit(1);
}

static void hist_add(hist_t *h, uint64_t v)
{
    size_t i;
    if (v < 10 * MS)
        i = (size_t)(v / 1000);
    else if (v < 1000 * MS)
        i = 10000 + (size_t)((v - 10 * MS) / 100000);
    else if (v < 100000 * MS)
        i = 19900 + (size_t)((v - 1000 * MS) / (10 * MS));
    else
        i = NBUCKETS - 1;
    h->b[i]++;
    h->n++;
    if (v > h->max)
        h->max = v;
}

/* The p-quantile in ms (the middle of its bucket), -1 when empty. */
static double hist_ms(const hist_t *h, double p)
{
    if (!h->n)
        return -1;
    uint64_t want = (uint64_t)(p * (double)(h->n - 1)) + 1, seen = 0;
    for (size_t i = 0; i < NBUCKETS; i++) {
        if ((seen += h->b[i]) < want)
            continue;
        if (i < 10000)
            return ((double)i + 0.5) / 1000.0;
        if (i < 19900)
            return 10.0 + ((double)(i - 10000) + 0.5) / 10.0;
        return 1000.0 + ((double)(i - 19900) + 0.5) * 10.0;
    }
    return (double)h->max / 1e6;
}

/* ------------------------------------------------------------ /proc */
static int parse_pids(const char *s, int *out)
{
    int n = 0;
    while (*s && n < MAXPIDS) {
        out[n++] = atoi(s);
        const char *c = strchr(s, ',');
        if (!c)
            break;
        s = c + 1;
    }
    return n;
}

/* Reads /proc/PID/WHAT into buf (NUL-terminated); its length, 0 if gone. */
static size_t read_proc(int pid, const char *what, char *buf, size_t cap)
{
    char fn[64];
    snprintf(fn, sizeof fn, "/proc/%d/%s", pid, what);
    FILE *f = fopen(fn, "r");
    size_t len = f ? fread(buf, 1, cap - 1, f) : 0;
    if (f)
        fclose(f);
    buf[len] = 0;
    return len;
}

/* utime + stime of the processes, in clock ticks (all threads, live or not). */
static long long cpu_ticks(const int *p, int n)
{
    long long t = 0;
    for (int i = 0; i < n; i++) {
        char line[1024], *s;
        unsigned long long ut, st;
        /* after ") ": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
         * utime stime */
        if (read_proc(p[i], "stat", line, sizeof line) && (s = strrchr(line, ')')) &&
            sscanf(s + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) == 2)
            t += (long long)(ut + st);
    }
    return t;
}

static long long rss_kb(const int *p, int n)
{
    long long kb = 0;
    for (int i = 0; i < n; i++) {
        char buf[4096], *v;
        if (read_proc(p[i], "status", buf, sizeof buf) && (v = strstr(buf, "\nVmRSS:")))
            kb += atoll(v + 7);
    }
    return kb;
}

static long long self_us(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (long long)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000 + ru.ru_utime.tv_usec +
           ru.ru_stime.tv_usec;
}

static long long machine_busy_ticks(void)
{
    unsigned long long u = 0, ni = 0, sy = 0;
    FILE *f = fopen("/proc/stat", "r");
    if (f) {
        if (fscanf(f, "cpu %llu %llu %llu", &u, &ni, &sy) != 3)
            u = ni = sy = 0;
        fclose(f);
    }
    return (long long)(u + ni + sy);
}

/* ------------------------------------------------------------ events */
static long long member(const char *p, size_t n, const char *key)
{
    const char *k = memmem(p, n, key, strlen(key));
    return k ? strtoll(k + strlen(key), NULL, 10) : -1;
}

static void on_event(stream_t *s, const char *p, size_t n)
{
    if (n >= 12 && memcmp(p, "data: [DONE]", 12) == 0) {
        s->done_seen = 1;
        return;
    }
    long long t = member(p, n, "\"t\":"), d = member(p, n, "\"d\":"), i = member(p, n, "\"i\":");
    if (t < 0) {
        if (memmem(p, n, "\"error\"", 7))
            err_event++; /* the relay reported a failure in-stream */
        return;          /* e.g. a usage chunk */
    }
    uint64_t delay = arrival > (uint64_t)t ? arrival - (uint64_t)t : 0;
    if (!s->got_first) {
        s->got_first = 1;
        n_opened++;
        waiting--;
        hist_add(&h_ttfe, arrival - s->due);
    }
    if (i != s->last_i + 1)
        err_gap++;
    s->last_i = (int)i;
    s->events++;
    ev_total++;
    hist_add(&h_delay_all, delay);
    if (steady_on) {
        ev_steady++;
        hist_add(&h_delay, delay);
        if (d >= 0) /* events sent up to --slack-us early count as on time */
            hist_add(&h_uplag, t > d ? (uint64_t)(t - d) : 0);
    }
}

/* Decoded body bytes: split into events at blank lines. */
static void on_body(void *ud, const char *p, size_t n)
{
    stream_t *s = ud;
    while (n) {
        size_t take = EV_MAX - s->evlen < n ? EV_MAX - s->evlen : n;
        memcpy(s->ev + s->evlen, p, take);
        s->evlen += take;
        p += take;
        n -= take;
        char *e;
        size_t off = 0;
        while ((e = memmem(s->ev + off, s->evlen - off, "\n\n", 2))) {
            on_event(s, s->ev + off, (size_t)(e - s->ev - off) + 2);
            off = (size_t)(e - s->ev) + 2;
        }
        memmove(s->ev, s->ev + off, s->evlen - off);
        s->evlen -= off;
        if (s->evlen == EV_MAX) /* an event this large is not ours: drop it */
            s->evlen = 0;
    }
}

/* ------------------------------------------------------------ streams */
static void finish(stream_t *s, int state)
{
    if (s->fd >= 0) {
        epoll_ctl(ep, EPOLL_CTL_DEL, s->fd, NULL);
        close(s->fd);
        s->fd = -1;
    }
    free(s->buf);
    free(s->ev);
    s->buf = s->ev = NULL;
    if (!s->got_first)
        waiting--;
    s->state = state;
    active--;
    if (state == S_DONE)
        n_completed++;
}

static void start(stream_t *s, uint64_t now)
{
    hist_add(&h_startlag, now - s->due);
    active++;
    waiting++;
    s->state = S_CONNECTING;
    s->last_i = -1;
    h1_reset(&s->h);
    s->buf = malloc(BUFSZ);
    s->ev = malloc(EV_MAX);
    s->fd = s->buf && s->ev ? h1_connect(&tg) : -1;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = s};
    s->out_on = 1;
    if (s->fd < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, s->fd, &ev) < 0) {
        err_connect++;
        finish(s, S_FAILED);
    }
}

static void want_out(stream_t *s, int on)
{
    if (s->out_on == on)
        return;
    s->out_on = on;
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0u), .data.ptr = s};
    epoll_ctl(ep, EPOLL_CTL_MOD, s->fd, &ev);
}

/* The answer ended (or the connection did): was it a whole stream? */
static void complete(stream_t *s)
{
    if (s->h.status != 200) {
        err_status++;
        last_status = s->h.status;
        finish(s, S_FAILED);
    } else if (!s->done_seen || s->events != n_events) {
        err_incomplete++;
        finish(s, S_FAILED);
    } else {
        finish(s, S_DONE);
    }
}

static void on_io(stream_t *s, uint32_t events)
{
    if (s->state == S_CONNECTING) {
        int err = 0;
        socklen_t l = sizeof err;
        getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &l);
        if (err) {
            err_connect++;
            finish(s, S_FAILED);
            return;
        }
        s->state = S_READING;
    }
    if ((events & EPOLLOUT) && s->outoff < tg.reqlen) {
        ssize_t w = send(s->fd, tg.req + s->outoff, tg.reqlen - s->outoff, MSG_NOSIGNAL);
        if (w < 0 && errno != EAGAIN) {
            err_connect++;
            finish(s, S_FAILED);
            return;
        }
        s->outoff += w > 0 ? (size_t)w : 0;
    }
    want_out(s, s->outoff < tg.reqlen);
    if (!(events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
        return;
    for (;;) {
        ssize_t r = recv(s->fd, s->buf + s->blen, BUFSZ - s->blen, 0);
        if (r < 0 && errno == EAGAIN)
            return;
        arrival = now_ns();
        if (r <= 0) {
            if (s->h.phase == H1_EOF)
                complete(s);
            else {
                err_closed++;
                finish(s, S_FAILED);
            }
            return;
        }
        s->blen += (size_t)r;
        int rc = h1_parse(&s->h, s->buf, &s->blen, BUFSZ, on_body, s);
        if (rc < 0 || (s->h.phase != H1_HEAD && s->h.status != 200)) {
            complete(s); /* counts the status, or an incomplete stream */
            return;
        }
        if (rc == 1) {
            complete(s);
            return;
        }
    }
}

/* ------------------------------------------------------------ main loop */
typedef struct {
    uint64_t at;
    long long cpu, up_cpu, self, busy, events;
} mark_t;

static void take_mark(mark_t *m, uint64_t now)
{
    m->at = now;
    m->cpu = cpu_ticks(pids, npids);
    m->up_cpu = cpu_ticks(up_pids, nup_pids);
    m->self = self_us();
    m->busy = machine_busy_ticks();
    m->events = ev_total;
}

static void report(int n, mark_t *b, mark_t *e, int steady_open, int steady_wait,
                   long long rss_before, long long rss_steady)
{
    double tick_us = 1e6 / (double)sysconf(_SC_CLK_TCK), secs = 0, evs = 0;
    double cpu = 0, up = 0, self = 0, other = 0;
    if (b->at && e->at > b->at) {
        secs = (double)(e->at - b->at) / 1e9;
        evs = (double)(e->events - b->events);
        cpu = (double)(e->cpu - b->cpu) * tick_us;
        up = (double)(e->up_cpu - b->up_cpu) * tick_us;
        self = (double)(e->self - b->self);
        double busy = (double)(e->busy - b->busy) * tick_us,
               ncpu = (double)sysconf(_SC_NPROCESSORS_ONLN);
        other = (busy - cpu - up - self) / (secs * 1e6 * ncpu) * 100;
        other = other < 0 ? 0 : other;
    }
    long long errors =
        err_connect + err_status + err_closed + err_incomplete + err_gap + err_event + err_timeout;
    printf(
        "RESULT streams=%d opened=%lld completed=%lld errors=%lld err_connect=%lld err_status=%lld "
        "err_closed=%lld err_incomplete=%lld err_gap=%lld err_event=%lld err_timeout=%lld "
        "last_status=%d "
        "events=%lld steady_s=%.2f steady_open=%d steady_waiting=%d steady_events=%.0f "
        "steady_eps=%.0f "
        "offered_eps=%.0f "
        "cpu_us_per_event=%.2f up_cpu_us_per_event=%.2f self_cpu_us_per_event=%.2f cpu_pct=%.1f "
        "other_pct=%.0f "
        "rss_before_kb=%lld rss_steady_kb=%lld delay_p50_ms=%.3f delay_p99_ms=%.3f "
        "delay_p999_ms=%.3f "
        "delay_max_ms=%.3f delay_all_p99_ms=%.3f uplag_p99_ms=%.3f ttfe_p50_ms=%.3f "
        "ttfe_p99_ms=%.3f "
        "start_lag_p99_ms=%.3f\n",
        n, n_opened, n_completed, errors, err_connect, err_status, err_closed, err_incomplete,
        err_gap, err_event, err_timeout, last_status, ev_total, secs, steady_open, steady_wait, evs,
        secs > 0 ? evs / secs : 0, n * 1e9 / (double)interval_ns, evs > 0 ? cpu / evs : 0,
        evs > 0 ? up / evs : 0, evs > 0 ? self / evs : 0, secs > 0 ? cpu / (secs * 1e4) : 0, other,
        rss_before, rss_steady, hist_ms(&h_delay, 0.5), hist_ms(&h_delay, 0.99),
        hist_ms(&h_delay, 0.999), (double)h_delay.max / 1e6, hist_ms(&h_delay_all, 0.99),
        hist_ms(&h_uplag, 0.99), hist_ms(&h_ttfe, 0.5), hist_ms(&h_ttfe, 0.99),
        hist_ms(&h_startlag, 0.99));
    fflush(stdout);
}

static int run(int n, double ramp_s, double timeout_s)
{
    stream_t *ss = calloc((size_t)n, sizeof *ss);
    struct epoll_event evs[1024];
    if (!ss)
        die("calloc");
    uint64_t t0 = now_ns() + 100 * MS, ramp = (uint64_t)(ramp_s * 1e9);
    uint64_t steady_from = t0 + ramp + 200 * MS,
             steady_to = t0 + (uint64_t)(n_events - 1) * interval_ns;
    uint64_t force_from =
        steady_from + (steady_to > steady_from ? (steady_to - steady_from) / 2 : 0);
    uint64_t hard =
        t0 + ramp + (uint64_t)(n_events - 1) * interval_ns + (uint64_t)(timeout_s * 1e9);
    uint64_t next_rss = 0;
    for (int i = 0; i < n; i++) {
        ss[i].fd = -1;
        ss[i].due = t0 + (n > 1 ? ramp * (uint64_t)i / (uint64_t)(n - 1) : 0);
    }
    long long rss_before = rss_kb(pids, npids), rss_steady = 0;
    mark_t b = {0}, e = {0};
    int next = 0, steady_open = 0, steady_wait = 0;
    for (;;) {
        uint64_t now = now_ns();
        while (next < n && ss[next].due <= now)
            start(&ss[next++], now);
        if (!b.at && now >= steady_from && now < steady_to && next == n &&
            (!waiting || now >= force_from)) {
            take_mark(&b, now);
            steady_on = 1;
            steady_open = active; /* connections held, first event or not */
            steady_wait = waiting;
            next_rss = now;
        }
        if (steady_on && now >= next_rss) {
            long long r = rss_kb(pids, npids);
            rss_steady = r > rss_steady ? r : rss_steady;
            next_rss = now + 200 * MS;
        }
        if (steady_on && now >= steady_to) {
            take_mark(&e, now);
            steady_on = 0;
        }
        if ((next == n && active == 0) || now >= hard)
            break;
        uint64_t wake = now + 100 * MS;
        if (next < n && ss[next].due < wake)
            wake = ss[next].due;
        if (steady_on && next_rss < wake)
            wake = next_rss;
        if (!e.at && steady_to > now && steady_to < wake)
            wake = steady_to;
        int k = epoll_wait(ep, evs, 1024, (int)((wake - now + MS - 1) / MS));
        for (int i = 0; i < k; i++) {
            stream_t *s = evs[i].data.ptr;
            if (s->state == S_CONNECTING || s->state == S_READING)
                on_io(s, evs[i].events);
        }
    }
    if (steady_on)
        take_mark(&e, now_ns());
    for (int i = 0; i < next; i++)
        if (ss[i].state == S_CONNECTING || ss[i].state == S_READING) {
            err_timeout++;
            finish(&ss[i], S_FAILED);
        }
    err_timeout += n - next;
    report(n, &b, &e, steady_open, steady_wait, rss_before, rss_steady);
    free(ss);
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: ssegen --port P --path PATH --body JSON [--header 'K: V']... --streams "
                    "N --events K\n"
                    "              [--interval-ms E] [--ramp-s R] [--timeout-s T] [--pids P,..]\n"
                    "              [--upstream-pids P,..] [--host 127.x.x.x]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    int n = 0;
    double ramp = 2.5, timeout = 10;
    for (int i = 1; i < argc; i += 2) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int took = v ? h1_target_arg(&tg, a, v) : -1;
        if (took < 0)
            usage();
        else if (took)
            continue;
        else if (!strcmp(a, "--streams"))
            n = atoi(v);
        else if (!strcmp(a, "--events"))
            n_events = atoi(v);
        else if (!strcmp(a, "--interval-ms"))
            interval_ns = (uint64_t)(atof(v) * 1e6);
        else if (!strcmp(a, "--ramp-s"))
            ramp = atof(v);
        else if (!strcmp(a, "--timeout-s"))
            timeout = atof(v);
        else if (!strcmp(a, "--pids"))
            npids = parse_pids(v, pids);
        else if (!strcmp(a, "--upstream-pids"))
            nup_pids = parse_pids(v, up_pids);
        else
            usage();
    }
    if (n <= 0 || n_events <= 0 || ramp < 0 || timeout <= 0 || !interval_ns)
        usage();
    if (h1_target_ready(&tg, "ssegen") < 0)
        return 2;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        (rlim_t)n + 64 > rl.rlim_cur) {
        fprintf(stderr, "ssegen: %d streams do not fit the descriptor limit %llu\n", n,
                (unsigned long long)rl.rlim_cur);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    if ((ep = epoll_create1(EPOLL_CLOEXEC)) < 0)
        die("epoll_create1");
    return run(n, ramp, timeout);
}
