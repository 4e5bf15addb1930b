#include "meridian/status.h"

#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WINDOW_1M_MS 60000

/* One reading: cumulative values by key ("v\x1fmistral" = requests served by
 * vendor mistral so far), sorted by key for lookup. */
typedef struct entry {
    char *key;
    double v;
} entry_t;

typedef struct reading {
    entry_t *e;
    size_t n, cap;
    double unix_time;
    uint64_t mono_ms;
} reading_t;

struct mr_status {
    mr_metrics_t *m;
    pthread_mutex_t lock;
    reading_t ring[MR_STATUS_SAMPLES + 1]; /* oldest at `head` */
    size_t head, count;
    time_t started;
};

static void reading_free(reading_t *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->e[i].key);
    free(r->e);
    memset(r, 0, sizeof(*r));
}

static void reading_add(reading_t *r, char kind, const char *name, double v)
{
    size_t klen = strlen(name) + 3;
    char *k;

    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 64;
        entry_t *e = realloc(r->e, cap * sizeof(*e));
        if (!e)
            return; /* a reading missing a key shows as no traffic, not a crash */
        r->e = e;
        r->cap = cap;
    }
    if (!(k = malloc(klen)))
        return;
    k[0] = kind;
    k[1] = '\x1f';
    memcpy(k + 2, name, klen - 2);
    r->e[r->n].key = k;
    r->e[r->n].v = v;
    r->n++;
}

static int entry_cmp(const void *a, const void *b)
{
    return strcmp(((const entry_t *)a)->key, ((const entry_t *)b)->key);
}

/* Sorts and folds duplicate keys (several series feed one key). */
static void reading_seal(reading_t *r)
{
    size_t out = 0;

    if (r->n == 0)
        return;
    qsort(r->e, r->n, sizeof(*r->e), entry_cmp);
    for (size_t i = 0; i < r->n; i++) {
        if (out && strcmp(r->e[out - 1].key, r->e[i].key) == 0) {
            r->e[out - 1].v += r->e[i].v;
            free(r->e[i].key);
        } else {
            r->e[out++] = r->e[i];
        }
    }
    r->n = out;
}

static double reading_get(const reading_t *r, char kind, const char *name)
{
    char k[512];
    snprintf(k, sizeof(k), "%c\x1f%s", kind, name);
    entry_t key = {k, 0};
    const entry_t *e = r->n ? bsearch(&key, r->e, r->n, sizeof(*r->e), entry_cmp) : NULL;
    return e ? e->v : 0;
}

typedef struct visit_ctx {
    const mr_metrics_t *m;
    reading_t *r;
} visit_ctx_t;

/* requests_total {route,endpoint,provider,vendor,region,jurisdiction,status_class} */
static void visit_requests(void *ud, const char *const *v, uint32_t base)
{
    visit_ctx_t *c = ud;
    double n = (double)mr_metrics_sum(c->m, base);

    reading_add(c->r, 't', "req", n);
    if (strcmp(v[6], "5xx") == 0 || strcmp(v[6], "aborted") == 0)
        reading_add(c->r, 't', "err", n);
    if (strcmp(v[2], "none") == 0)
        return;
    reading_add(c->r, 'v', v[3], n);
    reading_add(c->r, 'j', v[5][0] ? v[5] : "unknown", n);
}

/* upstream_attempts_total {provider,vendor,region,jurisdiction,outcome} */
static void visit_attempts(void *ud, const char *const *v, uint32_t base)
{
    visit_ctx_t *c = ud;
    double n = (double)mr_metrics_sum(c->m, base);

    reading_add(c->r, 'a', v[0], n);
    /* a 4xx the client caused is the provider answering correctly */
    if (strcmp(v[4], "success") != 0 && strcmp(v[4], "http_4xx") != 0)
        reading_add(c->r, 'f', v[0], n);
}

static void visit_latency(visit_ctx_t *c, const char *const *v, uint32_t base, char sum_kind,
                          char count_kind)
{
    reading_add(c->r, sum_kind, v[1], (double)mr_metrics_sum(c->m, base + MR_METRICS_BUCKETS));
    reading_add(c->r, count_kind, v[1],
                (double)mr_metrics_sum(c->m, base + MR_METRICS_BUCKETS + 1));
}

/* request_duration_seconds {route,provider,stream} */
static void visit_duration(void *ud, const char *const *v, uint32_t base)
{
    visit_latency(ud, v, base, 'd', 'n');
}

static void visit_ttfb(void *ud, const char *const *v, uint32_t base)
{
    visit_latency(ud, v, base, 's', 'c');
}

