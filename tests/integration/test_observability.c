/*
 * Observability on the real binary: /metrics parsed by a strict exposition
 * parser while requests of every outcome move its counters, the access log
 * (fields, SIGUSR1 reopen), the audit file (records for success, failover
 * and denial, the hash chain across a restart, tampering detected by
 * --verify-audit, 10,000 records under load with none lost), the
 * x-meridian-* headers, and no secret anywhere in any of it.
 */
#include "harness.h"
#include "promtext.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define KEY_OPS "mk-ops-0c4e8a2b6d9f1357"
#define KEY_OPS_SHA "919f50fcc9f09dca405ea918f73c89018900f92ec6227ffcf157b1c485a0fa52"
#define SECRET_A "sk-provider-secret-a-5e1f"
#define SECRET_B "sk-provider-secret-b-93c0"

static th_proc_t mock_fr, mock_us;
static const char *const auth[] = {"Authorization: Bearer " KEY_OPS, NULL};

static char *config(const char *extra)
{
    return th_strf("{\"listen\":\"127.0.0.1:0\","
                   " \"health\":{\"failure_threshold\":3,\"cooldown_ms\":60000},"
                   " \"retry_budget\":{\"min_retries_per_s\":100000},"
                   " \"providers\":{"
                   "  \"fr\":{\"kind\":\"openai\",\"base_url\":\"http://127.0.0.1:%d/v1\","
                   "         \"api_key\":\"" SECRET_A "\",\"vendor\":\"mistral\",\"region\":\"eu\","
                   "         \"jurisdiction\":\"FR\"},"
                   "  \"us\":{\"kind\":\"openai\",\"base_url\":\"http://127.0.0.1:%d/v1\","
                   "         \"api_key\":\"" SECRET_B "\",\"vendor\":\"openai\",\"region\":\"us\","
                   "         \"jurisdiction\":\"US\"}},"
                   " \"routes\":{"
                   "  \"chat\":{\"targets\":[{\"provider\":\"fr\",\"model\":\"m-fr\","
                   "                        \"input_per_mtok\":2,\"output_per_mtok\":6},"
                   "                       {\"provider\":\"us\",\"model\":\"m-us\"}]},"
                   "  \"eu\":{\"targets\":[{\"provider\":\"fr\",\"model\":\"m-fr\"}]}},"
                   " \"policies\":{\"us-only\":{\"allow\":{\"jurisdiction\":[\"US\"]}}},"
                   " \"keys\":{\"ops\":{\"sha256\":\"" KEY_OPS_SHA "\"}}"
                   " %s}",
                   mock_fr.port, mock_us.port, extra);
}

static void post(const th_proc_t *gw, const char *body, const char *const *headers,
                 th_response_t *r)
{
    char url[256];
    th_http("POST", th_url_buf(gw, "/v1/chat/completions", url, sizeof(url)),
            headers ? headers : auth, body, strlen(body), r);
}

static int status_of(const th_proc_t *gw, const char *body, const char *const *headers)
{
    th_response_t r;
    post(gw, body, headers, &r);
    int s = (int)r.status;
    th_response_free(&r);
    return s;
}

