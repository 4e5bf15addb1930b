/*
 * mock_upstream — a small OpenAI-compatible upstream with fault injection,
 * used by Meridian's integration tests.
 *
 *   mock_upstream [--port N] [--name NAME]
 *
 * Binds 127.0.0.1 only (port 0 = ephemeral), prints exactly
 * "listening on 127.0.0.1:PORT\n" on stdout once it accepts connections, and
 * runs until SIGTERM/SIGINT, then stops and exits 0.
 *
 * OpenAI endpoints are matched by path suffix, so any base path works:
 *   POST .../chat/completions   chat, streamed when the body has "stream":true
 *   POST .../completions        legacy text completions (same streaming rule)
 *   POST .../embeddings
 *   GET  .../models
 *   POST .../responses          OpenAI Responses (native): a response object
 *                               (id "resp_mock_NAME_" + a hash of the request
 *                               body, one message "Hello from
 *                               NAME"), or the typed SSE events with
 *                               sequence_number (response.created ...
 *                               output_text.delta x chunks ...
 *                               response.completed) when "stream"; a streamed
 *                               error (error_after_chunks) is an "error" event
 * Azure OpenAI: the same endpoints under /openai/deployments/{d}/..., which
 * also require an api-version query argument (else 404) and an api-key
 * header (else 401).
 * Anthropic Messages (x-api-key and anthropic-version required, else 401/400;
 * max_tokens and messages required, else 400):
 *   POST .../messages/count_tokens  {"input_tokens": body bytes / 10}
 *   POST .../messages           a message, or the real SSE event sequence
 *                               (message_start, content_block_start, ping,
 *                               content_block_delta..., content_block_stop,
 *                               message_delta, message_stop) when "stream"
 * Google Gemini (x-goog-api-key required, else 403; contents required):
 *   POST .../models/{m}:generateContent
 *   POST .../models/{m}:streamGenerateContent?alt=sse   SSE of
 *                               GenerateContentResponse (a JSON array without
 *                               alt=sse, as Google does)
 *   POST .../models/{m}:embedContent, :batchEmbedContents
 * Reasoning and caching, deterministically: an Anthropic request with an
 * enabled "thinking" gets a thinking block first (text "Mock thinking about
 * it.", signature "mock-sig-NAME"; streamed as thinking and signature
 * deltas); an Anthropic request that contains "cache_control" reports
 * cache_read_input_tokens 1000 and cache_creation_input_tokens 200 besides
 * input_tokens 5. Gemini function calls carry thoughtSignature
 * "mock-sig-NAME" (as Gemini 3 does).
 * Tools, deterministically: when an Anthropic/Gemini request declares tools
 * and its last turn is not a tool result, the answer calls the first tool
 * (after a short text) with arguments made from its schema (string
 * properties "mock", numbers 1, booleans true); streamed, those arguments
 * arrive split over several deltas (Anthropic) or whole (Gemini). When the
 * last turn carries tool results, the text quotes the first one: "Hello from
 * NAME (tool result: ...)". OpenAI-dialect answers call tools only with
 * the call_tools scenario.
 * Errors (scenario status) and streamed errors come in each dialect's shape.
 * Bodies are deterministic (no counters, no clocks): the same request always
 * gets the same bytes.
 *
 * Control endpoints (never recorded, never affected by scenarios):
 *   POST /_mock/scenario  JSON object, keys (all optional):
 *        status (200)            HTTP status; != 200 gives an OpenAI-shaped error
 *        retry_after (none)      string or integer, sent as Retry-After
 *        headers_delay_ms (0)    wait before sending the response head
 *        chunk_delay_ms (0)      wait before each SSE event after the first
 *        chunks (5)              number of content chunks in a stream
 *        fault ("none")          none | reset_before_headers | reset_mid_body |
 *                                garbage | stall
 *        reset_after_chunks (1)  events sent before a streamed reset_mid_body
 *        error_after_chunks (-1) streams only: after this many content chunks
 *                                send the dialect's error event (Anthropic
 *                                "event: error" overloaded_error, Gemini
 *                                {"error":{...UNAVAILABLE}}, OpenAI
 *                                {"error":{...}}) and end the stream cleanly
 *        stream_bytes (0)        OpenAI/Azure chat and completions streams
 *                                only, 0..64 MiB: instead of `chunks`, about
 *                                this many bytes of ordinary content chunk
 *                                events (~200 bytes each), generated as the
 *                                socket takes them (nothing is built ahead),
 *                                then the final chunk, usage when asked and
 *                                [DONE]; chunk_delay_ms still applies between
 *                                events (backpressure and slow-client tests).
 *                                A non-streamed chat answer with it is one
 *                                chat.completion whose content is this many
 *                                bytes, generated as the socket takes them,
 *                                with its Content-Length (large answers;
 *                                reset_mid_body cuts it at half)
 *        count (none)            apply to the next N requests only (FIFO queue);
 *                                without it, replace the persistent default
 *        headers ({})            extra response headers {"name":"value"}
 *        body (none)             literal response body (with "status")
 *        body_base64 (none)      the same given as base64, for bytes that are not
 *                                UTF-8 (a JSON string cannot carry them)
 *        content_type            Content-Type of "body" (application/json)
 *        close_after_events (-1) streams only: send this many SSE events,
 *                                then end the response cleanly with
 *                                Connection: close (no chunked framing: the
 *                                close is the end, as HTTP allows) — a stream
 *                                cut before its terminal event that no
 *                                transport error reveals
 *        call_tools (false)      OpenAI chat: call tools as the Anthropic and
 *                                Gemini answers do (below); a tool result
 *                                is quoted in the text
 *        role_first (false)      OpenAI chat streams: a role-only first chunk
 *                                ({"role":"assistant","content":""}) before
 *                                the content chunks
 *        hold (false)            with body: send it chunked, then keep the
 *                                response open (no end) until the client
 *                                leaves, the mock stops or 120 s pass: a
 *                                stream that stalls after its first events
 *   POST /_mock/clear_queue  drop the queued scenarios only: {"ok","dropped"}
 *   POST /_mock/reset     clear queue, default scenario, records and counters
 *   GET  /_mock/requests  JSON array of recorded requests, arrival order:
 *        {"method","path","query":{name: value},"connection",
 *         "headers":{lower-case name: value}, "body":"raw body",
 *         "body_truncated": bool}
 *   GET  /_mock/stats     {"requests","connections","connections_accepted",
 *         "open_connections","in_flight","completed","aborted",
 *         "stream_bytes_sent"}
 *        "requests": recorded requests since the last reset.
 *        "connections": TCP connections that carried at least one recorded
 *        request since the last reset, so a test's own control traffic (a
 *        fresh connection per call) does not inflate it; a keep-alive client
 *        making 3 requests gives 1. "connections_accepted": every TCP
 *        connection accepted since the last reset, control ones included.
 *        "open_connections", "in_flight": gauges (never reset).
 *        "completed": responses fully sent; "aborted": recorded requests the
 *        client abandoned first (injected faults are not counted).
 *        "stream_bytes_sent": bytes of SSE streams (and of stream_bytes
 *        answers) handed to MHD (which
 *        asks for more only once its 16 KiB block went to the socket), so
 *        a transfer the client stopped reading shows as a standstill.
 *        Each record's "connection" is the id of the TCP connection it came on.
 *
 * Every non-control request is recorded and consumes one scenario (the head
 * of the queue if any, else the default), except a body over 16 MiB, which is
 * answered 413 without consuming a scenario. Scenario status/body/garbage
 * apply to any path; unknown paths otherwise get 404, wrong methods 405.
 *
 * Faults: reset_before_headers reads the whole request, then closes the
 * connection without a byte of response (clients see "empty reply").
 * Note that libcurl silently retries a request once on a fresh connection
 * when a *reused* connection dies before any response byte, so a client with
 * warm keep-alive connections may consume two such scenarios per request.
 * reset_mid_body sends the head and reset_after_chunks SSE events (stream) or
 * the first half of a Content-Length body (non-stream), then aborts the
 * connection. stall holds the request (no response) until the client leaves,
 * the mock stops, or 120 s pass, then closes the connection.
 *
 * Threading: MHD runs one thread per connection, so a delay simply blocks
 * that connection's thread. Every wait is interruptible: it ends early when
 * the client goes away (POLLRDHUP on the socket) or the mock shuts down (a
 * pipe that becomes readable), so SIGTERM never waits for a stalled request.
 * All shared state is behind one mutex.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <microhttpd.h>

#define MOCK_MAX_BODY (16u * 1024u * 1024u)          /* request body cap -> 413 */
#define MOCK_MAX_CONTROL_BODY (1u * 1024u * 1024u)   /* /_mock/ body cap */
#define MOCK_MAX_RECORDS 10000u                      /* recorded requests kept */
#define MOCK_MAX_RECORD_BODY (1u * 1024u * 1024u)    /* per recorded body */
#define MOCK_MAX_RECORD_TOTAL (256u * 1024u * 1024u) /* all recorded bodies */
#define MOCK_MAX_QUEUE 1000u                         /* queued scenarios */
#define MOCK_MAX_CHUNKS 10000                        /* chunks per stream */
#define MOCK_MAX_STREAM_BYTES (64L * 1024 * 1024)    /* stream_bytes bound */
#define MOCK_MAX_DELAY_MS 600000L                    /* any configured delay */
#define MOCK_STALL_MS 120000L                        /* stall fault bound */
#define MOCK_CONNECTION_LIMIT 2000u
#define MOCK_BACKLOG 1024u

typedef enum {
    FAULT_NONE,
    FAULT_RESET_BEFORE_HEADERS,
    FAULT_RESET_MID_BODY,
    FAULT_GARBAGE,
    FAULT_STALL,
} fault_t;

/* One scenario. `spec` owns the strings `headers`/`body`/`content_type`
 * point into; copies share it through json_incref, under g.mu. */
typedef struct scenario {
    json_t *spec;
    int status;
    bool has_retry_after;
    char retry_after[64];
    long headers_delay_ms;
    long chunk_delay_ms;
    int chunks;
    fault_t fault;
    int reset_after_chunks;
    int error_after_chunks; /* -1 = none */
    long stream_bytes;      /* 0 = a `chunks` stream */
    long count;             /* 0 = persistent default */
    int close_after_events; /* -1 = none */
    bool role_first;
    bool call_tools;
    json_t *headers;
    const char *body;
    size_t body_len;
    const char *content_type;
    bool hold;
} scenario_t;

/* Per TCP connection (MHD socket_context). */
typedef struct conn {
    uint64_t id;
    unsigned counted_gen; /* generation in which it was counted in "connections" */
} conn_t;

/* Per HTTP request (MHD con_cls). */
typedef struct req {
    bool control;
    bool too_large;
    char *body;
    size_t len, cap, limit;
    bool recorded;
    bool injected; /* the connection was closed on purpose */
    scenario_t sc;
    bool has_sc;
} req_t;

