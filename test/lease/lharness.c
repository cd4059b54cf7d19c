/* lharness.c - real mxnode processes for the lease tests (lharness.h). */
#define _GNU_SOURCE
#include "lharness.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mx_testutil.h"

static const char *const *g_env;

void lh_set_env(const char *const *env)
{
    g_env = env;
}

int lh_start(struct lnode *n, const char *name, const char *redis_url, const char *mysql_url)
{
    char b[4][4200], bin[4096], logp[512];
    snprintf(b[0], sizeof b[0], "MX_CUBE_TABLE=%s/data/cube_probability_black.csv",
             mx_proc_shared_dir());
    snprintf(b[1], sizeof b[1], "MX_REDIS_URL=%s", redis_url);
    snprintf(b[2], sizeof b[2], "MX_NODE_NAME=%s", name);
    snprintf(b[3], sizeof b[3], "MX_MYSQL_URL=%s", mysql_url ? mysql_url : "");
    /* the defaults, then lh_set_env's settings over them */
    const char *defaults[] = {b[0],
                              b[1],
                              b[2],
                              b[3],
                              "MX_HTTP_ADDR=127.0.0.1:0",
                              "MX_NNG_ADDR=tcp://127.0.0.1:0",
                              "MX_ADMIN_ADDR=tcp://127.0.0.1:0",
                              "MX_JWT_SECRET=lease-test-secret-lease-test-secret-0123",
                              "MX_NEXON_BASE_URL=http://127.0.0.1:9",
                              "MX_SCHEDULERS=1",
                              "MX_OFFLOAD_THREADS=1",
                              "MX_MYSQL_POOL=1",
                              "MX_LEASE_TEST=1",
                              "MX_LOG_LEVEL=info",
                              NULL};
    const char *argv[] = {mx_proc_bin("mxnode", bin, sizeof bin), NULL};
    struct mx_proc_opts o = {.argv = argv,
                             .env = defaults,
                             .env_more = g_env,
                             .out = MX_PROC_PIPE,
                             .err = MX_PROC_CAPTURE};
    if (getenv("LH_LOGDIR")) { /* debugging: keep the node's log */
        static int seq;
        snprintf(logp, sizeof logp, "%s/%s.%d.%d.log", getenv("LH_LOGDIR"), name, (int)getpid(),
                 ++seq);
        o.err = MX_PROC_FILE;
        o.file = logp;
    }
    memset(n, 0, sizeof *n);
    snprintf(n->name, sizeof n->name, "%s", name);
    if (mx_proc_start(&n->proc, &o) != 0)
        return -1;
    n->pid = n->proc.pid;
    char line[2048];
    int port;
    if (mx_proc_read_line(&n->proc, "admin port ", line, sizeof line, 15000) == 0 &&
        sscanf(strstr(line, "admin port "), "admin port %d", &port) == 1) {
        snprintf(n->admin, sizeof n->admin, "tcp://127.0.0.1:%d", port);
        close(n->proc.out); /* nothing reads stdout after the ready line */
        n->proc.out = -1;
        return 0;
    }
    fprintf(stderr, "mxnode %s did not report ready: %s\n", name, line);
    return -1;
}

int lh_signal(struct lnode *n, int sig)
{
    if (n->proc.pid <= 0)
        return -1;
    if (sig && mx_proc_signal(&n->proc, sig) != 0) /* 0: reap a node already signalled */
        return -1;
    if (sig != SIGKILL && sig != SIGTERM && sig != 0)
        return 0;
    int st = mx_proc_wait(&n->proc, 10000);
    if (st < 0) {
        mx_proc_kill(&n->proc);
        st = n->proc.status;
    }
    mx_proc_release(&n->proc);
    n->pid = 0;
    return st;
}

int lh_ctl(char *out, size_t cap, const char *fmt, ...)
{
    char args[1024], bin[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    return mx_proc_run(out, cap, 30000, "%s --timeout 1000 --json %s 2>/dev/null",
                       mx_proc_bin("mxctl", bin, sizeof bin), args);
}

long long lh_json_int(const char *s, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = s ? strstr(s, pat) : NULL;
    return p ? strtoll(p + strlen(pat), NULL, 10) : -1;
}

int lh_count(const char *s, const char *needle)
{
    int c = 0;
    for (const char *p = s; (p = strstr(p, needle)); p += strlen(needle))
        c++;
    return c;
}

int lh_holder(struct lnode *n, const char *name, char *holder, size_t cap, long long *seq)
{
    char out[8192], pat[96];
    if (n->pid <= 0 || lh_ctl(out, sizeof out, "--node %s leases", n->admin) != 0)
        return -1;
    snprintf(pat, sizeof pat, "\"name\":\"%s\"", name);
    const char *e = strstr(out, pat);
    holder[0] = '\0';
    *seq = 0;
    if (!e)
        return 0;
    const char *h = strstr(e, "\"holder\":\"");
    if (h) {
        h += 10;
        const char *q = strchr(h, '"');
        snprintf(holder, cap, "%.*s", q ? (int)(q - h) : 0, h);
    }
    *seq = lh_json_int(e, "seq");
    return 0;
}

bool lh_self_holds(struct lnode *n, const char *name)
{
    char h[64];
    long long seq;
    return lh_holder(n, name, h, sizeof h, &seq) == 0 && !strcmp(h, n->name);
}

int lh_probe_log_check(const redisReply *r, bool ordered, char *why, size_t cap)
{
    for (size_t i = 0; i < r->elements; i++)
        for (size_t j = i + 1; j < r->elements; j++) {
            long long a, b;
            char na[16], nb[16];
            sscanf(r->element[i]->str, "%lld %15s", &a, na);
            sscanf(r->element[j]->str, "%lld %15s", &b, nb);
            if (a == b && strcmp(na, nb) != 0) {
                snprintf(why, cap, "epoch %lld acted on by %s and %s", a, na, nb);
                return -1;
            }
            if (ordered && b < a) {
                snprintf(why, cap, "epoch went backwards in the log: %lld after %lld", b, a);
                return -1;
            }
        }
    return 0;
}
