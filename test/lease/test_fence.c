/* test_fence.c - a paused holder is harmless. Three real mxnode processes
 * with a real redis-server and a real mariadbd run the mysql-health
 * singleton (lease TTL 1500 ms). Its holder is stopped with SIGSTOP past
 * the TTL; another node takes over and its probe advances the MySQL fence
 * row. After SIGCONT the old holder has self-fenced (it no longer reports
 * itself as holder and counts a self-fence or a lost lease); a fenced
 * MySQL write with its old epoch changes 0 rows (MX_ESTALE, the write
 * function never runs); messages stamped with its old epoch are
 * dead-lettered stale-epoch on the nodes; the MySQL state every node
 * reports is "up"; and the lease-probe log shows one node per epoch. */
#define _GNU_SOURCE
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
#include "mx_actor.h"
#include "mx_err.h"
#include "mx_mysql.h"
#include "mx_remote.h"
#include "mx_testutil.h"
#include "mysql/mysqld.h"
#include "redis/redisd.h"

#define LEASE_TTL 1500
#define HEALTH "mysql-health"

/* no drain grace: these tests time the lease hand-over from SIGTERM, which
 * the shutdown runs after the grace and the HTTP phase (docs/shutdown.md) */
static const char *const node_env[] = {"MX_DRAIN_GRACE_MS=0",      "MX_LEASE_TTL_MS=1500",
                                       "MX_MEMBER_REFRESH_MS=300", "MX_MEMBER_TTL_MS=1500",
                                       "MX_HEALTH_PROBE_MS=200",   NULL};
static struct redisd g_redis;
static struct mysqld g_my;
static struct lnode g_nodes[3];

static int setup(void **st)
{
    if (redisd_start(&g_redis, NULL) != 0 || mysqld_start(&g_my) != 0)
        return -1;
    lh_set_env(node_env);
    const char *names[] = {"n1", "n2", "n3"};
    for (int i = 0; i < 3; i++)
        if (lh_start(&g_nodes[i], names[i], g_redis.url, g_my.url) != 0)
            return -1;
    return 0;
}

static int teardown(void **st)
{
    for (int i = 0; i < 3; i++)
        if (g_nodes[i].pid > 0) {
            kill(g_nodes[i].pid, SIGCONT);
            lh_signal(&g_nodes[i], SIGKILL);
        }
    mysqld_destroy(&g_my);
    redisd_stop(&g_redis);
    return 0;
}

static int holder(const char *name, int skip, long long *seq)
{
    for (int i = 0; i < 3; i++) {
        char h[64];
        if (i != skip && lh_holder(&g_nodes[i], name, h, sizeof h, seq) == 0 &&
            !strcmp(h, g_nodes[i].name))
            return i;
    }
    return -1;
}

static long long fence_row(void)
{
    return mysqld_root_int(&g_my, "SELECT epoch FROM mx.fence WHERE name='" HEALTH "'");
}

/* ---- a sender stamped with an old epoch, over the real transport ---- */

struct sender_arg {
    uint64_t node;
    uint64_t epoch;
};

static int snd_receive(mx_actor_t *self, void *state, struct mx_msg *m)
{
    struct sender_arg *a = state;
    mx_set_epoch(self, a->epoch);
    struct mx_m_test_echo e = {.n = 1, .text = {"stale", 5}};
    struct mx_msg *out;
    if (mx_msg_encode(MX_T_test_echo, &e, &out) == 0 &&
        mx_send_named_on(self, a->node, "scheduler-info-0", out) != 0)
        mx_msg_free(out);
    return 0;
}

static int snd_init(mx_actor_t *self, void *arg, void **state)
{
    *state = arg;
    return 0;
}

static const struct mx_behaviour snd_beh = {"stale-sender", snd_init, snd_receive, NULL};

static long long stale_count(struct lnode *n)
{
    char out[8192];
    if (lh_ctl(out, sizeof out, "--node %s deadletters", n->admin) != 0)
        return -1;
    return lh_json_int(out, "stale-epoch");
}

/* probes of MySQL node n's mysql-health actor has run (while it holds) */
static long long probes(struct lnode *n)
{
    char out[16384];
    if (lh_ctl(out, sizeof out, "--node %s stats", n->admin) != 0)
        return -1;
    const char *h = strstr(out, "\"mysql_health\":");
    return h ? lh_json_int(h, "probes") : -1;
}

