#include "meridian/gateway.h"

#include "meridian/adapter.h"
#include "meridian/auth.h"
#include "meridian/buf.h"
#include "meridian/error.h"
#include "meridian/json_span.h"
#include "meridian/log.h"
#include "meridian/metrics.h"
#include "meridian/reqlog.h"
#include "meridian/router.h"
#include "meridian/sha256.h"
#include "meridian/status.h"
#include "meridian/status_page.h"
#include "meridian/worker.h"

#include <ctype.h>
#include <stdarg.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define ERROR_BODY_MAX (64 * 1024) /* upstream error bodies we keep */
/* MHD's buffer per streamed response (malloc'd for the stream's life): SSE
 * events are small, and 10,000 open streams must not cost 16 KiB each. */
#define STREAM_BLOCK 2048
/* A suspended request starts watching its client socket only after this
 * long: most answers come sooner, and the watch costs several syscalls. */
#define DISCONNECT_WATCH_DELAY_MS 25

typedef enum {
    RS_BODY,      /* receiving the request body */
    RS_UPSTREAM,  /* suspended while an attempt runs */
    RS_RESPOND,   /* a full response is prepared; resumed to queue it */
    RS_STREAM_GO, /* first stream bytes arrived; resumed to queue the stream */
    RS_STREAMING, /* streamed response queued */
    RS_ABORT,     /* client left or drain deadline: resumed to be closed */
    RS_DONE,      /* response queued */
} req_state_t;

typedef mr_attempt_rec_t attempt_t;

struct mr_request {
    mr_worker_t *w;
    mr_generation_t *gen; /* the config this request runs under, start to end */
    struct MHD_Connection *conn;
    mr_request_t *prev, *next;
    req_state_t state;
    mr_endpoint_t endpoint;
    int close_connection;   /* answer with Connection: close */
    const char *local_body; /* GET endpoints answered by the gateway itself */
    size_t local_len;
    const char *local_ctype;
    char id[72];
    uint64_t start_ms; /* uv_now at creation */

    mr_buf_t body;
    int body_too_large;
    int stream;
    const mr_key_t *key;               /* the gateway key that authenticated it, if keys are on */
    int explain;                       /* GET /v1/gateway/route */
    int providers;                     /* GET /v1/gateway/providers */
    int metrics;                       /* GET /metrics */
    int status_json;                   /* GET /status.json */
    char *model;                       /* client's model; the plan may point into it */
    const char *models[MR_MAX_MODELS]; /* model + fallback models (borrowed from json) */
    size_t n_models;
    int planned;
    json_t *json; /* the parsed body, kept for dialect adapters */
    /* arch-conv: the body as a conversation model, parsed at the first
     * translating attempt and reused by every later one (adapter.h) */
    mr_adapter_conv_t conv;
    int client_wants_usage;
    mr_plan_t plan;
    size_t next_candidate;
    attempt_t *attempts; /* plan.max_attempts of them, allocated once planned */
    unsigned n_attempts;
    int deadline_hit;
    int has_build_error; /* a candidate's dialect cannot express this request */
    mr_error_t build_error;

    /* circuit breakers and retry budget */
    size_t health_id;           /* the current target's breaker, SIZE_MAX when untracked */
    int health_probe;           /* this attempt is the half-open probe */
    int health_reported;        /* the attempt's outcome went to the breaker */
    int sent_any;               /* an upstream attempt was sent: later ones are retries */
    int budget_denied;          /* the retry budget stopped a failover */
    unsigned n_skipped;         /* candidates skipped because their circuit is open */
    unsigned n_busy;            /* candidates skipped because their provider is at max_inflight */
    size_t last_target_id;      /* target of the previous attempt, SIZE_MAX when none */
    unsigned same_target_tries; /* backoff exponent for repeats of one target */
    const mr_provider_t *inflight_on; /* counted in that provider's in-flight transfers */
    uint64_t skipped_retry_ms;        /* soonest time one of them reopens */
    long up_retry_after;              /* Retry-After of the current answer, -1 when none */
    long retry_after_out;             /* Retry-After to send the client, 0 for none */

    /* current attempt */
    const mr_candidate_t *cur;
    int got_head;
    mr_transfer_t *xfer;
    const mr_adapter_t *adapter;
    mr_adapter_in_t in;
    char *fwd[33]; /* "name: value" of allowed client headers, NULL-terminated */
    mr_adapter_req_t up_req;
    mr_stream_xlate_t *xl;
    int stream_errored; /* the translator already ended the stream with an error event */
    mr_usage_t usage;
    uint64_t attempt_start_ns;
    long up_status;
    char up_ctype[128];
    int up_invalid; /* a 2xx stream that does not look like SSE */
    int up_too_big;
    int paused;      /* upstream paused because the stream buffer is full */
    int paused_once; /* ... at least once during this attempt (debug log) */

    /* response */
    mr_buf_t resp; /* upstream body (buffered) or stream buffer */
    int committed; /* stream: the client has the response head */
    int upstream_done;
    int suspended;
    const mr_provider_t *served_by;
    const mr_candidate_t *served_cand; /* the target whose answer the client got */
    int final_status;                  /* HTTP status queued, 0 before */
    int out_status;
    char *out_body;
    size_t out_len;
    const char *out_ctype;

    /* observability: timings, and body digests when the audit file is on */
    uint64_t start_ns;
    uint64_t first_byte_ns; /* first response byte handed to MHD, 0 before */
    double unix_time;
    int audit; /* hash what the client receives */
    mr_sha256_t resp_sha;
    mr_buf_t resp_copy; /* audit.bodies: what the client received */

    uv_timer_t timer;
    uv_timer_t watch_timer; /* arms client_poll once a suspension lasts */
    uv_poll_t client_poll;
    int poll_inited;
    int open_handles;
};

static void start_attempt(mr_request_t *r);
static void arm_timer(mr_request_t *r, uint64_t ms);
static void transfer_gone(mr_request_t *r);
static void health_release(mr_request_t *r);
static void launch_attempt(mr_request_t *r);
static void on_backoff(uv_timer_t *t);

/* ---- small helpers ---------------------------------------------------- */

static uint64_t rng_next(mr_worker_t *w)
{
    /* xorshift128+: request ids need uniqueness, not secrecy */
    uint64_t s1 = w->rng[0];
    const uint64_t s0 = w->rng[1];
    w->rng[0] = s0;
    s1 ^= s1 << 23;
    w->rng[1] = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
    return w->rng[1] + s0;
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

static uint32_t ms_since_ns(uint64_t start_ns)
{
    return (uint32_t)((uv_hrtime() - start_ns) / 1000000u);
}

static void add_common_headers(mr_request_t *r, struct MHD_Response *resp)
{
    MHD_add_response_header(resp, "x-request-id", r->id);
    if (r->n_attempts > 0) {
        char n[16];
        snprintf(n, sizeof(n), "%u", r->n_attempts);
        MHD_add_response_header(resp, "x-meridian-attempts", n);
    }
    if (r->planned && r->plan.policy_label[0])
        MHD_add_response_header(resp, "x-meridian-policy", r->plan.policy_label);
    if (r->served_by) {
        const mr_provider_t *p = r->served_by;
        MHD_add_response_header(resp, "x-meridian-provider", p->name);
        MHD_add_response_header(resp, "x-meridian-model", r->attempts[r->n_attempts - 1].model);
        MHD_add_response_header(resp, "x-meridian-vendor", p->vendor);
        if (p->region[0])
            MHD_add_response_header(resp, "x-meridian-region", p->region);
        if (p->jurisdiction[0])
            MHD_add_response_header(resp, "x-meridian-jurisdiction", p->jurisdiction);
    }
}

/* What the client receives, for the audit record's digest (and copy). */
static void audit_response_bytes(mr_request_t *r, const char *p, size_t n)
{
    if (!r->audit || n == 0)
        return;
    mr_sha256_update(&r->resp_sha, p, n);
    if (mr_reqlog_wants_bodies(r->w->shared->reqlog))
        mr_buf_append(&r->resp_copy, p, n);
}

/* Queues a prepared response from inside the access handler. */
static enum MHD_Result queue_buffer(mr_request_t *r, int status, char *body, size_t len,
                                    const char *ctype)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    enum MHD_Result ret;

    if (!resp) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    if (r->close_connection)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    if (r->retry_after_out > 0) {
        char ra[24];
        snprintf(ra, sizeof(ra), "%ld", r->retry_after_out);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, ra);
    }
    add_common_headers(r, resp);
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW,
                                r->endpoint == MR_EP_COUNT ? "GET" : "POST");
    audit_response_bytes(r, body, len);
    ret = MHD_queue_response(r->conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    r->state = RS_DONE;
    r->final_status = status;
    r->first_byte_ns = uv_hrtime();
    return ret;
}

