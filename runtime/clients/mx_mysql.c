/* mx_mysql.c - MySQL connection pool on dedicated threads, prepared
 * statements with a per-connection cache, reconnect with backoff, and the
 * fenced write helper.
 *
 * Why a pool of its own rather than the offload pool: a MySQL connection is
 * stateful (prepared statements, transactions) and blocking, so each pool
 * thread owns exactly one connection for its whole life, and jobs reach the
 * threads through one bounded queue (mutex + condvar: jobs are milliseconds
 * long, so the lock is not the bottleneck). Completions go back to actors as
 * messages, the only way other threads reach an actor.
 */
#define _GNU_SOURCE
#include "mx_mysql.h"

#include <errmsg.h>
#include <mysql.h>
#include <mysqld_error.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mx_err.h"
#include "mx_log.h"
#include "mx_msg.h"

#define MAX_PARAMS MX_MYSQL_MAX_PARAMS
#define MAX_THREADS 64

/* ---- connections ---- */

struct stmt_ent {
    char *sql; /* owned copy of the text; NULL = free slot */
    MYSQL_STMT *st;
    uint64_t used; /* LRU tick */
    unsigned nparams;
};

struct mx_mysql_conn {
    MYSQL *my;
    bool broken;     /* connection lost; must be reopened */
    unsigned err_no; /* last error */
    char err[256];
    uint64_t tick;
    int64_t last_used_ms; /* mx_now_ms of the last job */
    uint64_t gen;         /* pool down-generation seen at connect/ping */
    struct stmt_ent cache[MX_MYSQL_STMT_CACHE];
};

static pthread_once_t lib_once = PTHREAD_ONCE_INIT;
static void lib_init(void)
{
    mysql_library_init(0, NULL, NULL);
}

static bool conn_lost_errno(unsigned e)
{
    return e == CR_SERVER_GONE_ERROR || e == CR_SERVER_LOST || e == CR_SERVER_LOST_EXTENDED ||
           e == CR_CONNECTION_ERROR || e == CR_CONN_HOST_ERROR || e == ER_CONNECTION_KILLED ||
           e == ER_SERVER_SHUTDOWN || e == CR_COMMANDS_OUT_OF_SYNC;
}

/* record the error e/msg on c and map it to an MX_E* code */
static int set_err(struct mx_mysql_conn *c, unsigned e, const char *msg)
{
    c->err_no = e;
    snprintf(c->err, sizeof(c->err), "%s", msg ? msg : "");
    if (conn_lost_errno(e)) {
        c->broken = true;
        return MX_EUNAVAIL;
    }
    if (e == ER_DUP_ENTRY || e == ER_DUP_KEY || e == ER_DUP_ENTRY_WITH_KEY_NAME)
        return MX_EEXISTS;
    return MX_EIO;
}

static int my_err(struct mx_mysql_conn *c)
{
    return set_err(c, mysql_errno(c->my), mysql_error(c->my));
}

static int st_err(struct mx_mysql_conn *c, MYSQL_STMT *st)
{
    return set_err(c, mysql_stmt_errno(st), mysql_stmt_error(st));
}

static void cache_clear(struct mx_mysql_conn *c)
{
    for (int i = 0; i < MX_MYSQL_STMT_CACHE; i++) {
        if (c->cache[i].st)
            mysql_stmt_close(c->cache[i].st);
        free(c->cache[i].sql);
        c->cache[i] = (struct stmt_ent){0};
    }
}

int mx_mysql_conn_open(const char *url, const struct mx_mysql_conn_opts *opts,
                       struct mx_mysql_conn **out, char *err, size_t errlen)
{
    struct mx_mysql_url u;
    int rc = mx_mysql_url_parse(url, &u, err, errlen);
    if (rc != 0)
        return rc;
    pthread_once(&lib_once, lib_init);
    unsigned ct = opts && opts->connect_timeout_s ? opts->connect_timeout_s : 1;
    unsigned rw = opts && opts->rw_timeout_s ? opts->rw_timeout_s : 10;
    MYSQL *my = mysql_init(NULL);
    if (!my) {
        snprintf(err, errlen, "mysql_init failed");
        return MX_ENOMEM;
    }
    my_bool reconnect = 0;
    unsigned proto = MYSQL_PROTOCOL_TCP; /* "localhost" would mean the unix socket */
    mysql_options(my, MYSQL_OPT_CONNECT_TIMEOUT, &ct);
    mysql_options(my, MYSQL_OPT_READ_TIMEOUT, &rw);
    mysql_options(my, MYSQL_OPT_WRITE_TIMEOUT, &rw);
    mysql_options(my, MYSQL_OPT_RECONNECT, &reconnect); /* we reconnect: statements die with it */
    mysql_options(my, MYSQL_OPT_PROTOCOL, &proto);
    mysql_options(my, MYSQL_SET_CHARSET_NAME, "utf8mb4");
    mysql_options(my, MYSQL_INIT_COMMAND, "SET time_zone = '+00:00'");
    if (!mysql_real_connect(my, u.host, u.user, u.password[0] ? u.password : NULL, u.database,
                            (unsigned)u.port, NULL, CLIENT_FOUND_ROWS)) {
        unsigned e = mysql_errno(my);
        snprintf(err, errlen, "mysql %s:%d/%s as %s: %s (%u)", u.host, u.port, u.database, u.user,
                 mysql_error(my), e);
        mysql_close(my);
        if (e == ER_ACCESS_DENIED_ERROR || e == ER_DBACCESS_DENIED_ERROR || e == ER_BAD_DB_ERROR ||
            e == CR_UNKNOWN_HOST)
            return MX_ECONFIG;
        return MX_EUNAVAIL;
    }
    struct mx_mysql_conn *c = calloc(1, sizeof(*c));
    if (!c) {
        mysql_close(my);
        return MX_ENOMEM;
    }
    c->my = my;
    c->last_used_ms = mx_now_ms();
    *out = c;
    return 0;
}

