/* test_http_unit.c - pure functions of the HTTP layer: route patterns and
 * params, percent-decoding and UTF-8, traceparent, Accept-Encoding q-values,
 * If-None-Match, gzip and documents. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "mx_testutil.h"
#include <zlib.h>

#include "mx_err.h"
#include "mx_http_int.h"

static int h_dummy(mx_http_req_t *r, void *s)
{
    return MX_HTTP_DONE;
}

static const struct mx_http_route routes[] = {
    {"GET", "/api/v1/characters/{ign}", h_dummy, 1},
    {"GET", "/api/v4/characters/{ign}/expectation", h_dummy, 2},
    {"GET", "/api/v4/characters/{ign}/expectation/preset/{preset}", h_dummy, 3},
    {"POST", "/api/v4/characters/{ign}/expectation/recalculate", h_dummy, 4},
    {"POST", "/api/v2/characters/{ign}/like", h_dummy, 5},
    {"GET", "/actuator/health", h_dummy, 6},
    {"DELETE", "/auth/logout", h_dummy, 7},
    {"GET", "/api/admin/**", h_dummy, 8},
    {"POST", "/api/admin/**", h_dummy, 9},
};

struct rres {
    int verdict;
    uint32_t flags;
    char p0[256], p1[256];
    char allow[96];
    const char *why;
};

static struct rres route(const char *method, const char *path)
{
    static struct mx__http_router rt;
    static bool init;
    if (!init) {
        assert_int_equal(mx__http_router_init(&rt, routes, sizeof(routes) / sizeof(routes[0])), 0);
        init = true;
    }
    struct rres r = {0};
    const struct mx__http_proute *pr = NULL;
    struct mx__http_param params[MX__HTTP_MAX_PARAMS];
    int np = 0;
    char out[1024];
    size_t olen = 0;
    r.verdict = mx__http_route_path(&rt, method, path, &pr, params, &np, out, sizeof(out), &olen,
                                    r.allow, sizeof(r.allow), &r.why);
    if (r.verdict == MX__HTTP_ROUTE_OK) {
        r.flags = pr->r.flags;
        if (np > 0)
            snprintf(r.p0, sizeof(r.p0), "%s", out + params[0].off);
        if (np > 1)
            snprintf(r.p1, sizeof(r.p1), "%s", out + params[1].off);
    }
    return r;
}

static void test_router_patterns(void **st)
{
    struct rres r = route("GET", "/api/v1/characters/abc");
    assert_int_equal(r.verdict, MX__HTTP_ROUTE_OK);
    assert_int_equal(r.flags, 1);
    assert_string_equal(r.p0, "abc");
    r = route("GET", "/api/v4/characters/%EC%97%90%EB%B0%98/expectation/preset/2");
    assert_int_equal(r.verdict, MX__HTTP_ROUTE_OK);
    assert_int_equal(r.flags, 3);
    assert_string_equal(r.p0, "에반");
    assert_string_equal(r.p1, "2");
    r = route("HEAD", "/actuator/health");
    assert_int_equal(r.verdict, MX__HTTP_ROUTE_OK);
    assert_int_equal(r.flags, 6);
    r = route("POST", "/api/admin/outbox/dlq/5/reprocess");
    assert_int_equal(r.verdict, MX__HTTP_ROUTE_OK);
    assert_int_equal(r.flags, 9);
    assert_string_equal(r.p0, "outbox/dlq/5/reprocess");
    /* near misses */
    assert_int_equal(route("GET", "/api/v1/characters").verdict, MX__HTTP_ROUTE_404);
    assert_int_equal(route("GET", "/api/v1/characters/a/b").verdict, MX__HTTP_ROUTE_404);
    assert_int_equal(route("GET", "/actuator/health/").verdict, MX__HTTP_ROUTE_404);
    assert_int_equal(route("GET", "/Actuator/health").verdict, MX__HTTP_ROUTE_404);
    assert_int_equal(route("GET", "/api/admin").verdict, MX__HTTP_ROUTE_404);
    assert_int_equal(route("GET", "/").verdict, MX__HTTP_ROUTE_404);
}

static void test_router_405(void **st)
{
    struct rres r = route("GET", "/auth/logout");
    assert_int_equal(r.verdict, MX__HTTP_ROUTE_405);
    assert_string_equal(r.allow, "DELETE");
    r = route("DELETE", "/api/v4/characters/x/expectation");
    assert_int_equal(r.verdict, MX__HTTP_ROUTE_405);
    assert_string_equal(r.allow, "GET, HEAD");
    r = route("PUT", "/api/admin/x");
    assert_int_equal(r.verdict, MX__HTTP_ROUTE_405);
    assert_string_equal(r.allow, "GET, HEAD, POST");
}

