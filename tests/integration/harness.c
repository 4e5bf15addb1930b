/*
 * Integration-test harness: HTTP client, SSE splitting and mock control, plus
 * the helpers both halves use. Processes are in harness_proc.c. See harness.h
 * for the contract.
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

#define TH_HTTP_TIMEOUT_MS 30000L
#define TH_MAX_BODY ((size_t)256 * 1024 * 1024)
#define TH_MAX_HEADERS ((size_t)1024 * 1024)

/* ------------------------------------------------------------------ helpers */

void *thi_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "harness: out of memory\n");
        abort();
    }
    return p;
}

void *thi_xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p) {
        fprintf(stderr, "harness: out of memory\n");
        abort();
    }
    return p;
}

static char *xstrndup(const char *s, size_t n)
{
    char *d = thi_xmalloc(n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *th_strf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        abort();
    char *s = thi_xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

double thi_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

void th_pause_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

void th_init(void)
{
    signal(SIGPIPE, SIG_IGN);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "harness: curl_global_init failed\n");
        abort();
    }
}

int th_refused_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof(sa);
    int port = -1;
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &sl) == 0)
        port = ntohs(sa.sin_port);
    close(fd);
    return port;
}

const char *th_url_buf(const th_proc_t *p, const char *path, char *buf, size_t buflen)
{
    int n = snprintf(buf, buflen, "http://127.0.0.1:%d%s", p->port, path ? path : "");
    if (n < 0 || (size_t)n >= buflen)
        buf[0] = '\0';
    return buf;
}

char *th_url(const th_proc_t *p, const char *path)
{
    return th_strf("http://127.0.0.1:%d%s", p->port, path ? path : "");
}

/* -------------------------------------------------------------------- HTTP */

typedef struct xfer {
    th_response_t *out;
    size_t hlen, hcap, bcap;
    size_t abort_after;
    double t0;
    struct curl_slist *hdrs;
    bool done;
} xfer_t;

/* Appends to a bounded buffer kept NUL-terminated; -1 past `max`. */
static int buf_append(char **buf, size_t *len, size_t *cap, size_t max, const char *data, size_t n)
{
    if (*len + n + 1 > max)
        return -1;
    if (*len + n + 1 > *cap) {
        size_t c = *cap ? *cap : 1024;
        while (c < *len + n + 1)
            c *= 2;
        *buf = thi_xrealloc(*buf, c);
        *cap = c;
    }
    memcpy(*buf + *len, data, n);
    *len += n;
    (*buf)[*len] = '\0';
    return 0;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
    xfer_t *x = ud;
    size_t n = size * nmemb;
    if (x->out->t_first_byte_ms < 0 && n > 0)
        x->out->t_first_byte_ms = thi_mono_ms() - x->t0;
    if (buf_append(&x->out->body, &x->out->body_len, &x->bcap, TH_MAX_BODY, data, n) != 0)
        return 0;
    if (x->abort_after && x->out->body_len >= x->abort_after)
        return 0;
    return n;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *ud)
{
    xfer_t *x = ud;
    size_t n = size * nmemb;
    if (n >= 5 && strncmp(data, "HTTP/", 5) == 0) {
        x->hlen = 0; /* a new response head (after 1xx): keep only the last */
        x->out->headers[0] = '\0';
    }
    if (buf_append(&x->out->headers, &x->hlen, &x->hcap, TH_MAX_HEADERS, data, n) != 0)
        return 0;
    return n;
}

static bool has_header(const char *const *headers, const char *name)
{
    size_t n = strlen(name);
    for (const char *const *h = headers; h && *h; h++)
        if (strncasecmp(*h, name, n) == 0 && ((*h)[n] == ':' || (*h)[n] == ';'))
            return true;
    return false;
}

