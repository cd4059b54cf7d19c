/* mx_testutil.h - helpers shared by the C tests. */
#ifndef MX_TESTUTIL_H
#define MX_TESTUTIL_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

static inline int64_t tu_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Poll cond every ms until true or timeout_ms passes; evaluates to cond. */
#define TU_WAIT_UNTIL(cond, timeout_ms)                                                            \
    ({                                                                                             \
        int64_t tu_dl_ = tu_now_ms() + (timeout_ms);                                               \
        while (!(cond) && tu_now_ms() < tu_dl_)                                                    \
            usleep(1000);                                                                          \
        (cond);                                                                                    \
    })

/* Work counts shrink under sanitizers, which run code 5-20x slower. */
#ifdef MX_SANITIZED
#define TU_SCALE(n) ((n) / 20 > 0 ? (n) / 20 : 1)
#else
#define TU_SCALE(n) (n)
#endif

#endif
