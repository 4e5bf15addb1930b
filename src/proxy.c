#include "meridian/proxy.h"

#include "meridian/admit.h"
#include "meridian/candidate.h"
#include "meridian/intake.h"
#include "meridian/intent.h"
#include "meridian/json_span.h"
#include "meridian/log.h"
#include "meridian/policy.h"
#include "meridian/unserved.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* MHD's buffer per streamed response (malloc'd for the stream's life). A
 * chunked response is written straight into the connection's pool and never
 * reads through it (libmicrohttpd 0.9.75 offers the reader the pool's whole
 * write buffer); only an HTTP/1.0 client, sent the stream unchunked, does.
 * 1.5 KiB less per open stream than the 2 KiB it was. */
#define STREAM_BLOCK 512
/* ... and per relayed large answer: bulk data, fewer writes */
#define RELAY_BLOCK 16384
/* A suspended request starts watching its client socket only after this
 * long: most answers come sooner, and the watch costs several syscalls. */
#define DISCONNECT_WATCH_DELAY_MS 25

static void start_attempt(mr_request_t *r);
static void output_ready(mr_request_t *r);
static void arm_timer(mr_request_t *r, uint64_t ms);

static uint64_t now_of(const mr_request_t *r)
{
    return uv_now(r->env->loop);
}

static const mr_timeouts_t *timeouts(const mr_request_t *r)
{
    return &r->gen->cfg->timeouts;
}

static int is_2xx(long s)
{
    return s >= 200 && s < 300;
}

/* ---- suspension and client liveness ----------------------------------- */

static void on_client_poll(uv_poll_t *p, int status, int events)
{
    mr_request_t *r = p->data;

    (void)status;
    (void)events;
    mr_debug("%s: client went away, aborting", r->id);
    mr_proxy_abort(r, MR_FAIL_CLIENT_GONE);
}

/* Suspended connections are invisible to MHD: watch for the client
 * leaving ourselves, so its upstream transfer is not left running. */
static void on_watch_timer(uv_timer_t *t)
{
    mr_request_t *r = t->data;

    if (r->poll_inited || r->state == MR_RS_DONE || r->state == MR_RS_ABORT)
        return;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci || uv_poll_init(r->env->loop, &r->client_poll, ci->connect_fd) != 0)
        return; /* unwatched: the request's own timers still bound it */
    r->poll_inited = 1;
    r->open_handles++;
    r->client_poll.data = r;
    if (uv_poll_start(&r->client_poll, UV_DISCONNECT, on_client_poll) != 0)
        mr_warn("%s: cannot watch the client connection", r->id);
}

static void suspend(mr_request_t *r)
{
    if (r->suspended)
        return;
    MHD_suspend_connection(r->conn);
    r->suspended = 1;
    if (!r->poll_inited && !uv_is_active((uv_handle_t *)&r->watch_timer) &&
        uv_timer_start(&r->watch_timer, on_watch_timer, DISCONNECT_WATCH_DELAY_MS, 0) != 0)
        mr_warn("%s: cannot arm the client watch", r->id);
}

static void resume(mr_request_t *r)
{
    if (!r->suspended)
        return;
    r->suspended = 0;
    MHD_resume_connection(r->conn);
    mr_server_wake(r->env->server);
}

static void stop_watch(mr_request_t *r)
{
    uv_timer_stop(&r->watch_timer);
    if (r->poll_inited && uv_is_active((uv_handle_t *)&r->client_poll))
        uv_poll_stop(&r->client_poll);
}

/* ---- timers ----------------------------------------------------------- */

static void next_or_fail(mr_request_t *r);

/* The current attempt into its history slot (attempts[n_attempts - 1]). */
static void record_history(mr_request_t *r)
{
    mr_attempt_record(r->att, &r->attempts[r->n_attempts - 1]);
}

