/*
 * HTTP/2 upstreams (provider "http2": true) against nginx over TLS (ALPN,
 * a self-signed certificate trusted through the provider's ca_file):
 * requests go out as HTTP/2 (nginx's access log says so), providers without
 * the flag stay on HTTP/1.1 even over TLS, a slow client pauses an HTTP/2
 * stream which still arrives whole, and the connection that carried the
 * paused stream keeps serving later requests. Skipped (77) without nginx or
 * openssl.
 */
#include "harness.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define NGINX "/usr/sbin/nginx"
#define OPENSSL "/usr/bin/openssl"
/* content events in the SSE file: ~11 MB, more than the kernel's socket
 * buffers can absorb, so a slow reader does make the gateway pause */
#define EVENTS 100000

static char dir[256];
static pid_t nginx_pid = -1;
static int h2_port, h1_port, tls1_port;
static th_proc_t gw;

static void write_file(const char *rel, const char *content, size_t len)
{
    char path[512], *slash;
    snprintf(path, sizeof(path), "%s/%s", dir, rel);
    for (slash = strchr(path + strlen(dir) + 1, '/'); slash; slash = strchr(slash + 1, '/')) {
        *slash = '\0';
        mkdir(path, 0755);
        *slash = '/';
    }
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(content, 1, len, f), len);
    fclose(f);
}

static void write_sse(void)
{
    size_t cap = (size_t)EVENTS * 160 + 256, len = 0;
    char *s = malloc(cap);
    for (int i = 0; i < EVENTS; i++)
        len +=
            (size_t)snprintf(s + len, cap - len,
                             "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":"
                             "1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":"
                             "\"tok%05d \"},\"finish_reason\":null}]}\n\n",
                             i);
    len += (size_t)snprintf(s + len, cap - len, "data: [DONE]\n\n");
    write_file("www/sse/v1/chat/completions", s, len);
    free(s);
}

static int connectable(int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int fd = socket(AF_INET, SOCK_STREAM, 0), ok;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    close(fd);
    return ok;
}

static int start_nginx(void)
{
    char conf[4096], path[512];
    h2_port = th_refused_port();
    h1_port = th_refused_port();
    tls1_port = th_refused_port();
    snprintf(conf, sizeof(conf),
             "worker_processes 1; daemon off; master_process off; pid %s/nginx.pid;\n"
             "error_log %s/error.log warn;\n"
             "events { worker_connections 256; }\n"
             "http {\n"
             "  log_format p '$request $server_protocol';\n"
             "  access_log %s/access.log p;\n"
             "  client_body_temp_path %s/cb; proxy_temp_path %s/px; fastcgi_temp_path %s/fc;\n"
             "  uwsgi_temp_path %s/uw; scgi_temp_path %s/sc;\n"
             "  server {\n"
             "    listen 127.0.0.1:%d ssl http2;\n    listen 127.0.0.1:%d;\n"
             "    listen 127.0.0.1:%d ssl;\n"
             "    ssl_certificate %s/cert.pem; ssl_certificate_key %s/key.pem;\n"
             "    root %s/www;\n"
             /* POST to a static file is a 405; serve the file instead */
             "    location /sse/ { default_type text/event-stream; error_page 405 =200 $uri; }\n"
             "    location /json/ { default_type application/json; error_page 405 =200 $uri; }\n"
             "  }\n"
             "}\n",
             dir, dir, dir, dir, dir, dir, dir, dir, h2_port, h1_port, tls1_port, dir, dir, dir);
    snprintf(path, sizeof(path), "%s/nginx.conf", dir);
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fputs(conf, f);
    fclose(f);
    nginx_pid = fork();
    if (nginx_pid == 0) {
        execl(NGINX, "nginx", "-q", "-c", path, "-p", dir, (char *)NULL);
        _exit(127);
    }
    for (int waited = 0; waited < 5000; waited += 10) {
        if (connectable(h2_port) && connectable(h1_port) && connectable(tls1_port))
            return 0;
        poll(NULL, 0, 10);
    }
    return -1;
}

/* The protocol nginx logged for the last request. */
static char *last_protocol(void)
{
    char path[512], line[512], last[512] = "";
    snprintf(path, sizeof(path), "%s/access.log", dir);
    /* nginx writes the line after the response: poll briefly */
    for (int waited = 0; waited < 2000; waited += 10) {
        FILE *f = fopen(path, "r");
        if (f) {
            while (fgets(line, sizeof(line), f))
                snprintf(last, sizeof(last), "%s", line);
            fclose(f);
        }
        if (last[0])
            break;
        poll(NULL, 0, 10);
    }
    char *sp = strrchr(last, ' ');
    if (!sp)
        return strdup("");
    sp[strcspn(sp, "\n")] = '\0';
    return strdup(sp + 1);
}

