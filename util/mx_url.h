/* mx_url.h - the URLs mx's settings name: redis://, redis-sentinel://.
 * Pure functions, any thread; no I/O. Shared by the configuration checks
 * (runtime core), the Redis client and mxctl, so there is one parser.
 */
#ifndef MX_URL_H
#define MX_URL_H

#include <stdbool.h>
#include <stddef.h>

#define MX_REDIS_URL_MAX 512 /* bytes, whole URL */
#define MX_REDIS_MAX_SENTINELS 16

/* A parsed redis-sentinel:// URL. */
struct mx_redis_sentinel_url {
    char user[128], password[256]; /* for the sentinels and the master alike */
    int n;                         /* sentinels, 1..MX_REDIS_MAX_SENTINELS */
    char host[MX_REDIS_MAX_SENTINELS][64];
    int port[MX_REDIS_MAX_SENTINELS];
    char master[128]; /* MASTER_NAME: letters, digits, . _ - */
    int db;
};

/* mx_redis_parse_url - split redis://[[user]:password@]host:port[/db] into
 * its parts (host without brackets for IPv6). user/password may be NULL if
 * not wanted; out strings are NUL-terminated and truncated to their caps is
 * an error (MX_EINVAL). db 0-15. Returns 0 or MX_EINVAL. Pure; any thread. */
int mx_redis_parse_url(const char *url, char *host, size_t host_cap, int *port, char *user,
                       size_t user_cap, char *password, size_t pass_cap, int *db);

/* mx_redis_parse_sentinel_url - split
 * redis-sentinel://[[user]:password@]host1:port1[,host2:port2...]/MASTER_NAME[/db].
 * Returns 0 or MX_EINVAL. Pure; any thread. */
int mx_redis_parse_sentinel_url(const char *url, struct mx_redis_sentinel_url *out);

/* mx_redis_url_valid - whether url is a redis:// or redis-sentinel:// URL
 * mx_redis_open accepts. Pure; any thread. */
bool mx_redis_url_valid(const char *url);

#endif
