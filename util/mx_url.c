/* mx_url.c - see mx_url.h. */
#include "mx_url.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mx_err.h"

static int copy_part(char *dst, size_t cap, const char *s, size_t n)
{
    if (!dst)
        return 0;
    if (n + 1 > cap)
        return MX_EINVAL;
    memcpy(dst, s, n);
    dst[n] = '\0';
    return 0;
}

int mx_redis_parse_url(const char *url, char *host, size_t host_cap, int *port, char *user,
                       size_t user_cap, char *password, size_t pass_cap, int *db)
{
    if (!url || strncmp(url, "redis://", 8) != 0 || strlen(url) > MX_REDIS_URL_MAX)
        return MX_EINVAL;
    const char *p = url + 8, *at = strrchr(p, '@');
    if (user)
        user[0] = '\0';
    if (password)
        password[0] = '\0';
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (!colon)
            return MX_EINVAL; /* user without password: not a Redis form */
        if (copy_part(user, user_cap, p, (size_t)(colon - p)) ||
            copy_part(password, pass_cap, colon + 1, (size_t)(at - colon - 1)))
            return MX_EINVAL;
        p = at + 1;
    }
    const char *hs = p, *he;
    if (*p == '[') {
        hs = p + 1;
        he = strchr(hs, ']');
        if (!he || he[1] != ':')
            return MX_EINVAL;
        p = he + 1;
    } else {
        he = strchr(p, ':');
        if (!he)
            return MX_EINVAL;
        p = he;
    }
    if (he == hs || copy_part(host, host_cap, hs, (size_t)(he - hs)))
        return MX_EINVAL;
    for (const char *c = hs; c < he; c++)
        if (!(isalnum((unsigned char)*c) || *c == '.' || *c == '-' || *c == ':' || *c == '_'))
            return MX_EINVAL;
    /* p at ':' */
    char *end;
    p++;
    if (!isdigit((unsigned char)*p))
        return MX_EINVAL;
    long pn = strtol(p, &end, 10);
    if (pn < 1 || pn > 65535 || (*end && *end != '/'))
        return MX_EINVAL;
    long dbn = 0;
    if (*end == '/') {
        const char *d = end + 1;
        if (!isdigit((unsigned char)*d))
            return MX_EINVAL;
        dbn = strtol(d, &end, 10);
        if (*end || dbn < 0 || dbn > 15)
            return MX_EINVAL;
    }
    if (port)
        *port = (int)pn;
    if (db)
        *db = (int)dbn;
    return 0;
}

static bool name_char(char c)
{
    return isalnum((unsigned char)c) || c == '.' || c == '-' || c == '_';
}

int mx_redis_parse_sentinel_url(const char *url, struct mx_redis_sentinel_url *o)
{
    if (!url || !o || strncmp(url, "redis-sentinel://", 17) != 0 || strlen(url) > MX_REDIS_URL_MAX)
        return MX_EINVAL;
    memset(o, 0, sizeof(*o));
    /* the password may hold '/' and '@': it ends at the last '@' (names,
     * hosts and the db cannot hold one) */
    const char *p = url + 17, *at = strrchr(p, '@');
    const char *slash = strchr(at ? at : p, '/');
    if (!slash)
        return MX_EINVAL; /* MASTER_NAME is required */
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (!colon || copy_part(o->user, sizeof(o->user), p, (size_t)(colon - p)) ||
            copy_part(o->password, sizeof(o->password), colon + 1, (size_t)(at - colon - 1)))
            return MX_EINVAL;
        p = at + 1;
    }
    /* host:port[,host:port...] up to the slash; each checked as redis:// would */
    while (p < slash) {
        const char *comma = memchr(p, ',', (size_t)(slash - p));
        const char *end = comma ? comma : slash;
        char one[300];
        if (o->n == MX_REDIS_MAX_SENTINELS || end - p < 3 || (size_t)(end - p) > 200)
            return MX_EINVAL;
        snprintf(one, sizeof(one), "redis://%.*s", (int)(end - p), p);
        if (mx_redis_parse_url(one, o->host[o->n], sizeof(o->host[0]), &o->port[o->n], NULL, 0,
                               NULL, 0, NULL) != 0 ||
            strchr(one + 8, '/'))
            return MX_EINVAL;
        o->n++;
        p = comma ? comma + 1 : slash;
        if (comma && p == slash)
            return MX_EINVAL; /* trailing comma */
    }
    if (o->n == 0)
        return MX_EINVAL;
    const char *name = slash + 1, *ne = strchr(name, '/');
    size_t nl = ne ? (size_t)(ne - name) : strlen(name);
    if (nl == 0 || copy_part(o->master, sizeof(o->master), name, nl))
        return MX_EINVAL;
    for (size_t i = 0; i < nl; i++)
        if (!name_char(name[i]))
            return MX_EINVAL;
    if (ne) {
        char *end;
        if (!isdigit((unsigned char)ne[1]))
            return MX_EINVAL;
        long db = strtol(ne + 1, &end, 10);
        if (*end || db < 0 || db > 15)
            return MX_EINVAL;
        o->db = (int)db;
    }
    return 0;
}

bool mx_redis_url_valid(const char *url)
{
    if (url && strncmp(url, "redis-sentinel://", 17) == 0) {
        struct mx_redis_sentinel_url *u = calloc(1, sizeof(*u));
        if (!u)
            return false;
        int rc = mx_redis_parse_sentinel_url(url, u);
        free(u);
        return rc == 0;
    }
    char host[256];
    return mx_redis_parse_url(url, host, sizeof(host), NULL, NULL, 0, NULL, 0, NULL) == 0;
}
