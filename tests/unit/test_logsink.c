/*
 * logsink: plain lines from several threads (whole, in order per producer),
 * the queue bound, the audit chain (restart, rotation, every kind of
 * tampering mr_audit_verify must name), write errors (a device that is
 * full, a file size limit that cuts a record in half), stdout.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "meridian/audit.h"
#include "meridian/logsink.h"
#include "meridian/sha256.h"

/* ---- helpers ------------------------------------------------------------ */

/* A fresh empty file under /tmp; the caller unlinks it. */
static void temp_path(char path[64])
{
    int fd;

    snprintf(path, 64, "/tmp/test_logsink.XXXXXX");
    fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
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

static void spit(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "wb");

    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* A file's lines, without their newlines, each NUL-terminated in place. */
typedef struct lines {
    char *buf;
    char **v;
    size_t n;
} lines_t;

static void read_lines(const char *path, lines_t *l)
{
    size_t len, cap = 16;
    char *p, *end;

    l->buf = slurp(path, &len);
    l->v = malloc(cap * sizeof(*l->v));
    l->n = 0;
    for (p = l->buf, end = l->buf + len; p < end;) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        if (l->n == cap)
            l->v = realloc(l->v, (cap *= 2) * sizeof(*l->v));
        assert_non_null(l->v);
        l->v[l->n++] = p;
        if (!nl)
            break;
        *nl = '\0';
        p = nl + 1;
    }
}

static void free_lines(lines_t *l)
{
    free(l->buf);
    free(l->v);
}

/* Writes lines v[0..n) back, each with a newline. */
static void write_lines(const char *path, char **v, size_t n)
{
    FILE *f = fopen(path, "wb");

    assert_non_null(f);
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%s\n", v[i]);
    assert_int_equal(fclose(f), 0);
}

/* mr_audit_verify's return value (anchored to `after` unless NULL); its
 * report in out. */
static int verify_after(const char *path, const mr_audit_head_t *after, char *out, size_t outlen)
{
    char *text = NULL, err[256] = "";
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    int rc;

    assert_non_null(f);
    rc = mr_audit_verify(path, after, f, err, sizeof(err));
    fclose(f);
    snprintf(out, outlen, "%s", rc < 0 ? err : text);
    free(text);
    return rc;
}

static int verify(const char *path, char *out, size_t outlen)
{
    return verify_after(path, NULL, out, outlen);
}

static void assert_contains(const char *hay, const char *needle)
{
    if (!strstr(hay, needle))
        fail_msg("\"%s\" does not contain \"%s\"", hay, needle);
}

static mr_logsink_t *open_sink(const char *path, int chain, size_t queue_bytes, unsigned n)
{
    mr_logsink_opts_t o = {.path = path,
                           .name = chain ? "audit.path" : "access_log",
                           .chain = chain,
                           .queue_bytes = queue_bytes,
                           .n_producers = n};
    mr_logsink_t *s;
    char err[512];

    if (mr_logsink_open(&o, &s, err, sizeof(err)) != 0)
        fail_msg("mr_logsink_open: %s", err);
    return s;
}

/* The test's audit record i: an object whose members the tamper tests edit. */
static void write_record(mr_logsink_t *s, unsigned p, unsigned i)
{
    char line[128];
    int n = snprintf(line, sizeof(line), "{\"time\":%u,\"id\":\"req-%04u\",\"note\":\"record %u\"}",
                     1700000000u + i, i, i);

    assert_int_equal(mr_logsink_write(s, p, line, (size_t)n), 0);
}

/* An audit file holding records 1..n. */
static void make_chain(const char *path, unsigned n)
{
    mr_logsink_t *s = open_sink(path, 1, 0, 1);

    for (unsigned i = 1; i <= n; i++)
        write_record(s, 0, i);
    mr_logsink_close(s);
}

/* Waits until the writer has dealt with `lines` lines (written or lost to a
 * failed write); for the one test that must act between two batches. */
static void wait_settled(mr_logsink_t *s, uint64_t written, uint64_t errors)
{
    mr_logsink_stats_t st;

    for (int i = 0; i < 10000; i++) {
        mr_logsink_stats(s, &st);
        if (st.written + st.write_errors >= written + errors)
            return;
        nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
    }
    fail_msg("the writer did not finish in 10 s");
}

