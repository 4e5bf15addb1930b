/*
 * Issue 16's acceptance on the real binary: limits, budgets and shared state
 * with the mock upstream (usage 5 + 4 tokens; the target priced 0 / 1000 USD
 * per million tokens, so every request costs exactly $0.004 and reserves
 * exactly that) and a redis-server started here on a free port:
 *   - 64 concurrent requests against a key whose budget allows 20: the
 *     recorded spend is at most budget + one reservation and is exactly
 *     what the served requests cost, non-stream and stream, in one process
 *     with two workers and over three instances sharing Redis
 *   - rpm 30 over three instances: 60 requests, 30 served, the others 429
 *     with Retry-After, and the x-ratelimit-* headers on every answer
 *   - a breaker opened on instance A: B stops sending to that target (the
 *     delay is printed), the mock sees nothing from B
 *   - Redis killed mid-run under on_outage "local" and "deny": nothing
 *     hangs (the slowest answer is printed), metrics show the outage;
 *     restarted: the journal replays, the spend is exact
 *   - a restarted Meridian (memory backend with state.file, then Redis)
 *     still counts the spend
 * Exits 77 without redis-server.
 */
#include "harness.h"
#include "promtext.h"
#include "redisd.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define N_INST 3
#define COST 0.004  /* 4 completion tokens at $1000 per Mtok */
#define BUDGET 0.08 /* 20 requests */
#define WAIT_MS 10000

/* secrets and their SHA-256 (printf %s SECRET | sha256sum) */
#define K_BUDGET "sk-budget"
#define K_BUDGET_SHA "025c374c329646e85513b352eb015a0a8b4aae9d0c507e563497ee10b2f99e44"
#define K_STREAM "sk-stream"
#define K_STREAM_SHA "f8545810a44df219f60d3cbc67a664f4df90b01826b3b1198f5cc3ffc689c434"
#define K_RPM "sk-rpm"
#define K_RPM_SHA "29a3870cc13cd98308dc9555840cef48bcceb0db1ba5a13d348371aaad3c7edb"
#define K_ADMIN "sk-admin"
#define K_ADMIN_SHA "46db358cf47822ef17fa2cea371f2dd33512fb20ae94b092a5efb955d515b410"
#define K_FREE "sk-free"
#define K_FREE_SHA "a97ffab5cd3331858e03076328705ababa22813218d8511eb09bbbce51d39ff8"

#define BODY                                                                                       \
    "{\"model\":\"chat\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"                   \
    "\"max_tokens\":4"

static th_proc_t mock_a, mock_b;
static th_proc_t gw[N_INST];
static th_redis_t redis;
static char redis_url[64];

static double mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* ---- instances ------------------------------------------------------------ */

static char *config(const char *state)
{
    return th_strf("{\"listen\":\"127.0.0.1:0\", \"public_metrics\":true,"
                   " \"health\":{\"failure_threshold\":2,\"cooldown_ms\":60000},"
                   " \"retry_budget\":{\"min_retries_per_s\":100000},"
                   " \"providers\":{"
                   "  \"a\":{\"kind\":\"openai\",\"base_url\":\"http://127.0.0.1:%d/v1\"},"
                   "  \"b\":{\"kind\":\"openai\",\"base_url\":\"http://127.0.0.1:%d/v1\","
                   "        \"budget_usd\":0.004,\"budget_period\":\"day\"}},"
                   " \"routes\":{"
                   "  \"chat\":{\"targets\":[{\"provider\":\"a\",\"model\":\"m\","
                   "                        \"input_per_mtok\":0,\"output_per_mtok\":1000}]},"
                   "  \"brk\":{\"targets\":[{\"provider\":\"a\",\"model\":\"m-brk\"},"
                   "                      {\"provider\":\"b\",\"model\":\"m-brk\"}]},"
                   "  \"share\":{\"targets\":[{\"provider\":\"a\",\"model\":\"m-s\"},"
                   "                        {\"provider\":\"b\",\"model\":\"m-s\"}]},"
                   "  \"capped\":{\"targets\":[{\"provider\":\"b\",\"model\":\"m-c\","
                   "                         \"input_per_mtok\":0,\"output_per_mtok\":1000},"
                   "                        {\"provider\":\"a\",\"model\":\"m-c\"}]}},"
                   " \"policies\":{\"half\":{\"max_vendor_share\":0.5}},"
                   " \"keys\":{"
                   "  \"budget\":{\"sha256\":\"" K_BUDGET_SHA "\",\"limits\":{\"budget_usd\":%g}},"
                   "  \"stream\":{\"sha256\":\"" K_STREAM_SHA "\",\"limits\":{\"budget_usd\":%g}},"
                   "  \"rpm\":{\"sha256\":\"" K_RPM_SHA "\",\"limits\":{\"rpm\":30}},"
                   "  \"admin\":{\"sha256\":\"" K_ADMIN_SHA "\",\"admin\":true},"
                   "  \"free\":{\"sha256\":\"" K_FREE_SHA "\"}},"
                   " \"state\":%s}",
                   mock_a.port, mock_b.port, BUDGET, BUDGET, state);
}

