/* test_system.c - the MySQL pool, schema and spool against a real mariadbd
 * (test/mysql/mysqld.c): migrations twice and a newer schema refused,
 * prepared round trips (blobs, utf8mb4, NULL, injection text as data),
 * access denied, pool bound refusal, fenced writes with a stale epoch,
 * the server killed and restarted under a running pool, and writes spooled
 * during the outage landing after the restart. Tests run in order and share
 * one server. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "mx_actor.h"
#include "mx_err.h"
#include "mx_log.h"
#include "mx_mysql.h"
#include "mx_schema.h"
#include "mx_spool.h"
#include "mx_store.h"
#include "mx_testutil.h"
#include "mysqld.h"

static struct mysqld srv;
static mx_system_t *sys;

/* ---- a collector actor for store_job_done messages ---- */

#define MAX_DONE 256
static pthread_mutex_t done_mu = PTHREAD_MUTEX_INITIALIZER;
static atomic_int ndone;
static int64_t done_status[MAX_DONE];
static uint64_t done_job[MAX_DONE];
static int done_spooled[MAX_DONE];
static struct mx_addr collector;

static int col_init(mx_actor_t *self, void *arg, void **state)
{
    return 0;
}

static int col_recv(mx_actor_t *self, void *state, struct mx_msg *m)
{
    struct mx_m_store_job_done d;
    if (m->env.type != MX_T_store_job_done || mx_msg_decode(m, &d) != 0)
        return 0;
    pthread_mutex_lock(&done_mu);
    int i = atomic_load(&ndone);
    if (i < MAX_DONE) {
        done_status[i] = d.status;
        done_job[i] = m->env.corr;
        done_spooled[i] = -1;
        if (m->ptr && m->ptr_free == mx_store_write_free)
            done_spooled[i] = ((struct mx_store_write *)m->ptr)->spooled;
    }
    atomic_store(&ndone, i + 1);
    pthread_mutex_unlock(&done_mu);
    return 0;
}

static const struct mx_behaviour col_beh = {"collector", col_init, col_recv, NULL};

static void reset_done(void)
{
    pthread_mutex_lock(&done_mu);
    atomic_store(&ndone, 0);
    pthread_mutex_unlock(&done_mu);
}

static int setup(void **st)
{
    mx_log_init("test", MX_LOG_WARN, 2);
    if (mysqld_start(&srv) != 0)
        return -1;
    struct mx_system_opts o = {.node_name = "test", .schedulers = 1};
    if (mx_system_start(&o, &sys) != 0)
        return -1;
    struct mx_spawn_opts so = MX_SPAWN_OPTS_DEFAULT;
    so.cap_msgs = 1024;
    return mx_spawn(sys, &col_beh, NULL, &so, &collector);
}

static int teardown(void **st)
{
    if (sys) {
        mx_system_stop(sys, 5000);
        mx_system_free(sys);
    }
    mysqld_destroy(&srv);
    return 0;
}

static mx_mysql_t *pool_start(int threads, uint32_t cap)
{
    mx_mysql_t *p;
    char err[256];
    struct mx_mysql_opts o = {.url = srv.url,
                              .sys = sys,
                              .threads = threads,
                              .queue_cap = cap,
                              .backoff_min_ms = 50,
                              .backoff_max_ms = 200,
                              .rw_timeout_s = 5};
    int rc = mx_mysql_start(&o, &p, err, sizeof(err));
    if (rc != 0)
        fail_msg("pool: %d %s", rc, err);
    return p;
}

static struct mx_mysql_conn *conn(void)
{
    struct mx_mysql_conn *c;
    char err[256];
    int rc = mx_mysql_conn_open(srv.url, NULL, &c, err, sizeof(err));
    if (rc != 0)
        fail_msg("connect: %d %s", rc, err);
    return c;
}

/* ---- schema ---- */