static void prepare_error(mr_request_t *r, const mr_error_t *e, json_t *extra_attempts)
{
    size_t len = 0;
    char *body = mr_error_body(e, extra_attempts ? "attempts" : NULL, extra_attempts, &len);

    free(r->out_body);
    r->out_status = e->status;
    r->out_body = body;
    r->out_len = len;
    r->out_ctype = "application/json";
}

static enum MHD_Result respond_error(mr_request_t *r, const mr_error_t *e)
{
    prepare_error(r, e, NULL);
    if (!r->out_body)
        return MHD_NO;
    char *body = r->out_body;
    r->out_body = NULL;
    return queue_buffer(r, r->out_status, body, r->out_len, r->out_ctype);
}

static enum MHD_Result respond_errorf(mr_request_t *r, int status, const char *code,
                                      const char *param, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static enum MHD_Result respond_errorf(mr_request_t *r, int status, const char *code,
                                      const char *param, const char *fmt, ...)
{
    mr_error_t e;
    va_list ap;

    mr_error_set(&e, status, NULL, code, param, "%s", "");
    va_start(ap, fmt);
    vsnprintf(e.message, sizeof(e.message), fmt, ap);
    va_end(ap);
    return respond_error(r, &e);
}

static enum MHD_Result respond_static(mr_request_t *r, int status, const char *body, size_t len,
                                      const char *ctype)
{
    char *copy = malloc(len + 1);
    if (!copy)
        return MHD_NO;
    memcpy(copy, body, len);
    return queue_buffer(r, status, copy, len, ctype ? ctype : "application/json");
}

/* ---- suspension and client liveness ----------------------------------- */

static void on_client_poll(uv_poll_t *p, int status, int events);

/* Suspended connections are invisible to MHD: watch for the client
 * leaving ourselves, so its upstream transfer is not left running. */
static void on_watch_timer(uv_timer_t *t)
{
    mr_request_t *r = t->data;

    if (r->poll_inited || r->state == RS_DONE || r->state == RS_ABORT)
        return;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (ci && uv_poll_init(&r->w->loop, &r->client_poll, ci->connect_fd) == 0) {
        r->poll_inited = 1;
        r->open_handles++;
        r->client_poll.data = r;
        uv_poll_start(&r->client_poll, UV_DISCONNECT, on_client_poll);
    }
}

static void suspend(mr_request_t *r)
{
    if (r->suspended)
        return;
    MHD_suspend_connection(r->conn);
    r->suspended = 1;
    if (!r->poll_inited && !uv_is_active((uv_handle_t *)&r->watch_timer))
        uv_timer_start(&r->watch_timer, on_watch_timer, DISCONNECT_WATCH_DELAY_MS, 0);
}

static void resume(mr_request_t *r)
{
    if (!r->suspended)
        return;
    r->suspended = 0;
    MHD_resume_connection(r->conn);
    mr_server_wake(&r->w->server);
}

static void stop_client_poll(mr_request_t *r)
{
    uv_timer_stop(&r->watch_timer);
    if (r->poll_inited && uv_is_active((uv_handle_t *)&r->client_poll))
        uv_poll_stop(&r->client_poll);
}

static void abort_request(mr_request_t *r)
{
    health_release(r);
    if (r->xfer) {
        mr_transfer_cancel(r->xfer);
        transfer_gone(r);
    }
    uv_timer_stop(&r->timer);
    stop_client_poll(r);
    r->state = RS_ABORT;
    resume(r);
}

static void on_client_poll(uv_poll_t *p, int status, int events)
{
    mr_request_t *r = p->data;

    (void)status;
    (void)events;
    mr_debug("%s: client went away, aborting", r->id);
    abort_request(r);
}

/* ---- soft state feedback ------------------------------------------------ */

static mr_softstate_t *softstate(mr_request_t *r)
{
    return &r->gen->ss.super;
}

/* Time to the response head feeds least_latency; an attempt that failed
 * before its head counts as the whole first-byte budget, so a host that
 * fails fast never looks fast. */
static void record_ttfb(mr_request_t *r, int failed)
{
    if (!r->cur || r->got_head)
        return;
    r->got_head = 1;
    uint32_t ms = failed ? r->gen->cfg->timeouts.first_byte_ms : ms_since_ns(r->attempt_start_ns);
    mr_router_record_ttfb(softstate(r), r->cur, ms, uv_now(&r->w->loop));
}

static void record_served(mr_request_t *r)
{
    if (r->cur)
        mr_router_record_served(softstate(r), &r->plan, r->cur, uv_now(&r->w->loop));
}

/* ---- circuit breakers --------------------------------------------------- */

static mr_outcome_t attempt_outcome(const mr_request_t *r, const char *error)
{
    mr_outcome_t o = mr_health_outcome(r->up_status);
    return error && error[0] && o == MR_OUTCOME_SUCCESS ? MR_OUTCOME_FAILURE : o;
}

/* The breaker's state as /metrics and /status show it. */
static void publish_breaker(mr_request_t *r, size_t id, const mr_target_t *t)
{
    uint64_t now = uv_now(&r->w->loop);
    mr_health_state_t st;

    if (id == SIZE_MAX || !t)
        return;
    st = mr_health_state(&r->gen->health, id, now);
    mr_metrics_breaker(r->gen->mv, t, (int)st,
                       mr_metrics_now_ms() + mr_health_retry_in_ms(&r->gen->health, id, now));
}

static const mr_target_t *cur_target(const mr_request_t *r)
{
    return r->cur ? r->cur->target : NULL;
}

/* Exactly one report per attempt that reached the upstream. */
static void health_report(mr_request_t *r, const char *error)
{
    if (r->health_id == SIZE_MAX || r->health_reported)
        return;
    r->health_reported = 1;
    uint32_t ttfb = r->got_head ? ms_since_ns(r->attempt_start_ns) : MR_HEALTH_NO_TTFB;
    mr_health_report_attempt(&r->gen->health, r->health_id, r->health_probe,
                             attempt_outcome(r, error), r->up_retry_after, ttfb,
                             uv_now(&r->w->loop));
    publish_breaker(r, r->health_id, cur_target(r));
}

/* The attempt ends without an outcome (nothing sent, client gone): give a
 * half-open probe slot back rather than wedge the breaker. */
static void health_release(mr_request_t *r)
{
    if (r->health_id != SIZE_MAX && !r->health_reported && r->health_probe) {
        mr_health_cancel(&r->gen->health, r->health_id, uv_now(&r->w->loop));
        publish_breaker(r, r->health_id, cur_target(r));
    }
    r->health_reported = 1;
}

static unsigned *inflight_of(mr_request_t *r, const mr_provider_t *p)
{
    return &r->gen->inflight[p - r->gen->cfg->providers];
}

/* limits: a provider's max_inflight bounds this worker's concurrent
 * transfers to it; beyond it the next candidate is tried instead. */
static int at_inflight_cap(mr_request_t *r, const mr_provider_t *p)
{
    return p->max_inflight && *inflight_of(r, p) >= p->max_inflight;
}

static void transfer_gone(mr_request_t *r)
{
    r->xfer = NULL;
    if (r->inflight_on) {
        unsigned *n = inflight_of(r, r->inflight_on);
        mr_metrics_inflight(r->gen->mv, r->inflight_on, --*n);
        r->inflight_on = NULL;
    }
}

/* The next candidate whose breaker lets traffic through; open ones are
 * skipped at once (and counted for the error), never tried. */
static const mr_candidate_t *take_candidate(mr_request_t *r)
{
    uint64_t now = uv_now(&r->w->loop);

    while (r->next_candidate < r->plan.n_candidates) {
        const mr_candidate_t *c = &r->plan.candidates[r->next_candidate++];
        size_t id = c->target ? c->target->id : SIZE_MAX;
        if (at_inflight_cap(r, c->provider)) {
            r->n_busy++;
            mr_metrics_skipped(r->gen->mv, c->provider, MR_SKIP_MAX_INFLIGHT);
            continue;
        }
        r->health_id = id;
        r->health_probe = 0;
        r->health_reported = 0;
        if (id == SIZE_MAX)
            return c;
        mr_health_verdict_t v = mr_health_acquire(&r->gen->health, id, now);
        if (v == MR_HEALTH_PROBE)
            publish_breaker(r, id, c->target);
        if (v != MR_HEALTH_SKIP) {
            r->health_probe = v == MR_HEALTH_PROBE;
            return c;
        }
        mr_metrics_skipped(r->gen->mv, c->provider, MR_SKIP_CIRCUIT_OPEN);
        uint64_t in = mr_health_retry_in_ms(&r->gen->health, id, now);
        if (r->n_skipped++ == 0 || in < r->skipped_retry_ms)
            r->skipped_retry_ms = in;
        r->health_id = SIZE_MAX;
    }
    return NULL;
}

/* ---- final answers ---------------------------------------------------- */

static json_t *attempts_json(const mr_request_t *r)
{
    json_t *arr = json_array();
    for (unsigned i = 0; i < r->n_attempts; i++) {
        const attempt_t *a = &r->attempts[i];
        json_t *o = json_object();
        json_object_set_new(o, "provider", json_string(a->provider->name));
        json_object_set_new(o, "model", json_string(a->model));
        json_object_set_new(o, "status", a->status ? json_integer(a->status) : json_null());
        json_object_set_new(o, "error", a->error[0] ? json_string(a->error) : json_null());
        json_object_set_new(o, "ms", json_integer(a->ms));
        json_array_append_new(arr, o);
    }
    return arr;
}

static void describe_attempt(const attempt_t *a, char *out, size_t n)
{
    if (a->error[0])
        snprintf(out, n, "%s (%s, %u ms)", a->provider->name, a->error, a->ms);
    else
        snprintf(out, n, "%s (HTTP %ld, %u ms)", a->provider->name, a->status, a->ms);
}

/* Targets the policy stack kept out of this request. */
static size_t policy_excluded(const mr_request_t *r)
{
    size_t n = 0;
    for (size_t i = 0; i < r->plan.n_excluded; i++)
        n += r->plan.excluded[i].kind == MR_EXCLUDED_POLICY;
    return n;
}

/* Every candidate failed (or the deadline passed): one OpenAI-shaped error
 * that lists each attempt. */
static void finish_failed(mr_request_t *r)
{
    if (r->n_attempts == 0 && r->has_build_error && r->n_skipped == 0 && r->n_busy == 0) {
        prepare_error(r, &r->build_error, NULL);
        r->state = RS_RESPOND;
        resume(r);
        return;
    }
    if (r->n_attempts == 0 && r->n_skipped == 0) {
        mr_error_t e;
        /* every candidate's provider is saturated (max_inflight): shed load */
        r->retry_after_out = 1;
        mr_error_set(&e, 429, NULL, "providers_busy", NULL,
                     "every provider for \"%s\" is at its max_inflight limit; retry shortly",
                     r->model);
        prepare_error(r, &e, NULL);
        r->state = RS_RESPOND;
        resume(r);
        return;
    }
    if (r->n_attempts == 0) {
        mr_error_t e;
        /* every candidate's circuit is open: fail fast, tell the client when */
        r->retry_after_out = (long)((r->skipped_retry_ms + 999) / 1000);
        if (r->retry_after_out < 1)
            r->retry_after_out = 1;
        mr_error_set(&e, 503, NULL, "targets_unavailable", NULL,
                     "all %u candidate target%s of \"%s\" are failing (circuit open); retry in "
                     "%ld s%s%s",
                     r->n_skipped, r->n_skipped == 1 ? "" : "s", r->model, r->retry_after_out,
                     r->plan.policy_label[0] ? " under policy " : "", r->plan.policy_label);
        prepare_error(r, &e, NULL);
        r->state = RS_RESPOND;
        resume(r);
        return;
    }
    mr_error_t e;
    unsigned n429 = 0, ntimeout = 0, noverload = 0;
    char list[MR_ERROR_MESSAGE_MAX];
    size_t used = 0;
    int status;
    const char *code;

    for (unsigned i = 0; i < r->n_attempts; i++) {
        const attempt_t *a = &r->attempts[i];
        char one[256];
        if (a->status == 429)
            n429++;
        if (a->status == 429 || a->status == 503 || a->status == 529)
            noverload++;
        if (a->outcome == MR_AO_TIMEOUT)
            ntimeout++;
        describe_attempt(a, one, sizeof(one));
        used += (size_t)snprintf(list + used, used < sizeof(list) ? sizeof(list) - used : 0, "%s%s",
                                 i ? "; " : "", one);
        if (used >= sizeof(list))
            used = sizeof(list) - 1;
    }
    if (r->deadline_hit || (r->n_attempts && ntimeout == r->n_attempts)) {
        status = 504;
        code = "upstream_timeout";
    } else if (r->n_attempts && n429 == r->n_attempts) {
        status = 429;
        code = "upstream_rate_limited";
    } else if (r->n_attempts && noverload == r->n_attempts) {
        status = 503;
        code = "upstream_unavailable";
    } else if (policy_excluded(r)) {
        /* Other hosts exist but the policy forbids them: the service the
         * client may use is unavailable, not merely one broken upstream. */
        status = 503;
        code = "upstream_unavailable";
    } else {
        status = 502;
        code = "upstream_failed";
    }
    char policy[MR_POLICY_LABEL_MAX + 96] = "";
    if (r->plan.policy_label[0] && policy_excluded(r))
        snprintf(policy, sizeof(policy),
                 " under policy %s (%zu other target%s excluded by the policy)",
                 r->plan.policy_label, policy_excluded(r), policy_excluded(r) == 1 ? "" : "s");
    else if (r->plan.policy_label[0])
        snprintf(policy, sizeof(policy), " under policy %s", r->plan.policy_label);
    char notes[96] = "";
    if (r->n_skipped || r->n_busy || r->budget_denied)
        snprintf(notes, sizeof(notes), " [skipped: %u circuit open, %u at max_inflight%s]",
                 r->n_skipped, r->n_busy, r->budget_denied ? "; retry budget exhausted" : "");
    mr_error_set(&e, status, "api_error", code, NULL, "%s after %u attempt%s%s: %s%s",
                 r->deadline_hit ? "request deadline exceeded" : "upstream failed", r->n_attempts,
                 r->n_attempts == 1 ? "" : "s", policy, list, notes);
    json_t *extra = attempts_json(r);
    prepare_error(r, &e, extra);
    json_decref(extra);
    r->state = RS_RESPOND;
    resume(r);
}

/* An upstream answered with a status we must not retry (e.g. 400): pass it
 * on in the OpenAI error shape (the adapter keeps the provider's message). */
static void finish_passthrough_error(mr_request_t *r)
{
    mr_buf_t out;

    mr_buf_init(&out, ERROR_BODY_MAX);
    r->adapter->translate_error(r->served_by, r->up_status, mr_buf_ptr(&r->resp),
                                mr_buf_len(&r->resp), &out);
    free(r->out_body);
    r->out_body = mr_buf_steal(&out, &r->out_len);
    mr_buf_free(&out);
    r->out_status = (int)r->up_status;
    r->out_ctype = "application/json";
    r->state = RS_RESPOND;
    resume(r);
}

static void finish_success(mr_request_t *r)
{
    record_served(r);
    r->served_cand = r->cur;
    free(r->out_body);
    r->out_body = mr_buf_steal(&r->resp, &r->out_len);
    r->out_status = (int)r->up_status;
    r->out_ctype = r->up_ctype[0] ? r->up_ctype : "application/json";
    r->state = RS_RESPOND;
    resume(r);
}

/* ---- streaming -------------------------------------------------------- */

static void stream_fail(mr_request_t *r, const char *why)
{
    mr_error_t e;
    size_t len;
    char *body;

    mr_error_set(&e, 502, "api_error", "upstream_stream_error", NULL,
                 "upstream %s failed mid-stream: %s", r->served_by->name, why);
    body = mr_error_body(&e, NULL, NULL, &len);
    if (body) {
        mr_buf_append_force(&r->resp, "data: ", 6);
        mr_buf_append_force(&r->resp, body, len);
        mr_buf_append_force(&r->resp, "\n\n", 2);
        free(body);
    }
    mr_warn("%s: stream from %s ended early: %s", r->id, r->served_by->name, why);
}

static ssize_t stream_reader(void *cls, uint64_t pos, char *out, size_t max)
{
    mr_request_t *r = cls;
    size_t n;

    (void)pos;
    if (r->state == RS_ABORT)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    if (mr_buf_len(&r->resp)) {
        n = mr_buf_read(&r->resp, out, max);
        audit_response_bytes(r, out, n);
        if (r->first_byte_ns == 0)
            r->first_byte_ns = uv_hrtime();
        if (r->paused && r->xfer && mr_buf_len(&r->resp) <= r->resp.limit / 2) {
            r->paused = 0;
            mr_transfer_unpause(r->xfer);
            arm_timer(r, r->gen->cfg->timeouts.stream_idle_ms);
        }
        return (ssize_t)n;
    }
    if (r->upstream_done)
        return MHD_CONTENT_READER_END_OF_STREAM;
    /* Nothing buffered: park the connection until the upstream sends more
     * (returning 0 without suspending would make MHD spin). */
    suspend(r);
    return 0;
}

static enum MHD_Result queue_stream(mr_request_t *r)
{
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, STREAM_BLOCK, stream_reader, r, NULL);
    enum MHD_Result ret;

    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            r->up_ctype[0] ? r->up_ctype : "text/event-stream");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    add_common_headers(r, resp);
    ret = MHD_queue_response(r->conn, (unsigned)r->up_status, resp);
    MHD_destroy_response(resp);
    r->state = RS_STREAMING;
    r->committed = 1;
    r->final_status = (int)r->up_status;
    r->served_cand = r->cur;
    record_served(r);
    health_report(r, NULL); /* a stream's outcome is decided when it starts flowing */
    return ret;
}

