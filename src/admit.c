/*
 * admit — the limits engine on the request path (admit.h). The engine is
 * the snapshot's (process-wide); the request's state handle is its
 * worker's.
 */
#include "meridian/admit.h"

#include <stdio.h>
#include <string.h>

static mr_limits_engine_t *engine(const mr_request_t *r)
{
    return r->gen->limits && r->gen->sl ? r->gen->limits : NULL;
}

static void on_answer(void *arg, mr_limits_req_t *lim)
{
    mr_request_t *r = arg;
    mr_admit_cb done = r->admit_done;

    (void)lim;
    r->admit_done = NULL;
    if (done)
        done(r);
}

/* ---- the estimate -------------------------------------------------------- */

static mr_limits_price_t price_of(const mr_target_t *t)
{
    mr_limits_price_t p = {0, 0};
    if (t && t->has_input_price)
        p.input_per_mtok = t->input_per_mtok;
    if (t && t->has_output_price)
        p.output_per_mtok = t->output_per_mtok;
    return p;
}

static void estimate(const mr_request_t *r, mr_limits_estimate_t *est)
{
    memset(est, 0, sizeof(*est));
    est->body_bytes = mr_buf_len(&r->body);
    /* max_tokens & co. as the body's scan read them; 0: the engine's default */
    est->max_output_tokens = r->max_output_tokens;
    for (size_t i = 0; i < r->plan.n_candidates; i++) {
        mr_limits_price_t p = price_of(r->plan.candidates[i].target);
        if (p.input_per_mtok > est->worst.input_per_mtok)
            est->worst.input_per_mtok = p.input_per_mtok;
        if (p.output_per_mtok > est->worst.output_per_mtok)
            est->worst.output_per_mtok = p.output_per_mtok;
    }
}

/* ---- admission ------------------------------------------------------------ */

int mr_admit_request(mr_request_t *r, mr_admit_cb done)
{
    mr_limits_engine_t *L = engine(r);
    mr_limits_estimate_t est;

    if (!L)
        return MR_LIMITS_DONE; /* r->lim is zero: allowed */
    estimate(r, &est);
    r->admit_done = done;
    size_t key = r->key ? (size_t)(r->key - r->gen->cfg->keys) : MR_LIMITS_NO_KEY;
    return mr_limits_admit(L, r->gen->sl, &r->lim, key, &est, on_answer, r);
}

bool mr_admit_refusal(mr_request_t *r, mr_error_t *e)
{
    const mr_limits_verdict_t *v = &r->lim.verdict;
    char msg[MR_ERROR_MESSAGE_MAX];

    if (v->outcome == MR_LIMITS_ALLOW || !r->lim._L)
        return false;
    mr_limits_message(r->lim._L, &r->lim, msg, sizeof(msg));
    switch (v->outcome) {
    case MR_LIMITS_RATE_LIMITED:
        mr_error_set(e, 429, v->limit == MR_LIMIT_TPM ? "tokens" : "requests",
                     "rate_limit_exceeded", NULL, "%s", msg);
        break;
    case MR_LIMITS_QUOTA:
        mr_error_set(e, 429, "insufficient_quota", "insufficient_quota", NULL, "%s", msg);
        break;
    default:
        mr_error_set(e, 503, NULL, "state_unavailable", NULL, "%s", msg);
    }
    r->retry_after_out = v->retry_after_s;
    return true;
}

/* ---- attempts ------------------------------------------------------------- */

int mr_admit_attempt(mr_request_t *r, const mr_candidate_t *c, mr_admit_cb done)
{
    mr_limits_engine_t *L = engine(r);
    mr_limits_price_t price = price_of(c->target);

    r->lim_attempt_open = false;
    if (!L)
        return MR_LIMITS_DONE;
    r->admit_done = done;
    r->lim_attempt_open = true; /* closed by mr_admit_attempt_end, whatever it says */
    return mr_limits_attempt(L, &r->lim, (size_t)(c->provider - r->gen->cfg->providers), &price,
                             on_answer, r);
}

bool mr_admit_attempt_allowed(const mr_request_t *r)
{
    return !engine(r) || r->lim.verdict.outcome == MR_LIMITS_ALLOW;
}

static bool usage_known(const mr_usage_t *u)
{
    return u->prompt_tokens >= 0 || u->completion_tokens >= 0;
}

void mr_admit_attempt_end(mr_request_t *r, const mr_attempt_t *a)
{
    mr_limits_usage_t u;

    if (!r->lim_attempt_open)
        return;
    r->lim_attempt_open = false;
    /* succeeded: a stream reached the client, or a whole 2xx answer came */
    bool ok =
        a && (a->committed || (a->failure == MR_FAIL_NONE && a->status >= 200 && a->status < 300));
    if (a && usage_known(&a->usage)) {
        u.prompt_tokens = a->usage.prompt_tokens > 0 ? (uint64_t)a->usage.prompt_tokens : 0;
        u.completion_tokens =
            a->usage.completion_tokens > 0 ? (uint64_t)a->usage.completion_tokens : 0;
        mr_limits_attempt_done(&r->lim, &u, ok);
    } else {
        mr_limits_attempt_done(&r->lim, NULL, ok);
    }
}

void mr_admit_cancel(mr_request_t *r)
{
    r->admit_done = NULL;
    mr_limits_cancel(&r->lim);
}

void mr_admit_finish(mr_request_t *r)
{
    r->admit_done = NULL;
    mr_admit_attempt_end(r, r->att);
    mr_limits_finish(&r->lim);
}

/* ---- GET /v1/gateway/keys/NAME -------------------------------------------- */

int mr_admit_key_refresh(mr_request_t *r, size_t key, mr_admit_cb done)
{
    mr_limits_engine_t *L = engine(r);

    if (!L)
        return MR_LIMITS_DONE;
    r->admit_done = done;
    return mr_limits_refresh(L, r->gen->sl, &r->lim, key, on_answer, r);
}

json_t *mr_admit_key_json(const mr_request_t *r, size_t key)
{
    const mr_key_t *k = &r->gen->cfg->keys[key];
    json_t *o = r->gen->limits ? mr_limits_key_json(r->gen->limits, key) : NULL;

    if (!o) /* no state: the limits as configured, nothing counted */
        o = json_pack("{sss{}s{}}", "name", k->name, "limits", "usage");
    if (o) {
        json_object_set_new(o, "object", json_string("gateway.key"));
        json_object_set_new(o, "admin", json_boolean(k->admin));
        json_object_set_new(o, "policy", k->policy ? json_string(k->policy->name) : json_null());
    }
    return o;
}
