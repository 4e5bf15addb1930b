/*
 * The in-memory soft state, driven by a fake clock: sliding share windows
 * (bucket expiry, slot reuse, long windows), vendors past the cap, TTFB EWMA
 * and staleness, round-robin counters, the PRNG.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meridian/softstate.h"

#define P(name, vendor)                                                                            \
    "\"" name "\":{\"kind\":\"openai\",\"base_url\":\"http://h\",\"vendor\":\"" vendor "\"}"

static const char *cfg_json = "{\"providers\":{" P("a", "va") "," P("b", "vb") "," P(
    "a2", "va") "},"
                " \"routes\":{\"r\":{\"targets\":[{\"provider\":\"a\",\"model\":\"m\"},"
                "                               {\"provider\":\"b\",\"model\":\"m\"}]},"
                "            \"s\":{\"targets\":[{\"provider\":\"b\",\"model\":\"m\"},"
                "                               {\"provider\":\"a2\",\"model\":\"x\"}]}},"
                " \"policies\":{\"plain\":{},"
                "   \"minute\":{\"max_vendor_share\":0.5},"
                "   \"hour\":{\"max_vendor_share\":0.3,\"share_window_s\":3600},"
                "   \"second\":{\"max_vendor_share\":1,\"share_window_s\":1}}}";

typedef struct fixture {
    mr_config_t *cfg;
    mr_softstate_mem_t mem;
    mr_softstate_t *ss;
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    char err[512];

    if (!f || mr_config_load_string(cfg_json, "ss.json", &f->cfg, err, sizeof(err)) != 0) {
        print_error("%s\n", err);
        free(f);
        return -1;
    }
    if (mr_softstate_mem_init(&f->mem, f->cfg, 42) != 0)
        return -1;
    f->ss = &f->mem.super;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    mr_softstate_mem_free(&f->mem);
    mr_config_free(f->cfg);
    free(f);
    return 0;
}

static void share(fixture_t *f, const char *policy, size_t vendor, uint64_t now, uint64_t want_s,
                  uint64_t want_t)
{
    uint64_t s, t;
    mr_softstate_share(f->ss, mr_config_find_policy(f->cfg, policy), vendor, now, &s, &t);
    if (s != want_s || t != want_t) {
        print_error("%s vendor %zu at %llu: %llu/%llu, want %llu/%llu\n", policy, vendor,
                    (unsigned long long)now, (unsigned long long)s, (unsigned long long)t,
                    (unsigned long long)want_s, (unsigned long long)want_t);
        fail();
    }
}

static void test_indexes(void **state)
{
    fixture_t *f = *state;
    const mr_config_t *cfg = f->cfg;

    (void)state;
    /* a and a2 share vendor va */
    assert_int_equal(cfg->n_vendors, 2);
    assert_string_equal(cfg->vendors[0], "va");
    assert_string_equal(cfg->vendors[1], "vb");
    assert_int_equal(mr_config_find_provider(cfg, "a2")->vendor_index, 0);
    /* b/m appears in both routes: one target id */
    assert_int_equal(cfg->n_target_ids, 3);
    assert_int_equal(cfg->routes[0].targets[1].id, cfg->routes[1].targets[0].id);
    assert_int_not_equal(cfg->routes[0].targets[0].id, cfg->routes[1].targets[1].id);
    /* only capped policies get a window */
    assert_int_equal(cfg->n_share_policies, 3);
    assert_int_equal(mr_config_find_policy(cfg, "plain")->share_slot, -1);
    assert_int_equal(mr_config_find_policy(cfg, "minute")->share_slot, 0);
    assert_int_equal(mr_config_find_policy(cfg, "second")->share_slot, 2);
    assert_int_equal(f->mem._windows[0]._bucket_ms, 1000);
    assert_int_equal(f->mem._windows[0]._n_buckets, 60);
    assert_int_equal(f->mem._windows[1]._bucket_ms, 60000);
    assert_int_equal(f->mem._windows[1]._n_buckets, 60);
    assert_int_equal(f->mem._windows[2]._bucket_ms, 1000);
    assert_int_equal(f->mem._windows[2]._n_buckets, 1);
}

