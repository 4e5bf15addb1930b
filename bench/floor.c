/*
 * bench/floor.c — the floor of Meridian's stack: the least a proxy built on
 * libuv + libmicrohttpd (external epoll mode) + libcurl multi does to stream
 * an upstream's answer, and nothing else: no routing, policy, failover,
 * logging or metrics. bench/llm measures it beside Meridian; what Meridian
 * costs above it is Meridian's own.
 *
 *   floor --port P --upstream URL [--key KEY] [--pool BYTES] [--block BYTES]
 *         [--curl-buffer BYTES] [--stream-buffer BYTES] [--max-connections N]
 *         [--client-idle-s S]
 *
 * POST /v1/chat/completions is sent on as POST URL with the client's body,
 * `Content-Type: application/json` and `Authorization: Bearer KEY`; the
 * answer's status, Content-Type and body come back as they arrive (chunked).
 * Anything else: 404. Listens on 127.0.0.1:P. The defaults are Meridian's:
 * MHD pool 48 KiB (2 x 16 KiB header limit + 16 KiB), response block 2 KiB,
 * curl receive buffer 4 KiB, stream buffer cap 256 KiB, 60 s client idle.
 *
 * The traps of MHD 0.9.75 and curl 7.88 it honours (docs/architecture.md):
 * MHD's client sockets are edge-triggered, so a 0 ms MHD_get_timeout is
 * honoured; MHD_resume_connection wakes nothing in external mode, so a
 * uv_idle keeps the loop from blocking and a uv_check runs MHD_run on the
 * same turn; the content reader suspends when it has nothing (returning 0
 * unsuspended makes MHD spin); MHD's default connection limit is 1020 even
 * with epoll; a suspended connection does not notice its client leaving, so
 * a uv_poll watches for UV_DISCONNECT; curl's timer callback never calls into
 * curl (0 ms is the next loop turn) and curl_easy_pause(CONT) runs from the
 * uv_check, never inside a curl callback. MHD_stop_daemon panics with
 * suspended connections, so the process simply ends on SIGTERM/SIGINT.
 */
#include <curl/curl.h>
#include <microhttpd.h>
#include <uv.h>

#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BODY_MAX (1024 * 1024)

enum { R_BODY, R_WAIT, R_GO, R_STREAM, R_FAIL };

typedef struct req req_t;

typedef struct {
    uv_loop_t *loop;
    struct MHD_Daemon *mhd;
    uv_poll_t mhd_poll;
    uv_timer_t mhd_timer, curl_timer;
    uv_check_t check;
    uv_idle_t idle;
    CURLM *multi;
    struct curl_slist *headers;
    const char *upstream;
    size_t block, stream_cap;
    long curl_buffer;
    int dirty; /* a connection was resumed: MHD_run in the check */
    req_t *unpause;
} floor_t;

struct req {
    floor_t *f;
    struct MHD_Connection *conn;
    CURL *easy;
    int state, suspended, paused, unpause_queued, up_done, up_ok, watching;
    long status;
    char ctype[128];
    char *body, *buf;
    size_t body_len, off, len, cap; /* buf[off, len): bytes not yet given to MHD */
    uv_poll_t watch;
    req_t *next_unpause;
};

typedef struct {
    uv_poll_t poll;
    floor_t *f;
    curl_socket_t fd;
} sock_t;

static void run_mhd(floor_t *f);

static void noop_idle(uv_idle_t *i)
{
    (void)i; /* only makes the loop poll without blocking */
}

static void wake(floor_t *f)
{
    uv_idle_start(&f->idle, noop_idle);
}

static void suspend(req_t *r);

static void resume(req_t *r)
{
    if (!r->suspended)
        return;
    r->suspended = 0;
    MHD_resume_connection(r->conn);
    r->f->dirty = 1;
    wake(r->f);
}

/* ---------------------------------------------------------------- curl */

static void take_head(req_t *r)
{
    char *ct = NULL;
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &r->status);
    curl_easy_getinfo(r->easy, CURLINFO_CONTENT_TYPE, &ct);
    snprintf(r->ctype, sizeof r->ctype, "%s", ct ? ct : "application/octet-stream");
}

static void end_transfer(req_t *r)
{
    curl_multi_remove_handle(r->f->multi, r->easy);
    curl_easy_cleanup(r->easy);
    r->easy = NULL;
}

static void drain_done(floor_t *f)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(f->multi, &left))) {
        req_t *r;
        if (m->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
        r->up_done = 1;
        r->up_ok = m->data.result == CURLE_OK;
        if (r->state == R_WAIT) {
            take_head(r);
            r->state = r->up_ok && r->status ? R_GO : R_FAIL;
        }
        end_transfer(r);
        resume(r);
    }
}

