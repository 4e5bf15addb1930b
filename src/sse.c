#include "meridian/sse.h"

#include <string.h>

void mr_sse_init(mr_sse_t *s, size_t max_line, size_t max_data)
{
    memset(s, 0, sizeof(*s));
    /* +1: the data buffer keeps a NUL after the data for the callback */
    mr_buf_init(&s->line, max_line);
    mr_buf_init(&s->data, max_data + 1);
    s->max_line = max_line;
}

void mr_sse_free(mr_sse_t *s)
{
    mr_buf_free(&s->line);
    mr_buf_free(&s->data);
}

static int dispatch(mr_sse_t *s, mr_sse_cb cb, void *ctx)
{
    int rc = 0;

    if (s->has_data) {
        if (mr_buf_append_force(&s->data, "", 1) < 0)
            return -1;
        s->data.end--; /* the NUL stays after the data, not in it */
        rc = cb(ctx, s->event, mr_buf_ptr(&s->data), mr_buf_len(&s->data));
    }
    mr_buf_reset(&s->data);
    s->event[0] = '\0';
    s->has_data = 0;
    return rc;
}

/* One complete line (without its terminator). */
static int line(mr_sse_t *s, const char *p, size_t n, mr_sse_cb cb, void *ctx)
{
    const char *colon, *v;
    size_t fn, vn;

    if (n == 0)
        return dispatch(s, cb, ctx);
    if (p[0] == ':')
        return 0;
    colon = memchr(p, ':', n);
    fn = colon ? (size_t)(colon - p) : n;
    v = colon ? colon + 1 : p + n;
    vn = (size_t)(p + n - v);
    if (vn && *v == ' ')
        v++, vn--;
    if (fn == 4 && memcmp(p, "data", 4) == 0) {
        /* the limit counts the joining '\n' too, so it is split-independent */
        if (s->has_data && mr_buf_append(&s->data, "\n", 1) < 0)
            return MR_SSE_TOO_LONG;
        if (mr_buf_len(&s->data) + vn + 1 > s->data.limit || mr_buf_append(&s->data, v, vn) < 0)
            return MR_SSE_TOO_LONG;
        s->has_data = 1;
    } else if (fn == 5 && memcmp(p, "event", 5) == 0) {
        size_t k = vn < sizeof(s->event) - 1 ? vn : sizeof(s->event) - 1;
        memcpy(s->event, v, k);
        s->event[k] = '\0';
    }
    return 0;
}

int mr_sse_feed(mr_sse_t *s, const char *p, size_t n, mr_sse_cb cb, void *ctx)
{
    size_t i = 0;
    int rc;

    if (s->failed)
        return s->failed;
    while (i < n) {
        size_t j;

        if (s->cr) {
            s->cr = 0;
            if (p[i] == '\n') {
                i++;
                continue;
            }
        }
        for (j = i; j < n && p[j] != '\n' && p[j] != '\r'; j++)
            ;
        if (mr_buf_len(&s->line) + (j - i) > s->max_line) {
            rc = MR_SSE_TOO_LONG;
            goto fail;
        }
        if (j == n) {
            if (mr_buf_append(&s->line, p + i, j - i) < 0) {
                rc = -1;
                goto fail;
            }
            return 0;
        }
        s->cr = p[j] == '\r';
        if (mr_buf_len(&s->line)) {
            if (mr_buf_append(&s->line, p + i, j - i) < 0) {
                rc = -1;
                goto fail;
            }
            rc = line(s, mr_buf_ptr(&s->line), mr_buf_len(&s->line), cb, ctx);
            mr_buf_reset(&s->line);
        } else {
            rc = line(s, p + i, j - i, cb, ctx);
        }
        if (rc)
            goto fail;
        i = j + 1;
    }
    return 0;
fail:
    s->failed = rc;
    return rc;
}

int mr_sse_finish(mr_sse_t *s, mr_sse_cb cb, void *ctx)
{
    int rc;

    if (s->failed)
        return s->failed;
    if (mr_buf_len(&s->line)) {
        rc = line(s, mr_buf_ptr(&s->line), mr_buf_len(&s->line), cb, ctx);
        mr_buf_reset(&s->line);
        if (rc)
            return s->failed = rc;
    }
    rc = dispatch(s, cb, ctx);
    if (rc)
        s->failed = rc;
    return rc;
}

size_t mr_sse_event_end(const char *p, size_t n)
{
    for (size_t i = 0; i + 1 < n; i++) {
        if (p[i] != '\n')
            continue;
        if (p[i + 1] == '\n')
            return i + 2;
        if (p[i + 1] == '\r' && i + 2 < n && p[i + 2] == '\n')
            return i + 3;
    }
    return 0;
}

int mr_sse_whole_events(mr_buf_t *pending, const char *p, size_t n, mr_sse_raw_cb each, void *ctx)
{
    size_t end;

    if (mr_buf_append(pending, p, n) < 0)
        return -1;
    while ((end = mr_sse_event_end(mr_buf_ptr(pending), mr_buf_len(pending))) > 0) {
        int rc = each(ctx, mr_buf_ptr(pending), end);
        pending->start += end;
        if (rc)
            return rc;
    }
    if (pending->start == pending->end)
        mr_buf_reset(pending);
    return 0;
}
