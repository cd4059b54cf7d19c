/* test_failover.c - three real mxnode processes and a real redis-server:
 * membership (every node sees the others; a killed node disappears within
 * its TTL), mxctl --cluster members/leases with --json, singleton failover
 * after SIGTERM (< 500 ms) and SIGKILL (within TTL + renew interval; the
 * time is printed), Redis restarted under live nodes (membership and
 * leases recover, epochs keep rising), and a sampler that runs throughout
 * and checks that at most one node acts as holder: no two nodes report
 * the same epoch, and once a node reported epoch E nobody reports holding
 * an older one later. The lease-probe singleton's log in Redis must show
 * one node per epoch. Shorter TTLs than the defaults keep it under 60 s:
 * lease 1500 ms, membership refresh 300 ms / TTL 1500 ms. */
#define _GNU_SOURCE
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "lharness.h"
#include "mx_testutil.h"
#include "redis/redisd.h"

#define LEASE_TTL 1500
#define MEMBER_TTL 1500
#define SINGLETON "lease-probe"

/* no drain grace: these tests time the lease hand-over from SIGTERM, which
 * the shutdown runs after the grace and the HTTP phase (docs/shutdown.md) */
static const char *const node_env[] = {"MX_DRAIN_GRACE_MS=0", "MX_LEASE_TTL_MS=1500",
                                       "MX_MEMBER_REFRESH_MS=300", "MX_MEMBER_TTL_MS=1500", NULL};

static struct redisd g_redis;
static struct lnode g_nodes[3];
static const char *g_names[3] = {"n1", "n2", "n3"};
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER; /* guards g_nodes vs the sampler */

/* ---- the sampler ---- */

struct report {
    long long seq;
    int64_t start, end; /* the admin answer was produced in [start, end] */
    int node;
};
#define MAX_REPORTS 20000
static struct report g_rep[MAX_REPORTS];
static int g_nrep, g_samples, g_asked, g_answered;
static volatile int g_sampling;
static int64_t g_sample_t0;
static pthread_t g_sampler;

static void *sampler(void *arg)
{
    while (g_sampling) {
        for (int i = 0; i < 3; i++) {
            pthread_mutex_lock(&g_mu);
            struct lnode n = g_nodes[i];
            pthread_mutex_unlock(&g_mu);
            if (n.pid <= 0)
                continue;
            char h[64];
            long long seq;
            int64_t t0 = tu_now_ms();
            g_asked++;
            if (lh_holder(&n, SINGLETON, h, sizeof h, &seq) != 0)
                continue;
            g_answered++;
            int64_t t1 = tu_now_ms();
            if (strcmp(h, n.name) == 0 && g_nrep < MAX_REPORTS)
                g_rep[g_nrep++] = (struct report){seq, t0, t1, i};
        }
        g_samples++;
        usleep(10000);
    }
    return NULL;
}

/* at most one holder: same epoch never on two nodes; an older epoch never
 * reported as held after a newer one certainly was */
static int violations(void)
{
    int v = 0;
    for (int a = 0; a < g_nrep; a++)
        for (int b = 0; b < g_nrep; b++) {
            const struct report *x = &g_rep[a], *y = &g_rep[b];
            if (x->seq == y->seq && x->node != y->node) {
                fprintf(stderr, "VIOLATION: epoch %lld held by n%d and n%d\n", x->seq, x->node + 1,
                        y->node + 1);
                v++;
            }
            if (x->seq < y->seq && y->end < x->start) {
                fprintf(stderr, "VIOLATION: n%d held epoch %lld at %lld after n%d held %lld\n",
                        x->node + 1, x->seq, (long long)x->start, y->node + 1, y->seq);
                v++;
            }
        }
    return v;
}

/* ---- helpers ---- */

static int holder_index(long long *seq, int skip)
{
    for (int i = 0; i < 3; i++) {
        if (i == skip)
            continue;
        char h[64];
        long long s;
        if (g_nodes[i].pid > 0 && lh_holder(&g_nodes[i], SINGLETON, h, sizeof h, &s) == 0 &&
            !strcmp(h, g_nodes[i].name)) {
            if (seq)
                *seq = s;
            return i;
        }
    }
    return -1;
}

static int wait_holder(int64_t timeout_ms, int not_this, long long *seq)
{
    int64_t dl = tu_now_ms() + timeout_ms;
    do {
        int i = holder_index(seq, not_this);
        if (i >= 0 && i != not_this)
            return i;
        usleep(2000);
    } while (tu_now_ms() < dl);
    return -1;
}

static int members_seen(struct lnode *n)
{
    char out[16384];
    if (lh_ctl(out, sizeof out, "--node %s members", n->admin) != 0)
        return -1;
    return lh_count(out, "\"node_id\"");
}