void mx_mysql_conn_close(struct mx_mysql_conn *c)
{
    if (!c)
        return;
    cache_clear(c);
    mysql_close(c->my);
    free(c);
}

unsigned mx_mysql_errno(const struct mx_mysql_conn *c)
{
    return c->err_no;
}

const char *mx_mysql_error(const struct mx_mysql_conn *c)
{
    return c->err;
}

bool mx_mysql_broken(const struct mx_mysql_conn *c)
{
    return c->broken;
}

uint64_t mx_mysql_last_insert_id(struct mx_mysql_conn *c)
{
    return (uint64_t)mysql_insert_id(c->my);
}

/* the cached statement for sql, prepared on first use */
static int get_stmt(struct mx_mysql_conn *c, const char *sql, struct stmt_ent **out)
{
    struct stmt_ent *victim = &c->cache[0];
    for (int i = 0; i < MX_MYSQL_STMT_CACHE; i++) {
        struct stmt_ent *e = &c->cache[i];
        if (e->sql && strcmp(e->sql, sql) == 0) {
            e->used = ++c->tick;
            *out = e;
            return 0;
        }
        if (!e->sql || (victim->sql && e->used < victim->used))
            victim = e;
    }
    if (victim->st)
        mysql_stmt_close(victim->st);
    free(victim->sql);
    *victim = (struct stmt_ent){0};
    MYSQL_STMT *st = mysql_stmt_init(c->my);
    if (!st)
        return my_err(c);
    if (mysql_stmt_prepare(st, sql, strlen(sql)) != 0) {
        int rc = st_err(c, st);
        mysql_stmt_close(st);
        return rc;
    }
    my_bool upd = 1;
    mysql_stmt_attr_set(st, STMT_ATTR_UPDATE_MAX_LENGTH, &upd);
    victim->sql = strdup(sql);
    if (!victim->sql) {
        mysql_stmt_close(st);
        return MX_ENOMEM;
    }
    victim->st = st;
    victim->nparams = (unsigned)mysql_stmt_param_count(st);
    victim->used = ++c->tick;
    *out = victim;
    return 0;
}

/* prepare (cached), bind params and execute; *out the statement */
static int run_stmt(struct mx_mysql_conn *c, const char *sql, const struct mx_sql_val *params,
                    size_t n, MYSQL_STMT **out)
{
    struct stmt_ent *e = NULL;
    MYSQL_BIND b[MAX_PARAMS];
    int64_t ints[MAX_PARAMS];
    int rc;

    c->err_no = 0;
    c->err[0] = '\0';
    if (c->broken)
        return MX_EUNAVAIL;
    if (n > MAX_PARAMS || (n && !params))
        return MX_EINVAL;
    rc = get_stmt(c, sql, &e);
    if (rc != 0)
        return rc;
    if (e->nparams != n) {
        snprintf(c->err, sizeof(c->err), "statement has %u placeholders, %zu values given",
                 e->nparams, n);
        return MX_EINVAL;
    }
    memset(b, 0, sizeof(b[0]) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) {
        const struct mx_sql_val *v = &params[i];
        switch (v->kind) {
        case MX_SQL_INT:
            ints[i] = v->i;
            b[i].buffer_type = MYSQL_TYPE_LONGLONG;
            b[i].buffer = &ints[i];
            break;
        case MX_SQL_TEXT:
        case MX_SQL_BLOB:
            if (v->len && !v->p)
                return MX_EINVAL;
            b[i].buffer_type = v->kind == MX_SQL_TEXT ? MYSQL_TYPE_STRING : MYSQL_TYPE_BLOB;
            b[i].buffer = (void *)(uintptr_t)v->p; /* read only by the library */
            b[i].buffer_length = (unsigned long)v->len;
            break;
        case MX_SQL_NULL:
            b[i].buffer_type = MYSQL_TYPE_NULL;
            break;
        default:
            return MX_EINVAL;
        }
    }
    if (n && mysql_stmt_bind_param(e->st, b) != 0)
        return st_err(c, e->st);
    if (mysql_stmt_execute(e->st) != 0)
        return st_err(c, e->st);
    *out = e->st;
    return 0;
}

