/*
 * The state module's memory backend with an injected clock: sliding windows
 * (edges, retry and reset times), reservations (settle, double settle,
 * release, expiry charged or dropped), all-or-nothing transactions,
 * once-ids, the state file (restart keeps spend, a corrupt file is refused),
 * exact caps under threads, kv with TTL and breaker hints.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "meridian/state.h"

typedef struct fx {
    uint64_t now;
    uv_loop_t loop;
    mr_state_t *st;
    mr_state_loop_t *sl;
    char file[64];
} fx_t;

static uint64_t fake_clock(void *arg)
{
    return __atomic_load_n(&((fx_t *)arg)->now, __ATOMIC_RELAXED);
}

static int open_state(fx_t *f, const char *file)
{
    mr_state_opts_t o = {
        .backend = MR_STATE_MEMORY, .clock = fake_clock, .clock_arg = f, .state_file = file};
    char err[512];
    if (mr_state_new(&o, &f->st, err, sizeof(err)) != 0) {
        print_error("%s\n", err);
        return -1;
    }
    if (mr_state_attach(f->st, &f->loop, &f->sl, err, sizeof(err)) != 0)
        return -1;
    return 0;
}

static void close_state(fx_t *f)
{
    mr_state_loop_close(f->sl);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    mr_state_free(f->st);
    f->st = NULL;
}

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    f->now = 1800000000000ULL; /* 2027-01-15 */
    uv_loop_init(&f->loop);
    snprintf(f->file, sizeof(f->file), "/tmp/mr-state-test-%d.json", (int)getpid());
    unlink(f->file);
    *state = f;
    return open_state(f, NULL);
}

static int teardown(void **state)
{
    fx_t *f = *state;
    if (f->st)
        close_state(f);
    assert_int_equal(uv_loop_close(&f->loop), 0); /* no handle left behind */
    unlink(f->file);
    free(f);
    return 0;
}

static void store(void *arg, const mr_state_result_t *res)
{
    *(mr_state_result_t *)arg = *res;
}

/* Runs a txn on the memory backend, which answers before returning. */
static mr_state_result_t run(fx_t *f, const mr_state_txn_t *t)
{
    mr_state_result_t res;
    memset(&res, 0xee, sizeof(res));
    assert_int_equal(mr_state_exec(f->sl, t, store, &res), 0);
    assert_int_not_equal(res.status, 0xeeeeeeee);
    return res;
}

static mr_state_result_t hit(fx_t *f, const char *key, uint64_t limit, int64_t amount)
{
    mr_state_txn_t t = {0};
    mr_state_op_t *op = mr_state_txn_add(&t, MR_OP_WINDOW_HIT, key, NULL);
    op->limit = limit;
    op->amount = amount;
    op->window_ms = 60000;
    return run(f, &t);
}

static mr_state_result_t pool(fx_t *f, mr_state_op_kind_t kind, const char *id, int64_t amount,
                              uint64_t cap, bool charge)
{
    mr_state_txn_t t = {0};
    mr_state_op_t *op = mr_state_txn_add(&t, kind, "budget", id);
    op->amount = amount;
    op->limit = cap;
    op->ttl_ms = 10000;
    op->charge_on_expiry = charge;
    op->persist = true;
    return run(f, &t);
}

static void test_window_edges(void **state)
{
    fx_t *f = *state;
    f->now = 1800000000000ULL; /* a bucket boundary: buckets are 1 s */
    for (int i = 0; i < 3; i++)
        assert_int_equal(hit(f, "w", 3, 1).status, MR_STATE_OK);
    mr_state_result_t r = hit(f, "w", 3, 1);
    assert_int_equal(r.status, MR_STATE_DENIED);
    assert_int_equal(r.denied_op, 0);
    assert_int_equal(r.r[0].used, 3);
    assert_int_equal(r.r[0].retry_ms, 61000); /* counted for 60 s + one bucket */
    f->now += 60999;
    assert_int_equal(hit(f, "w", 3, 1).status, MR_STATE_DENIED);
    f->now += 1;
    r = hit(f, "w", 3, 1);
    assert_int_equal(r.status, MR_STATE_OK);
    assert_int_equal(r.r[0].used, 1);
    assert_int_equal(r.r[0].reset_ms, 61000);
}

