/* svc_cache.c - the cache shard actor: L1 (bounded in entries and bytes,
 * per-entry TTL, LRU) and the load path for a miss: fetcher (ocid, then
 * item-equipment or basic) and the offloaded calculator. One load per key
 * at a time: later requests for a key being loaded wait for it (bounded).
 *
 * Keys: "d|IGN|PRESET|OPTS" document, "c|IGN" character record, "o|IGN"
 * ocid, "n|IGN" unknown character, "e|OCID" raw equipment. Expired entries
 * stay (until LRU evicts them) so that a failing upstream can be answered
 * with the last document, marked stale.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mx_err.h"
#include "mx_fetch.h"
#include "mx_jsonr.h"
#include "mx_jsonw.h"
#include "mx_log.h"
#include "mx_svc.h"
#include "svc_int.h"

#define KEY_MAX 200
#define IGN_MAX 90

enum kind { K_DOC, K_CHAR, K_OCID, K_NEG, K_EQUIP };
enum stage { ST_OCID, ST_EQUIP, ST_BASIC, ST_CALC };

/* process-wide counters (relaxed: statistics) */
static struct {
    _Atomic uint64_t requests, l1_hits, l1_misses, stale, coalesced, loads, load_errors,
        not_found, neg_hits, evictions, refused, entries, bytes, calc_ms, calcs;
} g;
#define INC(f) atomic_fetch_add_explicit(&g.f, 1, memory_order_relaxed)
#define ADD(f, n) atomic_fetch_add_explicit(&g.f, (n), memory_order_relaxed)
#define SUB(f, n) atomic_fetch_sub_explicit(&g.f, (n), memory_order_relaxed)

struct centry {
    struct centry *hnext;        /* hash chain */
    struct centry *lprev, *lnext; /* LRU list, most recent first */
    uint64_t hash;
    int64_t expires_ms;
    enum kind kind;
    struct mx_http_doc *doc;     /* K_DOC, K_CHAR */
    struct mx_blob *blob;        /* K_EQUIP */
    char ocid[64];               /* K_OCID */
    size_t bytes;
    uint16_t klen;
    char key[];
};

struct waiter {
    struct mx_env env; /* from, corr, trace of the request */
};

struct flight {
    struct flight *next;
    char key[KEY_MAX];
    uint16_t klen;
    struct mx_m_exp_get q;       /* strings point into ign */
    char ign[IGN_MAX + 1];
    char ocid[64];
    enum stage stage;
    uint64_t corr;               /* outstanding fetch request or offload job */
    struct waiter *w;
    uint32_t nw, capw;
};

struct shard {
    struct mx_svc_opts o;
    struct mx_addr fetcher;
    bool have_fetcher;
    struct centry **buckets;
    uint32_t nbuckets; /* power of two */
    struct centry *lru_head, *lru_tail;
    uint32_t nentries;
    uint64_t nbytes;
    struct flight *flights;
    uint32_t nflights;
};

static void *xcalloc(size_t n, size_t sz)
{
    void *p = calloc(n ? n : 1, sz ? sz : 1);
    if (!p) {
        fprintf(stderr, "mx_svc: out of memory\n");
        abort();
    }
    return p;
}

static uint64_t hash_key(const char *k, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)k[i];
        h *= 1099511628211ull;
    }
    return h;
}

uint32_t mx_svc_shard(const char *ign, size_t len, uint32_t n)
{
    return n ? (uint32_t)(hash_key(ign, len) % n) : 0;
}

/* ---- L1 ---- */

static void lru_unlink(struct shard *s, struct centry *e)
{
    if (e->lprev)
        e->lprev->lnext = e->lnext;
    else
        s->lru_head = e->lnext;
    if (e->lnext)
        e->lnext->lprev = e->lprev;
    else
        s->lru_tail = e->lprev;
    e->lprev = e->lnext = NULL;
}

static void lru_push(struct shard *s, struct centry *e)
{
    e->lprev = NULL;
    e->lnext = s->lru_head;
    if (s->lru_head)
        s->lru_head->lprev = e;
    s->lru_head = e;
    if (!s->lru_tail)
        s->lru_tail = e;
}

