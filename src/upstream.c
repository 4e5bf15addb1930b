#include "meridian/upstream.h"

#include "meridian/log.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define POOL_MAX 1024
#define CTYPE_MAX 128

/* A transfer and its easy handle stay together from the first use to the
 * pool's end: the handle's private data, error buffer and callback data are
 * set once, and the options of the last transfer are remembered. */
struct mr_transfer {
    mr_upstream_t *u;
    CURL *easy;
    int kind; /* its pool: 0 streams, 1 whole answers */
    mr_transfer_handler_t h;
    void *ud;
    mr_upstream_head_t head;
    char content_type[CTYPE_MAX];
    int head_done;
    int paused;
    int unpause_queued;
    unsigned sends; /* requests put on the wire (PREREQFUNCTION calls) */
    /* Runs from the start until the connection is made (prereq_cb): the
     * connect timeout is kept here, not in curl (CURLOPT_CONNECTTIMEOUT_MS
     * stays in curl's timer tree for the whole transfer, re-sorted on
     * every socket event). */
    uv_timer_t connect_timer;
    long connect_timeout_ms;
    mr_transfer_t *unpause_next;
    char *url; /* CURLOPT_URL and CURLOPT_CAINFO as last set (curl copies them) */
    char *ca;
    char errbuf[CURL_ERROR_SIZE];
};

/* CURLOPT_BUFFERSIZE by pool: what a handle keeps allocated for its life.
 * Streams get 4 KiB, as bench/floor.c: 1 KiB saved 3 KiB per open stream
 * but cost a recv and a poll per KiB of a burst (a 4.8 KB instant stream:
 * +3 of each, +12 % CPU per request in bench/versus). */
static const long buffer_size[2] = {4096, 16384};

/* A stream's upstream socket: what the kernel may hold for it while the
 * transfer is paused behind a slow client (SO_RCVBUF; Linux doubles it).
 * Without a cap it grows to tcp_rmem's maximum (6 MiB). Set before connect
 * on a connection opened for a stream, and on a connection a stream reuses
 * (socket_cb): one opened for a whole answer would otherwise carry its
 * autotuned buffer into the stream. A capped connection keeps the cap. */
#define STREAM_RCVBUF (64 * 1024)

static void cap_rcvbuf(curl_socket_t fd)
{
    int v = STREAM_RCVBUF;
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof(v));
}

static int stream_sockopt(void *ud, curl_socket_t fd, curlsocktype purpose)
{
    (void)ud;
    if (purpose == CURLSOCKTYPE_IPCXN)
        cap_rcvbuf(fd);
    return CURL_SOCKOPT_OK;
}

/* One per socket curl asks us to watch, kept until curl closes the socket
 * (close_cb): a keep-alive connection between two transfers keeps its poll
 * registered, so reusing it costs no epoll_ctl. */
struct mr_upstream_sock {
    uv_poll_t poll;
    mr_upstream_t *u;
    curl_socket_t fd;
    int events;
    int wanted; /* curl watches it; 0 between transfers (CURL_POLL_REMOVE) */
    int capped; /* its SO_RCVBUF is STREAM_RCVBUF */
    mr_upstream_sock_t *prev, *next;
};

static void process_done(mr_upstream_t *u);
static void finish(mr_transfer_t *t, CURLcode code, const char *error);

static void sock_closed(uv_handle_t *h)
{
    free(h->data);
}

static void sock_release(mr_upstream_sock_t *s)
{
    mr_upstream_t *u = s->u;

    if (s->prev)
        s->prev->next = s->next;
    else
        u->socks = s->next;
    if (s->next)
        s->next->prev = s->prev;
    if ((size_t)s->fd < u->by_fd_cap && u->by_fd[s->fd] == s)
        u->by_fd[s->fd] = NULL;
    uv_poll_stop(&s->poll);
    uv_close((uv_handle_t *)&s->poll, sock_closed);
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    mr_upstream_sock_t *s = p->data;
    mr_upstream_t *u = s->u;
    int flags = 0, running;

    if (!s->wanted) {
        /* an idle keep-alive connection spoke (closed, most likely): stop
         * listening now; curl finds out when it next looks at it */
        uv_poll_stop(&s->poll);
        return;
    }
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    else {
        if (events & UV_READABLE)
            flags |= CURL_CSELECT_IN;
        if (events & UV_WRITABLE)
            flags |= CURL_CSELECT_OUT;
    }
    curl_multi_socket_action(u->multi, s->fd, flags, &running);
    process_done(u);
}

