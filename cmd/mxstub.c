/* mxstub.c - a stand-in for the Nexon Open API, for development and tests.
 *
 * mx's fetcher talks to the Nexon Open API; tests and benchmarks cannot. This
 * program serves the same paths with the same shapes (real fixtures given
 * with --character, deterministic synthetic data otherwise), and lets a test
 * make upstream slow or failing, at start or at run time, and count the calls
 * it received (single-flight and circuit-breaker tests read the counters).
 *
 * One thread, one libuv loop. HTTP/1.1 with llhttp: keep-alive, pipelined
 * requests answered in order, bounded request size, bounded connections,
 * bounded queue of answers per connection (parsing pauses when it is full).
 * Latency is a per-connection uv timer on the head of that queue: the loop
 * never sleeps. See docs/mxstub.md for the reference.
 */
#define _GNU_SOURCE /* memmem, strcasestr */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <llhttp.h>
#include <uv.h>

#include "mx_alloc.h"
#include "mx_blob.h"
#include "mx_list.h"
#include "mx_url.h"
#include "mx_err.h"
#include "mx_httpreason.h"
#include "mx_jsonw.h"
#include "mxstub_int.h"

#define IN_CAP 16384             /* bytes of unparsed input per connection */
#define URL_MAX 4096             /* bytes of request target */
#define KEY_MAX 512              /* bytes of x-nxopen-api-key */
#define AE_MAX 256               /* bytes of accept-encoding kept */
#define BODY_MAX 65536           /* bytes of request body (control POSTs) */
#define PENDING_MAX 64           /* answers queued per connection */
#define WRITE_HIGH (1u << 20)    /* bytes in flight per connection before pausing */
#define DRAIN_MS 2000            /* linger after a closing answer, reading input */
#define BODY_JSON_MAX (8u << 20) /* largest generated JSON body */
#define FIXTURES_MAX 64
#define REJECT_MAX 64
#define FILE_MAX (32u << 20) /* largest --character file */

enum route { R_ID, R_BASIC, R_EQUIP, R_LIST, R_OTHER, R__N };
static const char *const route_path[R__N] = {"/maplestory/v1/id", "/maplestory/v1/character/basic",
                                             "/maplestory/v1/character/item-equipment",
                                             "/maplestory/v1/character/list", "other"};

struct config {
    uint64_t latency_ms;
    double fail_rate; /* 0..1 */
    int fail_status;  /* 400..599 */
    bool gzip;        /* answer gzip when the client accepts it */
    bool unknown_404; /* unknown names get OPENAPI00004 instead of an ocid */
};

struct stats {
    uint64_t calls[R__N];
    uint64_t total; /* API calls (not /__stub/) */
    uint64_t failures_injected;
    uint64_t missing_key, rejected_key, bad_request, not_found;
    uint64_t conns_accepted, conns_refused, parse_errors, too_large;
    uint64_t registry_refused;
    uint64_t seq;              /* index of the next API call, drives fail_rate */
    uint64_t traced;           /* API calls that carried a traceparent header */
    char last_traceparent[56]; /* of the last such call */
};

struct server {
    uv_loop_t *loop;
    uv_tcp_t listener;
    uv_signal_t sigint, sigterm;
    struct config cfg;
    struct stats st;
    struct mx__stub_fixture fixtures[FIXTURES_MAX];
    size_t nfixtures;
    const char *reject[REJECT_MAX];
    size_t nreject;
    /* --account-character KEY=NAME: NAME joins KEY's character list */
    const char *acct_key[REJECT_MAX], *acct_name[REJECT_MAX];
    size_t nacct;
    size_t max_conns;
    size_t max_request; /* bytes of request line + headers */
    uint64_t idle_ms;
    bool verbose;
    bool stopping;
    size_t nconns;
    struct mx_list conns; /* all open connections (struct conn.link), for shutdown */
};

/* One answer waiting its turn. The body is built when the request arrives,
 * except synthetic equipment (large): that is built when it is written. */
struct pending {
    uint64_t due; /* loop time (ms) at which it may be written */
    int status;
    char *body; /* owned unless borrowed */
    size_t body_len;
    bool borrowed;                    /* body points at a fixture */
    struct mx__stub_fixture *fixture; /* for its cached gzip */
    bool equip_later;                 /* build synthetic equipment for ocid at write time */
    char ocid[MX__STUB_OCID_LEN + 1];
    bool gzip;      /* client accepts gzip */
    bool close;     /* last answer on this connection */
    bool head_only; /* HEAD: the header block without the body */
};

struct conn {
    uv_tcp_t tcp;     /* first: handle->data is not needed */
    uv_timer_t timer; /* latency of the head answer, or idle timeout */
    llhttp_t parser;
    struct server *srv;
    struct mx_list link; /* in srv->conns */
    int handles;         /* open handles; freed when 0 */
    bool closing;        /* uv_close called */
    bool close_after;    /* no more requests: finish once the queue is written */
    bool shutting;       /* uv_shutdown called */
    bool draining;       /* FIN sent; reading and dropping until EOF or DRAIN_MS */
    bool reading;        /* uv_read_start active */
    bool paused;         /* parsing paused: queue full or too much in flight */
    bool in_process;     /* inside process(): flush must not re-enter it */
    /* input */
    char in[IN_CAP];
    size_t in_off, in_len;
    /* the request being parsed */
    char url[URL_MAX + 1];
    size_t url_len;
    char field[32]; /* current header name (longer names are not ours) */
    size_t field_len;
    int hdr; /* 1: x-nxopen-api-key, 2: accept-encoding, 0: other */
    char key[KEY_MAX + 1];
    size_t key_len;
    bool have_key;
    char ae[AE_MAX + 1];
    size_t ae_len;
    char idem[MX__STUB_SINK_KEY_MAX + 2]; /* Idempotency-Key (webhook sink) */
    size_t idem_len;                      /* MAX + 1: too long */
    bool have_idem;
    char tp[56]; /* traceparent (55 bytes when well-formed; longer is cut) */
    size_t tp_len;
    bool accept_gzip;
    size_t req_bytes, body_bytes;
    int req_error; /* 413, 414, 431: answer this and close */
    /* answers */
    struct pending q[PENDING_MAX];
    unsigned q_head, q_len;
    size_t write_bytes; /* bytes handed to uv_write, not yet completed */
    uint64_t last_io;   /* loop time (ms) of the last byte read or write done */
    unsigned writes;
};

struct wreq {
    uv_write_t req;
    struct conn *c;
    char *head, *body; /* owned (body NULL when borrowed) */
    size_t bytes;
};

static struct server server = {.conns = MX_LIST_INIT(server.conns)};
static llhttp_settings_t settings;

/* ---- logging: one JSON object per line on stderr ---------------------- */