/* frames node n refused for an epoch Redis did not vouch for */
static long long unverified_count(struct lnode *n)
{
    char out[16384];
    if (lh_ctl(out, sizeof out, "--node %s stats", n->admin) != 0)
        return -1;
    return lh_json_int(out, "unverified-epoch");
}

/* send one message stamped `epoch` to node i's scheduler-info-0 */
static void send_with_epoch(mx_system_t *sys, mx_remote_t *rem, int i, uint64_t epoch)
{
    char key[64];
    snprintf(key, sizeof key, "mx:{mx}:members");
    redisReply *r = redisd_cmd(&g_redis, "HGET %s %s", key, g_nodes[i].name);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    char id[32] = "", nng[128] = "";
    const char *p = strstr(r->str, "\"id\":\"");
    const char *q = strstr(r->str, "\"nng\":\"");
    assert_non_null(p);
    assert_non_null(q);
    sscanf(p + 6, "%31[0-9a-f]", id);
    sscanf(q + 7, "%127[^\"]", nng);
    freeReplyObject(r);
    uint64_t node = strtoull(id, NULL, 16);
    assert_int_equal(mx_remote_add_peer(rem, node, nng), 0);
    assert_true(TU_WAIT_UNTIL(mx_remote_peer_up(rem, node), 3000));
    static struct sender_arg a;
    a.node = node;
    a.epoch = epoch;
    struct mx_addr s;
    assert_int_equal(mx_spawn(sys, &snd_beh, &a, NULL, &s), 0);
    assert_int_equal(mx_sys_send(sys, s, mx_msg_new(MX_T_sys_tick, 0)), 0);
}

static int fenced_write_ran;
static int fenced_write(struct mx_mysql_conn *c, void *arg)
{
    fenced_write_ran++;
    return 0;
}

