/* mx_lease.c - fenced leases in Redis and the singleton actors they elect.
 *
 * Runs on the registry thread (its loop and Redis connection): one
 * campaign timer (every ttl/3: renew what we hold, try to acquire what we
 * do not), one self-fence timer per singleton, one sweep timer for the
 * messages waiting for a holder. Pub/sub events ("acquired", "released")
 * make other nodes raise their epoch fence and take over at once instead
 * of at the next campaign tick.
 *
 * State shared with other threads (senders, the admin thread, the
 * singleton actor's wrapper) sits under lm->mu; the wrapper's deadline is
 * an atomic so the per-message check takes no lock.
 */
#include "mx_lease.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "mx_err.h"
#include "mx_log.h"
#include "mx_metrics.h"
#include "mx_remote.h"

#define ROUTER_NAME "mx-singleton-router"

struct single {
    mx_leases_t *lm;
    char name[64];
    uint32_t sid;
    const struct mx_behaviour *beh;
    void *arg;
    struct mx_spawn_opts so;
    char lease_key[200], epoch_key[200];
    uv_timer_t fence; /* registry thread */
    bool inflight;    /* registry thread: an acquire/renew is outstanding */
    int64_t sent_ms;  /* registry thread: when it was sent (monotonic) */

    /* self-fence deadline (monotonic ms; 0 = may not act). Written by the
     * registry thread, read by the actor's wrapper before every message:
     * relaxed is enough, it orders nothing else and a stale read errs by
     * at most one loop iteration of the writer, which sets it to 0 before
     * it stops the actor. */
    _Atomic int64_t valid_until;

    /* guarded by lm->mu */
    bool held;            /* we hold the lease and run the actor */
    uint64_t epoch;       /* full epoch of our term (sid | seq) */
    struct mx_addr addr;  /* the local actor while held */
    char holder[64];      /* holder's node name as last seen ("" none) */
    uint64_t holder_node; /* holder's node id (0 none) */
    uint64_t seq_max;     /* highest lease counter seen for this name */
    uint64_t seq_node;    /* the node Redis named as holder of seq_max (0 unknown) */
    int64_t view_ttl_ms;  /* remaining TTL when last read */
    int64_t view_at_ms;   /* when it was read (monotonic) */
    struct mx_msg **buf;  /* ring of messages waiting for a holder */
    uint32_t head, count;
};

MX_METRICS_STRUCT(leases_metrics, MX_LEASES_METRICS);
#define MX_METRICS_TYPE struct leases_metrics
static const struct mx_metric_desc leases_desc[] = {MX_LEASES_METRICS(MX_METRIC_DESC)};
#undef MX_METRICS_TYPE

struct mx_leases {
    mx_registry_t *reg;
    mx_system_t *sys;
    uint32_t ttl_ms, margin_ms, buffer_msgs, buffer_wait_ms;
    char token[128]; /* "<node name>/<node id hex>" */
    struct single s[MX_LEASES_MAX];
    int n;
    bool started;
    struct mx_addr router;

    /* registry thread */
    uv_timer_t campaign, sweep;
    mx_redis_script_t *s_acquire, *s_renew, *s_release;
    bool handles_open;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool leaving;        /* guarded by mu: no more campaigning */
    int release_pending; /* guarded by mu */
    /* hand-over (mx_leases_handover), guarded by mu: the terms stopped on
     * the registry thread, and the actors to wait for before releasing */
    bool stop_done;
    bool leave_was[MX_LEASES_MAX];
    struct mx_addr leave_addr[MX_LEASES_MAX];
    bool closed;              /* guarded by mu: handles closed (free) */
    int closes_pending;       /* registry thread */
    int ops;                  /* registry thread: Redis commands outstanding */
    bool closing;             /* registry thread: close once ops reach 0 */
    struct leases_metrics st; /* relaxed counters (registry thread and senders) */
    int metrics_id;           /* mx_metrics_register's; 0 refused */
};

/* KEYS lease, epoch; ARGV token, ttl, floor, channel, name.
 * Won: {1, token, epoch, ttl, counter before a bump (0: none), replicas}.
 * Epochs never go backwards: a counter not above the floor (the highest
 * epoch this node has seen, from Redis or from any holder's messages) -
 * Redis lost writes in a failover or restart - is raised past it. */
static const char LUA_ACQUIRE[] =
    "local function replicas()\n"
    "  local i = redis.call('INFO', 'replication')\n"
    "  return tonumber(string.match(i, 'connected_slaves:(%d+)')) or 0\n"
    "end\n"
    "local f = tonumber(ARGV[3])\n"
    "if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then\n"
    "  local e, was = redis.call('INCR', KEYS[2]), 0\n"
    "  if e <= f then was = e; e = f + 1; redis.call('SET', KEYS[2], e) end\n"
    "  redis.call('PUBLISH', ARGV[4], 'acquired ' .. ARGV[5] .. ' ' .. ARGV[1] .. ' ' .. e)\n"
    "  return {1, ARGV[1], e, tonumber(ARGV[2]), was, replicas()}\n"
    "end\n"
    "local cur = redis.call('GET', KEYS[1])\n"
    "local e = tonumber(redis.call('GET', KEYS[2]) or '0')\n"
    "if cur == ARGV[1] then\n"
    "  local was = 0\n"
    "  if e < f then was = e; e = f + 1; redis.call('SET', KEYS[2], e) end\n"
    "  redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
    "  return {1, cur, e, tonumber(ARGV[2]), was, replicas()}\n"
    "end\n"
    "return {0, cur or '', e, redis.call('PTTL', KEYS[1])}\n";

/* KEYS lease; ARGV token, ttl */
static const char LUA_RENEW[] = "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
                                "  redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
                                "  return 1\n"
                                "end\n"
                                "return 0\n";

