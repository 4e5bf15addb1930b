/*
 * Audit and log integrity on the real binary (issue 11, findings 3, 8, 9):
 *
 * - an audit record is never lost to its bytes: a stream whose client
 *   leaves right after a split multi-byte character, a request body with
 *   invalid UTF-8, a response copy cut by limits.max_response_bytes inside
 *   a character: each record exists, is valid JSON, keeps the bytes, and
 *   the file verifies; the counters say every record was written;
 * - --verify-audit refuses a file whose first records were removed (and an
 *   empty or one-line remnant) unless it is anchored with --after, and the
 *   daemon logs the chain head to anchor it with;
 * - a model name with a newline cannot forge a daemon log line at debug.
 */
#include "harness.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A model name of 3-byte characters, its length chosen so that byte
 * COPY_LIMIT of the mock's stream (which repeats the model in every event)
 * falls inside one; the test checks that premise. */
#define EURO "\xe2\x82\xac"
#define EUROS8 EURO EURO EURO EURO EURO EURO EURO EURO
#define MODEL_EUROS "mm-" EUROS8 EUROS8 EUROS8 EUROS8 EURO EURO
#define COPY_LIMIT 1024

static th_proc_t mock;

static char *config(const char *audit, const char *limits)
{
    return th_strf("{\"listen\":\"127.0.0.1:0\","
                   " \"providers\":{\"up\":{\"kind\":\"openai\","
                   "   \"base_url\":\"http://127.0.0.1:%d/v1\",\"api_key\":\"sk-up-secret\","
                   "   \"vendor\":\"mock\",\"region\":\"eu\",\"jurisdiction\":\"FR\"}},"
                   " \"routes\":{\"chat\":{\"targets\":[{\"provider\":\"up\",\"model\":\"m\"}]},"
                   "   \"euro\":{\"targets\":[{\"provider\":\"up\",\"model\":\"" MODEL_EUROS
                   "\"}]}},"
                   " \"audit\":{\"path\":\"%s\",\"bodies\":true}%s}",
                   mock.port, audit, limits ? limits : "");
}

/* ---- files -------------------------------------------------------------- */

static void spit(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* Line i (0-based), strictly parsed; fails the test when it is not JSON. */
static json_t *line_json(const char *path, size_t i)
{
    char *s = th_read_file(path, NULL), *p = s;
    for (size_t k = 0; p && k < i; k++) {
        p = strchr(p, '\n');
        p = p ? p + 1 : NULL;
    }
    assert_non_null(p);
    char *end = strchr(p, '\n');
    json_error_t e;
    json_t *j = json_loadb(p, end ? (size_t)(end - p) : strlen(p), 0, &e);
    if (!j)
        fail_msg("audit line %zu is not JSON: %s", i + 1, e.text);
    free(s);
    return j;
}

static char *temp_path(const char *suffix)
{
    char *p = th_write_temp("", suffix);
    unlink(p); /* the gateway creates it */
    return p;
}

/* ---- base64 and digests ------------------------------------------------- */

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static char *b64_encode(const char *p, size_t n)
{
    char *out = malloc(4 * (n / 3 + 1) + 1), *o = out;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned char)p[i] << 16;
        if (i + 1 < n)
            v |= (unsigned char)p[i + 1] << 8;
        if (i + 2 < n)
            v |= (unsigned char)p[i + 2];
        *o++ = b64[v >> 18 & 63];
        *o++ = b64[v >> 12 & 63];
        *o++ = i + 1 < n ? b64[v >> 6 & 63] : '=';
        *o++ = i + 2 < n ? b64[v & 63] : '=';
    }
    *o = '\0';
    return out;
}

static char *b64_decode(const char *in, size_t *len)
{
    size_t n = strlen(in), o = 0;
    unsigned acc = 0, bits = 0;
    char *out = malloc(n + 1);
    for (size_t i = 0; i < n && in[i] != '='; i++) {
        const char *at = strchr(b64, in[i]);
        assert_non_null(at);
        acc = acc << 6 | (unsigned)(at - b64);
        if ((bits += 6) >= 8) {
            bits -= 8;
            out[o++] = (char)(acc >> bits & 0xFF);
        }
    }
    *len = o;
    return out;
}

/* SHA-256 hex of bytes, with sha256sum (the test does not link the core). */
static void sha256_hex(const char *p, size_t n, char hex[65])
{
    char *in = temp_path(".bin"), *cmd;
    spit(in, p, n);
    cmd = th_strf("sha256sum < '%s'", in);
    FILE *f = popen(cmd, "r");
    assert_non_null(f);
    assert_non_null(fgets(hex, 65, f));
    pclose(f);
    hex[64] = '\0';
    unlink(in);
    free(in);
    free(cmd);
}

