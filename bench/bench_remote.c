/* bench_remote.c - the nng transport against raw nng, over TCP loopback in
 * one process. Prints JSON lines:
 *   nng.raw.oneway (msg/s, push/pull, 196-byte frames), nng.raw.rtt.p50 (us, req/rep),
 *   remote.oneway (msg/s, 100-byte body, actor to actor across two systems),
 *   remote.rtt.p50 / remote.rtt.p99 (us, mx_request to a remote echo),
 *   remote.oneway.ratio_vs_raw, remote.rtt.ratio_vs_raw.
 * Usage: bench_remote [messages] (default 300000). Not a test. */
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

#define RTT_N 3000
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

static double raw_rtt_p50(void)
{
    nng_socket rep, req;
    nng_listener l;
    int port;
    char url[64];
    nng_rep0_open(&rep);
    nng_listen(rep, "tcp://127.0.0.1:0", &l, 0);
    nng_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT, &port);
    snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", port);
    nng_req0_open(&req);
    nng_dial(req, url, NULL, 0);
    pthread_t t;
    pthread_create(&t, NULL, raw_rep, &rep);
    static double us[RTT_N];
    uint8_t buf[FRAME] = {0};
    for (int i = 0; i < RTT_N; i++) {
        double t0 = now_s();
        nng_msg *m;
        nng_msg_alloc(&m, FRAME);
        memcpy(nng_msg_body(m), buf, FRAME);
        nng_sendmsg(req, m, 0);
        nng_recvmsg(req, &m, 0);
        nng_msg_free(m);
        us[i] = (now_s() - t0) * 1e6;
    }
    nng_close(req);
    nng_close(rep);
    pthread_join(t, NULL);
    qsort(us, RTT_N, sizeof(double), cmp_d);
    return us[RTT_N / 2];
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

/* oneway: send until the peer queue is full, then yield a turn */
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
        if (mx_send(self, mx_self(self), again) != 0)
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
    if (s->rtt_i >= RTT_N) {
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

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 300000;
    double raw = raw_oneway(n);
    emit("nng.raw.oneway", raw, "msg/s");
    double raw_rtt = raw_rtt_p50();
    emit("nng.raw.rtt.p50", raw_rtt, "us");

    mx_system_t *a, *b;
    struct mx_system_opts o = {.node_name = "a", .schedulers = 1, .offload_threads = 1};
    mx_system_start(&o, &a);
    o.node_name = "b";
    mx_system_start(&o, &b);
    mx_remote_t *ra, *rb;
    struct mx_remote_opts ro = {.listen_url = "tcp://127.0.0.1:0", .sendbuf = 1024};
    if (mx_remote_start(a, &ro, &ra) != 0 || mx_remote_start(b, &ro, &rb) != 0)
        return 1;
    char url[64];
    snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", mx_remote_port(rb));
    mx_remote_add_peer(ra, mx_system_node_id(b), url);
    snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", mx_remote_port(ra));
    mx_remote_add_peer(rb, mx_system_node_id(a), url);
    while (!mx_remote_peer_up(ra, mx_system_node_id(b)) || !mx_remote_peer_up(rb, mx_system_node_id(a)))
        usleep(1000);

    static const struct mx_behaviour sink_b = {.name = "sink", .receive = sink_recv};
    static const struct mx_behaviour echo_b = {.name = "echo", .receive = echo_recv};
    static const struct mx_behaviour oneway_b = {.name = "oneway", .init = init_arg,
                                                 .receive = oneway_recv};
    static const struct mx_behaviour rtt_b = {.name = "rtt", .init = init_arg, .receive = rtt_recv};
    struct mx_spawn_opts so = MX_SPAWN_OPTS_DEFAULT;
    so.cap_msgs = 1u << 20;
    struct mx_addr sink, echo, snd;
    mx_spawn(b, &sink_b, NULL, &so, &sink);
    mx_spawn(b, &echo_b, NULL, &so, &echo);

    struct sender s = {.to = sink, .n = n, .tmpl = body100()};
    mx_spawn(a, &oneway_b, &s, NULL, &snd);
    double t0 = now_s();
    mx_sys_send(a, snd, mx_msg_new(MX_T_sys_tick, 0));
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
    double dt = now_s() - t0;
    double rem = (double)atomic_load(&sink_n) / dt;
    emit("remote.oneway", rem, "msg/s");

    static double rtt[RTT_N];
    struct sender r = {.to = echo, .tmpl = body100(), .rtt = rtt};
    struct mx_addr pinger;
    mx_spawn(a, &rtt_b, &r, NULL, &pinger);
    mx_sys_send(a, pinger, mx_msg_new(MX_T_sys_tick, 0));
    while (!atomic_load(&r.done))
        usleep(1000);
    qsort(rtt, (size_t)r.rtt_i, sizeof(double), cmp_d);
    double p50 = r.rtt_i ? rtt[r.rtt_i / 2] : 0, p99 = r.rtt_i ? rtt[r.rtt_i * 99 / 100] : 0;
    emit("remote.rtt.p50", p50, "us");
    emit("remote.rtt.p99", p99, "us");
    emit("remote.oneway.ratio_vs_raw", rem / raw, "x");
    emit("remote.rtt.ratio_vs_raw", p50 / raw_rtt, "x");

    mx_system_stop(a, 5000);
    mx_system_stop(b, 5000);
    mx_remote_stop(ra);
    mx_remote_stop(rb);
    mx_msg_free(s.tmpl);
    mx_msg_free(r.tmpl);
    mx_system_free(a);
    mx_system_free(b);
    return 0;
}
