/* app_routes.c - the MapleExpectation routes on the http-acceptor.
 *
 * A character or expectation request becomes an exp_get request to the
 * cache shard of its IGN; the acceptor keeps the HTTP request in a bounded
 * per-acceptor table keyed by the request's correlation id until the reply
 * (or the request timeout) arrives, then writes the stored document bytes
 * (gzip when accepted, 304 on a matching ETag) or the error body.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "app_int.h"
#include "mx_api.h"
#include "mx_err.h"
#include "mx_fetch.h"
#include "mx_likes.h"
#include "mx_log.h"
#include "mx_metrics.h"
#include "mx_proto.h"
#include "mx_cache.h"

#define IGN_MAX_BYTES 64

/* ---- pending table ---- */

static uint32_t slot_of(const struct acc *a, uint64_t corr)
{
    return (uint32_t)((corr * 0x9E3779B97F4A7C15ull) >> 32) & (a->cap - 1);
}

bool mx__app_pend_put(struct acc *a, uint64_t corr, mx_http_req_t *r, uint8_t kind, void *ctx)
{
    if (a->n >= a->max)
        return false;
    uint32_t i = slot_of(a, corr);
    while (a->tab[i].corr)
        i = (i + 1) & (a->cap - 1);
    a->tab[i] = (struct pend){corr, r, kind, ctx};
    a->n++;
    return true;
}

static bool pend_take(struct acc *a, uint64_t corr, struct pend *out)
{
    uint32_t i = slot_of(a, corr);
    while (a->tab[i].corr && a->tab[i].corr != corr)
        i = (i + 1) & (a->cap - 1);
    if (!a->tab[i].corr)
        return false;
    *out = a->tab[i];
    a->tab[i].corr = 0;
    a->n--;
    /* backward-shift deletion keeps every probe chain unbroken */
    uint32_t j = i;
    for (;;) {
        j = (j + 1) & (a->cap - 1);
        if (!a->tab[j].corr)
            break;
        uint32_t home = slot_of(a, a->tab[j].corr);
        /* move j into the hole i unless home lies cyclically in (i, j] */
        bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!stays) {
            a->tab[i] = a->tab[j];
            a->tab[j].corr = 0;
            i = j;
        }
    }
    return true;
}

/* ---- helpers ---- */

static void json_ok(mx_http_req_t *r, const char *json)
{
    mx_http_respond(r, 200, "application/json", json, strlen(json));
}

/* "true"/"false" (any case), absent = def; anything else is an error. */
static int query_bool(mx_http_req_t *r, const char *name, bool def, bool *out)
{
    const char *v = mx_http_req_query(r, name);
    if (!v) {
        *out = def;
        return 0;
    }
    if (strcasecmp(v, "true") == 0 || strcmp(v, "1") == 0) {
        *out = true;
        return 0;
    }
    if (strcasecmp(v, "false") == 0 || strcmp(v, "0") == 0) {
        *out = false;
        return 0;
    }
    return MX_EINVAL;
}

void mx__app_ign_trim(const char **ign, size_t *len)
{
    const char *p = *ign ? *ign : "";
    size_t n = *ign ? strlen(p) : 0;
    while (n && (p[0] == ' ' || p[0] == '\t')) {
        p++;
        n--;
    }
    while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
        n--;
    *ign = p;
    *len = n;
}

static bool valid_ign(mx_http_req_t *r, const char *ign, size_t len)
{
    if (len == 0 || len > IGN_MAX_BYTES || memchr(ign, '|', len) || memchr(ign, '/', len)) {
        mx_http_error(r, 400, "C001", "Invalid character name");
        return false;
    }
    return true;
}

/* Send q to the cache shard of its name, waiting at most timeout_ms; the
 * reply is dispatched by kind with ctx. Returns MX_HTTP_PENDING, or
 * MX_HTTP_DONE after answering. */
static int send_exp_get(mx_http_req_t *r, struct acc *a, const struct mx_m_exp_get *q, uint8_t kind,
                        void *ctx, uint32_t timeout_ms)
{
    if (a->nshards == 0) {
        mx_http_add_header(r, "Retry-After", "5");
        mx_http_error(r, 503, "S007", "Expectation service not running on this node");
        return MX_HTTP_DONE;
    }
    if (a->n >= a->max) {
        MX_METRIC_INC(&a->m, pending_refused);
        mx_http_add_header(r, "Retry-After", "1");
        mx_http_error(r, 503, "S007", "Too many requests in progress on this node");
        return MX_HTTP_DONE;
    }
    struct mx_msg *m;
    if (mx_msg_encode(MX_T_exp_get, q, &m) != 0) {
        mx_http_error(r, 400, "C001", "Invalid character name");
        return MX_HTTP_DONE;
    }
    struct mx_addr to = a->shards[mx_svc_shard(q->ign.ptr, q->ign.len, a->nshards)];
    uint64_t corr;
    if (mx_http_request(r, to, m, timeout_ms, &corr) != 0) {
        mx_msg_free(m);
        mx_http_add_header(r, "Retry-After", "1");
        mx_http_error(r, 503, "S007", "Expectation service busy");
        return MX_HTTP_DONE;
    }
    mx__app_pend_put(a, corr, r, kind, ctx); /* cannot fail: checked a->n above */
    return MX_HTTP_PENDING;
}

