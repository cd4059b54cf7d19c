/* mxnode_svc.c - mxnode's expectation service: the fetcher (the only
 * caller of the Nexon Open API) and the cache shards, configured from the
 * node's settings. */
#include "mx_err.h"
#include "mx_fetch.h"
#include "mx_log.h"
#include "mx_svc.h"
#include "mxnode_parts.h"

uint32_t mxnode_svc_budget_ms(const struct mx_config *cfg)
{
    struct mx_fetch_opts fo;
    mx_fetch_opts_default(&fo);
    return (uint32_t)mx_config_int(cfg, "MX_FETCH_TIMEOUT_MS") * fo.max_attempts + 3000;
}

int mxnode_svc_start(mx_system_t *sys, const struct mx_config *cfg,
                     const struct mx_cube_table *cube, mx_mysql_t *mysql)
{
    struct mx_fetch_opts fo;
    mx_fetch_opts_default(&fo);
    fo.base_url = mx_config_str(cfg, "MX_NEXON_BASE_URL");
    fo.api_key = mx_config_str(cfg, "MX_NEXON_API_KEY");
    fo.max_inflight = (uint32_t)mx_config_int(cfg, "MX_FETCH_MAX_INFLIGHT");
    fo.total_timeout_ms = (uint32_t)mx_config_int(cfg, "MX_FETCH_TIMEOUT_MS");
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
    svo.cube_table = cube;
    svo.l1_max_entries = (uint32_t)mx_config_int(cfg, "MX_L1_MAX_ENTRIES");
    svo.l1_max_bytes = (uint64_t)mx_config_int(cfg, "MX_L1_MAX_MB") << 20;
    svo.fetch_timeout_ms = mxnode_svc_budget_ms(cfg);
    (void)mysql; /* the MySQL tier comes with the cache tiers */
    if ((rc = mx_svc_start(sys, &svo)) != 0) {
        MX_ERROR("cannot start the cache shards: %s", mx_strerror(rc));
        return rc;
    }
    return 0;
}

void mxnode_svc_free(void)
{
}
