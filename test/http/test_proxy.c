/* test_proxy.c - the PROXY protocol header parser (mx_proxy_parse): v1 and
 * v2, every byte boundary of a split header, LOCAL and UNKNOWN, TLVs, and
 * the malformed headers the server closes the connection on. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "mx_err.h"
#include "mx_http.h"

static const uint8_t SIG[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

static void src_is(const struct mx_proxy_hdr *h, const char *ip, int port)
{
    char got[64] = "";
    int p = 0;
    if (h->src.ss_family == AF_INET) {
        const struct sockaddr_in *s = (const struct sockaddr_in *)&h->src;
        inet_ntop(AF_INET, &s->sin_addr, got, sizeof got);
        p = ntohs(s->sin_port);
    } else if (h->src.ss_family == AF_INET6) {
        const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)&h->src;
        inet_ntop(AF_INET6, &s->sin6_addr, got, sizeof got);
        p = ntohs(s->sin6_port);
    }
    assert_string_equal(got, ip);
    assert_int_equal(p, port);
}

static void test_v1(void **st)
{
    const char *in = "PROXY TCP4 203.0.113.7 10.0.0.2 51000 8080\r\nGET / HTTP/1.1\r\n\r\n";
    struct mx_proxy_hdr h;
    size_t used;
    assert_int_equal(mx_proxy_parse((const uint8_t *)in, strlen(in), &h, &used), 0);
    assert_int_equal(used, strlen("PROXY TCP4 203.0.113.7 10.0.0.2 51000 8080\r\n"));
    assert_int_equal(h.version, 1);
    assert_false(h.local);
    src_is(&h, "203.0.113.7", 51000);

    in = "PROXY TCP6 2001:db8::7 2001:db8::1 443 8080\r\n";
    assert_int_equal(mx_proxy_parse((const uint8_t *)in, strlen(in), &h, &used), 0);
    assert_int_equal(used, strlen(in));
    src_is(&h, "2001:db8::7", 443);

    in = "PROXY UNKNOWN\r\n";
    assert_int_equal(mx_proxy_parse((const uint8_t *)in, strlen(in), &h, &used), 0);
    assert_int_equal(used, strlen(in));
    assert_true(h.local);

    /* every split of the header needs more bytes, then completes */
    in = "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n";
    for (size_t k = 1; k < strlen(in); k++) {
        assert_int_equal(mx_proxy_parse((const uint8_t *)in, k, &h, &used), 0);
        assert_int_equal(used, 0);
    }
}

static void test_v1_malformed(void **st)
{
    const char *bad[] = {
        "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",       /* a field missing */
        "PROXY TCP4 1.2.3.400 5.6.7.8 1 2\r\n",   /* not an address */
        "PROXY TCP4 1.2.3.4 5.6.7.8 70000 2\r\n", /* port over 65535 */
        "PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n",    /* sign */
        "PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",    /* leading zero */
        "PROXY TCP4 ::1 ::1 1 2\r\n",             /* family mismatch */
        "PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",     /* not TCP */
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX",      /* CR without LF */
        "PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n",    /* two spaces */
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",   /* a field too many */
        "PROXY TCP4 1.2.3.4\n",                   /* LF alone */
    };
    struct mx_proxy_hdr h;
    size_t used;
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int rc = mx_proxy_parse((const uint8_t *)bad[i], strlen(bad[i]), &h, &used);
        if (rc != MX_EDECODE)
            fail_msg("accepted (rc %d): %s", rc, bad[i]);
    }
    /* no CRLF within the 107 bytes a v1 line may take */
    char longl[200];
    memset(longl, 'A', sizeof longl);
    memcpy(longl, "PROXY TCP4 ", 11);
    assert_int_equal(mx_proxy_parse((const uint8_t *)longl, sizeof longl, &h, &used), MX_EDECODE);
}

static size_t v2(uint8_t *out, uint8_t ver_cmd, uint8_t fam, const uint8_t *body, uint16_t len)
{
    memcpy(out, SIG, 12);
    out[12] = ver_cmd;
    out[13] = fam;
    out[14] = (uint8_t)(len >> 8);
    out[15] = (uint8_t)len;
    memcpy(out + 16, body, len);
    return 16u + len;
}

