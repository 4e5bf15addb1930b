#include "meridian/metrics.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CHUNK_SLOTS 4096u
#define MAX_CHUNKS (MR_METRICS_MAX_SLOTS / CHUNK_SLOTS)
#define SERIES_BLOCK 1024u
#define MAX_SERIES (MR_METRICS_MAX_SLOTS / 2)
#define MAX_BLOCKS (MAX_SERIES / SERIES_BLOCK)
#define MAX_LABELS 7
#define UNRESOLVED 0u
#define NOWHERE UINT32_MAX /* resolution failed: updates go to slot 0 */

/* Histogram upper bounds in microseconds; +Inf follows. */
static const uint64_t bucket_us[] = {500,     1000,     2500,     5000,    10000,   25000,
                                     50000,   100000,   250000,   500000,  1000000, 2500000,
                                     5000000, 10000000, 30000000, 60000000};
#define N_BUCKETS MR_METRICS_BUCKETS
_Static_assert(sizeof(bucket_us) / sizeof(bucket_us[0]) + 1 == N_BUCKETS, "bucket bounds");
#define HIST_SLOTS (N_BUCKETS + 2) /* buckets, sum (µs), count */

typedef enum { K_COUNTER, K_GAUGE, K_HISTOGRAM, K_COST, K_BREAKER } kind_t;

typedef struct family {
    const char *name;
    const char *help;
    kind_t kind;
    unsigned n_labels;
    const char *labels[MAX_LABELS];
} family_t;

static const family_t families[MR_MF_COUNT] = {
    [MR_MF_REQUESTS] = {"meridian_requests_total",
                        "Client API requests by route, endpoint, serving provider and status "
                        "class.",
                        K_COUNTER,
                        7,
                        {"route", "endpoint", "provider", "vendor", "region", "jurisdiction",
                         "status_class"}},
    [MR_MF_DURATION] = {"meridian_request_duration_seconds",
                        "Time from a request's arrival to its last response byte.",
                        K_HISTOGRAM,
                        3,
                        {"route", "provider", "stream"}},
    [MR_MF_TTFB] = {"meridian_time_to_first_byte_seconds",
                    "Time from a request's arrival to the first response byte sent (streams: the "
                    "first token).",
                    K_HISTOGRAM,
                    3,
                    {"route", "provider", "stream"}},
    [MR_MF_ATTEMPTS] = {"meridian_upstream_attempts_total",
                        "Upstream attempts by provider and outcome.",
                        K_COUNTER,
                        5,
                        {"provider", "vendor", "region", "jurisdiction", "outcome"}},
    [MR_MF_FALLBACKS] = {"meridian_fallbacks_total",
                         "Failed attempts after which another candidate was tried.",
                         K_COUNTER,
                         3,
                         {"route", "provider", "reason"}},
    [MR_MF_SKIPPED] = {"meridian_candidates_skipped_total",
                       "Candidates not tried: circuit open, provider at max_inflight or over "
                       "its budget.",
                       K_COUNTER,
                       2,
                       {"provider", "reason"}},
    [MR_MF_TOKENS] = {"meridian_tokens_total",
                      "Tokens reported by upstream usage.",
                      K_COUNTER,
                      2,
                      {"provider", "type"}},
    [MR_MF_COST] = {"meridian_cost_usd_total",
                    "Estimated cost in US dollars from the targets' configured prices.",
                    K_COST,
                    1,
                    {"provider"}},
    [MR_MF_BREAKER] = {"meridian_breaker_state",
                       "1 for the state the process's circuit breaker for the target is in.",
                       K_BREAKER,
                       2,
                       {"provider", "model"}},
    [MR_MF_INFLIGHT] =
        {"meridian_upstream_inflight", "Upstream transfers in progress.", K_GAUGE, 1, {"provider"}},
    [MR_MF_DENIALS] = {"meridian_policy_denials_total",
                       "Requests refused because a policy excluded every candidate.",
                       K_COUNTER,
                       1,
                       {"policy"}},
    [MR_MF_RETRY_DENIED] = {"meridian_retry_budget_denied_total",
                            "Failovers refused by the retry budget.",
                            K_COUNTER,
                            0,
                            {NULL}},
    [MR_MF_RESENDS] = {"meridian_upstream_resends_total",
                       "Requests libcurl sent a second time on a fresh connection after a reused "
                       "one died before answering (invisible to breakers and retry budget).",
                       K_COUNTER,
                       1,
                       {"provider"}},
};

