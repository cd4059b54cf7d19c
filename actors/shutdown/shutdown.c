/* shutdown.c - the shutdown-coordinator actor (see mx_shutdown.h,
 * docs/shutdown.md).
 *
 * Why an actor: the phases wait on things that arrive as messages (the
 * cache shards' latch replies, timers, offloaded blocking steps), and a
 * second signal or the deadline must be able to cut whatever phase runs.
 * The coordinator never blocks: blocking steps (lease hand-over, the MySQL
 * drain, leaving the registry) run on the offload pool, each bounded by its
 * phase budget, and come back as a message. Other threads reach it only
 * through its mailbox (shutdown_cmd); the main thread learns the end from
 * an eventfd.
 */
#include "mx_shutdown.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "mx_err.h"
#include "mx_log.h"
#include "mx_metrics.h"

#define TICK_MS 10
#define MAX_SHARDS 256

enum op {
    OP_SHUTDOWN = 1,
    OP_DRAIN = 2,
    OP_UNDRAIN = 3,
    OP_CUT = 4,
    OP_DEADLINE = 5,
    OP_TICK = 6,
    OP_STEP_DONE = 7, /* an offloaded step finished */
};

enum mode { M_IDLE, M_DRAIN, M_SHUTDOWN };

MX_METRICS_STRUCT(sd_metrics, MX_SHUTDOWN_METRICS);
#define MX_METRICS_TYPE struct sd_metrics
static const struct mx_metric_desc sd_desc[] = {MX_SHUTDOWN_METRICS(MX_METRIC_DESC)};
#undef MX_METRICS_TYPE

struct mx_shutdown {
    mx_system_t *sys;
    struct mx_shutdown_opts o;
    struct mx_addr addr;
    int efd; /* eventfd: written once, when the coordinator finished */

    /* read by other threads: atomics (each comment gives the order) */
    _Atomic int64_t deadline_at; /* relaxed: advisory for the main thread's backstop */
    _Atomic bool shutting;       /* relaxed: refuses drain/undrain once a shutdown began */
    _Atomic bool draining;       /* relaxed: a flag for stats */
    _Atomic int signals;         /* relaxed: count of stop signals */
    struct sd_metrics m;         /* written by the coordinator's thread only */
    int metrics_id;              /* mx_metrics_register's; 0 refused */

    /* the coordinator's thread only */
    enum mode mode;
    int phase;    /* running phase, MX_SD_IDLE between runs (set_phase) */
    bool drained; /* phases 1-4 are done (a drain, or a shutdown past them) */
    bool undrain_pending;
    bool busy;    /* an offloaded step or latch requests are outstanding */
    uint64_t job; /* the offloaded step's job id */
    uint64_t tick_id;
    bool ticking;
    int64_t t_first; /* first signal (mx_now_ms), 0 = none */
    int64_t phase_t0, phase_until;
    bool cut;
    bool budget_cut;  /* a phase ended by its budget with work left (exit 3, later phases run) */
    bool final_spool; /* the offloaded step is the spooling after a cut */
    struct mx_http_stats hs0;
    /* phase 4 */
    uint64_t lat_corr[MAX_SHARDS];
    uint32_t lat_sent, lat_answered;
    uint64_t lat_flights;

    /* written by the offloaded step while busy, read after its message */
    int step_rc;
    struct mx_mysql_drain_stats md_step;

    struct mx_shutdown_result res; /* published to the main thread through efd */
};

static const char *const phase_names[] = {"idle",  "drain-grace", "http",     "leases", "latches",
                                          "mysql", "singletons",  "registry", "done"};

/* the running phase, and its gauge */
static void set_phase(mx_shutdown_t *sd, int phase)
{
    sd->phase = phase;
    MX_METRIC_SET(&sd->m, phase, phase);
}

const char *mx_shutdown_phase_name(int phase)
{
    return phase >= 0 && phase <= MX_SD_DONE ? phase_names[phase] : "?";
}

