/* mx_admin.c - the admin endpoint (see mx_admin.h, docs/cluster.md).
 *
 * One thread owns an nng rep socket and answers one request at a time. It
 * wakes at least once a second (receive timeout) to sample every actor's
 * handled counter, so `actors` can report handled/s without any loop doing
 * extra work. Requests are validated with mx_proto_validate before msgpack-c
 * unpacks them, so a hostile request cannot make it allocate on a lie.
 */
#include "mx_admin.h"

#include <msgpack.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mx_err.h"
#include "mx_log.h"
#include "mx_metrics.h"

#define REQ_MAX 65536         /* bytes of one request */
#define RATE_SLOTS (1u << 15) /* actors whose rate is sampled */
#define ACTORS_MAX 65536u     /* actors collected for one answer */
#define PEEK_DEFAULT 10u
#define PEEK_TIMEOUT_MS 1000u
#define JSON_MAX (1u << 20) /* one section or decoded message */
#define ADMIN_PIPES 32u     /* mxctl connections at once */

struct section {
    char name[64];
    mx_admin_section_fn fn;
    void *ctx;
};

struct rate_ent {
    uint64_t actor; /* 0 = empty */
    uint64_t handled;
    double rate; /* handled per second over the last sample interval */
};

struct mx_admin {
    mx_system_t *sys;
    mx_remote_t *remote;
    nng_socket sock;
    const mx_tls_t *tls;      /* NULL: plaintext */
    struct mx_pipe_gate gate; /* connections at once; client certificates */
    int port;
    pthread_t thread;
    char token[256];
    size_t token_len;
    char version[32];
    int64_t started_ms;
    pthread_mutex_t mu; /* sections and providers */
    struct section sections[MX_ADMIN_MAX_SECTIONS];
    int nsections;
    mx_admin_members_fn members_fn;
    void *members_ctx;
    mx_admin_leases_fn leases_fn;
    void *leases_ctx;
    mx_admin_drain_fn drain_fn;
    void *drain_ctx;
    mx_admin_drain_fn undrain_fn;
    void *undrain_ctx;
    _Atomic bool draining;
    _Atomic uint64_t requests, refused, bad; /* registered: admin_desc */
    int metrics_id;                          /* mx_metrics_register's; 0 refused */
    /* admin thread only */
    struct rate_ent *rates, *rates_next;
    int64_t sampled_ms;
};

/* ---- small msgpack helpers ---- */

static void pk_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

static void pk_kstr(msgpack_packer *pk, const char *k, const char *v)
{
    pk_str(pk, k);
    pk_str(pk, v);
}

static void pk_ku64(msgpack_packer *pk, const char *k, uint64_t v)
{
    pk_str(pk, k);
    msgpack_pack_uint64(pk, v);
}

static void pk_ki64(msgpack_packer *pk, const char *k, int64_t v)
{
    pk_str(pk, k);
    msgpack_pack_int64(pk, v);
}

static void pk_json(msgpack_packer *pk, const char *json, size_t n)
{
    msgpack_pack_ext(pk, n, MX_ADMIN_EXT_JSON);
    msgpack_pack_ext_body(pk, json, n);
}

/* the string value of key in map o, or NULL; *len gets its length */
static const char *req_str(const msgpack_object *o, const char *key, uint32_t *len)
{
    if (o->type != MSGPACK_OBJECT_MAP)
        return NULL;
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object_kv *kv = &o->via.map.ptr[i];
        if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == strlen(key) &&
            memcmp(kv->key.via.str.ptr, key, kv->key.via.str.size) == 0 &&
            kv->val.type == MSGPACK_OBJECT_STR) {
            *len = kv->val.via.str.size;
            return kv->val.via.str.ptr;
        }
    }
    return NULL;
}

static int64_t req_int(const msgpack_object *o, const char *key, int64_t def)
{
    if (o->type != MSGPACK_OBJECT_MAP)
        return def;
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object_kv *kv = &o->via.map.ptr[i];
        if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == strlen(key) &&
            memcmp(kv->key.via.str.ptr, key, kv->key.via.str.size) == 0) {
            if (kv->val.type == MSGPACK_OBJECT_POSITIVE_INTEGER)
                return kv->val.via.u64 > INT32_MAX ? INT32_MAX : (int64_t)kv->val.via.u64;
            return def;
        }
    }
    return def;
}

/* ---- token ---- */

