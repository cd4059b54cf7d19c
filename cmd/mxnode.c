/* mxnode.c - one mx node: the actor system and the actors it runs.
 *
 * Reads its settings (flags over MX_* environment over defaults), starts
 * the schedulers, and runs until SIGINT or SIGTERM, when every actor is
 * stopped (stop callbacks run; pending messages are counted as dead
 * letters) and the process exits 0. Signals are taken synchronously with
 * sigwait on the main thread, so no handler runs inside a scheduler.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mx_actor.h"
#include "mx_config.h"
#include "mx_err.h"
#include "mx_log.h"
#include "mxnode_settings.h"

#define MX_VERSION "0.1.0"

/* One per scheduler: proves each loop runs actors, and reports its
 * scheduler when it starts and stops. */
static int sched_init(mx_actor_t *self, void *arg, void **state)
{
    MX_INFO("scheduler %d up", mx_actor_sched(self));
    return 0;
}

static int sched_recv(mx_actor_t *self, void *state, struct mx_msg *m)
{
    return 0;
}

static void sched_stop(mx_actor_t *self, void *state)
{
    MX_INFO("scheduler %d stopping", mx_actor_sched(self));
}

static const struct mx_behaviour sched_beh = {"scheduler-info", sched_init, sched_recv,
                                              sched_stop};

int main(int argc, char **argv)
{
    struct mx_config cfg;
    char err[512];
    int rc = mx_config_load(&cfg, mx_node_settings, mx_node_settings_count, argc, argv, err,
                            sizeof(err));
    if (rc == 1) {
        mx_config_help(mx_node_settings, mx_node_settings_count, "mxnode",
                       "Runs one mx node: the actor runtime and the expectation service.", stdout);
        mx_config_fini(&cfg);
        return 0;
    }
    if (rc != 0) {
        fprintf(stderr, "mxnode: %s\n", err);
        mx_config_fini(&cfg);
        return 2;
    }
    const char *node = mx_config_str(&cfg, "MX_NODE_NAME");
    mx_log_init(node, (enum mx_log_level)mx_log_parse_level(mx_config_str(&cfg, "MX_LOG_LEVEL")),
                2);

    /* block the signals in every thread; the main thread waits for them */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct mx_system_opts so = {
        .node_name = node,
        .schedulers = (int)mx_config_int(&cfg, "MX_SCHEDULERS"),
        .default_cap = (uint32_t)mx_config_int(&cfg, "MX_MAILBOX_CAP"),
        .offload_threads = (int)mx_config_int(&cfg, "MX_OFFLOAD_THREADS"),
        .offload_queue = (uint32_t)mx_config_int(&cfg, "MX_OFFLOAD_QUEUE"),
        .max_actors = (uint32_t)mx_config_int(&cfg, "MX_MAX_ACTORS"),
    };
    mx_system_t *sys;
    rc = mx_system_start(&so, &sys);
    if (rc != 0) {
        MX_ERROR("cannot start the actor system: %s", mx_strerror(rc));
        mx_config_fini(&cfg);
        return 1;
    }
    int n = mx_system_schedulers(sys);
    MX_INFO("mxnode %s starting: %d schedulers, node id %llx", MX_VERSION, n,
            (unsigned long long)mx_system_node_id(sys));
    for (int i = 0; i < n; i++) {
        struct mx_spawn_opts o = MX_SPAWN_OPTS_DEFAULT;
        o.sched = i;
        char name[32];
        snprintf(name, sizeof(name), "scheduler-info-%d", i);
        o.name = name;
        rc = mx_spawn(sys, &sched_beh, NULL, &o, NULL);
        if (rc != 0)
            MX_ERROR("cannot spawn %s: %s", name, mx_strerror(rc));
    }
    printf("mxnode %s ready: %d schedulers (Ctrl-C stops)\n", node, n);
    fflush(stdout);

    int sig = 0;
    sigwait(&sigs, &sig);
    MX_INFO("received %s: stopping every actor", sig == SIGINT ? "SIGINT" : "SIGTERM");
    rc = mx_system_stop(sys, (uint32_t)mx_config_int(&cfg, "MX_SHUTDOWN_TIMEOUT_MS"));
    uint64_t dl[MX_DL_COUNT], total = 0;
    mx_deadletters(sys, dl);
    for (int i = 0; i < MX_DL_COUNT; i++)
        total += dl[i];
    struct mx_system_stats st;
    mx_system_stats(sys, &st);
    if (rc != 0)
        MX_WARN("%llu actors did not stop in time", (unsigned long long)st.live_actors);
    MX_INFO("stopped: %llu dead letters (pending at stop: %llu)", (unsigned long long)total,
            (unsigned long long)dl[MX_DL_STOPPED]);
    mx_system_free(sys);
    mx_config_fini(&cfg);
    return 0;
}
