/* app_outbox.c - the HTTP side of the outbox (docs/outbox.md): the DLQ
 * admin API (seed #14-19), coffee donations (seed #20), a user's points and
 * the admin's points grant.
 *
 * The acceptor holds no MySQL connection: each route checks its input,
 * then hands a struct mx_outbox_job to the MySQL pool with the acceptor as
 * reply_to, and keeps the request in the pending table under the job id
 * (tagged MX__APP_DB_TAG). The pool thread runs the SQL and builds the
 * answer (actors/outbox/outbox_sql.c); the store_job_done reply carries
 * the job back and mx__app_db_reply writes it. Everything here runs on
 * the acceptor's thread.
 */
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app_int.h"
#include "mx_err.h"
#include "mx_jsonr.h"
#include "mx_likes.h"
#include "mx_log.h"
#include "mx_metrics.h"
#include "mx_mysql.h"
#include "mx_outbox.h"
#include "mx_proto.h"

#define AMOUNT_MAX 1000000000000LL /* one donation or grant, points */
#define PAGE_SIZE_DEFAULT 20
#define PAGE_SIZE_MAX 100

/* Counters, declared once (mx_metrics.h), registered as actor outbox_api,
 * instance "api": any acceptor thread writes (shared), each an independent
 * statistic. Prometheus mx_outbox_api_total{event}. */
#define MX_OUTBOX_API_METRICS(X)                                                                   \
    X(COUNTER, bad_input, "outbox routes refused: bad input", "", "event=\"bad_input\"")           \
    X(COUNTER, db_unavailable, "outbox routes answered 503: no MySQL", "",                         \
      "event=\"db_unavailable\"")                                                                  \
    X(COUNTER, db_failed, "outbox routes whose MySQL job failed", "", "event=\"db_failed\"")       \
    X(COUNTER, dlq_ops, "DLQ admin operations", "", "event=\"dlq_op\"")                            \
    X(COUNTER, donations, "coffee donations", "", "event=\"donation\"")                            \
    X(COUNTER, not_enough_points, "donations refused: not enough points", "",                      \
      "event=\"not_enough_points\"")                                                               \
    X(COUNTER, not_admin, "admin routes refused: not an admin", "", "event=\"not_admin\"")         \
    X(COUNTER, grants, "points granted", "", "event=\"grant\"")

MX_METRICS_STRUCT(api_metrics, MX_OUTBOX_API_METRICS);
#define MX_METRICS_TYPE struct api_metrics
static const struct mx_metric_desc api_desc[] = {MX_OUTBOX_API_METRICS(MX_METRIC_DESC)};
#undef MX_METRICS_TYPE
static struct api_metrics cnt;
static _Atomic int cnt_id;
#define COUNT(f) MX_METRIC_INC_SHARED(&cnt, f)

void mx__app_outbox_register(void)
{
    mx_outbox_register_metrics(); /* the relay's figures even on a node without it */
    mx_metrics_register_once(&cnt_id, "outbox_api", "api", api_desc,
                             sizeof api_desc / sizeof *api_desc, &cnt);
}

static void bad(mx_http_req_t *r, const char *msg)
{
    COUNT(bad_input);
    mx_http_error(r, 400, "C001", msg);
}

static void db_down(mx_http_req_t *r, const char *why)
{
    COUNT(db_unavailable);
    mx_http_add_header(r, "Retry-After", "5");
    mx_http_error(r, 503, "S007", why);
}

/* Strict decimal in [min, max]. */
static bool parse_i64(const char *s, int64_t min, int64_t max, int64_t *out)
{
    if (!s || !*s || strlen(s) > 19)
        return false;
    int64_t v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return false;
        v = v * 10 + (*p - '0');
    }
    if (v < min || v > max)
        return false;
    *out = v;
    return true;
}

static struct mx_outbox_job *job_new(enum mx_outbox_op op)
{
    struct mx_outbox_job *j = calloc(1, sizeof *j);
    if (!j)
        abort();
    j->op = op;
    return j;
}

