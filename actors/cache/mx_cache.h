/* mx_cache.h - the expectation service: cache shards that answer
 * "expectation document of IGN" and "character record of IGN" from their
 * L1, from L2 Redis, or load them through L3 MySQL, the fetcher (ocid, then
 * item-equipment or basic) and the calculator actor (actors/calculator:
 * parse + build + gzip), with one load per key at a time in the cluster (a Redis latch and
 * a pub/sub completion notice; per node while Redis is away).
 * docs/expectation-service.md describes the tiers, keys and outages.
 *
 * Documents are immutable and refcounted (struct mx_http_doc) with their
 * gzip form and ETags, so the http-acceptor writes the same bytes to every
 * client without copying or recompressing them.
 *
 * Shards: one cache actor per scheduler, named "cache.<i>"; a key lives in
 * the shard mx_svc_shard(ign, n). Each shard's state belongs to its thread.
 * A shard also answers svc_latches (proto/msg_store.def) for the
 * shutdown-coordinator: op 1 releases every latch it holds (and publishes
 * the notice, so waiters elsewhere load at once) and any it takes later,
 * replying svc_latches_rep once Redis answered; op 0 undoes it.
 */
#ifndef MX_CACHE_H
#define MX_CACHE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mx_actor.h"
#include "mx_metrics.h"
#include "mx_blob.h"
#include "mx_mysql.h"
#include "mx_spool.h"

/* Documents are struct mx_http_doc (actors/http/mx_http.h): plain bytes, the
 * gzip variant and ETags, refcounted. An exp_rep with status 0 carries one
 * reference as its ptr payload (freed with the message), except for
 * MX_SVC_CHARACTER: a struct mx_character_rec. */

/* exp_get.what. MX_SVC_EQUIPMENT is the character's item-equipment JSON as
 * the upstream sent it (a document with its gzip variant): served from the
 * same tiers the calculation reads it from (L1 "e|OCID", L2, L3), fetched
 * only when none has it, and kept in L1 with its gzip so repeated requests
 * cost no upstream call and no recompression. */
enum mx_svc_what { MX_SVC_EXPECTATION = 1, MX_SVC_CHARACTER = 2, MX_SVC_EQUIPMENT = 3 };

/* The character record of MX_SVC_CHARACTER: the domain record, not its
 * JSON (the API layer renders that, with the live like count). Immutable
 * once shared and refcounted like documents: an exp_rep with status 0 for
 * MX_SVC_CHARACTER carries one reference as its ptr payload. */
struct mx_character_rec {
    _Atomic uint32_t refs;
    char user_ign[96]; /* as the upstream spells it, else as asked */
    char ocid[64];
    char world_name[64];
    char character_class[96];
    char character_image[512];
};

/* mx_character_rec_new - a zeroed record with one reference for the
 * caller; aborts on out-of-memory. ref/unref as for documents (unref of
 * NULL is a no-op; the last one frees). Any thread. */
struct mx_character_rec *mx_character_rec_new(void);
struct mx_character_rec *mx_character_rec_ref(struct mx_character_rec *c);
void mx_character_rec_unref(struct mx_character_rec *c);

