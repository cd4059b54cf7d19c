/* cache_outage_test.c - Redis and MariaDB going away under load (issue 5,
 * tests 3 and 4): two real mxnode processes keep answering from the other
 * tiers, reconnect to Redis within 2 s of its return, and the MySQL writes
 * made during the outage are all in MySQL afterwards (spooled, replayed). */
#define _GNU_SOURCE
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
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "mx_testutil.h"

#include "cache_harness.h"

static struct stack S;

static double ms_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

/* background load: cached requests on both nodes */
struct load {
    const char *ign;
    atomic_bool stop;
    atomic_int ok, failed;
};

static void *load_run(void *arg)
{
    struct load *l = arg;
    while (!atomic_load(&l->stop)) {
        struct mreq r[8];
        for (int i = 0; i < 8; i++) {
            r[i] = (struct mreq){.port = S.node[i % 2].http_port};
            snprintf(r[i].path, sizeof r[i].path, "/api/v4/characters/%s/expectation", l->ign);
        }
        mreq_run(r, 8, 10000);
        for (int i = 0; i < 8; i++) {
            if (r[i].status == 200)
                atomic_fetch_add(&l->ok, 1);
            else
                atomic_fetch_add(&l->failed, 1);
        }
        mreq_free(r, 8);
        usleep(20000);
    }
    return NULL;
}

/* wait (<= 20 s) until the load has made n more requests than when called */
static bool load_made(struct load *l, int n)
{
    int base = atomic_load(&l->ok) + atomic_load(&l->failed);
    return TU_WAIT_EVERY(atomic_load(&l->ok) + atomic_load(&l->failed) >= base + n, 20000, 5);
}

static void cold(int node, const char *fmt, int k)
{
    char path[160];
    snprintf(path, sizeof path, fmt, k);
    char *b = NULL;
    int st = get(S.node[node].http_port, NULL, path, &b);
    if (st != 200)
        fail_msg("%s on node %d: %d %.200s", path, node, st, b ? b : "");
    free(b);
}

/* 3. Redis stopped under load, then restarted. */
static void redis_outage(void **st)
{
    (void)st;
    static struct load l = {.ign = "warm3"};
    cold(0, "/api/v4/characters/warm%d/expectation", 3);
    cold(1, "/api/v4/characters/warm%d/expectation", 3);
    pthread_t t;
    pthread_create(&t, NULL, load_run, &l);
    assert_true(load_made(&l, 16)); /* the load is running */
    redisd_kill(&S.redis);
    /* new characters load from upstream (per node), cached ones from L1 */
    for (int k = 0; k < 6; k++)
        cold(k % 2, "/api/v4/characters/redisdown%d/expectation", k);
    assert_true(load_made(&l, 64)); /* and runs on while Redis is down */
    assert_int_equal(redisd_restart(&S.redis), 0);
    double t0 = ms_now(), up = -1;
    redisContext *rc = NULL; /* one connection for the whole poll */
    for (int k = 0; k < 60 && up < 0; k++) {
        cold(0, "/api/v4/characters/back%d/expectation", k);
        redisReply *rep = redisd_kept_cmd(&rc, &S.redis, "STRLEN mx:mx:{exp:back%d}:d:0:111", k);
        if (rep && rep->type == REDIS_REPLY_INTEGER && rep->integer > 100)
            up = ms_now() - t0;
        else
            usleep(100000); /* polling interval */
        if (rep)
            freeReplyObject(rep);
    }
    if (rc)
        redisFree(rc);
    atomic_store(&l.stop, true);
    pthread_join(t, NULL);
    print_message("redis back: L2 written %.0f ms after restart; load ok %d failed %d\n", up,
                  atomic_load(&l.ok), atomic_load(&l.failed));
    TU_ASSERT_CMP(up, >=, 0);
    TU_ASSERT_CMP(up, <, 2000);
    assert_int_equal(atomic_load(&l.failed), 0);
    TU_ASSERT_CMP(atomic_load(&l.ok), >, 0);
    for (int i = 0; i < 2; i++)
        assert_int_equal(kill(S.node[i].pid, 0), 0); /* no crash */
}

static long long count(const char *sql)
{
    return mysqld_root_int(&S.mysql, sql);
}

/* 4. MariaDB stopped under load, then restarted: the writes made while it
 * was down are in MySQL afterwards. */