static void test_migrate_twice(void **st)
{
    struct mx_mysql_conn *c = conn();
    int from = -1, to = -1, v = -1;
    char err[256];
    assert_int_equal(mx_schema_migrate(c, &from, &to, err, sizeof(err)), 0);
    assert_int_equal(from, 0);
    assert_int_equal(to, MX_SCHEMA_VERSION);
    assert_int_equal(mx_schema_migrate(c, &from, &to, err, sizeof(err)), 0);
    assert_int_equal(from, MX_SCHEMA_VERSION);
    assert_int_equal(to, MX_SCHEMA_VERSION);
    assert_int_equal(mx_schema_version(c, &v), 0);
    assert_int_equal(v, MX_SCHEMA_VERSION);
    assert_int_equal(mysqld_root_int(&srv, "SELECT COUNT(*) FROM mx.schema_version"),
                     MX_SCHEMA_VERSION);
    /* every table of DESIGN.md section 7, all utf8mb4 */
    assert_int_equal(mysqld_root_int(&srv, "SELECT COUNT(*) FROM information_schema.tables "
                                           "WHERE table_schema='mx' AND table_name IN "
                                           "('game_character','character_equipment','character_"
                                           "like','equipment_expectation_summary','outbox','"
                                           "outbox_dlq','fence','schema_version')"),
                     8);
    assert_int_equal(mysqld_root_int(&srv, "SELECT COUNT(*) FROM information_schema.tables "
                                           "WHERE table_schema='mx' AND table_collation NOT "
                                           "LIKE 'utf8mb4%'"),
                     0);
    /* through the pool too (how mxnode does it at start) */
    mx_mysql_t *p = pool_start(1, 4);
    struct mx_schema_job j;
    assert_int_equal(mx_mysql_run(p, mx_schema_migrate_job, &j), 0);
    assert_int_equal(j.from, MX_SCHEMA_VERSION);
    mx_mysql_stop(p);
    mx_mysql_conn_close(c);
}

static void test_newer_schema_refused(void **st)
{
    struct mx_mysql_conn *c = conn();
    char err[256];
    assert_int_equal(mysqld_root_exec(&srv, "INSERT INTO mx.schema_version (version, name) "
                                            "VALUES (99, 'from the future')"),
                     0);
    assert_int_equal(mx_schema_migrate(c, NULL, NULL, err, sizeof(err)), MX_ECONFIG);
    assert_non_null(strstr(err, "99"));
    char want[32];
    snprintf(want, sizeof(want), "(%d)", MX_SCHEMA_VERSION);
    assert_non_null(strstr(err, want));
    assert_int_equal(mysqld_root_exec(&srv, "DELETE FROM mx.schema_version WHERE version = 99"), 0);
    assert_int_equal(mx_schema_migrate(c, NULL, NULL, err, sizeof(err)), 0);
    mx_mysql_conn_close(c);
}

static void test_access_denied(void **st)
{
    struct mx_mysql_conn *c = NULL;
    char err[256];
    assert_int_equal(mx_mysql_conn_open(srv.bad_url, NULL, &c, err, sizeof(err)), MX_ECONFIG);
    assert_non_null(strstr(err, "Access denied"));
    assert_null(strstr(err, "wrong")); /* no password in messages */
}

/* ---- prepared statements ---- */

struct rows {
    int n;
    char ign[64];
    bool world_null;
    int64_t likes;
};

static int char_row(void *ctx, const struct mx_sql_val *cols, size_t n)
{
    struct rows *r = ctx;
    assert_int_equal(n, 3);
    assert_int_equal(cols[0].kind, MX_SQL_BLOB);
    snprintf(r->ign, sizeof(r->ign), "%.*s", (int)cols[0].len, (const char *)cols[0].p);
    r->world_null = cols[1].kind == MX_SQL_NULL;
    assert_int_equal(cols[2].kind, MX_SQL_INT);
    r->likes = cols[2].i;
    r->n++;
    return 0;
}

