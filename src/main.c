/*
 * meridian — command line entry point. The only place that exits.
 *
 * Loads the config once (the first snapshot, shared read-only), opens one
 * SO_REUSEPORT listening socket per worker, and runs each worker's loop on
 * its own thread (worker 0 on the main thread). Every worker handles
 * SIGTERM/SIGINT itself (libuv delivers a signal to every loop watching it),
 * drains, and returns; worker 0 alone handles SIGHUP (reload.h).
 */
#include "meridian/audit.h"
#include "meridian/config.h"
#include "meridian/generation.h"
#include "meridian/log.h"
#include "meridian/router_explain.h"
#include "meridian/server.h"
#include "meridian/state.h"
#include "meridian/worker.h"

#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define MAX_WORKERS 64

static void usage(FILE *out)
{
    fprintf(out,
            "usage: meridian [--config FILE] [--listen HOST:PORT] [--workers N] [--check]\n"
            "                [--explain MODEL [--policy NAME]]\n"
            "                [--verify-audit FILE [--after PREVIOUS_FILE|HEAD]]\n"
            "                [--log-level LEVEL] [--allow-core-dumps] [--version] [--help]\n"
            "\n"
            "  -c, --config FILE      configuration file (default %s)\n"
            "  -l, --listen HOST:PORT override the listen address (port 0: ephemeral)\n"
            "  -w, --workers N        event loops, one thread each (default: CPU cores, max %d)\n"
            "      --check            validate the config, print the routing table, exit 0/1\n"
            "      --explain MODEL    print the candidates and every exclusion for MODEL\n"
            "                         without calling upstreams (exit 0 routes, 1 would fail)\n"
            "      --policy NAME      the policy --explain applies (default: default_policy)\n"
            "      --verify-audit FILE  check an audit file's hash chain; exit 0 intact,\n"
            "                         1 broken (the first bad record is named), 2 unreadable;\n"
            "                         the file must start the chain (seq 1) unless --after\n"
            "      --after FILE|HEAD  the file continues FILE's last record, or the head\n"
            "                         (64 hex digits) printed or logged for it\n"
            "      --log-level LEVEL  debug | info | warn | error (default info)\n"
            "      --allow-core-dumps keep the process dumpable (by default it is not: a\n"
            "                         core dump would hold the provider keys)\n"
            "  -V, --version          print the version\n"
            "  -h, --help             this text\n",
            MR_CONFIG_DEFAULT_PATH, MAX_WORKERS);
}

/* --verify-audit FILE [--after FILE|HEAD]: 0 intact, 1 not, 2 unusable. */
static int verify_audit(const char *path, const char *after)
{
    mr_audit_head_t head;
    char err[1024];
    int rc;

    if (!path) {
        fprintf(stderr, "meridian: --after goes with --verify-audit\n");
        return 2;
    }
    if (after && mr_audit_parse_after(after, &head, err, sizeof(err)) < 0) {
        fprintf(stderr, "meridian: %s\n", err);
        return 2;
    }
    rc = mr_audit_verify(path, after ? &head : NULL, stdout, err, sizeof(err));
    if (rc < 0)
        fprintf(stderr, "meridian: --verify-audit: %s\n", err);
    return rc < 0 ? 2 : rc;
}

static int default_workers(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > MAX_WORKERS ? MAX_WORKERS : (int)n;
}

typedef struct worker_slot {
    mr_worker_t w;
    pthread_t thread;
    int started;
    int rc;
} worker_slot_t;

static void *worker_thread(void *arg)
{
    worker_slot_t *slot = arg;
    slot->rc = mr_worker_run(&slot->w);
    return NULL;
}

/* Opens the sockets and builds the workers; -1 with err on failure (every
 * socket and worker built so far is released). */