/* State of a callback response: a list of SSE events, or one buffer cut short. */
typedef struct reader {
    char **events;
    size_t *lens;
    size_t n, cap, next, off;
    long delay_ms;
    long fail_after; /* events sent before END_WITH_ERROR; -1 = never */
    int fd;
    char *buf; /* partial (non-stream) mode */
    size_t buf_len, stop_at;
    /* stream_bytes mode: chunk events made on demand before events[] */
    long bulk_left; /* bytes still to generate */
    long seq;
    char *pre, *suf; /* an event is pre + "tokSEQ " + padding + suf */
    char cur[512];
    size_t cur_len, cur_off;
} reader_t;

static struct {
    pthread_mutex_t mu;
    const char *name;
    int shutdown_pipe[2];
    /* scenarios */
    scenario_t def;
    bool has_def;
    scenario_t queue[MOCK_MAX_QUEUE];
    size_t q_head, q_len;
    /* recording and counters */
    json_t *records;
    size_t record_bytes;
    unsigned gen;
    uint64_t next_conn_id;
    long requests, connections, accepted, open_conns, in_flight, completed, aborted;
    long stream_bytes_sent; /* atomic: updated by reader callbacks without the mutex */
} g = {.mu = PTHREAD_MUTEX_INITIALIZER, .name = "mock", .shutdown_pipe = {-1, -1}, .gen = 1};

/* ---------------------------------------------------------------- helpers */

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "mock_upstream: out of memory\n");
        abort();
    }
    return p;
}

static char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    return memcpy(xmalloc(n), s, n);
}

static bool has_suffix(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && memcmp(s + a - b, suffix, b) == 0;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Waits `ms` milliseconds on behalf of one connection. Returns 0 when the
 * time elapsed, -1 early when the client closed its side (fd >= 0) or the
 * mock is shutting down.
 */
static int wait_ms(int fd, long ms)
{
    int64_t deadline = now_ms() + ms;
    for (;;) {
        int64_t left = deadline - now_ms();
        if (left <= 0)
            return 0;
        struct pollfd pf[2] = {{.fd = g.shutdown_pipe[0], .events = POLLIN},
                               {.fd = fd, .events = POLLRDHUP}};
        int rc = poll(pf, fd >= 0 ? 2 : 1, (int)(left > INT_MAX ? INT_MAX : left));
        if (rc < 0 && errno != EINTR)
            return -1;
        if (rc > 0) {
            if (pf[0].revents)
                return -1;
            if (fd >= 0 && (pf[1].revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)))
                return -1;
        }
    }
}

static int conn_fd(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    return ci ? (int)ci->connect_fd : -1;
}

/* Compact, order-preserving dump (reals with 15 digits, so 0.1 prints as
 * 0.1); takes ownership of `j`. */
static char *dump_take(json_t *j, size_t *len)
{
    char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY |
                                JSON_REAL_PRECISION(15));
    json_decref(j);
    if (!s) {
        fprintf(stderr, "mock_upstream: json_dumps failed\n");
        abort();
    }
    if (len)
        *len = strlen(s);
    return s;
}

/* A JSON string from raw bytes; bytes that are not valid UTF-8 become '?'. */
static json_t *json_bytes(const char *p, size_t n)
{
    json_t *s = json_stringn(p, n);
    if (s)
        return s;
    char *copy = xmalloc(n);
    for (size_t i = 0; i < n; i++)
        copy[i] = (unsigned char)p[i] < 0x80 ? p[i] : '?';
    s = json_stringn(copy, n);
    free(copy);
    return s ? s : json_string("");
}

/* ---------------------------------------------------------------- scenarios */

static void scenario_default(scenario_t *s)
{
    memset(s, 0, sizeof(*s));
    s->status = 200;
    s->chunks = 5;
    s->reset_after_chunks = 1;
    s->error_after_chunks = -1;
    s->close_after_events = -1;
    s->fault = FAULT_NONE;
}

static void scenario_copy(scenario_t *dst, const scenario_t *src)
{
    *dst = *src;
    json_incref(dst->spec);
}

static void scenario_clear(scenario_t *s)
{
    json_decref(s->spec);
    scenario_default(s);
}

static int get_long(json_t *o, const char *key, long lo, long hi, long *out, char *err,
                    size_t errlen)
{
    json_t *v = json_object_get(o, key);
    if (!v)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
        snprintf(err, errlen, "\"%s\" must be an integer in [%ld, %ld]", key, lo, hi);
        return -1;
    }
    *out = (long)json_integer_value(v);
    return 0;
}

/* "body_base64": decoded in place into a string of raw bytes (jansson keeps
 * any bytes it is given unchecked), so the body lives as long as the spec. */
static int body_base64(json_t *o, scenario_t *s, char *err, size_t errlen)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    json_t *b = json_object_get(o, "body_base64");
    const char *in = json_string_value(b);
    size_t n = in ? strlen(in) : 0, o_len = 0;
    unsigned acc = 0, bits = 0;

    if (!b)
        return 0;
    char *raw = xmalloc(n);
    for (size_t i = 0; in && i < n && in[i] != '='; i++) {
        const char *at = strchr(tab, in[i]);
        if (!at || !in[i]) {
            in = NULL;
            break;
        }
        acc = acc << 6 | (unsigned)(at - tab);
        if ((bits += 6) >= 8) {
            bits -= 8;
            raw[o_len++] = (char)(acc >> bits & 0xFF);
        }
    }
    if (!in || s->body) {
        free(raw);
        snprintf(err, errlen, "\"body_base64\" must be a base64 string (and no \"body\")");
        return -1;
    }
    json_t *bytes = json_stringn_nocheck(raw, o_len);
    free(raw);
    json_object_set_new(o, "body_base64", bytes);
    s->body = json_string_value(bytes);
    s->body_len = o_len;
    return 0;
}

/* Parses and validates a scenario object; takes a reference to `o` on success. */
static int scenario_parse(json_t *o, scenario_t *s, char *err, size_t errlen)
{
    static const char *const keys[] = {"status",
                                       "retry_after",
                                       "headers_delay_ms",
                                       "chunk_delay_ms",
                                       "chunks",
                                       "fault",
                                       "reset_after_chunks",
                                       "count",
                                       "headers",
                                       "body",
                                       "content_type",
                                       "error_after_chunks",
                                       "stream_bytes",
                                       "body_base64",
                                       "hold",
                                       "close_after_events",
                                       "role_first",
                                       "call_tools",
                                       NULL};
    scenario_default(s);
    if (!json_is_object(o)) {
        snprintf(err, errlen, "scenario must be a JSON object");
        return -1;
    }
    const char *key;
    json_t *val;
    json_object_foreach(o, key, val)
    {
        bool known = false;
        for (size_t i = 0; keys[i]; i++)
            known = known || strcmp(keys[i], key) == 0;
        if (!known) {
            snprintf(err, errlen, "unknown scenario key \"%s\"", key);
            return -1;
        }
    }
    long v;
    v = s->status;
    if (get_long(o, "status", 100, 599, &v, err, errlen))
        return -1;
    s->status = (int)v;
    if (get_long(o, "headers_delay_ms", 0, MOCK_MAX_DELAY_MS, &s->headers_delay_ms, err, errlen) ||
        get_long(o, "stream_bytes", 0, MOCK_MAX_STREAM_BYTES, &s->stream_bytes, err, errlen) ||
        get_long(o, "chunk_delay_ms", 0, MOCK_MAX_DELAY_MS, &s->chunk_delay_ms, err, errlen) ||
        get_long(o, "count", 1, LONG_MAX, &s->count, err, errlen))
        return -1;
    v = s->chunks;
    if (get_long(o, "chunks", 0, MOCK_MAX_CHUNKS, &v, err, errlen))
        return -1;
    s->chunks = (int)v;
    v = s->reset_after_chunks;
    if (get_long(o, "reset_after_chunks", 0, MOCK_MAX_CHUNKS + 3, &v, err, errlen))
        return -1;
    s->reset_after_chunks = (int)v;
    v = s->error_after_chunks;
    if (get_long(o, "error_after_chunks", -1, MOCK_MAX_CHUNKS, &v, err, errlen))
        return -1;
    s->error_after_chunks = (int)v;
    v = s->close_after_events;
    if (get_long(o, "close_after_events", -1, MOCK_MAX_CHUNKS, &v, err, errlen))
        return -1;
    s->close_after_events = (int)v;
    s->role_first = json_is_true(json_object_get(o, "role_first"));
    s->call_tools = json_is_true(json_object_get(o, "call_tools"));

    json_t *ra = json_object_get(o, "retry_after");
    if (json_is_string(ra) && json_string_length(ra) < sizeof(s->retry_after) &&
        !strpbrk(json_string_value(ra), "\r\n")) {
        snprintf(s->retry_after, sizeof(s->retry_after), "%s", json_string_value(ra));
        s->has_retry_after = true;
    } else if (json_is_integer(ra)) {
        snprintf(s->retry_after, sizeof(s->retry_after), "%" JSON_INTEGER_FORMAT,
                 json_integer_value(ra));
        s->has_retry_after = true;
    } else if (ra && !json_is_null(ra)) {
        snprintf(err, errlen, "\"retry_after\" must be a short string or an integer");
        return -1;
    }

    json_t *f = json_object_get(o, "fault");
    if (f) {
        static const struct {
            const char *name;
            fault_t fault;
        } faults[] = {{"none", FAULT_NONE},
                      {"reset_before_headers", FAULT_RESET_BEFORE_HEADERS},
                      {"reset_mid_body", FAULT_RESET_MID_BODY},
                      {"garbage", FAULT_GARBAGE},
                      {"stall", FAULT_STALL}};
        const char *name = json_string_value(f);
        size_t i = 0;
        for (; name && i < sizeof(faults) / sizeof(faults[0]); i++)
            if (strcmp(faults[i].name, name) == 0)
                break;
        if (!name || i == sizeof(faults) / sizeof(faults[0])) {
            snprintf(err, errlen,
                     "\"fault\" must be one of none, reset_before_headers, reset_mid_body, "
                     "garbage, stall");
            return -1;
        }
        s->fault = faults[i].fault;
    }

    json_t *h = json_object_get(o, "headers");
    if (h) {
        if (!json_is_object(h)) {
            snprintf(err, errlen, "\"headers\" must be an object of strings");
            return -1;
        }
        json_object_foreach(h, key, val)
        {
            if (!json_is_string(val) || !*key || strpbrk(key, "\r\n: ") ||
                strpbrk(json_string_value(val), "\r\n")) {
                snprintf(err, errlen, "\"headers.%s\" must be a valid header value string", key);
                return -1;
            }
        }
        s->headers = h;
    }
    json_t *b = json_object_get(o, "body");
    if (b) {
        if (!json_is_string(b)) {
            snprintf(err, errlen, "\"body\" must be a string");
            return -1;
        }
        s->body = json_string_value(b);
        s->body_len = json_string_length(b);
    }
    if (body_base64(o, s, err, errlen) < 0)
        return -1;
    json_t *hold = json_object_get(o, "hold");
    if (hold && !json_is_boolean(hold)) {
        snprintf(err, errlen, "\"hold\" must be a boolean");
        return -1;
    }
    s->hold = json_is_true(hold);
    json_t *ct = json_object_get(o, "content_type");
    if (ct) {
        if (!json_is_string(ct) || strpbrk(json_string_value(ct), "\r\n")) {
            snprintf(err, errlen, "\"content_type\" must be a string");
            return -1;
        }
        s->content_type = json_string_value(ct);
    }
    s->spec = json_incref(o);
    return 0;
}

