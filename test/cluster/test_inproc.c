/* test_inproc.c - the transport between two actor systems in one process
 * over TCP loopback: remote send and request/reply by address and by name,
 * FIFO per pair, refusal of local pointer payloads, unknown peers, hostile
 * frames (dropped and counted, the node keeps serving), epoch fencing, a
 * peer going away (sends fail fast, requests time out), and mailbox peek. */
#include <nng/nng.h>
#include <nng/protocol/pipeline0/pull.h>
#include <nng/protocol/pipeline0/push.h>
#include <nng/supplemental/tls/tls.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <semaphore.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "cl_actors.h"
#include "mx_err.h"
#include "mx_remote.h"
#include "mx_testutil.h"
#include "support/mx_proc.h"

struct node {
    mx_system_t *sys;
    mx_remote_t *rem;
    mx_tls_t *tls;
    struct mx_addr echo, sink, drv;
    struct cl_sink_stats sink_st;
    struct cl_driver_stats drv_st;
    char url[64];
};

static uint32_t g_max_pipes; /* inbound connections for the next node_start; 0 = default */
static uint32_t g_idle_ms;   /* idle_ms for the next node_start; 0 = default */

/* cert: NULL for plaintext, else a name scripts/gen-certs made in certs */
static void node_start_tls(struct node *n, const char *name, const char *certs, const char *cert)
{
    memset(n, 0, sizeof(*n));
    struct mx_system_opts o = {.node_name = name, .schedulers = 1, .offload_threads = 1};
    assert_int_equal(mx_system_start(&o, &n->sys), 0);
    if (cert) {
        char ca[256], crt[256], key[256], err[512];
        snprintf(ca, sizeof ca, "%s/ca.pem", certs);
        snprintf(crt, sizeof crt, "%s/%s.pem", certs, cert);
        snprintf(key, sizeof key, "%s/%s.key", certs, cert);
        assert_int_equal(mx_tls_load(ca, crt, key, &n->tls, err, sizeof err), 0);
    }
    struct mx_remote_opts ro = {.listen_url = "tcp://127.0.0.1:0",
                                .sendbuf = 256,
                                .reconn_min_ms = 20,
                                .reconn_max_ms = 200,
                                .tls = n->tls,
                                .max_pipes = g_max_pipes,
                                .idle_ms = g_idle_ms};
    assert_int_equal(mx_remote_start(n->sys, &ro, &n->rem), 0);
    TU_ASSERT_CMP(mx_remote_port(n->rem), >, 0);
    snprintf(n->url, sizeof(n->url), "tcp://127.0.0.1:%d", mx_remote_port(n->rem));
    struct mx_spawn_opts so = MX_SPAWN_OPTS_DEFAULT;
    so.name = "echo";
    assert_int_equal(mx_spawn(n->sys, &cl_echo_beh, NULL, &so, &n->echo), 0);
    if (n->tls) /* what the peers dial */
        snprintf(n->url, sizeof(n->url), "tls+tcp://127.0.0.1:%d", mx_remote_port(n->rem));
    so.name = "sink";
    so.cap_msgs = 100000;
    assert_int_equal(mx_spawn(n->sys, &cl_sink_beh, &n->sink_st, &so, &n->sink), 0);
    assert_int_equal(mx_spawn(n->sys, &cl_driver_beh, &n->drv_st, NULL, &n->drv), 0);
}

static void node_start(struct node *n, const char *name)
{
    node_start_tls(n, name, NULL, NULL);
}

static void node_stop(struct node *n)
{
    assert_int_equal(mx_system_stop(n->sys, 5000), 0);
    mx_remote_stop(n->rem);
    mx_system_free(n->sys);
    mx_tls_free(n->tls);
}

static uint64_t dl(struct node *n, enum mx_dl_reason r)
{
    uint64_t v[MX_DL_COUNT];
    mx_deadletters(n->sys, v);
    return v[r];
}

static uint64_t drops(struct node *n, enum mx_rdrop r)
{
    struct mx_remote_stats s;
    mx_remote_stats(n->rem, &s);
    return s.drops[r];
}

static void connect_pair(struct node *a, struct node *b)
{
    assert_int_equal(mx_remote_add_peer(a->rem, mx_system_node_id(b->sys), b->url), 0);
    assert_int_equal(mx_remote_add_peer(b->rem, mx_system_node_id(a->sys), a->url), 0);
    assert_true(TU_WAIT_UNTIL(mx_remote_peer_up(a->rem, mx_system_node_id(b->sys)) &&
                                  mx_remote_peer_up(b->rem, mx_system_node_id(a->sys)),
                              5000));
}

static int request_echo(struct node *a, struct cl_cmd *c)
{
    uint64_t before = atomic_load(&a->drv_st.replies);
    assert_int_equal(cl_run(a->sys, a->drv, c), 0);
    if (c->rc != 0)
        return c->rc;
    return TU_WAIT_UNTIL(atomic_load(&a->drv_st.replies) > before, 5000) ? 0 : MX_ETIMEDOUT;
}

