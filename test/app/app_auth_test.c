/* app_auth_test.c - sign-in, tokens, sessions, admin role and the global
 * rate limits, on two real mxnode processes sharing a real redis-server,
 * with a real mxstub as the Nexon API:
 * - login with the caller's own key (character list), bad key, bad body;
 * - /auth/me with a valid, tampered, alg-none, foreign-secret and missing
 *   token, on either node (sessions live in Redis);
 * - refresh rotation, reuse detection revoking the family, logout;
 * - the seed's shapes: accessExpiresIn, /auth/me's sessionId and
 *   characterCount, logout's {"success":true}, 401 UNAUTHORIZED, 403 A002
 *   for a character not on the account, userIgn compared ignoring case
 *   (an ASCII name the stub lists with --account-character); fingerprints keyed with
 *   MX_FINGERPRINT_SECRET; the session's idle lifetime renewed by a request;
 * - admin routes: 401 without a token, 403 FORBIDDEN for USER, 200 for
 *   ADMIN, the seed's data strings, the self-removal and bootstrap guards;
 * - the per-IP bucket holding across two nodes (admitted within 5% of the
 *   limit), 429 with Retry-After and X-RateLimit-Remaining;
 * - X-Forwarded-For honoured only from a trusted proxy;
 * - Redis down: requests pass. */
#include <curl/curl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "../redis/redisd.h"
#include "../stub/stub_harness.h"
#include "mx_jwt.h"
#include "mx_testutil.h"
#include "node_harness.h"

static struct stub g_stub;
static struct redisd g_redis;
static struct node g_a, g_b; /* b trusts 127.0.0.1 as a proxy */
static char g_key[] = "user-key-1";
static char g_ign[128];
#define FGP_SECRET "fingerprint-secret-not-the-jwt-one-0123"
#define BOOT_ADMIN "bootstrap-admin-fingerprint-0001"

static int setup(void **st)
{
    /* an ASCII name on g_key's account: case-insensitive userIgn (A002) */
    const char *args[] = {"--reject-key", "bad-key", "--account-character", "user-key-1=AsciiHero",
                          NULL};
    if (stub_start(&g_stub, args) != 0 || redisd_start(&g_redis, NULL) != 0)
        return -1;
    static char base[160], redis[700];
    snprintf(base, sizeof base, "MX_NEXON_BASE_URL=%s", g_stub.base);
    snprintf(redis, sizeof redis, "MX_REDIS_URL=%s", g_redis.url);
    const char *env_a[] = {base,
                           redis,
                           "MX_FINGERPRINT_SECRET=" FGP_SECRET,
                           "MX_SESSION_TTL_S=60",
                           "MX_ADMIN_FINGERPRINTS=" BOOT_ADMIN,
                           NULL};
    const char *env_b[] = {base,
                           redis,
                           "MX_TRUSTED_PROXIES=127.0.0.1/32",
                           "MX_FINGERPRINT_SECRET=" FGP_SECRET,
                           "MX_SESSION_TTL_S=60",
                           "MX_ADMIN_FINGERPRINTS=" BOOT_ADMIN,
                           NULL};
    if (node_start(&g_a, env_a) != 0 || node_start(&g_b, env_b) != 0)
        return -1;
    /* the account's first character, as the stub's list gives it */
    return stub_first_character(&g_stub, g_key, g_ign, sizeof g_ign);
}

static int teardown(void **st)
{
    node_kill(&g_a);
    node_kill(&g_b);
    redisd_stop(&g_redis);
    stub_stop(&g_stub);
    return 0;
}

struct tokens {
    char access[1024], refresh[128], role[16], fgp[64];
};

