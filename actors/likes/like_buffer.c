/* like_buffer.c - the like-buffer actors ("likes.<i>", one per scheduler).
 *
 * A like_req is answered from Redis when its target is warm: a toggle is
 * one script (relation, live count, pending pair, dirty mark) and the reply
 * leaves only after Redis acknowledged it. A cold target is loaded first
 * (every liker and the count from MySQL in one snapshot, staged into a
 * temporary set, then swapped in by a script that refuses if another node
 * loaded it meanwhile); one load per target per actor at a time, the other
 * requests for it wait on that load. Reads of a cold target, and reads
 * while Redis is down, answer from MySQL: a cold target has nothing
 * pending. Toggles while Redis cannot decide answer MX_EUNAVAIL: there is
 * no fallback that could count one twice.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "likes_int.h"
#include "mx_err.h"
#include "mx_list.h"
#include "mx_log.h"
#include "mx_proto.h"

#define MAX_JOBS 8192    /* requests in progress per actor */
#define MAX_WAITERS 4096 /* requests waiting on one warm load */
#define WARM_CHUNK 500   /* members per SADD while staging */

struct lb;

struct job {
    struct lb *lb;
    struct mx_msg *req; /* a shared copy of the request, for mx_reply */
    uint32_t op;
    uint32_t part;
    bool warmed; /* loaded once already: a second cold answer is an error */
    bool liked;  /* toggle done, waiting for WAIT: its answer */
    int64_t count;
    char ocid[MX_LIKES_OCID_MAX + 1];
    char acct[MX_LIKES_ACCOUNT_MAX + 1];
    char ign[MX_LIKES_IGN_MAX * 4 + 1];
    struct mx_list link; /* in lb->jobs */
    struct job *wnext;   /* waiters of a warm load */
};

struct warm_op {
    struct lb *lb;
    char ocid[MX_LIKES_OCID_MAX + 1];
    uint32_t part;
    struct job *waiters;
    uint32_t nwait;
    char stage[LK_KEY_MAX];
    struct warm_op *next;
};

struct lb {
    mx_actor_t *self;
    uint64_t gen; /* incarnation: completions of an earlier one are ignored */
    mx_redis_t *rd;
    mx_redis_script_t *s_toggle, *s_status, *s_warm;
    struct mx_list jobs; /* every request in progress (struct job.link) */
    uint32_t njobs;
    struct warm_op *warms;
    uint64_t nonce;
    struct job *wait_cur;  /* toggles the WAIT in flight covers (NULL: none in flight) */
    struct job *wait_next; /* toggles done since it was sent: the next WAIT's */
};

/* A MySQL pool job's argument. */
enum { DB_READ = 1, DB_WARM = 2 };
struct dbjob {
    int kind;
    uint64_t gen;
    struct job *j;      /* DB_READ */
    struct warm_op *wo; /* DB_WARM */
    struct mx__lk_read rd;
    struct mx__lk_warm *w;
};

static _Atomic uint64_t g_gen;

static void dbjob_free(void *arg)
{
    struct dbjob *d = arg;
    if (d->kind == DB_WARM)
        mx__lk_warm_free(d->w);
    free(d);
}

/* ---- jobs ---- */

static void job_free(struct job *j)
{
    struct lb *lb = j->lb;
    mx_list_remove(&j->link);
    lb->njobs--;
    mx_msg_free(j->req);
    free(j);
}

static void reply(struct lb *lb, const struct mx_msg *req, int status, bool liked, int64_t count,
                  int source)
{
    struct mx_m_like_rep r = {.status = status,
                              .liked = liked,
                              .count = count < 0 ? 0 : count,
                              .source = (uint64_t)source};
    struct mx_msg *m;
    if (mx_msg_encode(MX_T_like_rep, &r, &m) != 0)
        return;
    if (mx_reply(lb->self, req, m) != 0)
        mx_msg_free(m);
}

static void job_answer(struct job *j, int status, bool liked, int64_t count, int source)
{
    if (status == MX_EUNAVAIL)
        LK_INC(redis_failures);
    reply(j->lb, j->req, status, liked, count, source);
    job_free(j);
}

