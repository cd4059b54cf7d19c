/* mx_actor.c - schedulers, actors, mailboxes, request/reply, timers, offload.
 *
 * Scheduling token: an actor's `depth` counts the messages in both of its
 * lanes (plus one for a pending init). The producer whose increment takes
 * depth from 0 to 1 puts the actor on its scheduler's run queue; the
 * scheduler, after a turn that consumed k messages, subtracts k and puts the
 * actor back only if messages remain. So an actor is on at most one run
 * queue at a time and runs on one thread, without locks (Pony's scheme).
 *
 * Actor memory is type-stable: actors live in slabs that are never freed,
 * and a stopped actor's slot is reused with its generation bumped. An address
 * carries the generation, so a send that races with a stop lands in a slot
 * that is still valid memory and is dead-lettered there (generation
 * mismatch) instead of being delivered to a stranger or touching freed
 * memory. A slot is reused only by its own scheduler's spawns, and only after
 * the spawner takes the scheduling token (depth 0 -> 1), so a reused slot is
 * never run by two threads.
 */
#include "mx_actor.h"

#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#ifdef MX_SANITIZE_ADDRESS
#include <sanitizer/lsan_interface.h>
#endif
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "mx_alloc.h"
#include "mx_err.h"
#include "mx_log.h"
#include "mx_metrics.h"

#define SLAB_SHIFT 12
#define SLAB_SIZE (1u << SLAB_SHIFT)
#define SLAB_MASK (SLAB_SIZE - 1)
#define SLAB_BYTES (SLAB_SIZE * sizeof(struct mx_actor))
#define MAX_SLABS 4096u /* 16M actors */
#define MAX_TIMERS 1024u
#define MAX_PENDING 4096u
#define TURN_BUDGET 1024 /* actor turns per loop callback */
#define REG_BUCKETS 1024u
#define REG_MAX 65536u
#define FENCE_SLOTS 1024u /* singleton ids a node can fence; power of two */
#define PEEK_MAX 1000u

enum actor_status { ST_FREE = 0, ST_SPAWNING, ST_RUNNING, ST_STOPPING };

struct mx_timer {
    uv_timer_t h;
    struct mx_actor *a;
    uint64_t id;
    struct mx_msg *tmpl; /* owned */
    bool repeat;
    struct mx_timer *next;
};

struct mx_pending {
    uv_timer_t h;
    struct mx_actor *a;
    uint64_t corr;           /* random: a forger cannot guess it */
    struct mx_addr expect;   /* who may answer: node and actor (actor 0: any actor of the
                              * node, for requests sent by name) */
    struct mx_trace trace;   /* of the request: its timeout carries it */
    struct mx_pending *next; /* hash chain */
};

/* Per-actor data that idle actors do not need; allocated on first use. */
struct mx_actor_ext {
    struct mx_timer *timers;
    uint32_t ntimers;
    uint64_t next_timer_id;
    struct mx_pending **ptab; /* open hash of outstanding requests */
    uint32_t ptab_size;       /* power of two */
    uint32_t npending;
    uint64_t next_corr;
    uint64_t epoch;
    int64_t restart_at[16]; /* ms of recent restarts, ring */
    uint8_t restart_n;
};

/* Fields grouped by who writes them: what every send writes first, then
 * what producers and the owner read and rarely write, then the owner's,
 * then the counters. The consumer's per-message reads (status, gen) are
 * not next to depth and mb_head, which every send writes. The groups are
 * not padded to cache lines: 64-byte alignment (256 bytes) put an idle
 * actor past the 256-byte budget, and measured no faster. Slabs are
 * mapped directly (see take_slot), so where each actor's groups fall is
 * the same in every process. */
struct mx_actor {
    /* -- written by producers on any thread (and by the owner once per
     * turn: depth, oldest_ms, handled, dropped) -- */
    _Atomic(struct mx_mnode *) mb_head;  /* user lane, producers' end */
    _Atomic(struct mx_mnode *) ctl_head; /* control lane, producers' end */
    _Atomic int64_t depth;               /* messages in both lanes (+1 pending init): token */
    _Atomic int64_t bytes;               /* user-lane bytes charged (cap_bytes > 0) */
    _Atomic int64_t oldest_ms;           /* enqueue time of the oldest pending message */
    _Atomic uint32_t evict;              /* drop-oldest: messages the consumer must drop */
    _Atomic uint32_t refused;            /* sends refused or dropped at the door */
    _Atomic uint64_t handled;            /* owner writes (relaxed load+store), anyone reads */
    _Atomic uint64_t dropped;
    /* -- read by producers and the owner, written rarely (spawn, stop) -- */
    _Atomic(const struct mx_behaviour *) beh;
    void *state;
    void *arg;
    _Atomic uint32_t gen;       /* incarnation; bumped when the actor stops */
    _Atomic uint32_t cap_msgs;  /* set at spawn */
    _Atomic uint32_t cap_bytes; /* set at spawn; 0 = none */
    uint32_t idx;               /* slot index, >= 1 */
    _Atomic uint8_t policy;     /* enum mx_overflow */
    _Atomic uint8_t status;     /* enum actor_status (owner writes; others read) */
    _Atomic uint8_t named;      /* has a registered name */
    uint8_t max_restarts;
    uint16_t sched; /* fixed for the slot's life */
    uint16_t restart_window_s;
    /* -- owner thread (or the spawner while it holds the token) -- */
    struct mx_mnode *mb_tail;
    struct mx_mnode mb_stub;
    struct mx_mnode *ctl_tail;
    struct mx_mnode ctl_stub;
    struct mx_mnode rq_node; /* run queue link */
    struct mx_actor_ext *ext;
    struct mx_actor *free_next; /* scheduler free list; under free_lock */
    uint8_t inited;
    uint8_t spawn_tok; /* the spawner's token is still to be consumed */
    /* -- counters: owner writes (relaxed load+store), anyone reads -- */
    _Atomic uint32_t restarts;
    _Atomic uint32_t errors;
    _Atomic uint32_t hwm;
    _Atomic uint32_t hist[MX_HIST_BUCKETS];
}; /* 232 bytes */

struct mx_sched {
    _Atomic(struct mx_mnode *) rq_head; /* producers' end of the run queue */
    /* 1 from just before the loop may block in epoll until it wakes again:
     * only then must a producer on another thread pay for uv_async_send */
    _Atomic int sleeping;
    char pad_[64 - sizeof(void *) - sizeof(int)];
    struct mx_mnode *rq_tail; /* owner */
    struct mx_mnode rq_stub;
    /* owner: actors made runnable by this scheduler's own thread, FIFO. A
     * send between two actors of one scheduler (and a re-queue after a
     * turn) appends here with plain stores: the shared run queue's two
     * exchanges per hop (push, and re-pushing the stub when the pop empties
     * it) were a third of a same-scheduler ping-pong's atomic operations */
    struct mx_mnode *lq_head, *lq_tail;
    uint64_t turn_ns; /* owner: when the last turn ended (its clock read) */
    uv_loop_t loop;
    uv_async_t wake;
    uv_idle_t idle;
    uv_prepare_t prep;    /* spins briefly before the loop would block */
    uv_check_t check;     /* clears sleeping after every poll */
    int64_t last_wake_ns; /* owner: the last wake-up from another thread */
    int64_t now_ms;       /* owner: mx_now_ms() read once per run_some */
    uint8_t spin_misses;  /* owner: spins in a row that found no work (<= 5) */
    pthread_t thread;
    int idx;
    mx_system_t *sys;
    _Atomic bool stopping;
    pthread_mutex_t free_lock;
    struct mx_actor *free_list; /* stopped slots owned by this scheduler */
    _Atomic uint64_t wakeups;
    _Atomic uint64_t turns;
};

struct reg_entry {
    char name[MX_NAME_MAX + 1];
    struct mx_addr addr;
    struct reg_entry *next;
};

struct offload_job {
    mx_offload_fn fn;
    void *arg;
    struct mx_addr to;
    uint64_t id;
    struct mx_trace trace; /* of the handler that offloaded it */
};

struct mx_system {
    char node_name[64];
    uint64_t node_id;
    int nsched;
    struct mx_sched *scheds;
    uint32_t default_cap;
    uint32_t max_actors;
    _Atomic uint32_t rr;   /* round-robin spawn cursor */
    _Atomic bool stopping; /* no more spawns or outside sends */
    /* actor slabs: slabs[i] is published once (release) and never freed */
    _Atomic(struct mx_actor *) slabs[MAX_SLABS];
    pthread_mutex_t arena_lock;
    uint32_t arena_next;         /* next never-used slot index - 1; under arena_lock */
    _Atomic uint32_t arena_used; /* slots ever handed out (for walks) */
    _Atomic uint64_t live;
    _Atomic uint64_t slab_bytes; /* actor slabs mapped (never unmapped before mx_system_free) */
    _Atomic uint64_t spawned;
    _Atomic uint64_t deadletters[MX_DL_COUNT]; /* registered: dl_desc */
    int metrics_ids[2 + MX_MAX_SCHEDULERS];    /* deadletters, system, sched-N (0 refused) */
    /* names */
    pthread_mutex_t reg_lock;
    struct reg_entry *reg[REG_BUCKETS];
    uint32_t reg_count;
    /* offload pool: bounded ring of jobs */
    pthread_mutex_t off_lock;
    pthread_cond_t off_cond;
    struct offload_job *off_ring;
    uint32_t off_cap, off_head, off_count;
    bool off_stop;
    int off_nthreads;
    pthread_t *off_threads;
    _Atomic uint64_t off_refused;
    _Atomic uint64_t off_done;
    /* remote transport hook: set before traffic, read by every remote send */
    _Atomic(const struct mx_remote_ops *) remote_ops;
    _Atomic(void *) remote_ctx;
    /* epoch fence: per singleton id (top bits) the highest epoch seen; open
     * addressing on the id, a slot is claimed once (0 -> epoch) and only grows */
    _Atomic uint64_t fence[FENCE_SLOTS];
};

static __thread struct mx_sched *t_sched; /* scheduler of this thread, or NULL */
static __thread struct mx_trace t_trace;  /* trace this thread works for (mx_trace_enter) */
static __thread bool t_traced;            /* t_trace is not all zero */
static __thread char t_trace_hex[33];     /* t_trace's id in hex, what log lines carry */

static const char *dl_names[] = {
#define MX_DL_STR(n, s) s,
    MX_DL_MAP(MX_DL_STR)
#undef MX_DL_STR
};

const char *mx_dl_name(enum mx_dl_reason r)
{
    return (unsigned)r < MX_DL_COUNT ? dl_names[r] : "unknown";
}

