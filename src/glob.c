#include "meridian/glob.h"

#include <string.h>

bool mr_glob_is_pattern(const char *s)
{
    return strchr(s, '*') != NULL;
}

/* Greedy with one resume point: a later `*` supersedes an earlier one, so
 * the scan never backtracks further than the last star. */
bool mr_glob_match(const char *pat, const char *s)
{
    const char *star = NULL, *resume = NULL;

    while (*s) {
        if (*pat == '*') {
            star = ++pat;
            resume = s;
        } else if (*pat == *s) {
            pat++;
            s++;
        } else if (star) {
            pat = star;
            s = ++resume;
        } else {
            return false;
        }
    }
    while (*pat == '*')
        pat++;
    return *pat == '\0';
}

/* The two patterns as automata run side by side: state (i, j) means a[0, i)
 * and b[0, j) have consumed the same string. A star may match nothing
 * (step past it) or one more byte of the other side's literal (stay); two
 * equal literals step together. Every step moves i or j forward, so one
 * pass over the rows in order decides which states are reachable; both
 * patterns accept together at (|a|, |b|). Two rows of b's positions. */
#define OVERLAP_MAX 511

bool mr_glob_overlap(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b);
    bool rows[2][OVERLAP_MAX + 1];

    if (na > OVERLAP_MAX || nb > OVERLAP_MAX)
        return true; /* too long to decide: call it a clash */
    for (size_t i = 0; i <= na; i++) {
        bool *cur = rows[i & 1], *prev = rows[(i + 1) & 1];
        for (size_t j = 0; j <= nb; j++) {
            bool r = i == 0 && j == 0;
            if (i > 0 && prev[j] && a[i - 1] == '*')
                r = true; /* a's star ends */
            if (j > 0 && cur[j - 1] && b[j - 1] == '*')
                r = true; /* b's star ends */
            if (j > 0 && cur[j - 1] && i < na && a[i] == '*' && b[j - 1] != '*')
                r = true; /* a's star takes b's literal */
            if (i > 0 && prev[j] && j < nb && b[j] == '*' && a[i - 1] != '*')
                r = true; /* b's star takes a's literal */
            if (i > 0 && j > 0 && prev[j - 1] && a[i - 1] != '*' && a[i - 1] == b[j - 1])
                r = true; /* the same literal */
            cur[j] = r;
        }
    }
    return rows[na & 1][nb];
}