/* Registers fd's context in the list and the by-fd index. */
static mr_upstream_sock_t *sock_new(mr_upstream_t *u, curl_socket_t fd)
{
    mr_upstream_sock_t *s;

    if (fd < 0)
        return NULL;
    if ((size_t)fd >= u->by_fd_cap) {
        size_t cap = u->by_fd_cap ? u->by_fd_cap : 256;
        while (cap <= (size_t)fd)
            cap *= 2;
        mr_upstream_sock_t **idx = realloc(u->by_fd, cap * sizeof(*idx));
        if (!idx)
            return NULL;
        memset(idx + u->by_fd_cap, 0, (cap - u->by_fd_cap) * sizeof(*idx));
        u->by_fd = idx;
        u->by_fd_cap = cap;
    }
    if (!(s = calloc(1, sizeof(*s))))
        return NULL;
    if (uv_poll_init_socket(u->loop, &s->poll, fd) != 0) {
        free(s);
        return NULL;
    }
    s->poll.data = s;
    s->u = u;
    s->fd = fd;
    s->next = u->socks;
    if (u->socks)
        u->socks->prev = s;
    u->socks = s;
    u->by_fd[fd] = s;
    return s;
}

/* CURLOPT_CLOSESOCKETFUNCTION: the poll must leave epoll before the fd is
 * closed (and its number reused). */
static int close_cb(void *clientp, curl_socket_t fd)
{
    mr_upstream_t *u = clientp;

    if (fd >= 0 && (size_t)fd < u->by_fd_cap && u->by_fd[fd])
        sock_release(u->by_fd[fd]);
    return close(fd);
}

/* A socket's context lives in u->by_fd from its first watch to close_cb, so
 * curl's per-socket pointer (curl_multi_assign) is not used. */
static int socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    mr_upstream_t *u = userp;
    mr_upstream_sock_t *s = fd >= 0 && (size_t)fd < u->by_fd_cap ? u->by_fd[fd] : NULL;
    int events = 0;

    (void)socketp;
    if (what == CURL_POLL_REMOVE) {
        /* Left registered on purpose (lazy removal): the next transfer on
         * this connection usually comes soon. on_poll stops it if the idle
         * socket turns readable; close_cb releases it. */
        if (s)
            s->wanted = 0;
        return 0;
    }
    if (!s && !(s = sock_new(u, fd)))
        return -1;
    s->wanted = 1;
    if (!s->capped) {
        mr_transfer_t *t = NULL;
        if (curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&t) == CURLE_OK && t &&
            t->kind == 0) {
            cap_rcvbuf(fd);
            s->capped = 1;
        }
    }
    if (what & CURL_POLL_IN)
        events |= UV_READABLE;
    if (what & CURL_POLL_OUT)
        events |= UV_WRITABLE;
    /* Re-arming with the same mask would cost an epoll_ctl for nothing. */
    if (events != s->events || !uv_is_active((uv_handle_t *)&s->poll)) {
        if (uv_poll_start(&s->poll, events, on_poll) != 0)
            return -1; /* curl fails the transfer */
        s->events = events;
    }
    return 0;
}

