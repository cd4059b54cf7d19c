/* ob_harness.h - the outbox system tests' and benchmark's world: a real
 * mariadbd, a real redis-server, mxstub (Nexon stand-in and webhook sink)
 * and up to OB_NODES mxnode processes relaying to the sink (alerts to
 * /sink/alert, AI analysis from mxstub's fake chat endpoint), on loopback
 * ports chosen at run time. Everything dies with the process (the
 * harnesses' PR_SET_PDEATHSIG and atexit hooks). */
#ifndef OB_HARNESS_H
#define OB_HARNESS_H

#include <stdbool.h>
#include <stdint.h>

#include "app/node_harness.h"
#include "mysql/mysqld.h"
#include "redis/redisd.h"
#include "stub/stub_harness.h"

#define OB_NODES 3

struct ob_world {
    struct mysqld my;
    struct redisd redis;
    struct stub stub;
    struct node nodes[OB_NODES];
    char names[OB_NODES][16];
    const char *const *extra; /* extra node settings ("K=V", NULL-terminated) */
    int http0;                /* node 1's HTTP port, chosen before it starts: every node's
                                 MX_OUTBOX_REFETCH_URL points at it */
};

/* ob_start - servers, then n nodes (n <= OB_NODES). 0 or -1. */
int ob_start(struct ob_world *w, int n, const char *const *extra);
/* ob_node_start - (re)start node i with the world's settings. 0 or -1. */
int ob_node_start(struct ob_world *w, int i);
void ob_stop(struct ob_world *w);

/* ob_stats - mxctl stats of node i (JSON) into out; 0 or -1. */
int ob_stats(struct ob_world *w, int i, char *out, size_t cap);
/* ob_outbox_int - one field of node i's "outbox" stats section; -1 if none. */
long long ob_outbox_int(struct ob_world *w, int i, const char *key);
/* ob_holder - the node that reports "holding": true (skip: a node not to
 * ask, -1 none), or -1. */
int ob_holder(struct ob_world *w, int skip);

/* ob_sink - one counter of the sink's /__stub/sink/stats; -1 on error. */
long long ob_sink(struct ob_world *w, const char *key);
/* ob_sink_ctl - POST /__stub/sink?<query>; 0 or -1. */
int ob_sink_ctl(struct ob_world *w, const char *query);
/* ob_sink_count - deliveries the sink accepted for key. */
long long ob_sink_count(struct ob_world *w, const char *key);

/* ob_sql_int - the first column of the first row (root, database mx). */
long long ob_sql_int(struct ob_world *w, const char *fmt, ...);
/* ob_sql - one statement as root (database mx). 0 or -1. */
int ob_sql(struct ob_world *w, const char *fmt, ...);

/* ob_bulk - insert n PENDING outbox rows of type type with keys
 * "<prefix><i>" for i in [from, from + n), payload {"n":i}. 0 or -1. */
int ob_bulk(struct ob_world *w, const char *type, const char *prefix, long from, long n);

int64_t ob_now_ms(void);

/* ob_dump_logs - print what the nodes logged since the last call (lines
 * containing grep, or all when NULL) to stderr. */
void ob_dump_logs(struct ob_world *w, const char *grep);

#endif
