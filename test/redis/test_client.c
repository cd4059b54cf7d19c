/* test_client.c - mx_redis against a real redis-server: commands, binary
 * values, error replies, SELECT, bad URLs, timeouts with late replies, the
 * pending bound, close with pending commands, scripts and NOSCRIPT, pub/sub. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "mx_testutil.h"

#include "rtest.h"

static struct redisd srv;

static int group_setup(void **state)
{
    (void)state;
    return redisd_start(&srv, NULL);
}

static int group_teardown(void **state)
{
    (void)state;
    redisd_stop(&srv);
    return 0;
}

static mx_redis_t *open_up(struct tloop *l, const char *url, const struct mx_redis_opts *o)
{
    mx_redis_t *r = NULL;
    assert_int_equal(mx_redis_open(&l->loop, url, o, &r), 0);
    assert_true(TL_RUN_UNTIL(l, mx_redis_connected(r), 3000));
    return r;
}

static void test_commands(void **state)
{
    (void)state;
    struct tloop l;
    struct rec a = {0}, b = {0}, c = {0}, e = {0};
    tl_init(&l);
    mx_redis_t *r = open_up(&l, srv.url, NULL);

    assert_int_equal(mx_redis_command(r, rec_cb, &a, "SET %s %s", "k:basic", "hello"), 0);
    assert_int_equal(mx_redis_command(r, rec_cb, &b, "GET %s", "k:basic"), 0);
    assert_int_equal(mx_redis_command(r, rec_cb, &c, "INCRBY %s %d", "k:ctr", 5), 0);
    assert_true(TL_RUN_UNTIL(&l, c.calls == 1, 2000));
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.status, 0);
    assert_int_equal(a.type, REDIS_REPLY_STATUS);
    assert_string_equal(a.str, "OK");
    assert_int_equal(b.status, 0);
    assert_string_equal(b.str, "hello");
    assert_int_equal(c.type, REDIS_REPLY_INTEGER);
    assert_int_equal(c.integer, 5);

    /* an error reply: MX_EIO with the text available */
    assert_int_equal(mx_redis_command(r, rec_cb, &e, "INCR %s", "k:basic"), 0);
    assert_true(TL_RUN_UNTIL(&l, e.calls == 1, 2000));
    assert_int_equal(e.status, MX_EIO);
    assert_int_equal(e.type, REDIS_REPLY_ERROR);
    assert_non_null(strstr(e.str, "not an integer"));

    /* unknown command and a malformed format */
    memset(&e, 0, sizeof(e));
    assert_int_equal(mx_redis_command(r, rec_cb, &e, "NOSUCHCOMMAND x"), 0);
    assert_true(TL_RUN_UNTIL(&l, e.calls == 1, 2000));
    assert_int_equal(e.status, MX_EIO);
    assert_int_equal(mx_redis_command(r, rec_cb, &e, ""), MX_EINVAL);
    assert_int_equal(mx_redis_argv(r, rec_cb, &e, 0, NULL, NULL), MX_EINVAL);

    /* fire and forget still counts */
    assert_int_equal(mx_redis_command(r, NULL, NULL, "SET %s 1", "k:ff"), 0);
    struct mx_redis_stats st;
    assert_true(TL_RUN_UNTIL(&l, (mx_redis_stats(r, &st), st.pending == 0), 2000));
    assert_int_equal(st.commands, 6);
    assert_int_equal(st.replies, 4);
    assert_int_equal(st.errors, 2);
    assert_int_equal(st.connects, 1);
    assert_true(st.connected);

    TL_CLOSE(&l, r);
    assert_int_equal(tl_fini(&l), 0);
}

