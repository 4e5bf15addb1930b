/*
 * state_redis — the backend "redis" (state.h): one hiredis connection per
 * worker loop through hiredis' libuv adapter, so nothing blocks a loop.
 *
 * Every command is a cmd_t on its connection's pending list with a deadline
 * (opts.command_timeout_ms, on the loop's monotonic clock); hiredis 0.14 has
 * no timeout of its own, so one uv_timer_t per connection is armed for the
 * earliest deadline. A command past its deadline is answered by the outage
 * path at once, and since Redis answers in order, a hung connection is
 * dropped (redisAsyncFree: every other pending command gets its NULL reply
 * and the outage path too) and re-established with jittered exponential
 * backoff. A command's reply arriving after we answered it is discarded
 * (`done`). While a connection is down, calls go to the outage path without
 * waiting; while it is connecting they are queued in hiredis and bounded by
 * the same deadline.
 *
 * A transaction is one Lua script (TXN_LUA) interpreting the ops: check all,
 * then apply all, atomically. Scripts are loaded (SCRIPT LOAD) on connect
 * and called by EVALSHA once their digest is known; before that, or on a
 * NOSCRIPT answer (a restarted Redis), the same command goes as EVAL.
 *
 * Keys: NS:{name} for a window or pool, NS:{name}:exp (a pool's reservation
 * deadlines), NS:{name}:once (once-ids), NS:{hints}, NS:{instances},
 * NS:{kv:KEY}. All carry a PEXPIRE. One transaction may touch several
 * names, so Redis Cluster is not supported (one Redis, or a primary).
 */
#include "state_int.h"

#include "meridian/log.h"

#include <hiredis/adapters/libuv.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BACKOFF_MIN_MS 50
#define REPLAY_BATCH MR_STATE_MAX_OPS
#define HINTS_TTL_MS 600000
#define OP_FIELDS 9
#define MAX_ARGS (4 + MR_STATE_MAX_OPS + 2 + OP_FIELDS * MR_STATE_MAX_OPS)

/* ---- scripts ----------------------------------------------------------- */

/* ARGV: now, n, then per op: kind amount limit window_ms at_ms ttl_ms
 * charge key_ttl_ms id. KEYS: one per op. Returns {status (0 ok, 1
 * denied), denied index, then per op used spent reset retry applied}. */
