/*
 * health, driven by a fake clock: the breaker's state machine (threshold,
 * skip while open, the single half-open probe, doubling and its cap, probe
 * slot expiry and cancel, late reports), Retry-After cooldowns, the EWMAs,
 * the JSON view, carry-over across reloads, the retry budget's sliding
 * window, backoff bounds and determinism, retryable statuses.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "meridian/health.h"

#define T0 1000000ULL /* a clock that does not start at 0 */

static void near(double got, double want)
{
    if (got - want > 1e-9 || want - got > 1e-9) {
        print_error("got %.12f, want %.12f\n", got, want);
        fail();
    }
}

static void fail_n(mr_health_t *h, size_t id, unsigned n, uint64_t now)
{
    for (unsigned i = 0; i < n; i++)
        mr_health_report(h, id, MR_OUTCOME_FAILURE, -1, MR_HEALTH_NO_TTFB, now);
}

/* Opens `id` through the threshold at `now` (all defaults). */
static void trip_at(mr_health_t *h, size_t id, uint64_t now)
{
    fail_n(h, id, h->opts.failure_threshold, now);
    assert_int_equal(mr_health_state(h, id, now), MR_HEALTH_OPEN);
}

/* ---- options ------------------------------------------------------------ */

static void test_defaults(void **state)
{
    mr_health_t h;
    mr_health_opts_t o = {.cooldown_ms = 1000, .max_cooldown_ms = 10};

    (void)state;
    assert_int_equal(mr_health_init(&h, 2, NULL), 0);
    assert_int_equal(h.opts.failure_threshold, 5);
    assert_int_equal(h.opts.cooldown_ms, 30000);
    assert_int_equal(h.opts.max_cooldown_ms, 300000);
    assert_int_equal(h.opts.probe_timeout_ms, 60000);
    mr_health_free(&h);

    assert_int_equal(mr_health_init(&h, 0, &o), 0);
    assert_int_equal(h.opts.failure_threshold, 5);
    assert_int_equal(h.opts.cooldown_ms, 1000);
    assert_int_equal(h.opts.max_cooldown_ms, 1000); /* raised to the cooldown */
    assert_int_equal(mr_health_acquire(&h, 0, T0), MR_HEALTH_ALLOW);
    mr_health_free(&h);
}

/* ---- the breaker -------------------------------------------------------- */

static void test_opens_after_threshold(void **state)
{
    mr_health_t h;

    (void)state;
    assert_int_equal(mr_health_init(&h, 3, NULL), 0);
    fail_n(&h, 1, 4, T0);
    assert_int_equal(mr_health_state(&h, 1, T0), MR_HEALTH_CLOSED);
    assert_int_equal(mr_health_acquire(&h, 1, T0), MR_HEALTH_ALLOW);
    fail_n(&h, 1, 1, T0 + 5);
    /* applied at once: the very next acquire skips it */
    assert_int_equal(mr_health_acquire(&h, 1, T0 + 5), MR_HEALTH_SKIP);
    assert_false(mr_health_available(&h, 1, T0 + 5));
    assert_int_equal(mr_health_retry_in_ms(&h, 1, T0 + 5), 30000);
    assert_int_equal(mr_health_retry_in_ms(&h, 1, T0 + 1005), 29000);
    assert_int_equal(mr_health_state(&h, 1, T0 + 5 + 29999), MR_HEALTH_OPEN);
    assert_int_equal(mr_health_acquire(&h, 1, T0 + 5 + 29999), MR_HEALTH_SKIP);
    assert_int_equal(mr_health_state(&h, 1, T0 + 5 + 30000), MR_HEALTH_HALF_OPEN);
    assert_int_equal(mr_health_retry_in_ms(&h, 1, T0 + 5 + 30000), 0);
    /* the other targets are untouched */
    assert_int_equal(mr_health_acquire(&h, 0, T0 + 5), MR_HEALTH_ALLOW);
    assert_int_equal(mr_health_acquire(&h, 2, T0 + 5), MR_HEALTH_ALLOW);
    mr_health_free(&h);
}

