/* test_trace.c - a message's trace id follows the work it causes: into an
 * offloaded job (its log lines and its result), into a request's timeout,
 * into a reply sent from a callback, into what a non-actor thread in an
 * entered trace sends (mx_sys_send), and through a libuv callback that
 * re-enters the trace its handler captured (what the Redis, MySQL and curl
 * completions do); and it does not leak into the next message's handler.
 * Log lines are read back from the log file and checked for the id. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <uv.h>

#include "mx_actor.h"
#include "mx_log.h"
#include "mx_testutil.h"

#define TRACE_HEX "0af7651916cd43dd8448eb211c80319c"

enum step { S_OFFLOAD = 1, S_TIMEOUT, S_CALLBACK, S_PLAIN, S_REPLY, S_SYS };

/* what the tracer saw, written by its thread, read after `done` (release) */
struct seen {
    char offload_result[33];
    char timeout[33];
    char callback_msg[33];
    char plain_handler[33]; /* trace current in a handler of a message with none */
    char reply[33];
    char sys_sent[33]; /* sent with mx_sys_send by a thread in an entered trace */
    _Atomic int done;  /* bit per step */
};
static struct seen g_seen;

struct tracer {
    mx_actor_t *self;
    uv_timer_t t;
    struct mx_trace captured;
    struct mx_msg *held; /* a request answered later, from the callback */
};

static void hex_of(const struct mx_env *env, char out[33])
{
    if (mx_env_has_trace(env))
        mx_env_trace_hex(env, out);
    else
        strcpy(out, "none");
}

static void mark(int step)
{
    atomic_fetch_or_explicit(&g_seen.done, 1 << step, memory_order_release);
}

static struct mx_msg *job(void *arg)
{
    MX_INFO("offload job ran");
    struct mx_msg *m;
    struct mx_m_test_kv kv = {.seq = 7};
    return mx_msg_encode(MX_T_test_kv, &kv, &m) == 0 ? m : NULL;
}

static void on_uv_timer(uv_timer_t *h)
{
    struct tracer *t = h->data;
    if (t->held) { /* a reply from outside any trace scope: it takes the request's */
        struct mx_m_test_echo e = {.n = 0};
        struct mx_msg *rep;
        if (mx_msg_encode(MX_T_test_echo, &e, &rep) == 0 && mx_reply(t->self, t->held, rep) != 0)
            mx_msg_free(rep);
        mx_msg_free(t->held);
        t->held = NULL;
        return;
    }
    struct mx_trace saved;
    mx_trace_enter(&t->captured, &saved);
    MX_INFO("callback fired");
    struct mx_msg *m;
    struct mx_m_test_kv kv = {.seq = 9};
    if (mx_msg_encode(MX_T_test_kv, &kv, &m) == 0 && mx_send(t->self, mx_self(t->self), m) != 0)
        mx_msg_free(m);
    mx_trace_leave(&saved);
}

static int tr_init(mx_actor_t *self, void *arg, void **state)
{
    struct tracer *t = calloc(1, sizeof *t);
    t->self = self;
    uv_timer_init(mx_actor_loop(self), &t->t);
    t->t.data = t;
    *state = t;
    return 0;
}

static void tr_closed(uv_handle_t *h)
{
    free(h->data);
}

static void tr_stop(mx_actor_t *self, void *state)
{
    struct tracer *t = state;
    if (t->held)
        mx_msg_free(t->held);
    uv_close((uv_handle_t *)&t->t, tr_closed);
}

