/* like_sync.c - the like-sync singleton: pending pairs from Redis into MySQL.
 *
 * Every sync_interval_ms (BUSY_GAP_MS after the last pass while passes move
 * work) the holder makes a pass. In each of the 16 partitions, side by
 * side, the take script either returns the journal left by an earlier pass
 * or holder or moves up to sync_batch pending pairs, oldest targets first,
 * into a fresh journal named by a batch id "<epoch>.<partition>.<n>.<nonce>",
 * which is read. Then every journal of the pass is committed to MySQL in
 * ONE fenced transaction that records their batch ids, and only then each
 * is deleted by a script that deletes nothing but that batch's journal. So:
 * - killed before the commit: the journal stays; the next holder commits it;
 * - killed after the commit, before the delete: the next holder's commit
 *   finds the batch id recorded, applies nothing and deletes the journal;
 * - a deposed holder that wakes up: its commit is refused by the fence (or,
 *   if no newer holder wrote yet, is simply the commit of that journal).
 * One transaction a pass keeps the lag about one pass even though every
 * fenced commit serialises on the fence row. While mysql-health says MySQL is down the pass is
 * skipped: Redis keeps the pairs, and nothing is lost.
 *
 * Redis callbacks run outside the singleton's handler, where its lease
 * cannot be checked (mx_singleton_valid is false there), so each step that
 * acts goes back through the mailbox - and the lease wrapper - first: a
 * sys_tick whose seq carries the step and the partition.
 */
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "likes_int.h"
#include "mx_err.h"
#include "mx_log.h"
#include "mx_proto.h"

#define CHECK_EVERY_MS 30000 /* the Redis-lost-writes check also runs this often */
#define BUSY_GAP_MS 100      /* between passes while they move work */
#define IDLE_EVERY_MS 10000  /* how often idle characters are looked for */
#define IDLE_MAX 200         /* characters unloaded per partition per look */

/* sys_tick seq: step | partition << 8 */
enum {
    TICK = 0,        /* the pass timer */
    PAUSE = 1,       /* tests only: the journal-to-commit window ended */
    CONT_COMMIT = 4, /* every partition is read: commit the pass */
    CONT_PASS = 5,   /* the last pass moved work: start the next one now */
};

struct ls;

struct part {
    struct ls *s;
    uint32_t k;
    bool running;             /* still taking or reading in this pass */
    bool committed;           /* its journal was in the pass's commit: delete it */
    struct mx__lk_batch *cur; /* read, not yet handed to MySQL; owned here */
    char id[96];
    int64_t oldest;
};

struct ls {
    mx_actor_t *self;
    mx_redis_t *rd;
    mx_redis_script_t *s_take, *s_finish, *s_check, *s_idle;
    int64_t idle_ms; /* mx_now_ms of the last look for idle characters */
    uint64_t seq;    /* lease counter: the fence epoch */
    uint64_t nbatch; /* batches started by this holder */
    bool busy;       /* a pass (or the check) is running */
    bool mysql_down_logged;
    uint32_t running;   /* partitions still taking or reading in this pass */
    uint32_t finishing; /* journals still being deleted */
    bool pass_failed;
    uint64_t pend_sum, jopen;
    char nonce[16]; /* random per holder term: batch ids never repeat, even when
                       Redis (which counts the epochs) lost writes */
    bool check_due; /* compare Redis with MySQL's last batches before the next pass */
    bool in_check;  /* the next store_job_done is the check's MySQL read */
    int64_t checked_ms;
    int check_left;
    uint64_t check_unloaded;
    struct part parts[MX_LIKES_PARTITIONS];
};

static void send_tick(struct ls *s, uint32_t what, uint32_t k)
{
    struct mx_m_sys_tick t = {.seq = what | (uint64_t)k << 8};
    struct mx_msg *m;
    if (mx_msg_encode(MX_T_sys_tick, &t, &m) != 0)
        abort();
    if (mx_send(s->self, mx_self(s->self), m) != 0) {
        /* a full mailbox: this pass ends here and the next one retries */
        mx_msg_free(m);
        LK_INC(sync_failures);
        s->busy = false;
    }
}

