/*
 * Backpressure: a client that reads a fast 10 MiB stream one byte every
 * 10 ms must pause the upstream transfer instead of making the gateway
 * buffer it. Proven on the real binary (one worker, stream_buffer_bytes
 * 64 KiB) from three sides:
 *   - the gateway's RSS (/proc/PID/status VmRSS) grows by less than 1 MiB
 *     while the client reads;
 *   - the mock's stream stalls: its request stays in flight and the bytes it
 *     hands to its socket stop growing (what was sent before the pause sits
 *     in the kernel's socket buffers, which loopback autotuning makes
 *     several MiB: kernel memory, not the gateway's);
 *   - another client on the same worker is served at once meanwhile.
 * When the slow client hangs up, the mock sees its request aborted.
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

#define STREAM_BYTES (10L * 1024 * 1024)
#define SLOW_READ_MS 3500 /* how long the slow client reads, 1 byte per 10 ms */

static th_proc_t mock, gw;
/* The acceptance bound (1 MiB) holds in the normal build; ASan's allocator
 * keeps more resident (redzones, shadow pages) and TSan's shadow is four
 * times the application's, so those builds get headroom. Either is still
 * far below the stream the mock has sent by then (3.5 MiB). */
#ifdef __SANITIZE_ADDRESS__
#define RSS_GROWTH_LIMIT_KIB 2048
#elif defined(__SANITIZE_THREAD__)
#define RSS_GROWTH_LIMIT_KIB 3072
#else
#define RSS_GROWTH_LIMIT_KIB 1024
#endif

static int slow_fd = -1; /* closed by the teardown too, when an assert fails */

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* VmRSS of a process in KiB, -1 when unreadable. */
static long rss_kib(pid_t pid)
{
    char path[64], line[256];
    long kib = -1;
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

static long post_status(const char *body, double *ms)
{
    char url[256];
    th_response_t r;
    th_http("POST", th_url_buf(&gw, "/v1/chat/completions", url, sizeof(url)), NULL, body,
            strlen(body), &r);
    long status = r.status;
    if (ms)
        *ms = r.t_total_ms;
    th_response_free(&r);
    return status;
}

/* A raw connection with a 4 KiB receive buffer (set before connect, so the
 * window it advertises stays small) that sends a streaming request. */
static int slow_client(void)
{
    static const char body[] = "{\"model\":\"chat\",\"stream\":true,\"messages\":[{\"role\":"
                               "\"user\",\"content\":\"go\"}]}";
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)gw.port)};
    int fd = socket(AF_INET, SOCK_STREAM, 0), rcvbuf = 4096;
    char req[512];

    assert_true(fd >= 0);
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)), 0);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    int n = snprintf(req, sizeof(req),
                     "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                     sizeof(body) - 1, body);
    assert_int_equal(send(fd, req, (size_t)n, MSG_NOSIGNAL), n);
    return fd;
}

/* One byte, waiting at most timeout_ms: 1, 0 on EOF/error, -1 on timeout. */
static int read_byte(int fd, int timeout_ms, char *c)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, timeout_ms) <= 0)
        return -1;
    return recv(fd, c, 1, 0) == 1 ? 1 : 0;
}

/* The largest receive buffer (SO_RCVBUF, "rb" in `ss -tm`) of the gateway's
 * connections to the mock; 0 when none is seen or ss is missing. */
static long upstream_rcvbuf(void)
{
    char cmd[128], line[1024];
    long max = 0;
    snprintf(cmd, sizeof(cmd), "ss -tmnH state established '( dport = :%d )' 2>/dev/null",
             mock.port);
    FILE *f = popen(cmd, "r");
    if (!f)
        return 0;
    while (fgets(line, sizeof(line), f)) {
        const char *rb = strstr(line, ",rb");
        if (rb && strtol(rb + 3, NULL, 10) > max)
            max = strtol(rb + 3, NULL, 10);
    }
    pclose(f);
    return max;
}

