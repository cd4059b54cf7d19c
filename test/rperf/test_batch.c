/* test_batch.c - the batched nng transport: frames to a peer travel in
 * batch messages (docs/wire-format.md). Checks that a stream of small and
 * large frames (one at the 16 MiB body limit) arrives complete and in order
 * and is actually batched, and that envelopes the encoder refuses leave no
 * empty batch behind; that several threads sending to one peer at once keep
 * FIFO per sender; that hostile batches (count past the end, inner length
 * past the end, zero count, huge counts, short inner frames, trailing
 * bytes, bad version or flags) are dropped whole as bad-batch before any of
 * their frames is used, while a well-formed batch's bad inner frames are
 * dropped one by one under the usual reasons; and that the per-peer queue
 * bound (frames and bytes) refuses with MX_EFULL and frames queued to a
 * removed or replaced peer are counted as lost. */
#include <nng/nng.h>
#include <nng/protocol/pipeline0/pull.h>
#include <nng/protocol/pipeline0/push.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "mx_actor.h"
#include "mx_err.h"
#include "mx_remote.h"
#include "mx_testutil.h"

/* ---- a sink that checks order ---- */

struct sink {
    _Atomic uint64_t received;
    _Atomic uint64_t out_of_order;
    _Atomic uint64_t max_blob;
    uint64_t last_seq[4]; /* per sender id 0..3; owner thread */
};

static int sink_recv(mx_actor_t *self, void *state, struct mx_msg *m)
{
    struct sink *s = state;
    struct mx_m_test_kv kv;
    if (m->env.type != MX_T_test_kv || mx_msg_decode(m, &kv) != 0)
        return 0;
    uint64_t *last = &s->last_seq[kv.sender & 3];
    if (kv.seq != *last + 1)
        atomic_fetch_add(&s->out_of_order, 1);
    *last = kv.seq;
    if (kv.blob.len > atomic_load(&s->max_blob))
        atomic_store(&s->max_blob, kv.blob.len);
    atomic_fetch_add(&s->received, 1);
    return 0;
}

static int sink_init(mx_actor_t *self, void *arg, void **state)
{
    *state = arg;
    return 0;
}

static const struct mx_behaviour sink_beh = {
    .name = "sink", .init = sink_init, .receive = sink_recv};

struct node {
    mx_system_t *sys;
    mx_remote_t *rem;
    struct mx_addr sink;
    struct sink st;
    char url[64];
};

static void node_start(struct node *n, const char *name, const struct mx_remote_opts *ropts)
{
    memset(n, 0, sizeof(*n));
    struct mx_system_opts o = {.node_name = name, .schedulers = 1, .offload_threads = 1};
    assert_int_equal(mx_system_start(&o, &n->sys), 0);
    struct mx_remote_opts ro = {
        .listen_url = "tcp://127.0.0.1:0", .reconn_min_ms = 20, .reconn_max_ms = 200};
    if (ropts)
        ro = *ropts;
    if (!ro.recv_max)
        ro.recv_max = MX_REMOTE_MSG_MAX; /* frames up to MX_ENV_MAX_BODY */
    assert_int_equal(mx_remote_start(n->sys, &ro, &n->rem), 0);
    snprintf(n->url, sizeof(n->url), "tcp://127.0.0.1:%d", mx_remote_port(n->rem));
    struct mx_spawn_opts so = MX_SPAWN_OPTS_DEFAULT;
    so.name = "sink";
    so.cap_msgs = 1u << 20;
    assert_int_equal(mx_spawn(n->sys, &sink_beh, &n->st, &so, &n->sink), 0);
}

static void node_stop(struct node *n)
{
    assert_int_equal(mx_system_stop(n->sys, 5000), 0);
    mx_remote_stop(n->rem);
    mx_system_free(n->sys);
}

static struct mx_msg *kv_msg_from(uint64_t sender, uint64_t seq, size_t blob);

static struct mx_msg *kv_msg(uint64_t seq, size_t blob)
{
    return kv_msg_from(1, seq, blob);
}