int mx_mysql_exec(struct mx_mysql_conn *c, const char *sql, const struct mx_sql_val *params,
                  size_t n, uint64_t *affected)
{
    MYSQL_STMT *st;
    int rc = run_stmt(c, sql, params, n, &st);
    if (rc != 0)
        return rc;
    if (mysql_stmt_field_count(st) > 0) {
        /* discard rows so the connection stays in sync */
        if (mysql_stmt_store_result(st) != 0)
            return st_err(c, st);
        mysql_stmt_free_result(st);
    }
    if (affected) {
        my_ulonglong a = mysql_stmt_affected_rows(st);
        *affected = a == (my_ulonglong)~0ull ? 0 : (uint64_t)a;
    }
    return 0;
}

static bool is_int_type(enum enum_field_types t)
{
    return t == MYSQL_TYPE_TINY || t == MYSQL_TYPE_SHORT || t == MYSQL_TYPE_LONG ||
           t == MYSQL_TYPE_INT24 || t == MYSQL_TYPE_LONGLONG || t == MYSQL_TYPE_YEAR;
}

int mx_mysql_query(struct mx_mysql_conn *c, const char *sql, const struct mx_sql_val *params,
                   size_t n, mx_mysql_row_fn row, void *ctx, uint64_t *nrows)
{
    MYSQL_STMT *st;
    MYSQL_RES *meta = NULL;
    MYSQL_BIND *b = NULL;
    struct mx_sql_val *vals = NULL;
    int64_t *ints = NULL;
    unsigned long *lens = NULL;
    my_bool *nulls = NULL;
    char **bufs = NULL;
    unsigned nc = 0;
    uint64_t count = 0;
    int rc = run_stmt(c, sql, params, n, &st);

    if (nrows)
        *nrows = 0;
    if (rc != 0)
        return rc;
    nc = mysql_stmt_field_count(st);
    if (nc == 0)
        goto out;
    if (mysql_stmt_store_result(st) != 0) {
        rc = st_err(c, st);
        goto out;
    }
    meta = mysql_stmt_result_metadata(st);
    if (!meta) {
        rc = st_err(c, st);
        goto out_free_result;
    }
    MYSQL_FIELD *fields = mysql_fetch_fields(meta);
    b = calloc(nc, sizeof(*b));
    vals = calloc(nc, sizeof(*vals));
    ints = calloc(nc, sizeof(*ints));
    lens = calloc(nc, sizeof(*lens));
    nulls = calloc(nc, sizeof(*nulls));
    bufs = calloc(nc, sizeof(*bufs));
    if (!b || !vals || !ints || !lens || !nulls || !bufs) {
        rc = MX_ENOMEM;
        goto out_free;
    }
    for (unsigned i = 0; i < nc; i++) {
        b[i].is_null = &nulls[i];
        b[i].length = &lens[i];
        if (is_int_type(fields[i].type)) {
            b[i].buffer_type = MYSQL_TYPE_LONGLONG;
            b[i].buffer = &ints[i];
            continue;
        }
        unsigned long cap = fields[i].max_length;
        if (cap > MX_MYSQL_MAX_FIELD) {
            snprintf(c->err, sizeof(c->err), "column %s holds %lu bytes (limit %u)", fields[i].name,
                     cap, MX_MYSQL_MAX_FIELD);
            rc = MX_ETOOBIG;
            goto out_free;
        }
        bufs[i] = malloc(cap + 1);
        if (!bufs[i]) {
            rc = MX_ENOMEM;
            goto out_free;
        }
        b[i].buffer_type = fields[i].type == MYSQL_TYPE_BLOB ||
                                   fields[i].type == MYSQL_TYPE_LONG_BLOB ||
                                   fields[i].type == MYSQL_TYPE_MEDIUM_BLOB
                               ? MYSQL_TYPE_BLOB
                               : MYSQL_TYPE_STRING;
        b[i].buffer = bufs[i];
        b[i].buffer_length = cap + 1;
    }
    if (mysql_stmt_bind_result(st, b) != 0) {
        rc = st_err(c, st);
        goto out_free;
    }
    for (;;) {
        int f = mysql_stmt_fetch(st);
        if (f == MYSQL_NO_DATA)
            break;
        if (f == 1) {
            rc = st_err(c, st);
            break;
        }
        if (f == MYSQL_DATA_TRUNCATED) { /* max_length lied: a bug, not data */
            snprintf(c->err, sizeof(c->err), "row truncated");
            rc = MX_EINTERNAL;
            break;
        }
        for (unsigned i = 0; i < nc; i++) {
            if (nulls[i])
                vals[i] = MX_SQL_NUL;
            else if (!bufs[i])
                vals[i] = MX_SQL_I(ints[i]);
            else
                vals[i] = MX_SQL_B(bufs[i], lens[i]);
        }
        count++;
        if (row) {
            int r = row(ctx, vals, nc);
            if (r != 0) {
                rc = r;
                break;
            }
        }
    }
out_free:
    if (bufs)
        for (unsigned i = 0; i < nc; i++)
            free(bufs[i]);
    free(bufs);
    free(nulls);
    free(lens);
    free(ints);
    free(vals);
    free(b);
    mysql_free_result(meta);
out_free_result:
    mysql_stmt_free_result(st);
out:
    if (nrows)
        *nrows = count;
    return rc;
}

