/*
 * Unit tests of the conversation model (conv.h): the OpenAI chat parser,
 * the capability check, the bounds, the chat writer, and the adapters'
 * parse-once cache. The translations themselves are covered by the golden
 * fixtures (test_golden.c), which now all go through this model.
 */
#include "meridian/adapter.h"
#include "meridian/chat_parse.h"
#include "meridian/chat_write.h"
#include "meridian/conv.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static json_t *load(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, JSON_REJECT_DUPLICATES, &e);
    if (!j)
        fail_msg("bad test JSON: %s", e.text);
    return j;
}

static void assert_view(mr_conv_str_t s, const char *want)
{
    assert_non_null(s.p);
    assert_int_equal(s.n, strlen(want));
    assert_memory_equal(s.p, want, s.n);
    assert_int_equal(s.p[s.n], '\0');
}

/* ---------------------------------------------------------------- parser */

static const char full_body[] =
    "{\"model\":\"m\",\"logit_bias\":{},\"prompt_cache_key\":\"k1\",\"metadata\":{\"a\":\"b\"},"
    "\"messages\":["
    "{\"role\":\"system\",\"content\":[{\"type\":\"text\",\"text\":\"be\","
    "\"cache_control\":{\"type\":\"ephemeral\",\"ttl\":\"1h\"}},{\"type\":\"text\",\"text\":\" "
    "brief\"}]},"
    "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"hi\"},"
    "{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:Image/PNG;charset=x;base64,QUJD\"}},"
    "{\"type\":\"image_url\",\"image_url\":\"https://x.test/a.png\"},"
    "{\"type\":\"input_audio\",\"input_audio\":{\"data\":\"AAA\",\"format\":\"wav\"}},"
    "{\"type\":\"file\",\"file\":{\"file_id\":\"f1\"}},{\"type\":\"video\"},{\"text\":\"x\"}]},"
    "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":["
    "{\"id\":\"c1\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"a\\\":"
    "1}\"}},"
    "{\"id\":\"c2\",\"function\":{\"name\":\"g\",\"arguments\":\"[1]\"}}]},"
    "{\"role\":\"tool\",\"tool_call_id\":\"c2\",\"content\":[{\"type\":\"text\",\"text\":\"r\"}]},"
    "{\"role\":\"function\",\"content\":\"x\"},7],"
    "\"temperature\":0.5,\"n\":\"two\",\"max_tokens\":\"x\",\"max_completion_tokens\":1e2,"
    "\"stop\":\"END\",\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"f\"}},"
    "\"tools\":[{\"type\":\"function\",\"cache_control\":{\"type\":\"ephemeral\"},"
    "\"function\":{\"name\":\"f\",\"parameters\":{\"type\":\"object\"}}},{\"type\":\"web\"}],"
    "\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"s\","
    "\"strict\":true,\"schema\":{\"type\":\"object\"}}}}";

static void test_parse_turns(void **state)
{
    json_t *body = load(full_body);
    mr_conv_req_t *r;
    mr_error_t err;
    (void)state;

    assert_int_equal(mr_chat_parse(body, &r, &err), 0);
    json_decref(body); /* the model keeps its own reference */
    assert_int_equal(r->n_turns, 6);

    const mr_conv_turn_t *sys = &r->turns[0];
    assert_int_equal(sys->role, MR_CONV_ROLE_SYSTEM);
    assert_int_equal(sys->n_parts, 2);
    assert_view(sys->parts[0].cache.type, "ephemeral");
    assert_view(sys->parts[0].cache.ttl, "1h");
    assert_null(sys->parts[1].cache.type.p);

    const mr_conv_turn_t *u = &r->turns[1];
    assert_int_equal(u->n_parts, 7);
    assert_int_equal(u->parts[0].kind, MR_CONV_TEXT);
    assert_view(u->parts[0].u.text, "hi");
    assert_int_equal(u->parts[1].kind, MR_CONV_IMAGE);
    assert_int_equal(u->parts[1].u.media.source, MR_CONV_SRC_BASE64);
    assert_view(u->parts[1].u.media.media_type, "image/png");
    assert_view(u->parts[1].u.media.data, "QUJD");
    assert_int_equal(u->parts[2].u.media.source, MR_CONV_SRC_URL);
    assert_view(u->parts[2].u.media.url, "https://x.test/a.png");
    assert_int_equal(u->parts[3].kind, MR_CONV_AUDIO);
    assert_view(u->parts[3].u.media.media_type, "audio/wav");
    assert_int_equal(u->parts[4].kind, MR_CONV_FILE);
    assert_int_equal(u->parts[4].u.media.source, MR_CONV_SRC_MISSING);
    assert_int_equal(u->parts[5].kind, MR_CONV_OTHER);
    assert_view(u->parts[5].u.other.type, "video");
    assert_int_equal(u->parts[6].u.other.flaw, MR_CONV_FLAW_NO_TYPE);

    const mr_conv_turn_t *a = &r->turns[2];
    assert_int_equal(a->role, MR_CONV_ROLE_ASSISTANT);
    assert_false(a->has_content);
    assert_int_equal(a->n_parts, 2);
    assert_int_equal(a->parts[0].kind, MR_CONV_TOOL_CALL);
    assert_view(a->parts[0].u.call.id, "c1");
    assert_true(a->parts[0].u.call.type_ok);
    assert_int_equal(json_integer_value(json_object_get(a->parts[0].u.call.args_json, "a")), 1);
    assert_null(a->parts[1].u.call.args_json); /* "[1]" is not an object */

    /* the tool result knows the function it answers */
    const mr_conv_tool_result_t *res = &r->turns[3].parts[0].u.result;
    assert_view(res->call_id, "c2");
    assert_view(res->name, "g");
    assert_false(res->as_string);
    assert_int_equal(res->n_content, 1);

    assert_int_equal(r->turns[4].role, MR_CONV_ROLE_OTHER);
    assert_view(r->turns[4].role_name, "function");
    assert_null(r->turns[5].role_name.p); /* 7: not an object with a role */
    mr_conv_req_free(r);
}

static void test_parse_parameters(void **state)
{
    json_t *body = load(full_body);
    mr_conv_req_t *r;
    mr_error_t err;
    (void)state;

    assert_int_equal(mr_chat_parse(body, &r, &err), 0);
    assert_int_equal(r->temperature.state, MR_CONV_SET);
    assert_true(r->temperature.v == 0.5);
    assert_int_equal(r->n.state, MR_CONV_BAD); /* judged only where n is read */
    /* max_completion_tokens wins; the bad max_tokens is not looked at */
    assert_int_equal(r->max_output.state, MR_CONV_SET);
    assert_true(r->max_output.v == 100);
    assert_string_equal(r->max_output.param, "max_completion_tokens");
    assert_int_equal(r->n_stop, 1);
    assert_view(r->stop[0], "END");
    assert_int_equal(r->tool_choice.mode, MR_CONV_CHOICE_FUNCTION);
    assert_view(r->tool_choice.name, "f");
    assert_int_equal(r->n_tools, 2);
    assert_true(r->tools[0].type_ok);
    assert_view(r->tools[0].cache.type, "ephemeral");
    assert_false(r->tools[1].type_ok);
    assert_int_equal(r->format.kind, MR_CONV_FORMAT_JSON_SCHEMA);
    assert_view(r->format.name, "s");
    assert_int_equal(r->format.strict, 1);
    assert_true(json_is_object(r->format.schema));
    assert_view(r->prompt_cache_key, "k1");
    assert_true(json_is_object(r->metadata));
    /* what the model does not carry is listed */
    assert_int_equal(r->n_dropped, 1);
    assert_view(r->dropped[0], "logit_bias");
    mr_conv_req_free(r);
    json_decref(body);
}

static void test_parse_refusals(void **state)
{
    static const struct {
        const char *body, *code, *message;
    } cases[] = {
        {"[]", "invalid_type", "the body must be a JSON object"},
        {"{\"messages\":{}}", "invalid_type", "messages must be an array"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":5}]}", "invalid_type",
         "messages[0].content must be a string or an array of parts"},
        {"{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":{}}]}", "invalid_type",
         "messages[0].tool_calls must be an array"},
    };
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *body = load(cases[i].body);
        mr_conv_req_t *r = (mr_conv_req_t *)1;
        mr_error_t err;
        assert_int_equal(mr_chat_parse(body, &r, &err), -1);
        assert_null(r);
        assert_int_equal(err.status, 400);
        assert_string_equal(err.code, cases[i].code);
        assert_string_equal(err.message, cases[i].message);
        json_decref(body);
    }
}