/* ---- plain lines -------------------------------------------------------- */

#define N_THREADS 4
#define N_LINES 5000

typedef struct producer_arg {
    mr_logsink_t *s;
    unsigned p;
    unsigned failed;
} producer_arg_t;

/* Lines of varying length, so interleaved bytes could not go unnoticed. */
static int plain_line(char *buf, size_t cap, unsigned p, unsigned i)
{
    char pad[64];
    unsigned n = (i * 7 + p) % 60;

    memset(pad, 'a' + (char)p, n);
    pad[n] = '\0';
    return snprintf(buf, cap, "p=%u i=%05u len=%02u %s.", p, i, n, pad);
}

static void *producer_main(void *arg)
{
    producer_arg_t *a = arg;
    char line[128];

    for (unsigned i = 0; i < N_LINES; i++) {
        int n = plain_line(line, sizeof(line), a->p, i);
        if (mr_logsink_write(a->s, a->p, line, (size_t)n) != 0)
            a->failed++;
    }
    return NULL;
}

static void test_plain_threads(void **state)
{
    pthread_t t[N_THREADS];
    producer_arg_t a[N_THREADS];
    unsigned next[N_THREADS] = {0};
    mr_logsink_stats_t st;
    char path[64], want[128];
    lines_t l;
    mr_logsink_t *s;
    (void)state;

    temp_path(path);
    s = open_sink(path, 0, 0, N_THREADS);
    for (unsigned p = 0; p < N_THREADS; p++) {
        a[p] = (producer_arg_t){.s = s, .p = p};
        assert_int_equal(pthread_create(&t[p], NULL, producer_main, &a[p]), 0);
    }
    for (unsigned p = 0; p < N_THREADS; p++) {
        pthread_join(t[p], NULL);
        assert_int_equal(a[p].failed, 0);
    }
    wait_settled(s, N_THREADS * N_LINES, 0);
    mr_logsink_stats(s, &st);
    assert_int_equal(st.written, N_THREADS * N_LINES);
    assert_int_equal(st.dropped, 0);
    assert_int_equal(st.write_errors, 0);
    mr_logsink_close(s);

    read_lines(path, &l);
    assert_int_equal(l.n, N_THREADS * N_LINES);
    for (size_t k = 0; k < l.n; k++) {
        unsigned p, i;
        assert_int_equal(sscanf(l.v[k], "p=%u i=%u", &p, &i), 2);
        assert_true(p < N_THREADS);
        assert_int_equal(i, next[p]); /* per-producer order */
        plain_line(want, sizeof(want), p, i);
        assert_string_equal(l.v[k], want); /* whole, not interleaved */
        next[p]++;
    }
    free_lines(&l);
    unlink(path);
}

/* close() returns only once every queued line is in the file. */
static void test_close_flushes(void **state)
{
    char path[64], line[64];
    mr_logsink_t *s;
    lines_t l;
    (void)state;

    temp_path(path);
    s = open_sink(path, 0, 0, 1);
    for (unsigned i = 0; i < 1000; i++) {
        int n = snprintf(line, sizeof(line), "line %u", i);
        assert_int_equal(mr_logsink_write(s, 0, line, (size_t)n), 0);
    }
    assert_int_equal(mr_logsink_write(s, 0, "", 0), 0); /* an empty line is a line */
    mr_logsink_close(s);

    read_lines(path, &l);
    assert_int_equal(l.n, 1001);
    for (unsigned i = 0; i < 1000; i++) {
        snprintf(line, sizeof(line), "line %u", i);
        assert_string_equal(l.v[i], line);
    }
    assert_string_equal(l.v[1000], "");
    free_lines(&l);
    unlink(path);
}

/* A line that cannot fit the bound is dropped and counted, whatever the
 * writer is doing; one that fits exactly (line + newline) is kept. */
