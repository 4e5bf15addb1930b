/*
 * Gateway keys: Bearer parsing, digest matching, the 401 messages (which
 * never contain the secret), and the constant-time walk: every key, every
 * byte, whatever the input.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meridian/auth.h"
#include "meridian/sha256.h"

/* sha256("sk-team-eu-secret"), sha256("sk-ops-secret") */
#define D_EU "637a04c01c480eb2aa75006f77ef2ec2e35fc5928af0f12f113561d321dd6f4f"
#define D_OPS "9b5dd3ceaccf8ee6b7aad8f7629858a828e2d43799a4af2cebbb33336c2c4528"

static const char *cfg_json =
    "{\"providers\":{\"a\":{\"kind\":\"openai\",\"base_url\":\"http://h\"}},"
    " \"policies\":{\"eu-only\":{\"allow\":{\"region\":[\"eu\"]}}},"
    " \"keys\":{\"team-eu\":{\"sha256\":\"" D_EU "\",\"policy\":\"eu-only\"},"
    "           \"ops\":{\"sha256\":\"" D_OPS "\"}}}";

static int setup(void **state)
{
    char err[512];
    mr_config_t *cfg;

    if (mr_config_load_string(cfg_json, "auth.json", &cfg, err, sizeof(err)) != 0) {
        print_error("%s\n", err);
        return -1;
    }
    *state = cfg;
    return 0;
}

static int teardown(void **state)
{
    mr_config_free(*state);
    return 0;
}

static void assert_401(const mr_config_t *cfg, const char *hdr, const char *msg_part)
{
    const mr_key_t *key = (const mr_key_t *)0x1;
    mr_error_t err;

    assert_int_equal(mr_auth_check(cfg, hdr, &key, &err), -1);
    assert_null(key);
    assert_int_equal(err.status, 401);
    assert_string_equal(err.code, "invalid_api_key");
    assert_string_equal(err.type, "authentication_error");
    if (!strstr(err.message, msg_part)) {
        print_error("message \"%s\" lacks \"%s\"\n", err.message, msg_part);
        fail();
    }
    /* never echo what the client sent */
    if (hdr && strlen(hdr) > 7) {
        const char *secret = hdr + 7;
        assert_null(strstr(err.message, secret));
    }
}

static void test_valid_keys(void **state)
{
    const mr_config_t *cfg = *state;
    const mr_key_t *key = NULL;
    mr_error_t err;

    assert_int_equal(mr_auth_check(cfg, "Bearer sk-team-eu-secret", &key, &err), 0);
    assert_non_null(key);
    assert_string_equal(key->name, "team-eu");
    assert_non_null(key->policy);
    assert_string_equal(key->policy->name, "eu-only");

    assert_int_equal(mr_auth_check(cfg, "Bearer sk-ops-secret", &key, &err), 0);
    assert_string_equal(key->name, "ops");
    assert_null(key->policy);

    /* scheme is case-insensitive; surrounding blanks are tolerated */
    assert_int_equal(mr_auth_check(cfg, "bearer   sk-ops-secret  ", &key, &err), 0);
    assert_string_equal(key->name, "ops");
    assert_int_equal(mr_auth_check(cfg, "BEARER\tsk-team-eu-secret", &key, &err), 0);
    assert_string_equal(key->name, "team-eu");
}

static void test_rejections(void **state)
{
    const mr_config_t *cfg = *state;

    assert_401(cfg, NULL, "missing gateway key");
    assert_401(cfg, "", "missing gateway key");
    assert_401(cfg, "Basic c2stb3BzLXNlY3JldA==", "unsupported Authorization scheme");
    assert_401(cfg, "Bearersk-ops-secret", "unsupported Authorization scheme");
    assert_401(cfg, "Bearer ", "empty");
    assert_401(cfg, "Bearer sk-ops-secreT", "matches no configured key");
    assert_401(cfg, "Bearer sk-ops-secret-x", "matches no configured key");
    assert_401(cfg, "Bearer " D_OPS, "matches no configured key"); /* the digest is not the key */
    {
        char big[MR_AUTH_MAX_SECRET + 32];
        memcpy(big, "Bearer ", 7);
        memset(big + 7, 'k', sizeof(big) - 8);
        big[sizeof(big) - 1] = '\0';
        assert_401(cfg, big, "too long");
    }
}

