/*
 * Two-turn conversations through a translating dialect, as a client lives
 * them: the first request goes upstream, the upstream's answer comes back
 * translated, the client appends that assistant message as it got it (a
 * stream rebuilt the way the SDKs merge chunks) plus its next messages, and
 * the second upstream request must carry what the first answer produced —
 * Anthropic thinking blocks with their signatures before the tool call,
 * Gemini thought signatures on the function call.
 *
 * tests/golden/<dialect>/conversation/<case>/:
 *   turn1.req.json           the first client request
 *   turn1.answer.json|.sse   the upstream's answer to it (complete or streamed)
 *   turn2.tail.json          messages the client sends after the answer
 *   turn2.out.json           the second upstream body expected
 *   turn.target              optional: the target's model
 *   turn2.dropped            optional: signatures the second build leaves out
 * A streamed answer is also fed one byte at a time: the second request must
 * not change. MERIDIAN_GOLDEN_UPDATE=1 rewrites turn2.out.json.
 */
#include "golden_util.h"

#include <sys/stat.h>

/* Appends a delta string member to the accumulated one. */
static void concat(json_t *into, const char *key, const json_t *piece)
{
    const char *old = json_string_value(json_object_get(into, key));
    char *joined = NULL;

    if (!json_is_string(piece))
        return;
    assert_true(asprintf(&joined, "%s%s", old ? old : "", json_string_value(piece)) >= 0);
    json_object_set_new(into, key, json_string(joined));
    free(joined);
}

/* The item of `arr` whose "index" is `index`, created when missing. */
static json_t *by_index(json_t *arr, json_int_t index)
{
    size_t i;
    json_t *it;

    json_array_foreach(arr, i, it)
    {
        if (json_integer_value(json_object_get(it, "index")) == index)
            return it;
    }
    it = json_pack("{s:I}", "index", index);
    json_array_append_new(arr, it);
    return it;
}

/* One delta into the message being rebuilt: strings concatenated, tool
 * calls and reasoning details merged by index, other members set. */
static void merge_delta(json_t *msg, const json_t *delta)
{
    const char *k;
    json_t *v, *item;
    size_t i;

    concat(msg, "content", json_object_get(delta, "content"));
    concat(msg, "reasoning_content", json_object_get(delta, "reasoning_content"));
    json_array_foreach(json_object_get(delta, "reasoning_details"), i, item)
    {
        json_t *d = by_index(json_object_get(msg, "reasoning_details"),
                             json_integer_value(json_object_get(item, "index")));
        json_object_foreach(item, k, v)
        {
            if (!strcmp(k, "text"))
                concat(d, k, v);
            else
                json_object_set(d, k, v);
        }
    }
    json_array_foreach(json_object_get(delta, "tool_calls"), i, item)
    {
        json_t *c = by_index(json_object_get(msg, "tool_calls"),
                             json_integer_value(json_object_get(item, "index")));
        json_t *fn = json_object_get(c, "function");
        if (!fn)
            json_object_set_new(c, "function", fn = json_object());
        json_object_foreach(item, k, v)
        {
            if (!strcmp(k, "function")) {
                if (json_object_get(v, "name"))
                    json_object_set(fn, "name", json_object_get(v, "name"));
                concat(fn, "arguments", json_object_get(v, "arguments"));
            } else if (strcmp(k, "index") != 0) {
                json_object_set(c, k, v);
            }
        }
    }
}

/* The assistant message an SDK rebuilds from a chat.completion.chunk stream. */
static json_t *message_of_stream(const char *p, size_t n)
{
    json_t *events = events_of(p, n, "turn 1 stream"), *ev;
    json_t *msg =
        json_pack("{s:s, s:[], s:[]}", "role", "assistant", "reasoning_details", "tool_calls");
    size_t i;

    json_array_foreach(events, i, ev)
    {
        if (json_is_string(ev))
            continue;
        if (json_object_get(ev, "error"))
            fail_msg("turn 1 stream ended in an error: %s",
                     json_dumps(ev, JSON_COMPACT | JSON_ENCODE_ANY));
        merge_delta(msg,
                    json_object_get(json_array_get(json_object_get(ev, "choices"), 0), "delta"));
    }
    json_decref(events);
    /* drop the merge's index members from calls, as SDKs do */
    json_array_foreach(json_object_get(msg, "tool_calls"), i, ev)
    {
        json_object_del(ev, "index");
    }
    if (!json_array_size(json_object_get(msg, "tool_calls")))
        json_object_del(msg, "tool_calls");
    if (!json_array_size(json_object_get(msg, "reasoning_details")))
        json_object_del(msg, "reasoning_details");
    if (!json_object_get(msg, "content"))
        json_object_set_new(msg, "content", json_null());
    return msg;
}

