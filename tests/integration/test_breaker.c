/*
 * Circuit breakers and the retry budget on the real binary: a failing target
 * opens after failure_threshold failures and is skipped at once, a
 * Retry-After opens it immediately, a half-open probe closes it again once it
 * recovers, /v1/gateway/providers shows it, and the retry budget stops
 * failovers from multiplying an outage.
 */
#include "harness.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static th_proc_t mock_a, mock_b;

static char *config(const char *extra)
{
    return th_strf("{\"listen\":\"127.0.0.1:0\","
                   " \"providers\":{"
                   "  \"a\":{\"kind\":\"openai\",\"base_url\":\"http://127.0.0.1:%d/v1\","
                   "        \"api_key\":\"sk-a\",\"vendor\":\"va\"},"
                   "  \"b\":{\"kind\":\"openai\",\"base_url\":\"http://127.0.0.1:%d/v1\","
                   "        \"api_key\":\"sk-b\",\"vendor\":\"vb\"}},"
                   " \"routes\":{\"chat\":{\"targets\":[{\"provider\":\"a\",\"model\":\"ma\"},"
                   "                                   {\"provider\":\"b\",\"model\":\"mb\"}]},"
                   "  \"again\":{\"targets\":[{\"provider\":\"a\",\"model\":\"ma\"},"
                   "                            {\"provider\":\"a\",\"model\":\"ma\"}]}},"
                   " %s}",
                   mock_a.port, mock_b.port, extra);
}

static void chat(const th_proc_t *gw, th_response_t *r)
{
    char url[256];
    th_http("POST", th_url_buf(gw, "/v1/chat/completions", url, sizeof(url)), NULL,
            "{\"model\":\"chat\"}", 16, r);
}

static const char *hdr(const th_response_t *r, const char *name, char *buf)
{
    const char *v = th_header(r, name, buf, 64);
    return v ? v : "";
}

