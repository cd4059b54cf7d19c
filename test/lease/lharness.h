/* lharness.h - start, stop, pause and query real mxnode processes for the
 * lease and membership system tests. Nodes run with MX_LEASE_TEST=1 (the
 * lease-probe singleton) and short TTLs given by the test; they are
 * mx_procs (support/mx_proc.h), dying with the test, their stderr captured
 * in a file (or kept in $LH_LOGDIR/<name>.<pid>.log when set). Admin
 * queries go through the real mxctl binary with --json. */
#ifndef MX_TEST_LHARNESS_H
#define MX_TEST_LHARNESS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <hiredis/hiredis.h>

#include "support/mx_proc.h"

#define LH_MAX 8

struct lnode {
    struct mx_proc proc;
    pid_t pid; /* proc.pid, for the tests: 0 when not running */
    char name[16];
    char admin[64]; /* tcp://127.0.0.1:PORT */
};

/* Extra environment for every node ("K=V" strings, NULL-terminated). */
void lh_set_env(const char *const *env);

/* lh_start - start mxnode named name with MX_REDIS_URL=redis_url (and
 * mysql_url when not NULL); waits for its ready line (<= 15 s). 0 or -1. */
int lh_start(struct lnode *n, const char *name, const char *redis_url, const char *mysql_url);

/* lh_signal - send sig; for SIGKILL/SIGTERM also reap (SIGTERM: <= 10 s)
 * and mark it stopped. sig 0 sends nothing and reaps (<= 10 s) a node
 * already signalled: a second SIGTERM cuts a node's shutdown (exit 3,
 * docs/shutdown.md). Returns the exit status for SIGTERM and 0, else 0. */
int lh_signal(struct lnode *n, int sig);

/* lh_ctl - run mxctl with args (a format) and --json, capture stdout in
 * out (cap bytes). Returns mxctl's exit code, or -1. */
int lh_ctl(char *out, size_t cap, const char *fmt, ...);

/* lh_holder - ask node n (its own admin endpoint) who holds singleton
 * `name`: fills holder ("" none) and *seq; returns 0, -1 (no answer). */
int lh_holder(struct lnode *n, const char *name, char *holder, size_t cap, long long *seq);

/* lh_self_holds - whether n reports itself as the running holder. */
bool lh_self_holds(struct lnode *n, const char *name);

/* lh_json_count - occurrences of needle in s. */
int lh_count(const char *s, const char *needle);

/* lh_json_int - the integer after "key": at the first occurrence after
 * start (or -1). */
long long lh_json_int(const char *s, const char *key);

/* lh_probe_log_check - the lease-probe log r (LRANGE of "<epoch> <node>"
 * lines, oldest first): 0 if no epoch was acted on by two nodes (and, when
 * ordered, no epoch follows a higher one); else -1 and why (cap bytes). */
int lh_probe_log_check(const redisReply *r, bool ordered, char *why, size_t cap);

#endif