static void test_prepared_round_trip(void **st)
{
    struct mx_mysql_conn *c = conn();
    uint64_t aff = 0;
    /* a 1 MiB blob holding every byte value, NULs included */
    size_t blen = 1u << 20;
    uint8_t *blob = malloc(blen);
    for (size_t i = 0; i < blen; i++)
        blob[i] = (uint8_t)(i * 7 + (i >> 8));
    assert_int_equal(mx_store_put_equipment(c, "ocid-blob", blob, blen, 1700000000123ull), 0);
    void *got;
    size_t glen;
    uint64_t at;
    assert_int_equal(mx_store_get_equipment(c, "ocid-blob", &got, &glen, &at), 0);
    assert_int_equal(glen, blen);
    assert_memory_equal(got, blob, blen);
    assert_int_equal(at, 1700000000123ull);
    free(got);
    /* an older write does not replace newer data; a newer one does */
    assert_int_equal(mx_store_put_equipment(c, "ocid-blob", "old", 3, 1600000000000ull), 0);
    assert_int_equal(mx_store_get_equipment(c, "ocid-blob", &got, &glen, &at), 0);
    assert_int_equal(glen, blen);
    free(got);
    assert_int_equal(mx_store_put_equipment(c, "ocid-blob", "new", 3, 1800000000000ull), 0);
    assert_int_equal(mx_store_get_equipment(c, "ocid-blob", &got, &glen, &at), 0);
    assert_int_equal(glen, 3);
    assert_memory_equal(got, "new", 3);
    free(got);
    assert_int_equal(mx_store_get_equipment(c, "nope", &got, &glen, &at), MX_ENOTFOUND);
    free(blob);

    /* utf8mb4 text, NULL, and text that looks like SQL stays data */
    const char *ign = "아델🍁'; DROP TABLE fence; --";
    struct mx_sql_val ins[] = {MX_SQL_S(ign), MX_SQL_S("ocid-u8"), MX_SQL_NUL, MX_SQL_I(42)};
    assert_int_equal(mx_mysql_exec(c,
                                   "INSERT INTO game_character (user_ign, ocid, world_name, "
                                   "like_count) VALUES (?, ?, ?, ?)",
                                   ins, 4, &aff),
                     0);
    assert_int_equal(aff, 1);
    struct rows r = {0};
    uint64_t nrows = 0;
    struct mx_sql_val q[] = {MX_SQL_S("ocid-u8")};
    assert_int_equal(mx_mysql_query(c,
                                    "SELECT user_ign, world_name, like_count FROM "
                                    "game_character WHERE ocid = ?",
                                    q, 1, char_row, &r, &nrows),
                     0);
    assert_int_equal(nrows, 1);
    assert_string_equal(r.ign, ign);
    assert_true(r.world_null);
    assert_int_equal(r.likes, 42);
    TU_ASSERT_CMP(mysqld_root_int(&srv, "SELECT COUNT(*) FROM mx.fence"), >=, 0); /* still there */
    /* duplicate key, wrong value count, bad SQL */
    assert_int_equal(mx_mysql_exec(c,
                                   "INSERT INTO game_character (user_ign, ocid, world_name, "
                                   "like_count) VALUES (?, ?, ?, ?)",
                                   ins, 4, NULL),
                     MX_EEXISTS);
    assert_int_equal(mx_mysql_errno(c), 1062);
    assert_int_equal(mx_mysql_exec(c, "SELECT ?", ins, 2, NULL), MX_EINVAL);
    assert_int_equal(mx_mysql_exec(c, "SELEKT 1", NULL, 0, NULL), MX_EIO);
    assert_false(mx_mysql_broken(c));
    /* UPDATE reports matched rows even when nothing changed */
    struct mx_sql_val up[] = {MX_SQL_I(42), MX_SQL_S("ocid-u8")};
    assert_int_equal(
        mx_mysql_exec(c, "UPDATE game_character SET like_count = ? WHERE ocid = ?", up, 2, &aff),
        0);
    assert_int_equal(aff, 1);
    /* more statements than the cache holds still work (eviction) */
    for (int i = 0; i < MX_MYSQL_STMT_CACHE + 10; i++) {
        char sql[64];
        int64_t v;
        bool found;
        snprintf(sql, sizeof(sql), "SELECT %d + ?", i);
        struct mx_sql_val one[] = {MX_SQL_I(1)};
        assert_int_equal(mx_mysql_query_int(c, sql, one, 1, &v, &found), 0);
        assert_true(found);
        assert_int_equal(v, i + 1);
    }
    mx_mysql_conn_close(c);
}

/* ---- fencing ---- */

struct like_arg {
    const char *liker;
};

static int write_like(struct mx_mysql_conn *c, void *arg)
{
    struct like_arg *a = arg;
    struct mx_sql_val v[] = {MX_SQL_S("target-1"), MX_SQL_S(a->liker)};
    return mx_mysql_exec(c,
                         "INSERT INTO character_like (target_ocid, liker_account_id) VALUES "
                         "(?, ?)",
                         v, 2, NULL);
}

