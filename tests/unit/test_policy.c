/*
 * The policy engine: every filter (table-driven), the policy stack (narrowing,
 * never widening), the request `provider` object, every strategy, diversity
 * reordering, vendor-share caps over 1,000 simulated requests, fallback
 * model lists, policy hashes and explain output. A fake clock and seeded
 * soft state make every case deterministic.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meridian/policy.h"
#include "meridian/router.h"
#include "meridian/router_explain.h"
#include "meridian/sha256.h"
#include "meridian/softstate.h"

#ifndef MERIDIAN_SOURCE_DIR
#define MERIDIAN_SOURCE_DIR "."
#endif
#define FIXTURE MERIDIAN_SOURCE_DIR "/tests/fixtures/policy.json"

typedef struct fixture {
    mr_config_t *cfg;
    mr_softstate_mem_t mem;
    mr_softstate_t *ss;
    uint64_t now;
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    char err[1024];

    unsetenv("MR_TP_UNSET");
    if (!f || mr_config_load_file(FIXTURE, &f->cfg, err, sizeof(err)) != 0) {
        print_error("%s\n", err);
        free(f);
        return -1;
    }
    if (mr_softstate_mem_init(&f->mem, f->cfg, 12345) != 0)
        return -1;
    f->ss = &f->mem.super;
    f->now = 1000000;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    mr_softstate_mem_free(&f->mem);
    mr_config_free(f->cfg);
    free(f);
    return 0;
}

static void assert_contains(const char *hay, const char *needle)
{
    if (!hay || !strstr(hay, needle)) {
        print_error("\"%s\"\n  does not contain\n\"%s\"\n", hay ? hay : "(null)", needle);
        fail();
    }
}

static const mr_key_t *key_named(const mr_config_t *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_keys; i++)
        if (!strcmp(cfg->keys[i].name, name))
            return &cfg->keys[i];
    fail_msg("no key %s", name);
    return NULL;
}

/*
 * Plan `model` (plus fallback models, NULL-terminated) for a request with
 * gateway key `key` (a key name or NULL), header policy `header` and body
 * provider object `provider` (JSON text or NULL).
 */
static int plan_req(fixture_t *f, const char *key, const char *header, const char *provider,
                    const char *const *models, mr_plan_t *plan, mr_error_t *err)
{
    mr_policy_stack_t st;
    json_t *po = NULL;
    size_t n = 0;
    int rc;

    if (provider) {
        po = json_loads(provider, 0, NULL);
        assert_non_null(po);
    }
    while (models[n])
        n++;
    rc = mr_policy_stack_init(&st, f->cfg, key ? key_named(f->cfg, key) : NULL, header, po, err);
    json_decref(po);
    if (rc < 0)
        return rc;
    return mr_router_plan_policy(f->cfg, &st, models, n, f->ss, f->now, plan, err);
}

static int plan1(fixture_t *f, const char *key, const char *header, const char *provider,
                 const char *model, mr_plan_t *plan, mr_error_t *err)
{
    const char *models[2] = {model, NULL};
    return plan_req(f, key, header, provider, models, plan, err);
}

/* "fr,de,ch": the candidates' providers in order. */
static const char *providers_of(const mr_plan_t *plan, char *buf, size_t n)
{
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < plan->n_candidates && o < n; i++)
        o += (size_t)snprintf(buf + o, n - o, "%s%s", i ? "," : "",
                              plan->candidates[i].provider->name);
    return buf;
}

/* "d1,d3,...": the candidates' models in order. */
static const char *models_of(const mr_plan_t *plan, char *buf, size_t n)
{
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < plan->n_candidates && o < n; i++)
        o += (size_t)snprintf(buf + o, n - o, "%s%s", i ? "," : "", plan->candidates[i].model);
    return buf;
}