/* In every 60 s span at most `limit` hits pass, however they are spread. */
static void test_window_sliding(void **state)
{
    fx_t *f = *state;
    uint64_t t0 = f->now, passed_at[400];
    size_t n = 0;
    for (int i = 0; i < 400; i++) {
        f->now = t0 + (uint64_t)i * 750; /* 80 per minute offered */
        if (hit(f, "s", 30, 1).status == MR_STATE_OK)
            passed_at[n++] = f->now;
    }
    for (size_t i = 0; i < n; i++) {
        size_t in = 0;
        for (size_t j = i; j < n && passed_at[j] < passed_at[i] + 60000; j++)
            in++;
        assert_true(in <= 30);
    }
    /* and the window does refill: ~30 per 61 s over 300 s, never more than 30
     * in each of the five minutes */
    assert_true(n >= 30 * 4 && n <= 30 * 5);
}

static void test_window_amounts_and_add(void **state)
{
    fx_t *f = *state;
    uint64_t at = f->now;
    assert_int_equal(hit(f, "tok", 1000, 800).status, MR_STATE_OK); /* admitted while below */
    assert_int_equal(hit(f, "tok", 1000, 800).status, MR_STATE_OK); /* 800 < 1000: admitted */
    assert_int_equal(hit(f, "tok", 1000, 1).status, MR_STATE_DENIED);
    f->now += 5000;
    mr_state_txn_t t = {0};
    mr_state_op_t *op = mr_state_txn_add(&t, MR_OP_WINDOW_ADD, "tok", NULL);
    op->amount = -700; /* the real usage was lower than estimated */
    op->window_ms = 60000;
    op->at_ms = at;
    mr_state_result_t r = run(f, &t);
    assert_true(r.r[0].applied);
    assert_int_equal(r.r[0].used, 900);
    assert_int_equal(hit(f, "tok", 1000, 50).status, MR_STATE_OK);
    /* a correction for a bucket that already left the window changes nothing */
    f->now += 70000;
    op->amount = 5;
    r = run(f, &t);
    assert_false(r.r[0].applied);
}

static void test_reserve_settle(void **state)
{
    fx_t *f = *state;
    mr_state_result_t r = pool(f, MR_OP_POOL_RESERVE, "a", 40, 100, true);
    assert_int_equal(r.status, MR_STATE_OK);
    assert_int_equal(r.r[0].used, 40);
    assert_int_equal(pool(f, MR_OP_POOL_RESERVE, "b", 70, 100, true).status, MR_STATE_OK);
    /* 110 promised: nothing more until something settles */
    assert_int_equal(pool(f, MR_OP_POOL_RESERVE, "c", 1, 100, true).status, MR_STATE_DENIED);
    r = pool(f, MR_OP_POOL_SETTLE, "a", 25, 0, false);
    assert_true(r.r[0].applied);
    assert_int_equal(r.r[0].spent, 25);
    assert_int_equal(r.r[0].used, 95);
    /* a retried settle never counts twice */
    r = pool(f, MR_OP_POOL_SETTLE, "a", 25, 0, false);
    assert_false(r.r[0].applied);
    assert_int_equal(r.r[0].spent, 25);
    r = pool(f, MR_OP_POOL_RELEASE, "b", 0, 0, false);
    assert_true(r.r[0].applied);
    assert_int_equal(r.r[0].used, 25);
    assert_false(pool(f, MR_OP_POOL_SETTLE, "b", 70, 0, false).r[0].applied);
    /* a retried reserve holds once */
    assert_int_equal(pool(f, MR_OP_POOL_RESERVE, "d", 10, 100, true).r[0].used, 35);
    assert_int_equal(pool(f, MR_OP_POOL_RESERVE, "d", 10, 100, true).r[0].used, 35);
}