static struct mx_msg *kv_msg_from(uint64_t sender, uint64_t seq, size_t blob)
{
    static uint8_t *zeros;
    if (!zeros)
        zeros = calloc(1, MX_ENV_MAX_BODY);
    struct mx_m_test_kv kv = {
        .sender = sender, .seq = seq, .text = MX_STR("batch"), .blob = {(const char *)zeros, blob}};
    struct mx_msg *m;
    assert_int_equal(mx_msg_encode(MX_T_test_kv, &kv, &m), 0);
    return m;
}

/* a test_kv whose body is exactly MX_ENV_MAX_BODY bytes, written by hand:
 * [sender, seq (uint64), delta, ratio (float64), flag, "", blob (bin32)] */
static struct mx_msg *kv_limit_msg(uint64_t seq, size_t *blob_len)
{
    const size_t head = 1 + 1 + 9 + 1 + 9 + 1 + 1 + 5;
    struct mx_msg *m = mx_msg_new(MX_T_test_kv, MX_ENV_MAX_BODY);
    uint8_t *b = mx_msg_body_mut(m);
    memset(b, 0, MX_ENV_MAX_BODY);
    size_t blob = MX_ENV_MAX_BODY - head;
    b[0] = 0x97;
    b[1] = 0x01;
    b[2] = 0xcf;
    for (int i = 0; i < 8; i++)
        b[3 + i] = (uint8_t)(seq >> (56 - 8 * i));
    b[11] = 0x00;
    b[12] = 0xcb; /* 8 zero bytes: 0.0 */
    b[21] = 0xc2;
    b[22] = 0xa0;
    b[23] = 0xc6;
    for (int i = 0; i < 4; i++)
        b[24 + i] = (uint8_t)(blob >> (24 - 8 * i));
    *blob_len = blob;
    return m;
}

static struct mx_remote_stats stats(struct node *n)
{
    struct mx_remote_stats s;
    mx_remote_stats(n->rem, &s);
    return s;
}

/* A stream from one thread: complete, in order, batched; large frames
 * (bigger than a batch, and one at the body limit) travel alone. */
static void test_stream(void **unused)
{
    struct node a, b;
    node_start(&a, "a", NULL);
    node_start(&b, "b", NULL);
    uint64_t bid = mx_system_node_id(b.sys);
    assert_int_equal(mx_remote_add_peer(a.rem, bid, b.url), 0);
    assert_true(TU_WAIT_UNTIL(mx_remote_peer_up(a.rem, bid), 5000));

    const uint64_t n = TU_SCALE(40000);
    size_t limit_blob = 0;
    uint64_t full = 0;
    for (uint64_t seq = 1; seq <= n; seq++) {
        if (seq == 1 || seq == n / 4) {
            /* an envelope the encoder refuses (unknown flag bits), on an idle
             * link and mid-stream: refused, and no empty batch goes out */
            struct mx_msg *bad = kv_msg(0, 0);
            bad->env.flags = 0x80;
            int brc;
            while ((brc = mx_sys_send(a.sys, b.sink, bad)) == MX_EFULL) {
                full++;
                usleep(100);
            }
            assert_int_equal(brc, MX_EINVAL);
            mx_msg_free(bad);
        }
        struct mx_msg *m = seq == n / 2 ? kv_limit_msg(seq, &limit_blob)
                                        : kv_msg(seq, seq % 997 == 0 ? 200u << 10 : 40);
        int rc;
        while ((rc = mx_sys_send(a.sys, b.sink, m)) == MX_EFULL) {
            full++;
            usleep(100);
        }
        assert_int_equal(rc, 0);
    }
    assert_true(TU_WAIT_UNTIL(atomic_load(&b.st.received) == n, 20000));
    assert_int_equal(atomic_load(&b.st.out_of_order), 0);
    assert_int_equal(atomic_load(&b.st.max_blob), limit_blob);
    struct mx_remote_stats sa = stats(&a), sb = stats(&b);
    assert_int_equal(sa.frames_out, n);
    assert_int_equal(sa.send_full, full);
    /* batching happened: far fewer nng messages than frames */
    fprintf(stderr, "frames %llu in %llu batches\n", (unsigned long long)sa.frames_out,
            (unsigned long long)sa.batches_out);
    TU_ASSERT_CMP(sa.batches_out * 2, <, sa.frames_out);
    assert_int_equal(sb.batches_in, sa.batches_out);
    assert_int_equal(sb.frames_in, n);
    assert_int_equal(sb.delivered, n);
    for (int r = 0; r < MX_RDROP_COUNT; r++)
        assert_int_equal(sb.drops[r], 0);
    node_stop(&a);
    node_stop(&b);
}