/* Takes the scenario for the next request: queue head first, else default. */
static void scenario_take(scenario_t *out)
{
    pthread_mutex_lock(&g.mu);
    if (g.q_len > 0) {
        scenario_t *head = &g.queue[g.q_head];
        scenario_copy(out, head);
        if (--head->count <= 0) {
            scenario_clear(head);
            g.q_head = (g.q_head + 1) % MOCK_MAX_QUEUE;
            g.q_len--;
        }
    } else if (g.has_def) {
        scenario_copy(out, &g.def);
    } else {
        scenario_default(out);
    }
    pthread_mutex_unlock(&g.mu);
}

/* ---------------------------------------------------------------- responses */

static enum MHD_Result queue_bytes(struct MHD_Connection *c, int status, const char *ctype,
                                   const char *body, size_t len, const scenario_t *sc)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)(uintptr_t)body, MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    if (ctype)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    MHD_add_response_header(r, "x-mock-name", g.name);
    if (sc) {
        if (sc->has_retry_after)
            MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, sc->retry_after);
        const char *k;
        json_t *v;
        json_object_foreach(sc->headers, k, v) MHD_add_response_header(r, k, json_string_value(v));
    }
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result queue_json(struct MHD_Connection *c, int status, json_t *j,
                                  const scenario_t *sc)
{
    size_t len;
    char *s = dump_take(j, &len);
    enum MHD_Result ret = queue_bytes(c, status, "application/json", s, len, sc);
    free(s);
    return ret;
}

static json_t *openai_error(const char *type, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return json_pack("{s:{s:s, s:s, s:n, s:n}}", "error", "message", msg, "type", type, "param",
                     "code");
}

static enum MHD_Result queue_error(struct MHD_Connection *c, int status, const char *type,
                                   const char *msg, const scenario_t *sc)
{
    return queue_json(c, status, openai_error(type, "%s", msg), sc);
}

static void count_sent(size_t n)
{
    __atomic_fetch_add(&g.stream_bytes_sent, (long)n, __ATOMIC_RELAXED);
}

static ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    reader_t *r = cls;
    if (r->off == 0) {
        if (r->fail_after >= 0 && r->next >= (size_t)r->fail_after)
            return MHD_CONTENT_READER_END_WITH_ERROR;
        if (r->next >= r->n)
            return MHD_CONTENT_READER_END_OF_STREAM;
        if (r->next > 0 && r->delay_ms > 0 && wait_ms(r->fd, r->delay_ms) != 0)
            return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    size_t left = r->lens[r->next] - r->off;
    size_t n = left < max ? left : max;
    memcpy(buf, r->events[r->next] + r->off, n);
    r->off += n;
    if (r->off == r->lens[r->next]) {
        r->off = 0;
        r->next++;
    }
    count_sent(n);
    return (ssize_t)n;
}

/* stream_bytes: content chunk events made one at a time as MHD asks, then
 * the ready events (final chunk, usage, [DONE]) through sse_read. */
static ssize_t bulk_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    static const char pad[] = "................................................................"
                              "................................................................";
    reader_t *r = cls;

    if (r->cur_off == r->cur_len) {
        if (r->bulk_left <= 0)
            return sse_read(cls, pos, buf, max);
        if (r->seq > 0 && r->delay_ms > 0 && wait_ms(r->fd, r->delay_ms) != 0)
            return MHD_CONTENT_READER_END_WITH_ERROR;
        int n =
            snprintf(r->cur, sizeof(r->cur), "%stok%ld %.*s%s", r->pre, r->seq, 96, pad, r->suf);
        if (n < 0 || (size_t)n >= sizeof(r->cur))
            return MHD_CONTENT_READER_END_WITH_ERROR;
        r->cur_len = (size_t)n;
        r->cur_off = 0;
        r->seq++;
        r->bulk_left -= n;
    }
    size_t left = r->cur_len - r->cur_off;
    size_t n = left < max ? left : max;
    memcpy(buf, r->cur + r->cur_off, n);
    r->cur_off += n;
    count_sent(n);
    return (ssize_t)n;
}

/* stream_bytes, not streamed: pre + bulk_left padding bytes + suf, by position. */
static ssize_t padded_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    reader_t *r = cls;
    size_t lp = strlen(r->pre), n = 0;

    if (r->stop_at && pos >= r->stop_at)
        return MHD_CONTENT_READER_END_WITH_ERROR; /* reset_mid_body */
    while (n < max) {
        uint64_t at = pos + n;
        size_t take;
        if (at < lp) {
            take = lp - (size_t)at < max - n ? lp - (size_t)at : max - n;
            memcpy(buf + n, r->pre + at, take);
        } else if (at < lp + (uint64_t)r->bulk_left) {
            uint64_t left = lp + (uint64_t)r->bulk_left - at;
            take = left < max - n ? (size_t)left : max - n;
            memset(buf + n, 'x', take);
        } else {
            size_t off = (size_t)(at - lp - (uint64_t)r->bulk_left), ls = strlen(r->suf);
            if (off >= ls)
                break;
            take = ls - off < max - n ? ls - off : max - n;
            memcpy(buf + n, r->suf + off, take);
        }
        n += take;
    }
    count_sent(n);
    return n ? (ssize_t)n : MHD_CONTENT_READER_END_OF_STREAM;
}

static ssize_t partial_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    reader_t *r = cls;
    if (pos >= r->stop_at)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    size_t left = r->stop_at - (size_t)pos;
    size_t n = left < max ? left : max;
    memcpy(buf, r->buf + pos, n);
    return (ssize_t)n;
}

/* hold: the body, then nothing until the client or the mock goes away. */
static ssize_t hold_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    reader_t *r = cls;
    if (pos >= r->buf_len) {
        wait_ms(r->fd, MOCK_STALL_MS);
        return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    size_t left = r->buf_len - (size_t)pos;
    size_t n = left < max ? left : max;
    memcpy(buf, r->buf + pos, n);
    return (ssize_t)n;
}

static void reader_free(void *cls)
{
    reader_t *r = cls;
    for (size_t i = 0; i < r->n; i++)
        free(r->events[i]);
    free(r->events);
    free(r->lens);
    free(r->buf);
    free(r->pre);
    free(r->suf);
    free(r);
}

/* Queues `r` as a callback response (stream when size == MHD_SIZE_UNKNOWN). */
static enum MHD_Result queue_reader(struct MHD_Connection *c, int status, const char *ctype,
                                    uint64_t size, MHD_ContentReaderCallback crc, reader_t *rd,
                                    const scenario_t *sc)
{
    bool cut = crc == sse_read && sc->close_after_events >= 0;
    while (cut && rd->n > (size_t)sc->close_after_events)
        free(rd->events[--rd->n]);
    struct MHD_Response *r =
        MHD_create_response_from_callback(size, 16 * 1024, crc, rd, reader_free);
    if (!r) {
        reader_free(rd);
        return MHD_NO;
    }
    if (cut) /* HTTP/1.0 style: no chunked framing, the close is the end */
        MHD_set_response_options(r, MHD_RF_HTTP_1_0_COMPATIBLE_STRICT, MHD_RO_END);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    MHD_add_response_header(r, "x-mock-name", g.name);
    if (size == MHD_SIZE_UNKNOWN)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    if (sc->has_retry_after)
        MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, sc->retry_after);
    const char *k;
    json_t *v;
    json_object_foreach(sc->headers, k, v) MHD_add_response_header(r, k, json_string_value(v));
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    return ret;
}

/* A chat.completion `out` whose content is sc->stream_bytes bytes, sent as
 * the socket takes them (takes `out`). */
static enum MHD_Result send_padded(struct MHD_Connection *c, json_t *out, const scenario_t *sc)
{
    char *js = dump_take(out, NULL), *mark = strstr(js, "\\u0001");
    reader_t *rd = xmalloc(sizeof(*rd));
    int sndbuf = 256 * 1024;

    if (!mark)
        abort();
    memset(rd, 0, sizeof(*rd));
    rd->fd = -1;
    rd->suf = xstrdup(mark + 6);
    *mark = '\0';
    rd->pre = js;
    rd->bulk_left = sc->stream_bytes;
    uint64_t total = strlen(rd->pre) + (uint64_t)sc->stream_bytes + strlen(rd->suf);
    if (sc->fault == FAULT_RESET_MID_BODY)
        rd->stop_at = (size_t)(total / 2);
    /* as for streams: what the client leaves unread piles up here */
    setsockopt(conn_fd(c), SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
    return queue_reader(c, 200, "application/json", total, padded_read, rd, sc);
}

/* Sends `body` (taking ownership) honouring the reset_mid_body fault and
 * `hold`. */
static enum MHD_Result send_body(struct MHD_Connection *c, int status, const char *ctype,
                                 char *body, size_t len, const scenario_t *sc)
{
    if (sc->hold) {
        reader_t *rd = xmalloc(sizeof(*rd));
        memset(rd, 0, sizeof(*rd));
        rd->fd = conn_fd(c);
        rd->buf = body;
        rd->buf_len = len;
        return queue_reader(c, status, ctype, MHD_SIZE_UNKNOWN, hold_read, rd, sc);
    }
    if (sc->fault != FAULT_RESET_MID_BODY) {
        enum MHD_Result ret = queue_bytes(c, status, ctype, body, len, sc);
        free(body);
        return ret;
    }
    reader_t *rd = xmalloc(sizeof(*rd));
    memset(rd, 0, sizeof(*rd));
    rd->fd = -1;
    rd->buf = body;
    rd->buf_len = len;
    rd->stop_at = len / 2;
    return queue_reader(c, status, ctype, len, partial_read, rd, sc);
}

/* Appends one ready SSE event (taking `ev`), growing the arrays as needed. */
static void push_event(reader_t *rd, char *ev, size_t len)
{
    if (rd->n == rd->cap) {
        rd->cap = rd->cap ? rd->cap * 2 : 16;
        rd->events = realloc(rd->events, rd->cap * sizeof(char *));
        rd->lens = realloc(rd->lens, rd->cap * sizeof(size_t));
        if (!rd->events || !rd->lens)
            abort();
    }
    rd->events[rd->n] = ev;
    rd->lens[rd->n] = len;
    rd->n++;
}

/* "event: NAME\n" (when name) + "data: JSON\n\n"; takes `chunk`. */
static void add_named_event(reader_t *rd, const char *name, json_t *chunk)
{
    size_t len, nl = name ? strlen(name) + 8 : 0;
    char *js = dump_take(chunk, &len);
    char *ev = xmalloc(nl + len + 9);
    if (name)
        snprintf(ev, nl + 1, "event: %s\n", name);
    memcpy(ev + nl, "data: ", 6);
    memcpy(ev + nl + 6, js, len);
    memcpy(ev + nl + 6 + len, "\n\n", 3);
    free(js);
    push_event(rd, ev, nl + len + 8);
}

static void add_event(reader_t *rd, json_t *chunk)
{
    add_named_event(rd, NULL, chunk);
}

static reader_t *stream_reader_new(struct MHD_Connection *c, const scenario_t *sc)
{
    reader_t *rd = xmalloc(sizeof(*rd));
    memset(rd, 0, sizeof(*rd));
    rd->delay_ms = sc->chunk_delay_ms;
    rd->fd = conn_fd(c);
    rd->fail_after = sc->fault == FAULT_RESET_MID_BODY ? sc->reset_after_chunks : -1;
    return rd;
}

static json_t *usage_json(void)
{
    return json_pack("{s:i, s:i, s:i}", "prompt_tokens", 5, "completion_tokens", 4, "total_tokens",
                     9);
}

static void add_resp_event(reader_t *rd, int *seq, const char *type, json_t *ev)
{
    json_object_set_new(ev, "type", json_string(type));
    json_object_set_new(ev, "sequence_number", json_integer((*seq)++));
    add_named_event(rd, type, ev);
}

/* A response id made from the request body (FNV-1a): deterministic, and
 * different requests get different ids, as a real store needs. */
static void resp_id(const req_t *rq, char *id, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; rq && rq->body && i < rq->len; i++)
        h = (h ^ (unsigned char)rq->body[i]) * 1099511628211ull;
    snprintf(id, n, "resp_mock_%s_%016" PRIx64, g.name, h);
}

