/* mx_config.c - table-driven settings from flags, environment, defaults. */
#include "mx_config.h"
#include "mx_url.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdbool.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mx_err.h"

/* host:port or [v6]:port, port 0-65535 (a listener may ask for any) */
static bool valid_hostport(const char *v, size_t n)
{
    char host[256];
    return mx_url_hostport(v, n, true, host, sizeof host, NULL, NULL) == 0;
}

static bool valid_cidr(const char *s, size_t n)
{
    char buf[64];
    if (n == 0 || n >= sizeof(buf))
        return false;
    memcpy(buf, s, n);
    buf[n] = '\0';
    char *slash = strchr(buf, '/');
    long bits = -1;
    if (slash) {
        *slash = '\0';
        char *end;
        errno = 0;
        bits = strtol(slash + 1, &end, 10);
        if (errno || *end || end == slash + 1 || bits < 0)
            return false;
    }
    unsigned char addr[16];
    if (inet_pton(AF_INET, buf, addr) == 1)
        return bits <= 32;
    if (inet_pton(AF_INET6, buf, addr) == 1)
        return bits <= 128;
    return false;
}

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        snprintf(err, errlen, __VA_ARGS__);                                                        \
        return MX_ECONFIG;                                                                         \
    } while (0)

int mx_config_validate(const struct mx_setting *s, const char *v, int64_t *num, char *err,
                       size_t errlen)
{
    size_t n = strlen(v);
    const char *who = s->env;
    switch (s->kind) {
    case MX_SET_INT: {
        char *end;
        errno = 0;
        long long x = strtoll(v, &end, 10);
        if (n == 0 || *end || errno || x < s->min || x > s->max)
            FAIL("%s (%s): expected an integer from %lld to %lld, got '%s'", who, s->flag,
                 (long long)s->min, (long long)s->max, v);
        if (num)
            *num = x;
        return 0;
    }
    case MX_SET_STR:
        if (n > (size_t)(s->max ? s->max : 4096))
            FAIL("%s (%s): longer than %lld bytes", who, s->flag,
                 (long long)(s->max ? s->max : 4096));
        return 0;
    case MX_SET_NAME:
        if (n == 0 || n > 63)
            FAIL("%s (%s): expected 1-63 characters, got '%s'", who, s->flag, v);
        for (size_t i = 0; i < n; i++)
            if (!(isalnum((unsigned char)v[i]) || v[i] == '.' || v[i] == '-' || v[i] == '_'))
                FAIL("%s (%s): only letters, digits, '.', '-' and '_' are allowed, got '%s'", who,
                     s->flag, v);
        return 0;
    case MX_SET_HOSTPORT:
        if (!valid_hostport(v, n))
            FAIL("%s (%s): expected host:port (port 0-65535), got '%s'", who, s->flag, v);
        return 0;
    case MX_SET_NNG_URL:
        if (strncmp(v, "tcp://", 6) == 0 && valid_hostport(v + 6, n - 6))
            return 0;
        if ((strncmp(v, "ipc://", 6) == 0 && n > 6) || (strncmp(v, "inproc://", 9) == 0 && n > 9))
            return 0;
        FAIL("%s (%s): expected tcp://host:port, ipc:///path or inproc://name, got '%s'", who,
             s->flag, v);
    case MX_SET_REDIS_URL: {
        const char *why = n ? mx_redis_url_error(v) : NULL;
        if (why)
            FAIL("%s (%s): the URL %s; expected redis://[[user]:password@]host:port[/db] or "
                 "redis-sentinel://[[user]:password@]host:port[,host:port...]/MASTER_NAME[/db] "
                 "(at most 16 sentinels, db 0-15)",
                 who, s->flag, why);
        return 0;
    }
    case MX_SET_MYSQL_URL: {
        struct mx_mysql_url u;
        char why[200];
        int rc = n ? mx_mysql_url_parse(v, &u, why, sizeof why) : 0;
        memset(&u, 0, sizeof u); /* only the check was wanted */
        if (rc)
            FAIL("%s (%s): %s", who, s->flag, why);
        return 0;
    }
    case MX_SET_HTTP_URL: {
        const char *why = mx_http_url_error(v, true);
        if (why)
            FAIL("%s (%s): the URL %s; expected an http:// or https:// URL", who, s->flag, why);
        return 0;
    }
    case MX_SET_LEVEL:
        if (!strcmp(v, "debug") || !strcmp(v, "info") || !strcmp(v, "warn") || !strcmp(v, "error"))
            return 0;
        FAIL("%s (%s): expected debug, info, warn or error, got '%s'", who, s->flag, v);
    case MX_SET_SECRET:
        if (n > 0 && n < (size_t)s->min)
            FAIL("%s (%s): must be at least %lld bytes (got %zu)", who, s->flag, (long long)s->min,
                 n);
        return 0;
    case MX_SET_CIDRS: {
        const char *p = v;
        while (*p) {
            const char *e = strchr(p, ',');
            size_t l = e ? (size_t)(e - p) : strlen(p);
            while (l && *p == ' ') {
                p++;
                l--;
            }
            if (!valid_cidr(p, l))
                FAIL("%s (%s): '%.*s' is not an IP address or CIDR range", who, s->flag, (int)l, p);
            p += l;
            if (*p == ',')
                p++;
        }
        return 0;
    }
    }
    FAIL("%s: unknown setting kind", who);
}

