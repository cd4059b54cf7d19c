/* mxnode_cluster.c - mxnode's cluster membership and singletons.
 *
 * Joins the Redis registry (runtime/cluster/mx_registry.h) with the addresses the
 * node really bound, declares the singletons (mysql-health when MySQL is
 * configured) on the lease manager (runtime/cluster/mx_lease.h), and gives the
 * admin endpoint its members/leases providers and a "cluster" stats
 * section. On SIGTERM the node hands its singletons over first (release +
 * publish, so another node takes over at once) and advertises "draining".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mx_err.h"
#include "mx_health.h"
#include "mx_lease.h"
#include "mx_log.h"
#include "mx_metrics.h"
#include "mx_outbox.h"
#include "mx_registry.h"
#include "mx_shutdown.h"
#include "mx_url.h"
#include "mxnode_parts.h"

#define MX_VERSION_CLUSTER "0.1.0"

struct mxnode_cluster {
    mx_registry_t *reg;
    mx_leases_t *lm;
};

/* "tcp://host:port" (tls+tcp:// with TLS) with the real port and the
 * advertised host. */
static int advertise(const char *listen, int port, const char *adv, bool tls, char *out, size_t cap)
{
    const char *scheme = tls ? "tls+tcp" : "tcp";
    if (strncmp(listen, "tcp://", 6) != 0) {
        snprintf(out, cap, "%s", listen); /* ipc:// or inproc:// as they are */
        return 0;
    }
    char host[256];
    if (mx_url_hostport(listen + 6, strlen(listen + 6), true, host, sizeof host, NULL, NULL) != 0)
        return MX_EINVAL;
    bool v6 = strchr(host, ':') != NULL;
    int n = adv && adv[0] ? snprintf(out, cap, "%s://%s:%d", scheme, adv, port)
                          : snprintf(out, cap, "%s://%s%s%s:%d", scheme, v6 ? "[" : "", host,
                                     v6 ? "]" : "", port);
    return n < 0 || (size_t)n >= cap ? MX_ETOOBIG : 0;
}

static void section_cluster(struct mx_jsonw *w, void *ctx)
{
    struct mx_health_view hv;
    mx_health_view(&hv);
    mx_jsonw_obj_open(w);
    mx_metrics_json_totals(w, "leases"); /* leases_*, self_fenced, singleton_* */
    mx_jsonw_key(w, "mysql_health");
    mx_jsonw_obj_open(w);
    mx_jsonw_kstr(w, "state", hv.state == 1 ? "up" : hv.state == 0 ? "down" : "unknown");
    mx_jsonw_kuint(w, "epoch", hv.seq);
    mx_jsonw_kstr(w, "node", hv.node);
    mx_jsonw_kint(w, "age_ms", hv.age_ms);
    mx_jsonw_kuint(w, "probes", hv.probes);
    mx_jsonw_kuint(w, "stale", hv.stale);
    mx_jsonw_obj_close(w);
    mx_jsonw_obj_close(w);
}

/* ---- outbox relay (actors/outbox): its admin stats section ---- */
/* the relay's and the alert actor's registered sets (mx_outbox.h), and
 * the relay's lag percentiles the registry cannot hold */
static void section_outbox(struct mx_jsonw *w, void *ctx)
{
    struct mx_outbox_stats s;
    mx_outbox_stats(&s);
    mx_jsonw_obj_open(w);
    mx_metrics_json_totals(w, "outbox");
    mx_jsonw_kuint(w, "lag_count", s.lag_count);
    mx_jsonw_kuint(w, "lag_p50_ms", s.lag_p50_ms);
    mx_jsonw_kuint(w, "lag_p99_ms", s.lag_p99_ms);
    mx_jsonw_kuint(w, "lag_max_ms", s.lag_max_ms);
    mx_jsonw_key(w, "alerts");
    mx_jsonw_obj_open(w);
    mx_metrics_json_totals(w, "alert");
    mx_jsonw_obj_close(w);
    mx_jsonw_obj_close(w);
}

/* ---- end outbox relay ---- */