static int login(struct node *n, const char *key, const char *ign, struct tokens *t,
                 struct http_res *out)
{
    char body[512];
    snprintf(body, sizeof body, "{\"apiKey\":\"%s\",\"userIgn\":\"%s\"}", key, ign);
    struct http_res r;
    int s = node_http(n->http_port, "POST", "/auth/login", NULL, body, &r);
    if (t && s == 200) {
        assert_int_equal(json_str(r.body, "accessToken", t->access, sizeof t->access), 0);
        assert_int_equal(json_str(r.body, "refreshToken", t->refresh, sizeof t->refresh), 0);
        assert_int_equal(json_str(r.body, "role", t->role, sizeof t->role), 0);
        assert_int_equal(json_str(r.body, "fingerprint", t->fgp, sizeof t->fgp), 0);
        assert_non_null(strstr(r.body, "\"success\":true"));
        assert_non_null(strstr(r.body, "\"expiresIn\":900"));
        assert_non_null(strstr(r.body, "\"accessExpiresIn\":900"));
        assert_non_null(strstr(r.body, "\"refreshExpiresIn\":"));
    }
    if (out)
        *out = r;
    else
        http_res_free(&r);
    return s;
}

static int with_bearer(struct node *n, const char *method, const char *path, const char *tok,
                       const char *body, struct http_res *out)
{
    char hdr[1200] = "";
    if (tok)
        snprintf(hdr, sizeof hdr, "Authorization: Bearer %s\r\n", tok);
    struct http_res r;
    int s = node_http(n->http_port, method, path, tok ? hdr : NULL, body, &r);
    if (out)
        *out = r;
    else
        http_res_free(&r);
    return s;
}

static void test_login_and_me(void **st)
{
    struct tokens t;
    assert_int_equal(login(&g_a, g_key, g_ign, &t, NULL), 200);
    assert_string_equal(t.role, "USER");
    /* the fingerprint is HMAC-SHA256(secret, apiKey), base64url */
    char fp[44];
    mx_jwt_fingerprint((const uint8_t *)FGP_SECRET, strlen(FGP_SECRET), g_key, strlen(g_key), fp);
    assert_string_equal(t.fgp, fp);
    /* the token works on both nodes: the session is in Redis */
    struct http_res r;
    assert_int_equal(with_bearer(&g_a, "GET", "/auth/me", t.access, NULL, &r), 200);
    char ign[128];
    assert_int_equal(json_str(r.body, "userIgn", ign, sizeof ign), 0);
    assert_string_equal(ign, g_ign);
    assert_non_null(strstr(r.body, "\"ocids\":[\""));
    assert_non_null(strstr(r.body, "\"characterCount\":"));
    char sid[64], key[96];
    assert_int_equal(json_str(r.body, "sessionId", sid, sizeof sid), 0);
    http_res_free(&r);
    /* the session's idle lifetime (MX_SESSION_TTL_S=60) starts again with
     * every authenticated request */
    snprintf(key, sizeof key, "{auth}:sess:%s", sid);
    redisReply *ttl = redisd_cmd(&g_redis, "TTL %s", key);
    assert_non_null(ttl);
    TU_ASSERT_CMP(ttl->integer, >, 0);
    TU_ASSERT_CMP(ttl->integer, <=, 60);
    freeReplyObject(ttl);
    assert_true(redisd_ok(&g_redis, "EXPIRE %s 5", key));
    assert_int_equal(with_bearer(&g_b, "GET", "/auth/me", t.access, NULL, NULL), 200);
    ttl = redisd_cmd(&g_redis, "TTL %s", key);
    assert_non_null(ttl);
    TU_ASSERT_CMP(ttl->integer, >, 5);
    TU_ASSERT_CMP(ttl->integer, <=, 60);
    freeReplyObject(ttl);
    assert_int_equal(with_bearer(&g_b, "GET", "/auth/me", t.access, NULL, NULL), 200);

    /* bad logins */
    struct http_res e;
    assert_int_equal(login(&g_a, "bad-key", g_ign, NULL, &e), 401);
    assert_non_null(strstr(e.body, "\"code\":\"A001\""));
    http_res_free(&e);
    assert_int_equal(login(&g_a, g_key, "not-my-character", NULL, &e), 403);
    assert_non_null(strstr(e.body, "\"code\":\"A002\""));
    http_res_free(&e);
    assert_int_equal(with_bearer(&g_a, "GET", "/auth/me", NULL, NULL, &e), 401);
    assert_non_null(strstr(e.body, "\"code\":\"UNAUTHORIZED\""));
    http_res_free(&e);
    assert_int_equal(node_http(g_a.http_port, "POST", "/auth/login", NULL, "{\"apiKey\":1}", &e),
                     400);
    assert_non_null(strstr(e.body, "\"code\":\"C001\""));
    http_res_free(&e);
    assert_int_equal(node_http(g_a.http_port, "POST", "/auth/login", NULL, "not json", &e), 400);
    http_res_free(&e);
}

