/* cache_harness.c - see cache_harness.h. */
#define _GNU_SOURCE
#include "cache_harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

int stack_node_start(struct stack *s, int i)
{
    char redis[700], mysql[200], base[200], name[64], spool[160];
    snprintf(redis, sizeof redis, "MX_REDIS_URL=%s", s->redis.url);
    snprintf(mysql, sizeof mysql, "MX_MYSQL_URL=%s", s->mysql.url);
    snprintf(base, sizeof base, "MX_NEXON_BASE_URL=%s", s->stub.base);
    snprintf(name, sizeof name, "MX_NODE_NAME=cache%d", i);
    snprintf(spool, sizeof spool, "MX_SPOOL_PATH=%s/spool-%d.log", s->tmp, i);
    const char *env[] = {redis,        mysql,       base,
                         name,         spool,       "MX_RATE_LIMIT=0",
                         s->latch_ttl, s->fetch_to, "MX_LOG_LEVEL=error",
                         NULL};
    return node_start(&s->node[i], env);
}

int stack_start(struct stack *s, int latch_ttl_ms, int fetch_timeout_ms)
{
    memset(s, 0, sizeof *s);
    if (mx_proc_tmpdir(NULL, "cache", s->tmp, sizeof s->tmp) != 0)
        return -1;
    snprintf(s->latch_ttl, sizeof s->latch_ttl, "MX_CACHE_LATCH_TTL_MS=%d",
             latch_ttl_ms ? latch_ttl_ms : 10000);
    snprintf(s->fetch_to, sizeof s->fetch_to, "MX_FETCH_TIMEOUT_MS=%d",
             fetch_timeout_ms ? fetch_timeout_ms : 5000);
    if (redisd_start(&s->redis, NULL) != 0 || mysqld_start(&s->mysql) != 0 ||
        stub_start(&s->stub, NULL) != 0)
        return -1;
    for (int i = 0; i < 2; i++)
        if (stack_node_start(s, i) != 0)
            return -1;
    return 0;
}

void stack_stop(struct stack *s)
{
    for (int i = 0; i < 2; i++)
        if (s->node[i].pid)
            node_signal_wait(&s->node[i], 15, 10000);
    stub_stop(&s->stub);
    mysqld_destroy(&s->mysql);
    redisd_stop(&s->redis);
    mx_proc_rmdir(s->tmp);
}

struct conn {
    int fd;
    char *out;
    size_t outlen, sent;
    char *in;
    size_t inlen, incap;
    bool done;
    double t0;
};

static int connect_nb(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    return fd;
}

static void parse_resp(struct mreq *r, struct conn *c)
{
    if (!c->in || c->inlen < 12)
        return;
    c->in[c->inlen] = '\0';
    r->status = atoi(c->in + 9);
    char *b = strstr(c->in, "\r\n\r\n");
    r->body = strdup(b ? b + 4 : "");
}

int mreq_run(struct mreq *r, int n, int timeout_ms)
{
    struct conn *c = calloc((size_t)n, sizeof *c);
    struct pollfd *p = calloc((size_t)n, sizeof *p);
    double t0 = mono_ms();
    for (int i = 0; i < n; i++) {
        c[i].fd = connect_nb(r[i].port);
        c[i].out = NULL;
        c[i].t0 = t0;
        if (asprintf(&c[i].out,
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                     "%sContent-Length: 0\r\n\r\n",
                     r[i].method ? r[i].method : "GET", r[i].path,
                     r[i].gzip ? "Accept-Encoding: gzip\r\n" : "") < 0)
            abort();
        c[i].outlen = strlen(c[i].out);
        if (c[i].fd < 0)
            c[i].done = true;
    }
    int left = 0;
    for (int i = 0; i < n; i++)
        left += !c[i].done;
    while (left > 0 && mono_ms() - t0 < timeout_ms) {
        int np = 0;
        int idx[n];
        for (int i = 0; i < n; i++) {
            if (c[i].done)
                continue;
            p[np].fd = c[i].fd;
            p[np].events = c[i].sent < c[i].outlen ? POLLOUT : POLLIN;
            p[np].revents = 0;
            idx[np++] = i;
        }
        if (poll(p, (nfds_t)np, 50) < 0 && errno != EINTR)
            break;
        for (int k = 0; k < np; k++) {
            struct conn *x = &c[idx[k]];
            if (!p[k].revents)
                continue;
            if (x->sent < x->outlen) {
                ssize_t w = send(x->fd, x->out + x->sent, x->outlen - x->sent, MSG_NOSIGNAL);
                if (w > 0)
                    x->sent += (size_t)w;
                else if (w < 0 && errno != EAGAIN) {
                    x->done = true;
                    left--;
                }
                continue;
            }
            if (x->incap - x->inlen < 65536) {
                x->incap = x->incap ? x->incap * 2 : 131072;
                x->in = realloc(x->in, x->incap + 1);
            }
            ssize_t rd = recv(x->fd, x->in + x->inlen, x->incap - x->inlen, 0);
            if (rd > 0) {
                x->inlen += (size_t)rd;
            } else if (rd == 0 || errno != EAGAIN) {
                x->done = true;
                left--;
                r[idx[k]].ms = mono_ms() - x->t0;
                parse_resp(&r[idx[k]], x);
            }
        }
    }
    int ok = 0;
    for (int i = 0; i < n; i++) {
        ok += r[i].status != 0;
        if (c[i].fd >= 0)
            close(c[i].fd);
        free(c[i].out);
        free(c[i].in);
    }
    free(c);
    free(p);
    return ok;
}

void mreq_free(struct mreq *r, int n)
{
    for (int i = 0; i < n; i++) {
        free(r[i].body);
        r[i].body = NULL;
    }
}

int get(int port, const char *method, const char *path, char **body)
{
    struct mreq r = {.port = port, .method = method};
    snprintf(r.path, sizeof r.path, "%s", path);
    mreq_run(&r, 1, 30000);
    if (body)
        *body = r.body;
    else
        free(r.body);
    return r.status;
}

int json_num(const char *json, const char *key, char *out, size_t cap)
{
    char pat[128];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = json ? strstr(json, pat) : NULL;
    if (!p)
        return -1;
    p += strlen(pat);
    if (*p == '"')
        p++;
    size_t n = 0;
    while (p[n] && p[n] != ',' && p[n] != '}' && p[n] != '"' && n + 1 < cap)
        n++;
    memcpy(out, p, n);
    out[n] = '\0';
    return 0;
}

long long redis_strlen(struct redisd *d, const char *key)
{
    redisReply *rep = redisd_cmd(d, "STRLEN %s", key);
    long long n = rep && rep->type == REDIS_REPLY_INTEGER ? rep->integer : -1;
    if (rep)
        freeReplyObject(rep);
    return n == 0 ? -1 : n;
}

long long cache_counter(int port, const char *event)
{
    char *m = NULL, pat[96];
    long long sum = -1;
    snprintf(pat, sizeof pat, "event=\"%s\"", event);
    if (get(port, NULL, "/actuator/prometheus", &m) == 200)
        for (const char *l = m; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
            const char *eol = strchr(l, '\n'), *e = strstr(l, pat), *rb = strchr(l, '}');
            if (strncmp(l, "mx_cache_total{", 15) != 0 || !e || !rb || (eol && e > eol) || e > rb)
                continue;
            sum = (sum < 0 ? 0 : sum) + atoll(rb + 1);
        }
    free(m);
    return sum;
}
