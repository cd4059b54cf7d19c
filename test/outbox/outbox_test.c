/* outbox_test.c - the outbox end to end (docs/outbox.md): three real
 * mxnode processes with a real mariadbd, redis-server and mxstub as the
 * webhook sink.
 * - every event written (donations on all three nodes plus bulk rows)
 *   reaches the sink; counted by Idempotency-Key each has one effect and
 *   no unknown key arrives;
 * - the relay holder SIGKILLed mid-batch: a new holder puts its claims
 *   back at once and nothing is lost;
 * - the holder SIGSTOPped past its lease TTL then SIGCONTed: a new holder
 *   delivers everything, the old epoch's fenced writes and guarded
 *   completions change 0 rows;
 * - the sink failing: retries, the DLQ, every DLQ admin route's shape,
 *   401/403/404, reprocess delivers once, discard removes;
 * - alerts: one per pattern per window across the nodes, the daily AI
 *   quota shared by all three, written as outbox rows and delivered;
 *   "mysql-down" written once MySQL is back;
 * - upstream failing with nothing stale: an UPSTREAM_REFETCH event whose
 *   delivery warms the cache once upstream is back;
 * - donations: one Idempotency-Key sent concurrently to two nodes moves
 *   points once, C003 writes nothing, A007, MySQL down gives a clear 503.
 * Every wait polls a condition with a deadline. */
#define _GNU_SOURCE
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "mx_err.h"
#include "mx_mysql.h"
#include "mx_testutil.h"
#include "ob_harness.h"

#define LEASE_TTL 1500

static const char *const extra_env[] = {"MX_LEASE_TTL_MS=1500",
                                        "MX_MEMBER_REFRESH_MS=300",
                                        "MX_MEMBER_TTL_MS=1500",
                                        "MX_OUTBOX_MAX_ATTEMPTS=3",
                                        "MX_OUTBOX_BACKOFF_BASE_MS=50",
                                        "MX_OUTBOX_BACKOFF_CAP_MS=200",
                                        "MX_OUTBOX_POLL_MS=50",
                                        "MX_OUTBOX_TIMEOUT_MS=3000",
                                        "MX_RATE_LIMIT=0",
                                        "MX_HEALTH_PROBE_MS=200",
                                        "MX_LOG_LEVEL=info",
                                        "MX_ALERT_AI_DAILY_QUOTA=5",
                                        "MX_ALERT_WINDOW_S=60",
                                        NULL};

static struct ob_world W;

struct tokens {
    char access[1024], fgp[64];
};
static struct tokens g_user, g_admin;
static char g_account[128];

static int http(int i, const char *method, const char *path, const char *tok, const char *extra,
                const char *body, struct http_res *out)
{
    char hdr[2048] = "";
    int k = 0;
    if (tok)
        k = snprintf(hdr, sizeof hdr, "Authorization: Bearer %s\r\n", tok);
    if (extra)
        snprintf(hdr + k, sizeof hdr - (size_t)k, "%s", extra);
    struct http_res r;
    int s = node_http(W.nodes[i].http_port, method, path, hdr[0] ? hdr : NULL, body, &r);
    if (out)
        *out = r;
    else
        http_res_free(&r);
    return s;
}

static int login(int i, const char *key, struct tokens *t)
{
    char ign[128], url[256], body[512];
    struct resp r;
    snprintf(url, sizeof url, "%s/maplestory/v1/character/list", W.stub.base);
    if (http_get(url, key, false, &r) != 0 || r.status != 200)
        return -1;
    const char *p = strstr(r.body, "\"character_name\":\"");
    if (!p)
        return -1;
    p += strlen("\"character_name\":\"");
    snprintf(ign, sizeof ign, "%.*s", (int)(strchr(p, '"') - p), p);
    resp_free(&r);
    snprintf(body, sizeof body, "{\"apiKey\":\"%s\",\"userIgn\":\"%s\"}", key, ign);
    struct http_res h;
    int s = http(i, "POST", "/auth/login", NULL, NULL, body, &h);
    if (s == 200) {
        json_str(h.body, "accessToken", t->access, sizeof t->access);
        json_str(h.body, "fingerprint", t->fgp, sizeof t->fgp);
    }
    http_res_free(&h);
    return s == 200 ? 0 : -1;
}

static int setup(void **st)
{
    if (ob_start(&W, 3, extra_env) != 0)
        return -1;
    if (login(0, "user-key-1", &g_user) != 0 || login(1, "admin-key-1", &g_admin) != 0)
        return -1;
    if (!redisd_ok(&W.redis, "SADD {auth}:admins %s", g_admin.fgp) ||
        login(1, "admin-key-1", &g_admin) != 0)
        return -1;
    struct http_res r;
    if (http(0, "GET", "/api/v2/donation/points", g_user.access, NULL, NULL, &r) != 200 ||
        json_str(r.body, "accountId", g_account, sizeof g_account) != 0) {
        fprintf(stderr, "points: %d %s\n", r.status, r.body ? r.body : "");
        http_res_free(&r);
        return -1;
    }
    http_res_free(&r);
    return 0;
}

