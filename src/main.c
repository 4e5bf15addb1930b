/*
 * meridian — command line entry point. The only place that exits.
 */
#include "meridian/config.h"
#include "meridian/log.h"
#include "meridian/server.h"
#include "meridian/worker.h"

#include <curl/curl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out)
{
    fprintf(out,
            "usage: meridian [--config FILE] [--listen HOST:PORT] [--check] [--version] [--help]\n"
            "\n"
            "  -c, --config FILE      configuration file (default %s)\n"
            "  -l, --listen HOST:PORT override the listen address (port 0: ephemeral)\n"
            "      --check            validate the config, print the routing table, exit 0/1\n"
            "      --log-level LEVEL  debug | info | warn | error (default info)\n"
            "  -V, --version          print the version\n"
            "  -h, --help             this text\n",
            MR_CONFIG_DEFAULT_PATH);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"listen", required_argument, NULL, 'l'},
        {"check", no_argument, NULL, 'k'},
        {"log-level", required_argument, NULL, 'L'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *config_path = MR_CONFIG_DEFAULT_PATH, *listen = NULL;
    int check = 0, c;
    char err[1024];
    mr_config_t *cfg = NULL;
    mr_worker_t w;
    mr_log_level_t level;

    while ((c = getopt_long(argc, argv, "c:l:Vh", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            config_path = optarg;
            break;
        case 'l':
            listen = optarg;
            break;
        case 'k':
            check = 1;
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
    if (mr_config_load_file(config_path, &cfg, err, sizeof(err)) < 0) {
        fprintf(stderr, "meridian: %s\n", err);
        return 1;
    }
    if (listen && mr_config_set_listen(cfg, listen, err, sizeof(err)) < 0) {
        fprintf(stderr, "meridian: %s\n", err);
        mr_config_free(cfg);
        return 2;
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
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "meridian: libcurl failed to initialise\n");
        mr_config_free(cfg);
        return 1;
    }
    uint16_t port = 0;
    int fd = mr_server_listen(cfg->listen_host, cfg->listen_port, &port, err, sizeof(err));
    if (fd < 0) {
        fprintf(stderr, "meridian: %s\n", err);
        mr_config_free(cfg);
        curl_global_cleanup();
        return 1;
    }
    if (mr_worker_init(&w, cfg, fd, err, sizeof(err)) < 0) {
        fprintf(stderr, "meridian: %s\n", err);
        mr_worker_free(&w);
        mr_config_free(cfg);
        curl_global_cleanup();
        return 1;
    }
    size_t enabled = 0;
    for (size_t i = 0; i < cfg->n_providers; i++)
        enabled += cfg->providers[i].enabled;
    mr_info("listening on %s%s%s:%u (1 worker, %zu of %zu providers enabled, %zu routes)",
            strchr(cfg->listen_host, ':') ? "[" : "", cfg->listen_host,
            strchr(cfg->listen_host, ':') ? "]" : "", (unsigned)port, enabled, cfg->n_providers,
            cfg->n_routes);
    int rc = mr_worker_run(&w);
    mr_worker_free(&w);
    mr_config_free(cfg);
    curl_global_cleanup();
    return rc;
}
