/* test_mxnode.c - the mxnode program: starts, logs its schedulers as JSON
 * lines, stops on SIGTERM and SIGINT with exit 0; a bad setting stops it at
 * start with exit 2 and a message naming the setting; --help lists every
 * setting with its default. Runs the real binary. */
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <cmocka.h>

#include "mx_testutil.h"
#include "support/mx_proc.h"
#include "mxnode_settings.h"

struct child {
    struct mx_proc proc; /* stdout on a pipe (out), stderr captured */
    pid_t pid;
    int out; /* proc.out */
};

/* in the child: the usual default soft limit of open files */
static void low_nofile(void *arg)
{
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max < 1024 ? rl.rlim_max : 1024;
    setrlimit(RLIMIT_NOFILE, &rl);
}

static void spawn_node(struct child *c, char *const argv[], char *const envp_extra[])
{
    /* what every node needs to start in a test: a free HTTP port, the
     * cube table from shared/, a secret, and no Redis on purpose */
    char cube[4096], path[4096];
    snprintf(cube, sizeof cube, "MX_CUBE_TABLE=%s/data/cube_probability_black.csv",
             getenv("MX_SHARED_DIR"));
    const char *env[] = {cube,
                         "MX_HTTP_ADDR=127.0.0.1:0",
                         "MX_JWT_SECRET=test-secret-test-secret-test-secret-0123",
                         "MX_REDIS_URL=redis://127.0.0.1:1/0",
                         "MX_NNG_ADDR=tcp://127.0.0.1:0",
                         "MX_ADMIN_ADDR=tcp://127.0.0.1:0",
                         NULL};
    bool low = false;
    for (int i = 0; envp_extra && envp_extra[i]; i++)
        low = low || !strncmp(envp_extra[i], "TEST_LOW_NOFILE=", 16);
    struct mx_proc_opts o = {.path = mx_proc_bin("mxnode", path, sizeof path),
                             .argv = (const char *const *)argv,
                             .env = env,
                             .env_more = (const char *const *)envp_extra,
                             .out = MX_PROC_PIPE,
                             .err = MX_PROC_CAPTURE,
                             .child_setup = low ? low_nofile : NULL};
    assert_int_equal(mx_proc_start(&c->proc, &o), 0);
    c->pid = c->proc.pid;
    c->out = c->proc.out;
}

/* Wait until the node's stderr contains needle (or timeout); its stderr so
 * far into buf. */
static char *err_until(struct child *c, const char *needle, int timeout_ms, char *buf, size_t cap)
{
    mx_proc_wait_log(&c->proc, needle, timeout_ms);
    mx_proc_log(&c->proc, buf, cap);
    return buf;
}

/* Read fd until it contains needle or timeout; returns what was read. */
static char *read_until(int fd, const char *needle, int timeout_ms, char *buf, size_t cap)
{
    size_t len = 0;
    buf[0] = '\0';
    fcntl(fd, F_SETFL, O_NONBLOCK);
    int64_t dl = tu_now_ms() + timeout_ms;
    while (tu_now_ms() < dl && len + 1 < cap) {
        ssize_t r = read(fd, buf + len, cap - 1 - len);
        if (r > 0) {
            len += (size_t)r;
            buf[len] = '\0';
            if (needle && strstr(buf, needle))
                break;
        } else if (r == 0) {
            break;
        } else {
            usleep(2000);
        }
    }
    return buf;
}

/* the exit status; -1 (and killed) if it did not exit in time */
static int wait_exit(struct child *c, int timeout_ms)
{
    int st = mx_proc_wait(&c->proc, timeout_ms);
    if (st < 0)
        mx_proc_kill(&c->proc);
    return st;
}

static void stops_on(int sig)
{
    struct child c;
    char *argv[] = {"mxnode", "--schedulers", "2", "--node-name", "t1", NULL};
    spawn_node(&c, argv, NULL);
    static char out[4096], err[65536];
    read_until(c.out, "ready", 10000, out, sizeof(out));
    if (!strstr(out, "ready: 2 schedulers")) {
        kill(c.pid, SIGKILL);
        fail_msg("no ready line: %s", out);
    }
    err_until(&c, "scheduler 1 up", 5000, err, sizeof(err));
    assert_int_equal(kill(c.pid, sig), 0);
    int rc = wait_exit(&c, 10000);
    mx_proc_log(&c.proc, err, sizeof(err)); /* all of it, now that it exited */
    assert_int_equal(rc, 0);
    /* JSON lines with the node name and scheduler; stop callbacks ran */
    assert_non_null(strstr(err, "\"node\":\"t1\""));
    assert_non_null(strstr(err, "\"msg\":\"scheduler 0 up\""));
    assert_non_null(strstr(err, "\"msg\":\"scheduler 1 up\""));
    assert_non_null(strstr(err, "\"msg\":\"scheduler 1 stopping\""));
    assert_non_null(strstr(err, "stopped:"));
    for (char *line = strtok(err, "\n"); line; line = strtok(NULL, "\n"))
        if (line[0] != '{' || line[strlen(line) - 1] != '}')
            fail_msg("not a JSON object line: %s", line);
    mx_proc_release(&c.proc);
}