static void truncate_access_log(void)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/access.log", dir);
    FILE *f = fopen(path, "w");
    if (f)
        fclose(f);
}

static int post(const char *model, int stream, th_response_t *r)
{
    char url[256], body[128];
    int n = snprintf(body, sizeof(body), "{\"model\":\"%s\"%s}", model,
                     stream ? ",\"stream\":true" : "");
    return th_http("POST", th_url_buf(&gw, "/v1/chat/completions", url, sizeof(url)), NULL, body,
                   (size_t)n, r);
}

/* Checks an SSE body carries every content event in order, then [DONE]. */
static void assert_whole_stream(const char *body, size_t len)
{
    char **ev;
    size_t n;
    assert_int_equal(th_sse_events(body, len, &ev, &n), 0);
    assert_int_equal(n, EVENTS + 1);
    for (size_t i = 0; i < EVENTS; i++) {
        char tok[16];
        snprintf(tok, sizeof(tok), "tok%05zu", i);
        assert_non_null(strstr(ev[i], tok));
    }
    assert_string_equal(ev[EVENTS], "[DONE]");
    th_sse_free(ev, n);
}

static void test_requests_use_http2_only_when_asked(void **state)
{
    th_response_t r;
    (void)state;
    truncate_access_log();
    assert_int_equal(post("json2", 0, &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"id\":\"x\",\"object\":\"chat.completion\",\"choices\":[]}");
    th_response_free(&r);
    char *proto = last_protocol();
    assert_string_equal(proto, "HTTP/2.0");
    free(proto);

    truncate_access_log();
    assert_int_equal(post("json1", 0, &r), 0);
    assert_int_equal(r.status, 200);
    th_response_free(&r);
    proto = last_protocol();
    assert_string_equal(proto, "HTTP/1.1");
    free(proto);

    /* TLS alone does not switch: HTTP/2 is opt-in (its own port: curl would
     * otherwise happily reuse an HTTP/1.1 connection for an HTTP/2 provider) */
    truncate_access_log();
    assert_int_equal(post("tls1", 0, &r), 0);
    assert_int_equal(r.status, 200);
    th_response_free(&r);
    proto = last_protocol();
    assert_string_equal(proto, "HTTP/1.1");
    free(proto);
}

/* Reads the whole HTTP/1.1 response slowly (16 KiB a millisecond at most) so
 * the gateway's small stream buffer fills and it pauses the upstream; the
 * body is de-chunked into *out. */
static void slow_stream(char **out, size_t *out_len)
{
    static const char body[] = "{\"model\":\"sse2\",\"stream\":true}";
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)gw.port)};
    int fd = socket(AF_INET, SOCK_STREAM, 0), rcvbuf = 4096;
    char req[512];
    size_t cap = 1 << 20, len = 0;
    char *raw = malloc(cap);

    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    int n = snprintf(req, sizeof(req),
                     "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n%s",
                     sizeof(body) - 1, body);
    assert_int_equal(send(fd, req, (size_t)n, MSG_NOSIGNAL), n);
    for (int turns = 0; turns < 20000; turns++) { /* bounded: ~20 s */
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 2000) <= 0)
            break;
        if (len + 16384 + 1 > cap)
            raw = realloc(raw, cap *= 2);
        ssize_t got = recv(fd, raw + len, 16384, 0);
        if (got <= 0)
            break;
        len += (size_t)got;
        poll(NULL, 0, 1); /* the reader's pace (~16 MB/s at most), not synchronisation */
    }
    close(fd);
    raw[len] = '\0';
    char *p = strstr(raw, "\r\n\r\n");
    assert_non_null(p);
    assert_non_null(strstr(raw, "HTTP/1.1 200"));
    p += 4;
    /* de-chunk */
    char *o = malloc(len + 1);
    size_t olen = 0;
    for (;;) {
        char *end;
        unsigned long sz = strtoul(p, &end, 16);
        assert_true(end != p);
        p = strstr(end, "\r\n");
        assert_non_null(p);
        p += 2;
        if (sz == 0)
            break;
        assert_true(p + sz <= raw + len);
        memcpy(o + olen, p, sz);
        olen += sz;
        p += sz + 2;
    }
    o[olen] = '\0';
    free(raw);
    *out = o;
    *out_len = olen;
}