bool mx_admin_token_equal(const char *want, const char *got, size_t got_len)
{
    size_t wl = strlen(want);
    unsigned diff = (unsigned)(wl != got_len);
    for (size_t i = 0; i < wl; i++) {
        unsigned char g = i < got_len ? (unsigned char)got[i] : 0;
        diff |= (unsigned)((unsigned char)want[i] ^ g);
    }
    return diff == 0 && wl > 0;
}

/* ---- rates ---- */

static struct rate_ent *rate_slot(struct rate_ent *t, uint64_t actor, bool insert)
{
    uint32_t h = (uint32_t)((actor * 0x9E3779B97F4A7C15ull) >> 49) & (RATE_SLOTS - 1);
    for (uint32_t i = 0; i < 64; i++) {
        struct rate_ent *e = &t[(h + i) & (RATE_SLOTS - 1)];
        if (e->actor == actor)
            return e;
        if (e->actor == 0)
            return insert ? e : NULL;
    }
    return NULL;
}

struct sample_ctx {
    struct mx_admin *a;
    double dt_s;
};

static bool sample_one(const struct mx_actor_stats *st, void *arg)
{
    struct sample_ctx *c = arg;
    struct rate_ent *prev = rate_slot(c->a->rates, st->addr.actor, false);
    struct rate_ent *e = rate_slot(c->a->rates_next, st->addr.actor, true);
    if (!e)
        return true; /* table full: no rate for this one */
    e->actor = st->addr.actor;
    e->handled = st->handled;
    e->rate = prev && c->dt_s > 0 && st->handled >= prev->handled
                  ? (double)(st->handled - prev->handled) / c->dt_s
                  : 0;
    return true;
}

static void sample(struct mx_admin *a)
{
    int64_t now = mx_now_ms();
    struct sample_ctx c = {a, (double)(now - a->sampled_ms) / 1000.0};
    memset(a->rates_next, 0, RATE_SLOTS * sizeof(struct rate_ent));
    mx_actors_foreach(a->sys, sample_one, &c);
    struct rate_ent *t = a->rates;
    a->rates = a->rates_next;
    a->rates_next = t;
    a->sampled_ms = now;
}

/* ---- commands ---- */

