/* mx_lease.h - fenced leader leases in Redis and the singleton actors they
 * elect.
 *
 * A singleton is declared by name with a behaviour on every node
 * (mx_singleton); each node campaigns for its lease and only the holder
 * runs the actor. The lease is a Redis key mx:{C}:lease:<name> holding the
 * holder's token, set by one Lua script (SET NX PX + INCR of
 * mx:{C}:epoch:<name>), renewed by another (compare token, PEXPIRE) at
 * TTL/3 and released by a third (compare, DEL, PUBLISH). The epoch counter
 * is the fencing token: the actor stamps mx_epoch_make(mx_epoch_sid(name),
 * epoch) on every message it sends, receivers reject older epochs
 * (mx_epoch_admit) and MySQL writes go through mx_mysql_fenced.
 *
 * Self-fencing: the holder's right to act ends at (time the acquire or the
 * last successful renew was SENT) + TTL - margin on its own monotonic
 * clock. A timer stops the actor then, and the actor's wrapper checks the
 * deadline before every message, so a process that was paused (SIGSTOP, a
 * long GC-like stall) cannot act for even one message after it resumes.
 *
 * Everything here runs on the registry thread (mx_registry.h), which data
 * traffic cannot starve. docs/cluster.md has the keys and the timings.
 */
#ifndef MX_LEASE_H
#define MX_LEASE_H

#include <stdbool.h>
#include <stdint.h>

#include "mx_actor.h"
#include "mx_admin.h"
#include "mx_registry.h"

typedef struct mx_leases mx_leases_t;

#define MX_LEASES_MAX 32 /* singletons per node */

struct mx_leases_opts {
    uint32_t ttl_ms;         /* lease TTL; 0 = 2000; renewals every ttl/3 */
    uint32_t margin_ms;      /* self-fence this long before the TTL ends; 0 = max(100, ttl/10) */
    uint32_t buffer_msgs;    /* messages waiting for a holder, per singleton; 0 = 256 */
    uint32_t buffer_wait_ms; /* longest wait for a holder when a message has no deadline;
                                0 = 5000 */
};

/* The lease manager's counters, declared once (mx_metrics.h), registered
 * as actor "leases", instance the node's name: Prometheus
 * mx_leases_total{event}; mxctl stats metrics.leases and the cluster
 * section (the same names). */
#define MX_LEASES_METRICS(X)                                                                       \
    X(COUNTER, leases_acquired, "leases won by this node", "", "event=\"acquired\"")               \
    X(COUNTER, leases_renewed, "successful renewals", "", "event=\"renewed\"")                     \
    X(COUNTER, leases_lost, "renewals answered not yours", "", "event=\"lost\"")                   \
    X(COUNTER, self_fenced, "singletons stopped at the deadline without a renewal", "",            \
      "event=\"self_fenced\"")                                                                     \
    X(COUNTER, leases_released, "leases released (leave)", "", "event=\"released\"")               \
    X(COUNTER, fenced_drops, "messages refused by a singleton past its deadline", "",              \
      "event=\"fenced_drop\"")                                                                     \
    X(COUNTER, singleton_buffered, "messages that waited for a holder", "", "event=\"buffered\"")  \
    X(COUNTER, singleton_buffer_full, "sends refused: buffer full", "", "event=\"buffer_full\"")   \
    X(COUNTER, singleton_buffer_expired, "buffered messages whose deadline passed", "",            \
      "event=\"buffer_expired\"")                                                                  \
    X(COUNTER, singleton_forwarded, "messages sent on to a remote holder", "",                     \
      "event=\"forwarded\"")                                                                       \
    X(COUNTER, singleton_unreplicated, "acquires no replica acknowledged in time", "",             \
      "event=\"unreplicated\"")

struct mx_leases_stats {
    uint64_t acquired;       /* leases won by this node */
    uint64_t renewed;        /* successful renewals */
    uint64_t lost;           /* renewals answered "not yours" */
    uint64_t self_fenced;    /* singletons stopped at the deadline without a renewal */
    uint64_t released;       /* leases released (leave) */
    uint64_t fenced_drops;   /* messages refused by a singleton past its deadline */
    uint64_t buffered;       /* messages that waited for a holder */
    uint64_t buffer_full;    /* sends refused: buffer full (MX_EFULL to the caller) */
    uint64_t buffer_expired; /* buffered messages whose deadline passed (dead letters) */
    uint64_t forwarded;      /* messages sent on to a remote holder by the router */
    uint64_t unreplicated;   /* acquires no replica acknowledged in time (WAIT): not acted on */
};

/* mx_leases_new - a lease manager on reg (which must outlive it); it adds
 * an events listener, so call it before mx_registry_start. opts may be
 * NULL. Returns 0 and *out, MX_EINVAL (margin >= ttl/2, ttl < 30 ms) or
 * MX_ELIMIT (registry listeners). Not from the registry thread. */