/* A Responses response object: status, output (taken) and usage. */
static json_t *resp_object(const char *id, const char *model, const char *status, json_t *output)
{
    return json_pack(
        "{s:s, s:s, s:i, s:s, s:s, s:o, s:o}", "id", id, "object", "response", "created_at",
        1700000000, "status", status, "model", model, "output", output, "usage",
        strcmp(status, "completed")
            ? json_null()
            : json_pack("{s:i, s:{s:i}, s:i, s:{s:i}, s:i}", "input_tokens", 5,
                        "input_tokens_details", "cached_tokens", 0, "output_tokens", 4,
                        "output_tokens_details", "reasoning_tokens", 0, "total_tokens", 9));
}

static json_t *resp_message(const char *text)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:[{s:s, s:s, s:[]}]}", "id", "msg_mock", "type",
                     "message", "status", "completed", "role", "assistant", "content", "type",
                     "output_text", "text", text, "annotations");
}

/* POST .../responses, streamed: the typed events, numbered. */
static enum MHD_Result send_responses_stream(struct MHD_Connection *c, const char *model,
                                             const req_t *rq, const scenario_t *sc)
{
    reader_t *rd = stream_reader_new(c, sc);
    char id[200];
    char text[1024] = "";
    int seq = 0;

    resp_id(rq, id, sizeof(id));
    add_resp_event(
        rd, &seq, "response.created",
        json_pack("{s:o}", "response", resp_object(id, model, "in_progress", json_array())));
    add_resp_event(
        rd, &seq, "response.in_progress",
        json_pack("{s:o}", "response", resp_object(id, model, "in_progress", json_array())));
    add_resp_event(rd, &seq, "response.output_item.added",
                   json_pack("{s:i, s:{s:s, s:s, s:s, s:s, s:[]}}", "output_index", 0, "item", "id",
                             "msg_mock", "type", "message", "status", "in_progress", "role",
                             "assistant", "content"));
    add_resp_event(rd, &seq, "response.content_part.added",
                   json_pack("{s:s, s:i, s:i, s:{s:s, s:s, s:[]}}", "item_id", "msg_mock",
                             "output_index", 0, "content_index", 0, "part", "type", "output_text",
                             "text", "", "annotations"));
    for (int i = 0; i < sc->chunks; i++) {
        char tok[32];
        if (i == sc->error_after_chunks) {
            add_resp_event(rd, &seq, "error",
                           json_pack("{s:s, s:s, s:n}", "code", "server_error", "message",
                                     "mock: error mid-stream", "param"));
            return queue_reader(c, 200, "text/event-stream", MHD_SIZE_UNKNOWN, sse_read, rd, sc);
        }
        snprintf(tok, sizeof(tok), "tok%d ", i);
        if (strlen(text) + strlen(tok) < sizeof(text))
            strcat(text, tok);
        add_resp_event(rd, &seq, "response.output_text.delta",
                       json_pack("{s:s, s:i, s:i, s:s}", "item_id", "msg_mock", "output_index", 0,
                                 "content_index", 0, "delta", tok));
    }
    add_resp_event(rd, &seq, "response.output_text.done",
                   json_pack("{s:s, s:i, s:i, s:s}", "item_id", "msg_mock", "output_index", 0,
                             "content_index", 0, "text", text));
    add_resp_event(rd, &seq, "response.output_item.done",
                   json_pack("{s:i, s:o}", "output_index", 0, "item", resp_message(text)));
    add_resp_event(
        rd, &seq, "response.completed",
        json_pack("{s:o}", "response",
                  resp_object(id, model, "completed", json_pack("[o]", resp_message(text)))));
    return queue_reader(c, 200, "text/event-stream", MHD_SIZE_UNKNOWN, sse_read, rd, sc);
}

/* POST .../responses: the body read, then the object or its stream. */
static enum MHD_Result serve_responses(struct MHD_Connection *c, const req_t *rq,
                                       const scenario_t *sc)
{
    json_t *in = json_loadb(rq->body ? rq->body : "", rq->len, 0, NULL);
    const char *model = json_string_value(json_object_get(in, "model"));
    char id[200], hello[200];
    enum MHD_Result ret;

    if (!json_is_object(in)) {
        json_decref(in);
        return queue_error(c, 400, "invalid_request_error", "mock: body must be a JSON object", sc);
    }
    if (!model)
        model = "mock-model";
    if (json_is_true(json_object_get(in, "stream"))) {
        ret = send_responses_stream(c, model, rq, sc);
    } else {
        size_t len;
        snprintf(hello, sizeof(hello), "Hello from %s", g.name);
        resp_id(rq, id, sizeof(id));
        char *s = dump_take(
            resp_object(id, model, "completed", json_pack("[o]", resp_message(hello))), &len);
        ret = send_body(c, 200, "application/json", s, len, sc);
    }
    json_decref(in);
    return ret;
}

