/*
 * Unit tests of the dialect codecs beyond the golden fixtures
 * (test_golden_dialects.c): round trips through the model (what a parser
 * reads back from an emitter's or writer's output is what it was given),
 * the messages that name the client's JSON path, the Anthropic error
 * shapes, message_start's input count, and a stored Responses history
 * chained into the next request with its signatures.
 */
#include "meridian/adapter.h"
#include "meridian/chat_answer.h"
#include "meridian/chat_emit.h"
#include "meridian/chat_parse.h"
#include "meridian/chat_write.h"
#include "meridian/messages_parse.h"
#include "meridian/messages_write.h"
#include "meridian/responses_parse.h"
#include "meridian/responses_write.h"

#include "../../src/providers/anthropic.h"
#include "../../src/providers/gemini.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GOLDEN MERIDIAN_SOURCE_DIR "/tests/golden"

static json_t *load(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, JSON_REJECT_DUPLICATES, &e);
    if (!j)
        fail_msg("bad test JSON: %s", e.text);
    return j;
}

static mr_chat_emit_opts_t opts = {.model = "m"};

/* The chat body of a model; NULL when the chat dialect refuses it. */
static json_t *emit_chat(const mr_conv_req_t *r)
{
    mr_error_t err;
    char *body;
    size_t len;
    json_t *j;

    if (mr_chat_emit_body(r, &opts, &body, &len, &err) < 0)
        return NULL;
    j = json_loadb(body, len, 0, NULL);
    free(body);
    assert_non_null(j);
    return j;
}

/* chat_emit(parse(x)) read back by chat_parse and emitted again gives the
 * same body: the chat emitter loses nothing the model carries into chat. */
static int chat_fixed_point(const json_t *first)
{
    mr_conv_req_t *r;
    mr_error_t err;
    json_t *second;
    int same;

    assert_int_equal(mr_chat_parse(first, &r, &err), 0);
    second = emit_chat(r);
    mr_conv_req_free(r);
    if (!second)
        fail_msg("the chat body emitted does not parse back: %s", err.message);
    same = json_equal(first, second);
    if (!same)
        fail_msg("chat round trip differs:\n%s\n---\n%s", json_dumps(first, JSON_COMPACT),
                 json_dumps(second, JSON_COMPACT));
    json_decref(second);
    return same;
}

typedef int (*parse_fn)(const json_t *body, mr_conv_req_t **out, mr_error_t *err);

static int parse_responses(const json_t *body, mr_conv_req_t **out, mr_error_t *err)
{
    return mr_responses_parse(body, NULL, out, err);
}

/* Every request fixture of a directory that the chat dialect can carry. */
static size_t round_trip_dir(const char *dir, parse_fn parse)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    size_t n = 0;

    assert_non_null(d);
    while ((e = readdir(d))) {
        char path[1024];
        size_t l = strlen(e->d_name);
        mr_conv_req_t *r;
        mr_error_t err;
        json_t *body, *first;
        if (l < 8 || strcmp(e->d_name + l - 8, ".in.json") != 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        body = json_load_file(path, 0, NULL);
        assert_non_null(body);
        if (parse(body, &r, &err) == 0) {
            if ((first = emit_chat(r))) {
                n += chat_fixed_point(first);
                json_decref(first);
            }
            mr_conv_req_free(r);
        }
        json_decref(body);
    }
    closedir(d);
    return n;
}

static void test_chat_round_trip(void **state)
{
    (void)state;
    /* chat bodies: the translating adapters' request fixtures */
    assert_true(round_trip_dir(GOLDEN "/anthropic/request", mr_chat_parse) >= 5);
    assert_true(round_trip_dir(GOLDEN "/gemini/request", mr_chat_parse) >= 5);
    /* the other dialects: through the model into chat, and back */
    assert_true(round_trip_dir(GOLDEN "/messages-openai/request", mr_messages_parse) >= 3);
    assert_true(round_trip_dir(GOLDEN "/responses-openai/request", parse_responses) >= 3);
}

/* ---------------------------------------------------------------- answers */

static mr_adapter_in_t anthropic_in(void)
{
    static mr_provider_t p = {.name = (char *)"p", .kind = MR_KIND_ANTHROPIC};
    return (mr_adapter_in_t){.provider = &p, .model = "m", .endpoint = MR_EP_CHAT};
}

static json_t *write_messages(const mr_conv_answer_t *a)
{
    mr_buf_t out;
    mr_error_t err;
    json_t *j;

    mr_buf_init(&out, 1 << 20);
    assert_int_equal(mr_messages_write_answer(a, &out, &err), 0);
    j = json_loadb(mr_buf_ptr(&out), mr_buf_len(&out), 0, NULL);
    mr_buf_free(&out);
    assert_non_null(j);
    return j;
}

