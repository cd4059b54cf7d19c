/* mx_redis.c - Redis client: hiredis 0.14 async on a libuv loop, with the
 * things hiredis 0.14 lacks: per-command timeouts, a bound on outstanding
 * commands, fail-fast while disconnected, reconnect with backoff and jitter,
 * an AUTH/SELECT handshake, scripts by EVALSHA with NOSCRIPT recovery, and a
 * subscriber client that resubscribes after reconnect.
 *
 * Every command is a `struct cmd` handed to hiredis as privdata; hiredis
 * calls back exactly once per command (with a reply, or NULL when the
 * context is freed), and that callback frees it. User commands also sit in
 * r->pending, sorted by deadline, with one uv timer armed for the earliest;
 * a command that times out leaves the list (its user callback has run) but
 * stays owned by hiredis until the late reply or the disconnect, so it keeps
 * counting against max_pending - a hung Redis cannot make memory grow.
 *
 * hiredis frees a context itself on connect failure and on I/O errors; we
 * free it (redisAsyncFree) on timeouts, stalls and close. r->ac is cleared
 * before any free, so re-entrant calls from callbacks never touch a context
 * being freed. The libuv glue is our own (see "libuv adapter" below) so a
 * socket error always reaches hiredis and close completes only when every
 * handle is closed.
 *
 * Only a master will do: the handshake ends with ROLE instead of PING, and
 * a READONLY reply drops the connection (the server was demoted under us).
 * With a redis-sentinel:// URL the address comes from the process's
 * resolver for that URL (mx_redis_sentinel.c), which wakes the client
 * through r->moved when the master changes; the client then drops its
 * connection and reconnects at once, without backoff.
 */
#include "mx_redis.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/async.h>
#include <uv.h>

#include "mx_alloc.h"
#include "mx_actor.h"
#include "mx_err.h"
#include "mx_list.h"
#include "mx_jsonw.h"
#include "mx_log.h"
#include "mx_redis_sentinel.h"

#define NOTE(...) mx_log(MX_LOG_INFO, __VA_ARGS__)

enum conn_state { ST_DOWN, ST_CONNECTING, ST_UP, ST_CLOSED };

enum cmd_kind { K_USER, K_EVAL, K_HANDSHAKE, K_PING, K_ROLE, K_SCRIPT_LOAD, K_INTERNAL };

struct cmd {
    struct mx_list link; /* in r->pending, ascending deadline (K_USER/K_EVAL only) */
    mx_redis_t *r;
    mx_redis_cb cb; /* NULL once called (timed out) or fire-and-forget */
    void *arg;
    uint64_t deadline; /* uv_now() ms */
    uint8_t kind;      /* enum cmd_kind */
    bool queued;       /* in r->pending: user not answered yet */
    bool counted;      /* counts against max_pending */
    bool retried;      /* EVAL: NOSCRIPT retry used (or sent as EVAL) */
    mx_redis_script_t *script;
    struct mx_trace trace; /* of whoever sent it: the callback runs in it */
    char *tail;            /* EVAL: RESP of numkeys, keys, args (no array header) */
    size_t tail_len;
    int tail_argc;
};

struct mx_redis_script {
    char *src;
    size_t len;
    char sha[41]; /* "" until SCRIPT LOAD answered */
};

struct sub {
    char *name;
    bool pattern;
};

struct counters {
    _Atomic uint64_t connects, disconnects, connect_failures, commands, replies, errors, lost,
        timeouts, late_replies, refused_full, refused_down, noscript_retries, messages, pending,
        failovers, readonly, reconnect_ms_last, reconnect_ms_max, replicas;
};

struct mx_redis {
    uv_loop_t *loop;
    char name[32];
    char host[256];
    int port;
    char user[128];
    char password[256];
    int db;
    uint32_t timeout_ms, connect_timeout_ms, max_pending, backoff_min, backoff_max, stall_ms;
    mx_redis_state_cb on_state;
    void *state_arg;

    /* all below: loop thread only, except `up` and `st` (atomics, any reader) */
    redisAsyncContext *ac; /* NULL while down or when being freed */
    enum conn_state state;
    _Atomic bool up;        /* relaxed: a status flag, no data published with it */
    uint32_t attempt;       /* reconnect attempts since last up */
    uint64_t rng;           /* xorshift state for jitter */
    uint64_t last_read;     /* uv_now() of the last reply */
    uint32_t held;          /* user commands held by hiredis (the max_pending count) */
    uint32_t alive;         /* struct cmd objects alive (any kind) */
    struct mx_list pending; /* user commands by deadline (struct cmd.link) */
    uv_timer_t cmd_timer;   /* earliest command deadline */
    uv_timer_t conn_timer;  /* reconnect delay (DOWN) or connect timeout (CONNECTING) */
    int handles_open;       /* timers + adapter poll handles not yet closed */
    bool closing;
    mx_redis_close_cb done;
    void *done_arg;

    mx_redis_script_t *scripts[MX_REDIS_MAX_SCRIPTS];
    int nscripts;

    bool subscriber;
    mx_redis_msg_cb on_msg;
    void *msg_arg;
    struct sub *subs; /* MX_REDIS_MAX_SUBS entries */
    int nsubs;

    struct counters st; /* relaxed atomics: written by the loop thread, read by any */

    /* failover (loop thread unless noted) */
    struct mx__sentinel *sentinel;  /* NULL for redis:// */
    uv_async_t moved;               /* sentinel clients: the resolver's wake-up */
    uint64_t gen;                   /* resolver generation r->host came from */
    bool link;                      /* a link to a sentinel: PING, not ROLE; AUTH may be unneeded */
    uint64_t down_since;            /* uv_now() when the up connection was lost; 0 = up or never */
    char prev_addr[272];            /* the previous up connection's host:port */
    uv_mutex_t addr_mu;             /* guards addr (mx_redis_stats reads it from any thread) */
    char addr[272];                 /* host:port in use or being tried */
    struct mx_redis *gprev, *gnext; /* every client of the process; g_mu */
};

/* Every client of the process, for mx_redis_report. */
static uv_mutex_t g_mu;
static uv_once_t g_once = UV_ONCE_INIT;
static struct mx_redis *g_head;

