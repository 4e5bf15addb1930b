/*
 * Complete-answer fuzzing: the input is an upstream body, translated as a
 * 2xx chat or embeddings answer, and also handed to retryable and
 * translate_error as a non-2xx body. Outputs must be bounded JSON.
 */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const long statuses[] = {400, 401, 404, 429, 500, 503, 529};
    uint64_t h = fuzz_hash(data, size);
    const char *body = (const char *)data;
    json_t *req = json_pack("{s:s, s:[], s:s}", "model", "m", "messages", "encoding_format",
                            (h & 4) ? "base64" : "float");
    mr_adapter_in_t in;
    mr_buf_t out;
    mr_usage_t usage;
    mr_error_t err;
    int rc;

    fuzz_in(&in, (h & 2) ? MR_EP_EMBEDDINGS : MR_EP_CHAT, 0, 0, req, "{}", 2);
    mr_buf_init(&out, (size_t)-1);
    rc = FUZZ_ADAPTER.translate(&in, body, size, &out, &usage, &err);
    FUZZ_CHECK(rc == 0 || rc == -1, "translate returned %d", rc);
    if (rc == 0 && !FUZZ_ADAPTER.passthrough)
        FUZZ_CHECK(fuzz_is_json(mr_buf_ptr(&out), mr_buf_len(&out)), "answer is not JSON");
    if (rc < 0)
        FUZZ_CHECK(err.status >= 400 && err.message[0], "failure without an error");
    FUZZ_CHECK(mr_buf_len(&out) <= FUZZ_OUT_BOUND(size), "%zu bytes out of %zu in",
               mr_buf_len(&out), size);
    /* usage only */
    rc = FUZZ_ADAPTER.translate(&in, body, size, NULL, &usage, &err);
    FUZZ_CHECK(rc == 0 || rc == -1, "translate(NULL) returned %d", rc);

    long status = statuses[(h >> 8) % (sizeof(statuses) / sizeof(statuses[0]))];
    rc = FUZZ_ADAPTER.retryable(status, body, size);
    FUZZ_CHECK(rc == 0 || rc == 1, "retryable returned %d", rc);
    FUZZ_CHECK(FUZZ_ADAPTER.retryable(529, body, size) == 1, "529 must be retryable");
    mr_buf_reset(&out);
    FUZZ_ADAPTER.translate_error(fuzz_provider(), status, body, size, &out);
    FUZZ_CHECK(mr_buf_len(&out) > 0, "no error body");
    FUZZ_CHECK(fuzz_is_json(mr_buf_ptr(&out), mr_buf_len(&out)), "error body is not JSON");
    FUZZ_CHECK(mr_buf_len(&out) <= FUZZ_OUT_BOUND(size), "error body too large");
    mr_buf_free(&out);
    json_decref(req);
    return 0;
}