static int tr_receive(mx_actor_t *self, void *state, struct mx_msg *m)
{
    struct tracer *t = state;
    if (m->env.type == MX_T_test_kv) {
        struct mx_m_test_kv kv;
        assert_int_equal(mx_msg_decode(m, &kv), 0);
        if (kv.seq == 7) {
            hex_of(&m->env, g_seen.offload_result);
            mark(S_OFFLOAD);
        } else if (kv.seq == 9) {
            hex_of(&m->env, g_seen.callback_msg);
            mark(S_CALLBACK);
        } else if (kv.seq == 11) {
            hex_of(&m->env, g_seen.sys_sent);
            mark(S_SYS);
        }
        return 0;
    }
    if (m->env.type == MX_T_sys_timeout) {
        hex_of(&m->env, g_seen.timeout);
        mark(S_TIMEOUT);
        return 0;
    }
    if (m->env.type != MX_T_test_echo)
        return 0;
    struct mx_m_test_echo e;
    assert_int_equal(mx_msg_decode(m, &e), 0);
    switch (e.n) {
    case S_OFFLOAD:
        assert_int_equal(mx_offload(self, job, NULL, NULL), 0);
        break;
    case S_TIMEOUT: { /* to a sink that never answers */
        struct mx_addr sink;
        assert_int_equal(mx_whereis(mx_system_of(self), "sink", &sink), 0);
        struct mx_msg *q;
        struct mx_m_test_echo qe = {.n = 0};
        assert_int_equal(mx_msg_encode(MX_T_test_echo, &qe, &q), 0);
        assert_int_equal(mx_request(self, sink, q, 30, NULL), 0);
        break;
    }
    case S_CALLBACK:
        mx_trace_current(&t->captured);
        uv_timer_start(&t->t, on_uv_timer, 5, 0);
        break;
    case S_PLAIN: {
        struct mx_trace cur;
        struct mx_env env = {0};
        mx_trace_current(&cur);
        memcpy(env.trace_id, cur.trace_id, sizeof env.trace_id);
        hex_of(&env, g_seen.plain_handler);
        mark(S_PLAIN);
        break;
    }
    case S_REPLY: /* answered from the uv callback, which enters no trace */
        t->held = mx_msg_share(m);
        uv_timer_start(&t->t, on_uv_timer, 5, 0);
        break;
    }
    return 0;
}

static const struct mx_behaviour tr_beh = {"tracer", tr_init, tr_receive, tr_stop};

/* the requester of S_REPLY: records the reply's trace */
static int asker_receive(mx_actor_t *self, void *state, struct mx_msg *m)
{
    if (m->env.type == MX_T_test_kv) { /* go: ask the tracer, with the trace */
        struct mx_addr tr;
        struct mx_msg *q;
        struct mx_m_test_echo e = {.n = S_REPLY};
        assert_int_equal(mx_whereis(mx_system_of(self), "tracer", &tr), 0);
        assert_int_equal(mx_msg_encode(MX_T_test_echo, &e, &q), 0);
        assert_int_equal(mx_request(self, tr, q, 2000, NULL), 0);
    } else if (m->env.type == MX_T_test_echo && (m->env.flags & MX_ENVF_REPLY)) {
        hex_of(&m->env, g_seen.reply);
        mark(S_REPLY);
    }
    return 0;
}

static int noop_init(mx_actor_t *self, void *arg, void **state)
{
    return 0;
}

static int sink_receive(mx_actor_t *self, void *state, struct mx_msg *m)
{
    return 0;
}

static const struct mx_behaviour asker_beh = {"asker", noop_init, asker_receive, NULL};
static const struct mx_behaviour sink_beh = {"sink", noop_init, sink_receive, NULL};

static void put_trace(struct mx_msg *m)
{
    for (int i = 0; i < 16; i++)
        sscanf(TRACE_HEX + 2 * i, "%2hhx", &m->env.trace_id[i]);
    m->env.span_id[0] = 1;
}

static void send_step(mx_system_t *sys, struct mx_addr to, int step, bool traced)
{
    struct mx_msg *m;
    struct mx_m_test_echo e = {.n = (uint64_t)step};
    assert_int_equal(mx_msg_encode(MX_T_test_echo, &e, &m), 0);
    if (traced)
        put_trace(m);
    assert_int_equal(mx_sys_send(sys, to, m), 0);
}

