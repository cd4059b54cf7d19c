/* mxnode.c - one mx node: the actor system and the actors it runs.
 *
 * Reads its settings (flags over MX_* environment over defaults), starts
 * the schedulers, the fetcher, the cache shards and the HTTP API, and runs
 * until SIGINT or SIGTERM, when the shutdown-coordinator (actors/shutdown,
 * docs/shutdown.md) takes the node out of service in phases under one
 * deadline; then every actor is stopped (stop callbacks run; pending
 * messages are counted as dead letters) and the process exits 0, or 3 when
 * the deadline or a second signal cut the phases. Signals are taken
 * synchronously on the main thread (sigwait, then a signalfd), so no
 * handler runs inside a scheduler.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "mx_actor.h"
#include "mx_api.h"
#include "mx_config.h"
#include "mx_cube.h"
#include "mx_err.h"
#include "mx_fetch.h"
#include "mx_admin.h"
#include "mx_jsonw.h"
#include "mx_log.h"
#include "mx_metrics.h"
#include "mx_redis.h"
#include "mx_remote.h"
#include "mx_mysql.h"
#include "mx_schema.h"
#include "mx_shutdown.h"
#include "mx_cache.h"
#include "mxnode_parts.h"
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

/* Admin "stats" sections: the application's counters next to the runtime's
 * (the registered actors' own are in the answer's metrics). */
static void section_http(struct mx_jsonw *w, void *ctx)
{
    struct mx_app *app = ctx;
    mx_jsonw_obj_open(w);
    mx_metrics_json_totals(w, "http");      /* the acceptors' counters, summed */
    mx_metrics_json_totals(w, "ratelimit"); /* rl_checked, rl_refused, rl_bypassed */
    mx_jsonw_kbool(w, "draining", atomic_load(&app->draining));
    mx_jsonw_obj_close(w);
}

static void section_cache(struct mx_jsonw *w, void *ctx)
{
    mx_jsonw_obj_open(w);
    mx_metrics_json_totals(w,
                           "cache"); /* every field of MX_CACHE_METRICS, summed over the shards */
    mx_jsonw_obj_close(w);
}

/* ---- shutdown coordinator wiring (actors/shutdown, docs/shutdown.md) ---- */

static int admin_drain(void *ctx)
{
    MX_INFO("drain requested through the admin endpoint");
    return mx_shutdown_drain(ctx);
}

static int admin_undrain(void *ctx)
{
    MX_INFO("undrain requested through the admin endpoint");
    return mx_shutdown_undrain(ctx);
}

/* Phase 7: leave the registry. The admin endpoint reads the registry and
 * the leases, so it stops first; main finds both pointers NULL after. */
struct node_leave {
    mx_admin_t **admin;
    struct mxnode_cluster **cluster;
};

static int leave_registry(void *ctx, uint32_t timeout_ms)
{
    struct node_leave *l = ctx;
    mx_admin_stop(*l->admin);
    *l->admin = NULL;
    mxnode_cluster_free(*l->cluster); /* deletes this node's record, publishes it */
    *l->cluster = NULL;
    return 0;
}
/* ---- end of shutdown coordinator wiring ---- */

static const struct mx_behaviour sched_beh = {"scheduler-info", sched_init, sched_recv, sched_stop};

/* Open files up to the hard limit: every HTTP, nng and admin connection is
 * one, and with the usual soft limit of 1024 a flood of idle connections to
 * one port used them all (REVIEW-SECURITY H2 item 7) so HTTP and mxctl got
 * no answer. Each listener has its own bound below that. */
