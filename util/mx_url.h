/* mx_url.h - the one parser of the URLs mx's settings name: redis://,
 * redis-sentinel://, mysql://, http(s):// and nng's tcp://host:port.
 *
 * Hosts and ports go through libcurl's URL API (curl_url), so every setting
 * agrees on what a host is (letters, digits, '.', '-', '_', or an [IPv6]
 * address; no %-escapes, no zone ids) and what a port is (decimal, 1-65535;
 * 0 only where a listener may ask for any port). What curl cannot know is
 * done here, the same way for every scheme:
 * - the login (user[:password]) ends at the LAST '@' of the URL, so a
 *   password may hold '@', ':' and '/' as written (curl stops at the first
 *   '@' and at the first '/');
 * - redis:// and redis-sentinel:// take the password as written (the
 *   documented Redis form, docs/redis.md); mysql:// decodes %XX in user and
 *   password (docs/storage.md); the error says which;
 * - anything after the parts a scheme defines (a query, a fragment, a
 *   second path segment) is an error, never ignored.
 * Pure functions, any thread; no I/O; no allocation beyond curl's own. An
 * error never quotes the password.
 */
#ifndef MX_URL_H
#define MX_URL_H

#include <stdbool.h>
#include <stddef.h>

#define MX_URL_MAX 1024      /* bytes, whole URL, any scheme */
#define MX_REDIS_URL_MAX 512 /* bytes, whole redis:// or redis-sentinel:// URL */
#define MX_REDIS_MAX_SENTINELS 16

/* The parts every scheme shares (mx_url_parse). */
struct mx_url {
    bool has_login;    /* a '@' was there */
    bool has_password; /* the login held a ':' */
    char user[128];    /* "" when none */
    char password[256];
    char host[256];        /* without brackets; IPv4/IPv6 as curl normalised them */
    int port;              /* 1-65535 */
    char rest[MX_URL_MAX]; /* from the first '/', '?' or '#' after host:port; "" */
};

/* mx_url_parse - split scheme://[login@]host:port[rest] into out. scheme
 * without "://" ("mysql"); decode: whether %XX in the login is decoded
 * (strictly: a bad or %00 escape is an error). Returns 0, or MX_EINVAL
 * and *why (when why is not NULL) a static phrase to follow "<scheme> URL",
 * e.g. "port must be 1-65535". Pure; any thread. */
int mx_url_parse(const char *url, const char *scheme, bool decode, struct mx_url *out,
                 const char **why);

/* mx_url_hostport - parse "host:port" or "[v6]:port" (n bytes at s, no
 * scheme) into host (without brackets) and *port; port 0 is accepted only
 * with any_port (a listener). Returns 0, or MX_EINVAL and *why. Pure. */
int mx_url_hostport(const char *s, size_t n, bool any_port, char *host, size_t host_cap, int *port,
                    const char **why);

/* mx_url_unescape - percent-decode n bytes of s into out (at most cap
 * bytes, no NUL added); plus_space turns '+' into ' ' (query strings).
 * Strict: a '%' not followed by two hex digits, a %00 or a raw NUL is an
 * error. Returns the decoded length, -1 for a bad escape, -2 when the
 * result would pass cap. Pure; any thread. The one decoder of mx: logins
 * here, HTTP paths and queries, mxstub's queries. */
long mx_url_unescape(const char *s, size_t n, bool plus_space, char *out, size_t cap);

/* ---- redis:// and redis-sentinel:// ---- */

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

/* mx_redis_url_error - NULL if url is a redis:// or redis-sentinel:// URL
 * mx_redis_open accepts, else a static phrase saying what is wrong (never
 * quoting the URL). Pure; any thread. */
const char *mx_redis_url_error(const char *url);

/* mx_redis_url_valid - mx_redis_url_error(url) == NULL. */
bool mx_redis_url_valid(const char *url);

/* mx_redis_url_format - write redis://[[user]:password@]host:port (host in
 * brackets when it is IPv6) into out, the form mx_redis_parse_url reads
 * back. Returns 0, or MX_ETOOBIG when it does not fit cap. Pure. */
int mx_redis_url_format(char *out, size_t cap, const char *user, const char *password,
                        const char *host, int port);

/* ---- mysql:// ---- */

#define MX_MYSQL_USER_MAX 80
#define MX_MYSQL_PASS_MAX 128
#define MX_MYSQL_HOST_MAX 255
#define MX_MYSQL_DB_MAX 64

/* A parsed mysql://user[:password]@host:port/database URL. */
struct mx_mysql_url {
    char user[MX_MYSQL_USER_MAX + 1];
    char password[MX_MYSQL_PASS_MAX + 1]; /* "" = none */
    char host[MX_MYSQL_HOST_MAX + 1];
    int port; /* 1-65535 */
    char database[MX_MYSQL_DB_MAX + 1];
};

/* mx_mysql_url_parse - parse and validate url into out. User, host, port
 * and database are required; the password is optional; user and password
 * may use %XX escapes (so '@', ':' and '/' can appear in them); the
 * database name is [A-Za-z0-9_$]. Returns 0, or MX_ECONFIG with the reason
 * in err (the password is never written there). Any thread. */
int mx_mysql_url_parse(const char *url, struct mx_mysql_url *out, char *err, size_t errlen);

/* ---- http:// and https:// ---- */

/* mx_http_url_error - NULL if url is http(s)://host[:port][/path] (plus a
 * ?query when allow_query) that curl accepts, at most MX_URL_MAX bytes, with
 * no fragment, space or control character; else a static phrase. Pure. */
const char *mx_http_url_error(const char *url, bool allow_query);

#endif