static void pass_end(struct ls *s)
{
    s->busy = false;
    for (uint32_t k = 0; k < MX_LIKES_PARTITIONS; k++)
        if (s->parts[k].cur) {
            mx__lk_batch_free(s->parts[k].cur); /* its journal stays in Redis */
            s->parts[k].cur = NULL;
        }
    if (s->pass_failed)
        return;
    LK_SET(pending_targets, s->pend_sum);
    LK_SET(journals_open, s->jopen);
    /* under load the next pass starts after BUSY_GAP_MS instead of the
     * interval: the lag is one pass plus that, and the gap lets pairs
     * gather into larger batches */
    if (s->jopen) {
        struct mx_m_sys_tick t = {.seq = CONT_PASS};
        struct mx_msg *m;
        uint64_t id;
        uint32_t gap =
            mx__likes_o.sync_interval_ms < BUSY_GAP_MS ? mx__likes_o.sync_interval_ms : BUSY_GAP_MS;
        if (mx_msg_encode(MX_T_sys_tick, &t, &m) == 0 &&
            mx_timer_start(s->self, gap, 0, m, &id) != 0)
            mx_msg_free(m);
    }
}

/* Partition p is read (p->cur holds its journal) or has nothing this pass. */
static void part_ready(struct part *p)
{
    struct ls *s = p->s;
    if (!p->running)
        return;
    p->running = false;
    if (--s->running > 0)
        return;
    bool any = false;
    for (uint32_t k = 0; k < MX_LIKES_PARTITIONS; k++)
        any |= s->parts[k].cur != NULL;
    if (!any) {
        pass_end(s);
        return;
    }
    if (mx__likes_o.sync_pause_ms) {
        /* tests only: the window between journal and commit, held open */
        struct mx_m_sys_tick t = {.seq = PAUSE};
        struct mx_msg *m;
        uint64_t id;
        if (mx_msg_encode(MX_T_sys_tick, &t, &m) == 0 &&
            mx_timer_start(s->self, mx__likes_o.sync_pause_ms, 0, m, &id) != 0) {
            mx_msg_free(m);
            pass_end(s);
        }
        return;
    }
    send_tick(s, CONT_COMMIT, 0);
}

static void fail(struct part *p, const char *what, int status)
{
    LK_INC(sync_failures);
    MX_WARN("like-sync: %s failed (%s); partition %u retried next pass", what, mx_strerror(status),
            p->k);
    p->s->pass_failed = true;
    if (p->cur) {
        mx__lk_batch_free(p->cur);
        p->cur = NULL;
    }
    part_ready(p);
}

static void finished(mx_redis_t *rd, int status, const redisReply *rep, void *arg)
{
    struct part *p = arg;
    struct ls *s = p->s;
    if (status == MX_ESTOPPED)
        return;
    if (status != 0) {
        LK_INC(sync_failures);
        MX_WARN("like-sync: deleting journal %s failed (%s); the next pass finds it committed",
                p->id, mx_strerror(status));
        s->pass_failed = true;
    }
    if (--s->finishing == 0)
        pass_end(s);
}

/* Every partition is read: commit the pass. Inside the handler. */
static void commit(struct ls *s)
{
    if (!mx_singleton_valid()) {
        pass_end(s);
        return;
    }
    struct mx__lk_pass *ps = calloc(1, sizeof *ps);
    if (!ps)
        abort();
    ps->seq = s->seq;
    ps->prune = s->nbatch % 256 < MX_LIKES_PARTITIONS && s->nbatch > MX_LIKES_PARTITIONS;
    for (uint32_t k = 0; k < MX_LIKES_PARTITIONS; k++) {
        struct part *p = &s->parts[k];
        p->committed = false;
        if (p->cur) {
            ps->b[ps->n++] = p->cur; /* owned by the job from here */
            p->cur = NULL;
            p->committed = true;
        }
    }
    if (ps->n == 0) { /* already handed over (a repeated tick) */
        free(ps);
        return;
    }
    if (mx_mysql_submit(mx__likes_o.mysql, mx__lk_commit_job, ps, mx__lk_pass_free,
                        mx_self(s->self), NULL) != 0) {
        mx__lk_pass_free(ps);
        LK_INC(sync_failures);
        MX_WARN("like-sync: the MySQL queue is full; the pass's journals wait for the next one");
        s->pass_failed = true;
        pass_end(s);
    }
}

