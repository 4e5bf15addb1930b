#include "meridian/error.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void mr_error_set(mr_error_t *e, int status, const char *type, const char *code, const char *param,
                  const char *fmt, ...)
{
    va_list ap;

    e->status = status;
    e->type = type ? type : mr_error_type_for_status(status);
    e->code = code;
    e->param = param;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof(e->message), fmt, ap);
    va_end(ap);
}

int mr_error_bad(mr_error_t *e, const char *code, const char *param, const char *fmt, ...)
{
    va_list ap;

    e->status = 400;
    e->type = "invalid_request_error";
    e->code = code;
    e->param = param;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof(e->message), fmt, ap);
    va_end(ap);
    return -1;
}

const char *mr_error_type_for_status(int status)
{
    switch (status) {
    case 401:
        return "authentication_error";
    case 403:
        return "permission_error";
    case 429:
        return "rate_limit_error";
    default:
        break;
    }
    if (status >= 500)
        return status == 503 ? "service_unavailable_error" : "api_error";
    return "invalid_request_error";
}

static json_t *string_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

char *mr_error_body(const mr_error_t *e, const char *extra_key, json_t *extra, size_t *len)
{
    json_t *err = json_object();
    json_t *root = json_object();
    char *out = NULL;

    if (!err || !root)
        goto done;
    /* json_string rejects invalid UTF-8 and messages may quote client input:
     * keep the message readable with non-ASCII bytes replaced. */
    json_t *msg = json_string(e->message);
    if (!msg) {
        char ascii[MR_ERROR_MESSAGE_MAX];
        size_t i;
        for (i = 0; e->message[i] && i < sizeof(ascii) - 1; i++)
            ascii[i] = (unsigned char)e->message[i] < 0x80 ? e->message[i] : '?';
        ascii[i] = '\0';
        msg = json_string(ascii);
    }
    json_object_set_new(err, "message", msg);
    json_object_set_new(err, "type", string_or_null(e->type));
    json_object_set_new(err, "param", string_or_null(e->param));
    json_object_set_new(err, "code", string_or_null(e->code));
    if (extra_key && extra)
        json_object_set(err, extra_key, extra);
    json_object_set(root, "error", err);
    out = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (out && len)
        *len = strlen(out);
done:
    json_decref(err);
    json_decref(root);
    return out;
}