/* ---- upstream callbacks ----------------------------------------------- */

static int is_2xx(long s)
{
    return s >= 200 && s < 300;
}

static void on_up_head(void *ud, const mr_upstream_head_t *h)
{
    mr_request_t *r = ud;
    const mr_timeouts_t *t = &r->gen->cfg->timeouts;

    r->up_status = h->status;
    r->up_retry_after = h->retry_after_s;
    record_ttfb(r, 0);
    snprintf(r->up_ctype, sizeof(r->up_ctype), "%s", h->content_type);
    if (!is_2xx(h->status))
        r->resp.limit = ERROR_BODY_MAX;
    if (r->stream && is_2xx(h->status))
        arm_timer(r, t->stream_idle_ms);
}

static int looks_like_sse(const char *p, size_t n)
{
    /* The first byte of an event stream starts a field name or a comment. */
    while (n && (*p == '\n' || *p == '\r')) {
        p++;
        n--;
    }
    return n == 0 || *p == 'd' || *p == 'e' || *p == 'i' || *p == 'r' || *p == ':';
}

/* Output is ready for the client: commit on the first bytes, else wake the
 * reader parked in stream_reader. */
static void stream_output_ready(mr_request_t *r)
{
    if (mr_buf_len(&r->resp) == 0)
        return;
    if (!r->committed) {
        if (r->state == RS_UPSTREAM) {
            r->state = RS_STREAM_GO;
            resume(r);
        }
    } else {
        resume(r);
    }
}

