/* test_node_failover.c - a cluster on Redis under Sentinel loses its
 * master (issue 14, tests 1-3), on real processes: a redis-server master,
 * its replica, three redis-sentinel, mariadbd, mxstub and three mxnode
 * with MX_REDIS_URL=redis-sentinel://..., MX_REDIS_WAIT_REPLICAS=1 and the
 * lease-probe singleton.
 *
 * Under load (like toggles of fresh pairs, anonymous like reads, logins)
 * the master is SIGKILLed:
 * 1. every Redis connection of every node is on the promoted replica within
 *    5 s of the sentinels' switch (mxctl stats, section "redis"); every
 *    request in the window is answered 200 or 503, none hangs (HANG_MS);
 *    membership and the leases recover without restarting a node;
 * 2. the lease-probe log on the new master shows one node per epoch and no
 *    epoch after a higher one; the mysql-health fence row in MySQL is its
 *    holder's epoch, above the epoch before the kill;
 * 3. every toggle acknowledged (200, liked) is in MySQL after the sync.
 * The old master is restarted after the switch; the sentinels make it the
 * new master's replica, so WAIT can be answered again.
 */
#define _GNU_SOURCE
#include <curl/curl.h>
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
#include <unistd.h>

#include <cmocka.h>

#include "../app/node_harness.h"
#include "../likes/like_client.h"
#include "../mysql/mysqld.h"
#include "../stub/stub_harness.h"
#include "mx_mysql.h"
#include "mx_testutil.h"
#include "redisd.h"

#define NNODES 3
#define NUSERS 40
#define NTARGETS 50
#define NTHREADS 4
/* "none hangs": a character whose L2 load was in flight when the master
 * died keeps its latch on the new master until the latch's TTL runs out
 * (docs/expectation-service.md; 3 s here, MX_CACHE_LATCH_TTL_MS), and a
 * toggle then still has the like route's own 5 s (seen: 7.8 s, under
 * load). A hang would be the 15 s client timeout. */
#define HANG_MS 10000

static struct redisd_ha H;
static struct mysqld M;
static struct stub S;
static struct node N[NNODES];
static char tmpdir[64];
static struct lc_user U[NUSERS];
static char T_name[NTARGETS][72], T_ocid[NTARGETS][40];
static _Atomic int acked[NUSERS][NTARGETS];     /* 1: a toggle answered 200 liked:true */
static _Atomic int attempted[NUSERS][NTARGETS]; /* 1: a toggle was sent */
static int in_mysql[NUSERS][NTARGETS], extra_rows;
static redisContext *g_rc; /* kept connection to the new master */
static char nlog[1 << 20]; /* a node's stderr, read by node_log */

static int node_up(int i)
{
    char name[32], redis[1100], mysql[200], base[160], spool[160];
    snprintf(name, sizeof name, "MX_NODE_NAME=fo%d", i);
    snprintf(redis, sizeof redis, "MX_REDIS_URL=%s", H.url);
    snprintf(mysql, sizeof mysql, "MX_MYSQL_URL=%s", M.url);
    snprintf(base, sizeof base, "MX_NEXON_BASE_URL=%s", S.base);
    snprintf(spool, sizeof spool, "MX_SPOOL_PATH=%s/spool-%d.log", tmpdir, i);
    const char *env[] = {name,
                         redis,
                         mysql,
                         base,
                         spool,
                         "MX_RATE_LIMIT=0",
                         "MX_LEASE_TEST=1",
                         "MX_LEASE_TTL_MS=2000",
                         "MX_HEALTH_PROBE_MS=200",
                         "MX_LIKE_SYNC_INTERVAL_MS=200",
                         "MX_LIKE_IDLE_S=0",
                         "MX_REDIS_WAIT_REPLICAS=1",
                         "MX_CACHE_LATCH_TTL_MS=3000",
                         "MX_LOG_LEVEL=info",
                         NULL};
    return node_start(&N[i], env);
}

/* ---- load ---- */

struct tally {
    atomic_long ok, s503, other, noanswer, slow, ok_after_switch;
    atomic_llong max_ms;
};

