/* app_trace_test.c - one request's trace id, followed through two real
 * mxnode processes' logs across the nng hop, and on to the upstream.
 *
 * Node A sends its upstream calls through node B's fetcher (MX_FETCH_VIA,
 * the egress node), so a cold GET /api/v4/characters/{ign}/expectation on
 * A with a traceparent header makes A's cache shard (after its Redis L2
 * script) ask A's fetcher, which passes the fetch over nng to B's fetcher,
 * which calls the upstream (a real mxstub) from a libcurl callback and
 * answers back over nng; A then calculates on an offload thread and
 * answers. Both nodes log at debug level into files the test reads:
 * - the response echoes the trace id, and the upstream was called through B
 *   (mxstub's counters, and B's fetcher counts requests from another node),
 *   each call with a traceparent of the trace;
 * - B logged the fetches it made for A, and every line B wrote while doing
 *   so (its fetcher's lines from the request on) carries the trace id;
 * - A logged the hand-over to B and B's answer under the trace id;
 * - no line on either node that names the character or its ocid lacks the
 *   trace id, and a second request with another trace id never shows the
 *   first one (the trace does not leak into later work);
 * - with B killed, A serves its fetches itself (via_local) and answers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "../redis/redisd.h"
#include "../stub/stub_harness.h"
#include "mx_testutil.h"
#include "node_harness.h"

#define EVAN "\xec\x97\x90\xeb\xb0\x98" /* 에반 */
#define EVAN_URL "%EC%97%90%EB%B0%98"
#define TRACE1 "4bf92f3577b34da6a3ce929d0e0e4736"
#define TRACE2 "5c0a3f4688c45eb7b4df03ae1f1f5847"
#define LOG_CAP (4u << 20)

static struct stub g_stub;
static struct redisd g_redis;
static struct node g_a, g_b;
static char *g_log; /* LOG_CAP bytes */

static int setup(void **st)
{
    g_log = malloc(LOG_CAP);
    if (!g_log || stub_start(&g_stub, NULL) != 0 || redisd_start(&g_redis, NULL) != 0)
        return -1;
    static char base[160], redis[700];
    snprintf(base, sizeof base, "MX_NEXON_BASE_URL=%s", g_stub.base);
    snprintf(redis, sizeof redis, "MX_REDIS_URL=%s", g_redis.url);
    const char *env_b[] = {base,
                           redis,
                           "MX_NODE_NAME=trace-b",
                           "MX_RATE_LIMIT=0",
                           "MX_LOG_LEVEL=debug",
                           "MX_MEMBER_REFRESH_MS=200",
                           NULL};
    const char *env_a[] = {base,
                           redis,
                           "MX_NODE_NAME=trace-a",
                           "MX_FETCH_VIA=trace-b",
                           "MX_RATE_LIMIT=0",
                           "MX_LOG_LEVEL=debug",
                           "MX_MEMBER_REFRESH_MS=200",
                           NULL};
    return node_start(&g_b, env_b) == 0 && node_start(&g_a, env_a) == 0 ? 0 : -1;
}

static int teardown(void **st)
{
    node_kill(&g_a);
    node_kill(&g_b);
    redisd_stop(&g_redis);
    stub_stop(&g_stub);
    free(g_log);
    return 0;
}

/* the log of n from byte `from` on, in g_log */
static const char *log_from(const struct node *n, size_t from)
{
    size_t len = node_log(n, g_log, LOG_CAP);
    return len > from ? g_log + from : "";
}

static bool line_has(const char *bol, const char *eol, const char *needle)
{
    size_t n = strlen(needle);
    for (const char *p = bol; p + n <= eol; p++)
        if (!memcmp(p, needle, n))
            return true;
    return false;
}

struct scan {
    int matched;    /* lines that had `what` */
    int traced;     /* ... and the trace */
    char bad[1024]; /* the first line that had `what` but not the trace */
};

/* every line of log naming `what` (all lines: NULL) but not `except` (may
 * be NULL) is checked for the trace id */
