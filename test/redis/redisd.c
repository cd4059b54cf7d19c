/* redisd.c - a real redis-server per test: start, stop, kill, restart. */
#define _GNU_SOURCE
#include "redisd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mx_testutil.h"

static redisContext *connect_to(struct redisd *d, int timeout_ms)
{
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", d->port, tv);
    if (!c || c->err) {
        if (c)
            redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    return c;
}

/* wait until the server answers anything to PING (NOAUTH counts) */
static int wait_ready(struct redisd *d, int timeout_ms)
{
    long long dl = tu_now_ms() + timeout_ms;
    while (tu_now_ms() < dl) {
        if (!mx_proc_running(&d->proc)) {
            d->pid = 0;
            return -1; /* exited: port taken or bad config */
        }
        redisContext *c = connect_to(d, 200);
        if (c) {
            redisReply *r = redisCommand(c, "PING");
            redisFree(c);
            if (r) {
                freeReplyObject(r);
                return 0;
            }
        }
        usleep(10000);
    }
    return -1;
}

static int spawn(struct redisd *d)
{
    char conf[512];
    snprintf(conf, sizeof(conf), "%s/redis.conf", d->dir);
    const char *argv[] = {d->sentinel ? "redis-sentinel" : "redis-server", conf, NULL};
    struct mx_proc_opts o = {.argv = argv, .in = MX_PROC_NULL, .out = MX_PROC_NULL};
    mx_proc_release(&d->proc); /* the previous life's, after a kill */
    if (mx_proc_start(&d->proc, &o) != 0)
        return -1;
    d->pid = d->proc.pid;
    if (wait_ready(d, 5000) != 0) {
        mx_proc_release(&d->proc);
        d->pid = 0;
        return -1;
    }
    return 0;
}

static int write_conf(struct redisd *d, const char *extra)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/redis.conf", d->dir);
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    if (d->sentinel) { /* sentinel rewrites this file: it must be writable */
        fprintf(f, "port %d\nbind 127.0.0.1\ndaemonize no\ndir %s\nlogfile %s/redis.log\n%s\n",
                d->port, d->dir, d->dir, extra ? extra : "");
        fclose(f);
        return 0;
    }
    fprintf(f,
            "port %d\nbind 127.0.0.1\nsave \"\"\nappendonly no\ndaemonize no\n"
            "dir %s\nlogfile %s/redis.log\nenable-debug-command local\n"
            "databases 16\n%s\n",
            d->port, d->dir, d->dir, extra ? extra : "");
    fclose(f);
    return 0;
}

static int start(struct redisd *d, const char *extra_conf, int sentinel)
{
    memset(d, 0, sizeof(*d));
    d->sentinel = sentinel;
    if (mx_proc_tmpdir(NULL, "redisd", d->dir, sizeof d->dir) != 0)
        return -1;
    const char *pw = extra_conf && !sentinel ? strstr(extra_conf, "requirepass ") : NULL;
    if (pw) {
        pw += 12;
        size_t n = strcspn(pw, " \r\n");
        if (n >= sizeof(d->password))
            n = sizeof(d->password) - 1;
        memcpy(d->password, pw, n);
        d->password[n] = '\0';
    }
    for (int attempt = 0; attempt < 5; attempt++) {
        d->port = mx_proc_free_port();
        if (d->port <= 0 || write_conf(d, extra_conf) != 0)
            continue;
        if (spawn(d) == 0) {
            if (d->password[0])
                snprintf(d->url, sizeof(d->url), "redis://:%s@127.0.0.1:%d/0", d->password,
                         d->port);
            else
                snprintf(d->url, sizeof(d->url), "redis://127.0.0.1:%d/0", d->port);
            return 0;
        }
    }
    fprintf(stderr, "redisd: %s did not start (see %s/redis.log)\n",
            sentinel ? "redis-sentinel" : "redis-server", d->dir);
    mx_proc_rmdir(d->dir);
    d->dir[0] = '\0';
    return -1;
}

void redisd_kill(struct redisd *d)
{
    mx_proc_kill(&d->proc);
    d->pid = 0;
}

void redisd_stop(struct redisd *d)
{
    if (d->proc.pid > 0)
        mx_proc_stop(&d->proc, SIGTERM, 5000);
    mx_proc_release(&d->proc);
    d->pid = 0;
    mx_proc_rmdir(d->dir);
    d->dir[0] = '\0';
}

int redisd_restart(struct redisd *d)
{
    redisd_kill(d);
    /* same port: redis-server sets SO_REUSEADDR, so TIME_WAIT is no obstacle;
     * retry briefly in case something grabbed the port in between */
    for (int attempt = 0; attempt < 3; attempt++)
        if (spawn(d) == 0)
            return 0;
    return -1;
}

static redisReply *vcmd(struct redisd *d, const char *fmt, va_list ap)
{
    redisContext *c = connect_to(d, 2000);
    if (!c)
        return NULL;
    if (d->password[0]) {
        redisReply *a = redisCommand(c, "AUTH %s", d->password);
        if (a)
            freeReplyObject(a);
    }
    redisReply *r = redisvCommand(c, fmt, ap);
    redisFree(c);
    return r;
}

