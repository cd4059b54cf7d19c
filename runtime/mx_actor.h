/* mx_actor.h - the actor system: schedulers, actors, send, request/reply,
 * timers, offload, names, counters and dead letters.
 *
 * A system runs N scheduler threads, each owning one libuv loop. Every actor
 * is pinned to one scheduler and only that thread runs its callbacks, so an
 * actor's state needs no locks. Other threads reach an actor only through its
 * bounded mailbox (mx_send); the send that makes a mailbox non-empty puts the
 * actor on its scheduler's run queue and wakes the loop (uv_async_send, which
 * libuv coalesces). A turn handles at most MX_BATCH messages so one busy actor
 * cannot starve the others.
 *
 * Ownership: mx_send and friends take the message only when they return 0;
 * on error the caller still owns it. A handler borrows the message it is
 * given; it is freed when the handler returns.
 */
#ifndef MX_ACTOR_H
#define MX_ACTOR_H

#include <stdbool.h>
#include <stdint.h>

#include "mx_msg.h"

typedef struct mx_system mx_system_t;
typedef struct mx_actor mx_actor_t;

#define MX_BATCH 64 /* messages per actor turn */
#define MX_MAX_SCHEDULERS 256
#define MX_NAME_MAX 64     /* registered name length, bytes */
#define MX_HIST_BUCKETS 12 /* handling time: <1us, <2us, ... <1024us, >=1024us */

/* Behaviour: what an actor does. Callbacks run on the actor's scheduler. */
struct mx_behaviour {
    const char *name; /* actor type, for logs and metrics */
    /* init - create the state from arg. Return 0, or a negative MX_E* code
     * (counted as an error; the restart policy decides what follows). */
    int (*init)(mx_actor_t *self, void *arg, void **state);
    /* receive - handle one message (borrowed). A negative return is a
     * handler error: counted, and the actor is restarted (stop + init) per
     * its restart policy. */
    int (*receive)(mx_actor_t *self, void *state, struct mx_msg *m);
    /* stop - free the state. Called on stop, before a restart, and at
     * system shutdown. May be NULL. */
    void (*stop)(mx_actor_t *self, void *state);
};

enum mx_overflow {
    MX_OVERFLOW_REJECT = 0,  /* the send fails with MX_EFULL */
    MX_OVERFLOW_DROP_OLDEST, /* the oldest pending message is dropped (counted) */
    MX_OVERFLOW_DROP_NEWEST, /* the new message is dropped (counted); send returns 0 */
};

struct mx_spawn_opts {
    int sched;                 /* scheduler index, or -1 for round robin */
    uint32_t cap_msgs;         /* mailbox capacity in messages; 0 = system default */
    uint32_t cap_bytes;        /* mailbox capacity in bytes; 0 = no byte limit */
    enum mx_overflow overflow; /* what a full mailbox does */
    uint8_t max_restarts;      /* restarts allowed within restart_window_s (max 16) */
    uint16_t restart_window_s; /* default 5 s */
    const char *name;          /* register under this name on the node; NULL = none */
};

#define MX_SPAWN_OPTS_DEFAULT                                                                      \
    {                                                                                              \
        .sched = -1, .max_restarts = 3, .restart_window_s = 5                                      \
    }

struct mx_system_opts {
    const char *node_name;  /* for logs and the node id */
    int schedulers;         /* 0 = number of cores */
    uint32_t default_cap;   /* default mailbox capacity; 0 = 1024 */
    int offload_threads;    /* 0 = 4 */
    uint32_t offload_queue; /* pending offload jobs bound; 0 = 1024 */
    uint32_t max_actors;    /* bound on live actors; 0 = 16M */
};

/* Dead letter reasons: every message not delivered is counted under one. */
#define MX_DL_MAP(X)                                                                               \
    X(NO_ACTOR, "no-actor")                                                                        \
    X(MAILBOX_FULL, "mailbox-full")                                                                \
    X(DROPPED_OLDEST, "dropped-oldest")                                                            \
    X(DROPPED_NEWEST, "dropped-newest")                                                            \
    X(STALE_EPOCH, "stale-epoch")                                                                  \
    X(NODE_DOWN, "node-down")                                                                      \
    X(DECODE_ERROR, "decode-error")                                                                \
    X(DEADLINE, "deadline-passed")                                                                 \
    X(STOPPED, "actor-stopped")                                                                    \
    X(LATE_REPLY, "late-reply")                                                                    \
    X(WRONG_RESPONDER, "wrong-responder")