struct mx_svc_opts {
    const char *fetcher_name;  /* registered name of the fetcher ("fetcher") */
    uint32_t l1_max_entries;   /* per shard; default 10000 */
    uint64_t l1_max_bytes;     /* per shard; default 128 MiB */
    uint32_t ttl_doc_ms;       /* expectation document; default 60 min */
    uint32_t ttl_equipment_ms; /* raw equipment; default 5 min */
    uint32_t ttl_ocid_ms;      /* IGN -> ocid; default 30 min */
    uint32_t ttl_character_ms; /* character record; default 15 min */
    uint32_t ttl_negative_ms;  /* unknown character; default 15 min */
    /* L2 Redis (none when redis_url is NULL or "") */
    const char *redis_url;      /* borrowed, outlives the service */
    const char *cluster;        /* key prefix mx:<cluster>: and channel; default "mx" */
    uint32_t redis_timeout_ms;  /* per command; default 1000 */
    uint32_t ttl2_doc_ms;       /* default 60 min */
    uint32_t ttl2_equipment_ms; /* default 10 min */
    uint32_t ttl2_ocid_ms;      /* default 60 min */
    uint32_t ttl2_character_ms; /* default 15 min */
    uint32_t ttl2_negative_ms;  /* default 15 min */
    uint32_t latch_ttl_ms;      /* single-flight latch; also the longest wait; default 10 s */
    /* L3 MySQL (none when mysql is NULL) */
    mx_mysql_t *mysql; /* borrowed; stopped after the system */
    mx_spool_t *spool; /* borrowed; writes land here while MySQL is down; may be NULL */
    /* MySQL's state as the cluster's mysql-health singleton reports it
     * (mx_health_mysql_up); NULL = assume up. While it says down, L3 reads
     * are skipped, spool replays wait, and entries stored in L1 and L2 live
     * mysql_down_ttl_factor times longer (they cannot be reloaded from L3). */
    bool (*mysql_up)(void);
    uint32_t mysql_down_ttl_factor; /* default 3 */
    uint32_t l3_fresh_ms;           /* stored equipment younger than this is used; default 15 min */
    uint32_t fetch_timeout_ms;      /* one fetcher request; default 20 s */
    uint32_t max_flights;           /* loads in progress per shard; default 1024 */
    uint32_t max_waiters;           /* requests waiting on one load; default 4096 */
};

void mx_svc_opts_default(struct mx_svc_opts *o);

/* mx_svc_start - spawn one cache shard per scheduler ("cache.0" ...).
 * opts is copied. Returns 0 or the mx_spawn error. Not from a scheduler. */
int mx_svc_start(mx_system_t *sys, const struct mx_svc_opts *opts);

/* mx_svc_shard - the shard index of ign among n shards. */
uint32_t mx_svc_shard(const char *ign, size_t len, uint32_t n);

/* Counters: declared once here; each shard owns one block (written only
 * by its thread, MX_METRIC_INC) registered as actor "cache", instance
 * "shard-<i>" (runtime/mx_metrics.h), so the Prometheus text and mxctl
 * stats come from this list. */