static void g_init(void)
{
    uv_mutex_init(&g_mu);
}

#define ST_INC(r, f) atomic_fetch_add_explicit(&(r)->st.f, 1, memory_order_relaxed)
#define ST_SET(r, f, v) atomic_store_explicit(&(r)->st.f, (v), memory_order_relaxed)
#define ST_GET(r, f) atomic_load_explicit(&(r)->st.f, memory_order_relaxed)

/* ---- lifecycle helpers ---- */

static void conn_start(mx_redis_t *r);
static void drop_conn(mx_redis_t *r, const char *why);
static void send_subscriptions(mx_redis_t *r);
static void script_load(mx_redis_t *r, mx_redis_script_t *s);

static void maybe_finish(mx_redis_t *r)
{
    if (!r->closing || r->handles_open > 0)
        return;
    if (r->alive != 0)
        MX_ERROR("redis %s: %u commands still alive at close", r->name, r->alive);
    if (r->done)
        r->done(r, r->done_arg);
    uv_mutex_lock(&g_mu);
    if (r->gprev)
        r->gprev->gnext = r->gnext;
    else
        g_head = r->gnext;
    if (r->gnext)
        r->gnext->gprev = r->gprev;
    uv_mutex_unlock(&g_mu);
    if (r->sentinel)
        mx__sentinel_put(r->sentinel);
    uv_mutex_destroy(&r->addr_mu);
    for (int i = 0; i < r->nscripts; i++) {
        free(r->scripts[i]->src);
        free(r->scripts[i]);
    }
    for (int i = 0; i < r->nsubs; i++)
        free(r->subs[i].name);
    free(r->subs);
    free(r);
}

static void on_handle_closed(uv_handle_t *h)
{
    mx_redis_t *r = h->data;
    r->handles_open--;
    maybe_finish(r);
}

/* ---- libuv adapter ----
 * Our own, not hiredis's adapters/libuv.h: that one ignores a poll error
 * (libuv reports POLLERR - e.g. a refused connect - as status UV_EBADF and
 * stops the handle), which leaves hiredis waiting forever; it also leaks on
 * a failed attach and gives no way to learn when its handle is closed. */

struct uvev {
    redisAsyncContext *ac; /* NULL once hiredis called cleanup */
    mx_redis_t *r;
    uv_poll_t poll;
    int events; /* UV_READABLE | UV_WRITABLE wanted by hiredis */
};

static void ev_poll_cb(uv_poll_t *h, int status, int events)
{
    struct uvev *e = h->data;
    if (status < 0) {
        /* let hiredis read the socket error: a failed connect, a reset */
        redisAsyncContext *ac = e->ac;
        if (!ac)
            return;
        if (ac->c.flags & REDIS_CONNECTED)
            redisAsyncHandleRead(ac);
        else
            redisAsyncHandleWrite(ac);
        if (e->ac && e->r->ac == e->ac) /* hiredis saw nothing wrong: drop it ourselves */
            drop_conn(e->r, uv_strerror(status));
        return;
    }
    if (e->ac && (events & UV_READABLE))
        redisAsyncHandleRead(e->ac);
    if (e->ac && (events & UV_WRITABLE))
        redisAsyncHandleWrite(e->ac);
}

static void ev_update(struct uvev *e, int add, int del)
{
    if (!e->ac)
        return;
    e->events = (e->events | add) & ~del;
    if (e->events)
        uv_poll_start(&e->poll, e->events, ev_poll_cb);
    else
        uv_poll_stop(&e->poll);
}

static void ev_add_read(void *p)
{
    ev_update(p, UV_READABLE, 0);
}

static void ev_del_read(void *p)
{
    ev_update(p, 0, UV_READABLE);
}

static void ev_add_write(void *p)
{
    ev_update(p, UV_WRITABLE, 0);
}

static void ev_del_write(void *p)
{
    ev_update(p, 0, UV_WRITABLE);
}

static void ev_closed(uv_handle_t *h)
{
    struct uvev *e = h->data;
    mx_redis_t *r = e->r;
    free(e);
    r->handles_open--;
    maybe_finish(r);
}

/* hiredis is freeing the context (it closes the fd right after). Idempotent. */
static void ev_cleanup(void *p)
{
    struct uvev *e = p;
    if (!e->ac)
        return;
    e->ac = NULL;
    uv_close((uv_handle_t *)&e->poll, ev_closed);
}

static int ev_attach(mx_redis_t *r, redisAsyncContext *ac)
{
    struct uvev *e = xcalloc(1, sizeof(*e));
    if (uv_poll_init(r->loop, &e->poll, ac->c.fd) != 0) {
        free(e);
        return -1;
    }
    e->ac = ac;
    e->r = r;
    e->poll.data = e;
    ac->ev.data = e;
    ac->ev.addRead = ev_add_read;
    ac->ev.delRead = ev_del_read;
    ac->ev.addWrite = ev_add_write;
    ac->ev.delWrite = ev_del_write;
    ac->ev.cleanup = ev_cleanup;
    r->handles_open++;
    return 0;
}

static uint32_t backoff_ms(mx_redis_t *r)
{
    uint64_t d = r->backoff_min;
    for (uint32_t i = 0; i < r->attempt && d < r->backoff_max; i++)
        d *= 2;
    if (d > r->backoff_max)
        d = r->backoff_max;
    r->attempt++;
    /* xorshift64: full jitter over [d/2, d] */
    r->rng ^= r->rng << 13;
    r->rng ^= r->rng >> 7;
    r->rng ^= r->rng << 17;
    uint64_t half = d / 2;
    return (uint32_t)(half + (half ? r->rng % (half + 1) : 0));
}

static void on_conn_timer(uv_timer_t *t)
{
    mx_redis_t *r = t->data;
    if (r->closing)
        return;
    if (r->state == ST_DOWN)
        conn_start(r);
    else if (r->state == ST_CONNECTING)
        drop_conn(r, "connect timeout");
}

static void schedule_reconnect(mx_redis_t *r)
{
    if (r->closing)
        return;
    uv_timer_start(&r->conn_timer, on_conn_timer, backoff_ms(r), 0);
}

