/* test_procs.c - system tests with real processes: two cl_node processes
 * exchange messages over TCP (request/reply, FIFO, epoch fencing), one is
 * killed with SIGKILL (sends fail fast into dead letters, requests fail or
 * time out), and mxctl runs every command against live nodes with --json
 * checked by python3's json module, its exit codes, and the admin token on
 * a non-loopback address. The nodes are mx_procs (support/mx_proc.h),
 * driven through their stdin and stdout. */
#define _GNU_SOURCE
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "mx_testutil.h"
#include "support/mx_proc.h"

struct proc {
    struct mx_proc proc; /* its stdin: commands; its stdout: one answer line each */
    char id[32];
    int nng, admin;
    char admin_url[64], nng_url[64];
};

static const char *g_tls_dir; /* set: nodes start with DIR/ca.pem and DIR/<name>.{pem,key} */

static int start_node(struct proc *p, const char *name, const char *admin, const char *token,
                      char *first, size_t firstcap)
{
    char path[512], ca[256], crt[256], key[256];
    mx_proc_bin("cl_node", path, sizeof(path));
    const char *argv[16] = {path, "--name", name, "--admin", admin, "--token", token, NULL};
    if (g_tls_dir) {
        snprintf(ca, sizeof ca, "%s/ca.pem", g_tls_dir);
        snprintf(crt, sizeof crt, "%s/%s.pem", g_tls_dir, name);
        snprintf(key, sizeof key, "%s/%s.key", g_tls_dir, name);
        const char *tls[] = {"--tls-ca", ca, "--tls-cert", crt, "--tls-key", key, NULL};
        memcpy(argv + 7, tls, sizeof tls);
    }
    struct mx_proc_opts o = {.argv = argv, .in = MX_PROC_PIPE, .out = MX_PROC_PIPE};
    memset(p, 0, sizeof(*p));
    assert_int_equal(mx_proc_start(&p->proc, &o), 0);
    char line[256];
    if (mx_proc_read_line(&p->proc, NULL, line, sizeof(line), 10000) != 0)
        return -1;
    if (first)
        snprintf(first, firstcap, "%s", line);
    if (sscanf(line, "node %31s nng %d admin %d", p->id, &p->nng, &p->admin) != 3)
        return -1;
    snprintf(p->nng_url, sizeof(p->nng_url), "tcp://127.0.0.1:%d", p->nng);
    snprintf(p->admin_url, sizeof(p->admin_url), "tcp://127.0.0.1:%d", p->admin);
    return 0;
}

/* "quit", then SIGKILL after 5 s */
static void stop_node(struct proc *p)
{
    if (p->proc.pid > 0 && write(p->proc.in, "quit\n", 5) == 5)
        mx_proc_wait(&p->proc, 5000);
    mx_proc_release(&p->proc);
}

/* send a command line, read the one-line answer */
static void cmd(struct proc *p, char *ans, size_t cap, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line) - 1, fmt, ap);
    va_end(ap);
    strcat(line, "\n");
    assert_int_equal(write(p->proc.in, line, strlen(line)), (ssize_t)strlen(line));
    if (mx_proc_read_line(&p->proc, NULL, ans, cap, 15000) != 0) {
        fprintf(stderr, "no answer to %s", line);
        fail();
    }
}

static uint64_t dl_count(struct proc *p, const char *reason)
{
    char ans[1024], key[64];
    cmd(p, ans, sizeof(ans), "dl");
    snprintf(key, sizeof(key), " %s=", reason);
    char *k = strstr(ans, key);
    assert_non_null(k);
    return strtoull(k + strlen(key), NULL, 10);
}

/* run mxctl with args; its stdout into out; returns its exit code */
static int mxctl(char *out, size_t cap, const char *args)
{
    char path[512];
    mx_proc_bin("mxctl", path, sizeof(path));
    return mx_proc_run(out, cap, 30000, "env -u MX_ADMIN_TOKEN -u MX_ADMIN_ADDR %s %s 2>/dev/null",
                       path, args);
}

/* python3 checks a JSON document: expr over d must be true */
static bool json_ok(const char *json, const char *expr)
{
    char jpath[] = "/tmp/cl_jsonXXXXXX", ppath[] = "/tmp/cl_pyXXXXXX", sh[1024];
    int fd = mkstemp(jpath), fp = mkstemp(ppath);
    TU_ASSERT_CMP(fd, >=, 0);
    TU_ASSERT_CMP(fp, >=, 0);
    assert_int_equal(write(fd, json, strlen(json)), (ssize_t)strlen(json));
    close(fd);
    FILE *f = fdopen(fp, "w");
    fprintf(f, "import json, sys\nd = json.load(open(sys.argv[1]))\nsys.exit(0 if (%s) else 1)\n",
            expr);
    fclose(f);
    snprintf(sh, sizeof(sh), "python3 %s %s", ppath, jpath);
    int st = system(sh);
    unlink(jpath);
    unlink(ppath);
    bool ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;
    if (!ok)
        fprintf(stderr, "json check failed: %s\non: %.2000s\n", expr, json);
    return ok;
}