/* every log line naming `what` carries the trace */
static void assert_logged_with_trace(const char *log, const char *what)
{
    int lines = 0;
    for (const char *p = log; (p = strstr(p, what)); p++) {
        const char *bol = p, *eol = strchr(p, '\n');
        while (bol > log && bol[-1] != '\n')
            bol--;
        size_t n = eol ? (size_t)(eol - bol) : strlen(bol);
        char line[1024];
        snprintf(line, sizeof line, "%.*s", (int)(n < sizeof line ? n : sizeof line - 1), bol);
        if (!strstr(line, "\"trace\":\"" TRACE_HEX "\""))
            fail_msg("log line without the trace: %s", line);
        lines++;
    }
    if (lines == 0)
        fail_msg("no log line names \"%s\" in:\n%s", what, log);
}

static void test_trace_follows_work(void **st)
{
    char path[] = "/tmp/mx-trace-log-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    mx_log_init("t", MX_LOG_DEBUG, fd);

    mx_system_t *sys;
    struct mx_system_opts o = {.node_name = "t", .schedulers = 2, .offload_threads = 1};
    assert_int_equal(mx_system_start(&o, &sys), 0);
    struct mx_spawn_opts so = MX_SPAWN_OPTS_DEFAULT;
    struct mx_addr tr_addr, sink, asker;
    so.name = "tracer";
    assert_int_equal(mx_spawn(sys, &tr_beh, NULL, &so, &tr_addr), 0);
    so.name = "sink";
    assert_int_equal(mx_spawn(sys, &sink_beh, NULL, &so, &sink), 0);
    so.name = "asker";
    assert_int_equal(mx_spawn(sys, &asker_beh, NULL, &so, &asker), 0);

    send_step(sys, tr_addr, S_OFFLOAD, true);
    send_step(sys, tr_addr, S_TIMEOUT, true);
    send_step(sys, tr_addr, S_CALLBACK, true);
    int want = 1 << S_OFFLOAD | 1 << S_TIMEOUT | 1 << S_CALLBACK;
    assert_true(TU_WAIT_UNTIL(
        (atomic_load_explicit(&g_seen.done, memory_order_acquire) & want) == want, 5000));
    send_step(sys, tr_addr, S_PLAIN, false); /* after traced messages: must see none */
    struct mx_msg *go;
    struct mx_m_test_kv kv = {.seq = 1};
    assert_int_equal(mx_msg_encode(MX_T_test_kv, &kv, &go), 0);
    put_trace(go);
    assert_int_equal(mx_sys_send(sys, asker, go), 0);
    /* a non-actor thread (this one) in an entered trace: mx_sys_send stamps it */
    struct mx_msg *tmp, *ss;
    assert_int_equal(mx_msg_encode(MX_T_test_kv, &(struct mx_m_test_kv){.seq = 11}, &ss), 0);
    assert_int_equal(mx_msg_encode(MX_T_test_kv, &(struct mx_m_test_kv){.seq = 0}, &tmp), 0);
    put_trace(tmp);
    struct mx_trace tr, saved;
    mx_trace_of(&tmp->env, &tr);
    mx_msg_free(tmp);
    mx_trace_enter(&tr, &saved);
    assert_int_equal(mx_sys_send(sys, tr_addr, ss), 0);
    mx_trace_leave(&saved);
    want |= 1 << S_PLAIN | 1 << S_REPLY | 1 << S_SYS;
    assert_true(TU_WAIT_UNTIL(
        (atomic_load_explicit(&g_seen.done, memory_order_acquire) & want) == want, 5000));

    assert_string_equal(g_seen.offload_result, TRACE_HEX);
    assert_string_equal(g_seen.timeout, TRACE_HEX);
    assert_string_equal(g_seen.callback_msg, TRACE_HEX);
    assert_string_equal(g_seen.reply, TRACE_HEX);
    assert_string_equal(g_seen.plain_handler, "none");
    assert_string_equal(g_seen.sys_sent, TRACE_HEX);

    assert_int_equal(mx_system_stop(sys, 0), 0);
    mx_system_free(sys);

    char log[1 << 16];
    ssize_t n = pread(fd, log, sizeof log - 1, 0);
    assert_true(n > 0);
    log[n] = '\0';
    assert_logged_with_trace(log, "offload job ran");
    assert_logged_with_trace(log, "callback fired");
    mx_log_init("t", MX_LOG_INFO, 2);
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_trace_follows_work),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
