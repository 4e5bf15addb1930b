/*
 * limits — the limits engine (limits.h): builds state transactions for
 * admission, attempts and settlement, turns their results into verdicts,
 * and keeps the last values seen (limits_view.c shows them: /status,
 * /metrics, the keys API; it also holds the periods and the headers).
 *
 * Counter names (state.h keys; NAME percent-encoded so '{', '}', '%' and
 * control bytes never reach Redis' hash tags):
 *   k:NAME:rpm  k:NAME:tpm    windows
 *   k:NAME:par                the max_parallel pool (leases)
 *   k:NAME:usd:PERIOD         the key's budget pool of one period
 *   p:NAME:usd:PERIOD         a provider's budget pool
 * A budget pool lives until 35 days after its period ends ("total": 400
 * days after its last change), so last month stays readable.
 *
 * Each asynchronous step is a call_t holding a reference on the engine, so
 * an answer arriving after a config reload or a cancelled request still
 * has somewhere to land; a cancelled call undoes what it reserved.
 */
#include "limits_int.h"

#include <stdint.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEEP_AFTER_PERIOD_MS (35 * DAY_MS)
#define TOTAL_KEEP_MS (400 * DAY_MS)
#define MAX_COST_NUSD (INT64_MAX / 4)

enum { ROLE_RPM = 1, ROLE_TPM, ROLE_PAR, ROLE_BUDGET, ROLE_PROV };
enum { STAGE_ADMIT, STAGE_ATTEMPT, STAGE_REFRESH, STAGE_FIRE };

typedef struct mr_limits_call {
    mr_limits_engine_t *L;
    mr_limits_req_t *r; /* NULL: cancelled or fire-and-forget */
    mr_state_loop_t *sl;
    int stage;
    size_t key, prov;
    uint64_t at_ms;
    mr_state_txn_t txn;
    uint8_t roles[MR_STATE_MAX_OPS];
    mr_limits_cb cb;
    void *arg;
    unsigned holds;
    bool in_call, completed;
} call_t;

/* The pool of `who` ("k" or "p") in the period holding now. */
static void budget_pool(const char *who, const char *enc, mr_budget_period_t p, uint64_t now,
                        char *key, size_t keylen, uint64_t *end_ms, uint64_t *key_ttl_ms)
{
    char id[24];
    uint64_t start;
    mr_limits_period(p, now, id, sizeof(id), &start, end_ms);
    snprintf(key, keylen, "%s:%s:usd:%s", who, enc, id);
    *key_ttl_ms = *end_ms == UINT64_MAX ? TOTAL_KEEP_MS : *end_ms - now + KEEP_AFTER_PERIOD_MS;
}

/* ---- the engine ------------------------------------------------------- */

static int64_t usd_to_nusd(double usd)
{
    double v = ceil(usd * MR_LIMITS_NUSD_PER_USD);
    return v > (double)MAX_COST_NUSD ? MAX_COST_NUSD : (int64_t)v;
}

static int check_budget(const char *what, const char *name, double usd, char *err, size_t errlen)
{
    if (!(usd >= 0) || usd > 1e9) {
        snprintf(err, errlen, "%s.%s: budget_usd must be between 0 and 1e9", what, name);
        return -1;
    }
    return 0;
}

static int copy_name(const char *what, const char *name, char *dst, char *enc, size_t enclen,
                     char *err, size_t errlen)
{
    if (!name || !name[0] || strlen(name) >= MR_LIMITS_NAME_MAX) {
        snprintf(err, errlen, "%s.%s: the name must be 1..%d bytes to carry limits", what,
                 name ? name : "?", MR_LIMITS_NAME_MAX - 1);
        return -1;
    }
    snprintf(dst, MR_LIMITS_NAME_MAX, "%s", name);
    mr_state_key_escape(name, enc, enclen);
    return 0;
}

