/*
 * Stream translator fuzzing: the input is upstream event-stream bytes.
 * Each input is translated twice, once in a single feed and once cut into
 * pieces of 1..64 bytes chosen from the input's hash; both runs must give
 * identical bytes, results and usage. The output must stay bounded and, for
 * translating adapters, be well-formed OpenAI SSE.
 */
#include "fuzz_common.h"

typedef struct fuzz_run {
    mr_buf_t out;
    int rc;
    int content; /* stream_content at the end */
    mr_usage_t usage;
} fuzz_run_t;

static void fuzz_translate(const mr_adapter_in_t *in, const uint8_t *data, size_t size,
                           uint64_t seed, fuzz_run_t *r)
{
    mr_stream_xlate_t *x = FUZZ_ADAPTER.stream_new(in);
    size_t at = 0;

    FUZZ_CHECK(x != NULL, "stream_new failed");
    mr_buf_init(&r->out, (size_t)-1);
    r->rc = 0;
    while (at < size && r->rc == 0) {
        size_t n = size - at;
        if (seed) {
            seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
            size_t piece = 1 + (size_t)(seed >> 58); /* 1..64 */
            n = piece < n ? piece : n;
        }
        r->rc = FUZZ_ADAPTER.stream_feed(x, (const char *)data + at, n, &r->out);
        FUZZ_CHECK(r->rc == 0 || r->rc == -1, "feed returned %d", r->rc);
        at += n;
    }
    if (r->rc == 0)
        r->rc = FUZZ_ADAPTER.stream_end(x, &r->out);
    FUZZ_CHECK(r->rc == 0 || r->rc == -1 || r->rc == MR_ADAPTER_TRUNCATED, "end returned %d",
               r->rc);
    r->content = FUZZ_ADAPTER.stream_content(x);
    FUZZ_ADAPTER.stream_usage(x, &r->usage);
    FUZZ_ADAPTER.stream_free(x);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t h = fuzz_hash(data, size);
    mr_adapter_in_t in;
    fuzz_run_t whole, cut;

    fuzz_in(&in, MR_EP_CHAT, 1, (int)(h & 1), NULL, "{}", 2);
    fuzz_translate(&in, data, size, 0, &whole);
    fuzz_translate(&in, data, size, h | 1, &cut);
    FUZZ_CHECK(whole.rc == cut.rc, "result depends on the split: %d vs %d", whole.rc, cut.rc);
    FUZZ_CHECK(mr_buf_len(&whole.out) == mr_buf_len(&cut.out) &&
                   memcmp(mr_buf_ptr(&whole.out), mr_buf_ptr(&cut.out), mr_buf_len(&cut.out)) == 0,
               "output depends on the split");
    FUZZ_CHECK(memcmp(&whole.usage, &cut.usage, sizeof(whole.usage)) == 0,
               "usage depends on the split");
    FUZZ_CHECK(whole.content == cut.content, "the commit point depends on the split");
    FUZZ_CHECK(!whole.content || mr_buf_len(&whole.out) > 0, "content without output");
    FUZZ_CHECK(mr_buf_len(&whole.out) <= FUZZ_OUT_BOUND(size), "%zu bytes out of %zu in",
               mr_buf_len(&whole.out), size);
    if (!FUZZ_ADAPTER.passthrough)
        fuzz_check_sse(mr_buf_ptr(&whole.out), mr_buf_len(&whole.out));
    mr_buf_free(&whole.out);
    mr_buf_free(&cut.out);
    return 0;
}
