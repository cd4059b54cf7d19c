/* svc_cache.c - the cache shard actor: L1 (bounded in entries and bytes,
 * per-entry TTL, LRU), L2 Redis (framed gzip values with a CRC), L3 MySQL
 * (gzip equipment, summaries; through the mx_mysql pool and the spool) and
 * the load path for a miss: fetcher (ocid, then item-equipment or basic) and
 * the offloaded calculator.
 *
 * One load per key in the cluster: a shard that misses L1 runs one Lua
 * script that answers the L2 value, or takes the key's latch (SET NX PX),
 * or says who holds it. The holder loads and then, in one more script,
 * stores L2, releases the latch and publishes "D <key>" on the cluster's
 * cache channel; the other shards (any node) wait for that notice, bounded
 * by the latch's remaining TTL, then ask again (and load themselves once the
 * latch has expired). Without Redis every node loads for itself (counted).
 * Inside a node, later requests for a key being loaded wait for it.
 *
 * L1 keys: "d|IGN|PRESET|OPTS" document, "c|IGN" character record, "o|IGN"
 * ocid, "n|IGN" unknown character, "e|OCID" raw equipment (with its
 * document once MX_SVC_EQUIPMENT asked for it). A MX_SVC_EQUIPMENT load is
 * a flight under "q|IGN" whose L2 key holds no value: it only carries the
 * latch, so one node loads and the others find the equipment in L2. Expired entries
 * stay (until LRU evicts them) so that a failing upstream can be answered
 * with the last document, marked stale. Redis keys: docs/expectation-service.md.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mx_err.h"
#include "mx_fetch.h"
#include "mx_jsonr.h"
#include "mx_jsonw.h"
#include "mx_log.h"
#include "mx_outbox.h"
#include "mx_redis.h"
#include "mx_store.h"
#include "mx_cache.h"
#include "svc_int.h"

#define KEY_MAX 200
#define RKEY_MAX 320
#define IGN_MAX 90
#define TICK_MS 100
#define INVAL_ACK_MS 300      /* longest a recalculation waits for the nodes' acks */
#define FORCE_WINDOW_MS 10000 /* recalculations of one document within this share one load */
#define MAX_L3_INFLIGHT 256   /* MySQL jobs per shard: well under the mailbox */

enum kind { K_DOC, K_CHAR, K_OCID, K_NEG, K_EQUIP };
enum stage {
    ST_L2,      /* acquire script in flight */
    ST_WAIT,    /* another node holds the latch: waiting for its notice */
    ST_OCID_L2, /* GET ocid */
    ST_OCID,    /* fetch id */
    ST_OCID_L3, /* upstream failed: ocid from game_character */
    ST_EQ_L2,   /* GET equipment */
    ST_EQ_L3,   /* MySQL read of character_equipment */
    ST_EQUIP,   /* fetch item-equipment */
    ST_BASIC,   /* fetch basic */
    ST_CALC,    /* offloaded calculation */
    ST_PUBLISH, /* recalculated: answering once the invalidation is published */
    ST_ACK,     /* recalculated: answering once every subscriber applied it (bounded) */
};
enum eq_src { SRC_NONE, SRC_CACHE, SRC_L3, SRC_UPSTREAM };

/* process-wide counters (relaxed: statistics) */
static struct {
    _Atomic uint64_t requests, l1_hits, l1_misses, stale, coalesced, loads, load_errors, not_found,
        neg_hits, evictions, refused, entries, bytes, calc_ms, calcs;
    _Atomic uint64_t l2_hits, l2_misses, l2_corrupt, redis_errors, redis_fallbacks, latch_acquired,
        latch_waits, latch_notices, latch_timeouts, inval_sent, inval_applied, inval_ack_timeouts,
        l3_skipped_down, latch_renewals, l3_hits, l3_stale, l3_misses, l3_corrupt, l3_errors,
        l3_writes, l3_write_errors, l3_spooled, l3_refused, replays, replayed_ok;
} g;
#define INC(f) atomic_fetch_add_explicit(&g.f, 1, memory_order_relaxed)
#define ADD(f, n) atomic_fetch_add_explicit(&g.f, (n), memory_order_relaxed)
#define SUB(f, n) atomic_fetch_sub_explicit(&g.f, (n), memory_order_relaxed)

struct centry {
    struct centry *hnext;         /* hash chain */
    struct centry *lprev, *lnext; /* LRU list, most recent first */
    uint64_t hash;
    int64_t expires_ms;
    enum kind kind;
    struct mx_http_doc *doc; /* K_DOC, K_CHAR */
    struct mx_blob *blob;    /* K_EQUIP */
    char ocid[64];           /* K_OCID */
    size_t bytes;
    uint16_t klen;
    char key[];
};

struct waiter {
    struct mx_env env; /* from, corr, trace of the request */
};

struct flight {
    struct flight *next;
    uint64_t id; /* Redis callbacks and MySQL jobs find it by this */
    char key[KEY_MAX];
    uint16_t klen;
    struct mx_m_exp_get q; /* strings point into ign */
    char ign[IGN_MAX + 1];
    char ocid[64];
    char rkey[RKEY_MAX]; /* L2 key of what this flight produces */
    char token[48];      /* our latch token */
    enum stage stage;
    enum eq_src eq_src;
    uint64_t corr;               /* outstanding fetch request or offload job */
    uint64_t job;                /* outstanding MySQL job */
    int64_t wait_until;          /* ST_WAIT deadline (mx_now_ms) */
    int64_t latch_renew_at;      /* while latched: when to extend the latch (mx_now_ms) */
    int64_t wait_started;        /* first ST_WAIT (mx_now_ms); 0 = never waited */
    bool latched;                /* we hold the latch (release it at the end) */
    bool notified;               /* a completion notice came while acquiring */
    bool waited;                 /* waited once already: next time load ourselves */
    bool l2_retried;             /* a damaged L2 value was evicted once */
    bool upstream_failed;        /* serving from stored data only */
    bool serve_stale;            /* the document is built from stale equipment */
    struct mx_blob *stale_eq;    /* L3 equipment older than fresh: upstream fallback */
    struct mx_http_doc *result;  /* ST_PUBLISH/ST_ACK: the answer, one reference */
    char ack_nonce[48];          /* recalculation: the id acks of the invalidation carry */
    long long acks, acks_needed; /* acks seen; subscribers PUBLISH reached (-1: unknown) */
    int64_t ack_until;           /* ST_ACK deadline (mx_now_ms) */
    struct waiter *w;
    uint32_t nw, capw;
};

