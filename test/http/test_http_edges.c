/* test_http_edges.c - system test of the HTTP server's defences against
 * hostile clients (issue 12, "HTTP edges"), each on its own server over
 * raw loopback sockets: chunk extensions are capped (413), a body trickled
 * byte by byte meets the body deadline (408), one client address cannot
 * take every connection, health routes are answered while the app is at
 * max_in_app, a client that reads its answers too slowly is closed, and
 * 300 connections pipelining without reading keep the process RSS under
 * the node-wide buffer budget plus a fixed margin (and the memory goes
 * back after they are closed). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
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

static mx_system_t *g_sys;
static char g_m[30000]; /* the body of /m: copied per answer, as metrics are */

/* ---- the app: /fast, /m, /hold (never answered until the app stops), /echo ---- */

#define HOLD_MAX 64
struct app_state {
    mx_http_req_t *held[HOLD_MAX];
    int n;
};

static int app_init(mx_actor_t *self, void *ctx, void **state)
{
    *state = calloc(1, sizeof(struct app_state));
    return *state ? 0 : MX_ENOMEM;
}

static void app_fini(mx_actor_t *self, void *ctx, void *state)
{
    struct app_state *s = state;
    for (int i = 0; i < s->n; i++)
        mx_http_error(s->held[i], 503, "S005", "stopping");
    free(s);
}

static int h_fast(mx_http_req_t *r, void *st)
{
    mx_http_respond(r, 200, "text/plain", "fast", 4);
    return MX_HTTP_DONE;
}

static int h_m(mx_http_req_t *r, void *st)
{
    mx_http_respond(r, 200, "text/plain", g_m, sizeof(g_m));
    return MX_HTTP_DONE;
}

static int h_hold(mx_http_req_t *r, void *st)
{
    struct app_state *s = st;
    if (s->n == HOLD_MAX)
        return mx_http_error(r, 503, "S005", "full"), MX_HTTP_DONE;
    s->held[s->n++] = r;
    return MX_HTTP_PENDING;
}

static int h_echo(mx_http_req_t *r, void *st)
{
    size_t n;
    const uint8_t *b = mx_http_req_body(r, &n);
    mx_http_respond(r, 200, "application/octet-stream", b, n);
    return MX_HTTP_DONE;
}

static const struct mx_http_route routes[] = {
    {"GET", "/fast", h_fast, 0},  {"GET", "/health", h_fast, MX_HTTP_ROUTE_LIGHT},
    {"GET", "/m", h_m, 0},        {"GET", "/hold", h_hold, 0},
    {"POST", "/echo", h_echo, 0},
};

static mx_http_t *start(struct mx_http_opts *o, uint16_t *port)
{
    struct mx_http_app app = {.routes = routes,
                              .nroutes = sizeof(routes) / sizeof(routes[0]),
                              .init = app_init,
                              .fini = app_fini};
    mx_http_t *h = NULL;
    o->addr = "127.0.0.1:0";
    assert_int_equal(mx_http_start(g_sys, o, &app, &h, port), 0);
    return h;
}

static void stop(mx_http_t *h)
{
    assert_int_equal(mx_http_stop(h, 5000), 0);
    mx_http_free(h);
}

static struct mx_http_stats stats(mx_http_t *h)
{
    struct mx_http_stats s;
    mx_http_stats(h, &s);
    return s;
}

static int setup(void **st)
{
    signal(SIGPIPE, SIG_IGN); /* as mxnode: a client that left is an EPIPE, not a signal */
    struct mx_system_opts so = {.node_name = "t", .schedulers = 2};
    assert_int_equal(mx_system_start(&so, &g_sys), 0);
    memset(g_m, 'm', sizeof(g_m));
    return 0;
}

static int teardown(void **st)
{
    mx_system_stop(g_sys, 5000);
    mx_system_free(g_sys);
    return 0;
}

/* ---- raw sockets ---- */

