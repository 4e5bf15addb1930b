/*
 * libFuzzer target: the audit-record writer (reqlog + logsink chain mode)
 * with arbitrary bytes in the bodies, the request id, the model name, an
 * attempt's error text and an exclusion's rule and reason (issue 11).
 *
 * Each input becomes two records (the second with the bodies swapped) in a
 * fresh audit file with audit.bodies on, written by the real sink thread.
 *
 * Input: b[0] flags (bit 0: the response copy was cut: response_bytes is
 * larger than the copy by 1 + b[1]), b[2..5) the lengths of the id, model
 * and error text, b[5] where the rest splits into request and response
 * body (b[5] * rest / 255); then those fields in order. The id, model and
 * error are C strings in the gateway, so each stops at its first NUL.
 *
 * Invariants (abort() = a crash libFuzzer reports with the input):
 *   - the file holds exactly two lines, each strictly valid JSON (jansson,
 *     no flags) and mr_json_validate;
 *   - the bodies come back byte for byte (text or _base64); a cut response
 *     copy comes back as the input less at most 3 bytes of a character cut
 *     short, marked truncated with the sent byte count;
 *   - strings that are valid UTF-8 come back unchanged;
 *   - mr_audit_verify accepts the file; nothing was dropped.
 */
#include "meridian/audit.h"
#include "meridian/json_span.h"
#include "meridian/log.h"
#include "meridian/reqlog.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz invariant failed: %s: ", #cond);                                 \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static char path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    /* the sink logs the chain head at every close: keep the output short */
    mr_log_set_level(MR_LOG_WARN);
    /* tmpfs when there is one: the sink syncs the file at every close */
    snprintf(path, sizeof(path), "%s/fuzz_audit_record.%ld.jsonl",
             access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp", (long)getpid());
    return 0;
}

/* A C string from the next n input bytes (up to the first NUL). */
static char *take_str(const uint8_t **p, const uint8_t *end, size_t n)
{
    size_t avail = (size_t)(end - *p) < n ? (size_t)(end - *p) : n;
    char *s = malloc(avail + 1);

    memcpy(s, *p, avail);
    s[avail] = '\0';
    *p += avail;
    return s;
}

static int b64_value(int c)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const char *at = c ? strchr(tab, c) : NULL;
    return at ? (int)(at - tab) : -1;
}

/* The bytes a record keeps for `name` (text or _base64), malloc'd. */
static char *body_of(const json_t *rec, const char *name, size_t *len)
{
    char key[64];
    const json_t *t = json_object_get(rec, name), *b;

    snprintf(key, sizeof(key), "%s_base64", name);
    b = json_object_get(rec, key);
    CHECK((t != NULL) != (b != NULL), "%s: exactly one of text and base64", name);
    if (t) {
        CHECK(json_is_string(t), "%s is a string", name);
        *len = json_string_length(t);
        char *out = malloc(*len + 1);
        memcpy(out, json_string_value(t), *len + 1);
        return out;
    }
    const char *in = json_string_value(b);
    CHECK(in && strlen(in) % 4 == 0, "%s: padded base64", key);
    size_t n = strlen(in), o = 0;
    char *out = malloc(n + 1);
    for (size_t i = 0; i < n; i += 4) {
        int v[4];
        for (int k = 0; k < 4; k++) {
            v[k] = in[i + k] == '=' && i + 4 == n && k >= 2 ? 0 : b64_value(in[i + k]);
            CHECK(v[k] >= 0, "%s: base64 alphabet", key);
        }
        out[o++] = (char)(v[0] << 2 | v[1] >> 4);
        if (in[i + 2] != '=')
            out[o++] = (char)((v[1] & 15) << 4 | v[2] >> 2);
        if (in[i + 3] != '=')
            out[o++] = (char)((v[2] & 3) << 6 | v[3]);
    }
    *len = o;
    return out;
}

/* A string member equals s when s is valid UTF-8 (else it was repaired). */
static void check_string(const json_t *rec, const char *name, const char *s)
{
    const json_t *v = json_object_get(rec, name);

    CHECK(json_is_string(v), "%s is a string", name);
    if (mr_utf8_valid_len(s, strlen(s)) == strlen(s))
        CHECK(strcmp(json_string_value(v), s) == 0, "%s kept", name);
}

typedef struct input {
    char *id, *model, *error;
    const char *req, *resp;
    size_t req_len, resp_len;
    uint64_t resp_bytes;
} input_t;

