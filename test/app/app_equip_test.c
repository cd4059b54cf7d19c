/* app_equip_test.c - the v2/v3 equipment routes read the cache's tiers
 * across nodes: two real mxnode processes sharing a real redis-server and
 * a real mariadbd, with a real mxstub as the Nexon API, whose per-path
 * counters say how often upstream was asked.
 * - concurrent cold requests on both nodes: one upstream equipment call
 *   in all (one node loads under the latch, the other reads L2);
 * - with L2 emptied, the other node answers from L3 (MySQL's gzip copy),
 *   byte for byte the upstream's JSON, without asking upstream;
 * - a node without L2/L3 whose L1 copy expired answers it, marked stale,
 *   while upstream fails. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "../mysql/mysqld.h"
#include "../redis/redisd.h"
#include "../stub/stub_harness.h"
#include "mx_testutil.h"
#include "node_harness.h"

static struct stub g_stub;
static struct redisd g_redis;
static struct mysqld g_my;
static struct node g_a, g_b;

#define EQ_PATH "/maplestory/v1/character/item-equipment"

static int setup(void **st)
{
    if (stub_start(&g_stub, NULL) != 0 || redisd_start(&g_redis, NULL) != 0 ||
        mysqld_start(&g_my) != 0)
        return -1;
    static char base[160], redis[700], mysql[200];
    snprintf(base, sizeof base, "MX_NEXON_BASE_URL=%s", g_stub.base);
    snprintf(redis, sizeof redis, "MX_REDIS_URL=%s", g_redis.url);
    snprintf(mysql, sizeof mysql, "MX_MYSQL_URL=%s", g_my.url);
    const char *env[] = {base, redis, mysql, "MX_RATE_LIMIT=0", NULL};
    return node_start(&g_a, env) == 0 && node_start(&g_b, env) == 0 ? 0 : -1;
}

static int teardown(void **st)
{
    node_kill(&g_a);
    node_kill(&g_b);
    mysqld_destroy(&g_my);
    redisd_stop(&g_redis);
    stub_stop(&g_stub);
    return 0;
}

static long long eq_calls(void)
{
    long long v = stub_stat(&g_stub, EQ_PATH);
    TU_ASSERT_CMP(v, >=, 0);
    return v;
}

/* what the upstream sends for name, read straight from the stub (one call) */
static void upstream_equipment(const char *name, char *ocid, struct resp *up)
{
    char url[512];
    assert_int_equal(stub_ocid(&g_stub, name, ocid), 200);
    snprintf(url, sizeof url, "%s" EQ_PATH "?ocid=%s", g_stub.base, ocid);
    assert_int_equal(http_get(url, "k", false, up), 0);
    assert_int_equal(up->status, 200);
    TU_ASSERT_CMP(up->len, >, 1000);
}

struct req {
    struct node *n;
    const char *path;
    int status;
    struct http_res r;
};

static void *one(void *p)
{
    struct req *q = p;
    q->status = node_http(q->n->http_port, "GET", q->path, NULL, NULL, &q->r);
    return NULL;
}

static void test_one_load_across_nodes(void **st)
{
    char ocid[40];
    struct resp up;
    upstream_equipment("tier-one", ocid, &up);
    long long eq0 = eq_calls();
    enum { N = 6 };
    pthread_t t[N];
    struct req q[N];
    memset(q, 0, sizeof q);
    for (int i = 0; i < N; i++) {
        q[i].n = i % 2 ? &g_b : &g_a;
        q[i].path = i % 3 ? "/api/v2/characters/tier-one/equipment"
                          : "/api/v3/characters/tier-one/equipment";
        pthread_create(&t[i], NULL, one, &q[i]);
    }
    for (int i = 0; i < N; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < N; i++) {
        assert_int_equal(q[i].status, 200);
        assert_int_equal(q[i].r.body_len, up.len);
        assert_memory_equal(q[i].r.body, up.body, up.len);
        http_res_free(&q[i].r);
    }
    assert_int_equal(eq_calls(), eq0 + 1);
    resp_free(&up);
}