static void on_timer(uv_timer_t *t)
{
    mr_upstream_t *u = t->data;
    int running;

    curl_multi_socket_action(u->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    process_done(u);
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    mr_upstream_t *u = userp;

    (void)multi;
    if (u->closing)
        return 0;
    if (timeout_ms < 0)
        return uv_timer_stop(&u->timer) == 0 ? 0 : -1;
    /* 0 means "as soon as possible": the next loop turn, never from inside curl */
    return uv_timer_start(&u->timer, on_timer, (uint64_t)timeout_ms, 0) == 0 ? 0 : -1;
}

/* A multi handle wired to u's loop. */
static CURLM *multi_new(mr_upstream_t *u)
{
    CURLM *m = curl_multi_init();

    if (!m)
        return NULL;
    curl_multi_setopt(m, CURLMOPT_SOCKETFUNCTION, socket_cb);
    curl_multi_setopt(m, CURLMOPT_SOCKETDATA, u);
    curl_multi_setopt(m, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(m, CURLMOPT_TIMERDATA, u);
    /* Keep enough idle connections that a burst does not close keep-alives. */
    curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, 1024L);
    return m;
}

int mr_upstream_init(mr_upstream_t *u, uv_loop_t *loop)
{
    memset(u, 0, sizeof(*u));
    u->loop = loop;
    u->pool_cap = POOL_MAX;
    if (!(u->pool[0] = calloc(u->pool_cap, sizeof(mr_transfer_t *))) ||
        !(u->pool[1] = calloc(u->pool_cap, sizeof(mr_transfer_t *)))) {
        free(u->pool[0]);
        return -1;
    }
    if (!(u->multi = multi_new(u)))
        goto fail;
    if (uv_timer_init(loop, &u->timer) != 0)
        goto fail;
    if (uv_idle_init(loop, &u->unpause) != 0)
        goto fail_timer;
    u->timer.data = u;
    u->unpause.data = u;
    u->default_cainfo = curl_version_info(CURLVERSION_NOW)->cainfo;
    return 0;

fail_timer:
    uv_close((uv_handle_t *)&u->timer, NULL); /* inert: nothing started it */
fail:
    if (u->multi)
        curl_multi_cleanup(u->multi);
    u->multi = NULL;
    free(u->pool[0]);
    free(u->pool[1]);
    u->pool[0] = u->pool[1] = NULL;
    return -1;
}

static void transfer_closed(uv_handle_t *h)
{
    free(h->data);
}

/* The transfer's memory goes with its timer's close callback. */
static void transfer_destroy(mr_transfer_t *t)
{
    curl_easy_cleanup(t->easy);
    free(t->url);
    free(t->ca);
    uv_close((uv_handle_t *)&t->connect_timer, transfer_closed);
}

size_t mr_upstream_trim(mr_upstream_t *u, size_t keep)
{
    size_t idle = 0;

    if (keep < MR_UPSTREAM_TRIM_KEEP)
        keep = MR_UPSTREAM_TRIM_KEEP;
    for (int k = 0; k < 2; k++)
        while (u->n_pool[k] > keep)
            transfer_destroy(u->pool[k][--u->n_pool[k]]);
    /* curl has no call that closes idle connections, and a burst's worth of
     * them (connection state and their sockets' polls) stays until a later
     * transfer prunes them. With nothing in flight every socket is an idle
     * connection, and a fresh multi handle costs nothing: the old one closes
     * its cache as it goes. */
    if (u->active || u->closing)
        return 0;
    for (const mr_upstream_sock_t *s = u->socks; s; s = s->next)
        idle++;
    if (idle <= MR_UPSTREAM_TRIM_KEEP)
        return 0;
    CURLM *fresh = multi_new(u);
    if (!fresh)
        return 0;
    CURLM *old = u->multi;
    u->multi = fresh;
    curl_multi_cleanup(old);
    /* curl 7.88 closes every cached socket through close_cb; a context left
     * behind would name a closed fd whose number the next connection may
     * reuse, as in mr_upstream_close */
    while (u->socks)
        sock_release(u->socks);
    uv_timer_stop(&u->timer); /* the old handle's timeout, if it left one */
    return idle;
}

void mr_upstream_close(mr_upstream_t *u)
{
    u->closing = 1;
    for (int k = 0; k < 2; k++) {
        while (u->n_pool[k])
            transfer_destroy(u->pool[k][--u->n_pool[k]]);
        free(u->pool[k]);
        u->pool[k] = NULL;
    }
    if (u->multi)
        curl_multi_cleanup(u->multi);
    u->multi = NULL;
    while (u->socks)
        sock_release(u->socks);
    free(u->by_fd);
    u->by_fd = NULL;
    u->by_fd_cap = 0;
    uv_close((uv_handle_t *)&u->timer, NULL);
    uv_close((uv_handle_t *)&u->unpause, NULL);
}

/* A header value that is a non-negative decimal number, -1 when it is not. */
static long long header_number(const char *v, size_t vlen)
{
    char tmp[24], *e;

    if (vlen == 0 || vlen >= sizeof(tmp))
        return -1;
    memcpy(tmp, v, vlen);
    tmp[vlen] = '\0';
    errno = 0;
    long long n = strtoll(tmp, &e, 10);
    return *e == '\0' && errno == 0 && n >= 0 ? n : -1;
}

static size_t header_cb(char *p, size_t size, size_t n, void *userp)
{
    mr_transfer_t *t = userp;
    size_t len = size * n;

    if (t->head_done)
        return len; /* trailers */
    if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) {
        const char *sp = memchr(p, ' ', len);
        t->head.status = sp ? strtol(sp + 1, NULL, 10) : 0;
        t->content_type[0] = '\0';
        t->head.retry_after_s = -1;
        t->head.content_length = -1;
        return len;
    }
    if (len <= 2 && (p[0] == '\r' || p[0] == '\n')) {
        if (t->head.status >= 200) {
            t->head_done = 1;
            t->head.content_type = t->content_type;
            if (t->h.on_head)
                t->h.on_head(t->ud, &t->head);
        }
        return len;
    }
    const char *colon = memchr(p, ':', len);
    if (!colon)
        return len;
    size_t nlen = (size_t)(colon - p);
    const char *v = colon + 1, *end = p + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
        end--;
    size_t vlen = (size_t)(end - v);
    if (nlen == 12 && strncasecmp(p, "content-type", 12) == 0) {
        if (vlen >= CTYPE_MAX)
            vlen = CTYPE_MAX - 1;
        memcpy(t->content_type, v, vlen);
        t->content_type[vlen] = '\0';
    } else if (nlen == 11 && strncasecmp(p, "retry-after", 11) == 0) {
        long long s = header_number(v, vlen);
        if (s >= 0 && s <= LONG_MAX)
            t->head.retry_after_s = (long)s;
    } else if (nlen == 14 && strncasecmp(p, "content-length", 14) == 0) {
        t->head.content_length = header_number(v, vlen);
    }
    return len;
}