static mr_data_result_t on_up_data(void *ud, const char *p, size_t n)
{
    mr_request_t *r = ud;

    if (!r->stream || !is_2xx(r->up_status)) {
        if (mr_buf_append(&r->resp, p, n) < 0) {
            if (!is_2xx(r->up_status))
                return MR_DATA_OK; /* error bodies are only kept up to a cap */
            r->up_too_big = 1;
            return MR_DATA_ABORT;
        }
        return MR_DATA_OK;
    }
    if (r->adapter->passthrough && !r->committed && mr_buf_len(&r->resp) == 0 &&
        !looks_like_sse(p, n)) {
        r->up_invalid = 1;
        return MR_DATA_ABORT;
    }
    if (mr_buf_len(&r->resp) >= r->resp.limit) {
        /* the client is the slow side: the idle timeout must not blame the
         * provider while we hold it back; re-armed when the reader drains */
        if (!r->paused_once++)
            mr_debug("%s: stream buffer full, upstream %s paused", r->id, r->served_by->name);
        r->paused = 1;
        uv_timer_stop(&r->timer);
        return MR_DATA_PAUSE;
    }
    arm_timer(r, r->gen->cfg->timeouts.stream_idle_ms);
    if (r->adapter->stream_feed(r->xl, p, n, &r->resp) < 0) {
        if (!r->committed) {
            /* nothing reached the client: a failed attempt, not a broken stream */
            mr_buf_reset(&r->resp);
            r->up_invalid = 1;
            return MR_DATA_ABORT;
        }
        r->stream_errored = 1;
        stream_output_ready(r);
        return MR_DATA_ABORT;
    }
    stream_output_ready(r);
    return MR_DATA_OK;
}

/* Copies with truncation; curl's error texts can be longer than we keep. */
static void copy_text(char *dst, size_t cap, const char *src)
{
    size_t n = src ? strnlen(src, cap - 1) : 0;
    memcpy(dst, src ? src : "", n);
    dst[n] = '\0';
}

/* The bounded vocabulary of /metrics for how an attempt ended. */
static mr_attempt_outcome_t classify_attempt(long status, const char *error)
{
    if (error && error[0]) {
        if (strstr(error, "timeout") || strstr(error, "timed out"))
            return MR_AO_TIMEOUT;
        if (strstr(error, "connect") || strstr(error, "resolve"))
            return MR_AO_CONNECT;
        if (strstr(error, "upstream") || strstr(error, "invalid") || strstr(error, "unusable") ||
            strstr(error, "empty event stream"))
            return MR_AO_INVALID;
        return MR_AO_TRANSPORT;
    }
    if (status == 429)
        return MR_AO_HTTP_429;
    if (status >= 500)
        return MR_AO_HTTP_5XX;
    if (status >= 400)
        return MR_AO_HTTP_4XX;
    return status >= 200 && status < 300 ? MR_AO_SUCCESS : MR_AO_INVALID;
}

static void record_attempt_end(mr_request_t *r, const char *error)
{
    attempt_t *a = &r->attempts[r->n_attempts - 1];
    record_ttfb(r, 1); /* no-op when the head already arrived */
    health_report(r, error);
    a->ms = ms_since_ns(r->attempt_start_ns);
    a->status = r->up_status;
    a->outcome = classify_attempt(r->up_status, error);
    copy_text(a->error, sizeof(a->error), error);
}

static void next_or_fail(mr_request_t *r)
{
    uint64_t now = uv_now(&r->w->loop);

    if (r->state == RS_STREAM_GO)
        r->state = RS_UPSTREAM; /* resumed but not answered: the handler re-suspends */
    if (now - r->start_ms >= r->gen->cfg->timeouts.request_ms)
        r->deadline_hit = 1;
    if (!r->deadline_hit && r->next_candidate < r->plan.n_candidates &&
        r->n_attempts < r->plan.max_attempts)
        start_attempt(r);
    else
        finish_failed(r);
}

static void read_usage(mr_request_t *r)
{
    if (r->xl)
        r->adapter->stream_usage(r->xl, &r->usage);
}

/* A complete 2xx body: forwarded as is when the dialect is OpenAI's, else
 * translated. Returns 0, or -1 with `why` when the answer is unusable. */
static int take_body(mr_request_t *r, char *why, size_t whylen)
{
    mr_error_t e;

    if (r->adapter->passthrough) {
        if (mr_json_validate(mr_buf_ptr(&r->resp), mr_buf_len(&r->resp)) != 0) {
            snprintf(why, whylen, "invalid JSON in upstream response");
            return -1;
        }
        r->adapter->translate(&r->in, mr_buf_ptr(&r->resp), mr_buf_len(&r->resp), NULL, &r->usage,
                              &e);
        return 0;
    }
    mr_buf_t out;
    mr_buf_init(&out, r->gen->cfg->limits.max_response_bytes);
    if (r->adapter->translate(&r->in, mr_buf_ptr(&r->resp), mr_buf_len(&r->resp), &out, &r->usage,
                              &e) < 0) {
        mr_buf_free(&out);
        snprintf(why, whylen, "unusable upstream response: %.96s", e.message);
        return -1;
    }
    mr_buf_free(&r->resp);
    r->resp = out;
    return 0;
}

