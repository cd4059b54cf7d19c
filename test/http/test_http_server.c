/* test_http_server.c - system test: an actor system with the HTTP server on
 * 127.0.0.1:0 (one acceptor per scheduler, SO_REUSEPORT) and test routes,
 * driven over raw sockets: keep-alive, 100 pipelined requests answered in
 * order while deferred answers complete out of order (timers, another
 * actor), HTTP/1.0, Connection: close, chunked bodies, 431, 413, 408 (slow
 * client), idle close, 400, clients leaving mid-response, the connection
 * limit, gzip + ETag/304, Date + traceparent, trace propagation into
 * messages, drain, and a second server whose acceptors pause parsing at
 * max_in_app (every request still answered, none refused). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "http_resp.h"
#include "mx_err.h"
#include "mx_http.h"
#include "mx_testutil.h"
#include "http_sock.h"

#define MAX_CONNS 20

static mx_system_t *g_sys;
static mx_http_t *g_http;
static uint16_t g_port;
static struct mx_addr g_helper;
static struct mx_http_doc *g_doc;
static struct mx_blob *g_big;
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static uint8_t g_seen_trace[16];  /* trace id the helper actor last received */
static _Atomic int g_slow_parked; /* /slow requests parked (answer deferred) so far */

/* ---- the app ---- */

#define PENDING_MAX 512
struct app_state {
    uint64_t ids[PENDING_MAX]; /* timer seq or request corr; 0 = free */
    mx_http_req_t *reqs[PENDING_MAX];
    uint64_t next_id;
};

static int park(struct app_state *s, uint64_t id, mx_http_req_t *r)
{
    for (int i = 0; i < PENDING_MAX; i++)
        if (!s->ids[i]) {
            s->ids[i] = id;
            s->reqs[i] = r;
            return 0;
        }
    return -1;
}

static mx_http_req_t *unpark(struct app_state *s, uint64_t id)
{
    for (int i = 0; i < PENDING_MAX; i++)
        if (s->ids[i] == id) {
            s->ids[i] = 0;
            return s->reqs[i];
        }
    return NULL;
}

static int app_init(mx_actor_t *self, void *ctx, void **state)
{
    *state = calloc(1, sizeof(struct app_state));
    return *state ? 0 : MX_ENOMEM;
}

static void app_fini(mx_actor_t *self, void *ctx, void *state)
{
    free(state);
}

static int h_fast(mx_http_req_t *r, void *st)
{
    mx_http_respond(r, 200, "text/plain", "fast", 4);
    return MX_HTTP_DONE;
}

/* answered by a timer message on the acceptor after {ms} */
static int h_slow(mx_http_req_t *r, void *st)
{
    struct app_state *s = st;
    int ms = atoi(mx_http_req_param(r, "ms"));
    uint64_t id = ++s->next_id | (1ull << 63);
    struct mx_m_test_kv kv = {.seq = id};
    struct mx_msg *m;
    uint64_t tid;
    if (park(s, id, r) != 0 || mx_msg_encode(MX_T_test_kv, &kv, &m) != 0)
        return mx_http_error(r, 503, "S005", "busy"), MX_HTTP_DONE;
    if (mx_timer_start(mx_http_req_actor(r), (uint64_t)ms, 0, m, &tid) != 0) {
        unpark(s, id);
        mx_msg_free(m);
        return mx_http_error(r, 503, "S005", "busy"), MX_HTTP_DONE;
    }
    atomic_fetch_add(&g_slow_parked, 1);
    return MX_HTTP_PENDING;
}

/* answered when another actor replies */
static int h_actor(mx_http_req_t *r, void *st)
{
    struct app_state *s = st;
    struct mx_m_test_echo e = {.n = 1, .text = MX_STR("ping")};
    struct mx_msg *m;
    uint64_t corr;
    if (mx_msg_encode(MX_T_test_echo, &e, &m) != 0)
        return MX_HTTP_DONE;
    if (mx_http_request(r, g_helper, m, 2000, &corr) != 0) {
        mx_msg_free(m);
        mx_http_error(r, 503, "S005", "helper unavailable");
        return MX_HTTP_DONE;
    }
    park(s, corr, r);
    return MX_HTTP_PENDING;
}

