/*
 * modelref: which spellings of a model a request may send (issue 11,
 * finding 4), how each provider kind's model names are matched to the
 * configured targets, and allow_direct.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meridian/config.h"
#include "meridian/modelref.h"

#define P(name, kind) "\"" name "\":{\"kind\":\"" kind "\",\"base_url\":\"http://h\"}"

static const char *config_json =
    "{\"providers\":{" P("oa", "openai") "," P("an", "anthropic") "," P("ge", "gemini") "," P(
        "az", "azure") ",\"closed\":{\"kind\":\"openai\",\"base_url\":\"http://h\","
                       "\"allow_direct\":false}},"
                       " \"routes\":{\"chat\":{\"targets\":["
                       "   {\"provider\":\"oa\",\"model\":\"m-eu\",\"creator\":\"acme\"},"
                       "   {\"provider\":\"an\",\"model\":\"claude-x\"},"
                       "   {\"provider\":\"ge\",\"model\":\"models/gemini-x\"},"
                       "   {\"provider\":\"az\",\"model\":\"Deploy-EU\"},"
                       "   {\"provider\":\"closed\",\"model\":\"c1\"}]},"
                       "  \"a/b\":{\"targets\":[{\"provider\":\"oa\",\"model\":\"ab\"}]}}}";

static int setup(void **state)
{
    char err[1024];
    mr_config_t *cfg = NULL;

    if (mr_config_load_string(config_json, "modelref.json", &cfg, err, sizeof(err)) != 0) {
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

/* Resolves `model`; returns the status (0 when resolved). */
static int resolve(const mr_config_t *cfg, const char *model, mr_modelref_t *ref, mr_error_t *err)
{
    return mr_modelref_resolve(cfg, model, "model", "model", ref, err) == 0 ? 0 : err->status;
}

static void test_text_is_refused(void **state)
{
    const mr_config_t *cfg = *state;
    static const char *const bad[] = {
        " oa/m-eu",
        "oa/m-eu ",
        "oa/m-eu\t",
        "\noa/m-eu",
        "oa/m\x01u",
        "oa/m-eu\x7f",
        "oa/m-eu\xc2\xa0",
        "\xef\xbb\xbfoa/m-eu",
        "oa/m\xc2\x85u",
        "oa/m-eu\xe2\x80\xa8",
        "\xe2\x80\x8b"
        "chat",
        "chat\xe3\x80\x80",
    };
    mr_modelref_t ref;
    mr_error_t err;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (resolve(cfg, bad[i], &ref, &err) != 400 || strcmp(err.code, "invalid_model")) {
            print_error("case %zu accepted or wrong error: %d %s\n", i, err.status, err.message);
            fail();
        }
        assert_string_equal(err.param, "model");
    }
    /* white space inside a name is not refused here (it is just unknown) */
    assert_int_equal(resolve(cfg, "oa/m eu", &ref, &err), 0);
    assert_null(ref.target);
    /* non-ASCII letters are fine */
    assert_int_equal(resolve(cfg, "oa/m-\xc3\xa9u", &ref, &err), 0);
}

static void test_kind_rules(void **state)
{
    const mr_config_t *cfg = *state;
    const mr_route_t *chat = mr_config_find_route(cfg, "chat");
    mr_modelref_t ref;
    mr_error_t err;

    /* OpenAI-compatible ids are case-sensitive: M-EU is not the target m-eu */
    assert_int_equal(resolve(cfg, "oa/m-eu", &ref, &err), 0);
    assert_ptr_equal(ref.target, &chat->targets[0]);
    assert_int_equal(resolve(cfg, "oa/M-EU", &ref, &err), 0);
    assert_null(ref.target);
    assert_string_equal(ref.model, "M-EU");
    /* Anthropic: exact too */
    assert_int_equal(resolve(cfg, "an/Claude-X", &ref, &err), 0);
    assert_null(ref.target);
    /* Gemini: "models/" is optional; the configured spelling is sent */
    assert_int_equal(resolve(cfg, "ge/gemini-x", &ref, &err), 0);
    assert_ptr_equal(ref.target, &chat->targets[2]);
    assert_string_equal(ref.model, "models/gemini-x");
    assert_int_equal(resolve(cfg, "ge/Gemini-x", &ref, &err), 0);
    assert_null(ref.target);
    /* Azure deployment names: case-insensitive */
    assert_int_equal(resolve(cfg, "az/deploy-eu", &ref, &err), 0);
    assert_ptr_equal(ref.target, &chat->targets[3]);
    assert_string_equal(ref.model, "Deploy-EU");

    assert_true(mr_modelref_same_model(MR_KIND_GEMINI, "models/a", "models/a"));
    assert_true(mr_modelref_same_model(MR_KIND_GEMINI, "a", "models/a"));
    assert_false(mr_modelref_same_model(MR_KIND_OPENAI, "a", "A"));
    assert_false(mr_modelref_same_model(MR_KIND_ANTHROPIC, "a", "A"));
    assert_true(mr_modelref_same_model(MR_KIND_AZURE, "a", "A"));
}

static void test_routes_and_direct(void **state)
{
    const mr_config_t *cfg = *state;
    mr_modelref_t ref;
    mr_error_t err;

    assert_int_equal(resolve(cfg, "a/b", &ref, &err), 0); /* a route name with '/' wins */
    assert_non_null(ref.route);
    assert_int_equal(resolve(cfg, "closed/c1", &ref, &err), 403);
    assert_string_equal(err.code, "direct_model_not_allowed");
    assert_non_null(strstr(err.message, "providers.closed.allow_direct is false"));
    assert_int_equal(resolve(cfg, "nope/x", &ref, &err), 404);
    assert_int_equal(resolve(cfg, "oa/", &ref, &err), 400);
    assert_int_equal(resolve(cfg, "", &ref, &err), 400);
    assert_true(mr_config_find_provider(cfg, "oa")->allow_direct);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_is_refused),
        cmocka_unit_test(test_kind_rules),
        cmocka_unit_test(test_routes_and_direct),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
