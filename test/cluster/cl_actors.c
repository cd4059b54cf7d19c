/* cl_actors.c - echo, sink and driver actors for the cluster tests. */
#include "cl_actors.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mx_err.h"
#include "mx_testutil.h"

static int pass_init(mx_actor_t *self, void *arg, void **state)
{
    *state = arg;
    return 0;
}

static int echo_recv(mx_actor_t *self, void *state, struct mx_msg *m)
{
    struct mx_m_test_echo e;
    if (m->env.type != MX_T_test_echo || mx_msg_decode(m, &e) != 0)
        return 0; /* not ours: ignore */
    if (!(m->env.flags & MX_ENVF_REQUEST))
        return 0;
    struct mx_msg *r;
    if (mx_msg_encode(MX_T_test_echo, &(struct mx_m_test_echo){e.n + 1, e.text}, &r) != 0)
        return 0;
    if (mx_reply(self, m, r) != 0)
        mx_msg_free(r);
    return 0;
}

const struct mx_behaviour cl_echo_beh = {.name = "echo", .init = pass_init, .receive = echo_recv};

#define SINK_SENDERS 64

struct sink {
    struct cl_sink_stats *st;
    uint64_t sender[SINK_SENDERS];
    uint64_t last[SINK_SENDERS];
    int n;
};

static int sink_init(mx_actor_t *self, void *arg, void **state)
{
    struct sink *s = calloc(1, sizeof(*s));
    if (!s)
        return MX_ENOMEM;
    s->st = arg;
    *state = s;
    return 0;
}

static int sink_recv(mx_actor_t *self, void *state, struct mx_msg *m)
{
    struct sink *s = state;
    struct mx_m_test_kv kv;
    if (m->env.type != MX_T_test_kv || mx_msg_decode(m, &kv) != 0)
        return 0;
    /* relaxed: test counters */
    atomic_fetch_add_explicit(&s->st->received, 1, memory_order_relaxed);
    atomic_store_explicit(&s->st->last_epoch, m->env.epoch, memory_order_relaxed);
    int i;
    for (i = 0; i < s->n && s->sender[i] != kv.sender; i++)
        ;
    if (i == s->n && s->n < SINK_SENDERS) {
        s->sender[s->n] = kv.sender;
        s->last[s->n++] = 0;
    }
    if (i < s->n) {
        if (kv.seq <= s->last[i])
            atomic_fetch_add_explicit(&s->st->out_of_order, 1, memory_order_relaxed);
        s->last[i] = kv.seq;
    }
    return 0;
}

static void sink_stop(mx_actor_t *self, void *state)
{
    free(state);
}

const struct mx_behaviour cl_sink_beh = {
    .name = "sink", .init = sink_init, .receive = sink_recv, .stop = sink_stop};

static struct mx_msg *kv_msg(uint64_t sender, uint64_t seq)
{
    struct mx_msg *m;
    struct mx_m_test_kv kv = {.sender = sender, .seq = seq, .text = MX_STR("remote")};
    if (mx_msg_encode(MX_T_test_kv, &kv, &m) != 0)
        abort();
    return m;
}

static void run_cmd(mx_actor_t *self, struct cl_cmd *c)
{
    struct mx_msg *m;
    int rc = 0;
    switch (c->op) {
    case CL_REQ_ADDR:
    case CL_REQ_NAMED:
        mx_msg_encode(MX_T_test_echo, &(struct mx_m_test_echo){c->n, MX_STR("ping")}, &m);
        rc = c->op == CL_REQ_ADDR
                 ? mx_request(self, c->to, m, c->timeout_ms, &c->corr)
                 : mx_request_named_on(self, c->node, c->name, m, c->timeout_ms, &c->corr);
        if (rc != 0)
            mx_msg_free(m);
        c->sent = rc == 0;
        c->failed = rc != 0;
        break;
    case CL_SEND_NAMED:
    case CL_SEND_ADDR:
        mx_set_epoch(self, c->epoch);
        for (uint32_t i = 1; i <= c->count; i++) {
            m = kv_msg(mx_self(self).actor, c->seq0 + i);
            int r = c->op == CL_SEND_NAMED ? mx_send_named_on(self, c->node, c->name, m)
                                           : mx_send(self, c->to, m);
            if (r != 0) {
                mx_msg_free(m);
                c->failed++;
                if (!rc)
                    rc = r;
            } else {
                c->sent++;
            }
        }
        mx_set_epoch(self, 0);
        break;
    case CL_SEND_PTR:
        m = mx_msg_with_ptr(MX_T_test_kv, malloc(8), free);
        rc = mx_send(self, c->to, m);
        if (rc != 0)
            mx_msg_free(m);
        break;
    }
    c->rc = rc;
    /* release: the waiting thread reads the results after seeing done */
    atomic_store_explicit(&c->done, 1, memory_order_release);
}

static int driver_recv(mx_actor_t *self, void *state, struct mx_msg *m)
{
    struct cl_driver_stats *st = state;
    if (m->ptr) {
        run_cmd(self, m->ptr);
        return 0;
    }
    /* relaxed: test counters */
    if (m->env.type == MX_T_sys_timeout) {
        atomic_fetch_add_explicit(&st->timeouts, 1, memory_order_relaxed);
        return 0;
    }
    struct mx_m_test_echo e;
    if (m->env.type == MX_T_test_echo && (m->env.flags & MX_ENVF_REPLY) &&
        mx_msg_decode(m, &e) == 0) {
        atomic_store_explicit(&st->last_n, e.n, memory_order_relaxed);
        atomic_fetch_add_explicit(&st->replies, 1, memory_order_relaxed);
        return 0;
    }
    atomic_fetch_add_explicit(&st->bad, 1, memory_order_relaxed);
    return 0;
}

const struct mx_behaviour cl_driver_beh = {
    .name = "driver", .init = pass_init, .receive = driver_recv};

int cl_run(mx_system_t *sys, struct mx_addr drv, struct cl_cmd *cmd)
{
    atomic_store_explicit(&cmd->done, 0, memory_order_relaxed);
    cmd->rc = 0;
    cmd->sent = cmd->failed = 0;
    struct mx_msg *m = mx_msg_with_ptr(MX_T_test_echo, cmd, NULL);
    if (mx_sys_send(sys, drv, m) != 0) {
        mx_msg_free(m);
        return -1;
    }
    /* acquire: pairs with the driver's release */
    return TU_WAIT_UNTIL(atomic_load_explicit(&cmd->done, memory_order_acquire), 10000) ? 0 : -1;
}