/* The dead-letter counters in the metrics registry (mx_metrics.h): written
 * by every thread (relaxed fetch_add), one family mx_deadletters_total with
 * a reason label, actor "deadletters", instance the node's name. */
#define MX_DL_DESC(n, s)                                                                           \
    {s,                                                                                            \
     "messages that could not be delivered, by reason",                                            \
     MX_METRIC_COUNTER,                                                                            \
     MX_DL_##n * sizeof(_Atomic uint64_t),                                                         \
     "",                                                                                           \
     "reason=\"" s "\""},
static const struct mx_metric_desc dl_desc[] = {MX_DL_MAP(MX_DL_DESC)};
#undef MX_DL_DESC

/* The system's and each scheduler's counters, from the fields they already
 * keep (actor "system", instance the node's name; actor "scheduler",
 * instance sched-N). */
static const struct mx_metric_desc sys_desc[] = {
    {"live_actors", "actors alive", MX_METRIC_GAUGE, offsetof(struct mx_system, live)},
    {"actor_slab_bytes", "bytes mapped for actor slots (256 per slot, 4,096 slots per slab)",
     MX_METRIC_GAUGE, offsetof(struct mx_system, slab_bytes)},
    {"spawned", "actors spawned", MX_METRIC_COUNTER, offsetof(struct mx_system, spawned)},
    {"offload_refused", "offload jobs refused: the queue was full", MX_METRIC_COUNTER,
     offsetof(struct mx_system, off_refused)},
    {"offload_done", "offload jobs done", MX_METRIC_COUNTER, offsetof(struct mx_system, off_done)},
};
static const struct mx_metric_desc sched_desc[] = {
    {"wakeups", "loop wake-ups sent to this scheduler (uv_async_send)", MX_METRIC_COUNTER,
     offsetof(struct mx_sched, wakeups)},
    {"turns", "actor turns this scheduler ran", MX_METRIC_COUNTER,
     offsetof(struct mx_sched, turns)},
};

static void register_metrics(mx_system_t *sys)
{
    sys->metrics_ids[0] =
        mx_metrics_register("deadletters", sys->node_name, dl_desc, MX_DL_COUNT, sys->deadletters);
    sys->metrics_ids[1] = mx_metrics_register("system", sys->node_name, sys_desc,
                                              sizeof sys_desc / sizeof *sys_desc, sys);
    for (int i = 0; i < sys->nsched; i++) {
        char inst[32];
        snprintf(inst, sizeof inst, "sched-%d", i);
        sys->metrics_ids[2 + i] = mx_metrics_register(
            "scheduler", inst, sched_desc, sizeof sched_desc / sizeof *sched_desc, &sys->scheds[i]);
    }
}

/* ---- small helpers ---- */

int64_t mx_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t mx_unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* owner-only counter bump: relaxed load + store, no locked instruction */
#define OWN_ADD(field, n)                                                                          \
    atomic_store_explicit(&(field), atomic_load_explicit(&(field), memory_order_relaxed) + (n),    \
                          memory_order_relaxed)

static void count_dl(mx_system_t *sys, enum mx_dl_reason r)
{
    /* relaxed: a statistic */
    atomic_fetch_add_explicit(&sys->deadletters[r], 1, memory_order_relaxed);
}

static inline struct mx_actor *actor_of_rq(struct mx_mnode *n)
{
    return (struct mx_actor *)((char *)n - offsetof(struct mx_actor, rq_node));
}

static inline struct mx_addr addr_of(const mx_system_t *sys, const struct mx_actor *a)
{
    uint32_t gen = atomic_load_explicit(&a->gen, memory_order_relaxed);
    return (struct mx_addr){sys->node_id, ((uint64_t)gen << 32) | a->idx};
}

static struct mx_actor *slot(mx_system_t *sys, uint32_t idx)
{
    if (idx == 0 || idx > MAX_SLABS * SLAB_SIZE)
        return NULL;
    /* acquire: pairs with the release that published the slab */
    struct mx_actor *slab =
        atomic_load_explicit(&sys->slabs[(idx - 1) >> SLAB_SHIFT], memory_order_acquire);
    return slab ? &slab[(idx - 1) & SLAB_MASK] : NULL;
}

/* The live actor at addr on this node, or NULL. The result may stop at any
 * moment; delivery re-checks the generation on the consumer side. */
static struct mx_actor *lookup(mx_system_t *sys, struct mx_addr addr)
{
    if (addr.node != sys->node_id)
        return NULL;
    struct mx_actor *a = slot(sys, (uint32_t)addr.actor);
    if (!a)
        return NULL;
    /* acquire: a matching generation means the spawn's writes are visible */
    if (atomic_load_explicit(&a->gen, memory_order_acquire) != (uint32_t)(addr.actor >> 32))
        return NULL;
    if (atomic_load_explicit(&a->status, memory_order_relaxed) == ST_FREE)
        return NULL;
    return a;
}

/* ---- scheduling ---- */

static void on_idle(uv_idle_t *h);

/* owner thread: append a to the local run queue */
static inline void lq_push(struct mx_sched *s, struct mx_actor *a)
{
    atomic_store_explicit(&a->rq_node.next, NULL, memory_order_relaxed);
    if (s->lq_tail)
        atomic_store_explicit(&s->lq_tail->next, &a->rq_node, memory_order_relaxed);
    else
        s->lq_head = &a->rq_node;
    s->lq_tail = &a->rq_node;
}

static inline struct mx_mnode *lq_pop(struct mx_sched *s)
{
    struct mx_mnode *n = s->lq_head;
    if (n) {
        s->lq_head = atomic_load_explicit(&n->next, memory_order_relaxed);
        if (!s->lq_head)
            s->lq_tail = NULL;
    }
    return n;
}

static void schedule(mx_system_t *sys, struct mx_actor *a)
{
    struct mx_sched *s = &sys->scheds[a->sched];
    if (t_sched == s) {
        lq_push(s, a);
        /* on our own loop: make sure it polls without blocking until the run
         * queues are empty (a no-op when the idle handle is already active) */
        uv_idle_start(&s->idle, on_idle);
    } else {
        mx_mpsc_push(&s->rq_head, &a->rq_node);
        /* Dekker with on_prepare: our push (the exchange on rq_head) and its
         * store of sleeping are each followed by a seq_cst fence before the
         * other's load, so either we see sleeping == 1 and wake it, or it
         * sees rq_head moved and does not block */
        atomic_thread_fence(memory_order_seq_cst);
        if (atomic_load_explicit(&s->sleeping, memory_order_relaxed)) {
            /* relaxed: a statistic */
            atomic_fetch_add_explicit(&s->wakeups, 1, memory_order_relaxed);
            uv_async_send(&s->wake);
        }
    }
}

/* The mailbox-age clock: on a scheduler thread the time read at the start
 * of its current run_some (the coarse clock's own resolution is ~4 ms, and
 * a run_some is far shorter), elsewhere a fresh read. */
static inline int64_t age_clock_ms(void)
{
    return t_sched ? t_sched->now_ms : mx_now_ms();
}

/* Enqueue m on a's lane; schedule a when this makes it runnable. Returns 0
 * (m taken, possibly dropped-newest and counted) or MX_EFULL (m not taken). */
static int enqueue(mx_system_t *sys, struct mx_actor *a, struct mx_msg *m, bool ctl)
{
    int64_t d;
    if (ctl) {
        /* acq_rel: taking the token (0 -> 1) must see the slot's current state */
        d = atomic_fetch_add_explicit(&a->depth, 1, memory_order_acq_rel);
        mx_mpsc_push(&a->ctl_head, &m->node);
    } else {
        uint32_t cap = atomic_load_explicit(&a->cap_msgs, memory_order_relaxed);
        uint32_t capb = atomic_load_explicit(&a->cap_bytes, memory_order_relaxed);
        uint8_t pol = atomic_load_explicit(&a->policy, memory_order_relaxed);
        m->acct_bytes = 0;
        if (capb && pol != MX_OVERFLOW_DROP_OLDEST) {
            uint32_t sz = mx_msg_size(m);
            /* relaxed: the byte budget is not a scheduling token */
            int64_t b = atomic_fetch_add_explicit(&a->bytes, sz, memory_order_relaxed);
            if (b + sz > capb) {
                atomic_fetch_sub_explicit(&a->bytes, sz, memory_order_relaxed);
                goto out_full;
            }
            m->acct_bytes = sz;
        }
        d = atomic_load_explicit(&a->depth, memory_order_relaxed);
        for (;;) {
            if (d >= (int64_t)cap) {
                /* drop-oldest keeps accepting up to twice the capacity and has the
                 * consumer drop the surplus oldest first; past that it refuses */
                if (pol != MX_OVERFLOW_DROP_OLDEST || d >= 2 * (int64_t)cap)
                    goto out_unbytes;
            }
            /* acq_rel: as above; the CAS keeps depth within the cap exactly */
            if (atomic_compare_exchange_weak_explicit(&a->depth, &d, d + 1, memory_order_acq_rel,
                                                      memory_order_relaxed))
                break;
        }
        if (d >= (int64_t)cap) /* relaxed: consumed by the owner at its next turn */
            atomic_fetch_add_explicit(&a->evict, 1, memory_order_relaxed);
        m->enq_ms = age_clock_ms();
        mx_mpsc_push(&a->mb_head, &m->node);
    }
    if (d == 0) {
        /* relaxed: statistic; ordered after the consumer's own store by depth */
        atomic_store_explicit(&a->oldest_ms, age_clock_ms(), memory_order_relaxed);
        schedule(sys, a);
    }
    return 0;

out_unbytes:
    if (m->acct_bytes)
        atomic_fetch_sub_explicit(&a->bytes, m->acct_bytes, memory_order_relaxed);
    m->acct_bytes = 0;
out_full:
    /* relaxed: statistic */
    atomic_fetch_add_explicit(&a->refused, 1, memory_order_relaxed);
    if (atomic_load_explicit(&a->policy, memory_order_relaxed) == MX_OVERFLOW_DROP_NEWEST) {
        count_dl(sys, MX_DL_DROPPED_NEWEST);
        mx_msg_free(m);
        return 0;
    }
    count_dl(sys, MX_DL_MAILBOX_FULL);
    return MX_EFULL;
}

/* ---- per-actor extension: timers, requests, restarts ---- */

static struct mx_actor_ext *ext_of(struct mx_actor *a)
{
    if (!a->ext)
        a->ext = xcalloc(1, sizeof(*a->ext));
    return a->ext;
}

static void timer_closed(uv_handle_t *h)
{
    struct mx_timer *t = h->data;
    mx_msg_free(t->tmpl);
    free(t);
}

static void pending_closed(uv_handle_t *h)
{
    free(h->data);
}