static int teardown(void **st)
{
    ob_dump_logs(&W, getenv("OB_LOG_ALL") ? NULL : "outbox");
    ob_stop(&W);
    return 0;
}

static int stub_config(const char *query);

/* A failed test must not leave a node paused or the sink slow for the next. */
static int recover(void **st)
{
    for (int i = 0; i < OB_NODES; i++)
        if (W.nodes[i].pid > 0)
            kill(W.nodes[i].pid, SIGCONT);
    ob_sink_ctl(&W, "latency_ms=0&fail_all=0&fail=0");
    stub_config("fail_rate=0");
    return 0;
}

static long long not_done(void)
{
    return ob_sql_int(&W, "SELECT COUNT(*) FROM mx.outbox WHERE status <> 'DONE'");
}

static void grant(long long amount)
{
    char body[256];
    snprintf(body, sizeof body, "{\"accountId\":\"%s\",\"amount\":%lld}", g_account, amount);
    struct http_res r;
    assert_int_equal(http(1, "POST", "/api/admin/points", g_admin.access, NULL, body, &r), 200);
    assert_non_null(strstr(r.body, "\"points\":"));
    http_res_free(&r);
}

static int donate(int node, const char *key, long long amount, struct http_res *out)
{
    char body[256], hdr[160] = "";
    snprintf(body, sizeof body, "{\"adminFingerprint\":\"%s\",\"amount\":%lld}", g_admin.fgp,
             amount);
    if (key)
        snprintf(hdr, sizeof hdr, "Idempotency-Key: %s\r\n", key);
    return http(node, "POST", "/api/v2/donation/coffee", g_user.access, key ? hdr : NULL, body,
                out);
}

/* ---- 1: every event reaches the sink, one effect per key ---- */

#define DON_PER_NODE 40
#define BULK 9880 /* with 3 x 40 donations: 10,000 events */

struct don_arg {
    int node, ok;
};

static void *donor(void *p)
{
    struct don_arg *a = p;
    for (int k = 0; k < DON_PER_NODE; k++) {
        char key[64];
        snprintf(key, sizeof key, "ev-%d-%d", a->node, k);
        if (donate(a->node, key, 1, NULL) == 200)
            a->ok++;
    }
    return NULL;
}

/* Walk {"keys":{"k":n,...}}: every key must be expected; marks them. */
static void check_keys(const char *json, unsigned char *bulk_seen, unsigned char *don_seen,
                       long *unknown)
{
    const char *p = strstr(json, "\"keys\":{");
    assert_non_null(p);
    p += 8;
    while (*p == '"') {
        const char *e = strchr(p + 1, '"');
        assert_non_null(e);
        char key[200];
        snprintf(key, sizeof key, "%.*s", (int)(e - p - 1), p + 1);
        int n, k;
        long i;
        if (sscanf(key, "bulk:%ld", &i) == 1 && i >= 1 && i <= BULK)
            bulk_seen[i] = 1;
        else if (sscanf(key, "donation:ev-%d-%d", &n, &k) == 2 && n >= 0 && n < 3 && k >= 0 &&
                 k < DON_PER_NODE)
            don_seen[n * DON_PER_NODE + k] = 1;
        else if (strncmp(key, "kill:", 5) && strncmp(key, "stop:", 5) && strncmp(key, "dlq:", 4) &&
                 strncmp(key, "donation:", 9) && strncmp(key, "alert:", 6))
            (*unknown)++;
        p = strchr(e, ',');
        if (!p)
            break;
        p++;
    }
}

static void test_every_key_once(void **st)
{
    grant(1000000);
    pthread_t th[3];
    struct don_arg a[3];
    int64_t t0 = ob_now_ms();
    for (int i = 0; i < 3; i++) {
        a[i] = (struct don_arg){.node = i};
        pthread_create(&th[i], NULL, donor, &a[i]);
    }
    assert_int_equal(ob_bulk(&W, "TEST_EVENT", "bulk:", 1, BULK), 0);
    for (int i = 0; i < 3; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(a[i].ok, DON_PER_NODE);
    }
    long long want = BULK + 3 * DON_PER_NODE;
    assert_true(TU_WAIT_UNTIL(ob_sink(&W, "unique") == want && not_done() == 0, 60000));
    printf("%lld events delivered in %lld ms; sink: %lld accepted, %lld repeats\n", want,
           (long long)(ob_now_ms() - t0), ob_sink(&W, "accepted"), ob_sink(&W, "duplicates"));
    assert_int_equal(ob_sink(&W, "missing_key"), 0);
    assert_int_equal(ob_sink(&W, "accepted"), ob_sink(&W, "unique") + ob_sink(&W, "duplicates"));
    char url[256];
    struct resp r;
    snprintf(url, sizeof url, "%s/__stub/sink/keys", W.stub.base);
    assert_int_equal(http_get(url, NULL, false, &r), 0);
    static unsigned char bulk_seen[BULK + 1], don_seen[3 * DON_PER_NODE];
    long unknown = 0;
    check_keys(r.body, bulk_seen, don_seen, &unknown);
    resp_free(&r);
    assert_int_equal(unknown, 0);
    for (long i = 1; i <= BULK; i++)
        if (!bulk_seen[i])
            fail_msg("bulk:%ld never reached the sink", i);
    for (int i = 0; i < 3 * DON_PER_NODE; i++)
        if (!don_seen[i])
            fail_msg("donation %d never reached the sink", i);
    /* donation events are DONATION_COMPLETED rows written with the transfer */
    assert_int_equal(ob_sql_int(&W,
                                "SELECT COUNT(*) FROM mx.outbox WHERE event_type ="
                                " 'DONATION_COMPLETED' AND idempotency_key LIKE 'donation:ev-%%'"),
                     3 * DON_PER_NODE);
    TU_ASSERT_CMP(ob_sql_int(&W, "SELECT COUNT(*) FROM mx.outbox WHERE delivered_at IS NULL"), ==,
                  0);
}

