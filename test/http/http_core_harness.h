/* http_core_harness.h - drive the socket-free HTTP core (mx_http_conn.c)
 * with byte buffers: shared by test_http_core.c and the fuzz harness.
 *
 * Test routes: GET /fast (immediate), GET /slow/{n} (deferred: the test
 * answers later through hh_answer_deferred), POST /echo (echoes the body),
 * GET /doc (a stored document with gzip and ETag), GET /chars/{ign}
 * (echoes the decoded param), DELETE /chars/{ign}, GET /q (echoes query
 * "a"), GET /hdr (echoes header X-Test), GET /admin/REST (echoes REST),
 * GET /bad (returns without answering: the server answers 500).
 */
#ifndef HTTP_CORE_HARNESS_H
#define HTTP_CORE_HARNESS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mx_http_int.h"

#define HH_MAX_DEFERRED 256

struct hh {
    struct mx__http_ctr ctr;
    struct mx__http_router rt;
    struct mx_http_app app;
    struct mx__http_srv srv;
    struct mx__http_conn conn;
    char *out;
    size_t out_len, out_cap;
    mx_http_req_t *deferred[HH_MAX_DEFERRED];
    int ndeferred;
    int wakes;
    bool hold_writes; /* keep outputs unwritten (output backpressure) */
    struct mx__http_out *held[1024];
    int nheld;
    struct mx_http_doc *doc;
};

static int hh_fast(mx_http_req_t *r, void *st)
{
    mx_http_respond(r, 200, "text/plain", "fast", 4);
    return MX_HTTP_DONE;
}

static int hh_slow(mx_http_req_t *r, void *st)
{
    struct hh *h = st;
    if (h->ndeferred == HH_MAX_DEFERRED) {
        mx_http_error(r, 503, "S005", "busy");
        return MX_HTTP_DONE;
    }
    h->deferred[h->ndeferred++] = r;
    return MX_HTTP_PENDING;
}

static int hh_echo(mx_http_req_t *r, void *st)
{
    size_t n;
    const uint8_t *b = mx_http_req_body(r, &n);
    mx_http_respond(r, 200, "application/octet-stream", b, n);
    return MX_HTTP_DONE;
}

static int hh_doc(mx_http_req_t *r, void *st)
{
    struct hh *h = st;
    mx_http_respond_doc(r, h->doc);
    return MX_HTTP_DONE;
}

static int hh_param(mx_http_req_t *r, void *st)
{
    const char *v = mx_http_req_param(r, "ign");
    mx_http_respond(r, 200, "text/plain", v, strlen(v));
    return MX_HTTP_DONE;
}

static int hh_del(mx_http_req_t *r, void *st)
{
    mx_http_respond(r, 204, "text/plain", NULL, 0);
    return MX_HTTP_DONE;
}

static int hh_query(mx_http_req_t *r, void *st)
{
    const char *v = mx_http_req_query(r, "a");
    if (!v)
        v = "(none)";
    mx_http_add_header(r, "X-RateLimit-Remaining", "7");
    mx_http_respond(r, 200, "text/plain", v, strlen(v));
    return MX_HTTP_DONE;
}

static int hh_hdr(mx_http_req_t *r, void *st)
{
    const char *v = mx_http_req_header(r, "x-test");
    if (!v)
        v = "(none)";
    mx_http_respond(r, 200, "text/plain", v, strlen(v));
    return MX_HTTP_DONE;
}

static int hh_rest(mx_http_req_t *r, void *st)
{
    const char *v = mx_http_req_param(r, "**");
    mx_http_respond(r, 200, "text/plain", v, strlen(v));
    return MX_HTTP_DONE;
}

static int hh_bad(mx_http_req_t *r, void *st)
{
    return MX_HTTP_DONE; /* forgot to answer */
}

static const struct mx_http_route hh_routes[] = {
    {"GET", "/fast", hh_fast, 0},         {"GET", "/slow/{n}", hh_slow, 0},
    {"POST", "/echo", hh_echo, 0},        {"GET", "/doc", hh_doc, 0},
    {"GET", "/chars/{ign}", hh_param, 0}, {"DELETE", "/chars/{ign}", hh_del, 0},
    {"GET", "/q", hh_query, 0},           {"GET", "/hdr", hh_hdr, 0},
    {"GET", "/admin/**", hh_rest, 0},     {"GET", "/bad", hh_bad, 0},
};