static int load_spec(mr_limits_engine_t *L, const mr_limits_spec_t *s, char *err, size_t errlen)
{
    for (size_t i = 0; i < s->n_keys; i++) {
        const mr_limits_key_spec_t *k = &s->keys[i];
        lkey_t *d = &L->keys[i];
        if (copy_name("keys", k->name, d->name, d->enc, sizeof(d->enc), err, errlen) != 0 ||
            check_budget("keys", k->name, k->budget_usd, err, errlen) != 0)
            return -1;
        d->rpm = k->rpm;
        d->tpm = k->tpm;
        d->par = k->max_parallel;
        d->budget = k->budget_usd > 0 ? usd_to_nusd(k->budget_usd) : 0;
        d->period = k->budget_period;
    }
    for (size_t i = 0; i < s->n_providers; i++) {
        const mr_limits_provider_spec_t *p = &s->providers[i];
        lprov_t *d = &L->provs[i];
        if (copy_name("providers", p->name, d->name, d->enc, sizeof(d->enc), err, errlen) != 0 ||
            check_budget("providers", p->name, p->budget_usd, err, errlen) != 0)
            return -1;
        d->budget = p->budget_usd > 0 ? usd_to_nusd(p->budget_usd) : 0;
        d->period = p->budget_period;
    }
    return 0;
}

int mr_limits_new(mr_state_t *st, const mr_limits_spec_t *spec, mr_limits_engine_t **out, char *err,
                  size_t errlen)
{
    mr_limits_engine_t *L = calloc(1, sizeof(*L));
    *out = NULL;
    if (!L || (spec->n_keys && !(L->keys = calloc(spec->n_keys, sizeof(*L->keys)))) ||
        (spec->n_providers && !(L->provs = calloc(spec->n_providers, sizeof(*L->provs))))) {
        snprintf(err, errlen, "limits: out of memory");
        goto fail;
    }
    L->st = st;
    atomic_store(&L->refs, 1);
    L->n_keys = spec->n_keys;
    L->n_provs = spec->n_providers;
    L->ttl_ms = spec->reservation_ttl_ms ? spec->reservation_ttl_ms : MR_LIMITS_DEFAULT_TTL_MS;
    L->default_out =
        spec->default_output_tokens ? spec->default_output_tokens : MR_LIMITS_DEFAULT_OUTPUT_TOKENS;
    L->bpt = spec->bytes_per_token ? spec->bytes_per_token : MR_LIMITS_DEFAULT_BYTES_PER_TOKEN;
    if (load_spec(L, spec, err, errlen) != 0)
        goto fail;
    *out = L;
    return 0;
fail:
    if (L) {
        free(L->keys);
        free(L->provs);
    }
    free(L);
    return -1;
}

static void unref(mr_limits_engine_t *L)
{
    if (atomic_fetch_sub(&L->refs, 1) == 1) {
        free(L->keys);
        free(L->provs);
        free(L);
    }
}

void mr_limits_free(mr_limits_engine_t *L)
{
    if (L)
        unref(L);
}

static void copy_counter(atomic_uint_fast64_t *to, const atomic_uint_fast64_t *from)
{
    atomic_store(to, atomic_load((atomic_uint_fast64_t *)(uintptr_t)from));
}

static void carry_key(kcache_t *to, const kcache_t *from)
{
    copy_counter(&to->allowed, &from->allowed);
    copy_counter(&to->unavailable, &from->unavailable);
    copy_counter(&to->spend, &from->spend);
    for (size_t i = 0; i <= MR_LIMIT_PROVIDER_BUDGET; i++)
        copy_counter(&to->limited[i], &from->limited[i]);
    copy_counter(&to->req_used, &from->req_used);
    copy_counter(&to->tok_used, &from->tok_used);
    copy_counter(&to->in_flight, &from->in_flight);
    copy_counter(&to->spent, &from->spent);
    copy_counter(&to->used, &from->used);
    copy_counter(&to->as_of, &from->as_of);
}

void mr_limits_carry(mr_limits_engine_t *to, const mr_limits_engine_t *from)
{
    for (size_t i = 0; i < to->n_keys; i++)
        for (size_t j = 0; j < from->n_keys; j++)
            if (!strcmp(to->keys[i].name, from->keys[j].name)) {
                carry_key(&to->keys[i].c, &from->keys[j].c);
                break;
            }
    for (size_t i = 0; i < to->n_provs; i++)
        for (size_t j = 0; j < from->n_provs; j++)
            if (!strcmp(to->provs[i].name, from->provs[j].name)) {
                copy_counter(&to->provs[i].used, &from->provs[j].used);
                copy_counter(&to->provs[i].period_end, &from->provs[j].period_end);
                copy_counter(&to->provs[i].spend, &from->provs[j].spend);
                break;
            }
}

