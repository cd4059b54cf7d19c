/* mx_shutdown.h - the shutdown-coordinator: one actor per node that takes
 * the node out of service in ordered phases under one deadline.
 *
 * On the first SIGTERM (mx_shutdown_begin) the coordinator runs, each phase
 * with its own budget and a log line with its duration and counts:
 *   1 drain-grace  registry state "draining", readiness 503, still serving
 *                  for MX_DRAIN_GRACE_MS so the load balancer takes it out;
 *   2 http         stop accepting, finish in-flight requests (their answers
 *                  carry Connection: close), idle keep-alive closed;
 *   3 leases       stop the local singletons, wait for their actors to stop,
 *                  release their leases (published: others take over now);
 *   4 latches      every cache shard releases the cluster latches it holds
 *                  and publishes the notice, so waiters elsewhere load now;
 *   5 mysql        drain the MySQL queue: what fits in the budget runs, the
 *                  rest of the writes is spooled (fsync); nothing dropped;
 *   6 singletons   confirm the singleton actors are gone (phase 3 waited);
 *   7 registry     leave the registry (record deleted, published).
 * Then mx_shutdown_wait returns exit code 0. A second signal or the overall
 * deadline (MX_SHUTDOWN_TIMEOUT_MS from the first signal) cuts: the phase
 * running is ended (a blocking step is told to stop and awaited: each is
 * bounded by its budget), the remaining phases are skipped, queued MySQL
 * writes are spooled at once, and the exit code is MX_SHUTDOWN_EXIT_CUT
 * with an error line naming the phase cut and what was spooled.
 *
 * mx_shutdown_drain runs phases 1-4 and leaves the node up and idle;
 * mx_shutdown_undrain reverses them (listen, readiness 200, registry "up",
 * campaign for leases, latches taken normally). docs/shutdown.md has the
 * budgets and what each phase waits for.
 */
#ifndef MX_SHUTDOWN_H
#define MX_SHUTDOWN_H

#include <stdbool.h>
#include <stdint.h>

#include "mx_actor.h"
#include "mx_api.h"
#include "mx_lease.h"
#include "mx_mysql.h"

#define MX_SHUTDOWN_NAME "shutdown" /* the coordinator's registered name */
#define MX_SHUTDOWN_EXIT_OK 0
#define MX_SHUTDOWN_EXIT_CUT 3 /* deadline passed or second signal: phases were cut */

enum mx_shutdown_phase {
    MX_SD_IDLE = 0,
    MX_SD_GRACE = 1,
    MX_SD_HTTP = 2,
    MX_SD_LEASES = 3,
    MX_SD_LATCHES = 4,
    MX_SD_MYSQL = 5,
    MX_SD_SINGLETONS = 6,
    MX_SD_REGISTRY = 7,
    MX_SD_DONE = 8,
};

/* mx_shutdown_phase_name - "drain-grace", "http", ... ("idle", "done"). */
const char *mx_shutdown_phase_name(int phase);

/* The node's cluster part, called by the coordinator. Every pointer may be
 * NULL (no registry: the phase only logs). */
struct mx_shutdown_hooks {
    void *ctx;
    /* set_state - advertise "draining" or "up". Must not block. */
    int (*set_state)(void *ctx, const char *state);
    /* handover - mx_leases_handover: blocks up to timeout_ms (offload thread). */
    int (*handover)(void *ctx, uint32_t timeout_ms, struct mx_leases_handover *out);
    /* rejoin - mx_leases_rejoin (undrain). Must not block. */
    int (*rejoin)(void *ctx);
    /* leave - phase 7: leave the registry (blocks up to timeout_ms, offload
     * thread). Anything reading the registry must be stopped by it first. */
    int (*leave)(void *leave_ctx, uint32_t timeout_ms);
    void *leave_ctx;
};

struct mx_shutdown_opts {
    uint32_t timeout_ms;     /* overall deadline from the first signal (>= 100) */
    uint32_t drain_grace_ms; /* phase 1; at most timeout_ms / 2 */
    struct mx_app *app;      /* readiness and the listeners; may be NULL */
    mx_mysql_t *mysql;       /* may be NULL */
    struct mx_shutdown_hooks hooks;
};