static void log_kv(const char *level, const char *msg, ...)
{
    struct mx_jsonw w;
    struct timespec ts;
    struct tm tm;
    char tbuf[64];
    va_list ap;

    if (strcmp(level, "debug") == 0 && !server.verbose)
        return;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    snprintf(tbuf, sizeof(tbuf), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
    mx_jsonw_init(&w, 4096);
    mx_jsonw_obj_open(&w);
    mx_jsonw_kstr(&w, "time", tbuf);
    mx_jsonw_kstr(&w, "level", level);
    mx_jsonw_kstr(&w, "msg", msg);
    mx_jsonw_kstr(&w, "program", "mxstub");
    va_start(ap, msg);
    for (;;) {
        const char *k = va_arg(ap, const char *);
        if (!k)
            break;
        mx_jsonw_kstr(&w, k, va_arg(ap, const char *));
    }
    va_end(ap);
    mx_jsonw_obj_close(&w);
    if (!w.err)
        fprintf(stderr, "%s\n", w.buf);
    mx_jsonw_fini(&w);
}

/* ---- gzip --------------------------------------------------------------- */

/* gzip of n bytes at in into a new malloc'd *out (the fixtures and
 * bodies here are plain buffers, not blobs) */
static int gzip_bytes(const char *in, size_t n, char **out, size_t *out_len)
{
    struct mx_blob *b;
    int rc = mx_http_gzip(in, n, 6, &b);
    if (rc != 0)
        return rc;
    *out = xmemdup(b->data, b->len);
    *out_len = b->len;
    mx_blob_unref(b);
    return 0;
}

/* ---- answers ------------------------------------------------------------- */

static char *take_json(struct mx_jsonw *w, size_t *len)
{
    char *b = mx_jsonw_take(w, len);
    if (!b) {
        /* only a generator bug can overflow BODY_JSON_MAX */
        b = strdup("{\"error\":{\"name\":\"OPENAPI00001\",\"message\":\"stub body too large\"}}");
        if (!b)
            abort();
        *len = strlen(b);
    }
    return b;
}

/* The Nexon error body: {"error":{"name":"OPENAPI000NN","message":"..."}} */
static char *nexon_error(const char *name, const char *message, size_t *len)
{
    struct mx_jsonw w;
    mx_jsonw_init(&w, 1024);
    mx_jsonw_obj_open(&w);
    mx_jsonw_key(&w, "error");
    mx_jsonw_obj_open(&w);
    mx_jsonw_kstr(&w, "name", name);
    mx_jsonw_kstr(&w, "message", message);
    mx_jsonw_obj_close(&w);
    mx_jsonw_obj_close(&w);
    return take_json(&w, len);
}

static char *stub_error(const char *message, size_t *len)
{
    struct mx_jsonw w;
    mx_jsonw_init(&w, 1024);
    mx_jsonw_obj_open(&w);
    mx_jsonw_kstr(&w, "error", message);
    mx_jsonw_obj_close(&w);
    return take_json(&w, len);
}

/* the Nexon error a --fail-status answer carries */
static char *injected_error(int status, size_t *len)
{
    switch (status) {
    case 400:
        return nexon_error("OPENAPI00004", "Please input valid parameter", len);
    case 403:
        return nexon_error("OPENAPI00002", "Forbidden", len);
    case 429:
        return nexon_error("OPENAPI00007", "Too many requests", len);
    case 503:
        return nexon_error("OPENAPI00011", "API under maintenance", len);
    default:
        return nexon_error("OPENAPI00001", "Internal server error", len);
    }
}

/* ---- connection lifecycle ---------------------------------------------- */

static void process(struct conn *c);
static void flush(struct conn *c);
static void on_timer(uv_timer_t *t);

static void pending_free(struct pending *p)
{
    if (!p->borrowed)
        free(p->body);
    p->body = NULL;
}

static void on_conn_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    if (--c->handles > 0)
        return;
    while (c->q_len) {
        pending_free(&c->q[c->q_head]);
        c->q_head = (c->q_head + 1) % PENDING_MAX;
        c->q_len--;
    }
    mx_list_remove(&c->link);
    c->srv->nconns--;
    free(c);
}

static void conn_close(struct conn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, on_conn_closed);
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct conn *c = h->data;
    if (c->in_off > 0 && c->in_off < c->in_len)
        memmove(c->in, c->in + c->in_off, c->in_len - c->in_off);
    c->in_len -= c->in_off;
    c->in_off = 0;
    if (c->draining)
        c->in_len = 0; /* input after a closing answer is read and dropped */
    buf->base = c->in + c->in_len;
    buf->len = IN_CAP - c->in_len;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void reading(struct conn *c, bool on)
{
    if (c->closing || c->reading == on)
        return;
    c->reading = on;
    if (on)
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    else
        uv_read_stop((uv_stream_t *)&c->tcp);
}

static void arm_timer(struct conn *c)
{
    uint64_t now = uv_now(c->srv->loop), wait;
    if (c->closing || c->shutting || c->draining)
        return; /* shutting down: the drain timer owns the timer */
    if (c->q_len && c->q[c->q_head].due > now)
        wait = c->q[c->q_head].due - now;
    else if (c->q_len && c->write_bytes < WRITE_HIGH)
        wait = 0;
    else
        wait = c->srv->idle_ms;
    uv_timer_start(&c->timer, on_timer, wait, 0);
}

static void on_timer(uv_timer_t *t)
{
    struct conn *c = t->data;
    uint64_t now = uv_now(c->srv->loop), quiet;

    if (c->draining) {
        conn_close(c);
        return;
    }
    if (c->q_len && c->q[c->q_head].due <= now && c->write_bytes < WRITE_HIGH) {
        flush(c);
        return;
    }
    if (c->q_len && c->q[c->q_head].due > now) {
        arm_timer(c);
        return;
    }
    /* nothing due, or the client is not reading what we wrote */
    quiet = now - c->last_io;
    if (quiet >= c->srv->idle_ms) {
        log_kv("debug", "idle timeout, closing", NULL);
        conn_close(c);
        return;
    }
    uv_timer_start(&c->timer, on_timer, c->srv->idle_ms - quiet, 0);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    struct conn *c = req->data;
    free(req);
    if (c->closing)
        return;
    if (status < 0) {
        conn_close(c);
        return;
    }
    /* keep reading (and dropping) so a client still sending does not get a
     * reset that destroys the answer in flight; close on EOF or after DRAIN_MS */
    c->draining = true;
    c->paused = false;
    reading(c, true);
    uv_timer_start(&c->timer, on_timer, DRAIN_MS, 0);
}

