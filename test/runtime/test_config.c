/* test_config.c - settings: precedence flag > env > default, and a bad
 * value of every kind names the setting. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "mx_config.h"
#include "mx_err.h"

static const struct mx_setting tab[] = {
    {"MX_T_INT", "--t-int", "4", MX_SET_INT, 1, 8, "an int"},
    {"MX_T_ADDR", "--t-addr", "127.0.0.1:8080", MX_SET_HOSTPORT, 0, 0, "addr"},
    {"MX_T_NNG", "--t-nng", "tcp://127.0.0.1:7100", MX_SET_NNG_URL, 0, 0, "nng"},
    {"MX_T_REDIS", "--t-redis", "redis://127.0.0.1:6379/0", MX_SET_REDIS_URL, 0, 0, "redis"},
    {"MX_T_MYSQL", "--t-mysql", "", MX_SET_MYSQL_URL, 0, 0, "mysql"},
    {"MX_T_SECRET", "--t-secret", "", MX_SET_SECRET, 32, 0, "secret"},
    {"MX_T_CIDRS", "--t-cidrs", "", MX_SET_CIDRS, 0, 0, "cidrs"},
    {"MX_T_LEVEL", "--t-level", "info", MX_SET_LEVEL, 0, 0, "level"},
};
#define N (sizeof(tab) / sizeof(tab[0]))

static int load(int argc, char **argv, struct mx_config *c, char *err)
{
    return mx_config_load(c, tab, N, argc, argv, err, 512);
}

static void test_precedence(void **st)
{
    struct mx_config c;
    char err[512];
    unsetenv("MX_T_INT");
    char *a0[] = {"prog"};
    assert_int_equal(load(1, a0, &c, err), 0);
    assert_int_equal(mx_config_int(&c, "MX_T_INT"), 4);
    mx_config_fini(&c);
    setenv("MX_T_INT", "6", 1);
    assert_int_equal(load(1, a0, &c, err), 0);
    assert_int_equal(mx_config_int(&c, "MX_T_INT"), 6);
    mx_config_fini(&c);
    char *a1[] = {"prog", "--t-int", "7", "--t-level=debug"};
    assert_int_equal(load(4, a1, &c, err), 0);
    assert_int_equal(mx_config_int(&c, "MX_T_INT"), 7);
    assert_string_equal(mx_config_str(&c, "MX_T_LEVEL"), "debug");
    mx_config_fini(&c);
    unsetenv("MX_T_INT");
    char *ah[] = {"prog", "--help"};
    assert_int_equal(load(2, ah, &c, err), 1);
    mx_config_fini(&c);
}

static void expect_bad(const char *flag, const char *value, const char *env_name)
{
    struct mx_config c;
    char err[512] = "";
    char *a[] = {"prog", (char *)flag, (char *)value};
    assert_int_equal(load(3, a, &c, err), MX_ECONFIG);
    if (!strstr(err, env_name))
        fail_msg("error for %s=%s does not name %s: %s", flag, value, env_name, err);
    mx_config_fini(&c);
}

static void test_bad_values(void **st)
{
    expect_bad("--t-int", "abc", "MX_T_INT");
    expect_bad("--t-int", "9", "MX_T_INT");
    expect_bad("--t-int", "", "MX_T_INT");
    expect_bad("--t-int", "3x", "MX_T_INT");
    expect_bad("--t-addr", "localhost", "MX_T_ADDR");
    expect_bad("--t-addr", "1.2.3.4:99999", "MX_T_ADDR");
    expect_bad("--t-nng", "udp://x:1", "MX_T_NNG");
    expect_bad("--t-redis", "http://h:1", "MX_T_REDIS");
    expect_bad("--t-redis", "redis://h:1/99", "MX_T_REDIS");
    expect_bad("--t-mysql", "mysql://h:3306/db", "MX_T_MYSQL");
    expect_bad("--t-mysql", "mysql://u@h:3306/", "MX_T_MYSQL");
    expect_bad("--t-secret", "short", "MX_T_SECRET");
    expect_bad("--t-cidrs", "10.0.0.0/8,banana", "MX_T_CIDRS");
    expect_bad("--t-cidrs", "10.0.0.0/33", "MX_T_CIDRS");
    expect_bad("--t-level", "loud", "MX_T_LEVEL");
}

static void test_good_values(void **st)
{
    struct mx_config c;
    char err[512];
    char *a[] = {"prog",
                 "--t-redis",
                 "redis://:pw@127.0.0.1:6380/2",
                 "--t-mysql",
                 "mysql://mx:pw@127.0.0.1:3306/mx",
                 "--t-cidrs",
                 "10.0.0.0/8, ::1,192.168.1.1",
                 "--t-addr",
                 "[::1]:80",
                 "--t-nng",
                 "ipc:///tmp/mx.sock"};
    if (load(11, a, &c, err) != 0)
        fail_msg("%s", err);
    mx_config_fini(&c);
}

static void test_unknown_flag(void **st)
{
    struct mx_config c;
    char err[512];
    char *a[] = {"prog", "--nope", "1"};
    assert_int_equal(load(3, a, &c, err), MX_ECONFIG);
    assert_non_null(strstr(err, "--nope"));
    mx_config_fini(&c);
    char *b[] = {"prog", "--t-int"};
    assert_int_equal(load(2, b, &c, err), MX_ECONFIG);
    assert_non_null(strstr(err, "MX_T_INT"));
    mx_config_fini(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_bad_values),
        cmocka_unit_test(test_good_values),
        cmocka_unit_test(test_unknown_flag),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