static int find_flag(const struct mx_setting *tab, size_t n, const char *arg, size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (strlen(tab[i].flag) == len && strncmp(tab[i].flag, arg, len) == 0)
            return (int)i;
    return -1;
}

int mx_config_load(struct mx_config *c, const struct mx_setting *tab, size_t n, int argc,
                   char **argv, char *err, size_t errlen)
{
    memset(c, 0, sizeof(*c));
    c->tab = tab;
    c->n = n;
    c->val = calloc(n, sizeof(*c->val));
    c->from = calloc(n, sizeof(*c->from));
    c->num = calloc(n, sizeof(*c->num));
    if (!c->val || !c->from || !c->num)
        FAIL("out of memory");
    for (size_t i = 0; i < n; i++) {
        const char *e = getenv(tab[i].env);
        c->val[i] = e ? e : tab[i].def;
        c->from[i] = e ? "env" : "default";
    }
    for (int a = 1; a < argc; a++) {
        const char *arg = argv[a];
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h"))
            return 1;
        if (strncmp(arg, "--", 2) != 0)
            FAIL("unexpected argument '%s' (settings are --flag VALUE; see --help)", arg);
        const char *eq = strchr(arg, '=');
        size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
        int i = find_flag(tab, n, arg, len);
        if (i < 0)
            FAIL("unknown flag '%.*s' (see --help)", (int)len, arg);
        if (eq) {
            c->val[i] = eq + 1;
        } else {
            if (a + 1 >= argc)
                FAIL("%s (%s): the flag needs a value", tab[i].env, tab[i].flag);
            c->val[i] = argv[++a];
        }
        c->from[i] = "flag";
    }
    for (size_t i = 0; i < n; i++) {
        if (tab[i].kind != MX_SET_INT && !c->val[i][0])
            continue; /* unset optional string */
        if (mx_config_validate(&tab[i], c->val[i], &c->num[i], err, errlen) != 0)
            return MX_ECONFIG;
    }
    return 0;
}

void mx_config_fini(struct mx_config *c)
{
    free(c->val);
    free(c->from);
    free(c->num);
    memset(c, 0, sizeof(*c));
}

static size_t index_of(const struct mx_config *c, const char *env)
{
    for (size_t i = 0; i < c->n; i++)
        if (!strcmp(c->tab[i].env, env))
            return i;
    fprintf(stderr, "mx: setting %s is not declared\n", env);
    abort();
}

const char *mx_config_str(const struct mx_config *c, const char *env)
{
    return c->val[index_of(c, env)];
}

int64_t mx_config_int(const struct mx_config *c, const char *env)
{
    return c->num[index_of(c, env)];
}

void mx_config_help(const struct mx_setting *tab, size_t n, const char *prog, const char *about,
                    FILE *out)
{
    fprintf(out, "usage: %s [--flag VALUE]...\n%s\n\n", prog, about);
    fprintf(out, "Every setting is read from its flag, else its environment variable, else its "
                 "default.\n\n");
    for (size_t i = 0; i < n; i++) {
        const struct mx_setting *s = &tab[i];
        const char *def = s->def[0] ? s->def : "(unset)";
        if (s->kind == MX_SET_SECRET && s->def[0])
            def = "(set)";
        fprintf(out, "  %-22s %-24s %s\n  %-22s %-24s default: %s\n", s->flag, s->env, s->help, "",
                "", def);
        if (s->kind == MX_SET_INT)
            fprintf(out, "  %-22s %-24s range: %lld-%lld\n", "", "", (long long)s->min,
                    (long long)s->max);
    }
}