/* Hand job to the pool; r waits in the pending table. Takes job. */
static int submit(struct acc *a, mx_http_req_t *r, struct mx_outbox_job *job)
{
    mx_mysql_t *pool = a->app->o.mysql;
    if (!pool) {
        mx_outbox_job_free(job);
        mx_http_add_header(r, "Retry-After", "60");
        mx_http_error(r, 503, "S007", "No database (MX_MYSQL_URL) on this node");
        return MX_HTTP_DONE;
    }
    if (a->n >= a->max) {
        mx_outbox_job_free(job);
        MX_METRIC_INC(&a->m, pending_refused);
        mx_http_add_header(r, "Retry-After", "1");
        mx_http_error(r, 503, "S007", "Too many requests in progress on this node");
        return MX_HTTP_DONE;
    }
    uint64_t id = 0;
    int rc =
        mx_mysql_submit(pool, mx_outbox_job_run, job, mx_outbox_job_free, mx_self(a->self), &id);
    if (rc != 0) {
        mx_outbox_job_free(job);
        mx_http_add_header(r, "Retry-After", "1");
        COUNT(db_unavailable);
        mx_http_error(r, 503, "S007", rc == MX_EFULL ? "Database queue full" : "Node is stopping");
        return MX_HTTP_DONE;
    }
    mx__app_pend_put(a, id | MX__APP_DB_TAG, r, PEND_DB, NULL); /* cannot fail: checked a->n */
    return MX_HTTP_PENDING;
}

void mx__app_db_reply(struct acc *a, mx_http_req_t *r, struct mx_msg *m)
{
    struct mx_m_store_job_done d;
    struct mx_outbox_job *j = m->ptr;
    if (mx_msg_decode(m, &d) != 0 || !j) {
        mx_http_error(r, 500, "S001", "Unreadable reply from the database pool");
        return;
    }
    int st = (int)d.status;
    if (st == MX_EUNAVAIL || st == MX_ESTOPPED || st == MX_EFULL) {
        db_down(r, "Database unavailable: nothing was written; retry later");
        return;
    }
    if (st != 0) {
        COUNT(db_failed);
        MX_WARN("outbox route: database job %d failed: %s", (int)j->op, mx_strerror(st));
        mx_http_error(r, 500, "S002", "Database transaction failed: nothing was written");
        return;
    }
    if (j->http_status >= 400) {
        if (!strcmp(j->code, "C003"))
            COUNT(not_enough_points);
        mx_http_error(r, j->http_status, j->code, j->message);
        return;
    }
    if (j->op == MX_OBOP_DONATE)
        COUNT(donations);
    mx_http_respond(r, j->http_status ? j->http_status : 200, "application/json", j->body,
                    j->body_len);
}

/* ---- the DLQ admin API and the points grant ---- */

/* The account of a signed-in user: the seed's liker identity
 * (mx_likes_account_id). false when there are no ocids. */
static bool account_of(const char *ocids, char out[97])
{
    return mx_likes_account_id(ocids, out, 97) == 0;
}

/* 1..max characters of [A-Za-z0-9-_:.]: what account ids and
 * Idempotency-Keys may hold. */
static bool token_ok(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '_' || ch == ':' || ch == '.'))
            return false;
    }
    return true;
}

static bool account_ok(const char *s)
{
    return token_ok(s, 96);
}

static int points_grant(struct acc *a, mx_http_req_t *r)
{
    size_t blen;
    const uint8_t *body = mx_http_req_body(r, &blen);
    char account[97];
    struct mx_jr_field f[] = {
        {.key = "accountId",
         .kind = MX_JR_STR,
         .required = true,
         .buf = account,
         .cap = sizeof account},
        {.key = "amount", .kind = MX_JR_INT, .required = true},
    };
    if (!body || mx_jsonr_object((const char *)body, blen, f, 2, NULL, 0) != 0 ||
        !account_ok(account) || f[1].i <= 0 || f[1].i > AMOUNT_MAX) {
        bad(r, "Body must be {\"accountId\": \"...\", \"amount\": 1..1000000000000}");
        return MX_HTTP_DONE;
    }
    struct mx_outbox_job *j = job_new(MX_OBOP_POINTS_GRANT);
    snprintf(j->account, sizeof j->account, "%s", account);
    j->amount = f[1].i;
    COUNT(grants);
    return submit(a, r, j);
}

/* POST /api/admin/alerts/test {pattern, level?, message?}: raise an alert
 * through the normal path (throttle, outbox, relay), like the seed's
 * AlertTestController. */
static void alert_test(mx_http_req_t *r)
{
    size_t blen;
    const uint8_t *body = mx_http_req_body(r, &blen);
    char pattern[64], msg[512] = "";
    struct mx_jr_field f[] = {
        {.key = "pattern",
         .kind = MX_JR_STR,
         .required = true,
         .buf = pattern,
         .cap = sizeof pattern},
        {.key = "level", .kind = MX_JR_INT},
        {.key = "message", .kind = MX_JR_STR, .buf = msg, .cap = sizeof msg},
    };
    if (!body || mx_jsonr_object((const char *)body, blen, f, 3, NULL, 0) != 0 || !pattern[0] ||
        (f[1].present && (f[1].i < 0 || f[1].i > 2))) {
        bad(r, "Body must be {\"pattern\": \"1-63 bytes\", \"level\": 0..2, \"message\": \"...\"}");
        return;
    }
    int rc = mx_alert_raise(pattern, f[1].present ? (int)f[1].i : 1, "Test alert",
                            msg[0] ? msg : "Raised through /api/admin/alerts/test");
    if (rc == MX_EINVAL) {
        bad(r, "pattern: 1-63 characters of [A-Za-z0-9._:-]");
        return;
    }
    if (rc != 0) {
        mx_http_add_header(r, "Retry-After", "5");
        mx_http_error(r, 503, "S007",
                      rc == MX_ESTOPPED ? "No alerter on this node (no MySQL)" : "Alerter busy");
        return;
    }
    const char *ok = "{\"success\":true,\"data\":\"alert raised\"}";
    mx_http_respond(r, 202, "application/json", ok, strlen(ok));
}

