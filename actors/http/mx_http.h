/* mx_http.h - the HTTP/1.1 server layer of the http-acceptor.
 *
 * mx_http_start() spawns one acceptor actor per scheduler, all listening on
 * one port (SO_REUSEPORT). Each acceptor parses requests with llhttp
 * (keep-alive, pipelining, HTTP/1.0, chunked bodies), enforces the limits of
 * struct mx_http_opts, routes by method and path pattern and calls the
 * application's handler on its scheduler thread. A handler answers at once
 * (mx_http_respond*, mx_http_error) or later (returns MX_HTTP_PENDING and
 * answers with the same request handle, e.g. from the app's on_message hook
 * when a reply to its mx_request arrives). Responses leave each connection
 * strictly in request order.
 *
 * Every response carries Date, Content-Type, Content-Length and the
 * request's W3C traceparent. Errors have the JSON body
 * {"status":N,"code":"...","message":"...","timestamp":"ISO-8601"}.
 *
 * Bodies are refcounted immutable blobs (struct mx_blob) written with
 * uv_write straight from the blob, so one cached document is sent to many
 * connections (on any scheduler) without copying. struct mx_http_doc holds
 * a document with plain and gzip variants and ETags.
 *
 * Threads: handlers, mx_http_req_* and mx_http_respond* run on the acceptor's
 * scheduler thread only. mx_http_start/stop/free from a non-scheduler thread;
 * mx_http_stats and mx_http_drain from any thread. Blobs and docs: any thread.
 */
#ifndef MX_HTTP_H
#define MX_HTTP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "mx_actor.h"
#include "mx_blob.h" /* struct mx_blob, struct mx_http_doc */

/* ---- trace context ---- */

/* mx_http_traceparent_parse - parse a W3C traceparent
 * "00-<32 hex>-<16 hex>-<2 hex>" (lowercase; version ff, all-zero ids and a
 * version 00 with trailing data are invalid). Returns true and fills the
 * ids and flags. Any thread. */
bool mx_http_traceparent_parse(const char *s, size_t len, uint8_t trace_id[16], uint8_t span_id[8],
                               uint8_t *flags);
/* mx_http_traceparent_new - random trace and span ids (never all zero). */
void mx_http_traceparent_new(uint8_t trace_id[16], uint8_t span_id[8]);
/* mx_http_traceparent_format - "00-...-...-xx" plus NUL into out (56 bytes). */
void mx_http_traceparent_format(const uint8_t trace_id[16], const uint8_t span_id[8], uint8_t flags,
                                char out[56]);

/* ---- the PROXY protocol (v1 and v2, docs/http.md) ---- */

#define MX_PROXY_MAX_HEADER 1040u /* longest header accepted (v2: 16 + 1024), bytes */

/* A parsed PROXY header. */
struct mx_proxy_hdr {
    int version;                 /* 1 or 2 */
    bool local;                  /* LOCAL / UNKNOWN / not TCP: keep the real peer */
    struct sockaddr_storage src; /* the client (AF_INET or AF_INET6) unless local */
    struct sockaddr_storage dst;
};

/* mx_proxy_parse - parse a PROXY header at the start of buf (len bytes).
 * Returns 0 and *used > 0 with *out filled when a whole header is there;
 * 0 and *used == 0 when buf is a header's beginning and more bytes are
 * needed; MX_ENOTFOUND when buf does not start with a PROXY signature (an
 * HTTP request); MX_EDECODE when it does but the header is malformed or
 * over MX_PROXY_MAX_HEADER. Never reads past len. Any thread. */
int mx_proxy_parse(const uint8_t *buf, size_t len, struct mx_proxy_hdr *out, size_t *used);

/* ---- requests ---- */

/* One request, owned by the server until the app answers it. Handle only
 * valid until mx_http_respond*, mx_http_error returns. */
typedef struct mx_http_req mx_http_req_t;

enum mx_http_rc {
    MX_HTTP_DONE = 0,    /* the handler answered (or will never: the server answers 500) */
    MX_HTTP_PENDING = 1, /* the app answers later with the same handle */
};

/* A handler: runs on the acceptor's thread inside the uv read callback.
 * app_state is the acceptor's state from mx_http_app.init. Return
 * MX_HTTP_DONE after answering, MX_HTTP_PENDING to answer later; a handler
 * that returns DONE (or a negative error) without answering gets a 500. */