/* The last answer is written: send FIN after it, then linger. */
static void conn_finish(struct conn *c)
{
    uv_shutdown_t *req;
    if (c->closing || c->shutting)
        return;
    c->shutting = true;
    uv_timer_stop(&c->timer);
    reading(c, false);
    req = xmalloc(sizeof(*req));
    req->data = c;
    if (uv_shutdown(req, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
        free(req);
        conn_close(c);
    }
}

/* ---- writing answers ---------------------------------------------------- */

static void on_write(uv_write_t *req, int status)
{
    struct wreq *wr = (struct wreq *)req;
    struct conn *c = wr->c;
    c->writes--;
    c->write_bytes -= wr->bytes;
    free(wr->head);
    free(wr->body);
    free(wr);
    if (c->closing)
        return;
    if (status < 0) {
        log_kv("debug", "write failed, closing", "error", uv_strerror(status), NULL);
        conn_close(c);
        return;
    }
    c->last_io = uv_now(c->srv->loop);
    flush(c);
}

static void write_answer(struct conn *c, struct pending *p)
{
    struct server *srv = c->srv;
    struct wreq *wr = xmalloc(sizeof(*wr));
    const char *body = p->body;
    size_t body_len = p->body_len;
    char *owned = p->borrowed ? NULL : p->body;
    bool gz = false;
    char head[512];
    int hn;
    uv_buf_t bufs[2];

    if (p->equip_later) {
        struct mx_jsonw w;
        mx_jsonw_init(&w, BODY_JSON_MAX);
        mx__stub_gen_equipment(&w, p->ocid);
        owned = take_json(&w, &body_len);
        body = owned;
    }
    if (p->gzip && srv->cfg.gzip && body_len >= 1024) {
        if (p->fixture) {
            struct mx__stub_fixture *f = p->fixture;
            if (!f->gz && gzip_bytes(f->body, f->body_len, &f->gz, &f->gz_len) != 0)
                f->gz = NULL;
            if (f->gz) {
                body = f->gz;
                body_len = f->gz_len;
                gz = true;
            }
        } else {
            char *z;
            size_t zlen;
            if (gzip_bytes(body, body_len, &z, &zlen) == 0) {
                free(owned);
                owned = z;
                body = z;
                body_len = zlen;
                gz = true;
            }
        }
    }
    p->body = NULL;
    hn = snprintf(head, sizeof(head),
                  "HTTP/1.1 %d %s\r\n"
                  "Content-Type: application/json; charset=utf-8\r\n"
                  "Content-Length: %zu\r\n"
                  "%s"
                  "Server: mxstub\r\n"
                  "Connection: %s\r\n\r\n",
                  p->status, mx_http_reason(p->status), body_len,
                  gz ? "Content-Encoding: gzip\r\nVary: Accept-Encoding\r\n" : "",
                  p->close ? "close" : "keep-alive");
    wr->c = c;
    wr->head = xmalloc((size_t)hn);
    memcpy(wr->head, head, (size_t)hn);
    wr->body = owned;
    wr->bytes = (size_t)hn + body_len;
    bufs[0] = uv_buf_init(wr->head, (unsigned)hn);
    bufs[1] = uv_buf_init((char *)body, (unsigned)body_len);
    if (p->head_only)
        wr->bytes = (size_t)hn;
    if (uv_write(&wr->req, (uv_stream_t *)&c->tcp, bufs, p->head_only ? 1 : 2, on_write) != 0) {
        free(wr->head);
        free(wr->body);
        free(wr);
        conn_close(c);
        return;
    }
    c->writes++;
    c->write_bytes += wr->bytes;
}

/* Write every due answer at the head of the queue, in order. */
static void flush(struct conn *c)
{
    uint64_t now = uv_now(c->srv->loop);
    while (!c->closing && c->q_len && c->q[c->q_head].due <= now && c->write_bytes < WRITE_HIGH) {
        struct pending *p = &c->q[c->q_head];
        bool last = p->close;
        write_answer(c, p);
        pending_free(p);
        c->q_head = (c->q_head + 1) % PENDING_MAX;
        c->q_len--;
        if (last) {
            while (c->q_len) { /* nothing follows a closing answer */
                pending_free(&c->q[c->q_head]);
                c->q_head = (c->q_head + 1) % PENDING_MAX;
                c->q_len--;
            }
            c->close_after = true;
        }
    }
    if (c->closing)
        return;
    if (c->close_after && c->q_len == 0 && c->writes == 0) {
        conn_finish(c);
        return;
    }
    arm_timer(c);
    if (c->paused && !c->in_process && c->q_len < PENDING_MAX && c->write_bytes < WRITE_HIGH)
        process(c);
}

static struct pending *enqueue(struct conn *c, int status, uint64_t delay_ms)
{
    struct pending *p = &c->q[(c->q_head + c->q_len) % PENDING_MAX];
    memset(p, 0, sizeof(*p));
    p->status = status;
    if (delay_ms) {
        /* loop time is cached and truncated to ms: refresh it and add 1 so
         * the answer is never early by the clock of the client */
        uv_update_time(c->srv->loop);
        delay_ms++;
    }
    p->due = uv_now(c->srv->loop) + delay_ms;
    p->gzip = c->accept_gzip;
    c->q_len++;
    return p;
}

/* ---- query strings ------------------------------------------------------ */

/* Find name in the query and percent-decode its value into out (NUL-ended).
 * Returns 0, MX_ENOTFOUND (absent), MX_EINVAL (bad escape), MX_ETOOBIG. */
static int query_get(const char *q, const char *name, char *out, size_t cap, size_t *out_len)
{
    size_t nlen = strlen(name);
    while (q && *q) {
        const char *amp = strchr(q, '&');
        const char *end = amp ? amp : q + strlen(q);
        if ((size_t)(end - q) > nlen && strncmp(q, name, nlen) == 0 && q[nlen] == '=') {
            const char *v = q + nlen + 1;
            long n = mx_url_unescape(v, (size_t)(end - v), true, out, cap - 1);
            if (n < 0)
                return n == -2 ? MX_ETOOBIG : MX_EINVAL;
            out[n] = '\0';
            *out_len = (size_t)n;
            return 0;
        }
        if ((size_t)(end - q) == nlen && strncmp(q, name, nlen) == 0) {
            out[0] = '\0';
            *out_len = 0;
            return 0;
        }
        q = amp ? amp + 1 : NULL;
    }
    return MX_ENOTFOUND;
}

/* ---- fail injection ------------------------------------------------------ */

static bool should_fail(struct server *srv)
{
    uint64_t z = srv->st.seq++;
    if (srv->cfg.fail_rate <= 0)
        return false;
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    return (double)(z >> 11) * (1.0 / 9007199254740992.0) < srv->cfg.fail_rate;
}

static struct mx__stub_fixture *fixture_by_ocid(struct server *srv, const char *ocid)
{
    for (size_t i = 0; i < srv->nfixtures; i++)
        if (strcmp(srv->fixtures[i].ocid, ocid) == 0)
            return &srv->fixtures[i];
    return NULL;
}

/* ---- the stats and control endpoints ------------------------------------ */

static void write_config(struct mx_jsonw *w, const struct config *cfg)
{
    mx_jsonw_kuint(w, "latency_ms", cfg->latency_ms);
    mx_jsonw_kdouble(w, "fail_rate", cfg->fail_rate);
    mx_jsonw_kint(w, "fail_status", cfg->fail_status);
    mx_jsonw_kbool(w, "gzip", cfg->gzip);
    mx_jsonw_kstr(w, "unknown", cfg->unknown_404 ? "404" : "synthetic");
}

static char *stats_json(struct server *srv, size_t *len)
{
    struct mx_jsonw w;
    const struct stats *st = &srv->st;
    mx_jsonw_init(&w, 65536);
    mx_jsonw_obj_open(&w);
    mx_jsonw_kuint(&w, "total", st->total);
    mx_jsonw_key(&w, "paths");
    mx_jsonw_obj_open(&w);
    for (int r = 0; r < R__N; r++)
        mx_jsonw_kuint(&w, route_path[r], st->calls[r]);
    mx_jsonw_obj_close(&w);
    mx_jsonw_kuint(&w, "failures_injected", st->failures_injected);
    mx_jsonw_kuint(&w, "traced", st->traced);
    mx_jsonw_kstr(&w, "last_traceparent", st->last_traceparent);
    mx_jsonw_key(&w, "errors");
    mx_jsonw_obj_open(&w);
    mx_jsonw_kuint(&w, "missing_key", st->missing_key);
    mx_jsonw_kuint(&w, "rejected_key", st->rejected_key);
    mx_jsonw_kuint(&w, "bad_request", st->bad_request);
    mx_jsonw_kuint(&w, "not_found", st->not_found);
    mx_jsonw_obj_close(&w);
    mx_jsonw_key(&w, "connections");
    mx_jsonw_obj_open(&w);
    mx_jsonw_kuint(&w, "current", srv->nconns);
    mx_jsonw_kuint(&w, "accepted", st->conns_accepted);
    mx_jsonw_kuint(&w, "refused", st->conns_refused);
    mx_jsonw_obj_close(&w);
    mx_jsonw_kuint(&w, "parse_errors", st->parse_errors);
    mx_jsonw_kuint(&w, "too_large", st->too_large);
    mx_jsonw_kuint(&w, "registry_refused", st->registry_refused);
    mx_jsonw_key(&w, "config");
    mx_jsonw_obj_open(&w);
    write_config(&w, &srv->cfg);
    mx_jsonw_obj_close(&w);
    mx_jsonw_obj_close(&w);
    return take_json(&w, len);
}

static int parse_u64(const char *s, uint64_t max, uint64_t *out);
static int parse_rate(const char *s, double *out);
static int parse_status(const char *s, int *out);

/* POST /__stub/config?latency_ms=&fail_rate=&fail_status=&gzip=&unknown=
 * All values are checked before any is applied. */
static int apply_config(struct server *srv, const char *q, const char **bad)
{
    struct config cfg = srv->cfg;
    char v[64];
    size_t n;
    int rc;

    if ((rc = query_get(q, "latency_ms", v, sizeof(v), &n)) != MX_ENOTFOUND &&
        (rc || parse_u64(v, 600000, &cfg.latency_ms))) {
        *bad = "latency_ms must be 0..600000";
        return MX_EINVAL;
    }
    if ((rc = query_get(q, "fail_rate", v, sizeof(v), &n)) != MX_ENOTFOUND &&
        (rc || parse_rate(v, &cfg.fail_rate))) {
        *bad = "fail_rate must be 0..1";
        return MX_EINVAL;
    }
    if ((rc = query_get(q, "fail_status", v, sizeof(v), &n)) != MX_ENOTFOUND &&
        (rc || parse_status(v, &cfg.fail_status))) {
        *bad = "fail_status must be 400..599";
        return MX_EINVAL;
    }
    if ((rc = query_get(q, "gzip", v, sizeof(v), &n)) != MX_ENOTFOUND) {
        if (rc || (strcmp(v, "0") && strcmp(v, "1"))) {
            *bad = "gzip must be 0 or 1";
            return MX_EINVAL;
        }
        cfg.gzip = v[0] == '1';
    }
    if ((rc = query_get(q, "unknown", v, sizeof(v), &n)) != MX_ENOTFOUND) {
        if (rc || (strcmp(v, "404") && strcmp(v, "synthetic"))) {
            *bad = "unknown must be 404 or synthetic";
            return MX_EINVAL;
        }
        cfg.unknown_404 = v[0] == '4';
    }
    srv->cfg = cfg;
    return 0;
}

static void handle_control(struct conn *c, const char *path, const char *q, int method, bool close)
{
    struct server *srv = c->srv;
    struct pending *p;
    size_t len;
    char *body;
    int status = 200;

    if (strcmp(path, "/__stub/stats") == 0 && method == HTTP_GET) {
        body = stats_json(srv, &len);
    } else if (strcmp(path, "/__stub/reset") == 0 && method == HTTP_POST) {
        uint64_t accepted = srv->st.conns_accepted;
        memset(&srv->st, 0, sizeof(srv->st));
        srv->st.conns_accepted = accepted; /* keeps "current" meaningful */
        body = strdup("{\"reset\":true}");
        len = body ? strlen(body) : 0;
        log_kv("info", "counters reset", NULL);
    } else if (strcmp(path, "/__stub/config") == 0 && (method == HTTP_POST || method == HTTP_GET)) {
        const char *bad = NULL;
        if (method == HTTP_POST && apply_config(srv, q, &bad) != 0) {
            status = 400;
            body = stub_error(bad, &len);
        } else {
            struct mx_jsonw w;
            mx_jsonw_init(&w, 4096);
            mx_jsonw_obj_open(&w);
            write_config(&w, &srv->cfg);
            mx_jsonw_obj_close(&w);
            body = take_json(&w, &len);
            if (method == HTTP_POST)
                log_kv("info", "config changed", "config", body, NULL);
        }
    } else if (strcmp(path, "/__stub/stats") == 0 || strcmp(path, "/__stub/reset") == 0 ||
               strcmp(path, "/__stub/config") == 0) {
        status = 405;
        body = stub_error("method not allowed", &len);
    } else {
        status = 404;
        body = stub_error("no such control endpoint", &len);
    }
    if (!body)
        abort();
    p = enqueue(c, status, 0);
    p->body = body;
    p->body_len = len;
    p->close = close;
}

/* ---- the API ------------------------------------------------------------ */

static bool key_rejected(struct server *srv, const char *key)
{
    for (size_t i = 0; i < srv->nreject; i++)
        if (strcmp(srv->reject[i], key) == 0)
            return true;
    return false;
}

/* Reads and checks ?ocid=. Returns NULL when it answered an error. */
static const char *need_ocid(struct server *srv, const char *q, char *ocid, size_t cap,
                             const char **err_name, const char **err_msg)
{
    size_t n;
    int rc = query_get(q, "ocid", ocid, cap, &n);
    if (rc == MX_ENOTFOUND || (rc == 0 && n == 0)) {
        *err_name = "OPENAPI00004";
        *err_msg = "Please input valid parameter";
        return NULL;
    }
    if (rc != 0 || !mx__stub_ocid_valid(ocid)) {
        *err_name = "OPENAPI00003";
        *err_msg = "Please input valid id";
        return NULL;
    }
    if (srv->cfg.unknown_404 && !mx__stub_registry_get(ocid) && !fixture_by_ocid(srv, ocid)) {
        *err_name = "OPENAPI00003";
        *err_msg = "Please input valid id";
        return NULL;
    }
    return ocid;
}

static void handle_api(struct conn *c, const char *path, const char *q, int method, bool close)
{
    struct server *srv = c->srv;
    enum route r = R_OTHER;
    uint64_t delay = srv->cfg.latency_ms;
    const char *err_name = NULL, *err_msg = NULL;
    struct pending *p;
    char arg[MX__STUB_NAME_MAX * 4 + 1];
    size_t n;

    for (int i = 0; i < R_OTHER; i++)
        if (strcmp(path, route_path[i]) == 0)
            r = (enum route)i;
    srv->st.total++;
    srv->st.calls[r]++;
    if (c->tp_len) {
        srv->st.traced++;
        snprintf(srv->st.last_traceparent, sizeof srv->st.last_traceparent, "%.*s", (int)c->tp_len,
                 c->tp);
    }

    if (!c->have_key || c->key_len == 0) {
        srv->st.missing_key++;
        err_name = "OPENAPI00005";
        err_msg = "Please input valid api key";
        goto out_error;
    }
    if (key_rejected(srv, c->key)) {
        srv->st.rejected_key++;
        err_name = "OPENAPI00005";
        err_msg = "Please input valid api key";
        goto out_error;
    }
    if (r == R_OTHER || method != HTTP_GET) {
        srv->st.not_found++;
        err_name = "OPENAPI00006";
        err_msg = "Please input valid path";
        goto out_error;
    }
    if (should_fail(srv)) {
        srv->st.failures_injected++;
        p = enqueue(c, srv->cfg.fail_status, delay);
        p->body = injected_error(srv->cfg.fail_status, &p->body_len);
        p->close = close;
        return;
    }

    switch (r) {
    case R_ID: {
        char ocid[MX__STUB_OCID_LEN + 1];
        struct mx_jsonw w;
        int rc = query_get(q, "character_name", arg, sizeof(arg), &n);
        if (rc != 0 || !mx__stub_name_valid(arg, n)) {
            srv->st.bad_request++;
            err_name = "OPENAPI00004";
            err_msg = "Please input valid parameter";
            goto out_error;
        }
        mx__stub_ocid(arg, n, ocid);
        if (!mx__stub_registry_get(ocid) && !fixture_by_ocid(srv, ocid)) {
            if (srv->cfg.unknown_404) {
                srv->st.not_found++;
                err_name = "OPENAPI00004";
                err_msg = "Please input valid parameter";
                goto out_error;
            }
            if (mx__stub_registry_put(ocid, arg) != 0)
                srv->st.registry_refused++;
        }
        mx_jsonw_init(&w, 256);
        mx_jsonw_obj_open(&w);
        mx_jsonw_kstr(&w, "ocid", ocid);
        mx_jsonw_obj_close(&w);
        p = enqueue(c, 200, delay);
        p->body = take_json(&w, &p->body_len);
        break;
    }
    case R_BASIC: {
        struct mx__stub_fixture *f;
        struct mx_jsonw w;
        if (!need_ocid(srv, q, arg, sizeof(arg), &err_name, &err_msg)) {
            srv->st.bad_request++;
            goto out_error;
        }
        f = fixture_by_ocid(srv, arg);
        mx_jsonw_init(&w, 65536);
        mx__stub_gen_basic(&w, arg, f ? f->name : mx__stub_registry_get(arg), f ? f->cls : NULL);
        p = enqueue(c, 200, delay);
        p->body = take_json(&w, &p->body_len);
        break;
    }
    case R_EQUIP: {
        struct mx__stub_fixture *f;
        if (!need_ocid(srv, q, arg, sizeof(arg), &err_name, &err_msg)) {
            srv->st.bad_request++;
            goto out_error;
        }
        p = enqueue(c, 200, delay);
        f = fixture_by_ocid(srv, arg);
        if (f) {
            p->body = f->body;
            p->body_len = f->body_len;
            p->borrowed = true;
            p->fixture = f;
        } else {
            p->equip_later = true;
            memcpy(p->ocid, arg, sizeof(p->ocid));
        }
        break;
    }
    case R_LIST: {
        struct mx_jsonw w;
        mx_jsonw_init(&w, 65536);
        const char *extra[REJECT_MAX];
        size_t nextra = 0;
        for (size_t i = 0; i < srv->nacct; i++)
            if (strlen(srv->acct_key[i]) == c->key_len &&
                memcmp(srv->acct_key[i], c->key, c->key_len) == 0)
                extra[nextra++] = srv->acct_name[i];
        mx__stub_gen_list(&w, c->key, c->key_len, extra, nextra, &srv->st.registry_refused);
        p = enqueue(c, 200, delay);
        p->body = take_json(&w, &p->body_len);
        break;
    }
    default:
        abort();
    }
    p->close = close;
    return;

out_error:
    p = enqueue(c, 400, delay);
    p->body = nexon_error(err_name, err_msg, &p->body_len);
    p->close = close;
}

/* A whole request has been parsed: queue its answer. */
static void handle_request(struct conn *c)
{
    struct server *srv = c->srv;
    int method = llhttp_get_method(&c->parser);
    /* an Upgrade or CONNECT is answered as plain HTTP, and the last one */
    bool close = !llhttp_should_keep_alive(&c->parser) || srv->stopping || c->parser.upgrade;
    char *q = strchr(c->url, '?');

    if (q)
        *q++ = '\0';
    struct mx__stub_answer sa;
    if (strncmp(c->url, "/__stub/sink", 12) == 0 &&
        mx__stub_sink_control(c->url, q, method == HTTP_POST, &sa)) {
        struct pending *p = enqueue(c, sa.status, 0); /* webhook sink control */
        p->body = sa.body;
        p->body_len = sa.len;
        p->close = close;
    } else if (strcmp(c->url, "/sink") == 0 || strncmp(c->url, "/sink/", 6) == 0) {
        if (method == HTTP_POST) { /* webhook sink: outbox and alert deliveries */
            mx__stub_sink_post(c->have_idem ? c->idem : NULL, c->idem_len, &sa);
        } else {
            sa.status = 405;
            sa.body = stub_error("the sink takes POST", &sa.len);
            sa.delay_ms = 0;
        }
        struct pending *p = enqueue(c, sa.status, sa.delay_ms);
        p->body = sa.body;
        p->body_len = sa.len;
        p->close = close;
    } else if (strcmp(c->url, "/v1/chat/completions") == 0 && method == HTTP_POST) {
        mx__stub_chat_post(&sa); /* fake AI endpoint for alert analysis */
        struct pending *p = enqueue(c, sa.status, 0);
        p->body = sa.body;
        p->body_len = sa.len;
        p->close = close;
    } else if (strncmp(c->url, "/__stub/", 8) == 0) {
        handle_control(c, c->url, q, method, close);
    } else if (strncmp(c->url, "/maplestory/", 12) == 0) {
        handle_api(c, c->url, q, method, close);
    } else {
        struct pending *p = enqueue(c, 404, 0);
        p->body = stub_error("not found", &p->body_len);
        p->close = close;
    }
    if (method == HTTP_HEAD && c->q_len)
        c->q[(c->q_head + c->q_len - 1) % PENDING_MAX].head_only = true;
    log_kv("debug", "request", "method", llhttp_method_name(method), "path", c->url, NULL);
}

/* ---- parsing --------------------------------------------------------------- */

static struct conn *conn_of(llhttp_t *p)
{
    return p->data;
}

/* request line and headers share one byte budget */
static int count_bytes(struct conn *c, size_t n)
{
    c->req_bytes += n;
    if (c->req_bytes > c->srv->max_request) {
        c->req_error = 431;
        return -1;
    }
    return 0;
}

static int on_message_begin(llhttp_t *p)
{
    struct conn *c = conn_of(p);
    c->url_len = 0;
    c->url[0] = '\0';
    c->field_len = 0;
    c->hdr = 0;
    c->key_len = 0;
    c->key[0] = '\0';
    c->have_key = false;
    c->ae_len = 0;
    c->accept_gzip = false;
    c->idem_len = 0;
    c->have_idem = false;
    c->tp_len = 0;
    c->req_bytes = c->body_bytes = 0;
    c->req_error = 0;
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t n)
{
    struct conn *c = conn_of(p);
    if (count_bytes(c, n))
        return -1;
    if (c->url_len + n > URL_MAX) {
        c->req_error = 414;
        return -1;
    }
    memcpy(c->url + c->url_len, at, n);
    c->url_len += n;
    c->url[c->url_len] = '\0';
    return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t n)
{
    struct conn *c = conn_of(p);
    if (count_bytes(c, n))
        return -1;
    if (c->field_len + n < sizeof(c->field))
        memcpy(c->field + c->field_len, at, n);
    c->field_len += n; /* past the buffer: a name that is none of ours */
    return 0;
}

static int on_header_field_complete(llhttp_t *p)
{
    struct conn *c = conn_of(p);
    c->hdr = 0;
    if (c->field_len < sizeof(c->field)) {
        c->field[c->field_len] = '\0';
        if (strcasecmp(c->field, "x-nxopen-api-key") == 0) {
            c->hdr = 1;
            c->key_len = 0; /* a repeated header: the last one counts */
            c->have_key = true;
        } else if (strcasecmp(c->field, "accept-encoding") == 0) {
            c->hdr = 2;
            c->ae_len = 0;
        } else if (strcasecmp(c->field, "idempotency-key") == 0) {
            c->hdr = 3;
            c->idem_len = 0;
            c->have_idem = true;
        } else if (strcasecmp(c->field, "traceparent") == 0) {
            c->hdr = 4;
            c->tp_len = 0;
        }
    }
    c->field_len = 0;
    return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t n)
{
    struct conn *c = conn_of(p);
    if (count_bytes(c, n))
        return -1;
    if (c->hdr == 1) {
        if (c->key_len + n > KEY_MAX) {
            c->req_error = 431;
            return -1;
        }
        memcpy(c->key + c->key_len, at, n);
        c->key_len += n;
        c->key[c->key_len] = '\0';
    } else if (c->hdr == 2) {
        size_t room = AE_MAX - c->ae_len;
        if (n > room)
            n = room; /* a huge accept-encoding is only read in part */
        memcpy(c->ae + c->ae_len, at, n);
        c->ae_len += n;
        c->ae[c->ae_len] = '\0';
    } else if (c->hdr == 3) {
        if (c->idem_len + n > MX__STUB_SINK_KEY_MAX) {
            c->idem_len = MX__STUB_SINK_KEY_MAX + 1; /* too long: the sink refuses it */
        } else {
            memcpy(c->idem + c->idem_len, at, n);
            c->idem_len += n;
        }
    } else if (c->hdr == 4) {
        size_t room = sizeof c->tp - 1 - c->tp_len;
        n = n < room ? n : room;
        memcpy(c->tp + c->tp_len, at, n);
        c->tp_len += n;
    }
    return 0;
}

/* "gzip" as a coding, not refused with q=0 */
static bool accepts_gzip(const char *ae)
{
    const char *s = ae;
    while ((s = strcasestr(s, "gzip")) != NULL) {
        const char *e = s + 4;
        bool start = s == ae || s[-1] == ' ' || s[-1] == ',' || s[-1] == '\t';
        while (*e == ' ' || *e == '\t')
            e++;
        if (start && (*e == '\0' || *e == ',')) {
            return true;
        }
        if (start && *e == ';') {
            const char *qv = strstr(e, "q=");
            return !(qv && atof(qv + 2) <= 0.0);
        }
        s += 4;
    }
    return false;
}

static int on_header_value_complete(llhttp_t *p)
{
    struct conn *c = conn_of(p);
    if (c->hdr == 2)
        c->accept_gzip = accepts_gzip(c->ae);
    c->hdr = 0;
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t n)
{
    struct conn *c = conn_of(p);
    c->body_bytes += n; /* control POSTs carry their values in the query */
    if (c->body_bytes > BODY_MAX) {
        c->req_error = 413;
        return -1;
    }
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    struct conn *c = conn_of(p);
    handle_request(c);
    flush(c);
    if (c->closing || c->close_after || c->q_len >= PENDING_MAX || c->write_bytes >= WRITE_HIGH)
        return HPE_PAUSED;
    return 0;
}

/* Malformed or oversized request: answer once, then close. */
static void parse_error(struct conn *c, llhttp_errno_t e)
{
    struct server *srv = c->srv;
    struct pending *p;
    int status = c->req_error ? c->req_error : 400;
    const char *why;

    switch (status) {
    case 413:
        why = "request body too large";
        srv->st.too_large++;
        break;
    case 414:
        why = "request target too long";
        srv->st.too_large++;
        break;
    case 431:
        why = "request headers too large";
        srv->st.too_large++;
        break;
    default:
        why = "malformed request";
        srv->st.parse_errors++;
        break;
    }
    log_kv("warn", why, "parser", llhttp_errno_name(e), "reason",
           llhttp_get_error_reason(&c->parser) ? llhttp_get_error_reason(&c->parser) : "", NULL);
    if (c->q_len >= PENDING_MAX) {
        /* no room to say why: just close after what is queued */
        c->close_after = true;
        return;
    }
    p = enqueue(c, status, 0);
    p->gzip = false;
    p->body = stub_error(why, &p->body_len);
    p->close = true;
}

/* Parse what is buffered. Stops (and stops reading) while answers back up. */
static void process(struct conn *c)
{
    c->in_process = true;
    c->paused = false;
    while (!c->closing && !c->close_after && c->in_off < c->in_len) {
        const char *data = c->in + c->in_off;
        size_t n = c->in_len - c->in_off;
        llhttp_errno_t e = llhttp_execute(&c->parser, data, n);
        if (e == HPE_OK) {
            c->in_off = c->in_len;
            break;
        }
        if (e == HPE_PAUSED) {
            c->in_off += (size_t)(llhttp_get_error_pos(&c->parser) - data);
            llhttp_resume(&c->parser);
            if (c->q_len >= PENDING_MAX || c->write_bytes >= WRITE_HIGH) {
                c->paused = true;
                break;
            }
            continue;
        }
        if (e == HPE_PAUSED_UPGRADE) {
            /* CONNECT or Upgrade: answered as HTTP, then no more parsing */
            c->close_after = true;
        } else {
            parse_error(c, e);
        }
        c->in_off = c->in_len;
        break;
    }
    if (c->in_off == c->in_len)
        c->in_off = c->in_len = 0;
    c->in_process = false;
    if (c->closing)
        return;
    if (c->close_after || c->paused)
        reading(c, false);
    else
        reading(c, true);
    flush(c);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = s->data;
    if (c->closing)
        return;
    if (nread < 0) {
        if (c->draining || nread != UV_EOF) {
            conn_close(c);
            return;
        }
        /* client half-closed: answer what it asked, then close */
        reading(c, false);
        c->close_after = true;
        if (c->q_len == 0 && c->writes == 0)
            conn_finish(c);
        return;
    }
    if (c->draining) {
        c->in_len = c->in_off = 0;
        return;
    }
    c->in_len += (size_t)nread;
    if (nread > 0) {
        c->last_io = uv_now(c->srv->loop);
        process(c);
    }
}

/* ---- accepting ------------------------------------------------------------- */

static void on_refused_closed(uv_handle_t *h)
{
    free(h);
}

static void on_connection(uv_stream_t *listener, int status)
{
    struct server *srv = listener->data;
    struct conn *c;

    if (status < 0) {
        log_kv("warn", "accept failed", "error", uv_strerror(status), NULL);
        return;
    }
    if (srv->nconns >= srv->max_conns || srv->stopping) {
        uv_tcp_t *t = xmalloc(sizeof(*t));
        uv_tcp_init(srv->loop, t);
        if (uv_accept(listener, (uv_stream_t *)t) == 0)
            srv->st.conns_refused++;
        uv_close((uv_handle_t *)t, on_refused_closed);
        log_kv("warn", "connection refused: limit reached", NULL);
        return;
    }
    c = calloc(1, sizeof(*c));
    if (!c) {
        fprintf(stderr, "mxstub: out of memory\n");
        abort();
    }
    c->srv = srv;
    uv_tcp_init(srv->loop, &c->tcp);
    uv_timer_init(srv->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->handles = 2;
    mx_list_push_front(&srv->conns, &c->link);
    srv->nconns++;
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c);
        return;
    }
    srv->st.conns_accepted++;
    c->last_io = uv_now(srv->loop);
    uv_tcp_nodelay(&c->tcp, 1);
    llhttp_init(&c->parser, HTTP_REQUEST, &settings);
    c->parser.data = c;
    reading(c, true);
    arm_timer(c);
}

