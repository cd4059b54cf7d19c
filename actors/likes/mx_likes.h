/* mx_likes.h - likes that are never lost or counted twice (docs/likes.md).
 *
 * Two actors:
 * - like-buffer ("likes.<i>", one per scheduler on every node) answers
 *   like_req messages: a toggle is ONE Lua script on Redis that flips the
 *   relation, adjusts the target's live count and records the pair's final
 *   state as pending, atomically; the reply is sent only after Redis
 *   acknowledged. Redis is the buffer; there is no in-memory mode. A
 *   target is "warm" in Redis once its relations were loaded from MySQL;
 *   reads of a cold target answer from MySQL (it has nothing pending).
 * - like-sync (an mx_singleton, fenced by its epoch) moves a bounded batch
 *   of pending pairs into a journal key named by a batch id, writes it to
 *   MySQL in one fenced transaction that also records the batch id, then
 *   deletes the journal. A new holder finishes any journal it finds; the
 *   batch id makes a replay a no-op.
 *
 * Keys live in MX_LIKES_PARTITIONS partitions, each under its own hash tag,
 * so every script touches one slot.
 */
#ifndef MX_LIKES_H
#define MX_LIKES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mx_actor.h"
#include "mx_lease.h"
#include "mx_mysql.h"

#define MX_LIKES_PARTITIONS 16 /* key partitions; changing it re-maps every key */
#define MX_LIKES_SINGLETON "like-sync"
#define MX_LIKES_ACCOUNT_LEN 43 /* base64url, no padding, of a SHA-256 */
#define MX_LIKES_OCID_MAX 64
#define MX_LIKES_ACCOUNT_MAX 128
#define MX_LIKES_IGN_MAX 64

/* like_req ops */
enum mx_like_op { MX_LIKE_TOGGLE = 1, MX_LIKE_STATUS = 2 };

struct mx_likes_opts {
    const char *redis_url;     /* required */
    const char *cluster;       /* key prefix mx:<cluster>:; default "mx" */
    mx_mysql_t *mysql;         /* warm loads, cold reads and the sync; may be NULL (then
                                  cold targets answer 503 and nothing syncs) */
    uint32_t redis_timeout_ms; /* per command; default 1000 */
    uint32_t sync_interval_ms; /* like-sync period; default 1000 */
    uint32_t sync_batch;       /* pending pairs per batch (soft: a target moves whole);
                                  default 2000 */
    uint32_t sync_pause_ms;    /* TESTS ONLY: wait this long between journal and commit */
    uint32_t warm_max_rows;    /* largest relation set loaded into Redis; default 500000 */
    uint32_t idle_s;           /* unload characters not toggled for this long; 0 = never;
                                  default 3600 */
    bool (*mysql_up)(void);    /* the cluster's view of MySQL; NULL = assume up */
    uint32_t wait_replicas;    /* 1: answer a toggle only after a replica has it
                                  (WAIT 1 redis_timeout_ms/2; none in time: 503); 0 = no */
};

void mx_likes_opts_default(struct mx_likes_opts *o);

/* mx_likes_start - spawn the like-buffer actors (one per scheduler,
 * "likes.<i>"). opts is copied (strings must outlive the system). Returns
 * 0 or the mx_spawn error. Not from a scheduler. */
int mx_likes_start(mx_system_t *sys, const struct mx_likes_opts *opts);

/* mx_likes_sync_declare - declare the like-sync singleton on lm (before
 * mx_leases_start), using the options given to mx_likes_start (call that
 * first). Returns 0 or the mx_singleton errors; MX_EINVAL without MySQL. */
int mx_likes_sync_declare(mx_leases_t *lm);

/* mx_likes_partition - the key partition of a target ocid. Pure. */
uint32_t mx_likes_partition(const char *ocid, size_t len);

/* mx_likes_account_id - the seed's liker identity:
 * base64url_nopad(SHA-256(join(",", sort(ocids)))) over the comma-separated
 * list csv (empty items ignored; at most 256 items). out gets 43 characters
 * and a NUL (cap >= 44). Returns 0, MX_EINVAL (no ocid, too many) or
 * MX_ETOOBIG (cap). Pure; any thread. */
int mx_likes_account_id(const char *csv, char *out, size_t cap);

/* mx_likes_valid_ocid / valid_account - what a like_req accepts. */
bool mx_likes_valid_ocid(const char *s, size_t len);
bool mx_likes_valid_account(const char *s, size_t len);

/* Counters (relaxed atomics summed over actors; any thread). */
/* The likes counters, declared once (mx_metrics.h) in one process-wide
 * block registered as two sets: actor "likes" (the toggles and reads,
 * mx_likes_total{event}) and actor "like_sync" (the sync holder's,
 * mx_like_sync_total{event} and the gauges mx_like_sync_<family>), both
 * instance "node"; mxctl stats metrics.likes and metrics.like_sync. The lag
 * histogram mx_like_sync_lag_ms stays beside them (mx_likes_stats). */