static void test_paused_holder(void **st)
{
    long long s1 = 0, s2 = 0;
    int h = -1;
    assert_true(TU_WAIT_EVERY((h = holder(HEALTH, -1, &s1)) >= 0, 8000, 20));
    assert_true(TU_WAIT_EVERY(fence_row() == s1, 5000, 20)); /* its probes are fenced writes */
    printf("holder n%d epoch %lld; SIGSTOP\n", h + 1, s1);
    int64_t t0 = tu_now_ms();
    kill(g_nodes[h].pid, SIGSTOP);
    int nh = -1;
    assert_true(TU_WAIT_EVERY((nh = holder(HEALTH, h, &s2)) >= 0, LEASE_TTL + 3000, 20));
    printf("n%d took over with epoch %lld after %lld ms\n", nh + 1, s2,
           (long long)(tu_now_ms() - t0));
    TU_ASSERT_CMP(s2, >, s1);
    assert_true(TU_WAIT_EVERY(fence_row() == s2, 3000, 20));
    /* the scenario, not a wait for an event: the holder stays paused until
     * TTL + 500 ms after SIGSTOP */
    while (tu_now_ms() - t0 < LEASE_TTL + 500)
        usleep(10000);
    kill(g_nodes[h].pid, SIGCONT);

    /* it self-fences: not a holder, and it counted why (polled: the node
     * needs a moment after SIGCONT to notice) */
    char hb[64];
    long long seq = 0;
    char out[16384];
    assert_true(
        TU_WAIT_EVERY(lh_holder(&g_nodes[h], HEALTH, hb, sizeof hb, &seq) == 0 &&
                          strcmp(hb, g_nodes[h].name) != 0 && seq >= s2 &&
                          lh_ctl(out, sizeof out, "--node %s stats", g_nodes[h].admin) == 0 &&
                          lh_json_int(out, "self_fenced") + lh_json_int(out, "leases_lost") >= 1,
                      10000, 50));
    assert_string_not_equal(hb, g_nodes[h].name);
    TU_ASSERT_CMP(seq, >=, s2); /* and it learned the new epoch */
    TU_ASSERT_CMP(lh_json_int(out, "self_fenced") + lh_json_int(out, "leases_lost"), >=, 1);
    /* the fence row was never moved back by the old holder */
    TU_ASSERT_CMP(fence_row(), >=, s2);

    /* a MySQL write with the old epoch changes nothing */
    struct mx_mysql_conn *c;
    char err[256];
    assert_int_equal(mx_mysql_conn_open(g_my.url, NULL, &c, err, sizeof err), 0);
    assert_int_equal(mx_mysql_fenced(c, HEALTH, (uint64_t)s1, fenced_write, NULL), MX_ESTALE);
    assert_int_equal(fenced_write_ran, 0);
    uint64_t affected = 99;
    struct mx_sql_val up[] = {MX_SQL_I(s1), MX_SQL_S(HEALTH), MX_SQL_I(s1)};
    assert_int_equal(mx_mysql_exec(c, "UPDATE fence SET epoch = ? WHERE name = ? AND epoch <= ?",
                                   up, 3, &affected),
                     0);
    assert_int_equal(affected, 0);
    mx_mysql_conn_close(c);

    /* messages stamped with the old epoch are rejected as stale, on the
     * new holder and on the resumed old holder alike */
    struct mx_system_opts so = {.node_name = "fence-test", .schedulers = 1};
    mx_system_t *sys;
    assert_int_equal(mx_system_start(&so, &sys), 0);
    struct mx_remote_opts ro = {.listen_url = "tcp://127.0.0.1:0"};
    mx_remote_t *rem;
    assert_int_equal(mx_remote_start(sys, &ro, &rem), 0);
    uint32_t sid = mx_epoch_sid(HEALTH);
    for (int k = 0; k < 2; k++) {
        int i = k == 0 ? nh : h;
        long long before = stale_count(&g_nodes[i]);
        TU_ASSERT_CMP(before, >=, 0);
        long long unv = unverified_count(&g_nodes[i]);
        send_with_epoch(sys, rem, i, mx_epoch_make(sid, (uint64_t)s1));
        assert_true(TU_WAIT_EVERY(stale_count(&g_nodes[i]) == before + 1, 3000, 20));
        /* the current epoch from a node Redis does not name as its holder,
         * and a huge epoch (it would fence the real holder out until a
         * restart): refused before the fence, never counted as stale */
        send_with_epoch(sys, rem, i, mx_epoch_make(sid, (uint64_t)s2));
        send_with_epoch(sys, rem, i, mx_epoch_make(sid, MX_EPOCH_SEQ_MASK));
        assert_true(TU_WAIT_EVERY(unverified_count(&g_nodes[i]) == unv + 2, 3000, 20));
        assert_int_equal(stale_count(&g_nodes[i]), before + 1);
    }
    /* the fence did not move: the holder's own messages (epoch s2) are
     * not stale on its node, and it still holds the lease */
    long long nst = stale_count(&g_nodes[nh]);
    long long p0 = probes(&g_nodes[nh]);
    TU_ASSERT_CMP(p0, >=, 0);
    assert_true(TU_WAIT_EVERY(probes(&g_nodes[nh]) >= p0 + 3, 5000, 50)); /* three probes */
    assert_int_equal(stale_count(&g_nodes[nh]), nst);
    long long s3 = 0;
    assert_int_equal(holder(HEALTH, -1, &s3), nh);
    assert_int_equal(s3, s2);
    mx_system_stop(sys, 2000);
    mx_remote_stop(rem);
    mx_system_free(sys);

    /* every node knows MySQL is up from the holder's reports */
    for (int i = 0; i < 3; i++) {
        assert_true(
            TU_WAIT_EVERY(lh_ctl(out, sizeof out, "--node %s stats", g_nodes[i].admin) == 0 &&
                              strstr(out, "\"mysql_health\":{\"state\":\"up\""),
                          3000, 20));
    }
    redisReply *r = redisd_cmd(&g_redis, "HGET mx:{mx}:mysql-health seq");
    assert_non_null(r);
    TU_ASSERT_CMP(strtoll(r->str, NULL, 10), >=, s2);
    freeReplyObject(r);

    /* no two nodes acted in one epoch (lease-probe log) */
    r = redisd_cmd(&g_redis, "LRANGE mx:{mx}:lease-probe:log 0 -1");
    assert_non_null(r);
    TU_ASSERT_CMP(r->elements, >, 5);
    char why[160];
    if (lh_probe_log_check(r, false, why, sizeof why) != 0)
        fail_msg("%s", why);
    freeReplyObject(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_paused_holder)};
    return cmocka_run_group_tests(tests, setup, teardown);
}