static int start_workers(mr_snapshot_t *snap, const mr_shared_t *shared, worker_slot_t *slots,
                         int n, uint16_t *port, char *err, size_t errlen)
{
    const mr_config_t *cfg = snap->cfg;
    uint16_t want = cfg->listen_port;

    for (int i = 0; i < n; i++) {
        int fd = mr_server_listen(cfg->listen_host, want, n > 1, port, err, errlen);
        if (fd < 0 || mr_worker_init(&slots[i].w, i, snap, shared, fd, err, errlen) < 0) {
            for (int k = 0; k < i; k++)
                mr_worker_free(&slots[k].w);
            return -1;
        }
        want = *port; /* an ephemeral port is chosen once, then shared */
    }
    return 0;
}

/* The shared state as the config's `state` says (a Redis host name is
 * resolved here, once). */
static int open_state(const mr_config_t *cfg, mr_state_t **out, char *err, size_t errlen)
{
    mr_state_opts_t o = {
        .backend = cfg->state.backend == 1 ? MR_STATE_REDIS : MR_STATE_MEMORY,
        .redis_url = cfg->state.redis_url,
        .on_outage = cfg->state.on_outage == 1 ? MR_OUTAGE_DENY : MR_OUTAGE_LOCAL,
        .state_file = cfg->state.file,
    };
    return mr_state_new(&o, out, err, errlen);
}

/* The stored Responses: in this process, bounded by the config's
 * `responses` (read once: a reload keeps the running store). */
static int open_responses(const mr_config_t *cfg, mr_shared_t *sh)
{
    mr_respstore_mem_opts_t o = {
        .max_entries = (size_t)cfg->responses.max_entries,
        .max_bytes = (size_t)cfg->responses.max_bytes,
        .max_ttl_ms = (uint64_t)cfg->responses.ttl_s * 1000u,
    };

    if (!(sh->responses = mr_respstore_mem_new(&o)))
        return -1;
    sh->responses_be = mr_respstore_mem_backend(sh->responses);
    return 0;
}

/* Metrics, the shared state and the first snapshot (which uses both), then
 * the access log / audit file, the status sampler and the reload hub: one
 * each for the whole process. Takes ownership of cfg. */
static int open_shared(mr_config_t *cfg, const char *path, const char *listen, unsigned workers,
                       mr_shared_t *sh, mr_snapshot_t **snap, char *err, size_t errlen)
{
    uint64_t seed = 0;

    *snap = NULL;
    if (mr_metrics_new(workers, &sh->metrics) < 0) {
        snprintf(err, errlen, "out of memory");
        mr_config_free(cfg);
        return -1;
    }
    if (open_state(cfg, &sh->state, err, errlen) < 0) {
        mr_config_free(cfg);
        goto fail;
    }
    if (getrandom(&seed, sizeof(seed), 0) != sizeof(seed))
        seed = (uint64_t)time(NULL);
    if (open_responses(cfg, sh) < 0) {
        snprintf(err, errlen, "out of memory");
        mr_config_free(cfg);
        goto fail;
    }
    mr_snapshot_env_t env = {sh->state, sh->metrics, seed, &sh->responses_be};
    if (!(*snap = mr_snapshot_new(cfg, &env)) || mr_status_new(sh->metrics, &sh->status) < 0 ||
        mr_reload_new(path, listen, *snap, workers, &sh->reload) < 0) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (mr_reqlog_open((*snap)->cfg, workers, &sh->reqlog, err, errlen) < 0)
        goto fail;
    return 0;

fail:
    mr_reload_free(sh->reload);
    mr_status_free(sh->status);
    mr_snapshot_release(*snap);
    *snap = NULL;
    mr_respstore_mem_free(sh->responses);
    mr_state_free(sh->state);
    mr_metrics_free(sh->metrics);
    return -1;
}

/* After the workers stopped: flushes what the log writers still hold, and
 * the state file. */
static void close_shared(mr_shared_t *sh, mr_snapshot_t *snap)
{
    mr_reqlog_close(sh->reqlog);
    mr_reload_free(sh->reload);
    mr_status_free(sh->status);
    mr_snapshot_release(snap);
    mr_respstore_mem_free(sh->responses);
    mr_state_free(sh->state);
    mr_metrics_free(sh->metrics);
}