static void test_fenced_write(void **st)
{
    struct mx_mysql_conn *c = conn();
    struct like_arg a1 = {"acct-1"}, a2 = {"acct-2"}, a3 = {"acct-3"}, a4 = {"acct-4"};
    assert_int_equal(mx_mysql_fenced(c, "like-sync", 5, write_like, &a1), 0);
    /* an older holder (epoch 3) writes nothing */
    assert_int_equal(mx_mysql_fenced(c, "like-sync", 3, write_like, &a2), MX_ESTALE);
    assert_int_equal(mysqld_root_int(&srv, "SELECT COUNT(*) FROM mx.character_like WHERE "
                                           "liker_account_id = 'acct-2'"),
                     0);
    assert_int_equal(mysqld_root_int(&srv, "SELECT epoch FROM mx.fence WHERE name='like-sync'"), 5);
    /* the same holder again, then a newer one */
    assert_int_equal(mx_mysql_fenced(c, "like-sync", 5, write_like, &a3), 0);
    assert_int_equal(mx_mysql_fenced(c, "like-sync", 6, write_like, &a4), 0);
    assert_int_equal(mx_mysql_fenced(c, "like-sync", 5, write_like, &a2), MX_ESTALE);
    /* a failing write rolls the fence back too */
    assert_int_equal(mx_mysql_fenced(c, "like-sync", 9, write_like, &a1), MX_EEXISTS);
    assert_int_equal(mysqld_root_int(&srv, "SELECT epoch FROM mx.fence WHERE name='like-sync'"), 6);
    assert_int_equal(mysqld_root_int(&srv, "SELECT COUNT(*) FROM mx.character_like"), 3);
    /* fences are independent */
    assert_int_equal(mx_mysql_fenced(c, "outbox", 1, write_like, &(struct like_arg){"o-1"}), 0);
    mx_mysql_conn_close(c);
}

/* ---- the pool ---- */

static atomic_int gate_open;
static atomic_int gate_entered;

static int gate_job(struct mx_mysql_conn *c, void *arg)
{
    atomic_fetch_add(&gate_entered, 1);
    while (!atomic_load(&gate_open))
        usleep(1000);
    return 0;
}

static int select1_job(struct mx_mysql_conn *c, void *arg)
{
    int64_t v = 0;
    bool found = false;
    int rc = mx_mysql_query_int(c, "SELECT 1", NULL, 0, &v, &found);
    if (rc == 0 && (!found || v != 1))
        return MX_EINTERNAL;
    return rc;
}

static atomic_int fallback_calls, fallback_null;

/* a write with a fallback: counts its calls and those made with c == NULL */
static int fallback_job(struct mx_mysql_conn *c, void *arg)
{
    atomic_fetch_add(&fallback_calls, 1);
    if (!c)
        atomic_fetch_add(&fallback_null, 1);
    return 0;
}

static void *open_gate_later(void *arg)
{
    usleep(200000);
    atomic_store(&gate_open, 1);
    return NULL;
}

static void test_pool_bound(void **st)
{
    mx_mysql_t *p = pool_start(1, 2);
    struct mx_mysql_health h;
    uint64_t job;
    int *arg = malloc(sizeof(int));
    reset_done();
    atomic_store(&gate_open, 0);
    atomic_store(&gate_entered, 0);
    assert_int_equal(mx_mysql_submit(p, gate_job, NULL, NULL, collector, &job), 0);
    assert_true(TU_WAIT_UNTIL(atomic_load(&gate_entered) == 1, 5000));
    assert_int_equal(mx_mysql_submit(p, select1_job, NULL, NULL, collector, NULL), 0);
    assert_int_equal(mx_mysql_submit(p, select1_job, arg, free, collector, NULL), 0);
    int *arg2 = malloc(sizeof(int));
    assert_int_equal(mx_mysql_submit(p, select1_job, arg2, free, collector, NULL), MX_EFULL);
    free(arg2); /* refused: still ours */
    assert_int_equal(mx_mysql_run(p, select1_job, NULL), MX_EFULL);
    mx_mysql_health(p, &h);
    assert_int_equal(h.refused, 2);
    assert_int_equal(h.queued, 2);
    assert_int_equal(h.queue_cap, 2);
    atomic_store(&gate_open, 1);
    assert_true(TU_WAIT_UNTIL(atomic_load(&ndone) == 3, 5000));
    for (int i = 0; i < 3; i++)
        assert_int_equal(done_status[i], 0);
    assert_int_equal(done_job[0], job);
    mx_mysql_health(p, &h);
    assert_true(h.up);
    assert_int_equal(h.jobs_ok, 3);
    assert_int_equal(mx_mysql_submit(p, NULL, NULL, NULL, collector, NULL), MX_EINVAL);

    /* stop with queued jobs: nothing queued is dropped. A read completes
     * with MX_ESTOPPED, unrun; a write with a fallback (MX_MYSQL_CALL_DOWN,
     * the store's spool) runs it with c == NULL. (Before the shutdown
     * coordinator, queued writes were completed with MX_ESTOPPED too.) */
    reset_done();
    atomic_store(&gate_open, 0);
    atomic_store(&gate_entered, 0);
    atomic_store(&fallback_calls, 0);
    atomic_store(&fallback_null, 0);
    assert_int_equal(mx_mysql_submit(p, gate_job, NULL, NULL, collector, NULL), 0);
    assert_true(TU_WAIT_UNTIL(atomic_load(&gate_entered) == 1, 5000));
    assert_int_equal(mx_mysql_submit(p, select1_job, malloc(4), free, collector, NULL), 0);
    assert_int_equal(
        mx_mysql_submit_ex(p, fallback_job, NULL, NULL, collector, MX_MYSQL_CALL_DOWN, NULL), 0);
    /* the gate opens only after stop began: both queued jobs are left */
    pthread_t opener;
    pthread_create(&opener, NULL, open_gate_later, NULL);
    mx_mysql_stop(p);
    pthread_join(opener, NULL);
    assert_true(TU_WAIT_UNTIL(atomic_load(&ndone) == 3, 5000));
    assert_int_equal(done_status[0], 0);           /* the gate ran */
    assert_int_equal(done_status[1], MX_ESTOPPED); /* the read: unrun */
    assert_int_equal(done_status[2], 0);           /* the write: its fallback ran */
    assert_int_equal(atomic_load(&fallback_calls), 1);
    assert_int_equal(atomic_load(&fallback_null), 1); /* with c == NULL */
}