/* Builds and queues the SSE stream for chat (chat=true) or legacy completions. */
static enum MHD_Result send_stream(struct MHD_Connection *c, bool chat, const char *model,
                                   bool include_usage, const scenario_t *sc)
{
    const char *id = chat ? "chatcmpl-mock" : "cmpl-mock";
    const char *object = chat ? "chat.completion.chunk" : "text_completion";
    reader_t *rd = stream_reader_new(c, sc);
    if (sc->stream_bytes > 0) {
        /* the same chunk as below with the text cut out: pre + text + suf */
        json_t *choice = chat ? json_pack("{s:i, s:{s:s}, s:n}", "index", 0, "delta", "content",
                                          "\x01", "finish_reason")
                              : json_pack("{s:i, s:s, s:n, s:n}", "index", 0, "text", "\x01",
                                          "logprobs", "finish_reason");
        char *js = dump_take(json_pack("{s:s, s:s, s:i, s:s, s:[o]}", "id", id, "object", object,
                                       "created", 1700000000, "model", model, "choices", choice),
                             NULL);
        char *mark = strstr(js, "\\u0001");
        if (!mark)
            abort();
        size_t head = (size_t)(mark - js);
        rd->pre = xmalloc(head + 7);
        memcpy(rd->pre, "data: ", 6);
        memcpy(rd->pre + 6, js, head);
        rd->pre[head + 6] = '\0';
        size_t tail = strlen(mark + 6);
        rd->suf = xmalloc(tail + 3);
        memcpy(rd->suf, mark + 6, tail);
        memcpy(rd->suf + tail, "\n\n", 3);
        free(js);
        if (strlen(rd->pre) + strlen(rd->suf) + 128 >= sizeof(rd->cur)) {
            reader_free(rd); /* a model name too long for the event buffer */
            return queue_error(c, 400, "invalid_request_error", "model name too long", sc);
        }
        rd->bulk_left = sc->stream_bytes;
        /* A fixed send buffer (no autotuning to 4 MiB): what a paused
         * reader leaves unsent piles up here, not in the kernel. */
        int sndbuf = 256 * 1024;
        setsockopt(conn_fd(c), SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
    }
    if (chat && sc->stream_bytes == 0 && sc->role_first)
        add_event(rd, json_pack("{s:s, s:s, s:i, s:s, s:[{s:i, s:{s:s, s:s}, s:n}]}", "id", id,
                                "object", object, "created", 1700000000, "model", model, "choices",
                                "index", 0, "delta", "role", "assistant", "content", "",
                                "finish_reason"));
    for (int i = 0; sc->stream_bytes == 0 && i < sc->chunks; i++) {
        if (i == sc->error_after_chunks) {
            add_event(rd,
                      openai_error("server_error", "mock %s: error after %d chunks", g.name, i));
            return queue_reader(c, 200, "text/event-stream", MHD_SIZE_UNKNOWN, sse_read, rd, sc);
        }
        char tok[32];
        snprintf(tok, sizeof(tok), "tok%d ", i);
        json_t *choice;
        if (chat) {
            json_t *delta = i == 0 && !sc->role_first
                                ? json_pack("{s:s, s:s}", "role", "assistant", "content", tok)
                                : json_pack("{s:s}", "content", tok);
            choice = json_pack("{s:i, s:o, s:n}", "index", 0, "delta", delta, "finish_reason");
        } else {
            choice = json_pack("{s:i, s:s, s:n, s:n}", "index", 0, "text", tok, "logprobs",
                               "finish_reason");
        }
        add_event(rd, json_pack("{s:s, s:s, s:i, s:s, s:[o]}", "id", id, "object", object,
                                "created", 1700000000, "model", model, "choices", choice));
    }
    json_t *last = chat
                       ? json_pack("{s:i, s:{}, s:s}", "index", 0, "delta", "finish_reason", "stop")
                       : json_pack("{s:i, s:s, s:n, s:s}", "index", 0, "text", "", "logprobs",
                                   "finish_reason", "stop");
    add_event(rd, json_pack("{s:s, s:s, s:i, s:s, s:[o]}", "id", id, "object", object, "created",
                            1700000000, "model", model, "choices", last));
    if (include_usage)
        add_event(rd, json_pack("{s:s, s:s, s:i, s:s, s:[], s:o}", "id", id, "object", object,
                                "created", 1700000000, "model", model, "choices", "usage",
                                usage_json()));
    push_event(rd, xstrdup("data: [DONE]\n\n"), 14);
    return queue_reader(c, 200, "text/event-stream", MHD_SIZE_UNKNOWN,
                        sc->stream_bytes > 0 ? bulk_read : sse_read, rd, sc);
}

static json_t *mock_args(const json_t *schema);
static char *result_text(const json_t *content);
static char *hello_text(const char *tool_result);

/* A chat completion (or its chunk stream) calling tool `name` with args
 * (taken), after a short text: what call_tools answers. */
static enum MHD_Result send_tool_call(struct MHD_Connection *c, const char *model, bool stream,
                                      const char *name, json_t *args, const scenario_t *sc)
{
    char id[160], *a = dump_take(args, NULL);
    json_t *call;
    snprintf(id, sizeof(id), "call_mock_%s", g.name);
    call = json_pack("{s:i, s:s, s:s, s:{s:s, s:s}}", "index", 0, "id", id, "type", "function",
                     "function", "name", name, "arguments", a);
    if (!stream) {
        json_object_del(call, "index");
        size_t len;
        char *s =
            dump_take(json_pack("{s:s, s:s, s:i, s:s, s:[{s:i, s:{s:s, s:s, s:[o]}, s:s}], s:o}",
                                "id", "chatcmpl-mock", "object", "chat.completion", "created",
                                1700000000, "model", model, "choices", "index", 0, "message",
                                "role", "assistant", "content", "Calling a tool.", "tool_calls",
                                call, "finish_reason", "tool_calls", "usage", usage_json()),
                      &len);
        free(a);
        return send_body(c, 200, "application/json", s, len, sc);
    }
    reader_t *rd = stream_reader_new(c, sc);
    json_t *d0 = json_pack("{s:s, s:s}", "role", "assistant", "content", "Calling a tool.");
    json_t *d1 = json_pack("{s:[o]}", "tool_calls", call);
    json_t *fin = json_pack("{s:i, s:{}, s:s}", "index", 0, "delta", "finish_reason", "tool_calls");
    add_event(rd, json_pack("{s:s, s:s, s:i, s:s, s:[{s:i, s:o, s:n}]}", "id", "chatcmpl-mock",
                            "object", "chat.completion.chunk", "created", 1700000000, "model",
                            model, "choices", "index", 0, "delta", d0, "finish_reason"));
    add_event(rd, json_pack("{s:s, s:s, s:i, s:s, s:[{s:i, s:o, s:n}]}", "id", "chatcmpl-mock",
                            "object", "chat.completion.chunk", "created", 1700000000, "model",
                            model, "choices", "index", 0, "delta", d1, "finish_reason"));
    add_event(rd, json_pack("{s:s, s:s, s:i, s:s, s:[o]}", "id", "chatcmpl-mock", "object",
                            "chat.completion.chunk", "created", 1700000000, "model", model,
                            "choices", fin));
    add_event(rd, json_pack("{s:s, s:s, s:i, s:s, s:[], s:o}", "id", "chatcmpl-mock", "object",
                            "chat.completion.chunk", "created", 1700000000, "model", model,
                            "choices", "usage", usage_json()));
    push_event(rd, xstrdup("data: [DONE]\n\n"), 14);
    free(a);
    return queue_reader(c, 200, "text/event-stream", MHD_SIZE_UNKNOWN, sse_read, rd, sc);
}

/* Serves one OpenAI endpoint (no scenario status/body/garbage override). */
static enum MHD_Result serve_openai(struct MHD_Connection *c, const char *url, const char *method,
                                    const req_t *rq, const scenario_t *sc)
{
    enum { EP_CHAT, EP_COMPLETIONS, EP_EMBEDDINGS, EP_MODELS, EP_RESPONSES } ep;
    if (has_suffix(url, "/chat/completions"))
        ep = EP_CHAT;
    else if (has_suffix(url, "/responses"))
        ep = EP_RESPONSES;
    else if (has_suffix(url, "/completions"))
        ep = EP_COMPLETIONS;
    else if (has_suffix(url, "/embeddings"))
        ep = EP_EMBEDDINGS;
    else if (has_suffix(url, "/models"))
        ep = EP_MODELS;
    else {
        char msg[256];
        snprintf(msg, sizeof(msg), "mock %s: unknown path %.150s", g.name, url);
        return queue_error(c, 404, "invalid_request_error", msg, sc);
    }

    const char *want = ep == EP_MODELS ? "GET" : "POST";
    if (strcmp(method, want) != 0) {
        char msg[128];
        snprintf(msg, sizeof(msg), "mock %s: method %.20s not allowed", g.name, method);
        scenario_t s2 = *sc; /* borrowed: s2.spec is not released */
        s2.headers = sc->headers ? json_copy(sc->headers) : json_object();
        json_object_set_new(s2.headers, "Allow", json_string(want));
        enum MHD_Result ret = queue_error(c, 405, "invalid_request_error", msg, &s2);
        json_decref(s2.headers);
        return ret;
    }

    if (ep == EP_MODELS) {
        json_t *m =
            json_pack("{s:s, s:[{s:s, s:s, s:i, s:s}]}", "object", "list", "data", "id",
                      "mock-model", "object", "model", "created", 1700000000, "owned_by", g.name);
        size_t len;
        char *s = dump_take(m, &len);
        return send_body(c, 200, "application/json", s, len, sc);
    }
    if (ep == EP_RESPONSES)
        return serve_responses(c, rq, sc);

    json_error_t jerr;
    json_t *in = json_loadb(rq->body ? rq->body : "", rq->len, 0, &jerr);
    if (!json_is_object(in)) {
        char msg[300];
        if (in)
            snprintf(msg, sizeof(msg), "mock %s: request body must be a JSON object", g.name);
        else
            snprintf(msg, sizeof(msg), "mock %s: invalid JSON body: %s", g.name, jerr.text);
        json_decref(in);
        return queue_error(c, 400, "invalid_request_error", msg, sc);
    }
    const char *model = json_string_value(json_object_get(in, "model"));
    if (!model)
        model = "mock-model";
    bool stream = json_is_true(json_object_get(in, "stream"));
    bool include_usage =
        json_is_true(json_object_get(json_object_get(in, "stream_options"), "include_usage"));
    char hello[400];
    snprintf(hello, sizeof(hello), "Hello from %s", g.name);
    if (sc->call_tools && ep == EP_CHAT) {
        /* Anthropic's and Gemini's answers' rule: call the first tool unless
         * the conversation ends with a tool result, which is then quoted */
        const json_t *msgs = json_object_get(in, "messages");
        const json_t *last = json_array_get(msgs, json_array_size(msgs) - 1);
        const json_t *fn =
            json_object_get(json_array_get(json_object_get(in, "tools"), 0), "function");
        const char *name = json_string_value(json_object_get(fn, "name"));
        const char *role = json_string_value(json_object_get(last, "role"));
        if (role && strcmp(role, "tool") == 0) {
            char *result = result_text(json_object_get(last, "content"));
            char *h = hello_text(result);
            snprintf(hello, sizeof(hello), "%s", h);
            free(h);
            free(result);
        } else if (name) {
            enum MHD_Result r = send_tool_call(c, model, stream, name,
                                               mock_args(json_object_get(fn, "parameters")), sc);
            json_decref(in);
            return r;
        }
    }

    enum MHD_Result ret;
    if (stream && ep != EP_EMBEDDINGS) {
        ret = send_stream(c, ep == EP_CHAT, model, include_usage, sc);
    } else {
        json_t *out;
        if (ep == EP_CHAT)
            out = json_pack("{s:s, s:s, s:i, s:s, s:[{s:i, s:{s:s, s:s}, s:s}], s:o}", "id",
                            "chatcmpl-mock", "object", "chat.completion", "created", 1700000000,
                            "model", model, "choices", "index", 0, "message", "role", "assistant",
                            "content", sc->stream_bytes > 0 ? "\x01" : hello, "finish_reason",
                            "stop", "usage", usage_json());
        else if (ep == EP_COMPLETIONS)
            out = json_pack("{s:s, s:s, s:i, s:s, s:[{s:i, s:s, s:n, s:s}], s:o}", "id",
                            "cmpl-mock", "object", "text_completion", "created", 1700000000,
                            "model", model, "choices", "index", 0, "text", hello, "logprobs",
                            "finish_reason", "stop", "usage", usage_json());
        else
            out =
                json_pack("{s:s, s:[{s:s, s:i, s:[f, f, f]}], s:s, s:{s:i, s:i}}", "object", "list",
                          "data", "object", "embedding", "index", 0, "embedding", 0.1, 0.2, 0.3,
                          "model", model, "usage", "prompt_tokens", 2, "total_tokens", 2);
        if (ep == EP_CHAT && sc->stream_bytes > 0) {
            ret = send_padded(c, out, sc);
        } else {
            size_t len;
            char *s = dump_take(out, &len);
            ret = send_body(c, 200, "application/json", s, len, sc);
        }
    }
    json_decref(in);
    return ret;
}

/* ---------------------------------------------------------------- dialects */

typedef enum { D_OPENAI, D_AZURE, D_ANTHROPIC, D_GEMINI } dialect_t;

static dialect_t dialect_of(const char *url)
{
    const char *slash = strrchr(url, '/');
    if (strncmp(url, "/openai/deployments/", 20) == 0)
        return D_AZURE;
    if (has_suffix(url, "/messages") || has_suffix(url, "/messages/count_tokens"))
        return D_ANTHROPIC;
    if (strstr(url, "/models/") && slash && strchr(slash, ':'))
        return D_GEMINI;
    return D_OPENAI;
}

/* An error body in the dialect's own shape. */
static json_t *dialect_error(dialect_t d, int status, const char *msg)
{
    if (d == D_ANTHROPIC) {
        const char *type = status == 529   ? "overloaded_error"
                           : status == 429 ? "rate_limit_error"
                           : status == 401 ? "authentication_error"
                           : status == 403 ? "permission_error"
                           : status == 404 ? "not_found_error"
                           : status >= 500 ? "api_error"
                                           : "invalid_request_error";
        return json_pack("{s:s, s:{s:s, s:s}}", "type", "error", "error", "type", type, "message",
                         msg);
    }
    if (d == D_GEMINI) {
        const char *st = status == 429                    ? "RESOURCE_EXHAUSTED"
                         : status == 503 || status == 529 ? "UNAVAILABLE"
                         : status == 401                  ? "UNAUTHENTICATED"
                         : status == 403                  ? "PERMISSION_DENIED"
                         : status == 404                  ? "NOT_FOUND"
                         : status >= 500                  ? "INTERNAL"
                                                          : "INVALID_ARGUMENT";
        return json_pack("{s:{s:i, s:s, s:s}}", "error", "code", status, "message", msg, "status",
                         st);
    }
    return openai_error(status >= 500 ? "server_error" : "invalid_request_error", "%s", msg);
}

static enum MHD_Result queue_dialect_error(struct MHD_Connection *c, dialect_t d, int status,
                                           const char *msg, const scenario_t *sc)
{
    return queue_json(c, status, dialect_error(d, status, msg), sc);
}

/* Deterministic tool arguments from a JSON Schema's properties. */
static json_t *mock_args(const json_t *schema)
{
    json_t *args = json_object();
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(schema, "properties"), k, v)
    {
        const char *t = json_string_value(json_object_get(v, "type"));
        json_t *val;
        if (t && (strcmp(t, "integer") == 0 || strcmp(t, "number") == 0))
            val = json_integer(1);
        else if (t && strcmp(t, "boolean") == 0)
            val = json_true();
        else if (t && strcmp(t, "array") == 0)
            val = json_array();
        else if (t && strcmp(t, "object") == 0)
            val = json_object();
        else
            val = json_string("mock");
        json_object_set_new(args, k, val);
    }
    return args;
}

