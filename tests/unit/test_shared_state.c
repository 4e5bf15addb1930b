/*
 * The process-wide soft state of a snapshot (generation.h) with the memory
 * state backend and an injected UTC clock: breakers exact under threads and
 * shared by every worker's generation, their gauge, a breaker hint from
 * another instance opening a breaker until its time, max_inflight exact
 * across threads, carry-over of breakers and per-key counters on reload,
 * and the router skipping a provider over its budget with the reason.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meridian/generation.h"
#include "meridian/router.h"
#include "meridian/router_explain.h"

#define UTC0 1800000000000ULL /* 2027-01-15T08:00:00Z */
#define MONO0 mono0           /* the loops' clock: CLOCK_MONOTONIC ms, as the gauges' */
#define THREADS 4
#define ROUNDS 20000

static const char *cfg_json =
    "{\"providers\":{"
    "  \"a\":{\"kind\":\"openai\",\"base_url\":\"http://h\",\"max_inflight\":5,"
    "        \"budget_usd\":0.001},"
    "  \"b\":{\"kind\":\"openai\",\"base_url\":\"http://h\"}},"
    " \"routes\":{\"r\":{\"targets\":[{\"provider\":\"a\",\"model\":\"m\","
    "                               \"input_per_mtok\":1000,\"output_per_mtok\":1000},"
    "                              {\"provider\":\"b\",\"model\":\"m\"}]},"
    "            \"only\":{\"targets\":[{\"provider\":\"a\",\"model\":\"m\"}]}},"
    " \"health\":{\"failure_threshold\":3,\"cooldown_ms\":1000},"
    " \"keys\":{\"k\":{\"sha256\":"
    "   \"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\","
    "   \"limits\":{\"rpm\":100}}}}";

static uint64_t mono0;

typedef struct fx {
    uint64_t utc;
    uv_loop_t loop[2];
    mr_state_t *st;
    mr_state_loop_t *sl[2];
    mr_metrics_t *metrics;
    mr_snapshot_t *snap;
    mr_generation_t *g[2]; /* two workers */
} fx_t;

static uint64_t fake_utc(void *arg)
{
    return ((fx_t *)arg)->utc;
}

static mr_config_t *load(const char *json)
{
    mr_config_t *cfg = NULL;
    char err[512];
    if (mr_config_load_string(json, "t.json", &cfg, err, sizeof(err)) != 0)
        print_error("%s\n", err);
    return cfg;
}

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    char err[256];
    mr_state_opts_t o = {.backend = MR_STATE_MEMORY, .clock = fake_utc, .clock_arg = f};
    mr_config_t *cfg = load(cfg_json);

    f->utc = UTC0;
    mono0 = mr_metrics_now_ms();
    if (!cfg || mr_state_new(&o, &f->st, err, sizeof(err)) != 0 ||
        mr_metrics_new(THREADS, &f->metrics) != 0)
        return -1;
    mr_snapshot_env_t env = {f->st, f->metrics, 7, NULL};
    if (!(f->snap = mr_snapshot_new(cfg, &env)))
        return -1;
    for (int w = 0; w < 2; w++) {
        uv_loop_init(&f->loop[w]);
        if (mr_state_attach(f->st, &f->loop[w], &f->sl[w], err, sizeof(err)) != 0 ||
            !(f->g[w] = mr_generation_new(f->snap, f->metrics, (unsigned)w, f->sl[w])))
            return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    for (int w = 0; w < 2; w++) {
        mr_generation_release(f->g[w]);
        mr_state_loop_close(f->sl[w]);
        uv_run(&f->loop[w], UV_RUN_DEFAULT);
        uv_loop_close(&f->loop[w]);
    }
    mr_snapshot_release(f->snap);
    mr_state_free(f->st);
    mr_metrics_free(f->metrics);
    free(f);
    return 0;
}

static const mr_target_t *target_of(const mr_snapshot_t *s, const char *route, size_t i)
{
    return &mr_config_find_route(s->cfg, route)->targets[i];
}

/* ---- breakers ------------------------------------------------------------- */

/* What one worker's generation sees of a target. */
static mr_health_verdict_t try_target(mr_generation_t *g, size_t id, uint64_t now)
{
    uint64_t in;
    mr_health_verdict_t v = mr_generation_acquire_target(g, id, now, &in);
    if (v == MR_HEALTH_PROBE)
        mr_generation_cancel(g, id, now);
    return v;
}

static void breaker_counts(const fx_t *f, size_t id, unsigned want_closed, unsigned want_open)
{
    unsigned n[3];
    mr_metrics_breaker_counts(f->metrics, f->snap->breaker_slots[id], n);
    assert_int_equal(n[0], want_closed);
    assert_int_equal(n[1], want_open);
}