/* ---------------------------------------------------------------- check */

static const mr_conv_caps_t toy = {
    .name = "toy", .n_max = 4, .choices_max = 1, .max_output_limit = 10};

static int check(const char *text, mr_error_t *err)
{
    json_t *body = load(text);
    mr_conv_req_t *r;
    int rc;

    assert_int_equal(mr_chat_parse(body, &r, err), 0);
    rc = mr_conv_check(r, &toy, err);
    mr_conv_req_free(r);
    json_decref(body);
    return rc;
}

static void test_check_names_the_dialect(void **state)
{
    static const struct {
        const char *body, *param, *message;
    } cases[] = {
        {"{\"messages\":[],\"n\":2}", "n", "n > 1 is not supported by toy targets"},
        {"{\"messages\":[],\"n\":5}", NULL, "n must be between 1 and 4"},
        {"{\"messages\":[],\"response_format\":{\"type\":\"json_object\"}}", "response_format",
         "response_format json_object is not supported by toy targets"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"input_audio\"}]}]}",
         "messages", "messages[0].content[0]: input_audio parts cannot be sent to toy"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\","
         "\"image_url\":{\"url\":\"https://x\"}}]}]}",
         "messages", "messages[0].content[0]: toy targets take images only as data: (base64) URLs"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"a\"},7]}", "messages",
         "messages[1] must be an object with a role"},
        {"{\"messages\":[{\"role\":\"function\"}]}", "messages",
         "messages[0]: role \"function\" cannot be sent to toy"},
        {"{\"messages\":[{\"role\":\"tool\",\"tool_call_id\":\"x\",\"content\":[{\"type\":"
         "\"image_url\"}]}]}",
         "messages", "messages[0].content[0]: only text parts are allowed here"},
        {"{\"messages\":[],\"max_tokens\":11}", NULL, "max_tokens must be between 1 and 10"},
        {"{\"messages\":[],\"tools\":[{\"type\":\"web\"}]}", "tools",
         "tools[0]: only function tools with a name can be sent to toy"},
        {"{\"messages\":[],\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}],"
         "\"tool_choice\":\"sometimes\"}",
         "tool_choice", "tool_choice must be auto, none, required or a function"},
    };
    mr_error_t err;
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        memset(&err, 0, sizeof(err));
        if (check(cases[i].body, &err) != -1)
            fail_msg("case %zu accepted: %s", i, cases[i].body);
        assert_int_equal(err.status, 400);
        assert_string_equal(err.message, cases[i].message);
        if (cases[i].param)
            assert_string_equal(err.param, cases[i].param);
        else
            assert_null(err.param);
    }
    /* what the toy dialect does not read is not judged: a bad seed passes,
     * and so does a tool_choice without tools */
    assert_int_equal(check("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
                           "\"seed\":\"x\",\"tool_choice\":5,\"temperature\":1}",
                           &err),
                     0);
}