static struct mx_pending *pending_take(struct mx_actor_ext *x, uint64_t corr)
{
    if (!x || !x->ptab)
        return NULL;
    struct mx_pending **pp = &x->ptab[corr & (x->ptab_size - 1)];
    for (; *pp; pp = &(*pp)->next) {
        if ((*pp)->corr == corr) {
            struct mx_pending *p = *pp;
            *pp = p->next;
            x->npending--;
            return p;
        }
    }
    return NULL;
}

static void pending_put(struct mx_actor_ext *x, struct mx_pending *p)
{
    if (!x->ptab || x->npending >= x->ptab_size) {
        uint32_t nsize = x->ptab_size ? x->ptab_size * 2 : 16;
        struct mx_pending **nt = xcalloc(nsize, sizeof(*nt));
        for (uint32_t i = 0; i < x->ptab_size; i++) {
            for (struct mx_pending *q = x->ptab[i], *nx; q; q = nx) {
                nx = q->next;
                q->next = nt[q->corr & (nsize - 1)];
                nt[q->corr & (nsize - 1)] = q;
            }
        }
        free(x->ptab);
        x->ptab = nt;
        x->ptab_size = nsize;
    }
    struct mx_pending **b = &x->ptab[p->corr & (x->ptab_size - 1)];
    p->next = *b;
    *b = p;
    x->npending++;
}

/* Deliver a runtime-made message to a on the control lane from a's own
 * thread (timers, timeouts). */
static void deliver_local_ctl(mx_system_t *sys, struct mx_actor *a, struct mx_msg *m)
{
    m->env.to = addr_of(sys, a);
    enqueue(sys, a, m, true);
}

static void on_timer(uv_timer_t *h)
{
    struct mx_timer *t = h->data;
    struct mx_actor *a = t->a;
    mx_system_t *sys = t_sched->sys;
    struct mx_msg *m = mx_msg_share(t->tmpl);
    deliver_local_ctl(sys, a, m);
    if (!t->repeat) {
        struct mx_actor_ext *x = a->ext;
        for (struct mx_timer **pp = &x->timers; *pp; pp = &(*pp)->next) {
            if (*pp == t) {
                *pp = t->next;
                x->ntimers--;
                break;
            }
        }
        uv_close((uv_handle_t *)&t->h, timer_closed);
    }
}

static void on_request_timeout(uv_timer_t *h)
{
    struct mx_pending *p = h->data;
    struct mx_actor *a = p->a;
    mx_system_t *sys = t_sched->sys;
    pending_take(a->ext, p->corr);
    struct mx_msg *m;
    if (mx_msg_encode(MX_T_sys_timeout, &(struct mx_m_sys_timeout){.corr = p->corr}, &m) == 0) {
        m->env.corr = p->corr;
        memcpy(m->env.trace_id, p->trace.trace_id, sizeof m->env.trace_id);
        memcpy(m->env.span_id, p->trace.span_id, sizeof m->env.span_id);
        deliver_local_ctl(sys, a, m);
    }
    uv_close((uv_handle_t *)&p->h, pending_closed);
}

/* Close everything the extension holds; free it. Owner thread. */
static void ext_release(struct mx_actor *a)
{
    struct mx_actor_ext *x = a->ext;
    if (!x)
        return;
    for (struct mx_timer *t = x->timers, *nx; t; t = nx) {
        nx = t->next;
        uv_close((uv_handle_t *)&t->h, timer_closed);
    }
    for (uint32_t i = 0; i < x->ptab_size; i++) {
        for (struct mx_pending *p = x->ptab[i], *nx; p; p = nx) {
            nx = p->next;
            uv_close((uv_handle_t *)&p->h, pending_closed);
        }
    }
    free(x->ptab);
    free(x);
    a->ext = NULL;
}

/* ---- actor lifecycle on the owner thread ---- */

static void reg_remove_addr(mx_system_t *sys, struct mx_addr addr);
static bool valid_name(const char *name);

/* Stop a: run its stop callback, release timers and requests, unregister
 * its names and retire the slot (generation bump). Queued messages are
 * drained by run_actor as dead letters once status is ST_FREE. */
static void finalize(mx_system_t *sys, struct mx_actor *a)
{
    const struct mx_behaviour *b = atomic_load_explicit(&a->beh, memory_order_relaxed);
    struct mx_addr self = addr_of(sys, a);
    if (a->inited && b->stop)
        b->stop(a, a->state);
    a->inited = 0;
    a->state = NULL;
    ext_release(a);
    if (atomic_load_explicit(&a->named, memory_order_relaxed)) {
        reg_remove_addr(sys, self);
        atomic_store_explicit(&a->named, 0, memory_order_relaxed);
    }
    /* release: a sender that sees the new generation sees the slot retired */
    atomic_fetch_add_explicit(&a->gen, 1, memory_order_release);
    atomic_store_explicit(&a->status, ST_FREE, memory_order_release);
    /* relaxed: statistic */
    atomic_fetch_sub_explicit(&sys->live, 1, memory_order_relaxed);
    struct mx_sched *s = &sys->scheds[a->sched];
    pthread_mutex_lock(&s->free_lock);
    a->free_next = s->free_list;
    s->free_list = a;
    pthread_mutex_unlock(&s->free_lock);
}

static int run_init(struct mx_actor *a)
{
    const struct mx_behaviour *b = atomic_load_explicit(&a->beh, memory_order_relaxed);
    void *st = NULL;
    int rc = b->init ? b->init(a, a->arg, &st) : 0;
    if (rc < 0) {
        OWN_ADD(a->errors, 1);
        return rc;
    }
    a->state = st;
    a->inited = 1;
    return 0;
}

/* A handler failed: restart per policy, or stop the actor. */
static void on_handler_error(mx_system_t *sys, struct mx_actor *a, int rc)
{
    const struct mx_behaviour *b = atomic_load_explicit(&a->beh, memory_order_relaxed);
    OWN_ADD(a->errors, 1);
    struct mx_actor_ext *x = ext_of(a);
    int64_t now = mx_now_ms();
    uint8_t maxr = a->max_restarts;
    if (maxr > 0 && x->restart_n >= maxr) {
        /* the oldest of the last maxr restarts: too recent means too many */
        int64_t oldest = x->restart_at[(x->restart_n - maxr) % 16];
        if (now - oldest < (int64_t)a->restart_window_s * 1000)
            maxr = 0;
    }
    if (maxr == 0) {
        MX_ERROR("actor %s stopped: handler error %s and restart limit (%u in %us) reached",
                 b->name, mx_errname(rc), a->max_restarts, a->restart_window_s);
        atomic_store_explicit(&a->status, ST_STOPPING, memory_order_relaxed);
        return;
    }
    x->restart_at[x->restart_n % 16] = now;
    x->restart_n++;
    MX_WARN("actor %s restarting after handler error %s", b->name, mx_errname(rc));
    if (a->inited && b->stop)
        b->stop(a, a->state);
    a->inited = 0;
    a->state = NULL;
    OWN_ADD(a->restarts, 1);
    if (run_init(a) < 0) {
        MX_ERROR("actor %s stopped: init failed on restart", b->name);
        atomic_store_explicit(&a->status, ST_STOPPING, memory_order_relaxed);
    }
}

static void dead(mx_system_t *sys, struct mx_actor *a, struct mx_msg *m, enum mx_dl_reason r)
{
    count_dl(sys, r);
    if (a)
        OWN_ADD(a->dropped, 1);
    mx_msg_free(m);
}

/* A request from mx_actor_peek: shared by the caller and the message. */
struct peek_req {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    _Atomic int refs; /* caller + message */
    bool done;        /* under mu */
    bool served;      /* under mu: out holds the copies */
    uint32_t max, n;
    struct mx_msg **out;
};

static void peek_unref(struct peek_req *r)
{
    /* acq_rel: the last owner sees every write of the other */
    if (atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (uint32_t i = 0; i < r->n; i++)
        mx_msg_free(r->out[i]);
    free(r->out);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r);
}

/* ptr_free of the peek message: runs whether or not the actor served it */
static void peek_msg_release(void *p)
{
    struct peek_req *r = p;
    pthread_mutex_lock(&r->mu);
    r->done = true;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
    peek_unref(r);
}

/* Copy the first pending user-lane messages. Owner thread: the consumer may
 * walk its own queue from the tail along published next links. */
static void peek_serve(struct mx_actor *a, struct peek_req *r)
{
    uint32_t k = 0;
    struct mx_msg **out = xcalloc(r->max ? r->max : 1, sizeof(*out));
    struct mx_mnode *n = a->mb_tail;
    while (n && k < r->max) {
        if (n != &a->mb_stub)
            out[k++] = mx_msg_share((struct mx_msg *)n);
        /* acquire: pairs with the producer's release store of next */
        n = atomic_load_explicit(&n->next, memory_order_acquire);
    }
    pthread_mutex_lock(&r->mu);
    r->out = out;
    r->n = k;
    r->served = true;
    pthread_mutex_unlock(&r->mu);
}

/* Handle one message popped from a's lanes. Returns true when it reached
 * the handler. */
