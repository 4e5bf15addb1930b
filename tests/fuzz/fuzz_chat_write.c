/*
 * libFuzzer target: the OpenAI chat writer (chat_write.h), from sequences of
 * conversation events as a dialect's stream parser sends them, and from the
 * answer the same events describe.
 *
 * Input: one event per line, "<kind><choice><n><fields>" where kind is one
 * of S (start: id TAB model), T (text), R (reasoning), G (signature),
 * D (opaque reasoning data), C (tool call start n: id TAB name TAB
 * arguments; with n & 4 the id is also its signature), A (arguments of call n),
 * U (usage: five numbers), F (finish reason n), E (end), X (error: type TAB
 * code TAB message); choice and n are one digit each. As the parsers do,
 * nothing follows E or X.
 *
 * Invariants: every output is "data: <JSON object>\n\n" events with at most
 * a final "data: [DONE]\n\n" (only after E), bounded by the input; the
 * answer is one JSON object, or the writer refuses it.
 */
#include "meridian/chat_write.h"

#define FUZZ_KIND MR_KIND_ANTHROPIC
#include "fuzz_common.h"

#define MAX_EVENTS 256

typedef struct line {
    char kind;
    long choice;
    int n;
    mr_conv_str_t f[3]; /* fields, NUL-terminated copies */
} line_t;

/* Splits p[0, len) at tabs into up to three NUL-terminated fields. */
static void fields(char *p, size_t len, mr_conv_str_t *f)
{
    for (int i = 0; i < 3; i++) {
        char *tab = i < 2 ? memchr(p, '\t', len) : NULL;
        size_t n = tab ? (size_t)(tab - p) : len;
        f[i] = (mr_conv_str_t){p, n};
        if (!tab) {
            for (int k = i + 1; k < 3; k++)
                f[k] = (mr_conv_str_t){"", 0};
            p[n] = '\0';
            return;
        }
        *tab = '\0';
        p = tab + 1;
        len -= n + 1;
    }
}

static size_t parse_lines(char *text, size_t size, line_t *lines)
{
    size_t n = 0;
    char *p = text, *end = text + size;

    while (p < end && n < MAX_EVENTS) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (len >= 3) {
            line_t *l = &lines[n++];
            l->kind = p[0];
            l->choice = (unsigned char)p[1] % 8;
            l->n = (unsigned char)p[2] % 8;
            fields(p + 3, len - 3, l->f);
        }
        p += len + 1;
    }
    return n;
}

static mr_conv_event_t event_of(const line_t *l, mr_conv_usage_t *u)
{
    mr_conv_event_t ev = {.choice = l->choice, .index = l->n};
    static const mr_conv_event_kind_t kinds[] = {
        ['S'] = MR_CONV_EV_START,         ['T'] = MR_CONV_EV_TEXT,
        ['R'] = MR_CONV_EV_REASONING,     ['G'] = MR_CONV_EV_SIGNATURE,
        ['C'] = MR_CONV_EV_TOOL_START,    ['A'] = MR_CONV_EV_TOOL_ARGS,
        ['U'] = MR_CONV_EV_USAGE,         ['F'] = MR_CONV_EV_FINISH,
        ['E'] = MR_CONV_EV_END,           ['X'] = MR_CONV_EV_ERROR,
        ['D'] = MR_CONV_EV_REASONING_DATA};

    ev.kind = kinds[(unsigned char)l->kind];
    switch (l->kind) {
    case 'S':
        ev.id = l->f[0];
        ev.name = l->f[1];
        break;
    case 'C':
        ev.id = l->f[0];
        ev.name = l->f[1];
        ev.text = l->f[2];
        if (l->n & 4)
            ev.signature = l->f[0];
        break;
    case 'U':
        sscanf(l->f[0].p, "%ld %ld %ld %ld %ld", &u->prompt, &u->completion, &u->cached,
               &u->cache_write, &u->reasoning);
        ev.usage = u;
        break;
    case 'F':
        ev.finish = (mr_conv_finish_t)(l->n % 5);
        break;
    case 'X':
        ev.err_type = l->f[0].p;
        ev.err_code = l->f[1].p;
        ev.text = l->f[2];
        break;
    default:
        ev.text = l->f[0];
    }
    return ev;
}

