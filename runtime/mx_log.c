/* mx_log.c - JSON-lines logging (see mx_log.h). */
#include "mx_log.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mx_jsonw.h"

#define LINE_MAX_BYTES 8192

static char g_node[64] = "-";
static int g_min = MX_LOG_INFO;
static int g_fd = 2;

static __thread int t_sched = -1;
static __thread const char *t_actor;
static __thread const char *t_trace;

static const char *level_names[] = {"debug", "info", "warn", "error"};

void mx_log_init(const char *node, enum mx_log_level min, int fd)
{
    snprintf(g_node, sizeof(g_node), "%s", node ? node : "-");
    g_min = min;
    g_fd = fd;
}

int mx_log_parse_level(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(s, level_names[i]) == 0)
            return i;
    return -1;
}

void mx_log_set_context(int sched, const char *actor, const char *trace)
{
    t_sched = sched;
    t_actor = actor;
    t_trace = trace;
}

static void begin(struct mx_jsonw *w, enum mx_log_level level)
{
    struct timespec ts;
    struct tm tm;
    char tbuf[40];
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(tbuf, sizeof(tbuf), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(tbuf + n, sizeof(tbuf) - n, ".%03ldZ", ts.tv_nsec / 1000000);
    mx_jsonw_obj_open(w);
    mx_jsonw_kstr(w, "time", tbuf);
    mx_jsonw_kstr(w, "level", level_names[level]);
    mx_jsonw_kstr(w, "node", g_node);
    if (t_sched >= 0)
        mx_jsonw_kint(w, "sched", t_sched);
    if (t_actor)
        mx_jsonw_kstr(w, "actor", t_actor);
    if (t_trace)
        mx_jsonw_kstr(w, "trace", t_trace);
}

static void finish(struct mx_jsonw *w)
{
    mx_jsonw_obj_close(w);
    if (w->err) {
        /* the line was too long: say so rather than print half an object */
        mx_jsonw_reset(w);
        mx_jsonw_obj_open(w);
        mx_jsonw_kstr(w, "level", "error");
        mx_jsonw_kstr(w, "node", g_node);
        mx_jsonw_kstr(w, "msg", "log line over the size limit dropped");
        mx_jsonw_obj_close(w);
    }
    if (w->buf) {
        w->buf[w->len] = '\n';
        ssize_t r = write(g_fd, w->buf, w->len + 1);
        (void)r;
    }
    mx_jsonw_fini(w);
}

void mx_log(enum mx_log_level level, const char *fmt, ...)
{
    if ((int)level < g_min)
        return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    struct mx_jsonw w;
    mx_jsonw_init(&w, LINE_MAX_BYTES);
    begin(&w, level);
    mx_jsonw_kstr(&w, "msg", msg);
    finish(&w);
}

void mx_logkv(enum mx_log_level level, const char *msg, ...)
{
    if ((int)level < g_min)
        return;
    struct mx_jsonw w;
    mx_jsonw_init(&w, LINE_MAX_BYTES);
    begin(&w, level);
    mx_jsonw_kstr(&w, "msg", msg);
    va_list ap;
    va_start(ap, msg);
    for (;;) {
        const char *k = va_arg(ap, const char *);
        if (!k)
            break;
        const char *v = va_arg(ap, const char *);
        mx_jsonw_kstr(&w, k, v);
    }
    va_end(ap);
    finish(&w);
}