/* Called each time a request is about to go out on a connection: more than
 * once per transfer means libcurl re-sent it. */
static int prereq_cb(void *userp, char *conn_primary_ip, char *conn_local_ip, int conn_primary_port,
                     int conn_local_port)
{
    mr_transfer_t *t = userp;

    (void)conn_primary_ip;
    (void)conn_local_ip;
    (void)conn_primary_port;
    (void)conn_local_port;
    t->sends++;
    uv_timer_stop(&t->connect_timer);
    return CURL_PREREQFUNC_OK;
}

static void on_connect_timeout(uv_timer_t *timer);

/* CURLOPT_OPENSOCKETFUNCTION: a new connection for a transfer that had one
 * already (libcurl re-sending on a fresh connection) gets a connect timeout
 * of its own, as curl's option gave it. */
static curl_socket_t opensocket_cb(void *userp, curlsocktype purpose, struct curl_sockaddr *addr)
{
    mr_transfer_t *t = userp;

    (void)purpose;
    if (t->connect_timeout_ms > 0 && !uv_is_active((uv_handle_t *)&t->connect_timer))
        uv_timer_start(&t->connect_timer, on_connect_timeout, (uint64_t)t->connect_timeout_ms, 0);
    return socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);
}

static size_t write_cb(char *p, size_t size, size_t n, void *userp)
{
    mr_transfer_t *t = userp;
    size_t len = size * n;

    switch (t->h.on_data(t->ud, p, len)) {
    case MR_DATA_OK:
        return len;
    case MR_DATA_PAUSE:
        t->paused = 1;
        return CURL_WRITEFUNC_PAUSE;
    default:
        return 0; /* CURLE_WRITE_ERROR */
    }
}

/* A pooled transfer of `kind`, or a new one with its handle's constant
 * options set. */
