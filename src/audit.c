/*
 * audit — reading and verifying an audit file (see audit.h).
 */
#include "meridian/audit.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The first read when looking for a file's last line; each further read
 * doubles what is held, so a long line costs linear time. */
#define TAIL_CHUNK 65536

static const char *const problems[] = {
    [MR_AUDIT_OK] = "intact",
    [MR_AUDIT_NOT_JSON] = "not valid JSON",
    [MR_AUDIT_NO_FIELDS] = "no integer \"seq\" >= 1 or 64-hex \"prev\"",
    [MR_AUDIT_NO_HASH] = "no \"hash\" at the end of the record",
    [MR_AUDIT_BAD_HASH] = "hash does not match its contents",
};

static const uint8_t zeros[MR_SHA256_DIGEST_LEN];

const char *mr_audit_problem(mr_audit_check_t c)
{
    return problems[c];
}

static const char *errstr(int e, char *buf, size_t len)
{
    return strerror_r(e, buf, len); /* the GNU variant: thread-safe, returns the text */
}

mr_audit_check_t mr_audit_check_record(const char *line, size_t len, uint64_t *seq,
                                       uint8_t prev[MR_SHA256_DIGEST_LEN],
                                       uint8_t digest[MR_SHA256_DIGEST_LEN])
{
    json_t *root = json_loadb(line, len, 0, NULL);
    json_t *js = json_object_get(root, "seq");
    json_t *jp = json_object_get(root, "prev");
    bool parsed = root != NULL;
    bool has_seq = json_is_integer(js) && json_integer_value(js) >= 1;
    bool fields =
        has_seq && json_is_string(jp) && mr_sha256_from_hex(json_string_value(jp), prev) == 0;
    uint8_t d[MR_SHA256_DIGEST_LEN];
    char hex[MR_SHA256_HEX_LEN + 1];
    mr_sha256_t c, whole;

    *seq = has_seq ? (uint64_t)json_integer_value(js) : 0;
    json_decref(root);
    if (len < MR_AUDIT_HASH_SUFFIX_LEN ||
        memcmp(line + len - MR_AUDIT_HASH_SUFFIX_LEN, MR_AUDIT_HASH_KEY, MR_AUDIT_HASH_KEY_LEN) !=
            0 ||
        memcmp(line + len - 2, "\"}", 2) != 0)
        return parsed ? MR_AUDIT_NO_HASH : MR_AUDIT_NOT_JSON;
    /* One pass for both digests: the hash covers the line up to the suffix,
     * the line digest continues a copy of that state over the suffix. */
    mr_sha256_init(&c);
    mr_sha256_update(&c, line, len - MR_AUDIT_HASH_SUFFIX_LEN);
    whole = c;
    mr_sha256_final(&c, d);
    mr_sha256_hex(d, hex);
    if (digest) {
        mr_sha256_update(&whole, line + len - MR_AUDIT_HASH_SUFFIX_LEN, MR_AUDIT_HASH_SUFFIX_LEN);
        mr_sha256_final(&whole, digest);
    }
    if (memcmp(hex, line + len - MR_AUDIT_HASH_SUFFIX_LEN + MR_AUDIT_HASH_KEY_LEN,
               MR_SHA256_HEX_LEN) != 0)
        return MR_AUDIT_BAD_HASH;
    if (!parsed)
        return MR_AUDIT_NOT_JSON;
    return fields ? MR_AUDIT_OK : MR_AUDIT_NO_FIELDS;
}

/* ---- the head: a file's last line --------------------------------------- */

static int pread_full(int fd, char *buf, size_t len, off_t off)
{
    while (len) {
        ssize_t n = pread(fd, buf, len, off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0)
                errno = EIO; /* the file shrank under us */
            return -1;
        }
        buf += n;
        len -= (size_t)n;
        off += n;
    }
    return 0;
}

/* Where a file's last line is, read backwards. */
typedef struct tail {
    char *line; /* malloc'd, without the newline */
    size_t len;
    off_t start; /* its offset in the file */
    bool complete;
} tail_t;

/*
 * Finds the last line of a non-empty file by reading backwards. -1 with err
 * set on a read error or when the line is longer than `limit`.
 */