/* The seed compares userIgn with the account's names ignoring case: an
 * ASCII-named character signs in whatever case the caller types, and a
 * name that only differs by a letter, or is on another key's account, is
 * 403 A002. */
static void test_login_ign_case(void **st)
{
    static const char *const same[] = {"AsciiHero", "asciihero", "ASCIIHERO", "aSCIIhERO"};
    for (size_t i = 0; i < sizeof same / sizeof same[0]; i++) {
        struct tokens t;
        assert_int_equal(login(&g_a, g_key, same[i], &t, NULL), 200);
        assert_string_equal(t.role, "USER");
    }
    static const char *const other[] = {"AsciiHer", "AsciiHeroo", "AsciiHer0"};
    for (size_t i = 0; i < sizeof other / sizeof other[0]; i++) {
        struct http_res e;
        assert_int_equal(login(&g_a, g_key, other[i], NULL, &e), 403);
        assert_non_null(strstr(e.body, "\"code\":\"A002\""));
        http_res_free(&e);
    }
    struct http_res e;
    assert_int_equal(login(&g_a, "user-key-2", "asciihero", NULL, &e), 403);
    assert_non_null(strstr(e.body, "\"code\":\"A002\""));
    http_res_free(&e);
}

static void test_token_tampering(void **st)
{
    struct tokens t;
    assert_int_equal(login(&g_a, g_key, g_ign, &t, NULL), 200);
    assert_int_equal(with_bearer(&g_a, "GET", "/auth/me", NULL, NULL, NULL), 401);
    assert_int_equal(with_bearer(&g_a, "GET", "/auth/me", "garbage", NULL, NULL), 401);
    /* flip one signature character */
    char bad[1024];
    snprintf(bad, sizeof bad, "%s", t.access);
    size_t n = strlen(bad);
    bad[n - 3] = bad[n - 3] == 'A' ? 'B' : 'A';
    assert_int_equal(with_bearer(&g_a, "GET", "/auth/me", bad, NULL, NULL), 401);
    /* alg none: header replaced, signature dropped */
    char none[1024];
    const char *dot = strchr(t.access, '.');
    const char *dot2 = strchr(dot + 1, '.');
    snprintf(none, sizeof none, "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0%.*s.", (int)(dot2 - dot), dot);
    assert_int_equal(with_bearer(&g_a, "GET", "/auth/me", none, NULL, NULL), 401);
    /* a token signed with another secret, same claims shape */
    struct mx_jwt_claims c = {.iat = time(NULL), .exp = time(NULL) + 900};
    snprintf(c.sub, sizeof c.sub, "whatever");
    snprintf(c.role, sizeof c.role, "ADMIN");
    char forged[1024];
    const char *other = "another-secret-another-secret-0123456789";
    assert_int_equal(mx_jwt_sign(&c, (const uint8_t *)other, strlen(other), forged, sizeof forged),
                     0);
    assert_int_equal(with_bearer(&g_a, "GET", "/auth/me", forged, NULL, NULL), 401);
    /* an expired token signed with the right secret */
    c.iat = time(NULL) - 2000;
    c.exp = time(NULL) - 1000;
    assert_int_equal(mx_jwt_sign(&c, (const uint8_t *)NODE_TEST_SECRET, strlen(NODE_TEST_SECRET),
                                 forged, sizeof forged),
                     0);
    assert_int_equal(with_bearer(&g_a, "GET", "/auth/me", forged, NULL, NULL), 401);
    /* well signed, but for a session that does not exist */
    c.iat = time(NULL);
    c.exp = time(NULL) + 900;
    assert_int_equal(mx_jwt_sign(&c, (const uint8_t *)NODE_TEST_SECRET, strlen(NODE_TEST_SECRET),
                                 forged, sizeof forged),
                     0);
    assert_int_equal(with_bearer(&g_a, "GET", "/auth/me", forged, NULL, NULL), 401);
}