static void test_paused_http2_stream_arrives_whole_and_connection_recovers(void **state)
{
    th_response_t r;
    char *body;
    size_t len;
    (void)state;

    /* warm an HTTP/2 connection, then pause a stream on it */
    assert_int_equal(post("sse2", 1, &r), 0);
    assert_int_equal(r.status, 200);
    assert_whole_stream(r.body, r.body_len);
    th_response_free(&r);
    slow_stream(&body, &len);
    assert_whole_stream(body, len);
    free(body);
    assert_int_equal(th_wait_log(&gw, "upstream h2sse paused", 2000), 0);
    /* later requests to the same upstream still work */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(post("sse2", 1, &r), 0);
        assert_int_equal(r.status, 200);
        assert_whole_stream(r.body, r.body_len);
        th_response_free(&r);
        assert_int_equal(post("json2", 0, &r), 0);
        assert_int_equal(r.status, 200);
        th_response_free(&r);
    }
    truncate_access_log();
    assert_int_equal(post("sse2", 1, &r), 0);
    th_response_free(&r);
    char *proto = last_protocol();
    assert_string_equal(proto, "HTTP/2.0");
    free(proto);
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "%s/meridian-h2-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(dir))
        return -1;
    write_sse();
    static const char json[] = "{\"id\":\"x\",\"object\":\"chat.completion\",\"choices\":[]}";
    write_file("www/json/v1/chat/completions", json, sizeof(json) - 1);
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             OPENSSL " req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1"
                     " -addext subjectAltName=IP:127.0.0.1 -keyout '%s/key.pem' -out '%s/cert.pem'"
                     " >/dev/null 2>&1",
             dir, dir);
    if (system(cmd) != 0 || start_nginx() < 0)
        return -1;
    char *cfg =
        th_strf("{\"listen\":\"127.0.0.1:0\",\"allow_unauthenticated\":true,"
                " \"limits\":{\"stream_buffer_bytes\":16384},"
                " \"providers\":{"
                "  \"h2sse\":{\"kind\":\"openai\",\"base_url\":\"https://127.0.0.1:%d/sse/v1\","
                "            \"http2\":true,\"ca_file\":\"%s/cert.pem\"},"
                "  \"h2json\":{\"kind\":\"openai\",\"base_url\":\"https://127.0.0.1:%d/json/v1\","
                "             \"http2\":true,\"ca_file\":\"%s/cert.pem\"},"
                "  \"tls1\":{\"kind\":\"openai\",\"base_url\":\"https://127.0.0.1:%d/json/v1\","
                "           \"ca_file\":\"%s/cert.pem\"},"
                "  \"h1json\":{\"kind\":\"openai\",\"base_url\":\"http://127.0.0.1:%d/json/v1\"}},"
                " \"routes\":{\"sse2\":{\"targets\":[{\"provider\":\"h2sse\",\"model\":\"m\"}]},"
                "  \"json2\":{\"targets\":[{\"provider\":\"h2json\",\"model\":\"m\"}]},"
                "  \"tls1\":{\"targets\":[{\"provider\":\"tls1\",\"model\":\"m\"}]},"
                "  \"json1\":{\"targets\":[{\"provider\":\"h1json\",\"model\":\"m\"}]}}}",
                h2_port, dir, h2_port, dir, tls1_port, dir, h1_port);
    const char *args[] = {"--workers", "1", "--log-level", "debug", NULL};
    int rc = th_start_meridian_ex(&gw, cfg, args, NULL);
    free(cfg);
    return rc;
}

static int teardown(void **state)
{
    (void)state;
    int rc = th_stop(&gw);
    if (nginx_pid > 0) {
        kill(nginx_pid, SIGTERM);
        waitpid(nginx_pid, NULL, 0);
    }
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return rc == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_requests_use_http2_only_when_asked),
        cmocka_unit_test(test_paused_http2_stream_arrives_whole_and_connection_recovers),
    };
    if (access(NGINX, X_OK) != 0 || access(OPENSSL, X_OK) != 0) {
        printf("nginx or openssl not found (%s, %s): apt-get install nginx-light openssl\n", NGINX,
               OPENSSL);
        return 77;
    }
    th_init();
    int rc = cmocka_run_group_tests(tests, setup, teardown);
    th_cleanup();
    return rc;
}