static bool dispatch(mx_system_t *sys, struct mx_actor *a, struct mx_msg *m, bool ctl)
{
    uint8_t st = atomic_load_explicit(&a->status, memory_order_relaxed);
    if (m->acct_bytes)
        atomic_fetch_sub_explicit(&a->bytes, m->acct_bytes, memory_order_relaxed);
    if (st != ST_RUNNING) {
        dead(sys, a, m, MX_DL_STOPPED); /* queued when the actor stopped */
        return false;
    }
    if ((uint32_t)(m->env.to.actor >> 32) != atomic_load_explicit(&a->gen, memory_order_relaxed)) {
        dead(sys, a, m, MX_DL_NO_ACTOR); /* meant for an earlier incarnation */
        return false;
    }
    if (m->env.type == MX_T_cl_peek && ctl) {
        peek_serve(a, m->ptr);
        mx_msg_free(m);
        return false;
    }
    if (m->env.type == MX_T_sys_stop && ctl) {
        atomic_store_explicit(&a->status, ST_STOPPING, memory_order_relaxed);
        mx_msg_free(m);
        return false;
    }
    /* policy first: evict sits on the producers' line, and reading it for
     * every message would pull that line over from the sending core */
    if (!ctl && atomic_load_explicit(&a->policy, memory_order_relaxed) == MX_OVERFLOW_DROP_OLDEST &&
        atomic_load_explicit(&a->evict, memory_order_relaxed) > 0) {
        /* relaxed: only this thread decrements, so the value stays >= 0 */
        atomic_fetch_sub_explicit(&a->evict, 1, memory_order_relaxed);
        dead(sys, a, m, MX_DL_DROPPED_OLDEST);
        return false;
    }
    if (m->env.deadline_ms && mx_unix_ms() > m->env.deadline_ms) {
        dead(sys, a, m, MX_DL_DEADLINE);
        return false;
    }
    if (m->env.flags & MX_ENVF_REPLY) {
        struct mx_pending *p = pending_take(a->ext, m->env.corr);
        if (!p) {
            dead(sys, a, m, MX_DL_LATE_REPLY);
            return false;
        }
        if (m->env.from.node != p->expect.node ||
            (p->expect.actor && m->env.from.actor != p->expect.actor)) {
            pending_put(a->ext, p); /* the real answer may still come */
            dead(sys, a, m, MX_DL_WRONG_RESPONDER);
            return false;
        }
        uv_timer_stop(&p->h);
        uv_close((uv_handle_t *)&p->h, pending_closed);
    }
    const struct mx_behaviour *b = atomic_load_explicit(&a->beh, memory_order_relaxed);
    /* the handler runs in its message's trace; the common case (no trace
     * before, none in the message) costs one test */
    static const struct mx_trace none;
    struct mx_trace saved = none, tr;
    bool had = t_traced;
    if (had)
        saved = t_trace;
    mx_log_set_context(t_sched->idx, b->name, NULL);
    if (mx_env_has_trace(&m->env)) {
        mx_trace_of(&m->env, &tr);
        mx_trace_leave(&tr);
    } else if (had) {
        mx_trace_leave(&none);
    }
    int rc = b->receive(a, a->state, m);
    if (had || t_traced)
        mx_trace_leave(&saved);
    mx_log_set_context(t_sched->idx, NULL, NULL);
    mx_msg_free(m);
    if (rc < 0)
        on_handler_error(sys, a, rc);
    return true;
}

static int hist_bucket(uint64_t ns)
{
    uint64_t us = ns / 1000;
    int b = us ? 64 - __builtin_clzll(us) : 0; /* bit length: <1 us is 0, 1 us is 1 */
    return b < MX_HIST_BUCKETS - 1 ? b : MX_HIST_BUCKETS - 1;
}

/* Spin before sleeping. While other threads are sending to this scheduler
 * (a wake-up came within SPIN_HINT_NS), the loop polls its run queue for up
 * to SPIN_NS before it blocks in epoll: a message that arrives meanwhile is
 * run at once instead of paying a full sleep and wake-up (tens of us on a
 * VM). An idle scheduler, or one fed only by its own sockets and timers,
 * never spins. */
#define SPIN_NS 30000
#define SPIN_HINT_NS 1000000
#define HOT_NS 50000        /* longest a hot spin keeps I/O and timers waiting */
#define YIELD_AFTER_NS 2000 /* spin this long before yielding between looks */

/* now_ns as a signed count, for the spin's differences */
static int64_t mono_ns(void)
{
    return (int64_t)now_ns();
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* One turn of actor a: control lane first, then up to MX_BATCH messages. */
static void run_actor(mx_system_t *sys, struct mx_sched *s, struct mx_actor *a)
{
    int64_t n = 0; /* tokens consumed (messages popped, init) */
    uint64_t handled = 0;
    struct mx_mnode *node;
    uint64_t t0 = s->turn_ns; /* the previous turn's end: one clock read per turn */
    int64_t depth = atomic_load_explicit(&a->depth, memory_order_relaxed);
    if (depth > (int64_t)atomic_load_explicit(&a->hwm, memory_order_relaxed))
        atomic_store_explicit(&a->hwm, (uint32_t)depth, memory_order_relaxed);

    if (a->spawn_tok) {
        a->spawn_tok = 0;
        n++; /* the spawner's token */
    }
    if (atomic_load_explicit(&a->status, memory_order_relaxed) == ST_SPAWNING) {
        atomic_store_explicit(&a->status, ST_RUNNING, memory_order_relaxed);
        const struct mx_behaviour *b = atomic_load_explicit(&a->beh, memory_order_relaxed);
        mx_log_set_context(s->idx, b->name, NULL);
        if (run_init(a) < 0) {
            MX_ERROR("actor %s stopped: init failed", b->name);
            atomic_store_explicit(&a->status, ST_STOPPING, memory_order_relaxed);
        }
        mx_log_set_context(s->idx, NULL, NULL);
    }
    /* a turn takes at most the messages queued when it began (and at most
     * MX_BATCH): what arrives meanwhile, a message the actor sends itself
     * to yield above all, waits for its next turn, behind the other actors */
    int64_t limit = depth < MX_BATCH ? depth : MX_BATCH;
    for (int64_t i = 0;; i++) {
        /* the control lane goes first, and is checked before every user
         * message so a stop is not held up behind a full batch */
        while (mx_mpsc_peek(a->ctl_tail, &a->ctl_stub) &&
               (node = mx_mpsc_pop(&a->ctl_head, &a->ctl_tail, &a->ctl_stub))) {
            n++;
            handled += dispatch(sys, a, (struct mx_msg *)node, true);
            if (atomic_load_explicit(&a->status, memory_order_relaxed) == ST_STOPPING)
                finalize(sys, a);
        }
        uint8_t st = atomic_load_explicit(&a->status, memory_order_relaxed);
        if (st == ST_STOPPING) {
            finalize(sys, a);
            st = ST_FREE;
        }
        /* a live actor gets a batch; a stopped slot drains everything now */
        if (st != ST_FREE && i >= limit)
            break;
        node = mx_mpsc_pop(&a->mb_head, &a->mb_tail, &a->mb_stub);
        if (!node)
            break;
        n++;
        handled += dispatch(sys, a, (struct mx_msg *)node, false);
    }
    if (handled) {
        uint64_t t1 = now_ns();
        s->turn_ns = t1;
        uint64_t dt = t1 - t0;
        int bk = hist_bucket(dt / handled);
        OWN_ADD(a->hist[bk], (uint32_t)handled);
        OWN_ADD(a->handled, handled);
    }
    /* oldest pending message, stored before the token is released so that a
     * producer that next finds depth 0 overwrites it (see enqueue) */
    struct mx_mnode *next = mx_mpsc_peek(a->mb_tail, &a->mb_stub);
    atomic_store_explicit(&a->oldest_ms, next ? ((struct mx_msg *)next)->enq_ms : 0,
                          memory_order_relaxed);
    /* relaxed: statistic */
    atomic_fetch_add_explicit(&s->turns, 1, memory_order_relaxed);
    /* acq_rel: releases our writes to the next holder of the token; the
     * slot must not be touched after this when nothing is left */
    int64_t left = atomic_fetch_sub_explicit(&a->depth, n, memory_order_acq_rel) - n;
    if (left > 0)
        lq_push(s, a);
}

/* owner: move what other threads queued behind the local queue, so both
 * are served in arrival order within a run_some */
static void rq_splice(struct mx_sched *s)
{
    struct mx_mnode *n;
    while ((n = mx_mpsc_pop(&s->rq_head, &s->rq_tail, &s->rq_stub)))
        lq_push(s, actor_of_rq(n));
}

static void run_some(struct mx_sched *s)
{
    mx_system_t *sys = s->sys;
    int budget = TURN_BUDGET;
    struct mx_mnode *n = NULL;
    s->now_ms = mx_now_ms();
    s->turn_ns = now_ns();
    rq_splice(s);
    while (budget-- > 0) {
        if (!(n = lq_pop(s))) {
            rq_splice(s);
            if (!(n = lq_pop(s)))
                break;
        }
        run_actor(sys, s, actor_of_rq(n));
    }
    if (s->lq_head || mx_mpsc_peek(s->rq_tail, &s->rq_stub))
        uv_idle_start(&s->idle, on_idle); /* more to do: poll, don't block */
    else
        uv_idle_stop(&s->idle);
}

static void on_idle(uv_idle_t *h)
{
    run_some(h->data);
}

static void on_prepare(uv_prepare_t *h)
{
    struct mx_sched *s = h->data;
    if (uv_is_active((uv_handle_t *)&s->idle))
        return; /* the loop will not block anyway */
    int64_t now = mono_ns();
    if (now - s->last_wake_ns <= SPIN_HINT_NS) {
        /* each spin that found nothing halves the next one (down to 1/32):
         * on an oversubscribed machine the peer we wait for may not be
         * running, and spinning would only take its CPU */
        int64_t until = now + (SPIN_NS >> s->spin_misses);
        for (;;) {
            if (mx_mpsc_peek(s->rq_tail, &s->rq_stub)) {
                s->spin_misses = 0;
                run_some(s);
                int64_t t = mono_ns();
                s->last_wake_ns = t;
                if (uv_is_active((uv_handle_t *)&s->idle) || t - now > HOT_NS) {
                    /* more queued, or I/O and timers have waited HOT_NS:
                     * poll them without blocking, then come back here */
                    uv_idle_start(&s->idle, on_idle);
                    return;
                }
                /* the exchange is hot: keep spinning rather than pay a
                 * poll (an epoll_wait per hop) or a sleep */
                until = t + SPIN_NS;
                continue;
            }
            cpu_relax();
            int64_t t = mono_ns();
            if (t >= until)
                break;
            /* past the first microseconds, give the CPU away between looks:
             * on a machine with more runnable threads than cores the peer we
             * wait for may be queued behind us (a no-op on a quiet one) */
            if (t - until + SPIN_NS > YIELD_AFTER_NS)
                sched_yield();
        }
        if (s->spin_misses < 5)
            s->spin_misses++;
    }
    /* The loop may block now. Announce it, then look once more: a producer
     * that pushed before seeing sleeping == 1 has moved rq_head off the stub
     * (the queue is empty exactly when rq_head is the stub, see mx_mpsc.h).
     * relaxed store + seq_cst fence: pairs with the fence in schedule(). */
    atomic_store_explicit(&s->sleeping, 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&s->rq_head, memory_order_relaxed) != &s->rq_stub) {
        /* work arrived (or a push is half done): poll instead of blocking;
         * on_idle runs it on this same iteration's poll of timeout 0 */
        atomic_store_explicit(&s->sleeping, 0, memory_order_relaxed);
        uv_idle_start(&s->idle, on_idle);
    }
}

static void on_check(uv_check_t *h)
{
    struct mx_sched *s = h->data;
    /* relaxed: awake again; a producer that still sees 1 only sends a
     * wake-up that is not needed */
    atomic_store_explicit(&s->sleeping, 0, memory_order_relaxed);
}