static int h_echo(mx_http_req_t *r, void *st)
{
    size_t n;
    const uint8_t *b = mx_http_req_body(r, &n);
    mx_http_respond(r, 200, "application/octet-stream", b, n);
    return MX_HTTP_DONE;
}

static int h_doc(mx_http_req_t *r, void *st)
{
    mx_http_respond_doc(r, g_doc);
    return MX_HTTP_DONE;
}

static int h_big(mx_http_req_t *r, void *st)
{
    mx_http_respond_blob(r, 200, "application/octet-stream", g_big);
    return MX_HTTP_DONE;
}

static int app_on_message(mx_actor_t *self, void *state, struct mx_msg *m)
{
    struct app_state *s = state;
    if (m->env.type == MX_T_test_kv) {
        struct mx_m_test_kv kv;
        if (mx_msg_decode(m, &kv) != 0)
            return 0;
        mx_http_req_t *r = unpark(s, kv.seq);
        if (r) {
            char body[64];
            int n = snprintf(body, sizeof(body), "slow %s", mx_http_req_param(r, "ms"));
            mx_http_respond(r, 200, "text/plain", body, (size_t)n);
        }
    } else if (m->env.type == MX_T_test_echo || m->env.type == MX_T_sys_timeout) {
        mx_http_req_t *r = unpark(s, m->env.corr);
        if (r && m->env.type == MX_T_test_echo)
            mx_http_respond(r, 200, "text/plain", "actor", 5);
        else if (r)
            mx_http_error(r, 504, "S010", "helper timed out");
    }
    return 0;
}

static const struct mx_http_route routes[] = {
    {"GET", "/fast", h_fast, 0},  {"GET", "/slow/{ms}", h_slow, 0}, {"GET", "/actor", h_actor, 0},
    {"POST", "/echo", h_echo, 0}, {"GET", "/doc", h_doc, 0},        {"GET", "/big", h_big, 0},
};

/* the helper actor: replies to test_echo and remembers the trace id */
static int helper_receive(mx_actor_t *self, void *state, struct mx_msg *m)
{
    if (m->env.type != MX_T_test_echo)
        return 0;
    pthread_mutex_lock(&g_mu);
    memcpy(g_seen_trace, m->env.trace_id, 16);
    pthread_mutex_unlock(&g_mu);
    struct mx_m_test_echo e = {.n = 2, .text = MX_STR("pong")};
    struct mx_msg *rep;
    if (mx_msg_encode(MX_T_test_echo, &e, &rep) == 0 && mx_reply(self, m, rep) != 0)
        mx_msg_free(rep);
    return 0;
}

static const struct mx_behaviour helper_beh = {.name = "helper", .receive = helper_receive};

static int setup(void **st)
{
    struct mx_system_opts so = {.node_name = "t", .schedulers = 2};
    assert_int_equal(mx_system_start(&so, &g_sys), 0);
    assert_int_equal(mx_spawn(g_sys, &helper_beh, NULL, NULL, &g_helper), 0);
    char text[3000];
    for (size_t i = 0; i < sizeof(text); i++)
        text[i] = "{\"k\":[1,2,3]}"[i % 13];
    struct mx_blob *b = mx_blob_new(text, sizeof(text));
    assert_int_equal(mx_http_doc_new("application/json", b, true, &g_doc), 0);
    mx_blob_unref(b);
    g_big = mx_blob_new(NULL, 8u << 20);
    memset(g_big->data, 'B', g_big->len);
    struct mx_http_opts o = {.addr = "127.0.0.1:0",
                             .max_conns = MAX_CONNS,
                             .header_timeout_ms = 500,
                             .idle_timeout_ms = 1500,
                             .max_pipeline = 16};
    struct mx_http_app app = {.routes = routes,
                              .nroutes = sizeof(routes) / sizeof(routes[0]),
                              .init = app_init,
                              .fini = app_fini,
                              .on_message = app_on_message};
    assert_int_equal(mx_http_start(g_sys, &o, &app, &g_http, &g_port), 0);
    TU_ASSERT_CMP(g_port, !=, 0);
    return 0;
}

static int teardown(void **st)
{
    assert_int_equal(mx_http_stop(g_http, 5000), 0);
    mx_system_stop(g_sys, 5000);
    mx_http_free(g_http);
    mx_system_free(g_sys);
    mx_http_doc_unref(g_doc);
    mx_blob_unref(g_big);
    return 0;
}

