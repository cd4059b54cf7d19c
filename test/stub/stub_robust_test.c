/* stub_robust_test.c - mxstub under injection and hostile clients.
 *
 * Latency (measured, and not blocking other connections), failure injection
 * at start and at run time, the counters and their reset, then raw sockets:
 * garbage, oversized headers and targets, 1000 pipelined requests in one
 * write answered in order, clients closing mid-answer, the connection limit.
 * After each abuse the server must still answer.
 */
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

#include "mx_testutil.h"
#include <curl/curl.h>

#include "stub_harness.h"

static long get_status(struct stub *s, const char *pq, const char *key, double *ms)
{
    char url[1024];
    struct resp r;
    long st;
    snprintf(url, sizeof(url), "%s%s", s->base, pq);
    if (http_get(url, key, false, &r) != 0) {
        resp_free(&r);
        return -1;
    }
    st = r.status;
    if (ms)
        *ms = r.ms;
    resp_free(&r);
    return st;
}

static long post(struct stub *s, const char *pq)
{
    char url[1024];
    struct resp r;
    long st;
    snprintf(url, sizeof(url), "%s%s", s->base, pq);
    if (http_post(url, &r) != 0) {
        resp_free(&r);
        return -1;
    }
    st = r.status;
    resp_free(&r);
    return st;
}

static void assert_alive(struct stub *s)
{
    char ocid[40];
    assert_int_equal(stub_ocid(s, "still-alive", ocid), 200);
    assert_int_equal(strlen(ocid), 32);
}

static void test_latency(void **state)
{
    struct stub *s = *state;
    const char *args[] = {"--latency-ms", "300", NULL};
    double ms = -1;

    assert_int_equal(stub_start(s, args), 0);
    assert_int_equal(get_status(s, "/maplestory/v1/id?character_name=x", "k", &ms), 200);
    if (ms < 300)
        fail_msg("answered in %.1f ms, want >= 300", ms);
    /* control endpoints are not delayed */
    assert_int_equal(get_status(s, "/__stub/stats", NULL, &ms), 200);
    TU_ASSERT_CMP(ms, <, 250);

    /* five connections at once take ~300 ms, not 1500: the loop never sleeps */
    const char *req = "GET /maplestory/v1/id?character_name=p HTTP/1.1\r\nHost: x\r\n"
                      "x-nxopen-api-key: k\r\n\r\n";
    int fds[5];
    double t0 = now_ms();
    for (int i = 0; i < 5; i++) {
        fds[i] = raw_connect(s->port);
        TU_ASSERT_CMP(fds[i], >=, 0);
        assert_int_equal(send(fds[i], req, strlen(req), 0), (ssize_t)strlen(req));
    }
    for (int i = 0; i < 5; i++) {
        char *in;
        size_t len;
        assert_int_equal(raw_exchange(fds[i], "", 0, 1, 3000, &in, &len), 1);
        assert_memory_equal(in, "HTTP/1.1 200", 12);
        free(in);
        close(fds[i]);
    }
    double total = now_ms() - t0;
    if (total < 300 || total > 1200)
        fail_msg("5 concurrent delayed calls took %.1f ms", total);
}

static void test_runtime_config(void **state)
{
    struct stub *s = *state;
    double ms = -1;

    assert_int_equal(stub_start(s, NULL), 0);
    assert_int_equal(get_status(s, "/maplestory/v1/id?character_name=x", "k", &ms), 200);
    TU_ASSERT_CMP(ms, <, 250);
    assert_int_equal(post(s, "/__stub/config?latency_ms=250"), 200);
    assert_int_equal(get_status(s, "/maplestory/v1/id?character_name=x", "k", &ms), 200);
    if (ms < 250)
        fail_msg("answered in %.1f ms after latency_ms=250", ms);
    assert_int_equal(post(s, "/__stub/config?latency_ms=0&fail_rate=1&fail_status=503"), 200);
    assert_int_equal(get_status(s, "/maplestory/v1/id?character_name=x", "k", &ms), 503);
    TU_ASSERT_CMP(ms, <, 250);
    assert_int_equal(post(s, "/__stub/config?fail_rate=0"), 200);
    assert_int_equal(get_status(s, "/maplestory/v1/id?character_name=x", "k", NULL), 200);
    /* bad values are refused and change nothing */
    assert_int_equal(post(s, "/__stub/config?fail_rate=2"), 400);
    assert_int_equal(post(s, "/__stub/config?latency_ms=-1"), 400);
    assert_int_equal(post(s, "/__stub/config?latency_ms=5&fail_status=99"), 400);
    assert_int_equal(get_status(s, "/maplestory/v1/id?character_name=x", "k", &ms), 200);
    TU_ASSERT_CMP(ms, <, 250);
    /* only POST changes it */
    assert_int_equal(get_status(s, "/__stub/reset", NULL, NULL), 405);
}

