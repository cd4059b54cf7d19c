/* test_url.c - util/mx_url: every setting that names a URL agrees on what a
 * host, a port, a login and trailing text are, because one parser (on
 * libcurl's curl_url) serves redis://, redis-sentinel://, mysql://, http(s)://
 * and host:port settings. Hostile inputs: overlong, bad ports, IPv6
 * brackets, %-escapes, empty hosts, trailing garbage, control characters.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mx_config.h"
#include "mx_err.h"
#include "mx_tls.h"
#include "mx_url.h"

static const struct mx_setting redis_set = {"MX_T_REDIS", "--t-redis", "", MX_SET_REDIS_URL, 0, 0,
                                            "redis"};
static const struct mx_setting mysql_set = {"MX_T_MYSQL", "--t-mysql", "", MX_SET_MYSQL_URL, 0, 0,
                                            "mysql"};
static const struct mx_setting http_set = {"MX_T_HTTP", "--t-http", "",    MX_SET_HTTP_URL,
                                           0,           0,          "http"};
static const struct mx_setting addr_set = {"MX_T_ADDR", "--t-addr", "",    MX_SET_HOSTPORT,
                                           0,           0,          "addr"};

static bool config_ok(const struct mx_setting *s, const char *v, char *err, size_t cap)
{
    err[0] = '\0';
    return mx_config_validate(s, v, NULL, err, cap) == 0;
}

/* What each reader of a redis:// URL says about it: the client's parser,
 * the validity check and the configuration must agree. */
static bool redis_says(const char *url)
{
    char host[256], user[128], pw[256], err[512];
    int port, db;
    bool parsed = mx_redis_parse_url(url, host, sizeof host, &port, user, sizeof user, pw,
                                     sizeof pw, &db) == 0;
    bool valid = mx_redis_url_valid(url);
    bool config = config_ok(&redis_set, url, err, sizeof err);
    if (parsed != valid || parsed != config)
        fail_msg("%s: parse %d, valid %d, config %d (%s)", url, parsed, valid, config, err);
    return parsed;
}

static bool sentinel_says(const char *url)
{
    struct mx_redis_sentinel_url u;
    char err[512];
    bool parsed = mx_redis_parse_sentinel_url(url, &u) == 0;
    bool config = config_ok(&redis_set, url, err, sizeof err);
    if (parsed != mx_redis_url_valid(url) || parsed != config)
        fail_msg("%s: parse %d, config %d (%s)", url, parsed, config, err);
    return parsed;
}

static bool mysql_says(const char *url)
{
    struct mx_mysql_url u;
    char err[512], cerr[512];
    bool parsed = mx_mysql_url_parse(url, &u, err, sizeof err) == 0;
    bool config = config_ok(&mysql_set, url, cerr, sizeof cerr);
    if (parsed != config)
        fail_msg("%s: parse %d (%s), config %d (%s)", url, parsed, err, config, cerr);
    return parsed;
}

/* one host:port, judged the same way in every scheme */
static void test_hostport_everywhere(void **st)
{
    (void)st;
    static const struct {
        const char *hp;
        bool ok;
    } cases[] = {
        {"h:1", true},
        {"a-b.c_d:65535", true},
        {"127.0.0.1:6379", true},
        {"[::1]:6380", true},
        {"[2001:db8::1]:1", true},
        {"[::ffff:10.0.0.1]:2", true},
        {"h:0", false}, /* 0 only for a listener (MX_SET_HOSTPORT) */
        {"h:65536", false},
        {"h:99999999999999999999", false},
        {"h:-1", false},
        {"h:+1", false},
        {"h:1x", false},
        {"h:", false},
        {"h", false},
        {":1", false},
        {"", false},
        {"[::1]", false},
        {"[::1:1", false},
        {"::1:1", false},
        {"[foo]:1", false},
        {"[fe80::1%25eth0]:1", false}, /* no zone ids */
        {"h%41:1", false},             /* no escapes in hosts */
        {"ho st:1", false},
        {"h\t:1", false},
        {"h~:1", false},
        {"h,g:1", false},
        {"\xc3\xbc:1", false},
    };
    /* where the host:port goes in each scheme, and who reads it */
    static const struct {
        const char *fmt;
        bool (*says)(const char *url);
    } forms[] = {
        {"redis://%s/1", redis_says},
        {"redis-sentinel://%s/m/1", sentinel_says},
        {"redis-sentinel://h:1,%s/m", sentinel_says},
        {"mysql://u@%s/d", mysql_says},
    };
    char url[600];
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const char *hp = cases[i].hp;
        bool want = cases[i].ok;
        for (size_t k = 0; k < sizeof forms / sizeof *forms; k++) {
            snprintf(url, sizeof url, forms[k].fmt, hp);
            if (forms[k].says(url) != want)
                fail_msg("%s: want %s", url, want ? "accepted" : "refused");
        }
        char host[256], err[512];
        int port;
        bool hp_ok = mx_url_hostport(hp, strlen(hp), false, host, sizeof host, &port, NULL) == 0;
        if (hp_ok != want)
            fail_msg("hostport: %s: want %s", hp, want ? "accepted" : "refused");
        /* a listener address may also name port 0; nothing else differs */
        bool addr_ok = config_ok(&addr_set, hp, err, sizeof err);
        if (addr_ok != (want || strcmp(hp, "h:0") == 0))
            fail_msg("MX_SET_HOSTPORT: %s: got %d (%s)", hp, addr_ok, err);
    }
}