static void connect_pair(struct proc *a, struct proc *b)
{
    char ans[256];
    cmd(a, ans, sizeof(ans), "peer %s %s", b->id, b->nng_url);
    assert_string_equal(ans, "ok");
    cmd(b, ans, sizeof(ans), "peer %s %s", a->id, a->nng_url);
    assert_string_equal(ans, "ok");
}

static void test_two_nodes(void **unused)
{
    struct proc a, b;
    char ans[512];
    assert_int_equal(start_node(&a, "na", "tcp://127.0.0.1:0", "", NULL, 0), 0);
    assert_int_equal(start_node(&b, "nb", "tcp://127.0.0.1:0", "", NULL, 0), 0);
    connect_pair(&a, &b);
    cmd(&a, ans, sizeof(ans), "req %s 3000", b.id);
    assert_string_equal(ans, "reply 42");
    cmd(&b, ans, sizeof(ans), "req %s 3000", a.id);
    assert_string_equal(ans, "reply 42");

    /* FIFO per pair across bursts */
    unsigned total = 0;
    for (int i = 0; i < 10; i++) {
        unsigned ok, failed;
        cmd(&a, ans, sizeof(ans), "send %s 500 %u", b.id, total);
        assert_int_equal(sscanf(ans, "sent %u %u", &ok, &failed), 2);
        assert_int_equal(failed, 0);
        total += ok;
        char want[64];
        snprintf(want, sizeof(want), "sink %u 0", total);
        int64_t dl = tu_now_ms() + 5000;
        do
            cmd(&b, ans, sizeof(ans), "sink");
        while (strcmp(ans, want) != 0 && tu_now_ms() < dl && usleep(5000) == 0);
        assert_string_equal(ans, want);
    }

    /* epoch fencing across processes */
    uint64_t stale = dl_count(&b, "stale-epoch");
    cmd(&a, ans, sizeof(ans), "epoch %s 77 10", b.id);
    cmd(&a, ans, sizeof(ans), "epoch %s 77 9", b.id);
    assert_true(TU_WAIT_UNTIL(dl_count(&b, "stale-epoch") == stale + 1, 5000));
    cmd(&a, ans, sizeof(ans), "epoch %s 77 11", b.id);
    usleep(100 * 1000);
    assert_int_equal(dl_count(&b, "stale-epoch"), stale + 1);

    /* a SIGKILLed peer: sends fail fast into node-down, requests end */
    mx_proc_release(&b.proc); /* SIGKILL */
    uint64_t down = dl_count(&a, "node-down");
    int64_t t0 = tu_now_ms();
    bool failed_fast = false;
    while (!failed_fast && tu_now_ms() - t0 < 3000) {
        unsigned ok, failed;
        cmd(&a, ans, sizeof(ans), "send %s 50 0", b.id);
        assert_int_equal(sscanf(ans, "sent %u %u", &ok, &failed), 2);
        failed_fast = failed == 50;
        usleep(20000);
    }
    assert_true(failed_fast);
    TU_ASSERT_CMP(dl_count(&a, "node-down"), >=, down + 50);
    cmd(&a, ans, sizeof(ans), "req %s 500", b.id);
    assert_true(strcmp(ans, "timeout") == 0 || strcmp(ans, "err NOACTOR") == 0);
    stop_node(&a);
}