/* A record's body `name`: the text member or `name`_base64 decoded. */
static char *body_of(const json_t *rec, const char *name, size_t *len)
{
    char key[64];
    const json_t *t = json_object_get(rec, name);
    snprintf(key, sizeof(key), "%s_base64", name);
    const json_t *b = json_object_get(rec, key);
    if ((t != NULL) == (b != NULL))
        fail_msg("the record has %s %s and %s", t ? "both" : "neither", name, key);
    if (b)
        return b64_decode(json_string_value(b), len);
    *len = json_string_length(t);
    char *out = malloc(*len + 1);
    memcpy(out, json_string_value(t), *len + 1);
    return out;
}

/* ---- the daemon --------------------------------------------------------- */

static int run_verify(const char *const *args, char **out)
{
    return th_run_meridian(args, NULL, out);
}

static long metric(const th_proc_t *gw, const char *name)
{
    char url[256], *at;
    th_response_t r;
    long v = -1;
    th_http("GET", th_url_buf(gw, "/metrics", url, sizeof(url)), NULL, NULL, 0, &r);
    char *needle = th_strf("\n%s ", name);
    if ((at = strstr(r.body, needle)))
        v = strtol(at + strlen(needle), NULL, 10);
    free(needle);
    th_response_free(&r);
    return v;
}

static void post(const th_proc_t *gw, const char *body, size_t len, th_http_opts_t *o,
                 th_response_t *r)
{
    char url[256];
    th_http_ex(o, "POST", th_url_buf(gw, "/v1/chat/completions", url, sizeof(url)), NULL, body, len,
               r);
}

/* ---- finding 3: records whatever the bytes ------------------------------- */

static void test_records_survive_any_bytes(void **state)
{
    static const char event[] =
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\","
        "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"caf\xc3\"},\"finish_reason\":null}]}"
        "\n\n";
    static const char bad_req[] =
        "{\"model\":\"chat\",\"messages\":[{\"role\":\"user\",\"content\":\"\xff\xfe bad\"}]}";
    const char *stream_req = "{\"model\":\"chat\",\"stream\":true,"
                             "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
    const char *euro_req = "{\"model\":\"euro\",\"stream\":true,"
                           "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
    th_proc_t gw = {0};
    th_response_t r1, r2, r3;
    char hex[65], *out = NULL;
    size_t n;
    (void)state;

    char *audit = temp_path(".jsonl");
    char *limits = th_strf(",\"limits\":{\"max_response_bytes\":%d}", COPY_LIMIT);
    char *cfg = config(audit, limits);
    assert_int_equal(th_start_meridian(&gw, cfg, NULL), 0);
    assert_int_equal(th_mock_reset(&mock), 0);

    /* 1. the client leaves right after a split multi-byte character */
    char *ev64 = b64_encode(event, sizeof(event) - 1);
    char *sc = th_strf("{\"count\":1,\"content_type\":\"text/event-stream\",\"hold\":true,"
                       "\"body_base64\":\"%s\"}",
                       ev64);
    assert_int_equal(th_mock_scenario(&mock, sc), 0);
    th_http_opts_t leave = {.abort_after_bytes = sizeof(event) - 1, .timeout_ms = 10000};
    post(&gw, stream_req, strlen(stream_req), &leave, &r1);
    assert_int_equal(r1.status, 200);
    assert_int_equal(r1.body_len, sizeof(event) - 1);
    assert_int_equal(th_wait_lines(audit, 1, 10000), 0);

    /* 2. a request body with invalid UTF-8 in a string */
    post(&gw, bad_req, sizeof(bad_req) - 1, NULL, &r2);
    assert_int_equal(r2.status, 400);
    /* records are written by each worker's sink: wait, so that the next
     * request (maybe on another worker) cannot be written before this one */
    assert_int_equal(th_wait_lines(audit, 2, 10000), 0);

    /* 3. a stream longer than the copy bound, cut inside a character */
    post(&gw, euro_req, strlen(euro_req), NULL, &r3);
    assert_int_equal(r3.status, 200);
    assert_true(r3.body_len > COPY_LIMIT);
    /* the test's premise (else adjust MODEL_EUROS): byte COPY_LIMIT continues
     * a character, so the bound cuts one */
    assert_int_equal((unsigned char)r3.body[COPY_LIMIT] & 0xC0, 0x80);
    size_t boundary = COPY_LIMIT;
    while (((unsigned char)r3.body[boundary] & 0xC0) == 0x80)
        boundary--;
    assert_int_equal(th_wait_lines(audit, 3, 10000), 0);

    json_t *j = line_json(audit, 0);
    char *got = body_of(j, "response_body", &n);
    assert_int_equal(n, sizeof(event) - 1);
    assert_memory_equal(got, event, n);
    sha256_hex(event, n, hex);
    assert_string_equal(json_string_value(json_object_get(j, "response_sha256")), hex);
    assert_true(json_is_false(json_object_get(j, "response_body_truncated")));
    free(got);
    json_decref(j);

    j = line_json(audit, 1);
    assert_int_equal(json_integer_value(json_object_get(j, "status")), 400);
    got = body_of(j, "request_body", &n);
    assert_int_equal(n, sizeof(bad_req) - 1);
    assert_memory_equal(got, bad_req, n);
    sha256_hex(bad_req, n, hex);
    assert_string_equal(json_string_value(json_object_get(j, "request_sha256")), hex);
    free(got);
    json_decref(j);

    j = line_json(audit, 2);
    assert_true(json_is_true(json_object_get(j, "response_body_truncated")));
    assert_int_equal(json_integer_value(json_object_get(j, "response_bytes")), r3.body_len);
    /* cut on the character boundary before the bound: still text */
    const json_t *text = json_object_get(j, "response_body");
    assert_true(json_is_string(text));
    assert_int_equal(json_string_length(text), boundary);
    assert_memory_equal(json_string_value(text), r3.body, boundary);
    json_decref(j);

    assert_int_equal(metric(&gw, "meridian_audit_written_total"), 3);
    assert_int_equal(metric(&gw, "meridian_audit_dropped_total"), 0);
    assert_int_equal(th_stop(&gw), 0);
    const char *args[] = {"--verify-audit", audit, NULL};
    assert_int_equal(run_verify(args, &out), 0);
    free(out);

    th_response_free(&r1);
    th_response_free(&r2);
    th_response_free(&r3);
    unlink(audit);
    free(audit);
    free(ev64);
    free(sc);
    free(limits);
    free(cfg);
}