/* connect from src (NULL: the kernel's choice) to 127.0.0.1:port */
static int dial_from(const char *src, uint16_t port, int rcvbuf)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (rcvbuf)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    if (src) {
        struct sockaddr_in sa = {.sin_family = AF_INET};
        inet_pton(AF_INET, src, &sa.sin_addr);
        if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
            close(fd);
            return -1;
        }
    }
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* read one response (or EOF) within timeout_ms; its status, 0 if none */
static int recv_status(int fd, int timeout_ms, char *body_out, size_t cap)
{
    static char buf[1 << 16];
    size_t len = 0;
    struct presp p[1];
    int64_t dl = tu_now_ms() + timeout_ms;
    while (tu_now_ms() < dl && len < sizeof(buf) - 1) {
        if (parse_responses(buf, len, p, 1, NULL, NULL) == 1) {
            if (body_out)
                snprintf(body_out, cap, "%.*s", (int)p[0].body_len, p[0].body);
            return p[0].status;
        }
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, 20) <= 0)
            continue;
        ssize_t n = recv(fd, buf + len, sizeof(buf) - 1 - len, 0);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    return parse_responses(buf, len, p, 1, NULL, NULL) == 1 ? p[0].status : 0;
}

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, res = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &res) != 2)
            res = 0;
        fclose(f);
    }
    return res * (sysconf(_SC_PAGESIZE) / 1024);
}

/* ---- tests ---- */

/* A chunk extension of 64 KiB streamed after "1;": llhttp does not bound
 * it; the server answers 413 at 4 KiB and closes. */
