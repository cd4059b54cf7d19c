/* app_sec_test.c - the HTTP API's edges and auth holes of issue 12, on a
 * real mxnode (trusting 127.0.0.1, i.e. this test, as its proxy) with a
 * real redis-server and mxstub:
 * - X-Forwarded-For: the proxy's appended line wins over a client's line,
 *   and a 1,100-byte client entry cannot push the real address out;
 * - MX_TRUSTED_PROXIES=0.0.0.0/0 or ::/0: the node refuses to start,
 *   naming the setting;
 * - the metrics allowlist judges the forwarded client, and
 *   MX_METRICS_TOKEN requires the bearer token instead;
 * - a demoted admin loses the admin routes, refresh says USER, and after
 *   logout the old ADMIN token is rate limited;
 * - NUL and control characters in JSON strings: 400;
 * - sessions per account are capped (the oldest is revoked);
 * - recalculations are coalesced across two nodes (one upstream load for
 *   ten concurrent asks) and cost a client ten tokens each. */
#include <curl/curl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdbool.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "../redis/redisd.h"
#include "../stub/stub_harness.h"
#include "mx_testutil.h"
#include "node_harness.h"

static struct stub g_stub;
static struct redisd g_redis;
static struct node g_n, g_m; /* both trust 127.0.0.1 (this test) as their proxy */
static char g_base[160], g_redis_env[700];
static char g_key[] = "user-key-1";
static char g_ign[128];

static int setup(void **st)
{
    if (stub_start(&g_stub, NULL) != 0 || redisd_start(&g_redis, NULL) != 0)
        return -1;
    snprintf(g_base, sizeof g_base, "MX_NEXON_BASE_URL=%s", g_stub.base);
    snprintf(g_redis_env, sizeof g_redis_env, "MX_REDIS_URL=%s", g_redis.url);
    const char *env[] = {g_base, g_redis_env, "MX_TRUSTED_PROXIES=127.0.0.1/32", NULL};
    if (node_start(&g_n, env) != 0 || node_start(&g_m, env) != 0)
        return -1;
    return stub_first_character(&g_stub, g_key, g_ign, sizeof g_ign);
}

static int teardown(void **st)
{
    node_kill(&g_n);
    node_kill(&g_m);
    redisd_stop(&g_redis);
    stub_stop(&g_stub);
    return 0;
}

static long long redis_int(const char *fmt, const char *arg)
{
    redisReply *rep = redisd_cmd(&g_redis, fmt, arg);
    assert_non_null(rep);
    long long v = rep->integer;
    freeReplyObject(rep);
    return v;
}

/* one rate-limited request with extra header lines; returns the status */
static int limited_get(const char *extra)
{
    struct http_res r;
    int s = node_http(g_n.http_port, "GET", "/api/v2/characters/x/like/status", extra, NULL, &r);
    http_res_free(&r);
    return s;
}

