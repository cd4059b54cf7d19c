/* contract_test.c - every route of the HTTP API against docs/openapi.yaml.
 *
 * A real mxnode with a real redis-server, mariadbd and mxstub (as the
 * Nexon API) is asked every route of the API, in success and error cases;
 * each answer (status, headers, body) is written to a JSON-lines file, and
 * validate.py (python3-jsonschema, Debian-packaged) checks every one
 * against the OpenAPI document: the path and method must be documented,
 * the status among the operation's responses, the body valid against the
 * response schema (which forbids members it does not list) and the
 * documented headers present. An operation of the document that no answer
 * exercised fails the test too, and so does a route of the node's table
 * (actors/api/app_routes.c) the document lacks, so the document and the
 * routes cannot drift apart in either direction.
 *
 * Upstream failure and the rate limit are provoked too (mxstub's failure
 * switch, a burst), so the 503 and 429 answers are checked as well.
 *
 * Each request here also states the status it must get, so a route that
 * starts failing is caught even when its error answer is well-formed.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "mx_testutil.h"

#include "app/node_harness.h"
#include "mx_jsonw.h"
#include "mx_jwt.h"
#include "mysql/mysqld.h"
#include "redis/redisd.h"
#include "stub/stub_harness.h"

#define EVAN "\xec\x97\x90\xeb\xb0\x98" /* 에반 */
#define EVAN_URL "%EC%97%90%EB%B0%98"
#define MECH_URL "%EB%A9%94%EC%B9%B4%EB%8B%89" /* 메카닉 */
#define FRONT "https://front.example"
#define FGP_SECRET "contract-fingerprint-secret-0123456789"
#define USER_KEY "user-key-1"
#define ADMIN_KEY "admin-key-1"

static struct stub g_stub;
static struct redisd g_redis;
static struct mysqld g_my;
static struct node g_node;
static FILE *g_out;
static char g_out_path[256];
static char g_user_ign[128], g_user_ign_url[400], g_admin_ign[128];
static char g_admin_fgp[64];

/* ---- recording ---- */

static void header_pairs(struct mx_jsonw *w, const char *head)
{
    mx_jsonw_obj_open(w);
    const char *p = strstr(head, "\r\n"); /* skip the status line */
    while (p && p[2] && !(p[2] == '\r' && p[3] == '\n')) {
        const char *line = p + 2, *end = strstr(line, "\r\n"), *colon = strchr(line, ':');
        if (!end) /* the head may end without its blank line */
            end = line + strlen(line);
        if (colon && colon < end) {
            char name[128];
            size_t n =
                (size_t)(colon - line) < sizeof name - 1 ? (size_t)(colon - line) : sizeof name - 1;
            for (size_t i = 0; i < n; i++)
                name[i] = (char)(line[i] >= 'A' && line[i] <= 'Z' ? line[i] + 32 : line[i]);
            name[n] = '\0';
            const char *v = colon + 1;
            while (*v == ' ')
                v++;
            mx_jsonw_key(w, name);
            mx_jsonw_strn(w, v, (size_t)(end - v));
        }
        p = *end ? end : NULL;
    }
    mx_jsonw_obj_close(w);
}

/* One request: assert its status, record the exchange; *out (may be NULL)
 * gets the response (the caller frees it). */
static void ex(const char *method, const char *path, const char *extra, const char *body, int want,
               struct http_res *out)
{
    struct http_res r;
    int s = node_http(g_node.http_port, method, path, extra, body, &r);
    if (s != want)
        fprintf(stderr, "%s %s: got %d, want %d: %s\n", method, path, s, want,
                r.body ? r.body : "");
    assert_int_equal(s, want);
    struct mx_jsonw w;
    mx_jsonw_init(&w, 64u << 20);
    mx_jsonw_obj_open(&w);
    mx_jsonw_kstr(&w, "method", method);
    mx_jsonw_kstr(&w, "path", path);
    mx_jsonw_kint(&w, "status", s);
    mx_jsonw_key(&w, "headers");
    header_pairs(&w, r.head);
    mx_jsonw_key(&w, "body");
    mx_jsonw_strn(&w, r.body, r.body_len);
    mx_jsonw_obj_close(&w);
    assert_int_equal(w.err, 0);
    fprintf(g_out, "%s\n", w.buf);
    mx_jsonw_fini(&w);
    if (out)
        *out = r;
    else
        http_res_free(&r);
}

