/* cache_actor.c - the cache shard actor: one per scheduler ("cache.<i>"),
 * each owning the keys mx_svc_shard gives it. A request (exp_get) is
 * answered from L1 (cache_l1.c) or joins the load of its key already under
 * way, or starts one (cache_load.c) after asking the cluster through L2
 * (cache_l2.c). The actor also answers invalidations and the shutdown
 * coordinator's svc_latches, drives the timers of loads (latch waits and
 * renewals, acks) and the spool replay, and keeps each shard's counters in
 * its own block of the metrics registry.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache_int.h"
#include "mx_alloc.h"
#include "mx_err.h"
#include "mx_fetch.h"
#include "mx_log.h"

/* Every shard's counter block, for the life of the process: a shard's
 * restart keeps its counts, and readers (mx_svc_stats, the registry) never
 * see one freed. One cache line apart, so shards share no line. */
static struct {
    _Alignas(64) struct mx_cache_metrics m;
} g_metrics[MX_MAX_SCHEDULERS];
static int g_metric_ids[MX_MAX_SCHEDULERS]; /* registry ids; written by mx_svc_start */
static _Atomic uint32_t g_nshards;          /* blocks in use */

#define MX_METRICS_TYPE struct mx_cache_metrics
static const struct mx_metric_desc cache_desc[] = {MX_CACHE_METRICS(MX_METRIC_DESC)};
#undef MX_METRICS_TYPE
#define NDESC (sizeof cache_desc / sizeof *cache_desc)

/* ---- replies ---- */

void mx__cache_send_reply(mx_actor_t *self, const struct mx_env *req, struct mx_msg *rep)
{
    rep->env.corr = req->corr;
    rep->env.flags = (rep->env.flags & ~MX_ENVF_REQUEST) | MX_ENVF_REPLY;
    memcpy(rep->env.trace_id, req->trace_id, sizeof rep->env.trace_id);
    memcpy(rep->env.span_id, req->span_id, sizeof rep->env.span_id);
    if (mx_send(self, req->from, rep) != 0)
        mx_msg_free(rep); /* counted as a dead letter by the runtime */
}

static void doc_unref_cb(void *d)
{
    mx_http_doc_unref(d);
}

static void rec_unref_cb(void *c)
{
    mx_character_rec_unref(c);
}

void mx__cache_reply_value(mx_actor_t *self, const struct mx_env *req, struct mx_http_doc *doc,
                           struct mx_character_rec *rec, bool stale)
{
    struct mx_m_exp_rep r = {.status = 0, .http_status = 200, .stale = stale};
    struct mx_msg *m;
    if (mx_msg_encode(MX_T_exp_rep, &r, &m) != 0)
        return;
    if (rec) {
        m->ptr = mx_character_rec_ref(rec);
        m->ptr_free = rec_unref_cb;
    } else {
        m->ptr = mx_http_doc_ref(doc);
        m->ptr_free = doc_unref_cb;
    }
    mx__cache_send_reply(self, req, m);
}

void mx__cache_reply_err(mx_actor_t *self, const struct mx_env *req, int status, uint32_t http,
                         const char *code, const char *message, uint32_t retry_after_s)
{
    struct mx_m_exp_rep r = {.status = status,
                             .http_status = http,
                             .code = {code, (uint32_t)strlen(code)},
                             .message = {message, (uint32_t)strlen(message)},
                             .retry_after_s = retry_after_s};
    struct mx_msg *m;
    if (mx_msg_encode(MX_T_exp_rep, &r, &m) == 0)
        mx__cache_send_reply(self, req, m);
}

/* ---- requests ---- */

static bool ign_ok(const struct mx_str *ign)
{
    if (ign->len == 0 || ign->len > IGN_MAX)
        return false;
    for (uint32_t i = 0; i < ign->len; i++) {
        unsigned char c = (unsigned char)ign->ptr[i];
        /* '|' separates L1 key parts; braces would break the hash tag;
         * whitespace and controls separate notice fields */
        if (c <= 0x20 || c == 0x7f || c == '|' || c == '{' || c == '}')
            return false;
    }
    return true;
}