static size_t on_data(char *p, size_t size, size_t n, void *ud)
{
    req_t *r = ud;
    size_t len = size * n;
    if (r->len - r->off + len > r->f->stream_cap) {
        r->paused = 1; /* the client is slower than the upstream */
        return CURL_WRITEFUNC_PAUSE;
    }
    if (r->len + len > r->cap && r->off) {
        memmove(r->buf, r->buf + r->off, r->len - r->off);
        r->len -= r->off;
        r->off = 0;
    }
    if (r->len + len > r->cap) {
        size_t cap = r->cap ? r->cap : 1024;
        while (cap < r->len + len)
            cap *= 2;
        char *b = realloc(r->buf, cap);
        if (!b)
            return 0;
        r->buf = b;
        r->cap = cap;
    }
    memcpy(r->buf + r->len, p, len);
    r->len += len;
    if (r->state == R_WAIT) {
        take_head(r);
        r->state = R_GO;
    }
    resume(r);
    return len;
}

static void on_curl_poll(uv_poll_t *p, int status, int events)
{
    sock_t *s = p->data;
    int flags = 0, running;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    curl_multi_socket_action(s->f->multi, s->fd, flags, &running);
    drain_done(s->f);
}

static void free_data(uv_handle_t *h)
{
    free(h->data);
}

static int on_socket(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp)
{
    floor_t *f = userp;
    sock_t *s = socketp;
    (void)e;
    if (what == CURL_POLL_REMOVE) {
        /* curl says so before it closes fd: the poll leaves epoll first */
        if (s) {
            curl_multi_assign(f->multi, fd, NULL);
            uv_close((uv_handle_t *)&s->poll, free_data);
        }
        return 0;
    }
    if (!s) {
        if (!(s = calloc(1, sizeof *s)) || uv_poll_init_socket(f->loop, &s->poll, fd) != 0) {
            free(s);
            return -1;
        }
        s->poll.data = s;
        s->f = f;
        s->fd = fd;
        curl_multi_assign(f->multi, fd, s);
    }
    uv_poll_start(&s->poll,
                  ((what & CURL_POLL_IN) ? UV_READABLE : 0) |
                      ((what & CURL_POLL_OUT) ? UV_WRITABLE : 0),
                  on_curl_poll);
    return 0;
}

