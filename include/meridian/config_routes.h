/*
 * config_routes — loading the "providers" and "routes" objects of a config
 * (docs/configuration.md, "Provider keys", "Route keys", "Target keys").
 *
 * Both run inside a load (loader.h rules: 0, or -1 with the message
 * written; what was built so far belongs to ld->cfg). Providers first:
 * targets resolve their provider by name. Every provider string is
 * ${VAR}-expanded; route and target strings are not.
 */
#ifndef MERIDIAN_CONFIG_ROUTES_H
#define MERIDIAN_CONFIG_ROUTES_H

#include "meridian/loader.h"

int mr_config_routes_load_providers(mr_loader_t *ld, json_t *root);

/* Routes use ld->cfg->max_attempts as the default of their own. */
int mr_config_routes_load(mr_loader_t *ld, json_t *root);

#endif