/* Text of a tool result (a string, or text blocks joined), malloc'd. */
static char *result_text(const json_t *content)
{
    if (json_is_string(content))
        return xstrdup(json_string_value(content));
    if (!json_is_array(content)) {
        char *s = json_dumps(content, JSON_COMPACT | JSON_ENCODE_ANY);
        return s ? s : xstrdup("");
    }
    size_t i, n = 1;
    json_t *b;
    json_array_foreach(content, i, b) n += json_string_length(json_object_get(b, "text"));
    char *out = xmalloc(n);
    out[0] = '\0';
    json_array_foreach(content, i, b)
    {
        const char *t = json_string_value(json_object_get(b, "text"));
        if (t)
            strcat(out, t);
    }
    return out;
}

static char *hello_text(const char *tool_result)
{
    char *s;
    if (tool_result) {
        size_t n = strlen(g.name) + strlen(tool_result) + 40;
        s = xmalloc(n);
        snprintf(s, n, "Hello from %s (tool result: %s)", g.name, tool_result);
    } else {
        size_t n = strlen(g.name) + 12;
        s = xmalloc(n);
        snprintf(s, n, "Hello from %s", g.name);
    }
    return s;
}

static void add_partial_json(reader_t *rd, int index, const char *p, size_t n)
{
    add_named_event(rd, "content_block_delta",
                    json_pack("{s:s, s:i, s:{s:s, s:s%}}", "type", "content_block_delta", "index",
                              index, "delta", "type", "input_json_delta", "partial_json", p, n));
}

/* Anthropic usage: cache reads and writes reported when the request marked
 * something for caching. */
static json_t *anthropic_usage(bool cached, int output)
{
    json_t *u = json_pack("{s:i, s:i}", "input_tokens", 5, "output_tokens", output);
    if (cached) {
        json_object_set_new(u, "cache_read_input_tokens", json_integer(1000));
        json_object_set_new(u, "cache_creation_input_tokens", json_integer(200));
    }
    return u;
}

/* The thinking block of an answer to a request with thinking enabled,
 * streamed as a start, a thinking delta and a signature delta. */
static void add_thinking_events(reader_t *rd, const char *sig)
{
    add_named_event(rd, "content_block_start",
                    json_pack("{s:s, s:i, s:{s:s, s:s, s:s}}", "type", "content_block_start",
                              "index", 0, "content_block", "type", "thinking", "thinking", "",
                              "signature", ""));
    add_named_event(rd, "content_block_delta",
                    json_pack("{s:s, s:i, s:{s:s, s:s}}", "type", "content_block_delta", "index", 0,
                              "delta", "type", "thinking_delta", "thinking",
                              "Mock thinking about it."));
    add_named_event(rd, "content_block_delta",
                    json_pack("{s:s, s:i, s:{s:s, s:s}}", "type", "content_block_delta", "index", 0,
                              "delta", "type", "signature_delta", "signature", sig));
    add_named_event(rd, "content_block_stop",
                    json_pack("{s:s, s:i}", "type", "content_block_stop", "index", 0));
}

/* count_tokens: {"input_tokens": the body's bytes / 10}, deterministic and
 * unlike the gateway's own estimate (bytes / 4). */
static enum MHD_Result serve_count_tokens(struct MHD_Connection *c, const req_t *rq,
                                          const scenario_t *sc)
{
    char body[64];
    int n = snprintf(body, sizeof(body), "{\"input_tokens\":%zu}", rq->len / 10);
    return send_body(c, 200, "application/json", xstrdup(body), (size_t)n, sc);
}

static enum MHD_Result serve_anthropic(struct MHD_Connection *c, const char *url,
                                       const char *method, const req_t *rq, const scenario_t *sc)
{
    char msg[300];
    if (strcmp(method, "POST") != 0)
        return queue_dialect_error(c, D_ANTHROPIC, 405, "method not allowed", sc);
    if (!MHD_lookup_connection_value(c, MHD_HEADER_KIND, "x-api-key"))
        return queue_dialect_error(c, D_ANTHROPIC, 401, "x-api-key header is required", sc);
    if (!MHD_lookup_connection_value(c, MHD_HEADER_KIND, "anthropic-version"))
        return queue_dialect_error(c, D_ANTHROPIC, 400, "anthropic-version: header is required",
                                   sc);
    if (has_suffix(url, "/count_tokens"))
        return serve_count_tokens(c, rq, sc);
    json_t *in = json_loadb(rq->body ? rq->body : "", rq->len, 0, NULL);
    const char *model = json_string_value(json_object_get(in, "model"));
    json_t *messages = json_object_get(in, "messages");
    json_t *mt = json_object_get(in, "max_tokens");
    if (!json_is_object(in) || !model || !json_is_array(messages) || !json_is_integer(mt) ||
        json_integer_value(mt) < 1) {
        json_decref(in);
        snprintf(msg, sizeof(msg), "mock %s: model, messages and max_tokens are required", g.name);
        return queue_dialect_error(c, D_ANTHROPIC, 400, msg, sc);
    }
    bool stream = json_is_true(json_object_get(in, "stream"));
    json_t *tool = json_array_get(json_object_get(in, "tools"), 0);
    const char *tool_name = json_string_value(json_object_get(tool, "name"));
    /* a tool_result in the last user turn */
    char *result = NULL;
    json_t *last = json_array_get(messages, json_array_size(messages) - 1);
    size_t i;
    json_t *b;
    json_array_foreach(json_object_get(last, "content"), i, b)
    {
        const char *type = json_string_value(json_object_get(b, "type"));
        if (!result && type && strcmp(type, "tool_result") == 0)
            result = result_text(json_object_get(b, "content"));
    }
    bool call = tool_name && !result;
    const char *tt = json_string_value(json_object_get(json_object_get(in, "thinking"), "type"));
    bool thinking = tt && strcmp(tt, "enabled") == 0;
    bool cached = rq->body && memmem(rq->body, rq->len, "\"cache_control\"", 15);
    int base = thinking ? 1 : 0; /* index of the text block */
    char *hello = hello_text(result);
    json_t *args = call ? mock_args(json_object_get(tool, "input_schema")) : NULL;
    char id[160], sig[160];
    snprintf(id, sizeof(id), "msg_mock_%s", g.name);
    snprintf(sig, sizeof(sig), "mock-sig-%s", g.name);

    enum MHD_Result ret;
    if (!stream) {
        json_t *content = json_array();
        if (thinking)
            json_array_append_new(content,
                                  json_pack("{s:s, s:s, s:s}", "type", "thinking", "thinking",
                                            "Mock thinking about it.", "signature", sig));
        json_array_append_new(content, json_pack("{s:s, s:s}", "type", "text", "text",
                                                 call ? "Calling a tool." : hello));
        if (call)
            json_array_append_new(content,
                                  json_pack("{s:s, s:s, s:s, s:O}", "type", "tool_use", "id",
                                            "toolu_mock_1", "name", tool_name, "input", args));
        json_t *out = json_pack("{s:s, s:s, s:s, s:s, s:o, s:s, s:n, s:o}", "id", id, "type",
                                "message", "role", "assistant", "model", model, "content", content,
                                "stop_reason", call ? "tool_use" : "end_turn", "stop_sequence",
                                "usage", anthropic_usage(cached, 4));
        size_t len;
        char *body = dump_take(out, &len);
        ret = send_body(c, 200, "application/json", body, len, sc);
    } else {
        reader_t *rd = stream_reader_new(c, sc);
        add_named_event(rd, "message_start",
                        json_pack("{s:s, s:{s:s, s:s, s:s, s:s, s:[], s:n, s:n, s:o}}", "type",
                                  "message_start", "message", "id", id, "type", "message", "role",
                                  "assistant", "model", model, "content", "stop_reason",
                                  "stop_sequence", "usage", anthropic_usage(cached, 1)));
        if (thinking)
            add_thinking_events(rd, sig);
        add_named_event(rd, "content_block_start",
                        json_pack("{s:s, s:i, s:{s:s, s:s}}", "type", "content_block_start",
                                  "index", base, "content_block", "type", "text", "text", ""));
        add_named_event(rd, "ping", json_pack("{s:s}", "type", "ping"));
        int n = result ? 1 : sc->chunks;
        bool failed = false;
        for (int k = 0; k < n && !failed; k++) {
            char tok[32];
            if (k == sc->error_after_chunks) {
                add_named_event(rd, "error",
                                json_pack("{s:s, s:{s:s, s:s}}", "type", "error", "error", "type",
                                          "overloaded_error", "message", "Overloaded"));
                failed = true;
                break;
            }
            snprintf(tok, sizeof(tok), "tok%d ", k);
            add_named_event(rd, "content_block_delta",
                            json_pack("{s:s, s:i, s:{s:s, s:s}}", "type", "content_block_delta",
                                      "index", base, "delta", "type", "text_delta", "text",
                                      result ? hello : tok));
        }
        if (!failed) {
            add_named_event(rd, "content_block_stop",
                            json_pack("{s:s, s:i}", "type", "content_block_stop", "index", base));
            if (call) {
                add_named_event(rd, "content_block_start",
                                json_pack("{s:s, s:i, s:{s:s, s:s, s:s, s:{}}}", "type",
                                          "content_block_start", "index", base + 1, "content_block",
                                          "type", "tool_use", "id", "toolu_mock_1", "name",
                                          tool_name, "input"));
                /* an empty first delta, then pieces of about 5 bytes (whole
                 * UTF-8 characters), as Anthropic does */
                char *js = dump_take(json_incref(args), NULL);
                size_t jl = strlen(js), piece;
                add_partial_json(rd, base + 1, js, 0);
                for (size_t at = 0; at < jl; at += piece) {
                    piece = jl - at < 5 ? jl - at : 5;
                    while (at + piece < jl && ((unsigned char)js[at + piece] & 0xC0) == 0x80)
                        piece++;
                    add_partial_json(rd, base + 1, js + at, piece);
                }
                free(js);
                add_named_event(
                    rd, "content_block_stop",
                    json_pack("{s:s, s:i}", "type", "content_block_stop", "index", base + 1));
            }
            add_named_event(rd, "message_delta",
                            json_pack("{s:s, s:{s:s, s:n}, s:{s:i}}", "type", "message_delta",
                                      "delta", "stop_reason", call ? "tool_use" : "end_turn",
                                      "stop_sequence", "usage", "output_tokens", 4));
            add_named_event(rd, "message_stop", json_pack("{s:s}", "type", "message_stop"));
        }
        ret = queue_reader(c, 200, "text/event-stream", MHD_SIZE_UNKNOWN, sse_read, rd, sc);
    }
    json_decref(args);
    free(hello);
    free(result);
    json_decref(in);
    return ret;
}

