/*
 * libFuzzer target: the OpenAI Responses request parser
 * (responses_parse.h) from client bodies — an input that is an array
 * [body, history] also gives the stored history a previous_response_id
 * resolved to — and every target's request built from the model
 * (fuzz_dialect.h has the invariants). Also: the body's input as stored
 * items is an array, and a reasoning seal opens again to what was sealed.
 */
#include "meridian/responses_parse.h"

#define FUZZ_KIND MR_KIND_OPENAI
#include "fuzz_dialect.h"

/* A sealed signature parsed back from a one-item history is the same. */
static void seal_ok(const uint8_t *data, size_t size)
{
    mr_conv_reasoning_t r = {.signature = {(const char *)data, size}, .origin.kind = {"k", 1}};
    json_t *body = json_pack("{s:s}", "model", "m"), *hist;
    json_t *utf8 = json_stringn((const char *)data, size);
    mr_conv_req_t *out;
    mr_error_t err;
    char *seal;

    json_decref(utf8);
    if (!utf8 || !body) { /* only UTF-8 can be a JSON string */
        json_decref(body);
        return;
    }
    seal = mr_responses_seal(&r, (mr_conv_str_t){0});
    FUZZ_CHECK(seal, "seal");
    hist = json_pack("[{s:s, s:[{s:s, s:s}], s:s}]", "type", "reasoning", "summary", "type",
                     "summary_text", "text", "t", "encrypted_content", seal);
    FUZZ_CHECK(mr_responses_parse(body, hist, &out, &err) == 0, "parse: %s", err.message);
    FUZZ_CHECK(out->n_turns == 1 && out->turns[0].parts[0].u.reasoning.signature.n == size &&
                   memcmp(out->turns[0].parts[0].u.reasoning.signature.p, data, size) == 0,
               "the seal did not open to what was sealed");
    mr_conv_req_free(out);
    json_decref(hist);
    json_decref(body);
    free(seal);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *in = fuzz_body(data, size), *items;
    const json_t *body = json_is_array(in) ? json_array_get(in, 0) : in;
    const json_t *history = json_is_array(in) ? json_array_get(in, 1) : NULL;
    mr_conv_req_t *r = NULL;
    mr_error_t err = {0};

    if (size < 256)
        seal_ok(data, size);
    if (!in)
        return 0;
    if (mr_responses_parse(body, history, &r, &err) == 0) {
        FUZZ_CHECK(r && strcmp(r->turns_param, "input") == 0, "model");
        targets_ok(body, r);
        mr_conv_req_free(r);
        items = mr_responses_input_items(body);
        FUZZ_CHECK(json_is_array(items), "input items");
        json_decref(items);
    } else {
        FUZZ_CHECK(!r && (err.status == 400 || err.status == 500) && err.message[0], "parse: %d",
                   err.status);
    }
    json_decref(in);
    return 0;
}
