/* test_http_core.c - the socket-free protocol core: keep-alive, pipelining
 * with out-of-order deferred answers, HTTP/1.0, Connection: close, chunked
 * bodies, every limit, routing errors, traceparent, documents with gzip and
 * ETag, backpressure, and requests answered after the client left. */
#define _GNU_SOURCE /* memmem */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "mx_testutil.h"
#include <zlib.h>

#include "http_core_harness.h"
#include "mx_err.h"
#include "http_resp.h"

static size_t feed_str(struct hh *h, const char *s)
{
    return mx__http_conn_feed(&h->conn, s, strlen(s));
}

static int parse_all(struct hh *h, struct presp *out, int max)
{
    return parse_responses(h->out, h->out_len, out, max, NULL, NULL);
}

static void test_keepalive(void **st)
{
    struct hh *h = hh_new(NULL);
    const char *req = "GET /fast HTTP/1.1\r\nHost: x\r\n\r\n"
                      "GET /fast HTTP/1.1\r\nHost: x\r\n\r\n"
                      "GET /fast HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_int_equal(feed_str(h, req), strlen(req));
    struct presp p[4];
    char v[128];
    assert_int_equal(parse_all(h, p, 4), 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(p[i].status, 200);
        assert_int_equal(p[i].body_len, 4);
        assert_memory_equal(p[i].body, "fast", 4);
        assert_true(presp_header(&p[i], "Date", v, sizeof(v)));
        assert_non_null(strstr(v, " GMT"));
        assert_true(presp_header(&p[i], "Content-Type", v, sizeof(v)));
        assert_string_equal(v, "text/plain");
        assert_true(presp_header(&p[i], "traceparent", v, sizeof(v)));
        assert_int_equal(strlen(v), 55);
        assert_false(presp_header(&p[i], "Connection", v, sizeof(v)));
    }
    assert_false(mx__http_conn_done(&h->conn));
    assert_true(mx__http_conn_idle(&h->conn));
    assert_int_equal(h->ctr.responses_2xx, 3);
    hh_free(h);
}

/* 100 pipelined requests in one buffer, every third deferred and answered
 * in reverse order: the answers still leave in request order. */
static void test_pipeline_order(void **st)
{
    struct mx_http_opts o = {.max_pipeline = 200};
    struct hh *h = hh_new(&o);
    char *buf = malloc(100 * 64);
    size_t len = 0;
    for (int i = 0; i < 100; i++)
        len += (size_t)sprintf(
            buf + len,
            i % 3 == 0 ? "GET /slow/%d HTTP/1.1\r\n\r\n" : "GET /chars/n%d HTTP/1.1\r\n\r\n", i);
    assert_int_equal(mx__http_conn_feed(&h->conn, buf, len), len);
    assert_int_equal(h->out_len, 0); /* request 0 is deferred: nothing may leave */
    assert_int_equal(h->ndeferred, 34);
    hh_answer_deferred(h);
    TU_ASSERT_CMP(h->wakes, >, 0);
    struct presp *p = calloc(101, sizeof(*p));
    assert_int_equal(parse_all(h, p, 101), 100);
    for (int i = 0; i < 100; i++) {
        char want[32];
        int n = sprintf(want, i % 3 == 0 ? "slow %d" : "n%d", i);
        assert_int_equal(p[i].status, 200);
        assert_int_equal(p[i].body_len, (size_t)n);
        assert_memory_equal(p[i].body, want, (size_t)n);
    }
    free(p);
    free(buf);
    hh_free(h);
}

static void test_pipeline_backpressure(void **st)
{
    struct mx_http_opts o = {.max_pipeline = 4};
    struct hh *h = hh_new(&o);
    char buf[1024];
    size_t len = 0;
    for (int i = 0; i < 10; i++)
        len += (size_t)sprintf(buf + len, "GET /slow/%d HTTP/1.1\r\n\r\n", i);
    size_t used = mx__http_conn_feed(&h->conn, buf, len);
    TU_ASSERT_CMP(used, <, len);
    assert_int_equal(h->ndeferred, 4);
    assert_false(mx__http_conn_can_parse(&h->conn));
    assert_int_equal(*mx__http_ctr_limit(&h->ctr, MX_HTTP_LIM_PIPELINE), 1);
    hh_answer_deferred(h);
    assert_true(mx__http_conn_can_parse(&h->conn));
    used += mx__http_conn_feed(&h->conn, buf + used, len - used);
    assert_int_equal(h->ndeferred, 4);
    hh_answer_deferred(h);
    used += mx__http_conn_feed(&h->conn, buf + used, len - used);
    assert_int_equal(used, len);
    hh_answer_deferred(h);
    struct presp p[11];
    assert_int_equal(parse_all(h, p, 11), 10);
    for (int i = 0; i < 10; i++) {
        char want[16];
        sprintf(want, "slow %d", i);
        assert_memory_equal(p[i].body, want, strlen(want));
    }
    hh_free(h);
}