static void on_timer(uv_timer_t *t)
{
    mr_request_t *r = t->data;
    mr_attempt_t *a = r->att;
    const mr_timeouts_t *to = timeouts(r);
    mr_failure_t f;
    char why[96];

    if (!a || !mr_attempt_running(a))
        return;
    if (!r->committed && r->hold_until_ms && now_of(r) >= r->hold_until_ms) {
        /* held long enough without content: the client gets what there is */
        r->hold_until_ms = 0;
        r->hold_expired = 1;
        output_ready(r);
        arm_timer(r, to->stream_idle_ms);
        return;
    }
    if (r->committed && now_of(r) - r->idle_from_ms < to->stream_idle_ms) {
        /* data came since the timer was armed: wait out the rest */
        if (uv_timer_start(&r->timer, on_timer, to->stream_idle_ms - (now_of(r) - r->idle_from_ms),
                           0) != 0)
            mr_error("%s: cannot arm the attempt timer", r->id);
        return;
    }
    if (r->committed) {
        snprintf(why, sizeof(why), "no data for %u ms (timeouts.stream_idle_ms)",
                 to->stream_idle_ms);
        mr_attempt_cancel(a, MR_FAIL_STREAM_IDLE, why);
        if (r->stream) /* a relayed answer ends cut short */
            mr_attempt_stream_error(a, MR_FAIL_STREAM_IDLE, why);
        r->upstream_done = 1;
        record_history(r);
        resume(r);
        return;
    }
    if (now_of(r) - r->start_ms >= to->request_ms) {
        r->deadline_hit = 1;
        f = MR_FAIL_DEADLINE;
        snprintf(why, sizeof(why), "timeout: request deadline %u ms reached", to->request_ms);
    } else if (a->status == 0) {
        f = MR_FAIL_FIRST_BYTE;
        snprintf(why, sizeof(why), "timeout: no response headers within %u ms", to->first_byte_ms);
    } else {
        f = MR_FAIL_BODY_STALL;
        snprintf(why, sizeof(why), "timeout: response body incomplete");
    }
    /* a long generation and a hung host look the same until a non-streamed
     * answer is complete: that ambiguity must not open the breaker */
    if (!r->stream)
        f = MR_FAIL_ANSWER_TIMEOUT;
    mr_attempt_cancel(a, f, why);
    record_history(r);
    next_or_fail(r);
}

/* Arms the request's single timer for `ms` from now, never past the overall
 * request deadline (streams already answering are exempt: their bound is
 * the idle timeout). */
static void arm_timer(mr_request_t *r, uint64_t ms)
{
    uint64_t now = now_of(r);
    uint64_t deadline = r->start_ms + timeouts(r)->request_ms;

    if (!r->committed) {
        uint64_t left = deadline > now ? deadline - now : 0;
        if (ms > left)
            ms = left;
        if (r->hold_until_ms && r->hold_until_ms - now < ms)
            ms = r->hold_until_ms > now ? r->hold_until_ms - now : 0;
    }
    r->idle_from_ms = now;
    if (uv_timer_start(&r->timer, on_timer, ms, 0) != 0)
        mr_error("%s: cannot arm the attempt timer", r->id);
}

/* ---- final answers ---------------------------------------------------- */

static void record_served(mr_request_t *r, const mr_attempt_t *a)
{
    mr_router_record_served(r->gen->ss, &r->plan, a->cand, now_of(r));
    /* the conversation stays with whoever served this turn */
    if (r->session_key && a->cand->target)
        mr_affinity_put(r->gen->snap->affinity, r->session_key, a->cand->target->id, now_of(r),
                        r->session_ttl_ms);
    r->served_by = a->cand->provider;
    r->served_cand = a->cand;
}

static void respond_prepared(mr_request_t *r)
{
    r->state = MR_RS_RESPOND;
    resume(r);
}

/* count_tokens without a target that counts (none of the route's speaks
 * Anthropic, or each failed): the gateway's estimate, marked as such. */
