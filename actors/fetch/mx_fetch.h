/* mx_fetch.h - the fetcher actor: the only code that calls the Nexon Open API.
 *
 * One fetcher per node drives libcurl's multi interface from its scheduler's
 * libuv loop (no blocking call on a loop thread): keep-alive connections,
 * gzip, connect and total timeouts, up to max_attempts tries with
 * exponential backoff and jitter on timeouts, connection errors and 5xx
 * (never on 4xx), a circuit breaker (mx_breaker.h), and a bound on
 * concurrent upstream calls with a bounded waiting queue behind it.
 *
 * Callers send a fetch_req (mx_fetch_request_new) with mx_request and get a
 * fetch_rep (mx_fetch_reply_read). In process the response body travels as
 * the reply's local pointer payload (struct mx_fetch_body), never copied
 * into msgpack; it is copied into the encoded body only for requests that
 * ask for it (inline_body) or that come from another node.
 * Reference: docs/fetcher.md.
 */
#ifndef MX_FETCH_H
#define MX_FETCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mx_actor.h"

#define MX_FETCH_NAME "fetcher" /* registered name when so->name is NULL */
#define MX_FETCH_BASE_URL "https://open.api.nexon.com"
#define MX_FETCH_KEY_MAX 512u  /* API key bytes at most */
#define MX_FETCH_ARG_MAX 1024u /* argument bytes at most */

/* What to fetch (fetch_req.kind). */
enum mx_fetch_kind {
    MX_FETCH_ID = 1,        /* /maplestory/v1/id?character_name=ARG -> {ocid} */
    MX_FETCH_BASIC = 2,     /* /maplestory/v1/character/basic?ocid=ARG */
    MX_FETCH_EQUIPMENT = 3, /* /maplestory/v1/character/item-equipment?ocid=ARG */
    MX_FETCH_LIST = 4,      /* /maplestory/v1/character/list with the caller's key */
};

struct mx_fetch_opts {
    const char *base_url;        /* no trailing slash needed; copied at spawn */
    const char *api_key;         /* the node's key (x-nxopen-api-key); copied; may be NULL */
    uint32_t connect_timeout_ms; /* TCP + TLS connect, per attempt */
    uint32_t total_timeout_ms;   /* whole attempt, per attempt (capped by the request deadline) */
    uint32_t max_attempts;       /* tries per request, >= 1 */
    uint32_t backoff_base_ms;    /* delay before try n+1: base * 2^(n-1), jittered to [d/2, d] */
    uint32_t backoff_max_ms;     /* cap of that delay */
    uint32_t max_inflight;       /* requests being worked on (attempts + backoff) at most */
    uint32_t max_queued;         /* requests waiting for a slot at most; more are refused */
    uint32_t max_body_bytes;     /* a larger response is an upstream error */
    uint32_t breaker_window;     /* outcomes remembered (<= 64) */
    uint32_t breaker_threshold_pct; /* failure % of a full window that opens it */
    uint32_t breaker_open_ms;       /* time open before half-open */
    uint32_t breaker_probes;        /* half-open attempts in flight at most */
    /* Egress node: service-key requests from this node are passed to the
     * fetcher of the member called via (copied at spawn; NULL or "" =
     * none), whose upstream bound, breaker and address then serve the
     * cluster; user-key requests and requests from other nodes are always
     * served here. resolve(resolve_ctx, name, &node_id) names the member's
     * node id (0 on success; it runs on the fetcher's thread and must not
     * block); while it fails, or names this node, requests are served here
     * (counted in via_local). At most max_inflight + max_queued requests
     * are passed on at once; more are refused. */
    const char *via;
    int (*resolve)(void *resolve_ctx, const char *name, uint64_t *node_id);
    void *resolve_ctx;
};

#define MX_FETCH_OPTS_DEFAULT                                                                      \
    {                                                                                              \
        .base_url = MX_FETCH_BASE_URL, .api_key = NULL, .connect_timeout_ms = 2000,                \
        .total_timeout_ms = 5000, .max_attempts = 3, .backoff_base_ms = 100,                       \
        .backoff_max_ms = 2000, .max_inflight = 32, .max_queued = 256,                             \
        .max_body_bytes = 16u << 20, .breaker_window = 10, .breaker_threshold_pct = 50,            \
        .breaker_open_ms = 10000, .breaker_probes = 1                                              \
    }

