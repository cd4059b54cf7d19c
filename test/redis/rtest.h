/* rtest.h - helpers shared by the Redis client tests: a uv loop driven from
 * the test thread, and a recorder for command callbacks. */
#ifndef MX_TEST_RTEST_H
#define MX_TEST_RTEST_H

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "mx_err.h"
#include "mx_redis.h"
#include "mx_testutil.h"
#include "redisd.h"

struct tloop {
    uv_loop_t loop;
    uv_timer_t tick; /* keeps uv_run(ONCE) from blocking more than 5 ms */
};

static inline void tl_tick(uv_timer_t *t)
{
    (void)t;
}

static inline void tl_init(struct tloop *l)
{
    signal(SIGPIPE, SIG_IGN);
    uv_loop_init(&l->loop);
    uv_timer_init(&l->loop, &l->tick);
    uv_timer_start(&l->tick, tl_tick, 5, 5);
}

/* Run the loop until cond holds or ms pass; evaluates to cond. */
#define TL_RUN_UNTIL(l, cond, ms)                                                                  \
    ({                                                                                             \
        int64_t tl_dl_ = tu_now_ms() + (ms);                                                       \
        while (!(cond) && tu_now_ms() < tl_dl_)                                                    \
            uv_run(&(l)->loop, UV_RUN_ONCE);                                                       \
        (cond);                                                                                    \
    })

/* Run the loop for ms. */
static inline void tl_run_for(struct tloop *l, int ms)
{
    int64_t dl = tu_now_ms() + ms;
    while (tu_now_ms() < dl)
        uv_run(&l->loop, UV_RUN_ONCE);
}

/* Close the tick, run to completion; returns uv_loop_close's result (0 when
 * every handle - including every redis client's - was closed). */
static inline int tl_fini(struct tloop *l)
{
    uv_close((uv_handle_t *)&l->tick, NULL);
    int64_t dl = tu_now_ms() + 5000;
    while (uv_run(&l->loop, UV_RUN_NOWAIT) != 0 && tu_now_ms() < dl)
        ;
    return uv_loop_close(&l->loop);
}

/* A subscriber's messages: how many, the last one (binary, NUL added),
 * its channel and pattern, and when it came. */
struct msgs {
    int n;
    int64_t at_ms;
    char last_ch[64], last_pat[64];
    char last[128];
    size_t last_len;
};

static inline void on_msg(mx_redis_t *r, const char *ch, const char *data, size_t len,
                          const char *pat, void *arg)
{
    struct msgs *m = arg;
    (void)r;
    m->n++;
    m->at_ms = tu_now_ms();
    snprintf(m->last_ch, sizeof(m->last_ch), "%s", ch);
    snprintf(m->last_pat, sizeof(m->last_pat), "%s", pat ? pat : "");
    m->last_len = len < sizeof(m->last) - 1 ? len : sizeof(m->last) - 1;
    memcpy(m->last, data, m->last_len);
    m->last[m->last_len] = '\0';
}

struct rec {
    int calls;
    int status;
    int type;
    long long integer;
    size_t len;
    char str[512];
    size_t elements;
};

static inline void rec_cb(mx_redis_t *r, int status, const redisReply *rep, void *arg)
{
    struct rec *x = arg;
    (void)r;
    x->calls++;
    x->status = status;
    x->type = rep ? rep->type : 0;
    x->len = 0;
    x->str[0] = '\0';
    if (rep) {
        x->integer = rep->integer;
        x->elements = rep->elements;
        if (rep->str) {
            x->len = rep->len;
            memcpy(x->str, rep->str, rep->len < sizeof(x->str) - 1 ? rep->len : sizeof(x->str) - 1);
            x->str[rep->len < sizeof(x->str) - 1 ? rep->len : sizeof(x->str) - 1] = '\0';
        }
    }
}

static inline void done_cb(mx_redis_t *r, void *arg)
{
    (void)r;
    (*(int *)arg)++;
}

/* close r and wait for its done callback */
#define TL_CLOSE(l, r)                                                                             \
    do {                                                                                           \
        int tl_done_ = 0;                                                                          \
        mx_redis_close((r), done_cb, &tl_done_);                                                   \
        assert_true(TL_RUN_UNTIL((l), tl_done_ == 1, 3000));                                       \
    } while (0)

#endif
