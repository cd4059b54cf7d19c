/* auth_jwt_test.c - JWT signing and every way verification must refuse. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "mx_testutil.h"

#include "mx_err.h"
#include "mx_jsonr.h"
#include "mx_jwt.h"

static const uint8_t secret[] = "0123456789abcdef0123456789abcdef-test-secret";
#define SECRET_LEN (sizeof secret - 1)
#define NOW 1763600000

static void make(char *tok, size_t cap, const char *role, int64_t iat, int64_t exp)
{
    struct mx_jwt_claims c = {.iat = iat, .exp = exp};
    snprintf(c.sub, sizeof c.sub, "sess-123");
    snprintf(c.fgp, sizeof c.fgp, "fp");
    snprintf(c.role, sizeof c.role, "%s", role);
    assert_int_equal(mx_jwt_sign(&c, secret, SECRET_LEN, tok, cap), 0);
}

static void test_roundtrip(void **st)
{
    char tok[1024];
    make(tok, sizeof tok, "USER", NOW, NOW + 900);
    struct mx_jwt_claims c;
    assert_int_equal(mx_jwt_verify(tok, strlen(tok), secret, SECRET_LEN, NOW + 10, &c), MX_JWT_OK);
    assert_string_equal(c.sub, "sess-123");
    assert_string_equal(c.role, "USER");
    assert_string_equal(c.fgp, "fp");
    assert_int_equal(c.exp, NOW + 900);
    /* short secrets are refused at signing */
    struct mx_jwt_claims bad = c;
    assert_int_equal(mx_jwt_sign(&bad, secret, 31, tok, sizeof tok), MX_EINVAL);
}

/* RFC 7515 appendix A.1: an HS256 JWS signed by someone else. The signature
 * must verify (so the failure is about claims: iss "joe"), and one flipped
 * signature character must turn it into a signature failure. */
static void test_rfc7515_vector(void **st)
{
    const char *k =
        "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow";
    char t[] =
        "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkz"
        "ODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    uint8_t key[64];
    assert_int_equal(mx_b64url_decode(k, strlen(k), key, sizeof key), 64);
    assert_int_equal(mx_jwt_verify(t, strlen(t), key, 64, 1300000000, NULL), MX_JWT_BAD_CLAIMS);
    t[strlen(t) - 2] = t[strlen(t) - 2] == 'X' ? 'Y' : 'X';
    assert_int_equal(mx_jwt_verify(t, strlen(t), key, 64, 1300000000, NULL), MX_JWT_BAD_SIG);
}

static void test_fingerprint_rfc4231(void **st)
{
    /* RFC 4231 test case 2: HMAC-SHA256("Jefe", "what do ya want for nothing?") =
     * 5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843 */
    char fp[44];
    const char *msg = "what do ya want for nothing?";
    mx_jwt_fingerprint((const uint8_t *)"Jefe", 4, msg, strlen(msg), fp);
    uint8_t raw[32];
    assert_int_equal(mx_b64url_decode(fp, strlen(fp), raw, sizeof raw), 32);
    static const uint8_t want[32] = {0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e,
                                     0x6a, 0x04, 0x24, 0x26, 0x08, 0x95, 0x75, 0xc7,
                                     0x5a, 0x00, 0x3f, 0x08, 0x9d, 0x27, 0x39, 0x83,
                                     0x9d, 0xec, 0x58, 0xb9, 0x64, 0xec, 0x38, 0x43};
    assert_memory_equal(raw, want, 32);
    assert_int_equal(strlen(fp), 43); /* unpadded */
}