static const char TXN_LUA[] =
    "local now=tonumber(ARGV[1]) local n=tonumber(ARGV[2]) local RING=61\n"
    "local function I(x) return string.format('%d',x) end\n"
    "local function bms(w) local b=math.floor(w/60) if b<1 then b=1 end return b end\n"
    "local function touch(k,ttl) local t=redis.call('PTTL',k)\n"
    "  if t>=0 and t<ttl or t==-1 then redis.call('PEXPIRE',k,I(ttl)) end end\n"
    "local function wread(k,w,lim) local B=bms(w) local cur=math.floor(now/B) local first=cur-60\n"
    "  local h=redis.call('HGETALL',k) local bs={} local sum=0 local newest=-1\n"
    "  for i=1,#h,2 do local b=tonumber(h[i]) local c=tonumber(h[i+1])\n"
    "    if b<first then redis.call('HDEL',k,h[i]) else sum=sum+c bs[#bs+1]={b,c}\n"
    "      if c>0 and b>newest then newest=b end end end\n"
    "  if sum<0 then sum=0 end\n"
    "  local reset=0 if newest>=0 then reset=(newest+RING)*B-now end\n"
    "  local retry=0 if lim>0 and sum>=lim then table.sort(bs,function(a,b) return a[1]<b[1] end)\n"
    "    local s=sum for _,e in ipairs(bs) do s=s-e[2] if s<lim then retry=(e[1]+RING)*B-now break "
    "end end end\n"
    "  return sum,reset,retry,B,cur end\n"
    "local function psweep(k) local ids=redis.call('ZRANGEBYSCORE',k..':exp','-inf',I(now))\n"
    "  for _,id in ipairs(ids) do local v=redis.call('HGET',k,'r:'..id)\n"
    "    if v then local a,c=string.match(v,'^(-?%d+):(%d)$')\n"
    "      redis.call('HINCRBY',k,'out',I(-tonumber(a)))\n"
    "      if c=='1' then redis.call('HINCRBY',k,'spent',a) end redis.call('HDEL',k,'r:'..id) end\n"
    "    redis.call('ZREM',k..':exp',id) end\n"
    "  local v=redis.call('HMGET',k,'spent','out')\n"
    "  return tonumber(v[1] or '0') or 0, tonumber(v[2] or '0') or 0 end\n"
    "local function once(k,id) if id=='' then return true end\n"
    "  local f=redis.call('HSETNX',k..':once',id,'1') redis.call('PEXPIRE',k..':once','86400000')\n"
    "  return f==1 end\n"
    "local out={0,-1} local op={}\n"
    "for i=1,n do local b=3+(i-1)*9\n"
    "  op[i]={kind=tonumber(ARGV[b]),amt=ARGV[b+1],lim=tonumber(ARGV[b+2]),w=tonumber(ARGV[b+3]),\n"
    "    "
    "at=tonumber(ARGV[b+4]),ttl=tonumber(ARGV[b+5]),chg=ARGV[b+6],kttl=tonumber(ARGV[b+7]),id=ARGV["
    "b+8]}\n"
    "  out[#out+1]=0 out[#out+1]=0 out[#out+1]=0 out[#out+1]=0 out[#out+1]=0 end\n"
    "local function put(i,u,s,r,t,a) local b=3+(i-1)*5 out[b]=u out[b+1]=s out[b+2]=r out[b+3]=t\n"
    "  out[b+4]=a and 1 or 0 end\n"
    "for i=1,n do local o=op[i] local k=KEYS[i]\n"
    "  if o.kind==0 then local s,r,t=wread(k,o.w,o.lim) put(i,s,s,r,t,false)\n"
    "    if o.lim>0 and s>=o.lim then out[1]=1 out[2]=i-1 return out end\n"
    "  elseif o.kind==3 then local sp,ou=psweep(k) put(i,sp+ou,sp,0,0,false)\n"
    "    if redis.call('HEXISTS',k,'r:'..o.id)==0 and o.lim>0 and sp+ou>=o.lim then\n"
    "      out[1]=1 out[2]=i-1 return out end end end\n"
    "for i=1,n do local o=op[i] local k=KEYS[i] local ap=false\n"
    "  if o.kind<=2 then local B=bms(o.w) local cur=math.floor(now/B)\n"
    "    if o.kind==0 then redis.call('HINCRBY',k,I(cur),o.amt) ap=true\n"
    "    elseif o.kind==1 and once(k,o.id) then local b=math.floor(o.at/B)\n"
    "      if b>=cur-60 and b<=cur then redis.call('HINCRBY',k,I(b),o.amt) ap=true end end\n"
    "    if ap then redis.call('PEXPIRE',k,I(o.w+2*B)) end\n"
    "    local s,r,t=wread(k,o.w,o.lim) put(i,s,s,r,t,ap)\n"
    "  else local sp,ou=psweep(k)\n"
    "    if o.kind==3 and redis.call('HEXISTS',k,'r:'..o.id)==0 then\n"
    "      redis.call('HSET',k,'r:'..o.id,o.amt..':'..o.chg) redis.call('HINCRBY',k,'out',o.amt)\n"
    "      redis.call('ZADD',k..':exp',I(now+o.ttl),o.id) ap=true\n"
    "    elseif o.kind==4 or o.kind==5 then local v=redis.call('HGET',k,'r:'..o.id)\n"
    "      if v then local a=string.match(v,'^(-?%d+):')\n"
    "        redis.call('HDEL',k,'r:'..o.id) redis.call('ZREM',k..':exp',o.id)\n"
    "        redis.call('HINCRBY',k,'out',I(-tonumber(a)))\n"
    "        if o.kind==4 then redis.call('HINCRBY',k,'spent',o.amt) end ap=true end\n"
    "    elseif o.kind==6 and once(k,o.id) then redis.call('HINCRBY',k,'spent',o.amt) ap=true end\n"
    "    if o.kind~=7 then local kt=o.kttl if kt==0 then kt=math.max(2*o.ttl,3600000) end\n"
    "      touch(k,kt) touch(k..':exp',kt) end\n"
    "    sp,ou=psweep(k) put(i,sp+ou,sp,0,0,ap) end end\n"
    "return out\n";

static const char POLL_LUA[] = "redis.call('ZREMRANGEBYSCORE',KEYS[1],'-inf',ARGV[1])\n"
                               "return redis.call('ZRANGE',KEYS[1],0,-1,'WITHSCORES')\n";

static const char PUB_LUA[] = "local c=redis.call('ZSCORE',KEYS[1],ARGV[2])\n"
                              "if not c or tonumber(c)<tonumber(ARGV[1]) then\n"
                              "  redis.call('ZADD',KEYS[1],ARGV[1],ARGV[2]) end\n"
                              "redis.call('PEXPIRE',KEYS[1],ARGV[3]) return 1\n";