static void start_op(struct job *j);

/* ---- cold reads from MySQL ---- */

static int read_fn(struct mx_mysql_conn *c, void *arg)
{
    return mx__lk_read_job(c, &((struct dbjob *)arg)->rd);
}

static bool mysql_usable(void)
{
    return mx__likes_o.mysql && (!mx__likes_o.mysql_up || mx__likes_o.mysql_up());
}

static void read_mysql(struct job *j)
{
    struct lb *lb = j->lb;
    if (!mysql_usable()) {
        LK_INC(mysql_failures);
        job_answer(j, MX_EUNAVAIL, false, 0, 1);
        return;
    }
    struct dbjob *d = calloc(1, sizeof *d);
    if (!d)
        abort();
    d->kind = DB_READ;
    d->gen = lb->gen;
    d->j = j;
    snprintf(d->rd.ocid, sizeof d->rd.ocid, "%s", j->ocid);
    snprintf(d->rd.account, sizeof d->rd.account, "%s", j->acct);
    if (mx_mysql_submit(mx__likes_o.mysql, read_fn, d, dbjob_free, mx_self(lb->self), NULL) != 0) {
        free(d);
        LK_INC(mysql_failures);
        job_answer(j, MX_EUNAVAIL, false, 0, 1);
    }
}

/* ---- warm loads ---- */

static int warm_fn(struct mx_mysql_conn *c, void *arg)
{
    return mx__lk_warm_job(c, ((struct dbjob *)arg)->w);
}

static void warm_end(struct lb *lb, struct warm_op *wo, int status)
{
    for (struct warm_op **pp = &lb->warms; *pp; pp = &(*pp)->next)
        if (*pp == wo) {
            *pp = wo->next;
            break;
        }
    struct job *w = wo->waiters;
    free(wo);
    while (w) {
        struct job *next = w->wnext;
        w->wnext = NULL;
        if (status == 0) {
            w->warmed = true;
            start_op(w);
        } else {
            job_answer(w, status, false, 0, 0);
        }
        w = next;
    }
}

static void warm_done(mx_redis_t *rd, int status, const redisReply *rep, void *arg)
{
    struct warm_op *wo = arg;
    int st = MX_EUNAVAIL;
    if (status == 0 && rep->type == REDIS_REPLY_INTEGER && rep->integer >= 0) {
        st = 0;
        if (rep->integer == 1)
            LK_INC(warms);
    } else {
        LK_INC(warm_failures);
        if (status == 0)
            MX_WARN("likes: loading %s into Redis failed: the staged set was incomplete", wo->ocid);
    }
    warm_end(wo->lb, wo, status == MX_ESTOPPED ? MX_EUNAVAIL : st);
}

/* Stage the likers (MySQL's answer) and swap them in. */
static void warm_stage(struct lb *lb, struct warm_op *wo, struct mx__lk_warm *w)
{
    snprintf(wo->stage, sizeof wo->stage, "%s{lk%u}:w:%s:%llx.%llx", mx__likes_prefix, wo->part,
             wo->ocid, (unsigned long long)lb->gen, (unsigned long long)++lb->nonce);
    const char *argv[WARM_CHUNK + 2];
    for (uint32_t i = 0; i < w->nrows; i += WARM_CHUNK) {
        uint32_t k = w->nrows - i < WARM_CHUNK ? w->nrows - i : WARM_CHUNK;
        argv[0] = "SADD";
        argv[1] = wo->stage;
        for (uint32_t x = 0; x < k; x++)
            argv[2 + x] = w->rows[i + x];
        /* a lost SADD is caught by the member count the swap checks */
        mx_redis_argv(lb->rd, NULL, NULL, (int)k + 2, argv, NULL);
    }
    if (w->nrows)
        mx_redis_command(lb->rd, NULL, NULL, "PEXPIRE %s 60000", wo->stage);
    char r[LK_KEY_MAX], n[LK_KEY_MAX], p[LK_KEY_MAX], j[LK_KEY_MAX], cnt[24], exp[24];
    mx__likes_tkey(r, sizeof r, wo->part, "r", wo->ocid);
    mx__likes_key(n, sizeof n, wo->part, "n");
    mx__likes_tkey(p, sizeof p, wo->part, "p", wo->ocid);
    mx__likes_key(j, sizeof j, wo->part, "j");
    snprintf(cnt, sizeof cnt, "%lld", (long long)w->count);
    snprintf(exp, sizeof exp, "%u", w->nrows);
    const char *a[] = {r, n, wo->stage, p, j, wo->ocid, cnt, exp};
    LK_ADD(warm_rows, w->nrows);
    if (mx_redis_eval(lb->rd, lb->s_warm, warm_done, wo, 5, 8, a, NULL) != 0) {
        LK_INC(warm_failures);
        warm_end(lb, wo, MX_EUNAVAIL);
    }
}