static void igns_read(mx_redis_t *rd, int status, const redisReply *rep, void *arg)
{
    struct part *p = arg;
    if (status == MX_ESTOPPED)
        return;
    struct mx__lk_batch *b = p->cur;
    if (status != 0 || rep->type != REDIS_REPLY_ARRAY || rep->elements != b->nt) {
        fail(p, "reading target names", status ? status : MX_EDECODE);
        return;
    }
    for (uint32_t i = 0; i < b->nt; i++) {
        const redisReply *e = rep->element[i];
        if (e->type == REDIS_REPLY_STRING && e->len < sizeof b->t[i].ign &&
            !memchr(e->str, '\0', e->len)) {
            memcpy(b->t[i].ign, e->str, e->len);
            b->t[i].ign[e->len] = '\0';
        }
    }
    part_ready(p);
}

static void journal_read(mx_redis_t *rd, int status, const redisReply *rep, void *arg)
{
    struct part *p = arg;
    struct ls *s = p->s;
    if (status == MX_ESTOPPED)
        return;
    if (status != 0 || rep->type != REDIS_REPLY_ARRAY || rep->elements % 2) {
        fail(p, "reading the journal", status ? status : MX_EDECODE);
        return;
    }
    struct mx__lk_batch *b = calloc(1, sizeof *b);
    if (!b)
        abort();
    snprintf(b->batch_id, sizeof b->batch_id, "%s", p->id);
    b->part = p->k;
    b->seq = s->seq;
    b->oldest_ms = p->oldest;
    p->cur = b;
    uint32_t bad = 0;
    for (size_t i = 0; i < rep->elements; i += 2) {
        const redisReply *k = rep->element[i], *v = rep->element[i + 1];
        const char *bar = k->type == REDIS_REPLY_STRING ? memchr(k->str, '|', k->len) : NULL;
        if (!bar || v->type != REDIS_REPLY_STRING || v->len != 1 ||
            (v->str[0] != '0' && v->str[0] != '1')) {
            bad++;
            continue;
        }
        size_t tl = (size_t)(bar - k->str), al = k->len - tl - 1;
        if (!mx_likes_valid_ocid(k->str, tl) || !mx_likes_valid_account(bar + 1, al)) {
            bad++;
            continue;
        }
        struct mx__lk_target *t = mx__lk_batch_target(b, k->str, tl);
        mx__lk_target_add(t, bar + 1, al, v->str[0] == '1');
        b->pairs++;
    }
    if (bad)
        MX_ERROR("like-sync: journal %s holds %u entries mx did not write; skipped", b->batch_id,
                 bad);
    if (b->nt == 0) {
        part_ready(p); /* nothing usable: the empty batch is committed to close the journal */
        return;
    }
    char ign[LK_KEY_MAX];
    mx__likes_key(ign, sizeof ign, p->k, "ign");
    const char **argv = malloc((b->nt + 2) * sizeof *argv);
    if (!argv)
        abort();
    argv[0] = "HMGET";
    argv[1] = ign;
    for (uint32_t i = 0; i < b->nt; i++)
        argv[2 + i] = b->t[i].ocid;
    int rc = mx_redis_argv(s->rd, igns_read, p, (int)b->nt + 2, argv, NULL);
    free(argv);
    if (rc != 0)
        fail(p, "reading target names", rc);
}

