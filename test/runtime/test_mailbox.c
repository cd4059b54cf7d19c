/* test_mailbox.c - mailbox ordering, loss, overflow policies and counters. */
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

#define NPROD 8
#define MAXSENDERS 16

/* A receiver that checks FIFO per sender: seq must be exactly next[sender]. */
struct sink {
    _Atomic uint64_t total;
    _Atomic uint64_t order_errors;
    _Atomic uint64_t decode_errors;
    uint64_t next[MAXSENDERS]; /* receiver thread only */
    sem_t *block;              /* when set, the first message waits on it */
    _Atomic int blocked;
    uint64_t seen[64]; /* first seqs handled (overflow tests) */
    _Atomic uint64_t nseen;
};

static int sink_init(mx_actor_t *self, void *arg, void **state)
{
    *state = arg;
    return 0;
}

static int sink_recv(mx_actor_t *self, void *state, struct mx_msg *m)
{
    struct sink *s = state;
    struct mx_m_test_kv kv;
    if (m->env.type != MX_T_test_kv || mx_msg_decode(m, &kv) != 0) {
        atomic_fetch_add(&s->decode_errors, 1);
        return 0;
    }
    if (s->block && atomic_exchange(&s->blocked, 1) == 0)
        sem_wait(s->block);
    if (kv.sender < MAXSENDERS) {
        if (kv.seq != s->next[kv.sender])
            atomic_fetch_add(&s->order_errors, 1);
        s->next[kv.sender] = kv.seq + 1;
    }
    uint64_t i = atomic_load(&s->nseen);
    if (i < 64) {
        s->seen[i] = kv.seq;
        atomic_store(&s->nseen, i + 1);
    }
    atomic_fetch_add(&s->total, 1);
    return 0;
}

static const struct mx_behaviour sink_beh = {"sink", sink_init, sink_recv, NULL};

static struct mx_msg *kv_msg(uint64_t sender, uint64_t seq)
{
    struct mx_msg *m;
    struct mx_m_test_kv kv = {.sender = sender, .seq = seq, .text = MX_STR("0123456789abcdef")};
    assert_int_equal(mx_msg_encode(MX_T_test_kv, &kv, &m), 0);
    return m;
}

static mx_system_t *start(int nsched)
{
    mx_system_t *sys;
    struct mx_system_opts o = {.node_name = "test", .schedulers = nsched};
    assert_int_equal(mx_system_start(&o, &sys), 0);
    return sys;
}

/* messages pending at actor a (-1: no such actor) */
static int64_t depth_of(mx_system_t *sys, struct mx_addr a)
{
    struct mx_actor_stats as;
    return mx_actor_stats(sys, a, &as) == 0 ? as.depth : -1;
}

static void finish(mx_system_t *sys)
{
    assert_int_equal(mx_system_stop(sys, 5000), 0);
    mx_system_free(sys);
}

struct prod_arg {
    mx_system_t *sys;
    struct mx_addr to;
    uint64_t id, count;
    uint64_t full_retries;
};

static void *producer(void *p)
{
    struct prod_arg *a = p;
    for (uint64_t i = 0; i < a->count; i++) {
        struct mx_msg *m = kv_msg(a->id, i);
        int rc;
        while ((rc = mx_sys_send(a->sys, a->to, m)) == MX_EFULL) {
            a->full_retries++;
            sched_yield(); /* back-pressure: we still own m, try again */
        }
        assert_int_equal(rc, 0);
    }
    return NULL;
}

/* 8 producer threads x N messages into one actor: nothing lost, nothing
 * doubled, each producer's messages in order. */