static void bearer(char *hdr, size_t cap, const char *tok)
{
    snprintf(hdr, cap, "Authorization: Bearer %s\r\n", tok);
}

/* ---- setup ---- */

static void url_encode(const char *s, char *out, size_t cap)
{
    size_t o = 0;
    for (; *s && o + 4 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-')
            out[o++] = (char)c;
        else
            o += (size_t)snprintf(out + o, cap - o, "%%%02X", c);
    }
    out[o] = '\0';
}

static int setup(void **st)
{
    char evan[4096], mech[4096], a1[4200], a2[4200];
    stub_fixture_path("evan_equip.json", evan, sizeof evan);
    stub_fixture_path("mechanic_equip.json", mech, sizeof mech);
    snprintf(a1, sizeof a1, EVAN "=%s", evan);
    snprintf(a2, sizeof a2, "\xeb\xa9\x94\xec\xb9\xb4\xeb\x8b\x89=%s", mech);
    const char *args[] = {"--character",  a1,        "--character", a2, "--unknown", "404",
                          "--reject-key", "bad-key", NULL};
    if (stub_start(&g_stub, args) != 0 || redisd_start(&g_redis, NULL) != 0 ||
        mysqld_start(&g_my) != 0)
        return -1;
    mx_jwt_fingerprint((const uint8_t *)FGP_SECRET, strlen(FGP_SECRET), ADMIN_KEY,
                       strlen(ADMIN_KEY), g_admin_fgp);
    static char base[160], redis[700], mysql[200], admins[128];
    snprintf(base, sizeof base, "MX_NEXON_BASE_URL=%s", g_stub.base);
    snprintf(redis, sizeof redis, "MX_REDIS_URL=%s", g_redis.url);
    snprintf(mysql, sizeof mysql, "MX_MYSQL_URL=%s", g_my.url);
    snprintf(admins, sizeof admins, "MX_ADMIN_FINGERPRINTS=%s", g_admin_fgp);
    const char *env[] = {base,
                         redis,
                         mysql,
                         admins,
                         "MX_FINGERPRINT_SECRET=" FGP_SECRET,
                         "MX_CORS_ORIGINS=" FRONT,
                         "MX_V5_WAIT_MS=1",
                         "MX_FETCH_TIMEOUT_MS=1500",
                         NULL};
    if (node_start(&g_node, env) != 0)
        return -1;
    if (stub_first_character(&g_stub, USER_KEY, g_user_ign, sizeof g_user_ign) != 0 ||
        stub_first_character(&g_stub, ADMIN_KEY, g_admin_ign, sizeof g_admin_ign) != 0)
        return -1;
    url_encode(g_user_ign, g_user_ign_url, sizeof g_user_ign_url);
    snprintf(g_out_path, sizeof g_out_path, "/tmp/mx-contract-%d.jsonl", (int)getpid());
    g_out = fopen(g_out_path, "w");
    return g_out ? 0 : -1;
}

static int teardown(void **st)
{
    node_kill(&g_node);
    mysqld_destroy(&g_my);
    redisd_stop(&g_redis);
    stub_stop(&g_stub);
    if (g_out)
        fclose(g_out);
    if (getenv("MX_CONTRACT_KEEP"))
        fprintf(stderr, "answers kept in %s\n", g_out_path);
    else
        unlink(g_out_path);
    return 0;
}

/* ---- the routes ---- */

