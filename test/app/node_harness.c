/* node_harness.c - see node_harness.h. */
#define _GNU_SOURCE
#include "node_harness.h"
#include "../stub/stub_harness.h"
#include "mx_testutil.h"

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

/* the mirrors of n->proc the tests read */
static void sync_node(struct node *n)
{
    n->pid = n->proc.pid;
    n->err_fd = n->proc.pid > 0 ? n->proc.log : -1;
}

int node_start(struct node *n, const char *const *env)
{
    char cube[4096], addcube[4096], bin[4096];
    snprintf(cube, sizeof cube, "MX_CUBE_TABLE=%s/data/cube_probability_black.csv",
             mx_proc_shared_dir());
    snprintf(addcube, sizeof addcube,
             "MX_CUBE_TABLE_ADDITIONAL=%s/data/cube_probability_additional.csv",
             mx_proc_shared_dir());
    /* the defaults, then the caller's settings over them */
    const char *defaults[] = {cube,
                              addcube,
                              "MX_HTTP_ADDR=127.0.0.1:0",
                              "MX_NNG_ADDR=tcp://127.0.0.1:0",
                              "MX_ADMIN_ADDR=tcp://127.0.0.1:0",
                              "MX_JWT_SECRET=" NODE_TEST_SECRET,
                              "MX_SCHEDULERS=2",
                              "MX_LOG_LEVEL=warn",
                              "MX_REDIS_URL=redis://127.0.0.1:1/0",
                              "MX_NEXON_API_KEY=test-key",
                              NULL};
    const char *argv[] = {mx_proc_bin("mxnode", bin, sizeof bin), NULL};
    struct mx_proc_opts o = {.argv = argv,
                             .env = defaults,
                             .env_more = env,
                             .out = MX_PROC_PIPE,
                             .err = MX_PROC_CAPTURE};
    memset(n, 0, sizeof *n);
    if (mx_proc_start(&n->proc, &o) != 0) {
        sync_node(n);
        return -1;
    }
    sync_node(n);
    char line[2048];
    if (mx_proc_read_line(&n->proc, " http ", line, sizeof line, 15000) == 0) {
        const char *h = strstr(line, " http ");
        const char *colon = strchr(h + 6, ':');
        const char *nng = strstr(h, "nng port ");
        const char *adm = strstr(h, "admin port ");
        const char *id = strstr(h, "node id ");
        if (colon && nng && adm && id) {
            n->http_port = atoi(colon + 1);
            n->nng_port = atoi(nng + 9);
            n->admin_port = atoi(adm + 11);
            n->node_id = strtoull(id + 8, NULL, 16);
            /* nothing reads stdout after the ready line */
            close(n->proc.out);
            n->proc.out = -1;
            return 0;
        }
    }
    fprintf(stderr, "mxnode did not report ready: %s\n", line);
    node_kill(n);
    return -1;
}

int node_signal_wait(struct node *n, int sig, int timeout_ms)
{
    if (mx_proc_signal(&n->proc, sig) != 0)
        return -1;
    return node_wait_exit(n, timeout_ms, NULL, 0);
}

void node_kill(struct node *n)
{
    mx_proc_release(&n->proc);
    sync_node(n);
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
    long long dl = tu_now_ms() + 30000;
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    while (tu_now_ms() < dl) {
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
    if (mx_proc_wait(&n->proc, timeout_ms) < 0)
        return -1;
    if (log && cap)
        mx_proc_log(&n->proc, log, cap);
    mx_proc_release(&n->proc);
    sync_node(n);
    return n->proc.status;
}

size_t node_log(const struct node *n, char *log, size_t cap)
{
    return mx_proc_log(&n->proc, log, cap);
}

void node_print_log(const struct node *n, const char *label, const char *pat, size_t *from)
{
    char buf[1 << 16], line[4096];
    size_t off = from ? *from : 0, ll = 0;
    ssize_t got;
    while (n->err_fd >= 0 && (got = pread(n->err_fd, buf, sizeof buf, (off_t)off)) > 0) {
        off += (size_t)got;
        for (ssize_t k = 0; k < got; k++) {
            if (buf[k] != '\n') {
                if (ll + 1 < sizeof line)
                    line[ll++] = buf[k];
                continue;
            }
            line[ll] = '\0';
            if (!pat || strstr(line, pat))
                fprintf(stderr, "[%s] %s\n", label, line);
            ll = 0;
        }
    }
    if (from)
        *from = off - ll; /* a partial last line: again next time */
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