static void cmd_stats(struct mx_admin *a, msgpack_packer *pk)
{
    struct mx_system_stats ss;
    uint64_t dl[MX_DL_COUNT];
    char idhex[24];
    mx_system_stats(a->sys, &ss);
    mx_deadletters(a->sys, dl);
    snprintf(idhex, sizeof(idhex), "%016llx", (unsigned long long)mx_system_node_id(a->sys));
    pthread_mutex_lock(&a->mu);
    int nsec = a->nsections;
    msgpack_pack_map(pk, 15);
    pk_kstr(pk, "node", mx_system_node_name(a->sys));
    pk_kstr(pk, "node_id", idhex);
    pk_kstr(pk, "version", a->version);
    pk_kstr(pk, "state",
            atomic_load_explicit(&a->draining, memory_order_relaxed) ? "draining" : "up");
    pk_ki64(pk, "uptime_ms", mx_now_ms() - a->started_ms);
    pk_ku64(pk, "schedulers", (uint64_t)mx_system_schedulers(a->sys));
    pk_ku64(pk, "live_actors", ss.live_actors);
    pk_ku64(pk, "spawned", ss.spawned);
    pk_ku64(pk, "offload_refused", ss.offload_refused);
    pk_str(pk, "deadletters");
    msgpack_pack_map(pk, MX_DL_COUNT);
    for (int i = 0; i < MX_DL_COUNT; i++)
        pk_ku64(pk, mx_dl_name(i), dl[i]);
    pk_str(pk, "transport");
    if (a->remote) {
        struct mx_remote_stats rs;
        mx_remote_stats(a->remote, &rs);
        msgpack_pack_map(pk, 17);
        pk_ku64(pk, "frames_in", rs.frames_in);
        pk_ku64(pk, "pipes_in", rs.pipes_in);
        pk_ku64(pk, "pipes_refused_tls", rs.pipes_refused_tls);
        pk_ku64(pk, "pipes_refused_limit", rs.pipes_refused_limit);
        pk_ku64(pk, "pipes_timed_out", rs.pipes_timed_out);
        pk_ku64(pk, "batches_in", rs.batches_in);
        pk_ku64(pk, "batches_out", rs.batches_out);
        pk_ku64(pk, "frames_lost", rs.frames_lost);
        pk_ku64(pk, "delivered", rs.delivered);
        pk_ku64(pk, "frames_out", rs.frames_out);
        pk_ku64(pk, "bytes_in", rs.bytes_in);
        pk_ku64(pk, "bytes_out", rs.bytes_out);
        pk_ku64(pk, "send_full", rs.send_full);
        pk_ku64(pk, "send_down", rs.send_down);
        pk_ku64(pk, "peers", rs.peers);
        pk_ku64(pk, "peers_up", rs.peers_up);
        pk_str(pk, "drops");
        msgpack_pack_map(pk, MX_RDROP_COUNT);
        for (int i = 0; i < MX_RDROP_COUNT; i++)
            pk_ku64(pk, mx_rdrop_name(i), rs.drops[i]);
    } else {
        msgpack_pack_nil(pk);
    }
    pk_str(pk, "admin");
    msgpack_pack_map(pk, 6);
    pk_ku64(pk, "tls", a->tls != NULL);
    pk_ku64(pk, "pipes_refused_tls",
            atomic_load_explicit(&a->gate.refused_tls, memory_order_relaxed));
    pk_ku64(pk, "pipes_refused_limit",
            atomic_load_explicit(&a->gate.refused_limit, memory_order_relaxed));
    pk_ku64(pk, "requests", atomic_load_explicit(&a->requests, memory_order_relaxed));
    pk_ku64(pk, "refused", atomic_load_explicit(&a->refused, memory_order_relaxed));
    pk_ku64(pk, "bad", atomic_load_explicit(&a->bad, memory_order_relaxed));
    pk_str(pk, "sections");
    msgpack_pack_map(pk, (size_t)nsec);
    for (int i = 0; i < nsec; i++) {
        struct mx_jsonw w;
        mx_jsonw_init(&w, JSON_MAX);
        a->sections[i].fn(&w, a->sections[i].ctx);
        pk_str(pk, a->sections[i].name);
        if (w.err == 0 && w.len > 0)
            pk_json(pk, w.buf, w.len);
        else
            msgpack_pack_nil(pk);
        mx_jsonw_fini(&w);
    }
    pthread_mutex_unlock(&a->mu);
    /* every registered counter block (mx_metrics.h): the same table the
     * Prometheus text is generated from, keyed actor -> instance -> field */
    struct mx_jsonw w;
    mx_jsonw_init(&w, JSON_MAX);
    mx_metrics_json(&w);
    pk_str(pk, "metrics");
    if (w.err == 0)
        pk_json(pk, w.buf, w.len);
    else
        msgpack_pack_nil(pk);
    mx_jsonw_fini(&w);
    pk_str(pk, "ok");
    msgpack_pack_true(pk);
}

struct collect {
    struct mx_actor_stats *v;
    uint32_t n, cap;
    uint64_t total;
};

static bool collect_one(const struct mx_actor_stats *st, void *arg)
{
    struct collect *c = arg;
    c->total++;
    if (c->n < c->cap)
        c->v[c->n++] = *st;
    return true;
}

static struct mx_admin *g_sort_admin; /* admin thread only: qsort has no ctx */
static int g_sort_key;                /* 0 depth, 1 age, 2 rate */

static double rate_of(struct mx_admin *a, uint64_t actor)
{
    struct rate_ent *e = rate_slot(a->rates, actor, false);
    return e ? e->rate : 0;
}

static int by_key(const void *x, const void *y)
{
    const struct mx_actor_stats *p = x, *q = y;
    double vp, vq;
    if (g_sort_key == 1) {
        vp = (double)p->oldest_age_ms;
        vq = (double)q->oldest_age_ms;
    } else if (g_sort_key == 2) {
        vp = rate_of(g_sort_admin, p->addr.actor);
        vq = rate_of(g_sort_admin, q->addr.actor);
    } else {
        vp = (double)p->depth;
        vq = (double)q->depth;
    }
    return vp < vq   ? 1
           : vp > vq ? -1
                     : (p->addr.actor > q->addr.actor) - (p->addr.actor < q->addr.actor);
}