/* ---- raw sockets ---- */

static int dial_port(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

static int dial(void)
{
    return dial_port(g_port);
}

struct rx {
    char *buf;
    size_t len;
    bool eof;
    int n;
    struct presp p[128];
};

/* read until want responses parsed, EOF, or timeout_ms */
static void recv_resp(int fd, struct rx *rx, int want, int timeout_ms)
{
    size_t cap = 1 << 16;
    memset(rx, 0, sizeof(*rx));
    rx->buf = malloc(cap);
    int64_t dl = tu_now_ms() + timeout_ms;
    while (tu_now_ms() < dl) {
        rx->n = parse_responses(rx->buf, rx->len, rx->p, 128, NULL, NULL);
        if (rx->n >= want)
            break;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, 50) <= 0)
            continue;
        if (rx->len + 65536 > cap) {
            cap *= 2;
            rx->buf = realloc(rx->buf, cap);
        }
        ssize_t n = recv(fd, rx->buf + rx->len, cap - rx->len - 1, 0);
        if (n <= 0) {
            rx->eof = true;
            break;
        }
        rx->len += (size_t)n;
    }
    rx->n = parse_responses(rx->buf, rx->len, rx->p, 128, NULL, NULL);
}

static void rx_free(struct rx *rx)
{
    free(rx->buf);
}

static struct mx_http_stats stats(void)
{
    struct mx_http_stats s;
    mx_http_stats(g_http, &s);
    return s;
}

/* ---- tests ---- */

static void test_keepalive_headers(void **st)
{
    int fd = dial();
    TU_ASSERT_CMP(fd, >=, 0);
    struct rx rx;
    char v[128];
    for (int i = 0; i < 3; i++) {
        const char *req = "GET /fast HTTP/1.1\r\nHost: t\r\n\r\n";
        send_all(fd, req, strlen(req));
        recv_resp(fd, &rx, 1, 3000);
        assert_int_equal(rx.n, 1);
        assert_int_equal(rx.p[0].status, 200);
        assert_memory_equal(rx.p[0].body, "fast", 4);
        assert_true(presp_header(&rx.p[0], "Date", v, sizeof(v)));
        assert_true(presp_header(&rx.p[0], "Content-Length", v, sizeof(v)));
        assert_true(presp_header(&rx.p[0], "traceparent", v, sizeof(v)));
        assert_int_equal(strlen(v), 55);
        rx_free(&rx);
    }
    close(fd);
}

static void test_pipeline_100(void **st)
{
    int fd = dial();
    TU_ASSERT_CMP(fd, >=, 0);
    char *buf = malloc(100 * 64);
    size_t len = 0;
    for (int i = 0; i < 100; i++) {
        if (i % 10 == 0) /* earlier ones wait longer: answered out of order */
            len += (size_t)sprintf(buf + len, "GET /slow/%d HTTP/1.1\r\n\r\n", 60 - i / 2);
        else if (i % 10 == 5)
            len += (size_t)sprintf(buf + len, "GET /actor HTTP/1.1\r\n\r\n");
        else
            len += (size_t)sprintf(buf + len, "GET /fast HTTP/1.1\r\n\r\n");
    }
    send_all(fd, buf, len); /* one write: more than max_pipeline (16) */
    struct rx rx;
    recv_resp(fd, &rx, 100, 10000);
    assert_int_equal(rx.n, 100);
    for (int i = 0; i < 100; i++) {
        char want[32];
        if (i % 10 == 0)
            sprintf(want, "slow %d", 60 - i / 2);
        else
            strcpy(want, i % 10 == 5 ? "actor" : "fast");
        assert_int_equal(rx.p[i].status, 200);
        assert_int_equal(rx.p[i].body_len, strlen(want));
        assert_memory_equal(rx.p[i].body, want, strlen(want));
    }
    TU_ASSERT_CMP(stats().limits[MX_HTTP_LIM_PIPELINE], >, 0);
    rx_free(&rx);
    free(buf);
    close(fd);
}