enum mx_dl_reason {
#define MX_DL_ENUM(n, s) MX_DL_##n,
    MX_DL_MAP(MX_DL_ENUM)
#undef MX_DL_ENUM
        MX_DL_COUNT
};

/* mx_dl_name - the reason's name as shown by mxctl and metrics. */
const char *mx_dl_name(enum mx_dl_reason r);

/* ---- system ---- */

/* mx_system_start - start the schedulers. Returns 0 and *out, or an MX_E*
 * code (nothing is left running then). Call from a non-scheduler thread. */
int mx_system_start(const struct mx_system_opts *opts, mx_system_t **out);

/* mx_system_stop - stop every actor (their stop callbacks run on their
 * schedulers; pending messages become dead letters, reason actor-stopped),
 * then stop and join the schedulers. Blocks; waits at most timeout_ms for
 * actors to finish (0 = 10 s). Returns 0, or MX_ETIMEDOUT if some actor did
 * not stop in time (the schedulers are stopped anyway). Not from a scheduler. */
int mx_system_stop(mx_system_t *sys, uint32_t timeout_ms);

/* mx_system_free - free a stopped system. */
void mx_system_free(mx_system_t *sys);

int mx_system_schedulers(const mx_system_t *sys);
uint64_t mx_system_node_id(const mx_system_t *sys);
const char *mx_system_node_name(const mx_system_t *sys);

/* ---- actors ---- */

/* mx_spawn - create an actor running behaviour b with init argument arg on
 * a scheduler; its init callback runs there before any message. opts may be
 * NULL (defaults). Returns 0 and its address in *out (may be NULL), or
 * MX_EINVAL, MX_ELIMIT (too many actors), MX_EEXISTS (name taken),
 * MX_ESTOPPED (system stopping). Any thread, including handlers. */
int mx_spawn(mx_system_t *sys, const struct mx_behaviour *b, void *arg,
             const struct mx_spawn_opts *opts, struct mx_addr *out);

/* mx_actor_stop - ask the actor at addr to stop (control lane: never
 * refused for capacity). Messages already queued become dead letters.
 * Returns 0 or MX_ENOACTOR. Any thread. */
int mx_actor_stop(mx_system_t *sys, struct mx_addr addr);

/* mx_exit - the calling actor stops after its current handler returns. */
void mx_exit(mx_actor_t *self);

struct mx_addr mx_self(const mx_actor_t *self);
mx_system_t *mx_system_of(const mx_actor_t *self);
int mx_actor_sched(const mx_actor_t *self);

/* mx_actor_loop - the libuv loop of the actor's scheduler, for handles the
 * actor owns (sockets, timers, curl or hiredis adapters). Only the owner
 * thread may use it. Callbacks of such handles run on that thread, outside
 * the handler, and may touch the actor's state and call mx_send(self, ...).
 * The actor closes its handles in its stop callback; uv_close is
 * asynchronous, so memory the close callback needs must outlive the state. */
struct uv_loop_s *mx_actor_loop(mx_actor_t *self);

/* mx_set_epoch - singleton fencing epoch stamped on every message the actor
 * sends from now on (0 = not a singleton). Owner thread. */
void mx_set_epoch(mx_actor_t *self, uint64_t epoch);

/* ---- trace context ----
 * The trace a thread works for: that of the message being handled, or one
 * a callback re-entered. mx_send stamps it on messages that have none, and
 * every log line carries it (mx_log.h). Work a handler starts and a
 * callback finishes (Redis replies, MySQL and offload jobs, curl
 * transfers) loses it unless the starter captures it (mx_trace_current)
 * and the callback re-enters it (mx_trace_enter ... mx_trace_leave); the
 * runtime's offload pool, request timeouts and replies, and the Redis and
 * MySQL clients do this themselves. docs/tracing.md. */