typedef int (*mx_http_handler_fn)(mx_http_req_t *r, void *app_state);

struct mx_http_route {
    const char *method; /* "GET", "POST", ...; a GET route also answers HEAD */
    /* "/api/v4/characters/{ign}/expectation": literal segments match exactly,
     * {name} one segment (percent-decoded, valid UTF-8, non-empty, else the
     * router answers 400 C001), a last segment "**" the rest of the path
     * (param "**", possibly empty). First matching route wins. */
    const char *pattern;
    mx_http_handler_fn fn;
    uint32_t flags; /* for the app, except MX_HTTP_ROUTE_LIGHT */
};

/* Route flag: the handler always answers at once (never MX_HTTP_PENDING),
 * so the route is served even while the acceptor's app holds max_in_app
 * requests (health and readiness probes). A light handler that returns
 * PENDING is still counted in max_in_app. */
#define MX_HTTP_ROUTE_LIGHT (1u << 31)

/* mx_http_req_method - "GET", "POST", ... */
const char *mx_http_req_method(const mx_http_req_t *r);
/* mx_http_req_path - the raw path as sent (no query, not decoded). */
const char *mx_http_req_path(const mx_http_req_t *r);
/* mx_http_req_route - the matched route (never NULL inside a handler). */
const struct mx_http_route *mx_http_req_route(const mx_http_req_t *r);
/* mx_http_req_param - a path parameter by name, percent-decoded, valid UTF-8,
 * NUL-terminated; NULL if the route has no such parameter. */
const char *mx_http_req_param(const mx_http_req_t *r, const char *name);
/* mx_http_req_query - a query parameter by name (the first occurrence),
 * percent-decoded ('+' is a space); "" when given without a value; NULL when
 * absent. */
const char *mx_http_req_query(const mx_http_req_t *r, const char *name);
/* mx_http_req_header - a request header by name (case-insensitive, first
 * occurrence; surrounding blanks removed); NULL when absent. */
const char *mx_http_req_header(const mx_http_req_t *r, const char *name);
/* mx_http_req_header_n - the n-th (0-based) occurrence of a request header
 * (case-insensitive, trimmed), in the order received; NULL past the last.
 * For list headers a proxy may split over several lines (X-Forwarded-For). */
const char *mx_http_req_header_n(const mx_http_req_t *r, const char *name, unsigned n);
/* mx_http_req_body - the body (de-chunked) and its length; NULL/0 if none. */
const uint8_t *mx_http_req_body(const mx_http_req_t *r, size_t *len);
/* mx_http_req_peer_ip - the peer's IP address as text ("" in tests). */
const char *mx_http_req_peer_ip(const mx_http_req_t *r);
/* mx_http_req_peer_addr - the peer's socket address (family 0 in tests). */
const struct sockaddr_storage *mx_http_req_peer_addr(const mx_http_req_t *r);
/* mx_http_req_traceparent - the traceparent echoed in the response (the
 * client's when valid, else a generated one). */
const char *mx_http_req_traceparent(const mx_http_req_t *r);
/* mx_http_req_trace_hex - the trace id as 32 hex digits (for logs). */
const char *mx_http_req_trace_hex(const mx_http_req_t *r);
/* mx_http_req_user / mx_http_req_set_user - a pointer for the app; the
 * server never touches it (free what it points to before answering). */
void *mx_http_req_user(const mx_http_req_t *r);
void mx_http_req_set_user(mx_http_req_t *r, void *user);
/* mx_http_req_actor - the acceptor actor (NULL in socket-free tests): for
 * mx_request from a handler (see mx_http_request). */
mx_actor_t *mx_http_req_actor(const mx_http_req_t *r);
/* mx_http_req_alive - false once the client went away (answering then only
 * frees the request). */
bool mx_http_req_alive(const mx_http_req_t *r);

/* mx_http_stamp - copy the request's trace and span ids into m's envelope.
 * Handlers run in uv callbacks, where mx_send has no message to take a trace
 * from: stamp every message sent on behalf of a request. */
void mx_http_stamp(const mx_http_req_t *r, struct mx_msg *m);
/* mx_http_request - mx_http_stamp + mx_request from the acceptor actor.
 * Same returns and ownership as mx_request. Acceptor thread. */