static void test_router_400(void **st)
{
    assert_int_equal(route("GET", "/api/v4/characters//expectation").verdict, MX__HTTP_ROUTE_400);
    assert_int_equal(route("GET", "//actuator/health").verdict, MX__HTTP_ROUTE_400);
    assert_int_equal(route("GET", "/api/v1/characters/").verdict, MX__HTTP_ROUTE_400);
    assert_int_equal(route("GET", "/api/v1/characters/%FF").verdict, MX__HTTP_ROUTE_400);
    assert_int_equal(route("GET", "/api/v1/characters/%E0%80%80").verdict, MX__HTTP_ROUTE_400);
    assert_int_equal(route("GET", "/api/v1/characters/%4").verdict, MX__HTTP_ROUTE_400);
    assert_int_equal(route("GET", "/api/v1/characters/%00").verdict, MX__HTTP_ROUTE_400);
    assert_int_equal(route("GET", "*").verdict, MX__HTTP_ROUTE_400);
    /* raw (unencoded) invalid UTF-8 bytes in the path */
    assert_int_equal(route("GET", "/api/v1/characters/\xc3\x28").verdict, MX__HTTP_ROUTE_400);
    /* valid raw UTF-8 is fine */
    struct rres r = route("GET", "/api/v1/characters/\xec\x97\x90");
    assert_int_equal(r.verdict, MX__HTTP_ROUTE_OK);
    assert_string_equal(r.p0, "에");
}

