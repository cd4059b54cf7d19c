/* schema.c - the mx schema (DESIGN.md section 7) as numbered migrations.
 *
 * MySQL commits DDL implicitly, so a migration cannot be rolled back as a
 * whole. Every statement is therefore idempotent on its own (CREATE TABLE IF
 * NOT EXISTS, ADD COLUMN IF NOT EXISTS, ...), and the version row is written
 * last, in a transaction: a migration interrupted half way is simply run
 * again from its start by the next node. Append new migrations; never edit
 * one that has shipped.
 */
#include "mx_schema.h"

#include <stdio.h>
#include <string.h>

#include "mx_err.h"
#include "mx_log.h"

#define TBL " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci"

struct migration {
    int version;
    const char *name;
    const char *const *stmts; /* NULL-terminated */
};

static const char *const m1[] = {
    "CREATE TABLE IF NOT EXISTS game_character ("
    " id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,"
    " user_ign VARCHAR(64) NOT NULL,"
    " ocid VARCHAR(64) NOT NULL,"
    " world_name VARCHAR(64) NULL,"
    " character_class VARCHAR(64) NULL,"
    " character_image VARCHAR(1024) NULL,"
    " like_count BIGINT NOT NULL DEFAULT 0,"
    " updated_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),"
    " UNIQUE KEY uk_game_character_user_ign (user_ign),"
    " UNIQUE KEY uk_game_character_ocid (ocid))" TBL,
    "CREATE TABLE IF NOT EXISTS character_equipment ("
    " ocid VARCHAR(64) NOT NULL PRIMARY KEY,"
    " equipment LONGBLOB NOT NULL COMMENT 'gzip of the item-equipment JSON',"
    " updated_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3))" TBL,
    "CREATE TABLE IF NOT EXISTS character_like ("
    " id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,"
    " target_ocid VARCHAR(64) NOT NULL,"
    " liker_account_id VARCHAR(128) NOT NULL,"
    " created_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),"
    " UNIQUE KEY uk_character_like_pair (target_ocid, liker_account_id),"
    " KEY ix_character_like_liker (liker_account_id))" TBL,
    MX_MYSQL_FENCE_DDL TBL, /* the runtime's fenced writes (mx_mysql.h) */
    NULL};

static const char *const m2[] = {
    "CREATE TABLE IF NOT EXISTS equipment_expectation_summary ("
    " id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,"
    " ocid VARCHAR(64) NOT NULL,"
    " user_ign VARCHAR(64) NOT NULL,"
    " preset_no TINYINT NOT NULL,"
    " total_expected_cost BIGINT NOT NULL DEFAULT 0,"
    " black_cube_cost BIGINT NOT NULL DEFAULT 0,"
    " additional_cube_cost BIGINT NOT NULL DEFAULT 0,"
    " starforce_cost BIGINT NOT NULL DEFAULT 0,"
    " calculated_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),"
    " UNIQUE KEY uk_summary_ocid_preset (ocid, preset_no),"
    " KEY ix_summary_user_ign (user_ign, preset_no))" TBL,
    NULL};

static const char *const m3[] = {
    "CREATE TABLE IF NOT EXISTS outbox ("
    " id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,"
    " event_type VARCHAR(64) NOT NULL,"
    " payload LONGBLOB NOT NULL,"
    " idempotency_key VARCHAR(191) NOT NULL,"
    " attempts INT NOT NULL DEFAULT 0,"
    " status VARCHAR(16) NOT NULL DEFAULT 'PENDING',"
    " next_attempt_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),"
    " last_error VARCHAR(1024) NULL,"
    " created_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),"
    " updated_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)"
    "  ON UPDATE CURRENT_TIMESTAMP(3),"
    " UNIQUE KEY uk_outbox_idempotency (idempotency_key),"
    " KEY ix_outbox_status_next (status, next_attempt_at))" TBL,
    "CREATE TABLE IF NOT EXISTS outbox_dlq ("
    " id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,"
    " outbox_id BIGINT NULL,"
    " event_type VARCHAR(64) NOT NULL,"
    " payload LONGBLOB NOT NULL,"
    " idempotency_key VARCHAR(191) NOT NULL,"
    " attempts INT NOT NULL DEFAULT 0,"
    " status VARCHAR(16) NOT NULL DEFAULT 'DEAD',"
    " last_error VARCHAR(1024) NULL,"
    " created_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),"
    " updated_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)"
    "  ON UPDATE CURRENT_TIMESTAMP(3),"
    " UNIQUE KEY uk_outbox_dlq_idempotency (idempotency_key))" TBL,
    NULL};

