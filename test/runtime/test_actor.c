/* test_actor.c - request/reply and deadlines, stop, restart policy, timers,
 * offload, names, and stopping the system with work pending. */
#include <pthread.h>
#include <semaphore.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "mx_actor.h"
#include "mx_err.h"
#include "mx_testutil.h"

static mx_system_t *start(int nsched)
{
    mx_system_t *sys;
    struct mx_system_opts o = {
        .node_name = "test", .schedulers = nsched, .offload_queue = 4, .offload_threads = 1};
    assert_int_equal(mx_system_start(&o, &sys), 0);
    return sys;
}

static void finish(mx_system_t *sys)
{
    assert_int_equal(mx_system_stop(sys, 5000), 0);
    mx_system_free(sys);
}

static struct mx_msg *echo_msg(uint64_t n)
{
    struct mx_msg *m;
    assert_int_equal(mx_msg_encode(MX_T_test_echo, &(struct mx_m_test_echo){n, MX_STR("hi")}, &m),
                     0);
    return m;
}

/* ---- echo server: replies at once, or after delay_ms when n >= 1000 ---- */

struct echo_srv {
    struct mx_msg *held; /* a request being delayed (a copy we own) */
    int delay_ms;
};

static int srv_init(mx_actor_t *self, void *arg, void **state)
{
    *state = arg;
    return 0;
}

static int srv_recv(mx_actor_t *self, void *state, struct mx_msg *m)
{
    struct echo_srv *s = state;
    struct mx_m_test_echo e;
    if (m->env.type == MX_T_sys_tick && s->held) {
        struct mx_m_test_echo he;
        assert_int_equal(mx_msg_decode(s->held, &he), 0);
        mx_reply(self, s->held, echo_msg(he.n + 1));
        mx_msg_free(s->held);
        s->held = NULL;
        return 0;
    }
    if (mx_msg_decode(m, &e) != 0)
        return MX_EDECODE;
    if (e.n >= 1000) {
        s->held = mx_msg_share(m); /* keep our own copy past the handler */
        struct mx_msg *tick;
        mx_msg_encode(MX_T_sys_tick, &(struct mx_m_sys_tick){1}, &tick);
        mx_timer_start(self, (uint64_t)s->delay_ms, 0, tick, NULL);
        return 0;
    }
    return mx_reply(self, m, echo_msg(e.n + 1));
}

static void srv_stop(mx_actor_t *self, void *state)
{
    struct echo_srv *s = state;
    mx_msg_free(s->held);
    s->held = NULL;
}

static const struct mx_behaviour srv_beh = {"echo", srv_init, srv_recv, srv_stop};

/* ---- client: sends one request at init and records what comes back ---- */

struct client {
    struct mx_addr srv;
    uint64_t n;
    uint32_t timeout_ms;
    uint64_t corr;
    _Atomic int got_reply, got_timeout;
    uint64_t reply_n, timeout_corr, reply_corr;
};

static int cli_init(mx_actor_t *self, void *arg, void **state)
{
    struct client *c = arg;
    *state = c;
    return mx_request(self, c->srv, echo_msg(c->n), c->timeout_ms, &c->corr);
}

static int cli_recv(mx_actor_t *self, void *state, struct mx_msg *m)
{
    struct client *c = state;
    if (m->env.type == MX_T_sys_timeout) {
        struct mx_m_sys_timeout t;
        assert_int_equal(mx_msg_decode(m, &t), 0);
        c->timeout_corr = t.corr;
        atomic_store(&c->got_timeout, 1);
    } else if (m->env.type == MX_T_test_echo) {
        struct mx_m_test_echo e;
        assert_int_equal(mx_msg_decode(m, &e), 0);
        c->reply_n = e.n;
        c->reply_corr = m->env.corr;
        atomic_store(&c->got_reply, 1);
    }
    return 0;
}

static const struct mx_behaviour cli_beh = {"client", cli_init, cli_recv, NULL};

