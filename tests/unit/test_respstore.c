/*
 * The Responses store (respstore.h): ids and scoped keys, and the memory
 * backend's bounds — eviction by count and by bytes (least recently used
 * first), expiry at the TTL with an injected clock, replacement, deletion,
 * values too large — plus a bounded two-thread run under the mutex.
 */
#include "meridian/respstore.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct got {
    int calls;
    mr_respstore_status_t st;
    char val[256];
    size_t len;
} got_t;

static void on_result(void *arg, mr_respstore_status_t st, const char *val, size_t len)
{
    got_t *g = arg;

    g->calls++;
    g->st = st;
    g->len = len;
    snprintf(g->val, sizeof(g->val), "%.*s", (int)len, val ? val : "");
}

static uint64_t fake_now;

static uint64_t fake_clock(void *arg)
{
    (void)arg;
    return fake_now;
}

typedef struct fixture {
    mr_respstore_mem_t *m;
    mr_respstore_backend_t be;
} fixture_t;

static void make(fixture_t *f, size_t entries, size_t bytes, uint64_t ttl)
{
    mr_respstore_mem_opts_t o = {
        .max_entries = entries, .max_bytes = bytes, .max_ttl_ms = ttl, .clock = fake_clock};
    fake_now = 1000;
    f->m = mr_respstore_mem_new(&o);
    assert_non_null(f->m);
    f->be = mr_respstore_mem_backend(f->m);
}

static void put(fixture_t *f, const char *scope, const char *id, const char *val, uint64_t ttl,
                mr_respstore_status_t want)
{
    got_t g = {0};

    assert_int_equal(mr_respstore_put(&f->be, scope, id, val, strlen(val), ttl, on_result, &g), 0);
    assert_int_equal(g.calls, 1); /* the memory backend answers before returning */
    assert_int_equal(g.st, want);
}

/* The value under (scope, id), or NULL when not found. */
static const char *get(fixture_t *f, const char *scope, const char *id)
{
    static got_t g;

    memset(&g, 0, sizeof(g));
    assert_int_equal(mr_respstore_get(&f->be, scope, id, on_result, &g), 0);
    assert_int_equal(g.calls, 1);
    return g.st == MR_RESPSTORE_OK ? g.val : NULL;
}

static void test_ids(void **state)
{
    unsigned char rnd[16];
    char id[MR_RESPSTORE_ID_MAX + 1], key[MR_RESPSTORE_KEY_MAX], key2[MR_RESPSTORE_KEY_MAX];
    char long_id[MR_RESPSTORE_ID_MAX + 2];
    (void)state;

    for (int i = 0; i < 16; i++)
        rnd[i] = (unsigned char)(i * 17);
    mr_respstore_new_id(rnd, id);
    assert_string_equal(id, "resp_00112233445566778899aabbccddeeff");
    assert_true(mr_respstore_id_ok(id));
    assert_false(mr_respstore_id_ok(""));
    assert_false(mr_respstore_id_ok(NULL));
    assert_false(mr_respstore_id_ok("resp_../x"));
    assert_false(mr_respstore_id_ok("a:b"));
    memset(long_id, 'a', sizeof(long_id) - 1);
    long_id[sizeof(long_id) - 1] = '\0';
    assert_false(mr_respstore_id_ok(long_id));
    long_id[MR_RESPSTORE_ID_MAX] = '\0';
    assert_true(mr_respstore_id_ok(long_id));
    /* keys: scope hashed (no key name in the backend), id kept */
    assert_int_equal(mr_respstore_key("team-a", "resp_1", key), 0);
    assert_int_equal(strncmp(key, "resp:", 5), 0);
    assert_null(strstr(key, "team-a"));
    assert_string_equal(key + strlen(key) - 7, ":resp_1");
    assert_int_equal(mr_respstore_key("team-b", "resp_1", key2), 0);
    assert_string_not_equal(key, key2);
    assert_int_equal(mr_respstore_key("team-a", "bad id", key), -1);
}

static void test_scoping(void **state)
{
    fixture_t f;
    got_t g = {0};
    (void)state;

    make(&f, 10, 1 << 20, 0);
    put(&f, "key-a", "resp_1", "{\"a\":1}", 0, MR_RESPSTORE_OK);
    assert_string_equal(get(&f, "key-a", "resp_1"), "{\"a\":1}");
    /* another key, or no key, does not see it */
    assert_null(get(&f, "key-b", "resp_1"));
    assert_null(get(&f, "", "resp_1"));
    /* nor can it delete it */
    assert_int_equal(mr_respstore_del(&f.be, "key-b", "resp_1", on_result, &g), 0);
    assert_int_equal(g.st, MR_RESPSTORE_NOT_FOUND);
    assert_non_null(get(&f, "key-a", "resp_1"));
    assert_int_equal(mr_respstore_del(&f.be, "key-a", "resp_1", on_result, &g), 0);
    assert_int_equal(g.st, MR_RESPSTORE_OK);
    assert_null(get(&f, "key-a", "resp_1"));
    /* ids that are not ids never reach the backend */
    assert_int_equal(mr_respstore_get(&f.be, "key-a", "../x", on_result, &g), -1);
    mr_respstore_mem_free(f.m);
}