/* ---- stopping ---------------------------------------------------------------- */

static void on_signal(uv_signal_t *h, int signum)
{
    struct server *srv = h->data;
    if (srv->stopping)
        return;
    srv->stopping = true;
    log_kv("info", "stopping", "signal", signum == SIGINT ? "SIGINT" : "SIGTERM", NULL);
    uv_close((uv_handle_t *)&srv->listener, NULL);
    uv_close((uv_handle_t *)&srv->sigint, NULL);
    uv_close((uv_handle_t *)&srv->sigterm, NULL);
    struct conn *c;
    mx_list_each (c, &srv->conns, link)
        conn_close(c);
}

/* ---- command line ---------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f, "usage: mxstub [options]\n"
               "  --listen HOST:PORT       address to listen on (default 127.0.0.1:8090;\n"
               "                           port 0 picks a free port); the first stdout line\n"
               "                           is \"listening HOST:PORT\"\n"
               "  --character NAME=FILE    serve FILE as NAME's item-equipment (repeatable)\n"
               "  --unknown 404|synthetic  unknown names: Nexon error (404) or made-up data\n"
               "  --reject-key KEY         answer KEY with the invalid-key error (repeatable)\n"
               "  --account-character KEY=NAME  list NAME among KEY's characters (repeatable)\n"
               "  --latency-ms N           delay every API answer by N ms (0..600000)\n"
               "  --fail-rate F            fail this fraction of API calls (0..1)\n"
               "  --fail-status S          status of injected failures (400..599, default 500)\n"
               "  --gzip                   gzip answers when the client accepts gzip\n"
               "  --max-conns N            open connections at most (default 1024)\n"
               "  --max-request-bytes N    request line + headers at most (default 16384)\n"
               "  --idle-timeout-ms N      close idle connections after N ms (default 60000)\n"
               "  --verbose                log every request\n"
               "  --help                   this text\n");
}

static int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    char *end;
    unsigned long long v;
    if (!s || !*s || *s == '-' || *s == '+')
        return MX_EINVAL;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || *end || v > max)
        return MX_EINVAL;
    *out = v;
    return 0;
}

static int parse_rate(const char *s, double *out)
{
    char *end;
    double v;
    if (!s || !*s)
        return MX_EINVAL;
    errno = 0;
    v = strtod(s, &end);
    if (errno || *end || !(v >= 0.0 && v <= 1.0))
        return MX_EINVAL;
    *out = v;
    return 0;
}

static int parse_status(const char *s, int *out)
{
    uint64_t v;
    if (parse_u64(s, 599, &v) || v < 400)
        return MX_EINVAL;
    *out = (int)v;
    return 0;
}

/* HOST:PORT or [V6]:PORT */
static int parse_listen(const char *s, struct sockaddr_storage *ss)
{
    char host[256];
    const char *colon;
    uint64_t port;
    size_t hlen;

    if (s[0] == '[') {
        const char *rb = strchr(s, ']');
        if (!rb || rb[1] != ':')
            return MX_EINVAL;
        hlen = (size_t)(rb - s - 1);
        if (hlen >= sizeof(host))
            return MX_EINVAL;
        memcpy(host, s + 1, hlen);
        host[hlen] = '\0';
        colon = rb + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon)
            return MX_EINVAL;
        hlen = (size_t)(colon - s);
        if (hlen == 0 || hlen >= sizeof(host))
            return MX_EINVAL;
        memcpy(host, s, hlen);
        host[hlen] = '\0';
    }
    if (parse_u64(colon + 1, 65535, &port))
        return MX_EINVAL;
    if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss) == 0)
        return 0;
    if (uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)ss) == 0)
        return 0;
    return MX_EINVAL;
}

