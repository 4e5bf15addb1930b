#include "meridian/failure.h"

#include <stddef.h>

/* One row per value: every decision about a failure is read from here. */
typedef struct failure_row {
    const char *name;
    bool retry;
    bool timeout;
    bool reaches_breaker;
    mr_outcome_t breaker;
    mr_attempt_outcome_t metric;
} failure_row_t;

#define FAILED MR_OUTCOME_FAILURE

static const failure_row_t rows[MR_FAIL_COUNT] = {
    [MR_FAIL_NONE] = {"none", false, false, true, MR_OUTCOME_SUCCESS, MR_AO_SUCCESS},
    [MR_FAIL_RESOLVE] = {"resolve_failed", true, false, true, FAILED, MR_AO_CONNECT},
    [MR_FAIL_CONNECT] = {"connect_failed", true, false, true, FAILED, MR_AO_CONNECT},
    [MR_FAIL_TIMEOUT] = {"timeout", true, true, true, FAILED, MR_AO_TIMEOUT},
    [MR_FAIL_RESET] = {"reset", true, false, true, FAILED, MR_AO_TRANSPORT},
    [MR_FAIL_TLS] = {"tls_failed", true, false, true, FAILED, MR_AO_TRANSPORT},
    [MR_FAIL_PROTOCOL] = {"protocol_error", true, false, true, FAILED, MR_AO_TRANSPORT},
    [MR_FAIL_TRANSPORT] = {"transport_failed", true, false, true, FAILED, MR_AO_TRANSPORT},
    [MR_FAIL_HTTP_429] = {"rate_limited", true, false, true, MR_OUTCOME_RATE_LIMITED,
                          MR_AO_HTTP_429},
    [MR_FAIL_HTTP_OVERLOADED] = {"overloaded", true, false, true, MR_OUTCOME_OVERLOADED,
                                 MR_AO_HTTP_5XX},
    [MR_FAIL_HTTP_5XX] = {"server_error", true, false, true, FAILED, MR_AO_HTTP_5XX},
    [MR_FAIL_HTTP_RETRYABLE] = {"retryable_status", true, false, true, FAILED, MR_AO_HTTP_4XX},
    [MR_FAIL_HTTP_AUTH] = {"auth_failed", true, false, true, FAILED, MR_AO_HTTP_4XX},
    [MR_FAIL_HTTP_CLIENT] = {"client_error", false, false, true, MR_OUTCOME_SUCCESS,
                             MR_AO_HTTP_4XX},
    [MR_FAIL_HTTP_OTHER] = {"unexpected_status", false, false, true, MR_OUTCOME_SUCCESS,
                            MR_AO_INVALID},
    [MR_FAIL_INVALID_BODY] = {"invalid_body", true, false, true, FAILED, MR_AO_INVALID},
    [MR_FAIL_UNUSABLE] = {"unusable_response", true, false, true, FAILED, MR_AO_INVALID},
    [MR_FAIL_NOT_SSE] = {"not_event_stream", true, false, true, FAILED, MR_AO_INVALID},
    [MR_FAIL_STREAM_ERROR] = {"stream_error", true, false, true, FAILED, MR_AO_INVALID},
    [MR_FAIL_EMPTY_STREAM] = {"empty_stream", true, false, true, FAILED, MR_AO_INVALID},
    [MR_FAIL_TRUNCATED] = {"truncated", true, false, true, FAILED, MR_AO_INVALID},
    [MR_FAIL_TOO_LARGE] = {"too_large", true, false, true, FAILED, MR_AO_INVALID},
    [MR_FAIL_FIRST_BYTE] = {"first_byte_timeout", true, true, true, FAILED, MR_AO_TIMEOUT},
    [MR_FAIL_ANSWER_TIMEOUT] = {"answer_timeout", true, true, false, FAILED, MR_AO_TIMEOUT},
    [MR_FAIL_DEADLINE] = {"deadline", false, true, true, FAILED, MR_AO_TIMEOUT},
    [MR_FAIL_BODY_STALL] = {"body_timeout", true, true, true, FAILED, MR_AO_TIMEOUT},
    [MR_FAIL_STREAM_IDLE] = {"stream_idle", false, true, true, FAILED, MR_AO_TIMEOUT},
    [MR_FAIL_CLIENT_GONE] = {"client_gone", false, false, false, FAILED, MR_AO_SUCCESS},
    [MR_FAIL_SHUTDOWN] = {"shutdown", false, false, false, FAILED, MR_AO_SUCCESS},
    [MR_FAIL_RETRY_BUDGET] = {"retry_budget", false, false, false, FAILED, MR_AO_TRANSPORT},
    [MR_FAIL_NO_MEMORY] = {"out_of_memory", true, false, false, FAILED, MR_AO_TRANSPORT},
    [MR_FAIL_UNSUPPORTED] = {"unsupported", true, false, false, FAILED, MR_AO_TRANSPORT},
};

static const failure_row_t *row(mr_failure_t f)
{
    return (unsigned)f < MR_FAIL_COUNT ? &rows[f] : NULL;
}

const char *mr_failure_name(mr_failure_t f)
{
    return row(f) ? row(f)->name : "unknown";
}

bool mr_failure_retryable(mr_failure_t f)
{
    return row(f) && row(f)->retry;
}

bool mr_failure_is_timeout(mr_failure_t f)
{
    return row(f) && row(f)->timeout;
}

bool mr_failure_reaches_breaker(mr_failure_t f)
{
    return row(f) && row(f)->reaches_breaker;
}

mr_outcome_t mr_failure_breaker(mr_failure_t f)
{
    return row(f) ? row(f)->breaker : MR_OUTCOME_FAILURE;
}

mr_attempt_outcome_t mr_failure_metric(mr_failure_t f)
{
    return row(f) ? row(f)->metric : MR_AO_TRANSPORT;
}

mr_failure_t mr_failure_from_status(long status, bool retryable)
{
    if (status >= 200 && status < 300)
        return MR_FAIL_NONE;
    if (status == 401 || status == 403 || status == 407)
        return MR_FAIL_HTTP_AUTH;
    if (!retryable)
        return status >= 400 && status < 500 ? MR_FAIL_HTTP_CLIENT : MR_FAIL_HTTP_OTHER;
    if (status == 429)
        return MR_FAIL_HTTP_429;
    if (status == 503 || status == 529)
        return MR_FAIL_HTTP_OVERLOADED;
    if (status >= 500)
        return MR_FAIL_HTTP_5XX;
    return MR_FAIL_HTTP_RETRYABLE;
}