static void test_success_resets_count(void **state)
{
    mr_health_t h;
    mr_health_opts_t o = {.failure_threshold = 3};

    (void)state;
    assert_int_equal(mr_health_init(&h, 1, &o), 0);
    fail_n(&h, 0, 2, T0);
    mr_health_report(&h, 0, MR_OUTCOME_SUCCESS, -1, 10, T0);
    fail_n(&h, 0, 2, T0);
    assert_int_equal(mr_health_state(&h, 0, T0), MR_HEALTH_CLOSED);
    assert_int_equal(h._t[0]._consecutive, 2);
    /* 429 and 503 without Retry-After count as failures */
    mr_health_report(&h, 0, MR_OUTCOME_RATE_LIMITED, -1, 10, T0);
    assert_int_equal(mr_health_state(&h, 0, T0), MR_HEALTH_OPEN);
    mr_health_free(&h);

    assert_int_equal(mr_health_init(&h, 1, &o), 0);
    fail_n(&h, 0, 2, T0);
    mr_health_report(&h, 0, MR_OUTCOME_OVERLOADED, 0, 10, T0); /* Retry-After: 0 */
    assert_int_equal(mr_health_state(&h, 0, T0), MR_HEALTH_OPEN);
    assert_int_equal(mr_health_retry_in_ms(&h, 0, T0), 30000);
    mr_health_free(&h);
}

static void test_half_open_single_probe(void **state)
{
    mr_health_t h;
    uint64_t t;

    (void)state;
    assert_int_equal(mr_health_init(&h, 1, NULL), 0);
    trip_at(&h, 0, T0);
    t = T0 + 30000;
    assert_true(mr_health_available(&h, 0, t));
    assert_int_equal(mr_health_acquire(&h, 0, t), MR_HEALTH_PROBE);
    /* exactly one: everyone else skips while it is out */
    assert_false(mr_health_available(&h, 0, t));
    assert_int_equal(mr_health_acquire(&h, 0, t), MR_HEALTH_SKIP);
    assert_int_equal(mr_health_acquire(&h, 0, t + 1000), MR_HEALTH_SKIP);
    assert_int_equal(mr_health_state(&h, 0, t + 1000), MR_HEALTH_HALF_OPEN);
    mr_health_report(&h, 0, MR_OUTCOME_SUCCESS, -1, 50, t + 2000);
    assert_int_equal(mr_health_state(&h, 0, t + 2000), MR_HEALTH_CLOSED);
    assert_int_equal(mr_health_acquire(&h, 0, t + 2000), MR_HEALTH_ALLOW);
    assert_int_equal(mr_health_acquire(&h, 0, t + 2000), MR_HEALTH_ALLOW);
    assert_int_equal(h._t[0]._consecutive, 0);
    /* closed again: it takes the full threshold to reopen, at the base cooldown */
    fail_n(&h, 0, 4, t + 3000);
    assert_int_equal(mr_health_state(&h, 0, t + 3000), MR_HEALTH_CLOSED);
    fail_n(&h, 0, 1, t + 3000);
    assert_int_equal(mr_health_retry_in_ms(&h, 0, t + 3000), 30000);
    mr_health_free(&h);
}

static void test_probe_failure_doubles(void **state)
{
    static const uint64_t want[] = {60000, 120000, 240000, 300000, 300000};
    mr_health_t h;
    uint64_t t = T0;

    (void)state;
    assert_int_equal(mr_health_init(&h, 1, NULL), 0);
    trip_at(&h, 0, t);
    t += 30000;
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        assert_int_equal(mr_health_acquire(&h, 0, t), MR_HEALTH_PROBE);
        mr_health_report(&h, 0, MR_OUTCOME_FAILURE, -1, MR_HEALTH_NO_TTFB, t + 10);
        t += 10;
        assert_int_equal(mr_health_acquire(&h, 0, t), MR_HEALTH_SKIP);
        assert_int_equal(mr_health_retry_in_ms(&h, 0, t), want[i]);
        assert_int_equal(mr_health_state(&h, 0, t + want[i] - 1), MR_HEALTH_OPEN);
        t += want[i];
        assert_int_equal(mr_health_state(&h, 0, t), MR_HEALTH_HALF_OPEN);
    }
    /* a success resets the doubling */
    assert_int_equal(mr_health_acquire(&h, 0, t), MR_HEALTH_PROBE);
    mr_health_report(&h, 0, MR_OUTCOME_SUCCESS, -1, 10, t);
    trip_at(&h, 0, t);
    assert_int_equal(mr_health_retry_in_ms(&h, 0, t), 30000);
    mr_health_free(&h);
}

