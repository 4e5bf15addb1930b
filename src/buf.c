#include "meridian/buf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

void mr_buf_init(mr_buf_t *b, size_t limit)
{
    memset(b, 0, sizeof(*b));
    b->limit = limit;
}

void mr_buf_free(mr_buf_t *b)
{
    free(b->data);
    if (b->hold)
        mr_mem_release(b->hold, b->cap);
    b->data = NULL;
    b->start = b->end = b->cap = 0;
}

void mr_buf_reset(mr_buf_t *b)
{
    b->start = b->end = 0;
}

/* Room for n more bytes; `exact`: no more than that when growing from
 * empty; `force`: charge the hold past its budget. */
static int reserve(mr_buf_t *b, size_t n, int exact, int force)
{
    size_t need, cap;
    char *p;

    if (b->cap - b->end >= n)
        return 0;
    /* Reclaim consumed space before growing. */
    if (b->start > 0) {
        memmove(b->data, b->data + b->start, b->end - b->start);
        b->end -= b->start;
        b->start = 0;
        if (b->cap - b->end >= n)
            return 0;
    }
    need = b->end + n + 1; /* +1 keeps room for mr_buf_steal's NUL */
    cap = exact && !b->cap ? need : b->cap ? b->cap : 1024;
    while (cap < need)
        cap *= 2;
    /* doubling must not overshoot what the limit lets it hold */
    if (b->limit < SIZE_MAX && need <= b->limit + 1 && cap > b->limit + 1)
        cap = b->limit + 1;
    if (b->hold) {
        if (force)
            mr_mem_force(b->hold, cap - b->cap);
        else if (mr_mem_charge(b->hold, cap - b->cap) < 0)
            return -1;
    }
    p = realloc(b->data, cap);
    if (!p) {
        if (b->hold)
            mr_mem_release(b->hold, cap - b->cap);
        return -1;
    }
    b->data = p;
    b->cap = cap;
    return 0;
}

int mr_buf_reserve(mr_buf_t *b, size_t n)
{
    if (n > mr_buf_room(b))
        return -1;
    return reserve(b, n, 1, 0);
}

static int append(mr_buf_t *b, const void *p, size_t n, int force)
{
    if (n == 0)
        return 0;
    if (reserve(b, n, 0, force) < 0)
        return -1;
    memcpy(b->data + b->end, p, n);
    b->end += n;
    return 0;
}

int mr_buf_append_force(mr_buf_t *b, const void *p, size_t n)
{
    return append(b, p, n, 1);
}

int mr_buf_append(mr_buf_t *b, const void *p, size_t n)
{
    if (n > mr_buf_room(b))
        return -1;
    return append(b, p, n, 0);
}

size_t mr_buf_read(mr_buf_t *b, void *dst, size_t n)
{
    size_t avail = mr_buf_len(b);

    if (n > avail)
        n = avail;
    if (n) {
        memcpy(dst, b->data + b->start, n);
        b->start += n;
    }
    if (b->start == b->end)
        b->start = b->end = 0;
    return n;
}

char *mr_buf_steal(mr_buf_t *b, size_t *len)
{
    char *p;

    if (reserve(b, 1, 0, 1) < 0)
        return NULL;
    if (b->start > 0) {
        memmove(b->data, b->data + b->start, b->end - b->start);
        b->end -= b->start;
        b->start = 0;
    }
    b->data[b->end] = '\0';
    p = b->data;
    *len = b->end;
    b->data = NULL;
    b->start = b->end = b->cap = 0;
    return p;
}
