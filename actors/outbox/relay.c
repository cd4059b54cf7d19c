/* relay.c - the outbox-relay singleton (mx_outbox.h, docs/outbox.md).
 *
 * The actor runs only on the lease holder. Its state machine:
 *   tick (every poll_ms) / claim reply with a full batch
 *     -> a claim job when fewer than batch/2 rows are held: in one
 *        mx_mysql_fenced("outbox-relay", seq) transaction, put back
 *        INFLIGHT rows of older epochs (and stuck ones), SELECT due PENDING
 *        rows FOR UPDATE SKIP LOCKED, mark them INFLIGHT with claim_epoch =
 *        seq;
 *   claimed rows -> HTTP POSTs through libcurl multi on this actor's loop,
 *        at most `concurrency` at once;
 *   finished POSTs -> one completion job at a time carrying every result
 *        since the last one: DONE / rescheduled / moved to the DLQ, each
 *        statement guarded by claim_epoch = seq AND status = 'INFLIGHT',
 *        inside the same fence. A deposed relay's job fails with MX_ESTALE
 *        (the fence) or matches 0 rows (the guard); either way it changes
 *        nothing, and the actor stops on MX_ESTALE.
 * curl's socket and timer callbacks run on the owner thread outside the
 * handler (as in the fetcher), so the lease epoch is kept in the state.
 * Rows held when the actor stops stay INFLIGHT under its epoch and are put
 * back at once by the next holder's first claim.
 */
#define _GNU_SOURCE
#include "mx_outbox.h"
#include "mx_curluv.h"

#include <curl/curl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "mx_err.h"
#include "mx_log.h"
#include "mx_metrics.h"

#define FENCE_NAME MX_OUTBOX_SINGLETON
#define IN_CHUNK 60      /* ids per "id IN (...)" statement (mx_mysql binds at most 64 values) */
#define LAG_BUCKETS 1001 /* 10 ms each up to 10 s, then one overflow bucket */
#define STATS_PERIOD_MS 1000
#define RECLAIM_PERIOD_MS 10000

#define RELAXED memory_order_relaxed

void mx__alert_register_metrics(void); /* alert.c */

MX_METRICS_STRUCT(outbox_metrics, MX_OUTBOX_METRICS);
#define MX_METRICS_TYPE struct outbox_metrics
static const struct mx_metric_desc outbox_desc[] = {MX_OUTBOX_METRICS(MX_METRIC_DESC)};
#undef MX_METRICS_TYPE

/* Options (written once at start) and counters (written by the relay's
 * thread, read by any: relaxed atomics, each an independent statistic). */
static struct {
    struct mx_outbox_opts o;
    char *sink_url, *alert_url, *refetch_url;
    struct outbox_metrics m; /* MX_OUTBOX_METRICS, registered once */
    _Atomic int metrics_id;
    _Atomic uint64_t lag[LAG_BUCKETS];
} g = {.m = {.backlog = (uint64_t)-1, .oldest_ms = (uint64_t)-1, .dlq_size = (uint64_t)-1}};

/* the relay's thread and its pool jobs' completions write: shared writes */
#define ADD(f, n) MX_METRIC_ADD_SHARED(&g.m, f, n)
#define SET(f, v) MX_METRIC_SET(&g.m, f, v)
#define GET(f) MX_METRIC_GET(&g.m, f)

/* ---- rows ---- */

struct row {
    struct row *next;
    int64_t id;
    int32_t attempts; /* before this attempt */
    int64_t created_ms;
    char *type, *key, *payload;
    size_t len;
    /* the running attempt */
    CURL *easy;
    struct curl_slist *hdrs;
    uint32_t slot; /* index in relay.slots while running */
    char err[CURL_ERROR_SIZE];
    bool ok;
};

struct rlist {
    struct row *head, *tail;
    uint32_t n;
};

static void rl_push(struct rlist *l, struct row *r)
{
    r->next = NULL;
    if (l->tail)
        l->tail->next = r;
    else
        l->head = r;
    l->tail = r;
    l->n++;
}

static struct row *rl_pop(struct rlist *l)
{
    struct row *r = l->head;
    if (r) {
        l->head = r->next;
        if (!l->head)
            l->tail = NULL;
        l->n--;
    }
    return r;
}

static void row_free(struct row *r)
{
    curl_slist_free_all(r->hdrs);
    free(r->type);
    free(r->key);
    free(r->payload);
    free(r);
}

static char *xdup(const void *p, size_t n)
{
    char *s = malloc(n + 1);
    if (!s)
        abort();
    memcpy(s, p ? p : "", n);
    s[n] = '\0';
    return s;
}

/* ---- jobs (pool threads) ---- */

enum job_kind { JOB_CLAIM = 1, JOB_DONE, JOB_STATS };