static void prepare_estimate(mr_request_t *r)
{
    free(r->out_body);
    r->out_body = mr_inbound_token_estimate(mr_buf_len(&r->body), &r->out_len);
    r->out_status = 200;
    r->out_ctype = "application/json";
    r->token_estimate = 1;
}

/* Every candidate failed, was skipped, or the deadline passed: the error
 * (unserved.h) — or for count_tokens, the gateway's estimate. */
static void finish_failed(mr_request_t *r)
{
    if (r->endpoint == MR_EP_COUNT_TOKENS)
        prepare_estimate(r);
    else
        mr_unserved_prepare(r);
    respond_prepared(r);
}

/* An upstream answered with a status we must not retry (e.g. 400): pass it
 * on in the OpenAI error shape (the adapter keeps the provider's message). */
static void finish_passthrough_error(mr_request_t *r)
{
    mr_attempt_t *a = r->att;

    if (r->endpoint == MR_EP_COUNT_TOKENS && (a->status == 404 || a->status == 405)) {
        finish_failed(r); /* an Anthropic-compatible target without count_tokens */
        return;
    }
    r->served_by = a->cand->provider;
    free(r->out_body);
    r->out_body = mr_attempt_error_body(a, &r->out_len);
    r->out_status = (int)a->status;
    r->out_ctype = "application/json";
    respond_prepared(r);
}

static void finish_success(mr_request_t *r)
{
    mr_attempt_t *a = r->att;

    record_served(r, a);
    r->usage = a->usage;
    free(r->out_body);
    r->out_body = mr_buf_steal(&a->out, &r->out_len);
    r->out_status = (int)a->status;
    /* never the upstream's type: a text/html 200 must not become a page */
    r->out_ctype = "application/json";
    respond_prepared(r);
}

/* ---- streaming -------------------------------------------------------- */

static ssize_t stream_reader(void *cls, uint64_t pos, char *out, size_t max)
{
    mr_request_t *r = cls;
    mr_attempt_t *a = r->att;

    (void)pos;
    if (r->state == MR_RS_ABORT)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    if (mr_buf_len(&a->out)) {
        size_t n = mr_buf_read(&a->out, out, max);
        mr_request_audit_bytes(r, out, n);
        if (r->first_byte_ns == 0)
            r->first_byte_ns = uv_hrtime();
        if (a->paused && mr_attempt_running(a) && mr_buf_len(&a->out) <= a->relay_max / 2) {
            mr_attempt_unpause(a);
            arm_timer(r, timeouts(r)->stream_idle_ms);
        }
        return (ssize_t)n;
    }
    /* a relayed answer cut short has no way to say so but the cut */
    if (r->upstream_done)
        return r->stream || a->failure == MR_FAIL_NONE ? MHD_CONTENT_READER_END_OF_STREAM
                                                       : MHD_CONTENT_READER_END_WITH_ERROR;
    /* Nothing buffered: park the connection until the upstream sends more
     * (returning 0 without suspending would make MHD spin). */
    suspend(r);
    return 0;
}

/* The commit: the client gets the head, the attempt's outcome is decided.
 * A relayed non-streamed answer keeps the upstream's length when it has
 * one (its bytes pass unchanged). */
static enum MHD_Result queue_stream(mr_request_t *r)
{
    mr_attempt_t *a = r->att;
    uint64_t size =
        !r->stream && a->content_length >= 0 ? (uint64_t)a->content_length : MHD_SIZE_UNKNOWN;
    struct MHD_Response *resp = MHD_create_response_from_callback(
        size, r->stream ? STREAM_BLOCK : RELAY_BLOCK, stream_reader, r, NULL);

    if (!resp)
        return MHD_NO;
    record_served(r, a);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            r->stream ? "text/event-stream" : "application/json");
    if (r->stream)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    mr_request_common_headers(r, resp);
    enum MHD_Result ret = MHD_queue_response(r->conn, (unsigned)a->status, resp);
    MHD_destroy_response(resp);
    r->state = MR_RS_STREAMING;
    r->committed = 1;
    r->final_status = (int)a->status;
    mr_attempt_commit(a);
    mr_intake_release(r); /* no failover now: the tree and conversation go, with their charge */
    return ret;
}

