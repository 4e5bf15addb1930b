/*
 * upstream — HTTP transfers to providers through one libcurl multi handle
 * driven by the worker's libuv loop (CURLMOPT_SOCKETFUNCTION/TIMERFUNCTION).
 *
 * Ownership: mr_upstream_t is embedded in the worker and used only from the
 * worker's loop thread. Each mr_transfer_t belongs to the upstream from
 * mr_upstream_start until its on_done callback has returned, or until
 * mr_transfer_cancel; the caller's pointer is dead after either. Transfers
 * are pooled with their easy handles (no allocation per transfer; options
 * whose value did not change are not set again) and connections kept alive
 * in the multi handle's cache, so consecutive requests to one provider
 * reuse a TCP/TLS connection. A stream's handle keeps a 4 KiB receive
 * buffer for its whole life; a whole answer's 16 KiB.
 *
 * Silent re-sends: when a *reused* connection dies before any response
 * byte, libcurl sends the request again on a fresh connection by itself.
 * Connections idle longer than the request's keepalive_s are not reused
 * (CURLOPT_MAXAGE_CONN), which keeps them under providers' idle timeouts;
 * the re-sends that still happen are counted (on_done's `resends`, from
 * CURLOPT_PREREQFUNCTION: one call per request put on the wire).
 *
 * The connect timeout (connect_timeout_ms) is a uv timer of the transfer's,
 * from the start (or from a re-send's new socket) to PREREQFUNCTION, not
 * CURLOPT_CONNECTTIMEOUT_MS: curl keeps that option in its timer tree for the
 * whole transfer and re-sorts it on every socket event. It fails the
 * transfer exactly as curl's did (CURLE_OPERATION_TIMEDOUT: MR_FAIL_TIMEOUT).
 *
 * Callback rules (curl's): on_head and on_data run inside libcurl. Inside them
 * never cancel or unpause *this* transfer — return MR_DATA_ABORT or
 * MR_DATA_PAUSE instead. on_done runs outside libcurl and may start or cancel
 * any transfer.
 */
#ifndef MERIDIAN_UPSTREAM_H
#define MERIDIAN_UPSTREAM_H

#include "meridian/failure.h"

#include <curl/curl.h>
#include <stddef.h>
#include <uv.h>

typedef struct mr_transfer mr_transfer_t;
typedef struct mr_upstream_sock mr_upstream_sock_t;

typedef struct mr_upstream {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;  /* curl's timeout */
    uv_idle_t unpause; /* runs deferred curl_easy_pause(CONT) outside curl */
    mr_transfer_t *unpause_list;
    mr_upstream_sock_t *socks;  /* every socket context, for shutdown */
    mr_upstream_sock_t **by_fd; /* the same, indexed by fd (NULL: none) */
    size_t by_fd_cap;
    /* idle transfers, each with its easy handle: [0] for streams (small
     * receive buffers), [1] for whole answers */
    mr_transfer_t **pool[2];
    size_t n_pool[2];
    size_t pool_cap;
    size_t active;              /* transfers in flight */
    const char *default_cainfo; /* libcurl's built-in CA bundle (static), NULL when none */
    int closing;
} mr_upstream_t;

typedef enum {
    MR_DATA_OK = 0, /* consumed everything */
    MR_DATA_PAUSE,  /* consumed nothing; deliver again after mr_transfer_unpause */
    MR_DATA_ABORT,  /* stop the transfer; on_done follows with an error */
} mr_data_result_t;

typedef struct mr_upstream_head {
    long status;
    const char *content_type; /* "" when absent */
    long retry_after_s;       /* -1 when absent or not delta-seconds */
    long long content_length; /* -1 when absent (chunked, or not a number) */
} mr_upstream_head_t;

typedef struct mr_transfer_handler {
    void (*on_head)(void *ud, const mr_upstream_head_t *head);
    mr_data_result_t (*on_data)(void *ud, const char *p, size_t n);
    /* failure is curl's code mapped by mr_upstream_failure (MR_FAIL_NONE when
     * the transfer completed); error a short human text ("" when none);
     * resends: times libcurl put the request on the wire again by itself. */
    void (*on_done)(void *ud, mr_failure_t failure, const char *error, unsigned resends);
} mr_transfer_handler_t;

typedef struct mr_transfer_req {
    const char *url;
    struct curl_slist *headers; /* borrowed: must outlive the transfer */
    const char *body;           /* borrowed: must outlive the transfer */
    size_t body_len;
    long connect_timeout_ms;
    int http2;           /* offer HTTP/2 (TLS ALPN); else HTTP/1.1 */
    const char *ca_file; /* verify the upstream with this PEM bundle; NULL: the system's */
    int stream;          /* an event stream is expected: a small receive buffer */
    long keepalive_s;    /* reuse only connections idle for less (0: curl's 118 s) */
} mr_transfer_req_t;

/* 0, or -1 (nothing to close) when curl or libuv refused. */
int mr_upstream_init(mr_upstream_t *u, uv_loop_t *loop);
/* Cancels nothing: callers cancel their transfers first. Closes every handle;
 * the loop must run afterwards for close callbacks before `u` is freed. */
void mr_upstream_close(mr_upstream_t *u);

/* After a burst: frees idle pooled transfers (easy handles and receive
 * buffers) beyond `keep` of each kind, and when no transfer is in flight
 * and more than MR_UPSTREAM_TRIM_KEEP connections are idle, closes them all
 * (the next request connects anew). Below that, steady light traffic keeps
 * its keep-alive connections and as many transfers. Returns the number of
 * connections closed. */
#define MR_UPSTREAM_TRIM_KEEP 32
size_t mr_upstream_trim(mr_upstream_t *u, size_t keep);

/* Starts a POST. Returns NULL (and fills err) if curl refused the handle. */
mr_transfer_t *mr_upstream_start(mr_upstream_t *u, const mr_transfer_req_t *req,
                                 const mr_transfer_handler_t *h, void *ud, char *err,
                                 size_t errlen);
/* Aborts and frees the transfer; no callback fires afterwards. */
void mr_transfer_cancel(mr_transfer_t *t);
/* Resumes a transfer paused by MR_DATA_PAUSE, from the next loop turn. */
void mr_transfer_unpause(mr_transfer_t *t);

/* The failure a CURLcode stands for: the one place curl's codes are read. */
mr_failure_t mr_upstream_failure(int curlcode);

#endif