static void test_xff_every_line_right_to_left(void **st)
{
    /* haproxy's option forwardfor adds its own line after the client's */
    assert_true(redisd_ok(&g_redis, "DEL {rl}:ip:1.1.1.1 {rl}:ip:10.20.30.40"));
    assert_int_not_equal(limited_get("X-Forwarded-For: 1.1.1.1\r\n"
                                     "X-Forwarded-For: 10.20.30.40\r\n"),
                         429);
    assert_int_equal(redis_int("EXISTS %s", "{rl}:ip:10.20.30.40"), 1);
    assert_int_equal(redis_int("EXISTS %s", "{rl}:ip:1.1.1.1"), 0);
    /* an appending proxy put the real address after 1,100 bytes the client
     * chose: the list is not cut before the right-most entry is taken */
    char hdr[1400];
    snprintf(hdr, sizeof hdr, "X-Forwarded-For: 198.51.100.7%1100s, 10.20.30.41\r\n", "");
    assert_true(redisd_ok(&g_redis, "DEL {rl}:ip:198.51.100.7 {rl}:ip:10.20.30.41"));
    assert_int_not_equal(limited_get(hdr), 429);
    assert_int_equal(redis_int("EXISTS %s", "{rl}:ip:10.20.30.41"), 1);
    assert_int_equal(redis_int("EXISTS %s", "{rl}:ip:198.51.100.7"), 0);
    /* trusted hops on the right are skipped; the first untrusted one counts */
    assert_true(redisd_ok(&g_redis, "DEL {rl}:ip:10.20.30.42"));
    assert_int_not_equal(limited_get("X-Forwarded-For: 6.6.6.6, 10.20.30.42, 127.0.0.1\r\n"), 429);
    assert_int_equal(redis_int("EXISTS %s", "{rl}:ip:10.20.30.42"), 1);
    /* IPv6 clients share one bucket per /64 */
    assert_true(redisd_ok(&g_redis, "DEL {rl}:ip:2001:db8:1:2::/64"));
    assert_int_not_equal(limited_get("X-Forwarded-For: 2001:db8:1:2::99\r\n"), 429);
    assert_int_not_equal(limited_get("X-Forwarded-For: 2001:db8:1:2:ffff::1\r\n"), 429);
    assert_int_equal(redis_int("EXISTS %s", "{rl}:ip:2001:db8:1:2::/64"), 1);
}

/* Run mxnode with one extra setting until it exits (at most 10 s);
 * returns its exit status (-1: still running, killed) and its stderr. */
static int run_until_exit(const char *setting, char *log, size_t cap)
{
    char cube[600], path[512];
    snprintf(cube, sizeof cube, "MX_CUBE_TABLE=%s/data/cube_probability_black.csv",
             mx_proc_shared_dir());
    const char *env[] = {"MX_HTTP_ADDR=127.0.0.1:0",
                         "MX_NNG_ADDR=tcp://127.0.0.1:0",
                         "MX_ADMIN_ADDR=tcp://127.0.0.1:0",
                         "MX_JWT_SECRET=" NODE_TEST_SECRET,
                         "MX_REDIS_URL=redis://127.0.0.1:1/0",
                         "MX_NEXON_API_KEY=test-key",
                         cube,
                         setting,
                         NULL};
    const char *argv[] = {"mxnode", NULL};
    struct mx_proc_opts o = {.path = mx_proc_bin("mxnode", path, sizeof path),
                             .argv = argv,
                             .env = env,
                             .err = MX_PROC_CAPTURE};
    struct mx_proc p;
    assert_int_equal(mx_proc_start(&p, &o), 0);
    int status = mx_proc_wait(&p, 12000);
    mx_proc_log(&p, log, cap);
    mx_proc_release(&p); /* kills it if it still runs */
    return status;
}

static void test_trust_everyone_refused(void **st)
{
    static const char *const bad[] = {"MX_TRUSTED_PROXIES=0.0.0.0/0", "MX_TRUSTED_PROXIES=::/0",
                                      "MX_TRUSTED_PROXIES=10.0.0.1/32,::ffff:0:0/96"};
    for (int i = 0; i < 3; i++) {
        char log[16384];
        assert_int_equal(run_until_exit(bad[i], log, sizeof log), 2);
        assert_non_null(strstr(log, "MX_TRUSTED_PROXIES"));
        assert_non_null(strstr(log, "covers every address"));
    }
}