static char *redis_state(const char *on_outage)
{
    return th_strf("{\"backend\":\"redis\",\"redis_url\":\"%s\",\"on_outage\":\"%s\"}", redis_url,
                   on_outage);
}

static void start_n(int n, const char *state)
{
    static const char *const args[] = {"--workers", "2", NULL};
    char *cfg = config(state);
    for (int i = 0; i < n; i++)
        assert_int_equal(th_start_meridian_ex(&gw[i], cfg, args, NULL), 0);
    free(cfg);
}

static void stop_all(void)
{
    for (int i = 0; i < N_INST; i++)
        if (gw[i].pid > 0)
            assert_int_equal(th_stop(&gw[i]), 0);
}

/* ---- requests --------------------------------------------------------------- */

static const char *const *auth(const char *key)
{
    static char line[64];
    static const char *headers[2] = {line, NULL};
    snprintf(line, sizeof(line), "Authorization: Bearer %s", key);
    return headers;
}

static long chat(const th_proc_t *g, const char *key, bool stream, th_response_t *r)
{
    char url[128];
    const char *body = stream ? BODY ",\"stream\":true}" : BODY "}";
    th_http("POST", th_url_buf(g, "/v1/chat/completions", url, sizeof(url)), auth(key), body,
            strlen(body), r);
    return r->status;
}

static long chat_status(const th_proc_t *g, const char *key)
{
    th_response_t r;
    long s = chat(g, key, false, &r);
    th_response_free(&r);
    return s;
}

/* n requests at once over the first `inst` instances; counts by status. */
static void burst(int n, int inst, const char *key, bool stream, int *ok, int *refused,
                  th_response_t *outs)
{
    th_request_t reqs[64];
    char urls[64][128], hdr[64];
    const char *headers[] = {hdr, NULL};
    const char *body = stream ? BODY ",\"stream\":true}" : BODY "}";

    snprintf(hdr, sizeof(hdr), "Authorization: Bearer %s", key);
    for (int i = 0; i < n; i++) {
        th_url_buf(&gw[i % inst], "/v1/chat/completions", urls[i], sizeof(urls[i]));
        reqs[i] = (th_request_t){"POST", urls[i], headers, body, strlen(body)};
    }
    assert_int_equal(th_http_parallel(reqs, (size_t)n, outs), 0);
    *ok = *refused = 0;
    for (int i = 0; i < n; i++) {
        *ok += outs[i].status == 200;
        *refused += outs[i].status == 429;
    }
}

static void free_all(th_response_t *outs, int n)
{
    for (int i = 0; i < n; i++)
        th_response_free(&outs[i]);
}

/* GET /v1/gateway/keys/NAME with the admin key, once nothing is reserved
 * (the last settlements may trail the answers by a moment). */
