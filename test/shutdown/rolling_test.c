/* rolling_test.c - a rolling restart under load (issue 16, test 1): three
 * mxnode behind a real haproxy (TCP mode, PROXY protocol v2, readiness
 * checks every 100 ms), a real redis-server (AOF), mariadbd and mxstub.
 * Four keep-alive clients send like toggles of signed-in users and
 * character reads through haproxy while each node in turn gets SIGTERM
 * (exit 0 expected) and is started again; the next node goes once haproxy
 * sends traffic to the restarted one. Then: 0 failed requests and 0
 * connection errors, and once like-sync settled every acknowledged like is
 * in MySQL (character_like rows and like_count equal the model of
 * acknowledged toggles). */
#define _GNU_SOURCE
#include <curl/curl.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "../app/haproxyd.h"
#include "../app/node_harness.h"
#include "../mysql/mysqld.h"
#include "../redis/redisd.h"
#include "../stub/stub_harness.h"
#include "../likes/like_client.h"
#include "mx_mysql.h"
#include "mx_testutil.h"

#define NNODES 3
#define NUSERS 24
#define NTARGETS 12
#define NTHREADS 4
#define GRACE_MS 1000

static struct redisd R;
static struct mysqld M;
static struct stub S;
static struct node N[NNODES];
static int g_port[NNODES], g_lb;
static pid_t g_haproxy;
static char g_dir[256];
static char g_env[NNODES][9][700];

static struct lc_user U[NUSERS];
static char T_name[NTARGETS][72], T_ocid[NTARGETS][40];

/* ---- the stack ---- */

static int node_up(int i)
{
    const char *env[10];
    for (int k = 0; k < 9; k++)
        env[k] = g_env[i][k];
    env[9] = NULL;
    return node_start(&N[i], env);
}

static long long node_requests(int i)
{
    static char out[65536];
    mx_proc_run(out, sizeof out, 30000,
                "%s/mxctl --node tcp://127.0.0.1:%d --json stats 2>/dev/null", getenv("MX_BIN_DIR"),
                N[i].admin_port);
    const char *v = strstr(out, "\"proxy_ok\":"); /* connections haproxy made to it */
    return v ? atoll(v + 11) : -1;
}

static int setup(void **st)
{
    curl_global_init(CURL_GLOBAL_ALL);
    if (mx_proc_tmpdir(NULL, "rolling", g_dir, sizeof g_dir) != 0)
        return -1;
    char conf[300];
    snprintf(conf, sizeof conf, "appendonly yes\nappendfsync everysec\n");
    if (redisd_start(&R, conf) != 0 || mysqld_start(&M) != 0)
        return -1;
    const char *args[] = {"--unknown", "404", NULL};
    if (stub_start(&S, args) != 0)
        return -1;
    for (int i = 0; i < NNODES; i++) {
        g_port[i] = haproxyd_free_port();
        snprintf(g_env[i][0], 700, "MX_NODE_NAME=rl%d", i);
        snprintf(g_env[i][1], 700, "MX_HTTP_ADDR=127.0.0.1:%d", g_port[i]);
        snprintf(g_env[i][2], 700, "MX_REDIS_URL=%s", R.url);
        snprintf(g_env[i][3], 700, "MX_MYSQL_URL=%s", M.url);
        snprintf(g_env[i][4], 700, "MX_NEXON_BASE_URL=%s", S.base);
        snprintf(g_env[i][5], 700, "MX_DRAIN_GRACE_MS=%d", GRACE_MS);
        snprintf(g_env[i][6], 700, "MX_TRUSTED_PROXIES=127.0.0.1/32");
        snprintf(g_env[i][7], 700, "MX_RATE_LIMIT=0");
        snprintf(g_env[i][8], 700, "MX_LOG_LEVEL=info");
        if (node_up(i) != 0)
            return -1;
    }
    /* users, and targets mxstub knows (it answers 404 for any other name) */
    if (lc_users(&S, "rolling", U, NUSERS) != 0 ||
        lc_targets(&S, "rolling", U, NUSERS, T_name, T_ocid, NTARGETS) != 0)
        return -1;
    CURL *h = curl_easy_init();
    for (int u = 0; u < NUSERS; u++) {
        char body[256], *ans = NULL;
        snprintf(body, sizeof body, "{\"apiKey\":\"%.31s\",\"userIgn\":\"%.71s\"}", U[u].key,
                 U[u].ign);
        long s = lc_req(h, N[u % NNODES].http_port, "POST", "/auth/login", NULL, body, &ans);
        int ok =
            s == 200 && ans && json_str(ans, "accessToken", U[u].token, sizeof U[u].token) == 0;
        free(ans);
        if (!ok) {
            fprintf(stderr, "login of user %d failed: %ld\n", u, s);
            curl_easy_cleanup(h);
            return -1;
        }
    }
    curl_easy_cleanup(h);

    g_lb = haproxyd_free_port();
    char cfg[4096];
    int len =
        snprintf(cfg, sizeof cfg,
                 "global\n  maxconn 2000\ndefaults\n  mode tcp\n  timeout connect 1s\n"
                 "  timeout client 30s\n  timeout server 30s\n  retries 3\n"
                 "  option redispatch\nfrontend api\n  bind 127.0.0.1:%d\n"
                 "  default_backend mx\nbackend mx\n  balance roundrobin\n"
                 "  option httpchk GET /actuator/health/readiness\n"
                 "  http-check expect status 200\n"
                 "  default-server inter 100ms fall 2 rise 2 send-proxy-v2 check-send-proxy\n",
                 g_lb);
    for (int i = 0; i < NNODES; i++)
        len += snprintf(cfg + len, sizeof cfg - (size_t)len, "  server rl%d 127.0.0.1:%d check\n",
                        i, g_port[i]);
    g_haproxy = haproxyd_start(g_dir, cfg);
    if (g_haproxy < 0)
        return -1;
    for (int i = 0; i < NNODES; i++) {
        long long c0 = node_requests(i);
        if (!TU_WAIT_UNTIL(node_requests(i) > c0 + 2, 5000))
            return -1;
    }
    return 0;
}