static void test_v2(void **st)
{
    uint8_t buf[2048], body[64] = {198, 51, 100, 9, 10, 0, 0, 2, 0xC3, 0x50, 0x1F, 0x90};
    struct mx_proxy_hdr h;
    size_t used;
    size_t n = v2(buf, 0x21, 0x11, body, 12);
    memcpy(buf + n, "GET /", 5);
    assert_int_equal(mx_proxy_parse(buf, n + 5, &h, &used), 0);
    assert_int_equal(used, n);
    assert_int_equal(h.version, 2);
    assert_false(h.local);
    src_is(&h, "198.51.100.9", 50000);
    for (size_t k = 1; k < n; k++) {
        assert_int_equal(mx_proxy_parse(buf, k, &h, &used), 0);
        assert_int_equal(used, 0);
    }
    /* TLVs after the addresses are skipped */
    body[12] = 0x05; /* PP2_TYPE_UNIQUE_ID */
    body[13] = 0;
    body[14] = 3;
    memcpy(body + 15, "abc", 3);
    n = v2(buf, 0x21, 0x11, body, 18);
    assert_int_equal(mx_proxy_parse(buf, n, &h, &used), 0);
    assert_int_equal(used, n);
    src_is(&h, "198.51.100.9", 50000);
    /* IPv6 */
    uint8_t b6[36] = {0x20, 0x01, 0x0d, 0xb8};
    b6[15] = 7;
    b6[32] = 0x01;
    b6[33] = 0xBB;
    n = v2(buf, 0x21, 0x21, b6, 36);
    assert_int_equal(mx_proxy_parse(buf, n, &h, &used), 0);
    src_is(&h, "2001:db8::7", 443);
    /* LOCAL (the balancer's health checks): keep the real peer */
    n = v2(buf, 0x20, 0x00, body, 0);
    assert_int_equal(mx_proxy_parse(buf, n, &h, &used), 0);
    assert_int_equal(used, 16);
    assert_true(h.local);
    /* UNSPEC family with PROXY: no address to use */
    n = v2(buf, 0x21, 0x00, body, 0);
    assert_int_equal(mx_proxy_parse(buf, n, &h, &used), 0);
    assert_true(h.local);
}

static void test_v2_malformed(void **st)
{
    uint8_t buf[4096], body[2048] = {0};
    struct mx_proxy_hdr h;
    size_t used;
    size_t n = v2(buf, 0x11, 0x11, body, 12); /* version 1 in a v2 signature */
    assert_int_equal(mx_proxy_parse(buf, n, &h, &used), MX_EDECODE);
    n = v2(buf, 0x22, 0x11, body, 12); /* command 2 */
    assert_int_equal(mx_proxy_parse(buf, n, &h, &used), MX_EDECODE);
    n = v2(buf, 0x21, 0x11, body, 8); /* too short for IPv4 */
    assert_int_equal(mx_proxy_parse(buf, n, &h, &used), MX_EDECODE);
    n = v2(buf, 0x21, 0x21, body, 20); /* too short for IPv6 */
    assert_int_equal(mx_proxy_parse(buf, n, &h, &used), MX_EDECODE);
    n = v2(buf, 0x21, 0x41, body, 12); /* unknown family */
    assert_int_equal(mx_proxy_parse(buf, n, &h, &used), MX_EDECODE);
    /* over the bound: refused from the 16-byte head, before the body came */
    n = v2(buf, 0x21, 0x11, body, 2000);
    assert_int_equal(mx_proxy_parse(buf, 16, &h, &used), MX_EDECODE);
}

static void test_not_proxy(void **st)
{
    const char *http[] = {"GET / HTTP/1.1\r\n", "POST /x HTTP/1.1\r\n", "PUT /", "PATCH /", "PROXZ",
                          "\r\n\r\nX"};
    struct mx_proxy_hdr h;
    size_t used;
    for (size_t i = 0; i < sizeof http / sizeof *http; i++)
        assert_int_equal(mx_proxy_parse((const uint8_t *)http[i], strlen(http[i]), &h, &used),
                         MX_ENOTFOUND);
    /* a prefix of a signature needs more bytes */
    assert_int_equal(mx_proxy_parse((const uint8_t *)"PRO", 3, &h, &used), 0);
    assert_int_equal(used, 0);
    assert_int_equal(mx_proxy_parse(SIG, 5, &h, &used), 0);
    assert_int_equal(used, 0);
    assert_int_equal(mx_proxy_parse(SIG, 0, &h, &used), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v1),        cmocka_unit_test(test_v1_malformed),
        cmocka_unit_test(test_v2),        cmocka_unit_test(test_v2_malformed),
        cmocka_unit_test(test_not_proxy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
