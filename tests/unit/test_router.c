/*
 * mr_router_plan: route lookup, provider/model addressing, exclusions of
 * disabled targets, attempt caps, and the exact error statuses and codes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meridian/router.h"

#define T(p, m) "{\"provider\":\"" p "\",\"model\":\"" m "\"}"

/*
 * a: key set           -> enabled
 * b: key unset         -> disabled, MR_TR_KEY_B is not set
 * c: no key at all     -> enabled
 * d: key unset         -> disabled, MR_TR_KEY_D is not set
 * e: key set but empty -> disabled, MR_TR_KEY_E is empty
 */
static const char *config_json =
    "{\"max_attempts\": 3,"
    " \"providers\": {"
    "  \"a\": {\"kind\": \"openai\", \"base_url\": \"http://h\", \"api_key\": \"${MR_TR_KEY_A}\"},"
    "  \"b\": {\"kind\": \"openai\", \"base_url\": \"http://h\", \"api_key\": \"${MR_TR_KEY_B}\"},"
    "  \"c\": {\"kind\": \"openai\", \"base_url\": \"http://h\"},"
    "  \"d\": {\"kind\": \"openai\", \"base_url\": \"http://h\", \"api_key\": \"${MR_TR_KEY_D}\"},"
    "  \"e\": {\"kind\": \"openai\", \"base_url\": \"http://h\", \"api_key\": \"${MR_TR_KEY_E}\"}"
    " },"
    " \"routes\": {"
    "  \"chat\": {\"targets\": ["
    "    {\"provider\": \"b\", \"model\": \"m-b\"},"
    "    {\"provider\": \"a\", \"model\": \"m-a\"},"
    "    {\"provider\": \"c\", \"model\": \"m-c\"},"
    "    {\"provider\": \"a\", \"model\": \"m-a2\"}"
    "  ]},"
    "  \"two\": {\"max_attempts\": 5, \"targets\": ["
    "    {\"provider\": \"a\", \"model\": \"x\"},"
    "    {\"provider\": \"b\", \"model\": \"y\"}"
    "  ]},"
    "  \"capped\": {\"max_attempts\": 2, \"targets\": ["
    "    {\"provider\": \"a\", \"model\": \"1\"},"
    "    {\"provider\": \"c\", \"model\": \"2\"},"
    "    {\"provider\": \"a\", \"model\": \"3\"}"
    "  ]},"
    "  \"dead\": {\"targets\": ["
    "    {\"provider\": \"b\", \"model\": \"mb\"},"
    "    {\"provider\": \"d\", \"model\": \"md\"},"
    "    {\"provider\": \"b\", \"model\": \"mb2\"}"
    "  ]},"
    "  \"dead3\": {\"targets\": ["
    "    {\"provider\": \"b\", \"model\": \"1\"},"
    "    {\"provider\": \"d\", \"model\": \"2\"},"
    "    {\"provider\": \"e\", \"model\": \"3\"}"
    "  ]},"
    "  \"dead1\": {\"targets\": ["
    "    {\"provider\": \"b\", \"model\": \"1\"}"
    "  ]},"
    "  \"a/special\": {\"targets\": ["
    "    {\"provider\": \"c\", \"model\": \"zzz\"}"
    "  ]}"
    " }"
    "}";

static int setup(void **state)
{
    char err[1024];
    mr_config_t *cfg = NULL;

    setenv("MR_TR_KEY_A", "ka", 1);
    unsetenv("MR_TR_KEY_B");
    unsetenv("MR_TR_KEY_D");
    setenv("MR_TR_KEY_E", "", 1);
    if (mr_config_load_string(config_json, "router.json", &cfg, err, sizeof(err)) != 0) {
        print_error("%s\n", err);
        return -1;
    }
    *state = cfg;
    return 0;
}

static int teardown(void **state)
{
    mr_config_free(*state);
    return 0;
}

