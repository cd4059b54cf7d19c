/* outbox_sql.c - the outbox, DLQ and points-ledger SQL that HTTP routes run
 * on the MySQL pool (mx_outbox.h): the DLQ admin API (seed #14-19, same
 * shapes), coffee donations (seed #20: transfer + history + outbox row in
 * one transaction) and the admin's points grant.
 *
 * Each job runs on a pool thread, does its SQL with prepared statements
 * and builds the whole HTTP answer (JSON body or error code), so the
 * acceptor only writes it. Every write is one transaction: a failure
 * rolls everything back and the job returns the MySQL error.
 */
#include "mx_outbox.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mx_err.h"
#include "mx_jsonw.h"
#include "mx_log.h"

#define BODY_MAX (4u << 20)
#define PREVIEW_CHARS 100
#define TS_SQL "DATE_FORMAT(created_at, '%Y-%m-%dT%H:%i:%s.%f')"

int mx_outbox_insert(struct mx_mysql_conn *c, const char *type, const char *payload, size_t len,
                     const char *key)
{
    size_t tl = strlen(type), kl = strlen(key);
    if (!tl || tl > MX_OUTBOX_TYPE_MAX || !kl || kl > MX_OUTBOX_KEY_MAX)
        return MX_EINVAL;
    for (size_t i = 0; i < kl; i++) /* the key travels as an HTTP header */
        if ((unsigned char)key[i] < 0x21 || key[i] == 0x7f)
            return MX_EINVAL;
    struct mx_sql_val v[] = {MX_SQL_SN(type, tl), MX_SQL_B(payload, len), MX_SQL_SN(key, kl)};
    return mx_mysql_exec(c,
                         "INSERT INTO outbox (event_type, payload, idempotency_key, status,"
                         " next_attempt_at) VALUES (?, ?, ?, 'PENDING', NOW(3))",
                         v, 3, NULL);
}

void mx_outbox_job_free(void *arg)
{
    struct mx_outbox_job *j = arg;
    if (!j)
        return;
    free(j->body);
    free(j);
}

static int fail(struct mx_outbox_job *j, int status, const char *code, const char *msg)
{
    j->http_status = status;
    snprintf(j->code, sizeof j->code, "%s", code);
    snprintf(j->message, sizeof j->message, "%s", msg);
    return 0;
}

/* {"success":true,"data": <what the caller wrote>}: open, caller writes
 * the data value, close. */
static void wrap_open(struct mx_jsonw *w)
{
    mx_jsonw_init(w, BODY_MAX);
    mx_jsonw_obj_open(w);
    mx_jsonw_kbool(w, "success", true);
    mx_jsonw_key(w, "data");
}

/* a page: {"success":true,"data":{"content":[ opened in w */
static void content_open(struct mx_jsonw *w)
{
    wrap_open(w);
    mx_jsonw_obj_open(w);
    mx_jsonw_key(w, "content");
    mx_jsonw_arr_open(w);
}

static int wrap_close(struct mx_outbox_job *j, struct mx_jsonw *w)
{
    mx_jsonw_obj_close(w);
    j->body = mx_jsonw_take(w, &j->body_len);
    mx_jsonw_fini(w);
    if (!j->body)
        return fail(j, 500, "S001", "Could not build the answer");
    j->http_status = 200;
    return 0;
}

/* ---- DLQ entries ---- */

/* Columns of an entry query, in order. */
#define DLQ_COLS                                                                                   \
    "id, outbox_id, idempotency_key, event_type, payload, last_error, " TS_SQL ", LENGTH(payload)"

static void val_str(struct mx_jsonw *w, const char *k, const struct mx_sql_val *v)
{
    if (v->kind == MX_SQL_NULL) {
        mx_jsonw_knull(w, k);
        return;
    }
    mx_jsonw_key(w, k);
    mx_jsonw_strn(w, v->p, v->len);
}

/* Bytes of the first n UTF-8 characters of p (len bytes). */
static size_t utf8_prefix(const char *p, size_t len, size_t n)
{
    size_t i = 0;
    while (i < len && n > 0) {
        i++;
        while (i < len && ((unsigned char)p[i] & 0xC0) == 0x80)
            i++;
        n--;
    }
    return i;
}

struct entries {
    struct mx_jsonw *w;
    bool preview; /* list form: payloadPreview (100 characters + "...") */
    int64_t last_id;
    uint64_t n;
};