static void test_many_producers_no_loss(void **st)
{
    mx_system_t *sys = start(2);
    static struct sink s;
    memset(&s, 0, sizeof(s));
    struct mx_addr to;
    struct mx_spawn_opts o = MX_SPAWN_OPTS_DEFAULT;
    o.cap_msgs = 4096;
    assert_int_equal(mx_spawn(sys, &sink_beh, &s, &o, &to), 0);
    const uint64_t per = TU_SCALE(1000000);
    pthread_t th[NPROD];
    struct prod_arg pa[NPROD];
    for (int i = 0; i < NPROD; i++) {
        pa[i] = (struct prod_arg){sys, to, (uint64_t)i, per, 0};
        pthread_create(&th[i], NULL, producer, &pa[i]);
    }
    for (int i = 0; i < NPROD; i++)
        pthread_join(th[i], NULL);
    assert_true(TU_WAIT_UNTIL(atomic_load(&s.total) == NPROD * per, 60000));
    assert_true(TU_WAIT_UNTIL(depth_of(sys, to) == 0, 5000)); /* nothing left to arrive */
    assert_int_equal(atomic_load(&s.total), NPROD * per);     /* no duplicates arrived late */
    assert_int_equal(atomic_load(&s.order_errors), 0);
    assert_int_equal(atomic_load(&s.decode_errors), 0);
    for (int i = 0; i < NPROD; i++)
        assert_int_equal(s.next[i], per);
    struct mx_actor_stats as;
    assert_int_equal(mx_actor_stats(sys, to, &as), 0);
    assert_int_equal(as.handled, NPROD * per);
    TU_ASSERT_CMP(as.hwm, <=, 4096);
    finish(sys);
}

/* Sender actors on both schedulers; each keeps its own order into one sink. */
struct sender {
    struct mx_addr to;
    uint64_t id, next, count;
    struct mx_msg *held; /* refused message, retried next turn */
};

static int sender_init(mx_actor_t *self, void *arg, void **state)
{
    *state = arg;
    struct mx_msg *go;
    assert_int_equal(mx_msg_encode(MX_T_sys_tick, &(struct mx_m_sys_tick){0}, &go), 0);
    return mx_send(self, mx_self(self), go);
}

static int sender_recv(mx_actor_t *self, void *state, struct mx_msg *m)
{
    struct sender *s = state;
    for (int i = 0; i < 256 && s->next < s->count; i++) {
        struct mx_msg *out = s->held ? s->held : kv_msg(s->id, s->next);
        s->held = NULL;
        if (mx_send(self, s->to, out) != 0) {
            s->held = out;
            break;
        }
        s->next++;
    }
    if (s->next < s->count) {
        struct mx_msg *go;
        mx_msg_encode(MX_T_sys_tick, &(struct mx_m_sys_tick){0}, &go);
        if (mx_send(self, mx_self(self), go) != 0)
            mx_msg_free(go);
    }
    return 0;
}

static void sender_stop(mx_actor_t *self, void *state)
{
    struct sender *s = state;
    mx_msg_free(s->held);
    s->held = NULL;
}

static const struct mx_behaviour sender_beh = {"sender", sender_init, sender_recv, sender_stop};

static void test_fifo_across_schedulers(void **st)
{
    mx_system_t *sys = start(2);
    static struct sink s;
    memset(&s, 0, sizeof(s));
    struct mx_addr to;
    struct mx_spawn_opts o = MX_SPAWN_OPTS_DEFAULT;
    o.sched = 0;
    o.cap_msgs = 512;
    assert_int_equal(mx_spawn(sys, &sink_beh, &s, &o, &to), 0);
    enum { NS = 6 };
    static struct sender snd[NS];
    const uint64_t per = TU_SCALE(200000);
    for (int i = 0; i < NS; i++) {
        snd[i] = (struct sender){.to = to, .id = (uint64_t)i, .count = per};
        struct mx_spawn_opts so = MX_SPAWN_OPTS_DEFAULT;
        so.sched = i % 2; /* half on the sink's scheduler, half across */
        assert_int_equal(mx_spawn(sys, &sender_beh, &snd[i], &so, NULL), 0);
    }
    assert_true(TU_WAIT_UNTIL(atomic_load(&s.total) == NS * per, 60000));
    assert_int_equal(atomic_load(&s.order_errors), 0);
    for (int i = 0; i < NS; i++)
        assert_int_equal(s.next[i], per);
    finish(sys);
}

/* Fill a mailbox of capacity 10 behind a blocked handler. The handler's own
 * message still counts until its turn ends, so 9 more fit. */