static void on_up_done(void *ud, int code, const char *error)
{
    mr_request_t *r = ud;
    char why[160];

    transfer_gone(r);
    uv_timer_stop(&r->timer);
    if (r->committed) {
        /* After the first byte went out there is no failover: end the
         * stream with an SSE error event rather than leave the client hanging. */
        r->upstream_done = 1;
        if (code == CURLE_OK)
            r->adapter->stream_end(r->xl, &r->resp);
        else if (!r->stream_errored)
            stream_fail(r, error);
        read_usage(r);
        record_attempt_end(r, code == CURLE_OK ? NULL : error);
        resume(r);
        return;
    }
    if (code == CURLE_OK && is_2xx(r->up_status)) {
        if (r->stream) {
            if (r->adapter->stream_end(r->xl, &r->resp) < 0) {
                /* ended in an error (or truncated) before anything reached the
                 * client: a failed attempt, not a broken stream */
                mr_buf_reset(&r->resp);
                record_attempt_end(r, "upstream stream ended with an error");
            } else if (mr_buf_len(&r->resp) == 0) {
                record_attempt_end(r, "empty event stream");
            } else {
                /* the whole stream arrived before we got to answer: send it */
                read_usage(r);
                record_attempt_end(r, NULL);
                r->upstream_done = 1;
                stream_output_ready(r);
                return;
            }
        } else if (take_body(r, why, sizeof(why)) < 0) {
            record_attempt_end(r, why);
        } else {
            record_attempt_end(r, NULL);
            finish_success(r);
            return;
        }
    } else if (code != CURLE_OK) {
        if (r->up_invalid)
            snprintf(why, sizeof(why), "upstream stream is not a valid event stream");
        else if (r->up_too_big)
            snprintf(why, sizeof(why), "upstream response larger than limits.max_response_bytes");
        else
            copy_text(why, sizeof(why), error);
        record_attempt_end(r, why);
    } else if (!r->adapter->retryable(r->up_status, mr_buf_ptr(&r->resp), mr_buf_len(&r->resp))) {
        record_attempt_end(r, NULL);
        finish_passthrough_error(r);
        return;
    } else {
        record_attempt_end(r, NULL);
    }
    mr_debug("%s: attempt %u on %s failed, status %ld", r->id, r->n_attempts,
             r->attempts[r->n_attempts - 1].provider->name, r->up_status);
    r->served_by = NULL;
    next_or_fail(r);
}

static const mr_transfer_handler_t upstream_handler = {on_up_head, on_up_data, on_up_done};

/* ---- timers ----------------------------------------------------------- */

static void on_timer(uv_timer_t *t)
{
    mr_request_t *r = t->data;
    uint64_t now = uv_now(&r->w->loop);
    char why[96];

    if (!r->xfer)
        return;
    mr_transfer_cancel(r->xfer);
    transfer_gone(r);
    if (r->committed) {
        snprintf(why, sizeof(why), "no data for %u ms (timeouts.stream_idle_ms)",
                 r->gen->cfg->timeouts.stream_idle_ms);
        stream_fail(r, why);
        r->upstream_done = 1;
        record_attempt_end(r, why);
        resume(r);
        return;
    }
    if (now - r->start_ms >= r->gen->cfg->timeouts.request_ms) {
        r->deadline_hit = 1;
        snprintf(why, sizeof(why), "timeout: request deadline %u ms reached",
                 r->gen->cfg->timeouts.request_ms);
    } else if (r->up_status == 0) {
        snprintf(why, sizeof(why), "timeout: no response headers within %u ms",
                 r->gen->cfg->timeouts.first_byte_ms);
    } else {
        snprintf(why, sizeof(why), "timeout: response body incomplete");
    }
    record_attempt_end(r, why);
    r->served_by = NULL;
    next_or_fail(r);
}

/* Arms the request's single timer for `ms` from now, never past the overall
 * request deadline (streams already answering are exempt: their bound is
 * the idle timeout). */
static void arm_timer(mr_request_t *r, uint64_t ms)
{
    uint64_t now = uv_now(&r->w->loop);
    uint64_t deadline = r->start_ms + r->gen->cfg->timeouts.request_ms;

    if (!r->committed) {
        uint64_t left = deadline > now ? deadline - now : 0;
        if (ms > left)
            ms = left;
    }
    uv_timer_start(&r->timer, on_timer, ms, 0);
}

/* ---- attempts --------------------------------------------------------- */

/* Members only the gateway reads (OpenRouter routing fields): never forwarded. */
static const char *const gateway_only_members[] = {"provider", "models", NULL};

/* The client headers this provider accepts (forward_headers), as lines for
 * the adapter. Everything else the client sent stays here. */
static int collect_forwarded(mr_request_t *r, const mr_provider_t *p)
{
    size_t n = 0;

    for (size_t i = 0; i < p->n_forward_headers && n < 32; i++) {
        const char *v =
            MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, p->forward_headers[i]);
        if (!v)
            continue;
        size_t len = strlen(p->forward_headers[i]) + strlen(v) + 3;
        if (!(r->fwd[n] = malloc(len)))
            return -1;
        snprintf(r->fwd[n++], len, "%s: %s", p->forward_headers[i], v);
    }
    r->fwd[n] = NULL;
    return 0;
}

static void end_attempt_state(mr_request_t *r)
{
    for (size_t i = 0; r->fwd[i]; i++) {
        free(r->fwd[i]);
        r->fwd[i] = NULL;
    }
    mr_adapter_req_free(&r->up_req);
    if (r->xl) {
        r->adapter->stream_free(r->xl);
        r->xl = NULL;
    }
}

static void start_attempt(mr_request_t *r)
{
    mr_worker_t *w = r->w;
    const mr_candidate_t *c = take_candidate(r);
    char err[160];
    mr_error_t e;

    if (!c) {
        finish_failed(r);
        return;
    }
    attempt_t *a = &r->attempts[r->n_attempts++];
    memset(a, 0, sizeof(*a));
    a->provider = c->provider;
    a->model = c->model;
    r->cur = c;
    r->got_head = 0;
    r->served_by = c->provider;
    r->up_status = 0;
    r->up_retry_after = -1;
    r->up_ctype[0] = '\0';
    r->up_invalid = r->up_too_big = r->paused = r->paused_once = r->stream_errored = 0;
    mr_buf_reset(&r->resp);
    r->resp.limit = r->stream ? r->gen->cfg->limits.stream_buffer_bytes
                              : r->gen->cfg->limits.max_response_bytes;
    r->attempt_start_ns = uv_hrtime();
    end_attempt_state(r);
    r->adapter = mr_adapter_for(c->provider->kind);
    if (!r->adapter) {
        snprintf(err, sizeof(err), "provider kind %s is not supported by this build",
                 mr_provider_kind_name(c->provider->kind));
        health_release(r);
        record_attempt_end(r, err);
        next_or_fail(r);
        return;
    }
    r->in = (mr_adapter_in_t){
        .provider = c->provider,
        .endpoint = r->endpoint,
        .model = c->model,
        .stream = r->stream,
        .client_wants_usage = r->client_wants_usage,
        .body = mr_buf_ptr(&r->body),
        .body_len = mr_buf_len(&r->body),
        .json = r->json,
        .strip = gateway_only_members,
        .extra_headers = (const char *const *)r->fwd,
    };
    if (collect_forwarded(r, c->provider) < 0) {
        health_release(r);
        record_attempt_end(r, "out of memory");
        next_or_fail(r);
        return;
    }
    if (mr_adapter_conv(r->adapter, &r->conv, &r->in, &e) < 0 || /* arch-conv */
        r->adapter->build(&r->in, &r->up_req, &e) < 0) {
        /* not an upstream attempt: nothing was sent. Another candidate may
         * speak a dialect that can carry the request; if none can, the
         * client gets this error. */
        if (!r->has_build_error) {
            r->build_error = e;
            r->has_build_error = 1;
        }
        health_release(r);
        r->n_attempts--;
        r->cur = NULL;
        r->served_by = NULL;
        next_or_fail(r);
        return;
    }
    if (r->stream && !(r->xl = r->adapter->stream_new(&r->in))) {
        health_release(r);
        record_attempt_end(r, "out of memory");
        next_or_fail(r);
        return;
    }
    /* Only a repeat of the same target waits (exponential backoff, full
     * jitter): a different target is tried at once. */
    if (r->health_id != SIZE_MAX && r->health_id == r->last_target_id) {
        uint64_t now = uv_now(&w->loop), deadline = r->start_ms + r->gen->cfg->timeouts.request_ms;
        uint64_t ms = mr_backoff_ms(r->same_target_tries++, 250, 4000, &w->backoff_rng);
        if (now + ms >= deadline)
            ms = deadline > now ? deadline - now : 0;
        if (ms > 0) {
            uv_timer_start(&r->timer, on_backoff, ms, 0);
            return;
        }
    }
    launch_attempt(r);
}