static void test_share_window_slides(void **state)
{
    fixture_t *f = *state;
    const mr_policy_t *minute = mr_config_find_policy(f->cfg, "minute");
    const uint64_t t0 = 1000000; /* an arbitrary clock origin */

    share(f, "minute", 0, t0, 0, 0); /* empty window */
    mr_softstate_record_served(f->ss, minute, 0, t0);
    mr_softstate_record_served(f->ss, minute, 0, t0 + 10);
    mr_softstate_record_served(f->ss, minute, 1, t0 + 30500);
    share(f, "minute", 0, t0 + 30500, 2, 3);
    share(f, "minute", 1, t0 + 30500, 1, 3);
    /* 59.999 s later the first bucket is still in (60 one-second buckets) */
    share(f, "minute", 0, t0 + 59999, 2, 3);
    /* at +60 s it has slid out; the one at +30.5 s (bucket +30 s) stays
     * until its bucket is 60 buckets old, at +90 s */
    share(f, "minute", 0, t0 + 60000, 0, 1);
    share(f, "minute", 1, t0 + 60000, 1, 1);
    share(f, "minute", 1, t0 + 89999, 1, 1);
    share(f, "minute", 1, t0 + 90000, 0, 0);
    /* other policies are independent */
    share(f, "hour", 0, t0 + 30500, 0, 0);
    /* a policy without max_vendor_share has no window: nothing recorded */
    mr_softstate_record_served(f->ss, mr_config_find_policy(f->cfg, "plain"), 0, t0);
    share(f, "plain", 0, t0, 0, 0);
}

/* A slot reused one lap later is cleared first, for every vendor. */
static void test_share_slot_reuse(void **state)
{
    fixture_t *f = *state;
    const mr_policy_t *minute = mr_config_find_policy(f->cfg, "minute");
    const uint64_t t0 = 5000000;

    mr_softstate_record_served(f->ss, minute, 0, t0);
    mr_softstate_record_served(f->ss, minute, 0, t0);
    mr_softstate_record_served(f->ss, minute, 1, t0 + 60000); /* same slot, next lap */
    share(f, "minute", 0, t0 + 60000, 0, 1);
    share(f, "minute", 1, t0 + 60000, 1, 1);
}

static void test_share_long_and_short_windows(void **state)
{
    fixture_t *f = *state;
    const mr_policy_t *hour = mr_config_find_policy(f->cfg, "hour");
    const mr_policy_t *second = mr_config_find_policy(f->cfg, "second");
    const uint64_t t0 = 9000000000ULL;

    /* one hour: 60 buckets of a minute */
    for (int i = 0; i < 120; i++)
        mr_softstate_record_served(f->ss, hour, (size_t)(i % 2), t0 + (uint64_t)i * 30000);
    /* at t0 + 3570 s the window holds buckets 0..59 minutes of it: all 120 */
    share(f, "hour", 0, t0 + 3570000, 60, 120);
    /* one hour later, minute 0 (two records, one per vendor) has expired */
    share(f, "hour", 0, t0 + 3600000, 59, 118);

    /* one second: a single bucket (tumbling) */
    mr_softstate_record_served(f->ss, second, 1, t0);
    share(f, "second", 1, t0 + 999, 1, 1);
    share(f, "second", 1, t0 + 1000, 0, 0);
    /* a clock step back still counts the newer bucket */
    share(f, "second", 1, t0 - 5000, 1, 1);
}

/* Past MR_SS_MAX_VENDORS vendors, the extra ones count in the total only. */
static void test_vendor_cap(void **state)
{
    size_t cap = 64 * 1024, o = 0;
    char *json = malloc(cap), err[256];
    mr_config_t *cfg;
    mr_softstate_mem_t mem;
    uint64_t s, t;
    const mr_policy_t *p;

    (void)state;
    assert_non_null(json);
    o += (size_t)snprintf(json + o, cap - o, "{\"providers\":{");
    for (int i = 0; i < MR_SS_MAX_VENDORS + 2; i++)
        o += (size_t)snprintf(json + o, cap - o,
                              "%s\"p%d\":{\"kind\":\"openai\",\"base_url\":\"http://h\"}",
                              i ? "," : "", i);
    snprintf(json + o, cap - o, "},\"policies\":{\"c\":{\"max_vendor_share\":0.5}}}");
    assert_int_equal(mr_config_load_string(json, NULL, &cfg, err, sizeof(err)), 0);
    free(json);
    assert_int_equal(cfg->n_vendors, MR_SS_MAX_VENDORS + 2);
    assert_int_equal(mr_softstate_mem_init(&mem, cfg, 1), 0);
    p = mr_config_find_policy(cfg, "c");
    mr_softstate_record_served(&mem.super, p, MR_SS_MAX_VENDORS - 1, 0);
    mr_softstate_record_served(&mem.super, p, MR_SS_MAX_VENDORS, 0);
    mr_softstate_record_served(&mem.super, p, MR_SS_MAX_VENDORS + 1, 0);
    mr_softstate_share(&mem.super, p, MR_SS_MAX_VENDORS - 1, 0, &s, &t);
    assert_int_equal(s, 1);
    assert_int_equal(t, 3);
    mr_softstate_share(&mem.super, p, MR_SS_MAX_VENDORS, 0, &s, &t);
    assert_int_equal(s, 0);
    assert_int_equal(t, 3);
    mr_softstate_mem_free(&mem);
    mr_config_free(cfg);
}

