/*
 * limits_view — the engine's outward side (limits.h): UTC budget periods,
 * the answers' headers and messages, and the snapshots for the keys API,
 * /metrics and /status, read from the counters limits.c keeps.
 */
#include "limits_int.h"

#include "meridian/metrics.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* ---- periods ---------------------------------------------------------- */

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * algorithm), and back. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

void mr_limits_period(mr_budget_period_t p, uint64_t now_ms, char *id, size_t idlen,
                      uint64_t *start_ms, uint64_t *end_ms)
{
    int64_t days = (int64_t)(now_ms / DAY_MS), y;
    unsigned m, d;
    civil_from_days(days, &y, &m, &d);
    if (p == MR_PERIOD_DAY) {
        snprintf(id, idlen, "d%04lld-%02u-%02u", (long long)y, m, d);
        *start_ms = (uint64_t)days * DAY_MS;
        *end_ms = *start_ms + DAY_MS;
    } else if (p == MR_PERIOD_MONTH) {
        snprintf(id, idlen, "m%04lld-%02u", (long long)y, m);
        *start_ms = (uint64_t)days_from_civil(y, m, 1) * DAY_MS;
        *end_ms = (uint64_t)days_from_civil(m == 12 ? y + 1 : y, m == 12 ? 1 : m + 1, 1) * DAY_MS;
    } else {
        snprintf(id, idlen, "total");
        *start_ms = 0;
        *end_ms = UINT64_MAX;
    }
}

/* ---- answers ---------------------------------------------------------- */

void mr_limits_format_duration(uint64_t ms, char *buf, size_t len)
{
    uint64_t h = ms / 3600000, m = ms / 60000 % 60, s = ms / 1000 % 60, frac = ms % 1000;
    char sec[24];
    if (ms < 1000) {
        snprintf(buf, len, "%llums", (unsigned long long)ms);
        return;
    }
    if (frac) {
        snprintf(sec, sizeof(sec), "%llu.%03llu", (unsigned long long)s, (unsigned long long)frac);
        for (size_t n = strlen(sec); sec[n - 1] == '0'; n--)
            sec[n - 1] = '\0';
    } else {
        snprintf(sec, sizeof(sec), "%llu", (unsigned long long)s);
    }
    if (h)
        snprintf(buf, len, "%lluh%llum%ss", (unsigned long long)h, (unsigned long long)m, sec);
    else if (m)
        snprintf(buf, len, "%llum%ss", (unsigned long long)m, sec);
    else
        snprintf(buf, len, "%ss", sec);
}

static void header_num(mr_limits_header_t *h, const char *name, uint64_t v)
{
    h->name = name;
    snprintf(h->value, sizeof(h->value), "%llu", (unsigned long long)v);
}

static void header_dur(mr_limits_header_t *h, const char *name, uint64_t ms)
{
    h->name = name;
    mr_limits_format_duration(ms, h->value, sizeof(h->value));
}

size_t mr_limits_headers(const mr_limits_verdict_t *v,
                         mr_limits_header_t out[MR_LIMITS_MAX_HEADERS])
{
    size_t n = 0;
    if (v->has_requests) {
        header_num(&out[n++], "x-ratelimit-limit-requests", v->limit_requests);
        header_num(&out[n++], "x-ratelimit-remaining-requests", v->remaining_requests);
        header_dur(&out[n++], "x-ratelimit-reset-requests", v->reset_requests_ms);
    }
    if (v->has_tokens) {
        header_num(&out[n++], "x-ratelimit-limit-tokens", v->limit_tokens);
        header_num(&out[n++], "x-ratelimit-remaining-tokens", v->remaining_tokens);
        header_dur(&out[n++], "x-ratelimit-reset-tokens", v->reset_tokens_ms);
    }
    if ((v->outcome == MR_LIMITS_RATE_LIMITED || v->outcome == MR_LIMITS_QUOTA) && v->retry_after_s)
        header_num(&out[n++], "retry-after", v->retry_after_s);
    return n;
}

