/*
 * scrub — a provider's API key out of upstream bytes before anyone sees
 * them (docs/security.md, finding 6). An upstream or a proxy in front of it
 * may echo the credentials it was sent ("Incorrect API key provided:
 * Bearer sk-..."); whatever of its text reaches a client, the log or the
 * audit file goes through here first. The key's every occurrence becomes
 * "***", so its "Bearer "-prefixed and header forms go too.
 *
 * Keys shorter than MR_SCRUB_MIN_SECRET bytes are not secrets worth the
 * damage to text ("none", "x": local providers' placeholders), the same rule
 * as the config's masking. Pure functions on caller buffers, any thread.
 */
#ifndef MERIDIAN_SCRUB_H
#define MERIDIAN_SCRUB_H

#include <stddef.h>

#define MR_SCRUB_MIN_SECRET 8
#define MR_SCRUB_MASK "***"

/* Replaces every occurrence of `secret` in p[0, n) by MR_SCRUB_MASK, in
 * place (the text only shrinks); returns the new length. A NULL or short
 * secret changes nothing. */
size_t mr_scrub(char *p, size_t n, const char *secret);

/* The same on a NUL-terminated string. */
void mr_scrub_str(char *s, const char *secret);

#endif