static struct centry *l1_find(struct shard *s, const char *key, size_t klen)
{
    uint64_t h = hash_key(key, klen);
    for (struct centry *e = s->buckets[h & (s->nbuckets - 1)]; e; e = e->hnext)
        if (e->hash == h && e->klen == klen && memcmp(e->key, key, klen) == 0)
            return e;
    return NULL;
}

static void l1_remove(struct shard *s, struct centry *e)
{
    struct centry **pp = &s->buckets[e->hash & (s->nbuckets - 1)];
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    lru_unlink(s, e);
    s->nentries--;
    s->nbytes -= e->bytes;
    SUB(entries, 1);
    SUB(bytes, e->bytes);
    if (e->doc)
        mx_http_doc_unref(e->doc);
    mx_blob_unref(e->blob);
    free(e);
}

/* Fresh entry for key, or NULL (absent or expired). Touches the LRU. */
static struct centry *l1_get(struct shard *s, const char *key, size_t klen, bool allow_expired)
{
    struct centry *e = l1_find(s, key, klen);
    if (!e || (!allow_expired && e->expires_ms <= mx_now_ms()))
        return NULL;
    lru_unlink(s, e);
    lru_push(s, e);
    return e;
}

/* Store (replacing any entry under key); takes one reference of doc or blob. */
static struct centry *l1_put(struct shard *s, const char *key, size_t klen, enum kind kind,
                             struct mx_http_doc *doc, struct mx_blob *blob, const char *ocid,
                             uint32_t ttl_ms)
{
    struct centry *old = l1_find(s, key, klen);
    if (old)
        l1_remove(s, old);
    struct centry *e = xcalloc(1, sizeof *e + klen + 1);
    e->hash = hash_key(key, klen);
    e->klen = (uint16_t)klen;
    memcpy(e->key, key, klen);
    e->kind = kind;
    e->doc = doc;
    e->blob = blob;
    if (ocid)
        snprintf(e->ocid, sizeof e->ocid, "%s", ocid);
    e->expires_ms = mx_now_ms() + ttl_ms;
    e->bytes = sizeof *e + klen;
    if (doc)
        e->bytes += sizeof *doc + doc->plain->len + (doc->gzip ? doc->gzip->len : 0);
    if (blob)
        e->bytes += sizeof *blob + blob->len;
    struct centry **b = &s->buckets[e->hash & (s->nbuckets - 1)];
    e->hnext = *b;
    *b = e;
    lru_push(s, e);
    s->nentries++;
    s->nbytes += e->bytes;
    ADD(entries, 1);
    ADD(bytes, e->bytes);
    /* bounds: evict least recently used entries, never the new one */
    while ((s->nentries > s->o.l1_max_entries || s->nbytes > s->o.l1_max_bytes) &&
           s->lru_tail && s->lru_tail != e) {
        l1_remove(s, s->lru_tail);
        INC(evictions);
    }
    return e;
}

static size_t mkkey(char *buf, char tag, const char *a, const char *b)
{
    int n = snprintf(buf, KEY_MAX, "%c|%s%s%s", tag, a, b ? "|" : "", b ? b : "");
    return n < 0 || n >= KEY_MAX ? 0 : (size_t)n;
}

static size_t doc_key(char *buf, const struct mx_m_exp_get *q, const char *ign)
{
    char opt[32];
    snprintf(opt, sizeof opt, "%u|%d%d%d", (unsigned)q->preset, q->star_catch, q->discount,
             q->sunday);
    return mkkey(buf, 'd', ign, opt);
}

/* ---- replies ---- */

static void send_reply(mx_actor_t *self, const struct mx_env *req, struct mx_msg *rep)
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

static void reply_doc(mx_actor_t *self, const struct mx_env *req, struct mx_http_doc *doc,
                      bool stale)
{
    struct mx_m_exp_rep r = {.status = 0, .http_status = 200, .stale = stale};
    struct mx_msg *m;
    if (mx_msg_encode(MX_T_exp_rep, &r, &m) != 0)
        return;
    m->ptr = mx_http_doc_ref(doc);
    m->ptr_free = doc_unref_cb;
    send_reply(self, req, m);
}