/* KEYS lease; ARGV token, channel, name */
static const char LUA_RELEASE[] = "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
                                  "  redis.call('DEL', KEYS[1])\n"
                                  "  redis.call('PUBLISH', ARGV[2], 'released ' .. ARGV[3])\n"
                                  "  return 1\n"
                                  "end\n"
                                  "return 0\n";

static void on_event(void *ctx, const char *p, size_t len);

static void bump(_Atomic uint64_t *c)
{
    atomic_fetch_add_explicit(c, 1, memory_order_relaxed); /* counter only */
}

/* The transport's epoch check (receive thread; see mx_remote_epoch_fn): a
 * peer's frame may carry a singleton's epoch only for a singleton declared
 * here, and only the epoch Redis last named with that peer as holder (an
 * older one passes: the fence refuses it as stale without moving). An epoch
 * newer than any Redis told us of is refused, so a forged frame can neither
 * raise the fence nor fill the fence table. */
static bool epoch_ok(void *ctx, uint64_t from, uint64_t epoch)
{
    mx_leases_t *lm = ctx;
    uint32_t sid = (uint32_t)(epoch >> MX_EPOCH_SEQ_BITS);
    uint64_t seq = epoch & MX_EPOCH_SEQ_MASK;
    bool ok = false;
    pthread_mutex_lock(&lm->mu);
    for (int i = 0; i < lm->n; i++) {
        struct single *s = &lm->s[i];
        if (s->sid == sid) {
            ok = seq < s->seq_max || (seq == s->seq_max && from && from == s->seq_node);
            break;
        }
    }
    pthread_mutex_unlock(&lm->mu);
    return ok;
}

int mx_leases_new(mx_registry_t *reg, const struct mx_leases_opts *o, mx_leases_t **out)
{
    struct mx_leases_opts d = {0};
    if (!o)
        o = &d;
    uint32_t ttl = o->ttl_ms ? o->ttl_ms : 2000;
    uint32_t margin = o->margin_ms ? o->margin_ms : (ttl / 10 > 100 ? ttl / 10 : 100);
    if (!reg || !out || ttl < 30 || margin >= ttl / 2)
        return MX_EINVAL;
    mx_leases_t *lm = calloc(1, sizeof *lm);
    if (!lm) {
        fprintf(stderr, "mx_lease: out of memory\n");
        abort();
    }
    lm->reg = reg;
    lm->sys = mx_registry_system(reg);
    lm->ttl_ms = ttl;
    lm->margin_ms = margin;
    lm->buffer_msgs = o->buffer_msgs ? o->buffer_msgs : 256;
    lm->buffer_wait_ms = o->buffer_wait_ms ? o->buffer_wait_ms : 5000;
    snprintf(lm->token, sizeof lm->token, "%s/%016llx", mx_system_node_name(lm->sys),
             (unsigned long long)mx_system_node_id(lm->sys));
    pthread_mutex_init(&lm->mu, NULL);
    pthread_cond_init(&lm->cv, NULL);
    mx_remote_t *rem = mx_registry_remote(reg);
    if (rem) /* peers' epochs are checked against what Redis told us */
        mx_remote_set_epoch_check(rem, epoch_ok, lm);
    if (mx_registry_listen(reg, on_event, lm) != 0) {
        if (rem)
            mx_remote_set_epoch_check(rem, NULL, NULL);
        pthread_cond_destroy(&lm->cv);
        pthread_mutex_destroy(&lm->mu);
        free(lm);
        return MX_ELIMIT;
    }
    lm->metrics_id = mx_metrics_register("leases", mx_system_node_name(lm->sys), leases_desc,
                                         sizeof leases_desc / sizeof *leases_desc, &lm->st);
    *out = lm;
    return 0;
}

static bool valid_name(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n >= 64)
        return false;
    for (; *s; s++)
        if (*s <= ' ' || *s >= 0x7f || *s == '"' || *s == '\\')
            return false;
    return true;
}

int mx_singleton(mx_leases_t *lm, const char *name, const struct mx_behaviour *b, void *arg,
                 const struct mx_spawn_opts *spawn)
{
    if (!lm || !b || !b->receive || !valid_name(name) || lm->started)
        return MX_EINVAL;
    uint32_t sid = mx_epoch_sid(name);
    for (int i = 0; i < lm->n; i++)
        if (!strcmp(lm->s[i].name, name) || lm->s[i].sid == sid)
            return MX_EEXISTS;
    if (lm->n >= MX_LEASES_MAX)
        return MX_ELIMIT;
    struct single *s = &lm->s[lm->n];
    memset(s, 0, sizeof *s);
    s->lm = lm;
    snprintf(s->name, sizeof s->name, "%s", name);
    s->sid = sid;
    s->beh = b;
    s->arg = arg;
    struct mx_spawn_opts def = MX_SPAWN_OPTS_DEFAULT;
    s->so = spawn ? *spawn : def;
    s->so.name = NULL;
    char suffix[96];
    snprintf(suffix, sizeof suffix, "lease:%s", name);
    mx_registry_key(lm->reg, suffix, s->lease_key, sizeof s->lease_key);
    snprintf(suffix, sizeof suffix, "epoch:%s", name);
    mx_registry_key(lm->reg, suffix, s->epoch_key, sizeof s->epoch_key);
    s->buf = calloc(lm->buffer_msgs, sizeof s->buf[0]);
    if (!s->buf) {
        fprintf(stderr, "mx_lease: out of memory\n");
        abort();
    }
    lm->n++;
    return 0;
}

static struct single *find(mx_leases_t *lm, const char *name)
{
    for (int i = 0; i < lm->n; i++)
        if (!strcmp(lm->s[i].name, name))
            return &lm->s[i];
    return NULL;
}

/* ---- the singleton's wrapper actor ---- */

struct inst {
    struct single *s;
    uint64_t epoch;
    void *ustate;
};

static _Thread_local struct inst *t_inst; /* the singleton whose callback runs */

