/*
 * config_policies — the loaders of "policies" and "keys" (docs/routing.md
 * says what the rules mean; policy.h evaluates them). A policy's canonical
 * hash is computed here, once, at load.
 *
 * Secrets: a key's sha256 value is never quoted back (a pasted key must not
 * reach a log); policies hold no secrets.
 */
#include "meridian/config_policies.h"

#include "meridian/config_check.h"
#include "meridian/policy.h"
#include "meridian/sha256.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* allow / deny                                                              */
/* ------------------------------------------------------------------------ */

/* One value of a rule on `attr`, owned by the rule already; jurisdictions
 * are normalised, kinds must exist. */
static int check_rule_value(mr_loader_t *ld, const char *attr, char *val)
{
    mr_provider_kind_t kind;

    if (!strcmp(attr, "jurisdiction"))
        return mr_loader_jurisdiction(ld, val);
    if (!strcmp(attr, "kind") && mr_provider_kind_parse(val, &kind) < 0) {
        char q[MR_LOADER_QUOTE_MAX];
        return mr_loader_fail(ld, "must be one of openai, anthropic, gemini, azure (got %s)",
                              mr_loader_quote(q, sizeof(q), val));
    }
    return 0;
}

/* The values of one rule: a non-empty array of bounded strings. */
static int load_rule_values(mr_loader_t *ld, json_t *v, mr_attr_rule_t *r)
{
    size_t nv = json_is_array(v) ? json_array_size(v) : 0;

    if (nv == 0)
        return mr_loader_fail(ld, "must be a non-empty array of strings (got %s)",
                              json_is_array(v) ? "an empty array" : mr_loader_type_name(v));
    if (nv > MR_RULE_VALUES_MAX)
        return mr_loader_fail(ld, "at most %d values (got %zu)", MR_RULE_VALUES_MAX, nv);
    if (!(r->values = calloc(nv, sizeof(char *))))
        return mr_loader_fail(ld, "out of memory");
    for (size_t i = 0; i < nv; i++) {
        json_t *e = json_array_get(v, i);
        size_t si = mr_loader_index(ld, i);
        const char *val;

        if (!json_is_string(e))
            return mr_loader_fail(ld, "must be a string (got %s)", mr_loader_type_name(e));
        val = json_string_value(e);
        if (mr_loader_text(ld, val, false, MR_RULE_VALUE_MAX) < 0)
            return -1;
        if (!(r->values[r->n_values] = strdup(val)))
            return mr_loader_fail(ld, "out of memory");
        if (check_rule_value(ld, r->attr, r->values[r->n_values++]) < 0)
            return -1;
        mr_loader_pop(ld, si);
    }
    return 0;
}