static void reply_err(mx_actor_t *self, const struct mx_env *req, int status, uint32_t http,
                      const char *code, const char *message, uint32_t retry_after_s)
{
    struct mx_m_exp_rep r = {.status = status,
                             .http_status = http,
                             .code = {code, (uint32_t)strlen(code)},
                             .message = {message, (uint32_t)strlen(message)},
                             .retry_after_s = retry_after_s};
    struct mx_msg *m;
    if (mx_msg_encode(MX_T_exp_rep, &r, &m) == 0)
        send_reply(self, req, m);
}

/* ---- flights ---- */

static struct flight *flight_find_key(struct shard *s, const char *key, size_t klen)
{
    for (struct flight *f = s->flights; f; f = f->next)
        if (f->klen == klen && memcmp(f->key, key, klen) == 0)
            return f;
    return NULL;
}

static struct flight *flight_find_corr(struct shard *s, uint64_t corr)
{
    for (struct flight *f = s->flights; f; f = f->next)
        if (f->corr == corr)
            return f;
    return NULL;
}

static bool flight_wait(struct shard *s, struct flight *f, const struct mx_env *env)
{
    if (f->nw == f->capw) {
        if (f->capw >= s->o.max_waiters)
            return false;
        f->capw = f->capw ? f->capw * 2 : 4;
        if (f->capw > s->o.max_waiters)
            f->capw = s->o.max_waiters;
        f->w = realloc(f->w, f->capw * sizeof *f->w);
        if (!f->w)
            abort();
    }
    f->w[f->nw++].env = *env;
    return true;
}

static void flight_end(struct shard *s, struct flight *f)
{
    for (struct flight **pp = &s->flights; *pp; pp = &(*pp)->next)
        if (*pp == f) {
            *pp = f->next;
            break;
        }
    s->nflights--;
    free(f->w);
    free(f);
}

static void finish_doc(mx_actor_t *self, struct shard *s, struct flight *f,
                       struct mx_http_doc *doc, bool stale)
{
    for (uint32_t i = 0; i < f->nw; i++)
        reply_doc(self, &f->w[i].env, doc, stale);
    flight_end(s, f);
}

static void finish_err(mx_actor_t *self, struct shard *s, struct flight *f, int status,
                       uint32_t http, const char *code, const char *msg, uint32_t retry_s)
{
    INC(load_errors);
    for (uint32_t i = 0; i < f->nw; i++)
        reply_err(self, &f->w[i].env, status, http, code, msg, retry_s);
    flight_end(s, f);
}

/* Upstream trouble: the last stored value (even expired) if any, else 503. */
static void finish_upstream_fail(mx_actor_t *self, struct shard *s, struct flight *f, int status,
                                 uint32_t retry_ms, const char *why)
{
    struct centry *old = l1_get(s, f->key, f->klen, true);
    if (old && old->doc) {
        INC(stale);
        MX_WARN("upstream failed (%s); serving a stale entry for %s", why, f->key);
        finish_doc(self, s, f, old->doc, true);
        return;
    }
    uint32_t retry_s = retry_ms ? (retry_ms + 999) / 1000 : 10;
    if (status == MX_ETIMEDOUT)
        finish_err(self, s, f, status, 503, "S010", "Upstream (Nexon Open API) timed out", retry_s);
    else
        finish_err(self, s, f, status, 503, "S005", why[0] ? why : "Upstream (Nexon Open API) error",
                   retry_s);
}

static int fetch(mx_actor_t *self, struct shard *s, struct flight *f, enum mx_fetch_kind kind,
                 const char *arg)
{
    struct mx_msg *m;
    int rc = mx_fetch_request_new(kind, arg, NULL, false, &m);
    if (rc)
        return rc;
    rc = mx_request(self, s->fetcher, m, s->o.fetch_timeout_ms, &f->corr);
    if (rc)
        mx_msg_free(m);
    return rc;
}