static int w_init(mx_actor_t *self, void *arg, void **state)
{
    struct single *s = arg;
    struct inst *in = calloc(1, sizeof *in);
    if (!in)
        return MX_ENOMEM;
    in->s = s;
    pthread_mutex_lock(&s->lm->mu);
    in->epoch = s->epoch;
    pthread_mutex_unlock(&s->lm->mu);
    mx_set_epoch(self, in->epoch);
    int rc = 0;
    if (s->beh->init) {
        t_inst = in;
        rc = s->beh->init(self, s->arg, &in->ustate);
        t_inst = NULL;
    }
    if (rc != 0) {
        free(in);
        return rc;
    }
    *state = in;
    return 0;
}

static bool inst_valid(const struct inst *in)
{
    /* relaxed: see valid_until */
    int64_t until = atomic_load_explicit(&in->s->valid_until, memory_order_relaxed);
    return until > 0 && mx_now_ms() < until;
}

static int w_receive(mx_actor_t *self, void *state, struct mx_msg *m)
{
    struct inst *in = state;
    if (!inst_valid(in)) {
        /* past the self-fence deadline: never act, even once */
        bump(&in->s->lm->st.fenced_drops);
        mx_exit(self);
        return 0;
    }
    t_inst = in;
    int rc = in->s->beh->receive(self, in->ustate, m);
    t_inst = NULL;
    return rc;
}

static void w_stop(mx_actor_t *self, void *state)
{
    struct inst *in = state;
    if (in->s->beh->stop) {
        t_inst = in;
        in->s->beh->stop(self, in->ustate);
        t_inst = NULL;
    }
    free(in);
}

static const struct mx_behaviour wrap_beh = {"singleton", w_init, w_receive, w_stop};

uint64_t mx_singleton_epoch(void)
{
    return t_inst ? t_inst->epoch : 0;
}

bool mx_singleton_valid(void)
{
    return t_inst && inst_valid(t_inst);
}

/* ---- the router: forwards to remote holders from non-actor threads ---- */

struct fwd {
    uint64_t node;
    char name[64];
    struct mx_msg *inner;
};

static void fwd_free(void *p)
{
    struct fwd *f = p;
    mx_msg_free(f->inner);
    free(f);
}

static int router_receive(mx_actor_t *self, void *state, struct mx_msg *m)
{
    mx_leases_t *lm = state;
    if (m->env.type != MX_T_cl_forward || !m->ptr || m->ptr_free != fwd_free)
        return 0; /* a peer's frame of this type: no payload, ignored */
    struct fwd *f = m->ptr;
    /* keep the original sender: replies go to it, not to the router */
    if (mx_forward_named_on(self, f->node, f->name, f->inner) == 0) {
        f->inner = NULL;
        bump(&lm->st.singleton_forwarded);
    }
    return 0;
}

static int router_init(mx_actor_t *self, void *arg, void **state)
{
    *state = arg;
    return 0;
}

static const struct mx_behaviour router_beh = {"singleton-router", router_init, router_receive,
                                               NULL};

static int forward(mx_leases_t *lm, uint64_t node, const char *name, struct mx_msg *m)
{
    struct fwd *f = malloc(sizeof *f);
    if (!f) {
        fprintf(stderr, "mx_lease: out of memory\n");
        abort();
    }
    f->node = node;
    snprintf(f->name, sizeof f->name, "%s", name);
    f->inner = m;
    struct mx_msg *w = mx_msg_with_ptr(MX_T_cl_forward, f, fwd_free);
    int rc = mx_sys_send(lm->sys, lm->router, w);
    if (rc != 0) {
        f->inner = NULL; /* the caller keeps m */
        mx_msg_free(w);
    }
    return rc;
}

/* ---- routing and the wait buffer ---- */

/* Deliver what waited to the holder now known (registry thread). */
static void flush(struct single *s)
{
    mx_leases_t *lm = s->lm;
    for (;;) {
        pthread_mutex_lock(&lm->mu);
        if (s->count == 0 || (!s->held && !s->holder_node)) {
            pthread_mutex_unlock(&lm->mu);
            return;
        }
        struct mx_msg *m = s->buf[s->head];
        s->buf[s->head] = NULL;
        s->head = (s->head + 1) % lm->buffer_msgs;
        s->count--;
        bool local = s->held;
        struct mx_addr addr = s->addr;
        uint64_t node = s->holder_node;
        pthread_mutex_unlock(&lm->mu);
        int rc;
        if (local) {
            m->env.to = addr;
            rc = mx_system_deliver(lm->sys, m, NULL, 0); /* keeps from, corr, deadline */
        } else if (m->env.deadline_ms && mx_unix_ms() > m->env.deadline_ms) {
            rc = mx_system_deliver(lm->sys, m, NULL, 0); /* counts deadline-passed */
            bump(&lm->st.singleton_buffer_expired);
        } else {
            rc = forward(lm, node, s->name, m);
        }
        if (rc != 0)
            mx_msg_free(m);
    }
}

/* Dead-letter what waited past its deadline (registry thread). */
static void expire(struct single *s)
{
    mx_leases_t *lm = s->lm;
    uint64_t now = mx_unix_ms();
    pthread_mutex_lock(&lm->mu);
    /* deadlines are not ordered in general; expire from the head while the
     * head is overdue (FIFO order is kept for what remains) */
    while (s->count && s->buf[s->head]->env.deadline_ms && now > s->buf[s->head]->env.deadline_ms) {
        struct mx_msg *m = s->buf[s->head];
        s->buf[s->head] = NULL;
        s->head = (s->head + 1) % lm->buffer_msgs;
        s->count--;
        pthread_mutex_unlock(&lm->mu);
        bump(&lm->st.singleton_buffer_expired);
        /* the runtime counts it as a dead letter, reason deadline-passed */
        if (mx_system_deliver(lm->sys, m, NULL, 0) != 0)
            mx_msg_free(m);
        pthread_mutex_lock(&lm->mu);
    }
    pthread_mutex_unlock(&lm->mu);
}

