/*
 * libFuzzer target: the config loader. The input is a config file's text
 * (seeds: config/meridian.json and tests/fixtures/policy.json, see
 * tests/CMakeLists.txt). A loaded config is printed as `--check` prints it
 * (to /dev/null) and freed; a rejected one must come with one non-empty
 * line of error naming the origin. Leaks are caught by LeakSanitizer.
 */
#include "meridian/config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static FILE *devnull;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    devnull = fopen("/dev/null", "w");
    if (!devnull)
        abort();
    /* Some of the shipped catalogue's variables set, some empty, some unset,
     * so ${VAR}, ${VAR:-default}, disabled providers and nested defaults
     * all take their paths. */
    setenv("MISTRAL_API_KEY", "sk-fuzz-mistral", 1);
    setenv("DEEPSEEK_API_KEY", "", 1);
    setenv("OPENAI_API_KEY", "sk-fuzz-openai", 1);
    setenv("INFOMANIAK_PRODUCT_ID", "1234", 1);
    setenv("MERIDIAN_FUZZ_LISTEN", "127.0.0.1:0", 1);
    unsetenv("GROQ_API_KEY");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[1024];
    mr_config_t *cfg = NULL;
    char *text = malloc(size + 1);

    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0'; /* the loader reads a C string: an embedded NUL ends it */
    err[0] = '\0';
    if (mr_config_load_string(text, "fuzz.json", &cfg, err, sizeof(err)) == 0) {
        if (!cfg)
            abort();
        mr_config_print_table(cfg, devnull);
        mr_config_free(cfg);
    } else {
        size_t n = strnlen(err, sizeof(err));
        /* "fuzz.json: path: reason" or "fuzz.json:LINE:COL: invalid JSON ..." */
        if (cfg || n == sizeof(err) || strncmp(err, "fuzz.json:", 10) != 0 || n < 12 ||
            memchr(err, '\n', n) || memchr(err, '\r', n)) {
            fprintf(stderr,
                    "fuzz invariant failed: config error is not one line naming the "
                    "file: \"%.*s\"\n",
                    (int)n, err);
            abort();
        }
    }
    free(text);
    return 0;
}
