/* mx_redis_sentinel.c - the Sentinel resolver: where is the master of a
 * redis-sentinel:// URL, for every mx_redis client of that URL in the
 * process (mx_redis_sentinel.h).
 *
 * Why one per URL and process, on its own thread: a node has a dozen Redis
 * clients on as many loops (cache shards, like-buffers, acceptors, the
 * registry thread); each asking the sentinels itself would multiply the
 * sentinel connections and let clients disagree about the master. The
 * resolver's thread cannot be starved by data traffic, like the registry's.
 *
 * How it learns the master:
 * - a round: SENTINEL get-master-addr-by-name to every connected sentinel;
 *   the address most of them name wins (ties: the first sentinel's). A
 *   round runs at start, every second, when a sentinel link comes up and
 *   when a follower kicks (at most one round per 200 ms);
 * - +switch-master from any sentinel moves the master at once; for 5 s
 *   after that, rounds do not move it back (sentinels that have not heard
 *   of the failover yet still name the old master).
 * Nil from every sentinel that answered: "sentinels know no master named
 * X", logged (when it changes, else every 30 s) and kept for mx_redis_report.
 */
#include "mx_redis_sentinel.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mx_err.h"
#include "mx_jsonw.h"
#include "mx_log.h"
#include "mx_url.h"

#define POLL_MS 1000
#define KICK_GAP_MS 200
#define HOLD_MS 5000
#define RELOG_MS 30000

struct link {
    struct mx__sentinel *s;
    mx_redis_t *cmd, *sub;
};

struct mx__sentinel {
    struct mx__sentinel *next; /* g_list; g_mu */
    int refs;                  /* g_mu */
    char url[MX_REDIS_URL_MAX + 1];
    struct mx_redis_sentinel_url u;

    uv_thread_t thread;
    uv_loop_t loop;
    uv_async_t wake; /* kick or stop */
    uv_timer_t poll, soon;
    struct link links[MX_REDIS_MAX_SENTINELS];

    /* resolver thread only */
    bool round; /* a round is in flight */
    bool again; /* kicked during the round */
    int due;    /* answers still expected */
    int nvotes, nil_answers;
    char vote_host[MX_REDIS_MAX_SENTINELS][64];
    int vote_port[MX_REDIS_MAX_SENTINELS], vote_n[MX_REDIS_MAX_SENTINELS];
    char err_reply[128]; /* an error a sentinel answered this round */
    uint64_t round_at, hold_until, logged_at, started_at;
    int closing; /* handles not yet closed at stop */

    uv_mutex_t mu; /* guards everything below */
    bool stop, kicked;
    bool known;
    char host[64];
    int port;
    uint64_t gen;
    uv_async_t *followers[MX_REDIS_MAX_FOLLOWERS];
    int nfollowers;
    uint64_t switches, resolves, failures;
    char error[400]; /* "" when the last round named a master */
};

#define MAX_RESOLVERS 16 /* distinct sentinel URLs per process (a node uses one) */

static uv_mutex_t g_mu;
static uv_once_t g_once = UV_ONCE_INIT;
static struct mx__sentinel *g_list; /* g_mu */
static int g_count;                 /* g_mu: resolvers in g_list */
static uint64_t g_refused;          /* g_mu: opens refused by MAX_RESOLVERS or the followers' cap */

static void g_init(void)
{
    uv_mutex_init(&g_mu);
}

/* ---- the master's address (any thread) ---- */

/* Set the master; wake every follower if it changed. Returns whether it did. */
static bool adopt(struct mx__sentinel *s, const char *host, int port, const char *how)
{
    uv_mutex_lock(&s->mu);
    bool changed = !s->known || s->port != port || strcmp(s->host, host) != 0;
    char was[80];
    snprintf(was, sizeof was, "%s:%d", s->known ? s->host : "none", s->known ? s->port : 0);
    if (changed) {
        s->known = true;
        snprintf(s->host, sizeof s->host, "%s", host);
        s->port = port;
        s->gen++;
        for (int i = 0; i < s->nfollowers; i++)
            uv_async_send(s->followers[i]);
    }
    uv_mutex_unlock(&s->mu);
    if (changed)
        MX_INFO("redis sentinel %s: master is %s:%d (%s; was %s)", s->u.master, host, port, how,
                was);
    return changed;
}

