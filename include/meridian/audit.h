/*
 * audit — reading an audit file: one record checked on its own, the chain
 * head a file ends with, and a whole file verified (--verify-audit).
 *
 * logsink writes the file (chain mode); this module only reads. The format,
 * one JSON object per line:
 *
 *   {"seq":N,"prev":"<64 hex>",<the producer's members>,"hash":"<64 hex>"}\n
 *
 *   seq   counts from 1 and continues across restarts and reopens.
 *   prev  lower-case hex SHA-256 of the previous record's complete line (all
 *         its bytes except the newline); 64 zeros for the first record of a
 *         chain.
 *   hash  lower-case hex SHA-256 of this line's bytes before ",\"hash\":",
 *         so every record checks itself.
 *
 * The chain head of a file is its last record's seq and the SHA-256 of that
 * record's whole line: exactly what the next record carries as seq - 1 and
 * prev. Deleting records from the front of a file, or every record of it,
 * leaves a file that is internally consistent; only an anchor kept
 * elsewhere shows the loss: the genesis (seq 1 with a zero prev), the
 * predecessor file, or a head logged off-host (logsink logs it, see
 * logsink.h). mr_audit_verify therefore accepts a file only when it starts
 * at the genesis or continues the head it is given.
 *
 * Pure functions over files and caller memory; any thread. Errors fill a
 * caller buffer naming the file.
 */
#ifndef MERIDIAN_AUDIT_H
#define MERIDIAN_AUDIT_H

#include "meridian/sha256.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* How every record ends: HASH_KEY, 64 hex digits, "\"}". */
#define MR_AUDIT_HASH_KEY ",\"hash\":\""
#define MR_AUDIT_HASH_KEY_LEN (sizeof(MR_AUDIT_HASH_KEY) - 1)
#define MR_AUDIT_HASH_SUFFIX_LEN (MR_AUDIT_HASH_KEY_LEN + MR_SHA256_HEX_LEN + 2)

/* The longest last line mr_audit_read_head reads by default; a record is at
 * most its sink's queue bound plus the framing long. */
#define MR_AUDIT_TAIL_LIMIT (64u << 20)

typedef enum {
    MR_AUDIT_OK = 0,
    MR_AUDIT_NOT_JSON,
    MR_AUDIT_NO_FIELDS,
    MR_AUDIT_NO_HASH,
    MR_AUDIT_BAD_HASH,
} mr_audit_check_t;

/* "intact", "not valid JSON", "hash does not match its contents", ... */
const char *mr_audit_problem(mr_audit_check_t c);

/* Checks one record line[0..len) (no newline) on its own, without its
 * neighbours. *seq is its seq (0 when it has none) and prev its prev
 * digest, filled whenever the line parses, so a message about a record
 * whose hash fails can still name its seq. The hash is checked before the
 * JSON so that an edit is reported as one even when it also breaks the
 * syntax. `digest` (NULL: not wanted) receives the SHA-256 of the whole
 * line, what the next record's prev must be, whenever the result is
 * MR_AUDIT_OK (one hashing pass serves both). */
mr_audit_check_t mr_audit_check_record(const char *line, size_t len, uint64_t *seq,
                                       uint8_t prev[MR_SHA256_DIGEST_LEN],
                                       uint8_t digest[MR_SHA256_DIGEST_LEN]);

/* What a file must continue: a record's seq (0 when unknown, for a bare
 * digest from --after HASH) and the digest of its whole line. */
typedef struct mr_audit_head {
    uint64_t seq;
    uint8_t digest[MR_SHA256_DIGEST_LEN];
} mr_audit_head_t;

/*
 * The head of the audit file at `path`, from its last line (read backwards
 * in chunks; the file is never read whole). `name` prefixes messages (a
 * config key such as "audit.path", or "--after"). Returns 0 with *head
 * filled; 1 when there is no record to continue (an empty file, or not a
 * regular file, such as a device); -1 with err set when the file cannot be
 * read, its last line is longer than `limit`, is not complete (no newline)
 * or is not a valid record (the message says which, and the byte offset).
 */
int mr_audit_read_head(const char *name, const char *path, size_t limit, mr_audit_head_t *head,
                       char *err, size_t errlen);

/* --after's argument: exactly 64 hex digits are a head digest (seq
 * unknown); anything else names the predecessor file, whose last record is
 * the head. 0, or -1 with err set. */
int mr_audit_parse_after(const char *arg, mr_audit_head_t *head, char *err, size_t errlen);

/*
 * Checks an audit file's chain, reading it line by line. `after` NULL: the
 * file must start the chain (its first record seq 1 with a zero prev);
 * otherwise its first record must continue *after (prev equal to its
 * digest, and seq one more when its seq is known). Returns 0 when intact,
 * printing "PATH: N records, chain intact (seq A..B); head HEX" to out (with
 * ", continuing --after" before ';' when anchored), HEX being the head to
 * keep or to pass to --after for the next file; 1 when not, printing one
 * line naming the FIRST bad record, e.g.
 *   "PATH: record 17 (line 17, seq 17): hash does not match its contents",
 *   "...: prev does not match the hash of record 16 (a record was changed,
 *   removed or reordered)", "...: seq 19 follows seq 17", "...: not valid
 *   JSON", "...: partial last record", "...: the file does not start the
 *   chain ... pass that file or its head with --after", or "PATH: no
 *   records" (an empty file proves nothing); -1 when the file cannot be
 *   read (err set, nothing printed).
 */
int mr_audit_verify(const char *path, const mr_audit_head_t *after, FILE *out, char *err,
                    size_t errlen);

#endif
