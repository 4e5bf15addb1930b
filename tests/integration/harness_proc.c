/*
 * Integration-test harness: starting, stopping and judging processes (the
 * daemon, the mock), their logs and temp files. See harness.h for the contract.
 */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness_int.h"

#ifndef MERIDIAN_BIN
#define MERIDIAN_BIN "meridian"
#endif
#ifndef MOCK_BIN
#define MOCK_BIN "mock_upstream"
#endif

extern char **environ;

#define TH_START_TIMEOUT_MS 10000
#define TH_STOP_TIMEOUT_MS 10000
#define TH_RUN_TIMEOUT_MS 30000 /* --verify-audit of 10,000 records under ASan on a loaded box */
#define TH_MAX_PROCS 64
#define TH_MAX_ARGS 64

static const char *tmp_dir(void)
{
    const char *d = getenv("TMPDIR");
    return d && *d ? d : "/tmp";
}

static bool keep_logs(void)
{
    const char *v = getenv("MERIDIAN_TEST_KEEP_LOGS");
    return v && *v;
}

/* Reads a whole file (NUL-terminated, malloc'd), NULL on error. */
static char *slurp(const char *path, size_t *len_out)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    size_t len = 0, cap = 4096;
    char *buf = thi_xmalloc(cap);
    for (;;) {
        if (len + 1 >= cap) {
            cap *= 2;
            buf = thi_xrealloc(buf, cap);
        }
        ssize_t n = read(fd, buf + len, cap - len - 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    if (len_out)
        *len_out = len;
    return buf;
}

/* ------------------------------------------------------- process registry */

/* Everything started and not yet stopped, so th_cleanup can clean up after a
 * test that failed half-way (cmocka longjmps out of failing tests). */
static struct {
    pid_t pid;        /* 0 once reaped */
    int expect;       /* the exit status that is not a failure (th_expect_exit) */
    const char *what; /* "meridian" or "mock_upstream" */
    char log[256];
    char config[256];
} g_procs[TH_MAX_PROCS];

/* Processes judged bad so far (see judge()); th_cleanup fails the program
 * when there is any. */
static int g_failures;

static void reg_add(const th_proc_t *p, const char *what)
{
    for (size_t i = 0; i < TH_MAX_PROCS; i++) {
        if (g_procs[i].pid == 0 && !g_procs[i].log[0] && !g_procs[i].config[0]) {
            g_procs[i].pid = p->pid;
            g_procs[i].expect = 0;
            g_procs[i].what = what;
            snprintf(g_procs[i].log, sizeof(g_procs[i].log), "%s", p->log_path);
            snprintf(g_procs[i].config, sizeof(g_procs[i].config), "%s", p->config_path);
            return;
        }
    }
    fprintf(stderr, "harness: more than %d live processes; th_cleanup will miss some\n",
            TH_MAX_PROCS);
}

static int reg_find(const th_proc_t *p)
{
    for (int i = 0; i < TH_MAX_PROCS; i++) {
        if (p->pid > 0 && g_procs[i].pid == p->pid)
            return i;
        if (p->pid <= 0 && g_procs[i].pid == 0 &&
            ((p->log_path[0] && strcmp(g_procs[i].log, p->log_path) == 0) ||
             (p->config_path[0] && strcmp(g_procs[i].config, p->config_path) == 0)))
            return i;
    }
    return -1;
}

/* The process was reaped outside th_stop: th_cleanup must not kill the pid
 * (it may belong to someone else by then), only remove the files. */
static void reg_forget_pid(pid_t pid)
{
    for (int i = 0; i < TH_MAX_PROCS; i++)
        if (pid > 0 && g_procs[i].pid == pid)
            g_procs[i].pid = 0;
}

static void remove_files(const char *log, const char *config)
{
    if (keep_logs()) {
        if (log[0])
            fprintf(stderr, "harness: kept log %s\n", log);
        if (config[0])
            fprintf(stderr, "harness: kept config %s\n", config);
        return;
    }
    if (log[0])
        unlink(log);
    if (config[0])
        unlink(config);
}

static int decode_status(int st)
{
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    if (WIFSIGNALED(st))
        return 128 + WTERMSIG(st);
    return -1;
}

/* Waits up to timeout_ms for pid. 1 reaped (*status set), 0 still running,
 * -1 error. */
static int reap(pid_t pid, int timeout_ms, int *status)
{
    double deadline = thi_mono_ms() + timeout_ms;
    for (;;) {
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) {
            *status = decode_status(st);
            return 1;
        }
        if (r < 0 && errno != EINTR)
            return -1;
        if (thi_mono_ms() >= deadline)
            return 0;
        th_pause_ms(TH_POLL_MS);
    }
}

