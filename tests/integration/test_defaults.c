/*
 * Defaults that used to surprise (issue 11, finding 12):
 *   - the x-meridian-policy header may only narrow default_policy
 *     (policy_header "narrow_only"); "replace" is the old rule, opt-in
 *   - with gateway keys, /metrics and the status page need a key unless
 *     public_metrics says otherwise; without keys they stay public
 *   - the process is not dumpable (no core file, no ptrace by its user)
 *     unless started with --allow-core-dumps
 */
#include "harness.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define KEY "mk-defaults-test-key-0001"
#define KEY_SHA "23259b76fbef2f22c0425b7f709a469ef49f6cfc69e3dcbeb5c3ded5c70b6ebd"

static th_proc_t mock_us, mock_eu;

static char *config(const char *extra)
{
    return th_strf(
        "{\"listen\":\"127.0.0.1:0\",%s"
        " \"providers\":{"
        "  \"us\":{\"kind\":\"openai\",\"base_url\":\"http://127.0.0.1:%d/v1\",\"region\":\"us\"},"
        "  \"eu\":{\"kind\":\"openai\",\"base_url\":\"http://127.0.0.1:%d/v1\",\"region\":\"eu\"}},"
        " \"routes\":{\"chat\":{\"targets\":[{\"provider\":\"us\",\"model\":\"m-us\"},"
        "                                   {\"provider\":\"eu\",\"model\":\"m-eu\"}]}},"
        " \"policies\":{\"eu-only\":{\"allow\":{\"region\":[\"eu\"]}},\"anywhere\":{}},"
        " \"default_policy\":\"eu-only\"}",
        extra, mock_us.port, mock_eu.port);
}

static int start(th_proc_t *gw, const char *extra)
{
    char *cfg = config(extra);
    int rc = th_start_meridian(gw, cfg, NULL);
    free(cfg);
    return rc;
}

/* Who served a chat sent with `headers`, into buf ("" when not a 200). */
static const char *served_by(const th_proc_t *gw, const char *const *headers, char *buf, size_t n)
{
    char url[256];
    th_response_t r;
    th_http("POST", th_url_buf(gw, "/v1/chat/completions", url, sizeof(url)), headers,
            "{\"model\":\"chat\"}", 16, &r);
    if (r.status != 200 || !th_header(&r, "x-meridian-provider", buf, n))
        snprintf(buf, n, "HTTP %ld", r.status);
    th_response_free(&r);
    return buf;
}

static long get_status(const th_proc_t *gw, const char *path, const char *const *headers)
{
    char url[256];
    th_response_t r;
    th_http("GET", th_url_buf(gw, path, url, sizeof(url)), headers, NULL, 0, &r);
    long s = r.status;
    th_response_free(&r);
    return s;
}

static void test_header_narrows_the_default(void **state)
{
    th_proc_t gw = {0};
    char who[64];
    (void)state;
    assert_int_equal(start(&gw, ""), 0);
    const char *any[] = {"x-meridian-policy: anywhere", NULL};
    /* "anywhere" has no rules: it cannot lift eu-only's */
    assert_string_equal(served_by(&gw, any, who, sizeof(who)), "eu");
    assert_string_equal(served_by(&gw, NULL, who, sizeof(who)), "eu");
    assert_int_equal(th_stop(&gw), 0);

    /* the old rule, opt-in: the header replaces the default */
    assert_int_equal(start(&gw, "\"policy_header\":\"replace\","), 0);
    assert_string_equal(served_by(&gw, any, who, sizeof(who)), "us");
    assert_int_equal(th_stop(&gw), 0);

    /* or the header is not read at all */
    assert_int_equal(start(&gw, "\"policy_header\":\"ignore\","), 0);
    const char *unknown[] = {"x-meridian-policy: no-such-policy", NULL};
    assert_string_equal(served_by(&gw, unknown, who, sizeof(who)), "eu");
    assert_int_equal(th_stop(&gw), 0);
}

static void test_metrics_need_a_key_when_keys_exist(void **state)
{
    th_proc_t gw = {0};
    (void)state;
    assert_int_equal(start(&gw, "\"keys\":{\"k\":{\"sha256\":\"" KEY_SHA "\"}},"), 0);
    assert_int_equal(get_status(&gw, "/metrics", NULL), 401);
    assert_int_equal(get_status(&gw, "/status.json", NULL), 401);
    assert_int_equal(get_status(&gw, "/status", NULL), 401);
    assert_int_equal(get_status(&gw, "/healthz", NULL), 200);
    assert_int_equal(th_stop(&gw), 0);
    /* an explicit true still opens them */
    assert_int_equal(
        start(&gw, "\"keys\":{\"k\":{\"sha256\":\"" KEY_SHA "\"}},\"public_metrics\":true,"), 0);
    assert_int_equal(get_status(&gw, "/metrics", NULL), 200);
    assert_int_equal(th_stop(&gw), 0);
    /* without keys there is nothing to hold back */
    assert_int_equal(start(&gw, ""), 0);
    assert_int_equal(get_status(&gw, "/metrics", NULL), 200);
    assert_int_equal(th_stop(&gw), 0);
}