static const mr_exclusion_t *exclusion_of(const mr_plan_t *plan, const char *provider)
{
    for (size_t i = 0; i < plan->n_excluded; i++)
        if (!strcmp(plan->excluded[i].provider->name, provider))
            return &plan->excluded[i];
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Filters                                                                   */
/* ------------------------------------------------------------------------ */

typedef struct filter_case {
    const char *policy;
    const char *want;     /* candidate providers, "" for 403 */
    const char *excluded; /* one excluded provider to check */
    const char *reason;   /* its exact reason */
    const char *rule;
} filter_case_t;

static const filter_case_t filter_cases[] = {
    {"any", "us1,cn,fr,us2,de,ch", "off", "MR_TP_UNSET is not set", "disabled"},
    {"eu", "fr,de,ch", "us1", "region us not in [eu, ch] (policy eu)", "allow.region"},
    {"eu", "fr,de,ch", "cn", "region cn not in [eu, ch] (policy eu)", "allow.region"},
    {"eu", "fr,de,ch", "off", "MR_TP_UNSET is not set", "disabled"},
    {"nocnus", "fr,de,ch", "cn", "jurisdiction CN denied (policy nocnus)", "deny.jurisdiction"},
    /* jurisdiction matches case-insensitively ("us" in the policy) */
    {"nocnus", "fr,de,ch", "us2", "jurisdiction US denied (policy nocnus)", "deny.jurisdiction"},
    {"juris", "fr,de,ch", "us1", "jurisdiction US not in [FR, DE, CH] (policy juris)",
     "allow.jurisdiction"},
    {"open", "cn,fr,us2,de", "us1", "not open weights (policy open: open_weights_only)",
     "open_weights_only"},
    {"open", "cn,fr,us2,de", "ch", "not open weights (policy open: open_weights_only)",
     "open_weights_only"},
    {"nodc", "fr,us2,de,ch", "cn", "retains_data (policy nodc: data_collection deny)",
     "data_collection"},
    {"nodc", "fr,us2,de,ch", "us1", "retains_data (policy nodc: data_collection deny)",
     "data_collection"},
    {"dcallow", "us1,cn,fr,us2,de,ch", "off", "MR_TP_UNSET is not set", "disabled"},
    {"zdr", "fr,us2", "de", "no zero data retention (policy zdr: zdr_only)", "zdr_only"},
    {"cheap", "cn,fr,de", "us2", "price unknown (policy cheap: max_price)", "max_price"},
    {"cheap", "cn,fr,de", "us1", "input price 1 > 0.6 USD/Mtok (policy cheap: max_price)",
     "max_price"},
    {"cheapout", "de", "cn", "output price 0.5 > 0.4 USD/Mtok (policy cheapout: max_price)",
     "max_price"},
    {"cheapout", "de", "us2", "price unknown (policy cheapout: max_price)", "max_price"},
    {"lic", "cn,de", "us1", "license proprietary not in [apache-2.0, mit] (policy lic)",
     "allow.license"},
    {"lic", "cn,de", "ch", "license not set, not in [apache-2.0, mit] (policy lic)",
     "allow.license"},
    {"nolic", "cn,fr,us2,de,ch", "us1", "license proprietary denied (policy nolic)",
     "deny.license"},
    {"nocreator", "cn,fr,us2,de", "ch", "creator alpha denied (policy nocreator)", "deny.creator"},
    {"vendors", "fr,de", "cn", "vendor epsilon not in [gamma, delta] (policy vendors)",
     "allow.vendor"},
    {"provs", "fr", "de", "provider de not in [fr] (policy provs)", "allow.provider"},
    {"models", "de", "fr", "model m-fr not in [m-de] (policy models)", "allow.model"},
    /* a provider tag is inherited by its targets */
    {"tier", "us1", "us2", "tier not set, not in [gold] (policy tier)", "allow.tier"},
    {"combo", "fr", "de", "vendor delta denied (policy combo)", "deny.vendor"},
    {"combo", "fr", "us1", "region us not in [eu] (policy combo)", "allow.region"},
    {"kindp", "", "us1", "kind openai not in [anthropic] (policy kindp)", "allow.kind"},
};

static void test_filters(void **state)
{
    fixture_t *f = *state;

    for (size_t i = 0; i < sizeof(filter_cases) / sizeof(filter_cases[0]); i++) {
        const filter_case_t *c = &filter_cases[i];
        mr_plan_t plan = {0};
        mr_error_t err;
        char got[256];
        const mr_exclusion_t *x;
        int rc = plan1(f, NULL, c->policy, NULL, "all", &plan, &err);

        providers_of(&plan, got, sizeof(got));
        if ((rc == 0) != (*c->want != '\0') || strcmp(got, c->want)) {
            print_error("case %zu (%s): rc %d candidates \"%s\", want \"%s\" (%s)\n", i, c->policy,
                        rc, got, c->want, rc ? err.message : "");
            fail();
        }
        x = exclusion_of(&plan, c->excluded);
        if (!x || strcmp(x->reason, c->reason) || strcmp(x->rule, c->rule)) {
            print_error("case %zu (%s): %s excluded as \"%s\" [%s], want \"%s\" [%s]\n", i,
                        c->policy, c->excluded, x ? x->reason : "(not excluded)", x ? x->rule : "",
                        c->reason, c->rule);
            fail();
        }
        assert_int_equal(x->kind,
                         strcmp(c->rule, "disabled") ? MR_EXCLUDED_POLICY : MR_EXCLUDED_DISABLED);
        if (x->kind == MR_EXCLUDED_POLICY)
            assert_string_equal(x->policy, c->policy);
        /* every target of the route is accounted for, exactly once */
        assert_int_equal(plan.n_candidates + plan.n_excluded, 7);
        assert_int_equal(plan.n_excluded_total, plan.n_excluded);
        assert_string_equal(plan.policy_label, c->policy);
        mr_plan_release(&plan);
    }
}

static void test_target_attr(void **state)
{
    fixture_t *f = *state;
    const mr_route_t *all = mr_config_find_route(f->cfg, "all");
    const mr_route_t *kinds = mr_config_find_route(f->cfg, "kinds");
    const mr_target_t *t = &all->targets[0];

    assert_string_equal(mr_target_attr(t, "provider"), "us1");
    assert_string_equal(mr_target_attr(t, "model"), "m-us1");
    assert_string_equal(mr_target_attr(t, "kind"), "openai");
    assert_string_equal(mr_target_attr(t, "vendor"), "alpha");
    assert_string_equal(mr_target_attr(t, "region"), "us");
    assert_string_equal(mr_target_attr(t, "jurisdiction"), "US");
    assert_string_equal(mr_target_attr(t, "creator"), "alpha");
    /* target tag shadows the provider's; provider tags are inherited */
    assert_string_equal(mr_target_attr(t, "license"), "proprietary");
    assert_string_equal(mr_target_attr(t, "tier"), "gold");
    assert_string_equal(mr_target_attr(&kinds->targets[0], "license"), "provider-lic");
    assert_null(mr_target_attr(&all->targets[1], "tier"));
    assert_null(mr_target_attr(t, "nonexistent"));
    /* creator defaults to the provider's vendor; jurisdiction is upper-cased */
    assert_string_equal(mr_target_attr(&all->targets[1], "creator"), "epsilon");
    assert_string_equal(mr_target_attr(&kinds->targets[1], "jurisdiction"), "KR");
    assert_string_equal(mr_target_attr(&kinds->targets[1], "kind"), "anthropic");
    assert_true(mr_attr_is_builtin("creator"));
    assert_false(mr_attr_is_builtin("license"));
}

/* Filters leaving nothing: 403 naming the policy and every exclusion. */
static void test_denied_403(void **state)
{
    fixture_t *f = *state;
    mr_plan_t plan = {0};
    mr_error_t err;

    assert_int_equal(plan1(f, NULL, "kindp", NULL, "all", &plan, &err), -1);
    assert_int_equal(err.status, 403);
    assert_string_equal(err.code, "policy_denied");
    assert_string_equal(err.type, "permission_error");
    assert_null(err.param);
    assert_contains(err.message, "no target of route \"all\" is allowed under policy kindp: "
                                 "us1/m-us1: kind openai not in [anthropic] (policy kindp); "
                                 "cn/m-cn: kind openai not in [anthropic] (policy kindp); ");
    /* even a disabled target gets its policy reason, not "not set" */
    assert_contains(err.message, "off/m-off: kind openai not in [anthropic] (policy kindp)");
    assert_int_equal(plan.n_candidates, 0);
    assert_int_equal(plan.n_excluded, 7);
    for (size_t i = 0; i < plan.n_excluded; i++)
        assert_int_equal(plan.excluded[i].kind, MR_EXCLUDED_POLICY);

    /* a direct provider/model is filtered like a route target */
    assert_int_equal(plan1(f, NULL, "eu", NULL, "us1/gpt-x", &plan, &err), -1);
    assert_int_equal(err.status, 403);
    assert_string_equal(err.message, "no target of \"us1/gpt-x\" is allowed under policy eu: "
                                     "us1/gpt-x: region us not in [eu, ch] (policy eu)");
    /* ... with its configured metadata when the pair is in a route */
    assert_int_equal(plan1(f, NULL, "open", NULL, "cn/m-cn", &plan, &err), 0);
    assert_ptr_equal(plan.candidates[0].target, &mr_config_find_route(f->cfg, "all")->targets[1]);
    assert_int_equal(plan1(f, NULL, "open", NULL, "cn/unlisted", &plan, &err), -1);
    assert_contains(err.message, "not open weights");
    assert_int_equal(plan1(f, NULL, "eu", NULL, "fr/anything", &plan, &err), 0);
    assert_null(plan.candidates[0].target);
    assert_int_equal(plan.max_attempts, 1);

    /* a client's long model names are cut in the list, never read past
     * (found by tests/fuzz/fuzz_request_path: a stack over-read into the
     * 403 message) */
    char longm[700];
    memcpy(longm, "us1/", 4);
    memset(longm + 4, 'x', sizeof(longm) - 5);
    longm[sizeof(longm) - 1] = '\0';
    const char *models[] = {longm, "us2/y", NULL};
    assert_int_equal(plan_req(f, NULL, "eu", NULL, models, &plan, &err), -1);
    assert_int_equal(err.status, 403);
    assert_true(strlen(err.message) < sizeof(err.message));
    assert_contains(err.message, "us1/xxxxxxxx");
    mr_plan_release(&plan);
}

/* Allowed targets that are all disabled: 503 naming variables and policy. */
static void test_disabled_503(void **state)
{
    fixture_t *f = *state;
    mr_plan_t plan = {0};
    mr_error_t err;

    assert_int_equal(plan1(f, NULL, "offonly", NULL, "all", &plan, &err), -1);
    assert_int_equal(err.status, 503);
    assert_string_equal(err.code, "no_enabled_provider");
    assert_string_equal(err.message,
                        "route \"all\" has no enabled provider under policy offonly: set "
                        "MR_TP_UNSET");
    assert_int_equal(plan1(f, NULL, "eu", NULL, "off/x", &plan, &err), -1);
    assert_string_equal(err.message, "provider \"off\" is disabled (MR_TP_UNSET is not set) "
                                     "under policy eu: set MR_TP_UNSET");
    /* no policy at all: the message is the one from before policies */
    assert_int_equal(mr_router_plan(f->cfg, "offr", &plan, &err), -1);
    assert_string_equal(err.message, "route \"offr\" has no enabled provider: set MR_TP_UNSET");
    mr_plan_release(&plan);
}

/* ------------------------------------------------------------------------ */
/* The stack: narrowing, never widening                                     */
/* ------------------------------------------------------------------------ */

typedef struct stack_case {
    const char *key, *header, *provider;
    const char *want;  /* candidates, "" = error */
    int status;        /* 0 or the error status */
    const char *label; /* x-meridian-policy */
} stack_case_t;

static const stack_case_t stack_cases[] = {
    /* no key, no header: default_policy (notcn) */
    {NULL, NULL, NULL, "us1,fr,us2,de,ch", 0, "notcn"},
    /* a header policy replaces the default ... */
    {NULL, "any", NULL, "us1,cn,fr,us2,de,ch", 0, "any"},
    {NULL, "  eu\t", NULL, "fr,de,ch", 0, "eu"},
    {NULL, "", NULL, "us1,fr,us2,de,ch", 0, "notcn"},
    /* ... but a key's policy is never replaced, only intersected */
    {"k-eu", NULL, NULL, "fr,de,ch", 0, "eu"},
    {"k-eu", "any", NULL, "fr,de,ch", 0, "eu+any"},
    {"k-eu", "nocnus", NULL, "fr,de,ch", 0, "eu+nocnus"},
    {"k-eu", "open", NULL, "fr,de", 0, "eu+open"},
    {"k-eu", "eu", NULL, "fr,de,ch", 0, "eu"},
    {"k-eu", "tier", NULL, "", 403, "eu+tier"},
    /* provider.only cannot reach outside the key's policy */
    {"k-eu", NULL, "{\"only\":[\"us1\",\"fr\"]}", "fr", 0, "eu+request"},
    {"k-eu", NULL, "{\"only\":[\"us1\"]}", "", 403, "eu+request"},
    {"k-eu", "any", "{\"only\":[\"us1\",\"cn\"]}", "", 403, "eu+any+request"},
    {"k-eu", NULL, "{\"order\":[\"us1\"],\"allow_fallbacks\":false}", "", 403, "eu+request"},
    {"k-eu", NULL, "{\"order\":[\"us1\"]}", "fr,de,ch", 0, "eu+request"},
    /* a key without a policy: the default applies, a header may replace it */
    {"k-none", NULL, NULL, "us1,fr,us2,de,ch", 0, "notcn"},
    {"k-none", "any", NULL, "us1,cn,fr,us2,de,ch", 0, "any"},
    /* request-level filters alone */
    {NULL, "any", "{\"only\":[\"FR\",\"De\"]}", "fr,de", 0, "any+request"},
    {NULL, "any", "{\"ignore\":[\"fr\"]}", "us1,cn,us2,de,ch", 0, "any+request"},
    {NULL, "any", "{\"data_collection\":\"deny\"}", "fr,us2,de,ch", 0, "any+request"},
    {NULL, "any", "{\"zdr\":true}", "fr,us2", 0, "any+request"},
    {NULL, "any", "{\"max_price\":{\"prompt\":0.4,\"completion\":0.5}}", "cn,de", 0, "any+request"},
    {NULL, "any", "{\"order\":[\"de\",\"fr\"]}", "de,fr,us1,cn,us2,ch", 0, "any+request"},
    {NULL, "any", "{\"order\":[\"de\",\"fr\"],\"allow_fallbacks\":false}", "de,fr", 0,
     "any+request"},
    {NULL, "any", "{\"allow_fallbacks\":false}", "us1", 0, "any+request"},
    {NULL, "any", "{\"zdr\":null,\"only\":null}", "us1,cn,fr,us2,de,ch", 0, "any+request"},
    /* errors */
    {NULL, "nope", NULL, "", 400, ""},
    {NULL, "any", "{\"only\":\"fr\"}", "", 400, ""},
};

static void test_stack(void **state)
{
    fixture_t *f = *state;

    for (size_t i = 0; i < sizeof(stack_cases) / sizeof(stack_cases[0]); i++) {
        const stack_case_t *c = &stack_cases[i];
        mr_plan_t plan = {0};
        mr_error_t err = {0};
        char got[256];
        int rc = plan1(f, c->key, c->header, c->provider, "all", &plan, &err);

        if (rc < 0)
            got[0] = '\0';
        else
            providers_of(&plan, got, sizeof(got));
        if ((rc == 0 ? 0 : err.status) != c->status || strcmp(got, c->want) ||
            (c->status != 400 && strcmp(plan.policy_label, c->label))) {
            print_error("case %zu: rc %d status %d \"%s\" label \"%s\" (%s); want %d \"%s\" "
                        "\"%s\"\n",
                        i, rc, rc ? err.status : 0, got,
                        rc == 0 || err.status != 400 ? plan.policy_label : "",
                        rc ? err.message : "", c->status, c->want, c->label);
            fail();
        }
        /* whatever the request asked for, nothing outside the key's policy */
        if (c->key && !strcmp(c->key, "k-eu") && rc == 0)
            for (size_t k = 0; k < plan.n_candidates; k++) {
                const char *r = plan.candidates[k].provider->region;
                assert_true(!strcmp(r, "eu") || !strcmp(r, "ch"));
            }
        mr_plan_release(&plan);
    }
}

static void test_stack_messages(void **state)
{
    fixture_t *f = *state;
    mr_plan_t plan = {0};
    mr_error_t err;
    const mr_exclusion_t *x;

    /* the key's policy is evaluated first and named in the reason */
    assert_int_equal(plan1(f, "k-eu", NULL, "{\"only\":[\"us1\"]}", "all", &plan, &err), -1);
    assert_int_equal(err.status, 403);
    assert_contains(err.message, "under policy eu+request: us1/m-us1: region us not in [eu, ch] "
                                 "(policy eu); ");
    assert_contains(err.message, "fr/m-fr: provider fr not in provider.only [us1] (request)");
    x = exclusion_of(&plan, "fr");
    assert_string_equal(x->policy, "request");
    assert_string_equal(x->rule, "provider.only");

    assert_int_equal(plan1(f, NULL, "any", "{\"order\":[\"de\",\"fr\"],\"allow_fallbacks\":false}",
                           "all", &plan, &err),
                     0);
    x = exclusion_of(&plan, "us1");
    assert_string_equal(x->reason,
                        "provider us1 not in provider.order [de, fr] (request: allow_fallbacks "
                        "false)");
    assert_string_equal(x->rule, "provider.order");

    assert_int_equal(plan1(f, NULL, "any", "{\"allow_fallbacks\":false}", "all", &plan, &err), 0);
    assert_int_equal(plan.max_attempts, 1);
    x = exclusion_of(&plan, "cn");
    assert_int_equal(x->kind, MR_EXCLUDED_FALLBACKS);
    assert_string_equal(x->reason, "allow_fallbacks false: only the first candidate is tried "
                                   "(request)");

    assert_int_equal(
        plan1(f, NULL, "any", "{\"data_collection\":\"deny\",\"zdr\":true}", "all", &plan, &err),
        0);
    assert_string_equal(exclusion_of(&plan, "cn")->reason,
                        "retains_data (request: provider.data_collection deny)");
    assert_string_equal(exclusion_of(&plan, "de")->reason,
                        "no zero data retention (request: provider.zdr)");
    assert_int_equal(plan1(f, NULL, "any", "{\"max_price\":{\"prompt\":0.4}}", "all", &plan, &err),
                     0);
    assert_string_equal(exclusion_of(&plan, "fr")->reason,
                        "prompt price 0.5 > 0.4 USD/Mtok (request: provider.max_price)");
    assert_string_equal(exclusion_of(&plan, "us2")->reason,
                        "price unknown (request: provider.max_price)");

    /* unknown header policy */
    assert_int_equal(plan1(f, NULL, "eu-onyl", NULL, "all", &plan, &err), -1);
    assert_int_equal(err.status, 400);
    assert_string_equal(err.code, "policy_not_found");
    assert_contains(err.message, "unknown policy \"eu-onyl\" in x-meridian-policy; known "
                                 "policies: any, eu, nocnus, ");
    mr_plan_release(&plan);
}

static void test_stack_strategy_precedence(void **state)
{
    fixture_t *f = *state;
    mr_policy_stack_t st;
    mr_error_t err;
    const char *from;
    json_t *po = json_loads("{\"sort\":\"latency\"}", 0, NULL);
    json_t *tp = json_loads("{\"sort\":\"throughput\"}", 0, NULL);
    json_t *pp = json_loads("{\"sort\":\"price\"}", 0, NULL);

    assert_int_equal(
        mr_policy_stack_init(&st, f->cfg, key_named(f->cfg, "k-cheap"), NULL, NULL, &err), 0);
    assert_int_equal(mr_policy_stack_strategy(&st, &from), MR_STRATEGY_CHEAPEST);
    assert_string_equal(from, "cheapestp");
    assert_int_equal(
        mr_policy_stack_init(&st, f->cfg, key_named(f->cfg, "k-cheap"), "rrp", NULL, &err), 0);
    assert_int_equal(mr_policy_stack_strategy(&st, &from), MR_STRATEGY_ROUND_ROBIN);
    assert_string_equal(from, "rrp");
    assert_int_equal(
        mr_policy_stack_init(&st, f->cfg, key_named(f->cfg, "k-cheap"), "rrp", po, &err), 0);
    assert_int_equal(mr_policy_stack_strategy(&st, &from), MR_STRATEGY_LEAST_LATENCY);
    assert_string_equal(from, "request");
    /* throughput is served by latency (no throughput data is kept) */
    assert_int_equal(mr_policy_stack_init(&st, f->cfg, NULL, "rrp", tp, &err), 0);
    assert_int_equal(st.request.sort, MR_SORT_THROUGHPUT);
    assert_int_equal(mr_policy_stack_strategy(&st, NULL), MR_STRATEGY_LEAST_LATENCY);
    assert_int_equal(mr_policy_stack_init(&st, f->cfg, NULL, "rrp", pp, &err), 0);
    assert_int_equal(mr_policy_stack_strategy(&st, NULL), MR_STRATEGY_CHEAPEST);
    /* header policy without a strategy: the key's applies */
    assert_int_equal(
        mr_policy_stack_init(&st, f->cfg, key_named(f->cfg, "k-cheap"), "eu", NULL, &err), 0);
    assert_int_equal(mr_policy_stack_strategy(&st, &from), MR_STRATEGY_CHEAPEST);
    assert_string_equal(from, "cheapestp");
    assert_int_equal(mr_policy_stack_init(&st, f->cfg, NULL, "eu", NULL, &err), 0);
    assert_int_equal(mr_policy_stack_strategy(&st, &from), MR_STRATEGY_PRIORITY);
    assert_string_equal(from, "default");
    assert_int_equal(mr_policy_stack_diversity(&st, &from), MR_DIVERSITY_NONE);
    assert_int_equal(mr_policy_stack_init(&st, f->cfg, NULL, "divj", NULL, &err), 0);
    assert_int_equal(mr_policy_stack_diversity(&st, &from), MR_DIVERSITY_JURISDICTION);
    assert_string_equal(from, "divj");
    assert_false(mr_policy_stack_empty(&st));
    json_decref(po);
    json_decref(tp);
    json_decref(pp);
}

/* ------------------------------------------------------------------------ */
/* The request's provider object                                            */
/* ------------------------------------------------------------------------ */

static void test_request_parsing(void **state)
{
    static const struct {
        const char *json, *msg;
    } bad[] = {
        {"\"fr\"", "provider must be an object of routing preferences (got string)"},
        {"[]", "provider must be an object of routing preferences (got array)"},
        {"{\"only\":\"fr\"}", "provider.only must be an array of provider names (got string)"},
        {"{\"order\":{}}", "provider.order must be an array of provider names (got object)"},
        {"{\"ignore\":[1]}", "provider.ignore[0] must be a string (got number)"},
        {"{\"only\":[\"fr\",\"\"]}", "provider.only[1] must be a provider name of 1 to 64 bytes"},
        {"{\"only\":[\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"]}",
         "provider.only[0] must be a provider name of 1 to 64 bytes"},
        {"{\"allow_fallbacks\":\"no\"}", "provider.allow_fallbacks must be true or false (got "
                                         "string)"},
        {"{\"zdr\":1}", "provider.zdr must be true or false (got number)"},
        {"{\"data_collection\":\"maybe\"}",
         "provider.data_collection must be \"allow\" or \"deny\""},
        {"{\"data_collection\":false}", "provider.data_collection must be \"allow\" or \"deny\""},
        {"{\"sort\":\"fastest\"}",
         "provider.sort must be \"price\", \"latency\" or \"throughput\""},
        {"{\"max_price\":3}", "provider.max_price must be an object like"},
        {"{\"max_price\":{\"prompt\":-1}}",
         "provider.max_price.prompt must be a non-negative number"},
        {"{\"max_price\":{\"completion\":\"1\"}}",
         "provider.max_price.completion must be a non-negative number"},
        {"{\"max_price\":{\"request\":1}}",
         "provider.max_price.request is not supported (supported: prompt, completion)"},
        {"{\"quantizations\":[\"fp8\"]}",
         "provider.quantizations is not supported (supported: order, only, ignore, "
         "allow_fallbacks, data_collection, zdr, sort, max_price, require_parameters)"},
        {"{\"require_parameters\":1}", "provider.require_parameters must be true or false"},
    };
    mr_request_policy_t rp;
    mr_error_t err;
    char big[4096];
    size_t o;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *j = json_loads(bad[i].json, JSON_DECODE_ANY, NULL);
        assert_non_null(j);
        if (mr_policy_from_request(j, &rp, &err) != -1 || !strstr(err.message, bad[i].msg)) {
            print_error("case %zu: %s -> \"%s\", want \"%s\"\n", i, bad[i].json, err.message,
                        bad[i].msg);
            fail();
        }
        assert_int_equal(err.status, 400);
        assert_string_equal(err.param, "provider");
        assert_string_equal(err.type, "invalid_request_error");
        json_decref(j);
    }

    /* at most 32 names per list */
    o = (size_t)snprintf(big, sizeof(big), "{\"only\":[");
    for (int i = 0; i < 33; i++)
        o += (size_t)snprintf(big + o, sizeof(big) - o, "%s\"p%d\"", i ? "," : "", i);
    snprintf(big + o, sizeof(big) - o, "]}");
    {
        json_t *j = json_loads(big, 0, NULL);
        assert_int_equal(mr_policy_from_request(j, &rp, &err), -1);
        assert_contains(err.message, "provider.only lists 33 providers; at most 32 are accepted");
        json_decref(j);
    }

    /* absent / null */
    assert_int_equal(mr_policy_from_request(NULL, &rp, &err), 0);
    assert_false(rp.present);
    assert_true(rp.allow_fallbacks);
    {
        json_t *n = json_null();
        assert_int_equal(mr_policy_from_request(n, &rp, &err), 0);
        assert_false(rp.present);
        json_decref(n);
    }

    /* everything at once */
    {
        json_t *j = json_loads("{\"order\":[\"a\",\"b\"],\"only\":[\"a\"],\"ignore\":[\"c\"],"
                               "\"allow_fallbacks\":false,\"data_collection\":\"deny\","
                               "\"zdr\":true,\"sort\":\"price\",\"require_parameters\":false,"
                               "\"max_price\":{\"prompt\":1,\"completion\":2.5}}",
                               0, NULL);
        assert_int_equal(mr_policy_from_request(j, &rp, &err), 0);
        assert_true(rp.present);
        assert_int_equal(rp.order.n, 2);
        assert_string_equal(rp.order.names[1], "b");
        assert_int_equal(rp.only.n, 1);
        assert_int_equal(rp.ignore.n, 1);
        assert_false(rp.allow_fallbacks);
        assert_true(rp.deny_data_collection);
        assert_true(rp.zdr);
        assert_int_equal(rp.sort, MR_SORT_PRICE);
        assert_true(rp.has_max_prompt && rp.has_max_completion);
        assert_float_equal(rp.max_completion, 2.5, 0);
        json_decref(j);
    }
}