static void test_queue_bound_drops(void **state)
{
    char path[64], big[200], fits[99];
    mr_logsink_stats_t st;
    mr_logsink_t *s;
    size_t len;
    char *text;
    (void)state;

    memset(big, 'b', sizeof(big));
    memset(fits, 'f', sizeof(fits));
    temp_path(path);
    s = open_sink(path, 0, 100, 1);
    assert_int_equal(mr_logsink_write(s, 0, big, sizeof(big)), -1);
    assert_int_equal(mr_logsink_write(s, 0, big, 100), -1); /* 101 with the newline */
    mr_logsink_stats(s, &st);
    assert_int_equal(st.dropped, 2);
    assert_int_equal(mr_logsink_write(s, 0, fits, sizeof(fits)), 0);
    mr_logsink_close(s);

    text = slurp(path, &len);
    assert_int_equal(len, 100);
    assert_int_equal(text[99], '\n');
    assert_memory_equal(text, fits, sizeof(fits));
    free(text);
    unlink(path);
}

static void test_plain_rejects(void **state)
{
    mr_logsink_stats_t st;
    char path[64];
    mr_logsink_t *s;
    (void)state;

    temp_path(path);
    s = open_sink(path, 0, 0, 2);
    assert_int_equal(mr_logsink_write(s, 0, "two\nlines", 9), -2);
    assert_int_equal(mr_logsink_write(s, 2, "x", 1), -2); /* no producer 2 */
    assert_int_equal(mr_logsink_write(s, 0, NULL, 0), -2);
    mr_logsink_stats(s, &st);
    assert_int_equal(st.dropped, 3); /* not written: counted, whatever the reason */
    mr_logsink_close(s);
    mr_logsink_close(NULL);
    unlink(path);
}

static void test_open_errors(void **state)
{
    mr_logsink_opts_t o = {.path = "/nonexistent-meridian-dir/audit.jsonl",
                           .name = "audit.path",
                           .chain = 1,
                           .n_producers = 1};
    mr_logsink_t *s;
    char err[512];
    (void)state;

    assert_int_equal(mr_logsink_open(&o, &s, err, sizeof(err)), -1);
    assert_string_equal(
        err, "audit.path /nonexistent-meridian-dir/audit.jsonl: No such file or directory");

    o.path = "/tmp";
    assert_int_equal(mr_logsink_open(&o, &s, err, sizeof(err)), -1);
    assert_contains(err, "audit.path /tmp: ");

    o.path = "stdout";
    o.n_producers = 0;
    assert_int_equal(mr_logsink_open(&o, &s, err, sizeof(err)), -1);
    assert_contains(err, "n_producers");
}

/* stdout: lines go to fd 1, which close leaves open. */
static void test_stdout(void **state)
{
    char path[64];
    mr_logsink_t *s;
    size_t len;
    char *text;
    int saved, fd;
    (void)state;

    temp_path(path);
    fflush(stdout);
    saved = dup(STDOUT_FILENO);
    fd = open(path, O_WRONLY | O_APPEND);
    assert_true(saved >= 0 && fd >= 0);
    assert_int_equal(dup2(fd, STDOUT_FILENO), STDOUT_FILENO);
    close(fd);

    s = open_sink("stdout", 0, 0, 1);
    assert_int_equal(mr_logsink_write(s, 0, "to stdout", 9), 0);
    mr_logsink_reopen(s); /* a no-op */
    mr_logsink_close(s);
    assert_true(fcntl(STDOUT_FILENO, F_GETFD) != -1);

    s = open_sink("stdout", 1, 0, 1); /* chain mode starts a fresh chain */
    assert_int_equal(mr_logsink_write(s, 0, "{\"a\":1}", 7), 0);
    mr_logsink_close(s);
    assert_true(fcntl(STDOUT_FILENO, F_GETFD) != -1);

    assert_int_equal(dup2(saved, STDOUT_FILENO), STDOUT_FILENO);
    close(saved);
    text = slurp(path, &len);
    assert_true(strncmp(text, "to stdout\n{\"seq\":1,\"prev\":\"0000", 31) == 0);
    free(text);
    unlink(path);
}

/* ---- the audit chain ---------------------------------------------------- */

typedef struct chain_arg {
    mr_logsink_t *s;
    unsigned p;
    unsigned n;
} chain_arg_t;

static void *chain_producer(void *arg)
{
    chain_arg_t *a = arg;
    char line[128];

    for (unsigned i = 0; i < a->n; i++) {
        int n = snprintf(line, sizeof(line), "{\"time\":%u,\"id\":\"p%u-%u\"}", i, a->p, i);
        if (mr_logsink_write(a->s, a->p, line, (size_t)n) != 0)
            return "write failed";
    }
    return NULL;
}