/* Several threads sending to one peer at once (the peer's open batch is
 * shared): every frame arrives, FIFO per sender. */
struct blaster {
    mx_system_t *sys;
    struct mx_addr to;
    uint64_t sender, n;
    _Atomic uint64_t full;
};

static void *blast(void *arg)
{
    struct blaster *b = arg;
    for (uint64_t seq = 1; seq <= b->n; seq++) {
        struct mx_msg *m = kv_msg_from(b->sender, seq, seq % 101 == 0 ? 3000 : 24);
        int rc;
        while ((rc = mx_sys_send(b->sys, b->to, m)) == MX_EFULL) {
            atomic_fetch_add(&b->full, 1);
            usleep(50);
        }
        if (rc != 0) {
            mx_msg_free(m);
            return (void *)1;
        }
    }
    return NULL;
}

static void test_concurrent_senders(void **unused)
{
    struct mx_remote_opts ro = {.listen_url = "tcp://127.0.0.1:0",
                                .sendbuf = 512,
                                .reconn_min_ms = 20,
                                .reconn_max_ms = 200};
    struct node a, b;
    node_start(&a, "a", &ro);
    node_start(&b, "b", &ro);
    uint64_t bid = mx_system_node_id(b.sys);
    assert_int_equal(mx_remote_add_peer(a.rem, bid, b.url), 0);
    assert_true(TU_WAIT_UNTIL(mx_remote_peer_up(a.rem, bid), 5000));
    enum { T = 3 };
    struct blaster bl[T];
    pthread_t th[T];
    const uint64_t n = TU_SCALE(20000);
    for (int i = 0; i < T; i++) {
        bl[i] = (struct blaster){.sys = a.sys, .to = b.sink, .sender = (uint64_t)i + 1, .n = n};
        assert_int_equal(pthread_create(&th[i], NULL, blast, &bl[i]), 0);
    }
    for (int i = 0; i < T; i++) {
        void *ret;
        pthread_join(th[i], &ret);
        assert_null(ret);
    }
    assert_true(TU_WAIT_UNTIL(atomic_load(&b.st.received) == T * n, 20000));
    assert_int_equal(atomic_load(&b.st.out_of_order), 0);
    struct mx_remote_stats sa = stats(&a), sb = stats(&b);
    assert_int_equal(sa.frames_out, T * n);
    assert_int_equal(sb.delivered, T * n);
    assert_int_equal(sb.batches_in, sa.batches_out);
    assert_int_equal(sa.frames_lost, 0);
    node_stop(&a);
    node_stop(&b);
}

/* ---- hostile batches ---- */

struct bb {
    uint8_t *p;
    size_t len, cap;
    uint32_t count;
    size_t last_len_at; /* offset of the last length prefix */
};

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void bb_init(struct bb *b)
{
    b->cap = 1 << 16;
    b->p = malloc(b->cap);
    memcpy(b->p, "MB\1\0\0\0\0\0", 8);
    b->len = 8;
    b->count = 0;
}

static void bb_raw(struct bb *b, const void *d, size_t n)
{
    while (b->len + n > b->cap) {
        b->cap *= 2;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->len, d, n);
    b->len += n;
}

static void bb_frame(struct bb *b, const uint8_t *f, size_t n)
{
    uint8_t l[4];
    put32(l, (uint32_t)n);
    b->last_len_at = b->len;
    bb_raw(b, l, 4);
    bb_raw(b, f, n);
    b->count++;
}