bool mx__sentinel_master(struct mx__sentinel *s, char *host, size_t cap, int *port, uint64_t *gen)
{
    uv_mutex_lock(&s->mu);
    bool known = s->known;
    if (known) {
        snprintf(host, cap, "%s", s->host);
        *port = s->port;
        *gen = s->gen;
    }
    uv_mutex_unlock(&s->mu);
    return known;
}

void mx__sentinel_kick(struct mx__sentinel *s)
{
    uv_mutex_lock(&s->mu);
    s->kicked = true;
    uv_mutex_unlock(&s->mu);
    uv_async_send(&s->wake);
}

void mx__sentinel_follow(struct mx__sentinel *s, uv_async_t *wake)
{
    uv_mutex_lock(&s->mu);
    if (s->nfollowers < MX_REDIS_MAX_FOLLOWERS) /* refs bound it: mx__sentinel_get */
        s->followers[s->nfollowers++] = wake;
    uv_mutex_unlock(&s->mu);
}

void mx__sentinel_unfollow(struct mx__sentinel *s, uv_async_t *wake)
{
    uv_mutex_lock(&s->mu);
    for (int i = 0; i < s->nfollowers; i++)
        if (s->followers[i] == wake) {
            s->followers[i] = s->followers[--s->nfollowers];
            break;
        }
    uv_mutex_unlock(&s->mu);
}

/* ---- rounds (resolver thread) ---- */

static void set_error(struct mx__sentinel *s, const char *msg)
{
    uint64_t now = uv_now(&s->loop);
    uv_mutex_lock(&s->mu);
    bool same = strcmp(s->error, msg) == 0;
    snprintf(s->error, sizeof s->error, "%s", msg);
    if (msg[0])
        s->failures++;
    uv_mutex_unlock(&s->mu);
    if (!msg[0]) {
        if (!same)
            MX_INFO("redis sentinel %s: the sentinels name a master again", s->u.master);
        return;
    }
    if (!same || now - s->logged_at >= RELOG_MS) {
        s->logged_at = now;
        MX_ERROR("MX_REDIS_URL: %s; retrying every %d ms", msg, POLL_MS);
    }
}

static void on_answer(mx_redis_t *r, int status, const redisReply *rep, void *arg);

static void start_round(struct mx__sentinel *s)
{
    if (s->round) {
        s->again = true;
        return;
    }
    s->nvotes = s->nil_answers = s->due = 0;
    s->err_reply[0] = '\0';
    s->round_at = uv_now(&s->loop);
    s->round = true; /* on_answer may not run before the loop below ends, but be safe */
    for (int i = 0; i < s->u.n; i++)
        if (mx_redis_command(s->links[i].cmd, on_answer, &s->links[i],
                             "SENTINEL get-master-addr-by-name %s", s->u.master) == 0)
            s->due++;
    if (s->due == 0) {
        s->round = false;
        if (s->round_at - s->started_at < 2000)
            return; /* the links are still connecting */
        char msg[200];
        snprintf(msg, sizeof msg, "none of the %d sentinels is reachable", s->u.n);
        set_error(s, msg);
    }
}

static void finish_round(struct mx__sentinel *s)
{
    s->round = false;
    uv_mutex_lock(&s->mu);
    s->resolves++;
    uv_mutex_unlock(&s->mu);
    int best = -1;
    for (int i = 0; i < s->nvotes; i++)
        if (best < 0 || s->vote_n[i] > s->vote_n[best])
            best = i;
    char msg[400];
    if (best >= 0) {
        set_error(s, "");
        if (uv_now(&s->loop) >= s->hold_until)
            adopt(s, s->vote_host[best], s->vote_port[best], "asked the sentinels");
    } else if (s->nil_answers) {
        snprintf(msg, sizeof msg, "sentinels know no master named %s", s->u.master);
        set_error(s, msg);
    } else {
        snprintf(msg, sizeof msg, "no sentinel named the master %s%s%s", s->u.master,
                 s->err_reply[0] ? ": " : "", s->err_reply);
        set_error(s, msg);
    }
    if (s->again) {
        s->again = false;
        start_round(s);
    }
}

static void vote(struct mx__sentinel *s, const char *host, size_t hl, int port)
{
    if (hl == 0 || hl >= sizeof s->vote_host[0] || port < 1 || port > 65535)
        return;
    for (int i = 0; i < s->nvotes; i++)
        if (s->vote_port[i] == port && strlen(s->vote_host[i]) == hl &&
            memcmp(s->vote_host[i], host, hl) == 0) {
            s->vote_n[i]++;
            return;
        }
    memcpy(s->vote_host[s->nvotes], host, hl);
    s->vote_host[s->nvotes][hl] = '\0';
    s->vote_port[s->nvotes] = port;
    s->vote_n[s->nvotes++] = 1;
}

