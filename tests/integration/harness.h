/*
 * Integration-test harness: start the real `meridian` binary and
 * `mock_upstream` on ephemeral 127.0.0.1 ports, talk HTTP to them with
 * libcurl, and steer/inspect the mock.
 *
 * Usage in a cmocka test program:
 *
 *     int main(void) {
 *         th_init();                    // once, before anything else
 *         int rc = cmocka_run_group_tests(tests, group_setup, group_teardown);
 *         th_cleanup();                 // once, at the end
 *         return rc;
 *     }
 *
 * Threading: every function must be called from the test's main thread.
 * Processes: children get SIGKILL if the test process dies (PR_SET_PDEATHSIG),
 * and th_cleanup() kills whatever a failed test left running, so a crashed or
 * failed test never leaks daemons. Spawned children inherit the environment
 * minus proxy variables (http_proxy, HTTPS_PROXY, ALL_PROXY, ...), so
 * 127.0.0.1 traffic is never sent to a proxy; an `env` entry can set them.
 * Deadlines: starting waits at most 10 s, stopping 10 s before SIGKILL, an
 * HTTP request 30 s; nothing sleeps for synchronisation except bounded polls.
 *
 * Exits are judged: every process the harness started is, when it is reaped
 * (th_stop, th_wait_exit, or th_cleanup for a leftover, which gets SIGTERM
 * first), a failure if its exit status is not the expected one (0 unless
 * th_expect_exit said otherwise; 137 when th_stop had to SIGKILL it) or if its
 * log holds a sanitizer report (ASan, LSan, UBSan, TSan). A failure is told on
 * stderr ("harness: FAIL: ...", with the log) and th_cleanup() then exits the
 * program with status 1, whatever cmocka counted: cmocka 1.1.5 ignores a
 * group teardown's result, and a teardown is where most tests stop their
 * daemon. th_run_meridian's status is returned for its caller to check (only
 * a sanitizer report in its output is judged); a th_start_* that fails
 * returns -1, which the caller must check.
 *
 * Binaries: MERIDIAN_BIN / MOCK_BIN are compiled-in absolute paths; the
 * environment variables MERIDIAN_BIN and MERIDIAN_MOCK_BIN override them.
 * Set MERIDIAN_TEST_KEEP_LOGS=1 to keep daemon logs and configs after th_stop.
 */
#ifndef MERIDIAN_TEST_HARNESS_H
#define MERIDIAN_TEST_HARNESS_H

#include <stddef.h>
#include <sys/types.h>

#include <curl/curl.h>
#include <jansson.h>

/* ------------------------------------------------------------------ set-up */

/* curl_global_init, SIGPIPE ignored. Call once at the start of main(). */
void th_init(void);
/* Stops (SIGTERM, then SIGKILL after 10 s) and judges any process still
 * running, removes temp files, curl_global_cleanup. Call once at the end of
 * main(): it exits the program with status 1 when any process was judged a
 * failure (see "Exits are judged" above), else returns. */
void th_cleanup(void);

/* ---------------------------------------------------------------- processes */

/* A child process. Zero-initialise before th_start_*; the paths are empty
 * when unused (the mock has no log file: its stderr is the test's stderr). */
typedef struct th_proc {
    pid_t pid;
    int port;
    char log_path[256];
    char config_path[256];
} th_proc_t;

/*
 * Starts mock_upstream --name NAME on an ephemeral port and waits (10 s max)
 * for its "listening on 127.0.0.1:PORT" line. Returns 0 and fills p->pid and
 * p->port, or -1 (with a message on stderr).
 */
int th_start_mock(th_proc_t *p, const char *name);
/* Same on `port` (mock_upstream --port), e.g. to bring a stopped mock back
 * on the port a gateway knows; -1 when it cannot listen there. */
int th_start_mock_on_port(th_proc_t *p, const char *name, int port);

/*
 * Writes `config_json` to a temp file (p->config_path), starts
 *   meridian --config FILE --listen 127.0.0.1:0
 * with stdout+stderr to a temp log (p->log_path) and `env` ("NAME=value",
 * NULL-terminated, may be NULL) added to / overriding the inherited
 * environment, then waits (10 s max) until the log has a line with
 * "listening on HOST:PORT" followed by whitespace; p->port is the number
 * after the token's last ':'. Returns 0, or -1 after printing the log to
 * stderr (process exited, timed out, or could not start); on -1 the process
 * is reaped and the temp files are removed.
 */
int th_start_meridian(th_proc_t *p, const char *config_json, const char *const *env);

/* Same, with `args` (NULL-terminated, may be NULL) appended to the command
 * line after "--listen 127.0.0.1:0". */
int th_start_meridian_ex(th_proc_t *p, const char *config_json, const char *const *args,
                         const char *const *env);