static void test_probe_slot_expiry_and_cancel(void **state)
{
    mr_health_t h;
    mr_health_opts_t o = {.probe_timeout_ms = 5000};
    uint64_t t;

    (void)state;
    assert_int_equal(mr_health_init(&h, 1, NULL), 0);
    trip_at(&h, 0, T0);
    t = T0 + 30000;
    assert_int_equal(mr_health_acquire(&h, 0, t), MR_HEALTH_PROBE);
    /* the probe never reports: the slot frees itself after probe_timeout_ms */
    assert_int_equal(mr_health_acquire(&h, 0, t + 59999), MR_HEALTH_SKIP);
    assert_int_equal(mr_health_acquire(&h, 0, t + 60000), MR_HEALTH_PROBE);
    assert_int_equal(mr_health_acquire(&h, 0, t + 60001), MR_HEALTH_SKIP);
    /* a probe given back is available at once */
    mr_health_cancel(&h, 0, t + 60002);
    assert_true(mr_health_available(&h, 0, t + 60002));
    assert_int_equal(mr_health_acquire(&h, 0, t + 60002), MR_HEALTH_PROBE);
    assert_int_equal(mr_health_state(&h, 0, t + 60002), MR_HEALTH_HALF_OPEN);
    assert_int_equal(h._t[0].requests, 5); /* cancel is not a report */
    mr_health_free(&h);

    assert_int_equal(mr_health_init(&h, 1, &o), 0);
    trip_at(&h, 0, T0);
    assert_int_equal(mr_health_acquire(&h, 0, T0 + 30000), MR_HEALTH_PROBE);
    assert_int_equal(mr_health_acquire(&h, 0, T0 + 34999), MR_HEALTH_SKIP);
    assert_int_equal(mr_health_acquire(&h, 0, T0 + 35000), MR_HEALTH_PROBE);
    mr_health_free(&h);
}

static void test_late_reports_while_open(void **state)
{
    mr_health_t h;

    (void)state;
    assert_int_equal(mr_health_init(&h, 1, NULL), 0);
    trip_at(&h, 0, T0);
    /* attempts sent before it opened answer late: neither extend nor close it */
    fail_n(&h, 0, 20, T0 + 1000);
    assert_int_equal(mr_health_retry_in_ms(&h, 0, T0 + 1000), 29000);
    mr_health_report(&h, 0, MR_OUTCOME_SUCCESS, -1, 10, T0 + 2000);
    assert_int_equal(mr_health_state(&h, 0, T0 + 2000), MR_HEALTH_OPEN);
    assert_int_equal(mr_health_acquire(&h, 0, T0 + 2000), MR_HEALTH_SKIP);
    assert_int_equal(h._t[0].requests, 26);
    assert_int_equal(h._t[0].failures, 25);
    /* a failure in half-open re-opens even without a probe out */
    fail_n(&h, 0, 1, T0 + 30000);
    assert_int_equal(mr_health_retry_in_ms(&h, 0, T0 + 30000), 60000);
    mr_health_free(&h);
}

/* ---- Retry-After -------------------------------------------------------- */