/* ---- 2: the holder SIGKILLed mid-batch ---- */

static void test_holder_killed(void **st)
{
    int h = -1;
    assert_true(TU_WAIT_UNTIL((h = ob_holder(&W, -1)) >= 0, 5000));
    long long base = ob_sink(&W, "unique");
    assert_int_equal(ob_sink_ctl(&W, "latency_ms=50"), 0);
    assert_int_equal(ob_bulk(&W, "TEST_EVENT", "kill:", 1, 4000), 0);
    assert_true(TU_WAIT_UNTIL(ob_sink(&W, "unique") >= base + 500, 20000));
    long long inflight = ob_sql_int(&W, "SELECT COUNT(*) FROM mx.outbox WHERE status = 'INFLIGHT'");
    printf("SIGKILL holder n%d with %lld rows INFLIGHT\n", h + 1, inflight);
    TU_ASSERT_CMP(inflight, >, 0); /* mid-batch */
    node_kill(&W.nodes[h]);
    int nh = -1;
    assert_true(TU_WAIT_UNTIL((nh = ob_holder(&W, h)) >= 0, LEASE_TTL + 5000));
    assert_true(TU_WAIT_UNTIL(ob_sink(&W, "unique") == base + 4000 && not_done() == 0, 60000));
    /* the dead holder's claims were put back by the new one */
    TU_ASSERT_CMP(ob_outbox_int(&W, nh, "reclaimed"), >=, 1);
    printf("n%d took over; repeats so far %lld\n", nh + 1, ob_sink(&W, "duplicates"));
    assert_int_equal(ob_sink_ctl(&W, "latency_ms=0"), 0);
    assert_int_equal(ob_node_start(&W, h), 0);
}

/* ---- 3: the holder SIGSTOPped past its TTL, then SIGCONTed ---- */

static int noop_write(struct mx_mysql_conn *c, void *arg)
{
    (*(int *)arg)++;
    return 0;
}

static void test_holder_paused(void **st)
{
    int h = -1;
    assert_true(TU_WAIT_UNTIL((h = ob_holder(&W, -1)) >= 0, 5000));
    long long old_epoch = ob_outbox_int(&W, h, "epoch");
    long long base = ob_sink(&W, "unique");
    assert_int_equal(ob_sink_ctl(&W, "latency_ms=200"), 0);
    assert_int_equal(ob_bulk(&W, "TEST_EVENT", "stop:", 1, 1500), 0);
    assert_true(TU_WAIT_UNTIL(ob_sink(&W, "unique") >= base + 100 &&
                                  ob_sql_int(&W,
                                             "SELECT COUNT(*) FROM mx.outbox WHERE status ="
                                             " 'INFLIGHT' AND claim_epoch = %lld",
                                             old_epoch) > 0,
                              20000));
    printf("SIGSTOP holder n%d (epoch %lld)\n", h + 1, old_epoch);
    int64_t t0 = ob_now_ms();
    kill(W.nodes[h].pid, SIGSTOP);
    int nh = -1;
    assert_true(TU_WAIT_UNTIL((nh = ob_holder(&W, h)) >= 0, LEASE_TTL + 5000));
    long long new_epoch = ob_outbox_int(&W, nh, "epoch");
    TU_ASSERT_CMP(new_epoch, >, old_epoch);
    /* the new holder put the paused one's claims back and took them */
    assert_true(TU_WAIT_UNTIL(ob_sql_int(&W,
                                         "SELECT COUNT(*) FROM mx.outbox WHERE status ="
                                         " 'INFLIGHT' AND claim_epoch = %lld",
                                         old_epoch) == 0,
                              10000));
    while (ob_now_ms() - t0 < LEASE_TTL + 500)
        usleep(20000);
    kill(W.nodes[h].pid, SIGCONT);
    assert_true(TU_WAIT_UNTIL(ob_sink(&W, "unique") == base + 1500 && not_done() == 0, 60000));
    /* the resumed node is no longer relaying */
    assert_true(TU_WAIT_UNTIL(ob_outbox_int(&W, h, "holding") == 0, 5000));
    assert_true(ob_sql_int(&W, "SELECT epoch FROM mx.fence WHERE name = 'outbox-relay'") >=
                new_epoch);

    /* the old epoch's writes change nothing: the fence refuses them, and
     * the relay's guarded completion matches no row */
    struct mx_mysql_conn *c;
    char err[256];
    assert_int_equal(mx_mysql_conn_open(W.my.url, NULL, &c, err, sizeof err), 0);
    int ran = 0;
    assert_int_equal(mx_mysql_fenced(c, "outbox-relay", (uint64_t)old_epoch, noop_write, &ran),
                     MX_ESTALE);
    assert_int_equal(ran, 0);
    uint64_t affected = 99;
    struct mx_sql_val v[] = {MX_SQL_I(old_epoch)};
    assert_int_equal(mx_mysql_exec(c,
                                   "UPDATE outbox SET status = 'DONE', delivered_at = NOW(3)"
                                   " WHERE claim_epoch = ? AND status = 'INFLIGHT'"
                                   " AND idempotency_key LIKE 'stop:%'",
                                   v, 1, &affected),
                     0);
    assert_int_equal(affected, 0);
    mx_mysql_conn_close(c);
    printf("repeats so far %lld; stale completions counted on n%d: %lld, fenced: %lld\n",
           ob_sink(&W, "duplicates"), h + 1, ob_outbox_int(&W, h, "stale_completions"),
           ob_outbox_int(&W, h, "fenced"));
    assert_int_equal(ob_sink_ctl(&W, "latency_ms=0"), 0);
}