static void test_sigterm(void **st)
{
    stops_on(SIGTERM);
}

/* MX_LOG_FORMAT=text: human-readable lines instead of JSON */
static void test_log_text(void **st)
{
    struct child c;
    char *argv[] = {"mxnode", "--schedulers", "2", "--node-name", "t2", NULL};
    char *env[] = {"MX_LOG_FORMAT=text", "MX_DRAIN_GRACE_MS=0", NULL};
    spawn_node(&c, argv, env);
    static char out[4096], err[65536];
    read_until(c.out, "ready", 10000, out, sizeof(out));
    err_until(&c, "scheduler 1 up", 5000, err, sizeof(err));
    assert_int_equal(kill(c.pid, SIGTERM), 0);
    assert_int_equal(wait_exit(&c, 10000), 0);
    assert_non_null(strstr(err, " INFO  t2 [s1 scheduler-info] scheduler 1 up"));
    assert_null(strstr(err, "{\"time\""));
    mx_proc_release(&c.proc);
}

static void test_sigint(void **st)
{
    stops_on(SIGINT);
}

static void bad(const char *flag, const char *value, const char *name)
{
    struct child c;
    char *argv[] = {"mxnode", (char *)flag, (char *)value, NULL};
    spawn_node(&c, argv, NULL);
    static char err[4096];
    err_until(&c, "\n", 5000, err, sizeof(err));
    assert_int_equal(wait_exit(&c, 5000), 2);
    if (!strstr(err, name))
        fail_msg("error for %s %s does not name %s: %s", flag, value, name, err);
    mx_proc_release(&c.proc);
}

static void test_bad_config(void **st)
{
    bad("--schedulers", "lots", "MX_SCHEDULERS");
    bad("--schedulers", "999", "MX_SCHEDULERS");
    bad("--redis-url", "localhost", "MX_REDIS_URL");
    bad("--jwt-secret", "too-short", "MX_JWT_SECRET");
    bad("--http-addr", "8080", "MX_HTTP_ADDR");
    bad("--no-such-flag", "1", "--no-such-flag");
    bad("--log-format", "xml", "MX_LOG_FORMAT");
    bad("--drain-grace-ms", "6000", "MX_DRAIN_GRACE_MS"); /* over half the shutdown timeout */
    /* from the environment too */
    struct child c;
    char *argv[] = {"mxnode", NULL};
    char *env[] = {"MX_MAILBOX_CAP=0", NULL};
    spawn_node(&c, argv, env);
    static char err[4096];
    err_until(&c, "\n", 5000, err, sizeof(err));
    assert_int_equal(wait_exit(&c, 5000), 2);
    assert_non_null(strstr(err, "MX_MAILBOX_CAP"));
    mx_proc_release(&c.proc);

    /* required settings and unusable resources name the setting */
    char *no_secret[] = {"MX_JWT_SECRET=", NULL};
    spawn_node(&c, argv, no_secret);
    err_until(&c, "\n", 5000, err, sizeof(err));
    assert_int_equal(wait_exit(&c, 5000), 2);
    assert_non_null(strstr(err, "MX_JWT_SECRET"));
    mx_proc_release(&c.proc);
    char *no_table[] = {"MX_CUBE_TABLE=/nonexistent/table.csv", NULL};
    spawn_node(&c, argv, no_table);
    err_until(&c, "\n", 5000, err, sizeof(err));
    assert_int_equal(wait_exit(&c, 5000), 2);
    assert_non_null(strstr(err, "MX_CUBE_TABLE"));
    mx_proc_release(&c.proc);
    /* an additional table set explicitly must load (only the default may be absent) */
    char *no_add[] = {"MX_CUBE_TABLE_ADDITIONAL=/nonexistent/additional.csv", NULL};
    spawn_node(&c, argv, no_add);
    err_until(&c, "\n", 5000, err, sizeof(err));
    assert_int_equal(wait_exit(&c, 5000), 2);
    assert_non_null(strstr(err, "MX_CUBE_TABLE_ADDITIONAL"));
    mx_proc_release(&c.proc);
}

/* A port already taken: exit 1 with a message naming MX_HTTP_ADDR. */
static void test_http_addr_in_use(void **st)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(fd, 1), 0);
    socklen_t sl = sizeof sa;
    getsockname(fd, (struct sockaddr *)&sa, &sl);
    static char addr[64];
    snprintf(addr, sizeof addr, "MX_HTTP_ADDR=127.0.0.1:%u", ntohs(sa.sin_port));
    struct child c;
    char *argv[] = {"mxnode", NULL};
    char *env[] = {addr, NULL};
    spawn_node(&c, argv, env);
    static char err[65536];
    err_until(&c, "MX_HTTP_ADDR", 10000, err, sizeof(err));
    assert_int_equal(wait_exit(&c, 10000), 1);
    assert_non_null(strstr(err, "MX_HTTP_ADDR"));
    mx_proc_release(&c.proc);
    close(fd);
}