static unsigned family_slots(const family_t *f)
{
    return f->kind == K_HISTOGRAM ? HIST_SLOTS : 1;
}

typedef struct series {
    mr_metric_family_t family;
    uint32_t base;
    char *values[MAX_LABELS]; /* owned */
} series_t;

struct mr_metrics {
    unsigned n_workers;
    time_t started;
    pthread_mutex_t lock;         /* series creation */
    uint64_t *chunks[MAX_CHUNKS]; /* [worker][CHUNK_SLOTS], published with release stores */
    series_t *blocks[MAX_BLOCKS];
    uint32_t n_series;  /* published with a release store after the series is complete */
    uint32_t next_slot; /* under lock */
    uint32_t *index;    /* open addressing: series number + 1, 0 = empty; under lock */
    size_t index_cap;
    uint64_t dropped; /* series refused for want of slots */
};

static uint64_t *slot_ptr(const mr_metrics_t *m, unsigned w, uint32_t slot)
{
    uint64_t *c = __atomic_load_n(&m->chunks[slot / CHUNK_SLOTS], __ATOMIC_ACQUIRE);
    return c ? &c[(size_t)w * CHUNK_SLOTS + slot % CHUNK_SLOTS] : NULL;
}

static series_t *series_at(const mr_metrics_t *m, uint32_t i)
{
    return &m->blocks[i / SERIES_BLOCK][i % SERIES_BLOCK];
}

int mr_metrics_new(unsigned n_workers, mr_metrics_t **out)
{
    mr_metrics_t *m = calloc(1, sizeof(*m));

    *out = NULL;
    if (!m || n_workers == 0)
        goto fail;
    m->n_workers = n_workers;
    m->started = time(NULL);
    m->next_slot = 1; /* slot 0 takes the updates of series that could not be made */
    m->index_cap = 1024;
    m->index = calloc(m->index_cap, sizeof(*m->index));
    m->chunks[0] = calloc((size_t)n_workers * CHUNK_SLOTS, sizeof(uint64_t));
    if (!m->index || !m->chunks[0] || pthread_mutex_init(&m->lock, NULL) != 0)
        goto fail;
    *out = m;
    return 0;
fail:
    if (m) {
        free(m->index);
        free(m->chunks[0]);
    }
    free(m);
    return -1;
}

