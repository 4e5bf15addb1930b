/*
 * mr_env_expand: ${VAR}, ${VAR:-default}, $$, lone $, malformed input.
 * Every test uses MR_TE_* variables it sets or unsets itself.
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

static int setup_env(void **state)
{
    (void)state;
    setenv("MR_TE_SET", "value", 1);
    setenv("MR_TE_EMPTY", "", 1);
    setenv("MR_TE_DOLLAR", "${MR_TE_SET}", 1); /* values are not re-expanded */
    unsetenv("MR_TE_UNSET");
    unsetenv("MR_TE_UNSET2");
    return 0;
}

typedef struct env_case {
    const char *in;
    int rc;              /* 0 expanded, 1 missing variable, -1 malformed */
    const char *out;     /* rc 0: exact result */
    const char *missing; /* rc 1: first missing variable */
    const char *err;     /* rc -1: substring of the message */
} env_case_t;

static const env_case_t cases[] = {
    {"", 0, "", NULL, NULL},
    {"plain text", 0, "plain text", NULL, NULL},
    {"${MR_TE_SET}", 0, "value", NULL, NULL},
    {"a${MR_TE_SET}b", 0, "avalueb", NULL, NULL},
    {"${MR_TE_SET}${MR_TE_SET}", 0, "valuevalue", NULL, NULL},
    {"${MR_TE_EMPTY}", 0, "", NULL, NULL},
    {"${MR_TE_DOLLAR}", 0, "${MR_TE_SET}", NULL, NULL},
    /* defaults: used when unset or empty, like the shell's ${VAR:-x} */
    {"${MR_TE_UNSET:-dflt}", 0, "dflt", NULL, NULL},
    {"${MR_TE_EMPTY:-dflt}", 0, "dflt", NULL, NULL},
    {"${MR_TE_SET:-dflt}", 0, "value", NULL, NULL},
    {"${MR_TE_UNSET:-}", 0, "", NULL, NULL},
    {"${MR_TE_UNSET:-http://127.0.0.1:11434/v1}", 0, "http://127.0.0.1:11434/v1", NULL, NULL},
    {"${MR_TE_UNSET:-${MR_TE_SET}}", 0, "value", NULL, NULL},
    {"${MR_TE_UNSET:-<${MR_TE_UNSET2:-x}>}", 0, "<x>", NULL, NULL},
    {"${MR_TE_SET:-${MR_TE_UNSET2}}", 0, "value", NULL, NULL}, /* default not evaluated */
    {"${MR_TE_UNSET:-a$$b}", 0, "a$b", NULL, NULL},
    {"${MR_TE_UNSET:-x}}", 0, "x}", NULL, NULL}, /* '}' outside ${} is literal */
    {"}", 0, "}", NULL, NULL},
    /* dollars */
    {"$$", 0, "$", NULL, NULL},
    {"$${MR_TE_SET}", 0, "${MR_TE_SET}", NULL, NULL},
    {"$$$", 0, "$$", NULL, NULL},
    {"$", 0, "$", NULL, NULL},
    {"a$b", 0, "a$b", NULL, NULL},
    {"cost: 5$", 0, "cost: 5$", NULL, NULL},
    {"$MR_TE_SET", 0, "$MR_TE_SET", NULL, NULL}, /* only the braced form expands */
    /* missing variables */
    {"${MR_TE_UNSET}", 1, NULL, "MR_TE_UNSET", NULL},
    {"x${MR_TE_UNSET}y${MR_TE_UNSET2}", 1, NULL, "MR_TE_UNSET", NULL},
    {"${MR_TE_SET}${MR_TE_UNSET2}", 1, NULL, "MR_TE_UNSET2", NULL},
    {"${MR_TE_UNSET:-${MR_TE_UNSET2}}", 1, NULL, "MR_TE_UNSET2", NULL},
    {"${MR_TE_EMPTY:-${MR_TE_UNSET2}}", 1, NULL, "MR_TE_UNSET2", NULL},
    /* malformed */
    {"${", -1, NULL, NULL, "unterminated \"${\" at offset 0"},
    {"abc${MR_TE_SET", -1, NULL, NULL, "unterminated \"${\" at offset 3"},
    {"${MR_TE_UNSET:-abc", -1, NULL, NULL, "unterminated"},
    {"${MR_TE_UNSET:-${MR_TE_SET}", -1, NULL, NULL, "unterminated"},
    {"${}", -1, NULL, NULL, "empty variable name \"${}\" at offset 0"},
    {"x${-}", -1, NULL, NULL, "invalid variable name at offset 3"},
    {"${1ABC}", -1, NULL, NULL, "invalid variable name"},
    {"${A-B}", -1, NULL, NULL, "expected \"}\" or \":-\""},
    {"${A:B}", -1, NULL, NULL, "expected \"}\" or \":-\""},
    {"${A B}", -1, NULL, NULL, "expected \"}\" or \":-\""},
    {"${A:=B}", -1, NULL, NULL, "expected \"}\" or \":-\""},
    {"${MR_TE_SET:-${}}", -1, NULL, NULL, "empty variable name"}, /* checked even unused */
    {"${MR_TE_UNSET}${", -1, NULL, NULL, "unterminated"},         /* syntax beats missing */
    {"${A:-${B:-${C:-${D:-${E:-${F:-${G:-${H:-${I}}}}}}}}}", -1, NULL, NULL, "nested"},
};

