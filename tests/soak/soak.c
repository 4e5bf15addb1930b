/*
 * Fault soak: the real meridian binary (two workers) in front of five mock
 * upstreams that fail on purpose, under thousands of concurrent mixed
 * stream / non-stream chat requests, a quarter of them asking for reasoning
 * with a tool declared (thinking blocks, thought signatures and streamed tool
 * calls from the Anthropic and Gemini mocks). Bounded: it stops by itself.
 *
 *   soak [--long] [--requests N] [--seed S] [--concurrency C]
 *
 * Short profile (the default; `make test` runs it as soak.faults): 2,000
 * requests. --long: 24,000. Concurrency 64: a curl multi loop adds a new
 * request as soon as one finishes. The seed makes the fault sequence (not
 * the timing) reproducible.
 *
 * Upstreams: alpha (openai), bravo (anthropic), charlie (gemini), delta
 * (openai) on ephemeral ports, and echo (openai) on a fixed port, stopped in
 * the middle of traffic (its in-flight requests reset, then connect
 * refusals) and later restarted on the same port. Every target is the first
 * candidate of one route, so plain traffic probes every breaker.
 *
 * Traffic runs in phases of 500 requests, in cycles of four:
 *   0  retry storm: 70 % fast failures (500, 503, resets, garbage) on every
 *      mock, so that failovers would outrun the retry budget
 *   1  mixed faults; echo stops a quarter of the way in
 *   2  mixed faults (echo down)
 *   3  mixed faults; echo is back on its port (restarted before the phase)
 * Before each phase every live mock gets a seeded-random FIFO of count-1
 * scenarios (500, 429 with and without Retry-After 1, 503 with and without,
 * resets before the head and mid-body, stalls past first_byte_ms, garbage,
 * slow chunks, a stream idle past stream_idle_ms, a mid-stream error event,
 * long streams) mixed with runs of plain successes; the persistent default
 * stays success, so each phase ends clean. A few requests are bad on purpose
 * (bad JSON, unknown model, wrong gateway key); some go to provider/model
 * directly; one in ten opens a fresh connection.
 *
 * Checks (all printed, with a summary table; exit 1 when any fails):
 *  - every request completed (curl OK) within its client timeout
 *    (request_ms + 2 s): zero client timeouts, zero transport errors;
 *  - every answer well formed: a 200 non-stream is JSON with choices; a 200
 *    stream is SSE of JSON events ending in [DONE] or in an OpenAI-shaped
 *    error event; anything else is a 4xx/5xx {"error":{message,type,param,
 *    code}} with the status the request's kind calls for; x-request-id on
 *    all; x-meridian-attempts never above max_attempts;
 *  - retries within the retry budget: the clients' sum of (attempts - 1)
 *    equals the workers' own counters, stays under the budget's provable
 *    bound, and the budget did refuse retries in the storm; the mocks saw
 *    no more requests than the gateway's attempts (plus libcurl's silent
 *    replays of resets before the head);
 *  - the gateway's RSS stays under a ceiling and does not grow over the
 *    second half; once clients leave it holds no client connection and its
 *    fds are back to the start plus its upstream keep-alive pool;
 *  - after the faults stop, plain traffic closes every breaker on both
 *    workers within a bounded time, then every request succeeds on its first
 *    attempt, and no upstream transfer is left in flight at any mock;
 *  - no secret (provider keys, the gateway key, the wrong key a client sent)
 *    in the gateway log, any response header or body, or
 *    /v1/gateway/providers; the provider keys did reach their upstreams and
 *    the gateway key never did;
 *  - SIGTERM: exit 0 (under ASan: no ASan/LSan/UBSan report either).
 */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <dirent.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define SOAK_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SOAK_ASAN 1
#endif
#endif
#ifndef SOAK_ASAN
#define SOAK_ASAN 0
#endif

/* ---- configuration ------------------------------------------------------ */

#define FIRST_BYTE_MS 700
#define REQUEST_MS 3000
#define STREAM_IDLE_MS 1000
#define CLIENT_TIMEOUT_MS (REQUEST_MS + 2000)
#define MAX_ATTEMPTS 3
/* Breakers open after 10 consecutive failures (the default is 5): at the
 * storm's 70 % failure rate that seldom happens, so failovers keep coming
 * and the retry budget is what holds them back. */
#define FAILURE_THRESHOLD 10
#define COOLDOWN_MS 500
#define MAX_COOLDOWN_MS 2000 /* also caps Retry-After */
#define WORKERS 2
#define BUDGET_RATIO 0.2 /* retry_budget defaults */
#define BUDGET_WINDOW_S 10
#define BUDGET_FLOOR_PER_S 5
#define PHASE_REQUESTS 500
#define SETTLE_DEADLINE_MS 30000
#define MAX_CONCURRENCY 256
#define MAX_BODY (8u * 1024u * 1024u)
#define RSS_SAMPLE_MS 250
#define MAX_SAMPLES 4096
#define MAX_EXAMPLES 8
#define FAULT_PERCENT 30 /* share of queued scenarios that are faults */
#define STORM_PERCENT 70 /* ... in a retry-storm phase (fast failures only) */
#define STATE_SAMPLE_MS 1000
#define FD_SLACK 8
#define RSS_CAP_MIB 200L /* gateway RSS ceilings; ASan's shadow and allocator add */
#define RSS_CAP_ASAN_MIB 400L
#define GROWTH_CAP_MIB 8L /* over the second half of the fault traffic */
#define GROWTH_CAP_ASAN_MIB 24L

#define GW_KEY "mgw-soak-3f9d1c7ab2e84d60b5a1e2c3d4f5a6b7"
#define GW_KEY_SHA256 "b72fe7da4d93713005e71ad542486371d0ce18df7e3e4b526412a3c6820fe364"
#define WRONG_KEY "mgw-soak-wrong-5e0c2a9d7b1f4e3a8c6d0b2f"

typedef enum { DIALECT_OPENAI, DIALECT_ANTHROPIC, DIALECT_GEMINI } dialect_t;

typedef struct upstream {
    const char *name;  /* provider and mock name */
    const char *model; /* its target's upstream model */
    dialect_t dialect;
    const char *key;     /* the provider's secret */
    const char *key_env; /* env variable carrying it; NULL = literal in the file */
    const char *auth;    /* header the upstream must receive it in */
    const char *route;   /* the route it is first in */
    int stoppable;       /* the one stopped and restarted on a fixed port */
    th_proc_t proc;
    int up;          /* running */
    long seen_base;  /* requests recorded by earlier incarnations (stoppable one) */
    long replays;    /* the same client request recorded twice (libcurl replays) */
    long audited;    /* recorded requests whose credentials were checked */
    int bad_auth;    /* one arrived without the provider's key */
    int client_key;  /* a client's key travelled upstream */
    long rbh_pushed; /* reset_before_headers scenarios queued */
} upstream_t;

#define N_UP 5
static upstream_t ups[N_UP] = {
    {.name = "alpha",
     .model = "alpha-m",
     .dialect = DIALECT_OPENAI,
     .key = "sk-soak-alpha-8d2f6b1e9c4a7053d1e8",
     .key_env = "SOAK_KEY_ALPHA",
     .auth = "authorization",
     .route = "r-alpha"},
    {.name = "bravo",
     .model = "claude-soak",
     .dialect = DIALECT_ANTHROPIC,
     .key = "sk-ant-soak-bravo-4c7e1a9f2b6d0853e7a1",
     .key_env = "SOAK_KEY_BRAVO",
     .auth = "x-api-key",
     .route = "r-bravo"},
    {.name = "charlie",
     .model = "gemini-soak",
     .dialect = DIALECT_GEMINI,
     .key = "goog-soak-charlie-71b3e9d5a2f8c6041e9b",
     .key_env = "SOAK_KEY_CHARLIE",
     .auth = "x-goog-api-key",
     .route = "r-charlie"},
    {.name = "delta",
     .model = "delta-m",
     .dialect = DIALECT_OPENAI,
     .key = "sk-soak-delta-literal-2e6a0c8f4b1d9e7c3a5f",
     .key_env = NULL, /* in the file */
     .auth = "authorization",
     .route = "r-delta"},
    {.name = "echo",
     .model = "echo-m",
     .dialect = DIALECT_OPENAI,
     .key = "sk-soak-echo-9a3c5e7b1d0f2a4c6e8b",
     .key_env = "SOAK_KEY_ECHO",
     .auth = "authorization",
     .route = "r-echo",
     .stoppable = 1},
};
/* route i tries ups[i], ups[route_next[i][0]], ups[route_next[i][1]] */
static const int route_next[N_UP][2] = {{1, 4}, {2, 0}, {3, 4}, {4, 1}, {0, 2}};

