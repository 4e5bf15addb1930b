/*
 * reload — SIGHUP: the config file is loaded and validated once (with
 * --listen re-applied), on the address the sockets were bound to at start
 * (a new `listen` takes a restart, so exposure is checked where the gateway
 * really listens), and that one immutable snapshot (generation.h) is
 * posted to every worker, so workers can never run different configs when
 * the file changes under a reload. A file that does not load is rejected
 * with one log line and every worker keeps its generation.
 *
 * One mr_reload_t per process, created by main before the workers and freed
 * after them. Each worker attaches a uv_async_t of its own loop; posting
 * wakes it, and the worker takes the snapshot from its mailbox on its own
 * thread (a newer post replaces one not yet taken). A mutex guards the
 * mailboxes; it is taken per reload and per wake, never on the request path.
 */
#ifndef MERIDIAN_RELOAD_H
#define MERIDIAN_RELOAD_H

#include "meridian/generation.h"

#include <uv.h>

typedef struct mr_reload mr_reload_t;

/* `path` and `listen_override` (NULL: none) are borrowed and must outlive the
 * object; `current` is the running snapshot (a reference is taken). 0, or -1
 * when out of memory. */
int mr_reload_new(const char *path, const char *listen_override, mr_snapshot_t *current,
                  unsigned n_workers, mr_reload_t **out);
/* After every worker detached. NULL ok. */
void mr_reload_free(mr_reload_t *rl);

/* Worker `worker` receives posts through `async` (initialised on its loop)
 * until it detaches; detach before closing the handle. Any thread. */
void mr_reload_attach(mr_reload_t *rl, unsigned worker, uv_async_t *async);
void mr_reload_detach(mr_reload_t *rl, unsigned worker);

/* Loads and validates the file once; a good one becomes the next snapshot
 * and is posted to every attached worker. 0, or -1 (rejected, logged).
 * One caller at a time (worker 0's SIGHUP). */
int mr_reload_run(mr_reload_t *rl);

/* The snapshot posted to `worker` and not yet taken (the caller now owns its
 * reference), or NULL. From the worker's thread. */
mr_snapshot_t *mr_reload_take(mr_reload_t *rl, unsigned worker);

#endif