void mr_metrics_free(mr_metrics_t *m)
{
    if (!m)
        return;
    for (uint32_t i = 0; i < m->n_series; i++) {
        series_t *s = series_at(m, i);
        for (unsigned k = 0; k < families[s->family].n_labels; k++)
            free(s->values[k]);
    }
    for (size_t i = 0; i < MAX_BLOCKS; i++)
        free(m->blocks[i]);
    for (size_t i = 0; i < MAX_CHUNKS; i++)
        free(m->chunks[i]);
    free(m->index);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

unsigned mr_metrics_workers(const mr_metrics_t *m)
{
    return m->n_workers;
}

static uint64_t series_hash(mr_metric_family_t f, const char *const *values, unsigned n)
{
    uint64_t h = 1469598103934665603ull ^ (uint64_t)f;
    for (unsigned k = 0; k < n; k++) {
        for (const unsigned char *p = (const unsigned char *)values[k]; *p; p++)
            h = (h ^ *p) * 1099511628211ull;
        h = (h ^ 0xff) * 1099511628211ull; /* separator: ("ab","c") != ("a","bc") */
    }
    return h;
}

static int series_equal(const series_t *s, mr_metric_family_t f, const char *const *values,
                        unsigned n)
{
    if (s->family != f)
        return 0;
    for (unsigned k = 0; k < n; k++)
        if (strcmp(s->values[k], values[k]) != 0)
            return 0;
    return 1;
}

/* Doubles the index when half full; under lock. */
static int index_grow(mr_metrics_t *m)
{
    size_t cap = m->index_cap * 2;
    uint32_t *idx = calloc(cap, sizeof(*idx));

    if (!idx)
        return -1;
    for (size_t i = 0; i < m->index_cap; i++) {
        if (!m->index[i])
            continue;
        const series_t *s = series_at(m, m->index[i] - 1);
        size_t h =
            series_hash(s->family, (const char *const *)s->values, families[s->family].n_labels) &
            (cap - 1);
        while (idx[h])
            h = (h + 1) & (cap - 1);
        idx[h] = m->index[i];
    }
    free(m->index);
    m->index = idx;
    m->index_cap = cap;
    return 0;
}

/* Reserves n consecutive slots inside one chunk; under lock. 0 when full. */
static uint32_t reserve_slots(mr_metrics_t *m, unsigned n)
{
    uint32_t at = m->next_slot;

    if (at / CHUNK_SLOTS != (at + n - 1) / CHUNK_SLOTS)
        at = (at / CHUNK_SLOTS + 1) * CHUNK_SLOTS;
    if ((uint64_t)at + n > MR_METRICS_MAX_SLOTS)
        return 0;
    size_t c = at / CHUNK_SLOTS;
    if (!m->chunks[c]) {
        uint64_t *chunk = calloc((size_t)m->n_workers * CHUNK_SLOTS, sizeof(uint64_t));
        if (!chunk)
            return 0;
        __atomic_store_n(&m->chunks[c], chunk, __ATOMIC_RELEASE);
    }
    m->next_slot = at + n;
    return at;
}

static uint32_t create_series(mr_metrics_t *m, mr_metric_family_t f, const char *const *values,
                              size_t pos)
{
    const family_t *fam = &families[f];
    uint32_t i = m->n_series;
    series_t s = {.family = f};

    if (i >= MAX_SERIES)
        return 0;
    if (!m->blocks[i / SERIES_BLOCK] &&
        !(m->blocks[i / SERIES_BLOCK] = calloc(SERIES_BLOCK, sizeof(series_t))))
        return 0;
    for (unsigned k = 0; k < fam->n_labels; k++) {
        if (!(s.values[k] = strdup(values[k]))) {
            while (k--)
                free(s.values[k]);
            return 0;
        }
    }
    if (!(s.base = reserve_slots(m, family_slots(fam)))) {
        for (unsigned k = 0; k < fam->n_labels; k++)
            free(s.values[k]);
        return 0;
    }
    *series_at(m, i) = s;
    m->index[pos] = i + 1;
    __atomic_store_n(&m->n_series, i + 1, __ATOMIC_RELEASE);
    return s.base;
}

uint32_t mr_metrics_series(mr_metrics_t *m, mr_metric_family_t f, const char *const *values)
{
    const family_t *fam = &families[f];
    uint32_t base = 0;

    pthread_mutex_lock(&m->lock);
    if ((size_t)m->n_series * 2 >= m->index_cap && index_grow(m) < 0)
        goto out;
    size_t pos = series_hash(f, values, fam->n_labels) & (m->index_cap - 1);
    while (m->index[pos]) {
        const series_t *s = series_at(m, m->index[pos] - 1);
        if (series_equal(s, f, values, fam->n_labels)) {
            base = s->base;
            goto out;
        }
        pos = (pos + 1) & (m->index_cap - 1);
    }
    base = create_series(m, f, values, pos);
out:
    if (!base)
        m->dropped++;
    pthread_mutex_unlock(&m->lock);
    return base;
}

void mr_metrics_add(mr_metrics_t *m, unsigned w, uint32_t slot, uint64_t v)
{
    uint64_t *p = slot_ptr(m, w, slot);
    __atomic_store_n(p, __atomic_load_n(p, __ATOMIC_RELAXED) + v, __ATOMIC_RELAXED);
}

void mr_metrics_set(mr_metrics_t *m, unsigned w, uint32_t slot, uint64_t v)
{
    __atomic_store_n(slot_ptr(m, w, slot), v, __ATOMIC_RELAXED);
}

void mr_metrics_observe_us(mr_metrics_t *m, unsigned w, uint32_t base, uint64_t us)
{
    size_t b = 0;

    if (!base) {
        mr_metrics_add(m, w, 0, 1);
        return;
    }
    while (b < N_BUCKETS - 1 && us > bucket_us[b])
        b++;
    mr_metrics_add(m, w, base + (uint32_t)b, 1);
    mr_metrics_add(m, w, base + N_BUCKETS, us);
    mr_metrics_add(m, w, base + N_BUCKETS + 1, 1);
}

uint64_t mr_metrics_sum(const mr_metrics_t *m, uint32_t slot)
{
    uint64_t sum = 0;
    for (unsigned w = 0; w < m->n_workers; w++)
        sum += __atomic_load_n(slot_ptr(m, w, slot), __ATOMIC_RELAXED);
    return sum;
}

void mr_metrics_visit(const mr_metrics_t *m, mr_metric_family_t f, mr_metrics_visit_fn fn, void *ud)
{
    uint32_t n = __atomic_load_n(&m->n_series, __ATOMIC_ACQUIRE);

    for (uint32_t i = 0; i < n; i++) {
        const series_t *s = series_at(m, i);
        if (s->family == f)
            fn(ud, (const char *const *)s->values, s->base);
    }
}

uint64_t mr_metrics_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- exposition --------------------------------------------------------- */

static void put(mr_buf_t *out, const char *s)
{
    mr_buf_append_force(out, s, strlen(s));
}

static void put_escaped(mr_buf_t *out, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\')
            put(out, "\\\\");
        else if (*s == '"')
            put(out, "\\\"");
        else if (*s == '\n')
            put(out, "\\n");
        else
            mr_buf_append_force(out, s, 1);
    }
}

