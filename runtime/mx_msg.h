/* mx_msg.h - messages: an envelope plus a msgpack body.
 *
 * A message is allocated once by its sender, travels through one mailbox
 * and is freed by the runtime after the receiver's handler returns (the
 * handler only borrows it). Small bodies live inline in the message; bodies
 * over MX_MSG_INLINE_MAX bytes live in a separate refcounted buffer so that
 * mx_msg_share() can address the same encoded bytes to another receiver
 * without copying or re-encoding them.
 */
#ifndef MX_MSG_H
#define MX_MSG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "mx_env.h"
#include "mx_mpsc.h"
#include "mx_proto.h"

#define MX_MSG_INLINE_MAX 512u

/* A refcounted body buffer (bodies larger than MX_MSG_INLINE_MAX). */
struct mx_body {
    _Atomic uint32_t refs; /* messages pointing here; freed at 0 */
    uint32_t len;
    uint8_t data[];
};

struct mx_msg {
    struct mx_mnode node; /* mailbox link; owned by the runtime */
    struct mx_env env;    /* envelope */
    const uint8_t *body;  /* msgpack body, body_len bytes (may be NULL/0) */
    uint32_t body_len;
    uint32_t acct_bytes;      /* bytes charged to the receiver's byte budget */
    struct mx_body *shared;   /* refcounted body, or NULL when inline */
    void *ptr;                /* local-only payload (never crosses nodes) */
    void (*ptr_free)(void *); /* frees ptr with the message; may be NULL */
    int64_t enq_ms;           /* monotonic ms at enqueue (mailbox age) */
    uint8_t inline_body[];    /* inline body storage */
};

/* mx_msg_new - allocate a message of the given type with room for an inline
 * body of body_len bytes (<= MX_MSG_INLINE_MAX) or a shared body otherwise;
 * write the body through mx_msg_body_mut(). The envelope is zeroed except
 * type. Aborts on allocation failure (small object). Any thread. */
struct mx_msg *mx_msg_new(uint32_t type, uint32_t body_len);

/* mx_msg_body_mut - writable body of a message made by mx_msg_new and not
 * yet sent or shared. */
uint8_t *mx_msg_body_mut(struct mx_msg *m);

/* mx_msg_encode - encode fields (a struct mx_m_<name> for the type) into a
 * new message. Returns 0 and *out, or MX_EINVAL (unknown type) or
 * MX_ETOOBIG (body over MX_ENV_MAX_BODY). Any thread. */
int mx_msg_encode(uint32_t type, const void *fields, struct mx_msg **out);

/* mx_msg_decode - decode m's body as the struct of its type (borrowing
 * strings from m). Returns 0 or MX_EDECODE. */
int mx_msg_decode(const struct mx_msg *m, void *fields);

/* mx_msg_share - a new message with a copy of m's envelope and the same body
 * (refcount shared for large bodies, bytes copied for small ones). Local
 * pointer payloads are not shared (the copy has none). Any thread. */
struct mx_msg *mx_msg_share(const struct mx_msg *m);

/* mx_msg_with_ptr - a local-only message carrying ptr, freed with free_fn
 * when the message is freed. */
struct mx_msg *mx_msg_with_ptr(uint32_t type, void *ptr, void (*free_fn)(void *));

/* mx_msg_free - free a message the caller owns (never one borrowed by a
 * handler). NULL is a no-op. Any thread. */
void mx_msg_free(struct mx_msg *m);

/* The message types only this node may create: a frame of one of them from
 * the network is dropped and counted (drop reason "local-only") before any
 * field is read. Each entry says why; add a type here when it controls the
 * node (drain, stop, latches), answers a node-local request, or carries a
 * local pointer payload. Types not listed here may cross nodes.
 * X(type name, why) */
#define MX_LOCAL_ONLY_MAP(X)                                                                       \
    X(sys_timeout, "the runtime's own request deadline")                                           \
    X(sys_tick, "timers are armed by the actor itself")                                            \
    X(sys_offload_done, "an offloaded job's result (local pointer)")                               \
    X(sys_stop, "stops an actor")                                                                  \
    X(cl_peek, "admin peek (local pointer, control lane)")                                         \
    X(cl_forward, "the lease router's payload (local pointer)")                                    \
    X(fetch_retry, "the fetcher's own backoff timer")                                              \
    X(http_drain, "turns a node's HTTP listener off")                                              \
    X(exp_get, "cache shards are asked by their own node's acceptors")                             \
    X(exp_rep, "answers an acceptor's local request (document by pointer)")                        \
    X(exp_calc_done, "an offloaded calculation (local pointer)")                                   \
    X(calc_req, "a job for the calculator (local pointer)")                                        \
    X(calc_done, "a calculator worker's notice")                                                   \
    X(exp_invalidate, "invalidation arrives through Redis pub/sub, not peers")                     \
    X(store_job_done, "a MySQL pool completion (local pointer; kills mysql-health on ESTALE)")     \
    X(like_req, "would toggle a like for any account")                                             \
    X(like_rep, "would answer a pending toggle")                                                   \
    X(outbox_alert, "an alert for this node's alerter (local pointer)")                            \
    X(outbox_ai_done, "an offloaded AI call (local pointer)")                                      \
    X(shutdown_cmd, "drains, undrains or stops the node")                                          \
    X(svc_latches, "releases every cluster latch of a shard")                                      \
    X(svc_latches_rep, "answers the shutdown coordinator")

/* mx_msg_local_only - whether type is listed in MX_LOCAL_ONLY_MAP. */
bool mx_msg_local_only(uint32_t type);

/* mx_msg_size - bytes a message charges against a mailbox byte budget. */
static inline uint32_t mx_msg_size(const struct mx_msg *m)
{
    return (uint32_t)sizeof(*m) + m->body_len;
}

#endif
