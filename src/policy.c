/*
 * policy — filters, the policy stack and the request-level `provider` object.
 *
 * Filters are evaluated per target through mr_target_attr, so allow/deny
 * lists work for any attribute (built-in or tag) with one code path. Every
 * exclusion carries a reason a person can act on, e.g.
 *   jurisdiction US not in [FR, DE, CH] (policy eu-only)
 * Reasons are written into caller buffers: no heap on the request path.
 */
#include "meridian/policy.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define QUOTE_MAX 64 /* bytes of a client- or config-supplied value quoted in a reason */
#define LIST_MAX 96  /* bytes of a "[a, b, c]" list in a reason */

/* ------------------------------------------------------------------------ */
/* Small formatting helpers                                                  */
/* ------------------------------------------------------------------------ */

/* Copy at most `max` bytes of s (cut on a UTF-8 boundary, "..." when cut). */
static const char *clip(char *buf, size_t n, const char *s, size_t max)
{
    size_t len = strlen(s), take = len;

    if (take > max) {
        take = max;
        while (take > 0 && ((unsigned char)s[take] & 0xC0) == 0x80)
            take--;
    }
    snprintf(buf, n, "%.*s%s", (int)take, s, take < len ? "..." : "");
    return buf;
}

/* "[a, b, c]" bounded to LIST_MAX bytes ("[a, b, ...]" when cut). */
static const char *fmt_list(char *buf, size_t n, const char *const *vals, size_t nv)
{
    size_t o = 0;

    if (n < 8) {
        if (n)
            buf[0] = '\0';
        return buf;
    }
    buf[o++] = '[';
    for (size_t i = 0; i < nv; i++) {
        size_t need = strlen(vals[i]) + (i ? 2 : 0);
        if (o + need + 6 > n || o + need > LIST_MAX) {
            o += (size_t)snprintf(buf + o, n - o, "%s...", i ? ", " : "");
            break;
        }
        o += (size_t)snprintf(buf + o, n - o, "%s%s", i ? ", " : "", vals[i]);
    }
    snprintf(buf + o, n - o, "]");
    return buf;
}