static int entry_row(void *ctx, const struct mx_sql_val *col, size_t ncols)
{
    struct entries *e = ctx;
    struct mx_jsonw *w = e->w;
    if (ncols < 8)
        return MX_EDECODE;
    mx_jsonw_obj_open(w);
    mx_jsonw_kint(w, "id", col[0].i);
    if (col[1].kind == MX_SQL_INT)
        mx_jsonw_kint(w, "originalOutboxId", col[1].i);
    else
        mx_jsonw_knull(w, "originalOutboxId");
    val_str(w, "requestId", &col[2]);
    val_str(w, "eventType", &col[3]);
    if (e->preview) {
        const char *p = col[4].p ? col[4].p : "";
        size_t cut = utf8_prefix(p, col[4].len, PREVIEW_CHARS);
        mx_jsonw_key(w, "payloadPreview");
        if (cut < col[4].len) {
            char *s = malloc(cut + 4);
            if (!s)
                abort();
            memcpy(s, p, cut);
            memcpy(s + cut, "...", 3);
            mx_jsonw_strn(w, s, cut + 3);
            free(s);
        } else {
            mx_jsonw_strn(w, p, col[4].len);
        }
    } else {
        val_str(w, "payload", &col[4]);
    }
    val_str(w, "failureReason", &col[5]);
    val_str(w, "movedAt", &col[6]);
    mx_jsonw_obj_close(w);
    e->last_id = col[0].i;
    e->n++;
    return 0;
}

static void write_sort(struct mx_jsonw *w)
{
    mx_jsonw_obj_open(w);
    mx_jsonw_kbool(w, "empty", true);
    mx_jsonw_kbool(w, "sorted", false);
    mx_jsonw_kbool(w, "unsorted", true);
    mx_jsonw_obj_close(w);
}

/* Spring's PageImpl as Jackson writes it (seed #14). */
static int dlq_page(struct mx_mysql_conn *c, struct mx_outbox_job *j)
{
    int64_t total = 0;
    bool found;
    int rc = mx_mysql_query_int(c, "SELECT COUNT(*) FROM outbox_dlq", NULL, 0, &total, &found);
    if (rc)
        return rc;
    struct mx_jsonw w;
    content_open(&w);
    struct entries e = {.w = &w, .preview = true};
    struct mx_sql_val v[] = {MX_SQL_I(j->size), MX_SQL_I(j->page * j->size)};
    rc = mx_mysql_query(c,
                        "SELECT " DLQ_COLS " FROM outbox_dlq ORDER BY created_at DESC, id DESC"
                        " LIMIT ? OFFSET ?",
                        v, 2, entry_row, &e, NULL);
    if (rc) {
        mx_jsonw_fini(&w);
        return rc;
    }
    mx_jsonw_arr_close(&w);
    int64_t pages = (total + j->size - 1) / j->size;
    mx_jsonw_key(&w, "pageable");
    mx_jsonw_obj_open(&w);
    mx_jsonw_kint(&w, "pageNumber", j->page);
    mx_jsonw_kint(&w, "pageSize", j->size);
    mx_jsonw_key(&w, "sort");
    write_sort(&w);
    mx_jsonw_kint(&w, "offset", j->page * j->size);
    mx_jsonw_kbool(&w, "paged", true);
    mx_jsonw_kbool(&w, "unpaged", false);
    mx_jsonw_obj_close(&w);
    mx_jsonw_kbool(&w, "last", j->page + 1 >= pages);
    mx_jsonw_kint(&w, "totalElements", total);
    mx_jsonw_kint(&w, "totalPages", pages);
    mx_jsonw_kbool(&w, "first", j->page == 0);
    mx_jsonw_kint(&w, "size", j->size);
    mx_jsonw_kint(&w, "number", j->page);
    mx_jsonw_key(&w, "sort");
    write_sort(&w);
    mx_jsonw_kuint(&w, "numberOfElements", e.n);
    mx_jsonw_kbool(&w, "empty", e.n == 0);
    mx_jsonw_obj_close(&w);
    return wrap_close(j, &w);
}