/* ------------------------------------------------------------------------ */
/* Strategies                                                                */
/* ------------------------------------------------------------------------ */

/* Weighted: first-position frequencies follow the weights (1:2:7), and the
 * second position follows sampling without replacement. */
static void test_weighted(void **state)
{
    fixture_t *f = *state;
    const int N = 20000;
    int first[3] = {0}, second_wa = 0;
    mr_plan_t plan = {0};
    mr_error_t err;

    for (int i = 0; i < N; i++) {
        assert_int_equal(plan1(f, NULL, "wpol", NULL, "w", &plan, &err), 0);
        assert_int_equal(plan.n_candidates, 3);
        assert_int_equal(plan.strategy, MR_STRATEGY_WEIGHTED);
        first[plan.candidates[0].model[1] - 'a']++;
        second_wa += !strcmp(plan.candidates[1].model, "wa");
        /* a permutation of the three */
        assert_true(strcmp(plan.candidates[0].model, plan.candidates[1].model) &&
                    strcmp(plan.candidates[1].model, plan.candidates[2].model) &&
                    strcmp(plan.candidates[0].model, plan.candidates[2].model));
    }
    assert_true(fabs(first[0] / (double)N - 0.1) < 0.015);
    assert_true(fabs(first[1] / (double)N - 0.2) < 0.015);
    assert_true(fabs(first[2] / (double)N - 0.7) < 0.015);
    /* P(wa second) = P(wb first) * 1/8 + P(wc first) * 1/3 */
    assert_true(fabs(second_wa / (double)N - (0.2 / 8 + 0.7 / 3)) < 0.015);

    /* without soft state: the most likely order */
    {
        mr_policy_stack_t st;
        const char *models[] = {"w"};
        char got[64];
        assert_int_equal(mr_policy_stack_init(&st, f->cfg, NULL, "wpol", NULL, &err), 0);
        assert_int_equal(mr_router_plan_policy(f->cfg, &st, models, 1, NULL, 0, &plan, &err), 0);
        assert_string_equal(models_of(&plan, got, sizeof(got)), "wc,wb,wa");
    }
    mr_plan_release(&plan);
}

