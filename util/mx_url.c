/* mx_url.c - see mx_url.h. libcurl's URL API judges hosts and ports; this
 * file splits what curl cannot (the login at the last '@', a list of
 * sentinels) and checks what each scheme puts after host:port. */
#include "mx_url.h"

#include <ctype.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mx_alloc.h"
#include "mx_err.h"

#define FAIL(phrase)                                                                               \
    do {                                                                                           \
        if (why)                                                                                   \
            *why = (phrase);                                                                       \
        return MX_EINVAL;                                                                          \
    } while (0)

static const char *const BAD_V6 = "has a bad [IPv6]:port";
static const char *const BAD_HOST_CHAR = "host has a bad character";

static bool name_char(char c)
{
    return isalnum((unsigned char)c) || c == '.' || c == '-' || c == '_';
}

static int copy_str(char *dst, size_t cap, const char *s)
{
    size_t n = strlen(s);
    if (!dst)
        return 0;
    if (n + 1 > cap)
        return MX_EINVAL;
    memcpy(dst, s, n + 1);
    return 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

long mx_url_unescape(const char *s, size_t n, bool plus_space, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (ch == '%') {
            int hi = i + 2 < n ? hexval(s[i + 1]) : -1, lo = i + 2 < n ? hexval(s[i + 2]) : -1;
            if (hi < 0 || lo < 0 || hi + lo == 0)
                return -1;
            ch = (char)(hi << 4 | lo);
            i += 2;
        } else if (ch == '+' && plus_space) {
            ch = ' ';
        } else if (ch == '\0') {
            return -1;
        }
        if (o == cap)
            return -2;
        out[o++] = ch;
    }
    return (long)o;
}

/* [s, s+n) into out (cap bytes with the NUL), %XX decoded when decode;
 * -1 on a bad or %00 escape, -2 when too long */
static int login_part(const char *s, size_t n, bool decode, char *out, size_t cap)
{
    long o;
    if (decode) {
        o = mx_url_unescape(s, n, false, out, cap - 1);
    } else {
        o = n < cap ? (long)n : -2;
        if (o >= 0)
            memcpy(out, s, n);
    }
    if (o < 0)
        return (int)o;
    out[o] = '\0';
    return 0;
}

/* login = [p, at): user[:password] */
static int split_login(const char *p, const char *at, bool decode, struct mx_url *out,
                       const char **why)
{
    const char *colon = memchr(p, ':', (size_t)(at - p));
    int r = login_part(p, (size_t)((colon ? colon : at) - p), decode, out->user, sizeof(out->user));
    if (r)
        FAIL(r == -2 ? "user is too long" : "user is badly escaped");
    if (colon) {
        r = login_part(colon + 1, (size_t)(at - colon - 1), decode, out->password,
                       sizeof(out->password));
        if (r)
            FAIL(r == -2 ? "password is too long" : "password is badly escaped");
    }
    out->has_login = true;
    out->has_password = colon != NULL;
    return 0;
}

static const char *curl_phrase(CURLUcode rc, bool v6)
{
    switch (rc) {
    case CURLUE_OUT_OF_MEMORY:
        mx_oom(0);
    case CURLUE_BAD_IPV6:
        return BAD_V6;
    case CURLUE_BAD_PORT_NUMBER:
        return "port must be 1-65535";
    case CURLUE_NO_HOST:
        return "has an empty host";
    case CURLUE_BAD_HOSTNAME:
        return v6 ? BAD_V6 : BAD_HOST_CHAR;
    default:
        return v6 ? BAD_V6 : "is malformed";
    }
}

/* curl's host, brackets stripped, held to the characters mx accepts */
static const char *check_host(const char *h, bool v6, char *host, size_t cap)
{
    size_t n = strlen(h);
    if (h[0] == '[') {
        if (!v6 || n < 3 || h[n - 1] != ']')
            return BAD_V6;
        h++;
        n -= 2;
    } else if (v6) {
        return BAD_V6;
    }
    for (size_t i = 0; i < n; i++)
        if (!(v6 ? isxdigit((unsigned char)h[i]) || h[i] == ':' || h[i] == '.' : name_char(h[i])))
            return BAD_HOST_CHAR;
    if (n + 1 > cap)
        return "host is too long";
    memcpy(host, h, n);
    host[n] = '\0';
    return NULL;
}