static void fill_blocked(enum mx_overflow pol, uint32_t cap_bytes, int *accepted, int *refused,
                         struct sink *s, mx_system_t **sysp, struct mx_addr *to)
{
    mx_system_t *sys = start(1);
    static sem_t block;
    sem_init(&block, 0, 0);
    memset(s, 0, sizeof(*s));
    s->block = &block;
    struct mx_spawn_opts o = MX_SPAWN_OPTS_DEFAULT;
    o.cap_msgs = 10;
    o.cap_bytes = cap_bytes;
    o.overflow = pol;
    assert_int_equal(mx_spawn(sys, &sink_beh, s, &o, to), 0);
    struct mx_actor_stats as;
    /* let init's turn end first, so the blocker is alone in its turn */
    assert_true(TU_WAIT_UNTIL(mx_actor_stats(sys, *to, &as) == 0 && as.depth == 0, 5000));
    assert_int_equal(mx_sys_send(sys, *to, kv_msg(0, 1000)), 0);
    assert_true(TU_WAIT_UNTIL(atomic_load(&s->blocked) == 1, 5000));
    s->next[0] = 0; /* the blocker's seq is out of band */
    *accepted = *refused = 0;
    for (uint64_t i = 0; i < 25; i++) {
        struct mx_msg *m = kv_msg(1, i);
        int rc = mx_sys_send(sys, *to, m);
        if (rc == 0) {
            (*accepted)++;
        } else {
            assert_int_equal(rc, MX_EFULL);
            mx_msg_free(m);
            (*refused)++;
        }
    }
    *sysp = sys;
}

static void release(struct sink *s)
{
    sem_post(s->block);
}

static void test_overflow_reject(void **st)
{
    static struct sink s;
    mx_system_t *sys;
    struct mx_addr to;
    int acc, ref;
    fill_blocked(MX_OVERFLOW_REJECT, 0, &acc, &ref, &s, &sys, &to);
    assert_int_equal(acc, 9);
    assert_int_equal(ref, 16);
    uint64_t dl[MX_DL_COUNT];
    mx_deadletters(sys, dl);
    assert_int_equal(dl[MX_DL_MAILBOX_FULL], 16);
    struct mx_actor_stats as;
    assert_int_equal(mx_actor_stats(sys, to, &as), 0);
    assert_int_equal(as.refused, 16);
    assert_int_equal(as.depth, 10);
    release(&s);
    assert_true(TU_WAIT_UNTIL(atomic_load(&s.total) == 10, 5000));
    for (int i = 0; i < 9; i++)
        assert_int_equal(s.seen[i + 1], (uint64_t)i); /* the first nine, in order */
    finish(sys);
}

static void test_overflow_drop_newest(void **st)
{
    static struct sink s;
    mx_system_t *sys;
    struct mx_addr to;
    int acc, ref;
    fill_blocked(MX_OVERFLOW_DROP_NEWEST, 0, &acc, &ref, &s, &sys, &to);
    assert_int_equal(acc, 25); /* the sender is not refused... */
    uint64_t dl[MX_DL_COUNT];
    mx_deadletters(sys, dl);
    assert_int_equal(dl[MX_DL_DROPPED_NEWEST], 16); /* ...the newest are dropped, counted */
    release(&s);
    assert_true(TU_WAIT_UNTIL(atomic_load(&s.total) == 10, 5000));
    assert_true(TU_WAIT_UNTIL(depth_of(sys, to) == 0, 5000)); /* nothing left to arrive */
    assert_int_equal(atomic_load(&s.total), 10);
    for (int i = 0; i < 9; i++)
        assert_int_equal(s.seen[i + 1], (uint64_t)i);
    finish(sys);
}

static void test_overflow_drop_oldest(void **st)
{
    static struct sink s;
    mx_system_t *sys;
    struct mx_addr to;
    int acc, ref;
    fill_blocked(MX_OVERFLOW_DROP_OLDEST, 0, &acc, &ref, &s, &sys, &to);
    /* accepts up to twice the capacity, then refuses */
    assert_int_equal(acc, 19);
    assert_int_equal(ref, 6);
    release(&s);
    /* 1 blocker + 19 accepted, of which the 10 oldest are dropped */
    assert_true(TU_WAIT_UNTIL(atomic_load(&s.total) == 10, 5000));
    assert_true(TU_WAIT_UNTIL(depth_of(sys, to) == 0, 5000)); /* nothing left to arrive */
    assert_int_equal(atomic_load(&s.total), 10);
    for (int i = 0; i < 9; i++)
        assert_int_equal(s.seen[i + 1], (uint64_t)(10 + i)); /* the newest nine survive */
    uint64_t dl[MX_DL_COUNT];
    mx_deadletters(sys, dl);
    assert_int_equal(dl[MX_DL_DROPPED_OLDEST], 10);
    assert_int_equal(dl[MX_DL_MAILBOX_FULL], 6);
    finish(sys);
}