struct int_ctx {
    int64_t v;
    bool found;
};

static int int_row(void *ctx, const struct mx_sql_val *cols, size_t ncols)
{
    struct int_ctx *x = ctx;
    if (x->found || ncols == 0)
        return 0;
    if (cols[0].kind == MX_SQL_INT) {
        x->v = cols[0].i;
        x->found = true;
    } else if (cols[0].kind == MX_SQL_BLOB) {
        char tmp[32];
        size_t l = cols[0].len < sizeof(tmp) - 1 ? cols[0].len : sizeof(tmp) - 1;
        memcpy(tmp, cols[0].p, l);
        tmp[l] = '\0';
        char *end;
        long long v = strtoll(tmp, &end, 10);
        if (end != tmp) {
            x->v = v;
            x->found = true;
        }
    }
    return 0;
}

int mx_mysql_query_int(struct mx_mysql_conn *c, const char *sql, const struct mx_sql_val *params,
                       size_t n, int64_t *out, bool *found)
{
    struct int_ctx x = {0, false};
    int rc = mx_mysql_query(c, sql, params, n, int_row, &x, NULL);
    if (rc == 0) {
        *out = x.v;
        if (found)
            *found = x.found;
    }
    return rc;
}

/* Transaction control is not data: plain queries, no values spliced. */
static int plain(struct mx_mysql_conn *c, const char *q)
{
    if (c->broken)
        return MX_EUNAVAIL;
    if (mysql_real_query(c->my, q, (unsigned long)strlen(q)) != 0)
        return my_err(c);
    return 0;
}

int mx_mysql_begin(struct mx_mysql_conn *c)
{
    return plain(c, "START TRANSACTION");
}

int mx_mysql_commit(struct mx_mysql_conn *c)
{
    return plain(c, "COMMIT");
}

void mx_mysql_rollback(struct mx_mysql_conn *c)
{
    unsigned e = c->err_no;
    char saved[sizeof(c->err)];
    memcpy(saved, c->err, sizeof(saved));
    (void)plain(c, "ROLLBACK");
    c->err_no = e; /* keep the error that caused the rollback */
    memcpy(c->err, saved, sizeof(saved));
}

static bool in_trans(struct mx_mysql_conn *c)
{
    unsigned status = 0;
    if (mariadb_get_infov(c->my, MARIADB_CONNECTION_SERVER_STATUS, &status) != 0)
        return false;
    return (status & SERVER_STATUS_IN_TRANS) != 0;
}

int mx_mysql_fenced(struct mx_mysql_conn *c, const char *fence, uint64_t epoch, mx_mysql_fn write,
                    void *arg)
{
    uint64_t matched = 0;
    int rc;
    if (!fence || !*fence || !write || epoch > (uint64_t)INT64_MAX)
        return MX_EINVAL;
    /* Create the row outside the transaction: an INSERT IGNORE inside it
     * would take a shared lock that two writers then both try to upgrade
     * (a deadlock). */
    struct mx_sql_val ins[] = {MX_SQL_S(fence)};
    rc = mx_mysql_exec(c, "INSERT IGNORE INTO fence (name, epoch) VALUES (?, 0)", ins, 1, NULL);
    if (rc != 0)
        return rc;
    rc = mx_mysql_begin(c);
    if (rc != 0)
        return rc;
    struct mx_sql_val up[] = {MX_SQL_I(epoch), MX_SQL_S(fence), MX_SQL_I(epoch)};
    rc = mx_mysql_exec(c, "UPDATE fence SET epoch = ? WHERE name = ? AND epoch <= ?", up, 3,
                       &matched);
    if (rc != 0)
        goto out_rollback;
    if (matched == 0) {
        mx_log(MX_LOG_WARN, "fenced write refused: fence %s moved past epoch %llu", fence,
               (unsigned long long)epoch);
        rc = MX_ESTALE;
        goto out_rollback;
    }
    rc = write(c, arg);
    if (rc != 0)
        goto out_rollback;
    return mx_mysql_commit(c);
out_rollback:
    mx_mysql_rollback(c);
    return rc;
}

/* ---- the pool ---- */

struct sync_wait {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    int rc;
};

struct job {
    mx_mysql_fn fn;
    void *arg;
    void (*arg_free)(void *);
    struct mx_addr to;
    uint64_t id;
    struct sync_wait *w;   /* mx_mysql_run: signal instead of a message */
    unsigned flags;        /* MX_MYSQL_CALL_DOWN */
    struct mx_trace trace; /* of the submitter: the job and its completion carry it */
};

struct worker {
    struct mx_mysql *pool;
    struct mx_mysql_conn *conn; /* owned by this worker's thread */
    pthread_t thr;
    int idx;
};

struct mx_mysql {
    char url[1024];
    struct mx_mysql_url u;
    mx_system_t *sys;
    struct mx_mysql_conn_opts copts;
    uint32_t backoff_min_ms, backoff_max_ms, ping_idle_ms;
    int nthreads;
    struct worker *workers;

