/* mx_schema.h - the mx MySQL schema and its migrations.
 *
 * The schema is a numbered list of migrations compiled into the binary.
 * mx_schema_migrate() brings a database up to MX_SCHEMA_VERSION at start:
 * it records each applied migration in schema_version, applies the missing
 * ones in order, and is idempotent (running it again changes nothing). Nodes
 * starting together serialise on a named lock (GET_LOCK). A database whose
 * schema is newer than the binary is refused: an old binary must not write
 * to tables it does not understand.
 */
#ifndef MX_SCHEMA_H
#define MX_SCHEMA_H

#include <stddef.h>

#include "mx_mysql.h"

/* The schema version this binary creates and understands. */
#define MX_SCHEMA_VERSION 5

/* mx_schema_version - the database's schema version (0 when the
 * schema_version table is missing or empty). Returns 0 or the mx_mysql
 * errors. The thread that owns c; blocks. */
int mx_schema_version(struct mx_mysql_conn *c, int *out);

/* mx_schema_migrate - create or migrate the schema to MX_SCHEMA_VERSION.
 * *from and *to (may be NULL) get the versions before and after. Returns 0;
 * MX_ECONFIG when the database is newer than this binary (err names both
 * versions) ; MX_ETIMEDOUT when another node held the migration lock for
 * 30 s; the mx_mysql errors otherwise (err says which migration failed).
 * Blocks. The thread that owns c (e.g. inside mx_mysql_run). */
int mx_schema_migrate(struct mx_mysql_conn *c, int *from, int *to, char *err, size_t errlen);

/* mx_schema_migrate_job - mx_mysql_fn running mx_schema_migrate, for
 * mx_mysql_run(pool, mx_schema_migrate_job, &args). */
struct mx_schema_job {
    int from, to;
    char err[256];
};
int mx_schema_migrate_job(struct mx_mysql_conn *c, void *arg);

#endif
