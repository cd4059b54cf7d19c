/* mx_mysql.h - a pool of MySQL (MariaDB) connections on dedicated threads,
 * and the prepared-statement layer jobs use on them.
 *
 * MySQL calls block, so they never run on a scheduler. A pool owns N threads,
 * each with its own connection; actors hand it jobs (a function plus an
 * argument) through one bounded queue, and each job's completion comes back
 * to an actor as a store_job_done message carrying the status and the
 * argument. A lost connection is re-established on a later job with backoff;
 * while the server is down jobs fail fast with MX_EUNAVAIL. Health (up/down
 * and counters) is readable from any thread.
 *
 * Statements are always prepared: mx_mysql_exec() and mx_mysql_query() take
 * SQL text with ? placeholders plus an array of values, prepare the text once
 * per connection (a bounded cache keyed by the text) and bind the values, so
 * callers never fill MYSQL_BIND by hand and never splice values into SQL.
 */
#ifndef MX_MYSQL_H
#define MX_MYSQL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "mx_actor.h"
#include "mx_url.h" /* struct mx_mysql_url, mx_mysql_url_parse */

typedef struct mx_mysql mx_mysql_t;
struct mx_mysql_conn; /* one connection; used only by the thread running the job */

#define MX_MYSQL_STMT_CACHE 64         /* prepared statements kept per connection */
#define MX_MYSQL_MAX_FIELD (64u << 20) /* largest column value a query returns */
#define MX_MYSQL_MAX_PARAMS 1024       /* placeholders one statement binds (multi-row writes) */

/* ---- connections ---- */

struct mx_mysql_conn_opts {
    uint32_t connect_timeout_s; /* 0 = 1 */
    uint32_t rw_timeout_s;      /* read and write timeout; 0 = 10 */
};

/* mx_mysql_conn_open - connect (blocking) to the server of url with utf8mb4
 * and CLIENT_FOUND_ROWS (an UPDATE reports the rows it matched, even when
 * the values did not change). opts may be NULL. Returns 0 and *out, or
 * MX_EUNAVAIL (server unreachable, timed out), MX_ECONFIG (bad URL, access
 * denied, unknown database) with the reason in err. For tools, tests and
 * start-up work; running code uses a pool. Any thread; the connection is
 * then used by one thread at a time. */
int mx_mysql_conn_open(const char *url, const struct mx_mysql_conn_opts *opts,
                       struct mx_mysql_conn **out, char *err, size_t errlen);

/* mx_mysql_conn_close - close a connection from mx_mysql_conn_open and
 * free its statements. NULL is a no-op. */
void mx_mysql_conn_close(struct mx_mysql_conn *c);

/* ---- values and statements ---- */

enum mx_sql_kind {
    MX_SQL_NULL = 0,
    MX_SQL_INT,  /* int64 in .i (results: every integer column) */
    MX_SQL_TEXT, /* bytes .p/.len, a character string */
    MX_SQL_BLOB, /* bytes .p/.len, binary (results: every non-integer column) */
};

/* One parameter or result column. Parameters borrow .p for the call;
 * result values borrow it until the row callback returns. */
struct mx_sql_val {
    enum mx_sql_kind kind;
    int64_t i;
    const void *p;
    size_t len;
};

#define MX_SQL_I(v) ((struct mx_sql_val){.kind = MX_SQL_INT, .i = (int64_t)(v)})
#define MX_SQL_S(s) ((struct mx_sql_val){.kind = MX_SQL_TEXT, .p = (s), .len = strlen(s)})
#define MX_SQL_SN(s, n) ((struct mx_sql_val){.kind = MX_SQL_TEXT, .p = (s), .len = (n)})
#define MX_SQL_B(b, n) ((struct mx_sql_val){.kind = MX_SQL_BLOB, .p = (b), .len = (n)})
#define MX_SQL_NUL ((struct mx_sql_val){.kind = MX_SQL_NULL})

/* mx_mysql_exec - prepare sql (cached per connection by its text), bind the
 * n params and execute it. *affected (may be NULL) gets the affected rows
 * (matched rows for UPDATE). Statements that return rows are read and
 * discarded. Returns 0; MX_EUNAVAIL when the connection is lost (it is
 * marked broken; a pool reconnects later); MX_EEXISTS on a duplicate key;
 * MX_EINVAL when n does not match the placeholders (or exceeds
 * MX_MYSQL_MAX_PARAMS); MX_EIO for other server
 * errors (mx_mysql_errno/mx_mysql_error tell which). Blocks. The thread
 * that owns c. */
int mx_mysql_exec(struct mx_mysql_conn *c, const char *sql, const struct mx_sql_val *params,
                  size_t n, uint64_t *affected);

/* Called once per result row with ncols values (borrowed until it
 * returns). Returning non-zero stops the query, which then returns that
 * value. */
