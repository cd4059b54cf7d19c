/* mx_http_int.h - internals shared by the files of actors/http.
 *
 * The protocol core (mx_http_conn.c) runs without sockets: a transport feeds
 * it bytes (mx__http_conn_feed) and receives finished responses through
 * struct mx__http_io. The libuv acceptor (mx_http_server.c) and the fuzz
 * harness (test/fuzz) are its two transports. The router (mx_http_route.c)
 * is pure functions over a compiled route table.
 */
#ifndef MX_HTTP_INT_H
#define MX_HTTP_INT_H

#include <llhttp.h>
#include <stdalign.h>

#include "mx_http.h"
#include "mx_metrics.h"

#define MX__HTTP_MAX_SEGS 16     /* segments per route pattern */
#define MX__HTTP_MAX_PARAMS 8    /* {name} per pattern */
#define MX__HTTP_MAX_HEADERS 100 /* request headers; more is 431 */
#define MX__HTTP_MAX_QUERY 32    /* query parameters kept; later ones ignored */
#define MX__HTTP_XH_MAX 2048     /* extra response header bytes */

/* ---- counters (one block per acceptor, its own cache lines) ---- */

/* Every field: relaxed atomics, written by the acceptor thread, read by
 * mx_http_stats and the metrics renderers from any thread (statistics
 * only). The slot holding it starts a cache line of its own. */
MX_METRICS_STRUCT(mx__http_ctr, MX_HTTP_METRICS);

/* mx__http_ctr_class - the responses_Nxx counter of a status class 1..5. */
_Atomic uint64_t *mx__http_ctr_class(struct mx__http_ctr *c, int cls);
/* mx__http_ctr_limit - the limit_* counter of lim. */
_Atomic uint64_t *mx__http_ctr_limit(struct mx__http_ctr *c, enum mx_http_limit lim);

static inline void mx__http_count(_Atomic uint64_t *c, uint64_t n)
{
    atomic_fetch_add_explicit(c, n, memory_order_relaxed); /* statistics */
}

/* ---- router ---- */

struct mx__http_seg {
    const char *s; /* literal text or the param name */
    uint16_t len;
    uint8_t kind; /* 0 literal, 1 {param}, 2 ** (rest) */
};

struct mx__http_proute {
    struct mx_http_route r; /* method and pattern point into owned copies */
    uint16_t nseg;
    struct mx__http_seg seg[MX__HTTP_MAX_SEGS];
};

struct mx__http_router {
    struct mx__http_proute *routes;
    size_t n;
};

/* mx__http_router_init - compile routes (copied). 0 or MX_EINVAL (bad
 * pattern or method, logged). */
int mx__http_router_init(struct mx__http_router *rt, const struct mx_http_route *routes, size_t n);
void mx__http_router_fini(struct mx__http_router *rt);

/* Router verdicts. */
enum { MX__HTTP_ROUTE_OK = 0, MX__HTTP_ROUTE_400, MX__HTTP_ROUTE_404, MX__HTTP_ROUTE_405 };

/* mx__http_route_path - match method and path (NUL-terminated, no query)
 * against rt. On OK: *route, and for each param its name and decoded value
 * written to out (NUL-terminated, values valid UTF-8) as (name, off) pairs.
 * On 405: allow (cap bytes) lists the methods ("GET, POST"). On 400: *why. */
struct mx__http_param {
    const char *name; /* points into the route table */
    uint32_t off;     /* value offset in the output buffer */
};
int mx__http_route_path(const struct mx__http_router *rt, const char *method, const char *path,
                        const struct mx__http_proute **route, struct mx__http_param *params,
                        int *nparams, char *out, size_t out_cap, size_t *out_len, char *allow,
                        size_t allow_cap, const char **why);

/* mx__http_pct_decode - percent-decode n bytes of s into out (cap >= n);
 * plus_space turns '+' into ' '. Returns the decoded length, or -1 for a bad
 * escape, %00, or (when utf8) invalid UTF-8. */
long mx__http_pct_decode(const char *s, size_t n, bool plus_space, bool utf8, char *out);
/* mx__http_utf8_valid - strict UTF-8 (no overlongs, surrogates, > U+10FFFF). */
bool mx__http_utf8_valid(const uint8_t *s, size_t n);

/* ---- the per-acceptor core ---- */

struct mx__http_srv {
    struct mx_http_opts o; /* defaults resolved */
    const struct mx__http_router *rt;
    const struct mx_http_app *app;
    void *app_state;
    mx_actor_t *actor; /* NULL in socket-free use */
    int sched;         /* for the log context; -1 none */
    struct mx__http_ctr *ctr;
    /* node-wide bytes held against o.max_buffered_bytes (one counter in
     * mx_http_t shared by every acceptor; relaxed atomics: a bound, not a
     * synchronisation). NULL: no budget (socket-free use). */
    _Atomic int64_t *mem;
    struct mx_http_req *live; /* every request not yet freed (list) */
    uint32_t in_app;          /* requests the app holds (PENDING, not answered) */
    bool draining;
    int64_t date_sec; /* second of date[] */
    char date[40];    /* IMF-fixdate, cached per second */
};

/* A response ready for the transport: head bytes (with small bodies copied
 * in) plus an optional blob written without copying. */
struct mx__http_out {
    char *head;
    size_t head_len;
    struct mx_blob *blob; /* referenced until the write completes; may be NULL */
    size_t total;         /* head_len + blob bytes sent */
    bool close;           /* the last response on the connection */
    _Atomic int64_t *mem; /* the budget charged (srv->mem), released by mx__http_out_free */
    int64_t charged;      /* head + a blob only this answer holds (a shared cached
                             document is one copy however many connections send it) */
};