/* ---------------------------------------------------------------- bounds */

static char *repeat(const char *head, const char *item, size_t n, const char *tail)
{
    size_t hl = strlen(head), il = strlen(item), tl = strlen(tail);
    char *s = malloc(hl + n * (il + 1) + tl + 1), *p = s;

    assert_non_null(s);
    memcpy(p, head, hl);
    p += hl;
    for (size_t i = 0; i < n; i++) {
        if (i)
            *p++ = ',';
        memcpy(p, item, il);
        p += il;
    }
    memcpy(p, tail, tl + 1);
    return s;
}

static void expect_too_large(char *text, const char *param)
{
    json_t *body = load(text);
    mr_conv_req_t *r;
    mr_error_t err;

    assert_int_equal(mr_chat_parse(body, &r, &err), -1);
    assert_int_equal(err.status, 400);
    assert_string_equal(err.code, "conversation_too_large");
    assert_string_equal(err.param, param);
    json_decref(body);
    free(text);
}

static void test_bounds(void **state)
{
    (void)state;
    expect_too_large(repeat("{\"messages\":[", "{}", MR_CONV_MAX_TURNS + 1, "]}"), "messages");
    expect_too_large(repeat("{\"messages\":[],\"tools\":[", "{}", MR_CONV_MAX_TOOLS + 1, "]}"),
                     "tools");
    expect_too_large(repeat("{\"messages\":[{\"role\":\"user\",\"content\":[", "{}",
                            MR_CONV_MAX_PARTS + 1, "]}]}"),
                     "messages");

    /* the arena refuses past MR_CONV_MAX_BYTES, and says so */
    mr_conv_req_t *r = mr_conv_req_new(NULL);
    assert_non_null(r);
    size_t got = 0;
    void *p;
    while ((p = mr_conv_alloc(r->_arena, 1, 1 << 20)))
        got++;
    assert_true(mr_conv_arena_over(r->_arena));
    assert_true(got <= MR_CONV_MAX_BYTES >> 20 && got + 1 >= MR_CONV_MAX_BYTES >> 20);
    assert_null(mr_conv_alloc(r->_arena, (size_t)-1 / 2, 4)); /* no overflow */
    mr_conv_req_free(r);
}