#define MX_LIKES_METRICS(X)                                                                        \
    X(COUNTER, toggles, "acknowledged toggles", "", "event=\"toggle\"")                            \
    X(COUNTER, likes, "toggles that liked", "", "event=\"like\"")                                  \
    X(COUNTER, unlikes, "toggles that unliked", "", "event=\"unlike\"")                            \
    X(COUNTER, status_redis, "reads answered from Redis", "", "event=\"status_redis\"")            \
    X(COUNTER, status_mysql, "reads answered from MySQL", "", "event=\"status_mysql\"")            \
    X(COUNTER, warms, "targets warmed into Redis", "", "event=\"warm\"")                           \
    X(COUNTER, warm_rows, "rows read by warms", "", "event=\"warm_row\"")                          \
    X(COUNTER, warm_failures, "warms that failed", "", "event=\"warm_failure\"")                   \
    X(COUNTER, redis_failures, "requests answered 503: Redis could not decide", "",                \
      "event=\"redis_failure\"")                                                                   \
    X(COUNTER, mysql_failures, "cold reads and warms refused: MySQL down", "",                     \
      "event=\"mysql_failure\"")                                                                   \
    X(COUNTER, refused, "bad requests and waiter limits", "", "event=\"refused\"")                 \
    X(COUNTER, wait_unacked, "toggles no replica acknowledged in time (503)", "",                  \
      "event=\"wait_unacked\"")                                                                    \
    X(COUNTER, unloads, "idle characters unloaded from Redis", "", "event=\"unload\"")
#define MX_LIKE_SYNC_METRICS(X)                                                                    \
    X(COUNTER, sync_batches, "batches committed", "", "event=\"batch\"")                           \
    X(COUNTER, sync_pairs, "like pairs synced", "", "event=\"pair\"")                              \
    X(COUNTER, sync_replays, "journals replayed", "", "event=\"replay\"")                          \
    X(COUNTER, sync_stale, "stale journals skipped", "", "event=\"stale\"")                        \
    X(COUNTER, sync_failures, "sync passes that failed", "", "event=\"failure\"")                  \
    X(COUNTER, sync_inserted, "like rows inserted", "", "event=\"row_inserted\"")                  \
    X(COUNTER, sync_deleted, "like rows deleted", "", "event=\"row_deleted\"")                     \
    X(COUNTER, sync_rollbacks, "partitions found older than MySQL (Redis lost writes)", "",        \
      "event=\"redis_rollback\"")                                                                  \
    X(GAUGE, holder, "1 while this node runs like-sync", "holder")                                 \
    X(GAUGE, pending_targets, "dirty targets at the last pass", "pending_targets")                 \
    X(GAUGE, journals_open, "journals seen open at the last pass", "journals_open")                \
    X(SGAUGE, sync_last_lag_ms, "oldest toggle's age at commit, last batch", "last_lag_ms")        \
    X(SGAUGE, sync_last_at_ms, "unix ms of the last committed batch; 0 none", "last_at_ms")

struct mx_likes_stats {
    uint64_t toggles, likes, unlikes;    /* acknowledged toggles */
    uint64_t status_redis, status_mysql; /* reads answered from each store */
    uint64_t warms, warm_rows, warm_failures;
    uint64_t redis_failures; /* requests answered 503: Redis could not decide */
    uint64_t mysql_failures; /* cold reads/warms refused: MySQL down */
    uint64_t refused;        /* bad requests, waiter limits */
    uint64_t wait_unacked;   /* toggles no replica acknowledged in time (503) */
    /* like-sync (on the holder) */
    uint64_t sync_batches, sync_pairs, sync_replays, sync_stale, sync_failures;
    uint64_t sync_inserted, sync_deleted;
    uint64_t sync_rollbacks;      /* partitions found older than MySQL (Redis lost writes) */
    uint64_t unloads;             /* idle characters unloaded from Redis */
    int64_t sync_last_lag_ms;     /* oldest toggle's age at commit, last batch */
    int64_t sync_last_at_ms;      /* unix ms of the last committed batch; 0 none */
    uint64_t sync_lag_buckets[8]; /* <=100,250,500,1000,2000,5000,10000,+Inf ms */
    uint64_t sync_lag_sum_ms;
    uint64_t journals_open;   /* gauge: journals seen open at the last pass */
    uint64_t pending_targets; /* gauge: dirty targets at the last pass */
    bool holder;              /* this node runs like-sync now */
};
extern const uint32_t mx_likes_lag_bounds_ms[7];

void mx_likes_stats(struct mx_likes_stats *out);

/* mx_likes_register_metrics - register the two sets once per process (the
 * API calls it when likes are on; mx_likes_start does too). Any thread. */
void mx_likes_register_metrics(void);

#endif