/* "allow" / "deny": {"region": ["eu", "ch"], "license": ["mit"]} */
static int load_rules(mr_loader_t *ld, json_t *pol, const char *key, mr_attr_rule_t **out,
                      size_t *n)
{
    json_t *o = json_object_get(pol, key), *v;
    const char *attr;
    size_t saved, count;

    if (!o)
        return 0;
    saved = mr_loader_key(ld, key);
    if (!json_is_object(o))
        return mr_loader_fail(ld,
                              "must be an object mapping attribute names to arrays of values, "
                              "e.g. {\"region\": [\"eu\"]} (got %s)",
                              mr_loader_type_name(o));
    count = json_object_size(o) - (json_object_get(o, "$comment") ? 1 : 0);
    if (count == 0)
        return mr_loader_fail(ld, "must name at least one attribute");
    if (!(*out = calloc(count, sizeof(**out))))
        return mr_loader_fail(ld, "out of memory");
    json_object_foreach(o, attr, v)
    {
        size_t s = mr_loader_key(ld, attr);
        mr_attr_rule_t *r;

        if (!strcmp(attr, "$comment")) {
            if (!json_is_string(v))
                return mr_loader_fail(ld, "must be a string (got %s)", mr_loader_type_name(v));
            mr_loader_pop(ld, s);
            continue;
        }
        if (mr_config_check_attr_ref(ld, attr) < 0)
            return -1;
        r = &(*out)[(*n)++];
        if (!(r->attr = strdup(attr)))
            return mr_loader_fail(ld, "out of memory");
        if (load_rule_values(ld, v, r) < 0)
            return -1;
        mr_loader_pop(ld, s);
    }
    mr_loader_pop(ld, saved);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Policies                                                                  */
/* ------------------------------------------------------------------------ */

static const char *data_collection_name(int i)
{
    return i == 0 ? "allow" : "deny";
}

static const char *strategy_name(int i)
{
    return mr_strategy_name((mr_strategy_t)i);
}

static const char *diversity_name(int i)
{
    return mr_diversity_name((mr_diversity_t)i);
}

/* max_price: {"input": 1.0, "output": 3.0}, at least one of them. */
static int load_max_price(mr_loader_t *ld, json_t *obj, mr_policy_t *p)
{
    static const char *const keys[] = {"input", "output", NULL};
    json_t *mp = json_object_get(obj, "max_price");
    size_t saved;

    if (!mp)
        return 0;
    saved = mr_loader_key(ld, "max_price");
    if (!json_is_object(mp))
        return mr_loader_fail(ld,
                              "must be an object like {\"input\": 1.0, \"output\": 3.0} in USD "
                              "per million tokens (got %s)",
                              mr_loader_type_name(mp));
    if (mr_loader_check_keys(ld, mp, keys) < 0 ||
        mr_loader_number(ld, mp, "input", 0, MR_PRICE_MAX, false, &p->has_max_input,
                         &p->max_input_per_mtok) < 0 ||
        mr_loader_number(ld, mp, "output", 0, MR_PRICE_MAX, false, &p->has_max_output,
                         &p->max_output_per_mtok) < 0)
        return -1;
    if (!p->has_max_input && !p->has_max_output)
        return mr_loader_fail(ld, "must set \"input\", \"output\" or both");
    mr_loader_pop(ld, saved);
    return 0;
}

/* strategy, fallback_diversity, max_vendor_share, share_window_s,
 * min_vendors, session_ttl_s */
static int load_ordering(mr_loader_t *ld, json_t *obj, mr_policy_t *p)
{
    json_int_t window = MR_SHARE_WINDOW_S, minv = 0, ttl = MR_SESSION_TTL_S;
    bool has_share;
    int e = 0;

    if (mr_loader_enum(ld, obj, "strategy", strategy_name, MR_STRATEGY_COUNT, &p->strategy_set,
                       &e) < 0)
        return -1;
    p->strategy = p->strategy_set ? (mr_strategy_t)e : MR_STRATEGY_PRIORITY;
    if (mr_loader_enum(ld, obj, "fallback_diversity", diversity_name, MR_DIVERSITY_COUNT,
                       &p->diversity_set, &e) < 0)
        return -1;
    p->diversity = p->diversity_set ? (mr_diversity_t)e : MR_DIVERSITY_NONE;
    if (mr_loader_number(ld, obj, "max_vendor_share", 0, 1, true, &has_share,
                         &p->max_vendor_share) < 0 ||
        mr_loader_int(ld, obj, "share_window_s", 1, 86400, &window) < 0 ||
        mr_loader_int(ld, obj, "min_vendors", 1, 32, &minv) < 0 ||
        mr_loader_int(ld, obj, "session_ttl_s", 1, 86400, &ttl) < 0)
        return -1;
    p->session_ttl_set = json_object_get(obj, "session_ttl_s") != NULL;
    p->session_ttl_s = (uint32_t)ttl;
    if (!has_share)
        p->max_vendor_share = 0;
    p->share_window_s = (uint32_t)window;
    p->min_vendors = (uint32_t)minv;
    return 0;
}

static int load_policy(mr_loader_t *ld, const char *name, json_t *obj, mr_policy_t *p)
{
    static const char *const keys[] = {"allow",
                                       "deny",
                                       "open_weights_only",
                                       "data_collection",
                                       "zdr_only",
                                       "max_price",
                                       "strategy",
                                       "fallback_diversity",
                                       "max_vendor_share",
                                       "share_window_s",
                                       "min_vendors",
                                       "session_ttl_s",
                                       NULL};
    bool present;
    int e = 0;

    p->share_slot = -1;
    if (mr_loader_name(ld, "policy", name, &p->name) < 0 || mr_loader_object(ld, obj) < 0)
        return -1;
    if (mr_loader_check_keys(ld, obj, keys) < 0 ||
        load_rules(ld, obj, "allow", &p->allow, &p->n_allow) < 0 ||
        load_rules(ld, obj, "deny", &p->deny, &p->n_deny) < 0 ||
        mr_loader_bool(ld, obj, "open_weights_only", &p->open_weights_only) < 0 ||
        mr_loader_bool(ld, obj, "zdr_only", &p->zdr_only) < 0 ||
        mr_loader_enum(ld, obj, "data_collection", data_collection_name, 2, &present, &e) < 0)
        return -1;
    p->deny_data_collection = present && e == 1;
    return load_max_price(ld, obj, p) < 0 || load_ordering(ld, obj, p) < 0 ? -1 : 0;
}

/* Hex SHA-256 of the canonical JSON form (docs/routing.md, "Policy hash"). */
static int hash_policy(mr_loader_t *ld, mr_policy_t *p)
{
    json_t *j = mr_policy_to_json(p);
    char *s = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    uint8_t d[MR_SHA256_DIGEST_LEN];

    json_decref(j);
    if (!s)
        return mr_loader_fail(ld, "out of memory");
    mr_sha256(s, strlen(s), d);
    mr_sha256_hex(d, p->hash);
    free(s);
    return 0;
}

static int load_policy_at(mr_loader_t *ld, const char *name, json_t *v, size_t i)
{
    mr_config_t *cfg = ld->cfg;
    mr_policy_t *p = &cfg->policies[i];

    p->index = i;
    if (load_policy(ld, name, v, p) < 0 || hash_policy(ld, p) < 0)
        return -1;
    if (p->max_vendor_share > 0)
        p->share_slot = (int)cfg->n_share_policies++;
    return 0;
}

int mr_config_policies_load(mr_loader_t *ld, json_t *root)
{
    mr_config_t *cfg = ld->cfg;
    return mr_loader_named(ld, root, "policies", "policy", "policies", 0, MR_POLICIES_MAX,
                           (void **)&cfg->policies, sizeof(*cfg->policies), &cfg->n_policies,
                           load_policy_at);
}

/* ------------------------------------------------------------------------ */
/* Gateway keys                                                              */
/* ------------------------------------------------------------------------ */

/* sha256: 64 hex digits, unique among the keys loaded so far. */
static int load_digest(mr_loader_t *ld, json_t *obj, mr_key_t *k)
{
    const mr_config_t *cfg = ld->cfg;
    const char *hex;
    size_t saved;

    if (mr_loader_plain(ld, obj, "sha256", true, &hex) < 0)
        return -1;
    saved = mr_loader_key(ld, "sha256");
    /* never quote the value back: a pasted secret must not reach a log */
    if (mr_sha256_from_hex(hex, k->digest) < 0)
        return mr_loader_fail(ld, "must be the SHA-256 of the key as 64 hex digits, e.g. the "
                                  "output of `printf %%s \"$KEY\" | sha256sum` (the secret itself "
                                  "never goes in the file)");
    for (size_t i = 0; i < (size_t)(k - cfg->keys); i++)
        if (!memcmp(cfg->keys[i].digest, k->digest, sizeof(k->digest)))
            return mr_loader_fail(ld, "same digest as keys.%s: give every key its own secret",
                                  cfg->keys[i].name);
    mr_loader_pop(ld, saved);
    return 0;
}

/* keys.NAME.limits: rpm, tpm, max_parallel, budget_usd, budget_period. */
static int load_limits(mr_loader_t *ld, json_t *obj, mr_key_limits_t *l)
{
    static const char *const keys[] = {"rpm",        "tpm",           "max_parallel",
                                       "budget_usd", "budget_period", NULL};
    json_t *lim = json_object_get(obj, "limits");
    json_int_t rpm = 0, tpm = 0, par = 0;
    size_t saved;

    if (!lim)
        return 0;
    saved = mr_loader_key(ld, "limits");
    if (mr_loader_object(ld, lim) < 0 || mr_loader_check_keys(ld, lim, keys) < 0 ||
        mr_loader_int(ld, lim, "rpm", 1, MR_RPM_MAX, &rpm) < 0 ||
        mr_loader_int(ld, lim, "tpm", 1, MR_TPM_MAX, &tpm) < 0 ||
        mr_loader_int(ld, lim, "max_parallel", 1, MR_PARALLEL_MAX, &par) < 0 ||
        mr_config_check_budget(ld, lim, &l->budget_usd, &l->budget_period) < 0)
        return -1;
    l->rpm = (uint32_t)rpm;
    l->tpm = (uint32_t)tpm;
    l->max_parallel = (uint32_t)par;
    mr_loader_pop(ld, saved);
    return 0;
}

static int load_key(mr_loader_t *ld, const char *name, json_t *obj, mr_key_t *k)
{
    static const char *const keys[] = {"sha256", "policy", "limits", "admin", NULL};
    const char *pol;

    if (mr_loader_name(ld, "key", name, &k->name) < 0)
        return -1;
    if (!json_is_object(obj))
        return mr_loader_fail(ld,
                              "must be an object like {\"sha256\": \"<64 hex digits>\", "
                              "\"policy\": \"NAME\"} (got %s)",
                              mr_loader_type_name(obj));
    if (mr_loader_check_keys(ld, obj, keys) < 0 || load_digest(ld, obj, k) < 0 ||
        mr_loader_plain(ld, obj, "policy", false, &pol) < 0 ||
        load_limits(ld, obj, &k->limits) < 0 || mr_loader_bool(ld, obj, "admin", &k->admin) < 0)
        return -1;
    if (pol) {
        size_t saved = mr_loader_key(ld, "policy");
        if (mr_config_check_policy_ref(ld, pol, &k->policy) < 0)
            return -1;
        mr_loader_pop(ld, saved);
    }
    return 0;
}

static int load_key_at(mr_loader_t *ld, const char *name, json_t *v, size_t i)
{
    return load_key(ld, name, v, &ld->cfg->keys[i]);
}

int mr_config_policies_load_keys(mr_loader_t *ld, json_t *root)
{
    mr_config_t *cfg = ld->cfg;
    return mr_loader_named(ld, root, "keys", "key", "keys", 0, MR_KEYS_MAX, (void **)&cfg->keys,
                           sizeof(*cfg->keys), &cfg->n_keys, load_key_at);
}