static void test_round_robin(void **state)
{
    fixture_t *f = *state;
    static const char *const want[] = {"r1,r2,r3", "r2,r3,r1", "r3,r1,r2", "r1,r2,r3"};
    mr_plan_t plan = {0};
    mr_error_t err;
    char got[64];

    for (int i = 0; i < 4; i++) {
        json_t *ex = NULL;
        const char *models[] = {"rr3"};
        mr_policy_stack_t st;
        assert_int_equal(plan1(f, NULL, "rrp", NULL, "rr3", &plan, &err), 0);
        assert_string_equal(models_of(&plan, got, sizeof(got)), want[i]);
        /* explaining does not advance the counter */
        assert_int_equal(mr_policy_stack_init(&st, f->cfg, NULL, "rrp", NULL, &err), 0);
        assert_int_equal(mr_router_explain(f->cfg, &st, models, 1, f->ss, f->now, &ex, &err), 0);
        json_decref(ex);
    }
    /* a filtered set still rotates: under eu rr3 keeps all three */
    assert_int_equal(plan1(f, "k-eu", "rrp", NULL, "rr3", &plan, &err), 0);
    assert_string_equal(models_of(&plan, got, sizeof(got)), "r2,r3,r1");
    mr_plan_release(&plan);
}

static void test_least_latency(void **state)
{
    fixture_t *f = *state;
    const mr_route_t *lat = mr_config_find_route(f->cfg, "lat");
    mr_plan_t plan = {0};
    mr_error_t err;
    char got[64];

    /* nothing measured: configuration order */
    assert_int_equal(plan1(f, NULL, "latp", NULL, "lat", &plan, &err), 0);
    assert_string_equal(models_of(&plan, got, sizeof(got)), "l1,l2,l3");
    /* unknown latency sorts first, so new targets get measured */
    mr_router_record_ttfb(f->ss, &plan.candidates[0], 100, f->now); /* l1 */
    mr_router_record_ttfb(f->ss, &plan.candidates[1], 50, f->now);  /* l2 */
    assert_int_equal(plan1(f, NULL, "latp", NULL, "lat", &plan, &err), 0);
    assert_string_equal(models_of(&plan, got, sizeof(got)), "l3,l2,l1");
    mr_softstate_record_ttfb(f->ss, lat->targets[2].id, 80, f->now);
    assert_int_equal(plan1(f, NULL, "latp", NULL, "lat", &plan, &err), 0);
    assert_string_equal(models_of(&plan, got, sizeof(got)), "l2,l3,l1");
    /* the same (provider, model) in another route shares its measurements */
    assert_int_equal(plan1(f, NULL, "latp", NULL, "lat2", &plan, &err), 0);
    assert_string_equal(models_of(&plan, got, sizeof(got)), "l3,l1");
    /* provider.sort latency picks the same order under a policy without it */
    assert_int_equal(plan1(f, NULL, "any", "{\"sort\":\"latency\"}", "lat", &plan, &err), 0);
    assert_string_equal(models_of(&plan, got, sizeof(got)), "l2,l3,l1");
    /* after MR_SS_TTFB_STALE_MS without samples everything is unknown again */
    f->now += MR_SS_TTFB_STALE_MS + 1;
    assert_int_equal(plan1(f, NULL, "latp", NULL, "lat", &plan, &err), 0);
    assert_string_equal(models_of(&plan, got, sizeof(got)), "l1,l2,l3");
    mr_plan_release(&plan);
}

