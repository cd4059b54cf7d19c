/* cache_l2.c - a cache shard's L2 (Redis) and the cluster's single-flight
 * protocol, next to its Lua scripts.
 *
 * One load per key in the cluster: a shard that misses L1 runs one script
 * (acquire_lua) that answers the L2 value, or takes the key's latch (SET NX
 * PX), or says who holds it. The holder loads and then, in one more script
 * (done_lua), stores L2, releases the latch and publishes "D <key>" on the
 * cluster's cache channel; the other shards (any node) wait for that
 * notice, bounded by the latch's remaining TTL, then ask again (and load
 * themselves once the latch has expired). The holder extends the latch
 * while its load runs (renew_lua). A recalculation takes the latch through
 * force_lua (one per document and FORCE_WINDOW_MS) and its done script
 * publishes "I <node> <ign> <ocid> <nonce>": every node drops its L1 copies
 * and acks "A <nonce> <weight>". Without Redis every node loads for itself
 * (counted as redis_fallbacks). Values are frames (cache_codec.h).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache_int.h"
#include "mx_alloc.h"
#include "mx_err.h"
#include "mx_log.h"

/* ---- Redis keys (docs/expectation-service.md) ----
 *   mx:<cluster>:{exp:<ign>}:d:<preset>:<opts>   document (frame)
 *   mx:<cluster>:{exp:<ign>}:c                   character record (frame)
 *   mx:<cluster>:{exp:<ign>}:o                   ocid (frame)
 *   mx:<cluster>:{exp:<ign>}:n                   unknown character mark
 *   mx:<cluster>:{exp:<ign>}:docs                set of the d/c keys (invalidation)
 *   <value key>:L                                its latch
 *   mx:<cluster>:{eq:<ocid>}                     raw equipment (frame)
 * One character's keys share a hash slot, so the scripts stay cluster-safe. */

void mx__rk_ign(const struct mx__shard *s, char *buf, size_t cap, const char *ign, const char *sfx)
{
    snprintf(buf, cap, "%s{exp:%s}:%s", s->prefix, ign, sfx);
}

void mx__rk_flight(const struct mx__shard *s, struct mx__flight *f)
{
    char sfx[48];
    if (f->q.what == MX_SVC_CHARACTER)
        snprintf(sfx, sizeof sfx, "c");
    else if (f->q.what == MX_SVC_EQUIPMENT)
        snprintf(sfx, sizeof sfx, "q"); /* the latch's name only: never a value */
    else
        snprintf(sfx, sizeof sfx, "d:%u:%d%d%d", (unsigned)f->q.preset, f->q.star_catch,
                 f->q.discount, f->q.sunday);
    mx__rk_ign(s, f->rkey, sizeof f->rkey, f->ign, sfx);
}

void mx__rk_equip(const struct mx__shard *s, char *buf, size_t cap, const char *ocid)
{
    snprintf(buf, cap, "%s{eq:%s}", s->prefix, ocid);
}

