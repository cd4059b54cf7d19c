/* mx_remote.c - the nng transport between nodes (see mx_remote.h,
 * docs/cluster.md and the batch frame in docs/wire-format.md).
 *
 * Why pull/push: a node receives from any number of peers on one pull
 * socket and sends to each peer on its own push socket with one TCP
 * connection, so frames from one node to another keep their order (FIFO per
 * sender/receiver pair), each peer has its own bounded queue (a slow peer
 * cannot hold up the others) and nng's pipeline protocol never drops
 * silently (bus does) nor needs a reply (req/rep). Pair would allow only one
 * peer per listener.
 *
 * Why batches: nng costs several thread hand-offs per message, which caps
 * one push/pull pair near 40k messages/s here whatever the size. So frames
 * to a peer are packed into batch messages (count + length-prefixed frames)
 * and the batching clocks itself: each peer has one nng_aio; a send that
 * finds it idle ships its frame at once from the caller's thread (no hop on
 * the latency path), and frames sent while a batch is on its way collect in
 * the open batch, which goes out when the aio completes. The push socket is
 * unbuffered (NNG_OPT_SENDBUF 0), so the aio completes when the pipe takes
 * the batch: the batch size follows the backlog, with no timer.
 *
 * Threads: senders (any scheduler) read the peer table under a read lock
 * and append to the peer's open batch under the peer's mutex; the send aio
 * callback (an nng thread) starts the next batch; the receive aio callback
 * (an nng thread, one receive outstanding, so FIFO) validates every frame
 * and injects it with mx_system_deliver; nng's pipe callbacks keep each
 * peer's connection count.
 */
#include "mx_remote.h"

#include <nng/nng.h>
#include <nng/protocol/pipeline0/pull.h>
#include <nng/protocol/pipeline0/push.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mx_err.h"
#include "mx_log.h"
#include "mx_msg.h"

#define BUCKETS 64u
#define FRAME_MAX (MX_ENV_WIRE_SIZE + MX_ENV_MAX_NAME + MX_ENV_MAX_BODY)
/* batch frame: "MB", version, flags (0), count u32, then count x (len u32, frame) */
#define BATCH_MAGIC0 'M'
#define BATCH_MAGIC1 'B'
#define BATCH_VERSION 1u
#define BATCH_HDR 8u
#define BATCH_LENSZ 4u
#define BATCH_BYTES (64u << 10) /* a sender seals a batch at this size ... */
#define BATCH_FRAMES 1024u      /* ... or this many frames */
#define BATCH_MAX_COUNT 65536u  /* a receiver refuses larger counts */
#define RECV_MAX_HARD MX_REMOTE_MSG_MAX
_Static_assert(MX_REMOTE_MSG_MAX == FRAME_MAX + BATCH_HDR + BATCH_LENSZ,
               "one frame and its batch header");
#define RECV_MAX_DEFAULT (4u << 20)
#define RECV_QUEUE 16 /* received messages nng may hold before our callback */
#define MAX_PIPES_DEFAULT 64u
#define IDLE_MS_DEFAULT 30000u
#define SENDBUF_BYTES_DEFAULT (8u << 20)

/* A sealed batch waiting for the peer's aio. */
struct batch {
    nng_msg *msg;
    uint32_t frames;
    size_t bytes; /* frame bytes (queue accounting) */
    struct batch *next;
};

struct peer {
    struct mx_remote *rem;
    uint64_t node;
    char url[256];
    nng_socket sock;
    nng_dialer dialer;
    nng_aio *aio;            /* the one send in flight */
    int64_t added_ms;        /* monotonic */
    _Atomic int64_t sent_ms; /* when a batch last went to the pipe (heartbeats); relaxed */
    _Atomic int pipes;       /* live connections (nng pipe callbacks) */
    _Atomic bool ever_up;    /* connected at least once */
    struct peer *next;       /* bucket chain; under the table lock */
    pthread_mutex_t mu;      /* everything below */
    bool busy;               /* aio in flight */
    bool closing;            /* peer_free started: start no more sends */
    uint32_t fl_frames;      /* the in-flight batch */
    size_t fl_bytes;
    nng_msg *open; /* batch being filled (len = capacity) or NULL */
    size_t open_used, open_bytes;
    uint32_t open_frames;
    struct batch *ready, **ready_tail; /* sealed, oldest first */
    uint32_t q_frames;                 /* frames accepted, not yet taken by the pipe */
    size_t q_bytes;
};