/* mx_mysql_drain: what fits in the budget runs; the rest of the queue is
 * finished unrun at once (writes through their fallback, reads stopped),
 * and later writes take the fallback without waiting for the server. */
static void test_drain(void **st)
{
    mx_mysql_t *p = pool_start(1, 16);
    struct mx_mysql_drain_stats ds;
    /* an idle pool drains at once */
    assert_int_equal(mx_mysql_drain(p, 1000, &ds), 0);
    assert_int_equal(ds.queued_at_start, 0);
    TU_ASSERT_CMP(ds.took_ms, <, 100);
    reset_done();
    atomic_store(&gate_open, 0);
    atomic_store(&gate_entered, 0);
    atomic_store(&fallback_calls, 0);
    atomic_store(&fallback_null, 0);
    assert_int_equal(mx_mysql_submit(p, gate_job, NULL, NULL, collector, NULL), 0);
    assert_true(TU_WAIT_UNTIL(atomic_load(&gate_entered) == 1, 5000));
    for (int i = 0; i < 3; i++)
        assert_int_equal(
            mx_mysql_submit_ex(p, fallback_job, NULL, NULL, collector, MX_MYSQL_CALL_DOWN, NULL),
            0);
    assert_int_equal(mx_mysql_submit(p, select1_job, NULL, NULL, collector, NULL), 0);
    int64_t t0 = tu_now_ms();
    assert_int_equal(mx_mysql_drain(p, 200, &ds), MX_ETIMEDOUT);
    int64_t took = tu_now_ms() - t0;
    TU_ASSERT_CMP(took, >=, 190);
    TU_ASSERT_CMP(took, <, 1000);
    assert_int_equal(ds.queued_at_start, 5);
    assert_int_equal(ds.spooled, 3);
    assert_int_equal(ds.cancelled, 1);
    assert_int_equal(ds.failed, 0);
    assert_int_equal(ds.inflight, 1); /* the gate */
    assert_int_equal(atomic_load(&fallback_null), 3);
    /* later writes go to their fallback without trying the server */
    assert_int_equal(
        mx_mysql_submit_ex(p, fallback_job, NULL, NULL, collector, MX_MYSQL_CALL_DOWN, NULL), 0);
    atomic_store(&gate_open, 1);
    assert_true(TU_WAIT_UNTIL(atomic_load(&ndone) == 6, 5000));
    assert_int_equal(atomic_load(&fallback_null), 4);
    /* a cut ends a waiting drain at once */
    atomic_store(&gate_open, 0);
    atomic_store(&gate_entered, 0);
    assert_int_equal(mx_mysql_submit(p, gate_job, NULL, NULL, collector, NULL), 0);
    assert_true(TU_WAIT_UNTIL(atomic_load(&gate_entered) == 1, 5000));
    mx_mysql_cut(p);
    t0 = tu_now_ms();
    assert_int_equal(mx_mysql_drain(p, 5000, &ds), MX_ETIMEDOUT);
    TU_ASSERT_CMP(tu_now_ms() - t0, <, 500);
    atomic_store(&gate_open, 1);
    mx_mysql_stop(p);
}