static void on_curl_timer(uv_timer_t *t)
{
    floor_t *f = t->data;
    int running;
    curl_multi_socket_action(f->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    drain_done(f);
}

static int on_curl_timeout(CURLM *m, long ms, void *userp)
{
    floor_t *f = userp;
    (void)m;
    if (ms < 0)
        uv_timer_stop(&f->curl_timer);
    else /* 0 too: the next loop turn, never a call into curl from here */
        uv_timer_start(&f->curl_timer, on_curl_timer, (uint64_t)ms, 0);
    return 0;
}

static int start_transfer(req_t *r)
{
    floor_t *f = r->f;
    if (!(r->easy = curl_easy_init()))
        return -1;
    curl_easy_setopt(r->easy, CURLOPT_URL, f->upstream);
    curl_easy_setopt(r->easy, CURLOPT_HTTPHEADER, f->headers);
    curl_easy_setopt(r->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
    curl_easy_setopt(r->easy, CURLOPT_POSTFIELDS, r->body ? r->body : "");
    curl_easy_setopt(r->easy, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(r->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(r->easy, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(r->easy, CURLOPT_BUFFERSIZE, f->curl_buffer);
    curl_easy_setopt(r->easy, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(r->easy, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(r->easy, CURLOPT_PRIVATE, r);
    if (curl_multi_add_handle(f->multi, r->easy) != CURLM_OK) {
        curl_easy_cleanup(r->easy);
        r->easy = NULL;
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- MHD */

static void on_mhd_timer(uv_timer_t *t)
{
    run_mhd(t->data);
}

static void on_mhd_poll(uv_poll_t *p, int status, int events)
{
    (void)status;
    (void)events;
    run_mhd(p->data);
}

static void run_mhd(floor_t *f)
{
    MHD_UNSIGNED_LONG_LONG ms;
    MHD_run(f->mhd);
    if (MHD_get_timeout(f->mhd, &ms) == MHD_YES) /* 0 = run again next turn */
        uv_timer_start(&f->mhd_timer, on_mhd_timer, ms, 0);
    else
        uv_timer_stop(&f->mhd_timer);
}

/* Deferred work of the turn: unpauses (may deliver data and resume), then MHD. */
static void on_check(uv_check_t *c)
{
    floor_t *f = c->data;
    while (f->unpause) {
        req_t *r = f->unpause;
        f->unpause = r->next_unpause;
        r->unpause_queued = 0;
        r->paused = 0;
        if (r->easy)
            curl_easy_pause(r->easy, CURLPAUSE_CONT);
    }
    drain_done(f);
    uv_idle_stop(&f->idle);
    if (f->dirty) {
        f->dirty = 0;
        run_mhd(f);
    }
}

static void unqueue_unpause(req_t *r)
{
    for (req_t **pp = &r->f->unpause; r->unpause_queued && *pp; pp = &(*pp)->next_unpause)
        if (*pp == r) {
            *pp = r->next_unpause;
            r->unpause_queued = 0;
            return;
        }
}

static void on_client_gone(uv_poll_t *p, int status, int events)
{
    req_t *r = p->data;
    (void)status;
    (void)events;
    uv_poll_stop(p);
    if (r->easy) {
        end_transfer(r);
        r->up_done = 1;
        r->up_ok = 0;
        if (r->state == R_WAIT)
            r->state = R_FAIL;
    }
    resume(r); /* MHD finds the socket closed and completes the request */
}

static void suspend(req_t *r)
{
    if (r->suspended)
        return;
    MHD_suspend_connection(r->conn);
    r->suspended = 1;
    if (r->watching)
        return;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (ci && uv_poll_init_socket(r->f->loop, &r->watch, ci->connect_fd) == 0) {
        r->watching = 1;
        r->watch.data = r;
        uv_poll_start(&r->watch, UV_DISCONNECT, on_client_gone);
    }
}

static ssize_t reader(void *cls, uint64_t pos, char *out, size_t max)
{
    req_t *r = cls;
    (void)pos;
    if (r->len > r->off) {
        size_t n = r->len - r->off < max ? r->len - r->off : max;
        memcpy(out, r->buf + r->off, n);
        r->off += n;
        if (r->off == r->len)
            r->off = r->len = 0;
        if (r->paused && !r->unpause_queued && r->len - r->off <= r->f->stream_cap / 2) {
            r->unpause_queued = 1;
            r->next_unpause = r->f->unpause;
            r->f->unpause = r;
            wake(r->f);
        }
        return (ssize_t)n;
    }
    if (r->up_done)
        return r->up_ok ? MHD_CONTENT_READER_END_OF_STREAM : MHD_CONTENT_READER_END_WITH_ERROR;
    suspend(r); /* the next upstream bytes resume it */
    return 0;
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *body)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    enum MHD_Result ret = MHD_queue_response(c, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result queue_stream(req_t *r)
{
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, r->f->block, reader, r, NULL);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->ctype);
    enum MHD_Result ret = MHD_queue_response(r->conn, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    r->state = R_STREAM;
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *data,
                                  size_t *data_size, void **ctx)
{
    req_t *r = *ctx;
    (void)version;
    if (!r) {
        if (strcmp(method, "POST") != 0 || strcmp(url, "/v1/chat/completions") != 0)
            return reply(conn, 404,
                         "{\"error\":{\"message\":\"floor: POST /v1/chat/completions only\"}}");
        if (!(r = calloc(1, sizeof *r)))
            return MHD_NO;
        r->f = cls;
        r->conn = conn;
        *ctx = r;
        return MHD_YES;
    }
    if (*data_size) {
        char *b = r->body_len + *data_size <= BODY_MAX ? realloc(r->body, r->body_len + *data_size)
                                                       : NULL;
        if (!b)
            return MHD_NO;
        memcpy(b + r->body_len, data, *data_size);
        r->body = b;
        r->body_len += *data_size;
        *data_size = 0;
        return MHD_YES;
    }
    switch (r->state) {
    case R_BODY:
        if (start_transfer(r) < 0)
            return reply(conn, 502,
                         "{\"error\":{\"message\":\"floor: cannot start the upstream transfer\"}}");
        r->state = R_WAIT;
        suspend(r);
        return MHD_YES;
    case R_GO:
        return queue_stream(r);
    case R_FAIL:
        return reply(conn, 502, "{\"error\":{\"message\":\"floor: upstream failed\"}}");
    default:
        return MHD_YES; /* R_STREAM: MHD calls the reader */
    }
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **ctx,
                         enum MHD_RequestTerminationCode toe)
{
    req_t *r = *ctx;
    (void)cls;
    (void)conn;
    (void)toe;
    if (!r)
        return;
    *ctx = NULL;
    if (r->easy)
        end_transfer(r);
    unqueue_unpause(r);
    free(r->body);
    free(r->buf);
    if (r->watching) /* before MHD closes the socket: the poll leaves epoll first */
        uv_close((uv_handle_t *)&r->watch, free_data);
    else
        free(r);
}

/* ---------------------------------------------------------------- main */

static int start(floor_t *f, int port, size_t pool, unsigned max_conns, unsigned idle_s)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    f->mhd =
        MHD_start_daemon(MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME, 0, NULL, NULL, on_request, f,
                         MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_NOTIFY_COMPLETED,
                         on_completed, f, MHD_OPTION_CONNECTION_LIMIT, max_conns,
                         MHD_OPTION_CONNECTION_MEMORY_LIMIT, pool, MHD_OPTION_CONNECTION_TIMEOUT,
                         idle_s, MHD_OPTION_LISTEN_BACKLOG_SIZE, 4096u, MHD_OPTION_END);
    const union MHD_DaemonInfo *di =
        f->mhd ? MHD_get_daemon_info(f->mhd, MHD_DAEMON_INFO_EPOLL_FD) : NULL;
    if (!di || !(f->multi = curl_multi_init()))
        return -1;
    uv_poll_init(f->loop, &f->mhd_poll, di->epoll_fd);
    uv_timer_init(f->loop, &f->mhd_timer);
    uv_timer_init(f->loop, &f->curl_timer);
    uv_check_init(f->loop, &f->check);
    uv_idle_init(f->loop, &f->idle);
    f->mhd_poll.data = f->mhd_timer.data = f->curl_timer.data = f->check.data = f;
    uv_poll_start(&f->mhd_poll, UV_READABLE, on_mhd_poll);
    uv_check_start(&f->check, on_check);
    curl_multi_setopt(f->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(f->multi, CURLMOPT_SOCKETDATA, f);
    curl_multi_setopt(f->multi, CURLMOPT_TIMERFUNCTION, on_curl_timeout);
    curl_multi_setopt(f->multi, CURLMOPT_TIMERDATA, f);
    curl_multi_setopt(f->multi, CURLMOPT_MAXCONNECTS, 1024L); /* idle keep-alives, as Meridian */
    run_mhd(f);
    return 0;
}

int main(int argc, char **argv)
{
    /* Meridian's defaults: MHD pool 2 x 16 KiB + 16 KiB, 2 KiB blocks, 4 KiB curl buffer */
    long port = -1, pool = 48 * 1024, block = 2048, curl_buf = 4096, cap = 256 * 1024,
         conns = 65536, idle_s = 60;
    const struct {
        const char *name;
        long *v, min;
    } opt[] = {{"--port", &port, 0},
               {"--pool", &pool, 4096},
               {"--block", &block, 256},
               {"--curl-buffer", &curl_buf, 1024},
               {"--stream-buffer", &cap, 1024},
               {"--max-connections", &conns, 1},
               {"--client-idle-s", &idle_s, 0}};
    const size_t nopt = sizeof opt / sizeof opt[0];
    const char *upstream = NULL, *key = "bench-key";
    int bad = argc % 2 == 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        size_t k = 0;
        while (k < nopt && strcmp(argv[i], opt[k].name) != 0)
            k++;
        if (k < nopt)
            *opt[k].v = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--upstream"))
            upstream = argv[i + 1];
        else if (!strcmp(argv[i], "--key"))
            key = argv[i + 1];
        else
            bad = 1;
    }
    for (size_t k = 0; k < nopt; k++)
        bad |= *opt[k].v < opt[k].min;
    if (bad || !upstream || port > 65535) {
        fprintf(stderr, "usage: floor --port P --upstream URL [--key KEY] [--pool BYTES]\n"
                        "  [--block BYTES] [--curl-buffer BYTES] [--stream-buffer BYTES]\n"
                        "  [--max-connections N] [--client-idle-s S]\n");
        return 2;
    }
    floor_t f = {.upstream = upstream,
                 .block = (size_t)block,
                 .stream_cap = (size_t)cap,
                 .curl_buffer = curl_buf,
                 .loop = uv_default_loop()};
    char auth[256];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
    signal(SIGPIPE, SIG_IGN);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return 1;
    f.headers = curl_slist_append(f.headers, "Content-Type: application/json");
    f.headers = curl_slist_append(f.headers, auth);
    f.headers = curl_slist_append(f.headers, "Expect:"); /* no 100-continue round trip */
    if (!f.headers || start(&f, (int)port, (size_t)pool, (unsigned)conns, (unsigned)idle_s) < 0) {
        fprintf(stderr, "floor: cannot listen on 127.0.0.1:%ld or start curl\n", port);
        return 1;
    }
    printf("floor: listening on 127.0.0.1:%ld, upstream %s\n", port, upstream);
    fflush(stdout);
    return uv_run(f.loop, UV_RUN_DEFAULT);
}