static void close_any(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void on_wake(uv_async_t *h)
{
    struct mx_sched *s = h->data;
    s->last_wake_ns = mono_ns();
    run_some(s);
    /* acquire: pairs with the release store in mx_system_stop */
    if (atomic_load_explicit(&s->stopping, memory_order_acquire)) {
        /* drain what is left (dead letters), then close every handle */
        while (s->lq_head || mx_mpsc_peek(s->rq_tail, &s->rq_stub))
            run_some(s);
        uv_walk(&s->loop, close_any, NULL);
    }
}

static void *sched_main(void *arg)
{
    struct mx_sched *s = arg;
    t_sched = s;
    mx_log_set_context(s->idx, NULL, NULL);
    uv_run(&s->loop, UV_RUN_DEFAULT);
    t_sched = NULL;
    return NULL;
}

/* ---- offload pool ---- */

static void *offload_main(void *arg)
{
    mx_system_t *sys = arg;
    for (;;) {
        pthread_mutex_lock(&sys->off_lock);
        while (sys->off_count == 0 && !sys->off_stop)
            pthread_cond_wait(&sys->off_cond, &sys->off_lock);
        if (sys->off_count == 0 && sys->off_stop) {
            pthread_mutex_unlock(&sys->off_lock);
            return NULL;
        }
        struct offload_job job = sys->off_ring[sys->off_head];
        sys->off_head = (sys->off_head + 1) % sys->off_cap;
        sys->off_count--;
        pthread_mutex_unlock(&sys->off_lock);

        struct mx_trace saved;
        mx_trace_enter(&job.trace, &saved); /* the job's log lines and result carry it */
        struct mx_msg *res = job.fn(job.arg);
        if (!res) {
            struct mx_m_sys_offload_done d = {.status = MX_EINTERNAL};
            if (mx_msg_encode(MX_T_sys_offload_done, &d, &res) != 0)
                res = NULL;
        }
        if (res)
            mx_trace_stamp(res);
        mx_trace_leave(&saved);
        if (!res)
            continue;
        res->env.to = job.to;
        res->env.corr = job.id;
        /* relaxed: statistic */
        atomic_fetch_add_explicit(&sys->off_done, 1, memory_order_relaxed);
        struct mx_actor *a = lookup(sys, job.to);
        if (!a) {
            count_dl(sys, MX_DL_NO_ACTOR);
            mx_msg_free(res);
            continue;
        }
        enqueue(sys, a, res, true);
    }
}

int mx_offload(mx_actor_t *self, mx_offload_fn fn, void *arg, uint64_t *job)
{
    mx_system_t *sys = t_sched->sys;
    struct mx_actor_ext *x = ext_of(self);
    uint64_t id = ++x->next_corr;
    pthread_mutex_lock(&sys->off_lock);
    if (sys->off_count >= sys->off_cap || sys->off_stop) {
        pthread_mutex_unlock(&sys->off_lock);
        atomic_fetch_add_explicit(&sys->off_refused, 1, memory_order_relaxed);
        return MX_EFULL;
    }
    sys->off_ring[(sys->off_head + sys->off_count) % sys->off_cap] =
        (struct offload_job){fn, arg, addr_of(sys, self), id, t_trace};
    sys->off_count++;
    pthread_cond_signal(&sys->off_cond);
    pthread_mutex_unlock(&sys->off_lock);
    if (job)
        *job = id;
    return 0;
}

/* ---- spawn and stop ---- */

/* Take a slot for scheduler s with its scheduling token held (depth 1). */
static struct mx_actor *take_slot(mx_system_t *sys, struct mx_sched *s)
{
    struct mx_actor *a = NULL;
    pthread_mutex_lock(&s->free_lock);
    for (struct mx_actor **pp = &s->free_list; *pp; pp = &(*pp)->free_next) {
        int64_t zero = 0;
        /* acq_rel: owning the token excludes the scheduler from the slot */
        if (atomic_compare_exchange_strong_explicit(&(*pp)->depth, &zero, 1, memory_order_acq_rel,
                                                    memory_order_relaxed)) {
            a = *pp;
            *pp = a->free_next; /* a slot still draining stale mail is skipped */
            break;
        }
    }
    pthread_mutex_unlock(&s->free_lock);
    if (a)
        return a;

    pthread_mutex_lock(&sys->arena_lock);
    uint32_t i = sys->arena_next;
    if (i >= sys->max_actors) {
        pthread_mutex_unlock(&sys->arena_lock);
        return NULL;
    }
    struct mx_actor *slab =
        atomic_load_explicit(&sys->slabs[i >> SLAB_SHIFT], memory_order_relaxed);
    if (!slab) {
        /* a mapping of its own, page-aligned: where a slab came from the
         * heap instead (glibc serves a 950 KB block from the heap once a
         * freed mapping has raised its mmap threshold, e.g. in the second
         * actor system of a process), the actors sat at other offsets to
         * the cache lines, and cross-scheduler one-way ran 9M msg/s
         * instead of 12.5M */
        void *map = mmap(NULL, SLAB_BYTES, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
        slab = map == MAP_FAILED ? NULL : map;
#ifdef MX_SANITIZE_ADDRESS
        /* LeakSanitizer scans only the heap, stacks and globals: without
         * this, messages queued in a mailbox would look leaked */
        if (slab)
            __lsan_register_root_region(slab, SLAB_BYTES);
#endif
        if (!slab) {
            pthread_mutex_unlock(&sys->arena_lock);
            return NULL;
        }
        atomic_fetch_add_explicit(&sys->slab_bytes, SLAB_BYTES, memory_order_relaxed);
        for (uint32_t j = 0; j < SLAB_SIZE; j++) {
            struct mx_actor *x = &slab[j];
            x->idx = (i & ~SLAB_MASK) + j + 1;
            x->sched = UINT16_MAX;
            mx_mpsc_init(&x->mb_head, &x->mb_tail, &x->mb_stub);
            mx_mpsc_init(&x->ctl_head, &x->ctl_tail, &x->ctl_stub);
            atomic_init(&x->gen, 1);
        }
        /* release: publishes the initialised slab to lookup() */
        atomic_store_explicit(&sys->slabs[i >> SLAB_SHIFT], slab, memory_order_release);
    }
    sys->arena_next = i + 1;
    a = &slab[i & SLAB_MASK];
    a->sched = (uint16_t)s->idx;
    atomic_store_explicit(&a->depth, 1, memory_order_relaxed);
    atomic_store_explicit(&sys->arena_used, i + 1, memory_order_release);
    pthread_mutex_unlock(&sys->arena_lock);
    return a;
}

static bool valid_name(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > MX_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (name[i] < 0x21 || name[i] > 0x7e)
            return false;
    return true;
}

int mx_spawn(mx_system_t *sys, const struct mx_behaviour *b, void *arg,
             const struct mx_spawn_opts *opts, struct mx_addr *out)
{
    static const struct mx_spawn_opts defaults = MX_SPAWN_OPTS_DEFAULT;
    if (!opts)
        opts = &defaults;
    if (!b || !b->receive || opts->sched >= sys->nsched || opts->max_restarts > 16 ||
        (opts->name && !valid_name(opts->name)))
        return MX_EINVAL;
    /* acquire: pairs with the release in mx_system_stop */
    if (atomic_load_explicit(&sys->stopping, memory_order_acquire))
        return MX_ESTOPPED;
    int si = opts->sched >= 0 ? opts->sched
                              : (int)(atomic_fetch_add_explicit(&sys->rr, 1, memory_order_relaxed) %
                                      (uint32_t)sys->nsched);
    struct mx_sched *s = &sys->scheds[si];
    struct mx_actor *a = take_slot(sys, s);
    if (!a)
        return MX_ELIMIT;
    /* we hold the token: nobody else touches the owner fields now */
    atomic_store_explicit(&a->beh, b, memory_order_relaxed);
    a->arg = arg;
    a->state = NULL;
    a->ext = NULL;
    a->inited = 0;
    a->spawn_tok = 1;
    a->max_restarts = opts->max_restarts;
    a->restart_window_s = opts->restart_window_s ? opts->restart_window_s : 5;
    atomic_store_explicit(&a->cap_msgs, opts->cap_msgs ? opts->cap_msgs : sys->default_cap,
                          memory_order_relaxed);
    atomic_store_explicit(&a->cap_bytes, opts->cap_bytes, memory_order_relaxed);
    atomic_store_explicit(&a->policy, (uint8_t)opts->overflow, memory_order_relaxed);
    atomic_store_explicit(&a->bytes, 0, memory_order_relaxed);
    atomic_store_explicit(&a->evict, 0, memory_order_relaxed);
    atomic_store_explicit(&a->refused, 0, memory_order_relaxed);
    atomic_store_explicit(&a->oldest_ms, 0, memory_order_relaxed);
    atomic_store_explicit(&a->handled, 0, memory_order_relaxed);
    atomic_store_explicit(&a->dropped, 0, memory_order_relaxed);
    atomic_store_explicit(&a->restarts, 0, memory_order_relaxed);
    atomic_store_explicit(&a->errors, 0, memory_order_relaxed);
    atomic_store_explicit(&a->hwm, 0, memory_order_relaxed);
    for (int i = 0; i < MX_HIST_BUCKETS; i++)
        atomic_store_explicit(&a->hist[i], 0, memory_order_relaxed);
    atomic_store_explicit(&a->named, 0, memory_order_relaxed);
    /* release: lookup() that sees a live status sees the fields above */
    atomic_store_explicit(&a->status, ST_SPAWNING, memory_order_release);
    struct mx_addr addr = addr_of(sys, a);
    /* relaxed: statistics */
    atomic_fetch_add_explicit(&sys->live, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&sys->spawned, 1, memory_order_relaxed);
    if (opts->name) {
        int rc = mx_register(sys, opts->name, addr);
        if (rc != 0) {
            /* retire the slot on its scheduler without running init */
            atomic_store_explicit(&a->status, ST_STOPPING, memory_order_release);
            schedule(sys, a);
            return rc;
        }
        atomic_store_explicit(&a->named, 1, memory_order_relaxed);
    }
    schedule(sys, a); /* the token taken by take_slot */
    if (out)
        *out = addr;
    return 0;
}

int mx_actor_stop(mx_system_t *sys, struct mx_addr addr)
{
    struct mx_actor *a = lookup(sys, addr);
    if (!a)
        return MX_ENOACTOR;
    struct mx_msg *m = mx_msg_new(MX_T_sys_stop, 0);
    m->env.to = addr;
    enqueue(sys, a, m, true);
    return 0;
}

void mx_exit(mx_actor_t *self)
{
    if (atomic_load_explicit(&self->status, memory_order_relaxed) == ST_RUNNING)
        atomic_store_explicit(&self->status, ST_STOPPING, memory_order_relaxed);
}

struct mx_addr mx_self(const mx_actor_t *self)
{
    return addr_of(t_sched->sys, self);
}

mx_system_t *mx_system_of(const mx_actor_t *self)
{
    return t_sched->sys;
}

int mx_actor_sched(const mx_actor_t *self)
{
    return self->sched;
}

uv_loop_t *mx_actor_loop(mx_actor_t *self)
{
    return &t_sched->sys->scheds[self->sched].loop;
}

void mx_set_epoch(mx_actor_t *self, uint64_t epoch)
{
    ext_of(self)->epoch = epoch;
}

/* ---- sending ---- */

static int send_remote(mx_system_t *sys, struct mx_addr to, const char *name, struct mx_msg *m)
{
    /* acquire: pairs with mx_system_set_remote; ctx is stored before ops */
    const struct mx_remote_ops *ops = atomic_load_explicit(&sys->remote_ops, memory_order_acquire);
    if (!ops) {
        count_dl(sys, MX_DL_NODE_DOWN); /* no transport */
        return MX_ENOACTOR;
    }
    if (m->ptr)
        return MX_EINVAL; /* local-only payloads never cross nodes */
    int rc = ops->send(atomic_load_explicit(&sys->remote_ctx, memory_order_relaxed), to, name, m);
    if (rc == MX_EFULL)
        count_dl(sys, MX_DL_MAILBOX_FULL);
    else if (rc != 0 && rc != MX_EINVAL)
        count_dl(sys, MX_DL_NODE_DOWN);
    return rc;
}

/* The local end of every send: epoch fence, receiver lookup, user lane. */
static int deliver_local(mx_system_t *sys, struct mx_addr to, struct mx_msg *m)
{
    if (m->env.epoch && !mx_epoch_admit(sys, m->env.epoch)) {
        count_dl(sys, MX_DL_STALE_EPOCH);
        return MX_ESTALE;
    }
    struct mx_actor *a = lookup(sys, to);
    if (!a) {
        count_dl(sys, MX_DL_NO_ACTOR);
        return MX_ENOACTOR;
    }
    m->env.to = to;
    return enqueue(sys, a, m, false);
}

static int send_to(mx_system_t *sys, struct mx_addr to, struct mx_msg *m)
{
    if (to.node != sys->node_id)
        return send_remote(sys, to, NULL, m);
    return deliver_local(sys, to, m);
}

/* ---- trace context ---- */

void mx_trace_of(const struct mx_env *env, struct mx_trace *out)
{
    memcpy(out->trace_id, env->trace_id, sizeof out->trace_id);
    memcpy(out->span_id, env->span_id, sizeof out->span_id);
}

void mx_trace_current(struct mx_trace *out)
{
    *out = t_trace;
}

static bool trace_set(const struct mx_trace *t)
{
    static const uint8_t zero[16];
    return memcmp(t->trace_id, zero, sizeof zero) != 0;
}

void mx_trace_enter(const struct mx_trace *t, struct mx_trace *saved)
{
    *saved = t_trace;
    mx_trace_leave(t ? t : &(struct mx_trace){{0}, {0}});
}

void mx_trace_leave(const struct mx_trace *saved)
{
    static const char hx[] = "0123456789abcdef";
    t_trace = *saved;
    t_traced = trace_set(&t_trace);
    if (!t_traced) {
        mx_log_set_trace(NULL);
        return;
    }
    for (int i = 0; i < 16; i++) {
        t_trace_hex[2 * i] = hx[t_trace.trace_id[i] >> 4];
        t_trace_hex[2 * i + 1] = hx[t_trace.trace_id[i] & 15];
    }
    t_trace_hex[32] = '\0';
    mx_log_set_trace(t_trace_hex);
}

void mx_trace_stamp(struct mx_msg *m)
{
    if (t_traced && !mx_env_has_trace(&m->env)) {
        memcpy(m->env.trace_id, t_trace.trace_id, sizeof m->env.trace_id);
        memcpy(m->env.span_id, t_trace.span_id, sizeof m->env.span_id);
    }
}

/* sender, trace (of the message being handled, or entered) and epoch of an actor's send */
static void stamp(mx_system_t *sys, mx_actor_t *self, struct mx_msg *m)
{
    m->env.from = addr_of(sys, self);
    mx_trace_stamp(m);
    if (self->ext)
        m->env.epoch = self->ext->epoch;
}

int mx_send(mx_actor_t *self, struct mx_addr to, struct mx_msg *m)
{
    mx_system_t *sys = t_sched->sys;
    stamp(sys, self, m);
    return send_to(sys, to, m);
}

int mx_send_named_on(mx_actor_t *self, uint64_t node, const char *name, struct mx_msg *m)
{
    mx_system_t *sys = t_sched->sys;
    if (node == 0 || node == sys->node_id)
        return mx_send_named(self, name, m);
    if (!valid_name(name))
        return MX_EINVAL;
    stamp(sys, self, m);
    m->env.flags |= MX_ENVF_NAMED;
    int rc = send_remote(sys, (struct mx_addr){node, 0}, name, m);
    if (rc != 0)
        m->env.flags &= ~(uint32_t)MX_ENVF_NAMED;
    return rc;
}

int mx_forward_named_on(mx_actor_t *self, uint64_t node, const char *name, struct mx_msg *m)
{
    if (m->env.from.actor == 0)
        return mx_send_named_on(self, node, name, m);
    mx_system_t *sys = t_sched->sys;
    if (!valid_name(name))
        return MX_EINVAL;
    if (node == 0 || node == sys->node_id) {
        struct mx_addr to;
        if (mx_whereis(sys, name, &to) != 0) {
            count_dl(sys, MX_DL_NO_ACTOR);
            return MX_ENOACTOR;
        }
        return send_to(sys, to, m); /* the envelope is kept as it is */
    }
    m->env.flags |= MX_ENVF_NAMED;
    int rc = send_remote(sys, (struct mx_addr){node, 0}, name, m);
    if (rc != 0)
        m->env.flags &= ~(uint32_t)MX_ENVF_NAMED;
    return rc;
}

void mx_system_set_remote(mx_system_t *sys, const struct mx_remote_ops *ops, void *ctx)
{
    atomic_store_explicit(&sys->remote_ctx, ctx, memory_order_relaxed);
    /* release: a sender that sees ops sees ctx */
    atomic_store_explicit(&sys->remote_ops, ops, memory_order_release);
}

int mx_system_deliver(mx_system_t *sys, struct mx_msg *m, const char *name, size_t name_len)
{
    /* acquire: pairs with the release in mx_system_stop */
    if (atomic_load_explicit(&sys->stopping, memory_order_acquire))
        return MX_ESTOPPED;
    if (m->env.deadline_ms && mx_unix_ms() > m->env.deadline_ms) {
        count_dl(sys, MX_DL_DEADLINE);
        return MX_ETIMEDOUT;
    }
    struct mx_addr to = m->env.to;
    if (name) {
        char nb[MX_NAME_MAX + 1];
        if (name_len == 0 || name_len > MX_NAME_MAX) {
            count_dl(sys, MX_DL_NO_ACTOR);
            return MX_ENOACTOR;
        }
        memcpy(nb, name, name_len);
        nb[name_len] = '\0';
        if (to.node != sys->node_id || mx_whereis(sys, nb, &to) != 0) {
            count_dl(sys, MX_DL_NO_ACTOR);
            return MX_ENOACTOR;
        }
    }
    m->env.flags &= ~(uint32_t)MX_ENVF_CONTROL; /* peers never reach the control lane */
    return deliver_local(sys, to, m);
}

/* ---- epoch fence ---- */

uint32_t mx_epoch_sid(const char *name)
{
    uint32_t h = 2166136261u; /* FNV-1a, folded to 24 bits */
    for (; name && *name; name++)
        h = (h ^ (uint8_t)*name) * 16777619u;
    h = (h >> 24) ^ (h & 0xffffffu);
    return h ? h : 1;
}

bool mx_epoch_admit(mx_system_t *sys, uint64_t epoch)
{
    if (epoch == 0)
        return true;
    uint64_t sid = epoch >> MX_EPOCH_SEQ_BITS;
    uint32_t h = (uint32_t)(sid * 2654435761u) & (FENCE_SLOTS - 1);
    for (uint32_t i = 0; i < FENCE_SLOTS; i++) {
        _Atomic uint64_t *slot = &sys->fence[(h + i) & (FENCE_SLOTS - 1)];
        /* relaxed: the fence orders nothing but itself; each slot is a
         * monotonic maximum updated by CAS */
        uint64_t cur = atomic_load_explicit(slot, memory_order_relaxed);
        if (cur == 0) {
            if (atomic_compare_exchange_strong_explicit(slot, &cur, epoch, memory_order_relaxed,
                                                        memory_order_relaxed))
                return true;
            /* someone claimed it: cur now holds its value */
        }
        if ((cur >> MX_EPOCH_SEQ_BITS) != sid)
            continue;
        while (epoch > cur) {
            if (atomic_compare_exchange_weak_explicit(slot, &cur, epoch, memory_order_relaxed,
                                                      memory_order_relaxed))
                return true;
        }
        return epoch == cur;
    }
    return true; /* more singletons than slots: fail open (documented) */
}

uint64_t mx_epoch_highest(mx_system_t *sys, uint32_t sid)
{
    uint64_t want = sid & 0xffffffu;
    uint32_t h = (uint32_t)(want * 2654435761u) & (FENCE_SLOTS - 1);
    for (uint32_t i = 0; i < FENCE_SLOTS; i++) {
        /* relaxed: a monotonic maximum, as in mx_epoch_admit */
        uint64_t cur =
            atomic_load_explicit(&sys->fence[(h + i) & (FENCE_SLOTS - 1)], memory_order_relaxed);
        if (cur == 0)
            return 0;
        if ((cur >> MX_EPOCH_SEQ_BITS) == want)
            return cur & MX_EPOCH_SEQ_MASK;
    }
    return 0;
}

/* ---- peek ---- */

int mx_actor_peek(mx_system_t *sys, struct mx_addr addr, uint32_t max, uint32_t timeout_ms,
                  struct mx_msg ***out, uint32_t *n)
{
    if (max > PEEK_MAX || !out || !n)
        return MX_EINVAL;
    struct mx_actor *a = lookup(sys, addr);
    if (!a)
        return MX_ENOACTOR;
    struct peek_req *r = xcalloc(1, sizeof(*r));
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    atomic_init(&r->refs, 2);
    r->max = max;
    struct mx_msg *m = mx_msg_with_ptr(MX_T_cl_peek, r, peek_msg_release);
    m->env.to = addr;
    enqueue(sys, a, m, true); /* control lane: never refused */
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += timeout_ms / 1000;
    dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    int rc = 0;
    pthread_mutex_lock(&r->mu);
    while (!r->done && rc == 0)
        if (pthread_cond_timedwait(&r->cv, &r->mu, &dl) != 0)
            rc = MX_ETIMEDOUT;
    if (r->done && r->served) {
        *out = r->out;
        *n = r->n;
        r->out = NULL;
        r->n = 0;
        rc = 0;
    } else if (r->done) {
        rc = MX_ENOACTOR; /* the actor stopped first */
    }
    pthread_mutex_unlock(&r->mu);
    peek_unref(r);
    return rc;
}

int mx_sys_send(mx_system_t *sys, struct mx_addr to, struct mx_msg *m)
{
    if (atomic_load_explicit(&sys->stopping, memory_order_acquire))
        return MX_ESTOPPED;
    m->env.from = (struct mx_addr){sys->node_id, 0};
    mx_trace_stamp(m);
    return send_to(sys, to, m);
}

int mx_send_named(mx_actor_t *self, const char *name, struct mx_msg *m)
{
    struct mx_addr to;
    int rc = mx_whereis(t_sched->sys, name, &to);
    if (rc != 0) {
        count_dl(t_sched->sys, MX_DL_NO_ACTOR);
        return MX_ENOACTOR;
    }
    return mx_send(self, to, m);
}

static int request_common(mx_actor_t *self, struct mx_addr to, const char *name, struct mx_msg *m,
                          uint32_t timeout_ms, uint64_t *corr);

int mx_request(mx_actor_t *self, struct mx_addr to, struct mx_msg *m, uint32_t timeout_ms,
               uint64_t *corr)
{
    return request_common(self, to, NULL, m, timeout_ms, corr);
}

int mx_request_named_on(mx_actor_t *self, uint64_t node, const char *name, struct mx_msg *m,
                        uint32_t timeout_ms, uint64_t *corr)
{
    if (!name)
        return MX_EINVAL;
    return request_common(self, (struct mx_addr){node, 0}, name, m, timeout_ms, corr);
}

/* A correlation id nobody can predict (REVIEW-SECURITY H2: sequential ids
 * let a forged reply hit a pending request): 64 random bits from the
 * kernel, taken from a per-thread buffer refilled with one getrandom call
 * per 512 ids. Never 0 (0 means "not a request"). */
static uint64_t random_corr(void)
{
    static __thread uint64_t buf[512];
    static __thread uint32_t left;
    for (;;) {
        if (left == 0) {
            if (getrandom(buf, sizeof buf, 0) != (ssize_t)sizeof buf) {
                fprintf(stderr, "mx: getrandom failed\n");
                abort();
            }
            left = 512;
        }
        uint64_t v = buf[--left];
        if (v)
            return v;
    }
}

static int request_common(mx_actor_t *self, struct mx_addr to, const char *name, struct mx_msg *m,
                          uint32_t timeout_ms, uint64_t *corr)
{
    struct mx_sched *s = t_sched;
    struct mx_actor_ext *x = ext_of(self);
    if (x->npending >= MAX_PENDING)
        return MX_ELIMIT;
    uint64_t id = random_corr();
    m->env.corr = id;
    m->env.flags = (m->env.flags & ~MX_ENVF_REPLY) | MX_ENVF_REQUEST;
    if (!m->env.deadline_ms)
        m->env.deadline_ms = mx_unix_ms() + timeout_ms;
    struct mx_trace tr; /* the request's, as the send will stamp it; m is gone after */
    if (mx_env_has_trace(&m->env))
        mx_trace_of(&m->env, &tr);
    else
        mx_trace_current(&tr);
    int rc = name ? mx_send_named_on(self, to.node, name, m) : mx_send(self, to, m);
    if (rc != 0)
        return rc;
    struct mx_pending *p = xcalloc(1, sizeof(*p));
    p->a = self;
    p->corr = id;
    p->expect.node = to.node ? to.node : s->sys->node_id;
    p->expect.actor = name ? 0 : to.actor;
    p->trace = tr;
    uv_timer_init(&s->loop, &p->h);
    p->h.data = p;
    uv_timer_start(&p->h, on_request_timeout, timeout_ms, 0);
    pending_put(x, p);
    if (corr)
        *corr = id;
    return 0;
}

int mx_reply(mx_actor_t *self, const struct mx_msg *req, struct mx_msg *rep)
{
    if (!(req->env.flags & MX_ENVF_REQUEST) || req->env.from.actor == 0)
        return MX_EINVAL;
    rep->env.corr = req->env.corr;
    rep->env.flags = (rep->env.flags & ~MX_ENVF_REQUEST) | MX_ENVF_REPLY;
    if (!mx_env_has_trace(&rep->env)) {
        /* a reply belongs to its request's trace, even when sent from a
         * callback that re-entered none */
        memcpy(rep->env.trace_id, req->env.trace_id, sizeof rep->env.trace_id);
        memcpy(rep->env.span_id, req->env.span_id, sizeof rep->env.span_id);
    }
    return mx_send(self, req->env.from, rep);
}

/* ---- timers ---- */

int mx_timer_start(mx_actor_t *self, uint64_t delay_ms, uint64_t repeat_ms, struct mx_msg *tmpl,
                   uint64_t *id)
{
    struct mx_actor_ext *x = ext_of(self);
    if (x->ntimers >= MAX_TIMERS)
        return MX_ELIMIT;
    struct mx_timer *t = xcalloc(1, sizeof(*t));
    t->a = self;
    t->id = ++x->next_timer_id;
    t->tmpl = tmpl;
    t->repeat = repeat_ms > 0;
    uv_timer_init(&t_sched->loop, &t->h);
    t->h.data = t;
    uv_timer_start(&t->h, on_timer, delay_ms, repeat_ms);
    t->next = x->timers;
    x->timers = t;
    x->ntimers++;
    if (id)
        *id = t->id;
    return 0;
}

int mx_timer_cancel(mx_actor_t *self, uint64_t id)
{
    struct mx_actor_ext *x = self->ext;
    if (!x)
        return MX_ENOTFOUND;
    for (struct mx_timer **pp = &x->timers; *pp; pp = &(*pp)->next) {
        if ((*pp)->id == id) {
            struct mx_timer *t = *pp;
            *pp = t->next;
            x->ntimers--;
            uv_close((uv_handle_t *)&t->h, timer_closed);
            return 0;
        }
    }
    return MX_ENOTFOUND;
}

/* ---- names ---- */

static uint32_t name_hash(const char *s)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h & (REG_BUCKETS - 1);
}

int mx_register(mx_system_t *sys, const char *name, struct mx_addr addr)
{
    if (!valid_name(name))
        return MX_EINVAL;
    uint32_t h = name_hash(name);
    int rc = 0;
    pthread_mutex_lock(&sys->reg_lock);
    for (struct reg_entry *e = sys->reg[h]; e; e = e->next) {
        if (strcmp(e->name, name) == 0) {
            rc = MX_EEXISTS;
            goto out_unlock;
        }
    }
    if (sys->reg_count >= REG_MAX) {
        rc = MX_ELIMIT;
        goto out_unlock;
    }
    struct reg_entry *e = xcalloc(1, sizeof(*e));
    snprintf(e->name, sizeof(e->name), "%s", name);
    e->addr = addr;
    e->next = sys->reg[h];
    sys->reg[h] = e;
    sys->reg_count++;
    struct mx_actor *a = lookup(sys, addr);
    if (a)
        atomic_store_explicit(&a->named, 1, memory_order_relaxed);
out_unlock:
    pthread_mutex_unlock(&sys->reg_lock);
    return rc;
}

int mx_unregister(mx_system_t *sys, const char *name)
{
    if (!valid_name(name))
        return MX_EINVAL;
    int rc = MX_ENOTFOUND;
    pthread_mutex_lock(&sys->reg_lock);
    for (struct reg_entry **pp = &sys->reg[name_hash(name)]; *pp; pp = &(*pp)->next) {
        if (strcmp((*pp)->name, name) == 0) {
            struct reg_entry *e = *pp;
            *pp = e->next;
            free(e);
            sys->reg_count--;
            rc = 0;
            break;
        }
    }
    pthread_mutex_unlock(&sys->reg_lock);
    return rc;
}

static void reg_remove_addr(mx_system_t *sys, struct mx_addr addr)
{
    pthread_mutex_lock(&sys->reg_lock);
    for (uint32_t i = 0; i < REG_BUCKETS; i++) {
        for (struct reg_entry **pp = &sys->reg[i]; *pp;) {
            struct reg_entry *e = *pp;
            if (e->addr.node == addr.node && e->addr.actor == addr.actor) {
                *pp = e->next;
                free(e);
                sys->reg_count--;
            } else {
                pp = &e->next;
            }
        }
    }
    pthread_mutex_unlock(&sys->reg_lock);
}

static bool reg_name_of(mx_system_t *sys, struct mx_addr addr, char *out, size_t n)
{
    bool found = false;
    pthread_mutex_lock(&sys->reg_lock);
    for (uint32_t i = 0; i < REG_BUCKETS && !found; i++) {
        for (struct reg_entry *e = sys->reg[i]; e; e = e->next) {
            if (e->addr.actor == addr.actor && e->addr.node == addr.node) {
                snprintf(out, n, "%s", e->name);
                found = true;
                break;
            }
        }
    }
    pthread_mutex_unlock(&sys->reg_lock);
    return found;
}

int mx_whereis(mx_system_t *sys, const char *name, struct mx_addr *out)
{
    if (!valid_name(name))
        return MX_EINVAL;
    int rc = MX_ENOTFOUND;
    pthread_mutex_lock(&sys->reg_lock);
    for (struct reg_entry *e = sys->reg[name_hash(name)]; e; e = e->next) {
        if (strcmp(e->name, name) == 0) {
            *out = e->addr;
            rc = 0;
            break;
        }
    }
    pthread_mutex_unlock(&sys->reg_lock);
    return rc;
}

/* ---- counters ---- */

static bool fill_stats(mx_system_t *sys, struct mx_actor *a, struct mx_actor_stats *o)
{
    uint8_t st = atomic_load_explicit(&a->status, memory_order_acquire);
    if (st == ST_FREE)
        return false;
    memset(o, 0, sizeof(*o));
    o->addr = addr_of(sys, a);
    const struct mx_behaviour *b = atomic_load_explicit(&a->beh, memory_order_relaxed);
    o->type = b ? b->name : "?";
    o->sched = a->sched;
    o->handled = atomic_load_explicit(&a->handled, memory_order_relaxed);
    o->dropped = atomic_load_explicit(&a->dropped, memory_order_relaxed);
    o->refused = atomic_load_explicit(&a->refused, memory_order_relaxed);
    o->restarts = atomic_load_explicit(&a->restarts, memory_order_relaxed);
    o->errors = atomic_load_explicit(&a->errors, memory_order_relaxed);
    o->depth = atomic_load_explicit(&a->depth, memory_order_relaxed);
    if (o->depth < 0)
        o->depth = 0;
    o->hwm = atomic_load_explicit(&a->hwm, memory_order_relaxed);
    int64_t oldest = atomic_load_explicit(&a->oldest_ms, memory_order_relaxed);
    o->oldest_age_ms = (oldest && o->depth > 0) ? mx_now_ms() - oldest : 0;
    if (o->oldest_age_ms < 0)
        o->oldest_age_ms = 0;
    o->received = o->handled + o->dropped + (uint64_t)o->depth;
    for (int i = 0; i < MX_HIST_BUCKETS; i++)
        o->hist[i] = atomic_load_explicit(&a->hist[i], memory_order_relaxed);
    if (atomic_load_explicit(&a->named, memory_order_relaxed))
        reg_name_of(sys, o->addr, o->name, sizeof(o->name));
    return true;
}

int mx_actor_stats(mx_system_t *sys, struct mx_addr addr, struct mx_actor_stats *out)
{
    struct mx_actor *a = lookup(sys, addr);
    if (!a || !fill_stats(sys, a, out))
        return MX_ENOACTOR;
    return 0;
}

void mx_actors_foreach(mx_system_t *sys, bool (*cb)(const struct mx_actor_stats *, void *),
                       void *ctx)
{
    uint32_t used = atomic_load_explicit(&sys->arena_used, memory_order_acquire);
    struct mx_actor_stats st;
    for (uint32_t i = 1; i <= used; i++) {
        struct mx_actor *a = slot(sys, i);
        if (a && fill_stats(sys, a, &st) && !cb(&st, ctx))
            return;
    }
}

void mx_deadletter_note(mx_system_t *sys, enum mx_dl_reason r)
{
    if ((unsigned)r < MX_DL_COUNT)
        count_dl(sys, r);
}

void mx_deadletters(mx_system_t *sys, uint64_t out[MX_DL_COUNT])
{
    for (int i = 0; i < MX_DL_COUNT; i++)
        out[i] = atomic_load_explicit(&sys->deadletters[i], memory_order_relaxed);
}

void mx_system_stats(mx_system_t *sys, struct mx_system_stats *out)
{
    memset(out, 0, sizeof(*out));
    out->live_actors = atomic_load_explicit(&sys->live, memory_order_relaxed);
    out->actor_slab_bytes = atomic_load_explicit(&sys->slab_bytes, memory_order_relaxed);
    out->spawned = atomic_load_explicit(&sys->spawned, memory_order_relaxed);
    out->offload_refused = atomic_load_explicit(&sys->off_refused, memory_order_relaxed);
    out->offload_done = atomic_load_explicit(&sys->off_done, memory_order_relaxed);
    for (int i = 0; i < sys->nsched; i++)
        out->wakeups += atomic_load_explicit(&sys->scheds[i].wakeups, memory_order_relaxed);
}

int mx_system_schedulers(const mx_system_t *sys)
{
    return sys->nsched;
}

uint64_t mx_system_node_id(const mx_system_t *sys)
{
    return sys->node_id;
}

const char *mx_system_node_name(const mx_system_t *sys)
{
    return sys->node_name;
}

/* ---- system start and stop ---- */

int mx_system_start(const struct mx_system_opts *opts, mx_system_t **out)
{
    int n = opts->schedulers > 0 ? opts->schedulers : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1)
        n = 1;
    if (n > MX_MAX_SCHEDULERS)
        return MX_EINVAL;
    mx_system_t *sys = xcalloc(1, sizeof(*sys));
    snprintf(sys->node_name, sizeof(sys->node_name), "%s",
             opts->node_name ? opts->node_name : "mx");
    /* the node id carries the incarnation: start time in ms and the pid;
     * systems started in one process get distinct ms (remote transport) */
    static _Atomic uint64_t last_ms;
    uint64_t ms = mx_unix_ms(), prev = atomic_load_explicit(&last_ms, memory_order_relaxed);
    do {
        if (ms <= prev)
            ms = prev + 1;
        /* relaxed: only uniqueness matters */
    } while (!atomic_compare_exchange_weak_explicit(&last_ms, &prev, ms, memory_order_relaxed,
                                                    memory_order_relaxed));
    sys->node_id = (ms << 20) ^ (uint64_t)(getpid() & 0xfffff);
    sys->nsched = n;
    sys->default_cap = opts->default_cap ? opts->default_cap : 1024;
    sys->max_actors = opts->max_actors ? opts->max_actors : MAX_SLABS * SLAB_SIZE;
    if (sys->max_actors > MAX_SLABS * SLAB_SIZE)
        sys->max_actors = MAX_SLABS * SLAB_SIZE;
    pthread_mutex_init(&sys->arena_lock, NULL);
    pthread_mutex_init(&sys->reg_lock, NULL);
    pthread_mutex_init(&sys->off_lock, NULL);
    pthread_cond_init(&sys->off_cond, NULL);
    sys->off_cap = opts->offload_queue ? opts->offload_queue : 1024;
    sys->off_ring = xcalloc(sys->off_cap, sizeof(*sys->off_ring));
    sys->off_nthreads = opts->offload_threads > 0 ? opts->offload_threads : 4;
    sys->off_threads = xcalloc((size_t)sys->off_nthreads, sizeof(pthread_t));
    for (int i = 0; i < sys->off_nthreads; i++)
        pthread_create(&sys->off_threads[i], NULL, offload_main, sys);

    void *mem;
    if (posix_memalign(&mem, 64, sizeof(struct mx_sched) * (size_t)n) != 0)
        abort();
    sys->scheds = mem;
    memset(sys->scheds, 0, sizeof(struct mx_sched) * (size_t)n);
    for (int i = 0; i < n; i++) {
        struct mx_sched *s = &sys->scheds[i];
        s->idx = i;
        s->sys = sys;
        mx_mpsc_init(&s->rq_head, &s->rq_tail, &s->rq_stub);
        pthread_mutex_init(&s->free_lock, NULL);
        uv_loop_init(&s->loop);
        uv_async_init(&s->loop, &s->wake, on_wake);
        s->wake.data = s;
        uv_idle_init(&s->loop, &s->idle);
        s->idle.data = s;
        uv_prepare_init(&s->loop, &s->prep);
        s->prep.data = s;
        uv_prepare_start(&s->prep, on_prepare);
        uv_check_init(&s->loop, &s->check);
        s->check.data = s;
        uv_check_start(&s->check, on_check);
    }
    for (int i = 0; i < n; i++)
        pthread_create(&sys->scheds[i].thread, NULL, sched_main, &sys->scheds[i]);
    register_metrics(sys);
    *out = sys;
    return 0;
}