static void test_retry_after(void **state)
{
    mr_health_t h;

    (void)state;
    assert_int_equal(mr_health_init(&h, 4, NULL), 0);
    /* one 429 with Retry-After opens a closed target at once */
    mr_health_report(&h, 0, MR_OUTCOME_RATE_LIMITED, 7, 20, T0);
    assert_int_equal(mr_health_acquire(&h, 0, T0), MR_HEALTH_SKIP);
    assert_int_equal(mr_health_state(&h, 0, T0), MR_HEALTH_OPEN);
    assert_int_equal(mr_health_retry_in_ms(&h, 0, T0), 7000);
    assert_int_equal(mr_health_acquire(&h, 0, T0 + 6999), MR_HEALTH_SKIP);
    assert_int_equal(mr_health_acquire(&h, 0, T0 + 7000), MR_HEALTH_PROBE);
    assert_int_equal(h._t[0]._consecutive, 1);

    /* 503 too; bounded by max_cooldown_ms */
    mr_health_report(&h, 1, MR_OUTCOME_OVERLOADED, 86400, 20, T0);
    assert_int_equal(mr_health_retry_in_ms(&h, 1, T0), 300000);
    mr_health_report(&h, 2, MR_OUTCOME_RATE_LIMITED, LONG_MAX, 20, T0);
    assert_int_equal(mr_health_retry_in_ms(&h, 2, T0), 300000);
    assert_int_equal(mr_health_acquire(&h, 2, T0), MR_HEALTH_SKIP);

    /* never shortened by a later, smaller Retry-After; lengthened by a larger one */
    mr_health_report(&h, 0, MR_OUTCOME_RATE_LIMITED, 100, 20, T0 + 7000); /* the probe */
    assert_int_equal(mr_health_retry_in_ms(&h, 0, T0 + 7000), 100000);
    assert_int_equal(h._t[0]._probe_until_ms, 0);
    mr_health_report(&h, 0, MR_OUTCOME_RATE_LIMITED, 5, 20, T0 + 8000);
    assert_int_equal(mr_health_retry_in_ms(&h, 0, T0 + 8000), 99000);
    mr_health_report(&h, 0, MR_OUTCOME_RATE_LIMITED, 200, 20, T0 + 8000);
    assert_int_equal(mr_health_retry_in_ms(&h, 0, T0 + 8000), 200000);
    assert_int_equal(h._t[0]._opened_at_ms, T0 + 7000);

    /* ignored without one, and for other outcomes */
    mr_health_report(&h, 3, MR_OUTCOME_RATE_LIMITED, -1, 20, T0);
    mr_health_report(&h, 3, MR_OUTCOME_FAILURE, 60, 20, T0);
    mr_health_report(&h, 3, MR_OUTCOME_SUCCESS, 60, 20, T0);
    assert_int_equal(mr_health_state(&h, 3, T0), MR_HEALTH_CLOSED);

    /* a small max_cooldown bounds it too */
    mr_health_free(&h);
    mr_health_opts_t o = {.cooldown_ms = 1000, .max_cooldown_ms = 1500};
    assert_int_equal(mr_health_init(&h, 1, &o), 0);
    mr_health_report(&h, 0, MR_OUTCOME_RATE_LIMITED, 2, 20, T0);
    assert_int_equal(mr_health_retry_in_ms(&h, 0, T0), 1500);
    mr_health_free(&h);
}

/* ---- statistics ----------------------------------------------------------- */

static void test_ewma(void **state)
{
    mr_health_t h;
    mr_health_target_t *t;

    (void)state;
    assert_int_equal(mr_health_init(&h, 1, NULL), 0);
    t = &h._t[0];
    assert_ptr_equal(mr_health_target(&h, 0), t);
    assert_null(mr_health_target(&h, 1));
    mr_health_report(&h, 0, MR_OUTCOME_SUCCESS, -1, 100, T0);
    near(t->ewma_ttfb_ms, 100); /* seeded by the first sample */
    near(t->error_rate, 0);
    mr_health_report(&h, 0, MR_OUTCOME_SUCCESS, -1, 200, T0);
    near(t->ewma_ttfb_ms, 120); /* 0.2 * 200 + 0.8 * 100 */
    mr_health_report(&h, 0, MR_OUTCOME_FAILURE, -1, MR_HEALTH_NO_TTFB, T0);
    near(t->ewma_ttfb_ms, 120); /* no head, no sample */
    near(t->error_rate, 0.2);
    mr_health_report(&h, 0, MR_OUTCOME_OVERLOADED, -1, 20, T0);
    near(t->ewma_ttfb_ms, 100); /* 0.2 * 20 + 0.8 * 120 */
    near(t->error_rate, 0.36);
    mr_health_report(&h, 0, MR_OUTCOME_SUCCESS, -1, 100, T0);
    near(t->error_rate, 0.288);
    assert_int_equal(t->requests, 5);
    assert_int_equal(t->failures, 2);
    mr_health_free(&h);
}

