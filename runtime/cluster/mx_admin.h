/* mx_admin.h - the admin endpoint that mxctl talks to.
 *
 * A node answers admin requests on its own nng rep socket (MX_ADMIN_ADDR),
 * separate from actor traffic, so inspection works while the data path is
 * saturated. One admin thread answers from counters that are read without
 * pausing any loop (mx_actors_foreach, mx_deadletters, mx_system_stats,
 * mx_remote_stats); a mailbox peek is a control-lane request to the actor
 * (mx_actor_peek) with a timeout. Requests and answers are msgpack maps;
 * JSON produced by the node (app sections, decoded messages) travels as
 * msgpack ext type MX_ADMIN_EXT_JSON. docs/cluster.md has the commands.
 *
 * Bound to a non-loopback address the endpoint requires a token
 * (MX_ADMIN_TOKEN); when a token is configured it is checked on every
 * address, in constant time. Refusals are counted.
 */
#ifndef MX_ADMIN_H
#define MX_ADMIN_H

#include <stdbool.h>
#include <stdint.h>

#include "mx_actor.h"
#include "mx_jsonw.h"
#include "mx_remote.h"

typedef struct mx_admin mx_admin_t;

#define MX_ADMIN_EXT_JSON 1 /* msgpack ext type: bytes are one JSON value */
#define MX_ADMIN_MAX_SECTIONS 16

struct mx_admin_opts {
    const char *url;     /* tcp://host:port (port 0: any), ipc://path */
    const char *token;   /* required off loopback; NULL or "" = none */
    mx_remote_t *remote; /* transport counters for stats; may be NULL */
    const char *version; /* reported by stats; may be NULL */
    const mx_tls_t *tls; /* mutual TLS (tcp:// becomes tls+tcp://); NULL = plaintext.
                          * Must outlive the endpoint. */
};

/* One cluster member as the registry knows it (members command). */
struct mx_member {
    char name[64];
    uint64_t node_id;
    char state[16]; /* joining, up, draining */
    char nng[128];
    char admin[128];
    char http[64];
    int64_t age_ms; /* since its record was last refreshed */
};

/* One singleton lease (leases command). */
struct mx_lease {
    char name[64];
    char holder[64]; /* node name */
    uint64_t epoch;
    int64_t ttl_ms;
};

/* Providers run on the admin thread; they must not block for long. */
typedef uint32_t (*mx_admin_members_fn)(struct mx_member *out, uint32_t max, void *ctx);
typedef uint32_t (*mx_admin_leases_fn)(struct mx_lease *out, uint32_t max, void *ctx);
/* Write exactly one JSON value (usually an object) into w. */
typedef void (*mx_admin_section_fn)(struct mx_jsonw *w, void *ctx);
/* Start draining the node; return 0 or an MX_E* code. */
typedef int (*mx_admin_drain_fn)(void *ctx);

/* mx_admin_start - bind opts->url and start the admin thread. Returns 0 and
 * *out, MX_ECONFIG (non-loopback address without a token), MX_EINVAL,
 * MX_EIO (bind failed). Non-scheduler thread. */
int mx_admin_start(mx_system_t *sys, const struct mx_admin_opts *opts, mx_admin_t **out);

/* mx_admin_stop - close the socket, join the thread, free. Call before the
 * system and the transport it reads are freed. NULL is a no-op. */
void mx_admin_stop(mx_admin_t *a);

/* mx_admin_port - the bound TCP port, or 0. */
int mx_admin_port(const mx_admin_t *a);

/* mx_admin_add_section - add {name: fn(...)} to the stats answer (app
 * counters: HTTP, fetcher). Returns 0, MX_ELIMIT (16 sections), MX_EEXISTS,
 * MX_EINVAL. Any thread; fn and ctx must outlive the endpoint. */
int mx_admin_add_section(mx_admin_t *a, const char *name, mx_admin_section_fn fn, void *ctx);

/* mx_admin_set_members, _set_leases, _set_drain - install the providers
 * (the registry and lease code will). NULL clears. Any thread. */
void mx_admin_set_members(mx_admin_t *a, mx_admin_members_fn fn, void *ctx);
void mx_admin_set_leases(mx_admin_t *a, mx_admin_leases_fn fn, void *ctx);
void mx_admin_set_drain(mx_admin_t *a, mx_admin_drain_fn fn, void *ctx);
/* mx_admin_set_undrain - the "undrain" command's provider (same type as
 * drain: start serving again; 0 or an MX_E* code). NULL clears. */
void mx_admin_set_undrain(mx_admin_t *a, mx_admin_drain_fn fn, void *ctx);

/* mx_admin_draining - whether a drain command was received. Any thread. */
bool mx_admin_draining(const mx_admin_t *a);

/* mx_admin_token_equal - constant-time comparison of a presented token with
 * the configured one (time depends only on the configured length). */
bool mx_admin_token_equal(const char *want, const char *got, size_t got_len);

#endif