int mx_leases_new(mx_registry_t *reg, const struct mx_leases_opts *opts, mx_leases_t **out);

/* mx_singleton - declare the singleton `name` (a valid actor name, < 64
 * bytes) run by behaviour b with init argument arg (both must outlive the
 * manager; init may run many times, once per term). spawn may be NULL; its
 * name field is ignored (the singleton is registered under `name` on the
 * holder). Before mx_leases_start only. Returns 0, MX_EEXISTS (name
 * declared, or its 24-bit singleton id collides with another's), MX_ELIMIT
 * (MX_LEASES_MAX), MX_EINVAL. */
int mx_singleton(mx_leases_t *lm, const char *name, const struct mx_behaviour *b, void *arg,
                 const struct mx_spawn_opts *spawn);

/* mx_leases_start - start campaigning for every declared singleton (the
 * registry must be started). Returns 0, MX_ESTOPPED, or a spawn error for
 * the router actor. Not from the registry thread. */
int mx_leases_start(mx_leases_t *lm);

/* mx_singleton_send - send m to the singleton `name` wherever it runs:
 * the local actor when this node holds the lease, the holder's registered
 * name over the transport otherwise. While no holder is known, m waits in a
 * bounded buffer and goes to the next holder; if its deadline (or
 * buffer_wait_ms when it has none) passes first it is a dead letter
 * (deadline-passed). self is the sending actor (from and trace are set as
 * by mx_send) or NULL outside actors; messages that waited, or that leave
 * a non-actor thread for a remote holder, go through a router actor and
 * carry it as sender. Takes m on 0; returns MX_ENOTFOUND (not declared),
 * MX_EFULL (buffer full, counted), MX_ESTOPPED, or the send errors. Any
 * thread. */
int mx_singleton_send(mx_leases_t *lm, mx_actor_t *self, const char *name, struct mx_msg *m);

/* mx_singleton_epoch - inside a singleton's callbacks: its fencing epoch
 * (singleton id and lease counter, as stamped on its messages); 0
 * elsewhere. */
uint64_t mx_singleton_epoch(void);

/* mx_singleton_valid - inside a singleton's callbacks: whether its lease
 * is still valid on this node's clock (check before an external effect
 * that no fence protects). false elsewhere. */
bool mx_singleton_valid(void);

/* mx_leases_holding - whether this node holds name's lease and runs its
 * actor right now (deadline not passed). Any thread. */
bool mx_leases_holding(mx_leases_t *lm, const char *name);

/* mx_leases_list - the leases as this node sees them: held ones with the
 * remaining self-fence time, others as last read from Redis (holder node
 * name, epoch, remaining TTL). Usable as an mx_admin_leases_fn (ctx = lm).
 * Any thread; never blocks on Redis. */
uint32_t mx_leases_list(struct mx_lease *out, uint32_t max, void *ctx);

/* mx_leases_stats - counters. Any thread. */
void mx_leases_stats(mx_leases_t *lm, struct mx_leases_stats *out);

/* What one hand-over did (mx_leases_handover). */
struct mx_leases_handover {
    uint32_t held;          /* singletons this node ran when it began */
    uint32_t stopped;       /* of those: actors gone (stop callbacks ran) */
    uint32_t still_running; /* of those: actors still alive at the timeout */
    uint32_t released;      /* leases deleted in Redis (published) */
    int64_t stop_ms;        /* until the singletons had stopped */
    int64_t took_ms;
};

/* mx_leases_handover - stop campaigning, stop the local singletons, wait
 * until their actors are gone (their stop callbacks ran, so work in flight
 * is finished or journaled before anyone else may act), then release their
 * leases (published, so other nodes take over at once). Everything within
 * timeout_ms (the release gets at least 200 ms). Counts in *out (may be
 * NULL). Returns 0, MX_ETIMEDOUT (an actor still ran or Redis did not
 * answer in time; the lease then expires by itself), MX_ESTOPPED. A second
 * call before mx_leases_rejoin does nothing. Blocks. Not from the registry
 * thread or a scheduler. */
int mx_leases_handover(mx_leases_t *lm, uint32_t timeout_ms, struct mx_leases_handover *out);

/* mx_leases_leave - mx_leases_handover without the counts. Idempotent. */
void mx_leases_leave(mx_leases_t *lm, uint32_t timeout_ms);

/* mx_leases_rejoin - undo a hand-over (an undrained node): campaign again
 * for every singleton. Returns 0 or MX_ESTOPPED. Any thread but the
 * registry thread's callbacks; does not block. */
int mx_leases_rejoin(mx_leases_t *lm);

/* mx_leases_free - leave (if not done), close the manager's handles on the
 * registry thread and free it; buffered messages are freed. Call before
 * mx_registry_stop; after mx_system_stop is fine. NULL is a no-op. */
void mx_leases_free(mx_leases_t *lm);

#endif
