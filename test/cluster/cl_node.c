/* cl_node.c - a small node for the cluster system tests: an actor system,
 * the nng transport, the admin endpoint, and actors "echo", "sink", "slow"
 * and a driver. It prints one line
 *   node <id hex> nng <port> admin <port>
 * and then obeys line commands on stdin (answers one line each):
 *   peer <id hex> <url>          add a peer                -> ok | err NAME
 *   send <id hex> <count> <seq0> test_kv to sink on a node -> sent OK FAILED RC
 *   epoch <id hex> <sid> <seq>   one test_kv with an epoch  -> sent OK FAILED RC
 *   req <id hex> <timeout ms>    request to echo on a node  -> reply N | timeout | err NAME
 *   park <ms> <count>            block slow for ms, then queue count messages -> ok
 *   sink                         -> sink RECEIVED OUT_OF_ORDER
 *   dl                           -> dl reason=n ...
 *   quit
 * Usage: cl_node --name N --nng URL --admin URL [--token T]
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cl_actors.h"
#include "mx_admin.h"
#include "mx_err.h"
#include "mx_log.h"
#include "mx_remote.h"
#include "mx_testutil.h"

static struct cl_sink_stats sink_st;
static struct cl_driver_stats drv_st;
static _Atomic int drained;
static char g_name[64], g_nng[128], g_admin[128];
static uint64_t g_id;

static int slow_recv(mx_actor_t *self, void *state, struct mx_msg *m)
{
    struct mx_m_test_echo e;
    if (m->env.type == MX_T_test_echo && mx_msg_decode(m, &e) == 0 && e.n < 5000)
        usleep((useconds_t)e.n * 1000);
    return 0;
}

static const struct mx_behaviour slow_beh = {.name = "slow", .receive = slow_recv};

static void section(struct mx_jsonw *w, void *ctx)
{
    mx_jsonw_obj_open(w);
    mx_jsonw_kuint(w, "sink_received", atomic_load(&sink_st.received));
    mx_jsonw_kuint(w, "sink_out_of_order", atomic_load(&sink_st.out_of_order));
    mx_jsonw_kbool(w, "drained", atomic_load(&drained));
    mx_jsonw_obj_close(w);
}

static uint32_t members(struct mx_member *out, uint32_t max, void *ctx)
{
    if (max < 1)
        return 0;
    memset(out, 0, sizeof(*out));
    snprintf(out->name, sizeof(out->name), "%s", g_name);
    out->node_id = g_id;
    snprintf(out->state, sizeof(out->state), "%s", atomic_load(&drained) ? "draining" : "up");
    snprintf(out->nng, sizeof(out->nng), "%s", g_nng);
    snprintf(out->admin, sizeof(out->admin), "%s", g_admin);
    return 1;
}

static uint32_t leases(struct mx_lease *out, uint32_t max, void *ctx)
{
    if (max < 1)
        return 0;
    memset(out, 0, sizeof(*out));
    snprintf(out->name, sizeof(out->name), "like-sync");
    snprintf(out->holder, sizeof(out->holder), "%s", g_name);
    out->epoch = mx_epoch_make(mx_epoch_sid("like-sync"), 7);
    out->ttl_ms = 5000;
    return 1;
}

/* cl_node runs no lease manager: it vouches for singleton id 77 from any
 * peer, so that the fence itself can be tested across processes. */
static bool epoch_sid77(void *ctx, uint64_t from, uint64_t epoch)
{
    return (epoch >> MX_EPOCH_SEQ_BITS) == 77;
}

static int drain(void *ctx)
{
    atomic_store(&drained, 1);
    return 0;
}