static void test_metrics_behind_proxy(void **st)
{
    struct http_res r;
    /* the peer (127.0.0.1) is the proxy; the client is public: refused */
    assert_int_equal(node_http(g_n.http_port, "GET", "/actuator/prometheus",
                               "X-Forwarded-For: 203.0.113.9\r\n", NULL, &r),
                     403);
    assert_non_null(strstr(r.body, "FORBIDDEN"));
    http_res_free(&r);
    assert_int_equal(node_http(g_n.http_port, "GET", "/actuator/prometheus",
                               "X-Forwarded-For: 10.1.1.1\r\n", NULL, &r),
                     200);
    assert_non_null(strstr(r.body, "mx_http_limit_hits_total"));
    http_res_free(&r);
    /* with MX_METRICS_TOKEN even a loopback client needs the token */
    struct node t = {0};
    const char *env[] = {g_base, "MX_METRICS_TOKEN=metrics-token-0123456789", NULL};
    assert_int_equal(node_start(&t, env), 0);
    assert_int_equal(node_http(t.http_port, "GET", "/actuator/prometheus", NULL, NULL, &r), 401);
    http_res_free(&r);
    assert_int_equal(node_http(t.http_port, "GET", "/actuator/prometheus",
                               "Authorization: Bearer metrics-token-0123456788\r\n", NULL, &r),
                     401);
    http_res_free(&r);
    assert_int_equal(node_http(t.http_port, "GET", "/actuator/prometheus",
                               "Authorization: Bearer metrics-token-0123456789\r\n", NULL, &r),
                     200);
    http_res_free(&r);
    node_kill(&t);
}

struct tokens {
    char access[1024], refresh[128], role[16], fgp[64];
};

static int login(const char *body, struct tokens *t)
{
    struct http_res r;
    int s = node_http(g_n.http_port, "POST", "/auth/login", NULL, body, &r);
    if (t && s == 200) {
        assert_int_equal(json_str(r.body, "accessToken", t->access, sizeof t->access), 0);
        assert_int_equal(json_str(r.body, "refreshToken", t->refresh, sizeof t->refresh), 0);
        assert_int_equal(json_str(r.body, "role", t->role, sizeof t->role), 0);
        assert_int_equal(json_str(r.body, "fingerprint", t->fgp, sizeof t->fgp), 0);
    }
    http_res_free(&r);
    return s;
}

static int login_user(struct tokens *t)
{
    char body[512];
    snprintf(body, sizeof body, "{\"apiKey\":\"%s\",\"userIgn\":\"%s\"}", g_key, g_ign);
    return login(body, t);
}

static int bearer(const char *method, const char *path, const char *tok, const char *xff,
                  const char *body, struct http_res *out)
{
    char hdr[1400];
    snprintf(hdr, sizeof hdr, "Authorization: Bearer %s\r\n%s%s%s", tok,
             xff ? "X-Forwarded-For: " : "", xff ? xff : "", xff ? "\r\n" : "");
    struct http_res r;
    int s = node_http(g_n.http_port, method, path, hdr, body, &r);
    if (out)
        *out = r;
    else
        http_res_free(&r);
    return s;
}

static void test_admin_demotion(void **st)
{
    struct tokens u, adm;
    assert_int_equal(login_user(&u), 200);
    assert_true(redisd_ok(&g_redis, "SADD {auth}:admins %s", u.fgp));
    assert_int_equal(login_user(&adm), 200);
    assert_string_equal(adm.role, "ADMIN");
    assert_int_equal(bearer("GET", "/api/admin/admins", adm.access, NULL, NULL, NULL), 200);
    /* another admin removes this one */
    assert_true(redisd_ok(&g_redis, "SREM {auth}:admins %s", u.fgp));
    struct http_res r;
    assert_int_equal(bearer("GET", "/api/admin/admins", adm.access, NULL, NULL, &r), 403);
    assert_non_null(strstr(r.body, "FORBIDDEN"));
    http_res_free(&r);
    /* refresh re-reads the role */
    char body[256], role[16];
    snprintf(body, sizeof body, "{\"refreshToken\":\"%s\"}", adm.refresh);
    assert_int_equal(node_http(g_n.http_port, "POST", "/auth/refresh", NULL, body, &r), 200);
    assert_int_equal(json_str(r.body, "role", role, sizeof role), 0);
    assert_string_equal(role, "USER");
    http_res_free(&r);
    /* logout; the old access token still says ADMIN but is not exempt */
    assert_int_equal(bearer("DELETE", "/auth/logout", adm.access, NULL, NULL, NULL), 200);
    assert_true(redisd_ok(&g_redis, "DEL {rl}:ip:10.66.0.1 {rl}:user:%s", u.fgp));
    int s = 0;
    for (int i = 0; i < 130 && s != 429; i++)
        s = bearer("GET", "/api/v2/characters/x/like/status", adm.access, "10.66.0.1", NULL, NULL);
    assert_int_equal(s, 429);
}

