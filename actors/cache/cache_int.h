/* cache_int.h - what the files of a cache shard share: the shard and its
 * loads ("flights"), and the functions each file offers the others.
 *
 *   cache_actor.c  the actor: requests, ticks, lifecycle, replies
 *   cache_l1.c     L1 (cache_l1.h)
 *   cache_l2.c     L2 Redis: keys, the latch protocol and its Lua scripts,
 *                  completion/invalidation notices, drain (svc_latches)
 *   cache_l3.c     L3 MySQL: reads and writes on the mx_mysql pool, replay
 *   cache_load.c   the load state machine (its transition table is there)
 *   cache_record.c the character record: references, its L2 value
 *   cache_codec.c  value formats (cache_codec.h, library mx_cache_codec)
 *
 * Calculations are asked of the calculator actor (actors/calculator).
 *
 * Everything here belongs to the shard's thread: the actor's handlers and
 * the Redis callbacks of its connections run there, nowhere else. The
 * exceptions say so: the L3 read jobs run on the mx_mysql pool and touch
 * only their struct mx__l3_read.
 */
#ifndef MX_CACHE_INT_H
#define MX_CACHE_INT_H

#include "cache_codec.h"
#include "cache_l1.h"
#include "mx_cache.h"
#include "mx_calculator.h"
#include "mx_mysql.h"
#include "mx_redis.h"
#include "mx_spool.h"

struct mx_jsonw;

#define KEY_MAX MX__L1_KEY_MAX
#define RKEY_MAX 320
#define IGN_MAX 90
#define TICK_MS 100
#define INVAL_ACK_MS 300      /* longest a recalculation waits for the nodes' acks */
#define FORCE_WINDOW_MS 10000 /* recalculations of one document within this share one load */
#define MAX_L3_INFLIGHT 256   /* MySQL jobs per shard: well under the mailbox */
#define MX__CALC_TAG (UINT64_C(1) << 63) /* flight ids as calculator tags */

/* the load's stages: cache_load.c has the table of what moves them */
enum mx__stage {
    ST_L2,      /* acquire script in flight */
    ST_WAIT,    /* another node holds the latch: waiting for its notice */
    ST_OCID_L2, /* GET ocid */
    ST_OCID,    /* fetch id */
    ST_OCID_L3, /* upstream failed: ocid from game_character */
    ST_EQ_L2,   /* GET equipment */
    ST_EQ_L3,   /* MySQL read of character_equipment */
    ST_EQUIP,   /* fetch item-equipment */
    ST_BASIC,   /* fetch basic */
    ST_CALC,    /* asked the calculator */
    ST_PUBLISH, /* recalculated: answering once the invalidation is published */
    ST_ACK,     /* recalculated: answering once every subscriber applied it (bounded) */
};
enum mx__eq_src { SRC_NONE, SRC_CACHE, SRC_L3, SRC_UPSTREAM };

/* counters of the shard s (single writer: its thread) */
#define INC(s, f) MX_METRIC_INC((s)->m, f)
#define ADD(s, f, n) MX_METRIC_ADD((s)->m, f, n)

struct mx__waiter {
    struct mx_env env; /* from, corr, trace of the request */
};

/* One load of one key, with the requests waiting for it. */
struct mx__flight {
    struct mx__flight *next;
    uint64_t id; /* Redis callbacks and MySQL jobs find it by this */
    char key[KEY_MAX];
    uint16_t klen;
    struct mx_m_exp_get q; /* strings point into ign */
    char ign[IGN_MAX + 1];
    char ocid[64];
    char rkey[RKEY_MAX]; /* L2 key of what this flight produces */
    char token[48];      /* our latch token */
    enum mx__stage stage;
    enum mx__eq_src eq_src;
    uint64_t corr;               /* outstanding fetch or calculator request */
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
    int64_t calc_until;          /* ST_CALC deadline (mx_now_ms): the fetch budget */
    struct mx__waiter *w;
    uint32_t nw, capw;
};

