/* like_store.c - the MySQL side of likes, run as mx_mysql pool jobs.
 *
 * - cold read: the stored count (game_character.like_count, or the number
 *   of character_like rows when the character has no row) and whether one
 *   account likes the target;
 * - warm load: the same count plus every liker, read in one snapshot, so
 *   Redis can take over the target;
 * - batch commit: one journal in ONE transaction under the "like-sync"
 *   fence: the batch id is recorded first (a replay stops there), then per
 *   target the likes are INSERT IGNOREd, the unlikes DELETEd, and the count
 *   moves by exactly the rows that changed, so a count can never drift
 *   from the relations it summarises nor go below zero.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "likes_int.h"
#include "mx_err.h"
#include "mx_log.h"

/* Pairs per multi-row statement: the largest size that fits is used, so a
 * target's n pairs take about n/256 + 9 statements, and every connection
 * prepares at most 8 texts (its statement cache holds 64). 256 pairs are
 * 512 parameters (mx_mysql_exec binds up to MX_MYSQL_MAX_PARAMS). */
static const uint32_t sizes[] = {256, 32, 4, 1};
#define NSIZES 4
#define CHUNK 256
_Static_assert(2 * CHUNK <= MX_MYSQL_MAX_PARAMS, "a chunk's parameters fit one statement");

static char sql_ins[NSIZES][160 + CHUNK * 8];
static char sql_del[NSIZES][160 + CHUNK * 4];
static pthread_once_t sql_once = PTHREAD_ONCE_INIT;

static void build_sql(void)
{
    for (int z = 0; z < NSIZES; z++) {
        uint32_t n = sizes[z];
        char *p = sql_ins[z];
        p +=
            sprintf(p, "INSERT IGNORE INTO character_like (target_ocid, liker_account_id) VALUES ");
        for (uint32_t i = 0; i < n; i++)
            p += sprintf(p, "%s(?, ?)", i ? ", " : "");
        p = sql_del[z];
        p += sprintf(p,
                     "DELETE FROM character_like WHERE target_ocid = ? AND liker_account_id IN (");
        for (uint32_t i = 0; i < n; i++)
            p += sprintf(p, "%s?", i ? ", " : "");
        sprintf(p, ")");
    }
}

/* The count a cold target starts from. */
static int stored_count(struct mx_mysql_conn *c, const char *ocid, int64_t *out)
{
    struct mx_sql_val v[] = {MX_SQL_S(ocid)};
    bool found = false;
    int rc = mx_mysql_query_int(c, "SELECT like_count FROM game_character WHERE ocid = ?", v, 1,
                                out, &found);
    if (rc != 0 || found)
        return rc;
    return mx_mysql_query_int(c, "SELECT COUNT(*) FROM character_like WHERE target_ocid = ?", v, 1,
                              out, &found);
}

int mx__lk_read_job(struct mx_mysql_conn *c, void *arg)
{
    struct mx__lk_read *r = arg;
    if (!c)
        return MX_EUNAVAIL;
    r->count = 0;
    r->liked = false;
    int rc = stored_count(c, r->ocid, &r->count);
    if (rc == 0 && r->account[0]) {
        struct mx_sql_val v[] = {MX_SQL_S(r->ocid), MX_SQL_S(r->account)};
        int64_t one = 0;
        bool found = false;
        rc = mx_mysql_query_int(c,
                                "SELECT 1 FROM character_like WHERE target_ocid = ?"
                                " AND liker_account_id = ? LIMIT 1",
                                v, 2, &one, &found);
        r->liked = found;
    }
    if (r->count < 0)
        r->count = 0;
    return rc;
}

static int warm_row(void *ctx, const struct mx_sql_val *cols, size_t n)
{
    struct mx__lk_warm *w = ctx;
    if (n < 1 || cols[0].kind == MX_SQL_NULL || cols[0].len == 0 ||
        cols[0].len > MX_LIKES_ACCOUNT_MAX)
        return 0; /* not an account id mx could have written: skip */
    if (w->nrows >= w->max_rows) {
        w->too_many = true;
        return 1;
    }
    if (w->nrows == w->caprows) {
        w->caprows = w->caprows ? w->caprows * 2 : 64;
        w->rows = realloc(w->rows, w->caprows * sizeof *w->rows);
        if (!w->rows)
            abort();
    }
    char *s = malloc(cols[0].len + 1);
    if (!s)
        abort();
    memcpy(s, cols[0].p, cols[0].len);
    s[cols[0].len] = '\0';
    w->rows[w->nrows++] = s;
    return 0;
}