static void restart(int i)
{
    struct lnode n;
    int rc = lh_start(&n, g_names[i], g_redis.url, NULL); /* the sampler keeps sampling */
    pthread_mutex_lock(&g_mu);
    g_nodes[i] = n;
    pthread_mutex_unlock(&g_mu);
    assert_int_equal(rc, 0);
}

static void stop(int i, int sig)
{
    pthread_mutex_lock(&g_mu);
    struct lnode n = g_nodes[i];
    g_nodes[i].pid = 0;
    pthread_mutex_unlock(&g_mu);
    int st = lh_signal(&n, sig);
    if (sig == SIGTERM)
        assert_int_equal(st, 0);
}

static int setup(void **st)
{
    if (redisd_start(&g_redis, NULL) != 0)
        return -1;
    lh_set_env(node_env);
    for (int i = 0; i < 3; i++)
        if (lh_start(&g_nodes[i], g_names[i], g_redis.url, NULL) != 0)
            return -1;
    g_sampling = 1;
    g_sample_t0 = tu_now_ms();
    pthread_create(&g_sampler, NULL, sampler, NULL);
    return 0;
}

static int teardown(void **st)
{
    if (g_sampling) {
        g_sampling = 0;
        pthread_join(g_sampler, NULL);
    }
    for (int i = 0; i < 3; i++)
        if (g_nodes[i].pid > 0)
            lh_signal(&g_nodes[i], SIGKILL);
    redisd_stop(&g_redis);
    return 0;
}

/* ---- tests ---- */

static void test_membership(void **st)
{
    for (int i = 0; i < 3; i++)
        assert_true(TU_WAIT_UNTIL(members_seen(&g_nodes[i]) == 3, 5000));
    char out[32768];
    assert_int_equal(lh_ctl(out, sizeof out, "--cluster %s members", g_redis.url), 0);
    assert_int_equal(lh_count(out, "\"member\":"), 3);
    for (int i = 0; i < 3; i++) {
        char pat[64];
        snprintf(pat, sizeof pat, "\"name\":\"%s\"", g_names[i]);
        assert_int_equal(lh_count(out, pat), 3); /* every node lists every node */
    }
    assert_int_equal(lh_count(out, "\"state\":\"up\""), 9);
    /* the transport got the peers */
    assert_int_equal(lh_ctl(out, sizeof out, "--node %s stats", g_nodes[0].admin), 0);
    assert_int_equal(lh_json_int(out, "peers"), 2);
    assert_true(TU_WAIT_UNTIL(lh_ctl(out, sizeof out, "--node %s stats", g_nodes[0].admin) == 0 &&
                                  lh_json_int(out, "peers_up") == 2,
                              3000));
}

static void test_leases_json(void **st)
{
    long long seq = 0;
    int h = wait_holder(5000, -1, &seq);
    TU_ASSERT_CMP(h, >=, 0);
    TU_ASSERT_CMP(seq, >=, 1);
    char out[32768];
    assert_int_equal(lh_ctl(out, sizeof out, "--cluster %s leases", g_redis.url), 0);
    assert_int_equal(lh_count(out, "\"name\":\"" SINGLETON "\""), 3);
    char pat[64];
    snprintf(pat, sizeof pat, "\"holder\":\"%s\"", g_names[h]);
    /* the holder and (after the next campaign read) the others agree */
    assert_true(TU_WAIT_UNTIL(lh_ctl(out, sizeof out, "--cluster %s leases", g_redis.url) == 0 &&
                                  lh_count(out, pat) == 3,
                              3000));
    TU_ASSERT_CMP(lh_json_int(out, "ttl_ms"), >, 0);
    TU_ASSERT_CMP(lh_json_int(out, "ttl_ms"), <=, LEASE_TTL);
    /* a bad command is a usage error */
    assert_int_equal(lh_ctl(out, sizeof out, "--node %s nosuchcommand", g_nodes[0].admin), 2);
}

static void test_sigterm_handover(void **st)
{
    long long seq0 = 0, seq1 = 0;
    int h = wait_holder(5000, -1, &seq0);
    TU_ASSERT_CMP(h, >=, 0);
    int64_t t0 = tu_now_ms();
    pthread_mutex_lock(&g_mu);
    struct lnode old = g_nodes[h];
    g_nodes[h].pid = 0; /* nobody asks a node that is shutting down */
    pthread_mutex_unlock(&g_mu);
    kill(old.pid, SIGTERM);
    int nh = wait_holder(3000, h, &seq1);
    int64_t took = tu_now_ms() - t0;
    printf("SIGTERM takeover: %lld ms (n%d epoch %lld -> n%d epoch %lld)\n", (long long)took, h + 1,
           seq0, nh + 1, seq1);
    TU_ASSERT_CMP(nh, >=, 0);
    TU_ASSERT_CMP(nh, !=, h);
    TU_ASSERT_CMP(seq1, >, seq0);
    TU_ASSERT_CMP(took, <, 500);
    assert_int_equal(lh_signal(&old, 0), 0); /* reaps (no second SIGTERM); exit status 0 */
    restart(h);
}

