/*
 * SIGHUP parses the config once for every worker: a file replaced while the
 * reload runs cannot leave two workers on different configs.
 *
 * The config path is made a FIFO, so every read of the file is one write by
 * this test. Config A is written for the first reader; once that reader is
 * done (the daemon logged the outcome of parsing it), any further reader gets
 * config B until both workers report the new generation. A gateway whose
 * workers each read the file themselves has a second reader (which gets B,
 * or part of A when it raced the first): its workers diverge, or one rejects
 * the reload, and this test fails. One that reads once has no second reader.
 */
#include "harness.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define WORKERS 2
#define WAIT_MS 5000

static th_proc_t mock, gw;

static char *config_with_model(const char *model)
{
    return th_strf("{\"listen\":\"127.0.0.1:0\","
                   " \"providers\":{\"a\":{\"kind\":\"openai\","
                   "   \"base_url\":\"http://127.0.0.1:%d/v1\",\"api_key\":\"sk-a\"}},"
                   " \"routes\":{\"chat\":{\"targets\":[{\"provider\":\"a\",\"model\":\"%s\"}]}}}",
                   mock.port, model);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void pause_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Writes `text` to the FIFO if a reader has it open now: 1 written, 0 no
 * reader (ENXIO), -1 error. */
static int feed_reader(const char *text)
{
    int fd = open(gw.config_path, O_WRONLY | O_NONBLOCK);
    if (fd < 0)
        return errno == ENXIO ? 0 : -1;
    /* blocking from here: the whole config goes in, then EOF */
    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0) {
        close(fd);
        return -1;
    }
    size_t len = strlen(text), off = 0;
    while (off < len) {
        ssize_t n = write(fd, text + off, len - off);
        if (n <= 0) {
            close(fd);
            return -1;
        }
        off += (size_t)n;
    }
    close(fd);
    return 1;
}

/* The upstream model of route chat as the worker answering sees it, and
 * which worker that was. */
static void ask_worker(int *worker, char *model, size_t cap)
{
    char url[256];
    th_response_t r;
    th_http("GET", th_url_buf(&gw, "/v1/gateway/providers", url, sizeof(url)), NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    json_t *j = th_json(&r);
    assert_non_null(j);
    json_t *data = json_object_get(j, "data");
    assert_int_equal(json_array_size(data), 1);
    *worker = (int)json_integer_value(json_object_get(j, "worker"));
    snprintf(model, cap, "%s",
             json_string_value(json_object_get(json_array_get(data, 0), "model")));
    json_decref(j);
    th_response_free(&r);
}

static void test_reload_reads_the_file_once(void **state)
{
    (void)state;
    char *a = config_with_model("m-a"), *b = config_with_model("m-b");
    assert_int_equal(unlink(gw.config_path), 0);
    assert_int_equal(mkfifo(gw.config_path, 0600), 0);
    assert_int_equal(th_signal(&gw, SIGHUP), 0);

    /* config A to the first reader */
    double deadline = now_ms() + WAIT_MS;
    int rc;
    while ((rc = feed_reader(a)) == 0 && now_ms() < deadline)
        pause_ms(5);
    assert_int_equal(rc, 1);
    /* the first reader is done once it logged what it made of A */
    while (th_log_count(&gw, "generation 1") + th_log_count(&gw, "reload rejected") == 0 &&
           now_ms() < deadline)
        pause_ms(5);
    /* config B to anyone who reads the file again before the reload is over */
    int extra_reads = 0;
    while (th_log_count(&gw, "generation 1 live") < WORKERS && now_ms() < deadline) {
        rc = feed_reader(b);
        assert_true(rc >= 0);
        extra_reads += rc;
        pause_ms(5);
    }
    printf("# file read %d extra time(s) during the reload\n", extra_reads);
    assert_int_equal(th_log_count(&gw, "generation 1 live"), WORKERS);
    assert_int_equal(th_log_count(&gw, "reload rejected"), 0);
    assert_int_equal(extra_reads, 0);

    /* every worker serves A: new connections until each has answered */
    int seen[WORKERS] = {0};
    for (int i = 0; i < 400 && !(seen[0] && seen[1]); i++) {
        int worker;
        char model[64];
        ask_worker(&worker, model, sizeof(model));
        assert_true(worker >= 0 && worker < WORKERS);
        seen[worker] = 1;
        assert_string_equal(model, "m-a");
    }
    assert_true(seen[0] && seen[1]);
    free(a);
    free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_reload_reads_the_file_once)};
    th_init();
    if (th_start_mock(&mock, "a") < 0)
        return 1;
    char *cfg = config_with_model("m-old");
    const char *args[] = {"--workers", "2", NULL};
    if (th_start_meridian_ex(&gw, cfg, args, NULL) < 0)
        return 1;
    free(cfg);
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    if (th_stop(&gw) != 0)
        rc = 1;
    th_stop(&mock);
    th_cleanup();
    return rc;
}