/* mx_redis_parse_url's parts in one place, for the tests below */
struct rparts {
    char host[64], user[32], pw[64];
    int port, db;
};

static int rparse(const char *url, struct rparts *p)
{
    memset(p, 0, sizeof *p);
    return mx_redis_parse_url(url, p->host, sizeof p->host, &p->port, p->user, sizeof p->user,
                              p->pw, sizeof p->pw, &p->db);
}

static void test_ipv6_and_normal_form(void **st)
{
    (void)st;
    struct rparts r;
    assert_int_equal(rparse("redis://[::0001]:6380/2", &r), 0);
    assert_string_equal(r.host, "::1");
    assert_int_equal(r.port, 6380);
    assert_int_equal(r.db, 2);
    struct mx_mysql_url m;
    char err[256];
    assert_int_equal(mx_mysql_url_parse("mysql://u@[2001:db8:0::1]:3306/d", &m, err, sizeof err),
                     0);
    assert_string_equal(m.host, "2001:db8::1");
    /* the sentinel resolver writes an IPv6 sentinel back as a URL: brackets */
    char url[MX_REDIS_URL_MAX];
    assert_int_equal(mx_redis_url_format(url, sizeof url, "app", "p@ss/w:rd", "::1", 26379), 0);
    assert_string_equal(url, "redis://app:p@ss/w:rd@[::1]:26379");
    assert_int_equal(rparse(url, &r), 0);
    assert_string_equal(r.host, "::1");
    assert_string_equal(r.user, "app");
    assert_string_equal(r.pw, "p@ss/w:rd");
    assert_int_equal(r.port, 26379);
    assert_int_equal(mx_redis_url_format(url, 10, NULL, "", "::1", 1), MX_ETOOBIG);
}

/* The login ends at the last '@'; Redis takes the password as written,
 * mysql:// decodes %XX (each as documented), strictly. */
static void test_logins(void **st)
{
    (void)st;
    struct rparts r;
    assert_int_equal(rparse("redis://:a@b/c%41@h:1/3", &r), 0);
    assert_string_equal(r.pw, "a@b/c%41");
    assert_string_equal(r.user, "");
    assert_string_equal(r.host, "h");
    assert_int_equal(r.db, 3);
    struct mx_redis_sentinel_url s;
    assert_int_equal(mx_redis_parse_sentinel_url("redis-sentinel://u:%zz@h:1/m", &s), 0);
    assert_string_equal(s.password, "%zz");
    struct mx_mysql_url m;
    char err[256];
    assert_int_equal(mx_mysql_url_parse("mysql://u%3A1:p%40s/s%25@h:1/d", &m, err, sizeof err), 0);
    assert_string_equal(m.user, "u:1");
    assert_string_equal(m.password, "p@s/s%");
    /* a raw '/' and '@' in a mysql password: the last '@' ends it too */
    assert_int_equal(mx_mysql_url_parse("mysql://u:p/@w@h:1/d", &m, err, sizeof err), 0);
    assert_string_equal(m.password, "p/@w");
    static const char *const bad_mysql[] = {"mysql://u:%@h:1/d", "mysql://u:%4@h:1/d",
                                            "mysql://u:%4g@h:1/d", "mysql://u:a%00@h:1/d",
                                            "mysql://%zz@h:1/d"};
    for (size_t i = 0; i < sizeof bad_mysql / sizeof *bad_mysql; i++) {
        if (mysql_says(bad_mysql[i]))
            fail_msg("accepted %s", bad_mysql[i]);
        mx_mysql_url_parse(bad_mysql[i], &m, err, sizeof err);
        assert_non_null(strstr(err, "badly escaped"));
    }
    /* a login without ':' is no Redis form; a user without a password is */
    assert_false(redis_says("redis://secret@h:1"));
    assert_false(sentinel_says("redis-sentinel://secret@h:1/m"));
    assert_true(redis_says("redis://app:@h:1"));
    /* no error quotes the password */
    const char *leaky[] = {"redis://:hunter2@h:0", "redis://:hunter2@h:1/99",
                           "redis-sentinel://:hunter2@h:1,/m", "mysql://u:hunter2@h:1/d?x",
                           "mysql://u:hunter2@[::1/d"};
    for (size_t i = 0; i < sizeof leaky / sizeof *leaky; i++) {
        char e[512];
        const struct mx_setting *set = leaky[i][0] == 'm' ? &mysql_set : &redis_set;
        assert_false(config_ok(set, leaky[i], e, sizeof e));
        if (strstr(e, "hunter2") || !strstr(e, set->env))
            fail_msg("%s: error '%s'", leaky[i], e);
    }
}

