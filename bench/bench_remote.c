/* bench_remote.c - the nng transport against raw nng, over TCP loopback in
 * one process. Prints JSON lines:
 *   nng.raw.oneway (msg/s, push/pull, 196-byte messages, blocking send/recv
 *     loops: nng used the plain way),
 *   nng.raw.oneway.aio (msg/s, the same with nng's asynchronous best
 *     practice: 8 send aios and 8 receive aios in flight),
 *   nng.raw.rtt.p50 (us, req/rep), nng.raw.rtt.pushpull.p50 (us, ping-pong
 *     over two push/pull pairs, the pattern the transport uses),
 *   remote.oneway (msg/s, 100-byte body, actor to actor across two systems),
 *   remote.rtt.p50 / remote.rtt.p99 (us, mx_request to a remote echo),
 *   remote.batch.frames (mean frames per nng message during remote.oneway),
 *   remote.oneway.ratio_vs_raw (against the faster raw oneway),
 *   remote.rtt.ratio_vs_raw (against the faster raw p50).
 * With BENCH_TLS_DIR (certificates a and b from scripts/gen-certs) the
 * same oneway and round trips also run over mutual TLS in the same process
 * (remote.tls.*), with their ratios against plaintext. bench/remote_tls.sh
 * runs that and keeps the output.
 * Usage: bench_remote [messages [sendbuf]] (defaults 1000000 and 8192;
 * raw oneway sends messages/10, raw aio messages/3). Not a test. */
#include <nng/nng.h>
#include <nng/protocol/pipeline0/pull.h>
#include <nng/protocol/pipeline0/push.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mx_actor.h"
#include "mx_err.h"
#include "mx_remote.h"

#define RTT_N 6000
#define FRAME 196 /* 96-byte header + 100-byte body, as remote.oneway sends */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void emit(const char *name, double v, const char *unit)
{
    printf("{\"bench\": \"%s\", \"value\": %.3f, \"unit\": \"%s\"}\n", name, v, unit);
    fflush(stdout);
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* ---- raw nng ---- */

struct raw_rx {
    nng_socket s;
    long n;
};

static void *raw_pull(void *arg)
{
    struct raw_rx *r = arg;
    for (long i = 0; i < r->n; i++) {
        nng_msg *m;
        if (nng_recvmsg(r->s, &m, 0) != 0)
            break;
        nng_msg_free(m);
    }
    return NULL;
}

static double raw_oneway(long n)
{
    nng_socket pull, push;
    nng_listener l;
    int port;
    char url[64];
    nng_pull0_open(&pull);
    nng_listen(pull, "tcp://127.0.0.1:0", &l, 0);
    nng_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT, &port);
    snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", port);
    nng_push0_open(&push);
    nng_socket_set_int(push, NNG_OPT_SENDBUF, 1024);
    nng_dial(push, url, NULL, 0);
    struct raw_rx r = {pull, n};
    pthread_t t;
    pthread_create(&t, NULL, raw_pull, &r);
    uint8_t buf[FRAME];
    memset(buf, 7, sizeof(buf));
    double t0 = now_s();
    for (long i = 0; i < n; i++) {
        nng_msg *m;
        nng_msg_alloc(&m, FRAME);
        memcpy(nng_msg_body(m), buf, FRAME);
        nng_sendmsg(push, m, 0);
    }
    pthread_join(t, NULL);
    double dt = now_s() - t0;
    nng_close(push);
    nng_close(pull);
    return (double)n / dt;
}

/* raw with nng's asynchronous best practice: several sends and receives in
 * flight, callbacks re-arming them */
#define RAW_AIOS 8

struct raw_aio {
    nng_socket push, pull;
    long n;
    _Atomic long sent, got;
    nng_aio *tx[RAW_AIOS], *rx[RAW_AIOS];
};

static struct raw_aio raw_a;

static void raw_tx_cb(void *arg)
{
    nng_aio *a = *(nng_aio **)arg;
    if (nng_aio_result(a) != 0) {
        nng_msg_free(nng_aio_get_msg(a));
        return;
    }
    if (atomic_fetch_add(&raw_a.sent, 1) >= raw_a.n)
        return;
    nng_msg *m;
    nng_msg_alloc(&m, FRAME);
    memset(nng_msg_body(m), 7, FRAME);
    nng_aio_set_msg(a, m);
    nng_send_aio(raw_a.push, a);
}

static void raw_rx_cb(void *arg)
{
    nng_aio *a = *(nng_aio **)arg;
    if (nng_aio_result(a) != 0)
        return;
    nng_msg_free(nng_aio_get_msg(a));
    atomic_fetch_add(&raw_a.got, 1);
    nng_recv_aio(raw_a.pull, a);
}