static void taken(mx_redis_t *rd, int status, const redisReply *rep, void *arg)
{
    struct part *p = arg;
    struct ls *s = p->s;
    if (status == MX_ESTOPPED)
        return;
    if (status != 0 || rep->type != REDIS_REPLY_ARRAY || rep->elements != 4 ||
        rep->element[0]->type != REDIS_REPLY_INTEGER) {
        fail(p, "taking a batch", status ? status : MX_EDECODE);
        return;
    }
    long long code = rep->element[0]->integer;
    if (code == 0) {
        part_ready(p);
        return;
    }
    if (rep->element[3]->type == REDIS_REPLY_INTEGER)
        s->pend_sum += (uint64_t)rep->element[3]->integer;
    const redisReply *id = rep->element[1], *old = rep->element[2];
    if (id->type != REDIS_REPLY_STRING || id->len == 0 || id->len >= sizeof p->id) {
        fail(p, "taking a batch", MX_EDECODE);
        return;
    }
    memcpy(p->id, id->str, id->len);
    p->id[id->len] = '\0';
    p->oldest = old->type == REDIS_REPLY_STRING ? strtoll(old->str, NULL, 10) : 0;
    s->jopen++;
    if (code == 2)
        MX_INFO("like-sync: finishing journal %s left in partition %u", p->id, p->k);
    char j[LK_KEY_MAX];
    mx__likes_key(j, sizeof j, p->k, "j");
    int rc = mx_redis_command(s->rd, journal_read, p, "HGETALL %s", j);
    if (rc != 0)
        fail(p, "reading the journal", rc);
}

/* Take partition p's batch. Inside the handler. */
static void step(struct part *p)
{
    struct ls *s = p->s;
    char d[LK_KEY_MAX], j[LK_KEY_MAX], jid[LK_KEY_MAX], jt[LK_KEY_MAX], pp[LK_KEY_MAX];
    char max[16], id[96];
    mx__likes_key(d, sizeof d, p->k, "d");
    mx__likes_key(j, sizeof j, p->k, "j");
    mx__likes_key(jid, sizeof jid, p->k, "jid");
    mx__likes_key(jt, sizeof jt, p->k, "jt");
    mx__likes_pprefix(pp, sizeof pp, p->k);
    snprintf(max, sizeof max, "%u", mx__likes_o.sync_batch);
    snprintf(id, sizeof id, "%llu.%u.%llu.%s", (unsigned long long)s->seq, p->k,
             (unsigned long long)++s->nbatch, s->nonce);
    const char *a[] = {d, j, jid, jt, pp, max, id};
    int rc = mx_redis_eval(s->rd, s->s_take, taken, p, 4, 7, a, NULL);
    if (rc != 0)
        fail(p, "taking a batch", rc);
}