/* The state of target a/ma on the gateway's (single) worker. */
static char *state_of_a(const th_proc_t *gw)
{
    char url[256];
    th_response_t r;
    th_http("GET", th_url_buf(gw, "/v1/gateway/providers", url, sizeof(url)), NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    json_t *root = th_json(&r), *t;
    size_t i;
    char *state = NULL;
    json_array_foreach(json_object_get(root, "data"), i, t)
    {
        if (strcmp(json_string_value(json_object_get(t, "provider")), "a") == 0)
            state = strdup(json_string_value(json_object_get(t, "state")));
    }
    json_decref(root);
    th_response_free(&r);
    assert_non_null(state);
    return state;
}

static void test_breaker_opens_skips_and_recovers(void **state)
{
    th_proc_t gw = {0};
    th_response_t r;
    char buf[64];
    (void)state;
    char *cfg = config("\"health\":{\"failure_threshold\":2,\"cooldown_ms\":400}");
    const char *args[] = {"--workers", "1", NULL};
    assert_int_equal(th_start_meridian_ex(&gw, cfg, args, NULL), 0);
    free(cfg);
    th_mock_reset(&mock_a);
    th_mock_reset(&mock_b);
    th_mock_scenario(&mock_a, "{\"status\":500}");

    for (int i = 0; i < 2; i++) { /* two failures: a opens */
        chat(&gw, &r);
        assert_int_equal(r.status, 200);
        assert_string_equal(hdr(&r, "x-meridian-attempts", buf), "2");
        th_response_free(&r);
    }
    char *st = state_of_a(&gw);
    assert_string_equal(st, "open");
    free(st);
    /* open: skipped at once, a sees nothing more */
    for (int i = 0; i < 5; i++) {
        chat(&gw, &r);
        assert_int_equal(r.status, 200);
        assert_string_equal(hdr(&r, "x-meridian-provider", buf), "b");
        assert_string_equal(hdr(&r, "x-meridian-attempts", buf), "1");
        th_response_free(&r);
    }
    assert_int_equal(th_mock_stat(&mock_a, "requests"), 2);

    /* a recovers; after the cooldown one probe closes the breaker */
    th_mock_reset(&mock_a);
    int closed = 0;
    for (int tries = 0; tries < 100 && !closed; tries++) {
        st = state_of_a(&gw);
        int half = strcmp(st, "half_open") == 0;
        free(st);
        if (half) {
            chat(&gw, &r);
            assert_string_equal(hdr(&r, "x-meridian-provider", buf), "a");
            th_response_free(&r);
            st = state_of_a(&gw);
            closed = strcmp(st, "closed") == 0;
            free(st);
        } else {
            poll(NULL, 0, 20); /* bounded: 100 polls */
        }
    }
    assert_true(closed);
    assert_int_equal(th_stop(&gw), 0);
}

static void test_retry_after_opens_at_once(void **state)
{
    th_proc_t gw = {0};
    th_response_t r;
    char buf[64];
    (void)state;
    char *cfg = config("\"health\":{\"failure_threshold\":100}");
    const char *args[] = {"--workers", "1", NULL};
    assert_int_equal(th_start_meridian_ex(&gw, cfg, args, NULL), 0);
    free(cfg);
    th_mock_reset(&mock_a);
    th_mock_reset(&mock_b);
    th_mock_scenario(&mock_a, "{\"status\":429,\"retry_after\":\"30\",\"count\":1}");
    chat(&gw, &r);
    assert_string_equal(hdr(&r, "x-meridian-provider", buf), "b");
    th_response_free(&r);
    /* one 429 with Retry-After: the very next request skips a */
    chat(&gw, &r);
    assert_string_equal(hdr(&r, "x-meridian-attempts", buf), "1");
    assert_string_equal(hdr(&r, "x-meridian-provider", buf), "b");
    th_response_free(&r);
    assert_int_equal(th_mock_stat(&mock_a, "requests"), 1);
    /* both open: fail fast with 503 and a Retry-After for the client */
    th_mock_scenario(&mock_b, "{\"status\":503,\"retry_after\":\"20\",\"count\":1}");
    chat(&gw, &r);
    th_response_free(&r);
    chat(&gw, &r);
    assert_int_equal(r.status, 503);
    assert_non_null(strstr(r.body, "targets_unavailable"));
    long ra = atol(hdr(&r, "retry-after", buf));
    assert_true(ra >= 15 && ra <= 30);
    th_response_free(&r);
    assert_int_equal(th_stop(&gw), 0);
}

static void test_retry_budget_caps_failovers(void **state)
{
    th_proc_t gw = {0};
    th_response_t r;

    (void)state;
    /* no floor, 10 % of requests: an outage of a costs at most ~1 retry per 10 requests */
    char *cfg = config("\"health\":{\"failure_threshold\":1000},"
                       "\"retry_budget\":{\"ratio\":0.1,\"window_s\":60,\"min_retries_per_s\":0}");
    const char *args[] = {"--workers", "1", NULL};
    assert_int_equal(th_start_meridian_ex(&gw, cfg, args, NULL), 0);
    free(cfg);
    th_mock_reset(&mock_a);
    th_mock_reset(&mock_b);
    th_mock_scenario(&mock_a, "{\"status\":500}");
    int ok = 0, denied = 0;
    for (int i = 0; i < 40; i++) {
        chat(&gw, &r);
        if (r.status == 200)
            ok++;
        else if (r.status == 502 && strstr(r.body, "retry budget exhausted"))
            denied++;
        th_response_free(&r);
    }
    print_message("40 requests against a failing first target: %d failed over, %d denied\n", ok,
                  denied);
    assert_int_equal(ok + denied, 40);
    /* floor(0.1 x 40) = 4 retries in the window; one either way for where the
     * window's slots fall. None at all would be a budget that denies everything. */
    assert_true(ok >= 3 && ok <= 5);
    assert_int_equal(th_mock_stat(&mock_b, "requests"), ok);
    assert_int_equal(th_stop(&gw), 0);
}

static void test_max_inflight_per_provider(void **state)
{
    th_proc_t gw = {0};
    char url[256], who[64];
    (void)state;
    /* config() leaves a without max_inflight: make a variant with it */
    char *cfg = th_strf("{\"listen\":\"127.0.0.1:0\","
                        " \"providers\":{"
                        "  \"a\":{\"kind\":\"openai\",\"base_url\":\"http://127.0.0.1:%d/v1\","
                        "        \"api_key\":\"sk-a\",\"max_inflight\":1},"
                        "  \"b\":{\"kind\":\"openai\",\"base_url\":\"http://127.0.0.1:%d/v1\","
                        "        \"api_key\":\"sk-b\"}},"
                        " \"routes\":{\"chat\":{\"targets\":[{\"provider\":\"a\",\"model\":\"ma\"},"
                        "   {\"provider\":\"b\",\"model\":\"mb\"}]}}}",
                        mock_a.port, mock_b.port);
    const char *args[] = {"--workers", "1", NULL};
    assert_int_equal(th_start_meridian_ex(&gw, cfg, args, NULL), 0);
    free(cfg);
    th_mock_reset(&mock_a);
    th_mock_reset(&mock_b);
    /* a answers slowly: while one request holds it, the next goes to b */
    th_mock_scenario(&mock_a, "{\"headers_delay_ms\":800}");
    th_url_buf(&gw, "/v1/chat/completions", url, sizeof(url));
    th_request_t reqs[2] = {{"POST", url, NULL, "{\"model\":\"chat\"}", 16},
                            {"POST", url, NULL, "{\"model\":\"chat\"}", 16}};
    th_response_t outs[2];
    assert_int_equal(th_http_parallel(reqs, 2, outs), 0);
    int from_a = 0, from_b = 0;
    for (int i = 0; i < 2; i++) {
        assert_int_equal(outs[i].status, 200);
        const char *p = th_header(&outs[i], "x-meridian-provider", who, sizeof(who));
        from_a += p && strcmp(p, "a") == 0;
        from_b += p && strcmp(p, "b") == 0;
        th_response_free(&outs[i]);
    }
    assert_int_equal(from_a, 1);
    assert_int_equal(from_b, 1);
    /* addressed directly, a busy provider sheds load with 429 */
    th_request_t direct[2] = {{"POST", url, NULL, "{\"model\":\"a/ma\"}", 16},
                              {"POST", url, NULL, "{\"model\":\"a/ma\"}", 16}};
    assert_int_equal(th_http_parallel(direct, 2, outs), 0);
    long s0 = outs[0].status, s1 = outs[1].status;
    assert_true((s0 == 200 && s1 == 429) || (s0 == 429 && s1 == 200));
    assert_non_null(strstr(s0 == 429 ? outs[0].body : outs[1].body, "providers_busy"));
    th_response_free(&outs[0]);
    th_response_free(&outs[1]);
    assert_int_equal(th_stop(&gw), 0);
}

/* The same target twice in a plan: the repeat waits a jittered backoff, then
 * succeeds on that target. */
static void test_same_target_retry(void **state)
{
    th_proc_t gw = {0};
    th_response_t r;
    char url[256], buf[64];
    (void)state;
    char *cfg = config("\"health\":{\"failure_threshold\":100}");
    const char *args[] = {"--workers", "1", NULL};
    assert_int_equal(th_start_meridian_ex(&gw, cfg, args, NULL), 0);
    free(cfg);
    th_mock_reset(&mock_a);
    th_mock_scenario(&mock_a, "{\"status\":500,\"count\":1}");
    th_http("POST", th_url_buf(&gw, "/v1/chat/completions", url, sizeof(url)), NULL,
            "{\"model\":\"again\"}", 17, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(hdr(&r, "x-meridian-provider", buf), "a");
    assert_string_equal(hdr(&r, "x-meridian-attempts", buf), "2");
    assert_true(r.t_total_ms < 2000); /* backoff is capped well below this */
    th_response_free(&r);
    assert_int_equal(th_mock_stat(&mock_a, "requests"), 2);
    assert_int_equal(th_stop(&gw), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_breaker_opens_skips_and_recovers),
        cmocka_unit_test(test_retry_after_opens_at_once),
        cmocka_unit_test(test_retry_budget_caps_failovers),
        cmocka_unit_test(test_max_inflight_per_provider),
        cmocka_unit_test(test_same_target_retry),
    };
    th_init();
    if (th_start_mock(&mock_a, "a") < 0 || th_start_mock(&mock_b, "b") < 0)
        return 1;
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    th_stop(&mock_a);
    th_stop(&mock_b);
    th_cleanup();
    return rc;
}