static void test_cheapest(void **state)
{
    fixture_t *f = *state;
    mr_plan_t plan = {0};
    mr_error_t err;
    char got[128];

    /* de 0.4, cn 0.8, fr 1.0, us1 3, ch 6, us2 unknown (last) */
    assert_int_equal(plan1(f, NULL, "cheapestp", NULL, "all", &plan, &err), 0);
    assert_string_equal(providers_of(&plan, got, sizeof(got)), "de,cn,fr,us1,ch,us2");
    assert_int_equal(plan1(f, NULL, "rrp", "{\"sort\":\"price\"}", "all", &plan, &err), 0);
    assert_string_equal(providers_of(&plan, got, sizeof(got)), "de,cn,fr,us1,ch,us2");
    assert_string_equal(plan.strategy_from, "request");
    /* provider.order is applied after the strategy */
    assert_int_equal(
        plan1(f, NULL, "cheapestp", "{\"order\":[\"us2\",\"ch\"]}", "all", &plan, &err), 0);
    assert_string_equal(providers_of(&plan, got, sizeof(got)), "us2,ch,de,cn,fr,us1");
    mr_plan_release(&plan);
}

/* ------------------------------------------------------------------------ */
/* Diversity                                                                 */
/* ------------------------------------------------------------------------ */

static void test_diversity(void **state)
{
    static const struct {
        const char *policy, *route, *want;
    } cases[] = {
        /* div: us1/d1 (alpha us US), ca/d2 (theta us CA), fr/d3 (gamma eu FR),
         *      fr2/d4 (iota eu FR), us1/d5 (alpha us US) */
        {"any", "div", "d1,d2,d3,d4,d5"},
        {"divv", "div", "d1,d2,d3,d4,d5"},
        {"divr", "div", "d1,d3,d2,d4,d5"},
        {"divj", "div", "d1,d2,d3,d5,d4"},
        {"divv", "div2", "x1,x3,x2,x4"},
        {"divr", "div2", "x1,x3,x2,x4"},
        /* nothing to alternate with: order kept */
        {"divv", "same", "s1,s2,s3"},
    };
    fixture_t *f = *state;
    mr_plan_t plan = {0};
    mr_error_t err;
    char got[128];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(plan1(f, NULL, cases[i].policy, NULL, cases[i].route, &plan, &err), 0);
        if (strcmp(models_of(&plan, got, sizeof(got)), cases[i].want)) {
            print_error("case %zu: %s on %s gave %s, want %s\n", i, cases[i].policy, cases[i].route,
                        got, cases[i].want);
            fail();
        }
    }
    /* across fallback models the previous model's last candidate counts:
     * r1 ends with us1 (alpha), so div2 starts with fr */
    {
        const char *models[] = {"r1", "div2", NULL};
        assert_int_equal(plan_req(f, NULL, "divv", NULL, models, &plan, &err), 0);
        assert_string_equal(models_of(&plan, got, sizeof(got)), "m-us1,x3,x1,x4,x2");
    }
    /* diversity after a strategy keeps the strategy's preference otherwise */
    assert_int_equal(plan1(f, "k-cheap", "divv", NULL, "all", &plan, &err), 0);
    assert_string_equal(plan.strategy_from, "cheapestp");
    assert_string_equal(providers_of(&plan, got, sizeof(got)), "de,cn,fr,us1,ch,us2");
    mr_plan_release(&plan);
}

/* ------------------------------------------------------------------------ */
/* Vendor share                                                              */
/* ------------------------------------------------------------------------ */