static void put_value(mr_buf_t *out, double v)
{
    char num[64];
    if (v == (double)(uint64_t)v && v < 1e15)
        snprintf(num, sizeof(num), " %" PRIu64 "\n", (uint64_t)v);
    else
        snprintf(num, sizeof(num), " %.9g\n", v);
    put(out, num);
}

void mr_metrics_write_sample(mr_buf_t *out, const char *name, const char *const *labels,
                             double value)
{
    put(out, name);
    if (labels && labels[0]) {
        put(out, "{");
        for (size_t i = 0; labels[i]; i += 2) {
            if (i)
                put(out, ",");
            put(out, labels[i]);
            put(out, "=\"");
            put_escaped(out, labels[i + 1]);
            put(out, "\"");
        }
        put(out, "}");
    }
    put_value(out, value);
}

void mr_metrics_write_family(mr_buf_t *out, const char *name, const char *type, const char *help)
{
    put(out, "# HELP ");
    put(out, name);
    put(out, " ");
    put(out, help);
    put(out, "\n# TYPE ");
    put(out, name);
    put(out, " ");
    put(out, type);
    put(out, "\n");
}

/* The series' label list plus an optional extra pair, for write_sample. */
static void label_list(const family_t *f, const series_t *s, const char *extra,
                       const char *extra_value, const char **out)
{
    size_t n = 0;
    for (unsigned k = 0; k < f->n_labels; k++) {
        out[n++] = f->labels[k];
        out[n++] = s->values[k];
    }
    if (extra) {
        out[n++] = extra;
        out[n++] = extra_value;
    }
    out[n] = NULL;
}