int mx_singleton_send(mx_leases_t *lm, mx_actor_t *self, const char *name, struct mx_msg *m)
{
    struct single *s = lm ? find(lm, name) : NULL;
    if (!s)
        return MX_ENOTFOUND;
    pthread_mutex_lock(&lm->mu);
    if (lm->closed) {
        pthread_mutex_unlock(&lm->mu);
        return MX_ESTOPPED;
    }
    int64_t until = atomic_load_explicit(&s->valid_until, memory_order_relaxed);
    if (s->held && until > mx_now_ms()) {
        struct mx_addr a = s->addr;
        pthread_mutex_unlock(&lm->mu);
        return self ? mx_send(self, a, m) : mx_sys_send(lm->sys, a, m);
    }
    uint64_t node = s->held ? 0 : s->holder_node;
    if (node && s->view_at_ms + s->view_ttl_ms > mx_now_ms()) {
        pthread_mutex_unlock(&lm->mu);
        if (self)
            return mx_send_named_on(self, node, name, m);
        return forward(lm, node, name, m);
    }
    if (s->count >= lm->buffer_msgs) {
        pthread_mutex_unlock(&lm->mu);
        bump(&lm->st.singleton_buffer_full);
        mx_deadletter_note(lm->sys, MX_DL_MAILBOX_FULL); /* the handover buffer is full */
        return MX_EFULL;
    }
    if (self)
        m->env.from = mx_self(self);
    if (!m->env.deadline_ms)
        m->env.deadline_ms = mx_unix_ms() + lm->buffer_wait_ms;
    s->buf[(s->head + s->count) % lm->buffer_msgs] = m;
    s->count++;
    pthread_mutex_unlock(&lm->mu);
    bump(&lm->st.singleton_buffered);
    return 0;
}

/* ---- terms: start and stop the local actor (registry thread) ---- */

static void stop_term(struct single *s, const char *why)
{
    mx_leases_t *lm = s->lm;
    atomic_store_explicit(&s->valid_until, 0, memory_order_relaxed); /* see valid_until */
    uv_timer_stop(&s->fence);
    pthread_mutex_lock(&lm->mu);
    bool was = s->held;
    struct mx_addr a = s->addr;
    s->held = false;
    s->addr = (struct mx_addr){0, 0};
    if (was) {
        s->holder[0] = '\0';
        s->holder_node = 0;
    }
    pthread_mutex_unlock(&lm->mu);
    if (!was)
        return;
    MX_INFO("singleton %s: stopped (%s)", s->name, why);
    mx_unregister(lm->sys, s->name);
    if (a.actor)
        mx_actor_stop(lm->sys, a);
}

static void on_fence(uv_timer_t *t)
{
    struct single *s = t->data;
    bump(&s->lm->st.self_fenced);
    stop_term(s, "self-fenced: no renewal before the deadline");
}

static void set_deadline(struct single *s, int64_t sent_ms)
{
    mx_leases_t *lm = s->lm;
    int64_t until = sent_ms + lm->ttl_ms - lm->margin_ms;
    atomic_store_explicit(&s->valid_until, until, memory_order_relaxed); /* see valid_until */
    int64_t now = mx_now_ms();
    uv_timer_start(&s->fence, on_fence, until > now ? (uint64_t)(until - now) : 0, 0);
}

static void start_term(struct single *s, uint64_t seq, int64_t sent_ms)
{
    mx_leases_t *lm = s->lm;
    uint64_t epoch = mx_epoch_make(s->sid, seq);
    mx_epoch_admit(lm->sys, epoch);
    pthread_mutex_lock(&lm->mu);
    s->epoch = epoch;
    if (seq >= s->seq_max) {
        s->seq_max = seq;
        s->seq_node = mx_system_node_id(lm->sys);
    }
    pthread_mutex_unlock(&lm->mu);
    set_deadline(s, sent_ms);
    if (mx_now_ms() >= atomic_load_explicit(&s->valid_until, memory_order_relaxed))
        return; /* the answer came too late to act on; the fence timer cleans up */
    struct mx_addr a;
    int rc = mx_spawn(lm->sys, &wrap_beh, s, &s->so, &a);
    if (rc == 0 && (rc = mx_register(lm->sys, s->name, a)) != 0)
        mx_actor_stop(lm->sys, a);
    if (rc != 0) {
        MX_ERROR("singleton %s: cannot start its actor: %s", s->name, mx_strerror(rc));
        atomic_store_explicit(&s->valid_until, 0, memory_order_relaxed);
        uv_timer_stop(&s->fence);
        return; /* we keep the lease until it expires; nobody acts in this epoch */
    }
    pthread_mutex_lock(&lm->mu);
    s->held = true;
    s->addr = a;
    snprintf(s->holder, sizeof s->holder, "%s", mx_system_node_name(lm->sys));
    s->holder_node = mx_system_node_id(lm->sys);
    pthread_mutex_unlock(&lm->mu);
    bump(&lm->st.leases_acquired);
    MX_INFO("singleton %s: acquired, epoch %llu, running here", s->name, (unsigned long long)seq);
    flush(s);
}