/* The commit point: nothing reaches the client before an event that
 * carries content, the whole stream, or a bounded hold (bytes, time), so an
 * upstream that fails after a role-only first chunk is failed over as if it
 * had failed before its first byte. */
static bool may_commit(mr_request_t *r)
{
    const mr_attempt_t *a = r->att;
    size_t hold = r->gen->cfg->limits.commit_hold_bytes;

    if (!r->stream) /* a relayed 2xx answer: no events to wait for */
        return true;
    /* never hold more than the buffer takes: a paused upstream would wait */
    if (hold > a->out.limit)
        hold = a->out.limit;
    return r->upstream_done || r->hold_expired || mr_attempt_has_content(a) ||
           mr_buf_len(&a->out) >= hold;
}

/* Output is ready for the client: commit when it may, else wake the reader
 * parked in stream_reader. */
static void output_ready(mr_request_t *r)
{
    if (mr_buf_len(&r->att->out) == 0)
        return;
    if (r->committed) {
        resume(r);
        return;
    }
    if (r->state != MR_RS_UPSTREAM)
        return;
    if (!may_commit(r)) {
        if (!r->hold_until_ms) {
            r->hold_until_ms = now_of(r) + timeouts(r)->commit_hold_ms;
            arm_timer(r, timeouts(r)->stream_idle_ms);
        }
        return;
    }
    r->hold_until_ms = 0;
    r->state = MR_RS_STREAM_GO;
    resume(r);
}

/* ---- attempts --------------------------------------------------------- */

/* A transfer ended; the attempt has classified how. */
static void attempt_done(mr_request_t *r, mr_attempt_t *a)
{
    uv_timer_stop(&r->timer);
    record_history(r);
    if (r->committed) {
        r->usage = a->usage;
        r->upstream_done = 1;
        resume(r);
        return;
    }
    if (a->failure == MR_FAIL_NONE && r->stream) {
        /* the whole stream arrived before we got to answer: send it */
        r->usage = a->usage;
        r->upstream_done = 1;
        output_ready(r);
        return;
    }
    if (a->failure == MR_FAIL_NONE) {
        finish_success(r);
        return;
    }
    if (!mr_failure_retryable(a->failure)) {
        /* an HTTP answer that is the client's (4xx) or unexpected (3xx) */
        finish_passthrough_error(r);
        return;
    }
    /* the detail (curl's text, internal addresses) is the operator's */
    mr_info("%s: attempt %u on %s failed (%s), status %ld%s%s", r->id, r->n_attempts,
            a->cand->provider->name, mr_failure_name(a->failure), a->status,
            a->error[0] ? ": " : "", a->error);
    next_or_fail(r);
}

static void on_attempt(void *owner, mr_attempt_t *a, mr_attempt_event_t ev)
{
    mr_request_t *r = owner;

    switch (ev) {
    case MR_ATTEMPT_HEAD:
        if (r->stream && is_2xx(a->status))
            arm_timer(r, timeouts(r)->stream_idle_ms);
        break;
    case MR_ATTEMPT_PROGRESS:
        /* committed, the idle timer is lazy: a chunk only moves its start
         * (a re-arm per event is a timer-heap removal and insertion) */
        if (r->committed && uv_is_active((uv_handle_t *)&r->timer))
            r->idle_from_ms = now_of(r);
        else
            arm_timer(r, timeouts(r)->stream_idle_ms);
        break;
    case MR_ATTEMPT_PAUSED:
        /* the client is the slow side: the idle timeout must not blame the
         * provider while we hold it back; re-armed when the reader drains */
        uv_timer_stop(&r->timer);
        break;
    case MR_ATTEMPT_OUTPUT:
        output_ready(r);
        break;
    case MR_ATTEMPT_DONE:
        attempt_done(r, a);
        break;
    }
}