static void test_fail_rate(void **state)
{
    struct stub *s = *state;
    const char *all[] = {"--fail-rate", "1.0", "--fail-status", "503", NULL};
    const char *half[] = {"--fail-rate", "0.5", NULL};
    char pattern1[200], pattern2[200];
    struct resp r;
    char url[256];

    assert_int_equal(stub_start(s, all), 0);
    for (int i = 0; i < 20; i++) {
        const char *p =
            i % 2 ? "/maplestory/v1/character/list" : "/maplestory/v1/id?character_name=z";
        snprintf(url, sizeof(url), "%s%s", s->base, p);
        assert_int_equal(http_get(url, "k", false, &r), 0);
        assert_int_equal(r.status, 503);
        assert_non_null(strstr(r.body, "{\"error\":{\"name\":\"OPENAPI"));
        resp_free(&r);
    }
    assert_int_equal(stub_stat(s, "failures_injected"), 20);
    assert_int_equal(stub_stat(s, "total"), 20);
    stub_stop(s);

    /* 0.5: about half, and the same calls fail in every run */
    for (int run = 0; run < 2; run++) {
        char *pat = run ? pattern2 : pattern1;
        int fails = 0;
        assert_int_equal(stub_start(s, half), 0);
        for (int i = 0; i < 100; i++) {
            long st = get_status(s, "/maplestory/v1/id?character_name=h", "k", NULL);
            assert_true(st == 200 || st == 500);
            pat[i] = st == 200 ? '.' : 'x';
            fails += st == 500;
        }
        pat[100] = '\0';
        TU_ASSERT_CMP(fails, >, 25);
        TU_ASSERT_CMP(fails, <, 75);
        assert_int_equal(stub_stat(s, "failures_injected"), fails);
        stub_stop(s);
    }
    assert_string_equal(pattern1, pattern2);
}

