/*
 * env — ${VAR} and ${VAR:-default} expansion of config strings
 * (docs/configuration.md, "Environment variable expansion").
 *
 * Reads the process environment (getenv) and nothing else; no global state.
 * Call it only while no thread changes the environment (the config loader
 * runs before workers start, and on reload nothing calls setenv).
 * Results are malloc'd and owned by the caller. Every expanded value is
 * bounded (MR_ENV_EXPANDED_MAX) and so is the nesting of defaults.
 */
#ifndef MERIDIAN_ENV_H
#define MERIDIAN_ENV_H

#include <stddef.h>

#define MR_ENV_EXPANDED_MAX (64 * 1024) /* bytes of one expanded value, NUL included */
#define MR_ENV_DEPTH_MAX 8              /* ${A:-${B:-${C}}} nesting */
#define MR_ENV_NAME_MAX 255             /* bytes of one variable name */

/*
 * Expand ${VAR} and ${VAR:-default} in `in`. Returns 0 and a malloc'd string
 * in *out; when a referenced variable without default is unset, returns 1,
 * *out is NULL and *missing (malloc'd) names the first such variable.
 * Malformed syntax ("${", "${}") returns -1 with err set. "$$" is a literal '$'.
 */
int mr_env_expand(const char *in, char **out, char **missing, char *err, size_t errlen);

/*
 * Called for each variable the expansion looks up, in order, with its value
 * (NULL when unset; borrowed from the environment). A default that is not
 * used looks nothing up.
 */
typedef void (*mr_env_visit_fn)(const char *name, const char *value, void *ctx);

/* mr_env_expand that also calls visit(name, value, ctx) for each lookup. */
int mr_env_expand_visit(const char *in, char **out, char **missing, mr_env_visit_fn visit,
                        void *ctx, char *err, size_t errlen);

#endif