static int read_last_line(const char *name, const char *path, int fd, off_t size, size_t limit,
                          tail_t *t, char *err, size_t errlen)
{
    char *buf = NULL, eb[128];
    size_t have = 0, chunk = TAIL_CHUNK;
    off_t pos = size;

    for (;;) {
        size_t want = (off_t)chunk < pos ? chunk : (size_t)pos;
        size_t stop, lim;
        const char *nl;
        char *nb;

        if (have > limit + 1) {
            free(buf);
            snprintf(err, errlen,
                     "%s %s: the last record is longer than %zu bytes; this is not an audit "
                     "file written by meridian, or it was damaged",
                     name, path, limit);
            return -1;
        }
        if (!(nb = malloc(have + want))) {
            free(buf);
            snprintf(err, errlen, "%s %s: out of memory reading the last record", name, path);
            return -1;
        }
        if (have)
            memcpy(nb + want, buf, have);
        free(buf);
        buf = nb;
        if (pread_full(fd, buf, want, pos - (off_t)want) < 0) {
            free(buf);
            snprintf(err, errlen, "%s %s: cannot read: %s", name, path,
                     errstr(errno, eb, sizeof(eb)));
            return -1;
        }
        pos -= (off_t)want;
        have += want;
        t->complete = buf[have - 1] == '\n';
        stop = t->complete ? have - 1 : have;
        /* Only the bytes just read can hold the newline before the line:
         * the rest was searched by the previous rounds. */
        lim = want < stop ? want : stop;
        nl = memrchr(buf, '\n', lim);
        if (nl || pos == 0) {
            size_t from = nl ? (size_t)(nl - buf) + 1 : 0;
            t->len = stop - from;
            t->start = pos + (off_t)from;
            memmove(buf, buf + from, t->len);
            t->line = buf;
            return 0;
        }
        chunk = have;
    }
}

/* The head from a file's last line: it must be whole and a valid record. */
static int head_of(const char *name, const char *path, const tail_t *t, mr_audit_head_t *head,
                   char *err, size_t errlen)
{
    uint8_t prev[MR_SHA256_DIGEST_LEN];
    mr_audit_check_t r;

    if (!t->complete) {
        snprintf(err, errlen,
                 "%s %s ends in a partial record (byte %lld): a write was cut short or the "
                 "file was edited; check it with `meridian --verify-audit %s`",
                 name, path, (long long)t->start, path);
        return -1;
    }
    r = mr_audit_check_record(t->line, t->len, &head->seq, prev, head->digest);
    if (r != MR_AUDIT_OK) {
        snprintf(err, errlen,
                 "%s %s: the last record (byte %lld) is not a valid audit record (%s); check "
                 "the file with `meridian --verify-audit %s`",
                 name, path, (long long)t->start, problems[r], path);
        return -1;
    }
    return 0;
}

int mr_audit_read_head(const char *name, const char *path, size_t limit, mr_audit_head_t *head,
                       char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC), rc;
    struct stat st;
    tail_t t;

    if (fd < 0 || fstat(fd, &st) < 0) {
        char eb[128];
        snprintf(err, errlen, "%s %s: cannot read it: %s", name, path,
                 errstr(errno, eb, sizeof(eb)));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    if (!S_ISREG(st.st_mode) || st.st_size == 0) {
        close(fd);
        return 1;
    }
    rc = read_last_line(name, path, fd, st.st_size, limit, &t, err, errlen);
    close(fd);
    if (rc < 0)
        return -1;
    rc = head_of(name, path, &t, head, err, errlen);
    free(t.line);
    return rc;
}

int mr_audit_parse_after(const char *arg, mr_audit_head_t *head, char *err, size_t errlen)
{
    int rc;

    if (strlen(arg) == MR_SHA256_HEX_LEN && mr_sha256_from_hex(arg, head->digest) == 0) {
        head->seq = 0;
        return 0;
    }
    /* A predecessor's record can be as long as the longest queue bound. */
    rc = mr_audit_read_head("--after", arg, SIZE_MAX / 4, head, err, errlen);
    if (rc == 1)
        snprintf(err, errlen, "--after %s: no record to continue from (an empty file)", arg);
    return rc == 0 ? 0 : -1;
}

/* ---- verification ------------------------------------------------------- */

/* Where the verification stands after the records read so far. */
typedef struct verify_state {
    const mr_audit_head_t *after;
    uint64_t lines, first_seq, last_seq;
    uint8_t last[MR_SHA256_DIGEST_LEN]; /* digest of the last line read */
} verify_state_t;

