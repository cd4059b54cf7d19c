/* mysqld.h - a real MariaDB server for tests, in a temp dir on a loopback
 * port chosen at run time.
 *
 * mysqld_start() makes a temp dir, runs mariadb-install-db into it, starts
 * mariadbd (small buffer pool and redo log, no binlog) on 127.0.0.1:<free
 * port>, waits until it answers, and creates the database `mx` and a user
 * `mx` with a password (grants on, no --skip-grant-tables). The server can
 * be killed (SIGKILL), stopped and restarted on the same port and data.
 * The server is an mx_proc and its directory an mx_proc_tmpdir
 * (support/mx_proc.h), so a failing test leaves nothing.
 */
#ifndef MX_TEST_MYSQLD_H
#define MX_TEST_MYSQLD_H

#include <stdbool.h>
#include <sys/types.h>

#include "support/mx_proc.h"

struct mysqld {
    struct mx_proc proc;
    pid_t pid; /* proc.pid, for the tests: 0 when not running */
    int port;
    char dir[64]; /* temp dir holding data/, sock, err.log */
    char sock[96];
    char url[160];     /* mysql://mx:<password>@127.0.0.1:<port>/mx */
    char bad_url[160]; /* the same with a wrong password */
};

/* Install, start and set up a server. Returns 0 or -1 (reason on stderr,
 * with the tail of the server's error log). ~1-3 s. */
int mysqld_start(struct mysqld *m);

/* SIGKILL the server and reap it (a crash: no clean shutdown). */
int mysqld_kill(struct mysqld *m);

/* Clean shutdown (SIGTERM, SIGKILL after 10 s). */
int mysqld_stop(struct mysqld *m);

/* Start the server again on the same port and data; waits until ready. */
int mysqld_restart(struct mysqld *m);

/* Stop the server if running and remove the temp dir. */
void mysqld_destroy(struct mysqld *m);

/* Run one SQL statement as root over the unix socket (test setup and
 * checks only). Returns 0 or -1. */
int mysqld_root_exec(struct mysqld *m, const char *sql);

/* The first column of the first row of sql as root; -1 on error. */
long long mysqld_root_int(struct mysqld *m, const char *sql);

#endif