struct claim_job {
    enum job_kind kind;
    uint64_t seq;
    uint32_t limit, stuck_s;
    bool reclaim;
    bool only_alerts;   /* no sink URL: claim only ALERT rows (the others wait) */
    bool with_refetch;  /* ... and UPSTREAM_REFETCH rows (a refetch URL is set) */
    struct rlist rows;  /* out */
    uint64_t reclaimed; /* out */
};

struct fail_ent {
    int64_t id;
    int32_t attempts; /* after this failure */
    int64_t delay_ms;
    bool dead;
    char err[256];
};

struct done_job {
    enum job_kind kind;
    uint64_t seq;
    int64_t *ok;
    uint32_t nok;
    struct fail_ent *bad;
    uint32_t nbad;
    uint64_t delivered, stale, retried, dead; /* out */
};

struct stats_job {
    enum job_kind kind;
    uint32_t retain_s;
    int64_t backlog, oldest_ms, dlq; /* out */
    uint64_t purged;                 /* out */
};

static void claim_job_free(void *arg)
{
    struct claim_job *j = arg;
    struct row *r;
    while ((r = rl_pop(&j->rows)))
        row_free(r);
    free(j);
}

static void done_job_free(void *arg)
{
    struct done_job *j = arg;
    free(j->ok);
    free(j->bad);
    free(j);
}

static int claim_row(void *ctx, const struct mx_sql_val *col, size_t ncols)
{
    struct claim_job *j = ctx;
    if (ncols < 6)
        return MX_EDECODE;
    struct row *r = calloc(1, sizeof *r);
    if (!r)
        abort();
    r->id = col[0].i;
    r->type = xdup(col[1].p, col[1].len);
    r->key = xdup(col[2].p, col[2].len);
    r->attempts = (int32_t)col[3].i;
    r->payload = xdup(col[4].p, col[4].len);
    r->len = col[4].len;
    r->created_ms = col[5].i;
    rl_push(&j->rows, r);
    return 0;
}

/* "UPDATE ... WHERE id IN (?,...?)" over ids in chunks of IN_CHUNK; short
 * chunks repeat their last id so one statement text serves every chunk.
 * head: the SQL before the list; pre: values bound before the ids. */
static int exec_in(struct mx_mysql_conn *c, const char *head, const char *tail,
                   const struct mx_sql_val *pre, size_t npre, const int64_t *ids, uint32_t n,
                   uint64_t *affected)
{
    char sql[1024];
    int k = snprintf(sql, sizeof sql, "%s (", head);
    for (int i = 0; i < IN_CHUNK; i++)
        k += snprintf(sql + k, sizeof sql - (size_t)k, i ? ",?" : "?");
    snprintf(sql + k, sizeof sql - (size_t)k, ")%s", tail);
    struct mx_sql_val v[8 + IN_CHUNK];
    memcpy(v, pre, npre * sizeof *pre);
    *affected = 0;
    for (uint32_t off = 0; off < n; off += IN_CHUNK) {
        for (uint32_t i = 0; i < IN_CHUNK; i++) {
            uint32_t at = off + i < n ? off + i : n - 1;
            v[npre + i] = MX_SQL_I(ids[at]);
        }
        uint64_t a = 0;
        int rc = mx_mysql_exec(c, sql, v, npre + IN_CHUNK, &a);
        if (rc)
            return rc;
        *affected += a;
    }
    return 0;
}

static int claim_write(struct mx_mysql_conn *c, void *arg)
{
    struct claim_job *j = arg;
    int rc;
    if (j->reclaim) {
        uint64_t n = 0;
        struct mx_sql_val v[] = {MX_SQL_I(j->seq), MX_SQL_I(j->stuck_s)};
        rc = mx_mysql_exec(c,
                           "UPDATE outbox SET status = 'PENDING' WHERE status = 'INFLIGHT'"
                           " AND (claim_epoch < ? OR claimed_at < NOW(3) - INTERVAL ? SECOND)",
                           v, 2, &n);
        if (rc)
            return rc;
        j->reclaimed = n;
    }
    struct mx_sql_val lim[] = {MX_SQL_I(j->limit)};
#define CLAIM_SQL(extra)                                                                           \
    "SELECT id, event_type, idempotency_key, attempts, payload,"                                   \
    " CAST(UNIX_TIMESTAMP(created_at) * 1000 AS SIGNED) FROM outbox"                               \
    " WHERE status = 'PENDING' AND next_attempt_at <= NOW(3)" extra                                \
    " ORDER BY next_attempt_at, id LIMIT ? FOR UPDATE SKIP LOCKED"
    rc = mx_mysql_query(c,
                        !j->only_alerts   ? CLAIM_SQL("")
                        : j->with_refetch ? CLAIM_SQL(" AND event_type IN ('" MX_OUTBOX_EV_ALERT
                                                      "', '" MX_OUTBOX_EV_REFETCH "')")
                                          : CLAIM_SQL(" AND event_type = '" MX_OUTBOX_EV_ALERT "'"),
                        lim, 1, claim_row, j, NULL);
#undef CLAIM_SQL
    if (rc || j->rows.n == 0)
        return rc;
    int64_t *ids = malloc(j->rows.n * sizeof *ids);
    if (!ids)
        abort();
    uint32_t i = 0;
    for (struct row *r = j->rows.head; r; r = r->next)
        ids[i++] = r->id;
    uint64_t n;
    struct mx_sql_val pre[] = {MX_SQL_I(j->seq)};
    rc = exec_in(c,
                 "UPDATE outbox SET status = 'INFLIGHT', claim_epoch = ?, claimed_at = NOW(3)"
                 " WHERE id IN",
                 "", pre, 1, ids, j->rows.n, &n);
    free(ids);
    return rc;
}