static void test_slow_client_pauses_upstream(void **state)
{
    (void)state;
    /* warm up: the worker's first requests allocate its pools, curl's
     * connection cache, MHD's connection memory */
    for (int i = 0; i < 3; i++)
        assert_int_equal(post_status("{\"model\":\"chat\"}", NULL), 200);
    /* ... and a whole 1 MiB stream read by a fast client, so the allocator
     * already holds what streaming uses */
    assert_int_equal(th_mock_scenario(&mock, "{\"stream_bytes\":1048576,\"count\":1}"), 0);
    assert_int_equal(post_status("{\"model\":\"chat\",\"stream\":true}", NULL), 200);
    assert_int_equal(th_mock_reset(&mock), 0);
    char *sc = th_strf("{\"stream_bytes\":%ld,\"count\":1}", STREAM_BYTES);
    assert_int_equal(th_mock_scenario(&mock, sc), 0);
    free(sc);

    long rss_before = rss_kib(gw.pid);
    assert_true(rss_before > 0);
    int fd = slow_fd = slow_client();
    char c;
    assert_int_equal(read_byte(fd, 10000, &c), 1); /* the response began */
    assert_int_equal(th_mock_wait_stat(&mock, "in_flight", 1, 5000), 0);

    long rss_max = rss_before, got = 1, sent_early = -1;
    double other_ms = -1, start = now_ms(), next_sample = start;
    while (now_ms() - start < SLOW_READ_MS) {
        int rc = read_byte(fd, 1000, &c);
        assert_int_equal(rc, 1); /* a paused stream still trickles, never stops */
        got++;
        double t = now_ms() - start;
        if (now_ms() >= next_sample) {
            long r = rss_kib(gw.pid);
            if (r > rss_max)
                rss_max = r;
            next_sample += 250;
        }
        if (sent_early < 0 && t >= 1500)
            sent_early = th_mock_stat(&mock, "stream_bytes_sent");
        if (other_ms < 0 && t >= 1000) {
            /* another client on the same (only) worker */
            assert_int_equal(post_status("{\"model\":\"chat\"}", &other_ms), 200);
        }
        poll(NULL, 0, 10); /* the slow reader's pace, not synchronisation */
    }
    /* the connection the warm-up opened for whole answers, now reused by
     * the stream, has the stream's receive buffer: what the kernel holds
     * behind a paused stream stays 2 x 64 KiB, not tcp_rmem's autotuned
     * maximum (6 MiB, which with the mock's send buffer held the whole
     * 10 MiB stream at times) */
    long rb = upstream_rcvbuf();
    long rss_after = rss_kib(gw.pid);
    if (rss_after > rss_max)
        rss_max = rss_after;
    long sent_late = th_mock_stat(&mock, "stream_bytes_sent");
    long in_flight = th_mock_stat(&mock, "in_flight");

    print_message("slow client read %ld bytes in %d ms of a %ld-byte stream\n", got, SLOW_READ_MS,
                  STREAM_BYTES);
    print_message("gateway RSS: before %ld KiB, max while reading %ld KiB, after %ld KiB "
                  "(growth %ld KiB, limit %d)\n",
                  rss_before, rss_max, rss_after, rss_max - rss_before, RSS_GROWTH_LIMIT_KIB);
    print_message(
        "mock stream bytes sent: %ld at 1.5 s, %ld at %d ms (growth %ld); in flight %ld\n",
        sent_early, sent_late, SLOW_READ_MS, sent_late - sent_early, in_flight);
    print_message("other client's request during the slow stream: %.1f ms\n", other_ms);
    print_message("gateway's upstream receive buffer: %ld\n", rb);

    assert_true(rss_max - rss_before < RSS_GROWTH_LIMIT_KIB);
    /* the upstream is paused, not finished: still in flight, stalled far
     * from the end of the stream */
    assert_int_equal(in_flight, 1);
    assert_true(sent_early > 0);
    assert_true(sent_late < STREAM_BYTES);
    /* unpaused, loopback moves the rest in milliseconds; kernel buffer
     * autotuning may still let some through */
    assert_true(sent_late - sent_early < 1024 * 1024);
    assert_true(other_ms >= 0 && other_ms < 2000);
    if (system("ss -V >/dev/null 2>&1") == 0)
        assert_int_equal(rb, 2 * 64 * 1024);
    else
        print_message("receive buffer not checked: no ss (iproute2)\n");

    /* the client leaves: the upstream transfer is aborted */
    close(fd);
    slow_fd = -1;
    assert_int_equal(th_mock_wait_stat(&mock, "aborted", 1, 5000), 0);
    assert_int_equal(th_mock_wait_stat(&mock, "in_flight", 0, 5000), 0);
    assert_int_equal(post_status("{\"model\":\"chat\"}", NULL), 200);
}

static int close_slow(void **state)
{
    (void)state;
    if (slow_fd >= 0)
        close(slow_fd);
    slow_fd = -1;
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_slow_client_pauses_upstream, close_slow),
    };
    th_init();
    if (th_start_mock(&mock, "a") < 0)
        return 1;
    char *cfg =
        th_strf("{\"listen\":\"127.0.0.1:0\","
                " \"providers\":{\"a\":{\"kind\":\"openai\","
                "   \"base_url\":\"http://127.0.0.1:%d/v1\",\"api_key\":\"sk-a\"}},"
                " \"routes\":{\"chat\":{\"targets\":[{\"provider\":\"a\",\"model\":\"m\"}]}},"
                " \"limits\":{\"stream_buffer_bytes\":65536},"
                /* shorter than the slow read: a pause is the client's doing and
                 * must not trip the provider's idle timeout */
                " \"timeouts\":{\"stream_idle_ms\":1000}}",
                mock.port);
    const char *args[] = {"--workers", "1", NULL};
    /* ASan's quarantine would keep a few MiB over the stream's first burst */
    if (th_start_meridian_live_rss(&gw, cfg, args) < 0)
        return 1;
    free(cfg);
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    if (th_stop(&gw) != 0)
        rc = 1;
    th_stop(&mock);
    th_cleanup();
    return rc;
}