static void assert_error(const mr_error_t *e, int status, const char *code, const char *msg_part)
{
    assert_int_equal(e->status, status);
    assert_string_equal(e->type, mr_error_type_for_status(status));
    if (code)
        assert_string_equal(e->code, code);
    else
        assert_null(e->code);
    assert_string_equal(e->param, "model");
    if (!strstr(e->message, msg_part)) {
        print_error("message \"%s\" lacks \"%s\"\n", e->message, msg_part);
        fail();
    }
}

static void test_route_skips_disabled(void **state)
{
    const mr_config_t *cfg = *state;
    mr_plan_t plan = {0};
    mr_error_t err;

    assert_int_equal(mr_router_plan(cfg, "chat", &plan, &err), 0);
    assert_ptr_equal(plan.route, mr_config_find_route(cfg, "chat"));
    assert_int_equal(plan.n_candidates, 3);
    assert_string_equal(plan.candidates[0].provider->name, "a");
    assert_string_equal(plan.candidates[0].model, "m-a");
    assert_string_equal(plan.candidates[1].provider->name, "c");
    assert_string_equal(plan.candidates[1].model, "m-c");
    assert_string_equal(plan.candidates[2].provider->name, "a");
    assert_string_equal(plan.candidates[2].model, "m-a2");
    /* borrowed from the config, not copied */
    assert_ptr_equal(plan.candidates[0].model, plan.route->targets[1].model);

    assert_int_equal(plan.n_excluded, 1);
    assert_string_equal(plan.excluded[0].provider->name, "b");
    assert_string_equal(plan.excluded[0].model, "m-b");
    assert_string_equal(plan.excluded[0].reason, "MR_TR_KEY_B is not set");
    assert_string_equal(plan.excluded[0].reason, plan.excluded[0].provider->disabled_reason);
    assert_int_equal(plan.excluded[0].kind, MR_EXCLUDED_DISABLED);
    assert_string_equal(plan.excluded[0].rule, "disabled");
    assert_int_equal(plan.max_attempts, 3);
    mr_plan_release(&plan);
}

static void test_attempt_caps(void **state)
{
    const mr_config_t *cfg = *state;
    mr_plan_t plan = {0};
    mr_error_t err;

    /* cap 5 but one candidate left */
    assert_int_equal(mr_router_plan(cfg, "two", &plan, &err), 0);
    assert_int_equal(plan.n_candidates, 1);
    assert_int_equal(plan.n_excluded, 1);
    assert_int_equal(plan.max_attempts, 1);

    /* route cap below the number of candidates */
    assert_int_equal(mr_router_plan(cfg, "capped", &plan, &err), 0);
    assert_int_equal(plan.n_candidates, 3);
    assert_int_equal(plan.n_excluded, 0);
    assert_int_equal(plan.max_attempts, 2);
    mr_plan_release(&plan);
}

static void test_route_all_disabled(void **state)
{
    const mr_config_t *cfg = *state;
    mr_plan_t plan = {0};
    mr_error_t err;

    assert_int_equal(mr_router_plan(cfg, "dead", &plan, &err), -1);
    assert_error(&err, 503, "no_enabled_provider", "");
    /* each variable named once */
    assert_string_equal(err.message,
                        "route \"dead\" has no enabled provider: set MR_TR_KEY_B or MR_TR_KEY_D");
    assert_int_equal(plan.n_candidates, 0);
    assert_int_equal(plan.n_excluded, 3);
    assert_ptr_equal(plan.route, mr_config_find_route(cfg, "dead"));

    assert_int_equal(mr_router_plan(cfg, "dead3", &plan, &err), -1);
    assert_error(&err, 503, "no_enabled_provider",
                 "route \"dead3\" has no enabled provider: set MR_TR_KEY_B, MR_TR_KEY_D or "
                 "MR_TR_KEY_E");
    assert_string_equal(plan.excluded[2].reason, "MR_TR_KEY_E is empty");

    assert_int_equal(mr_router_plan(cfg, "dead1", &plan, &err), -1);
    assert_string_equal(err.message, "route \"dead1\" has no enabled provider: set MR_TR_KEY_B");
    mr_plan_release(&plan);
}

