/* app_proxy_test.c - the PROXY protocol (v1 and v2) on a real mxnode, from
 * raw sockets and through a real haproxy (TCP mode, send-proxy-v2, health
 * checks with check-send-proxy): a trusted peer's header sets the client
 * address (the metrics allowlist, which answers 403 to public clients,
 * proves it), an untrusted peer's header is refused, a malformed header
 * closes the connection, and both are counted (mxctl stats); the global
 * rate limit's per-client buckets follow the header's address. */
#include <curl/curl.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "../redis/redisd.h"
#include "../stub/stub_harness.h"
#include "mx_testutil.h"
#include "haproxyd.h"
#include "node_harness.h"

static struct node g_t, g_u;
static char g_dir[256];
static pid_t g_haproxy;

static int setup(void **st)
{
    const char *env_t[] = {"MX_NODE_NAME=pt", "MX_REGISTRY=0", "MX_RATE_LIMIT=0",
                           "MX_TRUSTED_PROXIES=127.0.0.1/32", NULL};
    const char *env_u[] = {"MX_NODE_NAME=pu", "MX_REGISTRY=0", "MX_RATE_LIMIT=0",
                           "MX_TRUSTED_PROXIES=10.0.0.0/8", NULL};
    if (node_start(&g_t, env_t) != 0 || node_start(&g_u, env_u) != 0 ||
        mx_proc_tmpdir(NULL, "proxy", g_dir, sizeof g_dir) != 0)
        return -1;
    return 0;
}

static int teardown(void **st)
{
    haproxyd_stop(&g_haproxy);
    node_kill(&g_t);
    node_kill(&g_u);
    mx_proc_rmdir(g_dir);
    return 0;
}

/* send raw bytes; the status of the answer, or 0 when the node closed
 * the connection without one */
static int raw_status(int port, const void *data, size_t len)
{
    int fd = raw_connect(port);
    if (fd < 0)
        return -1;
    char *in = NULL;
    size_t in_len = 0;
    raw_exchange(fd, data, len, 1, 3000, &in, &in_len);
    close(fd);
    int status = 0;
    if (in && in_len > 12 && strncmp(in, "HTTP/1.1 ", 9) == 0)
        status = atoi(in + 9);
    free(in);
    return status;
}

static const char METRICS[] =
    "GET /actuator/prometheus HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";

static int with_header(int port, const void *hdr, size_t hlen)
{
    char buf[1024];
    memcpy(buf, hdr, hlen);
    memcpy(buf + hlen, METRICS, sizeof METRICS - 1);
    return raw_status(port, buf, hlen + sizeof METRICS - 1);
}

static long long http_stat(const struct node *n, const char *key)
{
    static char out[65536];
    mx_proc_run(out, sizeof out, 30000, "%s/mxctl --node tcp://127.0.0.1:%d --json stats",
                getenv("MX_BIN_DIR"), n->admin_port);
    char k[64];
    snprintf(k, sizeof k, "\"%s\":", key);
    const char *v = strstr(out, k);
    return v ? atoll(v + strlen(k)) : -1;
}

static size_t v2_header(uint8_t *b, uint8_t cmd, const uint8_t ip[4], uint16_t port)
{
    static const uint8_t sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                    0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
    memcpy(b, sig, 12);
    b[12] = (uint8_t)(0x20 | cmd);
    b[13] = cmd ? 0x11 : 0x00;
    b[14] = 0;
    b[15] = cmd ? 12 : 0;
    if (cmd) {
        memcpy(b + 16, ip, 4);
        memcpy(b + 20, (uint8_t[]){127, 0, 0, 1}, 4);
        b[24] = (uint8_t)(port >> 8);
        b[25] = (uint8_t)port;
        b[26] = 0x1F;
        b[27] = 0x90;
    }
    return cmd ? 28u : 16u;
}

static void test_trusted_peer(void **st)
{
    int port = g_t.http_port;
    /* no header: the loopback peer may read the metrics */
    assert_int_equal(raw_status(port, METRICS, sizeof METRICS - 1), 200);
    /* v1 from a trusted peer: the client is 8.8.8.8, a public address */
    const char *v1 = "PROXY TCP4 8.8.8.8 127.0.0.1 50000 8080\r\n";
    assert_int_equal(with_header(port, v1, strlen(v1)), 403);
    const char *v1p = "PROXY TCP4 10.1.2.3 127.0.0.1 50000 8080\r\n";
    assert_int_equal(with_header(port, v1p, strlen(v1p)), 200); /* a private client */
    /* v2 */
    uint8_t b[64];
    size_t n = v2_header(b, 1, (const uint8_t[]){8, 8, 4, 4}, 40000);
    assert_int_equal(with_header(port, b, n), 403);
    n = v2_header(b, 0, NULL, 0); /* LOCAL: the peer itself */
    assert_int_equal(with_header(port, b, n), 200);
    /* the header split over two writes */
    int fd = raw_connect(port);
    TU_ASSERT_CMP(fd, >=, 0);
    assert_int_equal(send(fd, v1, 9, 0), 9);
    usleep(20000);
    char rest[512];
    snprintf(rest, sizeof rest, "%s%s", v1 + 9, METRICS);
    char *in = NULL;
    size_t in_len = 0;
    assert_int_equal(raw_exchange(fd, rest, strlen(rest), 1, 3000, &in, &in_len), 1);
    assert_non_null(strstr(in, "HTTP/1.1 403"));
    free(in);
    close(fd);
    TU_ASSERT_CMP(http_stat(&g_t, "proxy_ok"), >=, 5);

    /* malformed: closed without an answer, counted */
    long long m0 = http_stat(&g_t, "proxy_malformed");
    const char *bad = "PROXY TCP4 8.8.8.8 nonsense 1 2\r\n";
    assert_int_equal(with_header(port, bad, strlen(bad)), 0);
    assert_true(TU_WAIT_UNTIL(http_stat(&g_t, "proxy_malformed") == m0 + 1, 2000));
}

