/*
 * reqlog: every audit record is written, whatever bytes the request carried.
 *
 * Bodies and strings with invalid UTF-8, NUL bytes, control characters,
 * U+2028, a multi-byte character cut at the end: each record must reach the
 * file as a valid JSON line that jansson reads and --verify-audit accepts,
 * with the bodies recoverable byte for byte. A record the sink refuses is
 * counted and logged as an error naming the request.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "meridian/audit.h"
#include "meridian/logsink.h"
#include "meridian/reqlog.h"
#include "meridian/sha256.h"

/* ---- helpers ------------------------------------------------------------ */

static void temp_path(char path[64], const char *tag)
{
    int fd;

    snprintf(path, 64, "/tmp/test_reqlog_%s.XXXXXX", tag);
    fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    unlink(path); /* the sink creates it */
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long n;

    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    n = ftell(f);
    assert_true(n >= 0);
    rewind(f);
    buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    if (len)
        *len = (size_t)n;
    return buf;
}

static void assert_contains(const char *hay, const char *needle)
{
    if (!strstr(hay, needle))
        fail_msg("\"%s\" does not contain \"%s\"", hay, needle);
}

static mr_reqlog_t *open_audit(char *path, int bodies, size_t queue_bytes)
{
    mr_config_t cfg;
    mr_reqlog_t *l;
    char err[256];

    memset(&cfg, 0, sizeof(cfg));
    cfg.audit.path = path;
    cfg.audit.bodies = bodies;
    cfg.audit.queue_bytes = queue_bytes;
    if (mr_reqlog_open(&cfg, 1, &l, err, sizeof(err)) != 0)
        fail_msg("mr_reqlog_open: %s", err);
    return l;
}

static int b64_value(int c)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const char *p = c ? strchr(tab, c) : NULL;
    return p ? (int)(p - tab) : -1;
}

/* Standard base64 with padding (RFC 4648 section 4); -1 when malformed. */
static int b64_decode(const char *in, char *out, size_t *out_len)
{
    size_t n = strlen(in), o = 0;

    if (n % 4)
        return -1;
    for (size_t i = 0; i < n; i += 4) {
        int v[4];
        for (int k = 0; k < 4; k++)
            v[k] = in[i + k] == '=' && i + 4 == n && k >= 2 ? 0 : b64_value(in[i + k]);
        if (v[0] < 0 || v[1] < 0 || v[2] < 0 || v[3] < 0)
            return -1;
        out[o++] = (char)(v[0] << 2 | v[1] >> 4);
        if (in[i + 2] != '=')
            out[o++] = (char)((v[1] & 15) << 4 | v[2] >> 2);
        if (in[i + 3] != '=')
            out[o++] = (char)((v[2] & 3) << 6 | v[3]);
    }
    *out_len = o;
    return 0;
}

/*
 * The bytes a record stores for `name`: the string member `name` (valid
 * UTF-8 text) or `name`_base64 (any bytes). Fails when neither or both are
 * there. Returns a malloc'd copy, its length in *len.
 */
static char *body_member(const json_t *rec, const char *name, size_t *len)
{
    char b64name[64];
    const json_t *t = json_object_get(rec, name), *b;
    char *out;

    snprintf(b64name, sizeof(b64name), "%s_base64", name);
    b = json_object_get(rec, b64name);
    if ((t != NULL) == (b != NULL))
        fail_msg("record has %s %s and %s", t && b ? "both" : "neither", name, b64name);
    if (t) {
        assert_true(json_is_string(t));
        *len = json_string_length(t);
        out = malloc(*len + 1);
        assert_non_null(out);
        memcpy(out, json_string_value(t), *len + 1);
        return out;
    }
    assert_true(json_is_string(b));
    out = malloc(strlen(json_string_value(b)) + 1);
    assert_non_null(out);
    assert_int_equal(b64_decode(json_string_value(b), out, len), 0);
    return out;
}

/* A record of a request answered 200 with nothing else known. */
static mr_request_rec_t plain_rec(const char *id)
{
    mr_request_rec_t rec = {
        .id = id,
        .endpoint = "/v1/chat/completions",
        .status = 200,
        .cost_usd = -1,
        .ttfb_us = UINT64_MAX,
        .unix_time = 1700000000.5,
    };
    rec.usage = MR_USAGE_UNKNOWN;
    return rec;
}