/* SIGKILL + blocking wait. */
static int kill_reap(pid_t pid)
{
    int st;
    kill(pid, SIGKILL);
    while (waitpid(pid, &st, 0) < 0) {
        if (errno != EINTR)
            return -1;
    }
    return decode_status(st);
}

/* -------------------------------------------------------------- judgement */

const char *th_sanitizer_report(const char *log)
{
    static const char *const marks[] = {
        "ERROR: AddressSanitizer",           "ERROR: LeakSanitizer",
        "WARNING: ThreadSanitizer",          "ERROR: ThreadSanitizer",
        "ERROR: UndefinedBehaviorSanitizer", ": runtime error: ", /* UBSan's report line */
    };
    const char *first = NULL;
    for (size_t i = 0; log && i < sizeof(marks) / sizeof(marks[0]); i++) {
        const char *at = strstr(log, marks[i]);
        if (at && (!first || at < first))
            first = at;
    }
    if (!first)
        return NULL;
    while (first > log && first[-1] != '\n') /* the report's whole first line */
        first--;
    return first;
}

/*
 * A process ended with `status`: it is a failure when the status is not the
 * expected one or its log (NULL: none) holds a sanitizer report. A failure is
 * counted, for th_cleanup, and told on stderr with the log from the report on,
 * or its end (bounded, so a long log cannot bury the test's own output).
 */
static void judge(const char *what, pid_t pid, int status, int expect, const char *log_path)
{
    enum { SHOWN = 16 * 1024 };
    char *log = log_path && log_path[0] ? slurp(log_path, NULL) : NULL;
    const char *report = th_sanitizer_report(log);
    if (status == expect && !report) {
        free(log);
        return;
    }
    g_failures++;
    fprintf(stderr, "harness: FAIL: %s (pid %d) exited with status %d", what ? what : "process",
            (int)pid, status);
    if (status != expect)
        fprintf(stderr, ", expected %d", expect);
    if (report)
        fprintf(stderr, "; its log has a sanitizer report");
    fprintf(stderr, "\n");
    if (log) {
        const char *from = report ? report : log;
        size_t left = strlen(from);
        if (!report && left > SHOWN)
            from += left - SHOWN;
        fprintf(stderr, "---- %s %s ----\n%.*s\n---- end ----\n", log_path,
                report ? "from the report" : "(its end)", SHOWN, from);
    }
    free(log);
}

int th_failures(void)
{
    return g_failures;
}

void th_expect_exit(const th_proc_t *p, int status)
{
    int i = reg_find(p);
    if (i < 0 || p->pid <= 0) {
        fprintf(stderr, "harness: th_expect_exit: pid %d is not a running process\n", (int)p->pid);
        g_failures++;
        return;
    }
    g_procs[i].expect = status;
}

/* reap()'s or kill_reap()'s status of the process in p, judged. */
static void judge_proc(const th_proc_t *p, int status)
{
    int i = reg_find(p);
    judge(i >= 0 ? g_procs[i].what : "process", p->pid, status, i >= 0 ? g_procs[i].expect : 0,
          p->log_path);
}

/* ---------------------------------------------------------------- spawning */

static bool is_proxy_var(const char *entry)
{
    static const char *const names[] = {"http_proxy", "https_proxy", "all_proxy", "ftp_proxy",
                                        NULL};
    const char *eq = strchr(entry, '=');
    size_t n = eq ? (size_t)(eq - entry) : strlen(entry);
    for (size_t i = 0; names[i]; i++)
        if (n == strlen(names[i]) && strncasecmp(entry, names[i], n) == 0)
            return true;
    return false;
}