static void characters_and_documents(void)
{
    static const char long_name[] =
        "/api/v1/characters/"
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    ex("GET", "/api/v1/characters/" EVAN_URL, NULL, NULL, 200, NULL);
    ex("GET", "/api/v1/characters/nobody-here", NULL, NULL, 404, NULL);
    ex("GET", long_name, NULL, NULL, 400, NULL);
    ex("GET", "/api/v4/characters/" EVAN_URL "/expectation", NULL, NULL, 200, NULL);
    ex("GET", "/api/v4/characters/" EVAN_URL "/expectation?starCatch=false&force=true", NULL, NULL,
       200, NULL);
    ex("GET", "/api/v4/characters/" EVAN_URL "/expectation?starCatch=maybe", NULL, NULL, 400, NULL);
    ex("GET", "/api/v4/characters/nobody-here/expectation", NULL, NULL, 404, NULL);
    ex("GET", "/api/v4/characters/" EVAN_URL "/expectation/preset/2", NULL, NULL, 200, NULL);
    ex("GET", "/api/v4/characters/" EVAN_URL "/expectation/preset/7", NULL, NULL, 200, NULL);
    ex("GET", "/api/v4/characters/" EVAN_URL "/expectation/preset/x", NULL, NULL, 400, NULL);
    ex("POST", "/api/v4/characters/" EVAN_URL "/expectation/recalculate", NULL, NULL, 200, NULL);
    ex("GET", "/api/v2/characters/" EVAN_URL "/equipment", NULL, NULL, 200, NULL);
    ex("GET", "/api/v2/characters/nobody-here/equipment", NULL, NULL, 404, NULL);
    ex("GET", "/api/v3/characters/" MECH_URL "/equipment", NULL, NULL, 200, NULL);
    ex("GET", "/api/v2/characters/" EVAN_URL "/expectation", NULL, NULL, 200, NULL);
    ex("GET", "/api/v3/characters/" MECH_URL "/expectation", NULL, NULL, 200, NULL);
    ex("GET", "/api/v3/characters/nobody-here/expectation", NULL, NULL, 404, NULL);
    /* v5: a character not computed yet is 202 (the wait is 1 ms), and a
     * document once the shard has it */
    char path[600];
    snprintf(path, sizeof path, "/api/v5/characters/%s/expectation", g_user_ign_url);
    ex("GET", path, NULL, NULL, 202, NULL);
    for (int i = 0;; i++) {
        struct http_res r;
        int s = node_http(g_node.http_port, "GET", path, NULL, NULL, &r);
        http_res_free(&r);
        if (s == 200)
            break;
        assert_int_equal(s, 202);
        TU_ASSERT_CMP(i, <, 500); /* 10 s */
        usleep(20000);
    }
    ex("GET", path, NULL, NULL, 200, NULL);
    snprintf(path, sizeof path, "/api/v5/characters/%s/expectation/recalculate", g_user_ign_url);
    ex("POST", path, NULL, NULL, 202, NULL);
}

struct session {
    char access[1024], refresh[128], fgp[64];
};

static void login(const char *key, const char *ign, struct session *s)
{
    char body[512];
    struct http_res r;
    snprintf(body, sizeof body, "{\"apiKey\":\"%s\",\"userIgn\":\"%s\"}", key, ign);
    ex("POST", "/auth/login", NULL, body, 200, &r);
    assert_int_equal(json_str(r.body, "accessToken", s->access, sizeof s->access), 0);
    assert_int_equal(json_str(r.body, "refreshToken", s->refresh, sizeof s->refresh), 0);
    assert_int_equal(json_str(r.body, "fingerprint", s->fgp, sizeof s->fgp), 0);
    http_res_free(&r);
}

