/* cache_shard_test.c - the cache shards' counters on a real actor system
 * (two schedulers, no fetcher, no Redis, no MySQL): each shard counts in
 * its own block, registered as cache/shard-<i>; mx_svc_stats is their
 * sum. Requests for names of both shards are refused (no fetcher), so the
 * counts are known exactly. Waited for, never slept. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "mx_cache.h"
#include "mx_testutil.h"

struct seen {
    int sets;
    uint64_t requests[2], refused[2];
};

static void per_shard(const struct mx_metrics_set *set, void *arg)
{
    struct seen *sn = arg;
    int i;
    if (strcmp(set->actor, "cache") != 0 || sscanf(set->instance, "shard-%d", &i) != 1 || i < 0 ||
        i > 1)
        return;
    sn->sets++;
    for (size_t k = 0; k < set->n; k++) {
        if (strcmp(set->desc[k].name, "requests") == 0)
            sn->requests[i] = mx_metrics_value(set, k);
        if (strcmp(set->desc[k].name, "refused") == 0)
            sn->refused[i] = mx_metrics_value(set, k);
    }
}

static void ask(mx_system_t *sys, const char *ign)
{
    struct mx_addr to;
    char name[16];
    snprintf(name, sizeof name, "cache.%u", mx_svc_shard(ign, strlen(ign), 2));
    assert_int_equal(mx_whereis(sys, name, &to), 0);
    struct mx_m_exp_get q = {.what = MX_SVC_EXPECTATION, .ign = {ign, (uint32_t)strlen(ign)}};
    struct mx_msg *m;
    assert_int_equal(mx_msg_encode(MX_T_exp_get, &q, &m), 0);
    m->env.flags |= MX_ENVF_REQUEST; /* answered (refused) to nobody: a dead letter */
    assert_int_equal(mx_sys_send(sys, to, m), 0);
}

static void counters_per_shard(void **st)
{
    (void)st;
    mx_system_t *sys;
    struct mx_system_opts o = {.node_name = "t", .schedulers = 2, .offload_threads = 1};
    assert_int_equal(mx_system_start(&o, &sys), 0);
    struct mx_svc_opts so;
    mx_svc_opts_default(&so);
    so.fetcher_name = "no-such-fetcher";
    assert_int_equal(mx_svc_start(sys, &so), 0);
    /* eight names, some on each shard (asserted below) */
    const char *names[] = {"alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"};
    uint64_t want[2] = {0, 0};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        ask(sys, names[i]);
        want[mx_svc_shard(names[i], strlen(names[i]), 2)]++;
    }
    assert_true(want[0] > 0 && want[1] > 0);
    struct mx_svc_stats sum;
    assert_true(TU_WAIT_UNTIL((mx_svc_stats(&sum), sum.refused == 8), 10000));
    assert_int_equal(sum.requests, 8);
    assert_int_equal(sum.l1_misses, 8);
    assert_int_equal(sum.l1_hits, 0);
    struct seen sn = {0};
    mx_metrics_foreach(per_shard, &sn);
    assert_int_equal(sn.sets, 2);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(sn.requests[i], want[i]);
        assert_int_equal(sn.refused[i], want[i]);
    }
    assert_int_equal(mx_system_stop(sys, 5000), 0);
    mx_system_free(sys);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(counters_per_shard),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