/* mx_fetch_opts_default - fill o with MX_FETCH_OPTS_DEFAULT. */
void mx_fetch_opts_default(struct mx_fetch_opts *o);

/* mx_fetch_global_init - curl_global_init(CURL_GLOBAL_DEFAULT) once per
 * process (later calls do nothing and return its first result). Call it
 * from main (mxnode, tests) before any thread uses libcurl; mx_fetch_spawn
 * calls it too, but libcurl's global init is not thread-safe against other
 * threads using libcurl at that moment. Returns 0 or MX_EINTERNAL. */
int mx_fetch_global_init(void);

/* mx_fetch_spawn - validate o (MX_EINVAL; an error log line names the
 * bad option), copy it, and spawn a fetcher with spawn options so (NULL =
 * MX_SPAWN_OPTS_DEFAULT). It registers under so->name, or under "fetcher"
 * when so or so->name is NULL. Returns 0 and its address in *out (may be
 * NULL), or mx_spawn's errors. The fetcher's handler never fails (every
 * error is a reply), so the runtime never restarts it; its options and
 * stats live until it stops. Any thread. */
int mx_fetch_spawn(mx_system_t *sys, const struct mx_fetch_opts *o, const struct mx_spawn_opts *so,
                   struct mx_addr *out);

/* The fetcher's counters, declared once (mx_metrics.h): each fetcher
 * registers its block as actor "fetch", instance its spawn name; Prometheus
 * shows mx_fetch_total{event=...} and the gauges mx_fetch_<field>, mxctl
 * stats the same fields under metrics.fetch. */
#define MX_FETCH_METRICS(X)                                                                        \
    X(COUNTER, requests, "fetch requests received", "", "event=\"request\"")                       \
    X(COUNTER, ok, "replies with status 0", "", "event=\"ok\"")                                    \
    X(COUNTER, not_found, "replies: character not found", "", "event=\"not_found\"")               \
    X(COUNTER, invalid_key, "replies: invalid or forbidden API key", "", "event=\"invalid_key\"")  \
    X(COUNTER, timeouts, "replies: deadline passed", "", "event=\"timeout\"")                      \
    X(COUNTER, upstream_errors, "replies: upstream error", "", "event=\"upstream_error\"")         \
    X(COUNTER, breaker_rejected, "replies: circuit breaker open", "",                              \
      "event=\"breaker_rejected\"")                                                                \
    X(COUNTER, refused, "replies: queue full", "", "event=\"refused\"")                            \
    X(COUNTER, bad_requests, "undecodable or invalid requests", "", "event=\"bad_request\"")       \
    X(COUNTER, upstream_calls, "HTTP attempts started", "", "event=\"upstream_call\"")             \
    X(COUNTER, retries, "attempts after a request's first", "", "event=\"retry\"")                 \
    X(COUNTER, attempt_timeouts, "attempts that timed out", "", "event=\"attempt_timeout\"")       \
    X(COUNTER, attempt_conn_errors, "attempts that failed to connect, send or receive", "",        \
      "event=\"attempt_conn_error\"")                                                              \
    X(COUNTER, attempt_5xx, "attempts answered 5xx", "", "event=\"attempt_5xx\"")                  \
    X(COUNTER, breaker_opens, "times the breaker opened", "", "event=\"breaker_open\"")            \
    X(COUNTER, body_bytes, "response bytes received (decoded)")                                    \
    X(GAUGE, breaker_state, "circuit breaker: 0 closed, 1 open, 2 half-open")                      \
    X(GAUGE, inflight, "upstream transfers running now")                                           \
    X(GAUGE, inflight_max, "highest inflight seen")                                                \
    X(GAUGE, active, "requests holding a slot (attempt or backoff)")                               \
    X(GAUGE, queued, "requests waiting for a slot")                                                \
    X(GAUGE, queued_max, "highest queued seen")                                                    \
    X(COUNTER, via_passed, "requests passed to the egress node's fetcher")                         \
    X(COUNTER, via_local, "egress node unknown or down: served here")                              \
    X(GAUGE, via_pending, "passed on, not answered yet")