static void warm(struct job *j)
{
    struct lb *lb = j->lb;
    for (struct warm_op *wo = lb->warms; wo; wo = wo->next)
        if (strcmp(wo->ocid, j->ocid) == 0) {
            if (wo->nwait >= MAX_WAITERS) {
                LK_INC(refused);
                job_answer(j, MX_EFULL, false, 0, 0);
                return;
            }
            j->wnext = wo->waiters;
            wo->waiters = j;
            wo->nwait++;
            return;
        }
    if (!mysql_usable()) {
        LK_INC(mysql_failures);
        job_answer(j, MX_EUNAVAIL, false, 0, 0);
        return;
    }
    struct warm_op *wo = calloc(1, sizeof *wo);
    struct dbjob *d = calloc(1, sizeof *d);
    if (!wo || !d)
        abort();
    wo->lb = lb;
    snprintf(wo->ocid, sizeof wo->ocid, "%s", j->ocid);
    wo->part = j->part;
    wo->waiters = j;
    wo->nwait = 1;
    d->kind = DB_WARM;
    d->gen = lb->gen;
    d->wo = wo;
    d->w = calloc(1, sizeof *d->w);
    if (!d->w)
        abort();
    snprintf(d->w->ocid, sizeof d->w->ocid, "%s", j->ocid);
    d->w->max_rows = mx__likes_o.warm_max_rows;
    if (mx_mysql_submit(mx__likes_o.mysql, warm_fn, d, dbjob_free, mx_self(lb->self), NULL) != 0) {
        dbjob_free(d);
        free(wo);
        LK_INC(mysql_failures);
        job_answer(j, MX_EUNAVAIL, false, 0, 0);
        return;
    }
    wo->next = lb->warms;
    lb->warms = wo;
}

/* ---- Redis operations ---- */

/* MX_REDIS_WAIT_REPLICAS=1: a toggle is answered only once a replica has
 * it, so a failover to that replica keeps it (docs/likes.md). WAIT blocks
 * the connection, and one WAIT covers every write sent on it before, so
 * toggles finishing while a WAIT is out share the next one (at most two on
 * the wire), and a master without replicas (the toggle script says) is
 * answered at once instead of holding the connection for the timeout. */
static void wait_answer(struct job *list, int status)
{
    while (list) {
        struct job *next = list->wnext;
        list->wnext = NULL;
        if (status == 0) {
            job_answer(list, 0, list->liked, list->count, 0);
        } else {
            /* applied on the master, not known to be anywhere else: a failover
             * may lose it, so it is not acknowledged (the status route tells) */
            LK_INC(wait_unacked);
            job_answer(list, status, false, 0, 0);
        }
        list = next;
    }
}

static void wait_send(struct lb *lb);

static void wait_done(mx_redis_t *rd, int status, const redisReply *rep, void *arg)
{
    struct lb *lb = arg;
    (void)rd;
    struct job *batch = lb->wait_cur;
    lb->wait_cur = NULL;
    bool acked = status == 0 && rep->type == REDIS_REPLY_INTEGER && rep->integer >= 1;
    wait_answer(batch, acked ? 0 : MX_EUNAVAIL);
    if (status == MX_ESTOPPED) {
        wait_answer(lb->wait_next, MX_EUNAVAIL);
        lb->wait_next = NULL;
    } else if (lb->wait_next) {
        wait_send(lb);
    }
}