typedef int (*mx_mysql_row_fn)(void *ctx, const struct mx_sql_val *cols, size_t ncols);

/* mx_mysql_query - like mx_mysql_exec for a statement that returns rows:
 * row (may be NULL) is called for each one in order; *nrows (may be NULL)
 * gets how many were delivered. Integer columns arrive as MX_SQL_INT, NULLs
 * as MX_SQL_NULL, everything else (strings, blobs, decimals, times) as
 * MX_SQL_BLOB bytes. A column over MX_MYSQL_MAX_FIELD fails with
 * MX_ETOOBIG. Same errors as mx_mysql_exec. */
int mx_mysql_query(struct mx_mysql_conn *c, const char *sql, const struct mx_sql_val *params,
                   size_t n, mx_mysql_row_fn row, void *ctx, uint64_t *nrows);

/* mx_mysql_query_int - the first column of the first row as an integer
 * (*found false when there is no row or it is NULL). */
int mx_mysql_query_int(struct mx_mysql_conn *c, const char *sql, const struct mx_sql_val *params,
                       size_t n, int64_t *out, bool *found);

/* mx_mysql_begin/commit/rollback - transaction control on c (rollback
 * never fails loudly: a lost connection rolls back by itself). */
int mx_mysql_begin(struct mx_mysql_conn *c);
int mx_mysql_commit(struct mx_mysql_conn *c);
void mx_mysql_rollback(struct mx_mysql_conn *c);

/* mx_mysql_last_insert_id - the AUTO_INCREMENT id of the last insert. */
uint64_t mx_mysql_last_insert_id(struct mx_mysql_conn *c);

/* mx_mysql_errno / mx_mysql_error - the server or client error number and
 * message behind the last failure on c (0 and "" if none). */
unsigned mx_mysql_errno(const struct mx_mysql_conn *c);
const char *mx_mysql_error(const struct mx_mysql_conn *c);

/* mx_mysql_broken - whether c lost its connection (a pool then reopens it). */
bool mx_mysql_broken(const struct mx_mysql_conn *c);

/* MX_MYSQL_FENCE_DDL - the fence table mx_mysql_fenced writes, without
 * the table options (ENGINE, charset), which the schema appends. */
#define MX_MYSQL_FENCE_DDL                                                                         \
    "CREATE TABLE IF NOT EXISTS fence ("                                                           \
    " name VARCHAR(128) NOT NULL PRIMARY KEY,"                                                     \
    " epoch BIGINT NOT NULL DEFAULT 0,"                                                            \
    " updated_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)"                               \
    "  ON UPDATE CURRENT_TIMESTAMP(3))"

/* Work done inside a fenced transaction. Return 0 to commit, or a negative
 * MX_E* code to roll back. */
typedef int (*mx_mysql_fn)(struct mx_mysql_conn *c, void *arg);

/* mx_mysql_fenced - run write(c, arg) in one transaction with
 *   UPDATE fence SET epoch=? WHERE name=? AND epoch<=?
 * (the fence row is created at epoch 0 when missing). A stale epoch (a newer
 * holder already wrote) matches zero rows: nothing is written, the
 * transaction is rolled back and MX_ESTALE is returned (logged). The fence
 * row lock serialises writers of one fence name until commit. Returns 0, or
 * MX_ESTALE, write's error, or the exec errors. Needs the fence table,
 * MX_MYSQL_FENCE_DDL (a schema includes it; actors/store does). The thread
 * that owns c. */
int mx_mysql_fenced(struct mx_mysql_conn *c, const char *fence, uint64_t epoch, mx_mysql_fn write,
                    void *arg);

/* ---- the pool ---- */

struct mx_mysql_opts {
    const char *url;            /* mysql://user[:password]@host:port/database */
    mx_system_t *sys;           /* where completions are sent */
    int threads;                /* connections and threads; 0 = 4 (max 64) */
    uint32_t queue_cap;         /* jobs waiting for a thread; 0 = 1024 */
    uint32_t connect_timeout_s; /* 0 = 1 */
    uint32_t rw_timeout_s;      /* 0 = 10 */
    uint32_t backoff_min_ms;    /* first retry delay after a failed connect; 0 = 100 */
    uint32_t backoff_max_ms;    /* cap of the doubling delay; 0 = 2000 */
    uint32_t ping_idle_ms;      /* ping a connection idle this long before a job; 0 = 1000 */
};

/* mx_mysql_start - validate the URL and start the threads. The threads
 * connect lazily, on their first job, so a node starts while MySQL is down.
 * Returns 0 and *out, or MX_ECONFIG (reason in err), MX_EINVAL. Not from a
 * scheduler thread (it may block briefly). */
int mx_mysql_start(const struct mx_mysql_opts *opts, mx_mysql_t **out, char *err, size_t errlen);

