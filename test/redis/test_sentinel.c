/* test_sentinel.c - mx_redis under Sentinel, on real processes: a master,
 * its replica and three redis-sentinel processes on loopback.
 *
 * - failover: a command client and a subscriber on a redis-sentinel:// URL
 *   follow a SIGKILLed master to the promoted replica within 5 s of the
 *   sentinels' +switch-master, a write acknowledged by WAIT before the kill
 *   is there, pub/sub works on the new master, the counters say so; the
 *   old master, restarted, is a replica and nobody goes back to it;
 * - a redis:// URL on a server demoted under the client (REPLICAOF):
 *   READONLY drops the connection, ROLE refuses the replica on every
 *   retry, and the client is back when the server is a master again;
 * - sentinels that know no such master: never up, keeps retrying, the
 *   report names the problem; an ACL user; URL parsing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "mx_testutil.h"

#include "mx_jsonw.h"
#include "rtest.h"

static bool on_port(mx_redis_t *r, int port)
{
    struct mx_redis_stats st;
    char want[32];
    mx_redis_stats(r, &st);
    snprintf(want, sizeof want, "127.0.0.1:%d", port);
    return st.connected && strcmp(st.master, want) == 0;
}

static bool report_has(const char *what)
{
    struct mx_jsonw w;
    mx_jsonw_init(&w, 1 << 16);
    mx_redis_report(&w, NULL);
    bool has = !w.err && strstr(w.buf, what) != NULL;
    mx_jsonw_fini(&w);
    return has;
}

static bool published(struct tloop *l, mx_redis_t *r, const char *ch, const char *msg)
{
    struct rec x = {0};
    if (mx_redis_command(r, rec_cb, &x, "PUBLISH %s %s", ch, msg) != 0)
        return false;
    return TL_RUN_UNTIL(l, x.calls == 1, 2000) && x.status == 0 && x.integer >= 1;
}

static void test_failover(void **state)
{
    (void)state;
    struct redisd_ha h;
    struct tloop l;
    struct msgs m = {0}, sw = {0};
    struct rec a = {0}, b = {0};
    mx_redis_t *r, *s, *watch;
    assert_int_equal(redisd_ha_start(&h, "mxtest", NULL), 0);
    tl_init(&l);
    assert_int_equal(mx_redis_open(&l.loop, h.url, NULL, &r), 0);
    assert_int_equal(mx_redis_open_subscriber(&l.loop, h.url, NULL, on_msg, &m, &s), 0);
    assert_int_equal(mx_redis_subscribe(s, "ev", false), 0);
    /* the test's own view of the switch: straight from sentinel 1 */
    assert_int_equal(
        mx_redis_open_subscriber(&l.loop, h.sentinel[1].url, NULL, on_msg, &sw, &watch), 0);
    assert_int_equal(mx_redis_subscribe(watch, "+switch-master", false), 0);
    assert_true(TL_RUN_UNTIL(&l, on_port(r, h.master.port) && on_port(s, h.master.port), 5000));
    struct mx_redis_stats st;
    assert_true(TL_RUN_UNTIL(&l, published(&l, r, "ev", "before"), 3000));
    assert_true(TL_RUN_UNTIL(&l, m.n >= 1, 2000));

    /* a write the replica acknowledged must survive the failover */
    assert_int_equal(mx_redis_command(r, rec_cb, &a, "SET acked yes"), 0);
    assert_int_equal(mx_redis_command(r, rec_cb, &b, "WAIT 1 1000"), 0);
    assert_true(TL_RUN_UNTIL(&l, b.calls == 1, 2000));
    assert_int_equal(b.integer, 1);

    redisd_kill(&h.master);
    int64_t killed = tu_now_ms();
    assert_true(TL_RUN_UNTIL(&l, sw.n >= 1, 20000));
    assert_non_null(strstr(sw.last, "mxtest"));
    assert_true(TL_RUN_UNTIL(&l, on_port(r, h.replica.port) && on_port(s, h.replica.port), 5000));
    int64_t up = tu_now_ms();
    fprintf(stderr, "# kill -> +switch-master %lld ms, switch -> both clients up %lld ms\n",
            (long long)(sw.at_ms - killed), (long long)(up - sw.at_ms));
    TU_ASSERT_CMP(up - sw.at_ms, <=, 5000);

    memset(&a, 0, sizeof a);
    assert_int_equal(mx_redis_command(r, rec_cb, &a, "GET acked"), 0);
    assert_true(TL_RUN_UNTIL(&l, a.calls == 1, 2000));
    assert_int_equal(a.status, 0);
    assert_string_equal(a.str, "yes");
    int before = m.n;
    assert_true(TL_RUN_UNTIL(&l, published(&l, r, "ev", "after"), 3000));
    assert_true(TL_RUN_UNTIL(&l, m.n > before, 2000));
    assert_string_equal(m.last, "after");
    mx_redis_stats(r, &st);
    assert_int_equal(st.failovers, 1);
    TU_ASSERT_CMP(st.reconnect_ms_last, >, 0);
    TU_ASSERT_CMP(st.reconnect_ms_max, >=, st.reconnect_ms_last);

    struct mx_jsonw w;
    mx_jsonw_init(&w, 1 << 16);
    mx_redis_report(&w, NULL);
    assert_false(w.err);
    assert_non_null(strstr(w.buf, "\"master_name\":\"mxtest\""));
    assert_non_null(strstr(w.buf, "\"switches\":1"));
    mx_jsonw_fini(&w);

    /* the old master comes back: the sentinels make it a replica; the
     * clients stay on the new master */
    assert_int_equal(redisd_restart(&h.master), 0);
    tl_run_for(&l, 1500);
    assert_true(on_port(r, h.replica.port) && on_port(s, h.replica.port));
    memset(&a, 0, sizeof a);
    assert_int_equal(mx_redis_command(r, rec_cb, &a, "SET after-restart 1"), 0);
    assert_true(TL_RUN_UNTIL(&l, a.calls == 1, 2000));
    assert_int_equal(a.status, 0);

    mx_redis_close(r, NULL, NULL);
    mx_redis_close(s, NULL, NULL);
    mx_redis_close(watch, NULL, NULL);
    assert_int_equal(tl_fini(&l), 0);
    redisd_ha_stop(&h);
}