static void test_binary_values(void **state)
{
    (void)state;
    struct tloop l;
    struct rec a = {0}, b = {0}, c = {0};
    tl_init(&l);
    mx_redis_t *r = open_up(&l, srv.url, NULL);

    /* every byte value, NULs and CRLFs included, via argv and via %b */
    char bin[256];
    for (int i = 0; i < 256; i++)
        bin[i] = (char)i;
    const char *key = "k:bin\r\n\0x";
    const char *argv[3] = {"SET", key, bin};
    size_t lens[3] = {3, 9, sizeof(bin)};
    assert_int_equal(mx_redis_argv(r, rec_cb, &a, 3, argv, lens), 0);
    const char *gargv[2] = {"GET", key};
    size_t glens[2] = {3, 9};
    assert_int_equal(mx_redis_argv(r, rec_cb, &b, 2, gargv, glens), 0);
    assert_true(TL_RUN_UNTIL(&l, b.calls == 1, 2000));
    assert_int_equal(a.status, 0);
    assert_int_equal(b.status, 0);
    assert_int_equal(b.len, 256);
    assert_memory_equal(b.str, bin, 256);

    /* a 1 MiB value through %b */
    size_t big = 1 << 20;
    char *v = malloc(big);
    for (size_t i = 0; i < big; i++)
        v[i] = (char)(i * 7);
    assert_int_equal(mx_redis_command(r, rec_cb, &c, "SET k:big %b", v, big), 0);
    assert_true(TL_RUN_UNTIL(&l, c.calls == 1, 3000));
    assert_int_equal(c.status, 0);
    redisReply *rep = redisd_cmd(&srv, "GET k:big");
    assert_non_null(rep);
    assert_int_equal(rep->len, big);
    assert_memory_equal(rep->str, v, big);
    freeReplyObject(rep);
    free(v);

    TL_CLOSE(&l, r);
    assert_int_equal(tl_fini(&l), 0);
}

static void test_select_db(void **state)
{
    (void)state;
    struct tloop l;
    struct rec a = {0};
    char url[128];
    tl_init(&l);
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d/7", srv.port);
    mx_redis_t *r = open_up(&l, url, NULL);
    assert_int_equal(mx_redis_command(r, rec_cb, &a, "SET k:db seven"), 0);
    assert_true(TL_RUN_UNTIL(&l, a.calls == 1, 2000));
    assert_int_equal(a.status, 0);
    redisReply *rep = redisd_cmd(&srv, "EXISTS k:db"); /* db 0 */
    assert_int_equal(rep->integer, 0);
    freeReplyObject(rep);
    redisContext *c = redisConnect("127.0.0.1", srv.port);
    freeReplyObject(redisCommand(c, "SELECT 7"));
    rep = redisCommand(c, "GET k:db");
    assert_string_equal(rep->str, "seven");
    freeReplyObject(rep);
    redisFree(c);
    TL_CLOSE(&l, r);
    assert_int_equal(tl_fini(&l), 0);
}

static void test_bad_urls(void **state)
{
    (void)state;
    struct tloop l;
    mx_redis_t *r = NULL;
    const char *bad[] = {
        NULL,
        "",
        "http://127.0.0.1:6379",
        "redis://",
        "redis://127.0.0.1",
        "redis://127.0.0.1:",
        "redis://127.0.0.1:0",
        "redis://127.0.0.1:65536",
        "redis://127.0.0.1:6379x",
        "redis://127.0.0.1:6379/",
        "redis://127.0.0.1:6379/16",
        "redis://127.0.0.1:6379/-1",
        "redis://127.0.0.1:6379/1x",
        "redis://:6379",
        "redis://pw@127.0.0.1:6379",
        "redis://[::1:6379",
        "redis://ho st:6379",
        "redis://127.0.0.1:-5",
    };
    tl_init(&l);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = mx_redis_open(&l.loop, bad[i], NULL, &r);
        if (rc != MX_EINVAL)
            fail_msg("url '%s' accepted (rc %d)", bad[i] ? bad[i] : "(null)", rc);
    }
    char longurl[MX_REDIS_URL_MAX + 32];
    memset(longurl, 'a', sizeof(longurl));
    memcpy(longurl, "redis://", 8);
    longurl[sizeof(longurl) - 1] = '\0';
    assert_int_equal(mx_redis_open(&l.loop, longurl, NULL, &r), MX_EINVAL);

    char host[64], user[32], pw[64];
    int port, db;
    assert_int_equal(mx_redis_parse_url("redis://u1:p@ss@w:rd@[::1]:6380/3", host, sizeof(host),
                                        &port, user, sizeof(user), pw, sizeof(pw), &db),
                     0);
    assert_string_equal(host, "::1");
    assert_string_equal(user, "u1");
    assert_string_equal(pw, "p@ss@w:rd");
    assert_int_equal(port, 6380);
    assert_int_equal(db, 3);
    assert_int_equal(mx_redis_parse_url("redis://:secret@localhost:6379", host, sizeof(host), &port,
                                        user, sizeof(user), pw, sizeof(pw), &db),
                     0);
    assert_string_equal(user, "");
    assert_string_equal(pw, "secret");
    assert_int_equal(db, 0);
    /* a password longer than the caller's buffer is an error, not a cut */
    assert_int_equal(mx_redis_parse_url("redis://:0123456789@h:1", host, sizeof(host), &port, user,
                                        sizeof(user), pw, 8, &db),
                     MX_EINVAL);
    struct mx_redis_opts o = {.backoff_min_ms = 500, .backoff_max_ms = 100};
    assert_int_equal(mx_redis_open(&l.loop, srv.url, &o, &r), MX_EINVAL);
    assert_int_equal(tl_fini(&l), 0);
}