static void test_breaker_shared_by_workers(void **state)
{
    fx_t *f = *state;
    size_t id = target_of(f->snap, "r", 0)->id;

    breaker_counts(f, id, 1, 0); /* announced closed when the snapshot was made */
    for (int i = 0; i < 3; i++)  /* worker 0 sees the failures ... */
        mr_generation_report(f->g[0], id, false, MR_OUTCOME_FAILURE, -1, MR_HEALTH_NO_TTFB, MONO0);
    /* ... worker 1 skips the target at once */
    assert_int_equal(try_target(f->g[1], id, MONO0 + 1), MR_HEALTH_SKIP);
    breaker_counts(f, id, 0, 1);
    /* the opening was announced as a hint (UTC, for the other instances) */
    uint64_t until;
    assert_true(mr_state_hint_get(f->st, f->snap->hint_names[id], &until));
    assert_int_equal(until, UTC0 + 1000);
    /* after the cooldown either worker may probe; one success closes it */
    f->utc = UTC0 + 1000; /* both clocks move on together */
    assert_int_equal(try_target(f->g[1], id, MONO0 + 1000), MR_HEALTH_PROBE);
    assert_int_equal(mr_generation_acquire_target(f->g[1], id, MONO0 + 1000, &until),
                     MR_HEALTH_PROBE);
    assert_int_equal(try_target(f->g[0], id, MONO0 + 1001), MR_HEALTH_SKIP); /* probe out */
    mr_generation_report(f->g[1], id, true, MR_OUTCOME_SUCCESS, -1, 10, MONO0 + 1002);
    assert_int_equal(try_target(f->g[0], id, MONO0 + 1003), MR_HEALTH_ALLOW);
    breaker_counts(f, id, 1, 0);
}

static void test_hint_from_another_instance(void **state)
{
    fx_t *f = *state;
    size_t id = target_of(f->snap, "r", 1)->id; /* b/m */

    assert_int_equal(try_target(f->g[0], id, MONO0), MR_HEALTH_ALLOW);
    /* another instance opened b/m for 5 s (as Redis would deliver it) */
    mr_state_hint_publish(f->sl[1], "b/m", UTC0 + 5000);
    f->utc += 1000;
    assert_int_equal(try_target(f->g[0], id, MONO0 + 1000), MR_HEALTH_SKIP);
    uint64_t in;
    assert_int_equal(mr_generation_acquire_target(f->g[1], id, MONO0 + 1000, &in), MR_HEALTH_SKIP);
    assert_int_equal(in, 4000); /* until the hint's time, on this clock */
    breaker_counts(f, id, 0, 1);
    /* then one probe decides here, as after a cooldown of our own */
    assert_int_equal(try_target(f->g[0], id, MONO0 + 5000), MR_HEALTH_PROBE);
}

typedef struct hammer {
    fx_t *f;
    mr_generation_t *g;
    atomic_uint *peak;
    unsigned taken;
} hammer_t;

/* Takes and gives a's max_inflight slots (5) and reports to a/m's breaker. */
static void *hammer_main(void *arg)
{
    hammer_t *h = arg;
    mr_generation_t *g = h->g;
    const mr_provider_t *a = &h->f->snap->cfg->providers[0];
    size_t id = target_of(h->f->snap, "only", 0)->id;

    for (int i = 0; i < ROUNDS; i++) {
        if (mr_generation_inflight_take(g, a)) {
            unsigned now = atomic_load(&h->f->snap->inflight[0]), peak = atomic_load(h->peak);
            while (now > peak && !atomic_compare_exchange_weak(h->peak, &peak, now))
                ;
            h->taken++;
            mr_generation_inflight_give(g, a);
        }
        mr_health_report_attempt(g->health, id, false, MR_OUTCOME_SUCCESS, -1, 5, MONO0);
    }
    return NULL;
}

/* Exact across threads: the counters, the cap. Each thread plays a worker
 * with its own generation over the one snapshot, as workers do. */
static void test_exact_across_threads(void **state)
{
    fx_t *f = *state;
    pthread_t t[THREADS];
    hammer_t h[THREADS];
    atomic_uint peak = 0;
    size_t id = target_of(f->snap, "only", 0)->id;

    for (int i = 0; i < THREADS; i++) {
        h[i] = (hammer_t){f, mr_generation_new(f->snap, f->metrics, (unsigned)i, NULL), &peak, 0};
        assert_non_null(h[i].g);
        assert_int_equal(pthread_create(&t[i], NULL, hammer_main, &h[i]), 0);
    }
    unsigned taken = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        taken += h[i].taken;
        mr_generation_release(h[i].g);
    }
    print_message("%u slot takes over %d threads, peak in flight %u (max_inflight 5)\n", taken,
                  THREADS, atomic_load(&peak));
    assert_true(atomic_load(&peak) <= 5);
    assert_int_equal(atomic_load(&f->snap->inflight[0]), 0);
    json_t *o = mr_health_json(&f->snap->health, id, MONO0);
    assert_int_equal(json_integer_value(json_object_get(o, "requests")), THREADS * ROUNDS);
    json_decref(o);
}