static void set_addr(mx_redis_t *r, const char *host, int port)
{
    if (host != r->host)
        snprintf(r->host, sizeof r->host, "%s", host);
    r->port = port;
    uv_mutex_lock(&r->addr_mu);
    if (strchr(host, ':'))
        snprintf(r->addr, sizeof r->addr, "[%s]:%d", host, port);
    else
        snprintf(r->addr, sizeof r->addr, "%s:%d", host, port);
    uv_mutex_unlock(&r->addr_mu);
}

/* After the context is gone (freed by us or by hiredis). */
static void after_down(mx_redis_t *r, bool was_up, const char *why)
{
    if (r->closing)
        return;
    r->state = ST_DOWN;
    atomic_store_explicit(&r->up, false, memory_order_relaxed);
    if (was_up) {
        ST_INC(r, disconnects);
        if (!r->down_since)
            r->down_since = uv_now(r->loop);
        MX_WARN("redis %s: connection to %s:%d lost (%s)", r->name, r->host, r->port, why);
        if (r->on_state)
            r->on_state(r, false, r->state_arg);
    } else {
        ST_INC(r, connect_failures);
        if (r->sentinel)
            mx__sentinel_kick(r->sentinel); /* maybe the sentinels know better by now */
        /* every failed attempt would flood the log while Redis is away; a
         * resolver that knows no master yet logs why itself */
        if ((r->attempt <= 1 || (r->attempt + 1) % 50 == 0) && !(r->sentinel && !r->host[0]))
            MX_WARN("redis %s: cannot connect to %s:%d (%s), attempt %u", r->name,
                    r->host[0] ? r->host : "(no master yet)", r->port, why, r->attempt + 1);
    }
    schedule_reconnect(r); /* after the log: it counts the attempt */
}

/* Free the current context (pending callbacks run with NULL replies) and
 * go down. Safe inside hiredis callbacks (hiredis defers the free). */
static void drop_conn(mx_redis_t *r, const char *why)
{
    redisAsyncContext *ac = r->ac;
    bool was_up = r->state == ST_UP;
    if (!ac)
        return;
    r->ac = NULL;
    r->state = ST_DOWN;
    atomic_store_explicit(&r->up, false, memory_order_relaxed);
    redisAsyncFree(ac);
    after_down(r, was_up, why);
}

/* ---- commands ---- */

static struct cmd *cmd_new(mx_redis_t *r, enum cmd_kind kind, mx_redis_cb cb, void *arg)
{
    struct cmd *c = xcalloc(1, sizeof(*c));
    c->r = r;
    c->kind = (uint8_t)kind;
    c->cb = cb;
    c->arg = arg;
    mx_trace_current(&c->trace);
    r->alive++;
    return c;
}

static void cmd_free(struct cmd *c)
{
    mx_redis_t *r = c->r;
    if (c->counted) {
        r->held--;
        ST_SET(r, pending, r->held);
    }
    r->alive--;
    free(c->tail);
    free(c);
}

static void unlink_cmd(struct cmd *c)
{
    mx_list_remove(&c->link);
    c->queued = false;
}

static struct cmd *first_cmd(mx_redis_t *r)
{
    return mx_list_first(&r->pending, struct cmd, link);
}

static void on_cmd_timer(uv_timer_t *t);

static void arm_cmd_timer(mx_redis_t *r)
{
    if (r->closing)
        return;
    struct cmd *first = first_cmd(r);
    if (!first) {
        uv_timer_stop(&r->cmd_timer);
        return;
    }
    uint64_t now = uv_now(r->loop);
    uint64_t due = first->deadline > now ? first->deadline - now : 0;
    uv_timer_start(&r->cmd_timer, on_cmd_timer, due, 0);
}

/* A user command was handed to hiredis: count it and start its clock. */
static void cmd_accept(mx_redis_t *r, struct cmd *c, uint32_t timeout_ms)
{
    uv_update_time(r->loop); /* the cached time may be a whole handler turn old */
    c->deadline = uv_now(r->loop) + timeout_ms;
    c->queued = true;
    c->counted = true;
    r->held++;
    ST_SET(r, pending, r->held);
    ST_INC(r, commands);
    /* sorted insert, from the back: usually O(1) */
    struct cmd *at = mx_list_last(&r->pending, struct cmd, link);
    while (at && at->deadline > c->deadline)
        at = mx_list_prev(&r->pending, at, link);
    mx_list_insert_after(at ? &at->link : &r->pending, &c->link);
    if (first_cmd(r) == c)
        arm_cmd_timer(r);
}

static void on_cmd_timer(uv_timer_t *t)
{
    mx_redis_t *r = t->data;
    uint64_t now = uv_now(r->loop);
    bool expired = false;
    struct cmd *c;
    while (!r->closing && (c = first_cmd(r)) && c->deadline <= now) {
        unlink_cmd(c);
        mx_redis_cb cb = c->cb;
        c->cb = NULL; /* hiredis still holds c: freed at the late reply */
        expired = true;
        ST_INC(r, timeouts);
        if (cb) {
            struct mx_trace saved;
            mx_trace_enter(&c->trace, &saved);
            cb(r, MX_ETIMEDOUT, NULL, c->arg);
            mx_trace_leave(&saved);
        }
    }
    if (r->closing)
        return;
    if (expired && r->ac && r->state == ST_UP && now - r->last_read >= r->stall_ms) {
        drop_conn(r, "no reply within stall_ms");
        return;
    }
    arm_cmd_timer(r);
}

static int send_eval(mx_redis_t *r, struct cmd *c, bool use_eval);
static bool auth_not_needed(const char *err);
static bool role_is_master(mx_redis_t *r, const redisReply *rep, char *why, size_t cap);
static void went_up(mx_redis_t *r);

static int status_of_loss(mx_redis_t *r)
{
    return r->closing ? MX_ESTOPPED : MX_EUNAVAIL;
}