/* mx__http_out_free - release head and blob, and their bytes of the budget. */
void mx__http_out_free(struct mx__http_out *o);

struct mx__http_conn;

struct mx__http_io {
    /* write - take o (the transport frees it with mx__http_out_free after the
     * bytes are written) and call mx__http_conn_written(c, o->total) then. */
    void (*write)(void *io_ctx, struct mx__http_out *o);
    /* (write may call mx__http_conn_written before it returns, when the
     * bytes went out at once: it only lowers the output count) */
    /* wake - state changed outside feed (a deferred answer was queued):
     * feed buffered input, resume reading or close as the state says. */
    void (*wake)(void *io_ctx);
};

struct mx__http_conn {
    struct mx__http_srv *srv;
    const struct mx__http_io *io;
    void *io_ctx;
    llhttp_t parser;
    struct mx_http_req *cur;             /* being parsed, or NULL */
    struct mx_http_req *q_head, *q_tail; /* complete requests in order */
    uint32_t q_len;
    size_t out_bytes;    /* handed to io->write, not yet written */
    uint32_t head_bytes; /* request line + headers so far */
    int req_error;       /* status to answer when the parser stops */
    const char *req_why;
    int64_t head_start_ms;        /* first byte of the current request head */
    int64_t body_start_ms;        /* end of the current request's head (body deadline) */
    uint32_t ext_bytes;           /* chunk extension bytes of the current request */
    uint64_t written;             /* answer bytes written so far (drain rate) */
    struct mx_http_req *deferred; /* parsed while the app was full; dispatched later */
    bool in_head;                 /* a request head is partly received */
    bool in_body;                 /* headers done, body not complete */
    bool stop_parsing;            /* no more requests on this connection */
    bool finished;                /* the closing response was handed to io */
    bool in_dispatch;             /* a handler runs: answers are only queued */
    bool in_feed;                 /* inside feed: io->wake is not called */
    bool msg_done;                /* llhttp completed a message (paused) */
    bool fini;                    /* mx__http_conn_fini ran */
    struct sockaddr_storage peer;
    char peer_ip[48];
};

/* mx__http_srv_date - the cached Date value for now. */
const char *mx__http_srv_date(struct mx__http_srv *s);

/* mx__http_conn_init - start a connection on srv writing through io. */
void mx__http_conn_init(struct mx__http_conn *c, struct mx__http_srv *srv,
                        const struct mx__http_io *io, void *io_ctx,
                        const struct sockaddr_storage *peer);
/* mx__http_conn_feed - parse up to len bytes; returns how many were used.
 * Stops early while the connection may not parse (pipeline or output full,
 * or no more requests): the caller keeps the rest and feeds it again after
 * io->wake or mx__http_conn_written. */
size_t mx__http_conn_feed(struct mx__http_conn *c, const char *data, size_t len);
/* mx__http_conn_can_parse - whether feed would use more input now. */
bool mx__http_conn_can_parse(const struct mx__http_conn *c);
/* mx__http_srv_app_full - the acceptor's app holds max_in_app requests: a
 * request parsed now is held (c->deferred, the connection stops parsing)
 * unless its route is MX_HTTP_ROUTE_LIGHT; the transport resumes the
 * paused connections when an answer came (mx__http_conn_resume). */
bool mx__http_srv_app_full(const struct mx__http_srv *s);
/* mx__http_conn_written - n bytes handed to io->write were written. */
void mx__http_conn_written(struct mx__http_conn *c, size_t n);
/* mx__http_conn_head_timeout - the head (or, once the head is in, the
 * body) did not complete in time: 408 and close after what is queued. */
void mx__http_conn_head_timeout(struct mx__http_conn *c);
/* mx__http_conn_resume - the app has room again: dispatch the request
 * held while it was full (if any). feed does it first too. */
void mx__http_conn_resume(struct mx__http_conn *c);
/* mx__http_srv_mem_full - the node's max_buffered_bytes is reached. */
bool mx__http_srv_mem_full(const struct mx__http_srv *s);
/* mx__http_conn_eof - the client sent FIN: answer what was asked, then close. */
void mx__http_conn_eof(struct mx__http_conn *c);
/* mx__http_conn_drain - no more requests; close after the queued ones. */
void mx__http_conn_drain(struct mx__http_conn *c);
/* mx__http_conn_idle - nothing received, queued or being written. */
bool mx__http_conn_idle(const struct mx__http_conn *c);
/* mx__http_conn_done - the closing response is out and fully written. */
bool mx__http_conn_done(const struct mx__http_conn *c);
/* mx__http_conn_held - bytes the connection holds against the budget
 * beyond its unwritten answers: heads and bodies of its queued requests. */
int64_t mx__http_conn_held(const struct mx__http_conn *c);
/* mx__http_conn_waiting_app - a request waits for the app's answer. */
bool mx__http_conn_waiting_app(const struct mx__http_conn *c);
/* mx__http_conn_fini - the connection is gone: requests the app holds are
 * detached (answering them only frees them), the others freed. */
void mx__http_conn_fini(struct mx__http_conn *c);

/* mx__http_srv_free_live - free every request still alive (after app fini). */
void mx__http_srv_free_live(struct mx__http_srv *s);

/* mx__http_error_body - the JSON error body into a new blob. */
struct mx_blob *mx__http_error_body(int status, const char *code, const char *message);

#endif