static const char *const m4[] = {"CREATE TABLE IF NOT EXISTS like_sync_batch ("
                                 " id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,"
                                 " batch_id VARCHAR(96) NOT NULL,"
                                 " part INT NOT NULL,"
                                 " epoch BIGINT NOT NULL,"
                                 " pairs INT NOT NULL DEFAULT 0,"
                                 " created_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),"
                                 " UNIQUE KEY uk_like_sync_batch_id (batch_id),"
                                 " KEY ix_like_sync_batch_part (part, id),"
                                 " KEY ix_like_sync_batch_created (created_at))" TBL,
                                 NULL};

/* ---- migration 5: the outbox relay's claim columns, points ledger and
 * donation history (docs/outbox.md) ---- */
static const char *const m5[] = {
    "ALTER TABLE outbox ADD COLUMN IF NOT EXISTS claim_epoch BIGINT NOT NULL DEFAULT 0"
    " COMMENT 'lease counter of the relay that claimed the row'",
    "ALTER TABLE outbox ADD COLUMN IF NOT EXISTS claimed_at TIMESTAMP(3) NULL",
    "ALTER TABLE outbox ADD COLUMN IF NOT EXISTS delivered_at TIMESTAMP(3) NULL",
    "ALTER TABLE outbox ADD INDEX IF NOT EXISTS ix_outbox_status_epoch (status, claim_epoch)",
    "CREATE TABLE IF NOT EXISTS point_account ("
    " account_id VARCHAR(96) NOT NULL PRIMARY KEY,"
    " points BIGINT NOT NULL DEFAULT 0,"
    " updated_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)"
    "  ON UPDATE CURRENT_TIMESTAMP(3),"
    " CONSTRAINT ck_point_account_points CHECK (points >= 0))" TBL,
    "CREATE TABLE IF NOT EXISTS donation_history ("
    " id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,"
    " request_id VARCHAR(64) NOT NULL,"
    " sender_account VARCHAR(96) NOT NULL,"
    " receiver_fingerprint VARCHAR(64) NOT NULL,"
    " amount BIGINT NOT NULL,"
    " created_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),"
    " UNIQUE KEY uk_donation_history_request (request_id),"
    " KEY ix_donation_history_sender (sender_account))" TBL,
    NULL};

static const struct migration migrations[] = {
    {1, "characters, equipment, likes, fence", m1},
    {2, "expectation summary", m2},
    {3, "outbox and dead letter queue", m3},
    {4, "like-sync batches", m4},
    {5, "outbox relay claims, points ledger, donations", m5},
};

_Static_assert(sizeof(migrations) / sizeof(migrations[0]) == MX_SCHEMA_VERSION,
               "MX_SCHEMA_VERSION must be the number of migrations");

#define LOCK_NAME "mx_schema_migrate"
#define LOCK_WAIT_S 30

int mx_schema_version(struct mx_mysql_conn *c, int *out)
{
    int64_t v = 0;
    bool found = false;
    int rc =
        mx_mysql_query_int(c,
                           "SELECT COUNT(*) FROM information_schema.tables"
                           " WHERE table_schema = DATABASE() AND table_name = 'schema_version'",
                           NULL, 0, &v, &found);
    if (rc != 0)
        return rc;
    if (v == 0) {
        *out = 0;
        return 0;
    }
    rc = mx_mysql_query_int(c, "SELECT COALESCE(MAX(version), 0) FROM schema_version", NULL, 0, &v,
                            &found);
    if (rc != 0)
        return rc;
    *out = (int)v;
    return 0;
}

