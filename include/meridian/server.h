/*
 * server — libmicrohttpd driven by a libuv loop, with no MHD threads.
 *
 * MHD runs in external-epoll mode: its epoll fd is watched by a uv_poll_t,
 * MHD_run() is called when it is readable, when MHD's own timeout (a
 * uv_timer_t re-armed after every run) expires, and from a uv_check_t when
 * something marked the server dirty — MHD_resume_connection wakes nothing in
 * external mode, so whoever resumes a connection calls mr_server_wake(). A
 * uv_idle_t keeps the loop from blocking in epoll while a wake is pending.
 *
 * Ownership: mr_server_t is embedded in the worker; all calls come from the
 * worker's loop thread. The listening socket is passed in and owned by the
 * server from mr_server_start on (closed by quiesce or stop).
 */
#ifndef MERIDIAN_SERVER_H
#define MERIDIAN_SERVER_H

#include <microhttpd.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct mr_server_opts {
    int listen_fd;
    unsigned max_connections;  /* beyond it new requests get 503 (see mr_server_over_limit) */
    unsigned max_per_ip;       /* connections of one client address; beyond it: closed at once */
    unsigned client_idle_s;    /* also bounds receiving one request's headers and body */
    unsigned keepalive_idle_s; /* a connection between two requests, after the first */
    size_t connection_memory;  /* MHD per-connection pool: bounds request headers */
    MHD_AccessHandlerCallback handler;
    MHD_RequestCompletedCallback completed;
    void *cls;
} mr_server_opts_t;

typedef struct mr_server_conn mr_server_conn_t;
typedef struct mr_server_conn_list {
    mr_server_conn_t *head, *tail;
} mr_server_conn_list_t;

typedef struct mr_server {
    uv_loop_t *loop;
    struct MHD_Daemon *daemon;
    int listen_fd;
    uv_poll_t epoll;
    uv_timer_t timer;
    uv_check_t check;
    uv_idle_t idle;
    uv_timer_t sweep; /* closes connections that are too slow to send a request */
    int dirty;
    unsigned max_connections;
    uint64_t client_idle_ms;
    uint64_t keepalive_idle_ms;
    /* the connections the sweep bounds, each list in the order their phase
     * began: [0] waiting for a request (client_idle_ms), [1] kept alive
     * between requests (keepalive_idle_ms); those in a request are in neither */
    mr_server_conn_list_t timed[2];
    unsigned n_conns;
} mr_server_t;

/* Opens a listening TCP socket (SO_REUSEADDR, non-blocking, backlog 4096) on
 * host:port; port 0 picks an ephemeral port. With `reuseport`, SO_REUSEPORT
 * lets each worker bind its own socket to the same port. Returns the fd and
 * the bound port, or -1 with err set. */
int mr_server_listen(const char *host, uint16_t port, int reuseport, uint16_t *bound_port,
                     char *err, size_t errlen);

int mr_server_start(mr_server_t *s, uv_loop_t *loop, const mr_server_opts_t *opts, char *err,
                    size_t errlen);
/* Ask for an MHD_run on this loop turn (after MHD_resume_connection). */
void mr_server_wake(mr_server_t *s);
/* Stop accepting new connections; existing ones continue. */
void mr_server_quiesce(mr_server_t *s);
/* Stops MHD and closes the uv handles. Every suspended connection must have
 * been resumed and finished first. The loop must run for close callbacks. */
void mr_server_stop(mr_server_t *s);
/* Open client connections. */
unsigned mr_server_connections(const mr_server_t *s);
/* True when a new request should be refused with 503: more connections are
 * open than max_connections (MHD itself accepts a few more so that the
 * refusal is an HTTP answer, not a stalled or reset connection). */
int mr_server_over_limit(const mr_server_t *s);

/* The gateway marks when a connection is inside a request (headers received,
 * response not yet complete). A new connection has client_idle_s to deliver
 * a complete request head; while its body is arriving, client_idle_s in
 * total; between two requests (kept alive) keepalive_idle_s. A connection
 * over its allowance is shut down, so neither a slowloris nor idle
 * keep-alive connections can hold the slots forever. */
void mr_server_request_begins(mr_server_t *s, struct MHD_Connection *conn);
void mr_server_body_received(mr_server_t *s, struct MHD_Connection *conn);
void mr_server_request_ends(mr_server_t *s, struct MHD_Connection *conn);

/* What the kernel may hold unsent for a client of an event stream
 * (SO_SNDBUF; Linux doubles it): without a cap it grows to tcp_wmem's
 * maximum (4 MiB) behind a client that stops reading, on top of the
 * stream buffer. The connection keeps it for its later requests. */
#define MR_SERVER_STREAM_SNDBUF (64 * 1024)
void mr_server_stream_socket(struct MHD_Connection *conn);

#endif
