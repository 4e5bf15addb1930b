/*
 * health — circuit breakers, retry budget, backoff (see health.h).
 *
 * A breaker is three numbers and a flag: `_tripped` says it is not closed,
 * `_open_until_ms` when its cooldown ends (open before, half-open after) and
 * `_probe_until_ms` whether the single half-open probe is out. The state is
 * derived from them and `now` on every read, so the time-driven transitions
 * need no timer and a report is seen by the very next acquire, on any
 * worker: the public calls take the instance's mutex (static helpers below
 * expect it held).
 */
#include "meridian/health.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- the breaker -------------------------------------------------------- */

static mr_health_target_t *target(const mr_health_t *h, size_t id)
{
    return h && id < h->_n ? &h->_t[id] : NULL;
}

static mr_health_state_t state_of(const mr_health_target_t *t, uint64_t now)
{
    if (!t->_tripped)
        return MR_HEALTH_CLOSED;
    return now < t->_open_until_ms ? MR_HEALTH_OPEN : MR_HEALTH_HALF_OPEN;
}

static bool probe_out(const mr_health_target_t *t, uint64_t now)
{
    return t->_probe_until_ms != 0 && now < t->_probe_until_ms;
}

int mr_health_init(mr_health_t *h, size_t n_targets, const mr_health_opts_t *opts)
{
    mr_health_opts_t o = opts ? *opts : (mr_health_opts_t){0};

    memset(h, 0, sizeof(*h));
    pthread_mutex_init(&h->_mu, NULL);
    if (!o.failure_threshold)
        o.failure_threshold = MR_HEALTH_FAILURE_THRESHOLD;
    if (!o.cooldown_ms)
        o.cooldown_ms = MR_HEALTH_COOLDOWN_MS;
    if (!o.max_cooldown_ms)
        o.max_cooldown_ms = MR_HEALTH_MAX_COOLDOWN_MS;
    if (o.max_cooldown_ms < o.cooldown_ms)
        o.max_cooldown_ms = o.cooldown_ms;
    if (!o.probe_timeout_ms)
        o.probe_timeout_ms = MR_HEALTH_PROBE_TIMEOUT_MS;
    h->opts = o;
    if (n_targets && !(h->_t = calloc(n_targets, sizeof(*h->_t)))) {
        pthread_mutex_destroy(&h->_mu);
        return -1;
    }
    h->_n = n_targets;
    return 0;
}

void mr_health_free(mr_health_t *h)
{
    free(h->_t);
    pthread_mutex_destroy(&h->_mu);
    memset(h, 0, sizeof(*h));
}

void mr_health_set_listener(mr_health_t *h, mr_health_listener_t fn, void *ud)
{
    pthread_mutex_lock(&h->_mu);
    h->_listener = fn;
    h->_listener_ud = ud;
    pthread_mutex_unlock(&h->_mu);
}

void mr_health_carry(mr_health_t *dst, const mr_health_t *src, const size_t *map)
{
    pthread_mutex_t *mu = (pthread_mutex_t *)(uintptr_t)&src->_mu; /* only the lock changes */

    pthread_mutex_lock(mu);
    for (size_t i = 0; i < dst->_n; i++) {
        const mr_health_target_t *s = target(src, map[i]);

        if (!s)
            continue;
        dst->_t[i] = *s;
        dst->_t[i]._probe_until_ms = 0; /* its report goes to src */
    }
    pthread_mutex_unlock(mu);
}

static void lock(const mr_health_t *h)
{
    pthread_mutex_lock((pthread_mutex_t *)(uintptr_t)&h->_mu);
}

static void unlock(const mr_health_t *h)
{
    pthread_mutex_unlock((pthread_mutex_t *)(uintptr_t)&h->_mu);
}

static void changed(const mr_health_t *h, const mr_health_target_t *t, uint64_t now)
{
    if (h->_listener)
        h->_listener(h->_listener_ud, (size_t)(t - h->_t), t->_tripped ? t->_open_until_ms : 0,
                     now);
}

const mr_health_target_t *mr_health_target(const mr_health_t *h, size_t id)
{
    return target(h, id);
}

mr_health_state_t mr_health_state(const mr_health_t *h, size_t id, uint64_t now_ms)
{
    const mr_health_target_t *t = target(h, id);
    mr_health_state_t st;

    if (!t)
        return MR_HEALTH_CLOSED;
    lock(h);
    st = state_of(t, now_ms);
    unlock(h);
    return st;
}