/* a frame of type with body to `to` (named when name != NULL) */
static size_t frame(uint8_t *out, uint32_t type, struct mx_addr to, const char *name,
                    const uint8_t *body, uint32_t blen)
{
    struct mx_env e = {.type = type, .to = to, .flags = name ? MX_ENVF_NAMED : 0};
    uint16_t nl = name ? (uint16_t)strlen(name) : 0;
    assert_int_equal(mx_env_encode(&e, blen, nl, out), 0);
    memcpy(out + MX_ENV_WIRE_SIZE, name, nl);
    memcpy(out + MX_ENV_WIRE_SIZE + nl, body, blen);
    return MX_ENV_WIRE_SIZE + nl + blen;
}

static size_t good_frame(uint8_t *out, uint64_t bid, uint64_t seq)
{
    uint8_t body[64];
    size_t bl;
    struct mx_m_test_kv kv = {.sender = 1, .seq = seq};
    assert_int_equal(mx_m_test_kv_encode(&kv, body, sizeof(body), &bl), 0);
    return frame(out, MX_T_test_kv, (struct mx_addr){bid, 0}, "sink", body, (uint32_t)bl);
}

/* a batch of good frames seq0+1 .. seq0+k */
static void bb_good(struct bb *b, uint64_t bid, uint64_t seq0, int k)
{
    uint8_t f[256];
    for (int i = 1; i <= k; i++)
        bb_frame(b, f, good_frame(f, bid, seq0 + (uint64_t)i));
}

static void push_send(nng_socket s, struct bb *b, bool set_count, uint32_t count)
{
    put32(b->p + 4, set_count ? count : b->count);
    assert_int_equal(nng_send(s, b->p, b->len, 0), 0);
    free(b->p);
}