static void test_chain_threads_and_restart(void **state)
{
    char path[64], out[512];
    chain_arg_t a[2];
    pthread_t t[2];
    mr_logsink_t *s;
    lines_t l;
    (void)state;

    temp_path(path);
    s = open_sink(path, 1, 0, 2);
    for (unsigned p = 0; p < 2; p++) {
        a[p] = (chain_arg_t){.s = s, .p = p, .n = 500};
        assert_int_equal(pthread_create(&t[p], NULL, chain_producer, &a[p]), 0);
    }
    for (unsigned p = 0; p < 2; p++) {
        void *rc;
        pthread_join(t[p], &rc);
        assert_null(rc);
    }
    mr_logsink_close(s);
    assert_int_equal(verify(path, out, sizeof(out)), 0);
    assert_contains(out, ": 1000 records, chain intact (seq 1..1000); head ");

    /* Restart: a new sink on the same file continues its chain. */
    s = open_sink(path, 1, 0, 1);
    for (unsigned i = 1; i <= 10; i++)
        write_record(s, 0, i);
    mr_logsink_close(s);
    assert_int_equal(verify(path, out, sizeof(out)), 0);

    read_lines(path, &l);
    assert_int_equal(l.n, 1010);
    for (size_t k = 0; k < l.n; k++) {
        char want[48];
        snprintf(want, sizeof(want), "{\"seq\":%zu,\"prev\":\"", k + 1);
        assert_true(strncmp(l.v[k], want, strlen(want)) == 0);
    }
    /* The framing: the producer's members between prev and hash. */
    assert_contains(l.v[1009], "\",\"time\":1700000010,\"id\":\"req-0010\",\"note\":\"record "
                               "10\",\"hash\":\"");
    free_lines(&l);
    unlink(path);
}

static void test_chain_verify_summary(void **state)
{
    char path[64], out[512], want[600];
    (void)state;

    temp_path(path);
    /* an empty file proves nothing: every record may have been removed */
    assert_int_equal(verify(path, out, sizeof(out)), 1);
    snprintf(want, sizeof(want),
             "%s: no records (an empty file proves nothing: it may have been emptied)\n", path);
    assert_string_equal(out, want);

    make_chain(path, 1000);
    assert_int_equal(verify(path, out, sizeof(out)), 0);
    {
        lines_t l;
        uint8_t d[32];
        char hex[65];
        read_lines(path, &l);
        mr_sha256(l.v[999], strlen(l.v[999]), d);
        mr_sha256_hex(d, hex);
        free_lines(&l);
        snprintf(want, sizeof(want), "%s: 1000 records, chain intact (seq 1..1000); head %s\n",
                 path, hex);
    }
    assert_string_equal(out, want);
    unlink(path);

    assert_int_equal(verify(path, out, sizeof(out)), -1);
    snprintf(want, sizeof(want), "%s: No such file or directory", path);
    assert_string_equal(out, want);
}

static void test_chain_rejects(void **state)
{
    static const char *const bad[] = {
        "{}",
        "{ }",
        "[1,2]",
        "\"text\"",
        "42",
        "{\"a\":1",
        " {\"a\":1}",
        "{\"a\":1} ",
        "{\"a\":1}{\"b\":2}",
        "{\"a\":1,}",
        "{\"a\":\n1}",
        "{\"seq\":5}",
        "{\"a\":1,\"prev\":\"x\"}",
        "{\"a\":1,\"ha\\u0073h\":\"x\"}", /* "hash" spelled with an escape */
        "not json",
    };
    static const char *const good[] = {"{ \"nested\" : {\"seq\":1} }", "{\"a\":\"}\"}"};
    mr_logsink_stats_t st;
    char path[64], out[512];
    mr_logsink_t *s;
    (void)state;

    temp_path(path);
    s = open_sink(path, 1, 0, 1);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (mr_logsink_write(s, 0, bad[i], strlen(bad[i])) != -2)
            fail_msg("accepted %s", bad[i]);
    }
    mr_logsink_stats(s, &st);
    assert_int_equal(st.dropped, sizeof(bad) / sizeof(bad[0]));
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        assert_int_equal(mr_logsink_write(s, 0, good[i], strlen(good[i])), 0);
    mr_logsink_close(s);
    assert_int_equal(verify(path, out, sizeof(out)), 0);
    assert_contains(out, "2 records, chain intact (seq 1..2)");
    unlink(path);
}

