/*
 * glob — names with `*` wildcards, as route aliases ("claude-sonnet-*") and
 * the anthropic-beta allow-lists ("interleaved-thinking-*") write them.
 *
 * A pattern is literal bytes and `*`, which matches any run of bytes
 * (empty included); there is no escape, no `?` and no class. Matching is
 * byte for byte (case-sensitive). mr_glob_overlap decides whether two
 * patterns match a common string, so that a configuration can be refused
 * when one name could be claimed by two aliases.
 *
 * Pure functions; no heap; any thread. Matching is O(|pattern| * |string|)
 * in the worst case (no backtracking blow-up); overlap is O(|a| * |b|).
 */
#ifndef MERIDIAN_GLOB_H
#define MERIDIAN_GLOB_H

#include <stdbool.h>

/* Whether `s` has a `*` (a pattern rather than an exact name). */
bool mr_glob_is_pattern(const char *s);

/* Whether pattern `pat` matches all of `s`. */
bool mr_glob_match(const char *pat, const char *s);

/* Whether some string is matched by both patterns (exact names are patterns
 * without `*`). */
bool mr_glob_overlap(const char *a, const char *b);

#endif