/* A reload: breakers of targets still configured and per-key counters carry. */
static void test_reload_carries(void **state)
{
    fx_t *f = *state;
    size_t id = target_of(f->snap, "r", 0)->id;
    mr_limits_req_t lim;
    mr_limits_estimate_t est = {.body_bytes = 10};

    for (int i = 0; i < 3; i++)
        mr_generation_report(f->g[0], id, false, MR_OUTCOME_FAILURE, -1, MR_HEALTH_NO_TTFB, MONO0);
    assert_int_equal(mr_limits_admit(f->snap->limits, f->sl[0], &lim, 0, &est, NULL, NULL),
                     MR_LIMITS_DONE);
    mr_limits_finish(&lim);
    mr_snapshot_t *next = mr_snapshot_next(f->snap, load(cfg_json));
    assert_non_null(next);
    assert_int_equal(next->id, f->snap->id + 1);
    assert_int_equal(mr_health_state(&next->health, target_of(next, "r", 0)->id, MONO0 + 1),
                     MR_HEALTH_OPEN);
    mr_limits_key_stats_t ks;
    mr_limits_key_stats(next->limits, 0, &ks);
    assert_int_equal(ks.allowed, 1);
    breaker_counts(f, id, 0, 1); /* the same series, still open */
    mr_snapshot_release(next);
}

/* ---- the router's budget exclusion ---------------------------------------- */

static void spend_on_a(fx_t *f)
{
    mr_limits_req_t lim;
    mr_limits_estimate_t est = {.body_bytes = 1, .max_output_tokens = 1};
    mr_limits_price_t price = {1000, 1000};
    mr_limits_usage_t u = {1, 0};

    assert_int_equal(
        mr_limits_admit(f->snap->limits, f->sl[0], &lim, MR_LIMITS_NO_KEY, &est, NULL, NULL),
        MR_LIMITS_DONE);
    assert_int_equal(mr_limits_attempt(f->snap->limits, &lim, 0, &price, NULL, NULL),
                     MR_LIMITS_DONE);
    assert_int_equal(lim.verdict.outcome, MR_LIMITS_ALLOW);
    mr_limits_attempt_done(&lim, &u, true); /* 1 token at $1000/Mtok: $0.001, the budget */
    mr_limits_finish(&lim);
}

static void test_router_skips_provider_over_budget(void **state)
{
    fx_t *f = *state;
    const char *models[] = {"r"}, *only[] = {"only"};
    mr_plan_t plan = {0};
    mr_error_t e;

    assert_int_equal(
        mr_router_plan_policy(f->snap->cfg, NULL, models, 1, f->g[0]->ss, MONO0, &plan, &e), 0);
    assert_int_equal(plan.n_candidates, 2);
    spend_on_a(f);
    /* the attempt after the budget is spent is refused ... */
    mr_limits_req_t lim;
    mr_limits_estimate_t est = {.body_bytes = 1, .max_output_tokens = 1};
    mr_limits_price_t price = {1000, 1000};
    mr_limits_admit(f->snap->limits, f->sl[0], &lim, MR_LIMITS_NO_KEY, &est, NULL, NULL);
    assert_int_equal(mr_limits_attempt(f->snap->limits, &lim, 0, &price, NULL, NULL),
                     MR_LIMITS_DONE);
    assert_int_equal(lim.verdict.outcome, MR_LIMITS_PROVIDER_OVER);
    mr_limits_finish(&lim);
    /* ... and routing leaves a out, saying why */
    assert_int_equal(
        mr_router_plan_policy(f->snap->cfg, NULL, models, 1, f->g[0]->ss, MONO0, &plan, &e), 0);
    assert_int_equal(plan.n_candidates, 1);
    assert_string_equal(plan.candidates[0].provider->name, "b");
    assert_int_equal(plan.n_excluded, 1);
    assert_int_equal(plan.excluded[0].kind, MR_EXCLUDED_BUDGET);
    assert_string_equal(plan.excluded[0].rule, "budget_usd");
    assert_non_null(strstr(plan.excluded[0].reason, "provider a has used its budget of $0.00"));
    json_t *x = mr_plan_exclusions_json(&plan);
    assert_string_equal(json_string_value(json_object_get(json_array_get(x, 0), "kind")), "budget");
    json_decref(x);
    /* a route with nothing else: 503 */
    assert_int_equal(
        mr_router_plan_policy(f->snap->cfg, NULL, only, 1, f->g[0]->ss, MONO0, &plan, &e), -1);
    assert_int_equal(e.status, 503);
    assert_string_equal(e.code, "provider_budget_exhausted");
    mr_plan_release(&plan);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_breaker_shared_by_workers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hint_from_another_instance, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exact_across_threads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reload_carries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_router_skips_provider_over_budget, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