static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rlim_t was = rl.rlim_cur;
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
            MX_INFO("open files: soft limit raised from %llu to %llu", (unsigned long long)was,
                    (unsigned long long)rl.rlim_max);
    }
}

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
    if (mx_config_int(&cfg, "MX_DRAIN_GRACE_MS") >
        mx_config_int(&cfg, "MX_SHUTDOWN_TIMEOUT_MS") / 2) {
        fprintf(stderr, "mxnode: MX_DRAIN_GRACE_MS (--drain-grace-ms): at most half of "
                        "MX_SHUTDOWN_TIMEOUT_MS\n");
        mx_config_fini(&cfg);
        return 2;
    }
    int log_format = mx_log_parse_format(mx_config_str(&cfg, "MX_LOG_FORMAT"));
    if (log_format < 0) {
        fprintf(stderr, "mxnode: MX_LOG_FORMAT (--log-format): json, text or auto\n");
        mx_config_fini(&cfg);
        return 2;
    }
    const char *node = mx_config_str(&cfg, "MX_NODE_NAME");
    mx_log_init(node, (enum mx_log_level)mx_log_parse_level(mx_config_str(&cfg, "MX_LOG_LEVEL")),
                2);
    mx_log_set_format((enum mx_log_format)log_format);
    raise_nofile();

    /* block the signals in every thread; the main thread waits for them */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    int sigfd = signalfd(-1, &sigs, SFD_CLOEXEC); /* signals after the first */

    if (strlen(mx_config_str(&cfg, "MX_JWT_SECRET")) < 32) {
        fprintf(stderr, "mxnode: MX_JWT_SECRET (--jwt-secret): required, at least 32 bytes\n");
        mx_config_fini(&cfg);
        return 2;
    }
    if (mx_fetch_global_init() != 0) {
        MX_ERROR("libcurl global init failed");
        mx_config_fini(&cfg);
        return 1;
    }
    struct mx_cube_table *cube = NULL;
    struct mx_cube_load_stats cst;
    const char *cube_path = mx_config_str(&cfg, "MX_CUBE_TABLE");
    rc = mx_cube_table_load(cube_path, &cube, &cst);
    if (rc != 0) {
        fprintf(stderr, "mxnode: MX_CUBE_TABLE: cannot load %s: %s\n", cube_path, mx_strerror(rc));
        mx_config_fini(&cfg);
        return 2;
    }
    MX_INFO("MX_CUBE_TABLE %s: %ld rows, %ld rejected, %ld of %ld groups off 1", cube_path,
            cst.rows_total, cst.rows_rejected, cst.groups_bad_sum, cst.groups);
    const char *add_path = mx_config_str(&cfg, "MX_CUBE_TABLE_ADDITIONAL");
    if (add_path[0]) {
        rc = mx_cube_table_add(cube, add_path, &cst);
        if (rc == 0)
            MX_INFO("MX_CUBE_TABLE_ADDITIONAL %s: %ld rows, %ld rejected", add_path, cst.rows_total,
                    cst.rows_rejected);
        bool dflt = !strcmp(add_path, "../shared/data/cube_probability_additional.csv");
        if (rc == MX_EIO && dflt) {
            /* the default is optional: without it additional potential is
             * reported unpriced (unpricedItems), never as 0 silently */
            MX_WARN("MX_CUBE_TABLE_ADDITIONAL: %s absent; additional potential will be "
                    "reported unpriced",
                    add_path);
        } else if (rc != 0) {
            fprintf(stderr, "mxnode: MX_CUBE_TABLE_ADDITIONAL: cannot load %s: %s\n", add_path,
                    mx_strerror(rc));
            mx_cube_table_free(cube);
            mx_config_fini(&cfg);
            return 2;
        }
    }

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

    struct mx_http_opts ho = {
        .addr = mx_config_str(&cfg, "MX_HTTP_ADDR"),
        .max_conns = (uint32_t)mx_config_int(&cfg, "MX_HTTP_MAX_CONNS"),
        .max_conns_per_client = (uint32_t)mx_config_int(&cfg, "MX_HTTP_MAX_CONNS_PER_CLIENT"),
        .max_buffered_bytes = (uint64_t)mx_config_int(&cfg, "MX_HTTP_MAX_BUFFERED_MB") << 20,
    };
    struct mx_app_opts ao;
    mx_app_opts_default(&ao);
    ao.node_name = node;
    ao.trusted_proxies = mx_config_str(&cfg, "MX_TRUSTED_PROXIES");
    ao.metrics_token = mx_config_str(&cfg, "MX_METRICS_TOKEN");
    ao.redis_url = mx_config_str(&cfg, "MX_REDIS_URL");
    ao.jwt_secret = mx_config_str(&cfg, "MX_JWT_SECRET");
    ao.rate_limit = mx_config_int(&cfg, "MX_RATE_LIMIT") != 0;
    ao.cache_timeout_ms = mxnode_svc_budget_ms(&cfg) * 2 + 2000;
    ao.fingerprint_secret = mx_config_str(&cfg, "MX_FINGERPRINT_SECRET");
    ao.session_ttl_s = (uint32_t)mx_config_int(&cfg, "MX_SESSION_TTL_S");
    ao.admin_fingerprints = mx_config_str(&cfg, "MX_ADMIN_FINGERPRINTS");
    ao.cors_origins = mx_config_str(&cfg, "MX_CORS_ORIGINS");
    ao.cors_max_age_s = (uint32_t)mx_config_int(&cfg, "MX_CORS_MAX_AGE_S");
    ao.v5_wait_ms = (uint32_t)mx_config_int(&cfg, "MX_V5_WAIT_MS");
    ao.api_docs = mx_config_int(&cfg, "MX_API_DOCS") != 0;
    static struct mx_app app;
    mx_mysql_t *mysql = NULL;
    mx_remote_t *remote = NULL;
    mx_tls_t *tls = NULL;
    mx_admin_t *admin = NULL;
    struct mxnode_cluster *cluster = NULL;
    mx_shutdown_t *sd = NULL;
    struct mx_shutdown_result sres = {0};
    struct node_leave leave = {&admin, &cluster};
    uint16_t port = 0;
    int exit_code = 0;
    const char *mysql_url = mx_config_str(&cfg, "MX_MYSQL_URL");
    if (mysql_url[0]) {
        struct mx_mysql_opts mo = {
            .url = mysql_url,
            .sys = sys,
            .threads = (int)mx_config_int(&cfg, "MX_MYSQL_POOL"),
            .queue_cap = (uint32_t)mx_config_int(&cfg, "MX_MYSQL_QUEUE"),
        };
        char merr[256];
        if ((rc = mx_mysql_start(&mo, &mysql, merr, sizeof merr)) != 0) {
            fprintf(stderr, "mxnode: MX_MYSQL_URL: %s\n", merr);
            exit_code = 2;
            goto stop;
        }
        struct mx_schema_job sj = {0};
        rc = mx_mysql_run(mysql, mx_schema_migrate_job, &sj);
        if (rc == MX_ECONFIG) {
            fprintf(stderr, "mxnode: MX_MYSQL_URL: %s\n", sj.err);
            exit_code = 2;
            goto stop;
        } else if (rc != 0) {
            MX_WARN("MySQL schema not checked at start (%s): %s; serving without it",
                    mx_strerror(rc), sj.err[0] ? sj.err : "server unreachable");
        } else {
            MX_INFO("MySQL schema at version %d (was %d)", sj.to, sj.from);
        }
    }
    ao.mysql = mysql; /* outbox: DLQ admin API, donations, points */
    if ((rc = mxnode_svc_start(sys, &cfg, cube, mysql)) != 0) {
        exit_code = rc == MX_ECONFIG ? 2 : 1;
        goto stop;
    }
    /* likes: before the HTTP acceptors, which look the like-buffers up */
    if ((rc = mxnode_likes_start(sys, &cfg, mysql)) != 0) {
        exit_code = 1;
        goto stop;
    }
    if ((rc = mx_app_start(&app, sys, &ho, &ao, &port)) != 0) {
        if (rc == MX_ECONFIG) /* the setting is named in the error logged above */
            fprintf(stderr, "mxnode: HTTP settings refused: %s\n", mx_strerror(rc));
        else
            fprintf(stderr, "mxnode: MX_HTTP_ADDR: cannot serve HTTP on %s: %s\n", ho.addr,
                    mx_strerror(rc));
        exit_code = rc == MX_ECONFIG ? 2 : 1;
        goto stop;
    }
    if ((rc = mxnode_transport_setup(&cfg, &tls)) != 0) {
        exit_code = 2;
        goto stop;
    }
    struct mx_remote_opts ro = {
        .listen_url = mx_config_str(&cfg, "MX_NNG_ADDR"),
        .tls = tls,
        .recv_max = (uint32_t)mx_config_int(&cfg, "MX_NNG_MAX_MSG_KB") << 10,
        .max_pipes = (uint32_t)mx_config_int(&cfg, "MX_NNG_MAX_CONNS"),
        .idle_ms = (uint32_t)mx_config_int(&cfg, "MX_NNG_IDLE_MS"),
    };
    if ((rc = mx_remote_start(sys, &ro, &remote)) != 0) {
        fprintf(stderr, "mxnode: MX_NNG_ADDR: cannot listen on %s: %s\n", ro.listen_url,
                mx_strerror(rc));
        exit_code = 1;
        goto stop;
    }
    struct mx_admin_opts ado = {
        .url = mx_config_str(&cfg, "MX_ADMIN_ADDR"),
        .token = mx_config_str(&cfg, "MX_ADMIN_TOKEN"),
        .remote = remote,
        .version = MX_VERSION,
        .tls = tls,
    };
    if ((rc = mx_admin_start(sys, &ado, &admin)) != 0) {
        fprintf(stderr, "mxnode: MX_ADMIN_ADDR: cannot serve admin on %s: %s%s\n", ado.url,
                mx_strerror(rc),
                rc == MX_ECONFIG ? " (MX_ADMIN_TOKEN is required off loopback)" : "");
        exit_code = rc == MX_ECONFIG ? 2 : 1;
        goto stop;
    }
    mx_admin_add_section(admin, "http", section_http, &app);
    mx_admin_add_section(admin, "cache", section_cache, NULL);
    mx_admin_add_section(admin, "redis", mx_redis_report, NULL); /* every connection's master */
    mxnode_likes_admin(admin);
    if ((rc = mxnode_cluster_start(sys, &cfg, remote, admin, mysql, ho.addr, port, &cluster)) !=
        0) {
        exit_code = rc == MX_ECONFIG ? 2 : 1;
        goto stop;
    }
    {
        /* the shutdown coordinator: SIGTERM, mxctl drain / undrain */
        struct mx_shutdown_opts so = {
            .timeout_ms = (uint32_t)mx_config_int(&cfg, "MX_SHUTDOWN_TIMEOUT_MS"),
            .drain_grace_ms = (uint32_t)mx_config_int(&cfg, "MX_DRAIN_GRACE_MS"),
            .app = &app,
            .mysql = mysql,
            .hooks = {.leave = leave_registry, .leave_ctx = &leave},
        };
        mxnode_cluster_hooks(cluster, &so.hooks);
        if ((rc = mx_shutdown_start(sys, &so, &sd)) != 0) {
            MX_ERROR("cannot start the shutdown coordinator: %s", mx_strerror(rc));
            exit_code = 1;
            goto stop;
        }
        mx_admin_set_drain(admin, admin_drain, sd);
        mx_admin_set_undrain(admin, admin_undrain, sd);
    }
    {
        char host[256];
        snprintf(host, sizeof host, "%s", ho.addr);
        char *colon = strrchr(host, ':');
        if (colon)
            *colon = '\0';
        printf("mxnode %s ready: %d schedulers, http %s:%u, nng port %d, admin port %d, node id "
               "%llx (Ctrl-C stops)\n",
               node, n, host, (unsigned)port, mx_remote_port(remote), mx_admin_port(admin),
               (unsigned long long)mx_system_node_id(sys));
        fflush(stdout);
    }

    int sig = 0;
    sigwait(&sigs, &sig);
    MX_INFO("received %s: shutting down (deadline %lld ms; a second signal cuts it short)",
            sig == SIGINT ? "SIGINT" : "SIGTERM",
            (long long)mx_config_int(&cfg, "MX_SHUTDOWN_TIMEOUT_MS"));
    mx_shutdown_begin(sd);
    exit_code = mx_shutdown_wait(sd, sigfd, &sres);
    if (exit_code != 0 && sres.took_ms == 0) {
        /* the coordinator is stuck (it did not even report): a step may
         * still use what main would free; leave now (spooled writes are on
         * disk already) */
        fflush(NULL);
        _exit(exit_code);
    }