static void test_http10_and_close(void **st)
{
    static const char *const reqs[] = {
        "GET /fast HTTP/1.0\r\n\r\n",
        "GET /fast HTTP/1.1\r\nConnection: close\r\n\r\nGET /fast HTTP/1.1\r\n\r\n",
    };
    for (int i = 0; i < 2; i++) {
        int fd = dial();
        send_all(fd, reqs[i], strlen(reqs[i]));
        struct rx rx;
        recv_resp(fd, &rx, 2, 3000);
        assert_true(rx.eof);
        assert_int_equal(rx.n, 1);
        char v[32];
        assert_true(presp_header(&rx.p[0], "Connection", v, sizeof(v)));
        assert_string_equal(v, "close");
        rx_free(&rx);
        close(fd);
    }
    /* HTTP/1.0 keep-alive stays open */
    int fd = dial();
    const char *ka = "GET /fast HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
    send_all(fd, ka, strlen(ka));
    send_all(fd, ka, strlen(ka));
    struct rx rx;
    recv_resp(fd, &rx, 2, 3000);
    assert_int_equal(rx.n, 2);
    assert_false(rx.eof);
    rx_free(&rx);
    close(fd);
}

static void test_chunked_body(void **st)
{
    int fd = dial();
    const char *req = "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "4\r\nabcd\r\n";
    uint64_t in0 = stats().bytes_in;
    send_all(fd, req, strlen(req));
    /* the server has read the first chunk before the rest is sent */
    assert_true(TU_WAIT_UNTIL(stats().bytes_in >= in0 + strlen(req), 3000));
    SEND(fd, "3\r\nefg\r\n0\r\n\r\n");
    struct rx rx;
    recv_resp(fd, &rx, 1, 3000);
    assert_int_equal(rx.n, 1);
    assert_int_equal(rx.p[0].body_len, 7);
    assert_memory_equal(rx.p[0].body, "abcdefg", 7);
    rx_free(&rx);
    close(fd);
}

static void test_431_413_400(void **st)
{
    struct mx_http_stats before = stats();
    /* 431 */
    int fd = dial();
    size_t big = 17 * 1024;
    char *req = malloc(big + 64);
    int n = sprintf(req, "GET /fast HTTP/1.1\r\nX-Big: ");
    memset(req + n, 'a', big);
    memcpy(req + n + big, "\r\n\r\n", 4);
    send_all(fd, req, (size_t)n + big + 4);
    struct rx rx;
    recv_resp(fd, &rx, 1, 3000);
    assert_int_equal(rx.n, 1);
    assert_int_equal(rx.p[0].status, 431);
    assert_true(closes_within(fd, 3000));
    rx_free(&rx);
    close(fd);
    free(req);
    /* 413: a 2 MB body */
    fd = dial();
    size_t body = 2u << 20;
    char *post = malloc(body + 128);
    n = sprintf(post, "POST /echo HTTP/1.1\r\nContent-Length: %zu\r\n\r\n", body);
    memset(post + n, 'b', body);
    send_all(fd, post, (size_t)n + body);
    recv_resp(fd, &rx, 1, 5000);
    assert_int_equal(rx.n, 1);
    assert_int_equal(rx.p[0].status, 413);
    assert_non_null(memmem(rx.p[0].body, rx.p[0].body_len, "\"status\":413", 12));
    rx_free(&rx);
    close(fd);
    free(post);
    /* malformed request line */
    fd = dial();
    SEND(fd, "BLAH\x01 / HTTP/1.1\r\n\r\n");
    recv_resp(fd, &rx, 1, 3000);
    assert_int_equal(rx.n, 1);
    assert_int_equal(rx.p[0].status, 400);
    assert_non_null(memmem(rx.p[0].body, rx.p[0].body_len, "\"code\":\"C001\"", 13));
    assert_true(closes_within(fd, 3000));
    rx_free(&rx);
    close(fd);
    struct mx_http_stats after = stats();
    assert_int_equal(after.limits[MX_HTTP_LIM_HEADER_SIZE] - before.limits[MX_HTTP_LIM_HEADER_SIZE],
                     1);
    assert_int_equal(after.limits[MX_HTTP_LIM_BODY_SIZE] - before.limits[MX_HTTP_LIM_BODY_SIZE], 1);
    TU_ASSERT_CMP(after.limits[MX_HTTP_LIM_BAD_REQUEST], >, before.limits[MX_HTTP_LIM_BAD_REQUEST]);
}

