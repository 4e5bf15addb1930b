/*
 * Connection-level limits: a slowloris trickling its request head is cut
 * off after client_idle_s, and connections beyond limits.max_connections are
 * answered 503 at once instead of stalling. One client address cannot hold
 * every slot (limits.max_connections_per_ip), and a kept-alive connection
 * is closed after timeouts.keepalive_idle_s (issue 11, finding 13).
 */
#include "harness.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static th_proc_t mock, gw, gw_caps;

/* A connection to p from the loopback address 127.0.0.`from` (all of
 * 127/8 is this host: distinct client addresses without leaving it). */
static int connect_from(const th_proc_t *p, int from)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)p->port)};
    struct sockaddr_in src = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    src.sin_addr.s_addr = htonl((in_addr_t)(0x7f000000 | (unsigned)from));
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&src, sizeof(src)), 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return fd;
}

static int connect_gw(void)
{
    return connect_from(&gw, 1);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Sends one byte of a never-ending request head every 200 ms; returns how
 * long the gateway let that go on before closing (bounded at 10 s). */
static double trickle_until_closed(void)
{
    static const char head[] = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Slow: ";
    int fd = connect_gw();
    double start = now_ms();
    assert_int_equal(send(fd, head, sizeof(head) - 1, MSG_NOSIGNAL), (ssize_t)sizeof(head) - 1);
    while (now_ms() - start < 10000) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 200) > 0) {
            char buf[512];
            if (recv(fd, buf, sizeof(buf), 0) <= 0)
                break;
        }
        if (send(fd, "a", 1, MSG_NOSIGNAL) < 0)
            break;
    }
    double took = now_ms() - start;
    close(fd);
    return took;
}

static void test_slowloris_cut(void **state)
{
    (void)state;
    double took = trickle_until_closed();
    print_message("slow client cut after %.0f ms (client_idle_s = 1)\n", took);
    /* MHD alone would keep it: each byte resets its idle timer */
    assert_true(took < 5000);
    /* still serving */
    char url[256];
    th_response_t r;
    th_http("GET", th_url_buf(&gw, "/healthz", url, sizeof(url)), NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    th_response_free(&r);
}

static void test_connection_limit_is_a_503(void **state)
{
    int fds[4];
    char url[256];
    th_response_t r;
    (void)state;
    /* 4 idle connections fill limits.max_connections = 4 (one worker) */
    for (int i = 0; i < 4; i++)
        fds[i] = connect_gw();
    th_http("POST", th_url_buf(&gw, "/v1/chat/completions", url, sizeof(url)), NULL,
            "{\"model\":\"chat\"}", 16, &r);
    assert_int_equal(r.status, 503);
    json_t *root = th_json(&r);
    assert_string_equal(json_string_value(json_object_get(json_object_get(root, "error"), "code")),
                        "too_many_connections");
    json_decref(root);
    assert_true(r.t_total_ms < 1000);
    th_response_free(&r);
    for (int i = 0; i < 4; i++)
        close(fds[i]);
    /* once they are gone, requests are served again */
    for (int tries = 0; tries < 50; tries++) {
        th_http("POST", url, NULL, "{\"model\":\"chat\"}", 16, &r);
        long status = r.status;
        th_response_free(&r);
        if (status == 200)
            return;
        poll(NULL, 0, 20); /* bounded: 50 tries while the server notices the closes */
    }
    fail_msg("still refusing after the idle connections closed");
}

/* Many small headers inside limits.max_header_bytes are served, and past it
 * the answer is our JSON 431, not MHD's HTML (its pool must fit the parsed
 * headers, ~60 bytes each on top of their text). */
static void test_many_small_headers(void **state)
{
    enum { N = 500 };
    char url[256];
    th_response_t r;
    char **h = calloc(N + 1, sizeof(*h));
    (void)state;
    for (int i = 0; i < N; i++)
        h[i] = th_strf("X-H%d: vvvvvvvvvvvvvvvvvvvv", i); /* ~30 bytes: 15 KB in all */
    th_http("POST", th_url_buf(&gw, "/v1/chat/completions", url, sizeof(url)),
            (const char *const *)h, "{\"model\":\"chat\"}", 16, &r);
    assert_int_equal(r.status, 200);
    th_response_free(&r);
    for (int i = 0; i < N; i++)
        free(h[i]);
    /* just past the limit: 100 headers of ~180 bytes, 18 KB */
    for (int i = 0; i < N; i++)
        h[i] = i < 100 ? th_strf("X-H%d: %0170d", i, 0) : NULL;
    th_http("POST", url, (const char *const *)h, "{\"model\":\"chat\"}", 16, &r);
    assert_int_equal(r.status, 431);
    json_t *root = th_json(&r);
    assert_non_null(root);
    assert_string_equal(json_string_value(json_object_get(json_object_get(root, "error"), "code")),
                        "headers_too_large");
    json_decref(root);
    th_response_free(&r);
    for (int i = 0; i < 100; i++)
        free(h[i]);
    free(h);
}

/* GET /healthz on fd (kept alive); the status, 0 when the connection
 * closed without an answer. Reads at most 5 s. */
static int healthz_on(int fd)
{
    static const char req[] = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    char buf[1024];
    size_t got = 0;
    double start = now_ms();

    if (send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL) != (ssize_t)sizeof(req) - 1)
        return 0;
    while (now_ms() - start < 5000 && got < sizeof(buf) - 1) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 100) <= 0)
            continue;
        ssize_t n = recv(fd, buf + got, sizeof(buf) - 1 - got, 0);
        if (n <= 0)
            break;
        got += (size_t)n;
        buf[got] = '\0';
        if (strstr(buf, "\r\n\r\n") && strstr(buf, "{\"status\":\"ok\"}"))
            return atoi(buf + 9); /* "HTTP/1.1 200" */
    }
    return 0;
}