static void test_l3_after_l2_is_gone(void **st)
{
    char ocid[40], sql[200];
    struct resp up;
    upstream_equipment("tier-two", ocid, &up);
    long long eq0 = eq_calls();
    struct http_res r;
    assert_int_equal(
        node_http(g_a.http_port, "GET", "/api/v2/characters/tier-two/equipment", NULL, NULL, &r),
        200);
    http_res_free(&r);
    assert_int_equal(eq_calls(), eq0 + 1);
    /* the L3 write is asynchronous (the MySQL pool): wait for the row */
    snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM mx.character_equipment WHERE ocid = '%s'",
             ocid);
    long long rows = 0;
    for (int i = 0; i < 500 && rows != 1; i++) {
        rows = mysqld_root_int(&g_my, sql);
        if (rows != 1)
            usleep(20000);
    }
    assert_int_equal(rows, 1);
    /* no L2 any more, and node b never held it in L1: only L3 has it */
    assert_true(redisd_ok(&g_redis, "FLUSHALL"));
    assert_int_equal(
        node_http(g_b.http_port, "GET", "/api/v2/characters/tier-two/equipment", NULL, NULL, &r),
        200);
    assert_int_equal(r.body_len, up.len);
    assert_memory_equal(r.body, up.body, up.len);
    http_res_free(&r);
    assert_int_equal(eq_calls(), eq0 + 1);
    resp_free(&up);
}

static double mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void test_stale_while_upstream_fails(void **st)
{
    /* node c: L1 only (no Redis, no MySQL), equipment fresh for 1 s */
    static char base[160];
    snprintf(base, sizeof base, "MX_NEXON_BASE_URL=%s", g_stub.base);
    const char *env[] = {base, "MX_RATE_LIMIT=0", "MX_TTL_EQUIPMENT_L1_S=1",
                         "MX_FETCH_TIMEOUT_MS=2000", NULL};
    struct node c;
    assert_int_equal(node_start(&c, env), 0);
    char ocid[40];
    struct resp up;
    upstream_equipment("tier-three", ocid, &up);
    struct http_res r;
    double t0 = mono_ms();
    assert_int_equal(
        node_http(c.http_port, "GET", "/api/v3/characters/tier-three/equipment", NULL, NULL, &r),
        200);
    char warn[128] = "";
    http_header(&r, "Warning", warn, sizeof warn);
    assert_string_equal(warn, "");
    http_res_free(&r);
    assert_int_equal(stub_post(&g_stub, "/__stub/config?fail_rate=1&fail_status=503"), 200);
    /* the TTL is a deadline: wait for it to pass, then ask once */
    double until = t0 + 1300;
    while (mono_ms() < until)
        usleep((useconds_t)((until - mono_ms()) * 1000) + 1);
    assert_int_equal(
        node_http(c.http_port, "GET", "/api/v2/characters/tier-three/equipment", NULL, NULL, &r),
        200);
    http_header(&r, "Warning", warn, sizeof warn);
    assert_non_null(strstr(warn, "110"));
    assert_int_equal(r.body_len, up.len);
    assert_memory_equal(r.body, up.body, up.len);
    http_res_free(&r);
    /* a character never loaded has nothing to fall back on */
    assert_int_equal(
        node_http(c.http_port, "GET", "/api/v2/characters/tier-four/equipment", NULL, NULL, &r),
        503);
    assert_non_null(strstr(r.body, "\"code\":\"S005\""));
    http_res_free(&r);
    assert_int_equal(stub_post(&g_stub, "/__stub/config?fail_rate=0"), 200);
    node_kill(&c);
    resp_free(&up);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_load_across_nodes),
        cmocka_unit_test(test_l3_after_l2_is_gone),
        cmocka_unit_test(test_stale_while_upstream_fails),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