/* A relay transaction holds the fence row lock until it commits. If its
 * process is paused (SIGSTOP, a stall) in the middle, that lock would stop
 * the next holder until the process resumes: the server ends a relay
 * connection that sits idle inside a transaction for IDLE_TXN_S instead
 * (MariaDB's idle_transaction_timeout), which rolls it back. */
#define IDLE_TXN_S 2

static int session_setup(struct mx_mysql_conn *c)
{
    static _Atomic bool warned;
    struct mx_sql_val v[] = {MX_SQL_I(IDLE_TXN_S)};
    int rc = mx_mysql_exec(c, "SET SESSION idle_transaction_timeout = ?", v, 1, NULL);
    if (rc == MX_EUNAVAIL || rc == 0)
        return rc;
    /* a server without the variable (MySQL proper): relay anyway; a paused
     * holder then stalls the next one until it resumes or its connection
     * dies */
    if (!atomic_exchange_explicit(&warned, true, RELAXED))
        MX_WARN("outbox-relay: idle_transaction_timeout not available (%s): a paused holder"
                " can stall its successor",
                mx_mysql_error(c));
    return 0;
}

static int claim_run(struct mx_mysql_conn *c, void *arg)
{
    struct claim_job *j = arg;
    int rc = session_setup(c);
    if (rc == 0)
        rc = mx_mysql_fenced(c, FENCE_NAME, j->seq, claim_write, j);
    if (rc) { /* rolled back: nothing was claimed */
        struct row *r;
        while ((r = rl_pop(&j->rows)))
            row_free(r);
    }
    return rc;
}

static int done_write(struct mx_mysql_conn *c, void *arg)
{
    struct done_job *j = arg;
    int rc;
    j->delivered = j->stale = j->retried = j->dead = 0;
    if (j->nok) {
        uint64_t n = 0;
        struct mx_sql_val pre[] = {MX_SQL_I(j->seq)};
        rc = exec_in(c,
                     "UPDATE outbox SET status = 'DONE', delivered_at = NOW(3)"
                     " WHERE claim_epoch = ? AND status = 'INFLIGHT' AND id IN",
                     "", pre, 1, j->ok, j->nok, &n);
        if (rc)
            return rc;
        /* repeated padding ids match once: n counts distinct rows */
        j->delivered = n;
        j->stale += j->nok - n;
    }
    for (uint32_t i = 0; i < j->nbad; i++) {
        struct fail_ent *f = &j->bad[i];
        uint64_t n = 0;
        if (f->dead) {
            struct mx_sql_val v[] = {MX_SQL_I(f->attempts), MX_SQL_S(f->err), MX_SQL_I(f->id),
                                     MX_SQL_I(j->seq)};
            rc = mx_mysql_exec(c,
                               "INSERT INTO outbox_dlq (outbox_id, event_type, payload,"
                               " idempotency_key, attempts, status, last_error)"
                               " SELECT id, event_type, payload, idempotency_key, ?, 'DEAD', ?"
                               " FROM outbox WHERE id = ? AND claim_epoch = ?"
                               " AND status = 'INFLIGHT'"
                               " ON DUPLICATE KEY UPDATE outbox_id = VALUES(outbox_id),"
                               " attempts = VALUES(attempts), last_error = VALUES(last_error),"
                               " payload = VALUES(payload), status = 'DEAD', created_at = NOW(3)",
                               v, 4, &n);
            if (rc)
                return rc;
            if (n == 0) {
                j->stale++;
                continue;
            }
            struct mx_sql_val d[] = {MX_SQL_I(f->id), MX_SQL_I(j->seq)};
            rc = mx_mysql_exec(c,
                               "DELETE FROM outbox WHERE id = ? AND claim_epoch = ?"
                               " AND status = 'INFLIGHT'",
                               d, 2, &n);
            if (rc)
                return rc;
            j->dead++;
        } else {
            struct mx_sql_val v[] = {MX_SQL_I(f->attempts), MX_SQL_I(f->delay_ms * 1000),
                                     MX_SQL_S(f->err), MX_SQL_I(f->id), MX_SQL_I(j->seq)};
            rc = mx_mysql_exec(c,
                               "UPDATE outbox SET status = 'PENDING', attempts = ?,"
                               " next_attempt_at = NOW(3) + INTERVAL ? MICROSECOND,"
                               " last_error = ? WHERE id = ? AND claim_epoch = ?"
                               " AND status = 'INFLIGHT'",
                               v, 5, &n);
            if (rc)
                return rc;
            if (n)
                j->retried++;
            else
                j->stale++;
        }
    }
    return 0;
}