static void on_get(mx_actor_t *self, struct mx__shard *s, struct mx_msg *m)
{
    struct mx_m_exp_get q;
    INC(s, requests);
    if (mx_msg_decode(m, &q) != 0 || !(m->env.flags & MX_ENVF_REQUEST))
        return; /* not a request we can answer: the sender's timeout tells it */
    if (!ign_ok(&q.ign) || q.preset > 3 ||
        (q.what != MX_SVC_EXPECTATION && q.what != MX_SVC_CHARACTER &&
         q.what != MX_SVC_EQUIPMENT)) {
        mx__cache_reply_err(self, &m->env, MX_EINVAL, 400, "C001",
                            "Invalid character name or preset", 0);
        return;
    }
    char ign[IGN_MAX + 1];
    memcpy(ign, q.ign.ptr, q.ign.len);
    ign[q.ign.len] = '\0';

    char key[KEY_MAX];
    size_t klen = mx__l1_key(key, 'n', ign, NULL);
    if (!q.force && l1_get(s, key, klen, false)) {
        INC(s, negative_hits);
        mx__cache_reply_err(self, &m->env, MX_ENOTFOUND, 404, "C002", "Character not found", 0);
        return;
    }
    if (q.what == MX_SVC_EQUIPMENT)
        q.force = false; /* the equipment is refreshed by its TTLs only */
    klen = q.what == MX_SVC_CHARACTER   ? mx__l1_key(key, 'c', ign, NULL)
           : q.what == MX_SVC_EQUIPMENT ? mx__l1_key(key, 'q', ign, NULL)
                                        : mx__l1_doc_key(key, &q, ign);
    struct mx__centry *hit = q.force                      ? NULL
                             : q.what == MX_SVC_EQUIPMENT ? mx__equip_l1(s, ign)
                                                          : l1_get(s, key, klen, false);
    if (hit) {
        INC(s, l1_hits);
        mx__cache_reply_value(self, &m->env, hit->doc, hit->rec, false);
        return;
    }
    INC(s, l1_misses);
    struct mx__flight *f = mx__flight_find_key(s, key, klen, q.force);
    if (f) {
        if (!mx__flight_wait(s, f, &m->env)) {
            INC(s, refused);
            mx__cache_reply_err(self, &m->env, MX_EFULL, 503, "S007", "Too many requests waiting",
                                1);
        } else {
            INC(s, coalesced);
        }
        return;
    }
    if (s->nflights >= s->o.max_flights || !s->have_fetcher) {
        INC(s, refused);
        mx__cache_reply_err(self, &m->env, MX_EFULL, 503, "S007",
                            s->have_fetcher ? "Too many loads in progress" : "No fetcher running",
                            1);
        return;
    }
    f = xcalloc(1, sizeof *f);
    f->id = ++s->next_fid;
    memcpy(f->key, key, klen);
    f->klen = (uint16_t)klen;
    f->q = q;
    memcpy(f->ign, ign, q.ign.len + 1);
    f->q.ign = (struct mx_str){f->ign, q.ign.len};
    mx__rk_flight(s, f);
    snprintf(f->token, sizeof f->token, "%016" PRIx64 ":%d:%" PRIu64, s->node_id, s->index, f->id);
    f->next = s->flights;
    s->flights = f;
    s->nflights++;
    mx__flight_wait(s, f, &m->env);
    if (q.force)
        mx__l2_force_acquire(self, s, f); /* recompute once; the result replaces L2 for everyone */
    else
        mx__l2_acquire(self, s, f);
}

/* ---- lifecycle ---- */

static void on_tick(mx_actor_t *self, struct mx__shard *s)
{
    int64_t now = mx_now_ms();
    for (struct mx__flight *f = s->flights, *next; f; f = next) {
        next = f->next;
        if (f->stage == ST_ACK && now >= f->ack_until && f->result) {
            INC(s, invalidation_ack_timeouts); /* a node did not ack in time: answer anyway */
            mx__finish_doc(self, s, f, f->result, false);
            continue;
        }
        if (f->stage == ST_CALC && now >= f->calc_until) {
            /* the calculator's queue held it past the budget */
            mx__finish_err(self, s, f, MX_EFULL, 503, "S007", "Calculator busy, retry shortly", 1);
            continue;
        }
        if (f->latched && now >= f->latch_renew_at)
            mx__l2_renew(s, f, now);
        if (f->stage == ST_WAIT && now >= f->wait_until) {
            f->waited = true;
            mx__l2_acquire(self, s, f); /* may end f */
        }
    }
    mx__l3_tick(self, s);
}

static int cache_init(mx_actor_t *self, void *arg, void **state)
{
    const struct mx_svc_opts *o = arg;
    struct mx__shard *s = xcalloc(1, sizeof *s);
    s->self = self;
    s->o = *o;
    s->index = mx_actor_sched(self);
    s->nshards = mx_system_schedulers(mx_system_of(self));
    s->node_id = mx_system_node_id(mx_system_of(self));
    s->m = &g_metrics[s->index].m;
    mx__l1_init(&s->l1, o->l1_max_entries, o->l1_max_bytes, s->m);
    s->have_fetcher = mx_whereis(mx_system_of(self), o->fetcher_name, &s->fetcher) == 0;
    snprintf(s->prefix, sizeof s->prefix, "mx:%s:", o->cluster ? o->cluster : "mx");
    snprintf(s->channel, sizeof s->channel, "mx:{%s}:cache", o->cluster ? o->cluster : "mx");
    mx__l2_open(s);
    struct mx_msg *tick;
    struct mx_m_sys_tick t = {.seq = 0};
    if (mx_msg_encode(MX_T_sys_tick, &t, &tick) == 0 &&
        mx_timer_start(self, TICK_MS, TICK_MS, tick, NULL) != 0)
        mx_msg_free(tick);
    *state = s;
    return 0;
}