static void test_send_and_request(void **unused)
{
    struct node a, b;
    node_start(&a, "a");
    node_start(&b, "b");
    connect_pair(&a, &b);
    uint64_t bid = mx_system_node_id(b.sys);

    /* request/reply by address */
    struct cl_cmd c = {.op = CL_REQ_ADDR, .to = b.echo, .n = 41, .timeout_ms = 3000};
    assert_int_equal(request_echo(&a, &c), 0);
    assert_int_equal(atomic_load(&a.drv_st.last_n), 42);
    /* by name */
    c = (struct cl_cmd){.op = CL_REQ_NAMED, .node = bid, .n = 99, .timeout_ms = 3000};
    strcpy(c.name, "echo");
    assert_int_equal(request_echo(&a, &c), 0);
    assert_int_equal(atomic_load(&a.drv_st.last_n), 100);
    assert_int_equal(atomic_load(&a.drv_st.timeouts), 0);

    /* FIFO per pair, named sends, in bursts that fit the send queue. On a
     * machine busy with other tests the TCP connection may drop for a
     * moment; sends then fail fast as node-down (at-most-once, as
     * designed), the link comes back, and order still holds for what was
     * delivered. Most bursts must go through whole. */
    uint32_t total = 0, seq = 0;
    int clean = 0;
    for (int burst = 0; burst < 20; burst++) {
        c = (struct cl_cmd){.op = CL_SEND_NAMED, .node = bid, .count = 200, .seq0 = seq};
        strcpy(c.name, "sink");
        assert_int_equal(cl_run(a.sys, a.drv, &c), 0);
        seq += c.count;
        total += c.sent;
        if (c.failed) {
            fprintf(stderr, "burst %d: %u failed rc %d\n", burst, c.failed, c.rc);
            assert_int_equal(c.rc, MX_ENOACTOR); /* node-down, never anything else */
            assert_true(TU_WAIT_UNTIL(mx_remote_peer_up(a.rem, bid), 5000));
        } else {
            clean++;
        }
        assert_true(TU_WAIT_UNTIL(atomic_load(&b.sink_st.received) == total, 5000));
    }
    TU_ASSERT_CMP(clean, >=, 15);
    assert_int_equal(atomic_load(&b.sink_st.out_of_order), 0);

    /* a local pointer payload never crosses nodes */
    c = (struct cl_cmd){.op = CL_SEND_PTR, .to = b.sink};
    assert_int_equal(cl_run(a.sys, a.drv, &c), 0);
    assert_int_equal(c.rc, MX_EINVAL);

    /* an unknown node is a dead letter node-down, at once */
    uint64_t down = dl(&a, MX_DL_NODE_DOWN);
    c = (struct cl_cmd){.op = CL_SEND_ADDR, .to = {12345, 1}, .count = 3};
    assert_int_equal(cl_run(a.sys, a.drv, &c), 0);
    assert_int_equal(c.rc, MX_ENOACTOR);
    assert_int_equal(c.failed, 3);
    assert_int_equal(dl(&a, MX_DL_NODE_DOWN), down + 3);

    /* an unknown actor on the peer: dropped and counted there */
    uint64_t unk = drops(&b, MX_RDROP_UNKNOWN_RECEIVER);
    c = (struct cl_cmd){.op = CL_SEND_ADDR, .to = {bid, (7ull << 32) | 4000}, .count = 2};
    assert_int_equal(cl_run(a.sys, a.drv, &c), 0);
    assert_int_equal(c.rc, 0);
    assert_true(TU_WAIT_UNTIL(drops(&b, MX_RDROP_UNKNOWN_RECEIVER) == unk + 2, 5000));
    TU_ASSERT_CMP(dl(&b, MX_DL_NO_ACTOR), >=, 2);

    node_stop(&a);
    node_stop(&b);
}

/* fwd: passes every message it gets on to "echo" on the node in its
 * state, keeping the envelope (mx_forward_named_on). */
static int fwd_recv(mx_actor_t *self, void *state, struct mx_msg *m)
{
    uint64_t node = *(uint64_t *)state;
    struct mx_msg *copy = mx_msg_share(m); /* the handler only borrows m */
    if (mx_forward_named_on(self, node, "echo", copy) != 0)
        mx_msg_free(copy);
    return 0;
}

static int fwd_init(mx_actor_t *self, void *arg, void **state)
{
    *state = arg;
    return 0;
}

static const struct mx_behaviour fwd_beh = {"fwd", fwd_init, fwd_recv, NULL};

/* A request forwarded by a middle actor keeps its sender, so the actor at
 * the end answers the original requester. A reply is accepted only from
 * the node (and, for a request by address, the actor) the request went to:
 * on one node a request made by name takes the answer of any actor there;
 * an answer from another node is refused (wrong-responder) and the
 * request times out. */
static void test_forward_keeps_sender(void **unused)
{
    struct node a, b;
    node_start(&a, "a");
    node_start(&b, "b");
    connect_pair(&a, &b);
    static uint64_t to_b, to_a;
    to_b = mx_system_node_id(b.sys);
    to_a = 0; /* this node */
    struct mx_spawn_opts so = MX_SPAWN_OPTS_DEFAULT;
    so.name = "fwd-remote";
    assert_int_equal(mx_spawn(a.sys, &fwd_beh, &to_b, &so, NULL), 0);
    so.name = "fwd-local";
    assert_int_equal(mx_spawn(a.sys, &fwd_beh, &to_a, &so, NULL), 0);

    uint64_t wrong = dl(&a, MX_DL_WRONG_RESPONDER);
    struct cl_cmd c = {.op = CL_REQ_NAMED, .node = 0, .n = 7, .timeout_ms = 500};
    strcpy(c.name, "fwd-remote");
    assert_int_equal(cl_run(a.sys, a.drv, &c), 0);
    assert_int_equal(c.rc, 0);
    assert_true(TU_WAIT_UNTIL(dl(&a, MX_DL_WRONG_RESPONDER) == wrong + 1, 5000));
    assert_true(TU_WAIT_UNTIL(atomic_load(&a.drv_st.timeouts) == 1, 5000));
    assert_int_equal(atomic_load(&a.drv_st.replies), 0);
    c = (struct cl_cmd){.op = CL_REQ_NAMED, .node = 0, .n = 20, .timeout_ms = 3000};
    strcpy(c.name, "fwd-local");
    assert_int_equal(request_echo(&a, &c), 0);
    assert_int_equal(atomic_load(&a.drv_st.last_n), 21);
    assert_int_equal(atomic_load(&a.drv_st.timeouts), 1);
    node_stop(&a);
    node_stop(&b);
}

/* What a lease manager would know from Redis: per singleton the newest
 * epoch and its holder (test_fence covers the real one). */
struct fake_leases {
    uint32_t sid[2];
    uint64_t seq[2], holder[2];
};

static bool fake_epoch_ok(void *ctx, uint64_t from, uint64_t epoch)
{
    struct fake_leases *f = ctx;
    for (int i = 0; i < 2; i++)
        if (f->sid[i] == (uint32_t)(epoch >> MX_EPOCH_SEQ_BITS))
            return (epoch & MX_EPOCH_SEQ_MASK) < f->seq[i] ||
                   ((epoch & MX_EPOCH_SEQ_MASK) == f->seq[i] && from == f->holder[i]);
    return false;
}

