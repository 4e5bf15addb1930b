/*
 * scrub — secrets replaced in place.
 */
#include "meridian/scrub.h"

#include <string.h>

size_t mr_scrub(char *p, size_t n, const char *secret)
{
    size_t sl = secret ? strlen(secret) : 0, ml = strlen(MR_SCRUB_MASK), r = 0, w = 0;

    if (sl < MR_SCRUB_MIN_SECRET || !p)
        return n;
    while (r < n) {
        const char *hit = memmem(p + r, n - r, secret, sl);
        size_t keep = hit ? (size_t)(hit - (p + r)) : n - r;
        memmove(p + w, p + r, keep);
        w += keep;
        r += keep;
        if (!hit)
            break;
        memcpy(p + w, MR_SCRUB_MASK, ml); /* ml < sl: never past what was read */
        w += ml;
        r += sl;
    }
    return w;
}

void mr_scrub_str(char *s, const char *secret)
{
    size_t n = mr_scrub(s, strlen(s), secret);
    s[n] = '\0';
}
