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

static pid_t g_kids[64];
static const char *const *g_env;
static bool g_hooked;

static void kill_all(void)
{
    for (int i = 0; i < 64; i++)
        if (g_kids[i] > 0) {
            kill(g_kids[i], SIGKILL);
            waitpid(g_kids[i], NULL, 0);
            g_kids[i] = 0;
        }
}

static void track(pid_t p, bool add)
{
    for (int i = 0; i < 64; i++)
        if (add ? g_kids[i] == 0 : g_kids[i] == p) {
            g_kids[i] = add ? p : 0;
            return;
        }
}

void lh_set_env(const char *const *env)
{
    g_env = env;
}

static const char *bindir(void)
{
    const char *d = getenv("MX_BIN_DIR");
    return d && *d ? d : ".";
}

int lh_start(struct lnode *n, const char *name, const char *redis_url, const char *mysql_url)
{
    if (!g_hooked) {
        atexit(kill_all);
        g_hooked = true;
    }
    int po[2], pe[2];
    if (pipe(po) || pipe(pe))
        return -1;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(po[1], 1);
        dup2(pe[1], 2);
        if (getenv("LH_LOGDIR")) { /* debugging: keep the node's log */
            char lp[512];
            snprintf(lp, sizeof lp, "%s/%s.%d.log", getenv("LH_LOGDIR"), name, (int)getpid());
            int fd = open(lp, O_WRONLY | O_CREAT | O_APPEND, 0644);
            if (fd >= 0)
                dup2(fd, 2);
        }
        close(po[0]);
        close(pe[0]);
        char b[6][4200];
        const char *shared = getenv("MX_SHARED_DIR");
        snprintf(b[0], sizeof b[0], "MX_CUBE_TABLE=%s/data/cube_probability_black.csv",
                 shared ? shared : "../shared");
        snprintf(b[1], sizeof b[1], "MX_REDIS_URL=%s", redis_url);
        snprintf(b[2], sizeof b[2], "MX_NODE_NAME=%s", name);
        snprintf(b[3], sizeof b[3], "MX_MYSQL_URL=%s", mysql_url ? mysql_url : "");
        for (int i = 0; i < 4; i++)
            putenv(b[i]);
        putenv("MX_HTTP_ADDR=127.0.0.1:0");
        putenv("MX_NNG_ADDR=tcp://127.0.0.1:0");
        putenv("MX_ADMIN_ADDR=tcp://127.0.0.1:0");
        putenv("MX_JWT_SECRET=lease-test-secret-lease-test-secret-0123");
        putenv("MX_NEXON_BASE_URL=http://127.0.0.1:9");
        putenv("MX_SCHEDULERS=1");
        putenv("MX_OFFLOAD_THREADS=1");
        putenv("MX_MYSQL_POOL=1");
        putenv("MX_LEASE_TEST=1");
        putenv("MX_LOG_LEVEL=info");
        for (int i = 0; g_env && g_env[i]; i++)
            putenv((char *)g_env[i]);
        char path[4096];
        snprintf(path, sizeof path, "%s/mxnode", bindir());
        execl(path, "mxnode", (char *)NULL);
        _exit(127);
    }
    close(po[1]);
    close(pe[1]);
    track(pid, true);
    memset(n, 0, sizeof *n);
    n->pid = pid;
    snprintf(n->name, sizeof n->name, "%s", name);
    n->err_fd = pe[0];
    fcntl(n->err_fd, F_SETFL, O_NONBLOCK);
    char buf[2048];
    size_t len = 0;
    int64_t dl = tu_now_ms() + 15000;
    while (tu_now_ms() < dl && len + 1 < sizeof buf) {
        lh_drain(n);
        struct pollfd p = {po[0], POLLIN, 0};
        if (poll(&p, 1, 100) <= 0)
            continue;
        ssize_t r = read(po[0], buf + len, sizeof buf - 1 - len);
        if (r <= 0)
            break;
        len += (size_t)r;
        buf[len] = '\0';
        const char *a = strstr(buf, "admin port ");
        int port;
        if (a && strchr(a, '\n') && sscanf(a, "admin port %d", &port) == 1) {
            snprintf(n->admin, sizeof n->admin, "tcp://127.0.0.1:%d", port);
            close(po[0]);
            return 0;
        }
    }
    fprintf(stderr, "mxnode %s did not report ready: %s\n", name, buf);
    close(po[0]);
    return -1;
}

void lh_drain(struct lnode *n)
{
    char b[4096];
    if (n->err_fd < 0 || n->pid <= 0)
        return;
    while (read(n->err_fd, b, sizeof b) > 0)
        ;
}

int lh_signal(struct lnode *n, int sig)
{
    if (n->pid <= 0)
        return -1;
    if (sig) /* 0: reap a node already signalled (a second SIGTERM would cut its shutdown) */
        kill(n->pid, sig);
    if (sig != SIGKILL && sig != SIGTERM && sig != 0)
        return 0;
    int st = 0;
    int64_t dl = tu_now_ms() + 10000;
    while (waitpid(n->pid, &st, WNOHANG) == 0) {
        lh_drain(n);
        if (tu_now_ms() > dl) {
            kill(n->pid, SIGKILL);
            waitpid(n->pid, &st, 0);
            break;
        }
        usleep(2000);
    }
    track(n->pid, false);
    n->pid = 0;
    close(n->err_fd);
    n->err_fd = -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int lh_ctl(char *out, size_t cap, const char *fmt, ...)
{
    char args[1024], cmd[1400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "%s/mxctl --timeout 1000 --json %s 2>/dev/null", bindir(), args);
    FILE *f = popen(cmd, "r");
    if (!f)
        return -1;
    size_t n = fread(out, 1, cap - 1, f);
    out[n] = '\0';
    int st = pclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
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