static int done_run(struct mx_mysql_conn *c, void *arg)
{
    struct done_job *j = arg;
    int rc = session_setup(c);
    return rc ? rc : mx_mysql_fenced(c, FENCE_NAME, j->seq, done_write, j);
}

#define PURGE_BATCH 5000

static int stats_run(struct mx_mysql_conn *c, void *arg)
{
    struct stats_job *j = arg;
    bool found;
    /* DONE rows older than the retention go, a bounded batch a second; a
     * row is claimed only when due, so next_attempt_at <= delivered_at and
     * the (status, next_attempt_at) index finds them */
    struct mx_sql_val pv[] = {MX_SQL_I(j->retain_s), MX_SQL_I(j->retain_s), MX_SQL_I(PURGE_BATCH)};
    int rc = mx_mysql_exec(c,
                           "DELETE FROM outbox WHERE status = 'DONE'"
                           " AND next_attempt_at < NOW(3) - INTERVAL ? SECOND"
                           " AND delivered_at < NOW(3) - INTERVAL ? SECOND"
                           " ORDER BY next_attempt_at LIMIT ?",
                           pv, 3, &j->purged);
    if (rc == 0)
        rc = mx_mysql_query_int(
            c, "SELECT COUNT(*) FROM outbox WHERE status IN ('PENDING', 'INFLIGHT')", NULL, 0,
            &j->backlog, &found);
    if (rc == 0)
        rc = mx_mysql_query_int(c,
                                "SELECT CAST(TIMESTAMPDIFF(MICROSECOND, MIN(next_attempt_at),"
                                " NOW(3)) / 1000 AS SIGNED) FROM outbox WHERE status = 'PENDING'"
                                " AND next_attempt_at <= NOW(3)",
                                NULL, 0, &j->oldest_ms, &found);
    if (rc == 0 && !found)
        j->oldest_ms = 0;
    if (rc == 0)
        rc = mx_mysql_query_int(c, "SELECT COUNT(*) FROM outbox_dlq", NULL, 0, &j->dlq, &found);
    return rc;
}

/* ---- the actor ---- */

struct relay {
    mx_actor_t *self;
    struct mx_addr addr;
    uint64_t seq;        /* lease counter of this term (the fence wants the plain counter) */
    struct mx_curluv cu; /* HTTP on this loop; its close callback frees the state */
    CURL **pool;
    uint32_t npool;
    struct rlist queue; /* claimed, waiting for a slot */
    uint32_t active;    /* POSTs running */
    struct row **slots; /* concurrency entries: the running rows (NULL = free) */
    uint32_t *free_slots, nfree;
    struct rlist results; /* finished, waiting for a completion job */
    bool claiming, completing, stats_running, reclaim_due, stopping;
    int64_t last_stats_ms, last_reclaim_ms;
    uint64_t rng;
};

static uint32_t held(const struct relay *r)
{
    return r->queue.n + r->active + r->results.n;
}

static void publish(struct relay *r)
{
    SET(inflight, r->active);
    SET(held, held(r));
}

static uint64_t rng_next(struct relay *r)
{
    r->rng ^= r->rng << 13;
    r->rng ^= r->rng >> 7;
    r->rng ^= r->rng << 17;
    return r->rng;
}

/* n failed attempts so far: d = min(2^n x base, cap) (the seed's
 * formula: the first retry waits 2 x base), then equal jitter: uniform in
 * [d/2, d]. */
static int64_t backoff_ms(struct relay *r, int32_t n)
{
    uint64_t d = g.o.backoff_base_ms;
    for (int32_t i = 0; i < n && d < g.o.backoff_cap_ms; i++)
        d *= 2;
    if (d > g.o.backoff_cap_ms)
        d = g.o.backoff_cap_ms;
    return (int64_t)(d / 2 + (d ? rng_next(r) % (d / 2 + 1) : 0));
}

static void record_lag(int64_t created_ms)
{
    int64_t lag = (int64_t)mx_unix_ms() - created_ms;
    if (lag < 0)
        lag = 0;
    uint64_t b = (uint64_t)lag / 10;
    atomic_fetch_add_explicit(&g.lag[b < LAG_BUCKETS - 1 ? b : LAG_BUCKETS - 1], 1, RELAXED);
}

static void submit_claim(struct relay *r);
static void submit_done(struct relay *r);
static void pump(struct relay *r);