static void start_calc(mx_actor_t *self, struct shard *s, struct flight *f,
                       struct mx_blob *equip)
{
    struct mx__calc_job *j = xcalloc(1, sizeof *j);
    j->equip = mx_blob_ref(equip);
    j->table = s->o.cube_table;
    j->memo_entries = s->o.memo_entries;
    snprintf(j->ign, sizeof j->ign, "%s", f->ign);
    j->preset = (int)f->q.preset;
    j->star_catch = f->q.star_catch;
    j->discount = f->q.discount;
    j->sunday = f->q.sunday;
    f->stage = ST_CALC;
    if (mx_offload(self, mx__calc_run, j, &f->corr) != 0) {
        mx__calc_job_free(j);
        finish_err(self, s, f, MX_EFULL, 503, "S005", "Calculator busy, retry shortly", 1);
    }
}

/* Next step once the ocid is known. */
static void after_ocid(mx_actor_t *self, struct shard *s, struct flight *f)
{
    int rc;
    if (f->q.what == MX_SVC_CHARACTER) {
        f->stage = ST_BASIC;
        rc = fetch(self, s, f, MX_FETCH_BASIC, f->ocid);
    } else {
        char ek[KEY_MAX];
        size_t ekl = mkkey(ek, 'e', f->ocid, NULL);
        struct centry *e = f->q.force ? NULL : l1_get(s, ek, ekl, false);
        if (e) {
            start_calc(self, s, f, e->blob);
            return;
        }
        f->stage = ST_EQUIP;
        rc = fetch(self, s, f, MX_FETCH_EQUIPMENT, f->ocid);
    }
    if (rc)
        finish_upstream_fail(self, s, f, MX_EUNAVAIL, 1000, "fetcher unavailable");
}

static void on_get(mx_actor_t *self, struct shard *s, struct mx_msg *m)
{
    struct mx_m_exp_get q;
    INC(requests);
    if (mx_msg_decode(m, &q) != 0 || !(m->env.flags & MX_ENVF_REQUEST))
        return; /* not a request we can answer: the sender's timeout tells it */
    if (q.ign.len == 0 || q.ign.len > IGN_MAX || memchr(q.ign.ptr, '|', q.ign.len) ||
        q.preset > 3 || (q.what != MX_SVC_EXPECTATION && q.what != MX_SVC_CHARACTER)) {
        reply_err(self, &m->env, MX_EINVAL, 400, "C001", "Invalid character name or preset", 0);
        return;
    }
    char ign[IGN_MAX + 1];
    memcpy(ign, q.ign.ptr, q.ign.len);
    ign[q.ign.len] = '\0';

    char key[KEY_MAX];
    size_t klen = mkkey(key, 'n', ign, NULL);
    if (!q.force && l1_get(s, key, klen, false)) {
        INC(neg_hits);
        reply_err(self, &m->env, MX_ENOTFOUND, 404, "C002", "Character not found", 0);
        return;
    }
    klen = q.what == MX_SVC_CHARACTER ? mkkey(key, 'c', ign, NULL) : doc_key(key, &q, ign);
    struct centry *hit = q.force ? NULL : l1_get(s, key, klen, false);
    if (hit) {
        INC(l1_hits);
        reply_doc(self, &m->env, hit->doc, false);
        return;
    }
    INC(l1_misses);
    struct flight *f = flight_find_key(s, key, klen);
    if (f) {
        if (!flight_wait(s, f, &m->env)) {
            INC(refused);
            reply_err(self, &m->env, MX_EFULL, 503, "S005", "Too many requests waiting", 1);
        } else {
            INC(coalesced);
        }
        return;
    }
    if (s->nflights >= s->o.max_flights || !s->have_fetcher) {
        INC(refused);
        reply_err(self, &m->env, MX_EFULL, 503, "S005",
                  s->have_fetcher ? "Too many loads in progress" : "No fetcher running", 1);
        return;
    }
    f = xcalloc(1, sizeof *f);
    memcpy(f->key, key, klen);
    f->klen = (uint16_t)klen;
    f->q = q;
    memcpy(f->ign, ign, q.ign.len + 1);
    f->q.ign = (struct mx_str){f->ign, q.ign.len};
    f->next = s->flights;
    s->flights = f;
    s->nflights++;
    flight_wait(s, f, &m->env);
    INC(loads);

    char ok[KEY_MAX];
    size_t okl = mkkey(ok, 'o', ign, NULL);
    struct centry *oc = l1_get(s, ok, okl, false);
    if (oc) {
        snprintf(f->ocid, sizeof f->ocid, "%s", oc->ocid);
        after_ocid(self, s, f);
        return;
    }
    f->stage = ST_OCID;
    if (fetch(self, s, f, MX_FETCH_ID, ign))
        finish_upstream_fail(self, s, f, MX_EUNAVAIL, 1000, "fetcher unavailable");
}

