#include "meridian/reqlog.h"

#include "meridian/json_span.h"
#include "meridian/log.h"
#include "meridian/logsink.h"
#include "meridian/sha256.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SCRATCH_KEEP (64 * 1024) /* a scratch buffer grown past this (bodies) is let go */

struct mr_reqlog {
    mr_logsink_t *access;
    mr_logsink_t *audit;
    int bodies;
    mr_buf_t *scratch; /* one line buffer per worker */
    unsigned n_workers;
};

int mr_reqlog_open(const mr_config_t *cfg, unsigned n_workers, mr_reqlog_t **out, char *err,
                   size_t errlen)
{
    mr_reqlog_t *l = calloc(1, sizeof(*l));

    *out = NULL;
    if (!l || !(l->scratch = calloc(n_workers, sizeof(*l->scratch)))) {
        free(l);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    l->n_workers = n_workers;
    for (unsigned i = 0; i < n_workers; i++)
        mr_buf_init(&l->scratch[i], SIZE_MAX);
    if (cfg->access_log) {
        mr_logsink_opts_t o = {
            .path = cfg->access_log, .name = "access_log", .n_producers = n_workers};
        if (mr_logsink_open(&o, &l->access, err, errlen) < 0) {
            mr_reqlog_close(l);
            return -1;
        }
    }
    if (cfg->audit.path) {
        mr_logsink_opts_t o = {.path = cfg->audit.path,
                               .name = "audit.path",
                               .chain = 1,
                               .queue_bytes = cfg->audit.queue_bytes,
                               .n_producers = n_workers};
        if (mr_logsink_open(&o, &l->audit, err, errlen) < 0) {
            mr_reqlog_close(l);
            return -1;
        }
        l->bodies = cfg->audit.bodies;
    }
    *out = l;
    return 0;
}

void mr_reqlog_close(mr_reqlog_t *l)
{
    if (!l)
        return;
    mr_logsink_close(l->access);
    mr_logsink_close(l->audit);
    for (unsigned i = 0; i < l->n_workers; i++)
        mr_buf_free(&l->scratch[i]);
    free(l->scratch);
    free(l);
}

void mr_reqlog_reopen(mr_reqlog_t *l)
{
    if (l->access)
        mr_logsink_reopen(l->access);
    if (l->audit)
        mr_logsink_reopen(l->audit);
}

int mr_reqlog_wants_access(const mr_reqlog_t *l)
{
    return l->access != NULL;
}

int mr_reqlog_wants_audit(const mr_reqlog_t *l)
{
    return l->audit != NULL;
}

int mr_reqlog_wants_bodies(const mr_reqlog_t *l)
{
    return l->audit && l->bodies;
}

/* ---- a small JSON writer: the records are flat and the hot path should
 * not build a jansson tree per request ---- */

static void put(mr_buf_t *b, const char *s)
{
    mr_buf_append_force(b, s, strlen(s));
}

static void put_str(mr_buf_t *b, const char *s, size_t n)
{
    char chunk[1024];
    size_t used;

    put(b, "\"");
    while (n) {
        size_t k = mr_json_escape(s, n, chunk, sizeof(chunk), &used);
        mr_buf_append_force(b, chunk, k);
        s += used;
        n -= used;
    }
    put(b, "\"");
}

/* Standard base64 with padding (RFC 4648 section 4), quoted. */
static void put_base64(mr_buf_t *b, const char *s, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *p = (const unsigned char *)s;
    char chunk[1024];
    size_t o = 0;

    put(b, "\"");
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0) |
                     (i + 2 < n ? p[i + 2] : 0);
        if (o + 4 > sizeof(chunk)) {
            mr_buf_append_force(b, chunk, o);
            o = 0;
        }
        chunk[o++] = tab[v >> 18 & 63];
        chunk[o++] = tab[v >> 12 & 63];
        chunk[o++] = (char)(i + 1 < n ? tab[v >> 6 & 63] : '=');
        chunk[o++] = (char)(i + 2 < n ? tab[v & 63] : '=');
    }
    mr_buf_append_force(b, chunk, o);
    put(b, "\"");
}

/* `,"key":` (no comma for the first member) */
static void key(mr_buf_t *b, const char *k, int *first)
{
    if (!*first)
        put(b, ",");
    *first = 0;
    put(b, "\"");
    put(b, k);
    put(b, "\":");
}

static void kv_str(mr_buf_t *b, const char *k, const char *v, int *first)
{
    key(b, k, first);
    if (v)
        put_str(b, v, strlen(v));
    else
        put(b, "null");
}

/* `num` is a JSON number already formatted by the caller. */
static void kv_num(mr_buf_t *b, const char *k, const char *num, int *first)
{
    key(b, k, first);
    put(b, num);
}

