/*
 * libFuzzer target: the Responses event writer (responses_write.h), and the
 * Messages one (messages_write.h) on the same events, from arbitrary
 * sequences of conversation events as a target's stream parser sends them.
 *
 * Input: events of [kind, arg, length, length bytes of text]; kind % 10
 * picks the event (START, TEXT, REASONING, SIGNATURE, TOOL_START,
 * TOOL_ARGS, USAGE, FINISH, END, ERROR), arg its choice (arg & 1), tool
 * index (arg >> 1 & 3), finish reason and error type. As the parsers do,
 * nothing follows END or ERROR; a sequence that stops before them ends
 * with the gateway's own failure (mr_responses_write_failed). At most
 * MAX_EVENTS events are read.
 *
 * Invariants: every output is "event: X\ndata: <JSON object>\n\n" events
 * whose type is X; Responses events are numbered 0, 1, 2... and end with
 * exactly one of response.completed / incomplete / failed, last; Messages
 * streams end with message_stop or an error event once the events ended;
 * on_final ran once, before the terminal event; output is bounded by the
 * input.
 */
#include "meridian/messages_write.h"
#include "meridian/responses_write.h"

#define FUZZ_KIND MR_KIND_OPENAI
#include "fuzz_common.h"

#define MAX_EVENTS 256 /* per input: a run stays fast */

static const mr_conv_event_kind_t kinds[] = {
    MR_CONV_EV_START,      MR_CONV_EV_TEXT,      MR_CONV_EV_REASONING, MR_CONV_EV_SIGNATURE,
    MR_CONV_EV_TOOL_START, MR_CONV_EV_TOOL_ARGS, MR_CONV_EV_USAGE,     MR_CONV_EV_FINISH,
    MR_CONV_EV_END,        MR_CONV_EV_ERROR};
static const char *const err_types[] = {"rate_limit_error", "service_unavailable_error",
                                        "overloaded_error", "api_error"};

/* The events of the output, checked; returns the last event's type. */
static void events_ok(const char *p, size_t n, int numbered, char *last, size_t cap)
{
    const char *end = p + n;
    long seq = 0;

    last[0] = '\0';
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p)), *sep;
        json_t *d;
        FUZZ_CHECK(nl && (size_t)(end - p) > 7 && memcmp(p, "event: ", 7) == 0, "not an event");
        sep = memmem(nl, (size_t)(end - nl), "\n\n", 2);
        FUZZ_CHECK(sep && (size_t)(end - nl) > 7 && memcmp(nl + 1, "data: ", 6) == 0, "no data");
        d = json_loadb(nl + 7, (size_t)(sep - nl - 7), JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL,
                       NULL);
        FUZZ_CHECK(json_is_object(d), "data is not a JSON object");
        FUZZ_CHECK(json_string_length(json_object_get(d, "type")) == (size_t)(nl - p - 7) &&
                       memcmp(json_string_value(json_object_get(d, "type")), p + 7,
                              (size_t)(nl - p - 7)) == 0,
                   "event name is not the type");
        FUZZ_CHECK(!numbered || json_integer_value(json_object_get(d, "sequence_number")) == seq++,
                   "sequence_number");
        snprintf(last, cap, "%s", json_string_value(json_object_get(d, "type")));
        json_decref(d);
        p = sep + 2;
    }
}

static int utf8(mr_conv_str_t s)
{
    json_t *j = json_stringn(s.p, s.n);

    json_decref(j);
    return j != NULL;
}

typedef struct final {
    int calls;
    size_t at;
    mr_buf_t *out;
} final_t;