/* a password on the data servers, none on the sentinels: the URL's password
 * goes to both, and a sentinel saying it needs none is not an error */
static void test_password(void **state)
{
    (void)state;
    struct redisd_ha h;
    struct tloop l;
    struct rec a = {0};
    mx_redis_t *r;
    assert_int_equal(redisd_ha_start(&h, "mxpw", "requirepass s3cret"), 0);
    assert_non_null(strstr(h.url, "redis-sentinel://:s3cret@"));
    tl_init(&l);
    assert_int_equal(mx_redis_open(&l.loop, h.url, NULL, &r), 0);
    assert_true(TL_RUN_UNTIL(&l, on_port(r, h.master.port), 5000));
    assert_int_equal(mx_redis_command(r, rec_cb, &a, "SET k v"), 0);
    assert_true(TL_RUN_UNTIL(&l, a.calls == 1, 2000));
    assert_int_equal(a.status, 0);
    assert_false(report_has("\"error\":\"none"));
    mx_redis_close(r, NULL, NULL);
    assert_int_equal(tl_fini(&l), 0);
    redisd_ha_stop(&h);
}

static void test_demoted(void **state)
{
    (void)state;
    struct redisd d, other;
    struct tloop l;
    struct rec a = {0};
    mx_redis_t *r;
    assert_int_equal(redisd_start(&d, NULL), 0);
    assert_int_equal(redisd_start(&other, NULL), 0);
    tl_init(&l);
    struct mx_redis_opts o = {.backoff_max_ms = 100};
    assert_int_equal(mx_redis_open(&l.loop, d.url, &o, &r), 0);
    assert_true(TL_RUN_UNTIL(&l, mx_redis_connected(r), 3000));
    assert_true(redisd_ok(&d, "REPLICAOF 127.0.0.1 %d", other.port));
    assert_int_equal(mx_redis_command(r, rec_cb, &a, "SET k v"), 0);
    assert_true(TL_RUN_UNTIL(&l, a.calls == 1, 2000));
    assert_int_equal(a.status, MX_EIO);
    assert_non_null(strstr(a.str, "READONLY"));
    struct mx_redis_stats st;
    assert_true(TL_RUN_UNTIL(&l, !mx_redis_connected(r), 1000));
    mx_redis_stats(r, &st);
    uint64_t failures = st.connect_failures;
    /* it keeps trying, and ROLE keeps refusing the replica */
    assert_true(
        TL_RUN_UNTIL(&l, (mx_redis_stats(r, &st), st.connect_failures >= failures + 3), 3000));
    assert_false(mx_redis_connected(r));
    TU_ASSERT_CMP(st.readonly, >=, 4);
    assert_true(redisd_ok(&d, "REPLICAOF NO ONE"));
    assert_true(TL_RUN_UNTIL(&l, mx_redis_connected(r), 3000));
    memset(&a, 0, sizeof a);
    assert_int_equal(mx_redis_command(r, rec_cb, &a, "SET k v"), 0);
    assert_true(TL_RUN_UNTIL(&l, a.calls == 1, 2000));
    assert_int_equal(a.status, 0);
    mx_redis_close(r, NULL, NULL);
    assert_int_equal(tl_fini(&l), 0);
    redisd_stop(&other);
    redisd_stop(&d);
}

