/* mx_http_conn.c - the HTTP/1.1 protocol core of one connection, without
 * sockets: llhttp callbacks build requests (bounded head, bounded body,
 * chunked bodies de-chunked), complete requests are routed and handed to
 * the app, answers are composed and handed to the transport strictly in
 * request order, and the connection's limits decide when parsing pauses
 * (pipeline or output full) and when the connection ends.
 *
 * It is separate from the libuv acceptor so the fuzz harness and unit tests
 * drive the same code with plain byte buffers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "mx_alloc.h"
#include "mx_err.h"
#include "mx_httpreason.h"
#include "mx_http_int.h"
#include "mx_jsonw.h"
#include "mx_log.h"

#define INLINE_BODY_MAX 1024 /* bodies up to this are copied into the head buffer */

struct mx_http_req {
    struct mx__http_srv *srv;
    struct mx__http_conn *conn;        /* NULL once the client went away */
    struct mx_http_req *next;          /* the connection's queue, in order */
    struct mx_http_req *lprev, *lnext; /* srv->live */
    /* request: every string NUL-terminated in arena, by offset */
    char *arena;
    uint32_t alen, acap, amax;
    uint32_t url_off, path_off;
    uint16_t nhdr, nquery;
    uint8_t hstate; /* 0 none, 1 in a name, 2 in a value */
    uint32_t hname[MX__HTTP_MAX_HEADERS], hval[MX__HTTP_MAX_HEADERS];
    uint32_t qname[MX__HTTP_MAX_QUERY], qval[MX__HTTP_MAX_QUERY];
    struct mx__http_param params[MX__HTTP_MAX_PARAMS];
    int nparams;
    const struct mx__http_proute *route;
    char *body;
    size_t body_len, body_cap;
    char method[16];
    bool keep_alive, http10, head_only, close;
    bool in_app;     /* counted in srv->in_app: the handler returned PENDING */
    int64_t charged; /* arena + body bytes counted in *srv->mem */
    uint8_t trace_id[16], span_id[8], trace_flags;
    char traceparent[56];
    char trace_hex[33];
    void *user;
    /* answer */
    bool responded;
    int status;
    char ctype[96];
    struct mx_blob *rbody;
    char *xh; /* extra header lines, "Name: value\r\n"... */
    size_t xh_len;
};

/* ---- dates ---- */

/* ---- the counter block's limit and status-class fields (MX_HTTP_METRICS) ---- */

static const size_t limit_off[MX_HTTP_LIM__COUNT] = {
    [MX_HTTP_LIM_BAD_REQUEST] = offsetof(struct mx__http_ctr, limit_bad_request),
    [MX_HTTP_LIM_HEADER_SIZE] = offsetof(struct mx__http_ctr, limit_header_size),
    [MX_HTTP_LIM_BODY_SIZE] = offsetof(struct mx__http_ctr, limit_body_size),
    [MX_HTTP_LIM_HEADER_TIME] = offsetof(struct mx__http_ctr, limit_header_time),
    [MX_HTTP_LIM_IDLE] = offsetof(struct mx__http_ctr, limit_idle),
    [MX_HTTP_LIM_PIPELINE] = offsetof(struct mx__http_ctr, limit_pipeline),
    [MX_HTTP_LIM_OUTPUT] = offsetof(struct mx__http_ctr, limit_output),
    [MX_HTTP_LIM_CONNS] = offsetof(struct mx__http_ctr, limit_conns),
    [MX_HTTP_LIM_IN_APP] = offsetof(struct mx__http_ctr, limit_in_app),
    [MX_HTTP_LIM_BODY_TIME] = offsetof(struct mx__http_ctr, limit_body_time),
    [MX_HTTP_LIM_CHUNK_EXT] = offsetof(struct mx__http_ctr, limit_chunk_ext),
    [MX_HTTP_LIM_CLIENT_CONNS] = offsetof(struct mx__http_ctr, limit_client_conns),
    [MX_HTTP_LIM_MEMORY] = offsetof(struct mx__http_ctr, limit_memory),
    [MX_HTTP_LIM_DRAIN] = offsetof(struct mx__http_ctr, limit_drain),
};

_Atomic uint64_t *mx__http_ctr_limit(struct mx__http_ctr *c, enum mx_http_limit lim)
{
    return (_Atomic uint64_t *)((char *)c + limit_off[lim]);
}

_Atomic uint64_t *mx__http_ctr_class(struct mx__http_ctr *c, int cls)
{
    switch (cls) {
    case 1:
        return &c->responses_1xx;
    case 2:
        return &c->responses_2xx;
    case 3:
        return &c->responses_3xx;
    case 4:
        return &c->responses_4xx;
    default: /* the server writes only 100..599 */
        return &c->responses_5xx;
    }
}