static void on_basic(mx_actor_t *self, struct shard *s, struct flight *f, const char *body,
                     size_t len)
{
    char name[96] = "", world[64] = "", cls[96] = "", image[512] = "";
    struct mx_jr_field fl[] = {
        {.key = "character_name", .kind = MX_JR_STR, .buf = name, .cap = sizeof name},
        {.key = "world_name", .kind = MX_JR_STR, .buf = world, .cap = sizeof world},
        {.key = "character_class", .kind = MX_JR_STR, .buf = cls, .cap = sizeof cls},
        {.key = "character_image", .kind = MX_JR_STR, .buf = image, .cap = sizeof image},
    };
    char err[160];
    if (mx_jsonr_object(body, len, fl, 4, err, sizeof err) != 0) {
        MX_WARN("character basic for %s unreadable: %s", f->ign, err);
        finish_upstream_fail(self, s, f, MX_EUPSTREAM, 0, "Upstream returned an unreadable record");
        return;
    }
    struct mx_jsonw w;
    mx_jsonw_init(&w, 8192);
    mx_jsonw_obj_open(&w);
    mx_jsonw_kstr(&w, "userIgn", name[0] ? name : f->ign);
    mx_jsonw_kstr(&w, "ocid", f->ocid);
    mx_jsonw_kint(&w, "likeCount", 0); /* likes arrive with the like-buffer */
    mx_jsonw_kstr(&w, "worldName", world);
    mx_jsonw_kstr(&w, "characterClass", cls);
    mx_jsonw_kstr(&w, "characterImage", image);
    mx_jsonw_obj_close(&w);
    if (w.err) {
        mx_jsonw_fini(&w);
        finish_err(self, s, f, MX_EINTERNAL, 500, "S005", "Could not build the character record", 0);
        return;
    }
    struct mx_blob *b = mx_blob_new(w.buf, w.len);
    mx_jsonw_fini(&w);
    struct mx_http_doc *doc;
    int rc = mx_http_doc_new("application/json", b, false, &doc);
    mx_blob_unref(b);
    if (rc) {
        finish_err(self, s, f, rc, 500, "S005", "Could not build the character record", 0);
        return;
    }
    l1_put(s, f->key, f->klen, K_CHAR, mx_http_doc_ref(doc), NULL, NULL, s->o.ttl_character_ms);
    finish_doc(self, s, f, doc, false);
    mx_http_doc_unref(doc);
}

