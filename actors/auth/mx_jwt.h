/* mx_jwt.h - JSON Web Tokens as MapleExpectation issues them: HS256 only,
 * claims iss=maple-expectation, sub (session id), fgp (fingerprint), role,
 * iat, exp (DESIGN.md section 5).
 *
 * Verification refuses every algorithm but HS256 (including "none"),
 * compares signatures in constant time, and checks issuer, expiry and
 * not-before / issued-in-the-future. Pure functions: any thread.
 */
#ifndef MX_JWT_H
#define MX_JWT_H

#include <stddef.h>
#include <stdint.h>

#define MX_JWT_ISSUER "maple-expectation"
#define MX_JWT_MAX_TOKEN 2048 /* longer tokens are refused unread */
#define MX_JWT_MIN_SECRET 32  /* bytes; shorter secrets are a config error */
#define MX_JWT_SKEW_S 30      /* tolerated clock difference between nodes */

struct mx_jwt_claims {
    char sub[80];  /* session id */
    char fgp[64];  /* base64url(HMAC-SHA256(secret, apiKey)) */
    char role[16]; /* USER or ADMIN */
    int64_t iat;   /* seconds since the epoch */
    int64_t exp;
};

/* Why a token was refused (for logs and counters; clients only see A001). */
enum mx_jwt_status {
    MX_JWT_OK = 0,
    MX_JWT_MALFORMED, /* not three base64url parts, bad JSON, too long */
    MX_JWT_BAD_ALG,   /* alg other than HS256 */
    MX_JWT_BAD_SIG,
    MX_JWT_EXPIRED,
    MX_JWT_NOT_YET,    /* iat/nbf in the future beyond the skew */
    MX_JWT_BAD_CLAIMS, /* wrong issuer, missing sub/exp/iat */
};

const char *mx_jwt_status_name(enum mx_jwt_status s);

/* mx_jwt_sign - write the token for claims c, signed with secret
 * (secret_len >= MX_JWT_MIN_SECRET), into out (cap bytes, NUL-terminated).
 * Returns 0, MX_EINVAL (short secret, claims with quotes or controls),
 * MX_ETOOBIG (out too small). */
int mx_jwt_sign(const struct mx_jwt_claims *c, const uint8_t *secret, size_t secret_len, char *out,
                size_t cap);

/* mx_jwt_verify - check token (len bytes) against secret at time now_s and
 * fill *c. Returns the status; *c is filled only on MX_JWT_OK. */
enum mx_jwt_status mx_jwt_verify(const char *token, size_t len, const uint8_t *secret,
                                 size_t secret_len, int64_t now_s, struct mx_jwt_claims *c);

/* mx_jwt_fingerprint - base64url(HMAC-SHA256(secret, api_key)) into out
 * (at least 44 bytes). */
void mx_jwt_fingerprint(const uint8_t *secret, size_t secret_len, const char *api_key,
                        size_t key_len, char out[44]);

/* mx_b64url_encode - unpadded base64url of n bytes into out (cap bytes,
 * NUL-terminated). Returns the length, or -1 if it does not fit. */
int mx_b64url_encode(const uint8_t *in, size_t n, char *out, size_t cap);

/* mx_b64url_decode - decode unpadded base64url; returns the byte count or
 * -1 on bad input or when it does not fit in cap. */
int mx_b64url_decode(const char *in, size_t n, uint8_t *out, size_t cap);

/* mx_random_token - n random bytes (OpenSSL RAND_bytes) as base64url into
 * out (cap bytes). Returns 0 or MX_EINTERNAL. */
int mx_random_token(size_t n, char *out, size_t cap);

#endif