static struct scan scan_except(const char *log, const char *what, const char *except,
                               const char *trace)
{
    struct scan s = {0};
    char want[64];
    snprintf(want, sizeof want, "\"trace\":\"%s\"", trace);
    for (const char *bol = log; *bol;) {
        const char *eol = strchr(bol, '\n');
        if (!eol)
            eol = bol + strlen(bol);
        if ((!what || line_has(bol, eol, what)) && !(except && line_has(bol, eol, except))) {
            s.matched++;
            if (line_has(bol, eol, want))
                s.traced++;
            else if (!s.bad[0])
                snprintf(s.bad, sizeof s.bad, "%.*s", (int)(eol - bol), bol);
        }
        bol = *eol ? eol + 1 : eol;
    }
    return s;
}

static struct scan scan_lines(const char *log, const char *what, const char *trace)
{
    return scan_except(log, what, NULL, trace);
}

/* every line but the membership's (the registry thread's, on its own
 * clock) is work the request caused: the nodes are otherwise idle */
static struct scan scan_work(const char *log, const char *trace)
{
    return scan_except(log, NULL, "\"msg\":\"cluster: ", trace);
}

/* at least at_least lines of log name `what` (NULL: any line but the
 * membership's), and every one of them carries TRACE1 */
static void expect_traced(const char *who, const char *log, const char *what, int at_least)
{
    struct scan s = what ? scan_lines(log, what, TRACE1) : scan_work(log, TRACE1);
    if (s.matched < at_least || s.traced != s.matched)
        fail_msg("%s: %d lines naming \"%s\", %d with the trace; first without: %s\n%s:\n%s", who,
                 s.matched, what ? what : "(any)", s.traced, s.bad, who, log);
}

static long long stat_of(const struct node *n, const char *key)
{
    char cmd[512], out[65536];
    snprintf(cmd, sizeof cmd, "%s/mxctl --node tcp://127.0.0.1:%d --json stats",
             getenv("MX_BIN_DIR"), n->admin_port);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t len = fread(out, 1, sizeof out - 1, p);
    out[len] = '\0';
    assert_int_equal(pclose(p), 0);
    char k[128];
    snprintf(k, sizeof k, "\"%s\":", key);
    const char *at = strstr(out, k);
    if (!at)
        fail_msg("no %s in %s", key, out);
    return atoll(at + strlen(k));
}

static int count(const char *s, const char *needle)
{
    int n = 0;
    for (; (s = strstr(s, needle)); s++)
        n++;
    return n;
}

/* how many Redis clients n has (connected or not yet), from one stats answer */
static int redis_clients(const struct node *n)
{
    char cmd[512];
    static char out[1 << 20];
    snprintf(cmd, sizeof cmd, "%s/mxctl --node tcp://127.0.0.1:%d --json redis",
             getenv("MX_BIN_DIR"), n->admin_port);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t len = fread(out, 1, sizeof out - 1, p);
    out[len] = '\0';
    assert_int_equal(pclose(p), 0);
    return count(out, "\"connected\":");
}