redisReply *redisd_cmd(struct redisd *d, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = vcmd(d, fmt, ap);
    va_end(ap);
    return r;
}

int redisd_ok(struct redisd *d, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = vcmd(d, fmt, ap);
    va_end(ap);
    int ok = r && r->type != REDIS_REPLY_ERROR;
    if (r)
        freeReplyObject(r);
    return ok;
}

int redisd_start(struct redisd *d, const char *extra_conf)
{
    return start(d, extra_conf, 0);
}

int redisd_start_sentinel(struct redisd *d, const char *name, int master_port,
                          const char *extra_conf)
{
    char conf[2048];
    snprintf(conf, sizeof(conf),
             "sentinel monitor %s 127.0.0.1 %d 2\n"
             "sentinel down-after-milliseconds %s 1000\n"
             "sentinel failover-timeout %s 3000\n"
             "sentinel parallel-syncs %s 1\n%s",
             name, master_port, name, name, name, extra_conf ? extra_conf : "");
    return start(d, conf, 1);
}

redisReply *redisd_kept_cmd(redisContext **c, struct redisd *d, const char *fmt, ...)
{
    if (!*c && !(*c = connect_to(d, 500)))
        return NULL;
    if (d->password[0] && !d->sentinel) {
        redisReply *a = redisCommand(*c, "AUTH %s", d->password);
        if (a)
            freeReplyObject(a);
    }
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(*c, fmt, ap);
    va_end(ap);
    if (!r) {
        redisFree(*c);
        *c = NULL;
    }
    return r;
}

static long long field_int(const redisReply *r, const char *key)
{
    if (!r || r->type != REDIS_REPLY_ARRAY)
        return -1;
    for (size_t i = 0; i + 1 < r->elements; i += 2)
        if (r->element[i]->type == REDIS_REPLY_STRING && strcmp(r->element[i]->str, key) == 0)
            return atoll(r->element[i + 1]->str);
    return -1;
}

int redisd_ha_start(struct redisd_ha *h, const char *name, const char *extra_conf)
{
    char rconf[1024], sconf[512] = "";
    memset(h, 0, sizeof(*h));
    snprintf(h->name, sizeof(h->name), "%s", name);
    if (redisd_start(&h->master, extra_conf) != 0)
        return -1;
    const char *pw = h->master.password;
    snprintf(rconf, sizeof(rconf), "%s\nreplicaof 127.0.0.1 %d\n%s%s\n",
             extra_conf ? extra_conf : "", h->master.port, pw[0] ? "masterauth " : "", pw);
    if (pw[0])
        snprintf(sconf, sizeof(sconf), "sentinel auth-pass %s %s\n", name, pw);
    if (redisd_start(&h->replica, rconf) != 0)
        return -1;
    for (int i = 0; i < 3; i++)
        if (redisd_start_sentinel(&h->sentinel[i], name, h->master.port, sconf) != 0)
            return -1;
    snprintf(h->url, sizeof(h->url),
             "redis-sentinel://%s%s%s127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d/%s/0", pw[0] ? ":" : "",
             pw, pw[0] ? "@" : "", h->sentinel[0].port, h->sentinel[1].port, h->sentinel[2].port,
             name);
    redisContext *c = NULL, *m = NULL;
    long long dl = tu_now_ms() + 20000;
    int ok = -1;
    while (tu_now_ms() < dl) {
        redisReply *r = redisd_kept_cmd(&c, &h->sentinel[0], "SENTINEL MASTER %s", name);
        long long slaves = field_int(r, "num-slaves"), others = field_int(r, "num-other-sentinels");
        if (r)
            freeReplyObject(r);
        redisReply *role =
            slaves >= 1 && others >= 2 ? redisd_kept_cmd(&m, &h->master, "ROLE") : NULL;
        bool online = role && role->type == REDIS_REPLY_ARRAY && role->elements >= 3 &&
                      role->element[2]->type == REDIS_REPLY_ARRAY &&
                      role->element[2]->elements >= 1;
        if (role)
            freeReplyObject(role);
        if (online) { /* the replica finished its first sync: WAIT can count it */
            ok = 0;
            break;
        }
        usleep(50000);
    }
    if (c)
        redisFree(c);
    if (m)
        redisFree(m);
    if (ok != 0)
        fprintf(stderr, "redisd: sentinels did not see the replica and each other in 20 s\n");
    return ok;
}

void redisd_ha_stop(struct redisd_ha *h)
{
    for (int i = 0; i < 3; i++)
        redisd_stop(&h->sentinel[i]);
    redisd_stop(&h->replica);
    redisd_stop(&h->master);
}

int redisd_ha_wait_master(struct redisd_ha *h, int i, int port, int ms)
{
    redisContext *c = NULL;
    long long dl = tu_now_ms() + ms;
    int ok = -1;
    while (ok != 0 && tu_now_ms() < dl) {
        redisReply *r =
            redisd_kept_cmd(&c, &h->sentinel[i], "SENTINEL get-master-addr-by-name %s", h->name);
        if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
            atoi(r->element[1]->str) == port)
            ok = 0;
        if (r)
            freeReplyObject(r);
        if (ok != 0)
            usleep(20000);
    }
    if (c)
        redisFree(c);
    return ok;
}