static void test_sigkill_failover(void **st)
{
    long long seq0 = 0, seq1 = 0;
    int h = wait_holder(5000, -1, &seq0);
    TU_ASSERT_CMP(h, >=, 0);
    int64_t t0 = tu_now_ms();
    stop(h, SIGKILL);
    int nh = wait_holder(5000, h, &seq1);
    int64_t took = tu_now_ms() - t0;
    printf("SIGKILL takeover: %lld ms (TTL %d + renew interval %d)\n", (long long)took, LEASE_TTL,
           LEASE_TTL / 3);
    TU_ASSERT_CMP(nh, >=, 0);
    TU_ASSERT_CMP(seq1, >, seq0);
    TU_ASSERT_CMP(took, <=, LEASE_TTL + LEASE_TTL / 3 + 200); /* + polling slack */
    /* the dead node leaves every membership view within its TTL */
    int other = (h + 1) % 3;
    int64_t m0 = tu_now_ms();
    assert_true(TU_WAIT_UNTIL(members_seen(&g_nodes[other]) == 2, MEMBER_TTL + 1500));
    printf("killed node gone from membership after %lld ms\n", (long long)(tu_now_ms() - t0));
    (void)m0;
    restart(h);
    for (int i = 0; i < 3; i++)
        assert_true(TU_WAIT_UNTIL(members_seen(&g_nodes[i]) == 3, 5000));
}

static void test_churn(void **st)
{
    /* more restarts while the sampler watches, until it has watched for
     * 12 s in all */
    for (int k = 0; k < 3 || tu_now_ms() - g_sample_t0 < 12000; k++) {
        int h = wait_holder(5000, -1, NULL);
        TU_ASSERT_CMP(h, >=, 0);
        stop(h, k == 1 ? SIGKILL : SIGTERM);
        TU_ASSERT_CMP(wait_holder(5000, h, NULL), >=, 0);
        restart(h);
    }
}

static void test_redis_restart(void **st)
{
    long long seq0 = 0, seq1 = 0;
    TU_ASSERT_CMP(wait_holder(5000, -1, &seq0), >=, 0);
    assert_int_equal(redisd_restart(&g_redis), 0); /* no persistence: every key is gone */
    int64_t t0 = tu_now_ms();
    int h = -1;
    /* the old term ends (its renewal finds no key) and a new one starts */
    assert_true(TU_WAIT_UNTIL((h = wait_holder(100, -1, &seq1)) >= 0 && seq1 > seq0, 10000));
    /* the epoch keeps rising although Redis forgot its counter */
    TU_ASSERT_CMP(seq1, >, seq0);
    assert_true(TU_WAIT_UNTIL(({
                                  redisReply *r = redisd_cmd(&g_redis, "HLEN mx:{mx}:members");
                                  long long n = r ? r->integer : -1;
                                  freeReplyObject(r);
                                  n == 3;
                              }),
                              5000));
    for (int i = 0; i < 3; i++)
        assert_true(TU_WAIT_UNTIL(members_seen(&g_nodes[i]) == 3, 5000));
    printf("after a Redis restart: holder n%d epoch %lld -> %lld, recovered in %lld ms\n", h + 1,
           seq0, seq1, (long long)(tu_now_ms() - t0));
}

static void test_no_double_holder(void **st)
{
    g_sampling = 0;
    pthread_join(g_sampler, NULL);
    printf("sampler: %d rounds over %lld ms, %d/%d answers, %d holder reports\n", g_samples,
           (long long)(tu_now_ms() - g_sample_t0), g_answered, g_asked, g_nrep);
    TU_ASSERT_CMP(g_samples, >, 40); /* ~100 on an idle box; fewer under sanitizers */
    TU_ASSERT_CMP(g_nrep, >, 20);
    assert_int_equal(violations(), 0);
    /* the probe's log (since the Redis restart): one node per epoch */
    /* the probe keeps logging while it holds: on a loaded machine the log
     * since the restart may still be short, so give it time to grow */
    redisReply *r = NULL;
    int64_t dl = tu_now_ms() + 8000;
    do {
        if (r)
            freeReplyObject(r);
        r = redisd_cmd(&g_redis, "LRANGE mx:{mx}:lease-probe:log 0 -1");
        assert_non_null(r);
        if (r->elements > 5)
            break;
        usleep(100000);
    } while (tu_now_ms() < dl);
    TU_ASSERT_CMP(r->elements, >, 5);
    char why[160];
    if (lh_probe_log_check(r, true, why, sizeof why) != 0)
        fail_msg("%s", why);
    freeReplyObject(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_membership),
        cmocka_unit_test(test_leases_json),
        cmocka_unit_test(test_sigterm_handover),
        cmocka_unit_test(test_sigkill_failover),
        cmocka_unit_test(test_churn),
        cmocka_unit_test(test_redis_restart),
        cmocka_unit_test(test_no_double_holder),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