static void test_request_reply(void **st)
{
    mx_system_t *sys = start(2);
    static struct echo_srv srv;
    memset(&srv, 0, sizeof(srv));
    struct mx_addr sa;
    struct mx_spawn_opts so = MX_SPAWN_OPTS_DEFAULT;
    so.sched = 0;
    assert_int_equal(mx_spawn(sys, &srv_beh, &srv, &so, &sa), 0);
    static struct client c;
    memset(&c, 0, sizeof(c));
    c.srv = sa;
    c.n = 41;
    c.timeout_ms = 2000;
    so.sched = 1; /* across schedulers */
    assert_int_equal(mx_spawn(sys, &cli_beh, &c, &so, NULL), 0);
    assert_true(TU_WAIT_UNTIL(atomic_load(&c.got_reply), 5000));
    assert_int_equal(c.reply_n, 42);
    assert_int_equal(c.reply_corr, c.corr);
    /* the answered request's deadline was cancelled: a second request on
     * the same scheduler, to a server that never answers in time, with a
     * deadline 300 ms later, times out; had the first deadline survived,
     * it would have fired first */
    static struct echo_srv mute;
    memset(&mute, 0, sizeof(mute));
    mute.delay_ms = 60000;
    struct mx_addr ma;
    so.sched = 0;
    assert_int_equal(mx_spawn(sys, &srv_beh, &mute, &so, &ma), 0);
    static struct client late;
    memset(&late, 0, sizeof(late));
    late.srv = ma;
    late.n = 1000; /* held by the server */
    late.timeout_ms = c.timeout_ms + 300;
    so.sched = 1;
    assert_int_equal(mx_spawn(sys, &cli_beh, &late, &so, NULL), 0);
    assert_true(TU_WAIT_UNTIL(atomic_load(&late.got_timeout), 10000));
    assert_int_equal(atomic_load(&c.got_timeout), 0);
    finish(sys);
}

static void test_request_timeout_and_late_reply(void **st)
{
    mx_system_t *sys = start(2);
    static struct echo_srv srv;
    memset(&srv, 0, sizeof(srv));
    srv.delay_ms = 300;
    struct mx_addr sa;
    assert_int_equal(mx_spawn(sys, &srv_beh, &srv, NULL, &sa), 0);
    static struct client c;
    memset(&c, 0, sizeof(c));
    c.srv = sa;
    c.n = 1000;
    c.timeout_ms = 50;
    int64_t t0 = tu_now_ms();
    assert_int_equal(mx_spawn(sys, &cli_beh, &c, NULL, NULL), 0);
    assert_true(TU_WAIT_UNTIL(atomic_load(&c.got_timeout), 5000));
    int64_t took = tu_now_ms() - t0;
    TU_ASSERT_CMP(took, >=, 45);
    TU_ASSERT_CMP(took, <, 1000);
    assert_int_equal(c.timeout_corr, c.corr);
    /* the server answers at 300 ms: the reply is late, dropped and counted */
    uint64_t dl[MX_DL_COUNT];
    assert_true(TU_WAIT_UNTIL((mx_deadletters(sys, dl), dl[MX_DL_LATE_REPLY] == 1), 5000));
    assert_int_equal(atomic_load(&c.got_reply), 0);
    finish(sys);
}

/* ---- stop with pending messages; stop callbacks; dead letters ---- */

struct blocker {
    sem_t *gate;
    _Atomic int entered, handled, stopped;
};

static int blk_init(mx_actor_t *self, void *arg, void **state)
{
    *state = arg;
    return 0;
}

static int blk_recv(mx_actor_t *self, void *state, struct mx_msg *m)
{
    struct blocker *b = state;
    if (atomic_exchange(&b->entered, 1) == 0)
        sem_wait(b->gate);
    atomic_fetch_add(&b->handled, 1);
    return 0;
}

static void blk_stop(mx_actor_t *self, void *state)
{
    struct blocker *b = state;
    atomic_fetch_add(&b->stopped, 1);
}

static const struct mx_behaviour blk_beh = {"blocker", blk_init, blk_recv, blk_stop};

static void test_stop_with_pending(void **st)
{
    mx_system_t *sys = start(1);
    static sem_t gate;
    sem_init(&gate, 0, 0);
    static struct blocker b;
    memset(&b, 0, sizeof(b));
    b.gate = &gate;
    struct mx_addr a;
    assert_int_equal(mx_spawn(sys, &blk_beh, &b, NULL, &a), 0);
    assert_int_equal(mx_sys_send(sys, a, echo_msg(1)), 0);
    assert_true(TU_WAIT_UNTIL(atomic_load(&b.entered), 5000));
    for (int i = 0; i < 5; i++)
        assert_int_equal(mx_sys_send(sys, a, echo_msg(2)), 0);
    assert_int_equal(mx_actor_stop(sys, a), 0); /* control lane: ahead of the five */
    sem_post(&gate);
    assert_true(TU_WAIT_UNTIL(atomic_load(&b.stopped) == 1, 5000));
    uint64_t dl[MX_DL_COUNT];
    assert_true(TU_WAIT_UNTIL((mx_deadletters(sys, dl), dl[MX_DL_STOPPED] == 5), 5000));
    assert_int_equal(atomic_load(&b.handled), 1);
    /* the address is dead now: sends fail and are counted */
    struct mx_msg *m = echo_msg(3);
    assert_int_equal(mx_sys_send(sys, a, m), MX_ENOACTOR);
    mx_msg_free(m);
    mx_deadletters(sys, dl);
    assert_int_equal(dl[MX_DL_NO_ACTOR], 1);
    /* the slot is reused by the next spawn, with a new generation */
    struct mx_addr a2;
    static struct blocker b2;
    memset(&b2, 0, sizeof(b2));
    b2.gate = &gate;
    sem_post(&gate);
    assert_int_equal(mx_spawn(sys, &blk_beh, &b2, NULL, &a2), 0);
    assert_int_not_equal(a2.actor, a.actor);
    finish(sys);
}