static void finished(struct relay *r, struct row *w)
{
    curl_multi_remove_handle(r->cu.multi, w->easy);
    if (r->npool < g.o.concurrency)
        r->pool[r->npool++] = w->easy;
    else
        curl_easy_cleanup(w->easy);
    w->easy = NULL;
    curl_slist_free_all(w->hdrs);
    w->hdrs = NULL;
    r->slots[w->slot] = NULL;
    r->free_slots[r->nfree++] = w->slot;
    r->active--;
    if (w->ok)
        record_lag(w->created_ms);
    else
        ADD(failures, 1);
    rl_push(&r->results, w);
    submit_done(r);
    pump(r);
}

static size_t discard_body(char *p, size_t size, size_t nmemb, void *ud)
{
    return size * nmemb;
}

static const char *url_of(const char *type)
{
    if (strcmp(type, MX_OUTBOX_EV_ALERT) == 0 && g.alert_url[0])
        return g.alert_url;
    if (strcmp(type, MX_OUTBOX_EV_REFETCH) == 0)
        return g.refetch_url;
    return g.sink_url;
}

static void start_post(struct relay *r, struct row *w)
{
    const char *url = url_of(w->type);
    bool refetch = strcmp(w->type, MX_OUTBOX_EV_REFETCH) == 0;
    char full[2048 + 1100];
    ADD(attempts, 1);
    if (!url[0] || (refetch && (w->len == 0 || w->len > 1024 || w->payload[0] != '/'))) {
        snprintf(w->err, sizeof w->err,
                 url[0] ? "bad re-fetch path" : "no destination configured for event type %s",
                 w->type);
        w->ok = false;
        ADD(failures, 1);
        rl_push(&r->results, w);
        return;
    }
    if (refetch) { /* a GET of the service's own path warms its cache */
        snprintf(full, sizeof full, "%s%s", url, w->payload);
        url = full;
    }
    CURL *e = r->npool ? r->pool[--r->npool] : curl_easy_init();
    if (!e)
        abort();
    curl_easy_reset(e);
    char h[MX_OUTBOX_KEY_MAX + 64];
    snprintf(h, sizeof h, "Idempotency-Key: %s", w->key);
    w->hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    w->hdrs = curl_slist_append(w->hdrs, h);
    snprintf(h, sizeof h, "X-Outbox-Event-Type: %s", w->type);
    w->hdrs = curl_slist_append(w->hdrs, h);
    snprintf(h, sizeof h, "X-Outbox-Id: %lld", (long long)w->id);
    w->hdrs = curl_slist_append(w->hdrs, h);
    w->hdrs = curl_slist_append(w->hdrs, "Expect:");
    if (!w->hdrs)
        abort();
    w->err[0] = '\0';
    w->easy = e;
    curl_easy_setopt(e, CURLOPT_URL, url);
    if (refetch) {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    } else {
        curl_easy_setopt(e, CURLOPT_POST, 1L);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, w->payload);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)w->len);
    }
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, w->hdrs);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)g.o.timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)g.o.timeout_ms);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard_body);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, w->err);
    curl_easy_setopt(e, CURLOPT_PRIVATE, w);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_USERAGENT, "mx-outbox-relay/0.1");
    CURLMcode mc = curl_multi_add_handle(r->cu.multi, e);
    if (mc != CURLM_OK) {
        snprintf(w->err, sizeof w->err, "curl: %s", curl_multi_strerror(mc));
        w->easy = NULL;
        curl_easy_cleanup(e);
        w->ok = false;
        ADD(failures, 1);
        rl_push(&r->results, w);
        return;
    }
    w->slot = r->free_slots[--r->nfree];
    r->slots[w->slot] = w;
    r->active++;
}

/* Start POSTs while slots are free. */
static void pump(struct relay *r)
{
    if (r->stopping)
        return;
    struct row *w;
    while (r->active < g.o.concurrency && (w = rl_pop(&r->queue)))
        start_post(r, w);
    publish(r);
    submit_done(r);
}

static void attempt_done(struct relay *r, struct row *w, CURLcode rc)
{
    long code = 0;
    curl_easy_getinfo(w->easy, CURLINFO_RESPONSE_CODE, &code);
    if (rc == CURLE_OK && code >= 200 && code < 300) {
        w->ok = true;
    } else {
        w->ok = false;
        if (rc != CURLE_OK)
            snprintf(w->err, sizeof w->err, "%.200s", w->err[0] ? w->err : curl_easy_strerror(rc));
        else
            snprintf(w->err, sizeof w->err, "HTTP %ld", code);
    }
    finished(r, w);
}

static void state_closed(void *ctx)
{
    free(ctx);
}

/* A delivery finished (mx_curluv). */
static void transfer_done(void *ctx, CURL *easy, CURLcode rc)
{
    struct relay *r = ctx;
    struct row *w = NULL;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&w);
    if (w && w->easy == easy)
        attempt_done(r, w, rc);
}