static void test_router_bad_patterns(void **st)
{
    struct mx__http_router rt;
    static const struct mx_http_route bad[][1] = {
        {{"GET", "no-slash", h_dummy, 0}}, {{"GET", "/a//b", h_dummy, 0}},
        {{"GET", "/a/{}", h_dummy, 0}},    {{"GET", "/**/x", h_dummy, 0}},
        {{"BREW", "/x", h_dummy, 0}},      {{"GET", "/x", NULL, 0}},
        {{"GET", "/a{b}", h_dummy, 0}},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(mx__http_router_init(&rt, bad[i], 1), MX_EINVAL);
}

static void test_pct_utf8(void **st)
{
    char out[64];
    assert_int_equal(mx__http_pct_decode("a%20b+c", 7, true, true, out), 5);
    assert_memory_equal(out, "a b c", 5);
    assert_int_equal(mx__http_pct_decode("a+c", 3, false, true, out), 3);
    assert_memory_equal(out, "a+c", 3);
    assert_int_equal(mx__http_pct_decode("%", 1, false, true, out), -1);
    assert_int_equal(mx__http_pct_decode("%a", 2, false, true, out), -1);
    assert_int_equal(mx__http_pct_decode("%ff", 3, false, false, out), 1);
    assert_int_equal(mx__http_pct_decode("%ff", 3, false, true, out), -1);
    assert_true(mx__http_utf8_valid((const uint8_t *)"\xf0\x9f\x98\x80", 4));
    assert_false(mx__http_utf8_valid((const uint8_t *)"\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
    assert_false(mx__http_utf8_valid((const uint8_t *)"\xed\xa0\x80", 3));     /* surrogate */
    assert_false(mx__http_utf8_valid((const uint8_t *)"\xc1\xbf", 2));         /* overlong */
    assert_false(mx__http_utf8_valid((const uint8_t *)"\xe0\x9f\xbf", 3));     /* overlong */
    assert_false(mx__http_utf8_valid((const uint8_t *)"\xe4\xbd", 2));         /* truncated */
    assert_false(mx__http_utf8_valid((const uint8_t *)"\x80", 1));
}

static void test_traceparent(void **st)
{
    uint8_t t[16], s[8], f;
    const char *ok = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    assert_true(mx_http_traceparent_parse(ok, strlen(ok), t, s, &f));
    assert_int_equal(t[0], 0x4b);
    assert_int_equal(s[7], 0xb7);
    assert_int_equal(f, 1);
    static const char *const bad[] = {
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",   /* uppercase */
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",   /* zero trace */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",   /* zero span */
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",   /* version ff */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x", /* v00 + extra */
        "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
        "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
        "",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_false(mx_http_traceparent_parse(bad[i], strlen(bad[i]), t, s, &f));
    /* a future version may carry more fields */
    const char *v1 = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra";
    assert_true(mx_http_traceparent_parse(v1, strlen(v1), t, s, &f));
    /* generated: valid, distinct */
    char a[56], b[56];
    mx_http_traceparent_new(t, s);
    mx_http_traceparent_format(t, s, 1, a);
    assert_int_equal(strlen(a), 55);
    assert_true(mx_http_traceparent_parse(a, 55, t, s, &f));
    mx_http_traceparent_new(t, s);
    mx_http_traceparent_format(t, s, 1, b);
    assert_string_not_equal(a, b);
}

static void test_accept_encoding(void **st)
{
    assert_true(mx_http_accepts_gzip("gzip"));
    assert_true(mx_http_accepts_gzip("deflate, GZIP"));
    assert_true(mx_http_accepts_gzip("br;q=1.0, gzip;q=0.8, *;q=0.1"));
    assert_true(mx_http_accepts_gzip("x-gzip"));
    assert_true(mx_http_accepts_gzip("*"));
    assert_true(mx_http_accepts_gzip("gzip ; q=0.001"));
    assert_false(mx_http_accepts_gzip(NULL));
    assert_false(mx_http_accepts_gzip(""));
    assert_false(mx_http_accepts_gzip("identity"));
    assert_false(mx_http_accepts_gzip("gzip;q=0"));
    assert_false(mx_http_accepts_gzip("gzip;q=0.000"));
    assert_false(mx_http_accepts_gzip("gzip;q=0, *"));
    assert_false(mx_http_accepts_gzip("*;q=0"));
    assert_false(mx_http_accepts_gzip("gzipx, xgzip"));
    assert_false(mx_http_accepts_gzip("gzip;q=abc"));
    assert_true(mx_http_accepts_gzip("gzip;level=9"));
}

static void test_etag_match(void **st)
{
    assert_true(mx_http_etag_match("\"abc\"", "\"abc\""));
    assert_true(mx_http_etag_match("W/\"abc\"", "\"abc\""));
    assert_true(mx_http_etag_match("\"x\", \"abc\"", "\"abc\""));
    assert_true(mx_http_etag_match("*", "\"abc\""));
    assert_false(mx_http_etag_match("\"abcd\"", "\"abc\""));
    assert_false(mx_http_etag_match("abc", "\"abc\""));
    assert_false(mx_http_etag_match("\"abc", "\"abc\""));
    assert_false(mx_http_etag_match(NULL, "\"abc\""));
}

static void test_gzip_doc(void **st)
{
    char plain[5000];
    for (size_t i = 0; i < sizeof(plain); i++)
        plain[i] = "abcabcabd"[i % 9];
    struct mx_blob *gz;
    assert_int_equal(mx_http_gzip(plain, sizeof(plain), 0, &gz), 0);
    TU_ASSERT_CMP(gz->len, <, sizeof(plain) / 4);
    assert_int_equal(gz->data[0], 0x1f);
    assert_int_equal(gz->data[1], 0x8b);
    char back[6000];
    z_stream zs = {0};
    assert_int_equal(inflateInit2(&zs, 15 + 16), Z_OK);
    zs.next_in = gz->data;
    zs.avail_in = gz->len;
    zs.next_out = (Bytef *)back;
    zs.avail_out = sizeof(back);
    assert_int_equal(inflate(&zs, Z_FINISH), Z_STREAM_END);
    assert_int_equal(zs.total_out, sizeof(plain));
    assert_memory_equal(back, plain, sizeof(plain));
    inflateEnd(&zs);
    mx_blob_unref(gz);
    assert_int_equal(mx_http_gzip(plain, 10, 11, &gz), MX_EINVAL);

    struct mx_blob *b = mx_blob_new(plain, sizeof(plain));
    struct mx_http_doc *d, *d2;
    assert_int_equal(mx_http_doc_new("application/json", b, true, &d), 0);
    assert_int_equal(mx_http_doc_new("application/json", b, false, &d2), 0);
    mx_blob_unref(b); /* the docs hold it */
    assert_int_equal(d->plain->len, sizeof(plain));
    assert_non_null(d->gzip);
    assert_null(d2->gzip);
    assert_string_equal(d->etag, d2->etag); /* same bytes, same tag */
    assert_int_equal(strlen(d->etag), 34);
    assert_string_not_equal(d->etag, d->etag_gz);
    assert_int_equal(mx_http_doc_new("a\r\nb", d->plain, false, &d2 /* unchanged */), MX_EINVAL);
    mx_http_doc_ref(d);
    mx_http_doc_unref(d);
    mx_http_doc_unref(d);
    mx_http_doc_unref(d2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_router_patterns), cmocka_unit_test(test_router_405),
        cmocka_unit_test(test_router_400),      cmocka_unit_test(test_router_bad_patterns),
        cmocka_unit_test(test_pct_utf8),        cmocka_unit_test(test_traceparent),
        cmocka_unit_test(test_accept_encoding), cmocka_unit_test(test_etag_match),
        cmocka_unit_test(test_gzip_doc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