int mx_http_request(mx_http_req_t *r, struct mx_addr to, struct mx_msg *m, uint32_t timeout_ms,
                    uint64_t *corr);

/* ---- answering ---- */

/* mx_http_add_header - add a response header (Retry-After, ETag, Allow,
 * X-RateLimit-Remaining, ...) before answering. The server's own headers
 * (Date, Content-Type, Content-Length, Connection, traceparent) are refused.
 * Returns 0, MX_EINVAL (CR/LF/NUL or not a token name) or MX_ETOOBIG (over
 * 2 KiB of extra headers per response). */
int mx_http_add_header(mx_http_req_t *r, const char *name, const char *value);

/* mx_http_respond - answer with a copy of len bytes of body. The request
 * handle is consumed in every case (always answered or, if the client left,
 * freed). Returns 0, MX_EINVAL (status not 100-599 or content_type NULL with
 * a body: a 500 is sent instead) or MX_ESTOPPED (client gone; freed). */
int mx_http_respond(mx_http_req_t *r, int status, const char *content_type, const void *body,
                    size_t len);
/* mx_http_respond_blob - as mx_http_respond with a blob: a reference is
 * taken (the caller keeps its own); the bytes are written without copying. */
int mx_http_respond_blob(mx_http_req_t *r, int status, const char *content_type,
                         struct mx_blob *body);
/* mx_http_respond_doc - 200 with the document: the gzip variant with
 * Content-Encoding: gzip when the request's Accept-Encoding allows it, 304
 * without a body when If-None-Match lists the variant's ETag; ETag and Vary:
 * Accept-Encoding always. A reference is taken on the bytes sent. */
int mx_http_respond_doc(mx_http_req_t *r, const struct mx_http_doc *d);
/* mx_http_error - the JSON error body {"status","code","message","timestamp"}
 * with that status (e.g. 400 "C001"). Consumes r like mx_http_respond. */
int mx_http_error(mx_http_req_t *r, int status, const char *code, const char *message);

/* ---- the server ---- */

struct mx_http_opts {
    const char *addr;           /* "host:port" (IPv4 or [IPv6]); port 0 = any */
    uint32_t max_conns;         /* open connections per node; past it: 503 + close. 0 = 10000 */
    uint32_t max_header_bytes;  /* request line + headers; over: 431. 0 = 16384 */
    uint32_t max_body_bytes;    /* over: 413. 0 = 1 MiB */
    uint32_t header_timeout_ms; /* request head not complete in time: 408 + close. 0 = 10000 */
    uint32_t idle_timeout_ms;   /* keep-alive idle: close silently. 0 = 60000 */
    uint32_t max_pipeline;      /* requests queued per connection; reading stops. 0 = 32 */
    uint32_t
        max_output_bytes; /* unwritten response bytes per connection; reading stops. 0 = 4 MiB */
    uint32_t backlog;     /* listen backlog. 0 = 511 */
    uint32_t max_in_app;  /* requests an acceptor has handed to the app (handler returned
                             MX_HTTP_PENDING) and not yet answered; at the bound each
                             connection parses one more request and holds it (reading
                             stops) until answers come back, oldest held first; routes
                             flagged MX_HTTP_ROUTE_LIGHT are answered at once. 0 = 1024 */
    uint32_t body_timeout_ms;       /* from the end of a request's head to the end of its body
                                       (whatever the pace of the bytes): 408 + close. 0 = 30000 */
    uint32_t max_chunk_ext_bytes;   /* chunk extension bytes per request: 413 + close. 0 = 4096 */
    uint32_t max_conns_per_client;  /* open connections per client address (IPv4, or IPv6 /64),
                                       node-wide: past it 503 + close. Loopback (127.0.0.1, ::1)
                                       and peers proxy_trusted accepts are not counted; behind
                                       the PROXY protocol the client it names is.
                                       0 = max_conns / 4 (at least 1) */
    uint64_t max_buffered_bytes;    /* node-wide budget: unwritten answer bytes + request heads
                                       and bodies held in memory. At the budget no connection
                                       starts a new request (reading stops) and a body that would
                                       grow past it gets 503; a connection held back this way for
                                       2 s with unwritten answers is closed. 0 = 256 MiB */
    uint32_t min_drain_bytes_per_s; /* a connection with unwritten answers must take at least
                                       this many bytes per 10 s window (idle_timeout_ms / 2
                                       if shorter), on average, or it is
                                       reset (a client that reads 1 KiB a minute does not pin
                                       its answers, nor the kernel's copy). 0 = 1024 */
    /* PROXY protocol: NULL = off. Otherwise a connection may begin with a
     * v1 or v2 header: from a peer proxy_trusted accepts, its client
     * address becomes the connection's peer (mx_http_req_peer_ip/_addr);
     * from any other peer the connection is closed (counted). A malformed
     * header closes the connection (counted). Called on the acceptor's
     * thread; ctx must outlive the server. */
    bool (*proxy_trusted)(const struct sockaddr_storage *peer, void *ctx);
    void *proxy_ctx;
    /* Answers the layer writes itself (400 and 404/405 from the router, 408,
     * 413, 431, 500 S000): NULL, or called on r just before, so the app can
     * add the headers every answer of its carries (security headers, a
     * correlation id). Called on the acceptor's thread; ctx must outlive
     * the server. */
    void (*decorate)(mx_http_req_t *r, void *ctx);
    void *decorate_ctx;
};