static void render_histogram(const mr_metrics_t *m, const family_t *f, const series_t *s,
                             mr_buf_t *out)
{
    const char *labels[2 * MAX_LABELS + 3];
    char name[128], le[32];
    uint64_t cum = 0;

    snprintf(name, sizeof(name), "%s_bucket", f->name);
    for (size_t b = 0; b < N_BUCKETS; b++) {
        cum += mr_metrics_sum(m, s->base + (uint32_t)b);
        if (b < N_BUCKETS - 1)
            snprintf(le, sizeof(le), "%g", (double)bucket_us[b] / 1e6);
        else
            snprintf(le, sizeof(le), "+Inf");
        label_list(f, s, "le", le, labels);
        mr_metrics_write_sample(out, name, labels, (double)cum);
    }
    label_list(f, s, NULL, NULL, labels);
    snprintf(name, sizeof(name), "%s_sum", f->name);
    mr_metrics_write_sample(out, name, labels,
                            (double)mr_metrics_sum(m, s->base + N_BUCKETS) / 1e6);
    /* the +Inf bucket as read, not the count slot: a worker may add to one
     * between the scrape's two reads, and _count must equal +Inf */
    snprintf(name, sizeof(name), "%s_count", f->name);
    mr_metrics_write_sample(out, name, labels, (double)cum);
}

/* A breaker series is process-wide: one slot of row 0, written by any
 * worker under the breaker's lock, holding 1 (closed) or the time the open
 * breaker lets a probe through, shifted left once and tagged (open); 0: not
 * used yet. Past that time the next request probes: shown half-open. */
void mr_metrics_breaker_set(mr_metrics_t *m, uint32_t slot, uint64_t reopen_at_ms)
{
    uint64_t *p = slot ? slot_ptr(m, 0, slot) : NULL;
    if (p)
        __atomic_store_n(p, reopen_at_ms ? reopen_at_ms << 1 | 1 : 2, __ATOMIC_RELAXED);
}

void mr_metrics_breaker_counts(const mr_metrics_t *m, uint32_t base, unsigned counts[3])
{
    uint64_t *p = base ? slot_ptr(m, 0, base) : NULL;
    uint64_t v = p ? __atomic_load_n(p, __ATOMIC_RELAXED) : 0;

    counts[0] = counts[1] = counts[2] = 0;
    if (v == 2)
        counts[0] = 1;
    else if (v & 1)
        counts[mr_metrics_now_ms() < v >> 1 ? 1 : 2] = 1;
}

static void render_breaker(const mr_metrics_t *m, const family_t *f, const series_t *s,
                           mr_buf_t *out)
{
    static const char *const names[] = {"closed", "open", "half_open"};
    const char *labels[2 * MAX_LABELS + 3];
    unsigned count[3];

    mr_metrics_breaker_counts(m, s->base, count);
    for (size_t i = 0; i < 3; i++) {
        label_list(f, s, "state", names[i], labels);
        mr_metrics_write_sample(out, f->name, labels, count[i]);
    }
}

static double rss_bytes(void)
{
    long pages = 0, resident = 0;
    FILE *fp = fopen("/proc/self/statm", "r");
    if (!fp)
        return 0;
    if (fscanf(fp, "%ld %ld", &pages, &resident) != 2)
        resident = 0;
    fclose(fp);
    return (double)resident * (double)sysconf(_SC_PAGESIZE);
}

static void render_process(const mr_metrics_t *m, mr_buf_t *out)
{
    const char *ver[] = {"version", MERIDIAN_VERSION, NULL};

    put(out, "# HELP meridian_build_info Meridian's version.\n# TYPE meridian_build_info gauge\n");
    mr_metrics_write_sample(out, "meridian_build_info", ver, 1);
    put(out, "# HELP meridian_workers Event-loop worker threads.\n# TYPE meridian_workers gauge\n");
    mr_metrics_write_sample(out, "meridian_workers", NULL, m->n_workers);
    put(out, "# HELP process_start_time_seconds Start time of the process since the Unix epoch.\n"
             "# TYPE process_start_time_seconds gauge\n");
    mr_metrics_write_sample(out, "process_start_time_seconds", NULL, (double)m->started);
    put(out, "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
             "# TYPE process_resident_memory_bytes gauge\n");
    mr_metrics_write_sample(out, "process_resident_memory_bytes", NULL, rss_bytes());
    put(out, "# HELP meridian_metrics_series_dropped_total Series not created because the slot "
             "space was full.\n# TYPE meridian_metrics_series_dropped_total counter\n");
    mr_metrics_write_sample(out, "meridian_metrics_series_dropped_total", NULL,
                            (double)__atomic_load_n(&m->dropped, __ATOMIC_RELAXED));
}