static const char BEAT_LUA[] = "redis.call('ZADD',KEYS[1],ARGV[1]+ARGV[3],ARGV[2])\n"
                               "redis.call('ZREMRANGEBYSCORE',KEYS[1],'-inf',ARGV[1])\n"
                               "redis.call('PEXPIRE',KEYS[1],ARGV[3]*2)\n"
                               "return redis.call('ZCARD',KEYS[1])\n";

enum { S_TXN = 0, S_POLL, S_PUB, S_BEAT, S__COUNT };
static const char *const SCRIPTS[S__COUNT] = {TXN_LUA, POLL_LUA, PUB_LUA, BEAT_LUA};

/* ---- connections and commands ---------------------------------------- */

typedef enum {
    C_TXN,
    C_REPLAY,
    C_KV_GET,
    C_KV_SET,
    C_FIRE,
    C_LOAD,
    C_POLL,
    C_BEAT,
    C_PING
} cmd_kind_t;

typedef struct cmd cmd_t;
typedef struct mr_redis_conn rconn_t;

struct cmd {
    cmd_t *prev, *next;
    rconn_t *rc; /* NULL once answered or detached */
    cmd_kind_t kind;
    int script; /* C_LOAD: which */
    bool done;  /* answered already: the reply is discarded */
    bool tried_eval;
    uint64_t deadline;
    size_t replay_n;
    mr_state_cb cb;
    mr_state_kv_cb kcb;
    void *arg;
    mr_state_txn_t txn;
};

typedef enum { RC_DOWN = 0, RC_CONNECTING, RC_UP } rc_state_t;

struct mr_redis_conn {
    mr_state_loop_t *sl;
    redisAsyncContext *ac;
    rc_state_t state;
    bool ever_up; /* before the first connection, calls wait for it (bounded) */
    bool counted_up;
    bool warned;
    uv_timer_t cmd_timer;
    uv_timer_t retry_timer;
    uint32_t backoff_ms;
    uint64_t connect_deadline;
    uint64_t rng;
    cmd_t *head, *tail;
    char sha[S__COUNT][41];
    uint64_t last_beat_ms;
    bool replaying, polling, beating;
    unsigned open_timers;
};

static void rc_connect(rconn_t *rc);
static void rc_drop(rconn_t *rc);
static void confirmed_up(rconn_t *rc);

static uint64_t loop_now(const rconn_t *rc)
{
    return uv_now(rc->sl->loop);
}

static void pending_add(rconn_t *rc, cmd_t *c)
{
    c->rc = rc;
    c->prev = rc->tail;
    c->next = NULL;
    if (rc->tail)
        rc->tail->next = c;
    else
        rc->head = c;
    rc->tail = c;
}

static void pending_del(cmd_t *c)
{
    rconn_t *rc = c->rc;
    if (!rc)
        return;
    if (c->prev)
        c->prev->next = c->next;
    else
        rc->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        rc->tail = c->prev;
    c->prev = c->next = NULL;
    c->rc = NULL;
}

static void on_cmd_timer(uv_timer_t *t);

static void arm_timer(rconn_t *rc)
{
    uint64_t now = loop_now(rc), at = UINT64_MAX;
    for (cmd_t *c = rc->head; c; c = c->next)
        if (c->deadline < at)
            at = c->deadline;
    if (rc->state == RC_CONNECTING && rc->connect_deadline < at)
        at = rc->connect_deadline;
    if (at == UINT64_MAX)
        uv_timer_stop(&rc->cmd_timer);
    else
        uv_timer_start(&rc->cmd_timer, on_cmd_timer, at > now ? at - now : 0, 0);
}

static void clear_busy(rconn_t *rc, const cmd_t *c)
{
    if (c->kind == C_POLL)
        rc->polling = false;
    else if (c->kind == C_BEAT)
        rc->beating = false;
    else if (c->kind == C_REPLAY)
        rc->replaying = false;
}

/* The answer when Redis could not give one; the command is done after. */
static void answer_failed(mr_state_loop_t *sl, cmd_t *c)
{
    c->done = true;
    switch (c->kind) {
    case C_TXN:
        if (!sl->closing)
            mr_state_outage_exec(sl, &c->txn, c->cb, c->arg);
        else
            mr_state_answer_unavailable(c->cb, c->arg);
        break;
    case C_REPLAY:
        mr_state_journal_done(sl->st, c->replay_n, false);
        break;
    case C_KV_GET:
    case C_KV_SET:
        if (c->kcb)
            c->kcb(c->arg, MR_STATE_UNAVAILABLE, NULL, 0);
        break;
    default:
        break;
    }
}