static void test_expiry(void **state)
{
    fx_t *f = *state;
    assert_int_equal(pool(f, MR_OP_POOL_RESERVE, "charged", 30, 100, true).status, MR_STATE_OK);
    assert_int_equal(pool(f, MR_OP_POOL_RESERVE, "dropped", 50, 100, false).status, MR_STATE_OK);
    f->now += 9999;
    assert_int_equal(pool(f, MR_OP_POOL_GET, "", 0, 0, false).r[0].used, 80);
    f->now += 1;
    mr_state_result_t r = pool(f, MR_OP_POOL_GET, "", 0, 0, false);
    assert_int_equal(r.r[0].spent, 30); /* worst case booked */
    assert_int_equal(r.r[0].used, 30);
    assert_false(pool(f, MR_OP_POOL_SETTLE, "charged", 1, 0, false).r[0].applied);
}

static void test_all_or_nothing(void **state)
{
    fx_t *f = *state;
    mr_state_txn_t t = {0};
    mr_state_op_t *op = mr_state_txn_add(&t, MR_OP_WINDOW_HIT, "rpm", NULL);
    op->limit = 10;
    op->amount = 1;
    op->window_ms = 60000;
    op = mr_state_txn_add(&t, MR_OP_POOL_RESERVE, "usd", "r1");
    op->amount = 5;
    op->limit = 5;
    op->ttl_ms = 1000;
    assert_int_equal(run(f, &t).status, MR_STATE_OK);
    snprintf(t.ops[1].id, sizeof(t.ops[1].id), "r2");
    mr_state_result_t r = run(f, &t);
    assert_int_equal(r.status, MR_STATE_DENIED);
    assert_int_equal(r.denied_op, 1);
    assert_int_equal(hit(f, "rpm", 0, 0).r[0].used, 1); /* the refused txn's hit did not count */
}

static void test_once(void **state)
{
    fx_t *f = *state;
    assert_true(pool(f, MR_OP_POOL_CHARGE, "x1", 7, 0, false).r[0].applied);
    assert_false(pool(f, MR_OP_POOL_CHARGE, "x1", 7, 0, false).r[0].applied);
    assert_int_equal(pool(f, MR_OP_POOL_GET, "", 0, 0, false).r[0].spent, 7);
}

static void test_malformed(void **state)
{
    fx_t *f = *state;
    mr_state_result_t r;
    mr_state_txn_t t = {0};
    assert_int_equal(mr_state_exec(f->sl, &t, store, &r), -1);
    mr_state_txn_add(&t, MR_OP_POOL_RESERVE, "a{b}", "id");
    assert_int_equal(mr_state_exec(f->sl, &t, store, &r), -1);
    t.n = 0;
    mr_state_txn_add(&t, MR_OP_POOL_RESERVE, "ab", "");
    assert_int_equal(mr_state_exec(f->sl, &t, store, &r), -1);
}

static void test_file_keeps_spend(void **state)
{
    fx_t *f = *state;
    close_state(f);
    assert_int_equal(open_state(f, f->file), 0);
    assert_int_equal(pool(f, MR_OP_POOL_RESERVE, "a", 40, 1000, true).status, MR_STATE_OK);
    pool(f, MR_OP_POOL_SETTLE, "a", 33, 0, false);
    assert_int_equal(pool(f, MR_OP_POOL_RESERVE, "open", 12, 1000, true).status, MR_STATE_OK);
    close_state(f); /* as if the process stopped with "open" in flight */
    assert_int_equal(open_state(f, f->file), 0);
    mr_state_result_t r = pool(f, MR_OP_POOL_GET, "", 0, 0, false);
    assert_int_equal(r.r[0].spent, 45); /* spent + the open reservation, charged */
    mr_state_stats_t s;
    mr_state_stats(f->st, &s);
    assert_int_equal(s.file_errors, 0);
}

static void test_file_corrupt(void **state)
{
    fx_t *f = *state;
    mr_state_opts_t o = {
        .backend = MR_STATE_MEMORY, .clock = fake_clock, .clock_arg = f, .state_file = f->file};
    mr_state_t *st = NULL;
    char err[512];
    FILE *fp = fopen(f->file, "w");
    fputs("{\"format\":\"meridian-state\",\"version\":1,\"pools\":{\"k\":{\"spent\":", fp);
    fclose(fp);
    assert_int_equal(mr_state_new(&o, &st, err, sizeof(err)), -1);
    assert_non_null(strstr(err, f->file));
    assert_non_null(strstr(err, "line 1"));
    assert_non_null(strstr(err, "move it away"));
    fp = fopen(f->file, "w");
    fputs("{\"format\":\"meridian-state\",\"version\":1,\"pools\":{\"k\":{\"spent\":-4,"
          "\"expires_ms\":1}}}",
          fp);
    fclose(fp);
    assert_int_equal(mr_state_new(&o, &st, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "pools.k"));
}