static void test_epoch_fence(void **unused)
{
    struct node a, b;
    node_start(&a, "a");
    node_start(&b, "b");
    connect_pair(&a, &b);
    uint64_t bid = mx_system_node_id(b.sys);
    uint32_t sid = mx_epoch_sid("like-sync"), other = mx_epoch_sid("outbox");
    assert_int_not_equal(sid, other);
    static struct fake_leases fl;
    fl = (struct fake_leases){
        {sid, other}, {5, 1}, {mx_system_node_id(a.sys), mx_system_node_id(a.sys)}};
    mx_remote_set_epoch_check(b.rem, fake_epoch_ok, &fl);

    struct cl_cmd c = {
        .op = CL_SEND_NAMED, .node = bid, .count = 1, .epoch = mx_epoch_make(sid, 5)};
    strcpy(c.name, "sink");
    assert_int_equal(cl_run(a.sys, a.drv, &c), 0);
    assert_true(TU_WAIT_UNTIL(atomic_load(&b.sink_st.received) == 1, 5000));
    assert_int_equal(atomic_load(&b.sink_st.last_epoch), mx_epoch_make(sid, 5));
    /* the same singleton with an older epoch: stale at the receiver */
    uint64_t stale = dl(&b, MX_DL_STALE_EPOCH);
    c.epoch = mx_epoch_make(sid, 4);
    assert_int_equal(cl_run(a.sys, a.drv, &c), 0);
    assert_int_equal(c.rc, 0); /* the sender cannot know */
    assert_true(TU_WAIT_UNTIL(dl(&b, MX_DL_STALE_EPOCH) == stale + 1, 5000));
    TU_ASSERT_CMP(drops(&b, MX_RDROP_REFUSED), >=, 1);
    /* another singleton's low epoch is its own business; equal is fine */
    c.epoch = mx_epoch_make(other, 1);
    assert_int_equal(cl_run(a.sys, a.drv, &c), 0);
    c.epoch = mx_epoch_make(sid, 5);
    assert_int_equal(cl_run(a.sys, a.drv, &c), 0);
    assert_true(TU_WAIT_UNTIL(atomic_load(&b.sink_st.received) == 3, 5000));
    assert_int_equal(dl(&b, MX_DL_STALE_EPOCH), stale + 1);
    /* an epoch the registry has not named (newer), or of an unknown
     * singleton, is refused before it can touch the fence */
    uint64_t unv = drops(&b, MX_RDROP_BAD_EPOCH);
    c.epoch = mx_epoch_make(sid, 6);
    assert_int_equal(cl_run(a.sys, a.drv, &c), 0);
    c.epoch = mx_epoch_make(mx_epoch_sid("nobody"), 1);
    assert_int_equal(cl_run(a.sys, a.drv, &c), 0);
    assert_true(TU_WAIT_UNTIL(drops(&b, MX_RDROP_BAD_EPOCH) == unv + 2, 5000));
    assert_int_equal(atomic_load(&b.sink_st.received), 3);
    assert_true(mx_epoch_admit(b.sys, mx_epoch_make(sid, 5))); /* the fence is still at 5 */
    /* the current epoch from a node that is not its holder: refused too */
    fl.holder[0] = bid;
    c.epoch = mx_epoch_make(sid, 5);
    assert_int_equal(cl_run(a.sys, a.drv, &c), 0);
    assert_true(TU_WAIT_UNTIL(drops(&b, MX_RDROP_BAD_EPOCH) == unv + 3, 5000));
    mx_remote_set_epoch_check(b.rem, NULL, NULL);
    /* local sends are fenced too */
    assert_false(mx_epoch_admit(b.sys, mx_epoch_make(sid, 3)));
    assert_true(mx_epoch_admit(b.sys, mx_epoch_make(sid, 6)));
    assert_false(mx_epoch_admit(b.sys, mx_epoch_make(sid, 5)));
    assert_true(mx_epoch_admit(b.sys, 0));
    struct mx_msg *m;
    mx_msg_encode(MX_T_test_kv, &(struct mx_m_test_kv){.sender = 1, .seq = 1}, &m);
    m->env.epoch = mx_epoch_make(sid, 2);
    assert_int_equal(mx_sys_send(b.sys, b.sink, m), MX_ESTALE);
    mx_msg_free(m);
    node_stop(&a);
    node_stop(&b);
}

/* ---- hostile frames ---- */

