/* app_haproxy_test.c - two real mxnode processes behind a real haproxy
 * (TCP mode, health check on readiness), as operators run them: requests
 * through the balancer reach both nodes; draining one node (mxctl drain)
 * makes its readiness 503 and haproxy takes it out, with no failed request;
 * SIGTERM then stops it with exit 0 while the other keeps serving. */
#include <curl/curl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "../stub/stub_harness.h"
#include "mx_testutil.h"
#include "haproxyd.h"
#include "node_harness.h"

static struct stub g_stub;
static struct node g_a, g_b;
static pid_t g_haproxy;
static int g_lb_port;
static char g_dir[256];

static int setup(void **st)
{
    if (access("/usr/sbin/haproxy", X_OK) != 0) {
        fprintf(stderr, "haproxy not installed (apt-get install haproxy)\n");
        return -1;
    }
    if (stub_start(&g_stub, NULL) != 0)
        return -1;
    static char base[160];
    snprintf(base, sizeof base, "MX_NEXON_BASE_URL=%s", g_stub.base);
    const char *env_a[] = {base, "MX_NODE_NAME=a", NULL};
    const char *env_b[] = {base, "MX_NODE_NAME=b", NULL};
    if (node_start(&g_a, env_a) != 0 || node_start(&g_b, env_b) != 0)
        return -1;
    if (mx_proc_tmpdir(NULL, "haproxy", g_dir, sizeof g_dir) != 0)
        return -1;
    g_lb_port = haproxyd_free_port();
    char cfg[4096];
    snprintf(cfg, sizeof cfg,
             "global\n  maxconn 1000\ndefaults\n  mode tcp\n  timeout connect 1s\n"
             "  timeout client 10s\n  timeout server 10s\n  retries 3\n  option redispatch\n"
             "frontend api\n  bind 127.0.0.1:%d\n  default_backend mx\n"
             "backend mx\n  balance roundrobin\n  option httpchk GET /actuator/health/readiness\n"
             "  http-check expect status 200\n  default-server inter 100ms fall 2 rise 2\n"
             "  server a 127.0.0.1:%d check\n  server b 127.0.0.1:%d check\n",
             g_lb_port, g_a.http_port, g_b.http_port);
    g_haproxy = haproxyd_start(g_dir, cfg);
    if (g_haproxy < 0)
        return -1;
    /* both servers up in haproxy: requests through it succeed */
    struct http_res r;
    for (int i = 0; i < 100; i++) {
        if (node_http(g_lb_port, "GET", "/actuator/health/liveness", NULL, NULL, &r) == 200) {
            http_res_free(&r);
            usleep(300000); /* rise 2 x 100 ms */
            return 0;
        }
        http_res_free(&r);
        usleep(50000);
    }
    return -1;
}

static int teardown(void **st)
{
    haproxyd_stop(&g_haproxy);
    node_kill(&g_a);
    node_kill(&g_b);
    stub_stop(&g_stub);
    mx_proc_rmdir(g_dir);
    return 0;
}

/* requests through the balancer; returns how many answered 200 */
static int burst(int n, const char *path)
{
    int ok = 0;
    for (int i = 0; i < n; i++) {
        struct http_res r;
        if (node_http(g_lb_port, "GET", path, NULL, NULL, &r) == 200)
            ok++;
        http_res_free(&r);
    }
    return ok;
}

static long long requests_of(struct node *n)
{
    struct http_res r;
    long long v = -1;
    if (node_http(n->http_port, "GET", "/actuator/prometheus", NULL, NULL, &r) == 200)
        v = prom_sum(r.body, "mx_http_requests_total"); /* over the acceptors */
    http_res_free(&r);
    return v;
}

static void test_balanced_then_drained(void **st)
{
    long long a0 = requests_of(&g_a), b0 = requests_of(&g_b);
    assert_int_equal(burst(40, "/api/v1/characters/balanced"), 40);
    long long a1 = requests_of(&g_a), b1 = requests_of(&g_b);
    /* both nodes served some (health checks also count; the burst dominates) */
    TU_ASSERT_CMP(a1 - a0, >=, 10);
    TU_ASSERT_CMP(b1 - b0, >=, 10);

    /* drain a through its admin endpoint, as an operator would */
    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s/mxctl --node tcp://127.0.0.1:%d drain a >/dev/null",
             getenv("MX_BIN_DIR"), g_a.admin_port);
    assert_int_equal(system(cmd), 0);
    /* readiness turns 503 / the listener closes: haproxy takes a out
     * (fall 2 x 100 ms); meanwhile every request still succeeds */
    int64_t until = tu_now_ms() + 1500;
    int ok = 0, total = 0;
    while (tu_now_ms() < until) {
        ok += burst(1, "/actuator/health/liveness");
        total++;
    }
    assert_int_equal(ok, total);
    long long a2 = requests_of(&g_a);
    (void)a2; /* a's listener is closed: its counter cannot be read over HTTP */
    long long b2 = requests_of(&g_b);
    assert_int_equal(burst(30, "/api/v1/characters/balanced"), 30);
    TU_ASSERT_CMP(requests_of(&g_b) - b2, >=, 30);

    /* SIGTERM a: exit 0; b keeps serving */
    assert_int_equal(node_signal_wait(&g_a, SIGTERM, 15000), 0);
    assert_int_equal(burst(20, "/api/v1/characters/balanced"), 20);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_balanced_then_drained),
    };
    int rc = cmocka_run_group_tests(tests, setup, teardown);
    curl_global_cleanup();
    return rc;
}