static void test_one_trace_through_two_nodes(void **st)
{
    /* A knows B (the registry told it) before the request */
    assert_true(TU_WAIT_UNTIL(strstr(log_from(&g_a, 0), "cluster: peer trace-b ") != NULL, 10000));
    /* and both have finished starting: every Redis client connected (each
     * logs it once), so the lines from here on are the request's */
    int ca = redis_clients(&g_a), cb = redis_clients(&g_b);
    assert_true(ca > 0 && cb > 0);
    assert_true(TU_WAIT_UNTIL(count(log_from(&g_a, 0), " connected to ") >= ca, 10000));
    assert_true(TU_WAIT_UNTIL(count(log_from(&g_b, 0), " connected to ") >= cb, 10000));
    size_t mark_a = node_log(&g_a, g_log, LOG_CAP), mark_b = node_log(&g_b, g_log, LOG_CAP);
    long long eq0 = stub_stat(&g_stub, "/maplestory/v1/character/item-equipment");
    long long traced0 = stub_stat(&g_stub, "traced");
    assert_true(eq0 >= 0 && traced0 >= 0);

    struct http_res r;
    assert_int_equal(node_http(g_a.http_port, "GET", "/api/v4/characters/" EVAN_URL "/expectation",
                               "traceparent: 00-" TRACE1 "-00f067aa0ba902b7-01\r\n", NULL, &r),
                     200);
    if (r.status != 200)
        fail_msg("status %d: %s\nA:\n%s", r.status, r.body, log_from(&g_a, mark_a));
    char tp[128];
    http_header(&r, "traceparent", tp, sizeof tp);
    assert_non_null(strstr(tp, TRACE1));
    http_res_free(&r);

    /* the upstream was reached through B */
    assert_int_equal(stub_stat(&g_stub, "/maplestory/v1/character/item-equipment"), eq0 + 1);
    assert_true(stat_of(&g_a, "via_passed") >= 2); /* ocid and equipment */
    assert_int_equal(stat_of(&g_a, "upstream_calls"), 0);
    assert_true(stat_of(&g_b, "upstream_calls") >= 2);
    /* ... and B sent the trace on to it (W3C traceparent) */
    assert_int_equal(stub_stat(&g_stub, "traced"), traced0 + 2);
    char url[256];
    struct resp sr;
    snprintf(url, sizeof url, "%s/__stub/stats", g_stub.base);
    assert_int_equal(http_get(url, NULL, false, &sr), 0);
    if (!strstr(sr.body, "\"last_traceparent\":\"00-" TRACE1 "-"))
        fail_msg("the upstream saw no traceparent with the trace: %s", sr.body);
    resp_free(&sr);

    char ocid[64];
    assert_int_equal(stub_ocid(&g_stub, EVAN, ocid), 200);

    /* B: the fetches it made for A, each under the trace; and every line
     * it wrote since the request */
    const char *lb = log_from(&g_b, mark_b);
    expect_traced("B", lb, "for another node", 2);
    expect_traced("B", lb, NULL, 2);
    expect_traced("B", lb, ocid, 0);

    /* A: the hand-over and B's answers, every line since the request, and
     * everything naming the character or its ocid */
    const char *la = log_from(&g_a, mark_a);
    expect_traced("A", la, "passed to egress node trace-b", 2);
    expect_traced("A", la, "answered by egress node trace-b", 2);
    expect_traced("A", la, NULL, 4);
    expect_traced("A", la, ocid, 0);
    expect_traced("A", la, EVAN, 0);

    /* a later request with another trace: its lines never carry the first */
    mark_a = node_log(&g_a, g_log, LOG_CAP);
    mark_b = node_log(&g_b, g_log, LOG_CAP);
    assert_int_equal(node_http(g_a.http_port, "GET",
                               "/api/v4/characters/" EVAN_URL "/expectation?starCatch=true",
                               "traceparent: 00-" TRACE2 "-00f067aa0ba902b8-01\r\n", NULL, &r),
                     200);
    assert_int_equal(r.status, 200);
    http_res_free(&r);
    assert_null(strstr(log_from(&g_a, mark_a), TRACE1));
    assert_null(strstr(log_from(&g_b, mark_b), TRACE1));
}

/* the egress node gone: A serves its fetches itself (counted), under the
 * request's trace, rather than failing them */
static void test_egress_down_served_here(void **st)
{
    long long local0 = stat_of(&g_a, "via_local"), calls0 = stat_of(&g_a, "upstream_calls");
    node_kill(&g_b);
    size_t mark_a = node_log(&g_a, g_log, LOG_CAP);
    struct http_res r;
    assert_int_equal(node_http(g_a.http_port, "GET", "/api/v4/characters/TraceHero/expectation",
                               "traceparent: 00-" TRACE1 "-00f067aa0ba902b9-01\r\n", NULL, &r),
                     200);
    http_res_free(&r);
    assert_true(stat_of(&g_a, "via_local") >= local0 + 2); /* ocid and equipment */
    assert_true(stat_of(&g_a, "upstream_calls") >= calls0 + 2);
    expect_traced("A", log_from(&g_a, mark_a), "TraceHero", 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_trace_through_two_nodes),
        cmocka_unit_test(test_egress_down_served_here),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