/* The coordinator's counters, declared once (mx_metrics.h), registered as
 * actor "shutdown", instance "coordinator": Prometheus mx_shutdown_*, mxctl
 * stats metrics.shutdown. */
#define MX_SHUTDOWN_METRICS(X)                                                                     \
    X(GAUGE, phase, "running phase: 0 idle, 1-7 the phases, 8 done")                               \
    X(GAUGE, draining, "1 while the node is drained or draining (out of service)")                 \
    X(COUNTER, drains, "drains and shutdowns started")                                             \
    X(COUNTER, undrains, "undrains: the node served again")                                        \
    X(COUNTER, phases_over_budget, "phases ended by their budget with work left")

/* The outcome, for the caller and tests. */
struct mx_shutdown_result {
    int exit_code;                     /* MX_SHUTDOWN_EXIT_OK or _CUT */
    int cut_phase;                     /* the first phase out of its budget, or the phase a
                                          second signal or the deadline ended (0 = not cut) */
    uint32_t over_budget;              /* bit p: phase p ended by its budget with work left */
    bool cut_by_signal;                /* cut by a second signal (else the deadline) */
    int64_t took_ms;                   /* first signal to the end of the last phase */
    struct mx_mysql_drain_stats mysql; /* phase 5 plus the spooling at a cut */
    struct mx_leases_handover leases;
    uint32_t latches_released;
    uint64_t http_left_open; /* connections still open after phase 2 */
};

typedef struct mx_shutdown mx_shutdown_t;

/* mx_shutdown_start - spawn the coordinator (registered as
 * MX_SHUTDOWN_NAME) with borrowed app, mysql and hooks (they must outlive
 * it). Returns 0 and *out, MX_EINVAL (bad budgets), or mx_spawn's errors.
 * Not from a scheduler thread. */
int mx_shutdown_start(mx_system_t *sys, const struct mx_shutdown_opts *o, mx_shutdown_t **out);

/* mx_shutdown_budget_ms - the budget of a phase for these options (phase 1
 * is the grace; 6 has none: it only checks). Any thread. */
uint32_t mx_shutdown_budget_ms(const struct mx_shutdown_opts *o, int phase);

/* mx_shutdown_begin - a stop signal: the first starts the shutdown (phases
 * not yet run by a drain), a later one cuts it. Returns 0 or a send error.
 * Any thread. */
int mx_shutdown_begin(mx_shutdown_t *sd);

/* mx_shutdown_drain - run phases 1-4 and stay up, idle (mxctl drain).
 * Returns 0 (also when already drained or draining), MX_ESTOPPED (a
 * shutdown runs) or a send error. Any thread; returns at once. */
int mx_shutdown_drain(mx_shutdown_t *sd);

/* mx_shutdown_undrain - serve again after mx_shutdown_drain (done at once,
 * or as soon as the phase running ends). Returns 0, MX_ESTOPPED (a
 * shutdown runs) or a send error. Any thread. */
int mx_shutdown_undrain(mx_shutdown_t *sd);

/* mx_shutdown_wait - on the main thread after the first signal was taken:
 * wait for the coordinator to finish, reading further signals from sigfd
 * (a signalfd, or -1) and passing them on (a cut). If the coordinator has
 * not finished one second after the deadline, log it and return
 * MX_SHUTDOWN_EXIT_CUT anyway. Returns the exit code; *res (may be NULL)
 * gets the outcome. Blocks. */
int mx_shutdown_wait(mx_shutdown_t *sd, int sigfd, struct mx_shutdown_result *res);

/* mx_shutdown_deadline_left_ms - ms left before the overall deadline (the
 * whole timeout before any signal; 0 once passed). Any thread. */
int64_t mx_shutdown_deadline_left_ms(mx_shutdown_t *sd);

/* mx_shutdown_draining - whether a drain or shutdown is under way or done
 * (admin stats). Any thread. */
bool mx_shutdown_draining(mx_shutdown_t *sd);

/* mx_shutdown_free - free the handle after mx_system_stop. NULL no-op. */
void mx_shutdown_free(mx_shutdown_t *sd);

#endif