void mr_limits_message(const mr_limits_engine_t *L, const mr_limits_req_t *r, char *buf, size_t len)
{
    const mr_limits_verdict_t *v = &r->verdict;
    const lkey_t *k = key_of(L, r->_key);
    const char *kn = k ? k->name : "?";
    switch (v->limit) {
    case MR_LIMIT_RPM:
        snprintf(buf, len, "key \"%s\" is over its limit of %u requests per minute; retry in %u s",
                 kn, k ? k->rpm : 0, v->retry_after_s);
        break;
    case MR_LIMIT_TPM:
        snprintf(buf, len, "key \"%s\" is over its limit of %u tokens per minute; retry in %u s",
                 kn, k ? k->tpm : 0, v->retry_after_s);
        break;
    case MR_LIMIT_PARALLEL:
        snprintf(buf, len, "key \"%s\" already has %u requests in flight (its max_parallel)", kn,
                 k ? k->par : 0);
        break;
    case MR_LIMIT_BUDGET:
        snprintf(buf, len, "key \"%s\" has used its budget of $%.2f for this %s", kn,
                 k ? (double)k->budget / MR_LIMITS_NUSD_PER_USD : 0.0,
                 k ? mr_budget_period_name(k->period) : "period");
        break;
    case MR_LIMIT_PROVIDER_BUDGET:
        snprintf(buf, len, "provider \"%s\" has used its budget for this %s",
                 r->_prov < L->n_provs ? L->provs[r->_prov].name : "?",
                 r->_prov < L->n_provs ? mr_budget_period_name(L->provs[r->_prov].period)
                                       : "period");
        break;
    default:
        snprintf(buf, len,
                 v->outcome == MR_LIMITS_UNAVAILABLE
                     ? "the shared limits store (Redis) is unreachable and "
                       "state.on_outage is \"deny\"; retry shortly"
                     : "allowed");
    }
}

/* ---- visibility ------------------------------------------------------- */

void mr_limits_key_stats(const mr_limits_engine_t *L, size_t key, mr_limits_key_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    if (key >= L->n_keys)
        return;
    const kcache_t *c = &L->keys[key].c;
    out->allowed = atomic_load(&c->allowed);
    out->unavailable = atomic_load(&c->unavailable);
    out->spend_nusd = atomic_load(&c->spend);
    for (size_t i = 0; i <= MR_LIMIT_PROVIDER_BUDGET; i++)
        out->limited[i] = atomic_load(&c->limited[i]);
}

uint64_t mr_limits_provider_spend_nusd(const mr_limits_engine_t *L, size_t p)
{
    return p < L->n_provs ? atomic_load(&L->provs[p].spend) : 0;
}

static json_t *usd(uint64_t nusd)
{
    return json_real(round((double)nusd / 1e3) / 1e6); /* whole micro-dollars */
}

static json_t *key_usage(const mr_limits_engine_t *L, const lkey_t *k)
{
    json_t *u = json_object();
    if (k->rpm)
        json_object_set_new(u, "requests", json_integer((json_int_t)atomic_load(&k->c.req_used)));
    if (k->tpm)
        json_object_set_new(u, "tokens", json_integer((json_int_t)atomic_load(&k->c.tok_used)));
    if (k->par)
        json_object_set_new(u, "in_flight", json_integer((json_int_t)atomic_load(&k->c.in_flight)));
    if (k->budget) {
        uint64_t spent = atomic_load(&k->c.spent), used = atomic_load(&k->c.used), start, end;
        char id[24];
        uint64_t now = mr_state_now(L->st);
        mr_limits_period(k->period, now, id, sizeof(id), &start, &end);
        json_object_set_new(u, "spent_usd", usd(spent));
        json_object_set_new(u, "reserved_usd", usd(used > spent ? used - spent : 0));
        json_object_set_new(u, "remaining_usd",
                            usd((uint64_t)k->budget > used ? (uint64_t)k->budget - used : 0));
        json_object_set_new(u, "period", json_string(id));
        if (end != UINT64_MAX)
            json_object_set_new(u, "period_ends_ms", json_integer((json_int_t)end));
    }
    return u;
}

json_t *mr_limits_key_json(const mr_limits_engine_t *L, size_t key)
{
    const lkey_t *k = key_of(L, key);
    if (!k)
        return NULL;
    json_t *lim = json_object(), *hit = json_object();
    if (k->rpm)
        json_object_set_new(lim, "rpm", json_integer(k->rpm));
    if (k->tpm)
        json_object_set_new(lim, "tpm", json_integer(k->tpm));
    if (k->par)
        json_object_set_new(lim, "max_parallel", json_integer(k->par));
    if (k->budget) {
        json_object_set_new(lim, "budget_usd", usd((uint64_t)k->budget));
        json_object_set_new(lim, "budget_period", json_string(mr_budget_period_name(k->period)));
    }
    static const char *const names[] = {NULL, "rpm", "tpm", "max_parallel", "budget"};
    for (size_t i = MR_LIMIT_RPM; i <= MR_LIMIT_BUDGET; i++)
        json_object_set_new(hit, names[i], json_integer((json_int_t)atomic_load(&k->c.limited[i])));
    return json_pack("{sssosososI}", "name", k->name, "limits", lim, "usage", key_usage(L, k),
                     "limited", hit, "as_of_ms", (json_int_t)atomic_load(&k->c.as_of));
}