/* Redis paused: the command times out once; the late reply is dropped. */
static void test_timeout_late_reply(void **state)
{
    (void)state;
    struct tloop l;
    struct rec a = {0}, b = {0};
    struct mx_redis_opts o = {.timeout_ms = 200};
    tl_init(&l);
    mx_redis_t *r = open_up(&l, srv.url, &o);

    assert_true(redisd_ok(&srv, "CLIENT PAUSE 900 ALL"));
    int64_t t0 = tu_now_ms();
    assert_int_equal(mx_redis_command(r, rec_cb, &a, "SET k:late v"), 0);
    assert_true(TL_RUN_UNTIL(&l, a.calls == 1, 2000));
    int64_t took = tu_now_ms() - t0;
    assert_int_equal(a.status, MX_ETIMEDOUT);
    TU_ASSERT_CMP(took, >=, 190);
    TU_ASSERT_CMP(took, <, 700);

    struct mx_redis_stats st;
    assert_true(TL_RUN_UNTIL(&l, (mx_redis_stats(r, &st), st.late_replies == 1), 3000));
    assert_int_equal(a.calls, 1); /* never called again */
    assert_int_equal(st.timeouts, 1);
    assert_int_equal(st.pending, 0);
    assert_int_equal(st.disconnects, 0); /* a slow Redis is not a dead one */

    /* the command did run (late); and the client still works */
    assert_int_equal(mx_redis_command(r, rec_cb, &b, "GET k:late"), 0);
    assert_true(TL_RUN_UNTIL(&l, b.calls == 1, 2000));
    assert_int_equal(b.status, 0);
    assert_string_equal(b.str, "v");
    TL_CLOSE(&l, r);
    assert_int_equal(tl_fini(&l), 0);
}

static void test_pending_bound(void **state)
{
    (void)state;
    struct tloop l;
    struct rec a[6];
    memset(a, 0, sizeof(a));
    struct mx_redis_opts o = {.timeout_ms = 3000, .max_pending = 4};
    tl_init(&l);
    mx_redis_t *r = open_up(&l, srv.url, &o);

    assert_true(redisd_ok(&srv, "CLIENT PAUSE 400 ALL"));
    for (int i = 0; i < 4; i++)
        assert_int_equal(mx_redis_command(r, rec_cb, &a[i], "INCR k:bound"), 0);
    assert_int_equal(mx_redis_command(r, rec_cb, &a[4], "INCR k:bound"), MX_EFULL);
    const char *argv[2] = {"INCR", "k:bound"};
    assert_int_equal(mx_redis_argv(r, rec_cb, &a[4], 2, argv, NULL), MX_EFULL);
    struct mx_redis_stats st;
    mx_redis_stats(r, &st);
    assert_int_equal(st.refused_full, 2);
    assert_int_equal(st.pending, 4);
    assert_true(TL_RUN_UNTIL(&l, a[3].calls == 1, 3000));
    for (int i = 0; i < 4; i++) {
        assert_int_equal(a[i].calls, 1);
        assert_int_equal(a[i].status, 0);
        assert_int_equal(a[i].integer, i + 1);
    }
    assert_int_equal(a[4].calls, 0); /* refused: never called */
    /* room again */
    assert_int_equal(mx_redis_command(r, rec_cb, &a[5], "INCR k:bound"), 0);
    assert_true(TL_RUN_UNTIL(&l, a[5].calls == 1, 2000));
    assert_int_equal(a[5].integer, 5);

    /* timed-out commands keep their slot until Redis answers them */
    struct mx_redis_opts o2 = {.timeout_ms = 100, .max_pending = 2};
    mx_redis_t *r2 = open_up(&l, srv.url, &o2);
    struct rec t[3];
    memset(t, 0, sizeof(t));
    assert_true(redisd_ok(&srv, "CLIENT PAUSE 600 ALL"));
    assert_int_equal(mx_redis_command(r2, rec_cb, &t[0], "PING"), 0);
    assert_int_equal(mx_redis_command(r2, rec_cb, &t[1], "PING"), 0);
    assert_true(TL_RUN_UNTIL(&l, t[1].calls == 1, 1000));
    assert_int_equal(t[1].status, MX_ETIMEDOUT);
    assert_int_equal(mx_redis_command(r2, rec_cb, &t[2], "PING"), MX_EFULL);
    assert_true(TL_RUN_UNTIL(&l, (mx_redis_stats(r2, &st), st.pending == 0), 2000));
    assert_int_equal(mx_redis_command(r2, rec_cb, &t[2], "PING"), 0);
    assert_true(TL_RUN_UNTIL(&l, t[2].calls == 1, 2000));
    assert_int_equal(t[2].status, 0);
    TL_CLOSE(&l, r2);
    TL_CLOSE(&l, r);
    assert_int_equal(tl_fini(&l), 0);
}

