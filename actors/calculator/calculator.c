/* calculator.c - the calculator actor (mx_calculator.h): a named actor in
 * front of the offload threads, so that calculations have one mailbox, a
 * bound and counters of their own instead of being anonymous offload jobs
 * of each cache shard. It keeps at most `pool` jobs on the offload threads
 * (leaving the pool's queue to its other users: the shutdown coordinator,
 * the alerter) and a FIFO of at most `max_queued` more. A worker answers
 * the asker itself (calc_run.c) and then sends calc_done here, which frees
 * its slot for the next job: the result does not wait for this actor's
 * scheduler on its way back.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "calc_int.h"
#include "mx_alloc.h"
#include "mx_err.h"
#include "mx_log.h"

/* The block lives for the process: readers never see it freed, and a
 * restart of the actor keeps its counts. One writer, the actor's thread. */
static struct {
    _Alignas(64) struct mx_calculator_metrics m;
} g_metrics;
static int g_metric_id;

#define MX_METRICS_TYPE struct mx_calculator_metrics
static const struct mx_metric_desc calc_desc[] = {MX_CALCULATOR_METRICS(MX_METRIC_DESC)};
#undef MX_METRICS_TYPE

struct calc {
    mx_system_t *sys;
    struct mx_calculator_opts o;
    struct mx_calculator_metrics *m;
    uint64_t *run; /* o.pool slots: the offload job id running there, 0 = free */
    uint32_t nrun;
    struct mx_calc_job **q; /* ring of o.max_queued jobs waiting (ours) */
    uint32_t qhead, qlen;
};

static void publish(struct calc *c)
{
    MX_METRIC_SET(c->m, inflight, c->nrun);
    MX_METRIC_SET(c->m, queued, c->qlen);
}

/* answer a refused job's asker: MX_EFULL, no job (freed here) */
static void refuse(mx_actor_t *self, struct calc *c, struct mx_calc_job *job)
{
    struct mx_m_exp_calc_done d = {.status = MX_EFULL};
    struct mx_msg *m;
    MX_METRIC_INC(c->m, refused);
    if (mx_msg_encode(MX_T_exp_calc_done, &d, &m) == 0) {
        m->env.corr = job->asker.corr;
        memcpy(m->env.trace_id, job->asker.trace_id, sizeof m->env.trace_id);
        memcpy(m->env.span_id, job->asker.span_id, sizeof m->env.span_id);
        if (mx_send(self, job->asker.from, m) != 0)
            mx_msg_free(m); /* the asker is gone: counted as a dead letter */
    }
    mx_calc_job_free(job);
}

/* Give job to an offload thread in a free run slot, or refuse it (as the
 * offload pool did). From here on the worker owns the job. */
static void start(mx_actor_t *self, struct calc *c, struct mx_calc_job *job)
{
    uint64_t *slot = NULL;
    for (uint32_t i = 0; i < c->o.pool && !slot; i++)
        if (!c->run[i])
            slot = &c->run[i];
    job->table = c->o.cube_table;
    job->memo_entries = c->o.memo_entries;
    job->sys = c->sys;
    if (!slot || mx_offload(self, mx__calc_run, job, slot) != 0) {
        refuse(self, c, job);
        return;
    }
    c->nrun++;
    MX_METRIC_INC(c->m, started);
}

/* Jobs queue only while every run slot is busy, so the queue's head goes
 * next whenever one frees. */
static void drain(mx_actor_t *self, struct calc *c)
{
    while (c->qlen && c->nrun < c->o.pool) {
        struct mx_calc_job *job = c->q[c->qhead];
        c->qhead = (c->qhead + 1) % c->o.max_queued;
        c->qlen--;
        start(self, c, job);
    }
}

static void on_request(mx_actor_t *self, struct calc *c, struct mx_msg *m)
{
    MX_METRIC_INC(c->m, requests);
    struct mx_calc_job *job = m->ptr;
    if (!job)
        return;    /* nothing to do */
    m->ptr = NULL; /* ours now: the message is freed when we return */
    job->asker = m->env;
    if (c->nrun < c->o.pool)
        start(self, c, job);
    else if (c->qlen >= c->o.max_queued)
        refuse(self, c, job);
    else
        c->q[(c->qhead + c->qlen++) % c->o.max_queued] = job;
    publish(c);
}

/* A worker finished (calc_done), or its result message could not be made
 * (sys_offload_done: the worker has freed or sent the job either way). */