static void on_reply(redisAsyncContext *ac, void *rep, void *privdata)
{
    struct cmd *c = privdata;
    mx_redis_t *r = c->r;
    redisReply *reply = rep;
    (void)ac;
    if (reply)
        r->last_read = uv_now(r->loop);

    if (c->kind == K_HANDSHAKE || c->kind == K_PING || c->kind == K_ROLE) {
        char why[700];
        if (!reply || r->ac != ac) {
            /* context going away: already handled */
        } else if (reply->type == REDIS_REPLY_ERROR && c->kind != K_ROLE &&
                   !(r->link && auth_not_needed(reply->str))) {
            MX_ERROR("redis %s: handshake with %s:%d failed: %s", r->name, r->host, r->port,
                     reply->str);
            drop_conn(r, reply->str);
        } else if (c->kind == K_ROLE && !role_is_master(r, reply, why, sizeof why)) {
            ST_INC(r, readonly);
            drop_conn(r, why);
        } else if (c->kind != K_HANDSHAKE && r->state == ST_CONNECTING) {
            went_up(r);
        }
        cmd_free(c);
        return;
    }
    if (c->kind == K_SCRIPT_LOAD) {
        if (reply && reply->type == REDIS_REPLY_STRING && reply->len == 40)
            memcpy(c->script->sha, reply->str, 41);
        else if (reply)
            MX_ERROR("redis %s: SCRIPT LOAD failed: %s", r->name,
                     reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply");
        cmd_free(c);
        return;
    }
    if (c->kind == K_INTERNAL) {
        cmd_free(c);
        return;
    }

    if (!c->queued) { /* its caller already got MX_ETIMEDOUT */
        if (reply)
            ST_INC(r, late_replies);
        cmd_free(c);
        return;
    }
    int status = 0;
    if (!reply) {
        status = status_of_loss(r);
        if (status == MX_EUNAVAIL)
            ST_INC(r, lost);
    } else if (reply->type == REDIS_REPLY_ERROR) {
        if (c->kind == K_EVAL && !c->retried && strncmp(reply->str, "NOSCRIPT", 8) == 0 && r->ac &&
            r->state == ST_UP) {
            c->retried = true;
            if (send_eval(r, c, true) == 0) {
                ST_INC(r, noscript_retries);
                return; /* hiredis holds c again; same deadline */
            }
        }
        status = MX_EIO;
        ST_INC(r, errors);
    } else {
        ST_INC(r, replies);
    }
    unlink_cmd(c);
    mx_redis_cb cb = c->cb;
    void *arg = c->arg;
    c->cb = NULL;
    /* free after the callback: the reply belongs to hiredis, c is ours, and
     * the slot is released first so the callback can issue a new command */
    if (c->counted) {
        c->counted = false;
        r->held--;
        ST_SET(r, pending, r->held);
    }
    bool readonly = status == MX_EIO && strncmp(reply->str, "READONLY", 8) == 0;
    if (cb) {
        struct mx_trace saved;
        mx_trace_enter(&c->trace, &saved);
        cb(r, status, reply, arg);
        mx_trace_leave(&saved);
    }
    cmd_free(c);
    if (readonly && !r->closing && r->ac == ac) {
        /* demoted under us (a failover, or an operator's REPLICAOF): find the master now */
        ST_INC(r, readonly);
        if (r->sentinel)
            mx__sentinel_kick(r->sentinel);
        drop_conn(r, "READONLY: the server is a replica now");
    }
}

/* ---- connection ---- */

/* A sentinel link sends the URL's password too; a sentinel without one
 * says so, which is not a failure. */
static bool auth_not_needed(const char *err)
{
    return strstr(err, "without any password configured") || strstr(err, "no password is set");
}

/* ROLE's answer: true for a master (and the replica count is kept);
 * otherwise why says what the server is. An error reply (an ACL without
 * +role, a proxy) is taken on trust, once noted. */
static bool role_is_master(mx_redis_t *r, const redisReply *rep, char *why, size_t cap)
{
    if (rep->type == REDIS_REPLY_ERROR) {
        if (!ST_GET(r, connects))
            NOTE("redis %s: ROLE refused (%s); cannot check that %s:%d is a master", r->name,
                 rep->str, r->host, r->port);
        return true;
    }
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 1 ||
        rep->element[0]->type != REDIS_REPLY_STRING) {
        snprintf(why, cap, "MX_REDIS_URL: %s:%d answered ROLE oddly", r->host, r->port);
        return false;
    }
    const char *role = rep->element[0]->str;
    if (strcmp(role, "master") == 0) {
        uint64_t n = rep->elements >= 3 && rep->element[2]->type == REDIS_REPLY_ARRAY
                         ? rep->element[2]->elements
                         : 0;
        ST_SET(r, replicas, n);
        return true;
    }
    if (strcmp(role, "sentinel") == 0 && r->subscriber)
        return true; /* listening to a sentinel's events is fine; commands are not */
    if (strcmp(role, "slave") == 0 && rep->elements >= 3 &&
        rep->element[1]->type == REDIS_REPLY_STRING && rep->element[2]->type == REDIS_REPLY_INTEGER)
        snprintf(why, cap, "MX_REDIS_URL: %s:%d is a replica (of %s:%lld), not the master", r->host,
                 r->port, rep->element[1]->str, rep->element[2]->integer);
    else if (strcmp(role, "sentinel") == 0)
        snprintf(why, cap,
                 "MX_REDIS_URL: %s:%d is a sentinel; use redis-sentinel://host:port/MASTER_NAME",
                 r->host, r->port);
    else
        snprintf(why, cap, "MX_REDIS_URL: %s:%d is a %s, not a master", r->host, r->port, role);
    return false;
}

static void went_up(mx_redis_t *r)
{
    uint64_t now = uv_now(r->loop);
    r->state = ST_UP;
    r->attempt = 0;
    atomic_store_explicit(&r->up, true, memory_order_relaxed);
    uv_timer_stop(&r->conn_timer);
    ST_INC(r, connects);
    char addr[272];
    uv_mutex_lock(&r->addr_mu);
    snprintf(addr, sizeof addr, "%s", r->addr);
    uv_mutex_unlock(&r->addr_mu);
    if (r->prev_addr[0] && strcmp(r->prev_addr, addr) != 0) {
        ST_INC(r, failovers);
        NOTE("redis %s: connected to %s (the master moved from %s)", r->name, addr, r->prev_addr);
    } else {
        NOTE("redis %s: connected to %s", r->name, addr);
    }
    snprintf(r->prev_addr, sizeof r->prev_addr, "%s", addr);
    if (r->down_since) {
        uint64_t ms = now - r->down_since;
        ST_SET(r, reconnect_ms_last, ms);
        if (ms > ST_GET(r, reconnect_ms_max))
            ST_SET(r, reconnect_ms_max, ms);
        r->down_since = 0;
    }
    for (int i = 0; i < r->nscripts; i++)
        script_load(r, r->scripts[i]);
    if (r->subscriber)
        send_subscriptions(r);
    if (r->on_state)
        r->on_state(r, true, r->state_arg);
}