static size_t frame(uint8_t *out, uint32_t type, struct mx_addr to, const char *name,
                    const uint8_t *body, uint32_t blen)
{
    struct mx_env e = {.type = type, .to = to, .flags = name ? MX_ENVF_NAMED : 0};
    uint16_t nl = name ? (uint16_t)strlen(name) : 0;
    assert_int_equal(mx_env_encode(&e, blen, nl, out), 0);
    if (nl)
        memcpy(out + MX_ENV_WIRE_SIZE, name, nl);
    memcpy(out + MX_ENV_WIRE_SIZE + nl, body, blen);
    return MX_ENV_WIRE_SIZE + nl + blen;
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* append one unnamed frame to a batch being built at b (*len bytes so far,
 * starting at 8) */
static void batch_add(uint8_t *b, size_t *len, const struct mx_env *e, const uint8_t *body,
                      size_t blen)
{
    assert_int_equal(mx_env_encode(e, (uint32_t)blen, 0, b + *len + 4), 0);
    memcpy(b + *len + 4 + MX_ENV_WIRE_SIZE, body, blen);
    put32(b + *len, (uint32_t)(MX_ENV_WIRE_SIZE + blen));
    *len += 4 + MX_ENV_WIRE_SIZE + blen;
}

static void batch_send(nng_socket s, uint8_t *b, size_t len, uint32_t count)
{
    memcpy(b, "MB\1\0", 4);
    put32(b + 4, count);
    assert_int_equal(nng_send(s, b, len, 0), 0);
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void test_hostile_frames(void **unused)
{
    struct node b;
    node_start(&b, "b");
    uint64_t bid = mx_system_node_id(b.sys);
    nng_socket s;
    assert_int_equal(nng_push0_open(&s), 0);
    /* redial fast once the node drops the connection (the oversized message
     * below): nng's default 100 ms-and-up backoff, under TSan on a loaded
     * machine, outlasted the wait for the good frame in 1 of 12 runs */
    nng_socket_set_ms(s, NNG_OPT_RECONNMINT, 20);
    nng_socket_set_ms(s, NNG_OPT_RECONNMAXT, 50);
    assert_int_equal(nng_dial(s, b.url, NULL, 0), 0);
    static uint8_t f[1 << 16];
    uint8_t body[64];
    size_t blen;
    struct mx_m_test_echo ok = {7, MX_STR("x")};
    assert_int_equal(mx_m_test_echo_encode(&ok, body, sizeof(body), &blen), 0);
    struct {
        const char *what;
        enum mx_rdrop why;
        size_t len;
    } cases[32];
    uint8_t gk0[64];
    size_t gl0;
    struct mx_m_test_kv kv0 = {.sender = 1, .seq = 1};
    assert_int_equal(mx_m_test_kv_encode(&kv0, gk0, sizeof(gk0), &gl0), 0);
    int nc = 0;
    size_t len;
#define SEND(w, r)                                                                                 \
    do {                                                                                           \
        assert_int_equal(nng_send(s, f, len, 0), 0);                                               \
        cases[nc].what = (w);                                                                      \
        cases[nc++].why = (r);                                                                     \
    } while (0)
    /* random bytes */
    srand(42);
    len = 300;
    for (size_t i = 0; i < len; i++)
        f[i] = (uint8_t)rand();
    SEND("random", MX_RDROP_BAD_HEADER);
    /* shorter than a header */
    len = 10;
    memcpy(f, "MX\1\0", 4);
    SEND("short", MX_RDROP_BAD_HEADER);
    /* body length past the end of the frame */
    len = frame(f, MX_T_test_echo, b.echo, NULL, body, (uint32_t)blen);
    put32(f + 88, (uint32_t)blen + 50);
    SEND("past-end", MX_RDROP_BAD_HEADER);
    /* truncated msgpack body (lengths agree, the array is cut) */
    len = frame(f, MX_T_test_echo, b.echo, NULL, body, (uint32_t)blen - 1);
    SEND("truncated", MX_RDROP_BAD_BODY);
    /* wrong field types: a string where n (U64) belongs */
    uint8_t wrong[] = {0x92, 0xa1, 'x', 0xa1, 'y'};
    len = frame(f, MX_T_test_echo, b.echo, NULL, wrong, sizeof(wrong));
    SEND("wrong-types", MX_RDROP_BAD_BODY);
    /* a string claiming 4 GB inside a small body */
    uint8_t liar[] = {0x92, 0x01, 0xdb, 0xff, 0xff, 0xff, 0xf0, 'a'};
    len = frame(f, MX_T_test_echo, b.echo, NULL, liar, sizeof(liar));
    SEND("lying-str", MX_RDROP_BAD_BODY);
    /* a header claiming a 100 MB body */
    len = frame(f, MX_T_test_echo, b.echo, NULL, body, (uint32_t)blen);
    put32(f + 88, 100u << 20);
    SEND("100MB", MX_RDROP_TOO_BIG);
    /* unknown type, and a type only the local runtime may create */
    len = frame(f, 999, b.echo, NULL, body, (uint32_t)blen);
    SEND("unknown-type", MX_RDROP_UNKNOWN_TYPE);
    len = frame(f, MX_T_sys_stop, b.echo, NULL, (const uint8_t *)"\x91\x00", 2);
    SEND("sys_stop", MX_RDROP_LOCAL_ONLY);
    /* node-local controls: a peer cannot drain or stop this node */
    len = frame(f, MX_T_http_drain, b.echo, NULL, (const uint8_t *)"\x91\x00", 2);
    SEND("http_drain", MX_RDROP_LOCAL_ONLY);
    len = frame(f, MX_T_shutdown_cmd, b.echo, NULL, (const uint8_t *)"\x91\x01", 2);
    SEND("shutdown_cmd", MX_RDROP_LOCAL_ONLY);
    /* a peer cannot toggle a like for someone, nor answer a pending one */
    {
        uint8_t lb[256];
        size_t ll;
        struct mx_m_like_req lq = {
            .op = 1, .ocid = MX_STR("0123abcd"), .account = MX_STR("acct"), .ign = MX_STR("x")};
        assert_int_equal(mx_m_like_req_encode(&lq, lb, sizeof lb, &ll), 0);
        len = frame(f, MX_T_like_req, b.echo, NULL, lb, (uint32_t)ll);
        SEND("like_req", MX_RDROP_LOCAL_ONLY);
        struct mx_m_like_rep lr = {.status = 0, .liked = true, .count = 1};
        assert_int_equal(mx_m_like_rep_encode(&lr, lb, sizeof lb, &ll), 0);
        len = frame(f, MX_T_like_rep, b.echo, NULL, lb, (uint32_t)ll);
        SEND("like_rep", MX_RDROP_LOCAL_ONLY);
    }
    /* a name longer than allowed, and a name with a space */
    len = frame(f, MX_T_test_echo, (struct mx_addr){bid, 0}, "echo", body, (uint32_t)blen);
    f[92] = 0x88;
    f[93] = 0x13; /* name_len 5000 */
    SEND("huge-name", MX_RDROP_BAD_HEADER);
    len = frame(f, MX_T_test_echo, (struct mx_addr){bid, 0}, "ec o", body, (uint32_t)blen);
    SEND("bad-name", MX_RDROP_BAD_HEADER);
    /* a singleton's epoch no registry named: it would raise the fence of
     * mysql-health so high that its real holder is refused until restart */
    len = frame(f, MX_T_test_echo, b.echo, NULL, body, (uint32_t)blen);
    put64(f + 80, mx_epoch_make(mx_epoch_sid("mysql-health"), MX_EPOCH_SEQ_MASK));
    SEND("huge-epoch", MX_RDROP_BAD_EPOCH);
    /* a store completion: would make mysql-health exit on MX_ESTALE */
    len = frame(f, MX_T_store_job_done, b.echo, NULL, (const uint8_t *)"\x92\xd0\x8e\x01", 4);
    SEND("store_job_done", MX_RDROP_LOCAL_ONLY);
    /* wrong node, unknown name */
    len = frame(f, MX_T_test_echo, (struct mx_addr){bid + 1, b.echo.actor}, NULL, body,
                (uint32_t)blen);
    SEND("other-node", MX_RDROP_UNKNOWN_RECEIVER);
    len = frame(f, MX_T_test_echo, (struct mx_addr){bid, 0}, "nobody", body, (uint32_t)blen);
    SEND("unknown-name", MX_RDROP_UNKNOWN_RECEIVER);
#undef SEND
    uint64_t want[MX_RDROP_COUNT] = {0};
    for (int i = 0; i < nc; i++)
        want[cases[i].why]++;
    struct mx_remote_stats st;
    assert_true(TU_WAIT_UNTIL((mx_remote_stats(b.rem, &st), st.frames_in == (uint64_t)nc), 5000));
    for (int r = 0; r < MX_RDROP_COUNT; r++)
        if (st.drops[r] != want[r])
            fprintf(stderr, "drop %s: got %llu want %llu\n", mx_rdrop_name(r),
                    (unsigned long long)st.drops[r], (unsigned long long)want[r]);
    for (int r = 0; r < MX_RDROP_COUNT; r++)
        assert_int_equal(st.drops[r], want[r]);
    assert_int_equal(st.delivered, 0);

    /* forged replies: guessed (sequential) correlation ids, and the right
     * id from the wrong sender. None is taken; the request times out. */
    struct cl_cmd rq = {.op = CL_REQ_ADDR, .to = b.sink, .n = 1, .timeout_ms = 1500};
    assert_int_equal(cl_run(b.sys, b.drv, &rq), 0);
    assert_int_equal(rq.rc, 0);
    uint64_t late = dl(&b, MX_DL_LATE_REPLY), wr = dl(&b, MX_DL_WRONG_RESPONDER);
    static uint8_t batch[1100 * 128 + 8];
    size_t bl = 8;
    uint8_t rb[64];
    size_t rbl;
    struct mx_m_test_echo rep = {1000, MX_STR("forged")};
    assert_int_equal(mx_m_test_echo_encode(&rep, rb, sizeof rb, &rbl), 0);
    for (uint64_t corr = 1; corr <= 1001; corr++) {
        struct mx_env e = {.type = MX_T_test_echo,
                           .to = b.drv,
                           .flags = MX_ENVF_REPLY,
                           .corr = corr <= 1000 ? corr : rq.corr,
                           .from = {bid ^ 0x5a5a, (1ull << 32) | 3}};
        batch_add(batch, &bl, &e, rb, rbl);
    }
    batch_send(s, batch, bl, 1001);
    assert_true(TU_WAIT_UNTIL(
        dl(&b, MX_DL_LATE_REPLY) - late + dl(&b, MX_DL_WRONG_RESPONDER) - wr == 1001, 5000));
    assert_int_equal(dl(&b, MX_DL_WRONG_RESPONDER), wr + 1);
    assert_true(TU_WAIT_UNTIL(atomic_load(&b.drv_st.timeouts) == 1, 5000));
    assert_int_equal(atomic_load(&b.drv_st.replies), 0);

    /* 1,100 forged singleton ids, each with an epoch: none may claim a
     * fence slot (1,024 of them once made the fence fail open) */
    static struct fake_leases fl;
    fl = (struct fake_leases){{mx_epoch_sid("like-sync"), 0}, {3, 0}, {bid ^ 1, 0}};
    mx_remote_set_epoch_check(b.rem, fake_epoch_ok, &fl);
    uint64_t unv = drops(&b, MX_RDROP_BAD_EPOCH);
    bl = 8;
    for (uint32_t i = 0; i < 1100; i++) {
        struct mx_env e = {
            .type = MX_T_test_kv, .to = b.sink, .epoch = mx_epoch_make(0x100000u + i, 1u << 30)};
        batch_add(batch, &bl, &e, gk0, gl0);
    }
    batch_send(s, batch, bl, 1100);
    assert_true(TU_WAIT_UNTIL(drops(&b, MX_RDROP_BAD_EPOCH) == unv + 1100, 5000));
    assert_int_equal(atomic_load(&b.sink_st.received), 0);
    /* the fence still works for a new singleton: it did not fail open */
    uint32_t fresh = mx_epoch_sid("fresh-singleton");
    assert_true(mx_epoch_admit(b.sys, mx_epoch_make(fresh, 5)));
    assert_false(mx_epoch_admit(b.sys, mx_epoch_make(fresh, 4)));
    mx_remote_set_epoch_check(b.rem, NULL, NULL);

    /* a message over nng's size limit: the connection is dropped by nng */
    size_t big = (17u << 20);
    uint8_t *huge = calloc(1, big);
    assert_int_equal(nng_send(s, huge, big, 0), 0);
    free(huge);
    /* raw TCP garbage at the port */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)mx_remote_port(b.rem))};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    char junk[4096];
    memset(junk, 0xff, sizeof(junk));
    TU_ASSERT_CMP(write(fd, junk, sizeof(junk)), >, 0);
    close(fd);

    /* the node still serves: a good frame is delivered (the push socket
     * redials after nng dropped it) */
    uint8_t gk[64];
    size_t gl;
    struct mx_m_test_kv kv = {.sender = 1, .seq = 1};
    assert_int_equal(mx_m_test_kv_encode(&kv, gk, sizeof(gk), &gl), 0);
    len = frame(f, MX_T_test_kv, (struct mx_addr){bid, 0}, "sink", gk, (uint32_t)gl);
    bool got = false;
    for (int i = 0; i < 200 && !got; i++) { /* <= 20 s; one send each 100 ms */
        nng_send(s, f, len, NNG_FLAG_NONBLOCK);
        got = TU_WAIT_UNTIL(atomic_load(&b.sink_st.received) > 0, 100);
    }
    assert_true(got);
    nng_close(s);
    node_stop(&b);
}

