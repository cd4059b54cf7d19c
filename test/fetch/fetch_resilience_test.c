/* fetch_resilience_test.c - retries, timeouts, deadlines, the circuit
 * breaker, the concurrency bound, user keys kept apart from the service
 * key's breaker and slots, and an unreachable upstream, against a real
 * mxstub whose latency and failures are switched at run time. Upstream call
 * counts are read from the stub's own counters (/__stub/stats). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "fetch_harness.h"
#include "mx_breaker.h"
#include "mx_err.h"
#include "mx_testutil.h"

static void stub_config(struct fx *x, const char *query)
{
    char url[512];
    struct resp r;
    snprintf(url, sizeof(url), "%s/__stub/config?%s", x->stub.base, query);
    assert_int_equal(http_post(url, &r), 0);
    assert_int_equal(r.status, 200);
    resp_free(&r);
}

static long long stub_total(struct fx *x)
{
    return stub_stat(&x->stub, "total");
}

static void test_retry_5xx(void **state)
{
    struct fx *x = *state;
    const char *args[] = {"--fail-rate", "1", "--fail-status", "503", NULL};
    struct mx_fetch_opts o = MX_FETCH_OPTS_DEFAULT;
    o.backoff_base_ms = 20;
    o.backoff_max_ms = 50;
    fx_start(x, args, &o);
    struct call c = {.kind = MX_FETCH_ID, .arg = "에반"};
    assert_int_equal(fx_call(x, &c), MX_EUPSTREAM);
    assert_int_equal(c.http, 503);
    assert_int_equal(c.attempts, 3);
    assert_non_null(strstr(c.err, "503"));
    /* two backoffs of [10,20] and [20,40] ms */
    TU_ASSERT_CMP(c.t1 - c.t0, >=, 30);
    assert_int_equal(stub_total(x), 3);
    struct mx_fetch_stats st = fx_stats(x);
    assert_int_equal(st.upstream_calls, 3);
    assert_int_equal(st.retries, 2);
    assert_int_equal(st.attempt_5xx, 3);
    assert_int_equal(st.upstream_errors, 1);
    assert_int_equal(st.breaker_state, MX_BREAKER_CLOSED); /* 3 outcomes < window 10 */
}

static void test_retry_then_success(void **state)
{
    struct fx *x = *state;
    const char *args[] = {"--fail-rate", "0.5", NULL};
    struct mx_fetch_opts o = MX_FETCH_OPTS_DEFAULT;
    o.backoff_base_ms = 2;
    o.backoff_max_ms = 4;
    o.breaker_threshold_pct = 100; /* keep it closed: this test is about retries */
    o.breaker_window = 64;
    fx_start(x, args, &o);
    enum { N = 20 };
    struct call c[N];
    uint32_t attempts = 0;
    int ok = 0, ok_after_retry = 0;
    for (int i = 0; i < N; i++) {
        c[i] = (struct call){.kind = MX_FETCH_ID, .arg = "에반"};
        int rc = fx_call(x, &c[i]);
        assert_true(rc == 0 || rc == MX_EUPSTREAM);
        attempts += c[i].attempts;
        ok += rc == 0;
        ok_after_retry += rc == 0 && c[i].attempts > 1;
        if (rc == MX_EUPSTREAM)
            assert_int_equal(c[i].attempts, 3);
        call_free(&c[i]);
    }
    TU_ASSERT_CMP(ok_after_retry, >, 0);
    TU_ASSERT_CMP(ok, >=, N / 2);
    assert_int_equal(stub_total(x), attempts);
    struct mx_fetch_stats st = fx_stats(x);
    assert_int_equal(st.upstream_calls, attempts);
    assert_int_equal(st.retries, attempts - N);
    assert_int_equal(st.ok, ok);
}