/* Replace the header or payload part of tok with the base64url of json. */
static void splice(char *tok, size_t cap, int part, const char *json)
{
    char parts[3][1024];
    const char *p = tok;
    for (int i = 0; i < 3; i++) {
        const char *d = strchr(p, '.');
        size_t n = d ? (size_t)(d - p) : strlen(p);
        memcpy(parts[i], p, n);
        parts[i][n] = '\0';
        p = d ? d + 1 : p + n;
    }
    mx_b64url_encode((const uint8_t *)json, strlen(json), parts[part], sizeof parts[part]);
    size_t a = strlen(parts[0]), b = strlen(parts[1]), c = strlen(parts[2]);
    TU_ASSERT_CMP(a + b + c + 3, <=, cap);
    memcpy(tok, parts[0], a);
    tok[a] = '.';
    memcpy(tok + a + 1, parts[1], b);
    tok[a + 1 + b] = '.';
    memcpy(tok + a + b + 2, parts[2], c + 1);
}

static void test_tampering(void **st)
{
    char tok[1024];
    /* role raised to ADMIN without re-signing */
    make(tok, sizeof tok, "USER", NOW, NOW + 900);
    splice(tok, sizeof tok, 1,
           "{\"iss\":\"maple-expectation\",\"sub\":\"sess-123\",\"fgp\":\"fp\",\"role\":\"ADMIN\","
           "\"iat\":1763600000,\"exp\":1763600900}");
    assert_int_equal(mx_jwt_verify(tok, strlen(tok), secret, SECRET_LEN, NOW, NULL),
                     MX_JWT_BAD_SIG);
    /* alg none, with and without a signature */
    make(tok, sizeof tok, "USER", NOW, NOW + 900);
    splice(tok, sizeof tok, 0, "{\"alg\":\"none\",\"typ\":\"JWT\"}");
    assert_int_equal(mx_jwt_verify(tok, strlen(tok), secret, SECRET_LEN, NOW, NULL),
                     MX_JWT_BAD_ALG);
    *strrchr(tok, '.') = '\0';
    strcat(tok, ".");
    assert_int_equal(mx_jwt_verify(tok, strlen(tok), secret, SECRET_LEN, NOW, NULL),
                     MX_JWT_BAD_ALG);
    /* other algorithms, and alg case games */
    const char *algs[] = {"{\"alg\":\"HS512\"}", "{\"alg\":\"RS256\"}", "{\"alg\":\"hs256\"}",
                          "{\"alg\":\"\"}",      "{\"alg\":7}",         "{\"typ\":\"JWT\"}"};
    for (size_t i = 0; i < sizeof algs / sizeof *algs; i++) {
        make(tok, sizeof tok, "USER", NOW, NOW + 900);
        splice(tok, sizeof tok, 0, algs[i]);
        enum mx_jwt_status s = mx_jwt_verify(tok, strlen(tok), secret, SECRET_LEN, NOW, NULL);
        assert_true(s == MX_JWT_BAD_ALG || s == MX_JWT_MALFORMED);
    }
    /* a different secret */
    make(tok, sizeof tok, "USER", NOW, NOW + 900);
    const uint8_t other[] = "fedcba9876543210fedcba9876543210-other";
    assert_int_equal(mx_jwt_verify(tok, strlen(tok), other, sizeof other - 1, NOW, NULL),
                     MX_JWT_BAD_SIG);
}

static void test_times(void **st)
{
    char tok[1024];
    make(tok, sizeof tok, "USER", NOW, NOW + 900);
    assert_int_equal(mx_jwt_verify(tok, strlen(tok), secret, SECRET_LEN, NOW + 900, NULL),
                     MX_JWT_EXPIRED);
    assert_int_equal(mx_jwt_verify(tok, strlen(tok), secret, SECRET_LEN, NOW + 899, NULL),
                     MX_JWT_OK);
    make(tok, sizeof tok, "USER", NOW + 3600, NOW + 4500); /* issued an hour from now */
    assert_int_equal(mx_jwt_verify(tok, strlen(tok), secret, SECRET_LEN, NOW, NULL),
                     MX_JWT_NOT_YET);
    make(tok, sizeof tok, "USER", NOW + MX_JWT_SKEW_S, NOW + 900); /* within skew */
    assert_int_equal(mx_jwt_verify(tok, strlen(tok), secret, SECRET_LEN, NOW, NULL), MX_JWT_OK);
}

