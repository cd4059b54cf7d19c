/* test_ratelimit.c - the Redis token bucket: burst then refusal with the
 * right remaining and retry-after, refill over time, two clients (two
 * nodes) sharing one bucket, the service defaults, idle expiry, hostile
 * keys, bad rules, and Redis down. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "mx_testutil.h"

#include "mx_ratelimit.h"
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

struct rl {
    int calls;
    int status;
    int allowed, denied;
    struct mx_rl_result last;
    struct mx_rl_result last_denied;
};

static void rl_cb(int status, const struct mx_rl_result *res, void *arg)
{
    struct rl *x = arg;
    x->calls++;
    x->status = status;
    if (status == 0) {
        x->last = *res;
        if (res->allowed)
            x->allowed++;
        else {
            x->denied++;
            x->last_denied = *res;
        }
    } else {
        assert_null(res);
    }
}

static mx_redis_t *open_up(struct tloop *l)
{
    mx_redis_t *r = NULL;
    assert_int_equal(mx_redis_open(&l->loop, srv.url, NULL, &r), 0);
    assert_true(TL_RUN_UNTIL(l, mx_redis_connected(r), 3000));
    return r;
}

/* one check, waited for */
static struct rl check1(struct tloop *l, mx_redis_t *r, const char *key,
                        const struct mx_rl_rule *rule)
{
    struct rl x = {0};
    assert_int_equal(mx_ratelimit_check(r, key, rule, rl_cb, &x), 0);
    assert_true(TL_RUN_UNTIL(l, x.calls == 1, 2000));
    assert_int_equal(x.status, 0);
    return x;
}

static void test_burst_then_refusal(void **state)
{
    (void)state;
    struct tloop l;
    tl_init(&l);
    mx_redis_t *r = open_up(&l);
    struct mx_rl_rule rule = {.capacity = 5, .refill_tokens = 1, .refill_ms = 1000};
    for (int i = 0; i < 5; i++) {
        struct rl x = check1(&l, r, "ip:burst", &rule);
        assert_true(x.last.allowed);
        assert_int_equal(x.last.remaining, 4 - i);
        assert_int_equal(x.last.retry_after_ms, 0);
    }
    struct rl x = check1(&l, r, "ip:burst", &rule);
    assert_false(x.last.allowed);
    assert_int_equal(x.last.remaining, 0);
    /* one token takes 1000 ms; a little of it has passed */
    if (x.last.retry_after_ms < 700 || x.last.retry_after_ms > 1000)
        fail_msg("retry_after %u", x.last.retry_after_ms);

    /* cost > 1, and a refused request takes nothing */
    struct mx_rl_rule big = {.capacity = 10, .refill_tokens = 1, .refill_ms = 60000, .cost = 4};
    assert_int_equal(check1(&l, r, "ip:cost", &big).last.remaining, 6);
    assert_int_equal(check1(&l, r, "ip:cost", &big).last.remaining, 2);
    x = check1(&l, r, "ip:cost", &big);
    assert_false(x.last.allowed);
    assert_int_equal(x.last.remaining, 2);
    if (x.last.retry_after_ms < 119000 || x.last.retry_after_ms > 120000)
        fail_msg("retry_after %u", x.last.retry_after_ms); /* 2 tokens at 60 s each */
    big.cost = 2;
    x = check1(&l, r, "ip:cost", &big);
    assert_true(x.last.allowed);
    assert_int_equal(x.last.remaining, 0);

    /* idle buckets expire: TTL = time to refill completely + 1 s */
    redisReply *rep = redisd_cmd(&srv, "PTTL {rl}:ip:burst");
    TU_ASSERT_CMP(rep->integer, >, 4000);
    TU_ASSERT_CMP(rep->integer, <=, 6000);
    freeReplyObject(rep);
    TL_CLOSE(&l, r);
    assert_int_equal(tl_fini(&l), 0);
}