/* Record what Redis says about someone else's term. */
static void learn(struct single *s, const char *token, size_t tlen, uint64_t seq, int64_t ttl)
{
    mx_leases_t *lm = s->lm;
    if (seq)
        mx_epoch_admit(lm->sys, mx_epoch_make(s->sid, seq)); /* raise the fence first */
    char holder[64] = "";
    uint64_t node = 0;
    const char *slash = tlen ? memchr(token, '/', tlen) : NULL;
    if (slash && (size_t)(slash - token) < sizeof holder) {
        memcpy(holder, token, (size_t)(slash - token));
        holder[slash - token] = '\0';
        char hex[24];
        size_t hl = tlen - (size_t)(slash + 1 - token);
        if (hl < sizeof hex) {
            memcpy(hex, slash + 1, hl);
            hex[hl] = '\0';
            node = strtoull(hex, NULL, 16);
        }
    }
    pthread_mutex_lock(&lm->mu);
    if (seq > s->seq_max || (seq == s->seq_max && node)) {
        s->seq_max = seq;
        s->seq_node = node;
    }
    bool deposed = s->held && seq > (s->epoch & MX_EPOCH_SEQ_MASK);
    pthread_mutex_unlock(&lm->mu);
    if (deposed) {
        bump(&lm->st.leases_lost);
        stop_term(s, "deposed: a newer epoch was acquired");
    }
    pthread_mutex_lock(&lm->mu);
    if (!s->held) {
        snprintf(s->holder, sizeof s->holder, "%s", holder);
        s->holder_node = node == mx_system_node_id(lm->sys) ? 0 : node;
        s->view_ttl_ms = ttl > 0 ? ttl : 0;
        s->view_at_ms = mx_now_ms();
    }
    pthread_mutex_unlock(&lm->mu);
    if (node)
        flush(s);
}

/* ---- Redis commands (registry thread) ---- */

struct op {
    struct single *s;
    int64_t sent_ms;
    uint64_t seq; /* acquire waiting for WAIT: the epoch won */
};

static bool is_leaving(mx_leases_t *lm)
{
    pthread_mutex_lock(&lm->mu);
    bool l = lm->leaving;
    pthread_mutex_unlock(&lm->mu);
    return l;
}

static void release(struct single *s);
static void close_handles(mx_leases_t *lm);
static void wait_replica(struct single *s, uint64_t seq, int64_t sent_ms);

/* A command's callback ran: the manager may close once none is left. */
static void op_done(mx_leases_t *lm)
{
    if (--lm->ops == 0 && lm->closing)
        close_handles(lm);
}

static void on_acquire(mx_redis_t *rc, int status, const redisReply *rep, void *arg)
{
    struct op *op = arg;
    struct single *s = op->s;
    int64_t sent = op->sent_ms;
    free(op);
    s->inflight = false;
    if (status != 0 || s->lm->closing || rep->type != REDIS_REPLY_ARRAY || rep->elements < 4 ||
        rep->element[0]->type != REDIS_REPLY_INTEGER ||
        rep->element[2]->type != REDIS_REPLY_INTEGER) {
        op_done(s->lm); /* Redis away or odd answer: try at the next tick */
        return;
    }
    uint64_t seq = (uint64_t)rep->element[2]->integer;
    const redisReply *tok = rep->element[1];
    int64_t ttl = rep->element[3]->type == REDIS_REPLY_INTEGER ? rep->element[3]->integer : 0;
    if (rep->element[0]->integer == 1) {
        if (is_leaving(s->lm)) {
            pthread_mutex_lock(&s->lm->mu);
            s->lm->release_pending++;
            pthread_mutex_unlock(&s->lm->mu);
            release(s);
        } else {
            bool ext = rep->elements >= 6 && rep->element[4]->type == REDIS_REPLY_INTEGER &&
                       rep->element[5]->type == REDIS_REPLY_INTEGER;
            if (ext && rep->element[4]->integer)
                MX_WARN("singleton %s: Redis's epoch counter was %lld, not above the highest "
                        "epoch seen (%llu): Redis lost writes (failover or restart); bumped to "
                        "%llu",
                        s->name, rep->element[4]->integer, (unsigned long long)(seq - 1),
                        (unsigned long long)seq);
            if (ext && rep->element[5]->integer > 0)
                wait_replica(s, seq, sent); /* keeps s->inflight until it answers */
            else
                start_term(s, seq, sent);
        }
    } else {
        learn(s, tok->type == REDIS_REPLY_STRING ? tok->str : "",
              tok->type == REDIS_REPLY_STRING ? tok->len : 0, seq, ttl);
    }
    op_done(s->lm);
}

/* The acquire is in Redis; with replicas, one must have it before we act,
 * or a failover to a replica that missed it could hand the same epoch to
 * another node. WAIT's timeout is a quarter of the TTL (the term's clock
 * already runs). */
static void on_wait(mx_redis_t *rc, int status, const redisReply *rep, void *arg)
{
    struct op *op = arg;
    struct single *s = op->s;
    (void)rc;
    s->inflight = false;
    if (!s->lm->closing && is_leaving(s->lm)) { /* won while leaving: give it back now */
        pthread_mutex_lock(&s->lm->mu);
        s->lm->release_pending++;
        pthread_mutex_unlock(&s->lm->mu);
        release(s);
    } else if (!s->lm->closing) {
        if (status == 0 && rep->type == REDIS_REPLY_INTEGER && rep->integer >= 1)
            start_term(s, op->seq, op->sent_ms);
        else {
            bump(&s->lm->st.singleton_unreplicated);
            MX_WARN("singleton %s: no replica acknowledged epoch %llu within %u ms; not acting "
                    "(the next campaign tick tries again)",
                    s->name, (unsigned long long)op->seq, s->lm->ttl_ms / 4);
        }
    }
    free(op);
    op_done(s->lm);
}

static void wait_replica(struct single *s, uint64_t seq, int64_t sent_ms)
{
    mx_leases_t *lm = s->lm;
    char ms[16];
    snprintf(ms, sizeof ms, "%u", lm->ttl_ms / 4);
    const char *argv[] = {"WAIT", "1", ms};
    struct op *op = malloc(sizeof *op);
    if (!op)
        abort();
    *op = (struct op){.s = s, .sent_ms = sent_ms, .seq = seq};
    if (mx_redis_argv_timeout(mx_registry_redis(lm->reg), lm->ttl_ms / 4 + 500, on_wait, op, 3,
                              argv, NULL) == 0) {
        s->inflight = true;
        lm->ops++;
    } else {
        free(op);
    }
}

