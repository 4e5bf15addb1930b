#include "meridian/server.h"

#include "meridian/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

/* Connections MHD may hold above max_connections, so that refusals are 503s. */
#define CONNECTION_HEADROOM 64
#define SWEEP_MS 500

typedef enum {
    CONN_WAITING_HEAD,   /* new: client_idle_s for a whole request head */
    CONN_RECEIVING_BODY, /* client_idle_s for head and body together */
    CONN_IN_REQUEST,     /* the gateway's: no bound here */
    CONN_KEPT_ALIVE,     /* between requests: keepalive_idle_s */
} conn_phase_t;

struct mr_server_conn {
    int fd; /* -1 once the sweep cut it (or MHD did not say) */
    conn_phase_t phase;
    uint64_t since_ms; /* start of the current phase */
    int list;          /* its s->timed list, -1: none (in a request, or cut) */
    mr_server_conn_t *prev, *next;
};

int mr_server_listen(const char *host, uint16_t port, int reuseport, uint16_t *bound_port,
                     char *err, size_t errlen)
{
    struct addrinfo hints, *res = NULL;
    char portstr[8];
    int fd = -1, one = 1, rc;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    snprintf(portstr, sizeof(portstr), "%u", (unsigned)port);
    rc = getaddrinfo(host, portstr, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "listen %s:%u: %s", host, (unsigned)port, gai_strerror(rc));
        return -1;
    }
    fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        goto fail;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    /* One socket per worker on the same port: the kernel spreads new
     * connections across them, and no worker ever contends on accept. */
    if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
        goto fail;
    if (res->ai_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 4096) < 0)
        goto fail;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
        goto fail;
    *bound_port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                 : ((struct sockaddr_in *)&ss)->sin_port);
    freeaddrinfo(res);
    return fd;
fail:
    snprintf(err, errlen, "listen %s:%u: %s", host, (unsigned)port, strerror(errno));
    if (fd >= 0)
        close(fd);
    freeaddrinfo(res);
    return -1;
}

static void run_mhd(mr_server_t *s);

static void on_timer(uv_timer_t *t)
{
    run_mhd(t->data);
}

static void on_epoll(uv_poll_t *p, int status, int events)
{
    (void)status;
    (void)events;
    run_mhd(p->data);
}

static void on_idle(uv_idle_t *i)
{
    (void)i; /* exists only to make the loop poll with a zero timeout */
}

static void on_check(uv_check_t *c)
{
    mr_server_t *s = c->data;

    if (!s->dirty)
        return;
    s->dirty = 0;
    uv_idle_stop(&s->idle);
    run_mhd(s);
}

static void run_mhd(mr_server_t *s)
{
    MHD_UNSIGNED_LONG_LONG timeout;

    if (!s->daemon)
        return;
    MHD_run(s->daemon);
    /* MHD's client sockets are edge-triggered: a zero timeout means "call me
     * again" and must be honoured, or data already read stays unprocessed. */
    if (MHD_get_timeout(s->daemon, &timeout) != MHD_YES)
        uv_timer_stop(&s->timer);
    else if (uv_timer_start(&s->timer, on_timer, timeout, 0) != 0)
        mr_error("http server: cannot arm MHD's timer");
}

__attribute__((format(printf, 2, 0))) static void mhd_logger(void *cls, const char *fmt, va_list ap)
{
    char line[512];
    size_t n;

    (void)cls;
    vsnprintf(line, sizeof(line), fmt, ap);
    n = strlen(line);
    while (n && line[n - 1] == '\n')
        line[--n] = '\0';
    mr_debug("mhd: %s", line);
}

void mr_server_stream_socket(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    int v = MR_SERVER_STREAM_SNDBUF;

    if (ci) /* best effort: a refusal only leaves the kernel's default */
        (void)setsockopt(ci->connect_fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof(v));
}

static void conn_unlink(mr_server_t *s, mr_server_conn_t *c)
{
    mr_server_conn_list_t *l;

    if (c->list < 0)
        return;
    l = &s->timed[c->list];
    if (c->prev)
        c->prev->next = c->next;
    else
        l->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        l->tail = c->prev;
    c->prev = c->next = NULL;
    c->list = -1;
}