static void write_records(const input_t *in)
{
    mr_config_t cfg;
    mr_reqlog_t *l;
    char err[256];
    static const mr_provider_t prov = {.name = (char *)"fuzz",
                                       .vendor = (char *)"fuzz",
                                       .region = (char *)"eu",
                                       .jurisdiction = (char *)"FR"};
    mr_exclusion_t ex = {.provider = &prov, .model = in->model, .policy = in->id};
    mr_plan_t plan;
    mr_attempt_rec_t att = {.provider = &prov, .model = in->model, .status = 502, .ms = 3};

    memset(&plan, 0, sizeof(plan));
    snprintf(ex.rule, sizeof(ex.rule), "%s", in->error);
    snprintf(ex.reason, sizeof(ex.reason), "%s", in->model);
    snprintf(att.error, sizeof(att.error), "%s", in->error);
    snprintf(plan.policy_label, sizeof(plan.policy_label), "%s", in->id);
    plan.excluded = &ex;
    plan.n_excluded = plan.n_excluded_total = 1;
    memset(&cfg, 0, sizeof(cfg));
    cfg.audit.path = path;
    cfg.audit.bodies = true;
    cfg.audit.queue_bytes = 64u << 20;
    CHECK(mr_reqlog_open(&cfg, 1, &l, err, sizeof(err)) == 0, "open: %s", err);
    for (int swap = 0; swap < 2; swap++) {
        mr_request_rec_t rec = {
            .id = in->id,
            .key = in->error,
            .endpoint = "/v1/chat/completions",
            .model = in->model,
            .plan = &plan,
            .status = 200,
            .attempts = &att,
            .n_attempts = 1,
            .served_by = &prov,
            .served_model = in->model,
            .cost_usd = -1,
            .ttfb_us = UINT64_MAX,
            .unix_time = 1700000000.25,
            .request_body = swap ? in->resp : in->req,
            .request_len = swap ? in->resp_len : in->req_len,
            .response_body = swap ? in->req : in->resp,
            .response_len = swap ? in->req_len : in->resp_len,
            .response_bytes = swap ? 0 : in->resp_bytes,
        };
        rec.usage = MR_USAGE_UNKNOWN;
        mr_reqlog_write(l, 0, &rec);
    }
    mr_reqlog_close(l);
}

/* The copy a record keeps of resp: all of it, or when cut, all but a
 * character cut short at the end (at most 3 bytes). */
static void check_response(const json_t *rec, const char *resp, size_t len, uint64_t sent)
{
    size_t n;
    char *got = body_of(rec, "response_body", &n);
    int cut = sent > len;
    const json_t *t = json_object_get(rec, "response_body_truncated");

    CHECK(json_is_boolean(t) && json_is_true(t) == cut, "truncated flag");
    CHECK(json_integer_value(json_object_get(rec, "response_bytes")) ==
              (json_int_t)(cut ? sent : len),
          "response_bytes");
    CHECK(n <= len && memcmp(got, resp, n) == 0, "the copy is a prefix");
    CHECK(n == len || (cut && len - n <= 3 && mr_utf8_char_len(resp + n, len - n) == 0),
          "only a cut character is dropped (kept %zu of %zu)", n, len);
    free(got);
}

static void check_file(const input_t *in)
{
    FILE *f = fopen(path, "re");
    char *line = NULL;
    size_t cap = 0, n;
    ssize_t got;
    int lines = 0;

    CHECK(f != NULL, "the audit file exists");
    while ((got = getline(&line, &cap, f)) > 0) {
        json_error_t e;
        CHECK(line[got - 1] == '\n', "whole lines");
        CHECK(mr_json_validate(line, (size_t)got - 1) == 0, "line %d validates", lines + 1);
        json_t *rec = json_loadb(line, (size_t)got - 1, 0, &e);
        CHECK(rec != NULL, "line %d is JSON: %s", lines + 1, e.text);
        char *req = body_of(rec, "request_body", &n);
        CHECK(n == (lines ? in->resp_len : in->req_len) &&
                  memcmp(req, lines ? in->resp : in->req, n) == 0,
              "request body kept");
        free(req);
        if (lines == 0)
            check_response(rec, in->resp, in->resp_len, in->resp_bytes);
        else
            check_response(rec, in->req, in->req_len, 0);
        check_string(rec, "id", in->id);
        check_string(rec, "model", in->model);
        json_decref(rec);
        lines++;
    }
    free(line);
    fclose(f);
    CHECK(lines == 2, "two records, got %d", lines);
}

static void check_verifies(void)
{
    char *text = NULL, err[256] = "";
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    int rc = mr_audit_verify(path, NULL, out, err, sizeof(err));

    fclose(out);
    CHECK(rc == 0, "verify: %s%s", text ? text : "", err);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *p = data + 6, *end = data + size;
    input_t in;

    if (size < 6)
        return 0;
    in.id = take_str(&p, end, data[2]);
    in.model = take_str(&p, end, data[3]);
    in.error = take_str(&p, end, data[4]);
    size_t rest = (size_t)(end - p), split = rest * data[5] / 255;
    in.req = (const char *)p;
    in.req_len = split;
    in.resp = (const char *)p + split;
    in.resp_len = rest - split;
    in.resp_bytes = data[0] & 1 ? in.resp_len + 1 + data[1] : in.resp_len;

    unlink(path);
    write_records(&in);
    check_file(&in);
    check_verifies();
    unlink(path);
    free(in.id);
    free(in.model);
    free(in.error);
    return 0;
}