static void test_output_backpressure(void **st)
{
    struct mx_http_opts o = {.max_output_bytes = 100};
    struct hh *h = hh_new(&o);
    h->hold_writes = true;
    const char *req = "GET /fast HTTP/1.1\r\n\r\nGET /fast HTTP/1.1\r\n\r\n";
    size_t used = feed_str(h, req);
    assert_int_equal(used, strlen(req) / 2);
    assert_false(mx__http_conn_can_parse(&h->conn));
    assert_int_equal(*mx__http_ctr_limit(&h->ctr, MX_HTTP_LIM_OUTPUT), 1);
    hh_release_held(h);
    assert_true(mx__http_conn_can_parse(&h->conn));
    used += mx__http_conn_feed(&h->conn, req + used, strlen(req) - used);
    assert_int_equal(used, strlen(req));
    hh_release_held(h);
    struct presp p[3];
    assert_int_equal(parse_all(h, p, 3), 2);
    hh_free(h);
}

static void test_http10(void **st)
{
    struct hh *h = hh_new(NULL);
    feed_str(h, "GET /fast HTTP/1.0\r\n\r\nGET /fast HTTP/1.0\r\n\r\n");
    struct presp p[3];
    char v[64];
    assert_int_equal(parse_all(h, p, 3), 1);
    assert_true(presp_header(&p[0], "Connection", v, sizeof(v)));
    assert_string_equal(v, "close");
    assert_true(mx__http_conn_done(&h->conn));
    hh_free(h);

    h = hh_new(NULL);
    feed_str(h, "GET /fast HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_int_equal(parse_all(h, p, 3), 1);
    assert_true(presp_header(&p[0], "Connection", v, sizeof(v)));
    assert_string_equal(v, "keep-alive");
    assert_false(mx__http_conn_done(&h->conn));
    hh_free(h);
}

static void test_connection_close(void **st)
{
    struct hh *h = hh_new(NULL);
    const char *req = "GET /fast HTTP/1.1\r\nConnection: close\r\n\r\nGET /fast HTTP/1.1\r\n\r\n";
    assert_int_equal(feed_str(h, req), strlen(req));
    struct presp p[3];
    char v[64];
    assert_int_equal(parse_all(h, p, 3), 1);
    assert_true(presp_header(&p[0], "Connection", v, sizeof(v)));
    assert_string_equal(v, "close");
    assert_true(mx__http_conn_done(&h->conn));
    hh_free(h);
}

static void test_chunked(void **st)
{
    struct hh *h = hh_new(NULL);
    const char *req = "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\n\r\n";
    /* byte by byte: every callback sees split data */
    for (size_t i = 0; req[i]; i++)
        assert_int_equal(mx__http_conn_feed(&h->conn, req + i, 1), 1);
    struct presp p[2];
    assert_int_equal(parse_all(h, p, 2), 1);
    assert_int_equal(p[0].status, 200);
    assert_int_equal(p[0].body_len, 12);
    assert_memory_equal(p[0].body, "hello, world", 12);
    hh_free(h);
}

static void assert_error_body(const struct presp *p, int status, const char *code)
{
    char want[64];
    sprintf(want, "{\"status\":%d,\"code\":\"%s\",\"message\":\"", status, code);
    assert_int_equal(p->status, status);
    TU_ASSERT_CMP(p->body_len, >, strlen(want));
    assert_memory_equal(p->body, want, strlen(want));
    assert_non_null(memmem(p->body, p->body_len, "\"timestamp\":\"20", 15));
    char v[64];
    assert_true(presp_header(p, "Content-Type", v, sizeof(v)));
    assert_string_equal(v, "application/json");
}

static void test_431(void **st)
{
    struct hh *h = hh_new(NULL);
    size_t big = 17 * 1024;
    char *req = malloc(big + 128);
    int n = sprintf(req, "GET /fast HTTP/1.1\r\nX-Big: ");
    memset(req + n, 'a', big);
    strcpy(req + n + big, "\r\n\r\n");
    feed_str(h, req);
    struct presp p[2];
    char v[32];
    assert_int_equal(parse_all(h, p, 2), 1);
    assert_error_body(&p[0], 431, "HEADERS_TOO_LARGE");
    assert_true(presp_header(&p[0], "Connection", v, sizeof(v)));
    assert_int_equal(*mx__http_ctr_limit(&h->ctr, MX_HTTP_LIM_HEADER_SIZE), 1);
    assert_true(mx__http_conn_done(&h->conn));
    free(req);
    hh_free(h);

    /* too many headers is 431 too */
    h = hh_new(NULL);
    feed_str(h, "GET /fast HTTP/1.1\r\n");
    for (int i = 0; i < 150; i++)
        feed_str(h, "A: b\r\n");
    feed_str(h, "\r\n");
    assert_int_equal(parse_all(h, p, 2), 1);
    assert_int_equal(p[0].status, 431);
    hh_free(h);
}

static void test_413(void **st)
{
    struct hh *h = hh_new(NULL);
    feed_str(h, "POST /echo HTTP/1.1\r\nContent-Length: 2097152\r\n\r\nxxxx");
    struct presp p[2];
    assert_int_equal(parse_all(h, p, 2), 1);
    assert_error_body(&p[0], 413, "PAYLOAD_TOO_LARGE");
    assert_int_equal(*mx__http_ctr_limit(&h->ctr, MX_HTTP_LIM_BODY_SIZE), 1);
    hh_free(h);

    struct mx_http_opts o = {.max_body_bytes = 1000};
    h = hh_new(&o);
    feed_str(h, "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
    char chunk[700];
    memset(chunk, 'z', sizeof(chunk));
    for (int i = 0; i < 2; i++) {
        feed_str(h, "2bc\r\n");
        mx__http_conn_feed(&h->conn, chunk, sizeof(chunk));
        feed_str(h, "\r\n");
    }
    assert_int_equal(parse_all(h, p, 2), 1);
    assert_int_equal(p[0].status, 413);
    hh_free(h);
}

static void test_malformed(void **st)
{
    static const char *const bad[] = {
        "GARBAGE\r\n\r\n",
        "GET /fast HTTP/9.9\r\n\r\n",
        "GET /fast HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        "GET /fast HTTP/1.1\r\nBad Header\r\n\r\n",
        "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        "GET http://example.com/fast HTTP/1.1\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct hh *h = hh_new(NULL);
        feed_str(h, bad[i]);
        struct presp p[2];
        assert_int_equal(parse_all(h, p, 2), 1);
        assert_error_body(&p[0], 400, "C001");
        assert_true(mx__http_conn_done(&h->conn) || !mx__http_conn_can_parse(&h->conn) || i == 5);
        hh_free(h);
    }
}

static void test_routing_errors(void **st)
{
    struct hh *h = hh_new(NULL);
    feed_str(h, "GET /nope HTTP/1.1\r\n\r\n"
                "POST /fast HTTP/1.1\r\nContent-Length: 0\r\n\r\n"
                "PUT /chars/x HTTP/1.1\r\nContent-Length: 0\r\n\r\n"
                "GET //fast HTTP/1.1\r\n\r\n"
                "GET /chars/ HTTP/1.1\r\n\r\n"
                "GET /chars/%FF HTTP/1.1\r\n\r\n"
                "GET /chars/%G1 HTTP/1.1\r\n\r\n"
                "GET /chars/a%00b HTTP/1.1\r\n\r\n"
                "GET /chars/%C0%AF HTTP/1.1\r\n\r\n"
                "GET /chars/%ED%A0%80 HTTP/1.1\r\n\r\n"
                "GET /bad HTTP/1.1\r\n\r\n"
                "GET /fast/ HTTP/1.1\r\n\r\n");
    struct presp p[13];
    char v[64];
    assert_int_equal(parse_all(h, p, 13), 12);
    assert_error_body(&p[0], 404, "NOT_FOUND");
    assert_error_body(&p[1], 405, "METHOD_NOT_ALLOWED");
    assert_true(presp_header(&p[1], "Allow", v, sizeof(v)));
    assert_string_equal(v, "GET, HEAD");
    assert_int_equal(p[2].status, 405);
    assert_true(presp_header(&p[2], "Allow", v, sizeof(v)));
    assert_string_equal(v, "GET, HEAD, DELETE");
    for (int i = 3; i <= 9; i++)
        assert_error_body(&p[i], 400, "C001");
    assert_int_equal(p[10].status, 500);
    assert_int_equal(p[11].status, 404);
    /* the 400s above are answers, not connection errors: still open */
    assert_false(mx__http_conn_done(&h->conn));
    hh_free(h);
}

static void test_params_query_headers(void **st)
{
    struct hh *h = hh_new(NULL);
    feed_str(h, "GET /chars/%EC%97%90%EB%B0%98 HTTP/1.1\r\n\r\n"
                "GET /chars/a+b HTTP/1.1\r\n\r\n"
                "GET /q?x=1&a=b%20c+d&a=second HTTP/1.1\r\n\r\n"
                "GET /q?a HTTP/1.1\r\n\r\n"
                "GET /q?a=%zz HTTP/1.1\r\n\r\n"
                "GET /hdr HTTP/1.1\r\nx-TEST:   value with spaces  \r\n\r\n"
                "GET /admin/x/y%2Fz HTTP/1.1\r\n\r\n"
                "DELETE /chars/x HTTP/1.1\r\n\r\n"
                "HEAD /fast HTTP/1.1\r\n\r\n");
    bool head_only[9] = {[8] = true};
    struct presp p[10];
    char v[64];
    assert_int_equal(parse_responses(h->out, h->out_len, p, 10, head_only, NULL), 9);
    assert_int_equal(p[0].body_len, strlen("에반"));
    assert_memory_equal(p[0].body, "에반", strlen("에반"));
    assert_memory_equal(p[1].body, "a+b", 3); /* '+' is literal in a path */
    assert_memory_equal(p[2].body, "b c d", 5);
    assert_true(presp_header(&p[2], "X-RateLimit-Remaining", v, sizeof(v)));
    assert_string_equal(v, "7");
    assert_int_equal(p[3].body_len, 0);
    assert_int_equal(p[4].status, 400);
    assert_memory_equal(p[5].body, "value with spaces", 17);
    assert_int_equal(p[5].body_len, 17);
    assert_memory_equal(p[6].body, "x/y/z", 5);
    assert_int_equal(p[7].status, 204);
    assert_false(presp_header(&p[7], "Content-Length", v, sizeof(v)));
    assert_int_equal(p[8].status, 200);
    assert_true(presp_header(&p[8], "Content-Length", v, sizeof(v)));
    assert_string_equal(v, "4");
    /* nothing after the HEAD answer's headers */
    TU_ASSERT_CMP(h->out_len, >=, 4);
    TU_ASSERT_CMP(memcmp(h->out + h->out_len - 4, "\r\n\r\n", 4), ==, 0);
    hh_free(h);
}

static void test_traceparent_echo(void **st)
{
    struct hh *h = hh_new(NULL);
    const char *tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    char req[256];
    sprintf(req, "GET /fast HTTP/1.1\r\ntraceparent: %s\r\n\r\n", tp);
    feed_str(h, req);
    feed_str(h, "GET /fast HTTP/1.1\r\ntraceparent: 00-zz-00f067aa0ba902b7-01\r\n\r\n");
    struct presp p[3];
    char v[80];
    assert_int_equal(parse_all(h, p, 3), 2);
    assert_true(presp_header(&p[0], "traceparent", v, sizeof(v)));
    assert_string_equal(v, tp);
    assert_true(presp_header(&p[1], "traceparent", v, sizeof(v)));
    uint8_t t[16], s[8], f;
    assert_true(mx_http_traceparent_parse(v, strlen(v), t, s, &f));
    assert_null(strstr(v, "4bf92f3577b34da6a3ce929d0e0e4736"));
    hh_free(h);
}

static void test_doc(void **st)
{
    struct hh *h = hh_new(NULL);
    char req[512];
    sprintf(req,
            "GET /doc HTTP/1.1\r\nAccept-Encoding: gzip, deflate\r\n\r\n"
            "GET /doc HTTP/1.1\r\nAccept-Encoding: gzip;q=0, identity\r\n\r\n"
            "GET /doc HTTP/1.1\r\nIf-None-Match: W/%s\r\n\r\n"
            "GET /doc HTTP/1.1\r\nAccept-Encoding: gzip\r\nIf-None-Match: %s\r\n\r\n"
            "GET /doc HTTP/1.1\r\nIf-None-Match: \"other\"\r\n\r\n",
            h->doc->etag, h->doc->etag_gz);
    feed_str(h, req);
    struct presp p[6];
    char v[80];
    assert_int_equal(parse_all(h, p, 6), 5);
    /* gzip variant */
    assert_int_equal(p[0].status, 200);
    assert_true(presp_header(&p[0], "Content-Encoding", v, sizeof(v)));
    assert_string_equal(v, "gzip");
    assert_true(presp_header(&p[0], "Vary", v, sizeof(v)));
    assert_string_equal(v, "Accept-Encoding");
    assert_true(presp_header(&p[0], "ETag", v, sizeof(v)));
    assert_string_equal(v, h->doc->etag_gz);
    unsigned char plain[256];
    z_stream zs = {0};
    assert_int_equal(inflateInit2(&zs, 15 + 16), Z_OK);
    zs.next_in = (Bytef *)p[0].body;
    zs.avail_in = (uInt)p[0].body_len;
    zs.next_out = plain;
    zs.avail_out = sizeof(plain);
    assert_int_equal(inflate(&zs, Z_FINISH), Z_STREAM_END);
    assert_int_equal(zs.total_out, h->doc->plain->len);
    assert_memory_equal(plain, h->doc->plain->data, h->doc->plain->len);
    inflateEnd(&zs);
    /* q=0: plain */
    assert_false(presp_header(&p[1], "Content-Encoding", v, sizeof(v)));
    assert_int_equal(p[1].body_len, h->doc->plain->len);
    /* 304s */
    assert_int_equal(p[2].status, 304);
    assert_int_equal(p[2].body_len, 0);
    assert_true(presp_header(&p[2], "ETag", v, sizeof(v)));
    assert_int_equal(p[3].status, 304);
    assert_int_equal(p[4].status, 200);
    hh_free(h);
}

static void test_head_timeout(void **st)
{
    struct hh *h = hh_new(NULL);
    feed_str(h, "GET /slow/1 HTTP/1.1\r\n\r\nGET /fa");
    assert_true(h->conn.in_head);
    mx__http_conn_head_timeout(&h->conn);
    assert_int_equal(h->out_len, 0); /* the deferred answer comes first */
    hh_answer_deferred(h);
    struct presp p[3];
    char v[32];
    assert_int_equal(parse_all(h, p, 3), 2);
    assert_int_equal(p[0].status, 200);
    assert_error_body(&p[1], 408, "REQUEST_TIMEOUT");
    assert_true(presp_header(&p[1], "Connection", v, sizeof(v)));
    assert_string_equal(v, "close");
    assert_int_equal(*mx__http_ctr_limit(&h->ctr, MX_HTTP_LIM_HEADER_TIME), 1);
    assert_true(mx__http_conn_done(&h->conn));
    hh_free(h);
}

static void test_eof_then_answer(void **st)
{
    struct hh *h = hh_new(NULL);
    feed_str(h, "GET /slow/1 HTTP/1.1\r\n\r\n");
    mx__http_conn_eof(&h->conn);
    assert_false(mx__http_conn_done(&h->conn));
    hh_answer_deferred(h);
    struct presp p[2];
    char v[32];
    assert_int_equal(parse_all(h, p, 2), 1);
    assert_true(presp_header(&p[0], "Connection", v, sizeof(v)));
    assert_true(mx__http_conn_done(&h->conn));
    hh_free(h);
}

static void test_answer_after_client_left(void **st)
{
    struct hh *h = hh_new(NULL);
    feed_str(h, "GET /slow/1 HTTP/1.1\r\n\r\nGET /fast HTTP/1.1\r\n\r\n");
    assert_int_equal(h->ndeferred, 1);
    mx_http_req_t *r = h->deferred[0];
    h->ndeferred = 0;
    mx__http_conn_fini(&h->conn);
    assert_false(mx_http_req_alive(r));
    assert_int_equal(mx_http_respond(r, 200, "text/plain", "x", 1), MX_ESTOPPED);
    assert_int_equal(h->ctr.dropped_responses, 2); /* the answered /fast and the late one */
    assert_null(h->srv.live);
    hh_free(h);
}

/* max_in_app: at the bound one more request is parsed and held (parsing
 * stops), it reaches the app when an answer makes room, and parsing goes
 * on; synchronous answers never count. */
static void test_in_app_bound(void **st)
{
    struct mx_http_opts o = {.max_in_app = 3};
    struct hh *h = hh_new(&o);
    char buf[1024];
    size_t len = 0;
    len += (size_t)sprintf(buf + len, "GET /fast HTTP/1.1\r\n\r\n");
    for (int i = 0; i < 7; i++)
        len += (size_t)sprintf(buf + len, "GET /slow/%d HTTP/1.1\r\n\r\n", i);
    size_t used = mx__http_conn_feed(&h->conn, buf, len);
    TU_ASSERT_CMP(used, <, len);
    assert_int_equal(h->ndeferred, 3);
    assert_int_equal(h->srv.in_app, 3);
    assert_true(mx__http_srv_app_full(&h->srv));
    assert_false(mx__http_conn_can_parse(&h->conn));
    assert_int_equal(*mx__http_ctr_limit(&h->ctr, MX_HTTP_LIM_IN_APP), 1);
    assert_int_equal(*mx__http_ctr_limit(&h->ctr, MX_HTTP_LIM_PIPELINE), 0);
    assert_non_null(h->conn.deferred); /* /slow/3, parsed and held */
    /* one answer makes room for exactly one more request: the held one */
    mx_http_req_t *r = h->deferred[--h->ndeferred];
    assert_int_equal(mx_http_respond(r, 200, "text/plain", "x", 1), 0);
    assert_int_equal(h->srv.in_app, 2);
    assert_false(mx__http_conn_can_parse(&h->conn));
    used += mx__http_conn_feed(&h->conn, buf + used, len - used);
    TU_ASSERT_CMP(used, <, len);
    assert_int_equal(h->ndeferred, 3);
    assert_int_equal(h->srv.in_app, 3);
    while (used < len) {
        hh_answer_deferred(h);
        assert_int_equal(h->srv.in_app, 0);
        used += mx__http_conn_feed(&h->conn, buf + used, len - used);
        TU_ASSERT_CMP(h->srv.in_app, <=, 3);
    }
    while (h->ndeferred || h->conn.deferred) {
        hh_answer_deferred(h);
        mx__http_conn_resume(&h->conn);
    }
    assert_int_equal(h->srv.in_app, 0);
    struct presp p[9];
    assert_int_equal(parse_all(h, p, 9), 8); /* all answered, in order */
    assert_memory_equal(p[0].body, "fast", 4);
    hh_free(h);
}

/* requests held by the app leave the count when answered after the client
 * left, or when freed unanswered */
static void test_in_app_client_left(void **st)
{
    struct mx_http_opts o = {.max_in_app = 2};
    struct hh *h = hh_new(&o);
    feed_str(h, "GET /slow/1 HTTP/1.1\r\n\r\nGET /slow/2 HTTP/1.1\r\n\r\n"
                "GET /slow/3 HTTP/1.1\r\n\r\n");
    assert_int_equal(h->srv.in_app, 2);
    assert_non_null(h->conn.deferred); /* held: never reached the app */
    assert_false(mx__http_conn_can_parse(&h->conn));
    mx__http_conn_fini(&h->conn); /* frees the held one */
    mx_http_req_t *r = h->deferred[--h->ndeferred];
    assert_int_equal(mx_http_respond(r, 200, "text/plain", "x", 1), MX_ESTOPPED);
    assert_int_equal(h->srv.in_app, 1);
    h->ndeferred = 0; /* the other one is never answered */
    mx__http_srv_free_live(&h->srv);
    assert_int_equal(h->srv.in_app, 0);
    hh_free(h);
}

/* the node's buffer budget counts what an answer alone holds: its head and
 * a body copied for it, not a cached document shared by every connection;
 * written answers give their bytes back, and so do request arenas */
static void test_buffer_budget_accounting(void **st)
{
    struct hh *h = hh_new(NULL);
    _Atomic int64_t mem = 0;
    h->srv.mem = &mem;
    h->srv.o.max_buffered_bytes = 1u << 30;
    h->hold_writes = true;
    char big[3000];
    memset(big, 'd', sizeof big);
    struct mx_blob *b = mx_blob_new(big, sizeof big);
    mx_http_doc_unref(h->doc);
    assert_int_equal(mx_http_doc_new("text/plain", b, false, &h->doc), 0);
    mx_blob_unref(b);
    feed_str(h, "GET /doc HTTP/1.1\r\n\r\n");
    assert_int_equal(h->nheld, 1);
    assert_non_null(h->held[0]->blob); /* the document's own bytes, shared */
    assert_int_equal(h->held[0]->charged, (int64_t)h->held[0]->head_len);
    char req[4200];
    int n = snprintf(req, sizeof req, "POST /echo HTTP/1.1\r\nContent-Length: 4000\r\n\r\n");
    memset(req + n, 'e', 4000);
    assert_int_equal(mx__http_conn_feed(&h->conn, req, (size_t)n + 4000), (size_t)n + 4000);
    assert_int_equal(h->nheld, 2);
    assert_non_null(h->held[1]->blob); /* a 4000-byte copy made for this answer */
    assert_int_equal(h->held[1]->charged, (int64_t)h->held[1]->head_len + 4000);
    assert_int_equal(atomic_load(&mem), h->held[0]->charged + h->held[1]->charged);
    /* the budget spent: no new request starts */
    h->srv.o.max_buffered_bytes = (uint64_t)atomic_load(&mem);
    assert_true(mx__http_srv_mem_full(&h->srv));
    assert_false(mx__http_conn_can_parse(&h->conn));
    hh_release_held(h);
    assert_int_equal(atomic_load(&mem), 0);
    assert_true(mx__http_conn_can_parse(&h->conn));
    hh_free(h);
}

static void test_add_header_rules(void **st)
{
    struct hh *h = hh_new(NULL);
    feed_str(h, "GET /slow/1 HTTP/1.1\r\n\r\n");
    mx_http_req_t *r = h->deferred[--h->ndeferred];
    assert_int_equal(mx_http_add_header(r, "X-Ok", "fine"), 0);
    assert_int_equal(mx_http_add_header(r, "X-Bad", "a\r\nInjected: 1"), MX_EINVAL);
    assert_int_equal(mx_http_add_header(r, "Bad Name", "v"), MX_EINVAL);
    assert_int_equal(mx_http_add_header(r, "content-length", "5"), MX_EINVAL);
    char big[1500];
    memset(big, 'v', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(mx_http_add_header(r, "X-1", big), 0);
    assert_int_equal(mx_http_add_header(r, "X-2", big), MX_ETOOBIG);
    assert_int_equal(mx_http_respond(r, 200, "text/plain", "ok", 2), 0);
    struct presp p[2];
    char v[32];
    assert_int_equal(parse_all(h, p, 2), 1);
    assert_true(presp_header(&p[0], "X-Ok", v, sizeof(v)));
    assert_false(presp_header(&p[0], "Injected", v, sizeof(v)));
    hh_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keepalive),
        cmocka_unit_test(test_pipeline_order),
        cmocka_unit_test(test_pipeline_backpressure),
        cmocka_unit_test(test_output_backpressure),
        cmocka_unit_test(test_http10),
        cmocka_unit_test(test_connection_close),
        cmocka_unit_test(test_chunked),
        cmocka_unit_test(test_431),
        cmocka_unit_test(test_413),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_routing_errors),
        cmocka_unit_test(test_params_query_headers),
        cmocka_unit_test(test_traceparent_echo),
        cmocka_unit_test(test_doc),
        cmocka_unit_test(test_head_timeout),
        cmocka_unit_test(test_eof_then_answer),
        cmocka_unit_test(test_answer_after_client_left),
        cmocka_unit_test(test_add_header_rules),
        cmocka_unit_test(test_in_app_bound),
        cmocka_unit_test(test_in_app_client_left),
        cmocka_unit_test(test_buffer_budget_accounting),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