int mx__lk_warm_job(struct mx_mysql_conn *c, void *arg)
{
    struct mx__lk_warm *w = arg;
    if (!c)
        return MX_EUNAVAIL;
    int rc = mx_mysql_begin(c); /* one snapshot for the count and the rows */
    if (rc != 0)
        return rc;
    rc = stored_count(c, w->ocid, &w->count);
    if (rc == 0) {
        struct mx_sql_val v[] = {MX_SQL_S(w->ocid), MX_SQL_I((int64_t)w->max_rows + 1)};
        rc = mx_mysql_query(c,
                            "SELECT liker_account_id FROM character_like WHERE target_ocid = ?"
                            " LIMIT ?",
                            v, 2, warm_row, w, NULL);
        if (rc == 1)
            rc = 0; /* stopped at the limit: too_many says so */
    }
    mx_mysql_rollback(c); /* read only */
    if (w->count < 0)
        w->count = 0;
    return rc;
}

void mx__lk_warm_free(struct mx__lk_warm *w)
{
    if (!w)
        return;
    for (uint32_t i = 0; i < w->nrows; i++)
        free(w->rows[i]);
    free(w->rows);
    free(w);
}

/* ---- batches ---- */

struct mx__lk_target *mx__lk_batch_target(struct mx__lk_batch *b, const char *ocid, size_t len)
{
    for (uint32_t i = b->nt; i-- > 0;)
        if (strlen(b->t[i].ocid) == len && memcmp(b->t[i].ocid, ocid, len) == 0)
            return &b->t[i];
    if (len > MX_LIKES_OCID_MAX)
        return NULL;
    if (b->nt == b->capt) {
        b->capt = b->capt ? b->capt * 2 : 16;
        b->t = realloc(b->t, b->capt * sizeof *b->t);
        if (!b->t)
            abort();
    }
    struct mx__lk_target *t = &b->t[b->nt++];
    memset(t, 0, sizeof *t);
    memcpy(t->ocid, ocid, len);
    return t;
}

void mx__lk_target_add(struct mx__lk_target *t, const char *acct, size_t len, bool like)
{
    char ***arr = like ? &t->like : &t->unlike;
    uint32_t *n = like ? &t->nlike : &t->nunlike, *cap = like ? &t->caplike : &t->capunlike;
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 8;
        *arr = realloc(*arr, *cap * sizeof **arr);
        if (!*arr)
            abort();
    }
    char *s = malloc(len + 1);
    if (!s)
        abort();
    memcpy(s, acct, len);
    s[len] = '\0';
    (*arr)[(*n)++] = s;
}

void mx__lk_batch_free(void *arg)
{
    struct mx__lk_batch *b = arg;
    if (!b)
        return;
    for (uint32_t i = 0; i < b->nt; i++) {
        for (uint32_t k = 0; k < b->t[i].nlike; k++)
            free(b->t[i].like[k]);
        for (uint32_t k = 0; k < b->t[i].nunlike; k++)
            free(b->t[i].unlike[k]);
        free(b->t[i].like);
        free(b->t[i].unlike);
    }
    free(b->t);
    free(b);
}

/* INSERT IGNORE or DELETE the accounts of one target, CHUNK at a time;
 * *changed gets the rows that really changed. */
static int apply_pairs(struct mx_mysql_conn *c, const char *ocid, char **acct, uint32_t n,
                       bool like, int64_t *changed)
{
    static _Thread_local struct mx_sql_val v[2 * CHUNK + 1]; /* 12 KiB: off the stack */
    for (uint32_t i = 0; i < n;) {
        int z = 0;
        while (sizes[z] > n - i)
            z++;
        uint32_t k = sizes[z];
        size_t nv = 0;
        if (!like)
            v[nv++] = MX_SQL_S(ocid);
        for (uint32_t j = 0; j < k; j++) {
            if (like)
                v[nv++] = MX_SQL_S(ocid);
            v[nv++] = MX_SQL_S(acct[i + j]);
        }
        uint64_t aff = 0;
        int rc = mx_mysql_exec(c, like ? sql_ins[z] : sql_del[z], v, nv, &aff);
        if (rc != 0)
            return rc;
        *changed += (int64_t)aff;
        i += k;
    }
    return 0;
}

/* One journal inside the pass's transaction. Its id is recorded first: a
 * batch committed before (its id already there) applies nothing. */