static void hh_write(void *ctx, struct mx__http_out *o)
{
    struct hh *h = ctx;
    if (h->hold_writes && h->nheld < 1024) {
        h->held[h->nheld++] = o;
        return;
    }
    size_t need = o->head_len + (o->blob ? o->blob->len : 0);
    if (h->out_len + need + 1 > h->out_cap) {
        size_t cap = h->out_cap ? h->out_cap : 4096;
        while (cap < h->out_len + need + 1)
            cap *= 2;
        h->out = realloc(h->out, cap);
        if (!h->out)
            abort();
        h->out_cap = cap;
    }
    memcpy(h->out + h->out_len, o->head, o->head_len);
    h->out_len += o->head_len;
    if (o->blob) {
        memcpy(h->out + h->out_len, o->blob->data, o->blob->len);
        h->out_len += o->blob->len;
    }
    h->out[h->out_len] = '\0';
    size_t total = o->total;
    mx__http_out_free(o);
    mx__http_conn_written(&h->conn, total);
}

static void hh_wake(void *ctx)
{
    ((struct hh *)ctx)->wakes++;
}

static const struct mx__http_io hh_io = {.write = hh_write, .wake = hh_wake};

/* opts: NULL = defaults. */
static inline struct hh *hh_new(const struct mx_http_opts *opts)
{
    struct hh *h = aligned_alloc(64, (sizeof(struct hh) + 63) / 64 * 64);
    if (!h)
        abort();
    memset(h, 0, sizeof(*h));
    if (mx__http_router_init(&h->rt, hh_routes, sizeof(hh_routes) / sizeof(hh_routes[0])) != 0)
        abort();
    h->app.routes = hh_routes;
    h->app.nroutes = sizeof(hh_routes) / sizeof(hh_routes[0]);
    h->srv.o.max_conns = 100;
    h->srv.o.max_header_bytes = opts && opts->max_header_bytes ? opts->max_header_bytes : 16384;
    h->srv.o.max_body_bytes = opts && opts->max_body_bytes ? opts->max_body_bytes : 1u << 20;
    h->srv.o.header_timeout_ms = 10000;
    h->srv.o.idle_timeout_ms = 60000;
    h->srv.o.max_pipeline = opts && opts->max_pipeline ? opts->max_pipeline : 32;
    h->srv.o.max_output_bytes = opts && opts->max_output_bytes ? opts->max_output_bytes : 4u << 20;
    h->srv.o.max_in_app = opts ? opts->max_in_app : 0; /* 0: the core's default */
    h->srv.rt = &h->rt;
    h->srv.app = &h->app;
    h->srv.app_state = h;
    h->srv.sched = -1;
    h->srv.ctr = &h->ctr;
    static const char doc[] = "{\"doc\":\"hello hello hello hello hello hello\"}";
    struct mx_blob *b = mx_blob_new(doc, sizeof(doc) - 1);
    if (mx_http_doc_new("application/json", b, true, &h->doc) != 0)
        abort();
    mx_blob_unref(b);
    mx__http_conn_init(&h->conn, &h->srv, &hh_io, h, NULL);
    return h;
}

/* answer every deferred request, last first (out of order on purpose) */
static inline void hh_answer_deferred(struct hh *h)
{
    while (h->ndeferred > 0) {
        mx_http_req_t *r = h->deferred[--h->ndeferred];
        const char *n = mx_http_req_param(r, "n");
        char body[64];
        snprintf(body, sizeof(body), "slow %s", n ? n : "?");
        mx_http_respond(r, 200, "text/plain", body, strlen(body));
    }
}

static inline void hh_release_held(struct hh *h)
{
    bool hold = h->hold_writes;
    h->hold_writes = false;
    for (int i = 0; i < h->nheld; i++)
        hh_write(h, h->held[i]);
    h->nheld = 0;
    h->hold_writes = hold;
}

static inline void hh_free(struct hh *h)
{
    mx__http_conn_fini(&h->conn);
    hh_answer_deferred(h); /* detached: only frees */
    for (int i = 0; i < h->nheld; i++)
        mx__http_out_free(h->held[i]);
    mx__http_srv_free_live(&h->srv);
    mx__http_router_fini(&h->rt);
    mx_http_doc_unref(h->doc);
    free(h->out);
    free(h);
}

#endif