/* 1,000 sequential requests, priority preferring alpha; `step_ms` apart. */
static double simulate_share(fixture_t *f, const char *policy, uint64_t step_ms, int n)
{
    int alpha = 0;

    for (int i = 0; i < n; i++) {
        mr_plan_t plan = {0};
        mr_error_t err;
        assert_int_equal(plan1(f, NULL, policy, NULL, "share2", &plan, &err), 0);
        alpha += !strcmp(plan.candidates[0].provider->vendor, "alpha");
        mr_router_record_served(f->ss, &plan, &plan.candidates[0], f->now);
        f->now += step_ms;
        mr_plan_release(&plan);
    }
    return alpha / (double)n;
}

static void test_vendor_share_1000(void **state)
{
    fixture_t *f = *state;
    double s;

    /* all within one window */
    s = simulate_share(f, "half", 37, 1000);
    assert_true(fabs(s - 0.5) <= 0.05);
    /* spread over 250 s: the window slides and the cap still holds */
    s = simulate_share(f, "half", 250, 1000);
    assert_true(fabs(s - 0.5) <= 0.05);
    /* without a cap priority sends everything to alpha */
    s = simulate_share(f, "any", 37, 100);
    assert_true(s == 1.0);
}

static void test_vendor_share_bootstrap(void **state)
{
    fixture_t *f = *state;
    static const char *const want[] = {"p-a", "p-b", "p-a", "p-b", "p-a", "p-b"};
    mr_plan_t plan = {0};
    mr_error_t err;

    for (int i = 0; i < 6; i++) {
        assert_int_equal(plan1(f, NULL, "half", NULL, "share2", &plan, &err), 0);
        assert_string_equal(plan.candidates[0].model, want[i]);
        /* the capped vendor is moved behind, not excluded */
        assert_int_equal(plan.n_candidates, 2);
        assert_int_equal(plan.candidates[0].demoted, i % 2 == 0 && i > 0 ? 1 : 0);
        mr_router_record_served(f->ss, &plan, &plan.candidates[0], f->now);
        f->now += 10;
    }
    /* a minute later the window is empty again: priority order */
    f->now += 61000;
    assert_int_equal(plan1(f, NULL, "half", NULL, "share2", &plan, &err), 0);
    assert_string_equal(plan.candidates[0].model, "p-a");
    assert_false(plan.candidates[1].demoted);
    /* requests under another policy do not count towards this one */
    for (int i = 0; i < 10; i++) {
        assert_int_equal(plan1(f, NULL, "any", NULL, "share2", &plan, &err), 0);
        mr_router_record_served(f->ss, &plan, &plan.candidates[0], f->now);
    }
    assert_int_equal(plan1(f, NULL, "half", NULL, "share2", &plan, &err), 0);
    assert_string_equal(plan.candidates[0].model, "p-a");
    mr_plan_release(&plan);
}

/* Vendor share then diversity: attempt 2 is never the vendor of attempt 1. */
static void test_diverse_policy(void **state)
{
    fixture_t *f = *state;
    int alpha_first = 0;

    for (int i = 0; i < 200; i++) {
        mr_plan_t plan = {0};
        mr_error_t err;
        assert_int_equal(plan1(f, NULL, "diverse", NULL, "div2", &plan, &err), 0);
        assert_int_equal(plan.n_candidates, 4);
        assert_string_not_equal(plan.candidates[0].provider->vendor,
                                plan.candidates[1].provider->vendor);
        alpha_first += !strcmp(plan.candidates[0].provider->vendor, "alpha");
        mr_router_record_served(f->ss, &plan, &plan.candidates[0], f->now);
        f->now += 100;
        mr_plan_release(&plan);
    }
    assert_true(alpha_first >= 90 && alpha_first <= 110);
}

/* ------------------------------------------------------------------------ */
/* Fallback models                                                           */
/* ------------------------------------------------------------------------ */

static void test_models_list(void **state)
{
    fixture_t *f = *state;
    const char *out[MR_MAX_MODELS];
    size_t n;
    mr_error_t err;
    json_t *j;

    (void)f;
    assert_int_equal(mr_router_models_from_request("all", NULL, out, &n, &err), 0);
    assert_int_equal(n, 1);
    j = json_loads("[\"r2\",\"all\",\"fr/x\",\"r2\"]", 0, NULL);
    assert_int_equal(mr_router_models_from_request("all", j, out, &n, &err), 0);
    assert_int_equal(n, 3);
    assert_string_equal(out[0], "all");
    assert_string_equal(out[1], "r2");
    assert_string_equal(out[2], "fr/x");
    json_decref(j);

    j = json_loads("{\"a\":1}", 0, NULL);
    assert_int_equal(mr_router_models_from_request("all", j, out, &n, &err), -1);
    assert_int_equal(err.status, 400);
    assert_string_equal(err.param, "models");
    json_decref(j);
    j = json_loads("[\"r2\",\"\"]", 0, NULL);
    assert_int_equal(mr_router_models_from_request("all", j, out, &n, &err), -1);
    assert_string_equal(err.message, "models[1] must be a non-empty string (a route name or "
                                     "provider/model)");
    json_decref(j);
    j = json_loads("[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\"]", 0, NULL);
    assert_int_equal(mr_router_models_from_request("all", j, out, &n, &err), -1);
    assert_string_equal(err.message,
                        "models lists 8 models; at most 7 fallback models are accepted");
    json_decref(j);
}

static void test_models_fallback(void **state)
{
    fixture_t *f = *state;
    mr_plan_t plan = {0};
    mr_error_t err;
    char got[128];
    const mr_exclusion_t *x;

    /* r1 (cap 1): us1, fr; r2: fr, de. fr of r1 is cut by r1's cap and then
     * serves r2; candidates keep model order. */
    {
        const char *models[] = {"r1", "r2", NULL};
        assert_int_equal(plan_req(f, NULL, "any", NULL, models, &plan, &err), 0);
        assert_string_equal(models_of(&plan, got, sizeof(got)), "m-us1,m-fr,m-de");
        assert_int_equal(plan.candidates[0].group, 0);
        assert_int_equal(plan.candidates[1].group, 1);
        assert_int_equal(plan.candidates[2].group, 1);
        assert_int_equal(plan.max_attempts, 3);
        x = exclusion_of(&plan, "fr");
        assert_int_equal(x->kind, MR_EXCLUDED_CAP);
        assert_string_equal(x->reason, "beyond max_attempts 1 of \"r1\"; the next model follows");
        assert_ptr_equal(plan.route, mr_config_find_route(f->cfg, "r1"));
        assert_int_equal(plan.n_models, 2);
    }
    /* under eu: us1 filtered, fr serves r1, and is not repeated for r2 */
    {
        const char *models[] = {"r1", "r2", NULL};
        assert_int_equal(plan_req(f, "k-eu", NULL, NULL, models, &plan, &err), 0);
        assert_string_equal(models_of(&plan, got, sizeof(got)), "m-fr,m-de");
        assert_int_equal(plan.max_attempts, 2);
        assert_int_equal(plan.n_excluded, 1);
    }
    /* a direct provider/model as a fallback */
    {
        const char *models[] = {"r1", "ch/m-ch", NULL};
        assert_int_equal(plan_req(f, NULL, "any", NULL, models, &plan, &err), 0);
        assert_string_equal(providers_of(&plan, got, sizeof(got)), "us1,ch");
        assert_non_null(plan.candidates[1].target);
        assert_int_equal(plan.max_attempts, 2);
    }
    /* the same policy stack applies to every model */
    {
        const char *models[] = {"r1", "r2", NULL};
        assert_int_equal(plan_req(f, NULL, "tier", NULL, models, &plan, &err), 0);
        assert_string_equal(models_of(&plan, got, sizeof(got)), "m-us1");
        assert_int_equal(plan_req(f, NULL, "kindp", NULL, models, &plan, &err), -1);
        assert_int_equal(err.status, 403);
        assert_contains(err.message, "no target of models \"r1\", \"r2\" is allowed under policy "
                                     "kindp: ");
    }
    /* unknown fallback model */
    {
        const char *models[] = {"r1", "nope", NULL};
        assert_int_equal(plan_req(f, NULL, "any", NULL, models, &plan, &err), -1);
        assert_int_equal(err.status, 404);
        assert_string_equal(err.param, "models");
        assert_string_equal(err.message, "fallback model \"nope\" is not a route or "
                                         "provider/model; see GET /v1/models");
    }
    /* every model's targets disabled */
    {
        const char *models[] = {"offr", "off/x", NULL};
        assert_int_equal(plan_req(f, NULL, "any", NULL, models, &plan, &err), -1);
        assert_int_equal(err.status, 503);
        assert_string_equal(err.param, "models");
        assert_string_equal(err.message, "models \"offr\", \"off/x\" have no enabled provider "
                                         "under policy any: set MR_TP_UNSET");
    }
    /* allow_fallbacks false keeps the first candidate of each model */
    {
        const char *models[] = {"all", "r2", NULL};
        assert_int_equal(
            plan_req(f, NULL, "any", "{\"allow_fallbacks\":false}", models, &plan, &err), 0);
        assert_string_equal(models_of(&plan, got, sizeof(got)), "m-us1,m-fr");
    }
    mr_plan_release(&plan);
}

