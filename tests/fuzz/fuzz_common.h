/*
 * Shared set-up of the libFuzzer targets (tests/fuzz/fuzz_<dialect>_*.c).
 * Each target defines FUZZ_ADAPTER (an mr_adapter_t) and FUZZ_KIND before
 * including one of fuzz_stream.h, fuzz_response.h, fuzz_request.h.
 *
 * Any violated invariant calls abort(), which libFuzzer reports as a crash
 * with the input that caused it.
 */
#ifndef MERIDIAN_FUZZ_COMMON_H
#define MERIDIAN_FUZZ_COMMON_H

#include "meridian/adapter.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Output may grow with the input, never without bound: a few hundred bytes
 * of chunk envelope per upstream event or candidate at most. */
#define FUZZ_OUT_BOUND(n) (64 * (size_t)(n) + 65536)

#define FUZZ_CHECK(cond, ...)                                                                      \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz invariant failed: %s: ", #cond);                                 \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static inline uint64_t fuzz_hash(const uint8_t *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

static inline const mr_provider_t *fuzz_provider(void)
{
    static const mr_provider_t p = {
        .name = (char *)"fuzz",
        .kind = FUZZ_KIND,
        .base_url = (char *)"http://127.0.0.1:9/v1",
        .api_key = (char *)"fuzz-secret-key",
        .vendor = (char *)"fuzz",
        .region = (char *)"",
        .jurisdiction = (char *)"",
        .enabled = true,
    };
    return &p;
}

static inline void fuzz_in(mr_adapter_in_t *in, mr_endpoint_t ep, int stream, int usage,
                           const json_t *json, const char *body, size_t len)
{
    memset(in, 0, sizeof(*in));
    in->provider = fuzz_provider();
    in->endpoint = ep;
    in->model = "fuzz-model";
    in->stream = stream;
    in->client_wants_usage = usage;
    in->json = json;
    in->body = body;
    in->body_len = len;
    in->created = 1700000000;
}

/* Whether p[0,n) is one JSON value (what every translated body must be). */
static inline int fuzz_is_json(const char *p, size_t n)
{
    json_t *j = json_loadb(p, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    json_decref(j);
    return j != NULL;
}

/* Every event is "data: <JSON object>\n\n" or "data: [DONE]\n\n". */
static inline void fuzz_check_sse(const char *p, size_t n)
{
    const char *end = p + n;
    int done = 0;

    while (p < end) {
        const char *sep = memmem(p, (size_t)(end - p), "\n\n", 2);
        FUZZ_CHECK(sep != NULL, "unterminated event");
        FUZZ_CHECK(!done, "event after [DONE]");
        FUZZ_CHECK((size_t)(sep - p) >= 6 && memcmp(p, "data: ", 6) == 0, "not a data event");
        if ((size_t)(sep - p) == 12 && memcmp(p + 6, "[DONE]", 6) == 0)
            done = 1;
        else
            FUZZ_CHECK(fuzz_is_json(p + 6, (size_t)(sep - p - 6)), "event data is not JSON");
        p = sep + 2;
    }
}

#endif
