/*
 * redisd — a redis-server per test program (redisd.h).
 */
#include "redisd.h"

#include "harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define START_MS 10000
#define REPLY_MS 2000

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

bool th_redis_available(void)
{
    return system("command -v redis-server >/dev/null 2>&1") == 0;
}

/* The first line of the reply to `cmd` into buf; -1 when no reply. */
static int exchange(int port, const char *cmd, char *buf, size_t cap)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), rc = -1;
    size_t n = 0;

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        send(fd, cmd, strlen(cmd), MSG_NOSIGNAL) == (ssize_t)strlen(cmd) &&
        send(fd, "\r\n", 2, MSG_NOSIGNAL) == 2) {
        double until = now_ms() + REPLY_MS;
        while (n + 1 < cap && now_ms() < until && !memchr(buf, '\n', n)) {
            struct pollfd p = {.fd = fd, .events = POLLIN};
            ssize_t got;
            if (poll(&p, 1, 100) <= 0)
                continue;
            if ((got = recv(fd, buf + n, cap - 1 - n, 0)) <= 0)
                break;
            n += (size_t)got;
        }
        buf[n] = '\0';
        rc = memchr(buf, '\n', n) ? 0 : -1;
    }
    close(fd);
    return rc;
}

int th_redis_cmd(const th_redis_t *r, const char *cmd)
{
    char reply[256];
    return exchange(r->port, cmd, reply, sizeof(reply)) == 0 && reply[0] != '-' ? 0 : -1;
}

static bool ping(const th_redis_t *r)
{
    char reply[64];
    return exchange(r->port, "PING", reply, sizeof(reply)) == 0 && !strncmp(reply, "+PONG", 5);
}

int th_redis_start(th_redis_t *r)
{
    char port[16];

    if (!r->dir[0]) {
        snprintf(r->dir, sizeof(r->dir), "/tmp/meridian-redis-XXXXXX");
        if (!mkdtemp(r->dir))
            return -1;
        r->port = th_refused_port();
    }
    snprintf(port, sizeof(port), "%d", r->port);
    r->pid = fork();
    if (r->pid == 0) {
        int fd = open("/dev/null", O_WRONLY);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(fd, 1);
        execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "yes", "--appendfsync", "always", "--dir", r->dir, "--daemonize",
               "no", (char *)NULL);
        _exit(127);
    }
    double until = now_ms() + START_MS;
    while (r->pid > 0 && !ping(r) && now_ms() < until)
        th_pause_ms(20);
    return r->pid > 0 && ping(r) ? 0 : -1;
}

void th_redis_kill(th_redis_t *r, int sig)
{
    if (r->pid <= 0)
        return;
    kill(r->pid, sig);
    if (sig == SIGKILL || sig == SIGTERM) {
        waitpid(r->pid, NULL, 0);
        r->pid = -1;
    }
}

void th_redis_stop(th_redis_t *r)
{
    char cmd[128];

    th_redis_kill(r, SIGKILL);
    if (r->dir[0]) {
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", r->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", r->dir);
        r->dir[0] = '\0';
    }
}