/* The current attempt is done with: settled against the budgets, freed. */
static void free_attempt(mr_request_t *r)
{
    mr_admit_attempt_end(r, r->att);
    mr_attempt_free(r->att);
    r->att = NULL;
}

static void next_or_fail(mr_request_t *r)
{
    free_attempt(r);
    r->hold_until_ms = 0;
    r->hold_expired = 0;
    if (r->state == MR_RS_STREAM_GO)
        r->state = MR_RS_UPSTREAM; /* resumed but not answered: the handler re-suspends */
    if (now_of(r) - r->start_ms >= timeouts(r)->request_ms)
        r->deadline_hit = 1;
    if (!r->deadline_hit && r->next_candidate < r->plan.n_candidates &&
        r->n_attempts < r->plan.max_attempts)
        start_attempt(r);
    else
        finish_failed(r);
}

static const char *client_header(void *ud, const char *name)
{
    const mr_request_t *r = ud;
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

/* Not an attempt after all (nothing was sent, nothing to record). */
static void drop_attempt(mr_request_t *r)
{
    free_attempt(r);
    r->n_attempts--;
}

/* Failed before anything was sent: recorded, then the next candidate. */
static void fail_unsent(mr_request_t *r)
{
    mr_attempt_end(r->att);
    record_history(r);
    next_or_fail(r);
}

/* Sends the attempt start_attempt prepared. */
static void launch_attempt(mr_request_t *r)
{
    mr_attempt_t *a = r->att;

    /* A failover is a retry: the worker's budget keeps an outage from
     * multiplying the load on the remaining providers. */
    if (r->sent_any && !mr_retry_budget_try(&r->gen->snap->retry_budget, now_of(r))) {
        mr_attempt_cancel(a, MR_FAIL_RETRY_BUDGET, "retry budget exhausted");
        drop_attempt(r);
        r->budget_denied = 1;
        mr_metrics_retry_denied(r->gen->mv);
        finish_failed(r);
        return;
    }
    if (mr_attempt_start(a, r->env->upstream, timeouts(r)->connect_ms) < 0) {
        fail_unsent(r);
        return;
    }
    r->sent_any = 1;
    r->last_target_id = a->health_id;
    mr_debug("%s: attempt %u -> %s (%s)", r->id, r->n_attempts, a->cand->provider->name,
             a->cand->model);
    arm_timer(r, timeouts(r)->first_byte_ms);
}

static void on_backoff(uv_timer_t *t)
{
    launch_attempt(t->data);
}

/* The attempt could not be allocated: recorded as such, without an object. */
static void record_no_memory(mr_request_t *r, const mr_candidate_t *c)
{
    mr_admit_attempt_end(r, NULL);
    r->attempts[r->n_attempts++] = (mr_attempt_rec_t){
        .provider = c->provider,
        .model = c->model,
        .failure = MR_FAIL_NO_MEMORY,
        .outcome = mr_failure_metric(MR_FAIL_NO_MEMORY),
        .error = "out of memory",
    };
    next_or_fail(r);
}

/* Only a repeat of the same target waits (exponential backoff, full
 * jitter): a different target is tried at once. True when waiting. */
static bool backoff(mr_request_t *r, size_t health_id)
{
    if (health_id == SIZE_MAX || health_id != r->last_target_id)
        return false;
    uint64_t now = now_of(r), deadline = r->start_ms + timeouts(r)->request_ms;
    uint64_t ms = mr_backoff_ms(r->same_target_tries++, 250, 4000, r->env->backoff_rng);
    if (now + ms >= deadline)
        ms = deadline > now ? deadline - now : 0;
    return ms > 0 && uv_timer_start(&r->timer, on_backoff, ms, 0) == 0;
}

/* An attempt on candidate c, whose slots and reservation are taken. */
static void try_candidate(mr_request_t *r, const mr_candidate_t *c, size_t id, bool probe)
{
    mr_error_t e, pe;
    /* the copy's share, held since admission, is the attempt's to charge */
    mr_intake_release_copy(r);
    /* a translating dialect needs the parse tree: built (and charged) now */
    int prepared =
        mr_intake_prepare(r, mr_inbound_adapter(r->inbound, r->endpoint, c->provider), &pe);
    mr_attempt_args_t args = {
        .cand = c,
        .health_id = id,
        .probe = probe,
        .inflight_taken = true,
        .gen = r->gen,
        .loop = r->env->loop,
        .inbound = r->inbound,
        .endpoint = r->endpoint,
        .stream = r->stream,
        .client_wants_usage = r->client_wants_usage,
        .body = mr_buf_ptr(&r->body),
        .body_len = mr_buf_len(&r->body),
        .scan = &r->scan,
        .json = r->json,
        .conv = &r->conv,
        .client_ctx = r->client_ctx,
        .header = client_header,
        .header_ud = r,
        .mem = &r->mem,
        .pool = &r->pool,
        .request_id = r->id,
        .cb = on_attempt,
        .owner = r,
    };
    if (!(r->att = mr_attempt_new(&args))) {
        record_no_memory(r, c);
        return;
    }
    r->attempts[r->n_attempts++] = (mr_attempt_rec_t){.provider = c->provider, .model = c->model};
    int rc = prepared < 0 ? -2 : mr_attempt_build(r->att, &e);
    if (prepared < 0)
        e = pe;
    if (rc == -2) {
        /* not an upstream attempt: nothing was sent. Another candidate may
         * speak a dialect that can carry the request; if none can, the
         * client gets this error. */
        if (!r->build_error && (r->build_error = mr_pool_alloc(&r->pool, sizeof(e))))
            *r->build_error = e;
        drop_attempt(r);
        next_or_fail(r);
    } else if (rc < 0) {
        fail_unsent(r);
    } else if (!backoff(r, id)) {
        launch_attempt(r);
    }
}

static void on_reserved(mr_request_t *r);

static void start_attempt(mr_request_t *r)
{
    size_t id = SIZE_MAX;
    bool probe = false;
    const mr_candidate_t *c = mr_candidate_next(r, &id, &probe, on_reserved);

    if (c)
        try_candidate(r, c, id, probe);
    else if (!r->held_cand)
        finish_failed(r);
}

/* The held candidate's provider answered (within the state's timeout). */
static void on_reserved(mr_request_t *r)
{
    size_t id = SIZE_MAX;
    bool probe = false;
    const mr_candidate_t *c = mr_candidate_held(r, &id, &probe);

    if (c)
        try_candidate(r, c, id, probe);
    else
        start_attempt(r);
}

/* ---- the request's start: validation and routing ----------------------- */

/* Routing under the policy stack: the key's policy, the x-meridian-policy
 * header (or the default policy) and the body's OpenRouter `provider`
 * object all filter; the request can narrow what its key allows, never widen. */
static int plan_request(mr_request_t *r, const json_t *models, json_t *provider, mr_error_t *e)
{
    mr_policy_stack_t st;
    const char *header = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "x-meridian-policy");

    if (mr_router_models_from_request(r->model, models, r->models, &r->n_models, e) < 0 ||
        mr_policy_stack_init(&st, r->gen->cfg, r->key, header, provider, e) < 0 ||
        mr_intake_routing_tree(
            r, r->gen->cfg->common_capabilities != MR_CAP_ALL || st.request.require_parameters, e) <
            0)
        return -1;
    mr_intent_needs(r, &st.request);
    mr_intent_session(r, &st);
    r->planned = 1;
    return mr_router_plan_policy(r->gen->cfg, &st, r->models, r->n_models, r->gen->ss, now_of(r),
                                 &r->plan, e);
}

