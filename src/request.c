#include "meridian/request.h"

#include "meridian/guard.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* OpenAI's x-ratelimit-* of a key with rpm or tpm, on every answer to it
 * (Retry-After goes with retry_after_out). */
static void ratelimit_headers(const mr_request_t *r, struct MHD_Response *resp)
{
    mr_limits_header_t h[MR_LIMITS_MAX_HEADERS];
    size_t n = mr_limits_headers(&r->lim.verdict, h);

    for (size_t i = 0; i < n; i++)
        if (strcmp(h[i].name, "retry-after") != 0)
            MHD_add_response_header(resp, h[i].name, h[i].value);
}

void mr_request_common_headers(const mr_request_t *r, struct MHD_Response *resp)
{
    MHD_add_response_header(resp, "x-request-id", r->id);
    ratelimit_headers(r, resp);
    /* a browser must never render an answer as anything but its type */
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    if (r->cors_origin) {
        MHD_add_response_header(resp, "Access-Control-Allow-Origin", r->cors_origin);
        MHD_add_response_header(resp, "Access-Control-Expose-Headers", MR_GUARD_EXPOSE_HEADERS);
        MHD_add_response_header(resp, "Vary", "Origin");
    }
    if (r->n_attempts > 0) {
        char n[16];
        snprintf(n, sizeof(n), "%u", r->n_attempts);
        MHD_add_response_header(resp, "x-meridian-attempts", n);
    }
    if (r->planned && r->plan.policy_label[0])
        MHD_add_response_header(resp, "x-meridian-policy", r->plan.policy_label);
    if (r->token_estimate)
        MHD_add_response_header(resp, "x-meridian-token-estimate", MR_INBOUND_ESTIMATE_METHOD);
    if (r->served_by) {
        const mr_provider_t *p = r->served_by;
        MHD_add_response_header(resp, "x-meridian-provider", p->name);
        MHD_add_response_header(resp, "x-meridian-model", r->attempts[r->n_attempts - 1].model);
        MHD_add_response_header(resp, "x-meridian-vendor", p->vendor);
        if (p->region[0])
            MHD_add_response_header(resp, "x-meridian-region", p->region);
        if (p->jurisdiction[0])
            MHD_add_response_header(resp, "x-meridian-jurisdiction", p->jurisdiction);
    }
}

void mr_request_audit_bytes(mr_request_t *r, const char *p, size_t n)
{
    r->resp_bytes += n; /* also sizes an estimate of unreported usage */
    if (!r->audit || n == 0)
        return;
    mr_sha256_update(&r->resp_sha, p, n);
    /* a prefix: what fits of a piece, nothing after it (reqlog marks the cut) */
    if (mr_reqlog_wants_bodies(r->env->reqlog))
        mr_buf_append(&r->resp_copy, p,
                      n < mr_buf_room(&r->resp_copy) ? n : mr_buf_room(&r->resp_copy));
}

static enum MHD_Result queue(mr_request_t *r, int status, struct MHD_Response *resp,
                             const char *body, size_t len, const char *ctype)
{
    if (ctype)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    if (r->close_connection)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    if (r->retry_after_out > 0) {
        char ra[24];
        snprintf(ra, sizeof(ra), "%ld", r->retry_after_out);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, ra);
    }
    mr_request_common_headers(r, resp);
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED && r->allow)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->allow);
    mr_request_audit_bytes(r, body, len);
    enum MHD_Result ret = MHD_queue_response(r->conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    r->state = MR_RS_DONE;
    r->final_status = status;
    r->first_byte_ns = uv_hrtime();
    return ret;
}

enum MHD_Result mr_request_queue(mr_request_t *r, int status, char *body, size_t len,
                                 const char *ctype)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);

    if (!resp) {
        free(body);
        return MHD_NO;
    }
    return queue(r, status, resp, body, len, ctype);
}

enum MHD_Result mr_request_queue_static(mr_request_t *r, int status, const char *body, size_t len,
                                        const char *ctype)
{
    /* MHD only reads a persistent buffer; the cast does not let it write */
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)(uintptr_t)body, MHD_RESPMEM_PERSISTENT);

    if (!resp)
        return MHD_NO;
    return queue(r, status, resp, body, len, ctype);
}

enum MHD_Result mr_request_queue_preflight(mr_request_t *r, const char *methods,
                                           const char *headers)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    char age[16];

    if (!resp)
        return MHD_NO;
    snprintf(age, sizeof(age), "%d", MR_GUARD_PREFLIGHT_MAX_AGE);
    MHD_add_response_header(resp, "Access-Control-Allow-Methods", methods);
    if (*headers)
        MHD_add_response_header(resp, "Access-Control-Allow-Headers", headers);
    MHD_add_response_header(resp, "Access-Control-Max-Age", age);
    return queue(r, MHD_HTTP_NO_CONTENT, resp, "", 0, NULL);
}

void mr_request_prepare_error(mr_request_t *r, const mr_error_t *e, const char *extra_key,
                              json_t *extra)
{
    free(r->out_body);
    r->out_len = 0;
    r->out_status = e->status;
    r->out_body = r->inbound->error_body(e, extra_key, extra, &r->out_len);
    r->out_ctype = "application/json";
}

enum MHD_Result mr_request_queue_prepared(mr_request_t *r)
{
    char *body = r->out_body;

    r->out_body = NULL;
    if (!body)
        return MHD_NO;
    return mr_request_queue(r, r->out_status, body, r->out_len, r->out_ctype);
}

enum MHD_Result mr_request_error(mr_request_t *r, const mr_error_t *e)
{
    mr_request_prepare_error(r, e, NULL, NULL);
    return mr_request_queue_prepared(r);
}

enum MHD_Result mr_request_errorf(mr_request_t *r, int status, const char *code, const char *param,
                                  const char *fmt, ...)
{
    mr_error_t e;
    va_list ap;

    mr_error_set(&e, status, NULL, code, param, "%s", "");
    va_start(ap, fmt);
    vsnprintf(e.message, sizeof(e.message), fmt, ap);
    va_end(ap);
    return mr_request_error(r, &e);
}