static void test_hostile_batches(void **unused)
{
    struct node b;
    node_start(&b, "b", NULL);
    uint64_t bid = mx_system_node_id(b.sys);
    nng_socket s;
    assert_int_equal(nng_push0_open(&s), 0);
    assert_int_equal(nng_dial(s, b.url, NULL, 0), 0);
    uint64_t want[MX_RDROP_COUNT] = {0}, frames = 0;
    struct bb x;

    /* a good batch: three frames, delivered in order */
    bb_init(&x);
    bb_good(&x, bid, 0, 3);
    push_send(s, &x, false, 0);
    frames += 3;
    assert_true(TU_WAIT_UNTIL(atomic_load(&b.st.received) == 3, 5000));

    /* count past the end: 3 frames, count 4. Nothing of it is delivered. */
    bb_init(&x);
    bb_good(&x, bid, 100, 3);
    push_send(s, &x, true, 4);
    want[MX_RDROP_BAD_BATCH]++;
    /* inner length past the end */
    bb_init(&x);
    bb_good(&x, bid, 100, 2);
    put32(x.p + x.last_len_at, (uint32_t)(x.len - x.last_len_at - 4 + 10));
    push_send(s, &x, false, 0);
    want[MX_RDROP_BAD_BATCH]++;
    /* inner length near 4 GB */
    bb_init(&x);
    bb_good(&x, bid, 100, 2);
    put32(x.p + x.last_len_at, 0xfffffff0u);
    push_send(s, &x, false, 0);
    want[MX_RDROP_BAD_BATCH]++;
    /* zero count with frames behind it (an empty one is a heartbeat:
     * not a frame, not counted) */
    bb_init(&x);
    push_send(s, &x, true, 0);
    bb_init(&x);
    bb_good(&x, bid, 100, 1);
    push_send(s, &x, true, 0);
    want[MX_RDROP_BAD_BATCH] += 1;
    /* huge count in a small batch */
    bb_init(&x);
    bb_good(&x, bid, 100, 1);
    push_send(s, &x, true, 0xffffffffu);
    want[MX_RDROP_BAD_BATCH]++;
    /* a count over the receiver's cap (65536) that the bytes would back:
     * refused whole, not 65537 separate drops */
    bb_init(&x);
    uint8_t zero[MX_ENV_WIRE_SIZE] = {0};
    for (int i = 0; i < 65537; i++)
        bb_frame(&x, zero, sizeof(zero));
    push_send(s, &x, false, 0);
    want[MX_RDROP_BAD_BATCH]++;
    /* an inner frame shorter than a header */
    bb_init(&x);
    bb_good(&x, bid, 100, 1);
    bb_frame(&x, zero, 10);
    push_send(s, &x, false, 0);
    want[MX_RDROP_BAD_BATCH]++;
    /* trailing bytes after the last frame */
    bb_init(&x);
    bb_good(&x, bid, 100, 2);
    bb_raw(&x, "xyz", 3);
    push_send(s, &x, false, 0);
    want[MX_RDROP_BAD_BATCH]++;
    /* bad version, non-zero flags, header cut short */
    bb_init(&x);
    bb_good(&x, bid, 100, 1);
    x.p[2] = 2;
    push_send(s, &x, false, 0);
    bb_init(&x);
    bb_good(&x, bid, 100, 1);
    x.p[3] = 1;
    push_send(s, &x, false, 0);
    assert_int_equal(nng_send(s, "MB\1\0\1", 5, 0), 0);
    want[MX_RDROP_BAD_BATCH] += 3;
    frames += 11; /* each bad batch counts as one frame in */

    /* a well-formed batch whose inner frames are bad one by one: each is
     * dropped under its own reason, the good ones around them delivered */
    uint8_t f[512], body[64];
    size_t bl;
    struct mx_m_test_kv kv = {.sender = 1, .seq = 4};
    assert_int_equal(mx_m_test_kv_encode(&kv, body, sizeof(body), &bl), 0);
    bb_init(&x);
    bb_good(&x, bid, 3, 1); /* seq 4 */
    for (int i = 0; i < 120; i++)
        f[i] = (uint8_t)(i * 37 + 11);
    bb_frame(&x, f, 120);
    want[MX_RDROP_BAD_HEADER]++;
    bb_frame(&x, f, frame(f, 999, (struct mx_addr){bid, 0}, "sink", body, (uint32_t)bl));
    want[MX_RDROP_UNKNOWN_TYPE]++;
    size_t fl = frame(f, MX_T_test_kv, (struct mx_addr){bid, 0}, "sink", body, (uint32_t)bl);
    put32(f + 88, 100u << 20);
    bb_frame(&x, f, fl);
    want[MX_RDROP_TOO_BIG]++;
    bb_frame(&x, f,
             frame(f, MX_T_test_kv, (struct mx_addr){bid, 0}, "sink", body, (uint32_t)bl - 1));
    want[MX_RDROP_BAD_BODY]++;
    bb_frame(&x, f, frame(f, MX_T_test_kv, (struct mx_addr){bid, 0}, "nobody", body, (uint32_t)bl));
    want[MX_RDROP_UNKNOWN_RECEIVER]++;
    /* a batch nested inside a batch is not a frame */
    struct bb inner;
    bb_init(&inner);
    bb_good(&inner, bid, 100, 1);
    put32(inner.p + 4, 1);
    bb_frame(&x, inner.p, inner.len);
    free(inner.p);
    want[MX_RDROP_BAD_HEADER]++;
    bb_good(&x, bid, 4, 1); /* seq 5 */
    push_send(s, &x, false, 0);
    frames += 8;

    /* a plain frame (no batch) is still accepted: seq 6 */
    size_t gl = good_frame(f, bid, 6);
    assert_int_equal(nng_send(s, f, gl, 0), 0);
    frames += 1;

    struct mx_remote_stats st;
    bool all = TU_WAIT_UNTIL((mx_remote_stats(b.rem, &st), st.frames_in == frames), 5000);
    if (!all)
        fprintf(stderr, "frames_in %llu want %llu\n", (unsigned long long)st.frames_in,
                (unsigned long long)frames);
    assert_true(all);
    for (int r = 0; r < MX_RDROP_COUNT; r++)
        if (st.drops[r] != want[r])
            fprintf(stderr, "drop %s: got %llu want %llu\n", mx_rdrop_name(r),
                    (unsigned long long)st.drops[r], (unsigned long long)want[r]);
    for (int r = 0; r < MX_RDROP_COUNT; r++)
        assert_int_equal(st.drops[r], want[r]);
    assert_int_equal(st.batches_in, 2);
    assert_int_equal(st.delivered, 6);
    assert_true(TU_WAIT_UNTIL(atomic_load(&b.st.received) == 6, 5000));
    assert_int_equal(atomic_load(&b.st.out_of_order), 0);
    assert_string_equal(mx_rdrop_name(MX_RDROP_BAD_BATCH), "bad-batch");
    nng_close(s);
    node_stop(&b);
}

