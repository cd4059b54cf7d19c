/* cache_cluster_test.c - the cache tiers across two real mxnode processes
 * sharing a real redis-server, mariadbd and mxstub (issue 5, tests 1, 2, 5
 * and 6): cluster-wide single-flight under 500 concurrent requests, a latch
 * holder killed mid-load, invalidation after a recalculation, and damaged
 * values in Redis and MySQL that must be evicted and reloaded, never served. */
#define _GNU_SOURCE
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
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

#define LATCH_TTL_MS 3000
#define STUB_LATENCY_MS 5000

static struct stack S;

static double ms_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

static long long eq_calls(void)
{
    return stub_stat(&S.stub, "/maplestory/v1/character/item-equipment");
}

static long long id_calls(void)
{
    return stub_stat(&S.stub, "/maplestory/v1/id");
}

/* 1. 500 concurrent cold requests, half on each node: one id call, one
 * item-equipment call, and every answer is the same document. */
static void single_flight_500(void **st)
{
    (void)st;
    assert_int_equal(stub_post(&S.stub, "/__stub/reset"), 200);
    /* a little upstream latency so that the requests really overlap */
    assert_int_equal(stub_post(&S.stub, "/__stub/config?latency_ms=200"), 200);
    enum { N = 500 };
    static struct mreq r[N];
    for (int i = 0; i < N; i++) {
        r[i] = (struct mreq){.port = S.node[i % 2].http_port};
        snprintf(r[i].path, sizeof r[i].path, "/api/v4/characters/flight500/expectation");
    }
    assert_int_equal(mreq_run(r, N, 60000), N);
    char total0[64] = "", when0[64] = "";
    for (int i = 0; i < N; i++) {
        if (r[i].status != 200)
            fail_msg("request %d: status %d body %.200s", i, r[i].status, r[i].body);
        char total[64], when[64];
        assert_int_equal(json_num(r[i].body, "totalExpectedCost", total, sizeof total), 0);
        assert_int_equal(json_num(r[i].body, "calculatedAt", when, sizeof when), 0);
        if (i == 0) {
            strcpy(total0, total);
            strcpy(when0, when);
        }
        assert_string_equal(total, total0);
        assert_string_equal(when, when0); /* computed once, in the cluster */
    }
    assert_int_equal(id_calls(), 1);
    assert_int_equal(eq_calls(), 1);
    mreq_free(r, N);
    assert_int_equal(stub_post(&S.stub, "/__stub/config?latency_ms=0"), 200);
    /* the document is in L2 under its hash-tagged key, framed */
    TU_ASSERT_CMP(redis_strlen(&S.redis, "mx:mx:{exp:flight500}:d:0:111"), >, 100);
}

/* 5. Recalculate on node 0; the next read on node 1 is the new document. */
static void invalidation(void **st)
{
    (void)st;
    const char *path = "/api/v4/characters/inval5/expectation";
    char *b0 = NULL, *b1 = NULL, *b2 = NULL, *b3 = NULL;
    char w0[64], w1[64], w2[64], w3[64];
    assert_int_equal(get(S.node[1].http_port, NULL, path, &b0), 200);
    assert_int_equal(get(S.node[0].http_port, NULL, path, &b1), 200);
    json_num(b0, "calculatedAt", w0, sizeof w0);
    json_num(b1, "calculatedAt", w1, sizeof w1);
    assert_string_equal(w0, w1); /* node 0 read node 1's document from L2 */
    /* node 1 now has it in L1 */
    assert_int_equal(get(S.node[1].http_port, NULL, path, &b3), 200);
    json_num(b3, "calculatedAt", w3, sizeof w3);
    assert_string_equal(w3, w0);
    free(b3);
    usleep(20000); /* calculatedAt has millisecond resolution */
    assert_int_equal(
        get(S.node[0].http_port, "POST", "/api/v4/characters/inval5/expectation/recalculate", &b2),
        200);
    json_num(b2, "calculatedAt", w2, sizeof w2);
    assert_string_not_equal(w2, w0);
    assert_int_equal(get(S.node[1].http_port, NULL, path, &b3), 200);
    json_num(b3, "calculatedAt", w3, sizeof w3);
    assert_string_equal(w3, w2);
    free(b3);
    /* and node 0's other presets were dropped with it: preset 1 recomputed
     * after the recalculation carries a new time too */
    free(b0);
    free(b1);
    free(b2);
}

static void set_raw(const char *key, const char *val, size_t len)
{
    redisReply *rep = redisd_cmd(&S.redis, "SET %s %b", key, val, len);
    assert_non_null(rep);
    freeReplyObject(rep);
}