static json_t *key_info(const th_proc_t *g, const char *name)
{
    char path[128], url[160];
    double until = mono_ms() + WAIT_MS;
    snprintf(path, sizeof(path), "/v1/gateway/keys/%s", name);
    for (;;) {
        th_response_t r;
        th_http("GET", th_url_buf(g, path, url, sizeof(url)), auth(K_ADMIN), NULL, 0, &r);
        assert_int_equal(r.status, 200);
        json_t *o = th_json(&r);
        th_response_free(&r);
        assert_non_null(o);
        json_t *u = json_object_get(o, "usage");
        if (json_real_value(json_object_get(u, "reserved_usd")) == 0 || mono_ms() > until)
            return o;
        json_decref(o);
        th_pause_ms(20);
    }
}

static double spent_of(const th_proc_t *g, const char *name)
{
    json_t *o = key_info(g, name);
    double v = json_real_value(json_object_get(json_object_get(o, "usage"), "spent_usd"));
    json_decref(o);
    return v;
}

static double metric(const th_proc_t *g, const char *name)
{
    char url[128];
    th_response_t r;
    prom_doc_t d;
    th_http("GET", th_url_buf(g, "/metrics", url, sizeof(url)), NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(prom_parse(r.body, r.body_len, &d, NULL, 0), 0);
    double v = prom_sum(&d, name, NULL);
    prom_free(&d);
    th_response_free(&r);
    return v;
}

/* Polls until every instance's `name` is `want` (bounded). */
static void wait_metric(int n, const char *name, double want)
{
    double until = mono_ms() + WAIT_MS;
    for (int i = 0; i < n; i++)
        while (metric(&gw[i], name) != want && mono_ms() < until)
            th_pause_ms(50);
    for (int i = 0; i < n; i++)
        assert_true(metric(&gw[i], name) == want);
}

static bool same_usd(double a, double b)
{
    return fabs(a - b) < 1e-9;
}

/* A settlement is written when its attempt ends, which may come just after
 * the client has its answer (and, with Redis, one round trip later):
 * poll (bounded) until `name`'s spend as g reports it is `want`. */
static void wait_spent(const th_proc_t *g, const char *name, double want)
{
    double until = mono_ms() + WAIT_MS;
    while (!same_usd(spent_of(g, name), want) && mono_ms() < until)
        th_pause_ms(50);
    assert_true(same_usd(spent_of(g, name), want));
}

/* ---- budgets ---------------------------------------------------------------- */

static void budget_case(int inst, const char *key, const char *name, bool stream)
{
    th_response_t outs[64];
    int ok, refused;
    char buf[64];

    burst(64, inst, key, stream, &ok, &refused, outs);
    for (int i = 0; i < 64; i++)
        if (outs[i].status == 429) {
            assert_non_null(strstr(outs[i].body, "\"code\":\"insufficient_quota\""));
            assert_null(th_header(&outs[i], "retry-after", buf, sizeof(buf))); /* "total" */
        } else if (stream) {
            assert_non_null(strstr(outs[i].body, "data: [DONE]"));
        }
    free_all(outs, 64);
    double spent = spent_of(&gw[0], name);
    print_message("%s, %d instance(s): 64 at once, %d served, %d refused; spent $%.3f of $%.2f\n",
                  stream ? "stream" : "non-stream", inst, ok, refused, spent, BUDGET);
    assert_int_equal(ok + refused, 64);
    assert_true(ok >= 20 && ok <= 21); /* 21 only if the budget's rounding lets one more in */
    assert_true(spent <= BUDGET + COST + 1e-9);
    assert_true(same_usd(spent, ok * COST)); /* each served request once, streams included */
}

static void test_budget_one_process(void **state)
{
    (void)state;
    th_mock_reset(&mock_a);
    start_n(1, "{\"backend\":\"memory\"}");
    budget_case(1, K_BUDGET, "budget", false);
    budget_case(1, K_STREAM, "stream", true);
    stop_all();
}

static void test_budget_three_instances(void **state)
{
    (void)state;
    th_mock_reset(&mock_a);
    assert_int_equal(th_redis_cmd(&redis, "FLUSHALL"), 0);
    char *st = redis_state("local");
    start_n(N_INST, st);
    free(st);
    budget_case(N_INST, K_BUDGET, "budget", false);
    budget_case(N_INST, K_STREAM, "stream", true);
    /* every instance reads the same spend from Redis */
    for (int i = 1; i < N_INST; i++)
        assert_true(same_usd(spent_of(&gw[i], "budget"), spent_of(&gw[0], "budget")));
}

/* rpm 30 over the three instances still running. */
static void test_rpm_three_instances(void **state)
{
    th_response_t outs[64];
    int ok, refused;
    char buf[64];
    (void)state;

    burst(60, N_INST, K_RPM, false, &ok, &refused, outs);
    print_message("rpm 30 over %d instances: 60 at once, %d served, %d refused\n", N_INST, ok,
                  refused);
    assert_true(ok >= 29 && ok <= 31);
    assert_int_equal(ok + refused, 60);
    for (int i = 0; i < 60; i++) {
        assert_string_equal(th_header(&outs[i], "x-ratelimit-limit-requests", buf, sizeof(buf)),
                            "30");
        assert_non_null(th_header(&outs[i], "x-ratelimit-remaining-requests", buf, sizeof(buf)));
        assert_non_null(th_header(&outs[i], "x-ratelimit-reset-requests", buf, sizeof(buf)));
        if (outs[i].status == 429) {
            assert_non_null(strstr(outs[i].body, "\"code\":\"rate_limit_exceeded\""));
            long ra = atol(th_header(&outs[i], "retry-after", buf, sizeof(buf)));
            assert_true(ra >= 1 && ra <= 61);
        }
    }
    free_all(outs, 60);
}

/* Vendor shares count every instance: a request served by vendor a on
 * instance 0 puts a at its max_vendor_share on instance 1 too. */
static void test_vendor_share(void **state)
{
    char url[160];
    th_response_t r;
    const char *body = "{\"model\":\"share\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}";
    const char *headers[] = {"Authorization: Bearer " K_FREE, "x-meridian-policy: half", NULL};
    (void)state;

    th_mock_reset(&mock_a);
    th_http("POST", th_url_buf(&gw[0], "/v1/chat/completions", url, sizeof(url)), headers, body,
            strlen(body), &r);
    assert_int_equal(r.status, 200);
    char who[32];
    assert_string_equal(th_header(&r, "x-meridian-provider", who, sizeof(who)), "a");
    th_response_free(&r);
    double t0 = mono_ms(), took = -1;
    while (took < 0 && mono_ms() - t0 < WAIT_MS) {
        th_http("GET",
                th_url_buf(&gw[1], "/v1/gateway/route?model=share&policy=half", url, sizeof(url)),
                auth(K_FREE), NULL, 0, &r);
        json_t *o = th_json(&r), *first = json_array_get(json_object_get(o, "candidates"), 0);
        if (!strcmp(json_string_value(json_object_get(first, "provider")), "b"))
            took = mono_ms() - t0;
        json_decref(o);
        th_response_free(&r);
        if (took < 0)
            th_pause_ms(20);
    }
    print_message("vendor a served on instance 0: instance 1 demoted it within %.0f ms\n", took);
    assert_true(took >= 0);
}

/* A breaker opened on instance 0 keeps instance 1 away from the target. */
static void test_breaker_hint(void **state)
{
    char url[128];
    th_response_t r;
    const char *body = "{\"model\":\"brk\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}";
    (void)state;

    th_mock_reset(&mock_a);
    th_mock_reset(&mock_b);
    th_mock_scenario(&mock_a, "{\"status\":500}");
    for (int i = 0; i < 2; i++) { /* failure_threshold 2: a/m-brk opens on instance 0 */
        th_http("POST", th_url_buf(&gw[0], "/v1/chat/completions", url, sizeof(url)), auth(K_FREE),
                body, strlen(body), &r);
        assert_int_equal(r.status, 200);
        th_response_free(&r);
    }
    long seen = th_mock_stat(&mock_a, "requests");
    assert_int_equal(seen, 2);
    double t0 = mono_ms(), took = -1;
    while (took < 0 && mono_ms() - t0 < WAIT_MS) {
        th_http("GET", th_url_buf(&gw[1], "/v1/gateway/providers", url, sizeof(url)), auth(K_FREE),
                NULL, 0, &r);
        if (strstr(r.body, "\"state\":\"open\""))
            took = mono_ms() - t0;
        th_response_free(&r);
        if (took < 0)
            th_pause_ms(10);
    }
    print_message("breaker opened on instance 0: instance 1 knew within %.0f ms\n", took);
    assert_true(took >= 0);
    for (int i = 0; i < 5; i++) {
        char who[32], n[16];
        th_http("POST", th_url_buf(&gw[1], "/v1/chat/completions", url, sizeof(url)), auth(K_FREE),
                body, strlen(body), &r);
        assert_int_equal(r.status, 200);
        assert_string_equal(th_header(&r, "x-meridian-provider", who, sizeof(who)), "b");
        assert_string_equal(th_header(&r, "x-meridian-attempts", n, sizeof(n)), "1");
        th_response_free(&r);
    }
    assert_int_equal(th_mock_stat(&mock_a, "requests"), seen); /* nothing from instance 1 */
    th_mock_reset(&mock_a);
    stop_all();
}

/* ---- Redis away ------------------------------------------------------------- */

/* n requests per instance; the slowest answer's time in *slowest_ms. */
static int requests_during(int inst, int n, const char *key, long want_refusal, double *slowest_ms)
{
    int ok = 0;
    for (int k = 0; k < n; k++)
        for (int i = 0; i < inst; i++) {
            double t = mono_ms();
            long s = chat_status(&gw[i], key);
            t = mono_ms() - t;
            if (t > *slowest_ms)
                *slowest_ms = t;
            assert_true(s == 200 || s == want_refusal);
            ok += s == 200;
        }
    return ok;
}

static void test_outage_local(void **state)
{
    double slowest = 0;
    (void)state;

    th_mock_reset(&mock_a);
    assert_int_equal(th_redis_cmd(&redis, "FLUSHALL"), 0);
    char *st = redis_state("local");
    start_n(2, st);
    free(st);
    int before = requests_during(2, 3, K_BUDGET, 429, &slowest);
    assert_int_equal(before, 6);
    wait_spent(&gw[0], "budget", 6 * COST);

    th_redis_kill(&redis, SIGKILL);
    int during = requests_during(2, 10, K_BUDGET, 429, &slowest);
    print_message("on_outage local: Redis killed after 6 served; 20 more: %d served on local "
                  "shares, slowest answer %.0f ms\n",
                  during, slowest);
    /* each instance: half of what it last heard was left, + one reservation
     * (it may not have heard of the other's last requests) */
    assert_true(during >= 2 && during <= 20);
    for (int i = 0; i < 2; i++) {
        assert_true(metric(&gw[i], "meridian_state_up") == 0);
        assert_true(metric(&gw[i], "meridian_state_outages_total") >= 1);
        assert_true(metric(&gw[i], "meridian_state_local_answers_total") >= 1);
    }

    assert_int_equal(th_redis_start(&redis), 0);
    wait_metric(2, "meridian_state_up", 1);
    wait_metric(2, "meridian_state_journal_ops", 0);
    double spent = spent_of(&gw[1], "budget");
    print_message("Redis back: the journal replayed, spent $%.3f for %d served (budget $%.2f)\n",
                  spent, before + during, BUDGET);
    assert_true(same_usd(spent, (before + during) * COST)); /* nothing lost or counted twice */
    stop_all();
}

static void test_outage_deny(void **state)
{
    double slowest = 0;
    (void)state;

    th_mock_reset(&mock_a);
    assert_int_equal(th_redis_cmd(&redis, "FLUSHALL"), 0);
    char *st = redis_state("deny");
    start_n(2, st);
    free(st);
    assert_int_equal(requests_during(2, 1, K_BUDGET, 503, &slowest), 2);

    th_redis_kill(&redis, SIGKILL);
    assert_int_equal(requests_during(2, 5, K_BUDGET, 503, &slowest), 0);
    /* a key without limits needs no state: still served */
    assert_int_equal(requests_during(2, 2, K_FREE, 503, &slowest), 4);
    print_message("on_outage deny: limited key refused (503), unlimited key served; slowest "
                  "answer %.0f ms\n",
                  slowest);
    for (int i = 0; i < 2; i++) {
        assert_true(metric(&gw[i], "meridian_state_up") == 0);
        assert_true(metric(&gw[i], "meridian_state_unavailable_total") >= 1);
    }
    th_response_t r;
    chat(&gw[0], K_BUDGET, false, &r);
    assert_int_equal(r.status, 503);
    assert_non_null(strstr(r.body, "\"code\":\"state_unavailable\""));
    th_response_free(&r);

    assert_int_equal(th_redis_start(&redis), 0);
    wait_metric(2, "meridian_state_up", 1);
    assert_int_equal(chat_status(&gw[0], K_BUDGET), 200);
    wait_spent(&gw[1], "budget", 3 * COST);
    stop_all();
}

/* ---- restarts ---------------------------------------------------------------- */

static void restart_case(const char *state)
{
    start_n(1, state);
    for (int i = 0; i < 3; i++)
        assert_int_equal(chat_status(&gw[0], K_BUDGET), 200);
    wait_spent(&gw[0], "budget", 3 * COST);
    stop_all();
    start_n(1, state);
    wait_spent(&gw[0], "budget", 3 * COST);
    assert_int_equal(chat_status(&gw[0], K_BUDGET), 200);
    wait_spent(&gw[0], "budget", 4 * COST);
    stop_all();
}

static void test_restart_keeps_spend(void **state)
{
    (void)state;
    char *file = th_strf("%s/state.json", redis.dir); /* a directory this test removes */
    char *st = th_strf("{\"backend\":\"memory\",\"file\":\"%s\"}", file);
    restart_case(st);
    free(st);
    free(file);
    assert_int_equal(th_redis_cmd(&redis, "FLUSHALL"), 0);
    st = redis_state("local");
    restart_case(st);
    free(st);
}

/* ---- the keys API ------------------------------------------------------------- */

static void test_keys_api(void **state)
{
    char url[128];
    th_response_t r;
    (void)state;

    start_n(1, "{\"backend\":\"memory\"}");
    /* a key reads itself; another key may not; an admin key reads any */
    th_http("GET", th_url_buf(&gw[0], "/v1/gateway/keys/budget", url, sizeof(url)), auth(K_BUDGET),
            NULL, 0, &r);
    assert_int_equal(r.status, 200);
    json_t *o = th_json(&r);
    assert_true(json_real_value(json_object_get(json_object_get(o, "limits"), "budget_usd")) ==
                BUDGET);
    assert_true(json_real_value(json_object_get(json_object_get(o, "usage"), "remaining_usd")) ==
                BUDGET);
    json_decref(o);
    th_response_free(&r);
    th_http("GET", th_url_buf(&gw[0], "/v1/gateway/keys/budget", url, sizeof(url)), auth(K_RPM),
            NULL, 0, &r);
    assert_int_equal(r.status, 403);
    th_response_free(&r);
    th_http("GET", th_url_buf(&gw[0], "/v1/gateway/keys/nobody", url, sizeof(url)), auth(K_ADMIN),
            NULL, 0, &r);
    assert_int_equal(r.status, 404);
    th_response_free(&r);
    /* /metrics and /status.json show the keys and the state */
    assert_int_equal(chat_status(&gw[0], K_BUDGET), 200);
    assert_true(metric(&gw[0], "meridian_state_up") == 1);
    th_http("GET", th_url_buf(&gw[0], "/status.json", url, sizeof(url)), NULL, NULL, 0, &r);
    o = th_json(&r);
    assert_string_equal(json_string_value(json_object_get(json_object_get(o, "state"), "backend")),
                        "memory");
    assert_non_null(
        json_object_get(json_object_get(json_object_get(o, "budgets"), "keys"), "budget"));
    json_decref(o);
    th_response_free(&r);
    stop_all();
}

/* A provider over its budget is skipped by routing, which says why. */
static void test_provider_budget(void **state)
{
    char url[160], who[32];
    th_response_t r;
    const char *body = "{\"model\":\"capped\",\"max_tokens\":4,"
                       "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}";
    (void)state;

    th_mock_reset(&mock_b);
    start_n(1, "{\"backend\":\"memory\"}");
    for (int i = 0; i < 3; i++) { /* b's budget is one request: then a serves */
        th_http("POST", th_url_buf(&gw[0], "/v1/chat/completions", url, sizeof(url)), auth(K_FREE),
                body, strlen(body), &r);
        assert_int_equal(r.status, 200);
        assert_string_equal(th_header(&r, "x-meridian-provider", who, sizeof(who)),
                            i == 0 ? "b" : "a");
        th_response_free(&r);
    }
    assert_int_equal(th_mock_stat(&mock_b, "requests"), 1);
    th_http("GET", th_url_buf(&gw[0], "/v1/gateway/route?model=capped", url, sizeof(url)),
            auth(K_FREE), NULL, 0, &r);
    json_t *o = th_json(&r), *x = json_array_get(json_object_get(o, "excluded"), 0);
    assert_string_equal(json_string_value(json_object_get(x, "provider")), "b");
    assert_string_equal(json_string_value(json_object_get(x, "kind")), "budget");
    assert_non_null(strstr(json_string_value(json_object_get(x, "reason")), "budget of $0.00"));
    json_decref(o);
    th_response_free(&r);
    th_http("GET", th_url_buf(&gw[0], "/status.json", url, sizeof(url)), NULL, NULL, 0, &r);
    o = th_json(&r);
    json_t *b = json_object_get(json_object_get(json_object_get(o, "budgets"), "providers"), "b");
    assert_true(json_is_true(json_object_get(b, "over")));
    json_decref(o);
    th_response_free(&r);
    stop_all();
}

static int group_setup(void **state)
{
    (void)state;
    if (th_start_mock(&mock_a, "a") < 0 || th_start_mock(&mock_b, "b") < 0 ||
        th_redis_start(&redis) < 0)
        return -1;
    snprintf(redis_url, sizeof(redis_url), "redis://127.0.0.1:%d/0", redis.port);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    th_stop(&mock_a);
    th_stop(&mock_b);
    th_redis_stop(&redis);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keys_api),
        cmocka_unit_test(test_provider_budget),
        cmocka_unit_test(test_budget_one_process),
        cmocka_unit_test(test_budget_three_instances),
        cmocka_unit_test(test_rpm_three_instances),
        cmocka_unit_test(test_vendor_share),
        cmocka_unit_test(test_breaker_hint),
        cmocka_unit_test(test_outage_local),
        cmocka_unit_test(test_outage_deny),
        cmocka_unit_test(test_restart_keeps_spend),
    };
    if (!th_redis_available()) {
        fprintf(stderr, "redis-server not found: apt-get install redis-server\n");
        return 77;
    }
    th_init();
    int rc = cmocka_run_group_tests(tests, group_setup, group_teardown);
    th_cleanup();
    return rc;
}