/* A Messages body the writer made, read by the Anthropic parser: the same
 * answer (written again, the same bytes). */
static void test_messages_answer_round_trip(void **state)
{
    const char *bodies[] = {
        "{\"id\":\"c1\",\"model\":\"x\",\"choices\":[{\"index\":0,\"message\":{\"content\":\"Hi\","
        "\"reasoning_details\":[{\"type\":\"reasoning.text\",\"text\":\"t\",\"signature\":\"s\"},"
        "{\"type\":\"reasoning.encrypted\",\"data\":\"d\"}],\"tool_calls\":[{\"id\":\"call_1\","
        "\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"a\\\":[1,2]}\"}}]},\"finish_reason\":"
        "\"tool_calls\"}],\"usage\":{\"prompt_tokens\":100,\"completion_tokens\":7,"
        "\"prompt_tokens_details\":{\"cached_tokens\":60}}}",
        "{\"id\":\"c2\",\"model\":\"x\",\"choices\":[{\"message\":{\"content\":\"cut\"},"
        "\"finish_reason\":\"length\"}],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":9}}",
    };
    mr_chat_answer_in_t cin = {.model = "m", .kind = "openai"};
    mr_adapter_in_t ain = anthropic_in();
    (void)state;

    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        json_t *root = load(bodies[i]), *first, *second;
        mr_conv_answer_t a, b;
        mr_error_t err;
        char *text;
        assert_int_equal(mr_conv_answer_init(&a, root), 0);
        assert_int_equal(mr_chat_answer_parse(&cin, root, &a, &err), 0);
        first = write_messages(&a);
        text = json_dumps(first, JSON_COMPACT);
        assert_int_equal(mr_conv_answer_init(&b, first), 0);
        assert_int_equal(mr__anthropic_parser.answer(&ain, first, text, strlen(text), &b, &err), 0);
        second = write_messages(&b);
        if (!json_equal(first, second))
            fail_msg("messages round trip differs:\n%s\n---\n%s", text,
                     json_dumps(second, JSON_COMPACT));
        /* and the usage survived Anthropic's split of the input */
        assert_int_equal(b.usage.prompt, a.usage.prompt);
        assert_int_equal(b.usage.cached, a.usage.cached > 0 ? a.usage.cached : b.usage.cached);
        free(text);
        json_decref(first);
        json_decref(second);
        json_decref(root);
        mr_conv_answer_free(&a);
        mr_conv_answer_free(&b);
    }
}

/* A chat.completion the chat writer made, read by chat_answer: the same. */
static void test_chat_answer_round_trip(void **state)
{
    const char *body =
        "{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude\","
        "\"content\":[{\"type\":\"text\",\"text\":\"A\"},{\"type\":\"tool_use\",\"id\":\"toolu_1\","
        "\"name\":\"f\",\"input\":{\"x\":1}}],\"stop_reason\":\"tool_use\",\"usage\":"
        "{\"input_tokens\":5,\"cache_read_input_tokens\":10,\"output_tokens\":2}}";
    mr_chat_answer_in_t cin = {.model = "m", .kind = "openai"};
    mr_adapter_in_t ain = anthropic_in();
    json_t *root = load(body), *first, *second;
    mr_conv_answer_t a, b;
    mr_buf_t o1, o2;
    mr_error_t err;
    (void)state;

    assert_int_equal(mr_conv_answer_init(&a, root), 0);
    assert_int_equal(mr__anthropic_parser.answer(&ain, root, body, strlen(body), &a, &err), 0);
    mr_buf_init(&o1, 1 << 20);
    mr_buf_init(&o2, 1 << 20);
    assert_int_equal(mr_chat_write_answer(&a, 1, &o1), 0);
    first = json_loadb(mr_buf_ptr(&o1), mr_buf_len(&o1), 0, NULL);
    assert_int_equal(mr_conv_answer_init(&b, first), 0);
    assert_int_equal(mr_chat_answer_parse(&cin, first, &b, &err), 0);
    assert_int_equal(b.usage.prompt, 15);
    assert_int_equal(b.usage.cached, 10);
    assert_int_equal(b.choices[0].finish, MR_CONV_FINISH_TOOL_CALLS);
    assert_int_equal(mr_chat_write_answer(&b, 1, &o2), 0);
    second = json_loadb(mr_buf_ptr(&o2), mr_buf_len(&o2), 0, NULL);
    /* the writer prefixes its ids: compare the rest */
    json_object_del(first, "id");
    json_object_del(second, "id");
    assert_true(json_equal(first, second));
    json_decref(first);
    json_decref(second);
    json_decref(root);
    mr_buf_free(&o1);
    mr_buf_free(&o2);
    mr_conv_answer_free(&a);
    mr_conv_answer_free(&b);
}