bool mr_health_available(const mr_health_t *h, size_t id, uint64_t now_ms)
{
    const mr_health_target_t *t = target(h, id);
    bool ok;

    if (!t)
        return true;
    lock(h);
    switch (state_of(t, now_ms)) {
    case MR_HEALTH_CLOSED:
        ok = true;
        break;
    case MR_HEALTH_HALF_OPEN:
        ok = !probe_out(t, now_ms);
        break;
    default:
        ok = false;
    }
    unlock(h);
    return ok;
}

static uint64_t retry_in(const mr_health_target_t *t, uint64_t now)
{
    return state_of(t, now) == MR_HEALTH_OPEN ? t->_open_until_ms - now : 0;
}

uint64_t mr_health_retry_in_ms(const mr_health_t *h, size_t id, uint64_t now_ms)
{
    const mr_health_target_t *t = target(h, id);
    uint64_t ms;

    if (!t)
        return 0;
    lock(h);
    ms = retry_in(t, now_ms);
    unlock(h);
    return ms;
}

mr_health_verdict_t mr_health_acquire(mr_health_t *h, size_t id, uint64_t now_ms)
{
    mr_health_target_t *t = target(h, id);
    mr_health_verdict_t v = MR_HEALTH_SKIP;

    if (!t)
        return MR_HEALTH_ALLOW;
    lock(h);
    switch (state_of(t, now_ms)) {
    case MR_HEALTH_CLOSED:
        v = MR_HEALTH_ALLOW;
        break;
    case MR_HEALTH_OPEN:
        break;
    default:
        if (probe_out(t, now_ms))
            break;
        /* an expired slot (a probe that never reported) is simply taken over */
        t->_probe_until_ms = now_ms + h->opts.probe_timeout_ms;
        v = MR_HEALTH_PROBE;
    }
    unlock(h);
    return v;
}

void mr_health_cancel(mr_health_t *h, size_t id, uint64_t now_ms)
{
    mr_health_target_t *t = target(h, id);

    (void)now_ms;
    if (!t)
        return;
    lock(h);
    t->_probe_until_ms = 0;
    unlock(h);
}

/* Opens (or keeps open) until `until`: never shortens a running cooldown.
 * Returns the new open-until when it changed, else 0. */
static uint64_t open_until(const mr_health_t *h, mr_health_target_t *t, uint64_t now,
                           uint64_t until)
{
    if (state_of(t, now) != MR_HEALTH_OPEN) {
        t->_tripped = true;
        t->_opened_at_ms = now;
        t->_open_until_ms = until;
    } else if (until > t->_open_until_ms) {
        t->_open_until_ms = until;
    } else {
        return 0;
    }
    changed(h, t, now);
    return until;
}

static uint64_t open_for(const mr_health_t *h, mr_health_target_t *t, uint64_t now, uint64_t ms)
{
    return open_until(h, t, now, now + ms);
}

void mr_health_announce(mr_health_t *h, uint64_t now_ms)
{
    lock(h);
    for (size_t i = 0; i < h->_n; i++)
        changed(h, &h->_t[i], now_ms);
    unlock(h);
}

bool mr_health_open_until(mr_health_t *h, size_t id, uint64_t until_ms, uint64_t now_ms)
{
    mr_health_target_t *t = target(h, id);
    uint64_t opened = 0;

    if (!t || until_ms <= now_ms)
        return false;
    lock(h);
    /* an open breaker keeps its own time: a hint (maybe its own echo, a
     * few ms off through the clocks) never stretches it */
    if (state_of(t, now_ms) != MR_HEALTH_OPEN)
        opened = open_until(h, t, now_ms, until_ms);
    unlock(h);
    return opened != 0;
}

/* The breaker's own cooldown: cooldown_ms * 2^(opens - 1), capped. */
static uint64_t trip(const mr_health_t *h, mr_health_target_t *t, uint64_t now)
{
    uint64_t ms = h->opts.cooldown_ms;

    t->_opens++;
    for (uint32_t i = 1; i < t->_opens && ms < h->opts.max_cooldown_ms; i++)
        ms *= 2;
    if (ms > h->opts.max_cooldown_ms)
        ms = h->opts.max_cooldown_ms;
    return open_for(h, t, now, ms);
}

static void update_stats(mr_health_target_t *t, bool ok, uint32_t ttfb_ms)
{
    const double a = MR_HEALTH_EWMA_ALPHA;

    t->requests++;
    if (!ok)
        t->failures++;
    t->error_rate = a * (ok ? 0.0 : 1.0) + (1 - a) * t->error_rate;
    if (ttfb_ms == MR_HEALTH_NO_TTFB)
        return;
    if (t->_ttfb_samples++ == 0)
        t->ewma_ttfb_ms = ttfb_ms;
    else
        t->ewma_ttfb_ms = a * ttfb_ms + (1 - a) * t->ewma_ttfb_ms;
}