static void kv_int(mr_buf_t *b, const char *k, long long v, int *first)
{
    char num[32];
    key(b, k, first);
    snprintf(num, sizeof(num), "%lld", v);
    put(b, num);
}

static void kv_bool(mr_buf_t *b, const char *k, int v, int *first)
{
    key(b, k, first);
    put(b, v ? "true" : "false");
}

static void kv_hash(mr_buf_t *b, const char *k, const uint8_t *d, int *first)
{
    char hex[MR_SHA256_HEX_LEN + 1];
    if (!d) {
        kv_str(b, k, NULL, first);
        return;
    }
    mr_sha256_hex(d, hex);
    kv_str(b, k, hex, first);
}

/*
 * A body, byte for byte: `name` as a JSON string when the bytes are UTF-8
 * without NUL (what any JSON body is), else `name`_base64. Either way a
 * reader gets the exact bytes back, so a record never fails to be JSON and
 * its bodies still match their digests.
 */
static void kv_body(mr_buf_t *b, const char *name, const char *p, size_t n, int *first)
{
    char k[32];

    if (mr_utf8_valid_len(p, n) == n && !memchr(p, '\0', n)) {
        key(b, name, first);
        put_str(b, p, n);
        return;
    }
    snprintf(k, sizeof(k), "%s_base64", name);
    key(b, k, first);
    put_base64(b, p, n);
}

/* n, less a multi-byte character the end of p[0..n) cut short: a copy cut
 * at a byte count ends on a character boundary. */
static size_t char_boundary(const char *p, size_t n)
{
    size_t i = n;

    while (i > 0 && n - i < 3 && ((unsigned char)p[i - 1] & 0xC0) == 0x80)
        i--;
    if (i == 0 || (unsigned char)p[i - 1] < 0xC0)
        return n; /* ends in ASCII or only continuation bytes: nothing to drop */
    /* p[i - 1] leads a sequence of `want` bytes; n - (i - 1) of them are here */
    unsigned char lead = (unsigned char)p[i - 1];
    size_t want = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
    return n - (i - 1) < want ? i - 1 : n;
}

static void kv_time(mr_buf_t *b, double unix_time, int *first)
{
    char ts[64];
    struct tm tm;
    time_t sec = (time_t)unix_time;
    int ms = (int)((unix_time - (double)sec) * 1000);

    gmtime_r(&sec, &tm);
    snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms < 0 ? 0 : ms % 1000);
    kv_str(b, "time", ts, first);
}

static const char *route_of(const mr_request_rec_t *r)
{
    if (!r->plan)
        return NULL;
    return r->plan->route ? r->plan->route->name : "direct";
}

static void kv_ms(mr_buf_t *b, const char *k, uint64_t us, int *first)
{
    char num[48];
    if (us == UINT64_MAX) {
        kv_str(b, k, NULL, first);
        return;
    }
    snprintf(num, sizeof(num), "%.3f", (double)us / 1000.0);
    kv_num(b, k, num, first);
}

static void kv_tokens(mr_buf_t *b, const char *k, long v, int *first)
{
    if (v < 0)
        kv_str(b, k, NULL, first);
    else
        kv_int(b, k, v, first);
}

static void kv_cost(mr_buf_t *b, double cost, int *first)
{
    char num[48];
    if (cost < 0) {
        kv_str(b, "cost_usd", NULL, first);
        return;
    }
    snprintf(num, sizeof(num), "%.9g", cost);
    kv_num(b, "cost_usd", num, first);
}

/* The counts (null when unknown), where they come from, and the cost. */
static void usage_members(mr_buf_t *b, const mr_request_rec_t *r, int *first)
{
    kv_tokens(b, "prompt_tokens", r->usage.prompt_tokens, first);
    kv_tokens(b, "completion_tokens", r->usage.completion_tokens, first);
    kv_tokens(b, "cached_tokens", r->usage.cached_tokens, first);
    kv_tokens(b, "cache_write_tokens", r->usage.cache_write_tokens, first);
    kv_tokens(b, "reasoning_tokens", r->usage.reasoning_tokens, first);
    kv_str(b, "usage", r->usage_source, first);
    kv_cost(b, r->cost_usd, first);
    kv_str(b, "outcome", r->outcome, first);
}

/* "{" and the members both records start with. */
static void request_head(mr_buf_t *b, const mr_request_rec_t *r, int *first)
{
    put(b, "{");
    kv_time(b, r->unix_time, first);
    kv_str(b, "id", r->id, first);
    kv_str(b, "key", r->key, first);
    kv_str(b, "endpoint", r->endpoint, first);
    kv_str(b, "dialect", r->dialect, first);
    kv_str(b, "model", r->model, first);
    kv_str(b, "route", route_of(r), first);
}

