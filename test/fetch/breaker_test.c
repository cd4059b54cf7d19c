/* breaker_test.c - the circuit breaker state machine (mx_breaker.h) with
 * made-up times: when it opens, fails fast, half-opens, bounds probes,
 * closes or reopens, and forgets stale outcomes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "mx_breaker.h"
#include "mx_err.h"

static void ok_attempt(struct mx_breaker *b, int64_t t, bool success)
{
    bool probe;
    assert_int_equal(mx_breaker_acquire(b, t, &probe), 0);
    mx_breaker_record(b, t, probe, success);
}

static void test_opens_only_on_a_full_window(void **s)
{
    struct mx_breaker b;
    mx_breaker_init(&b, 10, 50, 1000, 1);
    /* nine failures: the window is not full, it stays closed */
    for (int i = 0; i < 9; i++)
        ok_attempt(&b, i, false);
    assert_int_equal(b.state, MX_BREAKER_CLOSED);
    /* the tenth outcome fills it: 9/10 failures >= 50 % */
    ok_attempt(&b, 9, true);
    assert_int_equal(b.state, MX_BREAKER_OPEN);
    assert_int_equal(b.opens, 1);
}

static void test_threshold_is_inclusive_and_window_slides(void **s)
{
    struct mx_breaker b;
    mx_breaker_init(&b, 10, 50, 1000, 1);
    /* alternate: 4 failures in 10 stays closed (success first) */
    for (int i = 0; i < 10; i++)
        ok_attempt(&b, i, i % 2 == 0 || i == 9);
    assert_int_equal(b.fails, 4);
    assert_int_equal(b.state, MX_BREAKER_CLOSED);
    /* the slot that leaves is a success, a failure comes in: 5/10 opens */
    ok_attempt(&b, 10, false);
    assert_int_equal(b.state, MX_BREAKER_OPEN);

    /* a sliding window forgets old failures */
    mx_breaker_init(&b, 4, 75, 1000, 1);
    ok_attempt(&b, 0, false);
    ok_attempt(&b, 1, false);
    ok_attempt(&b, 2, true);
    ok_attempt(&b, 3, true);  /* 2/4 */
    ok_attempt(&b, 4, false); /* drops a failure, adds one: 2/4 */
    ok_attempt(&b, 5, true);  /* 1/4 */
    assert_int_equal(b.fails, 1);
    assert_int_equal(b.state, MX_BREAKER_CLOSED);
}

static void test_open_fails_fast_then_half_open(void **s)
{
    struct mx_breaker b;
    bool probe;
    mx_breaker_init(&b, 2, 50, 1000, 2);
    ok_attempt(&b, 0, false);
    ok_attempt(&b, 100, false);
    assert_int_equal(b.state, MX_BREAKER_OPEN);
    assert_int_equal(mx_breaker_acquire(&b, 500, &probe), MX_EUNAVAIL);
    assert_int_equal(mx_breaker_retry_after_ms(&b, 500), 600);
    assert_int_equal(mx_breaker_state_at(&b, 1099), MX_BREAKER_OPEN);
    assert_int_equal(mx_breaker_state_at(&b, 1100), MX_BREAKER_HALF_OPEN);
    /* two probes at most */
    bool p1, p2, p3;
    assert_int_equal(mx_breaker_acquire(&b, 1100, &p1), 0);
    assert_true(p1);
    assert_int_equal(mx_breaker_acquire(&b, 1101, &p2), 0);
    assert_true(p2);
    assert_int_equal(mx_breaker_acquire(&b, 1102, &p3), MX_EUNAVAIL);
    /* an abandoned probe frees its place */
    mx_breaker_cancel(&b, p2);
    assert_int_equal(mx_breaker_acquire(&b, 1103, &p3), 0);
    assert_true(p3);
    /* a probe success closes, with an empty window */
    mx_breaker_record(&b, 1200, p1, true);
    assert_int_equal(b.state, MX_BREAKER_CLOSED);
    assert_int_equal(b.count, 0);
    /* the other probe's late failure does not reopen it */
    mx_breaker_record(&b, 1300, p3, false);
    assert_int_equal(b.state, MX_BREAKER_CLOSED);
    assert_int_equal(b.opens, 1);
    assert_int_equal(mx_breaker_acquire(&b, 1301, &probe), 0);
    assert_false(probe);
}

static void test_probe_failure_reopens(void **s)
{
    struct mx_breaker b;
    bool probe;
    mx_breaker_init(&b, 1, 100, 50, 1);
    ok_attempt(&b, 0, false);
    assert_int_equal(b.state, MX_BREAKER_OPEN);
    assert_int_equal(mx_breaker_acquire(&b, 60, &probe), 0);
    assert_true(probe);
    mx_breaker_record(&b, 70, probe, false);
    assert_int_equal(b.state, MX_BREAKER_OPEN);
    assert_int_equal(b.opens, 2);
    /* the open period restarts at the probe's failure */
    assert_int_equal(mx_breaker_acquire(&b, 110, &probe), MX_EUNAVAIL);
    assert_int_equal(mx_breaker_acquire(&b, 120, &probe), 0);
}

static void test_stale_outcomes_ignored(void **s)
{
    struct mx_breaker b;
    mx_breaker_init(&b, 2, 50, 1000, 1);
    bool a1, a2, a3;
    assert_int_equal(mx_breaker_acquire(&b, 0, &a1), 0);
    assert_int_equal(mx_breaker_acquire(&b, 0, &a2), 0);
    assert_int_equal(mx_breaker_acquire(&b, 0, &a3), 0);
    mx_breaker_record(&b, 1, a1, false);
    mx_breaker_record(&b, 2, a2, false);
    assert_int_equal(b.state, MX_BREAKER_OPEN);
    /* an attempt that started before it opened says nothing now */
    mx_breaker_record(&b, 3, a3, true);
    assert_int_equal(b.state, MX_BREAKER_OPEN);
    assert_int_equal(b.count, 0);
}

static void test_clamps(void **s)
{
    struct mx_breaker b;
    mx_breaker_init(&b, 0, 0, 10, 0);
    assert_int_equal(b.window, 1);
    assert_int_equal(b.threshold_pct, 1);
    assert_int_equal(b.probes, 1);
    mx_breaker_init(&b, 1000, 1000, 10, 3);
    assert_int_equal(b.window, MX_BREAKER_WINDOW_MAX);
    assert_int_equal(b.threshold_pct, 100);
    /* a full 64-slot window of failures opens at 100 % */
    for (int i = 0; i < 63; i++)
        ok_attempt(&b, i, false);
    assert_int_equal(b.state, MX_BREAKER_CLOSED);
    ok_attempt(&b, 63, false);
    assert_int_equal(b.state, MX_BREAKER_OPEN);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_opens_only_on_a_full_window),
        cmocka_unit_test(test_threshold_is_inclusive_and_window_slides),
        cmocka_unit_test(test_open_fails_fast_then_half_open),
        cmocka_unit_test(test_probe_failure_reopens),
        cmocka_unit_test(test_stale_outcomes_ignored),
        cmocka_unit_test(test_clamps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