static void test_system_stop_counts_pending(void **st)
{
    mx_system_t *sys = start(2);
    static sem_t gate;
    sem_init(&gate, 0, 0);
    static struct blocker b;
    memset(&b, 0, sizeof(b));
    b.gate = &gate;
    struct mx_addr a;
    assert_int_equal(mx_spawn(sys, &blk_beh, &b, NULL, &a), 0);
    assert_int_equal(mx_sys_send(sys, a, echo_msg(1)), 0);
    assert_true(TU_WAIT_UNTIL(atomic_load(&b.entered), 5000));
    for (int i = 0; i < 7; i++)
        assert_int_equal(mx_sys_send(sys, a, echo_msg(2)), 0);
    sem_post(&gate);
    assert_int_equal(mx_system_stop(sys, 5000), 0);
    uint64_t dl[MX_DL_COUNT];
    mx_deadletters(sys, dl);
    /* every message was either handled or counted: none vanished */
    assert_int_equal((uint64_t)atomic_load(&b.handled) + dl[MX_DL_STOPPED], 8);
    assert_int_equal(atomic_load(&b.stopped), 1);
    mx_system_free(sys);
}

/* ---- restart policy ---- */

struct flaky {
    _Atomic int inits, stops, handled;
};

static int flaky_init(mx_actor_t *self, void *arg, void **state)
{
    struct flaky *f = arg;
    atomic_fetch_add(&f->inits, 1);
    *state = f;
    return 0;
}

static int flaky_recv(mx_actor_t *self, void *state, struct mx_msg *m)
{
    struct flaky *f = state;
    struct mx_m_test_echo e;
    atomic_fetch_add(&f->handled, 1);
    if (mx_msg_decode(m, &e) != 0 || e.n == 666)
        return MX_EINTERNAL;
    return 0;
}

static void flaky_stop(mx_actor_t *self, void *state)
{
    struct flaky *f = state;
    atomic_fetch_add(&f->stops, 1);
}

static const struct mx_behaviour flaky_beh = {"flaky", flaky_init, flaky_recv, flaky_stop};

static void test_restart_policy(void **st)
{
    mx_system_t *sys = start(1);
    static struct flaky f;
    memset(&f, 0, sizeof(f));
    struct mx_addr a;
    struct mx_spawn_opts o = MX_SPAWN_OPTS_DEFAULT;
    o.max_restarts = 2;
    o.restart_window_s = 60;
    assert_int_equal(mx_spawn(sys, &flaky_beh, &f, &o, &a), 0);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(mx_sys_send(sys, a, echo_msg(666)), 0);
        assert_true(TU_WAIT_UNTIL(atomic_load(&f.inits) == 2 + i, 5000));
    }
    struct mx_actor_stats as;
    assert_int_equal(mx_actor_stats(sys, a, &as), 0);
    assert_int_equal(as.restarts, 2);
    assert_int_equal(as.errors, 2);
    /* a good message is still handled by the restarted actor */
    assert_int_equal(mx_sys_send(sys, a, echo_msg(1)), 0);
    assert_true(TU_WAIT_UNTIL(atomic_load(&f.handled) == 3, 5000));
    /* the third error within the window exceeds the limit: stopped, reported */
    assert_int_equal(mx_sys_send(sys, a, echo_msg(666)), 0);
    assert_true(TU_WAIT_UNTIL(mx_actor_stats(sys, a, &as) == MX_ENOACTOR, 5000));
    assert_int_equal(atomic_load(&f.inits), 3);
    assert_int_equal(atomic_load(&f.stops), 3); /* every init paired with a stop */
    finish(sys);
}

/* ---- timers ---- */