int mr_metrics_render(const mr_metrics_t *m, mr_buf_t *out)
{
    static const char *const type_names[] = {"counter", "gauge", "histogram", "counter", "gauge"};
    uint32_t n = __atomic_load_n(&m->n_series, __ATOMIC_ACQUIRE);
    const char *labels[2 * MAX_LABELS + 3];

    render_process(m, out);
    for (int fi = 0; fi < MR_MF_COUNT; fi++) {
        const family_t *f = &families[fi];
        put(out, "# HELP ");
        put(out, f->name);
        put(out, " ");
        put(out, f->help);
        put(out, "\n# TYPE ");
        put(out, f->name);
        put(out, " ");
        put(out, type_names[f->kind]);
        put(out, "\n");
        if (f->n_labels == 0) {
            uint32_t base = 0;
            for (uint32_t i = 0; i < n; i++)
                if (series_at(m, i)->family == (mr_metric_family_t)fi)
                    base = series_at(m, i)->base;
            mr_metrics_write_sample(out, f->name, NULL, base ? (double)mr_metrics_sum(m, base) : 0);
            continue;
        }
        for (uint32_t i = 0; i < n; i++) {
            const series_t *s = series_at(m, i);
            if (s->family != (mr_metric_family_t)fi)
                continue;
            switch (f->kind) {
            case K_HISTOGRAM:
                render_histogram(m, f, s, out);
                break;
            case K_BREAKER:
                render_breaker(m, f, s, out);
                break;
            case K_COST:
                label_list(f, s, NULL, NULL, labels);
                mr_metrics_write_sample(out, f->name, labels,
                                        (double)mr_metrics_sum(m, s->base) / 1e9);
                break;
            default:
                label_list(f, s, NULL, NULL, labels);
                mr_metrics_write_sample(out, f->name, labels, (double)mr_metrics_sum(m, s->base));
            }
        }
    }
    return mr_buf_len(out) > 0 ? 0 : -1;
}

/* ---- per-generation view ------------------------------------------------ */

static const char *const status_class_names[MR_SC_COUNT] = {"2xx", "3xx", "4xx", "5xx", "aborted"};
static const char *const outcome_names[MR_AO_COUNT] = {
    "success", "http_4xx", "http_429", "http_5xx", "timeout", "connect", "transport", "invalid"};
static const char *const skip_names[MR_SKIP_COUNT] = {"circuit_open", "max_inflight", "budget"};

struct mr_metrics_view {
    mr_metrics_t *m;
    unsigned w;
    const mr_config_t *cfg;
    size_t nr, np; /* routes + direct + none; providers + none */
    uint32_t *req; /* [MR_METRICS_ENDPOINTS][nr][np][MR_SC_COUNT] */
    uint32_t *dur; /* [nr][np][2] */
    uint32_t *ttfb;
    uint32_t *att;    /* [np][MR_AO_COUNT] */
    uint32_t *fb;     /* [nr][np][MR_AO_COUNT] */
    uint32_t *skip;   /* [np][MR_SKIP_COUNT] */
    uint32_t *tok;    /* [np][MR_TOK_COUNT] */
    uint32_t *cost;   /* [np] */
    uint32_t *infl;   /* [np] */
    uint32_t *deny;   /* [n_policies + 1] */
    uint32_t *resend; /* [np] */
    uint32_t retry;
    uint32_t cells[]; /* every array above */
};