static void test_malformed(void **st)
{
    const char *bad[] = {"",   "abc",      "a.b",         "a.b.c.d",
                         "..", "eyJ.eyJ.", "!!!.###.$$$", "eyJhbGciOiJIUzI1NiJ9.bm90IGpzb24.AAAA"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_not_equal(mx_jwt_verify(bad[i], strlen(bad[i]), secret, SECRET_LEN, NOW, NULL),
                             MX_JWT_OK);
    char big[MX_JWT_MAX_TOKEN + 10];
    memset(big, 'A', sizeof big);
    big[100] = '.';
    big[200] = '.';
    assert_int_equal(mx_jwt_verify(big, sizeof big, secret, SECRET_LEN, NOW, NULL),
                     MX_JWT_MALFORMED);
}

static void test_jsonr(void **st)
{
    char key[64], ign[64];
    struct mx_jr_field f[] = {
        {.key = "apiKey", .kind = MX_JR_STR, .required = true, .buf = key, .cap = sizeof key},
        {.key = "userIgn", .kind = MX_JR_STR, .required = true, .buf = ign, .cap = sizeof ign},
        {.key = "n", .kind = MX_JR_INT},
    };
    const char *ok =
        "{\"apiKey\":\"k1\",\"userIgn\":\"\xec\x8a\xa4\xec\x9b\xa8\",\"n\":\"42\",\"x\":[1]}";
    assert_int_equal(mx_jsonr_object(ok, strlen(ok), f, 3, NULL, 0), 0);
    assert_string_equal(key, "k1");
    assert_int_equal(f[1].len, 6);
    assert_int_equal(f[2].i, 42);
    char err[128];
    const char *missing = "{\"apiKey\":\"k1\"}";
    assert_int_equal(mx_jsonr_object(missing, strlen(missing), f, 3, err, sizeof err), MX_EINVAL);
    assert_non_null(strstr(err, "userIgn"));
    const char *wrong = "{\"apiKey\":5,\"userIgn\":\"a\"}";
    assert_int_equal(mx_jsonr_object(wrong, strlen(wrong), f, 3, err, sizeof err), MX_EINVAL);
    assert_non_null(strstr(err, "apiKey"));
    assert_int_equal(mx_jsonr_object("[1,2]", 5, f, 3, err, sizeof err), MX_EDECODE);
    assert_int_equal(mx_jsonr_object("{\"apiKey\":", 10, f, 3, err, sizeof err), MX_EDECODE);
    char lng[200];
    snprintf(lng, sizeof lng, "{\"apiKey\":\"%0100d\",\"userIgn\":\"a\"}", 0);
    assert_int_equal(mx_jsonr_object(lng, strlen(lng), f, 3, err, sizeof err), MX_ETOOBIG);

    const char *list =
        "{\"account_list\":[{\"character_list\":[{\"ocid\":\"o1\",\"character_name\":"
        "\"A\",\"world_name\":\"W\"},{\"ocid\":\"o2\"}]},{\"character_list\":[{\"ocid\":\"o3\"}]}]}";
    struct mx_jr_character ch[2];
    size_t n, total;
    assert_int_equal(mx_jsonr_character_list(list, strlen(list), ch, 2, &n, &total, NULL, 0), 0);
    assert_int_equal(n, 2);
    assert_int_equal(total, 3);
    assert_string_equal(ch[0].ocid, "o1");
    assert_string_equal(ch[0].name, "A");
    assert_string_equal(ch[1].ocid, "o2");
    assert_int_equal(mx_jsonr_character_list("{}", 2, ch, 2, &n, &total, NULL, 0), MX_EDECODE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_rfc7515_vector),
        cmocka_unit_test(test_fingerprint_rfc4231),
        cmocka_unit_test(test_tampering),
        cmocka_unit_test(test_times),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_jsonr),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