static bool same_name(const char *a, const char *b)
{
    size_t na = strcspn(a, "="), nb = strcspn(b, "=");
    return na == nb && strncmp(a, b, na) == 0;
}

/* Inherited environment minus proxy variables, with `extra` added/overriding.
 * The array is malloc'd; its strings are borrowed. */
static const char **build_env(const char *const *extra)
{
    size_t n = 0, m = 0;
    for (char **e = environ; e && *e; e++)
        n++;
    for (const char *const *e = extra; e && *e; e++)
        m++;
    const char **env = thi_xmalloc((n + m + 1) * sizeof(char *));
    size_t k = 0;
    for (char **e = environ; e && *e; e++) {
        bool overridden = is_proxy_var(*e);
        for (const char *const *x = extra; x && *x && !overridden; x++)
            overridden = same_name(*e, *x);
        if (!overridden)
            env[k++] = *e;
    }
    for (const char *const *x = extra; x && *x; x++)
        env[k++] = *x;
    env[k] = NULL;
    return env;
}

/*
 * fork + execve. The child's stdin is /dev/null, stdout goes to out_fd and
 * stderr to err_fd (-1 = inherit), and it gets SIGKILL if the test dies.
 * Only async-signal-safe calls happen in the child.
 */
static pid_t spawn(const char *bin, const char *const argv[], const char *const *extra_env,
                   int out_fd, int err_fd)
{
    const char **env = build_env(extra_env);
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        signal(SIGPIPE, SIG_DFL);
        if (devnull >= 0)
            dup2(devnull, STDIN_FILENO);
        if (out_fd >= 0)
            dup2(out_fd, STDOUT_FILENO);
        if (err_fd >= 0)
            dup2(err_fd, STDERR_FILENO);
        /* libcurl's sockets are not close-on-exec: a child (a mock restarted
         * while clients are connected) must not hold the test's connections */
        close_range(3, ~0U, 0);
        /* execve's arrays are char *const[] for history's sake; it only reads them */
        execve(bin, (char *const *)(uintptr_t)argv, (char *const *)(uintptr_t)env);
        static const char msg[] = "harness: exec failed: ";
        ssize_t w = write(STDERR_FILENO, msg, sizeof(msg) - 1);
        w = write(STDERR_FILENO, bin, strlen(bin));
        w = write(STDERR_FILENO, "\n", 1);
        (void)w;
        _exit(127);
    }
    if (devnull >= 0)
        close(devnull);
    free(env);
    if (pid < 0)
        perror("harness: fork");
    return pid;
}

static const char *bin_path(const char *env_name, const char *dflt)
{
    const char *v = getenv(env_name);
    return v && *v ? v : dflt;
}

char *th_write_temp(const char *content, const char *suffix)
{
    if (!suffix)
        suffix = "";
    char *path = th_strf("%s/meridian-test-XXXXXX%s", tmp_dir(), suffix);
    int fd = mkostemps(path, (int)strlen(suffix), O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "harness: mkstemp %s: %s\n", path, strerror(errno));
        free(path);
        return NULL;
    }
    size_t len = content ? strlen(content) : 0, off = 0;
    while (off < len) {
        ssize_t n = write(fd, content + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            fprintf(stderr, "harness: write %s: %s\n", path, strerror(errno));
            close(fd);
            unlink(path);
            free(path);
            return NULL;
        }
        off += (size_t)n;
    }
    close(fd);
    return path;
}

/* A new empty temp log; returns the fd (O_APPEND) and fills path. */
static int open_temp_log(char *path, size_t pathlen)
{
    int n = snprintf(path, pathlen, "%s/meridian-test-XXXXXX.log", tmp_dir());
    if (n < 0 || (size_t)n >= pathlen) {
        path[0] = '\0';
        return -1;
    }
    int fd = mkostemps(path, 4, O_CLOEXEC | O_APPEND);
    if (fd < 0) {
        fprintf(stderr, "harness: mkstemp %s: %s\n", path, strerror(errno));
        path[0] = '\0';
    }
    return fd;
}