/* Transport security at start: a non-loopback nng address without TLS is
 * refused (exit 2 naming the settings) unless MX_INSECURE_TRANSPORT=1,
 * which is warned about; a TLS file that cannot be read is named. With the
 * soft open-files limit at 1024, 1,100 idle connections to the nng port
 * leave HTTP and the admin endpoint answering (they used up every file
 * descriptor before). */
static void test_transport_security(void **st)
{
    struct child c;
    static char err[65536], out[4096];
    char *argv[] = {"mxnode", NULL};
    char *open_nng[] = {"MX_NNG_ADDR=tcp://0.0.0.0:0", NULL};
    spawn_node(&c, argv, open_nng);
    err_until(&c, "MX_TLS_CA", 5000, err, sizeof(err));
    assert_int_equal(wait_exit(&c, 5000), 2);
    assert_non_null(strstr(err, "MX_NNG_ADDR"));
    assert_non_null(strstr(err, "MX_TLS_CA"));
    mx_proc_release(&c.proc);
    char *bad_ca[] = {"MX_TLS_CA=/nonexistent/ca.pem", "MX_TLS_CERT=/x.pem", "MX_TLS_KEY=/x.key",
                      NULL};
    spawn_node(&c, argv, bad_ca);
    err_until(&c, "cannot read", 5000, err, sizeof(err));
    assert_int_equal(wait_exit(&c, 5000), 2);
    assert_non_null(strstr(err, "MX_TLS_CA: cannot read /nonexistent/ca.pem"));
    mx_proc_release(&c.proc);

    char *insecure[] = {"MX_NNG_ADDR=tcp://0.0.0.0:0", "MX_INSECURE_TRANSPORT=1",
                        "TEST_LOW_NOFILE=1", NULL};
    spawn_node(&c, argv, insecure);
    read_until(c.out, "ready", 10000, out, sizeof(out));
    unsigned hp = 0;
    int np = 0, ap = 0;
    const char *h = strstr(out, "http ");
    const char *n = strstr(out, "nng port ");
    const char *a = strstr(out, "admin port ");
    if (!h || !n || !a) {
        kill(c.pid, SIGKILL);
        fail_msg("no ready line: %s", out);
    }
    sscanf(strchr(h, ':') + 1, "%u", &hp);
    sscanf(n + 9, "%d", &np);
    sscanf(a + 11, "%d", &ap);
    err_until(&c, "MX_INSECURE_TRANSPORT", 5000, err, sizeof(err));
    assert_non_null(strstr(err, "\"level\":\"warn\""));
    assert_non_null(strstr(err, "MX_INSECURE_TRANSPORT=1"));
    static int fds[1100];
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)np),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    for (int i = 0; i < 1100; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM, 0);
        TU_ASSERT_CMP(fds[i], >=, 0);
        assert_int_equal(connect(fds[i], (struct sockaddr *)&sa, sizeof sa), 0);
    }
    usleep(300 * 1000); /* the node accepts them in the background: let it */
    /* HTTP: health answers */
    int hfd = socket(AF_INET, SOCK_STREAM, 0);
    sa.sin_port = htons((uint16_t)hp);
    assert_int_equal(connect(hfd, (struct sockaddr *)&sa, sizeof sa), 0);
    const char *req =
        "GET /actuator/health/liveness HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    assert_int_equal(write(hfd, req, strlen(req)), (ssize_t)strlen(req));
    static char resp[4096];
    read_until(hfd, "\r\n\r\n", 5000, resp, sizeof resp);
    close(hfd);
    assert_non_null(strstr(resp, "HTTP/1.1 200"));
    /* admin: mxctl answers */
    char sh[4200];
    snprintf(sh, sizeof sh,
             "%s/mxctl --node tcp://127.0.0.1:%d --timeout 3000 stats >/dev/null 2>&1",
             getenv("MX_BIN_DIR"), ap);
    assert_int_equal(system(sh), 0);
    for (int i = 0; i < 1100; i++)
        close(fds[i]);
    kill(c.pid, SIGTERM);
    assert_int_equal(wait_exit(&c, 15000), 0);
    mx_proc_release(&c.proc);
}

static void test_help(void **st)
{
    struct child c;
    char *argv[] = {"mxnode", "--help", NULL};
    spawn_node(&c, argv, NULL);
    static char out[65536];
    read_until(c.out, NULL, 5000, out, sizeof(out));
    assert_int_equal(wait_exit(&c, 5000), 0);
    for (size_t i = 0; i < mx_node_settings_count; i++) {
        if (!strstr(out, mx_node_settings[i].env) || !strstr(out, mx_node_settings[i].flag))
            fail_msg("--help does not list %s", mx_node_settings[i].env);
    }
    assert_non_null(strstr(out, "default: 127.0.0.1:8080"));
    mx_proc_release(&c.proc);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sigterm),
        cmocka_unit_test(test_sigint),
        cmocka_unit_test(test_log_text),
        cmocka_unit_test(test_bad_config),
        cmocka_unit_test(test_http_addr_in_use),
        cmocka_unit_test(test_help),
        cmocka_unit_test(test_transport_security),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