static int g_order;
struct closer {
    mx_redis_t *r;
    int done;
    int order;
    struct rec rec;
};

static void close_in_cb(mx_redis_t *r, int status, const redisReply *rep, void *arg)
{
    struct closer *c = arg;
    rec_cb(r, status, rep, &c->rec);
    mx_redis_close(r, done_cb, &c->done);
}

static void order_cb(mx_redis_t *r, int status, const redisReply *rep, void *arg)
{
    struct closer *c = arg;
    rec_cb(r, status, rep, &c->rec);
    c->order = ++g_order;
}

static void test_close_with_pending(void **state)
{
    (void)state;
    struct tloop l;
    struct rec a[3];
    int done = 0;
    memset(a, 0, sizeof(a));
    tl_init(&l);
    mx_redis_t *r = open_up(&l, srv.url, NULL);
    assert_true(redisd_ok(&srv, "CLIENT PAUSE 300 ALL"));
    for (int i = 0; i < 3; i++)
        assert_int_equal(mx_redis_command(r, rec_cb, &a[i], "PING"), 0);
    mx_redis_close(r, done_cb, &done);
    for (int i = 0; i < 3; i++) { /* before close returned */
        assert_int_equal(a[i].calls, 1);
        assert_int_equal(a[i].status, MX_ESTOPPED);
    }
    assert_int_equal(done, 0); /* asynchronous */
    assert_true(TL_RUN_UNTIL(&l, done == 1, 2000));
    tl_run_for(&l, 400); /* the paused replies would have come by now */
    for (int i = 0; i < 3; i++)
        assert_int_equal(a[i].calls, 1);

    /* close from inside a reply callback: the others get MX_ESTOPPED once */
    struct closer c1 = {0}, c2 = {0}, c3 = {0};
    r = open_up(&l, srv.url, NULL);
    c1.r = c2.r = r;
    assert_int_equal(mx_redis_command(r, close_in_cb, &c1, "PING"), 0);
    assert_int_equal(mx_redis_command(r, order_cb, &c2, "PING"), 0);
    assert_int_equal(mx_redis_command(r, order_cb, &c3, "PING"), 0);
    assert_true(TL_RUN_UNTIL(&l, c1.done == 1, 2000));
    assert_int_equal(c1.rec.calls, 1);
    assert_int_equal(c1.rec.status, 0);
    /* the other two were pipelined: answered in the same read, or stopped */
    assert_int_equal(c2.rec.calls, 1);
    assert_int_equal(c3.rec.calls, 1);
    assert_int_equal(c2.rec.status, MX_ESTOPPED);
    assert_int_equal(c3.rec.status, MX_ESTOPPED);

    /* close while still connecting (nothing listens there) */
    mx_redis_t *r3;
    char url[64];
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d", 1);
    assert_int_equal(mx_redis_open(&l.loop, url, NULL, &r3), 0);
    assert_int_equal(mx_redis_command(r3, rec_cb, &a[0], "PING"), MX_EUNAVAIL);
    TL_CLOSE(&l, r3);
    assert_int_equal(tl_fini(&l), 0);
}