static void cmd_actors(struct mx_admin *a, const msgpack_object *req, msgpack_packer *pk)
{
    uint32_t sl = 0;
    const char *sort = req_str(req, "sort", &sl);
    int key = 0;
    if (sort && sl == 3 && memcmp(sort, "age", 3) == 0)
        key = 1;
    else if (sort && sl == 4 && memcmp(sort, "rate", 4) == 0)
        key = 2;
    else if (sort && !(sl == 5 && memcmp(sort, "depth", 5) == 0)) {
        msgpack_pack_map(pk, 2);
        pk_kstr(pk, "error", "sort must be depth, age or rate");
        pk_str(pk, "ok");
        msgpack_pack_false(pk);
        return;
    }
    int64_t top = req_int(req, "top", 0);
    struct collect c = {malloc(ACTORS_MAX * sizeof(struct mx_actor_stats)), 0, ACTORS_MAX, 0};
    if (!c.v)
        abort();
    mx_actors_foreach(a->sys, collect_one, &c);
    g_sort_admin = a;
    g_sort_key = key;
    qsort(c.v, c.n, sizeof(*c.v), by_key);
    uint32_t n = top > 0 && (uint64_t)top < c.n ? (uint32_t)top : c.n;
    msgpack_pack_map(pk, 4);
    pk_ku64(pk, "total", c.total);
    pk_kstr(pk, "sort", key == 1 ? "age" : key == 2 ? "rate" : "depth");
    pk_str(pk, "actors");
    msgpack_pack_array(pk, n);
    for (uint32_t i = 0; i < n; i++) {
        const struct mx_actor_stats *s = &c.v[i];
        char id[24];
        snprintf(id, sizeof(id), "%llx", (unsigned long long)s->addr.actor);
        msgpack_pack_map(pk, 14);
        pk_kstr(pk, "id", id);
        pk_kstr(pk, "name", s->name);
        pk_kstr(pk, "type", s->type);
        pk_ki64(pk, "sched", s->sched);
        pk_ki64(pk, "depth", s->depth);
        pk_ku64(pk, "hwm", s->hwm);
        pk_ki64(pk, "oldest_ms", s->oldest_age_ms);
        pk_ku64(pk, "received", s->received);
        pk_ku64(pk, "handled", s->handled);
        pk_str(pk, "rate");
        msgpack_pack_double(pk, rate_of(a, s->addr.actor));
        pk_ku64(pk, "dropped", s->dropped);
        pk_ku64(pk, "refused", s->refused);
        pk_ku64(pk, "restarts", s->restarts);
        pk_ku64(pk, "errors", s->errors);
    }
    pk_str(pk, "ok");
    msgpack_pack_true(pk);
    free(c.v);
}

static void pack_error(msgpack_packer *pk, const char *msg)
{
    msgpack_pack_map(pk, 2);
    pk_kstr(pk, "error", msg);
    pk_str(pk, "ok");
    msgpack_pack_false(pk);
}

static void cmd_mailbox(struct mx_admin *a, const msgpack_object *req, msgpack_packer *pk)
{
    uint32_t nl = 0;
    const char *nm = req_str(req, "name", &nl);
    char name[MX_NAME_MAX + 1];
    struct mx_addr addr;
    if (!nm || nl == 0 || nl > MX_NAME_MAX) {
        pack_error(pk, "mailbox needs an actor name");
        return;
    }
    memcpy(name, nm, nl);
    name[nl] = '\0';
    if (mx_whereis(a->sys, name, &addr) != 0) {
        /* an actor id in hex, as `actors` prints it */
        char *end;
        unsigned long long id = strtoull(name, &end, 16);
        addr = (struct mx_addr){mx_system_node_id(a->sys), id};
        struct mx_actor_stats st;
        if (*end || id == 0 || mx_actor_stats(a->sys, addr, &st) != 0) {
            pack_error(pk, "no such actor");
            return;
        }
    }
    int64_t want = req_int(req, "peek", PEEK_DEFAULT);
    if (want > 1000)
        want = 1000;
    struct mx_msg **msgs = NULL;
    uint32_t n = 0;
    int rc = mx_actor_peek(a->sys, addr, (uint32_t)want, PEEK_TIMEOUT_MS, &msgs, &n);
    if (rc != 0) {
        pack_error(pk,
                   rc == MX_ETIMEDOUT ? "actor did not answer the peek in time" : "no such actor");
        return;
    }
    struct mx_actor_stats st;
    int64_t depth = mx_actor_stats(a->sys, addr, &st) == 0 ? st.depth : 0;
    int64_t now = mx_now_ms();
    msgpack_pack_map(pk, 4);
    pk_kstr(pk, "name", name);
    pk_ki64(pk, "depth", depth);
    pk_str(pk, "messages");
    msgpack_pack_array(pk, n);
    for (uint32_t i = 0; i < n; i++) {
        const struct mx_msg *m = msgs[i];
        const struct mx_msg_desc *d = mx_proto_desc(m->env.type);
        char from[40];
        snprintf(from, sizeof(from), "%llx:%llx", (unsigned long long)m->env.from.node,
                 (unsigned long long)m->env.from.actor);
        msgpack_pack_map(pk, 7);
        pk_ku64(pk, "type", m->env.type);
        pk_kstr(pk, "type_name", d ? d->name : "?");
        pk_kstr(pk, "from", from);
        pk_ku64(pk, "corr", m->env.corr);
        pk_ku64(pk, "epoch", m->env.epoch);
        pk_ki64(pk, "age_ms", m->enq_ms ? now - m->enq_ms : 0);
        struct mx_jsonw w;
        mx_jsonw_init(&w, JSON_MAX);
        mx_proto_to_json(m->env.type, m->body, m->body_len, &w);
        pk_str(pk, "body");
        if (w.err == 0 && w.len)
            pk_json(pk, w.buf, w.len);
        else
            msgpack_pack_nil(pk);
        mx_jsonw_fini(&w);
        mx_msg_free(msgs[i]);
    }
    free(msgs);
    pk_str(pk, "ok");
    msgpack_pack_true(pk);
}

