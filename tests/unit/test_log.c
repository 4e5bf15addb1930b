/*
 * log: one call is one line whatever the message holds (issue 11, finding
 * 9): newlines, other control bytes, invalid UTF-8, C1 controls and
 * U+2028/2029 are escaped by log.c itself; valid UTF-8 stays readable; a
 * long message is cut with a marker, never into a second line.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "meridian/log.h"

/* What mr_log wrote for `level` and the message "%s" of msg, without the
 * timestamp and level columns (static buffer). */
static const char *logged(mr_log_level_t level, const char *msg)
{
    static char out[16384];
    char path[] = "/tmp/test_log.XXXXXX";
    int fd = mkstemp(path), saved = dup(STDERR_FILENO);
    ssize_t n;

    assert_true(fd >= 0 && saved >= 0);
    dup2(fd, STDERR_FILENO);
    mr_log(level, "%s", msg);
    dup2(saved, STDERR_FILENO);
    close(saved);
    n = pread(fd, out, sizeof(out) - 1, 0);
    close(fd);
    unlink(path);
    assert_true(n > 31);
    out[n] = '\0';
    /* exactly one line, starting with the timestamp and level */
    assert_int_equal(out[n - 1], '\n');
    assert_ptr_equal(strchr(out, '\n'), out + n - 1);
    assert_int_equal(out[23], 'Z');
    out[n - 1] = '\0';
    return out + 31;
}

static void test_control_characters_cannot_start_a_line(void **state)
{
    (void)state;
    mr_log_set_level(MR_LOG_DEBUG);
    assert_string_equal(logged(MR_LOG_DEBUG, "a\n2000-01-01T00:00:00.000Z error forged"),
                        "a\\n2000-01-01T00:00:00.000Z error forged");
    assert_string_equal(logged(MR_LOG_INFO, "cr\rtab\tnul-less\x01\x1b[2J\x7f"),
                        "cr\\rtab\\tnul-less\\x01\\x1b[2J\\x7f");
    assert_string_equal(logged(MR_LOG_WARN, "c1 \xc2\x9b"
                                            "31m ls \xe2\x80\xa8 ps \xe2\x80\xa9"),
                        "c1 \\xc2\\x9b31m ls \\xe2\\x80\\xa8 ps \\xe2\\x80\\xa9");
    mr_log_set_level(MR_LOG_INFO);
}

static void test_utf8_kept_invalid_escaped(void **state)
{
    (void)state;
    assert_string_equal(logged(MR_LOG_ERROR, "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \\ \"q\""),
                        "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \\ \"q\"");
    assert_string_equal(logged(MR_LOG_ERROR, "bad \xff\xfe cut \xe2\x82"),
                        "bad \\xff\\xfe cut \\xe2\\x82");
    assert_string_equal(logged(MR_LOG_ERROR, "overlong \xc0\xaf surrogate \xed\xa0\x80"),
                        "overlong \\xc0\\xaf surrogate \\xed\\xa0\\x80");
}

static void test_long_message_is_cut_on_one_line(void **state)
{
    char *big = malloc(5000);
    const char *line;
    (void)state;

    assert_non_null(big);
    for (size_t i = 0; i < 4999; i++)
        big[i] = i % 2 ? '\n' : 'x'; /* every other byte escaped: the line grows */
    big[4999] = '\0';
    line = logged(MR_LOG_ERROR, big);
    assert_int_equal(strlen(line), 2047 / 2 * 3 + 1 + 3);
    assert_string_equal(line + strlen(line) - 6, "\\nx...");
    free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_control_characters_cannot_start_a_line),
        cmocka_unit_test(test_utf8_kept_invalid_escaped),
        cmocka_unit_test(test_long_message_is_cut_on_one_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
