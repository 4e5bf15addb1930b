/*
 * The harness judges every process it started (harness.h, "Exits are
 * judged"): a stand-in for meridian, a shell script, exits with a chosen
 * status and prints a chosen line when it gets SIGTERM. A judged failure must
 * make th_cleanup end the program with status 1, so those cases run in a
 * forked child whose exit status the test reads.
 */
#include "harness.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char *g_fake;

/* On SIGTERM: prints $FAKE_REPORT (if set) and exits $FAKE_EXIT (default 0). */
static const char FAKE[] = "#!/bin/sh\n"
                           "trap 'echo \"${FAKE_REPORT:-}\"; exit ${FAKE_EXIT:-0}' TERM\n"
                           "echo \"${FAKE_REPORT_AT_ONCE:-}\"\n"
                           "echo 'info  listening on 127.0.0.1:4242 (1 worker)'\n"
                           "[ -n \"${FAKE_ONE_SHOT:-}\" ] && exit 0\n"
                           "while :; do sleep 0.02; done\n";

static const char LSAN[] = "==4242==ERROR: LeakSanitizer: detected memory leaks";

static int group_setup(void **state)
{
    (void)state;
    g_fake = th_write_temp(FAKE, ".sh");
    if (!g_fake || chmod(g_fake, 0700) != 0)
        return -1;
    return setenv("MERIDIAN_BIN", g_fake, 1);
}

static int group_teardown(void **state)
{
    (void)state;
    unsetenv("MERIDIAN_BIN");
    if (g_fake)
        unlink(g_fake);
    free(g_fake);
    return 0;
}

typedef enum { STOP, LEAVE_RUNNING, RUN_TO_END } ending_t;

/*
 * In a child process: starts the fake with `env` (after th_expect_exit(expect)
 * unless expect is 0), ends it as `how` says, then th_cleanup. Returns the
 * child's exit status: 0 when th_cleanup returned (no failure), 1 when it
 * failed the program, 10 or 11 when a step went wrong.
 */
static int child_run(const char *const *env, ending_t how, int expect)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        th_proc_t p;
        if (how == RUN_TO_END) {
            const char *args[] = {"--check", NULL};
            int st = th_run_meridian(args, env, NULL);
            if (st != 0)
                _exit(10);
        } else {
            if (th_start_meridian(&p, "{}", env) != 0)
                _exit(11);
            if (expect)
                th_expect_exit(&p, expect);
            if (how == STOP)
                th_stop(&p);
        }
        th_cleanup();
        _exit(0);
    }
    assert_true(pid > 0);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    return WEXITSTATUS(st);
}

static void test_clean_exit_passes(void **state)
{
    (void)state;
    const char *env[] = {"FAKE_EXIT=0", NULL};
    assert_int_equal(child_run(env, STOP, 0), 0);
}

static void test_bad_exit_fails_the_program(void **state)
{
    (void)state;
    const char *env[] = {"FAKE_EXIT=3", NULL};
    assert_int_equal(child_run(env, STOP, 0), 1);
}

static void test_expected_exit_passes(void **state)
{
    (void)state;
    const char *env[] = {"FAKE_EXIT=3", NULL};
    assert_int_equal(child_run(env, STOP, 3), 0);
}

static void test_sanitizer_report_fails_despite_exit_0(void **state)
{
    (void)state;
    char *report = th_strf("FAKE_REPORT=%s", LSAN);
    const char *env[] = {"FAKE_EXIT=0", report, NULL};
    assert_int_equal(child_run(env, STOP, 0), 1);
    free(report);
}

static void test_leftover_is_stopped_and_judged(void **state)
{
    (void)state;
    const char *good[] = {"FAKE_EXIT=0", NULL};
    assert_int_equal(child_run(good, LEAVE_RUNNING, 0), 0);
    const char *bad[] = {"FAKE_EXIT=5", NULL};
    assert_int_equal(child_run(bad, LEAVE_RUNNING, 0), 1);
}

static void test_run_meridian_report_fails(void **state)
{
    (void)state;
    const char *clean[] = {"FAKE_ONE_SHOT=1", NULL};
    assert_int_equal(child_run(clean, RUN_TO_END, 0), 0);
    char *report = th_strf("FAKE_REPORT_AT_ONCE=%s", LSAN);
    const char *env[] = {"FAKE_ONE_SHOT=1", report, NULL};
    assert_int_equal(child_run(env, RUN_TO_END, 0), 1);
    free(report);
}

/* In this process: an expected status is not counted. */
static void test_expect_exit_not_counted(void **state)
{
    (void)state;
    const char *env[] = {"FAKE_EXIT=7", NULL};
    th_proc_t p;
    int before = th_failures();
    assert_int_equal(th_start_meridian(&p, "{}", env), 0);
    th_expect_exit(&p, 7);
    assert_int_equal(th_stop(&p), 7);
    assert_int_equal(th_failures(), before);
}

static void test_sanitizer_markers(void **state)
{
    (void)state;
    static const char *const reports[] = {
        "==1==ERROR: AddressSanitizer: heap-use-after-free on address 0x1",
        "==1==ERROR: LeakSanitizer: detected memory leaks",
        "WARNING: ThreadSanitizer: data race (pid=12)",
        "src/x.c:10:5: runtime error: signed integer overflow",
        "==1==ERROR: UndefinedBehaviorSanitizer: SEGV on unknown address",
    };
    for (size_t i = 0; i < sizeof(reports) / sizeof(reports[0]); i++) {
        char *log =
            th_strf("2026-01-01T00:00:00Z info  listening on 127.0.0.1:1\n%s\nmore\n", reports[i]);
        const char *at = th_sanitizer_report(log);
        if (!at || strncmp(at, reports[i], strlen(reports[i])) != 0)
            fail_msg("report %zu not found at its line's start in:\n%s", i, log);
        free(log);
    }
    assert_null(th_sanitizer_report(NULL));
    assert_null(th_sanitizer_report("info  a request asked about a runtime error, 200\n"
                                    "warn  upstream x: AddressSanitizer is a word here\n"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clean_exit_passes),
        cmocka_unit_test(test_bad_exit_fails_the_program),
        cmocka_unit_test(test_expected_exit_passes),
        cmocka_unit_test(test_sanitizer_report_fails_despite_exit_0),
        cmocka_unit_test(test_leftover_is_stopped_and_judged),
        cmocka_unit_test(test_run_meridian_report_fails),
        cmocka_unit_test(test_expect_exit_not_counted),
        cmocka_unit_test(test_sanitizer_markers),
    };
    th_init();
    int rc = cmocka_run_group_tests(tests, group_setup, group_teardown);
    th_cleanup();
    return rc;
}