bool mr_limits_key_limited(const mr_limits_engine_t *L, size_t key)
{
    const lkey_t *k = key_of(L, key);
    return k && (k->rpm || k->tpm || k->par || k->budget);
}

static int64_t cost_nusd(uint64_t prompt, uint64_t completion, const mr_limits_price_t *p)
{
    double v = ceil((double)prompt * p->input_per_mtok * 1000.0 +
                    (double)completion * p->output_per_mtok * 1000.0);
    if (!(v > 0))
        return 0;
    return v > (double)MAX_COST_NUSD ? MAX_COST_NUSD : (int64_t)v;
}

/* ---- results into verdicts and caches --------------------------------- */

static void note_results(mr_limits_engine_t *L, const call_t *c, const mr_state_result_t *res)
{
    lkey_t *k = c->key < L->n_keys ? &L->keys[c->key] : NULL;
    uint64_t now = mr_state_now(L->st);
    for (unsigned i = 0; i < c->txn.n; i++) {
        const mr_state_op_result_t *r = &res->r[i];
        if (res->status == MR_STATE_DENIED && (int)i > res->denied_op)
            break; /* not evaluated */
        switch (c->roles[i]) {
        case ROLE_RPM:
            atomic_store(&k->c.req_used, r->used);
            break;
        case ROLE_TPM:
            atomic_store(&k->c.tok_used, r->used);
            break;
        case ROLE_PAR:
            atomic_store(&k->c.in_flight, r->used);
            break;
        case ROLE_BUDGET:
            atomic_store(&k->c.spent, r->spent);
            atomic_store(&k->c.used, r->used);
            break;
        case ROLE_PROV:
            if (c->prov < L->n_provs) {
                uint64_t start, end;
                char id[24];
                mr_limits_period(L->provs[c->prov].period, now, id, sizeof(id), &start, &end);
                atomic_store(&L->provs[c->prov].used, r->used);
                atomic_store(&L->provs[c->prov].period_end, end);
            }
            break;
        }
    }
    if (k)
        atomic_store(&k->c.as_of, now);
}

static mr_limit_kind_t kind_of_role(int role)
{
    switch (role) {
    case ROLE_RPM:
        return MR_LIMIT_RPM;
    case ROLE_TPM:
        return MR_LIMIT_TPM;
    case ROLE_PAR:
        return MR_LIMIT_PARALLEL;
    case ROLE_BUDGET:
        return MR_LIMIT_BUDGET;
    default:
        return MR_LIMIT_PROVIDER_BUDGET;
    }
}

static uint32_t secs_ceil(uint64_t ms)
{
    uint64_t s = (ms + 999) / 1000;
    return s == 0 ? 1 : s > UINT32_MAX ? UINT32_MAX : (uint32_t)s;
}

static void fill_headers(const mr_limits_engine_t *L, const call_t *c, const mr_state_result_t *res,
                         mr_limits_verdict_t *v)
{
    const lkey_t *k = key_of(L, c->key);
    for (unsigned i = 0; k && i < c->txn.n; i++) {
        const mr_state_op_result_t *r = &res->r[i];
        if (c->roles[i] == ROLE_RPM) {
            v->has_requests = true;
            v->limit_requests = k->rpm;
            v->remaining_requests = r->used < k->rpm ? k->rpm - r->used : 0;
            v->reset_requests_ms = r->reset_ms;
        } else if (c->roles[i] == ROLE_TPM) {
            v->has_tokens = true;
            v->limit_tokens = k->tpm;
            v->remaining_tokens = r->used < k->tpm ? k->tpm - r->used : 0;
            v->reset_tokens_ms = r->reset_ms;
        }
    }
}

