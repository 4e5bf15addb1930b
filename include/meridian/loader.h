/*
 * loader — what every config loader shares: a walk over one JSON document
 * that keeps the JSON path of the value being read, so that every error is
 * one line "<origin>: <json.path>: <why>", plus typed member getters that
 * produce the same messages everywhere, unknown-key checks with "did you
 * mean" suggestions, and ${VAR} expansion with config-style messages.
 *
 * The config modules (config.h, config_routes.h, config_policies.h,
 * config_check.h) use it; nothing outside the config layers should.
 *
 * Ownership: an mr_loader_t is a caller's stack value for one load. It
 * borrows the origin, the error buffer, the JSON document and the config
 * under construction (which owns whatever was loaded so far, so a failure is
 * just mr_config_free of it). Strings returned by mr_loader_plain borrow the
 * document; mr_loader_expanded returns malloc'd strings.
 *
 * Errors: every function returning int returns 0, or -1 after writing the
 * message (the path then still names the offending member: callers return
 * at once and never pop after a failure). No global state; any thread.
 *
 * Secrets: every message and warning is shown only after the credentials of
 * any URL in it ("user:password@") became "***@" and after every api_key
 * value of the document (as expanded, and each variable it reads) of at
 * least MR_LOADER_SECRET_MIN bytes became "***" (issue 11, finding 10).
 */
#ifndef MERIDIAN_LOADER_H
#define MERIDIAN_LOADER_H

#include "meridian/catalogue.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define MR_LOADER_PATH_MAX 512  /* bytes of a JSON path in a message */
#define MR_LOADER_QUOTE_MAX 200 /* a buffer for mr_loader_quote */
#define MR_LOADER_SECRET_MIN 8  /* shorter api_key values are not hidden in messages */

typedef struct mr_loader {
    const char *origin; /* file name or "<string>" */
    char *err;          /* caller's message buffer (may be NULL) */
    size_t errlen;
    mr_config_t *cfg;              /* under construction */
    json_t *root;                  /* the document: its api_key values are hidden in messages */
    char path[MR_LOADER_PATH_MAX]; /* "routes.chat.targets[1].provider" */
    size_t plen;
} mr_loader_t;