bool mx__redis_up(const struct mx__shard *s)
{
    return s->rc && mx_redis_connected(s->rc);
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

void mx__redis_cb_count(mx_redis_t *r, int status, const redisReply *rep, void *arg)
{
    (void)r;
    (void)rep;
    struct mx__shard *s = arg; /* MX_ESTOPPED: the shard may be going away */
    if (status != 0 && status != MX_ESTOPPED)
        INC(s, redis_errors);
}

/* Run the done script for f: mode 'v' (frame), 'n' or 'x'. Releases the
 * latch if we hold it and tells the waiters. Fire and forget: if Redis is
 * away the latch expires by itself. */
int mx__l2_done_cb(struct mx__shard *s, struct mx__flight *f, char mode,
                   const struct mx_blob *frame, uint32_t ttl_ms, bool force, const char *inval,
                   mx_redis_cb cb, void *arg)
{
    bool held = f->latched;
    f->latched = false;
    if (!mx__redis_up(s) || (!held && mode == 'x' && !force)) {
        if (s->rc && (held || mode != 'x'))
            INC(s, redis_fallbacks);
        return MX_EUNAVAIL;
    }
    char latch[RKEY_MAX + 4], docs[RKEY_MAX], neg[RKEY_MAX], ttl[24], notice[RKEY_MAX + 4];
    snprintf(latch, sizeof latch, "%s:L", f->rkey);
    mx__rk_ign(s, docs, sizeof docs, f->ign, "docs");
    mx__rk_ign(s, neg, sizeof neg, f->ign, "n");
    snprintf(ttl, sizeof ttl, "%" PRIu32, ttl_ms ? mx__ttl_now(s, ttl_ms) : 1);
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
    int rc = mx_redis_eval(s->rc, s->s_done, cb ? cb : mx__redis_cb_count, cb ? arg : s, 4, 12,
                           argv, lens);
    if (rc != 0)
        INC(s, redis_errors);
    return rc;
}

void mx__l2_done(struct mx__shard *s, struct mx__flight *f, char mode, const struct mx_blob *frame,
                 uint32_t ttl_ms, bool force, const char *inval)
{
    mx__l2_done_cb(s, f, mode, frame, ttl_ms, force, inval, NULL, NULL);
}

/* SET key frame PX ttl, fire and forget */
void mx__l2_set(struct mx__shard *s, const char *key, const struct mx_blob *frame, uint32_t ttl_ms)
{
    if (!mx__redis_up(s) || !frame)
        return;
    char ttl[24];
    snprintf(ttl, sizeof ttl, "%" PRIu32, ttl_ms ? mx__ttl_now(s, ttl_ms) : 1);
    const char *argv[] = {"SET", key, (const char *)frame->data, "PX", ttl};
    size_t lens[] = {3, strlen(key), frame->len, 2, strlen(ttl)};
    if (mx_redis_argv(s->rc, mx__redis_cb_count, s, 5, argv, lens) != 0)
        INC(s, redis_errors);
}

void mx__l2_evict(struct mx__shard *s, const char *key, size_t len)
{
    INC(s, l2_corrupt);
    MX_WARN("L2: damaged value under %s (%zu bytes); evicted", key, len);
    mx__l2_del(s, key);
}

bool mx__l2_value(struct mx__shard *s, int status, const redisReply *rep, const char *key,
                  struct mx_blob **out)
{
    if (status != 0) {
        INC(s, redis_errors);
    } else if (rep->type != REDIS_REPLY_STRING) {
        INC(s, l2_misses);
    } else if (mx__frame_decode(rep->str, rep->len, out) == 0) {
        return true;
    } else {
        mx__l2_evict(s, key, rep->len);
    }
    return false;
}

void mx__l2_del(struct mx__shard *s, const char *key)
{
    if (mx__redis_up(s) && mx_redis_command(s->rc, mx__redis_cb_count, s, "DEL %s", key) != 0)
        INC(s, redis_errors);
}
struct mx__rop *mx__rop_new(struct mx__shard *s, struct mx__flight *f)
{
    struct mx__rop *r = xcalloc(1, sizeof *r);
    r->s = s;
    r->fid = f->id;
    r->stage = f->stage;
    return r;
}

struct mx__flight *mx__rop_flight(void *arg, int status, struct mx__shard **shard)
{
    struct mx__rop *r = arg;
    struct mx__shard *s = *shard = r->s;
    struct mx__flight *f = NULL;
    if (status != MX_ESTOPPED && !s->stopping) {
        f = mx__flight_find_id(s, r->fid);
        if (f && f->stage != r->stage)
            f = NULL;
    }
    free(r);
    return f;
}
/* A document or record value from L2: decode it, keep it in L1, answer. */
static bool serve_l2_value(mx_actor_t *self, struct mx__shard *s, struct mx__flight *f,
                           const char *v, size_t len)
{
    struct mx_blob *plain;
    if (mx__frame_decode(v, len, &plain) != 0)
        return false;
    if (f->q.what == MX_SVC_CHARACTER) {
        struct mx_character_rec *c = mx_character_rec_new();
        bool ok = mx__character_from_json((const char *)plain->data, plain->len, c) == 0;
        mx_blob_unref(plain);
        if (ok) {
            INC(s, l2_hits);
            l1_put_rec(s, f->key, f->klen, mx_character_rec_ref(c), s->o.ttl_character_ms);
            mx__finish_value(self, s, f, NULL, c, false);
        }
        mx_character_rec_unref(c);
        return ok;
    }
    struct mx_http_doc *doc;
    bool ok =
        plain->len > 1 && plain->data[0] == '{' &&
        mx_http_doc_new("application/json", plain, f->q.what == MX_SVC_EXPECTATION, &doc) == 0;
    mx_blob_unref(plain);
    if (!ok)
        return false;
    INC(s, l2_hits);
    l1_put(s, f->key, f->klen, K_DOC, mx_http_doc_ref(doc), NULL, NULL, s->o.ttl_doc_ms);
    mx__finish_doc(self, s, f, doc, false);
    mx_http_doc_unref(doc);
    return true;
}

static void acquire_cb(mx_redis_t *rd, int status, const redisReply *rep, void *arg)
{
    (void)rd;
    struct mx__shard *s;
    struct mx__flight *f = mx__rop_flight(arg, status, &s);
    if (!f)
        return;
    mx_actor_t *self = s->self;
    if (status != 0 || rep->type != REDIS_REPLY_ARRAY || rep->elements < 1 ||
        rep->element[0]->type != REDIS_REPLY_INTEGER) {
        INC(s, redis_errors);
        INC(s, redis_fallbacks);
        mx__load_start(self, s, f);
        return;
    }
    long long what = rep->element[0]->integer;
    if (what == 0) {
        INC(s, negative_hits);
        char nk[KEY_MAX];
        size_t nkl = mx__l1_key(nk, 'n', f->ign, NULL);
        l1_put(s, nk, nkl, K_NEG, NULL, NULL, NULL, s->o.ttl_negative_ms);
        mx__finish_err(self, s, f, MX_ENOTFOUND, 404, "C002", "Character not found", 0);
        return;
    }
    if (what == 1 && rep->elements == 2 && rep->element[1]->type == REDIS_REPLY_STRING) {
        if (serve_l2_value(self, s, f, rep->element[1]->str, rep->element[1]->len))
            return;
        mx__l2_evict(s, f->rkey, rep->element[1]->len);
        if (!f->l2_retried) {
            f->l2_retried = true;
            mx__l2_acquire(self, s, f); /* after the DEL, on the same connection */
        } else {
            mx__load_start(self, s, f);
        }
        return;
    }
    INC(s, l2_misses);
    if (what == 2) {
        INC(s, latch_acquired);
        f->latched = true;
        f->latch_renew_at = mx_now_ms() + s->o.latch_ttl_ms / 3;
        if (s->no_latch) /* draining: never make another node wait on us */
            mx__l2_done(s, f, 'x', NULL, 0, false, NULL);
        mx__load_start(self, s, f);
        return;
    }
    /* held by another load (this node's other life, or another node) */
    if (f->notified) {
        f->notified = false;
        mx__l2_acquire(self, s, f);
        return;
    }
    /* The holder renews the latch while its load runs, so a latch still
     * there after its TTL means a slow load, not a dead holder: keep
     * waiting, but never longer than one load may take (the fetch budget). */
    int64_t now = mx_now_ms();
    if (!f->wait_started)
        f->wait_started = now;
    if (f->waited && now - f->wait_started >= (int64_t)s->o.fetch_timeout_ms) {
        INC(s, latch_timeouts);
        MX_WARN("L2: latch of %s still held after waiting %lld ms; loading here too", f->rkey,
                (long long)(now - f->wait_started));
        mx__load_start(self, s, f);
        return;
    }
    f->waited = false;
    long long pttl = rep->elements == 2 && rep->element[1]->type == REDIS_REPLY_INTEGER
                         ? rep->element[1]->integer
                         : (long long)s->o.latch_ttl_ms;
    if (pttl < 0 || pttl > (long long)s->o.latch_ttl_ms)
        pttl = s->o.latch_ttl_ms;
    INC(s, latch_waits);
    f->stage = ST_WAIT;
    f->wait_until = mx_now_ms() + pttl + 50; /* the latch is gone by then */
}

void mx__l2_acquire(mx_actor_t *self, struct mx__shard *s, struct mx__flight *f)
{
    if (!mx__redis_up(s)) {
        if (s->rc)
            INC(s, redis_fallbacks);
        mx__load_start(self, s, f);
        return;
    }
    char latch[RKEY_MAX + 4], neg[RKEY_MAX], ttl[24];
    snprintf(latch, sizeof latch, "%s:L", f->rkey);
    mx__rk_ign(s, neg, sizeof neg, f->ign, "n");
    snprintf(ttl, sizeof ttl, "%" PRIu32, s->o.latch_ttl_ms);
    const char *argv[] = {f->rkey, latch, neg, f->token, ttl};
    f->stage = ST_L2;
    f->notified = false;
    struct mx__rop *r = mx__rop_new(s, f);
    if (mx_redis_eval(s->rc, s->s_acquire, acquire_cb, r, 3, 5, argv, NULL) != 0) {
        free(r);
        INC(s, redis_errors);
        INC(s, redis_fallbacks);
        mx__load_start(self, s, f);
    }
}

static void force_cb(mx_redis_t *rd, int status, const redisReply *rep, void *arg)
{
    (void)rd;
    struct mx__shard *s;
    struct mx__flight *f = mx__rop_flight(arg, status, &s);
    if (!f)
        return;
    if (status != 0 || rep->type != REDIS_REPLY_INTEGER) {
        INC(s, redis_errors);
        INC(s, redis_fallbacks);
        mx__load_start(s->self, s, f); /* recalculated on this node only */
    } else if (rep->integer == 1) {
        INC(s, latch_acquired);
        f->latched = true;
        f->latch_renew_at = mx_now_ms() + s->o.latch_ttl_ms / 3;
        mx__load_start(s->self, s, f);
    } else {
        INC(s, coalesced); /* another request (any node) recalculates it right now */
        f->q.force = false;
        mx__l2_acquire(s->self, s, f);
    }
}

/* A recalculation: one per document and FORCE_WINDOW_MS across the
 * cluster (force_lua); without Redis, one per document on this node. */
void mx__l2_force_acquire(mx_actor_t *self, struct mx__shard *s, struct mx__flight *f)
{
    if (!mx__redis_up(s) || !s->s_force || s->no_latch) {
        mx__load_start(self, s, f);
        return;
    }
    char latch[RKEY_MAX + 4], mark[RKEY_MAX + 4], ttl[24], wttl[24];
    snprintf(latch, sizeof latch, "%s:L", f->rkey);
    snprintf(mark, sizeof mark, "%s:F", f->rkey);
    snprintf(ttl, sizeof ttl, "%" PRIu32, s->o.latch_ttl_ms);
    snprintf(wttl, sizeof wttl, "%u", FORCE_WINDOW_MS);
    const char *argv[] = {f->rkey, latch, mark, f->token, ttl, wttl};
    f->stage = ST_L2;
    struct mx__rop *r = mx__rop_new(s, f);
    if (mx_redis_eval(s->rc, s->s_force, force_cb, r, 3, 6, argv, NULL) != 0) {
        free(r);
        INC(s, redis_errors);
        mx__load_start(self, s, f);
    }
}
/* ---- notices ---- */

static void on_notice(mx_redis_t *rd, const char *channel, const char *data, size_t len,
                      const char *pattern, void *arg)
{
    (void)rd;
    (void)channel;
    (void)pattern;
    struct mx__shard *s = arg;
    if (s->stopping || len < 3 || len >= RKEY_MAX + 64)
        return;
    char buf[RKEY_MAX + 64];
    memcpy(buf, data, len);
    buf[len] = '\0';
    if (buf[0] == 'D' && buf[1] == ' ') {
        const char *rk = buf + 2;
        for (struct mx__flight *f = s->flights, *next; f; f = next) {
            next = f->next;
            if (strcmp(f->rkey, rk) != 0)
                continue;
            if (f->stage == ST_WAIT) {
                INC(s, latch_notices);
                mx__l2_acquire(s->self, s, f); /* may end f */
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
            INC(s, invalidations_applied);
            mx__l1_drop_character(&s->l1, ign, strcmp(ocid, "-") ? ocid : "", NULL, 0);
        }
        /* one ack per node, weighted by the node's subscribers (its
         * shards): the publisher sums them against the receivers PUBLISH
         * reported (before: every shard acked, N^2 deliveries) */
        if (nonce[0] && s->rc && mx_redis_connected(s->rc)) {
            char ack[80];
            snprintf(ack, sizeof ack, "A %s %d", nonce, s->nshards);
            if (mx_redis_command(s->rc, mx__redis_cb_count, s, "PUBLISH %s %s", s->channel, ack) !=
                0)
                INC(s, redis_errors);
        }
        return;
    }
    if (buf[0] == 'A' && buf[1] == ' ') {
        char nonce[48];
        unsigned weight = 1;
        if (sscanf(buf + 2, "%47s %u", nonce, &weight) < 1 || weight == 0 || weight > 4096)
            return;
        for (struct mx__flight *f = s->flights, *next; f; f = next) {
            next = f->next;
            if (!f->ack_nonce[0] || strcmp(f->ack_nonce, nonce) != 0)
                continue;
            f->acks += weight;
            if (f->stage == ST_ACK && f->acks >= f->acks_needed && f->result)
                mx__finish_doc(s->self, s, f, f->result, false);
        }
    }
}

/* ---- shutdown: release the latches this shard holds (svc_latches) ---- */

static void latches_reply(struct mx__shard *s)
{
    struct mx_m_svc_latches_rep r = {.released = s->rel_done, .flights = s->nflights};
    struct mx_msg *m;
    s->rel_waiting = false;
    if (mx_msg_encode(MX_T_svc_latches_rep, &r, &m) == 0)
        mx__cache_send_reply(s->self, &s->rel_req, m);
}

static void latch_released_cb(mx_redis_t *r, int status, const redisReply *rep, void *arg)
{
    (void)r;
    (void)rep;
    struct mx__shard *s = arg;
    if (status == MX_ESTOPPED || s->stopping)
        return; /* the shard is going away: touch nothing else */
    if (status != 0)
        INC(s, redis_errors);
    else
        s->rel_done++;
    if (s->rel_pending && --s->rel_pending == 0 && s->rel_waiting)
        latches_reply(s);
}

void mx__l2_on_latches(mx_actor_t *self, struct mx__shard *s, struct mx_msg *m)
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
        for (struct mx__flight *f = s->flights; f; f = f->next) {
            if (!f->latched)
                continue;
            held++;
            /* compare token, delete, publish "D <key>": waiters ask again */
            if (mx__l2_done_cb(s, f, 'x', NULL, 0, false, NULL, latch_released_cb, s) == 0)
                s->rel_pending++;
        }
        if (held)
            MX_INFO("cache shard %d: releasing %u latches (node draining)", s->index, held);
    }
    if (s->rel_pending == 0)
        latches_reply(s);
}