struct mx_trace {
    uint8_t trace_id[16]; /* W3C trace-id; all zero = none */
    uint8_t span_id[8];   /* W3C parent span id */
};

/* mx_trace_current - the calling thread's trace into *out (all zero when
 * it works for none). Any thread; never blocks. */
void mx_trace_current(struct mx_trace *out);

/* mx_trace_of - the trace of envelope env into *out. */
void mx_trace_of(const struct mx_env *env, struct mx_trace *out);

/* mx_trace_enter - make t (NULL or all zero: none) the calling thread's
 * trace, for sends and log lines, until mx_trace_leave(saved); the trace
 * it replaces goes to *saved, so scopes nest. Any thread; for callbacks,
 * not inside a handler (whose trace is its message's). */
void mx_trace_enter(const struct mx_trace *t, struct mx_trace *saved);

/* mx_trace_leave - restore the trace mx_trace_enter saved. */
void mx_trace_leave(const struct mx_trace *saved);

/* mx_trace_stamp - put the calling thread's trace on m unless m has one
 * (mx_send and mx_sys_send do it themselves). Any thread. */
void mx_trace_stamp(struct mx_msg *m);

/* ---- sending ---- */

/* mx_send - send m from the calling actor to `to`. Sets from, trace id (of
 * the message being handled, unless m has one), and epoch. Takes m on
 * success. Returns 0, MX_EFULL (mailbox full, reject policy), MX_ENOACTOR,
 * MX_ESTOPPED. Every failure is also counted as a dead letter. Any
 * handler; from other threads use mx_sys_send. */
int mx_send(mx_actor_t *self, struct mx_addr to, struct mx_msg *m);

/* mx_sys_send - send m from outside any actor (from.actor = 0), with the
 * calling thread's trace (mx_trace_enter) unless m has one. Same ownership
 * and errors as mx_send. Any thread. */
int mx_sys_send(mx_system_t *sys, struct mx_addr to, struct mx_msg *m);

/* mx_send_named - mx_send to the actor registered as name on this node. */
int mx_send_named(mx_actor_t *self, const char *name, struct mx_msg *m);

/* mx_request - send m as a request; the reply (type of the replier's
 * choosing, env.corr == *corr) or a sys_timeout message with the same corr
 * after timeout_ms arrives as a message. Replies after the timeout are
 * dropped and counted (late-reply). Returns 0 and *corr, or the mx_send
 * errors, or MX_ELIMIT (too many outstanding requests). Owner thread. */
int mx_request(mx_actor_t *self, struct mx_addr to, struct mx_msg *m, uint32_t timeout_ms,
               uint64_t *corr);

/* mx_reply - answer request req (borrowed) with rep (taken on success). */
int mx_reply(mx_actor_t *self, const struct mx_msg *req, struct mx_msg *rep);

/* ---- timers and offload ---- */

/* mx_timer_start - deliver a copy of tmpl to the calling actor after
 * delay_ms, then every repeat_ms (0 = once). Takes tmpl on success.
 * Returns 0 and *id, or MX_ELIMIT (too many timers). Owner thread. */
int mx_timer_start(mx_actor_t *self, uint64_t delay_ms, uint64_t repeat_ms, struct mx_msg *tmpl,
                   uint64_t *id);

/* mx_timer_cancel - cancel a timer; MX_ENOTFOUND if it is not running. */
int mx_timer_cancel(mx_actor_t *self, uint64_t id);

/* Work run on an offload thread: may block. Returns the message to deliver
 * to the actor (its env.corr is set to the job id), or NULL to deliver a
 * sys_offload_done with status MX_EINTERNAL. */
typedef struct mx_msg *(*mx_offload_fn)(void *arg);

/* mx_offload - run fn(arg) on the worker pool; the result arrives as a
 * message with env.corr == *job. Returns 0, or MX_EFULL when the pool's
 * queue is full (fn is then never called; arg stays the caller's). */
int mx_offload(mx_actor_t *self, mx_offload_fn fn, void *arg, uint64_t *job);

/* ---- names ---- */

/* mx_register - register addr under name on this node. MX_EEXISTS if taken;
 * MX_EINVAL if the name is empty, too long or not printable ASCII. */
