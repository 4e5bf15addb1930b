/*
 * The redis backend against a real redis-server, started here on a free
 * 127.0.0.1 port (append-only file in a temporary directory, so a killed
 * server comes back with its data) and stopped at the end. Three engine
 * instances, each with its own loop on its own thread, share it:
 *   - budget exactness: 64 reservations in flight at once
 *   - rpm 30 across the instances: 60 requests, 30 served
 *   - a breaker hint published by one instance reaches another
 *   - Redis killed mid-run, on_outage "local" and "deny": every call is
 *     answered (latencies printed), local shares are the limit / 3, the
 *     statistics show the outage; Redis back: the journal replays and
 *     nothing is counted twice
 *   - Redis stopped (SIGSTOP): our command timer answers
 *   - an instance restarted keeps the spend
 * Exits 77 when redis-server is not installed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "meridian/limits.h"

#define N_INST 3
#define WAIT_MS 15000

static pid_t redis_pid = -1;
static int redis_port;
static char redis_dir[64];
static char url[64];

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void pause_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- the server --------------------------------------------------------- */

static int free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

static bool redis_ping(void)
{
    struct timeval tv = {0, 200000};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", redis_port, tv);
    bool ok = false;
    if (c && !c->err) {
        redisReply *r = redisCommand(c, "PING");
        ok = r && r->type == REDIS_REPLY_STATUS;
        freeReplyObject(r);
    }
    if (c)
        redisFree(c);
    return ok;
}

static void redis_start(void)
{
    char port[16];
    snprintf(port, sizeof(port), "%d", redis_port);
    redis_pid = fork();
    if (redis_pid == 0) {
        int fd = open("/dev/null", O_WRONLY);
        dup2(fd, 1);
        execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "yes", "--appendfsync", "always", "--dir", redis_dir, "--daemonize",
               "no", (char *)NULL);
        _exit(127);
    }
    uint64_t until = mono_ms() + WAIT_MS;
    while (!redis_ping() && mono_ms() < until)
        pause_ms(20);
    assert_true(redis_ping());
}

static void redis_kill(int sig)
{
    if (redis_pid <= 0)
        return;
    kill(redis_pid, sig);
    if (sig == SIGKILL || sig == SIGTERM) {
        waitpid(redis_pid, NULL, 0);
        redis_pid = -1;
    }
}

static void cleanup(void)
{
    if (redis_pid > 0) {
        kill(redis_pid, SIGCONT);
        redis_kill(SIGKILL);
    }
    if (redis_dir[0]) {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf %s", redis_dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", redis_dir);
    }
}

/* ---- instances: a loop on a thread, jobs posted from the test ----------- */

typedef struct inst inst_t;
typedef void (*job_fn)(inst_t *in);

struct inst {
    int idx;
    mr_state_t *st;
    mr_limits_engine_t *L;
    uv_loop_t loop;
    uv_async_t wake;
    mr_state_loop_t *sl;
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    job_fn job;
    bool job_done, stop;
    /* the job's */
    size_t key;
    int n, answered, allowed, limited, quota, unavailable, local;
    uint64_t t0, max_ms;
    mr_limits_usage_t usage;
    mr_limits_req_t reqs[64];
    uint64_t spent;
};

static const mr_limits_key_spec_t keys[] = {
    {.name = "team", .budget_usd = 1.0, .budget_period = MR_PERIOD_DAY},
    {.name = "rpm30", .rpm = 30},
    {.name = "outage", .rpm = 30, .budget_usd = 1.0, .budget_period = MR_PERIOD_MONTH},
    {.name = "par1", .max_parallel = 1},
};
/* $0.05 per request at the worst case */
static const mr_limits_estimate_t est = {
    .body_bytes = 2000, .max_output_tokens = 1000, .worst = {10.0, 30.0}};

static void on_wake(uv_async_t *a)
{
    inst_t *in = a->data;
    pthread_mutex_lock(&in->mu);
    job_fn job = in->job;
    bool stop = in->stop;
    in->job = NULL;
    pthread_mutex_unlock(&in->mu);
    if (job)
        job(in);
    if (stop) {
        mr_state_loop_close(in->sl);
        uv_close((uv_handle_t *)&in->wake, NULL);
    }
}