/* ---- lifecycle ---- */

void mx__l2_open(struct mx__shard *s)
{
    if (!s->o.redis_url || !s->o.redis_url[0])
        return;
    char name[32];
    snprintf(name, sizeof name, "redis-cache.%d", s->index);
    struct mx_redis_opts ro = {.name = name, .timeout_ms = s->o.redis_timeout_ms};
    int rc = mx_redis_open(mx_actor_loop(s->self), s->o.redis_url, &ro, &s->rc);
    if (rc == 0)
        rc = mx_redis_open_subscriber(mx_actor_loop(s->self), s->o.redis_url, &ro, on_notice, s,
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

void mx__l2_close(struct mx__shard *s)
{
    /* pending commands get MX_ESTOPPED now; their callbacks touch nothing */
    if (s->sub)
        mx_redis_close(s->sub, NULL, NULL);
    if (s->rc)
        mx_redis_close(s->rc, NULL, NULL);
    s->rc = s->sub = NULL;
}

void mx__l2_renew(struct mx__shard *s, struct mx__flight *f, int64_t now)
{
    if (!mx__redis_up(s) || !s->s_renew)
        return;
    /* still loading: keep the latch (compare token, PEXPIRE) */
    char latch[RKEY_MAX + 4], ttl[24];
    snprintf(latch, sizeof latch, "%s:L", f->rkey);
    snprintf(ttl, sizeof ttl, "%" PRIu32, s->o.latch_ttl_ms);
    const char *argv[] = {latch, f->token, ttl};
    if (mx_redis_eval(s->rc, s->s_renew, mx__redis_cb_count, s, 1, 3, argv, NULL) != 0)
        INC(s, redis_errors);
    else
        INC(s, latch_renewals);
    f->latch_renew_at = now + s->o.latch_ttl_ms / 3;
}