/* Where a request's data went: a provider, the model asked of it, and the
 * provider's vendor, region and jurisdiction. */
static void provider_members(mr_buf_t *b, const mr_provider_t *p, const char *model, int *first)
{
    kv_str(b, "provider", p->name, first);
    kv_str(b, "model", model, first);
    kv_str(b, "vendor", p->vendor, first);
    kv_str(b, "region", p->region, first);
    kv_str(b, "jurisdiction", p->jurisdiction, first);
}

static void access_line(mr_buf_t *b, const mr_request_rec_t *r)
{
    int first = 1;
    const mr_provider_t *p = r->served_by;

    request_head(b, r, &first);
    kv_str(b, "policy", r->plan && r->plan->policy_label[0] ? r->plan->policy_label : NULL, &first);
    kv_bool(b, "stream", r->stream, &first);
    kv_int(b, "status", r->status, &first);
    kv_int(b, "attempts", r->n_attempts, &first);
    kv_str(b, "provider", p ? p->name : NULL, &first);
    kv_str(b, "vendor", p ? p->vendor : NULL, &first);
    kv_str(b, "region", p ? p->region : NULL, &first);
    kv_str(b, "jurisdiction", p ? p->jurisdiction : NULL, &first);
    kv_str(b, "upstream_model", p ? r->served_model : NULL, &first);
    kv_ms(b, "latency_ms", r->total_us, &first);
    kv_ms(b, "ttfb_ms", r->ttfb_us, &first);
    usage_members(b, r, &first);
    put(b, "}");
}

static void policy_member(mr_buf_t *b, const char *k, const mr_policy_t *pol, int *first)
{
    int f = 1;
    key(b, k, first);
    if (!pol) {
        put(b, "null");
        return;
    }
    put(b, "{");
    kv_str(b, "name", pol->name, &f);
    kv_str(b, "sha256", pol->hash, &f);
    put(b, "}");
}

/* What an attempt's target did not get: "dropped" (members) and, when
 * the client sent flags, "betas_dropped" (anthropic-beta), as arrays. */
static void dropped_members(mr_buf_t *b, const mr_attempt_rec_t *a, int *first)
{
    const char *f = a->betas_dropped;

    key(b, "dropped", first);
    put(b, "[");
    for (unsigned i = 0; i < a->n_dropped; i++) {
        put(b, i ? "," : "");
        put_str(b, a->dropped[i], strlen(a->dropped[i]));
    }
    put(b, "]");
    if (!*f)
        return;
    key(b, "betas_dropped", first);
    put(b, "[");
    for (int n = 0; *f; n++) {
        size_t len = strcspn(f, ",");
        put(b, n ? "," : "");
        put_str(b, f, len);
        f += len + (f[len] == ',');
    }
    put(b, "]");
}

static unsigned signatures_dropped(const mr_request_rec_t *r)
{
    unsigned n = 0;
    for (unsigned i = 0; i < r->n_attempts; i++)
        n += r->attempts[i].signatures_dropped;
    return n;
}