static void imf_date(time_t t, char out[40])
{
    static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const mons[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(out, 40, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday % 7], tm.tm_mday,
             mons[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

const char *mx__http_srv_date(struct mx__http_srv *s)
{
    time_t now = time(NULL);
    if (now != s->date_sec) {
        imf_date(now, s->date);
        s->date_sec = now;
    }
    return s->date;
}

static void iso_now(char out[64])
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    snprintf(out, 64, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
}

struct mx_blob *mx__http_error_body(int status, const char *code, const char *message)
{
    struct mx_jsonw w;
    char ts[64];
    size_t len;
    iso_now(ts);
    mx_jsonw_init(&w, 4096);
    mx_jsonw_obj_open(&w);
    mx_jsonw_kint(&w, "status", status);
    mx_jsonw_kstr(&w, "code", code ? code : "");
    mx_jsonw_kstr(&w, "message", message ? message : "");
    mx_jsonw_kstr(&w, "timestamp", ts);
    mx_jsonw_obj_close(&w);
    char *s = mx_jsonw_take(&w, &len);
    struct mx_blob *b;
    if (s) {
        b = mx_blob_new(s, len);
        free(s);
    } else {
        /* the message was too long for the bound: say so without it */
        b = mx__http_error_body(status, code, "(message too long)");
    }
    mx_jsonw_fini(&w);
    return b;
}

/* ---- requests ---- */

static struct mx_http_req *req_new(struct mx__http_conn *c)
{
    struct mx__http_srv *s = c->srv;
    struct mx_http_req *r = calloc(1, sizeof(*r));
    if (!r)
        abort();
    r->srv = s;
    r->conn = c;
    /* head + NULs + decoded copies of path params and query */
    r->amax = 2 * s->o.max_header_bytes + 2 * MX__HTTP_MAX_HEADERS + 1024;
    r->lnext = s->live;
    if (s->live)
        s->live->lprev = r;
    s->live = r;
    mx__http_count(&s->ctr->requests, 1);
    return r;
}

/* Count n bytes (negative: release) against the node's buffer budget. */
static void mem_charge(struct mx__http_srv *s, int64_t n)
{
    if (s->mem && n)
        atomic_fetch_add_explicit(s->mem, n, memory_order_relaxed); /* a bound only */
}

bool mx__http_srv_mem_full(const struct mx__http_srv *s)
{
    /* relaxed: a bound; overshoot is at most one request per acceptor */
    return s->mem &&
           atomic_load_explicit(s->mem, memory_order_relaxed) >= (int64_t)s->o.max_buffered_bytes;
}

static void req_free(struct mx_http_req *r)
{
    struct mx__http_srv *s = r->srv;
    mem_charge(s, -r->charged);
    if (r->in_app)
        s->in_app--;
    if (r->lprev)
        r->lprev->lnext = r->lnext;
    else
        s->live = r->lnext;
    if (r->lnext)
        r->lnext->lprev = r->lprev;
    free(r->arena);
    free(r->body);
    free(r->xh);
    mx_blob_unref(r->rbody);
    free(r);
}

void mx__http_srv_free_live(struct mx__http_srv *s)
{
    while (s->live)
        req_free(s->live);
}

static int arena_reserve(struct mx_http_req *r, size_t n)
{
    if ((size_t)r->alen + n > r->amax)
        return -1;
    if (r->alen + n > r->acap) {
        size_t cap = r->acap ? r->acap : 512;
        while (cap < r->alen + n)
            cap *= 2;
        if (cap > r->amax)
            cap = r->amax;
        r->arena = xrealloc(r->arena, cap);
        mem_charge(r->srv, (int64_t)cap - r->acap);
        r->charged += (int64_t)cap - r->acap;
        r->acap = (uint32_t)cap;
    }
    return 0;
}

static int arena_put(struct mx_http_req *r, const char *s, size_t n)
{
    if (n == 0)
        return 0;
    if (arena_reserve(r, n) != 0)
        return -1;
    memcpy(r->arena + r->alen, s, n);
    r->alen += (uint32_t)n;
    return 0;
}

/* ---- accessors ---- */

const char *mx_http_req_method(const mx_http_req_t *r)
{
    return r->method;
}

const char *mx_http_req_path(const mx_http_req_t *r)
{
    return r->arena ? r->arena + r->path_off : "";
}

const struct mx_http_route *mx_http_req_route(const mx_http_req_t *r)
{
    return r->route ? &r->route->r : NULL;
}

const char *mx_http_req_param(const mx_http_req_t *r, const char *name)
{
    if (!r->route || !name)
        return NULL;
    size_t nl = strlen(name);
    int k = 0;
    for (uint16_t i = 0; i < r->route->nseg && k < r->nparams; i++) {
        const struct mx__http_seg *s = &r->route->seg[i];
        if (s->kind == 0)
            continue;
        if (s->len == nl && memcmp(s->s, name, nl) == 0)
            return r->arena + r->params[k].off;
        k++;
    }
    return NULL;
}

const char *mx_http_req_query(const mx_http_req_t *r, const char *name)
{
    for (uint16_t i = 0; name && i < r->nquery; i++)
        if (strcmp(r->arena + r->qname[i], name) == 0)
            return r->arena + r->qval[i];
    return NULL;
}

const char *mx_http_req_header(const mx_http_req_t *r, const char *name)
{
    for (uint16_t i = 0; name && i < r->nhdr; i++)
        if (strcasecmp(r->arena + r->hname[i], name) == 0)
            return r->arena + r->hval[i];
    return NULL;
}

const char *mx_http_req_header_n(const mx_http_req_t *r, const char *name, unsigned n)
{
    for (uint16_t i = 0; name && i < r->nhdr; i++)
        if (strcasecmp(r->arena + r->hname[i], name) == 0 && n-- == 0)
            return r->arena + r->hval[i];
    return NULL;
}

const uint8_t *mx_http_req_body(const mx_http_req_t *r, size_t *len)
{
    if (len)
        *len = r->body_len;
    return (const uint8_t *)r->body;
}

const char *mx_http_req_peer_ip(const mx_http_req_t *r)
{
    return r->conn ? r->conn->peer_ip : "";
}

const struct sockaddr_storage *mx_http_req_peer_addr(const mx_http_req_t *r)
{
    static const struct sockaddr_storage none;
    return r->conn ? &r->conn->peer : &none;
}

const char *mx_http_req_traceparent(const mx_http_req_t *r)
{
    return r->traceparent;
}

const char *mx_http_req_trace_hex(const mx_http_req_t *r)
{
    return r->trace_hex;
}

void *mx_http_req_user(const mx_http_req_t *r)
{
    return r->user;
}

void mx_http_req_set_user(mx_http_req_t *r, void *user)
{
    r->user = user;
}

mx_actor_t *mx_http_req_actor(const mx_http_req_t *r)
{
    return r->srv->actor;
}

bool mx_http_req_alive(const mx_http_req_t *r)
{
    return r->conn != NULL;
}

void mx_http_stamp(const mx_http_req_t *r, struct mx_msg *m)
{
    memcpy(m->env.trace_id, r->trace_id, sizeof(m->env.trace_id));
    memcpy(m->env.span_id, r->span_id, sizeof(m->env.span_id));
}

int mx_http_request(mx_http_req_t *r, struct mx_addr to, struct mx_msg *m, uint32_t timeout_ms,
                    uint64_t *corr)
{
    if (!r->srv->actor)
        return MX_EINVAL;
    mx_http_stamp(r, m);
    return mx_request(r->srv->actor, to, m, timeout_ms, corr);
}

/* ---- answers ---- */

static bool token_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

int mx_http_add_header(mx_http_req_t *r, const char *name, const char *value)
{
    static const char *const reserved[] = {"date",       "content-type", "content-length",
                                           "connection", "traceparent",  "transfer-encoding",
                                           NULL};
    if (!name || !value || !*name || r->responded)
        return MX_EINVAL;
    for (const char *p = name; *p; p++)
        if (!token_char(*p))
            return MX_EINVAL;
    for (const char *p = value; *p; p++)
        if (*p == '\r' || *p == '\n' || (*p > 0 && *p < 0x20 && *p != '\t'))
            return MX_EINVAL;
    for (int i = 0; reserved[i]; i++)
        if (strcasecmp(name, reserved[i]) == 0)
            return MX_EINVAL;
    size_t nl = strlen(name), vl = strlen(value), need = nl + vl + 4;
    if (r->xh_len + need > MX__HTTP_XH_MAX)
        return MX_ETOOBIG;
    if (!r->xh)
        r->xh = xrealloc(NULL, MX__HTTP_XH_MAX);
    char *p = r->xh + r->xh_len;
    memcpy(p, name, nl);
    memcpy(p + nl, ": ", 2);
    memcpy(p + nl + 2, value, vl);
    memcpy(p + nl + 2 + vl, "\r\n", 2);
    r->xh_len += need;
    return 0;
}

static void flush(struct mx__http_conn *c);

/* Record the answer; the request leaves when it reaches the queue head. */
static int answer(mx_http_req_t *r, int status, const char *ctype, struct mx_blob *body)
{
    int rc = 0;
    if (r->responded) {
        mx_blob_unref(body); /* a second answer to one request: a bug in the app */
        return MX_EINVAL;
    }
    if (status < 100 || status > 599 || (body && body->len && !ctype) ||
        (ctype && (strlen(ctype) >= sizeof(r->ctype) || strpbrk(ctype, "\r\n")))) {
        mx_blob_unref(body);
        body = mx__http_error_body(500, "S000", "invalid response from the handler");
        status = 500;
        ctype = "application/json";
        r->xh_len = 0;
        rc = MX_EINVAL;
    }
    if (r->in_app) {
        r->in_app = false;
        r->srv->in_app--;
    }
    struct mx__http_conn *c = r->conn;
    if (!c) {
        mx__http_count(&r->srv->ctr->dropped_responses, 1);
        mx_blob_unref(body);
        req_free(r);
        return MX_ESTOPPED;
    }
    r->responded = true;
    r->status = status;
    snprintf(r->ctype, sizeof(r->ctype), "%s", ctype ? ctype : "application/octet-stream");
    r->rbody = body;
    if (!c->in_dispatch) {
        flush(c);
        if (!c->in_feed && c->io->wake)
            c->io->wake(c->io_ctx);
    }
    return rc;
}

int mx_http_respond(mx_http_req_t *r, int status, const char *content_type, const void *body,
                    size_t len)
{
    return answer(r, status, content_type, len ? mx_blob_new(body, len) : NULL);
}

int mx_http_respond_blob(mx_http_req_t *r, int status, const char *content_type,
                         struct mx_blob *body)
{
    return answer(r, status, content_type, body ? mx_blob_ref(body) : NULL);
}

int mx_http_error(mx_http_req_t *r, int status, const char *code, const char *message)
{
    return answer(r, status, "application/json", mx__http_error_body(status, code, message));
}

int mx_http_respond_doc(mx_http_req_t *r, const struct mx_http_doc *d)
{
    bool gz = d->gzip && mx_http_accepts_gzip(mx_http_req_header(r, "Accept-Encoding"));
    const char *etag = gz ? d->etag_gz : d->etag;
    mx_http_add_header(r, "ETag", etag);
    mx_http_add_header(r, "Vary", "Accept-Encoding");
    if (mx_http_etag_match(mx_http_req_header(r, "If-None-Match"), etag))
        return answer(r, 304, d->content_type, NULL);
    if (gz)
        mx_http_add_header(r, "Content-Encoding", "gzip");
    return answer(r, 200, d->content_type, mx_blob_ref(gz ? d->gzip : d->plain));
}

/* append helpers for compose (the caller sized the buffer) */
static char *put(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

static char *put_s(char *p, const char *s)
{
    return put(p, s, strlen(s));
}

#define PUT_LIT(p, lit) put(p, lit, sizeof(lit) - 1)

static char *put_u(char *p, uint64_t v)
{
    char t[20];
    int i = 20;
    do {
        t[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return put(p, t + i, (size_t)(20 - i));
}

/* Build the bytes of r's answer (no printf: it showed in profiles). The
 * fixed part is under 256 bytes: status line <= 48, Date 37, lengths 38,
 * traceparent 70, Connection 24, blank line 2. */
static struct mx__http_out *compose(struct mx__http_conn *c, struct mx_http_req *r, bool close)
{
    struct mx__http_out *o = calloc(1, sizeof(*o));
    if (!o)
        abort();
    bool no_body = r->status < 200 || r->status == 204 || r->status == 304;
    size_t blen = r->rbody && !no_body ? r->rbody->len : 0;
    bool send_body = blen && !r->head_only;
    bool inl = send_body && blen <= INLINE_BODY_MAX;
    size_t cap = 384 + strlen(r->ctype) + r->xh_len + (inl ? blen : 0);
    o->head = xrealloc(NULL, cap);
    char *p = PUT_LIT(o->head, "HTTP/1.1 ");
    p = put_u(p, (uint64_t)r->status);
    p = PUT_LIT(p, " ");
    p = put_s(p, mx_http_reason(r->status));
    p = PUT_LIT(p, "\r\nDate: ");
    p = put_s(p, mx__http_srv_date(c->srv));
    p = PUT_LIT(p, "\r\n");
    if (!no_body && blen > 0) { /* an empty body has no type */
        p = PUT_LIT(p, "Content-Type: ");
        p = put_s(p, r->ctype);
        p = PUT_LIT(p, "\r\n");
    }
    if (!no_body) {
        p = PUT_LIT(p, "Content-Length: ");
        p = put_u(p, blen);
        p = PUT_LIT(p, "\r\n");
    }
    p = PUT_LIT(p, "traceparent: ");
    p = put_s(p, r->traceparent);
    p = PUT_LIT(p, "\r\n");
    if (close)
        p = PUT_LIT(p, "Connection: close\r\n");
    else if (r->http10)
        p = PUT_LIT(p, "Connection: keep-alive\r\n");
    if (r->xh_len)
        p = put(p, r->xh, r->xh_len);
    p = PUT_LIT(p, "\r\n");
    if (inl) {
        p = put(p, (const char *)r->rbody->data, blen);
    } else if (send_body) {
        o->blob = r->rbody;
        r->rbody = NULL;
    }
    size_t n = (size_t)(p - o->head);
    if (n > cap) /* cannot happen: cap covers the fixed part with room */
        abort();
    o->head_len = n;
    o->total = o->head_len + (o->blob ? o->blob->len : 0);
    o->close = close;
    /* acquire: pairs with the release in mx_blob_unref of other holders */
    bool own_blob = o->blob && atomic_load_explicit(&o->blob->refs, memory_order_acquire) == 1;
    o->charged = (int64_t)(o->head_len + (own_blob ? o->blob->len : 0));
    o->mem = c->srv->mem;
    mem_charge(c->srv, o->charged);
    return o;
}

void mx__http_out_free(struct mx__http_out *o)
{
    if (!o)
        return;
    if (o->mem && o->charged) /* relaxed: a bound */
        atomic_fetch_sub_explicit(o->mem, o->charged, memory_order_relaxed);
    free(o->head);
    mx_blob_unref(o->blob);
    free(o);
}

/* Hand every answered request at the head of the queue to the transport. */
static void flush(struct mx__http_conn *c)
{
    struct mx__http_ctr *ctr = c->srv->ctr;
    while (c->q_head && c->q_head->responded && !c->finished && !c->fini) {
        struct mx_http_req *r = c->q_head;
        c->q_head = r->next;
        if (!c->q_head)
            c->q_tail = NULL;
        c->q_len--;
        bool close = r->close || (c->stop_parsing && !c->q_head);
        struct mx__http_out *o = compose(c, r, close);
        mx__http_count(mx__http_ctr_class(ctr, r->status / 100), 1);
        c->out_bytes += o->total;
        if (close)
            c->finished = true;
        req_free(r);
        c->io->write(c->io_ctx, o);
    }
}

static void enqueue(struct mx__http_conn *c, struct mx_http_req *r)
{
    r->next = NULL;
    if (c->q_tail)
        c->q_tail->next = r;
    else
        c->q_head = r;
    c->q_tail = r;
    c->q_len++;
}

static void new_trace(struct mx_http_req *r)
{
    mx_http_traceparent_new(r->trace_id, r->span_id);
    r->trace_flags = 1;
}

static void trace_finish(struct mx_http_req *r)
{
    static const char hx[] = "0123456789abcdef";
    mx_http_traceparent_format(r->trace_id, r->span_id, r->trace_flags, r->traceparent);
    for (int i = 0; i < 16; i++) {
        r->trace_hex[2 * i] = hx[r->trace_id[i] >> 4];
        r->trace_hex[2 * i + 1] = hx[r->trace_id[i] & 15];
    }
    r->trace_hex[32] = '\0';
}

/* An answer the server makes itself (limits, parse errors): queued last,
 * and the connection closes after it. */
/* An answer of the layer's own: the app's decorate hook first. */
static void layer_error(struct mx__http_srv *s, struct mx_http_req *r, int status, const char *code,
                        const char *why)
{
    if (s->o.decorate)
        s->o.decorate(r, s->o.decorate_ctx);
    mx_http_error(r, status, code, why);
}

static void server_error(struct mx__http_conn *c, int status, const char *code, const char *why,
                         enum mx_http_limit lim)
{
    struct mx__http_srv *s = c->srv;
    if (c->cur) {
        req_free(c->cur);
        c->cur = NULL;
    }
    c->in_head = c->in_body = false;
    c->stop_parsing = true;
    mx__http_count(mx__http_ctr_limit(s->ctr, lim), 1);
    struct mx_http_req *r = req_new(c);
    snprintf(r->method, sizeof(r->method), "-");
    r->close = true;
    new_trace(r);
    trace_finish(r);
    enqueue(c, r);
    layer_error(s, r, status, code, why);
}

/* ---- llhttp callbacks ---- */

static struct mx__http_conn *conn_of(llhttp_t *p)
{
    return p->data;
}

static int head_bytes(struct mx__http_conn *c, size_t n)
{
    c->head_bytes += (uint32_t)(n > UINT32_MAX / 2 ? UINT32_MAX / 2 : n);
    if (c->head_bytes > c->srv->o.max_header_bytes) {
        c->req_error = 431;
        return -1;
    }
    return 0;
}

static int on_message_begin(llhttp_t *p)
{
    struct mx__http_conn *c = conn_of(p);
    if (c->cur)
        req_free(c->cur); /* cannot happen: the previous one completed */
    c->cur = req_new(c);
    c->in_head = true;
    c->in_body = false;
    c->head_bytes = 0;
    c->ext_bytes = 0;
    c->head_start_ms = mx_now_ms();
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t n)
{
    struct mx__http_conn *c = conn_of(p);
    if (head_bytes(c, n) || arena_put(c->cur, at, n))
        return c->req_error = 431, -1;
    return 0;
}

static int on_url_complete(llhttp_t *p)
{
    struct mx__http_conn *c = conn_of(p);
    if (head_bytes(c, 1) || arena_put(c->cur, "", 1))
        return c->req_error = 431, -1;
    return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t n)
{
    struct mx__http_conn *c = conn_of(p);
    struct mx_http_req *r = c->cur;
    if (head_bytes(c, n))
        return -1;
    if (r->hstate != 1) {
        if (r->nhdr == MX__HTTP_MAX_HEADERS || head_bytes(c, 4))
            return c->req_error = 431, -1;
        r->hname[r->nhdr] = r->alen;
        r->hval[r->nhdr] = r->alen; /* set properly when the value starts */
        r->nhdr++;
        r->hstate = 1;
    }
    if (arena_put(r, at, n))
        return c->req_error = 431, -1;
    return 0;
}

static int on_header_field_complete(llhttp_t *p)
{
    struct mx__http_conn *c = conn_of(p);
    if (c->cur->hstate != 1) /* an empty name cannot happen; be safe */
        return c->req_error = 400, -1;
    if (arena_put(c->cur, "", 1))
        return c->req_error = 431, -1;
    c->cur->hstate = 0;
    return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t n)
{
    struct mx__http_conn *c = conn_of(p);
    struct mx_http_req *r = c->cur;
    if (head_bytes(c, n))
        return -1;
    if (r->nhdr == 0)
        return c->req_error = 400, -1;
    if (r->hstate != 2) {
        r->hval[r->nhdr - 1] = r->alen;
        r->hstate = 2;
    }
    if (arena_put(r, at, n))
        return c->req_error = 431, -1;
    return 0;
}

static int on_header_value_complete(llhttp_t *p)
{
    struct mx__http_conn *c = conn_of(p);
    struct mx_http_req *r = c->cur;
    if (r->nhdr == 0)
        return c->req_error = 400, -1;
    if (r->hstate != 2)
        r->hval[r->nhdr - 1] = r->alen; /* empty value */
    while (r->alen > r->hval[r->nhdr - 1] &&
           (r->arena[r->alen - 1] == ' ' || r->arena[r->alen - 1] == '\t'))
        r->alen--;
    if (arena_put(r, "", 1))
        return c->req_error = 431, -1;
    r->hstate = 0;
    return 0;
}

static int on_headers_complete(llhttp_t *p)
{
    struct mx__http_conn *c = conn_of(p);
    struct mx_http_req *r = c->cur;
    c->in_head = false;
    c->in_body = true;
    c->body_start_ms = mx_now_ms();
    if (!r->arena || r->url_off >= r->alen)
        return c->req_error = 400, -1;
    snprintf(r->method, sizeof(r->method), "%s", llhttp_method_name(p->method));
    r->http10 = p->http_major == 1 && p->http_minor == 0;
    r->head_only = p->method == HTTP_HEAD;
    if ((p->flags & F_CONTENT_LENGTH) && p->content_length > c->srv->o.max_body_bytes) {
        c->req_error = 413;
        return -1;
    }
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t n)
{
    struct mx__http_conn *c = conn_of(p);
    struct mx_http_req *r = c->cur;
    size_t max = c->srv->o.max_body_bytes;
    if (n > max || r->body_len + n > max) {
        c->req_error = 413;
        return -1;
    }
    if (r->body_len + n > r->body_cap) {
        size_t cap = r->body_cap ? r->body_cap : 1024;
        if ((p->flags & F_CONTENT_LENGTH) && p->content_length + r->body_len + n <= max)
            cap = r->body_len + n + p->content_length; /* content_length counts down */
        while (cap < r->body_len + n)
            cap *= 2;
        if (cap > max)
            cap = max;
        if (mx__http_srv_mem_full(c->srv)) { /* the node's buffer budget is spent */
            c->req_error = 503;
            return -1;
        }
        r->body = xrealloc(r->body, cap);
        mem_charge(c->srv, (int64_t)(cap - r->body_cap));
        r->charged += (int64_t)(cap - r->body_cap);
        r->body_cap = cap;
    }
    memcpy(r->body + r->body_len, at, n);
    r->body_len += n;
    return 0;
}

/* Chunk extensions (";name=value" after a chunk size) are ignored, but
 * llhttp does not bound them: count them (CVE-2024-22019). */
static int on_chunk_ext(llhttp_t *p, const char *at, size_t n)
{
    struct mx__http_conn *c = conn_of(p);
    uint32_t max =
        c->srv->o.max_chunk_ext_bytes ? c->srv->o.max_chunk_ext_bytes : MX_HTTP_MAX_CHUNK_EXT_BYTES;
    (void)at;
    if (n > max || c->ext_bytes + n > max) {
        c->req_error = 413;
        c->req_why = "chunk extensions too large";
        return -1;
    }
    c->ext_bytes += (uint32_t)n;
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    struct mx__http_conn *c = conn_of(p);
    c->in_body = false;
    c->msg_done = true;
    return HPE_PAUSED; /* dispatch outside the parser, then resume */
}

static const llhttp_settings_t settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_url_complete = on_url_complete,
    .on_header_field = on_header_field,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value = on_header_value,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_chunk_extension_name = on_chunk_ext,
    .on_chunk_extension_value = on_chunk_ext,
    .on_message_complete = on_message_complete,
};

/* ---- dispatch ---- */

/* Parse the query string q (NUL-terminated in the arena) into decoded pairs
 * appended to the arena. false: malformed. */
static bool parse_query(struct mx_http_req *r, uint32_t qoff)
{
    uint32_t end = qoff + (uint32_t)strlen(r->arena + qoff);
    /* decoded output is never longer than the input, plus two NULs a pair */
    if (arena_reserve(r, (end - qoff) + 2 * MX__HTTP_MAX_QUERY + 2) != 0)
        return false;
    uint32_t p = qoff;
    while (p < end) {
        uint32_t e = p;
        while (e < end && r->arena[e] != '&')
            e++;
        if (e > p && r->nquery < MX__HTTP_MAX_QUERY) {
            uint32_t eq = p;
            while (eq < e && r->arena[eq] != '=')
                eq++;
            uint32_t k = r->alen;
            long kl = mx__http_pct_decode(r->arena + p, eq - p, true, true, r->arena + r->alen);
            if (kl < 0)
                return false;
            r->alen += (uint32_t)kl;
            r->arena[r->alen++] = '\0';
            uint32_t v = r->alen;
            long vl = 0;
            if (eq < e) {
                vl = mx__http_pct_decode(r->arena + eq + 1, e - eq - 1, true, true,
                                         r->arena + r->alen);
                if (vl < 0)
                    return false;
            }
            r->alen += (uint32_t)vl;
            r->arena[r->alen++] = '\0';
            r->qname[r->nquery] = k;
            r->qval[r->nquery] = v;
            r->nquery++;
        }
        p = e + 1;
    }
    return true;
}

static void run_handler(struct mx__http_conn *c, struct mx_http_req *r);

static void dispatch(struct mx__http_conn *c, struct mx_http_req *r)
{
    struct mx__http_srv *s = c->srv;
    const char *tp = mx_http_req_header(r, "traceparent");
    if (!tp || !mx_http_traceparent_parse(tp, strlen(tp), r->trace_id, r->span_id, &r->trace_flags))
        new_trace(r);
    trace_finish(r);

    /* split the target: path ? query # fragment */
    char *url = r->arena + r->url_off;
    char *hash = strchr(url, '#');
    if (hash)
        *hash = '\0';
    char *q = strchr(url, '?');
    if (q)
        *q = '\0';
    r->path_off = r->url_off;
    size_t plen = strlen(url);
    const char *why = NULL;
    char allow[96];
    if (q && !parse_query(r, (uint32_t)(q + 1 - r->arena))) {
        mx__http_count(mx__http_ctr_limit(s->ctr, MX_HTTP_LIM_BAD_REQUEST), 1);
        layer_error(s, r, 400, "C001", "invalid percent-encoding or UTF-8 in the query");
        return;
    }
    if (arena_reserve(r, plen + MX__HTTP_MAX_PARAMS + 1) != 0) {
        layer_error(s, r, 431, "HEADERS_TOO_LARGE", "request target too long");
        return;
    }
    size_t olen = 0;
    int v = mx__http_route_path(s->rt, r->method, r->arena + r->path_off, &r->route, r->params,
                                &r->nparams, r->arena + r->alen, r->amax - r->alen, &olen, allow,
                                sizeof(allow), &why);
    switch (v) {
    case MX__HTTP_ROUTE_OK:
        for (int i = 0; i < r->nparams; i++)
            r->params[i].off += r->alen; /* the router counts from its output */
        r->alen += (uint32_t)olen;
        break;
    case MX__HTTP_ROUTE_400:
        mx__http_count(mx__http_ctr_limit(s->ctr, MX_HTTP_LIM_BAD_REQUEST), 1);
        layer_error(s, r, 400, "C001", why);
        return;
    case MX__HTTP_ROUTE_405:
        mx_http_add_header(r, "Allow", allow);
        layer_error(s, r, 405, "METHOD_NOT_ALLOWED", "method not allowed");
        return;
    default:
        layer_error(s, r, 404, "NOT_FOUND", "no such resource");
        return;
    }
    if (mx__http_srv_app_full(s) && !(r->route->r.flags & MX_HTTP_ROUTE_LIGHT)) {
        /* held until an answer makes room; the connection stops parsing */
        c->deferred = r;
        mx__http_count(mx__http_ctr_limit(s->ctr, MX_HTTP_LIM_IN_APP), 1);
        return;
    }
    run_handler(c, r);
}

static void run_handler(struct mx__http_conn *c, struct mx_http_req *r)
{
    struct mx__http_srv *s = c->srv;
    if (s->sched >= 0)
        mx_log_set_context(s->sched, "http", NULL);
    /* the request's trace: sends from the handler carry it (mx_send stamps
     * it) and so do the callbacks of the Redis commands it issues */
    struct mx_trace tr, saved;
    memcpy(tr.trace_id, r->trace_id, sizeof tr.trace_id);
    memcpy(tr.span_id, r->span_id, sizeof tr.span_id);
    mx_trace_enter(&tr, &saved);
    c->in_dispatch = true;
    int rc = r->route->r.fn(r, s->app_state);
    c->in_dispatch = false;
    if (!r->responded && rc == MX_HTTP_PENDING) {
        r->in_app = true;
        s->in_app++;
    }
    if (!r->responded && rc != MX_HTTP_PENDING) {
        MX_WARN("handler %s %s returned without answering (rc %d)", r->route->r.method,
                r->route->r.pattern, rc);
        layer_error(s, r, 500, "S000", "internal error");
    }
    mx_trace_leave(&saved);
    if (s->sched >= 0)
        mx_log_set_context(s->sched, NULL, NULL);
}

static void complete(struct mx__http_conn *c)
{
    struct mx_http_req *r = c->cur;
    c->cur = NULL;
    c->msg_done = false;
    r->keep_alive = llhttp_should_keep_alive(&c->parser) && !c->parser.upgrade && !c->srv->draining;
    if (!r->keep_alive) {
        r->close = true;
        c->stop_parsing = true;
    }
    enqueue(c, r);
    dispatch(c, r);
    flush(c);
}

/* ---- the connection ---- */

void mx__http_conn_init(struct mx__http_conn *c, struct mx__http_srv *srv,
                        const struct mx__http_io *io, void *io_ctx,
                        const struct sockaddr_storage *peer)
{
    memset(c, 0, sizeof(*c));
    c->srv = srv;
    c->io = io;
    c->io_ctx = io_ctx;
    llhttp_init(&c->parser, HTTP_REQUEST, &settings);
    c->parser.data = c;
    if (peer)
        c->peer = *peer;
}

bool mx__http_srv_app_full(const struct mx__http_srv *s)
{
    return s->in_app >= (s->o.max_in_app ? s->o.max_in_app : MX_HTTP_MAX_IN_APP);
}

bool mx__http_conn_can_parse(const struct mx__http_conn *c)
{
    return !c->stop_parsing && !c->finished && !c->fini && !c->deferred &&
           c->q_len < c->srv->o.max_pipeline && c->out_bytes < c->srv->o.max_output_bytes &&
           (c->in_head || c->in_body || !mx__http_srv_mem_full(c->srv));
}

void mx__http_conn_resume(struct mx__http_conn *c)
{
    struct mx_http_req *r = c->deferred;
    if (!r || c->fini || mx__http_srv_app_full(c->srv))
        return;
    c->deferred = NULL;
    bool in_feed = c->in_feed;
    c->in_feed = true; /* the caller re-evaluates the connection */
    run_handler(c, r);
    flush(c);
    c->in_feed = in_feed;
}

static void parse_error(struct mx__http_conn *c, llhttp_errno_t e)
{
    switch (c->req_error) {
    case 413:
        if (c->req_why) /* the chunk extensions, not the body */
            server_error(c, 413, "PAYLOAD_TOO_LARGE", c->req_why, MX_HTTP_LIM_CHUNK_EXT);
        else
            server_error(c, 413, "PAYLOAD_TOO_LARGE", "request body too large",
                         MX_HTTP_LIM_BODY_SIZE);
        break;
    case 431:
        server_error(c, 431, "HEADERS_TOO_LARGE", "request line and headers too large",
                     MX_HTTP_LIM_HEADER_SIZE);
        break;
    case 503:
        mx__http_count(&c->srv->ctr->mem_closed, 1);
        server_error(c, 503, "S_BUSY", "server buffer budget exhausted: retry later",
                     MX_HTTP_LIM_MEMORY);
        break;
    default:
        server_error(c, 400, "C001", "malformed request", MX_HTTP_LIM_BAD_REQUEST);
        break;
    }
    c->req_error = 0;
    c->req_why = NULL;
}

size_t mx__http_conn_feed(struct mx__http_conn *c, const char *data, size_t len)
{
    size_t used = 0;
    struct mx__http_ctr *ctr = c->srv->ctr;
    mx__http_conn_resume(c);
    c->in_feed = true;
    while (used < len && mx__http_conn_can_parse(c)) {
        const char *at = data + used;
        llhttp_errno_t e = llhttp_execute(&c->parser, at, len - used);
        if (e == HPE_OK) {
            used = len;
            break;
        }
        if (e == HPE_PAUSED || e == HPE_PAUSED_UPGRADE) {
            const char *pos = llhttp_get_error_pos(&c->parser);
            used = pos && pos >= at && pos <= data + len ? (size_t)(pos - data) : len;
            if (e == HPE_PAUSED)
                llhttp_resume(&c->parser);
            else
                c->stop_parsing = true; /* Upgrade/CONNECT: answered as plain HTTP, last */
            if (c->msg_done)
                complete(c);
            if (!c->stop_parsing && !c->finished && c->q_len >= c->srv->o.max_pipeline)
                mx__http_count(mx__http_ctr_limit(ctr, MX_HTTP_LIM_PIPELINE), 1);
            else if (!c->stop_parsing && !c->finished && c->out_bytes >= c->srv->o.max_output_bytes)
                mx__http_count(mx__http_ctr_limit(ctr, MX_HTTP_LIM_OUTPUT), 1);
            else if (!c->stop_parsing && !c->finished && !c->deferred &&
                     mx__http_srv_mem_full(c->srv))
                mx__http_count(mx__http_ctr_limit(ctr, MX_HTTP_LIM_MEMORY), 1);
            continue;
        }
        parse_error(c, e);
        used = len;
        break;
    }
    flush(c);
    c->in_feed = false;
    /* input after the last request is never parsed: drop it */
    if (c->stop_parsing || c->finished || c->fini)
        return len;
    return used;
}

void mx__http_conn_written(struct mx__http_conn *c, size_t n)
{
    size_t d = n > c->out_bytes ? c->out_bytes : n;
    c->out_bytes -= d;
    c->written += d;
}

void mx__http_conn_head_timeout(struct mx__http_conn *c)
{
    if ((!c->in_head && !c->in_body) || c->stop_parsing || c->finished || c->fini)
        return;
    c->in_feed = true;
    if (c->in_head)
        server_error(c, 408, "REQUEST_TIMEOUT", "request headers not received in time",
                     MX_HTTP_LIM_HEADER_TIME);
    else
        server_error(c, 408, "REQUEST_TIMEOUT", "request body not received in time",
                     MX_HTTP_LIM_BODY_TIME);
    flush(c);
    c->in_feed = false;
}

void mx__http_conn_eof(struct mx__http_conn *c)
{
    if (c->cur) {
        req_free(c->cur);
        c->cur = NULL;
    }
    c->in_head = c->in_body = false;
    c->stop_parsing = true;
    c->in_feed = true;
    flush(c);
    c->in_feed = false;
}

void mx__http_conn_drain(struct mx__http_conn *c)
{
    mx__http_conn_eof(c);
}

bool mx__http_conn_idle(const struct mx__http_conn *c)
{
    return !c->in_head && !c->in_body && !c->cur && c->q_len == 0 && c->out_bytes == 0;
}

bool mx__http_conn_done(const struct mx__http_conn *c)
{
    return (c->finished || c->fini || (c->stop_parsing && c->q_len == 0)) && c->out_bytes == 0;
}

int64_t mx__http_conn_held(const struct mx__http_conn *c)
{
    int64_t n = c->cur ? c->cur->charged : 0;
    for (const struct mx_http_req *r = c->q_head; r; r = r->next)
        n += r->charged;
    return n;
}

bool mx__http_conn_waiting_app(const struct mx__http_conn *c)
{
    for (const struct mx_http_req *r = c->q_head; r; r = r->next)
        if (!r->responded)
            return true;
    return false;
}

void mx__http_conn_fini(struct mx__http_conn *c)
{
    if (c->fini)
        return;
    c->fini = true;
    if (c->cur) {
        req_free(c->cur);
        c->cur = NULL;
    }
    struct mx_http_req *r = c->q_head;
    while (r) {
        struct mx_http_req *next = r->next;
        r->next = NULL;
        if (r == c->deferred) { /* never reached the app */
            c->deferred = NULL;
            req_free(r);
        } else if (r->responded) {
            mx__http_count(&c->srv->ctr->dropped_responses, 1);
            req_free(r);
        } else {
            r->conn = NULL; /* the app still holds it */
        }
        r = next;
    }
    c->q_head = c->q_tail = NULL;
    c->q_len = 0;
}