static void on_final(void *arg, const json_t *response, const json_t *sealed)
{
    final_t *f = arg;

    FUZZ_CHECK(json_is_object(response) && json_is_array(sealed), "on_final");
    f->calls++;
    f->at = mr_buf_len(f->out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *req = json_pack("{s:s, s:[s]}", "model", "m", "include", "reasoning.encrypted_content");
    mr_responses_ctx_t ctx = {
        .id = "resp_f", .created_at = 1, .request = req, .model = "m", .origin = "fuzz"};
    mr_responses_writer_t rw;
    mr_messages_writer_t mw;
    mr_buf_t ro, mo;
    final_t fin = {.out = &ro};
    mr_conv_usage_t usage = MR_CONV_USAGE_UNKNOWN;
    size_t i = 0, events = 0;
    int ended = 0;
    char last[64];

    mr_buf_init(&ro, 1);
    mr_buf_init(&mo, 1);
    FUZZ_CHECK(mr_responses_writer_init(&rw, &ctx) == 0, "init");
    mr_messages_writer_init(&mw, -1);
    rw.out = &ro;
    rw.on_final = on_final;
    rw.on_final_arg = &fin;
    mw.out = &mo;
    while (i + 3 <= size && !ended && events < MAX_EVENTS) {
        unsigned char kind = data[i] % 10, arg = data[i + 1];
        size_t len = data[i + 2] < size - i - 3 ? data[i + 2] : size - i - 3;
        mr_conv_str_t text = {(const char *)data + i + 3, len};
        mr_conv_event_t ev = {.kind = kinds[kind], .choice = arg & 1, .index = (arg >> 1) & 3};
        i += 3 + len;
        events++;
        if (ev.kind == MR_CONV_EV_START || ev.kind == MR_CONV_EV_TOOL_START) {
            ev.id = text;
            ev.name = text;
        } else if (ev.kind == MR_CONV_EV_USAGE) {
            usage.prompt = len ? (long)data[i - len] * 100 : -1;
            usage.completion = (long)arg;
            usage.cached = len > 1 ? (long)data[i - len + 1] : -1;
            ev.usage = &usage;
        } else if (ev.kind == MR_CONV_EV_FINISH) {
            ev.finish = (mr_conv_finish_t)(arg % 5);
        } else if (ev.kind == MR_CONV_EV_ERROR) {
            ev.err_type = err_types[arg % 4];
            ev.err_code = err_types[(arg >> 2) % 4];
        }
        ev.text = ev.kind == MR_CONV_EV_START ? (mr_conv_str_t){0} : text;
        /* the parsers send ids, names and text that are JSON strings (UTF-8) */
        if (text.n && !utf8(text))
            continue;
        mr_responses_write_event(&rw, &ev);
        mr_messages_write_event(&mw, &ev);
        if (arg & 0x80)
            mr_messages_writer_flush(&mw);
        ended = ev.kind == MR_CONV_EV_END || ev.kind == MR_CONV_EV_ERROR;
    }
    if (!ended)
        mr_responses_write_failed(&rw, "server_error", "the upstream went away");
    events_ok(mr_buf_ptr(&ro), mr_buf_len(&ro), 1, last, sizeof(last));
    FUZZ_CHECK(strcmp(last, "response.completed") == 0 ||
                   strcmp(last, "response.incomplete") == 0 || strcmp(last, "response.failed") == 0,
               "the Responses stream ends with %s", last);
    FUZZ_CHECK(fin.calls == 1 && fin.at < mr_buf_len(&ro), "on_final %d", fin.calls);
    FUZZ_CHECK(mr_buf_len(&ro) <= 8192 * (events + 2) + 16 * size, "%zu bytes", mr_buf_len(&ro));
    events_ok(mr_buf_ptr(&mo), mr_buf_len(&mo), 0, last, sizeof(last));
    FUZZ_CHECK(!ended || mr_messages_writer_failed(&mw) || strcmp(last, "message_stop") == 0 ||
                   strcmp(last, "error") == 0,
               "the Messages stream ends with %s", last);
    mr_responses_writer_free(&rw);
    mr_messages_writer_free(&mw);
    mr_buf_free(&ro);
    mr_buf_free(&mo);
    json_decref(req);
    return 0;
}