/* ---- small helpers ------------------------------------------------------ */

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void pause_ms(int ms)
{
    poll(NULL, 0, ms);
}

static uint64_t rng_state = 0x5eed50a4c0ffeeULL;

static uint64_t rng(void)
{
    /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1DULL;
}

static unsigned rnd(unsigned n)
{
    return (unsigned)(rng() % n);
}

static int failures;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        bool ok_ = (cond);                                                                         \
        printf("  [%s] ", ok_ ? "PASS" : "FAIL");                                                  \
        printf(__VA_ARGS__);                                                                       \
        printf("\n");                                                                              \
        if (!ok_)                                                                                  \
            failures++;                                                                            \
    } while (0)

typedef struct buf {
    char *p;
    size_t len, cap;
} buf_t;

static int buf_add(buf_t *b, const char *d, size_t n)
{
    if (b->len + n + 1 > MAX_BODY)
        return -1;
    if (b->len + n + 1 > b->cap) {
        size_t c = b->cap ? b->cap : 1024;
        while (c < b->len + n + 1)
            c *= 2;
        char *np = realloc(b->p, c);
        if (!np)
            return -1;
        b->p = np;
        b->cap = c;
    }
    memcpy(b->p + b->len, d, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

static void buf_clear(buf_t *b)
{
    b->len = 0;
    if (b->p)
        b->p[0] = '\0';
}

/* ---- secrets ------------------------------------------------------------ */

static const char *secrets[N_UP + 2];
static size_t n_secrets;

static void init_secrets(void)
{
    for (int i = 0; i < N_UP; i++)
        secrets[n_secrets++] = ups[i].key;
    secrets[n_secrets++] = GW_KEY;
    secrets[n_secrets++] = WRONG_KEY;
}

/* The first secret found in [p, p+n), or NULL. */
static const char *find_secret(const char *p, size_t n)
{
    for (size_t i = 0; p && i < n_secrets; i++)
        if (memmem(p, n, secrets[i], strlen(secrets[i])))
            return secrets[i];
    return NULL;
}

/* ---- a mock on a fixed port ---------------------------------------------- */

/* A free 127.0.0.1 port below the kernel's ephemeral range: while echo is
 * down no outgoing connection (ours, the gateway's, anyone's) can take it
 * as its local port, so echo can always come back on it. */
static int fixed_port(void)
{
    int lo = 32768, hi = 60999;
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    if (f) {
        if (fscanf(f, "%d %d", &lo, &hi) != 2)
            lo = 32768;
        fclose(f);
    }
    int first = 10000, last = lo - 1;
    if (last - first < 1000)
        return th_refused_port(); /* odd range: fall back to an ephemeral port */
    for (int tries = 0; tries < 100; tries++) {
        int port = first + (int)((unsigned)rand() % (unsigned)(last - first));
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        int ok = fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
        if (fd >= 0)
            close(fd);
        if (ok)
            return port;
    }
    return -1;
}

/* ---- process samples ------------------------------------------------------ */

static long rss_kib(pid_t pid)
{
    char path[64], line[256];
    long kib = -1;
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, "VmRSS:", 6) == 0)
            kib = strtol(line + 6, NULL, 10);
    fclose(f);
    return kib;
}