struct shard {
    mx_actor_t *self;
    struct mx_svc_opts o;
    int index, nshards;
    uint64_t node_id;
    struct mx_addr fetcher;
    bool have_fetcher;
    struct centry **buckets;
    uint32_t nbuckets; /* power of two */
    struct centry *lru_head, *lru_tail;
    uint32_t nentries;
    uint64_t nbytes;
    struct flight *flights;
    uint32_t nflights;
    uint64_t next_fid;
    /* L2 */
    mx_redis_t *rc, *sub;
    mx_redis_script_t *s_acquire, *s_done, *s_renew, *s_force;
    char channel[160];
    char prefix[80]; /* "mx:<cluster>:" */
    bool stopping;
    /* L3 */
    uint32_t l3_inflight;
    bool replaying;
    uint64_t replay_job;
    uint32_t ticks;
    /* shutdown (svc_latches): latches are released as soon as taken */
    bool no_latch;
    uint32_t rel_pending, rel_done; /* release scripts outstanding / answered */
    struct mx_env rel_req;          /* the request to answer once none is outstanding */
    bool rel_waiting;
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
/* MySQL is down as far as the cluster knows (mysql-health). */
static bool mysql_down(const struct shard *s)
{
    return s->o.mysql && s->o.mysql_up && !s->o.mysql_up();
}

/* A TTL stretched while MySQL is down: what expires now could not be
 * reloaded from L3. */
static uint32_t ttl_now(const struct shard *s, uint32_t ttl_ms)
{
    uint32_t f = s->o.mysql_down_ttl_factor ? s->o.mysql_down_ttl_factor : 3;
    if (!mysql_down(s) || ttl_ms > UINT32_MAX / f)
        return ttl_ms;
    return ttl_ms * f;
}

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
    e->expires_ms = mx_now_ms() + ttl_now(s, ttl_ms);
    e->bytes = sizeof *e + klen;
    if (doc) /* an equipment document shares its plain bytes with blob */
        e->bytes += sizeof *doc + (doc->plain == blob ? 0 : doc->plain->len) +
                    (doc->gzip ? doc->gzip->len : 0);
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
    while ((s->nentries > s->o.l1_max_entries || s->nbytes > s->o.l1_max_bytes) && s->lru_tail &&
           s->lru_tail != e) {
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

/* Drop the L1 entries of one character: documents, record, unknown mark
 * and (when known) its equipment; except the entry under keep. */
static void l1_drop_character(struct shard *s, const char *ign, const char *ocid, const char *keep,
                              size_t keep_len)
{
    char pfx[KEY_MAX];
    int pl = snprintf(pfx, sizeof pfx, "|%s|", ign);
    char ek[KEY_MAX];
    size_t ekl = ocid && ocid[0] ? mkkey(ek, 'e', ocid, NULL) : 0;
    for (struct centry *e = s->lru_head, *next; e; e = next) {
        next = e->lnext;
        if (keep && e->klen == keep_len && memcmp(e->key, keep, keep_len) == 0)
            continue;
        /* "d|IGN|..." documents, "c|IGN" records, "n|IGN" marks of that character */
        bool hit = (e->kind == K_DOC && e->klen > (size_t)pl &&
                    memcmp(e->key + 1, pfx, (size_t)pl) == 0) ||
                   ((e->kind == K_CHAR || e->kind == K_NEG) && e->klen == (size_t)pl &&
                    memcmp(e->key + 1, pfx, (size_t)pl - 1) == 0) ||
                   (ekl && e->kind == K_EQUIP && e->klen == ekl && memcmp(e->key, ek, ekl) == 0);
        if (hit)
            l1_remove(s, e);
    }
}

/* ---- Redis keys (docs/expectation-service.md) ----
 *   mx:<cluster>:{exp:<ign>}:d:<preset>:<opts>   document (frame)
 *   mx:<cluster>:{exp:<ign>}:c                   character record (frame)
 *   mx:<cluster>:{exp:<ign>}:o                   ocid (frame)
 *   mx:<cluster>:{exp:<ign>}:n                   unknown character mark
 *   mx:<cluster>:{exp:<ign>}:docs                set of the d/c keys (invalidation)
 *   <value key>:L                                its latch
 *   mx:<cluster>:{eq:<ocid>}                     raw equipment (frame)
 * One character's keys share a hash slot, so the scripts stay cluster-safe. */

static void rk_ign(const struct shard *s, char *buf, size_t cap, const char *ign, const char *sfx)
{
    snprintf(buf, cap, "%s{exp:%s}:%s", s->prefix, ign, sfx);
}

static void rk_flight(const struct shard *s, struct flight *f)
{
    char sfx[48];
    if (f->q.what == MX_SVC_CHARACTER)
        snprintf(sfx, sizeof sfx, "c");
    else if (f->q.what == MX_SVC_EQUIPMENT)
        snprintf(sfx, sizeof sfx, "q"); /* the latch's name only: never a value */
    else
        snprintf(sfx, sizeof sfx, "d:%u:%d%d%d", (unsigned)f->q.preset, f->q.star_catch,
                 f->q.discount, f->q.sunday);
    rk_ign(s, f->rkey, sizeof f->rkey, f->ign, sfx);
}

static void rk_equip(const struct shard *s, char *buf, size_t cap, const char *ocid)
{
    snprintf(buf, cap, "%s{eq:%s}", s->prefix, ocid);
}

static bool redis_up(const struct shard *s)
{
    return s->rc && mx_redis_connected(s->rc);
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

/* ---- L2 scripts ---- */

/* KEYS: value, latch, unknown mark. ARGV: token, latch ttl ms.
 * {0} unknown character, {1, value}, {2} latch taken, {3, pttl} held. */
static const char acquire_lua[] =
    "if redis.call('EXISTS', KEYS[3]) == 1 then return {0} end\n"
    "local v = redis.call('GET', KEYS[1])\n"
    "if v then return {1, v} end\n"
    "if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return {2} end\n"
    "return {3, redis.call('PTTL', KEYS[2])}\n";

/* KEYS: value, latch, docs index, unknown mark.
 * ARGV: mode (v store value, n store unknown mark, x nothing), value, ttl ms,
 * token ("" none held), channel, done notice, force ("1": drop every key of
 * the index first), invalidation notice ("" none). */
static const char done_lua[] =
    "if ARGV[7] == '1' then\n"
    "  for _, k in ipairs(redis.call('SMEMBERS', KEYS[3])) do redis.call('DEL', k) end\n"
    "  redis.call('DEL', KEYS[3], KEYS[4])\n"
    "end\n"
    "if ARGV[1] == 'v' then\n"
    "  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])\n"
    "  redis.call('SADD', KEYS[3], KEYS[1])\n"
    "  if redis.call('PTTL', KEYS[3]) < tonumber(ARGV[3]) then\n"
    "    redis.call('PEXPIRE', KEYS[3], ARGV[3]) end\n"
    "elseif ARGV[1] == 'n' then\n"
    "  redis.call('SET', KEYS[4], '1', 'PX', ARGV[3])\n"
    "end\n"
    "if ARGV[4] ~= '' and redis.call('GET', KEYS[2]) == ARGV[4] then\n"
    "  redis.call('DEL', KEYS[2]) end\n"
    "redis.call('PUBLISH', ARGV[5], ARGV[6])\n"
    "if ARGV[8] ~= '' then return redis.call('PUBLISH', ARGV[5], ARGV[8]) end\n"
    "return 0\n";

/* A recalculation (force): KEYS value, latch, marker; ARGV token, latch ttl
 * ms, marker ttl ms. 1: nobody recalculated this document within the
 * marker's window: the old value is dropped and the latch is ours (a plain
 * load holding it finishes harmlessly: its done script no longer owns it),
 * so every request for it on any node waits for the new one. 0: one is
 * (or just was) under way: coalesced, read it like any request. */
static const char force_lua[] =
    "if not redis.call('SET', KEYS[3], '1', 'NX', 'PX', ARGV[3]) then return 0 end\n"
    "redis.call('DEL', KEYS[1])\n"
    "redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])\n"
    "return 1\n";

/* KEYS: latch. ARGV: token, ttl ms. Extends the latch only if we still hold
 * it, so a load slower than the latch TTL is not joined by a second one. */
static const char renew_lua[] = "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
                                "  return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end\n"
                                "return 0\n";

static void redis_cb_count(mx_redis_t *r, int status, const redisReply *rep, void *arg)
{
    (void)r;
    (void)rep;
    (void)arg;
    if (status != 0 && status != MX_ESTOPPED)
        INC(redis_errors);
}

/* Run the done script for f: mode 'v' (frame), 'n' or 'x'. Releases the
 * latch if we hold it and tells the waiters. Fire and forget: if Redis is
 * away the latch expires by itself. */
static int l2_done_cb(struct shard *s, struct flight *f, char mode, const struct mx_blob *frame,
                      uint32_t ttl_ms, bool force, const char *inval, mx_redis_cb cb, void *arg)
{
    bool held = f->latched;
    f->latched = false;
    if (!redis_up(s) || (!held && mode == 'x' && !force)) {
        if (s->rc && (held || mode != 'x'))
            INC(redis_fallbacks);
        return MX_EUNAVAIL;
    }
    char latch[RKEY_MAX + 4], docs[RKEY_MAX], neg[RKEY_MAX], ttl[24], notice[RKEY_MAX + 4];
    snprintf(latch, sizeof latch, "%s:L", f->rkey);
    rk_ign(s, docs, sizeof docs, f->ign, "docs");
    rk_ign(s, neg, sizeof neg, f->ign, "n");
    snprintf(ttl, sizeof ttl, "%" PRIu32, ttl_ms ? ttl_now(s, ttl_ms) : 1);
    snprintf(notice, sizeof notice, "D %s", f->rkey);
    char m[2] = {mode, 0};
    const char *argv[] = {f->rkey,
                          latch,
                          docs,
                          neg,
                          m,
                          frame ? (const char *)frame->data : "",
                          ttl,
                          held ? f->token : "",
                          s->channel,
                          notice,
                          force ? "1" : "0",
                          inval ? inval : ""};
    size_t lens[12];
    for (int i = 0; i < 12; i++)
        lens[i] = strlen(argv[i]);
    if (frame)
        lens[5] = frame->len;
    int rc = mx_redis_eval(s->rc, s->s_done, cb ? cb : redis_cb_count, arg, 4, 12, argv, lens);
    if (rc != 0)
        INC(redis_errors);
    return rc;
}

static void l2_done(struct shard *s, struct flight *f, char mode, const struct mx_blob *frame,
                    uint32_t ttl_ms, bool force, const char *inval)
{
    l2_done_cb(s, f, mode, frame, ttl_ms, force, inval, NULL, NULL);
}

/* SET key frame PX ttl, fire and forget */
static void l2_set(struct shard *s, const char *key, const struct mx_blob *frame, uint32_t ttl_ms)
{
    if (!redis_up(s) || !frame)
        return;
    char ttl[24];
    snprintf(ttl, sizeof ttl, "%" PRIu32, ttl_ms ? ttl_now(s, ttl_ms) : 1);
    const char *argv[] = {"SET", key, (const char *)frame->data, "PX", ttl};
    size_t lens[] = {3, strlen(key), frame->len, 2, strlen(ttl)};
    if (mx_redis_argv(s->rc, redis_cb_count, NULL, 5, argv, lens) != 0)
        INC(redis_errors);
}

static void l2_del(struct shard *s, const char *key)
{
    if (redis_up(s) && mx_redis_command(s->rc, redis_cb_count, NULL, "DEL %s", key) != 0)
        INC(redis_errors);
}

/* ---- flights ---- */

/* A flight for key a request may join: any for a plain request (a
 * recalculation's result is only newer), only a recalculation for a
 * recalculation (a plain load may serve what it had before). */
static struct flight *flight_find_key(struct shard *s, const char *key, size_t klen, bool force)
{
    for (struct flight *f = s->flights; f; f = f->next)
        if (f->klen == klen && memcmp(f->key, key, klen) == 0 && (!force || f->q.force))
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

static struct flight *flight_find_id(struct shard *s, uint64_t id)
{
    for (struct flight *f = s->flights; f; f = f->next)
        if (f->id == id)
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
    if (f->latched) /* a load that ended without storing: let the others try */
        l2_done(s, f, 'x', NULL, 0, false, NULL);
    for (struct flight **pp = &s->flights; *pp; pp = &(*pp)->next)
        if (*pp == f) {
            *pp = f->next;
            break;
        }
    s->nflights--;
    mx_blob_unref(f->stale_eq);
    if (f->result)
        mx_http_doc_unref(f->result);
    free(f->w);
    free(f);
}

static void finish_doc(mx_actor_t *self, struct shard *s, struct flight *f, struct mx_http_doc *doc,
                       bool stale)
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

static void finish_not_found(mx_actor_t *self, struct shard *s, struct flight *f)
{
    char nk[KEY_MAX];
    size_t nkl = mkkey(nk, 'n', f->ign, NULL);
    l1_put(s, nk, nkl, K_NEG, NULL, NULL, NULL, s->o.ttl_negative_ms);
    INC(not_found);
    l2_done(s, f, 'n', NULL, s->o.ttl2_negative_ms, false, NULL);
    finish_err(self, s, f, MX_ENOTFOUND, 404, "C002", "Character not found", 0);
}

static void start_calc(mx_actor_t *self, struct shard *s, struct flight *f, struct mx_blob *equip);

static struct centry *equip_l1_stale(struct shard *s, const struct flight *f);

/* Upstream trouble: the last stored value (even expired) if any, else 503. */
static void finish_upstream_fail(mx_actor_t *self, struct shard *s, struct flight *f, int status,
                                 uint32_t retry_ms, const char *why)
{
    struct centry *old =
        f->q.what == MX_SVC_EQUIPMENT ? equip_l1_stale(s, f) : l1_get(s, f->key, f->klen, true);
    if (old && old->doc) {
        INC(stale);
        MX_WARN("upstream failed (%s); serving a stale entry for %s", why, f->key);
        finish_doc(self, s, f, old->doc, true);
        return;
    }
    if (f->stale_eq && f->stage != ST_CALC) {
        /* the last stored equipment (L3, past its freshness): compute from it */
        MX_WARN("upstream failed (%s); computing %s from stored equipment", why, f->key);
        struct mx_blob *eq = f->stale_eq;
        f->stale_eq = NULL;
        f->serve_stale = true;
        start_calc(self, s, f, eq);
        mx_blob_unref(eq);
        return;
    }
    uint32_t retry_s = retry_ms ? (retry_ms + 999) / 1000 : 10;
    /* outbox: nothing to serve; an UPSTREAM_REFETCH event warms it later
     * (a no-op unless MX_OUTBOX_REFETCH_URL is set) */
    mx_outbox_refetch(f->ign, f->q.what == MX_SVC_EXPECTATION);
    if (status == MX_ETIMEDOUT)
        finish_err(self, s, f, status, 503, "S010", "Upstream (Nexon Open API) timed out", retry_s);
    else
        finish_err(self, s, f, status, 503, "S005",
                   why[0] ? why : "Upstream (Nexon Open API) error", retry_s);
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

static void start_equip_doc(mx_actor_t *self, struct shard *s, struct flight *f,
                            struct mx_blob *equip);

static void start_calc(mx_actor_t *self, struct shard *s, struct flight *f, struct mx_blob *equip)
{
    if (f->q.what == MX_SVC_EQUIPMENT) {
        start_equip_doc(self, s, f, equip);
        return;
    }
    struct mx__calc_job *j = xcalloc(1, sizeof *j);
    j->equip = mx_blob_ref(equip);
    j->table = s->o.cube_table;
    j->memo_entries = s->o.memo_entries;
    snprintf(j->ign, sizeof j->ign, "%s", f->ign);
    j->preset = (int)f->q.preset;
    j->star_catch = f->q.star_catch;
    j->discount = f->q.discount;
    j->sunday = f->q.sunday;
    j->equip_fresh = !f->serve_stale && (f->eq_src == SRC_UPSTREAM || f->eq_src == SRC_L3);
    f->stage = ST_CALC;
    if (mx_offload(self, mx__calc_run, j, &f->corr) != 0) {
        mx__calc_job_free(j);
        finish_err(self, s, f, MX_EFULL, 503, "S007", "Calculator busy, retry shortly", 1);
    }
}

/* ---- L3 (MySQL) ---- */

static void l3_write(struct shard *s, uint32_t kind, uint8_t *rec, uint32_t len)
{
    if (!s->o.mysql) {
        free(rec);
        return;
    }
    if (s->l3_inflight >= MAX_L3_INFLIGHT) {
        INC(l3_refused);
        MX_WARN("L3: %u writes in flight; refusing one (kind %u)", s->l3_inflight, kind);
        free(rec);
        return;
    }
    struct mx_store_write *w = xcalloc(1, sizeof *w);
    w->spool = s->o.spool;
    w->kind = kind;
    w->rec = rec;
    w->len = len;
    if (mx_mysql_submit_ex(s->o.mysql, mx_store_write_job, w, mx_store_write_free, mx_self(s->self),
                           MX_MYSQL_CALL_DOWN, NULL) != 0) {
        INC(l3_refused);
        MX_WARN("L3: the MySQL queue refused a write (kind %u)", kind);
        mx_store_write_free(w);
        return;
    }
    s->l3_inflight++;
    INC(l3_writes);
}

static bool l3_read(struct shard *s, struct flight *f, mx_mysql_fn fn, enum stage st)
{
    if (!s->o.mysql || s->l3_inflight >= MAX_L3_INFLIGHT)
        return false;
    if (mysql_down(s)) {
        INC(l3_skipped_down); /* the cluster knows it is down: do not wait for it */
        return false;
    }
    struct mx__l3_read *r = xcalloc(1, sizeof *r);
    snprintf(r->ocid, sizeof r->ocid, "%s", f->ocid);
    snprintf(r->ign, sizeof r->ign, "%s", f->ign);
    r->fid = f->id;
    if (mx_mysql_submit(s->o.mysql, fn, r, mx__l3_read_free, mx_self(s->self), &f->job) != 0) {
        mx__l3_read_free(r);
        INC(l3_errors);
        return false;
    }
    s->l3_inflight++;
    f->stage = st;
    return true;
}

/* ---- the load ---- */

static void fetch_equipment(mx_actor_t *self, struct shard *s, struct flight *f)
{
    f->stage = ST_EQUIP;
    if (f->upstream_failed || fetch(self, s, f, MX_FETCH_EQUIPMENT, f->ocid))
        finish_upstream_fail(self, s, f, MX_EUNAVAIL, 1000, "fetcher unavailable");
}

static void equip_l3(mx_actor_t *self, struct shard *s, struct flight *f)
{
    if (!l3_read(s, f, mx__l3_read_job, ST_EQ_L3))
        fetch_equipment(self, s, f);
}

static void rop_free_arg(void *p)
{
    free(p);
}

struct rop {
    struct shard *s;
    uint64_t fid;
    enum stage stage;
};

static struct rop *rop_new(struct shard *s, struct flight *f)
{
    struct rop *r = xcalloc(1, sizeof *r);
    r->s = s;
    r->fid = f->id;
    r->stage = f->stage;
    return r;
}

/* the flight a Redis reply belongs to, if it still waits for it */
static struct flight *rop_flight(struct rop *r, int status)
{
    struct shard *s = r->s;
    struct flight *f = NULL;
    if (status != MX_ESTOPPED && !s->stopping) {
        f = flight_find_id(s, r->fid);
        if (f && f->stage != r->stage)
            f = NULL;
    }
    rop_free_arg(r);
    return f;
}

static void equip_l2_cb(mx_redis_t *rd, int status, const redisReply *rep, void *arg)
{
    (void)rd;
    struct shard *s = ((struct rop *)arg)->s;
    struct flight *f = rop_flight(arg, status);
    if (!f)
        return;
    if (status != 0) {
        INC(redis_errors);
    } else if (rep->type == REDIS_REPLY_STRING) {
        struct mx_blob *eq;
        if (mx__frame_decode(rep->str, rep->len, &eq) == 0) {
            INC(l2_hits);
            char ek[KEY_MAX];
            size_t ekl = mkkey(ek, 'e', f->ocid, NULL);
            l1_put(s, ek, ekl, K_EQUIP, NULL, mx_blob_ref(eq), NULL, s->o.ttl_equipment_ms);
            f->eq_src = SRC_CACHE;
            start_calc(s->self, s, f, eq);
            mx_blob_unref(eq);
            return;
        }
        INC(l2_corrupt);
        char rk[RKEY_MAX];
        rk_equip(s, rk, sizeof rk, f->ocid);
        MX_WARN("L2: damaged value under %s (%zu bytes); evicted", rk, (size_t)rep->len);
        l2_del(s, rk);
    } else {
        INC(l2_misses);
    }
    equip_l3(s->self, s, f);
}

/* Next step once the ocid is known. */
static void after_ocid(mx_actor_t *self, struct shard *s, struct flight *f)
{
    if (f->q.what == MX_SVC_CHARACTER) {
        f->stage = ST_BASIC;
        if (f->upstream_failed || fetch(self, s, f, MX_FETCH_BASIC, f->ocid))
            finish_upstream_fail(self, s, f, MX_EUNAVAIL, 1000, "fetcher unavailable");
        return;
    }
    char ek[KEY_MAX];
    size_t ekl = mkkey(ek, 'e', f->ocid, NULL);
    struct centry *e = f->q.force ? NULL : l1_get(s, ek, ekl, false);
    if (e) {
        f->eq_src = SRC_CACHE;
        start_calc(self, s, f, e->blob);
        return;
    }
    if (f->q.force && !f->upstream_failed) {
        fetch_equipment(self, s, f);
        return;
    }
    if (redis_up(s)) {
        char rk[RKEY_MAX];
        rk_equip(s, rk, sizeof rk, f->ocid);
        f->stage = ST_EQ_L2;
        struct rop *r = rop_new(s, f);
        if (mx_redis_command(s->rc, equip_l2_cb, r, "GET %s", rk) == 0)
            return;
        free(r);
        INC(redis_errors);
    }
    equip_l3(self, s, f);
}

static bool ocid_ok(const char *o)
{
    size_t n = strlen(o);
    if (n == 0 || n >= 64)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((o[i] >= '0' && o[i] <= '9') || (o[i] >= 'a' && o[i] <= 'z') ||
              (o[i] >= 'A' && o[i] <= 'Z') || o[i] == '-' || o[i] == '_'))
            return false;
    return true;
}

static void fetch_ocid(mx_actor_t *self, struct shard *s, struct flight *f)
{
    f->stage = ST_OCID;
    if (fetch(self, s, f, MX_FETCH_ID, f->ign))
        finish_upstream_fail(self, s, f, MX_EUNAVAIL, 1000, "fetcher unavailable");
}

static void ocid_l2_cb(mx_redis_t *rd, int status, const redisReply *rep, void *arg)
{
    (void)rd;
    struct shard *s = ((struct rop *)arg)->s;
    struct flight *f = rop_flight(arg, status);
    if (!f)
        return;
    if (status != 0) {
        INC(redis_errors);
    } else if (rep->type == REDIS_REPLY_STRING) {
        struct mx_blob *b = NULL; /* mx__frame_decode leaves it unset when it fails */
        if (mx__frame_decode(rep->str, rep->len, &b) == 0 && b->len < sizeof f->ocid) {
            memcpy(f->ocid, b->data, b->len);
            f->ocid[b->len] = '\0';
            mx_blob_unref(b);
            if (ocid_ok(f->ocid)) {
                INC(l2_hits);
                char ok[KEY_MAX];
                size_t okl = mkkey(ok, 'o', f->ign, NULL);
                l1_put(s, ok, okl, K_OCID, NULL, NULL, f->ocid, s->o.ttl_ocid_ms);
                after_ocid(s->self, s, f);
                return;
            }
            f->ocid[0] = '\0';
        } else if (b) {
            mx_blob_unref(b);
        }
        INC(l2_corrupt);
        char rk[RKEY_MAX];
        rk_ign(s, rk, sizeof rk, f->ign, "o");
        MX_WARN("L2: damaged value under %s; evicted", rk);
        l2_del(s, rk);
    } else {
        INC(l2_misses);
    }
    fetch_ocid(s->self, s, f);
}

/* The load proper (we hold the latch, or Redis cannot coordinate). */
static void start_load(mx_actor_t *self, struct shard *s, struct flight *f)
{
    INC(loads);
    char ok[KEY_MAX];
    size_t okl = mkkey(ok, 'o', f->ign, NULL);
    struct centry *oc = l1_get(s, ok, okl, false);
    if (oc) {
        snprintf(f->ocid, sizeof f->ocid, "%s", oc->ocid);
        after_ocid(self, s, f);
        return;
    }
    if (redis_up(s)) {
        char rk[RKEY_MAX];
        rk_ign(s, rk, sizeof rk, f->ign, "o");
        f->stage = ST_OCID_L2;
        struct rop *r = rop_new(s, f);
        if (mx_redis_command(s->rc, ocid_l2_cb, r, "GET %s", rk) == 0)
            return;
        free(r);
        INC(redis_errors);
    }
    fetch_ocid(self, s, f);
}

/* A document or record value from L2: decode it, keep it in L1, answer. */
static bool serve_l2_value(mx_actor_t *self, struct shard *s, struct flight *f, const char *v,
                           size_t len)
{
    struct mx_blob *plain;
    if (mx__frame_decode(v, len, &plain) != 0)
        return false;
    struct mx_http_doc *doc;
    bool ok =
        plain->len > 1 && plain->data[0] == '{' &&
        mx_http_doc_new("application/json", plain, f->q.what == MX_SVC_EXPECTATION, &doc) == 0;
    mx_blob_unref(plain);
    if (!ok)
        return false;
    INC(l2_hits);
    bool doc_kind = f->q.what == MX_SVC_EXPECTATION;
    l1_put(s, f->key, f->klen, doc_kind ? K_DOC : K_CHAR, mx_http_doc_ref(doc), NULL, NULL,
           doc_kind ? s->o.ttl_doc_ms : s->o.ttl_character_ms);
    finish_doc(self, s, f, doc, false);
    mx_http_doc_unref(doc);
    return true;
}

static void l2_acquire(mx_actor_t *self, struct shard *s, struct flight *f);

static void acquire_cb(mx_redis_t *rd, int status, const redisReply *rep, void *arg)
{
    (void)rd;
    struct shard *s = ((struct rop *)arg)->s;
    struct flight *f = rop_flight(arg, status);
    if (!f)
        return;
    mx_actor_t *self = s->self;
    if (status != 0 || rep->type != REDIS_REPLY_ARRAY || rep->elements < 1 ||
        rep->element[0]->type != REDIS_REPLY_INTEGER) {
        INC(redis_errors);
        INC(redis_fallbacks);
        start_load(self, s, f);
        return;
    }
    long long what = rep->element[0]->integer;
    if (what == 0) {
        INC(neg_hits);
        char nk[KEY_MAX];
        size_t nkl = mkkey(nk, 'n', f->ign, NULL);
        l1_put(s, nk, nkl, K_NEG, NULL, NULL, NULL, s->o.ttl_negative_ms);
        finish_err(self, s, f, MX_ENOTFOUND, 404, "C002", "Character not found", 0);
        return;
    }
    if (what == 1 && rep->elements == 2 && rep->element[1]->type == REDIS_REPLY_STRING) {
        if (serve_l2_value(self, s, f, rep->element[1]->str, rep->element[1]->len))
            return;
        INC(l2_corrupt);
        MX_WARN("L2: damaged value under %s (%zu bytes); evicted", f->rkey,
                (size_t)rep->element[1]->len);
        l2_del(s, f->rkey);
        if (!f->l2_retried) {
            f->l2_retried = true;
            l2_acquire(self, s, f); /* after the DEL, on the same connection */
        } else {
            start_load(self, s, f);
        }
        return;
    }
    INC(l2_misses);
    if (what == 2) {
        INC(latch_acquired);
        f->latched = true;
        f->latch_renew_at = mx_now_ms() + s->o.latch_ttl_ms / 3;
        if (s->no_latch) /* draining: never make another node wait on us */
            l2_done(s, f, 'x', NULL, 0, false, NULL);
        start_load(self, s, f);
        return;
    }
    /* held by another load (this node's other life, or another node) */
    if (f->notified) {
        f->notified = false;
        l2_acquire(self, s, f);
        return;
    }
    /* The holder renews the latch while its load runs, so a latch still
     * there after its TTL means a slow load, not a dead holder: keep
     * waiting, but never longer than one load may take (the fetch budget). */
    int64_t now = mx_now_ms();
    if (!f->wait_started)
        f->wait_started = now;
    if (f->waited && now - f->wait_started >= (int64_t)s->o.fetch_timeout_ms) {
        INC(latch_timeouts);
        MX_WARN("L2: latch of %s still held after waiting %lld ms; loading here too", f->rkey,
                (long long)(now - f->wait_started));
        start_load(self, s, f);
        return;
    }
    f->waited = false;
    long long pttl = rep->elements == 2 && rep->element[1]->type == REDIS_REPLY_INTEGER
                         ? rep->element[1]->integer
                         : (long long)s->o.latch_ttl_ms;
    if (pttl < 0 || pttl > (long long)s->o.latch_ttl_ms)
        pttl = s->o.latch_ttl_ms;
    INC(latch_waits);
    f->stage = ST_WAIT;
    f->wait_until = mx_now_ms() + pttl + 50; /* the latch is gone by then */
}

static void l2_acquire(mx_actor_t *self, struct shard *s, struct flight *f)
{
    if (!redis_up(s)) {
        if (s->rc)
            INC(redis_fallbacks);
        start_load(self, s, f);
        return;
    }
    char latch[RKEY_MAX + 4], neg[RKEY_MAX], ttl[24];
    snprintf(latch, sizeof latch, "%s:L", f->rkey);
    rk_ign(s, neg, sizeof neg, f->ign, "n");
    snprintf(ttl, sizeof ttl, "%" PRIu32, s->o.latch_ttl_ms);
    const char *argv[] = {f->rkey, latch, neg, f->token, ttl};
    f->stage = ST_L2;
    f->notified = false;
    struct rop *r = rop_new(s, f);
    if (mx_redis_eval(s->rc, s->s_acquire, acquire_cb, r, 3, 5, argv, NULL) != 0) {
        free(r);
        INC(redis_errors);
        INC(redis_fallbacks);
        start_load(self, s, f);
    }
}

static void force_cb(mx_redis_t *rd, int status, const redisReply *rep, void *arg)
{
    (void)rd;
    struct shard *s = ((struct rop *)arg)->s;
    struct flight *f = rop_flight(arg, status);
    if (!f)
        return;
    if (status != 0 || rep->type != REDIS_REPLY_INTEGER) {
        INC(redis_errors);
        INC(redis_fallbacks);
        start_load(s->self, s, f); /* recalculated on this node only */
    } else if (rep->integer == 1) {
        INC(latch_acquired);
        f->latched = true;
        f->latch_renew_at = mx_now_ms() + s->o.latch_ttl_ms / 3;
        start_load(s->self, s, f);
    } else {
        INC(coalesced); /* another request (any node) recalculates it right now */
        f->q.force = false;
        l2_acquire(s->self, s, f);
    }
}

/* A recalculation: one per document and FORCE_WINDOW_MS across the
 * cluster (force_lua); without Redis, one per document on this node. */
static void force_acquire(mx_actor_t *self, struct shard *s, struct flight *f)
{
    if (!redis_up(s) || !s->s_force || s->no_latch) {
        start_load(self, s, f);
        return;
    }
    char latch[RKEY_MAX + 4], mark[RKEY_MAX + 4], ttl[24], wttl[24];
    snprintf(latch, sizeof latch, "%s:L", f->rkey);
    snprintf(mark, sizeof mark, "%s:F", f->rkey);
    snprintf(ttl, sizeof ttl, "%" PRIu32, s->o.latch_ttl_ms);
    snprintf(wttl, sizeof wttl, "%u", FORCE_WINDOW_MS);
    const char *argv[] = {f->rkey, latch, mark, f->token, ttl, wttl};
    f->stage = ST_L2;
    struct rop *r = rop_new(s, f);
    if (mx_redis_eval(s->rc, s->s_force, force_cb, r, 3, 6, argv, NULL) != 0) {
        free(r);
        INC(redis_errors);
        start_load(self, s, f);
    }
}

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

/* ---- MX_SVC_EQUIPMENT: the raw equipment as a document ---- */

/* The fresh L1 equipment of ign that already has its document, or NULL. */
static struct centry *equip_l1(struct shard *s, const char *ign)
{
    char k[KEY_MAX];
    size_t kl = mkkey(k, 'o', ign, NULL);
    struct centry *o = l1_get(s, k, kl, false);
    if (!o)
        return NULL;
    kl = mkkey(k, 'e', o->ocid, NULL);
    struct centry *e = l1_get(s, k, kl, false);
    return e && e->doc ? e : NULL;
}

/* Upstream failed: the L1 equipment of f's character with its document,
 * even expired (the ocid from the flight, or an expired L1 entry), or NULL. */
static struct centry *equip_l1_stale(struct shard *s, const struct flight *f)
{
    char k[KEY_MAX], ocid[64];
    snprintf(ocid, sizeof ocid, "%s", f->ocid);
    if (!ocid[0]) {
        size_t kl = mkkey(k, 'o', f->ign, NULL);
        struct centry *o = l1_get(s, k, kl, true);
        if (!o)
            return NULL;
        snprintf(ocid, sizeof ocid, "%s", o->ocid);
    }
    size_t kl = mkkey(k, 'e', ocid, NULL);
    struct centry *e = l1_get(s, k, kl, true);
    return e && e->doc ? e : NULL;
}

/* The equipment is loaded (from L1, L2, L3 or upstream, by the same steps
 * as for a calculation): answer with its document, made (gzip) on an
 * offload thread unless L1 already holds it. */
static void start_equip_doc(mx_actor_t *self, struct shard *s, struct flight *f,
                            struct mx_blob *equip)
{
    char ek[KEY_MAX];
    size_t ekl = mkkey(ek, 'e', f->ocid, NULL);
    struct centry *e = l1_find(s, ek, ekl);
    if (e && e->blob == equip && e->doc) {
        finish_doc(self, s, f, e->doc, f->serve_stale);
        return;
    }
    struct mx__calc_job *j = xcalloc(1, sizeof *j);
    j->equip = mx_blob_ref(equip);
    j->equip_doc = true;
    j->equip_fresh = !f->serve_stale && (f->eq_src == SRC_UPSTREAM || f->eq_src == SRC_L3);
    f->stage = ST_CALC;
    if (mx_offload(self, mx__calc_run, j, &f->corr) != 0) {
        mx__calc_job_free(j);
        finish_err(self, s, f, MX_EFULL, 503, "S007", "Calculator busy, retry shortly", 1);
    }
}

static void on_equip_done(mx_actor_t *self, struct shard *s, struct flight *f,
                          struct mx__calc_job *j)
{
    if (j->status) {
        MX_WARN("equipment document for %s failed: %s", f->ign, j->err);
        finish_err(self, s, f, j->status, 500, "S001", "Could not prepare the equipment", 0);
        return;
    }
    if (f->serve_stale) { /* stored equipment past its freshness: answer, keep nothing */
        INC(stale);
        finish_doc(self, s, f, j->fresh, true);
        return;
    }
    /* L1: the document joins the equipment entry (same bytes), or a new entry */
    char ek[KEY_MAX];
    size_t ekl = mkkey(ek, 'e', f->ocid, NULL);
    struct centry *e = l1_find(s, ek, ekl);
    if (e && e->blob == j->equip && !e->doc) {
        size_t add = sizeof *j->fresh + (j->fresh->gzip ? j->fresh->gzip->len : 0);
        e->doc = mx_http_doc_ref(j->fresh);
        e->bytes += add;
        s->nbytes += add;
        ADD(bytes, add);
    } else if (!e || e->blob != j->equip) {
        l1_put(s, ek, ekl, K_EQUIP, mx_http_doc_ref(j->fresh), mx_blob_ref(j->equip), NULL,
               s->o.ttl_equipment_ms);
    }
    if (j->equip_frame) { /* loaded from L3 or upstream: L2 for the other nodes */
        char rk[RKEY_MAX];
        rk_equip(s, rk, sizeof rk, f->ocid);
        l2_set(s, rk, j->equip_frame, s->o.ttl2_equipment_ms);
    }
    uint8_t *rec;
    uint32_t rlen;
    if (s->o.mysql && f->eq_src == SRC_UPSTREAM && j->equip_frame &&
        mx_store_rec_equipment(f->ocid, j->equip_frame->data + MX__FRAME_HDR,
                               j->equip_frame->len - MX__FRAME_HDR, mx_unix_ms(), &rec, &rlen) == 0)
        l3_write(s, MX_STORE_REC_EQUIPMENT, rec, rlen);
    finish_doc(self, s, f, j->fresh, false); /* releases the latch: waiters find L2 */
}

static void on_get(mx_actor_t *self, struct shard *s, struct mx_msg *m)
{
    struct mx_m_exp_get q;
    INC(requests);
    if (mx_msg_decode(m, &q) != 0 || !(m->env.flags & MX_ENVF_REQUEST))
        return; /* not a request we can answer: the sender's timeout tells it */
    if (!ign_ok(&q.ign) || q.preset > 3 ||
        (q.what != MX_SVC_EXPECTATION && q.what != MX_SVC_CHARACTER &&
         q.what != MX_SVC_EQUIPMENT)) {
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
    if (q.what == MX_SVC_EQUIPMENT)
        q.force = false; /* the equipment is refreshed by its TTLs only */
    klen = q.what == MX_SVC_CHARACTER   ? mkkey(key, 'c', ign, NULL)
           : q.what == MX_SVC_EQUIPMENT ? mkkey(key, 'q', ign, NULL)
                                        : doc_key(key, &q, ign);
    struct centry *hit = q.force                      ? NULL
                         : q.what == MX_SVC_EQUIPMENT ? equip_l1(s, ign)
                                                      : l1_get(s, key, klen, false);
    if (hit) {
        INC(l1_hits);
        reply_doc(self, &m->env, hit->doc, false);
        return;
    }
    INC(l1_misses);
    struct flight *f = flight_find_key(s, key, klen, q.force);
    if (f) {
        if (!flight_wait(s, f, &m->env)) {
            INC(refused);
            reply_err(self, &m->env, MX_EFULL, 503, "S007", "Too many requests waiting", 1);
        } else {
            INC(coalesced);
        }
        return;
    }
    if (s->nflights >= s->o.max_flights || !s->have_fetcher) {
        INC(refused);
        reply_err(self, &m->env, MX_EFULL, 503, "S007",
                  s->have_fetcher ? "Too many loads in progress" : "No fetcher running", 1);
        return;
    }
    f = xcalloc(1, sizeof *f);
    f->id = ++s->next_fid;
    memcpy(f->key, key, klen);
    f->klen = (uint16_t)klen;
    f->q = q;
    memcpy(f->ign, ign, q.ign.len + 1);
    f->q.ign = (struct mx_str){f->ign, q.ign.len};
    rk_flight(s, f);
    snprintf(f->token, sizeof f->token, "%016" PRIx64 ":%d:%" PRIu64, s->node_id, s->index, f->id);
    f->next = s->flights;
    s->flights = f;
    s->nflights++;
    flight_wait(s, f, &m->env);
    if (q.force)
        force_acquire(self, s, f); /* recompute once; the result replaces L2 for everyone */
    else
        l2_acquire(self, s, f);
}

/* ---- results ---- */

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
        finish_err(self, s, f, MX_EINTERNAL, 500, "S001", "Could not build the character record",
                   0);
        return;
    }
    struct mx_blob *b = mx_blob_new(w.buf, w.len);
    mx_jsonw_fini(&w);
    struct mx_http_doc *doc;
    int rc = mx_http_doc_new("application/json", b, false, &doc);
    if (rc) {
        mx_blob_unref(b);
        finish_err(self, s, f, rc, 500, "S001", "Could not build the character record", 0);
        return;
    }
    struct mx_blob *frame = NULL;
    if (mx__frame_encode(b->data, b->len, 6, &frame) == 0) /* a few hundred bytes */
        l2_done(s, f, 'v', frame, s->o.ttl2_character_ms, false, NULL);
    mx_blob_unref(frame);
    mx_blob_unref(b);
    struct mx_store_character ch = {.user_ign = f->ign,
                                    .ocid = f->ocid,
                                    .world_name = world,
                                    .character_class = cls,
                                    .character_image = image};
    uint8_t *rec;
    uint32_t rlen;
    if (s->o.mysql && mx_store_rec_character(&ch, mx_unix_ms(), &rec, &rlen) == 0)
        l3_write(s, MX_STORE_REC_CHARACTER, rec, rlen);
    l1_put(s, f->key, f->klen, K_CHAR, mx_http_doc_ref(doc), NULL, NULL, s->o.ttl_character_ms);
    finish_doc(self, s, f, doc, false);
    mx_http_doc_unref(doc);
}

static void on_ocid(mx_actor_t *self, struct shard *s, struct flight *f)
{
    char ok[KEY_MAX];
    size_t okl = mkkey(ok, 'o', f->ign, NULL);
    l1_put(s, ok, okl, K_OCID, NULL, NULL, f->ocid, s->o.ttl_ocid_ms);
    struct mx_blob *frame;
    if (redis_up(s) && mx__frame_encode(f->ocid, strlen(f->ocid), 6, &frame) == 0) {
        char rk[RKEY_MAX];
        rk_ign(s, rk, sizeof rk, f->ign, "o");
        l2_set(s, rk, frame, s->o.ttl2_ocid_ms);
        mx_blob_unref(frame);
    }
    struct mx_store_character ch = {.user_ign = f->ign, .ocid = f->ocid};
    uint8_t *rec;
    uint32_t rlen;
    if (s->o.mysql && f->q.what == MX_SVC_EXPECTATION &&
        mx_store_rec_character(&ch, mx_unix_ms(), &rec, &rlen) == 0)
        l3_write(s, MX_STORE_REC_CHARACTER, rec, rlen);
    after_ocid(self, s, f);
}

static void on_fetch_rep(mx_actor_t *self, struct shard *s, struct flight *f, struct mx_msg *m)
{
    struct mx_fetch_result r;
    if (mx_fetch_reply_read(m, &r) != 0) {
        finish_upstream_fail(self, s, f, MX_EUPSTREAM, 0, "Fetcher reply unreadable");
        return;
    }
    if (r.status == MX_ENOTFOUND && f->stage == ST_OCID) {
        finish_not_found(self, s, f);
        return;
    }
    if (r.status != 0) {
        char why[200];
        snprintf(why, sizeof why, "Upstream (Nexon Open API) error: %.*s", (int)r.error.len,
                 r.error.ptr);
        if (f->stage == ST_OCID && !f->upstream_failed && !l1_get(s, f->key, f->klen, true)) {
            /* no ocid: the one MySQL knows leads to the stored equipment */
            f->upstream_failed = true;
            if (l3_read(s, f, mx__l3_ocid_job, ST_OCID_L3))
                return;
        }
        finish_upstream_fail(self, s, f, r.status, r.retry_after_ms, why);
        return;
    }
    switch (f->stage) {
    case ST_OCID: {
        struct mx_jr_field fl[] = {
            {.key = "ocid",
             .kind = MX_JR_STR,
             .required = true,
             .buf = f->ocid,
             .cap = sizeof f->ocid},
        };
        if (!r.body || mx_jsonr_object(r.body, r.body_len, fl, 1, NULL, 0) != 0 ||
            !ocid_ok(f->ocid)) {
            f->ocid[0] = '\0';
            finish_upstream_fail(self, s, f, MX_EUPSTREAM, 0, "Upstream returned no ocid");
            return;
        }
        on_ocid(self, s, f);
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
        mx_blob_unref(f->stale_eq);
        f->stale_eq = NULL;
        f->eq_src = SRC_UPSTREAM;
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
    default:
        return;
    }
}

static void published_cb(mx_redis_t *rd, int status, const redisReply *rep, void *arg);

/* Store what a load produced in L2 and L3. Returns true when the answer
 * must wait for the done script (a recalculation: the invalidation is
 * published before anyone is told the new document exists). */
static bool store_results(struct shard *s, struct flight *f, struct mx__calc_job *j)
{
    bool wait = false;
    /* L2: the equipment first, then the document with the notice */
    if (j->equip_frame) {
        char rk[RKEY_MAX];
        rk_equip(s, rk, sizeof rk, f->ocid);
        l2_set(s, rk, j->equip_frame, s->o.ttl2_equipment_ms);
    }
    char inval[RKEY_MAX];
    if (f->q.force) {
        /* every node drops its L1 copies; this one keeps what it just made */
        /* every subscriber acks it ("A <nonce>") once applied: the answer
         * waits for them (bounded), so the next read anywhere sees the new
         * document */
        snprintf(f->ack_nonce, sizeof f->ack_nonce, "%016" PRIx64 ":%d:%" PRIu64, s->node_id,
                 s->index, f->id);
        f->acks = 0;
        f->acks_needed = -1;
        snprintf(inval, sizeof inval, "I %016" PRIx64 " %s %s %s", s->node_id, f->ign,
                 f->ocid[0] ? f->ocid : "-", f->ack_nonce);
        l1_drop_character(s, f->ign, NULL, f->key, f->klen);
        INC(inval_sent);
    }
    if (redis_up(s)) {
        f->stage = ST_PUBLISH;
        struct rop *r = f->q.force ? rop_new(s, f) : NULL;
        int rc = l2_done_cb(s, f, j->doc_frame ? 'v' : 'x', j->doc_frame, s->o.ttl2_doc_ms,
                            f->q.force, f->q.force ? inval : NULL, r ? published_cb : NULL, r);
        if (r && rc != 0)
            free(r);
        wait = r && rc == 0;
    } else {
        l2_done(s, f, 'x', NULL, 0, false, NULL);
    }
    if (!s->o.mysql)
        return wait;
    uint64_t now = mx_unix_ms();
    uint8_t *rec;
    uint32_t rlen;
    if (f->eq_src == SRC_UPSTREAM && j->equip_frame &&
        mx_store_rec_equipment(f->ocid, j->equip_frame->data + MX__FRAME_HDR,
                               j->equip_frame->len - MX__FRAME_HDR, now, &rec, &rlen) == 0)
        l3_write(s, MX_STORE_REC_EQUIPMENT, rec, rlen);
    /* summaries describe the API's default calculation (every option on) */
    if (!f->q.star_catch || !f->q.discount || !f->q.sunday)
        return wait;
    for (int i = 0; i < j->nsums; i++) {
        struct mx_store_summary sm = {.ocid = f->ocid,
                                      .user_ign = f->ign,
                                      .preset_no = j->sums[i].preset_no,
                                      .total_expected_cost = j->sums[i].total,
                                      .black_cube_cost = j->sums[i].black,
                                      .additional_cube_cost = j->sums[i].additional,
                                      .starforce_cost = j->sums[i].starforce};
        if (mx_store_rec_summary(&sm, now, &rec, &rlen) == 0)
            l3_write(s, MX_STORE_REC_SUMMARY, rec, rlen);
    }
    return wait;
}

static void published_cb(mx_redis_t *rd, int status, const redisReply *rep, void *arg)
{
    (void)rd;
    struct shard *s = ((struct rop *)arg)->s;
    struct flight *f = rop_flight(arg, status);
    if (status != 0 && status != MX_ESTOPPED)
        INC(redis_errors);
    if (!f || !f->result)
        return;
    if (status == 0 && rep && rep->type == REDIS_REPLY_INTEGER && rep->integer > f->acks) {
        f->acks_needed = rep->integer;
        f->stage = ST_ACK;
        f->ack_until = mx_now_ms() + INVAL_ACK_MS;
        return; /* on_notice (the last ack) or on_tick (the deadline) answers */
    }
    finish_doc(s->self, s, f, f->result, false);
}

/* The character's equipment has no such preset: 404 C002 with no_preset
 * set, so a caller tells it from an unknown character without reading
 * the message. */
static void finish_no_preset(mx_actor_t *self, struct shard *s, struct flight *f)
{
    static const char code[] = "C002", msg[] = "Preset not found for this character";
    struct mx_m_exp_rep r = {.status = MX_ENOTFOUND,
                             .http_status = 404,
                             .code = {code, sizeof code - 1},
                             .message = {msg, sizeof msg - 1},
                             .no_preset = true};
    INC(load_errors);
    for (uint32_t i = 0; i < f->nw; i++) {
        struct mx_msg *m;
        if (mx_msg_encode(MX_T_exp_rep, &r, &m) == 0)
            send_reply(self, &f->w[i].env, m);
    }
    flight_end(s, f);
}

static void on_calc_done(mx_actor_t *self, struct shard *s, struct flight *f, struct mx_msg *m)
{
    struct mx__calc_job *j = m->ptr;
    if (!j) {
        finish_err(self, s, f, MX_EINTERNAL, 500, "S001", "Calculation failed", 0);
        return;
    }
    if (j->equip_doc) {
        on_equip_done(self, s, f, j);
        return;
    }
    ADD(calcs, 1);
    ADD(calc_ms, (uint64_t)j->calc_ms);
    if (j->status == MX_ENOTFOUND) {
        finish_no_preset(self, s, f);
        return;
    }
    if (j->status) {
        MX_WARN("calculation for %s failed: %s", f->ign, j->err);
        /* the equipment we hold is unusable: drop it so the next load refetches */
        char ek[KEY_MAX], rk[RKEY_MAX];
        size_t ekl = mkkey(ek, 'e', f->ocid, NULL);
        struct centry *e = l1_find(s, ek, ekl);
        if (e)
            l1_remove(s, e);
        rk_equip(s, rk, sizeof rk, f->ocid);
        l2_del(s, rk);
        mx_blob_unref(f->stale_eq);
        f->stale_eq = NULL;
        finish_upstream_fail(self, s, f, MX_EUPSTREAM, 0,
                             "Upstream returned equipment that could not be read");
        return;
    }
    if (f->serve_stale) {
        /* built from equipment past its freshness: answer, do not store */
        INC(stale);
        finish_doc(self, s, f, j->fresh, true);
        return;
    }
    l1_put(s, f->key, f->klen, K_DOC, mx_http_doc_ref(j->cached), NULL, NULL, s->o.ttl_doc_ms);
    if (store_results(s, f, j)) {
        f->result = mx_http_doc_ref(j->fresh);
        return; /* published_cb answers */
    }
    finish_doc(self, s, f, j->fresh, false);
}

static void on_l3_done(mx_actor_t *self, struct shard *s, struct flight *f, int status,
                       struct mx__l3_read *r)
{
    if (f->stage == ST_OCID_L3) {
        if (status == 0 && r && ocid_ok(r->ocid)) {
            snprintf(f->ocid, sizeof f->ocid, "%s", r->ocid);
            after_ocid(self, s, f);
        } else {
            finish_upstream_fail(self, s, f, MX_EUNAVAIL, 0, "Upstream (Nexon Open API) error");
        }
        return;
    }
    /* ST_EQ_L3 */
    if (status == 0 && r && r->equip) {
        uint64_t now = mx_unix_ms();
        if (r->at_ms + s->o.l3_fresh_ms >= now || f->upstream_failed) {
            INC(l3_hits);
            char ek[KEY_MAX];
            size_t ekl = mkkey(ek, 'e', f->ocid, NULL);
            if (!f->upstream_failed)
                l1_put(s, ek, ekl, K_EQUIP, NULL, mx_blob_ref(r->equip), NULL,
                       s->o.ttl_equipment_ms);
            f->eq_src = SRC_L3;
            f->serve_stale = f->upstream_failed && r->at_ms + s->o.l3_fresh_ms < now;
            start_calc(self, s, f, r->equip);
            return;
        }
        INC(l3_stale);
        mx_blob_unref(f->stale_eq);
        f->stale_eq = mx_blob_ref(r->equip);
    } else if (status == MX_EDECODE) {
        INC(l3_corrupt);
    } else if (status == MX_ENOTFOUND) {
        INC(l3_misses);
    } else {
        INC(l3_errors);
    }
    if (f->upstream_failed) {
        finish_upstream_fail(self, s, f, MX_EUNAVAIL, 0, "Upstream (Nexon Open API) error");
        return;
    }
    fetch_equipment(self, s, f);
}

static void on_store_done(mx_actor_t *self, struct shard *s, struct mx_msg *m)
{
    struct mx_m_store_job_done d;
    if (mx_msg_decode(m, &d) != 0)
        return;
    if (s->replaying && d.job == s->replay_job) {
        s->replaying = false;
        if (d.status == 0)
            INC(replayed_ok);
        return;
    }
    if (s->l3_inflight)
        s->l3_inflight--;
    for (struct flight *f = s->flights; f; f = f->next)
        if (f->job == d.job && (f->stage == ST_EQ_L3 || f->stage == ST_OCID_L3)) {
            f->job = 0;
            on_l3_done(self, s, f, (int)d.status, m->ptr);
            return;
        }
    /* a write */
    struct mx_store_write *w = m->ptr;
    if (!w)
        return;
    if (d.status != 0) {
        INC(l3_write_errors);
        MX_WARN("L3: a write (kind %u) was lost: %s", w->kind, mx_strerror((int)d.status));
    } else if (w->spooled) {
        INC(l3_spooled);
    }
}

/* ---- notices ---- */

static void on_notice(mx_redis_t *rd, const char *channel, const char *data, size_t len,
                      const char *pattern, void *arg)
{
    (void)rd;
    (void)channel;
    (void)pattern;
    struct shard *s = arg;
    if (s->stopping || len < 3 || len >= RKEY_MAX + 64)
        return;
    char buf[RKEY_MAX + 64];
    memcpy(buf, data, len);
    buf[len] = '\0';
    if (buf[0] == 'D' && buf[1] == ' ') {
        const char *rk = buf + 2;
        for (struct flight *f = s->flights, *next; f; f = next) {
            next = f->next;
            if (strcmp(f->rkey, rk) != 0)
                continue;
            if (f->stage == ST_WAIT) {
                INC(latch_notices);
                l2_acquire(s->self, s, f); /* may end f */
            } else if (f->stage == ST_L2) {
                f->notified = true;
            }
        }
        return;
    }
    if (buf[0] == 'I' && buf[1] == ' ') {
        char node[24], ign[IGN_MAX + 2], ocid[70], nonce[48];
        ocid[0] = nonce[0] = '\0';
        if (sscanf(buf + 2, "%20s %91s %65s %47s", node, ign, ocid, nonce) < 2 ||
            strlen(ign) > IGN_MAX)
            return;
        /* only the shard that owns the character acts on it, on each node */
        if (mx_svc_shard(ign, strlen(ign), (uint32_t)s->nshards) != (uint32_t)s->index)
            return;
        /* this node dropped its copies when it stored the new ones */
        if (strtoull(node, NULL, 16) != s->node_id) {
            INC(inval_applied);
            l1_drop_character(s, ign, strcmp(ocid, "-") ? ocid : "", NULL, 0);
        }
        /* one ack per node, weighted by the node's subscribers (its
         * shards): the publisher sums them against the receivers PUBLISH
         * reported (before: every shard acked, N^2 deliveries) */
        if (nonce[0] && s->rc && mx_redis_connected(s->rc)) {
            char ack[80];
            snprintf(ack, sizeof ack, "A %s %d", nonce, s->nshards);
            if (mx_redis_command(s->rc, redis_cb_count, NULL, "PUBLISH %s %s", s->channel, ack) !=
                0)
                INC(redis_errors);
        }
        return;
    }
    if (buf[0] == 'A' && buf[1] == ' ') {
        char nonce[48];
        unsigned weight = 1;
        if (sscanf(buf + 2, "%47s %u", nonce, &weight) < 1 || weight == 0 || weight > 4096)
            return;
        for (struct flight *f = s->flights, *next; f; f = next) {
            next = f->next;
            if (!f->ack_nonce[0] || strcmp(f->ack_nonce, nonce) != 0)
                continue;
            f->acks += weight;
            if (f->stage == ST_ACK && f->acks >= f->acks_needed && f->result)
                finish_doc(s->self, s, f, f->result, false);
        }
    }
}

/* ---- shutdown: release the latches this shard holds (svc_latches) ---- */

static void latches_reply(struct shard *s)
{
    struct mx_m_svc_latches_rep r = {.released = s->rel_done, .flights = s->nflights};
    struct mx_msg *m;
    s->rel_waiting = false;
    if (mx_msg_encode(MX_T_svc_latches_rep, &r, &m) == 0)
        send_reply(s->self, &s->rel_req, m);
}

static void latch_released_cb(mx_redis_t *r, int status, const redisReply *rep, void *arg)
{
    (void)r;
    (void)rep;
    struct shard *s = arg;
    if (status == MX_ESTOPPED || s->stopping)
        return; /* the shard is going away: touch nothing else */
    if (status != 0)
        INC(redis_errors);
    else
        s->rel_done++;
    if (s->rel_pending && --s->rel_pending == 0 && s->rel_waiting)
        latches_reply(s);
}

static void on_latches(mx_actor_t *self, struct shard *s, struct mx_msg *m)
{
    struct mx_m_svc_latches q;
    if (mx_msg_decode(m, &q) != 0)
        return;
    s->no_latch = q.op == 1;
    s->rel_req = m->env;
    s->rel_waiting = true;
    s->rel_done = 0;
    if (q.op == 1) {
        uint32_t held = 0;
        for (struct flight *f = s->flights; f; f = f->next) {
            if (!f->latched)
                continue;
            held++;
            /* compare token, delete, publish "D <key>": waiters ask again */
            if (l2_done_cb(s, f, 'x', NULL, 0, false, NULL, latch_released_cb, s) == 0)
                s->rel_pending++;
        }
        if (held)
            MX_INFO("cache shard %d: releasing %u latches (node draining)", s->index, held);
    }
    if (s->rel_pending == 0)
        latches_reply(s);
}

/* ---- lifecycle ---- */

static void on_tick(mx_actor_t *self, struct shard *s)
{
    int64_t now = mx_now_ms();
    for (struct flight *f = s->flights, *next; f; f = next) {
        next = f->next;
        if (f->stage == ST_ACK && now >= f->ack_until && f->result) {
            INC(inval_ack_timeouts); /* a node did not ack in time: answer anyway */
            finish_doc(self, s, f, f->result, false);
            continue;
        }
        if (f->latched && now >= f->latch_renew_at && redis_up(s) && s->s_renew) {
            /* still loading: keep the latch (compare token, PEXPIRE) */
            char latch[RKEY_MAX + 4], ttl[24];
            snprintf(latch, sizeof latch, "%s:L", f->rkey);
            snprintf(ttl, sizeof ttl, "%" PRIu32, s->o.latch_ttl_ms);
            const char *argv[] = {latch, f->token, ttl};
            if (mx_redis_eval(s->rc, s->s_renew, redis_cb_count, NULL, 1, 3, argv, NULL) != 0)
                INC(redis_errors);
            else
                INC(latch_renewals);
            f->latch_renew_at = now + s->o.latch_ttl_ms / 3;
        }
        if (f->stage == ST_WAIT && now >= f->wait_until) {
            f->waited = true;
            l2_acquire(self, s, f); /* may end f */
        }
    }
    /* the spool: replay once a second while it holds writes (shard 0) */
    if (s->index != 0 || !s->o.mysql || !s->o.spool || ++s->ticks % (1000 / TICK_MS) != 0 ||
        s->replaying || mx_spool_idle(s->o.spool) || mysql_down(s))
        return;
    if (mx_mysql_submit(s->o.mysql, mx_store_replay_job, s->o.spool, NULL, mx_self(self),
                        &s->replay_job) == 0) {
        s->replaying = true;
        INC(replays);
    }
}

static int cache_init(mx_actor_t *self, void *arg, void **state)
{
    const struct mx_svc_opts *o = arg;
    struct shard *s = xcalloc(1, sizeof *s);
    s->self = self;
    s->o = *o;
    s->index = mx_actor_sched(self);
    s->nshards = mx_system_schedulers(mx_system_of(self));
    s->node_id = mx_system_node_id(mx_system_of(self));
    s->nbuckets = 1024;
    while (s->nbuckets < o->l1_max_entries && s->nbuckets < (1u << 24))
        s->nbuckets <<= 1;
    s->buckets = xcalloc(s->nbuckets, sizeof *s->buckets);
    s->have_fetcher = mx_whereis(mx_system_of(self), o->fetcher_name, &s->fetcher) == 0;
    snprintf(s->prefix, sizeof s->prefix, "mx:%s:", o->cluster ? o->cluster : "mx");
    snprintf(s->channel, sizeof s->channel, "mx:{%s}:cache", o->cluster ? o->cluster : "mx");
    if (o->redis_url && o->redis_url[0]) {
        char name[32];
        snprintf(name, sizeof name, "redis-cache.%d", s->index);
        struct mx_redis_opts ro = {.name = name, .timeout_ms = o->redis_timeout_ms};
        int rc = mx_redis_open(mx_actor_loop(self), o->redis_url, &ro, &s->rc);
        if (rc == 0)
            rc = mx_redis_open_subscriber(mx_actor_loop(self), o->redis_url, &ro, on_notice, s,
                                          &s->sub);
        if (rc == 0)
            rc = mx_redis_subscribe(s->sub, s->channel, false);
        if (rc == 0)
            rc = mx_redis_script(s->rc, acquire_lua, &s->s_acquire);
        if (rc == 0)
            rc = mx_redis_script(s->rc, done_lua, &s->s_done);
        if (rc == 0)
            rc = mx_redis_script(s->rc, renew_lua, &s->s_renew);
        if (rc == 0)
            rc = mx_redis_script(s->rc, force_lua, &s->s_force);
        if (rc != 0)
            MX_ERROR("cache: MX_REDIS_URL unusable (%s): running without L2", mx_strerror(rc));
        if (rc != 0 && s->sub) {
            mx_redis_close(s->sub, NULL, NULL);
            s->sub = NULL;
        }
        if (rc != 0 && s->rc) {
            mx_redis_close(s->rc, NULL, NULL);
            s->rc = NULL;
        }
    }
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
    struct shard *s = state;
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
            l1_drop_character(s, ign, NULL, NULL, 0);
        }
        return 0;
    }
    case MX_T_sys_tick:
        on_tick(self, s);
        return 0;
    case MX_T_store_job_done:
        on_store_done(self, s, m);
        return 0;
    case MX_T_svc_latches:
        on_latches(self, s, m);
        return 0;
    default:
        break;
    }
    struct flight *f = m->env.corr ? flight_find_corr(s, m->env.corr) : NULL;
    if (!f)
        return 0; /* a reply for a load that already ended */
    switch (m->env.type) {
    case MX_T_fetch_rep:
        if (f->stage == ST_OCID || f->stage == ST_EQUIP || f->stage == ST_BASIC)
            on_fetch_rep(self, s, f, m);
        break;
    case MX_T_exp_calc_done:
        if (f->stage == ST_CALC)
            on_calc_done(self, s, f, m);
        break;
    case MX_T_sys_offload_done:
        if (f->stage == ST_CALC)
            finish_err(self, s, f, MX_EINTERNAL, 500, "S001", "Calculation failed", 0);
        break;
    case MX_T_sys_timeout:
        if (f->stage == ST_OCID || f->stage == ST_EQUIP || f->stage == ST_BASIC)
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
    s->stopping = true;
    /* pending commands get MX_ESTOPPED now; their callbacks touch nothing */
    if (s->sub)
        mx_redis_close(s->sub, NULL, NULL);
    if (s->rc)
        mx_redis_close(s->rc, NULL, NULL);
    s->rc = s->sub = NULL;
    while (s->flights) {
        struct flight *f = s->flights;
        for (uint32_t i = 0; i < f->nw; i++)
            reply_err(self, &f->w[i].env, MX_ESTOPPED, 503, "S007", "Node is stopping", 1);
        f->latched = false; /* the latch expires by itself */
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
        .requests = LD(requests),
        .l1_hits = LD(l1_hits),
        .l1_misses = LD(l1_misses),
        .l1_stale_served = LD(stale),
        .coalesced = LD(coalesced),
        .loads = LD(loads),
        .load_errors = LD(load_errors),
        .not_found = LD(not_found),
        .negative_hits = LD(neg_hits),
        .evictions = LD(evictions),
        .refused = LD(refused),
        .entries = LD(entries),
        .bytes = LD(bytes),
        .calc_ms_total = LD(calc_ms),
        .calcs = LD(calcs),
        .l2_hits = LD(l2_hits),
        .l2_misses = LD(l2_misses),
        .l2_corrupt = LD(l2_corrupt),
        .redis_errors = LD(redis_errors),
        .redis_fallbacks = LD(redis_fallbacks),
        .latch_acquired = LD(latch_acquired),
        .latch_waits = LD(latch_waits),
        .latch_notices = LD(latch_notices),
        .latch_timeouts = LD(latch_timeouts),
        .invalidations_sent = LD(inval_sent),
        .invalidations_applied = LD(inval_applied),
        .invalidation_ack_timeouts = LD(inval_ack_timeouts),
        .l3_skipped_down = LD(l3_skipped_down),
        .latch_renewals = LD(latch_renewals),
        .l3_hits = LD(l3_hits),
        .l3_stale = LD(l3_stale),
        .l3_misses = LD(l3_misses),
        .l3_corrupt = LD(l3_corrupt),
        .l3_errors = LD(l3_errors),
        .l3_writes = LD(l3_writes),
        .l3_write_errors = LD(l3_write_errors),
        .l3_spooled = LD(l3_spooled),
        .l3_refused = LD(l3_refused),
        .replays = LD(replays),
        .replays_ok = LD(replayed_ok),
    };
#undef LD
}