json_t *mr_limits_providers_json(const mr_limits_engine_t *L)
{
    json_t *all = json_object();
    for (size_t i = 0; i < L->n_provs; i++) {
        const lprov_t *p = &L->provs[i];
        if (!p->budget)
            continue;
        uint64_t used = atomic_load(&p->used);
        json_object_set_new(
            all, p->name,
            json_pack("{sossso so so sb}", "budget_usd", usd((uint64_t)p->budget), "budget_period",
                      mr_budget_period_name(p->period), "used_usd", usd(used), "remaining_usd",
                      usd((uint64_t)p->budget > used ? (uint64_t)p->budget - used : 0),
                      "settled_here_usd", usd(atomic_load(&p->spend)), "over",
                      mr_limits_provider_over(L, i)));
    }
    return json_pack("{so}", "providers", all);
}

/* ---- /status and /metrics ------------------------------------------------ */

static json_t *state_json(mr_state_t *st)
{
    mr_state_stats_t s;
    mr_state_stats(st, &s);
    return json_pack(
        "{sssssbsIsIsIsIsIsIsIsIsIsIsIsI}", "backend", mr_state_backend_name(s.backend),
        "on_outage", mr_state_outage_name(s.on_outage), "redis_up", s.redis_up, "outage_since_ms",
        (json_int_t)s.outage_since_ms, "outages", (json_int_t)s.outages, "reconnects",
        (json_int_t)s.reconnects, "command_timeouts", (json_int_t)s.command_timeouts,
        "local_answers", (json_int_t)s.local_answers, "denied_unavailable",
        (json_int_t)s.denied_unavailable, "journal_len", (json_int_t)s.journal_len,
        "journal_dropped", (json_int_t)s.journal_dropped, "replayed", (json_int_t)s.replayed,
        "live_instances", (json_int_t)s.live_instances, "file_writes", (json_int_t)s.file_writes,
        "file_errors", (json_int_t)s.file_errors);
}

json_t *mr_limits_status_json(const mr_limits_engine_t *L)
{
    json_t *keys = json_object(), *provs = mr_limits_providers_json(L);
    for (size_t i = 0; i < L->n_keys; i++) {
        json_t *k = mr_limits_key_limited(L, i) ? mr_limits_key_json(L, i) : NULL;
        if (k)
            json_object_set_new(keys, L->keys[i].name, k);
    }
    json_t *o = json_pack("{sos{sosO}}", "state", state_json(L->st), "budgets", "keys", keys,
                          "providers", json_object_get(provs, "providers"));
    json_decref(provs);
    return o;
}

static void sample(mr_buf_t *out, const char *name, const char *label, const char *value, double v)
{
    const char *labels[] = {label, value, NULL};
    mr_metrics_write_sample(out, name, label ? labels : NULL, v);
}

static void render_keys(const mr_limits_engine_t *L, mr_buf_t *out)
{
    static const char *const outcome[] = {"allowed", "rpm", "tpm", "max_parallel", "budget"};
    mr_metrics_write_family(out, "meridian_key_requests_total", "counter",
                            "Admissions of requests of a key with limits, by outcome (allowed, "
                            "the limit that refused, or unavailable).");
    for (size_t i = 0; i < L->n_keys; i++) {
        mr_limits_key_stats_t ks;
        if (!mr_limits_key_limited(L, i))
            continue;
        mr_limits_key_stats(L, i, &ks);
        for (size_t o = 0; o < sizeof(outcome) / sizeof(outcome[0]); o++) {
            const char *labels[] = {"key", L->keys[i].name, "outcome", outcome[o], NULL};
            mr_metrics_write_sample(out, "meridian_key_requests_total", labels,
                                    (double)(o ? ks.limited[o] : ks.allowed));
        }
        const char *labels[] = {"key", L->keys[i].name, "outcome", "unavailable", NULL};
        mr_metrics_write_sample(out, "meridian_key_requests_total", labels, (double)ks.unavailable);
    }
}

/* USD families, one sample per key or provider that has the value. */
typedef struct usd_family {
    const char *name, *type, *help, *label;
    bool provider; /* else a key */
    bool (*get)(const mr_limits_engine_t *L, size_t i, uint64_t *nusd);
} usd_family_t;

static bool key_spend(const mr_limits_engine_t *L, size_t i, uint64_t *v)
{
    *v = atomic_load(&L->keys[i].c.spend);
    return mr_limits_key_limited(L, i);
}