bool mx__app_admin_outbox(struct acc *a, mx_http_req_t *r, const char *rest, const char *method)
{
    bool get = !strcmp(method, "GET"), post = !strcmp(method, "POST"),
         del = !strcmp(method, "DELETE");
    if (!strcmp(rest, "points") && post) {
        points_grant(a, r);
        return true;
    }
    if (!strcmp(rest, "alerts/test") && post) {
        alert_test(r);
        return true;
    }
    if (strcmp(rest, "dlq") != 0 && strncmp(rest, "dlq/", 4) != 0)
        return false;
    COUNT(dlq_ops);
    const char *sub = rest[3] ? rest + 4 : "";
    struct mx_outbox_job *j = NULL;
    if (!sub[0] && get) {
        int64_t page = 0, size = PAGE_SIZE_DEFAULT;
        const char *ps = mx_http_req_query(r, "page"), *ss = mx_http_req_query(r, "size");
        if ((ps && !parse_i64(ps, 0, 1000000, &page)) ||
            (ss && ss[0] && ss[0] != '-' && !parse_i64(ss, 0, 1000000, &size))) {
            bad(r, "page must be 0..1000000 and size an integer");
            return true;
        }
        if (ss && ss[0] == '-') /* the seed: size <= 0 means the default */
            size = PAGE_SIZE_DEFAULT;
        if (size <= 0)
            size = PAGE_SIZE_DEFAULT;
        if (size > PAGE_SIZE_MAX)
            size = PAGE_SIZE_MAX;
        j = job_new(MX_OBOP_DLQ_PAGE);
        j->page = page;
        j->size = size;
    } else if (!strcmp(sub, "count") && get) {
        j = job_new(MX_OBOP_DLQ_COUNT);
    } else if (!strcmp(sub, "v2") && get) {
        int64_t cur = 0, size = PAGE_SIZE_DEFAULT;
        const char *cs = mx_http_req_query(r, "cursor"), *ss = mx_http_req_query(r, "size");
        if ((cs && cs[0] && !parse_i64(cs, 0, INT64_MAX, &cur)) ||
            (ss && ss[0] && ss[0] != '-' && !parse_i64(ss, 0, 1000000, &size))) {
            bad(r, "cursor must be an id and size an integer");
            return true;
        }
        if (ss && ss[0] == '-')
            size = PAGE_SIZE_DEFAULT;
        if (size <= 0)
            size = PAGE_SIZE_DEFAULT;
        if (size > PAGE_SIZE_MAX)
            size = PAGE_SIZE_MAX;
        j = job_new(MX_OBOP_DLQ_CURSOR);
        j->has_cursor = cs && cs[0];
        j->cursor = cur;
        j->size = size;
    } else {
        char ids[24];
        const char *slash = strchr(sub, '/');
        size_t il = slash ? (size_t)(slash - sub) : strlen(sub);
        int64_t id;
        if (il == 0 || il >= sizeof ids) {
            bad(r, "DLQ id must be a positive integer");
            return true;
        }
        memcpy(ids, sub, il);
        ids[il] = '\0';
        if (!parse_i64(ids, 1, INT64_MAX, &id)) {
            bad(r, "DLQ id must be a positive integer");
            return true;
        }
        if (!slash && get)
            j = job_new(MX_OBOP_DLQ_GET);
        else if (!slash && del)
            j = job_new(MX_OBOP_DLQ_DELETE);
        else if (slash && !strcmp(slash, "/reprocess") && post)
            j = job_new(MX_OBOP_DLQ_REPROCESS);
        else
            return false; /* 404 C001 by the caller */
        j->id = id;
    }
    if (!j)
        return false;
    submit(a, r, j);
    return true;
}

/* ---- donations and a user's points ---- */

struct don_ctx {
    struct acc *a;
    mx_http_req_t *r;
    struct mx_outbox_job *job;
};

