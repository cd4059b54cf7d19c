/* calculator_test.c - the calculator actor (actors/calculator) on a real
 * actor system with one scheduler and one offload thread: it answers each
 * calc_req with the job and its results, keeps at most `pool` jobs on the
 * offload threads and `max_queued` waiting, refuses the rest with
 * MX_EFULL (no job), reports a job's own error as its status, answers with
 * the asker's tag, and counts all of it in its metrics block. Everything
 * is waited for, never slept. */
#include <semaphore.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "mx_calculator.h"
#include "mx_err.h"
#include "mx_testutil.h"

#define TAG0 ((uint64_t)1 << 62) /* the asker's tags: job i is TAG0 + i */

static const char equipment[] = "{\"item_equipment\":[],\"preset_no\":1}";

/* what the asker saw, written on its thread, read by the test */
static struct {
    _Atomic int replies, ok, refused, failed, docs_right, tagged;
} seen;

struct asker {
    struct mx_addr calc;
    int njobs;
    bool calculate; /* a calculation, not an equipment document */
    bool hold;      /* occupy the one offload thread until the test posts gate */
};

static sem_t gate;

static struct mx_msg *blocker(void *arg)
{
    (void)arg;
    sem_wait(&gate);
    return NULL; /* the asker gets a sys_offload_done: ignored */
}

static int ask_init(mx_actor_t *self, void *arg, void **state)
{
    (void)self;
    *state = arg;
    return 0;
}

static int ask_recv(mx_actor_t *self, void *state, struct mx_msg *m)
{
    struct asker *a = state;
    if (m->env.type == MX_T_test_echo) { /* the kick: ask for every job in one turn */
        if (a->hold)
            assert_int_equal(mx_offload(self, blocker, NULL, NULL), 0);
        struct mx_blob *eq = mx_blob_new(a->calculate ? "not json" : equipment,
                                         a->calculate ? 8 : sizeof equipment - 1);
        for (int i = 0; i < a->njobs; i++) {
            struct mx_calc_job *j = mx_calc_job_new(eq);
            snprintf(j->ign, sizeof j->ign, "hero%d", i);
            j->equip_doc = !a->calculate;
            if (mx_calculator_ask(self, a->calc, j, TAG0 + (uint64_t)i) != 0)
                mx_calc_job_free(j);
        }
        mx_blob_unref(eq);
        return 0;
    }
    if (m->env.type != MX_T_exp_calc_done)
        return 0;
    struct mx_m_exp_calc_done d;
    assert_int_equal(mx_msg_decode(m, &d), 0);
    if (m->env.corr >= TAG0 && m->env.corr < TAG0 + (uint64_t)a->njobs)
        atomic_fetch_add(&seen.tagged, 1); /* the answer names the job it answers */
    struct mx_calc_job *j = m->ptr;
    if (d.status == 0 && j) {
        atomic_fetch_add(&seen.ok, 1);
        /* the equipment's own bytes as a document, with its gzip */
        if (j->fresh && j->fresh->plain->len == sizeof equipment - 1 &&
            memcmp(j->fresh->plain->data, equipment, sizeof equipment - 1) == 0 && j->fresh->gzip)
            atomic_fetch_add(&seen.docs_right, 1);
    } else if (d.status == MX_EFULL && !j) {
        atomic_fetch_add(&seen.refused, 1);
    } else if (j && j->status == d.status && d.status != 0) {
        atomic_fetch_add(&seen.failed, 1);
    }
    atomic_fetch_add(&seen.replies, 1);
    return 0;
}

static const struct mx_behaviour asker_b = {.name = "asker", .init = ask_init, .receive = ask_recv};

static mx_system_t *sys;
static struct mx_calculator_metrics base; /* counters before the test */