uint64_t mr_health_report(mr_health_t *h, size_t id, mr_outcome_t outcome, long retry_after_s,
                          uint32_t ttfb_ms, uint64_t now_ms)
{
    return mr_health_report_attempt(h, id, true, outcome, retry_after_s, ttfb_ms, now_ms);
}

/* The report's effect on the breaker (statistics are taken already). */
static uint64_t judge(const mr_health_t *h, mr_health_target_t *t, bool probe, mr_outcome_t outcome,
                      long retry_after_s, uint64_t now_ms)
{
    bool ok = outcome == MR_OUTCOME_SUCCESS;
    mr_health_state_t st = state_of(t, now_ms);

    if (st == MR_HEALTH_HALF_OPEN && !probe && !(retry_after_s > 0 && !ok))
        return 0; /* a late answer: the probe decides, and keeps its slot */
    if (probe)
        t->_probe_until_ms = 0;
    if (!ok && t->_consecutive < UINT32_MAX)
        t->_consecutive++;

    if ((outcome == MR_OUTCOME_RATE_LIMITED || outcome == MR_OUTCOME_OVERLOADED) &&
        retry_after_s > 0) {
        uint64_t max = h->opts.max_cooldown_ms;
        uint64_t ms = (uint64_t)retry_after_s > max / 1000 ? max : (uint64_t)retry_after_s * 1000;
        return open_for(h, t, now_ms, ms);
    }
    switch (st) {
    case MR_HEALTH_CLOSED:
        if (ok)
            t->_consecutive = 0;
        else if (t->_consecutive >= h->opts.failure_threshold)
            return trip(h, t, now_ms);
        break;
    case MR_HEALTH_OPEN:
        break; /* a late answer of an attempt sent before it opened */
    case MR_HEALTH_HALF_OPEN:
        if (!ok)
            return trip(h, t, now_ms);
        t->_tripped = false;
        t->_consecutive = 0;
        t->_opens = 0;
        t->_opened_at_ms = t->_open_until_ms = 0;
        changed(h, t, now_ms);
        break;
    }
    return 0;
}

uint64_t mr_health_report_attempt(mr_health_t *h, size_t id, bool probe, mr_outcome_t outcome,
                                  long retry_after_s, uint32_t ttfb_ms, uint64_t now_ms)
{
    mr_health_target_t *t = target(h, id);
    uint64_t opened;

    if (!t)
        return 0;
    lock(h);
    update_stats(t, outcome == MR_OUTCOME_SUCCESS, ttfb_ms);
    opened = judge(h, t, probe, outcome, retry_after_s, now_ms);
    unlock(h);
    return opened;
}

mr_outcome_t mr_health_outcome(long status)
{
    if (status == 429)
        return MR_OUTCOME_RATE_LIMITED;
    if (status == 503 || status == 529)
        return MR_OUTCOME_OVERLOADED;
    if (status <= 0 || mr_retryable_status(status))
        return MR_OUTCOME_FAILURE;
    return MR_OUTCOME_SUCCESS;
}

static const char *state_name(mr_health_state_t s)
{
    switch (s) {
    case MR_HEALTH_OPEN:
        return "open";
    case MR_HEALTH_HALF_OPEN:
        return "half_open";
    default:
        return "closed";
    }
}

json_t *mr_health_json(const mr_health_t *h, size_t id, uint64_t now_ms)
{
    const mr_health_target_t *tp = target(h, id);
    mr_health_target_t copy;
    const mr_health_target_t *t = &copy;
    mr_health_state_t st;
    json_t *o;

    if (!tp || !(o = json_object()))
        return NULL;
    lock(h);
    copy = *tp;
    unlock(h);
    st = state_of(t, now_ms);
    json_object_set_new(o, "state", json_string(state_name(st)));
    json_object_set_new(o, "consecutive_failures", json_integer(t->_consecutive));
    if (st != MR_HEALTH_CLOSED)
        json_object_set_new(o, "opened_at_ms", json_integer((json_int_t)t->_opened_at_ms));
    json_object_set_new(o, "retry_in_ms", json_integer((json_int_t)retry_in(t, now_ms)));
    if (st == MR_HEALTH_HALF_OPEN)
        json_object_set_new(o, "probe_in_flight", json_boolean(probe_out(t, now_ms)));
    json_object_set_new(o, "ewma_ttfb_ms",
                        t->_ttfb_samples ? json_integer((json_int_t)(t->ewma_ttfb_ms + 0.5))
                                         : json_null());
    json_object_set_new(o, "error_rate",
                        json_real((double)(uint64_t)(t->error_rate * 10000 + 0.5) / 10000));
    json_object_set_new(o, "requests", json_integer((json_int_t)t->requests));
    json_object_set_new(o, "failures", json_integer((json_int_t)t->failures));
    return o;
}