static void admin_checked(mx_redis_t *rd, int status, const redisReply *rep, void *arg)
{
    struct don_ctx *dc = arg;
    mx_http_req_t *r = dc->r;
    if (status != 0 || !rep || rep->type != REDIS_REPLY_INTEGER) {
        mx_outbox_job_free(dc->job);
        mx_http_add_header(r, "Retry-After", "5");
        mx_http_error(r, 503, "S007",
                      status == MX_ESTOPPED ? "Node is stopping"
                                            : "Admin list (Redis) unavailable");
    } else if (rep->integer != 1) {
        COUNT(not_admin);
        mx_outbox_job_free(dc->job);
        mx_http_error(r, 404, "A007", "The receiver is not an admin");
    } else {
        submit(dc->a, r, dc->job);
    }
    free(dc);
}

static bool idem_ok(const char *s)
{
    return token_ok(s, 64);
}

static void donate_user(struct acc *a, mx_http_req_t *r, const char *ocids, const char *fgp)
{
    size_t blen;
    const uint8_t *body = mx_http_req_body(r, &blen);
    char fp[65];
    struct mx_jr_field f[] = {
        {.key = "adminFingerprint",
         .kind = MX_JR_STR,
         .required = true,
         .buf = fp,
         .cap = sizeof fp},
        {.key = "amount", .kind = MX_JR_INT, .required = true},
    };
    if (!body || mx_jsonr_object((const char *)body, blen, f, 2, NULL, 0) != 0 || !fp[0]) {
        bad(r, "Body must be {\"adminFingerprint\": \"...\", \"amount\": n}");
        return;
    }
    if (f[1].i <= 0 || f[1].i > AMOUNT_MAX) {
        bad(r, "amount must be positive (at most 1000000000000)");
        return;
    }
    struct mx_outbox_job *j = job_new(MX_OBOP_DONATE);
    const char *key = mx_http_req_header(r, "Idempotency-Key");
    if (key && !idem_ok(key)) {
        mx_outbox_job_free(j);
        bad(r, "Idempotency-Key must be 1-64 characters of [A-Za-z0-9._:-]");
        return;
    }
    if (key) {
        snprintf(j->key, sizeof j->key, "%s", key);
    } else { /* the seed: a random UUID */
        unsigned char b[16];
        if (RAND_bytes(b, sizeof b) != 1)
            abort();
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        snprintf(j->key, sizeof j->key,
                 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
                 b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
                 b[15]);
    }
    if (!account_of(ocids, j->account)) {
        mx_outbox_job_free(j);
        mx_http_error(r, 404, "A009", "The sender has no account (no characters in the session)");
        return;
    }
    snprintf(j->receiver, sizeof j->receiver, "%s", fp);
    j->amount = f[1].i;
    if (!a->app->o.mysql) {
        submit(a, r, j); /* answers the 503 */
        return;
    }
    if (mx__app_bootstrap_admin(a->app, fp)) { /* MX_ADMIN_FINGERPRINTS: no Redis needed */
        submit(a, r, j);
        return;
    }
    struct don_ctx *dc = calloc(1, sizeof *dc);
    if (!dc)
        abort();
    *dc = (struct don_ctx){a, r, j};
    if (mx_redis_command(a->redis, admin_checked, dc, "SISMEMBER %s %s", "{auth}:admins", fp) !=
        0) {
        free(dc);
        mx_outbox_job_free(j);
        mx_http_add_header(r, "Retry-After", "5");
        mx_http_error(r, 503, "S007", "Admin list (Redis) unavailable");
    }
}

static void points_user(struct acc *a, mx_http_req_t *r, const char *ocids, const char *fgp)
{
    struct mx_outbox_job *j = job_new(MX_OBOP_POINTS_GET);
    if (!account_of(ocids, j->account)) {
        mx_outbox_job_free(j);
        mx_http_error(r, 404, "A009", "No account (no characters in the session)");
        return;
    }
    submit(a, r, j);
}

static int donate_next(mx_http_req_t *r, struct acc *a)
{
    return mx__app_with_user(r, a, donate_user);
}

static int points_next(mx_http_req_t *r, struct acc *a)
{
    return mx__app_with_user(r, a, points_user);
}

int mx__app_donate(mx_http_req_t *r, void *st)
{
    return mx__app_guard(r, st, donate_next);
}

int mx__app_points(mx_http_req_t *r, void *st)
{
    return mx__app_guard(r, st, points_next);
}

/* ---- metrics ---- */

size_t mx__app_outbox_prom(char *buf, size_t cap, const char *node)
{
    struct mx_outbox_stats s;
    mx_outbox_stats(&s);
    int n = snprintf(buf, cap,
                     "# TYPE mx_outbox_lag_p99_ms gauge\nmx_outbox_lag_p99_ms{node=\"%s\"} %llu\n",
                     node, (unsigned long long)s.lag_p99_ms);
    return n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1;
}
