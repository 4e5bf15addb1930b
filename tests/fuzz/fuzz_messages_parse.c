/*
 * libFuzzer target: the Anthropic Messages request parser
 * (messages_parse.h) from client bodies, and every target's request built
 * from the model it makes (fuzz_dialect.h has the invariants). A refusal
 * is a 400 (or a 500 out of memory) with a message.
 */
#include "meridian/messages_parse.h"

#define FUZZ_KIND MR_KIND_ANTHROPIC
#include "fuzz_dialect.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *body = fuzz_body(data, size);
    mr_conv_req_t *r = NULL;
    mr_error_t err = {0};

    if (!body)
        return 0;
    if (mr_messages_parse(body, &r, &err) == 0) {
        FUZZ_CHECK(r && r->turns_param && strcmp(r->turns_param, "messages") == 0, "model");
        targets_ok(body, r);
        mr_conv_req_free(r);
    } else {
        FUZZ_CHECK(!r && (err.status == 400 || err.status == 500) && err.message[0], "parse: %d",
                   err.status);
    }
    json_decref(body);
    return 0;
}