static double raw_oneway_aio(long n)
{
    nng_listener l;
    int port;
    char url[64];
    raw_a.n = n;
    nng_pull0_open(&raw_a.pull);
    nng_socket_set_int(raw_a.pull, NNG_OPT_RECVBUF, 1024);
    nng_listen(raw_a.pull, "tcp://127.0.0.1:0", &l, 0);
    nng_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT, &port);
    snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", port);
    nng_push0_open(&raw_a.push);
    nng_socket_set_int(raw_a.push, NNG_OPT_SENDBUF, 1024);
    nng_dial(raw_a.push, url, NULL, 0);
    for (int i = 0; i < RAW_AIOS; i++) {
        nng_aio_alloc(&raw_a.rx[i], raw_rx_cb, &raw_a.rx[i]);
        nng_recv_aio(raw_a.pull, raw_a.rx[i]);
        nng_aio_alloc(&raw_a.tx[i], raw_tx_cb, &raw_a.tx[i]);
    }
    double t0 = now_s();
    for (int i = 0; i < RAW_AIOS; i++) {
        atomic_fetch_add(&raw_a.sent, 1);
        nng_msg *m;
        nng_msg_alloc(&m, FRAME);
        memset(nng_msg_body(m), 7, FRAME);
        nng_aio_set_msg(raw_a.tx[i], m);
        nng_send_aio(raw_a.push, raw_a.tx[i]);
    }
    long last = -1;
    double idle = now_s();
    while (atomic_load(&raw_a.got) < n) {
        long g = atomic_load(&raw_a.got);
        if (g != last) {
            last = g;
            idle = now_s();
        } else if (now_s() - idle > 2.0) {
            break;
        }
        usleep(200);
    }
    double dt = now_s() - t0;
    double rate = (double)atomic_load(&raw_a.got) / dt;
    nng_close(raw_a.push);
    nng_close(raw_a.pull);
    for (int i = 0; i < RAW_AIOS; i++) {
        nng_aio_free(raw_a.tx[i]);
        nng_aio_free(raw_a.rx[i]);
    }
    return rate;
}

static void *raw_rep(void *arg)
{
    nng_socket *s = arg;
    for (;;) {
        nng_msg *m;
        if (nng_recvmsg(*s, &m, 0) != 0)
            break;
        if (nng_sendmsg(*s, m, 0) != 0)
            nng_msg_free(m);
    }
    return NULL;
}

/* The RTT anchors are measured in rounds interleaved with the remote RTT
 * rounds, so the noise of a shared machine hits all of them alike. */
#define RTT_ROUNDS 6

/* req/rep: nng's request/reply, blocking calls */
struct rr {
    nng_socket rep, req;
    pthread_t t;
};

static void rr_open(struct rr *x)
{
    nng_listener l;
    int port;
    char url[64];
    nng_rep0_open(&x->rep);
    nng_listen(x->rep, "tcp://127.0.0.1:0", &l, 0);
    nng_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT, &port);
    snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", port);
    nng_req0_open(&x->req);
    nng_dial(x->req, url, NULL, 0);
    pthread_create(&x->t, NULL, raw_rep, &x->rep);
}

static void rr_run(struct rr *x, double *us, int k)
{
    uint8_t buf[FRAME] = {0};
    for (int i = 0; i < k; i++) {
        double t0 = now_s();
        nng_msg *m;
        nng_msg_alloc(&m, FRAME);
        memcpy(nng_msg_body(m), buf, FRAME);
        nng_sendmsg(x->req, m, 0);
        nng_recvmsg(x->req, &m, 0);
        nng_msg_free(m);
        us[i] = (now_s() - t0) * 1e6;
    }
}

static void rr_close(struct rr *x)
{
    nng_close(x->req);
    nng_close(x->rep);
    pthread_join(x->t, NULL);
}

/* ping-pong over two push/pull pairs (the pattern the transport uses),
 * blocking calls, an echo thread */
struct pp {
    nng_socket in, out;
};

struct ppair {
    struct pp cli, srv;
    pthread_t t;
};

static void *pp_echo(void *arg)
{
    struct pp *e = arg;
    for (;;) {
        nng_msg *m;
        if (nng_recvmsg(e->in, &m, 0) != 0)
            break;
        if (nng_sendmsg(e->out, m, 0) != 0)
            nng_msg_free(m);
    }
    return NULL;
}