/* Starts a gateway writing `audit` and makes n successful requests; returns
 * the file's text once their n records are in it (caller frees). */
static char *gateway_with_records(th_proc_t *gw, const char *audit, int n, const char *cfg)
{
    const char *req = "{\"model\":\"chat\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
    th_response_t r;

    assert_int_equal(th_start_meridian(gw, cfg, NULL), 0);
    for (int i = 0; i < n; i++) {
        post(gw, req, strlen(req), NULL, &r);
        assert_int_equal(r.status, 200);
        th_response_free(&r);
    }
    assert_int_equal(th_wait_lines(audit, (size_t)n, 10000), 0);
    return th_read_file(audit, NULL);
}

/* ---- finding 8: a chain must be anchored --------------------------------- */

static void test_verify_needs_an_anchor(void **state)
{
    th_proc_t gw = {0};
    char *out = NULL, hex[65];
    (void)state;

    char *audit = temp_path(".jsonl"), *head = th_strf("%s.head", audit),
         *tail = th_strf("%s.tail", audit), *last = th_strf("%s.last", audit),
         *empty = th_strf("%s.empty", audit);
    char *cfg = config(audit, NULL);
    char *text = gateway_with_records(&gw, audit, 3, cfg);
    char *l2 = strchr(text, '\n') + 1, *l3 = strchr(l2, '\n') + 1;
    sha256_hex(text, (size_t)(l2 - text) - 1, hex); /* the head after record 1 */
    char h3[65];
    sha256_hex(l3, strlen(l3) - 1, h3); /* the head after record 3 */
    assert_int_equal(th_stop(&gw), 0);

    spit(head, text, (size_t)(l2 - text));
    spit(tail, l2, strlen(l2));
    spit(last, l3, strlen(l3));
    spit(empty, "", 0);

    /* the first record removed, only the last one left, nothing left */
    const char *no_first[] = {"--verify-audit", tail, NULL};
    assert_int_equal(run_verify(no_first, &out), 1);
    assert_non_null(strstr(out, "--after"));
    free(out);
    const char *only_last[] = {"--verify-audit", last, NULL};
    assert_int_equal(run_verify(only_last, &out), 1);
    free(out);
    const char *nothing[] = {"--verify-audit", empty, NULL};
    assert_int_equal(run_verify(nothing, &out), 1);
    free(out);

    /* the whole file starts the chain; its head is printed */
    const char *whole[] = {"--verify-audit", audit, NULL};
    assert_int_equal(run_verify(whole, &out), 0);
    assert_non_null(strstr(out, "3 records, chain intact (seq 1..3)"));
    assert_non_null(strstr(out, h3));
    free(out);

    /* anchored by the predecessor file or its head */
    const char *after_file[] = {"--verify-audit", tail, "--after", head, NULL};
    assert_int_equal(run_verify(after_file, &out), 0);
    assert_non_null(strstr(out, "2 records, chain intact (seq 2..3)"));
    free(out);
    const char *after_hash[] = {"--after", hex, "--verify-audit", tail, NULL};
    assert_int_equal(run_verify(after_hash, &out), 0);
    free(out);
    /* ... and the anchor must be the right one */
    const char *wrong_file[] = {"--verify-audit", last, "--after", head, NULL};
    assert_int_equal(run_verify(wrong_file, &out), 1);
    free(out);
    hex[0] = hex[0] == '0' ? '1' : '0';
    const char *wrong_hash[] = {"--verify-audit", tail, "--after", hex, NULL};
    assert_int_equal(run_verify(wrong_hash, &out), 1);
    free(out);
    const char *genesis_after[] = {"--verify-audit", audit, "--after", head, NULL};
    assert_int_equal(run_verify(genesis_after, &out), 1);
    free(out);
    const char *no_verify[] = {"--after", head, NULL};
    assert_int_equal(run_verify(no_verify, &out), 2);
    free(out);

    free(text);
    unlink(audit);
    unlink(head);
    unlink(tail);
    unlink(last);
    unlink(empty);
    free(audit);
    free(head);
    free(tail);
    free(last);
    free(empty);
    free(cfg);
}