struct ticker {
    _Atomic int ticks;
    uint64_t id;
    int cancel_at;
};

static int tick_init(mx_actor_t *self, void *arg, void **state)
{
    struct ticker *t = arg;
    *state = t;
    struct mx_msg *tmpl;
    mx_msg_encode(MX_T_sys_tick, &(struct mx_m_sys_tick){7}, &tmpl);
    return mx_timer_start(self, 5, 5, tmpl, &t->id);
}

static int tick_recv(mx_actor_t *self, void *state, struct mx_msg *m)
{
    struct ticker *t = state;
    struct mx_m_sys_tick k;
    if (m->env.type != MX_T_sys_tick || mx_msg_decode(m, &k) != 0 || k.seq != 7)
        return MX_EDECODE;
    if (atomic_fetch_add(&t->ticks, 1) + 1 == t->cancel_at)
        assert_int_equal(mx_timer_cancel(self, t->id), 0);
    return 0;
}

static const struct mx_behaviour tick_beh = {"ticker", tick_init, tick_recv, NULL};

static void test_timers(void **st)
{
    mx_system_t *sys = start(1);
    static struct ticker t;
    memset(&t, 0, sizeof(t));
    t.cancel_at = 5;
    assert_int_equal(mx_spawn(sys, &tick_beh, &t, NULL, NULL), 0);
    assert_true(TU_WAIT_UNTIL(atomic_load(&t.ticks) >= 5, 5000));
    /* a second ticker with the same period on the same scheduler ticks 20
     * times: the cancelled one would have ticked as often meanwhile */
    static struct ticker t2;
    memset(&t2, 0, sizeof(t2));
    t2.cancel_at = 20;
    assert_int_equal(mx_spawn(sys, &tick_beh, &t2, NULL, NULL), 0);
    assert_true(TU_WAIT_UNTIL(atomic_load(&t2.ticks) >= 20, 5000));
    assert_int_equal(atomic_load(&t.ticks), 5); /* cancelled: no more ticks */
    finish(sys);
}

/* ---- offload ---- */

static sem_t off_gate;

static _Atomic int off_started; /* jobs the worker has taken */

static struct mx_msg *slow_work(void *arg)
{
    atomic_fetch_add(&off_started, 1);
    sem_wait(&off_gate);
    struct mx_msg *m;
    mx_msg_encode(MX_T_test_echo, &(struct mx_m_test_echo){(uint64_t)(uintptr_t)arg, MX_STR("")},
                  &m);
    return m;
}

struct offloader {
    _Atomic int accepted, refused, results;
    uint64_t sum;
};

static int off_init(mx_actor_t *self, void *arg, void **state)
{
    struct offloader *o = arg;
    *state = o;
    /* one worker and a queue of 4: the first runs (and blocks), 4 queue,
     * the rest are refused */
    for (uintptr_t i = 1; i <= 8; i++) {
        uint64_t job;
        if (mx_offload(self, slow_work, (void *)i, &job) == 0)
            atomic_fetch_add(&o->accepted, 1);
        else
            atomic_fetch_add(&o->refused, 1);
        if (i == 1) /* the worker takes the first job: the queue holds the next 4 */
            assert_true(TU_WAIT_UNTIL(atomic_load(&off_started) == 1, 5000));
    }
    return 0;
}

static int off_recv(mx_actor_t *self, void *state, struct mx_msg *m)
{
    struct offloader *o = state;
    struct mx_m_test_echo e;
    if (mx_msg_decode(m, &e) != 0)
        return MX_EDECODE;
    o->sum += e.n;
    atomic_fetch_add(&o->results, 1);
    return 0;
}

static const struct mx_behaviour off_beh = {"offloader", off_init, off_recv, NULL};

static void test_offload(void **st)
{
    mx_system_t *sys = start(1);
    sem_init(&off_gate, 0, 0);
    atomic_store(&off_started, 0);
    static struct offloader o;
    memset(&o, 0, sizeof(o));
    assert_int_equal(mx_spawn(sys, &off_beh, &o, NULL, NULL), 0);
    assert_true(TU_WAIT_UNTIL(atomic_load(&o.accepted) + atomic_load(&o.refused) == 8, 5000));
    assert_int_equal(atomic_load(&o.accepted), 5);
    assert_int_equal(atomic_load(&o.refused), 3);
    for (int i = 0; i < 5; i++)
        sem_post(&off_gate);
    assert_true(TU_WAIT_UNTIL(atomic_load(&o.results) == 5, 5000));
    assert_int_equal(o.sum, 1 + 2 + 3 + 4 + 5);
    struct mx_system_stats ss;
    mx_system_stats(sys, &ss);
    assert_int_equal(ss.offload_refused, 3);
    finish(sys);
}

