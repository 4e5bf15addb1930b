/*
 * config_print — the resolved configuration as `meridian --check` prints it:
 * every scalar setting with its effective value, the providers (enabled or
 * why not), the routes with their usable targets, the policies with their
 * hashes and the gateway keys by name. Never a secret.
 *
 * Reads a loaded config only; writes to the caller's stream; no heap, no
 * global state, any thread.
 */
#ifndef MERIDIAN_CONFIG_PRINT_H
#define MERIDIAN_CONFIG_PRINT_H

#include "meridian/catalogue.h"

#include <stdio.h>

/* The resolved routing table as printed by --check. */
void mr_config_print_table(const mr_config_t *cfg, FILE *out);

#endif