uint32_t mx_shutdown_budget_ms(const struct mx_shutdown_opts *o, int phase)
{
    uint64_t rest = o->timeout_ms > o->drain_grace_ms ? o->timeout_ms - o->drain_grace_ms : 0;
    switch (phase) {
    case MX_SD_GRACE:
        return o->drain_grace_ms;
    case MX_SD_HTTP:
        return (uint32_t)(rest * 40 / 100);
    case MX_SD_LEASES:
        return (uint32_t)(rest * 15 / 100);
    case MX_SD_LATCHES:
        return (uint32_t)(rest * 10 / 100);
    case MX_SD_MYSQL:
        return (uint32_t)(rest * 20 / 100);
    case MX_SD_REGISTRY:
        return (uint32_t)(rest * 10 / 100);
    default:
        return 0; /* singletons: a check; 5 % of the rest is left for stopping the actors */
    }
}

static int send_op(mx_shutdown_t *sd, uint64_t op)
{
    struct mx_m_shutdown_cmd c = {.op = op};
    struct mx_msg *m;
    int rc = mx_msg_encode(MX_T_shutdown_cmd, &c, &m);
    if (rc == 0 && (rc = mx_sys_send(sd->sys, sd->addr, m)) != 0)
        mx_msg_free(m);
    return rc;
}

/* ---- phases ---- */

static void next_phase(mx_actor_t *self, mx_shutdown_t *sd);
static void run_phase(mx_actor_t *self, mx_shutdown_t *sd, int phase);
static void finish(mx_actor_t *self, mx_shutdown_t *sd);
static void mark_budget_cut(mx_shutdown_t *sd);
static void end_phase(mx_actor_t *self, mx_shutdown_t *sd);

static int64_t phase_ms(const mx_shutdown_t *sd)
{
    return mx_now_ms() - sd->phase_t0;
}