/* ---- 4: the sink failing, the DLQ and its admin API ---- */

static long long dlq_id(const char *key)
{
    return ob_sql_int(&W, "SELECT id FROM mx.outbox_dlq WHERE idempotency_key = '%s'", key);
}

static void test_dlq_admin(void **st)
{
    struct http_res r;
    long long failed0 = ob_sink(&W, "failed");
    assert_int_equal(ob_sink_ctl(&W, "fail_all=1&status=503"), 0);
    assert_int_equal(ob_bulk(&W, "TEST_EVENT", "dlq:", 1, 3), 0);
    assert_true(TU_WAIT_UNTIL(
        ob_sql_int(&W, "SELECT COUNT(*) FROM mx.outbox_dlq WHERE idempotency_key LIKE 'dlq:%%'") ==
            3,
        20000));
    assert_int_equal(ob_sink_ctl(&W, "fail_all=0"), 0);
    /* three attempts each, with backoff between them, then the DLQ in the
     * same transaction that removed the outbox row */
    TU_ASSERT_CMP(ob_sink(&W, "failed") - failed0, >=, 9);
    assert_int_equal(ob_sql_int(&W, "SELECT MIN(attempts) FROM mx.outbox_dlq"), 3);
    assert_int_equal(ob_sql_int(&W, "SELECT COUNT(*) FROM mx.outbox WHERE idempotency_key LIKE"
                                    " 'dlq:%%'"),
                     0);
    assert_int_equal(ob_sink_count(&W, "dlq:1"), 0);

    /* 401 / 403 */
    assert_int_equal(http(0, "GET", "/api/admin/dlq", NULL, NULL, NULL, NULL), 401);
    assert_int_equal(http(0, "GET", "/api/admin/dlq/count", g_user.access, NULL, NULL, NULL), 403);
    assert_int_equal(http(0, "POST", "/api/admin/dlq/1/reprocess", g_user.access, NULL, NULL, NULL),
                     403);
    /* the placeholder is gone */
    assert_int_equal(http(0, "GET", "/api/admin/outbox/x", g_admin.access, NULL, NULL, NULL), 404);

    /* page (PageImpl shape) */
    assert_int_equal(http(2, "GET", "/api/admin/dlq?page=0&size=2", g_admin.access, NULL, NULL, &r),
                     200);
    const char *keys[] = {"\"success\":true",
                          "\"content\":[",
                          "\"payloadPreview\":",
                          "\"pageable\":{\"pageNumber\":0,\"pageSize\":2,\"sort\":{",
                          "\"offset\":0",
                          "\"paged\":true",
                          "\"last\":false",
                          "\"totalElements\":3",
                          "\"totalPages\":2",
                          "\"first\":true",
                          "\"size\":2",
                          "\"number\":0",
                          "\"numberOfElements\":2",
                          "\"empty\":false",
                          "\"originalOutboxId\":",
                          "\"requestId\":\"dlq:",
                          "\"eventType\":\"TEST_EVENT\"",
                          "\"failureReason\":\"HTTP 503\"",
                          "\"movedAt\":\""};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        if (!strstr(r.body, keys[i]))
            fail_msg("page lacks %s: %s", keys[i], r.body);
    http_res_free(&r);
    assert_int_equal(http(2, "GET", "/api/admin/dlq?page=x", g_admin.access, NULL, NULL, NULL),
                     400);

    /* count */
    assert_int_equal(http(0, "GET", "/api/admin/dlq/count", g_admin.access, NULL, NULL, &r), 200);
    assert_non_null(strstr(r.body, "{\"success\":true,\"data\":3}"));
    http_res_free(&r);

    /* cursor form, ascending ids */
    long long id1 = dlq_id("dlq:1"), id2 = dlq_id("dlq:2"), id3 = dlq_id("dlq:3");
    TU_ASSERT_CMP(id1, >, 0);
    TU_ASSERT_CMP(id2, >, 0);
    TU_ASSERT_CMP(id3, >, 0);
    assert_int_equal(http(1, "GET", "/api/admin/dlq/v2?size=2", g_admin.access, NULL, NULL, &r),
                     200);
    char want[128];
    assert_non_null(strstr(r.body, "\"hasNext\":true"));
    assert_non_null(strstr(r.body, "\"size\":2"));
    long long next = -1;
    const char *nc = strstr(r.body, "\"nextCursor\":");
    assert_non_null(nc);
    next = strtoll(nc + 13, NULL, 10);
    http_res_free(&r);
    char path[128];
    snprintf(path, sizeof path, "/api/admin/dlq/v2?cursor=%lld&size=2", next);
    assert_int_equal(http(1, "GET", path, g_admin.access, NULL, NULL, &r), 200);
    assert_non_null(strstr(r.body, "\"hasNext\":false"));
    assert_non_null(strstr(r.body, "\"size\":1"));
    http_res_free(&r);

    /* one entry, full payload */
    snprintf(path, sizeof path, "/api/admin/dlq/%lld", id1);
    assert_int_equal(http(0, "GET", path, g_admin.access, NULL, NULL, &r), 200);
    snprintf(want, sizeof want, "\"id\":%lld", id1);
    assert_non_null(strstr(r.body, want));
    assert_non_null(strstr(r.body, "\"payload\":\"{\\\"n\\\":1}\""));
    assert_non_null(strstr(r.body, "\"requestId\":\"dlq:1\""));
    http_res_free(&r);

    /* unknown and malformed ids */
    assert_int_equal(http(0, "GET", "/api/admin/dlq/99999999", g_admin.access, NULL, NULL, &r),
                     404);
    assert_non_null(strstr(r.body, "\"code\":\"D001\""));
    http_res_free(&r);
    assert_int_equal(
        http(0, "POST", "/api/admin/dlq/99999999/reprocess", g_admin.access, NULL, NULL, &r), 404);
    assert_non_null(strstr(r.body, "\"code\":\"D001\""));
    http_res_free(&r);
    assert_int_equal(http(0, "DELETE", "/api/admin/dlq/99999999", g_admin.access, NULL, NULL, &r),
                     404);
    assert_non_null(strstr(r.body, "\"code\":\"D001\""));
    http_res_free(&r);
    assert_int_equal(http(0, "GET", "/api/admin/dlq/abc", g_admin.access, NULL, NULL, NULL), 400);

    /* reprocess: a real requeue, delivered once */
    snprintf(path, sizeof path, "/api/admin/dlq/%lld/reprocess", id1);
    assert_int_equal(http(1, "POST", path, g_admin.access, NULL, NULL, &r), 200);
    snprintf(want, sizeof want, "\"dlqId\":%lld", id1);
    assert_non_null(strstr(r.body, want));
    assert_non_null(strstr(r.body, "\"newOutboxId\":"));
    assert_non_null(strstr(r.body, "\"requestId\":\"dlq:1\""));
    assert_non_null(strstr(r.body, "Successfully requeued to Outbox for reprocessing"));
    http_res_free(&r);
    assert_true(TU_WAIT_UNTIL(ob_sink_count(&W, "dlq:1") == 1 && not_done() == 0, 10000));
    assert_int_equal(dlq_id("dlq:1"), -1);
    assert_int_equal(http(1, "POST", path, g_admin.access, NULL, NULL, NULL), 404); /* gone */

    /* discard */
    snprintf(path, sizeof path, "/api/admin/dlq/%lld", id2);
    assert_int_equal(http(2, "DELETE", path, g_admin.access, NULL, NULL, &r), 200);
    snprintf(want, sizeof want, "\"data\":\"DLQ entry discarded successfully: %lld\"", id2);
    assert_non_null(strstr(r.body, want));
    http_res_free(&r);
    assert_int_equal(http(2, "GET", path, g_admin.access, NULL, NULL, NULL), 404);
    assert_int_equal(http(0, "GET", "/api/admin/dlq/count", g_admin.access, NULL, NULL, &r), 200);
    assert_non_null(strstr(r.body, "\"data\":1}"));
    http_res_free(&r);
    /* the relay's figures are in Prometheus on every node (the holder's
     * table figures once a second) */
    assert_int_equal(http(0, "GET", "/actuator/prometheus", NULL, NULL, NULL, &r), 200);
    assert_non_null(strstr(r.body, "mx_outbox_backlog{node="));
    assert_non_null(strstr(r.body, "mx_outbox_dlq_size{node="));
    assert_non_null(strstr(r.body, "mx_outbox_oldest_due_age_ms{node="));
    assert_non_null(strstr(
        r.body,
        "mx_outbox_total{node=\"n1\",actor=\"outbox\",instance=\"relay\",event=\"delivery\"}"));
    assert_non_null(strstr(
        r.body,
        "mx_outbox_api_total{node=\"n1\",actor=\"outbox_api\",instance=\"api\",event=\"dlq_op\"}"));
    assert_non_null(strstr(
        r.body,
        "mx_alert_total{node=\"n1\",actor=\"alert\",instance=\"alerts\",event=\"throttled\"}"));
    http_res_free(&r);
    int h = ob_holder(&W, -1);
    TU_ASSERT_CMP(h, >=, 0);
    assert_true(TU_WAIT_UNTIL(ob_outbox_int(&W, h, "dlq_size") == 1, 3000));
    usleep(300000); /* a discarded event must never be delivered: nothing to wait for */
    assert_int_equal(ob_sink_count(&W, "dlq:2"), 0);
}