    pthread_mutex_t mu; /* guards the queue, stopping and the backoff */
    pthread_cond_t cv;
    struct job *ring; /* queue_cap slots */
    uint32_t cap, head, count;
    bool stopping;
    /* ---- shutdown drain (mx_mysql_drain) ---- */
    pthread_cond_t idle_cv; /* signalled when busy and count reach 0, or on a cut */
    uint32_t busy;          /* guarded by mu: jobs a worker is running */
    bool spool_only;        /* guarded by mu: after a drain ran out of time, MX_MYSQL_CALL_DOWN
                               jobs take their fallback (spool) without trying the server */
    atomic_bool cut;        /* mx_mysql_cut: a waiting drain stops waiting (relaxed: the
                               waiter re-reads it under mu after the broadcast) */
    int64_t next_try_ms;    /* no connect attempt before this while down */
    uint32_t backoff_ms;    /* next delay after a failed connect */

    /* Health: written by workers, read by anyone. Counters are relaxed
     * (independent tallies); up/down_since use release/acquire so a reader
     * that sees "down" also sees when it went down. */
    _Alignas(64) atomic_bool up;
    _Atomic int64_t down_since_ms;
    _Atomic uint64_t down_gen; /* bumped at each loss: idle connections ping first */
    _Atomic uint64_t next_job;
    _Atomic uint64_t jobs_ok, jobs_failed, jobs_unavail, refused, connects, connect_failures,
        disconnects, lost;
    _Atomic uint32_t queued;
};

#define RELAXED memory_order_relaxed

static void mark_up(struct mx_mysql *p)
{
    /* release: pairs with the acquire in mx_mysql_health */
    if (!atomic_exchange_explicit(&p->up, true, memory_order_acq_rel))
        mx_log(MX_LOG_INFO, "mysql %s:%d is up", p->u.host, p->u.port);
    atomic_store_explicit(&p->down_since_ms, 0, memory_order_release);
}

static void mark_down(struct mx_mysql *p, const char *why)
{
    /* acq_rel: one worker logs the transition and stamps the time */
    bool was_up = atomic_exchange_explicit(&p->up, false, memory_order_acq_rel);
    int64_t zero = 0;
    /* the first failure ever (never up yet) also stamps the time */
    bool first = atomic_compare_exchange_strong_explicit(&p->down_since_ms, &zero, mx_now_ms(),
                                                         memory_order_acq_rel, RELAXED);
    if (was_up || first) {
        if (was_up)
            atomic_store_explicit(&p->down_since_ms, mx_now_ms(), memory_order_release);
        atomic_fetch_add_explicit(&p->down_gen, 1, RELAXED);
        mx_log(MX_LOG_WARN, "mysql %s:%d is down: %s", p->u.host, p->u.port, why);
    }
}

static void drop_conn(struct worker *w, const char *why)
{
    struct mx_mysql *p = w->pool;
    atomic_fetch_add_explicit(&p->disconnects, 1, RELAXED);
    mark_down(p, why);
    mx_mysql_conn_close(w->conn);
    w->conn = NULL;
}

/* a usable connection for the next job, or MX_EUNAVAIL/MX_ECONFIG */
static int ensure_conn(struct worker *w)
{
    struct mx_mysql *p = w->pool;
    int64_t now = mx_now_ms();
    char err[512];

    if (w->conn) {
        uint64_t gen = atomic_load_explicit(&p->down_gen, RELAXED);
        if (now - w->conn->last_used_ms >= (int64_t)p->ping_idle_ms || w->conn->gen != gen) {
            if (mysql_ping(w->conn->my) != 0) {
                snprintf(err, sizeof(err), "ping: %s", mysql_error(w->conn->my));
                drop_conn(w, err);
            } else {
                w->conn->gen = gen;
            }
        }
    }
    if (w->conn)
        return 0;
    pthread_mutex_lock(&p->mu);
    bool wait = !atomic_load_explicit(&p->up, memory_order_acquire) && now < p->next_try_ms;
    pthread_mutex_unlock(&p->mu);
    if (wait)
        return MX_EUNAVAIL;
    int rc = mx_mysql_conn_open(p->url, &p->copts, &w->conn, err, sizeof(err));
    pthread_mutex_lock(&p->mu);
    if (rc == 0) {
        p->backoff_ms = p->backoff_min_ms;
        p->next_try_ms = 0;
    } else {
        p->next_try_ms = mx_now_ms() + p->backoff_ms;
        p->backoff_ms =
            p->backoff_ms * 2 > p->backoff_max_ms ? p->backoff_max_ms : p->backoff_ms * 2;
    }
    pthread_mutex_unlock(&p->mu);
    if (rc != 0) {
        w->conn = NULL;
        atomic_fetch_add_explicit(&p->connect_failures, 1, RELAXED);
        mark_down(p, err);
        return rc == MX_ECONFIG ? MX_ECONFIG : MX_EUNAVAIL;
    }
    w->conn->gen = atomic_load_explicit(&p->down_gen, RELAXED);
    atomic_fetch_add_explicit(&p->connects, 1, RELAXED);
    mark_up(p);
    return 0;
}

