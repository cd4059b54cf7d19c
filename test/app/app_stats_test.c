/* app_stats_test.c - `mxctl --cluster URL stats` merges the members'
 * counters: three real mxnode processes in one cluster on a real
 * redis-server, a known number of HTTP requests on each, then
 * stats_merge_check.py compares the merged answer with every member's own
 * `mxctl --node` answer (sums of counters, gauges kept per member, the
 * request total the test made); after a SIGKILL, the dead member (still in
 * the registry until its TTL) is reported missing with the reason while
 * the others are still merged, and mxctl exits 1. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "../redis/redisd.h"
#include "mx_testutil.h"
#include "node_harness.h"

#define NODES 3

static struct redisd g_redis;
static struct node g_n[NODES];
static const char *const g_names[NODES] = {"stats-a", "stats-b", "stats-c"};
static const int g_requests[NODES] = {3, 5, 7};

static int setup(void **st)
{
    if (redisd_start(&g_redis, NULL) != 0)
        return -1;
    static char redis[700], name[NODES][64];
    snprintf(redis, sizeof redis, "MX_REDIS_URL=%s", g_redis.url);
    for (int i = 0; i < NODES; i++) {
        snprintf(name[i], sizeof name[i], "MX_NODE_NAME=%s", g_names[i]);
        /* the TTL outlives the test: a killed member stays listed */
        const char *env[] = {redis,
                             name[i],
                             "MX_RATE_LIMIT=0",
                             "MX_LOG_LEVEL=info",
                             "MX_MEMBER_REFRESH_MS=200",
                             "MX_MEMBER_TTL_MS=60000",
                             NULL};
        if (node_start(&g_n[i], env) != 0)
            return -1;
    }
    return 0;
}

static int teardown(void **st)
{
    for (int i = 0; i < NODES; i++)
        node_kill(&g_n[i]);
    redisd_stop(&g_redis);
    return 0;
}

/* every node has seen the other two */
static bool all_peers(void)
{
    static char log[1 << 20];
    for (int i = 0; i < NODES; i++) {
        node_log(&g_n[i], log, sizeof log);
        for (int j = 0; j < NODES; j++) {
            char want[96];
            snprintf(want, sizeof want, "cluster: peer %s ", g_names[j]);
            if (j != i && !strstr(log, want))
                return false;
        }
    }
    return true;
}

static int check(const char *dead)
{
    char cmd[4096];
    int n = snprintf(cmd, sizeof cmd, "python3 %s/stats_merge_check.py %s/mxctl '%s' %d",
                     MX_TEST_SRC_DIR, getenv("MX_BIN_DIR"), g_redis.url,
                     g_requests[0] + g_requests[1] + (dead ? 0 : g_requests[2]));
    for (int i = 0; i < NODES; i++)
        n += snprintf(cmd + n, sizeof cmd - (size_t)n, " %s=tcp://127.0.0.1:%d", g_names[i],
                      g_n[i].admin_port);
    if (dead)
        snprintf(cmd + n, sizeof cmd - (size_t)n, " --dead %s", dead);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static void test_merged_equals_members_sum(void **st)
{
    assert_true(TU_WAIT_UNTIL(all_peers(), 15000));
    for (int i = 0; i < NODES; i++)
        for (int k = 0; k < g_requests[i]; k++) {
            struct http_res r;
            assert_int_equal(node_http(g_n[i].http_port, "GET", "/actuator/info", NULL, NULL, &r),
                             200);
            http_res_free(&r);
        }
    assert_int_equal(check(NULL), 0);
}

static void test_dead_member_reported(void **st)
{
    node_kill(&g_n[2]);
    assert_int_equal(check(g_names[2]), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_merged_equals_members_sum),
        cmocka_unit_test(test_dead_member_reported),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