static void xfer_init(xfer_t *x, th_response_t *out, double t0)
{
    memset(out, 0, sizeof(*out));
    memset(x, 0, sizeof(*x));
    x->out = out;
    x->t0 = t0;
    out->t_first_byte_ms = -1;
    out->body = thi_xmalloc(1);
    out->body[0] = '\0';
    out->headers = thi_xmalloc(1);
    out->headers[0] = '\0';
    x->bcap = x->hcap = 1;
}

static void setup_easy(CURL *h, xfer_t *x, const char *method, const char *url,
                       const char *const *headers, const char *body, size_t body_len,
                       long timeout_ms)
{
    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(h, CURLOPT_PROXY, "");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms > 0 ? timeout_ms : TH_HTTP_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, x);

    for (const char *const *p = headers; p && *p; p++)
        x->hdrs = curl_slist_append(x->hdrs, *p);
    if (body && !has_header(headers, "Content-Type"))
        x->hdrs = curl_slist_append(x->hdrs, "Content-Type: application/json");
    if (!has_header(headers, "Expect"))
        x->hdrs = curl_slist_append(x->hdrs, "Expect:");
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, x->hdrs);

    if (body) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        if (strcmp(method, "POST") != 0)
            curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    } else if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    } else if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    }
}

static void xfer_finish(CURL *h, xfer_t *x, CURLcode rc)
{
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    x->out->status = status;
    x->out->curl_code = (int)rc;
    x->out->t_total_ms = thi_mono_ms() - x->t0;
    curl_slist_free_all(x->hdrs);
    x->hdrs = NULL;
    x->done = true;
}

int th_http_ex(const th_http_opts_t *opts, const char *method, const char *url,
               const char *const *headers, const char *body, size_t body_len, th_response_t *out)
{
    xfer_t x;
    xfer_init(&x, out, thi_mono_ms());
    CURL *h = opts && opts->easy ? opts->easy : curl_easy_init();
    if (!h) {
        out->curl_code = CURLE_FAILED_INIT;
        return -1;
    }
    x.abort_after = opts ? opts->abort_after_bytes : 0;
    setup_easy(h, &x, method, url, headers, body, body_len, opts ? opts->timeout_ms : 0);
    CURLcode rc = curl_easy_perform(h);
    xfer_finish(h, &x, rc);
    if (!(opts && opts->easy))
        curl_easy_cleanup(h);
    return rc == CURLE_OK ? 0 : -1;
}

int th_http(const char *method, const char *url, const char *const *headers, const char *body,
            size_t body_len, th_response_t *out)
{
    return th_http_ex(NULL, method, url, headers, body, body_len, out);
}

int th_http_parallel(const th_request_t *reqs, size_t n, th_response_t *outs)
{
    CURLM *m = curl_multi_init();
    if (!m)
        return -1;
    xfer_t *xs = thi_xmalloc(n * sizeof(*xs));
    CURL **hs = thi_xmalloc(n * sizeof(*hs));
    double t0 = thi_mono_ms();
    for (size_t i = 0; i < n; i++) {
        xfer_init(&xs[i], &outs[i], t0);
        hs[i] = curl_easy_init();
        if (!hs[i])
            abort();
        setup_easy(hs[i], &xs[i], reqs[i].method, reqs[i].url, reqs[i].headers, reqs[i].body,
                   reqs[i].body_len, 0);
        curl_easy_setopt(hs[i], CURLOPT_PRIVATE, (void *)&xs[i]);
        curl_multi_add_handle(m, hs[i]);
    }
    int running = 1, failed = 0;
    while (running) {
        if (curl_multi_perform(m, &running) != CURLM_OK)
            break;
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(m, &left))) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            char *priv = NULL;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
            xfer_finish(msg->easy_handle, (xfer_t *)priv, msg->data.result);
            if (msg->data.result != CURLE_OK)
                failed++;
        }
        if (running && curl_multi_poll(m, NULL, 0, 1000, NULL) != CURLM_OK)
            break;
    }
    for (size_t i = 0; i < n; i++) {
        if (!xs[i].done) { /* never finished (multi error) */
            xfer_finish(hs[i], &xs[i], CURLE_FAILED_INIT);
            failed++;
        }
        curl_multi_remove_handle(m, hs[i]);
        curl_easy_cleanup(hs[i]);
    }
    curl_multi_cleanup(m);
    free(hs);
    free(xs);
    return failed;
}