/* Runs verify on `path` and checks it reports exactly `problem`. */
static void assert_broken(const char *path, const char *problem)
{
    char out[512], want[600];

    assert_int_equal(verify(path, out, sizeof(out)), 1);
    snprintf(want, sizeof(want), "%s: %s\n", path, problem);
    assert_string_equal(out, want);
}

/* `line` with `from` replaced by `to` and its hash recomputed, as someone
 * who knows the format would forge a record. */
static char *forge(const char *line, const char *from, const char *to)
{
    const char *at = strstr(line, from), *hash = strstr(line, ",\"hash\":\"");
    char *out = malloc(strlen(line) + strlen(to) + 1), hex[65];
    uint8_t d[32];
    size_t n;

    assert_true(at && hash && at < hash && out);
    n = (size_t)(at - line);
    memcpy(out, line, n);
    n += (size_t)sprintf(out + n, "%s", to);
    memcpy(out + n, at + strlen(from), (size_t)(hash - at) - strlen(from));
    n += (size_t)(hash - at) - strlen(from);
    mr_sha256(out, n, d);
    mr_sha256_hex(d, hex);
    sprintf(out + n, ",\"hash\":\"%s\"}", hex);
    return out;
}

static void test_chain_tamper(void **state)
{
    char path[64], copy[80], err[512];
    mr_logsink_opts_t o = {.path = copy, .name = "audit.path", .chain = 1, .n_producers = 1};
    mr_logsink_t *s;
    lines_t l;
    char *saved, *forged;
    (void)state;

    temp_path(path);
    snprintf(copy, sizeof(copy), "%s.t", path);
    make_chain(path, 1000);
    read_lines(path, &l);
    assert_int_equal(l.n, 1000);

    /* One byte inside record 500's members. */
    saved = l.v[499];
    l.v[499] = strdup(saved);
    *strstr(l.v[499], "req-0500") = 'R';
    write_lines(copy, l.v, l.n);
    assert_broken(copy, "record 500 (line 500, seq 500): hash does not match its contents");
    free(l.v[499]);
    l.v[499] = saved;

    /* A byte that also breaks the syntax is still reported as an edit. */
    saved = l.v[499];
    l.v[499] = strdup(saved);
    strstr(l.v[499], "\"note\"")[0] = 'X';
    write_lines(copy, l.v, l.n);
    assert_broken(copy, "record 500 (line 500): hash does not match its contents");
    free(l.v[499]);
    l.v[499] = saved;

    /* Record 300's hash. */
    saved = l.v[299];
    l.v[299] = strdup(saved);
    {
        char *c = l.v[299] + strlen(l.v[299]) - 3; /* last hex digit */
        *c = *c == '0' ? '1' : '0';
    }
    write_lines(copy, l.v, l.n);
    assert_broken(copy, "record 300 (line 300, seq 300): hash does not match its contents");
    free(l.v[299]);
    l.v[299] = saved;

    /* Record 400 forged with a consistent hash: its successor's prev. */
    saved = l.v[399];
    l.v[399] = forged = forge(saved, "record 400", "record 4OO");
    write_lines(copy, l.v, l.n);
    assert_broken(copy, "record 401 (line 401, seq 401): prev does not match the hash of record "
                        "400 (a record was changed, removed or reordered)");
    free(forged);
    l.v[399] = saved;

    /* Line 700 removed. */
    if (l.n <= 700)
        fail_msg("expected 1000 lines, got %zu", l.n);
    memmove(&l.v[699], &l.v[700], (l.n - 700) * sizeof(*l.v));
    write_lines(copy, l.v, l.n - 1);
    assert_broken(copy, "record 700 (line 700, seq 701): seq 701 follows seq 699");
    free_lines(&l);
    read_lines(path, &l);

    /* Lines 100 and 101 swapped. */
    saved = l.v[99];
    l.v[99] = l.v[100];
    l.v[100] = saved;
    write_lines(copy, l.v, l.n);
    assert_broken(copy, "record 100 (line 100, seq 101): seq 101 follows seq 99");
    l.v[100] = l.v[99];
    l.v[99] = saved;

    /* A record replaced by something else entirely. */
    saved = l.v[9];
    l.v[9] = "garbage";
    write_lines(copy, l.v, l.n);
    assert_broken(copy, "record 10 (line 10): not valid JSON");
    l.v[9] = "{\"seq\":10,\"prev\":\"x\"}";
    write_lines(copy, l.v, l.n);
    assert_broken(copy, "record 10 (line 10, seq 10): no \"hash\" at the end of the record");
    l.v[9] = saved;

    /* The final newline cut off: partial, and a sink will not extend it. */
    {
        char want[200];
        size_t len;
        char *text = slurp(path, &len);
        spit(copy, text, len - 1);
        free(text);
        snprintf(want, sizeof(want), "audit.path %s ends in a partial record (byte %zu): ", copy,
                 len - 1 - strlen(l.v[999]));
        assert_broken(copy, "record 1000 (line 1000, seq 1000): partial last record");
        assert_int_equal(mr_logsink_open(&o, &s, err, sizeof(err)), -1);
        assert_contains(err, want);
        assert_contains(err, "--verify-audit");
    }

    /* A sink will not extend a chain whose last record was edited either. */
    saved = l.v[999];
    l.v[999] = strdup(saved);
    *strstr(l.v[999], "req-1000") = 'R';
    write_lines(copy, l.v, l.n);
    assert_int_equal(mr_logsink_open(&o, &s, err, sizeof(err)), -1);
    assert_contains(err, "the last record (byte ");
    assert_contains(err, "hash does not match its contents");
    free(l.v[999]);
    l.v[999] = saved;

    free_lines(&l);
    unlink(copy);
    unlink(path);
}