static mr_transfer_t *acquire(mr_upstream_t *u, int kind)
{
    mr_transfer_t *t;
    CURL *e;

    if (u->n_pool[kind])
        return u->pool[kind][--u->n_pool[kind]];
    if (!(t = calloc(1, sizeof(*t))))
        return NULL;
    if (!(e = t->easy = curl_easy_init())) {
        free(t);
        return NULL;
    }
    if (uv_timer_init(u->loop, &t->connect_timer) != 0) {
        curl_easy_cleanup(e);
        free(t);
        return NULL;
    }
    t->connect_timer.data = t;
    t->u = u;
    t->kind = kind;
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_NOPROXY, "localhost,127.0.0.1,::1");
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, prereq_cb);
    /* curl keeps its receive buffer for the handle's life: with thousands
     * of open streams that is much of their memory, and events are small */
    curl_easy_setopt(e, CURLOPT_BUFFERSIZE, buffer_size[kind]);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, close_cb);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, u);
    if (kind == 0)
        curl_easy_setopt(e, CURLOPT_SOCKOPTFUNCTION, stream_sockopt);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, t);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, t);
    curl_easy_setopt(e, CURLOPT_PRIVATE, t);
    curl_easy_setopt(e, CURLOPT_PREREQDATA, t);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, opensocket_cb);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, t);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->errbuf);
    return t;
}

static void release(mr_upstream_t *u, mr_transfer_t *t)
{
    if (u->n_pool[t->kind] < u->pool_cap && !u->closing)
        u->pool[t->kind][u->n_pool[t->kind]++] = t;
    else
        transfer_destroy(t);
}

/* A string option, set only when it changed since the handle's last
 * transfer (curl copies the string each time it is set). */
static CURLcode set_string(mr_transfer_t *t, CURLoption opt, char **last, const char *v)
{
    CURLcode rc;

    if (*last && v && !strcmp(*last, v))
        return CURLE_OK;
    free(*last);
    *last = NULL;
    rc = curl_easy_setopt(t->easy, opt, v);
    if (rc == CURLE_OK && v)
        *last = strdup(v); /* when this fails, the option is set again next time */
    return rc;
}

/* No connection within the connect timeout: the transfer fails as curl's
 * own connect timeout failed it (CURLE_OPERATION_TIMEDOUT). */
static void on_connect_timeout(uv_timer_t *timer)
{
    mr_transfer_t *t = timer->data;
    char error[96];

    snprintf(error, sizeof(error), "Connection timed out after %ld milliseconds",
             t->connect_timeout_ms);
    finish(t, CURLE_OPERATION_TIMEDOUT, error);
}

mr_transfer_t *mr_upstream_start(mr_upstream_t *u, const mr_transfer_req_t *req,
                                 const mr_transfer_handler_t *h, void *ud, char *err, size_t errlen)
{
    mr_transfer_t *t = acquire(u, req->stream ? 0 : 1);
    CURL *e;
    CURLMcode mc;

    if (!t) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    e = t->easy;
    t->h = *h;
    t->ud = ud;
    memset(&t->head, 0, sizeof(t->head));
    t->head.retry_after_s = -1;
    t->head.content_length = -1;
    t->head.content_type = t->content_type;
    t->content_type[0] = '\0';
    t->head_done = t->paused = t->unpause_queued = 0;
    t->sends = 0;
    t->unpause_next = NULL;
    t->errbuf[0] = '\0';
    /* pooled handles: every transfer sets its provider's trust anchors */
    if (set_string(t, CURLOPT_URL, &t->url, req->url) != CURLE_OK ||
        set_string(t, CURLOPT_CAINFO, &t->ca, req->ca_file ? req->ca_file : u->default_cainfo) !=
            CURLE_OK) {
        snprintf(err, errlen, "curl refused the URL or CA file");
        release(u, t);
        return NULL;
    }
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, req->headers);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, req->body);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION,
                     req->http2 ? (long)CURL_HTTP_VERSION_2TLS : (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(e, CURLOPT_MAXAGE_CONN, req->keepalive_s > 0 ? req->keepalive_s : 118L);
    mc = curl_multi_add_handle(u->multi, e);
    if (mc != CURLM_OK) {
        snprintf(err, errlen, "curl: %s", curl_multi_strerror(mc));
        release(u, t);
        return NULL;
    }
    u->active++;
    t->connect_timeout_ms = req->connect_timeout_ms;
    if (req->connect_timeout_ms > 0)
        uv_timer_start(&t->connect_timer, on_connect_timeout, (uint64_t)req->connect_timeout_ms, 0);
    return t;
}