/* Takes a pending command off its connection and answers it. The memory
 * stays until hiredis hands the command back (its reply or NULL). */
static void fail_cmd(rconn_t *rc, cmd_t *c)
{
    pending_del(c);
    clear_busy(rc, c);
    answer_failed(rc->sl, c);
}

/* ---- sending ---------------------------------------------------------- */

static void on_reply(redisAsyncContext *ac, void *reply, void *privdata);

/* EVALSHA when the digest is known, else EVAL. argv[0..2] are filled here:
 * the caller leaves them free and passes the keys and args after them. */
static int send_script(rconn_t *rc, cmd_t *c, int script, const char **argv, size_t *lens, int argc)
{
    bool sha = rc->sha[script][0] && !c->tried_eval;
    argv[0] = sha ? "EVALSHA" : "EVAL";
    argv[1] = sha ? rc->sha[script] : SCRIPTS[script];
    lens[0] = strlen(argv[0]);
    lens[1] = strlen(argv[1]);
    lens[2] = strlen(argv[2]);
    if (!rc->ac || redisAsyncCommandArgv(rc->ac, on_reply, c, argc, argv, lens) != REDIS_OK)
        return -1;
    pending_add(rc, c);
    arm_timer(rc);
    return 0;
}

typedef struct argbuf {
    const char *argv[MAX_ARGS];
    size_t lens[MAX_ARGS];
    char keys[MR_STATE_MAX_OPS][MR_STATE_KEY_MAX + 64];
    char nums[2 + 8 * MR_STATE_MAX_OPS][24];
    int argc, nnum;
} argbuf_t;

static void arg_str(argbuf_t *a, const char *s)
{
    a->argv[a->argc] = s;
    a->lens[a->argc++] = strlen(s);
}

static void arg_num(argbuf_t *a, int64_t v)
{
    snprintf(a->nums[a->nnum], sizeof(a->nums[0]), "%" PRId64, v);
    arg_str(a, a->nums[a->nnum++]);
}

static int send_txn(rconn_t *rc, cmd_t *c)
{
    const mr_state_t *st = rc->sl->st;
    argbuf_t *a = malloc(sizeof(*a));
    char nk[12];
    int rc_ = -1;
    if (!a)
        return -1;
    a->argc = 3;
    a->nnum = 0;
    snprintf(nk, sizeof(nk), "%u", c->txn.n);
    a->argv[2] = nk;
    for (unsigned i = 0; i < c->txn.n; i++) {
        snprintf(a->keys[i], sizeof(a->keys[i]), "%s:{%s}", st->ns, c->txn.ops[i].key);
        arg_str(a, a->keys[i]);
    }
    arg_num(a, (int64_t)mr_state_now(st));
    arg_num(a, c->txn.n);
    for (unsigned i = 0; i < c->txn.n; i++) {
        const mr_state_op_t *op = &c->txn.ops[i];
        arg_num(a, op->kind);
        arg_num(a, op->amount);
        arg_num(a, (int64_t)op->limit);
        arg_num(a, op->window_ms);
        arg_num(a, (int64_t)op->at_ms);
        arg_num(a, op->ttl_ms);
        arg_num(a, op->charge_on_expiry);
        arg_num(a, (int64_t)op->key_ttl_ms);
        arg_str(a, op->id);
    }
    rc_ = send_script(rc, c, S_TXN, a->argv, a->lens, a->argc);
    free(a);
    return rc_;
}

static cmd_t *new_cmd(const rconn_t *rc, cmd_kind_t kind)
{
    cmd_t *c = calloc(1, sizeof(*c));
    if (c) {
        c->kind = kind;
        c->deadline = loop_now(rc) + rc->sl->st->o.command_timeout_ms;
    }
    return c;
}

/* Sends a small script call with string args (NULL-terminated). */
static void send_simple(rconn_t *rc, cmd_kind_t kind, int script, const char *key,
                        const char *const *args)
{
    const char *argv[8];
    size_t lens[8];
    char keybuf[MR_STATE_KEY_MAX + 64];
    int argc = 4;
    cmd_t *c = new_cmd(rc, kind);
    if (!c)
        return;
    snprintf(keybuf, sizeof(keybuf), "%s:{%s}", rc->sl->st->ns, key);
    argv[2] = "1";
    argv[3] = keybuf;
    for (; *args && argc < 8; args++)
        argv[argc++] = *args;
    for (int i = 3; i < argc; i++)
        lens[i] = strlen(argv[i]);
    if (send_script(rc, c, script, argv, lens, argc) != 0) {
        free(c);
        return;
    }
    if (kind == C_POLL)
        rc->polling = true;
    else if (kind == C_BEAT)
        rc->beating = true;
}