static void on_answer(mx_redis_t *r, int status, const redisReply *rep, void *arg)
{
    struct mx__sentinel *s = ((struct link *)arg)->s;
    (void)r;
    if (status == 0 && rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
        rep->element[0]->type == REDIS_REPLY_STRING && rep->element[1]->type == REDIS_REPLY_STRING)
        vote(s, rep->element[0]->str, rep->element[0]->len, atoi(rep->element[1]->str));
    else if (status == 0 && rep->type == REDIS_REPLY_NIL)
        s->nil_answers++;
    else if (status == MX_EIO)
        snprintf(s->err_reply, sizeof s->err_reply, "%s", rep->str);
    if (--s->due == 0 && status != MX_ESTOPPED)
        finish_round(s);
}

/* "+switch-master <name> <old ip> <old port> <new ip> <new port>" */
static void on_switch(mx_redis_t *r, const char *channel, const char *data, size_t len,
                      const char *pattern, void *arg)
{
    struct mx__sentinel *s = ((struct link *)arg)->s;
    char buf[512], name[128], oh[64], nh[64];
    int op, np;
    (void)r;
    (void)channel;
    (void)pattern;
    if (len >= sizeof buf)
        return;
    memcpy(buf, data, len);
    buf[len] = '\0';
    if (sscanf(buf, "%127s %63s %d %63s %d", name, oh, &op, nh, &np) != 5 ||
        strcmp(name, s->u.master) != 0 || np < 1 || np > 65535)
        return;
    s->hold_until = uv_now(&s->loop) + HOLD_MS;
    if (adopt(s, nh, np, "+switch-master")) {
        uv_mutex_lock(&s->mu);
        s->switches++;
        uv_mutex_unlock(&s->mu);
    }
}

static void on_poll(uv_timer_t *t)
{
    start_round(t->data);
}

static void on_link_state(mx_redis_t *r, bool up, void *arg)
{
    (void)r;
    if (up)
        mx__sentinel_kick(((struct link *)arg)->s);
}

static void on_closed(uv_handle_t *h)
{
    struct mx__sentinel *s = h->data;
    s->closing--;
}

static void on_link_closed(mx_redis_t *r, void *arg)
{
    (void)r;
    ((struct mx__sentinel *)arg)->closing--;
}

static void on_wake(uv_async_t *a)
{
    struct mx__sentinel *s = a->data;
    uv_mutex_lock(&s->mu);
    bool stop = s->stop, kicked = s->kicked;
    s->kicked = false;
    uv_mutex_unlock(&s->mu);
    if (stop) {
        if (s->closing)
            return; /* already closing */
        s->closing = 3;
        uv_close((uv_handle_t *)&s->wake, on_closed);
        uv_close((uv_handle_t *)&s->poll, on_closed);
        uv_close((uv_handle_t *)&s->soon, on_closed);
        for (int i = 0; i < s->u.n; i++) {
            s->closing += 2;
            mx_redis_close(s->links[i].cmd, on_link_closed, s);
            mx_redis_close(s->links[i].sub, on_link_closed, s);
        }
        return;
    }
    if (!kicked)
        return;
    uint64_t since = uv_now(&s->loop) - s->round_at;
    if (since >= KICK_GAP_MS)
        start_round(s);
    else if (!uv_is_active((uv_handle_t *)&s->soon))
        uv_timer_start(&s->soon, on_poll, KICK_GAP_MS - since, 0);
}

static void run(void *arg)
{
    struct mx__sentinel *s = arg;
    struct mx_redis_opts o = {.name = "sentinel",
                              .timeout_ms = 500,
                              .connect_timeout_ms = 500,
                              .backoff_max_ms = 1000,
                              .on_state = on_link_state};
    for (int i = 0; i < s->u.n; i++) {
        char url[MX_REDIS_URL_MAX + 64];
        struct link *l = &s->links[i];
        l->s = s;
        o.state_arg = l;
        /* the URL was validated as a whole: these cannot fail */
        if (mx_redis_url_format(url, sizeof url, s->u.user, s->u.password, s->u.host[i],
                                s->u.port[i]) != 0 ||
            mx__redis_open_link(&s->loop, url, &o, NULL, NULL, &l->cmd) != 0 ||
            mx__redis_open_link(&s->loop, url, &o, on_switch, l, &l->sub) != 0) {
            fprintf(stderr, "mx_redis_sentinel: cannot open a link to %s\n", url);
            abort();
        }
        mx_redis_subscribe(l->sub, "+switch-master", false);
    }
    s->started_at = uv_now(&s->loop);
    uv_timer_start(&s->poll, on_poll, POLL_MS, POLL_MS);
    uv_run(&s->loop, UV_RUN_DEFAULT);
}