struct mx_remote {
    mx_system_t *sys;
    uint64_t node;
    nng_socket pull;
    nng_listener listener;
    nng_aio *rx;           /* the one receive outstanding */
    nng_aio *tick;         /* idle_ms / 3: reap silent pipes, send heartbeats */
    _Atomic bool stopping; /* the tick does not re-arm */
    int port;
    struct mx_remote_opts o;
    pthread_rwlock_t lock; /* the peer table */
    struct peer *tab[BUCKETS];
    uint32_t npeers;
    struct mx_pipe_gate gate; /* inbound connections: count and certificate */
    pthread_mutex_t ck_mu;    /* the epoch check; held while it runs */
    mx_remote_epoch_fn ck_fn;
    void *ck_ctx;
    /* counters: relaxed atomics, statistics only */
    _Atomic uint64_t frames_in, delivered, frames_out, bytes_in, bytes_out, send_full, send_down;
    _Atomic uint64_t batches_in, batches_out, frames_lost;
    _Atomic uint64_t drops[MX_RDROP_COUNT];
};

static const char *drop_names[] = {
#define MX_RDROP_STR(n, s) s,
    MX_RDROP_MAP(MX_RDROP_STR)
#undef MX_RDROP_STR
};

const char *mx_rdrop_name(int reason)
{
    return reason >= 0 && reason < MX_RDROP_COUNT ? drop_names[reason] : "unknown";
}