static const char *lua_echo = "return {KEYS[1], ARGV[1], redis.call('INCR', KEYS[1])}";

static void test_scripts(void **state)
{
    (void)state;
    struct tloop l;
    struct rec a = {0}, b = {0}, c = {0};
    mx_redis_script_t *s, *s2;
    tl_init(&l);
    mx_redis_t *r = open_up(&l, srv.url, NULL);
    assert_int_equal(mx_redis_script(r, lua_echo, &s), 0);
    assert_int_equal(mx_redis_script(r, lua_echo, &s2), 0);
    assert_ptr_equal(s, s2);
    assert_int_equal(mx_redis_script(r, "", &s2), MX_EINVAL);
    assert_true(TL_RUN_UNTIL(&l, strlen(mx_redis_script_sha(s)) == 40, 2000));

    const char *argv[2] = {"k:script", "x\0y"};
    size_t lens[2] = {8, 3};
    assert_int_equal(mx_redis_eval(r, s, rec_cb, &a, 1, 2, argv, lens), 0);
    assert_true(TL_RUN_UNTIL(&l, a.calls == 1, 2000));
    assert_int_equal(a.status, 0);
    assert_int_equal(a.type, REDIS_REPLY_ARRAY);
    assert_int_equal(a.elements, 3);
    struct mx_redis_stats st;
    mx_redis_stats(r, &st);
    assert_int_equal(st.noscript_retries, 0);

    /* the script cache is flushed: NOSCRIPT, EVAL, one transparent retry */
    assert_true(redisd_ok(&srv, "SCRIPT FLUSH"));
    assert_int_equal(mx_redis_eval(r, s, rec_cb, &b, 1, 2, argv, lens), 0);
    assert_true(TL_RUN_UNTIL(&l, b.calls == 1, 2000));
    assert_int_equal(b.status, 0);
    mx_redis_stats(r, &st);
    assert_int_equal(st.noscript_retries, 1);
    redisReply *rep = redisd_cmd(&srv, "GET k:script");
    assert_string_equal(rep->str, "2"); /* ran exactly twice */
    freeReplyObject(rep);

    /* a script error is MX_EIO, not retried */
    mx_redis_script_t *bad;
    assert_int_equal(mx_redis_script(r, "return redis.call('NOPE')", &bad), 0);
    assert_int_equal(mx_redis_eval(r, bad, rec_cb, &c, 0, 0, NULL, NULL), 0);
    assert_true(TL_RUN_UNTIL(&l, c.calls == 1, 2000));
    assert_int_equal(c.status, MX_EIO);
    assert_int_equal(mx_redis_eval(r, s, rec_cb, &c, 3, 2, argv, lens), MX_EINVAL);
    TL_CLOSE(&l, r);
    assert_int_equal(tl_fini(&l), 0);
}

static long long publish(const char *ch, const char *msg, size_t len)
{
    redisReply *rep = redisd_cmd(&srv, "PUBLISH %s %b", ch, msg, len);
    long long n = rep ? rep->integer : -1;
    if (rep)
        freeReplyObject(rep);
    return n;
}

/* publish until someone receives it (a subscription is asynchronous);
 * true if delivered to one subscriber */
static bool publish_until(struct tloop *l, const char *ch, const char *msg, size_t len)
{
    int64_t dl = tu_now_ms() + 2000;
    while (tu_now_ms() < dl) {
        long long n = publish(ch, msg, len);
        if (n != 0)
            return n == 1;
        tl_run_for(l, 10);
    }
    return false;
}