/* mx_mysql_stop - stop taking jobs, let running jobs finish, join the
 * threads, close the connections and free the pool. Jobs still queued are
 * not dropped: a job submitted with MX_MYSQL_CALL_DOWN (a write with a
 * fallback, such as the store's spool) runs its fallback with c == NULL on
 * the calling thread; any other job completes with MX_ESTOPPED without
 * running. Blocks for at most the running jobs. Not from a pool thread.
 * NULL is a no-op. */
void mx_mysql_stop(mx_mysql_t *p);

/* What one mx_mysql_drain did. */
struct mx_mysql_drain_stats {
    uint32_t queued_at_start; /* jobs queued or running when it began */
    uint32_t ran;             /* jobs the threads finished while it waited */
    uint32_t spooled;         /* queued writes (MX_MYSQL_CALL_DOWN) whose fallback ran, ok */
    uint32_t failed;          /* queued writes whose fallback failed (e.g. spool full) */
    uint32_t cancelled;       /* queued jobs without a fallback (reads): MX_ESTOPPED */
    uint32_t inflight;        /* jobs still running on a thread when it returned */
    int64_t took_ms;
};

/* mx_mysql_drain - the shutdown's MySQL phase: wait up to timeout_ms (or
 * until mx_mysql_cut) for the queue to empty and the running jobs to end.
 * If time runs out, every queued job is finished unrun as mx_mysql_stop
 * does (writes spooled, on the calling thread, fsync'd), and from then on
 * the threads run MX_MYSQL_CALL_DOWN jobs' fallback without trying the
 * server. The pool keeps taking jobs. Returns 0 (all ran) or MX_ETIMEDOUT,
 * with the counts in *out. Blocks (timeout_ms plus the fallbacks); any
 * thread but a pool thread. NULL p: 0 and zero counts. */
int mx_mysql_drain(mx_mysql_t *p, uint32_t timeout_ms, struct mx_mysql_drain_stats *out);

/* mx_mysql_cut - make a running or later mx_mysql_drain stop waiting at
 * once (the deadline of the shutdown passed). Any thread; NULL is a no-op. */
void mx_mysql_cut(mx_mysql_t *p);

/* mx_mysql_submit - queue fn(c, arg) for a pool thread. When it has run (or
 * failed without running: MX_EUNAVAIL while the server is down, MX_ESTOPPED
 * at stop), a store_job_done message {status, job} with env.corr = job and
 * ptr = arg (freed with arg_free, which may be NULL, when the message is) is
 * sent with mx_sys_send to reply_to. If that send fails the message (and
 * arg) is freed and counted as lost. Returns 0 and *job (may be NULL), or
 * MX_EFULL when the queue is full (counted), MX_ESTOPPED: then fn never
 * runs and arg stays the caller's. Any thread; never blocks. */
int mx_mysql_submit(mx_mysql_t *p, mx_mysql_fn fn, void *arg, void (*arg_free)(void *),
                    struct mx_addr reply_to, uint64_t *job);

/* Flags of mx_mysql_submit_ex. */
#define MX_MYSQL_CALL_DOWN                                                                         \
    1u /* server down: call fn with c == NULL (a fallback such                                     \
        * as spooling runs on the pool thread) instead of                                          \
        * failing the job with MX_EUNAVAIL without calling it */

/* mx_mysql_submit_ex - mx_mysql_submit with flags (MX_MYSQL_CALL_DOWN). */
int mx_mysql_submit_ex(mx_mysql_t *p, mx_mysql_fn fn, void *arg, void (*arg_free)(void *),
                       struct mx_addr reply_to, unsigned flags, uint64_t *job);

/* mx_mysql_run - run fn(c, arg) on a pool thread and wait for its status
 * (for start-up work and tools, outside schedulers). Returns fn's status,
 * MX_EUNAVAIL, MX_EFULL or MX_ESTOPPED as for submit. Blocks. */
int mx_mysql_run(mx_mysql_t *p, mx_mysql_fn fn, void *arg);

struct mx_mysql_health {
    bool up;               /* the last connect or job reached the server */
    int64_t down_since_ms; /* mx_now_ms() when it went down; 0 while up */
    uint64_t jobs_ok;      /* jobs that returned 0 */
    uint64_t jobs_failed;  /* jobs that returned an error (any code) */
    uint64_t jobs_unavail; /* of those: MX_EUNAVAIL (server down or lost) */
    uint64_t refused;      /* submits refused with MX_EFULL */
    uint64_t connects;     /* successful connects (first and re-) */
    uint64_t connect_failures;
    uint64_t disconnects;      /* connections found lost */
    uint64_t lost_completions; /* completion messages that could not be sent */
    uint32_t queued;           /* jobs waiting now */
    uint32_t queue_cap;
};

/* mx_mysql_health - a snapshot of the pool's health; each field is exact,
 * together they may be a few jobs apart. Any thread; no lock. */
void mx_mysql_health(mx_mysql_t *p, struct mx_mysql_health *out);

#endif