static void test_untrusted_peer(void **st)
{
    int port = g_u.http_port;
    const char *v1 = "PROXY TCP4 10.9.9.9 127.0.0.1 50000 8080\r\n";
    assert_int_equal(with_header(port, v1, strlen(v1)), 0); /* refused: closed */
    assert_true(TU_WAIT_UNTIL(http_stat(&g_u, "proxy_refused") == 1, 2000));
    assert_int_equal(http_stat(&g_u, "proxy_ok"), 0);
    /* plain HTTP from it is served as before */
    assert_int_equal(raw_status(port, METRICS, sizeof METRICS - 1), 200);
}

static void test_haproxy_send_proxy_v2(void **st)
{
    if (access("/usr/sbin/haproxy", X_OK) != 0) {
        fprintf(stderr, "haproxy not installed (apt-get install haproxy)\n");
        fail();
    }
    int lb = haproxyd_free_port();
    char cfg[2048];
    snprintf(cfg, sizeof cfg,
             "global\n  maxconn 100\ndefaults\n  mode tcp\n  timeout connect 1s\n"
             "  timeout client 10s\n  timeout server 10s\nfrontend api\n  bind 127.0.0.1:%d\n"
             "  default_backend mx\nbackend mx\n  option httpchk GET /actuator/health/readiness\n"
             "  http-check expect status 200\n"
             "  server t 127.0.0.1:%d send-proxy-v2 check check-send-proxy inter 100ms\n",
             lb, g_t.http_port);
    g_haproxy = haproxyd_start(g_dir, cfg);
    TU_ASSERT_CMP(g_haproxy, >, 0);
    long long ok0 = http_stat(&g_t, "proxy_ok");
    /* the health checks arrive with a header too (LOCAL or PROXY) */
    assert_true(TU_WAIT_UNTIL(http_stat(&g_t, "proxy_ok") > ok0 + 2, 5000));
    assert_true(TU_WAIT_UNTIL(raw_status(lb, METRICS, sizeof METRICS - 1) == 200, 3000));
    long long ok1 = http_stat(&g_t, "proxy_ok");
    for (int i = 0; i < 10; i++)
        assert_int_equal(raw_status(lb, METRICS, sizeof METRICS - 1), 200);
    TU_ASSERT_CMP(http_stat(&g_t, "proxy_ok"), >=, ok1 + 10);
    assert_int_equal(http_stat(&g_t, "proxy_malformed"), 1); /* the one of the first test */
    haproxyd_stop(&g_haproxy);
}

/* the rate limiter's per-IP buckets (100 burst) follow the PROXY source */
static void test_rate_limit_buckets(void **st)
{
    struct redisd rd;
    assert_int_equal(redisd_start(&rd, NULL), 0);
    char renv[700];
    snprintf(renv, sizeof renv, "MX_REDIS_URL=%s", rd.url);
    const char *env[] = {"MX_NODE_NAME=pr",
                         "MX_REGISTRY=0",
                         "MX_RATE_LIMIT=1",
                         "MX_TRUSTED_PROXIES=127.0.0.1/32",
                         "MX_NEXON_BASE_URL=http://127.0.0.1:9",
                         renv,
                         NULL};
    struct node n;
    assert_int_equal(node_start(&n, env), 0);
    char req[512];
    int limited_at = 0;
    int64_t t0 = tu_now_ms();
    for (int i = 1; i <= 160 && !limited_at; i++) {
        int len = snprintf(req, sizeof req,
                           "PROXY TCP4 203.0.113.1 127.0.0.1 40000 8080\r\n"
                           "GET /api/v1/characters/rl%d HTTP/1.1\r\nHost: t\r\n"
                           "Connection: close\r\n\r\n",
                           i);
        if (raw_status(n.http_port, req, (size_t)len) == 429)
            limited_at = i;
    }
    /* client 203.0.113.1 used up its burst of 100; the bucket refills 10
     * per 6 s meanwhile, so a slow (loaded) run gets that many more;
     * 203.0.113.2 has its own */
    int64_t took = tu_now_ms() - t0;
    int refilled = (int)(took * 10 / 6000) + 1;
    TU_ASSERT_CMP(limited_at, >, 90);
    TU_ASSERT_CMP(limited_at, <=, 101 + refilled);
    int len =
        snprintf(req, sizeof req,
                 "PROXY TCP4 203.0.113.2 127.0.0.1 40000 8080\r\n"
                 "GET /api/v1/characters/rl HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    int other = raw_status(n.http_port, req, (size_t)len);
    TU_ASSERT_CMP(other, !=, 429);
    TU_ASSERT_CMP(other, !=, 0);
    node_kill(&n);
    redisd_stop(&rd);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_trusted_peer),
        cmocka_unit_test(test_untrusted_peer),
        cmocka_unit_test(test_haproxy_send_proxy_v2),
        cmocka_unit_test(test_rate_limit_buckets),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