static void test_slow_client_408(void **st)
{
    int fd = dial();
    int64_t t0 = tu_now_ms();
    SEND(fd, "GET /fast HTTP/1.1\r\nHo");
    struct rx rx;
    recv_resp(fd, &rx, 1, 5000);
    int64_t took = tu_now_ms() - t0;
    assert_int_equal(rx.n, 1);
    assert_int_equal(rx.p[0].status, 408);
    TU_ASSERT_CMP(took, >=, 400);
    TU_ASSERT_CMP(took, <, 3000);
    assert_true(closes_within(fd, 3000));
    rx_free(&rx);
    close(fd);
}

static void test_idle_close(void **st)
{
    uint64_t idle0 = stats().limits[MX_HTTP_LIM_IDLE];
    int fd = dial();
    SEND(fd, "GET /fast HTTP/1.1\r\n\r\n");
    struct rx rx;
    recv_resp(fd, &rx, 1, 3000);
    assert_int_equal(rx.n, 1);
    rx_free(&rx);
    int64_t t0 = tu_now_ms();
    assert_true(closes_within(fd, 5000));
    int64_t took = tu_now_ms() - t0;
    TU_ASSERT_CMP(took, >=, 1000); /* idle timeout 1.5 s */
    TU_ASSERT_CMP(stats().limits[MX_HTTP_LIM_IDLE], >, idle0);
    close(fd);
}

static void test_client_leaves(void **st)
{
    struct mx_http_stats s0 = stats();
    /* leaves (reset) while its answer is deferred */
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    int fd = dial();
    int parked = atomic_load(&g_slow_parked);
    SEND(fd, "GET /slow/200 HTTP/1.1\r\n\r\n");
    assert_true(TU_WAIT_UNTIL(atomic_load(&g_slow_parked) > parked, 3000)); /* deferred now */
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(fd);
    /* leaves in the middle of an 8 MB answer, with a reset */
    fd = dial();
    SEND(fd, "GET /big HTTP/1.1\r\n\r\nGET /big HTTP/1.1\r\n\r\n");
    char b[1000];
    TU_ASSERT_CMP(recv(fd, b, sizeof(b), 0), >, 0);
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(fd);
    assert_true(TU_WAIT_UNTIL(stats().dropped_responses > s0.dropped_responses &&
                                  stats().conns_reset > s0.conns_reset,
                              3000));
    /* the server is fine */
    fd = dial();
    SEND(fd, "GET /fast HTTP/1.1\r\n\r\n");
    struct rx rx;
    recv_resp(fd, &rx, 1, 3000);
    assert_int_equal(rx.n, 1);
    assert_int_equal(rx.p[0].status, 200);
    rx_free(&rx);
    close(fd);
}

/* Answers the kernel does not take at once (an 8 MB blob to a client with
 * a small receive buffer) continue through uv_write from where the direct
 * write stopped; later answers queue behind them: every byte arrives, in
 * order. */
static void test_big_partial_writes(void **st)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(g_port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    SEND(fd, "GET /big HTTP/1.1\r\n\r\nGET /big HTTP/1.1\r\n\r\nGET /fast HTTP/1.1\r\n\r\n");
    struct rx rx;
    recv_resp(fd, &rx, 3, 15000);
    assert_int_equal(rx.n, 3);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(rx.p[i].status, 200);
        assert_int_equal(rx.p[i].body_len, g_big->len);
        assert_memory_equal(rx.p[i].body, g_big->data, g_big->len);
    }
    assert_int_equal(rx.p[2].status, 200);
    assert_memory_equal(rx.p[2].body, "fast", 4);
    rx_free(&rx);
    close(fd);
}

static void test_max_conns(void **st)
{
    assert_true(TU_WAIT_UNTIL(stats().conns_open == 0, 5000));
    uint64_t refused0 = stats().conns_refused;
    int fds[MAX_CONNS];
    for (int i = 0; i < MAX_CONNS; i++) {
        fds[i] = dial();
        TU_ASSERT_CMP(fds[i], >=, 0);
    }
    assert_true(TU_WAIT_UNTIL(stats().conns_open == MAX_CONNS, 3000));
    int extra = dial();
    TU_ASSERT_CMP(extra, >=, 0);
    struct rx rx;
    recv_resp(extra, &rx, 1, 3000);
    assert_int_equal(rx.n, 1);
    assert_int_equal(rx.p[0].status, 503);
    char v[16];
    assert_true(presp_header(&rx.p[0], "Retry-After", v, sizeof(v)));
    assert_true(closes_within(extra, 2000));
    assert_int_equal(stats().conns_refused, refused0 + 1);
    rx_free(&rx);
    close(extra);
    /* the accepted ones still work */
    SEND(fds[0], "GET /fast HTTP/1.1\r\n\r\n");
    recv_resp(fds[0], &rx, 1, 3000);
    assert_int_equal(rx.n, 1);
    assert_int_equal(rx.p[0].status, 200);
    rx_free(&rx);
    for (int i = 0; i < MAX_CONNS; i++)
        close(fds[i]);
    assert_true(TU_WAIT_UNTIL(stats().conns_open == 0, 3000));
}

