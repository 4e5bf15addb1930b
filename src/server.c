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
#include <sys/socket.h>
#include <unistd.h>

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
    if (MHD_get_timeout(s->daemon, &timeout) == MHD_YES)
        uv_timer_start(&s->timer, on_timer, timeout, 0);
    else
        uv_timer_stop(&s->timer);
}

static void mhd_logger(void *cls, const char *fmt, va_list ap)
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

int mr_server_start(mr_server_t *s, uv_loop_t *loop, const mr_server_opts_t *o, char *err,
                    size_t errlen)
{
    const union MHD_DaemonInfo *info;

    memset(s, 0, sizeof(*s));
    s->loop = loop;
    s->listen_fd = o->listen_fd;
    s->daemon = MHD_start_daemon(
        MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG, 0, NULL, NULL, o->handler,
        o->cls, MHD_OPTION_EXTERNAL_LOGGER, mhd_logger, NULL, MHD_OPTION_LISTEN_SOCKET,
        (MHD_socket)o->listen_fd, MHD_OPTION_NOTIFY_COMPLETED, o->completed, o->cls,
        MHD_OPTION_CONNECTION_LIMIT, o->max_connections, MHD_OPTION_CONNECTION_TIMEOUT,
        o->client_idle_s, MHD_OPTION_CONNECTION_MEMORY_LIMIT, o->connection_memory, MHD_OPTION_END);
    if (!s->daemon) {
        snprintf(err, errlen,
                 "could not start the HTTP server (libmicrohttpd refused the options)");
        close(o->listen_fd);
        return -1;
    }
    info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_EPOLL_FD);
    if (!info) {
        snprintf(err, errlen, "libmicrohttpd has no epoll support");
        MHD_stop_daemon(s->daemon);
        s->daemon = NULL;
        return -1;
    }
    uv_poll_init(loop, &s->epoll, info->epoll_fd);
    s->epoll.data = s;
    uv_poll_start(&s->epoll, UV_READABLE, on_epoll);
    uv_timer_init(loop, &s->timer);
    s->timer.data = s;
    uv_check_init(loop, &s->check);
    s->check.data = s;
    uv_check_start(&s->check, on_check);
    uv_idle_init(loop, &s->idle);
    s->idle.data = s;
    run_mhd(s);
    return 0;
}

void mr_server_wake(mr_server_t *s)
{
    if (s->dirty)
        return;
    s->dirty = 1;
    uv_idle_start(&s->idle, on_idle);
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
    const union MHD_DaemonInfo *info;

    if (!s->daemon)
        return 0;
    info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
    return info ? info->num_connections : 0;
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
    /* MHD closes the listening socket it was given unless quiesced before. */
    MHD_stop_daemon(s->daemon);
    s->daemon = NULL;
    s->listen_fd = -1;
}