#define MX_CACHE_METRICS(X)                                                                        \
    X(COUNTER, requests, "exp_get requests received", "", "event=\"request\"")                     \
    X(COUNTER, l1_hits, "requests answered from L1", "", "event=\"l1_hit\"")                       \
    X(COUNTER, l1_misses, "requests L1 could not answer", "", "event=\"l1_miss\"")                 \
    X(COUNTER, l1_stale_served, "expired or stale documents served because upstream failed", "",   \
      "event=\"stale_served\"")                                                                    \
    X(COUNTER, coalesced, "requests that joined a load already under way", "",                     \
      "event=\"coalesced\"")                                                                       \
    X(COUNTER, loads, "loads started (ocid, equipment or record)", "", "event=\"load\"")           \
    X(COUNTER, load_errors, "loads that ended in an error answer", "", "event=\"load_error\"")     \
    X(COUNTER, not_found, "loads that found no such character", "", "event=\"not_found\"")         \
    X(COUNTER, negative_hits, "requests answered by an unknown-character mark", "",                \
      "event=\"negative_hit\"")                                                                    \
    X(COUNTER, evictions, "L1 entries evicted by its entry or byte bound", "",                     \
      "event=\"eviction\"")                                                                        \
    X(COUNTER, refused, "requests refused: too many loads or waiters", "", "event=\"refused\"")    \
    X(GAUGE, entries, "entries held in L1", "l1_entries")                                          \
    X(GAUGE, bytes, "bytes held in L1", "l1_bytes")                                                \
    X(COUNTER, calc_ms_total, "milliseconds spent in calculations", "", "event=\"calc_ms\"")       \
    X(COUNTER, calcs, "calculations answered by the calculator", "", "event=\"calc\"")             \
    X(COUNTER, l2_hits, "values served from L2 Redis", "", "event=\"l2_hit\"")                     \
    X(COUNTER, l2_misses, "L2 lookups that found nothing", "", "event=\"l2_miss\"")                \
    X(COUNTER, l2_corrupt, "damaged L2 values evicted", "", "event=\"l2_corrupt\"")                \
    X(COUNTER, redis_errors, "failed Redis commands", "", "event=\"redis_error\"")                 \
    X(COUNTER, redis_fallbacks, "loads run without the cluster latch", "",                         \
      "event=\"redis_fallback\"")                                                                  \
    X(COUNTER, latch_acquired, "cluster latches taken", "", "event=\"latch_acquired\"")            \
    X(COUNTER, latch_waits, "loads that waited for another holder of the latch", "",               \
      "event=\"latch_wait\"")                                                                      \
    X(COUNTER, latch_notices, "completion notices that ended a wait", "",                          \
      "event=\"latch_notice\"")                                                                    \
    X(COUNTER, latch_timeouts, "waits that gave up on a latch and loaded here too", "",            \
      "event=\"latch_timeout\"")                                                                   \
    X(COUNTER, invalidations_sent, "recalculations that told every node to drop copies", "",       \
      "event=\"invalidation_sent\"")                                                               \
    X(COUNTER, invalidations_applied, "invalidations from other nodes applied", "",                \
      "event=\"invalidation_applied\"")                                                            \
    X(COUNTER, invalidation_ack_timeouts, "recalculations answered before every node acked", "",   \
      "event=\"invalidation_ack_timeout\"")                                                        \
    X(COUNTER, l3_skipped_down, "L3 reads skipped: mysql-health says down", "",                    \
      "event=\"l3_skipped_down\"")                                                                 \
    X(COUNTER, latch_renewals, "latches extended by a load still running", "",                     \
      "event=\"latch_renewal\"")                                                                   \
    X(COUNTER, l3_hits, "equipment read from L3 MySQL", "", "event=\"l3_hit\"")                    \
    X(COUNTER, l3_stale, "L3 equipment past its freshness", "", "event=\"l3_stale\"")              \
    X(COUNTER, l3_misses, "L3 reads that found nothing", "", "event=\"l3_miss\"")                  \
    X(COUNTER, l3_corrupt, "damaged L3 rows deleted", "", "event=\"l3_corrupt\"")                  \
    X(COUNTER, l3_errors, "L3 reads that failed", "", "event=\"l3_error\"")                        \
    X(COUNTER, l3_writes, "L3 writes submitted", "", "event=\"l3_write\"")                         \
    X(COUNTER, l3_write_errors, "L3 writes lost", "", "event=\"l3_write_error\"")                  \
    X(COUNTER, l3_spooled, "L3 writes kept in the spool while MySQL was down", "",                 \
      "event=\"l3_spooled\"")                                                                      \
    X(COUNTER, l3_refused, "L3 writes refused: too many in flight or the queue full", "",          \
      "event=\"l3_refused\"")                                                                      \
    X(COUNTER, replays, "spool replays started", "", "event=\"spool_replay\"")                     \
    X(COUNTER, replays_ok, "spool replays that finished", "", "event=\"spool_replay_ok\"")

/* One shard's block; the shards' blocks are kept cache-line aligned so
 * no line is shared between shards. */
MX_METRICS_STRUCT(mx_cache_metrics, MX_CACHE_METRICS);

/* A sum over every shard, with the same field names. */
#define MX__CACHE_STAT_FIELD(kind, name, ...) uint64_t name;
struct mx_svc_stats {
    MX_CACHE_METRICS(MX__CACHE_STAT_FIELD)
};

/* mx_svc_stats - the shards' counters summed (gauges too); any thread,
 * never blocks. Until the renderers read the registry, mxnode's stats
 * section and the Prometheus text use this. */
void mx_svc_stats(struct mx_svc_stats *out);

#endif
