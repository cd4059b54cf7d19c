/* node_harness.h - start real mxnode processes for system tests and talk
 * HTTP/1.1 to them over raw sockets.
 *
 * node_start() runs $MX_BIN_DIR/mxnode with loopback ports chosen at run
 * time (HTTP, nng and admin on port 0), the cube table from shared/, a test
 * JWT secret, and the caller's extra MX_* settings, then reads the ports
 * from its ready line. The process is an mx_proc (support/mx_proc.h): it
 * dies with the test, and its stderr is captured in a file for log checks.
 */
#ifndef NODE_HARNESS_H
#define NODE_HARNESS_H

#include <stddef.h>
#include <sys/types.h>

#include "support/mx_proc.h"

struct node {
    struct mx_proc proc;
    pid_t pid; /* proc.pid, for the tests: 0 when not running */
    int http_port, nng_port, admin_port;
    unsigned long long node_id;
    int err_fd; /* proc.log: the node's stderr (a file: never blocks the node), for log checks */
};

#define NODE_TEST_SECRET "node-test-secret-node-test-secret-0123456789"

/* node_start - env: NULL-terminated "MX_X=value" strings applied after the
 * defaults. Returns 0 or -1 (the node did not report ready in 15 s). */
int node_start(struct node *n, const char *const *env);
/* node_signal_wait - send sig and wait up to timeout_ms for the exit;
 * returns the exit status (0-255), 128+signal, or -1 on timeout. */
int node_signal_wait(struct node *n, int sig, int timeout_ms);
/* node_wait_exit - wait up to timeout_ms for the node to exit (send the
 * signal yourself); copies its stderr so far into log (cap bytes, may be
 * NULL). Returns the exit status (0-255), 128+signal, or -1 on timeout. */
int node_wait_exit(struct node *n, int timeout_ms, char *log, size_t cap);
/* node_log - the node's stderr so far into log; returns its length. */
size_t node_log(const struct node *n, char *log, size_t cap);
/* node_print_log - the lines of the node's stderr that contain pat (all
 * when NULL) to stderr, each after "[label] ": from byte *from on (0 when
 * from is NULL), and *from moved past what was read. For failure reports. */
void node_print_log(const struct node *n, const char *label, const char *pat, size_t *from);
/* node_kill - SIGKILL and reap. */
void node_kill(struct node *n);

struct http_res {
    int status; /* 0 when no response came */
    char *head; /* status line + headers, NUL-terminated */
    char *body; /* NUL-terminated */
    size_t body_len;
};

/* node_http - one request on a new connection (Connection: close). extra:
 * header lines each ending in \r\n, may be NULL; body may be NULL. */
int node_http(int port, const char *method, const char *path, const char *extra, const char *body,
              struct http_res *res);
void http_res_free(struct http_res *r);
/* http_header - a response header's value into out ("" when absent). */
void http_header(const struct http_res *r, const char *name, char *out, size_t cap);
/* json_str - the string value of "key" in a JSON text (first match) into
 * out; returns 0 or -1. Good enough for flat test assertions. */
int json_str(const char *json, const char *key, char *out, size_t cap);

/* prom_sum - the sum of every sample of the Prometheus family name in
 * text (a registered counter has one sample per actor instance: the
 * node's total is their sum); -1 when there is none. */
long long prom_sum(const char *text, const char *name);

#endif
