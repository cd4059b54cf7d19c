/* test_restart.c - mx_redis when Redis goes away: fail fast while down,
 * reconnect within 2 s of a restart on the same port, state callbacks,
 * scripts after the restart, the subscriber resubscribed, a hung (SIGSTOP)
 * Redis detected by the stall check and the connect timeout, and a
 * password-protected Redis (right and wrong password). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "mx_testutil.h"

#include "rtest.h"

struct states {
    int ups, downs;
};

static void on_state(mx_redis_t *r, bool up, void *arg)
{
    struct states *s = arg;
    (void)r;
    if (up)
        s->ups++;
    else
        s->downs++;
}

static bool publish_until(struct tloop *l, struct redisd *d, const char *ch, const char *msg)
{
    int64_t dl = tu_now_ms() + 2000;
    while (tu_now_ms() < dl) {
        redisReply *rep = redisd_cmd(d, "PUBLISH %s %s", ch, msg);
        long long n = rep ? rep->integer : 0;
        if (rep)
            freeReplyObject(rep);
        if (n != 0)
            return n == 1;
        tl_run_for(l, 10);
    }
    return false;
}

static void test_restart(void **state)
{
    (void)state;
    struct redisd d;
    struct tloop l;
    struct states st = {0}, sst = {0};
    struct msgs m = {0};
    struct rec a = {0}, b = {0};
    mx_redis_t *r, *s;
    mx_redis_script_t *sc;
    assert_int_equal(redisd_start(&d, NULL), 0);
    tl_init(&l);
    struct mx_redis_opts o = {.on_state = on_state, .state_arg = &st, .timeout_ms = 500};
    struct mx_redis_opts so = {.on_state = on_state, .state_arg = &sst};
    assert_int_equal(mx_redis_open(&l.loop, d.url, &o, &r), 0);
    assert_int_equal(mx_redis_open_subscriber(&l.loop, d.url, &so, on_msg, &m, &s), 0);
    assert_int_equal(mx_redis_subscribe(s, "events", false), 0);
    assert_true(TL_RUN_UNTIL(&l, st.ups == 1 && sst.ups == 1, 3000));
    assert_int_equal(mx_redis_script(r, "return ARGV[1] .. '!'", &sc), 0);
    const char *argv[1] = {"hi"};
    assert_int_equal(mx_redis_eval(r, sc, rec_cb, &a, 0, 1, argv, NULL), 0);
    assert_true(TL_RUN_UNTIL(&l, a.calls == 1, 2000));
    assert_string_equal(a.str, "hi!");
    assert_true(publish_until(&l, &d, "events", "one"));
    assert_true(TL_RUN_UNTIL(&l, m.n == 1, 2000));

    /* a command in flight when Redis dies fails once with MX_EUNAVAIL */
    assert_true(redisd_ok(&d, "CLIENT PAUSE 2000 ALL"));
    memset(&a, 0, sizeof(a));
    assert_int_equal(mx_redis_command(r, rec_cb, &a, "PING"), 0);
    tl_run_for(&l, 20);
    redisd_kill(&d);
    assert_true(TL_RUN_UNTIL(&l, st.downs == 1 && sst.downs == 1, 2000));
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.status, MX_EUNAVAIL);
    assert_false(mx_redis_connected(r));

    /* down: fail fast, nothing buffered; retries are spaced by backoff */
    int64_t t0 = tu_now_ms();
    assert_int_equal(mx_redis_command(r, rec_cb, &b, "PING"), MX_EUNAVAIL);
    assert_int_equal(mx_redis_eval(r, sc, rec_cb, &b, 0, 1, argv, NULL), MX_EUNAVAIL);
    TU_ASSERT_CMP(tu_now_ms() - t0, <, 50);
    tl_run_for(&l, 1500);
    struct mx_redis_stats rs;
    mx_redis_stats(r, &rs);
    assert_int_equal(rs.refused_down, 2);
    assert_int_equal(rs.lost, 1);
    assert_int_equal(rs.disconnects, 1);
    /* 50 ms doubling to a 1 s cap, jittered: 2..8 attempts in 1.5 s */
    if (rs.connect_failures < 2 || rs.connect_failures > 8)
        fail_msg("connect_failures %llu in 1.5 s", (unsigned long long)rs.connect_failures);
    assert_int_equal(b.calls, 0);

    /* restart on the same port: reconnected within 2 s */
    assert_int_equal(redisd_restart(&d), 0);
    t0 = tu_now_ms();
    assert_true(TL_RUN_UNTIL(&l, st.ups == 2 && sst.ups == 2, 2000));
    int64_t took = tu_now_ms() - t0;
    print_message("reconnected in %lld ms\n", (long long)took);
    TU_ASSERT_CMP(took, <, 2000);

    /* scripts: the new Redis has none; the client reloads them */
    memset(&a, 0, sizeof(a));
    assert_int_equal(mx_redis_eval(r, sc, rec_cb, &a, 0, 1, argv, NULL), 0);
    assert_true(TL_RUN_UNTIL(&l, a.calls == 1, 2000));
    assert_int_equal(a.status, 0);
    assert_string_equal(a.str, "hi!");
    /* and the subscriber resubscribed by itself */
    assert_true(publish_until(&l, &d, "events", "two"));
    assert_true(TL_RUN_UNTIL(&l, m.n == 2, 2000));
    assert_string_equal(m.last, "two");

    TL_CLOSE(&l, s);
    TL_CLOSE(&l, r);
    assert_int_equal(st.downs, 1); /* closing is not reported as down */
    assert_int_equal(tl_fini(&l), 0);
    redisd_stop(&d);
}

