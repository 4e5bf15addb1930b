#include "meridian/attempt.h"

#include "meridian/json_span.h"
#include "meridian/log.h"
#include "meridian/scrub.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Members only the gateway reads (OpenRouter routing fields): never forwarded. */
static const char *const gateway_only_members[] = {"provider", "models", NULL};

static uint32_t ms_since_ns(uint64_t start_ns)
{
    return (uint32_t)((uv_hrtime() - start_ns) / 1000000u);
}

static uint64_t now_ms(const mr_attempt_t *a)
{
    return uv_now(a->_args.loop);
}

static const mr_config_t *cfg_of(const mr_attempt_t *a)
{
    return a->_args.gen->cfg;
}

static const mr_provider_t *provider_of(const mr_attempt_t *a)
{
    return a->cand->provider;
}

static const mr_inbound_t *inbound_of(const mr_attempt_t *a)
{
    return a->_args.inbound ? a->_args.inbound : &mr_inbound_chat;
}

static int is_2xx(long s)
{
    return s >= 200 && s < 300;
}

/* Copies with truncation; curl's error texts can be longer than we keep.
 * The text is for the log and the audit file, never for the client. */
static void set_failure(mr_attempt_t *a, mr_failure_t f, const char *why)
{
    size_t n = why ? strnlen(why, sizeof(a->error) - 1) : 0;

    a->failure = f;
    memcpy(a->error, why ? why : "", n);
    a->error[n] = '\0';
    mr_scrub_str(a->error, provider_of(a)->api_key);
}

/* The provider's key out of an answer it sent, before anyone reads it. */
static void scrub_answer(mr_attempt_t *a)
{
    mr_buf_t *b = &a->out;

    if (b->data)
        b->end = b->start + mr_scrub(b->data + b->start, mr_buf_len(b), provider_of(a)->api_key);
}

/* ---- the breaker slot and latency feedback ------------------------------- */

/* An attempt with no outcome to report gives a half-open probe slot back
 * rather than wedge the breaker. */
static void release_slot(mr_attempt_t *a)
{
    if (a->_reported)
        return;
    a->_reported = 1;
    if (a->_args.probe)
        mr_generation_cancel(a->_args.gen, a->_args.health_id, now_ms(a));
}

static void report(mr_attempt_t *a)
{
    if (a->_reported)
        return;
    a->_reported = 1;
    mr_generation_report(a->_args.gen, a->_args.health_id, a->_args.probe,
                         mr_failure_breaker(a->failure), a->retry_after, ms_since_ns(a->start_ns),
                         now_ms(a));
}

/* Time to the response head feeds least_latency; an attempt that failed
 * before its head counts as the whole first-byte budget, so a host that
 * fails fast never looks fast. */
static void record_ttfb(mr_attempt_t *a, int failed)
{
    if (a->got_head)
        return;
    a->got_head = 1;
    uint32_t ms = failed ? cfg_of(a)->timeouts.first_byte_ms : ms_since_ns(a->start_ns);
    mr_router_record_ttfb(a->_args.gen->ss, a->cand, ms, now_ms(a));
}

void mr_attempt_end(mr_attempt_t *a)
{
    if (a->_ended)
        return;
    a->_ended = 1;
    a->ms = ms_since_ns(a->start_ns);
    if (!a->_sent || !mr_failure_reaches_breaker(a->failure)) {
        release_slot(a);
        return;
    }
    record_ttfb(a, 1); /* no-op when the head already arrived */
    report(a);
}

bool mr_attempt_has_content(const mr_attempt_t *a)
{
    return a->_xl && a->adapter->stream_content(a->_xl);
}

/* A committed stream tells its breaker how it ended (a cut or broken
 * stream is a failure), when it ends; a half-open probe tells it at once,
 * so that its slot is not held for the length of a stream. */
void mr_attempt_commit(mr_attempt_t *a)
{
    a->committed = 1;
    a->_in.json = NULL;
    a->_in.conv = NULL;
    if (a->_args.probe)
        report(a);
}

