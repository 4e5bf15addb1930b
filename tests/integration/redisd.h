/*
 * A redis-server for a test: started on a free 127.0.0.1 port with an
 * append-only file (fsync always) in a temporary directory, so a server
 * killed with SIGKILL comes back with its data when started again on the
 * same port and directory. The child dies with the test process
 * (PR_SET_PDEATHSIG). Readiness is a bounded poll of PING (10 s).
 *
 * Main thread only; no hiredis (the replies read here are one line).
 */
#ifndef MERIDIAN_TEST_REDISD_H
#define MERIDIAN_TEST_REDISD_H

#include <stdbool.h>
#include <sys/types.h>

typedef struct th_redis {
    pid_t pid; /* -1 when not running */
    int port;
    char dir[64];
} th_redis_t;

/* redis-server is on PATH. */
bool th_redis_available(void);

/* First call: a new port and directory; later calls (after th_redis_kill)
 * start it again on the same ones. 0, or -1 (not started in 10 s). */
int th_redis_start(th_redis_t *r);

/* Sends sig; SIGKILL/SIGTERM also reap it (pid -1 afterwards). */
void th_redis_kill(th_redis_t *r, int sig);

/* One inline command ("FLUSHALL"); 0 when the reply is not an error. */
int th_redis_cmd(const th_redis_t *r, const char *cmd);

/* Kills it and removes its directory. */
void th_redis_stop(th_redis_t *r);

#endif
