/* http_sock.h - raw-socket helpers of the HTTP system tests (include after
 * cmocka.h and mx_testutil.h). */
#ifndef HTTP_SOCK_H
#define HTTP_SOCK_H

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <sys/socket.h>

/* send every byte (the test fails if the peer is gone) */
static inline void send_all(int fd, const char *buf, size_t len)
{
    while (len) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        TU_ASSERT_CMP(n, >, 0);
        buf += n;
        len -= (size_t)n;
    }
}

#define SEND(fd, lit) send_all(fd, lit, sizeof(lit) - 1)

/* does the server close (EOF or reset) within timeout_ms? Reads and drops
 * what arrives meanwhile. */
static inline bool closes_within(int fd, int timeout_ms)
{
    int64_t dl = tu_now_ms() + timeout_ms;
    char b[4096];
    while (tu_now_ms() < dl) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, 50) <= 0)
            continue;
        if (recv(fd, b, sizeof(b), 0) <= 0)
            return true;
    }
    return false;
}

#endif
