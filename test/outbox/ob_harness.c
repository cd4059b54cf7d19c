/* ob_harness.c - see ob_harness.h. */
#define _GNU_SOURCE
#include "ob_harness.h"

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int64_t ob_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

int ob_node_start(struct ob_world *w, int i)
{
    static char env[OB_NODES][10][700];
    const char *e[48];
    int k = 0;
    snprintf(env[i][0], sizeof env[i][0], "MX_NODE_NAME=%s", w->names[i]);
    snprintf(env[i][1], sizeof env[i][1], "MX_REDIS_URL=%s", w->redis.url);
    snprintf(env[i][2], sizeof env[i][2], "MX_MYSQL_URL=%s", w->my.url);
    snprintf(env[i][3], sizeof env[i][3], "MX_NEXON_BASE_URL=%s", w->stub.base);
    snprintf(env[i][4], sizeof env[i][4], "MX_OUTBOX_SINK_URL=%s/sink/outbox", w->stub.base);
    snprintf(env[i][5], sizeof env[i][5], "MX_ALERT_WEBHOOK_URL=%s/sink/alert", w->stub.base);
    snprintf(env[i][6], sizeof env[i][6], "MX_AI_URL=%s/v1/chat/completions", w->stub.base);
    snprintf(env[i][7], sizeof env[i][7], "MX_OUTBOX_REFETCH_URL=http://127.0.0.1:%d", w->http0);
    snprintf(env[i][8], sizeof env[i][8], "MX_HTTP_ADDR=127.0.0.1:%d", i == 0 ? w->http0 : 0);
    for (int j = 0; j < 9; j++)
        e[k++] = env[i][j];
    for (int j = 0; w->extra && w->extra[j] && k < 46; j++)
        e[k++] = w->extra[j];
    e[k] = NULL;
    return node_start(&w->nodes[i], e);
}

int ob_start(struct ob_world *w, int n, const char *const *extra)
{
    w->extra = extra;
    if ((w->http0 = free_port()) < 0)
        return -1;
    if (mysqld_start(&w->my) != 0 || redisd_start(&w->redis, NULL) != 0 ||
        stub_start(&w->stub, NULL) != 0)
        return -1;
    for (int i = 0; i < n; i++) {
        snprintf(w->names[i], sizeof w->names[i], "n%d", i + 1);
        if (ob_node_start(w, i) != 0)
            return -1;
    }
    return 0;
}

void ob_stop(struct ob_world *w)
{
    for (int i = 0; i < OB_NODES; i++)
        if (w->nodes[i].pid > 0) {
            kill(w->nodes[i].pid, SIGCONT);
            node_kill(&w->nodes[i]);
        }
    stub_stop(&w->stub);
    redisd_stop(&w->redis);
    mysqld_destroy(&w->my);
}

int ob_stats(struct ob_world *w, int i, char *out, size_t cap)
{
    if (w->nodes[i].pid <= 0)
        return -1;
    for (int attempt = 0; attempt < 3; attempt++) /* a loaded machine may miss 1 s */
        if (mx_proc_run(
                out, cap, 30000,
                "%s/mxctl --timeout 1000 --json --node tcp://127.0.0.1:%d stats 2>/dev/null",
                getenv("MX_BIN_DIR"), w->nodes[i].admin_port) == 0)
            return 0;
    return -1;
}

static long long json_int_after(const char *s, const char *section, const char *key)
{
    const char *p = s;
    if (section) {
        char sec[64];
        snprintf(sec, sizeof sec, "\"%s\":{", section);
        p = strstr(s, sec);
        if (!p)
            return -1;
    }
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *q = strstr(p, pat);
    if (!q)
        return -1;
    q += strlen(pat);
    if (!strncmp(q, "true", 4))
        return 1;
    if (!strncmp(q, "false", 5))
        return 0;
    return strtoll(q, NULL, 10);
}

long long ob_outbox_int(struct ob_world *w, int i, const char *key)
{
    static char out[1 << 16];
    if (ob_stats(w, i, out, sizeof out) != 0)
        return -1;
    return json_int_after(out, "outbox", key);
}

int ob_holder(struct ob_world *w, int skip)
{
    for (int i = 0; i < OB_NODES; i++)
        if (i != skip && w->nodes[i].pid > 0 && ob_outbox_int(w, i, "holding") == 1)
            return i;
    return -1;
}

long long ob_sink(struct ob_world *w, const char *key)
{
    char url[256];
    struct resp r;
    snprintf(url, sizeof url, "%s/__stub/sink/stats", w->stub.base);
    if (http_get(url, NULL, false, &r) != 0 || r.status != 200) {
        resp_free(&r);
        return -1;
    }
    long long v = json_int_after(r.body, NULL, key);
    resp_free(&r);
    return v;
}

int ob_sink_ctl(struct ob_world *w, const char *query)
{
    char url[512];
    struct resp r;
    snprintf(url, sizeof url, "%s/__stub/sink%s%s", w->stub.base, query[0] ? "?" : "", query);
    int ok = http_post(url, &r) == 0 && r.status == 200;
    resp_free(&r);
    return ok ? 0 : -1;
}

long long ob_sink_count(struct ob_world *w, const char *key)
{
    char url[512];
    struct resp r;
    snprintf(url, sizeof url, "%s/__stub/sink/has?key=%s", w->stub.base, key);
    if (http_get(url, NULL, false, &r) != 0 || r.status != 200) {
        resp_free(&r);
        return -1;
    }
    long long v = json_int_after(r.body, NULL, "count");
    resp_free(&r);
    return v;
}

long long ob_sql_int(struct ob_world *w, const char *fmt, ...)
{
    char sql[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    return mysqld_root_int(&w->my, sql);
}

int ob_sql(struct ob_world *w, const char *fmt, ...)
{
    char sql[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    return mysqld_root_exec(&w->my, sql);
}

int ob_bulk(struct ob_world *w, const char *type, const char *prefix, long from, long n)
{
    /* the Sequence engine makes the rows in one statement */
    return ob_sql(w,
                  "INSERT INTO mx.outbox (event_type, payload, idempotency_key) SELECT '%s',"
                  " CONCAT('{\"n\":', seq, '}'), CONCAT('%s', seq) FROM mx.seq_%ld_to_%ld",
                  type, prefix, from, from + n - 1);
}

void ob_dump_logs(struct ob_world *w, const char *grep)
{
    static size_t from[OB_NODES]; /* what earlier calls printed */
    for (int i = 0; i < OB_NODES; i++) {
        char label[8];
        snprintf(label, sizeof label, "n%d", i + 1);
        node_print_log(&w->nodes[i], label, grep, &from[i]);
    }
}
