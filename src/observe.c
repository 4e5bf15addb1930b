#include "meridian/observe.h"

_Static_assert(MR_EP_COUNT <= MR_METRICS_ENDPOINTS, "every endpoint has its metrics row");

static size_t route_key(const mr_request_t *r)
{
    if (!r->planned)
        return MR_ROUTE_NONE;
    return r->plan.route ? r->plan.route->index : MR_ROUTE_DIRECT;
}

static double known(long n)
{
    return n > 0 ? (double)n : 0;
}

double mr_observe_cost(const mr_target_t *t, const mr_usage_t *u)
{
    double cached = known(u->cached_tokens), written = known(u->cache_write_tokens);
    double plain = known(u->prompt_tokens) - cached - written;

    if (!t || !t->has_input_price || !t->has_output_price)
        return -1;
    if (plain < 0)
        plain = 0;
    return (plain * t->input_per_mtok + cached * t->cached_input_per_mtok +
            written * t->cache_write_per_mtok + known(u->completion_tokens) * t->output_per_mtok) /
           1e6;
}

/* A served answer whose upstream reported no usage gets an estimate, so
 * budgets and costs never count it as free; the records say which it is. */
static void estimate_usage(mr_request_t *r)
{
    if (r->usage.prompt_tokens >= 0 || r->usage.completion_tokens >= 0)
        return;
    r->usage.prompt_tokens = (long)((mr_buf_len(&r->body) + MR_OBSERVE_BYTES_PER_TOKEN - 1) /
                                    MR_OBSERVE_BYTES_PER_TOKEN);
    r->usage.completion_tokens =
        (long)((r->resp_bytes + MR_OBSERVE_BYTES_PER_TOKEN - 1) / MR_OBSERVE_BYTES_PER_TOKEN);
    r->usage_estimated = 1;
}

/* The failure of the answer the client got ("ok" when there is none). */
static const char *outcome_of(const mr_request_t *r)
{
    if (r->n_attempts == 0)
        return NULL;
    mr_failure_t f = r->attempts[r->n_attempts - 1].failure;
    return f == MR_FAIL_NONE ? "ok" : mr_failure_name(f);
}

static void write_records(mr_request_t *r, int completed, const mr_provider_t *p,
                          const mr_metrics_req_t *rq, double cost)
{
    mr_reqlog_t *log = r->env->reqlog;
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
        .dialect = r->inbound->name,
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
        .usage_source = !p                   ? NULL
                        : r->usage_estimated ? "estimated"
                                             : "reported",
        .outcome = outcome_of(r),
        .cost_usd = cost,
        .total_us = rq->total_us,
        .ttfb_us = rq->ttfb_us,
        .unix_time = r->unix_time,
        .request_sha256 = r->audit && mr_buf_len(&r->body) ? req_sha : NULL,
        .response_sha256 = r->audit && r->first_byte_ns ? resp_sha : NULL,
        .request_body = bodies ? mr_buf_ptr(&r->body) : NULL,
        .request_len = mr_buf_len(&r->body),
        .response_body = bodies ? mr_buf_ptr(&r->resp_copy) : NULL,
        .response_len = mr_buf_len(&r->resp_copy),
        .response_bytes = r->resp_bytes,
    };
    mr_reqlog_write(log, r->env->worker, &rec);
}

void mr_observe_request(mr_request_t *r, int completed)
{
    mr_metrics_view_t *mv = r->gen->mv;
    const mr_provider_t *p = r->final_status ? r->served_by : NULL;
    const mr_target_t *t = p && r->served_cand ? r->served_cand->target : NULL;
    size_t route = route_key(r);
    uint64_t now = uv_hrtime();

    if (r->endpoint == MR_EP_COUNT)
        return;
    mr_metrics_req_t rq = {
        .route = route,
        .endpoint = (unsigned)r->endpoint,
        .endpoint_name = mr_endpoint_name(r->endpoint),
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
    int ok = p && r->final_status >= 200 && r->final_status < 300;
    if (ok)
        estimate_usage(r);
    double cost = mr_observe_cost(t, &r->usage);
    if (ok) {
        const long counts[MR_TOK_COUNT] = {r->usage.prompt_tokens, r->usage.completion_tokens,
                                           r->usage.cached_tokens, r->usage.cache_write_tokens,
                                           r->usage.reasoning_tokens};
        mr_metrics_usage(mv, p, counts, cost > 0 ? cost : 0);
    }
    for (unsigned i = 0; i < r->n_attempts; i++)
        for (unsigned k = 0; k < r->attempts[i].resends; k++)
            mr_metrics_resend(mv, r->attempts[i].provider);
    if (mr_reqlog_wants_access(r->env->reqlog) || mr_reqlog_wants_audit(r->env->reqlog))
        write_records(r, completed, p, &rq, cost);
}