static void cmd_deadletters(struct mx_admin *a, msgpack_packer *pk)
{
    uint64_t dl[MX_DL_COUNT], total = 0;
    mx_deadletters(a->sys, dl);
    msgpack_pack_map(pk, 4);
    pk_kstr(pk, "node", mx_system_node_name(a->sys));
    pk_str(pk, "deadletters");
    msgpack_pack_map(pk, MX_DL_COUNT);
    for (int i = 0; i < MX_DL_COUNT; i++) {
        pk_ku64(pk, mx_dl_name(i), dl[i]);
        total += dl[i];
    }
    pk_ku64(pk, "total", total);
    pk_str(pk, "ok");
    msgpack_pack_true(pk);
}

/* drain (undrain false) or undrain the node named in the request */
static void cmd_drain(struct mx_admin *a, const msgpack_object *req, msgpack_packer *pk,
                      bool undrain)
{
    uint32_t nl = 0;
    const char *nm = req_str(req, "node", &nl);
    const char *me = mx_system_node_name(a->sys);
    if (nm && !(nl == strlen(me) && memcmp(nm, me, nl) == 0)) {
        pack_error(pk, undrain ? "undrain names another node" : "drain names another node");
        return;
    }
    pthread_mutex_lock(&a->mu);
    mx_admin_drain_fn fn = undrain ? a->undrain_fn : a->drain_fn;
    void *ctx = undrain ? a->undrain_ctx : a->drain_ctx;
    pthread_mutex_unlock(&a->mu);
    bool has = fn != NULL;
    int rc = fn ? fn(ctx) : 0; /* outside the lock: it may call mx_admin_* */
    if (rc == 0)               /* relaxed: a flag read by stats */
        atomic_store_explicit(&a->draining, !undrain, memory_order_relaxed);
    msgpack_pack_map(pk, 5);
    pk_kstr(pk, "node", me);
    pk_kstr(pk, "state",
            atomic_load_explicit(&a->draining, memory_order_relaxed) ? "draining" : "up");
    pk_str(pk, "callback");
    if (has)
        msgpack_pack_true(pk);
    else
        msgpack_pack_false(pk);
    pk_kstr(pk, "result", rc == 0 ? "ok" : mx_errname(rc));
    pk_str(pk, "ok");
    if (rc == 0)
        msgpack_pack_true(pk);
    else
        msgpack_pack_false(pk);
}

#define LIST_MAX 1024u