static struct {
    atomic_bool stop;
    _Atomic int64_t switched_at; /* 0 until the sentinels switched */
    _Atomic int64_t killed_at;
    struct tally toggles, reads, logins;
    atomic_int next_pair[NTHREADS];
} L;

static void count(struct tally *t, long st, int64_t ms)
{
    if (st == 200) {
        atomic_fetch_add(&t->ok, 1);
        int64_t sw = atomic_load(&L.switched_at);
        if (sw && tu_now_ms() - ms > sw)
            atomic_fetch_add(&t->ok_after_switch, 1);
    } else if (st == 503)
        atomic_fetch_add(&t->s503, 1);
    else if (st == 0)
        atomic_fetch_add(&t->noanswer, 1);
    else
        atomic_fetch_add(&t->other, 1);
    if (ms > HANG_MS)
        atomic_fetch_add(&t->slow, 1);
    long long m = atomic_load(&t->max_ms);
    while (ms > m && !atomic_compare_exchange_weak(&t->max_ms, &m, ms))
        ;
}

static long timed(CURL *h, int n, const char *method, const char *path, const char *token,
                  const char *body, char **ans, struct tally *t)
{
    int64_t t0 = tu_now_ms();
    long st = lc_req(h, N[n].http_port, method, path, token, body, ans);
    int64_t ms = tu_now_ms() - t0;
    count(t, st, ms);
    if (ms > 1500) /* diagnostics: what was slow, and when */
        print_message("  slow: %s %s on fo%d: %ld after %lld ms, started %lld ms after the kill\n",
                      method, path, n, st, (long long)ms,
                      L.killed_at ? (long long)(t0 - L.killed_at) : -1LL);
    return st;
}

/* thread k likes fresh pairs of its own users, each once, on random nodes */
static void *toggler(void *arg)
{
    int k = (int)(intptr_t)arg;
    unsigned seed = (unsigned)k * 7919u + 1;
    CURL *h = curl_easy_init();
    int per = (NUSERS / NTHREADS) * NTARGETS;
    while (!atomic_load(&L.stop)) {
        int i = atomic_fetch_add(&L.next_pair[k], 1);
        if (i >= per)
            break;
        int u = k + NTHREADS * (i / NTARGETS), t = i % NTARGETS;
        char path[256], *ans = NULL;
        char *e = lc_escape(T_name[t]);
        snprintf(path, sizeof path, "/api/v2/characters/%s/like", e);
        free(e);
        atomic_store(&attempted[u][t], 1);
        long st = timed(h, (int)(rand_r(&seed) % NNODES), "POST", path, U[u].token, NULL, &ans,
                        &L.toggles);
        if (st == 200 && ans && strstr(ans, "\"liked\":true"))
            atomic_store(&acked[u][t], 1);
        free(ans);
        usleep(st == 200 ? 15000 : 100000); /* 503s use pairs up: slower */
    }
    curl_easy_cleanup(h);
    return NULL;
}

static void *reader(void *arg)
{
    (void)arg;
    CURL *h = curl_easy_init();
    unsigned seed = 77;
    for (int i = 0; !atomic_load(&L.stop); i++) {
        char path[256], *ans = NULL;
        int n = (int)(rand_r(&seed) % NNODES);
        if (i % 4 == 3) { /* a login now and then: sessions live in Redis */
            struct lc_user *u = &U[rand_r(&seed) % NUSERS];
            char body[256];
            snprintf(body, sizeof body, "{\"apiKey\":\"%.31s\",\"userIgn\":\"%.71s\"}", u->key,
                     u->ign);
            timed(h, n, "POST", "/auth/login", NULL, body, &ans, &L.logins);
        } else {
            char *e = lc_escape(T_name[rand_r(&seed) % NTARGETS]);
            snprintf(path, sizeof path, "/api/v2/characters/%s/like/status", e);
            free(e);
            timed(h, n, "GET", path, NULL, NULL, &ans, &L.reads);
        }
        free(ans);
        usleep(20000);
    }
    curl_easy_cleanup(h);
    return NULL;
}

/* ---- node views through mxctl ---- */