static void refusal(mr_limits_engine_t *L, const call_t *c, const mr_state_result_t *res,
                    mr_limits_verdict_t *v)
{
    int role = c->roles[res->denied_op];
    const mr_state_op_result_t *r = &res->r[res->denied_op];
    lkey_t *k = c->key < L->n_keys ? &L->keys[c->key] : NULL;
    v->limit = kind_of_role(role);
    if (role == ROLE_BUDGET || role == ROLE_PROV) {
        uint64_t start, end, now = mr_state_now(L->st);
        char id[24];
        mr_budget_period_t p = role == ROLE_PROV ? L->provs[c->prov].period
                               : k               ? k->period
                                                 : MR_PERIOD_TOTAL;
        mr_limits_period(p, now, id, sizeof(id), &start, &end);
        v->outcome = role == ROLE_BUDGET ? MR_LIMITS_QUOTA : MR_LIMITS_PROVIDER_OVER;
        v->retry_after_s = end == UINT64_MAX ? 0 : secs_ceil(end - now);
    } else {
        v->outcome = MR_LIMITS_RATE_LIMITED;
        v->retry_after_s = role == ROLE_PAR ? 1 : secs_ceil(r->retry_ms);
    }
    if (k)
        atomic_fetch_add(&k->c.limited[v->limit], 1);
}

static void verdict_of(mr_limits_engine_t *L, const call_t *c, const mr_state_result_t *res,
                       mr_limits_req_t *r)
{
    mr_limits_verdict_t *v = &r->verdict;
    lkey_t *k = c->key < L->n_keys ? &L->keys[c->key] : NULL;
    bool admit = c->stage == STAGE_ADMIT;
    if (admit)
        memset(v, 0, sizeof(*v));
    v->outcome = MR_LIMITS_ALLOW;
    v->limit = MR_LIMIT_NONE;
    v->retry_after_s = 0;
    v->local = res->local;
    if (admit)
        fill_headers(L, c, res, v);
    if (res->status == MR_STATE_UNAVAILABLE) {
        v->outcome = MR_LIMITS_UNAVAILABLE;
        if (k)
            atomic_fetch_add(&k->c.unavailable, 1);
    } else if (res->status == MR_STATE_DENIED) {
        refusal(L, c, res, v);
    } else if (admit) {
        r->_admitted = true;
        r->_local_lease = r->_local_budget = res->local;
        if (k)
            atomic_fetch_add(&k->c.allowed, 1);
    } else if (c->stage == STAGE_ATTEMPT) {
        r->_prov_held = true;
        r->_prov_local = res->local;
    }
}

/* ---- calls ------------------------------------------------------------ */

static void ignore_result(void *arg, const mr_state_result_t *res)
{
    call_t *c = arg;
    note_results(c->L, c, res);
    unref(c->L);
    free(c);
}

static void discard(void *arg, const mr_state_result_t *res)
{
    (void)arg;
    (void)res;
}

/* A cancelled call completed: give back what it took. */
static void undo(call_t *c, const mr_state_result_t *res)
{
    mr_state_txn_t t = {0};
    for (unsigned i = 0; i < c->txn.n; i++) {
        const mr_state_op_t *op = &c->txn.ops[i];
        mr_state_op_t *u;
        if (op->kind == MR_OP_WINDOW_HIT &&
            (u = mr_state_txn_add(&t, MR_OP_WINDOW_ADD, op->key, NULL)) != NULL) {
            u->amount = -op->amount;
            u->window_ms = op->window_ms;
            u->at_ms = c->at_ms;
        } else if (op->kind == MR_OP_POOL_RESERVE &&
                   (u = mr_state_txn_add(&t, MR_OP_POOL_RELEASE, op->key, op->id)) != NULL) {
            u->local = res->local;
        }
    }
    if (t.n)
        mr_state_exec(c->sl, &t, discard, NULL);
}

/* A call is held by its launcher until launch returns and by the state
 * until the answer; the last to let go frees it. */
static void call_release(call_t *c)
{
    if (--c->holds == 0) {
        unref(c->L);
        free(c);
    }
}

static void on_state(void *arg, const mr_state_result_t *res)
{
    call_t *c = arg;
    mr_limits_req_t *r = c->r;
    note_results(c->L, c, res);
    if (!r) {
        if (res->status == MR_STATE_OK && c->stage != STAGE_REFRESH)
            undo(c, res);
    } else if (c->stage != STAGE_REFRESH) {
        verdict_of(c->L, c, res, r);
    }
    c->completed = true;
    if (r && !c->in_call) { /* answered later: the request is told */
        r->_call = NULL;
        c->cb(c->arg, r);
    }
    call_release(c);
}