/* A hung Redis (SIGSTOP): the kernel still accepts connections, nothing
 * answers. Commands time out, the stall check drops the connection, the
 * connect timeout bounds each attempt; SIGCONT brings it back. */
static void test_hung_redis(void **state)
{
    (void)state;
    struct redisd d;
    struct tloop l;
    struct states st = {0};
    struct rec a = {0};
    mx_redis_t *r;
    assert_int_equal(redisd_start(&d, NULL), 0);
    tl_init(&l);
    struct mx_redis_opts o = {.on_state = on_state,
                              .state_arg = &st,
                              .timeout_ms = 150,
                              .stall_ms = 400,
                              .connect_timeout_ms = 200};
    assert_int_equal(mx_redis_open(&l.loop, d.url, &o, &r), 0);
    assert_true(TL_RUN_UNTIL(&l, st.ups == 1, 2000));
    kill(d.pid, SIGSTOP);
    int timeouts = 0;
    int64_t t0 = tu_now_ms();
    while (st.downs == 0 && tu_now_ms() - t0 < 3000) {
        memset(&a, 0, sizeof(a));
        if (mx_redis_command(r, rec_cb, &a, "PING") == 0) {
            assert_true(TL_RUN_UNTIL(&l, a.calls == 1, 1000));
            assert_int_equal(a.status, MX_ETIMEDOUT);
            timeouts++;
        }
        tl_run_for(&l, 10);
    }
    assert_int_equal(st.downs, 1);
    int64_t took = tu_now_ms() - t0;
    TU_ASSERT_CMP(took, >=, 400);
    TU_ASSERT_CMP(took, <, 1500);
    TU_ASSERT_CMP(timeouts, >=, 2);
    tl_run_for(&l, 800);
    struct mx_redis_stats rs;
    mx_redis_stats(r, &rs);
    TU_ASSERT_CMP(rs.connect_failures, >=, 1); /* handshakes that timed out */
    assert_false(mx_redis_connected(r));
    kill(d.pid, SIGCONT);
    assert_true(TL_RUN_UNTIL(&l, st.ups == 2, 2500));
    memset(&a, 0, sizeof(a));
    assert_int_equal(mx_redis_command(r, rec_cb, &a, "PING"), 0);
    assert_true(TL_RUN_UNTIL(&l, a.calls == 1, 1000));
    assert_int_equal(a.status, 0);
    TL_CLOSE(&l, r);
    assert_int_equal(tl_fini(&l), 0);
    redisd_stop(&d);
}

static void test_auth(void **state)
{
    (void)state;
    struct redisd d;
    struct tloop l;
    struct rec a = {0};
    mx_redis_t *r, *bad, *none;
    char url[256];
    assert_int_equal(redisd_start(&d, "requirepass s3cr:et@x"), 0);
    assert_string_equal(d.password, "s3cr:et@x");
    tl_init(&l);
    assert_int_equal(mx_redis_open(&l.loop, d.url, NULL, &r), 0);
    snprintf(url, sizeof(url), "redis://:wrong@127.0.0.1:%d/2", d.port);
    assert_int_equal(mx_redis_open(&l.loop, url, NULL, &bad), 0);
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d/2", d.port);
    assert_int_equal(mx_redis_open(&l.loop, url, NULL, &none), 0);
    assert_true(TL_RUN_UNTIL(&l, mx_redis_connected(r), 2000));
    assert_int_equal(mx_redis_command(r, rec_cb, &a, "SET k:auth 1"), 0);
    assert_true(TL_RUN_UNTIL(&l, a.calls == 1, 2000));
    assert_int_equal(a.status, 0);
    /* with a wrong or no password the handshake fails: never up, and retried */
    tl_run_for(&l, 500);
    assert_false(mx_redis_connected(bad));
    assert_false(mx_redis_connected(none));
    assert_int_equal(mx_redis_command(bad, rec_cb, &a, "PING"), MX_EUNAVAIL);
    struct mx_redis_stats rs;
    mx_redis_stats(bad, &rs);
    TU_ASSERT_CMP(rs.connect_failures, >=, 2);
    assert_int_equal(rs.connects, 0);
    mx_redis_stats(none, &rs);
    TU_ASSERT_CMP(rs.connect_failures, >=, 2);
    TL_CLOSE(&l, bad);
    TL_CLOSE(&l, none);
    TL_CLOSE(&l, r);
    assert_int_equal(tl_fini(&l), 0);
    redisd_stop(&d);
}

struct closer {
    int downs, done;
};

static void close_on_down(mx_redis_t *r, bool up, void *arg)
{
    struct closer *c = arg;
    if (!up) {
        c->downs++;
        mx_redis_close(r, done_cb, &c->done);
    }
}

/* An owner may close the client from its down callback (as an actor's stop
 * would): no reconnect follows, every handle is closed. */
static void test_close_from_state_cb(void **state)
{
    (void)state;
    struct redisd d;
    struct tloop l;
    struct closer c = {0};
    mx_redis_t *r;
    assert_int_equal(redisd_start(&d, NULL), 0);
    tl_init(&l);
    struct mx_redis_opts o = {.on_state = close_on_down, .state_arg = &c};
    assert_int_equal(mx_redis_open(&l.loop, d.url, &o, &r), 0);
    assert_true(TL_RUN_UNTIL(&l, mx_redis_connected(r), 2000));
    redisd_kill(&d);
    assert_true(TL_RUN_UNTIL(&l, c.done == 1, 2000));
    assert_int_equal(c.downs, 1);
    assert_int_equal(tl_fini(&l), 0);
    redisd_stop(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_restart),
        cmocka_unit_test(test_hung_redis),
        cmocka_unit_test(test_auth),
        cmocka_unit_test(test_close_from_state_cb),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