static void on_commit_done(struct ls *s, struct mx_msg *m)
{
    struct mx_m_store_job_done d;
    struct mx__lk_pass *ps = m->ptr;
    if (!ps || mx_msg_decode(m, &d) != 0)
        return;
    if (d.status == MX_ESTALE) {
        LK_INC(sync_stale);
        MX_WARN("like-sync: a pass of %u batches refused by the MySQL fence: a newer holder "
                "took over (epoch %llu); stopping",
                ps->n, (unsigned long long)s->seq);
        mx_exit(s->self);
        return;
    }
    if (d.status != 0) {
        LK_INC(sync_failures);
        MX_WARN("like-sync: the MySQL commit of %u batches failed (%s); retried next pass", ps->n,
                mx_strerror((int)d.status));
        s->pass_failed = true;
        pass_end(s);
        return;
    }
    int64_t now = (int64_t)mx_unix_ms();
    for (uint32_t i = 0; i < ps->n; i++) {
        struct mx__lk_batch *b = ps->b[i];
        if (b->replay) {
            LK_INC(sync_replays);
            MX_INFO("like-sync: batch %s was committed before; deleting its journal", b->batch_id);
            continue;
        }
        LK_INC(sync_batches);
        LK_ADD(sync_pairs, b->pairs);
        LK_ADD(sync_inserted, (uint64_t)b->inserted);
        LK_ADD(sync_deleted, (uint64_t)b->deleted);
        int64_t lag = b->oldest_ms > 0 && now > b->oldest_ms ? now - b->oldest_ms : 0;
        LK_SET(sync_last_lag_ms, lag);
        LK_ADD(sync_lag_sum_ms, (uint64_t)lag);
        int bk = 0;
        while (bk < 7 && lag > (int64_t)mx_likes_lag_bounds_ms[bk])
            bk++;
        LK_INC(sync_lag_buckets[bk]);
    }
    LK_SET(sync_last_at_ms, now);
    if (!mx_singleton_valid()) {
        pass_end(s);
        return;
    }
    s->finishing = 1; /* held while the deletes are sent */
    for (uint32_t k = 0; k < MX_LIKES_PARTITIONS; k++) {
        struct part *p = &s->parts[k];
        if (!p->committed)
            continue;
        p->committed = false;
        char j[LK_KEY_MAX], jid[LK_KEY_MAX], jt[LK_KEY_MAX], hw[LK_KEY_MAX];
        mx__likes_key(j, sizeof j, k, "j");
        mx__likes_key(jid, sizeof jid, k, "jid");
        mx__likes_key(jt, sizeof jt, k, "jt");
        mx__likes_key(hw, sizeof hw, k, "hw");
        const char *a[] = {j, jid, jt, hw, p->id};
        if (mx_redis_eval(s->rd, s->s_finish, finished, p, 4, 5, a, NULL) == 0)
            s->finishing++;
        else
            s->pass_failed = true;
    }
    if (--s->finishing == 0)
        pass_end(s);
}

/* ---- idle characters leave Redis (mx__lk_idle_lua) ----
 * Unloading is safe at any time (a load applies the journal and pending
 * pairs on top of MySQL), so this needs no lease; it bounds Redis's memory
 * by the characters toggled within MX_LIKE_IDLE_S. */

static void unloaded(mx_redis_t *rd, int status, const redisReply *rep, void *arg)
{
    if (status == 0 && rep->type == REDIS_REPLY_INTEGER && rep->integer > 0)
        LK_ADD(unloads, (uint64_t)rep->integer);
}

static void unload_idle(struct ls *s)
{
    if (!mx__likes_o.idle_s || mx_now_ms() - s->idle_ms < IDLE_EVERY_MS)
        return;
    s->idle_ms = mx_now_ms();
    char cutoff[24], now[24], max[16];
    uint64_t nowms = mx_unix_ms();
    snprintf(cutoff, sizeof cutoff, "%llu",
             (unsigned long long)(nowms - (uint64_t)mx__likes_o.idle_s * 1000));
    snprintf(now, sizeof now, "%llu", (unsigned long long)nowms);
    snprintf(max, sizeof max, "%u", IDLE_MAX);
    for (uint32_t k = 0; k < MX_LIKES_PARTITIONS; k++) {
        char d[LK_KEY_MAX], t[LK_KEY_MAX], n[LK_KEY_MAX], ign[LK_KEY_MAX], pp[LK_KEY_MAX];
        mx__likes_key(d, sizeof d, k, "d");
        mx__likes_key(t, sizeof t, k, "t");
        mx__likes_key(n, sizeof n, k, "n");
        mx__likes_key(ign, sizeof ign, k, "ign");
        mx__likes_pprefix(pp, sizeof pp, k);
        const char *a[] = {d, t, n, ign, pp, cutoff, max, now};
        mx_redis_eval(s->rd, s->s_idle, unloaded, NULL, 4, 8, a, NULL);
    }
}

/* ---- has Redis lost writes? (mx__lk_check_lua) ---- */