/* A chain sink refuses to continue a file that is not an audit file. */
static void test_chain_refuses_foreign_file(void **state)
{
    char path[64], err[512];
    mr_logsink_opts_t o = {.path = path, .chain = 1, .n_producers = 1};
    mr_logsink_t *s;
    (void)state;

    temp_path(path);
    spit(path, "hello\nworld\n", 12);
    assert_int_equal(mr_logsink_open(&o, &s, err, sizeof(err)), -1);
    assert_contains(err, "log ");
    assert_contains(err, "the last record (byte 6) is not a valid audit record (not valid JSON)");
    unlink(path);
}

/* Records longer than the chunk the tail is read in, first and last. */
static void test_chain_restart_long_records(void **state)
{
    size_t big_len = 300000;
    char *big = malloc(big_len + 32), path[64], out[512];
    mr_logsink_t *s;
    int n;
    (void)state;

    assert_non_null(big);
    n = snprintf(big, 32, "{\"blob\":\"");
    memset(big + n, 'z', big_len);
    memcpy(big + n + big_len, "\"}", 3);
    big_len += (size_t)n + 2;

    temp_path(path);
    s = open_sink(path, 1, 0, 1);
    assert_int_equal(mr_logsink_write(s, 0, big, big_len), 0); /* the whole file is one line */
    mr_logsink_close(s);
    s = open_sink(path, 1, 0, 1);
    write_record(s, 0, 2);
    assert_int_equal(mr_logsink_write(s, 0, big, big_len), 0);
    mr_logsink_close(s);
    s = open_sink(path, 1, 0, 1);
    write_record(s, 0, 4);
    mr_logsink_close(s);
    assert_int_equal(verify(path, out, sizeof(out)), 0);
    assert_contains(out, "4 records, chain intact (seq 1..4)");
    free(big);
    unlink(path);
}

/* ---- reopen (logrotate) ------------------------------------------------- */

static void test_reopen_plain(void **state)
{
    char path[64], rotated[80];
    mr_logsink_t *s;
    char *text;
    (void)state;

    temp_path(path);
    snprintf(rotated, sizeof(rotated), "%s.1", path);
    s = open_sink(path, 0, 0, 1);
    assert_int_equal(mr_logsink_write(s, 0, "one", 3), 0);
    assert_int_equal(mr_logsink_write(s, 0, "two", 3), 0);
    assert_int_equal(rename(path, rotated), 0);
    mr_logsink_reopen(s);
    assert_int_equal(mr_logsink_write(s, 0, "three", 5), 0);
    mr_logsink_close(s);

    text = slurp(rotated, NULL);
    assert_string_equal(text, "one\ntwo\n");
    free(text);
    text = slurp(path, NULL);
    assert_string_equal(text, "three\n");
    free(text);
    unlink(rotated);
    unlink(path);
}

