/*
 * The failure enum (failure.h): every value through every decision the
 * gateway takes from it — may another candidate be tried, does it count
 * toward a 504, what the circuit breaker hears, which /metrics `outcome`
 * label — and the two mappings into it: curl's codes (upstream.c) and HTTP
 * statuses.
 */
#include "meridian/failure.h"
#include "meridian/upstream.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#define NO_REPORT (-1) /* the breaker hears nothing: the probe slot goes back */

typedef struct expected {
    mr_failure_t f;
    const char *name;
    bool retry;
    bool timeout;
    int breaker; /* an mr_outcome_t, or NO_REPORT */
    const char *metric;
} expected_t;

/* Written out by hand: a change to failure.c's table must change this too. */
static const expected_t want[] = {
    {MR_FAIL_NONE, "none", false, false, MR_OUTCOME_SUCCESS, "success"},
    {MR_FAIL_RESOLVE, "resolve_failed", true, false, MR_OUTCOME_FAILURE, "connect"},
    {MR_FAIL_CONNECT, "connect_failed", true, false, MR_OUTCOME_FAILURE, "connect"},
    {MR_FAIL_TIMEOUT, "timeout", true, true, MR_OUTCOME_FAILURE, "timeout"},
    {MR_FAIL_RESET, "reset", true, false, MR_OUTCOME_FAILURE, "transport"},
    {MR_FAIL_TLS, "tls_failed", true, false, MR_OUTCOME_FAILURE, "transport"},
    {MR_FAIL_PROTOCOL, "protocol_error", true, false, MR_OUTCOME_FAILURE, "transport"},
    {MR_FAIL_TRANSPORT, "transport_failed", true, false, MR_OUTCOME_FAILURE, "transport"},
    {MR_FAIL_HTTP_429, "rate_limited", true, false, MR_OUTCOME_RATE_LIMITED, "http_429"},
    {MR_FAIL_HTTP_OVERLOADED, "overloaded", true, false, MR_OUTCOME_OVERLOADED, "http_5xx"},
    {MR_FAIL_HTTP_5XX, "server_error", true, false, MR_OUTCOME_FAILURE, "http_5xx"},
    {MR_FAIL_HTTP_RETRYABLE, "retryable_status", true, false, MR_OUTCOME_FAILURE, "http_4xx"},
    {MR_FAIL_HTTP_AUTH, "auth_failed", true, false, MR_OUTCOME_FAILURE, "http_4xx"},
    {MR_FAIL_HTTP_CLIENT, "client_error", false, false, MR_OUTCOME_SUCCESS, "http_4xx"},
    {MR_FAIL_HTTP_OTHER, "unexpected_status", false, false, MR_OUTCOME_SUCCESS, "invalid"},
    {MR_FAIL_INVALID_BODY, "invalid_body", true, false, MR_OUTCOME_FAILURE, "invalid"},
    {MR_FAIL_UNUSABLE, "unusable_response", true, false, MR_OUTCOME_FAILURE, "invalid"},
    {MR_FAIL_NOT_SSE, "not_event_stream", true, false, MR_OUTCOME_FAILURE, "invalid"},
    {MR_FAIL_STREAM_ERROR, "stream_error", true, false, MR_OUTCOME_FAILURE, "invalid"},
    {MR_FAIL_EMPTY_STREAM, "empty_stream", true, false, MR_OUTCOME_FAILURE, "invalid"},
    {MR_FAIL_TRUNCATED, "truncated", true, false, MR_OUTCOME_FAILURE, "invalid"},
    {MR_FAIL_TOO_LARGE, "too_large", true, false, MR_OUTCOME_FAILURE, "invalid"},
    {MR_FAIL_FIRST_BYTE, "first_byte_timeout", true, true, MR_OUTCOME_FAILURE, "timeout"},
    {MR_FAIL_ANSWER_TIMEOUT, "answer_timeout", true, true, NO_REPORT, "timeout"},
    {MR_FAIL_DEADLINE, "deadline", false, true, MR_OUTCOME_FAILURE, "timeout"},
    {MR_FAIL_BODY_STALL, "body_timeout", true, true, MR_OUTCOME_FAILURE, "timeout"},
    {MR_FAIL_STREAM_IDLE, "stream_idle", false, true, MR_OUTCOME_FAILURE, "timeout"},
    {MR_FAIL_CLIENT_GONE, "client_gone", false, false, NO_REPORT, "success"},
    {MR_FAIL_SHUTDOWN, "shutdown", false, false, NO_REPORT, "success"},
    {MR_FAIL_RETRY_BUDGET, "retry_budget", false, false, NO_REPORT, "transport"},
    {MR_FAIL_NO_MEMORY, "out_of_memory", true, false, NO_REPORT, "transport"},
    {MR_FAIL_UNSUPPORTED, "unsupported", true, false, NO_REPORT, "transport"},
};

static void test_every_failure_kind(void **state)
{
    (void)state;
    assert_int_equal(sizeof(want) / sizeof(want[0]), MR_FAIL_COUNT);
    for (size_t i = 0; i < MR_FAIL_COUNT; i++) {
        const expected_t *w = &want[i];
        assert_int_equal(w->f, (mr_failure_t)i); /* the table covers each value, in order */
        assert_string_equal(mr_failure_name(w->f), w->name);
        assert_int_equal(mr_failure_retryable(w->f), w->retry);
        assert_int_equal(mr_failure_is_timeout(w->f), w->timeout);
        assert_int_equal(mr_failure_reaches_breaker(w->f), w->breaker != NO_REPORT);
        if (w->breaker != NO_REPORT)
            assert_int_equal(mr_failure_breaker(w->f), w->breaker);
        assert_string_equal(mr_attempt_outcome_name(mr_failure_metric(w->f)), w->metric);
    }
}

