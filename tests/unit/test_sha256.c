/*
 * SHA-256: FIPS 180-4 / NIST test vectors, padding boundaries, incremental
 * updates split at every offset, hex conversion.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "meridian/sha256.h"

static void assert_digest(const void *data, size_t len, const char *want)
{
    uint8_t d[32];
    char hex[65];

    mr_sha256(data, len, d);
    mr_sha256_hex(d, hex);
    assert_string_equal(hex, want);
}

static void test_vectors(void **state)
{
    static const struct {
        const char *msg, *want;
    } v[] = {
        /* FIPS 180-4 examples (NIST CSRC "SHA256.pdf", "SHA2_Additional") */
        {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
        {"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqr"
         "lmnopqrsmnopqrstnopqrstu",
         "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
        assert_digest(v[i].msg, strlen(v[i].msg), v[i].want);
}

/* Lengths around the 55/56/64-byte padding boundaries. */
static void test_padding_boundaries(void **state)
{
    static const struct {
        size_t n;
        const char *want;
    } v[] = {
        {55, "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318"},
        {56, "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a"},
        {63, "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34"},
        {64, "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb"},
        {65, "635361c48bb9eab14198e76ea8ab7f1a41685d6ad62aa9146d301d4f17eb0ae0"},
    };
    char buf[65];
    (void)state;
    memset(buf, 'a', sizeof(buf));
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
        assert_digest(buf, v[i].n, v[i].want);
}

/* One million 'a' fed in odd-sized pieces (NIST long message). */
static void test_million_a(void **state)
{
    mr_sha256_t c;
    uint8_t d[32];
    char hex[65], chunk[997];
    size_t left = 1000000;
    (void)state;
    memset(chunk, 'a', sizeof(chunk));
    mr_sha256_init(&c);
    while (left) {
        size_t n = left < sizeof(chunk) ? left : sizeof(chunk);
        mr_sha256_update(&c, chunk, n);
        left -= n;
    }
    mr_sha256_final(&c, d);
    mr_sha256_hex(d, hex);
    assert_string_equal(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

/* Splitting the input anywhere (and into empty updates) changes nothing. */
static void test_incremental_splits(void **state)
{
    const char *msg = "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjk"
                      "lmnopqklmnopqrlmnopqrsmnopqrstnopqrstu";
    size_t len = strlen(msg);
    uint8_t want[32], got[32];
    (void)state;
    mr_sha256(msg, len, want);
    for (size_t a = 0; a <= len; a++) {
        for (size_t b = a; b <= len; b += 7) {
            mr_sha256_t c;
            mr_sha256_init(&c);
            mr_sha256_update(&c, msg, a);
            mr_sha256_update(&c, msg + a, 0);
            mr_sha256_update(&c, msg + a, b - a);
            mr_sha256_update(&c, msg + b, len - b);
            mr_sha256_final(&c, got);
            assert_memory_equal(got, want, 32);
        }
    }
}

static void test_hex(void **state)
{
    uint8_t d[32], back[32];
    char hex[65];
    (void)state;
    for (int i = 0; i < 32; i++)
        d[i] = (uint8_t)(i * 37 + 5);
    mr_sha256_hex(d, hex);
    assert_int_equal(strlen(hex), 64);
    assert_int_equal(mr_sha256_from_hex(hex, back), 0);
    assert_memory_equal(d, back, 32);
    /* upper case is accepted */
    for (char *p = hex; *p; p++)
        if (*p >= 'a' && *p <= 'f')
            *p = (char)(*p - 'a' + 'A');
    assert_int_equal(mr_sha256_from_hex(hex, back), 0);
    assert_memory_equal(d, back, 32);

    assert_int_equal(mr_sha256_from_hex("", back), -1);
    assert_int_equal(mr_sha256_from_hex("abc", back), -1);
    hex[10] = 'g';
    assert_int_equal(mr_sha256_from_hex(hex, back), -1);
    hex[10] = 'a';
    hex[63] = '\0';
    assert_int_equal(mr_sha256_from_hex(hex, back), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),   cmocka_unit_test(test_padding_boundaries),
        cmocka_unit_test(test_million_a), cmocka_unit_test(test_incremental_splits),
        cmocka_unit_test(test_hex),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