/* The resolver says the master changed: leave the old one now. */
static void on_moved(uv_async_t *a)
{
    mx_redis_t *r = a->data;
    char host[256];
    int port;
    uint64_t gen;
    if (r->closing || !mx__sentinel_master(r->sentinel, host, sizeof host, &port, &gen) ||
        gen == r->gen)
        return;
    r->gen = gen;
    if (r->state != ST_DOWN && port == r->port && strcmp(host, r->host) == 0)
        return;
    if (r->state != ST_DOWN) {
        char why[300];
        snprintf(why, sizeof why, "the sentinels moved the master to %s:%d", host, port);
        drop_conn(r, why);
    }
    r->attempt = 0;
    if (!r->closing)
        uv_timer_start(&r->conn_timer, on_conn_timer, 0, 0);
}

static void on_connect(const redisAsyncContext *cac, int status)
{
    redisAsyncContext *ac = (redisAsyncContext *)cac;
    mx_redis_t *r = ac->data;
    if (r->ac != ac)
        return;
    if (status != REDIS_OK) {
        /* hiredis frees ac after this returns */
        r->ac = NULL;
        after_down(r, false, ac->errstr[0] ? ac->errstr : "connect failed");
        return;
    }
    redisEnableKeepAlive(&ac->c);
    if (r->password[0]) {
        struct cmd *c = cmd_new(r, K_HANDSHAKE, NULL, NULL);
        int rc = r->user[0] ? redisAsyncCommand(ac, on_reply, c, "AUTH %s %s", r->user, r->password)
                            : redisAsyncCommand(ac, on_reply, c, "AUTH %s", r->password);
        if (rc != REDIS_OK)
            cmd_free(c);
    }
    if (r->db) {
        struct cmd *c = cmd_new(r, K_HANDSHAKE, NULL, NULL);
        if (redisAsyncCommand(ac, on_reply, c, "SELECT %d", r->db) != REDIS_OK)
            cmd_free(c);
    }
    /* a sentinel knows no ROLE for itself worth checking: PING */
    struct cmd *c = cmd_new(r, r->link ? K_PING : K_ROLE, NULL, NULL);
    if (redisAsyncCommand(ac, on_reply, c, r->link ? "PING" : "ROLE") != REDIS_OK)
        cmd_free(c);
}

static void on_disconnect(const redisAsyncContext *cac, int status)
{
    redisAsyncContext *ac = (redisAsyncContext *)cac;
    mx_redis_t *r = ac->data;
    bool was_up = r->state == ST_UP;
    if (r->ac != ac)
        return; /* we freed it ourselves: already handled */
    r->ac = NULL;
    after_down(r, was_up, ac->errstr[0] ? ac->errstr : "closed by server");
}

static void conn_start(mx_redis_t *r)
{
    if (r->sentinel) {
        char host[256];
        int port;
        if (!mx__sentinel_master(r->sentinel, host, sizeof host, &port, &r->gen)) {
            after_down(r, false, "the sentinels have named no master yet");
            return;
        }
        set_addr(r, host, port);
    }
    redisAsyncContext *ac = redisAsyncConnect(r->host, r->port);
    if (!ac) {
        after_down(r, false, "out of memory");
        return;
    }
    if (ac->err) {
        char why[128];
        snprintf(why, sizeof(why), "%s", ac->errstr);
        redisAsyncFree(ac);
        after_down(r, false, why);
        return;
    }
    ac->data = r;
    if (ev_attach(r, ac) != 0) {
        redisAsyncFree(ac);
        after_down(r, false, "uv_poll_init failed");
        return;
    }
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    r->ac = ac;
    r->state = ST_CONNECTING;
    uv_timer_start(&r->conn_timer, on_conn_timer, r->connect_timeout_ms, 0);
}

static int open_common(uv_loop_t *loop, const char *url, const struct mx_redis_opts *opts,
                       bool link, mx_redis_t **out)
{
    static const struct mx_redis_opts defaults = {0};
    mx_redis_t *r;
    if (!loop || !out)
        return MX_EINVAL;
    if (!opts)
        opts = &defaults;
    if (opts->backoff_min_ms && opts->backoff_max_ms && opts->backoff_max_ms < opts->backoff_min_ms)
        return MX_EINVAL;
    r = xcalloc(1, sizeof(*r));
    if (url && strncmp(url, "redis-sentinel://", 17) == 0 && !link) {
        struct mx_redis_sentinel_url *su = xcalloc(1, sizeof(*su));
        int rc = mx_redis_parse_sentinel_url(url, su);
        if (rc == 0) {
            snprintf(r->user, sizeof r->user, "%s", su->user);
            snprintf(r->password, sizeof r->password, "%s", su->password);
            r->db = su->db;
            rc = mx__sentinel_get(url, &r->sentinel);
        }
        free(su);
        if (rc != 0) {
            free(r);
            return rc;
        }
    } else if (mx_redis_parse_url(url, r->host, sizeof(r->host), &r->port, r->user, sizeof(r->user),
                                  r->password, sizeof(r->password), &r->db) != 0) {
        free(r);
        return MX_EINVAL;
    }
    r->link = link;
    uv_mutex_init(&r->addr_mu);
    if (!r->sentinel)
        set_addr(r, r->host, r->port);
    r->loop = loop;
    mx_list_init(&r->pending);
    snprintf(r->name, sizeof(r->name), "%s", opts->name ? opts->name : "redis");
    r->timeout_ms = opts->timeout_ms ? opts->timeout_ms : 1000;
    r->connect_timeout_ms = opts->connect_timeout_ms ? opts->connect_timeout_ms : 1000;
    r->max_pending = opts->max_pending ? opts->max_pending : 1024;
    r->backoff_min = opts->backoff_min_ms ? opts->backoff_min_ms : 50;
    r->backoff_max = opts->backoff_max_ms ? opts->backoff_max_ms : 1000;
    r->stall_ms = opts->stall_ms ? opts->stall_ms : 5000;
    r->on_state = opts->on_state;
    r->state_arg = opts->state_arg;
    r->rng = (uint64_t)(uintptr_t)r ^ uv_hrtime() ^ 0x9e3779b97f4a7c15ull;
    r->state = ST_DOWN;
    uv_timer_init(loop, &r->cmd_timer);
    uv_timer_init(loop, &r->conn_timer);
    r->cmd_timer.data = r->conn_timer.data = r;
    r->handles_open = 2;
    if (r->sentinel) {
        uv_async_init(loop, &r->moved, on_moved);
        r->moved.data = r;
        r->handles_open++;
        mx__sentinel_follow(r->sentinel, &r->moved);
    }
    uv_once(&g_once, g_init);
    uv_mutex_lock(&g_mu);
    r->gnext = g_head;
    if (g_head)
        g_head->gprev = r;
    g_head = r;
    uv_mutex_unlock(&g_mu);
    *out = r;
    return 0;
}