static void acquire(struct single *s)
{
    mx_leases_t *lm = s->lm;
    if (s->inflight)
        return;
    char ttl[16], floor[24];
    snprintf(ttl, sizeof ttl, "%u", lm->ttl_ms);
    uint64_t seen = mx_epoch_highest(lm->sys, s->sid); /* any holder's messages raise it */
    pthread_mutex_lock(&lm->mu);
    snprintf(floor, sizeof floor, "%llu",
             (unsigned long long)(seen > s->seq_max ? seen : s->seq_max));
    pthread_mutex_unlock(&lm->mu);
    const char *argv[] = {
        s->lease_key, s->epoch_key, lm->token, ttl, floor, mx_registry_channel(lm->reg), s->name};
    struct op *op = malloc(sizeof *op);
    if (!op)
        abort();
    op->s = s;
    op->sent_ms = mx_now_ms(); /* the term is measured from here, not from the answer */
    if (mx_redis_eval(mx_registry_redis(lm->reg), lm->s_acquire, on_acquire, op, 2, 7, argv,
                      NULL) == 0) {
        s->inflight = true;
        lm->ops++;
    } else {
        free(op);
    }
}

static void on_renew(mx_redis_t *rc, int status, const redisReply *rep, void *arg)
{
    struct op *op = arg;
    struct single *s = op->s;
    int64_t sent = op->sent_ms;
    free(op);
    s->inflight = false;
    pthread_mutex_lock(&s->lm->mu);
    bool held = s->held;
    pthread_mutex_unlock(&s->lm->mu);
    if (status != 0 || s->lm->closing || rep->type != REDIS_REPLY_INTEGER || !held) {
        op_done(s->lm); /* not renewed: the fence timer decides */
        return;
    }
    if (rep->integer == 1) {
        bump(&s->lm->st.leases_renewed);
        set_deadline(s, sent);
    } else {
        bump(&s->lm->st.leases_lost);
        stop_term(s, "lease lost: another node holds it");
    }
    op_done(s->lm);
}

static void renew(struct single *s)
{
    mx_leases_t *lm = s->lm;
    if (s->inflight)
        return;
    char ttl[16];
    snprintf(ttl, sizeof ttl, "%u", lm->ttl_ms);
    const char *argv[] = {s->lease_key, lm->token, ttl};
    struct op *op = malloc(sizeof *op);
    if (!op)
        abort();
    op->s = s;
    op->sent_ms = mx_now_ms();
    if (mx_redis_eval(mx_registry_redis(lm->reg), lm->s_renew, on_renew, op, 1, 3, argv, NULL) ==
        0) {
        s->inflight = true;
        lm->ops++;
    } else {
        free(op);
    }
}

static void release_done(mx_leases_t *lm)
{
    pthread_mutex_lock(&lm->mu);
    if (--lm->release_pending == 0)
        pthread_cond_broadcast(&lm->cv);
    pthread_mutex_unlock(&lm->mu);
}

static void on_release(mx_redis_t *rc, int status, const redisReply *rep, void *arg)
{
    struct single *s = arg;
    if (status == 0 && rep->type == REDIS_REPLY_INTEGER && rep->integer == 1) {
        bump(&s->lm->st.leases_released);
        MX_INFO("singleton %s: lease released", s->name);
    }
    release_done(s->lm);
    op_done(s->lm);
}

static void release(struct single *s)
{
    mx_leases_t *lm = s->lm;
    const char *argv[] = {s->lease_key, lm->token, mx_registry_channel(lm->reg), s->name};
    if (mx_redis_eval(mx_registry_redis(lm->reg), lm->s_release, on_release, s, 1, 4, argv, NULL) ==
        0)
        lm->ops++;
    else
        release_done(lm);
}

static void on_campaign(uv_timer_t *t)
{
    mx_leases_t *lm = t->data;
    if (is_leaving(lm))
        return;
    for (int i = 0; i < lm->n; i++) {
        struct single *s = &lm->s[i];
        pthread_mutex_lock(&lm->mu);
        bool held = s->held;
        pthread_mutex_unlock(&lm->mu);
        if (held)
            renew(s);
        else
            acquire(s);
    }
}

static void on_sweep(uv_timer_t *t)
{
    mx_leases_t *lm = t->data;
    for (int i = 0; i < lm->n; i++)
        expire(&lm->s[i]);
}

/* "acquired <name> <token> <seq>" / "released <name>" on the events channel */
static void on_event(void *ctx, const char *p, size_t len)
{
    mx_leases_t *lm = ctx;
    char buf[320];
    if (len >= sizeof buf)
        return;
    memcpy(buf, p, len);
    buf[len] = '\0';
    char name[64], token[160];
    unsigned long long seq;
    if (sscanf(buf, "acquired %63s %159s %llu", name, token, &seq) == 3) {
        struct single *s = find(lm, name);
        if (s && strcmp(token, lm->token) != 0)
            learn(s, token, strlen(token), seq, lm->ttl_ms);
    } else if (sscanf(buf, "released %63s", name) == 1) {
        struct single *s = find(lm, name);
        if (!s || is_leaving(lm))
            return;
        pthread_mutex_lock(&lm->mu);
        bool held = s->held;
        s->holder[0] = '\0';
        if (!held)
            s->holder_node = 0;
        pthread_mutex_unlock(&lm->mu);
        if (!held)
            acquire(s); /* take over now, not at the next tick */
    }
}

static void start_on_thread(void *arg)
{
    mx_leases_t *lm = arg;
    uv_loop_t *loop = mx_registry_loop(lm->reg);
    mx_redis_t *rc = mx_registry_redis(lm->reg);
    mx_redis_script(rc, LUA_ACQUIRE, &lm->s_acquire);
    mx_redis_script(rc, LUA_RENEW, &lm->s_renew);
    mx_redis_script(rc, LUA_RELEASE, &lm->s_release);
    uv_timer_init(loop, &lm->campaign);
    lm->campaign.data = lm;
    uv_timer_init(loop, &lm->sweep);
    lm->sweep.data = lm;
    for (int i = 0; i < lm->n; i++) {
        uv_timer_init(loop, &lm->s[i].fence);
        lm->s[i].fence.data = &lm->s[i];
    }
    lm->handles_open = true;
    uv_timer_start(&lm->campaign, on_campaign, 0, lm->ttl_ms / 3);
    uv_timer_start(&lm->sweep, on_sweep, 100, 100);
}

