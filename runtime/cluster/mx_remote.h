/* mx_remote.h - the inter-node transport: actor messages over nng.
 *
 * Each node listens on one nng pull socket (MX_NNG_ADDR) and dials every
 * peer with its own push socket. A frame is exactly the in-process message:
 * the 96-byte envelope header, the optional receiver name and the msgpack
 * body (docs/wire-format.md); frames to one peer travel packed in batch
 * messages whose size follows the backlog (one frame when the link is idle).
 * Sends never block: each peer has a bounded send queue (frames and bytes)
 * and a full queue or a disconnected peer turns the send into an error the
 * runtime counts as a dead letter. Every inbound batch and frame is
 * validated (batch structure, header, type, body against its schema,
 * receiver) before use; bad ones are dropped and counted by reason. See
 * docs/cluster.md.
 */
#ifndef MX_REMOTE_H
#define MX_REMOTE_H

#include <stdbool.h>
#include <stdint.h>

#include "mx_actor.h"
#include "mx_tls.h"

typedef struct mx_remote mx_remote_t;

/* The largest recv_max: one whole frame with its batch header. */
#define MX_REMOTE_MSG_MAX (MX_ENV_WIRE_SIZE + MX_ENV_MAX_NAME + MX_ENV_MAX_BODY + 12u)

struct mx_remote_opts {
    const char *listen_url;    /* tcp://host:port (port 0: any), ipc://, inproc:// */
    uint32_t sendbuf;          /* per-peer send queue in frames; 0 = 1024 (max 8192) */
    uint32_t sendbuf_bytes;    /* per-peer send queue in frame bytes; 0 = 8 MiB (a
                                * single larger frame is taken when the queue is empty) */
    uint32_t reconn_min_ms;    /* redial backoff start; 0 = 50 */
    uint32_t reconn_max_ms;    /* redial backoff cap; 0 = 2000 */
    uint32_t connect_grace_ms; /* a new peer may queue before its first connect; 0 = 1000 */
    uint32_t max_peers;        /* 0 = 256 */
    const mx_tls_t *tls;       /* mutual TLS on the listener and every peer link; NULL =
                                * plaintext. Must outlive the transport. */
    uint32_t recv_max;         /* largest nng message taken from a peer (and sent to one);
                                * 0 = 4 MiB; at most MX_REMOTE_MSG_MAX */
    uint32_t max_pipes;        /* inbound connections at once; 0 = 64; more are closed */
    uint32_t idle_ms;          /* an inbound connection that completes no message for this
                                * long is closed (a frame stalled half-way holds its buffer
                                * no longer); links to peers send a heartbeat when idle for
                                * a third of it. 0 = 30000 */
};

/* Why an inbound frame was dropped. */
#define MX_RDROP_MAP(X)                                                                            \
    X(BAD_HEADER, "bad-header")                                                                    \
    X(UNKNOWN_TYPE, "unknown-type")                                                                \
    X(BAD_BODY, "bad-body")                                                                        \
    X(TOO_BIG, "too-big")                                                                          \
    X(UNKNOWN_RECEIVER, "unknown-receiver")                                                        \
    X(REFUSED, "refused")                                                                          \
    X(BAD_BATCH, "bad-batch")                                                                      \
    X(LOCAL_ONLY, "local-only")                                                                    \
    X(BAD_EPOCH, "unverified-epoch")

enum mx_rdrop {
#define MX_RDROP_ENUM(n, s) MX_RDROP_##n,
    MX_RDROP_MAP(MX_RDROP_ENUM)
#undef MX_RDROP_ENUM
        MX_RDROP_COUNT
};