/* ---- dumpable -------------------------------------------------------------- */

/* The daemon under a user of its own (nobody when we are root), so that the
 * owner of /proc/PID/status tells: the kernel gives a non-dumpable
 * process's /proc files to root. */
typedef struct daemon {
    pid_t pid;
    char *config, *log;
} daemon_t;

static const char *meridian_bin(char *buf, size_t n)
{
    const char *env = getenv("MERIDIAN_BIN");
    char self[512];
    ssize_t len;

    if (env)
        return env;
    /* build/tests/test_defaults -> build/meridian */
    len = readlink("/proc/self/exe", self, sizeof(self) - 1);
    assert_true(len > 0);
    self[len] = '\0';
    *strrchr(self, '/') = '\0';
    *strrchr(self, '/') = '\0';
    snprintf(buf, n, "%s/meridian", self);
    return buf;
}

static void start_daemon(daemon_t *d, const char *extra_arg)
{
    char buf[600];
    char *cfg = config("");
    d->config = th_write_temp(cfg, ".json");
    d->log = th_write_temp("", ".log");
    free(cfg);
    assert_int_equal(chmod(d->config, 0644), 0);
    assert_int_equal(chmod(d->log, 0666), 0);
    const char *bin = meridian_bin(buf, sizeof(buf));
    d->pid = fork();
    assert_true(d->pid >= 0);
    if (d->pid == 0) {
        int fd = open(d->log, O_WRONLY | O_APPEND);
        dup2(fd, 1);
        dup2(fd, 2);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getuid() == 0)
            execl("/usr/bin/setpriv", "setpriv", "--reuid", "65534", "--regid", "65534",
                  "--clear-groups", "--pdeathsig", "SIGKILL", bin, "--config", d->config,
                  "--listen", "127.0.0.1:0", "--workers", "1", extra_arg, (char *)NULL);
        else
            execl(bin, bin, "--config", d->config, "--listen", "127.0.0.1:0", "--workers", "1",
                  extra_arg, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 100; i++) { /* bounded: 10 s */
        char *log = th_read_file(d->log, NULL);
        int up = log && strstr(log, "listening on");
        free(log);
        if (up)
            return;
        th_pause_ms(100);
    }
    char *log = th_read_file(d->log, NULL);
    fail_msg("meridian did not start:\n%s", log ? log : "(no log)");
}

static void stop_daemon(daemon_t *d)
{
    int status = 0;
    kill(d->pid, SIGTERM);
    for (int i = 0; i < 100 && waitpid(d->pid, &status, WNOHANG) == 0; i++)
        th_pause_ms(100);
    if (waitpid(d->pid, &status, WNOHANG) == 0) {
        kill(d->pid, SIGKILL);
        waitpid(d->pid, &status, 0);
    }
    unlink(d->config);
    unlink(d->log);
    free(d->config);
    free(d->log);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static uid_t proc_owner(pid_t pid)
{
    char path[64];
    struct stat st;
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    assert_int_equal(stat(path, &st), 0);
    return st.st_uid;
}

static void test_not_dumpable(void **state)
{
    daemon_t d;
    uid_t runs_as = getuid() == 0 ? 65534 : getuid();
    (void)state;
    if (access("/usr/bin/setpriv", X_OK) != 0 && getuid() == 0)
        skip(); /* as root without setpriv the owner cannot tell */
    start_daemon(&d, NULL);
    uid_t owner = proc_owner(d.pid);
    print_message("/proc/PID/status owned by uid %u (the daemon runs as %u)\n", (unsigned)owner,
                  (unsigned)runs_as);
    stop_daemon(&d);
    assert_int_equal(owner, 0);
    start_daemon(&d, "--allow-core-dumps");
    owner = proc_owner(d.pid);
    stop_daemon(&d);
    assert_int_equal(owner, runs_as);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_narrows_the_default),
        cmocka_unit_test(test_metrics_need_a_key_when_keys_exist),
        cmocka_unit_test(test_not_dumpable),
    };
    th_init();
    if (th_start_mock(&mock_us, "us") < 0 || th_start_mock(&mock_eu, "eu") < 0)
        return 1;
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    th_stop(&mock_us);
    th_stop(&mock_eu);
    th_cleanup();
    return rc;
}