static void checked(mx_redis_t *rd, int status, const redisReply *rep, void *arg)
{
    struct ls *s = arg;
    if (status == MX_ESTOPPED)
        return;
    if (status != 0 || rep->type != REDIS_REPLY_INTEGER) {
        s->check_due = true; /* again before the next pass */
    } else if (rep->integer > 0) {
        s->check_unloaded += (uint64_t)rep->integer - 1;
        LK_INC(sync_rollbacks);
    }
    if (--s->check_left > 0)
        return;
    if (s->check_unloaded)
        MX_WARN("like-sync: Redis did not know MySQL's last like batches (it lost writes): "
                "%llu characters unloaded, reloaded from MySQL plus their pending changes",
                (unsigned long long)s->check_unloaded);
    s->busy = false;
    if (!s->check_due)
        send_tick(s, CONT_PASS, 0);
}

static void on_last(struct ls *s, struct mx_msg *m, const struct mx_m_store_job_done *d)
{
    struct mx__lk_last *l = m->ptr;
    if (!l || d->status != 0 || !mx_singleton_valid()) {
        s->check_due = true;
        s->busy = false;
        return;
    }
    s->check_left = MX_LIKES_PARTITIONS;
    s->check_unloaded = 0;
    for (uint32_t k = 0; k < MX_LIKES_PARTITIONS; k++) {
        char hw[LK_KEY_MAX], jid[LK_KEY_MAX], n[LK_KEY_MAX], pp[LK_KEY_MAX];
        mx__likes_key(hw, sizeof hw, k, "hw");
        mx__likes_key(jid, sizeof jid, k, "jid");
        mx__likes_key(n, sizeof n, k, "n");
        mx__likes_pprefix(pp, sizeof pp, k);
        const char *a[] = {hw, jid, n, l->id[k], pp};
        if (mx_redis_eval(s->rd, s->s_check, checked, s, 3, 5, a, NULL) != 0) {
            s->check_due = true;
            if (--s->check_left == 0)
                s->busy = false;
        }
    }
}

static void on_redis_state(mx_redis_t *rd, bool up, void *arg)
{
    struct ls *s = arg;
    if (up)
        s->check_due = true; /* a restarted or failed-over Redis may have lost writes */
}

static int last_fn(struct mx_mysql_conn *c, void *arg)
{
    return mx__lk_last_job(c, arg);
}

/* A pass, or first the check when it is due. Inside the handler. */
static void pass_start(struct ls *s)
{
    if (s->check_due || mx_now_ms() - s->checked_ms >= CHECK_EVERY_MS) {
        struct mx__lk_last *l = calloc(1, sizeof *l);
        if (!l)
            abort();
        if (mx_mysql_submit(mx__likes_o.mysql, last_fn, l, free, mx_self(s->self), NULL) != 0) {
            free(l);
            return; /* the pool is full: next tick */
        }
        s->check_due = false;
        s->checked_ms = mx_now_ms();
        s->busy = true;
        s->in_check = true;
        return;
    }
    s->busy = true;
    s->pass_failed = false;
    s->pend_sum = s->jopen = 0;
    s->running = MX_LIKES_PARTITIONS;
    for (uint32_t k = 0; k < MX_LIKES_PARTITIONS; k++) {
        struct part *p = &s->parts[k];
        p->running = true;
        p->committed = false;
    }
    for (uint32_t k = 0; k < MX_LIKES_PARTITIONS && s->busy; k++)
        step(&s->parts[k]);
}