static void mysql_outage(void **st)
{
    (void)st;
    static struct load l = {.ign = "warm4"};
    cold(0, "/api/v4/characters/warm%d/expectation", 4);
    cold(1, "/api/v4/characters/warm%d/expectation", 4);
    pthread_t t;
    pthread_create(&t, NULL, load_run, &l);
    assert_true(load_made(&l, 16)); /* the load is running */
    assert_int_equal(mysqld_kill(&S.mysql), 0);
    enum { K = 6 };
    for (int k = 0; k < K; k++)
        cold(k % 2, "/api/v4/characters/spool4x%d/expectation", k);
    /* once the node knows MySQL is down (mysql-health, or its own pool), a
     * new load does not wait for L3 at all: wait for that, loading new
     * characters until one skips L3 (bounded) */
    long long skipped = 0;
    double td = ms_now();
    for (int k = 0; skipped == 0 && ms_now() - td < 15000; k++) {
        cold(0, "/api/v4/characters/spool4down%d/expectation", k);
        skipped = cache_counter(S.node[0].http_port, "l3_skipped_down");
        TU_ASSERT_CMP(skipped, >=, 0);
        if (skipped == 0)
            usleep(100000); /* polling interval, not synchronisation */
    }
    print_message("mysql down: a load skipped L3 after %.0f ms\n", ms_now() - td);
    TU_ASSERT_CMP(skipped, >, 0);
    assert_int_equal(mysqld_restart(&S.mysql), 0);
    /* every write made meanwhile lands: K characters, K equipment rows, and
     * one summary per preset (the synthetic characters have 3) */
    double t0 = ms_now();
    long long ch = -1, eq = -1, sm = -1;
    while (ms_now() - t0 < 15000) {
        ch = count("SELECT COUNT(*) FROM mx.game_character WHERE user_ign LIKE 'spool4x%'");
        eq = count("SELECT COUNT(*) FROM mx.character_equipment e JOIN mx.game_character g"
                   " ON g.ocid = e.ocid WHERE g.user_ign LIKE 'spool4x%'");
        sm = count("SELECT COUNT(*) FROM mx.equipment_expectation_summary"
                   " WHERE user_ign LIKE 'spool4x%'");
        if (ch == K && eq == K && sm == 3 * K)
            break;
        usleep(200000);
    }
    atomic_store(&l.stop, true);
    pthread_join(t, NULL);
    print_message("mysql back after %.0f ms: characters %lld equipment %lld summaries %lld;"
                  " load ok %d failed %d\n",
                  ms_now() - t0, ch, eq, sm, atomic_load(&l.ok), atomic_load(&l.failed));
    assert_int_equal(ch, K);
    assert_int_equal(eq, K);
    assert_int_equal(sm, 3 * K);
    assert_int_equal(atomic_load(&l.failed), 0);
}

/* Upstream down, nothing in L1 or L2, equipment in MySQL past its
 * freshness: the document is computed from it and served marked stale. */
static void stale_from_l3(void **st)
{
    (void)st;
    char *b = NULL;
    /* load it through node 0: MySQL gets the character and its equipment */
    assert_int_equal(get(S.node[0].http_port, NULL, "/api/v4/characters/stale8/expectation", &b),
                     200);
    free(b);
    assert_true(TU_WAIT_EVERY(count("SELECT COUNT(*) FROM mx.character_equipment e JOIN"
                                    " mx.game_character g ON g.ocid = e.ocid"
                                    " WHERE g.user_ign = 'stale8'") == 1,
                              10000, 100));
    /* age the stored equipment past its 15 minutes; forget L2 */
    assert_int_equal(
        mysqld_root_exec(&S.mysql, "UPDATE mx.character_equipment e JOIN mx.game_character g"
                                   " ON g.ocid = e.ocid SET e.updated_at = NOW() - INTERVAL 2 HOUR"
                                   " WHERE g.user_ign = 'stale8'"),
        0);
    redisReply *keys = redisd_cmd(&S.redis, "KEYS *");
    assert_non_null(keys);
    for (size_t k = 0; k < keys->elements; k++)
        if (strstr(keys->element[k]->str, "stale8") || strstr(keys->element[k]->str, "{eq:"))
            freeReplyObject(redisd_cmd(&S.redis, "DEL %s", keys->element[k]->str));
    freeReplyObject(keys);
    /* upstream fails every call; node 1 never had this character in L1 */
    assert_int_equal(stub_post(&S.stub, "/__stub/config?fail_rate=1&fail_status=503"), 200);
    b = NULL;
    int status = get(S.node[1].http_port, NULL, "/api/v4/characters/stale8/expectation", &b);
    assert_int_equal(stub_post(&S.stub, "/__stub/config?fail_rate=0"), 200);
    assert_int_equal(status, 200);
    assert_non_null(b);
    TU_ASSERT_CMP(strncmp(b, "{\"stale\":true,", 14), ==, 0);
    assert_non_null(strstr(b, "\"userIgn\":\"stale8\""));
    free(b);
}

static int setup(void **st)
{
    (void)st;
    return stack_start(&S, 0, 0);
}

static int teardown(void **st)
{
    (void)st;
    stack_stop(&S);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(redis_outage),
        cmocka_unit_test(mysql_outage),
        cmocka_unit_test(stale_from_l3),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