/* ---- the transfer ------------------------------------------------------- */

/* The provider's max_inflight slot, taken by the owner for this attempt,
 * goes back once: when the transfer ends, or with the attempt. */
static void give_inflight(mr_attempt_t *a)
{
    if (a->_inflight_on) {
        mr_generation_inflight_give(a->_args.gen, a->_inflight_on);
        a->_inflight_on = NULL;
    }
}

static void transfer_gone(mr_attempt_t *a)
{
    a->_xfer = NULL;
    give_inflight(a);
}

static void emit(mr_attempt_t *a, mr_attempt_event_t ev)
{
    a->_args.cb(a->_args.owner, a, ev);
}

static void on_head(void *ud, const mr_upstream_head_t *h)
{
    mr_attempt_t *a = ud;

    a->status = h->status;
    a->retry_after = h->retry_after_s;
    record_ttfb(a, 0);
    snprintf(a->ctype, sizeof(a->ctype), "%s", h->content_type);
    a->content_length = h->content_length;
    if (!is_2xx(h->status))
        a->out.limit = MR_ATTEMPT_ERROR_BODY_MAX;
    emit(a, MR_ATTEMPT_HEAD);
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

/* `out` is full for a client that reads it: the upstream waits. */
static mr_data_result_t pause_for_client(mr_attempt_t *a)
{
    if (!a->_paused_once++)
        mr_debug("%s: %s buffer full, upstream %s paused", a->_args.request_id,
                 a->stream ? "stream" : "answer", provider_of(a)->name);
    a->paused = 1;
    emit(a, MR_ATTEMPT_PAUSED);
    return MR_DATA_PAUSE;
}

/* A 2xx event stream, translated chunk by chunk into `out`. */
static mr_data_result_t on_stream_data(mr_attempt_t *a, const char *p, size_t n)
{
    if (a->adapter->passthrough && !a->committed && mr_buf_len(&a->out) == 0 &&
        !looks_like_sse(p, n)) {
        a->_invalid = MR_FAIL_NOT_SSE;
        return MR_DATA_ABORT;
    }
    if (mr_buf_len(&a->out) >= a->out.limit)
        return pause_for_client(a);
    emit(a, MR_ATTEMPT_PROGRESS);
    if (a->adapter->stream_feed(a->_xl, p, n, &a->out) < 0) {
        if (!a->committed) {
            /* nothing reached the client: a failed attempt, not a broken stream */
            mr_buf_reset(&a->out);
            a->_invalid = MR_FAIL_STREAM_ERROR;
            return MR_DATA_ABORT;
        }
        a->stream_errored = 1;
        emit(a, MR_ATTEMPT_OUTPUT);
        return MR_DATA_ABORT;
    }
    emit(a, MR_ATTEMPT_OUTPUT);
    return MR_DATA_OK;
}

static void keep_tail(mr_attempt_t *a, const char *p, size_t n)
{
    if (!a->_tail)
        return; /* no usage then: the answer still goes through */
    if (n >= MR_ATTEMPT_TAIL) {
        memcpy(a->_tail, p + n - MR_ATTEMPT_TAIL, MR_ATTEMPT_TAIL);
        a->_tail_len = MR_ATTEMPT_TAIL;
        return;
    }
    if (a->_tail_len + n > MR_ATTEMPT_TAIL) {
        size_t drop = a->_tail_len + n - MR_ATTEMPT_TAIL;
        memmove(a->_tail, a->_tail + drop, a->_tail_len - drop);
        a->_tail_len -= drop;
    }
    memcpy(a->_tail + a->_tail_len, p, n);
    a->_tail_len += n;
}

/* A relayed answer's bytes: into `out` for the client, paused while full. */
static mr_data_result_t relay(mr_attempt_t *a, const char *p, size_t n)
{
    if (a->_relayed + n > a->out.limit) {
        a->_invalid = MR_FAIL_TOO_LARGE;
        return MR_DATA_ABORT;
    }
    if (mr_buf_len(&a->out) >= a->relay_max)
        return pause_for_client(a);
    emit(a, MR_ATTEMPT_PROGRESS);
    mr_buf_append_force(&a->out, p, n);
    a->_relayed += n;
    keep_tail(a, p, n);
    emit(a, MR_ATTEMPT_OUTPUT);
    return MR_DATA_OK;
}

/* Whether a large answer may reach the client as it arrives: a passthrough
 * answer, except a Responses one, which is stored before it is sent
 * (responses.h) and so is read whole — within max_response_bytes and
 * charged to the budget like a translated answer. */
static bool may_relay(const mr_attempt_t *a)
{
    return a->adapter->passthrough && a->_args.endpoint != MR_EP_RESPONSES;
}

/* A non-streamed 2xx answer: buffered whole while it is small and the
 * budget takes it; else relayed (passthrough), or a failure (a translation
 * needs the whole answer). */
static mr_data_result_t on_body_data(mr_attempt_t *a, const char *p, size_t n)
{
    size_t have = mr_buf_len(&a->out);

    if (a->relaying)
        return relay(a, p, n);
    if ((have + n <= a->relay_max || !may_relay(a)) && mr_buf_append(&a->out, p, n) == 0)
        return MR_DATA_OK;
    if (!may_relay(a)) {
        a->_invalid = have + n > a->out.limit ? MR_FAIL_TOO_LARGE : MR_FAIL_NO_MEMORY;
        return MR_DATA_ABORT;
    }
    a->relaying = 1;
    a->_relayed = have;
    a->_tail =
        a->_args.pool ? mr_pool_alloc(a->_args.pool, MR_ATTEMPT_TAIL) : malloc(MR_ATTEMPT_TAIL);
    keep_tail(a, mr_buf_ptr(&a->out), have);
    emit(a, MR_ATTEMPT_OUTPUT); /* the owner commits, even if `out` is full already */
    return relay(a, p, n);
}

static mr_data_result_t on_data(void *ud, const char *p, size_t n)
{
    mr_attempt_t *a = ud;

    if (a->stream && is_2xx(a->status))
        return on_stream_data(a, p, n);
    if (is_2xx(a->status))
        return on_body_data(a, p, n);
    mr_buf_append(&a->out, p, n); /* error bodies are only kept up to a cap */
    return MR_DATA_OK;
}

static void read_usage(mr_attempt_t *a)
{
    if (a->_xl)
        a->adapter->stream_usage(a->_xl, &a->usage);
}

/* A 2xx body that is not one complete JSON text: cut short (the text
 * ends where a JSON parser still wanted more: an upstream that closed a
 * Connection: close answer early) or not JSON at all. 0 when it is one. */
static int body_unusable(mr_attempt_t *a)
{
    const char *p = mr_buf_ptr(&a->out);
    size_t n = mr_buf_len(&a->out);
    json_error_t je;
    json_t *j;

    if (mr_json_validate(p, n) == 0)
        return 0;
    j = json_loadb(p, n, 0, &je);
    json_decref(j);
    if (n == 0 || (!j && (size_t)je.position >= n))
        set_failure(a, MR_FAIL_TRUNCATED, "upstream response body ends before its JSON does");
    else
        set_failure(a, MR_FAIL_INVALID_BODY, "invalid JSON in upstream response");
    return -1;
}

/* A complete 2xx body: kept as is when the dialect is OpenAI's, else
 * translated; a failure when the answer is unusable. */
static void take_body(mr_attempt_t *a)
{
    mr_error_t e;

    if (body_unusable(a) < 0)
        return;
    if (a->adapter->passthrough) {
        a->adapter->translate(&a->_in, mr_buf_ptr(&a->out), mr_buf_len(&a->out), NULL, &a->usage,
                              &e);
        return;
    }
    mr_buf_t out;
    mr_buf_init(&out, cfg_of(a)->limits.max_response_bytes);
    if (a->adapter->translate(&a->_in, mr_buf_ptr(&a->out), mr_buf_len(&a->out), &out, &a->usage,
                              &e) < 0) {
        char why[160];
        mr_buf_free(&out);
        snprintf(why, sizeof(why), "unusable upstream response: %.96s", e.message);
        set_failure(a, MR_FAIL_UNUSABLE, why);
        return;
    }
    mr_buf_free(&a->out);
    a->out = out;
}

/* The failure a stream's end reports (stream_end's result). */
static void stream_end_failure(mr_attempt_t *a, int rc)
{
    if (rc == MR_ADAPTER_TRUNCATED)
        set_failure(a, MR_FAIL_TRUNCATED, "upstream stream ended before its terminal event");
    else
        set_failure(a, MR_FAIL_STREAM_ERROR, "upstream stream ended with an error");
}

/* A complete 2xx answer before commit: the body, or the whole stream. */
static void take_answer(mr_attempt_t *a)
{
    int rc;

    if (!a->stream) {
        take_body(a);
    } else if ((rc = a->adapter->stream_end(a->_xl, &a->out)) < 0) {
        /* ended in an error (or truncated) before anything reached the
         * client: a failed attempt, not a broken stream */
        mr_buf_reset(&a->out);
        stream_end_failure(a, rc);
    } else if (mr_buf_len(&a->out) == 0) {
        set_failure(a, MR_FAIL_EMPTY_STREAM, "empty event stream");
    } else {
        read_usage(a);
    }
}

/* After commit there is no failover: the stream ends with an SSE error
 * event rather than leave the client hanging. */
static void end_committed(mr_attempt_t *a, mr_failure_t failure, const char *error)
{
    int rc = 0;

    if (failure == MR_FAIL_NONE)
        rc = a->adapter->stream_end(a->_xl, &a->out);
    else if (!a->stream_errored)
        mr_attempt_stream_error(a, failure, error);
    read_usage(a);
    if (rc < 0)
        stream_end_failure(a, rc);
    else if (failure != MR_FAIL_NONE)
        set_failure(a, a->stream_errored ? MR_FAIL_STREAM_ERROR : failure, error);
}

/* A relayed answer's usage, from the `"usage": {...}` in its last bytes
 * (OpenAI puts it last), read by the adapter as from a whole body. */
static void relayed_usage(mr_attempt_t *a)
{
    const char *t = a->_tail, *end = t + a->_tail_len, *u = NULL, *q;
    char obj[MR_ATTEMPT_TAIL + 16];
    mr_error_t e;

    for (q = t; t && (q = memmem(q, (size_t)(end - q), "\"usage\"", 7)); q += 7)
        u = q;
    if (!u)
        return;
    for (q = u + 7; q < end && (*q == ' ' || *q == ':' || *q == '\n' || *q == '\r' || *q == '\t');)
        q++;
    size_t n = q < end && *q == '{' ? mr_json_value_len(q, (size_t)(end - q)) : 0;
    if (n) {
        int len = snprintf(obj, sizeof(obj), "{\"usage\":%.*s}", (int)n, q);
        a->adapter->translate(&a->_in, obj, (size_t)len, NULL, &a->usage, &e);
    }
}

/* A relayed answer ended: a failure cuts the client's response short. */
static void end_relayed(mr_attempt_t *a, mr_failure_t failure, const char *error)
{
    if (failure == MR_FAIL_NONE) {
        relayed_usage(a);
        return;
    }
    if (a->_invalid == MR_FAIL_TOO_LARGE)
        set_failure(a, a->_invalid, "upstream response larger than limits.max_response_bytes");
    else
        set_failure(a, failure, error);
}

static void on_done(void *ud, mr_failure_t failure, const char *error, unsigned resends)
{
    mr_attempt_t *a = ud;

    a->resends = resends;
    transfer_gone(a);
    if (a->committed && !a->stream) {
        end_relayed(a, failure, error);
    } else if (a->committed) {
        end_committed(a, failure, error);
    } else if (failure == MR_FAIL_NONE && is_2xx(a->status)) {
        take_answer(a);
    } else if (failure != MR_FAIL_NONE) {
        if (a->_invalid == MR_FAIL_TOO_LARGE)
            set_failure(a, a->_invalid, "upstream response larger than limits.max_response_bytes");
        else if (a->_invalid == MR_FAIL_NO_MEMORY)
            set_failure(a, a->_invalid,
                        "the answer to translate does not fit limits.worker_memory_bytes now");
        else if (a->_invalid)
            set_failure(a, a->_invalid, "upstream stream is not a valid event stream");
        else
            set_failure(a, failure, error);
    } else {
        scrub_answer(a);
        bool retry = a->adapter->retryable(a->status, mr_buf_ptr(&a->out), mr_buf_len(&a->out));
        set_failure(a, mr_failure_from_status(a->status, retry), NULL);
        if (a->failure == MR_FAIL_HTTP_AUTH)
            mr_warn("%s: provider %s refused the gateway's credentials (HTTP %ld; check "
                    "providers.%s.api_key): %.*s",
                    a->_args.request_id, provider_of(a)->name, a->status, provider_of(a)->name,
                    (int)(mr_buf_len(&a->out) < 300 ? mr_buf_len(&a->out) : 300),
                    mr_buf_ptr(&a->out));
    }
    mr_attempt_end(a);
    emit(a, MR_ATTEMPT_DONE);
}

static const mr_transfer_handler_t handler = {on_head, on_data, on_done};

/* ---- life --------------------------------------------------------------- */

mr_attempt_t *mr_attempt_new(const mr_attempt_args_t *args)
{
    mr_attempt_t *a =
        args->pool ? mr_pool_calloc(args->pool, 1, sizeof(*a)) : calloc(1, sizeof(*a));
    const mr_limits_t *l = &args->gen->cfg->limits;

    if (!a) {
        if (args->probe)
            mr_generation_cancel(args->gen, args->health_id, uv_now(args->loop));
        if (args->inflight_taken)
            mr_generation_inflight_give(args->gen, args->cand->provider);
        return NULL;
    }
    a->_args = *args;
    a->_inflight_on = args->inflight_taken ? args->cand->provider : NULL;
    a->cand = args->cand;
    a->health_id = args->health_id;
    a->stream = args->stream;
    a->retry_after = -1;
    a->usage = MR_USAGE_UNKNOWN;
    a->start_ns = uv_hrtime();
    mr_buf_init(&a->out, args->stream ? l->stream_buffer_bytes : l->max_response_bytes);
    a->out.hold = args->mem;
    a->relay_max = l->stream_buffer_bytes;
    a->content_length = -1;
    return a;
}

/* Whether the client dialect's adapters set header `name` themselves. */
static bool own_header(const mr_attempt_t *a, const char *name)
{
    for (const char *const *h = inbound_of(a)->own_headers; h && *h; h++)
        if (strcmp(*h, name) == 0)
            return true;
    return false;
}

/* The client headers this provider accepts (forward_headers), as lines for
 * the adapter. Everything else the client sent stays here. */
static int collect_forwarded(mr_attempt_t *a)
{
    const mr_provider_t *p = provider_of(a);
    size_t n = 0;

    for (size_t i = 0; i < p->n_forward_headers && n < MR_ATTEMPT_MAX_FORWARD; i++) {
        const char *name = p->forward_headers[i];
        const char *v = a->_args.header(a->_args.header_ud, name);
        if (!v || own_header(a, name))
            continue;
        size_t len = strlen(name) + strlen(v) + 3;
        if (!(a->_fwd[n] = a->_args.pool ? mr_pool_alloc(a->_args.pool, len) : malloc(len)))
            return -1;
        snprintf(a->_fwd[n++], len, "%s: %s", name, v);
    }
    return 0;
}

/* The dropped member names are borrowed from the body's tree and model,
 * which a committed request frees (intake.h) before its audit record is
 * written: copied into the request's arena. Without an arena the owner
 * keeps the tree for the attempt's life. */
static int own_dropped(mr_attempt_t *a)
{
    for (unsigned i = 0; a->_args.pool && i < a->_req.n_dropped; i++) {
        size_t n = strlen(a->_req.dropped[i]) + 1;
        char *c = mr_pool_alloc(a->_args.pool, n);
        if (!c)
            return -1;
        memcpy(c, a->_req.dropped[i], n);
        a->_req.dropped[i] = c;
    }
    return 0;
}

int mr_attempt_build(mr_attempt_t *a, mr_error_t *e)
{
    const mr_provider_t *p = provider_of(a);

    if (!(a->adapter = mr_inbound_adapter(inbound_of(a), a->_args.endpoint, p))) {
        char why[160];
        snprintf(why, sizeof(why), "provider kind %s is not supported by this build",
                 mr_provider_kind_name(p->kind));
        set_failure(a, MR_FAIL_UNSUPPORTED, why);
        return -1;
    }
    a->_in = (mr_adapter_in_t){
        .provider = p,
        /* a conversation is a chat generation to the adapters, whatever
         * the client's dialect (in->client says which) */
        .endpoint = mr_inbound_is_conversation(a->_args.endpoint) ? MR_EP_CHAT : a->_args.endpoint,
        .model = a->cand->model,
        .stream = a->stream,
        .client_wants_usage = a->_args.client_wants_usage,
        .body = a->_args.body,
        .body_len = a->_args.body_len,
        .scan = a->_args.scan,
        .json = a->_args.json,
        .strip = gateway_only_members,
        .extra_headers = (const char *const *)a->_fwd,
        .client = inbound_of(a),
        .client_header = a->_args.header,
        .client_header_ud = a->_args.header_ud,
        .client_ctx = a->_args.client_ctx,
    };
    if (collect_forwarded(a) < 0) {
        set_failure(a, MR_FAIL_NO_MEMORY, "out of memory");
        return -1;
    }
    if (mr_adapter_conv(a->adapter, a->_args.conv, &a->_in, e) < 0 ||
        a->adapter->build(&a->_in, &a->_req, e) < 0)
        return -2;
    if (a->_args.mem && mr_mem_charge(a->_args.mem, a->_req.body_len) < 0) {
        mr_adapter_req_free(&a->_req);
        mr_error_set(e, 503, NULL, "overloaded", NULL,
                     "the gateway is holding as much request and answer data as it may "
                     "(limits.worker_memory_bytes); retry shortly");
        return -2;
    }
    a->_req_charge = a->_args.mem ? a->_req.body_len : 0;
    if (own_dropped(a) < 0 || (a->stream && !(a->_xl = a->adapter->stream_new(&a->_in)))) {
        set_failure(a, MR_FAIL_NO_MEMORY, "out of memory");
        return -1;
    }
    return 0;
}

int mr_attempt_start(mr_attempt_t *a, mr_upstream_t *u, long connect_timeout_ms)
{
    const mr_provider_t *p = provider_of(a);
    char err[160];

    a->start_ns = uv_hrtime(); /* a backoff wait is not the upstream's time */
    mr_transfer_req_t req = {
        .url = a->_req.url,
        .headers = a->_req.headers,
        .body = a->_req.body,
        .body_len = a->_req.body_len,
        .connect_timeout_ms = connect_timeout_ms,
        .http2 = p->http2,
        .ca_file = p->ca_file,
        .stream = a->stream,
        .keepalive_s = p->keepalive_s,
    };
    if (!(a->_xfer = mr_upstream_start(u, &req, &handler, a, err, sizeof(err)))) {
        set_failure(a, MR_FAIL_TRANSPORT, err); /* nothing was sent */
        return -1;
    }
    a->_sent = 1;
    return 0;
}

bool mr_attempt_running(const mr_attempt_t *a)
{
    return a->_xfer != NULL;
}

void mr_attempt_cancel(mr_attempt_t *a, mr_failure_t failure, const char *why)
{
    /* A relayed answer with a Content-Length is complete for the client
     * (who may be gone already) once its last byte is relayed, even if curl
     * has not reported the transfer's end yet: a success, usage read. */
    bool whole = a->relaying && a->content_length >= 0 &&
                 a->_relayed == (uint64_t)a->content_length && a->failure == MR_FAIL_NONE;

    if (a->_xfer) {
        mr_transfer_cancel(a->_xfer);
        transfer_gone(a);
    }
    if (a->_ended)
        return;
    if (whole)
        relayed_usage(a);
    else
        set_failure(a, failure, why);
    mr_attempt_end(a);
}

void mr_attempt_unpause(mr_attempt_t *a)
{
    if (!a->paused || !a->_xfer)
        return;
    a->paused = 0;
    mr_transfer_unpause(a->_xfer);
}

void mr_attempt_stream_error(mr_attempt_t *a, mr_failure_t failure, const char *why)
{
    const char *name = provider_of(a)->name;
    char msg[160];

    snprintf(msg, sizeof(msg), "upstream %s failed mid-stream (%s)", name,
             mr_failure_name(failure));
    if (inbound_of(a)->stream_fail && a->_args.client_ctx)
        inbound_of(a)->stream_fail(a->_args.client_ctx, &a->out, msg);
    else
        inbound_of(a)->stream_error(&a->out, "api_error", "upstream_stream_error", msg);
    mr_warn("%s: stream from %s ended early: %s", a->_args.request_id, name, why);
}

char *mr_attempt_error_body(mr_attempt_t *a, size_t *len)
{
    mr_buf_t out;

    mr_buf_init(&out, MR_ATTEMPT_ERROR_BODY_MAX);
    a->adapter->translate_error(provider_of(a), a->status, mr_buf_ptr(&a->out), mr_buf_len(&a->out),
                                &out);
    char *body = mr_buf_steal(&out, len), *shaped;
    mr_buf_free(&out);
    if (body && inbound_of(a)->reshape_error &&
        (shaped = inbound_of(a)->reshape_error(body, *len, (int)a->status, len))) {
        free(body);
        body = shaped;
    }
    return body;
}

void mr_attempt_record(const mr_attempt_t *a, mr_attempt_rec_t *rec)
{
    rec->provider = provider_of(a);
    rec->model = a->cand->model;
    rec->status = a->status;
    rec->ms = a->ms;
    rec->failure = a->failure;
    rec->outcome = mr_failure_metric(a->failure);
    rec->signatures_dropped = a->_req.signatures_dropped;
    rec->resends = a->resends;
    rec->n_dropped = a->_req.n_dropped;
    memcpy(rec->dropped, a->_req.dropped, sizeof(rec->dropped));
    memcpy(rec->betas_dropped, a->_req.betas_dropped, sizeof(rec->betas_dropped));
    size_t n = strnlen(a->error, sizeof(rec->error) - 1);
    memcpy(rec->error, a->error, n);
    rec->error[n] = '\0';
}

void mr_attempt_free(mr_attempt_t *a)
{
    if (!a)
        return;
    if (a->_xfer) {
        mr_transfer_cancel(a->_xfer);
        transfer_gone(a);
    }
    give_inflight(a);
    release_slot(a);
    for (size_t i = 0; !a->_args.pool && a->_fwd[i]; i++)
        free(a->_fwd[i]);
    if (!a->_args.pool)
        free(a->_tail);
    mr_adapter_req_free(&a->_req);
    if (a->_args.mem)
        mr_mem_release(a->_args.mem, a->_req_charge);
    if (a->_xl)
        a->adapter->stream_free(a->_xl);
    mr_buf_free(&a->out);
    if (!a->_args.pool)
        free(a);
}
