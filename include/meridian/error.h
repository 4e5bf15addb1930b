/*
 * error — the OpenAI-shaped error every non-2xx answer carries.
 *
 *   {"error":{"message":"...","type":"...","param":null,"code":"..."}}
 *
 * mr_error_t is a plain value (no heap), filled by whoever detects the
 * problem and turned into a body by mr_error_body. Messages must never
 * contain secrets. Thread-agnostic.
 */
#ifndef MERIDIAN_ERROR_H
#define MERIDIAN_ERROR_H

#include <jansson.h>
#include <stddef.h>

#define MR_ERROR_MESSAGE_MAX 1024

typedef struct mr_error {
    int status;        /* HTTP status */
    const char *type;  /* static string: "invalid_request_error", "api_error" ... */
    const char *code;  /* static string or NULL */
    const char *param; /* static string or NULL */
    char message[MR_ERROR_MESSAGE_MAX];
} mr_error_t;

/* Fill *e; message is printf-formatted and truncated to fit. */
void mr_error_set(mr_error_t *e, int status, const char *type, const char *code, const char *param,
                  const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* A 400 invalid_request_error (the client's request cannot be served as
 * sent): fills *e like mr_error_set and returns -1, for `return
 * mr_error_bad(...)` in functions that return 0 / -1. */
int mr_error_bad(mr_error_t *e, const char *code, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Serialise to a malloc'd NUL-terminated JSON body (caller frees), with an
 * optional extra member inside "error" (e.g. "attempts"); `extra` is
 * borrowed and may be NULL. Returns NULL only on allocation failure. */
char *mr_error_body(const mr_error_t *e, const char *extra_key, json_t *extra, size_t *len);

/* Default OpenAI error type for an HTTP status. */
const char *mr_error_type_for_status(int status);

#endif