int mx__sentinel_get(const char *url, struct mx__sentinel **out)
{
    struct mx_redis_sentinel_url u;
    if (mx_redis_parse_sentinel_url(url, &u) != 0)
        return MX_EINVAL;
    uv_once(&g_once, g_init);
    uv_mutex_lock(&g_mu);
    struct mx__sentinel *s;
    for (s = g_list; s; s = s->next)
        if (strcmp(s->url, url) == 0)
            break;
    if ((s && s->refs >= MX_REDIS_MAX_FOLLOWERS) || (!s && g_count >= MAX_RESOLVERS)) {
        g_refused++;
        uv_mutex_unlock(&g_mu);
        MX_ERROR("redis sentinel: refused a client of %s: %s", s ? s->u.master : "a new URL",
                 s ? "too many clients for one URL" : "too many sentinel URLs in one process");
        return MX_ELIMIT;
    }
    if (!s) {
        s = calloc(1, sizeof *s);
        if (!s || uv_loop_init(&s->loop) != 0) {
            fprintf(stderr, "mx_redis_sentinel: out of memory\n");
            abort();
        }
        snprintf(s->url, sizeof s->url, "%s", url);
        s->u = u;
        uv_mutex_init(&s->mu);
        uv_async_init(&s->loop, &s->wake, on_wake);
        uv_timer_init(&s->loop, &s->poll);
        uv_timer_init(&s->loop, &s->soon);
        s->wake.data = s->poll.data = s->soon.data = s;
        s->kicked = true; /* the first round, as soon as a link is up */
        if (uv_thread_create(&s->thread, run, s) != 0) {
            fprintf(stderr, "mx_redis_sentinel: cannot start a thread\n");
            abort();
        }
        s->next = g_list;
        g_list = s;
        g_count++;
    }
    s->refs++;
    uv_mutex_unlock(&g_mu);
    *out = s;
    return 0;
}

void mx__sentinel_put(struct mx__sentinel *s)
{
    uv_mutex_lock(&g_mu);
    bool last = --s->refs == 0;
    if (last)
        for (struct mx__sentinel **p = &g_list; *p; p = &(*p)->next)
            if (*p == s) {
                *p = s->next;
                g_count--;
                break;
            }
    uv_mutex_unlock(&g_mu);
    if (!last)
        return;
    uv_mutex_lock(&s->mu);
    s->stop = true;
    uv_mutex_unlock(&s->mu);
    uv_async_send(&s->wake);
    uv_thread_join(&s->thread);
    uv_loop_close(&s->loop);
    uv_mutex_destroy(&s->mu);
    free(s);
}

void mx__sentinel_report(struct mx_jsonw *w)
{
    uv_once(&g_once, g_init);
    mx_jsonw_arr_open(w);
    uv_mutex_lock(&g_mu);
    if (g_refused) { /* only when it happened: normally the array holds resolvers only */
        mx_jsonw_obj_open(w);
        mx_jsonw_kuint(w, "refused_clients", g_refused);
        mx_jsonw_obj_close(w);
    }
    for (struct mx__sentinel *s = g_list; s; s = s->next) {
        char addr[80] = "";
        uv_mutex_lock(&s->mu);
        if (s->known)
            snprintf(addr, sizeof addr, "%s:%d", s->host, s->port);
        mx_jsonw_obj_open(w);
        mx_jsonw_kstr(w, "master_name", s->u.master);
        mx_jsonw_kint(w, "sentinels", s->u.n);
        mx_jsonw_kstr(w, "master", addr);
        mx_jsonw_kuint(w, "switches", s->switches);
        mx_jsonw_kuint(w, "resolves", s->resolves);
        mx_jsonw_kuint(w, "failures", s->failures);
        mx_jsonw_kint(w, "followers", s->nfollowers);
        mx_jsonw_kstr(w, "error", s->error);
        mx_jsonw_obj_close(w);
        uv_mutex_unlock(&s->mu);
    }
    uv_mutex_unlock(&g_mu);
    mx_jsonw_arr_close(w);
}
