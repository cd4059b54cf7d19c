/* mx_log.c - JSON-lines or text logging (see mx_log.h). */
#include "mx_log.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mx_jsonw.h"

#define LINE_MAX_BYTES 8192

static char g_node[64] = "-";
static int g_min = MX_LOG_INFO;
static int g_fd = 2;
static bool g_text; /* set once at start (mx_log_set_format), before other threads log */

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

int mx_log_parse_format(const char *s)
{
    if (!strcmp(s, "json"))
        return MX_LOG_JSON;
    if (!strcmp(s, "text"))
        return MX_LOG_TEXT;
    if (!strcmp(s, "auto"))
        return MX_LOG_AUTO;
    return -1;
}

void mx_log_set_format(enum mx_log_format f)
{
    g_text = f == MX_LOG_TEXT || (f == MX_LOG_AUTO && isatty(g_fd));
}

/* now_stamp - the wall clock as 2026-12-04T21:46:48.123Z (UTC) */
static void now_stamp(char tbuf[40])
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(tbuf, 40, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(tbuf + n, 40 - n, ".%03ldZ", ts.tv_nsec / 1000000);
}

/* A text line: "time LEVEL node [sched actor trace] msg key=value ..." */
static size_t text_head(char *buf, size_t cap, enum mx_log_level level)
{
    static const char *up[] = {"DEBUG", "INFO", "WARN", "ERROR"};
    char tbuf[40];
    now_stamp(tbuf);
    int k = snprintf(buf, cap, "%s %-5s %s", tbuf, up[level], g_node);
    if (k > 0 && (size_t)k < cap && (t_sched >= 0 || t_actor || t_trace)) {
        char sc[16] = "";
        if (t_sched >= 0)
            snprintf(sc, sizeof sc, "s%d", t_sched);
        k += snprintf(buf + k, cap - (size_t)k, " [%s%s%s%s%.8s]", sc, t_actor && sc[0] ? " " : "",
                      t_actor ? t_actor : "", t_trace ? " " : "", t_trace ? t_trace : "");
    }
    return k < 0 ? 0 : (size_t)k >= cap ? cap - 1 : (size_t)k;
}

static void text_write(char *buf, size_t len, size_t cap)
{
    if (len >= cap - 1)
        len = cap - 2;
    buf[len++] = '\n';
    ssize_t r = write(g_fd, buf, len);
    (void)r;
}

void mx_log_set_context(int sched, const char *actor, const char *trace)
{
    t_sched = sched;
    t_actor = actor;
    t_trace = trace;
}

void mx_log_set_trace(const char *trace)
{
    t_trace = trace;
}

static void begin(struct mx_jsonw *w, enum mx_log_level level)
{
    char tbuf[40];
    now_stamp(tbuf);
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
    if (g_text) {
        char line[LINE_MAX_BYTES];
        size_t n = text_head(line, sizeof line, level);
        int k = snprintf(line + n, sizeof line - n, " %s", msg);
        text_write(line, n + (k > 0 ? (size_t)k : 0), sizeof line);
        return;
    }
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
    if (g_text) {
        char line[LINE_MAX_BYTES];
        size_t n = text_head(line, sizeof line, level);
        int k = snprintf(line + n, sizeof line - n, " %s", msg);
        n += k > 0 ? (size_t)k : 0;
        va_list ap;
        va_start(ap, msg);
        for (const char *key; n < sizeof line - 1 && (key = va_arg(ap, const char *));) {
            const char *v = va_arg(ap, const char *);
            k = snprintf(line + n, sizeof line - n, " %s=%s", key, v ? v : "");
            n += k > 0 ? (size_t)k : 0;
        }
        va_end(ap);
        text_write(line, n, sizeof line);
        return;
    }
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