/* mr_audit_verify on path: 0 when intact. */
static int verify(const char *path)
{
    char *text = NULL, err[256] = "";
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    int rc;

    assert_non_null(f);
    rc = mr_audit_verify(path, NULL, f, err, sizeof(err));
    fclose(f);
    if (rc != 0)
        fprintf(stderr, "verify: %s%s\n", text ? text : "", err);
    free(text);
    return rc;
}

/* ---- records whatever the bytes ----------------------------------------- */

typedef struct bytes {
    const char *p;
    size_t n;
} bytes_t;

#define B(s)                                                                                       \
    {                                                                                              \
        s, sizeof(s) - 1                                                                           \
    }

static const bytes_t bodies[] = {
    B("{\"model\":\"chat\"}"),
    B("{\"content\":\"\xff\xfe\"}"),                /* invalid UTF-8 in a string */
    B("data: {\"content\":\"caf\xc3"),              /* ends inside a 2-byte character */
    B("data: {\"content\":\"\xe2\x82"),             /* inside a 3-byte one */
    B("\xf0\x9f\x98"),                              /* inside a 4-byte one */
    B("nul \0 inside"),                             /* a NUL byte */
    B("\x01\x02\x1b[31mred\r\n\t\x7f"),             /* control characters */
    B("line\xe2\x80\xa8sep\xe2\x80\xa9para"),       /* U+2028, U+2029 */
    B("\xed\xa0\x80 surrogate, \xc0\xaf overlong"), /* not UTF-8 */
    B("\"quotes\" and \\backslashes\\"),
    B("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"), /* valid multi-byte */
    B(""),
};
#define N_BODIES (sizeof(bodies) / sizeof(bodies[0]))

static void test_any_bytes_make_a_valid_record(void **state)
{
    char path[64];
    mr_reqlog_t *l;
    size_t len;
    char *text, *line;
    unsigned lines = 0;
    (void)state;

    temp_path(path, "bytes");
    l = open_audit(path, 1, 0);
    for (size_t i = 0; i < N_BODIES; i++) {
        char id[64];
        snprintf(id, sizeof(id), "req-%zu\n\xff", i);
        mr_request_rec_t rec = plain_rec(id);
        rec.model = "m\xc3\n\x1b[2J";
        rec.request_body = bodies[i].p;
        rec.request_len = bodies[i].n;
        rec.response_body = bodies[N_BODIES - 1 - i].p;
        rec.response_len = bodies[N_BODIES - 1 - i].n;
        mr_reqlog_write(l, 0, &rec);
    }
    mr_reqlog_close(l);

    text = slurp(path, &len);
    for (char *save = NULL, *p = strtok_r(text, "\n", &save); p; p = strtok_r(NULL, "\n", &save)) {
        json_error_t e;
        json_t *rec = json_loadb(p, strlen(p), 0, &e);
        size_t n;
        if (!rec)
            fail_msg("record %u is not JSON: %s: %s", lines + 1, e.text, p);
        line = body_member(rec, "request_body", &n);
        assert_int_equal(n, bodies[lines].n);
        assert_memory_equal(line, bodies[lines].p, n);
        free(line);
        line = body_member(rec, "response_body", &n);
        assert_int_equal(n, bodies[N_BODIES - 1 - lines].n);
        assert_memory_equal(line, bodies[N_BODIES - 1 - lines].p, n);
        free(line);
        /* strings that are not bodies: readable, invalid bytes replaced */
        assert_string_equal(json_string_value(json_object_get(rec, "model")),
                            "m\xef\xbf\xbd\n\x1b[2J");
        json_decref(rec);
        lines++;
    }
    free(text);
    assert_int_equal(lines, N_BODIES);
    assert_int_equal(verify(path), 0);
    unlink(path);
}

/* ---- a copy cut at its bound -------------------------------------------- */

/* The record for a response of `sent` bytes whose copy holds the first
 * copy_len of them; returns the parsed record. */
static json_t *cut_record(const char *copy, size_t copy_len, uint64_t sent)
{
    char path[64];
    mr_reqlog_t *l;
    json_t *rec;
    char *text;

    temp_path(path, "cut");
    l = open_audit(path, 1, 0);
    mr_request_rec_t rec_in = plain_rec("req-cut");
    rec_in.response_body = copy;
    rec_in.response_len = copy_len;
    rec_in.response_bytes = sent;
    mr_reqlog_write(l, 0, &rec_in);
    mr_reqlog_close(l);
    assert_int_equal(verify(path), 0);
    text = slurp(path, NULL);
    rec = json_loads(text, 0, NULL);
    assert_non_null(rec);
    free(text);
    unlink(path);
    return rec;
}