static void cmd_members(struct mx_admin *a, msgpack_packer *pk)
{
    struct mx_member *v = calloc(LIST_MAX, sizeof(*v));
    if (!v)
        abort();
    pthread_mutex_lock(&a->mu);
    bool has = a->members_fn != NULL;
    uint32_t n = has ? a->members_fn(v, LIST_MAX, a->members_ctx) : 0;
    pthread_mutex_unlock(&a->mu);
    if (n > LIST_MAX)
        n = LIST_MAX;
    msgpack_pack_map(pk, 3);
    pk_kstr(pk, "registry", has ? "provider" : "none");
    pk_str(pk, "members");
    msgpack_pack_array(pk, n);
    for (uint32_t i = 0; i < n; i++) {
        char id[24];
        snprintf(id, sizeof(id), "%016llx", (unsigned long long)v[i].node_id);
        v[i].name[sizeof(v[i].name) - 1] = v[i].state[sizeof(v[i].state) - 1] = '\0';
        v[i].nng[sizeof(v[i].nng) - 1] = v[i].admin[sizeof(v[i].admin) - 1] = '\0';
        v[i].http[sizeof(v[i].http) - 1] = '\0';
        msgpack_pack_map(pk, 7);
        pk_kstr(pk, "name", v[i].name);
        pk_kstr(pk, "node_id", id);
        pk_kstr(pk, "state", v[i].state);
        pk_kstr(pk, "nng", v[i].nng);
        pk_kstr(pk, "admin", v[i].admin);
        pk_kstr(pk, "http", v[i].http);
        pk_ki64(pk, "age_ms", v[i].age_ms);
    }
    pk_str(pk, "ok");
    msgpack_pack_true(pk);
    free(v);
}

static void cmd_leases(struct mx_admin *a, msgpack_packer *pk)
{
    struct mx_lease *v = calloc(LIST_MAX, sizeof(*v));
    if (!v)
        abort();
    pthread_mutex_lock(&a->mu);
    bool has = a->leases_fn != NULL;
    uint32_t n = has ? a->leases_fn(v, LIST_MAX, a->leases_ctx) : 0;
    pthread_mutex_unlock(&a->mu);
    if (n > LIST_MAX)
        n = LIST_MAX;
    msgpack_pack_map(pk, 3);
    pk_kstr(pk, "registry", has ? "provider" : "none");
    pk_str(pk, "leases");
    msgpack_pack_array(pk, n);
    for (uint32_t i = 0; i < n; i++) {
        v[i].name[sizeof(v[i].name) - 1] = v[i].holder[sizeof(v[i].holder) - 1] = '\0';
        msgpack_pack_map(pk, 6);
        pk_kstr(pk, "name", v[i].name);
        pk_kstr(pk, "holder", v[i].holder);
        pk_ku64(pk, "epoch", v[i].epoch);
        pk_ku64(pk, "singleton_id", v[i].epoch >> MX_EPOCH_SEQ_BITS);
        pk_ku64(pk, "seq", v[i].epoch & MX_EPOCH_SEQ_MASK);
        pk_ki64(pk, "ttl_ms", v[i].ttl_ms);
    }
    pk_str(pk, "ok");
    msgpack_pack_true(pk);
    free(v);
}

/* Answer one request into pk. */
static void handle(struct mx_admin *a, const uint8_t *buf, size_t len, msgpack_packer *pk)
{
    /* relaxed: statistics */
    atomic_fetch_add_explicit(&a->requests, 1, memory_order_relaxed);
    if (len == 0 || len > REQ_MAX || mx_proto_validate(buf, len) != 0) {
        atomic_fetch_add_explicit(&a->bad, 1, memory_order_relaxed);
        pack_error(pk, "malformed request");
        return;
    }
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    if (msgpack_unpack_next(&up, (const char *)buf, len, &off) != MSGPACK_UNPACK_SUCCESS ||
        up.data.type != MSGPACK_OBJECT_MAP) {
        atomic_fetch_add_explicit(&a->bad, 1, memory_order_relaxed);
        pack_error(pk, "malformed request");
        goto out;
    }
    const msgpack_object *req = &up.data;
    if (a->token_len) {
        uint32_t tl = 0;
        const char *tok = req_str(req, "token", &tl);
        if (!tok || !mx_admin_token_equal(a->token, tok, tl)) {
            atomic_fetch_add_explicit(&a->refused, 1, memory_order_relaxed);
            pack_error(pk, "unauthorized: a valid admin token is required");
            goto out;
        }
    }
    uint32_t cl = 0;
    const char *cmd = req_str(req, "cmd", &cl);
    char c[16] = "";
    if (cmd && cl < sizeof(c)) {
        memcpy(c, cmd, cl);
        c[cl] = '\0';
    }
    if (strcmp(c, "stats") == 0)
        cmd_stats(a, pk);
    else if (strcmp(c, "actors") == 0)
        cmd_actors(a, req, pk);
    else if (strcmp(c, "mailbox") == 0)
        cmd_mailbox(a, req, pk);
    else if (strcmp(c, "deadletters") == 0)
        cmd_deadletters(a, pk);
    else if (strcmp(c, "drain") == 0)
        cmd_drain(a, req, pk, false);
    else if (strcmp(c, "undrain") == 0)
        cmd_drain(a, req, pk, true);
    else if (strcmp(c, "members") == 0)
        cmd_members(a, pk);
    else if (strcmp(c, "leases") == 0)
        cmd_leases(a, pk);
    else {
        atomic_fetch_add_explicit(&a->bad, 1, memory_order_relaxed);
        pack_error(pk, "unknown command");
    }
out:
    msgpack_unpacked_destroy(&up);
}