static void start_upstream(mr_request_t *r)
{
    mr_retry_budget_request(&r->gen->snap->retry_budget, now_of(r));
    start_attempt(r);
}

/* The admission answered later (the connection is suspended). */
static void on_admitted(mr_request_t *r)
{
    mr_error_t e;

    if (mr_admit_refusal(r, &e)) {
        mr_request_prepare_error(r, &e, NULL, NULL);
        respond_prepared(r);
    } else {
        start_upstream(r);
    }
}

enum MHD_Result mr_proxy_begin(mr_request_t *r)
{
    const json_t *models;
    json_t *provider;
    mr_error_t e;

    if (mr_intake_hold_copy(r, mr_buf_len(&r->body)) < 0) {
        /* a body sent without a length: its copy is taken now */
        r->retry_after_out = 1;
        return mr_request_errorf(r, 503, "overloaded", NULL,
                                 "the gateway is holding as much request and answer data as it "
                                 "may (limits.worker_memory_bytes); retry shortly");
    }
    r->conv.parse = r->inbound->parse; /* the conversation in the client's dialect */
    if (mr_intake_read(r, &e) < 0 || mr_intake_routing(r, &models, &provider, &e) < 0)
        return mr_request_error(r, &e);
    if (plan_request(r, models, provider, &e) < 0)
        return mr_unserved_plan_error(r, &e);
    if (!(r->attempts = mr_pool_calloc(&r->pool, r->plan.max_attempts ? r->plan.max_attempts : 1,
                                       sizeof(*r->attempts))))
        return MHD_NO;
    r->n_attempts = 0; /* the history starts with the allocation */
    r->state = MR_RS_UPSTREAM;
    if (mr_admit_request(r, on_admitted) == MR_LIMITS_PENDING) {
        suspend(r); /* the key's counters are in Redis: on_admitted goes on */
        return MHD_YES;
    }
    if (mr_admit_refusal(r, &e))
        return mr_request_error(r, &e);
    suspend(r);
    start_upstream(r);
    return MHD_YES;
}

