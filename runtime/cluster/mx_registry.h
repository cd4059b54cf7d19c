/* mx_registry.h - cluster membership in Redis, on a thread of its own.
 *
 * Each node writes its record (incarnation id, name, nng/HTTP/admin
 * addresses, state, version, start time) under mx:{CLUSTER}: with a short
 * TTL and refreshes it on a dedicated thread with its own libuv loop and
 * its own Redis connections, so a saturated data path can never starve the
 * heartbeat (or the leases, which run on the same thread: mx_lease.h).
 *
 * Keys (docs/cluster.md): mx:{C}:node:<name> (the record, PX ttl: the
 * node is alive while it exists), mx:{C}:members (hash name -> record, what
 * mxctl --cluster reads; expired entries are pruned by every refresh) and
 * the channel mx:{C}:events (member changes, lease changes, MySQL health).
 * Every refresh re-reads the member list; an event triggers a re-read at
 * once. Peers are added to and removed from the transport as members come
 * and go; a node whose record expired is removed, so sends to it become
 * node-down dead letters.
 */
#ifndef MX_REGISTRY_H
#define MX_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mx_actor.h"
#include "mx_admin.h"
#include "mx_redis.h"
#include "mx_remote.h"

typedef struct mx_registry mx_registry_t;

#define MX_REGISTRY_MAX_MEMBERS 256
#define MX_REGISTRY_MAX_HOOKS 8 /* event listeners and tick hooks, each */
#define MX_REGISTRY_CALLS 256   /* pending cross-thread calls */

struct mx_registry_opts {
    const char *redis_url;   /* redis://... */
    const char *cluster;     /* MX_CLUSTER: keys mx:{cluster}: */
    const char *nng_url;     /* advertised actor address (real port); may be "" */
    const char *http_addr;   /* advertised host:port; may be "" */
    const char *admin_url;   /* advertised admin address (real port); may be "" */
    const char *version;     /* may be NULL */
    uint32_t refresh_ms;     /* heartbeat period; 0 = 1000 */
    uint32_t ttl_ms;         /* record TTL; 0 = 5000; must exceed refresh_ms */
    uint32_t cmd_timeout_ms; /* per Redis command; 0 = min(1000, refresh_ms) */
    mx_remote_t *remote;     /* peers are added/removed here; may be NULL */
};

/* Called on the registry thread for every message on the events channel
 * (payload borrowed, len bytes). */
typedef void (*mx_registry_event_fn)(void *ctx, const char *payload, size_t len);
/* Called on the registry thread after every heartbeat period. */
typedef void (*mx_registry_tick_fn)(void *ctx);
/* Work run on the registry thread (mx_registry_call). */
typedef void (*mx_registry_call_fn)(void *arg);

/* mx_registry_new - prepare a registry for sys (node id and name come from
 * it) without starting it, so hooks can be added first. Returns 0 and *out,
 * or MX_EINVAL (bad URL, cluster name, ttl <= refresh). Any thread. */
int mx_registry_new(mx_system_t *sys, const struct mx_registry_opts *opts, mx_registry_t **out);

/* mx_registry_listen - add an events-channel listener. Before start only.
 * Returns 0 or MX_ELIMIT. */
int mx_registry_listen(mx_registry_t *reg, mx_registry_event_fn fn, void *ctx);

/* mx_registry_unlisten - remove the listener (fn, ctx); its ctx may be
 * freed afterwards. Registry thread only (e.g. from mx_registry_call). */
void mx_registry_unlisten(mx_registry_t *reg, mx_registry_event_fn fn, void *ctx);

/* mx_registry_on_tick - add a hook run every refresh period. Before start
 * only. Returns 0 or MX_ELIMIT. */
int mx_registry_on_tick(mx_registry_t *reg, mx_registry_tick_fn fn, void *ctx);

/* mx_registry_start - start the registry thread: connect, register with
 * state "joining", then "up" after the first successful refresh. Returns
 * 0, or MX_EIO (thread or loop could not start). Redis being down is not
 * an error: the thread keeps trying. Any non-scheduler thread. */
int mx_registry_start(mx_registry_t *reg);

/* mx_registry_set_state - advertise "joining", "up" or "draining" (written
 * and published at once). Returns 0 or MX_EINVAL. Any thread. */
int mx_registry_set_state(mx_registry_t *reg, const char *state);

/* mx_registry_call - run fn(arg) on the registry thread soon. Returns 0, or
 * MX_EFULL (MX_REGISTRY_CALLS pending), MX_ESTOPPED: fn is then never
 * called. Any thread, including the registry thread. */
int mx_registry_call(mx_registry_t *reg, mx_registry_call_fn fn, void *arg);

/* mx_registry_stop - delete this node's record, publish it, close the
 * connections and join the thread (bounded by the command timeout), then
 * free reg. Leases (mx_leases_free) must be freed first. NULL is a no-op.
 * Not from the registry thread. */
void mx_registry_stop(mx_registry_t *reg);

/* mx_registry_members - copy up to max members (this node included) as of
 * the last read. Returns the count. Any thread; does not block on Redis.
 * Usable as an mx_admin_members_fn (ctx = reg). */
uint32_t mx_registry_members(struct mx_member *out, uint32_t max, void *ctx);

/* mx_registry_node_of - the node id of the live member called name;
 * MX_ENOTFOUND when unknown. Any thread. */
int mx_registry_node_of(mx_registry_t *reg, const char *name, uint64_t *node_id);

/* ---- for mx_lease and other users of the registry thread ---- */

/* mx_registry_redis - the command client; registry thread only. */
mx_redis_t *mx_registry_redis(mx_registry_t *reg);
/* mx_registry_loop - the registry thread's loop; registry thread only. */
struct uv_loop_s *mx_registry_loop(mx_registry_t *reg);
/* mx_registry_key - write "mx:{cluster}:<suffix>" into out. Returns 0 or
 * MX_ETOOBIG. Any thread. */
int mx_registry_key(const mx_registry_t *reg, const char *suffix, char *out, size_t cap);
/* mx_registry_channel - the events channel name. Any thread. */
const char *mx_registry_channel(const mx_registry_t *reg);
/* mx_registry_system - the system the registry serves. */
mx_system_t *mx_registry_system(const mx_registry_t *reg);
/* mx_registry_remote - the transport the registry adds peers to (may be
 * NULL). Any thread. */
struct mx_remote *mx_registry_remote(const mx_registry_t *reg);
/* mx_registry_cmd_timeout - the per-command timeout in ms. */
uint32_t mx_registry_cmd_timeout(const mx_registry_t *reg);
/* mx_registry_stopping - true once the registry began leaving. Registry
 * thread only. */
bool mx_registry_stopping(const mx_registry_t *reg);

#endif