static void auth_likes_and_admin(void)
{
    struct session u, adm;
    char hdr[1200], ahdr[1200], body[512], path[600];
    login(USER_KEY, g_user_ign, &u);
    login(ADMIN_KEY, g_admin_ign, &adm);
    bearer(hdr, sizeof hdr, u.access);
    bearer(ahdr, sizeof ahdr, adm.access);
    ex("POST", "/auth/login", NULL, "{\"apiKey\":\"\"}", 400, NULL);
    snprintf(body, sizeof body, "{\"apiKey\":\"bad-key\",\"userIgn\":\"%s\"}", g_user_ign);
    ex("POST", "/auth/login", NULL, body, 401, NULL);
    ex("POST", "/auth/login", NULL, "{\"apiKey\":\"" USER_KEY "\",\"userIgn\":\"not-mine\"}", 403,
       NULL);
    ex("GET", "/auth/me", hdr, NULL, 200, NULL);
    ex("GET", "/auth/me", NULL, NULL, 401, NULL);
    ex("POST", "/auth/refresh", NULL, "{\"refreshToken\":\"abc.def\"}", 401, NULL);

    /* likes */
    ex("POST", "/api/v2/characters/" EVAN_URL "/like", NULL, NULL, 401, NULL);
    ex("POST", "/api/v2/characters/" EVAN_URL "/like", hdr, NULL, 200, NULL);
    snprintf(path, sizeof path, "/api/v2/characters/%s/like", g_user_ign_url);
    ex("POST", path, hdr, NULL, 403, NULL);
    ex("GET", "/api/v2/characters/" EVAN_URL "/like/status", hdr, NULL, 200, NULL);
    ex("GET", "/api/v2/characters/" EVAN_URL "/like/status", NULL, NULL, 200, NULL);

    /* admins */
    ex("GET", "/api/admin/admins", NULL, NULL, 401, NULL);
    ex("GET", "/api/admin/admins", hdr, NULL, 403, NULL);
    ex("GET", "/api/admin/admins", ahdr, NULL, 200, NULL);
    ex("POST", "/api/admin/admins", ahdr, "{\"fingerprint\":\"someone-else-0001\"}", 200, NULL);
    ex("POST", "/api/admin/admins", ahdr, "{}", 400, NULL);
    ex("DELETE", "/api/admin/admins/someone-else-0001", ahdr, NULL, 200, NULL);
    ex("DELETE", "/api/admin/admins/someone-else-0001", ahdr, NULL, 400, NULL);
    snprintf(path, sizeof path, "/api/admin/admins/%s", adm.fgp);
    ex("DELETE", path, ahdr, NULL, 400, NULL);
    ex("GET", "/api/admin/nothing-here", ahdr, NULL, 404, NULL);

    /* points and donations */
    struct http_res r;
    char acct[96];
    ex("GET", "/api/v2/donation/points", hdr, NULL, 200, &r);
    assert_int_equal(json_str(r.body, "accountId", acct, sizeof acct), 0);
    http_res_free(&r);
    ex("GET", "/api/v2/donation/points", NULL, NULL, 401, NULL);
    snprintf(body, sizeof body, "{\"accountId\":\"%s\",\"amount\":5000}", acct);
    ex("POST", "/api/admin/points", ahdr, body, 200, NULL);
    snprintf(body, sizeof body, "{\"adminFingerprint\":\"%s\",\"amount\":1000}", adm.fgp);
    char idem[1400];
    snprintf(idem, sizeof idem, "%sIdempotency-Key: contract-1\r\n", hdr);
    ex("POST", "/api/v2/donation/coffee", idem, body, 200, NULL);
    snprintf(body, sizeof body, "{\"adminFingerprint\":\"%s\",\"amount\":999999999}", adm.fgp);
    ex("POST", "/api/v2/donation/coffee", hdr, body, 400, NULL);
    ex("POST", "/api/v2/donation/coffee", hdr,
       "{\"adminFingerprint\":\"not-an-admin\",\"amount\":10}", 404, NULL);
    ex("POST", "/api/admin/alerts/test", ahdr, "{\"pattern\":\"contract.test\"}", 202, NULL);

    /* the DLQ: one dead event put there by hand */
    assert_int_equal(mysqld_root_exec(&g_my,
                                      "INSERT INTO mx.outbox_dlq (outbox_id, event_type, "
                                      "payload, idempotency_key, last_error) VALUES (NULL, "
                                      "'DONATION_COMPLETED', '{\"amount\":1}', 'contract-dlq-1', "
                                      "'sink answered 500')"),
                     0);
    assert_int_equal(mysqld_root_exec(&g_my,
                                      "INSERT INTO mx.outbox_dlq (outbox_id, event_type, "
                                      "payload, idempotency_key, last_error) VALUES (NULL, "
                                      "'DONATION_COMPLETED', '{\"amount\":2}', 'contract-dlq-2', "
                                      "'sink answered 500')"),
                     0);
    long long id = mysqld_root_int(&g_my, "SELECT MIN(id) FROM mx.outbox_dlq");
    TU_ASSERT_CMP(id, >, 0);
    ex("GET", "/api/admin/dlq?page=0&size=20", ahdr, NULL, 200, NULL);
    ex("GET", "/api/admin/dlq?page=x", ahdr, NULL, 400, NULL);
    ex("GET", "/api/admin/dlq/count", ahdr, NULL, 200, NULL);
    ex("GET", "/api/admin/dlq/v2?size=1", ahdr, NULL, 200, NULL);
    snprintf(path, sizeof path, "/api/admin/dlq/%lld", id);
    ex("GET", path, ahdr, NULL, 200, NULL);
    ex("GET", "/api/admin/dlq/999999", ahdr, NULL, 404, NULL);
    snprintf(path, sizeof path, "/api/admin/dlq/%lld/reprocess", id);
    ex("POST", path, ahdr, NULL, 200, NULL);
    ex("POST", "/api/admin/dlq/999999/reprocess", ahdr, NULL, 404, NULL);
    snprintf(path, sizeof path, "/api/admin/dlq/%lld", id + 1);
    ex("DELETE", path, ahdr, NULL, 200, NULL);
    ex("DELETE", path, ahdr, NULL, 404, NULL);

    /* refresh and logout last: they end the sessions */
    snprintf(body, sizeof body, "{\"refreshToken\":\"%s\"}", u.refresh);
    ex("POST", "/auth/refresh", NULL, body, 200, NULL);
    ex("POST", "/auth/refresh", NULL, body, 401, NULL); /* reuse */
    ex("DELETE", "/auth/logout", ahdr, NULL, 200, NULL);
    ex("DELETE", "/auth/logout", ahdr, NULL, 401, NULL);
}