static int teardown(void **st)
{
    haproxyd_stop(&g_haproxy);
    for (int i = 0; i < NNODES; i++)
        node_kill(&N[i]);
    stub_stop(&S);
    mysqld_destroy(&M);
    redisd_stop(&R);
    mx_proc_rmdir(g_dir);
    curl_global_cleanup();
    return 0;
}

/* ---- the load ---- */

enum { ST_OFF = 0, ST_ON = 1, ST_UNKNOWN = 2 };
static _Atomic uint8_t model[NUSERS][NTARGETS];

struct load {
    atomic_bool stop;
    atomic_long ok, failed, toggles, reads;
    int id;
};

static void *load_main(void *arg)
{
    struct load *l = arg;
    CURL *h = curl_easy_init();
    unsigned seed = (unsigned)(l->id * 7919 + 1);
    for (long i = 0; !atomic_load(&l->stop); i++) {
        int t = (int)(rand_r(&seed) % NTARGETS);
        char *e = lc_escape(T_name[t]), path[256], *body = NULL;
        long s;
        if (i % 3 == 2) {
            snprintf(path, sizeof path, "/api/v1/characters/%s", e);
            s = lc_req(h, g_lb, "GET", path, NULL, NULL, &body);
            atomic_fetch_add(&l->reads, 1);
            if (s == 200)
                atomic_fetch_add(&l->ok, 1);
        } else {
            /* each thread owns the users u with u % NTHREADS == id, so the
             * model's order per pair is the order of acknowledgements */
            int u = l->id + NTHREADS * (int)(rand_r(&seed) % (NUSERS / NTHREADS));
            snprintf(path, sizeof path, "/api/v2/characters/%s/like", e);
            s = lc_req(h, g_lb, "POST", path, U[u].token, NULL, &body);
            atomic_fetch_add(&l->toggles, 1);
            if (s == 200 && body && strstr(body, "\"success\":true")) {
                atomic_store(&model[u][t], strstr(body, "\"liked\":true") ? ST_ON : ST_OFF);
                atomic_fetch_add(&l->ok, 1);
                s = 200;
            } else {
                atomic_store(&model[u][t], ST_UNKNOWN);
                s = s == 200 ? -2 : s;
            }
        }
        if (s != 200) {
            if (atomic_fetch_add(&l->failed, 1) < 5)
                fprintf(stderr, "rolling: %s -> %ld %.200s\n", path, s, body ? body : "");
        }
        free(body);
        free(e);
    }
    curl_easy_cleanup(h);
    return NULL;
}

/* Pending pairs and open journals (-1: Redis away), on one kept connection
 * (the PING reconnects it when it broke). */
static long long pending_work(void)
{
    static redisContext *c;
    redisReply *r = redisd_kept_cmd(&c, &R, "PING");
    if (!r)
        return -1;
    freeReplyObject(r);
    return lc_pending_work(c);
}

static int row_count(void *ctx, const struct mx_sql_val *cols, size_t n)
{
    return 0;
}