/* ---------------------------------------------------------------- paths */

static void expect_refusal(parse_fn parse, const char *body, const char *want)
{
    json_t *j = load(body);
    mr_conv_req_t *r;
    mr_error_t err = {0};

    assert_int_equal(parse(j, &r, &err), 0);
    assert_int_equal(mr_conv_check(r, &mr_chat_emit_caps, &err), -1);
    assert_int_equal(err.status, 400);
    if (!strstr(err.message, want))
        fail_msg("\"%s\" does not name %s", err.message, want);
    mr_conv_req_free(r);
    json_decref(j);
}

static void test_paths(void **state)
{
    (void)state;
    /* the client's message and block, not the model's turn and part */
    expect_refusal(mr_messages_parse,
                   "{\"system\":\"s\",\"messages\":[{\"role\":\"user\",\"content\":\"a\"},"
                   "{\"role\":\"assistant\",\"content\":[{\"type\":\"tool_use\",\"id\":\"t1\","
                   "\"name\":\"f\",\"input\":{}}]},{\"role\":\"user\",\"content\":["
                   "{\"type\":\"tool_result\",\"tool_use_id\":\"t1\",\"content\":\"r\"},"
                   "{\"type\":\"text\",\"text\":\"x\"},{\"type\":\"video\"}]}]}",
                   "messages[2].content[2]: video parts cannot be sent to openai");
    /* parts after a call in an assistant turn are judged too */
    expect_refusal(mr_messages_parse,
                   "{\"messages\":[{\"role\":\"user\",\"content\":\"a\"},{\"role\":"
                   "\"assistant\",\"content\":[{\"type\":\"tool_use\",\"id\":\"t\",\"name\":"
                   "\"f\",\"input\":{}},{\"type\":\"image\",\"source\":{\"type\":\"url\","
                   "\"url\":\"https://x.test/a.png\"}}]}]}",
                   "messages[1].content[1]: only text parts are allowed here");
    /* a system message in the conversation is a SYSTEM turn (Claude Code
     * sends them, golden messages-openai/request/system_role); other roles
     * are refused */
    expect_refusal(mr_messages_parse, "{\"messages\":[{\"role\":\"tool\",\"content\":\"x\"}]}",
                   "messages[0]: role \"tool\" cannot be sent to openai");
    expect_refusal(parse_responses,
                   "{\"instructions\":\"i\",\"input\":[{\"role\":\"user\",\"content\":\"a\"},"
                   "{\"type\":\"item_reference\",\"id\":\"msg_1\"}]}",
                   "input[1]: role \"item_reference\" cannot be sent to openai");
    expect_refusal(parse_responses,
                   "{\"input\":[{\"role\":\"user\",\"content\":[{\"type\":\"input_text\",\"text\":"
                   "\"a\"},{\"type\":\"input_file\",\"file_id\":\"file-1\"}]}]}",
                   "input[0].content[1]");
}

/* ---------------------------------------------------------------- errors */

static void assert_buf(const mr_buf_t *b, const char *want)
{
    if (mr_buf_len(b) != strlen(want) || memcmp(mr_buf_ptr(b), want, mr_buf_len(b)) != 0)
        fail_msg("got:\n%.*s\nwant:\n%s", (int)mr_buf_len(b), mr_buf_ptr(b), want);
}

static void test_messages_errors(void **state)
{
    static const struct {
        int status;
        const char *type;
    } map[] = {{400, "invalid_request_error"},
               {401, "authentication_error"},
               {403, "permission_error"},
               {404, "not_found_error"},
               {413, "invalid_request_error"},
               {429, "rate_limit_error"},
               {500, "api_error"},
               {502, "api_error"},
               {503, "overloaded_error"},
               {504, "api_error"},
               {529, "overloaded_error"}};
    mr_error_t e;
    size_t len;
    char *body;
    json_t *j;
    mr_buf_t out;
    (void)state;

    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        assert_string_equal(mr_messages_error_type(map[i].status), map[i].type);
    mr_error_set(&e, 404, NULL, "model_not_found", NULL, "no route named \"x\"");
    body = mr_messages_error_body(&e, &len);
    j = load(body);
    assert_string_equal(json_string_value(json_object_get(j, "type")), "error");
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "error"), "type")),
                        "not_found_error");
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "error"), "message")),
                        "no route named \"x\"");
    assert_int_equal(len, strlen(body));
    json_decref(j);
    free(body);
    /* mid-stream: OpenAI types mapped, Anthropic ones kept */
    mr_buf_init(&out, 1);
    mr_messages_write_error(&out, "service_unavailable_error", "busy");
    mr_messages_write_error(&out, "overloaded_error", "busy");
    mr_messages_write_error(&out, NULL, "?");
    assert_buf(
        &out,
        "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\","
        "\"message\":\"busy\"}}\n\nevent: error\ndata: {\"type\":\"error\",\"error\":{\"type\":"
        "\"overloaded_error\",\"message\":\"busy\"}}\n\nevent: error\ndata: {\"type\":\"error\","
        "\"error\":{\"type\":\"api_error\",\"message\":\"?\"}}\n\n");
    mr_buf_free(&out);
}