/* ---- lease-probe: a test-only singleton (MX_LEASE_TEST=1) ----
 * Every 100 ms, while its lease is valid, it appends "<epoch> <node>" to
 * the Redis list mx:{C}:lease-probe:log (trimmed to 10,000), so a test can
 * check that no two nodes acted in the same epoch and that a deposed
 * holder stopped acting. */

struct probe_log {
    mx_registry_t *reg;
    char line[96];
};

static void probe_log_on_thread(void *arg)
{
    struct probe_log *p = arg;
    char key[200];
    mx_registry_key(p->reg, "lease-probe:log", key, sizeof key);
    mx_redis_t *r = mx_registry_redis(p->reg);
    mx_redis_command(r, NULL, NULL, "RPUSH %s %s", key, p->line);
    mx_redis_command(r, NULL, NULL, "LTRIM %s -10000 -1", key);
    free(p);
}

static int probe_init(mx_actor_t *self, void *arg, void **state)
{
    *state = arg;
    uint64_t id;
    return mx_timer_start(self, 0, 100, mx_msg_new(MX_T_sys_tick, 0), &id);
}

static int probe_receive(mx_actor_t *self, void *state, struct mx_msg *m)
{
    if (m->env.type != MX_T_sys_tick || !mx_singleton_valid())
        return 0;
    struct probe_log *p = malloc(sizeof *p);
    if (!p)
        return MX_ENOMEM;
    p->reg = state;
    snprintf(p->line, sizeof p->line, "%llu %s",
             (unsigned long long)(mx_singleton_epoch() & MX_EPOCH_SEQ_MASK),
             mx_system_node_name(mx_system_of(self)));
    if (mx_registry_call(p->reg, probe_log_on_thread, p) != 0)
        free(p);
    return 0;
}

static const struct mx_behaviour probe_beh = {"lease-probe", probe_init, probe_receive, NULL};

int mxnode_transport_setup(const struct mx_config *cfg, mx_tls_t **out)
{
    const char *ca = mx_config_str(cfg, "MX_TLS_CA"), *cert = mx_config_str(cfg, "MX_TLS_CERT"),
               *key = mx_config_str(cfg, "MX_TLS_KEY");
    const char *nurl = mx_config_str(cfg, "MX_NNG_ADDR"),
               *aurl = mx_config_str(cfg, "MX_ADMIN_ADDR");
    *out = NULL;
    if (ca[0] || cert[0] || key[0]) {
        char err[512];
        if (mx_tls_load(ca, cert, key, out, err, sizeof err) != 0) {
            fprintf(stderr, "mxnode: %s\n", err);
            return MX_ECONFIG;
        }
        MX_INFO("transport: mutual TLS for peers and admin (CA %s)", ca);
        return 0;
    }
    const char *open = !mx_url_is_loopback(nurl)   ? "MX_NNG_ADDR"
                       : !mx_url_is_loopback(aurl) ? "MX_ADMIN_ADDR"
                                                   : NULL;
    if (!open)
        return 0;
    if (mx_config_int(cfg, "MX_INSECURE_TRANSPORT") != 1) {
        fprintf(
            stderr,
            "mxnode: %s (%s) is not a loopback address and MX_TLS_CA/MX_TLS_CERT/MX_TLS_KEY "
            "are not set: anyone who reaches the port could act as a peer or an operator. "
            "Set the three (scripts/gen-certs makes a throwaway CA), or MX_INSECURE_TRANSPORT=1 "
            "on a private, firewalled network\n",
            open, open[3] == 'N' ? nurl : aurl);
        return MX_ECONFIG;
    }
    MX_WARN("transport: MX_INSECURE_TRANSPORT=1: %s %s accepts unauthenticated peers in "
            "plaintext; keep it on a private, firewalled network",
            open, open[3] == 'N' ? nurl : aurl);
    return 0;
}

/* Whether an nng URL listens on every interface. */
static bool wildcard(const char *url)
{
    char host[256];
    const char *hp = strstr(url, "://");
    return hp &&
           mx_url_hostport(hp + 3, strlen(hp + 3), true, host, sizeof host, NULL, NULL) == 0 &&
           (strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0);
}