static uint8_t g_raw[512]; /* raw_send's frame */
static size_t g_raw_len;

/* A raw push client on url with tls (NULL: plaintext) sends one good
 * frame to b's sink. */
static void raw_send(nng_socket *s, const char *url, nng_tls_config *tls, uint64_t bid)
{
    assert_int_equal(nng_push0_open(s), 0);
    nng_dialer d;
    assert_int_equal(nng_dialer_create(&d, *s, url), 0);
    if (tls)
        assert_int_equal(nng_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, tls), 0);
    nng_socket_set_ms(*s, NNG_OPT_RECONNMINT, 20);
    nng_socket_set_ms(*s, NNG_OPT_RECONNMAXT, 50);
    assert_int_equal(nng_dialer_start(d, NNG_FLAG_NONBLOCK), 0);
    uint8_t gk[64];
    size_t gl;
    struct mx_m_test_kv kv = {.sender = 9, .seq = 1};
    assert_int_equal(mx_m_test_kv_encode(&kv, gk, sizeof(gk), &gl), 0);
    g_raw_len = frame(g_raw, MX_T_test_kv, (struct mx_addr){bid, 0}, "sink", gk, (uint32_t)gl);
    nng_socket_set_ms(*s, NNG_OPT_SENDTIMEO, 100);
    nng_send(*s, g_raw, g_raw_len, 0); /* a refused client: times out, no pipe takes it */
}

static const char *gen_certs(char *dir, size_t cap, const char *names)
{
    assert_int_equal(mx_proc_tmpdir(NULL, "certs", dir, cap), 0);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s %s %s >/dev/null", MX_GEN_CERTS, dir, names);
    assert_int_equal(system(cmd), 0);
    return dir;
}

/* Start refused_client_main in a child process. The clients the node
 * refuses run outside the test's process because nng 1.5.2's dialer has a
 * use-after-free when the peer closes a pipe the dialer is starting (fixed
 * in nng 1.6.0): in process, such a client corrupted the test's heap or
 * hung nng_close in about 1 run in 5 once the handshakes got fast. */
static void refused_client(struct mx_proc *p, const char *url, const char *ca, const char *both,
                           uint64_t bid)
{
    char bids[24];
    snprintf(bids, sizeof bids, "%llu", (unsigned long long)bid);
    const char *argv[] = {"/proc/self/exe", "--refused-client", url, ca, both, bids, NULL};
    struct mx_proc_opts o = {.path = "/proc/self/exe", .argv = argv};
    assert_int_equal(mx_proc_start(p, &o), 0);
}

/* Mutual TLS: two nodes with certificates from one CA talk; a client with
 * no certificate, or one from another CA, is refused and counted, and a
 * plaintext client gets nothing through. */