static int cache_receive(mx_actor_t *self, void *state, struct mx_msg *m)
{
    struct mx__shard *s = state;
    if (!s->have_fetcher)
        s->have_fetcher = mx_whereis(mx_system_of(self), s->o.fetcher_name, &s->fetcher) == 0;
    switch (m->env.type) {
    case MX_T_exp_get:
        on_get(self, s, m);
        return 0;
    case MX_T_exp_invalidate: {
        struct mx_m_exp_invalidate q;
        if (mx_msg_decode(m, &q) == 0 && ign_ok(&q.ign)) {
            char ign[IGN_MAX + 1];
            memcpy(ign, q.ign.ptr, q.ign.len);
            ign[q.ign.len] = '\0';
            mx__l1_drop_character(&s->l1, ign, NULL, NULL, 0);
        }
        return 0;
    }
    case MX_T_sys_tick:
        on_tick(self, s);
        return 0;
    case MX_T_store_job_done:
        mx__l3_on_done(self, s, m);
        return 0;
    case MX_T_svc_latches:
        mx__l2_on_latches(self, s, m);
        return 0;
    default:
        break;
    }
    struct mx__flight *f = m->env.corr ? mx__flight_find_corr(s, m->env.corr) : NULL;
    if (!f)
        return 0; /* a reply for a load that already ended */
    mx__load_on_reply(self, s, f, m);
    return 0;
}

static void cache_stop(mx_actor_t *self, void *state)
{
    struct mx__shard *s = state;
    s->stopping = true;
    mx__l2_close(s);
    while (s->flights) {
        struct mx__flight *f = s->flights;
        for (uint32_t i = 0; i < f->nw; i++)
            mx__cache_reply_err(self, &f->w[i].env, MX_ESTOPPED, 503, "S007", "Node is stopping",
                                1);
        f->latched = false; /* the latch expires by itself */
        mx__flight_end(s, f);
    }
    mx__l1_fini(&s->l1);
    free(s);
}

static const struct mx_behaviour cache_behaviour = {
    .name = "cache",
    .init = cache_init,
    .receive = cache_receive,
    .stop = cache_stop,
};

void mx_svc_opts_default(struct mx_svc_opts *o)
{
    *o = (struct mx_svc_opts){
        .fetcher_name = MX_FETCH_NAME,
        .l1_max_entries = 10000,
        .l1_max_bytes = 128ull << 20,
        .ttl_doc_ms = 60 * 60 * 1000,
        .ttl_equipment_ms = 5 * 60 * 1000,
        .ttl_ocid_ms = 30 * 60 * 1000,
        .ttl_character_ms = 15 * 60 * 1000,
        .ttl_negative_ms = 15 * 60 * 1000,
        .ttl2_doc_ms = 60 * 60 * 1000,
        .ttl2_equipment_ms = 10 * 60 * 1000,
        .ttl2_ocid_ms = 60 * 60 * 1000,
        .ttl2_character_ms = 15 * 60 * 1000,
        .ttl2_negative_ms = 15 * 60 * 1000,
        .l3_fresh_ms = 15 * 60 * 1000,
        .latch_ttl_ms = 10000,
        .redis_timeout_ms = 1000,
        .cluster = "mx",
        .fetch_timeout_ms = 20000,
        .max_flights = 1024,
        .max_waiters = 4096,
    };
}

static struct mx_svc_opts g_opts; /* outlives the shards: their init copies it */

int mx_svc_start(mx_system_t *sys, const struct mx_svc_opts *opts)
{
    g_opts = *opts;
    int n = mx_system_schedulers(sys);
    if (n > MX_MAX_SCHEDULERS)
        return MX_EINVAL;
    for (int i = 0; i < n; i++) {
        char name[32];
        /* the block outlives restarts of the shard: counters keep counting */
        if (!g_metric_ids[i]) {
            snprintf(name, sizeof name, "shard-%d", i);
            g_metric_ids[i] =
                mx_metrics_register("cache", name, cache_desc, NDESC, &g_metrics[i].m);
        }
        atomic_store_explicit(&g_nshards, (uint32_t)i + 1, memory_order_release);
        snprintf(name, sizeof name, "cache.%d", i);
        struct mx_spawn_opts so = MX_SPAWN_OPTS_DEFAULT;
        so.sched = i;
        so.name = name;
        so.cap_msgs = 65536;
        int rc = mx_spawn(sys, &cache_behaviour, &g_opts, &so, NULL);
        if (rc)
            return rc;
    }
    return 0;
}

void mx_svc_stats(struct mx_svc_stats *o)
{
    memset(o, 0, sizeof *o);
    /* acquire: pairs with the release in mx_svc_start (the blocks are
     * static, so a shard not yet started only reads as zeros) */
    uint32_t n = atomic_load_explicit(&g_nshards, memory_order_acquire);
    for (uint32_t i = 0; i < n; i++) {
        const struct mx_cache_metrics *b = &g_metrics[i].m;
#define SUM(kind, name, ...) o->name += MX_METRIC_GET(b, name);
        MX_CACHE_METRICS(SUM)
#undef SUM
    }
}