static void test_outage_and_reconnect(void **st)
{
    mx_mysql_t *p = pool_start(2, 64);
    struct mx_mysql_health h;
    for (int i = 0; i < 4; i++)
        assert_int_equal(mx_mysql_run(p, select1_job, NULL), 0);
    mx_mysql_health(p, &h);
    assert_true(h.up);
    uint64_t connects_before = h.connects;

    assert_int_equal(mysqld_kill(&srv), 0);
    /* every job fails fast with MX_EUNAVAIL while the server is down */
    int64_t t0 = tu_now_ms();
    for (int i = 0; i < 20; i++)
        assert_int_equal(mx_mysql_run(p, select1_job, NULL), MX_EUNAVAIL);
    int64_t took = tu_now_ms() - t0;
    printf("{\"bench\": \"mysql_down_20_jobs\", \"value\": %lld, \"unit\": \"ms\"}\n",
           (long long)took);
    TU_ASSERT_CMP(took, <, 3000);
    /* async jobs too */
    reset_done();
    for (int i = 0; i < 5; i++)
        assert_int_equal(mx_mysql_submit(p, select1_job, NULL, NULL, collector, NULL), 0);
    assert_true(TU_WAIT_UNTIL(atomic_load(&ndone) == 5, 5000));
    for (int i = 0; i < 5; i++)
        assert_int_equal(done_status[i], MX_EUNAVAIL);
    mx_mysql_health(p, &h);
    assert_false(h.up);
    TU_ASSERT_CMP(h.down_since_ms, >, 0);
    TU_ASSERT_CMP(h.jobs_unavail, >=, 25);
    TU_ASSERT_CMP(h.disconnects, >=, 1);

    /* back up: the same pool recovers without a restart */
    int64_t t1 = tu_now_ms();
    assert_int_equal(mysqld_restart(&srv), 0);
    int64_t t2 = tu_now_ms();
    int rc = MX_EUNAVAIL;
    while (rc != 0 && tu_now_ms() - t2 < 10000) {
        rc = mx_mysql_run(p, select1_job, NULL);
        if (rc != 0)
            usleep(20000);
    }
    assert_int_equal(rc, 0);
    printf("{\"bench\": \"mysql_restart\", \"value\": %lld, \"unit\": \"ms\"}\n",
           (long long)(t2 - t1));
    printf("{\"bench\": \"mysql_recover_after_ready\", \"value\": %lld, \"unit\": \"ms\"}\n",
           (long long)(tu_now_ms() - t2));
    for (int i = 0; i < 20; i++)
        assert_int_equal(mx_mysql_run(p, select1_job, NULL), 0);
    mx_mysql_health(p, &h);
    assert_true(h.up);
    assert_int_equal(h.down_since_ms, 0);
    TU_ASSERT_CMP(h.connects, >, connects_before);
    mx_mysql_stop(p);
}