/* 6a. A damaged or truncated L2 document is evicted and reloaded. */
static void corrupt_l2(void **st)
{
    (void)st;
    for (int preset = 1; preset <= 2; preset++) {
        char path[128], key[128], t0[64], t1[64];
        snprintf(path, sizeof path, "/api/v4/characters/corrupt6/expectation/preset/%d", preset);
        snprintf(key, sizeof key, "mx:mx:{exp:corrupt6}:d:%d:111", preset);
        char *b0 = NULL, *b1 = NULL;
        assert_int_equal(get(S.node[0].http_port, NULL, path, &b0), 200);
        /* the value is stored right after the answer went out: poll */
        long long len = 0;
        for (int k = 0; k < 100 && len <= 100; k++) {
            len = redis_strlen(&S.redis, key);
            if (len <= 100)
                usleep(10000);
        }
        TU_ASSERT_CMP(len, >, 100);
        if (preset == 1) {
            /* right magic, garbage after it */
            set_raw(key, "MXC1\x10\x00\x00\x00garbagegarbagegarbagegarbage", 33);
        } else {
            /* truncated to half */
            redisReply *rep = redisd_cmd(&S.redis, "GETRANGE %s 0 %lld", key, len / 2);
            assert_non_null(rep);
            set_raw(key, rep->str, rep->len);
            freeReplyObject(rep);
        }
        assert_int_equal(get(S.node[1].http_port, NULL, path, &b1), 200);
        TU_ASSERT_CMP(b1[0], ==, '{');
        assert_int_equal(json_num(b0, "totalExpectedCost", t0, sizeof t0), 0);
        assert_int_equal(json_num(b1, "totalExpectedCost", t1, sizeof t1), 0);
        assert_string_equal(t0, t1);
        /* the reload stores a good value again (after the answer: poll) */
        redisReply *rep = NULL;
        for (int k = 0; k < 50; k++) {
            rep = redisd_cmd(&S.redis, "GET %s", key);
            assert_non_null(rep);
            if (rep->type == REDIS_REPLY_STRING)
                break;
            freeReplyObject(rep);
            rep = NULL;
            usleep(20000);
        }
        assert_non_null(rep);
        assert_int_equal(rep->type, REDIS_REPLY_STRING);
        TU_ASSERT_CMP(rep->len, >, 100);
        TU_ASSERT_CMP(memcmp(rep->str, "MXC1", 4), ==, 0);
        freeReplyObject(rep);
        free(b0);
        free(b1);
    }
}

/* 6c. A damaged L2 ocid value (not a frame at all, then the right magic
 * with garbage after it) is evicted and the ocid fetched again;
 * the node serves on (it used to free an uninitialised pointer here). */
static void corrupt_l2_ocid(void **st)
{
    (void)st;
    static const struct {
        const char *ign, *val;
        size_t len;
    } cases[] = {
        {"ocidbad6a", "garbage, not a frame", 20},
        {"ocidbad6b", "MXC1\x10\x00\x00\x00garbagegarbagegarbagegarbage", 33},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char path[128], okey[128], dkey[128], t0[64], t1[64];
        const char *ign = cases[c].ign;
        snprintf(path, sizeof path, "/api/v4/characters/%s/expectation", ign);
        snprintf(okey, sizeof okey, "mx:mx:{exp:%s}:o", ign);
        snprintf(dkey, sizeof dkey, "mx:mx:{exp:%s}:d:0:111", ign);
        char *b0 = NULL, *b1 = NULL;
        assert_int_equal(get(S.node[0].http_port, NULL, path, &b0), 200);
        long long olen = 0; /* stored after the answer: poll */
        for (int k = 0; k < 100 && olen <= 0; k++) {
            olen = redis_strlen(&S.redis, okey);
            if (olen <= 0)
                usleep(10000);
        }
        TU_ASSERT_CMP(olen, >, 0);
        for (int k = 0; k < 100 && redis_strlen(&S.redis, dkey) <= 0; k++)
            usleep(10000);
        /* node 1 has nothing in L1: it must read the damaged ocid */
        set_raw(okey, cases[c].val, cases[c].len);
        redisReply *rep = redisd_cmd(&S.redis, "DEL %s", dkey);
        assert_non_null(rep);
        assert_int_equal(rep->type, REDIS_REPLY_INTEGER);
        assert_int_equal(rep->integer, 1);
        freeReplyObject(rep);
        long long ids = id_calls();
        assert_int_equal(get(S.node[1].http_port, NULL, path, &b1), 200);
        assert_int_equal(json_num(b0, "totalExpectedCost", t0, sizeof t0), 0);
        assert_int_equal(json_num(b1, "totalExpectedCost", t1, sizeof t1), 0);
        assert_string_equal(t0, t1);
        assert_int_equal(id_calls(), ids + 1); /* the ocid came from upstream again */
        /* and a good frame replaced the damaged value (after the answer: poll) */
        rep = NULL;
        for (int k = 0; k < 100; k++) {
            rep = redisd_cmd(&S.redis, "GET %s", okey);
            assert_non_null(rep);
            if (rep->type == REDIS_REPLY_STRING && rep->len > 4 && !memcmp(rep->str, "MXC1", 4) &&
                !(rep->len == (size_t)cases[c].len && !memcmp(rep->str, cases[c].val, rep->len)))
                break;
            freeReplyObject(rep);
            rep = NULL;
            usleep(10000);
        }
        assert_non_null(rep);
        freeReplyObject(rep);
        free(b0);
        free(b1);
    }
}