static void test_tls(void **unused)
{
    char certs[128], other[128], p[256];
    gen_certs(certs, sizeof certs, "a b");
    gen_certs(other, sizeof other, "evil");
    struct node a, b;
    node_start_tls(&a, "a", certs, "a");
    node_start_tls(&b, "b", certs, "b");
    TU_ASSERT_CMP(strncmp(b.url, "tls+tcp://", 10), ==, 0);
    connect_pair(&a, &b);
    uint64_t bid = mx_system_node_id(b.sys);
    struct cl_cmd c = {.op = CL_REQ_ADDR, .to = b.echo, .n = 5, .timeout_ms = 3000};
    assert_int_equal(request_echo(&a, &c), 0);
    assert_int_equal(atomic_load(&a.drv_st.last_n), 6);
    struct mx_remote_stats st;
    mx_remote_stats(b.rem, &st);
    uint64_t in0 = st.frames_in;
    assert_int_equal(st.pipes_refused_tls, 0);

    /* no client certificate (the client checks the server's: it is good) */
    snprintf(p, sizeof p, "%s/ca.pem", certs);
    struct mx_proc c1 = {0}, c2 = {0};
    refused_client(&c1, b.url, p, "-", bid);
    assert_true(TU_WAIT_UNTIL((mx_remote_stats(b.rem, &st), st.pipes_refused_tls >= 1), 5000));
    mx_proc_release(&c1);
    /* a certificate from another CA (it trusts ours, we do not trust it) */
    char both[256], cmd[600];
    snprintf(both, sizeof both, "%s/evil.both", other);
    snprintf(cmd, sizeof cmd, "cat %s/evil.pem %s/evil.key > %s", other, other, both);
    assert_int_equal(system(cmd), 0);
    uint64_t refused = st.pipes_refused_tls;
    refused_client(&c2, b.url, p, both, bid);
    assert_true(TU_WAIT_UNTIL((mx_remote_stats(b.rem, &st), st.pipes_refused_tls > refused), 5000));
    mx_proc_release(&c2);
    /* the other way round: a server with another CA's certificate is
     * refused by our client inside the handshake (no pipe on either side) */
    nng_tls_config *evil_srv, *cli;
    assert_int_equal(nng_tls_config_alloc(&evil_srv, NNG_TLS_MODE_SERVER), 0);
    assert_int_equal(nng_tls_config_cert_key_file(evil_srv, both, NULL), 0);
    assert_int_equal(nng_tls_config_alloc(&cli, NNG_TLS_MODE_CLIENT), 0);
    assert_int_equal(nng_tls_config_ca_file(cli, p), 0);
    nng_socket es, ec;
    nng_listener el;
    nng_dialer ed;
    int eport;
    char eurl[64];
    assert_int_equal(nng_pull0_open(&es), 0);
    assert_int_equal(nng_listener_create(&el, es, "tls+tcp://127.0.0.1:0"), 0);
    assert_int_equal(nng_listener_set_ptr(el, NNG_OPT_TLS_CONFIG, evil_srv), 0);
    assert_int_equal(nng_listener_start(el, 0), 0);
    assert_int_equal(nng_listener_get_int(el, NNG_OPT_TCP_BOUND_PORT, &eport), 0);
    snprintf(eurl, sizeof eurl, "tls+tcp://127.0.0.1:%d", eport);
    assert_int_equal(nng_push0_open(&ec), 0);
    assert_int_equal(nng_dialer_create(&ed, ec, eurl), 0);
    assert_int_equal(nng_dialer_set_ptr(ed, NNG_OPT_TLS_CONFIG, cli), 0);
    assert_int_equal(nng_dialer_start(ed, 0), NNG_EPEERAUTH); /* blocks until refused */
    nng_close(ec);
    nng_close(es);
    nng_tls_config_free(cli);
    nng_tls_config_free(evil_srv);
    /* plaintext to the TLS port: the handshake fails inside the library */
    char plain[64];
    snprintf(plain, sizeof plain, "tcp://127.0.0.1:%d", mx_remote_port(b.rem));
    nng_socket s3;
    raw_send(&s3, plain, NULL, bid);
    /* nothing of theirs got in; the members still talk */
    mx_remote_stats(b.rem, &st);
    assert_int_equal(st.frames_in, in0);
    assert_int_equal(atomic_load(&b.sink_st.received), 0);
    c = (struct cl_cmd){.op = CL_REQ_ADDR, .to = b.echo, .n = 8, .timeout_ms = 3000};
    assert_int_equal(request_echo(&a, &c), 0);
    assert_int_equal(atomic_load(&a.drv_st.last_n), 9);
    /* a node with TLS refuses to dial a peer without it only by failing to
     * connect; a node without TLS cannot even name a tls+tcp:// peer */
    struct node pl;
    node_start(&pl, "plain");
    assert_int_equal(mx_remote_add_peer(pl.rem, bid, b.url), MX_EINVAL);
    node_stop(&pl);
    nng_close(s3);
    mx_proc_rmdir(certs);
    mx_proc_rmdir(other);
    node_stop(&a);
    node_stop(&b);
}

/* Messages of every shape cross a TLS link whole and in order with the
 * engine's record joining (mx_tls_engine.c holds tlstran's 8-byte length
 * and writes it with the message): an empty message (length 0, never
 * held: nothing follows it), one byte, one of 100 KiB (several records)
 * and a stream of 1,000 small ones. A held length that nothing followed
 * would stall the next receive until the timeout. */