static void on_done(mx_actor_t *self, struct calc *c, uint64_t *slot, struct mx_msg *m)
{
    struct mx_m_calc_done d;
    *slot = 0;
    c->nrun--;
    if (m->env.type == MX_T_calc_done && mx_msg_decode(m, &d) == 0) {
        MX_METRIC_ADD(c->m, calc_ms_total, d.calc_ms > 0 ? d.calc_ms : 0);
        if (d.status)
            MX_METRIC_INC(c->m, errors);
        if (d.delivered)
            MX_METRIC_INC(c->m, done);
        else
            MX_METRIC_INC(c->m, lost);
    } else {
        MX_METRIC_INC(c->m, lost);
        MX_WARN("calculator: a worker could not report on its job");
    }
    drain(self, c);
    publish(c);
}

static int calc_init(mx_actor_t *self, void *arg, void **state)
{
    struct calc *c = xcalloc(1, sizeof *c);
    c->sys = mx_system_of(self);
    c->o = *(const struct mx_calculator_opts *)arg;
    c->m = &g_metrics.m;
    c->run = xcalloc(c->o.pool, sizeof *c->run);
    c->q = xcalloc(c->o.max_queued, sizeof *c->q);
    MX_METRIC_SET(c->m, pool, c->o.pool);
    publish(c);
    *state = c;
    return 0;
}

static int calc_receive(mx_actor_t *self, void *state, struct mx_msg *m)
{
    struct calc *c = state;
    if (m->env.type == MX_T_calc_req) {
        on_request(self, c, m);
        return 0;
    }
    if (m->env.type != MX_T_calc_done && m->env.type != MX_T_sys_offload_done)
        return 0;
    for (uint32_t i = 0; i < c->o.pool; i++)
        if (c->run[i] && c->run[i] == m->env.corr) {
            on_done(self, c, &c->run[i], m);
            break;
        }
    return 0;
}

static void calc_stop(mx_actor_t *self, void *state)
{
    (void)self;
    struct calc *c = state;
    /* running jobs belong to their workers (answered or freed there);
     * queued ones are ours. Their askers give up at their own deadline. */
    for (; c->qlen; c->qlen--, c->qhead = (c->qhead + 1) % c->o.max_queued)
        mx_calc_job_free(c->q[c->qhead]);
    c->nrun = 0;
    publish(c);
    free(c->run);
    free(c->q);
    free(c);
}

static const struct mx_behaviour calc_behaviour = {
    .name = "calculator",
    .init = calc_init,
    .receive = calc_receive,
    .stop = calc_stop,
};

void mx_calculator_opts_default(struct mx_calculator_opts *o)
{
    *o = (struct mx_calculator_opts){.memo_entries = 65536, .pool = 4, .max_queued = 1024};
}

static struct mx_calculator_opts g_opts; /* outlives the actor: its init copies it */

int mx_calculator_start(mx_system_t *sys, const struct mx_calculator_opts *opts)
{
    g_opts = *opts;
    if (!g_opts.pool)
        g_opts.pool = 4;
    if (!g_opts.max_queued)
        g_opts.max_queued = 1024;
    if (!g_metric_id)
        g_metric_id = mx_metrics_register("calculator", "main", calc_desc,
                                          sizeof calc_desc / sizeof *calc_desc, &g_metrics.m);
    struct mx_spawn_opts so = MX_SPAWN_OPTS_DEFAULT;
    so.name = MX_CALCULATOR_NAME;
    so.cap_msgs = 65536; /* every cache shard's loads may ask at once */
    return mx_spawn(sys, &calc_behaviour, &g_opts, &so, NULL);
}

int mx_calculator_ask(mx_actor_t *self, struct mx_addr to, struct mx_calc_job *job, uint64_t tag)
{
    struct mx_m_calc_req q = {.ign = {job->ign, (uint32_t)strlen(job->ign)},
                              .preset = (uint64_t)(job->preset < 0 ? 0 : job->preset),
                              .equipment = job->equip_doc};
    struct mx_msg *m;
    int rc = mx_msg_encode(MX_T_calc_req, &q, &m);
    if (rc != 0)
        return rc;
    m->ptr = job;
    m->ptr_free = mx_calc_job_free;
    m->env.corr = tag;
    rc = mx_send(self, to, m);
    if (rc != 0) {
        m->ptr = NULL; /* on error the job stays the caller's */
        mx_msg_free(m);
    }
    return rc;
}

const struct mx_calculator_metrics *mx_calculator_metrics(void)
{
    return &g_metrics.m;
}