static void job_finish(inst_t *in)
{
    pthread_mutex_lock(&in->mu);
    in->job_done = true;
    pthread_cond_broadcast(&in->cv);
    pthread_mutex_unlock(&in->mu);
}

static void post(inst_t *in, job_fn fn)
{
    pthread_mutex_lock(&in->mu);
    in->job = fn;
    in->job_done = false;
    pthread_mutex_unlock(&in->mu);
    uv_async_send(&in->wake);
}

static bool wait_job(inst_t *in)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += WAIT_MS / 1000;
    pthread_mutex_lock(&in->mu);
    while (!in->job_done && pthread_cond_timedwait(&in->cv, &in->mu, &until) != ETIMEDOUT)
        ;
    bool done = in->job_done;
    pthread_mutex_unlock(&in->mu);
    return done;
}

static void *thread_main(void *arg)
{
    inst_t *in = arg;
    uv_run(&in->loop, UV_RUN_DEFAULT);
    return NULL;
}

static void inst_start(inst_t *in, int idx, const char *ns, mr_state_outage_t outage)
{
    char err[256];
    mr_state_opts_t o = {.backend = MR_STATE_REDIS,
                         .redis_url = url,
                         .on_outage = outage,
                         .ns = ns,
                         .heartbeat_ms = 200,
                         .backoff_max_ms = 400};
    mr_limits_spec_t spec = {.keys = keys, .n_keys = sizeof(keys) / sizeof(keys[0])};
    memset(in, 0, sizeof(*in));
    in->idx = idx;
    pthread_mutex_init(&in->mu, NULL);
    pthread_cond_init(&in->cv, NULL);
    uv_loop_init(&in->loop);
    uv_async_init(&in->loop, &in->wake, on_wake);
    in->wake.data = in;
    if (mr_state_new(&o, &in->st, err, sizeof(err)) != 0 ||
        mr_state_attach(in->st, &in->loop, &in->sl, err, sizeof(err)) != 0 ||
        mr_limits_new(in->st, &spec, &in->L, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    pthread_create(&in->th, NULL, thread_main, in);
}

static void inst_stop(inst_t *in)
{
    pthread_mutex_lock(&in->mu);
    in->stop = true;
    pthread_mutex_unlock(&in->mu);
    uv_async_send(&in->wake);
    pthread_join(in->th, NULL);
    assert_int_equal(uv_loop_close(&in->loop), 0);
    mr_limits_free(in->L);
    mr_state_free(in->st);
    pthread_mutex_destroy(&in->mu);
    pthread_cond_destroy(&in->cv);
}

static void run_all(inst_t *in, job_fn fn)
{
    for (int i = 0; i < N_INST; i++)
        post(&in[i], fn);
    for (int i = 0; i < N_INST; i++)
        assert_true(wait_job(&in[i])); /* nothing blocks: every job ends */
}

static bool until_ms(bool (*cond)(inst_t *), inst_t *in, int n, uint64_t ms)
{
    uint64_t end = mono_ms() + ms;
    for (;;) {
        bool all = true;
        for (int i = 0; i < n; i++)
            all = all && cond(&in[i]);
        if (all)
            return true;
        if (mono_ms() >= end)
            return false;
        pause_ms(10);
    }
}

static bool is_up(inst_t *in)
{
    mr_state_stats_t s;
    mr_state_stats(in->st, &s);
    return s.redis_up && s.journal_len == 0;
}

static bool sees_all(inst_t *in)
{
    mr_state_stats_t s;
    mr_state_stats(in->st, &s);
    return s.redis_up && s.live_instances == N_INST;
}

static bool is_down(inst_t *in)
{
    mr_state_stats_t s;
    mr_state_stats(in->st, &s);
    return !s.redis_up;
}

/* ---- jobs --------------------------------------------------------------- */

static void got_spent(void *arg, mr_limits_req_t *r)
{
    inst_t *in = arg;
    (void)r;
    json_t *j = mr_limits_key_json(in->L, in->key);
    json_t *u = json_object_get(j, "usage");
    in->spent = (uint64_t)(json_real_value(json_object_get(u, "spent_usd")) * 1e9 + 0.5);
    json_decref(j);
    job_finish(in);
}

static void job_read_spent(inst_t *in)
{
    static mr_limits_req_t rr[N_INST];
    if (mr_limits_refresh(in->L, in->sl, &rr[in->idx], in->key, got_spent, in) == MR_LIMITS_DONE)
        got_spent(in, &rr[in->idx]);
}

static void settle_all(inst_t *in)
{
    for (int i = 0; i < in->n; i++) {
        mr_limits_req_t *r = &in->reqs[i];
        if (r->verdict.outcome == MR_LIMITS_ALLOW && r->_admitted) {
            mr_limits_price_t price = est.worst;
            mr_limits_attempt(in->L, r, SIZE_MAX, &price, NULL, NULL);
            mr_limits_attempt_done(r, &in->usage, true);
        }
        mr_limits_finish(r);
    }
    job_read_spent(in); /* same connection: Redis has the settles first */
}

static void classify(inst_t *in, mr_limits_req_t *r)
{
    uint64_t ms = uv_now(&in->loop) - in->t0;
    if (ms > in->max_ms)
        in->max_ms = ms;
    in->local += r->verdict.local;
    switch (r->verdict.outcome) {
    case MR_LIMITS_ALLOW:
        in->allowed++;
        break;
    case MR_LIMITS_RATE_LIMITED:
        in->limited++;
        break;
    case MR_LIMITS_QUOTA:
        in->quota++;
        break;
    default:
        in->unavailable++;
    }
    if (++in->answered == in->n)
        settle_all(in);
}

static void admitted(void *arg, mr_limits_req_t *r)
{
    classify(arg, r);
}

/* n admissions in flight at once, then every admitted one settled. */
static void job_burst(inst_t *in)
{
    in->answered = in->allowed = in->limited = in->quota = in->unavailable = in->local = 0;
    in->max_ms = 0;
    uv_update_time(&in->loop);
    in->t0 = uv_now(&in->loop);
    int n = in->n;
    for (int i = 0; i < n; i++)
        if (mr_limits_admit(in->L, in->sl, &in->reqs[i], in->key, &est, admitted, in) ==
            MR_LIMITS_DONE)
            classify(in, &in->reqs[i]);
}

static void kv_got(void *arg, mr_state_status_t status, const char *val, size_t len)
{
    inst_t *in = arg;
    assert_int_equal(status, MR_STATE_OK);
    in->answered++;
    in->allowed += val && len == 5 && memcmp(val, "h\0llo", 5) == 0; /* binary-safe */
    in->limited += !val;
    if (in->answered == 1) {
        mr_state_kv_del(in->sl, "resp_1");
        mr_state_kv_get(in->sl, "resp_1", kv_got, in);
    } else {
        job_finish(in);
    }
}

static void job_kv(inst_t *in)
{
    in->answered = in->allowed = in->limited = 0;
    mr_state_kv_set(in->sl, "resp_1", "h\0llo", 5, 60000, NULL, NULL);
    mr_state_kv_get(in->sl, "resp_1", kv_got, in);
}

static void job_publish(inst_t *in)
{
    mr_state_hint_publish(in->sl, "flaky/model-x", mr_state_now(in->st) + 30000);
    job_finish(in);
}

static void set_burst(inst_t *in, size_t key, const int *n, uint64_t prompt, uint64_t out)
{
    for (int i = 0; i < N_INST; i++) {
        in[i].key = key;
        in[i].n = n[i];
        in[i].usage = (mr_limits_usage_t){prompt, out};
    }
}

/* A cancelled admission gives its lease back when its answer arrives: the
 * refresh is answered after it, so the next admission sees the lease gone. */
static void second_admit(void *arg, mr_limits_req_t *r)
{
    inst_t *in = arg;
    (void)r;
    in->n = 1;
    in->answered = in->allowed = 0;
    if (mr_limits_admit(in->L, in->sl, &in->reqs[1], 3, &est, admitted, in) == MR_LIMITS_DONE)
        classify(in, &in->reqs[1]);
}

static void job_cancel(inst_t *in)
{
    static mr_limits_req_t rr;
    in->key = 3;
    assert_int_equal(mr_limits_admit(in->L, in->sl, &in->reqs[0], 3, &est, admitted, in),
                     MR_LIMITS_PENDING);
    mr_limits_cancel(&in->reqs[0]);
    if (mr_limits_refresh(in->L, in->sl, &rr, 3, second_admit, in) == MR_LIMITS_DONE)
        second_admit(in, &rr);
}

/* ---- tests -------------------------------------------------------------- */

static char cur_ns[48]; /* a fresh namespace per test */
static int ns_seq;

static void new_ns(const char *what)
{
    snprintf(cur_ns, sizeof(cur_ns), "mrtest%d-%s%d", (int)getpid(), what, ++ns_seq);
}

static void test_budget_and_rpm(void **state)
{
    inst_t *in = *state;
    static const int split64[N_INST] = {22, 21, 21}, split60[N_INST] = {20, 20, 20};
    int allowed = 0;

    /* connected first: an instance not yet connected answers locally */
    assert_true(until_ms(is_up, in, N_INST, 10000));
    set_burst(in, 0, split64, 2000, 1000); /* every request spends its whole reservation */
    run_all(in, job_burst);
    for (int i = 0; i < N_INST; i++)
        allowed += in[i].allowed;
    assert_int_equal(allowed, 20);
    run_all(in, job_read_spent); /* every instance's settles are in by now */
    printf("budget: 64 concurrent reservations over 3 instances, %d admitted; spent $%.4f of "
           "$1.00 (bound $1.05); slowest answer %llu ms\n",
           allowed, in[0].spent / 1e9, (unsigned long long)in[0].max_ms);
    assert_true(in[0].spent <= 1050000000ULL);
    assert_int_equal(in[2].spent, 20 * 50000000ULL);

    set_burst(in, 1, split60, 10, 10);
    run_all(in, job_burst);
    allowed = 0;
    for (int i = 0; i < N_INST; i++)
        allowed += in[i].allowed;
    printf("rpm 30 over 3 instances: 60 requests, %d served\n", allowed);
    assert_in_range(allowed, 29, 31);
    assert_int_equal(in[0].limited + in[1].limited + in[2].limited, 60 - allowed);
    assert_true(in[0].reqs[19].verdict.retry_after_s > 0 ||
                in[0].reqs[19].verdict.outcome == MR_LIMITS_ALLOW);
}

static bool b_sees_hint(inst_t *in)
{
    uint64_t until;
    return mr_state_hint_get(in->st, "flaky/model-x", &until);
}

static void test_hint(void **state)
{
    inst_t *in = *state;
    assert_false(b_sees_hint(&in[1]));
    uint64_t t0 = mono_ms();
    post(&in[0], job_publish);
    assert_true(wait_job(&in[0]));
    assert_true(until_ms(b_sees_hint, &in[1], 1, 5000));
    uint64_t ms = mono_ms() - t0;
    assert_true(until_ms(b_sees_hint, &in[2], 1, 5000));
    printf("breaker hint: instance B saw instance A's open breaker after %llu ms "
           "(poll every %d ms)\n",
           (unsigned long long)ms, MR_STATE_DEFAULT_HINT_POLL_MS);
}

/* Each instance spends 4 x $0.05 while Redis is away (local shares: 10
 * requests a minute, a third of what was left of the budget); Redis comes
 * back and holds the sum exactly once. */
static void test_outage_local(void **state)
{
    inst_t *in = *state;
    static const int four[N_INST] = {4, 4, 4}, twelve[N_INST] = {12, 12, 12};
    mr_state_stats_t s;

    assert_true(until_ms(sees_all, in, N_INST, 5000));
    set_burst(in, 2, four, 2000, 1000);
    run_all(in, job_burst); /* $0.60 in Redis */
    run_all(in, job_read_spent);
    assert_int_equal(in[0].spent, 12 * 50000000ULL);

    redis_kill(SIGKILL);
    set_burst(in, 2, twelve, 2000, 1000);
    run_all(in, job_burst);
    for (int i = 0; i < N_INST; i++) {
        printf("outage (local), instance %d: %d/12 served on local counters, slowest answer "
               "%llu ms\n",
               i, in[i].allowed, (unsigned long long)in[i].max_ms);
        /* rpm: 30 / 3 = 10 a minute, 4 used already (counted in Redis, not
         * here); budget: ($1 - $0.60) / 3 = $0.1333: 3 requests */
        assert_int_equal(in[i].allowed, 3);
        assert_int_equal(in[i].unavailable, 0);
        assert_true(in[i].local >= 9);
    }
    mr_state_stats(in[0].st, &s);
    printf("outage stats: redis_up=%d outages=%llu local_answers=%llu journal=%llu "
           "timeouts=%llu\n",
           s.redis_up, (unsigned long long)s.outages, (unsigned long long)s.local_answers,
           (unsigned long long)s.journal_len, (unsigned long long)s.command_timeouts);
    assert_false(s.redis_up);
    assert_true(s.outages >= 1);
    assert_true(s.journal_len > 0);

    uint64_t t0 = mono_ms();
    redis_start();
    assert_true(until_ms(is_up, in, N_INST, 10000));
    printf("reconnected and replayed in %llu ms after redis-server answered\n",
           (unsigned long long)(mono_ms() - t0));
    run_all(in, job_read_spent);
    /* 12 before + 3 x 3 during, each $0.05, once */
    assert_int_equal(in[1].spent, 21 * 50000000ULL);
    mr_state_stats(in[0].st, &s);
    assert_true(s.replayed > 0);
    assert_int_equal(s.journal_dropped, 0);
}

static void test_outage_deny(void **state)
{
    inst_t *in = *state;
    static const int three[N_INST] = {3, 3, 3};
    assert_true(until_ms(sees_all, in, N_INST, 5000));
    set_burst(in, 0, three, 100, 100);
    run_all(in, job_burst);
    redis_kill(SIGKILL);
    run_all(in, job_burst);
    for (int i = 0; i < N_INST; i++) {
        printf("outage (deny), instance %d: %d/3 unavailable, slowest answer %llu ms\n", i,
               in[i].unavailable, (unsigned long long)in[i].max_ms);
        assert_int_equal(in[i].unavailable, 3);
    }
    redis_start();
    assert_true(until_ms(is_up, in, N_INST, 10000));
    run_all(in, job_burst);
    for (int i = 0; i < N_INST; i++)
        assert_int_equal(in[i].allowed, 3);
}

/* A hung Redis: every answer comes from our timer, none waits longer. */
static void test_hung(void **state)
{
    inst_t *in = *state;
    static const int three[N_INST] = {3, 3, 3};
    mr_state_stats_t s;
    assert_true(until_ms(sees_all, in, N_INST, 5000));
    redis_kill(SIGSTOP);
    set_burst(in, 1, three, 1, 1);
    run_all(in, job_burst);
    for (int i = 0; i < N_INST; i++) {
        printf("hung redis, instance %d: %d/3 answered locally, slowest answer %llu ms (command "
               "timeout %d ms)\n",
               i, in[i].local, (unsigned long long)in[i].max_ms, MR_STATE_DEFAULT_TIMEOUT_MS);
        assert_int_equal(in[i].answered, 3);
    }
    assert_true(until_ms(is_down, in, N_INST, 5000));
    mr_state_stats(in[0].st, &s);
    assert_true(s.command_timeouts >= 1);
    kill(redis_pid, SIGCONT);
    assert_true(until_ms(is_up, in, N_INST, 10000));
}

static void test_cancel(void **state)
{
    inst_t *in = *state;
    post(&in[0], job_cancel);
    assert_true(wait_job(&in[0]));
    assert_int_equal(in[0].allowed, 1);
}

/* The Responses store's kv, and a Redis that forgot our scripts (SCRIPT
 * FLUSH, as after a restart without its data): EVALSHA's NOSCRIPT is
 * answered by sending the same call as EVAL. */
static void test_kv_and_noscript(void **state)
{
    inst_t *in = *state;
    static const int two[N_INST] = {2, 2, 2};
    assert_true(until_ms(is_up, in, N_INST, 5000));
    post(&in[0], job_kv);
    assert_true(wait_job(&in[0]));
    assert_int_equal(in[0].allowed, 1);
    assert_int_equal(in[0].limited, 1);

    redisContext *c = redisConnect("127.0.0.1", redis_port);
    assert_true(c && !c->err);
    freeReplyObject(redisCommand(c, "SCRIPT FLUSH"));
    redisFree(c);
    set_burst(in, 1, two, 1, 1);
    run_all(in, job_burst);
    for (int i = 0; i < N_INST; i++) {
        assert_int_equal(in[i].allowed, 2);
        assert_int_equal(in[i].local, 0); /* Redis answered, through EVAL */
    }
}

/* An identical SETTLE for the same id as the first request's. */
static void job_settle_again(inst_t *in)
{
    mr_limits_finish(&in->reqs[0]);
    job_finish(in);
}

/* A settle or charge sent twice counts once; an instance restarted reads
 * the same spend. */
static void test_idempotent_and_restart(void **state)
{
    inst_t *in = *state;
    static const int one[N_INST] = {1, 0, 0};
    set_burst(in, 0, one, 2000, 1000);
    post(&in[0], job_burst);
    assert_true(wait_job(&in[0]));
    uint64_t before = in[0].spent;
    mr_limits_req_t *r = &in[0].reqs[0];
    assert_true(r->_admitted && r->_finished);
    /* the same settle again, as a replay would send it */
    in[0].n = 0;
    char key[MR_STATE_KEY_MAX], id[MR_STATE_ID_MAX];
    snprintf(key, sizeof(key), "%s", r->_budget_key);
    snprintf(id, sizeof(id), "%s", r->_id);
    r->_finished = false;
    r->_admitted = true;
    post(&in[0], job_settle_again); /* on the instance's loop, as any call */
    assert_true(wait_job(&in[0]));
    post(&in[0], job_read_spent);
    assert_true(wait_job(&in[0]));
    assert_int_equal(in[0].spent, before);

    inst_stop(&in[2]);
    inst_start(&in[2], 2, cur_ns, MR_OUTAGE_LOCAL);
    in[2].key = 0;
    post(&in[2], job_read_spent);
    assert_true(wait_job(&in[2]));
    printf("restart: a new instance reads $%.4f spent (was $%.4f)\n", in[2].spent / 1e9,
           before / 1e9);
    assert_int_equal(in[2].spent, before);
}

static int setup_with(void **state, const char *what, mr_state_outage_t outage)
{
    inst_t *in = calloc(N_INST, sizeof(*in));
    new_ns(what);
    for (int i = 0; i < N_INST; i++)
        inst_start(&in[i], i, cur_ns, outage);
    *state = in;
    return 0;
}

static int setup_local(void **state)
{
    return setup_with(state, "local", MR_OUTAGE_LOCAL);
}

static int setup_deny(void **state)
{
    return setup_with(state, "deny", MR_OUTAGE_DENY);
}

static int teardown(void **state)
{
    inst_t *in = *state;
    if (redis_pid > 0)
        kill(redis_pid, SIGCONT);
    for (int i = 0; i < N_INST; i++)
        inst_stop(&in[i]);
    free(in);
    return 0;
}

int main(void)
{
    if (system("command -v redis-server >/dev/null 2>&1") != 0) {
        printf("redis-server not found (apt-get install redis-server): skipped\n");
        return 77;
    }
    signal(SIGPIPE, SIG_IGN);
    snprintf(redis_dir, sizeof(redis_dir), "/tmp/mr-redis-XXXXXX");
    if (!mkdtemp(redis_dir))
        return 1;
    atexit(cleanup);
    redis_port = free_port();
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d/0", redis_port);
    redis_start();

    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_budget_and_rpm, setup_local, teardown),
        cmocka_unit_test_setup_teardown(test_hint, setup_local, teardown),
        cmocka_unit_test_setup_teardown(test_outage_local, setup_local, teardown),
        cmocka_unit_test_setup_teardown(test_outage_deny, setup_deny, teardown),
        cmocka_unit_test_setup_teardown(test_hung, setup_local, teardown),
        cmocka_unit_test_setup_teardown(test_idempotent_and_restart, setup_local, teardown),
        cmocka_unit_test_setup_teardown(test_cancel, setup_local, teardown),
        cmocka_unit_test_setup_teardown(test_kv_and_noscript, setup_local, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    redis_kill(SIGTERM);
    return rc;
}
