/* fetch_userkey_test.c - requests carrying the user's own key (logins) do
 * not share the service key's circuit breaker or upstream slots
 * (REVIEW-SECURITY M7), against a real mxstub: a key answered 429 a dozen
 * times leaves the breaker closed, and a service fetch is not queued
 * behind a burst of slow logins. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fetch_harness.h"
#include "mx_breaker.h"
#include "mx_err.h"
#include "mx_testutil.h"

static int setup(void **state)
{
    *state = calloc(1, sizeof(struct fx));
    return *state ? 0 : -1;
}

static int teardown(void **state)
{
    fx_stop(*state);
    free(*state);
    return 0;
}

/* upstream answers 429 to everything: twelve user-key logins leave the
 * breaker closed; the service key's own failures still open it */
static void test_user_429_spares_breaker(void **state)
{
    struct fx *x = *state;
    const char *args[] = {"--fail-rate", "1", "--fail-status", "429", NULL};
    struct mx_fetch_opts o = MX_FETCH_OPTS_DEFAULT;
    o.max_attempts = 1;
    fx_start(x, args, &o);
    for (int i = 0; i < 12; i++) {
        struct call c = {.kind = MX_FETCH_LIST, .key = "spent-user-key"};
        assert_int_equal(fx_call(x, &c), MX_EUPSTREAM);
        assert_int_equal(c.attempts, 1);
    }
    assert_int_equal(fx_stats(x).breaker_state, MX_BREAKER_CLOSED);
    struct call s = {.kind = MX_FETCH_ID, .arg = "a"};
    assert_int_equal(fx_call(x, &s), MX_EUPSTREAM);
    assert_int_equal(s.attempts, 1); /* went upstream: not breaker-rejected */
    for (int i = 0; i < 9; i++) {
        struct call c = {.kind = MX_FETCH_ID, .arg = "a"};
        fx_call(x, &c);
    }
    assert_int_equal(fx_stats(x).breaker_state, MX_BREAKER_OPEN);
    /* while the service breaker is open, a user's login still goes upstream */
    struct call u = {.kind = MX_FETCH_LIST, .key = "another-user-key"};
    assert_int_equal(fx_call(x, &u), MX_EUPSTREAM);
    assert_int_equal(u.attempts, 1);
}

/* max_inflight 4: user keys get one slot. Ten slow logins and one service
 * fetch sent together: the service fetch takes its own slot at once. */
static void test_user_slots_apart(void **state)
{
    struct fx *x = *state;
    const char *args[] = {"--latency-ms", "300", NULL};
    struct mx_fetch_opts o = MX_FETCH_OPTS_DEFAULT;
    o.max_inflight = 4;
    fx_start(x, args, &o);
    struct call c[11];
    memset(c, 0, sizeof(c));
    for (int i = 0; i < 10; i++) {
        c[i].kind = MX_FETCH_LIST;
        c[i].key = "user-key-1";
    }
    c[10].kind = MX_FETCH_ID;
    c[10].arg = "a";
    fx_call_many(x, c, 11);
    double first = c[0].t0, last = 0;
    for (int i = 0; i < 10; i++) {
        assert_int_equal(c[i].status, 0);
        last = c[i].t1 > last ? c[i].t1 : last;
        call_free(&c[i]);
    }
    print_message("service fetch %.0f ms; last login %.0f ms\n", c[10].t1 - c[10].t0,
                  last - first);
    assert_true(c[10].t1 - c[10].t0 < 600);
    assert_true(last - first >= 10 * 300 - 50); /* one at a time */
    call_free(&c[10]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_user_429_spares_breaker, setup, teardown),
        cmocka_unit_test_setup_teardown(test_user_slots_apart, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
