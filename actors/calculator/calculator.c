/* calculator.c - the calculator actor (mx_calculator.h): a named actor in
 * front of the offload threads, so that calculations have one mailbox, a
 * bound and counters of their own instead of being anonymous offload jobs
 * of each cache shard. It keeps at most `pool` jobs on the offload threads
 * (leaving the pool's queue to its other users: the shutdown coordinator,
 * the alerter), a FIFO of at most `max_queued` more, and answers each
 * request when its job comes back.
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

/* a job waiting for, or on, an offload thread, and whom to answer */
struct slot {
    struct mx_calc_job *job;
    struct mx_env req; /* the asker's envelope: from, corr, trace */
    uint64_t offload;  /* offload job id while running; 0 = free slot */
};

struct calc {
    struct mx_calculator_opts o;
    struct mx_calculator_metrics *m;
    struct slot *run; /* o.pool slots */
    uint32_t nrun;
    struct slot *q; /* ring of o.max_queued */
    uint32_t qhead, qlen;
};

static void publish(struct calc *c)
{
    MX_METRIC_SET(c->m, inflight, c->nrun);
    MX_METRIC_SET(c->m, queued, c->qlen);
}

/* answer req with rep (taken): a reply keeps the asker's trace */
static void reply(mx_actor_t *self, const struct mx_env *req, struct mx_msg *rep)
{
    struct mx_msg q = {.env = *req}; /* mx_reply reads only the envelope */
    memcpy(rep->env.trace_id, req->trace_id, sizeof rep->env.trace_id);
    memcpy(rep->env.span_id, req->span_id, sizeof rep->env.span_id);
    if (mx_reply(self, &q, rep) != 0)
        mx_msg_free(rep); /* the asker is gone: counted as a dead letter */
}

/* answer without a job (refused or lost): status only */
static void reply_status(mx_actor_t *self, const struct mx_env *req, int status)
{
    struct mx_m_exp_calc_done d = {.status = status};
    struct mx_msg *m;
    if (mx_msg_encode(MX_T_exp_calc_done, &d, &m) == 0)
        reply(self, req, m);
}

/* Give job to an offload thread (a run slot is free). False when the
 * offload pool refused it: the job stays the caller's. */
static bool start(mx_actor_t *self, struct calc *c, struct mx_calc_job *job,
                  const struct mx_env *req)
{
    struct slot *s = NULL;
    for (uint32_t i = 0; i < c->o.pool && !s; i++)
        if (!c->run[i].offload)
            s = &c->run[i];
    job->table = c->o.cube_table;
    job->memo_entries = c->o.memo_entries;
    if (!s || mx_offload(self, mx__calc_run, job, &s->offload) != 0)
        return false;
    s->job = job;
    s->req = *req;
    c->nrun++;
    MX_METRIC_INC(c->m, started);
    return true;
}

/* Start job, or refuse it (as the offload pool did) */
static void start_or_refuse(mx_actor_t *self, struct calc *c, struct mx_calc_job *job,
                            const struct mx_env *req)
{
    if (start(self, c, job, req))
        return;
    MX_METRIC_INC(c->m, refused);
    mx_calc_job_free(job);
    reply_status(self, req, MX_EFULL);
}

/* Jobs queue only while every run slot is busy, so the queue's head goes
 * next whenever one frees. */
static void drain(mx_actor_t *self, struct calc *c)
{
    while (c->qlen && c->nrun < c->o.pool) {
        struct slot w = c->q[c->qhead];
        c->qhead = (c->qhead + 1) % c->o.max_queued;
        c->qlen--;
        start_or_refuse(self, c, w.job, &w.req);
    }
}

static void on_request(mx_actor_t *self, struct calc *c, struct mx_msg *m)
{
    MX_METRIC_INC(c->m, requests);
    struct mx_calc_job *job = m->ptr;
    if (!job || !(m->env.flags & MX_ENVF_REQUEST))
        return;    /* nothing to do or nobody to answer: freed with m */
    m->ptr = NULL; /* ours now: the message is freed when we return */
    if (c->nrun < c->o.pool) {
        start_or_refuse(self, c, job, &m->env);
        publish(c);
        return;
    }
    if (c->qlen >= c->o.max_queued) {
        MX_METRIC_INC(c->m, refused);
        mx_calc_job_free(job);
        reply_status(self, &m->env, MX_EFULL);
        return;
    }
    struct slot *w = &c->q[(c->qhead + c->qlen) % c->o.max_queued];
    w->job = job;
    w->req = m->env;
    c->qlen++;
    publish(c);
}

/* A worker finished: m is its exp_calc_done (the job as ptr), or a
 * sys_offload_done when it could not make one. */
static void on_done(mx_actor_t *self, struct calc *c, struct slot *s, struct mx_msg *m)
{
    struct mx_env req = s->req;
    struct mx_calc_job *job = s->job;
    s->offload = 0;
    s->job = NULL;
    c->nrun--;
    if (m->env.type == MX_T_exp_calc_done && m->ptr == job) {
        struct mx_m_exp_calc_done d = {.status = job->status};
        struct mx_msg *rep;
        MX_METRIC_INC(c->m, done);
        MX_METRIC_ADD(c->m, calc_ms_total, job->calc_ms > 0 ? job->calc_ms : 0);
        if (job->status)
            MX_METRIC_INC(c->m, errors);
        if (mx_msg_encode(MX_T_exp_calc_done, &d, &rep) == 0) {
            rep->ptr = job; /* moves from the worker's message to the answer */
            rep->ptr_free = mx_calc_job_free;
            m->ptr = NULL;
            reply(self, &req, rep);
        }
    } else {
        MX_METRIC_INC(c->m, lost);
        MX_WARN("calculator: a worker could not report its job for %s", job->ign);
        mx_calc_job_free(job); /* no message took it */
        reply_status(self, &req, MX_EINTERNAL);
    }
    drain(self, c);
    publish(c);
}

static int calc_init(mx_actor_t *self, void *arg, void **state)
{
    (void)self;
    struct calc *c = xcalloc(1, sizeof *c);
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
    if (m->env.type != MX_T_exp_calc_done && m->env.type != MX_T_sys_offload_done)
        return 0;
    for (uint32_t i = 0; i < c->o.pool; i++)
        if (c->run[i].offload && c->run[i].offload == m->env.corr) {
            on_done(self, c, &c->run[i], m);
            break;
        }
    return 0;
}

static void calc_stop(mx_actor_t *self, void *state)
{
    (void)self;
    struct calc *c = state;
    /* running jobs belong to the offload threads' messages now (freed with
     * them); queued ones are ours. Their askers time out. */
    for (; c->qlen; c->qlen--, c->qhead = (c->qhead + 1) % c->o.max_queued)
        mx_calc_job_free(c->q[c->qhead].job);
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

int mx_calculator_ask(mx_actor_t *self, struct mx_addr to, struct mx_calc_job *job,
                      uint32_t timeout_ms, uint64_t *corr)
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
    rc = mx_request(self, to, m, timeout_ms, corr);
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
