/* test_mxctl_url.c - mxctl --cluster on a real redis-server that has an ACL
 * user and four databases: the redis:// URL is read by the one parser
 * (util/mx_url), so user:password is an ACL login (a password may hold '@'
 * and '/'), and a refused AUTH or SELECT stops mxctl with the reason
 * instead of going on to read the wrong database or fail later with
 * NOAUTH. The members hash lives only in database 3, so "clusters found:
 * other" proves both AUTH and SELECT worked.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "redisd.h"

static struct redisd g_redis;

static int mxctl(const char *url, char *out, size_t cap)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "%s/mxctl --timeout 2000 --cluster '%s' --cluster-name nope members 2>&1",
             getenv("MX_BIN_DIR"), url);
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    size_t len = fread(out, 1, cap - 1, p);
    out[len] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int setup(void **st)
{
    (void)st;
    if (redisd_start(&g_redis, "requirepass adminpw\n"
                               "databases 4\n"
                               "user app on >apppw ~* &* +@all\n"
                               "user ops on >p@ss/w:rd ~* &* +@all\n") != 0)
        return -1;
    redisContext *c = NULL;
    redisReply *r = redisd_kept_cmd(&c, &g_redis, "SELECT 3");
    bool ok = r && r->type == REDIS_REPLY_STATUS;
    freeReplyObject(r);
    r = ok ? redisd_kept_cmd(&c, &g_redis, "HSET mx:{other}:members n1 %s",
                             "{\"admin\":\"tcp://127.0.0.1:1\"}")
           : NULL;
    ok = r && r->type == REDIS_REPLY_INTEGER;
    freeReplyObject(r);
    if (c)
        redisFree(c);
    return ok ? 0 : -1;
}

static int teardown(void **st)
{
    (void)st;
    redisd_stop(&g_redis);
    return 0;
}

static void expect(const char *login, const char *db, int want_rc, const char *want_out,
                   const char *not_out)
{
    char url[512], out[8192];
    snprintf(url, sizeof url, "redis://%s127.0.0.1:%d%s", login, g_redis.port, db);
    int rc = mxctl(url, out, sizeof out);
    if (rc != want_rc || !strstr(out, want_out) || (not_out && strstr(out, not_out)))
        fail_msg("mxctl --cluster %s: exit %d (want %d), output:\n%s\nwant \"%s\"%s%s", url, rc,
                 want_rc, out, want_out, not_out ? ", not " : "", not_out ? not_out : "");
}

static void test_logins(void **st)
{
    (void)st;
    /* an ACL user with its password, and database 3 */
    expect("app:apppw@", "/3", 1, "clusters found: other", NULL);
    /* a password holding '@', '/' and ':' as written */
    expect("ops:p@ss/w:rd@", "/3", 1, "clusters found: other", NULL);
    /* the default user's password alone */
    expect(":adminpw@", "/3", 1, "clusters found: other", NULL);
    /* database 0 has no members hash at all */
    expect("app:apppw@", "", 1, "no cluster has any", "clusters found");
}

static void test_refusals(void **st)
{
    (void)st;
    /* a wrong password: AUTH's refusal, and nothing read after it */
    expect("app:wrong@", "/3", 1, "AUTH refused", "members");
    expect(":wrong@", "/3", 1, "AUTH refused", "members");
    /* database 5 of 4: SELECT's refusal, not database 0's answer */
    expect("app:apppw@", "/5", 1, "SELECT refused", "members");
    /* no password where one is needed: Redis says so on the first read */
    expect("", "/3", 1, "NOAUTH", "clusters found");
    /* URLs the parser refuses are usage errors naming the problem, and never
     * echo the password */
    expect("app@", "/3", 2, "login without ':'", "app@");
    expect("app:hunter2@", "/16", 2, "database must be", "hunter2");
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_logins),
                                       cmocka_unit_test(test_refusals)};
    return cmocka_run_group_tests(tests, setup, teardown);
}
