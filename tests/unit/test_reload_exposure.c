/*
 * The reload hub checks exposure where the gateway really listens (issue 11,
 * finding 2): the sockets stay on the address bound at start, so a reload
 * that drops the gateway keys while moving `listen` to loopback in the file
 * is refused when the gateway is bound to every interface.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "meridian/reload.h"

#define PROVIDERS                                                                                  \
    "\"providers\":{\"p\":{\"kind\":\"openai\",\"base_url\":\"http://h\"}},"                       \
    "\"routes\":{\"r\":{\"targets\":[{\"provider\":\"p\",\"model\":\"m\"}]}}"
#define KEYS                                                                                       \
    ",\"keys\":{\"k\":{\"sha256\":"                                                                \
    "\"0000000000000000000000000000000000000000000000000000000000000001\"}}"

typedef struct fixture {
    char path[64];
    uv_loop_t loop;
    uv_async_t async;
    mr_reload_t *rl;
} fixture_t;

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_true(fputs(text, f) >= 0);
    assert_int_equal(fclose(f), 0);
}

static void on_async(uv_async_t *a)
{
    (void)a;
}

/* The gateway as started: bound to 0.0.0.0 with gateway keys. */
static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    mr_config_t *cfg = NULL;
    char err[512];
    int fd;

    if (!f)
        return -1;
    snprintf(f->path, sizeof(f->path), "/tmp/meridian-reload-XXXXXX");
    if ((fd = mkstemp(f->path)) < 0)
        return -1;
    close(fd);
    if (mr_config_load_string("{\"listen\":\"0.0.0.0:18080\"," PROVIDERS KEYS "}", "start.json",
                              &cfg, err, sizeof(err)) != 0) {
        print_error("%s\n", err);
        return -1;
    }
    const mr_snapshot_env_t env = {0}; /* no state, no metrics: the reload alone */
    mr_snapshot_t *snap = mr_snapshot_new(cfg, &env);
    if (!snap || mr_reload_new(f->path, NULL, snap, 1, &f->rl) != 0)
        return -1;
    mr_snapshot_release(snap);
    if (uv_loop_init(&f->loop) != 0 || uv_async_init(&f->loop, &f->async, on_async) != 0)
        return -1;
    mr_reload_attach(f->rl, 0, &f->async);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;

    mr_reload_detach(f->rl, 0);
    mr_reload_free(f->rl);
    uv_close((uv_handle_t *)&f->async, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    uv_loop_close(&f->loop);
    unlink(f->path);
    free(f);
    return 0;
}

static void test_exposure_is_checked_at_the_bound_address(void **state)
{
    fixture_t *f = *state;

    /* the file moves to loopback and drops the keys: still bound to 0.0.0.0 */
    write_file(f->path, "{\"listen\":\"127.0.0.1:18080\"," PROVIDERS "}");
    assert_int_equal(mr_reload_run(f->rl), -1);
    assert_null(mr_reload_take(f->rl, 0));

    /* with keys it is taken, and the new config says where it listens */
    write_file(f->path, "{\"listen\":\"127.0.0.1:18080\"," PROVIDERS KEYS "}");
    assert_int_equal(mr_reload_run(f->rl), 0);
    mr_snapshot_t *s = mr_reload_take(f->rl, 0);
    assert_non_null(s);
    assert_string_equal(s->cfg->listen_host, "0.0.0.0");
    assert_int_equal(s->cfg->listen_port, 18080);
    mr_snapshot_release(s);

    /* and the next reload is checked there too, not at the last file's listen */
    write_file(f->path, "{\"listen\":\"127.0.0.1:18080\"," PROVIDERS "}");
    assert_int_equal(mr_reload_run(f->rl), -1);
    write_file(f->path,
               "{\"listen\":\"127.0.0.1:18080\",\"allow_unauthenticated\":true," PROVIDERS "}");
    assert_int_equal(mr_reload_run(f->rl), 0);
    mr_snapshot_release(mr_reload_take(f->rl, 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_exposure_is_checked_at_the_bound_address, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
