/* mxnode_cluster.c - mxnode's cluster membership and singletons. Until the
 * Redis registry lands, a node runs alone: peers are not discovered. */
#include <stddef.h>

#include "mxnode_parts.h"

int mxnode_cluster_start(mx_system_t *sys, const struct mx_config *cfg, mx_remote_t *remote,
                         mx_admin_t *admin, mx_mysql_t *mysql, const char *http_addr,
                         uint16_t http_port, struct mxnode_cluster **out)
{
    *out = NULL;
    return 0;
}

void mxnode_cluster_leave(struct mxnode_cluster *c)
{
}

void mxnode_cluster_free(struct mxnode_cluster *c)
{
}
