/*
 * The limits engine on the memory backend with an injected clock: rpm and
 * tpm with their headers, max_parallel, the budget guarantee with many
 * reservations before any settles, settlement by usage (and without),
 * expiry, provider budgets, UTC period boundaries (day, month, leap years),
 * duration formatting, snapshots.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "meridian/limits.h"

#define T_2027 1800000000000ULL /* 2027-01-15T08:00:00Z */

typedef struct fx {
    uint64_t now;
    uv_loop_t loop;
    mr_state_t *st;
    mr_state_loop_t *sl;
    mr_limits_engine_t *L;
    char file[64]; /* a state file to remove after the state is freed */
} fx_t;

static uint64_t fake_clock(void *arg)
{
    return ((fx_t *)arg)->now;
}

static const mr_limits_key_spec_t keys[] = {
    {.name = "rpm30", .rpm = 30},
    {.name = "tpm", .tpm = 10000},
    {.name = "par2", .max_parallel = 2},
    /* $1 a day; a request below reserves ~$0.0502 (about 20 of them) */
    {.name = "team{a}", .budget_usd = 1.0, .budget_period = MR_PERIOD_DAY},
    {.name = "month", .budget_usd = 0.001, .budget_period = MR_PERIOD_MONTH},
    {.name = "free"},
};
static const mr_limits_provider_spec_t provs[] = {
    {.name = "cheap"},
    {.name = "capped", .budget_usd = 0.1, .budget_period = MR_PERIOD_TOTAL},
};
/* 10 $/Mtok in, 30 $/Mtok out; 2000 body bytes, 1000 output tokens:
 * 2000 * 10e-6 + 1000 * 30e-6 = $0.05 */
static const mr_limits_estimate_t est = {
    .body_bytes = 2000, .max_output_tokens = 1000, .worst = {10.0, 30.0}};

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    char err[256];
    mr_state_opts_t o = {.backend = MR_STATE_MEMORY, .clock = fake_clock, .clock_arg = f};
    mr_limits_spec_t spec = {.keys = keys,
                             .n_keys = sizeof(keys) / sizeof(keys[0]),
                             .providers = provs,
                             .n_providers = 2,
                             .reservation_ttl_ms = 60000};
    f->now = T_2027;
    uv_loop_init(&f->loop);
    if (mr_state_new(&o, &f->st, err, sizeof(err)) != 0 ||
        mr_state_attach(f->st, &f->loop, &f->sl, err, sizeof(err)) != 0 ||
        mr_limits_new(f->st, &spec, &f->L, err, sizeof(err)) != 0) {
        print_error("%s\n", err);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    mr_limits_free(f->L);
    mr_state_loop_close(f->sl);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    mr_state_free(f->st);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    if (f->file[0])
        unlink(f->file); /* mr_state_free wrote it last */
    free(f);
    return 0;
}

static void never(void *arg, mr_limits_req_t *r)
{
    (void)arg;
    (void)r;
    fail_msg("the memory backend answers before the call returns");
}

static mr_limits_outcome_t admit(fx_t *f, mr_limits_req_t *r, size_t key)
{
    assert_int_equal(mr_limits_admit(f->L, f->sl, r, key, &est, never, NULL), MR_LIMITS_DONE);
    return r->verdict.outcome;
}

static const char *header(const mr_limits_verdict_t *v, const char *name)
{
    static mr_limits_header_t h[MR_LIMITS_MAX_HEADERS];
    size_t n = mr_limits_headers(v, h);
    for (size_t i = 0; i < n; i++)
        if (strcmp(h[i].name, name) == 0)
            return h[i].value;
    return NULL;
}

