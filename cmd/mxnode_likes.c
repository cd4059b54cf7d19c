/* mxnode_likes.c - mxnode's likes: the like-buffer actors on every node,
 * the like-sync singleton where MySQL is configured, and what mxctl shows
 * of them (docs/likes.md). */
#include <stdio.h>
#include <string.h>

#include "mx_err.h"
#include "mx_jsonw.h"
#include "mx_likes.h"
#include "mx_log.h"
#include "mx_metrics.h"
#include "mxnode_parts.h"

static bool g_started, g_mysql;

int mxnode_likes_start(mx_system_t *sys, const struct mx_config *cfg, mx_mysql_t *mysql)
{
    const char *url = mx_config_str(cfg, "MX_REDIS_URL");
    if (!url[0]) {
        MX_WARN("likes: MX_REDIS_URL is empty: the like routes answer 503 (Redis is the like "
                "buffer; there is no in-memory mode)");
        return 0;
    }
    struct mx_likes_opts o;
    mx_likes_opts_default(&o);
    o.redis_url = url;
    o.cluster = mx_config_str(cfg, "MX_CLUSTER");
    o.mysql = mysql;
    o.mysql_up = mysql ? mxnode_mysql_up : NULL;
    o.sync_interval_ms = (uint32_t)mx_config_int(cfg, "MX_LIKE_SYNC_INTERVAL_MS");
    o.sync_batch = (uint32_t)mx_config_int(cfg, "MX_LIKE_SYNC_BATCH");
    o.warm_max_rows = (uint32_t)mx_config_int(cfg, "MX_LIKE_WARM_MAX_ROWS");
    o.sync_pause_ms = (uint32_t)mx_config_int(cfg, "MX_LIKE_SYNC_PAUSE_MS");
    o.idle_s = (uint32_t)mx_config_int(cfg, "MX_LIKE_IDLE_S");
    o.wait_replicas = (uint32_t)mx_config_int(cfg, "MX_REDIS_WAIT_REPLICAS");
    if (o.sync_pause_ms)
        MX_WARN("likes: MX_LIKE_SYNC_PAUSE_MS=%u is a test setting: like-sync holds every "
                "journal open that long",
                o.sync_pause_ms);
    int rc = mx_likes_start(sys, &o);
    if (rc != 0) {
        MX_ERROR("likes: cannot start the like-buffer actors: %s", mx_strerror(rc));
        return rc;
    }
    g_started = true;
    g_mysql = mysql != NULL;
    if (!mysql)
        MX_WARN("likes: no MX_MYSQL_URL: toggles of characters already in Redis work, nothing "
                "is synced to MySQL and other characters answer 503");
    return 0;
}

int mxnode_likes_declare(mx_leases_t *lm)
{
    if (!g_started || !g_mysql)
        return 0;
    int rc = mx_likes_sync_declare(lm);
    if (rc != 0)
        MX_ERROR("cluster: cannot declare like-sync: %s", mx_strerror(rc));
    return rc;
}

/* the likes and like_sync sets (one instance each), under one section */
static void section_likes(struct mx_jsonw *w, void *ctx)
{
    mx_jsonw_obj_open(w);
    mx_metrics_json_totals(w, "likes");
    mx_metrics_json_totals(w, "like_sync");
    mx_jsonw_obj_close(w);
}

void mxnode_likes_admin(mx_admin_t *admin)
{
    if (g_started)
        mx_admin_add_section(admin, "likes", section_likes, NULL);
}