#define MX_HTTP_MAX_HEADER_BYTES 16384u
#define MX_HTTP_MAX_BODY_BYTES (1u << 20)
#define MX_HTTP_HEADER_TIMEOUT_MS 10000u
#define MX_HTTP_IDLE_TIMEOUT_MS 60000u
#define MX_HTTP_MAX_PIPELINE 32u
#define MX_HTTP_MAX_OUTPUT_BYTES (4u << 20)
#define MX_HTTP_MAX_CONNS 10000u
#define MX_HTTP_MAX_IN_APP 1024u
#define MX_HTTP_BODY_TIMEOUT_MS 30000u
#define MX_HTTP_MAX_CHUNK_EXT_BYTES 4096u
#define MX_HTTP_MAX_BUFFERED_BYTES (256ull << 20)
#define MX_HTTP_MIN_DRAIN_BYTES_PER_S 1024u

/* The application on top: hooks run on each acceptor's thread. */
struct mx_http_app {
    const struct mx_http_route *routes;
    size_t nroutes;
    void *ctx; /* shared, read-only for the hooks (the app's config) */
    /* init - make the acceptor's app state (*state) before it accepts.
     * Non-zero fails the acceptor's start. May be NULL. */
    int (*init)(mx_actor_t *self, void *ctx, void **state);
    /* fini - free the app state when the acceptor stops. Requests the app
     * still holds may be answered here; those left are freed after fini
     * returns (they are invalid then). May be NULL. */
    void (*fini)(mx_actor_t *self, void *ctx, void *state);
    /* on_message - every message the acceptor receives that is not the
     * server's own (replies to mx_http_request: match env.corr). Borrowed.
     * A negative return restarts the acceptor (connections are dropped). May
     * be NULL (messages are then ignored). */
    int (*on_message)(mx_actor_t *self, void *state, struct mx_msg *m);
};

typedef struct mx_http mx_http_t;

/* Counters, summed over acceptors. Each is exact; together a snapshot. */
enum mx_http_limit {
    MX_HTTP_LIM_BAD_REQUEST,  /* 400: malformed request, bad path or param */
    MX_HTTP_LIM_HEADER_SIZE,  /* 431 */
    MX_HTTP_LIM_BODY_SIZE,    /* 413 */
    MX_HTTP_LIM_HEADER_TIME,  /* 408 */
    MX_HTTP_LIM_IDLE,         /* idle keep-alive closed */
    MX_HTTP_LIM_PIPELINE,     /* reading paused: pipeline full */
    MX_HTTP_LIM_OUTPUT,       /* reading paused: output buffer full */
    MX_HTTP_LIM_CONNS,        /* connection refused: max_conns */
    MX_HTTP_LIM_IN_APP,       /* a request held: max_in_app requests wait for the app */
    MX_HTTP_LIM_BODY_TIME,    /* 408: body not complete within body_timeout_ms */
    MX_HTTP_LIM_CHUNK_EXT,    /* 413: chunk extensions over max_chunk_ext_bytes */
    MX_HTTP_LIM_CLIENT_CONNS, /* connection refused: max_conns_per_client */
    MX_HTTP_LIM_MEMORY,       /* max_buffered_bytes: reading paused (closes: mem_closed) */
    MX_HTTP_LIM_DRAIN,        /* closed: answers not read at min_drain_bytes_per_s */
    MX_HTTP_LIM__COUNT
};