static void log_phase(const mx_shutdown_t *sd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void log_phase(const mx_shutdown_t *sd, const char *fmt, ...)
{
    char what[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    int64_t took = phase_ms(sd);
    uint32_t budget = mx_shutdown_budget_ms(&sd->o, sd->phase);
    bool over = budget && took > (int64_t)budget + TICK_MS;
    mx_log(over ? MX_LOG_WARN : MX_LOG_INFO, "shutdown phase %d/7 %s: %lld ms (budget %u)%s: %s",
           sd->phase, mx_shutdown_phase_name(sd->phase), (long long)took, budget,
           over ? ", over budget" : "", what);
}

static void start_ticks(mx_actor_t *self, mx_shutdown_t *sd)
{
    if (sd->ticking)
        return;
    struct mx_m_shutdown_cmd c = {.op = OP_TICK};
    struct mx_msg *m;
    if (mx_msg_encode(MX_T_shutdown_cmd, &c, &m) != 0)
        return;
    if (mx_timer_start(self, TICK_MS, TICK_MS, m, &sd->tick_id) != 0) {
        mx_msg_free(m);
        return;
    }
    sd->ticking = true;
}

static void stop_ticks(mx_actor_t *self, mx_shutdown_t *sd)
{
    if (sd->ticking)
        mx_timer_cancel(self, sd->tick_id);
    sd->ticking = false;
}

static struct mx_msg *step_done_msg(void)
{
    struct mx_m_shutdown_cmd c = {.op = OP_STEP_DONE};
    struct mx_msg *m = NULL;
    mx_msg_encode(MX_T_shutdown_cmd, &c, &m);
    return m; /* NULL: the runtime delivers sys_offload_done instead */
}

/* offloaded steps: they block, bounded by the budget they are given */

static struct mx_msg *step_handover(void *arg)
{
    mx_shutdown_t *sd = arg;
    uint32_t b = mx_shutdown_budget_ms(&sd->o, MX_SD_LEASES);
    memset(&sd->res.leases, 0, sizeof sd->res.leases);
    sd->step_rc =
        sd->o.hooks.handover ? sd->o.hooks.handover(sd->o.hooks.ctx, b, &sd->res.leases) : 0;
    return step_done_msg();
}

static struct mx_msg *step_mysql(void *arg)
{
    mx_shutdown_t *sd = arg;
    uint32_t b = sd->final_spool ? 0 : mx_shutdown_budget_ms(&sd->o, MX_SD_MYSQL);
    int64_t left = atomic_load_explicit(&sd->deadline_at, memory_order_relaxed) - mx_now_ms();
    if (left < (int64_t)b)
        b = left > 0 ? (uint32_t)left : 0;
    sd->step_rc = mx_mysql_drain(sd->o.mysql, b, &sd->md_step);
    return step_done_msg();
}

static struct mx_msg *step_leave(void *arg)
{
    mx_shutdown_t *sd = arg;
    uint32_t b = mx_shutdown_budget_ms(&sd->o, MX_SD_REGISTRY);
    sd->step_rc = sd->o.hooks.leave ? sd->o.hooks.leave(sd->o.hooks.leave_ctx, b) : 0;
    return step_done_msg();
}

static void offload(mx_actor_t *self, mx_shutdown_t *sd, mx_offload_fn fn)
{
    sd->busy = true;
    if (mx_offload(self, fn, sd, &sd->job) == 0)
        return;
    /* the pool is full: run it here (it is bounded, and this is the end)
     * and come back through the same message as an offloaded step */
    MX_WARN("shutdown: offload pool full; running the %s step on the coordinator",
            mx_shutdown_phase_name(sd->phase));
    struct mx_msg *m = fn(sd);
    sd->job = 0;
    if (!m || mx_send(self, mx_self(self), m) != 0) {
        mx_msg_free(m);
        MX_ERROR("shutdown: cannot continue after the %s step", mx_shutdown_phase_name(sd->phase));
    }
}

static void latches_start(mx_actor_t *self, mx_shutdown_t *sd, uint64_t op, uint32_t timeout)
{
    mx_system_t *sys = mx_system_of(self);
    int n = mx_system_schedulers(sys);
    sd->lat_sent = sd->lat_answered = 0;
    sd->lat_flights = 0;
    sd->res.latches_released = 0;
    for (int i = 0; i < n && i < MAX_SHARDS; i++) {
        char name[32];
        struct mx_addr to;
        snprintf(name, sizeof name, "cache.%d", i);
        if (mx_whereis(sys, name, &to) != 0)
            continue;
        struct mx_m_svc_latches q = {.op = op};
        struct mx_msg *m;
        if (mx_msg_encode(MX_T_svc_latches, &q, &m) != 0)
            continue;
        if (op == 0) { /* undrain: no answer awaited */
            if (mx_send(self, to, m) != 0)
                mx_msg_free(m);
            continue;
        }
        if (mx_request(self, to, m, timeout ? timeout : 1, &sd->lat_corr[sd->lat_sent]) != 0) {
            mx_msg_free(m);
            continue;
        }
        sd->lat_sent++;
    }
}

static void run_phase(mx_actor_t *self, mx_shutdown_t *sd, int phase)
{
    set_phase(sd, phase);
    sd->phase_t0 = mx_now_ms();
    sd->phase_until = sd->phase_t0 + mx_shutdown_budget_ms(&sd->o, phase);
    switch (phase) {
    case MX_SD_GRACE:
        atomic_store_explicit(&sd->draining, true, memory_order_relaxed); /* a flag */
        MX_METRIC_SET(&sd->m, draining, 1);
        MX_METRIC_INC(&sd->m, drains);
        if (sd->o.hooks.set_state)
            sd->o.hooks.set_state(sd->o.hooks.ctx, "draining");
        if (sd->o.app) {
            mx_app_set_ready(sd->o.app, false);
            if (sd->o.app->http) {
                mx_http_stats(sd->o.app->http, &sd->hs0);
                /* keep-alive clients reconnect through the balancer now,
                 * not on a connection closed under them in phase 2 */
                mx_http_close_keepalive(sd->o.app->http);
            }
        }
        if (sd->o.drain_grace_ms == 0) { /* no grace: on at once */
            end_phase(self, sd);
            next_phase(self, sd);
            return;
        }
        start_ticks(self, sd); /* ends at phase_until */
        return;
    case MX_SD_HTTP:
        if (sd->o.app && sd->o.app->http) {
            mx_http_stats(sd->o.app->http, &sd->hs0);
            mx_app_drain(sd->o.app);
        }
        start_ticks(self, sd); /* ends when no connection is left, or at phase_until */
        return;
    case MX_SD_LEASES:
        offload(self, sd, step_handover);
        return;
    case MX_SD_LATCHES:
        latches_start(self, sd, 1, mx_shutdown_budget_ms(&sd->o, MX_SD_LATCHES));
        if (sd->lat_sent == 0) {
            log_phase(sd, "no cache shard holds latches");
            next_phase(self, sd);
            return;
        }
        sd->busy = true;
        return;
    case MX_SD_MYSQL:
        if (!sd->o.mysql) {
            log_phase(sd, "no MySQL");
            next_phase(self, sd);
            return;
        }
        offload(self, sd, step_mysql);
        return;
    case MX_SD_SINGLETONS: {
        const struct mx_leases_handover *h = &sd->res.leases;
        log_phase(sd,
                  "%u singletons stopped before their leases were released, %u still running "
                  "(their leases expire by themselves)",
                  h->stopped, h->still_running);
        next_phase(self, sd);
        return;
    }
    case MX_SD_REGISTRY:
        if (sd->res.leases.still_running) {
            /* a singleton still runs and may use the registry: the node
             * leaves it after the actors stopped (mx_system_stop) instead */
            mark_budget_cut(sd);
            log_phase(sd, "not yet: %u singletons still running; left after the actors stop",
                      sd->res.leases.still_running);
            next_phase(self, sd);
            return;
        }
        offload(self, sd, step_leave);
        return;
    default:
        finish(self, sd);
        return;
    }
}

/* the running phase ended by its budget with work left: the exit code says so */
static void mark_budget_cut(mx_shutdown_t *sd)
{
    if (sd->mode != M_SHUTDOWN || sd->cut)
        return;
    sd->res.over_budget |= 1u << sd->phase;
    MX_METRIC_INC(&sd->m, phases_over_budget);
    if (sd->budget_cut)
        return;
    sd->budget_cut = true;
    sd->res.cut_phase = sd->phase;
}

/* the phase that was running ended (done, or its budget passed) */
static void end_phase(mx_actor_t *self, mx_shutdown_t *sd)
{
    switch (sd->phase) {
    case MX_SD_GRACE: {
        struct mx_http_stats hs = {0};
        if (sd->o.app && sd->o.app->http)
            mx_http_stats(sd->o.app->http, &hs);
        log_phase(sd,
                  "readiness 503, registry draining, keep-alive answers close; %" PRIu64
                  " requests served meanwhile",
                  hs.requests - sd->hs0.requests);
        break;
    }
    case MX_SD_HTTP: {
        struct mx_http_stats hs = {0};
        if (sd->o.app && sd->o.app->http)
            mx_http_stats(sd->o.app->http, &hs);
        uint64_t left = hs.conns_open -
                        (hs.conns_open < hs.conns_lingering ? hs.conns_open : hs.conns_lingering);
        sd->res.http_left_open = left;
        if (left)
            mark_budget_cut(sd);
        log_phase(sd,
                  "stopped accepting; %" PRIu64 " connections open at start, %" PRIu64
                  " left with requests (closed at stop), %" PRIu64 " answered and closing; %" PRIu64
                  " requests answered",
                  sd->hs0.conns_open, left, hs.conns_open - left,
                  (hs.responses[1] + hs.responses[2] + hs.responses[3] + hs.responses[4] +
                   hs.responses[5]) -
                      (sd->hs0.responses[1] + sd->hs0.responses[2] + sd->hs0.responses[3] +
                       sd->hs0.responses[4] + sd->hs0.responses[5]));
        break;
    }
    case MX_SD_LEASES: {
        const struct mx_leases_handover *h = &sd->res.leases;
        if (sd->step_rc)
            mark_budget_cut(sd);
        log_phase(sd, "%u singletons held, %u stopped (in %lld ms), %u leases released%s%s",
                  h->held, h->stopped, (long long)h->stop_ms, h->released, sd->step_rc ? ": " : "",
                  sd->step_rc ? mx_strerror(sd->step_rc) : "");
        break;
    }
    case MX_SD_LATCHES:
        if (sd->lat_answered < sd->lat_sent)
            mark_budget_cut(sd);
        log_phase(sd,
                  "%u latches released and announced by %u of %u cache shards; %" PRIu64
                  " loads still running",
                  sd->res.latches_released, sd->lat_answered, sd->lat_sent, sd->lat_flights);
        break;
    case MX_SD_MYSQL: {
        const struct mx_mysql_drain_stats *d = &sd->md_step;
        sd->res.mysql = *d;
        if (sd->step_rc)
            mark_budget_cut(sd);
        log_phase(sd,
                  "%u jobs queued or running at start: %u ran, %u writes spooled, %u writes "
                  "failed to spool, %u reads cancelled, %u still running",
                  d->queued_at_start, d->ran, d->spooled, d->failed, d->cancelled, d->inflight);
        break;
    }
    case MX_SD_REGISTRY:
        if (sd->step_rc)
            mark_budget_cut(sd);
        log_phase(sd, "left the registry%s%s", sd->step_rc ? ": " : "",
                  sd->step_rc ? mx_strerror(sd->step_rc) : "");
        break;
    default:
        break;
    }
}

static void undrain_now(mx_actor_t *self, mx_shutdown_t *sd)
{
    sd->undrain_pending = false;
    if (sd->o.app)
        mx_app_undrain(sd->o.app);
    if (sd->o.hooks.set_state)
        sd->o.hooks.set_state(sd->o.hooks.ctx, "up");
    if (sd->o.hooks.rejoin)
        sd->o.hooks.rejoin(sd->o.hooks.ctx);
    latches_start(self, sd, 0, 0);
    sd->drained = false;
    sd->mode = M_IDLE;
    set_phase(sd, MX_SD_IDLE);
    atomic_store_explicit(&sd->draining, false, memory_order_relaxed); /* a flag */
    MX_METRIC_SET(&sd->m, draining, 0);
    MX_METRIC_INC(&sd->m, undrains);
    MX_INFO("undrained: listening, readiness 200, registry up, campaigning for leases");
}

static void next_phase(mx_actor_t *self, mx_shutdown_t *sd)
{
    stop_ticks(self, sd);
    sd->busy = false;
    if (sd->cut) {
        finish(self, sd);
        return;
    }
    int next = sd->phase + 1;
    if (sd->phase == MX_SD_LATCHES)
        sd->drained = true;
    if (sd->mode == M_DRAIN && next > MX_SD_LATCHES) {
        set_phase(sd, MX_SD_IDLE);
        if (sd->undrain_pending) {
            undrain_now(self, sd);
            return;
        }
        MX_INFO("drained: phases 1-4 done; the node is up and idle (mxctl undrain serves again)");
        return;
    }
    if (sd->mode == M_DRAIN && sd->undrain_pending) {
        undrain_now(self, sd);
        return;
    }
    run_phase(self, sd, next);
}

/* ---- the end ---- */

static void finish(mx_actor_t *self, mx_shutdown_t *sd)
{
    stop_ticks(self, sd);
    if (sd->cut && !sd->final_spool && sd->o.mysql) {
        /* still spool what it can: every queued write, now */
        sd->final_spool = true;
        offload(self, sd, step_mysql);
        return; /* back here when it is done */
    }
    struct mx_shutdown_result *r = &sd->res;
    r->took_ms = mx_now_ms() - sd->t_first;
    if (sd->cut || sd->budget_cut) {
        if (sd->final_spool) {
            /* add what the last spooling did to phase 5's counts */
            r->mysql.spooled += sd->md_step.spooled;
            r->mysql.failed += sd->md_step.failed;
            r->mysql.cancelled += sd->md_step.cancelled;
            r->mysql.inflight = sd->md_step.inflight;
        }
        r->exit_code = MX_SHUTDOWN_EXIT_CUT;
        char skipped[64], over[160] = "";
        if (sd->cut && r->cut_phase < MX_SD_REGISTRY)
            snprintf(skipped, sizeof skipped, "phases %d-7 skipped", r->cut_phase + 1);
        else
            snprintf(skipped, sizeof skipped, "%s", sd->cut ? "no phase left" : "later phases ran");
        size_t ol = 0;
        for (int p = MX_SD_GRACE; p <= MX_SD_REGISTRY; p++)
            if (r->over_budget & (1u << p))
                ol += (size_t)snprintf(over + ol, sizeof over - ol, "%s%d %s", ol ? ", " : "", p,
                                       mx_shutdown_phase_name(p));
        MX_ERROR("shutdown cut in phase %d/7 %s by %s after %lld ms%s%s%s: %s; "
                 "MySQL writes spooled %u (failed %u), reads cancelled %u, jobs still running %u "
                 "(their outcome is unknown); exit %d",
                 r->cut_phase, mx_shutdown_phase_name(r->cut_phase),
                 !sd->cut           ? "its budget"
                 : r->cut_by_signal ? "a second signal"
                                    : "the deadline (MX_SHUTDOWN_TIMEOUT_MS)",
                 (long long)r->took_ms, ol ? " (phases out of budget: " : "", over, ol ? ")" : "",
                 skipped, r->mysql.spooled, r->mysql.failed, r->mysql.cancelled, r->mysql.inflight,
                 r->exit_code);
    } else {
        r->exit_code = MX_SHUTDOWN_EXIT_OK;
        MX_INFO("shutdown complete in %lld ms: every phase done; MySQL writes spooled %u; exit 0",
                (long long)r->took_ms, r->mysql.spooled);
    }
    set_phase(sd, MX_SD_DONE);
    uint64_t one = 1;
    /* the write publishes res to the main thread, which reads it after poll */
    if (write(sd->efd, &one, sizeof one) != sizeof one)
        MX_ERROR("shutdown: eventfd write failed: %s", strerror(errno));
}

static void do_cut(mx_actor_t *self, mx_shutdown_t *sd, bool by_signal)
{
    if (sd->cut || sd->phase == MX_SD_DONE)
        return;
    sd->cut = true;
    sd->res.cut_phase = sd->phase; /* the hard cut names the phase it ended */
    sd->res.cut_by_signal = by_signal;
    mx_mysql_cut(sd->o.mysql); /* a waiting drain returns now */
    if (sd->phase == MX_SD_LATCHES || !sd->busy) {
        end_phase(self, sd); /* latch replies still on their way are dropped */
        finish(self, sd);
    }
    /* else: the offloaded step is bounded; it ends the phase, then finish */
}

/* ---- the actor ---- */

static void on_cmd(mx_actor_t *self, mx_shutdown_t *sd, uint64_t op, uint64_t corr)
{
    switch (op) {
    case OP_SHUTDOWN:
        if (sd->mode == M_SHUTDOWN) {
            do_cut(self, sd, true);
            return;
        }
        sd->t_first = mx_now_ms();
        sd->mode = M_SHUTDOWN;
        sd->undrain_pending = false;
        {
            struct mx_msg *m;
            struct mx_m_shutdown_cmd c = {.op = OP_DEADLINE};
            if (mx_msg_encode(MX_T_shutdown_cmd, &c, &m) == 0 &&
                mx_timer_start(self, sd->o.timeout_ms, 0, m, NULL) != 0)
                mx_msg_free(m);
        }
        MX_INFO("shutdown: began (deadline %u ms, drain grace %u ms)%s", sd->o.timeout_ms,
                sd->o.drain_grace_ms, sd->drained ? "; already drained: from phase 5" : "");
        if (sd->phase != MX_SD_IDLE)
            return; /* a drain runs: it goes on past phase 4 now */
        run_phase(self, sd, sd->drained ? MX_SD_MYSQL : MX_SD_GRACE);
        return;
    case OP_DRAIN:
        if (sd->mode != M_IDLE || sd->drained) {
            sd->undrain_pending = false;
            return;
        }
        sd->mode = M_DRAIN;
        MX_INFO("drain: running phases 1-4 (drain grace %u ms)", sd->o.drain_grace_ms);
        run_phase(self, sd, MX_SD_GRACE);
        return;
    case OP_UNDRAIN:
        if (sd->mode == M_SHUTDOWN)
            return;
        if (sd->mode == M_DRAIN && sd->phase != MX_SD_IDLE)
            sd->undrain_pending = true; /* when the running phase ends */
        else if (sd->drained || sd->mode == M_DRAIN)
            undrain_now(self, sd);
        return;
    case OP_CUT:
        do_cut(self, sd, true);
        return;
    case OP_DEADLINE:
        do_cut(self, sd, false);
        return;
    case OP_TICK:
        if (sd->cut || sd->busy)
            return;
        if (sd->phase == MX_SD_GRACE && mx_now_ms() >= sd->phase_until) {
            end_phase(self, sd);
            next_phase(self, sd);
        } else if (sd->phase == MX_SD_HTTP) {
            struct mx_http_stats hs = {0};
            if (sd->o.app && sd->o.app->http)
                mx_http_stats(sd->o.app->http, &hs);
            /* a lingering connection has its answers: only its FIN is due */
            if (hs.conns_open <= hs.conns_lingering || mx_now_ms() >= sd->phase_until) {
                end_phase(self, sd);
                next_phase(self, sd);
            }
        }
        return;
    case OP_STEP_DONE:
        if (!sd->busy || corr != sd->job)
            return;
        sd->busy = false;
        if (sd->final_spool) {
            finish(self, sd);
            return;
        }
        end_phase(self, sd);
        next_phase(self, sd); /* finishes when cut */
        return;
    default:
        return;
    }
}

static int sd_init(mx_actor_t *self, void *arg, void **state)
{
    *state = arg;
    return 0;
}

static int sd_receive(mx_actor_t *self, void *state, struct mx_msg *m)
{
    mx_shutdown_t *sd = state;
    switch (m->env.type) {
    case MX_T_shutdown_cmd: {
        struct mx_m_shutdown_cmd c;
        if (mx_msg_decode(m, &c) == 0)
            on_cmd(self, sd, c.op, m->env.corr);
        return 0;
    }
    case MX_T_sys_offload_done: /* a step could not build its message */
        on_cmd(self, sd, OP_STEP_DONE, m->env.corr);
        return 0;
    case MX_T_svc_latches_rep:
    case MX_T_sys_timeout: {
        if (sd->phase != MX_SD_LATCHES || !sd->busy)
            return 0;
        bool ours = false;
        for (uint32_t i = 0; i < sd->lat_sent; i++)
            if (sd->lat_corr[i] == m->env.corr) {
                sd->lat_corr[i] = 0;
                ours = true;
            }
        if (!ours)
            return 0;
        struct mx_m_svc_latches_rep r;
        if (m->env.type == MX_T_svc_latches_rep && mx_msg_decode(m, &r) == 0) {
            sd->lat_answered++;
            sd->res.latches_released += (uint32_t)r.released;
            sd->lat_flights += r.flights;
        }
        bool all = true;
        for (uint32_t i = 0; i < sd->lat_sent; i++)
            all = all && sd->lat_corr[i] == 0;
        if (all) {
            end_phase(self, sd);
            next_phase(self, sd);
        }
        return 0;
    }
    default:
        return 0;
    }
}

static const struct mx_behaviour sd_behaviour = {
    .name = "shutdown-coordinator",
    .init = sd_init,
    .receive = sd_receive,
};

/* ---- public ---- */

int mx_shutdown_start(mx_system_t *sys, const struct mx_shutdown_opts *o, mx_shutdown_t **out)
{
    *out = NULL;
    if (!sys || !o || o->timeout_ms < 100 || o->drain_grace_ms > o->timeout_ms / 2)
        return MX_EINVAL;
    mx_shutdown_t *sd = calloc(1, sizeof *sd);
    if (!sd)
        abort();
    sd->sys = sys;
    sd->o = *o;
    sd->efd = eventfd(0, EFD_CLOEXEC);
    if (sd->efd < 0) {
        free(sd);
        return MX_EIO;
    }
    atomic_init(&sd->deadline_at, 0);
    struct mx_spawn_opts so = MX_SPAWN_OPTS_DEFAULT;
    so.name = MX_SHUTDOWN_NAME;
    so.sched = 0;
    int rc = mx_spawn(sys, &sd_behaviour, sd, &so, &sd->addr);
    if (rc != 0) {
        close(sd->efd);
        free(sd);
        return rc;
    }
    sd->metrics_id = mx_metrics_register("shutdown", "coordinator", sd_desc,
                                         sizeof sd_desc / sizeof *sd_desc, &sd->m);
    *out = sd;
    return 0;
}

int mx_shutdown_begin(mx_shutdown_t *sd)
{
    /* relaxed: these flags only steer admin commands and the backstop */
    if (atomic_fetch_add_explicit(&sd->signals, 1, memory_order_relaxed) == 0) {
        atomic_store_explicit(&sd->deadline_at, mx_now_ms() + sd->o.timeout_ms,
                              memory_order_relaxed);
        atomic_store_explicit(&sd->shutting, true, memory_order_relaxed);
        return send_op(sd, OP_SHUTDOWN);
    }
    return send_op(sd, OP_CUT);
}

int mx_shutdown_drain(mx_shutdown_t *sd)
{
    /* relaxed: a flag; the coordinator orders the commands it receives */
    if (atomic_load_explicit(&sd->shutting, memory_order_relaxed))
        return MX_ESTOPPED;
    return send_op(sd, OP_DRAIN);
}

int mx_shutdown_undrain(mx_shutdown_t *sd)
{
    if (atomic_load_explicit(&sd->shutting, memory_order_relaxed)) /* relaxed: a flag */
        return MX_ESTOPPED;
    return send_op(sd, OP_UNDRAIN);
}

bool mx_shutdown_draining(mx_shutdown_t *sd)
{
    return atomic_load_explicit(&sd->draining, memory_order_relaxed); /* a flag */
}

int64_t mx_shutdown_deadline_left_ms(mx_shutdown_t *sd)
{
    int64_t at = atomic_load_explicit(&sd->deadline_at, memory_order_relaxed); /* advisory */
    if (!at)
        return sd->o.timeout_ms;
    int64_t left = at - mx_now_ms();
    return left > 0 ? left : 0;
}

int mx_shutdown_wait(mx_shutdown_t *sd, int sigfd, struct mx_shutdown_result *res)
{
    for (;;) {
        int64_t left = mx_shutdown_deadline_left_ms(sd) + 1000; /* the backstop */
        if (left <= 0 || left > 3600000)
            left = left <= 0 ? 0 : 3600000;
        struct pollfd p[2] = {{.fd = sd->efd, .events = POLLIN}, {.fd = sigfd, .events = POLLIN}};
        int n = poll(p, sigfd >= 0 ? 2 : 1, (int)left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n > 0 && (p[0].revents & POLLIN)) {
            uint64_t v;
            if (read(sd->efd, &v, sizeof v) != sizeof v)
                MX_WARN("shutdown: eventfd read failed");
            if (res)
                *res = sd->res;
            return sd->res.exit_code;
        }
        if (n > 0 && sigfd >= 0 && (p[1].revents & POLLIN)) {
            struct signalfd_siginfo si;
            if (read(sigfd, &si, sizeof si) == sizeof si) {
                MX_WARN("received %s again: cutting the shutdown short",
                        si.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM");
                mx_shutdown_begin(sd);
            }
            continue;
        }
        if (n == 0) {
            MX_ERROR("shutdown: the coordinator did not finish by the deadline (+1 s); "
                     "stopping anyway; exit %d",
                     MX_SHUTDOWN_EXIT_CUT);
            if (res) {
                memset(res, 0, sizeof *res);
                res->exit_code = MX_SHUTDOWN_EXIT_CUT;
            }
            return MX_SHUTDOWN_EXIT_CUT;
        }
    }
}

void mx_shutdown_free(mx_shutdown_t *sd)
{
    if (!sd)
        return;
    mx_metrics_unregister(sd->metrics_id);
    close(sd->efd);
    free(sd);
}
