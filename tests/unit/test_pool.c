/* pool.h: a request's arena — alignment, chunk reuse through the worker's
 * cache, large pieces charged to the budget, the limit. */
#include "meridian/pool.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

static void test_small_pieces_aligned(void **state)
{
    mr_pool_t p;
    (void)state;
    mr_pool_init(&p, NULL, 1 << 20);
    assert_int_equal(p.bytes, 0); /* nothing until the first piece */
    for (size_t n = 1; n < 300; n += 7) {
        char *q = mr_pool_alloc(&p, n);
        assert_non_null(q);
        assert_int_equal((uintptr_t)q % 16, 0);
        memset(q, 0xab, n); /* ASan: the whole piece is ours */
    }
    assert_true(p.bytes >= 2 * MR_POOL_CHUNK); /* it took more than one chunk */
    char *s = mr_pool_strndup(&p, "model-name", 5);
    assert_string_equal(s, "model");
    unsigned char *z = mr_pool_calloc(&p, 10, 8);
    for (size_t i = 0; i < 80; i++)
        assert_int_equal(z[i], 0);
    assert_null(mr_pool_calloc(&p, SIZE_MAX / 2, 4)); /* n * size overflows */
    mr_pool_clear(&p);
    assert_int_equal(p.bytes, 0);
    mr_pool_clear(&p); /* twice is fine */
}

/* Chunks go back to the worker's cache, at most `max` of them, and the
 * next request takes them from there. */
static void test_chunks_reused(void **state)
{
    mr_pool_cache_t c;
    mr_pool_t p;
    (void)state;
    mr_pool_cache_init(&c, 2);
    mr_pool_init(&p, &c, 1 << 20);
    for (int i = 0; i < 6; i++) /* two pieces of 3/8 chunk fit a chunk: six take three */
        assert_non_null(mr_pool_alloc(&p, MR_POOL_CHUNK * 3 / 8));
    assert_int_equal(p.bytes, 3 * MR_POOL_CHUNK);
    mr_pool_clear(&p);
    assert_int_equal(c.n, 2); /* the third was freed */
    void *first = c.chunks;
    mr_pool_init(&p, &c, 1 << 20);
    assert_non_null(mr_pool_alloc(&p, 8));
    assert_int_equal(c.n, 1);
    assert_ptr_equal(p.chunk, first); /* taken from the cache, not malloc'd */
    mr_pool_clear(&p);
    assert_int_equal(c.n, 2);
    mr_pool_cache_free(&c);
    assert_int_equal(c.n, 0);
    assert_null(c.chunks);
}

/* A piece larger than half a chunk is allocated on its own, charged to the
 * pool's hold while it lives, refused when the budget cannot take it. */
static void test_large_pieces_charged(void **state)
{
    mr_memacct_t acct;
    mr_memhold_t hold = {&acct, 0};
    mr_pool_t p;
    (void)state;
    mr_memacct_init(&acct, 64 * 1024);
    mr_pool_init(&p, NULL, 1 << 20);
    p.hold = &hold;
    char *big = mr_pool_alloc(&p, 40000);
    assert_non_null(big);
    assert_int_equal((uintptr_t)big % 16, 0);
    memset(big, 1, 40000);
    assert_true(acct.used >= 40000 && acct.used < 40100);
    assert_null(mr_pool_alloc(&p, 30000));   /* past the budget: refused */
    assert_non_null(mr_pool_alloc(&p, 100)); /* chunks are not charged */
    mr_pool_clear(&p);
    assert_int_equal(acct.used, 0);
    assert_int_equal(hold.held, 0);
}

/* A pool never holds more than its limit, chunks and large pieces alike. */
static void test_limit(void **state)
{
    mr_pool_t p;
    (void)state;
    mr_pool_init(&p, NULL, 2 * MR_POOL_CHUNK);
    for (int i = 0; i < 5; i++) /* four fit a chunk: the fifth takes the second */
        assert_non_null(mr_pool_alloc(&p, 1000));
    assert_int_equal(p.bytes, 2 * MR_POOL_CHUNK);
    assert_non_null(mr_pool_alloc(&p, 2000)); /* still room in the second */
    assert_null(mr_pool_alloc(&p, 1500));     /* a third chunk would pass the limit */
    assert_null(mr_pool_alloc(&p, 10000));    /* so would a large piece */
    assert_null(mr_pool_alloc(&p, SIZE_MAX - 8));
    assert_true(p.bytes <= 2 * MR_POOL_CHUNK);
    mr_pool_clear(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_small_pieces_aligned),
        cmocka_unit_test(test_chunks_reused),
        cmocka_unit_test(test_large_pieces_charged),
        cmocka_unit_test(test_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
