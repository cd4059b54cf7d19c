/* mx_spool.h - a durable, bounded, append-only spool of records, for writes
 * that could not reach their store (MySQL down) and must land later.
 *
 * A spool is one local file of records, each with a CRC. An append is on
 * disk (fsync) before it returns, or after every sync_every appends when a
 * small batch is acceptable. Replay hands the records to a callback in the
 * order they were appended; records leave the file only after the callback
 * said they landed, and the file is truncated (or compacted, when replay
 * stopped half way) afterwards. A crash between landing and truncation
 * replays those records again, so the callback's writes must be idempotent
 * (upserts, keys). Damaged records (bad CRC, a torn tail after a crash) are
 * detected, skipped and logged, never handed out. Size is bounded in bytes
 * and records; appends past the bound are refused and counted.
 *
 * All functions are thread-safe (one mutex); replay does not hold it while
 * the callback runs, so appends continue during a replay.
 */
#ifndef MX_SPOOL_H
#define MX_SPOOL_H

#include <stdbool.h>
#include <stdint.h>

typedef struct mx_spool mx_spool_t;

#define MX_SPOOL_MAX_RECORD (16u << 20) /* largest record payload, bytes */
#define MX_SPOOL_HDR 16u                /* per-record overhead, bytes */

struct mx_spool_opts {
    const char *path;     /* the spool file; created if missing */
    uint64_t max_bytes;   /* file size bound incl. headers; 0 = 64 MiB */
    uint32_t max_records; /* 0 = 100000 */
    uint32_t sync_every;  /* fsync after this many appends; 0 or 1 = every append */
};

/* mx_spool_open - open (or create) the spool file, check every record's CRC
 * and count the valid ones. A damaged tail (no valid record after it) is cut
 * off; damaged records in the middle are kept in the file but skipped (both
 * logged and counted in corrupt). Returns 0 and *out, or MX_EIO (reason
 * logged), MX_EINVAL. Blocks (reads the file). */
int mx_spool_open(const struct mx_spool_opts *opts, mx_spool_t **out);

/* mx_spool_close - sync and close the spool and free it. NULL is a no-op.
 * Not while a replay runs. */
void mx_spool_close(mx_spool_t *s);

/* mx_spool_append - append one record (kind is the caller's tag, data/len
 * its payload, len <= MX_SPOOL_MAX_RECORD). Durable (fsync'd) on return
 * unless sync_every > 1. Returns 0; MX_EFULL when the byte or record bound
 * would be passed (counted in refused, logged at most once a second);
 * MX_ETOOBIG; MX_EIO when the write or fsync failed (the partial record is
 * cut off again). Blocks on disk. Any thread. */
int mx_spool_append(mx_spool_t *s, uint32_t kind, const void *data, uint32_t len);

/* mx_spool_sync - fsync appends not yet synced (sync_every > 1). */
int mx_spool_sync(mx_spool_t *s);

/* Deliver one record. Return 0 when it landed; any negative code stops the
 * replay there (the record and those after it stay for the next replay). */
typedef int (*mx_spool_apply_fn)(void *ctx, uint32_t kind, const void *data, uint32_t len);

/* mx_spool_replay - hand the valid records to apply in append order (the
 * records appended while the replay runs wait for the next one). Then drop
 * the ones that landed: truncate the file when all did, else rewrite it
 * with the rest (temp file, fsync, rename). *applied (may be NULL) gets the
 * number that landed. Returns 0 when every record landed, apply's error
 * when it stopped, MX_EIO on a file error (nothing is dropped then),
 * MX_EEXISTS if another replay is running. Blocks; any thread; apply runs
 * on the calling thread without the spool's lock. */
int mx_spool_replay(mx_spool_t *s, mx_spool_apply_fn apply, void *ctx, uint32_t *applied);

/* mx_spool_idle - true when no record waits and no replay runs: a writer
 * may then write to the store directly without overtaking spooled writes.
 * Any thread. */
bool mx_spool_idle(mx_spool_t *s);

struct mx_spool_stats {
    uint32_t records;  /* valid records waiting */
    uint64_t bytes;    /* file size */
    uint64_t appended; /* appends accepted since open */
    uint64_t refused;  /* appends refused for the bound */
    uint64_t replayed; /* records that landed through replay */
    uint64_t corrupt;  /* damaged records or byte runs skipped */
    uint64_t io_errors;
};

/* mx_spool_stats - a snapshot of the counters. Any thread. */
void mx_spool_stats(mx_spool_t *s, struct mx_spool_stats *out);

#endif