static void test_no_keys_configured(void **state)
{
    mr_config_t *cfg;
    char e[256];
    const mr_key_t *key = (const mr_key_t *)0x1;
    mr_error_t err;

    (void)state;
    assert_int_equal(mr_config_load_string(
                         "{\"providers\":{\"a\":{\"kind\":\"openai\",\"base_url\":\"http://h\"}}}",
                         NULL, &cfg, e, sizeof(e)),
                     0);
    assert_int_equal(mr_auth_check(cfg, NULL, &key, &err), 0);
    assert_null(key);
    assert_int_equal(mr_auth_check(cfg, "Bearer whatever", &key, &err), 0);
    assert_null(key);
    mr_config_free(cfg);
}

/*
 * No early exit: a digest differing from a key in its first byte, one
 * differing only in its last byte, a matching one and a far-off one all
 * take exactly 32 comparisons per configured key.
 */
static void test_constant_time_walk(void **state)
{
    const mr_config_t *cfg = *state;
    uint8_t eu[32], first[32], last[32], other[32];
    size_t steps;

    mr_sha256_from_hex(D_EU, eu);
    memcpy(first, eu, 32);
    first[0] ^= 0x01;
    memcpy(last, eu, 32);
    last[31] ^= 0x80;
    memset(other, 0xAA, sizeof(other));

    assert_ptr_equal(mr_auth_find_digest(cfg, eu, &steps), &cfg->keys[0]);
    assert_int_equal(steps, 32 * cfg->n_keys);
    assert_null(mr_auth_find_digest(cfg, first, &steps));
    assert_int_equal(steps, 32 * cfg->n_keys);
    assert_null(mr_auth_find_digest(cfg, last, &steps));
    assert_int_equal(steps, 32 * cfg->n_keys);
    assert_null(mr_auth_find_digest(cfg, other, &steps));
    assert_int_equal(steps, 32 * cfg->n_keys);
    /* the first key matching does not stop the walk either */
    assert_int_equal(cfg->n_keys, 2);
    assert_ptr_equal(mr_auth_find_digest(cfg, eu, &steps), &cfg->keys[0]);
    assert_int_equal(steps, 64);
    {
        uint8_t ops[32];
        mr_sha256_from_hex(D_OPS, ops);
        assert_ptr_equal(mr_auth_find_digest(cfg, ops, &steps), &cfg->keys[1]);
        assert_int_equal(steps, 64);
    }
}

/* Wrong secrets of the same length as a real one, differing in the first or
 * in the last character, go through the same path and the same count. */
static void test_same_length_wrong_keys(void **state)
{
    const mr_config_t *cfg = *state;
    const char *good = "sk-ops-secret";
    char w1[32], w2[32];
    uint8_t d1[32], d2[32];
    size_t s1, s2;

    snprintf(w1, sizeof(w1), "%s", good);
    w1[0] = 'X';
    snprintf(w2, sizeof(w2), "%s", good);
    w2[strlen(w2) - 1] = 'X';
    mr_sha256(w1, strlen(w1), d1);
    mr_sha256(w2, strlen(w2), d2);
    assert_null(mr_auth_find_digest(cfg, d1, &s1));
    assert_null(mr_auth_find_digest(cfg, d2, &s2));
    assert_int_equal(s1, s2);
    assert_int_equal(s1, 32 * cfg->n_keys);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_keys),
        cmocka_unit_test(test_rejections),
        cmocka_unit_test(test_no_keys_configured),
        cmocka_unit_test(test_constant_time_walk),
        cmocka_unit_test(test_same_length_wrong_keys),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
