/*
 * sha256 — SHA-256 (FIPS 180-4), small and dependency-free.
 *
 * Used for gateway key digests (auth) and policy hashes (provenance). Not a
 * general crypto library: no HMAC, no constant-time claims beyond what the
 * algorithm itself does (it has no secret-dependent branches or lookups).
 *
 * Plain values, no heap, no global state; any thread.
 */
#ifndef MERIDIAN_SHA256_H
#define MERIDIAN_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define MR_SHA256_DIGEST_LEN 32
#define MR_SHA256_HEX_LEN 64 /* without the terminating NUL */

typedef struct mr_sha256 {
    uint32_t _h[8];
    uint64_t _bytes; /* total message length so far */
    uint8_t _block[64];
    size_t _used; /* bytes buffered in _block */
} mr_sha256_t;

void mr_sha256_init(mr_sha256_t *c);
void mr_sha256_update(mr_sha256_t *c, const void *data, size_t len);
/* Writes the digest and wipes the context. */
void mr_sha256_final(mr_sha256_t *c, uint8_t out[MR_SHA256_DIGEST_LEN]);

/* One-shot digest of `len` bytes. */
void mr_sha256(const void *data, size_t len, uint8_t out[MR_SHA256_DIGEST_LEN]);

/* Lower-case hex of a digest into out (65 bytes: 64 digits + NUL). */
void mr_sha256_hex(const uint8_t digest[MR_SHA256_DIGEST_LEN], char out[MR_SHA256_HEX_LEN + 1]);

/* Parse exactly 64 hex digits (either case) into a digest; 0 or -1. */
int mr_sha256_from_hex(const char *hex, uint8_t out[MR_SHA256_DIGEST_LEN]);

#endif