static void test_overflow_bytes(void **st)
{
    static struct sink s;
    mx_system_t *sys;
    struct mx_addr to;
    int acc, ref;
    /* each message charges sizeof(struct mx_msg) + body: allow about three */
    struct mx_msg *probe = kv_msg(1, 0);
    uint32_t one = mx_msg_size(probe);
    mx_msg_free(probe);
    fill_blocked(MX_OVERFLOW_REJECT, 3 * one + one / 2, &acc, &ref, &s, &sys, &to);
    assert_int_equal(acc, 3);
    assert_int_equal(ref, 22);
    release(&s);
    assert_true(TU_WAIT_UNTIL(atomic_load(&s.total) == 4, 5000));
    finish(sys);
}

/* ---- a turn takes only what was queued when it began ---- */

#define YIELDS 50

struct turns {
    struct mx_addr a, b;
    char log[YIELDS + 8]; /* 'A' per message of a, 'B' for b; scheduler thread only */
    int n;
    _Atomic int done;
};

/* a: each message it handles it sends itself again, YIELDS times */
static int yielder_recv(mx_actor_t *self, void *state, struct mx_msg *m)
{
    struct turns *t = state;
    struct mx_m_test_kv kv;
    assert_int_equal(mx_msg_decode(m, &kv), 0);
    t->log[t->n++] = 'A';
    if (kv.seq + 1 < YIELDS)
        return mx_send(self, mx_self(self), kv_msg(0, kv.seq + 1));
    atomic_fetch_add(&t->done, 1);
    return 0;
}

static int other_recv(mx_actor_t *self, void *state, struct mx_msg *m)
{
    struct turns *t = state;
    t->log[t->n++] = 'B';
    atomic_fetch_add(&t->done, 1);
    return 0;
}

/* the starter makes a and then b runnable within one of its turns, so the
 * run queue holds a, b in that order */
static int starter_recv(mx_actor_t *self, void *state, struct mx_msg *m)
{
    struct turns *t = state;
    assert_int_equal(mx_send(self, t->a, kv_msg(0, 0)), 0);
    return mx_send(self, t->b, kv_msg(1, 0));
}

static int turns_init(mx_actor_t *self, void *arg, void **state)
{
    *state = arg;
    return 0;
}

/* An actor that sends itself a message to yield does yield: the message
 * waits for its next turn, behind the actor that was already runnable,
 * instead of being handled in the same turn up to MX_BATCH times. */
static void test_self_send_yields(void **st)
{
    static struct turns t;
    static const struct mx_behaviour ya = {"yielder", turns_init, yielder_recv, NULL},
                                     ob = {"other", turns_init, other_recv, NULL},
                                     sa = {"starter", turns_init, starter_recv, NULL};
    memset(&t, 0, sizeof(t));
    mx_system_t *sys = start(1);
    struct mx_spawn_opts o = MX_SPAWN_OPTS_DEFAULT;
    o.sched = 0;
    struct mx_addr s;
    assert_int_equal(mx_spawn(sys, &ya, &t, &o, &t.a), 0);
    assert_int_equal(mx_spawn(sys, &ob, &t, &o, &t.b), 0);
    assert_int_equal(mx_spawn(sys, &sa, &t, &o, &s), 0);
    assert_int_equal(mx_sys_send(sys, s, kv_msg(2, 0)), 0);
    assert_true(TU_WAIT_UNTIL(atomic_load(&t.done) == 2, 5000));
    finish(sys);
    TU_ASSERT_CMP(t.n, ==, YIELDS + 1);
    t.log[t.n] = 0;
    /* a's first message, then b, then the rest of a's */
    assert_string_equal(t.log, "AB"
                               "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_many_producers_no_loss),
        cmocka_unit_test(test_fifo_across_schedulers),
        cmocka_unit_test(test_overflow_reject),
        cmocka_unit_test(test_overflow_drop_newest),
        cmocka_unit_test(test_overflow_drop_oldest),
        cmocka_unit_test(test_overflow_bytes),
        cmocka_unit_test(test_self_send_yields),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