static long long sqlint(const char *fmt, const char *arg)
{
    char sql[512];
    snprintf(sql, sizeof sql, fmt, arg);
    return mysqld_root_int(&S.mysql, sql);
}

static bool wait_sql(const char *fmt, const char *arg, long long want, int timeout_ms)
{
    double t0 = ms_now();
    while (ms_now() - t0 < timeout_ms) {
        if (sqlint(fmt, arg) == want)
            return true;
        usleep(100000);
    }
    return false;
}

/* 6b. A damaged gzip row in character_equipment is detected, deleted and
 * reloaded from upstream, never served. */
static void corrupt_l3(void **st)
{
    (void)st;
    char *b0 = NULL, *b1 = NULL, ocid[64] = "";
    assert_int_equal(get(S.node[0].http_port, NULL, "/api/v4/characters/l3bad6/expectation", &b0),
                     200);
    const char *q_rows = "SELECT COUNT(*) FROM mx.character_equipment e JOIN mx.game_character g"
                         " ON g.ocid = e.ocid WHERE g.user_ign = '%s'";
    assert_true(wait_sql(q_rows, "l3bad6", 1, 10000));
    assert_int_equal(
        mysqld_root_exec(&S.mysql, "UPDATE mx.character_equipment e JOIN mx.game_character g"
                                   " ON g.ocid = e.ocid SET e.equipment ="
                                   " SUBSTRING(e.equipment, 1, 200) WHERE g.user_ign = 'l3bad6'"),
        0);
    /* L2 forgets the equipment; node 1 has never seen it: it must go to L3 */
    assert_int_equal(stub_ocid(&S.stub, "l3bad6", ocid), 200);
    char key[128];
    snprintf(key, sizeof key, "mx:mx:{eq:%s}", ocid);
    assert_true(redisd_ok(&S.redis, "DEL %s", key));
    long long before = eq_calls();
    assert_int_equal(
        get(S.node[1].http_port, NULL, "/api/v4/characters/l3bad6/expectation/preset/3", &b1), 200);
    TU_ASSERT_CMP(b1[0], ==, '{');
    assert_non_null(strstr(b1, "\"presetNo\":3"));
    assert_int_equal(eq_calls(), before + 1); /* reloaded, not served from the bad row */
    /* and the row was rewritten with good data */
    assert_true(wait_sql("SELECT LENGTH(e.equipment) > 1000 FROM mx.character_equipment e JOIN"
                         " mx.game_character g ON g.ocid = e.ocid WHERE g.user_ign = '%s'",
                         "l3bad6", 1, 10000));
    free(b0);
    free(b1);
}

/* whether node i holds the latch of value key `key`: its token in Redis
 * starts with the node's id (actors/cache: "<node id>:<shard>:<flight>") */
static bool latch_held_by(redisContext **c, const char *key, int i)
{
    char want[24];
    snprintf(want, sizeof want, "%016llx:", S.node[i].node_id);
    redisReply *r = redisd_kept_cmd(c, &S.redis, "GET %s:L", key);
    bool held = r && r->type == REDIS_REPLY_STRING && strncmp(r->str, want, strlen(want)) == 0;
    if (r)
        freeReplyObject(r);
    return held;
}

struct batch {
    struct mreq r[20];
    int done;
};

/* 20 requests for ign's document on node i */
static void batch_init(struct batch *b, int i, const char *ign)
{
    for (int k = 0; k < 20; k++) {
        b->r[k] = (struct mreq){.port = S.node[i].http_port};
        snprintf(b->r[k].path, sizeof b->r[k].path, "/api/v4/characters/%s/expectation", ign);
    }
}