/* ---- names ---- */

static void test_names(void **st)
{
    mx_system_t *sys = start(2);
    static struct flaky f;
    memset(&f, 0, sizeof(f));
    struct mx_addr a, found;
    struct mx_spawn_opts o = MX_SPAWN_OPTS_DEFAULT;
    o.name = "cache";
    assert_int_equal(mx_spawn(sys, &flaky_beh, &f, &o, &a), 0);
    assert_int_equal(mx_whereis(sys, "cache", &found), 0);
    assert_int_equal(found.actor, a.actor);
    assert_int_equal(mx_spawn(sys, &flaky_beh, &f, &o, NULL), MX_EEXISTS);
    assert_int_equal(mx_whereis(sys, "nobody", &found), MX_ENOTFOUND);
    assert_int_equal(mx_register(sys, "has space", a), MX_EINVAL);
    assert_int_equal(mx_register(sys, "", a), MX_EINVAL);
    struct mx_actor_stats as;
    assert_int_equal(mx_actor_stats(sys, a, &as), 0);
    assert_string_equal(as.name, "cache");
    /* stopping the actor removes its name */
    assert_int_equal(mx_actor_stop(sys, a), 0);
    assert_true(TU_WAIT_UNTIL(mx_whereis(sys, "cache", &found) == MX_ENOTFOUND, 5000));
    finish(sys);
}

/* ---- many actors: spawn, message, stop, respawn ---- */

struct counter {
    _Atomic uint64_t n;
};

static int cnt_init(mx_actor_t *self, void *arg, void **state)
{
    *state = arg;
    return 0;
}

static int cnt_recv(mx_actor_t *self, void *state, struct mx_msg *m)
{
    atomic_fetch_add(&((struct counter *)state)->n, 1);
    return 0;
}

static const struct mx_behaviour cnt_beh = {"counter", cnt_init, cnt_recv, NULL};

static void test_spawn_churn(void **st)
{
    mx_system_t *sys = start(2);
    static struct counter c;
    atomic_store(&c.n, 0);
    enum { N = 5000 };
    static struct mx_addr addrs[N];
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < N; i++)
            assert_int_equal(mx_spawn(sys, &cnt_beh, &c, NULL, &addrs[i]), 0);
        for (int i = 0; i < N; i++)
            assert_int_equal(mx_sys_send(sys, addrs[i], echo_msg(1)), 0);
        for (int i = 0; i < N; i++)
            assert_int_equal(mx_actor_stop(sys, addrs[i]), 0);
        struct mx_system_stats ss;
        assert_true(TU_WAIT_UNTIL((mx_system_stats(sys, &ss), ss.live_actors == 0), 10000));
        /* the stop (control lane) may overtake the message: every message is
         * either handled or a dead letter, none is lost */
        uint64_t dl[MX_DL_COUNT];
        mx_deadletters(sys, dl);
        assert_int_equal(atomic_load(&c.n) + dl[MX_DL_STOPPED], (uint64_t)N * (round + 1));
    }
    finish(sys);
}

/* Messages refused above the runtime (singleton buffers) are counted with
 * the runtime's dead letters, and only under a valid reason. */
static void test_deadletter_note(void **st)
{
    mx_system_t *sys = start(1);
    uint64_t before[MX_DL_COUNT], after[MX_DL_COUNT];
    mx_deadletters(sys, before);
    mx_deadletter_note(sys, MX_DL_MAILBOX_FULL);
    mx_deadletter_note(sys, MX_DL_MAILBOX_FULL);
    mx_deadletter_note(sys, (enum mx_dl_reason)MX_DL_COUNT); /* ignored */
    mx_deadletters(sys, after);
    assert_int_equal(after[MX_DL_MAILBOX_FULL], before[MX_DL_MAILBOX_FULL] + 2);
    for (int r = 0; r < MX_DL_COUNT; r++)
        if (r != MX_DL_MAILBOX_FULL)
            assert_int_equal(after[r], before[r]);
    finish(sys);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_reply),
        cmocka_unit_test(test_deadletter_note),
        cmocka_unit_test(test_request_timeout_and_late_reply),
        cmocka_unit_test(test_stop_with_pending),
        cmocka_unit_test(test_system_stop_counts_pending),
        cmocka_unit_test(test_restart_policy),
        cmocka_unit_test(test_timers),
        cmocka_unit_test(test_offload),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_spawn_churn),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
