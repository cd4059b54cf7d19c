/* mx_store.h - prepared-statement helpers for the mx tables, and the
 * write path that falls back to the durable spool while MySQL is down.
 *
 * Every write here is an idempotent upsert stamped with the time it was
 * made (ms since the epoch): replaying it twice, or after a newer write of
 * the same row, leaves the newer data in place. That is what lets the spool
 * replay after a crash without losing or doubling anything.
 *
 * All functions taking a struct mx_mysql_conn run on the thread that owns
 * it (a pool job) and block.
 */
#ifndef MX_STORE_H
#define MX_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "mx_mysql.h"
#include "mx_spool.h"

/* Spool record kinds written by this module. */
enum mx_store_kind {
    MX_STORE_REC_EQUIPMENT = 1, /* ocid, gzip blob, at_ms */
    MX_STORE_REC_CHARACTER = 2, /* user_ign, ocid, world, class, image, at_ms */
    MX_STORE_REC_SUMMARY = 3,   /* ocid, user_ign, preset, 4 costs (decimal text), at_ms */
};

/* One row of equipment_expectation_summary (costs in meso). */
struct mx_store_summary {
    const char *ocid;
    const char *user_ign;
    int preset_no; /* 1-3 */
    int64_t total_expected_cost, black_cube_cost, additional_cube_cost, starforce_cost;
};

struct mx_store_character {
    const char *user_ign;
    const char *ocid;
    const char *world_name;      /* may be NULL */
    const char *character_class; /* may be NULL */
    const char *character_image; /* may be NULL */
};

/* mx_store_put_equipment - upsert character_equipment(ocid) with the gzip
 * bytes gz/len as of at_ms; an older at_ms than the stored row's changes
 * nothing. Returns 0 or the mx_mysql errors. */
int mx_store_put_equipment(struct mx_mysql_conn *c, const char *ocid, const void *gz, size_t len,
                           uint64_t at_ms);

/* mx_store_get_equipment - the stored gzip bytes of ocid (*out malloc'd,
 * the caller frees it) and their time (*at_ms). MX_ENOTFOUND if none. */
int mx_store_get_equipment(struct mx_mysql_conn *c, const char *ocid, void **out, size_t *len,
                           uint64_t *at_ms);

/* mx_store_put_character - upsert game_character by user_ign or ocid
 * (like_count is never touched here). Same rules as put_equipment. */
int mx_store_put_character(struct mx_mysql_conn *c, const struct mx_store_character *ch,
                           uint64_t at_ms);

/* mx_store_put_summary - upsert equipment_expectation_summary(ocid,
 * preset_no) as of at_ms (calculated_at); an older at_ms changes nothing.
 * Returns 0, MX_EINVAL or the mx_mysql errors. */
int mx_store_put_summary(struct mx_mysql_conn *c, const struct mx_store_summary *sm,
                         uint64_t at_ms);

/* mx_store_del_equipment - delete character_equipment(ocid) (a stored value
 * found unreadable). Returns 0 (also when there was none) or the mx_mysql
 * errors. */
int mx_store_del_equipment(struct mx_mysql_conn *c, const char *ocid);

/* mx_store_get_ocid - the ocid stored in game_character for user_ign into
 * out (cap bytes, NUL-terminated). MX_ENOTFOUND if none, MX_ETOOBIG if it
 * does not fit. */
int mx_store_get_ocid(struct mx_mysql_conn *c, const char *user_ign, char *out, size_t cap);

/* ---- spool records ---- */

/* mx_store_rec_equipment / _character - encode a write as a spool record
 * payload (*out malloc'd, *outlen bytes). Returns 0, MX_EINVAL, MX_ETOOBIG. */
int mx_store_rec_equipment(const char *ocid, const void *gz, size_t len, uint64_t at_ms,
                           uint8_t **out, uint32_t *outlen);
int mx_store_rec_character(const struct mx_store_character *ch, uint64_t at_ms, uint8_t **out,
                           uint32_t *outlen);
/* mx_store_rec_summary - the same for a summary row. */
int mx_store_rec_summary(const struct mx_store_summary *sm, uint64_t at_ms, uint8_t **out,
                         uint32_t *outlen);

/* mx_store_apply - perform one spooled write (kind, payload) on c. Returns
 * 0, MX_EDECODE for a malformed payload or unknown kind (such a record is
 * logged and reported as landed by mx_store_replay, so it cannot block the
 * spool forever), or the mx_mysql errors. */
int mx_store_apply(struct mx_mysql_conn *c, uint32_t kind, const void *data, uint32_t len);

/* mx_store_replay - replay the spool on c with mx_store_apply; stops at the
 * first write that fails for a reason other than a malformed record.
 * *applied (may be NULL) gets the records that landed. Returns 0 when the
 * spool is empty afterwards, else as mx_spool_replay. */
int mx_store_replay(struct mx_mysql_conn *c, mx_spool_t *spool, uint32_t *applied);

/* A write for mx_store_write_job. The record is owned by the job. */
struct mx_store_write {
    mx_spool_t *spool;
    uint32_t kind;
    uint8_t *rec;
    uint32_t len;
    int spooled; /* out: 1 when the write went to the spool instead of MySQL */
};

/* mx_store_write_job - an mx_mysql_fn (submit it with MX_MYSQL_CALL_DOWN)
 * that lands arg (struct mx_store_write *) in MySQL, or in the spool when
 * MySQL is down (c == NULL or the connection is lost) or earlier writes are
 * still spooled (so it cannot overtake them; it then tries a replay). Returns
 * 0 when the write is in MySQL or durable in the spool; MX_EFULL when the
 * spool refused it; other errors from MySQL (e.g. MX_EIO) are returned
 * without spooling (retrying them would not help). */
int mx_store_write_job(struct mx_mysql_conn *c, void *arg);

/* mx_store_write_free - free a struct mx_store_write and its record (an
 * arg_free for mx_mysql_submit). */
void mx_store_write_free(void *arg);

/* mx_store_replay_job - an mx_mysql_fn replaying the spool given as arg;
 * run it when the pool reports MySQL up and the spool is not idle (e.g. on
 * a 1 s timer). Returns as mx_store_replay. */
int mx_store_replay_job(struct mx_mysql_conn *c, void *arg);

#endif