/* th_start_meridian_ex for a gateway whose RSS the test measures: ASan's
 * quarantine keeps freed memory resident on purpose, so it is off in the
 * gateway (redzones and leak checks stay on); other builds ignore it. */
int th_start_meridian_live_rss(th_proc_t *p, const char *config_json, const char *const *args);

/*
 * SIGTERM, then waits up to 10 s (WNOHANG polls), then SIGKILL, and judges
 * the ending. Returns the
 * exit status (0..255), 128+signal if killed by a signal (137 when the
 * deadline forced SIGKILL), -1 if p holds no process. Removes p's temp files
 * unless MERIDIAN_TEST_KEEP_LOGS is set (then prints where they are); the
 * log stays readable until then, so read it before stopping if needed.
 */
int th_stop(th_proc_t *p);

/* The exit status that p's ending with is not a failure (default 0), for a
 * test that makes the process fail on purpose. An unknown p is a failure. */
void th_expect_exit(const th_proc_t *p, int status);

/* How many processes were judged failures so far. */
int th_failures(void);

/* Where `log` (may be NULL) holds a sanitizer report: the start of the
 * report's first line, or NULL when there is none. */
const char *th_sanitizer_report(const char *log);

/* kill(p->pid, sig). Returns 0 or -1. */
int th_signal(const th_proc_t *p, int sig);

/* Waits up to timeout_ms for p to exit by itself. Returns the exit status as
 * th_stop does, judged (and forgets the pid, keeping temp files until th_stop
 * or th_cleanup), or -1 if still running at the deadline. */
int th_wait_exit(th_proc_t *p, int timeout_ms);

/* The whole log file (malloc'd, NUL-terminated; caller frees), or NULL. */
char *th_read_log(const th_proc_t *p);

/* Waits up to timeout_ms until p's log contains `needle`: 0 found, -1 not. */
int th_wait_log(const th_proc_t *p, const char *needle, int timeout_ms);
/* Same, until `needle` occurs at least `count` times (e.g. once per worker). */
int th_wait_log_count(const th_proc_t *p, const char *needle, int count, int timeout_ms);
/* How many times `needle` occurs in p's log now. */
int th_log_count(const th_proc_t *p, const char *needle);

/*
 * Runs meridian with `args` (NULL-terminated; e.g. {"--check", "--config",
 * path, NULL}) and `env` to completion (30 s, then SIGKILL). Stores its
 * merged stdout+stderr in *output (malloc'd; may pass NULL). Returns the exit
 * status as th_stop does, -1 if it could not be run.
 */
int th_run_meridian(const char *const *args, const char *const *env, char **output);

/* Writes `content` to a new temp file ($TMPDIR or /tmp) whose name ends in
 * `suffix` (e.g. ".json"). Returns the malloc'd path (caller unlinks and
 * frees), NULL on error. */
char *th_write_temp(const char *content, const char *suffix);

/* A whole file (malloc'd, NUL-terminated, its length in *len unless NULL;
 * caller frees), or NULL when it cannot be opened. */
char *th_read_file(const char *path, size_t *len);
/* Waits up to timeout_ms until the file at path holds at least n lines
 * (written by another process's thread, e.g. the audit writer): 0 / -1. */
int th_wait_lines(const char *path, size_t n, int timeout_ms);

/* One step of a bounded poll (never a wait for readiness by itself). */
void th_pause_ms(int ms);

/* A 127.0.0.1 port nothing listens on (bound to port 0, then closed). */
int th_refused_port(void);

/* "http://127.0.0.1:PORT" + path, malloc'd (caller frees). */
char *th_url(const th_proc_t *p, const char *path);
/* Same into buf; returns buf ("" if it does not fit). */
const char *th_url_buf(const th_proc_t *p, const char *path, char *buf, size_t buflen);

/* printf into a malloc'd string (caller frees); aborts on OOM. */
char *th_strf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* --------------------------------------------------------------------- HTTP */

typedef struct th_response {
    long status;   /* 0 when no response head arrived */
    char *headers; /* raw header block of the final response, NUL-terminated */
    char *body;    /* NUL-terminated (not counted in body_len), never NULL */
    size_t body_len;
    double t_first_byte_ms; /* first body byte, from the call's start; -1 if none */
    double t_total_ms;      /* whole call */
    int curl_code;          /* CURLcode; CURLE_OK when the transfer completed */
} th_response_t;

typedef struct th_http_opts {
    CURL *easy;               /* reuse this handle (and its live connections); NULL = fresh */
    long timeout_ms;          /* total timeout; 0 = 30000 */
    size_t abort_after_bytes; /* abort the transfer (closing the connection) once this
                                 many body bytes arrived; 0 = never */
} th_http_opts_t;