static void pp_link(nng_socket *pull, nng_socket *push)
{
    nng_listener l;
    int port;
    char url[64];
    nng_pull0_open(pull);
    nng_listen(*pull, "tcp://127.0.0.1:0", &l, 0);
    nng_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT, &port);
    snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", port);
    nng_push0_open(push);
    nng_dial(*push, url, NULL, 0);
}

static void pp_open(struct ppair *x)
{
    pp_link(&x->srv.in, &x->cli.out);
    pp_link(&x->cli.in, &x->srv.out);
    pthread_create(&x->t, NULL, pp_echo, &x->srv);
}

static void pp_run(struct ppair *x, double *us, int k)
{
    uint8_t buf[FRAME] = {0};
    for (int i = 0; i < k; i++) {
        double t0 = now_s();
        nng_msg *m;
        nng_msg_alloc(&m, FRAME);
        memcpy(nng_msg_body(m), buf, FRAME);
        nng_sendmsg(x->cli.out, m, 0);
        nng_recvmsg(x->cli.in, &m, 0);
        nng_msg_free(m);
        us[i] = (now_s() - t0) * 1e6;
    }
}

static void pp_close(struct ppair *x)
{
    nng_close(x->cli.out);
    nng_close(x->cli.in);
    nng_close(x->srv.in);
    nng_close(x->srv.out);
    pthread_join(x->t, NULL);
}

static double pct(double *v, int n, int p)
{
    qsort(v, (size_t)n, sizeof(double), cmp_d);
    return n ? v[(long)n * p / 100] : 0;
}

/* ---- mx remote ---- */

static _Atomic long sink_n;

static int sink_recv(mx_actor_t *self, void *state, struct mx_msg *m)
{
    /* relaxed: a counter the main thread polls */
    atomic_fetch_add_explicit(&sink_n, 1, memory_order_relaxed);
    return 0;
}

static int echo_recv(mx_actor_t *self, void *state, struct mx_msg *m)
{
    if (!(m->env.flags & MX_ENVF_REQUEST))
        return 0;
    struct mx_msg *r = mx_msg_share(m);
    r->env.flags = 0;
    if (mx_reply(self, m, r) != 0)
        mx_msg_free(r);
    return 0;
}

struct sender {
    struct mx_addr to;
    long n, sent;
    struct mx_msg *tmpl;
    double rtt_t0;
    int rtt_i;
    _Atomic int rtt_target; /* requests to have answered by the end of this round */
    double *rtt;
    _Atomic int done;
};

static struct mx_msg *body100(void)
{
    struct mx_msg *m;
    char text[88];
    memset(text, 'x', sizeof(text));
    struct mx_m_test_echo e = {1, {text, sizeof(text)}};
    if (mx_msg_encode(MX_T_test_echo, &e, &m) != 0)
        abort();
    return m;
}

/* oneway: send until the peer queue is full, then wait 1 ms (a timer) and
 * go on: a producer that backs off rather than spinning on MX_EFULL, which
 * on a 2-core box would take the CPU the transport's threads need */
static int oneway_recv(mx_actor_t *self, void *state, struct mx_msg *m)
{
    struct sender *s = state;
    while (s->sent < s->n) {
        struct mx_msg *x = mx_msg_share(s->tmpl);
        if (mx_send(self, s->to, x) != 0) {
            mx_msg_free(x);
            break;
        }
        s->sent++;
    }
    if (s->sent < s->n) {
        struct mx_msg *again = mx_msg_new(MX_T_sys_tick, 0);
        if (getenv("BENCH_SPIN") ? mx_send(self, mx_self(self), again) != 0
                                 : mx_timer_start(self, 1, 0, again, NULL) != 0)
            mx_msg_free(again);
    }
    return 0;
}

static int init_arg(mx_actor_t *self, void *arg, void **state)
{
    *state = arg;
    return 0;
}

/* rtt: one request at a time */
static int rtt_recv(mx_actor_t *self, void *state, struct mx_msg *m)
{
    struct sender *s = state;
    if (m->env.flags & MX_ENVF_REPLY)
        s->rtt[s->rtt_i++] = (now_s() - s->rtt_t0) * 1e6;
    if (s->rtt_i >= atomic_load(&s->rtt_target)) {
        atomic_store(&s->done, 1);
        return 0;
    }
    s->rtt_t0 = now_s();
    struct mx_msg *x = mx_msg_share(s->tmpl);
    if (mx_request(self, s->to, x, 5000, NULL) != 0) {
        mx_msg_free(x);
        atomic_store(&s->done, 1);
    }
    return 0;
}