/* ---------------------------------------------------------------- writer */

static int emit(mr_chat_writer_t *w, mr_conv_event_t ev)
{
    return mr_chat_write_event(w, &ev);
}

static void test_writer_events(void **state)
{
    static const char want[] =
        "data: {\"id\":\"chatcmpl-r1\",\"object\":\"chat.completion.chunk\",\"created\":7,"
        "\"model\":\"m1\",\"choices\":[{\"index\":1,\"delta\":{\"role\":\"assistant\","
        "\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n"
        "data: {\"id\":\"chatcmpl-r1\",\"object\":\"chat.completion.chunk\",\"created\":7,"
        "\"model\":\"m1\",\"choices\":[{\"index\":1,\"delta\":{\"reasoning_content\":\"hmm\","
        "\"reasoning_details\":[{\"type\":\"reasoning.text\",\"text\":\"hmm\",\"index\":0,"
        "\"format\":\"anthropic-claude-v1\",\"model\":\"m0\"}]},\"logprobs\":null,"
        "\"finish_reason\":null}]}\n\n"
        "data: {\"id\":\"chatcmpl-r1\",\"object\":\"chat.completion.chunk\",\"created\":7,"
        "\"model\":\"m1\",\"choices\":[{\"index\":1,\"delta\":{\"tool_calls\":[{\"index\":0,"
        "\"id\":\"t\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"\"}}]},"
        "\"logprobs\":null,\"finish_reason\":null}]}\n\n"
        "data: {\"id\":\"chatcmpl-r1\",\"object\":\"chat.completion.chunk\",\"created\":7,"
        "\"model\":\"m1\",\"choices\":[{\"index\":1,\"delta\":{\"tool_calls\":[{\"index\":0,"
        "\"function\":{\"arguments\":\"{}\"}}]},\"logprobs\":null,\"finish_reason\":null}]}\n\n"
        "data: {\"id\":\"chatcmpl-r1\",\"object\":\"chat.completion.chunk\",\"created\":7,"
        "\"model\":\"m1\",\"choices\":[{\"index\":1,\"delta\":{},\"logprobs\":null,"
        "\"finish_reason\":\"tool_calls\"}]}\n\n"
        "data: {\"id\":\"chatcmpl-r1\",\"object\":\"chat.completion.chunk\",\"created\":7,"
        "\"model\":\"m1\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2,"
        "\"total_tokens\":5,\"prompt_tokens_details\":{\"cached_tokens\":1,\"cache_write_tokens\":"
        "4}}}\n\n"
        "data: [DONE]\n\n";
    mr_conv_usage_t u = {3, 2, 1, 4, -1};
    mr_chat_writer_t w;
    mr_buf_t out;
    (void)state;

    mr_buf_init(&out, 16); /* stream output ignores the limit */
    mr_chat_writer_init(&w, 7, 1);
    mr_chat_writer_origin(&w, "anthropic", "m0");
    w.out = &out;
    assert_int_equal(emit(&w, (mr_conv_event_t){.kind = MR_CONV_EV_START,
                                                .choice = 1,
                                                .id = {"r1", 2},
                                                .name = {"m1", 2}}),
                     0);
    /* reasoning: reasoning_content and a reasoning_details item */
    assert_int_equal(
        emit(&w, (mr_conv_event_t){.kind = MR_CONV_EV_REASONING, .choice = 1, .text = {"hmm", 3}}),
        0);
    emit(&w, (mr_conv_event_t){.kind = MR_CONV_EV_TOOL_START,
                               .choice = 1,
                               .id = {"t", 1},
                               .name = {"f", 1},
                               .text = {"", 0}});
    emit(&w, (mr_conv_event_t){.kind = MR_CONV_EV_TOOL_ARGS, .choice = 1, .text = {"{}", 2}});
    emit(&w, (mr_conv_event_t){.kind = MR_CONV_EV_USAGE, .usage = &u});
    emit(&w, (mr_conv_event_t){
                 .kind = MR_CONV_EV_FINISH, .choice = 1, .finish = MR_CONV_FINISH_TOOL_CALLS});
    emit(&w, (mr_conv_event_t){.kind = MR_CONV_EV_END});
    assert_int_equal(mr_buf_len(&out), sizeof(want) - 1);
    assert_memory_equal(mr_buf_ptr(&out), want, sizeof(want) - 1);
    assert_int_equal(w.usage.cache_write, 4);

    mr_buf_reset(&out);
    emit(&w, (mr_conv_event_t){.kind = MR_CONV_EV_ERROR,
                               .err_type = "rate_limit_error",
                               .err_code = "x",
                               .text = {"slow down", 9}});
    static const char error[] = "data: {\"error\":{\"message\":\"slow down\",\"type\":"
                                "\"rate_limit_error\",\"param\":null,\"code\":\"x\"}}\n\n";
    assert_int_equal(mr_buf_len(&out), sizeof(error) - 1);
    assert_memory_equal(mr_buf_ptr(&out), error, sizeof(error) - 1);
    mr_buf_free(&out);
}