static void wait_send(struct lb *lb)
{
    uint32_t ms = mx__likes_o.redis_timeout_ms / 2;
    char mss[16];
    snprintf(mss, sizeof mss, "%u", ms ? ms : 1);
    const char *a[] = {"WAIT", "1", mss};
    lb->wait_cur = lb->wait_next;
    lb->wait_next = NULL;
    int rc = mx_redis_argv_timeout(lb->rd, mx__likes_o.redis_timeout_ms, wait_done, lb, 3, a, NULL);
    if (rc != 0) {
        struct job *batch = lb->wait_cur;
        lb->wait_cur = NULL;
        wait_answer(batch, rc == MX_EFULL ? MX_EFULL : MX_EUNAVAIL);
    }
}

static void wait_replica(struct job *j, bool liked, int64_t count, long long replicas)
{
    struct lb *lb = j->lb;
    j->liked = liked;
    j->count = count;
    if (replicas < 1) {
        wait_answer(j, MX_EUNAVAIL);
        return;
    }
    j->wnext = lb->wait_next;
    lb->wait_next = j;
    if (!lb->wait_cur)
        wait_send(lb);
}

static void op_done(mx_redis_t *rd, int status, const redisReply *rep, void *arg)
{
    struct job *j = arg;
    if (status == MX_ESTOPPED) {
        job_answer(j, MX_EUNAVAIL, false, 0, 0);
        return;
    }
    if (status != 0 || rep->type != REDIS_REPLY_ARRAY || rep->elements < 2 ||
        rep->element[0]->type != REDIS_REPLY_INTEGER ||
        rep->element[1]->type != REDIS_REPLY_INTEGER) {
        if (status == 0 || status == MX_EIO)
            MX_WARN("likes: unexpected answer from Redis for %s: %s", j->ocid,
                    status == MX_EIO && rep && rep->str ? rep->str : "wrong shape");
        /* a read can still be answered from MySQL; a toggle may or may not
         * have run: say unavailable (the status route tells the truth) */
        if (j->op == MX_LIKE_STATUS && status != 0 && status != MX_EIO)
            read_mysql(j);
        else
            job_answer(j, MX_EUNAVAIL, false, 0, 0);
        return;
    }
    long long v = rep->element[0]->integer, n = rep->element[1]->integer;
    if (v < 0) { /* cold */
        if (j->op == MX_LIKE_STATUS)
            read_mysql(j);
        else if (j->warmed)
            job_answer(j, MX_EUNAVAIL, false, 0, 0); /* loaded then gone: Redis lost it */
        else
            warm(j);
        return;
    }
    if (j->op == MX_LIKE_TOGGLE) {
        LK_INC(toggles);
        if (v)
            LK_INC(likes);
        else
            LK_INC(unlikes);
        if (mx__likes_o.wait_replicas) {
            bool has = rep->elements >= 3 && rep->element[2]->type == REDIS_REPLY_INTEGER;
            wait_replica(j, v == 1, n, has ? rep->element[2]->integer : 0);
            return;
        }
    } else {
        LK_INC(status_redis);
    }
    job_answer(j, 0, v == 1, n, 0);
}