/* Two systems joined by the transport, plaintext or with mutual TLS. */
struct pair {
    mx_system_t *a, *b;
    mx_remote_t *ra, *rb;
    mx_tls_t *ta, *tb;
    struct mx_addr sink, echo;
};

static mx_tls_t *load_tls(const char *dir, const char *name)
{
    char ca[512], crt[512], key[512], err[512];
    snprintf(ca, sizeof ca, "%s/ca.pem", dir);
    snprintf(crt, sizeof crt, "%s/%s.pem", dir, name);
    snprintf(key, sizeof key, "%s/%s.key", dir, name);
    mx_tls_t *t;
    if (mx_tls_load(ca, crt, key, &t, err, sizeof err) != 0) {
        fprintf(stderr, "bench_remote: %s\n", err);
        exit(1);
    }
    return t;
}

static void pair_open(struct pair *p, const char *tls_dir, uint32_t sendbuf)
{
    memset(p, 0, sizeof(*p));
    struct mx_system_opts o = {.node_name = "a", .schedulers = 1, .offload_threads = 1};
    mx_system_start(&o, &p->a);
    o.node_name = "b";
    mx_system_start(&o, &p->b);
    if (tls_dir) {
        p->ta = load_tls(tls_dir, "a");
        p->tb = load_tls(tls_dir, "b");
    }
    struct mx_remote_opts ro = {
        .listen_url = "tcp://127.0.0.1:0", .sendbuf = sendbuf, .tls = p->ta};
    if (mx_remote_start(p->a, &ro, &p->ra) != 0)
        exit(1);
    ro.tls = p->tb;
    if (mx_remote_start(p->b, &ro, &p->rb) != 0)
        exit(1);
    char url[64];
    snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", mx_remote_port(p->rb));
    mx_remote_add_peer(p->ra, mx_system_node_id(p->b), url);
    snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", mx_remote_port(p->ra));
    mx_remote_add_peer(p->rb, mx_system_node_id(p->a), url);
    while (!mx_remote_peer_up(p->ra, mx_system_node_id(p->b)) ||
           !mx_remote_peer_up(p->rb, mx_system_node_id(p->a)))
        usleep(1000);
    static const struct mx_behaviour sink_b = {.name = "sink", .receive = sink_recv};
    static const struct mx_behaviour echo_b = {.name = "echo", .receive = echo_recv};
    struct mx_spawn_opts so = MX_SPAWN_OPTS_DEFAULT;
    so.cap_msgs = 1u << 20;
    mx_spawn(p->b, &sink_b, NULL, &so, &p->sink);
    mx_spawn(p->b, &echo_b, NULL, &so, &p->echo);
}

static void pair_close(struct pair *p)
{
    mx_system_stop(p->a, 5000);
    mx_system_stop(p->b, 5000);
    mx_remote_stop(p->ra);
    mx_remote_stop(p->rb);
    mx_system_free(p->a);
    mx_system_free(p->b);
    mx_tls_free(p->ta);
    mx_tls_free(p->tb);
}

/* n messages from a to b's sink; msg/s (and frames per batch in *fpb) */
static double run_oneway(struct pair *p, long n, double *fpb)
{
    static const struct mx_behaviour oneway_b = {
        .name = "oneway", .init = init_arg, .receive = oneway_recv};
    atomic_store(&sink_n, 0);
    struct sender s = {.to = p->sink, .n = n, .tmpl = body100()};
    struct mx_addr snd;
    mx_spawn(p->a, &oneway_b, &s, NULL, &snd);
    double t0 = now_s();
    mx_sys_send(p->a, snd, mx_msg_new(MX_T_sys_tick, 0));
    /* at-most-once: stop when everything sent has arrived */
    long last = -1;
    double idle_since = now_s();
    for (;;) {
        long got = atomic_load(&sink_n);
        if (got >= n)
            break;
        if (got != last) {
            last = got;
            idle_since = now_s();
        } else if (now_s() - idle_since > 2.0) {
            fprintf(stderr, "bench_remote: %ld of %ld arrived\n", got, n);
            break;
        }
        usleep(200);
    }
    double rate = (double)atomic_load(&sink_n) / (now_s() - t0);
    mx_actor_stop(p->a, snd);
    struct mx_remote_stats st;
    mx_remote_stats(p->ra, &st);
    *fpb = st.batches_out ? (double)st.frames_out / (double)st.batches_out : 0;
    usleep(100000); /* the stop is asynchronous: let it land before s goes */
    mx_msg_free(s.tmpl);
    return rate;
}

struct pinger {
    struct sender r;
    struct mx_addr addr;
};