int mxnode_cluster_start(mx_system_t *sys, const struct mx_config *cfg, mx_remote_t *remote,
                         mx_admin_t *admin, mx_mysql_t *mysql, const char *http_addr,
                         uint16_t http_port, struct mxnode_cluster **out)
{
    *out = NULL;
    /* outbox relay: URL settings checked whether or not the relay runs */
    static const char *const http_urls[][2] = {
        {"MX_OUTBOX_SINK_URL", "--outbox-sink-url"},
        {"MX_OUTBOX_REFETCH_URL", "--outbox-refetch-url"},
        {"MX_AI_URL", "--ai-url"},
        {"MX_ALERT_WEBHOOK_URL", "--alert-webhook-url"},
    };
    for (size_t i = 0; i < sizeof http_urls / sizeof http_urls[0]; i++) {
        const char *v = mx_config_str(cfg, http_urls[i][0]);
        const char *why = v[0] ? mx_http_url_error(v, true) : NULL;
        if (why) {
            fprintf(stderr, "mxnode: %s (%s): the URL %s; expected an http:// or https:// URL\n",
                    http_urls[i][0], http_urls[i][1], why);
            return MX_ECONFIG;
        }
    }
    if (mx_config_int(cfg, "MX_REGISTRY") == 0) {
        MX_INFO("cluster: registry off (MX_REGISTRY=0): running alone");
        return 0;
    }
    const char *adv = mx_config_str(cfg, "MX_ADVERTISE_HOST");
    /* An address listening on every interface cannot be dialled as such:
     * unless MX_ADVERTISE_HOST says otherwise, advertise this host's name
     * for it (and only for it). */
    static char hostname[256];
    if (!adv[0] && gethostname(hostname, sizeof hostname - 1) != 0)
        hostname[0] = '\0';
    const char *nurl = mx_config_str(cfg, "MX_NNG_ADDR");
    const char *aurl = mx_config_str(cfg, "MX_ADMIN_ADDR");
    const char *adv_nng = adv[0] || !wildcard(nurl) ? adv : hostname;
    const char *adv_adm = adv[0] || !wildcard(aurl) ? adv : hostname;
    if (adv_nng == hostname || adv_adm == hostname)
        MX_INFO("cluster: listening on every interface; advertising host %s for it "
                "(set MX_ADVERTISE_HOST to choose)",
                hostname);
    char nng[128], adm[128], http[64];
    bool tls = mx_config_str(cfg, "MX_TLS_CA")[0] != '\0';
    if (advertise(nurl, mx_remote_port(remote), adv_nng, tls, nng, sizeof nng) != 0 ||
        advertise(aurl, mx_admin_port(admin), adv_adm, tls, adm, sizeof adm) != 0) {
        fprintf(stderr, "mxnode: MX_ADVERTISE_HOST: advertised address too long\n");
        return MX_ECONFIG;
    }
    {
        char host[256];
        snprintf(host, sizeof host, "%s", http_addr);
        char *colon = strrchr(host, ':');
        if (colon)
            *colon = '\0';
        int hn = snprintf(http, sizeof http, "%.48s:%u", adv[0] ? adv : host, (unsigned)http_port);
        if (hn < 0 || (size_t)hn >= sizeof http || strlen(adv[0] ? adv : host) > 48) {
            fprintf(stderr, "mxnode: MX_ADVERTISE_HOST: host too long (48 bytes max)\n");
            return MX_ECONFIG;
        }
    }
    uint32_t refresh = (uint32_t)mx_config_int(cfg, "MX_MEMBER_REFRESH_MS");
    uint32_t ttl = (uint32_t)mx_config_int(cfg, "MX_MEMBER_TTL_MS");
    if (ttl <= refresh) {
        fprintf(stderr, "mxnode: MX_MEMBER_TTL_MS (--member-ttl-ms): must exceed "
                        "MX_MEMBER_REFRESH_MS\n");
        return MX_ECONFIG;
    }
    struct mx_registry_opts ro = {
        .redis_url = mx_config_str(cfg, "MX_REDIS_URL"),
        .cluster = mx_config_str(cfg, "MX_CLUSTER"),
        .nng_url = nng,
        .http_addr = http,
        .admin_url = adm,
        .version = MX_VERSION_CLUSTER,
        .refresh_ms = refresh,
        .ttl_ms = ttl,
        .remote = remote,
    };
    struct mxnode_cluster *c = calloc(1, sizeof *c);
    if (!c)
        abort();
    int rc = mx_registry_new(sys, &ro, &c->reg);
    if (rc != 0) {
        fprintf(stderr, "mxnode: MX_REDIS_URL/MX_CLUSTER/MX_ADVERTISE_HOST: registry: %s\n",
                mx_strerror(rc));
        free(c);
        return MX_ECONFIG;
    }
    struct mx_leases_opts lo = {
        .ttl_ms = (uint32_t)mx_config_int(cfg, "MX_LEASE_TTL_MS"),
        .margin_ms = (uint32_t)mx_config_int(cfg, "MX_LEASE_MARGIN_MS"),
        .buffer_msgs = (uint32_t)mx_config_int(cfg, "MX_SINGLETON_BUFFER"),
    };
    if ((rc = mx_leases_new(c->reg, &lo, &c->lm)) != 0) {
        fprintf(stderr, "mxnode: MX_LEASE_MARGIN_MS (--lease-margin-ms): must be under half "
                        "of MX_LEASE_TTL_MS\n");
        goto fail;
    }
    struct mx_health_opts ho = {.mysql = mysql,
                                .probe_ms = (uint32_t)mx_config_int(cfg, "MX_HEALTH_PROBE_MS")};
    if ((rc = mx_health_start(c->reg, c->lm, &ho)) != 0) {
        MX_ERROR("cluster: cannot declare mysql-health: %s", mx_strerror(rc));
        goto fail;
    }
    if ((rc = mxnode_likes_declare(c->lm)) != 0)
        goto fail;
    /* outbox relay: declared next to mysql-health, only with MySQL */
    if (mysql && mx_config_int(cfg, "MX_OUTBOX_RELAY")) {
        struct mx_outbox_opts oo = {
            .mysql = mysql,
            .sink_url = mx_config_str(cfg, "MX_OUTBOX_SINK_URL"),
            .alert_url = mx_config_str(cfg, "MX_ALERT_WEBHOOK_URL"),
            .refetch_url = mx_config_str(cfg, "MX_OUTBOX_REFETCH_URL"),
            .batch = (uint32_t)mx_config_int(cfg, "MX_OUTBOX_BATCH"),
            .concurrency = (uint32_t)mx_config_int(cfg, "MX_OUTBOX_CONCURRENCY"),
            .timeout_ms = (uint32_t)mx_config_int(cfg, "MX_OUTBOX_TIMEOUT_MS"),
            .poll_ms = (uint32_t)mx_config_int(cfg, "MX_OUTBOX_POLL_MS"),
            .max_attempts = (uint32_t)mx_config_int(cfg, "MX_OUTBOX_MAX_ATTEMPTS"),
            .backoff_base_ms = (uint32_t)mx_config_int(cfg, "MX_OUTBOX_BACKOFF_BASE_MS"),
            .backoff_cap_ms = (uint32_t)mx_config_int(cfg, "MX_OUTBOX_BACKOFF_CAP_MS"),
            .stuck_s = (uint32_t)mx_config_int(cfg, "MX_OUTBOX_STUCK_S"),
            .retain_s = (uint32_t)mx_config_int(cfg, "MX_OUTBOX_RETAIN_S"),
        };
        if ((rc = mx_outbox_start(c->lm, &oo)) != 0) {
            MX_ERROR("cluster: cannot declare outbox-relay: %s", mx_strerror(rc));
            goto fail;
        }
    }
    if (mysql) { /* outbox: alerts are written as outbox rows */
        struct mx_alert_opts al = {
            .sys = sys,
            .mysql = mysql,
            .redis_url = mx_config_str(cfg, "MX_REDIS_URL"),
            .cluster = mx_config_str(cfg, "MX_CLUSTER"),
            .window_s = (uint32_t)mx_config_int(cfg, "MX_ALERT_WINDOW_S"),
            .ai_daily_quota = (uint32_t)mx_config_int(cfg, "MX_ALERT_AI_DAILY_QUOTA"),
            .ai_url = mx_config_str(cfg, "MX_AI_URL"),
            .ai_key = mx_config_str(cfg, "MX_AI_KEY"),
            .ai_model = mx_config_str(cfg, "MX_AI_MODEL"),
            .ai_concurrency = (uint32_t)mx_config_int(cfg, "MX_AI_CONCURRENCY"),
            .ai_timeout_ms = (uint32_t)mx_config_int(cfg, "MX_AI_TIMEOUT_MS"),
            .refetch = mx_config_str(cfg, "MX_OUTBOX_REFETCH_URL")[0] != '\0',
        };
        if ((rc = mx_alert_start(&al)) != 0) {
            MX_ERROR("cluster: cannot start the alerter: %s", mx_strerror(rc));
            goto fail;
        }
    }
    if (mx_config_int(cfg, "MX_LEASE_TEST") &&
        (rc = mx_singleton(c->lm, "lease-probe", &probe_beh, c->reg, NULL)) != 0) {
        MX_ERROR("cluster: cannot declare lease-probe: %s", mx_strerror(rc));
        goto fail;
    }
    if ((rc = mx_registry_start(c->reg)) != 0) {
        MX_ERROR("cluster: cannot start the registry thread: %s", mx_strerror(rc));
        goto fail;
    }
    if ((rc = mx_leases_start(c->lm)) != 0) {
        MX_ERROR("cluster: cannot start the leases: %s", mx_strerror(rc));
        goto fail;
    }
    mxnode_svc_set_registry(c->reg);
    mx_admin_set_members(admin, mx_registry_members, c->reg);
    mx_admin_set_leases(admin, mx_leases_list, c->lm);
    mx_admin_add_section(admin, "cluster", section_cluster, c);
    mx_admin_add_section(admin, "outbox", section_outbox, NULL); /* outbox relay */
    MX_INFO("cluster: joined as %s (nng %s, admin %s, http %s)", mx_system_node_name(sys), nng, adm,
            http);
    *out = c;
    return 0;
fail:
    mx_leases_free(c->lm);
    mx_registry_stop(c->reg);
    free(c);
    return rc == MX_EINVAL ? MX_ECONFIG : rc;
}