static int run(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"listen", required_argument, NULL, 'l'},
        {"workers", required_argument, NULL, 'w'},
        {"check", no_argument, NULL, 'k'},
        {"log-level", required_argument, NULL, 'L'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {"explain", required_argument, NULL, 'x'},
        {"policy", required_argument, NULL, 'p'},
        {"verify-audit", required_argument, NULL, 'A'},
        {"after", required_argument, NULL, 'a'},
        {"allow-core-dumps", no_argument, NULL, 'D'},
        {NULL, 0, NULL, 0},
    };
    const char *config_path = MR_CONFIG_DEFAULT_PATH, *listen = NULL, *explain = NULL,
               *policy = NULL, *verify = NULL, *after = NULL;
    int check = 0, core_dumps = 0, c, workers = default_workers();
    char err[1024], *end;
    mr_config_t *cfg = NULL;
    mr_log_level_t level;

    while ((c = getopt_long(argc, argv, "c:l:w:Vh", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            config_path = optarg;
            break;
        case 'l':
            listen = optarg;
            break;
        case 'w':
            workers = (int)strtol(optarg, &end, 10);
            if (*end || workers < 1 || workers > MAX_WORKERS) {
                fprintf(stderr, "meridian: --workers: expected 1..%d, got \"%s\"\n", MAX_WORKERS,
                        optarg);
                return 2;
            }
            break;
        case 'k':
            check = 1;
            break;
        case 'x':
            explain = optarg;
            break;
        case 'p':
            policy = optarg;
            break;
        case 'A':
            verify = optarg;
            break;
        case 'a':
            after = optarg;
            break;
        case 'D':
            core_dumps = 1;
            break;
        case 'L':
            if (mr_log_parse_level(optarg, &level) < 0) {
                fprintf(stderr, "meridian: --log-level: unknown level \"%s\"\n", optarg);
                return 2;
            }
            mr_log_set_level(level);
            break;
        case 'V':
            printf("meridian %s\n", MERIDIAN_VERSION);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "meridian: unexpected argument \"%s\"\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    if (verify || after)
        return verify_audit(verify, after);
    /* Before the config (and its keys) is read: a core dump or a ptrace by
     * another process of the same user would hold them. */
    if (!core_dumps && prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
        fprintf(stderr, "meridian: warning: cannot turn core dumps off: %s\n", strerror(errno));
    if (mr_config_load_file(config_path, &cfg, err, sizeof(err)) < 0) {
        fprintf(stderr, "meridian: %s\n", err);
        return 1;
    }
    if (policy && !explain) {
        fprintf(stderr, "meridian: --policy goes with --explain\n");
        mr_config_free(cfg);
        return 2;
    }
    if (listen && mr_config_set_listen(cfg, listen, err, sizeof(err)) < 0) {
        fprintf(stderr, "meridian: %s\n", err);
        mr_config_free(cfg);
        return 2;
    }
    if (mr_config_check_exposure(cfg, err, sizeof(err)) < 0) {
        fprintf(stderr, "meridian: %s\n", err);
        mr_config_free(cfg);
        return 1;
    }
    if (explain) {
        mr_error_t e;
        int rc = mr_router_explain_text(cfg, explain, policy, stdout, &e);
        if (rc < 0)
            fprintf(stderr, "meridian: --explain %s: %s\n", explain, e.message);
        mr_config_free(cfg);
        return rc < 0 ? 2 : rc;
    }
    for (size_t i = 0; i < cfg->n_warnings; i++)
        mr_warn("%s", cfg->warnings[i]);
    if (check) {
        mr_config_print_table(cfg, stdout);
        mr_config_free(cfg);
        return 0;
    }

    /* A client vanishing mid-write must not kill the daemon. */
    signal(SIGPIPE, SIG_IGN);
    /* A request frees its body and buffers at its end; with glibc's default
     * 128 KiB trim threshold the heap shrinks and grows again under load
     * (117 KiB bodies at 300/s: 0.13 brk and 0.52 page faults a request,
     * against 0.003 and 0.16 with this; docs/benchmarks.md). Keep up to
     * 64 MiB of freed heap; workers give it back once traffic falls
     * (mr_gateway_trim, from a timer). Bodies below 4 MiB come from the
     * heap, not an mmap and munmap each. */
    mallopt(M_TRIM_THRESHOLD, 64 << 20);
    mallopt(M_MMAP_THRESHOLD, 4 << 20);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "meridian: libcurl failed to initialise\n");
        mr_config_free(cfg);
        return 1;
    }
    mr_snapshot_t *snap = NULL;
    mr_shared_t shared = {0};
    /* the snapshot owns cfg from here */
    if (open_shared(cfg, config_path, listen, (unsigned)workers, &shared, &snap, err, sizeof(err)) <
        0) {
        fprintf(stderr, "meridian: %s\n", err);
        curl_global_cleanup();
        return 1;
    }
    cfg = snap->cfg;
    worker_slot_t *slots = calloc((size_t)workers, sizeof(*slots));
    uint16_t port = 0;
    if (!slots || start_workers(snap, &shared, slots, workers, &port, err, sizeof(err)) < 0) {
        fprintf(stderr, "meridian: %s\n", slots ? err : "out of memory");
        free(slots);
        close_shared(&shared, snap);
        curl_global_cleanup();
        return 1;
    }
    size_t enabled = 0;
    for (size_t i = 0; i < cfg->n_providers; i++)
        enabled += cfg->providers[i].enabled;
    int v6 = strchr(cfg->listen_host, ':') != NULL;
    mr_info("listening on %s%s%s:%u (%d worker%s, %zu of %zu providers enabled, %zu routes)",
            v6 ? "[" : "", cfg->listen_host, v6 ? "]" : "", (unsigned)port, workers,
            workers == 1 ? "" : "s", enabled, cfg->n_providers, cfg->n_routes);
    int failed = 0;
    for (int i = 1; i < workers && !failed; i++) {
        if (pthread_create(&slots[i].thread, NULL, worker_thread, &slots[i]) != 0) {
            /* its socket would take connections nobody serves: stop everything */
            mr_error("could not start worker thread %d; shutting down", i);
            failed = 1;
            raise(SIGTERM);
            break;
        }
        slots[i].started = 1;
    }
    worker_thread(&slots[0]);
    int rc = failed ? 1 : slots[0].rc;
    for (int i = 1; i < workers; i++) {
        if (slots[i].started) {
            pthread_join(slots[i].thread, NULL);
            if (slots[i].rc > rc)
                rc = slots[i].rc;
        }
    }
    for (int i = 0; i < workers; i++)
        mr_worker_free(&slots[i].w);
    free(slots);
    close_shared(&shared, snap);
    curl_global_cleanup();
    return rc;
}

#ifdef MERIDIAN_TEST_HOOKS
/*
 * Sanitizer test builds only (CMake's MERIDIAN_TEST_HOOKS, never a release
 * binary): the suite proves that it notices a daemon that exits badly
 * (MERIDIAN_TEST_EXIT_CODE=N replaces the exit status) or leaks
 * (MERIDIAN_TEST_LEAK=1 loses 64 bytes for LeakSanitizer to report).
 */
static int test_hooks(int rc)
{
    const char *code = getenv("MERIDIAN_TEST_EXIT_CODE");
    const char *leak = getenv("MERIDIAN_TEST_LEAK");

    /* printed, so the allocation is not optimised away; the leak is the point */
    if (leak && !strcmp(leak, "1"))
        // cppcheck-suppress leakNoVarFunctionCall
        fprintf(stderr, "meridian: test hook: 64 bytes leaked at %p\n", malloc(64));
    return code && *code ? atoi(code) : rc;
}
#endif

int main(int argc, char **argv)
{
    int rc = run(argc, argv);
#ifdef MERIDIAN_TEST_HOOKS
    rc = test_hooks(rc);
#endif
    return rc;
}