static void test_no_retry_on_4xx(void **state)
{
    struct fx *x = *state;
    const char *args[] = {"--fail-rate", "1", "--fail-status", "429", NULL};
    struct mx_fetch_opts o = MX_FETCH_OPTS_DEFAULT;
    o.backoff_base_ms = 5;
    fx_start(x, args, &o);
    struct call c = {.kind = MX_FETCH_ID, .arg = "a"};
    assert_int_equal(fx_call(x, &c), MX_EUPSTREAM);
    assert_int_equal(c.http, 429);
    assert_int_equal(c.attempts, 1);
    stub_config(x, "fail_status=400");
    struct call d = {.kind = MX_FETCH_ID, .arg = "a"};
    assert_int_equal(fx_call(x, &d), MX_ENOTFOUND);
    assert_int_equal(d.attempts, 1);
    stub_config(x, "fail_status=403");
    struct call e = {.kind = MX_FETCH_BASIC, .arg = "0123456789abcdef0123456789abcdef"};
    assert_int_equal(fx_call(x, &e), MX_EINVAL);
    assert_int_equal(e.attempts, 1);
    assert_int_equal(stub_total(x), 3);
    assert_int_equal(fx_stats(x).retries, 0);
}

static void test_timeout(void **state)
{
    struct fx *x = *state;
    const char *args[] = {"--latency-ms", "1500", NULL};
    struct mx_fetch_opts o = MX_FETCH_OPTS_DEFAULT;
    o.total_timeout_ms = 200;
    o.max_attempts = 2;
    o.backoff_base_ms = 10;
    fx_start(x, args, &o);
    struct call c = {.kind = MX_FETCH_ID, .arg = "느린이름"};
    assert_int_equal(fx_call(x, &c), MX_ETIMEDOUT);
    assert_false(c.caller_timeout);
    assert_int_equal(c.attempts, 2);
    assert_int_equal(c.http, 0);
    double took = c.t1 - c.t0;
    TU_ASSERT_CMP(took, >=, 400);
    TU_ASSERT_CMP(took, <, 1400);
    assert_true(TU_WAIT_UNTIL(stub_total(x) == 2, 2000));
    struct mx_fetch_stats st = fx_stats(x);
    assert_int_equal(st.attempt_timeouts, 2);
    assert_int_equal(st.timeouts, 1);
    assert_int_equal(st.inflight, 0);
}

static void test_caller_deadline(void **state)
{
    struct fx *x = *state;
    const char *args[] = {"--latency-ms", "3000", NULL};
    struct mx_fetch_opts o = MX_FETCH_OPTS_DEFAULT;
    o.total_timeout_ms = 20000;
    fx_start(x, args, &o);
    struct call c = {.kind = MX_FETCH_ID, .arg = "a", .timeout_ms = 300};
    /* the fetcher's attempt is cut at the same deadline: whichever of its
     * reply and the caller's own timeout comes first, it is a timeout */
    assert_int_equal(fx_call(x, &c), MX_ETIMEDOUT);
    TU_ASSERT_CMP(c.t1 - c.t0, <, 1000);
    /* the fetcher gave up at the caller's deadline too, long before the
     * 3 s answer or its own 20 s timeout, and did not retry past it */
    assert_true(TU_WAIT_UNTIL(fx_stats(x).active == 0, 1000));
    TU_ASSERT_CMP(now_ms() - c.t0, <, 1500);
    struct mx_fetch_stats st = fx_stats(x);
    assert_int_equal(st.upstream_calls, 1);
    assert_int_equal(st.timeouts, 1);
}