static void complete(struct mx_mysql *p, struct job *j, int rc)
{
    if (j->w) {
        pthread_mutex_lock(&j->w->mu);
        j->w->rc = rc;
        j->w->done = true;
        pthread_cond_signal(&j->w->cv);
        pthread_mutex_unlock(&j->w->mu);
        return;
    }
    struct mx_m_store_job_done f = {.status = rc, .job = j->id};
    struct mx_msg *m;
    if (mx_msg_encode(MX_T_store_job_done, &f, &m) != 0) {
        atomic_fetch_add_explicit(&p->lost, 1, RELAXED);
        if (j->arg_free)
            j->arg_free(j->arg);
        return;
    }
    m->env.corr = j->id; /* mx_sys_send stamps the job's trace (entered around it) */
    m->ptr = j->arg;
    m->ptr_free = j->arg_free;
    if (mx_sys_send(p->sys, j->to, m) != 0) {
        atomic_fetch_add_explicit(&p->lost, 1, RELAXED);
        mx_msg_free(m);
    }
}

static void run_job(struct worker *w, struct job *j)
{
    struct mx_mysql *p = w->pool;
    pthread_mutex_lock(&p->mu);
    bool spool_only = p->spool_only;
    pthread_mutex_unlock(&p->mu);
    int rc = spool_only && (j->flags & MX_MYSQL_CALL_DOWN) ? MX_EUNAVAIL : ensure_conn(w);
    if (rc == MX_EUNAVAIL && (j->flags & MX_MYSQL_CALL_DOWN))
        rc = j->fn(NULL, j->arg);
    else if (rc == 0) {
        rc = j->fn(w->conn, j->arg);
        if (w->conn->broken) {
            char why[300];
            snprintf(why, sizeof(why), "%s (%u)", w->conn->err, w->conn->err_no);
            drop_conn(w, why);
            if (rc == MX_EIO) /* the job's error came from losing the server */
                rc = MX_EUNAVAIL;
        } else {
            if (in_trans(w->conn)) { /* a job must not leave a transaction open */
                mx_log(MX_LOG_WARN, "mysql job left a transaction open; rolled back");
                mx_mysql_rollback(w->conn);
            }
            w->conn->last_used_ms = mx_now_ms();
            mark_up(p);
        }
    }
    if (rc == 0) {
        atomic_fetch_add_explicit(&p->jobs_ok, 1, RELAXED);
    } else {
        atomic_fetch_add_explicit(&p->jobs_failed, 1, RELAXED);
        if (rc == MX_EUNAVAIL)
            atomic_fetch_add_explicit(&p->jobs_unavail, 1, RELAXED);
    }
    complete(p, j, rc);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct mx_mysql *p = w->pool;
    mysql_thread_init();
    for (;;) {
        struct job j;
        pthread_mutex_lock(&p->mu);
        while (p->count == 0 && !p->stopping)
            pthread_cond_wait(&p->cv, &p->mu);
        if (p->stopping) {
            pthread_mutex_unlock(&p->mu);
            break;
        }
        j = p->ring[p->head];
        p->head = (p->head + 1) % p->cap;
        p->count--;
        p->busy++;
        atomic_store_explicit(&p->queued, p->count, RELAXED);
        pthread_mutex_unlock(&p->mu);
        struct mx_trace saved;
        mx_trace_enter(&j.trace, &saved); /* the job's log lines carry its submitter's trace */
        run_job(w, &j);
        mx_trace_leave(&saved);
        pthread_mutex_lock(&p->mu);
        if (--p->busy == 0 && p->count == 0)
            pthread_cond_broadcast(&p->idle_cv); /* a drain waits for this */
        pthread_mutex_unlock(&p->mu);
    }
    mx_mysql_conn_close(w->conn);
    w->conn = NULL;
    mysql_thread_end();
    return NULL;
}