/*
 * One HTTP/1.1 request with libcurl easy. `headers` are "Name: value"
 * (NULL-terminated, may be NULL). A non-NULL `body` is sent with
 * Content-Type: application/json unless `headers` sets Content-Type
 * ("Content-Type:" alone removes it); "Expect: 100-continue" is suppressed
 * unless `headers` sets Expect. Proxies are never used. Fills *out (free it
 * with th_response_free) even on failure, keeping whatever arrived. Returns
 * 0 if the transfer completed (any HTTP status), -1 otherwise (see
 * out->curl_code).
 */
int th_http(const char *method, const char *url, const char *const *headers, const char *body,
            size_t body_len, th_response_t *out);
/* Same with options (opts may be NULL). */
int th_http_ex(const th_http_opts_t *opts, const char *method, const char *url,
               const char *const *headers, const char *body, size_t body_len, th_response_t *out);

/* One request of a th_http_parallel batch (fields as for th_http). */
typedef struct th_request {
    const char *method;
    const char *url;
    const char *const *headers;
    const char *body;
    size_t body_len;
} th_request_t;

/* Runs n requests concurrently (curl multi, one connection each) and fills
 * outs[0..n) (free each with th_response_free). Returns the number of
 * transfers that did not complete (0 = all completed), -1 on set-up error. */
int th_http_parallel(const th_request_t *reqs, size_t n, th_response_t *outs);

void th_response_free(th_response_t *r);

/* What th_post_during came back with. */
typedef struct th_during {
    int curl_code; /* CURLE_GOT_NOTHING when the transfer never finished */
    long status;
    long long bytes; /* body bytes received */
    int hook_ran;    /* the hook was called (the body had begun) */
} th_during_t;

/*
 * POSTs `body` (JSON) to `url` and, once the first body bytes have arrived,
 * calls hook(ud) exactly once while the transfer is still running (to signal
 * or reconfigure the daemon mid-stream), then lets the transfer finish
 * (10 s total timeout). The body is discarded; *out says how it ended.
 */
void th_post_during(const char *url, const char *body, void (*hook)(void *ud), void *ud,
                    th_during_t *out);

/* Case-insensitive lookup of a response header: the value of its last
 * occurrence, trimmed, copied into buf (truncated to buflen-1). Returns buf,
 * or NULL if absent. */
const char *th_header(const th_response_t *r, const char *name, char *buf, size_t buflen);

/* The body parsed as JSON (caller json_decrefs), NULL if it is not JSON. */
json_t *th_json(const th_response_t *r);

/* The line of a JSON-lines log (access log, audit file) whose "id" is id,
 * parsed (caller json_decrefs); polled for up to 5 s, since the daemon's
 * writer thread is asynchronous. NULL when none appeared. */
json_t *th_log_record(const char *path, const char *id);

/*
 * Splits an SSE stream into events' data: the "data:" lines of each event
 * (one optional space after the colon removed; several lines joined with
 * '\n'); events end at a blank line (LF or CRLF) or at the end of input;
 * comments and other fields are ignored; "[DONE]" is an ordinary event.
 * *events is a malloc'd array of malloc'd strings: free with th_sse_free.
 * Returns 0, -1 on bad arguments.
 */
int th_sse_events(const char *body, size_t len, char ***events, size_t *n);
void th_sse_free(char **events, size_t n);

/* ----------------------------------------------------------- mock control */

/* POST /_mock/scenario with `json` (see tests/mock/mock_upstream.c).
 * Returns 0, or -1 with the mock's error on stderr. */
int th_mock_scenario(const th_proc_t *mock, const char *json);
/* POST /_mock/reset: no scenarios (plain 200s), no records, counters at zero
 * (the open_connections/in_flight gauges excepted). 0 / -1. */
int th_mock_reset(const th_proc_t *mock);
/* GET /_mock/requests: array of {"method","path","connection","headers",
 * "body","body_truncated"} in arrival order (caller json_decrefs), or NULL. */
json_t *th_mock_requests(const th_proc_t *mock);
/* GET /_mock/stats: {"requests","connections","connections_accepted",
 * "open_connections","in_flight","completed","aborted"}, or NULL.
 * "connections" counts only TCP connections that carried a recorded
 * (non-control) request, so the harness's own control calls don't count. */
json_t *th_mock_stats(const th_proc_t *mock);
/* One integer of th_mock_stats, -1 on error. */
long th_mock_stat(const th_proc_t *mock, const char *key);
/* Polls th_mock_stat until it equals `value` (timeout_ms max): 0 / -1. */
int th_mock_wait_stat(const th_proc_t *mock, const char *key, long value, int timeout_ms);

#endif /* MERIDIAN_TEST_HARNESS_H */
