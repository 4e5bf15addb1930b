/*
 * What harness.c and harness_proc.c share, and nothing a test uses: both
 * halves of the test harness run on the test's main thread only.
 */
#ifndef MERIDIAN_TEST_HARNESS_INT_H
#define MERIDIAN_TEST_HARNESS_INT_H

#include <stddef.h>

/* One step of every bounded poll, in milliseconds. */
#define TH_POLL_MS 5

/* malloc / realloc that abort on out-of-memory (a test cannot go on). */
void *thi_xmalloc(size_t n);
void *thi_xrealloc(void *p, size_t n);
/* CLOCK_MONOTONIC in milliseconds. */
double thi_mono_ms(void);

#endif /* MERIDIAN_TEST_HARNESS_INT_H */