static void test_writer_answer(void **state)
{
    static const char want[] =
        "{\"id\":\"chatcmpl-a\",\"object\":\"chat.completion\",\"created\":9,\"model\":\"m\","
        "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":null,"
        "\"tool_calls\":[{\"id\":\"c\",\"type\":\"function\",\"function\":{\"name\":\"f\","
        "\"arguments\":\"{}\"}}],\"refusal\":null},\"logprobs\":null,\"finish_reason\":"
        "\"tool_calls\"},{\"index\":1,\"message\":{\"role\":\"assistant\",\"content\":\"ab\","
        "\"refusal\":null},\"logprobs\":null,\"finish_reason\":\"stop\"}],\"usage\":"
        "{\"prompt_tokens\":0,\"completion_tokens\":4,\"total_tokens\":4,"
        "\"completion_tokens_details\":{\"reasoning_tokens\":2}}}";
    mr_conv_part_t p0[2] = {{.kind = MR_CONV_REASONING},
                            {.kind = MR_CONV_TOOL_CALL,
                             .u.call = {.id = {"c", 1}, .name = {"f", 1}, .args = {"{}", 2}}}};
    mr_conv_part_t p1[2] = {{.kind = MR_CONV_TEXT, .u.text = {"a", 1}},
                            {.kind = MR_CONV_TEXT, .u.text = {"b", 1}}};
    mr_conv_choice_t ch[2] = {{0, p0, 2, MR_CONV_FINISH_TOOL_CALLS}, {1, p1, 2, 0}};
    mr_conv_answer_t a = {.id = {"a", 1},
                          .model = {"m", 1},
                          .choices = ch,
                          .n_choices = 2,
                          .usage = {-1, 4, -1, -1, 2}};
    mr_buf_t out;
    (void)state;

    mr_buf_init(&out, sizeof(want) - 1);
    assert_int_equal(mr_chat_write_answer(&a, 9, &out), 0);
    assert_int_equal(mr_buf_len(&out), sizeof(want) - 1);
    assert_memory_equal(mr_buf_ptr(&out), want, sizeof(want) - 1);
    /* a complete body respects the limit */
    mr_buf_free(&out);
    mr_buf_init(&out, sizeof(want) - 2);
    assert_int_equal(mr_chat_write_answer(&a, 9, &out), -1);
    mr_buf_free(&out);
}

