/* health.c - the mysql-health singleton and the reader of its reports.
 *
 * The actor runs only on the lease holder (mx_lease.h). Each probe is a
 * pool job: SELECT 1 inside mx_mysql_fenced("mysql-health", seq), so the
 * probe is also a fenced write - after a takeover the fence row holds the
 * new holder's counter and an old holder's probe changes nothing
 * (MX_ESTALE: it stops itself). The result is published through the
 * registry thread with a Lua script that refuses a report older than the
 * one stored. Reports reach every node over pub/sub and the periodic
 * re-read; the latest one lives in a small mutex-guarded struct mirrored
 * into atomics for mx_health_mysql_up.
 */
#include "mx_health.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mx_err.h"
#include "mx_log.h"
#include "mx_metrics.h"
#include "mx_outbox.h"

#define FENCE_NAME "mysql-health"

/* written by the registry thread (reports) and the singleton (probes),
 * which may run on any scheduler over time: shared writes */
MX_METRICS_STRUCT(health_metrics, MX_HEALTH_METRICS);
#define MX_METRICS_TYPE struct health_metrics
static const struct mx_metric_desc health_desc[] = {MX_HEALTH_METRICS(MX_METRIC_DESC)};
#undef MX_METRICS_TYPE

static struct {
    mx_registry_t *reg;
    mx_mysql_t *mysql;
    uint32_t probe_ms;
    char key[200];
    mx_redis_script_t *s_publish; /* registry thread */
    pthread_mutex_t mu;
    int state;               /* guarded by mu: 1 up, 0 down, -1 none */
    uint64_t seq;            /* guarded by mu */
    char node[64];           /* guarded by mu */
    int64_t at_ms;           /* guarded by mu: monotonic ms the report arrived */
    _Atomic int fast_state;  /* mirror of state for lock-free reads (relaxed) */
    _Atomic int64_t fast_at; /* mirror of at_ms (relaxed: a racing pair errs by one report) */
    struct health_metrics m; /* probes, stale, reports, mysql_up */
    _Atomic int metrics_id;  /* mx_metrics_register_once */
} g = {.mu = PTHREAD_MUTEX_INITIALIZER, .state = -1, .fast_state = -1};

/* KEYS health; ARGV state, seq, epoch, node, at, channel, ttl */
static const char LUA_PUBLISH[] =
    "local cur = redis.call('HGET', KEYS[1], 'seq')\n"
    "if cur and tonumber(cur) > tonumber(ARGV[2]) then return 0 end\n"
    "redis.call('HSET', KEYS[1], 'state', ARGV[1], 'seq', ARGV[2], 'epoch', ARGV[3],"
    " 'node', ARGV[4], 'at', ARGV[5])\n"
    "redis.call('PEXPIRE', KEYS[1], ARGV[7])\n"
    "redis.call('PUBLISH', ARGV[6], 'health ' .. ARGV[1] .. ' ' .. ARGV[2] .. ' ' .. ARGV[4])\n"
    "return 1\n";

/* Take a report (registry thread): newer or equal counters win. */
static void take_report(int state, uint64_t seq, const char *node)
{
    pthread_mutex_lock(&g.mu);
    if (seq >= g.seq || g.state == -1 || mx_now_ms() - g.at_ms > 5 * (int64_t)g.probe_ms) {
        if (g.state != state)
            MX_INFO("mysql-health: MySQL is %s (reported by %s, epoch %llu)", state ? "up" : "down",
                    node, (unsigned long long)seq);
        g.state = state;
        g.seq = seq;
        snprintf(g.node, sizeof g.node, "%s", node);
        g.at_ms = mx_now_ms();
        atomic_store_explicit(&g.fast_state, state, memory_order_relaxed);
        atomic_store_explicit(&g.fast_at, g.at_ms, memory_order_relaxed);
        MX_METRIC_INC_SHARED(&g.m, reports);
        atomic_store_explicit(&g.m.mysql_up, state == 1, memory_order_relaxed); /* a gauge */
    }
    pthread_mutex_unlock(&g.mu);
}

static void on_event(void *ctx, const char *p, size_t len)
{
    char buf[160], st[8], node[64];
    unsigned long long seq;
    if (len >= sizeof buf || len < 7 || memcmp(p, "health ", 7) != 0)
        return;
    memcpy(buf, p, len);
    buf[len] = '\0';
    if (sscanf(buf, "health %7s %llu %63s", st, &seq, node) == 3)
        take_report(!strcmp(st, "up"), seq, node);
}