/* ------------------------------------------------------------------------ */
/* Hash and explain                                                          */
/* ------------------------------------------------------------------------ */

static void test_policy_hash(void **state)
{
    fixture_t *f = *state;
    const mr_policy_t *eu = mr_config_find_policy(f->cfg, "eu");
    json_t *j = mr_policy_to_json(eu);
    char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS), hex[65];
    uint8_t d[32];
    mr_config_t *c2;
    char e[512];

    assert_string_equal(s, "{\"allow\":{\"region\":[\"ch\",\"eu\"]},\"data_collection\":\"allow\","
                           "\"deny\":{},\"fallback_diversity\":null,\"max_price\":null,"
                           "\"max_vendor_share\":null,\"min_vendors\":null,"
                           "\"open_weights_only\":false,\"share_window_s\":null,"
                           "\"strategy\":null,\"v\":1,\"zdr_only\":false}");
    mr_sha256(s, strlen(s), d);
    mr_sha256_hex(d, hex);
    assert_string_equal(mr_policy_hash(eu), hex);
    free(s);
    json_decref(j);

    /* same meaning, same hash: value order, duplicates, names do not matter */
    assert_int_equal(mr_config_load_string(
                         "{\"providers\":{\"a\":{\"kind\":\"openai\",\"base_url\":\"http://h\"}},"
                         "\"policies\":{\"x\":{\"allow\":{\"region\":[\"eu\",\"ch\",\"eu\"]}},"
                         "\"y\":{\"allow\":{\"region\":[\"eu\"]}},"
                         "\"z\":{\"strategy\":\"priority\"},\"w\":{}}}",
                         NULL, &c2, e, sizeof(e)),
                     0);
    assert_string_equal(mr_policy_hash(mr_config_find_policy(c2, "x")), mr_policy_hash(eu));
    assert_string_not_equal(mr_policy_hash(mr_config_find_policy(c2, "y")), mr_policy_hash(eu));
    /* an explicit strategy is part of the meaning (it overrides lower layers) */
    assert_string_not_equal(mr_policy_hash(mr_config_find_policy(c2, "z")),
                            mr_policy_hash(mr_config_find_policy(c2, "w")));
    assert_string_equal(mr_policy_hash(mr_config_find_policy(c2, "w")),
                        mr_policy_hash(mr_config_find_policy(f->cfg, "any")));
    assert_int_equal(strlen(mr_policy_hash(eu)), 64);
    mr_config_free(c2);
}

static char *explain_text(fixture_t *f, const char *model, const char *policy, int want_rc)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    mr_error_t err;

    assert_non_null(out);
    assert_int_equal(mr_router_explain_text(f->cfg, model, policy, out, &err), want_rc);
    fclose(out);
    return buf;
}

static void test_explain(void **state)
{
    fixture_t *f = *state;
    json_t *ex, *c, *x;
    mr_error_t err;
    char *text, want[256];
    const char *models[] = {"all"};
    mr_policy_stack_t st;
    json_t *po = json_loads("{\"only\":[\"us1\"]}", 0, NULL);

    /* 403 is explained, not an error of the explanation */
    assert_int_equal(mr_policy_stack_init(&st, f->cfg, key_named(f->cfg, "k-eu"), NULL, po, &err),
                     0);
    json_decref(po);
    assert_int_equal(mr_router_explain(f->cfg, &st, models, 1, f->ss, f->now, &ex, &err), 0);
    assert_int_equal(json_integer_value(json_object_get(ex, "status")), 403);
    assert_string_equal(json_string_value(json_object_get(json_object_get(ex, "error"), "code")),
                        "policy_denied");
    assert_string_equal(json_string_value(json_object_get(ex, "policy")), "eu+request");
    assert_int_equal(json_array_size(json_object_get(ex, "candidates")), 0);
    x = json_array_get(json_object_get(ex, "excluded"), 0);
    assert_string_equal(json_string_value(json_object_get(x, "provider")), "us1");
    assert_string_equal(json_string_value(json_object_get(x, "kind")), "policy");
    assert_string_equal(json_string_value(json_object_get(x, "rule")), "allow.region");
    assert_string_equal(json_string_value(json_object_get(x, "policy")), "eu");
    assert_string_equal(json_string_value(json_object_get(x, "reason")),
                        "region us not in [eu, ch] (policy eu)");
    c = json_array_get(json_object_get(ex, "policies"), 0);
    assert_string_equal(json_string_value(json_object_get(c, "layer")), "key");
    assert_string_equal(json_string_value(json_object_get(c, "sha256")),
                        mr_policy_hash(mr_config_find_policy(f->cfg, "eu")));
    assert_true(json_is_true(json_object_get(ex, "request_policy")));
    json_decref(ex);

    /* a routable plan: candidates with their attributes, latency, prices */
    mr_softstate_record_ttfb(f->ss, mr_config_find_route(f->cfg, "all")->targets[4].id, 42, f->now);
    assert_int_equal(mr_policy_stack_init(&st, f->cfg, NULL, "eu", NULL, &err), 0);
    assert_int_equal(mr_router_explain(f->cfg, &st, models, 1, f->ss, f->now, &ex, &err), 0);
    assert_int_equal(json_integer_value(json_object_get(ex, "status")), 200);
    assert_int_equal(json_integer_value(json_object_get(ex, "max_attempts")), 3);
    c = json_array_get(json_object_get(ex, "candidates"), 1);
    assert_string_equal(json_string_value(json_object_get(c, "provider")), "de");
    assert_string_equal(json_string_value(json_object_get(c, "jurisdiction")), "DE");
    assert_string_equal(json_string_value(json_object_get(c, "creator")), "gamma");
    assert_true(json_is_true(json_object_get(c, "open_weights")));
    assert_float_equal(json_real_value(json_object_get(c, "ttfb_ms")), 42, 1e-9);
    assert_float_equal(json_real_value(json_object_get(c, "input_per_mtok")), 0.2, 1e-9);
    assert_null(json_object_get(ex, "error"));
    json_decref(ex);

    /* 400/404 cannot be explained */
    assert_int_equal(mr_router_explain(f->cfg, &st, (const char *[]){"zzz"}, 1, NULL, 0, &ex, &err),
                     -1);
    assert_null(ex);
    assert_int_equal(err.status, 404);

    /* the text form (the --explain command) */
    text = explain_text(f, "all", "eu", 0);
    snprintf(want, sizeof(want), "policy eu (header, sha256:%.12s)\n",
             mr_policy_hash(mr_config_find_policy(f->cfg, "eu")));
    assert_contains(text, "model all  (route all)\n");
    assert_contains(text, want);
    assert_contains(text, "strategy priority (default), fallback_diversity none (default), "
                          "max_attempts 3\n");
    assert_contains(text, "candidates:\n"
                          "  1. fr/m-fr  vendor=gamma region=eu jurisdiction=FR creator=meta\n"
                          "  2. de/m-de  vendor=delta region=eu jurisdiction=DE creator=gamma\n"
                          "  3. ch/m-ch  vendor=zeta region=ch jurisdiction=CH creator=alpha\n");
    assert_contains(text, "excluded:\n  - us1/m-us1: region us not in [eu, ch] (policy eu)\n");
    assert_contains(text, "  - off/m-off: disabled: MR_TP_UNSET is not set\n");
    assert_contains(text, "result: 200, 3 candidates\n");
    free(text);

    text = explain_text(f, "all", "kindp", 1);
    assert_contains(text, "candidates: (none)\n");
    assert_contains(text, "result: 403 policy_denied: no target of route \"all\" is allowed");
    free(text);

    text = explain_text(f, "all", NULL, 0); /* the default policy */
    assert_contains(text, "policy notcn (default, sha256:");
    assert_contains(text, "  - cn/m-cn: jurisdiction CN denied (policy notcn)\n");
    free(text);

    text = explain_text(f, "offr", "any", 1);
    assert_contains(text, "result: 503 no_enabled_provider: route \"offr\" has no enabled "
                          "provider under policy any: set MR_TP_UNSET\n");
    free(text);

    {
        char *buf = NULL;
        size_t len = 0;
        FILE *out = open_memstream(&buf, &len);
        assert_int_equal(mr_router_explain_text(f->cfg, "all", "nope", out, &err), -1);
        assert_int_equal(err.status, 400);
        assert_int_equal(mr_router_explain_text(f->cfg, "nope", NULL, out, &err), -1);
        assert_int_equal(err.status, 404);
        fclose(out);
        assert_int_equal(len, 0);
        free(buf);
    }
}