static void test_refresh_rotation_and_reuse(void **st)
{
    struct tokens t;
    assert_int_equal(login(&g_a, g_key, g_ign, &t, NULL), 200);
    char body[256], r1[128], r2[128];
    snprintf(body, sizeof body, "{\"refreshToken\":\"%s\"}", t.refresh);
    struct http_res r;
    assert_int_equal(node_http(g_b.http_port, "POST", "/auth/refresh", NULL, body, &r), 200);
    assert_int_equal(json_str(r.body, "refreshToken", r1, sizeof r1), 0);
    char access2[1024];
    assert_int_equal(json_str(r.body, "accessToken", access2, sizeof access2), 0);
    http_res_free(&r);
    assert_string_not_equal(r1, t.refresh);
    assert_int_equal(with_bearer(&g_a, "GET", "/auth/me", access2, NULL, NULL), 200);
    /* rotate again with the new one */
    snprintf(body, sizeof body, "{\"refreshToken\":\"%s\"}", r1);
    assert_int_equal(node_http(g_a.http_port, "POST", "/auth/refresh", NULL, body, &r), 200);
    assert_int_equal(json_str(r.body, "refreshToken", r2, sizeof r2), 0);
    http_res_free(&r);
    /* reuse of the first (already rotated) token: the family is revoked */
    snprintf(body, sizeof body, "{\"refreshToken\":\"%s\"}", t.refresh);
    assert_int_equal(node_http(g_a.http_port, "POST", "/auth/refresh", NULL, body, &r), 401);
    assert_non_null(strstr(r.body, "\"code\":\"A012\""));
    http_res_free(&r);
    /* so the newest token of that family no longer works either */
    snprintf(body, sizeof body, "{\"refreshToken\":\"%s\"}", r2);
    assert_int_equal(node_http(g_b.http_port, "POST", "/auth/refresh", NULL, body, &r), 401);
    assert_non_null(strstr(r.body, "\"code\":\"A013\""));
    http_res_free(&r);
    /* nor the access tokens of the session */
    assert_int_equal(with_bearer(&g_a, "GET", "/auth/me", access2, NULL, NULL), 401);
    /* malformed and unknown refresh tokens */
    /* (as the seed: no token is a validation error, an unknown one A010) */
    assert_int_equal(node_http(g_a.http_port, "POST", "/auth/refresh", NULL, "{}", &r), 400);
    assert_non_null(strstr(r.body, "\"code\":\"C001\""));
    http_res_free(&r);
    assert_int_equal(
        node_http(g_a.http_port, "POST", "/auth/refresh", NULL, "{\"refreshToken\":\"  \"}", &r),
        400);
    assert_non_null(strstr(r.body, "\"code\":\"C001\""));
    http_res_free(&r);
    assert_int_equal(
        node_http(g_a.http_port, "POST", "/auth/refresh", NULL, "{\"refreshToken\":\"nodot\"}", &r),
        401);
    assert_non_null(strstr(r.body, "\"code\":\"A010\""));
    http_res_free(&r);
    assert_int_equal(node_http(g_a.http_port, "POST", "/auth/refresh", NULL,
                               "{\"refreshToken\":\"abc.def\"}", &r),
                     401);
    assert_non_null(strstr(r.body, "\"code\":\"A010\""));
    http_res_free(&r);
}

static void test_logout(void **st)
{
    struct tokens t;
    assert_int_equal(login(&g_a, g_key, g_ign, &t, NULL), 200);
    struct http_res lo;
    assert_int_equal(with_bearer(&g_b, "DELETE", "/auth/logout", t.access, NULL, &lo), 200);
    assert_string_equal(lo.body, "{\"success\":true}");
    http_res_free(&lo);
    assert_int_equal(with_bearer(&g_a, "GET", "/auth/me", t.access, NULL, NULL), 401);
    char body[256];
    snprintf(body, sizeof body, "{\"refreshToken\":\"%s\"}", t.refresh);
    struct http_res r;
    assert_int_equal(node_http(g_a.http_port, "POST", "/auth/refresh", NULL, body, &r), 401);
    http_res_free(&r);
}