static void test_breaker(void **state)
{
    struct fx *x = *state;
    const char *args[] = {"--fail-rate", "1", "--fail-status", "500", NULL};
    struct mx_fetch_opts o = MX_FETCH_OPTS_DEFAULT;
    o.max_attempts = 1;
    o.breaker_window = 10;
    o.breaker_threshold_pct = 50;
    o.breaker_open_ms = 700;
    o.breaker_probes = 1;
    fx_start(x, args, &o);
    for (int i = 0; i < 10; i++) {
        struct call c = {.kind = MX_FETCH_ID, .arg = "a"};
        assert_int_equal(fx_call(x, &c), MX_EUPSTREAM);
        assert_int_equal(fx_stats(x).breaker_state, i < 9 ? MX_BREAKER_CLOSED : MX_BREAKER_OPEN);
    }
    assert_int_equal(stub_total(x), 10);
    /* open: fails fast, no upstream call, says when to come back */
    for (int i = 0; i < 5; i++) {
        struct call c = {.kind = MX_FETCH_ID, .arg = "a"};
        assert_int_equal(fx_call(x, &c), MX_EUNAVAIL);
        assert_int_equal(c.attempts, 0);
        TU_ASSERT_CMP(c.retry_after, >, 0);
        TU_ASSERT_CMP(c.retry_after, <=, 700);
        assert_non_null(strstr(c.err, "circuit breaker open"));
        TU_ASSERT_CMP(c.t1 - c.t0, <, 200);
    }
    assert_int_equal(stub_total(x), 10);
    struct mx_fetch_stats st = fx_stats(x);
    assert_int_equal(st.breaker_rejected, 5);
    assert_int_equal(st.breaker_opens, 1);
    /* after the open period a probe goes through; it fails: open again */
    usleep(800 * 1000);
    struct call p1 = {.kind = MX_FETCH_ID, .arg = "a"};
    assert_int_equal(fx_call(x, &p1), MX_EUPSTREAM);
    assert_int_equal(p1.attempts, 1);
    assert_int_equal(stub_total(x), 11);
    st = fx_stats(x);
    assert_int_equal(st.breaker_opens, 2);
    assert_int_equal(st.breaker_state, MX_BREAKER_OPEN);
    struct call f1 = {.kind = MX_FETCH_ID, .arg = "a"};
    assert_int_equal(fx_call(x, &f1), MX_EUNAVAIL);
    /* upstream heals; the next probe closes the breaker */
    stub_config(x, "fail_rate=0");
    usleep(800 * 1000);
    struct call p2 = {.kind = MX_FETCH_ID, .arg = "a"};
    assert_int_equal(fx_call(x, &p2), 0);
    call_free(&p2);
    st = fx_stats(x);
    assert_int_equal(st.breaker_state, MX_BREAKER_CLOSED);
    assert_int_equal(stub_total(x), 12);
    for (int i = 0; i < 3; i++) {
        struct call c = {.kind = MX_FETCH_ID, .arg = "a"};
        assert_int_equal(fx_call(x, &c), 0);
        call_free(&c);
    }
    assert_int_equal(stub_total(x), 15);
}

static void test_half_open_probe_bound(void **state)
{
    struct fx *x = *state;
    const char *args[] = {"--fail-rate", "1", "--fail-status", "500", NULL};
    struct mx_fetch_opts o = MX_FETCH_OPTS_DEFAULT;
    o.max_attempts = 1;
    o.breaker_window = 4;
    o.breaker_open_ms = 300;
    o.breaker_probes = 2;
    fx_start(x, args, &o);
    for (int i = 0; i < 4; i++) {
        struct call c = {.kind = MX_FETCH_ID, .arg = "a"};
        assert_int_equal(fx_call(x, &c), MX_EUPSTREAM);
    }
    assert_int_equal(fx_stats(x).breaker_state, MX_BREAKER_OPEN);
    /* slow, healthy upstream: of 6 concurrent requests only 2 are probes */
    stub_config(x, "fail_rate=0&latency_ms=300");
    usleep(400 * 1000);
    struct call c[6];
    for (int i = 0; i < 6; i++)
        c[i] = (struct call){.kind = MX_FETCH_ID, .arg = "b"};
    fx_call_many(x, c, 6);
    int ok = 0, unavail = 0;
    for (int i = 0; i < 6; i++) {
        ok += c[i].status == 0;
        unavail += c[i].status == MX_EUNAVAIL;
        call_free(&c[i]);
    }
    assert_int_equal(ok, 2);
    assert_int_equal(unavail, 4);
    assert_int_equal(stub_total(x), 6);
    assert_int_equal(fx_stats(x).breaker_state, MX_BREAKER_CLOSED);
}