static void start_op(struct job *j)
{
    struct lb *lb = j->lb;
    if (!mx_redis_connected(lb->rd)) {
        if (j->op == MX_LIKE_STATUS)
            read_mysql(j);
        else
            job_answer(j, MX_EUNAVAIL, false, 0, 0);
        return;
    }
    char r[LK_KEY_MAX], n[LK_KEY_MAX], p[LK_KEY_MAX], d[LK_KEY_MAX], ign[LK_KEY_MAX], t[LK_KEY_MAX];
    char now[24];
    mx__likes_tkey(r, sizeof r, j->part, "r", j->ocid);
    mx__likes_key(n, sizeof n, j->part, "n");
    int rc;
    if (j->op == MX_LIKE_TOGGLE) {
        mx__likes_tkey(p, sizeof p, j->part, "p", j->ocid);
        mx__likes_key(d, sizeof d, j->part, "d");
        mx__likes_key(ign, sizeof ign, j->part, "ign");
        mx__likes_key(t, sizeof t, j->part, "t");
        snprintf(now, sizeof now, "%llu", (unsigned long long)mx_unix_ms());
        const char *a[] = {r,
                           n,
                           p,
                           d,
                           ign,
                           t,
                           j->ocid,
                           j->acct,
                           j->ign,
                           now,
                           mx__likes_o.wait_replicas ? "1" : "0"};
        rc = mx_redis_eval(lb->rd, lb->s_toggle, op_done, j, 6, 11, a, NULL);
    } else {
        const char *a[] = {r, n, j->ocid, j->acct};
        rc = mx_redis_eval(lb->rd, lb->s_status, op_done, j, 2, 4, a, NULL);
    }
    if (rc != 0) {
        if (j->op == MX_LIKE_STATUS)
            read_mysql(j);
        else
            job_answer(j, rc == MX_EFULL ? MX_EFULL : MX_EUNAVAIL, false, 0, 0);
    }
}

/* ---- the actor ---- */

static int copy_str(char *out, size_t cap, struct mx_str s)
{
    if (s.len >= cap)
        return MX_EINVAL;
    memcpy(out, s.ptr, s.len);
    out[s.len] = '\0';
    return 0;
}

static void on_request(struct lb *lb, struct mx_msg *m)
{
    struct mx_m_like_req q;
    if (mx_msg_decode(m, &q) != 0 || (q.op != MX_LIKE_TOGGLE && q.op != MX_LIKE_STATUS) ||
        !mx_likes_valid_ocid(q.ocid.ptr, q.ocid.len) ||
        (q.account.len && !mx_likes_valid_account(q.account.ptr, q.account.len)) ||
        (q.op == MX_LIKE_TOGGLE && !q.account.len) || q.ign.len > MX_LIKES_IGN_MAX * 4 ||
        memchr(q.ign.ptr, '\0', q.ign.len)) {
        LK_INC(refused);
        reply(lb, m, MX_EINVAL, false, 0, 0);
        return;
    }
    if (lb->njobs >= MAX_JOBS) {
        LK_INC(refused);
        reply(lb, m, MX_EFULL, false, 0, 0);
        return;
    }
    struct job *j = calloc(1, sizeof *j);
    if (!j)
        abort();
    j->lb = lb;
    j->req = mx_msg_share(m);
    j->op = (uint32_t)q.op;
    copy_str(j->ocid, sizeof j->ocid, q.ocid);
    copy_str(j->acct, sizeof j->acct, q.account);
    copy_str(j->ign, sizeof j->ign, q.ign);
    j->part = mx_likes_partition(j->ocid, q.ocid.len);
    mx_list_push_front(&lb->jobs, &j->link);
    lb->njobs++;
    start_op(j);
}

static void on_db_done(struct lb *lb, struct mx_msg *m)
{
    struct mx_m_store_job_done d;
    struct dbjob *dj = m->ptr;
    if (!dj || mx_msg_decode(m, &d) != 0 || dj->gen != lb->gen)
        return; /* an earlier incarnation's job: its requests were answered at stop */
    if (dj->kind == DB_READ) {
        struct job *j = dj->j;
        if (d.status != 0) {
            LK_INC(mysql_failures);
            job_answer(j, MX_EUNAVAIL, false, 0, 1);
            return;
        }
        LK_INC(status_mysql);
        job_answer(j, 0, dj->rd.liked, dj->rd.count, 1);
        return;
    }
    struct warm_op *wo = dj->wo;
    if (d.status != 0 || dj->w->too_many) {
        LK_INC(warm_failures);
        if (dj->w->too_many)
            MX_ERROR("likes: %s has more than MX_LIKE_WARM_MAX_ROWS (%u) likers; not loaded",
                     wo->ocid, dj->w->max_rows);
        else
            LK_INC(mysql_failures);
        warm_end(lb, wo, MX_EUNAVAIL);
        return;
    }
    if (!mx_redis_connected(lb->rd)) {
        warm_end(lb, wo, MX_EUNAVAIL);
        return;
    }
    warm_stage(lb, wo, dj->w);
}