static void test_admin_routes(void **st)
{
    struct http_res r;
    assert_int_equal(node_http(g_a.http_port, "GET", "/api/admin/admins", NULL, NULL, &r), 401);
    http_res_free(&r);
    struct tokens t;
    assert_int_equal(login(&g_a, g_key, g_ign, &t, NULL), 200);
    assert_int_equal(with_bearer(&g_a, "GET", "/api/admin/admins", t.access, NULL, &r), 403);
    assert_non_null(strstr(r.body, "\"code\":\"FORBIDDEN\""));
    http_res_free(&r);
    /* make this key's fingerprint an admin, sign in again */
    assert_true(redisd_ok(&g_redis, "SADD {auth}:admins %s", t.fgp));
    struct tokens adm;
    assert_int_equal(login(&g_b, g_key, g_ign, &adm, NULL), 200);
    assert_string_equal(adm.role, "ADMIN");
    assert_int_equal(with_bearer(&g_a, "GET", "/api/admin/admins", adm.access, NULL, &r), 200);
    assert_non_null(strstr(r.body, t.fgp));
    assert_non_null(strstr(r.body, "\"" BOOT_ADMIN "\"")); /* the bootstrap list too */
    http_res_free(&r);
    /* the outbox placeholder is gone; without MySQL the DLQ API says so */
    assert_int_equal(with_bearer(&g_a, "GET", "/api/admin/outbox/dlq", adm.access, NULL, &r), 404);
    http_res_free(&r);
    assert_int_equal(with_bearer(&g_a, "GET", "/api/admin/dlq", adm.access, NULL, &r), 503);
    assert_non_null(strstr(r.body, "\"code\":\"S007\""));
    http_res_free(&r);
    assert_int_equal(with_bearer(&g_a, "POST", "/api/admin/admins", adm.access,
                                 "{\"fingerprint\":\"someone-else\"}", &r),
                     200);
    assert_string_equal(r.body,
                        "{\"success\":true,\"data\":\"Admin added successfully: some****else\"}");
    http_res_free(&r);
    redisReply *rep = redisd_cmd(&g_redis, "SISMEMBER {auth}:admins someone-else");
    assert_non_null(rep);
    assert_int_equal(rep->integer, 1);
    freeReplyObject(rep);
    /* the seed's guards: not oneself, not a bootstrap admin, not a non-admin */
    char path[160];
    snprintf(path, sizeof path, "/api/admin/admins/%s", adm.fgp);
    assert_int_equal(with_bearer(&g_a, "DELETE", path, adm.access, NULL, &r), 400);
    assert_non_null(strstr(r.body, "\"code\":\"SELF_REMOVAL_NOT_ALLOWED\""));
    assert_non_null(strstr(r.body, "\"success\":false"));
    http_res_free(&r);
    assert_int_equal(
        with_bearer(&g_a, "DELETE", "/api/admin/admins/" BOOT_ADMIN, adm.access, NULL, &r), 400);
    assert_non_null(strstr(r.body, "\"code\":\"BOOTSTRAP_ADMIN\""));
    http_res_free(&r);
    assert_int_equal(
        with_bearer(&g_a, "DELETE", "/api/admin/admins/someone-else", adm.access, NULL, &r), 200);
    assert_non_null(strstr(r.body, "Admin removed successfully: some****else"));
    http_res_free(&r);
    assert_int_equal(
        with_bearer(&g_a, "DELETE", "/api/admin/admins/someone-else", adm.access, NULL, &r), 400);
    http_res_free(&r);
    assert_true(redisd_ok(&g_redis, "SREM {auth}:admins %s", t.fgp));
}

/* Fire n requests alternating between the nodes as fast as possible;
 * returns how many were admitted (not 429). */
static int fire(int n, const char *xff, struct node *only, int *last_429, char *retry_after,
                char *remaining)
{
    int admitted = 0;
    char hdr[128] = "";
    if (xff)
        snprintf(hdr, sizeof hdr, "X-Forwarded-For: %s\r\n", xff);
    for (int i = 0; i < n; i++) {
        struct node *nd = only ? only : (i % 2 ? &g_b : &g_a);
        struct http_res r;
        int s = node_http(nd->http_port, "GET", "/api/v2/characters/x/like/status", hdr, NULL, &r);
        if (s == 429) {
            *last_429 = 1;
            http_header(&r, "Retry-After", retry_after, 16);
            http_header(&r, "X-RateLimit-Remaining", remaining, 16);
            assert_non_null(strstr(r.body, "\"code\":\"R001\""));
        } else {
            assert_int_equal(s, 503); /* admitted: the like store answers 503 for now */
            admitted++;
        }
        http_res_free(&r);
    }
    return admitted;
}