int mx_redis_open(uv_loop_t *loop, const char *url, const struct mx_redis_opts *opts,
                  mx_redis_t **out)
{
    int rc = open_common(loop, url, opts, false, out);
    if (rc == 0)
        conn_start(*out);
    return rc;
}

static int open_subscriber(uv_loop_t *loop, const char *url, const struct mx_redis_opts *opts,
                           bool link, mx_redis_msg_cb on_msg, void *arg, mx_redis_t **out);

int mx__redis_open_link(uv_loop_t *loop, const char *url, const struct mx_redis_opts *opts,
                        mx_redis_msg_cb on_msg, void *arg, mx_redis_t **out)
{
    if (on_msg)
        return open_subscriber(loop, url, opts, true, on_msg, arg, out);
    int rc = open_common(loop, url, opts, true, out);
    if (rc == 0)
        conn_start(*out);
    return rc;
}

int mx_redis_open_subscriber(uv_loop_t *loop, const char *url, const struct mx_redis_opts *opts,
                             mx_redis_msg_cb on_msg, void *arg, mx_redis_t **out)
{
    return open_subscriber(loop, url, opts, false, on_msg, arg, out);
}

static int open_subscriber(uv_loop_t *loop, const char *url, const struct mx_redis_opts *opts,
                           bool link, mx_redis_msg_cb on_msg, void *arg, mx_redis_t **out)
{
    if (!on_msg)
        return MX_EINVAL;
    int rc = open_common(loop, url, opts, link, out);
    if (rc != 0)
        return rc;
    mx_redis_t *r = *out;
    r->subscriber = true;
    r->on_msg = on_msg;
    r->msg_arg = arg;
    r->subs = xcalloc(MX_REDIS_MAX_SUBS, sizeof(*r->subs));
    conn_start(r);
    return 0;
}

void mx_redis_close(mx_redis_t *r, mx_redis_close_cb done, void *arg)
{
    if (!r || r->closing)
        return;
    r->closing = true;
    r->done = done;
    r->done_arg = arg;
    r->state = ST_CLOSED;
    atomic_store_explicit(&r->up, false, memory_order_relaxed);
    if (r->ac) {
        redisAsyncContext *ac = r->ac;
        r->ac = NULL;
        redisAsyncFree(ac); /* pending callbacks: MX_ESTOPPED */
    }
    uv_close((uv_handle_t *)&r->cmd_timer, on_handle_closed);
    uv_close((uv_handle_t *)&r->conn_timer, on_handle_closed);
    if (r->sentinel) {
        mx__sentinel_unfollow(r->sentinel, &r->moved); /* no uv_async_send after this */
        uv_close((uv_handle_t *)&r->moved, on_handle_closed);
    }
}

bool mx_redis_connected(const mx_redis_t *r)
{
    return atomic_load_explicit(&r->up, memory_order_relaxed);
}

struct uv_loop_s *mx_redis_loop(const mx_redis_t *r)
{
    return r->loop;
}

void mx_redis_stats(const mx_redis_t *r, struct mx_redis_stats *o)
{
    mx_redis_t *m = (mx_redis_t *)r; /* atomic loads need a non-const object in C11 */
    o->connected = mx_redis_connected(r);
    o->connects = ST_GET(m, connects);
    o->disconnects = ST_GET(m, disconnects);
    o->connect_failures = ST_GET(m, connect_failures);
    o->commands = ST_GET(m, commands);
    o->replies = ST_GET(m, replies);
    o->errors = ST_GET(m, errors);
    o->lost = ST_GET(m, lost);
    o->timeouts = ST_GET(m, timeouts);
    o->late_replies = ST_GET(m, late_replies);
    o->refused_full = ST_GET(m, refused_full);
    o->refused_down = ST_GET(m, refused_down);
    o->noscript_retries = ST_GET(m, noscript_retries);
    o->messages = ST_GET(m, messages);
    o->pending = ST_GET(m, pending);
    o->failovers = ST_GET(m, failovers);
    o->readonly = ST_GET(m, readonly);
    o->reconnect_ms_last = ST_GET(m, reconnect_ms_last);
    o->reconnect_ms_max = ST_GET(m, reconnect_ms_max);
    o->replicas = (uint32_t)ST_GET(m, replicas);
    uv_mutex_lock(&m->addr_mu);
    snprintf(o->master, sizeof o->master, "%s", m->addr);
    uv_mutex_unlock(&m->addr_mu);
}

