/*
 * state_file — the memory backend's state file (state_int.h): spend kept
 * across restarts, written off the event loops.
 *
 * A writer thread, woken when a persisted pool changes, asks the engine for
 * a snapshot of its pools (the engine takes one shard lock at a time) at
 * most every WRITE_INTERVAL_MS and replaces the file atomically: a
 * temporary file, fsync, rename, fsync of the directory. At start the file
 * is read back pool by pool; a file that cannot be read or parsed stops the
 * start with a message and is never silently reset.
 *
 *   {"format":"meridian-state","version":1,"saved_ms":N,
 *    "pools":{"KEY":{"spent":N,"expires_ms":N}}}
 */
#include "state_int.h"

#include "meridian/log.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define WRITE_INTERVAL_MS 100
#define FILE_FORMAT "meridian-state"

struct mr_state_file {
    char *path;
    mr_state_file_snap_fn snap;
    void *arg;
    pthread_t thread;
    bool has_thread;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    bool dirty, stop;
    bool failing; /* the writer's: the last save failed */
    atomic_uint_fast64_t writes, errors;
};

/* ---- writing ---------------------------------------------------------- */

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int fsync_dir(const char *path)
{
    char *copy = strdup(path);
    if (!copy)
        return -1;
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(copy);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

static int replace_file(const char *path, const char *text)
{
    size_t n = strlen(path) + 5;
    char *tmp = malloc(n);
    int fd = -1, rc = -1;
    if (!tmp)
        return -1;
    snprintf(tmp, n, "%s.tmp", path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd >= 0 && write_all(fd, text, strlen(text)) == 0 && fsync(fd) == 0) {
        close(fd);
        fd = -1;
        rc = rename(tmp, path) == 0 ? fsync_dir(path) : -1;
    }
    if (fd >= 0)
        close(fd);
    if (rc != 0)
        unlink(tmp);
    free(tmp);
    return rc;
}

static void save(mr_state_file_t *f)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    json_t *doc =
        json_pack("{sssisIso}", "format", FILE_FORMAT, "version", 1, "saved_ms",
                  (json_int_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, "pools", f->snap(f->arg));
    char *text = doc ? json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    if (text && replace_file(f->path, text) == 0) {
        atomic_fetch_add(&f->writes, 1);
        f->failing = false;
    } else {
        atomic_fetch_add(&f->errors, 1);
        if (!f->failing) /* once per run of failures */
            mr_warn("state file %s: cannot replace it (%s); spend is kept in memory and "
                    "written again on the next change",
                    f->path, strerror(errno));
        f->failing = true;
    }
    free(text);
    json_decref(doc);
}

static void *writer_main(void *arg)
{
    mr_state_file_t *f = arg;
    pthread_mutex_lock(&f->mu);
    for (;;) {
        while (!f->dirty && !f->stop)
            pthread_cond_wait(&f->cond, &f->mu);
        if (!f->dirty)
            break;
        f->dirty = false;
        pthread_mutex_unlock(&f->mu);
        save(f);
        pthread_mutex_lock(&f->mu);
        /* at most one write per interval; a stop cuts the wait short */
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += WRITE_INTERVAL_MS * 1000000L;
        until.tv_sec += until.tv_nsec / 1000000000L;
        until.tv_nsec %= 1000000000L;
        while (!f->stop && pthread_cond_timedwait(&f->cond, &f->mu, &until) != ETIMEDOUT)
            ;
    }
    pthread_mutex_unlock(&f->mu);
    return NULL;
}

void mr_state_file_dirty(mr_state_file_t *f)
{
    if (!f)
        return;
    pthread_mutex_lock(&f->mu);
    if (!f->dirty) {
        f->dirty = true;
        pthread_cond_signal(&f->cond);
    }
    pthread_mutex_unlock(&f->mu);
}

/* ---- reading ---------------------------------------------------------- */

static int load_pools(json_t *pools, mr_state_file_load_fn load, void *arg, char *why,
                      size_t whylen)
{
    const char *key;
    json_t *v;
    json_object_foreach(pools, key, v)
    {
        json_t *spent = json_object_get(v, "spent"), *exp = json_object_get(v, "expires_ms");
        if (!json_is_integer(spent) || json_integer_value(spent) < 0 || !json_is_integer(exp) ||
            strlen(key) >= MR_STATE_KEY_MAX) {
            snprintf(why, whylen, "pools.%s: expected {\"spent\": N >= 0, \"expires_ms\": N}", key);
            return -1;
        }
        if (load(arg, key, json_integer_value(spent), (uint64_t)json_integer_value(exp), why,
                 whylen) != 0)
            return -1;
    }
    return 0;
}

static int load_file(const char *path, mr_state_file_load_fn load, void *arg, char *err,
                     size_t errlen)
{
    json_error_t je;
    char why[256] = "";
    if (access(path, F_OK) != 0 && errno == ENOENT)
        return 0; /* first start */
    json_t *doc = json_load_file(path, JSON_REJECT_DUPLICATES, &je), *pools;
    if (!doc)
        snprintf(why, sizeof(why), "line %d column %d: %s", je.line, je.column, je.text);
    else if (!json_is_object(doc) || !json_is_string(json_object_get(doc, "format")) ||
             strcmp(json_string_value(json_object_get(doc, "format")), FILE_FORMAT) != 0 ||
             json_integer_value(json_object_get(doc, "version")) != 1 ||
             !json_is_object(pools = json_object_get(doc, "pools")))
        snprintf(why, sizeof(why), "not a %s version 1 file", FILE_FORMAT);
    else
        load_pools(pools, load, arg, why, sizeof(why));
    json_decref(doc);
    if (!why[0])
        return 0;
    snprintf(err, errlen,
             "state file %s: %s; it is left as it is: fix it, or move it away to start with no "
             "recorded spend",
             path, why);
    return -1;
}

/* ---- life ------------------------------------------------------------- */

static int start_writer(mr_state_file_t *f, char *err, size_t errlen)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&f->thread, NULL, writer_main, f);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        snprintf(err, errlen, "state file %s: cannot start its writer thread", f->path);
        return -1;
    }
    f->has_thread = true;
    return 0;
}

int mr_state_file_open(const char *path, mr_state_file_load_fn load, mr_state_file_snap_fn snap,
                       void *arg, mr_state_file_t **out, char *err, size_t errlen)
{
    mr_state_file_t *f = calloc(1, sizeof(*f));
    *out = NULL;
    if (!f || !(f->path = strdup(path))) {
        free(f);
        snprintf(err, errlen, "state: out of memory");
        return -1;
    }
    f->snap = snap;
    f->arg = arg;
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cond, NULL);
    if (load_file(path, load, arg, err, errlen) != 0 || start_writer(f, err, errlen) != 0) {
        mr_state_file_close(f);
        return -1;
    }
    *out = f;
    return 0;
}

void mr_state_file_close(mr_state_file_t *f)
{
    if (!f)
        return;
    if (f->has_thread) {
        pthread_mutex_lock(&f->mu);
        f->stop = true;
        pthread_cond_signal(&f->cond);
        pthread_mutex_unlock(&f->mu);
        pthread_join(f->thread, NULL);
        save(f); /* the last word: whatever changed after the writer's last pass */
    }
    pthread_mutex_destroy(&f->mu);
    pthread_cond_destroy(&f->cond);
    free(f->path);
    free(f);
}

void mr_state_file_stats(mr_state_file_t *f, uint64_t *writes, uint64_t *errors)
{
    *writes = f ? atomic_load(&f->writes) : 0;
    *errors = f ? atomic_load(&f->errors) : 0;
}