/* ---- jobs from the actor ---- */

static void submit_claim(struct relay *r)
{
    uint32_t h = held(r);
    if (r->claiming || r->stopping || h >= g.o.batch / 2 + (g.o.batch == 1))
        return;
    struct claim_job *j = calloc(1, sizeof *j);
    if (!j)
        abort();
    j->kind = JOB_CLAIM;
    j->seq = r->seq;
    j->limit = g.o.batch - h;
    j->stuck_s = g.o.stuck_s;
    j->only_alerts = !g.sink_url[0];
    j->with_refetch = g.refetch_url[0] != '\0';
    int64_t now = mx_now_ms();
    j->reclaim = r->reclaim_due || now - r->last_reclaim_ms >= RECLAIM_PERIOD_MS;
    if (mx_mysql_submit(g.o.mysql, claim_run, j, claim_job_free, r->addr, NULL) != 0) {
        ADD(refused, 1);
        free(j);
        return;
    }
    if (j->reclaim) { /* j is the pool's now: only our own copy of the flag is read */
        r->reclaim_due = false;
        r->last_reclaim_ms = now;
    }
    r->claiming = true;
}

static void submit_done(struct relay *r)
{
    if (r->completing || r->results.n == 0)
        return;
    struct done_job *j = calloc(1, sizeof *j);
    if (!j)
        abort();
    j->kind = JOB_DONE;
    j->seq = r->seq;
    j->ok = malloc(r->results.n * sizeof *j->ok);
    j->bad = malloc(r->results.n * sizeof *j->bad);
    if (!j->ok || !j->bad)
        abort();
    for (struct row *w = r->results.head; w; w = w->next) {
        if (w->ok) {
            j->ok[j->nok++] = w->id;
            continue;
        }
        struct fail_ent *f = &j->bad[j->nbad++];
        f->id = w->id;
        f->attempts = w->attempts + 1;
        f->dead = (uint32_t)f->attempts >= g.o.max_attempts;
        f->delay_ms = f->dead ? 0 : backoff_ms(r, f->attempts);
        snprintf(f->err, sizeof f->err, "%s", w->err[0] ? w->err : "delivery failed");
    }
    if (mx_mysql_submit(g.o.mysql, done_run, j, done_job_free, r->addr, NULL) != 0) {
        ADD(refused, 1); /* results stay held: retried on the next tick */
        done_job_free(j);
        return;
    }
    struct row *w;
    while ((w = rl_pop(&r->results)))
        row_free(w);
    r->completing = true;
    publish(r);
}

static void submit_stats(struct relay *r)
{
    int64_t now = mx_now_ms();
    if (r->stats_running || now - r->last_stats_ms < STATS_PERIOD_MS)
        return;
    struct stats_job *j = calloc(1, sizeof *j);
    if (!j)
        abort();
    j->kind = JOB_STATS;
    j->retain_s = g.o.retain_s;
    if (mx_mysql_submit(g.o.mysql, stats_run, j, free, r->addr, NULL) != 0) {
        free(j);
        return;
    }
    r->stats_running = true;
    r->last_stats_ms = now;
}

static void on_job_done(mx_actor_t *self, struct relay *r, struct mx_msg *m)
{
    struct mx_m_store_job_done d;
    if (mx_msg_decode(m, &d) != 0 || !m->ptr)
        return;
    enum job_kind kind = *(enum job_kind *)m->ptr;
    int st = (int)d.status;
    if (st == MX_ESTALE) {
        ADD(fenced, 1);
        MX_WARN("outbox-relay: a newer holder fenced MySQL; stopping (epoch %llu)",
                (unsigned long long)r->seq);
        r->stopping = true;
        mx_exit(self);
        return;
    }
    if (kind == JOB_CLAIM) {
        struct claim_job *j = m->ptr;
        r->claiming = false;
        if (st != 0) {
            MX_DEBUG("outbox-relay: claim failed: %s", mx_strerror(st));
            if (j->reclaim)
                r->reclaim_due = true;
            return;
        }
        if (j->reclaimed) {
            ADD(reclaimed, j->reclaimed);
            MX_INFO("outbox-relay: put back %llu rows of older or stuck claims",
                    (unsigned long long)j->reclaimed);
        }
        uint32_t n = j->rows.n;
        ADD(claimed, n);
        struct row *w;
        while ((w = rl_pop(&j->rows)))
            rl_push(&r->queue, w);
        pump(r);
        if (n == j->limit)
            submit_claim(r); /* more are due: do not wait for the tick */
    } else if (kind == JOB_DONE) {
        struct done_job *j = m->ptr;
        r->completing = false;
        if (st != 0) {
            /* rolled back: the rows stay INFLIGHT under our epoch and
             * come back through the stuck-row reclaim */
            uint32_t dying = 0;
            for (uint32_t i = 0; i < j->nbad; i++)
                dying += j->bad[i].dead;
            if (dying) {
                /* the DLQ move itself failed: the rows stay in the outbox
                 * (never lost) and a person should look */
                MX_ERROR("outbox-relay: moving %u dead events to the DLQ failed: %s; they stay"
                         " INFLIGHT and are retried after %u s",
                         dying, mx_strerror(st), g.o.stuck_s);
                mx_alert_raise("outbox-dlq-failed", 2, "Outbox DLQ move failed",
                               "Dead outbox events could not be moved to outbox_dlq; they stay"
                               " in the outbox and are retried. Check MySQL.");
            } else {
                MX_WARN("outbox-relay: completion of %u rows failed: %s", j->nok + j->nbad,
                        mx_strerror(st));
            }
        } else {
            ADD(deliveries, j->delivered);
            ADD(stale_completions, j->stale);
            ADD(retries, j->retried);
            ADD(dead, j->dead);
            if (j->stale)
                MX_WARN("outbox-relay: %llu completions matched no row (claimed again by "
                        "another epoch)",
                        (unsigned long long)j->stale);
        }
        submit_done(r);
        submit_claim(r);
    } else if (kind == JOB_STATS) {
        struct stats_job *j = m->ptr;
        r->stats_running = false;
        if (st == 0) {
            ADD(purged, j->purged);
            SET(backlog, j->backlog);
            SET(oldest_ms, j->oldest_ms);
            SET(dlq_size, j->dlq);
        }
    }
}

