/*
 * config — loading, validating and resolving meridian.json.
 *
 * A loaded mr_config_t is immutable: it is built once by mr_config_load_*,
 * then shared read-only by every worker until mr_config_free. All strings and
 * arrays inside it are owned by the config and live exactly as long as it.
 * Loading uses no global state and may run on any thread; env expansion reads
 * the process environment (getenv) at load time only.
 *
 * Errors are returned as a status plus a one-line message in a caller buffer
 * that names the origin (file name), the JSON path and the reason, e.g.
 *   config/meridian.json: routes.chat.targets[1].provider: unknown provider "mistrall"
 *
 * Policy evaluation lives in policy.h, gateway keys in auth.h; this header
 * only describes what the file says (docs/configuration.md, docs/routing.md).
 */
#ifndef MERIDIAN_CONFIG_H
#define MERIDIAN_CONFIG_H

#include "meridian/catalogue.h" /* the types of mr_config_t, lookups, names */
#include "meridian/env.h"       /* mr_env_expand, the ${VAR} expansion of loading */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define MR_CONFIG_DEFAULT_PATH "config/meridian.json"

/* Load and validate. On success *out owns a new config and 0 is returned; on
 * failure -1 is returned, *out is NULL and err holds the message. */
int mr_config_load_file(const char *path, mr_config_t **out, char *err, size_t errlen);
int mr_config_load_string(const char *json, const char *origin, mr_config_t **out, char *err,
                          size_t errlen);

/* Override the listen address ("HOST:PORT", "[::1]:PORT"); 0 or -1 + err. */
int mr_config_set_listen(mr_config_t *cfg, const char *hostport, char *err, size_t errlen);

/*
 * With no gateway keys and allow_unauthenticated false, Meridian may only
 * listen on a loopback address (127.0.0.0/8, ::1). Loading checks the file's
 * `listen`; call this again after mr_config_set_listen. 0, or -1 with a
 * one-line message saying how to fix it.
 */
int mr_config_check_exposure(const mr_config_t *cfg, char *err, size_t errlen);

/* The resolved routing table as printed by --check. */
void mr_config_print_table(const mr_config_t *cfg, FILE *out);

#endif