static void test_outcome_of_status(void **state)
{
    (void)state;
    assert_int_equal(mr_health_outcome(200), MR_OUTCOME_SUCCESS);
    assert_int_equal(mr_health_outcome(400), MR_OUTCOME_SUCCESS);
    assert_int_equal(mr_health_outcome(404), MR_OUTCOME_SUCCESS);
    assert_int_equal(mr_health_outcome(429), MR_OUTCOME_RATE_LIMITED);
    assert_int_equal(mr_health_outcome(503), MR_OUTCOME_OVERLOADED);
    assert_int_equal(mr_health_outcome(529), MR_OUTCOME_OVERLOADED);
    assert_int_equal(mr_health_outcome(500), MR_OUTCOME_FAILURE);
    assert_int_equal(mr_health_outcome(502), MR_OUTCOME_FAILURE);
    assert_int_equal(mr_health_outcome(408), MR_OUTCOME_FAILURE);
    assert_int_equal(mr_health_outcome(409), MR_OUTCOME_FAILURE);
    assert_int_equal(mr_health_outcome(0), MR_OUTCOME_FAILURE);
}

/* ---- JSON --------------------------------------------------------------- */

static void expect_keys(json_t *o, const char *const *keys)
{
    size_t n = 0;

    for (; keys[n]; n++)
        if (!json_object_get(o, keys[n])) {
            print_error("missing %s\n", keys[n]);
            fail();
        }
    assert_int_equal(json_object_size(o), n);
}

static void test_json(void **state)
{
    static const char *const closed_keys[] = {"state",       "consecutive_failures",
                                              "retry_in_ms", "ewma_ttfb_ms",
                                              "error_rate",  "requests",
                                              "failures",    NULL};
    static const char *const open_keys[] = {"state",
                                            "consecutive_failures",
                                            "opened_at_ms",
                                            "retry_in_ms",
                                            "ewma_ttfb_ms",
                                            "error_rate",
                                            "requests",
                                            "failures",
                                            NULL};
    static const char *const half_keys[] = {
        "state",        "consecutive_failures", "opened_at_ms", "retry_in_ms", "probe_in_flight",
        "ewma_ttfb_ms", "error_rate",           "requests",     "failures",    NULL};
    mr_health_t h;
    json_t *o;

    (void)state;
    assert_int_equal(mr_health_init(&h, 2, NULL), 0);
    assert_null(mr_health_json(&h, 2, T0));

    o = mr_health_json(&h, 0, T0);
    expect_keys(o, closed_keys);
    assert_string_equal(json_string_value(json_object_get(o, "state")), "closed");
    assert_true(json_is_null(json_object_get(o, "ewma_ttfb_ms")));
    assert_int_equal(json_integer_value(json_object_get(o, "retry_in_ms")), 0);
    json_decref(o);

    mr_health_report(&h, 0, MR_OUTCOME_SUCCESS, -1, 101, T0);
    mr_health_report(&h, 0, MR_OUTCOME_SUCCESS, -1, 103, T0); /* 101.4 -> 101 */
    mr_health_report(&h, 0, MR_OUTCOME_FAILURE, -1, 110, T0); /* 103.12 -> 103 */
    mr_health_report(&h, 0, MR_OUTCOME_FAILURE, -1, 110, T0); /* 104.496 -> 104 */
    o = mr_health_json(&h, 0, T0);
    expect_keys(o, closed_keys);
    assert_int_equal(json_integer_value(json_object_get(o, "ewma_ttfb_ms")), 104);
    near(json_real_value(json_object_get(o, "error_rate")), 0.36);
    assert_int_equal(json_integer_value(json_object_get(o, "consecutive_failures")), 2);
    assert_int_equal(json_integer_value(json_object_get(o, "requests")), 4);
    assert_int_equal(json_integer_value(json_object_get(o, "failures")), 2);
    json_decref(o);

    mr_health_report(&h, 1, MR_OUTCOME_RATE_LIMITED, 12, MR_HEALTH_NO_TTFB, T0);
    o = mr_health_json(&h, 1, T0 + 2000);
    expect_keys(o, open_keys);
    assert_string_equal(json_string_value(json_object_get(o, "state")), "open");
    assert_int_equal(json_integer_value(json_object_get(o, "opened_at_ms")), T0);
    assert_int_equal(json_integer_value(json_object_get(o, "retry_in_ms")), 10000);
    assert_int_equal(json_integer_value(json_object_get(o, "consecutive_failures")), 1);
    near(json_real_value(json_object_get(o, "error_rate")), 0.2);
    json_decref(o);

    o = mr_health_json(&h, 1, T0 + 12000);
    expect_keys(o, half_keys);
    assert_string_equal(json_string_value(json_object_get(o, "state")), "half_open");
    assert_false(json_is_true(json_object_get(o, "probe_in_flight")));
    json_decref(o);
    assert_int_equal(mr_health_acquire(&h, 1, T0 + 12000), MR_HEALTH_PROBE);
    o = mr_health_json(&h, 1, T0 + 12000);
    assert_true(json_is_true(json_object_get(o, "probe_in_flight")));
    assert_int_equal(json_integer_value(json_object_get(o, "retry_in_ms")), 0);
    json_decref(o);
    mr_health_free(&h);
}