void mxnode_cluster_leave(struct mxnode_cluster *c)
{
    if (!c)
        return;
    mx_leases_leave(c->lm, 1000); /* hand singletons over first */
    mx_registry_set_state(c->reg, "draining");
}

void mxnode_cluster_free(struct mxnode_cluster *c)
{
    if (!c)
        return;
    mxnode_svc_set_registry(NULL);
    mx_leases_free(c->lm);
    mx_registry_stop(c->reg);
    free(c);
}

/* ---- the shutdown coordinator's hooks (actors/shutdown) ---- */

static int hook_set_state(void *ctx, const char *state)
{
    struct mxnode_cluster *c = ctx;
    return mx_registry_set_state(c->reg, state);
}

static int hook_handover(void *ctx, uint32_t timeout_ms, struct mx_leases_handover *out)
{
    struct mxnode_cluster *c = ctx;
    return mx_leases_handover(c->lm, timeout_ms, out);
}

static int hook_rejoin(void *ctx)
{
    struct mxnode_cluster *c = ctx;
    return mx_leases_rejoin(c->lm);
}

void mxnode_cluster_hooks(struct mxnode_cluster *c, struct mx_shutdown_hooks *h)
{
    if (!c)
        return;
    h->ctx = c;
    h->set_state = hook_set_state;
    h->handover = hook_handover;
    h->rejoin = hook_rejoin;
}