int mx_system_stop(mx_system_t *sys, uint32_t timeout_ms)
{
    int rc = 0;
    /* release: spawns and outside sends that see this fail from now on */
    atomic_store_explicit(&sys->stopping, true, memory_order_release);
    uint32_t used = atomic_load_explicit(&sys->arena_used, memory_order_acquire);
    for (uint32_t i = 1; i <= used; i++) {
        struct mx_actor *a = slot(sys, i);
        if (a && atomic_load_explicit(&a->status, memory_order_acquire) != ST_FREE)
            mx_actor_stop(sys, addr_of(sys, a));
    }
    int64_t deadline = mx_now_ms() + (timeout_ms ? timeout_ms : 10000);
    while (atomic_load_explicit(&sys->live, memory_order_relaxed) > 0) {
        if (mx_now_ms() > deadline) {
            rc = MX_ETIMEDOUT;
            break;
        }
        usleep(1000);
    }
    pthread_mutex_lock(&sys->off_lock);
    sys->off_stop = true;
    pthread_cond_broadcast(&sys->off_cond);
    pthread_mutex_unlock(&sys->off_lock);
    for (int i = 0; i < sys->off_nthreads; i++)
        pthread_join(sys->off_threads[i], NULL);
    for (int i = 0; i < sys->nsched; i++) {
        atomic_store_explicit(&sys->scheds[i].stopping, true, memory_order_release);
        uv_async_send(&sys->scheds[i].wake);
    }
    for (int i = 0; i < sys->nsched; i++)
        pthread_join(sys->scheds[i].thread, NULL);
    return rc;
}

