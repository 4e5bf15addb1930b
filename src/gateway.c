#include "meridian/gateway.h"

#include "meridian/dispatch.h"
#include "meridian/log.h"
#include "meridian/observe.h"
#include "meridian/proxy.h"

#include <ctype.h>
#include <malloc.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

/* Kept for reuse after a burst: at most this many request objects (~6 KiB
 * each) and arena chunks (4 KiB) per worker. */
#define SPARE_REQUESTS 64
#define SPARE_CHUNKS 128
/* A request arena's bound besides its model: attempts, history, headers. */
#define POOL_BASE_BYTES (64 * 1024)

void mr_gateway_init(mr_gateway_t *gw, const mr_gateway_opts_t *o, mr_generation_t *gen)
{
    memset(gw, 0, sizeof(*gw));
    gw->env = (mr_request_env_t){
        .loop = o->loop,
        .server = o->server,
        .upstream = o->upstream,
        .metrics = o->metrics,
        .reqlog = o->reqlog,
        .status = o->status,
        .mem = &gw->mem,
        .chunks = &gw->chunks,
        .backoff_rng = &gw->backoff_rng,
        .worker = o->worker,
        .on_freed = o->on_request_freed,
        .on_freed_ud = o->ud,
    };
    if (getrandom(gw->rng, sizeof(gw->rng), 0) != sizeof(gw->rng)) {
        gw->rng[0] = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)gw;
        gw->rng[1] = 0x9E3779B97F4A7C15ull;
    }
    gw->rng[1] |= 1; /* xorshift needs a non-zero state */
    gw->backoff_rng = gw->rng[0] | 1;
    gw->gen = gen;
    mr_memacct_init(&gw->mem, gen->cfg->limits.worker_memory_bytes);
    mr_pool_cache_init(&gw->chunks, SPARE_CHUNKS);
}

static void free_spares(mr_gateway_t *gw)
{
    mr_pool_cache_free(&gw->chunks);
    while (gw->spare) {
        mr_request_t *r = gw->spare;
        gw->spare = r->next;
        free(r);
    }
    gw->n_spare = 0;
}

void mr_gateway_free(mr_gateway_t *gw)
{
    mr_generation_release(gw->gen);
    gw->gen = NULL;
    free_spares(gw);
}

mr_gateway_trim_t mr_gateway_trim(mr_gateway_t *gw)
{
    if (gw->trim_heap) {
        gw->trim_heap = 0;
        /* glibc keeps freed heap on purpose (main.c's trim threshold);
         * trimming walks every arena, so it is worth it only for a burst's
         * worth */
        if (mallinfo2().fordblks < MR_GATEWAY_TRIM_MIN)
            return MR_TRIM_NONE;
        malloc_trim(0);
        return MR_TRIM_HEAP;
    }
    size_t peak = gw->peak_requests;
    gw->peak_requests = gw->n_requests;
    if (gw->started == gw->trimmed_at || gw->n_requests > peak / 2)
        return MR_TRIM_NONE;
    free_spares(gw);
    size_t closed = mr_upstream_trim(gw->env.upstream, gw->n_requests);
    if (closed)
        mr_debug("worker %u: traffic fell, %zu idle upstream connections closed", gw->env.worker,
                 closed);
    /* with requests still draining, the next period releases the rest */
    if (gw->n_requests == 0)
        gw->trimmed_at = gw->started;
    /* transfers and sockets are freed by their handles' close callbacks,
     * after this loop turn: the heap is trimmed by the next call */
    gw->trim_heap = 1;
    return MR_TRIM_RELEASED;
}

void mr_gateway_use(mr_gateway_t *gw, mr_generation_t *gen)
{
    mr_generation_release(gw->gen);
    gw->gen = gen;
    /* what requests in flight hold stays counted against the new limit */
    gw->mem.limit = gen->cfg->limits.worker_memory_bytes;
}

const mr_generation_t *mr_gateway_generation(const mr_gateway_t *gw)
{
    return gw->gen;
}

size_t mr_gateway_in_flight(const mr_gateway_t *gw)
{
    return gw->n_requests;
}

/* ---- a request's life --------------------------------------------------- */

static uint64_t rng_next(mr_gateway_t *gw)
{
    /* xorshift128+: request ids need uniqueness, not secrecy */
    uint64_t s1 = gw->rng[0];
    const uint64_t s0 = gw->rng[1];
    gw->rng[0] = s0;
    s1 ^= s1 << 23;
    gw->rng[1] = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
    return gw->rng[1] + s0;
}

static int valid_client_id(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++) {
        unsigned char c = (unsigned char)s[n];
        if (!(isalnum(c) || c == '-' || c == '_' || c == '.' || c == ':'))
            return 0;
    }
    return n > 0 && n <= 64;
}

static void set_id(mr_gateway_t *gw, mr_request_t *r)
{
    const char *cid = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "x-request-id");

    if (cid && valid_client_id(cid))
        snprintf(r->id, sizeof(r->id), "%s", cid);
    else
        snprintf(r->id, sizeof(r->id), "req_%016llx", (unsigned long long)rng_next(gw));
}

static void link_request(mr_gateway_t *gw, mr_request_t *r)
{
    r->next = gw->requests;
    if (gw->requests)
        gw->requests->prev = r;
    gw->requests = r;
    if (++gw->n_requests > gw->peak_requests)
        gw->peak_requests = gw->n_requests;
    gw->started++;
}