static uint64_t delta(const char *what)
{
    const struct mx_calculator_metrics *m = mx_calculator_metrics();
#define D(kind, name, help)                                                                        \
    if (strcmp(what, #name) == 0)                                                                  \
        return MX_METRIC_GET(m, name) - MX_METRIC_GET(&base, name);
    MX_CALCULATOR_METRICS(D)
#undef D
    fail_msg("no counter %s", what);
    return 0;
}

static void snapshot(void)
{
    const struct mx_calculator_metrics *m = mx_calculator_metrics();
#define S(kind, name, help) MX_METRIC_SET(&base, name, MX_METRIC_GET(m, name));
    MX_CALCULATOR_METRICS(S)
#undef S
    memset(&seen, 0, sizeof seen);
}

static void run_asker(struct asker *a)
{
    assert_int_equal(mx_whereis(sys, MX_CALCULATOR_NAME, &a->calc), 0);
    struct mx_spawn_opts so = MX_SPAWN_OPTS_DEFAULT;
    struct mx_addr at;
    assert_int_equal(mx_spawn(sys, &asker_b, a, &so, &at), 0);
    struct mx_msg *kick;
    assert_int_equal(
        mx_msg_encode(MX_T_test_echo, &(struct mx_m_test_echo){1, MX_STR("go")}, &kick), 0);
    assert_int_equal(mx_sys_send(sys, at, kick), 0);
    if (a->hold) {
        /* no job can finish yet, so the queue's bound decides alone */
        assert_true(TU_WAIT_UNTIL(delta("requests") == (uint64_t)a->njobs, 10000));
        assert_int_equal(delta("refused"), 1);
        assert_int_equal(MX_METRIC_GET(mx_calculator_metrics(), queued), 1);
        assert_int_equal(MX_METRIC_GET(mx_calculator_metrics(), inflight), 1);
        sem_post(&gate);
    }
    assert_true(TU_WAIT_UNTIL(atomic_load(&seen.replies) == a->njobs, 10000));
    assert_int_equal(atomic_load(&seen.tagged), a->njobs);
    /* the worker's notice frees its slot after its answer went */
    assert_true(TU_WAIT_UNTIL(MX_METRIC_GET(mx_calculator_metrics(), inflight) == 0, 10000));
}

static int setup(void **st)
{
    (void)st;
    sem_init(&gate, 0, 0);
    struct mx_system_opts o = {.node_name = "t", .schedulers = 1, .offload_threads = 1};
    assert_int_equal(mx_system_start(&o, &sys), 0);
    struct mx_calculator_opts co;
    mx_calculator_opts_default(&co);
    co.pool = 1;
    co.max_queued = 1;
    assert_int_equal(mx_calculator_start(sys, &co), 0);
    return 0;
}

static int teardown(void **st)
{
    (void)st;
    assert_int_equal(mx_system_stop(sys, 5000), 0);
    mx_system_free(sys);
    return 0;
}

/* Three jobs while the one offload thread is held: the first is given to
 * it, the second waits in the queue, the third finds the queue full; once
 * the thread is free both kept jobs are answered. */
static void pool_queue_refusal(void **st)
{
    (void)st;
    snapshot();
    struct asker a = {.njobs = 3, .hold = true};
    run_asker(&a);
    assert_int_equal(atomic_load(&seen.ok), 2);
    assert_int_equal(atomic_load(&seen.docs_right), 2);
    assert_int_equal(atomic_load(&seen.refused), 1);
    assert_int_equal(delta("requests"), 3);
    assert_int_equal(delta("started"), 2);
    assert_int_equal(delta("done"), 2);
    assert_int_equal(delta("refused"), 1);
    assert_int_equal(delta("errors"), 0);
    assert_int_equal(MX_METRIC_GET(mx_calculator_metrics(), pool), 1);
    assert_int_equal(MX_METRIC_GET(mx_calculator_metrics(), queued), 0);
}

/* Unreadable equipment: the job comes back with its error as the status. */
static void job_error(void **st)
{
    (void)st;
    snapshot();
    struct asker a = {.njobs = 1, .calculate = true};
    run_asker(&a);
    assert_int_equal(atomic_load(&seen.failed), 1);
    assert_int_equal(delta("done"), 1);
    assert_int_equal(delta("errors"), 1);
    assert_int_equal(delta("lost"), 0);
}

/* The block is in the process registry under calculator/main, with every
 * field of the X-macro list, so Prometheus and mxctl can be generated
 * from it. */
static int nsets;
static void find_set(const struct mx_metrics_set *set, void *arg)
{
    (void)arg;
    if (strcmp(set->actor, "calculator") != 0)
        return;
    nsets++;
    assert_string_equal(set->instance, "main");
    size_t n = 0;
#define COUNT(kind, name, help) n++;
    MX_CALCULATOR_METRICS(COUNT)
#undef COUNT
    assert_int_equal(set->n, n);
    for (size_t i = 0; i < set->n; i++)
        if (strcmp(set->desc[i].name, "pool") == 0)
            assert_int_equal(mx_metrics_value(set, i), 1);
}

static void registered(void **st)
{
    (void)st;
    nsets = 0;
    mx_metrics_foreach(find_set, NULL);
    assert_int_equal(nsets, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(pool_queue_refusal),
        cmocka_unit_test(job_error),
        cmocka_unit_test(registered),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