/* DONE rows past the retention (7 days by default) are deleted by the
 * holder; recent ones stay. */
static void test_purge(void **st)
{
    assert_int_equal(ob_sql(&W,
                            "INSERT INTO mx.outbox (event_type, payload, idempotency_key,"
                            " status, next_attempt_at, delivered_at) VALUES ('TEST_EVENT', '{}',"
                            " 'purge:old', 'DONE', NOW(3) - INTERVAL 8 DAY, NOW(3) - INTERVAL"
                            " 8 DAY), ('TEST_EVENT', '{}', 'purge:new', 'DONE', NOW(3) -"
                            " INTERVAL 6 DAY, NOW(3) - INTERVAL 6 DAY)"),
                     0);
    assert_true(TU_WAIT_UNTIL(ob_sql_int(&W, "SELECT COUNT(*) FROM mx.outbox WHERE"
                                             " idempotency_key = 'purge:old'") == 0,
                              5000));
    assert_int_equal(ob_sql_int(&W, "SELECT COUNT(*) FROM mx.outbox WHERE idempotency_key ="
                                    " 'purge:new'"),
                     1);
}

/* ---- 5: alerts: per-pattern window and the cluster-wide AI quota ---- */

static long long sum_outbox(const char *key)
{
    long long t = 0;
    for (int i = 0; i < OB_NODES; i++) {
        long long v = ob_outbox_int(&W, i, key);
        TU_ASSERT_CMP(v, >=, 0); /* every node answers */
        t += v;
    }
    return t;
}