static void *admin_main(void *arg)
{
    struct mx_admin *a = arg;
    mx_log_set_context(-1, "admin", NULL);
    for (;;) {
        nng_msg *req;
        int rc = nng_recvmsg(a->sock, &req, 0);
        if (rc == NNG_ECLOSED)
            break;
        if (mx_now_ms() - a->sampled_ms >= 1000)
            sample(a);
        if (rc != 0)
            continue; /* timeout: that was the sampling tick */
        msgpack_sbuffer sb;
        msgpack_packer pk;
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        handle(a, nng_msg_body(req), nng_msg_len(req), &pk);
        nng_msg_free(req);
        nng_msg *rep;
        if (nng_msg_alloc(&rep, sb.size) == 0) {
            memcpy(nng_msg_body(rep), sb.data, sb.size);
            if (nng_sendmsg(a->sock, rep, 0) != 0)
                nng_msg_free(rep);
        }
        msgpack_sbuffer_destroy(&sb);
    }
    return NULL;
}

/* ---- public ---- */

/* The admin endpoint's counters in the registry (actor "admin", instance
 * the node's name), from the fields it and its pipe gate keep. */
static const struct mx_metric_desc admin_desc[] = {
    {"requests", "admin requests answered", MX_METRIC_COUNTER, offsetof(struct mx_admin, requests)},
    {"refused", "admin requests refused: no valid admin token", MX_METRIC_COUNTER,
     offsetof(struct mx_admin, refused)},
    {"bad", "malformed admin requests", MX_METRIC_COUNTER, offsetof(struct mx_admin, bad)},
    {"pipes_accepted", "admin connections accepted", MX_METRIC_COUNTER,
     offsetof(struct mx_admin, gate.accepted)},
    {"pipes_refused_tls", "admin connections closed: no certificate from the cluster CA",
     MX_METRIC_COUNTER, offsetof(struct mx_admin, gate.refused_tls)},
    {"pipes_refused_limit", "admin connections closed: too many at once", MX_METRIC_COUNTER,
     offsetof(struct mx_admin, gate.refused_limit)},
    {"pipes_timed_out", "admin connections closed idle", MX_METRIC_COUNTER,
     offsetof(struct mx_admin, gate.timed_out)},
};

int mx_admin_start(mx_system_t *sys, const struct mx_admin_opts *opts, mx_admin_t **out)
{
    if (!opts || !opts->url)
        return MX_EINVAL;
    size_t tl = opts->token ? strlen(opts->token) : 0;
    if (tl >= sizeof(((struct mx_admin *)0)->token))
        return MX_EINVAL;
    char url[256];
    if (mx_tls_url(opts->tls, opts->url, url, sizeof url) != 0)
        return MX_EINVAL;
    if (tl == 0 && !mx_url_is_loopback(url)) {
        MX_ERROR("admin: %s is not a loopback address and MX_ADMIN_TOKEN is empty", opts->url);
        return MX_ECONFIG;
    }
    struct mx_admin *a = calloc(1, sizeof(*a));
    if (!a)
        return MX_ENOMEM;
    a->sys = sys;
    a->remote = opts->remote;
    a->tls = opts->tls;
    memcpy(a->token, opts->token ? opts->token : "", tl + 1);
    a->token_len = tl;
    snprintf(a->version, sizeof(a->version), "%s", opts->version ? opts->version : "");
    a->started_ms = a->sampled_ms = mx_now_ms();
    pthread_mutex_init(&a->mu, NULL);
    a->rates = calloc(RATE_SLOTS, sizeof(struct rate_ent));
    a->rates_next = calloc(RATE_SLOTS, sizeof(struct rate_ent));
    if (!a->rates || !a->rates_next)
        abort();
    int rc = MX_EIO;
    if (nng_rep0_open(&a->sock) != 0)
        goto out_free;
    bool tls = strncmp(url, "tls+", 4) == 0;
    if (mx_pipe_gate_install(&a->gate, a->sock, ADMIN_PIPES, tls) != 0)
        goto out_close;
    nng_socket_set_ms(a->sock, NNG_OPT_RECVTIMEO, 1000);
    nng_socket_set_size(a->sock, NNG_OPT_RECVMAXSZ, REQ_MAX);
    nng_listener l;
    int nrc = nng_listener_create(&l, a->sock, url);
    if (nrc == 0)
        nng_listener_set_size(l, NNG_OPT_RECVMAXSZ, REQ_MAX);
    if (nrc == 0 && tls && mx_tls_listener(a->tls, l) != 0)
        nrc = NNG_EINVAL;
    if (nrc == 0)
        nrc = nng_listener_start(l, 0);
    if (nrc != 0) {
        MX_ERROR("admin: cannot listen on %s: %s", url, nng_strerror(nrc));
        rc = nrc == NNG_EADDRINVAL ? MX_EINVAL : MX_EIO;
        goto out_close;
    }
    if (strncmp(url, "tcp", 3) == 0 || tls)
        nng_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT, &a->port);
    if (pthread_create(&a->thread, NULL, admin_main, a) != 0)
        goto out_close;
    a->metrics_id = mx_metrics_register("admin", mx_system_node_name(sys), admin_desc,
                                        sizeof admin_desc / sizeof *admin_desc, a);
    *out = a;
    return 0;