static void *run_batch(void *arg)
{
    struct batch *b = arg;
    b->done = mreq_run(b->r, 20, 40000);
    return NULL;
}

/* A load slower than the latch TTL keeps its latch (renewed while it
 * runs): the other node waits for it instead of loading a second time. */
static void slow_load_keeps_latch(void **st)
{
    (void)st;
    /* id + item-equipment at 2.5 s each: 5 s, beyond the 3 s latch TTL */
    assert_int_equal(stub_post(&S.stub, "/__stub/config?latency_ms=2500"), 200);
    long long id0 = stub_stat(&S.stub, "/maplestory/v1/id");
    long long eq0 = stub_stat(&S.stub, "/maplestory/v1/character/item-equipment");
    static struct batch a, b;
    batch_init(&a, 0, "slow7");
    batch_init(&b, 1, "slow7");
    pthread_t ta, tb;
    pthread_create(&ta, NULL, run_batch, &a);
    redisContext *rc = NULL;
    if (!TU_WAIT_EVERY(latch_held_by(&rc, "mx:mx:{exp:slow7}:d:0:111", 0), 10000, 5))
        fail_msg("node 0 never held the latch of slow7");
    redisFree(rc);
    pthread_create(&tb, NULL, run_batch, &b);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    for (int i = 0; i < 20; i++) {
        assert_int_equal(a.r[i].status, 200);
        assert_int_equal(b.r[i].status, 200);
    }
    assert_int_equal(stub_stat(&S.stub, "/maplestory/v1/id"), id0 + 1);
    assert_int_equal(stub_stat(&S.stub, "/maplestory/v1/character/item-equipment"), eq0 + 1);
    mreq_free(a.r, 20);
    mreq_free(b.r, 20);
    assert_int_equal(stub_post(&S.stub, "/__stub/config?latency_ms=0"), 200);
}

/* 2. The latch holder dies mid-load (upstream 5 s): the other node's
 * waiting requests complete within latch TTL + the upstream time. */
static void holder_killed(void **st)
{
    (void)st;
    assert_int_equal(stub_post(&S.stub, "/__stub/config?latency_ms=5000"), 200);
    static struct batch a, b;
    batch_init(&a, 0, "killed2");
    batch_init(&b, 1, "killed2");
    pthread_t ta, tb;
    pthread_create(&ta, NULL, run_batch, &a);
    /* the precondition, proven: node 0 holds the latch (its token in Redis)
     * and waits on upstream ... */
    const char *key = "mx:mx:{exp:killed2}:d:0:111";
    redisContext *rc = NULL;
    if (!TU_WAIT_EVERY(latch_held_by(&rc, key, 0), 10000, 5))
        fail_msg("node 0 never held the latch of killed2");
    long long waits = cache_counter(S.node[1].http_port, "latch_wait");
    TU_ASSERT_CMP(waits, >=, 0);
    pthread_create(&tb, NULL, run_batch, &b);
    /* ... node 1's load waits on it (its latch_wait counter) ... */
    assert_true(TU_WAIT_EVERY(cache_counter(S.node[1].http_port, "latch_wait") > waits, 10000, 20));
    /* ... and node 0 still holds it when it dies */
    if (!latch_held_by(&rc, key, 0))
        fail_msg("node 0 no longer held the latch of killed2 when it was killed");
    redisFree(rc);
    node_kill(&S.node[0]);
    pthread_join(tb, NULL);
    pthread_join(ta, NULL);
    assert_int_equal(b.done, 20);
    /* the load node 1 does itself: id + item-equipment, 5 s each */
    double bound = LATCH_TTL_MS + 2 * STUB_LATENCY_MS + 2500;
    for (int i = 0; i < 20; i++) {
        if (b.r[i].status != 200)
            fail_msg("request %d on node 1: %d %.200s", i, b.r[i].status, b.r[i].body);
        if (b.r[i].ms > bound)
            fail_msg("request %d took %.0f ms (bound %.0f)", i, b.r[i].ms, bound);
    }
    mreq_free(a.r, 20);
    mreq_free(b.r, 20);
    assert_int_equal(stub_post(&S.stub, "/__stub/config?latency_ms=0"), 200);
}

static int setup(void **st)
{
    (void)st;
    return stack_start(&S, LATCH_TTL_MS, 8000);
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
        cmocka_unit_test(single_flight_500), cmocka_unit_test(invalidation),
        cmocka_unit_test(corrupt_l2),        cmocka_unit_test(corrupt_l2_ocid),
        cmocka_unit_test(corrupt_l3),        cmocka_unit_test(slow_load_keeps_latch),
        cmocka_unit_test(holder_killed),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