static void test_cut_copy_ends_on_a_character_and_says_so(void **state)
{
    static const struct {
        const char *copy;
        size_t len;
        size_t kept; /* bytes of copy the record keeps */
    } cases[] = {
        {"ab\xe2\x82", 4, 2},        /* inside a 3-byte character */
        {"ab\xe2", 3, 2},            /* after its first byte */
        {"ab\xf0\x9f\x98", 5, 2},    /* inside a 4-byte one */
        {"ab\xc3", 3, 2},            /* inside a 2-byte one */
        {"ab\xe2\x82\xac", 5, 5},    /* a whole character */
        {"abc", 3, 3},               /* ASCII */
        {"a\xff\x80\x80\x80", 5, 5}, /* invalid, not a cut character: kept */
    };
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *rec = cut_record(cases[i].copy, cases[i].len, 1000);
        size_t n;
        char *body = body_member(rec, "response_body", &n);
        assert_int_equal(n, cases[i].kept);
        assert_memory_equal(body, cases[i].copy, n);
        assert_true(json_is_true(json_object_get(rec, "response_body_truncated")));
        assert_int_equal(json_integer_value(json_object_get(rec, "response_bytes")), 1000);
        free(body);
        json_decref(rec);
    }
    /* not cut: the copy is everything, even when it ends inside a character */
    json_t *rec = cut_record("ab\xe2\x82", 4, 4);
    size_t n;
    char *body = body_member(rec, "response_body", &n);
    assert_int_equal(n, 4);
    assert_true(json_is_false(json_object_get(rec, "response_body_truncated")));
    assert_int_equal(json_integer_value(json_object_get(rec, "response_bytes")), 4);
    free(body);
    json_decref(rec);
    /* a caller that does not count (response_bytes 0): the copy is all */
    rec = cut_record("abc", 3, 0);
    assert_true(json_is_false(json_object_get(rec, "response_body_truncated")));
    assert_int_equal(json_integer_value(json_object_get(rec, "response_bytes")), 3);
    json_decref(rec);
}

/* ---- refused records are counted and logged ----------------------------- */

/* Runs fn with stderr sent to a temp file; returns what it wrote. */
static char *capture_stderr(void (*fn)(void *), void *arg)
{
    char path[64];
    int saved = dup(STDERR_FILENO), fd;
    char *out;

    temp_path(path, "stderr");
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0 && saved >= 0);
    fflush(stderr);
    dup2(fd, STDERR_FILENO);
    close(fd);
    fn(arg);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    out = slurp(path, NULL);
    unlink(path);
    return out;
}

typedef struct refuse_run {
    char *path;
    mr_logsink_stats_t st;
} refuse_run_t;

static void write_too_big(void *arg)
{
    refuse_run_t *r = arg;
    mr_reqlog_t *l = open_audit(r->path, 1, 256); /* smaller than any record with a body */
    char body[512];
    mr_request_rec_t rec = plain_rec("req-too-big");

    rec.request_body = body;
    rec.request_len = sizeof(body);
    memset(body, 'x', sizeof(body));
    mr_reqlog_write(l, 0, &rec);
    mr_reqlog_close(l);
}

static void test_refused_record_is_counted_and_logged(void **state)
{
    char path[64];
    refuse_run_t run;
    mr_logsink_t *s;
    mr_logsink_opts_t o;
    mr_logsink_stats_t st;
    char err[256], *log;
    (void)state;

    /* a chain sink counts a line it refuses as not a record */
    temp_path(path, "refuse");
    o = (mr_logsink_opts_t){.path = path, .name = "audit.path", .chain = 1, .n_producers = 1};
    assert_int_equal(mr_logsink_open(&o, &s, err, sizeof(err)), 0);
    assert_int_not_equal(mr_logsink_write(s, 0, "{\"a\":\"\xff\"}", 10), 0);
    assert_int_not_equal(mr_logsink_write(s, 0, "{\"a\":1}\n", 8), 0);
    mr_logsink_stats(s, &st);
    assert_int_equal(st.dropped, 2);
    assert_int_equal(st.written, 0);
    mr_logsink_close(s);
    unlink(path);

    /* reqlog names the request whose record was lost, as an error */
    temp_path(path, "full");
    run.path = path;
    log = capture_stderr(write_too_big, &run);
    assert_contains(log, " error ");
    assert_contains(log, "req-too-big");
    assert_contains(log, "audit record");
    free(log);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_any_bytes_make_a_valid_record),
        cmocka_unit_test(test_cut_copy_ends_on_a_character_and_says_so),
        cmocka_unit_test(test_refused_record_is_counted_and_logged),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