static int known(char k)
{
    return k && strchr("STRGDCAUFEX", k) != NULL;
}

/* The answer the same lines describe: texts, reasonings and calls per choice. */
static void check_answer(const line_t *lines, size_t n, size_t size)
{
    mr_conv_answer_t a;
    mr_buf_t out;

    FUZZ_CHECK(mr_conv_answer_init(&a, NULL) == 0, "answer init");
    a.choices = mr_conv_alloc(a._arena, 8, sizeof(*a.choices));
    FUZZ_CHECK(a.choices, "alloc");
    a.n_choices = 8;
    for (size_t c = 0; c < 8; c++) {
        a.choices[c].index = (long)c;
        a.choices[c].parts = mr_conv_alloc(a._arena, n + 1, sizeof(mr_conv_part_t));
        FUZZ_CHECK(a.choices[c].parts, "alloc");
    }
    for (size_t i = 0; i < n; i++) {
        mr_conv_choice_t *ch = &a.choices[lines[i].choice];
        mr_conv_part_t *p = &ch->parts[ch->n_parts];
        if (lines[i].kind == 'T') {
            p->kind = MR_CONV_TEXT;
            p->u.text = lines[i].f[0];
            ch->n_parts++;
        } else if (lines[i].kind == 'R' || lines[i].kind == 'D') {
            p->kind = MR_CONV_REASONING;
            *(lines[i].kind == 'R' ? &p->u.reasoning.text : &p->u.reasoning.data) = lines[i].f[0];
            p->u.reasoning.signature = lines[i].n & 4 ? lines[i].f[1] : (mr_conv_str_t){NULL, 0};
            p->u.reasoning.origin.kind = (mr_conv_str_t){"gemini", 6};
            ch->n_parts++;
        } else if (lines[i].kind == 'C') {
            p->kind = MR_CONV_TOOL_CALL;
            p->u.call.id = lines[i].f[0];
            p->u.call.name = lines[i].f[1];
            p->u.call.args = lines[i].f[2];
            if (lines[i].n & 4)
                p->u.call.signature = lines[i].f[0];
            ch->n_parts++;
        } else if (lines[i].kind == 'F') {
            ch->finish = (mr_conv_finish_t)(lines[i].n % 5);
        } else if (lines[i].kind == 'S') {
            a.id = lines[i].f[0];
            a.model = lines[i].f[1];
        }
    }
    mr_buf_init(&out, 16 * size + 65536);
    if (mr_chat_write_answer(&a, 1700000000, &out) == 0)
        FUZZ_CHECK(fuzz_is_json(mr_buf_ptr(&out), mr_buf_len(&out)), "answer is not JSON");
    mr_buf_free(&out);
    mr_conv_answer_free(&a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static line_t lines[MAX_EVENTS];
    char *text = malloc(size + 1);
    mr_conv_usage_t usage = MR_CONV_USAGE_UNKNOWN;
    mr_chat_writer_t w;
    mr_buf_t out;
    size_t n, sent = 0;

    FUZZ_CHECK(text, "malloc");
    memcpy(text, data, size);
    text[size] = '\0';
    n = parse_lines(text, size, lines);
    mr_buf_init(&out, 1);
    mr_chat_writer_init(&w, 1700000000, (int)(fuzz_hash(data, size) & 1));
    mr_chat_writer_origin(&w, fuzz_hash(data, size) & 2 ? "anthropic" : "gemini", text);
    w.out = &out;
    for (size_t i = 0; i < n; i++) {
        mr_conv_event_t ev;
        if (!known(lines[i].kind))
            continue;
        ev = event_of(&lines[i], &usage);
        sent++;
        mr_chat_write_event(&w, &ev);
        if (lines[i].kind == 'E' || lines[i].kind == 'X')
            break; /* the parsers' contract: nothing follows */
    }
    fuzz_check_sse(mr_buf_ptr(&out), mr_buf_len(&out));
    FUZZ_CHECK(mr_buf_len(&out) <= 1024 * (sent + 1) + 16 * size, "%zu bytes out of %zu events",
               mr_buf_len(&out), sent);
    mr_buf_free(&out);
    check_answer(lines, n, size);
    free(text);
    return 0;
}