/* ---- reload ------------------------------------------------------------- */

static void test_carry(void **state)
{
    mr_health_t src, dst;
    const size_t map[5] = {2, SIZE_MAX, 0, 99, 1};

    (void)state;
    assert_int_equal(mr_health_init(&src, 3, NULL), 0);
    trip_at(&src, 0, T0); /* open */
    mr_health_report(&src, 1, MR_OUTCOME_RATE_LIMITED, 1, 40, T0);
    assert_int_equal(mr_health_acquire(&src, 1, T0 + 1000), MR_HEALTH_PROBE); /* probe out */
    mr_health_report(&src, 2, MR_OUTCOME_SUCCESS, -1, 77, T0);
    fail_n(&src, 2, 3, T0);

    assert_int_equal(mr_health_init(&dst, 5, &(mr_health_opts_t){.failure_threshold = 4}), 0);
    mr_health_carry(&dst, &src, map);
    /* dst 0 <- src 2: statistics and count */
    near(dst._t[0].ewma_ttfb_ms, 77);
    assert_int_equal(dst._t[0].requests, 4);
    assert_int_equal(dst._t[0]._consecutive, 3);
    fail_n(&dst, 0, 1, T0); /* dst's own threshold (4) applies */
    assert_int_equal(mr_health_state(&dst, 0, T0), MR_HEALTH_OPEN);
    /* dst 1 (new) and dst 3 (map out of range) are fresh */
    assert_int_equal(dst._t[1].requests, 0);
    assert_int_equal(dst._t[3].requests, 0);
    assert_int_equal(mr_health_acquire(&dst, 3, T0), MR_HEALTH_ALLOW);
    /* dst 2 <- src 0: still open, same deadline */
    assert_int_equal(mr_health_acquire(&dst, 2, T0 + 1000), MR_HEALTH_SKIP);
    assert_int_equal(mr_health_retry_in_ms(&dst, 2, T0 + 1000), 29000);
    assert_int_equal(mr_health_state(&dst, 2, T0 + 30000), MR_HEALTH_HALF_OPEN);
    /* dst 4 <- src 1: half-open, but src's probe does not block dst */
    assert_int_equal(mr_health_acquire(&src, 1, T0 + 1000), MR_HEALTH_SKIP);
    assert_int_equal(mr_health_state(&dst, 4, T0 + 1000), MR_HEALTH_HALF_OPEN);
    assert_int_equal(mr_health_acquire(&dst, 4, T0 + 1000), MR_HEALTH_PROBE);
    mr_health_free(&src);
    mr_health_free(&dst);
}

static void test_unknown_id(void **state)
{
    mr_health_t h;

    (void)state;
    assert_int_equal(mr_health_init(&h, 0, NULL), 0);
    assert_int_equal(mr_health_acquire(&h, 0, T0), MR_HEALTH_ALLOW);
    fail_n(&h, 0, 10, T0);
    mr_health_cancel(&h, 0, T0);
    assert_int_equal(mr_health_state(&h, 0, T0), MR_HEALTH_CLOSED);
    assert_true(mr_health_available(&h, 0, T0));
    assert_int_equal(mr_health_retry_in_ms(&h, 0, T0), 0);
    mr_health_free(&h);
}

/* ---- the retry budget ----------------------------------------------------- */

static unsigned try_n(mr_retry_budget_t *b, unsigned n, uint64_t now)
{
    unsigned ok = 0;

    for (unsigned i = 0; i < n; i++)
        ok += mr_retry_budget_try(b, now);
    return ok;
}