/* ---------------------------------------------------------------- message_start */

/* out's bytes as a C string (they are not terminated) */
static const char *text_of(mr_buf_t *out)
{
    static char copy[64 * 1024];

    snprintf(copy, sizeof(copy), "%.*s", (int)mr_buf_len(out), mr_buf_ptr(out));
    return copy;
}

static int ev_send(mr_messages_writer_t *w, mr_conv_event_t ev)
{
    return mr_messages_write_event(w, &ev);
}

static void test_message_start_input(void **state)
{
    mr_conv_usage_t u = MR_CONV_USAGE_UNKNOWN;
    mr_messages_writer_t w;
    mr_buf_t out;
    char *big = malloc(1 << 20);
    (void)state;

    /* no count from the upstream: the caller's estimate, and the real
     * count in message_delta */
    mr_buf_init(&out, 1);
    mr_messages_writer_init(&w, 1234);
    w.out = &out;
    assert_int_equal(ev_send(&w, (mr_conv_event_t){.kind = MR_CONV_EV_START, .id = {"i", 1}}), 0);
    assert_int_equal(mr_buf_len(&out), 0); /* held */
    assert_int_equal(ev_send(&w, (mr_conv_event_t){.kind = MR_CONV_EV_TEXT, .text = {"a", 1}}), 0);
    assert_int_equal(mr_buf_len(&out), 0);
    assert_int_equal(mr_messages_writer_flush(&w), 0);
    assert_non_null(strstr(text_of(&out), "\"usage\":{\"input_tokens\":1234,\"output_tokens\":0}"));
    u.prompt = 50;
    u.completion = 3;
    assert_int_equal(ev_send(&w, (mr_conv_event_t){.kind = MR_CONV_EV_USAGE, .usage = &u}), 0);
    assert_int_equal(ev_send(&w, (mr_conv_event_t){.kind = MR_CONV_EV_FINISH}), 0);
    assert_int_equal(ev_send(&w, (mr_conv_event_t){.kind = MR_CONV_EV_END}), 0);
    assert_non_null(strstr(text_of(&out), "\"usage\":{\"input_tokens\":50,\"output_tokens\":3}"));
    mr_messages_writer_free(&w);
    mr_buf_free(&out);

    /* a count before the first content goes out with message_start at once */
    mr_buf_init(&out, 1);
    mr_messages_writer_init(&w, -1);
    w.out = &out;
    assert_int_equal(ev_send(&w, (mr_conv_event_t){.kind = MR_CONV_EV_START, .id = {"i", 1}}), 0);
    assert_int_equal(ev_send(&w, (mr_conv_event_t){.kind = MR_CONV_EV_TEXT, .text = {"a", 1}}), 0);
    assert_int_equal(ev_send(&w, (mr_conv_event_t){.kind = MR_CONV_EV_USAGE, .usage = &u}), 0);
    assert_non_null(strstr(text_of(&out), "\"input_tokens\":50"));
    /* message_start came before the text it held */
    assert_true(strstr(text_of(&out), "message_start") < strstr(text_of(&out), "text_delta"));
    mr_messages_writer_free(&w);
    mr_buf_free(&out);

    /* the hold is bounded: without a flush, message_start goes out anyway */
    mr_buf_init(&out, 1);
    mr_messages_writer_init(&w, -1);
    w.out = &out;
    memset(big, 'x', 1 << 20);
    assert_int_equal(ev_send(&w, (mr_conv_event_t){.kind = MR_CONV_EV_START, .id = {"i", 1}}), 0);
    for (int i = 0; i < 4 && mr_buf_len(&out) == 0; i++)
        assert_int_equal(
            ev_send(&w, (mr_conv_event_t){.kind = MR_CONV_EV_TEXT, .text = {big, 1 << 20}}), 0);
    assert_true(mr_buf_len(&out) > 0);
    assert_int_equal(strncmp(mr_buf_ptr(&out), "event: message_start", 20), 0);
    mr_messages_writer_free(&w);
    mr_buf_free(&out);
    free(big);
}