static void on_read(mx_redis_t *r, int status, const redisReply *rep, void *arg)
{
    if (status != 0 || rep->type != REDIS_REPLY_ARRAY || rep->elements != 3)
        return;
    const redisReply *st = rep->element[0], *seq = rep->element[1], *node = rep->element[2];
    if (st->type != REDIS_REPLY_STRING || seq->type != REDIS_REPLY_STRING ||
        node->type != REDIS_REPLY_STRING)
        return;
    char nb[64];
    snprintf(nb, sizeof nb, "%.*s", (int)node->len, node->str);
    take_report(mx_redis_reply_is(st, "up"), strtoull(seq->str, NULL, 10), nb);
}

/* Every registry tick: re-read the report (a lost pub/sub message or a
 * node that just started). */
static void on_tick(void *ctx)
{
    mx_redis_t *r = mx_registry_redis(g.reg);
    mx_redis_command(r, on_read, NULL, "HMGET %s state seq node", g.key);
}

/* ---- publishing (registry thread) ---- */

struct report {
    int up;
    uint64_t seq, epoch;
    char node[64];
};

static void published(mx_redis_t *r, int status, const redisReply *rep, void *arg)
{
    if (status != 0 && status != MX_ESTOPPED)
        MX_DEBUG("mysql-health: publish failed: %s", mx_strerror(status));
}

static void publish_on_thread(void *arg)
{
    struct report *rp = arg;
    mx_redis_t *r = mx_registry_redis(g.reg);
    if (!g.s_publish && mx_redis_script(r, LUA_PUBLISH, &g.s_publish) != 0) {
        free(rp);
        return;
    }
    char seq[24], epoch[24], at[24], ttl[16];
    snprintf(seq, sizeof seq, "%llu", (unsigned long long)rp->seq);
    snprintf(epoch, sizeof epoch, "%llu", (unsigned long long)rp->epoch);
    snprintf(at, sizeof at, "%llu", (unsigned long long)mx_unix_ms());
    snprintf(ttl, sizeof ttl, "%u", 5 * g.probe_ms);
    const char *argv[] = {g.key, rp->up ? "up" : "down",     seq, epoch, rp->node,
                          at,    mx_registry_channel(g.reg), ttl};
    mx_redis_eval(r, g.s_publish, published, NULL, 1, 8, argv, NULL);
    free(rp);
}

/* ---- the singleton actor ---- */

struct hstate {
    bool inflight;
    uint64_t timer;
    int last_up; /* outbox alerts: -1 unknown, else the last probe's result */
};

struct probe {
    uint64_t seq;
};

static int select1(struct mx_mysql_conn *c, void *arg)
{
    int64_t one = 0;
    bool found = false;
    int rc = mx_mysql_query_int(c, "SELECT 1", NULL, 0, &one, &found);
    return rc == 0 && (!found || one != 1) ? MX_EIO : rc;
}

static int probe_job(struct mx_mysql_conn *c, void *arg)
{
    struct probe *p = arg;
    /* the fence wants the plain counter: the singleton id is constant for
     * this fence row, and full epochs may exceed INT64_MAX */
    return mx_mysql_fenced(c, FENCE_NAME, p->seq, select1, NULL);
}

static int h_init(mx_actor_t *self, void *arg, void **state)
{
    struct hstate *h = calloc(1, sizeof *h);
    if (!h)
        return MX_ENOMEM;
    h->last_up = -1;
    struct mx_msg *tick = mx_msg_new(MX_T_sys_tick, 0);
    int rc = mx_timer_start(self, 0, g.probe_ms, tick, &h->timer);
    if (rc != 0) {
        mx_msg_free(tick);
        free(h);
        return rc;
    }
    MX_INFO("mysql-health: probing MySQL every %u ms (epoch %llu)", g.probe_ms,
            (unsigned long long)(mx_singleton_epoch() & MX_EPOCH_SEQ_MASK));
    *state = h;
    return 0;
}