/* The first answer, translated, as the message the client keeps. */
static json_t *turn1_message(const dialect_t *d, const mr_adapter_in_t *in, const char *dir,
                             size_t byte_at_a_time)
{
    char path[600];
    size_t len;
    char *body;
    json_t *msg;

    snprintf(path, sizeof(path), "%s/turn1.answer.json", dir);
    if ((body = read_file(path, &len))) {
        mr_buf_t out;
        mr_usage_t u;
        mr_error_t e;
        mr_buf_init(&out, OUT_LIMIT);
        if (d->ad->translate(in, body, len, &out, &u, &e) != 0)
            fail_msg("%s: turn 1 translate failed: %s", dir, e.message);
        json_t *ans = json_loadb(mr_buf_ptr(&out), mr_buf_len(&out), 0, NULL);
        msg = json_incref(
            json_object_get(json_array_get(json_object_get(ans, "choices"), 0), "message"));
        json_decref(ans);
        mr_buf_free(&out);
        free(body);
        return msg;
    }
    snprintf(path, sizeof(path), "%s/turn1.answer.sse", dir);
    body = read_file(path, &len);
    if (!body)
        fail_msg("%s: no turn1.answer.json or .sse", dir);
    mr_stream_xlate_t *x = d->ad->stream_new(in);
    mr_buf_t out;
    mr_buf_init(&out, OUT_LIMIT);
    size_t step = byte_at_a_time ? 1 : len;
    for (size_t at = 0; at < len; at += step)
        assert_int_equal(d->ad->stream_feed(x, body + at, len - at < step ? len - at : step, &out),
                         0);
    assert_int_equal(d->ad->stream_end(x, &out), 0);
    d->ad->stream_free(x);
    msg = message_of_stream(mr_buf_ptr(&out), mr_buf_len(&out));
    mr_buf_free(&out);
    free(body);
    return msg;
}

/* Builds a client body's upstream request; returns the body as JSON. */
static json_t *build(const dialect_t *d, const json_t *client, const char *model, const char *what,
                     unsigned *dropped)
{
    char *raw = json_dumps(client, JSON_COMPACT);
    mr_adapter_in_t in;
    mr_adapter_req_t req;
    mr_error_t err;
    json_t *body;

    make_in(&in, d, "chat", client, raw, strlen(raw));
    in.model = model;
    if (d->ad->build(&in, &req, &err) != 0)
        fail_msg("%s: build failed: %d %s", what, err.status, err.message);
    body = json_loadb(req.body, req.body_len, 0, NULL);
    *dropped = req.signatures_dropped;
    free_req(&req);
    free(raw);
    return body;
}

static void run_case(const dialect_t *d, const char *dir, size_t byte_at_a_time)
{
    char path[600], *raw;
    json_t *req1, *tail, *msgs, *got, *want;
    mr_adapter_in_t in;
    unsigned dropped;

    snprintf(path, sizeof(path), "%s/turn1.req.json", dir);
    req1 = load_json(path);
    snprintf(path, sizeof(path), "%s/turn2.tail.json", dir);
    tail = load_json(path);
    const char *model = case_target(dir, "turn");
    json_decref(build(d, req1, model, "turn 1", &dropped));

    raw = json_dumps(req1, JSON_COMPACT);
    make_in(&in, d, "chat", req1, raw, strlen(raw));
    in.model = model;
    json_t *msg = turn1_message(d, &in, dir, byte_at_a_time);
    free(raw);

    json_t *req2 = json_deep_copy(req1);
    msgs = json_object_get(req2, "messages");
    json_array_append_new(msgs, msg);
    json_array_extend(msgs, tail);
    json_object_del(req2, "stream");
    got = build(d, req2, model, "turn 2", &dropped);
    snprintf(path, sizeof(path), "%s/turn2.out.json", dir);
    if (update_mode() && !byte_at_a_time)
        write_json(path, got);
    want = load_json(path);
    if (!json_equal(got, want))
        fail_msg("%s%s: turn 2 upstream body differs; got:\n%s", dir,
                 byte_at_a_time ? " (stream fed byte by byte)" : "",
                 json_dumps(got, JSON_INDENT(2) | JSON_PRESERVE_ORDER));
    snprintf(path, sizeof(path), "%s/turn2.dropped", dir);
    char *want_dropped = read_file(path, NULL);
    if ((unsigned)(want_dropped ? atoi(want_dropped) : 0) != dropped)
        fail_msg("%s: turn 2 dropped %u signatures, expected %s", dir, dropped,
                 want_dropped ? want_dropped : "0");
    free(want_dropped);
    json_decref(want);
    json_decref(got);
    json_decref(req2);
    json_decref(tail);
    json_decref(req1);
}

static void run_conversations(const char *dname)
{
    dialect_t *d = dialect(dname);
    char dir[512], sub[800];
    DIR *dh;
    struct dirent *e;
    size_t n = 0;

    snprintf(dir, sizeof(dir), "%s/%s/conversation", GOLDEN_DIR, dname);
    assert_non_null(dh = opendir(dir));
    while ((e = readdir(dh))) {
        struct stat st;
        if (e->d_name[0] == '.')
            continue;
        snprintf(sub, sizeof(sub), "%s/%s", dir, e->d_name);
        if (stat(sub, &st) != 0 || !S_ISDIR(st.st_mode))
            continue;
        run_case(d, sub, 0);
        run_case(d, sub, 1);
        n++;
    }
    closedir(dh);
    if (n == 0)
        fail_msg("no conversations in %s", dir);
    free(d);
}

static void test_anthropic_conversations(void **state)
{
    (void)state;
    run_conversations("anthropic");
}

static void test_gemini_conversations(void **state)
{
    (void)state;
    run_conversations("gemini");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_anthropic_conversations),
        cmocka_unit_test(test_gemini_conversations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