static void on_fetch_rep(mx_actor_t *self, struct shard *s, struct flight *f, struct mx_msg *m)
{
    struct mx_fetch_result r;
    if (mx_fetch_reply_read(m, &r) != 0) {
        finish_upstream_fail(self, s, f, MX_EUPSTREAM, 0, "Fetcher reply unreadable");
        return;
    }
    if (r.status == MX_ENOTFOUND && f->stage == ST_OCID) {
        char nk[KEY_MAX];
        size_t nkl = mkkey(nk, 'n', f->ign, NULL);
        l1_put(s, nk, nkl, K_NEG, NULL, NULL, NULL, s->o.ttl_negative_ms);
        INC(not_found);
        finish_err(self, s, f, MX_ENOTFOUND, 404, "C002", "Character not found", 0);
        return;
    }
    if (r.status != 0) {
        char why[200];
        snprintf(why, sizeof why, "Upstream (Nexon Open API) error: %.*s", (int)r.error.len,
                 r.error.ptr);
        finish_upstream_fail(self, s, f, r.status, r.retry_after_ms, why);
        return;
    }
    switch (f->stage) {
    case ST_OCID: {
        struct mx_jr_field fl[] = {
            {.key = "ocid", .kind = MX_JR_STR, .required = true, .buf = f->ocid, .cap = sizeof f->ocid},
        };
        if (!r.body || mx_jsonr_object(r.body, r.body_len, fl, 1, NULL, 0) != 0 || !f->ocid[0] ||
            memchr(f->ocid, '|', strlen(f->ocid))) {
            finish_upstream_fail(self, s, f, MX_EUPSTREAM, 0, "Upstream returned no ocid");
            return;
        }
        char ok[KEY_MAX];
        size_t okl = mkkey(ok, 'o', f->ign, NULL);
        l1_put(s, ok, okl, K_OCID, NULL, NULL, f->ocid, s->o.ttl_ocid_ms);
        after_ocid(self, s, f);
        return;
    }
    case ST_EQUIP: {
        struct mx_fetch_body *b = mx_fetch_reply_take_body(m);
        if (!b) {
            finish_upstream_fail(self, s, f, MX_EUPSTREAM, 0, "Upstream returned no equipment");
            return;
        }
        /* one copy of the body into a shareable blob (the L1 keeps it) */
        struct mx_blob *eq = mx_blob_new(b->data, b->len);
        mx_fetch_body_free(b);
        char ek[KEY_MAX];
        size_t ekl = mkkey(ek, 'e', f->ocid, NULL);
        l1_put(s, ek, ekl, K_EQUIP, NULL, mx_blob_ref(eq), NULL, s->o.ttl_equipment_ms);
        start_calc(self, s, f, eq);
        mx_blob_unref(eq);
        return;
    }
    case ST_BASIC:
        if (!r.body) {
            finish_upstream_fail(self, s, f, MX_EUPSTREAM, 0, "Upstream returned no record");
            return;
        }
        on_basic(self, s, f, r.body, r.body_len);
        return;
    case ST_CALC:
        return;
    }
}

static void on_calc_done(mx_actor_t *self, struct shard *s, struct flight *f, struct mx_msg *m)
{
    struct mx__calc_job *j = m->ptr;
    if (!j) {
        finish_err(self, s, f, MX_EINTERNAL, 500, "S005", "Calculation failed", 0);
        return;
    }
    ADD(calcs, 1);
    ADD(calc_ms, (uint64_t)j->calc_ms);
    if (j->status == MX_ENOTFOUND) {
        finish_err(self, s, f, MX_ENOTFOUND, 404, "C002", "Preset not found for this character", 0);
        return;
    }
    if (j->status) {
        MX_WARN("calculation for %s failed: %s", f->ign, j->err);
        /* the equipment we hold is unusable: drop it so the next load refetches */
        char ek[KEY_MAX];
        size_t ekl = mkkey(ek, 'e', f->ocid, NULL);
        struct centry *e = l1_find(s, ek, ekl);
        if (e)
            l1_remove(s, e);
        finish_upstream_fail(self, s, f, MX_EUPSTREAM, 0,
                             "Upstream returned equipment that could not be read");
        return;
    }
    l1_put(s, f->key, f->klen, K_DOC, mx_http_doc_ref(j->cached), NULL, NULL, s->o.ttl_doc_ms);
    finish_doc(self, s, f, j->fresh, false);
}