/* 60 requests within a minute against rpm 30: 30 served, the rest 429. */
static void test_rpm(void **state)
{
    fx_t *f = *state;
    mr_limits_req_t r;
    int served = 0, limited = 0;
    for (int i = 0; i < 60; i++) {
        f->now = T_2027 + (uint64_t)i * 500;
        if (admit(f, &r, 0) == MR_LIMITS_ALLOW) {
            served++;
            assert_int_equal(r.verdict.remaining_requests, 30 - served);
        } else {
            assert_int_equal(r.verdict.outcome, MR_LIMITS_RATE_LIMITED);
            assert_int_equal(r.verdict.limit, MR_LIMIT_RPM);
            limited++;
        }
        mr_limits_finish(&r);
    }
    assert_int_equal(served, 30);
    assert_int_equal(limited, 30);
    /* the first 30 went at 0..14.5 s: a slot frees at 61 s after the first */
    assert_string_equal(header(&r.verdict, "retry-after"), "32");
    assert_string_equal(header(&r.verdict, "x-ratelimit-limit-requests"), "30");
    assert_string_equal(header(&r.verdict, "x-ratelimit-remaining-requests"), "0");
    assert_string_equal(header(&r.verdict, "x-ratelimit-reset-requests"), "45.5s");
    assert_null(header(&r.verdict, "x-ratelimit-limit-tokens"));
    char msg[256];
    mr_limits_message(f->L, &r, msg, sizeof(msg));
    assert_non_null(strstr(msg, "\"rpm30\" is over its limit of 30 requests per minute"));
    mr_limits_key_stats_t s;
    mr_limits_key_stats(f->L, 0, &s);
    assert_int_equal(s.allowed, 30);
    assert_int_equal(s.limited[MR_LIMIT_RPM], 30);
    f->now = T_2027 + 61000;
    assert_int_equal(admit(f, &r, 0), MR_LIMITS_ALLOW);
}