/* Until the peer closes fd (bound_ms at most): the milliseconds it took, -1. */
static double ms_until_closed(int fd, double bound_ms)
{
    double start = now_ms();
    while (now_ms() - start < bound_ms) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        char c;
        if (poll(&p, 1, 100) > 0 && recv(fd, &c, 1, 0) <= 0)
            return now_ms() - start;
    }
    return -1;
}

/* Idle connections from one address fill its share of the slots, not all
 * of them: the next one from that address is closed at once, another
 * address is still served. */
static void test_per_ip_cap(void **state)
{
    int held[3];
    (void)state;
    for (int i = 0; i < 3; i++) {
        held[i] = connect_from(&gw_caps, 1);
        assert_int_equal(healthz_on(held[i]), 200); /* kept alive afterwards */
    }
    int over = connect_from(&gw_caps, 1);
    assert_int_equal(healthz_on(over), 0); /* closed without an answer */
    close(over);
    int other = connect_from(&gw_caps, 2);
    assert_int_equal(healthz_on(other), 200);
    close(other);
    for (int i = 0; i < 3; i++)
        close(held[i]);
}

static void test_keepalive_idle(void **state)
{
    (void)state;
    int fd = connect_from(&gw_caps, 3);
    assert_int_equal(healthz_on(fd), 200);
    double took = ms_until_closed(fd, 10000);
    print_message("kept-alive connection closed after %.0f ms (keepalive_idle_s = 2, "
                  "client_idle_s = 60)\n",
                  took);
    assert_true(took >= 0); /* bounded at 10 s, far below client_idle_s */
    close(fd);
    /* a new connection that has not sent a request yet is not held to it */
    fd = connect_from(&gw_caps, 3);
    assert_true(ms_until_closed(fd, 4000) < 0);
    close(fd);
}

static int start_caps_gateway(void)
{
    char *cfg = th_strf("{\"listen\":\"127.0.0.1:0\","
                        " \"providers\":{\"a\":{\"kind\":\"openai\","
                        "   \"base_url\":\"http://127.0.0.1:%d/v1\",\"api_key\":\"sk-a\"}},"
                        " \"timeouts\":{\"client_idle_s\":60,\"keepalive_idle_s\":2},"
                        " \"limits\":{\"max_connections\":16,\"max_connections_per_ip\":3}}",
                        mock.port);
    const char *args[] = {"--workers", "1", NULL};
    int rc = th_start_meridian_ex(&gw_caps, cfg, args, NULL);
    free(cfg);
    return rc;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slowloris_cut),      cmocka_unit_test(test_connection_limit_is_a_503),
        cmocka_unit_test(test_many_small_headers), cmocka_unit_test(test_per_ip_cap),
        cmocka_unit_test(test_keepalive_idle),
    };
    th_init();
    if (th_start_mock(&mock, "a") < 0)
        return 1;
    char *cfg =
        th_strf("{\"listen\":\"127.0.0.1:0\","
                " \"providers\":{\"a\":{\"kind\":\"openai\","
                "   \"base_url\":\"http://127.0.0.1:%d/v1\",\"api_key\":\"sk-a\"}},"
                " \"routes\":{\"chat\":{\"targets\":[{\"provider\":\"a\",\"model\":\"m\"}]}},"
                " \"timeouts\":{\"client_idle_s\":1},"
                " \"limits\":{\"max_connections\":4}}",
                mock.port);
    const char *args[] = {"--workers", "1", NULL};
    if (th_start_meridian_ex(&gw, cfg, args, NULL) < 0 || start_caps_gateway() < 0)
        return 1;
    free(cfg);
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    if (th_stop(&gw) != 0 || th_stop(&gw_caps) != 0)
        rc = 1;
    th_stop(&mock);
    th_cleanup();
    return rc;
}