static int apply_batch(struct mx_mysql_conn *c, struct mx__lk_batch *b)
{
    struct mx_sql_val bv[] = {MX_SQL_S(b->batch_id), MX_SQL_I((int64_t)b->part),
                              MX_SQL_I((int64_t)b->seq), MX_SQL_I((int64_t)b->pairs)};
    uint64_t added = 0;
    int rc = mx_mysql_exec(c,
                           "INSERT IGNORE INTO like_sync_batch (batch_id, part, epoch, pairs)"
                           " VALUES (?, ?, ?, ?)",
                           bv, 4, &added);
    if (rc != 0)
        return rc;
    b->replay = added == 0;
    b->inserted = b->deleted = 0;
    if (b->replay)
        return 0; /* committed before: apply nothing */
    for (uint32_t i = 0; i < b->nt; i++) {
        struct mx__lk_target *t = &b->t[i];
        t->inserted = t->deleted = 0;
        if ((rc = apply_pairs(c, t->ocid, t->like, t->nlike, true, &t->inserted)) != 0 ||
            (rc = apply_pairs(c, t->ocid, t->unlike, t->nunlike, false, &t->deleted)) != 0)
            return rc;
        int64_t delta = t->inserted - t->deleted;
        b->inserted += t->inserted;
        b->deleted += t->deleted;
        if (delta == 0)
            continue;
        struct mx_sql_val uv[] = {MX_SQL_I(delta), MX_SQL_S(t->ocid)};
        uint64_t matched = 0;
        rc = mx_mysql_exec(c,
                           "UPDATE game_character SET like_count = GREATEST(0, like_count + ?)"
                           " WHERE ocid = ?",
                           uv, 2, &matched);
        if (rc != 0)
            return rc;
        if (matched == 0 && t->ign[0]) {
            /* the character was never stored (MySQL was down when it was
             * loaded): a row with its name and count, dated at the epoch so
             * the cache's next upsert fills in the rest */
            struct mx_sql_val iv[] = {MX_SQL_S(t->ign), MX_SQL_S(t->ocid), MX_SQL_I(delta)};
            rc = mx_mysql_exec(c,
                               "INSERT IGNORE INTO game_character"
                               " (user_ign, ocid, like_count, updated_at)"
                               " VALUES (?, ?, GREATEST(0, ?), FROM_UNIXTIME(1))",
                               iv, 3, NULL);
            if (rc != 0)
                return rc;
        }
    }
    return 0;
}

static int apply_pass(struct mx_mysql_conn *c, void *arg)
{
    struct mx__lk_pass *p = arg;
    int rc = 0;
    for (uint32_t i = 0; i < p->n && rc == 0; i++)
        rc = apply_batch(c, p->b[i]);
    if (rc == 0 && p->prune)
        rc = mx_mysql_exec(c,
                           "DELETE FROM like_sync_batch"
                           " WHERE created_at < NOW(3) - INTERVAL 7 DAY LIMIT 1000",
                           NULL, 0, NULL);
    return rc;
}

void mx__lk_pass_free(void *arg)
{
    struct mx__lk_pass *p = arg;
    if (!p)
        return;
    for (uint32_t i = 0; i < p->n; i++)
        mx__lk_batch_free(p->b[i]);
    free(p);
}

/* A batch's transaction holds the like-sync fence row until it commits. If
 * its process is paused (SIGSTOP, a stall) in the middle, the next holder's
 * commits would wait on that lock until the process resumes: the server
 * ends a connection idle inside a transaction for IDLE_TXN_S instead
 * (MariaDB's idle_transaction_timeout), which rolls it back. Set on every
 * commit (the pool's connections are shared and reconnect). */
#define IDLE_TXN_S 2

static void session_setup(struct mx_mysql_conn *c)
{
    static _Atomic bool warned;
    struct mx_sql_val v[] = {MX_SQL_I(IDLE_TXN_S)};
    int rc = mx_mysql_exec(c, "SET SESSION idle_transaction_timeout = ?", v, 1, NULL);
    /* relaxed: a one-time warning */
    if (rc != 0 && rc != MX_EUNAVAIL &&
        !atomic_exchange_explicit(&warned, true, memory_order_relaxed))
        MX_WARN("like-sync: idle_transaction_timeout not available (%s): a paused holder can "
                "stall its successor until it resumes",
                mx_mysql_error(c));
}

int mx__lk_commit_job(struct mx_mysql_conn *c, void *arg)
{
    struct mx__lk_pass *p = arg;
    if (!c)
        return MX_EUNAVAIL;
    pthread_once(&sql_once, build_sql);
    session_setup(c);
    return mx_mysql_fenced(c, MX_LIKES_SINGLETON, p->seq, apply_pass, p);
}

static int last_row(void *ctx, const struct mx_sql_val *cols, size_t n)
{
    struct mx__lk_last *l = ctx;
    if (n == 2 && cols[0].kind == MX_SQL_INT && cols[0].i >= 0 && cols[0].i < MX_LIKES_PARTITIONS &&
        cols[1].len < sizeof l->id[0]) {
        memcpy(l->id[cols[0].i], cols[1].p, cols[1].len);
        l->id[cols[0].i][cols[1].len] = '\0';
    }
    return 0;
}

int mx__lk_last_job(struct mx_mysql_conn *c, void *arg)
{
    struct mx__lk_last *l = arg;
    if (!c)
        return MX_EUNAVAIL;
    memset(l, 0, sizeof *l);
    return mx_mysql_query(c,
                          "SELECT b.part, b.batch_id FROM like_sync_batch b"
                          " JOIN (SELECT part, MAX(id) AS m FROM like_sync_batch GROUP BY part) x"
                          " ON b.id = x.m",
                          NULL, 0, last_row, l, NULL);
}