/* ---- replies ---------------------------------------------------------- */

static bool parse_txn(const redisReply *r, unsigned n, mr_state_result_t *res)
{
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 + 5 * (size_t)n)
        return false;
    for (size_t i = 0; i < r->elements; i++)
        if (r->element[i]->type != REDIS_REPLY_INTEGER)
            return false;
    memset(res, 0, sizeof(*res));
    res->status = r->element[0]->integer ? MR_STATE_DENIED : MR_STATE_OK;
    res->denied_op = (int)r->element[1]->integer;
    for (unsigned i = 0; i < n; i++) {
        redisReply **e = r->element + 2 + (size_t)5 * i;
        res->r[i].used = e[0]->integer > 0 ? (uint64_t)e[0]->integer : 0;
        res->r[i].spent = e[1]->integer > 0 ? (uint64_t)e[1]->integer : 0;
        res->r[i].reset_ms = e[2]->integer > 0 ? (uint64_t)e[2]->integer : 0;
        res->r[i].retry_ms = e[3]->integer > 0 ? (uint64_t)e[3]->integer : 0;
        res->r[i].applied = e[4]->integer != 0;
    }
    return true;
}

static void on_txn(rconn_t *rc, cmd_t *c, const redisReply *r)
{
    mr_state_t *st = rc->sl->st;
    mr_state_result_t res;
    if (!parse_txn(r, c->txn.n, &res)) {
        if (!rc->warned)
            mr_warn("state: Redis answered a transaction with %s; answering from local "
                    "counters",
                    r && r->type == REDIS_REPLY_ERROR ? r->str : "an unexpected reply");
        rc->warned = true;
        answer_failed(rc->sl, c);
        return;
    }
    uint64_t now = mr_state_now(st);
    for (unsigned i = 0; i < c->txn.n; i++)
        if (c->txn.ops[i].kind >= MR_OP_POOL_RESERVE)
            mr_mem_note_remote(st->mem, c->txn.ops[i].key, res.r[i].used, now);
    c->done = true;
    if (c->kind == C_REPLAY) {
        mr_state_journal_done(st, c->replay_n, true);
        mr_redis_tick(rc->sl); /* the next batch at once */
    } else {
        c->cb(c->arg, &res);
    }
}

static void on_poll(rconn_t *rc, const redisReply *r)
{
    if (r->type != REDIS_REPLY_ARRAY)
        return;
    for (size_t i = 0; i + 1 < r->elements; i += 2)
        if (r->element[i]->type == REDIS_REPLY_STRING &&
            r->element[i + 1]->type == REDIS_REPLY_STRING)
            mr_state_hints_set(rc->sl->st, r->element[i]->str,
                               strtoull(r->element[i + 1]->str, NULL, 10));
}

static void on_answer(rconn_t *rc, cmd_t *c, const redisReply *r)
{
    switch (c->kind) {
    case C_TXN:
    case C_REPLAY:
        on_txn(rc, c, r);
        return;
    case C_KV_GET:
        c->kcb(c->arg, r->type == REDIS_REPLY_ERROR ? MR_STATE_UNAVAILABLE : MR_STATE_OK,
               r->type == REDIS_REPLY_STRING ? r->str : NULL,
               r->type == REDIS_REPLY_STRING ? (size_t)r->len : 0);
        break;
    case C_KV_SET:
        if (c->kcb)
            c->kcb(c->arg, r->type == REDIS_REPLY_ERROR ? MR_STATE_UNAVAILABLE : MR_STATE_OK, NULL,
                   0);
        break;
    case C_LOAD:
        if (r->type == REDIS_REPLY_STRING && r->len == 40)
            memcpy(rc->sha[c->script], r->str, 41);
        break;
    case C_POLL:
        on_poll(rc, r);
        break;
    case C_BEAT:
        if (r->type == REDIS_REPLY_INTEGER && r->integer > 0)
            atomic_store(&rc->sl->st->live, (uint_fast64_t)r->integer);
        break;
    case C_PING:
        if (r->type == REDIS_REPLY_STATUS)
            confirmed_up(rc);
        break;
    case C_FIRE:
        if (r->type == REDIS_REPLY_ERROR && !rc->warned) {
            mr_warn("state: Redis refused a command: %s", r->str);
            rc->warned = true;
        }
        break;
    }
    c->done = true;
}

