/* mx_registry.c - cluster membership in Redis on a dedicated thread.
 *
 * Why a thread of its own: the heartbeat and the leases decide whether a
 * node is alive and whether it may run a singleton; if they shared a
 * scheduler with data traffic, a busy actor could delay a renewal past the
 * TTL and cost the node its leases (or its membership). Here one thread
 * owns one uv loop, one Redis command client and one subscriber, and does
 * nothing else. Other threads reach it through a bounded call queue and an
 * async handle; admin providers read snapshots under a mutex.
 *
 * One Lua script per heartbeat writes this node's record (SET PX on the
 * node key, HSET in the members hash), prunes hash entries whose node key
 * expired, publishes "members" when the set changed, and returns every live
 * record with its remaining TTL - so the refresh is also the periodic
 * re-read.
 */
#define _GNU_SOURCE /* memmem */
#include "mx_registry.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "mx_err.h"
#include "mx_log.h"

struct call {
    mx_registry_call_fn fn;
    void *arg;
};

struct peer {
    uint64_t id;
    char url[128];
};

struct mx_registry {
    /* immutable after new */
    mx_system_t *sys;
    mx_remote_t *remote;
    char url[MX_REDIS_URL_MAX + 1];
    char cluster[64];
    char name[64];
    uint64_t node_id;
    uint64_t started_ms; /* unix ms */
    char nng[128], http[64], admin[128], version[32];
    char members_key[160], node_prefix[160], node_key[240], chan[160];
    uint32_t refresh_ms, ttl_ms, cmd_timeout_ms;
    struct {
        mx_registry_event_fn fn;
        void *ctx;
    } listeners[MX_REGISTRY_MAX_HOOKS];
    struct {
        mx_registry_tick_fn fn;
        void *ctx;
    } ticks[MX_REGISTRY_MAX_HOOKS];
    int nlisteners, nticks;

    /* registry thread only */
    pthread_t th;
    bool started;
    uv_loop_t loop;
    uv_async_t wake;
    uv_timer_t tick;
    mx_redis_t *rc, *sub;
    mx_redis_script_t *s_refresh, *s_leave;
    bool inflight, again, leaving, closing;
    int closes_pending;
    struct peer peers[MX_REGISTRY_MAX_MEMBERS];
    uint32_t npeers;
    struct mx_member scratch[MX_REGISTRY_MAX_MEMBERS];

    /* guarded by mu */
    pthread_mutex_t mu;
    struct call calls[MX_REGISTRY_CALLS];
    uint32_t ncalls;
    bool stopping;
    char state[16];
    struct mx_member members[MX_REGISTRY_MAX_MEMBERS];
    uint32_t nmembers;
    int64_t read_at_ms; /* monotonic ms of the last successful read */
};

/* refresh: KEYS members, node key; ARGV name, record, ttl, node prefix,
 * channel. Returns {record1, pttl1, record2, pttl2, ...} of live members. */
static const char LUA_REFRESH[] = "local existed = redis.call('EXISTS', KEYS[2])\n"
                                  "local old = redis.call('HGET', KEYS[1], ARGV[1])\n"
                                  "redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])\n"
                                  "redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])\n"
                                  "local changed = existed == 0 or old ~= ARGV[2]\n"
                                  "local all = redis.call('HGETALL', KEYS[1])\n"
                                  "local out = {}\n"
                                  "for i = 1, #all, 2 do\n"
                                  "  local t = redis.call('PTTL', ARGV[4] .. all[i])\n"
                                  "  if t > 0 or t == -1 then\n"
                                  "    out[#out + 1] = all[i + 1]\n"
                                  "    out[#out + 1] = t\n"
                                  "  else\n"
                                  "    redis.call('HDEL', KEYS[1], all[i])\n"
                                  "    changed = true\n"
                                  "  end\n"
                                  "end\n"
                                  "if changed then redis.call('PUBLISH', ARGV[5], 'members') end\n"
                                  "return out\n";

/* leave: KEYS members, node key; ARGV name, channel, "id":"<hex>". Only
 * our own record goes (a node restarted under the same name keeps its). */