static void test_rolling_restart(void **st)
{
    struct load l[NTHREADS];
    pthread_t th[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) {
        memset(&l[i], 0, sizeof l[i]);
        l[i].id = i;
        pthread_create(&th[i], NULL, load_main, &l[i]);
    }
    /* a baseline, then each node in turn */
    assert_true(TU_WAIT_UNTIL(atomic_load(&l[0].ok) > 50, 10000));
    int64_t drain_ms[NNODES];
    for (int i = 0; i < NNODES; i++) {
        int64_t t0 = tu_now_ms();
        kill(N[i].pid, SIGTERM);
        char *log = malloc(1 << 20);
        int rc = node_wait_exit(&N[i], 20000, log, 1 << 20);
        drain_ms[i] = tu_now_ms() - t0;
        if (rc != 0)
            fprintf(stderr, "rl%d exit %d:\n%s\n", i, rc, log);
        /* the phase lines, for the record */
        for (char *p = log; (p = strstr(p, "shutdown phase ")); p++)
            printf("  rl%d: %.*s\n", i, (int)strcspn(p, "\""), p);
        free(log);
        assert_int_equal(rc, 0);
        assert_int_equal(node_up(i), 0);
        /* haproxy sends it traffic again (rise 2 x 100 ms) */
        long long c0 = node_requests(i);
        assert_true(TU_WAIT_UNTIL(node_requests(i) > c0 + 20, 10000));
    }
    long before = atomic_load(&l[0].ok);
    assert_true(TU_WAIT_UNTIL(atomic_load(&l[0].ok) > before + 30, 10000));
    long ok = 0, failed = 0, toggles = 0, reads = 0;
    for (int i = 0; i < NTHREADS; i++) {
        atomic_store(&l[i].stop, true);
        pthread_join(th[i], NULL);
        ok += atomic_load(&l[i].ok);
        failed += atomic_load(&l[i].failed);
        toggles += atomic_load(&l[i].toggles);
        reads += atomic_load(&l[i].reads);
    }
    printf("{\"bench\": \"rolling_restart\", \"ok\": %ld, \"failed\": %ld, \"toggles\": %ld, "
           "\"reads\": %ld, \"drain_ms\": [%lld, %lld, %lld]}\n",
           ok, failed, toggles, reads, (long long)drain_ms[0], (long long)drain_ms[1],
           (long long)drain_ms[2]);
    assert_int_equal(failed, 0);
    for (int i = 0; i < NNODES; i++)
        TU_ASSERT_CMP(drain_ms[i], <=, GRACE_MS + 1000 + 1000); /* grace + phases + start of exit */

    /* every acknowledged like is in MySQL once like-sync settled */
    assert_true(TU_WAIT_UNTIL(pending_work() == 0, 30000));
    struct mx_mysql_conn *c = NULL;
    char err[256];
    assert_int_equal(mx_mysql_conn_open(M.url, NULL, &c, err, sizeof err), 0);
    long liked = 0, mismatch = 0;
    for (int t = 0; t < NTARGETS; t++) {
        long want = 0;
        for (int u = 0; u < NUSERS; u++) {
            uint8_t m = atomic_load(&model[u][t]);
            TU_ASSERT_CMP(m, !=, ST_UNKNOWN); /* every toggle was acknowledged */
            struct mx_sql_val p[] = {MX_SQL_S(T_ocid[t]), MX_SQL_S(U[u].acct)};
            uint64_t rows = 0;
            assert_int_equal(mx_mysql_query(c,
                                            "SELECT 1 FROM character_like WHERE target_ocid = ? "
                                            "AND liker_account_id = ?",
                                            p, 2, row_count, NULL, &rows),
                             0);
            if ((m == ST_ON) != (rows == 1) && mismatch++ < 5)
                print_message("  pair %d/%d: model %s, MySQL %s\n", u, t, m == ST_ON ? "on" : "off",
                              rows ? "on" : "off");
            want += m == ST_ON;
        }
        liked += want;
        char sql[200];
        snprintf(sql, sizeof sql, "SELECT like_count FROM mx.game_character WHERE ocid = '%.39s'",
                 T_ocid[t]);
        long long got = mysqld_root_int(&M, sql);
        if (!(got == want || (got < 0 && want == 0)) && mismatch++ < 5)
            print_message("  target %d like_count %lld, model %ld\n", t, got, want);
    }
    mx_mysql_conn_close(c);
    printf("{\"bench\": \"rolling_restart_likes\", \"liked_pairs\": %ld, \"mismatches\": %ld}\n",
           liked, mismatch);
    assert_int_equal(mismatch, 0);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rolling_restart),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