/* Starts a phase now: at the tail of its allowance's list, which keeps each
 * list in deadline order. */
static void conn_enter(mr_server_t *s, mr_server_conn_t *c, conn_phase_t phase)
{
    mr_server_conn_list_t *l;

    conn_unlink(s, c);
    c->phase = phase;
    c->since_ms = uv_now(s->loop);
    if (phase == CONN_IN_REQUEST || c->fd < 0)
        return;
    c->list = phase == CONN_KEPT_ALIVE;
    l = &s->timed[c->list];
    c->prev = l->tail;
    if (l->tail)
        l->tail->next = c;
    else
        l->head = c;
    l->tail = c;
}

static void notify_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                              enum MHD_ConnectionNotificationCode code)
{
    mr_server_t *s = cls;
    mr_server_conn_t *c = *socket_context;

    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        c = calloc(1, sizeof(*c));
        if (!c)
            return; /* untracked: MHD's idle timeout still applies */
        c->fd = ci ? ci->connect_fd : -1;
        c->list = -1;
        conn_enter(s, c, CONN_WAITING_HEAD);
        s->n_conns++;
        *socket_context = c;
        return;
    }
    if (!c)
        return;
    conn_unlink(s, c);
    s->n_conns--;
    free(c);
    *socket_context = NULL;
}

static mr_server_conn_t *conn_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

static void set_phase(mr_server_t *s, struct MHD_Connection *conn, conn_phase_t phase)
{
    mr_server_conn_t *c = conn_of(conn);
    if (c)
        conn_enter(s, c, phase);
}

void mr_server_request_begins(mr_server_t *s, struct MHD_Connection *conn)
{
    set_phase(s, conn, CONN_RECEIVING_BODY);
}

void mr_server_body_received(mr_server_t *s, struct MHD_Connection *conn)
{
    set_phase(s, conn, CONN_IN_REQUEST);
}

void mr_server_request_ends(mr_server_t *s, struct MHD_Connection *conn)
{
    set_phase(s, conn, CONN_KEPT_ALIVE);
}

static void cut_conn(mr_server_t *s, mr_server_conn_t *c, uint64_t allowed)
{
    conn_unlink(s, c);
    shutdown(c->fd, SHUT_RDWR);
    c->fd = -1;
    mr_debug("closed a connection that sent no complete request in %llu ms%s",
             (unsigned long long)allowed,
             c->phase == CONN_KEPT_ALIVE ? " (timeouts.keepalive_idle_s)" : "");
}

/* MHD's own timeout only measures silence, so a client trickling one byte
 * at a time would hold a connection forever: bound the whole head (and
 * body) instead. shutdown() makes MHD see the end and close it normally.
 * Each list is in deadline order, so the walk ends at the first connection
 * with time left: open streams (in a request) cost nothing here. */
static void on_sweep(uv_timer_t *t)
{
    mr_server_t *s = t->data;
    uint64_t now = uv_now(s->loop);
    int cut = 0;
    mr_server_conn_t *c;

    for (int k = 0; k < 2; k++) {
        uint64_t allowed = k ? s->keepalive_idle_ms : s->client_idle_ms;
        while ((c = s->timed[k].head) && now - c->since_ms >= allowed) {
            cut_conn(s, c, allowed);
            cut = 1;
        }
    }
    if (cut)
        mr_server_wake(s);
}

int mr_server_over_limit(const mr_server_t *s)
{
    return s->n_conns > s->max_connections;
}

/* The uv handles that drive MHD, each started; on failure the ones
 * initialised are closed (the loop must run for their close callbacks). */