static void test_direct_addressing(void **state)
{
    const mr_config_t *cfg = *state;
    const char *model = "c/meta-llama/Llama-3-70b";
    mr_plan_t plan = {0};
    mr_error_t err;

    assert_int_equal(mr_router_plan(cfg, "a/gpt-x", &plan, &err), 0);
    assert_null(plan.route);
    assert_int_equal(plan.n_candidates, 1);
    assert_int_equal(plan.n_excluded, 0);
    assert_ptr_equal(plan.candidates[0].provider, mr_config_find_provider(cfg, "a"));
    assert_string_equal(plan.candidates[0].model, "gpt-x");
    assert_int_equal(plan.max_attempts, 1);

    /* split at the first '/': the model keeps the rest */
    assert_int_equal(mr_router_plan(cfg, model, &plan, &err), 0);
    assert_string_equal(plan.candidates[0].provider->name, "c");
    assert_string_equal(plan.candidates[0].model, "meta-llama/Llama-3-70b");
    assert_ptr_equal(plan.candidates[0].model, model + 2);

    /* a route whose name contains '/' wins over the split */
    assert_int_equal(mr_router_plan(cfg, "a/special", &plan, &err), 0);
    assert_non_null(plan.route);
    assert_string_equal(plan.candidates[0].provider->name, "c");
    assert_string_equal(plan.candidates[0].model, "zzz");

    /* provider/model works even when the provider is in no route */
    assert_int_equal(mr_router_plan(cfg, "c/anything", &plan, &err), 0);
    mr_plan_release(&plan);
}

static void test_direct_disabled(void **state)
{
    const mr_config_t *cfg = *state;
    mr_plan_t plan = {0};
    mr_error_t err;

    assert_int_equal(mr_router_plan(cfg, "b/foo", &plan, &err), -1);
    assert_error(&err, 503, "no_enabled_provider",
                 "provider \"b\" is disabled (MR_TR_KEY_B is not set): set MR_TR_KEY_B");
    assert_int_equal(plan.n_candidates, 0);
    assert_int_equal(plan.n_excluded, 1);
    assert_string_equal(plan.excluded[0].model, "foo");

    assert_int_equal(mr_router_plan(cfg, "e/foo", &plan, &err), -1);
    assert_error(&err, 503, "no_enabled_provider", "MR_TR_KEY_E is empty");
    mr_plan_release(&plan);
}