static void on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    cmd_t *c = privdata;
    rconn_t *rc = c->rc;
    const redisReply *r = reply;
    (void)ac;
    if (c->done || !rc) { /* answered by the timer or the close already */
        free(c);
        return;
    }
    pending_del(c);
    clear_busy(rc, c);
    if (!r) {
        answer_failed(rc->sl, c);
    } else if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0 &&
               !c->tried_eval && (c->kind == C_TXN || c->kind == C_REPLAY)) {
        memset(rc->sha, 0, sizeof(rc->sha)); /* a restarted Redis: load again, EVAL now */
        c->tried_eval = true;
        rc->replaying = c->kind == C_REPLAY;
        if (send_txn(rc, c) == 0)
            return;
        rc->replaying = false;
        answer_failed(rc->sl, c);
    } else {
        on_answer(rc, c, r);
    }
    free(c);
    if (rc->ac)
        arm_timer(rc);
}

/* ---- connecting ------------------------------------------------------- */

static void on_retry_timer(uv_timer_t *t)
{
    rc_connect(t->data);
}

static void schedule_retry(rconn_t *rc)
{
    if (rc->sl->closing)
        return;
    rc->backoff_ms = rc->backoff_ms ? rc->backoff_ms * 2 : BACKOFF_MIN_MS;
    if (rc->backoff_ms > rc->sl->st->o.backoff_max_ms)
        rc->backoff_ms = rc->sl->st->o.backoff_max_ms;
    rc->rng ^= rc->rng << 13;
    rc->rng ^= rc->rng >> 7;
    rc->rng ^= rc->rng << 17;
    uint32_t half = rc->backoff_ms / 2;
    uv_timer_start(&rc->retry_timer, on_retry_timer, half + rc->rng % (half + 1), 0);
}

static void went_down(rconn_t *rc)
{
    rc->state = RC_DOWN;
    rc->ac = NULL;
    if (rc->counted_up)
        mr_state_conn_up(rc->sl->st, false);
    rc->counted_up = false;
    schedule_retry(rc);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    rconn_t *rc = ac->data;
    if (rc && status != REDIS_OK)
        went_down(rc); /* hiredis frees the context after this */
}

/* The first answer on a new connection: Redis is serving, not just
 * accepting connections (a stopped server's kernel still does that). */
static void confirmed_up(rconn_t *rc)
{
    if (rc->state != RC_CONNECTING)
        return;
    rc->state = RC_UP;
    rc->ever_up = true;
    rc->backoff_ms = 0;
    rc->warned = false;
    rc->counted_up = true;
    mr_state_conn_up(rc->sl->st, true);
    arm_timer(rc);
    if (rc->sl->primary)
        mr_redis_tick(rc->sl);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    rconn_t *rc = ac->data;
    (void)status;
    if (rc && rc->ac == ac)
        went_down(rc);
}

/* Hung or broken: every pending command goes to the outage path now. */
static void rc_drop(rconn_t *rc)
{
    redisAsyncContext *ac = rc->ac;
    while (rc->head)
        fail_cmd(rc, rc->head);
    if (!ac)
        return;
    ac->data = NULL; /* our callbacks ignore it from here */
    went_down(rc);
    redisAsyncFree(ac); /* replies of failed commands come back NULL and are freed */
}

static void send_setup(rconn_t *rc)
{
    const mr_state_t *st = rc->sl->st;
    if (st->addr.password) {
        const char *argv[] = {"AUTH", st->addr.password};
        cmd_t *c = new_cmd(rc, C_FIRE);
        if (c && redisAsyncCommandArgv(rc->ac, on_reply, c, 2, argv, NULL) == REDIS_OK)
            pending_add(rc, c);
        else
            free(c);
    }
    if (st->addr.db) {
        char db[12];
        snprintf(db, sizeof(db), "%d", st->addr.db);
        const char *argv[] = {"SELECT", db};
        cmd_t *c = new_cmd(rc, C_FIRE);
        if (c && redisAsyncCommandArgv(rc->ac, on_reply, c, 2, argv, NULL) == REDIS_OK)
            pending_add(rc, c);
        else
            free(c);
    }
    for (int i = 0; i < S__COUNT; i++) {
        const char *argv[] = {"SCRIPT", "LOAD", SCRIPTS[i]};
        cmd_t *c = new_cmd(rc, C_LOAD);
        if (!c)
            continue;
        c->script = i;
        if (redisAsyncCommandArgv(rc->ac, on_reply, c, 3, argv, NULL) == REDIS_OK)
            pending_add(rc, c);
        else
            free(c);
    }
    cmd_t *c = new_cmd(rc, C_PING);
    const char *ping[] = {"PING"};
    if (c && redisAsyncCommandArgv(rc->ac, on_reply, c, 1, ping, NULL) == REDIS_OK)
        pending_add(rc, c);
    else
        free(c);
}