int mx_url_hostport(const char *s, size_t n, bool any_port, char *host, size_t host_cap, int *port,
                    const char **why)
{
    if (n == 0 || s[0] == ':')
        FAIL("has an empty host");
    if (n > 300)
        FAIL("host is too long");
    bool v6 = s[0] == '[';
    if (v6 && !memchr(s, ']', n))
        FAIL(BAD_V6);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x7f || strchr("/?#@%,", s[i]))
            FAIL(BAD_HOST_CHAR); /* no escapes, zone ids, or a second URL part */
    if (s[n - 1] == ':')
        FAIL("has an empty port");
    char buf[320];
    snprintf(buf, sizeof buf, "mx://%.*s/", (int)n, s);
    CURLU *u = curl_url();
    if (!u)
        mx_oom(0);
    char *h = NULL, *p = NULL;
    const char *bad = NULL;
    CURLUcode rc = curl_url_set(u, CURLUPART_URL, buf, CURLU_NON_SUPPORT_SCHEME);
    if (rc == CURLUE_OK)
        rc = curl_url_get(u, CURLUPART_HOST, &h, 0);
    if (rc != CURLUE_OK)
        bad = curl_phrase(rc, v6);
    else if ((bad = check_host(h, v6, host, host_cap)) == NULL) {
        rc = curl_url_get(u, CURLUPART_PORT, &p, 0);
        long pn = rc == CURLUE_OK ? strtol(p, NULL, 10) : -1;
        if (rc == CURLUE_NO_PORT)
            bad = "has no :port";
        else if (rc != CURLUE_OK)
            bad = curl_phrase(rc, v6);
        else if (pn < (any_port ? 0 : 1) || pn > 65535)
            bad = any_port ? "port must be 0-65535" : "port must be 1-65535";
        else if (port)
            *port = (int)pn;
    }
    curl_free(h);
    curl_free(p);
    curl_url_cleanup(u);
    if (bad)
        FAIL(bad);
    return 0;
}

int mx_url_parse(const char *url, const char *scheme, bool decode, struct mx_url *out,
                 const char **why)
{
    memset(out, 0, sizeof(*out));
    if (!url || !url[0])
        FAIL("is empty");
    size_t sl = strlen(scheme);
    if (strlen(url) > MX_URL_MAX)
        FAIL("is longer than 1024 bytes");
    if (strncmp(url, scheme, sl) != 0 || strncmp(url + sl, "://", 3) != 0)
        FAIL("has the wrong scheme");
    const char *p = url + sl + 3, *at = strrchr(p, '@');
    if (at) {
        int rc = split_login(p, at, decode, out, why);
        if (rc)
            return rc;
        p = at + 1;
    }
    size_t hn = strcspn(p, "/?#");
    int rc = mx_url_hostport(p, hn, false, out->host, sizeof(out->host), &out->port, why);
    if (rc)
        return rc;
    for (const char *c = p + hn; *c; c++)
        if ((unsigned char)*c <= ' ' || (unsigned char)*c >= 0x7f)
            FAIL("has a space or control character");
    snprintf(out->rest, sizeof out->rest, "%s", p + hn);
    return 0;
}

/* ---- redis:// and redis-sentinel:// ---- */

/* "/db" or "" into *db (0-15) */
static const char *redis_db(const char *s, int *db)
{
    *db = 0;
    if (!*s)
        return NULL;
    if (*s != '/' || !s[1] || strlen(s) > 10)
        return "database must be /0 to /15, and nothing after it";
    int v = 0;
    for (const char *c = s + 1; *c; c++) {
        if (!isdigit((unsigned char)*c))
            return "database must be /0 to /15, and nothing after it";
        v = v * 10 + (*c - '0');
    }
    if (v > 15)
        return "database must be /0 to /15, and nothing after it";
    *db = v;
    return NULL;
}