static int r_init(mx_actor_t *self, void *arg, void **state)
{
    struct relay *r = calloc(1, sizeof *r);
    if (!r)
        return MX_ENOMEM;
    r->self = self;
    r->addr = mx_self(self);
    r->seq = mx_singleton_epoch() & MX_EPOCH_SEQ_MASK;
    r->reclaim_due = true;
    r->rng = (uint64_t)mx_now_ms() ^ (r->seq * 0x9e3779b97f4a7c15ull) ^ 0x2545F4914F6CDD1Dull;
    r->pool = calloc(g.o.concurrency, sizeof *r->pool);
    r->slots = calloc(g.o.concurrency, sizeof *r->slots);
    r->free_slots = calloc(g.o.concurrency, sizeof *r->free_slots);
    if (!r->pool || !r->slots || !r->free_slots ||
        mx_curluv_init(&r->cu, mx_actor_loop(self), transfer_done, r) != 0) {
        free(r->pool);
        free(r->slots);
        free(r->free_slots);
        free(r);
        return MX_EINTERNAL;
    }
    for (uint32_t i = 0; i < g.o.concurrency; i++)
        r->free_slots[r->nfree++] = g.o.concurrency - 1 - i;
    curl_multi_setopt(r->cu.multi, CURLMOPT_MAXCONNECTS, (long)g.o.concurrency);
    uint64_t id;
    struct mx_msg *tick = mx_msg_new(MX_T_sys_tick, 0);
    int rc = mx_timer_start(self, 0, g.o.poll_ms, tick, &id);
    if (rc != 0) {
        mx_msg_free(tick);
        free(r->pool);
        free(r->slots);
        free(r->free_slots);
        mx_curluv_close(&r->cu, state_closed); /* frees r */
        return rc;
    }
    for (size_t i = 0; i < LAG_BUCKETS; i++)
        atomic_store_explicit(&g.lag[i], 0, RELAXED);
    SET(epoch, r->seq);
    SET(holding, true);
    MX_INFO("outbox-relay: relaying (epoch %llu, batch %u, concurrency %u)",
            (unsigned long long)r->seq, g.o.batch, g.o.concurrency);
    *state = r;
    return 0;
}

static int r_receive(mx_actor_t *self, void *state, struct mx_msg *m)
{
    struct relay *r = state;
    if (m->env.type == MX_T_sys_tick) {
        submit_claim(r);
        submit_done(r);
        submit_stats(r);
    } else if (m->env.type == MX_T_store_job_done) {
        on_job_done(self, r, m);
    }
    return 0;
}

static void r_stop(mx_actor_t *self, void *state)
{
    struct relay *r = state;
    struct row *w;
    r->stopping = true;
    SET(holding, false);
    /* finished rows whose completion was not sent: one last try (the fence
     * and the epoch guard decide; if the node is stopping the pool may
     * refuse it, and the next holder redelivers them under the same key) */
    r->completing = false;
    submit_done(r);
    while ((w = rl_pop(&r->results)))
        row_free(w);
    while ((w = rl_pop(&r->queue)))
        row_free(w);
    uint32_t ne = 0;
    for (uint32_t i = 0; i < g.o.concurrency; i++) {
        struct row *x = r->slots[i];
        if (!x)
            continue;
        curl_multi_remove_handle(r->cu.multi, x->easy);
        curl_easy_cleanup(x->easy);
        row_free(x);
        ne++;
    }
    free(r->slots);
    free(r->free_slots);
    for (uint32_t i = 0; i < r->npool; i++)
        curl_easy_cleanup(r->pool[i]);
    free(r->pool);
    SET(inflight, 0);
    SET(held, 0);
    SET(backlog, -1); /* table figures come from the holder only */
    SET(oldest_ms, -1);
    SET(dlq_size, -1);
    MX_INFO("outbox-relay: stopped (epoch %llu, %u deliveries abandoned)",
            (unsigned long long)r->seq, ne);
    mx_curluv_close(&r->cu, state_closed); /* frees r once closed */
}