/* tpm reserves the estimate (2000 + 1000) and is corrected by the usage. */
static void test_tpm_correction(void **state)
{
    fx_t *f = *state;
    mr_limits_req_t r[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(admit(f, &r[i], 1), MR_LIMITS_ALLOW); /* 0, 3k, 6k, 9k < 10k */
    assert_string_equal(header(&r[3].verdict, "x-ratelimit-remaining-tokens"), "0");
    mr_limits_req_t x;
    assert_int_equal(admit(f, &x, 1), MR_LIMITS_RATE_LIMITED);
    assert_int_equal(x.verdict.limit, MR_LIMIT_TPM);
    mr_limits_usage_t u = {.prompt_tokens = 400, .completion_tokens = 100};
    for (int i = 0; i < 4; i++) {
        mr_limits_attempt(f->L, &r[i], 0, &est.worst, never, NULL);
        mr_limits_attempt_done(&r[i], &u, true);
        mr_limits_finish(&r[i]);
    }
    assert_int_equal(admit(f, &x, 1), MR_LIMITS_ALLOW); /* 4 x 500 = 2000 used now */
    assert_int_equal(x.verdict.remaining_tokens, 10000 - 2000 - 3000);
    mr_limits_finish(&x); /* failed without usage: its estimate is given back */
    assert_int_equal(admit(f, &x, 1), MR_LIMITS_ALLOW);
    assert_int_equal(x.verdict.remaining_tokens, 5000);
}

static void test_parallel(void **state)
{
    fx_t *f = *state;
    mr_limits_req_t a, b, c;
    assert_int_equal(admit(f, &a, 2), MR_LIMITS_ALLOW);
    assert_int_equal(admit(f, &b, 2), MR_LIMITS_ALLOW);
    assert_int_equal(admit(f, &c, 2), MR_LIMITS_RATE_LIMITED);
    assert_int_equal(c.verdict.limit, MR_LIMIT_PARALLEL);
    assert_int_equal(c.verdict.retry_after_s, 1);
    mr_limits_finish(&a);
    mr_limits_finish(&a); /* idempotent */
    assert_int_equal(admit(f, &c, 2), MR_LIMITS_ALLOW);
    assert_int_equal(admit(f, &a, 2), MR_LIMITS_RATE_LIMITED);
    /* a crashed holder's lease expires */
    f->now += 60000;
    assert_int_equal(admit(f, &a, 2), MR_LIMITS_ALLOW);
}

static uint64_t spent_nusd(fx_t *f, size_t key)
{
    mr_limits_req_t r;
    assert_int_equal(mr_limits_refresh(f->L, f->sl, &r, key, never, NULL), MR_LIMITS_DONE);
    json_t *j = mr_limits_key_json(f->L, key);
    double usd = json_real_value(json_object_get(json_object_get(j, "usage"), "spent_usd"));
    json_decref(j);
    return (uint64_t)(usd * 1e9 + 0.5);
}

/* 64 requests admitted at once before any settles, each using its whole
 * reservation: spend stays within budget + one reservation. */
static void test_budget_guarantee(void **state)
{
    fx_t *f = *state;
    mr_limits_req_t r[64];
    int admitted = 0, quota = 0;
    for (int i = 0; i < 64; i++) {
        if (admit(f, &r[i], 3) == MR_LIMITS_ALLOW)
            admitted++;
        else if (r[i].verdict.outcome == MR_LIMITS_QUOTA)
            quota++;
    }
    assert_int_equal(admitted, 20); /* 20 x $0.05 = $1.00: the 21st finds nothing left */
    assert_int_equal(quota, 44);
    assert_int_equal(r[63].verdict.limit, MR_LIMIT_BUDGET);
    /* resets at the next UTC midnight: 16 h from 08:00 */
    assert_int_equal(r[63].verdict.retry_after_s, 16 * 3600);
    mr_limits_usage_t worst = {.prompt_tokens = 2000, .completion_tokens = 1000};
    for (int i = 0; i < 64; i++) {
        if (r[i].verdict.outcome == MR_LIMITS_ALLOW) {
            mr_limits_attempt(f->L, &r[i], 0, &est.worst, never, NULL);
            mr_limits_attempt_done(&r[i], &worst, true);
        }
        mr_limits_finish(&r[i]);
    }
    uint64_t spent = spent_nusd(f, 3);
    assert_true(spent <= 1000000000ULL + 50000000ULL);
    assert_int_equal(spent, 20 * 50000000ULL);
    char msg[256];
    mr_limits_message(f->L, &r[63], msg, sizeof(msg));
    assert_non_null(strstr(msg, "\"team{a}\" has used its budget of $1.00 for this day"));
}

static void test_settlement(void **state)
{
    fx_t *f = *state;
    mr_limits_req_t r;
    mr_limits_usage_t u = {.prompt_tokens = 100, .completion_tokens = 10}; /* 1000 + 300 nusd/k */
    /* reported usage */
    admit(f, &r, 3);
    mr_limits_attempt(f->L, &r, 0, &(mr_limits_price_t){10.0, 30.0}, never, NULL);
    mr_limits_attempt_done(&r, &u, true);
    mr_limits_finish(&r);
    assert_int_equal(spent_nusd(f, 3), 100 * 10000 + 10 * 30000);
    /* a failed attempt without usage, then a success without usage: the
     * success is booked at its worst case, the failure at nothing */
    admit(f, &r, 3);
    mr_limits_attempt(f->L, &r, 0, &(mr_limits_price_t){10.0, 30.0}, never, NULL);
    mr_limits_attempt_done(&r, NULL, false);
    mr_limits_attempt(f->L, &r, 0, &(mr_limits_price_t){1.0, 2.0}, never, NULL);
    mr_limits_attempt_done(&r, NULL, true);
    mr_limits_finish(&r);
    assert_int_equal(spent_nusd(f, 3), 1300000 + 2000 * 1000 + 1000 * 2000);
    /* a request that dies is released; one never settled expires, charged */
    admit(f, &r, 3);
    mr_limits_finish(&r);
    assert_int_equal(spent_nusd(f, 3), 5300000);
    admit(f, &r, 3);
    f->now += 60000;
    assert_int_equal(spent_nusd(f, 3), 5300000 + 50000000);
    mr_limits_key_stats_t s;
    mr_limits_key_stats(f->L, 3, &s);
    assert_int_equal(s.spend_nusd, 5300000);
}

static void test_provider_budget(void **state)
{
    fx_t *f = *state;
    mr_limits_req_t r;
    int ok = 0;
    for (int i = 0; i < 5; i++) {
        admit(f, &r, 5); /* a key without limits still pays the provider's */
        assert_int_equal(mr_limits_attempt(f->L, &r, 1, &est.worst, never, NULL), MR_LIMITS_DONE);
        if (r.verdict.outcome == MR_LIMITS_ALLOW) {
            ok++;
            mr_limits_attempt_done(&r, &(mr_limits_usage_t){2000, 1000}, true);
        } else {
            assert_int_equal(r.verdict.outcome, MR_LIMITS_PROVIDER_OVER);
            assert_int_equal(r.verdict.retry_after_s, 0); /* "total" never resets */
        }
        mr_limits_finish(&r);
    }
    assert_int_equal(ok, 2); /* $0.05 each against $0.10 */
    assert_true(mr_limits_provider_over(f->L, 1));
    assert_false(mr_limits_provider_over(f->L, 0));
    assert_int_equal(mr_limits_provider_spend_nusd(f->L, 1), 100000000);
    json_t *j = mr_limits_providers_json(f->L);
    json_t *c = json_object_get(json_object_get(j, "providers"), "capped");
    assert_true(json_real_value(json_object_get(c, "remaining_usd")) == 0.0);
    assert_null(json_object_get(json_object_get(j, "providers"), "cheap"));
    json_decref(j);
}

static void period(mr_budget_period_t p, uint64_t now, const char *id, uint64_t start, uint64_t end)
{
    char got[24];
    uint64_t s, e;
    mr_limits_period(p, now, got, sizeof(got), &s, &e);
    assert_string_equal(got, id);
    assert_int_equal(s, start);
    assert_int_equal(e, end);
}

#define DAY 86400000ULL

static void test_periods(void **state)
{
    (void)state;
    uint64_t feb28_2028 = 1835308800000ULL; /* 2028-02-28T00:00:00Z */
    period(MR_PERIOD_DAY, feb28_2028 + DAY - 1, "d2028-02-28", feb28_2028, feb28_2028 + DAY);
    period(MR_PERIOD_DAY, feb28_2028 + DAY, "d2028-02-29", feb28_2028 + DAY, feb28_2028 + 2 * DAY);
    period(MR_PERIOD_DAY, feb28_2028 + 2 * DAY, "d2028-03-01", feb28_2028 + 2 * DAY,
           feb28_2028 + 3 * DAY);
    /* February of a leap year has 29 days, of 2027 28, of 2100 28, of 2000 29 */
    period(MR_PERIOD_MONTH, feb28_2028, "m2028-02", feb28_2028 - 27 * DAY, feb28_2028 + 2 * DAY);
    period(MR_PERIOD_MONTH, 1803859200000ULL, "m2027-03", 1803859200000ULL - 0,
           1803859200000ULL + 31 * DAY); /* 2027-03-01 */
    period(MR_PERIOD_MONTH, 1803859200000ULL - 1, "m2027-02", 1803859200000ULL - 28 * DAY,
           1803859200000ULL);
    period(MR_PERIOD_MONTH, 4107542400000ULL, "m2100-03", 4107542400000ULL,
           4107542400000ULL + 31 * DAY); /* 2100-03-01: 2100 is not a leap year */
    period(MR_PERIOD_MONTH, 4107542400000ULL - 1, "m2100-02", 4107542400000ULL - 28 * DAY,
           4107542400000ULL);
    period(MR_PERIOD_MONTH, 951868800000ULL - 1, "m2000-02", 951868800000ULL - 29 * DAY,
           951868800000ULL); /* 2000-03-01 */
    /* December rolls into the next year */
    period(MR_PERIOD_MONTH, 1830297600000ULL - 1, "m2027-12", 1830297600000ULL - 31 * DAY,
           1830297600000ULL); /* 2028-01-01 */
    period(MR_PERIOD_TOTAL, 5, "total", 0, UINT64_MAX);
    mr_budget_period_t p;
    assert_int_equal(mr_budget_period_parse("month", &p), 0);
    assert_int_equal(p, MR_PERIOD_MONTH);
    assert_int_equal(mr_budget_period_parse("week", &p), -1);
}

/* Spend of one UTC day does not count the next; a month budget rolls over
 * at the first of the month. */
static void test_budget_rollover(void **state)
{
    fx_t *f = *state;
    mr_limits_req_t r;
    f->now = 1835308800000ULL + DAY - 1000;             /* 2028-02-28T23:59:59Z */
    assert_int_equal(admit(f, &r, 4), MR_LIMITS_ALLOW); /* $0.001 a month: one request */
    mr_limits_attempt(f->L, &r, 0, &est.worst, never, NULL);
    mr_limits_attempt_done(&r, &(mr_limits_usage_t){100, 0}, true);
    mr_limits_finish(&r);
    assert_int_equal(admit(f, &r, 4), MR_LIMITS_QUOTA);
    assert_int_equal(r.verdict.retry_after_s, 86400 + 1); /* 29 February, then March */
    f->now += 1000 + DAY;                                 /* 2028-03-01T00:00:00Z */
    assert_int_equal(admit(f, &r, 4), MR_LIMITS_ALLOW);
    mr_limits_finish(&r);
}

static void test_durations(void **state)
{
    (void)state;
    static const struct {
        uint64_t ms;
        const char *s;
    } cases[] = {{0, "0ms"},       {250, "250ms"},        {1000, "1s"},
                 {1500, "1.5s"},   {17280, "17.28s"},     {60000, "1m0s"},
                 {360000, "6m0s"}, {3723500, "1h2m3.5s"}, {999, "999ms"}};
    char buf[32];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        mr_limits_format_duration(cases[i].ms, buf, sizeof(buf));
        assert_string_equal(buf, cases[i].s);
    }
}

