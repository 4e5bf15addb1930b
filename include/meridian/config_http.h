/*
 * config_http — loading the lists that say who may talk to the gateway over
 * HTTP besides the listen address itself (docs/configuration.md,
 * `server_names`, `cors`): the host names a request's Host header may
 * carry, and the web origins whose pages may call the API.
 *
 * Runs inside a load (loader.h rules: 0, or -1 with the message written;
 * what was built so far belongs to ld->cfg), after the keys: `"*"` in
 * cors.allow_origins is only accepted when gateway keys are configured.
 * Entries are stored lower-case. Nothing here is ${VAR}-expanded.
 */
#ifndef MERIDIAN_CONFIG_HTTP_H
#define MERIDIAN_CONFIG_HTTP_H

#include "meridian/loader.h"

int mr_config_http_load(mr_loader_t *ld, json_t *root);

#endif