/* ---- the retry budget --------------------------------------------------- */

void mr_retry_budget_init(mr_retry_budget_t *b, const mr_retry_budget_opts_t *opts)
{
    mr_retry_budget_opts_t o = opts ? *opts : (mr_retry_budget_opts_t){0};

    memset(b, 0, sizeof(*b));
    if (o.ratio == 0)
        o.ratio = MR_RETRY_RATIO;
    else if (o.ratio < 0)
        o.ratio = 0;
    if (!o.window_s)
        o.window_s = MR_RETRY_WINDOW_S;
    if (o.window_s > MR_RETRY_MAX_WINDOW_S)
        o.window_s = MR_RETRY_MAX_WINDOW_S;
    if (!o.min_retries_per_s)
        o.min_retries_per_s = MR_RETRY_MIN_PER_S;
    else if (o.min_retries_per_s == MR_RETRY_NO_FLOOR)
        o.min_retries_per_s = 0;
    b->opts = o;
    pthread_mutex_init(&b->_mu, NULL);
}

void mr_retry_budget_free(mr_retry_budget_t *b)
{
    pthread_mutex_destroy(&b->_mu);
}

void mr_retry_budget_stats(mr_retry_budget_t *b, uint64_t out[3])
{
    pthread_mutex_lock(&b->_mu);
    out[0] = b->requests;
    out[1] = b->retries;
    out[2] = b->denied;
    pthread_mutex_unlock(&b->_mu);
}

/* The slot of the current second, zeroed when it held an older one. */
static size_t rb_slot(mr_retry_budget_t *b, uint64_t now_ms)
{
    uint64_t sec = now_ms / 1000;
    size_t s = (size_t)(sec % b->opts.window_s);

    if (b->_epoch[s] != sec + 1) {
        b->_epoch[s] = sec + 1;
        b->_req[s] = b->_retry[s] = 0;
    }
    return s;
}

/* Sums the slots within the window ending at now (a slot "from the future",
 * after a clock step back, counts as current). */
static void rb_window(const mr_retry_budget_t *b, uint64_t now_ms, uint64_t *req, uint64_t *retry)
{
    uint64_t sec = now_ms / 1000;

    *req = *retry = 0;
    for (size_t s = 0; s < b->opts.window_s; s++) {
        uint64_t e = b->_epoch[s];
        if (e == 0 || (e - 1 < sec && sec - (e - 1) >= b->opts.window_s))
            continue;
        *req += b->_req[s];
        *retry += b->_retry[s];
    }
}

void mr_retry_budget_request(mr_retry_budget_t *b, uint64_t now_ms)
{
    pthread_mutex_lock(&b->_mu);
    size_t s = rb_slot(b, now_ms);

    if (b->_req[s] < UINT32_MAX)
        b->_req[s]++;
    b->requests++;
    pthread_mutex_unlock(&b->_mu);
}

bool mr_retry_budget_try(mr_retry_budget_t *b, uint64_t now_ms)
{
    uint64_t req, retry, allowed;
    bool ok;

    pthread_mutex_lock(&b->_mu);
    size_t s = rb_slot(b, now_ms);
    rb_window(b, now_ms, &req, &retry);
    /* the epsilon keeps 0.2 * 100 at 20 despite binary fractions */
    allowed = (uint64_t)(b->opts.ratio * (double)req + 1e-9) +
              (uint64_t)b->opts.min_retries_per_s * b->opts.window_s;
    ok = retry < allowed;
    if (!ok) {
        b->denied++;
    } else {
        if (b->_retry[s] < UINT32_MAX)
            b->_retry[s]++;
        b->retries++;
    }
    pthread_mutex_unlock(&b->_mu);
    return ok;
}

/* ---- backoff and retryability ------------------------------------------ */

uint32_t mr_backoff_ms(unsigned attempt, uint32_t base_ms, uint32_t cap_ms, uint64_t *rng_state)
{
    uint64_t x = *rng_state ? *rng_state : 0x9e3779b97f4a7c15ULL;
    uint64_t ceil = base_ms;

    /* xorshift64 (Marsaglia 13/7/17) */
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *rng_state = x;
    for (unsigned i = 0; i < attempt && ceil < cap_ms; i++)
        ceil *= 2;
    if (ceil > cap_ms)
        ceil = cap_ms;
    return (uint32_t)(x % (ceil + 1));
}

bool mr_retryable_status(long status)
{
    return status == 408 || status == 409 || status == 429 || (status >= 500 && status <= 599);
}