static void test_refill(void **state)
{
    (void)state;
    struct tloop l;
    tl_init(&l);
    mx_redis_t *r = open_up(&l);
    struct mx_rl_rule rule = {.capacity = 3, .refill_tokens = 3, .refill_ms = 300};
    for (int i = 0; i < 3; i++)
        assert_true(check1(&l, r, "user:refill", &rule).last.allowed);
    struct rl x = check1(&l, r, "user:refill", &rule);
    assert_false(x.last.allowed);
    TU_ASSERT_CMP(x.last.retry_after_ms, >=, 1);
    TU_ASSERT_CMP(x.last.retry_after_ms, <=, 100);
    tl_run_for(&l, x.last.retry_after_ms + 20);
    x = check1(&l, r, "user:refill", &rule);
    assert_true(x.last.allowed); /* one token back after retry_after */
    tl_run_for(&l, 350);
    x = check1(&l, r, "user:refill", &rule);
    assert_true(x.last.allowed);
    assert_int_equal(x.last.remaining, 2); /* full again (capped at 3), minus one */
    TL_CLOSE(&l, r);
    assert_int_equal(tl_fini(&l), 0);
}

/* Two clients (as two nodes would) firing at one bucket concurrently admit
 * exactly its capacity. */
static void test_two_nodes_share(void **state)
{
    (void)state;
    struct tloop l;
    tl_init(&l);
    mx_redis_t *a = open_up(&l), *b = open_up(&l);
    struct mx_rl_rule rule = {.capacity = 25, .refill_tokens = 1, .refill_ms = 600000};
    struct rl x = {0};
    for (int i = 0; i < 60; i++)
        assert_int_equal(mx_ratelimit_check(i % 2 ? a : b, "ip:shared", &rule, rl_cb, &x), 0);
    assert_true(TL_RUN_UNTIL(&l, x.calls == 60, 3000));
    assert_int_equal(x.allowed, 25);
    assert_int_equal(x.denied, 35);

    /* the service defaults: 100 burst per IP, then one token per 600 ms */
    const struct mx_rl_rule ip = MX_RL_RULE_IP;
    memset(&x, 0, sizeof(x));
    for (int i = 0; i < 101; i++)
        assert_int_equal(mx_ratelimit_check(i % 2 ? a : b, "ip:10.0.0.1", &ip, rl_cb, &x), 0);
    assert_true(TL_RUN_UNTIL(&l, x.calls == 101, 3000));
    assert_int_equal(x.allowed, 100);
    assert_int_equal(x.denied, 1);
    TU_ASSERT_CMP(x.last_denied.retry_after_ms, >, 0);
    TU_ASSERT_CMP(x.last_denied.retry_after_ms, <=, 600);
    assert_int_equal(x.last_denied.remaining, 0);
    const struct mx_rl_rule user = MX_RL_RULE_USER;
    assert_int_equal(check1(&l, a, "user:7", &user).last.remaining, 199);
    TL_CLOSE(&l, a);
    TL_CLOSE(&l, b);
    assert_int_equal(tl_fini(&l), 0);
}

