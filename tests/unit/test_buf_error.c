#include "meridian/buf.h"
#include "meridian/error.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static void test_buf_limit(void **state)
{
    mr_buf_t b;
    char out[8];
    (void)state;
    mr_buf_init(&b, 10);
    assert_int_equal(mr_buf_append(&b, "0123456789", 10), 0);
    assert_int_equal(mr_buf_append(&b, "x", 1), -1); /* over the limit: nothing added */
    assert_int_equal(mr_buf_len(&b), 10);
    assert_int_equal(mr_buf_read(&b, out, 4), 4);
    assert_memory_equal(out, "0123", 4);
    assert_int_equal(mr_buf_room(&b), 4);
    assert_int_equal(mr_buf_append(&b, "abcd", 4), 0);
    assert_int_equal(mr_buf_append_force(&b, "!!", 2), 0); /* trailers may exceed */
    size_t len;
    char *p = mr_buf_steal(&b, &len);
    assert_int_equal(len, 12);
    assert_string_equal(p, "456789abcd!!");
    assert_int_equal(mr_buf_len(&b), 0);
    free(p);
    mr_buf_free(&b);
}

static void test_error_body_shape(void **state)
{
    mr_error_t e;
    size_t len;
    json_t *attempts = json_pack("[{s:s}]", "provider", "a");
    (void)state;
    mr_error_set(&e, 502, NULL, "upstream_failed", NULL, "all %d failed", 2);
    char *body = mr_error_body(&e, "attempts", attempts, &len);
    json_t *root = json_loads(body, 0, NULL);
    assert_non_null(root);
    json_t *err = json_object_get(root, "error");
    assert_string_equal(json_string_value(json_object_get(err, "message")), "all 2 failed");
    assert_string_equal(json_string_value(json_object_get(err, "type")), "api_error");
    assert_true(json_is_null(json_object_get(err, "param")));
    assert_string_equal(json_string_value(json_object_get(err, "code")), "upstream_failed");
    assert_int_equal(json_array_size(json_object_get(err, "attempts")), 1);
    assert_int_equal(strlen(body), len);
    json_decref(root);
    json_decref(attempts);
    free(body);
}

static void test_error_types(void **state)
{
    (void)state;
    assert_string_equal(mr_error_type_for_status(400), "invalid_request_error");
    assert_string_equal(mr_error_type_for_status(401), "authentication_error");
    assert_string_equal(mr_error_type_for_status(403), "permission_error");
    assert_string_equal(mr_error_type_for_status(429), "rate_limit_error");
    assert_string_equal(mr_error_type_for_status(503), "service_unavailable_error");
    assert_string_equal(mr_error_type_for_status(502), "api_error");
}

static void test_error_invalid_utf8_message(void **state)
{
    mr_error_t e;
    (void)state;
    mr_error_set(&e, 400, NULL, NULL, "model", "model \"%s\" unknown", "\xff\xfe");
    char *body = mr_error_body(&e, NULL, NULL, NULL);
    assert_non_null(body);
    json_t *root = json_loads(body, 0, NULL);
    assert_non_null(root);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(root, "error"), "message")),
        "model \"??\" unknown");
    json_decref(root);
    free(body);
}

/* A buffer with a hold: growth charged, refused past the budget, forced
 * appends charged anyway, free gives it back, a stolen block stays held. */
static void test_buf_budget(void **state)
{
    mr_memacct_t acct;
    mr_memhold_t h = {&acct, 0};
    mr_buf_t b;
    char chunk[1000];
    size_t len;
    (void)state;

    memset(chunk, 'x', sizeof(chunk));
    mr_memacct_init(&acct, 4096);
    mr_buf_init(&b, 100000);
    b.hold = &h;
    assert_int_equal(mr_buf_append(&b, chunk, sizeof(chunk)), 0);
    assert_int_equal(acct.used, b.cap);
    assert_int_equal(h.held, b.cap);
    /* 1024 -> 2048 -> 4096 fits; 8192 does not */
    assert_int_equal(mr_buf_append(&b, chunk, sizeof(chunk)), 0);
    assert_int_equal(mr_buf_append(&b, chunk, sizeof(chunk)), 0);
    assert_int_equal(acct.used, 4096);
    assert_int_equal(mr_buf_append(&b, chunk, sizeof(chunk)), 0); /* 4000 + NUL fit */
    assert_int_equal(mr_buf_append(&b, chunk, sizeof(chunk)), -1);
    assert_int_equal(acct.refused, 1);
    assert_int_equal(mr_buf_len(&b), 4000);
    assert_int_equal(mr_buf_append_force(&b, chunk, sizeof(chunk)), 0);
    assert_int_equal(acct.used, 8192);
    assert_int_equal(acct.peak, 8192);
    char *p = mr_buf_steal(&b, &len);
    assert_int_equal(len, 5000);
    assert_int_equal(acct.used, 8192); /* the stolen block is still held */
    free(p);
    mr_mem_release_all(&h);
    assert_int_equal(acct.used, 0);

    /* a declared size: one allocation of exactly that, refused when too big */
    mr_buf_init(&b, 100000);
    b.hold = &h;
    assert_int_equal(mr_buf_reserve(&b, 3000), 0);
    assert_int_equal(b.cap, 3001);
    assert_int_equal(mr_buf_reserve(&b, 5000), -1);
    assert_int_equal(mr_buf_reserve(&b, 200000), -1);
    mr_buf_free(&b);
    assert_int_equal(acct.used, 0);
    assert_int_equal(mr_memacct_take_peak(&acct), 8192);
    assert_int_equal(mr_memacct_take_peak(&acct), 0);
}

/* Doubling stops at the limit: a 5000-byte buffer never allocates 8192. */
static void test_buf_growth_capped(void **state)
{
    mr_buf_t b;
    char chunk[1000] = {0};
    (void)state;

    mr_buf_init(&b, 5000);
    for (int i = 0; i < 5; i++)
        assert_int_equal(mr_buf_append(&b, chunk, sizeof(chunk)), 0);
    assert_int_equal(b.cap, 5001);
    assert_int_equal(mr_buf_append(&b, chunk, 1), -1);
    mr_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_limit),         cmocka_unit_test(test_buf_budget),
        cmocka_unit_test(test_buf_growth_capped), cmocka_unit_test(test_error_body_shape),
        cmocka_unit_test(test_error_types),       cmocka_unit_test(test_error_invalid_utf8_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