static void test_snapshot_and_spec(void **state)
{
    fx_t *f = *state;
    mr_limits_req_t r;
    admit(f, &r, 3);
    json_t *j = mr_limits_key_json(f->L, 3);
    json_t *u = json_object_get(j, "usage");
    assert_string_equal(json_string_value(json_object_get(j, "name")), "team{a}");
    assert_true(json_real_value(json_object_get(u, "reserved_usd")) == 0.05);
    assert_true(json_real_value(json_object_get(u, "remaining_usd")) == 0.95);
    assert_string_equal(json_string_value(json_object_get(u, "period")), "d2027-01-15");
    assert_null(json_object_get(json_object_get(j, "limits"), "rpm"));
    json_decref(j);
    mr_limits_finish(&r);
    assert_null(mr_limits_key_json(f->L, 99));
    assert_false(mr_limits_key_limited(f->L, 5));
    assert_true(mr_limits_key_limited(f->L, 0));
    assert_int_equal(admit(f, &r, MR_LIMITS_NO_KEY), MR_LIMITS_ALLOW);

    mr_limits_engine_t *bad;
    char err[256];
    mr_limits_key_spec_t k = {.name = "neg", .budget_usd = -1};
    mr_limits_spec_t spec = {.keys = &k, .n_keys = 1};
    assert_int_equal(mr_limits_new(f->st, &spec, &bad, err, sizeof(err)), -1);
    assert_string_equal(err, "keys.neg: budget_usd must be between 0 and 1e9");
}

