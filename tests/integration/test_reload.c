/*
 * SIGHUP reload: a broken file changes nothing, a good one goes live for new
 * requests, and a stream that was running finishes on the config it began with.
 */
#include "harness.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static th_proc_t mock, gw;

static char *config_with_route(const char *route)
{
    return th_strf("{\"listen\":\"127.0.0.1:0\","
                   " \"providers\":{\"a\":{\"kind\":\"openai\","
                   "   \"base_url\":\"http://127.0.0.1:%d/v1\",\"api_key\":\"sk-a\"}},"
                   " \"routes\":{\"%s\":{\"targets\":[{\"provider\":\"a\",\"model\":\"m\"}]}},"
                   " \"health\":{\"failure_threshold\":1,\"cooldown_ms\":600000}}",
                   mock.port, route);
}

static void write_config(const char *text)
{
    FILE *f = fopen(gw.config_path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static long status_for(const char *model)
{
    char url[256], body[128];
    th_response_t r;
    snprintf(body, sizeof(body), "{\"model\":\"%s\"}", model);
    th_http("POST", th_url_buf(&gw, "/v1/chat/completions", url, sizeof(url)), NULL, body,
            strlen(body), &r);
    long s = r.status;
    th_response_free(&r);
    return s;
}

/* Every worker logs the outcome of a reload. */
static void wait_log_count(const char *needle, int n)
{
    if (th_wait_log_count(&gw, needle, n, 5000) != 0)
        fail_msg("log never had %d x \"%s\"", n, needle);
}

/* While a stream on generation 0 runs: a broken file is rejected and the
 * old rules stay, then a good file makes the new route live. */
static void reload_mid_stream(void *ud)
{
    (void)ud;
    write_config("{\"providers\": {");
    assert_int_equal(th_signal(&gw, SIGHUP), 0);
    /* the file is parsed once for both workers: one rejection, logged once */
    wait_log_count("reload rejected", 1);
    assert_int_equal(th_log_count(&gw, "reload rejected"), 1);
    assert_int_equal(status_for("old"), 200);
    char *cfg = config_with_route("new");
    write_config(cfg);
    free(cfg);
    assert_int_equal(th_signal(&gw, SIGHUP), 0);
    wait_log_count("generation 1 live", 2);
    assert_int_equal(status_for("new"), 200);
    assert_int_equal(status_for("old"), 404);
}

static void test_reload(void **state)
{
    (void)state;
    assert_int_equal(status_for("old"), 200);
    assert_int_equal(status_for("new"), 404);

    /* a stream begins on generation 0 */
    th_mock_scenario(&mock, "{\"chunks\":8,\"chunk_delay_ms\":150,\"count\":1}");
    char url[256];
    th_during_t run;
    th_post_during(th_url_buf(&gw, "/v1/chat/completions", url, sizeof(url)),
                   "{\"model\":\"old\",\"stream\":true}", reload_mid_stream, NULL, &run);
    assert_true(run.hook_ran);
    assert_int_equal(run.curl_code, CURLE_OK);
    assert_int_equal(run.status, 200);
    assert_true(run.bytes > 1000); /* all 8 chunks + finish + [DONE] */
}

/* Whether any worker reports target a/m open (each answer comes from the
 * worker the new connection landed on; 20 tries see both). */
static int a_open_somewhere(void)
{
    char url[256];
    for (int i = 0; i < 20; i++) {
        th_response_t r;
        th_http("GET", th_url_buf(&gw, "/v1/gateway/providers", url, sizeof(url)), NULL, NULL, 0,
                &r);
        int open = r.status == 200 && strstr(r.body, "\"state\":\"open\"") != NULL;
        th_response_free(&r);
        if (open)
            return 1;
    }
    return 0;
}

/* A reload keeps the breaker of a target that is still configured. */
static void test_reload_keeps_health(void **state)
{
    (void)state;
    th_mock_scenario(&mock, "{\"status\":500,\"count\":1}");
    assert_int_equal(status_for("new"), 502); /* one failure opens a/m (threshold 1) */
    assert_true(a_open_somewhere());
    char *cfg = config_with_route("renamed");
    write_config(cfg);
    free(cfg);
    assert_int_equal(th_signal(&gw, SIGHUP), 0);
    if (th_wait_log_count(&gw, "generation 2 live", 2, 5000) != 0)
        fail_msg("second reload not applied");
    assert_true(a_open_somewhere()); /* same (provider, model): state carried over */
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_reload),
                                       cmocka_unit_test(test_reload_keeps_health)};
    th_init();
    if (th_start_mock(&mock, "a") < 0)
        return 1;
    char *cfg = config_with_route("old");
    const char *args[] = {"--workers", "2", NULL};
    if (th_start_meridian_ex(&gw, cfg, args, NULL) < 0)
        return 1;
    free(cfg);
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    if (th_stop(&gw) != 0)
        rc = 1;
    th_stop(&mock);
    th_cleanup();
    return rc;
}