static void test_gzip_etag(void **st)
{
    int fd = dial();
    char req[512];
    int n = sprintf(req,
                    "GET /doc HTTP/1.1\r\nAccept-Encoding: gzip\r\n\r\n"
                    "GET /doc HTTP/1.1\r\nAccept-Encoding: gzip\r\nIf-None-Match: %s\r\n\r\n"
                    "GET /doc HTTP/1.1\r\n\r\n",
                    g_doc->etag_gz);
    send_all(fd, req, (size_t)n);
    struct rx rx;
    recv_resp(fd, &rx, 3, 3000);
    assert_int_equal(rx.n, 3);
    char v[80];
    assert_int_equal(rx.p[0].status, 200);
    assert_true(presp_header(&rx.p[0], "Content-Encoding", v, sizeof(v)));
    assert_string_equal(v, "gzip");
    assert_int_equal(rx.p[0].body_len, g_doc->gzip->len);
    assert_memory_equal(rx.p[0].body, g_doc->gzip->data, g_doc->gzip->len);
    assert_int_equal(rx.p[1].status, 304);
    assert_int_equal(rx.p[1].body_len, 0);
    assert_int_equal(rx.p[2].status, 200);
    assert_int_equal(rx.p[2].body_len, g_doc->plain->len);
    assert_true(presp_header(&rx.p[2], "ETag", v, sizeof(v)));
    assert_string_equal(v, g_doc->etag);
    rx_free(&rx);
    close(fd);
}

static void test_trace_propagation(void **st)
{
    int fd = dial();
    const char *tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    char req[256];
    int n = sprintf(req, "GET /actor HTTP/1.1\r\ntraceparent: %s\r\n\r\n", tp);
    send_all(fd, req, (size_t)n);
    struct rx rx;
    recv_resp(fd, &rx, 1, 3000);
    assert_int_equal(rx.n, 1);
    char v[80];
    assert_true(presp_header(&rx.p[0], "traceparent", v, sizeof(v)));
    assert_string_equal(v, tp);
    pthread_mutex_lock(&g_mu);
    assert_int_equal(g_seen_trace[0], 0x0a);
    assert_int_equal(g_seen_trace[15], 0x9c);
    pthread_mutex_unlock(&g_mu);
    rx_free(&rx);
    close(fd);
}

/* max_in_app = 1 on a second server (2 acceptors): 8 connections each ask
 * a request the app answers after 150 ms. At most 2 are in the app at once,
 * so the rest wait, paused, and are answered later - none is refused - and
 * the whole takes several rounds; a /fast request behind them is answered
 * too, after the pause. */
static void test_in_app_pause(void **st)
{
    struct mx_http_opts o = {.addr = "127.0.0.1:0", .max_conns = MAX_CONNS, .max_in_app = 1};
    struct mx_http_app app = {.routes = routes,
                              .nroutes = sizeof(routes) / sizeof(routes[0]),
                              .init = app_init,
                              .fini = app_fini,
                              .on_message = app_on_message};
    mx_http_t *h2;
    uint16_t port;
    assert_int_equal(mx_http_start(g_sys, &o, &app, &h2, &port), 0);
    enum { N = 8 };
    int fds[N];
    int64_t t0 = tu_now_ms();
    for (int i = 0; i < N; i++) {
        fds[i] = dial_port(port);
        TU_ASSERT_CMP(fds[i], >=, 0);
        SEND(fds[i], "GET /slow/150 HTTP/1.1\r\nHost: x\r\n\r\n"
                     "GET /fast HTTP/1.1\r\nHost: x\r\n\r\n");
    }
    for (int i = 0; i < N; i++) {
        struct rx rx;
        recv_resp(fds[i], &rx, 2, 10000);
        assert_int_equal(rx.n, 2);
        assert_int_equal(rx.p[0].status, 200);
        assert_memory_equal(rx.p[0].body, "slow 150", 8);
        assert_int_equal(rx.p[1].status, 200);
        assert_memory_equal(rx.p[1].body, "fast", 4);
        rx_free(&rx);
        close(fds[i]);
    }
    int64_t took = tu_now_ms() - t0;
    /* 8 requests, at most 2 at a time (one per acceptor): >= 4 rounds */
    TU_ASSERT_CMP(took, >=, 4 * 150 - 20);
    struct mx_http_stats s;
    mx_http_stats(h2, &s);
    TU_ASSERT_CMP(s.limits[MX_HTTP_LIM_IN_APP], >, 0);
    assert_int_equal(s.responses[5], 0);
    assert_int_equal(s.responses[2], 2 * N);
    assert_int_equal(mx_http_stop(h2, 5000), 0);
    mx_http_free(h2);
}