/* Seed #19: ascending ids after the cursor, size+1 read to know hasNext. */
static int dlq_cursor(struct mx_mysql_conn *c, struct mx_outbox_job *j)
{
    struct mx_jsonw w;
    content_open(&w);
    struct entries e = {.w = &w, .preview = true};
    struct mx_sql_val v[] = {MX_SQL_I(j->has_cursor ? j->cursor : -1), MX_SQL_I(j->size)};
    int rc =
        mx_mysql_query(c, "SELECT " DLQ_COLS " FROM outbox_dlq WHERE id > ? ORDER BY id LIMIT ?", v,
                       2, entry_row, &e, NULL);
    if (rc) {
        mx_jsonw_fini(&w);
        return rc;
    }
    mx_jsonw_arr_close(&w);
    int64_t more = 0;
    bool found;
    struct mx_sql_val m[] = {MX_SQL_I(e.last_id)};
    if (e.n == (uint64_t)j->size &&
        (rc = mx_mysql_query_int(c,
                                 "SELECT COUNT(*) FROM (SELECT id FROM outbox_dlq WHERE id > ?"
                                 " LIMIT 1) t",
                                 m, 1, &more, &found)) != 0) {
        mx_jsonw_fini(&w);
        return rc;
    }
    if (e.n)
        mx_jsonw_kint(&w, "nextCursor", e.last_id);
    else
        mx_jsonw_knull(&w, "nextCursor");
    mx_jsonw_kbool(&w, "hasNext", more > 0);
    mx_jsonw_kuint(&w, "size", e.n);
    mx_jsonw_obj_close(&w);
    return wrap_close(j, &w);
}

static int not_found(struct mx_outbox_job *j)
{
    char m[96];
    snprintf(m, sizeof m, "No such DLQ entry (ID: %lld)", (long long)j->id);
    return fail(j, 404, "D001", m);
}

static int dlq_get(struct mx_mysql_conn *c, struct mx_outbox_job *j)
{
    struct mx_jsonw w;
    wrap_open(&w);
    struct entries e = {.w = &w};
    struct mx_sql_val v[] = {MX_SQL_I(j->id)};
    int rc = mx_mysql_query(c, "SELECT " DLQ_COLS " FROM outbox_dlq WHERE id = ?", v, 1, entry_row,
                            &e, NULL);
    if (rc || e.n == 0) {
        mx_jsonw_fini(&w);
        return rc ? rc : not_found(j);
    }
    return wrap_close(j, &w);
}

static int dlq_delete(struct mx_mysql_conn *c, struct mx_outbox_job *j)
{
    uint64_t n = 0;
    struct mx_sql_val v[] = {MX_SQL_I(j->id)};
    int rc = mx_mysql_exec(c, "DELETE FROM outbox_dlq WHERE id = ?", v, 1, &n);
    if (rc || n == 0)
        return rc ? rc : not_found(j);
    char msg[96];
    snprintf(msg, sizeof msg, "DLQ entry discarded successfully: %lld", (long long)j->id);
    struct mx_jsonw w;
    wrap_open(&w);
    mx_jsonw_str(&w, msg);
    return wrap_close(j, &w);
}

struct dead_row {
    bool found;
    char key[MX_OUTBOX_KEY_MAX + 1];
    char type[MX_OUTBOX_TYPE_MAX + 1];
    char *payload;
    size_t len;
};

static int dead_row(void *ctx, const struct mx_sql_val *col, size_t ncols)
{
    struct dead_row *d = ctx;
    if (ncols < 3 || col[0].len > MX_OUTBOX_KEY_MAX || col[1].len > MX_OUTBOX_TYPE_MAX)
        return MX_EDECODE;
    d->found = true;
    memcpy(d->key, col[0].p, col[0].len);
    d->key[col[0].len] = '\0';
    memcpy(d->type, col[1].p, col[1].len);
    d->type[col[1].len] = '\0';
    d->payload = malloc(col[2].len + 1);
    if (!d->payload)
        abort();
    memcpy(d->payload, col[2].p ? col[2].p : "", col[2].len);
    d->len = col[2].len;
    return 0;
}

/* Seed #16, done right: the event goes back to the outbox as PENDING (a
 * row still holding the key is reset), and the DLQ entry goes, in one
 * transaction. */
