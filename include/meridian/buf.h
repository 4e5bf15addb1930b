/*
 * buf — a growable byte buffer with a hard capacity limit and a read cursor.
 *
 * Every buffer is created with the most it may ever hold (curl's dynbuf
 * rule), so an untrusted peer can never grow memory without bound. Bytes are
 * appended at the end and consumed from the front; consumed space is
 * reclaimed by compaction when it is worth it. The owner of the mr_buf_t owns
 * its storage; mr_buf_steal hands the storage to someone else. Not
 * thread-safe; one owner at a time.
 *
 * A buffer may count against a memory budget (memacct.h): with `hold` set,
 * every growth of its allocation is charged to the hold (mr_buf_append
 * fails when the budget refuses; mr_buf_append_force charges anyway) and
 * mr_buf_free gives it back. A stolen block's charge stays with the hold
 * (its new owner lives as long as the hold's owner, who releases it all).
 */
#ifndef MERIDIAN_BUF_H
#define MERIDIAN_BUF_H

#include "meridian/memacct.h"

#include <stddef.h>

typedef struct mr_buf {
    char *data;
    size_t start;       /* read cursor: bytes before it are consumed */
    size_t end;         /* write cursor */
    size_t cap;         /* allocated */
    size_t limit;       /* most unconsumed bytes it may hold */
    mr_memhold_t *hold; /* charged for `cap`; NULL: not counted */
} mr_buf_t;

/* An empty buffer (no hold: set b->hold after, before the first append). */
void mr_buf_init(mr_buf_t *b, size_t limit);
void mr_buf_free(mr_buf_t *b);
/* Drops all content, keeps the allocation. */
void mr_buf_reset(mr_buf_t *b);

/* 0 on success; -1 when the limit would be exceeded (nothing appended), the
 * budget refuses the growth, or on allocation failure. */
int mr_buf_append(mr_buf_t *b, const void *p, size_t n);
/* Allocates room for `n` unconsumed bytes at once (exactly, when growing
 * from empty: a body of a declared length). 0, or -1 past the limit, when
 * the budget refuses, or out of memory. */
int mr_buf_reserve(mr_buf_t *b, size_t n);
/* Appends ignoring the limit; for gateway-generated trailers (SSE error event). */
int mr_buf_append_force(mr_buf_t *b, const void *p, size_t n);

static inline size_t mr_buf_len(const mr_buf_t *b)
{
    return b->end - b->start;
}
static inline const char *mr_buf_ptr(const mr_buf_t *b)
{
    return b->data ? b->data + b->start : "";
}
static inline size_t mr_buf_room(const mr_buf_t *b)
{
    return b->limit > mr_buf_len(b) ? b->limit - mr_buf_len(b) : 0;
}

/* Copies up to n unconsumed bytes to dst and consumes them; returns count. */
size_t mr_buf_read(mr_buf_t *b, void *dst, size_t n);

/* Returns the unconsumed bytes as a malloc'd block that the caller now owns
 * (NUL-terminated for convenience, *len excludes the NUL); the buffer is left
 * empty. NULL on allocation failure. */
char *mr_buf_steal(mr_buf_t *b, size_t *len);

#endif