static void test_trailing_garbage(void **st)
{
    (void)st;
    static const char *const bad_redis[] = {
        "redis://h:1/0?x", "redis://h:1/0#f", "redis://h:1?x", "redis://h:1#f",   "redis://h:1/0/1",
        "redis://h:1/0 ",  "redis://h:1/0\n", "redis://h:1/",  "redis://h:1/00x", "redis://h:1/16",
        "redis://h:1/-0",  "redis://h:1//0",  "Redis://h:1",   "redis:/h:1",      "redis//h:1",
        "rediss://h:1",    "redis://",        "redis://@h:1",  "redis://u:p@:1",  "redis://h:1\r",
    };
    for (size_t i = 0; i < sizeof bad_redis / sizeof *bad_redis; i++)
        if (redis_says(bad_redis[i]))
            fail_msg("accepted %s", bad_redis[i]);
    static const char *const bad_sentinel[] = {
        "redis-sentinel://h:1/m?x",    "redis-sentinel://h:1/m#x", "redis-sentinel://h:1/m/0/",
        "redis-sentinel://h:1?x/m",    "redis-sentinel://h:1,/m",  "redis-sentinel://,h:1/m",
        "redis-sentinel://h:1,,h:2/m", "redis-sentinel://h:1/",    "redis-sentinel://h:1/m\t",
    };
    for (size_t i = 0; i < sizeof bad_sentinel / sizeof *bad_sentinel; i++)
        if (sentinel_says(bad_sentinel[i]))
            fail_msg("accepted %s", bad_sentinel[i]);
    static const char *const bad_mysql[] = {"mysql://u@h:1/d#x", "mysql://u@h:1/d?ssl=1",
                                            "mysql://u@h:1?x",   "mysql://u@h:1/d/",
                                            "mysql://u@h:1/d e", "mysql://u@h:1/d\n"};
    for (size_t i = 0; i < sizeof bad_mysql / sizeof *bad_mysql; i++)
        if (mysql_says(bad_mysql[i]))
            fail_msg("accepted %s", bad_mysql[i]);
    /* http(s): a query where the setting allows one, never a fragment */
    char err[512];
    assert_true(config_ok(&http_set, "https://open.api.nexon.com", err, sizeof err));
    assert_true(config_ok(&http_set, "http://[::1]:8080/hook?x=1", err, sizeof err));
    assert_null(mx_http_url_error("http://h:1/v1", false));
    assert_non_null(mx_http_url_error("http://h:1/v1?x=1", false));
    static const char *const bad_http[] = {
        "http://",      "http://h:65536/", "http://h /", "http://h/#frag", "ftp://h/",    "http:/h",
        "http://[::1/", "http://h:1x/",    "",           "http://h/\x7f",  "http://h%zz/"};
    for (size_t i = 0; i < sizeof bad_http / sizeof *bad_http; i++)
        if (config_ok(&http_set, bad_http[i], err, sizeof err) ||
            !mx_http_url_error(bad_http[i], true))
            fail_msg("accepted %s", bad_http[i]);
}