static void test_start_errors(void **st)
{
    /* a port held by a socket without SO_REUSEPORT: MX_EIO */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof(sa);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(fd, 1), 0);
    getsockname(fd, (struct sockaddr *)&sa, &sl);
    char addr[64];
    sprintf(addr, "127.0.0.1:%u", ntohs(sa.sin_port));
    struct mx_http_opts o = {.addr = addr};
    struct mx_http_app app = {.routes = routes, .nroutes = 1};
    mx_http_t *h = NULL;
    assert_int_equal(mx_http_start(g_sys, &o, &app, &h, NULL), MX_EIO);
    close(fd);
    static const char *const bad[] = {"nohost", "127.0.0.1:99999", "127.0.0.1:", "bad host:80",
                                      "[::1:80"};
    for (int i = 0; i < 5; i++) {
        o.addr = bad[i];
        assert_int_equal(mx_http_start(g_sys, &o, &app, &h, NULL), MX_EINVAL);
    }
    static const struct mx_http_route badr[] = {{"GET", "nope", h_fast, 0}};
    o.addr = "127.0.0.1:0";
    app.routes = badr;
    assert_int_equal(mx_http_start(g_sys, &o, &app, &h, NULL), MX_EINVAL);
}

/* last: the server stops accepting */
static void test_drain(void **st)
{
    int idle = dial();
    int busy = dial();
    SEND(idle, "GET /fast HTTP/1.1\r\n\r\n");
    struct rx rx;
    recv_resp(idle, &rx, 1, 3000);
    assert_int_equal(rx.n, 1);
    rx_free(&rx);
    int parked = atomic_load(&g_slow_parked);
    SEND(busy, "GET /slow/300 HTTP/1.1\r\n\r\n");
    assert_true(TU_WAIT_UNTIL(atomic_load(&g_slow_parked) > parked, 3000)); /* in flight */
    assert_int_equal(mx_http_drain(g_http), 0);
    assert_true(closes_within(idle, 2000));
    recv_resp(busy, &rx, 1, 3000);
    assert_int_equal(rx.n, 1);
    assert_int_equal(rx.p[0].status, 200);
    char v[32];
    assert_true(presp_header(&rx.p[0], "Connection", v, sizeof(v)));
    assert_string_equal(v, "close");
    rx_free(&rx);
    assert_true(closes_within(busy, 2000));
    close(idle);
    close(busy);
    assert_true(TU_WAIT_UNTIL(dial() < 0, 2000)); /* listeners closed */
    assert_true(TU_WAIT_UNTIL(stats().conns_open == 0, 3000));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keepalive_headers),
        cmocka_unit_test(test_pipeline_100),
        cmocka_unit_test(test_http10_and_close),
        cmocka_unit_test(test_chunked_body),
        cmocka_unit_test(test_431_413_400),
        cmocka_unit_test(test_slow_client_408),
        cmocka_unit_test(test_idle_close),
        cmocka_unit_test(test_client_leaves),
        cmocka_unit_test(test_big_partial_writes),
        cmocka_unit_test(test_max_conns),
        cmocka_unit_test(test_gzip_etag),
        cmocka_unit_test(test_trace_propagation),
        cmocka_unit_test(test_in_app_pause),
        cmocka_unit_test(test_start_errors),
        cmocka_unit_test(test_drain),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