static void test_rate_limit_across_nodes(void **st)
{
    /* start from a full bucket for 127.0.0.1 */
    assert_true(redisd_ok(&g_redis, "DEL {rl}:ip:127.0.0.1"));
    int64_t t0 = tu_now_ms();
    int hit = 0;
    char ra[16] = "", rem[16] = "";
    /* node b trusts 127.0.0.1: without X-Forwarded-For it is the client */
    int admitted = fire(160, NULL, NULL, &hit, ra, rem);
    double secs = (double)(tu_now_ms() - t0) / 1000.0;
    /* the limit: 100 burst plus 10 per 6 s refilled while we ran */
    double limit = 100.0 + secs * 10.0 / 6.0;
    print_message("admitted %d of 160 in %.2f s; limit %.1f\n", admitted, secs, limit);
    assert_true(hit);
    TU_ASSERT_CMP(admitted, >=, (int)(limit * 0.95));
    TU_ASSERT_CMP(admitted, <=, (int)(limit * 1.05) + 1);
    TU_ASSERT_CMP(atoi(ra), >=, 1);
    assert_string_equal(rem, "0");
}

static void test_forwarded_for(void **st)
{
    int hit = 0;
    char ra[16], rem[16];
    /* through the trusted node, X-Forwarded-For picks the bucket: a fresh
     * client address is admitted although 127.0.0.1's bucket is empty */
    assert_true(redisd_ok(&g_redis, "DEL {rl}:ip:10.1.2.3"));
    assert_int_equal(fire(3, "10.1.2.3", &g_b, &hit, ra, rem), 3);
    redisReply *rep = redisd_cmd(&g_redis, "EXISTS {rl}:ip:10.1.2.3");
    assert_non_null(rep);
    assert_int_equal(rep->integer, 1);
    freeReplyObject(rep);
    /* node a does not trust its peer: the header is ignored (127.0.0.1's
     * bucket, still empty, decides) */
    hit = 0;
    assert_true(redisd_ok(&g_redis, "DEL {rl}:ip:10.9.9.9"));
    assert_int_equal(fire(3, "10.9.9.9", &g_a, &hit, ra, rem), 0);
    assert_true(hit);
    rep = redisd_cmd(&g_redis, "EXISTS {rl}:ip:10.9.9.9");
    assert_int_equal(rep->integer, 0);
    freeReplyObject(rep);
}

static void test_redis_down_passes(void **st)
{
    redisd_kill(&g_redis);
    int hit = 0;
    char ra[16], rem[16];
    assert_int_equal(fire(20, NULL, NULL, &hit, ra, rem), 20);
    /* login needs the session store: a clear 503 */
    struct http_res r;
    assert_int_equal(login(&g_a, g_key, g_ign, NULL, &r), 503);
    assert_non_null(strstr(r.body, "Redis"));
    http_res_free(&r);
    struct http_res m;
    assert_int_equal(node_http(g_a.http_port, "GET", "/actuator/prometheus", NULL, NULL, &m), 200);
    assert_non_null(strstr(m.body, "mx_ratelimit_bypassed_total"));
    http_res_free(&m);
    /* Redis back: within a few seconds sign-in works again */
    assert_int_equal(redisd_restart(&g_redis), 0);
    int s = 0;
    for (int i = 0; i < 50 && s != 200; i++) {
        usleep(100000);
        s = login(&g_a, g_key, g_ign, NULL, NULL);
    }
    assert_int_equal(s, 200);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_login_and_me),
        cmocka_unit_test(test_login_ign_case),
        cmocka_unit_test(test_token_tampering),
        cmocka_unit_test(test_refresh_rotation_and_reuse),
        cmocka_unit_test(test_logout),
        cmocka_unit_test(test_admin_routes),
        cmocka_unit_test(test_rate_limit_across_nodes),
        cmocka_unit_test(test_forwarded_for),
        cmocka_unit_test(test_redis_down_passes),
    };
    int rc = cmocka_run_group_tests(tests, setup, teardown);
    curl_global_cleanup();
    return rc;
}