/* ------------------------------------------------------------------ mock */

int th_start_mock(th_proc_t *p, const char *name)
{
    return th_start_mock_on_port(p, name, 0);
}

int th_start_mock_on_port(th_proc_t *p, const char *name, int fixed_port)
{
    memset(p, 0, sizeof(*p));
    const char *bin = bin_path("MERIDIAN_MOCK_BIN", MOCK_BIN);
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) != 0) {
        perror("harness: pipe");
        return -1;
    }
    char port_arg[16];
    snprintf(port_arg, sizeof(port_arg), "%d", fixed_port);
    const char *argv[] = {bin, "--name", name ? name : "mock", "--port", port_arg, NULL};
    if (fixed_port <= 0)
        argv[3] = NULL;
    pid_t pid = spawn(bin, argv, NULL, pfd[1], -1);
    close(pfd[1]);
    if (pid < 0) {
        close(pfd[0]);
        return -1;
    }

    char line[256];
    size_t len = 0;
    int port = 0;
    double deadline = thi_mono_ms() + TH_START_TIMEOUT_MS;
    for (;;) {
        int left = (int)(deadline - thi_mono_ms());
        if (left <= 0) {
            fprintf(stderr, "harness: %s did not report its port within %d ms\n", bin,
                    TH_START_TIMEOUT_MS);
            break;
        }
        struct pollfd pf = {.fd = pfd[0], .events = POLLIN};
        int rc = poll(&pf, 1, left);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc <= 0)
            continue;
        ssize_t n = read(pfd[0], line + len, sizeof(line) - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            fprintf(stderr, "harness: %s exited before listening\n", bin);
            break;
        }
        len += (size_t)n;
        line[len] = '\0';
        if (strchr(line, '\n')) {
            if (sscanf(line, "listening on 127.0.0.1:%d", &port) != 1 || port <= 0 ||
                port > 65535 || (fixed_port > 0 && port != fixed_port)) {
                fprintf(stderr, "harness: unexpected first line from %s: %s", bin, line);
                port = 0;
            }
            break;
        }
        if (len == sizeof(line) - 1) {
            fprintf(stderr, "harness: overlong first line from %s\n", bin);
            break;
        }
    }
    close(pfd[0]);
    if (port == 0) {
        kill_reap(pid);
        return -1;
    }
    p->pid = pid;
    p->port = port;
    reg_add(p, "mock_upstream");
    return 0;
}

/* --------------------------------------------------------------- meridian */

/* Port of the first "listening on HOST:PORT<whitespace>" in log, 0 if none
 * (a token not yet followed by whitespace may still be being written). */
static int parse_listen_port(const char *log)
{
    static const char key[] = "listening on ";
    for (const char *s = strstr(log, key); s; s = strstr(s + 1, key)) {
        const char *tok = s + sizeof(key) - 1;
        size_t n = strcspn(tok, " \t\r\n");
        if (n == 0 || tok[n] == '\0')
            continue;
        const char *colon = NULL;
        for (size_t i = 0; i < n; i++)
            if (tok[i] == ':')
                colon = tok + i;
        if (!colon || colon + 1 == tok + n)
            continue;
        long port = 0;
        const char *d = colon + 1;
        for (; d < tok + n && *d >= '0' && *d <= '9' && port <= 65535; d++)
            port = port * 10 + (*d - '0');
        if (d == tok + n && port > 0 && port <= 65535)
            return (int)port;
    }
    return 0;
}

static void dump_log(const th_proc_t *p, const char *why)
{
    char *log = th_read_log(p);
    fprintf(stderr, "harness: meridian %s; log %s:\n%s%s---- end of log ----\n", why, p->log_path,
            log ? log : "(unreadable)\n", log && *log && log[strlen(log) - 1] != '\n' ? "\n" : "");
    free(log);
}

int th_start_meridian_live_rss(th_proc_t *p, const char *config_json, const char *const *args)
{
    const char *prev = getenv("ASAN_OPTIONS");
    char *asan =
        th_strf("ASAN_OPTIONS=%s%squarantine_size_mb=0", prev ? prev : "", prev ? ":" : "");
    const char *env[] = {asan, NULL};
    int rc = th_start_meridian_ex(p, config_json, args, env);
    free(asan);
    return rc;
}