struct mx_remote_stats {
    uint64_t frames_in;   /* frames received (valid or not; a bad batch counts as one) */
    uint64_t delivered;   /* frames handed to a local mailbox */
    uint64_t frames_out;  /* frames queued to a peer */
    uint64_t batches_in;  /* well-formed batch messages received */
    uint64_t batches_out; /* batch messages handed to nng */
    uint64_t frames_lost; /* queued frames discarded when their peer was removed or closed */
    uint64_t bytes_in, bytes_out;   /* nng message bytes (batch framing included) */
    uint64_t send_full;             /* sends refused: peer queue full */
    uint64_t send_down;             /* sends refused: unknown or disconnected peer */
    uint64_t drops[MX_RDROP_COUNT]; /* inbound frames dropped, by reason */
    uint32_t peers;                 /* peers in the table */
    uint32_t peers_up;              /* peers with a live connection */
    uint32_t pipes_in;              /* inbound connections open now */
    uint64_t pipes_refused_tls;     /* inbound connections closed: no certificate from the CA */
    uint64_t pipes_refused_limit;   /* inbound connections closed: max_pipes reached */
    uint64_t pipes_timed_out;       /* inbound connections closed: no message for idle_ms */
};

/* mx_remote_epoch_fn - decide whether a frame from node `from` stamped
 * `epoch` (a singleton's fencing epoch, never 0) may be delivered and so
 * raise this node's fence: true only when the epoch names a singleton this
 * node knows and the registry lists `from` as that singleton's holder for
 * it, or the epoch is older than the one the registry lists (the fence then
 * refuses it as stale). Called on the receive thread for every frame with
 * an epoch; must not block long. */
typedef bool (*mx_remote_epoch_fn)(void *ctx, uint64_t from, uint64_t epoch);

/* mx_remote_set_epoch_check - install fn (NULL clears). Until one is
 * installed every frame with an epoch is refused (unverified-epoch): a
 * node that runs no lease manager knows no singleton. Returns after any
 * call of the previous fn has finished. Any non-receive thread. */
void mx_remote_set_epoch_check(mx_remote_t *r, mx_remote_epoch_fn fn, void *ctx);

/* mx__remote_fuzz - feed one nng message to the receive path as if a peer
 * had sent it (the libFuzzer harness, test/fuzz/fuzz_remote.c). */
void mx__remote_fuzz(mx_remote_t *r, const uint8_t *msg, size_t len);

/* mx_rdrop_name - a drop reason's name ("bad-header"). */
const char *mx_rdrop_name(int reason);

/* mx_remote_start - listen on opts->listen_url, start the receive thread
 * and install the transport as sys's remote hook. Returns 0 and *out, or
 * MX_EINVAL (bad options), MX_EIO (listen failed; nothing left running).
 * Any non-scheduler thread. */
int mx_remote_start(mx_system_t *sys, const struct mx_remote_opts *opts, mx_remote_t **out);

/* mx_remote_stop - clear sys's remote hook, close every socket, join the
 * receive thread and free r. Call after mx_system_stop (no more sends) and
 * before mx_system_free. NULL is a no-op. Blocks briefly. */
void mx_remote_stop(mx_remote_t *r);

/* mx_remote_port - the bound TCP port of the listener (useful with port 0),
 * or 0 for non-TCP URLs. Any thread. */
int mx_remote_port(const mx_remote_t *r);

/* mx_remote_add_peer - route node_id's traffic to url (dialled in the
 * background with backoff). Replaces an existing entry for node_id.
 * Returns 0, MX_EINVAL (bad url or node_id 0 or the local node), MX_ELIMIT
 * (table full), MX_EIO. Any non-scheduler thread (it may block briefly). */
int mx_remote_add_peer(mx_remote_t *r, uint64_t node_id, const char *url);

/* mx_remote_remove_peer - forget node_id; messages queued to it are lost
 * (at-most-once; counted in frames_lost). Returns 0 or MX_ENOTFOUND. Any
 * non-scheduler thread (it waits for the peer's send callback). */
int mx_remote_remove_peer(mx_remote_t *r, uint64_t node_id);

/* mx_remote_peer_up - whether node_id has a live connection. Any thread. */
bool mx_remote_peer_up(mx_remote_t *r, uint64_t node_id);

/* mx_remote_stats - counters, read without locks (peers under a read
 * lock). Any thread. */
void mx_remote_stats(mx_remote_t *r, struct mx_remote_stats *out);

#endif