/* Sends the attempt start_attempt prepared. */
static void launch_attempt(mr_request_t *r)
{
    mr_worker_t *w = r->w;
    const mr_candidate_t *c = r->cur;
    char err[160];

    r->attempt_start_ns = uv_hrtime(); /* a backoff wait is not the upstream's time */
    /* A failover is a retry: the worker's budget keeps an outage from
     * multiplying the load on the remaining providers. */
    if (r->sent_any && !mr_retry_budget_try(&w->retry_budget, uv_now(&w->loop))) {
        health_release(r);
        r->n_attempts--;
        r->cur = NULL;
        r->served_by = NULL;
        r->budget_denied = 1;
        mr_metrics_retry_denied(r->gen->mv);
        finish_failed(r);
        return;
    }
    mr_transfer_req_t req = {
        .url = r->up_req.url,
        .headers = r->up_req.headers,
        .body = r->up_req.body,
        .body_len = r->up_req.body_len,
        .connect_timeout_ms = r->gen->cfg->timeouts.connect_ms,
        .http2 = c->provider->http2,
        .ca_file = c->provider->ca_file,
    };
    r->xfer = mr_upstream_start(&w->upstream, &req, &upstream_handler, r, err, sizeof(err));
    if (!r->xfer) {
        health_release(r);
        record_attempt_end(r, err);
        next_or_fail(r);
        return;
    }
    r->sent_any = 1;
    r->last_target_id = r->health_id;
    r->inflight_on = c->provider;
    mr_metrics_inflight(r->gen->mv, c->provider, ++*inflight_of(r, c->provider));
    mr_debug("%s: attempt %u -> %s (%s)", r->id, r->n_attempts, c->provider->name, c->model);
    arm_timer(r, r->gen->cfg->timeouts.first_byte_ms);
}

static void on_backoff(uv_timer_t *t)
{
    launch_attempt(t->data);
}

/* ---- request start: validation and routing ----------------------------- */

/* Routing under the policy stack: the key's policy, the x-meridian-policy
 * header (or the default policy) and the body's OpenRouter `provider`
 * object all filter; the request can narrow what its key allows, never widen. */
static int plan_request(mr_request_t *r, const json_t *models, const json_t *provider,
                        mr_error_t *e)
{
    mr_policy_stack_t st;
    const char *header = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "x-meridian-policy");

    if (mr_router_models_from_request(r->model, models, r->models, &r->n_models, e) < 0 ||
        mr_policy_stack_init(&st, r->gen->cfg, r->key, header, provider, e) < 0)
        return -1;
    r->planned = 1;
    return mr_router_plan_policy(r->gen->cfg, &st, r->models, r->n_models, softstate(r),
                                 uv_now(&r->w->loop), &r->plan, e);
}

/* A 403 lists every target the policies excluded and why. */
static enum MHD_Result respond_plan_error(mr_request_t *r, mr_error_t *e)
{
    if (e->status != 403)
        return respond_error(r, e);
    /* one denial per policy layer that excluded something */
    for (size_t i = 0; i < r->plan.n_excluded; i++) {
        const mr_exclusion_t *x = &r->plan.excluded[i];
        size_t k = 0;
        if (x->kind != MR_EXCLUDED_POLICY)
            continue;
        while (k < i && !(r->plan.excluded[k].kind == MR_EXCLUDED_POLICY &&
                          strcmp(r->plan.excluded[k].policy ? r->plan.excluded[k].policy : "",
                                 x->policy ? x->policy : "") == 0))
            k++;
        if (k == i)
            mr_metrics_denial(r->gen->mv,
                              x->policy && strcmp(x->policy, "request") ? x->policy : NULL);
    }
    json_t *excluded = mr_plan_exclusions_json(&r->plan);
    size_t len = 0;
    char *body = mr_error_body(e, "excluded", excluded, &len);
    json_decref(excluded);
    if (!body)
        return MHD_NO;
    return queue_buffer(r, e->status, body, len, "application/json");
}

static enum MHD_Result respond_explain(mr_request_t *r)
{
    mr_policy_stack_t st;
    mr_error_t e;
    json_t *out = NULL;
    const char *model = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "model");
    const char *policy = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "policy");

    if (!policy)
        policy = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "x-meridian-policy");
    if (!model || !*model)
        return respond_errorf(r, 400, "missing_required_parameter", "model",
                              "GET /v1/gateway/route needs ?model=ROUTE_OR_PROVIDER/MODEL");
    const char *models[1] = {model};
    if (mr_policy_stack_init(&st, r->gen->cfg, r->key, policy, NULL, &e) < 0 ||
        mr_router_explain(r->gen->cfg, &st, models, 1, softstate(r), uv_now(&r->w->loop), &out,
                          &e) < 0)
        return respond_error(r, &e);
    char *body = json_dumps(out, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(out);
    if (!body)
        return MHD_NO;
    return queue_buffer(r, 200, body, strlen(body), "application/json");
}

/* GET /v1/gateway/providers: every route target's breaker and latency, as
 * this worker sees them (each worker keeps its own view). */
static enum MHD_Result respond_providers(mr_request_t *r)
{
    const mr_config_t *cfg = r->gen->cfg;
    uint64_t now = uv_now(&r->w->loop);
    char *seen = calloc(cfg->n_target_ids ? cfg->n_target_ids : 1, 1);
    json_t *data = json_array(), *root = json_object();
    const mr_retry_budget_t *b = &r->w->retry_budget;

    for (size_t i = 0; seen && i < cfg->n_routes; i++)
        for (size_t t = 0; t < cfg->routes[i].n_targets; t++) {
            const mr_target_t *tg = &cfg->routes[i].targets[t];
            if (seen[tg->id])
                continue;
            seen[tg->id] = 1;
            json_t *o = mr_health_json(&r->gen->health, tg->id, now);
            if (!o)
                continue;
            json_object_set_new(o, "provider", json_string(tg->provider->name));
            json_object_set_new(o, "model", json_string(tg->model));
            json_object_set_new(o, "enabled", json_boolean(tg->provider->enabled));
            json_array_append_new(data, o);
        }
    free(seen);
    json_object_set_new(root, "object", json_string("list"));
    json_object_set_new(root, "worker", json_integer(r->w->index));
    json_object_set_new(root, "now_ms", json_integer((json_int_t)now));
    json_object_set_new(root, "retry_budget",
                        json_pack("{s:I,s:I,s:I,s:f,s:I,s:I}", "requests", (json_int_t)b->requests,
                                  "retries", (json_int_t)b->retries, "denied",
                                  (json_int_t)b->denied, "ratio", b->opts.ratio, "window_s",
                                  (json_int_t)b->opts.window_s, "min_retries_per_s",
                                  (json_int_t)b->opts.min_retries_per_s));
    json_object_set_new(root, "data", data);
    char *body = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
    json_decref(root);
    if (!body)
        return MHD_NO;
    return queue_buffer(r, 200, body, strlen(body), "application/json");
}

/* GET /metrics: every worker's series, summed. */
static enum MHD_Result respond_metrics(mr_request_t *r)
{
    mr_buf_t out;
    size_t len;

    mr_buf_init(&out, SIZE_MAX);
    if (mr_metrics_render(r->w->shared->metrics, &out) < 0) {
        mr_buf_free(&out);
        return MHD_NO;
    }
    mr_reqlog_metrics(r->w->shared->reqlog, &out);
    char *body = mr_buf_steal(&out, &len);
    mr_buf_free(&out);
    if (!body)
        return MHD_NO;
    return queue_buffer(r, 200, body, len, "text/plain; version=0.0.4; charset=utf-8");
}

static enum MHD_Result respond_status_json(mr_request_t *r)
{
    size_t len;
    char *body = mr_status_json(r->w->shared->status, r->gen->cfg, &len);
    if (!body)
        return MHD_NO;
    return queue_buffer(r, 200, body, len, "application/json");
}

static enum MHD_Result begin_proxy(mr_request_t *r)
{
    const char *p = mr_buf_ptr(&r->body);
    size_t len = mr_buf_len(&r->body);
    json_error_t jerr;
    json_t *root, *model, *stream;
    mr_error_t e;