int mx_mysql_start(const struct mx_mysql_opts *o, mx_mysql_t **out, char *err, size_t errlen)
{
    struct mx_mysql *p;
    int rc;
    if (!o || !out)
        return MX_EINVAL;
    if (o->threads < 0 || o->threads > MAX_THREADS) {
        snprintf(err, errlen, "mysql pool threads must be 1-%d", MAX_THREADS);
        return MX_ECONFIG;
    }
    if (!o->url || strlen(o->url) >= sizeof(p->url)) {
        snprintf(err, errlen, "mysql URL missing or too long");
        return MX_ECONFIG;
    }
    p = calloc(1, sizeof(*p));
    if (!p)
        return MX_ENOMEM;
    rc = mx_mysql_url_parse(o->url, &p->u, err, errlen);
    if (rc != 0) {
        free(p);
        return rc;
    }
    pthread_once(&lib_once, lib_init);
    snprintf(p->url, sizeof(p->url), "%s", o->url);
    p->sys = o->sys;
    p->copts.connect_timeout_s = o->connect_timeout_s ? o->connect_timeout_s : 1;
    p->copts.rw_timeout_s = o->rw_timeout_s ? o->rw_timeout_s : 10;
    p->backoff_min_ms = o->backoff_min_ms ? o->backoff_min_ms : 100;
    p->backoff_max_ms = o->backoff_max_ms ? o->backoff_max_ms : 2000;
    if (p->backoff_max_ms < p->backoff_min_ms)
        p->backoff_max_ms = p->backoff_min_ms;
    p->backoff_ms = p->backoff_min_ms;
    p->ping_idle_ms = o->ping_idle_ms ? o->ping_idle_ms : 1000;
    p->cap = o->queue_cap ? o->queue_cap : 1024;
    p->nthreads = o->threads ? o->threads : 4;
    p->ring = calloc(p->cap, sizeof(*p->ring));
    p->workers = calloc((size_t)p->nthreads, sizeof(*p->workers));
    if (!p->ring || !p->workers) {
        free(p->ring);
        free(p->workers);
        free(p);
        return MX_ENOMEM;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    pthread_cond_init(&p->idle_cv, NULL);
    atomic_init(&p->cut, false);
    atomic_init(&p->up, false);
    atomic_init(&p->down_since_ms, 0);
    int started = 0;
    for (; started < p->nthreads; started++) {
        struct worker *w = &p->workers[started];
        w->pool = p;
        w->idx = started;
        if (pthread_create(&w->thr, NULL, worker_main, w) != 0)
            break;
    }
    if (started < p->nthreads) {
        p->nthreads = started;
        mx_mysql_stop(p);
        snprintf(err, errlen, "mysql pool: cannot start threads");
        return MX_ENOMEM;
    }
    *out = p;
    return 0;
}

/* Finish one queued job that will not reach a pool thread: a job that has a
 * fallback for a server that is down (MX_MYSQL_CALL_DOWN: the store's
 * writes spool) runs it here with c == NULL, so nothing queued is dropped;
 * any other job (a read) completes with MX_ESTOPPED without running.
 * Returns 1 when the fallback ran and succeeded, 0 otherwise. */
static int finish_unrun_in(struct mx_mysql *p, struct job *j);

static int finish_unrun(struct mx_mysql *p, struct job *j)
{
    struct mx_trace saved;
    mx_trace_enter(&j->trace, &saved);
    int ok = finish_unrun_in(p, j);
    mx_trace_leave(&saved);
    return ok;
}

static int finish_unrun_in(struct mx_mysql *p, struct job *j)
{
    if (j->flags & MX_MYSQL_CALL_DOWN) {
        int rc = j->fn(NULL, j->arg);
        atomic_fetch_add_explicit(rc == 0 ? &p->jobs_ok : &p->jobs_failed, 1, RELAXED);
        complete(p, j, rc);
        return rc == 0;
    }
    atomic_fetch_add_explicit(&p->jobs_failed, 1, RELAXED);
    complete(p, j, MX_ESTOPPED);
    return 0;
}

/* Take every queued job out of the ring (caller holds mu); *n gets the count. */
static struct job *take_queue(struct mx_mysql *p, uint32_t *n)
{
    *n = p->count;
    struct job *v = p->count ? malloc(p->count * sizeof *v) : NULL;
    if (p->count && !v)
        abort();
    for (uint32_t i = 0; i < *n; i++) {
        v[i] = p->ring[p->head];
        p->head = (p->head + 1) % p->cap;
    }
    p->count = 0;
    atomic_store_explicit(&p->queued, 0, RELAXED);
    return v;
}

int mx_mysql_drain(mx_mysql_t *p, uint32_t timeout_ms, struct mx_mysql_drain_stats *out)
{
    memset(out, 0, sizeof *out);
    if (!p)
        return 0;
    int64_t t0 = mx_now_ms();
    uint64_t done0 =
        atomic_load_explicit(&p->jobs_ok, RELAXED) + atomic_load_explicit(&p->jobs_failed, RELAXED);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t ns = (uint64_t)ts.tv_nsec + (uint64_t)timeout_ms * 1000000u;
    ts.tv_sec += (time_t)(ns / 1000000000u);
    ts.tv_nsec = (long)(ns % 1000000000u);
    pthread_mutex_lock(&p->mu);
    out->queued_at_start = p->count + p->busy;
    /* relaxed: mx_mysql_cut sets it before broadcasting under mu */
    while ((p->count || p->busy) && !atomic_load_explicit(&p->cut, RELAXED))
        if (pthread_cond_timedwait(&p->idle_cv, &p->mu, &ts) != 0)
            break;
    uint32_t n = 0;
    struct job *left = NULL;
    int rc = 0;
    if (p->count || p->busy) {
        /* out of time: what is queued takes its fallback now, and so does
         * every later write, without waiting for a server that is slow */
        rc = MX_ETIMEDOUT;
        p->spool_only = true;
        left = take_queue(p, &n);
    }
    out->inflight = p->busy;
    pthread_mutex_unlock(&p->mu);
    for (uint32_t i = 0; i < n; i++) {
        bool write = left[i].flags & MX_MYSQL_CALL_DOWN;
        int ok = finish_unrun(p, &left[i]);
        if (!write)
            out->cancelled++;
        else if (ok)
            out->spooled++;
        else
            out->failed++;
    }
    free(left);
    uint64_t done1 =
        atomic_load_explicit(&p->jobs_ok, RELAXED) + atomic_load_explicit(&p->jobs_failed, RELAXED);
    out->ran = (uint32_t)(done1 - done0) - n;
    out->took_ms = mx_now_ms() - t0;
    return rc;
}

void mx_mysql_cut(mx_mysql_t *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    atomic_store_explicit(&p->cut, true, RELAXED); /* read under mu by the waiter */
    pthread_cond_broadcast(&p->idle_cv);
    pthread_mutex_unlock(&p->mu);
}

void mx_mysql_stop(mx_mysql_t *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stopping = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->nthreads; i++)
        pthread_join(p->workers[i].thr, NULL);
    /* the threads are gone: what is still queued is not dropped; writes
     * take their fallback (the spool), reads complete with MX_ESTOPPED */
    uint32_t n = 0, spooled = 0;
    struct job *left = take_queue(p, &n);
    for (uint32_t i = 0; i < n; i++)
        spooled += (uint32_t)finish_unrun(p, &left[i]);
    free(left);
    if (n)
        mx_log(MX_LOG_INFO, "mysql stop: %u queued jobs finished unrun (%u writes spooled)", n,
               spooled);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    pthread_cond_destroy(&p->idle_cv);
    free(p->ring);
    free(p->workers);
    free(p);
}

