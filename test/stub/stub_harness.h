/* stub_harness.h - start the real mxstub and talk to it, for test/stub.
 *
 * stub_start() runs $MX_BIN_DIR/mxstub on 127.0.0.1:0 and reads the bound
 * address from its first stdout line; stub_stop() ends it (SIGTERM, then
 * SIGKILL after 5 s). The process is an mx_proc (support/mx_proc.h): it dies
 * with the test, so a failed test never leaves a server behind.
 */
#ifndef STUB_HARNESS_H
#define STUB_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "support/mx_proc.h"

struct stub {
    struct mx_proc proc;
    pid_t pid; /* proc.pid, for the tests: 0 when not running */
    int port;
    char addr[64]; /* "127.0.0.1:PORT" */
    char base[96]; /* "http://127.0.0.1:PORT" */
};

struct resp {
    long status;
    char *body; /* NUL-terminated, malloc'd */
    size_t len;
    char *headers; /* raw response headers, malloc'd */
    double ms;     /* total time of the request */
};

/* the shared directory (fixtures) and a fixture path under it */
const char *stub_shared_dir(void);
void stub_fixture_path(const char *file, char *out, size_t cap);

/* stub_setup, stub_teardown - cmocka per-test fixtures: *state is a zeroed
 * struct stub (not started); teardown stops it even after a failed test, so
 * the child never outlives its test. */
int stub_setup(void **state);
int stub_teardown(void **state);

/* args: NULL-terminated extra arguments. Returns 0 or -1. */
int stub_start(struct stub *s, const char *const *args);
/* Ends the child (SIGTERM, SIGKILL after 5 s); returns its exit status
 * (0-255, 128 + signal), or -1 when it had to be killed. */
int stub_stop(struct stub *s);
/* Runs mxstub with args to completion (timeout_ms) and returns its exit code,
 * or -1 on timeout/crash. */
int stub_run_exit(const char *const *args, int timeout_ms);

/* HTTP through libcurl. key NULL: no x-nxopen-api-key header. */
int http_get(const char *url, const char *key, bool gzip, struct resp *r);
int http_post(const char *url, struct resp *r);
void resp_free(struct resp *r);

/* stub_post - POST to an mxstub control path ("/__stub/config?latency_ms=5");
 * returns the status (0: no answer). */
long stub_post(struct stub *st, const char *path_query);

/* GET /maplestory/v1/id for name; fills ocid (33 bytes). Returns status. */
long stub_ocid(struct stub *s, const char *name, char *ocid);
/* stub_first_character - the first character name of key's account (GET
 * /maplestory/v1/character/list) into out. Returns 0 or -1. */
int stub_first_character(struct stub *s, const char *key, char *out, size_t cap);
/* one counter from GET /__stub/stats, by its JSON key (first match) */
long long stub_stat(struct stub *s, const char *key);

/* raw sockets */
int raw_connect(int port);
/* send all of buf while collecting input until `responses` complete HTTP
 * responses arrived, the peer closed, or timeout_ms passed. The input is
 * stored in *in (malloc'd, NUL-terminated). Returns the number of complete
 * responses seen. */
int raw_exchange(int fd, const char *buf, size_t len, int responses, int timeout_ms, char **in,
                 size_t *in_len);
/* read until EOF or timeout; returns bytes read, -1 on timeout */
ssize_t raw_read_to_eof(int fd, char *buf, size_t cap, int timeout_ms);

double now_ms(void);

#endif