static void on_invalidate(struct shard *s, struct mx_msg *m)
{
    struct mx_m_exp_invalidate q;
    if (mx_msg_decode(m, &q) != 0 || q.ign.len == 0 || q.ign.len > IGN_MAX)
        return;
    char pfx[KEY_MAX];
    int pl = snprintf(pfx, sizeof pfx, "|%.*s|", (int)q.ign.len, q.ign.ptr);
    for (struct centry *e = s->lru_head, *next; e; e = next) {
        next = e->lnext;
        /* "d|IGN|..." documents and "c|IGN" records of that character */
        if ((e->kind == K_DOC && e->klen > (size_t)pl && memcmp(e->key + 1, pfx, (size_t)pl) == 0) ||
            (e->kind == K_CHAR && e->klen == (size_t)pl && memcmp(e->key + 1, pfx, (size_t)pl - 1) == 0))
            l1_remove(s, e);
    }
}

static int cache_init(mx_actor_t *self, void *arg, void **state)
{
    const struct mx_svc_opts *o = arg;
    struct shard *s = xcalloc(1, sizeof *s);
    s->o = *o;
    s->nbuckets = 1024;
    while (s->nbuckets < o->l1_max_entries && s->nbuckets < (1u << 24))
        s->nbuckets <<= 1;
    s->buckets = xcalloc(s->nbuckets, sizeof *s->buckets);
    s->have_fetcher = mx_whereis(mx_system_of(self), o->fetcher_name, &s->fetcher) == 0;
    *state = s;
    return 0;
}

static int cache_receive(mx_actor_t *self, void *state, struct mx_msg *m)
{
    struct shard *s = state;
    if (!s->have_fetcher)
        s->have_fetcher = mx_whereis(mx_system_of(self), s->o.fetcher_name, &s->fetcher) == 0;
    switch (m->env.type) {
    case MX_T_exp_get:
        on_get(self, s, m);
        return 0;
    case MX_T_exp_invalidate:
        on_invalidate(s, m);
        return 0;
    default:
        break;
    }
    struct flight *f = m->env.corr ? flight_find_corr(s, m->env.corr) : NULL;
    if (!f)
        return 0; /* a reply for a load that already ended */
    switch (m->env.type) {
    case MX_T_fetch_rep:
        if (f->stage != ST_CALC)
            on_fetch_rep(self, s, f, m);
        break;
    case MX_T_exp_calc_done:
        if (f->stage == ST_CALC)
            on_calc_done(self, s, f, m);
        break;
    case MX_T_sys_offload_done:
        finish_err(self, s, f, MX_EINTERNAL, 500, "S005", "Calculation failed", 0);
        break;
    case MX_T_sys_timeout:
        if (f->stage != ST_CALC)
            finish_upstream_fail(self, s, f, MX_ETIMEDOUT, 0, "timeout");
        break;
    default:
        break;
    }
    return 0;
}

static void cache_stop(mx_actor_t *self, void *state)
{
    struct shard *s = state;
    while (s->flights) {
        struct flight *f = s->flights;
        for (uint32_t i = 0; i < f->nw; i++)
            reply_err(self, &f->w[i].env, MX_ESTOPPED, 503, "S005", "Node is stopping", 1);
        flight_end(s, f);
    }
    while (s->lru_head)
        l1_remove(s, s->lru_head);
    free(s->buckets);
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
        .fetch_timeout_ms = 20000,
        .max_flights = 1024,
        .max_waiters = 4096,
        .memo_entries = 65536,
    };
}

static struct mx_svc_opts g_opts; /* outlives the shards: their init copies it */

int mx_svc_start(mx_system_t *sys, const struct mx_svc_opts *opts)
{
    g_opts = *opts;
    int n = mx_system_schedulers(sys);
    for (int i = 0; i < n; i++) {
        char name[32];
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
#define LD(f) atomic_load_explicit(&g.f, memory_order_relaxed)
    *o = (struct mx_svc_stats){
        .requests = LD(requests), .l1_hits = LD(l1_hits), .l1_misses = LD(l1_misses),
        .l1_stale_served = LD(stale), .coalesced = LD(coalesced), .loads = LD(loads),
        .load_errors = LD(load_errors), .not_found = LD(not_found), .negative_hits = LD(neg_hits),
        .evictions = LD(evictions), .refused = LD(refused), .entries = LD(entries),
        .bytes = LD(bytes), .calc_ms_total = LD(calc_ms), .calcs = LD(calcs),
    };
#undef LD
}