/* The counters of one acceptor, declared once (mx_metrics.h): each acceptor
 * registers its block as actor "http", instance "acceptor-N". Prometheus
 * keeps the names mx_http_connections_open, mx_http_requests_total,
 * mx_http_responses_total{class}, mx_http_limit_hits_total{limit}, ... */
#define MX_HTTP_METRICS(X)                                                                         \
    X(GAUGE, conns_open, "connections open", "connections_open")                                   \
    X(GAUGE, conns_lingering, "of conns_open: answered, FIN sent, the client's EOF awaited",       \
      "connections_lingering")                                                                     \
    X(COUNTER, conns_accepted, "connections accepted", "connections_accepted")                     \
    X(COUNTER, conns_refused, "connections refused (limits, untrusted PROXY)",                     \
      "connections_refused")                                                                       \
    X(COUNTER, conns_reset, "connections closed by a read/write error", "connections_reset")       \
    X(COUNTER, requests, "requests parsed (including refused ones)")                               \
    X(COUNTER, responses_1xx, "answers by status class", "responses", "class=\"1xx\"")             \
    X(COUNTER, responses_2xx, "answers by status class", "responses", "class=\"2xx\"")             \
    X(COUNTER, responses_3xx, "answers by status class", "responses", "class=\"3xx\"")             \
    X(COUNTER, responses_4xx, "answers by status class", "responses", "class=\"4xx\"")             \
    X(COUNTER, responses_5xx, "answers by status class", "responses", "class=\"5xx\"")             \
    X(COUNTER, dropped_responses, "answered after the client left")                                \
    X(COUNTER, limit_bad_request, "limit hits (docs/http.md), by limit", "limit_hits",             \
      "limit=\"bad_request\"")                                                                     \
    X(COUNTER, limit_header_size, "limit hits (docs/http.md), by limit", "limit_hits",             \
      "limit=\"header_size\"")                                                                     \
    X(COUNTER, limit_body_size, "limit hits (docs/http.md), by limit", "limit_hits",               \
      "limit=\"body_size\"")                                                                       \
    X(COUNTER, limit_header_time, "limit hits (docs/http.md), by limit", "limit_hits",             \
      "limit=\"header_time\"")                                                                     \
    X(COUNTER, limit_idle, "limit hits (docs/http.md), by limit", "limit_hits", "limit=\"idle\"")  \
    X(COUNTER, limit_pipeline, "limit hits (docs/http.md), by limit", "limit_hits",                \
      "limit=\"pipeline\"")                                                                        \
    X(COUNTER, limit_output, "limit hits (docs/http.md), by limit", "limit_hits",                  \
      "limit=\"output\"")                                                                          \
    X(COUNTER, limit_conns, "limit hits (docs/http.md), by limit", "limit_hits",                   \
      "limit=\"conns\"")                                                                           \
    X(COUNTER, limit_in_app, "limit hits (docs/http.md), by limit", "limit_hits",                  \
      "limit=\"in_app\"")                                                                          \
    X(COUNTER, limit_body_time, "limit hits (docs/http.md), by limit", "limit_hits",               \
      "limit=\"body_time\"")                                                                       \
    X(COUNTER, limit_chunk_ext, "limit hits (docs/http.md), by limit", "limit_hits",               \
      "limit=\"chunk_ext\"")                                                                       \
    X(COUNTER, limit_client_conns, "limit hits (docs/http.md), by limit", "limit_hits",            \
      "limit=\"client_conns\"")                                                                    \
    X(COUNTER, limit_memory, "limit hits (docs/http.md), by limit", "limit_hits",                  \
      "limit=\"memory\"")                                                                          \
    X(COUNTER, limit_drain, "limit hits (docs/http.md), by limit", "limit_hits",                   \
      "limit=\"drain_rate\"")                                                                      \
    X(COUNTER, bytes_in, "request bytes read")                                                     \
    X(COUNTER, bytes_out, "response bytes written")                                                \
    X(COUNTER, proxy_ok, "PROXY headers accepted (the peer address replaced)")                     \
    X(COUNTER, proxy_refused, "PROXY headers from untrusted peers: closed")                        \
    X(COUNTER, proxy_malformed, "malformed PROXY headers: closed")                                 \
    X(COUNTER, mem_trims, "times freed memory was handed back (malloc_trim)", "memory_trims")      \
    X(COUNTER, mem_closed, "connections the memory budget ended (503 or reset)", "memory_closed")