static void test_stats_and_reset(void **state)
{
    struct stub *s = *state;
    char ocid[40], q[256];

    assert_int_equal(stub_start(s, NULL), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(stub_ocid(s, "통계", ocid), 200);
    snprintf(q, sizeof(q), "/maplestory/v1/character/basic?ocid=%s", ocid);
    assert_int_equal(get_status(s, q, "k", NULL), 200);
    assert_int_equal(get_status(s, q, "k", NULL), 200);
    snprintf(q, sizeof(q), "/maplestory/v1/character/item-equipment?ocid=%s", ocid);
    assert_int_equal(get_status(s, q, "k", NULL), 200);
    assert_int_equal(stub_stat(s, "/maplestory/v1/id"), 3);
    assert_int_equal(stub_stat(s, "/maplestory/v1/character/basic"), 2);
    assert_int_equal(stub_stat(s, "/maplestory/v1/character/item-equipment"), 1);
    assert_int_equal(stub_stat(s, "/maplestory/v1/character/list"), 0);
    assert_int_equal(stub_stat(s, "total"), 6);
    assert_int_equal(stub_stat(s, "failures_injected"), 0);
    assert_int_equal(post(s, "/__stub/reset"), 200);
    assert_int_equal(stub_stat(s, "total"), 0);
    assert_int_equal(stub_stat(s, "/maplestory/v1/id"), 0);
    assert_int_equal(get_status(s, "/__stub/nothing", NULL, NULL), 404);
    assert_int_equal(get_status(s, "/elsewhere", NULL, NULL), 404);
}

static void expect_error_then_close(struct stub *s, const char *buf, size_t len,
                                    const char *status_prefix)
{
    int fd = raw_connect(s->port);
    char *in;
    size_t in_len;
    TU_ASSERT_CMP(fd, >=, 0);
    raw_exchange(fd, buf, len, 1, 5000, &in, &in_len);
    if (in_len < strlen(status_prefix) || memcmp(in, status_prefix, strlen(status_prefix)) != 0)
        fail_msg("want '%s', got '%.60s'", status_prefix, in);
    assert_non_null(strstr(in, "Connection: close"));
    free(in);
    /* and the server closes the connection */
    char tmp[4096];
    TU_ASSERT_CMP(raw_read_to_eof(fd, tmp, sizeof(tmp), 5000), >=, 0);
    close(fd);
    assert_alive(s);
}

static void test_hostile_input(void **state)
{
    struct stub *s = *state;
    assert_int_equal(stub_start(s, NULL), 0);

    static const char garbage[] = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n";
    expect_error_then_close(s, garbage, sizeof(garbage) - 1, "HTTP/1.1 400");
    expect_error_then_close(s, "GET / HTTP/9.9\r\n\r\n", 18, "HTTP/1.1 400");
    expect_error_then_close(s, "GET /x HTTP/1.1\r\nBad Header\r\n\r\n", 31, "HTTP/1.1 400");
    expect_error_then_close(s, "POST /__stub/reset HTTP/1.1\r\nContent-Length: zz\r\n\r\n", 50,
                            "HTTP/1.1 400");

    /* 100 KB of headers */
    size_t big = 100000;
    char *buf = malloc(big + 200);
    int n = snprintf(buf, 200, "GET /maplestory/v1/id?character_name=a HTTP/1.1\r\nX-Big: ");
    memset(buf + n, 'a', big);
    memcpy(buf + n + big, "\r\n\r\n", 4);
    expect_error_then_close(s, buf, (size_t)n + big + 4, "HTTP/1.1 431");
    /* an 8 KB request target */
    n = snprintf(buf, 200, "GET /maplestory/v1/id?character_name=");
    memset(buf + n, 'b', 8000);
    n += 8000;
    n += snprintf(buf + n, 100, " HTTP/1.1\r\nHost: x\r\n\r\n");
    expect_error_then_close(s, buf, (size_t)n, "HTTP/1.1 414");
    /* a body past the limit */
    n = snprintf(buf, 200, "POST /__stub/config HTTP/1.1\r\nContent-Length: 200000\r\n\r\n");
    memset(buf + n, 'c', 80000);
    expect_error_then_close(s, buf, (size_t)n + 80000, "HTTP/1.1 413");
    free(buf);

    /* a half request, then the client leaves */
    int fd = raw_connect(s->port);
    assert_int_equal(send(fd, "GET /maplestory/v1/id?char", 26, 0), 26);
    close(fd);
    /* binary noise without any line end */
    fd = raw_connect(s->port);
    char noise[4096];
    for (size_t i = 0; i < sizeof(noise); i++)
        noise[i] = (char)(i * 131 + 7);
    send(fd, noise, sizeof(noise), MSG_NOSIGNAL);
    close(fd);
    assert_alive(s);
    TU_ASSERT_CMP(stub_stat(s, "parse_errors"), >=, 4);
    TU_ASSERT_CMP(stub_stat(s, "too_large"), >=, 3);

    /* HTTP/1.0 without keep-alive: answered, then closed */
    fd = raw_connect(s->port);
    const char *r10 =
        "GET /maplestory/v1/id?character_name=old HTTP/1.0\r\nx-nxopen-api-key: k\r\n\r\n";
    char *in;
    size_t in_len;
    assert_int_equal(raw_exchange(fd, r10, strlen(r10), 1, 5000, &in, &in_len), 1);
    assert_non_null(strstr(in, "Connection: close"));
    free(in);
    char tmp[256];
    TU_ASSERT_CMP(raw_read_to_eof(fd, tmp, sizeof(tmp), 5000), >=, 0);
    close(fd);
}

static void test_pipelining_1000(void **state)
{
    struct stub *s = *state;
    const int N = 1000;
    size_t cap = (size_t)N * 128, len = 0;
    char *buf = malloc(cap), *in;
    size_t in_len;

    assert_int_equal(stub_start(s, NULL), 0);
    size_t quarter = 0; /* bytes of the first N/4 requests */
    for (int i = 0; i < N; i++) {
        if (i == N / 4)
            quarter = len;
        len += (size_t)snprintf(buf + len, cap - len,
                                "GET /maplestory/v1/id?character_name=pipe%d HTTP/1.1\r\n"
                                "Host: x\r\nx-nxopen-api-key: k\r\n\r\n",
                                i);
    }
    int fd = raw_connect(s->port);
    TU_ASSERT_CMP(fd, >=, 0);
    double t0 = now_ms();
    int got = raw_exchange(fd, buf, len, N, 20000, &in, &in_len);
    double took = now_ms() - t0;
    close(fd);
    if (got != N)
        fail_msg("%d of %d pipelined answers", got, N);
    print_message("1000 pipelined requests answered in %.1f ms\n", took);

    /* in order: the i-th answer is pipe<i>'s ocid */
    const char *p = in;
    int sampled = 0;
    for (int i = 0; i < N; i++) {
        assert_memory_equal(p, "HTTP/1.1 200 OK", 15);
        p = strstr(p, "{\"ocid\":\"");
        assert_non_null(p);
        if (i % 97 == 0 || i == N - 1) {
            char name[32], want[40];
            snprintf(name, sizeof(name), "pipe%d", i);
            assert_int_equal(stub_ocid(s, name, want), 200);
            sampled++;
            if (memcmp(p + 9, want, 32) != 0)
                fail_msg("answer %d is not pipe%d's", i, i);
        }
        p = strchr(p + 9, '}'); /* the next answer starts right after */
        assert_non_null(p);
        p++;
    }
    assert_int_equal(*p, '\0');
    free(in);
    assert_int_equal(stub_stat(s, "/maplestory/v1/id"), N + sampled);

    /* with latency the per-connection queue fills: parsing pauses and
     * resumes, and the order still holds */
    assert_int_equal(post(s, "/__stub/config?latency_ms=20"), 200);
    fd = raw_connect(s->port);
    got = raw_exchange(fd, buf, quarter, N / 4, 20000, &in, &in_len);
    close(fd);
    assert_int_equal(got, N / 4);
    p = in;
    for (int i = 0; i < N / 4; i++) {
        char name[32], want[40];
        assert_memory_equal(p, "HTTP/1.1 200 OK", 15);
        p = strstr(p, "{\"ocid\":\"");
        assert_non_null(p);
        if (i % 50 == 0) {
            snprintf(name, sizeof(name), "pipe%d", i);
            assert_int_equal(stub_ocid(s, name, want), 200);
            assert_memory_equal(p + 9, want, 32);
        }
        p = strchr(p + 9, '}') + 1;
    }
    free(in);
    free(buf);
}

static void test_client_closes_mid_answer(void **state)
{
    struct stub *s = *state;
    char ocid[40], req[256];
    assert_int_equal(stub_start(s, NULL), 0);
    assert_int_equal(stub_ocid(s, "큰장비", ocid), 200);
    snprintf(req, sizeof(req),
             "GET /maplestory/v1/character/item-equipment?ocid=%s HTTP/1.1\r\n"
             "x-nxopen-api-key: k\r\n\r\n",
             ocid);
    for (int i = 0; i < 20; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        int small = 2048;
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
        close(fd);
        fd = raw_connect(s->port);
        TU_ASSERT_CMP(fd, >=, 0);
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
        /* several big answers queued, then read a little and go */
        for (int k = 0; k < 4; k++)
            send(fd, req, strlen(req), MSG_NOSIGNAL);
        char tmp[512];
        recv(fd, tmp, sizeof(tmp), 0);
        if (i % 2) {
            struct linger lg = {1, 0}; /* RST instead of FIN */
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        }
        close(fd);
    }
    /* with latency: the client is gone before its answer is due */
    assert_int_equal(post(s, "/__stub/config?latency_ms=200"), 200);
    for (int i = 0; i < 10; i++) {
        int fd = raw_connect(s->port);
        send(fd, req, strlen(req), MSG_NOSIGNAL);
        close(fd);
    }
    usleep(400000);
    assert_int_equal(post(s, "/__stub/config?latency_ms=0"), 200);
    assert_alive(s);
    /* every abandoned connection was cleaned up (only the stats one is open) */
    long long cur = -1;
    for (int i = 0; i < 50 && cur != 1; i++) {
        cur = stub_stat(s, "current");
        if (cur != 1)
            usleep(100000);
    }
    assert_int_equal(cur, 1);
}

static void test_connection_limit(void **state)
{
    struct stub *s = *state;
    const char *args[] = {"--max-conns", "3", NULL};
    int fds[3], extra[2];
    char tmp[64];

    assert_int_equal(stub_start(s, args), 0);
    for (int i = 0; i < 3; i++) {
        fds[i] = raw_connect(s->port);
        TU_ASSERT_CMP(fds[i], >=, 0);
    }
    usleep(100000);
    for (int i = 0; i < 2; i++) {
        extra[i] = raw_connect(s->port);
        TU_ASSERT_CMP(extra[i], >=, 0);
        /* accepted and closed at once: EOF without an answer */
        assert_int_equal(raw_read_to_eof(extra[i], tmp, sizeof(tmp), 3000), 0);
        close(extra[i]);
    }
    for (int i = 0; i < 3; i++)
        close(fds[i]);
    /* the server sees those closes in its own time: until then a new
     * connection may still be refused, so ask until one gets through */
    long long refused = -1;
    int turned_away = 0; /* our own stats calls refused meanwhile */
    for (int i = 0; i < 50 && refused < 0; i++) {
        refused = stub_stat(s, "refused");
        if (refused < 0) {
            turned_away++;
            usleep(100000);
        }
    }
    assert_int_equal(refused, 2 + turned_away);
    assert_alive(s);
}

static void test_keepalive_reuse(void **state)
{
    struct stub *s = *state;
    const char *req = "GET /maplestory/v1/character/list HTTP/1.1\r\nHost: x\r\n"
                      "X-NXOPEN-API-KEY: caseless\r\n\r\n";
    assert_int_equal(stub_start(s, NULL), 0);
    int fd = raw_connect(s->port);
    for (int i = 0; i < 50; i++) {
        char *in;
        size_t len;
        assert_int_equal(raw_exchange(fd, req, strlen(req), 1, 3000, &in, &len), 1);
        assert_memory_equal(in, "HTTP/1.1 200 OK", 15);
        assert_non_null(strstr(in, "Connection: keep-alive"));
        free(in);
    }
    close(fd);
    assert_int_equal(stub_stat(s, "accepted"), 2); /* that one and the stats call */
}

static void test_idle_timeout(void **state)
{
    struct stub *s = *state;
    const char *args[] = {"--idle-timeout-ms", "300", NULL};
    char tmp[64];

    assert_int_equal(stub_start(s, args), 0);
    int fd = raw_connect(s->port);
    TU_ASSERT_CMP(fd, >=, 0);
    double t0 = now_ms();
    assert_int_equal(raw_read_to_eof(fd, tmp, sizeof(tmp), 3000), 0);
    double took = now_ms() - t0;
    if (took < 250 || took > 2000)
        fail_msg("idle connection closed after %.1f ms, want ~300", took);
    close(fd);
    assert_alive(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_latency, stub_setup, stub_teardown),
        cmocka_unit_test_setup_teardown(test_runtime_config, stub_setup, stub_teardown),
        cmocka_unit_test_setup_teardown(test_fail_rate, stub_setup, stub_teardown),
        cmocka_unit_test_setup_teardown(test_stats_and_reset, stub_setup, stub_teardown),
        cmocka_unit_test_setup_teardown(test_hostile_input, stub_setup, stub_teardown),
        cmocka_unit_test_setup_teardown(test_pipelining_1000, stub_setup, stub_teardown),
        cmocka_unit_test_setup_teardown(test_client_closes_mid_answer, stub_setup, stub_teardown),
        cmocka_unit_test_setup_teardown(test_connection_limit, stub_setup, stub_teardown),
        cmocka_unit_test_setup_teardown(test_keepalive_reuse, stub_setup, stub_teardown),
        cmocka_unit_test_setup_teardown(test_idle_timeout, stub_setup, stub_teardown),
    };
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