static void setf(char *buf, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void setf(char *buf, size_t n, const char *fmt, ...)
{
    va_list ap;

    if (!buf || !n)
        return;
    va_start(ap, fmt);
    vsnprintf(buf, n, fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------------------------ */
/* Static filters of a configured policy                                     */
/* ------------------------------------------------------------------------ */

/* Jurisdiction codes compare case-insensitively, everything else exactly. */
static bool value_matches(const char *attr, const char *want, const char *have)
{
    if (!strcmp(attr, "jurisdiction"))
        return !strcasecmp(want, have);
    return !strcmp(want, have);
}

static bool rule_matches(const mr_attr_rule_t *r, const char *have)
{
    if (!have || !*have)
        return false;
    for (size_t i = 0; i < r->n_values; i++)
        if (value_matches(r->attr, r->values[i], have))
            return true;
    return false;
}

/* Prices: a bound on a component whose price is unknown excludes the target. */
static int check_price(const mr_target_t *t, bool has_in, double max_in, bool has_out,
                       double max_out, const char *in_name, const char *out_name,
                       const char *suffix, char *reason, size_t n)
{
    if ((has_in && !t->has_input_price) || (has_out && !t->has_output_price)) {
        setf(reason, n, "price unknown %s", suffix);
        return -1;
    }
    if (has_in && t->input_per_mtok > max_in) {
        setf(reason, n, "%s price %g > %g USD/Mtok %s", in_name, t->input_per_mtok, max_in, suffix);
        return -1;
    }
    if (has_out && t->output_per_mtok > max_out) {
        setf(reason, n, "%s price %g > %g USD/Mtok %s", out_name, t->output_per_mtok, max_out,
             suffix);
        return -1;
    }
    return 0;
}

int mr_policy_check_target(const mr_policy_t *p, const mr_target_t *t, char *reason, size_t n,
                           char *rule, size_t rule_n)
{
    char list[LIST_MAX + 16], val[QUOTE_MAX + 8], suffix[MR_POLICY_LABEL_MAX];

    for (size_t i = 0; i < p->n_allow; i++) {
        const mr_attr_rule_t *r = &p->allow[i];
        const char *have = mr_target_attr(t, r->attr);
        if (rule_matches(r, have))
            continue;
        setf(rule, rule_n, "allow.%s", r->attr);
        if (!reason)
            return -1;
        fmt_list(list, sizeof(list), (const char *const *)r->values, r->n_values);
        if (have && *have)
            setf(reason, n, "%s %s not in %s (policy %s)", r->attr,
                 clip(val, sizeof(val), have, QUOTE_MAX), list, p->name);
        else
            setf(reason, n, "%s not set, not in %s (policy %s)", r->attr, list, p->name);
        return -1;
    }
    for (size_t i = 0; i < p->n_deny; i++) {
        const mr_attr_rule_t *r = &p->deny[i];
        const char *have = mr_target_attr(t, r->attr);
        if (!rule_matches(r, have))
            continue;
        setf(rule, rule_n, "deny.%s", r->attr);
        setf(reason, n, "%s %s denied (policy %s)", r->attr,
             reason ? clip(val, sizeof(val), have, QUOTE_MAX) : "", p->name);
        return -1;
    }
    if (p->open_weights_only && !t->open_weights) {
        setf(rule, rule_n, "open_weights_only");
        setf(reason, n, "not open weights (policy %s: open_weights_only)", p->name);
        return -1;
    }
    if (p->deny_data_collection && t->provider->retains_data) {
        setf(rule, rule_n, "data_collection");
        setf(reason, n, "retains_data (policy %s: data_collection deny)", p->name);
        return -1;
    }
    if (p->zdr_only && !t->provider->zdr) {
        setf(rule, rule_n, "zdr_only");
        setf(reason, n, "no zero data retention (policy %s: zdr_only)", p->name);
        return -1;
    }
    if (p->has_max_input || p->has_max_output) {
        snprintf(suffix, sizeof(suffix), "(policy %s: max_price)", p->name);
        if (check_price(t, p->has_max_input, p->max_input_per_mtok, p->has_max_output,
                        p->max_output_per_mtok, "input", "output", suffix, reason, n) < 0) {
            setf(rule, rule_n, "max_price");
            return -1;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* The request layer                                                         */
/* ------------------------------------------------------------------------ */

static bool in_names(const mr_name_list_t *l, const char *name)
{
    for (size_t i = 0; i < l->n; i++)
        if (!strcasecmp(l->names[i], name))
            return true;
    return false;
}

static const char *fmt_names(char *buf, size_t n, const mr_name_list_t *l)
{
    const char *vals[MR_REQ_MAX_NAMES];

    for (size_t i = 0; i < l->n; i++)
        vals[i] = l->names[i];
    return fmt_list(buf, n, vals, l->n);
}

/* What the request needs of a target: capabilities, and with
 * require_parameters every parameter it sent. */
static int check_needs(const mr_request_policy_t *rp, const mr_target_t *t, char *reason, size_t n,
                       char *rule, size_t rule_n)
{
    const char *param = rp->unsupported[t->provider->kind];

    if (rp->needs & ~t->capabilities) {
        char need[160], has[160];
        setf(rule, rule_n, "capabilities");
        setf(reason, n, "needs %s; the target has %s (capabilities)",
             mr_capabilities_format(rp->needs & ~t->capabilities, need, sizeof(need)),
             t->capabilities ? mr_capabilities_format(t->capabilities, has, sizeof(has)) : "none");
        return -1;
    }
    if (rp->require_parameters && param) {
        setf(rule, rule_n, "provider.require_parameters");
        setf(reason, n,
             "%s targets do not support parameter %.64s (request: "
             "provider.require_parameters)",
             mr_provider_kind_name(t->provider->kind), param);
        return -1;
    }
    return 0;
}

int mr_request_policy_check_target(const mr_request_policy_t *rp, const mr_target_t *t,
                                   char *reason, size_t n, char *rule, size_t rule_n)
{
    const char *prov = t->provider->name;
    char list[LIST_MAX + 16];

    if (check_needs(rp, t, reason, n, rule, rule_n) < 0)
        return -1;
    if (!rp->present)
        return 0;
    if (rp->only.n && !in_names(&rp->only, prov)) {
        setf(rule, rule_n, "provider.only");
        setf(reason, n, "provider %s not in provider.only %s (request)", prov,
             reason ? fmt_names(list, sizeof(list), &rp->only) : "");
        return -1;
    }
    if (in_names(&rp->ignore, prov)) {
        setf(rule, rule_n, "provider.ignore");
        setf(reason, n, "provider %s in provider.ignore (request)", prov);
        return -1;
    }
    if (!rp->allow_fallbacks && rp->order.n && !in_names(&rp->order, prov)) {
        setf(rule, rule_n, "provider.order");
        setf(reason, n, "provider %s not in provider.order %s (request: allow_fallbacks false)",
             prov, reason ? fmt_names(list, sizeof(list), &rp->order) : "");
        return -1;
    }
    if (rp->deny_data_collection && t->provider->retains_data) {
        setf(rule, rule_n, "provider.data_collection");
        setf(reason, n, "retains_data (request: provider.data_collection deny)");
        return -1;
    }
    if (rp->zdr && !t->provider->zdr) {
        setf(rule, rule_n, "provider.zdr");
        setf(reason, n, "no zero data retention (request: provider.zdr)");
        return -1;
    }
    if ((rp->has_max_prompt || rp->has_max_completion) &&
        check_price(t, rp->has_max_prompt, rp->max_prompt, rp->has_max_completion,
                    rp->max_completion, "prompt", "completion", "(request: provider.max_price)",
                    reason, n) < 0) {
        setf(rule, rule_n, "provider.max_price");
        return -1;
    }
    return 0;
}

int mr_policy_stack_check_target(const mr_policy_stack_t *st, const mr_target_t *t, char *reason,
                                 size_t n, char *rule, size_t rule_n, const char **policy_out)
{
    if (policy_out)
        *policy_out = NULL;
    if (st->key && mr_policy_check_target(st->key, t, reason, n, rule, rule_n) < 0) {
        if (policy_out)
            *policy_out = st->key->name;
        return -1;
    }
    if (st->chosen && mr_policy_check_target(st->chosen, t, reason, n, rule, rule_n) < 0) {
        if (policy_out)
            *policy_out = st->chosen->name;
        return -1;
    }
    if (mr_request_policy_check_target(&st->request, t, reason, n, rule, rule_n) < 0) {
        if (policy_out)
            *policy_out = "request";
        return -1;
    }
    return 0;
}

/* Attributes a provider has whatever model it serves. */
static bool provider_level(const char *attr)
{
    static const char *const attrs[] = {"provider", "kind", "vendor", "region", "jurisdiction"};

    for (size_t i = 0; i < sizeof(attrs) / sizeof(attrs[0]); i++)
        if (!strcmp(attr, attrs[i]))
            return true;
    return false;
}

static bool target_rule(const mr_policy_t *p, char *rule, size_t n)
{
    for (size_t i = 0; i < p->n_allow; i++)
        if (!provider_level(p->allow[i].attr)) {
            setf(rule, n, "allow.%s", p->allow[i].attr);
            return true;
        }
    for (size_t i = 0; i < p->n_deny; i++)
        if (!provider_level(p->deny[i].attr)) {
            setf(rule, n, "deny.%s", p->deny[i].attr);
            return true;
        }
    return false;
}

bool mr_policy_stack_needs_target(const mr_policy_stack_t *st, char *rule, size_t n,
                                  const char **policy_out)
{
    const mr_policy_t *layers[2] = {st->key, st->chosen};

    for (size_t i = 0; i < 2; i++)
        if (layers[i] && target_rule(layers[i], rule, n)) {
            *policy_out = layers[i]->name;
            return true;
        }
    return false;
}

mr_strategy_t mr_policy_stack_strategy(const mr_policy_stack_t *st, const char **from)
{
    const char *dummy;

    if (!from)
        from = &dummy;
    if (st->request.present && st->request.sort != MR_SORT_NONE) {
        *from = "request";
        return st->request.sort == MR_SORT_PRICE ? MR_STRATEGY_CHEAPEST : MR_STRATEGY_LEAST_LATENCY;
    }
    if (st->chosen && st->chosen->strategy_set) {
        *from = st->chosen->name;
        return st->chosen->strategy;
    }
    if (st->key && st->key->strategy_set) {
        *from = st->key->name;
        return st->key->strategy;
    }
    *from = "default";
    return MR_STRATEGY_PRIORITY;
}

mr_diversity_t mr_policy_stack_diversity(const mr_policy_stack_t *st, const char **from)
{
    const char *dummy;

    if (!from)
        from = &dummy;
    if (st->chosen && st->chosen->diversity_set) {
        *from = st->chosen->name;
        return st->chosen->diversity;
    }
    if (st->key && st->key->diversity_set) {
        *from = st->key->name;
        return st->key->diversity;
    }
    *from = "default";
    return MR_DIVERSITY_NONE;
}

bool mr_policy_stack_empty(const mr_policy_stack_t *st)
{
    return !st->key && !st->chosen && !st->request.present && !st->request.needs &&
           !st->request.has_pin;
}

/* ------------------------------------------------------------------------ */
/* Parsing the request's `provider` object                                  */
/* ------------------------------------------------------------------------ */

static const char *json_kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "object";
    case JSON_ARRAY:
        return "array";
    case JSON_STRING:
        return "string";
    case JSON_INTEGER:
    case JSON_REAL:
        return "number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "boolean";
    case JSON_NULL:
        return "null";
    }
    return "value";
}

#define BAD(err, ...) (mr_error_set((err), 400, NULL, NULL, "provider", __VA_ARGS__), -1)

static int parse_names(const char *key, const json_t *v, mr_name_list_t *l, mr_error_t *err)
{
    size_t i;
    const json_t *e;

    if (!json_is_array(v))
        return BAD(err, "provider.%s must be an array of provider names (got %s)", key,
                   json_kind(v));
    if (json_array_size(v) > MR_REQ_MAX_NAMES)
        return BAD(err, "provider.%s lists %zu providers; at most %d are accepted", key,
                   json_array_size(v), MR_REQ_MAX_NAMES);
    json_array_foreach(v, i, e)
    {
        const char *s;
        if (!json_is_string(e))
            return BAD(err, "provider.%s[%zu] must be a string (got %s)", key, i, json_kind(e));
        s = json_string_value(e);
        if (!*s || strlen(s) > MR_REQ_NAME_MAX)
            return BAD(err, "provider.%s[%zu] must be a provider name of 1 to %d bytes", key, i,
                       MR_REQ_NAME_MAX);
        memcpy(l->names[l->n], s, strlen(s) + 1);
        l->n++;
    }
    return 0;
}

static int parse_max_price(json_t *v, mr_request_policy_t *out, mr_error_t *err)
{
    const char *k;
    json_t *e;
    char q[QUOTE_MAX + 8];

    if (!json_is_object(v))
        return BAD(err,
                   "provider.max_price must be an object like {\"prompt\": 1, \"completion\": 2} "
                   "in USD per million tokens (got %s)",
                   json_kind(v));
    json_object_foreach(v, k, e)
    {
        bool prompt = !strcmp(k, "prompt");
        if (!prompt && strcmp(k, "completion"))
            return BAD(err,
                       "provider.max_price.%s is not supported (supported: prompt, completion)",
                       clip(q, sizeof(q), k, QUOTE_MAX));
        if (json_is_null(e))
            continue;
        if (!json_is_number(e) || !(json_number_value(e) >= 0))
            return BAD(err,
                       "provider.max_price.%s must be a non-negative number (USD per "
                       "million tokens)",
                       k);
        if (prompt) {
            out->has_max_prompt = true;
            out->max_prompt = json_number_value(e);
        } else {
            out->has_max_completion = true;
            out->max_completion = json_number_value(e);
        }
    }
    return 0;
}

int mr_policy_from_request(json_t *po, mr_request_policy_t *out, mr_error_t *err)
{
    const char *k;
    json_t *v;
    char q[QUOTE_MAX + 8];

    memset(out, 0, sizeof(*out));
    out->allow_fallbacks = true;
    if (!po || json_is_null(po))
        return 0;
    if (!json_is_object(po))
        return BAD(err, "provider must be an object of routing preferences (got %s)",
                   json_kind(po));
    out->present = true;
    json_object_foreach(po, k, v)
    {
        int rc = 0;

        if (json_is_null(v)) /* SDKs send explicit nulls for unset options */
            continue;
        if (!strcmp(k, "order"))
            rc = parse_names(k, v, &out->order, err);
        else if (!strcmp(k, "only"))
            rc = parse_names(k, v, &out->only, err);
        else if (!strcmp(k, "ignore"))
            rc = parse_names(k, v, &out->ignore, err);
        else if (!strcmp(k, "allow_fallbacks") || !strcmp(k, "zdr")) {
            if (!json_is_boolean(v))
                return BAD(err, "provider.%s must be true or false (got %s)", k, json_kind(v));
            if (k[0] == 'a')
                out->allow_fallbacks = json_is_true(v);
            else
                out->zdr = json_is_true(v);
        } else if (!strcmp(k, "data_collection")) {
            const char *s = json_string_value(v);
            if (!s || (strcmp(s, "allow") && strcmp(s, "deny")))
                return BAD(err, "provider.data_collection must be \"allow\" or \"deny\"");
            out->deny_data_collection = !strcmp(s, "deny");
        } else if (!strcmp(k, "sort")) {
            const char *s = json_string_value(v);
            if (s && !strcmp(s, "price"))
                out->sort = MR_SORT_PRICE;
            else if (s && !strcmp(s, "latency"))
                out->sort = MR_SORT_LATENCY;
            else if (s && !strcmp(s, "throughput"))
                out->sort = MR_SORT_THROUGHPUT;
            else
                return BAD(err, "provider.sort must be \"price\", \"latency\" or \"throughput\"");
        } else if (!strcmp(k, "max_price")) {
            rc = parse_max_price(v, out, err);
        } else if (!strcmp(k, "require_parameters")) {
            if (!json_is_boolean(v))
                return BAD(err, "provider.require_parameters must be true or false (got %s)",
                           json_kind(v));
            out->require_parameters = json_is_true(v);
        } else {
            return BAD(err,
                       "provider.%s is not supported (supported: order, only, ignore, "
                       "allow_fallbacks, data_collection, zdr, sort, max_price, "
                       "require_parameters)",
                       clip(q, sizeof(q), k, QUOTE_MAX));
        }
        if (rc < 0)
            return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* The stack                                                                 */
/* ------------------------------------------------------------------------ */

static void make_label(mr_policy_stack_t *st)
{
    size_t o = 0;
    const char *parts[3];
    size_t np = 0;

    if (st->key)
        parts[np++] = st->key->name;
    if (st->chosen)
        parts[np++] = st->chosen->name;
    if (st->request.present)
        parts[np++] = "request";
    st->label[0] = '\0';
    for (size_t i = 0; i < np && o < sizeof(st->label); i++)
        o += (size_t)snprintf(st->label + o, sizeof(st->label) - o, "%s%s", i ? "+" : "", parts[i]);
}

int mr_policy_stack_init(mr_policy_stack_t *st, const mr_config_t *cfg, const mr_key_t *key,
                         const char *header_policy, json_t *provider_obj, mr_error_t *err)
{
    memset(st, 0, sizeof(*st));
    st->key = key ? key->policy : NULL;
    if (cfg->policy_header == MR_POLICY_HEADER_IGNORE)
        header_policy = NULL;
    if (header_policy) {
        size_t len;
        while (*header_policy == ' ' || *header_policy == '\t')
            header_policy++;
        len = strlen(header_policy);
        while (len && (header_policy[len - 1] == ' ' || header_policy[len - 1] == '\t'))
            len--;
        if (len) {
            char name[MR_REQ_NAME_MAX + 1], known[512], q[QUOTE_MAX + 8];
            size_t o = 0;

            if (len <= MR_REQ_NAME_MAX) {
                memcpy(name, header_policy, len);
                name[len] = '\0';
                st->chosen = mr_config_find_policy(cfg, name);
            }
            if (!st->chosen) {
                known[0] = '\0';
                for (size_t i = 0; i < cfg->n_policies && o < sizeof(known); i++)
                    o += (size_t)snprintf(known + o, sizeof(known) - o, "%s%s", i ? ", " : "",
                                          cfg->policies[i].name);
                if (len > MR_REQ_NAME_MAX)
                    len = MR_REQ_NAME_MAX;
                memcpy(name, header_policy, len);
                name[len] = '\0';
                mr_error_set(err, 400, NULL, "policy_not_found", NULL,
                             "unknown policy \"%s\" in x-meridian-policy; %s%s",
                             clip(q, sizeof(q), name, QUOTE_MAX),
                             cfg->n_policies ? "known policies: " : "no policies are configured",
                             known);
                return -1;
            }
            st->chosen_by_header = true;
        }
    }
    /* narrow_only: an unbound request keeps the default policy as its base
     * layer, so the header can add rules but not lift them */
    if (st->chosen && !st->key && cfg->policy_header == MR_POLICY_HEADER_NARROW_ONLY) {
        st->key = cfg->default_policy;
        st->key_is_default = st->key != NULL;
    }
    if (!st->chosen && !st->key)
        st->chosen = cfg->default_policy;
    if (st->chosen == st->key) /* the same policy twice adds nothing */
        st->chosen = NULL;
    if (mr_policy_from_request(provider_obj, &st->request, err) < 0)
        return -1;
    make_label(st);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Canonical form and hash                                                   */
/* ------------------------------------------------------------------------ */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static json_t *rules_json(const mr_attr_rule_t *rules, size_t n)
{
    json_t *o = json_object();

    for (size_t i = 0; o && i < n; i++) {
        const mr_attr_rule_t *r = &rules[i];
        char **sorted = malloc((r->n_values ? r->n_values : 1) * sizeof(char *));
        json_t *arr = json_array();
        if (!sorted || !arr) {
            free(sorted);
            json_decref(arr);
            json_decref(o);
            return NULL;
        }
        memcpy(sorted, r->values, r->n_values * sizeof(char *));
        qsort(sorted, r->n_values, sizeof(char *), cmp_str);
        for (size_t j = 0; j < r->n_values; j++)
            if (j == 0 || strcmp(sorted[j], sorted[j - 1]))
                json_array_append_new(arr, json_string(sorted[j]));
        free(sorted);
        json_object_set_new(o, r->attr, arr);
    }
    return o;
}

json_t *mr_policy_to_json(const mr_policy_t *p)
{
    json_t *o = json_object(), *mp = NULL;

    if (!o)
        return NULL;
    if (p->has_max_input || p->has_max_output) {
        mp = json_object();
        json_object_set_new(mp, "input",
                            p->has_max_input ? json_real(p->max_input_per_mtok) : json_null());
        json_object_set_new(mp, "output",
                            p->has_max_output ? json_real(p->max_output_per_mtok) : json_null());
    }
    json_object_set_new(o, "v", json_integer(1));
    json_object_set_new(o, "allow", rules_json(p->allow, p->n_allow));
    json_object_set_new(o, "deny", rules_json(p->deny, p->n_deny));
    json_object_set_new(o, "open_weights_only", json_boolean(p->open_weights_only));
    json_object_set_new(o, "data_collection",
                        json_string(p->deny_data_collection ? "deny" : "allow"));
    json_object_set_new(o, "zdr_only", json_boolean(p->zdr_only));
    json_object_set_new(o, "max_price", mp ? mp : json_null());
    json_object_set_new(o, "strategy",
                        p->strategy_set ? json_string(mr_strategy_name(p->strategy)) : json_null());
    json_object_set_new(o, "fallback_diversity",
                        p->diversity_set ? json_string(mr_diversity_name(p->diversity))
                                         : json_null());
    json_object_set_new(o, "max_vendor_share",
                        p->max_vendor_share > 0 ? json_real(p->max_vendor_share) : json_null());
    json_object_set_new(o, "share_window_s",
                        p->max_vendor_share > 0 ? json_integer(p->share_window_s) : json_null());
    json_object_set_new(o, "min_vendors",
                        p->min_vendors ? json_integer(p->min_vendors) : json_null());
    /* added in 0.2.0: only when set, so that older policies keep their hash */
    if (p->session_ttl_set)
        json_object_set_new(o, "session_ttl_s", json_integer(p->session_ttl_s));
    /* any member that failed to allocate makes the form incomplete */
    if (json_object_size(o) != 12u + p->session_ttl_set || !json_object_get(o, "allow") ||
        !json_object_get(o, "deny")) {
        json_decref(o);
        return NULL;
    }
    return o;
}

const char *mr_policy_hash(const mr_policy_t *p)
{
    return p->hash;
}