static void test_concurrency_bound(void **state)
{
    struct fx *x = *state;
    const char *args[] = {"--latency-ms", "300", NULL};
    struct mx_fetch_opts o = MX_FETCH_OPTS_DEFAULT;
    o.max_inflight = 4;
    o.max_queued = 4;
    fx_start(x, args, &o);
    enum { N = 12 };
    struct call c[N];
    for (int i = 0; i < N; i++)
        c[i] = (struct call){.kind = MX_FETCH_ID, .arg = "동시"};
    long long acc0 = stub_stat(&x->stub, "accepted"); /* counts its own connection */
    double t0 = now_ms();
    fx_call_many(x, c, N);
    double took = now_ms() - t0;
    int ok = 0, refused = 0;
    for (int i = 0; i < N; i++) {
        if (c[i].status == 0)
            ok++;
        else {
            assert_int_equal(c[i].status, MX_EUNAVAIL);
            assert_non_null(strstr(c[i].err, "overloaded"));
            assert_int_equal(c[i].attempts, 0);
            TU_ASSERT_CMP(c[i].t1 - c[i].t0, <, 250); /* refused at once */
            refused++;
        }
        call_free(&c[i]);
    }
    assert_int_equal(ok, 8);
    assert_int_equal(refused, 4);
    /* two waves of four behind a 300 ms upstream */
    TU_ASSERT_CMP(took, >=, 580);
    struct mx_fetch_stats st = fx_stats(x);
    assert_int_equal(st.inflight_max, 4);
    assert_int_equal(st.queued_max, 4);
    assert_int_equal(st.refused, 4);
    assert_int_equal(st.inflight, 0);
    assert_int_equal(st.queued, 0);
    /* keep-alive: one connection per slot, reused by the second wave */
    assert_int_equal(stub_stat(&x->stub, "accepted") - acc0 - 1, 4);
    assert_int_equal(stub_total(x), 8);
}

static void test_unreachable(void **state)
{
    struct fx *x = *state;
    /* a port that was just free: bind, read it, close */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &al), 0);
    close(fd);
    char base[64];
    snprintf(base, sizeof(base), "http://127.0.0.1:%d", ntohs(a.sin_port));
    struct mx_fetch_opts o = MX_FETCH_OPTS_DEFAULT;
    o.base_url = base;
    o.backoff_base_ms = 10;
    fx_start(x, NULL, &o);
    struct call c = {.kind = MX_FETCH_ID, .arg = "a"};
    assert_int_equal(fx_call(x, &c), MX_EUPSTREAM);
    assert_int_equal(c.attempts, 3);
    assert_int_equal(c.http, 0);
    assert_non_null(strstr(c.err, "connection failed"));
    TU_ASSERT_CMP(c.t1 - c.t0, <, 2000);
    struct mx_fetch_stats st = fx_stats(x);
    assert_int_equal(st.attempt_conn_errors, 3);
    assert_int_equal(st.upstream_errors, 1);
}

static void test_stop_with_work_pending(void **state)
{
    struct fx *x = *state;
    const char *args[] = {"--latency-ms", "5000", NULL};
    struct mx_fetch_opts o = MX_FETCH_OPTS_DEFAULT;
    o.max_inflight = 2;
    fx_start(x, args, &o);
    struct call c[4];
    for (int i = 0; i < 4; i++) {
        c[i] = (struct call){.kind = MX_FETCH_ID, .arg = "a"};
        c[i].t0 = now_ms();
        atomic_store(&c[i].done, 0);
        assert_int_equal(
            mx_sys_send(x->sys, x->client, mx_msg_with_ptr(MX_T_test_echo, &c[i], NULL)), 0);
    }
    assert_true(TU_WAIT_UNTIL(fx_stats(x).queued == 2, 2000));
    assert_int_equal(mx_actor_stop(x->sys, x->fetcher), 0);
    for (int i = 0; i < 4; i++) {
        assert_true(TU_WAIT_UNTIL(atomic_load(&c[i].done), 2000));
        assert_int_equal(c[i].status, MX_ESTOPPED);
    }
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
    print_message("service fetch %.0f ms; last login %.0f ms\n", c[10].t1 - c[10].t0, last - first);
    TU_ASSERT_CMP(c[10].t1 - c[10].t0, <, 600);
    TU_ASSERT_CMP(last - first, >=, 10 * 300 - 50); /* one at a time */
    call_free(&c[10]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_retry_5xx, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_retry_then_success, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_no_retry_on_4xx, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_timeout, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_caller_deadline, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_breaker, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_half_open_probe_bound, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_concurrency_bound, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_unreachable, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_stop_with_work_pending, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_user_429_spares_breaker, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_user_slots_apart, fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