/* ---------------------------------------------------------------- chaining */

/* An answer written as a stored response, its history chained into the next
 * request: the reasoning's signature and origin, and a Gemini call's
 * thought signature, come back on the right parts. */
static void test_responses_chain(void **state)
{
    const char *gem =
        "{\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\"plan\","
        "\"thought\":true,\"thoughtSignature\":\"c2lnMQ\"},{\"functionCall\":{\"name\":\"w\","
        "\"args\":{\"c\":\"Oslo\"}},\"thoughtSignature\":\"c2lnMg\"}]},\"finishReason\":\"STOP\"}],"
        "\"modelVersion\":\"gemini-3-pro\",\"responseId\":\"g1\"}";
    static mr_provider_t p = {.name = (char *)"p", .kind = MR_KIND_GEMINI};
    mr_adapter_in_t in = {.provider = &p, .model = "m", .endpoint = MR_EP_CHAT};
    json_t *req = load("{\"model\":\"m\",\"input\":\"Weather in Oslo?\"}"), *entry, *hist;
    json_t *root = load(gem), *next;
    mr_responses_ctx_t ctx = {.id = "resp_1", .request = req, .model = "m", .origin = "gemini"};
    mr_conv_answer_t a;
    mr_conv_req_t *r;
    mr_error_t err;
    mr_buf_t out;
    (void)state;

    assert_int_equal(mr_conv_answer_init(&a, root), 0);
    assert_int_equal(mr__gemini_parser.answer(&in, root, gem, strlen(gem), &a, &err), 0);
    mr_buf_init(&out, 1 << 20);
    assert_int_equal(mr_responses_write_answer(&a, &ctx, NULL, &out, &entry, &err), 0);
    /* the client did not ask for seals: none in its body, all in the store */
    assert_null(strstr(text_of(&out), "encrypted_content"));
    {
        char *stored = json_dumps(json_object_get(entry, "output"), 0);
        assert_non_null(strstr(stored, "encrypted_content"));
        free(stored);
    }
    hist = mr_responses_history(entry);
    assert_int_equal(json_array_size(hist), 4); /* user message, reasoning x2, call */
    /* the follow-up answers the call the stored response made */
    next = json_pack("{s:s, s:s, s:[{s:s, s:O, s:s}]}", "model", "m", "previous_response_id",
                     "resp_1", "input", "type", "function_call_output", "call_id",
                     json_object_get(json_array_get(hist, 3), "call_id"), "output", "5C");
    assert_non_null(next);
    assert_int_equal(mr_responses_parse(next, hist, &r, &err), 0);
    assert_int_equal(r->n_turns, 3); /* user, assistant (reasoning + call), tool */
    assert_int_equal(r->turns[1].role, MR_CONV_ROLE_ASSISTANT);
    assert_int_equal(r->turns[1].n_parts, 2); /* the call's seal makes no part */
    assert_int_equal(r->turns[1].parts[0].kind, MR_CONV_REASONING);
    assert_string_equal(r->turns[1].parts[0].u.reasoning.text.p, "plan");
    assert_string_equal(r->turns[1].parts[0].u.reasoning.signature.p, "c2lnMQ");
    assert_string_equal(r->turns[1].parts[0].u.reasoning.origin.kind.p, "gemini");
    /* the origin is the target as configured (its model "m"), which is
     * where the signature validates: the answer's modelVersion is not */
    assert_string_equal(r->turns[1].parts[0].u.reasoning.origin.model.p, "m");
    assert_int_equal(r->turns[1].parts[1].kind, MR_CONV_TOOL_CALL);
    assert_string_equal(r->turns[1].parts[1].u.call.signature.p, "c2lnMg");
    assert_string_equal(r->turns[2].parts[0].u.result.name.p, "w");
    assert_string_equal(r->previous_response_id.p, "resp_1");
    mr_conv_req_free(r);
    json_decref(next);
    json_decref(hist);
    json_decref(entry);
    json_decref(root);
    json_decref(req);
    mr_buf_free(&out);
    mr_conv_answer_free(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chat_round_trip),
        cmocka_unit_test(test_messages_answer_round_trip),
        cmocka_unit_test(test_chat_answer_round_trip),
        cmocka_unit_test(test_paths),
        cmocka_unit_test(test_messages_errors),
        cmocka_unit_test(test_message_start_input),
        cmocka_unit_test(test_responses_chain),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