static call_t *new_call(mr_limits_engine_t *L, mr_state_loop_t *sl, mr_limits_req_t *r, int stage)
{
    call_t *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    atomic_fetch_add(&L->refs, 1);
    c->L = L;
    c->r = r;
    c->sl = sl;
    c->stage = stage;
    c->key = r ? r->_key : MR_LIMITS_NO_KEY;
    c->prov = r ? r->_prov : SIZE_MAX;
    c->at_ms = mr_state_now(L->st);
    return c;
}

static mr_state_op_t *add_op(call_t *c, int role, mr_state_op_kind_t kind, const char *key,
                             const char *id)
{
    mr_state_op_t *op = mr_state_txn_add(&c->txn, kind, key, id);
    if (op)
        c->roles[c->txn.n - 1] = (uint8_t)role;
    return op;
}

/* Runs c's txn: DONE (answered already) or PENDING (cb follows). */
static int launch(call_t *c, mr_limits_cb cb, void *arg)
{
    mr_limits_req_t *r = c->r;
    bool done;
    c->cb = cb;
    c->arg = arg;
    c->in_call = true;
    c->holds = 2;
    if (mr_state_exec(c->sl, &c->txn, on_state, c) != 0) {
        c->holds--; /* no answer will come: a malformed txn is a bug, never a hang */
        c->completed = true;
        if (r)
            r->verdict.outcome = MR_LIMITS_UNAVAILABLE;
    }
    c->in_call = false;
    done = c->completed;
    if (!done && r)
        r->_call = c;
    call_release(c);
    return done ? MR_LIMITS_DONE : MR_LIMITS_PENDING;
}

static int done_allow(mr_limits_req_t *r)
{
    r->verdict.outcome = MR_LIMITS_ALLOW;
    r->verdict.limit = MR_LIMIT_NONE;
    r->verdict.retry_after_s = 0;
    return MR_LIMITS_DONE;
}

static int done_unavailable(mr_limits_req_t *r)
{
    r->verdict.outcome = MR_LIMITS_UNAVAILABLE;
    return MR_LIMITS_DONE;
}

/* Sends c's txn without waiting; the answer only refreshes the caches. */
static void fire(call_t *c)
{
    c->r = NULL;
    if (c->txn.n == 0 || mr_state_exec(c->sl, &c->txn, ignore_result, c) != 0) {
        unref(c->L);
        free(c);
    }
}

/* ---- the request's life ----------------------------------------------- */

/* A budget reservation of `amount` on the pool of `who` ("k" or "p") in the
 * period holding the call's time; the pool's name goes to pool_key. */
static void add_budget(call_t *c, int role, const char *who, const char *enc,
                       mr_budget_period_t period, int64_t cap, char *pool_key, const char *id,
                       int64_t amount)
{
    uint64_t end, key_ttl;
    budget_pool(who, enc, period, c->at_ms, pool_key, MR_STATE_KEY_MAX, &end, &key_ttl);
    mr_state_op_t *op = add_op(c, role, MR_OP_POOL_RESERVE, pool_key, id);
    op->amount = amount;
    op->limit = (uint64_t)cap;
    op->ttl_ms = c->L->ttl_ms;
    op->charge_on_expiry = true;
    op->persist = true;
    op->key_ttl_ms = key_ttl;
}

static void build_admit(call_t *c, const mr_limits_engine_t *L, const lkey_t *k, mr_limits_req_t *r)
{
    char name[MR_STATE_KEY_MAX];
    mr_state_op_t *op;
    if (k->rpm) {
        snprintf(name, sizeof(name), "k:%s:rpm", k->enc);
        op = add_op(c, ROLE_RPM, MR_OP_WINDOW_HIT, name, NULL);
        op->amount = 1;
        op->limit = k->rpm;
        op->window_ms = MR_LIMITS_WINDOW_MS;
    }
    if (k->tpm) {
        snprintf(name, sizeof(name), "k:%s:tpm", k->enc);
        op = add_op(c, ROLE_TPM, MR_OP_WINDOW_HIT, name, NULL);
        op->amount = r->_tok_est;
        op->limit = k->tpm;
        op->window_ms = MR_LIMITS_WINDOW_MS;
    }
    if (k->par) {
        snprintf(name, sizeof(name), "k:%s:par", k->enc);
        op = add_op(c, ROLE_PAR, MR_OP_POOL_RESERVE, name, r->_id);
        op->amount = 1;
        op->limit = k->par;
        op->ttl_ms = L->ttl_ms;
    }
    if (k->budget)
        add_budget(c, ROLE_BUDGET, "k", k->enc, k->period, k->budget, r->_budget_key, r->_id,
                   r->_cost_est);
}