static void test_control_chars_in_json(void **st)
{
    char body[512];
    /* one real key would otherwise give endless fingerprints (the key is
     * cut at the NUL upstream, the fingerprint is not) */
    snprintf(body, sizeof body, "{\"apiKey\":\"%s\\u0000x\",\"userIgn\":\"%s\"}", g_key, g_ign);
    assert_int_equal(login(body, NULL), 400);
    snprintf(body, sizeof body, "{\"apiKey\":\"%s\",\"userIgn\":\"\\u0000%s\"}", g_key, g_ign);
    assert_int_equal(login(body, NULL), 400);
    snprintf(body, sizeof body, "{\"apiKey\":\"%s\",\"userIgn\":\"%s\\u001b\"}", g_key, g_ign);
    assert_int_equal(login(body, NULL), 400);
    /* the same body without them signs in */
    assert_int_equal(login_user(NULL), 200);
}

static void test_session_cap(void **st)
{
    struct tokens first, t;
    assert_int_equal(login_user(&first), 200);
    assert_int_equal(bearer("GET", "/auth/me", first.access, NULL, NULL, NULL), 200);
    for (int i = 0; i < 10; i++)
        assert_int_equal(login_user(&t), 200);
    /* eleven live sessions would be one over the cap: the oldest went */
    assert_int_equal(bearer("GET", "/auth/me", first.access, NULL, NULL, NULL), 401);
    assert_int_equal(bearer("GET", "/auth/me", t.access, NULL, NULL, NULL), 200);
    char key[128];
    snprintf(key, sizeof key, "{auth}:fsess:%s", t.fgp);
    assert_int_equal(redis_int("ZCARD %s", key), 10);
}

#define EVAN_URL "%EC%97%90%EB%B0%98" /* 에반, a character of the stub */

struct recalc_arg {
    int port, status;
    char xff[64];
};

static void *recalc_one(void *p)
{
    struct recalc_arg *ra = p;
    char hdr[96];
    snprintf(hdr, sizeof hdr, "X-Forwarded-For: %s\r\n", ra->xff);
    struct http_res r;
    ra->status = node_http(
        ra->port, "POST", "/api/v4/characters/" EVAN_URL "/expectation/recalculate", hdr, NULL, &r);
    http_res_free(&r);
    return NULL;
}

static void test_recalc_coalesced_and_limited(void **st)
{
    struct http_res r;
    assert_int_equal(node_http(g_n.http_port, "GET", "/api/v4/characters/" EVAN_URL "/expectation",
                               "X-Forwarded-For: 10.90.0.1\r\n", NULL, &r),
                     200);
    http_res_free(&r);
    long long eq0 = stub_stat(&g_stub, "/maplestory/v1/character/item-equipment");
    TU_ASSERT_CMP(eq0, >=, 1);
    /* ten clients ask both nodes at once: one recalculation */
    enum { N = 10 };
    pthread_t th[N];
    struct recalc_arg ra[N];
    for (int i = 0; i < N; i++) {
        ra[i] = (struct recalc_arg){.port = i % 2 ? g_m.http_port : g_n.http_port};
        snprintf(ra[i].xff, sizeof ra[i].xff, "10.91.0.%d", i + 1);
        pthread_create(&th[i], NULL, recalc_one, &ra[i]);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(ra[i].status, 200);
    }
    assert_int_equal(stub_stat(&g_stub, "/maplestory/v1/character/item-equipment"), eq0 + 1);
    /* the invalidation was acked by each node once, weighted by its shards:
     * the recalculating node counted every receiver, no ack deadline hit */
    struct node *nodes[] = {&g_n, &g_m};
    for (int i = 0; i < 2; i++) {
        assert_int_equal(
            node_http(nodes[i]->http_port, "GET", "/actuator/prometheus", NULL, NULL, &r), 200);
        assert_non_null(strstr(r.body, "event=\"invalidation_ack_timeout\"} 0\n"));
        http_res_free(&r);
    }
    /* one client: ten tokens a recalculation, so the 11th of a burst is 429 */
    assert_true(redisd_ok(&g_redis, "DEL {rl}:ip:10.92.0.1"));
    int ok = 0, s = 0;
    for (int i = 0; i < 12 && s != 429; i++) {
        s = node_http(g_n.http_port, "GET",
                      "/api/v4/characters/" EVAN_URL "/expectation?force=true",
                      "X-Forwarded-For: 10.92.0.1\r\n", NULL, &r);
        http_res_free(&r);
        ok += s == 200;
    }
    assert_int_equal(s, 429);
    assert_int_equal(ok, 10);
}