out_close:
    nng_close(a->sock);
    mx_pipe_gate_fini(&a->gate);
out_free:
    free(a->rates);
    free(a->rates_next);
    pthread_mutex_destroy(&a->mu);
    free(a);
    return rc;
}

void mx_admin_stop(mx_admin_t *a)
{
    if (!a)
        return;
    mx_metrics_unregister(a->metrics_id);
    nng_close(a->sock);
    pthread_join(a->thread, NULL);
    mx_pipe_gate_fini(&a->gate);
    free(a->rates);
    free(a->rates_next);
    pthread_mutex_destroy(&a->mu);
    free(a);
}

int mx_admin_port(const mx_admin_t *a)
{
    return a->port;
}

int mx_admin_add_section(mx_admin_t *a, const char *name, mx_admin_section_fn fn, void *ctx)
{
    if (!name || !*name || strlen(name) >= sizeof(a->sections[0].name) || !fn)
        return MX_EINVAL;
    int rc = 0;
    pthread_mutex_lock(&a->mu);
    for (int i = 0; i < a->nsections; i++)
        if (strcmp(a->sections[i].name, name) == 0) {
            rc = MX_EEXISTS;
            goto out_unlock;
        }
    if (a->nsections >= MX_ADMIN_MAX_SECTIONS) {
        rc = MX_ELIMIT;
        goto out_unlock;
    }
    struct section *s = &a->sections[a->nsections++];
    snprintf(s->name, sizeof(s->name), "%s", name);
    s->fn = fn;
    s->ctx = ctx;
out_unlock:
    pthread_mutex_unlock(&a->mu);
    return rc;
}

void mx_admin_set_members(mx_admin_t *a, mx_admin_members_fn fn, void *ctx)
{
    pthread_mutex_lock(&a->mu);
    a->members_fn = fn;
    a->members_ctx = ctx;
    pthread_mutex_unlock(&a->mu);
}

void mx_admin_set_leases(mx_admin_t *a, mx_admin_leases_fn fn, void *ctx)
{
    pthread_mutex_lock(&a->mu);
    a->leases_fn = fn;
    a->leases_ctx = ctx;
    pthread_mutex_unlock(&a->mu);
}

void mx_admin_set_drain(mx_admin_t *a, mx_admin_drain_fn fn, void *ctx)
{
    pthread_mutex_lock(&a->mu);
    a->drain_fn = fn;
    a->drain_ctx = ctx;
    pthread_mutex_unlock(&a->mu);
}

void mx_admin_set_undrain(mx_admin_t *a, mx_admin_drain_fn fn, void *ctx)
{
    pthread_mutex_lock(&a->mu);
    a->undrain_fn = fn;
    a->undrain_ctx = ctx;
    pthread_mutex_unlock(&a->mu);
}

bool mx_admin_draining(const mx_admin_t *a)
{
    /* relaxed: a flag */
    return atomic_load_explicit(&a->draining, memory_order_relaxed);
}
