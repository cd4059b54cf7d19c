/* jwt.c - HS256 JSON Web Tokens (mx_jwt.h) on OpenSSL's HMAC and base64,
 * with claims read through the simdjson shim (mx_jsonr.h). */
#include "mx_jwt.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "mx_err.h"
#include "mx_jsonr.h"

static const char *status_names[] = {"ok",      "malformed",     "bad-alg",   "bad-signature",
                                     "expired", "not-yet-valid", "bad-claims"};

const char *mx_jwt_status_name(enum mx_jwt_status s)
{
    return (unsigned)s < sizeof status_names / sizeof *status_names ? status_names[s] : "?";
}

int mx_b64url_encode(const uint8_t *in, size_t n, char *out, size_t cap)
{
    /* EVP_EncodeBlock writes the padded form and a NUL: encode into a
     * scratch buffer, then copy the unpadded part. */
    char tmp[4 * (1536 / 3) + 1];
    if (n > 1536)
        return -1;
    int len = EVP_EncodeBlock((unsigned char *)tmp, in, (int)n);
    while (len > 0 && tmp[len - 1] == '=')
        len--;
    if ((size_t)len + 1 > cap)
        return -1;
    memcpy(out, tmp, (size_t)len);
    for (int i = 0; i < len; i++) {
        if (out[i] == '+')
            out[i] = '-';
        else if (out[i] == '/')
            out[i] = '_';
    }
    out[len] = '\0';
    return len;
}

int mx_b64url_decode(const char *in, size_t n, uint8_t *out, size_t cap)
{
    if (n % 4 == 1 || n > 8192)
        return -1;
    char buf[8196];
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = in[i];
        if (ch == '-')
            ch = '+';
        else if (ch == '_')
            ch = '/';
        else if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
                   (ch >= '0' && ch <= '9')))
            return -1; /* also refuses '+', '/', '=' and padding: url alphabet only */
        buf[m++] = ch;
    }
    size_t pad = (4 - m % 4) % 4;
    for (size_t i = 0; i < pad; i++)
        buf[m++] = '=';
    size_t outlen = m / 4 * 3;
    if (outlen > cap + 2 || m == 0)
        return m == 0 ? 0 : -1;
    uint8_t tmp[6144];
    int len = EVP_DecodeBlock(tmp, (const unsigned char *)buf, (int)m);
    if (len < 0)
        return -1;
    len -= (int)pad; /* EVP_DecodeBlock counts the padding as zero bytes */
    if (len < 0 || (size_t)len > cap)
        return -1;
    memcpy(out, tmp, (size_t)len);
    return len;
}

int mx_random_token(size_t n, char *out, size_t cap)
{
    uint8_t raw[64];
    if (n > sizeof raw || RAND_bytes(raw, (int)n) != 1)
        return MX_EINTERNAL;
    return mx_b64url_encode(raw, n, out, cap) < 0 ? MX_ETOOBIG : 0;
}

static void hmac256(const uint8_t *key, size_t klen, const void *data, size_t n, uint8_t mac[32])
{
    unsigned int mlen = 32;
    HMAC(EVP_sha256(), key, (int)klen, data, n, mac, &mlen);
}

void mx_jwt_fingerprint(const uint8_t *secret, size_t secret_len, const char *api_key,
                        size_t key_len, char out[44])
{
    uint8_t mac[32];
    hmac256(secret, secret_len, api_key, key_len, mac);
    mx_b64url_encode(mac, sizeof mac, out, 44);
}

static bool plain_text(const char *s)
{
    for (; *s; s++)
        if (*s == '"' || *s == '\\' || (unsigned char)*s < 0x20)
            return false;
    return true;
}

/* {"alg":"HS256","typ":"JWT"} */
static const char jwt_header_b64[] = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";