static void operations(void)
{
    ex("GET", "/actuator", NULL, NULL, 200, NULL);
    ex("GET", "/actuator/health", NULL, NULL, 200, NULL);
    ex("GET", "/actuator/health/liveness", NULL, NULL, 200, NULL);
    ex("GET", "/actuator/health/readiness", NULL, NULL, 200, NULL);
    ex("GET", "/actuator/info", NULL, NULL, 200, NULL);
    ex("GET", "/actuator/prometheus", NULL, NULL, 200, NULL);
    ex("GET", "/v3/api-docs", NULL, NULL, 200, NULL);
    ex("GET", "/v3/api-docs.yaml", NULL, NULL, 200, NULL);
    ex("GET", "/no/such/path", NULL, NULL, 404, NULL);
    ex("DELETE", "/api/v4/characters/" EVAN_URL "/expectation", NULL, NULL, 405, NULL);
    ex("OPTIONS", "/api/v4/characters/" EVAN_URL "/expectation",
       "Origin: " FRONT "\r\nAccess-Control-Request-Method: GET\r\n", NULL, 200, NULL);
    ex("OPTIONS", "/api/v4/characters/" EVAN_URL "/expectation",
       "Origin: https://evil.example\r\nAccess-Control-Request-Method: GET\r\n", NULL, 403, NULL);
    ex("GET", "/api/v1/characters/" EVAN_URL, "Origin: https://evil.example\r\n", NULL, 403, NULL);
    ex("OPTIONS", "/auth/login", NULL, NULL, 200, NULL);
}

/* The error answers of outages and limits: upstream failing (503 S005 with
 * Retry-After), then the per-IP rate limit (429 R001), last since it
 * leaves this client limited. */
static void outages_and_limits(void)
{
    assert_int_equal(stub_post(&g_stub, "/__stub/config?fail_rate=1&fail_status=503"), 200);
    ex("GET", "/api/v1/characters/upstream-down-1", NULL, NULL, 503, NULL);
    /* Evan's equipment is cached by now (served while upstream fails) */
    ex("GET", "/api/v2/characters/" EVAN_URL "/equipment", NULL, NULL, 200, NULL);
    ex("GET", "/api/v2/characters/upstream-down-2/equipment", NULL, NULL, 503, NULL);
    assert_int_equal(stub_post(&g_stub, "/__stub/config?fail_rate=0"), 200);
    int s = 0;
    for (int i = 0; i < 400 && s != 429; i++) {
        struct http_res r;
        s = node_http(g_node.http_port, "GET", "/api/v1/characters/" EVAN_URL, NULL, NULL, &r);
        http_res_free(&r);
    }
    assert_int_equal(s, 429);
    ex("GET", "/api/v1/characters/" EVAN_URL, NULL, NULL, 429, NULL);
}

static void test_contract(void **st)
{
    characters_and_documents();
    auth_likes_and_admin();
    operations();
    outages_and_limits();
    fflush(g_out);
    /* the Debian python (python3-jsonschema), not whatever python3 is first on PATH */
    const char *py = access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3";
    const char *src = getenv("MX_SOURCE_DIR");
    assert_non_null(src);
    char cmd[1200];
    snprintf(cmd, sizeof cmd,
             "%s %s/test/contract/validate.py %s/docs/openapi.yaml %s %s/actors/api/app_routes.c",
             py, src, src, g_out_path, src);
    int rc = system(cmd);
    assert_true(WIFEXITED(rc));
    assert_int_equal(WEXITSTATUS(rc), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_contract),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