static int apply_one(struct mx_mysql_conn *c, const struct migration *m, char *err, size_t errlen)
{
    int rc;
    for (const char *const *s = m->stmts; *s; s++) {
        rc = mx_mysql_exec(c, *s, NULL, 0, NULL);
        if (rc != 0) {
            snprintf(err, errlen, "migration %d (%s): %s (%u)", m->version, m->name,
                     mx_mysql_error(c), mx_mysql_errno(c));
            return rc;
        }
    }
    rc = mx_mysql_begin(c);
    if (rc == 0) {
        struct mx_sql_val v[] = {MX_SQL_I(m->version), MX_SQL_S(m->name)};
        rc = mx_mysql_exec(c,
                           "INSERT INTO schema_version (version, name) VALUES (?, ?)"
                           " ON DUPLICATE KEY UPDATE name = VALUES(name)",
                           v, 2, NULL);
        if (rc == 0)
            rc = mx_mysql_commit(c);
        else
            mx_mysql_rollback(c);
    }
    if (rc != 0)
        snprintf(err, errlen, "migration %d: recording the version: %s", m->version,
                 mx_mysql_error(c));
    return rc;
}

int mx_schema_migrate(struct mx_mysql_conn *c, int *from, int *to, char *err, size_t errlen)
{
    int64_t got = 0;
    bool found = false;
    int cur = 0, rc;

    err[0] = '\0';
    struct mx_sql_val lk[] = {MX_SQL_S(LOCK_NAME), MX_SQL_I(LOCK_WAIT_S)};
    rc = mx_mysql_query_int(c, "SELECT GET_LOCK(?, ?)", lk, 2, &got, &found);
    if (rc != 0) {
        snprintf(err, errlen, "schema lock: %s", mx_mysql_error(c));
        return rc;
    }
    if (!found || got != 1) {
        snprintf(err, errlen, "schema lock %s busy for %d s (another node migrating?)", LOCK_NAME,
                 LOCK_WAIT_S);
        return MX_ETIMEDOUT;
    }
    rc = mx_mysql_exec(c,
                       "CREATE TABLE IF NOT EXISTS schema_version ("
                       " version INT NOT NULL PRIMARY KEY,"
                       " name VARCHAR(128) NOT NULL,"
                       " applied_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3))" TBL,
                       NULL, 0, NULL);
    if (rc == 0)
        rc = mx_schema_version(c, &cur);
    if (rc != 0) {
        snprintf(err, errlen, "schema_version: %s", mx_mysql_error(c));
        goto out_unlock;
    }
    if (from)
        *from = cur;
    if (cur > MX_SCHEMA_VERSION) {
        snprintf(err, errlen,
                 "database schema version %d is newer than this binary knows (%d): refusing "
                 "to start; run a newer mxnode",
                 cur, MX_SCHEMA_VERSION);
        mx_log(MX_LOG_ERROR, "%s", err);
        rc = MX_ECONFIG;
        goto out_unlock;
    }
    for (size_t i = 0; i < sizeof(migrations) / sizeof(migrations[0]); i++) {
        const struct migration *m = &migrations[i];
        if (m->version <= cur)
            continue;
        rc = apply_one(c, m, err, errlen);
        if (rc != 0) {
            mx_log(MX_LOG_ERROR, "schema: %s", err);
            goto out_unlock;
        }
        mx_log(MX_LOG_INFO, "schema: applied migration %d (%s)", m->version, m->name);
        cur = m->version;
    }
    if (to)
        *to = cur;
out_unlock:;
    struct mx_sql_val rl[] = {MX_SQL_S(LOCK_NAME)};
    if (!mx_mysql_broken(c))
        (void)mx_mysql_query_int(c, "SELECT RELEASE_LOCK(?)", rl, 1, &got, &found);
    return rc;
}

int mx_schema_migrate_job(struct mx_mysql_conn *c, void *arg)
{
    struct mx_schema_job *j = arg;
    return mx_schema_migrate(c, &j->from, &j->to, j->err, sizeof(j->err));
}