static void test_tls_frames(void **unused)
{
    char certs[128], ca[256], a_both[256], b_both[256], cmd[1200], err[512];
    gen_certs(certs, sizeof certs, "a b");
    snprintf(ca, sizeof ca, "%s/ca.pem", certs);
    snprintf(a_both, sizeof a_both, "%s/a.both", certs);
    snprintf(b_both, sizeof b_both, "%s/b.both", certs);
    snprintf(cmd, sizeof cmd, "cat %s/a.pem %s/a.key > %s && cat %s/b.pem %s/b.key > %s", certs,
             certs, a_both, certs, certs, b_both);
    assert_int_equal(system(cmd), 0);
    char crt[256], key[256];
    snprintf(crt, sizeof crt, "%s/a.pem", certs);
    snprintf(key, sizeof key, "%s/a.key", certs);
    mx_tls_t *t; /* registers the engine, as a node does */
    assert_int_equal(mx_tls_load(ca, crt, key, &t, err, sizeof err), 0);
    nng_tls_config *srv, *cli;
    assert_int_equal(nng_tls_config_alloc(&srv, NNG_TLS_MODE_SERVER), 0);
    assert_int_equal(nng_tls_config_cert_key_file(srv, a_both, NULL), 0);
    assert_int_equal(nng_tls_config_alloc(&cli, NNG_TLS_MODE_CLIENT), 0);
    assert_int_equal(nng_tls_config_ca_file(cli, ca), 0);
    assert_int_equal(nng_tls_config_cert_key_file(cli, b_both, NULL), 0);
    nng_socket in, out;
    nng_listener l;
    nng_dialer d;
    int port;
    char url[64];
    assert_int_equal(nng_pull0_open(&in), 0);
    assert_int_equal(nng_socket_set_ms(in, NNG_OPT_RECVTIMEO, 5000), 0);
    assert_int_equal(nng_socket_set_size(in, NNG_OPT_RECVMAXSZ, 1 << 20), 0);
    assert_int_equal(nng_listener_create(&l, in, "tls+tcp://127.0.0.1:0"), 0);
    assert_int_equal(nng_listener_set_ptr(l, NNG_OPT_TLS_CONFIG, srv), 0);
    assert_int_equal(nng_listener_start(l, 0), 0);
    assert_int_equal(nng_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT, &port), 0);
    snprintf(url, sizeof url, "tls+tcp://127.0.0.1:%d", port);
    assert_int_equal(nng_push0_open(&out), 0);
    assert_int_equal(nng_socket_set_ms(out, NNG_OPT_SENDTIMEO, 5000), 0);
    assert_int_equal(nng_dialer_create(&d, out, url), 0);
    assert_int_equal(nng_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, cli), 0);
    assert_int_equal(nng_dialer_start(d, 0), 0);
    enum { SMALL = 1000 };
    static const size_t sizes[] = {0, 1, 100 * 1024};
    static uint8_t big[100 * 1024];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (uint8_t)(i * 7 + 3);
    for (size_t k = 0; k < 3 + SMALL; k++) {
        size_t n = k < 3 ? sizes[k] : 1 + k % 200;
        assert_int_equal(nng_send(out, big, n, 0), 0);
        void *got;
        size_t gn;
        int rc = nng_recv(in, &got, &gn, NNG_FLAG_ALLOC);
        TU_ASSERT_CMP(rc, ==, 0); /* a stalled record would time out here */
        TU_ASSERT_CMP(gn, ==, n);
        if (n)
            assert_memory_equal(got, big, n);
        nng_free(got, gn);
    }
    nng_close(out);
    nng_close(in);
    nng_tls_config_free(cli);
    nng_tls_config_free(srv);
    mx_tls_free(t);
    mx_proc_rmdir(certs);
}

/* Inbound connections are capped: more are closed at once and counted,
 * and those let in still deliver. */
static void test_pipe_limit(void **unused)
{
    struct node b;
    g_max_pipes = 2;
    node_start(&b, "b");
    g_max_pipes = 0;
    uint64_t bid = mx_system_node_id(b.sys);
    nng_socket s[5];
    for (int i = 0; i < 5; i++)
        raw_send(&s[i], b.url, NULL, bid);
    struct mx_remote_stats st;
    assert_true(TU_WAIT_UNTIL((mx_remote_stats(b.rem, &st), st.pipes_refused_limit >= 3), 5000));
    assert_int_equal(st.pipes_in, 2);
    /* the two admitted ones deliver; the others have no connection */
    int64_t dl = tu_now_ms() + 5000;
    while (atomic_load(&b.sink_st.received) < 2 && tu_now_ms() < dl)
        for (int i = 0; i < 5; i++)
            if (nng_send(s[i], g_raw, g_raw_len, NNG_FLAG_NONBLOCK) != 0)
                usleep(1000);
    TU_ASSERT_CMP(atomic_load(&b.sink_st.received), >=, 2);
    mx_remote_stats(b.rem, &st);
    assert_int_equal(st.pipes_in, 2);
    for (int i = 0; i < 5; i++)
        nng_close(s[i]);
    assert_true(TU_WAIT_UNTIL((mx_remote_stats(b.rem, &st), st.pipes_in == 0), 5000));
    node_stop(&b);
}

/* A connection that completes no message for idle_ms is closed and
 * counted (a frame stalled half-way, with nng holding its buffer), while
 * quiet peers stay connected through heartbeats. */
static void test_idle_timeout(void **unused)
{
    struct node a, b;
    g_idle_ms = 300;
    node_start(&a, "a");
    node_start(&b, "b");
    g_idle_ms = 0;
    connect_pair(&a, &b);
    /* a raw peer: SP handshake as push, then 8 KiB of a frame claiming 1 MiB */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)mx_remote_port(b.rem))};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    const uint8_t sp[8] = {0, 'S', 'P', 0, 0, 0x50, 0, 0}; /* push0 */
    assert_int_equal(write(fd, sp, 8), 8);
    uint8_t hdr[8];
    assert_int_equal(read(fd, hdr, 8), 8);                /* the node's own SP header: a pipe now */
    uint8_t part[8 + 8192] = {0, 0, 0, 0, 0, 0x10, 0, 0}; /* length 1 MiB, big-endian */
    assert_int_equal(write(fd, part, sizeof part), (ssize_t)sizeof part);
    struct mx_remote_stats st;
    assert_true(TU_WAIT_UNTIL((mx_remote_stats(b.rem, &st), st.pipes_timed_out >= 1), 5000));
    char c;
    assert_int_equal(read(fd, &c, 1), 0); /* closed by the node */
    close(fd);
    /* the members were quiet all along (over 3 x idle_ms): still connected */
    int64_t t0 = tu_now_ms();
    while (tu_now_ms() - t0 < 1000)
        usleep(50 * 1000); /* quiet on purpose: the heartbeats must carry the links */
    assert_true(mx_remote_peer_up(a.rem, mx_system_node_id(b.sys)));
    mx_remote_stats(a.rem, &st);
    assert_int_equal(st.pipes_timed_out, 0);
    mx_remote_stats(b.rem, &st);
    assert_int_equal(st.pipes_timed_out, 1);
    assert_int_equal(st.drops[MX_RDROP_BAD_BATCH], 0); /* heartbeats are not frames */
    struct cl_cmd c2 = {.op = CL_REQ_ADDR, .to = b.echo, .n = 1, .timeout_ms = 3000};
    assert_int_equal(request_echo(&a, &c2), 0);
    node_stop(&a);
    node_stop(&b);
}

/* A peer that goes away: sends fail fast, requests in flight time out. */
static void test_dead_peer(void **unused)
{
    struct node a, b;
    node_start(&a, "a");
    node_start(&b, "b");
    connect_pair(&a, &b);
    uint64_t bid = mx_system_node_id(b.sys);
    struct cl_cmd c = {.op = CL_REQ_ADDR, .to = b.echo, .n = 1, .timeout_ms = 2000};
    assert_int_equal(request_echo(&a, &c), 0);
    /* b stops answering: its listener closes */
    assert_int_equal(mx_system_stop(b.sys, 5000), 0);
    mx_remote_stop(b.rem);
    mx_system_free(b.sys);
    assert_true(TU_WAIT_UNTIL(!mx_remote_peer_up(a.rem, bid), 5000));
    uint64_t down = dl(&a, MX_DL_NODE_DOWN);
    int64_t t0 = tu_now_ms();
    c = (struct cl_cmd){.op = CL_SEND_ADDR, .to = b.sink, .count = 100};
    assert_int_equal(cl_run(a.sys, a.drv, &c), 0);
    assert_int_equal(c.failed, 100);
    assert_int_equal(dl(&a, MX_DL_NODE_DOWN), down + 100);
    TU_ASSERT_CMP(tu_now_ms() - t0, <, 1000);
    c = (struct cl_cmd){.op = CL_REQ_ADDR, .to = b.echo, .n = 1, .timeout_ms = 300};
    assert_int_equal(cl_run(a.sys, a.drv, &c), 0);
    assert_int_equal(c.rc, MX_ENOACTOR);
    node_stop(&a);
}