static void requests(mr_retry_budget_t *b, unsigned n, uint64_t now)
{
    for (unsigned i = 0; i < n; i++)
        mr_retry_budget_request(b, now);
}

static void test_budget_defaults_and_floor(void **state)
{
    mr_retry_budget_t b;

    (void)state;
    mr_retry_budget_init(&b, NULL);
    near(b.opts.ratio, 0.2);
    assert_int_equal(b.opts.window_s, 10);
    assert_int_equal(b.opts.min_retries_per_s, 5);
    /* no traffic at all: the floor (5/s over 10 s) still lets failover work */
    assert_int_equal(try_n(&b, 80, T0), 50);
    assert_int_equal(b.retries, 50);
    assert_int_equal(b.denied, 30);
    assert_int_equal(b.requests, 0);

    mr_retry_budget_init(&b, &(mr_retry_budget_opts_t){.window_s = 1000, .ratio = -1});
    assert_int_equal(b.opts.window_s, MR_RETRY_MAX_WINDOW_S);
    near(b.opts.ratio, 0);
    requests(&b, 1000, T0);
    assert_int_equal(try_n(&b, 1000, T0), 5 * MR_RETRY_MAX_WINDOW_S);
}

static void test_budget_ratio(void **state)
{
    mr_retry_budget_t b;

    (void)state;
    mr_retry_budget_init(&b, &(mr_retry_budget_opts_t){.min_retries_per_s = 1});
    /* 1000 requests spread over the window: 20% + the floor of 10 */
    for (unsigned s = 0; s < 10; s++)
        requests(&b, 100, T0 + s * 1000);
    assert_int_equal(try_n(&b, 300, T0 + 9999), 210);
    assert_int_equal(b.requests, 1000);
    assert_int_equal(b.retries, 210);
    assert_int_equal(b.denied, 90);
    /* more requests earn more retries, one per five */
    requests(&b, 5, T0 + 9999);
    assert_int_equal(try_n(&b, 5, T0 + 9999), 1);
}

static void test_budget_window_slides(void **state)
{
    mr_retry_budget_t b;
    mr_retry_budget_opts_t o = {.ratio = 0.5, .window_s = 10, .min_retries_per_s = 1};

    (void)state;
    mr_retry_budget_init(&b, &o);
    requests(&b, 100, 0);                       /* second 0 */
    assert_int_equal(try_n(&b, 100, 5000), 60); /* second 5: 50 + 10 */
    /* second 10: the requests of second 0 left, the retries of second 5 did not */
    assert_int_equal(try_n(&b, 1, 9999), 0);
    assert_int_equal(try_n(&b, 1, 10000), 0);
    assert_int_equal(try_n(&b, 1, 14999), 0);
    /* second 15: both gone, the floor is back */
    assert_int_equal(try_n(&b, 100, 15000), 10);
    /* much later: every slot is stale and reused */
    requests(&b, 20, 3600000);
    assert_int_equal(try_n(&b, 100, 3600000), 20 / 2 + 10);
    assert_int_equal(b.denied, 40 + 3 + 90 + 80);
}

/* ---- backoff and retryability -------------------------------------------- */

static void test_backoff(void **state)
{
    uint64_t a = 42, b = 42, c = 43, z = 0;
    uint32_t lo = UINT32_MAX, hi = 0;
    int differ = 0;

    (void)state;
    for (unsigned attempt = 0; attempt < 70; attempt++) {
        uint64_t ceil = attempt < 32 ? (uint64_t)100 << attempt : UINT64_MAX;
        if (ceil > 5000)
            ceil = 5000;
        for (int i = 0; i < 50; i++) {
            uint32_t x = mr_backoff_ms(attempt, 100, 5000, &a);
            assert_true(x <= ceil);
            assert_int_equal(x, mr_backoff_ms(attempt, 100, 5000, &b)); /* deterministic */
            differ |= x != mr_backoff_ms(attempt, 100, 5000, &c);
        }
    }
    assert_true(differ);
    assert_int_equal(a, b);
    /* full jitter: spread over the whole [0, 800] range for attempt 3 */
    for (int i = 0; i < 2000; i++) {
        uint32_t x = mr_backoff_ms(3, 100, 5000, &a);
        assert_true(x <= 800);
        lo = x < lo ? x : lo;
        hi = x > hi ? x : hi;
    }
    assert_true(lo < 20);
    assert_true(hi > 780);
    /* cap below base, zero cap, zero state */
    for (int i = 0; i < 100; i++) {
        assert_true(mr_backoff_ms(0, 1000, 300, &a) <= 300);
        assert_int_equal(mr_backoff_ms(5, 1000, 0, &a), 0);
    }
    hi = 0;
    for (int i = 0; i < 100; i++) {
        uint32_t x = mr_backoff_ms(0, 1000, 1000, &z);
        hi = x > hi ? x : hi;
    }
    assert_true(z != 0);
    assert_true(hi > 0);
}