int th_start_meridian_ex(th_proc_t *p, const char *config_json, const char *const *args,
                         const char *const *env)
{
    memset(p, 0, sizeof(*p));
    const char *bin = bin_path("MERIDIAN_BIN", MERIDIAN_BIN);
    char *cfg = th_write_temp(config_json ? config_json : "", ".json");
    if (!cfg)
        return -1;
    snprintf(p->config_path, sizeof(p->config_path), "%s", cfg);
    free(cfg);
    int logfd = open_temp_log(p->log_path, sizeof(p->log_path));
    if (logfd < 0) {
        unlink(p->config_path);
        p->config_path[0] = '\0';
        return -1;
    }

    const char *argv[TH_MAX_ARGS + 8];
    size_t k = 0;
    argv[k++] = bin;
    argv[k++] = "--config";
    argv[k++] = p->config_path;
    argv[k++] = "--listen";
    argv[k++] = "127.0.0.1:0";
    for (const char *const *a = args; a && *a && k < TH_MAX_ARGS; a++)
        argv[k++] = *a;
    argv[k] = NULL;

    pid_t pid = spawn(bin, argv, env, logfd, logfd);
    close(logfd);
    if (pid < 0) {
        remove_files(p->log_path, p->config_path);
        return -1;
    }
    p->pid = pid;
    reg_add(p, "meridian");

    double deadline = thi_mono_ms() + TH_START_TIMEOUT_MS;
    for (;;) {
        char *log = th_read_log(p);
        int port = log ? parse_listen_port(log) : 0;
        free(log);
        if (port > 0) {
            p->port = port;
            return 0;
        }
        int st;
        int r = reap(pid, 0, &st);
        if (r != 0) {
            reg_forget_pid(pid);
            p->pid = 0;
            char why[64];
            snprintf(why, sizeof(why), "exited with status %d before listening", st);
            dump_log(p, r > 0 ? why : "could not be waited for");
            break;
        }
        if (thi_mono_ms() >= deadline) {
            dump_log(p, "did not report \"listening on HOST:PORT\" within 10 s");
            kill_reap(pid);
            reg_forget_pid(pid);
            p->pid = 0;
            break;
        }
        th_pause_ms(TH_POLL_MS);
    }
    th_stop(p); /* removes the temp files and the registry entry */
    p->port = 0;
    return -1;
}

int th_start_meridian(th_proc_t *p, const char *config_json, const char *const *env)
{
    return th_start_meridian_ex(p, config_json, NULL, env);
}

/* SIGTERM, TH_STOP_TIMEOUT_MS, SIGKILL: the status as th_stop returns it. */
static int stop_pid(pid_t pid)
{
    int status = -1;
    kill(pid, SIGTERM);
    int r = reap(pid, TH_STOP_TIMEOUT_MS, &status);
    if (r == 0) {
        fprintf(stderr, "harness: pid %d ignored SIGTERM for %d ms; SIGKILL\n", (int)pid,
                TH_STOP_TIMEOUT_MS);
        status = kill_reap(pid);
    }
    return r < 0 ? -1 : status;
}

int th_stop(th_proc_t *p)
{
    int status = -1;
    if (p->pid > 0) {
        status = stop_pid(p->pid);
        judge_proc(p, status);
    }
    int i = reg_find(p);
    if (i >= 0)
        memset(&g_procs[i], 0, sizeof(g_procs[i]));
    remove_files(p->log_path, p->config_path);
    p->pid = 0;
    return status;
}

int th_signal(const th_proc_t *p, int sig)
{
    if (p->pid <= 0)
        return -1;
    return kill(p->pid, sig) == 0 ? 0 : -1;
}

int th_wait_exit(th_proc_t *p, int timeout_ms)
{
    if (p->pid <= 0)
        return -1;
    int status;
    if (reap(p->pid, timeout_ms, &status) != 1)
        return -1;
    judge_proc(p, status);
    reg_forget_pid(p->pid);
    p->pid = 0;
    return status;
}