static int dlq_reprocess(struct mx_mysql_conn *c, struct mx_outbox_job *j)
{
    struct dead_row d = {0};
    int rc = mx_mysql_begin(c);
    if (rc)
        return rc;
    struct mx_sql_val v[] = {MX_SQL_I(j->id)};
    rc = mx_mysql_query(c,
                        "SELECT idempotency_key, event_type, payload FROM outbox_dlq WHERE id = ?"
                        " FOR UPDATE",
                        v, 1, dead_row, &d, NULL);
    if (rc || !d.found)
        goto out_rollback;
    struct mx_sql_val ins[] = {MX_SQL_S(d.type), MX_SQL_B(d.payload, d.len), MX_SQL_S(d.key)};
    rc = mx_mysql_exec(c,
                       "INSERT INTO outbox (event_type, payload, idempotency_key, status,"
                       " next_attempt_at) VALUES (?, ?, ?, 'PENDING', NOW(3))"
                       " ON DUPLICATE KEY UPDATE status = 'PENDING', attempts = 0,"
                       " next_attempt_at = NOW(3), claim_epoch = 0, last_error = NULL,"
                       " event_type = VALUES(event_type), payload = VALUES(payload)",
                       ins, 3, NULL);
    if (rc)
        goto out_rollback;
    int64_t nid = 0;
    bool found = false;
    struct mx_sql_val k[] = {MX_SQL_S(d.key)};
    rc = mx_mysql_query_int(c, "SELECT id FROM outbox WHERE idempotency_key = ?", k, 1, &nid,
                            &found);
    if (rc)
        goto out_rollback;
    rc = mx_mysql_exec(c, "DELETE FROM outbox_dlq WHERE id = ?", v, 1, NULL);
    if (rc)
        goto out_rollback;
    if ((rc = mx_mysql_commit(c)) != 0)
        goto out_rollback;
    struct mx_jsonw w;
    wrap_open(&w);
    mx_jsonw_obj_open(&w);
    mx_jsonw_kint(&w, "dlqId", j->id);
    mx_jsonw_kint(&w, "newOutboxId", nid);
    mx_jsonw_kstr(&w, "requestId", d.key);
    mx_jsonw_kstr(&w, "message", "Successfully requeued to Outbox for reprocessing");
    mx_jsonw_obj_close(&w);
    free(d.payload);
    return wrap_close(j, &w);
out_rollback:
    mx_mysql_rollback(c);
    free(d.payload);
    return rc ? rc : not_found(j);
}

/* ---- points and donations ---- */

static int points_of(struct mx_mysql_conn *c, const char *account, int64_t *out)
{
    bool found = false;
    struct mx_sql_val v[] = {MX_SQL_S(account)};
    int rc = mx_mysql_query_int(c, "SELECT points FROM point_account WHERE account_id = ?", v, 1,
                                out, &found);
    if (rc == 0 && !found)
        *out = 0;
    return rc;
}

static int points_answer(struct mx_outbox_job *j, int64_t points)
{
    struct mx_jsonw w;
    wrap_open(&w);
    mx_jsonw_obj_open(&w);
    mx_jsonw_kstr(&w, "accountId", j->account);
    mx_jsonw_kint(&w, "points", points);
    mx_jsonw_obj_close(&w);
    return wrap_close(j, &w);
}

static int points_grant(struct mx_mysql_conn *c, struct mx_outbox_job *j)
{
    struct mx_sql_val v[] = {MX_SQL_S(j->account), MX_SQL_I(j->amount)};
    int rc = mx_mysql_exec(c,
                           "INSERT INTO point_account (account_id, points) VALUES (?, ?)"
                           " ON DUPLICATE KEY UPDATE points = points + VALUES(points)",
                           v, 2, NULL);
    int64_t p = 0;
    if (rc == 0)
        rc = points_of(c, j->account, &p);
    return rc ? rc : points_answer(j, p);
}

static int donate_answer(struct mx_outbox_job *j)
{
    struct mx_jsonw w;
    wrap_open(&w);
    mx_jsonw_obj_open(&w);
    mx_jsonw_kstr(&w, "requestId", j->key);
    mx_jsonw_kstr(&w, "message", "커피 후원이 완료되었습니다.");
    mx_jsonw_obj_close(&w);
    return wrap_close(j, &w);
}

/* The first 4 characters then "****" (the seed masks the receiver). */
static void mask(const char *s, char *out, size_t cap)
{
    snprintf(out, cap, "%.4s****", s);
}

/* Seed #20 in one transaction: the history row first (its unique request
 * id makes a concurrent repeat wait for this transaction, then find it
 * and answer 200 without moving anything), the sender's debit guarded by
 * its balance (C003 rolls everything back), the receiver's credit, the
 * DONATION_COMPLETED outbox row. */