int mx__app_ask_doc(mx_http_req_t *r, struct acc *a, uint32_t what, uint32_t preset, bool force,
                    uint8_t kind, uint32_t timeout_ms)
{
    const char *ign = mx_http_req_param(r, "ign");
    size_t len;
    mx__app_ign_trim(&ign, &len); /* the seed trims the name */
    if (!valid_ign(r, ign, len))
        return MX_HTTP_DONE;
    struct mx_m_exp_get q = {
        .what = what, .ign = {ign, (uint32_t)len}, .preset = preset, .force = force};
    if (query_bool(r, "starCatch", true, &q.star_catch) ||
        query_bool(r, "discount", true, &q.discount) || query_bool(r, "sunday", true, &q.sunday) ||
        (what == MX_SVC_EXPECTATION && !force && query_bool(r, "force", false, &q.force))) {
        mx_http_error(r, 400, "C001", "Boolean query parameters take true or false");
        return MX_HTTP_DONE;
    }
    return send_exp_get(r, a, &q, kind, NULL, timeout_ms ? timeout_ms : a->app->o.cache_timeout_ms);
}

static int ask_cache_now(mx_http_req_t *r, struct acc *a, uint32_t what, uint32_t preset,
                         bool force)
{
    /* a V1 record is rendered here, with the live like count when the
     * like-buffers run */
    uint8_t kind = what == MX_SVC_CHARACTER ? PEND_V1 : PEND_CACHE;
    return mx__app_ask_doc(r, a, what, preset, force, kind, 0);
}

int mx__app_ask_character(struct acc *a, mx_http_req_t *r, const char *ign, uint8_t kind, void *ctx)
{
    size_t len;
    mx__app_ign_trim(&ign, &len);
    if (!valid_ign(r, ign, len))
        return MX_HTTP_DONE;
    struct mx_m_exp_get q = {.what = MX_SVC_CHARACTER,
                             .ign = {ign, (uint32_t)len},
                             .star_catch = true,
                             .discount = true,
                             .sunday = true};
    return send_exp_get(r, a, &q, kind, ctx, a->app->o.cache_timeout_ms);
}

/* The route's cache request, after the rate limit: the route's flags carry
 * what to ask (see routes[]). */
static int cache_next(mx_http_req_t *r, struct acc *a)
{
    const struct mx_http_route *rt = mx__app_route(r);
    uint32_t what = rt->flags & 0xff;
    bool force = (rt->flags >> 16) & 1;
    return ask_cache_now(r, a, what, 0, force);
}

/* A recalculation (recalculate, ?force=true) costs an upstream fetch and a
 * calculation: it takes this many tokens of the client's buckets (10 per
 * burst of 100, then one per 6 s), beside the cluster-wide coalescing. */
#define FORCE_COST 10

static int ask_cache(mx_http_req_t *r, void *st)
{
    const char *fq = mx_http_req_query(r, "force");
    bool force = (mx_http_req_route(r)->flags >> 16 & 1) ||
                 (fq && (strcasecmp(fq, "true") == 0 || strcmp(fq, "1") == 0));
    return mx__app_guard_cost(r, st, cache_next, force ? FORCE_COST : 1);
}

/* ---- routes ---- */

static int h_readiness(mx_http_req_t *r, void *st)
{
    struct acc *a = st;
    /* acquire: pairs with the release store in mx_app_drain */
    if (atomic_load_explicit(&a->app->draining, memory_order_acquire)) {
        const char *b = "{\"status\":\"OUT_OF_SERVICE\"}";
        mx_http_respond(r, 503, "application/json", b, strlen(b));
    } else {
        json_ok(r, "{\"status\":\"UP\"}");
    }
    return MX_HTTP_DONE;
}

/* Prometheus text: only for loopback and private networks, judged on the
 * client's address (behind a trusted proxy, the forwarded one). */