static void test_unknown_and_malformed(void **state)
{
    const mr_config_t *cfg = *state;
    mr_plan_t plan = {0};
    mr_error_t err;
    char big[5000];

    assert_int_equal(mr_router_plan(cfg, "gpt-5", &plan, &err), -1);
    assert_error(&err, 404, "model_not_found", "");
    assert_string_equal(err.message,
                        "model \"gpt-5\" is not a route or provider/model; see GET /v1/models");
    assert_int_equal(plan.n_candidates, 0);

    /* a bare provider name gets a hint */
    assert_int_equal(mr_router_plan(cfg, "a", &plan, &err), -1);
    assert_error(&err, 404, "model_not_found", "use \"a/MODEL\"");

    assert_int_equal(mr_router_plan(cfg, "zz/foo", &plan, &err), -1);
    assert_error(&err, 404, "model_not_found",
                 "model \"zz/foo\" is not a route, and \"zz\" is not a provider");

    /* route names are exact (case-sensitive) */
    assert_int_equal(mr_router_plan(cfg, "Chat", &plan, &err), -1);
    assert_error(&err, 404, "model_not_found", "\"Chat\"");

    assert_int_equal(mr_router_plan(cfg, "", &plan, &err), -1);
    assert_error(&err, 400, NULL, "missing model");
    assert_int_equal(mr_router_plan(cfg, NULL, &plan, &err), -1);
    assert_error(&err, 400, NULL, "missing model");

    assert_int_equal(mr_router_plan(cfg, "a/", &plan, &err), -1);
    assert_error(&err, 400, NULL, "the model name is empty");
    assert_int_equal(mr_router_plan(cfg, "/x", &plan, &err), -1);
    assert_error(&err, 400, NULL, "the provider name is empty");

    /* client input is quoted back bounded */
    memset(big, 'q', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(mr_router_plan(cfg, big, &plan, &err), -1);
    assert_error(&err, 404, "model_not_found", "...\" is not a route");
    assert_true(strlen(err.message) < 400);
    mr_plan_release(&plan);
}

static void test_plan_reset_between_calls(void **state)
{
    const mr_config_t *cfg = *state;
    mr_plan_t plan = {0};
    mr_error_t err;

    assert_int_equal(mr_router_plan(cfg, "dead", &plan, &err), -1);
    assert_int_equal(plan.n_excluded, 3);
    assert_int_equal(mr_router_plan(cfg, "capped", &plan, &err), 0);
    assert_int_equal(plan.n_excluded, 0);
    assert_int_equal(plan.n_candidates, 3);
    mr_plan_release(&plan);
}

static void test_error_body(void **state)
{
    const mr_config_t *cfg = *state;
    mr_plan_t plan = {0};
    mr_error_t err;
    char *body, want[512];

    assert_int_equal(mr_router_plan(cfg, "dead1", &plan, &err), -1);
    body = mr_error_body(&err, NULL, NULL, NULL);
    assert_non_null(body);
    snprintf(want, sizeof(want),
             "{\"error\":{\"message\":\"route \\\"dead1\\\" has no enabled provider: "
             "set MR_TR_KEY_B\",\"type\":\"%s\",\"param\":\"model\","
             "\"code\":\"no_enabled_provider\"}}",
             mr_error_type_for_status(503));
    assert_string_equal(body, want);
    free(body);
    mr_plan_release(&plan);
}

static void test_max_candidates(void **state)
{
    char json[8192], err_s[512];
    size_t o;
    mr_config_t *cfg;
    mr_plan_t plan = {0};
    mr_error_t err;

    (void)state;
    o = (size_t)snprintf(json, sizeof(json),
                         "{\"providers\":{\"c\":{\"kind\":\"openai\",\"base_url\":\"http://h\"}},"
                         "\"routes\":{\"r\":{\"targets\":[");
    for (int i = 0; i < MR_MAX_CANDIDATES; i++)
        o += (size_t)snprintf(json + o, sizeof(json) - o, "%s" T("c", "m%d"), i ? "," : "", i);
    snprintf(json + o, sizeof(json) - o, "]}}}");
    assert_int_equal(mr_config_load_string(json, NULL, &cfg, err_s, sizeof(err_s)), 0);
    assert_int_equal(mr_router_plan(cfg, "r", &plan, &err), 0);
    assert_int_equal(plan.n_candidates, MR_MAX_CANDIDATES);
    assert_string_equal(plan.candidates[MR_MAX_CANDIDATES - 1].model, "m31");
    assert_int_equal(plan.max_attempts, 3);
    mr_config_free(cfg);
    mr_plan_release(&plan);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_route_skips_disabled),
        cmocka_unit_test(test_attempt_caps),
        cmocka_unit_test(test_route_all_disabled),
        cmocka_unit_test(test_direct_addressing),
        cmocka_unit_test(test_direct_disabled),
        cmocka_unit_test(test_unknown_and_malformed),
        cmocka_unit_test(test_plan_reset_between_calls),
        cmocka_unit_test(test_error_body),
        cmocka_unit_test(test_max_candidates),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