/* The wrapper without policies behaves as before: no default, no filters. */
static void test_plan_without_policy(void **state)
{
    fixture_t *f = *state;
    mr_plan_t plan = {0};
    mr_error_t err;
    char got[128];

    assert_int_equal(mr_router_plan(f->cfg, "all", &plan, &err), 0);
    assert_string_equal(providers_of(&plan, got, sizeof(got)), "us1,cn,fr,us2,de,ch");
    assert_string_equal(plan.policy_label, "");
    assert_null(plan.chosen_policy);
    /* an empty stack is the same as none */
    {
        mr_policy_stack_t st;
        const char *models[] = {"all"};
        memset(&st, 0, sizeof(st));
        assert_true(mr_policy_stack_empty(&st));
        assert_int_equal(mr_router_plan_policy(f->cfg, &st, models, 1, f->ss, f->now, &plan, &err),
                         0);
        assert_string_equal(providers_of(&plan, got, sizeof(got)), "us1,cn,fr,us2,de,ch");
    }
    mr_plan_release(&plan);
}

/* ------------------------------------------------------------------------ */
/* Direct models that are no configured target fail closed (finding 4)     */
/* ------------------------------------------------------------------------ */

static void expect_refused(fixture_t *f, const char *key, const char *header, const char *model,
                           const char *rule, const char *policy)
{
    mr_plan_t plan = {0};
    mr_error_t err;

    if (plan1(f, key, header, NULL, model, &plan, &err) != -1 || err.status != 403) {
        print_error("%s under %s: not refused\n", model, header);
        fail();
    }
    assert_string_equal(err.code, "policy_denied");
    assert_contains(err.message, rule);
    assert_contains(err.message, "not a configured target");
    assert_int_equal(plan.n_excluded, 1);
    assert_string_equal(plan.excluded[0].rule, rule);
    assert_string_equal(plan.excluded[0].policy, policy);
    mr_plan_release(&plan);
}

static void test_direct_fail_closed(void **state)
{
    fixture_t *f = *state;
    mr_plan_t plan = {0};
    mr_error_t err;
    char got[64];

    /* the configured pair carries its creator (meta), which the rule allows */
    assert_int_equal(plan1(f, NULL, "nocreator", NULL, "fr/m-fr", &plan, &err), 0);
    assert_non_null(plan.candidates[0].target);
    /* a spelling that is no configured target is refused, naming the rule */
    expect_refused(f, NULL, "nocreator", "fr/M-FR", "deny.creator", "nocreator");
    expect_refused(f, NULL, "lic", "de/unlisted", "allow.license", "lic");
    expect_refused(f, NULL, "models", "de/m-DE", "allow.model", "models");
    expect_refused(f, NULL, "tier", "us1/other", "allow.tier", "tier");
    /* a key's policy counts as much as the header's */
    expect_refused(f, "k-eu", "nolic", "fr/other", "deny.license", "nolic");
    /* rules on provider attributes alone still judge an unlisted model */
    assert_int_equal(plan1(f, NULL, "eu", NULL, "fr/unlisted", &plan, &err), 0);
    assert_int_equal(plan1(f, NULL, "combo", NULL, "fr/unlisted", &plan, &err), 0);
    /* as a fallback model it is excluded, the others still serve */
    const char *models[] = {"r2", "fr/zzz", NULL};
    assert_int_equal(plan_req(f, NULL, "nocreator", NULL, models, &plan, &err), 0);
    assert_string_equal(providers_of(&plan, got, sizeof(got)), "fr,de");
    assert_string_equal(exclusion_of(&plan, "fr")->rule, "deny.creator");
    mr_plan_release(&plan);
}

/* ------------------------------------------------------------------------ */
/* policy_header: narrow_only (the default), replace, ignore (finding 12)  */
/* ------------------------------------------------------------------------ */

static void expect_stack(fixture_t *f, const char *key, const char *header, const char *want,
                         const char *label)
{
    mr_plan_t plan = {0};
    mr_error_t err;
    char got[256];

    if (plan1(f, key, header, NULL, "all", &plan, &err) != 0) {
        print_error("%s: %s\n", header, err.message);
        fail();
    }
    assert_string_equal(providers_of(&plan, got, sizeof(got)), want);
    assert_string_equal(plan.policy_label, label);
    mr_plan_release(&plan);
}

static void test_policy_header_modes(void **state)
{
    fixture_t *f = *state;
    json_t *ex;
    mr_error_t err;
    mr_policy_stack_t st;
    const char *models[] = {"all"};

    f->cfg->policy_header = MR_POLICY_HEADER_NARROW_ONLY;
    /* the default policy (notcn) stays: "any" cannot bring CN back */
    expect_stack(f, NULL, "any", "us1,fr,us2,de,ch", "notcn+any");
    expect_stack(f, NULL, "eu", "fr,de,ch", "notcn+eu");
    expect_stack(f, NULL, "notcn", "us1,fr,us2,de,ch", "notcn");
    expect_stack(f, NULL, NULL, "us1,fr,us2,de,ch", "notcn");
    expect_stack(f, "k-none", "any", "us1,fr,us2,de,ch", "notcn+any");
    expect_stack(f, "k-eu", "any", "fr,de,ch", "eu+any");
    /* explain names the base layer "default" */
    assert_int_equal(mr_policy_stack_init(&st, f->cfg, NULL, "eu", NULL, &err), 0);
    assert_true(st.key_is_default);
    assert_int_equal(mr_router_explain(f->cfg, &st, models, 1, f->ss, f->now, &ex, &err), 0);
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(ex, "policies"), 0), "layer")),
                        "default");
    json_decref(ex);

    f->cfg->policy_header = MR_POLICY_HEADER_IGNORE;
    expect_stack(f, NULL, "any", "us1,fr,us2,de,ch", "notcn");
    expect_stack(f, NULL, "not-a-policy", "us1,fr,us2,de,ch", "notcn");
    expect_stack(f, "k-eu", "any", "fr,de,ch", "eu");

    f->cfg->policy_header = MR_POLICY_HEADER_REPLACE;
    expect_stack(f, NULL, "any", "us1,cn,fr,us2,de,ch", "any");
}

int main(void)
{
#define T_(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T_(test_filters),
        T_(test_target_attr),
        T_(test_denied_403),
        T_(test_disabled_503),
        T_(test_stack),
        T_(test_stack_messages),
        T_(test_stack_strategy_precedence),
        T_(test_request_parsing),
        T_(test_weighted),
        T_(test_round_robin),
        T_(test_least_latency),
        T_(test_cheapest),
        T_(test_diversity),
        T_(test_vendor_share_1000),
        T_(test_vendor_share_bootstrap),
        T_(test_diverse_policy),
        T_(test_models_list),
        T_(test_models_fallback),
        T_(test_policy_hash),
        T_(test_explain),
        T_(test_plan_without_policy),
        T_(test_direct_fail_closed),
        T_(test_policy_header_modes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