static const char *redis_parse(const char *url, struct mx_url *u, int *db)
{
    const char *why = NULL;
    if (!url || strncmp(url, "redis://", 8) != 0)
        return "must start with redis:// or redis-sentinel://";
    if (strlen(url) > MX_REDIS_URL_MAX)
        return "is longer than 512 bytes";
    if (mx_url_parse(url, "redis", false, u, &why) != 0)
        return why;
    if (u->has_login && !u->has_password)
        return "has a login without ':' (the form is [user]:password@)";
    return redis_db(u->rest, db);
}

int mx_redis_parse_url(const char *url, char *host, size_t host_cap, int *port, char *user,
                       size_t user_cap, char *password, size_t pass_cap, int *db)
{
    struct mx_url u;
    int dbn;
    if (redis_parse(url, &u, &dbn) != NULL)
        return MX_EINVAL;
    if (copy_str(host, host_cap, u.host) || copy_str(user, user_cap, u.user) ||
        copy_str(password, pass_cap, u.password))
        return MX_EINVAL;
    if (port)
        *port = u.port;
    if (db)
        *db = dbn;
    return 0;
}

static const char *sentinel_parse(const char *url, struct mx_redis_sentinel_url *o)
{
    const char *why = NULL;
    memset(o, 0, sizeof(*o));
    if (!url || strncmp(url, "redis-sentinel://", 17) != 0)
        return "must start with redis:// or redis-sentinel://";
    if (strlen(url) > MX_REDIS_URL_MAX)
        return "is longer than 512 bytes";
    const char *p = url + 17, *at = strrchr(p, '@');
    if (at) {
        struct mx_url login = {0};
        if (split_login(p, at, false, &login, &why) != 0)
            return why;
        if (!login.has_password)
            return "has a login without ':' (the form is [user]:password@)";
        if (copy_str(o->user, sizeof o->user, login.user) ||
            copy_str(o->password, sizeof o->password, login.password))
            return "login is too long";
        p = at + 1;
    }
    const char *slash = strchr(p, '/');
    if (!slash)
        return "has no /MASTER_NAME";
    /* host:port[,host:port...] up to the slash; each checked as redis:// is */
    for (;;) {
        const char *comma = memchr(p, ',', (size_t)(slash - p));
        const char *end = comma ? comma : slash;
        if (o->n == MX_REDIS_MAX_SENTINELS)
            return "names more than 16 sentinels";
        if (mx_url_hostport(p, (size_t)(end - p), false, o->host[o->n], sizeof(o->host[0]),
                            &o->port[o->n], &why) != 0)
            return why;
        o->n++;
        if (!comma)
            break;
        p = comma + 1;
    }
    const char *name = slash + 1, *ne = strchr(name, '/');
    size_t nl = ne ? (size_t)(ne - name) : strlen(name);
    if (nl == 0 || nl >= sizeof(o->master))
        return "MASTER_NAME must be 1-127 characters";
    for (size_t i = 0; i < nl; i++)
        if (!name_char(name[i]))
            return "MASTER_NAME may hold only letters, digits, '.', '-' and '_'";
    memcpy(o->master, name, nl);
    return redis_db(ne ? ne : "", &o->db);
}

int mx_redis_parse_sentinel_url(const char *url, struct mx_redis_sentinel_url *o)
{
    if (!o)
        return MX_EINVAL;
    return sentinel_parse(url, o) ? MX_EINVAL : 0;
}

const char *mx_redis_url_error(const char *url)
{
    if (url && strncmp(url, "redis-sentinel://", 17) == 0) {
        struct mx_redis_sentinel_url *u = xcalloc(1, sizeof(*u));
        const char *why = sentinel_parse(url, u);
        free(u);
        return why;
    }
    struct mx_url u;
    int db;
    return redis_parse(url, &u, &db);
}

