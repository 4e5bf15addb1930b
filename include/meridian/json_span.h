/*
 * json_span — allocation-free JSON scanning over raw bytes.
 *
 * The gateway forwards request and response bodies byte for byte apart from
 * the members it must rewrite; re-serialising through a tree would change
 * number formatting and key order. These functions validate JSON and locate
 * top-level members by byte offsets so callers can splice. Pure functions on
 * caller-owned memory; any thread.
 */
#ifndef MERIDIAN_JSON_SPAN_H
#define MERIDIAN_JSON_SPAN_H

#include <stddef.h>

#define MR_JSON_MAX_DEPTH 256

typedef struct mr_json_span {
    size_t member_off; /* first byte of the member's key string */
    size_t value_off;  /* first byte of its value */
    size_t value_len;  /* bytes of the value */
} mr_json_span_t;

/* 0 when buf[0..len) is exactly one RFC 8259 JSON text (surrounding white
 * space allowed, nesting at most MR_JSON_MAX_DEPTH); -1 otherwise. */
int mr_json_validate(const char *buf, size_t len);

/*
 * One pass over a JSON text that does what a parser with
 * JSON_REJECT_DUPLICATES would refuse, without building anything: it
 * validates (mr_json_validate's rules), refuses an object with a member
 * twice at any depth (keys compared decoded, like find_member), locates the
 * top-level members named in `keys`, and counts what a parse tree of the
 * text would hold (an estimate of its memory for the caller's budget).
 * The scratch it needs (the keys of the objects still open) is on the
 * stack for ordinary texts; a text whose open objects hold more than 256
 * keys allocates it (8 bytes a key, freed before return).
 */
#define MR_JSON_SCAN_KEYS 16

typedef struct mr_json_scan {
    const char *const *keys; /* in: top-level members to locate, NULL-terminated, at most
                                MR_JSON_SCAN_KEYS; NULL for none */
    mr_json_span_t at[MR_JSON_SCAN_KEYS]; /* where keys[i] is, when bit i of found is set */
    unsigned found;
    int object;          /* the text is an object */
    size_t values;       /* JSON values, members' values included */
    size_t members;      /* object members, at every depth */
    size_t string_bytes; /* bytes between the quotes of string literals, keys included */
    const char *error;   /* why it was refused (static text), NULL when it was not */
    size_t error_at;     /* ... and at which byte */
} mr_json_scan_t;

/* 0, or -1 with s->error and s->error_at (also when out of memory). */
int mr_json_scan(const char *buf, size_t len, mr_json_scan_t *s);
/* keys[key]'s span after a successful scan, NULL when the member is absent. */
const mr_json_span_t *mr_json_scan_get(const mr_json_scan_t *s, size_t key);
/* The same by name: 1 when the scan looked for `key` (*span: where it is,
 * NULL when absent), 0 when it did not (the caller must look itself). */
int mr_json_scan_lookup(const mr_json_scan_t *s, const char *key, const mr_json_span_t **span);

/* Decodes the valid JSON string literal lit[0, n) (quotes included) into
 * out, which must hold n bytes; NUL-terminates it and returns its length
 * (a decoded \u0000 is a NUL inside it: check with strlen). */
size_t mr_json_string_decode(const char *lit, size_t n, char *out);

/* The length of the one JSON value at buf[0] (no white space before it;
 * bytes after it ignored), 0 when buf does not start with a valid value. */
size_t mr_json_value_len(const char *buf, size_t len);

/* In a *valid* JSON object text, find the first top-level member whose key
 * equals `key` once its escapes are decoded, as a JSON parser reads it: the
 * member "mod\u0065l" is "model" (a gateway that strips or rewrites a member
 * must not miss a spelling the upstream understands). 0 and *span filled when
 * found, -1 otherwise (also when not an object). */
int mr_json_find_member(const char *buf, size_t len, const char *key, mr_json_span_t *span);

/* The bytes to remove to delete the member at `span` from its object,
 * including one separating comma and the white space around it, so the
 * result stays valid JSON. */
void mr_json_member_cut(const char *buf, size_t len, const mr_json_span_t *span, size_t *off,
                        size_t *cut_len);

/* One replacement of buf[off, off+len) by rep[0, rep_len). */
typedef struct mr_json_edit {
    size_t off;
    size_t len;
    const char *rep;
    size_t rep_len;
} mr_json_edit_t;

/* Applies non-overlapping edits (any order; sorted in place) and returns a
 * malloc'd result (caller frees); NULL on allocation failure, or when edits
 * overlap or reach past the end. */
char *mr_json_apply(const char *buf, size_t len, mr_json_edit_t *edits, size_t n, size_t *out_len);

/*
 * The one JSON string escaper: everything that writes a JSON string by hand
 * (reqlog's records, the OpenAI adapter's model splice) goes through it, so
 * all of them agree on every byte.
 *
 * Writes s[0..n) as the inside of a JSON string literal (no quotes) into
 * out[0..cap) and returns the bytes written; *used is set to the input bytes
 * consumed, which is n unless out filled up (an escape or a character is
 * never split, so the caller can continue at s + *used). Rules:
 *   '"' and '\\'            -> \" and \\
 *   \b \f \n \r \t           -> their two-character escapes
 *   other bytes < 0x20, DEL -> \u00XX (lower-case hex)
 *   U+0080..U+009F (C1), U+2028, U+2029 -> \uXXXX (terminals act on C1;
 *                             JavaScript before ES2019 ends a line at 2028/29)
 *   a byte that does not start or continue a valid UTF-8 sequence (a cut
 *   character, an overlong form, a surrogate, > U+10FFFF) -> \ufffd, one per
 *   byte, so any bytes give valid JSON; callers that must keep the bytes
 *   exactly check mr_utf8_valid_len first (reqlog stores such bodies as
 *   base64)
 *   everything else (printable ASCII, valid UTF-8) is copied as is.
 * At most MR_JSON_ESCAPE_MAX output bytes per input byte.
 */
#define MR_JSON_ESCAPE_MAX 6
size_t mr_json_escape(const char *s, size_t n, char *out, size_t cap, size_t *used);

/* Writes `s` as a JSON string literal (quotes included, mr_json_escape's
 * rules) into out, which must hold at least 6 * strlen(s) + 3 bytes.
 * Returns the bytes written. */
size_t mr_json_quote(const char *s, char *out);

/* Bytes in the valid UTF-8 sequence at p (1..4), 0 when p[0..avail) does not
 * start with one (invalid, or cut short by avail). avail >= 1. */
size_t mr_utf8_char_len(const char *p, size_t avail);

/* Length of the longest prefix of s[0..n) that is valid UTF-8 (== n when all
 * of it is). */
size_t mr_utf8_valid_len(const char *s, size_t n);

#endif