/* Write "<origin>: <path>: <message>" (no path at the top) and return -1. */
int mr_loader_fail(mr_loader_t *ld, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Append a non-fatal finding to cfg->warnings (0, or -1 out of memory). */
int mr_loader_warn(mr_loader_t *ld, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Descend into member `key` / element `i`; each returns the length that
 * mr_loader_pop restores. Keys that would make the path ambiguous are
 * written ["like.this"]. */
size_t mr_loader_key(mr_loader_t *ld, const char *key);
size_t mr_loader_index(mr_loader_t *ld, size_t i);
void mr_loader_pop(mr_loader_t *ld, size_t saved);

/* Reject every member of `obj` not in `known` (NULL-terminated), suggesting
 * the closest known key. "$comment" is accepted anywhere, as a string. */
int mr_loader_check_keys(mr_loader_t *ld, json_t *obj, const char *const *known);

/*
 * Optional members: absent leaves *out untouched (its default) and returns 0.
 *   int     an integer in [min, max] ("must be an integer from MIN to MAX")
 *   number  integer or real in [min, max], or (min, max] when min_exclusive;
 *           *present says whether it was given
 *   bool    true or false
 *   plain   a string, borrowed from the document, NULL when absent
 *   expanded  a string, ${VAR}-expanded (an unset variable is an error),
 *           malloc'd, NULL when absent
 *   enum    a string among name(0..n-1); *out its index
 * `required` makes absence an error ("missing (required)").
 */
int mr_loader_int(mr_loader_t *ld, json_t *obj, const char *key, json_int_t min, json_int_t max,
                  json_int_t *out);
int mr_loader_number(mr_loader_t *ld, json_t *obj, const char *key, double min, double max,
                     bool min_exclusive, bool *present, double *out);
int mr_loader_bool(mr_loader_t *ld, json_t *obj, const char *key, bool *out);
int mr_loader_plain(mr_loader_t *ld, json_t *obj, const char *key, bool required, const char **out);
int mr_loader_expanded(mr_loader_t *ld, json_t *obj, const char *key, bool required, char **out);
int mr_loader_enum(mr_loader_t *ld, json_t *obj, const char *key, const char *(*name)(int), int n,
                   bool *present, int *out);

/* ${VAR}-expand `raw` at the current path (an unset variable is an error). */
int mr_loader_expand(mr_loader_t *ld, const char *raw, char **out);

/* `obj` must be a JSON object: "must be an object (got TYPE)". */
int mr_loader_object(mr_loader_t *ld, json_t *obj);

/* A string value at the current path: not empty (unless allow_empty), at
 * most `max` bytes (0: any length), no control characters. */
int mr_loader_text(mr_loader_t *ld, const char *v, bool allow_empty, size_t max);

/* A short label member `key` (vendor, region...): mr_loader_text at `key`
 * with MR_LABEL_MAX. */
int mr_loader_label(mr_loader_t *ld, const char *key, const char *v, bool allow_empty);

/* The name of a provider, policy or key (mr_loader_valid_name), copied to
 * *out (owned by the config from then on); `noun` names it in the message. */
int mr_loader_name(mr_loader_t *ld, const char *noun, const char *name, char **out);

/*
 * The shape shared by "providers", "routes", "policies" and "keys": an
 * object mapping names to entries, "$comment" allowed. Allocates *arr for
 * the entries (at least `min`, at most `max`) of `elem` bytes each, then
 * calls one() for each with its index, after raising *count so a failure
 * frees what was loaded so far. noun/nouns name them in messages.
 */
typedef int (*mr_loader_one_fn)(mr_loader_t *ld, const char *name, json_t *v, size_t index);
int mr_loader_named(mr_loader_t *ld, json_t *root, const char *key, const char *noun,
                    const char *nouns, size_t min, size_t max, void **arr, size_t elem,
                    size_t *count, mr_loader_one_fn one);

/* ---- small helpers ------------------------------------------------------ */

/* `s` double-quoted for a message: '"' and '\' escaped, control bytes as
 * \xNN, URL credentials as "***", at most ~80 input bytes shown, then "...".
 * Returns buf. */
const char *mr_loader_quote(char *buf, size_t n, const char *s);

/*
 * `in` into out (n bytes, always terminated) with the credentials of every
 * URL replaced by "***": what comes before the last '@' of an authority,
 * or the whole authority when it has no '@' but is not a plain host[:port]
 * (text cut inside the credentials). For messages made outside a load.
 */
void mr_loader_redact(const char *in, char *out, size_t n);

/* "object", "array", "string", "integer", "number", "boolean", "null". */
const char *mr_loader_type_name(const json_t *v);

bool mr_loader_has_control(const char *s);

/* Names of providers, policies, keys: 1..MR_NAME_MAX of [A-Za-z0-9_.-],
 * starting with [A-Za-z0-9_]; tag names must also start with [A-Za-z_]. */
bool mr_loader_valid_name(const char *s);
bool mr_loader_valid_tag_name(const char *s);

/* `j` at the current path must be a two-letter ISO 3166-1 code; it is
 * upper-cased in place. */
int mr_loader_jurisdiction(mr_loader_t *ld, char *j);

/* "Did you mean": feed candidates, keep the closest plausible one. */
typedef struct mr_loader_suggest {
    const char *word;
    const char *best;
    size_t best_d;
} mr_loader_suggest_t;

void mr_loader_suggest_init(mr_loader_suggest_t *s, const char *word);
void mr_loader_suggest_try(mr_loader_suggest_t *s, const char *candidate);
/* " (did you mean \"x\"?)" or "". Returns buf. */
const char *mr_loader_suggest_text(const mr_loader_suggest_t *s, char *buf, size_t n);

#endif