static void take_reading(mr_status_t *s, reading_t *r)
{
    struct timespec ts;

    memset(r, 0, sizeof(*r));
    visit_ctx_t c = {s->m, r};
    clock_gettime(CLOCK_REALTIME, &ts);
    r->unix_time = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
    r->mono_ms = mr_metrics_now_ms();
    mr_metrics_visit(s->m, MR_MF_REQUESTS, visit_requests, &c);
    mr_metrics_visit(s->m, MR_MF_ATTEMPTS, visit_attempts, &c);
    mr_metrics_visit(s->m, MR_MF_DURATION, visit_duration, &c);
    mr_metrics_visit(s->m, MR_MF_TTFB, visit_ttfb, &c);
    reading_seal(r);
}

int mr_status_new(mr_metrics_t *m, mr_status_t **out)
{
    mr_status_t *s = calloc(1, sizeof(*s));

    *out = NULL;
    if (!s || pthread_mutex_init(&s->lock, NULL) != 0) {
        free(s);
        return -1;
    }
    s->m = m;
    s->started = time(NULL);
    mr_status_sample(s);
    *out = s;
    return 0;
}

void mr_status_free(mr_status_t *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < MR_STATUS_SAMPLES + 1; i++)
        reading_free(&s->ring[i]);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

void mr_status_sample(mr_status_t *s)
{
    reading_t r;

    take_reading(s, &r);
    pthread_mutex_lock(&s->lock);
    if (s->count == MR_STATUS_SAMPLES + 1) {
        reading_free(&s->ring[s->head]);
        s->ring[s->head] = r;
        s->head = (s->head + 1) % (MR_STATUS_SAMPLES + 1);
    } else {
        s->ring[(s->head + s->count++) % (MR_STATUS_SAMPLES + 1)] = r;
    }
    pthread_mutex_unlock(&s->lock);
}

static const reading_t *ring_at(const mr_status_t *s, size_t i)
{
    return &s->ring[(s->head + i) % (MR_STATUS_SAMPLES + 1)];
}

/* The newest sample at least a minute older than `now` (else the oldest). */
static const reading_t *minute_ago(const mr_status_t *s, const reading_t *now)
{
    const reading_t *best = ring_at(s, 0);
    for (size_t i = 0; i < s->count; i++) {
        const reading_t *r = ring_at(s, i);
        if (r->mono_ms + WINDOW_1M_MS <= now->mono_ms)
            best = r;
    }
    return best;
}

static json_t *ratio_or_null(double num, double den, double scale)
{
    return den > 0 ? json_real(num / den * scale) : json_null();
}

typedef struct target_ctx {
    const mr_metrics_t *m;
    const char *provider;
    json_t *targets;
    int worst; /* 0 closed, 2 half-open, 1 open: ranked open > half_open > closed */
    double inflight;
} target_ctx_t;

static int state_rank(int st)
{
    return st == 1 ? 2 : st == 2 ? 1 : 0;
}

static void visit_breaker(void *ud, const char *const *v, uint32_t base)
{
    static const char *const names[] = {"closed", "open", "half_open"};
    target_ctx_t *c = ud;
    unsigned n[3];

    if (strcmp(v[0], c->provider) != 0)
        return;
    mr_metrics_breaker_counts(c->m, base, n);
    int st = n[1] ? 1 : n[2] ? 2 : 0;
    if (state_rank(st) > state_rank(c->worst))
        c->worst = st;
    json_array_append_new(c->targets, json_pack("{s:s,s:s,s:I,s:I}", "model", v[1], "state",
                                                names[st], "open_workers", (json_int_t)n[1],
                                                "half_open_workers", (json_int_t)n[2]));
}

static void visit_inflight(void *ud, const char *const *v, uint32_t base)
{
    target_ctx_t *c = ud;
    if (strcmp(v[0], c->provider) == 0)
        c->inflight += (double)mr_metrics_sum(c->m, base);
}