struct mx_http_stats {
    uint64_t conns_open, conns_accepted, conns_refused;
    uint64_t conns_lingering;   /* of conns_open: everything answered, FIN sent, the
                                   client's EOF awaited (at most 1 s) */
    uint64_t conns_reset;       /* closed by a read/write error (client went away) */
    uint64_t requests;          /* requests parsed (including refused ones) */
    uint64_t responses[6];      /* by status class: [1]=1xx ... [5]=5xx */
    uint64_t dropped_responses; /* answered after the client left */
    uint64_t limits[MX_HTTP_LIM__COUNT];
    uint64_t bytes_in, bytes_out;
    uint64_t proxy_ok;        /* PROXY headers accepted (the peer address replaced) */
    uint64_t proxy_refused;   /* PROXY headers from untrusted peers: closed */
    uint64_t proxy_malformed; /* malformed PROXY headers: closed */
    uint64_t buffered_bytes;  /* gauge: bytes counted against max_buffered_bytes now */
    uint64_t buffered_peak;   /* the highest buffered_bytes seen */
    uint64_t mem_trims;       /* times freed memory was handed back (malloc_trim) */
    uint64_t mem_closed;      /* connections the memory budget ended (503 or reset) */
};

/* mx_http_start - parse o->addr, bind one SO_REUSEPORT socket per scheduler
 * (the first to port 0 when asked, the others to the port it got), spawn one
 * acceptor actor per scheduler (pinned) and wait until each listens and has
 * run app->init. The route table is copied; app->ctx is borrowed for the
 * server's life. Returns 0, *out and the port in *bound_port (may be NULL);
 * or MX_EINVAL (bad options or route pattern), MX_EIO (bind/listen failed,
 * logged naming MX_HTTP_ADDR), MX_ETIMEDOUT or an mx_spawn error; nothing
 * is left running then. Blocks (< 5 s); not from a scheduler thread. */
int mx_http_start(mx_system_t *sys, const struct mx_http_opts *o, const struct mx_http_app *app,
                  mx_http_t **out, uint16_t *bound_port);

/* mx_http_drain - stop accepting (close the listeners), close idle
 * keep-alive connections, and let in-flight requests finish: their answers
 * carry Connection: close. Returns at once (0, or the first send error).
 * Watch conns_open in mx_http_stats to know when it is done. Any thread. */
int mx_http_drain(mx_http_t *h);

#define MX_HTTP_UNDRAIN 1         /* http_drain reason: listen again */
#define MX_HTTP_CLOSE_KEEPALIVE 2 /* http_drain reason: answers close their connection */

/* mx_http_close_keepalive - keep accepting and serving, but every answer
 * from now on carries Connection: close and ends its connection, so
 * keep-alive clients reconnect (through the load balancer, elsewhere)
 * before the listeners close. mx_http_undrain undoes it. Returns at once
 * (0, or the first send error). Any thread. */
int mx_http_close_keepalive(mx_http_t *h);

/* mx_http_undrain - undo mx_http_drain: every acceptor binds the port again
 * and answers keep-alive requests normally. Returns at once (0, or the
 * first send error). Any thread. */
int mx_http_undrain(mx_http_t *h);

/* mx_http_stats - the counters, summed over acceptors. Any thread, no locks. */
void mx_http_stats(mx_http_t *h, struct mx_http_stats *out);

/* mx_http_port - the bound port. Any thread. */
uint16_t mx_http_port(const mx_http_t *h);

/* mx_http_stop - stop the acceptor actors (connections are closed at once,
 * app->fini runs) and wait for them (timeout_ms, 0 = 5 s). Returns 0 or
 * MX_ETIMEDOUT. Not from a scheduler thread. mx_system_stop also stops
 * them. */
int mx_http_stop(mx_http_t *h, uint32_t timeout_ms);

/* mx_http_free - free the handle after mx_http_stop or mx_system_stop. */
void mx_http_free(mx_http_t *h);

#endif