/* Spend recorded by the engine survives a restart of the process (memory
 * backend, state file). */
static void test_restart_keeps_spend(void **state)
{
    fx_t *f = *state;
    char err[256];
    mr_limits_req_t r;
    snprintf(f->file, sizeof(f->file), "/tmp/mr-limits-test-%d.json", (int)getpid());
    unlink(f->file);
    mr_state_opts_t o = {
        .backend = MR_STATE_MEMORY, .clock = fake_clock, .clock_arg = f, .state_file = f->file};
    mr_limits_spec_t spec = {.keys = keys, .n_keys = sizeof(keys) / sizeof(keys[0])};
    for (int round = 0; round < 2; round++) {
        mr_limits_free(f->L);
        mr_state_loop_close(f->sl);
        uv_run(&f->loop, UV_RUN_DEFAULT);
        mr_state_free(f->st);
        assert_int_equal(mr_state_new(&o, &f->st, err, sizeof(err)), 0);
        assert_int_equal(mr_state_attach(f->st, &f->loop, &f->sl, err, sizeof(err)), 0);
        assert_int_equal(mr_limits_new(f->st, &spec, &f->L, err, sizeof(err)), 0);
        if (round == 0) {
            admit(f, &r, 3);
            mr_limits_attempt(f->L, &r, 0, &est.worst, never, NULL);
            mr_limits_attempt_done(&r, &(mr_limits_usage_t){2000, 1000}, true);
            mr_limits_finish(&r);
        }
    }
    assert_int_equal(spent_nusd(f, 3), 50000000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_rpm, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tpm_correction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parallel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_budget_guarantee, setup, teardown),
        cmocka_unit_test_setup_teardown(test_settlement, setup, teardown),
        cmocka_unit_test_setup_teardown(test_provider_budget, setup, teardown),
        cmocka_unit_test(test_periods),
        cmocka_unit_test_setup_teardown(test_budget_rollover, setup, teardown),
        cmocka_unit_test(test_durations),
        cmocka_unit_test_setup_teardown(test_snapshot_and_spec, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_keeps_spend, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