static void rc_connect(rconn_t *rc)
{
    const mr_state_t *st = rc->sl->st;
    redisAsyncContext *ac = redisAsyncConnect(st->addr.host, st->addr.port);
    if (!ac || ac->err || redisLibuvAttach(ac, rc->sl->loop) != REDIS_OK) {
        if (ac)
            redisAsyncFree(ac);
        schedule_retry(rc);
        return;
    }
    ac->data = rc;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    rc->ac = ac;
    rc->state = RC_CONNECTING;
    rc->connect_deadline = loop_now(rc) + st->o.command_timeout_ms;
    send_setup(rc);
    arm_timer(rc);
}

static void on_cmd_timer(uv_timer_t *t)
{
    rconn_t *rc = t->data;
    uint64_t now = loop_now(rc);
    bool hung = rc->state == RC_CONNECTING && rc->connect_deadline <= now;
    for (cmd_t *c = rc->head; c && !hung; c = c->next)
        hung = c->deadline <= now;
    if (!hung) {
        arm_timer(rc);
        return;
    }
    for (cmd_t *c = rc->head; c; c = c->next)
        if (c->deadline <= now && (c->kind == C_TXN || c->kind == C_KV_GET || c->kind == C_KV_SET))
            atomic_fetch_add(&rc->sl->st->timeouts, 1);
    rc_drop(rc);
}

/* ---- the interface (state_int.h) ------------------------------------- */

/* Calls go to Redis when it is up, or while the very first connection is
 * being made (bounded by the command timeout); otherwise they take the
 * outage path at once. */
static bool accepting(const rconn_t *rc)
{
    return rc->state == RC_UP || (rc->state == RC_CONNECTING && !rc->ever_up);
}

void mr_redis_exec(mr_state_loop_t *sl, const mr_state_txn_t *t, mr_state_cb cb, void *arg)
{
    rconn_t *rc = sl->rc;
    cmd_t *c;
    if (!accepting(rc) || (c = new_cmd(rc, C_TXN)) == NULL) {
        mr_state_outage_exec(sl, t, cb, arg);
        return;
    }
    c->txn = *t;
    c->cb = cb;
    c->arg = arg;
    if (send_txn(rc, c) != 0) {
        free(c);
        mr_state_outage_exec(sl, t, cb, arg);
    }
}

static void replay(rconn_t *rc)
{
    cmd_t *c;
    if (rc->replaying || (c = new_cmd(rc, C_REPLAY)) == NULL)
        return;
    c->replay_n = mr_state_journal_take(rc->sl->st, c->txn.ops, REPLAY_BATCH);
    c->txn.n = (unsigned)c->replay_n;
    if (c->replay_n == 0) {
        free(c);
        return;
    }
    rc->replaying = true;
    if (send_txn(rc, c) != 0) {
        rc->replaying = false;
        mr_state_journal_done(rc->sl->st, c->replay_n, false);
        free(c);
    }
}

void mr_redis_tick(mr_state_loop_t *sl)
{
    rconn_t *rc = sl->rc;
    mr_state_t *st = sl->st;
    char now_s[24];
    uint64_t now = mr_state_now(st);
    if (rc->state != RC_UP)
        return;
    snprintf(now_s, sizeof(now_s), "%" PRIu64, now);
    if (!rc->polling) {
        const char *args[] = {now_s, NULL};
        send_simple(rc, C_POLL, S_POLL, "hints", args);
    }
    if (!rc->beating && now - rc->last_beat_ms >= st->o.heartbeat_ms) {
        char ttl_s[24];
        snprintf(ttl_s, sizeof(ttl_s), "%" PRIu64, (uint64_t)3 * st->o.heartbeat_ms);
        const char *args[] = {now_s, st->instance, ttl_s, NULL};
        rc->last_beat_ms = now;
        send_simple(rc, C_BEAT, S_BEAT, "instances", args);
    }
    replay(rc);
}