    if (len == 0)
        return respond_errorf(r, 400, "invalid_request_error", NULL,
                              "request body is empty: expected a JSON object");
    root = json_loadb(p, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root && mr_json_validate(p, len) != 0) {
        /* jansson tolerates a few non-JSON bytes (a NUL after a number) that
         * would make the forwarded body differ from what was validated */
        json_decref(root);
        return respond_errorf(r, 400, "invalid_json", NULL,
                              "request body is not strict JSON (RFC 8259)");
    }
    if (!root) {
        mr_error_set(&e, 400, NULL, "invalid_json", NULL,
                     "request body is not valid JSON: %s (line %d, column %d)", jerr.text,
                     jerr.line, jerr.column);
        return respond_error(r, &e);
    }
    r->json = root; /* freed with the request */
    if (!json_is_object(root))
        return respond_errorf(r, 400, "invalid_request_error", NULL,
                              "request body must be a JSON object");
    model = json_object_get(root, "model");
    stream = json_object_get(root, "stream");
    if (!model || json_is_null(model))
        return respond_errorf(r, 400, "missing_required_parameter", "model",
                              "you must provide a model parameter");
    if (!json_is_string(model) || json_string_length(model) == 0)
        return respond_errorf(r, 400, "invalid_type", "model", "model must be a non-empty string");
    if (stream && !json_is_boolean(stream) && !json_is_null(stream))
        return respond_errorf(r, 400, "invalid_type", "stream", "stream must be a boolean");
    r->stream = r->endpoint != MR_EP_EMBEDDINGS && json_is_true(stream);
    r->client_wants_usage =
        json_is_true(json_object_get(json_object_get(root, "stream_options"), "include_usage"));
    r->model = strdup(json_string_value(model));
    if (!r->model)
        return MHD_NO;
    if (plan_request(r, json_object_get(root, "models"), json_object_get(root, "provider"), &e) < 0)
        return respond_plan_error(r, &e);
    if (!(r->attempts =
              calloc(r->plan.max_attempts ? r->plan.max_attempts : 1, sizeof(*r->attempts))))
        return MHD_NO;
    mr_retry_budget_request(&r->w->retry_budget, uv_now(&r->w->loop));
    r->state = RS_UPSTREAM;
    suspend(r);
    start_attempt(r);
    return MHD_YES;
}

/* ---- MHD callbacks ---------------------------------------------------- */

static mr_request_t *request_new(mr_worker_t *w, struct MHD_Connection *conn)
{
    mr_request_t *r = calloc(1, sizeof(*r));
    const char *cid;

    if (!r)
        return NULL;
    r->w = w;
    r->gen = mr_worker_acquire(w);
    r->conn = conn;
    r->start_ms = uv_now(&w->loop);
    r->start_ns = uv_hrtime();
    r->endpoint = MR_EP_COUNT;
    r->audit = mr_reqlog_wants_audit(w->shared->reqlog);
    if (r->audit)
        mr_sha256_init(&r->resp_sha);
    if (r->audit || mr_reqlog_wants_access(w->shared->reqlog)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        r->unix_time = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
    }
    mr_buf_init(&r->resp_copy, r->gen->cfg->limits.max_response_bytes);
    r->usage.prompt_tokens = r->usage.completion_tokens = -1;
    r->health_id = SIZE_MAX;
    r->last_target_id = SIZE_MAX;
    mr_buf_init(&r->body, r->gen->cfg->limits.max_body_bytes);
    mr_buf_init(&r->resp, r->gen->cfg->limits.max_response_bytes);
    uv_timer_init(&w->loop, &r->timer);
    uv_timer_init(&w->loop, &r->watch_timer);
    r->timer.data = r->watch_timer.data = r;
    r->open_handles = 2;
    cid = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "x-request-id");
    if (cid && valid_client_id(cid))
        snprintf(r->id, sizeof(r->id), "%s", cid);
    else
        snprintf(r->id, sizeof(r->id), "req_%016llx", (unsigned long long)rng_next(w));
    r->next = w->requests;
    if (w->requests)
        w->requests->prev = r;
    w->requests = r;
    w->n_requests++;
    return r;
}

static void request_closed(uv_handle_t *h)
{
    mr_request_t *r = h->data;

    if (--r->open_handles > 0)
        return;
    mr_worker_t *w = r->w;
    mr_worker_release(r->gen);
    free(r);
    mr_worker_request_ended(w);
}

static void request_free(mr_request_t *r)
{
    mr_worker_t *w = r->w;

    health_release(r);
    if (r->xfer) {
        mr_transfer_cancel(r->xfer);
        transfer_gone(r);
    }
    if (r->prev)
        r->prev->next = r->next;
    else
        w->requests = r->next;
    if (r->next)
        r->next->prev = r->prev;
    w->n_requests--;
    mr_buf_free(&r->body);
    mr_buf_free(&r->resp);
    mr_buf_free(&r->resp_copy);
    end_attempt_state(r);
    free(r->out_body);
    free(r->model);
    free(r->attempts);
    mr_plan_release(&r->plan);
    mr_adapter_conv_free(&r->conv); /* arch-conv */
    json_decref(r->json);
    uv_close((uv_handle_t *)&r->timer, request_closed);
    uv_close((uv_handle_t *)&r->watch_timer, request_closed);
    if (r->poll_inited)
        uv_close((uv_handle_t *)&r->client_poll, request_closed);
}

static enum MHD_Result header_bytes_it(void *cls, enum MHD_ValueKind kind, const char *key,
                                       const char *value)
{
    size_t *sum = cls;
    (void)kind;
    *sum += strlen(key) + (value ? strlen(value) : 0) + 4;
    return MHD_YES;
}