static void test_pubsub(void **state)
{
    (void)state;
    struct tloop l;
    struct msgs m = {0};
    mx_redis_t *s;
    tl_init(&l);
    assert_int_equal(mx_redis_open_subscriber(&l.loop, srv.url, NULL, on_msg, &m, &s), 0);
    assert_int_equal(mx_redis_subscribe(s, "ch.one", false), 0); /* before connecting */
    assert_true(TL_RUN_UNTIL(&l, mx_redis_connected(s), 2000));
    assert_int_equal(mx_redis_subscribe(s, "pat.*", true), 0);
    assert_int_equal(mx_redis_subscribe(s, "ch.one", false), 0); /* twice: no-op */
    assert_int_equal(mx_redis_command(s, rec_cb, &m, "PING"), MX_EINVAL);
    assert_true(publish_until(&l, "pat.x", "", 0));
    assert_true(TL_RUN_UNTIL(&l, m.n == 1, 2000));
    assert_string_equal(m.last_pat, "pat.*");
    assert_int_equal(publish("ch.one", "a\0b", 3), 1);
    assert_true(TL_RUN_UNTIL(&l, m.n == 2, 2000));
    assert_string_equal(m.last_ch, "ch.one");
    assert_string_equal(m.last_pat, "");
    assert_int_equal(m.last_len, 3);
    assert_memory_equal(m.last, "a\0b", 3);

    assert_int_equal(mx_redis_unsubscribe(s, "ch.one", false), 0);
    assert_int_equal(mx_redis_unsubscribe(s, "ch.one", false), MX_ENOTFOUND);
    int64_t dl = tu_now_ms() + 2000;
    while (publish("ch.one", "z", 1) != 0 && tu_now_ms() < dl)
        tl_run_for(&l, 10);
    tl_run_for(&l, 50);
    assert_int_equal(m.n, 2);
    assert_int_equal(mx_redis_subscribe(s, "", false), MX_EINVAL);

    /* a normal client cannot subscribe */
    mx_redis_t *r = open_up(&l, srv.url, NULL);
    assert_int_equal(mx_redis_subscribe(r, "x", false), MX_EINVAL);
    TL_CLOSE(&l, r);
    TL_CLOSE(&l, s);
    assert_int_equal(tl_fini(&l), 0);
}

struct pump {
    int sent, done, errors;
};

static void pump_cb(mx_redis_t *r, int status, const redisReply *rep, void *arg)
{
    struct pump *p = arg;
    (void)r;
    (void)rep;
    p->done++;
    if (status != 0)
        p->errors++;
}

/* Many pipelined commands through a small pending bound: every accepted
 * command is answered once, in order, and nothing is lost. */
static void test_pipeline_throughput(void **state)
{
    (void)state;
    struct tloop l;
    struct pump p = {0};
    struct rec last = {0};
    struct mx_redis_opts o = {.max_pending = 64, .timeout_ms = 5000};
    const int n = TU_SCALE(20000);
    tl_init(&l);
    mx_redis_t *r = open_up(&l, srv.url, &o);
    int64_t t0 = tu_now_ms();
    while (p.sent < n) {
        int rc = mx_redis_command(r, pump_cb, &p, "INCR k:pump");
        if (rc == 0)
            p.sent++;
        else if (rc == MX_EFULL)
            uv_run(&l.loop, UV_RUN_ONCE);
        else
            fail_msg("command: %d", rc);
    }
    assert_true(TL_RUN_UNTIL(&l, p.done == n, 10000));
    int64_t ms = tu_now_ms() - t0;
    print_message("{\"bench\": \"redis_incr_pipelined\", \"value\": %.0f, \"unit\": \"ops/s\"}\n",
                  n * 1000.0 / (double)(ms ? ms : 1));
    assert_int_equal(p.errors, 0);
    assert_int_equal(mx_redis_command(r, rec_cb, &last, "GET k:pump"), 0);
    assert_true(TL_RUN_UNTIL(&l, last.calls == 1, 2000));
    assert_int_equal(atoi(last.str), n);
    TL_CLOSE(&l, r);
    assert_int_equal(tl_fini(&l), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_commands),
        cmocka_unit_test(test_binary_values),
        cmocka_unit_test(test_select_db),
        cmocka_unit_test(test_bad_urls),
        cmocka_unit_test(test_timeout_late_reply),
        cmocka_unit_test(test_pending_bound),
        cmocka_unit_test(test_close_with_pending),
        cmocka_unit_test(test_scripts),
        cmocka_unit_test(test_pubsub),
        cmocka_unit_test(test_pipeline_throughput),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