static void test_reopen_chain(void **state)
{
    char path[64], rotated[80], both[80], out[512], want[700];
    mr_logsink_t *s;
    lines_t l;
    char *a, *b, *ab;
    size_t alen, blen;
    (void)state;

    temp_path(path);
    snprintf(rotated, sizeof(rotated), "%s.1", path);
    snprintf(both, sizeof(both), "%s.both", path);
    s = open_sink(path, 1, 0, 1);
    for (unsigned i = 1; i <= 20; i++)
        write_record(s, 0, i);
    assert_int_equal(rename(path, rotated), 0);
    mr_logsink_reopen(s);
    for (unsigned i = 21; i <= 30; i++)
        write_record(s, 0, i);
    mr_logsink_close(s);

    assert_int_equal(verify(rotated, out, sizeof(out)), 0);
    assert_contains(out, "20 records, chain intact (seq 1..20); head ");
    /* The new file alone continues from the last record of the old one:
     * it verifies anchored to the old file or its head, and only so. */
    read_lines(rotated, &l);
    {
        mr_audit_head_t head, bare;
        char err[256];
        assert_int_equal(mr_audit_parse_after(rotated, &head, err, sizeof(err)), 0);
        assert_int_equal(head.seq, 20);
        mr_sha256(l.v[19], strlen(l.v[19]), bare.digest);
        assert_memory_equal(head.digest, bare.digest, 32);
        assert_int_equal(verify_after(path, &head, out, sizeof(out)), 0);
        assert_contains(out, "10 records, chain intact (seq 21..30), continuing --after; head ");
        bare.seq = 0;
        assert_int_equal(verify_after(path, &bare, out, sizeof(out)), 0);
        assert_int_equal(verify(path, out, sizeof(out)), 1);
        snprintf(want, sizeof(want),
                 "%s: record 1 (line 1, seq 21): the file does not start the chain", path);
        assert_contains(out, want);
        head.seq = 19;
        assert_int_equal(verify_after(path, &head, out, sizeof(out)), 1);
        assert_contains(out, "seq 21 does not follow the --after record's seq 19");
        head.seq = 20;
        head.digest[0] ^= 1;
        assert_int_equal(verify_after(path, &head, out, sizeof(out)), 1);
        assert_contains(out, "prev does not match the --after head ");
    }
    free_lines(&l);

    a = slurp(rotated, &alen);
    b = slurp(path, &blen);
    ab = malloc(alen + blen);
    assert_non_null(ab);
    memcpy(ab, a, alen);
    memcpy(ab + alen, b, blen);
    spit(both, ab, alen + blen);
    assert_int_equal(verify(both, out, sizeof(out)), 0);
    assert_contains(out, "30 records, chain intact (seq 1..30); head ");
    free(a);
    free(b);
    free(ab);
    unlink(both);
    unlink(rotated);
    unlink(path);
}

/* Reopens while two producers write: every record lands once, in order per
 * producer, and the chain holds across the reopens. */
static void test_reopen_under_load(void **state)
{
    char path[64], out[512];
    unsigned next[2] = {0};
    chain_arg_t a[2];
    pthread_t t[2];
    mr_logsink_t *s;
    lines_t l;
    (void)state;

    temp_path(path);
    s = open_sink(path, 1, 0, 2);
    for (unsigned p = 0; p < 2; p++) {
        a[p] = (chain_arg_t){.s = s, .p = p, .n = 3000};
        assert_int_equal(pthread_create(&t[p], NULL, chain_producer, &a[p]), 0);
    }
    for (int i = 0; i < 10; i++) /* each reopen syncs the audit file */
        mr_logsink_reopen(s);
    for (unsigned p = 0; p < 2; p++) {
        void *rc;
        pthread_join(t[p], &rc);
        assert_null(rc);
    }
    mr_logsink_reopen(s);
    mr_logsink_close(s);

    assert_int_equal(verify(path, out, sizeof(out)), 0);
    assert_contains(out, "6000 records, chain intact (seq 1..6000)");
    read_lines(path, &l);
    for (size_t k = 0; k < l.n; k++) {
        unsigned p, i;
        const char *id = strstr(l.v[k], "\"id\":\"p");
        assert_non_null(id);
        assert_int_equal(sscanf(id, "\"id\":\"p%u-%u\"", &p, &i), 2);
        assert_true(p < 2);
        assert_int_equal(i, next[p]);
        next[p]++;
    }
    free_lines(&l);
    unlink(path);
}