void mx_redis_report(struct mx_jsonw *w, void *ctx)
{
    struct mx_redis_stats st;
    (void)ctx;
    uv_once(&g_once, g_init);
    mx_jsonw_obj_open(w);
    mx_jsonw_key(w, "clients");
    mx_jsonw_arr_open(w);
    uv_mutex_lock(&g_mu); /* a listed client is not freed before it leaves the list */
    for (mx_redis_t *r = g_head; r; r = r->gnext) {
        if (r->link)
            continue;
        mx_redis_stats(r, &st);
        mx_jsonw_obj_open(w);
        mx_jsonw_kstr(w, "name", r->name);
        mx_jsonw_kstr(w, "master", st.master);
        mx_jsonw_kbool(w, "connected", st.connected);
        mx_jsonw_kuint(w, "connects", st.connects);
        mx_jsonw_kuint(w, "connect_failures", st.connect_failures);
        mx_jsonw_kuint(w, "failovers", st.failovers);
        mx_jsonw_kuint(w, "readonly", st.readonly);
        mx_jsonw_kuint(w, "reconnect_ms_last", st.reconnect_ms_last);
        mx_jsonw_kuint(w, "reconnect_ms_max", st.reconnect_ms_max);
        mx_jsonw_kuint(w, "replicas", st.replicas);
        mx_jsonw_obj_close(w);
    }
    uv_mutex_unlock(&g_mu);
    mx_jsonw_arr_close(w);
    mx_jsonw_key(w, "sentinels");
    mx__sentinel_report(w);
    mx_jsonw_obj_close(w);
}

/* ---- user commands ---- */

static int admit(mx_redis_t *r)
{
    if (!r || r->closing || r->subscriber)
        return MX_EINVAL;
    if (r->state != ST_UP || !r->ac) {
        ST_INC(r, refused_down);
        return MX_EUNAVAIL;
    }
    if (r->held >= r->max_pending) {
        ST_INC(r, refused_full);
        return MX_EFULL;
    }
    return 0;
}

/* hiredis refused a command: because the context is going away, or because
 * the command itself is malformed */
static int refused_by_hiredis(mx_redis_t *r)
{
    if (r->ac && !(r->ac->c.flags & (REDIS_DISCONNECTING | REDIS_FREEING)))
        return MX_EINVAL;
    ST_INC(r, refused_down);
    return MX_EUNAVAIL;
}

int mx_redis_command(mx_redis_t *r, mx_redis_cb cb, void *arg, const char *fmt, ...)
{
    int rc = admit(r);
    if (rc != 0)
        return rc;
    if (!fmt || !*fmt)
        return MX_EINVAL;
    struct cmd *c = cmd_new(r, K_USER, cb, arg);
    va_list ap;
    va_start(ap, fmt);
    rc = redisvAsyncCommand(r->ac, on_reply, c, fmt, ap);
    va_end(ap);
    if (rc != REDIS_OK) {
        cmd_free(c);
        return refused_by_hiredis(r);
    }
    cmd_accept(r, c, r->timeout_ms);
    return 0;
}

int mx_redis_argv_timeout(mx_redis_t *r, uint32_t timeout_ms, mx_redis_cb cb, void *arg, int argc,
                          const char **argv, const size_t *argvlen)
{
    int rc = admit(r);
    if (rc != 0)
        return rc;
    if (argc <= 0 || argc > MX_REDIS_MAX_ARGS || !argv || timeout_ms == 0)
        return MX_EINVAL;
    for (int i = 0; i < argc; i++)
        if (!argv[i])
            return MX_EINVAL;
    struct cmd *c = cmd_new(r, K_USER, cb, arg);
    if (redisAsyncCommandArgv(r->ac, on_reply, c, argc, argv, argvlen) != REDIS_OK) {
        cmd_free(c);
        return refused_by_hiredis(r);
    }
    cmd_accept(r, c, timeout_ms);
    return 0;
}

int mx_redis_argv(mx_redis_t *r, mx_redis_cb cb, void *arg, int argc, const char **argv,
                  const size_t *argvlen)
{
    return mx_redis_argv_timeout(r, r ? r->timeout_ms : 0, cb, arg, argc, argv, argvlen);
}

/* ---- scripts ---- */

static void script_load(mx_redis_t *r, mx_redis_script_t *s)
{
    if (!r->ac)
        return;
    struct cmd *c = cmd_new(r, K_SCRIPT_LOAD, NULL, NULL);
    c->script = s;
    const char *argv[3] = {"SCRIPT", "LOAD", s->src};
    size_t lens[3] = {6, 4, s->len};
    if (redisAsyncCommandArgv(r->ac, on_reply, c, 3, argv, lens) != REDIS_OK)
        cmd_free(c);
}

int mx_redis_script(mx_redis_t *r, const char *lua, mx_redis_script_t **out)
{
    if (!r || !lua || !*lua || !out || r->subscriber || r->closing)
        return MX_EINVAL;
    for (int i = 0; i < r->nscripts; i++)
        if (r->scripts[i]->src == lua || strcmp(r->scripts[i]->src, lua) == 0) {
            *out = r->scripts[i];
            return 0;
        }
    if (r->nscripts == MX_REDIS_MAX_SCRIPTS)
        return MX_ELIMIT;
    mx_redis_script_t *s = xcalloc(1, sizeof(*s));
    s->len = strlen(lua);
    s->src = xstrndup(lua, s->len);
    r->scripts[r->nscripts++] = s;
    if (r->state == ST_UP)
        script_load(r, s);
    *out = s;
    return 0;
}

const char *mx_redis_script_sha(const mx_redis_script_t *s)
{
    return s->sha;
}

/* Send c (K_EVAL) as EVALSHA, or as EVAL when asked or the SHA is unknown. */
static int send_eval(mx_redis_t *r, struct cmd *c, bool use_eval)
{
    mx_redis_script_t *s = c->script;
    char head[128];
    int hl;
    size_t body;
    if (use_eval || !s->sha[0]) {
        c->retried = true; /* EVAL cannot answer NOSCRIPT */
        hl =
            snprintf(head, sizeof(head), "*%d\r\n$4\r\nEVAL\r\n$%zu\r\n", c->tail_argc + 2, s->len);
        body = s->len + 2;
    } else {
        hl = snprintf(head, sizeof(head), "*%d\r\n$7\r\nEVALSHA\r\n$40\r\n%s\r\n", c->tail_argc + 2,
                      s->sha);
        body = 0;
    }
    size_t len = (size_t)hl + body + c->tail_len;
    char *buf = xcalloc(1, len + 1);
    memcpy(buf, head, (size_t)hl);
    if (body) {
        memcpy(buf + hl, s->src, s->len);
        memcpy(buf + hl + s->len, "\r\n", 2);
    }
    memcpy(buf + (size_t)hl + body, c->tail, c->tail_len);
    int rc = redisAsyncFormattedCommand(r->ac, on_reply, c, buf, len);
    free(buf); /* hiredis copied it into its output buffer */
    return rc == REDIS_OK ? 0 : -1;
}