static void unlink_request(mr_gateway_t *gw, mr_request_t *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else
        gw->requests = r->next;
    if (r->next)
        r->next->prev = r->prev;
    gw->n_requests--;
}

static void free_request_cb(uv_handle_t *h)
{
    free(h->data);
}

/* A request object: a spare one (no malloc under steady load), zeroed. */
static mr_request_t *request_alloc(mr_gateway_t *gw)
{
    mr_request_t *r = gw->spare;

    if (!r)
        return calloc(1, sizeof(*r));
    gw->spare = r->next;
    gw->n_spare--;
    memset(r, 0, sizeof(*r));
    return r;
}

static mr_request_t *request_new(mr_gateway_t *gw, struct MHD_Connection *conn)
{
    mr_request_t *r = request_alloc(gw);
    const mr_limits_t *l = &gw->gen->cfg->limits;

    if (!r)
        return NULL;
    if (uv_timer_init(gw->env.loop, &r->timer) != 0)
        goto fail;
    r->timer.data = r;
    if (uv_timer_init(gw->env.loop, &r->watch_timer) != 0)
        goto fail_timer;
    r->watch_timer.data = r;
    r->open_handles = 2;
    r->env = &gw->env;
    r->gen = mr_generation_acquire(gw->gen);
    r->conn = conn;
    r->start_ms = uv_now(gw->env.loop);
    r->start_ns = uv_hrtime();
    r->endpoint = MR_EP_COUNT;
    r->inbound = &mr_inbound_chat;
    r->last_target_id = SIZE_MAX;
    r->usage = MR_USAGE_UNKNOWN;
    r->audit = mr_reqlog_wants_audit(gw->env.reqlog);
    if (r->audit)
        mr_sha256_init(&r->resp_sha);
    if (r->audit || mr_reqlog_wants_access(gw->env.reqlog)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        r->unix_time = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
    }
    r->mem.acct = &gw->mem;
    /* what a request keeps in its arena is small; only its model can be
     * as long as its body (and a large piece is charged to the budget) */
    mr_pool_init(&r->pool, &gw->chunks, l->max_body_bytes + POOL_BASE_BYTES);
    r->pool.hold = &r->mem;
    mr_buf_init(&r->body, l->max_body_bytes);
    r->body.hold = &r->mem;
    mr_buf_init(&r->resp_copy, l->max_response_bytes);
    r->resp_copy.hold = &r->mem;
    set_id(gw, r);
    link_request(gw, r);
    return r;

fail_timer:
    uv_close((uv_handle_t *)&r->timer, free_request_cb);
    return NULL;
fail:
    free(r);
    return NULL;
}

static void request_closed(uv_handle_t *h)
{
    mr_request_t *r = h->data;

    if (--r->open_handles > 0)
        return;
    const mr_request_env_t *env = r->env;
    /* env is the gateway's own: the request goes back to its spares */
    mr_gateway_t *gw = (mr_gateway_t *)((uintptr_t)env - offsetof(mr_gateway_t, env));
    mr_generation_release(r->gen);
    if (gw->n_spare < SPARE_REQUESTS) {
        r->next = gw->spare;
        gw->spare = r;
        gw->n_spare++;
    } else {
        free(r);
    }
    if (env->on_freed)
        env->on_freed(env->on_freed_ud);
}

static void request_free(mr_gateway_t *gw, mr_request_t *r)
{
    unlink_request(gw, r);
    mr_proxy_free(r);
    mr_buf_free(&r->body);
    mr_buf_free(&r->resp_copy);
    free(r->out_body);
    mr_pool_clear(&r->pool);
    mr_mem_release_all(&r->mem); /* with what stolen buffers and trees held */
    uv_close((uv_handle_t *)&r->timer, request_closed);
    uv_close((uv_handle_t *)&r->watch_timer, request_closed);
    if (r->poll_inited)
        uv_close((uv_handle_t *)&r->client_poll, request_closed);
}

/* ---- MHD callbacks ------------------------------------------------------ */

enum MHD_Result mr_gateway_handle(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    mr_gateway_t *gw = cls;
    mr_request_t *r = *con_cls;

    (void)version;
    if (!r) {
        if (!(r = request_new(gw, conn)))
            return MHD_NO;
        *con_cls = r;
        return mr_dispatch_first(r, url, method);
    }
    if (r->state == MR_RS_BODY)
        return mr_dispatch_body(r, upload_data, upload_data_size);
    return mr_proxy_resumed(r);
}

void mr_gateway_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                          enum MHD_RequestTerminationCode toe)
{
    mr_gateway_t *gw = cls;
    mr_request_t *r = *con_cls;

    mr_server_request_ends(gw->env.server, conn);
    if (!r)
        return;
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
        mr_debug("%s: connection ended early (code %d)", r->id, (int)toe);
    else if (r->served_by)
        mr_debug("%s: served by %s after %u attempt(s), usage %ld+%ld tokens", r->id,
                 r->served_by->name, r->n_attempts, r->usage.prompt_tokens,
                 r->usage.completion_tokens);
    mr_proxy_finish(r);
    mr_observe_request(r, toe == MHD_REQUEST_TERMINATED_COMPLETED_OK);
    request_free(gw, r);
    *con_cls = NULL;
}

void mr_gateway_abort_all(mr_gateway_t *gw)
{
    for (mr_request_t *r = gw->requests; r; r = r->next) {
        if (r->state != MR_RS_DONE)
            mr_proxy_abort(r, MR_FAIL_SHUTDOWN);
    }
}