int mx_jwt_sign(const struct mx_jwt_claims *c, const uint8_t *secret, size_t secret_len, char *out,
                size_t cap)
{
    if (!c || !secret || secret_len < MX_JWT_MIN_SECRET || !plain_text(c->sub) ||
        !plain_text(c->fgp) || !plain_text(c->role))
        return MX_EINVAL;
    char payload[512];
    int pn =
        snprintf(payload, sizeof payload,
                 "{\"iss\":\"" MX_JWT_ISSUER "\",\"sub\":\"%s\",\"fgp\":\"%s\",\"role\":\"%s\","
                 "\"iat\":%lld,\"exp\":%lld}",
                 c->sub, c->fgp, c->role, (long long)c->iat, (long long)c->exp);
    if (pn < 0 || (size_t)pn >= sizeof payload)
        return MX_ETOOBIG;
    char pb64[720];
    if (mx_b64url_encode((const uint8_t *)payload, (size_t)pn, pb64, sizeof pb64) < 0)
        return MX_ETOOBIG;
    int n = snprintf(out, cap, "%s.%s", jwt_header_b64, pb64);
    if (n < 0 || (size_t)n + 1 + 43 >= cap)
        return MX_ETOOBIG;
    uint8_t mac[32];
    hmac256(secret, secret_len, out, (size_t)n, mac);
    out[n] = '.';
    mx_b64url_encode(mac, sizeof mac, out + n + 1, cap - (size_t)n - 1);
    return 0;
}

enum mx_jwt_status mx_jwt_verify(const char *token, size_t len, const uint8_t *secret,
                                 size_t secret_len, int64_t now_s, struct mx_jwt_claims *c)
{
    if (!token || len == 0 || len > MX_JWT_MAX_TOKEN || !secret)
        return MX_JWT_MALFORMED;
    const char *d1 = memchr(token, '.', len);
    if (!d1)
        return MX_JWT_MALFORMED;
    const char *d2 = memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - token));
    if (!d2 || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - token)))
        return MX_JWT_MALFORMED;
    uint8_t hdr[512], pay[1536], sig[64];
    int hn = mx_b64url_decode(token, (size_t)(d1 - token), hdr, sizeof hdr - 1);
    int pn = mx_b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), pay, sizeof pay - 1);
    int sn = mx_b64url_decode(d2 + 1, len - (size_t)(d2 + 1 - token), sig, sizeof sig);
    if (hn <= 0 || pn <= 0 || sn < 0)
        return MX_JWT_MALFORMED;

    char alg[16] = "", typ[16] = "";
    struct mx_jr_field hf[] = {
        {.key = "alg", .kind = MX_JR_STR, .required = true, .buf = alg, .cap = sizeof alg},
        {.key = "typ", .kind = MX_JR_STR, .buf = typ, .cap = sizeof typ},
    };
    int rc = mx_jsonr_object((const char *)hdr, (size_t)hn, hf, 2, NULL, 0);
    if (rc == MX_ETOOBIG || (rc == MX_EINVAL && !hf[0].present))
        return rc == MX_ETOOBIG ? MX_JWT_BAD_ALG : MX_JWT_MALFORMED;
    if (rc)
        return MX_JWT_MALFORMED;
    if (strcmp(alg, "HS256") != 0)
        return MX_JWT_BAD_ALG;

    uint8_t mac[32];
    hmac256(secret, secret_len, token, (size_t)(d2 - token), mac);
    if (sn != 32 || CRYPTO_memcmp(mac, sig, 32) != 0)
        return MX_JWT_BAD_SIG;

    struct mx_jwt_claims cl;
    memset(&cl, 0, sizeof cl);
    char iss[64] = "";
    struct mx_jr_field pf[] = {
        {.key = "iss", .kind = MX_JR_STR, .required = true, .buf = iss, .cap = sizeof iss},
        {.key = "sub", .kind = MX_JR_STR, .required = true, .buf = cl.sub, .cap = sizeof cl.sub},
        {.key = "fgp", .kind = MX_JR_STR, .buf = cl.fgp, .cap = sizeof cl.fgp},
        {.key = "role", .kind = MX_JR_STR, .buf = cl.role, .cap = sizeof cl.role},
        {.key = "iat", .kind = MX_JR_INT, .required = true},
        {.key = "exp", .kind = MX_JR_INT, .required = true},
        {.key = "nbf", .kind = MX_JR_INT},
    };
    rc = mx_jsonr_object((const char *)pay, (size_t)pn, pf, 7, NULL, 0);
    if (rc == MX_EDECODE)
        return MX_JWT_MALFORMED;
    if (rc || strcmp(iss, MX_JWT_ISSUER) != 0 || cl.sub[0] == '\0')
        return MX_JWT_BAD_CLAIMS;
    cl.iat = pf[4].i;
    cl.exp = pf[5].i;
    if (now_s >= cl.exp)
        return MX_JWT_EXPIRED;
    if (cl.iat > now_s + MX_JWT_SKEW_S || (pf[6].present && pf[6].i > now_s + MX_JWT_SKEW_S))
        return MX_JWT_NOT_YET;
    if (c)
        *c = cl;
    return MX_JWT_OK;
}