static void pinger_open(struct pinger *pg, struct pair *p, double *rtt)
{
    static const struct mx_behaviour rtt_b = {.name = "rtt", .init = init_arg, .receive = rtt_recv};
    memset(pg, 0, sizeof(*pg));
    pg->r = (struct sender){.to = p->echo, .tmpl = body100(), .rtt = rtt};
    mx_spawn(p->a, &rtt_b, &pg->r, NULL, &pg->addr);
}

/* one request at a time until `target` have been answered */
static void pinger_run(struct pinger *pg, struct pair *p, int target)
{
    atomic_store(&pg->r.done, 0);
    atomic_store(&pg->r.rtt_target, target);
    mx_sys_send(p->a, pg->addr, mx_msg_new(MX_T_sys_tick, 0));
    while (!atomic_load(&pg->r.done))
        usleep(1000);
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    if (n < 1000)
        n = 1000;
    uint32_t sendbuf = argc > 2 ? (uint32_t)atol(argv[2]) : 8192;
    const char *tls_dir = getenv("BENCH_TLS_DIR"); /* scripts/gen-certs DIR a b */
    /* raw nng is far slower per message: fewer messages keep the run short */
    double raw = raw_oneway(n / 10);
    emit("nng.raw.oneway", raw, "msg/s");
    double raw_aio = raw_oneway_aio(n / 3);
    emit("nng.raw.oneway.aio", raw_aio, "msg/s");
    if (raw_aio > raw)
        raw = raw_aio;

    struct pair pl, pt;
    pair_open(&pl, NULL, sendbuf);
    if (tls_dir)
        pair_open(&pt, tls_dir, sendbuf);
    double fpb, rem = run_oneway(&pl, n, &fpb);
    emit("remote.oneway", rem, "msg/s");
    emit("remote.batch.frames", fpb, "frames");
    double rem_tls = 0;
    if (tls_dir) {
        rem_tls = run_oneway(&pt, n, &fpb);
        emit("remote.tls.oneway", rem_tls, "msg/s");
        emit("remote.tls.batch.frames", fpb, "frames");
    }

    /* round trips: raw req/rep, raw push/pull, plaintext and TLS in turns */
    static double rtt[RTT_N], rtt_tls[RTT_N], rr_us[RTT_N], pp_us[RTT_N];
    struct pinger pgl, pgt;
    pinger_open(&pgl, &pl, rtt);
    if (tls_dir)
        pinger_open(&pgt, &pt, rtt_tls);
    struct rr rrx;
    struct ppair ppx;
    rr_open(&rrx);
    pp_open(&ppx);
    const int k = RTT_N / RTT_ROUNDS;
    for (int round = 0; round < RTT_ROUNDS; round++) {
        rr_run(&rrx, rr_us + round * k, k);
        pp_run(&ppx, pp_us + round * k, k);
        pinger_run(&pgl, &pl, (round + 1) * k);
        if (tls_dir)
            pinger_run(&pgt, &pt, (round + 1) * k);
    }
    rr_close(&rrx);
    pp_close(&ppx);
    double raw_rr = pct(rr_us, RTT_ROUNDS * k, 50), raw_pp = pct(pp_us, RTT_ROUNDS * k, 50);
    emit("nng.raw.rtt.p50", raw_rr, "us");
    emit("nng.raw.rtt.pushpull.p50", raw_pp, "us");
    double raw_rtt = raw_pp < raw_rr ? raw_pp : raw_rr;
    double p50 = pct(rtt, pgl.r.rtt_i, 50), p99 = pct(rtt, pgl.r.rtt_i, 99);
    emit("remote.rtt.p50", p50, "us");
    emit("remote.rtt.p99", p99, "us");
    emit("remote.oneway.ratio_vs_raw", rem / raw, "x");
    emit("remote.rtt.ratio_vs_raw", p50 / raw_rtt, "x");
    if (tls_dir) {
        double t50 = pct(rtt_tls, pgt.r.rtt_i, 50), t99 = pct(rtt_tls, pgt.r.rtt_i, 99);
        emit("remote.tls.rtt.p50", t50, "us");
        emit("remote.tls.rtt.p99", t99, "us");
        /* issue 12's anchors: TLS oneway >= 0.5x plaintext, p50 <= 1.5x */
        emit("remote.tls.oneway.ratio_vs_plain", rem_tls / rem, "x");
        emit("remote.tls.rtt.p50.ratio_vs_plain", t50 / p50, "x");
    }
    pair_close(&pl);
    mx_msg_free(pgl.r.tmpl);
    if (tls_dir) {
        pair_close(&pt);
        mx_msg_free(pgt.r.tmpl);
    }
    return 0;
}