static int json_content_type(const char *ct)
{
    size_t n = strlen("application/json");
    if (!ct)
        return 1; /* absent: assume JSON, as most gateways do */
    while (*ct == ' ')
        ct++;
    return strncasecmp(ct, "application/json", n) == 0 &&
           (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

/* Strips an optional "/v1" so both base URLs clients use work. */
static const char *api_path(const char *url)
{
    if (strncmp(url, "/v1/", 4) == 0)
        return url + 3;
    return url;
}

static enum MHD_Result handle_first(mr_request_t *r, const char *url, const char *method)
{
    const char *path = api_path(url);
    int is_get = strcmp(method, MHD_HTTP_METHOD_GET) == 0;
    int is_post = strcmp(method, MHD_HTTP_METHOD_POST) == 0;
    size_t hdr = 0;

    mr_server_request_begins(&r->w->server, r->conn);
    if (mr_server_over_limit(&r->w->server)) {
        mr_error_t e;
        r->close_connection = 1;
        mr_error_set(&e, 503, NULL, "too_many_connections", NULL,
                     "the gateway holds %u connections, its limit is %u "
                     "(limits.max_connections); retry shortly",
                     mr_server_connections(&r->w->server), r->gen->cfg->limits.max_connections);
        return respond_error(r, &e);
    }
    MHD_get_connection_values(r->conn, MHD_HEADER_KIND, header_bytes_it, &hdr);
    if (hdr > r->gen->cfg->limits.max_header_bytes) {
        mr_error_t e;
        mr_error_set(&e, MHD_HTTP_REQUEST_HEADER_FIELDS_TOO_LARGE, NULL, "headers_too_large", NULL,
                     "request headers are %zu bytes; the limit is %zu (limits.max_header_bytes)",
                     hdr, r->gen->cfg->limits.max_header_bytes);
        return respond_error(r, &e);
    }
    for (int i = 0; i < MR_EP_COUNT; i++) {
        if (strcmp(path, mr_endpoint_path((mr_endpoint_t)i)) == 0)
            r->endpoint = (mr_endpoint_t)i; /* known early: refusals are counted too */
    }
    int observability = strcmp(url, "/metrics") == 0 || strcmp(url, "/status") == 0 ||
                        strcmp(url, "/status.json") == 0;
    if (strcmp(url, "/healthz") != 0 && !(observability && r->gen->cfg->public_metrics)) {
        mr_error_t e;
        const char *auth =
            MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
        if (mr_auth_check(r->gen->cfg, auth, &r->key, &e) < 0)
            return respond_error(r, &e);
    }
    if (observability) {
        if (!is_get && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
            return respond_errorf(r, 405, "method_not_allowed", NULL,
                                  "%s is not allowed here; use GET", method);
        r->metrics = url[1] == 'm';
        r->status_json = strcmp(url, "/status.json") == 0;
        if (strcmp(url, "/status") == 0) {
            r->local_body = (const char *)mr_status_page_html;
            r->local_len = mr_status_page_html_len;
            r->local_ctype = "text/html; charset=utf-8";
        }
        return MHD_YES;
    }
    if (strcmp(path, "/gateway/route") == 0 || strcmp(path, "/gateway/providers") == 0) {
        if (!is_get)
            return respond_errorf(r, 405, "method_not_allowed", NULL,
                                  "%s is not allowed here; use GET", method);
        r->explain = path[9] == 'r';
        r->providers = !r->explain;
        return MHD_YES;
    }
    if (strcmp(path, "/models") == 0 || strcmp(url, "/healthz") == 0) {
        if (!is_get && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
            return respond_errorf(r, 405, "method_not_allowed", NULL,
                                  "%s is not allowed here; use GET", method);
        /* Answered on MHD's next call: queueing during the first one makes
         * MHD close the keep-alive connection. */
        if (strcmp(url, "/healthz") == 0) {
            static const char ok[] = "{\"status\":\"ok\"}";
            r->local_body = ok;
            r->local_len = sizeof(ok) - 1;
        } else {
            r->local_body = r->gen->models_body;
            r->local_len = r->gen->models_len;
        }
        return MHD_YES;
    }
    if (r->endpoint == MR_EP_COUNT)
        return respond_errorf(r, 404, "unknown_url", NULL,
                              "unknown path %s; Meridian serves /v1/chat/completions, "
                              "/v1/completions, /v1/embeddings and /v1/models",
                              url);
    if (!is_post)
        return respond_errorf(r, 405, "method_not_allowed", NULL,
                              "%s is not allowed here; use POST", method);
    if (!json_content_type(
            MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE)))
        return respond_errorf(r, 415, "unsupported_media_type", NULL,
                              "Content-Type must be application/json");
    const char *cl =
        MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl && strtoull(cl, NULL, 10) > r->gen->cfg->limits.max_body_bytes)
        r->body_too_large = 1;
    if (r->body_too_large) {
        mr_error_t e;
        mr_error_set(&e, 413, NULL, "request_too_large", NULL,
                     "request body exceeds %zu bytes (limits.max_body_bytes)",
                     r->gen->cfg->limits.max_body_bytes);
        return respond_error(r, &e);
    }
    return MHD_YES;
}

enum MHD_Result mr_gateway_handle(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    mr_worker_t *w = cls;
    mr_request_t *r = *con_cls;

    (void)version;
    if (!r) {
        r = request_new(w, conn);
        if (!r)
            return MHD_NO;
        *con_cls = r;
        return handle_first(r, url, method);
    }
    switch (r->state) {
    case RS_BODY:
        if (*upload_data_size) {
            if (!r->body_too_large && mr_buf_append(&r->body, upload_data, *upload_data_size) < 0)
                r->body_too_large = 1;
            *upload_data_size = 0;
            return MHD_YES;
        }
        mr_server_body_received(&w->server, conn);
        if (r->local_body)
            return respond_static(r, 200, r->local_body, r->local_len, r->local_ctype);
        if (r->metrics)
            return respond_metrics(r);
        if (r->status_json)
            return respond_status_json(r);
        if (r->explain)
            return respond_explain(r);
        if (r->providers)
            return respond_providers(r);
        if (r->body_too_large) {
            mr_error_t e;
            mr_error_set(&e, 413, NULL, "request_too_large", NULL,
                         "request body exceeds %zu bytes (limits.max_body_bytes)",
                         r->gen->cfg->limits.max_body_bytes);
            return respond_error(r, &e);
        }
        return begin_proxy(r);
    case RS_RESPOND: {
        char *body = r->out_body;
        r->out_body = NULL;
        stop_client_poll(r);
        if (!body)
            return MHD_NO;
        return queue_buffer(r, r->out_status, body, r->out_len, r->out_ctype);
    }
    case RS_STREAM_GO:
        return queue_stream(r);
    case RS_ABORT:
        return MHD_NO;
    case RS_UPSTREAM:
        /* Resumed for a stream that then failed over before being answered. */
        suspend(r);
        return MHD_YES;
    default:
        return MHD_YES;
    }
}

/* A finished API request: its metrics, access-log line and audit record. */
static void observe_finished(mr_request_t *r, int completed)
{
    mr_metrics_view_t *mv = r->gen->mv;
    mr_reqlog_t *log = r->w->shared->reqlog;
    const mr_provider_t *p = r->final_status ? r->served_by : NULL;
    const mr_target_t *t = p && r->served_cand ? r->served_cand->target : NULL;
    size_t route = !r->planned     ? MR_ROUTE_NONE
                   : r->plan.route ? r->plan.route->index
                                   : MR_ROUTE_DIRECT;
    uint64_t now = uv_hrtime();
    double cost = -1;

    if (r->endpoint == MR_EP_COUNT)
        return;
    mr_metrics_req_t rq = {
        .route = route,
        .provider = p,
        .status_class = completed ? mr_status_class(r->final_status) : MR_SC_ABORTED,
        .stream = r->stream,
        .total_us = (now - r->start_ns) / 1000,
        .ttfb_us = r->first_byte_ns ? (r->first_byte_ns - r->start_ns) / 1000 : UINT64_MAX,
    };
    mr_metrics_request(mv, &rq);
    for (unsigned i = 0; i < r->n_attempts; i++)
        mr_metrics_attempt(mv, route, r->attempts[i].provider, r->attempts[i].outcome,
                           i + 1 < r->n_attempts);
    if (t && t->has_input_price && t->has_output_price)
        cost =
            ((double)(r->usage.prompt_tokens > 0 ? r->usage.prompt_tokens : 0) * t->input_per_mtok +
             (double)(r->usage.completion_tokens > 0 ? r->usage.completion_tokens : 0) *
                 t->output_per_mtok) /
            1e6;
    if (p && r->final_status >= 200 && r->final_status < 300)
        mr_metrics_usage(mv, p, r->usage.prompt_tokens, r->usage.completion_tokens,
                         cost > 0 ? cost : 0);
    if (!mr_reqlog_wants_access(log) && !mr_reqlog_wants_audit(log))
        return;
    uint8_t req_sha[MR_SHA256_DIGEST_LEN], resp_sha[MR_SHA256_DIGEST_LEN];
    int bodies = mr_reqlog_wants_bodies(log);
    if (r->audit) {
        mr_sha256(mr_buf_ptr(&r->body), mr_buf_len(&r->body), req_sha);
        mr_sha256_final(&r->resp_sha, resp_sha);
    }
    mr_request_rec_t rec = {
        .id = r->id,
        .key = r->key ? r->key->name : NULL,
        .endpoint = mr_endpoint_path(r->endpoint),
        .model = r->model,
        .plan = r->planned ? &r->plan : NULL,
        .stream = r->stream,
        .status = completed ? r->final_status : 0,
        .attempts = r->attempts,
        .n_attempts = r->n_attempts,
        .skipped_open = r->n_skipped,
        .skipped_busy = r->n_busy,
        .served_by = p,
        .served_model = p ? r->attempts[r->n_attempts - 1].model : NULL,
        .usage = r->usage,
        .cost_usd = cost,
        .total_us = rq.total_us,
        .ttfb_us = rq.ttfb_us,
        .unix_time = r->unix_time,
        .request_sha256 = r->audit && mr_buf_len(&r->body) ? req_sha : NULL,
        .response_sha256 = r->audit && r->first_byte_ns ? resp_sha : NULL,
        .request_body = bodies ? mr_buf_ptr(&r->body) : NULL,
        .request_len = mr_buf_len(&r->body),
        .response_body = bodies ? mr_buf_ptr(&r->resp_copy) : NULL,
        .response_len = mr_buf_len(&r->resp_copy),
    };
    mr_reqlog_write(log, (unsigned)r->w->index, &rec);
}

void mr_gateway_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                          enum MHD_RequestTerminationCode toe)
{
    mr_request_t *r = *con_cls;
    mr_worker_t *w = cls;

    mr_server_request_ends(&w->server, conn);
    if (!r)
        return;
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
        mr_debug("%s: connection ended early (code %d)", r->id, (int)toe);
    else if (r->served_by)
        mr_debug("%s: served by %s after %u attempt(s), usage %ld+%ld tokens", r->id,
                 r->served_by->name, r->n_attempts, r->usage.prompt_tokens,
                 r->usage.completion_tokens);
    stop_client_poll(r);
    observe_finished(r, toe == MHD_REQUEST_TERMINATED_COMPLETED_OK);
    request_free(r);
    *con_cls = NULL;
}

void mr_gateway_abort_all(mr_worker_t *w)
{
    for (mr_request_t *r = w->requests; r; r = r->next) {
        if (r->state != RS_DONE)
            abort_request(r);
    }
}