static bool private_client(struct acc *a, mx_http_req_t *r)
{
    char ip[80];
    uint8_t b[16] = {0};
    static const uint8_t loop[16] = {[15] = 1}, v4map[12] = {[10] = 0xff, [11] = 0xff};
    mx__app_client_ip(a, r, ip, sizeof ip);
    if (inet_pton(AF_INET, ip, b + 12) == 1)
        memcpy(b, v4map, 12);
    else if (inet_pton(AF_INET6, ip, b) != 1)
        return false;
    if (memcmp(b, v4map, 12) != 0)
        return memcmp(b, loop, 16) == 0 || (b[0] & 0xfe) == 0xfc;
    return b[12] == 127 || b[12] == 10 || (b[12] == 172 && (b[13] & 0xf0) == 16) ||
           (b[12] == 192 && b[13] == 168);
}

/* MX_METRICS_TOKEN set: the bearer token must match (constant time). */
static bool metrics_token_ok(struct acc *a, mx_http_req_t *r)
{
    const char *want = a->app->o.metrics_token;
    const char *h = mx_http_req_header(r, "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return false;
    h += 7;
    size_t wl = strlen(want), hl = strlen(h);
    unsigned char diff = wl != hl;
    for (size_t i = 0; i < wl; i++)
        diff |= (unsigned char)(want[i] ^ (i < hl ? h[i] : 0));
    return diff == 0;
}

struct prom {
    char *buf;
    size_t len, cap;
};

static void pf(struct prom *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void pf(struct prom *p, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int n = vsnprintf(p->buf + p->len, p->cap - p->len, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if (p->len + (size_t)n < p->cap) {
            p->len += (size_t)n;
            return;
        }
        if (p->cap >= (1u << 20))
            return; /* bounded: metrics never exceed 1 MiB */
        p->cap *= 2;
        p->buf = realloc(p->buf, p->cap);
        if (!p->buf)
            abort();
    }
}

struct type_sum {
    const char *type;
    int64_t depth;
    uint64_t handled, dropped, refused;
    uint32_t restarts;
};

static bool sum_actor(const struct mx_actor_stats *s, void *ctx)
{
    struct type_sum *t = ctx;
    for (int i = 0; i < 32; i++) {
        if (!t[i].type || strcmp(t[i].type, s->type) == 0) {
            t[i].type = s->type;
            t[i].depth += s->depth;
            t[i].handled += s->handled;
            t[i].dropped += s->dropped;
            t[i].refused += s->refused;
            t[i].restarts += s->restarts;
            return true;
        }
    }
    return true;
}

static int h_metrics(mx_http_req_t *r, void *st)
{
    struct acc *a = st;
    if (a->app->o.metrics_token && a->app->o.metrics_token[0]) {
        if (!metrics_token_ok(a, r)) {
            mx_http_add_header(r, "WWW-Authenticate", "Bearer");
            mx_http_error(r, 401, "A001", "Metrics need the bearer token (MX_METRICS_TOKEN)");
            return MX_HTTP_DONE;
        }
    } else if (!private_client(a, r)) {
        mx_http_error(r, 403, "FORBIDDEN",
                      "Metrics are served to loopback and private networks only");
        return MX_HTTP_DONE;
    }
    struct prom p = {.cap = 16384};
    p.buf = malloc(p.cap);
    if (!p.buf)
        abort();
    const char *node = a->app->o.node_name ? a->app->o.node_name : "";
    struct mx_http_stats hs;
    memset(&hs, 0, sizeof hs);
    if (a->app->http) /* NULL only while mx_app_start is returning */
        mx_http_stats(a->app->http, &hs);
    /* the acceptors' counters are in mx_metrics_prom; the memory budget is
     * the server's, shared by them */
    pf(&p, "# TYPE mx_http_buffered_bytes gauge\nmx_http_buffered_bytes{node=\"%s\"} %llu\n", node,
       (unsigned long long)hs.buffered_bytes);

    struct mx_svc_stats ss;
    mx_svc_stats(&ss);
    /* mx_cache_total{event} and mx_cache_l1_entries/bytes come per shard from
     * the registry (MX_CACHE_METRICS); the hit ratio is derived here */
    double hit =
        ss.l1_hits + ss.l1_misses ? (double)ss.l1_hits / (double)(ss.l1_hits + ss.l1_misses) : 0;
    pf(&p, "# TYPE mx_cache_l1_hit_ratio gauge\nmx_cache_l1_hit_ratio{node=\"%s\"} %.4f\n", node,
       hit);

    /* dead letters: the runtime's registered set (mx_actor.c) */
    struct type_sum types[32];
    memset(types, 0, sizeof types);
    mx_actors_foreach(a->app->sys, sum_actor, types);
    pf(&p, "# TYPE mx_actor_mailbox_depth gauge\n");
    for (int i = 0; i < 32 && types[i].type; i++)
        pf(&p, "mx_actor_mailbox_depth{node=\"%s\",type=\"%s\"} %lld\n", node, types[i].type,
           (long long)types[i].depth);
    pf(&p, "# TYPE mx_actor_handled_total counter\n");
    for (int i = 0; i < 32 && types[i].type; i++)
        pf(&p, "mx_actor_handled_total{node=\"%s\",type=\"%s\"} %llu\n", node, types[i].type,
           (unsigned long long)types[i].handled);
    pf(&p, "# TYPE mx_actor_restarts_total counter\n");
    for (int i = 0; i < 32 && types[i].type; i++)
        pf(&p, "mx_actor_restarts_total{node=\"%s\",type=\"%s\"} %u\n", node, types[i].type,
           types[i].restarts);
    /* the API's counters are the registered ratelimit, auth and app sets */
    if (a->nlikes) {
        struct mx_likes_stats ls;
        mx_likes_stats(&ls);
        /* the counters are the registered likes and like_sync sets */
        pf(&p, "# TYPE mx_like_sync_lag_ms histogram\n");
        uint64_t cum = 0;
        for (int i = 0; i < 8; i++) {
            cum += ls.sync_lag_buckets[i];
            if (i < 7)
                pf(&p, "mx_like_sync_lag_ms_bucket{node=\"%s\",le=\"%u\"} %llu\n", node,
                   mx_likes_lag_bounds_ms[i], (unsigned long long)cum);
            else
                pf(&p, "mx_like_sync_lag_ms_bucket{node=\"%s\",le=\"+Inf\"} %llu\n", node,
                   (unsigned long long)cum);
        }
        pf(&p,
           "mx_like_sync_lag_ms_sum{node=\"%s\"} %llu\nmx_like_sync_lag_ms_count{node=\"%s\"} %llu\n",
           node, (unsigned long long)ls.sync_lag_sum_ms, node, (unsigned long long)cum);
    }
    if (a->redis) {
        struct mx_redis_stats rs;
        mx_redis_stats(a->redis, &rs);
        pf(&p,
           "# TYPE mx_redis_connected gauge\nmx_redis_connected{node=\"%s\",client=\"http\"} %d\n",
           node, rs.connected ? 1 : 0);
        pf(&p, "# TYPE mx_redis_total counter\n");
        pf(&p, "mx_redis_total{node=\"%s\",client=\"http\",event=\"command\"} %llu\n", node,
           (unsigned long long)rs.commands);
        pf(&p, "mx_redis_total{node=\"%s\",client=\"http\",event=\"timeout\"} %llu\n", node,
           (unsigned long long)rs.timeouts);
        pf(&p, "mx_redis_total{node=\"%s\",client=\"http\",event=\"refused_down\"} %llu\n", node,
           (unsigned long long)rs.refused_down);
        pf(&p, "mx_redis_total{node=\"%s\",client=\"http\",event=\"reconnect\"} %llu\n", node,
           (unsigned long long)rs.connects);
        /* failover (docs/redis.md): every connection's view is in mxctl redis */
        pf(&p, "mx_redis_total{node=\"%s\",client=\"http\",event=\"failover\"} %llu\n", node,
           (unsigned long long)rs.failovers);
        pf(&p, "mx_redis_total{node=\"%s\",client=\"http\",event=\"readonly\"} %llu\n", node,
           (unsigned long long)rs.readonly);
        pf(&p,
           "# TYPE mx_redis_master gauge\nmx_redis_master{node=\"%s\",client=\"http\",addr=\"%s\"} 1\n",
           node, rs.master);
        pf(&p,
           "# TYPE mx_redis_reconnect_ms gauge\n"
           "mx_redis_reconnect_ms{node=\"%s\",client=\"http\",which=\"last\"} %llu\n"
           "mx_redis_reconnect_ms{node=\"%s\",client=\"http\",which=\"max\"} %llu\n",
           node, (unsigned long long)rs.reconnect_ms_last, node,
           (unsigned long long)rs.reconnect_ms_max);
    }
    { /* every actor instance's counter block (mx_metrics.h): generated from
       * the same table as mxctl stats */
        char *mt;
        size_t ml;
        if (mx_metrics_prom(node, 1u << 19, &mt, &ml) != 0)
            MX_WARN("metrics: the registry's text exceeds 512 KiB; families left out");
        pf(&p, "%.*s", (int)ml, mt);
        free(mt);
    }
    { /* outbox: the relay's lag percentile (app_outbox.c) */
        char ob[8192];
        size_t on = mx__app_outbox_prom(ob, sizeof ob, node);
        pf(&p, "%.*s", (int)on, ob);
    }
    mx_http_respond(r, 200, "text/plain; version=0.0.4", p.buf, p.len);
    free(p.buf);
    return MX_HTTP_DONE;
}

/* The app's routes. The http layer gets a copy whose handler is entry()
 * and whose flags are the index here (plus MX_HTTP_ROUTE_LIGHT, which the
 * http layer reads), followed by the catch-alls; entry()
 * adds the cross-cutting headers and calls the handler below.
 * cache routes' flags: what | force << 16; MX__APP_F_* on top. */
#define DOC MX__APP_F_DOC
static const struct mx_http_route routes[] = {
    {"GET", "/api/v1/characters/{ign}", ask_cache, MX_SVC_CHARACTER | DOC},
    {"GET", "/api/v4/characters/{ign}/expectation", ask_cache, MX_SVC_EXPECTATION | DOC},
    {"GET", "/api/v4/characters/{ign}/expectation/preset/{preset}", mx__app_preset, DOC},
    {"POST", "/api/v4/characters/{ign}/expectation/recalculate", ask_cache,
     MX_SVC_EXPECTATION | 1 << 16 | DOC},
    /* the seed's other versions (app_compat.c) */
    {"GET", "/api/v2/characters/{ign}/equipment", mx__app_equipment, 0},
    {"GET", "/api/v3/characters/{ign}/equipment", mx__app_equipment, 1 | DOC},
    {"GET", "/api/v2/characters/{ign}/expectation", mx__app_total, 0},
    {"GET", "/api/v3/characters/{ign}/expectation", mx__app_total, 0},
    {"GET", "/api/v5/characters/{ign}/expectation", mx__app_v5, DOC},
    {"POST", "/api/v5/characters/{ign}/expectation/recalculate", mx__app_v5, 1},
    {"POST", "/api/v2/characters/{ign}/like", mx__app_like_toggle, 0},
    {"GET", "/api/v2/characters/{ign}/like/status", mx__app_like_status, 0},
    {"POST", "/auth/login", mx__app_login, 0},
    {"POST", "/auth/refresh", mx__app_refresh, 0},
    {"DELETE", "/auth/logout", mx__app_logout, 0},
    {"GET", "/auth/me", mx__app_me, 0},
    /* outbox: coffee donations and the user's points (app_outbox.c) */
    {"POST", "/api/v2/donation/coffee", mx__app_donate, 0},
    {"GET", "/api/v2/donation/points", mx__app_points, 0},
    {"GET", "/api/admin/**", mx__app_admin, 0},
    {"POST", "/api/admin/**", mx__app_admin, 0},
    {"DELETE", "/api/admin/**", mx__app_admin, 0},
    {"GET", "/actuator", mx__app_links, 0},
    {"GET", "/actuator/health", mx__app_health, MX_HTTP_ROUTE_LIGHT},
    {"GET", "/actuator/health/liveness", mx__app_liveness, MX_HTTP_ROUTE_LIGHT},
    {"GET", "/actuator/health/readiness", h_readiness, MX_HTTP_ROUTE_LIGHT},
    {"GET", "/actuator/info", mx__app_info, 0},
    {"GET", "/actuator/prometheus", h_metrics, 0},
    {"GET", "/v3/api-docs", mx__app_api_docs, 0},
    {"GET", "/v3/api-docs.yaml", mx__app_api_docs, 1},
};
#define NROUTES (sizeof routes / sizeof *routes)
#undef DOC

/* Every other path, for every method: 404 or 405 (and OPTIONS) with the
 * same headers as any answer. */
static const struct mx_http_route catchall[] = {
    {"OPTIONS", "/**", mx__app_options, MX__APP_F_NO_CORS},
    {"GET", "/**", mx__app_not_found, 0},
    {"POST", "/**", mx__app_not_found, 0},
    {"PUT", "/**", mx__app_not_found, 0},
    {"PATCH", "/**", mx__app_not_found, 0},
    {"DELETE", "/**", mx__app_not_found, 0},
};
#define NCATCHALL (sizeof catchall / sizeof *catchall)

const struct mx_http_route *mx__app_route(const mx_http_req_t *r)
{
    uint32_t i = mx_http_req_route(r)->flags & ~MX_HTTP_ROUTE_LIGHT;
    return i < NROUTES ? &routes[i] : &catchall[i - NROUTES];
}

size_t mx__app_routes(const struct mx_http_route **out)
{
    *out = routes;
    return NROUTES;
}

static int entry(mx_http_req_t *r, void *st)
{
    const struct mx_http_route *rt = mx__app_route(r);
    if (!mx__app_xcut_begin(r, st, rt->flags))
        return MX_HTTP_DONE;
    return rt->fn(r, st);
}

/* ---- replies ---- */

bool mx__app_cache_ptr(struct acc *a, mx_http_req_t *r, struct mx_msg *m, const void **p,
                       bool *stale)
{
    if (m->env.type == MX_T_sys_timeout) {
        MX_METRIC_INC(&a->m, cache_timeouts);
        mx_http_add_header(r, "Retry-After", "5");
        mx_http_error(r, 503, "S007", "Timed out waiting for the expectation service");
        return false;
    }
    struct mx_m_exp_rep rep;
    if (m->env.type != MX_T_exp_rep || mx_msg_decode(m, &rep) != 0) {
        mx_http_error(r, 500, "S001", "Unreadable reply from the expectation service");
        return false;
    }
    if (rep.status != 0 || !m->ptr) {
        char msg[256], code[16];
        snprintf(msg, sizeof msg, "%.*s", (int)rep.message.len, rep.message.ptr);
        snprintf(code, sizeof code, "%.*s", (int)rep.code.len, rep.code.ptr);
        if (rep.retry_after_s) {
            char ra[24];
            snprintf(ra, sizeof ra, "%llu", (unsigned long long)rep.retry_after_s);
            mx_http_add_header(r, "Retry-After", ra);
        } else if (rep.http_status == 503) {
            mx_http_add_header(r, "Retry-After", "5");
        }
        int st = rep.http_status >= 400 && rep.http_status <= 599 ? (int)rep.http_status : 500;
        mx_http_error(r, st, code[0] ? code : "S001", msg[0] ? msg : "Error");
        return false;
    }
    *p = m->ptr;
    *stale = rep.stale;
    return true;
}

bool mx__app_cache_doc(struct acc *a, mx_http_req_t *r, struct mx_msg *m,
                       const struct mx_http_doc **d, bool *stale)
{
    const void *p;
    if (!mx__app_cache_ptr(a, r, m, &p, stale))
        return false;
    *d = p;
    return true;
}

void mx__app_respond_doc(struct acc *a, mx_http_req_t *r, const struct mx_http_doc *d, bool stale)
{
    if (!stale) {
        mx_http_respond_doc(r, d);
        return;
    }
    /* an expired document served because upstream failed: say so in the
     * body ("stale": true as its first member) and in a Warning header */
    MX_METRIC_INC(&a->m, stale_served);
    mx_http_add_header(r, "Warning", "110 - \"Response is Stale\"");
    const struct mx_blob *b = d->plain;
    if (b->len < 2 || b->data[0] != '{') {
        mx_http_respond_blob(r, 200, d->content_type, (struct mx_blob *)b);
        return;
    }
    static const char pre[] = "{\"stale\":true,";
    struct mx_blob *nb = mx_blob_new(NULL, b->len + sizeof pre - 2);
    memcpy(nb->data, pre, sizeof pre - 1);
    memcpy(nb->data + sizeof pre - 1, b->data + 1, b->len - 1);
    mx_http_respond_blob(r, 200, d->content_type, nb);
    mx_blob_unref(nb);
}

void mx__app_respond_character(struct acc *a, mx_http_req_t *r, const struct mx_character_rec *c,
                               bool stale, bool live, int64_t likes)
{
    struct mx_jsonw w;
    mx_jsonw_init(&w, 8192);
    mx_jsonw_obj_open(&w);
    if (stale) /* an expired record served because upstream failed: say so */
        mx_jsonw_kbool(&w, "stale", true);
    mx_jsonw_kstr(&w, "userIgn", c->user_ign);
    mx_jsonw_kstr(&w, "ocid", c->ocid);
    if (live && likes < 0)
        mx_jsonw_knull(&w, "likeCount"); /* unknown, never a made-up zero */
    else
        mx_jsonw_kint(&w, "likeCount", live ? likes : 0);
    mx_jsonw_kstr(&w, "worldName", c->world_name);
    mx_jsonw_kstr(&w, "characterClass", c->character_class);
    mx_jsonw_kstr(&w, "characterImage", c->character_image);
    mx_jsonw_obj_close(&w);
    struct mx_blob *b = w.err ? NULL : mx_blob_new(w.buf, w.len);
    mx_jsonw_fini(&w);
    struct mx_http_doc *d = NULL;
    if (!b) {
        mx_http_error(r, 500, "S001", "Could not render the character record");
    } else if (stale) {
        MX_METRIC_INC(&a->m, stale_served);
        mx_http_add_header(r, "Warning", "110 - \"Response is Stale\"");
        mx_http_respond_blob(r, 200, "application/json", b);
    } else if (!live && mx_http_doc_new("application/json", b, false, &d) == 0) {
        mx_http_respond_doc(r, d); /* the same bytes every time: an ETag helps */
        mx_http_doc_unref(d);
    } else {
        mx_http_respond_blob(r, 200, "application/json", b);
    }
    mx_blob_unref(b);
}

static void answer(struct acc *a, mx_http_req_t *r, struct mx_msg *m, bool v1)
{
    const void *p;
    bool stale;
    if (!mx__app_cache_ptr(a, r, m, &p, &stale))
        return;
    if (!v1) {
        mx__app_respond_doc(a, r, p, stale);
        return;
    }
    if (a->nlikes && mx__app_v1_live(a, r, p, stale))
        return; /* answered when the live like count arrives */
    mx__app_respond_character(a, r, p, stale, false, 0);
}

static int app_on_message(mx_actor_t *self, void *state, struct mx_msg *m)
{
    struct acc *a = state;
    struct pend p;
    if (m->env.type == MX_T_store_job_done) { /* outbox: a MySQL pool job (app_outbox.c) */
        if (pend_take(a, m->env.corr | MX__APP_DB_TAG, &p))
            mx__app_db_reply(a, p.r, m);
        return 0;
    }
    if (!m->env.corr || !pend_take(a, m->env.corr, &p))
        return 0;
    switch (p.kind) {
    case PEND_LOGIN:
        mx__app_login_reply(a, p.r, p.ctx, m);
        break;
    case PEND_CACHE:
    case PEND_V1:
        answer(a, p.r, m, p.kind == PEND_V1);
        break;
    case PEND_COMPAT_FIRST ... PEND_COMPAT_LAST:
        mx__app_compat_reply(a, p.r, p.kind, m);
        break;
    default:
        mx__app_like_reply(a, p.r, p.kind, p.ctx, m);
        break;
    }
    return 0;
}

#define MX_METRICS_TYPE struct mx__app_metrics
static const struct mx_metric_desc rl_desc[] = {MX_RATELIMIT_METRICS(MX_METRIC_DESC)};
static const struct mx_metric_desc auth_desc[] = {MX_AUTH_METRICS(MX_METRIC_DESC)};
static const struct mx_metric_desc app_desc[] = {MX_APP_METRICS(MX_METRIC_DESC)};
#undef MX_METRICS_TYPE

static void register_metrics(struct acc *a, int acceptor)
{
    char inst[32];
    snprintf(inst, sizeof inst, "acceptor-%d", acceptor);
    a->metrics_ids[0] =
        mx_metrics_register("ratelimit", inst, rl_desc, sizeof rl_desc / sizeof *rl_desc, &a->m);
    a->metrics_ids[1] =
        mx_metrics_register("auth", inst, auth_desc, sizeof auth_desc / sizeof *auth_desc, &a->m);
    a->metrics_ids[2] =
        mx_metrics_register("app", inst, app_desc, sizeof app_desc / sizeof *app_desc, &a->m);
}

static int app_init(mx_actor_t *self, void *ctx, void **state)
{
    struct mx_app *app = ctx;
    struct acc *a = calloc(1, sizeof *a);
    if (!a)
        abort();
    a->app = app;
    a->self = self;
    a->max = app->o.max_pending;
    a->cap = 16;
    while (a->cap < a->max * 2)
        a->cap <<= 1;
    a->tab = calloc(a->cap, sizeof *a->tab);
    a->shards = calloc(app->nshards ? app->nshards : 1, sizeof *a->shards);
    if (!a->tab || !a->shards)
        abort();
    for (uint32_t i = 0; i < app->nshards; i++) {
        char name[32];
        snprintf(name, sizeof name, "cache.%u", i);
        if (mx_whereis(app->sys, name, &a->shards[i]) != 0) {
            MX_WARN("cache shard %s not running: expectation routes answer 503", name);
            a->nshards = 0;
            break;
        }
        a->nshards = i + 1;
    }
    /* the like-buffer actors, when this node runs them */
    uint32_t ns = (uint32_t)mx_system_schedulers(app->sys);
    a->likes = calloc(ns ? ns : 1, sizeof *a->likes);
    if (!a->likes)
        abort();
    for (uint32_t i = 0; i < ns; i++) {
        char name[32];
        snprintf(name, sizeof name, "likes.%u", i);
        if (mx_whereis(app->sys, name, &a->likes[i]) != 0)
            break;
        a->nlikes = i + 1;
    }
    int rc = mx__app_auth_init(a);
    if (rc) {
        free(a->likes);
        free(a->tab);
        free(a->shards);
        free(a);
        return rc;
    }
    register_metrics(a, mx_actor_sched(self));
    *state = a;
    return 0;
}

static void app_fini(mx_actor_t *self, void *ctx, void *state)
{
    struct acc *a = state;
    for (int i = 0; i < 3; i++)
        mx_metrics_unregister(a->metrics_ids[i]);
    mx__app_auth_fini(a); /* answers the requests waiting on Redis */
    for (uint32_t i = 0; i < a->cap; i++)
        if (a->tab[i].corr) {
            if (a->tab[i].kind == PEND_LOGIN)
                mx__app_login_abort(a->tab[i].ctx);
            else if (a->tab[i].ctx && a->tab[i].kind != PEND_DB)
                mx__app_like_abort(a->tab[i].ctx);
            mx_http_add_header(a->tab[i].r, "Retry-After", "1");
            mx_http_error(a->tab[i].r, 503, "S007", "Node is stopping");
        }
    mx__app_likes_fini(a);
    free(a->tab);
    free(a->shards);
    free(a->likes);
    free(a);
}

void mx_app_opts_default(struct mx_app_opts *o)
{
    /* max_pending stays under the runtime's 4,096 outstanding requests per
     * actor, so this bound (with its clear 503) is the one that acts */
    *o = (struct mx_app_opts){.cache_timeout_ms = 25000,
                              .max_pending = 4000,
                              .rate_limit = true,
                              .access_ttl_s = 900,
                              .refresh_ttl_s = 7 * 24 * 3600,
                              .session_ttl_s = 1800,
                              .cors_max_age_s = 3600,
                              .v5_wait_ms = 300,
                              .api_docs = true};
}

int mx_app_start(struct mx_app *app, mx_system_t *sys, const struct mx_http_opts *http_opts,
                 const struct mx_app_opts *o, uint16_t *bound_port)
{
    memset(app, 0, sizeof *app);
    mx__app_outbox_register();
    app->o = *o;
    if (!app->o.max_pending || app->o.max_pending > 4000)
        app->o.max_pending = 4000;
    if (!app->o.cache_timeout_ms)
        app->o.cache_timeout_ms = 25000;
    app->sys = sys;
    app->nshards = (uint32_t)mx_system_schedulers(sys);
    if (!app->o.access_ttl_s)
        app->o.access_ttl_s = 900;
    if (!app->o.refresh_ttl_s)
        app->o.refresh_ttl_s = 7 * 24 * 3600;
    if (!app->o.session_ttl_s)
        app->o.session_ttl_s = 1800;
    if (!app->o.v5_wait_ms)
        app->o.v5_wait_ms = 300;
    app->started_ms = mx_unix_ms();
    if (mx__app_cors_parse(app, app->o.cors_origins) != 0 || mx__app_admins_parse(app) != 0)
        return MX_ECONFIG;
    if (app->o.trusted_proxies && app->o.trusted_proxies[0]) {
        app->nproxies =
            mx_app_parse_cidrs(app->o.trusted_proxies, app->proxies, MX_APP_MAX_PROXIES);
        if (app->nproxies == -2) {
            MX_ERROR("MX_TRUSTED_PROXIES: %s covers every address: any client could choose its "
                     "own address (X-Forwarded-For, PROXY header); list the proxies' addresses",
                     app->o.trusted_proxies);
            return MX_ECONFIG;
        }
        if (app->nproxies < 0) {
            MX_ERROR("MX_TRUSTED_PROXIES: not a list of CIDRs: %s", app->o.trusted_proxies);
            return MX_ECONFIG;
        }
    }
    struct mx_http_route served[NROUTES + NCATCHALL];
    for (size_t i = 0; i < NROUTES + NCATCHALL; i++) {
        served[i] = i < NROUTES ? routes[i] : catchall[i - NROUTES];
        served[i].fn = entry;
        /* the index, and the one flag the http layer reads */
        served[i].flags = (uint32_t)i | (served[i].flags & MX_HTTP_ROUTE_LIGHT);
    }
    struct mx_http_app ha = {
        .routes = served, /* copied by mx_http_start */
        .nroutes = NROUTES + NCATCHALL,
        .ctx = app,
        .init = app_init,
        .fini = app_fini,
        .on_message = app_on_message,
    };
    struct mx_http_opts ho = *http_opts;
    ho.decorate = mx__app_xcut_layer; /* the layer's own answers carry our headers too */
    ho.decorate_ctx = app;
    if (app->nproxies > 0) { /* PROXY protocol from MX_TRUSTED_PROXIES (docs/http.md) */
        ho.proxy_trusted = mx__app_proxy_trusted;
        ho.proxy_ctx = app;
    }
    return mx_http_start(sys, &ho, &ha, &app->http, bound_port);
}

void mx_app_drain(struct mx_app *app)
{
    /* release: readiness handlers on other threads see it */
    atomic_store_explicit(&app->draining, true, memory_order_release);
    if (app->http)
        mx_http_drain(app->http);
}

/* ---- the shutdown coordinator's controls (actors/shutdown) ---- */

void mx_app_set_ready(struct mx_app *app, bool ready)
{
    /* release: readiness handlers on other threads see it */
    atomic_store_explicit(&app->draining, !ready, memory_order_release);
}

void mx_app_undrain(struct mx_app *app)
{
    if (app->http)
        mx_http_undrain(app->http);
    mx_app_set_ready(app, true);
}