int mx_leases_start(mx_leases_t *lm)
{
    struct mx_spawn_opts o = MX_SPAWN_OPTS_DEFAULT;
    o.name = ROUTER_NAME;
    int rc = mx_spawn(lm->sys, &router_beh, lm, &o, &lm->router);
    if (rc != 0)
        return rc;
    lm->started = true;
    return mx_registry_call(lm->reg, start_on_thread, lm);
}

bool mx_leases_holding(mx_leases_t *lm, const char *name)
{
    struct single *s = find(lm, name);
    if (!s)
        return false;
    pthread_mutex_lock(&lm->mu);
    bool held = s->held;
    pthread_mutex_unlock(&lm->mu);
    int64_t until = atomic_load_explicit(&s->valid_until, memory_order_relaxed);
    return held && until > 0 && mx_now_ms() < until;
}

uint32_t mx_leases_list(struct mx_lease *out, uint32_t max, void *ctx)
{
    mx_leases_t *lm = ctx;
    uint32_t n = 0;
    int64_t now = mx_now_ms();
    for (int i = 0; i < lm->n && n < max; i++) {
        struct single *s = &lm->s[i];
        struct mx_lease *x = &out[n++];
        memset(x, 0, sizeof *x);
        snprintf(x->name, sizeof x->name, "%s", s->name);
        int64_t until = atomic_load_explicit(&s->valid_until, memory_order_relaxed);
        pthread_mutex_lock(&lm->mu);
        if (s->held && until > now) {
            snprintf(x->holder, sizeof x->holder, "%s", s->holder);
            x->epoch = s->epoch;
            x->ttl_ms = until - now;
        } else {
            int64_t left = s->view_at_ms + s->view_ttl_ms - now;
            /* a node names itself only while it runs the singleton: a
             * lease still ours in Redis but not acted on shows no holder */
            if (s->holder[0] && left > 0 && !s->held &&
                strcmp(s->holder, mx_system_node_name(lm->sys)) != 0) {
                snprintf(x->holder, sizeof x->holder, "%s", s->holder);
                x->ttl_ms = left;
            }
            x->epoch = s->seq_max ? mx_epoch_make(s->sid, s->seq_max) : 0;
        }
        pthread_mutex_unlock(&lm->mu);
    }
    return n;
}

void mx_leases_stats(mx_leases_t *lm, struct mx_leases_stats *o)
{
#define LD(f, g) o->f = MX_METRIC_GET(&lm->st, g)
    LD(acquired, leases_acquired);
    LD(renewed, leases_renewed);
    LD(lost, leases_lost);
    LD(self_fenced, self_fenced);
    LD(released, leases_released);
    LD(fenced_drops, fenced_drops);
    LD(buffered, singleton_buffered);
    LD(buffer_full, singleton_buffer_full);
    LD(buffer_expired, singleton_buffer_expired);
    LD(forwarded, singleton_forwarded);
    LD(unreplicated, singleton_unreplicated);
#undef LD
}

/* Hand-over, step 1 (registry thread): stop campaigning and stop the
 * singletons we run, remembering their actors so the caller can wait for
 * their stop callbacks before the leases are released. */
static void leave_stop_on_thread(void *arg)
{
    mx_leases_t *lm = arg;
    if (lm->handles_open)
        uv_timer_stop(&lm->campaign);
    for (int i = 0; i < lm->n; i++) {
        struct single *s = &lm->s[i];
        pthread_mutex_lock(&lm->mu);
        lm->leave_was[i] = s->held;
        lm->leave_addr[i] = s->addr;
        pthread_mutex_unlock(&lm->mu);
        if (lm->leave_was[i])
            stop_term(s, "node leaving");
    }
    pthread_mutex_lock(&lm->mu);
    lm->stop_done = true;
    pthread_cond_broadcast(&lm->cv);
    pthread_mutex_unlock(&lm->mu);
}

/* Hand-over, step 2 (registry thread): release what step 1 stopped. */
static void leave_release_on_thread(void *arg)
{
    mx_leases_t *lm = arg;
    int n = 0;
    bool was[MX_LEASES_MAX];
    pthread_mutex_lock(&lm->mu);
    for (int i = 0; i < lm->n; i++)
        n += (was[i] = lm->leave_was[i]);
    lm->release_pending += n;
    pthread_mutex_unlock(&lm->mu);
    for (int i = 0; i < lm->n; i++)
        if (was[i])
            release(&lm->s[i]); /* compare-and-delete: a no-op if no longer ours */
    release_done(lm);
}

static void deadline_ts(struct timespec *ts, int64_t until_ms)
{
    int64_t left = until_ms - mx_now_ms();
    if (left < 0)
        left = 0;
    clock_gettime(CLOCK_REALTIME, ts);
    uint64_t ns = (uint64_t)ts->tv_nsec + (uint64_t)left * 1000000u;
    ts->tv_sec += (time_t)(ns / 1000000000u);
    ts->tv_nsec = (long)(ns % 1000000000u);
}