static void bump(_Atomic uint64_t *c, uint64_t n)
{
    /* relaxed: a statistic */
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static struct peer *find(struct mx_remote *r, uint64_t node)
{
    for (struct peer *p = r->tab[node % BUCKETS]; p; p = p->next)
        if (p->node == node)
            return p;
    return NULL;
}

/* ---- sending ---- */

static void put32le(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

/* Close the open batch: write its header, trim it to its length and queue
 * it behind the sealed ones. Under p->mu. */
static void seal_open(struct peer *p)
{
    if (!p->open)
        return;
    uint8_t *h = nng_msg_body(p->open);
    h[0] = BATCH_MAGIC0;
    h[1] = BATCH_MAGIC1;
    h[2] = BATCH_VERSION;
    h[3] = 0;
    put32le(h + 4, p->open_frames);
    (void)nng_msg_realloc(p->open, p->open_used); /* shrinks: cannot fail, no copy */
    struct batch *bt = malloc(sizeof(*bt));
    if (!bt) {
        fprintf(stderr, "mx: out of memory (remote batch)\n");
        abort();
    }
    *bt = (struct batch){.msg = p->open, .frames = p->open_frames, .bytes = p->open_bytes};
    *p->ready_tail = bt;
    p->ready_tail = &bt->next;
    p->open = NULL;
    p->open_used = p->open_bytes = 0;
    p->open_frames = 0;
}

/* Start the next send when the aio is idle: the oldest sealed batch, else
 * the open one. With try_direct (a sender that found the link idle), first
 * offer it to the pipe with a non-blocking nng_sendmsg: when the pipe is
 * free it takes the batch on this thread and no nng thread has to run a
 * completion callback (the latency path: one request, one reply). A busy
 * or unconnected pipe refuses, and the batch waits in the aio instead.
 * Under p->mu. nng completes the aio on another thread, so send_done
 * cannot run inside this call. */
static void kick(struct mx_remote *r, struct peer *p, bool try_direct)
{
    if (p->busy || p->closing)
        return;
    if (!p->ready)
        seal_open(p);
    struct batch *bt = p->ready;
    if (!bt)
        return;
    p->ready = bt->next;
    if (!p->ready)
        p->ready_tail = &p->ready;
    bump(&r->batches_out, 1);
    bump(&r->bytes_out, nng_msg_len(bt->msg));
    atomic_store_explicit(&p->sent_ms, mx_now_ms(), memory_order_relaxed);
    if (try_direct && nng_sendmsg(p->sock, bt->msg, NNG_FLAG_NONBLOCK) == 0) {
        p->q_frames -= bt->frames;
        p->q_bytes -= bt->bytes;
        free(bt);
        return;
    }
    p->busy = true;
    p->fl_frames = bt->frames;
    p->fl_bytes = bt->bytes;
    nng_aio_set_msg(p->aio, bt->msg);
    free(bt);
    nng_send_aio(p->sock, p->aio);
}

/* The pipe took the batch (or the socket closed): start the next one. */
static void send_done(void *arg)
{
    struct peer *p = arg;
    pthread_mutex_lock(&p->mu);
    int rv = nng_aio_result(p->aio);
    p->busy = false;
    p->q_frames -= p->fl_frames;
    p->q_bytes -= p->fl_bytes;
    if (rv != 0) {
        /* closed or stopped: the batch is still ours, and lost */
        nng_msg_free(nng_aio_get_msg(p->aio));
        nng_aio_set_msg(p->aio, NULL);
        bump(&p->rem->frames_lost, p->fl_frames);
    } else {
        kick(p->rem, p, false);
    }
    pthread_mutex_unlock(&p->mu);
}

/* Append one frame to p's open batch, sealing and opening batches as
 * needed. Returns 0, MX_EINVAL (encode refused) or MX_ENOMEM (no memory
 * for a new batch). Under p->mu. */
static int append_frame(struct peer *p, const struct mx_env *env, const char *name, size_t nlen,
                        const struct mx_msg *m, size_t flen)
{
    if (p->open && (p->open_used + BATCH_LENSZ + flen > nng_msg_len(p->open) ||
                    p->open_frames >= BATCH_FRAMES))
        seal_open(p);
    if (!p->open) {
        /* an idle link ships this frame at once: size the batch for it;
         * otherwise leave room for the frames that follow */
        size_t cap = BATCH_HDR + BATCH_LENSZ + flen;
        if (p->busy && cap < BATCH_BYTES)
            cap = BATCH_BYTES;
        if (nng_msg_alloc(&p->open, cap) != 0) {
            p->open = NULL;
            return MX_ENOMEM;
        }
        p->open_used = BATCH_HDR;
    }
    uint8_t *w = (uint8_t *)nng_msg_body(p->open) + p->open_used;
    if (mx_env_encode(env, m->body_len, (uint16_t)nlen, w + BATCH_LENSZ) != 0) {
        if (p->open_frames == 0) { /* never send an empty batch */
            nng_msg_free(p->open);
            p->open = NULL;
        }
        return MX_EINVAL;
    }
    put32le(w, (uint32_t)flen);
    w += BATCH_LENSZ + MX_ENV_WIRE_SIZE;
    if (nlen)
        memcpy(w, name, nlen);
    if (m->body_len)
        memcpy(w + nlen, m->body, m->body_len);
    p->open_used += BATCH_LENSZ + flen;
    p->open_bytes += flen;
    p->open_frames++;
    p->q_frames++;
    p->q_bytes += flen;
    return 0;
}

static int remote_send(void *ctx, struct mx_addr to, const char *name, struct mx_msg *m)
{
    struct mx_remote *r = ctx;
    size_t nlen = name ? strlen(name) : 0;
    if (nlen > MX_ENV_MAX_NAME || m->body_len > MX_ENV_MAX_BODY ||
        BATCH_HDR + BATCH_LENSZ + MX_ENV_WIRE_SIZE + nlen + m->body_len > r->o.recv_max)
        return MX_EINVAL; /* the peer would drop the connection for it */
    int rc = 0;
    pthread_rwlock_rdlock(&r->lock);
    struct peer *p = find(r, to.node);
    if (!p) {
        rc = MX_ENOACTOR;
        goto out_down;
    }
    /* relaxed: a hint; a connection that drops after this check fills the
     * bounded queue at worst */
    if (atomic_load_explicit(&p->pipes, memory_order_relaxed) == 0 &&
        (atomic_load_explicit(&p->ever_up, memory_order_relaxed) ||
         mx_now_ms() - p->added_ms > (int64_t)r->o.connect_grace_ms)) {
        rc = MX_ENOACTOR;
        goto out_down;
    }
    struct mx_env env = m->env;
    env.to = to;
    if (name)
        env.to.actor = 0;
    size_t flen = MX_ENV_WIRE_SIZE + nlen + m->body_len;
    pthread_mutex_lock(&p->mu);
    if (p->closing) {
        pthread_mutex_unlock(&p->mu);
        rc = MX_ENOACTOR;
        goto out_down;
    }
    /* the bound: frames, and bytes (one frame of any size fits an empty queue) */
    if (p->q_frames >= r->o.sendbuf || (p->q_bytes && p->q_bytes + flen > r->o.sendbuf_bytes)) {
        pthread_mutex_unlock(&p->mu);
        bump(&r->send_full, 1);
        rc = MX_EFULL;
        goto out_unlock;
    }
    rc = append_frame(p, &env, name, nlen, m, flen);
    if (rc == 0)
        kick(r, p, true);
    pthread_mutex_unlock(&p->mu);
    if (rc != 0)
        goto out_unlock;
    pthread_rwlock_unlock(&r->lock);
    bump(&r->frames_out, 1);
    mx_msg_free(m);
    return 0;

out_down:
    bump(&r->send_down, 1);
out_unlock:
    pthread_rwlock_unlock(&r->lock);
    return rc;
}

static const struct mx_remote_ops remote_ops = {.send = remote_send};

/* ---- receiving ---- */

static uint32_t get32le(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* A frame stamped with a singleton's epoch raises this node's fence when
 * delivered, so the epoch must be one the registry vouches for from this
 * sender (REVIEW-SECURITY H2 item 5). */
static bool epoch_ok(struct mx_remote *r, const struct mx_env *env)
{
    pthread_mutex_lock(&r->ck_mu);
    bool ok = r->ck_fn && r->ck_fn(r->ck_ctx, env->from.node, env->epoch);
    pthread_mutex_unlock(&r->ck_mu);
    return ok;
}

void mx_remote_set_epoch_check(mx_remote_t *r, mx_remote_epoch_fn fn, void *ctx)
{
    pthread_mutex_lock(&r->ck_mu);
    r->ck_fn = fn;
    r->ck_ctx = fn ? ctx : NULL;
    pthread_mutex_unlock(&r->ck_mu);
}

/* Validate one frame and hand it to its mailbox. Returns the drop reason
 * or -1 when delivered. */
static int handle_frame(struct mx_remote *r, const uint8_t *f, size_t len)
{
    struct mx_env env;
    const char *name;
    uint16_t nlen;
    const uint8_t *body;
    uint32_t blen;
    /* claimed sizes first, so a frame claiming 100 MB is reported as such */
    if (len > FRAME_MAX || (len >= MX_ENV_WIRE_SIZE && f[0] == MX_ENV_MAGIC0 &&
                            f[1] == MX_ENV_MAGIC1 && get32le(f + 88) > MX_ENV_MAX_BODY))
        return MX_RDROP_TOO_BIG;
    if (mx_env_decode(f, len, &env, &name, &nlen, &body, &blen) != 0)
        return MX_RDROP_BAD_HEADER;
    const struct mx_msg_desc *d = mx_proto_desc(env.type);
    if (!d)
        return MX_RDROP_UNKNOWN_TYPE;
    if (mx_msg_local_only(env.type))
        return MX_RDROP_LOCAL_ONLY;
    /* the schema check: every field present with its kind */
    _Alignas(16) uint8_t scratch[2048];
    if (d->nfields && d->fields[d->nfields - 1].offset + 16u > sizeof(scratch))
        return MX_RDROP_BAD_BODY;
    if (mx_proto_decode(d, body, blen, scratch) != 0)
        return MX_RDROP_BAD_BODY;
    if (env.to.node != r->node)
        return MX_RDROP_UNKNOWN_RECEIVER;
    if (env.epoch && !epoch_ok(r, &env))
        return MX_RDROP_BAD_EPOCH;
    struct mx_msg *m = mx_msg_new(env.type, blen);
    if (blen)
        memcpy(mx_msg_body_mut(m), body, blen);
    m->env = env;
    int rc = mx_system_deliver(r->sys, m, name, nlen);
    if (rc == 0)
        return -1;
    mx_msg_free(m);
    return rc == MX_ENOACTOR ? MX_RDROP_UNKNOWN_RECEIVER : MX_RDROP_REFUSED;
}

static void count_frame(struct mx_remote *r, int why)
{
    bump(&r->frames_in, 1);
    if (why < 0)
        bump(&r->delivered, 1);
    else
        bump(&r->drops[why], 1);
}

/* Check a batch's structure without using any frame: version and flags,
 * 1 <= count <= BATCH_MAX_COUNT, every length prefix in bounds and at least
 * a header long, and the frames filling the message exactly. */
static bool batch_ok(const uint8_t *b, size_t len, uint32_t *count)
{
    if (len < BATCH_HDR || b[2] != BATCH_VERSION || b[3] != 0)
        return false;
    uint32_t n = get32le(b + 4);
    /* a lying count fails here, before any walk */
    if (n == 0 || n > BATCH_MAX_COUNT || n > (len - BATCH_HDR) / (BATCH_LENSZ + MX_ENV_WIRE_SIZE))
        return false;
    size_t off = BATCH_HDR;
    for (uint32_t i = 0; i < n; i++) {
        if (len - off < BATCH_LENSZ)
            return false;
        uint32_t fl = get32le(b + off);
        off += BATCH_LENSZ;
        if (fl < MX_ENV_WIRE_SIZE || fl > len - off)
            return false;
        off += fl;
    }
    if (off != len)
        return false;
    *count = n;
    return true;
}

/* One nng message: a batch (each inner frame validated as a frame) or a
 * single frame. A batch whose structure is bad is dropped whole, before
 * any of its frames is used, and counted once as bad-batch. */
static void handle_msg(struct mx_remote *r, const uint8_t *b, size_t len)
{
    bump(&r->bytes_in, len);
    if (len == BATCH_HDR && b[0] == BATCH_MAGIC0 && b[1] == BATCH_MAGIC1 && b[2] == BATCH_VERSION &&
        b[3] == 0 && get32le(b + 4) == 0)
        return; /* a heartbeat: an idle link is alive */
    if (len < 2 || b[0] != BATCH_MAGIC0 || b[1] != BATCH_MAGIC1) {
        count_frame(r, handle_frame(r, b, len));
        return;
    }
    uint32_t n;
    if (!batch_ok(b, len, &n)) {
        count_frame(r, MX_RDROP_BAD_BATCH);
        return;
    }
    bump(&r->batches_in, 1);
    size_t off = BATCH_HDR;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t fl = get32le(b + off);
        off += BATCH_LENSZ;
        count_frame(r, handle_frame(r, b + off, fl));
        off += fl;
    }
}

void mx__remote_fuzz(mx_remote_t *r, const uint8_t *msg, size_t len)
{
    handle_msg(r, msg, len);
}

/* Receive callback (nng thread). One receive is outstanding at a time and
 * it is re-armed only after the message is handled, so frames are
 * delivered in arrival order. */
static void rx_done(void *arg)
{
    struct mx_remote *r = arg;
    int rv = nng_aio_result(r->rx);
    if (rv == NNG_ECLOSED || rv == NNG_ECANCELED)
        return;
    if (rv == 0) {
        nng_msg *nm = nng_aio_get_msg(r->rx);
        nng_aio_set_msg(r->rx, NULL);
        mx_pipe_gate_touch(&r->gate, (uint32_t)nng_pipe_id(nng_msg_get_pipe(nm)));
        handle_msg(r, nng_msg_body(nm), nng_msg_len(nm));
        nng_msg_free(nm);
    }
    nng_recv_aio(r->pull, r->rx);
}

/* Every idle_ms / 3 (an nng thread): close inbound connections that
 * completed no message for idle_ms, and send a heartbeat (an empty batch)
 * on every link that sent nothing for idle_ms / 3, so a quiet peer is not
 * taken for a stalled one. The heartbeat skips the queue: it carries no
 * frame, so order does not matter, and a busy pipe needs none. */
static void tick_done(void *arg)
{
    struct mx_remote *r = arg;
    /* acquire: pairs with the release in mx_remote_stop */
    if (nng_aio_result(r->tick) == NNG_ECANCELED ||
        atomic_load_explicit(&r->stopping, memory_order_acquire))
        return;
    mx_pipe_gate_reap(&r->gate, r->o.idle_ms);
    int64_t now = mx_now_ms();
    pthread_rwlock_rdlock(&r->lock);
    for (uint32_t b = 0; b < BUCKETS; b++) {
        for (struct peer *p = r->tab[b]; p; p = p->next) {
            /* relaxed: hints */
            if (atomic_load_explicit(&p->pipes, memory_order_relaxed) == 0 ||
                now - atomic_load_explicit(&p->sent_ms, memory_order_relaxed) < r->o.idle_ms / 3)
                continue;
            nng_msg *hb;
            if (nng_msg_alloc(&hb, BATCH_HDR) != 0)
                continue;
            uint8_t *h = nng_msg_body(hb);
            memcpy(h, (uint8_t[]){BATCH_MAGIC0, BATCH_MAGIC1, BATCH_VERSION, 0, 0, 0, 0, 0},
                   BATCH_HDR);
            if (nng_sendmsg(p->sock, hb, NNG_FLAG_NONBLOCK) == 0)
                atomic_store_explicit(&p->sent_ms, now, memory_order_relaxed);
            else
                nng_msg_free(hb);
        }
    }
    pthread_rwlock_unlock(&r->lock);
    nng_sleep_aio((nng_duration)(r->o.idle_ms / 3), r->tick);
}

/* ---- peers ---- */

static void on_pipe(nng_pipe pipe, nng_pipe_ev ev, void *arg)
{
    struct peer *p = arg;
    /* relaxed: counters read as hints by senders */
    if (ev == NNG_PIPE_EV_ADD_POST) {
        atomic_fetch_add_explicit(&p->pipes, 1, memory_order_relaxed);
        atomic_store_explicit(&p->ever_up, true, memory_order_relaxed);
    } else if (ev == NNG_PIPE_EV_REM_POST) {
        atomic_fetch_sub_explicit(&p->pipes, 1, memory_order_relaxed);
    }
}

/* Close p's socket and free it with whatever it still queues (lost:
 * at-most-once). No sender may hold p (it is out of the table). */
static void peer_free(struct peer *p)
{
    pthread_mutex_lock(&p->mu);
    p->closing = true;
    pthread_mutex_unlock(&p->mu);
    nng_close(p->sock);   /* fails a waiting send with NNG_ECLOSED; waits for pipe callbacks */
    nng_aio_free(p->aio); /* waits for send_done */
    uint32_t lost = p->open_frames;
    if (p->open)
        nng_msg_free(p->open);
    for (struct batch *bt = p->ready, *nx; bt; bt = nx) {
        nx = bt->next;
        lost += bt->frames;
        nng_msg_free(bt->msg);
        free(bt);
    }
    bump(&p->rem->frames_lost, lost);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

int mx_remote_add_peer(mx_remote_t *r, uint64_t node_id, const char *url)
{
    char turl[sizeof(((struct peer *)0)->url)];
    if (!url || node_id == 0 || node_id == r->node ||
        mx_tls_url(r->o.tls, url, turl, sizeof turl) != 0)
        return MX_EINVAL;
    struct peer *p = calloc(1, sizeof(*p));
    if (!p)
        return MX_ENOMEM;
    p->rem = r;
    p->node = node_id;
    memcpy(p->url, turl, sizeof turl);
    p->added_ms = mx_now_ms();
    atomic_init(&p->sent_ms, p->added_ms);
    p->ready_tail = &p->ready;
    pthread_mutex_init(&p->mu, NULL);
    if (nng_aio_alloc(&p->aio, send_done, p) != 0) {
        pthread_mutex_destroy(&p->mu);
        free(p);
        return MX_ENOMEM;
    }
    if (nng_push0_open(&p->sock) != 0) {
        nng_aio_free(p->aio);
        pthread_mutex_destroy(&p->mu);
        free(p);
        return MX_EIO;
    }
    int rc = MX_EIO;
    /* unbuffered: the send aio completes when the pipe takes the batch,
     * which is what clocks the batching; our queue is the bound */
    nng_socket_set_int(p->sock, NNG_OPT_SENDBUF, 0);
    nng_socket_set_ms(p->sock, NNG_OPT_RECONNMINT, (nng_duration)r->o.reconn_min_ms);
    nng_socket_set_ms(p->sock, NNG_OPT_RECONNMAXT, (nng_duration)r->o.reconn_max_ms);
    nng_pipe_notify(p->sock, NNG_PIPE_EV_ADD_POST, on_pipe, p);
    nng_pipe_notify(p->sock, NNG_PIPE_EV_REM_POST, on_pipe, p);
    int nrc = nng_dialer_create(&p->dialer, p->sock, p->url);
    if (nrc != 0) {
        rc = (nrc == NNG_EADDRINVAL || nrc == NNG_ENOTSUP) ? MX_EINVAL : MX_EIO;
        goto out_close;
    }
    if (r->o.tls && strncmp(p->url, "tls+", 4) == 0 && mx_tls_dialer(r->o.tls, p->dialer) != 0)
        goto out_close;
    nng_dialer_set_size(p->dialer, NNG_OPT_RECVMAXSZ, 0);
    if (nng_dialer_start(p->dialer, NNG_FLAG_NONBLOCK) != 0)
        goto out_close;
    pthread_rwlock_wrlock(&r->lock);
    struct peer **pp = &r->tab[node_id % BUCKETS], *old = NULL;
    for (; *pp; pp = &(*pp)->next) {
        if ((*pp)->node == node_id) {
            old = *pp;
            *pp = old->next;
            r->npeers--;
            break;
        }
    }
    if (r->npeers >= r->o.max_peers) {
        pthread_rwlock_unlock(&r->lock);
        if (old)
            peer_free(old);
        rc = MX_ELIMIT;
        goto out_close;
    }
    p->next = r->tab[node_id % BUCKETS];
    r->tab[node_id % BUCKETS] = p;
    r->npeers++;
    pthread_rwlock_unlock(&r->lock);
    if (old)
        peer_free(old);
    return 0;

out_close:
    peer_free(p);
    return rc;
}

int mx_remote_remove_peer(mx_remote_t *r, uint64_t node_id)
{
    struct peer *p = NULL;
    pthread_rwlock_wrlock(&r->lock);
    for (struct peer **pp = &r->tab[node_id % BUCKETS]; *pp; pp = &(*pp)->next) {
        if ((*pp)->node == node_id) {
            p = *pp;
            *pp = p->next;
            r->npeers--;
            break;
        }
    }
    pthread_rwlock_unlock(&r->lock);
    if (!p)
        return MX_ENOTFOUND;
    peer_free(p);
    return 0;
}

bool mx_remote_peer_up(mx_remote_t *r, uint64_t node_id)
{
    pthread_rwlock_rdlock(&r->lock);
    struct peer *p = find(r, node_id);
    bool up = p && atomic_load_explicit(&p->pipes, memory_order_relaxed) > 0;
    pthread_rwlock_unlock(&r->lock);
    return up;
}

void mx_remote_stats(mx_remote_t *r, struct mx_remote_stats *o)
{
    memset(o, 0, sizeof(*o));
    /* relaxed: statistics */
    o->frames_in = atomic_load_explicit(&r->frames_in, memory_order_relaxed);
    o->delivered = atomic_load_explicit(&r->delivered, memory_order_relaxed);
    o->frames_out = atomic_load_explicit(&r->frames_out, memory_order_relaxed);
    o->bytes_in = atomic_load_explicit(&r->bytes_in, memory_order_relaxed);
    o->bytes_out = atomic_load_explicit(&r->bytes_out, memory_order_relaxed);
    o->send_full = atomic_load_explicit(&r->send_full, memory_order_relaxed);
    o->send_down = atomic_load_explicit(&r->send_down, memory_order_relaxed);
    o->batches_in = atomic_load_explicit(&r->batches_in, memory_order_relaxed);
    o->batches_out = atomic_load_explicit(&r->batches_out, memory_order_relaxed);
    o->frames_lost = atomic_load_explicit(&r->frames_lost, memory_order_relaxed);
    for (int i = 0; i < MX_RDROP_COUNT; i++)
        o->drops[i] = atomic_load_explicit(&r->drops[i], memory_order_relaxed);
    pthread_rwlock_rdlock(&r->lock);
    o->peers = r->npeers;
    for (uint32_t b = 0; b < BUCKETS; b++)
        for (struct peer *p = r->tab[b]; p; p = p->next)
            o->peers_up += atomic_load_explicit(&p->pipes, memory_order_relaxed) > 0;
    pthread_rwlock_unlock(&r->lock);
    o->pipes_in = mx_pipe_gate_live(&r->gate);
    o->pipes_refused_tls = atomic_load_explicit(&r->gate.refused_tls, memory_order_relaxed);
    o->pipes_refused_limit = atomic_load_explicit(&r->gate.refused_limit, memory_order_relaxed);
    o->pipes_timed_out = atomic_load_explicit(&r->gate.timed_out, memory_order_relaxed);
}

/* ---- start and stop ---- */

int mx_remote_start(mx_system_t *sys, const struct mx_remote_opts *opts, mx_remote_t **out)
{
    char url[256];
    if (!opts || !opts->listen_url || opts->sendbuf > 8192 || opts->recv_max > RECV_MAX_HARD ||
        (opts->recv_max && opts->recv_max < (64u << 10)) ||
        mx_tls_url(opts->tls, opts->listen_url, url, sizeof url) != 0)
        return MX_EINVAL;
    struct mx_remote *r = calloc(1, sizeof(*r));
    if (!r)
        return MX_ENOMEM;
    r->sys = sys;
    r->node = mx_system_node_id(sys);
    r->o = *opts;
    r->o.listen_url = NULL;
    if (!r->o.sendbuf)
        r->o.sendbuf = 4096; /* frames; sendbuf_bytes bounds the memory */
    if (!r->o.sendbuf_bytes)
        r->o.sendbuf_bytes = SENDBUF_BYTES_DEFAULT;
    if (!r->o.reconn_min_ms)
        r->o.reconn_min_ms = 50;
    if (!r->o.reconn_max_ms)
        r->o.reconn_max_ms = 2000;
    if (!r->o.connect_grace_ms)
        r->o.connect_grace_ms = 1000;
    if (!r->o.max_peers)
        r->o.max_peers = 256;
    if (!r->o.recv_max)
        r->o.recv_max = RECV_MAX_DEFAULT;
    if (!r->o.max_pipes)
        r->o.max_pipes = MAX_PIPES_DEFAULT;
    if (!r->o.idle_ms)
        r->o.idle_ms = IDLE_MS_DEFAULT;
    if (r->o.idle_ms < 30)
        r->o.idle_ms = 30;
    pthread_rwlock_init(&r->lock, NULL);
    pthread_mutex_init(&r->ck_mu, NULL);
    int rc = MX_EIO;
    if (nng_pull0_open(&r->pull) != 0)
        goto out_free;
    bool tls = strncmp(url, "tls+", 4) == 0;
    if (mx_pipe_gate_install(&r->gate, r->pull, r->o.max_pipes, tls) != 0)
        goto out_close;
    /* memory nng may hold for peers: (pipes + queue) x recv_max */
    nng_socket_set_size(r->pull, NNG_OPT_RECVMAXSZ, r->o.recv_max);
    nng_socket_set_int(r->pull, NNG_OPT_RECVBUF, RECV_QUEUE);
    int nrc = nng_listener_create(&r->listener, r->pull, url);
    if (nrc != 0) {
        rc = (nrc == NNG_EADDRINVAL || nrc == NNG_ENOTSUP) ? MX_EINVAL : MX_EIO;
        goto out_close;
    }
    nng_listener_set_size(r->listener, NNG_OPT_RECVMAXSZ, r->o.recv_max);
    if (tls && mx_tls_listener(r->o.tls, r->listener) != 0)
        goto out_close;
    nrc = nng_listener_start(r->listener, 0);
    if (nrc != 0) {
        MX_ERROR("remote: cannot listen on %s: %s", url, nng_strerror(nrc));
        goto out_close;
    }
    if (strncmp(url, "tcp", 3) == 0 || tls)
        nng_listener_get_int(r->listener, NNG_OPT_TCP_BOUND_PORT, &r->port);
    if (nng_aio_alloc(&r->rx, rx_done, r) != 0)
        goto out_close;
    if (nng_aio_alloc(&r->tick, tick_done, r) != 0) {
        nng_aio_free(r->rx);
        goto out_close;
    }
    mx_system_set_remote(sys, &remote_ops, r);
    nng_recv_aio(r->pull, r->rx);
    nng_sleep_aio((nng_duration)(r->o.idle_ms / 3), r->tick);
    *out = r;
    return 0;

out_close:
    nng_close(r->pull);
    mx_pipe_gate_fini(&r->gate);
out_free:
    pthread_mutex_destroy(&r->ck_mu);
    pthread_rwlock_destroy(&r->lock);
    free(r);
    return rc;
}

void mx_remote_stop(mx_remote_t *r)
{
    if (!r)
        return;
    mx_system_set_remote(r->sys, NULL, NULL);
    /* release: the tick sees it and does not re-arm */
    atomic_store_explicit(&r->stopping, true, memory_order_release);
    nng_aio_stop(r->tick); /* cancels the sleep, waits for a running tick */
    nng_aio_free(r->tick);
    nng_close(r->pull);  /* fails the receive with NNG_ECLOSED */
    nng_aio_free(r->rx); /* waits for rx_done */
    for (uint32_t b = 0; b < BUCKETS; b++) {
        for (struct peer *p = r->tab[b], *nx; p; p = nx) {
            nx = p->next;
            peer_free(p);
        }
    }
    mx_pipe_gate_fini(&r->gate);
    pthread_mutex_destroy(&r->ck_mu);
    pthread_rwlock_destroy(&r->lock);
    free(r);
}

int mx_remote_port(const mx_remote_t *r)
{
    return r->port;
}