stop:
    mx_admin_stop(admin); /* before the system and transport it reads */
    {
        /* the actors stop within what is left of the shutdown deadline
         * (at least 1 s) */
        int64_t left =
            sd ? mx_shutdown_deadline_left_ms(sd) : mx_config_int(&cfg, "MX_SHUTDOWN_TIMEOUT_MS");
        rc = mx_system_stop(sys, (uint32_t)(left < 1000 ? 1000 : left));
    }
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
    mxnode_cluster_free(cluster);
    if (sres.mysql.inflight) {
        /* cut while a MySQL job hangs on the server: joining its thread
         * could outlast the deadline; queued writes are spooled already */
        MX_WARN("leaving with %u MySQL jobs still running", sres.mysql.inflight);
        fflush(NULL);
        _exit(exit_code);
    }
    mx_mysql_stop(mysql); /* queued writes spool; pool jobs may append to the spool until here */
    mysql = NULL;
    mxnode_svc_free();
    mx_remote_stop(remote);
    mx_tls_free(tls);
    if (app.http)
        mx_http_free(app.http);
    mx_system_free(sys);
    mx_shutdown_free(sd);
    mx_cube_table_free(cube);
    mx_config_fini(&cfg);
    if (sigfd >= 0)
        close(sigfd);
    return exit_code;
}
