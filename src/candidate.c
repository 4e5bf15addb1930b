/*
 * candidate — the next candidate of a request's plan (candidate.h).
 */
#include "meridian/candidate.h"

static uint64_t now_of(const mr_request_t *r)
{
    return uv_now(r->env->loop);
}

/* The provider refused the gateway's key earlier in this request: its other
 * targets would be refused too. */
static bool refused_credentials(const mr_request_t *r, const mr_provider_t *p)
{
    for (unsigned i = 0; i < r->n_attempts; i++)
        if (r->attempts[i].provider == p && r->attempts[i].failure == MR_FAIL_HTTP_AUTH)
            return true;
    return false;
}

/* The next candidate whose provider is below its max_inflight and whose
 * breaker lets traffic through, with both slots taken; the others are
 * skipped at once (and counted for the error). */
static const mr_candidate_t *take_candidate(mr_request_t *r, size_t *health_id, bool *probe)
{
    mr_generation_t *g = r->gen;
    uint64_t now = now_of(r), in;

    while (r->next_candidate < r->plan.n_candidates) {
        const mr_candidate_t *c = &r->plan.candidates[r->next_candidate++];
        size_t id = c->target ? c->target->id : SIZE_MAX;
        if (refused_credentials(r, c->provider))
            continue;
        if (!mr_generation_inflight_take(g, c->provider)) {
            r->n_busy++;
            mr_metrics_skipped(g->mv, c->provider, MR_SKIP_MAX_INFLIGHT);
            continue;
        }
        mr_health_verdict_t v = mr_generation_acquire_target(g, id, now, &in);
        if (v != MR_HEALTH_SKIP) {
            *health_id = id;
            *probe = v == MR_HEALTH_PROBE;
            return c;
        }
        mr_generation_inflight_give(g, c->provider);
        mr_metrics_skipped(g->mv, c->provider, MR_SKIP_CIRCUIT_OPEN);
        if (r->n_skipped++ == 0 || in < r->skipped_retry_ms)
            r->skipped_retry_ms = in;
    }
    return NULL;
}

/* Gives back the slots take_candidate took for a candidate not tried. */
static void untake(mr_request_t *r, const mr_candidate_t *c, size_t id, bool probe)
{
    if (probe)
        mr_generation_cancel(r->gen, id, now_of(r));
    mr_generation_inflight_give(r->gen, c->provider);
}

/* Its provider's budget (or the state) refused the candidate: skipped like
 * an open circuit. */
static void refuse_candidate(mr_request_t *r, const mr_candidate_t *c, size_t id, bool probe)
{
    mr_admit_attempt_end(r, NULL);
    untake(r, c, id, probe);
    r->n_over_budget++;
    mr_metrics_skipped(r->gen->mv, c->provider, MR_SKIP_BUDGET);
}

void mr_candidate_drop_held(mr_request_t *r)
{
    if (!r->held_cand)
        return;
    untake(r, r->held_cand, r->held_id, r->held_probe);
    r->held_cand = NULL;
}

const mr_candidate_t *mr_candidate_next(mr_request_t *r, size_t *id, bool *probe,
                                        mr_admit_cb resume)
{
    const mr_candidate_t *c;

    while ((c = take_candidate(r, id, probe))) {
        if (mr_admit_attempt(r, c, resume) == MR_LIMITS_PENDING) {
            r->held_cand = c;
            r->held_id = *id;
            r->held_probe = *probe;
            return NULL;
        }
        if (mr_admit_attempt_allowed(r))
            return c;
        refuse_candidate(r, c, *id, *probe);
    }
    return NULL;
}

const mr_candidate_t *mr_candidate_held(mr_request_t *r, size_t *id, bool *probe)
{
    const mr_candidate_t *c = r->held_cand;

    r->held_cand = NULL;
    *id = r->held_id;
    *probe = r->held_probe;
    if (mr_admit_attempt_allowed(r))
        return c;
    refuse_candidate(r, c, *id, *probe);
    return NULL;
}