void mr_redis_hint_publish(mr_state_loop_t *sl, const char *target, uint64_t until_ms)
{
    rconn_t *rc = sl->rc;
    char until_s[24], ttl_s[24];
    if (!accepting(rc))
        return; /* the others learn it from their own failures meanwhile */
    snprintf(until_s, sizeof(until_s), "%" PRIu64, until_ms);
    snprintf(ttl_s, sizeof(ttl_s), "%d", HINTS_TTL_MS);
    const char *args[] = {until_s, target, ttl_s, NULL};
    send_simple(rc, C_FIRE, S_PUB, "hints", args);
}

static int kv_send(mr_state_loop_t *sl, cmd_kind_t kind, int argc, const char **argv,
                   const size_t *lens, mr_state_kv_cb cb, void *arg)
{
    rconn_t *rc = sl->rc;
    cmd_t *c = accepting(rc) ? new_cmd(rc, kind) : NULL;
    if (c) {
        c->kcb = cb;
        c->arg = arg;
        if (redisAsyncCommandArgv(rc->ac, on_reply, c, argc, argv, lens) == REDIS_OK) {
            pending_add(rc, c);
            arm_timer(rc);
            return 0;
        }
        free(c);
    }
    if (cb)
        cb(arg, MR_STATE_UNAVAILABLE, NULL, 0);
    return 0;
}

int mr_redis_kv_set(mr_state_loop_t *sl, const char *key, const char *val, size_t len,
                    uint64_t ttl_ms, mr_state_kv_cb cb, void *arg)
{
    char k[MR_STATE_KEY_MAX + 64], ttl[24];
    snprintf(k, sizeof(k), "%s:{kv:%s}", sl->st->ns, key);
    snprintf(ttl, sizeof(ttl), "%" PRIu64, ttl_ms ? ttl_ms : 1);
    const char *argv[] = {"SET", k, val, "PX", ttl};
    size_t lens[] = {3, strlen(k), len, 2, strlen(ttl)};
    return kv_send(sl, C_KV_SET, 5, argv, lens, cb, arg);
}

int mr_redis_kv_get(mr_state_loop_t *sl, const char *key, mr_state_kv_cb cb, void *arg)
{
    char k[MR_STATE_KEY_MAX + 64];
    snprintf(k, sizeof(k), "%s:{kv:%s}", sl->st->ns, key);
    const char *argv[] = {"GET", k};
    size_t lens[] = {3, strlen(k)};
    return kv_send(sl, C_KV_GET, 2, argv, lens, cb, arg);
}

int mr_redis_kv_del(mr_state_loop_t *sl, const char *key)
{
    char k[MR_STATE_KEY_MAX + 64];
    snprintf(k, sizeof(k), "%s:{kv:%s}", sl->st->ns, key);
    const char *argv[] = {"DEL", k};
    size_t lens[] = {3, strlen(k)};
    return kv_send(sl, C_FIRE, 2, argv, lens, NULL, NULL);
}

/* libuv runs close callbacks in no promised order: the last one frees. */
static void timer_closed(uv_handle_t *h)
{
    rconn_t *rc = h->data;
    mr_state_loop_t *sl = rc->sl;
    if (--rc->open_timers == 0)
        free(rc);
    mr_state_handle_closed(sl);
}

int mr_redis_attach(mr_state_loop_t *sl, char *err, size_t errlen)
{
    rconn_t *rc = calloc(1, sizeof(*rc));
    if (!rc || uv_timer_init(sl->loop, &rc->cmd_timer) != 0) {
        free(rc);
        snprintf(err, errlen, "state: out of memory");
        return -1;
    }
    uv_timer_init(sl->loop, &rc->retry_timer);
    rc->cmd_timer.data = rc->retry_timer.data = rc;
    rc->sl = sl;
    rc->rng = (uint64_t)(uintptr_t)rc ^ mr_state_now(sl->st) ^ 0x9e3779b97f4a7c15ULL;
    sl->rc = rc;
    rc_connect(rc);
    return 0;
}

void mr_redis_close(mr_state_loop_t *sl)
{
    rconn_t *rc = sl->rc;
    if (!rc)
        return;
    while (rc->head)
        fail_cmd(rc, rc->head); /* sl->closing: answered UNAVAILABLE */
    if (rc->ac) {
        redisAsyncContext *ac = rc->ac;
        ac->data = NULL;
        rc->ac = NULL;
        if (rc->counted_up)
            mr_state_conn_up(sl->st, false);
        rc->counted_up = false;
        redisAsyncFree(ac);
    }
    rc->state = RC_DOWN;
    rc->open_timers = 2;
    sl->pending_closes += 2;
    uv_close((uv_handle_t *)&rc->cmd_timer, timer_closed);
    uv_close((uv_handle_t *)&rc->retry_timer, timer_closed);
}