static json_t *gemini_usage(bool final)
{
    return final ? json_pack("{s:i, s:i, s:i}", "promptTokenCount", 5, "candidatesTokenCount", 4,
                             "totalTokenCount", 9)
                 : json_pack("{s:i, s:i}", "promptTokenCount", 5, "totalTokenCount", 5);
}

static json_t *gemini_response(const char *model, json_t *parts, bool final)
{
    char rid[160];
    snprintf(rid, sizeof(rid), "mock-%s", g.name);
    json_t *cand =
        json_pack("{s:{s:o, s:s}, s:i}", "content", "parts", parts, "role", "model", "index", 0);
    if (final)
        json_object_set_new(cand, "finishReason", json_string("STOP"));
    return json_pack("{s:[o], s:o, s:s, s:s}", "candidates", cand, "usageMetadata",
                     gemini_usage(final), "modelVersion", model, "responseId", rid);
}

static enum MHD_Result serve_gemini(struct MHD_Connection *c, const char *url, const char *method,
                                    const req_t *rq, const scenario_t *sc)
{
    char msg[300], model[200];
    if (strcmp(method, "POST") != 0)
        return queue_dialect_error(c, D_GEMINI, 405, "method not allowed", sc);
    if (!MHD_lookup_connection_value(c, MHD_HEADER_KIND, "x-goog-api-key"))
        return queue_dialect_error(c, D_GEMINI, 403,
                                   "Method doesn't allow unregistered callers (callers without "
                                   "established identity). Please use API Key or other form of "
                                   "API consumer identity to call this API.",
                                   sc);
    const char *m = strstr(url, "/models/") + 8;
    const char *colon = strrchr(url, ':');
    const char *op = colon + 1;
    snprintf(model, sizeof(model), "%.*s", (int)(colon > m ? colon - m : 0), m);
    json_t *in = json_loadb(rq->body ? rq->body : "", rq->len, 0, NULL);
    enum MHD_Result ret;

    if (!json_is_object(in)) {
        json_decref(in);
        snprintf(msg, sizeof(msg), "mock %s: Invalid JSON payload received.", g.name);
        return queue_dialect_error(c, D_GEMINI, 400, msg, sc);
    }
    if (strcmp(op, "embedContent") == 0 || strcmp(op, "batchEmbedContents") == 0) {
        json_t *out;
        if (strcmp(op, "embedContent") == 0) {
            out = json_object_get(in, "content")
                      ? json_pack("{s:{s:[f, f, f]}}", "embedding", "values", 0.1, 0.2, 0.3)
                      : NULL;
        } else {
            json_t *reqs = json_object_get(in, "requests");
            out = json_is_array(reqs) ? json_pack("{s:[]}", "embeddings") : NULL;
            for (size_t i = 0; out && i < json_array_size(reqs); i++)
                json_array_append_new(json_object_get(out, "embeddings"),
                                      json_pack("{s:[f, f, f]}", "values", 0.1, 0.2, 0.3));
        }
        json_decref(in);
        if (!out)
            return queue_dialect_error(c, D_GEMINI, 400, "content / requests is required", sc);
        size_t len;
        char *body = dump_take(out, &len);
        return send_body(c, 200, "application/json", body, len, sc);
    }
    bool stream = strcmp(op, "streamGenerateContent") == 0;
    if (!stream && strcmp(op, "generateContent") != 0) {
        json_decref(in);
        snprintf(msg, sizeof(msg), "mock %s: unknown method %.100s", g.name, op);
        return queue_dialect_error(c, D_GEMINI, 404, msg, sc);
    }
    json_t *contents = json_object_get(in, "contents");
    if (!json_is_array(contents) || json_array_size(contents) == 0) {
        json_decref(in);
        return queue_dialect_error(c, D_GEMINI, 400,
                                   "* GenerateContentRequest.contents: contents "
                                   "is not specified",
                                   sc);
    }
    json_t *decl = json_array_get(
        json_object_get(json_array_get(json_object_get(in, "tools"), 0), "functionDeclarations"),
        0);
    const char *tool_name = json_string_value(json_object_get(decl, "name"));
    char *result = NULL;
    size_t i;
    json_t *p;
    json_array_foreach(
        json_object_get(json_array_get(contents, json_array_size(contents) - 1), "parts"), i, p)
    {
        json_t *fr = json_object_get(p, "functionResponse");
        if (!result && fr)
            result = result_text(json_object_get(fr, "response"));
    }
    bool call = tool_name && !result;
    char *hello = hello_text(result);
    char sig[160];
    snprintf(sig, sizeof(sig), "mock-sig-%s", g.name);
    json_t *fcall =
        call ? json_pack("{s:{s:s, s:o}, s:s}", "functionCall", "name", tool_name, "args",
                         mock_args(json_object_get(decl, "parameters")), "thoughtSignature", sig)
             : NULL;

    if (!stream) {
        json_t *parts = json_pack("[{s:s}]", "text", call ? "Calling a tool." : hello);
        if (call)
            json_array_append(parts, fcall);
        size_t len;
        char *body = dump_take(gemini_response(model, parts, true), &len);
        ret = send_body(c, 200, "application/json", body, len, sc);
    } else {
        const char *alt = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "alt");
        bool sse = alt && strcmp(alt, "sse") == 0;
        json_t *events = json_array();
        int n = result ? 1 : sc->chunks;
        bool failed = false;
        for (int k = 0; k < n; k++) {
            char tok[32];
            if (k == sc->error_after_chunks) {
                json_array_append_new(events, json_pack("{s:{s:i, s:s, s:s}}", "error", "code", 503,
                                                        "message", "The model is overloaded.",
                                                        "status", "UNAVAILABLE"));
                failed = true;
                break;
            }
            snprintf(tok, sizeof(tok), "tok%d ", k);
            bool final = k == n - 1 && !call;
            json_array_append_new(
                events,
                gemini_response(model, json_pack("[{s:s}]", "text", result ? hello : tok), final));
        }
        if (call && !failed)
            json_array_append_new(events, gemini_response(model, json_pack("[O]", fcall), true));
        if (json_array_size(events) == 0)
            json_array_append_new(events,
                                  gemini_response(model, json_pack("[{s:s}]", "text", ""), true));
        if (!sse) {
            size_t len;
            char *body = dump_take(events, &len);
            ret = send_body(c, 200, "application/json", body, len, sc);
        } else {
            reader_t *rd = stream_reader_new(c, sc);
            json_t *ev;
            json_array_foreach(events, i, ev) add_event(rd, json_incref(ev));
            json_decref(events);
            ret = queue_reader(c, 200, "text/event-stream", MHD_SIZE_UNKNOWN, sse_read, rd, sc);
        }
    }
    json_decref(fcall);
    free(hello);
    free(result);
    json_decref(in);
    return ret;
}

/* ---------------------------------------------------------------- recording */

static enum MHD_Result header_cb(void *cls, enum MHD_ValueKind kind, const char *key,
                                 const char *value)
{
    (void)kind;
    json_t *obj = cls;
    char name[256];
    size_t i = 0;
    for (; key[i] && i < sizeof(name) - 1; i++)
        name[i] = (char)((key[i] >= 'A' && key[i] <= 'Z') ? key[i] + 32 : key[i]);
    name[i] = '\0';
    if (!value)
        value = "";
    const char *old = json_string_value(json_object_get(obj, name));
    if (old) {
        size_t n = strlen(old) + strlen(value) + 3;
        char *joined = xmalloc(n);
        snprintf(joined, n, "%s, %s", old, value);
        json_object_set_new(obj, name, json_bytes(joined, strlen(joined)));
        free(joined);
    } else {
        json_object_set_new(obj, name, json_bytes(value, strlen(value)));
    }
    return MHD_YES;
}

static enum MHD_Result arg_cb(void *cls, enum MHD_ValueKind kind, const char *key,
                              const char *value)
{
    (void)kind;
    json_object_set_new(cls, key, json_bytes(value ? value : "", value ? strlen(value) : 0));
    return MHD_YES;
}

static void record_request(struct MHD_Connection *c, const char *url, const char *method, req_t *rq)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    conn_t *cn = ci ? ci->socket_context : NULL;

    json_t *headers = json_object(), *query = json_object();
    MHD_get_connection_values(c, MHD_HEADER_KIND, header_cb, headers);
    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, arg_cb, query);
    size_t keep = rq->len < MOCK_MAX_RECORD_BODY ? rq->len : MOCK_MAX_RECORD_BODY;

    pthread_mutex_lock(&g.mu);
    if (g.record_bytes + keep > MOCK_MAX_RECORD_TOTAL)
        keep = 0;
    bool truncated = keep < rq->len || rq->too_large;
    g.requests++;
    g.in_flight++;
    rq->recorded = true;
    if (cn && cn->counted_gen != g.gen) {
        cn->counted_gen = g.gen;
        g.connections++;
    }
    if (json_array_size(g.records) < MOCK_MAX_RECORDS) {
        g.record_bytes += keep;
        json_array_append_new(g.records,
                              json_pack("{s:s, s:s, s:o, s:I, s:o, s:o, s:b}", "method", method,
                                        "path", url, "query", query, "connection",
                                        (json_int_t)(cn ? cn->id : 0), "headers", headers, "body",
                                        json_bytes(rq->body ? rq->body : "", keep),
                                        "body_truncated", truncated));
        headers = query = NULL;
    }
    pthread_mutex_unlock(&g.mu);
    json_decref(headers);
    json_decref(query);
}

/* ---------------------------------------------------------------- control */

/* Drops every queued scenario (caller holds g.mu). */
static void clear_queue(void)
{
    while (g.q_len > 0) {
        scenario_clear(&g.queue[g.q_head]);
        g.q_head = (g.q_head + 1) % MOCK_MAX_QUEUE;
        g.q_len--;
    }
}