static long long sink_alerts(void)
{
    char url[256];
    struct resp r;
    snprintf(url, sizeof url, "%s/__stub/sink/keys", W.stub.base);
    if (http_get(url, NULL, false, &r) != 0)
        return -1;
    long long n = 0;
    for (const char *p = r.body; (p = strstr(p, "\"alert:test-")); p++)
        n++;
    resp_free(&r);
    return n;
}

static void test_alerts(void **st)
{
    long long w0 = sum_outbox("written"), t0 = sum_outbox("throttled");
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < 4; k++) {
            char body[128];
            snprintf(body, sizeof body, "{\"pattern\":\"test-%d-%d\",\"level\":2}", i, k);
            assert_int_equal(
                http(i, "POST", "/api/admin/alerts/test", g_admin.access, NULL, body, NULL), 202);
        }
    assert_true(TU_WAIT_UNTIL(sum_outbox("written") - w0 == 12, 10000));
    /* the same pattern again, from another node, inside the window */
    assert_int_equal(http(2, "POST", "/api/admin/alerts/test", g_admin.access, NULL,
                          "{\"pattern\":\"test-0-0\",\"level\":2}", NULL),
                     202);
    assert_true(TU_WAIT_UNTIL(sum_outbox("throttled") - t0 == 1, 10000));
    /* three nodes together stay within the daily AI quota of 5: the fake
     * chat endpoint was called exactly 5 times, and those 5 embeds carry
     * its answer while the 7 others carry the rule-based summary */
    assert_int_equal(sum_outbox("ai_granted"), 5);
    assert_int_equal(sum_outbox("ai_refused"), 7);
    assert_int_equal(ob_sink(&W, "ai_calls"), 5);
    assert_int_equal(sum_outbox("ai_ok"), 5);
    assert_int_equal(ob_sql_int(&W, "SELECT COUNT(*) FROM mx.outbox WHERE event_type = 'ALERT'"
                                    " AND idempotency_key LIKE 'alert:test-%%' AND payload LIKE"
                                    " '%%\"value\":\"stub analysis %%'"),
                     5);
    assert_int_equal(ob_sql_int(&W, "SELECT COUNT(*) FROM mx.outbox WHERE event_type = 'ALERT'"
                                    " AND idempotency_key LIKE 'alert:test-%%' AND payload LIKE"
                                    " '%%\"value\":\"rule-based: %%'"),
                     7);
    /* every alert went through the outbox as a Discord embed, and the relay
     * delivered it; the throttled one was never written */
    assert_int_equal(ob_sql_int(&W, "SELECT COUNT(*) FROM mx.outbox WHERE event_type = 'ALERT'"
                                    " AND idempotency_key LIKE 'alert:test-%%' AND payload LIKE"
                                    " '{\"embeds\":[{\"title\":\"[CRITICAL] Test alert\"%%'"),
                     12);
    assert_true(TU_WAIT_UNTIL(sink_alerts() == 12, 10000));
    assert_int_equal(
        http(0, "POST", "/api/admin/alerts/test", g_user.access, NULL, "{\"pattern\":\"x\"}", NULL),
        403);
    assert_int_equal(
        http(0, "POST", "/api/admin/alerts/test", g_admin.access, NULL, "{\"level\":1}", NULL),
        400);
    assert_int_equal(http(0, "POST", "/api/admin/alerts/test", g_admin.access, NULL,
                          "{\"pattern\":\"bad pattern\"}", NULL),
                     400);
}

