/*
 * libFuzzer target: the OpenAI chat parser (chat_parse.h) and the
 * capability check (conv.h), from client bodies the gateway would accept
 * (strict JSON objects without duplicate members).
 *
 * Invariants (abort() = a crash libFuzzer reports with the input):
 *   - a refusal is a 400 (or a 500 out of memory) with a message;
 *   - a model stays within its bounds, every view is NUL-terminated, a tool
 *     turn holds exactly one result, an assistant turn its text parts
 *     before its calls;
 *   - mr_conv_check answers 0, or -1 with a 400 naming the dialect, also
 *     with a schema keyword list (the structured-output walk);
 *   - mr_conv_needs names only known capabilities, and each adapter's
 *     `unsupported` is NULL or a parameter name;
 *   - parse once, use many: every translating adapter builds the same bytes
 *     (or fails with the same error) from the shared model as from its own
 *     parse of the body, and a body the parser refuses fails both adapters
 *     with that refusal.
 */
#include "meridian/chat_parse.h"
#include "meridian/json_span.h"

#define FUZZ_KIND MR_KIND_ANTHROPIC
#include "fuzz_common.h"

static void check_view(mr_conv_str_t s)
{
    FUZZ_CHECK(s.p || s.n == 0, "absent view with a length");
    FUZZ_CHECK(!s.p || s.p[s.n] == '\0', "view not NUL-terminated");
}

static void check_parts(const mr_conv_part_t *parts, size_t n, size_t *total)
{
    *total += n;
    for (size_t k = 0; k < n; k++) {
        const mr_conv_part_t *p = &parts[k];
        check_view(p->cache.type);
        switch (p->kind) {
        case MR_CONV_TEXT:
        case MR_CONV_REFUSAL:
            check_view(p->u.text);
            break;
        case MR_CONV_IMAGE:
        case MR_CONV_AUDIO:
        case MR_CONV_FILE:
            check_view(p->u.media.url);
            check_view(p->u.media.data);
            FUZZ_CHECK(p->u.media.source != MR_CONV_SRC_BASE64 || p->u.media.media_type.p,
                       "base64 media without a type");
            break;
        case MR_CONV_TOOL_CALL:
            check_view(p->u.call.id);
            check_view(p->u.call.name);
            check_view(p->u.call.signature);
            check_view(p->u.call.origin.kind);
            check_view(p->u.call.origin.model);
            FUZZ_CHECK(!p->u.call.args_json || json_is_object(p->u.call.args_json),
                       "arguments kept that are not an object");
            break;
        case MR_CONV_OTHER:
            check_view(p->u.other.type);
            break;
        case MR_CONV_REASONING:
            check_view(p->u.reasoning.text);
            check_view(p->u.reasoning.data);
            check_view(p->u.reasoning.signature);
            check_view(p->u.reasoning.origin.kind);
            check_view(p->u.reasoning.origin.model);
            break;
        default:
            FUZZ_CHECK(0, "part kind %d in a request", (int)p->kind);
        }
    }
}

static void check_model(const mr_conv_req_t *r)
{
    size_t total = 0;

    FUZZ_CHECK(r->n_turns <= MR_CONV_MAX_TURNS && r->n_tools <= MR_CONV_MAX_TOOLS, "bounds");
    for (size_t i = 0; i < r->n_turns; i++) {
        const mr_conv_turn_t *t = &r->turns[i];
        check_view(t->role_name);
        if (t->role == MR_CONV_ROLE_TOOL) {
            const mr_conv_tool_result_t *res = &t->parts[0].u.result;
            FUZZ_CHECK(t->n_parts == 1 && t->parts[0].kind == MR_CONV_TOOL_RESULT,
                       "tool turn without its one result");
            check_view(res->call_id);
            check_view(res->name);
            check_parts(res->content, res->n_content, &total);
            continue;
        }
        for (size_t k = 1; k < t->n_parts; k++)
            FUZZ_CHECK(t->parts[k].kind == MR_CONV_TOOL_CALL ||
                           t->parts[k - 1].kind != MR_CONV_TOOL_CALL,
                       "text after a tool call");
        check_parts(t->parts, t->n_parts, &total);
    }
    FUZZ_CHECK(total <= MR_CONV_MAX_PARTS, "%zu parts", total);
    for (size_t i = 0; i < r->n_stop; i++)
        check_view(r->stop[i]);
    for (size_t i = 0; i < r->n_dropped; i++)
        check_view(r->dropped[i]);
}