/* Counters, read from any thread with mx_fetch_stats. */
struct mx_fetch_stats {
    uint64_t requests;         /* fetch_req messages received */
    uint64_t ok;               /* replies with status 0 */
    uint64_t not_found;        /* replies MX_ENOTFOUND */
    uint64_t invalid_key;      /* replies MX_EINVAL (invalid or forbidden API key) */
    uint64_t timeouts;         /* replies MX_ETIMEDOUT */
    uint64_t upstream_errors;  /* replies MX_EUPSTREAM */
    uint64_t breaker_rejected; /* replies MX_EUNAVAIL: breaker open */
    uint64_t refused;          /* replies MX_EUNAVAIL: queue full */
    uint64_t bad_requests;     /* undecodable or invalid requests (MX_EDECODE, or not a request) */
    uint64_t upstream_calls;   /* HTTP attempts started */
    uint64_t retries;          /* attempts after a request's first */
    uint64_t attempt_timeouts; /* attempts that timed out */
    uint64_t attempt_conn_errors; /* attempts that failed to connect, send or receive */
    uint64_t attempt_5xx;         /* attempts answered 5xx */
    uint64_t body_bytes;          /* response bytes received (decoded) */
    uint64_t breaker_opens;       /* times the breaker opened */
    uint32_t breaker_state;       /* enum mx_breaker_state: 0 closed, 1 open, 2 half-open */
    uint32_t inflight;            /* upstream transfers running now */
    uint32_t inflight_max;        /* highest inflight seen */
    uint32_t active;              /* requests holding a slot (attempt or backoff) */
    uint32_t queued;              /* requests waiting for a slot */
    uint32_t queued_max;          /* highest queued seen */
    uint64_t via_passed;          /* requests passed to the egress node's fetcher */
    uint64_t via_local;           /* egress node unknown or down: served here */
    uint32_t via_pending;         /* passed on, not answered yet */
};

/* mx_fetch_stats - the counters of the fetcher at addr in sys, read
 * without locks on its loop (each field exact, the whole a near-snapshot).
 * Returns 0, or MX_ENOTFOUND when no such fetcher is running. Any thread. */
int mx_fetch_stats(mx_system_t *sys, struct mx_addr fetcher, struct mx_fetch_stats *out);

/* A response body: the ptr payload of a fetch_rep with status 0. */
struct mx_fetch_body {
    size_t len;
    char *data; /* len bytes plus a NUL (not counted), malloc'd */
};

/* mx_fetch_body_free - free a body taken with mx_fetch_reply_take_body. */
void mx_fetch_body_free(struct mx_fetch_body *b);

/* mx_fetch_request_new - a fetch_req message for kind and arg (NUL-
 * terminated; NULL = empty) with api_key (NULL or "" = the node's key;
 * required for MX_FETCH_LIST). inline_body asks for the body in the
 * encoded reply too (for callers on other nodes). Send it with mx_request
 * (the timeout is the caller's deadline; the fetcher stops working on it
 * then). Returns 0 and *out (the caller's until sent), or MX_EINVAL (bad
 * kind, arg or key over MX_FETCH_ARG_MAX / MX_FETCH_KEY_MAX). Any thread. */
int mx_fetch_request_new(enum mx_fetch_kind kind, const char *arg, const char *api_key,
                         bool inline_body, struct mx_msg **out);

/* A decoded reply. Strings and body borrow from the message. */
struct mx_fetch_result {
    int status;           /* 0 or MX_ENOTFOUND, MX_EINVAL, MX_EUNAVAIL, MX_ETIMEDOUT, MX_EUPSTREAM,
                             MX_EDECODE, MX_ESTOPPED */
    uint32_t http_status; /* last upstream answer; 0 = none */
    uint32_t attempts;    /* upstream calls made */
    uint32_t retry_after_ms; /* with MX_EUNAVAIL: when to try again */
    struct mx_str error;     /* reason; empty on success */
    const char *body;        /* the response body (ptr payload or inline copy); NULL if none */
    size_t body_len;
};

/* mx_fetch_reply_read - decode a fetch_rep (borrowed). Returns 0, or
 * MX_EDECODE (not a fetch_rep or malformed). The result borrows from m:
 * valid while m is (the handler's duration). */
int mx_fetch_reply_read(const struct mx_msg *m, struct mx_fetch_result *out);

/* mx_fetch_reply_take_body - take the body payload out of a fetch_rep the
 * handler is given (legal even though the handler only borrows m: the
 * runtime then frees the message without it). Returns the body (the
 * caller's, free with mx_fetch_body_free) or NULL when m carries none (an
 * error, or an inline-only reply). Owner thread of m's handler. */
struct mx_fetch_body *mx_fetch_reply_take_body(struct mx_msg *m);

#endif
