/* cl_actors.h - actors shared by the cluster tests and cl_node: an echo
 * server, a FIFO-checking sink and a driver that performs sends and
 * requests on behalf of a non-actor thread (commands arrive as local-only
 * pointer messages, results are written back into the command). */
#ifndef CL_ACTORS_H
#define CL_ACTORS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "mx_actor.h"

/* echo: answers a test_echo request with n + 1 and the same text. */
extern const struct mx_behaviour cl_echo_beh;

/* sink: counts test_kv messages and checks that seq grows per sender. */
struct cl_sink_stats {
    _Atomic uint64_t received;
    _Atomic uint64_t out_of_order;
    _Atomic uint64_t last_epoch;
};
extern const struct mx_behaviour cl_sink_beh; /* init arg: struct cl_sink_stats * */

enum cl_op {
    CL_REQ_ADDR,   /* request test_echo{n} to `to`, timeout_ms */
    CL_REQ_NAMED,  /* request test_echo{n} to name on node */
    CL_SEND_NAMED, /* count test_kv to name on node, seq 1..count, epoch */
    CL_SEND_ADDR,  /* count test_kv to `to` */
    CL_SEND_PTR,   /* a pointer message to `to`: must be refused */
};

struct cl_cmd {
    enum cl_op op;
    struct mx_addr to;
    uint64_t node;
    char name[64];
    uint64_t n;
    uint32_t count;
    uint32_t timeout_ms;
    uint64_t epoch;
    uint64_t seq0; /* test_kv seq numbers are seq0 + 1 .. seq0 + count */
    /* results */
    _Atomic int done;
    int rc;          /* first send error, or 0 */
    uint32_t sent;   /* sends that returned 0 */
    uint32_t failed; /* sends that failed */
    uint64_t corr;   /* a request's correlation id */
};

/* driver results of requests */
struct cl_driver_stats {
    _Atomic uint64_t replies;
    _Atomic uint64_t timeouts;
    _Atomic uint64_t last_n;
    _Atomic uint64_t bad;
};
extern const struct mx_behaviour cl_driver_beh; /* init arg: struct cl_driver_stats * */

/* cl_run - hand cmd to the driver at drv and wait (<= 10 s) for it to be
 * done. Returns 0, or -1 on timeout. From a non-scheduler thread. */
int cl_run(mx_system_t *sys, struct mx_addr drv, struct cl_cmd *cmd);

#endif
