/* mxnode_svc.c - mxnode's expectation service: the fetcher (the only
 * caller of the Nexon Open API), the calculator and the cache shards with their tiers (L2
 * Redis, L3 MySQL and the write spool it falls back to), configured from
 * the node's settings. */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "mx_err.h"
#include "mx_fetch.h"
#include "mx_health.h"
#include "mx_log.h"
#include "mx_cache.h"
#include "mx_calculator.h"
#include "mxnode_parts.h"

static mx_mysql_t *g_pool; /* for mxnode_mysql_up */

/* set once the registry runs, cleared before it is freed (acquire/release:
 * the fetcher's thread reads the registry the pointer leads to) */
static _Atomic(mx_registry_t *) g_via_reg;

void mxnode_svc_set_registry(mx_registry_t *reg)
{
    atomic_store_explicit(&g_via_reg, reg, memory_order_release);
}

/* MX_FETCH_VIA's member name -> node id, for the fetcher (its thread) */
static int via_resolve(void *ctx, const char *name, uint64_t *node_id)
{
    mx_registry_t *reg = atomic_load_explicit(&g_via_reg, memory_order_acquire);
    return reg ? mx_registry_node_of(reg, name, node_id) : MX_ENOTFOUND;
}

/* MySQL is up: as the mysql-health singleton last reported it, when a
 * fresh report exists (a cluster with Redis); else as this node's pool saw
 * it (down only after a failure). Any thread. */
bool mxnode_mysql_up(void)
{
    struct mx_health_view v;
    mx_health_view(&v);
    if (v.state >= 0)
        return v.state == 1;
    struct mx_mysql_health h;
    mx_mysql_health(g_pool, &h);
    return h.down_since_ms == 0;
}

uint32_t mxnode_svc_budget_ms(const struct mx_config *cfg)
{
    struct mx_fetch_opts fo;
    mx_fetch_opts_default(&fo);
    return (uint32_t)mx_config_int(cfg, "MX_FETCH_TIMEOUT_MS") * fo.max_attempts + 3000;
}

static mx_spool_t *g_spool; /* closed by mxnode_svc_free, after the system stopped */

int mxnode_svc_start(mx_system_t *sys, const struct mx_config *cfg,
                     const struct mx_cube_table *cube, mx_mysql_t *mysql)
{
    struct mx_fetch_opts fo;
    mx_fetch_opts_default(&fo);
    fo.base_url = mx_config_str(cfg, "MX_NEXON_BASE_URL");
    fo.api_key = mx_config_str(cfg, "MX_NEXON_API_KEY");
    fo.max_inflight = (uint32_t)mx_config_int(cfg, "MX_FETCH_MAX_INFLIGHT");
    fo.total_timeout_ms = (uint32_t)mx_config_int(cfg, "MX_FETCH_TIMEOUT_MS");
    fo.via = mx_config_str(cfg, "MX_FETCH_VIA");
    fo.resolve = via_resolve;
    struct mx_spawn_opts fso = MX_SPAWN_OPTS_DEFAULT;
    fso.sched = 0;
    fso.cap_msgs = 65536;
    int rc = mx_fetch_spawn(sys, &fo, &fso, NULL);
    if (rc != 0) {
        MX_ERROR("cannot start the fetcher (check MX_NEXON_BASE_URL): %s", mx_strerror(rc));
        return rc;
    }
    struct mx_svc_opts svo;
    mx_svc_opts_default(&svo);
    svo.l1_max_entries = (uint32_t)mx_config_int(cfg, "MX_L1_MAX_ENTRIES");
    svo.l1_max_bytes = (uint64_t)mx_config_int(cfg, "MX_L1_MAX_MB") << 20;
    svo.fetch_timeout_ms = mxnode_svc_budget_ms(cfg);
#define SEC(env) ((uint32_t)mx_config_int(cfg, env) * 1000u)
    svo.ttl_doc_ms = SEC("MX_TTL_DOC_L1_S");
    svo.ttl2_doc_ms = SEC("MX_TTL_DOC_L2_S");
    svo.ttl_equipment_ms = SEC("MX_TTL_EQUIPMENT_L1_S");
    svo.ttl2_equipment_ms = SEC("MX_TTL_EQUIPMENT_L2_S");
    svo.ttl_ocid_ms = SEC("MX_TTL_OCID_L1_S");
    svo.ttl2_ocid_ms = SEC("MX_TTL_OCID_L2_S");
    svo.ttl_character_ms = SEC("MX_TTL_CHARACTER_L1_S");
    svo.ttl2_character_ms = SEC("MX_TTL_CHARACTER_L2_S");
    svo.ttl_negative_ms = svo.ttl2_negative_ms = SEC("MX_TTL_NEGATIVE_S");
    svo.l3_fresh_ms = SEC("MX_L3_FRESH_S");
#undef SEC
    svo.latch_ttl_ms = (uint32_t)mx_config_int(cfg, "MX_CACHE_LATCH_TTL_MS");
    svo.redis_timeout_ms = (uint32_t)mx_config_int(cfg, "MX_CACHE_REDIS_TIMEOUT_MS");
    svo.cluster = mx_config_str(cfg, "MX_CLUSTER");
    if (mx_config_int(cfg, "MX_CACHE_L2"))
        svo.redis_url = mx_config_str(cfg, "MX_REDIS_URL");
    svo.mysql = mysql;
    g_pool = mysql;
    if (mysql) {
        char path[4200];
        const char *p = mx_config_str(cfg, "MX_SPOOL_PATH");
        if (!p[0]) {
            if (mkdir("var", 0755) != 0 && errno != EEXIST) {
                MX_ERROR("MX_SPOOL_PATH: cannot create ./var: %s", strerror(errno));
                return MX_ECONFIG;
            }
            snprintf(path, sizeof path, "var/spool-%s.log", mx_config_str(cfg, "MX_NODE_NAME"));
            p = path;
        }
        struct mx_spool_opts so = {
            .path = p, .max_bytes = (uint64_t)mx_config_int(cfg, "MX_SPOOL_MAX_MB") << 20};
        if ((rc = mx_spool_open(&so, &g_spool)) != 0) {
            MX_ERROR("MX_SPOOL_PATH: cannot open the write spool %s: %s", p, mx_strerror(rc));
            return MX_ECONFIG;
        }
        svo.spool = g_spool;
        /* the cluster's view of MySQL (mysql-health), else the pool's own */
        svo.mysql_up = mxnode_mysql_up;
    }
    struct mx_calculator_opts co;
    mx_calculator_opts_default(&co);
    co.cube_table = cube;
    int threads = (int)mx_config_int(cfg, "MX_OFFLOAD_THREADS");
    co.pool = threads > 0 ? (uint32_t)threads : 4; /* the runtime's default too */
    if ((rc = mx_calculator_start(sys, &co)) != 0) {
        MX_ERROR("cannot start the calculator: %s", mx_strerror(rc));
        return rc;
    }
    if ((rc = mx_svc_start(sys, &svo)) != 0) {
        MX_ERROR("cannot start the cache shards: %s", mx_strerror(rc));
        return rc;
    }
    return 0;
}

void mxnode_svc_free(void)
{
    /* mxnode.c stops the MySQL pool before this, so no write or replay job
     * uses the spool any more (every append was fsync'd anyway). */
    if (g_spool) {
        mx_spool_close(g_spool);
        g_spool = NULL;
    }
}
