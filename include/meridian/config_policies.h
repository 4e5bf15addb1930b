/*
 * config_policies — loading the "policies" and "keys" objects of a config
 * (docs/configuration.md, "Policy keys", "Key keys").
 *
 * Both run inside a load (loader.h rules: 0, or -1 with the message
 * written; what was built so far belongs to ld->cfg). Policies after
 * providers and routes (an allow/deny attribute must be a built-in or a tag
 * some provider or target carries), keys after policies (a key may bind one).
 * Nothing here is ${VAR}-expanded.
 */
#ifndef MERIDIAN_CONFIG_POLICIES_H
#define MERIDIAN_CONFIG_POLICIES_H

#include "meridian/loader.h"

/* Also computes each policy's hash and its share slot. */
int mr_config_policies_load(mr_loader_t *ld, json_t *root);

/* Gateway keys: only the SHA-256 of each key is read and stored. */
int mr_config_policies_load_keys(mr_loader_t *ld, json_t *root);

#endif
