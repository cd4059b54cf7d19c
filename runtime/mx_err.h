/* mx_err.h - the one table of error codes used across mx.
 *
 * Functions that act return 0 or a negative MX_E* code. The table below is the
 * only place codes are defined; mx_strerror() and mx_errname() read it.
 */
#ifndef MX_ERR_H
#define MX_ERR_H

#define MX_ERRNO_MAP(X)                                                                            \
    X(INVAL, "invalid argument")                                                                   \
    X(NOMEM, "out of memory")                                                                      \
    X(FULL, "mailbox full")                                                                        \
    X(NOACTOR, "no such actor")                                                                    \
    X(STOPPED, "actor or system stopped")                                                          \
    X(TIMEDOUT, "deadline passed")                                                                 \
    X(DECODE, "malformed message")                                                                 \
    X(TOOBIG, "value exceeds its limit")                                                           \
    X(LIMIT, "limit reached")                                                                      \
    X(EXISTS, "name already registered")                                                           \
    X(NOTFOUND, "not found")                                                                       \
    X(IO, "input/output error")                                                                    \
    X(CONFIG, "invalid configuration")                                                             \
    X(UPSTREAM, "upstream error")                                                                  \
    X(UNAVAIL, "service unavailable")                                                              \
    X(STALE, "stale epoch")                                                                        \
    X(INTERNAL, "internal error")

enum mx_errno {
    MX_OK = 0,
#define MX_ERR_ENUM(name, msg) MX_E##name,
    MX_ERR_FIRST_ = -1000,
    MX_ERRNO_MAP(MX_ERR_ENUM)
#undef MX_ERR_ENUM
        MX_ERR_LAST_
};

/* mx_strerror - human message for an MX_E* code (or "ok" for 0).
 * Thread-safe; returns a static string. */
const char *mx_strerror(int err);

/* mx_errname - the code's name without prefix ("FULL"). Thread-safe. */
const char *mx_errname(int err);

#endif
