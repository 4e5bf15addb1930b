/*
 * sse — an incremental, bounded Server-Sent Events parser.
 *
 * Upstream event streams arrive in arbitrary pieces; mr_sse_feed takes them
 * as they come (split at any byte) and calls back once per complete event
 * with its "event" field and its "data" lines joined by '\n', exactly as the
 * WHATWG event-stream rules say: lines end at LF, CR or CRLF (also when the
 * CR and the LF arrive in different pieces), ':' starts a comment, one space
 * after a field's colon is dropped, an event ends at a blank line and is only
 * dispatched when it had a data field. "id" and "retry" are ignored.
 *
 * Memory is bounded: one line may hold at most max_line bytes and one event's
 * data at most max_data bytes; past either the parser fails (MR_SSE_TOO_LONG)
 * at the same point whatever the split, so output never depends on how the
 * input was cut. The caller owns the mr_sse_t; not thread-safe.
 */
#ifndef MERIDIAN_SSE_H
#define MERIDIAN_SSE_H

#include "meridian/buf.h"

#include <stddef.h>

#define MR_SSE_EVENT_NAME_MAX 64
#define MR_SSE_TOO_LONG (-2)

/* Called per event; `event` is "" when the event had no event field (longer
 * names are truncated to MR_SSE_EVENT_NAME_MAX - 1 bytes); `data` is
 * NUL-terminated at data[len]. A non-zero return stops parsing and is
 * returned by mr_sse_feed / mr_sse_finish. */
typedef int (*mr_sse_cb)(void *ctx, const char *event, const char *data, size_t len);

typedef struct mr_sse {
    mr_buf_t line; /* a line still missing its terminator */
    mr_buf_t data; /* data of the current event */
    size_t max_line;
    char event[MR_SSE_EVENT_NAME_MAX];
    int has_data; /* the current event had a data field */
    int cr;       /* the last byte was CR: a following LF belongs to it */
    int failed;   /* sticky result of a failure */
} mr_sse_t;

void mr_sse_init(mr_sse_t *s, size_t max_line, size_t max_data);
void mr_sse_free(mr_sse_t *s);

/* 0, MR_SSE_TOO_LONG, -1 (out of memory) or the callback's non-zero value.
 * After a non-zero result every later call returns it again. */
int mr_sse_feed(mr_sse_t *s, const char *p, size_t n, mr_sse_cb cb, void *ctx);

/* End of input: dispatches a last event that lacked its blank line (lenient:
 * some servers close right after the final data line). Same results. */
int mr_sse_finish(mr_sse_t *s, mr_sse_cb cb, void *ctx);

/* Where the first complete event of p[0, n) ends: the offset just past its
 * blank line (LF LF or LF CR LF), or 0 when it is not complete yet. For
 * passthrough streams, which forward events whole and byte for byte. */
size_t mr_sse_event_end(const char *p, size_t n);

/* Passthrough streams: p[0, n) appended to `pending` (within its limit),
 * then each(ctx, event, len) once per complete event in it, whole and byte
 * for byte, each consumed. 0; -1 when pending would pass its limit
 * (nothing appended); or each's non-zero result (that event consumed). */
typedef int (*mr_sse_raw_cb)(void *ctx, const char *event, size_t len);
int mr_sse_whole_events(mr_buf_t *pending, const char *p, size_t n, mr_sse_raw_cb each, void *ctx);

#endif
