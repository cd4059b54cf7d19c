/* cache_harness.h - the stack the cache-tier system tests run on: a real
 * redis-server, mariadbd and mxstub on run-time loopback ports, and two
 * mxnode processes pointed at them; plus a client that keeps hundreds of
 * HTTP requests in flight at once over raw sockets (poll). Everything dies
 * with the test (the harnesses' atexit hooks and PR_SET_PDEATHSIG). */
#ifndef CACHE_HARNESS_H
#define CACHE_HARNESS_H

#include <stdbool.h>

#include "../app/node_harness.h"
#include "../mysql/mysqld.h"
#include "../redis/redisd.h"
#include "../stub/stub_harness.h"

struct stack {
    struct redisd redis;
    struct mysqld mysql;
    struct stub stub;
    struct node node[2];
    char tmp[64];       /* spool files */
    char latch_ttl[48]; /* MX_CACHE_LATCH_TTL_MS=... */
    char fetch_to[48];  /* MX_FETCH_TIMEOUT_MS=... */
};

/* stack_start - redis, mariadb, mxstub, then both nodes. latch_ttl_ms and
 * fetch_timeout_ms 0 = defaults. Returns 0 or -1. */
int stack_start(struct stack *s, int latch_ttl_ms, int fetch_timeout_ms);
/* stack_node_start - (re)start node i with the stack's settings. */
int stack_node_start(struct stack *s, int i);
void stack_stop(struct stack *s);

/* One request of a batch. */
struct mreq {
    int port;
    const char *method; /* NULL = GET */
    char path[256];
    int status; /* 0 = no complete response */
    char *body; /* malloc'd */
    double ms;  /* time to the complete response */
    bool gzip;  /* send Accept-Encoding: gzip (the body is then the gzip bytes) */
};

/* mreq_run - all n requests at once (Connection: close each), until all
 * complete or timeout_ms. Returns how many completed. */
int mreq_run(struct mreq *r, int n, int timeout_ms);
void mreq_free(struct mreq *r, int n);

/* get - one request; returns the status, body into *body (malloc'd) */
int get(int port, const char *method, const char *path, char **body);

/* json_num - the number after "key": (first match) as a string in out. */
int json_num(const char *json, const char *key, char *out, size_t cap);

/* cache_counter - the node's cache counter `event` (mx_cache_total lines of
 * /actuator/prometheus with event="<event>", summed over their other
 * labels); -1 when the node does not answer or has no such counter. */
long long cache_counter(int port, const char *event);

/* redis_exists - whether key exists; redis_strlen - its length (-1 none) */
long long redis_strlen(struct redisd *d, const char *key);

#endif