static bool key_used(const mr_limits_engine_t *L, size_t i, uint64_t *v)
{
    *v = atomic_load(&L->keys[i].c.used);
    return L->keys[i].budget != 0;
}

static bool prov_spend(const mr_limits_engine_t *L, size_t i, uint64_t *v)
{
    *v = atomic_load(&L->provs[i].spend);
    return L->provs[i].budget != 0;
}

static bool prov_used(const mr_limits_engine_t *L, size_t i, uint64_t *v)
{
    *v = atomic_load(&L->provs[i].used);
    return L->provs[i].budget != 0;
}

static const usd_family_t usd_families[] = {
    {"meridian_key_spend_usd_total", "counter",
     "Spend of a key's requests settled by this process, in USD.", "key", false, key_spend},
    {"meridian_key_budget_used_usd", "gauge",
     "Spent and reserved of a key's budget_usd in the current period, as last seen by this "
     "process.",
     "key", false, key_used},
    {"meridian_provider_spend_usd_total", "counter",
     "Spend on a provider with a budget_usd settled by this process, in USD.", "provider", true,
     prov_spend},
    {"meridian_provider_budget_used_usd", "gauge",
     "Spent and reserved of a provider's budget_usd in the current period, as last seen by this "
     "process.",
     "provider", true, prov_used},
};

static void render_usd(const mr_limits_engine_t *L, mr_buf_t *out)
{
    for (size_t f = 0; f < sizeof(usd_families) / sizeof(usd_families[0]); f++) {
        const usd_family_t *fam = &usd_families[f];
        size_t n = fam->provider ? L->n_provs : L->n_keys;
        uint64_t v;
        mr_metrics_write_family(out, fam->name, fam->type, fam->help);
        for (size_t i = 0; i < n; i++)
            if (fam->get(L, i, &v))
                sample(out, fam->name, fam->label,
                       fam->provider ? L->provs[i].name : L->keys[i].name,
                       (double)v / MR_LIMITS_NUSD_PER_USD);
    }
}

/* One unlabelled sample of a family. */
static void one(mr_buf_t *out, const char *name, const char *type, const char *help, double v)
{
    mr_metrics_write_family(out, name, type, help);
    mr_metrics_write_sample(out, name, NULL, v);
}

static void render_state(mr_state_t *st, mr_buf_t *out)
{
    mr_state_stats_t s;
    mr_state_stats(st, &s);
    const char *info[] = {"backend", mr_state_backend_name(s.backend), "on_outage",
                          mr_state_outage_name(s.on_outage), NULL};
    mr_metrics_write_family(out, "meridian_state_info", "gauge",
                            "The shared state's backend and on_outage mode.");
    mr_metrics_write_sample(out, "meridian_state_info", info, 1);
    one(out, "meridian_state_up", "gauge",
        "1 while the shared state is reachable (memory: always; redis: every worker connected).",
        s.redis_up);
    one(out, "meridian_state_outages_total", "counter", "Times Redis became unreachable.",
        (double)s.outages);
    one(out, "meridian_state_reconnects_total", "counter", "Redis connections re-established.",
        (double)s.reconnects);
    one(out, "meridian_state_command_timeouts_total", "counter",
        "Redis commands answered by the gateway's own timer.", (double)s.command_timeouts);
    one(out, "meridian_state_local_answers_total", "counter",
        "Admissions decided on this instance's counters during an outage (on_outage local).",
        (double)s.local_answers);
    one(out, "meridian_state_unavailable_total", "counter",
        "Admissions refused because Redis was unreachable (on_outage deny).",
        (double)s.denied_unavailable);
    one(out, "meridian_state_journal_ops", "gauge",
        "Operations counted during an outage and not yet replayed to Redis.",
        (double)s.journal_len);
    one(out, "meridian_state_journal_dropped_total", "counter",
        "Operations lost because the outage journal was full.", (double)s.journal_dropped);
    one(out, "meridian_state_replayed_total", "counter", "Journalled operations Redis accepted.",
        (double)s.replayed);
    one(out, "meridian_state_live_instances", "gauge",
        "Instances sharing the state, as last seen (memory: 1).", (double)s.live_instances);
    one(out, "meridian_state_file_writes_total", "counter", "State file replacements (memory).",
        (double)s.file_writes);
    one(out, "meridian_state_file_errors_total", "counter",
        "Failed state file writes (memory; logged).", (double)s.file_errors);
}

void mr_limits_render_metrics(const mr_limits_engine_t *L, mr_buf_t *out)
{
    render_keys(L, out);
    render_usd(L, out);
    render_state(L->st, out);
}