static char *ctl_node(const struct node *n, const char *cmd)
{
    enum { CAP = 1 << 20 };
    char *out = malloc(CAP);
    assert_non_null(out);
    mx_proc_run(out, CAP, 30000, "%s/mxctl --node tcp://127.0.0.1:%d %s %s 2>/dev/null",
                getenv("MX_BIN_DIR"), n->admin_port, strcmp(cmd, "redis") ? "--json" : "", cmd);
    if (!out[0]) { /* no answer */
        free(out);
        return NULL;
    }
    return out;
}

static char *ctl(int i, const char *cmd)
{
    return ctl_node(&N[i], cmd);
}

static int occurrences(const char *s, const char *needle)
{
    int n = 0;
    for (const char *p = s; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

/* every Redis client of node i is connected to 127.0.0.1:port */
static bool node_on(int i, int port)
{
    char *out = ctl(i, "stats");
    if (!out)
        return false;
    char want[48];
    snprintf(want, sizeof want, "\"master\":\"127.0.0.1:%d\"", port);
    const char *sec = strstr(out, "\"redis\":{\"clients\":[");
    const char *end = sec ? strstr(sec, "\"sentinels\":") : NULL;
    bool ok = false;
    if (sec && end) {
        char *part = strndup(sec, (size_t)(end - sec));
        int clients = occurrences(part, "\"master\":");
        ok = clients > 0 && occurrences(part, want) == clients &&
             occurrences(part, "\"connected\":true") == clients;
        free(part);
    }
    free(out);
    return ok;
}

/* the epoch of singleton name as node i sees it (-1: none known) */
static long long lease_seq(int i, const char *name, char *holder, size_t cap)
{
    char *out = ctl(i, "leases");
    long long seq = -1;
    char key[96];
    snprintf(key, sizeof key, "\"name\":\"%s\"", name);
    const char *p = out ? strstr(out, key) : NULL;
    const char *h = p ? strstr(p, "\"holder\":\"") : NULL;
    const char *s = p ? strstr(p, "\"seq\":") : NULL;
    if (h && s) {
        seq = atoll(s + 6);
        snprintf(holder, cap, "%.*s", (int)strcspn(h + 10, "\""), h + 10);
    }
    free(out);
    return seq;
}

/* ---- Redis: one kept connection to the new master (g_rc) ---- */

static long long pending_work(struct redisd *d)
{
    long long sum = 0;
    for (int k = 0; k < 16; k++) {
        redisReply *r = redisd_kept_cmd(&g_rc, d, "ZCARD mx:mx:{lk%d}:d", k);
        redisReply *j = r ? redisd_kept_cmd(&g_rc, d, "EXISTS mx:mx:{lk%d}:jid", k) : NULL;
        bool ok = r && j && r->type == REDIS_REPLY_INTEGER && j->type == REDIS_REPLY_INTEGER;
        if (ok)
            sum += r->integer + j->integer;
        if (r)
            freeReplyObject(r);
        if (j)
            freeReplyObject(j);
        if (!ok)
            return -1;
    }
    return sum;
}

/* a character_like row "ocid|account": which pair it is */
static int row_seen(void *ctx, const struct mx_sql_val *cols, size_t n)
{
    (void)ctx;
    (void)n;
    for (int t = 0; t < NTARGETS; t++)
        for (int u = 0; u < NUSERS; u++) {
            size_t ol = strlen(T_ocid[t]), al = strlen(U[u].acct);
            if (cols[0].len == ol + 1 + al && !memcmp(cols[0].p, T_ocid[t], ol) &&
                !memcmp((const char *)cols[0].p + ol + 1, U[u].acct, al)) {
                in_mysql[u][t]++;
                return 0;
            }
        }
    extra_rows++;
    return 0;
}

/* The lease-probe log (RPUSH "<epoch> <node>" per tick) on d: one node per
 * epoch and never an older epoch after a newer one; returns the last epoch. */
static long long probe_log_top(struct redisd *d)
{
    redisReply *r = redisd_kept_cmd(&g_rc, d, "LRANGE mx:{mx}:lease-probe:log 0 -1");
    assert_non_null(r);
    TU_ASSERT_CMP(r->elements, >, 10);
    long long top = 0;
    char top_node[16] = "";
    for (size_t i = 0; i < r->elements; i++) {
        long long e;
        char nd[16];
        assert_int_equal(sscanf(r->element[i]->str, "%lld %15s", &e, nd), 2);
        if (e < top)
            fail_msg("epoch %lld acted on (by %s) after epoch %lld", e, nd, top);
        if (e == top && strcmp(nd, top_node) != 0)
            fail_msg("epoch %lld acted on by %s and %s", e, top_node, nd);
        top = e;
        snprintf(top_node, sizeof top_node, "%s", nd);
    }
    print_message("lease-probe: %zu ticks, last epoch %lld\n", r->elements, top);
    freeReplyObject(r);
    return top;
}

/* ---- setup ---- */

static int setup(void **st)
{
    (void)st;
    curl_global_init(CURL_GLOBAL_ALL);
    if (mx_proc_tmpdir(NULL, "fo", tmpdir, sizeof tmpdir) != 0 ||
        redisd_ha_start(&H, "mxfo", NULL) != 0 || mysqld_start(&M) != 0)
        return -1;
    const char *args[] = {"--unknown", "404", NULL};
    if (stub_start(&S, args) != 0)
        return -1;
    for (int i = 0; i < NNODES; i++)
        if (node_up(i) != 0)
            return -1;
    if (lc_users(&S, "fo", U, NUSERS) != 0 ||
        lc_targets(&S, "fo", U, NUSERS, T_name, T_ocid, NTARGETS) != 0)
        return -1;
    for (int u = 0; u < NUSERS; u++) {
        char body[256], *ans = NULL;
        snprintf(body, sizeof body, "{\"apiKey\":\"%.31s\",\"userIgn\":\"%.71s\"}", U[u].key,
                 U[u].ign);
        long code = 0;
        /* a node is ready before its Redis clients found the master: 503 until then */
        int64_t dl = tu_now_ms() + 10000;
        while ((code = lc_req(NULL, N[u % NNODES].http_port, "POST", "/auth/login", NULL, body,
                              &ans)) == 503 &&
               tu_now_ms() < dl) {
            free(ans);
            ans = NULL;
            usleep(50000);
        }
        if (code != 200 || !ans || json_str(ans, "accessToken", U[u].token, sizeof U[u].token)) {
            fprintf(stderr, "login of user %d: %ld %s\n", u, code, ans ? ans : "");
            free(ans);
            return -1;
        }
        free(ans);
    }
    return 0;
}

static int teardown(void **st)
{
    (void)st;
    for (int i = 0; i < NNODES; i++)
        node_kill(&N[i]);
    stub_stop(&S);
    mysqld_destroy(&M);
    redisd_ha_stop(&H);
    mx_proc_rmdir(tmpdir);
    if (g_rc)
        redisFree(g_rc);
    return 0;
}

static void print_tally(const char *what, struct tally *t)
{
    print_message("%s: 200 %ld (after the switch %ld), 503 %ld, other %ld, no answer %ld, "
                  "slowest %lld ms\n",
                  what, atomic_load(&t->ok), atomic_load(&t->ok_after_switch),
                  atomic_load(&t->s503), atomic_load(&t->other), atomic_load(&t->noanswer),
                  (long long)atomic_load(&t->max_ms));
}

/* print_sentinel_logs - the lines of each sentinel's log that say why it
 * did (not) reconfigure the restarted master: TILT, sdown, convert */
static void print_sentinel_logs(void)
{
    for (int i = 0; i < 3; i++) {
        char path[600], line[512];
        snprintf(path, sizeof path, "%s/redis.log", H.sentinel[i].dir);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        while (fgets(line, sizeof line, f))
            if (strstr(line, "tilt") || strstr(line, "convert") || strstr(line, "sdown") ||
                strstr(line, "switch-master") || strstr(line, "+slave"))
                print_message("sentinel%d %s", i, line);
        fclose(f);
    }
}

static void test_master_killed(void **st)
{
    (void)st;
    int oldp = H.master.port, newp = H.replica.port;
    char holder[64];
    for (int i = 0; i < NNODES; i++)
        assert_true(TU_WAIT_UNTIL(node_on(i, oldp), 10000));
    long long probe0 = -1, health0 = -1;
    assert_true(
        TU_WAIT_UNTIL((probe0 = lease_seq(0, "lease-probe", holder, sizeof holder)) > 0 &&
                          (health0 = lease_seq(0, "mysql-health", holder, sizeof holder)) > 0,
                      10000));

    pthread_t th[NTHREADS + 1];
    for (int k = 0; k < NTHREADS; k++)
        pthread_create(&th[k], NULL, toggler, (void *)(intptr_t)k);
    pthread_create(&th[NTHREADS], NULL, reader, NULL);
    assert_true(TU_WAIT_UNTIL(atomic_load(&L.toggles.ok) >= 100, 20000));

    redisd_kill(&H.master);
    int64_t killed = tu_now_ms();
    atomic_store(&L.killed_at, killed);
    assert_int_equal(redisd_ha_wait_master(&H, 0, newp, 30000), 0);
    int64_t switched = tu_now_ms();
    atomic_store(&L.switched_at, switched);
    bool all = true;
    for (int i = 0; i < NNODES; i++)
        all = all && TU_WAIT_UNTIL(node_on(i, newp), switched + 5000 - tu_now_ms());
    int64_t on_new = tu_now_ms();
    print_message("kill -> switch %lld ms, switch -> every connection of every node on the new "
                  "master %lld ms\n",
                  (long long)(switched - killed), (long long)(on_new - switched));
    assert_true(all);

    /* the old master comes back; the sentinels make it the new master's
     * replica (they look at it every 10 s), then WAIT answers again */
    assert_int_equal(redisd_restart(&H.master), 0);
    int64_t back = tu_now_ms();
    /* A sentinel looks at a replica every 10 s and converts a master it
     * believes is a replica after 8 s of reports: ~20 s. A sentinel that
     * saw its timer stall > 2 s (a loaded machine) enters TILT and acts on
     * nothing for 30 s more, so the wait is 120 s and a miss prints the
     * sentinels' own account. */
    bool converted = TU_WAIT_UNTIL(({
                                       redisReply *role =
                                           redisd_kept_cmd(&g_rc, &H.replica, "ROLE");
                                       bool one = role && role->type == REDIS_REPLY_ARRAY &&
                                                  role->elements >= 3 &&
                                                  role->element[2]->type == REDIS_REPLY_ARRAY &&
                                                  role->element[2]->elements >= 1;
                                       if (role)
                                           freeReplyObject(role);
                                       one;
                                   }),
                                   120000);
    if (!converted)
        print_sentinel_logs();
    assert_true(converted);
    print_message("old master restarted -> a replica of the new one: %lld ms\n",
                  (long long)(tu_now_ms() - back));
    long ok0 = atomic_load(&L.toggles.ok_after_switch);
    assert_true(TU_WAIT_UNTIL(atomic_load(&L.toggles.ok_after_switch) >= ok0 + 50, 20000));
    atomic_store(&L.stop, true);
    for (int k = 0; k <= NTHREADS; k++)
        pthread_join(th[k], NULL);
    if (getenv("FO_LOGS")) /* diagnostics: the nodes' warnings and errors */
        for (int i = 0; i < NNODES; i++) {
            node_log(&N[i], nlog, sizeof nlog);
            for (char *l = strtok(nlog, "\n"); l; l = strtok(NULL, "\n"))
                if (strstr(l, "\"warn\"") || strstr(l, "\"error\""))
                    print_message("fo%d %s\n", i, l);
        }
    print_tally("toggles", &L.toggles);
    print_tally("reads", &L.reads);
    print_tally("logins", &L.logins);
    struct tally *ts[] = {&L.toggles, &L.reads, &L.logins};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(atomic_load(&ts[i]->other), 0);    /* 200 or a clear 503 */
        assert_int_equal(atomic_load(&ts[i]->noanswer), 0); /* no reset, no timeout */
        assert_int_equal(atomic_load(&ts[i]->slow), 0);     /* none hangs */
        TU_ASSERT_CMP(atomic_load(&ts[i]->ok_after_switch), >, 0);
    }

    /* 1. membership and leases came back without a restart */
    for (int i = 0; i < NNODES; i++)
        assert_true(TU_WAIT_UNTIL(({
                                      char *o = ctl(i, "members");
                                      bool three =
                                          o && occurrences(o, "\"state\":\"up\"") == NNODES;
                                      free(o);
                                      three;
                                  }),
                                  15000));
    long long probe1 = -1, health1 = -1;
    assert_true(TU_WAIT_UNTIL(
        (probe1 = lease_seq(1, "lease-probe", holder, sizeof holder)) > 0 && holder[0], 10000));
    TU_ASSERT_CMP(probe1, >=, probe0);

    /* mxctl redis names the new master and the switch */
    char *tab = ctl(2, "redis"), line[96];
    snprintf(line, sizeof line, "sentinels for mxfo: master 127.0.0.1:%d, 3 sentinels, 1 switches",
             newp);
    assert_non_null(tab);
    if (!strstr(tab, line))
        fail_msg("mxctl redis: no '%s' in\n%s", line, tab);
    free(tab);

    /* mxctl --cluster on the sentinel URL finds the members through the new master */
    assert_int_equal(mx_proc_run(nlog, sizeof nlog, 60000,
                                 "%s/mxctl --cluster '%s' --json members 2>&1",
                                 getenv("MX_BIN_DIR"), H.url),
                     0);
    if (occurrences(nlog, "\"member\":") != NNODES)
        fail_msg("mxctl --cluster %s members:\n%.2000s", H.url, nlog);

    /* and Prometheus */
    struct http_res mr;
    assert_int_equal(node_http(N[0].http_port, "GET", "/actuator/prometheus", NULL, NULL, &mr),
                     200);
    snprintf(line, sizeof line, "client=\"http\",addr=\"127.0.0.1:%d\"} 1", newp);
    assert_non_null(strstr(mr.body, line));
    assert_non_null(strstr(mr.body, "client=\"http\",event=\"failover\"} 1"));
    http_res_free(&mr);

    /* 2. one node per epoch, and never an older epoch after a newer one */
    long long top = probe_log_top(&H.replica);
    /* the rule itself: Redis forgets the counter and the lease (as a
     * promoted replica that missed them would); the next holder's epoch
     * still goes past every epoch acted on, and the bump is logged */
    redisReply *x = redisd_kept_cmd(&g_rc, &H.replica, "SET mx:{mx}:epoch:lease-probe 0");
    assert_non_null(x);
    freeReplyObject(x);
    assert_non_null(x = redisd_kept_cmd(&g_rc, &H.replica, "DEL mx:{mx}:lease:lease-probe"));
    freeReplyObject(x);
    long long bumped = -1;
    assert_true(TU_WAIT_UNTIL(
        (bumped = lease_seq(0, "lease-probe", holder, sizeof holder)) > top && holder[0], 10000));
    bool logged = false;
    for (int i = 0; i < NNODES && !logged; i++)
        logged = node_log(&N[i], nlog, sizeof nlog) > 0 &&
                 strstr(nlog, "singleton lease-probe: Redis's epoch counter was 1, not above");
    assert_true(logged);
    assert_true(TU_WAIT_UNTIL(probe_log_top(&H.replica) == bumped, 5000));
    print_message("counter reset: next epoch %lld (highest acted on before: %lld)\n", bumped, top);
    assert_true(TU_WAIT_UNTIL((health1 = lease_seq(1, "mysql-health", holder, sizeof holder)) > 0 &&
                                  mysqld_root_int(&M, "SELECT epoch FROM mx.fence WHERE "
                                                      "name='mysql-health'") == health1,
                              10000));
    TU_ASSERT_CMP(health1, >=, health0);

    /* 3. every acknowledged like is in MySQL once the sync is done */
    assert_true(TU_WAIT_UNTIL(pending_work(&H.replica) == 0, 30000));
    struct mx_mysql_conn *c = NULL;
    char err[256];
    assert_int_equal(mx_mysql_conn_open(M.url, NULL, &c, err, sizeof err), 0);
    assert_int_equal(mx_mysql_query(c,
                                    "SELECT CONCAT(target_ocid, '|', liker_account_id)"
                                    " FROM character_like",
                                    NULL, 0, row_seen, NULL, NULL),
                     0);
    mx_mysql_conn_close(c);
    int want = 0, missing = 0, unasked = 0;
    for (int u = 0; u < NUSERS; u++)
        for (int t = 0; t < NTARGETS; t++) {
            if (in_mysql[u][t] && !atomic_load(&attempted[u][t]))
                unasked++;
            if (!atomic_load(&acked[u][t]))
                continue;
            want++;
            if (in_mysql[u][t] != 1 && missing++ < 5)
                print_message("  acknowledged like %d/%d not in MySQL\n", u, t);
        }
    print_message("%d acknowledged likes, %d missing in MySQL, %d rows nobody asked for\n", want,
                  missing, unasked + extra_rows);
    assert_int_equal(want, atomic_load(&L.toggles.ok)); /* each 200 liked a fresh pair */
    TU_ASSERT_CMP(want, >=, 150);
    assert_int_equal(missing, 0);
    assert_int_equal(unasked + extra_rows, 0);

    /* a node on Sentinel shuts down cleanly (its clients close, the last
     * one stops the resolver's thread) */
    int st2 = node_signal_wait(&N[2], SIGTERM, 20000);
    node_log(&N[2], nlog, sizeof nlog);
    if (st2 != 0)
        fail_msg("fo2 exited %d on SIGTERM:\n%.3000s", st2, nlog);
    assert_null(strstr(nlog, "still alive at close"));
}

/* the sum of a JSON integer field over the redis section of node n's stats */
static long long redis_sum(struct node *n, const char *key)
{
    char *out = ctl_node(n, "stats");
    long long sum = 0;
    char k[64];
    snprintf(k, sizeof k, "\"%s\":", key);
    const char *sec = out ? strstr(out, "\"redis\":{\"clients\":[") : NULL;
    for (const char *p = sec; p && (p = strstr(p, k)); p += strlen(k))
        sum += atoll(p + strlen(k));
    free(out);
    return out ? sum : -1;
}

/* 4. MX_REDIS_URL naming sentinels that know no such master, or a replica
 * as redis://: the node says so, naming the setting, and keeps trying */
static void test_bad_settings(void **st)
{
    (void)st;
    struct redisd *replica = NULL;
    for (int i = 0; i < 2 && !replica; i++) {
        struct redisd *d = i ? &H.replica : &H.master;
        redisContext *c = NULL;
        redisReply *role = redisd_kept_cmd(&c, d, "ROLE");
        if (role && role->type == REDIS_REPLY_ARRAY && role->elements &&
            !strcmp(role->element[0]->str, "slave"))
            replica = d;
        if (role)
            freeReplyObject(role);
        if (c)
            redisFree(c);
    }
    assert_non_null(replica);
    char url[2][300];
    snprintf(url[0], sizeof url[0], "MX_REDIS_URL=redis-sentinel://127.0.0.1:%d/nosuch",
             H.sentinel[0].port);
    snprintf(url[1], sizeof url[1], "MX_REDIS_URL=redis://127.0.0.1:%d/0", replica->port);
    const char *says[2] = {"MX_REDIS_URL: sentinels know no master named nosuch",
                           "is a replica (of 127.0.0.1:"};
    for (int k = 0; k < 2; k++) {
        struct node bad;
        char name[32];
        snprintf(name, sizeof name, "MX_NODE_NAME=bad%d", k);
        const char *env[] = {name, url[k], "MX_NEXON_BASE_URL=http://127.0.0.1:9", NULL};
        assert_int_equal(node_start(&bad, env), 0);
        assert_true(TU_WAIT_UNTIL(
            (node_log(&bad, nlog, sizeof nlog), strstr(nlog, says[k]) != NULL), 10000));
        if (k == 1)
            assert_non_null(strstr(nlog, "MX_REDIS_URL: 127.0.0.1:"));
        long long f0 = redis_sum(&bad, "connect_failures");
        TU_ASSERT_CMP(f0, >, 0);
        assert_true(TU_WAIT_UNTIL(redis_sum(&bad, "connect_failures") > f0 + 10, 10000));
        assert_int_equal(redis_sum(&bad, "connects"), 0);
        print_message("%s: '%s' logged, %lld+ failed attempts and counting\n", url[k], says[k], f0);
        node_kill(&bad);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_master_killed),
                                       cmocka_unit_test(test_bad_settings)};
    return cmocka_run_group_tests(tests, setup, teardown);
}
