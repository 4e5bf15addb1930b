/*
 * config_check — validation across a config: references between its parts
 * (a target's provider, a key's or default_policy's policy, a policy rule's
 * attribute), the policies' min_vendors, and the exposure rule (no keys ->
 * loopback only).
 *
 * The *_ref and min_vendors checks run inside a load (loader.h rules: 0, or
 * -1 with the message written at the loader's current path, with a "did you
 * mean" suggestion where one is close). mr_config_check_exposure also runs
 * on a loaded config (after --listen or a reload). No heap, no global state.
 */
#ifndef MERIDIAN_CONFIG_CHECK_H
#define MERIDIAN_CONFIG_CHECK_H

#include "meridian/catalogue.h"
#include "meridian/loader.h"

#include <stddef.h>

/* `name` must be a provider loaded so far; *out gets it. */
int mr_config_check_provider_ref(mr_loader_t *ld, const char *name, const mr_provider_t **out);

/* `name` must be a policy loaded so far; *out gets it. */
int mr_config_check_policy_ref(mr_loader_t *ld, const char *name, const mr_policy_t **out);

/* An allow/deny attribute: a built-in one, or a tag some provider or target
 * of ld->cfg carries (so that a typo cannot silently match nothing). */
int mr_config_check_attr_ref(mr_loader_t *ld, const char *attr);

/* `budget_usd` (a number in (0, MR_BUDGET_USD_MAX]) and `budget_period`
 * ("total" | "day" | "month", default "total") of a key's limits or a
 * provider; absent: *usd stays 0 (no budget). */
int mr_config_check_budget(mr_loader_t *ld, json_t *obj, double *usd, mr_budget_period_t *period);

/* The checks of a whole loaded document: min_vendors of every policy on
 * every route, the state section (a redis backend needs its URL), then
 * exposure (reported at "listen"). */
int mr_config_check_document(mr_loader_t *ld);

/*
 * With no gateway keys and allow_unauthenticated false, Meridian may only
 * listen on a loopback address (127.0.0.0/8, ::1). Loading checks the file's
 * `listen`; call this again after mr_config_set_listen. 0, or -1 with a
 * one-line message saying how to fix it.
 */
int mr_config_check_exposure(const mr_config_t *cfg, char *err, size_t errlen);

#endif