static void test_mxctl(void **unused)
{
    struct proc a, b;
    char ans[512], args[512];
    static char out[1 << 16];
    assert_int_equal(start_node(&a, "na", "tcp://127.0.0.1:0", "", NULL, 0), 0);
    assert_int_equal(start_node(&b, "nb", "tcp://127.0.0.1:0", "", NULL, 0), 0);
    connect_pair(&a, &b);
    cmd(&a, ans, sizeof(ans), "send %s 100 0", b.id);
    /* 0: stats */
    snprintf(args, sizeof(args), "--node %s --json stats", b.admin_url);
    assert_int_equal(mxctl(out, sizeof(out), args), 0);
    assert_true(json_ok(out, "d['ok'] and d['node']=='nb' and d['schedulers']==2 and "
                             "d['live_actors']>=4 and 'node-down' in d['deadletters'] and "
                             "d['transport']['peers']==1 and d['transport']['delivered']>=100 and "
                             "d['sections']['cl']['sink_received']>=100"));
    snprintf(args, sizeof(args), "--node %s stats", b.admin_url);
    assert_int_equal(mxctl(out, sizeof(out), args), 0);
    assert_non_null(strstr(out, "live actors"));
    /* actors: top N sorted */
    cmd(&b, ans, sizeof(ans), "park 600 5");
    usleep(50 * 1000);
    snprintf(args, sizeof(args), "--node %s --json actors --top 2 --sort depth", b.admin_url);
    assert_int_equal(mxctl(out, sizeof(out), args), 0);
    assert_true(json_ok(
        out, "len(d['actors'])==2 and d['actors'][0]['name']=='slow' and "
             "d['actors'][0]['depth']>=5 and d['total']>=4 and "
             "all(k in d['actors'][0] for k in ('hwm','oldest_ms','handled','rate','restarts'))"));
    /* mailbox peek answers once the blocked handler returns */
    snprintf(args, sizeof(args), "--node %s --json mailbox slow --peek 3", b.admin_url);
    assert_int_equal(mxctl(out, sizeof(out), args), 0);
    assert_true(json_ok(out, "len(d['messages'])==3 and d['messages'][0]['type_name']=='test_kv' "
                             "and d['messages'][0]['body']['text']=='parked'"));
    snprintf(args, sizeof(args), "--node %s mailbox slow", b.admin_url);
    assert_int_equal(mxctl(out, sizeof(out), args), 0);
    snprintf(args, sizeof(args), "--node %s --json mailbox nosuch", b.admin_url);
    assert_int_equal(mxctl(out, sizeof(out), args), 3);
    /* rate sampling: sink handled 100 messages; rates are numbers */
    snprintf(args, sizeof(args), "--node %s --json actors --sort rate", b.admin_url);
    assert_int_equal(mxctl(out, sizeof(out), args), 0);
    assert_true(json_ok(out, "all(isinstance(x['rate'], (int,float)) for x in d['actors'])"));
    /* deadletters, members, leases */
    snprintf(args, sizeof(args), "--node %s --json deadletters", b.admin_url);
    assert_int_equal(mxctl(out, sizeof(out), args), 0);
    assert_true(json_ok(out, "d['node']=='nb' and 'stale-epoch' in d['deadletters'] and "
                             "d['total']==sum(d['deadletters'].values())"));
    snprintf(args, sizeof(args), "--node %s --json members", b.admin_url);
    assert_int_equal(mxctl(out, sizeof(out), args), 0);
    assert_true(json_ok(out, "d['members'][0]['name']=='nb' and d['members'][0]['state']=='up'"));
    snprintf(args, sizeof(args), "--node %s members", b.admin_url);
    assert_int_equal(mxctl(out, sizeof(out), args), 0);
    assert_non_null(strstr(out, "nb"));
    snprintf(args, sizeof(args), "--node %s --json leases", b.admin_url);
    assert_int_equal(mxctl(out, sizeof(out), args), 0);
    assert_true(json_ok(out, "d['leases'][0]['name']=='like-sync' and d['leases'][0]['seq']==7"));
    /* drain: the wrong node is refused, the right one drains */
    snprintf(args, sizeof(args), "--node %s --json drain na", b.admin_url);
    assert_int_equal(mxctl(out, sizeof(out), args), 3);
    snprintf(args, sizeof(args), "--node %s --json drain nb", b.admin_url);
    assert_int_equal(mxctl(out, sizeof(out), args), 0);
    assert_true(json_ok(out, "d['state']=='draining' and d['callback']"));
    snprintf(args, sizeof(args), "--node %s --json stats", b.admin_url);
    assert_int_equal(mxctl(out, sizeof(out), args), 0);
    assert_true(json_ok(out, "d['state']=='draining' and d['sections']['cl']['drained']"));
    /* exit codes: usage 2, no answer 1 */
    assert_int_equal(mxctl(out, sizeof(out), "--node tcp://127.0.0.1:1 --bogus stats"), 2);
    assert_int_equal(mxctl(out, sizeof(out), "stats extra"), 2);
    assert_int_equal(mxctl(out, sizeof(out), "frobnicate"), 2);
    assert_int_equal(mxctl(out, sizeof(out), "mailbox"), 2);
    assert_int_equal(mxctl(out, sizeof(out), "actors --sort size"), 2);
    int64_t t0 = tu_now_ms();
    assert_int_equal(mxctl(out, sizeof(out), "--node tcp://127.0.0.1:1 --timeout 300 stats"), 1);
    TU_ASSERT_CMP(tu_now_ms() - t0, <, 3000);
    /* the admin endpoint answers while the data path is blocked */
    cmd(&b, ans, sizeof(ans), "park 1500 1");
    t0 = tu_now_ms();
    snprintf(args, sizeof(args), "--node %s --json actors", b.admin_url);
    assert_int_equal(mxctl(out, sizeof(out), args), 0);
    TU_ASSERT_CMP(tu_now_ms() - t0, <, 1000);
    stop_node(&a);
    stop_node(&b);
}