void th_response_free(th_response_t *r)
{
    if (!r)
        return;
    free(r->headers);
    free(r->body);
    memset(r, 0, sizeof(*r));
}

const char *th_header(const th_response_t *r, const char *name, char *buf, size_t buflen)
{
    if (!r->headers || !buflen)
        return NULL;
    size_t nlen = strlen(name);
    const char *found = NULL;
    size_t found_len = 0;
    for (const char *line = r->headers; *line;) {
        size_t len = strcspn(line, "\n");
        if (len > nlen && strncasecmp(line, name, nlen) == 0 && line[nlen] == ':') {
            const char *v = line + nlen + 1, *end = line + len;
            while (v < end && (*v == ' ' || *v == '\t'))
                v++;
            while (end > v && (end[-1] == '\r' || end[-1] == ' ' || end[-1] == '\t'))
                end--;
            found = v;
            found_len = (size_t)(end - v);
        }
        line += len;
        if (*line == '\n')
            line++;
    }
    if (!found)
        return NULL;
    if (found_len >= buflen)
        found_len = buflen - 1;
    memcpy(buf, found, found_len);
    buf[found_len] = '\0';
    return buf;
}

json_t *th_log_record(const char *path, const char *id)
{
    for (int waited = 0; waited <= 5000; waited += 10) {
        char *s = th_read_file(path, NULL);
        for (char *p = s; p && *p;) {
            char *nl = strchr(p, '\n');
            json_t *j = json_loadb(p, nl ? (size_t)(nl - p) : strlen(p), 0, NULL);
            const char *jid = json_string_value(json_object_get(j, "id"));
            if (jid && !strcmp(jid, id)) {
                free(s);
                return j;
            }
            json_decref(j);
            p = nl ? nl + 1 : NULL;
        }
        free(s);
        th_pause_ms(10);
    }
    return NULL;
}

json_t *th_json(const th_response_t *r)
{
    if (!r->body)
        return NULL;
    return json_loadb(r->body, r->body_len, JSON_DECODE_ANY, NULL);
}

/* ---------------------------------------------------------------------- SSE */

int th_sse_events(const char *body, size_t len, char ***events, size_t *n)
{
    if (!events || !n || (!body && len))
        return -1;
    *events = NULL;
    *n = 0;
    size_t cap = 0;
    char *cur = NULL;
    size_t cur_len = 0, cur_cap = 0;
    bool has_data = false;
    size_t i = 0;
    for (;;) {
        bool at_end = i >= len;
        size_t start = i;
        while (i < len && body[i] != '\n')
            i++;
        size_t line_len = i - start;
        if (line_len > 0 && body[start + line_len - 1] == '\r')
            line_len--;
        if (i < len)
            i++; /* skip '\n' */
        if (at_end || line_len == 0) {
            if (has_data) {
                if (*n == cap) {
                    cap = cap ? cap * 2 : 16;
                    *events = thi_xrealloc(*events, cap * sizeof(char *));
                }
                (*events)[(*n)++] = cur ? cur : xstrndup("", 0);
                cur = NULL;
                cur_len = cur_cap = 0;
                has_data = false;
            }
            if (at_end)
                break;
            continue;
        }
        const char *line = body + start;
        if (line_len >= 5 && memcmp(line, "data:", 5) == 0) {
            const char *v = line + 5;
            size_t vlen = line_len - 5;
            if (vlen > 0 && *v == ' ') {
                v++;
                vlen--;
            }
            if (has_data)
                buf_append(&cur, &cur_len, &cur_cap, SIZE_MAX, "\n", 1);
            buf_append(&cur, &cur_len, &cur_cap, SIZE_MAX, v, vlen);
            if (!cur)
                cur = xstrndup("", 0);
            has_data = true;
        }
    }
    free(cur);
    return 0;
}