mr_metrics_view_t *mr_metrics_view_new(mr_metrics_t *m, unsigned worker, const mr_config_t *cfg)
{
    size_t nr = cfg->n_routes + 2, np = cfg->n_providers + 1;
    size_t sizes[] = {MR_METRICS_ENDPOINTS * nr * np * MR_SC_COUNT,
                      nr * np * 2,
                      nr * np * 2,
                      np * MR_AO_COUNT,
                      nr * np * MR_AO_COUNT,
                      np * MR_SKIP_COUNT,
                      np * MR_TOK_COUNT,
                      np,
                      np,
                      cfg->n_policies + 1,
                      np};
    size_t total = 0;
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
        total += sizes[i];
    mr_metrics_view_t *v = calloc(1, sizeof(*v) + total * sizeof(uint32_t));
    if (!v)
        return NULL;
    v->m = m;
    v->w = worker;
    v->cfg = cfg;
    v->nr = nr;
    v->np = np;
    uint32_t **arrays[] = {&v->req, &v->dur,  &v->ttfb, &v->att,  &v->fb,    &v->skip,
                           &v->tok, &v->cost, &v->infl, &v->deny, &v->resend};
    uint32_t *at = v->cells;
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        *arrays[i] = at;
        at += sizes[i];
    }
    return v;
}

void mr_metrics_view_free(mr_metrics_view_t *v)
{
    free(v);
}

/* The cached slot, resolving it on first use. */
static uint32_t cached(mr_metrics_view_t *v, uint32_t *cell, mr_metric_family_t f,
                       const char *const *values)
{
    if (*cell == UNRESOLVED) {
        uint32_t base = mr_metrics_series(v->m, f, values);
        *cell = base ? base : NOWHERE;
    }
    return *cell == NOWHERE ? 0 : *cell;
}

static size_t route_key(const mr_metrics_view_t *v, size_t route)
{
    if (route == MR_ROUTE_DIRECT)
        return v->nr - 2;
    if (route == MR_ROUTE_NONE || route >= v->cfg->n_routes)
        return v->nr - 1;
    return route;
}

static const char *route_name(const mr_metrics_view_t *v, size_t key)
{
    return key == v->nr - 2 ? "direct" : key == v->nr - 1 ? "none" : v->cfg->routes[key].name;
}

static size_t provider_key(const mr_metrics_view_t *v, const mr_provider_t *p)
{
    return p ? (size_t)(p - v->cfg->providers) : v->np - 1;
}

mr_status_class_t mr_status_class(int status)
{
    if (status >= 200 && status < 300)
        return MR_SC_2XX;
    if (status >= 300 && status < 400)
        return MR_SC_3XX;
    if (status >= 400 && status < 500)
        return MR_SC_4XX;
    if (status >= 500 && status < 600)
        return MR_SC_5XX;
    return MR_SC_ABORTED;
}

const char *mr_attempt_outcome_name(mr_attempt_outcome_t o)
{
    return o < MR_AO_COUNT ? outcome_names[o] : "unknown";
}

static uint32_t latency_series(mr_metrics_view_t *v, uint32_t *arr, mr_metric_family_t f, size_t rk,
                               size_t pk, int stream)
{
    const char *values[] = {route_name(v, rk), pk < v->np - 1 ? v->cfg->providers[pk].name : "none",
                            stream ? "true" : "false"};
    return cached(v, &arr[(rk * v->np + pk) * 2 + (stream != 0)], f, values);
}

void mr_metrics_request(mr_metrics_view_t *v, const mr_metrics_req_t *rq)
{
    size_t rk = route_key(v, rq->route), pk = provider_key(v, rq->provider);
    size_t ek = rq->endpoint < MR_METRICS_ENDPOINTS ? rq->endpoint : MR_METRICS_ENDPOINTS - 1;
    const mr_provider_t *p = rq->provider;
    const char *values[] = {route_name(v, rk),
                            rq->endpoint_name ? rq->endpoint_name : "none",
                            p ? p->name : "none",
                            p ? p->vendor : "none",
                            p ? p->region : "none",
                            p ? p->jurisdiction : "none",
                            status_class_names[rq->status_class]};
    uint32_t s =
        cached(v, &v->req[((ek * v->nr + rk) * v->np + pk) * MR_SC_COUNT + rq->status_class],
               MR_MF_REQUESTS, values);

    mr_metrics_add(v->m, v->w, s, 1);
    mr_metrics_observe_us(v->m, v->w, latency_series(v, v->dur, MR_MF_DURATION, rk, pk, rq->stream),
                          rq->total_us);
    if (rq->ttfb_us != UINT64_MAX)
        mr_metrics_observe_us(
            v->m, v->w, latency_series(v, v->ttfb, MR_MF_TTFB, rk, pk, rq->stream), rq->ttfb_us);
}

