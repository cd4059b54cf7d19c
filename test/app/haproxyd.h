/* haproxyd.h - a real haproxy for system tests: a loopback port chosen at
 * run time, the caller's configuration written into the caller's temporary
 * directory, and the process an mx_proc (support/mx_proc.h), killed with
 * the test. Not thread-safe: call from the test's main thread. */
#ifndef HAPROXYD_H
#define HAPROXYD_H

#include <sys/types.h>

/* haproxyd_free_port - a loopback TCP port free right now. */
int haproxyd_free_port(void);

/* haproxyd_start - write cfg to dir/haproxy.cfg and run /usr/sbin/haproxy
 * -db on it. Returns its pid, or -1. */
pid_t haproxyd_start(const char *dir, const char *cfg);

/* haproxyd_stop - SIGKILL *pid and reap it; *pid becomes 0. 0 is a no-op. */
void haproxyd_stop(pid_t *pid);

#endif