struct mx__shard {
    mx_actor_t *self;
    struct mx_svc_opts o;
    int index, nshards;
    uint64_t node_id;
    struct mx_cache_metrics *m; /* this shard's block (outlives the actor) */
    struct mx_addr fetcher, calculator;
    bool have_fetcher, have_calculator;
    struct mx__l1 l1;
    struct mx__flight *flights;
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

/* MySQL is down as far as the cluster knows (mysql-health). */
static inline bool mx__mysql_down(const struct mx__shard *s)
{
    return s->o.mysql && s->o.mysql_up && !s->o.mysql_up();
}

/* A TTL stretched while MySQL is down: what expires now could not be
 * reloaded from L3. */
static inline uint32_t mx__ttl_now(const struct mx__shard *s, uint32_t ttl_ms)
{
    uint32_t f = s->o.mysql_down_ttl_factor ? s->o.mysql_down_ttl_factor : 3;
    if (!mx__mysql_down(s) || ttl_ms > UINT32_MAX / f)
        return ttl_ms;
    return ttl_ms * f;
}

/* The shard's L1 on its clock and TTL policy (cache_l1.h). */
static inline struct mx__centry *l1_find(struct mx__shard *s, const char *key, size_t klen)
{
    return mx__l1_find(&s->l1, key, klen);
}
static inline struct mx__centry *l1_get(struct mx__shard *s, const char *key, size_t klen,
                                        bool allow_expired)
{
    return mx__l1_get(&s->l1, key, klen, allow_expired ? MX__L1_ANY_AGE : mx_now_ms());
}
static inline struct mx__centry *l1_put(struct mx__shard *s, const char *key, size_t klen,
                                        enum mx__l1_kind kind, struct mx_http_doc *doc,
                                        struct mx_blob *blob, const char *ocid, uint32_t ttl_ms)
{
    return mx__l1_put(&s->l1, key, klen, kind, doc, blob, ocid,
                      mx_now_ms() + mx__ttl_now(s, ttl_ms));
}

static inline struct mx__centry *l1_put_rec(struct mx__shard *s, const char *key, size_t klen,
                                            struct mx_character_rec *rec, uint32_t ttl_ms)
{
    return mx__l1_put_rec(&s->l1, key, klen, rec, mx_now_ms() + mx__ttl_now(s, ttl_ms));
}

/* ---- cache_actor.c: replies ---- */
void mx__cache_send_reply(mx_actor_t *self, const struct mx_env *req, struct mx_msg *rep);
/* mx__cache_reply_value - exp_rep status 0 with a reference of rec when
 * not NULL (a character record), else of doc. */
void mx__cache_reply_value(mx_actor_t *self, const struct mx_env *req, struct mx_http_doc *doc,
                           struct mx_character_rec *rec, bool stale);
void mx__cache_reply_err(mx_actor_t *self, const struct mx_env *req, int status, uint32_t http,
                         const char *code, const char *message, uint32_t retry_after_s);

/* ---- cache_l2.c ---- */
bool mx__redis_up(const struct mx__shard *s);
void mx__rk_ign(const struct mx__shard *s, char *buf, size_t cap, const char *ign, const char *sfx);
void mx__rk_flight(const struct mx__shard *s, struct mx__flight *f);
void mx__rk_equip(const struct mx__shard *s, char *buf, size_t cap, const char *ocid);
/* mx__redis_cb_count - a reply nobody waits for: count failures (arg: shard). */
void mx__redis_cb_count(mx_redis_t *r, int status, const redisReply *rep, void *arg);
/* mx__l2_open - connect L2 (commands, subscriber, scripts) when configured;
 * on failure logs and runs without L2. */
void mx__l2_open(struct mx__shard *s);
void mx__l2_close(struct mx__shard *s);
/* mx__l2_done_cb - the done script for f: mode 'v' store frame, 'n' the
 * unknown mark, 'x' nothing; releases our latch and publishes "D <key>"
 * (and inval). 0, or an error (then cb is not called). */
int mx__l2_done_cb(struct mx__shard *s, struct mx__flight *f, char mode,
                   const struct mx_blob *frame, uint32_t ttl_ms, bool force, const char *inval,
                   mx_redis_cb cb, void *arg);
void mx__l2_done(struct mx__shard *s, struct mx__flight *f, char mode, const struct mx_blob *frame,
                 uint32_t ttl_ms, bool force, const char *inval);
void mx__l2_set(struct mx__shard *s, const char *key, const struct mx_blob *frame, uint32_t ttl_ms);
void mx__l2_del(struct mx__shard *s, const char *key);
/* mx__l2_evict - count a damaged value (len bytes) under key, log, DEL it. */
void mx__l2_evict(struct mx__shard *s, const char *key, size_t len);
/* mx__l2_value - a GET reply of a framed value under key: true and *out
 * (one reference); false after counting a Redis error or a miss, or
 * evicting a damaged value. */
bool mx__l2_value(struct mx__shard *s, int status, const redisReply *rep, const char *key,
                  struct mx_blob **out);
/* mx__l2_acquire - the value, or the latch, or a wait (ST_L2, then on). */
void mx__l2_acquire(mx_actor_t *self, struct mx__shard *s, struct mx__flight *f);
/* mx__l2_force_acquire - a recalculation's latch (one per window). */
void mx__l2_force_acquire(mx_actor_t *self, struct mx__shard *s, struct mx__flight *f);
/* mx__l2_renew - extend f's latch while its load runs (tick). */
void mx__l2_renew(struct mx__shard *s, struct mx__flight *f, int64_t now);
/* mx__l2_on_latches - svc_latches from the shutdown coordinator. */
void mx__l2_on_latches(mx_actor_t *self, struct mx__shard *s, struct mx_msg *m);

/* A Redis reply's way back to its flight: the flight may have ended or
 * moved on by the time the reply comes. */
struct mx__rop {
    struct mx__shard *s;
    uint64_t fid;
    enum mx__stage stage;
};
struct mx__rop *mx__rop_new(struct mx__shard *s, struct mx__flight *f);
/* mx__rop_flight - frees the rop arg; *shard gets its shard, and the
 * result is the flight if it still waits for this reply (none once the
 * shard stops: then touch *shard no further). */
struct mx__flight *mx__rop_flight(void *arg, int status, struct mx__shard **shard);

/* ---- cache_record.c: the character record's L2 value ---- */
int mx__character_to_json(const struct mx_character_rec *c, struct mx_jsonw *w);
/* mx__character_from_json - 0, or MX_EDECODE (not the record's JSON, or
 * no ocid); fields too long for c are refused too. Pure. */
int mx__character_from_json(const char *json, size_t len, struct mx_character_rec *c);

/* ---- cache_l3.c ---- */

/* Read character_equipment(ocid) on the mx_mysql pool: the gzip is
 * inflated and checked on the pool thread; a damaged row is deleted
 * (MX_EDECODE). */
struct mx__l3_read {
    char ocid[64];
    char ign[96];          /* ocid lookup by user_ign when ocid is "" */
    uint64_t fid;          /* flight it belongs to */
    struct mx_blob *equip; /* out: raw JSON, one reference */
    uint64_t at_ms;        /* out: when it was stored */
};
int mx__l3_read_job(struct mx_mysql_conn *c, void *arg);
int mx__l3_ocid_job(struct mx_mysql_conn *c, void *arg);
void mx__l3_read_free(void *arg);
/* mx__l3_write - submit a store record (taken); refused ones are counted. */
void mx__l3_write(struct mx__shard *s, uint32_t kind, uint8_t *rec, uint32_t len);
/* mx__l3_read - submit fn for f and move it to stage st; false if L3 is
 * absent, down, saturated or refused. */
bool mx__l3_read(struct mx__shard *s, struct mx__flight *f, mx_mysql_fn fn, enum mx__stage st);
void mx__l3_on_done(mx_actor_t *self, struct mx__shard *s, struct mx_msg *m);
/* mx__l3_tick - replay the spool once a second while it holds writes. */
void mx__l3_tick(mx_actor_t *self, struct mx__shard *s);

/* ---- cache_load.c ---- */
struct mx__flight *mx__flight_find_key(struct mx__shard *s, const char *key, size_t klen,
                                       bool force);
struct mx__flight *mx__flight_find_corr(struct mx__shard *s, uint64_t corr);
struct mx__flight *mx__flight_find_id(struct mx__shard *s, uint64_t id);
bool mx__flight_wait(struct mx__shard *s, struct mx__flight *f, const struct mx_env *env);
void mx__flight_end(struct mx__shard *s, struct mx__flight *f);
void mx__finish_doc(mx_actor_t *self, struct mx__shard *s, struct mx__flight *f,
                    struct mx_http_doc *doc, bool stale);
/* mx__finish_value - answer with rec when not NULL, else doc. */
void mx__finish_value(mx_actor_t *self, struct mx__shard *s, struct mx__flight *f,
                      struct mx_http_doc *doc, struct mx_character_rec *rec, bool stale);
void mx__finish_err(mx_actor_t *self, struct mx__shard *s, struct mx__flight *f, int status,
                    uint32_t http, const char *code, const char *msg, uint32_t retry_s);
void mx__finish_upstream_fail(mx_actor_t *self, struct mx__shard *s, struct mx__flight *f,
                              int status, uint32_t retry_ms, const char *why);
/* mx__load_start - the load proper (we hold the latch, or Redis cannot
 * coordinate): ocid, then equipment or the basic record. */
void mx__load_start(mx_actor_t *self, struct mx__shard *s, struct mx__flight *f);
/* mx__equip_l1 - the fresh L1 equipment of ign that has its document. */
struct mx__centry *mx__equip_l1(struct mx__shard *s, const char *ign);
/* mx__load_on_reply - a reply (fetcher, calculator, timeout) for f. */
void mx__load_on_reply(mx_actor_t *self, struct mx__shard *s, struct mx__flight *f,
                       struct mx_msg *m);
void mx__load_on_l3_done(mx_actor_t *self, struct mx__shard *s, struct mx__flight *f, int status,
                         struct mx__l3_read *r);

#endif