static void test_spool_during_outage(void **st)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/writes.spool", srv.dir);
    mx_spool_t *sp;
    struct mx_spool_opts so = {.path = path, .max_records = 1000};
    assert_int_equal(mx_spool_open(&so, &sp), 0);
    mx_mysql_t *p = pool_start(2, 128);
    const int N = 30;
    long long before = mysqld_root_int(&srv, "SELECT COUNT(*) FROM mx.game_character");
    TU_ASSERT_CMP(before, >=, 0);

    assert_int_equal(mysqld_kill(&srv), 0);
    reset_done();
    for (int i = 0; i < N; i++) {
        char ign[32], ocid[32];
        snprintf(ign, sizeof(ign), "spooled-%d", i);
        snprintf(ocid, sizeof(ocid), "ocid-sp-%d", i);
        struct mx_store_character ch = {ign, ocid, "루나", "아크메이지(불,독)", NULL};
        struct mx_store_write *w = calloc(1, sizeof(*w));
        w->spool = sp;
        w->kind = MX_STORE_REC_CHARACTER;
        assert_int_equal(mx_store_rec_character(&ch, mx_unix_ms(), &w->rec, &w->len), 0);
        assert_int_equal(mx_mysql_submit_ex(p, mx_store_write_job, w, mx_store_write_free,
                                            collector, MX_MYSQL_CALL_DOWN, NULL),
                         0);
    }
    assert_true(TU_WAIT_UNTIL(atomic_load(&ndone) == N, 10000));
    for (int i = 0; i < N; i++) {
        assert_int_equal(done_status[i], 0);
        assert_int_equal(done_spooled[i], 1);
    }
    struct mx_spool_stats ss;
    mx_spool_stats(sp, &ss);
    assert_int_equal(ss.records, N);

    /* the node "crashes" too: reopen the spool from its file */
    mx_mysql_stop(p);
    mx_spool_close(sp);
    assert_int_equal(mx_spool_open(&so, &sp), 0);
    p = pool_start(2, 128);

    assert_int_equal(mysqld_restart(&srv), 0);
    int rc = MX_EUNAVAIL;
    int64_t t0 = tu_now_ms();
    while (rc != 0 && tu_now_ms() - t0 < 10000) {
        rc = mx_mysql_run(p, mx_store_replay_job, sp);
        if (rc != 0)
            usleep(20000);
    }
    assert_int_equal(rc, 0);
    assert_int_equal(mysqld_root_int(&srv, "SELECT COUNT(*) FROM mx.game_character WHERE "
                                           "user_ign LIKE 'spooled-%'"),
                     N);
    assert_int_equal(mysqld_root_int(&srv, "SELECT COUNT(*) FROM mx.game_character"), before + N);
    mx_spool_stats(sp, &ss);
    assert_int_equal(ss.records, 0);
    assert_int_equal(ss.bytes, 0);
    assert_true(mx_spool_idle(sp));

    /* the same writes replayed again (a crash before truncation) change
     * nothing: upserts */
    for (int i = 0; i < N; i++) {
        char ign[32], ocid[32];
        uint8_t *rec;
        uint32_t len;
        snprintf(ign, sizeof(ign), "spooled-%d", i);
        snprintf(ocid, sizeof(ocid), "ocid-sp-%d", i);
        struct mx_store_character ch = {ign, ocid, "루나", "아크메이지(불,독)", NULL};
        assert_int_equal(mx_store_rec_character(&ch, 1, &rec, &len), 0);
        assert_int_equal(mx_spool_append(sp, MX_STORE_REC_CHARACTER, rec, len), 0);
        free(rec);
    }
    assert_int_equal(mx_mysql_run(p, mx_store_replay_job, sp), 0);
    assert_int_equal(mysqld_root_int(&srv, "SELECT COUNT(*) FROM mx.game_character"), before + N);
    assert_int_equal(mysqld_root_int(&srv, "SELECT COUNT(*) FROM mx.game_character WHERE "
                                           "world_name = '루나'"),
                     N);

    /* with MySQL up, writes go straight in */
    reset_done();
    struct mx_store_write *w = calloc(1, sizeof(*w));
    w->spool = sp;
    w->kind = MX_STORE_REC_EQUIPMENT;
    assert_int_equal(mx_store_rec_equipment("ocid-sp-0", "gz", 2, mx_unix_ms(), &w->rec, &w->len),
                     0);
    assert_int_equal(mx_mysql_submit_ex(p, mx_store_write_job, w, mx_store_write_free, collector,
                                        MX_MYSQL_CALL_DOWN, NULL),
                     0);
    assert_true(TU_WAIT_UNTIL(atomic_load(&ndone) == 1, 5000));
    assert_int_equal(done_status[0], 0);
    assert_int_equal(done_spooled[0], 0);
    assert_int_equal(mysqld_root_int(&srv, "SELECT LENGTH(equipment) FROM "
                                           "mx.character_equipment WHERE ocid='ocid-sp-0'"),
                     2);
    mx_mysql_stop(p);
    mx_spool_close(sp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_migrate_twice),
        cmocka_unit_test(test_newer_schema_refused),
        cmocka_unit_test(test_access_denied),
        cmocka_unit_test(test_prepared_round_trip),
        cmocka_unit_test(test_fenced_write),
        cmocka_unit_test(test_pool_bound),
        cmocka_unit_test(test_drain),
        cmocka_unit_test(test_outage_and_reconnect),
        cmocka_unit_test(test_spool_during_outage),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
