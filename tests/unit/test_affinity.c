/*
 * affinity.h: pins, their expiry and renewal, the LRU bound, key scoping,
 * and the table against a plain reference under a long random sequence of
 * operations (which exercises the backward-shift deletion of the open
 * addressing table).
 */
#include "meridian/affinity.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t key_of(const char *scope, const char *name)
{
    const char *s[] = {scope, "chat"};
    return mr_affinity_key(s, 2, name, strlen(name));
}

static void test_pin_expire_renew(void **state)
{
    mr_affinity_t *a = mr_affinity_new(64);
    uint32_t id = 0;
    uint64_t exp = 0, k = key_of("keyA", "conv-1");
    (void)state;

    assert_non_null(a);
    assert_false(mr_affinity_get(a, k, 0, &id, &exp));
    mr_affinity_put(a, k, 7, 1000, 300000);
    assert_true(mr_affinity_get(a, k, 2000, &id, &exp));
    assert_int_equal(id, 7);
    assert_int_equal(exp, 301000);
    /* a turn served elsewhere moves the pin, and renews it */
    mr_affinity_put(a, k, 9, 200000, 300000);
    assert_true(mr_affinity_get(a, k, 400000, &id, NULL));
    assert_int_equal(id, 9);
    assert_false(mr_affinity_get(a, k, 500000, &id, NULL)); /* expired: gone */
    assert_int_equal(mr_affinity_count(a), 0);
    /* scope: the same name under another gateway key is another session */
    assert_true(key_of("keyA", "conv-1") != key_of("keyB", "conv-1"));
    assert_true(key_of("keyA", "conv-1") != 0);
    mr_affinity_free(a);
}

static void test_lru_bound(void **state)
{
    mr_affinity_t *a = mr_affinity_new(100);
    uint32_t id;
    char name[32];
    (void)state;

    for (int i = 0; i < 100; i++) {
        snprintf(name, sizeof(name), "s%d", i);
        mr_affinity_put(a, key_of("k", name), (uint32_t)i, 0, 1000);
    }
    /* touch s0 so that s1 is the least recently used */
    mr_affinity_put(a, key_of("k", "s0"), 0, 0, 1000);
    mr_affinity_put(a, key_of("k", "new"), 500, 0, 1000);
    assert_int_equal(mr_affinity_count(a), 100);
    assert_true(mr_affinity_get(a, key_of("k", "s0"), 1, &id, NULL));
    assert_false(mr_affinity_get(a, key_of("k", "s1"), 1, &id, NULL));
    assert_true(mr_affinity_get(a, key_of("k", "new"), 1, &id, NULL));
    assert_int_equal(id, 500);
    mr_affinity_free(a);
}

/* Random puts and gets (with expiries) of n sessions in a table of cap
 * against a reference array; without eviction (n <= cap) the answers must
 * be exact, with it a live pin may only be missing. */
static void run_reference(int n, size_t cap, int ops)
{
    mr_affinity_t *a = mr_affinity_new(cap);
    uint64_t *keys = calloc((size_t)n, sizeof(*keys)), *exp = calloc((size_t)n, sizeof(*exp));
    uint32_t *target = calloc((size_t)n, sizeof(*target));
    uint64_t now = 1, rng = 42;

    assert_non_null(a);
    assert_non_null(keys);
    assert_non_null(exp);
    assert_non_null(target);
    for (int i = 0; i < n; i++) {
        char name[16];
        snprintf(name, sizeof(name), "%d", i);
        keys[i] = key_of("r", name);
    }
    for (int op = 0; op < ops; op++) {
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        int i = (int)(rng % (uint64_t)n);
        now += rng >> 60;
        if ((rng >> 8) % 3 == 0) {
            target[i] = (uint32_t)(rng >> 20) & 1023;
            exp[i] = now + 50;
            mr_affinity_put(a, keys[i], target[i], now, 50);
            continue;
        }
        uint32_t id;
        bool found = mr_affinity_get(a, keys[i], now, &id, NULL);
        if (found) {
            assert_true(exp[i] > now);
            assert_int_equal(id, target[i]);
        } else if ((size_t)n <= cap) {
            assert_false(exp[i] > now);
        }
        assert_true(mr_affinity_count(a) <= cap);
    }
    mr_affinity_free(a);
    free(keys);
    free(exp);
    free(target);
}

static void test_against_reference(void **state)
{
    (void)state;
    run_reference(40, 64, 200000);  /* no eviction: exact */
    run_reference(300, 64, 200000); /* eviction under churn */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pin_expire_renew),
        cmocka_unit_test(test_lru_bound),
        cmocka_unit_test(test_against_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
