/*
 * golden_util — what the golden tests share (test_golden.c,
 * test_golden_conv.c): fixture files, the dialects under test, the adapter
 * input of a case, and SSE text split into events. Static functions of a
 * test-only header: each test executable includes it once.
 */
#ifndef MERIDIAN_TEST_GOLDEN_UTIL_H
#define MERIDIAN_TEST_GOLDEN_UTIL_H

#include "meridian/adapter.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GOLDEN_DIR MERIDIAN_SOURCE_DIR "/tests/golden"
#define OUT_LIMIT (8u * 1024 * 1024)
#define MAX_CASES 256

static inline int update_mode(void)
{
    const char *v = getenv("MERIDIAN_GOLDEN_UPDATE");
    return v && *v && strcmp(v, "0") != 0;
}

/* ---------------------------------------------------------------- files */

static inline char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t cap = 0, n = 0;

    if (len)
        *len = 0;
    if (!f)
        return NULL;
    for (;;) {
        if (n + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 8192;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0)
            break;
    }
    fclose(f);
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

static inline void write_file(const char *path, const char *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    fclose(f);
}

static inline void write_json(const char *path, const json_t *j)
{
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15));
    assert_non_null(s);
    size_t n = strlen(s);
    s = realloc(s, n + 2);
    assert_non_null(s);
    s[n] = '\n';
    write_file(path, s, n + 1);
    free(s);
}

static inline json_t *load_json(const char *path)
{
    json_error_t e;
    json_t *j = json_load_file(path, JSON_REJECT_DUPLICATES, &e);
    if (!j)
        fail_msg("%s: %s (line %d)", path, e.text, e.line);
    return j;
}

static inline int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Case names in dir (files ending in `suffix`, suffix removed), sorted. */
static inline size_t list_cases(const char *dir, const char *suffix, char **names)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    size_t n = 0, sl = strlen(suffix);

    if (!d)
        return 0;
    while ((e = readdir(d)) && n < MAX_CASES) {
        size_t l = strlen(e->d_name);
        if (l > sl && strcmp(e->d_name + l - sl, suffix) == 0) {
            names[n] = strndup(e->d_name, l - sl);
            assert_non_null(names[n]);
            n++;
        }
    }
    closedir(d);
    qsort(names, n, sizeof(*names), cmp_str);
    return n;
}

static inline void free_cases(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
}

/* ---------------------------------------------------------------- set-up */

typedef struct dialect {
    const char *name;
    const mr_adapter_t *ad;
    mr_provider_t prov;
} dialect_t;

static inline dialect_t *dialect(const char *name)
{
    static const struct {
        const char *name;
        const mr_adapter_t *ad;
        mr_provider_kind_t kind;
        const char *base;
    } table[] = {
        {"anthropic", &mr_adapter_anthropic, MR_KIND_ANTHROPIC, "https://api.anthropic.test/v1"},
        {"gemini", &mr_adapter_gemini, MR_KIND_GEMINI, "https://gemini.test/v1beta"},
        {"azure", &mr_adapter_azure, MR_KIND_AZURE, "https://res.openai.azure.test"},
    };
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        if (strcmp(table[i].name, name) != 0)
            continue;
        dialect_t *d = calloc(1, sizeof(*d));
        assert_non_null(d);
        d->name = table[i].name;
        d->ad = table[i].ad;
        d->prov.name = (char *)"test-provider";
        d->prov.kind = table[i].kind;
        d->prov.base_url = (char *)(uintptr_t)table[i].base;
        d->prov.api_key = (char *)"test-key";
        d->prov.vendor = (char *)"test-vendor";
        d->prov.region = (char *)"";
        d->prov.jurisdiction = (char *)"";
        d->prov.enabled = true;
        return d;
    }
    fail_msg("unknown dialect %s", name);
    return NULL;
}

static inline mr_endpoint_t endpoint_of(const char *name)
{
    if (strncmp(name, "embed", 5) == 0)
        return MR_EP_EMBEDDINGS;
    if (strncmp(name, "completions", 11) == 0)
        return MR_EP_COMPLETIONS;
    return MR_EP_CHAT;
}

/* The target model of a case: <dir>/<case>.target, else "test-model". */
static inline const char *case_target(const char *dir, const char *name)
{
    static char model[256];
    char path[1024];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s.target", dir, name);
    if (!(f = fopen(path, "r")))
        return "test-model";
    if (!fgets(model, sizeof(model), f))
        model[0] = '\0';
    fclose(f);
    model[strcspn(model, "\n")] = '\0';
    return model;
}

/* Fills *in from the client body `json` (borrowed; raw text in `raw`). */
static inline void make_in(mr_adapter_in_t *in, const dialect_t *d, const char *name,
                           const json_t *json, const char *raw, size_t raw_len)
{
    memset(in, 0, sizeof(*in));
    in->provider = &d->prov;
    in->endpoint = endpoint_of(name);
    in->model = "test-model";
    in->stream = json_is_true(json_object_get(json, "stream"));
    in->client_wants_usage =
        json_is_true(json_object_get(json_object_get(json, "stream_options"), "include_usage"));
    in->body = raw;
    in->body_len = raw_len;
    in->json = json;
    in->created = 1700000000;
}

/* The client request of a response/stream case: <case>.req.json or a default. */
static inline json_t *case_request(const char *dir, const char *name, int stream, char **raw)
{
    char path[1024];
    json_t *j;

    if (snprintf(path, sizeof(path), "%s/%s.req.json", dir, name) >= (int)sizeof(path))
        fail_msg("path too long: %s/%s", dir, name);
    j = json_load_file(path, 0, NULL);
    if (!j)
        j = stream ? json_pack("{s:s, s:[], s:b}", "model", "m", "messages", "stream", 1)
                   : json_pack("{s:s, s:[]}", "model", "m", "messages");
    *raw = json_dumps(j, JSON_COMPACT);
    return j;
}

static inline void free_req(mr_adapter_req_t *r)
{
    free(r->url);
    curl_slist_free_all(r->headers);
    free(r->body);
    memset(r, 0, sizeof(*r));
}

/* Splits an SSE text into its events' data (LF-separated, as we write). */
static inline json_t *events_of(const char *p, size_t n, const char *what)
{
    json_t *arr = json_array();
    const char *end = p + n;

    while (p < end) {
        const char *sep = strstr(p, "\n\n");
        if (!sep || sep > end)
            fail_msg("%s: event without a blank line: %.*s", what, (int)(end - p), p);
        if (strncmp(p, "data: ", 6) != 0)
            fail_msg("%s: event not starting with \"data: \": %.*s", what, (int)(sep - p), p);
        const char *d = p + 6;
        if (memchr(d, '\n', (size_t)(sep - d)))
            fail_msg("%s: multi-line event: %.*s", what, (int)(sep - p), p);
        if ((size_t)(sep - d) == 6 && memcmp(d, "[DONE]", 6) == 0) {
            json_array_append_new(arr, json_string("[DONE]"));
        } else {
            json_error_t e;
            json_t *j = json_loadb(d, (size_t)(sep - d), JSON_REJECT_DUPLICATES, &e);
            if (!json_is_object(j))
                fail_msg("%s: event is not a JSON object (%s): %.*s", what, e.text, (int)(sep - d),
                         d);
            json_array_append_new(arr, j);
        }
        p = sep + 2;
    }
    return arr;
}

#endif