static void test_evict_by_count(void **state)
{
    fixture_t f;
    mr_respstore_mem_stats_t st;
    char id[32];
    (void)state;

    make(&f, 3, 1 << 20, 0);
    put(&f, "k", "r1", "one", 0, MR_RESPSTORE_OK);
    put(&f, "k", "r2", "two", 0, MR_RESPSTORE_OK);
    put(&f, "k", "r3", "three", 0, MR_RESPSTORE_OK);
    assert_non_null(get(&f, "k", "r1")); /* r1 is now the most recently used */
    put(&f, "k", "r4", "four", 0, MR_RESPSTORE_OK);
    assert_null(get(&f, "k", "r2")); /* the least recently used went */
    assert_non_null(get(&f, "k", "r1"));
    assert_non_null(get(&f, "k", "r3"));
    assert_non_null(get(&f, "k", "r4"));
    for (int i = 0; i < 100; i++) {
        snprintf(id, sizeof(id), "x%d", i);
        put(&f, "k", id, "v", 0, MR_RESPSTORE_OK);
    }
    mr_respstore_mem_stats(f.m, &st);
    assert_int_equal(st.entries, 3);
    assert_int_equal(st.evicted, 101);
    assert_non_null(get(&f, "k", "x99"));
    assert_null(get(&f, "k", "x96"));
    mr_respstore_mem_free(f.m);
}

static void test_evict_by_bytes(void **state)
{
    fixture_t f;
    mr_respstore_mem_stats_t st;
    char big[200];
    size_t one;
    (void)state;

    memset(big, 'b', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    make(&f, 1000, 4096, 0);
    put(&f, "k", "first", big, 0, MR_RESPSTORE_OK);
    mr_respstore_mem_stats(f.m, &st);
    one = st.bytes; /* what one entry is charged */
    assert_true(one > sizeof(big));
    for (int i = 0; i < 50; i++) {
        char id[16];
        snprintf(id, sizeof(id), "r%d", i);
        put(&f, "k", id, big, 0, MR_RESPSTORE_OK);
        mr_respstore_mem_stats(f.m, &st);
        assert_true(st.bytes <= 4096);
    }
    assert_int_equal(st.entries, 4096 / one);
    assert_null(get(&f, "k", "first"));
    assert_non_null(get(&f, "k", "r49"));
    /* one value larger than the whole store is refused, nothing evicted */
    {
        char *huge = malloc(8192);
        size_t before = st.entries;
        memset(huge, 'h', 8191);
        huge[8191] = '\0';
        put(&f, "k", "huge", huge, 0, MR_RESPSTORE_TOO_LARGE);
        mr_respstore_mem_stats(f.m, &st);
        assert_int_equal(st.entries, before);
        assert_int_equal(st.too_large, 1);
        free(huge);
    }
    mr_respstore_mem_free(f.m);
}

static void test_ttl(void **state)
{
    fixture_t f;
    mr_respstore_mem_stats_t st;
    (void)state;

    make(&f, 10, 1 << 20, 60000); /* at most a minute */
    put(&f, "k", "short", "s", 100, MR_RESPSTORE_OK);
    put(&f, "k", "long", "l", 3600000, MR_RESPSTORE_OK); /* cut to the maximum */
    put(&f, "k", "dflt", "d", 0, MR_RESPSTORE_OK);       /* 0: the maximum */
    fake_now += 99;
    assert_non_null(get(&f, "k", "short"));
    fake_now += 1;
    assert_null(get(&f, "k", "short"));
    fake_now += 59000 - 100;
    assert_non_null(get(&f, "k", "long"));
    assert_non_null(get(&f, "k", "dflt"));
    fake_now += 1000;
    assert_null(get(&f, "k", "long"));
    assert_null(get(&f, "k", "dflt"));
    mr_respstore_mem_stats(f.m, &st);
    assert_int_equal(st.expired, 3);
    assert_int_equal(st.entries, 0);
    assert_int_equal(st.bytes, 0);
    mr_respstore_mem_free(f.m);
}

static void test_replace(void **state)
{
    fixture_t f;
    mr_respstore_mem_stats_t st;
    (void)state;

    make(&f, 10, 1 << 20, 0);
    put(&f, "k", "r", "old", 0, MR_RESPSTORE_OK);
    put(&f, "k", "r", "new value", 0, MR_RESPSTORE_OK);
    assert_string_equal(get(&f, "k", "r"), "new value");
    mr_respstore_mem_stats(f.m, &st);
    assert_int_equal(st.entries, 1);
    mr_respstore_mem_free(f.m);
}

/* Two threads putting and getting in one store: every get finds what its
 * thread put last (no lost or torn values); bounded in count. */
typedef struct worker {
    fixture_t *f;
    char scope[8];
    int bad;
} worker_t;

static void *hammer(void *arg)
{
    worker_t *w = arg;

    for (int i = 0; i < 5000; i++) {
        char id[32], val[32];
        got_t g = {0};
        snprintf(id, sizeof(id), "r%d", i % 50);
        snprintf(val, sizeof(val), "%s-%d", w->scope, i);
        mr_respstore_put(&w->f->be, w->scope, id, val, strlen(val), 0, NULL, NULL);
        mr_respstore_get(&w->f->be, w->scope, id, on_result, &g);
        w->bad += g.st != MR_RESPSTORE_OK || strcmp(g.val, val) != 0;
    }
    return NULL;
}

static void test_threads(void **state)
{
    fixture_t f;
    worker_t w[2] = {{.f = &f, .scope = "a"}, {.f = &f, .scope = "b"}};
    pthread_t t[2];
    (void)state;

    make(&f, 1000, 1 << 20, 0);
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, hammer, &w[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(w[0].bad + w[1].bad, 0);
    mr_respstore_mem_free(f.m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ids),
        cmocka_unit_test(test_scoping),
        cmocka_unit_test(test_evict_by_count),
        cmocka_unit_test(test_evict_by_bytes),
        cmocka_unit_test(test_ttl),
        cmocka_unit_test(test_replace),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