static void test_no_such_master(void **state)
{
    (void)state;
    struct redisd d, sen;
    struct tloop l;
    mx_redis_t *r;
    char url[256];
    assert_int_equal(redisd_start(&d, NULL), 0);
    assert_int_equal(redisd_start_sentinel(&sen, "real", d.port, NULL), 0);
    snprintf(url, sizeof url, "redis-sentinel://127.0.0.1:%d/nosuch", sen.port);
    tl_init(&l);
    assert_int_equal(mx_redis_open(&l.loop, url, NULL, &r), 0);
    struct mx_redis_stats st;
    assert_true(TL_RUN_UNTIL(&l, (mx_redis_stats(r, &st), st.connect_failures >= 3), 5000));
    assert_false(mx_redis_connected(r));
    assert_true(TL_RUN_UNTIL(&l, report_has("sentinels know no master named nosuch"), 5000));
    mx_redis_close(r, NULL, NULL);

    /* the right name works through the same sentinel */
    snprintf(url, sizeof url, "redis-sentinel://127.0.0.1:%d/real", sen.port);
    assert_int_equal(mx_redis_open(&l.loop, url, NULL, &r), 0);
    assert_true(TL_RUN_UNTIL(&l, on_port(r, d.port), 5000));
    mx_redis_close(r, NULL, NULL);
    assert_int_equal(tl_fini(&l), 0);
    redisd_stop(&sen);
    redisd_stop(&d);
}

static void test_acl_user(void **state)
{
    (void)state;
    struct redisd d;
    struct tloop l;
    mx_redis_t *r, *bad;
    struct rec a = {0};
    char url[256];
    assert_int_equal(redisd_start(&d, NULL), 0);
    assert_true(redisd_ok(&d, "ACL SETUSER app on >s3cret ~* &* +@all"));
    tl_init(&l);
    snprintf(url, sizeof url, "redis://app:s3cret@127.0.0.1:%d/0", d.port);
    assert_int_equal(mx_redis_open(&l.loop, url, NULL, &r), 0);
    snprintf(url, sizeof url, "redis://app:wrong@127.0.0.1:%d/0", d.port);
    assert_int_equal(mx_redis_open(&l.loop, url, NULL, &bad), 0);
    assert_true(TL_RUN_UNTIL(&l, mx_redis_connected(r), 3000));
    assert_int_equal(mx_redis_command(r, rec_cb, &a, "ACL WHOAMI"), 0);
    assert_true(TL_RUN_UNTIL(&l, a.calls == 1, 2000));
    assert_string_equal(a.str, "app");
    struct mx_redis_stats st;
    assert_true(TL_RUN_UNTIL(&l, (mx_redis_stats(bad, &st), st.connect_failures >= 2), 3000));
    assert_false(mx_redis_connected(bad));
    mx_redis_close(r, NULL, NULL);
    mx_redis_close(bad, NULL, NULL);
    assert_int_equal(tl_fini(&l), 0);
    redisd_stop(&d);
}

static void test_urls(void **state)
{
    (void)state;
    struct mx_redis_sentinel_url u;
    assert_int_equal(mx_redis_parse_sentinel_url(
                         "redis-sentinel://app:p@ss@10.0.0.1:26379,[::1]:26380/main/3", &u),
                     0);
    assert_int_equal(u.n, 2);
    assert_string_equal(u.user, "app");
    assert_string_equal(u.password, "p@ss");
    assert_string_equal(u.host[1], "::1");
    assert_int_equal(u.port[1], 26380);
    assert_string_equal(u.master, "main");
    assert_int_equal(u.db, 3);
    assert_int_equal(mx_redis_parse_sentinel_url("redis-sentinel://:pw@h:1/m", &u), 0);
    assert_string_equal(u.password, "pw");
    assert_int_equal(mx_redis_parse_sentinel_url("redis-sentinel://:a/b@c@h:1,h:2/m", &u), 0);
    assert_string_equal(u.password, "a/b@c");
    assert_int_equal(u.n, 2);
    assert_int_equal(u.db, 0);
    const char *bad[] = {
        "redis-sentinel://h:1",
        "redis-sentinel://h:1/",
        "redis-sentinel:///m",
        "redis-sentinel://h/m",
        "redis-sentinel://h:1,/m",
        "redis-sentinel://h:1/m/16",
        "redis-sentinel://h:1/m/x",
        "redis-sentinel://h:1/m m",
        "redis-sentinel://h:0/m",
        "redis-sentinel://h:1/m/1/2",
        "redis-sentinel://pw@h:1/m",
        "redis://h:1/m",
        "redis-sentinel://"
        "h:1,h:2,h:3,h:4,h:5,h:6,h:7,h:8,h:9,h:10,h:11,h:12,h:13,h:14,h:15,h:16,h:17/m",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        if (mx_redis_parse_sentinel_url(bad[i], &u) == 0 || mx_redis_url_valid(bad[i]))
            fail_msg("accepted %s", bad[i]);
    }
    assert_true(mx_redis_url_valid("redis://127.0.0.1:6379/0"));
    assert_true(mx_redis_url_valid("redis-sentinel://127.0.0.1:26379/mymaster"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_urls),           cmocka_unit_test(test_acl_user),
        cmocka_unit_test(test_demoted),        cmocka_unit_test(test_password),
        cmocka_unit_test(test_no_such_master), cmocka_unit_test(test_failover),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
