/* mx_config.h - settings from MX_* environment variables with command-line
 * flags over them.
 *
 * A program declares its settings in a table (name, flag, default, kind,
 * range, help). mx_config_load reads each one from its flag, else its
 * environment variable, else its default, and validates it by kind. The
 * first bad value stops loading with a message that names the setting, its
 * flag, what was expected and what was given. mx_config_help prints the
 * table with every default.
 */
#ifndef MX_CONFIG_H
#define MX_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum mx_setting_kind {
    MX_SET_INT,       /* integer in [min, max] */
    MX_SET_STR,       /* any string of length <= max (0 = 4096) */
    MX_SET_HOSTPORT,  /* host:port (port 0-65535), e.g. 127.0.0.1:8080 */
    MX_SET_NNG_URL,   /* tcp://host:port, ipc:///path or inproc://name */
    MX_SET_REDIS_URL, /* redis://[:password@]host:port[/db] */
    MX_SET_MYSQL_URL, /* mysql://user[:password]@host:port/database */
    MX_SET_HTTP_URL,  /* http:// or https:// URL */
    MX_SET_LEVEL,     /* debug, info, warn or error */
    MX_SET_SECRET,    /* empty, or at least min bytes; never printed */
    MX_SET_CIDRS,     /* comma-separated IPv4/IPv6 addresses or CIDR ranges */
    MX_SET_NAME,      /* 1-63 of [A-Za-z0-9._-] */
};

struct mx_setting {
    const char *env;  /* MX_SCHEDULERS */
    const char *flag; /* --schedulers */
    const char *def;  /* default value as text; "" = unset */
    enum mx_setting_kind kind;
    int64_t min, max; /* INT: range; SECRET: min length; STR: max length */
    const char *help;
};

struct mx_config {
    const struct mx_setting *tab;
    size_t n;
    const char **val;  /* value per setting (points into argv, environ or tab) */
    const char **from; /* "flag", "env" or "default" per setting */
    int64_t *num;      /* parsed value of INT settings */
};

/* mx_config_load - fill c from argv (argv[0] skipped), the environment and
 * the defaults of tab. Returns 0; MX_ECONFIG with a message in err (naming
 * the setting) on a bad value, unknown flag or missing flag value; 1 when
 * --help was given (nothing else is validated then). c is usable only after
 * 0; free it with mx_config_fini in every case. Main thread, at start. */
int mx_config_load(struct mx_config *c, const struct mx_setting *tab, size_t n, int argc,
                   char **argv, char *err, size_t errlen);

void mx_config_fini(struct mx_config *c);

/* mx_config_str - the value of the setting with environment name env
 * ("" when unset). Aborts on a name not in the table (a programming error). */
const char *mx_config_str(const struct mx_config *c, const char *env);

/* mx_config_int - the parsed value of an INT setting. */
int64_t mx_config_int(const struct mx_config *c, const char *env);

/* mx_config_help - print usage and every setting with its default to out. */
void mx_config_help(const struct mx_setting *tab, size_t n, const char *prog, const char *about,
                    FILE *out);

/* mx_config_validate - check one value against a setting; 0 or MX_ECONFIG
 * with the reason in err. */
int mx_config_validate(const struct mx_setting *s, const char *v, int64_t *num, char *err,
                       size_t errlen);

#endif