/* ---- 6: upstream re-fetch (the seed's scenario B) ---- */

static int stub_config(const char *query)
{
    char url[256];
    struct resp r;
    snprintf(url, sizeof url, "%s/__stub/config?%s", W.stub.base, query);
    int ok = http_post(url, &r) == 0 && r.status == 200;
    resp_free(&r);
    return ok ? 0 : -1;
}

static void test_upstream_refetch(void **st)
{
    const char *ign = "RefetchHero";
    assert_int_equal(stub_config("fail_rate=1&fail_status=500"), 0);
    /* nothing cached, upstream failing: a 503, and an event to retry later */
    assert_int_equal(http(1, "GET", "/api/v1/characters/RefetchHero", NULL, NULL, NULL, NULL), 503);
    assert_true(TU_WAIT_UNTIL(ob_sql_int(&W,
                                         "SELECT COUNT(*) FROM mx.outbox WHERE event_type ="
                                         " 'UPSTREAM_REFETCH' AND payload ="
                                         " '/api/v1/characters/%s'",
                                         ign) == 1,
                              10000));
    assert_int_equal(stub_config("fail_rate=0"), 0);
    /* its delivery GETs the character through node 1 once upstream is back
     * (if it ran out of attempts first, an admin reprocesses it) */
    int64_t dl = ob_now_ms() + 20000;
    while (ob_now_ms() < dl &&
           ob_sql_int(&W, "SELECT COUNT(*) FROM mx.outbox WHERE event_type = 'UPSTREAM_REFETCH'"
                          " AND status = 'DONE'") != 1) {
        long long dead = ob_sql_int(&W, "SELECT id FROM mx.outbox_dlq WHERE event_type ="
                                        " 'UPSTREAM_REFETCH'");
        if (dead > 0) {
            char path[96];
            snprintf(path, sizeof path, "/api/admin/dlq/%lld/reprocess", dead);
            assert_int_equal(http(0, "POST", path, g_admin.access, NULL, NULL, NULL), 200);
        }
        usleep(20000);
    }
    assert_int_equal(ob_sql_int(&W, "SELECT COUNT(*) FROM mx.outbox WHERE event_type ="
                                    " 'UPSTREAM_REFETCH' AND status = 'DONE'"),
                     1);
    /* the cache is warm: another node answers without calling upstream */
    long long calls = stub_stat(&W.stub, "total");
    assert_int_equal(http(2, "GET", "/api/v1/characters/RefetchHero", NULL, NULL, NULL, NULL), 200);
    assert_int_equal(stub_stat(&W.stub, "total"), calls);
    TU_ASSERT_CMP(sum_outbox("refetches"), >=, 1);
}

/* ---- 7: donations ---- */

struct race {
    int node, status;
};

static void *racer(void *p)
{
    struct race *a = p;
    a->status = donate(a->node, "race-key-1", 300, NULL);
    return NULL;
}

static long long balance(void)
{
    return ob_sql_int(&W, "SELECT points FROM mx.point_account WHERE account_id = '%s'", g_account);
}

static bool health_down(void)
{
    static char out[1 << 16];
    for (int i = 0; i < OB_NODES; i++)
        if (ob_stats(&W, i, out, sizeof out) == 0 &&
            strstr(out, "\"mysql_health\":{\"state\":\"down\""))
            return true;
    return false;
}