static void unqueue_unpause(mr_transfer_t *t)
{
    mr_transfer_t **pp;

    if (!t->unpause_queued)
        return;
    for (pp = &t->u->unpause_list; *pp; pp = &(*pp)->unpause_next) {
        if (*pp == t) {
            *pp = t->unpause_next;
            break;
        }
    }
    t->unpause_queued = 0;
}

static void transfer_free(mr_transfer_t *t)
{
    mr_upstream_t *u = t->u;

    unqueue_unpause(t);
    uv_timer_stop(&t->connect_timer);
    curl_multi_remove_handle(u->multi, t->easy);
    u->active--;
    release(u, t);
}

void mr_transfer_cancel(mr_transfer_t *t)
{
    transfer_free(t);
}

static void process_done(mr_upstream_t *u)
{
    CURLMsg *msg;
    int left;

    while ((msg = curl_multi_info_read(u->multi, &left))) {
        mr_transfer_t *t;
        if (msg->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&t);
        CURLcode code = msg->data.result;
        finish(t, code,
               code == CURLE_OK ? ""
               : t->errbuf[0]   ? t->errbuf
                                : curl_easy_strerror(code));
    }
}

/* Ends the transfer with `code` and tells its owner. */
static void finish(mr_transfer_t *t, CURLcode code, const char *error)
{
    char copy[CURL_ERROR_SIZE + 64];
    mr_transfer_handler_t h = t->h;
    void *ud = t->ud;
    unsigned resends = t->sends > 1 ? t->sends - 1 : 0;

    /* error may be the handle's buffer; free first: on_done may start a new
     * transfer on a pooled handle. */
    snprintf(copy, sizeof(copy), "%s", error);
    transfer_free(t);
    h.on_done(ud, mr_upstream_failure(code), copy, resends);
}

static void on_unpause(uv_idle_t *idle)
{
    mr_upstream_t *u = idle->data;

    uv_idle_stop(idle);
    while (u->unpause_list) {
        mr_transfer_t *t = u->unpause_list;
        u->unpause_list = t->unpause_next;
        t->unpause_queued = 0;
        t->paused = 0;
        /* May deliver buffered data through write_cb before returning. */
        curl_easy_pause(t->easy, CURLPAUSE_CONT);
    }
    process_done(u);
}

void mr_transfer_unpause(mr_transfer_t *t)
{
    if (!t->paused || t->unpause_queued)
        return;
    if (uv_idle_start(&t->u->unpause, on_unpause) != 0) {
        /* only a closing loop refuses: the transfer stays paused and the
         * owner's idle timeout ends it */
        mr_error("upstream: could not schedule an unpause");
        return;
    }
    t->unpause_queued = 1;
    t->unpause_next = t->u->unpause_list;
    t->u->unpause_list = t;
}

mr_failure_t mr_upstream_failure(int curlcode)
{
    switch ((CURLcode)curlcode) {
    case CURLE_OK:
        return MR_FAIL_NONE;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        return MR_FAIL_RESOLVE;
    case CURLE_COULDNT_CONNECT:
        return MR_FAIL_CONNECT;
    case CURLE_OPERATION_TIMEDOUT:
        return MR_FAIL_TIMEOUT;
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
        return MR_FAIL_RESET;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_CLIENTCERT:
        return MR_FAIL_TLS;
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_HTTP3:
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_BAD_CONTENT_ENCODING:
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_TOO_MANY_REDIRECTS:
        return MR_FAIL_PROTOCOL;
    case CURLE_OUT_OF_MEMORY:
        return MR_FAIL_NO_MEMORY;
    default:
        return MR_FAIL_TRANSPORT;
    }
}