/* A request whose reply never comes: the requester's timeout fires. */
static void test_request_timeout(void **unused)
{
    struct node a, b;
    node_start(&a, "a");
    node_start(&b, "b");
    connect_pair(&a, &b);
    /* the sink never replies */
    struct cl_cmd c = {.op = CL_REQ_ADDR, .to = b.sink, .n = 1, .timeout_ms = 200};
    assert_int_equal(cl_run(a.sys, a.drv, &c), 0);
    assert_int_equal(c.rc, 0);
    assert_true(TU_WAIT_UNTIL(atomic_load(&a.drv_st.timeouts) == 1, 3000));
    assert_int_equal(atomic_load(&a.drv_st.replies), 0);
    node_stop(&a);
    node_stop(&b);
}

/* mx_actor_peek copies pending messages on the actor's thread. The actor
 * blocks in its handler until the test opens the gate; it counts each
 * entry, so the test knows it is inside. */
static sem_t g_peek_gate;
static _Atomic int g_peek_entered;

static int slow_recv(mx_actor_t *self, void *state, struct mx_msg *m)
{
    if (m->env.type == MX_T_test_echo) {
        atomic_fetch_add(&g_peek_entered, 1);
        sem_wait(&g_peek_gate);
    }
    return 0;
}

struct gate_opener {
    mx_system_t *sys;
    struct mx_addr a;
    int64_t depth; /* open once this many messages are pending */
};

static void *open_gate_at_depth(void *arg)
{
    struct gate_opener *g = arg;
    struct mx_actor_stats as;
    TU_WAIT_UNTIL(mx_actor_stats(g->sys, g->a, &as) == 0 && as.depth >= g->depth, 5000);
    sem_post(&g_peek_gate);
    return NULL;
}

static void test_peek(void **unused)
{
    mx_system_t *sys;
    struct mx_system_opts o = {.node_name = "p", .schedulers = 1, .offload_threads = 1};
    assert_int_equal(mx_system_start(&o, &sys), 0);
    sem_init(&g_peek_gate, 0, 0);
    atomic_store(&g_peek_entered, 0);
    static const struct mx_behaviour slow = {.name = "slow", .receive = slow_recv};
    struct mx_addr a;
    assert_int_equal(mx_spawn(sys, &slow, NULL, NULL, &a), 0);
    /* the actor blocks on a test_echo; the peek (control lane) runs before
     * the test_kv messages queued behind it */
    struct mx_msg *blk;
    mx_msg_encode(MX_T_test_echo, &(struct mx_m_test_echo){1, MX_STR("z")}, &blk);
    assert_int_equal(mx_sys_send(sys, a, blk), 0);
    assert_true(TU_WAIT_UNTIL(atomic_load(&g_peek_entered) == 1, 5000)); /* inside the handler */
    struct mx_actor_stats as0;
    assert_int_equal(mx_actor_stats(sys, a, &as0), 0);
    for (uint64_t i = 0; i < 5; i++) {
        struct mx_msg *m;
        mx_msg_encode(MX_T_test_kv, &(struct mx_m_test_kv){.sender = 9, .seq = i}, &m);
        assert_int_equal(mx_sys_send(sys, a, m), 0);
    }
    /* the handler returns once the peek is queued too: 5 + 1 more pending */
    struct gate_opener go = {sys, a, as0.depth + 6};
    pthread_t opener;
    assert_int_equal(pthread_create(&opener, NULL, open_gate_at_depth, &go), 0);
    struct mx_msg **v;
    uint32_t n;
    assert_int_equal(mx_actor_peek(sys, a, 3, 2000, &v, &n), 0);
    pthread_join(opener, NULL);
    assert_int_equal(n, 3);
    struct mx_m_test_kv kv;
    assert_int_equal(mx_msg_decode(v[0], &kv), 0);
    assert_int_equal(kv.sender, 9);
    for (uint32_t i = 0; i < n; i++)
        mx_msg_free(v[i]);
    free(v);
    /* busy actor: the peek times out, and the late answer is harmless */
    struct mx_msg *m;
    mx_msg_encode(MX_T_test_echo, &(struct mx_m_test_echo){1, MX_STR("z")}, &m);
    assert_int_equal(mx_sys_send(sys, a, m), 0);
    assert_true(TU_WAIT_UNTIL(atomic_load(&g_peek_entered) == 2, 5000));
    assert_int_equal(mx_actor_peek(sys, a, 3, 50, &v, &n), MX_ETIMEDOUT);
    assert_int_equal(mx_actor_peek(sys, a, 5000, 50, &v, &n), MX_EINVAL);
    sem_post(&g_peek_gate);
    assert_int_equal(mx_system_stop(sys, 5000), 0);
    mx_system_free(sys);
    sem_destroy(&g_peek_gate);
}

/* `cl_inproc --refused-client URL CA BOTH BID`: the raw client of
 * test_tls in a process of its own (BOTH: "-" for no certificate, else a
 * file with the certificate and its key); it exits when killed. */
static int refused_client_main(char **argv)
{
    nng_tls_config *c;
    if (nng_tls_config_alloc(&c, NNG_TLS_MODE_CLIENT) != 0 || nng_tls_config_ca_file(c, argv[1]) ||
        (strcmp(argv[2], "-") != 0 && nng_tls_config_cert_key_file(c, argv[2], NULL) != 0))
        return 2;
    nng_socket s;
    raw_send(&s, argv[0], c, strtoull(argv[3], NULL, 10));
    for (;;)
        pause();
}

int main(int argc, char **argv)
{
    if (argc == 6 && strcmp(argv[1], "--refused-client") == 0)
        return refused_client_main(argv + 2);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_send_and_request),
        cmocka_unit_test(test_forward_keeps_sender),
        cmocka_unit_test(test_epoch_fence),
        cmocka_unit_test(test_hostile_frames),
        cmocka_unit_test(test_dead_peer),
        cmocka_unit_test(test_request_timeout),
        cmocka_unit_test(test_peek),
        cmocka_unit_test(test_tls),
        cmocka_unit_test(test_tls_frames),
        cmocka_unit_test(test_pipe_limit),
        cmocka_unit_test(test_idle_timeout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