void mr_metrics_attempt(mr_metrics_view_t *v, size_t route, const mr_provider_t *p,
                        mr_attempt_outcome_t o, int fell_back)
{
    size_t pk = provider_key(v, p), rk = route_key(v, route);
    const char *values[] = {p->name, p->vendor, p->region, p->jurisdiction, outcome_names[o]};

    mr_metrics_add(v->m, v->w, cached(v, &v->att[pk * MR_AO_COUNT + o], MR_MF_ATTEMPTS, values), 1);
    if (fell_back) {
        const char *fv[] = {route_name(v, rk), p->name, outcome_names[o]};
        mr_metrics_add(v->m, v->w,
                       cached(v, &v->fb[(rk * v->np + pk) * MR_AO_COUNT + o], MR_MF_FALLBACKS, fv),
                       1);
    }
}

void mr_metrics_skipped(mr_metrics_view_t *v, const mr_provider_t *p, mr_skip_reason_t why)
{
    const char *values[] = {p->name, skip_names[why]};
    mr_metrics_add(
        v->m, v->w,
        cached(v, &v->skip[provider_key(v, p) * MR_SKIP_COUNT + why], MR_MF_SKIPPED, values), 1);
}

void mr_metrics_usage(mr_metrics_view_t *v, const mr_provider_t *p, const long counts[MR_TOK_COUNT],
                      double cost_usd)
{
    static const char *const types[MR_TOK_COUNT] = {"prompt", "completion", "cached", "cache_write",
                                                    "reasoning"};
    size_t pk = provider_key(v, p);

    for (int t = 0; t < MR_TOK_COUNT; t++) {
        if (counts[t] > 0) {
            const char *values[] = {p->name, types[t]};
            mr_metrics_add(v->m, v->w,
                           cached(v, &v->tok[pk * MR_TOK_COUNT + (size_t)t], MR_MF_TOKENS, values),
                           (uint64_t)counts[t]);
        }
    }
    if (cost_usd > 0) {
        const char *one[] = {p->name};
        mr_metrics_add(v->m, v->w, cached(v, &v->cost[pk], MR_MF_COST, one),
                       (uint64_t)(cost_usd * 1e9 + 0.5));
    }
}

void mr_metrics_resend(mr_metrics_view_t *v, const mr_provider_t *p)
{
    const char *values[] = {p->name};
    mr_metrics_add(v->m, v->w, cached(v, &v->resend[provider_key(v, p)], MR_MF_RESENDS, values), 1);
}

void mr_metrics_inflight(mr_metrics_view_t *v, const mr_provider_t *p, unsigned n)
{
    const char *values[] = {p->name};
    mr_metrics_set(v->m, v->w, cached(v, &v->infl[provider_key(v, p)], MR_MF_INFLIGHT, values), n);
}

void mr_metrics_denial(mr_metrics_view_t *v, const char *policy)
{
    const mr_policy_t *pol = policy ? mr_config_find_policy(v->cfg, policy) : NULL;
    size_t k = pol ? pol->index : v->cfg->n_policies;
    const char *values[] = {pol ? pol->name : "request"};
    mr_metrics_add(v->m, v->w, cached(v, &v->deny[k], MR_MF_DENIALS, values), 1);
}

void mr_metrics_retry_denied(mr_metrics_view_t *v)
{
    static const char *const no_labels[1] = {""};
    mr_metrics_add(v->m, v->w, cached(v, &v->retry, MR_MF_RETRY_DENIED, no_labels), 1);
}