/* GET /metrics, strictly parsed; the raw text in *text when asked. */
static void scrape(const th_proc_t *gw, prom_doc_t *doc, char **text)
{
    char url[256], err[256];
    th_response_t r;
    char ct[128];

    th_http("GET", th_url_buf(gw, "/metrics", url, sizeof(url)), auth, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(th_header(&r, "content-type", ct, sizeof(ct)));
    assert_non_null(strstr(ct, "text/plain; version=0.0.4"));
    if (prom_parse(r.body, r.body_len, doc, err, sizeof(err)) != 0) {
        fprintf(stderr, "exposition rejected: %s\n%s\n", err, r.body);
        fail();
    }
    int pt = prom_promtool_check(r.body, r.body_len);
    assert_true(pt == 0 || pt == 77);
    if (pt == 77) /* a check left out: scripts/ctest-run lists it, CI=true fails it */
        printf("meridian-skip: promtool not found (apt-get install prometheus): "
               "GET /metrics was not linted by promtool\n");
    if (text)
        *text = strdup(r.body);
    th_response_free(&r);
}

static double val(const prom_doc_t *d, const char *name, const char *const *labels)
{
    double v = prom_sum(d, name, labels);
    return isnan(v) ? 0 : v;
}

#define L(...) ((const char *const[]){__VA_ARGS__, NULL})

static double delta(const prom_doc_t *before, const prom_doc_t *after, const char *name,
                    const char *const *labels)
{
    return val(after, name, labels) - val(before, name, labels);
}

/* Scrapes into *after until `n` more requests are counted than in `before`
 * (a request is counted once its answer is sent: the client may be reading
 * it first), or 5 s pass. */
static void scrape_counted(const th_proc_t *gw, const prom_doc_t *before, prom_doc_t *after,
                           char **text, double n)
{
    for (int i = 0; i < 250; i++) {
        scrape(gw, after, text);
        if (delta(before, after, "meridian_requests_total", NULL) >= n)
            return;
        prom_free(after);
        free(*text);
        *text = NULL;
        th_pause_ms(20);
    }
    scrape(gw, after, text);
}

static void test_metrics_move_with_each_outcome(void **state)
{
    th_proc_t gw = {0};
    prom_doc_t d0, d1;
    th_response_t r;
    char buf[128], *text = NULL;
    (void)state;

    char *cfg = config("");
    const char *args[] = {"--workers", "2", NULL};
    assert_int_equal(th_start_meridian_ex(&gw, cfg, args, NULL), 0);
    free(cfg);
    th_mock_reset(&mock_fr);
    th_mock_reset(&mock_us);
    scrape(&gw, &d0, NULL);

    /* 3 successes on fr, with the full set of provenance headers */
    for (int i = 0; i < 3; i++) {
        post(&gw, "{\"model\":\"chat\",\"messages\":[]}", NULL, &r);
        assert_int_equal(r.status, 200);
        assert_string_equal(th_header(&r, "x-meridian-provider", buf, sizeof(buf)), "fr");
        assert_string_equal(th_header(&r, "x-meridian-vendor", buf, sizeof(buf)), "mistral");
        assert_string_equal(th_header(&r, "x-meridian-region", buf, sizeof(buf)), "eu");
        assert_string_equal(th_header(&r, "x-meridian-jurisdiction", buf, sizeof(buf)), "FR");
        assert_string_equal(th_header(&r, "x-meridian-attempts", buf, sizeof(buf)), "1");
        th_response_free(&r);
    }
    /* one stream */
    assert_int_equal(status_of(&gw, "{\"model\":\"chat\",\"stream\":true}", NULL), 200);
    /* one failover: fr answers 500 once, us serves */
    th_mock_scenario(&mock_fr, "{\"status\":500,\"count\":1}");
    post(&gw, "{\"model\":\"chat\"}", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(th_header(&r, "x-meridian-provider", buf, sizeof(buf)), "us");
    assert_string_equal(th_header(&r, "x-meridian-jurisdiction", buf, sizeof(buf)), "US");
    assert_string_equal(th_header(&r, "x-meridian-attempts", buf, sizeof(buf)), "2");
    th_response_free(&r);
    /* a policy denial: route eu has only FR, the header asks for US only */
    const char *const deny[] = {"Authorization: Bearer " KEY_OPS, "x-meridian-policy: us-only",
                                NULL};
    assert_int_equal(status_of(&gw, "{\"model\":\"eu\"}", deny), 403);
    /* every upstream failing: 503 from the gateway */
    th_mock_scenario(&mock_fr, "{\"status\":503,\"count\":1}");
    th_mock_scenario(&mock_us, "{\"status\":503,\"count\":1}");
    assert_int_equal(status_of(&gw, "{\"model\":\"chat\"}", NULL), 503);
    /* a bad request never routed */
    assert_int_equal(status_of(&gw, "{\"model\":", NULL), 400);
    /* a bad key */
    const char *const bad[] = {"Authorization: Bearer nope", NULL};
    assert_int_equal(status_of(&gw, "{\"model\":\"chat\"}", bad), 401);

    scrape_counted(&gw, &d0, &d1, &text, 9);
    const char *req = "meridian_requests_total";
    assert_true(delta(&d0, &d1, req,
                      L("route", "chat", "provider", "fr", "vendor", "mistral", "region", "eu",
                        "jurisdiction", "FR", "status_class", "2xx")) == 4);
    assert_true(delta(&d0, &d1, req,
                      L("route", "chat", "provider", "us", "vendor", "openai", "jurisdiction", "US",
                        "status_class", "2xx")) == 1);
    assert_true(delta(&d0, &d1, req, L("route", "eu", "provider", "none", "status_class", "4xx")) ==
                1);
    assert_true(
        delta(&d0, &d1, req, L("route", "chat", "provider", "none", "status_class", "5xx")) == 1);
    assert_true(delta(&d0, &d1, req, L("route", "none", "status_class", "4xx")) == 2);
    const char *att = "meridian_upstream_attempts_total";
    assert_true(delta(&d0, &d1, att, L("provider", "fr", "outcome", "success")) == 4);
    assert_true(delta(&d0, &d1, att, L("provider", "fr", "outcome", "http_5xx")) == 2);
    assert_true(delta(&d0, &d1, att, L("provider", "us", "outcome", "http_5xx")) == 1);
    assert_true(delta(&d0, &d1, "meridian_fallbacks_total",
                      L("route", "chat", "provider", "fr", "reason", "http_5xx")) == 2);
    assert_true(delta(&d0, &d1, "meridian_policy_denials_total", L("policy", "us-only")) == 1);
    /* the mock reports 5 prompt + 4 completion tokens per answer */
    assert_true(delta(&d0, &d1, "meridian_tokens_total", L("provider", "fr", "type", "prompt")) ==
                20);
    assert_true(
        delta(&d0, &d1, "meridian_tokens_total", L("provider", "fr", "type", "completion")) == 16);
    /* fr's target is priced 2 / 6 USD per Mtok: 4 × (5×2 + 4×6) / 1e6 */
    assert_true(fabs(delta(&d0, &d1, "meridian_cost_usd_total", L("provider", "fr")) - 136e-6) <
                1e-9);
    assert_true(delta(&d0, &d1, "meridian_time_to_first_byte_seconds_count",
                      L("route", "chat", "provider", "fr", "stream", "true")) == 1);
    assert_true(delta(&d0, &d1, "meridian_request_duration_seconds_count",
                      L("route", "chat", "provider", "fr", "stream", "false")) == 3);
    assert_true(val(&d1, "meridian_upstream_inflight", L("provider", "fr")) == 0);
    assert_true(val(&d1, "meridian_workers", NULL) == 2);
    assert_true(prom_count(&d1, "meridian_breaker_state") >= 6);
    assert_null(strstr(text, SECRET_A));
    assert_null(strstr(text, SECRET_B));
    assert_null(strstr(text, KEY_OPS));
    free(text);
    prom_free(&d0);
    prom_free(&d1);
    assert_int_equal(th_stop(&gw), 0);
}

/* The breaker gauge counts workers per state; one worker here. */
static void test_breaker_gauge(void **state)
{
    th_proc_t gw = {0};
    prom_doc_t d;
    (void)state;

    char *cfg = config("");
    const char *args[] = {"--workers", "1", NULL};
    assert_int_equal(th_start_meridian_ex(&gw, cfg, args, NULL), 0);
    free(cfg);
    th_mock_reset(&mock_fr);
    th_mock_reset(&mock_us);
    assert_int_equal(status_of(&gw, "{\"model\":\"chat\"}", NULL), 200);
    scrape(&gw, &d, NULL);
    assert_true(val(&d, "meridian_breaker_state",
                    L("provider", "fr", "model", "m-fr", "state", "closed")) == 1);
    prom_free(&d);
    th_mock_scenario(&mock_fr, "{\"status\":500,\"count\":3}");
    for (int i = 0; i < 3; i++)
        assert_int_equal(status_of(&gw, "{\"model\":\"chat\"}", NULL), 200);
    scrape(&gw, &d, NULL);
    assert_true(val(&d, "meridian_breaker_state",
                    L("provider", "fr", "model", "m-fr", "state", "open")) == 1);
    assert_true(val(&d, "meridian_breaker_state",
                    L("provider", "fr", "model", "m-fr", "state", "closed")) == 0);
    prom_free(&d);
    /* skipped at once while open, and counted */
    assert_int_equal(status_of(&gw, "{\"model\":\"chat\"}", NULL), 200);
    scrape(&gw, &d, NULL);
    assert_true(val(&d, "meridian_candidates_skipped_total",
                    L("provider", "fr", "reason", "circuit_open")) >= 1);
    prom_free(&d);
    assert_int_equal(th_stop(&gw), 0);
}

/* ---- files ------------------------------------------------------------- */

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    size_t got = fread(s, 1, (size_t)n, f);
    s[got] = '\0';
    fclose(f);
    return s;
}

static size_t count_lines(const char *path)
{
    char *s = slurp(path);
    size_t n = 0;
    for (const char *p = s; p && *p; p++)
        n += *p == '\n';
    free(s);
    return n;
}

/* The writer thread is asynchronous: poll (bounded) until n lines are there. */
static int wait_lines(const char *path, size_t n, int timeout_ms)
{
    for (int waited = 0; waited <= timeout_ms; waited += 10) {
        if (count_lines(path) >= n)
            return 0;
        poll(NULL, 0, 10);
    }
    return -1;
}

/* Line i (0-based) parsed as JSON. */
static json_t *line_json(const char *path, size_t i)
{
    char *s = slurp(path), *p = s;
    for (size_t k = 0; p && k < i; k++) {
        p = strchr(p, '\n');
        p = p ? p + 1 : NULL;
    }
    assert_non_null(p);
    char *end = strchr(p, '\n');
    json_error_t e;
    json_t *j = json_loadb(p, end ? (size_t)(end - p) : strlen(p), 0, &e);
    free(s);
    assert_non_null(j);
    return j;
}

static char *temp_path(const char *suffix)
{
    char *p = th_write_temp("", suffix);
    unlink(p); /* the gateway creates it */
    return p;
}

static void assert_no_secrets(const char *path)
{
    char *s = slurp(path);
    assert_non_null(s);
    assert_null(strstr(s, SECRET_A));
    assert_null(strstr(s, SECRET_B));
    assert_null(strstr(s, KEY_OPS));
    free(s);
}

static void test_access_log_fields_and_reopen(void **state)
{
    th_proc_t gw = {0};
    th_response_t r;
    char id[128];
    (void)state;

    char *log = temp_path(".log");
    char *rotated = th_strf("%s.1", log);
    char *extra = th_strf(",\"access_log\":\"%s\"", log);
    char *cfg = config(extra);
    assert_int_equal(th_start_meridian(&gw, cfg, NULL), 0);
    free(cfg);
    free(extra);
    th_mock_reset(&mock_fr);
    th_mock_reset(&mock_us);

    post(&gw, "{\"model\":\"chat\"}", NULL, &r);
    assert_int_equal(r.status, 200);
    th_header(&r, "x-request-id", id, sizeof(id));
    th_response_free(&r);
    assert_int_equal(wait_lines(log, 1, 5000), 0);
    json_t *j = line_json(log, 0);
    assert_string_equal(json_string_value(json_object_get(j, "id")), id);
    assert_string_equal(json_string_value(json_object_get(j, "key")), "ops");
    assert_string_equal(json_string_value(json_object_get(j, "route")), "chat");
    assert_string_equal(json_string_value(json_object_get(j, "provider")), "fr");
    assert_string_equal(json_string_value(json_object_get(j, "vendor")), "mistral");
    assert_string_equal(json_string_value(json_object_get(j, "jurisdiction")), "FR");
    assert_int_equal(json_integer_value(json_object_get(j, "status")), 200);
    assert_int_equal(json_integer_value(json_object_get(j, "attempts")), 1);
    assert_int_equal(json_integer_value(json_object_get(j, "prompt_tokens")), 5);
    assert_int_equal(json_integer_value(json_object_get(j, "completion_tokens")), 4);
    assert_true(json_real_value(json_object_get(j, "latency_ms")) > 0);
    assert_true(json_is_number(json_object_get(j, "ttfb_ms")));
    json_decref(j);

    /* logrotate: move the file, SIGUSR1, the next lines go to a new file */
    assert_int_equal(rename(log, rotated), 0);
    assert_int_equal(th_signal(&gw, SIGUSR1), 0);
    assert_int_equal(th_wait_log(&gw, "reopening the access log", 5000), 0);
    assert_int_equal(status_of(&gw, "{\"model\":\"chat\"}", NULL), 200);
    assert_int_equal(status_of(&gw, "{\"model\":\"chat\"}", NULL), 200);
    assert_int_equal(wait_lines(log, 2, 5000), 0);
    assert_int_equal(count_lines(rotated), 1);
    assert_int_equal(th_stop(&gw), 0);
    assert_no_secrets(log);
    assert_no_secrets(rotated);
    char *daemon_log = th_read_log(&gw);
    if (daemon_log) {
        assert_null(strstr(daemon_log, SECRET_A));
        assert_null(strstr(daemon_log, KEY_OPS));
        free(daemon_log);
    }
    unlink(log);
    unlink(rotated);
    free(log);
    free(rotated);
}

static int verify_audit(const char *path, char **out)
{
    const char *args[] = {"--verify-audit", path, NULL};
    return th_run_meridian(args, NULL, out);
}

/* Flips one byte inside line `line` (1-based), at `offset` into it. */
static void tamper(const char *src, const char *dst, size_t line, size_t offset)
{
    char *s = slurp(src), *p = s;
    for (size_t k = 1; k < line; k++)
        p = strchr(p, '\n') + 1;
    p[offset] = p[offset] == 'a' ? 'b' : 'a';
    FILE *f = fopen(dst, "wb");
    fwrite(s, 1, strlen(s), f);
    fclose(f);
    free(s);
}

static void test_audit_records_chain_and_tamper(void **state)
{
    th_proc_t gw = {0};
    char *out = NULL;
    (void)state;

    char *audit = temp_path(".jsonl");
    char *extra = th_strf(",\"audit\":{\"path\":\"%s\"}", audit);
    char *cfg = config(extra);
    assert_int_equal(th_start_meridian(&gw, cfg, NULL), 0);
    th_mock_reset(&mock_fr);
    th_mock_reset(&mock_us);

    const char *ok_body =
        "{\"model\":\"chat\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
    /* each record is waited for before the next request: two workers'
     * queues reach the file in no fixed order */
    assert_int_equal(status_of(&gw, ok_body, NULL), 200);
    assert_int_equal(wait_lines(audit, 1, 5000), 0);
    th_mock_scenario(&mock_fr, "{\"status\":502,\"count\":1}");
    assert_int_equal(status_of(&gw, "{\"model\":\"chat\"}", NULL), 200);
    assert_int_equal(wait_lines(audit, 2, 5000), 0);
    const char *const deny[] = {"Authorization: Bearer " KEY_OPS, "x-meridian-policy: us-only",
                                NULL};
    assert_int_equal(status_of(&gw, "{\"model\":\"eu\"}", deny), 403);
    assert_int_equal(wait_lines(audit, 3, 5000), 0);

    /* success: one attempt, the digests, the key's name */
    json_t *j = line_json(audit, 0);
    assert_int_equal(json_integer_value(json_object_get(j, "seq")), 1);
    assert_string_equal(json_string_value(json_object_get(j, "prev")),
                        "0000000000000000000000000000000000000000000000000000000000000000");
    assert_string_equal(json_string_value(json_object_get(j, "key")), "ops");
    assert_int_equal(json_array_size(json_object_get(j, "attempts")), 1);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(j, "served"), "jurisdiction")), "FR");
    assert_int_equal(strlen(json_string_value(json_object_get(j, "request_sha256"))), 64);
    assert_int_equal(strlen(json_string_value(json_object_get(j, "response_sha256"))), 64);
    assert_int_equal(json_integer_value(json_object_get(j, "prompt_tokens")), 5);
    assert_null(json_object_get(j, "request_body")); /* bodies off by default */
    json_decref(j);
    /* failover: both attempts, the first with its status */
    j = line_json(audit, 1);
    json_t *a = json_object_get(j, "attempts");
    assert_int_equal(json_array_size(a), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(a, 0), "provider")), "fr");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(a, 0), "status")), 502);
    assert_string_equal(json_string_value(json_object_get(json_array_get(a, 0), "vendor")),
                        "mistral");
    assert_string_equal(json_string_value(json_object_get(json_array_get(a, 1), "jurisdiction")),
                        "US");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(j, "served"), "provider")), "us");
    json_decref(j);
    /* denial: the policy with its hash, the exclusion and why */
    j = line_json(audit, 2);
    assert_int_equal(json_integer_value(json_object_get(j, "status")), 403);
    json_t *pol = json_object_get(json_object_get(j, "policy"), "chosen_policy");
    assert_string_equal(json_string_value(json_object_get(pol, "name")), "us-only");
    assert_int_equal(strlen(json_string_value(json_object_get(pol, "sha256"))), 64);
    json_t *x = json_array_get(json_object_get(j, "excluded"), 0);
    assert_string_equal(json_string_value(json_object_get(x, "provider")), "fr");
    assert_non_null(strstr(json_string_value(json_object_get(x, "reason")), "FR"));
    assert_true(json_is_null(json_object_get(j, "served")));
    json_decref(j);

    /* restart: the chain continues */
    assert_int_equal(th_stop(&gw), 0);
    assert_int_equal(th_start_meridian(&gw, cfg, NULL), 0);
    assert_int_equal(status_of(&gw, "{\"model\":\"chat\"}", NULL), 200);
    assert_int_equal(th_stop(&gw), 0);
    assert_int_equal(count_lines(audit), 4);
    j = line_json(audit, 3);
    assert_int_equal(json_integer_value(json_object_get(j, "seq")), 4);
    json_decref(j);
    assert_int_equal(verify_audit(audit, &out), 0);
    assert_non_null(strstr(out, "4 records"));
    free(out);

    /* one flipped byte in record 2 is found and named */
    char *bad = th_strf("%s.bad", audit);
    tamper(audit, bad, 2, 40);
    assert_int_equal(verify_audit(bad, &out), 1);
    assert_non_null(strstr(out, "record 2"));
    free(out);
    /* a removed record breaks the chain at the next one */
    char *s = slurp(audit), *l2 = strchr(s, '\n') + 1, *l3 = strchr(l2, '\n') + 1;
    memmove(l2, l3, strlen(l3) + 1);
    FILE *f = fopen(bad, "wb");
    fwrite(s, 1, strlen(s), f);
    fclose(f);
    free(s);
    assert_int_equal(verify_audit(bad, &out), 1);
    assert_non_null(strstr(out, "record 2"));
    free(out);
    assert_no_secrets(audit);
    unlink(bad);
    unlink(audit);
    free(bad);
    free(audit);
    free(extra);
    free(cfg);
}