static void audit_record(mr_buf_t *b, const mr_request_rec_t *r)
{
    int first = 1;
    const mr_plan_t *plan = r->plan;

    request_head(b, r, &first);
    kv_bool(b, "stream", r->stream, &first);
    key(b, "policy", &first);
    if (!plan) {
        put(b, "null");
    } else {
        int f = 1;
        put(b, "{");
        kv_str(b, "label", plan->policy_label[0] ? plan->policy_label : NULL, &f);
        policy_member(b, "key_policy", plan->key_policy, &f);
        policy_member(b, "chosen_policy", plan->chosen_policy, &f);
        kv_bool(b, "chosen_by_header", plan->chosen_by_header, &f);
        kv_bool(b, "request_layer", plan->request_layer, &f);
        kv_str(b, "strategy", mr_strategy_name(plan->strategy), &f);
        put(b, "}");
    }
    key(b, "excluded", &first);
    put(b, "[");
    for (size_t i = 0; plan && i < plan->n_excluded; i++) {
        const mr_exclusion_t *x = &plan->excluded[i];
        int f = 1;
        put(b, i ? ",{" : "{");
        kv_str(b, "provider", x->provider->name, &f);
        kv_str(b, "model", x->model, &f);
        kv_str(b, "vendor", x->provider->vendor, &f);
        kv_str(b, "jurisdiction", x->provider->jurisdiction, &f);
        kv_str(b, "layer", x->policy, &f);
        kv_str(b, "rule", x->rule, &f);
        kv_str(b, "reason", x->reason, &f);
        put(b, "}");
    }
    put(b, "]");
    if (plan && plan->n_excluded_total > plan->n_excluded)
        kv_int(b, "excluded_not_listed", (long long)(plan->n_excluded_total - plan->n_excluded),
               &first);
    key(b, "attempts", &first);
    put(b, "[");
    for (unsigned i = 0; i < r->n_attempts; i++) {
        const mr_attempt_rec_t *a = &r->attempts[i];
        int f = 1;
        put(b, i ? ",{" : "{");
        provider_members(b, a->provider, a->model, &f);
        if (a->status)
            kv_int(b, "status", a->status, &f);
        else
            kv_str(b, "status", NULL, &f);
        kv_str(b, "error", a->error[0] ? a->error : NULL, &f);
        kv_str(b, "outcome", mr_attempt_outcome_name(a->outcome), &f);
        kv_str(b, "failure", a->failure ? mr_failure_name(a->failure) : NULL, &f);
        kv_int(b, "ms", a->ms, &f);
        kv_int(b, "signatures_dropped", a->signatures_dropped, &f);
        dropped_members(b, a, &f);
        if (a->resends)
            kv_int(b, "resends", a->resends, &f);
        put(b, "}");
    }
    put(b, "]");
    kv_int(b, "signatures_dropped", signatures_dropped(r), &first);
    kv_int(b, "skipped_circuit_open", r->skipped_open, &first);
    kv_int(b, "skipped_max_inflight", r->skipped_busy, &first);
    key(b, "served", &first);
    if (r->served_by) {
        int f = 1;
        put(b, "{");
        provider_members(b, r->served_by, r->served_model, &f);
        put(b, "}");
    } else {
        put(b, "null");
    }
    kv_int(b, "status", r->status, &first);
    usage_members(b, r, &first);
    kv_ms(b, "latency_ms", r->total_us, &first);
    kv_hash(b, "request_sha256", r->request_sha256, &first);
    kv_hash(b, "response_sha256", r->response_sha256, &first);
    if (r->request_body)
        kv_body(b, "request_body", r->request_body, r->request_len, &first);
    if (r->response_body) {
        uint64_t sent = r->response_bytes > r->response_len ? r->response_bytes : r->response_len;
        int cut = sent > r->response_len;
        kv_body(b, "response_body", r->response_body,
                cut ? char_boundary(r->response_body, r->response_len) : r->response_len, &first);
        kv_int(b, "response_bytes", (long long)sent, &first);
        kv_bool(b, "response_body_truncated", cut, &first);
    }
    put(b, "}");
}

void mr_reqlog_write(mr_reqlog_t *l, unsigned worker, const mr_request_rec_t *rec)
{
    mr_buf_t *b = &l->scratch[worker];

    if (l->access) {
        mr_buf_reset(b);
        access_line(b, rec);
        mr_logsink_write(l->access, worker, mr_buf_ptr(b), mr_buf_len(b));
    }
    if (l->audit) {
        mr_buf_reset(b);
        audit_record(b, rec);
        /* The sink counted it in meridian_audit_dropped_total; this line
         * says which request has no provenance record. */
        int rc = mr_logsink_write(l->audit, worker, mr_buf_ptr(b), mr_buf_len(b));
        if (rc < 0)
            mr_error("request %s: its audit record (%zu bytes) was dropped: %s",
                     rec->id ? rec->id : "-", mr_buf_len(b),
                     rc == -1 ? "the audit queue is full or smaller than the record "
                                "(audit.queue_bytes)"
                              : "the sink refused it as invalid (a bug: please report it)");
    }
    if (mr_buf_len(b) > SCRATCH_KEEP) {
        /* a record with bodies: do not keep megabytes per worker */
        mr_buf_free(b);
        mr_buf_init(b, SIZE_MAX);
    }
}

static void sink_metrics(mr_buf_t *out, const char *name, const mr_logsink_t *s)
{
    mr_logsink_stats_t st = {0, 0, 0};
    char metric[96], help[224];
    const char *what[] = {"written", "dropped", "write_errors"};

    if (s)
        mr_logsink_stats(s, &st);
    uint64_t v[] = {st.written, st.dropped, st.write_errors};
    for (size_t i = 0; i < 3; i++) {
        snprintf(metric, sizeof(metric), "meridian_%s_%s_total", name, what[i]);
        snprintf(help, sizeof(help),
                 "# HELP %s %s records %s (a full queue or a refused record drops and counts).\n",
                 metric, name, what[i]);
        mr_buf_append_force(out, help, strlen(help));
        snprintf(help, sizeof(help), "# TYPE %s counter\n", metric);
        mr_buf_append_force(out, help, strlen(help));
        mr_metrics_write_sample(out, metric, NULL, (double)v[i]);
    }
}

void mr_reqlog_metrics(const mr_reqlog_t *l, mr_buf_t *out)
{
    sink_metrics(out, "access_log", l->access);
    sink_metrics(out, "audit", l->audit);
}