int mx_register(mx_system_t *sys, const char *name, struct mx_addr addr);
int mx_unregister(mx_system_t *sys, const char *name);
/* mx_whereis - the address registered as name; MX_ENOTFOUND if none. */
int mx_whereis(mx_system_t *sys, const char *name, struct mx_addr *out);

/* ---- remote transport hooks (see docs/cluster.md) ---- */

/* The transport a system uses for addresses on other nodes. */
struct mx_remote_ops {
    /* send - send m to the actor `to` on another node (to.node is not the
     * local node id) or, when name is non-NULL, to the actor registered as
     * name on node to.node (m->env.flags then has MX_ENVF_NAMED). Called by
     * the runtime's send path on any thread, including handlers; must not
     * block. Takes m on 0. On error m stays the caller's; the runtime counts
     * MX_EFULL as dead letter mailbox-full and every other code except
     * MX_EINVAL as node-down. */
    int (*send)(void *ctx, struct mx_addr to, const char *name, struct mx_msg *m);
};

/* mx_system_set_remote - route sends to foreign node ids through ops (NULL:
 * such sends are dead letters node-down, MX_ENOACTOR). ops and ctx must stay
 * valid until the system is stopped (mx_system_stop) or the hook is cleared
 * and no send can be in flight. Any thread. */
void mx_system_set_remote(mx_system_t *sys, const struct mx_remote_ops *ops, void *ctx);

/* mx_system_deliver - inject a message that arrived from another node,
 * keeping its envelope (from, corr, flags, trace, deadline, epoch). The
 * receiver is m->env.to, or the actor registered as name (name_len bytes,
 * not NUL-terminated; NULL = none) on this node. Always the user lane: a
 * remote peer cannot use the control lane. Takes m on 0 (drop-newest drops
 * count as delivered). Returns MX_ETIMEDOUT (deadline passed: dead letter
 * deadline-passed), MX_ESTALE (older epoch than seen for its singleton:
 * stale-epoch), MX_ENOACTOR (unknown receiver or another node's id:
 * no-actor), MX_EFULL (mailbox-full), MX_ESTOPPED. Any thread. */
int mx_system_deliver(mx_system_t *sys, struct mx_msg *m, const char *name, size_t name_len);

/* mx_send_named_on - mx_send to the actor registered as name on node (0 or
 * the local id: this node). Same ownership and errors as mx_send. Handlers. */
int mx_send_named_on(mx_actor_t *self, uint64_t node, const char *name, struct mx_msg *m);

/* mx_forward_named_on - pass m on to the actor registered as name on node
 * (0 or this node: locally) keeping its envelope: sender, correlation id,
 * request flag, trace and epoch stay those of whoever sent m first, so a
 * reply goes to them, not to the forwarder (routers, buffers). A message
 * with no sender (from.actor 0) is sent as mx_send_named_on would. Same
 * ownership and errors as mx_send_named_on. Owner thread of self. */
int mx_forward_named_on(mx_actor_t *self, uint64_t node, const char *name, struct mx_msg *m);

/* mx_request_named_on - mx_request to the actor registered as name on node.
 * Owner thread. */
int mx_request_named_on(mx_actor_t *self, uint64_t node, const char *name, struct mx_msg *m,
                        uint32_t timeout_ms, uint64_t *corr);

/* ---- singleton epoch fencing ----
 * A singleton's epoch carries the singleton's id in its top 24 bits and the
 * lease counter (Redis INCR) in the low 40 bits, so a receiver knows which
 * singleton a message is from with no extra header field. Each node keeps,
 * per singleton id, the highest epoch it has seen; a message with a lower
 * epoch from the same singleton is dead-lettered stale-epoch. */
#define MX_EPOCH_SEQ_BITS 40
#define MX_EPOCH_SEQ_MASK ((UINT64_C(1) << MX_EPOCH_SEQ_BITS) - 1)

/* mx_epoch_make - the epoch for singleton id sid (24 bits) and counter seq. */
static inline uint64_t mx_epoch_make(uint32_t sid, uint64_t seq)
{
    return ((uint64_t)(sid & 0xffffffu) << MX_EPOCH_SEQ_BITS) | (seq & MX_EPOCH_SEQ_MASK);
}