static void test_audit_bodies(void **state)
{
    th_proc_t gw = {0};
    (void)state;

    char *audit = temp_path(".jsonl");
    char *extra = th_strf(",\"audit\":{\"path\":\"%s\",\"bodies\":true}", audit);
    char *cfg = config(extra);
    assert_int_equal(th_start_meridian(&gw, cfg, NULL), 0);
    th_mock_reset(&mock_fr);
    const char *body =
        "{\"model\":\"chat\", \"messages\":[{\"role\":\"user\",\"content\":\"\\\"q\\\"\"}]}";
    th_response_t r;
    post(&gw, body, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(wait_lines(audit, 1, 5000), 0);
    json_t *j = line_json(audit, 0);
    assert_string_equal(json_string_value(json_object_get(j, "request_body")), body);
    assert_string_equal(json_string_value(json_object_get(j, "response_body")), r.body);
    json_decref(j);
    th_response_free(&r);
    assert_int_equal(th_stop(&gw), 0);
    char *out = NULL;
    assert_int_equal(verify_audit(audit, &out), 0);
    free(out);
    unlink(audit);
    free(audit);
    free(extra);
    free(cfg);
}

/* 10,000 records from 2 workers under concurrent load: none lost, none
 * dropped, the chain intact. */
static void test_audit_ten_thousand_under_load(void **state)
{
    enum { TOTAL = 10000, BATCH = 100 };
    th_proc_t gw = {0};
    th_request_t reqs[BATCH];
    th_response_t outs[BATCH];
    char url[256];
    prom_doc_t d;
    (void)state;

    char *audit = temp_path(".jsonl");
    char *extra = th_strf(",\"audit\":{\"path\":\"%s\"}", audit);
    char *cfg = config(extra);
    const char *args[] = {"--workers", "2", NULL};
    assert_int_equal(th_start_meridian_ex(&gw, cfg, args, NULL), 0);
    th_mock_reset(&mock_fr);
    th_url_buf(&gw, "/v1/chat/completions", url, sizeof(url));
    for (int i = 0; i < BATCH; i++)
        reqs[i] = (th_request_t){"POST", url, auth, "{\"model\":\"chat\"}", 16};
    int ok = 0;
    for (int sent = 0; sent < TOTAL; sent += BATCH) {
        th_http_parallel(reqs, BATCH, outs);
        for (int i = 0; i < BATCH; i++) {
            ok += outs[i].status == 200;
            th_response_free(&outs[i]);
        }
    }
    assert_int_equal(ok, TOTAL);
    scrape(&gw, &d, NULL);
    assert_true(val(&d, "meridian_audit_dropped_total", NULL) == 0);
    prom_free(&d);
    assert_int_equal(th_stop(&gw), 0); /* flushes the writer */
    assert_int_equal(count_lines(audit), TOTAL);
    char *out = NULL;
    assert_int_equal(verify_audit(audit, &out), 0);
    assert_non_null(strstr(out, "10000 records"));
    free(out);
    unlink(audit);
    free(audit);
    free(extra);
    free(cfg);
}

static void test_status_json(void **state)
{
    th_proc_t gw = {0};
    th_response_t r;
    char url[256], ct[128];
    (void)state;

    char *cfg = config(",\"public_metrics\":true");
    assert_int_equal(th_start_meridian(&gw, cfg, NULL), 0);
    free(cfg);
    th_mock_reset(&mock_fr);
    th_mock_reset(&mock_us);
    for (int i = 0; i < 5; i++)
        assert_int_equal(status_of(&gw, "{\"model\":\"chat\"}", NULL), 200);
    /* public without a key (public_metrics true). A request is
     * counted when MHD reports it complete, which may come just after the
     * client has its answer: poll (bounded) until the fifth is in. */
    json_t *j = NULL;
    for (int tries = 0; tries < 100; tries++) {
        th_http("GET", th_url_buf(&gw, "/status.json", url, sizeof(url)), NULL, NULL, 0, &r);
        assert_int_equal(r.status, 200);
        j = th_json(&r);
        assert_non_null(j);
        json_t *first = json_array_get(json_object_get(j, "providers"), 0);
        if (json_integer_value(json_object_get(first, "requests_1m")) >= 5)
            break;
        json_decref(j);
        th_response_free(&r);
        j = NULL;
        th_pause_ms(50);
    }
    assert_non_null(j);
    assert_int_equal(json_array_size(json_object_get(j, "providers")), 2);
    json_t *p0 = json_array_get(json_object_get(j, "providers"), 0);
    assert_string_equal(json_string_value(json_object_get(p0, "name")), "fr");
    assert_string_equal(json_string_value(json_object_get(p0, "state")), "closed");
    assert_int_equal(json_integer_value(json_object_get(p0, "requests_1m")), 5);
    json_t *series = json_object_get(j, "series");
    json_t *mistral = json_object_get(json_object_get(series, "vendor"), "mistral");
    json_t *fr = json_object_get(json_object_get(series, "jurisdiction"), "FR");
    assert_non_null(mistral);
    assert_non_null(fr);
    json_int_t sum = 0;
    size_t i;
    json_t *v;
    json_array_foreach(mistral, i, v) sum += json_integer_value(v);
    assert_int_equal(sum, 5);
    assert_int_equal(json_array_size(json_object_get(series, "t")), json_array_size(fr));
    json_decref(j);
    th_response_free(&r);
    th_http("GET", th_url_buf(&gw, "/status", url, sizeof(url)), NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(th_header(&r, "content-type", ct, sizeof(ct)));
    assert_non_null(strstr(ct, "text/html"));
    assert_non_null(strstr(r.body, "status.json"));
    th_response_free(&r);
    assert_int_equal(th_stop(&gw), 0);

    /* with keys, public_metrics defaults to false: the key is required */
    cfg = config("");
    assert_int_equal(th_start_meridian(&gw, cfg, NULL), 0);
    free(cfg);
    th_http("GET", th_url_buf(&gw, "/metrics", url, sizeof(url)), NULL, NULL, 0, &r);
    assert_int_equal(r.status, 401);
    th_response_free(&r);
    th_http("GET", th_url_buf(&gw, "/metrics", url, sizeof(url)), auth, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    th_response_free(&r);
    assert_int_equal(th_stop(&gw), 0);
}

static int group_setup(void **state)
{
    (void)state;
    return th_start_mock(&mock_fr, "fr") < 0 || th_start_mock(&mock_us, "us") < 0 ? -1 : 0;
}

static int group_teardown(void **state)
{
    (void)state;
    th_stop(&mock_fr);
    th_stop(&mock_us);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metrics_move_with_each_outcome),
        cmocka_unit_test(test_breaker_gauge),
        cmocka_unit_test(test_access_log_fields_and_reopen),
        cmocka_unit_test(test_audit_records_chain_and_tamper),
        cmocka_unit_test(test_audit_bodies),
        cmocka_unit_test(test_audit_ten_thousand_under_load),
        cmocka_unit_test(test_status_json),
    };
    th_init();
    int rc = cmocka_run_group_tests(tests, group_setup, group_teardown);
    th_cleanup();
    return rc;
}