struct get_arg {
    int port, status;
    const char *method, *path;
};

static void *get_one(void *p)
{
    struct get_arg *ga = p;
    struct http_res r;
    ga->status =
        node_http(ga->port, ga->method, ga->path, "X-Forwarded-For: 10.93.0.1\r\n", NULL, &r);
    http_res_free(&r);
    return NULL;
}

/* A recalculation does not join a plain load already under way on its
 * shard (that load may serve what it had before): with upstream slow, a
 * GET of a new character is loading when the recalculation comes; both
 * answer, and equipment was fetched twice. */
static void test_recalc_not_joined_to_plain_load(void **st)
{
    char url[256];
    struct resp cr;
    snprintf(url, sizeof url, "%s/__stub/config?latency_ms=600", g_stub.base);
    assert_int_equal(http_post(url, &cr), 0);
    resp_free(&cr);
    long long eq0 = stub_stat(&g_stub, "/maplestory/v1/character/item-equipment");
    struct get_arg plain = {g_n.http_port, 0, "GET", "/api/v4/characters/slowpoke7/expectation"};
    struct get_arg force = {g_n.http_port, 0, "POST",
                            "/api/v4/characters/slowpoke7/expectation/recalculate"};
    pthread_t t1, t2;
    pthread_create(&t1, NULL, get_one, &plain);
    /* the plain load holds the document's latch once it starts: wait for it
     * on one Redis connection */
    redisContext *rc = redisConnect("127.0.0.1", g_redis.port);
    assert_non_null(rc);
    assert_int_equal(rc->err, 0);
    long long held = 0;
    int64_t dl = tu_now_ms() + 5000;
    while (!held && tu_now_ms() < dl) {
        redisReply *rep = redisCommand(rc, "EXISTS mx:mx:{exp:slowpoke7}:d:0:111:L");
        held = rep && rep->type == REDIS_REPLY_INTEGER ? rep->integer : 0;
        if (rep)
            freeReplyObject(rep);
        if (!held)
            usleep(5000);
    }
    redisFree(rc);
    assert_true(held);
    pthread_create(&t2, NULL, get_one, &force);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    snprintf(url, sizeof url, "%s/__stub/config?latency_ms=0", g_stub.base);
    assert_int_equal(http_post(url, &cr), 0);
    resp_free(&cr);
    assert_int_equal(plain.status, 200);
    assert_int_equal(force.status, 200);
    assert_int_equal(stub_stat(&g_stub, "/maplestory/v1/character/item-equipment"), eq0 + 2);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_xff_every_line_right_to_left),
        cmocka_unit_test(test_trust_everyone_refused),
        cmocka_unit_test(test_metrics_behind_proxy),
        cmocka_unit_test(test_admin_demotion),
        cmocka_unit_test(test_control_chars_in_json),
        cmocka_unit_test(test_session_cap),
        cmocka_unit_test(test_recalc_coalesced_and_limited),
        cmocka_unit_test(test_recalc_not_joined_to_plain_load),
    };
    int rc = cmocka_run_group_tests(tests, setup, teardown);
    curl_global_cleanup();
    return rc;
}