/* mx_epoch_sid - the singleton id of a singleton name: 24-bit FNV-1a, never 0. */
uint32_t mx_epoch_sid(const char *name);

/* mx_epoch_admit - record epoch (0 = not from a singleton: always admitted)
 * and say whether it is at least the highest seen for its singleton id on
 * this node. Lock-free; any thread. The lease code also calls it to raise
 * the fence when it learns a newer epoch. */
bool mx_epoch_admit(mx_system_t *sys, uint64_t epoch);

/* mx_epoch_highest - the highest lease counter (low 40 bits) seen on this
 * node for singleton id sid, from any sender or the lease code; 0 if none.
 * Lock-free; any thread. */
uint64_t mx_epoch_highest(mx_system_t *sys, uint32_t sid);

/* ---- inspection ---- */

/* mx_actor_peek - copies of the first max (<= 1000) pending user-lane
 * messages of the actor at addr, taken on the actor's own thread through a
 * control-lane request, so the mailbox is never read concurrently. Blocks
 * the caller at most timeout_ms. Returns 0 with *out (malloc'd array of *n
 * messages; free each with mx_msg_free, then the array with free), or
 * MX_ENOACTOR, MX_ETIMEDOUT (the actor did not take its turn in time), or
 * MX_EINVAL. Not from a scheduler thread. */
int mx_actor_peek(mx_system_t *sys, struct mx_addr addr, uint32_t max, uint32_t timeout_ms,
                  struct mx_msg ***out, uint32_t *n);

/* ---- counters ---- */

struct mx_actor_stats {
    struct mx_addr addr;
    const char *type;           /* behaviour name */
    char name[MX_NAME_MAX + 1]; /* registered name or "" */
    int sched;
    uint64_t received; /* accepted into the mailbox */
    uint64_t handled;  /* given to the handler */
    uint64_t dropped;  /* accepted but not handled (dead letters) */
    uint64_t refused;  /* sends refused or dropped at the door */
    uint32_t restarts;
    uint32_t errors;       /* handler and init errors */
    int64_t depth;         /* pending messages */
    uint32_t hwm;          /* highest depth seen at a turn */
    int64_t oldest_age_ms; /* age of the oldest pending message, 0 if none */
    uint32_t hist[MX_HIST_BUCKETS];
};

/* mx_actor_stats - counters of the actor at addr, read without locks or
 * pausing its loop (each field is exact; together they are a snapshot taken
 * while the actor may be running). Returns 0 or MX_ENOACTOR. Any thread. */
int mx_actor_stats(mx_system_t *sys, struct mx_addr addr, struct mx_actor_stats *out);

/* mx_actors_foreach - call cb for every live actor's stats; cb returning
 * false stops the walk. Any thread. */
void mx_actors_foreach(mx_system_t *sys, bool (*cb)(const struct mx_actor_stats *, void *),
                       void *ctx);

/* mx_deadletter_note - count one message refused by a layer above the
 * runtime (a singleton's handover buffer, a router) under reason r, so that
 * every undelivered message shows in mx_deadletters, mxctl and metrics.
 * The caller still owns (and frees) the message. Any thread. */
void mx_deadletter_note(mx_system_t *sys, enum mx_dl_reason r);

/* mx_deadletters - dead letter counts by reason. Any thread. */
void mx_deadletters(mx_system_t *sys, uint64_t out[MX_DL_COUNT]);

struct mx_system_stats {
    uint64_t live_actors;
    uint64_t actor_slab_bytes; /* memory mapped for actor slots (not in malloc's figures) */
    uint64_t spawned;
    uint64_t offload_refused;
    uint64_t offload_done;
    uint64_t wakeups; /* uv_async_send calls made */
};
void mx_system_stats(mx_system_t *sys, struct mx_system_stats *out);

/* mx_now_ms - monotonic clock in ms (coarse, cheap). */
int64_t mx_now_ms(void);
/* mx_unix_ms - wall clock in ms. */
uint64_t mx_unix_ms(void);

#endif
