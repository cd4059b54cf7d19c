/* redisd.h - start a real redis-server for tests, on a loopback port chosen
 * at run time, in a mkdtemp directory, with no persistence.
 *
 * Any test may compile redisd.c in (it needs hiredis, which mx_runtime
 * links). The servers are mx_procs and their directories mx_proc_tmpdirs
 * (support/mx_proc.h): a failed test leaves nothing behind. Not
 * thread-safe: call from one thread.
 */
#ifndef MX_TEST_REDISD_H
#define MX_TEST_REDISD_H

#include <sys/types.h>

#include <hiredis/hiredis.h>

#include "support/mx_proc.h"

struct redisd {
    struct mx_proc proc;
    pid_t pid; /* proc.pid, for the tests: 0 when not running */
    int port;
    char dir[256];      /* temp dir: redis.conf, redis.log */
    char url[600];      /* redis://[:password@]127.0.0.1:PORT/0 */
    char password[128]; /* from "requirepass X" in extra_conf, else "" */
    int sentinel;       /* 1: a redis-sentinel process (redisd_start_sentinel) */
};

/* redisd_start - write a config (port, bind 127.0.0.1, save "", appendonly
 * no, enable-debug-command local, dir, logfile, plus extra_conf lines, may
 * be NULL) and start redis-server; waits (<= 5 s) until PING answers. The
 * port comes from binding port 0; if redis-server fails to start on it
 * (taken in between) another is tried, up to 5 times. Returns 0 or -1. */
int redisd_start(struct redisd *d, const char *extra_conf);

/* redisd_stop - SIGTERM (SIGKILL after 5 s), wait, remove the directory. */
void redisd_stop(struct redisd *d);

/* redisd_kill - SIGKILL and wait; the directory stays (for restart). */
void redisd_kill(struct redisd *d);

/* redisd_restart - kill if running, start again on the same port with the
 * same config and directory; waits until PING answers. Returns 0 or -1. */
int redisd_restart(struct redisd *d);

/* redisd_cmd - run one command synchronously on a fresh connection
 * (AUTH with the password if any); returns the reply (freeReplyObject it)
 * or NULL if Redis cannot be reached in 2 s. */
redisReply *redisd_cmd(struct redisd *d, const char *fmt, ...);

/* redisd_ok - redisd_cmd and true if the reply is not an error. */
int redisd_ok(struct redisd *d, const char *fmt, ...);

/* redisd_kept_cmd - one command on the kept connection *c (opened, with
 * AUTH, when NULL; freed and set to NULL when it breaks, so the next call
 * reconnects): for polling loops, which must not open a connection per
 * iteration. The caller redisFree()s *c at the end. NULL: no answer. */
redisReply *redisd_kept_cmd(redisContext **c, struct redisd *d, const char *fmt, ...);

/* redisd_start_sentinel - start redis-sentinel on a free loopback port
 * monitoring master `name` at 127.0.0.1:master_port with quorum 2,
 * down-after-milliseconds 1000 and failover-timeout 3000 (plus extra_conf
 * lines, e.g. "sentinel auth-pass NAME pw"). d->url is redis://127.0.0.1:PORT.
 * Stop, kill and restart work as for redis-server. Returns 0 or -1. */
int redisd_start_sentinel(struct redisd *d, const char *name, int master_port,
                          const char *extra_conf);

/* A master, its replica and three sentinels, all on loopback. */
struct redisd_ha {
    struct redisd master, replica, sentinel[3];
    char name[64];  /* the master's name in the sentinels */
    char url[1024]; /* redis-sentinel://[:pw@]s1,s2,s3/NAME/0 */
};

/* redisd_ha_start - start them (extra_conf goes to both data servers; a
 * "requirepass X" there also becomes masterauth and the sentinels'
 * auth-pass) and wait (<= 20 s, one connection polled) until sentinel 0
 * sees the replica and the two other sentinels, so a failover can happen.
 * Returns 0 or -1. */
int redisd_ha_start(struct redisd_ha *h, const char *name, const char *extra_conf);

/* redisd_ha_stop - stop all five. */
void redisd_ha_stop(struct redisd_ha *h);

/* redisd_ha_wait_master - poll sentinel i (one connection, <= ms) until it
 * names port as the master; returns 0 or -1. */
int redisd_ha_wait_master(struct redisd_ha *h, int i, int port, int ms);

#endif