static int push(struct mx_mysql *p, struct job *j)
{
    pthread_mutex_lock(&p->mu);
    if (p->stopping) {
        pthread_mutex_unlock(&p->mu);
        return MX_ESTOPPED;
    }
    if (p->count >= p->cap) {
        pthread_mutex_unlock(&p->mu);
        atomic_fetch_add_explicit(&p->refused, 1, RELAXED);
        return MX_EFULL;
    }
    p->ring[(p->head + p->count) % p->cap] = *j;
    p->count++;
    atomic_store_explicit(&p->queued, p->count, RELAXED);
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return 0;
}

int mx_mysql_submit(mx_mysql_t *p, mx_mysql_fn fn, void *arg, void (*arg_free)(void *),
                    struct mx_addr reply_to, uint64_t *job)
{
    return mx_mysql_submit_ex(p, fn, arg, arg_free, reply_to, 0, job);
}

int mx_mysql_submit_ex(mx_mysql_t *p, mx_mysql_fn fn, void *arg, void (*arg_free)(void *),
                       struct mx_addr reply_to, unsigned flags, uint64_t *job)
{
    if (!p || !fn || !p->sys || (flags & ~MX_MYSQL_CALL_DOWN))
        return MX_EINVAL;
    struct job j = {.fn = fn, .arg = arg, .arg_free = arg_free, .to = reply_to, .flags = flags};
    mx_trace_current(&j.trace);
    j.id = atomic_fetch_add_explicit(&p->next_job, 1, RELAXED) + 1;
    int rc = push(p, &j);
    if (rc == 0 && job)
        *job = j.id;
    return rc;
}

int mx_mysql_run(mx_mysql_t *p, mx_mysql_fn fn, void *arg)
{
    struct sync_wait w = {.done = false, .rc = 0};
    if (!p || !fn)
        return MX_EINVAL;
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    struct job j = {.fn = fn, .arg = arg, .w = &w};
    j.id = atomic_fetch_add_explicit(&p->next_job, 1, RELAXED) + 1;
    int rc = push(p, &j);
    if (rc == 0) {
        pthread_mutex_lock(&w.mu);
        while (!w.done)
            pthread_cond_wait(&w.cv, &w.mu);
        rc = w.rc;
        pthread_mutex_unlock(&w.mu);
    }
    pthread_mutex_destroy(&w.mu);
    pthread_cond_destroy(&w.cv);
    return rc;
}

void mx_mysql_health(mx_mysql_t *p, struct mx_mysql_health *o)
{
    memset(o, 0, sizeof(*o));
    /* acquire: pairs with the release in mark_up/mark_down */
    o->up = atomic_load_explicit(&p->up, memory_order_acquire);
    o->down_since_ms = atomic_load_explicit(&p->down_since_ms, memory_order_acquire);
    o->jobs_ok = atomic_load_explicit(&p->jobs_ok, RELAXED);
    o->jobs_failed = atomic_load_explicit(&p->jobs_failed, RELAXED);
    o->jobs_unavail = atomic_load_explicit(&p->jobs_unavail, RELAXED);
    o->refused = atomic_load_explicit(&p->refused, RELAXED);
    o->connects = atomic_load_explicit(&p->connects, RELAXED);
    o->connect_failures = atomic_load_explicit(&p->connect_failures, RELAXED);
    o->disconnects = atomic_load_explicit(&p->disconnects, RELAXED);
    o->lost_completions = atomic_load_explicit(&p->lost, RELAXED);
    o->queued = atomic_load_explicit(&p->queued, RELAXED);
    o->queue_cap = p->cap;
}