static enum MHD_Result serve_control(struct MHD_Connection *c, const char *url, const char *method,
                                     const req_t *rq)
{
    if (rq->too_large)
        return queue_error(c, 413, "invalid_request_error", "control body too large", NULL);
    bool post = strcmp(method, "POST") == 0, get = strcmp(method, "GET") == 0;
    if (strcmp(url, "/_mock/scenario") == 0 && post) {
        json_error_t jerr;
        json_t *o = json_loadb(rq->body ? rq->body : "", rq->len, 0, &jerr);
        char err[256] = "";
        scenario_t s;
        if (!o) {
            snprintf(err, sizeof(err), "invalid JSON: %s", jerr.text);
            scenario_default(&s);
        } else if (scenario_parse(o, &s, err, sizeof(err)) == 0) {
            pthread_mutex_lock(&g.mu);
            if (s.count > 0 && g.q_len >= MOCK_MAX_QUEUE) {
                snprintf(err, sizeof(err), "scenario queue full (%u)", MOCK_MAX_QUEUE);
                scenario_clear(&s);
            } else if (s.count > 0) {
                g.queue[(g.q_head + g.q_len) % MOCK_MAX_QUEUE] = s;
                g.q_len++;
            } else {
                if (g.has_def)
                    scenario_clear(&g.def);
                g.def = s;
                g.has_def = true;
            }
            size_t queued = g.q_len;
            json_decref(o); /* s holds its own reference, counted under the mutex */
            o = NULL;
            pthread_mutex_unlock(&g.mu);
            if (!err[0]) {
                return queue_json(
                    c, 200, json_pack("{s:b, s:I}", "ok", 1, "queued", (json_int_t)queued), NULL);
            }
        }
        json_decref(o);
        return queue_error(c, 400, "invalid_request_error", err, NULL);
    }
    if (strcmp(url, "/_mock/clear_queue") == 0 && post) {
        pthread_mutex_lock(&g.mu);
        json_int_t dropped = (json_int_t)g.q_len;
        clear_queue();
        pthread_mutex_unlock(&g.mu);
        return queue_json(c, 200, json_pack("{s:b, s:I}", "ok", 1, "dropped", dropped), NULL);
    }
    if (strcmp(url, "/_mock/reset") == 0 && post) {
        pthread_mutex_lock(&g.mu);
        clear_queue();
        if (g.has_def)
            scenario_clear(&g.def);
        g.has_def = false;
        json_array_clear(g.records);
        g.record_bytes = 0;
        g.gen++;
        g.requests = g.connections = g.accepted = g.completed = g.aborted = 0;
        __atomic_store_n(&g.stream_bytes_sent, 0, __ATOMIC_RELAXED);
        pthread_mutex_unlock(&g.mu);
        return queue_json(c, 200, json_pack("{s:b}", "ok", 1), NULL);
    }
    if (strcmp(url, "/_mock/requests") == 0 && get) {
        pthread_mutex_lock(&g.mu);
        char *s = json_dumps(g.records, JSON_COMPACT | JSON_PRESERVE_ORDER);
        pthread_mutex_unlock(&g.mu);
        if (!s)
            return MHD_NO;
        enum MHD_Result ret = queue_bytes(c, 200, "application/json", s, strlen(s), NULL);
        free(s);
        return ret;
    }
    if (strcmp(url, "/_mock/stats") == 0 && get) {
        pthread_mutex_lock(&g.mu);
        json_t *j = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "requests",
                              (json_int_t)g.requests, "connections", (json_int_t)g.connections,
                              "connections_accepted", (json_int_t)g.accepted, "open_connections",
                              (json_int_t)g.open_conns, "in_flight", (json_int_t)g.in_flight,
                              "completed", (json_int_t)g.completed, "aborted",
                              (json_int_t)g.aborted, "stream_bytes_sent",
                              (json_int_t)__atomic_load_n(&g.stream_bytes_sent, __ATOMIC_RELAXED));
        pthread_mutex_unlock(&g.mu);
        return queue_json(c, 200, j, NULL);
    }
    return queue_error(c, 404, "invalid_request_error", "unknown mock control endpoint", NULL);
}

/* ---------------------------------------------------------------- MHD glue */

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    (void)cls;
    (void)version;
    req_t *rq = *con_cls;
    if (!rq) {
        rq = xmalloc(sizeof(*rq));
        memset(rq, 0, sizeof(*rq));
        rq->control = strncmp(url, "/_mock/", 7) == 0;
        rq->limit = rq->control ? MOCK_MAX_CONTROL_BODY : MOCK_MAX_BODY;
        scenario_default(&rq->sc);
        *con_cls = rq;
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (rq->too_large || rq->len + n > rq->limit) {
            rq->too_large = true;
            return MHD_YES; /* keep reading, answer 413 at the end */
        }
        if (rq->len + n + 1 > rq->cap) {
            size_t cap = rq->cap ? rq->cap : 4096;
            while (cap < rq->len + n + 1)
                cap *= 2;
            char *p = realloc(rq->body, cap);
            if (!p)
                abort();
            rq->body = p;
            rq->cap = cap;
        }
        memcpy(rq->body + rq->len, upload_data, n);
        rq->len += n;
        rq->body[rq->len] = '\0';
        return MHD_YES;
    }

    if (rq->control)
        return serve_control(c, url, method, rq);

    record_request(c, url, method, rq);
    if (rq->too_large) {
        char msg[128];
        snprintf(msg, sizeof(msg), "mock %s: request body larger than %u bytes", g.name,
                 MOCK_MAX_BODY);
        return queue_error(c, 413, "invalid_request_error", msg, NULL);
    }

    scenario_t *sc = &rq->sc;
    scenario_take(sc);
    rq->has_sc = true;
    int fd = conn_fd(c);
    if (sc->headers_delay_ms > 0 && wait_ms(fd, sc->headers_delay_ms) != 0)
        return MHD_NO; /* client gone or shutting down */
    if (sc->fault == FAULT_STALL) {
        if (wait_ms(fd, MOCK_STALL_MS) == 0)
            rq->injected = true; /* bound reached: drop the connection */
        return MHD_NO;
    }
    if (sc->fault == FAULT_RESET_BEFORE_HEADERS) {
        rq->injected = true;
        return MHD_NO;
    }
    if (sc->fault == FAULT_RESET_MID_BODY)
        rq->injected = true;

    if (sc->status != 200 || sc->body) {
        const char *ctype = sc->content_type ? sc->content_type : "application/json";
        size_t len;
        char *body;
        if (sc->body) {
            len = sc->body_len;
            body = memcpy(xmalloc(len + 1), sc->body, len + 1);
        } else {
            char msg[200];
            dialect_t d = dialect_of(url);
            snprintf(msg, sizeof(msg), "mock %s status %d", g.name, sc->status);
            body = dump_take(d == D_OPENAI || d == D_AZURE ? openai_error("server_error", "%s", msg)
                                                           : dialect_error(d, sc->status, msg),
                             &len);
        }
        return send_body(c, sc->status, ctype, body, len, sc);
    }
    if (sc->fault == FAULT_GARBAGE) {
        char *body = xstrdup("this is not json {{{");
        return send_body(c, 200, "application/json", body, strlen(body), sc);
    }
    switch (dialect_of(url)) {
    case D_ANTHROPIC:
        return serve_anthropic(c, url, method, rq, sc);
    case D_GEMINI:
        return serve_gemini(c, url, method, rq, sc);
    case D_AZURE:
        if (!MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "api-version"))
            return queue_json(c, 404,
                              json_pack("{s:{s:s, s:s}}", "error", "code", "404", "message",
                                        "Resource not found"),
                              sc);
        if (!MHD_lookup_connection_value(c, MHD_HEADER_KIND, "api-key"))
            return queue_json(c, 401,
                              json_pack("{s:{s:s, s:s}}", "error", "code", "401", "message",
                                        "Access denied due to missing subscription key."),
                              sc);
        break;
    case D_OPENAI:
        break;
    }
    return serve_openai(c, url, method, rq, sc);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)c;
    req_t *rq = *con_cls;
    if (!rq)
        return;
    if (rq->recorded) {
        pthread_mutex_lock(&g.mu);
        g.in_flight--;
        if (toe == MHD_REQUEST_TERMINATED_COMPLETED_OK)
            g.completed++;
        else if (!rq->injected)
            g.aborted++;
        pthread_mutex_unlock(&g.mu);
    }
    if (rq->has_sc) {
        /* specs are shared between threads by reference count: every incref
         * and decref happens under the mutex (jansson reads the count
         * without an atomic before decrementing it) */
        pthread_mutex_lock(&g.mu);
        scenario_clear(&rq->sc);
        pthread_mutex_unlock(&g.mu);
    }
    free(rq->body);
    free(rq);
    *con_cls = NULL;
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    (void)cls;
    (void)c;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        conn_t *cn = xmalloc(sizeof(*cn));
        pthread_mutex_lock(&g.mu);
        cn->id = ++g.next_conn_id;
        cn->counted_gen = 0;
        g.accepted++;
        g.open_conns++;
        pthread_mutex_unlock(&g.mu);
        *socket_context = cn;
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        pthread_mutex_lock(&g.mu);
        g.open_conns--;
        pthread_mutex_unlock(&g.mu);
        free(*socket_context);
        *socket_context = NULL;
    }
}

/* MHD's error log, prefixed so several mocks in one test log stay apart. */
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char line[512];
    vsnprintf(line, sizeof(line), fmt, ap);
    size_t n = strlen(line);
    while (n > 0 && line[n - 1] == '\n')
        line[--n] = '\0';
    fprintf(stderr, "mock_upstream[%s]: %s\n", g.name, line);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: mock_upstream [--port N] [--name NAME]\n");
}

int main(int argc, char **argv)
{
    long port = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
            char *end;
            port = strtol(argv[++i], &end, 10);
            if (*end || port < 0 || port > 65535) {
                fprintf(stderr, "mock_upstream: bad --port %s\n", argv[i]);
                return 2;
            }
        } else if (strcmp(argv[i], "--name") == 0 && i + 1 < argc) {
            g.name = argv[++i];
            if (!*g.name || strlen(g.name) > 100) {
                fprintf(stderr, "mock_upstream: --name must be 1..100 characters\n");
                return 2;
            }
        } else if (strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }

    /* Signals are taken synchronously by main with sigwait(); the mask is
     * inherited by every MHD thread created below. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (pipe(g.shutdown_pipe) != 0) {
        perror("mock_upstream: pipe");
        return 1;
    }
    json_object_seed(0);
    g.records = json_array();

    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL |
            MHD_USE_ERROR_LOG,
        0, NULL, NULL, on_request, NULL, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)MOCK_CONNECTION_LIMIT, MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)MOCK_BACKLOG,
        MHD_OPTION_THREAD_STACK_SIZE, (size_t)(1024 * 1024), MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (size_t)(128 * 1024), MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, NULL, MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "mock_upstream: cannot listen on 127.0.0.1:%ld\n", port);
        return 1;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    printf("listening on 127.0.0.1:%u\n", di ? (unsigned)di->port : (unsigned)port);
    fflush(stdout);

    int sig = 0;
    while (sigwait(&sigs, &sig) != 0) {
    }

    /* Wake every waiting connection thread, then stop (joins them). */
    if (write(g.shutdown_pipe[1], "x", 1) != 1)
        perror("mock_upstream: write");
    MHD_stop_daemon(d);

    while (g.q_len > 0) {
        scenario_clear(&g.queue[g.q_head]);
        g.q_head = (g.q_head + 1) % MOCK_MAX_QUEUE;
        g.q_len--;
    }
    if (g.has_def)
        scenario_clear(&g.def);
    json_decref(g.records);
    close(g.shutdown_pipe[0]);
    close(g.shutdown_pipe[1]);
    return 0;
}