static const char LUA_LEAVE[] =
    "local cur = redis.call('GET', KEYS[2])\n"
    "if cur and string.find(cur, ARGV[3], 1, true) then redis.call('DEL', KEYS[2]) end\n"
    "local h = redis.call('HGET', KEYS[1], ARGV[1])\n"
    "if h and string.find(h, ARGV[3], 1, true) then redis.call('HDEL', KEYS[1], ARGV[1]) end\n"
    "redis.call('PUBLISH', ARGV[2], 'members')\n"
    "return 1\n";

static bool clean_text(const char *s)
{
    for (; *s; s++)
        if (*s == '"' || *s == '\\' || (unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
            return false;
    return true;
}

static void copy(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "");
}

int mx_registry_new(mx_system_t *sys, const struct mx_registry_opts *o, mx_registry_t **out)
{
    if (!sys || !o || !o->redis_url || !o->cluster || !out)
        return MX_EINVAL;
    if (!mx_redis_url_valid(o->redis_url))
        return MX_EINVAL;
    uint32_t refresh = o->refresh_ms ? o->refresh_ms : 1000;
    uint32_t ttl = o->ttl_ms ? o->ttl_ms : 5000;
    const char *name = mx_system_node_name(sys);
    if (ttl <= refresh || !o->cluster[0] || strlen(o->cluster) >= 64 || !name || !name[0] ||
        strlen(name) >= 64 || !clean_text(o->cluster) || !clean_text(name) ||
        (o->nng_url && (!clean_text(o->nng_url) || strlen(o->nng_url) >= 128)) ||
        (o->http_addr && (!clean_text(o->http_addr) || strlen(o->http_addr) >= 64)) ||
        (o->admin_url && (!clean_text(o->admin_url) || strlen(o->admin_url) >= 128)) ||
        (o->version && !clean_text(o->version)))
        return MX_EINVAL;
    struct mx_registry *r = calloc(1, sizeof *r);
    if (!r) {
        fprintf(stderr, "mx_registry: out of memory\n");
        abort();
    }
    r->sys = sys;
    r->remote = o->remote;
    copy(r->url, sizeof r->url, o->redis_url);
    copy(r->cluster, sizeof r->cluster, o->cluster);
    copy(r->name, sizeof r->name, name);
    r->node_id = mx_system_node_id(sys);
    r->started_ms = mx_unix_ms();
    copy(r->nng, sizeof r->nng, o->nng_url);
    copy(r->http, sizeof r->http, o->http_addr);
    copy(r->admin, sizeof r->admin, o->admin_url);
    copy(r->version, sizeof r->version, o->version ? o->version : "");
    snprintf(r->members_key, sizeof r->members_key, "mx:{%s}:members", r->cluster);
    snprintf(r->node_prefix, sizeof r->node_prefix, "mx:{%s}:node:", r->cluster);
    snprintf(r->node_key, sizeof r->node_key, "%s%s", r->node_prefix, r->name);
    snprintf(r->chan, sizeof r->chan, "mx:{%s}:events", r->cluster);
    r->refresh_ms = refresh;
    r->ttl_ms = ttl;
    r->cmd_timeout_ms = o->cmd_timeout_ms ? o->cmd_timeout_ms : (refresh < 1000 ? refresh : 1000);
    pthread_mutex_init(&r->mu, NULL);
    copy(r->state, sizeof r->state, "joining");
    *out = r;
    return 0;
}

int mx_registry_listen(mx_registry_t *r, mx_registry_event_fn fn, void *ctx)
{
    if (r->nlisteners >= MX_REGISTRY_MAX_HOOKS)
        return MX_ELIMIT;
    r->listeners[r->nlisteners].fn = fn;
    r->listeners[r->nlisteners++].ctx = ctx;
    return 0;
}

void mx_registry_unlisten(mx_registry_t *r, mx_registry_event_fn fn, void *ctx)
{
    for (int i = 0; i < r->nlisteners; i++)
        if (r->listeners[i].fn == fn && r->listeners[i].ctx == ctx) {
            r->listeners[i] = r->listeners[--r->nlisteners];
            return;
        }
}

int mx_registry_on_tick(mx_registry_t *r, mx_registry_tick_fn fn, void *ctx)
{
    if (r->nticks >= MX_REGISTRY_MAX_HOOKS)
        return MX_ELIMIT;
    r->ticks[r->nticks].fn = fn;
    r->ticks[r->nticks++].ctx = ctx;
    return 0;
}

/* ---- parsing the records we wrote (flat JSON, no escapes: clean_text) ---- */

static bool jstr(const char *js, size_t n, const char *key, char *out, size_t cap)
{
    char pat[32];
    int pl = snprintf(pat, sizeof pat, "\"%s\":\"", key);
    const char *k = memmem(js, n, pat, (size_t)pl);
    if (!k)
        return false;
    const char *p = k + pl, *end = js + n;
    const char *q = memchr(p, '"', (size_t)(end - p));
    if (!q || (size_t)(q - p) >= cap)
        return false;
    memcpy(out, p, (size_t)(q - p));
    out[q - p] = '\0';
    return true;
}

static void record_json(mx_registry_t *r, char *out, size_t cap)
{
    char state[16];
    pthread_mutex_lock(&r->mu);
    copy(state, sizeof state, r->state);
    pthread_mutex_unlock(&r->mu);
    snprintf(out, cap,
             "{\"name\":\"%s\",\"id\":\"%016llx\",\"state\":\"%s\",\"nng\":\"%s\",\"http\":\"%s\","
             "\"admin\":\"%s\",\"version\":\"%s\",\"started\":\"%llu\"}",
             r->name, (unsigned long long)r->node_id, state, r->nng, r->http, r->admin, r->version,
             (unsigned long long)r->started_ms);
}

/* ---- peers ---- */

static void sync_peers(mx_registry_t *r, const struct mx_member *m, uint32_t n)
{
    if (!r->remote)
        return;
    /* remove peers that are no longer members (or changed address) */
    for (uint32_t i = 0; i < r->npeers;) {
        bool live = false;
        for (uint32_t j = 0; j < n && !live; j++)
            live = m[j].node_id == r->peers[i].id && !strcmp(m[j].nng, r->peers[i].url);
        if (!live) {
            MX_INFO("cluster: peer %016llx (%s) is gone", (unsigned long long)r->peers[i].id,
                    r->peers[i].url);
            mx_remote_remove_peer(r->remote, r->peers[i].id);
            r->peers[i] = r->peers[--r->npeers];
        } else {
            i++;
        }
    }
    for (uint32_t j = 0; j < n; j++) {
        if (m[j].node_id == r->node_id || m[j].node_id == 0 || !m[j].nng[0])
            continue;
        bool known = false;
        for (uint32_t i = 0; i < r->npeers && !known; i++)
            known = r->peers[i].id == m[j].node_id;
        if (known || r->npeers >= MX_REGISTRY_MAX_MEMBERS)
            continue;
        int rc = mx_remote_add_peer(r->remote, m[j].node_id, m[j].nng);
        if (rc != 0) {
            MX_WARN("cluster: cannot add peer %s (%s): %s", m[j].name, m[j].nng, mx_strerror(rc));
            continue;
        }
        MX_INFO("cluster: peer %s %016llx at %s", m[j].name, (unsigned long long)m[j].node_id,
                m[j].nng);
        r->peers[r->npeers].id = m[j].node_id;
        copy(r->peers[r->npeers].url, sizeof r->peers[r->npeers].url, m[j].nng);
        r->npeers++;
    }
}

/* ---- heartbeat ---- */

static void refresh(mx_registry_t *r);

static void on_refresh(mx_redis_t *rc, int status, const redisReply *rep, void *arg)
{
    mx_registry_t *r = arg;
    r->inflight = false;
    if (status == 0 && rep->type == REDIS_REPLY_ARRAY) {
        struct mx_member *m = r->scratch;
        uint32_t n = 0;
        for (size_t i = 0; i + 1 < rep->elements && n < MX_REGISTRY_MAX_MEMBERS; i += 2) {
            const redisReply *js = rep->element[i], *ttl = rep->element[i + 1];
            if (js->type != REDIS_REPLY_STRING || ttl->type != REDIS_REPLY_INTEGER)
                continue;
            struct mx_member *x = &m[n];
            memset(x, 0, sizeof *x);
            char id[32] = "";
            if (!jstr(js->str, js->len, "name", x->name, sizeof x->name) ||
                !jstr(js->str, js->len, "id", id, sizeof id))
                continue;
            x->node_id = strtoull(id, NULL, 16);
            jstr(js->str, js->len, "state", x->state, sizeof x->state);
            jstr(js->str, js->len, "nng", x->nng, sizeof x->nng);
            jstr(js->str, js->len, "admin", x->admin, sizeof x->admin);
            jstr(js->str, js->len, "http", x->http, sizeof x->http);
            x->age_ms = ttl->integer > 0 ? (int64_t)r->ttl_ms - ttl->integer : 0;
            if (x->age_ms < 0)
                x->age_ms = 0;
            n++;
        }
        sync_peers(r, m, n);
        pthread_mutex_lock(&r->mu);
        memcpy(r->members, m, n * sizeof m[0]);
        r->nmembers = n;
        r->read_at_ms = mx_now_ms();
        if (!strcmp(r->state, "joining")) {
            copy(r->state, sizeof r->state, "up");
            r->again = true; /* advertise "up" at once */
        }
        pthread_mutex_unlock(&r->mu);
    } else if (status != MX_ESTOPPED) {
        MX_DEBUG("cluster: refresh failed: %s", mx_strerror(status));
        /* Redis unreachable: after our own TTL the others consider us
         * down, so we consider them down as well (symmetric). */
        pthread_mutex_lock(&r->mu);
        bool expired = r->read_at_ms && mx_now_ms() - r->read_at_ms > (int64_t)r->ttl_ms;
        if (expired)
            r->nmembers = 0;
        pthread_mutex_unlock(&r->mu);
        if (expired)
            sync_peers(r, NULL, 0);
    }
    if (r->again && !r->leaving) {
        r->again = false;
        refresh(r);
    }
}

static void refresh(mx_registry_t *r)
{
    if (r->inflight) {
        r->again = true;
        return;
    }
    char rec[1024], ttl[16];
    record_json(r, rec, sizeof rec);
    snprintf(ttl, sizeof ttl, "%u", r->ttl_ms);
    const char *argv[] = {r->members_key, r->node_key, r->name, rec, ttl, r->node_prefix, r->chan};
    if (mx_redis_eval(r->rc, r->s_refresh, on_refresh, r, 2, 7, argv, NULL) == 0)
        r->inflight = true;
}

static void on_tick(uv_timer_t *t)
{
    mx_registry_t *r = t->data;
    refresh(r);
    for (int i = 0; i < r->nticks; i++)
        r->ticks[i].fn(r->ticks[i].ctx);
}

static void on_msg(mx_redis_t *s, const char *ch, const char *data, size_t len, const char *pat,
                   void *arg)
{
    mx_registry_t *r = arg;
    if (len == 7 && !memcmp(data, "members", 7) && !r->leaving)
        refresh(r);
    for (int i = 0; i < r->nlisteners; i++)
        r->listeners[i].fn(r->listeners[i].ctx, data, len);
}

static void on_state(mx_redis_t *rc, bool up, void *arg)
{
    mx_registry_t *r = arg;
    MX_INFO("cluster: redis %s", up ? "up" : "down");
    if (up && !r->leaving)
        refresh(r);
}

/* ---- shutdown ---- */

static void handle_closed(uv_handle_t *h)
{
    mx_registry_t *r = h->data;
    r->closes_pending--;
}

static void redis_closed(mx_redis_t *c, void *arg)
{
    mx_registry_t *r = arg;
    r->closes_pending--;
}

static void close_all(mx_registry_t *r)
{
    if (r->closing)
        return;
    r->closing = true;
    r->closes_pending = 4;
    uv_timer_stop(&r->tick);
    uv_close((uv_handle_t *)&r->tick, handle_closed);
    uv_close((uv_handle_t *)&r->wake, handle_closed);
    mx_redis_close(r->rc, redis_closed, r);
    mx_redis_close(r->sub, redis_closed, r);
}

static void on_left(mx_redis_t *rc, int status, const redisReply *rep, void *arg)
{
    mx_registry_t *r = arg;
    if (status != 0)
        MX_WARN("cluster: could not delete our record: %s (it expires by itself)",
                mx_strerror(status));
    close_all(r);
}

static void run_calls(mx_registry_t *r)
{
    struct call batch[MX_REGISTRY_CALLS];
    pthread_mutex_lock(&r->mu);
    uint32_t n = r->ncalls;
    memcpy(batch, r->calls, n * sizeof batch[0]);
    r->ncalls = 0;
    bool stopping = r->stopping;
    pthread_mutex_unlock(&r->mu);
    for (uint32_t i = 0; i < n; i++)
        batch[i].fn(batch[i].arg);
    if (stopping && !r->leaving) {
        r->leaving = true;
        char id[40];
        snprintf(id, sizeof id, "\"id\":\"%016llx\"", (unsigned long long)r->node_id);
        const char *argv[] = {r->members_key, r->node_key, r->name, r->chan, id};
        if (mx_redis_eval(r->rc, r->s_leave, on_left, r, 2, 5, argv, NULL) != 0)
            close_all(r);
    }
}

static void on_wake(uv_async_t *a)
{
    run_calls(a->data);
}

struct start_sync {
    mx_registry_t *r;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done; /* 0 waiting, 1 ok, -1 failed */
};

static void *reg_main(void *arg)
{
    struct start_sync *ss = arg;
    mx_registry_t *r = ss->r;
    int ok = -1;
    if (uv_loop_init(&r->loop) != 0)
        goto report;
    struct mx_redis_opts ro = {.name = "registry",
                               .timeout_ms = r->cmd_timeout_ms,
                               .connect_timeout_ms = r->cmd_timeout_ms,
                               .backoff_max_ms = 500,
                               .stall_ms = r->ttl_ms,
                               .on_state = on_state,
                               .state_arg = r};
    struct mx_redis_opts so = ro;
    so.name = "registry-sub";
    so.on_state = NULL;
    uv_async_init(&r->loop, &r->wake, on_wake);
    r->wake.data = r;
    uv_timer_init(&r->loop, &r->tick);
    r->tick.data = r;
    if (mx_redis_open(&r->loop, r->url, &ro, &r->rc) != 0 ||
        mx_redis_open_subscriber(&r->loop, r->url, &so, on_msg, r, &r->sub) != 0 ||
        mx_redis_script(r->rc, LUA_REFRESH, &r->s_refresh) != 0 ||
        mx_redis_script(r->rc, LUA_LEAVE, &r->s_leave) != 0 ||
        mx_redis_subscribe(r->sub, r->chan, false) != 0) {
        /* cannot happen with a URL validated in new; no cleanup path needed
         * beyond reporting the failure */
        goto report;
    }
    uv_timer_start(&r->tick, on_tick, r->refresh_ms, r->refresh_ms);
    ok = 1;
report:
    pthread_mutex_lock(&ss->mu);
    ss->done = ok;
    pthread_cond_signal(&ss->cv);
    pthread_mutex_unlock(&ss->mu);
    if (ok != 1)
        return NULL;
    uv_run(&r->loop, UV_RUN_DEFAULT);
    while (r->closes_pending > 0)
        uv_run(&r->loop, UV_RUN_ONCE);
    uv_loop_close(&r->loop);
    return NULL;
}

int mx_registry_start(mx_registry_t *r)
{
    struct start_sync ss = {.r = r, .done = 0};
    pthread_mutex_init(&ss.mu, NULL);
    pthread_cond_init(&ss.cv, NULL);
    if (pthread_create(&r->th, NULL, reg_main, &ss) != 0)
        return MX_EIO;
    pthread_mutex_lock(&ss.mu);
    while (ss.done == 0)
        pthread_cond_wait(&ss.cv, &ss.mu);
    pthread_mutex_unlock(&ss.mu);
    pthread_cond_destroy(&ss.cv);
    pthread_mutex_destroy(&ss.mu);
    if (ss.done != 1) {
        pthread_join(r->th, NULL);
        return MX_EIO;
    }
    r->started = true;
    MX_INFO("cluster: registry for %s in cluster %s (refresh %u ms, ttl %u ms)", r->name,
            r->cluster, r->refresh_ms, r->ttl_ms);
    return 0;
}

static void call_refresh(void *arg)
{
    refresh(arg);
}

int mx_registry_set_state(mx_registry_t *r, const char *state)
{
    if (strcmp(state, "joining") && strcmp(state, "up") && strcmp(state, "draining"))
        return MX_EINVAL;
    pthread_mutex_lock(&r->mu);
    copy(r->state, sizeof r->state, state);
    pthread_mutex_unlock(&r->mu);
    if (r->started)
        mx_registry_call(r, call_refresh, r);
    return 0;
}

int mx_registry_call(mx_registry_t *r, mx_registry_call_fn fn, void *arg)
{
    pthread_mutex_lock(&r->mu);
    if (r->stopping || !r->started) {
        pthread_mutex_unlock(&r->mu);
        return MX_ESTOPPED;
    }
    if (r->ncalls >= MX_REGISTRY_CALLS) {
        pthread_mutex_unlock(&r->mu);
        return MX_EFULL;
    }
    r->calls[r->ncalls].fn = fn;
    r->calls[r->ncalls++].arg = arg;
    pthread_mutex_unlock(&r->mu);
    uv_async_send(&r->wake);
    return 0;
}

void mx_registry_stop(mx_registry_t *r)
{
    if (!r)
        return;
    if (r->started) {
        pthread_mutex_lock(&r->mu);
        r->stopping = true;
        pthread_mutex_unlock(&r->mu);
        uv_async_send(&r->wake);
        pthread_join(r->th, NULL);
    }
    pthread_mutex_destroy(&r->mu);
    free(r);
}

uint32_t mx_registry_members(struct mx_member *out, uint32_t max, void *ctx)
{
    mx_registry_t *r = ctx;
    pthread_mutex_lock(&r->mu);
    uint32_t n = r->nmembers < max ? r->nmembers : max;
    memcpy(out, r->members, n * sizeof out[0]);
    int64_t since = r->read_at_ms ? mx_now_ms() - r->read_at_ms : 0;
    pthread_mutex_unlock(&r->mu);
    for (uint32_t i = 0; i < n; i++)
        out[i].age_ms += since;
    return n;
}

int mx_registry_node_of(mx_registry_t *r, const char *name, uint64_t *node_id)
{
    int rc = MX_ENOTFOUND;
    pthread_mutex_lock(&r->mu);
    for (uint32_t i = 0; i < r->nmembers; i++)
        if (!strcmp(r->members[i].name, name)) {
            *node_id = r->members[i].node_id;
            rc = 0;
            break;
        }
    pthread_mutex_unlock(&r->mu);
    return rc;
}

mx_redis_t *mx_registry_redis(mx_registry_t *r)
{
    return r->rc;
}

struct uv_loop_s *mx_registry_loop(mx_registry_t *r)
{
    return &r->loop;
}

int mx_registry_key(const mx_registry_t *r, const char *suffix, char *out, size_t cap)
{
    int n = snprintf(out, cap, "mx:{%s}:%s", r->cluster, suffix);
    return n < 0 || (size_t)n >= cap ? MX_ETOOBIG : 0;
}

const char *mx_registry_channel(const mx_registry_t *r)
{
    return r->chan;
}

mx_system_t *mx_registry_system(const mx_registry_t *r)
{
    return r->sys;
}

struct mx_remote *mx_registry_remote(const mx_registry_t *r)
{
    return r->remote;
}

uint32_t mx_registry_cmd_timeout(const mx_registry_t *r)
{
    return r->cmd_timeout_ms;
}

bool mx_registry_stopping(const mx_registry_t *r)
{
    return r->leaving;
}