int mx_redis_eval(mx_redis_t *r, mx_redis_script_t *s, mx_redis_cb cb, void *arg, int nkeys,
                  int argc, const char **argv, const size_t *argvlen)
{
    int rc = admit(r);
    if (rc != 0)
        return rc;
    if (!s || nkeys < 0 || argc < 0 || nkeys > argc || argc + 3 > MX_REDIS_MAX_ARGS ||
        (argc && !argv))
        return MX_EINVAL;
    const char **av = xcalloc((size_t)argc + 1, sizeof(*av));
    size_t *al = xcalloc((size_t)argc + 1, sizeof(*al));
    char nk[16];
    av[0] = nk;
    al[0] = (size_t)snprintf(nk, sizeof(nk), "%d", nkeys);
    for (int i = 0; i < argc; i++) {
        if (!argv[i]) {
            free(av);
            free(al);
            return MX_EINVAL;
        }
        av[i + 1] = argv[i];
        al[i + 1] = argvlen ? argvlen[i] : strlen(argv[i]);
    }
    char *fmt = NULL;
    long long fl = redisFormatCommandArgv(&fmt, argc + 1, av, al);
    free(av);
    free(al);
    if (fl < 0 || !fmt)
        return MX_EINVAL;
    char *crlf = strstr(fmt, "\r\n"); /* skip "*N\r\n": the header is rebuilt per send */
    struct cmd *c = cmd_new(r, K_EVAL, cb, arg);
    c->script = s;
    c->tail_argc = argc + 1;
    c->tail_len = (size_t)fl - (size_t)(crlf + 2 - fmt);
    c->tail = xmemdup(crlf + 2, c->tail_len);
    redisFreeCommand(fmt);
    if (send_eval(r, c, false) != 0) {
        cmd_free(c);
        return refused_by_hiredis(r);
    }
    cmd_accept(r, c, r->timeout_ms);
    return 0;
}

/* ---- pub/sub ---- */

static int find_sub(mx_redis_t *r, const char *channel, bool pattern)
{
    for (int i = 0; i < r->nsubs; i++)
        if (r->subs[i].pattern == pattern && strcmp(r->subs[i].name, channel) == 0)
            return i;
    return -1;
}

static void on_sub_reply(redisAsyncContext *ac, void *rep, void *privdata)
{
    mx_redis_t *r = privdata;
    redisReply *reply = rep;
    (void)ac;
    if (!reply || r->closing)
        return;
    r->last_read = uv_now(r->loop);
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 3)
        return;
    redisReply **e = reply->element;
    if (e[0]->type != REDIS_REPLY_STRING)
        return;
    /* find_sub: no message for a channel the user already unsubscribed from
     * while the UNSUBSCRIBE is on its way */
    if (strcmp(e[0]->str, "message") == 0 && e[1]->type == REDIS_REPLY_STRING &&
        e[2]->type == REDIS_REPLY_STRING && find_sub(r, e[1]->str, false) >= 0) {
        ST_INC(r, messages);
        r->on_msg(r, e[1]->str, e[2]->str, e[2]->len, NULL, r->msg_arg);
    } else if (strcmp(e[0]->str, "pmessage") == 0 && reply->elements >= 4 &&
               e[1]->type == REDIS_REPLY_STRING && e[2]->type == REDIS_REPLY_STRING &&
               e[3]->type == REDIS_REPLY_STRING && find_sub(r, e[1]->str, true) >= 0) {
        ST_INC(r, messages);
        r->on_msg(r, e[2]->str, e[3]->str, e[3]->len, e[1]->str, r->msg_arg);
    }
}

static void send_sub(mx_redis_t *r, const char *verb, const char *name)
{
    const char *argv[2] = {verb, name};
    if (r->ac && r->state == ST_UP)
        redisAsyncCommandArgv(r->ac, on_sub_reply, r, 2, argv, NULL);
}

static void send_subscriptions(mx_redis_t *r)
{
    const char **argv = xcalloc((size_t)r->nsubs + 1, sizeof(*argv));
    for (int pass = 0; pass < 2; pass++) {
        int n = 0;
        argv[n++] = pass ? "PSUBSCRIBE" : "SUBSCRIBE";
        for (int i = 0; i < r->nsubs; i++)
            if (r->subs[i].pattern == (pass == 1))
                argv[n++] = r->subs[i].name;
        if (n > 1)
            redisAsyncCommandArgv(r->ac, on_sub_reply, r, n, argv, NULL);
    }
    free(argv);
}

int mx_redis_subscribe(mx_redis_t *r, const char *channel, bool pattern)
{
    if (!r || !r->subscriber || r->closing || !channel || !*channel || strlen(channel) > 512)
        return MX_EINVAL;
    if (find_sub(r, channel, pattern) >= 0)
        return 0;
    if (r->nsubs == MX_REDIS_MAX_SUBS)
        return MX_ELIMIT;
    r->subs[r->nsubs].name = xstrndup(channel, strlen(channel));
    r->subs[r->nsubs].pattern = pattern;
    r->nsubs++;
    send_sub(r, pattern ? "PSUBSCRIBE" : "SUBSCRIBE", channel);
    return 0;
}

int mx_redis_unsubscribe(mx_redis_t *r, const char *channel, bool pattern)
{
    if (!r || !r->subscriber || r->closing || !channel)
        return MX_EINVAL;
    int i = find_sub(r, channel, pattern);
    if (i < 0)
        return MX_ENOTFOUND;
    send_sub(r, pattern ? "PUNSUBSCRIBE" : "UNSUBSCRIBE", channel);
    free(r->subs[i].name);
    r->subs[i] = r->subs[--r->nsubs];
    return 0;
}

bool mx_redis_reply_is(const redisReply *reply, const char *s)
{
    if (!reply || !s || (reply->type != REDIS_REPLY_STATUS && reply->type != REDIS_REPLY_STRING))
        return false;
    return reply->len == strlen(s) && memcmp(reply->str, s, reply->len) == 0;
}