static void check_caps(const mr_conv_req_t *r)
{
    static const mr_conv_caps_t none = {
        .name = "none", .n_max = 1, .choices_max = 1, .max_output_limit = 1};
    static const mr_conv_caps_t all = {.name = "all",
                                       .n_max = 128,
                                       .choices_max = 128,
                                       .max_output_limit = 1 << 30,
                                       .image_url = 1,
                                       .audio_in = 1,
                                       .json_object = 1,
                                       .json_schema = 1,
                                       .penalties = 1,
                                       .seed = 1,
                                       .call_needs_id = 1,
                                       .result_by_name = 1,
                                       .rich_results = 1,
                                       .logprobs = 1,
                                       .audio_out = 1,
                                       .reasoning = 1};
    static const char *const keywords[] = {"type", "properties", "items", "anyOf", NULL};
    static const mr_conv_caps_t schema = {.name = "schema",
                                          .n_max = 1,
                                          .choices_max = 1,
                                          .max_output_limit = 1 << 30,
                                          .json_schema = 1,
                                          .reasoning = 1,
                                          .schema_keywords = keywords};
    const mr_conv_caps_t *caps[] = {&none, &all, &schema};

    for (size_t i = 0; i < 3; i++) {
        mr_error_t err;
        memset(&err, 0, sizeof(err));
        int rc = mr_conv_check(r, caps[i], &err);
        FUZZ_CHECK(rc == 0 || (rc == -1 && err.status == 400 && err.message[0]), "check: %d %d", rc,
                   err.status);
    }
    FUZZ_CHECK((mr_conv_needs(r) & ~MR_CAP_ALL) == 0, "unknown capability needed");
    const mr_adapter_t *ads[] = {&mr_adapter_anthropic, &mr_adapter_gemini};
    for (size_t i = 0; i < 2; i++) {
        const char *p = ads[i]->unsupported(r);
        FUZZ_CHECK(!p || strlen(p) < 4096, "%s: unsupported() gave no name", ads[i]->name);
    }
}

/* Builds with and without the shared model must agree byte for byte. */
static void check_same_build(const mr_adapter_t *ad, mr_provider_kind_t kind, json_t *json,
                             const char *body, size_t size, const mr_conv_req_t *conv,
                             const mr_error_t *parse_err)
{
    mr_provider_t prov = *fuzz_provider();
    mr_adapter_in_t in;
    mr_adapter_req_t a, b;
    mr_error_t ea, eb;
    int ra, rb;

    prov.kind = kind;
    fuzz_in(&in, MR_EP_CHAT, json_is_true(json_object_get(json, "stream")), 0, json, body, size);
    in.provider = &prov;
    memset(&ea, 0, sizeof(ea));
    memset(&eb, 0, sizeof(eb));
    ra = ad->build(&in, &a, &ea);
    if (!conv) {
        FUZZ_CHECK(ra == -1 && ea.status == parse_err->status &&
                       strcmp(ea.message, parse_err->message) == 0,
                   "%s: not the parser's refusal: %s", ad->name, ea.message);
        return;
    }
    in.conv = conv;
    rb = ad->build(&in, &b, &eb);
    FUZZ_CHECK(ra == rb, "%s: %d with its own parse, %d with the shared model", ad->name, ra, rb);
    if (ra == 0) {
        FUZZ_CHECK(a.body_len == b.body_len && memcmp(a.body, b.body, a.body_len) == 0 &&
                       a.signatures_dropped == b.signatures_dropped,
                   "%s: bodies differ", ad->name);
        mr_adapter_req_free(&a);
        mr_adapter_req_free(&b);
    } else {
        FUZZ_CHECK(ea.status == eb.status && strcmp(ea.message, eb.message) == 0,
                   "%s: errors differ: %s / %s", ad->name, ea.message, eb.message);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *body = (const char *)data;
    mr_conv_req_t *r = NULL;
    mr_error_t err;
    json_t *json;

    if (mr_json_validate(body, size) < 0)
        return 0;
    json = json_loadb(body, size, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(json)) {
        json_decref(json);
        return 0;
    }
    memset(&err, 0, sizeof(err));
    if (mr_chat_parse(json, &r, &err) == 0) {
        check_model(r);
        check_caps(r);
    } else {
        FUZZ_CHECK(!r && (err.status == 400 || err.status == 500) && err.message[0],
                   "refusal without an error");
    }
    check_same_build(&mr_adapter_anthropic, MR_KIND_ANTHROPIC, json, body, size, r, &err);
    check_same_build(&mr_adapter_gemini, MR_KIND_GEMINI, json, body, size, r, &err);
    mr_conv_req_free(r);
    json_decref(json);
    return 0;
}
