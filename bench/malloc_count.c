/*
 * bench/malloc_count.c — an LD_PRELOAD allocation counter for bench/allocs.
 *
 *   cc -O2 -shared -fPIC -o malloc_count.so bench/malloc_count.c
 *   MALLOC_COUNT_FILE=/tmp/counts LD_PRELOAD=./malloc_count.so build/meridian ...
 *   kill -USR2 PID        # appends one line of totals to MALLOC_COUNT_FILE
 *
 * Counts every call that allocates (malloc, calloc, realloc that moves or
 * grows from NULL, posix_memalign, aligned_alloc, memalign, valloc) and every
 * free of a non-NULL pointer, process-wide (all threads), with relaxed
 * atomics: the figures are exact, the cost is a few ns per call. glibc routes
 * its own internal allocations (strdup, curl_slist_append, jansson) through
 * these symbols, so library allocations count too. The real allocator is
 * glibc's __libc_* entry points (no dlsym, which itself allocates).
 *
 * SIGUSR2 writes "allocs=N frees=N bytes=N" (bytes: requested, allocations
 * only) with write(2) from the handler (async-signal-safe): the caller
 * snapshots before and after a load and divides the difference by the
 * requests served.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);
extern void *__libc_memalign(size_t, size_t);

static unsigned long long n_alloc, n_free, n_bytes;

static void count(size_t bytes)
{
    __atomic_fetch_add(&n_alloc, 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&n_bytes, bytes, __ATOMIC_RELAXED);
}

void *malloc(size_t n)
{
    count(n);
    return __libc_malloc(n);
}

void *calloc(size_t a, size_t b)
{
    count(a * b);
    return __libc_calloc(a, b);
}

void *realloc(void *p, size_t n)
{
    void *q = __libc_realloc(p, n);
    /* a realloc that moved the block is an allocation (and a free) */
    if (q && q != p)
        count(n);
    if (q && q != p && p)
        __atomic_fetch_add(&n_free, 1, __ATOMIC_RELAXED);
    return q;
}

void free(void *p)
{
    if (p)
        __atomic_fetch_add(&n_free, 1, __ATOMIC_RELAXED);
    __libc_free(p);
}

void *memalign(size_t align, size_t n)
{
    count(n);
    return __libc_memalign(align, n);
}

void *aligned_alloc(size_t align, size_t n)
{
    return memalign(align, n);
}

int posix_memalign(void **out, size_t align, size_t n)
{
    void *p = memalign(align, n);
    if (!p)
        return 12; /* ENOMEM */
    *out = p;
    return 0;
}

void *valloc(size_t n)
{
    return memalign((size_t)sysconf(_SC_PAGESIZE), n);
}

/* Decimal digits of v at the end of buf; returns where they start. */
static char *utoa(unsigned long long v, char *end)
{
    do {
        *--end = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return end;
}

static void put(int fd, const char *s)
{
    ssize_t w = write(fd, s, strlen(s));
    (void)w;
}

static void put_num(int fd, const char *name, unsigned long long v)
{
    char buf[32];
    buf[31] = '\0';
    put(fd, name);
    put(fd, utoa(v, buf + 31));
}

static void on_usr2(int sig)
{
    const char *path = getenv("MALLOC_COUNT_FILE");
    int fd = path ? open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644) : 2;

    (void)sig;
    if (fd < 0)
        return;
    put_num(fd, "allocs=", __atomic_load_n(&n_alloc, __ATOMIC_RELAXED));
    put_num(fd, " frees=", __atomic_load_n(&n_free, __ATOMIC_RELAXED));
    put_num(fd, " bytes=", __atomic_load_n(&n_bytes, __ATOMIC_RELAXED));
    put(fd, "\n");
    if (fd != 2)
        close(fd);
}

__attribute__((constructor)) static void init(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_usr2;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR2, &sa, NULL);
}