/* ---- write errors ------------------------------------------------------- */

static void test_write_errors_dev_full(void **state)
{
    mr_logsink_stats_t st;
    mr_logsink_t *s;
    (void)state;

    if (access("/dev/full", W_OK) != 0)
        skip();
    for (int chain = 0; chain <= 1; chain++) {
        s = open_sink("/dev/full", chain, 0, 1);
        for (unsigned i = 1; i <= 3; i++)
            write_record(s, 0, i);
        wait_settled(s, 0, 1);
        mr_logsink_stats(s, &st);
        assert_int_equal(st.written, 0);
        assert_true(st.write_errors >= 1 && st.write_errors <= 3); /* at most one per record */
        assert_int_equal(st.dropped, 0);
        mr_logsink_close(s);
    }
}

/*
 * A file size limit makes write(2) stop in the middle of a record and then
 * fail: the cut record is removed, the chain rewinds to the last record in
 * the file, and once writes succeed again the file verifies with no gap.
 */
static void test_write_error_rewinds_chain(void **state)
{
    struct rlimit old, lim;
    struct sigaction ign = {.sa_handler = SIG_IGN}, old_sa;
    mr_logsink_stats_t st;
    char path[64], out[512];
    uint64_t written = 0, errors = 0, failed_at = 0;
    mr_logsink_t *s;
    lines_t l;
    (void)state;

    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    assert_int_equal(sigaction(SIGXFSZ, &ign, &old_sa), 0);
    temp_path(path);
    s = open_sink(path, 1, 0, 1);

    lim = old;
    lim.rlim_cur = 2000;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    /* One record per batch: wait for each before the next. */
    for (unsigned i = 1; i <= 30; i++) {
        write_record(s, 0, i);
        wait_settled(s, written, errors + 1);
        mr_logsink_stats(s, &st);
        if (st.write_errors > errors && !failed_at)
            failed_at = i;
        written = st.written;
        errors = st.write_errors;
    }
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    assert_true(failed_at > 1);
    assert_int_equal(written, failed_at - 1);
    assert_int_equal(errors, 30 - written);

    for (unsigned i = 31; i <= 40; i++)
        write_record(s, 0, i);
    mr_logsink_close(s);
    assert_int_equal(sigaction(SIGXFSZ, &old_sa, NULL), 0);

    assert_int_equal(verify(path, out, sizeof(out)), 0);
    read_lines(path, &l);
    assert_int_equal(l.n, written + 10);
    assert_contains(l.v[l.n - 1], "\"id\":\"req-0040\"");
    {
        char want[64];
        snprintf(want, sizeof(want), "records, chain intact (seq 1..%zu)", l.n);
        assert_contains(out, want);
    }
    free_lines(&l);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_threads),
        cmocka_unit_test(test_close_flushes),
        cmocka_unit_test(test_queue_bound_drops),
        cmocka_unit_test(test_plain_rejects),
        cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_stdout),
        cmocka_unit_test(test_chain_threads_and_restart),
        cmocka_unit_test(test_chain_verify_summary),
        cmocka_unit_test(test_chain_rejects),
        cmocka_unit_test(test_chain_tamper),
        cmocka_unit_test(test_chain_refuses_foreign_file),
        cmocka_unit_test(test_chain_restart_long_records),
        cmocka_unit_test(test_reopen_plain),
        cmocka_unit_test(test_reopen_chain),
        cmocka_unit_test(test_reopen_under_load),
        cmocka_unit_test(test_write_errors_dev_full),
        cmocka_unit_test(test_write_error_rewinds_chain),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
