/*
 * After a burst (issue 17, "give memory back"): once traffic falls, a
 * worker closes the upstream connections the burst left idle in curl's
 * cache and frees its pooled transfers, and the next request connects
 * anew; light traffic afterwards keeps its keep-alive connection across
 * the worker's periodic look. Before, a burst of N streams kept N idle
 * upstream connections (and their state) until a later request pruned them.
 *
 * One worker, BURST streams at once against the mock (each a few events
 * apart, so they overlap and each needs its own upstream connection); the
 * mock's open_connections gauge shows what the gateway keeps. The worker
 * looks every 10 s (worker.c, TRIM_EVERY_MS), so the wait is bounded by
 * TRIM_WAIT_MS. What this gives back in RSS is a benchmark figure (bench/llm,
 * "RSS after close"), not asserted here.
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

#define BURST 120
#define TRIM_WAIT_MS 45000
#define TRIM_PERIOD_MS 10000 /* worker.c, TRIM_EVERY_MS */

static th_proc_t mock, gw;

static const char body[] = "{\"model\":\"chat\",\"stream\":true,"
                           "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";

static const char *url(void)
{
    static char buf[256];
    return th_url_buf(&gw, "/v1/chat/completions", buf, sizeof(buf));
}

static void one_stream(void)
{
    th_response_t r;
    assert_int_equal(th_http("POST", url(), NULL, body, sizeof(body) - 1, &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "data: [DONE]"));
    th_response_free(&r);
}

static void test_idle_upstream_connections_closed(void **state)
{
    th_request_t reqs[BURST];
    th_response_t outs[BURST];
    (void)state;

    assert_int_equal(
        th_mock_scenario(&mock, "{\"count\":1000,\"chunk_delay_ms\":150,\"chunks\":4}"), 0);
    for (size_t i = 0; i < BURST; i++)
        reqs[i] = (th_request_t){"POST", url(), NULL, body, sizeof(body) - 1};
    assert_int_equal(th_http_parallel(reqs, BURST, outs), 0);
    for (size_t i = 0; i < BURST; i++) {
        assert_int_equal(outs[i].status, 200);
        th_response_free(&outs[i]);
    }
    assert_int_equal(th_mock_wait_stat(&mock, "in_flight", 0, 10000), 0);
    /* (the gauge counts the stats request's own connection too) */
    long kept = th_mock_stat(&mock, "open_connections") - 1;
    print_message("upstream connections the burst left open: %ld\n", kept);
    /* the premise: the overlapping streams needed (and kept) many */
    assert_true(kept >= BURST / 2);

    assert_int_equal(th_mock_wait_stat(&mock, "open_connections", 1, TRIM_WAIT_MS), 0);
    /* a fresh connection for the next request, kept alive */
    one_stream();
    assert_int_equal(th_mock_stat(&mock, "open_connections"), 2);
    long accepted = th_mock_stat(&mock, "connections_accepted");

    /* light traffic across a trim period keeps its keep-alive connection
     * (keepalive_s 60 in the config: curl's own limit is not what is tested):
     * one request, then a period with nothing in flight (what is waited for
     * is the worker's 10 s timer, not a readiness) */
    poll(NULL, 0, TRIM_PERIOD_MS + 500);
    one_stream();
    assert_int_equal(th_mock_stat(&mock, "open_connections"), 2);
    /* +2: the two stats requests' own connections; a new upstream
     * connection would make it +3 */
    assert_int_equal(th_mock_stat(&mock, "connections_accepted"), accepted + 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_idle_upstream_connections_closed),
    };
    th_init();
    if (th_start_mock(&mock, "a") < 0)
        return 1;
    char *cfg =
        th_strf("{\"listen\":\"127.0.0.1:0\","
                " \"providers\":{\"a\":{\"kind\":\"openai\","
                "   \"base_url\":\"http://127.0.0.1:%d/v1\",\"api_key\":\"sk-a\","
                "   \"keepalive_s\":60}},"
                " \"routes\":{\"chat\":{\"targets\":[{\"provider\":\"a\",\"model\":\"m\"}]}}}",
                mock.port);
    const char *args[] = {"--workers", "1", NULL};
    if (th_start_meridian_ex(&gw, cfg, args, NULL) < 0) {
        th_stop(&mock);
        return 1;
    }
    free(cfg);
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    rc |= th_stop(&gw) != 0;
    rc |= th_stop(&mock) != 0;
    th_cleanup();
    return rc;
}
