/* mx_health.h - the mysql-health singleton and the MySQL state every node
 * reads from Redis.
 *
 * The service being replaced probed MySQL from every instance at once. Here
 * one node - the holder of the "mysql-health" lease - probes it once a
 * second through the mx_mysql pool (SELECT 1 inside mx_mysql_fenced, so the
 * probe also advances the fence row: a deposed holder's probe fails with
 * MX_ESTALE and it stops) and publishes up/down with its epoch in Redis:
 * the hash mx:{C}:mysql-health (state, seq, epoch, node, at; only if no
 * newer epoch wrote it) and "health <up|down> <seq> <node>" on the events
 * channel. Every node keeps the latest report (pub/sub, plus a re-read
 * every registry tick) so the cache tier can ask mx_health_mysql_up()
 * without touching MySQL.
 */
#ifndef MX_HEALTH_H
#define MX_HEALTH_H

#include <stdbool.h>
#include <stdint.h>

#include "mx_lease.h"
#include "mx_mysql.h"
#include "mx_registry.h"

#define MX_HEALTH_SINGLETON "mysql-health"

struct mx_health_opts {
    mx_mysql_t *mysql; /* the pool to probe through; NULL: only read others' reports */
    uint32_t probe_ms; /* 0 = 1000 */
};

/* mx_health_start - declare the mysql-health singleton on lm (when mysql
 * is set) and follow the reports on reg. Call before mx_leases_start and
 * mx_registry_start; one per process. Returns 0 or the mx_singleton /
 * mx_registry_listen errors. */
int mx_health_start(mx_registry_t *reg, mx_leases_t *lm, const struct mx_health_opts *opts);

/* mx_health_mysql_up - MySQL's state as last reported by the mysql-health
 * holder (a report older than 5 probe periods does not count); without a
 * fresh report, the local pool's own view (false if none). Any thread;
 * lock-free reads, never blocks. */
bool mx_health_mysql_up(void);

/* The node's mysql-health counters, declared once (mx_metrics.h) and
 * registered as actor "health", instance "mysql": Prometheus mx_health_*,
 * mxctl stats metrics.health (the report's freshness is in mx_health_view). */
#define MX_HEALTH_METRICS(X)                                                                       \
    X(COUNTER, probes, "MySQL probes this node ran as the holder")                                 \
    X(COUNTER, stale, "probes refused by the MySQL fence (deposed)")                               \
    X(COUNTER, reports, "health reports taken (newer or equal counters)")                          \
    X(GAUGE, mysql_up, "1 when the latest report taken says MySQL is up")

struct mx_health_view {
    int state;       /* 1 up, 0 down, -1 no fresh report */
    uint64_t seq;    /* lease counter of the reporter */
    char node[64];   /* reporter */
    int64_t age_ms;  /* since the report arrived here; -1 none */
    uint64_t probes; /* probes this node ran as holder */
    uint64_t stale;  /* probes refused by the MySQL fence (deposed) */
};

/* mx_health_view - the latest report and local counters. Any thread. */
void mx_health_view(struct mx_health_view *out);

#endif