static int ls_init(mx_actor_t *self, void *arg, void **state)
{
    struct ls *s = calloc(1, sizeof *s);
    if (!s)
        abort();
    s->self = self;
    s->seq = mx_singleton_epoch() & MX_EPOCH_SEQ_MASK;
    for (uint32_t k = 0; k < MX_LIKES_PARTITIONS; k++) {
        s->parts[k].s = s;
        s->parts[k].k = k;
    }
    unsigned char rnd[6];
    if (RAND_bytes(rnd, sizeof rnd) != 1) {
        free(s);
        return MX_EINTERNAL;
    }
    for (int i = 0; i < 6; i++)
        snprintf(s->nonce + 2 * i, 3, "%02x", rnd[i]);
    s->check_due = true; /* a new term: compare Redis with MySQL first */
    struct mx_redis_opts ro = {
        .name = "redis-like-sync", .timeout_ms = 5000, .on_state = on_redis_state, .state_arg = s};
    int rc = mx_redis_open(mx_actor_loop(self), mx__likes_o.redis_url, &ro, &s->rd);
    if (rc != 0) {
        free(s);
        return rc;
    }
    if ((rc = mx_redis_script(s->rd, mx__lk_take_lua, &s->s_take)) != 0 ||
        (rc = mx_redis_script(s->rd, mx__lk_finish_lua, &s->s_finish)) != 0 ||
        (rc = mx_redis_script(s->rd, mx__lk_check_lua, &s->s_check)) != 0 ||
        (rc = mx_redis_script(s->rd, mx__lk_idle_lua, &s->s_idle)) != 0) {
        mx_redis_close(s->rd, NULL, NULL);
        free(s);
        return rc;
    }
    struct mx_m_sys_tick t = {.seq = TICK};
    struct mx_msg *m;
    uint64_t id;
    if ((rc = mx_msg_encode(MX_T_sys_tick, &t, &m)) != 0 ||
        (rc = mx_timer_start(self, mx__likes_o.sync_interval_ms, mx__likes_o.sync_interval_ms, m,
                             &id)) != 0) {
        mx_msg_free(m);
        mx_redis_close(s->rd, NULL, NULL);
        free(s);
        return rc;
    }
    LK_SET(holder, true);
    MX_INFO("like-sync: holder with epoch %llu, every %u ms, batches of %u pairs",
            (unsigned long long)s->seq, mx__likes_o.sync_interval_ms, mx__likes_o.sync_batch);
    *state = s;
    return 0;
}

static int ls_receive(mx_actor_t *self, void *state, struct mx_msg *m)
{
    struct ls *s = state;
    if (m->env.type == MX_T_store_job_done) {
        if (s->in_check) {
            /* the check's read and the commits never overlap: a pass starts
             * only after the check ended */
            struct mx_m_store_job_done d;
            s->in_check = false;
            if (mx_msg_decode(m, &d) == 0)
                on_last(s, m, &d);
            else
                s->busy = false;
            return 0;
        }
        on_commit_done(s, m);
        return 0;
    }
    if (m->env.type != MX_T_sys_tick)
        return 0;
    struct mx_m_sys_tick t;
    if (mx_msg_decode(m, &t) != 0)
        return 0;
    uint32_t what = (uint32_t)(t.seq & 0xff);
    if (what == PAUSE || what == CONT_COMMIT) {
        if (s->busy && s->running == 0)
            commit(s);
        return 0;
    }
    /* TICK or CONT_PASS: a new pass */
    if (s->busy || !mx_singleton_valid() || !mx_redis_connected(s->rd))
        return 0;
    if (mx__likes_o.mysql_up && !mx__likes_o.mysql_up()) {
        if (!s->mysql_down_logged)
            MX_WARN("like-sync: MySQL is down (mysql-health): pending likes wait in Redis");
        s->mysql_down_logged = true;
        return 0;
    }
    unload_idle(s);
    if (s->mysql_down_logged)
        MX_INFO("like-sync: MySQL is back: syncing");
    s->mysql_down_logged = false;
    pass_start(s);
    return 0;
}

static void ls_stop(mx_actor_t *self, void *state)
{
    struct ls *s = state;
    LK_SET(holder, false);
    for (uint32_t k = 0; k < MX_LIKES_PARTITIONS; k++)
        if (s->parts[k].cur)
            mx__lk_batch_free(s->parts[k].cur); /* its journal stays for the next holder */
    mx_redis_close(s->rd, NULL, NULL);
    free(s);
}

static const struct mx_behaviour ls_beh = {MX_LIKES_SINGLETON, ls_init, ls_receive, ls_stop};

int mx_likes_sync_declare(mx_leases_t *lm)
{
    if (!mx__likes_o.mysql || !mx__likes_o.redis_url)
        return MX_EINVAL;
    return mx_singleton(lm, MX_LIKES_SINGLETON, &ls_beh, NULL, NULL);
}