/* ---- the per-peer queue bound ---- */

static void test_queue_bound(void **unused)
{
    struct mx_remote_opts ro = {.listen_url = "tcp://127.0.0.1:0",
                                .sendbuf = 10,
                                .sendbuf_bytes = 4096,
                                .connect_grace_ms = 20000,
                                .reconn_min_ms = 1000,
                                .reconn_max_ms = 1000};
    struct node a;
    node_start(&a, "a", &ro);
    /* a peer that never answers: a port nobody listens on any more */
    nng_socket tmp;
    nng_listener l;
    int port;
    assert_int_equal(nng_pull0_open(&tmp), 0);
    assert_int_equal(nng_listen(tmp, "tcp://127.0.0.1:0", &l, 0), 0);
    assert_int_equal(nng_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT, &port), 0);
    nng_close(tmp);
    char url[64];
    snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", port);
    const uint64_t ghost = 0x777;
    struct mx_addr to = {ghost, 1};
    uint64_t dl0[MX_DL_COUNT], dl1[MX_DL_COUNT];

    /* bytes: one frame larger than the byte bound fits an empty queue ... */
    assert_int_equal(mx_remote_add_peer(a.rem, ghost, url), 0);
    struct mx_msg *m = kv_msg(1, 8192);
    assert_int_equal(mx_sys_send(a.sys, to, m), 0);
    /* ... and then the queue is full for anything */
    mx_deadletters(a.sys, dl0);
    m = kv_msg(2, 0);
    assert_int_equal(mx_sys_send(a.sys, to, m), MX_EFULL);
    mx_msg_free(m);
    mx_deadletters(a.sys, dl1);
    assert_int_equal(dl1[MX_DL_MAILBOX_FULL], dl0[MX_DL_MAILBOX_FULL] + 1);
    assert_int_equal(stats(&a).send_full, 1);
    /* removing the peer discards what it queued, counted */
    assert_int_equal(mx_remote_remove_peer(a.rem, ghost), 0);
    assert_int_equal(stats(&a).frames_lost, 1);
    m = kv_msg(3, 0);
    assert_int_equal(mx_sys_send(a.sys, to, m), MX_ENOACTOR);
    mx_msg_free(m);

    /* frames: ten small ones fit, the eleventh does not */
    assert_int_equal(mx_remote_add_peer(a.rem, ghost, url), 0);
    for (uint64_t i = 0; i < 10; i++)
        assert_int_equal(mx_sys_send(a.sys, to, kv_msg(10 + i, 16)), 0);
    m = kv_msg(20, 16);
    assert_int_equal(mx_sys_send(a.sys, to, m), MX_EFULL);
    mx_msg_free(m);
    struct mx_remote_stats s = stats(&a);
    assert_int_equal(s.send_full, 2);
    assert_int_equal(s.frames_out, 11);
    assert_int_equal(s.peers, 1);
    assert_int_equal(s.peers_up, 0);
    /* replacing the entry (same node id) also discards its queue */
    assert_int_equal(mx_remote_add_peer(a.rem, ghost, url), 0);
    assert_int_equal(stats(&a).frames_lost, 11);
    m = kv_msg(21, 16);
    assert_int_equal(mx_sys_send(a.sys, to, m), 0);
    node_stop(&a); /* frees the peer with one frame queued */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stream),
        cmocka_unit_test(test_concurrent_senders),
        cmocka_unit_test(test_hostile_batches),
        cmocka_unit_test(test_queue_bound),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