/* Why the first record does not start what it must, "" when it does. */
static void check_start(const verify_state_t *v, uint64_t seq, const uint8_t prev[], char *problem,
                        size_t len)
{
    char hex[MR_SHA256_HEX_LEN + 1];

    problem[0] = '\0';
    if (!v->after) {
        if (seq != 1 || memcmp(prev, zeros, sizeof(zeros)) != 0)
            snprintf(problem, len,
                     "the file does not start the chain (seq 1 with a zero prev): records "
                     "before it were removed, or it continues a rotated file; pass that file "
                     "or its head with --after");
        return;
    }
    mr_sha256_hex(v->after->digest, hex);
    if (memcmp(prev, v->after->digest, MR_SHA256_DIGEST_LEN) != 0)
        snprintf(problem, len, "prev does not match the --after head %s", hex);
    else if (v->after->seq && seq != v->after->seq + 1)
        snprintf(problem, len, "seq %" PRIu64 " does not follow the --after record's seq %" PRIu64,
                 seq, v->after->seq);
}

/* Checks line[0..len) (complete: it ended in a newline) as the next record;
 * fills problem ("" when it is fine). */
static void check_next(verify_state_t *v, const char *line, size_t len, bool complete,
                       uint64_t *seq, uint8_t digest[], char *problem, size_t plen)
{
    uint8_t prev[MR_SHA256_DIGEST_LEN];
    mr_audit_check_t r = mr_audit_check_record(line, len, seq, prev, digest);

    if (!complete)
        snprintf(problem, plen, "partial last record");
    else if (r != MR_AUDIT_OK)
        snprintf(problem, plen, "%s", problems[r]);
    else if (v->lines == 1)
        check_start(v, *seq, prev, problem, plen);
    else if (*seq != v->last_seq + 1)
        snprintf(problem, plen, "seq %" PRIu64 " follows seq %" PRIu64, *seq, v->last_seq);
    else if (memcmp(prev, v->last, sizeof(v->last)) != 0)
        snprintf(problem, plen,
                 "prev does not match the hash of record %" PRIu64
                 " (a record was changed, removed or reordered)",
                 v->lines - 1);
    else
        problem[0] = '\0';
}

static void print_intact(const char *path, const verify_state_t *v, FILE *out)
{
    char hex[MR_SHA256_HEX_LEN + 1];

    mr_sha256_hex(v->last, hex);
    fprintf(out,
            "%s: %" PRIu64 " record%s, chain intact (seq %" PRIu64 "..%" PRIu64 ")%s; head %s\n",
            path, v->lines, v->lines == 1 ? "" : "s", v->first_seq, v->last_seq,
            v->after ? ", continuing --after" : "", hex);
}

int mr_audit_verify(const char *path, const mr_audit_head_t *after, FILE *out, char *err,
                    size_t errlen)
{
    FILE *f = fopen(path, "re");
    verify_state_t v = {.after = after};
    char *line = NULL, eb[128];
    size_t cap = 0;
    ssize_t got;
    int rc = 0;

    if (!f) {
        snprintf(err, errlen, "%s: %s", path, errstr(errno, eb, sizeof(eb)));
        return -1;
    }
    while ((got = getline(&line, &cap, f)) > 0) {
        size_t len = (size_t)got;
        bool complete = line[len - 1] == '\n';
        char problem[320];
        uint8_t digest[MR_SHA256_DIGEST_LEN];
        uint64_t seq;

        v.lines++;
        if (complete)
            len--;
        check_next(&v, line, len, complete, &seq, digest, problem, sizeof(problem));
        if (problem[0]) {
            if (seq)
                fprintf(out, "%s: record %" PRIu64 " (line %" PRIu64 ", seq %" PRIu64 "): %s\n",
                        path, v.lines, v.lines, seq, problem);
            else
                fprintf(out, "%s: record %" PRIu64 " (line %" PRIu64 "): %s\n", path, v.lines,
                        v.lines, problem);
            rc = 1;
            break;
        }
        if (v.lines == 1)
            v.first_seq = seq;
        v.last_seq = seq;
        memcpy(v.last, digest, sizeof(v.last));
    }
    if (rc == 0 && ferror(f)) {
        snprintf(err, errlen, "%s: cannot read: %s", path, errstr(errno, eb, sizeof(eb)));
        rc = -1;
    } else if (rc == 0 && v.lines == 0) {
        fprintf(out, "%s: no records (an empty file proves nothing: it may have been emptied)\n",
                path);
        rc = 1;
    } else if (rc == 0) {
        print_intact(path, &v, out);
    }
    free(line);
    fclose(f);
    return rc;
}
