/*
 * Request building fuzzing: the input is a client body. Bodies the gateway
 * would accept (a JSON object without duplicate keys) are built for the
 * chat, completions or embeddings endpoint; a success must give a bounded
 * JSON body and a URL and headers that carry the key only where it belongs,
 * a failure a 4xx/5xx error with a message.
 */
#include "meridian/json_span.h"

#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const mr_endpoint_t eps[] = {MR_EP_CHAT, MR_EP_CHAT, MR_EP_COMPLETIONS,
                                        MR_EP_EMBEDDINGS};
    const char *body = (const char *)data;
    uint64_t h = fuzz_hash(data, size);
    mr_adapter_in_t in;
    mr_adapter_req_t req;
    mr_error_t err;
    json_t *json;

    if (mr_json_validate(body, size) < 0)
        return 0;
    json = json_loadb(body, size, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(json)) {
        json_decref(json);
        return 0;
    }
    const json_t *so = json_object_get(json, "stream_options");
    fuzz_in(&in, eps[h % 4], json_is_true(json_object_get(json, "stream")),
            json_is_true(json_object_get(so, "include_usage")), json, body, size);
    memset(&err, 0, sizeof(err));
    if (FUZZ_ADAPTER.build(&in, &req, &err) == 0) {
        FUZZ_CHECK(req.url && req.body && req.headers, "incomplete request");
        FUZZ_CHECK(fuzz_is_json(req.body, req.body_len), "upstream body is not JSON");
        FUZZ_CHECK(req.body_len <= FUZZ_OUT_BOUND(size), "%zu bytes out of %zu in", req.body_len,
                   size);
        FUZZ_CHECK(!strstr(req.url, "fuzz-secret-key"), "key in the URL");
        mr_adapter_req_free(&req);
    } else {
        FUZZ_CHECK(err.status >= 400 && err.status < 600 && err.message[0],
                   "failure without an error");
    }
    json_decref(json);
    return 0;
}