static long fd_count(pid_t pid)
{
    char path[64];
    long n = 0;
    snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
    DIR *d = opendir(path);
    if (!d)
        return -1;
    for (struct dirent *e; (e = readdir(d));)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* Sockets in the TCP table (ESTABLISHED or CLOSE_WAIT) whose local port is
 * `local` (when > 0) or whose remote port is one of `remote[0..n)`. */
static long tcp_count(int local, const int *remote, size_t n)
{
    long count = 0;
    char line[512];
    FILE *f = fopen("/proc/net/tcp", "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f)) {
        unsigned lport, rport, st;
        if (sscanf(line, " %*d: %*8X:%X %*8X:%X %X", &lport, &rport, &st) != 3)
            continue;
        if (st != 0x01 && st != 0x08)
            continue;
        bool hit = local > 0 && (int)lport == local;
        for (size_t i = 0; i < n && !hit; i++)
            hit = (int)rport == remote[i];
        count += hit;
    }
    fclose(f);
    return count;
}

typedef struct sample {
    double t_ms; /* since the start of fault traffic */
    long rss_kib;
    long fds;
} sample_t;

/* ---- statistics ------------------------------------------------------------ */

typedef struct tally {
    char key[96];
    long n;
} tally_t;

typedef struct stats {
    long sent, completed;
    long ok, ok_stream, ok_nonstream;
    long stream_error_events; /* 200 streams that carry an error event */
    long client_timeouts, transport_errors, malformed, unexpected_status;
    long missing_request_id, secret_leaks, over_max_attempts;
    long proxied;       /* requests the retry budget counts (valid key and model) */
    long with_attempts; /* answers with x-meridian-attempts */
    long attempts, retries;
    long first_try_ok; /* 200 after a single attempt */
    double *lat;
    size_t n_lat, cap_lat;
    tally_t errors[64];
    size_t n_errors;
    int examples;
} stats_t;

static void tally(stats_t *s, const char *key)
{
    for (size_t i = 0; i < s->n_errors; i++)
        if (strcmp(s->errors[i].key, key) == 0) {
            s->errors[i].n++;
            return;
        }
    if (s->n_errors < sizeof(s->errors) / sizeof(s->errors[0])) {
        snprintf(s->errors[s->n_errors].key, sizeof(s->errors[0].key), "%s", key);
        s->errors[s->n_errors++].n = 1;
    }
}

static void example(stats_t *s, const char *what, long status, const char *route, int stream,
                    const char *body, size_t len)
{
    if (s->examples++ >= MAX_EXAMPLES)
        return;
    printf("  ! %s: status %ld, model %s, %s, body (%zu bytes): %.400s\n", what, status, route,
           stream ? "stream" : "non-stream", len, body ? body : "");
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double percentile(stats_t *s, double p)
{
    if (!s->n_lat)
        return 0;
    qsort(s->lat, s->n_lat, sizeof(double), cmp_double);
    size_t i = (size_t)(p * (double)(s->n_lat - 1) + 0.5);
    return s->lat[i];
}

/* ---- requests ---------------------------------------------------------------- */

typedef enum { K_ROUTE, K_DIRECT, K_BAD_JSON, K_UNKNOWN_MODEL, K_WRONG_KEY } kind_t;

typedef struct job {
    CURL *h;
    struct curl_slist *hdrs;
    char body_in[1024];
    char model[64];
    kind_t kind;
    int stream;
    buf_t head, body;
    double t0;
    double not_before; /* a client told to retry later waits until then */
    int busy;
} job_t;

typedef struct snap {
    int valid;
    long requests, retries, denied;
    long outcomes; /* sum of the targets' "requests" (attempt outcomes) */
    long max_retry_in_ms;
    int targets, closed;
    char not_closed[256];
} snap_t;

typedef struct state_sample {
    double t_ms;
    int worker;
    char not_closed[120];
} state_sample_t;

typedef struct soak {
    th_proc_t gw;
    char url[128];
    CURLM *multi;
    job_t jobs[MAX_CONCURRENCY];
    int concurrency;
    double t_start; /* start of fault traffic */
    sample_t samples[MAX_SAMPLES];
    size_t n_samples;
    double last_sample;
    long provider_queries;
    long provider_leaks;
    long max_retry_in_ms; /* longest cooldown left seen in any answer */
    state_sample_t states[MAX_SAMPLES];
    size_t n_states;
    double last_state;
} soak_t;

static int query_providers(soak_t *so, snap_t per_worker[WORKERS]);

static size_t on_body(char *d, size_t sz, size_t nm, void *ud)
{
    job_t *j = ud;
    return buf_add(&j->body, d, sz * nm) == 0 ? sz * nm : 0;
}

static size_t on_head(char *d, size_t sz, size_t nm, void *ud)
{
    job_t *j = ud;
    if (sz * nm >= 5 && strncmp(d, "HTTP/", 5) == 0)
        buf_clear(&j->head);
    return buf_add(&j->head, d, sz * nm) == 0 ? sz * nm : 0;
}

/* Case-insensitive header lookup in a raw head block; copies the value. */
static const char *header_of(const char *head, const char *name, char *out, size_t outlen)
{
    size_t nlen = strlen(name);
    const char *found = NULL;
    for (const char *line = head; line && *line;) {
        size_t len = strcspn(line, "\n");
        if (len > nlen && strncasecmp(line, name, nlen) == 0 && line[nlen] == ':') {
            const char *v = line + nlen + 1, *end = line + len;
            while (v < end && (*v == ' ' || *v == '\t'))
                v++;
            while (end > v && (end[-1] == '\r' || end[-1] == ' '))
                end--;
            size_t n = (size_t)(end - v) < outlen - 1 ? (size_t)(end - v) : outlen - 1;
            memcpy(out, v, n);
            out[n] = '\0';
            found = out;
        }
        line += len;
        if (*line == '\n')
            line++;
    }
    return found;
}

/* {"error":{"message":string,"type":string,"param":…,"code":…}} */
static bool openai_error_shape(json_t *root, const char **code_out)
{
    json_t *e = json_object_get(root, "error");
    if (!json_is_object(e) || !json_is_string(json_object_get(e, "message")) ||
        !json_is_string(json_object_get(e, "type")) || !json_object_get(e, "param") ||
        !json_object_get(e, "code"))
        return false;
    json_t *param = json_object_get(e, "param"), *code = json_object_get(e, "code");
    if (!(json_is_null(param) || json_is_string(param)))
        return false;
    if (!(json_is_null(code) || json_is_string(code)))
        return false;
    if (code_out)
        *code_out = json_is_string(code) ? json_string_value(code) : "null";
    return true;
}

/* A 200 stream: JSON events, the last one [DONE] or an error event.
 * Returns 1 well-formed, 0 not; *errored when an error event is present. */
static int check_stream(const char *body, size_t len, int *errored)
{
    char **ev = NULL;
    size_t n = 0;
    int ok = 1, content = 0;
    *errored = 0;
    if (th_sse_events(body, len, &ev, &n) != 0 || n == 0) {
        th_sse_free(ev, n);
        return 0;
    }
    for (size_t i = 0; i < n && ok; i++) {
        if (strcmp(ev[i], "[DONE]") == 0) {
            ok = i == n - 1;
            continue;
        }
        json_t *j = json_loads(ev[i], 0, NULL);
        if (!json_is_object(j)) {
            ok = 0;
        } else if (json_object_get(j, "error")) {
            *errored = 1;
            ok = openai_error_shape(j, NULL);
        } else if (json_is_array(json_object_get(j, "choices"))) {
            content = 1;
        } else {
            ok = 0;
        }
        json_decref(j);
    }
    const char *last = ev[n - 1];
    if (ok && strcmp(last, "[DONE]") != 0) {
        /* not ending in [DONE]: must end in an error event */
        json_t *j = json_loads(last, 0, NULL);
        ok = j && json_object_get(j, "error") != NULL;
        json_decref(j);
    }
    if (ok && !*errored && !content)
        ok = 0; /* a clean stream carries at least one chunk */
    th_sse_free(ev, n);
    return ok;
}

/* Judges one finished request. */
static void judge(stats_t *s, job_t *j, CURLcode rc)
{
    double ms = now_ms() - j->t0;
    long status = 0;
    char v[128], key[96];

    s->completed++;
    if (s->n_lat == s->cap_lat) {
        s->cap_lat = s->cap_lat ? s->cap_lat * 2 : 4096;
        s->lat = realloc(s->lat, s->cap_lat * sizeof(double));
        if (!s->lat)
            abort();
    }
    s->lat[s->n_lat++] = ms;
    curl_easy_getinfo(j->h, CURLINFO_RESPONSE_CODE, &status);
    const char *leak = find_secret(j->head.p, j->head.len);
    if (!leak)
        leak = find_secret(j->body.p, j->body.len);
    if (leak) {
        s->secret_leaks++;
        example(s, "secret in a response", status, j->model, j->stream, j->body.p, j->body.len);
    }
    if (rc == CURLE_OPERATION_TIMEDOUT) {
        s->client_timeouts++;
        example(s, "client timeout (hung)", status, j->model, j->stream, j->body.p, j->body.len);
        return;
    }
    if (rc != CURLE_OK) {
        s->transport_errors++;
        snprintf(key, sizeof(key), "curl: %s", curl_easy_strerror(rc));
        tally(s, key);
        example(s, key, status, j->model, j->stream, j->body.p, j->body.len);
        return;
    }
    if (!header_of(j->head.p, "x-request-id", v, sizeof(v)))
        s->missing_request_id++;
    long a = 0;
    if (header_of(j->head.p, "x-meridian-attempts", v, sizeof(v))) {
        a = strtol(v, NULL, 10);
        s->with_attempts++;
        s->attempts += a;
        s->retries += a > 1 ? a - 1 : 0;
        if (a < 1 || a > MAX_ATTEMPTS)
            s->over_max_attempts++;
    }
    if (status == 200) {
        int errored = 0;
        bool good;
        if (j->kind != K_ROUTE && j->kind != K_DIRECT) {
            s->unexpected_status++;
            example(s, "200 for a bad request", status, j->model, j->stream, j->body.p,
                    j->body.len);
            return;
        }
        if (j->stream) {
            good = header_of(j->head.p, "content-type", v, sizeof(v)) &&
                   strstr(v, "text/event-stream") && check_stream(j->body.p, j->body.len, &errored);
        } else {
            json_t *root = json_loadb(j->body.p, j->body.len, 0, NULL);
            json_t *ch = json_object_get(root, "choices");
            good = json_is_array(ch) && json_array_size(ch) > 0 &&
                   json_is_object(json_object_get(json_array_get(ch, 0), "message"));
            json_decref(root);
        }
        if (!good) {
            s->malformed++;
            example(s, "malformed 200", status, j->model, j->stream, j->body.p, j->body.len);
            return;
        }
        s->ok++;
        s->first_try_ok += a == 1;
        if (j->stream) {
            s->ok_stream++;
            s->stream_error_events += errored;
        } else {
            s->ok_nonstream++;
        }
        return;
    }
    json_t *root = json_loadb(j->body.p, j->body.len, 0, NULL);
    const char *code = NULL;
    bool shaped = status >= 400 && status <= 599 && openai_error_shape(root, &code);
    snprintf(key, sizeof(key), "%ld %s", status, shaped ? code : "(malformed)");
    json_decref(root);
    tally(s, key);
    if (!shaped) {
        s->malformed++;
        example(s, "malformed error", status, j->model, j->stream, j->body.p, j->body.len);
        return;
    }
    bool expected;
    switch (j->kind) {
    case K_BAD_JSON:
        expected = status == 400;
        break;
    case K_UNKNOWN_MODEL:
        expected = status == 404;
        break;
    case K_WRONG_KEY:
        expected = status == 401;
        break;
    default: /* upstream failures only */
        expected = status == 429 || status == 502 || status == 503 || status == 504;
        break;
    }
    if (!expected) {
        s->unexpected_status++;
        example(s, "unexpected status", status, j->model, j->stream, j->body.p, j->body.len);
    }
}

typedef enum { TRAFFIC_FAULT, TRAFFIC_PLAIN } traffic_t;

/* Fills and adds one request to the multi handle. */
static void launch(soak_t *so, stats_t *s, job_t *j, traffic_t mode, long seq)
{
    unsigned r = rnd(1000);
    const char *auth = "Authorization: Bearer " GW_KEY;
    int fresh = mode == TRAFFIC_PLAIN || rnd(10) == 0;

    j->stream = mode == TRAFFIC_PLAIN ? (int)(seq & 1) : (int)rnd(2);
    j->kind = K_ROUTE;
    if (mode == TRAFFIC_PLAIN) {
        snprintf(j->model, sizeof(j->model), "%s", ups[(seq / 2) % N_UP].route);
    } else if (r < 880) {
        snprintf(j->model, sizeof(j->model), "%s", ups[rnd(N_UP)].route);
    } else if (r < 930) {
        const upstream_t *u = &ups[rnd(N_UP)];
        j->kind = K_DIRECT;
        snprintf(j->model, sizeof(j->model), "%s/%s", u->name, u->model);
    } else if (r < 955) {
        j->kind = K_BAD_JSON;
        snprintf(j->model, sizeof(j->model), "%s", ups[0].route);
    } else if (r < 975) {
        j->kind = K_UNKNOWN_MODEL;
        snprintf(j->model, sizeof(j->model), "no-such-route-%u", rnd(100));
    } else {
        j->kind = K_WRONG_KEY;
        snprintf(j->model, sizeof(j->model), "%s", ups[1].route);
        auth = "Authorization: Bearer " WRONG_KEY;
    }
    if (j->kind == K_ROUTE || j->kind == K_DIRECT)
        s->proxied++;
    /* one in four asks for reasoning and declares a tool: Anthropic thinking
     * blocks with signatures, Gemini thought signatures, streamed tool calls */
    int reasoning = rnd(4) == 0;
    snprintf(j->body_in, sizeof(j->body_in),
             "{\"model\":\"%s\",\"max_tokens\":%d,\"messages\":[{\"role\":\"user\","
             "\"content\":\"soak request %ld\"}]%s%s%s%s",
             j->model, reasoning ? 4096 : 64, seq, j->stream ? ",\"stream\":true" : "",
             j->stream && rnd(4) == 0 ? ",\"stream_options\":{\"include_usage\":true}" : "",
             reasoning ? ",\"reasoning_effort\":\"low\",\"tools\":[{\"type\":\"function\","
                         "\"function\":{\"name\":\"lookup\",\"parameters\":{\"type\":"
                         "\"object\",\"properties\":{\"q\":{\"type\":\"string\"}}}}}]"
                       : "",
             j->kind == K_BAD_JSON ? ",\"oops\":" : "}");

    if (!j->h && !(j->h = curl_easy_init()))
        abort();
    curl_easy_reset(j->h);
    curl_slist_free_all(j->hdrs);
    j->hdrs = curl_slist_append(NULL, auth);
    j->hdrs = curl_slist_append(j->hdrs, "Content-Type: application/json");
    j->hdrs = curl_slist_append(j->hdrs, "Expect:");
    buf_clear(&j->head);
    buf_clear(&j->body);
    curl_easy_setopt(j->h, CURLOPT_URL, so->url);
    curl_easy_setopt(j->h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(j->h, CURLOPT_PROXY, "");
    curl_easy_setopt(j->h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(j->h, CURLOPT_TIMEOUT_MS, (long)CLIENT_TIMEOUT_MS);
    curl_easy_setopt(j->h, CURLOPT_HTTPHEADER, j->hdrs);
    curl_easy_setopt(j->h, CURLOPT_POSTFIELDS, j->body_in);
    curl_easy_setopt(j->h, CURLOPT_POSTFIELDSIZE, (long)strlen(j->body_in));
    curl_easy_setopt(j->h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(j->h, CURLOPT_WRITEDATA, j);
    curl_easy_setopt(j->h, CURLOPT_HEADERFUNCTION, on_head);
    curl_easy_setopt(j->h, CURLOPT_HEADERDATA, j);
    curl_easy_setopt(j->h, CURLOPT_PRIVATE, (void *)j);
    if (fresh) {
        curl_easy_setopt(j->h, CURLOPT_FRESH_CONNECT, 1L);
        curl_easy_setopt(j->h, CURLOPT_FORBID_REUSE, 1L);
    }
    j->t0 = now_ms();
    j->busy = 1;
    s->sent++;
    curl_multi_add_handle(so->multi, j->h);
}

static void sample(soak_t *so, bool force)
{
    double t = now_ms();
    if (!force && t - so->last_sample < RSS_SAMPLE_MS)
        return;
    so->last_sample = t;
    if (so->n_samples < MAX_SAMPLES) {
        sample_t *x = &so->samples[so->n_samples++];
        x->t_ms = t - so->t_start;
        x->rss_kib = rss_kib(so->gw.pid);
        x->fds = fd_count(so->gw.pid);
    }
}

typedef void (*hook_fn)(soak_t *so, long issued);

/* Runs `n` requests keeping `concurrency` in flight; `hook` runs after each
 * launch (fault injection events). Returns when all finished. */
/* Every candidate's breaker was open (503 targets_unavailable, with
 * Retry-After). An SDK waits before it tries again; a closed-loop client
 * that does not would burn a whole phase in the breakers' cooldown, and the
 * share of requests that reach an upstream would measure the client, not
 * the gateway. The wait is capped well below the cooldowns to keep the
 * soak short. */
#define RETRY_AFTER_WAIT_MS 400

static bool told_to_wait(const job_t *j)
{
    long status = 0;
    curl_easy_getinfo(j->h, CURLINFO_RESPONSE_CODE, &status);
    return status == 503 && j->body.p && strstr(j->body.p, "\"targets_unavailable\"");
}

static void run(soak_t *so, stats_t *s, long n, traffic_t mode, long seq0, hook_fn hook)
{
    long issued = 0, done = 0;
    while (done < n) {
        for (int i = 0; i < so->concurrency && issued < n; i++) {
            if (!so->jobs[i].busy && so->jobs[i].not_before <= now_ms()) {
                launch(so, s, &so->jobs[i], mode, seq0 + issued);
                issued++;
                if (hook)
                    hook(so, seq0 + issued);
            }
        }
        int running = 0;
        curl_multi_perform(so->multi, &running);
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(so->multi, &left))) {
            if (m->msg != CURLMSG_DONE)
                continue;
            job_t *j = NULL;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&j);
            CURLcode rc = m->data.result;
            curl_multi_remove_handle(so->multi, j->h);
            judge(s, j, rc);
            j->not_before = told_to_wait(j) ? now_ms() + RETRY_AFTER_WAIT_MS : 0;
            j->busy = 0;
            done++;
        }
        sample(so, false);
        if (mode == TRAFFIC_FAULT && now_ms() - so->last_state >= STATE_SAMPLE_MS &&
            so->n_states < MAX_SAMPLES) {
            /* breaker states as one (random) worker sees them */
            snap_t one[WORKERS];
            memset(one, 0, sizeof(one));
            int w = query_providers(so, one);
            so->last_state = now_ms();
            if (w >= 0) {
                state_sample_t *x = &so->states[so->n_states++];
                x->t_ms = so->last_state - so->t_start;
                x->worker = w;
                snprintf(x->not_closed, sizeof(x->not_closed), "%.119s",
                         one[w].not_closed[0] ? one[w].not_closed : "all closed");
            }
        }
        if (done < n)
            curl_multi_poll(so->multi, NULL, 0, 50, NULL);
    }
}

/* ---- fault injection -------------------------------------------------------- */

typedef struct fault {
    const char *json; /* without count */
    unsigned weight;
    int rbh;  /* a reset before the head (libcurl may replay it) */
    int fast; /* fails at once: used in the retry storm */
} fault_t;

static const fault_t faults[] = {
    {"\"status\":500", 10, 0, 1},
    {"\"status\":429,\"retry_after\":\"1\"", 1, 0, 0},
    {"\"status\":429", 2, 0, 0},
    {"\"status\":503", 6, 0, 1},
    {"\"status\":503,\"retry_after\":\"1\"", 1, 0, 0},
    {"\"fault\":\"reset_before_headers\"", 6, 1, 1},
    {"\"fault\":\"reset_mid_body\",\"reset_after_chunks\":0", 4, 0, 1},
    {"\"fault\":\"reset_mid_body\",\"reset_after_chunks\":2", 5, 0, 0},
    {"\"headers_delay_ms\":1500", 4, 0, 0},
    {"\"fault\":\"stall\"", 2, 0, 0},
    {"\"fault\":\"garbage\"", 5, 0, 1},
    {"\"chunk_delay_ms\":120", 5, 0, 0},
    {"\"chunk_delay_ms\":1300,\"chunks\":3", 2, 0, 0},
    {"\"error_after_chunks\":2", 4, 0, 0},
    {"\"chunks\":400", 2, 0, 0},
};
#define N_FAULTS (sizeof(faults) / sizeof(faults[0]))

static long injected[N_FAULTS];
static long pushes, push_errors;

/* Faults injected whose scenario mentions `what`. */
static long injected_like(const char *what)
{
    long n = 0;
    for (size_t i = 0; i < N_FAULTS; i++)
        n += strstr(faults[i].json, what) ? injected[i] : 0;
    return n;
}

static int push(CURL *easy, upstream_t *u, const char *json)
{
    char url[128];
    th_response_t r;
    th_http_opts_t o = {.easy = easy, .timeout_ms = 5000};
    th_url_buf(&u->proc, "/_mock/scenario", url, sizeof(url));
    int rc = th_http_ex(&o, "POST", url, NULL, json, strlen(json), &r);
    if (rc != 0 || r.status != 200) {
        if (push_errors++ < 3)
            fprintf(stderr, "soak: scenario for %s failed (%ld): %s\n", u->name, r.status, r.body);
        rc = -1;
    }
    th_response_free(&r);
    pushes++;
    return rc;
}

static void clear_queue(upstream_t *u)
{
    char url[128];
    th_response_t r;
    if (th_http("POST", th_url_buf(&u->proc, "/_mock/clear_queue", url, sizeof(url)), NULL, "{}", 2,
                &r) != 0 ||
        r.status != 200)
        fprintf(stderr, "soak: clearing %s's scenario queue failed (%ld)\n", u->name, r.status);
    th_response_free(&r);
}

/* Queues about `slots` upstream requests' worth of scenarios on u: each
 * one a fault with probability `percent` (only fast ones when `storm`),
 * else part of a run of plain successes. */
static void inject(upstream_t *u, int slots, unsigned percent, bool storm)
{
    unsigned total = 0;
    for (size_t i = 0; i < N_FAULTS; i++)
        total += !storm || faults[i].fast ? faults[i].weight : 0;
    CURL *easy = curl_easy_init();
    int succ = 0;
    char js[256];
    for (int k = 0; k < slots; k++) {
        if (rnd(100) >= percent) {
            succ++;
            continue;
        }
        if (succ) {
            snprintf(js, sizeof(js), "{\"count\":%d}", succ);
            push(easy, u, js);
            succ = 0;
        }
        unsigned w = rnd(total);
        size_t f = 0;
        for (;; f++) {
            unsigned fw = !storm || faults[f].fast ? faults[f].weight : 0;
            if (w < fw)
                break;
            w -= fw;
        }
        snprintf(js, sizeof(js), "{%s,\"count\":1}", faults[f].json);
        if (push(easy, u, js) == 0) {
            injected[f]++;
            u->rbh_pushed += faults[f].rbh;
        }
    }
    curl_easy_cleanup(easy);
}

/* ---- the stoppable upstream ---------------------------------------------------- */

static upstream_t *stoppable(void)
{
    for (int i = 0; i < N_UP; i++)
        if (ups[i].stoppable)
            return &ups[i];
    return NULL;
}

static long stop_at = -1;
static int stops, restarts, restart_failures;

static int cmp_long(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return x < y ? -1 : x > y;
}

/* Goes through what u recorded since its last reset: the provider's key
 * arrived in the dialect's header every time, no client key ever did, and
 * how often one client request ("soak request N" in its body) arrived twice.
 * Every route lists three different providers, so the gateway itself never
 * sends one request to the same upstream twice: a duplicate is libcurl
 * replaying a request whose reused connection died before the head. */
static void audit(upstream_t *u)
{
    char want[160];
    snprintf(want, sizeof(want), "%s%s", strcmp(u->auth, "authorization") == 0 ? "Bearer " : "",
             u->key);
    json_t *recs = th_mock_requests(&u->proc), *rec;
    size_t k, n = 0;
    long *seqs = malloc((json_array_size(recs) + 1) * sizeof(long));
    if (!seqs)
        abort();
    json_array_foreach(recs, k, rec)
    {
        json_t *h = json_object_get(json_object_get(rec, "headers"), u->auth);
        if (!json_is_string(h) || strcmp(json_string_value(h), want) != 0)
            u->bad_auth = 1;
        u->audited++;
        const char *body = json_string_value(json_object_get(rec, "body"));
        const char *at = body ? strstr(body, "soak request ") : NULL;
        if (at)
            seqs[n++] = strtol(at + 13, NULL, 10);
    }
    qsort(seqs, n, sizeof(long), cmp_long);
    for (size_t i = 1; i < n; i++)
        u->replays += seqs[i] == seqs[i - 1];
    free(seqs);
    char *dump = recs ? json_dumps(recs, JSON_COMPACT) : NULL;
    if (dump && (strstr(dump, GW_KEY) || strstr(dump, WRONG_KEY)))
        u->client_key = 1;
    free(dump);
    json_decref(recs);
}

/* Books what u recorded (audit, request count) and, with `reset`, clears
 * its records, counters and leftover scenarios. Done between phases, when
 * nothing is in flight, so the mock's record cap is never reached. */
static long book(upstream_t *u, bool reset)
{
    audit(u);
    long seen = th_mock_stat(&u->proc, "requests");
    if (seen > 0)
        u->seen_base += seen;
    if (reset)
        th_mock_reset(&u->proc);
    return seen;
}

static void stop_upstream(upstream_t *u)
{
    long seen = book(u, false);
    int st = th_stop(&u->proc);
    u->up = 0;
    stops++;
    printf("  - stopped %s (exit %d; %ld requests this phase): connect refusals from now on\n",
           u->name, st, seen);
}

static void restart_upstream(upstream_t *u, int port)
{
    /* the kernel may hold the port for a moment: retry briefly */
    for (int tries = 0; tries < 20; tries++) {
        if (th_start_mock_on_port(&u->proc, u->name, port) == 0) {
            u->up = 1;
            restarts++;
            printf("  - restarted %s on the same port %d\n", u->name, port);
            return;
        }
        pause_ms(100);
    }
    restart_failures++;
}

static int echo_port;

static void fault_hook(soak_t *so, long issued)
{
    (void)so;
    upstream_t *u = stoppable();
    if (issued == stop_at && u->up)
        stop_upstream(u);
}

/* ---- /v1/gateway/providers ------------------------------------------------------ */

/* One query on a fresh connection (lands on either worker). */
static int query_providers(soak_t *so, snap_t per_worker[WORKERS])
{
    char url[128];
    th_response_t r;
    const char *hdrs[] = {"Authorization: Bearer " GW_KEY, NULL};
    th_url_buf(&so->gw, "/v1/gateway/providers", url, sizeof(url));
    th_http_opts_t o = {.timeout_ms = 5000};
    if (th_http_ex(&o, "GET", url, hdrs, NULL, 0, &r) != 0 || r.status != 200) {
        th_response_free(&r);
        return -1;
    }
    so->provider_queries++;
    if (find_secret(r.headers, strlen(r.headers)) || find_secret(r.body, r.body_len))
        so->provider_leaks++;
    json_t *root = th_json(&r), *t;
    th_response_free(&r);
    json_t *wj = json_object_get(root, "worker");
    int w = json_is_integer(wj) ? (int)json_integer_value(wj) : -1;
    if (w < 0 || w >= WORKERS) {
        json_decref(root);
        return -1;
    }
    snap_t *s = &per_worker[w];
    memset(s, 0, sizeof(*s));
    s->valid = 1;
    json_t *b = json_object_get(root, "retry_budget");
    s->requests = (long)json_integer_value(json_object_get(b, "requests"));
    s->retries = (long)json_integer_value(json_object_get(b, "retries"));
    s->denied = (long)json_integer_value(json_object_get(b, "denied"));
    size_t i;
    size_t used = 0;
    json_array_foreach(json_object_get(root, "data"), i, t)
    {
        const char *st = json_string_value(json_object_get(t, "state"));
        long retry_in = (long)json_integer_value(json_object_get(t, "retry_in_ms"));
        s->targets++;
        s->outcomes += (long)json_integer_value(json_object_get(t, "requests"));
        if (retry_in > s->max_retry_in_ms)
            s->max_retry_in_ms = retry_in;
        if (retry_in > so->max_retry_in_ms)
            so->max_retry_in_ms = retry_in;
        if (st && strcmp(st, "closed") == 0) {
            s->closed++;
        } else if (used < sizeof(s->not_closed)) {
            used += (size_t)snprintf(
                s->not_closed + used, sizeof(s->not_closed) - used, "%s%s:%s", used ? " " : "",
                json_string_value(json_object_get(t, "provider")), st ? st : "?");
        }
    }
    json_decref(root);
    return w;
}

/* Queries until every worker answered (bounded). */
static bool query_all_workers(soak_t *so, snap_t per_worker[WORKERS])
{
    memset(per_worker, 0, sizeof(snap_t) * WORKERS);
    for (int q = 0; q < 200; q++) {
        query_providers(so, per_worker);
        bool all = true;
        for (int w = 0; w < WORKERS; w++)
            all = all && per_worker[w].valid;
        if (all)
            return true;
    }
    return false;
}

/* ---- set-up -------------------------------------------------------------------- */

static char *gateway_config(void)
{
    char providers[4096], routes[2048];
    size_t pu = 0, ru = 0;
    for (int i = 0; i < N_UP; i++) {
        const upstream_t *u = &ups[i];
        const char *kind = u->dialect == DIALECT_ANTHROPIC ? "anthropic"
                           : u->dialect == DIALECT_GEMINI  ? "gemini"
                                                           : "openai";
        const char *base = u->dialect == DIALECT_GEMINI ? "/v1beta" : "/v1";
        char key[128];
        if (u->key_env)
            snprintf(key, sizeof(key), "${%s}", u->key_env);
        else
            snprintf(key, sizeof(key), "%s", u->key);
        pu += (size_t)snprintf(providers + pu, sizeof(providers) - pu,
                               "%s\"%s\":{\"kind\":\"%s\",\"base_url\":\"http://127.0.0.1:%d%s\","
                               "\"api_key\":\"%s\",\"vendor\":\"v-%s\"}",
                               i ? "," : "", u->name, kind, u->proc.port, base, key, u->name);
        const upstream_t *b = &ups[route_next[i][0]], *c = &ups[route_next[i][1]];
        ru += (size_t)snprintf(routes + ru, sizeof(routes) - ru,
                               "%s\"%s\":{\"targets\":[{\"provider\":\"%s\",\"model\":\"%s\"},"
                               "{\"provider\":\"%s\",\"model\":\"%s\"},"
                               "{\"provider\":\"%s\",\"model\":\"%s\"}]}",
                               i ? "," : "", u->route, u->name, u->model, b->name, b->model,
                               c->name, c->model);
    }
    return th_strf(
        "{\"listen\":\"127.0.0.1:0\",\"max_attempts\":%d,"
        "\"providers\":{%s},\"routes\":{%s},"
        "\"keys\":{\"soak\":{\"sha256\":\"" GW_KEY_SHA256 "\"}},"
        "\"timeouts\":{\"connect_ms\":1000,\"first_byte_ms\":%d,\"request_ms\":%d,"
        "\"stream_idle_ms\":%d},"
        "\"health\":{\"failure_threshold\":%d,\"cooldown_ms\":%d,\"max_cooldown_ms\":%d},"
        "\"retry_budget\":{},"
        "\"limits\":{\"stream_buffer_bytes\":65536}}",
        MAX_ATTEMPTS, providers, routes, FIRST_BYTE_MS, REQUEST_MS, STREAM_IDLE_MS,
        FAILURE_THRESHOLD, COOLDOWN_MS, MAX_COOLDOWN_MS);
}

static void stop_all_mocks(void)
{
    for (int i = 0; i < N_UP; i++)
        if (ups[i].up) {
            th_stop(&ups[i].proc);
            ups[i].up = 0;
        }
}

/* Mocks, then the gateway with two workers whatever the machine. */
static int start_all(soak_t *so)
{
    for (int i = 0; i < N_UP; i++) {
        upstream_t *u = &ups[i];
        int rc;
        if (u->stoppable) {
            rc = -1;
            for (int tries = 0; tries < 10 && rc != 0; tries++)
                rc = (echo_port = fixed_port()) > 0
                         ? th_start_mock_on_port(&u->proc, u->name, echo_port)
                         : -1;
        } else {
            rc = th_start_mock(&u->proc, u->name);
        }
        if (rc != 0) {
            fprintf(stderr, "soak: cannot start mock %s\n", u->name);
            stop_all_mocks();
            return -1;
        }
        u->up = 1;
    }
    char *cfg = gateway_config();
    const char *args[] = {"--workers", "2", "--log-level", "debug", NULL};
    char *env_owned[N_UP + 2];
    const char *env[N_UP + 2];
    size_t ne = 0;
    for (int i = 0; i < N_UP; i++)
        if (ups[i].key_env)
            env_owned[ne++] = th_strf("%s=%s", ups[i].key_env, ups[i].key);
    if (SOAK_ASAN) {
        /* ASan keeps up to 256 MiB of freed memory in quarantine, which
         * reads as growth: a small quarantine keeps the RSS check meaningful */
        const char *prev = getenv("ASAN_OPTIONS");
        env_owned[ne++] = th_strf("ASAN_OPTIONS=%s%squarantine_size_mb=16", prev ? prev : "",
                                  prev && *prev ? ":" : "");
    }
    for (size_t i = 0; i < ne; i++)
        env[i] = env_owned[i];
    env[ne] = NULL;
    int rc = th_start_meridian_ex(&so->gw, cfg, args, env);
    free(cfg);
    for (size_t i = 0; i < ne; i++)
        free(env_owned[i]);
    if (rc != 0) {
        fprintf(stderr, "soak: cannot start meridian\n");
        stop_all_mocks();
        return -1;
    }
    th_url_buf(&so->gw, "/v1/chat/completions", so->url, sizeof(so->url));
    so->multi = curl_multi_init();
    curl_multi_setopt(so->multi, CURLMOPT_MAXCONNECTS, (long)so->concurrency * 2);
    return 0;
}

/* ---- the run ----------------------------------------------------------------------- */

/* Everything the summary and the checks need. */
typedef struct results {
    uint64_t seed;
    long phases;
    stats_t faults, settle, verify;
    double t_begin, fault_ms, settle_ms;
    snap_t budget[WORKERS]; /* right after the fault traffic */
    bool both_workers;
    long seen[N_UP], upstream_total, rbh, replays;
    long auth_checked;
    bool keys_upstream_ok, gw_key_upstream;
    snap_t last[WORKERS]; /* at the end of the settle period */
    bool closed, idle;
    long rss_start, rss_end, fds_start, fds_end, upstream_conns, client_conns;
    pid_t gw_pid;
    int exit_status;
    bool sanitizer_report;
    size_t log_len;
    long log_lines, warn_lines;
    const char *log_secret;
} results_t;

static void fault_traffic(soak_t *so, results_t *res)
{
    upstream_t *echo = stoppable();
    so->t_start = now_ms();
    sample(so, true);
    printf("fault traffic:\n");
    for (long p = 0; p < res->phases; p++) {
        long seq0 = p * PHASE_REQUESTS;
        bool storm = p % 4 == 0;
        if (p % 4 == 3 && !echo->up)
            restart_upstream(echo, echo_port);
        /* about a phase's worth of upstream requests per mock (a mock that
         * is first in its route gets more; the tail then runs clean) */
        for (int i = 0; i < N_UP; i++) {
            if (!ups[i].up)
                continue;
            book(&ups[i], true);
            /* this phase's mix only: faults the last phase queued but its
             * requests never took (breakers open, they failed fast) would
             * pile up and turn every later probe into a failure */
            clear_queue(&ups[i]);
            inject(&ups[i], storm ? PHASE_REQUESTS / 2 : PHASE_REQUESTS / 4,
                   storm ? STORM_PERCENT : FAULT_PERCENT, storm);
        }
        stop_at = p % 4 == 1 ? seq0 + PHASE_REQUESTS / 4 : -1;
        run(so, &res->faults, PHASE_REQUESTS, TRAFFIC_FAULT, seq0, fault_hook);
        printf("  phase %ld/%ld%s done at %.1f s: %ld ok, %ld errors so far\n", p + 1, res->phases,
               storm ? " (retry storm)" : "", (now_ms() - so->t_start) / 1000, res->faults.ok,
               res->faults.completed - res->faults.ok);
    }
    if (!echo->up)
        restart_upstream(echo, echo_port);
    res->fault_ms = now_ms() - so->t_start;
    sample(so, true);
}

/* What the budget and the upstreams saw, before any other traffic. */
static void collect(soak_t *so, results_t *res)
{
    res->both_workers = query_all_workers(so, res->budget);
    res->keys_upstream_ok = true;
    for (int i = 0; i < N_UP; i++) {
        upstream_t *u = &ups[i];
        book(u, true);
        res->seen[i] = u->seen_base;
        res->upstream_total += res->seen[i];
        res->rbh += u->rbh_pushed;
        res->replays += u->replays;
        res->auth_checked += u->audited;
        res->keys_upstream_ok = res->keys_upstream_ok && !u->bad_auth;
        res->gw_key_upstream = res->gw_key_upstream || u->client_key;
    }
}

/* Faults stop: clean mocks, plain traffic on fresh connections (so both
 * workers get it) until every breaker of both workers is closed; then one
 * more batch that must succeed on the first attempt everywhere. */
static void settle(soak_t *so, results_t *res)
{
    for (int i = 0; i < N_UP; i++)
        th_mock_reset(&ups[i].proc);
    printf("settle: plain traffic until every breaker is closed on both workers\n");
    double t0 = now_ms();
    long seq = 0, batch = 2L * so->concurrency;
    while (!res->closed && now_ms() - t0 < SETTLE_DEADLINE_MS) {
        run(so, &res->settle, batch, TRAFFIC_PLAIN, seq, NULL);
        seq += batch;
        for (int q = 0; q < 8; q++)
            query_providers(so, res->last);
        res->closed = true;
        for (int w = 0; w < WORKERS; w++)
            res->closed = res->closed && res->last[w].valid && res->last[w].targets > 0 &&
                          res->last[w].closed == res->last[w].targets;
    }
    res->settle_ms = now_ms() - t0;
    if (res->closed)
        run(so, &res->verify, batch, TRAFFIC_PLAIN, seq, NULL);
    sample(so, true);
    res->idle = true;
    for (int i = 0; i < N_UP; i++)
        res->idle = th_mock_wait_stat(&ups[i].proc, "in_flight", 0, 5000) == 0 && res->idle;
    res->rss_end = rss_kib(so->gw.pid);
}

/* The clients leave (the gateway must give their sockets back; what stays
 * is its upstream pool), then SIGTERM, the exit status and the whole log. */
static void shut_down(soak_t *so, results_t *res)
{
    for (int i = 0; i < so->concurrency; i++) {
        curl_easy_cleanup(so->jobs[i].h);
        curl_slist_free_all(so->jobs[i].hdrs);
        free(so->jobs[i].head.p);
        free(so->jobs[i].body.p);
    }
    curl_multi_cleanup(so->multi);
    int mock_ports[N_UP];
    for (int i = 0; i < N_UP; i++)
        mock_ports[i] = ups[i].proc.port;
    res->client_conns = tcp_count(so->gw.port, NULL, 0);
    for (double t = now_ms(); res->client_conns != 0 && now_ms() - t < 5000;) {
        pause_ms(50);
        res->client_conns = tcp_count(so->gw.port, NULL, 0);
    }
    res->fds_end = fd_count(so->gw.pid);
    res->upstream_conns = tcp_count(0, mock_ports, N_UP);

    res->gw_pid = so->gw.pid;
    th_signal(&so->gw, SIGTERM);
    res->exit_status = th_wait_exit(&so->gw, 30000);
    char *log = th_read_log(&so->gw);
    res->log_len = log ? strlen(log) : 0;
    res->log_secret = find_secret(log, res->log_len);
    res->sanitizer_report = th_sanitizer_report(log) != NULL;
    for (const char *p = log; p && (p = strstr(p, " warn ")); p++)
        res->warn_lines++;
    for (const char *p = log; p && (p = strchr(p, '\n')); p++)
        res->log_lines++;
    if ((res->exit_status != 0 || res->sanitizer_report) && log)
        printf("gateway log, last 6000 bytes (exit %d):\n%s\n", res->exit_status,
               res->log_len > 6000 ? log + res->log_len - 6000 : log);
    free(log);
    if (res->exit_status < 0)
        res->exit_status = th_stop(&so->gw); /* still running: SIGKILL */
    else
        th_stop(&so->gw); /* removes the log and the config */
    stop_all_mocks();
}

/* ---- the report --------------------------------------------------------------------- */

static void print_samples(const soak_t *so, pid_t pid)
{
    printf("\nRSS of meridian pid %d (MiB; open fds in brackets):\n", (int)pid);
    size_t stride = so->n_samples > 48 ? (so->n_samples + 47) / 48 : 1;
    for (size_t i = 0, k = 0; i < so->n_samples; i += stride, k++)
        printf("  t=%5.1fs %6.1f [%3ld]%s", so->samples[i].t_ms / 1000,
               (double)so->samples[i].rss_kib / 1024, so->samples[i].fds, k % 4 == 3 ? "\n" : "");
    printf("\nbreaker states during the fault traffic (one worker a second):\n");
    for (size_t i = 0; i < so->n_states; i++)
        printf("  t=%5.1fs w%d %s\n", so->states[i].t_ms / 1000, so->states[i].worker,
               so->states[i].not_closed);
}

static int report(soak_t *so, results_t *res, bool long_run)
{
    stats_t *fs = &res->faults;
    long max_rss = 0, half_first = -1, half_max = 0;
    for (size_t i = 0; i < so->n_samples; i++) {
        const sample_t *x = &so->samples[i];
        if (x->rss_kib > max_rss)
            max_rss = x->rss_kib;
        if (x->t_ms < res->fault_ms / 2 || x->t_ms > res->fault_ms)
            continue;
        if (half_first < 0)
            half_first = x->rss_kib;
        if (x->rss_kib > half_max)
            half_max = x->rss_kib;
    }
    long growth = half_first >= 0 ? half_max - half_first : 0;
    /* The retry budget and the breakers are the process's, shared by the
     * workers: every worker shows the same figures (taken with no traffic). */
    long w_requests = res->budget[0].requests, w_retries = res->budget[0].retries;
    long denied = res->budget[0].denied, outcomes = res->budget[0].outcomes;
    bool shared_view = true;
    for (int w = 1; w < WORKERS; w++)
        shared_view = shared_view && res->budget[w].requests == w_requests &&
                      res->budget[w].retries == w_retries && res->budget[w].denied == denied &&
                      res->budget[w].outcomes == outcomes;
    /* The budget: at any retry, retries <= ratio * requests + floor * window
     * over the window_s seconds before it, for the process. Cut the run into
     * window_s blocks: the last retry of a block saw a window inside that
     * block and the one before, so in all
     *   retries <= 2 * ratio * requests + floor * window_s * blocks.
     * Steady traffic stays near ratio * requests + the floor. */
    long blocks = (long)(res->fault_ms / 1000 / BUDGET_WINDOW_S) + 2;
    long floor_total = (long)BUDGET_FLOOR_PER_S * BUDGET_WINDOW_S * blocks;
    long bound = (long)(2 * BUDGET_RATIO * (double)fs->proxied) + floor_total;
    long steady = (long)(BUDGET_RATIO * (double)fs->proxied) + floor_total;
    stats_t all = *fs;
    const stats_t *more[] = {&res->settle, &res->verify};
    for (size_t i = 0; i < 2; i++) {
        all.sent += more[i]->sent;
        all.completed += more[i]->completed;
        all.client_timeouts += more[i]->client_timeouts;
        all.transport_errors += more[i]->transport_errors;
        all.malformed += more[i]->malformed;
        all.unexpected_status += more[i]->unexpected_status;
        all.missing_request_id += more[i]->missing_request_id;
        all.over_max_attempts += more[i]->over_max_attempts;
        all.secret_leaks += more[i]->secret_leaks;
    }

    print_samples(so, res->gw_pid);
    printf("\n==================== fault soak summary ====================\n");
    printf("  %-36s %s, %ld requests, seed 0x%llx, concurrency %d%s\n", "profile",
           long_run ? "long" : "short", fs->sent, (unsigned long long)res->seed, so->concurrency,
           SOAK_ASAN ? ", ASan build" : "");
    printf("  %-36s %ld (%ld stream, %ld non-stream)\n", "requests completed 200", fs->ok,
           fs->ok_stream, fs->ok_nonstream);
    printf("  %-36s %ld\n", "  streams ended by an error event", fs->stream_error_events);
    printf("  %-36s %ld\n", "errors (status code: count)", fs->completed - fs->ok);
    for (size_t i = 0; i < fs->n_errors; i++)
        printf("    %-34s %ld\n", fs->errors[i].key, fs->errors[i].n);
    printf("  %-36s %ld / %ld\n", "client timeouts / transport errors", fs->client_timeouts,
           fs->transport_errors);
    printf("  %-36s p50 %.0f, p99 %.0f, max %.0f (client timeout %d)\n", "latency (ms)",
           percentile(fs, 0.5), percentile(fs, 0.99), percentile(fs, 1.0), CLIENT_TIMEOUT_MS);
    printf("  %-36s %ld\n", "proxied requests (budget-counted)", fs->proxied);
    printf("  %-36s %ld attempts, %ld retries\n", "attempts seen by clients", fs->attempts,
           fs->retries);
    printf("  %-36s requests %ld, retries %ld, denied %ld\n", "the process's retry_budget",
           w_requests, w_retries, denied);
    printf("  %-36s %ld outcomes; longest cooldown left seen %ld ms\n", "the process's breakers",
           outcomes, so->max_retry_in_ms);
    printf("  %-36s %ld (provable bound %ld, steady-state %ld)\n", "retries vs budget", fs->retries,
           bound, steady);
    for (int i = 0; i < N_UP; i++)
        printf("    upstream requests, %-15s %ld (%ld replayed by libcurl)\n", ups[i].name,
               res->seen[i], ups[i].replays);
    printf("  %-36s %ld (attempts %ld, libcurl replays %ld of %ld resets before the head)\n",
           "upstream requests, all mocks", res->upstream_total, fs->attempts, res->replays,
           res->rbh);
    printf("  %-36s %d stop(s), %d restart(s) on port %d\n", "echo outages", stops, restarts,
           echo_port);
    printf("  %-36s %ld pushes:", "faults queued", pushes);
    for (size_t f = 0; f < N_FAULTS; f++)
        printf("%s{%s} x%ld", f % 3 ? "  " : "\n      ", faults[f].json, injected[f]);
    printf("\n");
    printf("  %-36s %ld requests, %ld ok, closed after %.1f s\n", "settle (plain traffic)",
           res->settle.sent, res->settle.ok, res->settle_ms / 1000);
    printf("  %-36s %ld requests, %ld ok on the first attempt\n", "after recovery",
           res->verify.sent, res->verify.first_try_ok);
    printf("  %-36s start %.1f, max %.1f, end %.1f; second-half growth %+.1f\n", "RSS (MiB)",
           (double)res->rss_start / 1024, (double)max_rss / 1024, (double)res->rss_end / 1024,
           (double)growth / 1024);
    printf("  %-36s start %ld, end %ld (%ld pooled upstream, %ld client)\n", "gateway fds",
           res->fds_start, res->fds_end, res->upstream_conns, res->client_conns);
    printf("  %-36s %ld lines (%zu bytes), %ld warnings\n", "gateway log (debug)", res->log_lines,
           res->log_len, res->warn_lines);
    printf("  %-36s faults %.1f s, total %.1f s\n", "wall time", res->fault_ms / 1000,
           (now_ms() - res->t_begin) / 1000);
    printf("============================================================\n");

    printf("checks:\n");
    CHECK(all.completed == all.sent, "every request finished: %ld of %ld", all.completed, all.sent);
    CHECK(all.client_timeouts == 0, "zero client timeouts (hung connections) at %d ms: %ld",
          CLIENT_TIMEOUT_MS, all.client_timeouts);
    CHECK(all.transport_errors == 0, "zero transport errors (resets, empty replies): %ld",
          all.transport_errors);
    CHECK(all.malformed == 0,
          "every answer well formed (JSON with choices; SSE ending in [DONE] or an error "
          "event; an OpenAI error): %ld malformed",
          all.malformed);
    CHECK(all.unexpected_status == 0,
          "statuses as expected (proxied: 200, 429, 502, 503, 504; bad JSON 400, unknown model "
          "404, wrong key 401): %ld unexpected",
          all.unexpected_status);
    CHECK(all.missing_request_id == 0, "x-request-id on every answer: %ld missing",
          all.missing_request_id);
    CHECK(all.over_max_attempts == 0, "x-meridian-attempts within 1..%d: %ld outside", MAX_ATTEMPTS,
          all.over_max_attempts);
    CHECK(fs->ok * 3 >= fs->proxied, "at least a third of proxied requests succeed: %ld of %ld",
          fs->ok, fs->proxied);
    CHECK(res->both_workers, "/v1/gateway/providers answered from both workers");
    CHECK(shared_view, "every worker shows the process's retry budget and breakers");
    CHECK(w_requests == fs->proxied,
          "the process counted each proxied request once: %ld counted, %ld sent", w_requests,
          fs->proxied);
    CHECK(w_retries == fs->retries,
          "the process's retry counters match the attempts clients saw: %ld vs %ld", w_retries,
          fs->retries);
    /* A non-streamed answer that times out (a delayed head, a stall) is no
     * breaker outcome (answer_timeout, docs/security.md finding 13). */
    long slow = injected_like("headers_delay_ms") + injected_like("\"stall\"");
    CHECK(outcomes <= fs->attempts && outcomes >= fs->attempts - slow,
          "the breakers recorded one outcome per attempt but answer timeouts: %ld outcomes, %ld "
          "attempts, at most %ld delayed or stalled",
          outcomes, fs->attempts, slow);
    CHECK(so->max_retry_in_ms <= MAX_COOLDOWN_MS,
          "no cooldown beyond max_cooldown_ms: longest left %ld ms <= %d", so->max_retry_in_ms,
          MAX_COOLDOWN_MS);
    CHECK(fs->retries <= bound,
          "retries within the budget: %ld <= 2 x %.1f x %ld + %d/s x %d s x %d workers x %ld "
          "blocks = %ld",
          fs->retries, BUDGET_RATIO, fs->proxied, BUDGET_FLOOR_PER_S, BUDGET_WINDOW_S, WORKERS,
          blocks, bound);
    CHECK(denied > 0, "the budget refused retries in the storm: %ld denied", denied);
    CHECK(res->upstream_total <= fs->attempts + res->replays && res->replays <= res->rbh,
          "no hidden upstream retries: %ld upstream requests <= %ld attempts + %ld libcurl "
          "replays (<= %ld resets before the head)",
          res->upstream_total, fs->attempts, res->replays, res->rbh);
    CHECK(stops >= 1 && restarts == stops && restart_failures == 0,
          "echo stopped %d time(s), restarted on port %d each time", stops, echo_port);
    CHECK(res->closed,
          "every breaker closed on both workers within %.1f s of plain traffic%s%s%s%s",
          res->settle_ms / 1000,
          res->closed ? "" : " (w0: ", res->closed ? "" : res->last[0].not_closed,
          res->closed ? "" : "; w1: ", res->closed ? "" : res->last[1].not_closed);
    CHECK(res->verify.sent > 0 && res->verify.ok == res->verify.sent &&
              res->verify.first_try_ok * 10 >= res->verify.sent * 9,
          "after recovery every request succeeds, at least 90 %% on the first attempt: %ld ok, "
          "%ld first try, of %ld",
          res->verify.ok, res->verify.first_try_ok, res->verify.sent);
    CHECK(res->idle, "no upstream transfer left in flight at any mock");
    long rss_cap = SOAK_ASAN ? RSS_CAP_ASAN_MIB * 1024 : RSS_CAP_MIB * 1024;
    long growth_cap = SOAK_ASAN ? GROWTH_CAP_ASAN_MIB * 1024 : GROWTH_CAP_MIB * 1024;
    CHECK(max_rss > 0 && max_rss < rss_cap, "gateway RSS bounded: max %.1f MiB < %ld MiB",
          (double)max_rss / 1024, rss_cap / 1024);
    CHECK(growth <= growth_cap, "RSS not growing over the second half: %+.1f MiB <= %ld MiB",
          (double)growth / 1024, growth_cap / 1024);
    CHECK(res->client_conns == 0, "no client connection held once clients left: %ld",
          res->client_conns);
    CHECK(res->fds_end >= 0 && res->fds_end <= res->fds_start + res->upstream_conns + FD_SLACK,
          "fds back to the start plus the upstream pool: %ld <= %ld + %ld + %d", res->fds_end,
          res->fds_start, res->upstream_conns, FD_SLACK);
    CHECK(all.secret_leaks == 0, "no secret in any response header or body: %ld", all.secret_leaks);
    CHECK(so->provider_leaks == 0, "no secret in /v1/gateway/providers (%ld answers)",
          so->provider_queries);
    CHECK(res->log_len > 0 && !res->log_secret, "no secret in the gateway log (%zu bytes)%s",
          res->log_len, res->log_secret ? ": one was found" : "");
    CHECK(res->keys_upstream_ok && res->auth_checked > 0 && !res->gw_key_upstream,
          "provider keys reached their upstreams (%ld requests), client keys never did",
          res->auth_checked);
    CHECK(res->exit_status == 0 && !res->sanitizer_report, "SIGTERM: the gateway exited %d%s",
          res->exit_status, res->sanitizer_report ? " with a sanitizer report" : "");
    printf("%s: %d check%s failed\n", failures ? "FAIL" : "PASS", failures,
           failures == 1 ? "" : "s");
    return failures ? 1 : 0;
}

/* ---- main ------------------------------------------------------------------------------ */

static void usage(void)
{
    fprintf(stderr, "usage: soak [--long] [--requests N] [--seed S] [--concurrency C]\n");
}

int main(int argc, char **argv)
{
    static soak_t so;
    static results_t res;
    long total = 2000;
    bool long_run = false;

    so.concurrency = 64;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--long") == 0) {
            long_run = true;
            total = 24000;
        } else if (strcmp(argv[i], "--requests") == 0 && i + 1 < argc) {
            total = strtol(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
            rng_state = strtoull(argv[++i], NULL, 0);
        } else if (strcmp(argv[i], "--concurrency") == 0 && i + 1 < argc) {
            so.concurrency = (int)strtol(argv[++i], NULL, 10);
        } else {
            usage();
            return 2;
        }
    }
    if (total < PHASE_REQUESTS || so.concurrency < 1 || so.concurrency > MAX_CONCURRENCY ||
        rng_state == 0) {
        usage();
        return 2;
    }
    res.seed = rng_state;
    res.phases = (total + PHASE_REQUESTS - 1) / PHASE_REQUESTS;
    res.t_begin = now_ms();
    printf("meridian fault soak: %s profile, %ld requests in %ld phases, concurrency %d, seed "
           "0x%llx%s\n",
           long_run ? "long" : "short", res.phases * PHASE_REQUESTS, res.phases, so.concurrency,
           (unsigned long long)res.seed, SOAK_ASAN ? ", ASan build" : "");

    th_init();
    init_secrets();
    srand((unsigned)getpid());
    if (start_all(&so) != 0) {
        th_cleanup();
        return 1;
    }
    res.rss_start = rss_kib(so.gw.pid);
    res.fds_start = fd_count(so.gw.pid);
    fault_traffic(&so, &res);
    collect(&so, &res);
    settle(&so, &res);
    shut_down(&so, &res);
    int rc = report(&so, &res, long_run);
    free(res.faults.lat);
    free(res.settle.lat);
    free(res.verify.lat);
    th_cleanup();
    return rc;
}