static void test_token(void **unused)
{
    struct proc c;
    char first[256], args[512];
    static char out[1 << 16];
    const char *tok = "0123456789abcdef-secret";
    /* non-loopback admin address without a token: refused at start */
    assert_int_not_equal(start_node(&c, "nc", "tcp://0.0.0.0:0", "", first, sizeof(first)), 0);
    assert_non_null(strstr(first, "error admin CONFIG"));
    stop_node(&c);
    assert_int_equal(start_node(&c, "nc", "tcp://0.0.0.0:0", tok, NULL, 0), 0);
    snprintf(args, sizeof(args), "--node %s --json stats", c.admin_url);
    assert_int_equal(mxctl(out, sizeof(out), args), 3);
    assert_true(json_ok(out, "not d['ok'] and 'token' in d['error']"));
    snprintf(args, sizeof(args), "--node %s --token wrong-token-xxxxxxx stats", c.admin_url);
    assert_int_equal(mxctl(out, sizeof(out), args), 3);
    snprintf(args, sizeof(args), "--node %s --token %s --json stats", c.admin_url, tok);
    assert_int_equal(mxctl(out, sizeof(out), args), 0);
    assert_true(json_ok(out, "d['ok'] and d['admin']['refused']==2"));
    stop_node(&c);
}

/* Mutual TLS between processes and for mxctl: members talk, mxctl with a
 * cluster certificate is answered, mxctl without TLS or with another CA's
 * certificate is not (and the refusal is counted). */
static void test_tls(void **unused)
{
    char dir[128], other[128], sh[600], args[1024];
    static char out[1 << 16], ans[512];
    assert_int_equal(mx_proc_tmpdir(NULL, "certs", dir, sizeof dir), 0);
    assert_int_equal(mx_proc_tmpdir(NULL, "certs", other, sizeof other), 0);
    snprintf(sh, sizeof sh, "%s %s ta tb mxctl >/dev/null && %s %s mxctl >/dev/null", MX_GEN_CERTS,
             dir, MX_GEN_CERTS, other);
    assert_int_equal(system(sh), 0);
    g_tls_dir = dir;
    struct proc a, b;
    assert_int_equal(start_node(&a, "ta", "tcp://127.0.0.1:0", "", NULL, 0), 0);
    assert_int_equal(start_node(&b, "tb", "tcp://127.0.0.1:0", "", NULL, 0), 0);
    g_tls_dir = NULL;
    cmd(&a, ans, sizeof(ans), "peer %s tls+tcp://127.0.0.1:%d", b.id, b.nng);
    assert_string_equal(ans, "ok");
    cmd(&b, ans, sizeof(ans), "peer %s tls+tcp://127.0.0.1:%d", a.id, a.nng);
    assert_string_equal(ans, "ok");
    int64_t dl = tu_now_ms() + 5000;
    do
        cmd(&a, ans, sizeof(ans), "req %s 1000", b.id);
    while (strcmp(ans, "reply 42") != 0 && tu_now_ms() < dl);
    assert_string_equal(ans, "reply 42");
    /* mxctl: without TLS, with a stranger's certificate, with ours */
    snprintf(args, sizeof args, "--node %s --timeout 500 stats", b.admin_url);
    assert_int_equal(mxctl(out, sizeof(out), args), 1);
    snprintf(args, sizeof args,
             "--node %s --timeout 500 --tls-ca %s/ca.pem --tls-cert %s/mxctl.pem --tls-key "
             "%s/mxctl.key stats",
             b.admin_url, dir, other, other);
    assert_int_equal(mxctl(out, sizeof(out), args), 1);
    snprintf(args, sizeof args,
             "--node %s --json --tls-ca %s/ca.pem --tls-cert %s/mxctl.pem --tls-key %s/mxctl.key "
             "stats",
             b.admin_url, dir, dir, dir);
    assert_int_equal(mxctl(out, sizeof(out), args), 0);
    assert_true(json_ok(out,
                        "d['ok'] and d['admin']['tls']==1 and "
                        "d['admin']['pipes_refused_tls']>=1 and d['transport']['peers_up']==1"));
    stop_node(&a);
    stop_node(&b);
    mx_proc_rmdir(dir);
    mx_proc_rmdir(other);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_nodes),
        cmocka_unit_test(test_mxctl),
        cmocka_unit_test(test_token),
        cmocka_unit_test(test_tls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