static json_t *provider_json(mr_status_t *s, const mr_provider_t *p, const reading_t *now,
                             const reading_t *then)
{
    static const char *const names[] = {"closed", "open", "half_open"};
    target_ctx_t c = {s->m, p->name, json_array(), 0, 0};
    double att = reading_get(now, 'a', p->name) - reading_get(then, 'a', p->name);
    double fail = reading_get(now, 'f', p->name) - reading_get(then, 'f', p->name);
    double dsum = reading_get(now, 'd', p->name) - reading_get(then, 'd', p->name);
    double dn = reading_get(now, 'n', p->name) - reading_get(then, 'n', p->name);
    double tsum = reading_get(now, 's', p->name) - reading_get(then, 's', p->name);
    double tn = reading_get(now, 'c', p->name) - reading_get(then, 'c', p->name);

    mr_metrics_visit(s->m, MR_MF_BREAKER, visit_breaker, &c);
    mr_metrics_visit(s->m, MR_MF_INFLIGHT, visit_inflight, &c);
    json_t *o = json_object();
    json_object_set_new(o, "name", json_string(p->name));
    json_object_set_new(o, "vendor", json_string(p->vendor));
    json_object_set_new(o, "region", json_string(p->region));
    json_object_set_new(o, "jurisdiction", json_string(p->jurisdiction));
    json_object_set_new(o, "kind", json_string(mr_provider_kind_name(p->kind)));
    json_object_set_new(o, "enabled", json_boolean(p->enabled));
    json_object_set_new(o, "disabled_reason",
                        p->disabled_reason ? json_string(p->disabled_reason) : json_null());
    json_object_set_new(o, "state", json_string(names[c.worst]));
    json_object_set_new(o, "targets", c.targets);
    json_object_set_new(o, "inflight", json_integer((json_int_t)c.inflight));
    json_object_set_new(o, "requests_1m", json_integer((json_int_t)att));
    json_object_set_new(o, "errors_1m", json_integer((json_int_t)fail));
    json_object_set_new(o, "error_rate_1m", ratio_or_null(fail, att, 1));
    json_object_set_new(o, "latency_ms_1m", ratio_or_null(dsum, dn, 1e-3));
    json_object_set_new(o, "ttfb_ms_1m", ratio_or_null(tsum, tn, 1e-3));
    return o;
}

/* Requests per step for every group of `kind` ('v' vendor, 'j' jurisdiction):
 * differences between consecutive readings, the last one against now. */
static json_t *group_series(const reading_t *const *pts, size_t n, char kind)
{
    json_t *groups = json_object();
    const reading_t *last = pts[n - 1];

    for (size_t i = 0; i < last->n; i++) {
        const char *k = last->e[i].key;
        if (k[0] != kind)
            continue;
        json_t *arr = json_array();
        for (size_t j = 1; j < n; j++) {
            double d = reading_get(pts[j], kind, k + 2) - reading_get(pts[j - 1], kind, k + 2);
            json_array_append_new(arr, json_integer((json_int_t)(d > 0 ? d : 0)));
        }
        json_object_set_new(groups, k + 2, arr);
    }
    return groups;
}

char *mr_status_json(mr_status_t *s, const mr_config_t *cfg, json_t *extra, size_t *len)
{
    reading_t now;
    const reading_t *pts[MR_STATUS_SAMPLES + 2];
    size_t n = 0;
    char *out;

    take_reading(s, &now);
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < s->count; i++)
        pts[n++] = ring_at(s, i);
    pts[n++] = &now;
    const reading_t *then = minute_ago(s, &now);
    double dt = (double)(now.mono_ms - then->mono_ms) / 1000.0;
    double req = reading_get(&now, 't', "req") - reading_get(then, 't', "req");
    double err = reading_get(&now, 't', "err") - reading_get(then, 't', "err");

    json_t *root = json_object(), *providers = json_array(), *t = json_array();
    json_object_set_new(root, "version", json_string(MERIDIAN_VERSION));
    json_object_set_new(root, "now", json_real(now.unix_time));
    json_object_set_new(root, "uptime_s", json_integer((json_int_t)(time(NULL) - s->started)));
    json_object_set_new(root, "workers", json_integer(mr_metrics_workers(s->m)));
    json_object_set_new(root, "step_s", json_integer(MR_STATUS_STEP_MS / 1000));
    json_object_set_new(root, "totals",
                        json_pack("{s:I,s:I,s:f,s:o}", "requests_1m", (json_int_t)req, "errors_1m",
                                  (json_int_t)err, "rps_1m", dt > 0 ? req / dt : 0.0,
                                  "error_rate_1m", ratio_or_null(err, req, 1)));
    for (size_t i = 0; i < cfg->n_providers; i++)
        json_array_append_new(providers, provider_json(s, &cfg->providers[i], &now, then));
    json_object_set_new(root, "providers", providers);
    for (size_t i = 1; i < n; i++)
        json_array_append_new(t, json_integer((json_int_t)pts[i]->unix_time));
    json_t *series = json_object();
    json_object_set_new(series, "t", t);
    json_object_set_new(series, "vendor", group_series(pts, n, 'v'));
    json_object_set_new(series, "jurisdiction", group_series(pts, n, 'j'));
    json_object_set_new(root, "series", series);
    if (extra)
        json_object_update(root, extra);
    pthread_mutex_unlock(&s->lock);
    reading_free(&now);
    out = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(16));
    json_decref(root);
    *len = out ? strlen(out) : 0;
    return out;
}