int mr_limits_admit(mr_limits_engine_t *L, mr_state_loop_t *sl, mr_limits_req_t *r, size_t key,
                    const mr_limits_estimate_t *est, mr_limits_cb cb, void *arg)
{
    const lkey_t *k = key_of(L, key);
    memset(r, 0, sizeof(*r));
    r->_L = L;
    r->_sl = sl;
    r->_key = key;
    r->_prov = SIZE_MAX;
    r->_prompt_est = (int64_t)((est->body_bytes + L->bpt - 1) / L->bpt);
    r->_out_est = est->max_output_tokens ? est->max_output_tokens : L->default_out;
    r->_tok_est = r->_prompt_est + r->_out_est;
    r->_cost_est = cost_nusd((uint64_t)r->_prompt_est, (uint64_t)r->_out_est, &est->worst);
    if (!mr_limits_key_limited(L, key))
        return done_allow(r);
    call_t *c = new_call(L, sl, r, STAGE_ADMIT);
    if (!c)
        return done_unavailable(r);
    r->_at_ms = c->at_ms;
    mr_state_new_id(sl, r->_id);
    build_admit(c, L, k, r);
    return launch(c, cb, arg);
}

int mr_limits_attempt(mr_limits_engine_t *L, mr_limits_req_t *r, size_t provider,
                      const mr_limits_price_t *price, mr_limits_cb cb, void *arg)
{
    r->_price = *price;
    r->_prov = provider;
    r->_prov_held = false;
    r->_attempts++;
    r->_prov_est = cost_nusd((uint64_t)r->_prompt_est, (uint64_t)r->_out_est, price);
    if (provider >= L->n_provs || L->provs[provider].budget == 0)
        return done_allow(r);
    const lprov_t *p = &L->provs[provider];
    call_t *c = new_call(L, r->_sl, r, STAGE_ATTEMPT);
    if (!c)
        return done_unavailable(r);
    if (!r->_id[0])
        mr_state_new_id(r->_sl, r->_id);
    snprintf(r->_prov_id, sizeof(r->_prov_id), "%.36s.a%u", r->_id, r->_attempts);
    add_budget(c, ROLE_PROV, "p", p->enc, p->period, p->budget, r->_prov_key, r->_prov_id,
               r->_prov_est);
    return launch(c, cb, arg);
}

/* Closes a reservation: settle with cost, or release when nothing is owed. */
static void add_close(call_t *c, int role, const char *key, const char *id, bool settle,
                      int64_t cost, bool local)
{
    mr_state_op_t *op = add_op(c, role, settle ? MR_OP_POOL_SETTLE : MR_OP_POOL_RELEASE, key, id);
    op->amount = cost;
    op->local = local;
    op->persist = role == ROLE_BUDGET || role == ROLE_PROV;
}

void mr_limits_attempt_done(mr_limits_req_t *r, const mr_limits_usage_t *usage, bool succeeded)
{
    mr_limits_engine_t *L = r->_L;
    int64_t cost = 0;
    if (!L)
        return;
    if (usage) {
        cost = cost_nusd(usage->prompt_tokens, usage->completion_tokens, &r->_price);
        r->_tokens += (int64_t)(usage->prompt_tokens + usage->completion_tokens);
        r->_usage_known = true;
    } else if (succeeded) { /* no usage reported: book the worst case */
        cost = r->_prov_est;
        r->_tokens += r->_tok_est;
        r->_usage_known = true;
    }
    r->_cost += cost;
    /* only budgets are counted (a shared counter per request costs a cache line) */
    if (r->_prov < L->n_provs && L->provs[r->_prov].budget && cost > 0)
        atomic_fetch_add(&L->provs[r->_prov].spend, (uint64_t)cost);
    if (!r->_prov_held)
        return;
    r->_prov_held = false;
    call_t *c = new_call(L, r->_sl, r, STAGE_FIRE);
    if (!c)
        return;
    add_close(c, ROLE_PROV, r->_prov_key, r->_prov_id, usage || succeeded, cost, r->_prov_local);
    fire(c);
}