static void test_ttfb_ewma(void **state)
{
    fixture_t *f = *state;
    double v = -1;
    const uint64_t t0 = 20000000;

    assert_false(mr_softstate_ttfb(f->ss, 0, t0, &v));
    mr_softstate_record_ttfb(f->ss, 0, 100, t0);
    assert_true(mr_softstate_ttfb(f->ss, 0, t0, &v));
    assert_float_equal(v, 100, 1e-9);
    mr_softstate_record_ttfb(f->ss, 0, 200, t0 + 10);
    assert_true(mr_softstate_ttfb(f->ss, 0, t0 + 10, &v));
    assert_float_equal(v, MR_SS_EWMA_ALPHA * 200 + (1 - MR_SS_EWMA_ALPHA) * 100, 1e-9);
    assert_float_equal(v, 120, 1e-9);
    /* converges towards a steady value */
    for (int i = 0; i < 100; i++)
        mr_softstate_record_ttfb(f->ss, 0, 50, t0 + 20);
    assert_true(mr_softstate_ttfb(f->ss, 0, t0 + 20, &v));
    assert_float_equal(v, 50, 0.01);
    /* other targets are independent; out-of-range ids are ignored */
    assert_false(mr_softstate_ttfb(f->ss, 1, t0, &v));
    mr_softstate_record_ttfb(f->ss, 999, 10, t0);
    assert_false(mr_softstate_ttfb(f->ss, 999, t0, &v));
    /* stale after MR_SS_TTFB_STALE_MS without a sample ... */
    assert_true(mr_softstate_ttfb(f->ss, 0, t0 + 20 + MR_SS_TTFB_STALE_MS, &v));
    assert_false(mr_softstate_ttfb(f->ss, 0, t0 + 21 + MR_SS_TTFB_STALE_MS, &v));
    /* ... and the next sample starts afresh instead of blending */
    mr_softstate_record_ttfb(f->ss, 0, 400, t0 + 21 + MR_SS_TTFB_STALE_MS);
    assert_true(mr_softstate_ttfb(f->ss, 0, t0 + 21 + MR_SS_TTFB_STALE_MS, &v));
    assert_float_equal(v, 400, 1e-9);
}

static void test_round_robin_counter(void **state)
{
    fixture_t *f = *state;

    assert_int_equal(mr_softstate_rr_next(f->ss, 0, false), 0);
    assert_int_equal(mr_softstate_rr_next(f->ss, 0, true), 0);
    assert_int_equal(mr_softstate_rr_next(f->ss, 0, true), 1);
    assert_int_equal(mr_softstate_rr_next(f->ss, 0, false), 2);
    assert_int_equal(mr_softstate_rr_next(f->ss, 1, false), 0); /* per route */
    assert_int_equal(mr_softstate_rr_next(f->ss, 7, true), 0);  /* unknown route */
    assert_int_equal(mr_softstate_rr_next(NULL, 0, true), 0);
}

static void test_random(void **state)
{
    fixture_t *f = *state;
    mr_softstate_mem_t a, b, z;
    uint64_t x[4], y[4];
    int bits[64] = {0};

    assert_int_equal(mr_softstate_mem_init(&a, f->cfg, 7), 0);
    assert_int_equal(mr_softstate_mem_init(&b, f->cfg, 7), 0);
    assert_int_equal(mr_softstate_mem_init(&z, f->cfg, 0), 0);
    for (int i = 0; i < 4; i++) {
        x[i] = a.super.ops->random(&a.super);
        y[i] = b.super.ops->random(&b.super);
        assert_int_equal(x[i], y[i]); /* same seed, same sequence */
    }
    assert_int_not_equal(x[0], x[1]);
    assert_int_not_equal(z.super.ops->random(&z.super), 0); /* seed 0 is fine */
    /* every bit flips about half the time */
    for (int i = 0; i < 10000; i++) {
        uint64_t r = a.super.ops->random(&a.super);
        for (int k = 0; k < 64; k++)
            bits[k] += (int)((r >> k) & 1);
    }
    for (int k = 0; k < 64; k++)
        assert_true(bits[k] > 4700 && bits[k] < 5300);
    mr_softstate_mem_free(&a);
    mr_softstate_mem_free(&b);
    mr_softstate_mem_free(&z);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_indexes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_share_window_slides, setup, teardown),
        cmocka_unit_test_setup_teardown(test_share_slot_reuse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_share_long_and_short_windows, setup, teardown),
        cmocka_unit_test(test_vendor_cap),
        cmocka_unit_test_setup_teardown(test_ttfb_ewma, setup, teardown),
        cmocka_unit_test_setup_teardown(test_round_robin_counter, setup, teardown),
        cmocka_unit_test_setup_teardown(test_random, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