/* Names are short, lower_snake_case and distinct: clients will key on them. */
static void test_names_are_stable_identifiers(void **state)
{
    (void)state;
    for (int i = 0; i < MR_FAIL_COUNT; i++) {
        const char *n = mr_failure_name((mr_failure_t)i);
        assert_true(strlen(n) > 0 && strlen(n) <= 24);
        for (const char *c = n; *c; c++)
            assert_true((*c >= 'a' && *c <= 'z') || *c == '_');
        for (int k = 0; k < i; k++)
            assert_string_not_equal(n, mr_failure_name((mr_failure_t)k));
    }
    assert_string_equal(mr_failure_name(MR_FAIL_COUNT), "unknown");
    assert_string_equal(mr_failure_name((mr_failure_t)-1), "unknown");
    assert_false(mr_failure_retryable(MR_FAIL_COUNT));
}

static void test_http_statuses(void **state)
{
    (void)state;
    assert_int_equal(mr_failure_from_status(200, false), MR_FAIL_NONE);
    assert_int_equal(mr_failure_from_status(204, true), MR_FAIL_NONE);
    assert_int_equal(mr_failure_from_status(429, true), MR_FAIL_HTTP_429);
    assert_int_equal(mr_failure_from_status(503, true), MR_FAIL_HTTP_OVERLOADED);
    assert_int_equal(mr_failure_from_status(529, true), MR_FAIL_HTTP_OVERLOADED);
    assert_int_equal(mr_failure_from_status(500, true), MR_FAIL_HTTP_5XX);
    assert_int_equal(mr_failure_from_status(502, true), MR_FAIL_HTTP_5XX);
    assert_int_equal(mr_failure_from_status(408, true), MR_FAIL_HTTP_RETRYABLE);
    assert_int_equal(mr_failure_from_status(409, true), MR_FAIL_HTTP_RETRYABLE);
    /* a 400 whose body the dialect calls retryable (Anthropic overloaded_error) */
    assert_int_equal(mr_failure_from_status(400, true), MR_FAIL_HTTP_RETRYABLE);
    assert_int_equal(mr_failure_from_status(400, false), MR_FAIL_HTTP_CLIENT);
    assert_int_equal(mr_failure_from_status(404, false), MR_FAIL_HTTP_CLIENT);
    assert_int_equal(mr_failure_from_status(302, false), MR_FAIL_HTTP_OTHER);
    /* the provider refused the gateway's key: whatever the dialect says */
    assert_int_equal(mr_failure_from_status(401, false), MR_FAIL_HTTP_AUTH);
    assert_int_equal(mr_failure_from_status(403, true), MR_FAIL_HTTP_AUTH);
    assert_int_equal(mr_failure_from_status(407, false), MR_FAIL_HTTP_AUTH);
    /* the decisions that follow from those, end to end */
    assert_false(mr_failure_retryable(mr_failure_from_status(404, false)));
    assert_true(mr_failure_retryable(mr_failure_from_status(401, false)));
    assert_true(mr_failure_retryable(mr_failure_from_status(529, true)));
    assert_int_equal(mr_failure_breaker(mr_failure_from_status(404, false)), MR_OUTCOME_SUCCESS);
    assert_int_equal(mr_failure_breaker(mr_failure_from_status(403, false)), MR_OUTCOME_FAILURE);
}

static void test_curl_codes(void **state)
{
    (void)state;
    static const struct {
        CURLcode code;
        mr_failure_t f;
    } map[] = {
        {CURLE_OK, MR_FAIL_NONE},
        {CURLE_COULDNT_RESOLVE_HOST, MR_FAIL_RESOLVE},
        {CURLE_COULDNT_CONNECT, MR_FAIL_CONNECT},
        {CURLE_OPERATION_TIMEDOUT, MR_FAIL_TIMEOUT},
        {CURLE_RECV_ERROR, MR_FAIL_RESET},
        {CURLE_SEND_ERROR, MR_FAIL_RESET},
        {CURLE_GOT_NOTHING, MR_FAIL_RESET},
        {CURLE_PARTIAL_FILE, MR_FAIL_RESET},
        {CURLE_SSL_CONNECT_ERROR, MR_FAIL_TLS},
        {CURLE_PEER_FAILED_VERIFICATION, MR_FAIL_TLS},
        {CURLE_SSL_CACERT_BADFILE, MR_FAIL_TLS},
        {CURLE_HTTP2, MR_FAIL_PROTOCOL},
        {CURLE_HTTP2_STREAM, MR_FAIL_PROTOCOL},
        {CURLE_WEIRD_SERVER_REPLY, MR_FAIL_PROTOCOL},
        {CURLE_BAD_CONTENT_ENCODING, MR_FAIL_PROTOCOL},
        {CURLE_OUT_OF_MEMORY, MR_FAIL_NO_MEMORY},
        {CURLE_WRITE_ERROR, MR_FAIL_TRANSPORT},
        {CURLE_ABORTED_BY_CALLBACK, MR_FAIL_TRANSPORT},
    };
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        assert_int_equal(mr_upstream_failure(map[i].code), map[i].f);
    /* every code lands on a value with a name */
    for (int c = 0; c < CURL_LAST; c++)
        assert_string_not_equal(mr_failure_name(mr_upstream_failure(c)), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_failure_kind),
        cmocka_unit_test(test_names_are_stable_identifiers),
        cmocka_unit_test(test_http_statuses),
        cmocka_unit_test(test_curl_codes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