static void test_overlong(void **st)
{
    (void)st;
    char url[4096], host[64], name[400];
    int port;
    memset(name, 'a', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    /* 512 bytes is the most a Redis URL may be; 513 is refused everywhere */
    snprintf(url, sizeof url, "redis://:%0*d@h:1", MX_REDIS_URL_MAX - 13, 0);
    assert_int_equal(strlen(url), MX_REDIS_URL_MAX);
    assert_false(redis_says(url)); /* password longer than 255 bytes */
    snprintf(url, sizeof url, "redis://%.250s:1", name);
    assert_true(redis_says(url));
    snprintf(url, sizeof url, "redis://%0*d:1/0", MX_REDIS_URL_MAX - 11, 0);
    assert_int_equal(strlen(url), MX_REDIS_URL_MAX + 1);
    assert_false(redis_says(url));
    /* a caller's buffer too small is an error, never a cut */
    assert_int_equal(
        mx_redis_parse_url("redis://abcdefgh:1", host, 8, &port, NULL, 0, NULL, 0, NULL),
        MX_EINVAL);
    /* a sentinel host longer than its slot */
    snprintf(url, sizeof url, "redis-sentinel://%.80s:1/m", name);
    assert_false(sentinel_says(url));
    /* hosts, users, passwords and database names past their limits */
    snprintf(url, sizeof url, "mysql://u@%.300s:1/d", name);
    assert_false(mysql_says(url));
    snprintf(url, sizeof url, "mysql://%0*d@h:1/d", MX_MYSQL_USER_MAX + 1, 0);
    assert_false(mysql_says(url));
    snprintf(url, sizeof url, "mysql://u:%0*d@h:1/d", MX_MYSQL_PASS_MAX + 1, 0);
    assert_false(mysql_says(url));
    snprintf(url, sizeof url, "mysql://u@h:1/%0*d", MX_MYSQL_DB_MAX + 1, 0);
    assert_false(mysql_says(url));
    memset(url, 'a', sizeof url);
    memcpy(url, "http://h/", 9);
    url[MX_URL_MAX + 1] = '\0';
    assert_non_null(mx_http_url_error(url, true));
    url[MX_URL_MAX] = '\0';
    assert_null(mx_http_url_error(url, true));
    /* 17 sentinels */
    assert_false(sentinel_says("redis-sentinel://h:1,h:2,h:3,h:4,h:5,h:6,h:7,h:8,h:9,h:10,h:11,"
                               "h:12,h:13,h:14,h:15,h:16,h:17/m"));
    assert_true(sentinel_says("redis-sentinel://h:1,h:2,h:3,h:4,h:5,h:6,h:7,h:8,h:9,h:10,h:11,"
                              "h:12,h:13,h:14,h:15,h:16/m"));
    assert_false(mx_redis_url_valid(NULL));
    assert_int_equal(mx_redis_parse_url(NULL, host, sizeof host, &port, NULL, 0, NULL, 0, NULL),
                     MX_EINVAL);
}

/* the one percent-decoder (logins, HTTP paths and queries, mxstub) */
static void test_unescape(void **st)
{
    (void)st;
    char out[16];
    assert_int_equal(mx_url_unescape("a%20b+c%2B", 10, true, out, sizeof out), 6);
    assert_memory_equal(out, "a b c+", 6);
    assert_int_equal(mx_url_unescape("a+c", 3, false, out, sizeof out), 3);
    assert_memory_equal(out, "a+c", 3);
    assert_int_equal(mx_url_unescape("%e2%82%AC", 9, false, out, sizeof out), 3);
    assert_memory_equal(out, "\xe2\x82\xac", 3);
    static const char *const bad[] = {"%", "%a", "%zz", "%4g", "a%00b", "%0"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        if (mx_url_unescape(bad[i], strlen(bad[i]), false, out, sizeof out) != -1)
            fail_msg("accepted %s", bad[i]);
    assert_int_equal(mx_url_unescape("a\0b", 3, false, out, sizeof out), -1); /* raw NUL */
    assert_int_equal(mx_url_unescape("abcd", 4, false, out, 3), -2);
    assert_int_equal(mx_url_unescape("ab%41", 5, false, out, 3), 3);
    assert_int_equal(mx_url_unescape("", 0, false, out, 0), 0);
}

/* the admin's loopback check reads hosts with the same parser */
static void test_loopback(void **st)
{
    (void)st;
    static const char *const yes[] = {"tcp://127.0.0.1:7200", "tcp://127.1.2.3:0",
                                      "tls+tcp://[::1]:7200", "tcp://LOCALHOST:1",
                                      "ipc:///tmp/x",         "inproc://a"};
    static const char *const no[] = {"tcp://127.evil.example:7200",
                                     "tcp://0.0.0.0:7200",
                                     "tcp://[::]:1",
                                     "tcp://10.0.0.1:1",
                                     "tcp://127.0.0.1",
                                     "tcp://localhost.example:1",
                                     "127.0.0.1:1"};
    for (size_t i = 0; i < sizeof yes / sizeof *yes; i++)
        if (!mx_url_is_loopback(yes[i]))
            fail_msg("%s: not loopback", yes[i]);
    for (size_t i = 0; i < sizeof no / sizeof *no; i++)
        if (mx_url_is_loopback(no[i]))
            fail_msg("%s: loopback", no[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hostport_everywhere),
        cmocka_unit_test(test_ipv6_and_normal_form),
        cmocka_unit_test(test_logins),
        cmocka_unit_test(test_trailing_garbage),
        cmocka_unit_test(test_overlong),
        cmocka_unit_test(test_unescape),
        cmocka_unit_test(test_loopback),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