static void test_chunk_extension_cap(void **st)
{
    struct mx_http_opts o = {0};
    uint16_t port;
    mx_http_t *h = start(&o, &port);
    int fd = dial_from(NULL, port, 0);
    TU_ASSERT_CMP(fd, >=, 0);
    SEND(fd, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1;");
    char ext[8192];
    memset(ext, 'a', sizeof(ext));
    for (int i = 0; i < 8; i++) {
        ssize_t n = send(fd, ext, sizeof(ext), MSG_NOSIGNAL);
        if (n <= 0)
            break; /* the server answered and closed */
    }
    char body[512];
    assert_int_equal(recv_status(fd, 3000, body, sizeof(body)), 413);
    assert_non_null(strstr(body, "chunk extensions"));
    assert_true(closes_within(fd, 3000));
    assert_int_equal(stats(h).limits[MX_HTTP_LIM_CHUNK_EXT], 1);
    close(fd);
    /* short extensions are fine */
    fd = dial_from(NULL, port, 0);
    SEND(fd, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
             "2;name=value\r\nok\r\n0\r\n\r\n");
    assert_int_equal(recv_status(fd, 3000, body, sizeof(body)), 200);
    assert_string_equal(body, "ok");
    close(fd);
    stop(h);
}

/* One body byte every 100 ms keeps the idle timer young; the body deadline
 * (800 ms from the end of the head) answers 408 all the same. Both framings. */
static void test_slow_body_deadline(void **st)
{
    struct mx_http_opts o = {.body_timeout_ms = 800, .idle_timeout_ms = 5000};
    uint16_t port;
    mx_http_t *h = start(&o, &port);
    static const char *const heads[] = {
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n",
        "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n64\r\n",
    };
    for (int k = 0; k < 2; k++) {
        int fd = dial_from(NULL, port, 0);
        TU_ASSERT_CMP(fd, >=, 0);
        send_all(fd, heads[k], strlen(heads[k]));
        int64_t t0 = tu_now_ms();
        int status = 0;
        for (int i = 0; i < 60 && !status; i++) { /* at most 6 s */
            if (send(fd, "a", 1, MSG_NOSIGNAL) != 1)
                break;
            status = recv_status(fd, 100, NULL, 0);
        }
        if (!status)
            status = recv_status(fd, 1000, NULL, 0);
        int64_t took = tu_now_ms() - t0;
        assert_int_equal(status, 408);
        TU_ASSERT_CMP(took, >=, 700);
        TU_ASSERT_CMP(took, <, 3000);
        assert_true(closes_within(fd, 3000));
        close(fd);
    }
    assert_int_equal(stats(h).limits[MX_HTTP_LIM_BODY_TIME], 2);
    stop(h);
}

/* max_conns_per_client = 3: a 4th connection from 127.0.0.2 gets 503;
 * another address (and loopback 127.0.0.1) is still served. */
static void test_per_client_cap(void **st)
{
    struct mx_http_opts o = {.max_conns = 50, .max_conns_per_client = 3};
    uint16_t port;
    mx_http_t *h = start(&o, &port);
    int fds[3];
    for (int i = 0; i < 3; i++) {
        fds[i] = dial_from("127.0.0.2", port, 0);
        TU_ASSERT_CMP(fds[i], >=, 0);
        SEND(fds[i], "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\na");
    }
    assert_true(TU_WAIT_UNTIL(stats(h).conns_open == 3, 3000));
    int extra = dial_from("127.0.0.2", port, 0);
    TU_ASSERT_CMP(extra, >=, 0);
    char body[512];
    assert_int_equal(recv_status(extra, 3000, body, sizeof(body)), 503);
    assert_non_null(strstr(body, "S_BUSY"));
    close(extra);
    assert_int_equal(stats(h).limits[MX_HTTP_LIM_CLIENT_CONNS], 1);
    int other = dial_from("127.0.0.3", port, 0);
    SEND(other, "GET /fast HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(recv_status(other, 3000, NULL, 0), 200);
    close(other);
    /* one of the client's connections closes: it may open another */
    close(fds[0]);
    assert_true(TU_WAIT_UNTIL(stats(h).conns_open == 2, 3000));
    fds[0] = dial_from("127.0.0.2", port, 0);
    SEND(fds[0], "GET /fast HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(recv_status(fds[0], 3000, NULL, 0), 200);
    for (int i = 0; i < 3; i++)
        close(fds[i]);
    stop(h);
}

/* max_in_app = 1, held by requests the app never answers (the others are
 * held by the server, not refused): /health (a light route) is still
 * answered at once on fresh connections. */
static void test_health_while_app_full(void **st)
{
    struct mx_http_opts o = {.max_in_app = 1};
    uint16_t port;
    mx_http_t *h = start(&o, &port);
    enum { N = 8 };
    int fds[N];
    for (int i = 0; i < N; i++) {
        fds[i] = dial_from(NULL, port, 0);
        SEND(fds[i], "GET /hold HTTP/1.1\r\nHost: x\r\n\r\n");
    }
    /* two in the app (one per acceptor), the others held */
    assert_true(TU_WAIT_UNTIL(stats(h).limits[MX_HTTP_LIM_IN_APP] >= N - 2, 3000));
    for (int i = 0; i < 6; i++) {
        int fd = dial_from(NULL, port, 0);
        int64_t t0 = tu_now_ms();
        SEND(fd, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_int_equal(recv_status(fd, 2000, NULL, 0), 200);
        TU_ASSERT_CMP(tu_now_ms() - t0, <, 1000);
        close(fd);
    }
    for (int i = 0; i < N; i++)
        close(fds[i]);
    stop(h);
}

/* A client reads 4 KiB every 200 ms (20 KiB/s) of 400 pipelined 30 KB
 * answers. Before, the idle timer closed it gracefully and the kernel
 * still held megabytes for it; with min_drain_bytes_per_s = 64 KiB it is
 * reset within one 2 s window (idle / 2). */
static void test_min_drain_rate(void **st)
{
    struct mx_http_opts o = {.idle_timeout_ms = 4000, .min_drain_bytes_per_s = 64 << 10};
    uint16_t port;
    mx_http_t *h = start(&o, &port);
    int fd = dial_from(NULL, port, 4096);
    TU_ASSERT_CMP(fd, >=, 0);
    fcntl(fd, F_SETFL, O_NONBLOCK);
    /* more answers than the kernel's socket buffers take: some stay unwritten */
    static char req[400 * 20];
    size_t len = 0, sent = 0;
    for (int i = 0; i < 400; i++)
        len += (size_t)sprintf(req + len, "GET /m HTTP/1.1\r\n\r\n");
    int64_t t0 = tu_now_ms();
    bool closed = false;
    char b[4096];
    while (!closed && tu_now_ms() - t0 < 8000) {
        ssize_t k = sent < len ? send(fd, req + sent, len - sent, MSG_NOSIGNAL) : 0;
        sent += k > 0 ? (size_t)k : 0;
        usleep(200000);
        ssize_t n = recv(fd, b, sizeof(b), MSG_DONTWAIT);
        closed = n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
    }
    print_message("drain closes %llu open %llu after %lld ms\n",
                  (unsigned long long)stats(h).limits[MX_HTTP_LIM_DRAIN],
                  (unsigned long long)stats(h).conns_open, (long long)(tu_now_ms() - t0));
    assert_true(closed);
    assert_int_equal(stats(h).limits[MX_HTTP_LIM_DRAIN], 1);
    close(fd);
    stop(h);
}

/* 300 connections each pipeline 600 requests for a 30 KB answer and never
 * read (a 4 KiB receive buffer). Unbounded, each would hold 4 MiB of
 * answers (~1.2 GB). With a 24 MiB node budget the RSS grows by less than
 * the budget plus a fixed margin, the connections are closed (counted) and
 * the memory goes back to the system afterwards. */
static void test_memory_budget(void **st)
{
    enum { CONNS = 300, REQS = 600, BUDGET = 24 << 20, MARGIN_KIB = 64 << 10 };
    struct mx_http_opts o = {.max_conns = 1000, .max_buffered_bytes = BUDGET};
    uint16_t port;
    mx_http_t *h = start(&o, &port);
    long rss0 = rss_kib();
    static const char one[] = "GET /m HTTP/1.1\r\nHost: x\r\n\r\n";
    size_t len = (sizeof(one) - 1) * REQS;
    char *reqs = malloc(len);
    for (int i = 0; i < REQS; i++)
        memcpy(reqs + i * (sizeof(one) - 1), one, sizeof(one) - 1);
    int fds[CONNS];
    size_t sent[CONNS];
    for (int i = 0; i < CONNS; i++) {
        fds[i] = dial_from(NULL, port, 4096);
        TU_ASSERT_CMP(fds[i], >=, 0);
        fcntl(fds[i], F_SETFL, O_NONBLOCK);
        sent[i] = 0;
    }
    long peak = rss0;
    int64_t t0 = tu_now_ms();
    /* push the requests for 3 s (whatever the kernel takes), sampling RSS */
    while (tu_now_ms() - t0 < 3000) {
        for (int i = 0; i < CONNS; i++) {
            if (sent[i] == len)
                continue;
            ssize_t n = send(fds[i], reqs + sent[i], len - sent[i], MSG_NOSIGNAL);
            if (n > 0)
                sent[i] += (size_t)n;
        }
        long r = rss_kib();
        peak = r > peak ? r : peak;
        usleep(20000);
    }
    struct mx_http_stats s = stats(h);
    print_message("rss0 %ld KiB, peak %ld KiB (+%ld), buffered peak %llu, requests %llu\n", rss0,
                  peak, peak - rss0, (unsigned long long)s.buffered_peak,
                  (unsigned long long)s.requests);
    TU_ASSERT_CMP(s.requests, >, 2 * CONNS); /* the load did reach the server */
    TU_ASSERT_CMP(peak - rss0, <, BUDGET / 1024 + MARGIN_KIB);
    /* held back with unread answers: closed and counted */
    assert_true(TU_WAIT_UNTIL(stats(h).mem_closed > 0, 10000));
    for (int i = 0; i < CONNS; i++)
        close(fds[i]);
    assert_true(TU_WAIT_UNTIL(stats(h).conns_open == 0, 10000));
    assert_true(TU_WAIT_UNTIL(stats(h).buffered_bytes == 0, 5000));
    assert_true(TU_WAIT_UNTIL(stats(h).mem_trims > 0, 5000));
    long after = rss_kib();
    print_message("rss after close %ld KiB\n", after);
    TU_ASSERT_CMP(after - rss0, <, MARGIN_KIB);
    free(reqs);
    stop(h);
}

/* The input side: 20 connections each ask /hold (the app never answers)
 * and pipeline 31 POSTs of 1 MiB behind it. Unbounded, the bodies queued
 * behind the held request pinned 20 x 31 MiB; with a 24 MiB budget the RSS
 * stays under it plus the margin, and the connections holding bodies are
 * closed (the held requests are detached). */
static void test_memory_budget_bodies(void **st)
{
    enum { CONNS = 20, POSTS = 31, BODY = 1 << 20, BUDGET = 24 << 20, MARGIN_KIB = 64 << 10 };
    struct mx_http_opts o = {.max_conns = 100, .max_buffered_bytes = BUDGET};
    uint16_t port;
    mx_http_t *h = start(&o, &port);
    static const char head[] = "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n";
    size_t one = sizeof(head) - 1 + BODY;
    static const char hold[] = "GET /hold HTTP/1.1\r\nHost: x\r\n\r\n";
    size_t len = sizeof(hold) - 1 + POSTS * one;
    char *stream = malloc(len);
    memcpy(stream, hold, sizeof(hold) - 1);
    for (int i = 0; i < POSTS; i++) {
        char *p = stream + sizeof(hold) - 1 + (size_t)i * one;
        memcpy(p, head, sizeof(head) - 1);
        memset(p + sizeof(head) - 1, 'b', BODY);
    }
    long rss0 = rss_kib(); /* with this test's own 31 MiB stream */
    int fds[CONNS];
    size_t sent[CONNS] = {0};
    for (int i = 0; i < CONNS; i++) {
        fds[i] = dial_from(NULL, port, 0);
        TU_ASSERT_CMP(fds[i], >=, 0);
        fcntl(fds[i], F_SETFL, O_NONBLOCK);
    }
    long peak = rss0;
    int64_t t0 = tu_now_ms();
    while (tu_now_ms() - t0 < 3000) {
        for (int i = 0; i < CONNS; i++) {
            ssize_t n =
                sent[i] < len ? send(fds[i], stream + sent[i], len - sent[i], MSG_NOSIGNAL) : 0;
            sent[i] += n > 0 ? (size_t)n : 0;
        }
        long r = rss_kib();
        peak = r > peak ? r : peak;
        usleep(20000);
    }
    struct mx_http_stats s = stats(h);
    print_message("bodies: rss0 %ld KiB, peak +%ld KiB, buffered peak %llu, requests %llu\n", rss0,
                  peak - rss0, (unsigned long long)s.buffered_peak, (unsigned long long)s.requests);
    TU_ASSERT_CMP(s.requests, >, CONNS + CONNS / 2); /* bodies behind the held requests */
    TU_ASSERT_CMP(peak - rss0, <, BUDGET / 1024 + MARGIN_KIB);
    assert_true(TU_WAIT_UNTIL(stats(h).mem_closed > 0, 10000));
    /* the count itself overshoots by at most a body per acceptor */
    TU_ASSERT_CMP(stats(h).buffered_peak, <, BUDGET + 4 * BODY);
    for (int i = 0; i < CONNS; i++)
        close(fds[i]);
    free(stream);
    stop(h); /* the app answers the held requests: that only frees them */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chunk_extension_cap),  cmocka_unit_test(test_slow_body_deadline),
        cmocka_unit_test(test_per_client_cap),       cmocka_unit_test(test_health_while_app_full),
        cmocka_unit_test(test_min_drain_rate),       cmocka_unit_test(test_memory_budget),
        cmocka_unit_test(test_memory_budget_bodies),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