/* the first "character_class": "..." of the file (a top-level field of the
 * real item-equipment answer); a plain scan, not a JSON parse: it only fills
 * the class of the basic record when the file is missing one */
static void find_class(const char *body, size_t len, char *out, size_t cap)
{
    static const char needle[] = "\"character_class\"";
    const char *end = body + len, *s;
    out[0] = '\0';
    s = memmem(body, len, needle, sizeof(needle) - 1);
    if (!s)
        return;
    s += sizeof(needle) - 1;
    while (s < end && (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r'))
        s++;
    if (s >= end || *s++ != ':')
        return;
    while (s < end && (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r'))
        s++;
    if (s >= end || *s++ != '"')
        return;
    for (size_t n = 0; s < end && *s != '"' && *s != '\\' && n + 1 < cap; s++, n++) {
        out[n] = *s;
        out[n + 1] = '\0';
    }
}

static int load_fixture(struct mx__stub_fixture *f, const char *arg)
{
    const char *eq = strchr(arg, '=');
    const char *path;
    FILE *fp = NULL;
    size_t nlen, got;
    int rc = MX_EIO;
    long size;

    if (!eq || eq == arg || !eq[1]) {
        fprintf(stderr, "mxstub: --character wants NAME=FILE, got '%s'\n", arg);
        return MX_EINVAL;
    }
    nlen = (size_t)(eq - arg);
    if (!mx__stub_name_valid(arg, nlen)) {
        fprintf(stderr, "mxstub: --character: bad character name in '%s'\n", arg);
        return MX_EINVAL;
    }
    memcpy(f->name, arg, nlen);
    f->name[nlen] = '\0';
    mx__stub_ocid(f->name, nlen, f->ocid);
    path = eq + 1;
    fp = fopen(path, "rb");
    if (!fp)
        goto out_err;
    if (fseek(fp, 0, SEEK_END) != 0 || (size = ftell(fp)) < 0 || fseek(fp, 0, SEEK_SET) != 0)
        goto out_close;
    if ((size_t)size > FILE_MAX) {
        errno = EFBIG;
        goto out_close;
    }
    f->body = xmalloc((size_t)size + 1);
    got = fread(f->body, 1, (size_t)size, fp);
    if (got != (size_t)size || ferror(fp)) {
        errno = errno ? errno : EIO;
        free(f->body);
        f->body = NULL;
        goto out_close;
    }
    f->body_len = got;
    f->body[got] = '\0';
    find_class(f->body, f->body_len, f->cls, sizeof(f->cls));
    rc = 0;
out_close:
    fclose(fp);
out_err:
    if (rc)
        fprintf(stderr, "mxstub: cannot read --character file '%s': %s\n", path, strerror(errno));
    return rc;
}

/* ---- main ------------------------------------------------------------------- */

enum {
    OPT_LISTEN = 256,
    OPT_CHARACTER,
    OPT_UNKNOWN,
    OPT_REJECT,
    OPT_ACCOUNT,
    OPT_LATENCY,
    OPT_FAIL_RATE,
    OPT_FAIL_STATUS,
    OPT_GZIP,
    OPT_MAX_CONNS,
    OPT_MAX_REQ,
    OPT_IDLE,
    OPT_VERBOSE,
    OPT_HELP
};

static const struct option long_opts[] = {
    {"listen", required_argument, NULL, OPT_LISTEN},
    {"character", required_argument, NULL, OPT_CHARACTER},
    {"unknown", required_argument, NULL, OPT_UNKNOWN},
    {"reject-key", required_argument, NULL, OPT_REJECT},
    {"account-character", required_argument, NULL, OPT_ACCOUNT},
    {"latency-ms", required_argument, NULL, OPT_LATENCY},
    {"fail-rate", required_argument, NULL, OPT_FAIL_RATE},
    {"fail-status", required_argument, NULL, OPT_FAIL_STATUS},
    {"gzip", no_argument, NULL, OPT_GZIP},
    {"max-conns", required_argument, NULL, OPT_MAX_CONNS},
    {"max-request-bytes", required_argument, NULL, OPT_MAX_REQ},
    {"idle-timeout-ms", required_argument, NULL, OPT_IDLE},
    {"verbose", no_argument, NULL, OPT_VERBOSE},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

static void free_server(struct server *srv)
{
    for (size_t i = 0; i < srv->nfixtures; i++) {
        free(srv->fixtures[i].body);
        free(srv->fixtures[i].gz);
    }
    mx__stub_registry_clear();
    mx__stub_sink_free();
}

int main(int argc, char **argv)
{
    struct server *srv = &server;
    struct sockaddr_storage addr;
    const char *listen_addr = "127.0.0.1:8090";
    char bound[INET6_ADDRSTRLEN + 16], host[INET6_ADDRSTRLEN];
    struct sockaddr_storage name;
    int namelen = sizeof(name), opt, rc, exit_code = 1, longindex = 0;
    uint64_t v;

    srv->cfg.fail_status = 500;
    srv->max_conns = 1024;
    srv->max_request = 16384;
    srv->idle_ms = 60000;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "", long_opts, &longindex)) != -1) {
        switch (opt) {
        case OPT_LISTEN:
            listen_addr = optarg;
            if (parse_listen(optarg, &addr))
                goto out_usage_msg;
            break;
        case OPT_CHARACTER:
            if (srv->nfixtures >= FIXTURES_MAX) {
                fprintf(stderr, "mxstub: at most %d --character\n", FIXTURES_MAX);
                goto out_usage;
            }
            rc = load_fixture(&srv->fixtures[srv->nfixtures], optarg);
            if (rc == MX_EINVAL)
                goto out_usage;
            if (rc)
                goto out_free; /* unreadable file: exit 1 */
            if (mx__stub_registry_put(srv->fixtures[srv->nfixtures].ocid,
                                      srv->fixtures[srv->nfixtures].name) != 0)
                srv->st.registry_refused++;
            srv->nfixtures++;
            break;
        case OPT_UNKNOWN:
            if (strcmp(optarg, "404") == 0)
                srv->cfg.unknown_404 = true;
            else if (strcmp(optarg, "synthetic") == 0)
                srv->cfg.unknown_404 = false;
            else
                goto out_usage_msg;
            break;
        case OPT_REJECT:
            if (srv->nreject >= REJECT_MAX || !optarg[0])
                goto out_usage_msg;
            srv->reject[srv->nreject++] = optarg;
            break;
        case OPT_ACCOUNT: {
            char *eq = strchr(optarg, '=');
            if (srv->nacct >= REJECT_MAX || !eq || eq == optarg ||
                !mx__stub_name_valid(eq + 1, strlen(eq + 1)))
                goto out_usage_msg;
            *eq = '\0'; /* optarg is argv's own storage */
            srv->acct_key[srv->nacct] = optarg;
            srv->acct_name[srv->nacct++] = eq + 1;
            break;
        }
        case OPT_LATENCY:
            if (parse_u64(optarg, 600000, &srv->cfg.latency_ms))
                goto out_usage_msg;
            break;
        case OPT_FAIL_RATE:
            if (parse_rate(optarg, &srv->cfg.fail_rate))
                goto out_usage_msg;
            break;
        case OPT_FAIL_STATUS:
            if (parse_status(optarg, &srv->cfg.fail_status))
                goto out_usage_msg;
            break;
        case OPT_GZIP:
            srv->cfg.gzip = true;
            break;
        case OPT_MAX_CONNS:
            if (parse_u64(optarg, 1000000, &v) || v == 0)
                goto out_usage_msg;
            srv->max_conns = (size_t)v;
            break;
        case OPT_MAX_REQ:
            if (parse_u64(optarg, 1u << 20, &v) || v < 256)
                goto out_usage_msg;
            srv->max_request = (size_t)v;
            break;
        case OPT_IDLE:
            if (parse_u64(optarg, 3600000, &v) || v == 0)
                goto out_usage_msg;
            srv->idle_ms = v;
            break;
        case OPT_VERBOSE:
            srv->verbose = true;
            break;
        case OPT_HELP:
            usage(stdout);
            exit_code = 0;
            goto out_free;
        default:
            fprintf(stderr, "mxstub: unknown option or missing value: %s\n",
                    argv[optind - 1] ? argv[optind - 1] : "?");
            goto out_usage;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "mxstub: unexpected argument '%s'\n", argv[optind]);
        goto out_usage;
    }
    if (parse_listen(listen_addr, &addr))
        goto out_usage;

    signal(SIGPIPE, SIG_IGN);
    llhttp_settings_init(&settings);
    settings.on_message_begin = on_message_begin;
    settings.on_url = on_url;
    settings.on_header_field = on_header_field;
    settings.on_header_field_complete = on_header_field_complete;
    settings.on_header_value = on_header_value;
    settings.on_header_value_complete = on_header_value_complete;
    settings.on_body = on_body;
    settings.on_message_complete = on_message_complete;

    srv->loop = uv_default_loop();
    uv_tcp_init(srv->loop, &srv->listener);
    srv->listener.data = srv;
    if ((rc = uv_tcp_bind(&srv->listener, (struct sockaddr *)&addr, 0)) != 0 ||
        (rc = uv_listen((uv_stream_t *)&srv->listener, 511, on_connection)) != 0) {
        fprintf(stderr, "mxstub: cannot listen on %s: %s\n", listen_addr, uv_strerror(rc));
        uv_close((uv_handle_t *)&srv->listener, NULL);
        uv_run(srv->loop, UV_RUN_DEFAULT);
        goto out_free;
    }
    uv_tcp_getsockname(&srv->listener, (struct sockaddr *)&name, &namelen);
    if (name.ss_family == AF_INET6) {
        uv_ip6_name((struct sockaddr_in6 *)&name, host, sizeof(host));
        snprintf(bound, sizeof(bound), "[%s]:%d", host,
                 ntohs(((struct sockaddr_in6 *)&name)->sin6_port));
    } else {
        uv_ip4_name((struct sockaddr_in *)&name, host, sizeof(host));
        snprintf(bound, sizeof(bound), "%s:%d", host,
                 ntohs(((struct sockaddr_in *)&name)->sin_port));
    }
    uv_signal_init(srv->loop, &srv->sigint);
    uv_signal_init(srv->loop, &srv->sigterm);
    srv->sigint.data = srv->sigterm.data = srv;
    uv_signal_start(&srv->sigint, on_signal, SIGINT);
    uv_signal_start(&srv->sigterm, on_signal, SIGTERM);

    printf("listening %s\n", bound);
    fflush(stdout);
    log_kv("info", "listening", "addr", bound, NULL);

    uv_run(srv->loop, UV_RUN_DEFAULT);
    rc = uv_loop_close(srv->loop);
    log_kv("info", "stopped", NULL);
    exit_code = rc == 0 ? 0 : 1;
    goto out_free;

out_usage_msg:
    fprintf(stderr, "mxstub: bad value for --%s: '%s'\n", long_opts[longindex].name,
            optarg ? optarg : "");
out_usage:
    usage(stderr);
    exit_code = 2;
out_free:
    free_server(srv);
    return exit_code;
}