char *th_read_log(const th_proc_t *p)
{
    if (!p->log_path[0])
        return NULL;
    return slurp(p->log_path, NULL);
}

int th_wait_log(const th_proc_t *p, const char *needle, int timeout_ms)
{
    return th_wait_log_count(p, needle, 1, timeout_ms);
}

int th_log_count(const th_proc_t *p, const char *needle)
{
    char *log = th_read_log(p);
    int found = 0;
    for (const char *q = log; q && (q = strstr(q, needle)) != NULL; q++)
        found++;
    free(log);
    return found;
}

/* Polls the file at path (NULL: none, never found) until it holds `needle`
 * at least `count` times, or timeout_ms passed: 0 / -1. */
static int wait_file_count(const char *path, const char *needle, size_t count, int timeout_ms)
{
    double deadline = thi_mono_ms() + timeout_ms;
    for (;;) {
        char *s = path ? slurp(path, NULL) : NULL;
        size_t found = 0;
        for (const char *q = s; q && (q = strstr(q, needle)) != NULL; q++)
            found++;
        free(s);
        if (found >= count)
            return 0;
        if (thi_mono_ms() >= deadline)
            return -1;
        th_pause_ms(TH_POLL_MS);
    }
}

int th_wait_log_count(const th_proc_t *p, const char *needle, int count, int timeout_ms)
{
    return wait_file_count(p->log_path[0] ? p->log_path : NULL, needle,
                           count > 0 ? (size_t)count : 0, timeout_ms);
}

char *th_read_file(const char *path, size_t *len)
{
    return slurp(path, len);
}

int th_wait_lines(const char *path, size_t n, int timeout_ms)
{
    return wait_file_count(path, "\n", n, timeout_ms);
}

int th_run_meridian(const char *const *args, const char *const *env, char **output)
{
    if (output)
        *output = NULL;
    const char *bin = bin_path("MERIDIAN_BIN", MERIDIAN_BIN);
    char log[256];
    int fd = open_temp_log(log, sizeof(log));
    if (fd < 0)
        return -1;
    const char *argv[TH_MAX_ARGS + 2];
    size_t k = 0;
    argv[k++] = bin;
    for (const char *const *a = args; a && *a && k < TH_MAX_ARGS; a++)
        argv[k++] = *a;
    argv[k] = NULL;
    pid_t pid = spawn(bin, argv, env, fd, fd);
    close(fd);
    int status = -1;
    if (pid > 0) {
        int r = reap(pid, TH_RUN_TIMEOUT_MS, &status);
        if (r == 0) {
            fprintf(stderr, "harness: %s did not exit within %d ms; SIGKILL\n", bin,
                    TH_RUN_TIMEOUT_MS);
            status = kill_reap(pid);
        } else if (r < 0) {
            status = -1;
        }
        judge("meridian", pid, status, status, log); /* the caller checks the status */
    }
    if (output)
        *output = slurp(log, NULL);
    unlink(log);
    return status;
}

void th_cleanup(void)
{
    for (size_t i = 0; i < TH_MAX_PROCS; i++) {
        if (g_procs[i].pid > 0) {
            fprintf(stderr, "harness: stopping leftover %s pid %d\n", g_procs[i].what,
                    (int)g_procs[i].pid);
            judge(g_procs[i].what, g_procs[i].pid, stop_pid(g_procs[i].pid), g_procs[i].expect,
                  g_procs[i].log);
        }
        if (g_procs[i].pid > 0 || g_procs[i].log[0] || g_procs[i].config[0])
            remove_files(g_procs[i].log, g_procs[i].config);
        memset(&g_procs[i], 0, sizeof(g_procs[i]));
    }
    curl_global_cleanup();
    if (g_failures) {
        /* whatever cmocka counted: 1.1.5 ignores a group teardown's result */
        fprintf(stderr,
                "harness: %d process(es) exited badly or with a sanitizer report (see "
                "\"harness: FAIL\" above): the test fails\n",
                g_failures);
        exit(1);
    }
}