/* The daemon logs the chain head (seq and the digest the next record's
 * prev will carry) when the file is closed, so it can be kept off-host. */
static void test_head_is_logged(void **state)
{
    th_proc_t gw = {0};
    char hex[65];
    (void)state;

    char *audit = temp_path(".jsonl");
    char *cfg = config(audit, NULL);
    char *text = gateway_with_records(&gw, audit, 2, cfg);
    char *l2 = strchr(text, '\n') + 1;
    sha256_hex(l2, strlen(l2) - 1, hex);
    char *want = th_strf("chain head seq 2 %s", hex);
    /* SIGUSR1 (logrotate) logs it, and so does the shutdown */
    assert_int_equal(th_signal(&gw, SIGUSR1), 0);
    assert_int_equal(th_wait_log(&gw, want, 5000), 0);
    assert_int_equal(th_stop(&gw), 0);
    free(want);
    free(text);
    unlink(audit);
    free(audit);
    free(cfg);
}

/* ---- finding 9: no forged log lines ------------------------------------- */

/* Whether `line` starts like every line log.c writes. */
static int log_line_ok(const char *line, size_t n)
{
    static const char *const levels[] = {"debug ", "info  ", "warn  ", "error "};
    if (n < 31 || line[4] != '-' || line[10] != 'T' || line[23] != 'Z' || line[24] != ' ')
        return 0;
    for (size_t i = 0; i < 4; i++)
        if (memcmp(line + 25, levels[i], 6) == 0)
            return 1;
    return 0;
}

static void test_model_name_cannot_forge_a_log_line(void **state)
{
    const char *body = "{\"model\":\"up/x\\n2000-01-01T00:00:00.000Z error forged line\\u001b[2J\","
                       "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
    const char *args[] = {"--log-level", "debug", NULL};
    th_proc_t gw = {0};
    th_response_t r;
    (void)state;

    char *audit = temp_path(".jsonl");
    char *cfg = config(audit, NULL);
    assert_int_equal(th_start_meridian_ex(&gw, cfg, args, NULL), 0);
    post(&gw, body, strlen(body), NULL, &r);
    long status = r.status;
    th_response_free(&r);
    assert_int_equal(th_wait_lines(audit, 1, 10000), 0);
    char *log = th_read_log(&gw);
    assert_int_equal(th_stop(&gw), 0);

    /* Every line of the daemon's output (it has no access log here) is a
     * log line: no forged one, no raw escape character. */
    size_t lines = 0;
    for (char *p = log, *nl; *p; p = nl + 1) {
        nl = strchr(p, '\n');
        assert_non_null(nl);
        if (!log_line_ok(p, (size_t)(nl - p)) || memchr(p, '\x1b', (size_t)(nl - p)))
            fail_msg("not a log line: %.*s", (int)(nl - p), p);
        lines++;
    }
    assert_true(lines > 2);
    assert_null(strstr(log, "\n2000-01-01T00:00:00.000Z"));
    /* The request reached the debug line that quotes its model (a later
     * refusal of such names would answer 400 before any attempt). */
    if (status == 200)
        assert_non_null(strstr(log, "x\\n2000-01-01T00:00:00.000Z error forged line\\x1b[2J"));
    free(log);
    unlink(audit);
    free(audit);
    free(cfg);
}

static int group_setup(void **state)
{
    (void)state;
    return th_start_mock(&mock, "up") < 0 ? -1 : 0;
}

static int group_teardown(void **state)
{
    (void)state;
    return th_stop(&mock) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_records_survive_any_bytes),
        cmocka_unit_test(test_verify_needs_an_anchor),
        cmocka_unit_test(test_head_is_logged),
        cmocka_unit_test(test_model_name_cannot_forge_a_log_line),
    };
    th_init();
    int rc = cmocka_run_group_tests(tests, group_setup, group_teardown);
    th_cleanup();
    return rc;
}