static void test_donations(void **st)
{
    struct http_res r;
    long long b0 = balance();
    long long adm0 = ob_sql_int(&W,
                                "SELECT COALESCE(SUM(points), 0) FROM mx.point_account"
                                " WHERE account_id = 'admin:%s'",
                                g_admin.fgp);
    /* one key, two nodes at once: points move once */
    pthread_t t[2];
    struct race a[2] = {{.node = 0}, {.node = 2}};
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, racer, &a[i]);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(a[0].status, 200);
    assert_int_equal(a[1].status, 200);
    assert_int_equal(balance(), b0 - 300);
    long long adm1 = ob_sql_int(&W,
                                "SELECT COALESCE(SUM(points), 0) FROM mx.point_account"
                                " WHERE account_id = 'admin:%s'",
                                g_admin.fgp);
    assert_int_equal(adm1, adm0 + 300);
    assert_int_equal(ob_sql_int(&W, "SELECT COUNT(*) FROM mx.donation_history WHERE request_id ="
                                    " 'race-key-1'"),
                     1);
    assert_int_equal(ob_sql_int(&W, "SELECT COUNT(*) FROM mx.outbox WHERE idempotency_key ="
                                    " 'donation:race-key-1'"),
                     1);
    /* a later repeat is a 200 no-op */
    assert_int_equal(donate(1, "race-key-1", 300, &r), 200);
    assert_non_null(strstr(r.body, "\"requestId\":\"race-key-1\""));
    http_res_free(&r);
    assert_int_equal(balance(), b0 - 300);
    assert_true(TU_WAIT_UNTIL(ob_sink_count(&W, "donation:race-key-1") >= 1, 10000));

    /* not enough points: C003, nothing written */
    long long hist = ob_sql_int(&W, "SELECT COUNT(*) FROM mx.donation_history");
    long long ob = ob_sql_int(&W, "SELECT COUNT(*) FROM mx.outbox");
    assert_int_equal(donate(0, "too-much-1", b0 + 1000000, &r), 400);
    assert_non_null(strstr(r.body, "\"code\":\"C003\""));
    http_res_free(&r);
    assert_int_equal(ob_sql_int(&W, "SELECT COUNT(*) FROM mx.donation_history"), hist);
    assert_int_equal(ob_sql_int(&W, "SELECT COUNT(*) FROM mx.outbox"), ob);
    assert_int_equal(balance(), b0 - 300);

    /* the receiver must be an admin: A007 */
    char body[256];
    snprintf(body, sizeof body, "{\"adminFingerprint\":\"%s\",\"amount\":1}", g_user.fgp);
    assert_int_equal(http(0, "POST", "/api/v2/donation/coffee", g_user.access,
                          "Idempotency-Key: not-admin-1\r\n", body, &r),
                     404);
    assert_non_null(strstr(r.body, "\"code\":\"A007\""));
    http_res_free(&r);
    /* hostile input: 400 C001; no token: 401 */
    assert_int_equal(http(0, "POST", "/api/v2/donation/coffee", g_user.access, NULL,
                          "{\"amount\":-5,"
                          "\"adminFingerprint\":\"x\"}",
                          NULL),
                     400);
    assert_int_equal(http(0, "POST", "/api/v2/donation/coffee", g_user.access,
                          "Idempotency-Key: bad key with spaces\r\n",
                          "{\"amount\":1,\"adminFingerprint\":\"x\"}", NULL),
                     400);
    assert_int_equal(http(0, "POST", "/api/v2/donation/coffee", NULL, NULL,
                          "{\"amount\":1,\"adminFingerprint\":\"x\"}", NULL),
                     401);

    /* MySQL down: a clear 503, nothing half-written */
    assert_int_equal(mysqld_kill(&W.my), 0);
    int s = 0;
    for (int64_t dl = ob_now_ms() + 15000; ob_now_ms() < dl; usleep(50000)) {
        if ((s = donate(1, "down-key-1", 5, &r)) == 503)
            break;
        http_res_free(&r);
    }
    assert_int_equal(s, 503);
    /* the mysql-health holder sees it too (it raises "mysql-down") */
    assert_true(TU_WAIT_UNTIL(health_down(), 10000));
    assert_non_null(strstr(r.body, "\"code\":\"S007\""));
    char ra[16];
    http_header(&r, "Retry-After", ra, sizeof ra);
    TU_ASSERT_CMP(ra[0], !=, '\0');
    http_res_free(&r);
    assert_int_equal(mysqld_restart(&W.my), 0);
    /* the mysql-health holder raised "mysql-down": written once MySQL is back */
    assert_true(TU_WAIT_UNTIL(ob_sql_int(&W, "SELECT COUNT(*) FROM mx.outbox WHERE event_type ="
                                             " 'ALERT' AND idempotency_key LIKE"
                                             " 'alert:mysql-down:%%'") >= 1,
                              20000));
    assert_int_equal(ob_sql_int(&W, "SELECT COUNT(*) FROM mx.donation_history WHERE request_id ="
                                    " 'down-key-1'"),
                     0);
    assert_int_equal(balance(), b0 - 300);
    /* and once MySQL is back the same request goes through */
    assert_true(TU_WAIT_UNTIL(donate(1, "down-key-1", 5, NULL) == 200, 20000));
    assert_int_equal(balance(), b0 - 305);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_every_key_once, recover),
        cmocka_unit_test_setup(test_holder_killed, recover),
        cmocka_unit_test_setup(test_holder_paused, recover),
        cmocka_unit_test_setup(test_dlq_admin, recover),
        cmocka_unit_test_setup(test_purge, recover),
        cmocka_unit_test_setup(test_alerts, recover),
        cmocka_unit_test_setup(test_upstream_refetch, recover),
        cmocka_unit_test_setup(test_donations, recover),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
