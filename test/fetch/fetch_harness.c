/* fetch_harness.c - see fetch_harness.h. */
#define _GNU_SOURCE
#include "fetch_harness.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "mx_err.h"
#include "mx_log.h"
#include "mx_testutil.h"

#define MAX_PENDING_CALLS 512

struct client {
    struct mx_addr fetcher;
    struct call *pending[MAX_PENDING_CALLS];
};

static void complete(struct call *c)
{
    c->t1 = now_ms();
    atomic_store(&c->done, 1);
}

static struct call **find(struct client *cl, uint64_t corr)
{
    for (int i = 0; i < MAX_PENDING_CALLS; i++)
        if (cl->pending[i] && cl->pending[i]->corr == corr)
            return &cl->pending[i];
    return NULL;
}

static int cli_init(mx_actor_t *self, void *arg, void **state)
{
    *state = arg;
    return 0;
}

static void start_call(mx_actor_t *self, struct client *cl, struct call *c)
{
    struct mx_msg *m = c->raw;
    int rc = 0;
    c->raw = NULL;
    if (!m)
        rc = mx_fetch_request_new(c->kind, c->arg, c->key, c->inline_body, &m);
    if (rc == 0 && c->raw_plain) {
        rc = mx_send(self, cl->fetcher, m);
        if (rc != 0)
            mx_msg_free(m);
        c->status = rc;
        complete(c);
        return;
    }
    if (rc == 0) {
        int slot = -1;
        for (int i = 0; i < MAX_PENDING_CALLS && slot < 0; i++)
            if (!cl->pending[i])
                slot = i;
        if (slot < 0) {
            mx_msg_free(m);
            rc = MX_ELIMIT;
        } else {
            cl->pending[slot] = c;
            rc = mx_request(self, cl->fetcher, m, c->timeout_ms ? c->timeout_ms : 10000, &c->corr);
            if (rc != 0) {
                cl->pending[slot] = NULL;
                mx_msg_free(m);
            }
        }
    }
    if (rc != 0) {
        c->status = rc;
        snprintf(c->err, sizeof(c->err), "send failed: %s", mx_strerror(rc));
        complete(c);
    }
}

static int cli_recv(mx_actor_t *self, void *state, struct mx_msg *m)
{
    struct client *cl = state;
    if (m->env.type == MX_T_test_echo && m->ptr) {
        start_call(self, cl, m->ptr);
        return 0;
    }
    if (m->env.type == MX_T_sys_timeout) {
        struct mx_m_sys_timeout t;
        if (mx_msg_decode(m, &t) != 0)
            return 0;
        struct call **p = find(cl, t.corr);
        if (p) {
            struct call *c = *p;
            *p = NULL;
            c->status = MX_ETIMEDOUT;
            c->caller_timeout = true;
            complete(c);
        }
        return 0;
    }
    if (m->env.type == MX_T_fetch_rep) {
        struct call **p = find(cl, m->env.corr);
        if (!p)
            return 0;
        struct call *c = *p;
        *p = NULL;
        struct mx_fetch_result r;
        if (mx_fetch_reply_read(m, &r) != 0) {
            c->status = MX_EDECODE;
            snprintf(c->err, sizeof(c->err), "undecodable reply");
            complete(c);
            return 0;
        }
        c->status = r.status;
        c->http = r.http_status;
        c->attempts = r.attempts;
        c->retry_after = r.retry_after_ms;
        snprintf(c->err, sizeof(c->err), "%.*s", (int)r.error.len, r.error.ptr);
        c->had_ptr = m->ptr != NULL;
        if (r.body && !m->ptr) {
            c->inline_copy = malloc(r.body_len + 1);
            memcpy(c->inline_copy, r.body, r.body_len);
            c->inline_copy[r.body_len] = '\0';
            c->inline_len = r.body_len;
        }
        c->body = mx_fetch_reply_take_body(m);
        complete(c);
    }
    return 0;
}

static void cli_stop(mx_actor_t *self, void *state)
{
    free(state);
}

static const struct mx_behaviour cli_beh = {"test-client", cli_init, cli_recv, cli_stop};

void fx_start(struct fx *x, const char *const *stub_args, struct mx_fetch_opts *o)
{
    memset(x, 0, sizeof(*x));
    assert_int_equal(mx_fetch_global_init(), 0);
    mx_log_init("test", MX_LOG_WARN, 2);
    assert_int_equal(stub_start(&x->stub, stub_args), 0);
    struct mx_system_opts so = {.node_name = "test", .schedulers = 2, .offload_threads = 1};
    assert_int_equal(mx_system_start(&so, &x->sys), 0);
    if (!o->base_url || strcmp(o->base_url, MX_FETCH_BASE_URL) == 0)
        o->base_url = x->stub.base; /* never the real API from a test */
    if (!o->api_key)
        o->api_key = "test-key";
    struct mx_spawn_opts sp = MX_SPAWN_OPTS_DEFAULT;
    sp.sched = 0;
    assert_int_equal(mx_fetch_spawn(x->sys, o, &sp, &x->fetcher), 0);
    x->have_fetcher = true;
    struct mx_fetch_stats st; /* its counters appear once its init ran */
    assert_true(TU_WAIT_UNTIL(mx_fetch_stats(x->sys, x->fetcher, &st) == 0, 5000));
    struct client *cl = calloc(1, sizeof(*cl));
    cl->fetcher = x->fetcher;
    sp.sched = 1;
    sp.name = "test-client";
    sp.cap_msgs = 4096;
    assert_int_equal(mx_spawn(x->sys, &cli_beh, cl, &sp, &x->client), 0);
}

void fx_stop(struct fx *x)
{
    if (x->sys) {
        mx_system_stop(x->sys, 5000);
        mx_system_free(x->sys);
        x->sys = NULL;
    }
    stub_stop(&x->stub);
}

static void send_cmd(struct fx *x, struct call *c)
{
    c->t0 = now_ms();
    atomic_store(&c->done, 0);
    struct mx_msg *m = mx_msg_with_ptr(MX_T_test_echo, c, NULL);
    assert_int_equal(mx_sys_send(x->sys, x->client, m), 0);
}

int fx_call(struct fx *x, struct call *c)
{
    send_cmd(x, c);
    assert_true(TU_WAIT_UNTIL(atomic_load(&c->done), 15000));
    if (c->status != 0) /* context for a failing assertion */
        fprintf(stderr, "call kind %d: %s http %u attempts %u: %s\n", (int)c->kind,
                mx_errname(c->status), c->http, c->attempts, c->err);
    return c->status;
}

void fx_call_many(struct fx *x, struct call *c, int n)
{
    for (int i = 0; i < n; i++)
        send_cmd(x, &c[i]);
    for (int i = 0; i < n; i++)
        assert_true(TU_WAIT_UNTIL(atomic_load(&c[i].done), 20000));
}

void call_free(struct call *c)
{
    mx_fetch_body_free(c->body);
    free(c->inline_copy);
    c->body = NULL;
    c->inline_copy = NULL;
}

struct mx_fetch_stats fx_stats(struct fx *x)
{
    struct mx_fetch_stats s;
    assert_int_equal(mx_fetch_stats(x->sys, x->fetcher, &s), 0);
    return s;
}

const char *call_body(const struct call *c, size_t *len)
{
    if (c->body) {
        *len = c->body->len;
        return c->body->data;
    }
    *len = c->inline_len;
    return c->inline_copy;
}

int fx_setup(void **state)
{
    *state = calloc(1, sizeof(struct fx));
    return *state ? 0 : -1;
}

int fx_teardown(void **state)
{
    fx_stop(*state);
    free(*state);
    return 0;
}