enum MHD_Result mr_proxy_resumed(mr_request_t *r)
{
    switch (r->state) {
    case MR_RS_RESPOND:
        stop_watch(r);
        return mr_request_queue_prepared(r);
    case MR_RS_STREAM_GO:
        return queue_stream(r);
    case MR_RS_ABORT:
        return MHD_NO;
    case MR_RS_UPSTREAM:
        /* Resumed for a stream that then failed over before being answered. */
        suspend(r);
        return MHD_YES;
    default:
        return MHD_YES;
    }
}

void mr_proxy_wait(mr_request_t *r)
{
    r->state = MR_RS_UPSTREAM;
    suspend(r);
}

void mr_proxy_respond(mr_request_t *r)
{
    respond_prepared(r);
}

/* Cancels the current attempt unless it already ended, and records it. */
static void end_attempt(mr_request_t *r, mr_failure_t why)
{
    if (!r->att)
        return;
    mr_attempt_cancel(r->att, why,
                      why == MR_FAIL_SHUTDOWN ? "drain deadline reached" : "client went away");
    record_history(r);
}

void mr_proxy_abort(mr_request_t *r, mr_failure_t why)
{
    mr_admit_cancel(r);
    mr_candidate_drop_held(r);
    end_attempt(r, why);
    uv_timer_stop(&r->timer);
    stop_watch(r);
    r->state = MR_RS_ABORT;
    resume(r);
}

void mr_proxy_finish(mr_request_t *r)
{
    stop_watch(r);
    mr_admit_cancel(r);
    mr_candidate_drop_held(r);
    end_attempt(r, MR_FAIL_CLIENT_GONE);
    mr_admit_finish(r); /* settles the attempt still held (a stream, a success) */
}

void mr_proxy_free(mr_request_t *r)
{
    free_attempt(r);
    mr_plan_release(&r->plan);
    mr_adapter_conv_free(&r->conv);
    json_decref(r->json);
    json_decref(r->models_json);
    json_decref(r->provider_json);
    if (r->client_ctx_free)
        r->client_ctx_free(r->client_ctx);
    r->client_ctx = NULL;
}
