/*
 * config — loading meridian.json into an immutable mr_config_t.
 *
 * The config layers, from the bottom:
 *   catalogue.h       the types, name tables, attribute lookups and the table
 *                     of scalar settings (depends on nothing)
 *   env.h             ${VAR} expansion
 *   loader.h          path-tracked JSON reading shared by the loaders
 *   config_routes.h   providers, routes, targets
 *   config_policies.h policies, gateway keys
 *   config_check.h    cross-references, min_vendors, exposure
 *   config_print.h    the --check table
 *   config.h          this: the entry points; the table-driven scalar keys
 * This header includes the catalogue, env, check and print headers, so a
 * caller of the config needs only this one.
 *
 * A loaded mr_config_t is immutable: built once by mr_config_load_*, then
 * shared read-only by every worker until mr_config_free. All strings and
 * arrays inside it are owned by the config and live exactly as long as it.
 * Loading uses no global state and may run on any thread; env expansion
 * reads the process environment (getenv) at load time only.
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

#include "meridian/catalogue.h"
#include "meridian/config_check.h"
#include "meridian/config_print.h"
#include "meridian/env.h"

#include <stddef.h>
#include <stdint.h>

#define MR_CONFIG_DEFAULT_PATH "config/meridian.json"
#define MR_CONFIG_FILE_MAX (16 * 1024 * 1024) /* bytes; a bigger file is refused */

/* Load and validate. On success *out owns a new config and 0 is returned; on
 * failure -1 is returned, *out is NULL and err holds the message. */
int mr_config_load_file(const char *path, mr_config_t **out, char *err, size_t errlen);
int mr_config_load_string(const char *json, const char *origin, mr_config_t **out, char *err,
                          size_t errlen);

/* Override the listen address ("HOST:PORT", "[::1]:PORT"); 0 or -1 + err. */
int mr_config_set_listen(mr_config_t *cfg, const char *hostport, char *err, size_t errlen);

#endif