typedef struct race {
    mr_state_t *st;
    uv_loop_t loop;
    int admitted;
    int base;
} race_t;

static void count_ok(void *arg, const mr_state_result_t *res)
{
    if (res->status == MR_STATE_OK)
        ((race_t *)arg)->admitted++;
}

static void *racer(void *arg)
{
    race_t *r = arg;
    mr_state_loop_t *sl;
    char err[128];
    uv_loop_init(&r->loop);
    if (mr_state_attach(r->st, &r->loop, &sl, err, sizeof(err)) != 0)
        return NULL;
    for (int i = 0; i < 2000; i++) {
        mr_state_txn_t t = {0};
        char id[32];
        snprintf(id, sizeof(id), "t%d-%d", r->base, i);
        mr_state_op_t *op = mr_state_txn_add(&t, MR_OP_POOL_RESERVE, "shared", id);
        op->amount = 1;
        op->limit = 1000;
        op->ttl_ms = 600000;
        mr_state_exec(sl, &t, count_ok, r);
        t.n = 0;
        op = mr_state_txn_add(&t, MR_OP_WINDOW_HIT, "shared-w", NULL);
        op->amount = 1;
        op->limit = 500;
        op->window_ms = 60000;
        mr_state_exec(sl, &t, count_ok, r);
    }
    mr_state_loop_close(sl);
    uv_run(&r->loop, UV_RUN_DEFAULT);
    uv_loop_close(&r->loop);
    return NULL;
}

/* Four threads race for 1000 pool units and 500 window hits: exactly that
 * many pass. */
static void test_threads_exact(void **state)
{
    fx_t *f = *state;
    race_t r[4];
    pthread_t th[4];
    int total = 0;
    for (int i = 0; i < 4; i++) {
        memset(&r[i], 0, sizeof(r[i]));
        r[i].st = f->st;
        r[i].base = i;
        pthread_create(&th[i], NULL, racer, &r[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        total += r[i].admitted;
    }
    assert_int_equal(total, 1500);
}

static void kv_got(void *arg, mr_state_status_t status, const char *val, size_t len)
{
    char *out = arg;
    assert_int_equal(status, MR_STATE_OK);
    snprintf(out, 32, "%.*s", val ? (int)len : 4, val ? val : "NULL");
}

static void test_kv_and_hints(void **state)
{
    fx_t *f = *state;
    char got[32];
    uint64_t until = 0;
    assert_int_equal(mr_state_kv_set(f->sl, "resp_1", "hello", 5, 1000, NULL, NULL), 0);
    mr_state_kv_get(f->sl, "resp_1", kv_got, got);
    assert_string_equal(got, "hello");
    f->now += 1000;
    mr_state_kv_get(f->sl, "resp_1", kv_got, got);
    assert_string_equal(got, "NULL");
    mr_state_kv_set(f->sl, "resp_2", "x", 1, 1000, NULL, NULL);
    mr_state_kv_del(f->sl, "resp_2");
    mr_state_kv_get(f->sl, "resp_2", kv_got, got);
    assert_string_equal(got, "NULL");

    assert_false(mr_state_hint_get(f->st, "openai/gpt", &until));
    mr_state_hint_publish(f->sl, "openai/gpt", f->now + 30000);
    assert_true(mr_state_hint_get(f->st, "openai/gpt", &until));
    assert_int_equal(until, f->now + 30000);
    f->now += 30000;
    assert_false(mr_state_hint_get(f->st, "openai/gpt", &until));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_window_edges, setup, teardown),
        cmocka_unit_test_setup_teardown(test_window_sliding, setup, teardown),
        cmocka_unit_test_setup_teardown(test_window_amounts_and_add, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reserve_settle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_all_or_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_keeps_spend, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_corrupt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_threads_exact, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kv_and_hints, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