static int h_receive(mx_actor_t *self, void *state, struct mx_msg *m)
{
    struct hstate *h = state;
    uint64_t seq = mx_singleton_epoch() & MX_EPOCH_SEQ_MASK;
    if (m->env.type == MX_T_sys_tick) {
        if (h->inflight)
            return 0;
        struct probe *p = malloc(sizeof *p);
        if (!p)
            return MX_ENOMEM;
        p->seq = seq;
        if (mx_mysql_submit(g.mysql, probe_job, p, free, mx_self(self), NULL) != 0) {
            free(p);
            return 0; /* queue full: the pool is overwhelmed; next tick */
        }
        h->inflight = true;
        return 0;
    }
    if (m->env.type != MX_T_store_job_done)
        return 0;
    h->inflight = false;
    struct mx_m_store_job_done d;
    if (mx_msg_decode(m, &d) != 0)
        return 0;
    MX_METRIC_INC_SHARED(&g.m, probes);
    if (d.status == MX_ESTALE) {
        MX_METRIC_INC_SHARED(&g.m, stale);
        MX_WARN("mysql-health: a newer holder fenced MySQL; stopping (epoch %llu)",
                (unsigned long long)seq);
        mx_exit(self);
        return 0;
    }
    if (!mx_singleton_valid())
        return 0; /* past our deadline: publish nothing */
    struct report *rp = calloc(1, sizeof *rp);
    if (!rp)
        return MX_ENOMEM;
    rp->up = d.status == 0;
    if (h->last_up != -1 && h->last_up != rp->up) /* outbox: MySQL down/up alert */
        mx_alert_raise(rp->up ? "mysql-up" : "mysql-down", rp->up ? 0 : 2,
                       rp->up ? "MySQL is up again" : "MySQL is down",
                       rp->up ? "The mysql-health probe reaches MySQL again."
                              : "The mysql-health probe cannot reach MySQL: writes are spooled"
                                " and donations answer 503.");
    h->last_up = rp->up;
    rp->seq = seq;
    rp->epoch = mx_singleton_epoch();
    snprintf(rp->node, sizeof rp->node, "%s", mx_system_node_name(mx_system_of(self)));
    if (mx_registry_call(g.reg, publish_on_thread, rp) != 0)
        free(rp);
    return 0;
}

static void h_stop(mx_actor_t *self, void *state)
{
    free(state);
}

static const struct mx_behaviour health_beh = {MX_HEALTH_SINGLETON, h_init, h_receive, h_stop};

int mx_health_start(mx_registry_t *reg, mx_leases_t *lm, const struct mx_health_opts *o)
{
    g.reg = reg;
    g.mysql = o ? o->mysql : NULL;
    g.probe_ms = o && o->probe_ms ? o->probe_ms : 1000;
    mx_registry_key(reg, "mysql-health", g.key, sizeof g.key);
    mx_metrics_register_once(&g.metrics_id, "health", "mysql", health_desc,
                             sizeof health_desc / sizeof *health_desc, &g.m);
    int rc = mx_registry_listen(reg, on_event, NULL);
    if (rc == 0)
        rc = mx_registry_on_tick(reg, on_tick, NULL);
    if (rc == 0 && g.mysql && lm)
        rc = mx_singleton(lm, MX_HEALTH_SINGLETON, &health_beh, NULL, NULL);
    return rc;
}

bool mx_health_mysql_up(void)
{
    /* relaxed: two independent hints; see fast_at */
    int st = atomic_load_explicit(&g.fast_state, memory_order_relaxed);
    int64_t at = atomic_load_explicit(&g.fast_at, memory_order_relaxed);
    if (st >= 0 && mx_now_ms() - at <= 5 * (int64_t)g.probe_ms)
        return st == 1;
    if (g.mysql) {
        struct mx_mysql_health h;
        mx_mysql_health(g.mysql, &h);
        return h.up;
    }
    return false;
}

void mx_health_view(struct mx_health_view *o)
{
    memset(o, 0, sizeof *o);
    pthread_mutex_lock(&g.mu);
    bool fresh = g.state >= 0 && mx_now_ms() - g.at_ms <= 5 * (int64_t)g.probe_ms;
    o->state = fresh ? g.state : -1;
    o->seq = g.seq;
    snprintf(o->node, sizeof o->node, "%s", g.node);
    o->age_ms = g.state >= 0 ? mx_now_ms() - g.at_ms : -1;
    pthread_mutex_unlock(&g.mu);
    o->probes = MX_METRIC_GET(&g.m, probes);
    o->stale = MX_METRIC_GET(&g.m, stale);
}
