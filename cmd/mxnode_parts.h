/* mxnode_parts.h - the parts of mxnode that live in their own files, so
 * each can grow without touching main(): the expectation service with its
 * cache tiers (mxnode_svc.c) and the cluster membership and singletons
 * (mxnode_cluster.c). All run on the main thread, outside the schedulers.
 */
#ifndef MXNODE_PARTS_H
#define MXNODE_PARTS_H

#include <stdint.h>

#include "mx_actor.h"
#include "mx_admin.h"
#include "mx_config.h"
#include "mx_lease.h"
#include "mx_mysql.h"
#include "mx_registry.h"
#include "mx_remote.h"

struct mx_cube_table;

/* mxnode_svc_start - start the fetcher and the cache shards (and the
 * tiers behind them) from the settings. mysql may be NULL (no MX_MYSQL_URL).
 * Returns 0, MX_ECONFIG (a setting is unusable: logged naming it) or another
 * MX_E* code (logged). */
int mxnode_svc_start(mx_system_t *sys, const struct mx_config *cfg,
                     const struct mx_cube_table *cube, mx_mysql_t *mysql);
/* mxnode_svc_budget_ms - the longest a cache load may take upstream. */
uint32_t mxnode_svc_budget_ms(const struct mx_config *cfg);
/* mxnode_svc_set_registry - the membership the fetcher's MX_FETCH_VIA
 * resolves the egress node's name in (NULL: none, before it is freed).
 * Any thread. */
void mxnode_svc_set_registry(mx_registry_t *reg);
/* mxnode_svc_free - free what mxnode_svc_start kept, after mx_system_stop. */
void mxnode_svc_free(void);
/* mxnode_mysql_up - MySQL's state as mysql-health reports it, else as this
 * node's pool saw it. Any thread. */
bool mxnode_mysql_up(void);

/* mxnode_likes_start - start the like-buffer actors (when MX_REDIS_URL is
 * set; likes need Redis) and give the admin endpoint a "likes" section.
 * Before mx_app_start. Returns 0 or an MX_E* code (logged). */
int mxnode_likes_start(mx_system_t *sys, const struct mx_config *cfg, mx_mysql_t *mysql);
/* mxnode_likes_declare - declare the like-sync singleton (with MySQL). */
int mxnode_likes_declare(mx_leases_t *lm);
/* mxnode_likes_admin - the admin "likes" section. */
void mxnode_likes_admin(mx_admin_t *admin);

/* mxnode_transport_setup - the TLS settings: *out gets the loaded
 * configuration (MX_TLS_CA/CERT/KEY all set) or NULL (none set). Without
 * TLS, a non-loopback MX_NNG_ADDR or MX_ADMIN_ADDR is refused unless
 * MX_INSECURE_TRANSPORT=1 (then a warning is logged). Returns 0 or
 * MX_ECONFIG (printed, naming the setting). */
int mxnode_transport_setup(const struct mx_config *cfg, mx_tls_t **out);

struct mxnode_cluster;

/* mxnode_cluster_start - join the cluster (membership, peers, singletons)
 * once the node serves: http_addr/http_port are what it advertises.
 * Returns 0 and *out (may stay NULL when clustering is off), MX_ECONFIG or
 * another MX_E* code (logged). */
int mxnode_cluster_start(mx_system_t *sys, const struct mx_config *cfg, mx_remote_t *remote,
                         mx_admin_t *admin, mx_mysql_t *mysql, const char *http_addr,
                         uint16_t http_port, struct mxnode_cluster **out);
/* mxnode_cluster_leave - on SIGTERM, before HTTP drains: state draining,
 * singletons stopped and their leases released. NULL is a no-op. */
void mxnode_cluster_leave(struct mxnode_cluster *c);
/* mxnode_cluster_free - after mx_system_stop. NULL is a no-op. */
void mxnode_cluster_free(struct mxnode_cluster *c);

struct mx_shutdown_hooks;
/* mxnode_cluster_hooks - fill the shutdown coordinator's registry state,
 * lease hand-over and rejoin hooks (ctx = c). NULL c leaves h as it is. */
void mxnode_cluster_hooks(struct mxnode_cluster *c, struct mx_shutdown_hooks *h);

#endif