bool mx_redis_url_valid(const char *url)
{
    return mx_redis_url_error(url) == NULL;
}

int mx_redis_url_format(char *out, size_t cap, const char *user, const char *password,
                        const char *host, int port)
{
    bool v6 = strchr(host, ':') != NULL;
    int n = password && password[0]
                ? snprintf(out, cap, "redis://%s:%s@%s%s%s:%d", user ? user : "", password,
                           v6 ? "[" : "", host, v6 ? "]" : "", port)
                : snprintf(out, cap, "redis://%s%s%s:%d", v6 ? "[" : "", host, v6 ? "]" : "", port);
    return n < 0 || (size_t)n >= cap ? MX_ETOOBIG : 0;
}

/* ---- mysql:// ---- */

#define MYSQL_FORM "mysql://user[:password]@host:port/database"

int mx_mysql_url_parse(const char *url, struct mx_mysql_url *out, char *err, size_t errlen)
{
    struct mx_url u;
    const char *why = NULL;
    memset(out, 0, sizeof(*out));
    if (!url || strncmp(url, "mysql://", 8) != 0)
        why = "must start with mysql://";
    else if (mx_url_parse(url, "mysql", true, &u, &why) != 0)
        ;
    else if (!u.has_login)
        why = "has no user@";
    else if (!u.user[0])
        why = "has an empty user";
    else if (strlen(u.user) > MX_MYSQL_USER_MAX)
        why = "user is too long";
    else if (strlen(u.password) > MX_MYSQL_PASS_MAX)
        why = "password is too long";
    else if (strlen(u.host) > MX_MYSQL_HOST_MAX)
        why = "host is too long";
    else if (u.rest[0] != '/')
        why = "has no /database";
    else if (!u.rest[1])
        why = "has an empty database";
    else if (strlen(u.rest + 1) > MX_MYSQL_DB_MAX)
        why = "database name is longer than 64";
    else
        for (const char *c = u.rest + 1; *c && !why; c++)
            if (!(isalnum((unsigned char)*c) || *c == '_' || *c == '$'))
                why = "database name may hold only [A-Za-z0-9_$] (no options or paths)";
    if (why) {
        if (err && errlen)
            snprintf(err, errlen, "mysql URL %s (" MYSQL_FORM ")", why);
        memset(&u, 0, sizeof u); /* no password left on the stack */
        return MX_ECONFIG;
    }
    memcpy(out->user, u.user, strlen(u.user) + 1);
    memcpy(out->password, u.password, strlen(u.password) + 1);
    memcpy(out->host, u.host, strlen(u.host) + 1);
    memcpy(out->database, u.rest + 1, strlen(u.rest + 1) + 1);
    out->port = u.port;
    memset(&u, 0, sizeof u);
    return 0;
}

/* ---- http:// and https:// ---- */

const char *mx_http_url_error(const char *url, bool allow_query)
{
    size_t n = url ? strlen(url) : 0;
    if (n == 0)
        return "is empty";
    if (n > MX_URL_MAX)
        return "is longer than 1024 bytes";
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)url[i] <= ' ' || (unsigned char)url[i] >= 0x7f)
            return "has a space or control character";
    if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
        return "must start with http:// or https://";
    if (strchr(url, '#'))
        return "has a #fragment";
    if (!allow_query && strchr(url, '?'))
        return "has a ?query";
    CURLU *u = curl_url();
    if (!u)
        mx_oom(0);
    char *h = NULL;
    CURLUcode rc = curl_url_set(u, CURLUPART_URL, url, 0);
    if (rc == CURLUE_OK)
        rc = curl_url_get(u, CURLUPART_HOST, &h, 0);
    char host[256];
    const char *why =
        rc != CURLUE_OK ? curl_phrase(rc, false) : check_host(h, h[0] == '[', host, sizeof host);
    curl_free(h);
    curl_url_cleanup(u);
    return why;
}