void th_sse_free(char **events, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(events[i]);
    free(events);
}

/* ------------------------------------------------------------ mock control */

static int mock_post(const th_proc_t *mock, const char *path, const char *json)
{
    char url[128];
    th_response_t r;
    th_url_buf(mock, path, url, sizeof(url));
    int rc = th_http("POST", url, NULL, json, strlen(json), &r);
    if (rc != 0 || r.status != 200) {
        fprintf(stderr, "harness: POST %s failed (curl %d, status %ld): %s\n", url, r.curl_code,
                r.status, r.body);
        rc = -1;
    }
    th_response_free(&r);
    return rc;
}

static json_t *mock_get(const th_proc_t *mock, const char *path)
{
    char url[128];
    th_response_t r;
    th_url_buf(mock, path, url, sizeof(url));
    json_t *j = NULL;
    if (th_http("GET", url, NULL, NULL, 0, &r) == 0 && r.status == 200)
        j = th_json(&r);
    else
        fprintf(stderr, "harness: GET %s failed (curl %d, status %ld)\n", url, r.curl_code,
                r.status);
    th_response_free(&r);
    return j;
}

int th_mock_scenario(const th_proc_t *mock, const char *json)
{
    return mock_post(mock, "/_mock/scenario", json);
}

int th_mock_reset(const th_proc_t *mock)
{
    return mock_post(mock, "/_mock/reset", "{}");
}

json_t *th_mock_requests(const th_proc_t *mock)
{
    return mock_get(mock, "/_mock/requests");
}

json_t *th_mock_stats(const th_proc_t *mock)
{
    return mock_get(mock, "/_mock/stats");
}

long th_mock_stat(const th_proc_t *mock, const char *key)
{
    json_t *s = th_mock_stats(mock);
    json_t *v = json_object_get(s, key);
    long r = json_is_integer(v) ? (long)json_integer_value(v) : -1;
    json_decref(s);
    return r;
}

int th_mock_wait_stat(const th_proc_t *mock, const char *key, long value, int timeout_ms)
{
    double deadline = thi_mono_ms() + timeout_ms;
    for (;;) {
        if (th_mock_stat(mock, key) == value)
            return 0;
        if (thi_mono_ms() >= deadline)
            return -1;
        th_pause_ms(TH_POLL_MS);
    }
}

static size_t discard_body(char *p, size_t size, size_t n, void *ud)
{
    (void)p;
    (void)ud;
    return size * n;
}

void th_post_during(const char *url, const char *body, void (*hook)(void *ud), void *ud,
                    th_during_t *out)
{
    CURLM *multi = curl_multi_init();
    CURL *e = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    int running = 1;
    CURLMsg *m;
    int left;
    curl_off_t got = 0;

    memset(out, 0, sizeof(*out));
    out->curl_code = CURLE_GOT_NOTHING;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard_body);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(e, CURLOPT_PROXY, "");
    curl_multi_add_handle(multi, e);
    while (running) {
        curl_multi_perform(multi, &running);
        curl_easy_getinfo(e, CURLINFO_SIZE_DOWNLOAD_T, &got);
        if (!out->hook_ran && got > 0) {
            out->hook_ran = 1;
            hook(ud);
        }
        curl_multi_poll(multi, NULL, 0, 100, NULL);
    }
    while ((m = curl_multi_info_read(multi, &left)))
        if (m->msg == CURLMSG_DONE)
            out->curl_code = (int)m->data.result;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &out->status);
    curl_easy_getinfo(e, CURLINFO_SIZE_DOWNLOAD_T, &got);
    out->bytes = (long long)got;
    curl_multi_remove_handle(multi, e);
    curl_easy_cleanup(e);
    curl_multi_cleanup(multi);
    curl_slist_free_all(h);
}