int mx_leases_handover(mx_leases_t *lm, uint32_t timeout_ms, struct mx_leases_handover *out)
{
    struct mx_leases_handover h = {0};
    int64_t t0 = mx_now_ms(), until = t0 + timeout_ms;
    int rc = 0;
    if (out)
        *out = h;
    if (!lm || !lm->started)
        return 0;
    pthread_mutex_lock(&lm->mu);
    if (lm->leaving) {
        pthread_mutex_unlock(&lm->mu);
        return 0;
    }
    lm->leaving = true;
    lm->stop_done = false;
    pthread_mutex_unlock(&lm->mu);
    if (mx_registry_call(lm->reg, leave_stop_on_thread, lm) != 0)
        return MX_ESTOPPED;
    struct timespec ts;
    deadline_ts(&ts, until);
    pthread_mutex_lock(&lm->mu);
    while (!lm->stop_done)
        if (pthread_cond_timedwait(&lm->cv, &lm->mu, &ts) != 0)
            break;
    bool stopped = lm->stop_done;
    struct mx_addr addr[MX_LEASES_MAX];
    bool was[MX_LEASES_MAX];
    int n = lm->n;
    for (int i = 0; i < n; i++) {
        was[i] = stopped && lm->leave_was[i];
        addr[i] = lm->leave_addr[i];
    }
    pthread_mutex_unlock(&lm->mu);
    if (!stopped)
        return MX_ETIMEDOUT; /* the registry thread is stuck: the leases expire by themselves */
    /* the singletons' stop callbacks (their work journaled) run before
     * another node may take over: wait until their actors are gone */
    for (int i = 0; i < n; i++) {
        if (!was[i])
            continue;
        h.held++;
        struct mx_actor_stats st;
        while (addr[i].actor && mx_actor_stats(lm->sys, addr[i], &st) == 0 && mx_now_ms() < until)
            usleep(2000);
        if (addr[i].actor && mx_actor_stats(lm->sys, addr[i], &st) == 0)
            h.still_running++;
        else
            h.stopped++;
    }
    h.stop_ms = mx_now_ms() - t0;
    uint64_t rel0 =
        atomic_load_explicit(&lm->st.leases_released, memory_order_relaxed); /* counter */
    pthread_mutex_lock(&lm->mu);
    lm->release_pending = 1; /* leave_release_on_thread's own share */
    pthread_mutex_unlock(&lm->mu);
    if (mx_registry_call(lm->reg, leave_release_on_thread, lm) != 0)
        return MX_ESTOPPED;
    deadline_ts(&ts, until > mx_now_ms() + 200 ? until : mx_now_ms() + 200);
    pthread_mutex_lock(&lm->mu);
    while (lm->release_pending > 0)
        if (pthread_cond_timedwait(&lm->cv, &lm->mu, &ts) != 0) {
            rc = MX_ETIMEDOUT;
            break;
        }
    pthread_mutex_unlock(&lm->mu);
    h.released =
        (uint32_t)(atomic_load_explicit(&lm->st.leases_released, memory_order_relaxed) - rel0);
    h.took_ms = mx_now_ms() - t0;
    if (out)
        *out = h;
    return rc ? rc : h.still_running ? MX_ETIMEDOUT : 0;
}

void mx_leases_leave(mx_leases_t *lm, uint32_t timeout_ms)
{
    mx_leases_handover(lm, timeout_ms, NULL);
}

static void rejoin_on_thread(void *arg)
{
    mx_leases_t *lm = arg;
    if (lm->handles_open && !lm->closing)
        uv_timer_start(&lm->campaign, on_campaign, 0, lm->ttl_ms / 3);
}

int mx_leases_rejoin(mx_leases_t *lm)
{
    if (!lm || !lm->started)
        return 0;
    pthread_mutex_lock(&lm->mu);
    bool was = lm->leaving;
    lm->leaving = false;
    pthread_mutex_unlock(&lm->mu);
    if (!was)
        return 0;
    int rc = mx_registry_call(lm->reg, rejoin_on_thread, lm);
    if (rc == 0)
        MX_INFO("leases: campaigning again (undrain)");
    return rc;
}

static void h_closed_none(mx_leases_t *lm)
{
    pthread_mutex_lock(&lm->mu);
    lm->closed = true;
    pthread_cond_broadcast(&lm->cv);
    pthread_mutex_unlock(&lm->mu);
}

static void h_closed(uv_handle_t *h)
{
    mx_leases_t *lm = h->data;
    if (--lm->closes_pending == 0)
        h_closed_none(lm);
}

static void close_handles(mx_leases_t *lm)
{
    if (!lm->handles_open) {
        h_closed_none(lm);
        return;
    }
    lm->handles_open = false;
    lm->closes_pending = 2 + lm->n;
    lm->campaign.data = lm;
    lm->sweep.data = lm;
    uv_close((uv_handle_t *)&lm->campaign, h_closed);
    uv_close((uv_handle_t *)&lm->sweep, h_closed);
    for (int i = 0; i < lm->n; i++) {
        lm->s[i].fence.data = lm;
        uv_close((uv_handle_t *)&lm->s[i].fence, h_closed);
    }
}

static void close_on_thread(void *arg)
{
    mx_leases_t *lm = arg;
    mx_registry_unlisten(lm->reg, on_event, lm); /* no event may reach lm after free */
    lm->closing = true;
    if (lm->ops == 0)
        close_handles(lm);
}

void mx_leases_free(mx_leases_t *lm)
{
    if (!lm)
        return;
    mx_metrics_unregister(lm->metrics_id);
    if (!lm->started)
        mx_registry_unlisten(lm->reg, on_event, lm); /* the registry thread never ran it */
    if (lm->started) {
        mx_leases_leave(lm, 1000);
        if (mx_registry_call(lm->reg, close_on_thread, lm) == 0) {
            pthread_mutex_lock(&lm->mu);
            while (!lm->closed)
                pthread_cond_wait(&lm->cv, &lm->mu);
            pthread_mutex_unlock(&lm->mu);
        }
    }
    for (int i = 0; i < lm->n; i++) {
        struct single *s = &lm->s[i];
        for (uint32_t k = 0; k < s->count; k++)
            mx_msg_free(s->buf[(s->head + k) % lm->buffer_msgs]);
        free(s->buf);
    }
    mx_remote_t *rem = mx_registry_remote(lm->reg);
    if (rem)
        mx_remote_set_epoch_check(rem, NULL, NULL); /* waits for a check in progress */
    pthread_cond_destroy(&lm->cv);
    pthread_mutex_destroy(&lm->mu);
    free(lm);
}