void mr_limits_cancel(mr_limits_req_t *r)
{
    if (r->_call) {
        r->_call->r = NULL;
        r->_call = NULL;
    }
}

void mr_limits_finish(mr_limits_req_t *r)
{
    mr_limits_engine_t *L = r->_L;
    char name[MR_STATE_KEY_MAX];
    if (!L || r->_finished)
        return;
    r->_finished = true;
    mr_limits_cancel(r);
    if (r->_prov_held)
        mr_limits_attempt_done(r, NULL, false);
    const lkey_t *k = key_of(L, r->_key);
    if (!r->_admitted || !k)
        return;
    call_t *c = new_call(L, r->_sl, r, STAGE_FIRE);
    if (!c)
        return;
    if (k->budget)
        add_close(c, ROLE_BUDGET, r->_budget_key, r->_id, r->_usage_known, r->_cost,
                  r->_local_budget);
    if (k->tpm) {
        int64_t delta = (r->_usage_known ? r->_tokens : 0) - r->_tok_est;
        snprintf(name, sizeof(name), "k:%s:tpm", k->enc);
        mr_state_op_t *op = add_op(c, ROLE_TPM, MR_OP_WINDOW_ADD, name, NULL);
        op->amount = delta;
        op->window_ms = MR_LIMITS_WINDOW_MS;
        op->at_ms = r->_at_ms;
    }
    if (k->par) {
        snprintf(name, sizeof(name), "k:%s:par", k->enc);
        add_close(c, ROLE_PAR, name, r->_id, false, 0, r->_local_lease);
    }
    atomic_fetch_add(&L->keys[r->_key].c.spend, (uint64_t)r->_cost);
    fire(c);
}

bool mr_limits_provider_over(const mr_limits_engine_t *L, size_t provider)
{
    if (provider >= L->n_provs || L->provs[provider].budget == 0)
        return false;
    const lprov_t *p = &L->provs[provider];
    return mr_state_now(L->st) < atomic_load(&p->period_end) &&
           atomic_load(&p->used) >= (uint64_t)p->budget;
}

int mr_limits_refresh(mr_limits_engine_t *L, mr_state_loop_t *sl, mr_limits_req_t *r, size_t key,
                      mr_limits_cb cb, void *arg)
{
    const lkey_t *k = key_of(L, key);
    char name[MR_STATE_KEY_MAX];
    memset(r, 0, sizeof(*r));
    r->_L = L;
    r->_sl = sl;
    r->_key = key;
    r->_prov = SIZE_MAX;
    if (!mr_limits_key_limited(L, key))
        return MR_LIMITS_DONE;
    call_t *c = new_call(L, sl, r, STAGE_REFRESH);
    if (!c)
        return MR_LIMITS_DONE;
    if (k->rpm || k->tpm) {
        snprintf(name, sizeof(name), "k:%s:%s", k->enc, k->rpm ? "rpm" : "tpm");
        add_op(c, k->rpm ? ROLE_RPM : ROLE_TPM, MR_OP_WINDOW_GET, name, NULL)->window_ms =
            MR_LIMITS_WINDOW_MS;
    }
    if (k->rpm && k->tpm) {
        snprintf(name, sizeof(name), "k:%s:tpm", k->enc);
        add_op(c, ROLE_TPM, MR_OP_WINDOW_GET, name, NULL)->window_ms = MR_LIMITS_WINDOW_MS;
    }
    if (k->par) {
        snprintf(name, sizeof(name), "k:%s:par", k->enc);
        add_op(c, ROLE_PAR, MR_OP_POOL_GET, name, NULL);
    }
    if (k->budget) {
        uint64_t end, key_ttl;
        budget_pool("k", k->enc, k->period, c->at_ms, name, sizeof(name), &end, &key_ttl);
        add_op(c, ROLE_BUDGET, MR_OP_POOL_GET, name, NULL);
    }
    return launch(c, cb, arg);
}