void mx_system_free(mx_system_t *sys)
{
    if (!sys)
        return;
    for (int i = 0; i < 2 + sys->nsched; i++)
        mx_metrics_unregister(sys->metrics_ids[i]);
    for (int i = 0; i < sys->nsched; i++) {
        struct mx_sched *s = &sys->scheds[i];
        uv_run(&s->loop, UV_RUN_NOWAIT); /* let close callbacks run */
        uv_loop_close(&s->loop);
        pthread_mutex_destroy(&s->free_lock);
    }
    /* messages still queued on retired slots are dead letters */
    uint32_t used = atomic_load_explicit(&sys->arena_used, memory_order_acquire);
    for (uint32_t i = 1; i <= used; i++) {
        struct mx_actor *a = slot(sys, i);
        struct mx_mnode *n;
        while ((n = mx_mpsc_pop(&a->mb_head, &a->mb_tail, &a->mb_stub)))
            dead(sys, NULL, (struct mx_msg *)n, MX_DL_STOPPED);
        while ((n = mx_mpsc_pop(&a->ctl_head, &a->ctl_tail, &a->ctl_stub)))
            mx_msg_free((struct mx_msg *)n);
    }
    for (uint32_t i = 0; i < MAX_SLABS; i++) {
        struct mx_actor *slab = atomic_load_explicit(&sys->slabs[i], memory_order_relaxed);
        if (!slab)
            continue;
#ifdef MX_SANITIZE_ADDRESS
        __lsan_unregister_root_region(slab, SLAB_BYTES);
#endif
        munmap(slab, SLAB_BYTES);
    }
    for (uint32_t i = 0; i < REG_BUCKETS; i++) {
        for (struct reg_entry *e = sys->reg[i], *nx; e; e = nx) {
            nx = e->next;
            free(e);
        }
    }
    free(sys->scheds);
    free(sys->off_ring);
    free(sys->off_threads);
    pthread_mutex_destroy(&sys->arena_lock);
    pthread_mutex_destroy(&sys->reg_lock);
    pthread_mutex_destroy(&sys->off_lock);
    pthread_cond_destroy(&sys->off_cond);
    free(sys);
}

_Static_assert(sizeof(struct mx_actor) <= 256, "an idle actor must stay within 256 bytes");
_Static_assert(SLAB_BYTES % 4096 == 0, "a slab is whole pages: no partial page per slab");