static int init_handles(mr_server_t *s, int epoll_fd)
{
    uv_handle_t *done[5];
    size_t n = 0;

    if (uv_poll_init(s->loop, &s->epoll, epoll_fd) != 0)
        goto fail;
    done[n++] = (uv_handle_t *)&s->epoll;
    if (uv_timer_init(s->loop, &s->timer) != 0)
        goto fail;
    done[n++] = (uv_handle_t *)&s->timer;
    if (uv_check_init(s->loop, &s->check) != 0)
        goto fail;
    done[n++] = (uv_handle_t *)&s->check;
    if (uv_idle_init(s->loop, &s->idle) != 0)
        goto fail;
    done[n++] = (uv_handle_t *)&s->idle;
    if (uv_timer_init(s->loop, &s->sweep) != 0)
        goto fail;
    done[n++] = (uv_handle_t *)&s->sweep;
    for (size_t i = 0; i < n; i++)
        done[i]->data = s;
    if (uv_poll_start(&s->epoll, UV_READABLE, on_epoll) != 0 ||
        uv_check_start(&s->check, on_check) != 0 ||
        uv_timer_start(&s->sweep, on_sweep, SWEEP_MS, SWEEP_MS) != 0)
        goto fail;
    return 0;

fail:
    while (n)
        uv_close(done[--n], NULL);
    return -1;
}

int mr_server_start(mr_server_t *s, uv_loop_t *loop, const mr_server_opts_t *o, char *err,
                    size_t errlen)
{
    const union MHD_DaemonInfo *info;

    memset(s, 0, sizeof(*s));
    s->loop = loop;
    s->listen_fd = o->listen_fd;
    s->max_connections = o->max_connections;
    s->client_idle_ms = (uint64_t)o->client_idle_s * 1000;
    s->keepalive_idle_ms = (uint64_t)o->keepalive_idle_s * 1000;
    s->daemon = MHD_start_daemon(
        MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG, 0, NULL, NULL, o->handler,
        o->cls, MHD_OPTION_EXTERNAL_LOGGER, mhd_logger, NULL, MHD_OPTION_LISTEN_SOCKET,
        (MHD_socket)o->listen_fd, MHD_OPTION_NOTIFY_COMPLETED, o->completed, o->cls,
        MHD_OPTION_NOTIFY_CONNECTION, notify_connection, s, MHD_OPTION_CONNECTION_LIMIT,
        o->max_connections + CONNECTION_HEADROOM, MHD_OPTION_PER_IP_CONNECTION_LIMIT, o->max_per_ip,
        MHD_OPTION_CONNECTION_TIMEOUT, o->client_idle_s, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        o->connection_memory, MHD_OPTION_END);
    if (!s->daemon) {
        snprintf(err, errlen,
                 "could not start the HTTP server (libmicrohttpd refused the options)");
        close(o->listen_fd);
        return -1;
    }
    info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_EPOLL_FD);
    if (!info) {
        snprintf(err, errlen, "libmicrohttpd has no epoll support");
        goto fail;
    }
    if (init_handles(s, info->epoll_fd) < 0) {
        snprintf(err, errlen, "could not watch the HTTP server on the event loop");
        goto fail;
    }
    run_mhd(s);
    return 0;

fail:
    MHD_stop_daemon(s->daemon); /* closes the listening socket */
    s->daemon = NULL;
    s->listen_fd = -1;
    return -1;
}

void mr_server_wake(mr_server_t *s)
{
    if (s->dirty)
        return;
    s->dirty = 1;
    /* only a closing handle refuses; the check still runs MHD next turn */
    if (uv_idle_start(&s->idle, on_idle) != 0)
        mr_error("http server: cannot schedule MHD's run");
}

void mr_server_quiesce(mr_server_t *s)
{
    if (!s->daemon || s->listen_fd < 0)
        return;
    MHD_socket fd = MHD_quiesce_daemon(s->daemon);
    if (fd != MHD_INVALID_SOCKET)
        close(fd);
    s->listen_fd = -1;
}

unsigned mr_server_connections(const mr_server_t *s)
{
    return s->n_conns;
}

void mr_server_stop(mr_server_t *s)
{
    if (!s->daemon)
        return;
    uv_poll_stop(&s->epoll);
    uv_close((uv_handle_t *)&s->epoll, NULL);
    uv_close((uv_handle_t *)&s->timer, NULL);
    uv_close((uv_handle_t *)&s->check, NULL);
    uv_close((uv_handle_t *)&s->idle, NULL);
    uv_close((uv_handle_t *)&s->sweep, NULL);
    /* MHD closes the listening socket it was given unless quiesced before. */
    MHD_stop_daemon(s->daemon);
    s->daemon = NULL;
    s->listen_fd = -1;
}
