/*
 * logsink — per-producer queues drained by one writer thread (see logsink.h).
 *
 * Each producer appends whole lines ("...\n") to its own growable buffer
 * under its own mutex, which only the writer (and a reopen request) also
 * takes. The writer swaps a producer's buffer for an empty spare (so the
 * producer keeps appending while the batch is written), frames it in chain
 * mode, writes it with as few write(2) calls as the kernel allows, then gives
 * the bytes back to the producer's bound. The writer sleeps on a condition
 * variable when every queue is empty; `sleeping` tells producers when a
 * signal is needed, so the common write takes no lock but the producer's own.
 *
 * Reopen cuts every queue at one instant: holding all producer mutexes, it
 * moves each queue's lines aside (`old`). The writer, on finding a cut,
 * writes every producer's old lines to the old file, reopens, and only then
 * takes newer lines, so what was queued before the request never lands in
 * the new file and a producer's lines stay in order.
 */
#include "meridian/logsink.h"

#include "meridian/audit.h"
#include "meridian/json_span.h"
#include "meridian/log.h"
#include "meridian/sha256.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* More than the bytes framing adds to a producer's object: 102 in front
 * ({"seq":<up to 20 digits>,"prev":"<64 hex>",), the hash suffix and the
 * newline at the end, less the two braces: 176. */
#define FRAME_MAX 192
/* The chain head is logged at most this often while records are written
 * (and at every reopen and at close), to be kept off-host. */
#define HEAD_EVERY_NS (60ull * 1000000000ull)

/* Whole lines, each ending in '\n'. */
typedef struct queue {
    char *buf;
    size_t len;
    size_t cap;
    size_t lines;
} queue_t;

/* One producer. Aligned so two producers never share a cache line. */
typedef struct producer {
    _Alignas(64) pthread_mutex_t mu;
    queue_t q;      /* lines queued since the writer last took them */
    queue_t old;    /* with has_old: the lines queued before a reopen request */
    bool has_old;   /* a reopen request cut this queue; the writer has not acted on it */
    size_t pending; /* bytes in q and old plus bytes the writer took and has not written */
} producer_t;

struct mr_logsink {
    char *path;
    char *name;
    bool is_stdout;
    bool chain;
    size_t queue_bytes;
    unsigned n;
    producer_t *prod;

    pthread_t thread;
    pthread_mutex_t mu; /* with cond: the writer's sleep */
    pthread_cond_t cond;
    bool stop;            /* under mu */
    atomic_bool sleeping; /* the writer waits (or is about to) on cond */
    atomic_bool reopen;   /* reopen requested */

    /* Writer-thread only after open. */
    int fd;
    queue_t spare; /* empty: swapped in for a queue the writer takes */
    char *out;     /* chain mode: the framed batch */
    size_t out_cap;
    uint64_t seq;                       /* of the last record written */
    uint8_t prev[MR_SHA256_DIGEST_LEN]; /* digest of the last record's line */
    bool torn;                          /* the file ends in a cut line we could not remove */
    uint64_t burst_errors;              /* failed writes since the last success */
    uint64_t head_seq;                  /* chain mode: the seq last logged as the head */
    uint64_t head_ns;                   /* when (CLOCK_MONOTONIC) */

    atomic_uint_fast64_t written;
    atomic_uint_fast64_t dropped;
    atomic_uint_fast64_t write_errors;
};

/* ---- records ------------------------------------------------------------ */

/* What a producer may hand to a chain sink: exactly one JSON object with at
 * least one member, braces at both ends (the writer splices inside them)
 * and none of the members the framing adds (a parser would let a duplicate
 * override them, breaking the record). */
static int check_object(const char *line, size_t len)
{
    static const char *const reserved[] = {"seq", "prev", "hash"};
    mr_json_span_t span;
    size_t i = 1;

    if (len < 2 || line[0] != '{' || line[len - 1] != '}')
        return -1;
    while (line[i] == ' ' || line[i] == '\t' || line[i] == '\r')
        i++;
    if (line[i] == '}' || mr_json_validate(line, len) < 0)
        return -1;
    for (size_t k = 0; k < sizeof(reserved) / sizeof(reserved[0]); k++) {
        if (mr_json_find_member(line, len, reserved[k], &span) == 0)
            return -1;
    }
    return 0;
}

/* Frames the producer object obj[0..len) as the next record at out (room for
 * len + FRAME_MAX bytes); returns the bytes written, newline included. */
static size_t frame_record(mr_logsink_t *s, const char *obj, size_t len, char *out)
{
    char hex[MR_SHA256_HEX_LEN + 1];
    uint8_t d[MR_SHA256_DIGEST_LEN];
    mr_sha256_t c, whole;
    size_t n;

    mr_sha256_hex(s->prev, hex);
    n = (size_t)snprintf(out, FRAME_MAX, "{\"seq\":%" PRIu64 ",\"prev\":\"%s\",", s->seq + 1, hex);
    memcpy(out + n, obj + 1, len - 2);
    n += len - 2;
    mr_sha256_init(&c);
    mr_sha256_update(&c, out, n);
    /* The next prev covers the whole line: continue a copy of the context
     * past the hash rather than hashing the line twice. */
    whole = c;
    mr_sha256_final(&c, d);
    mr_sha256_hex(d, hex);
    memcpy(out + n, MR_AUDIT_HASH_KEY, MR_AUDIT_HASH_KEY_LEN);
    memcpy(out + n + MR_AUDIT_HASH_KEY_LEN, hex, MR_SHA256_HEX_LEN);
    memcpy(out + n + MR_AUDIT_HASH_KEY_LEN + MR_SHA256_HEX_LEN, "\"}", 2);
    mr_sha256_update(&whole, out + n, MR_AUDIT_HASH_SUFFIX_LEN);
    mr_sha256_final(&whole, s->prev);
    n += MR_AUDIT_HASH_SUFFIX_LEN;
    out[n++] = '\n';
    s->seq++;
    return n;
}

/* ---- the writer --------------------------------------------------------- */

static const char *errstr(int e, char *buf, size_t len)
{
    return strerror_r(e, buf, len); /* the GNU variant: thread-safe, returns the text */
}

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The chain head in the daemon's log, where it can be shipped off-host: the
 * seq of the last record written and the digest the next record's prev
 * will carry (what --verify-audit prints as "head" and takes with --after). */
static void log_head(mr_logsink_t *s, const char *why)
{
    char hex[MR_SHA256_HEX_LEN + 1];

    if (!s->chain || s->seq == 0)
        return;
    mr_sha256_hex(s->prev, hex);
    mr_info("%s %s: chain head seq %" PRIu64 " %s (%s)", s->name, s->path, s->seq, hex, why);
    s->head_seq = s->seq;
    s->head_ns = now_ns();
}

/* A head not logged yet, and the time to log it. */
static bool head_due(const mr_logsink_t *s, uint64_t *deadline_ns)
{
    *deadline_ns = s->head_ns + HEAD_EVERY_NS;
    return s->chain && s->seq != s->head_seq;
}

static size_t count_lines(const char *p, size_t n)
{
    const char *end = p + n;
    size_t k = 0;

    while ((p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
        k++;
        p++;
    }
    return k;
}

/* Writes buf[0..len) whole unless an error stops it; returns the bytes that
 * went out and sets *e to the errno (0 when all went out). A non-blocking fd
 * (a stdout inherited that way) is waited for: blocking is this thread's job. */
static size_t write_all(int fd, const char *buf, size_t len, int *e)
{
    size_t done = 0;

    *e = 0;
    while (done < len) {
        ssize_t n = write(fd, buf + done, len - done);
        if (n > 0) {
            done += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd pfd = {.fd = fd, .events = POLLOUT};
            if (poll(&pfd, 1, -1) >= 0 || errno == EINTR)
                continue;
        }
        *e = n < 0 ? errno : EIO; /* write(2) returning 0 would loop forever */
        break;
    }
    return done;
}

static void write_failed(mr_logsink_t *s, int e)
{
    char eb[128];

    atomic_fetch_add_explicit(&s->write_errors, 1, memory_order_relaxed);
    if (s->burst_errors++ == 0)
        mr_warn("%s %s: write failed: %s; lines are dropped until a write succeeds", s->name,
                s->path, errstr(e, eb, sizeof(eb)));
}

/* A failed write left the start of a line at the end of the file: cut it
 * off again (these are bytes this thread just wrote, not evidence), or, when
 * the file cannot be truncated, start the next write on a fresh line. */
static void untear(mr_logsink_t *s, size_t cut)
{
    off_t end = lseek(s->fd, 0, SEEK_END);

    if (end >= (off_t)cut && ftruncate(s->fd, end - (off_t)cut) == 0)
        return;
    s->torn = true;
}

/* Writes a batch of whole lines. Returns how many bytes of it are in the
 * file as whole lines: all of them unless a write failed. */
static size_t emit(mr_logsink_t *s, const char *buf, size_t len, size_t lines)
{
    size_t done, whole;
    const char *nl;
    int e;

    if (s->torn) {
        if (write_all(s->fd, "\n", 1, &e) != 1) {
            write_failed(s, e);
            return 0;
        }
        s->torn = false;
    }
    done = write_all(s->fd, buf, len, &e);
    if (e == 0) {
        atomic_fetch_add_explicit(&s->written, lines, memory_order_relaxed);
        if (s->burst_errors) {
            mr_info("%s %s: writing again after %" PRIu64 " failed writes", s->name, s->path,
                    s->burst_errors);
            s->burst_errors = 0;
        }
        return len;
    }
    nl = done ? memrchr(buf, '\n', done) : NULL;
    whole = nl ? (size_t)(nl - buf) + 1 : 0;
    atomic_fetch_add_explicit(&s->written, count_lines(buf, whole), memory_order_relaxed);
    if (done > whole)
        untear(s, done - whole);
    write_failed(s, e);
    return whole;
}

/* Frames a batch of producer objects as records and writes them. When the
 * write fails, the chain rewinds to the last record that reached the file,
 * so the next record continues the file's chain, not the lost one's. */
static void emit_chain(mr_logsink_t *s, const char *batch, size_t len, size_t lines)
{
    size_t need = len + lines * FRAME_MAX, n = 0, whole;
    uint64_t seq0 = s->seq;
    uint8_t prev0[MR_SHA256_DIGEST_LEN];

    if (need > s->out_cap) {
        char *p = realloc(s->out, need);
        if (!p) {
            mr_warn("%s %s: out of memory framing %zu records; they are dropped", s->name, s->path,
                    lines);
            atomic_fetch_add_explicit(&s->dropped, lines, memory_order_relaxed);
            return;
        }
        s->out = p;
        s->out_cap = need;
    }
    memcpy(prev0, s->prev, sizeof(prev0));
    for (const char *p = batch, *end = batch + len; p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        n += frame_record(s, p, (size_t)(nl - p), s->out + n);
        p = nl + 1;
    }
    whole = emit(s, s->out, n, lines);
    if (whole == n)
        return;
    s->seq = seq0;
    memcpy(s->prev, prev0, sizeof(prev0));
    if (whole > 0) {
        const char *nl = memrchr(s->out, '\n', whole - 1);
        const char *last = nl ? nl + 1 : s->out;
        s->seq += count_lines(s->out, whole);
        mr_sha256(last, (size_t)(s->out + whole - 1 - last), s->prev);
    }
}

/* Closes an fd the sink opened; an audit file is synced first so a clean
 * shutdown or rotation leaves every record on disk. */
static void close_file(mr_logsink_t *s, int fd)
{
    char eb[128];

    if (s->chain && fdatasync(fd) < 0 && errno != EINVAL)
        mr_warn("%s %s: fdatasync: %s", s->name, s->path, errstr(errno, eb, sizeof(eb)));
    close(fd);
}

static void reopen_file(mr_logsink_t *s)
{
    int fd = open(s->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    char eb[128];

    if (fd < 0) {
        mr_warn("%s %s: cannot reopen: %s; still writing to the previous file", s->name, s->path,
                errstr(errno, eb, sizeof(eb)));
        return;
    }
    close_file(s, s->fd);
    s->fd = fd;
    s->torn = false;
}

/* Writes lines the writer took from producer q, gives their bytes back to
 * q's bound and keeps the emptied buffer as the next spare (one is enough:
 * the writer holds one batch at a time). */
static void write_taken(mr_logsink_t *s, producer_t *q, queue_t *b)
{
    if (b->len) {
        if (s->chain)
            emit_chain(s, b->buf, b->len, b->lines);
        else
            emit(s, b->buf, b->len, b->lines);
        pthread_mutex_lock(&q->mu);
        q->pending -= b->len;
        pthread_mutex_unlock(&q->mu);
    }
    b->len = b->lines = 0;
    free(s->spare.buf);
    s->spare = *b;
}

/* Acts on a reopen request: every producer's lines from before its cut go
 * to the old file, then the path is reopened. The request cut all queues at
 * once, so no line queued after it can already be in the old file. */
static void rotate(mr_logsink_t *s)
{
    for (unsigned i = 0; i < s->n; i++) {
        producer_t *q = &s->prod[i];
        queue_t b;

        /* `old` keeps no buffer between requests: they are rare. */
        pthread_mutex_lock(&q->mu);
        b = q->old;
        q->old = (queue_t){0};
        q->has_old = false;
        pthread_mutex_unlock(&q->mu);
        write_taken(s, q, &b);
    }
    log_head(s, "reopening the file");
    reopen_file(s);
}

/* Takes and writes every producer's queued lines once; false when there
 * were none. */
static bool flush_round(mr_logsink_t *s)
{
    bool any = false;

    for (unsigned i = 0; i < s->n; i++) {
        producer_t *q = &s->prod[i];
        queue_t b;

        /* A loop: another request may cut the queues while rotate() has
         * let go of this one's mutex, and the lines after that cut must
         * not be written before the lines it moved aside. */
        pthread_mutex_lock(&q->mu);
        while (q->has_old) {
            pthread_mutex_unlock(&q->mu);
            rotate(s);
            pthread_mutex_lock(&q->mu);
        }
        b = q->q;
        q->q = s->spare;
        s->spare = (queue_t){0};
        pthread_mutex_unlock(&q->mu);
        any |= b.len > 0;
        write_taken(s, q, &b);
    }
    return any;
}

static bool any_queued(mr_logsink_t *s)
{
    bool any = false;

    for (unsigned i = 0; i < s->n && !any; i++) {
        pthread_mutex_lock(&s->prod[i].mu);
        any = s->prod[i].q.len > 0 || s->prod[i].has_old;
        pthread_mutex_unlock(&s->prod[i].mu);
    }
    return any;
}

/* Sleeps until there is a line, a reopen or a stop, or a head is due to be
 * logged; returns the stop flag. `sleeping` is raised before the queues are
 * checked: a producer that appends after the check sees it and signals, and
 * the signal cannot get lost because the producer needs `mu`, which is only
 * released by the wait. */
static bool wait_for_work(mr_logsink_t *s)
{
    uint64_t due;
    bool stop;

    pthread_mutex_lock(&s->mu);
    while (!s->stop && !atomic_load(&s->reopen)) {
        atomic_store(&s->sleeping, true);
        if (any_queued(s))
            break;
        if (!head_due(s, &due)) {
            pthread_cond_wait(&s->cond, &s->mu);
            continue;
        }
        struct timespec at = {.tv_sec = (time_t)(due / 1000000000ull),
                              .tv_nsec = (long)(due % 1000000000ull)};
        if (pthread_cond_timedwait(&s->cond, &s->mu, &at) == ETIMEDOUT)
            break;
    }
    atomic_store(&s->sleeping, false);
    stop = s->stop;
    pthread_mutex_unlock(&s->mu);
    return stop;
}

static void *writer_main(void *arg)
{
    mr_logsink_t *s = arg;

    for (;;) {
        bool stop = wait_for_work(s);

        /* The flag only wakes the writer; the cuts say what to do. Clearing
         * it before looking at them means a request made during the round
         * wakes the next one. */
        uint64_t due;
        atomic_store(&s->reopen, false);
        if (!flush_round(s) && stop)
            return NULL;
        if (head_due(s, &due) && now_ns() >= due)
            log_head(s, "periodic");
    }
}

/* ---- opening: where an existing chain ends ------------------------------ */

/* Continues the chain of the audit file at s->path (just opened for
 * appending, so it exists): seq and prev from its last record. A file that
 * does not end with a whole, valid record is refused rather than repaired:
 * it may be evidence. */
static int load_chain(mr_logsink_t *s, char *err, size_t errlen)
{
    size_t limit = MR_AUDIT_TAIL_LIMIT;
    mr_audit_head_t head;
    char why[768];
    int rc;

    /* A record is at most its queue bound plus the framing long: a last line
     * longer than that is not ours. */
    if (s->queue_bytes > limit - FRAME_MAX)
        limit = s->queue_bytes < SIZE_MAX - FRAME_MAX ? s->queue_bytes + FRAME_MAX : SIZE_MAX / 2;
    rc = mr_audit_read_head(s->name, s->path, limit, &head, why, sizeof(why));
    if (rc < 0) {
        snprintf(err, errlen, "%s; to start a new chain, move the file aside", why);
        return -1;
    }
    if (rc == 0) {
        s->seq = head.seq;
        memcpy(s->prev, head.digest, sizeof(s->prev));
        log_head(s, "continuing the file");
    }
    return 0;
}

/* ---- the API ------------------------------------------------------------ */

static void free_sink(mr_logsink_t *s, unsigned n_mutexes)
{
    for (unsigned i = 0; i < n_mutexes; i++) {
        pthread_mutex_destroy(&s->prod[i].mu);
        free(s->prod[i].q.buf);
        free(s->prod[i].old.buf);
    }
    free(s->prod);
    free(s->spare.buf);
    free(s->out);
    free(s->path);
    free(s->name);
    free(s);
}

/* The writer's condition variable times its waits on CLOCK_MONOTONIC, as
 * the head deadlines are. */
static int init_cond(pthread_cond_t *c)
{
    pthread_condattr_t a;
    int rc;

    if (pthread_condattr_init(&a) != 0)
        return -1;
    rc = pthread_condattr_setclock(&a, CLOCK_MONOTONIC) == 0 ? pthread_cond_init(c, &a) : -1;
    pthread_condattr_destroy(&a);
    return rc;
}

/* The writer blocks every signal: they belong to the event loops' threads
 * (uv_signal), and its write(2) calls then see no EINTR. */
static int start_writer(mr_logsink_t *s)
{
    sigset_t all, old;
    int rc;

    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&s->thread, NULL, writer_main, s);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc == 0)
        pthread_setname_np(s->thread, "mr-logsink");
    return rc;
}

int mr_logsink_open(const mr_logsink_opts_t *o, mr_logsink_t **out, char *err, size_t errlen)
{
    const char *name = o->name ? o->name : "log";
    mr_logsink_t *s;
    unsigned inited = 0;
    char eb[128];
    int rc;

    *out = NULL;
    if (!o->path || !o->path[0]) {
        snprintf(err, errlen, "%s: no path (a file path or \"stdout\")", name);
        return -1;
    }
    if (o->n_producers == 0) {
        snprintf(err, errlen, "%s %s: n_producers must be at least 1", name, o->path);
        return -1;
    }
    if (!(s = calloc(1, sizeof(*s))) || !(s->path = strdup(o->path)) || !(s->name = strdup(name)) ||
        !(s->prod = aligned_alloc(_Alignof(producer_t), o->n_producers * sizeof(producer_t)))) {
        if (s)
            free_sink(s, 0);
        snprintf(err, errlen, "%s %s: out of memory", name, o->path);
        return -1;
    }
    memset(s->prod, 0, o->n_producers * sizeof(producer_t));
    s->n = o->n_producers;
    s->chain = o->chain != 0;
    s->queue_bytes = o->queue_bytes ? o->queue_bytes : MR_LOGSINK_QUEUE_BYTES;
    s->is_stdout = strcmp(o->path, "stdout") == 0;
    atomic_init(&s->sleeping, false);
    atomic_init(&s->reopen, false);
    atomic_init(&s->written, 0);
    atomic_init(&s->dropped, 0);
    atomic_init(&s->write_errors, 0);

    if (s->is_stdout) {
        s->fd = STDOUT_FILENO;
    } else if ((s->fd = open(s->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640)) < 0) {
        snprintf(err, errlen, "%s %s: %s", name, s->path, errstr(errno, eb, sizeof(eb)));
        free_sink(s, 0);
        return -1;
    }
    if (s->chain && !s->is_stdout && load_chain(s, err, errlen) < 0)
        goto fail;

    for (; inited < s->n; inited++) {
        if (pthread_mutex_init(&s->prod[inited].mu, NULL) != 0)
            break;
    }
    if (inited < s->n || pthread_mutex_init(&s->mu, NULL) != 0) {
        snprintf(err, errlen, "%s %s: cannot create a mutex", name, s->path);
        goto fail;
    }
    if (init_cond(&s->cond) != 0) {
        pthread_mutex_destroy(&s->mu);
        snprintf(err, errlen, "%s %s: cannot create a condition variable", name, s->path);
        goto fail;
    }
    if ((rc = start_writer(s)) != 0) {
        pthread_cond_destroy(&s->cond);
        pthread_mutex_destroy(&s->mu);
        snprintf(err, errlen, "%s %s: cannot start the writer thread: %s", name, s->path,
                 errstr(rc, eb, sizeof(eb)));
        goto fail;
    }
    *out = s;
    return 0;

fail:
    if (!s->is_stdout)
        close(s->fd);
    free_sink(s, inited);
    return -1;
}

/* Room for n more bytes in q's buffer, growing it by doubling up to the
 * queue bound. */
static int reserve(queue_t *q, size_t n, size_t bound)
{
    size_t cap = q->cap ? q->cap : 4096;
    char *p;

    if (q->cap - q->len >= n)
        return 0;
    while (cap < q->len + n)
        cap *= 2;
    if (cap > bound && bound >= q->len + n)
        cap = bound;
    if (!(p = realloc(q->buf, cap)))
        return -1;
    q->buf = p;
    q->cap = cap;
    return 0;
}

int mr_logsink_write(mr_logsink_t *s, unsigned p, const char *line, size_t len)
{
    producer_t *q;
    int rc = 0;

    if (p >= s->n || !line || memchr(line, '\n', len) ||
        (s->chain && check_object(line, len) < 0)) {
        atomic_fetch_add_explicit(&s->dropped, 1, memory_order_relaxed);
        return -2;
    }
    q = &s->prod[p];
    pthread_mutex_lock(&q->mu);
    if (len + 1 > s->queue_bytes - q->pending || reserve(&q->q, len + 1, s->queue_bytes) < 0) {
        rc = -1;
    } else {
        memcpy(q->q.buf + q->q.len, line, len);
        q->q.buf[q->q.len + len] = '\n';
        q->q.len += len + 1;
        q->q.lines++;
        q->pending += len + 1;
    }
    pthread_mutex_unlock(&q->mu);
    if (rc < 0) {
        atomic_fetch_add_explicit(&s->dropped, 1, memory_order_relaxed);
        return -1;
    }
    /* Only the first producer to see the writer asleep pays for the wake-up. */
    if (atomic_exchange(&s->sleeping, false)) {
        pthread_mutex_lock(&s->mu);
        pthread_cond_signal(&s->cond);
        pthread_mutex_unlock(&s->mu);
    }
    return 0;
}

void mr_logsink_reopen(mr_logsink_t *s)
{
    if (s->is_stdout)
        return;
    /* The cut, under every producer's mutex at once (in index order; the
     * writer and the producers hold at most one): lines queued before it
     * move to `old`. A request the writer has not acted on yet absorbs this
     * one. */
    for (unsigned i = 0; i < s->n; i++)
        pthread_mutex_lock(&s->prod[i].mu);
    for (unsigned i = 0; i < s->n; i++) {
        producer_t *q = &s->prod[i];
        if (!q->has_old) {
            queue_t empty = q->old;
            q->old = q->q;
            q->q = empty;
            q->has_old = true;
        }
    }
    for (unsigned i = s->n; i-- > 0;)
        pthread_mutex_unlock(&s->prod[i].mu);
    atomic_store(&s->reopen, true);
    pthread_mutex_lock(&s->mu);
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->mu);
}

void mr_logsink_stats(const mr_logsink_t *s, mr_logsink_stats_t *out)
{
    out->written = atomic_load_explicit(&s->written, memory_order_relaxed);
    out->dropped = atomic_load_explicit(&s->dropped, memory_order_relaxed);
    out->write_errors = atomic_load_explicit(&s->write_errors, memory_order_relaxed);
}

void mr_logsink_close(mr_logsink_t *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->stop = true;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    log_head(s, "closing the file");
    if (!s->is_stdout)
        close_file(s, s->fd);
    pthread_cond_destroy(&s->cond);
    pthread_mutex_destroy(&s->mu);
    free_sink(s, s->n);
}
