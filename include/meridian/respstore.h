/*
 * respstore — stored Responses (issue 15): what previous_response_id,
 * GET /v1/responses/{id}, .../input_items and DELETE find.
 *
 * Two layers. The front (mr_respstore_put / get / del) scopes every id by
 * the caller's gateway key: the backend key is "resp:" + 32 hex digits of
 * SHA-256(scope) + ":" + id, so a lookup under another key (or, when keys
 * exist, without one) is simply "not found", and no key name or secret
 * reaches a backend. The backend is a table of three functions shaped like
 * the state engine's key/value store (state.h mr_state_kv_set / get / del:
 * a value with a TTL, results to a callback), so a Redis backend is three
 * wrappers around an mr_state_loop_t. The memory backend here is
 * process-wide: bounded by entries, bytes and a TTL, least recently used
 * evicted first, with an injected clock.
 *
 * Values are opaque bytes (the gateway stores responses_write.h's entry as
 * JSON text). Write before completed: the gateway puts a response's entry
 * from the writer's on_final callback, before the terminal event
 * (response.completed) can reach the client; with the memory backend the
 * callback has run when put returns, an asynchronous backend must hold the
 * terminal event until its callback. A value larger than the backend takes
 * (MR_RESPSTORE_VALUE_MAX here; 1 MiB for state.h's kv) is not stored
 * (MR_RESPSTORE_TOO_LARGE): the response is still answered, a later
 * previous_response_id to it gets 404 — docs/providers.md says so.
 *
 * Threading: the memory backend may be called from any thread (one mutex;
 * callbacks run after it is released, before the call returns, on the
 * caller's thread, with the value borrowed for the call). Errors: calls
 * return 0 when the callback will run, -1 on a bad argument (no callback).
 */
#ifndef MERIDIAN_RESPSTORE_H
#define MERIDIAN_RESPSTORE_H

#include <stddef.h>
#include <stdint.h>

#define MR_RESPSTORE_ID_MAX 128 /* bytes of an id, NUL excluded */
#define MR_RESPSTORE_KEY_MAX (5 + 32 + 1 + MR_RESPSTORE_ID_MAX + 1)
#define MR_RESPSTORE_VALUE_MAX ((size_t)16 << 20) /* memory backend: one value */

typedef enum mr_respstore_status {
    MR_RESPSTORE_OK = 0,
    MR_RESPSTORE_NOT_FOUND,   /* absent, expired, evicted or another key's */
    MR_RESPSTORE_TOO_LARGE,   /* put: the value is larger than the backend takes */
    MR_RESPSTORE_UNAVAILABLE, /* the backend cannot answer (Redis away) */
} mr_respstore_status_t;

/* A result: val / len the value for a get that found it (borrowed for the
 * call), NULL / 0 otherwise. */
typedef void (*mr_respstore_cb)(void *arg, mr_respstore_status_t st, const char *val, size_t len);

typedef struct mr_respstore_backend {
    /* Stores a copy for ttl_ms (replacing one under the same key). cb may be NULL. */
    int (*set)(void *ctx, const char *key, const char *val, size_t len, uint64_t ttl_ms,
               mr_respstore_cb cb, void *arg);
    int (*get)(void *ctx, const char *key, mr_respstore_cb cb, void *arg);
    /* cb: OK when there was one, NOT_FOUND otherwise. cb may be NULL. */
    int (*del)(void *ctx, const char *key, mr_respstore_cb cb, void *arg);
    void *ctx;
} mr_respstore_backend_t;

/* ---- the front: ids scoped by gateway key --------------------------------- */

/* Whether `id` may name a stored response: 1 to MR_RESPSTORE_ID_MAX bytes
 * of [A-Za-z0-9_-] (client-supplied ids are checked before any lookup). */
int mr_respstore_id_ok(const char *id);

/* A new id "resp_" + 32 hex digits of `random` (16 bytes the caller drew). */
void mr_respstore_new_id(const unsigned char random[16], char out[MR_RESPSTORE_ID_MAX + 1]);

/* The backend key of (scope, id) into out; -1 when id is not ok. scope: the
 * gateway key's name ("" when the gateway has no keys). */
int mr_respstore_key(const char *scope, const char *id, char out[MR_RESPSTORE_KEY_MAX]);

int mr_respstore_put(const mr_respstore_backend_t *be, const char *scope, const char *id,
                     const char *val, size_t len, uint64_t ttl_ms, mr_respstore_cb cb, void *arg);
int mr_respstore_get(const mr_respstore_backend_t *be, const char *scope, const char *id,
                     mr_respstore_cb cb, void *arg);
int mr_respstore_del(const mr_respstore_backend_t *be, const char *scope, const char *id,
                     mr_respstore_cb cb, void *arg);

/* ---- the memory backend ----------------------------------------------------- */

typedef struct mr_respstore_mem mr_respstore_mem_t;

typedef struct mr_respstore_mem_opts {
    size_t max_entries;  /* 0: 10000 */
    size_t max_bytes;    /* keys and values; 0: 256 MiB */
    uint64_t max_ttl_ms; /* a longer (or 0) ttl is cut to it; 0: 30 days */
    /* milliseconds, any epoch; NULL: CLOCK_MONOTONIC. Any thread. */
    uint64_t (*clock)(void *arg);
    void *clock_arg;
} mr_respstore_mem_opts_t;

typedef struct mr_respstore_mem_stats {
    size_t entries, bytes;
    uint64_t evicted;   /* dropped to make room (count and bytes bounds) */
    uint64_t expired;   /* dropped at their TTL */
    uint64_t too_large; /* puts refused */
} mr_respstore_mem_stats_t;

/* NULL when out of memory. Free after every caller is done with it. */
mr_respstore_mem_t *mr_respstore_mem_new(const mr_respstore_mem_opts_t *opts);
void mr_respstore_mem_free(mr_respstore_mem_t *m);
/* The backend table over m (ctx = m). */
mr_respstore_backend_t mr_respstore_mem_backend(mr_respstore_mem_t *m);
void mr_respstore_mem_stats(mr_respstore_mem_t *m, mr_respstore_mem_stats_t *out);

#endif
