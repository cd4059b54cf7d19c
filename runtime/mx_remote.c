/* mx_remote.c - the nng transport between nodes (see mx_remote.h and
 * docs/cluster.md).
 *
 * Why pull/push: a node receives from any number of peers on one pull
 * socket and sends to each peer on its own push socket with one TCP
 * connection, so frames from one node to another keep their order (FIFO per
 * sender/receiver pair), each peer has its own bounded queue (a slow peer
 * cannot hold up the others) and nng's pipeline protocol never drops
 * silently (bus does) nor needs a reply (req/rep). Pair would allow only one
 * peer per listener.
 *
 * Threads: senders (any scheduler) read the peer table under a read lock
 * and call nng_sendmsg with NNG_FLAG_NONBLOCK; one receive thread validates
 * frames and injects them with mx_system_deliver; nng's own threads run the
 * pipe callbacks that keep each peer's connection count.
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

#define BUCKETS 64u
#define RECV_MAX (MX_ENV_WIRE_SIZE + MX_ENV_MAX_NAME + MX_ENV_MAX_BODY)

struct peer {
    uint64_t node;
    char url[256];
    nng_socket sock;
    nng_dialer dialer;
    int64_t added_ms;      /* monotonic */
    _Atomic int pipes;     /* live connections (nng pipe callbacks) */
    _Atomic bool ever_up;  /* connected at least once */
    struct peer *next;     /* bucket chain; under lock */
};