static const struct mx_behaviour relay_beh = {MX_OUTBOX_SINGLETON, r_init, r_receive, r_stop};

static bool url_ok(const char *u)
{
    return !u[0] || strncmp(u, "http://", 7) == 0 || strncmp(u, "https://", 8) == 0;
}

void mx_outbox_register_metrics(void)
{
    mx_metrics_register_once(&g.metrics_id, "outbox", "relay", outbox_desc,
                             sizeof outbox_desc / sizeof *outbox_desc, &g.m);
    mx__alert_register_metrics();
}

int mx_outbox_start(mx_leases_t *lm, const struct mx_outbox_opts *o)
{
    if (!o || !o->mysql)
        return MX_EINVAL;
    mx_outbox_register_metrics();
    const char *sink = o->sink_url ? o->sink_url : "", *alert = o->alert_url ? o->alert_url : "",
               *refetch = o->refetch_url ? o->refetch_url : "";
    if (!url_ok(sink) || !url_ok(alert) || !url_ok(refetch))
        return MX_EINVAL;
    if (!sink[0] && !alert[0] && !refetch[0]) {
        MX_INFO("outbox-relay: off (neither MX_OUTBOX_SINK_URL nor MX_ALERT_WEBHOOK_URL is set);"
                " outbox rows wait");
        return 0;
    }
    g.o = *o;
    g.sink_url = xdup(sink, strlen(sink));
    g.alert_url = xdup(alert, strlen(alert));
    g.refetch_url = xdup(refetch, strlen(refetch));
    g.o.refetch_url = g.refetch_url;
    g.o.sink_url = g.sink_url;
    g.o.alert_url = g.alert_url;
#define DEF(f, v)                                                                                  \
    if (!g.o.f)                                                                                    \
    g.o.f = (v)
    DEF(batch, 500);
    DEF(concurrency, 64);
    DEF(timeout_ms, 5000);
    DEF(poll_ms, 100);
    DEF(max_attempts, 5);
    DEF(backoff_base_ms, 1000);
    DEF(backoff_cap_ms, 300000);
    DEF(stuck_s, 120);
    DEF(retain_s, 7 * 86400);
#undef DEF
    if (g.o.batch > MX_OUTBOX_BATCH_MAX)
        g.o.batch = MX_OUTBOX_BATCH_MAX;
    return mx_singleton(lm, MX_OUTBOX_SINGLETON, &relay_beh, NULL, NULL);
}

static uint64_t lag_pct(const uint64_t *h, uint64_t total, double p)
{
    if (!total)
        return 0;
    uint64_t want = (uint64_t)((double)total * p + 0.999999), acc = 0;
    for (size_t i = 0; i < LAG_BUCKETS; i++) {
        acc += h[i];
        if (acc >= want)
            return (i + 1) * 10; /* the bucket's upper bound */
    }
    return LAG_BUCKETS * 10;
}

void mx_outbox_stats(struct mx_outbox_stats *s)
{
    memset(s, 0, sizeof *s);
    s->holding = GET(holding) != 0;
    s->epoch = GET(epoch);
    s->claimed = GET(claimed);
    s->delivered = GET(deliveries);
    s->attempts = GET(attempts);
    s->failures = GET(failures);
    s->retries = GET(retries);
    s->dead = GET(dead);
    s->stale_completions = GET(stale_completions);
    s->fenced = GET(fenced);
    s->reclaimed = GET(reclaimed);
    s->refused = GET(refused);
    s->purged = GET(purged);
    s->backlog = (int64_t)GET(backlog);
    s->oldest_due_age_ms = (int64_t)GET(oldest_ms);
    s->dlq_size = (int64_t)GET(dlq_size);
    s->inflight = (uint32_t)GET(inflight);
    s->held = (uint32_t)GET(held);
    uint64_t h[LAG_BUCKETS], total = 0;
    size_t last = 0;
    for (size_t i = 0; i < LAG_BUCKETS; i++) {
        h[i] = atomic_load_explicit(&g.lag[i], RELAXED);
        total += h[i];
        if (h[i])
            last = i;
    }
    s->lag_count = total;
    s->lag_p50_ms = lag_pct(h, total, 0.50);
    s->lag_p99_ms = lag_pct(h, total, 0.99);
    s->lag_max_ms = total ? (last + 1) * 10 : 0;
}