static void test_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const env_case_t *c = &cases[i];
        char err[256] = "";
        char *out = (char *)0x1, *missing = (char *)0x1;
        int rc = mr_env_expand(c->in, &out, &missing, err, sizeof(err));

        if (rc != c->rc) {
            print_error("case %zu %s: rc %d, want %d (err: %s)\n", i, c->in, rc, c->rc, err);
            fail();
        }
        switch (rc) {
        case 0:
            assert_non_null(out);
            if (strcmp(out, c->out)) {
                print_error("case %zu %s: got \"%s\", want \"%s\"\n", i, c->in, out, c->out);
                fail();
            }
            assert_null(missing);
            break;
        case 1:
            assert_null(out);
            assert_non_null(missing);
            if (strcmp(missing, c->missing)) {
                print_error("case %zu %s: missing %s, want %s\n", i, c->in, missing, c->missing);
                fail();
            }
            break;
        default:
            assert_null(out);
            assert_null(missing);
            if (!strstr(err, c->err)) {
                print_error("case %zu %s: err \"%s\" lacks \"%s\"\n", i, c->in, err, c->err);
                fail();
            }
            break;
        }
        free(out);
        free(missing);
    }
}

static void test_optional_out_params(void **state)
{
    char *out = NULL;

    (void)state;
    /* missing may be NULL; err may be NULL with errlen 0 */
    assert_int_equal(mr_env_expand("${MR_TE_UNSET}", &out, NULL, NULL, 0), 1);
    assert_null(out);
    assert_int_equal(mr_env_expand("${", &out, NULL, NULL, 0), -1);
    assert_null(out);
    assert_int_equal(mr_env_expand("${MR_TE_SET}", &out, NULL, NULL, 0), 0);
    assert_string_equal(out, "value");
    free(out);
}

static void test_long_values(void **state)
{
    char err[256] = "";
    char *out = NULL, *missing = NULL;
    char name[300];
    char *big = malloc(40001);

    (void)state;
    assert_non_null(big);
    memset(big, 'k', 40000);
    big[40000] = '\0';
    setenv("MR_TE_BIG", big, 1);

    /* one 40000-byte value expands fine */
    assert_int_equal(mr_env_expand("${MR_TE_BIG}", &out, &missing, err, sizeof(err)), 0);
    assert_int_equal(strlen(out), 40000);
    free(out);

    /* two of them exceed the per-value bound */
    assert_int_equal(mr_env_expand("${MR_TE_BIG}${MR_TE_BIG}", &out, &missing, err, sizeof(err)),
                     -1);
    assert_null(out);
    assert_non_null(strstr(err, "expanded value longer than"));

    /* absurd variable names are rejected, not truncated */
    name[0] = '$';
    name[1] = '{';
    memset(name + 2, 'A', 290);
    name[292] = '}';
    name[293] = '\0';
    assert_int_equal(mr_env_expand(name, &out, &missing, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "variable name longer than"));

    unsetenv("MR_TE_BIG");
    free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_optional_out_params),
        cmocka_unit_test(test_long_values),
    };
    return cmocka_run_group_tests(tests, setup_env, NULL);
}