static int donate(struct mx_mysql_conn *c, struct mx_outbox_job *j)
{
    int rc = mx_mysql_begin(c);
    if (rc)
        return rc;
    struct mx_sql_val h[] = {MX_SQL_S(j->key), MX_SQL_S(j->account), MX_SQL_S(j->receiver),
                             MX_SQL_I(j->amount)};
    rc = mx_mysql_exec(c,
                       "INSERT INTO donation_history (request_id, sender_account,"
                       " receiver_fingerprint, amount) VALUES (?, ?, ?, ?)",
                       h, 4, NULL);
    if (rc == MX_EEXISTS) {
        mx_mysql_rollback(c);
        return donate_answer(j); /* a repeat: already done once */
    }
    if (rc)
        goto out_rollback;
    uint64_t n = 0;
    struct mx_sql_val d[] = {MX_SQL_I(j->amount), MX_SQL_S(j->account), MX_SQL_I(j->amount)};
    rc = mx_mysql_exec(c,
                       "UPDATE point_account SET points = points - ?"
                       " WHERE account_id = ? AND points >= ?",
                       d, 3, &n);
    if (rc)
        goto out_rollback;
    if (n == 0) {
        mx_mysql_rollback(c);
        int64_t have = 0;
        if ((rc = points_of(c, j->account, &have)) != 0)
            return rc;
        char m[160];
        snprintf(m, sizeof m, "Not enough points (have: %lld, need: %lld)", (long long)have,
                 (long long)j->amount);
        return fail(j, 400, "C003", m);
    }
    char recv[80];
    snprintf(recv, sizeof recv, "admin:%s", j->receiver);
    struct mx_sql_val r[] = {MX_SQL_S(recv), MX_SQL_I(j->amount)};
    rc = mx_mysql_exec(c,
                       "INSERT INTO point_account (account_id, points) VALUES (?, ?)"
                       " ON DUPLICATE KEY UPDATE points = points + VALUES(points)",
                       r, 2, NULL);
    if (rc)
        goto out_rollback;
    char masked[16], okey[96];
    mask(j->receiver, masked, sizeof masked);
    struct mx_jsonw w;
    mx_jsonw_init(&w, 4096);
    mx_jsonw_obj_open(&w);
    mx_jsonw_kstr(&w, "requestId", j->key);
    mx_jsonw_kstr(&w, "senderAccount", j->account);
    mx_jsonw_kstr(&w, "receiverFingerprint", masked);
    mx_jsonw_kint(&w, "amount", j->amount);
    mx_jsonw_obj_close(&w);
    snprintf(okey, sizeof okey, "donation:%s", j->key);
    rc = w.err ? MX_EINTERNAL : mx_outbox_insert(c, MX_OUTBOX_EV_DONATION, w.buf, w.len, okey);
    mx_jsonw_fini(&w);
    if (rc)
        goto out_rollback;
    if ((rc = mx_mysql_commit(c)) != 0)
        goto out_rollback;
    return donate_answer(j);
out_rollback:
    mx_mysql_rollback(c);
    return rc;
}

int mx_outbox_job_run(struct mx_mysql_conn *c, void *arg)
{
    struct mx_outbox_job *j = arg;
    int64_t n = 0;
    bool found;
    int rc;
    switch (j->op) {
    case MX_OBOP_DLQ_PAGE:
        return dlq_page(c, j);
    case MX_OBOP_DLQ_CURSOR:
        return dlq_cursor(c, j);
    case MX_OBOP_DLQ_GET:
        return dlq_get(c, j);
    case MX_OBOP_DLQ_DELETE:
        return dlq_delete(c, j);
    case MX_OBOP_DLQ_REPROCESS:
        return dlq_reprocess(c, j);
    case MX_OBOP_DLQ_COUNT: {
        rc = mx_mysql_query_int(c, "SELECT COUNT(*) FROM outbox_dlq", NULL, 0, &n, &found);
        if (rc)
            return rc;
        struct mx_jsonw w;
        wrap_open(&w);
        mx_jsonw_int(&w, n);
        return wrap_close(j, &w);
    }
    case MX_OBOP_DONATE:
        return donate(c, j);
    case MX_OBOP_POINTS_GRANT:
        return points_grant(c, j);
    case MX_OBOP_POINTS_GET:
        rc = points_of(c, j->account, &n);
        return rc ? rc : points_answer(j, n);
    }
    return fail(j, 500, "S001", "Unknown outbox job");
}
