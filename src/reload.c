#include "meridian/reload.h"

#include "meridian/config.h"
#include "meridian/log.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct mailbox {
    uv_async_t *async;     /* NULL: not attached */
    mr_snapshot_t *posted; /* not yet taken */
} mailbox_t;

struct mr_reload {
    const char *path;
    const char *listen_override;
    mr_snapshot_t *current; /* the last snapshot posted: the next id, what changed */
    pthread_mutex_t lock;   /* the mailboxes */
    mailbox_t *box;
    unsigned n;
};

int mr_reload_new(const char *path, const char *listen_override, mr_snapshot_t *current,
                  unsigned n_workers, mr_reload_t **out)
{
    mr_reload_t *rl = calloc(1, sizeof(*rl));

    *out = NULL;
    if (!rl || !(rl->box = calloc(n_workers ? n_workers : 1, sizeof(*rl->box)))) {
        free(rl);
        return -1;
    }
    if (pthread_mutex_init(&rl->lock, NULL) != 0) {
        free(rl->box);
        free(rl);
        return -1;
    }
    rl->path = path;
    rl->listen_override = listen_override;
    rl->current = mr_snapshot_acquire(current);
    rl->n = n_workers;
    *out = rl;
    return 0;
}

void mr_reload_free(mr_reload_t *rl)
{
    if (!rl)
        return;
    for (unsigned i = 0; i < rl->n; i++)
        mr_snapshot_release(rl->box[i].posted);
    mr_snapshot_release(rl->current);
    pthread_mutex_destroy(&rl->lock);
    free(rl->box);
    free(rl);
}

void mr_reload_attach(mr_reload_t *rl, unsigned worker, uv_async_t *async)
{
    pthread_mutex_lock(&rl->lock);
    rl->box[worker].async = async;
    pthread_mutex_unlock(&rl->lock);
}

void mr_reload_detach(mr_reload_t *rl, unsigned worker)
{
    pthread_mutex_lock(&rl->lock);
    rl->box[worker].async = NULL;
    pthread_mutex_unlock(&rl->lock);
}

static int same_text(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

/* What a reload cannot change, said once. */
static void warn_restart_only(const mr_config_t *cfg, const mr_config_t *old)
{
    if (!same_text(cfg->access_log, old->access_log) ||
        !same_text(cfg->audit.path, old->audit.path) || cfg->audit.bodies != old->audit.bodies)
        mr_warn("reload: access_log and audit changes take a restart; keeping the open files");
    if (cfg->state.backend != old->state.backend || cfg->state.on_outage != old->state.on_outage ||
        !same_text(cfg->state.redis_url, old->state.redis_url) ||
        !same_text(cfg->state.file, old->state.file))
        mr_warn("reload: state changes take a restart; keeping the running state backend");
    if (strcmp(cfg->listen_host, old->listen_host) != 0 || cfg->listen_port != old->listen_port)
        mr_warn("reload: a new listen address takes a restart; still on %s:%u", old->listen_host,
                (unsigned)old->listen_port);
}

/* The socket stays where it was bound: the new config says so, and is
 * checked for exposure there, not at the file's `listen` (finding 2). */
static int keep_bound_address(mr_config_t *cfg, const mr_config_t *old, char *err, size_t n)
{
    char *host = strdup(old->listen_host);

    if (!host) {
        snprintf(err, n, "out of memory");
        return -1;
    }
    free(cfg->listen_host);
    cfg->listen_host = host;
    cfg->listen_port = old->listen_port;
    return mr_config_check_exposure(cfg, err, n);
}

/* The file, loaded and validated as at start-up, on the address bound at
 * start-up; NULL (logged) when not. */
static mr_config_t *load(const mr_reload_t *rl)
{
    char err[1024];
    mr_config_t *cfg = NULL;

    if (mr_config_load_file(rl->path, &cfg, err, sizeof(err)) < 0 ||
        (rl->listen_override &&
         mr_config_set_listen(cfg, rl->listen_override, err, sizeof(err)) < 0))
        goto rejected;
    warn_restart_only(cfg, rl->current->cfg);
    if (keep_bound_address(cfg, rl->current->cfg, err, sizeof(err)) < 0)
        goto rejected;
    return cfg;

rejected:
    mr_error("reload rejected, every worker still serving generation %u: %s", rl->current->id, err);
    mr_config_free(cfg);
    return NULL;
}

int mr_reload_run(mr_reload_t *rl)
{
    mr_config_t *cfg = load(rl);
    unsigned posted = 0;

    if (!cfg)
        return -1;
    mr_snapshot_t *snap = mr_snapshot_next(rl->current, cfg);
    if (!snap) {
        mr_error("reload failed: out of memory; every worker still serving generation %u",
                 rl->current->id);
        return -1;
    }
    pthread_mutex_lock(&rl->lock);
    for (unsigned i = 0; i < rl->n; i++) {
        mailbox_t *b = &rl->box[i];
        if (!b->async)
            continue;
        mr_snapshot_release(b->posted); /* superseded before it was taken */
        b->posted = mr_snapshot_acquire(snap);
        if (uv_async_send(b->async) == 0)
            posted++;
    }
    pthread_mutex_unlock(&rl->lock);
    mr_snapshot_release(rl->current);
    rl->current = snap;
    mr_info("reload: %s loaded as config generation %u, posted to %u worker%s", rl->path, snap->id,
            posted, posted == 1 ? "" : "s");
    return 0;
}

mr_snapshot_t *mr_reload_take(mr_reload_t *rl, unsigned worker)
{
    pthread_mutex_lock(&rl->lock);
    mr_snapshot_t *s = rl->box[worker].posted;
    rl->box[worker].posted = NULL;
    pthread_mutex_unlock(&rl->lock);
    return s;
}