/* ---------------------------------------------------------------- parse once */

static void test_adapter_parses_once(void **state)
{
    mr_provider_t p = {.name = (char *)"g",
                       .kind = MR_KIND_GEMINI,
                       .base_url = (char *)"http://g.test",
                       .api_key = (char *)"k"};
    json_t *good = load("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}");
    json_t *bad = load("{\"model\":\"m\",\"messages\":5}");
    mr_adapter_in_t in = {.provider = &p, .endpoint = MR_EP_CHAT, .model = "m", .json = good};
    mr_adapter_conv_t cache = {0};
    mr_adapter_req_t r1, r2;
    mr_error_t err;
    (void)state;

    /* a passthrough adapter never parses */
    assert_int_equal(mr_adapter_conv(&mr_adapter_openai, &cache, &in, &err), 0);
    assert_null(in.conv);
    assert_false(cache.tried);
    /* the first translating attempt parses, the next reuse it */
    assert_int_equal(mr_adapter_conv(&mr_adapter_gemini, &cache, &in, &err), 0);
    const mr_conv_req_t *first = in.conv;
    assert_non_null(first);
    in.conv = NULL;
    assert_int_equal(mr_adapter_conv(&mr_adapter_anthropic, &cache, &in, &err), 0);
    assert_ptr_equal(in.conv, first);
    /* the same body as an adapter that parses for itself */
    assert_int_equal(mr_adapter_gemini.build(&in, &r1, &err), 0);
    in.conv = NULL;
    assert_int_equal(mr_adapter_gemini.build(&in, &r2, &err), 0);
    assert_int_equal(r1.body_len, r2.body_len);
    assert_memory_equal(r1.body, r2.body, r1.body_len);
    mr_adapter_req_free(&r1);
    mr_adapter_req_free(&r2);
    mr_adapter_conv_free(&cache);

    /* a body that is no conversation fails every translating attempt alike */
    in.json = bad;
    for (int i = 0; i < 2; i++) {
        memset(&err, 0, sizeof(err));
        assert_int_equal(mr_adapter_conv(&mr_adapter_anthropic, &cache, &in, &err), -1);
        assert_int_equal(err.status, 400);
        assert_string_equal(err.message, "messages must be an array");
    }
    /* other endpoints do not use the model */
    mr_adapter_conv_free(&cache);
    in.endpoint = MR_EP_EMBEDDINGS;
    in.conv = NULL;
    assert_int_equal(mr_adapter_conv(&mr_adapter_gemini, &cache, &in, &err), 0);
    assert_null(in.conv);
    json_decref(good);
    json_decref(bad);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_turns),    cmocka_unit_test(test_parse_parameters),
        cmocka_unit_test(test_parse_refusals), cmocka_unit_test(test_check_names_the_dialect),
        cmocka_unit_test(test_bounds),         cmocka_unit_test(test_writer_events),
        cmocka_unit_test(test_writer_answer),  cmocka_unit_test(test_adapter_parses_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
