/* likes_int.h - shared by the like-buffer, the like-sync singleton and the
 * MySQL jobs: key names, the Lua scripts and the counters. docs/likes.md
 * lists every key and script. */
#ifndef MX_LIKES_INT_H
#define MX_LIKES_INT_H

#include <stdatomic.h>

#include "mx_likes.h"
#include "mx_metrics.h"
#include "mx_redis.h"

#define LK_KEY_MAX 320

/* Options given to mx_likes_start; read-only afterwards. */
extern struct mx_likes_opts mx__likes_o;
extern char mx__likes_prefix[128]; /* "mx:<cluster>:" */

/* Counters: relaxed increments from several threads, statistics only. The
 * registered part is generated from MX_LIKES_METRICS and
 * MX_LIKE_SYNC_METRICS (mx_likes.h); the lag histogram is beside it. */
struct mx__likes_ctr {
    MX_LIKES_METRICS(MX__METRIC_FIELD)
    MX_LIKE_SYNC_METRICS(MX__METRIC_FIELD)
    _Atomic uint64_t sync_lag_buckets[8], sync_lag_sum_ms;
};
extern struct mx__likes_ctr mx__likes_ctr;
#define LK_INC(f) atomic_fetch_add_explicit(&mx__likes_ctr.f, 1, memory_order_relaxed)
#define LK_ADD(f, v) atomic_fetch_add_explicit(&mx__likes_ctr.f, (v), memory_order_relaxed)
#define LK_SET(f, v) atomic_store_explicit(&mx__likes_ctr.f, (v), memory_order_relaxed)

/* "<prefix>{lk<k>}:<suffix>" into out; returns its length. */
size_t mx__likes_key(char *out, size_t cap, uint32_t part, const char *suffix);
/* "<prefix>{lk<k>}:<what>:<ocid>" */
size_t mx__likes_tkey(char *out, size_t cap, uint32_t part, const char *what, const char *ocid);
/* "<prefix>{lk<k>}:" (the partition prefix scripts build keys with) */
size_t mx__likes_pprefix(char *out, size_t cap, uint32_t part);

/* Scripts (docs/likes.md has each with its keys and answers). */
extern const char mx__lk_toggle_lua[];
extern const char mx__lk_status_lua[];
extern const char mx__lk_warm_lua[];
extern const char mx__lk_take_lua[];
extern const char mx__lk_finish_lua[];
extern const char mx__lk_check_lua[];
extern const char mx__lk_idle_lua[];

/* ---- MySQL jobs (like_store.c); pool threads ---- */

/* Cold read: the stored count and whether account likes ocid. */
struct mx__lk_read {
    char ocid[MX_LIKES_OCID_MAX + 1];
    char account[MX_LIKES_ACCOUNT_MAX + 1]; /* "" = anonymous */
    int64_t count;
    bool liked;
};
int mx__lk_read_job(struct mx_mysql_conn *c, void *arg);

/* Warm load: every liker of ocid and the count to start from. */
struct mx__lk_warm {
    char ocid[MX_LIKES_OCID_MAX + 1];
    uint32_t max_rows;
    int64_t count;
    char **rows; /* nrows account ids (malloc'd) */
    uint32_t nrows, caprows;
    bool too_many;
};
int mx__lk_warm_job(struct mx_mysql_conn *c, void *arg);
void mx__lk_warm_free(struct mx__lk_warm *w);

/* One target's changes in a batch. */
struct mx__lk_target {
    char ocid[MX_LIKES_OCID_MAX + 1];
    char ign[MX_LIKES_IGN_MAX * 4 + 1];
    char **like, **unlike; /* account ids */
    uint32_t nlike, nunlike, caplike, capunlike;
    int64_t inserted, deleted; /* filled by the job */
};

/* A journal committed as one fenced transaction. */
struct mx__lk_batch {
    char batch_id[96];
    uint32_t part;
    uint64_t seq;      /* the holder's lease counter (fence epoch) */
    int64_t oldest_ms; /* unix ms of the oldest toggle in the batch */
    struct mx__lk_target *t;
    uint32_t nt, capt;
    uint32_t pairs;
    bool replay; /* out: the batch id was already recorded (nothing applied) */
    int64_t inserted, deleted;
};
/* A pass: the journals of every partition that had one, committed as ONE
 * fenced transaction (the batch ids recorded with INSERT IGNORE: one
 * committed before applies nothing and says replay). */
struct mx__lk_pass {
    uint64_t seq;
    bool prune; /* also delete batch ids older than 7 days (a bounded DELETE) */
    uint32_t n;
    struct mx__lk_batch *b[MX_LIKES_PARTITIONS];
};
int mx__lk_commit_job(struct mx_mysql_conn *c, void *arg); /* arg: struct mx__lk_pass */
void mx__lk_pass_free(void *p);

/* The last committed batch id of every partition ("" = none). */
struct mx__lk_last {
    char id[MX_LIKES_PARTITIONS][96];
};
int mx__lk_last_job(struct mx_mysql_conn *c, void *arg);
void mx__lk_batch_free(void *b);
struct mx__lk_target *mx__lk_batch_target(struct mx__lk_batch *b, const char *ocid, size_t len);
void mx__lk_target_add(struct mx__lk_target *t, const char *acct, size_t len, bool like);

#endif