static void test_retryable(void **state)
{
    static const long yes[] = {408, 409, 429, 500, 501, 502, 503, 504, 529, 599};
    static const long no[] = {0, 200, 204, 301, 400, 401, 403, 404, 405, 413, 422, 499, 600};

    (void)state;
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
        if (!mr_retryable_status(yes[i])) {
            print_error("%ld should be retryable\n", yes[i]);
            fail();
        }
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
        if (mr_retryable_status(no[i])) {
            print_error("%ld should not be retryable\n", no[i]);
            fail();
        }
}

/* An answer of an attempt sent before the target opened must not decide a
 * half-open target: only the probe does (found by the fault soak). */
static void test_late_answer_does_not_decide_half_open(void **state)
{
    mr_health_t h;
    mr_health_opts_t o = {.failure_threshold = 1, .cooldown_ms = 300};
    (void)state;
    assert_int_equal(mr_health_init(&h, 1, &o), 0);
    assert_int_equal(mr_health_acquire(&h, 0, 1000), MR_HEALTH_ALLOW); /* the slow one */
    assert_int_equal(mr_health_acquire(&h, 0, 1100), MR_HEALTH_ALLOW);
    mr_health_report_attempt(&h, 0, false, MR_OUTCOME_FAILURE, -1, MR_HEALTH_NO_TTFB, 1100);
    assert_int_equal(mr_health_state(&h, 0, 1100), MR_HEALTH_OPEN);
    assert_int_equal(mr_health_state(&h, 0, 1500), MR_HEALTH_HALF_OPEN);
    assert_int_equal(mr_health_acquire(&h, 0, 1500), MR_HEALTH_PROBE);
    /* the slow attempt answers now: success, but it is not the probe */
    mr_health_report_attempt(&h, 0, false, MR_OUTCOME_SUCCESS, -1, 700, 1700);
    assert_int_equal(mr_health_state(&h, 0, 1700), MR_HEALTH_HALF_OPEN);
    assert_int_equal(mr_health_acquire(&h, 0, 1700), MR_HEALTH_SKIP); /* probe still out */
    /* a late failure neither re-opens nor doubles */
    mr_health_report_attempt(&h, 0, false, MR_OUTCOME_FAILURE, -1, MR_HEALTH_NO_TTFB, 1750);
    assert_int_equal(mr_health_state(&h, 0, 1750), MR_HEALTH_HALF_OPEN);
    /* the probe decides */
    mr_health_report_attempt(&h, 0, true, MR_OUTCOME_SUCCESS, -1, 20, 1800);
    assert_int_equal(mr_health_state(&h, 0, 1800), MR_HEALTH_CLOSED);
    mr_health_free(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_late_answer_does_not_decide_half_open),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_opens_after_threshold),
        cmocka_unit_test(test_success_resets_count),
        cmocka_unit_test(test_half_open_single_probe),
        cmocka_unit_test(test_probe_failure_doubles),
        cmocka_unit_test(test_probe_slot_expiry_and_cancel),
        cmocka_unit_test(test_late_reports_while_open),
        cmocka_unit_test(test_retry_after),
        cmocka_unit_test(test_ewma),
        cmocka_unit_test(test_outcome_of_status),
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_carry),
        cmocka_unit_test(test_unknown_id),
        cmocka_unit_test(test_budget_defaults_and_floor),
        cmocka_unit_test(test_budget_ratio),
        cmocka_unit_test(test_budget_window_slides),
        cmocka_unit_test(test_backoff),
        cmocka_unit_test(test_retryable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