static int lb_init(mx_actor_t *self, void *arg, void **state)
{
    struct lb *lb = calloc(1, sizeof *lb);
    if (!lb)
        abort();
    lb->self = self;
    mx_list_init(&lb->jobs);
    /* relaxed: only uniqueness matters */
    lb->gen = atomic_fetch_add_explicit(&g_gen, 1, memory_order_relaxed) + 1;
    struct mx_redis_opts ro = {
        .name = "redis-likes", .timeout_ms = mx__likes_o.redis_timeout_ms, .max_pending = 4096};
    int rc = mx_redis_open(mx_actor_loop(self), mx__likes_o.redis_url, &ro, &lb->rd);
    if (rc != 0) {
        MX_ERROR("MX_REDIS_URL: likes cannot use it: %s", mx_strerror(rc));
        free(lb);
        return rc;
    }
    if ((rc = mx_redis_script(lb->rd, mx__lk_toggle_lua, &lb->s_toggle)) != 0 ||
        (rc = mx_redis_script(lb->rd, mx__lk_status_lua, &lb->s_status)) != 0 ||
        (rc = mx_redis_script(lb->rd, mx__lk_warm_lua, &lb->s_warm)) != 0) {
        mx_redis_close(lb->rd, NULL, NULL);
        free(lb);
        return rc;
    }
    *state = lb;
    return 0;
}

static int lb_receive(mx_actor_t *self, void *state, struct mx_msg *m)
{
    struct lb *lb = state;
    if (m->env.type == MX_T_like_req)
        on_request(lb, m);
    else if (m->env.type == MX_T_store_job_done)
        on_db_done(lb, m);
    return 0;
}

static void lb_stop(mx_actor_t *self, void *state)
{
    struct lb *lb = state;
    /* Redis callbacks answer their requests (MX_ESTOPPED) during close;
     * what waits on MySQL or on a warm load is answered here */
    mx_redis_close(lb->rd, NULL, NULL);
    while (lb->warms) {
        struct warm_op *wo = lb->warms;
        lb->warms = wo->next;
        struct job *w = wo->waiters;
        free(wo);
        while (w) {
            struct job *next = w->wnext;
            job_answer(w, MX_EUNAVAIL, false, 0, 0);
            w = next;
        }
    }
    struct job *j;
    while ((j = mx_list_first(&lb->jobs, struct job, link)))
        job_answer(j, MX_EUNAVAIL, false, 0, 0);
    free(lb);
}

static const struct mx_behaviour lb_beh = {"like-buffer", lb_init, lb_receive, lb_stop};

int mx_likes_start(mx_system_t *sys, const struct mx_likes_opts *opts)
{
    mx_likes_register_metrics();
    mx__likes_o = *opts;
    if (!mx__likes_o.cluster || !mx__likes_o.cluster[0])
        mx__likes_o.cluster = "mx";
    if (!mx__likes_o.redis_timeout_ms)
        mx__likes_o.redis_timeout_ms = 1000;
    if (!mx__likes_o.sync_interval_ms)
        mx__likes_o.sync_interval_ms = 1000;
    if (!mx__likes_o.sync_batch)
        mx__likes_o.sync_batch = 2000;
    if (!mx__likes_o.warm_max_rows)
        mx__likes_o.warm_max_rows = 500000;
    snprintf(mx__likes_prefix, sizeof mx__likes_prefix, "mx:%s:", mx__likes_o.cluster);
    if (!mx__likes_o.redis_url || !mx__likes_o.redis_url[0])
        return MX_EINVAL;
    int n = mx_system_schedulers(sys);
    for (int i = 0; i < n; i++) {
        struct mx_spawn_opts so = MX_SPAWN_OPTS_DEFAULT;
        char name[32];
        snprintf(name, sizeof name, "likes.%d", i);
        so.sched = i;
        so.name = name;
        so.cap_msgs = 65536;
        int rc = mx_spawn(sys, &lb_beh, NULL, &so, NULL);
        if (rc != 0)
            return rc;
    }
    return 0;
}
