/* mx_log.h - structured logs: one JSON object per line on stderr, or
 * human-readable text lines (mx_log_set_format: MX_LOG_FORMAT).
 *
 * Each line carries time, level, node, scheduler, actor, trace id and the
 * message, plus optional key/value fields. The scheduler, actor and trace
 * come from the calling thread's context, which the runtime sets while it
 * runs an actor's handler. A line is written with one write(2) call, so
 * lines from different threads never interleave.
 */
#ifndef MX_LOG_H
#define MX_LOG_H

#include <stdarg.h>
#include <stdint.h>

enum mx_log_level { MX_LOG_DEBUG, MX_LOG_INFO, MX_LOG_WARN, MX_LOG_ERROR };

/* mx_log_init - set the node name, minimum level and output fd (2 = stderr).
 * Call once before other threads log. */
void mx_log_init(const char *node, enum mx_log_level min, int fd);

enum mx_log_format { MX_LOG_JSON, MX_LOG_TEXT, MX_LOG_AUTO };

/* mx_log_parse_format - "json", "text", "auto" -> format; -1 if bad. */
int mx_log_parse_format(const char *s);

/* mx_log_set_format - JSON lines, text lines ("time LEVEL node [sched
 * actor trace] msg key=value"), or auto: text when the output fd is a
 * terminal, JSON otherwise. Call after mx_log_init, before other threads
 * log. The default is JSON. */
void mx_log_set_format(enum mx_log_format f);

/* mx_log_parse_level - "debug", "info", "warn", "error" -> level; -1 if bad. */
int mx_log_parse_level(const char *s);

/* mx_log_set_context - the calling thread's scheduler index (-1 = none),
 * actor name (NULL = none) and trace id (32 hex digits or NULL). Used by
 * the runtime; strings must outlive the context. */
void mx_log_set_context(int sched, const char *actor, const char *trace);

/* mx_log_set_trace - only the trace id of the calling thread's context
 * (32 hex digits or NULL); the string must outlive the context. */
void mx_log_set_trace(const char *trace);

/* mx_log - log a printf-formatted message. Any thread; never blocks on a
 * lock (a bounded line: longer messages are cut). */
void mx_log(enum mx_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* mx_logkv - like mx_log with extra fields: kv is a NULL-terminated list of
 * key, value string pairs. */
void mx_logkv(enum mx_log_level level, const char *msg, ...);

#define MX_DEBUG(...) mx_log(MX_LOG_DEBUG, __VA_ARGS__)
#define MX_INFO(...) mx_log(MX_LOG_INFO, __VA_ARGS__)
#define MX_WARN(...) mx_log(MX_LOG_WARN, __VA_ARGS__)
#define MX_ERROR(...) mx_log(MX_LOG_ERROR, __VA_ARGS__)

#endif