static void test_bad_input_and_down(void **state)
{
    (void)state;
    struct tloop l;
    struct rl x = {0};
    tl_init(&l);
    mx_redis_t *r = open_up(&l);
    struct mx_rl_rule ok = {.capacity = 2, .refill_tokens = 1, .refill_ms = 1000};
    struct mx_rl_rule bad[] = {
        {.capacity = 0, .refill_tokens = 1, .refill_ms = 1000},
        {.capacity = 2, .refill_tokens = 0, .refill_ms = 1000},
        {.capacity = 2, .refill_tokens = 1, .refill_ms = 0},
        {.capacity = 2, .refill_tokens = 1, .refill_ms = 1000, .cost = 3},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(mx_ratelimit_check(r, "k", &bad[i], rl_cb, &x), MX_EINVAL);
    assert_int_equal(mx_ratelimit_check(r, "", &ok, rl_cb, &x), MX_EINVAL);
    assert_int_equal(mx_ratelimit_check(r, NULL, &ok, rl_cb, &x), MX_EINVAL);
    assert_int_equal(mx_ratelimit_check(r, "k", NULL, rl_cb, &x), MX_EINVAL);
    assert_int_equal(mx_ratelimit_check(r, "k", &ok, NULL, &x), MX_EINVAL);
    char longkey[MX_RL_KEY_MAX + 2];
    memset(longkey, 'k', sizeof(longkey));
    longkey[MX_RL_KEY_MAX + 1] = '\0';
    assert_int_equal(mx_ratelimit_check(r, longkey, &ok, rl_cb, &x), MX_EINVAL);
    longkey[MX_RL_KEY_MAX] = '\0';
    assert_true(check1(&l, r, longkey, &ok).last.allowed);
    assert_int_equal(x.calls, 0);

    /* hostile keys are just bytes: no injection into the script or key space */
    const char *hostile = "ip:}{rl}:x\r\n*3\r\n$3\r\nDEL' .. KEYS[1] .. '";
    assert_true(check1(&l, r, hostile, &ok).last.allowed);
    assert_int_equal(check1(&l, r, hostile, &ok).last.remaining, 0);
    assert_true(check1(&l, r, "ip:}{rl}:x", &ok).last.allowed); /* a different bucket */

    /* a corrupt bucket (someone wrote garbage) is treated as a fresh one */
    assert_true(redisd_ok(&srv, "HSET {rl}:ip:corrupt tk notanumber ts x"));
    assert_true(check1(&l, r, "ip:corrupt", &ok).last.allowed);

    /* Redis down: a distinct status, the callback never called */
    struct redisd d2;
    assert_int_equal(redisd_start(&d2, NULL), 0);
    mx_redis_t *r2;
    assert_int_equal(mx_redis_open(&l.loop, d2.url, NULL, &r2), 0);
    assert_true(TL_RUN_UNTIL(&l, mx_redis_connected(r2), 2000));
    redisd_stop(&d2);
    assert_true(TL_RUN_UNTIL(&l, !mx_redis_connected(r2), 2000));
    assert_int_equal(mx_ratelimit_check(r2, "ip:down", &ok, rl_cb, &x), MX_EUNAVAIL);
    assert_int_equal(x.calls, 0);
    TL_CLOSE(&l, r2);
    TL_CLOSE(&l, r);
    assert_int_equal(tl_fini(&l), 0);
}

/* A check in flight when Redis stalls: the callback gets MX_ETIMEDOUT. */
static void test_timeout_status(void **state)
{
    (void)state;
    struct tloop l;
    struct rl x = {0};
    struct mx_redis_opts o = {.timeout_ms = 100};
    mx_redis_t *r;
    tl_init(&l);
    assert_int_equal(mx_redis_open(&l.loop, srv.url, &o, &r), 0);
    assert_true(TL_RUN_UNTIL(&l, mx_redis_connected(r), 2000));
    struct mx_rl_rule ok = {.capacity = 2, .refill_tokens = 1, .refill_ms = 1000};
    assert_true(redisd_ok(&srv, "CLIENT PAUSE 300 ALL"));
    assert_int_equal(mx_ratelimit_check(r, "ip:slow", &ok, rl_cb, &x), 0);
    assert_true(TL_RUN_UNTIL(&l, x.calls == 1, 1000));
    assert_int_equal(x.status, MX_ETIMEDOUT);
    tl_run_for(&l, 300);
    assert_int_equal(x.calls, 1);
    TL_CLOSE(&l, r);
    assert_int_equal(tl_fini(&l), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_burst_then_refusal), cmocka_unit_test(test_refill),
        cmocka_unit_test(test_two_nodes_share),    cmocka_unit_test(test_bad_input_and_down),
        cmocka_unit_test(test_timeout_status),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
