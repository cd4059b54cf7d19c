/* node_harness.c - see node_harness.h. */
#define _GNU_SOURCE
#include "node_harness.h"
#include "../stub/stub_harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_NODES 16
static pid_t g_pids[MAX_NODES];

static long long now_ms_(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void kill_all(void)
{
    for (int i = 0; i < MAX_NODES; i++)
        if (g_pids[i] > 0)
            kill(g_pids[i], SIGKILL);
}

static void track(pid_t pid, bool add)
{
    static bool hooked;
    if (!hooked) {
        atexit(kill_all);
        hooked = true;
    }
    for (int i = 0; i < MAX_NODES; i++) {
        if (add && g_pids[i] == 0) {
            g_pids[i] = pid;
            return;
        }
        if (!add && g_pids[i] == pid) {
            g_pids[i] = 0;
            return;
        }
    }
}

int node_start(struct node *n, const char *const *env)
{
    memset(n, 0, sizeof *n);
    n->err_fd = -1;
    /* stderr goes to an unlinked temporary file, not a pipe: nobody has to
     * drain it, so a chatty node can never block on its own logging */
    int po[2];
    char logp[] = "/tmp/mx-node-log.XXXXXX";
    int logw = mkstemp(logp);
    if (logw < 0)
        return -1;
    int logr = open(logp, O_RDONLY);
    unlink(logp);
    if (logr < 0 || pipe(po)) {
        close(logw);
        if (logr >= 0)
            close(logr);
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        close(logw);
        close(logr);
        close(po[0]);
        close(po[1]);
        return -1;
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(po[1], 1);
        dup2(logw, 2);
        close(po[0]);
        close(logr);
        char cube[4096], path[4096];
        snprintf(cube, sizeof cube, "MX_CUBE_TABLE=%s/data/cube_probability_black.csv",
                 getenv("MX_SHARED_DIR") ? getenv("MX_SHARED_DIR") : "../shared");
        putenv(cube);
        char addcube[4096];
        snprintf(addcube, sizeof addcube,
                 "MX_CUBE_TABLE_ADDITIONAL=%s/data/cube_probability_additional.csv",
                 getenv("MX_SHARED_DIR") ? getenv("MX_SHARED_DIR") : "../shared");
        putenv(addcube);
        putenv("MX_HTTP_ADDR=127.0.0.1:0");
        putenv("MX_NNG_ADDR=tcp://127.0.0.1:0");
        putenv("MX_ADMIN_ADDR=tcp://127.0.0.1:0");
        putenv("MX_JWT_SECRET=" NODE_TEST_SECRET);
        putenv("MX_SCHEDULERS=2");
        putenv("MX_LOG_LEVEL=warn");
        putenv("MX_REDIS_URL=redis://127.0.0.1:1/0");
        putenv("MX_NEXON_API_KEY=test-key");
        for (int i = 0; env && env[i]; i++)
            putenv((char *)env[i]);
        snprintf(path, sizeof path, "%s/mxnode", getenv("MX_BIN_DIR"));
        execl(path, "mxnode", (char *)NULL);
        _exit(127);
    }
    close(po[1]);
    close(logw);
    n->pid = pid;
    track(pid, true);
    n->err_fd = logr;
    char buf[2048];
    size_t len = 0;
    long long dl = now_ms_() + 15000;
    struct pollfd pfd = {.fd = po[0], .events = POLLIN};
    while (now_ms_() < dl && len + 1 < sizeof buf) {
        if (poll(&pfd, 1, 100) <= 0)
            continue;
        ssize_t r = read(po[0], buf + len, sizeof buf - 1 - len);
        if (r <= 0)
            break;
        len += (size_t)r;
        buf[len] = '\0';
        const char *h = strstr(buf, " http ");
        if (h && strchr(h, '\n')) {
            const char *colon = strchr(h + 6, ':');
            const char *nng = strstr(h, "nng port ");
            const char *adm = strstr(h, "admin port ");
            const char *id = strstr(h, "node id ");
            if (colon && nng && adm && id) {
                n->http_port = atoi(colon + 1);
                n->nng_port = atoi(nng + 9);
                n->admin_port = atoi(adm + 11);
                n->node_id = strtoull(id + 8, NULL, 16);
                close(po[0]);
                return 0;
            }
        }
    }
    fprintf(stderr, "mxnode did not report ready: %s\n", buf);
    close(po[0]);
    node_kill(n);
    return -1;
}

int node_signal_wait(struct node *n, int sig, int timeout_ms)
{
    if (n->pid <= 0)
        return -1;
    kill(n->pid, sig);
    long long dl = now_ms_() + timeout_ms;
    int st = 0;
    pid_t w;
    while ((w = waitpid(n->pid, &st, WNOHANG)) == 0 && now_ms_() < dl)
        usleep(5000);
    if (w != n->pid)
        return -1;
    track(n->pid, false);
    n->pid = 0;
    if (n->err_fd >= 0)
        close(n->err_fd);
    n->err_fd = -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

void node_kill(struct node *n)
{
    if (n->pid <= 0)
        return;
    kill(n->pid, SIGKILL);
    waitpid(n->pid, NULL, 0);
    track(n->pid, false);
    n->pid = 0;
    if (n->err_fd >= 0)
        close(n->err_fd);
    n->err_fd = -1;
}

int node_http(int port, const char *method, const char *path, const char *extra, const char *body,
              struct http_res *res)
{
    memset(res, 0, sizeof *res);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    char *req = NULL;
    int n = body ? asprintf(&req,
                            "%s %s HTTP/1.1\r\nHost: t\r\n%sContent-Type: application/json\r\n"
                            "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                            method, path, extra ? extra : "", strlen(body), body)
                 : asprintf(&req, "%s %s HTTP/1.1\r\nHost: t\r\n%sConnection: close\r\n\r\n",
                            method, path, extra ? extra : "");
    if (n < 0) {
        close(fd);
        return -1;
    }
    size_t off = 0;
    while (off < (size_t)n) {
        ssize_t w = send(fd, req + off, (size_t)n - off, MSG_NOSIGNAL);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    free(req);
    size_t cap = 65536, len = 0;
    char *in = malloc(cap);
    long long dl = now_ms_() + 30000;
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    while (now_ms_() < dl) {
        if (poll(&pfd, 1, 100) <= 0)
            continue;
        if (len + 1 >= cap) {
            cap *= 2;
            in = realloc(in, cap);
        }
        ssize_t r = recv(fd, in + len, cap - 1 - len, 0);
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    in[len] = '\0';
    char *sep = strstr(in, "\r\n\r\n");
    if (!sep || sscanf(in, "HTTP/1.%*d %d", &res->status) != 1) {
        free(in);
        res->status = 0;
        return -1;
    }
    *sep = '\0';
    res->head = strdup(in);
    res->body_len = len - (size_t)(sep + 4 - in);
    res->body = malloc(res->body_len + 1);
    memcpy(res->body, sep + 4, res->body_len);
    res->body[res->body_len] = '\0';
    free(in);
    return res->status;
}

void http_res_free(struct http_res *r)
{
    free(r->head);
    free(r->body);
    memset(r, 0, sizeof *r);
}

void http_header(const struct http_res *r, const char *name, char *out, size_t cap)
{
    out[0] = '\0';
    size_t nl = strlen(name);
    for (const char *p = r->head; p && *p;) {
        const char *eol = strstr(p, "\r\n");
        size_t ln = eol ? (size_t)(eol - p) : strlen(p);
        if (ln > nl + 1 && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (*v == ' ')
                v++;
            snprintf(out, cap, "%.*s", (int)(ln - (size_t)(v - p)), v);
            return;
        }
        p = eol ? eol + 2 : NULL;
    }
}

int json_str(const char *json, const char *key, char *out, size_t cap)
{
    char pat[128];
    snprintf(pat, sizeof pat, "\"%s\":\"", key);
    const char *p = json ? strstr(json, pat) : NULL;
    if (!p)
        return -1;
    p += strlen(pat);
    const char *e = strchr(p, '"');
    if (!e)
        return -1;
    snprintf(out, cap, "%.*s", (int)(e - p), p);
    return 0;
}

int node_wait_exit(struct node *n, int timeout_ms, char *log, size_t cap)
{
    if (n->pid <= 0)
        return -1;
    long long dl = now_ms_() + timeout_ms;
    int st = 0;
    pid_t w;
    while ((w = waitpid(n->pid, &st, WNOHANG)) == 0 && now_ms_() < dl)
        usleep(2000);
    if (w != n->pid)
        return -1;
    track(n->pid, false);
    n->pid = 0;
    if (log && cap) {
        ssize_t r = n->err_fd >= 0 ? pread(n->err_fd, log, cap - 1, 0) : -1;
        log[r > 0 ? r : 0] = '\0';
    }
    if (n->err_fd >= 0)
        close(n->err_fd);
    n->err_fd = -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

size_t node_log(const struct node *n, char *log, size_t cap)
{
    ssize_t r = n->err_fd >= 0 && cap ? pread(n->err_fd, log, cap - 1, 0) : -1;
    if (cap)
        log[r > 0 ? r : 0] = '\0';
    return r > 0 ? (size_t)r : 0;
}

long long prom_sum(const char *text, const char *name)
{
    size_t nl = strlen(name);
    long long sum = -1;
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, name, nl) != 0 || (p[nl] != '{' && p[nl] != ' '))
            continue;
        const char *v = p[nl] == '{' ? strchr(p, '}') : p + nl;
        if (v)
            sum = (sum < 0 ? 0 : sum) + atoll(v + 1);
    }
    return sum;
}
