/*
 * auth — Bearer token -> gateway key, compared in constant time.
 */
#include "meridian/auth.h"
#include "meridian/sha256.h"

#include <string.h>
#include <strings.h>

const mr_key_t *mr_auth_find_digest(const mr_config_t *cfg, const uint8_t digest[32],
                                    size_t *bytes_compared)
{
    /* volatile: keep the compiler from turning the loops into an early exit */
    volatile size_t steps = 0;
    uintptr_t found = 0;

    for (size_t k = 0; k < cfg->n_keys; k++) {
        const uint8_t *want = cfg->keys[k].digest;
        unsigned acc = 0;
        for (size_t i = 0; i < 32; i++) {
            acc |= (unsigned)(want[i] ^ digest[i]);
            steps = steps + 1;
        }
        /* mask = all ones when acc == 0, else zero; no branch on the secret */
        uintptr_t mask = (uintptr_t)0 - (uintptr_t)(((acc | (0u - acc)) >> 31) ^ 1u);
        found |= mask & (uintptr_t)&cfg->keys[k];
    }
    if (bytes_compared)
        *bytes_compared = steps;
    return (const mr_key_t *)found;
}

/* The key of a secret (len bytes), or a 401 naming where it came from. */
static int check_secret(const mr_config_t *cfg, const char *secret, size_t len, const char *from,
                        const mr_key_t **key_out, mr_error_t *err)
{
    uint8_t digest[MR_SHA256_DIGEST_LEN];

    if (len == 0 || len > MR_AUTH_MAX_SECRET) {
        mr_error_set(err, 401, NULL, "invalid_api_key", NULL, "invalid gateway key (the %s is %s)",
                     from, len ? "too long" : "empty");
        return -1;
    }
    mr_sha256(secret, len, digest);
    *key_out = mr_auth_find_digest(cfg, digest, NULL);
    explicit_bzero(digest, sizeof(digest));
    if (!*key_out) {
        mr_error_set(err, 401, NULL, "invalid_api_key", NULL,
                     "invalid gateway key: the %s matches no configured key", from);
        return -1;
    }
    return 0;
}

/* Leading and trailing blanks are not part of a secret. */
static const char *trim(const char *s, size_t *len)
{
    while (*s == ' ' || *s == '\t')
        s++;
    *len = strlen(s);
    while (*len && (s[*len - 1] == ' ' || s[*len - 1] == '\t'))
        (*len)--;
    return s;
}

int mr_auth_check_request(const mr_config_t *cfg, const char *authorization, const char *api_key,
                          const mr_key_t **key_out, mr_error_t *err)
{
    size_t len;

    *key_out = NULL;
    if (cfg->n_keys == 0 || (authorization && *authorization) || !api_key)
        return mr_auth_check(cfg, authorization, key_out, err);
    api_key = trim(api_key, &len);
    return check_secret(cfg, api_key, len, "x-api-key", key_out, err);
}

int mr_auth_check(const mr_config_t *cfg, const char *authorization_header,
                  const mr_key_t **key_out, mr_error_t *err)
{
    const char *h = authorization_header, *secret;
    size_t len;

    *key_out = NULL;
    if (cfg->n_keys == 0)
        return 0;
    if (!h || !*h) {
        mr_error_set(err, 401, NULL, "invalid_api_key", NULL,
                     "missing gateway key: send \"Authorization: Bearer <key>\" or "
                     "\"x-api-key: <key>\"");
        return -1;
    }
    while (*h == ' ' || *h == '\t')
        h++;
    if (strncasecmp(h, "Bearer", 6) != 0 || (h[6] != ' ' && h[6] != '\t')) {
        mr_error_set(err, 401, NULL, "invalid_api_key", NULL,
                     "unsupported Authorization scheme: send \"Authorization: Bearer <key>\"");
        return -1;
    }
    secret = trim(h + 6, &len);
    return check_secret(cfg, secret, len, "Bearer token", key_out, err);
}
