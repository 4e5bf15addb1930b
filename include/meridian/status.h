/*
 * status — the data behind GET /status: recent traffic by vendor and by
 * jurisdiction, and per-provider health, as JSON (GET /status.json).
 *
 * Built from the metrics registry only: a sampler copies the counters it
 * needs every step (driven by one worker's timer) into a ring covering the
 * last MR_STATUS_SAMPLES steps; the JSON compares a fresh reading with the
 * ring. One mr_status_t per process; a mutex guards the ring (taken once per
 * step and once per status request, never on the request path).
 */
#ifndef MERIDIAN_STATUS_H
#define MERIDIAN_STATUS_H

#include "meridian/config.h"
#include "meridian/metrics.h"

#include <jansson.h>
#include <stddef.h>

#define MR_STATUS_SAMPLES 60
#define MR_STATUS_STEP_MS 5000

typedef struct mr_status mr_status_t;

int mr_status_new(mr_metrics_t *m, mr_status_t **out);
void mr_status_free(mr_status_t *s);

/* Records one sample; call every MR_STATUS_STEP_MS from one thread. */
void mr_status_sample(mr_status_t *s);

/* The JSON document (malloc'd, *len set), providers as `cfg` lists them,
 * plus the members of `extra` (borrowed, may be NULL: the shared state and
 * budgets); NULL when out of memory. Any thread. */
char *mr_status_json(mr_status_t *s, const mr_config_t *cfg, json_t *extra, size_t *len);

#endif
