/* mx_testutil.h - helpers shared by the C tests. */
#ifndef MX_TESTUTIL_H
#define MX_TESTUTIL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

static inline int64_t tu_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Poll cond every ms until true or timeout_ms passes; evaluates to cond. */
#define TU_WAIT_UNTIL(cond, timeout_ms) TU_WAIT_EVERY(cond, timeout_ms, 1)

/* TU_WAIT_EVERY - the same, polling every every_ms: for conditions that
 * cost a process or a query to evaluate. */
#define TU_WAIT_EVERY(cond, timeout_ms, every_ms)                                                  \
    ({                                                                                             \
        int64_t tu_dl_ = tu_now_ms() + (timeout_ms);                                               \
        while (!(cond) && tu_now_ms() < tu_dl_)                                                    \
            usleep((every_ms)*1000);                                                               \
        (cond);                                                                                    \
    })

/* TU_ASSERT_CMP(a, op, b) - assert (a) op (b) and, when it fails, print
 * both expressions and both values, which assert_true() cannot. a and b
 * are each evaluated once, converted to the type the comparison itself
 * would use (the type of 1 ? (a) : (b): the usual arithmetic conversions,
 * or the composite pointer type), so the assertion means exactly what
 * assert_true((a) op (b)) meant; the dead copy of the comparison keeps
 * its -Wsign-compare warning (gcc). Needs cmocka.h (fail_msg) where it is
 * used. */
static inline void tu_fmt_i_(char *o, size_t n, long long v)
{
    snprintf(o, n, "%lld", v);
}
static inline void tu_fmt_u_(char *o, size_t n, unsigned long long v)
{
    snprintf(o, n, "%llu", v);
}
static inline void tu_fmt_f_(char *o, size_t n, long double v)
{
    snprintf(o, n, "%.17Lg", v);
}
static inline void tu_fmt_p_(char *o, size_t n, const volatile void *v)
{
    snprintf(o, n, "%p", (const void *)v);
}
/* clang-format off */
#define TU_FMT_(buf, v)                                                                            \
    _Generic((v),                                                                                  \
        _Bool: tu_fmt_u_,                                                                          \
        int: tu_fmt_i_, long: tu_fmt_i_, long long: tu_fmt_i_,                                     \
        unsigned: tu_fmt_u_, unsigned long: tu_fmt_u_, unsigned long long: tu_fmt_u_,              \
        float: tu_fmt_f_, double: tu_fmt_f_, long double: tu_fmt_f_,                               \
        default: tu_fmt_p_)(buf, sizeof(buf), v)
/* clang-format on */
#define TU_ASSERT_CMP(a, op, b)                                                                    \
    do {                                                                                           \
        if (0)                                                                                     \
            (void)((a)op(b));                                                                      \
        __typeof__(1 ? (a) : (b)) tu_a_ = (a), tu_b_ = (b);                                        \
        if (!(tu_a_ op tu_b_)) {                                                                   \
            char tu_sa_[48], tu_sb_[48];                                                           \
            TU_FMT_(tu_sa_, tu_a_);                                                                \
            TU_FMT_(tu_sb_, tu_b_);                                                                \
            fail_msg("%s %s %s: %s %s %s is false", #a, #op, #b, tu_sa_, #op, tu_sb_);             \
        }                                                                                          \
    } while (0)

/* Work counts shrink under sanitizers, which run code 5-20x slower. */
#ifdef MX_SANITIZED
#define TU_SCALE(n) ((n) / 20 > 0 ? (n) / 20 : 1)
#else
#define TU_SCALE(n) (n)
#endif

#endif