struct mx_remote {
    mx_system_t *sys;
    uint64_t node;
    nng_socket pull;
    nng_listener listener;
    int port;
    pthread_t rx;
    struct mx_remote_opts o;
    pthread_rwlock_t lock; /* the peer table */
    struct peer *tab[BUCKETS];
    uint32_t npeers;
    /* counters: relaxed atomics, statistics only */
    _Atomic uint64_t frames_in, delivered, frames_out, bytes_in, bytes_out, send_full, send_down;
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

static int remote_send(void *ctx, struct mx_addr to, const char *name, struct mx_msg *m)
{
    struct mx_remote *r = ctx;
    size_t nlen = name ? strlen(name) : 0;
    if (nlen > MX_ENV_MAX_NAME || m->body_len > MX_ENV_MAX_BODY)
        return MX_EINVAL;
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
    size_t len = MX_ENV_WIRE_SIZE + nlen + m->body_len;
    nng_msg *nm;
    if (nng_msg_alloc(&nm, len) != 0) {
        rc = MX_ENOMEM;
        goto out_unlock;
    }
    uint8_t *b = nng_msg_body(nm);
    if (mx_env_encode(&env, m->body_len, (uint16_t)nlen, b) != 0) {
        nng_msg_free(nm);
        rc = MX_EINVAL;
        goto out_unlock;
    }
    if (nlen)
        memcpy(b + MX_ENV_WIRE_SIZE, name, nlen);
    if (m->body_len)
        memcpy(b + MX_ENV_WIRE_SIZE + nlen, m->body, m->body_len);
    int nrc = nng_sendmsg(p->sock, nm, NNG_FLAG_NONBLOCK);
    if (nrc != 0) {
        nng_msg_free(nm);
        if (nrc == NNG_EAGAIN) {
            bump(&r->send_full, 1);
            rc = MX_EFULL;
            goto out_unlock;
        }
        rc = MX_ENOACTOR;
        goto out_down;
    }
    pthread_rwlock_unlock(&r->lock);
    bump(&r->frames_out, 1);
    bump(&r->bytes_out, len);
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

/* runtime types that only the local runtime may create */
static bool local_only(uint32_t type)
{
    return type == MX_T_sys_timeout || type == MX_T_sys_tick || type == MX_T_sys_offload_done ||
           type == MX_T_sys_stop || type == MX_T_cl_peek;
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
    if (len > RECV_MAX || (len >= MX_ENV_WIRE_SIZE && f[0] == MX_ENV_MAGIC0 &&
                           f[1] == MX_ENV_MAGIC1 && get32le(f + 88) > MX_ENV_MAX_BODY))
        return MX_RDROP_TOO_BIG;
    if (mx_env_decode(f, len, &env, &name, &nlen, &body, &blen) != 0)
        return MX_RDROP_BAD_HEADER;
    const struct mx_msg_desc *d = mx_proto_desc(env.type);
    if (!d || local_only(env.type))
        return MX_RDROP_UNKNOWN_TYPE;
    /* the schema check: every field present with its kind */
    _Alignas(16) uint8_t scratch[2048];
    if (d->nfields && d->fields[d->nfields - 1].offset + 16u > sizeof(scratch))
        return MX_RDROP_BAD_BODY;
    if (mx_proto_decode(d, body, blen, scratch) != 0)
        return MX_RDROP_BAD_BODY;
    if (env.to.node != r->node)
        return MX_RDROP_UNKNOWN_RECEIVER;
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

static void *rx_main(void *arg)
{
    struct mx_remote *r = arg;
    for (;;) {
        nng_msg *nm;
        int rc = nng_recvmsg(r->pull, &nm, 0);
        if (rc == NNG_ECLOSED)
            break;
        if (rc != 0)
            continue;
        size_t len = nng_msg_len(nm);
        bump(&r->frames_in, 1);
        bump(&r->bytes_in, len);
        int why = handle_frame(r, nng_msg_body(nm), len);
        if (why < 0)
            bump(&r->delivered, 1);
        else
            bump(&r->drops[why], 1);
        nng_msg_free(nm);
    }
    return NULL;
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

static void peer_free(struct peer *p)
{
    nng_close(p->sock); /* waits for its pipe callbacks */
    free(p);
}

int mx_remote_add_peer(mx_remote_t *r, uint64_t node_id, const char *url)
{
    if (!url || node_id == 0 || node_id == r->node || strlen(url) >= sizeof(((struct peer *)0)->url))
        return MX_EINVAL;
    struct peer *p = calloc(1, sizeof(*p));
    if (!p)
        return MX_ENOMEM;
    p->node = node_id;
    snprintf(p->url, sizeof(p->url), "%s", url);
    p->added_ms = mx_now_ms();
    if (nng_push0_open(&p->sock) != 0) {
        free(p);
        return MX_EIO;
    }
    int rc = MX_EIO;
    nng_socket_set_int(p->sock, NNG_OPT_SENDBUF, (int)r->o.sendbuf);
    nng_socket_set_ms(p->sock, NNG_OPT_RECONNMINT, (nng_duration)r->o.reconn_min_ms);
    nng_socket_set_ms(p->sock, NNG_OPT_RECONNMAXT, (nng_duration)r->o.reconn_max_ms);
    nng_socket_set_ms(p->sock, NNG_OPT_SENDTIMEO, 0);
    nng_pipe_notify(p->sock, NNG_PIPE_EV_ADD_POST, on_pipe, p);
    nng_pipe_notify(p->sock, NNG_PIPE_EV_REM_POST, on_pipe, p);
    int nrc = nng_dialer_create(&p->dialer, p->sock, url);
    if (nrc != 0) {
        rc = (nrc == NNG_EADDRINVAL || nrc == NNG_ENOTSUP) ? MX_EINVAL : MX_EIO;
        goto out_close;
    }
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
    nng_close(p->sock);
    free(p);
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
    for (int i = 0; i < MX_RDROP_COUNT; i++)
        o->drops[i] = atomic_load_explicit(&r->drops[i], memory_order_relaxed);
    pthread_rwlock_rdlock(&r->lock);
    o->peers = r->npeers;
    for (uint32_t b = 0; b < BUCKETS; b++)
        for (struct peer *p = r->tab[b]; p; p = p->next)
            o->peers_up += atomic_load_explicit(&p->pipes, memory_order_relaxed) > 0;
    pthread_rwlock_unlock(&r->lock);
}

/* ---- start and stop ---- */

int mx_remote_start(mx_system_t *sys, const struct mx_remote_opts *opts, mx_remote_t **out)
{
    if (!opts || !opts->listen_url || opts->sendbuf > 8192)
        return MX_EINVAL;
    struct mx_remote *r = calloc(1, sizeof(*r));
    if (!r)
        return MX_ENOMEM;
    r->sys = sys;
    r->node = mx_system_node_id(sys);
    r->o = *opts;
    r->o.listen_url = NULL;
    if (!r->o.sendbuf)
        r->o.sendbuf = 1024;
    if (!r->o.reconn_min_ms)
        r->o.reconn_min_ms = 50;
    if (!r->o.reconn_max_ms)
        r->o.reconn_max_ms = 2000;
    if (!r->o.connect_grace_ms)
        r->o.connect_grace_ms = 1000;
    if (!r->o.max_peers)
        r->o.max_peers = 256;
    pthread_rwlock_init(&r->lock, NULL);
    int rc = MX_EIO;
    if (nng_pull0_open(&r->pull) != 0)
        goto out_free;
    nng_socket_set_size(r->pull, NNG_OPT_RECVMAXSZ, RECV_MAX);
    nng_socket_set_int(r->pull, NNG_OPT_RECVBUF, 1024);
    int nrc = nng_listener_create(&r->listener, r->pull, opts->listen_url);
    if (nrc != 0) {
        rc = (nrc == NNG_EADDRINVAL || nrc == NNG_ENOTSUP) ? MX_EINVAL : MX_EIO;
        goto out_close;
    }
    nng_listener_set_size(r->listener, NNG_OPT_RECVMAXSZ, RECV_MAX);
    nrc = nng_listener_start(r->listener, 0);
    if (nrc != 0) {
        MX_ERROR("remote: cannot listen on %s: %s", opts->listen_url, nng_strerror(nrc));
        goto out_close;
    }
    if (strncmp(opts->listen_url, "tcp", 3) == 0)
        nng_listener_get_int(r->listener, NNG_OPT_TCP_BOUND_PORT, &r->port);
    if (pthread_create(&r->rx, NULL, rx_main, r) != 0)
        goto out_close;
    mx_system_set_remote(sys, &remote_ops, r);
    *out = r;
    return 0;

out_close:
    nng_close(r->pull);
out_free:
    pthread_rwlock_destroy(&r->lock);
    free(r);
    return rc;
}

void mx_remote_stop(mx_remote_t *r)
{
    if (!r)
        return;
    mx_system_set_remote(r->sys, NULL, NULL);
    nng_close(r->pull);
    pthread_join(r->rx, NULL);
    for (uint32_t b = 0; b < BUCKETS; b++) {
        for (struct peer *p = r->tab[b], *nx; p; p = nx) {
            nx = p->next;
            peer_free(p);
        }
    }
    pthread_rwlock_destroy(&r->lock);
    free(r);
}

int mx_remote_port(const mx_remote_t *r)
{
    return r->port;
}