int main(int argc, char **argv)
{
    const char *name = "cl", *nng = "tcp://127.0.0.1:0", *admin = "tcp://127.0.0.1:0", *token = "";
    const char *tca = "", *tcert = "", *tkey = "";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--name"))
            name = argv[i + 1];
        else if (!strcmp(argv[i], "--nng"))
            nng = argv[i + 1];
        else if (!strcmp(argv[i], "--admin"))
            admin = argv[i + 1];
        else if (!strcmp(argv[i], "--token"))
            token = argv[i + 1];
        else if (!strcmp(argv[i], "--tls-ca"))
            tca = argv[i + 1];
        else if (!strcmp(argv[i], "--tls-cert"))
            tcert = argv[i + 1];
        else if (!strcmp(argv[i], "--tls-key"))
            tkey = argv[i + 1];
    }
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);
    mx_log_init(name, MX_LOG_WARN, 2);
    mx_system_t *sys;
    struct mx_system_opts so = {.node_name = name, .schedulers = 2, .offload_threads = 1};
    if (mx_system_start(&so, &sys) != 0)
        return 1;
    mx_tls_t *tls = NULL;
    char terr[512];
    if (tca[0] && mx_tls_load(tca, tcert, tkey, &tls, terr, sizeof terr) != 0) {
        printf("error tls %s\n", terr);
        return 1;
    }
    mx_remote_t *rem;
    struct mx_remote_opts ro = {
        .listen_url = nng, .sendbuf = 1024, .reconn_min_ms = 20, .reconn_max_ms = 500, .tls = tls};
    int rc = mx_remote_start(sys, &ro, &rem);
    if (rc != 0) {
        printf("error remote %s\n", mx_errname(rc));
        return 1;
    }
    mx_admin_t *adm;
    mx_remote_set_epoch_check(rem, epoch_sid77, NULL);
    struct mx_admin_opts ao = {
        .url = admin, .token = token, .remote = rem, .version = "test", .tls = tls};
    rc = mx_admin_start(sys, &ao, &adm);
    if (rc != 0) {
        printf("error admin %s\n", mx_errname(rc));
        return 1;
    }
    g_id = mx_system_node_id(sys);
    snprintf(g_name, sizeof(g_name), "%s", name);
    snprintf(g_nng, sizeof(g_nng), "tcp://127.0.0.1:%d", mx_remote_port(rem));
    snprintf(g_admin, sizeof(g_admin), "tcp://127.0.0.1:%d", mx_admin_port(adm));
    mx_admin_add_section(adm, "cl", section, NULL);
    mx_admin_set_members(adm, members, NULL);
    mx_admin_set_leases(adm, leases, NULL);
    mx_admin_set_drain(adm, drain, NULL);
    struct mx_spawn_opts sp = MX_SPAWN_OPTS_DEFAULT;
    struct mx_addr drv, slow;
    sp.name = "echo";
    mx_spawn(sys, &cl_echo_beh, NULL, &sp, NULL);
    sp.name = "sink";
    sp.cap_msgs = 1u << 20;
    mx_spawn(sys, &cl_sink_beh, &sink_st, &sp, NULL);
    sp.name = "slow";
    sp.cap_msgs = 0;
    mx_spawn(sys, &slow_beh, NULL, &sp, &slow);
    mx_spawn(sys, &cl_driver_beh, &drv_st, NULL, &drv);
    printf("node %016llx nng %d admin %d\n", (unsigned long long)g_id, mx_remote_port(rem),
           mx_admin_port(adm));

    char line[1024];
    while (fgets(line, sizeof(line), stdin)) {
        char cmd[32] = "", a1[512] = "", a2[64] = "", a3[64] = "";
        sscanf(line, "%31s %511s %63s %63s", cmd, a1, a2, a3);
        uint64_t node = strtoull(a1, NULL, 16);
        if (!strcmp(cmd, "peer")) {
            rc = mx_remote_add_peer(rem, node, a2);
            if (rc == 0)
                printf("ok\n");
            else
                printf("err %s\n", mx_errname(rc));
        } else if (!strcmp(cmd, "send") || !strcmp(cmd, "epoch")) {
            struct cl_cmd c = {.op = CL_SEND_NAMED, .node = node};
            strcpy(c.name, "sink");
            if (!strcmp(cmd, "send")) {
                c.count = (uint32_t)atoi(a2);
                c.seq0 = strtoull(a3, NULL, 10);
            } else {
                c.count = 1;
                c.epoch = mx_epoch_make((uint32_t)atoi(a2), strtoull(a3, NULL, 10));
            }
            if (cl_run(sys, drv, &c) != 0)
                printf("err TIMEDOUT\n");
            else
                printf("sent %u %u %s\n", c.sent, c.failed, c.rc ? mx_errname(c.rc) : "OK");
        } else if (!strcmp(cmd, "req")) {
            struct cl_cmd c = {
                .op = CL_REQ_NAMED, .node = node, .n = 41, .timeout_ms = (uint32_t)atoi(a2)};
            strcpy(c.name, "echo");
            uint64_t r0 = atomic_load(&drv_st.replies), t0 = atomic_load(&drv_st.timeouts);
            if (cl_run(sys, drv, &c) != 0 || c.rc != 0) {
                printf("err %s\n", mx_errname(c.rc ? c.rc : MX_ETIMEDOUT));
                continue;
            }
            TU_WAIT_UNTIL(atomic_load(&drv_st.replies) > r0 || atomic_load(&drv_st.timeouts) > t0,
                          c.timeout_ms + 2000);
            if (atomic_load(&drv_st.replies) > r0)
                printf("reply %llu\n", (unsigned long long)atomic_load(&drv_st.last_n));
            else if (atomic_load(&drv_st.timeouts) > t0)
                printf("timeout\n");
            else
                printf("err NOTHING\n");
        } else if (!strcmp(cmd, "park")) {
            struct mx_msg *m;
            mx_msg_encode(MX_T_test_echo, &(struct mx_m_test_echo){(uint64_t)atoi(a1), MX_STR("")},
                          &m);
            if (mx_sys_send(sys, slow, m) != 0)
                mx_msg_free(m);
            for (int i = 0; i < atoi(a2); i++) {
                struct mx_m_test_kv kv = {
                    .sender = 5, .seq = (uint64_t)i, .text = MX_STR("parked")};
                mx_msg_encode(MX_T_test_kv, &kv, &m);
                if (mx_sys_send(sys, slow, m) != 0)
                    mx_msg_free(m);
            }
            printf("ok\n");
        } else if (!strcmp(cmd, "sink")) {
            printf("sink %llu %llu\n", (unsigned long long)atomic_load(&sink_st.received),
                   (unsigned long long)atomic_load(&sink_st.out_of_order));
        } else if (!strcmp(cmd, "dl")) {
            uint64_t v[MX_DL_COUNT];
            mx_deadletters(sys, v);
            printf("dl");
            for (int i = 0; i < MX_DL_COUNT; i++)
                printf(" %s=%llu", mx_dl_name(i), (unsigned long long)v[i]);
            printf("\n");
        } else if (!strcmp(cmd, "quit")) {
            break;
        } else {
            printf("err UNKNOWN\n");
        }
    }
    mx_admin_stop(adm);
    mx_system_stop(sys, 5000);
    mx_remote_stop(rem);
    mx_system_free(sys);
    return 0;
}
