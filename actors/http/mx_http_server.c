/* mx_http_server.c - the http-acceptor actor: libuv sockets around the
 * protocol core of mx_http_conn.c.
 *
 * mx_http_start binds one SO_REUSEPORT socket per scheduler itself (libuv
 * 1.44 has no UV_TCP_REUSEPORT), so the port is known and bind errors are
 * reported before any actor runs; each acceptor actor then adopts its socket
 * with uv_tcp_open and accepts on its own loop. Per connection: a read
 * buffer shared by the acceptor (input the core cannot take yet is copied
 * aside and reading stops: backpressure), uv_write of head + blob without
 * copying, and deadlines (head, idle, linger) checked by one sweep timer per
 * acceptor instead of a timer per connection. When the app holds
 * max_in_app requests of an acceptor, its connections stop reading and
 * queue up (paused list); each answer resumes the oldest paused one, so
 * a burst of connections waits in the kernel instead of being refused.
 * A closing connection sends
 * FIN and keeps reading (discarding) for a short linger so the client gets
 * the last answer instead of a reset.
 */
#include <errno.h>
#include <malloc.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "mx_err.h"
#include "mx_http_int.h"
#include "mx_list.h"
#include "mx_log.h"
#include "mx_metrics.h"

#define READ_BUF (64u << 10) /* shared read buffer per acceptor */
#define LINGER_MS 1000       /* read and discard after FIN */
#define LINGER_MAX_BYTES (4u << 20)
#define START_WAIT_MS 5000
#define MEM_PAUSE_MS 2000         /* held back by the memory budget this long: closed */
#define DRAIN_WINDOW_MS 10000     /* min_drain_bytes_per_s is judged over this window (or idle/2) */
#define TRIM_MIN_BYTES (16 << 20) /* freed since the peak before malloc_trim runs */
#define CLIENT_SLOTS 16384        /* per-client connection counters (hashed addresses) */

/* ---- the acceptors' counter blocks (MX_HTTP_METRICS) ---- */

#define MX_METRICS_TYPE struct mx__http_ctr
static const struct mx_metric_desc ctr_desc[] = {MX_HTTP_METRICS(MX_METRIC_DESC)};
#undef MX_METRICS_TYPE

struct slot {
    alignas(64) struct mx__http_ctr ctr; /* this acceptor's counters (own cache lines) */
    mx_http_t *h;
    int idx;
    int metrics_id;      /* mx_metrics_register's, 0 when refused */
    int fd;              /* socket bound by mx_http_start, taken by init; -1 */
    struct mx_addr addr; /* the acceptor actor */
};

struct mx_http {
    mx_system_t *sys;
    struct mx_http_opts o;
    char addr_text[128];
    struct sockaddr_storage bind_addr;
    uint16_t port;
    struct mx__http_router rt;
    struct mx_http_route *routes_copy;
    struct mx_http_app app;
    int n;
    struct slot *slots;
    alignas(64) _Atomic uint64_t open_conns; /* node-wide, relaxed: a bound, not a sync */
    _Atomic bool draining;                   /* relaxed: read by restarted inits */
    alignas(64) _Atomic int64_t mem;         /* bytes against max_buffered_bytes, relaxed */
    _Atomic int64_t mem_peak;                /* highest mem since the last trim, relaxed */
    _Atomic uint64_t mem_peak_ever;          /* statistics, relaxed */
    uint64_t client_seed;                    /* hashes client addresses; set before start */
    _Atomic uint32_t *client_conns;          /* CLIENT_SLOTS counters, relaxed: a bound */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int started, failed; /* under mu */
    int live;            /* acceptor states not yet freed, under mu */
};

struct acceptor;

struct hconn {
    uv_tcp_t tcp;
    struct mx__http_conn core;
    struct acceptor *a;
    struct mx_list link;  /* in a->conns */
    struct mx_list plink; /* in a->paused while paused */
    char *left;           /* input the core could not take yet */
    size_t left_off, left_len;
    int64_t deadline; /* mx_now_ms; 0 = none */
    int64_t last_io;
    unsigned writes;
    uint32_t client_slot; /* 1 + index in client_conns; 0 = not counted */
    int64_t mem_paused;   /* when the memory budget held it back; 0 = not */
    int64_t drain_since;  /* start of the drain-rate window; 0 = nothing unwritten */
    uint64_t drain_mark;  /* core.written at drain_since */
    bool reading, closing, lingering, eof;
    bool proxy_check; /* PROXY protocol on: the first bytes may be a header */
    uint8_t *pbuf;    /* a header's beginning, until the rest arrives (malloc'd) */
    size_t plen;
    size_t linger_bytes;
    uv_shutdown_t shut;
};

struct wreq {
    uv_write_t req;
    struct hconn *hc;
    struct mx__http_out *out;
};

struct acceptor {
    mx_http_t *h;
    struct slot *slot;
    mx_actor_t *self;
    struct mx__http_srv srv;
    uv_tcp_t listener;
    uv_timer_t sweep;
    bool listening, stopped, app_inited;
    bool listener_closing; /* uv_close of the listener not done yet */
    bool relisten;         /* undrained while the listener was closing: listen once closed */
    int handles;           /* open uv handles; the state is freed at 0 after stop */
    struct mx_list conns;  /* every connection (struct hconn.link) */
    struct mx_list paused; /* waiting for the app to answer, oldest first (hconn.plink) */
    bool resuming;
    char *rbuf;
};

static void update(struct hconn *hc);
static void conn_close(struct hconn *hc);
static bool client_admit(struct hconn *hc, const struct sockaddr_storage *ss, bool proxy_exempt);

/* ---- pausing while the app is full ---- */

static void unpause(struct hconn *hc)
{
    if (mx_list_linked(&hc->plink))
        mx_list_remove(&hc->plink);
}

static void pause_conn(struct hconn *hc)
{
    if (!mx_list_linked(&hc->plink))
        mx_list_push_back(&hc->a->paused, &hc->plink);
}

/* Resume paused connections, oldest first, while the app has room. Not
 * reentrant: a resumed connection's update may answer and call back here. */
static void resume_paused(struct acceptor *a)
{
    if (a->resuming)
        return;
    a->resuming = true;
    struct hconn *hc;
    while ((hc = mx_list_first(&a->paused, struct hconn, plink)) &&
           !mx__http_srv_app_full(&a->srv)) {
        unpause(hc);
        update(hc); /* may pause it again, at the tail */
    }
    a->resuming = false;
}

/* ---- lifetime ---- */

static void acceptor_maybe_free(struct acceptor *a)
{
    if (!a->stopped || a->handles > 0)
        return;
    mx_http_t *h = a->h;
    free(a->rbuf);
    free(a);
    pthread_mutex_lock(&h->mu);
    h->live--;
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
}

static void on_handle_closed(uv_handle_t *hd)
{
    struct acceptor *a = hd->data;
    a->handles--;
    acceptor_maybe_free(a);
}

static void on_conn_closed(uv_handle_t *hd)
{
    struct hconn *hc = hd->data;
    struct acceptor *a = hc->a;
    mx_list_remove(&hc->link);
    /* relaxed: a bound on connections, not a synchronisation */
    atomic_fetch_sub_explicit(&a->h->open_conns, 1, memory_order_relaxed);
    if (hc->client_slot) /* relaxed: a bound */
        atomic_fetch_sub_explicit(&a->h->client_conns[hc->client_slot - 1], 1,
                                  memory_order_relaxed);
    atomic_fetch_sub_explicit(&a->slot->ctr.conns_open, 1, memory_order_relaxed);
    if (hc->lingering) /* relaxed: statistics */
        atomic_fetch_sub_explicit(&a->slot->ctr.conns_lingering, 1, memory_order_relaxed);
    free(hc->left);
    free(hc->pbuf);
    free(hc);
    a->handles--;
    acceptor_maybe_free(a);
}

static void conn_close_how(struct hconn *hc, bool reset)
{
    if (hc->closing)
        return;
    hc->closing = true;
    unpause(hc);
    mx__http_conn_fini(&hc->core); /* requests the app holds are detached now */
    free(hc->left);
    hc->left = NULL;
    /* a reset also drops what the kernel still buffers for the client */
    if (!reset || hc->lingering || uv_tcp_close_reset(&hc->tcp, on_conn_closed) != 0)
        uv_close((uv_handle_t *)&hc->tcp, on_conn_closed);
}

static void conn_close(struct hconn *hc)
{
    conn_close_how(hc, false);
}

/* ---- writing ---- */

static void on_write(uv_write_t *req, int status)
{
    struct wreq *w = (struct wreq *)req;
    struct hconn *hc = w->hc;
    hc->writes--;
    if (status == 0)
        mx__http_count(&hc->a->slot->ctr.bytes_out, w->out->total);
    mx__http_conn_written(&hc->core, w->out->total);
    mx__http_out_free(w->out);
    free(w);
    if (hc->closing)
        return;
    if (status < 0) {
        mx__http_count(&hc->a->slot->ctr.conns_reset, 1);
        conn_close(hc);
        return;
    }
    hc->last_io = mx_now_ms();
    update(hc);
    resume_paused(hc->a);
}

/* Write o: first straight to the socket (uv_try_write, when nothing is
 * queued), and only what the kernel did not take goes through uv_write.
 * An answer written whole this way needs no write request, no callback
 * and no libuv POLLOUT stop afterwards (which costs an epoll_ctl per
 * answer); the caller's update() follows as for any answer. */
static void io_write(void *ctx, struct mx__http_out *o)
{
    struct hconn *hc = ctx;
    if (hc->closing) {
        mx__http_conn_written(&hc->core, o->total);
        mx__http_out_free(o); /* releases its budget */
        return;
    }
    uv_buf_t bufs[2];
    unsigned nb = 1;
    bufs[0] = uv_buf_init(o->head, (unsigned)o->head_len);
    if (o->blob && o->blob->len)
        bufs[nb++] = uv_buf_init((char *)o->blob->data, o->blob->len);
    int rc = hc->writes == 0 ? uv_try_write((uv_stream_t *)&hc->tcp, bufs, nb) : UV_EAGAIN;
    if (rc >= 0 && (size_t)rc == o->total) {
        mx__http_count(&hc->a->slot->ctr.bytes_out, o->total);
        mx__http_conn_written(&hc->core, o->total);
        mx__http_out_free(o);
        hc->last_io = mx_now_ms();
        return;
    }
    if (rc < 0 && rc != UV_EAGAIN) {
        mx__http_conn_written(&hc->core, o->total);
        mx__http_out_free(o);
        mx__http_count(&hc->a->slot->ctr.conns_reset, 1);
        conn_close(hc);
        return;
    }
    if (rc > 0) { /* skip what the kernel took */
        size_t done = (size_t)rc;
        unsigned i = 0;
        while (i < nb && done >= bufs[i].len)
            done -= bufs[i++].len;
        memmove(bufs, bufs + i, sizeof(bufs[0]) * (nb - i));
        nb -= i;
        bufs[0].base += done;
        bufs[0].len -= done;
    }
    struct wreq *w = malloc(sizeof(*w));
    if (!w)
        abort();
    w->hc = hc;
    w->out = o;
    rc = uv_write(&w->req, (uv_stream_t *)&hc->tcp, bufs, nb, on_write);
    if (rc != 0) {
        mx__http_conn_written(&hc->core, o->total);
        mx__http_out_free(o);
        free(w);
        mx__http_count(&hc->a->slot->ctr.conns_reset, 1);
        conn_close(hc);
        return;
    }
    hc->writes++;
}

static void io_wake(void *ctx)
{
    struct hconn *hc = ctx;
    struct acceptor *a = hc->a;
    update(hc); /* may close and free hc's state later, not a */
    resume_paused(a);
}

static const struct mx__http_io uv_io = {.write = io_write, .wake = io_wake};

/* ---- reading ---- */

static void on_alloc(uv_handle_t *hd, size_t suggested, uv_buf_t *buf)
{
    struct hconn *hc = hd->data;
    /* libuv calls read right after alloc on the same thread: one buffer per
     * acceptor serves every connection */
    *buf = uv_buf_init(hc->a->rbuf, READ_BUF);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void set_reading(struct hconn *hc, bool on)
{
    if (on == hc->reading || hc->closing)
        return;
    if (on)
        hc->reading = uv_read_start((uv_stream_t *)&hc->tcp, on_alloc, on_read) == 0;
    else {
        uv_read_stop((uv_stream_t *)&hc->tcp);
        hc->reading = false;
    }
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    struct hconn *hc = req->data;
    if (status < 0 && status != UV_ECANCELED && !hc->closing)
        conn_close(hc);
}

/* Everything is answered and written: FIN, then read and discard a while. */
static void finish(struct hconn *hc)
{
    if (hc->eof) {
        conn_close(hc);
        return;
    }
    hc->lingering = true;
    mx__http_count(&hc->a->slot->ctr.conns_lingering, 1);
    hc->shut.data = hc;
    if (uv_shutdown(&hc->shut, (uv_stream_t *)&hc->tcp, on_shutdown) != 0) {
        conn_close(hc);
        return;
    }
    hc->deadline = mx_now_ms() + LINGER_MS;
    set_reading(hc, true);
}

/* Re-evaluate a connection: buffered input, reading, closing, deadline. */
static void update(struct hconn *hc)
{
    if (hc->closing || hc->lingering)
        return;
    struct mx__http_conn *c = &hc->core;
    const struct mx_http_opts *o = &hc->a->srv.o;
    mx__http_conn_resume(c); /* a request held while the app was full */
    if (hc->left && mx__http_conn_can_parse(c)) {
        size_t n = mx__http_conn_feed(c, hc->left + hc->left_off, hc->left_len - hc->left_off);
        hc->left_off += n;
        if (hc->left_off >= hc->left_len) {
            free(hc->left);
            hc->left = NULL;
        }
    }
    if (mx__http_conn_done(c)) {
        set_reading(hc, false);
        if (hc->writes == 0)
            finish(hc);
        return;
    }
    bool can = mx__http_conn_can_parse(c);
    set_reading(hc, !hc->eof && !hc->left && can);
    if (c->deferred)
        pause_conn(hc);
    if (!can && !c->deferred && mx__http_srv_mem_full(&hc->a->srv)) {
        if (!hc->mem_paused)
            hc->mem_paused = mx_now_ms();
    } else {
        hc->mem_paused = 0;
    }
    if (c->in_head)
        hc->deadline = c->head_start_ms + o->header_timeout_ms;
    else if (c->in_body)
        hc->deadline = c->body_start_ms + o->body_timeout_ms;
    else if (mx__http_conn_waiting_app(c) && hc->writes == 0)
        hc->deadline = 0; /* the app answers (its own deadlines) */
    else
        hc->deadline = hc->last_io + o->idle_timeout_ms;
}

/* Hand n bytes to the connection core; keep what it cannot take yet. */
static void feed(struct hconn *hc, const char *p, size_t n)
{
    size_t used = mx__http_conn_feed(&hc->core, p, n);
    if (used < n) {
        /* reading was on, so nothing was left before */
        hc->left_len = n - used;
        hc->left_off = 0;
        hc->left = malloc(hc->left_len);
        if (!hc->left)
            abort();
        memcpy(hc->left, p + used, hc->left_len);
    }
}

/* The PROXY protocol: is the start of the connection a header? Returns
 * true when the bytes (or what follows the header) went to the core, false
 * when they were kept for later or the connection was closed. */
static bool proxy_in(struct hconn *hc, const char *p, size_t n)
{
    struct mx__http_ctr *ctr = &hc->a->slot->ctr;
    const uint8_t *data = (const uint8_t *)p;
    size_t len = n;
    if (hc->pbuf) {
        size_t take = n < MX_PROXY_MAX_HEADER - hc->plen ? n : MX_PROXY_MAX_HEADER - hc->plen;
        memcpy(hc->pbuf + hc->plen, p, take);
        hc->plen += take;
        data = hc->pbuf;
        len = hc->plen;
        if (take < n) { /* a header never is this long */
            mx__http_count(&ctr->proxy_malformed, 1);
            conn_close(hc);
            return false;
        }
    }
    struct mx_proxy_hdr h;
    size_t used = 0;
    int rc = mx_proxy_parse(data, len, &h, &used);
    if (rc == 0 && used == 0) { /* a header's beginning: wait for the rest */
        if (!hc->pbuf) {
            hc->pbuf = malloc(MX_PROXY_MAX_HEADER);
            if (!hc->pbuf)
                abort();
            memcpy(hc->pbuf, p, n);
            hc->plen = n;
        }
        return false;
    }
    hc->proxy_check = false;
    if (rc == MX_EDECODE) {
        mx__http_count(&ctr->proxy_malformed, 1);
        conn_close(hc);
        return false;
    }
    if (rc == 0) {
        const struct mx_http_opts *o = &hc->a->h->o;
        if (!o->proxy_trusted(&hc->core.peer, o->proxy_ctx)) {
            mx__http_count(&ctr->proxy_refused, 1);
            conn_close(hc);
            return false;
        }
        mx__http_count(&ctr->proxy_ok, 1);
        if (!h.local && !client_admit(hc, &h.src, false)) {
            mx__http_count(&ctr->conns_refused, 1);
            conn_close(hc);
            return false;
        }
        if (!h.local) {
            hc->core.peer = h.src;
            if (h.src.ss_family == AF_INET)
                uv_ip4_name((struct sockaddr_in *)&h.src, hc->core.peer_ip,
                            sizeof(hc->core.peer_ip));
            else
                uv_ip6_name((struct sockaddr_in6 *)&h.src, hc->core.peer_ip,
                            sizeof(hc->core.peer_ip));
        }
    }
    /* MX_ENOTFOUND: plain HTTP; else what follows the header */
    if (len > used)
        feed(hc, (const char *)data + used, len - used);
    free(hc->pbuf);
    hc->pbuf = NULL;
    hc->plen = 0;
    return true;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct hconn *hc = s->data;
    if (hc->closing)
        return;
    if (nread > 0) {
        mx__http_count(&hc->a->slot->ctr.bytes_in, (uint64_t)nread);
        hc->last_io = mx_now_ms();
        if (hc->lingering) {
            hc->linger_bytes += (size_t)nread;
            if (hc->linger_bytes > LINGER_MAX_BYTES)
                conn_close(hc);
            return;
        }
        if (hc->proxy_check) {
            if (!proxy_in(hc, buf->base, (size_t)nread))
                return;
        } else {
            feed(hc, buf->base, (size_t)nread);
        }
        update(hc);
        resume_paused(hc->a);
        return;
    }
    if (nread == 0)
        return;
    if (nread == UV_EOF) {
        hc->eof = true;
        if (hc->lingering || hc->pbuf) {
            if (hc->pbuf) /* the connection ended inside a PROXY header */
                mx__http_count(&hc->a->slot->ctr.proxy_malformed, 1);
            conn_close(hc);
            return;
        }
        set_reading(hc, false);
        mx__http_conn_eof(&hc->core);
        update(hc);
        return;
    }
    if (!hc->lingering)
        mx__http_count(&hc->a->slot->ctr.conns_reset, 1);
    conn_close(hc);
}

/* ---- per-client connection counts ---- */

/* The counter slot of a client address (IPv4, or the /64 of an IPv6
 * address; IPv4-mapped IPv6 counts as IPv4), or -1 when the address is not
 * counted: loopback 127.0.0.1 / ::1 (the host itself: local proxies,
 * probes, benchmarks) and, when the PROXY protocol is on, trusted proxies
 * (their clients are counted once the header names them). */
static int client_slot_of(mx_http_t *h, const struct sockaddr_storage *ss, bool proxy_exempt)
{
    uint64_t key;
    if (ss->ss_family == AF_INET) {
        uint32_t v4 = ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr);
        if (v4 == 0x7f000001u)
            return -1;
        key = v4;
    } else if (ss->ss_family == AF_INET6) {
        const uint8_t *b = ((const struct sockaddr_in6 *)ss)->sin6_addr.s6_addr;
        static const uint8_t loop[16] = {[15] = 1}, v4map[12] = {[10] = 0xff, [11] = 0xff};
        if (memcmp(b, loop, 16) == 0)
            return -1;
        if (memcmp(b, v4map, 12) == 0) {
            key = (uint64_t)b[12] << 24 | (uint64_t)b[13] << 16 | (uint64_t)b[14] << 8 | b[15];
            if (key == 0x7f000001u)
                return -1;
        } else {
            key = 0;
            for (int i = 0; i < 8; i++)
                key = key << 8 | b[i];
            key ^= 1ull << 63; /* apart from IPv4 keys */
        }
    } else {
        return -1;
    }
    if (proxy_exempt && h->o.proxy_trusted && h->o.proxy_trusted(ss, h->o.proxy_ctx))
        return -1;
    /* splitmix64 of the seeded key: an attacker cannot aim at a victim's slot */
    uint64_t z = key + h->client_seed + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return (int)((z ^ (z >> 31)) % CLIENT_SLOTS);
}

/* Count hc under its client's address; false (nothing counted) when the
 * client already has max_conns_per_client connections. */
static bool client_admit(struct hconn *hc, const struct sockaddr_storage *ss, bool proxy_exempt)
{
    mx_http_t *h = hc->a->h;
    int slot = client_slot_of(h, ss, proxy_exempt);
    if (slot < 0)
        return true;
    /* relaxed: a bound (acceptors may overshoot it by one each) */
    uint32_t n = atomic_fetch_add_explicit(&h->client_conns[slot], 1, memory_order_relaxed) + 1;
    if (n > h->o.max_conns_per_client) {
        atomic_fetch_sub_explicit(&h->client_conns[slot], 1, memory_order_relaxed);
        mx__http_count(mx__http_ctr_limit(&hc->a->slot->ctr, MX_HTTP_LIM_CLIENT_CONNS), 1);
        return false;
    }
    hc->client_slot = (uint32_t)slot + 1;
    return true;
}

/* ---- accepting ---- */

static void on_bare_closed(uv_handle_t *hd)
{
    struct hconn *hc = hd->data;
    struct acceptor *a = hc->a;
    free(hc);
    a->handles--;
    acceptor_maybe_free(a);
}

/* Over max_conns (or the client's share): a 503 written best effort (the
 * socket is fresh, so its buffer has room), then close. */
static void refuse(struct acceptor *a, struct hconn *hc)
{
    char head[512];
    char tp[56];
    uint8_t tid[16], sid[8];
    mx_http_traceparent_new(tid, sid);
    mx_http_traceparent_format(tid, sid, 1, tp);
    struct mx_blob *b = mx__http_error_body(503, "S_BUSY", "too many connections");
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 503 Service Unavailable\r\nDate: %s\r\n"
                     "Content-Type: application/json\r\nContent-Length: %u\r\n"
                     "traceparent: %s\r\nRetry-After: 1\r\nConnection: close\r\n\r\n",
                     mx__http_srv_date(&a->srv), b->len, tp);
    uv_buf_t bufs[2] = {uv_buf_init(head, (unsigned)n), uv_buf_init((char *)b->data, b->len)};
    (void)uv_try_write((uv_stream_t *)&hc->tcp, bufs, 2);
    mx_blob_unref(b);
    uv_close((uv_handle_t *)&hc->tcp, on_bare_closed);
}

static void on_connection(uv_stream_t *listener, int status)
{
    struct acceptor *a = listener->data;
    struct slot *sl = a->slot;
    if (status < 0) {
        MX_WARN("http accept failed: %s", uv_strerror(status));
        return;
    }
    struct hconn *hc = calloc(1, sizeof(*hc));
    if (!hc)
        abort();
    uv_tcp_init(mx_actor_loop(a->self), &hc->tcp);
    hc->tcp.data = hc;
    hc->a = a;
    a->handles++;
    if (uv_accept(listener, (uv_stream_t *)&hc->tcp) != 0) {
        uv_close((uv_handle_t *)&hc->tcp, on_bare_closed);
        return;
    }
    /* relaxed: the bound may be overshot by the number of acceptors at most */
    uint64_t open = atomic_fetch_add_explicit(&a->h->open_conns, 1, memory_order_relaxed) + 1;
    if (open > a->h->o.max_conns) {
        atomic_fetch_sub_explicit(&a->h->open_conns, 1, memory_order_relaxed);
        mx__http_count(&sl->ctr.conns_refused, 1);
        mx__http_count(mx__http_ctr_limit(&sl->ctr, MX_HTTP_LIM_CONNS), 1);
        refuse(a, hc);
        return;
    }
    struct sockaddr_storage peer;
    int plen = sizeof(peer);
    memset(&peer, 0, sizeof(peer));
    uv_tcp_getpeername(&hc->tcp, (struct sockaddr *)&peer, &plen);
    if (!client_admit(hc, &peer, true)) {
        atomic_fetch_sub_explicit(&a->h->open_conns, 1, memory_order_relaxed); /* relaxed: bound */
        mx__http_count(&sl->ctr.conns_refused, 1);
        refuse(a, hc);
        return;
    }
    mx__http_count(&sl->ctr.conns_accepted, 1);
    mx__http_count(&sl->ctr.conns_open, 1);
    mx__http_conn_init(&hc->core, &a->srv, &uv_io, hc, &peer);
    if (peer.ss_family == AF_INET)
        uv_ip4_name((struct sockaddr_in *)&peer, hc->core.peer_ip, sizeof(hc->core.peer_ip));
    else if (peer.ss_family == AF_INET6)
        uv_ip6_name((struct sockaddr_in6 *)&peer, hc->core.peer_ip, sizeof(hc->core.peer_ip));
    uv_tcp_nodelay(&hc->tcp, 1);
    hc->proxy_check = a->h->o.proxy_trusted != NULL;
    mx_list_push_front(&a->conns, &hc->link);
    hc->last_io = mx_now_ms();
    update(hc);
}

/* ---- deadlines ---- */

/* A client that leaves answers unread (or reads them slower than
 * min_drain_bytes_per_s over a window) is closed: its answers must not
 * pin memory. Returns true when hc was closed. */
static bool drain_check(struct hconn *hc, int64_t now)
{
    struct mx__http_conn *c = &hc->core;
    if (c->out_bytes == 0 || hc->lingering) {
        hc->drain_since = 0;
        return false;
    }
    if (!hc->drain_since) {
        hc->drain_since = now;
        hc->drain_mark = c->written;
        return false;
    }
    const struct mx_http_opts *o = &hc->a->srv.o;
    int64_t window =
        o->idle_timeout_ms / 2 < DRAIN_WINDOW_MS ? o->idle_timeout_ms / 2 : DRAIN_WINDOW_MS;
    if (now - hc->drain_since < window)
        return false;
    uint64_t want = (uint64_t)o->min_drain_bytes_per_s * (uint64_t)window / 1000;
    if (c->written - hc->drain_mark < want) {
        mx__http_count(mx__http_ctr_limit(&hc->a->slot->ctr, MX_HTTP_LIM_DRAIN), 1);
        conn_close_how(hc, true);
        return true;
    }
    hc->drain_since = now;
    hc->drain_mark = c->written;
    return false;
}

/* The memory budget: a connection it held back for MEM_PAUSE_MS while
 * holding unwritten answers or queued request bodies is closed (that frees
 * them: requests the app holds are detached); the others resume once there
 * is room. Returns true when hc was closed. */
static bool mem_check(struct hconn *hc, int64_t now)
{
    if (!mx__http_srv_mem_full(&hc->a->srv)) {
        if (!hc->mem_paused)
            return false;
        hc->mem_paused = 0;
        update(hc);
        return hc->closing;
    }
    if (hc->reading || hc->lingering)
        return false;
    if (!hc->mem_paused) /* stopped for another reason first (pipeline full, 503) */
        hc->mem_paused = now;
    if (now - hc->mem_paused < MEM_PAUSE_MS ||
        (hc->core.out_bytes == 0 && mx__http_conn_held(&hc->core) < (64 << 10)))
        return false;
    mx__http_count(&hc->a->slot->ctr.mem_closed, 1);
    conn_close_how(hc, true);
    return true;
}

/* Hand freed memory back to the system after a burst: glibc keeps the
 * heap top and arenas otherwise (RSS stayed at the peak after every
 * connection closed). One acceptor does it per drop, by a CAS on the peak. */
static void maybe_trim(struct acceptor *a)
{
    mx_http_t *h = a->h;
    /* relaxed: statistics and a heuristic, not a synchronisation */
    int64_t used = atomic_load_explicit(&h->mem, memory_order_relaxed);
    int64_t peak = atomic_load_explicit(&h->mem_peak, memory_order_relaxed);
    if (used > peak) {
        atomic_compare_exchange_strong_explicit(&h->mem_peak, &peak, used, memory_order_relaxed,
                                                memory_order_relaxed);
        if ((uint64_t)used > atomic_load_explicit(&h->mem_peak_ever, memory_order_relaxed))
            atomic_store_explicit(&h->mem_peak_ever, (uint64_t)used, memory_order_relaxed);
        return;
    }
    if (peak - used < TRIM_MIN_BYTES || used > peak / 2)
        return;
    if (atomic_compare_exchange_strong_explicit(&h->mem_peak, &peak, used, memory_order_relaxed,
                                                memory_order_relaxed)) {
        malloc_trim(0);
        mx__http_count(&a->slot->ctr.mem_trims, 1);
    }
}

static void on_sweep(uv_timer_t *t)
{
    struct acceptor *a = t->data;
    int64_t now = mx_now_ms();
    struct hconn *hc, *next;
    maybe_trim(a);
    mx_list_each_safe (hc, next, &a->conns, link) {
        if (hc->closing || drain_check(hc, now) || mem_check(hc, now))
            continue;
        if (!hc->deadline || now < hc->deadline)
            continue;
        if (hc->lingering) {
            conn_close(hc);
        } else if (hc->core.in_head || hc->core.in_body) {
            mx__http_conn_head_timeout(&hc->core);
            update(hc);
        } else {
            /* idle keep-alive, or a client that stopped sending or reading
             * (then a reset drops the answers the kernel still holds) */
            mx__http_count(mx__http_ctr_limit(&a->slot->ctr, MX_HTTP_LIM_IDLE), 1);
            conn_close_how(hc, hc->core.out_bytes > 0);
        }
    }
    resume_paused(a); /* answers to connections that left resume nobody */
}

/* ---- the actor ---- */

static int open_socket(const struct sockaddr_storage *sa, int backlog, uint16_t *port_out)
{
    int one = 1;
    int fd = socket(sa->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    socklen_t len =
        sa->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0 ||
        bind(fd, (const struct sockaddr *)sa, len) != 0 || listen(fd, backlog) != 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    if (port_out) {
        struct sockaddr_storage got;
        socklen_t gl = sizeof(got);
        getsockname(fd, (struct sockaddr *)&got, &gl);
        *port_out = ntohs(got.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&got)->sin6_port
                                                    : ((struct sockaddr_in *)&got)->sin_port);
    }
    return fd;
}

static void start_report(mx_http_t *h, bool ok)
{
    pthread_mutex_lock(&h->mu);
    if (ok)
        h->started++;
    else
        h->failed++;
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
}

/* Bind the server's port again beside the other acceptors (a restart, or
 * an undrain). Returns the socket or -1 (logged). */
static int bind_again(struct acceptor *a)
{
    mx_http_t *h = a->h;
    struct sockaddr_storage sa = h->bind_addr;
    if (sa.ss_family == AF_INET6)
        ((struct sockaddr_in6 *)&sa)->sin6_port = htons(h->port);
    else
        ((struct sockaddr_in *)&sa)->sin_port = htons(h->port);
    int fd = open_socket(&sa, (int)h->o.backlog, NULL);
    if (fd < 0) {
        MX_ERROR("MX_HTTP_ADDR %s: bind failed on restart: %s", h->addr_text, strerror(-fd));
        return -1;
    }
    return fd;
}

/* Accept on fd (taken: closed with the listener). Returns 0 or -1 (logged). */
static int listen_fd(struct acceptor *a, int fd)
{
    uv_tcp_init(mx_actor_loop(a->self), &a->listener);
    a->listener.data = a;
    a->handles++;
    a->listening = true;
    int rc = uv_tcp_open(&a->listener, fd);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&a->listener, (int)a->h->o.backlog, on_connection);
    if (rc != 0) {
        MX_ERROR("MX_HTTP_ADDR %s: listen failed: %s", a->h->addr_text, uv_strerror(rc));
        return -1;
    }
    return 0;
}

static int acc_init(mx_actor_t *self, void *arg, void **state)
{
    struct slot *sl = arg;
    mx_http_t *h = sl->h;
    struct acceptor *a = calloc(1, sizeof(*a));
    if (!a || !(a->rbuf = malloc(READ_BUF)))
        abort();
    a->h = h;
    a->slot = sl;
    a->self = self;
    mx_list_init(&a->conns);
    mx_list_init(&a->paused);
    a->srv.o = h->o;
    a->srv.rt = &h->rt;
    a->srv.app = &h->app;
    a->srv.actor = self;
    a->srv.sched = mx_actor_sched(self);
    a->srv.ctr = &sl->ctr;
    a->srv.mem = &h->mem;
    pthread_mutex_lock(&h->mu);
    h->live++;
    pthread_mutex_unlock(&h->mu);
    uv_loop_t *loop = mx_actor_loop(self);
    uv_timer_init(loop, &a->sweep);
    a->sweep.data = a;
    a->handles++;
    uint32_t period = h->o.header_timeout_ms < h->o.idle_timeout_ms ? h->o.header_timeout_ms
                                                                    : h->o.idle_timeout_ms;
    period /= 4;
    period = period < 10 ? 10 : period > 1000 ? 1000 : period;
    uv_timer_start(&a->sweep, on_sweep, period, period);
    *state = a;

    if (h->app.init && h->app.init(self, h->app.ctx, &a->srv.app_state) != 0) {
        MX_ERROR("http acceptor %d: app init failed", sl->idx);
        goto out_fail;
    }
    a->app_inited = true;
    /* relaxed: a drained server does not listen again after a restart */
    if (atomic_load_explicit(&h->draining, memory_order_relaxed)) {
        start_report(h, true);
        return 0;
    }
    int fd = sl->fd;
    sl->fd = -1;
    if (fd < 0 && (fd = bind_again(a)) < 0)
        goto out_fail;
    if (listen_fd(a, fd) != 0)
        goto out_fail;
    start_report(h, true);
    return 0;

out_fail:
    start_report(h, false);
    /* the runtime calls stop only for a state it got: clean up here */
    *state = NULL;
    if (a->app_inited && h->app.fini)
        h->app.fini(self, h->app.ctx, a->srv.app_state);
    a->stopped = true;
    if (a->listening)
        uv_close((uv_handle_t *)&a->listener, on_handle_closed);
    uv_close((uv_handle_t *)&a->sweep, on_handle_closed);
    return MX_EIO;
}

static void relisten(struct acceptor *a);

static void on_listener_closed(uv_handle_t *hd)
{
    struct acceptor *a = hd->data;
    a->listener_closing = false;
    if (a->relisten && !a->stopped) {
        a->relisten = false;
        relisten(a);
    }
    on_handle_closed(hd);
}

static void stop_listening(struct acceptor *a)
{
    a->relisten = false;
    if (a->listening) {
        a->listening = false;
        a->listener_closing = true;
        uv_close((uv_handle_t *)&a->listener, on_listener_closed);
    }
}

/* Undrain: take new connections again (keep-alive answers too). */
static void relisten(struct acceptor *a)
{
    a->srv.draining = false;
    if (a->listening || a->stopped)
        return;
    if (a->listener_closing) {
        a->relisten = true; /* on_listener_closed listens again */
        return;
    }
    int fd = bind_again(a);
    if (fd >= 0 && listen_fd(a, fd) != 0)
        stop_listening(a);
}

static void acc_drain(struct acceptor *a)
{
    a->srv.draining = true;
    stop_listening(a);
    struct hconn *hc, *next;
    mx_list_each_safe (hc, next, &a->conns, link) {
        if (hc->closing || hc->lingering)
            continue;
        if (mx__http_conn_idle(&hc->core)) {
            conn_close(hc);
        } else {
            mx__http_conn_drain(&hc->core);
            update(hc);
        }
    }
}

static int acc_receive(mx_actor_t *self, void *state, struct mx_msg *m)
{
    struct acceptor *a = state;
    if (m->env.type == MX_T_http_drain) {
        struct mx_m_http_drain d = {.reason = 0};
        mx_msg_decode(m, &d);
        if (d.reason == MX_HTTP_UNDRAIN)
            relisten(a);
        else if (d.reason == MX_HTTP_CLOSE_KEEPALIVE)
            a->srv.draining = true; /* answers say Connection: close; still listening */
        else
            acc_drain(a);
        return 0;
    }
    int rc = 0;
    if (a->h->app.on_message)
        rc = a->h->app.on_message(self, a->srv.app_state, m);
    resume_paused(a);
    return rc;
}

static void acc_stop(mx_actor_t *self, void *state)
{
    struct acceptor *a = state;
    if (!a)
        return;
    stop_listening(a);
    struct hconn *hc;
    mx_list_each (hc, &a->conns, link)
        conn_close(hc);
    if (a->app_inited && a->h->app.fini)
        a->h->app.fini(self, a->h->app.ctx, a->srv.app_state);
    mx__http_srv_free_live(&a->srv);
    a->stopped = true;
    uv_close((uv_handle_t *)&a->sweep, on_handle_closed);
}

static const struct mx_behaviour acceptor_behaviour = {
    .name = "http-acceptor",
    .init = acc_init,
    .receive = acc_receive,
    .stop = acc_stop,
};

/* ---- public ---- */

static int parse_addr(const char *addr, struct sockaddr_storage *out, uint16_t *port)
{
    char host[100];
    const char *colon;
    memset(out, 0, sizeof(*out));
    if (!addr)
        return MX_EINVAL;
    if (addr[0] == '[') {
        const char *rb = strchr(addr, ']');
        if (!rb || rb[1] != ':' || (size_t)(rb - addr - 1) >= sizeof(host))
            return MX_EINVAL;
        memcpy(host, addr + 1, (size_t)(rb - addr - 1));
        host[rb - addr - 1] = '\0';
        colon = rb + 1;
    } else {
        colon = strrchr(addr, ':');
        if (!colon || (size_t)(colon - addr) >= sizeof(host) || colon == addr)
            return MX_EINVAL;
        memcpy(host, addr, (size_t)(colon - addr));
        host[colon - addr] = '\0';
    }
    char *end;
    errno = 0;
    long p = strtol(colon + 1, &end, 10);
    if (errno || *end || end == colon + 1 || p < 0 || p > 65535)
        return MX_EINVAL;
    if (strcmp(host, "localhost") == 0)
        snprintf(host, sizeof(host), "127.0.0.1");
    if (uv_ip4_addr(host, (int)p, (struct sockaddr_in *)out) != 0 &&
        uv_ip6_addr(host, (int)p, (struct sockaddr_in6 *)out) != 0)
        return MX_EINVAL;
    *port = (uint16_t)p;
    return 0;
}

static int wait_live_zero(mx_http_t *h, uint32_t timeout_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    int rc = 0;
    pthread_mutex_lock(&h->mu);
    while (h->live > 0 && rc == 0)
        rc = pthread_cond_timedwait(&h->cv, &h->mu, &ts);
    int live = h->live;
    pthread_mutex_unlock(&h->mu);
    return live > 0 ? MX_ETIMEDOUT : 0;
}

int mx_http_start(mx_system_t *sys, const struct mx_http_opts *o, const struct mx_http_app *app,
                  mx_http_t **out, uint16_t *bound_port)
{
    int rc;
    if (!sys || !o || !app || !out || (app->nroutes && !app->routes))
        return MX_EINVAL;
    mx_http_t *h = calloc(1, sizeof(*h));
    if (!h)
        abort();
    h->sys = sys;
    h->o = *o;
    h->o.addr = h->addr_text;
    snprintf(h->addr_text, sizeof(h->addr_text), "%s", o->addr ? o->addr : "");
    if (!h->o.max_conns)
        h->o.max_conns = MX_HTTP_MAX_CONNS;
    if (!h->o.max_header_bytes)
        h->o.max_header_bytes = MX_HTTP_MAX_HEADER_BYTES;
    if (!h->o.max_body_bytes)
        h->o.max_body_bytes = MX_HTTP_MAX_BODY_BYTES;
    if (!h->o.header_timeout_ms)
        h->o.header_timeout_ms = MX_HTTP_HEADER_TIMEOUT_MS;
    if (!h->o.idle_timeout_ms)
        h->o.idle_timeout_ms = MX_HTTP_IDLE_TIMEOUT_MS;
    if (!h->o.max_pipeline)
        h->o.max_pipeline = MX_HTTP_MAX_PIPELINE;
    if (!h->o.max_output_bytes)
        h->o.max_output_bytes = MX_HTTP_MAX_OUTPUT_BYTES;
    if (!h->o.backlog)
        h->o.backlog = 511;
    if (!h->o.body_timeout_ms)
        h->o.body_timeout_ms = MX_HTTP_BODY_TIMEOUT_MS;
    if (!h->o.max_chunk_ext_bytes)
        h->o.max_chunk_ext_bytes = MX_HTTP_MAX_CHUNK_EXT_BYTES;
    if (!h->o.max_conns_per_client)
        h->o.max_conns_per_client = h->o.max_conns / 4 ? h->o.max_conns / 4 : 1;
    if (!h->o.max_buffered_bytes)
        h->o.max_buffered_bytes = MX_HTTP_MAX_BUFFERED_BYTES;
    if (!h->o.min_drain_bytes_per_s)
        h->o.min_drain_bytes_per_s = MX_HTTP_MIN_DRAIN_BYTES_PER_S;
    h->client_conns = calloc(CLIENT_SLOTS, sizeof(*h->client_conns));
    if (!h->client_conns)
        abort();
    if (getrandom(&h->client_seed, sizeof(h->client_seed), 0) != (ssize_t)sizeof(h->client_seed))
        h->client_seed =
            (uint64_t)mx_now_ms() * 0x9E3779B97F4A7C15ull; /* still unknown to clients */
    h->app = *app;
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->cv, NULL);
    h->n = mx_system_schedulers(sys);
    h->slots = aligned_alloc(64, sizeof(struct slot) * (size_t)h->n);
    if (!h->slots)
        abort();
    memset(h->slots, 0, sizeof(struct slot) * (size_t)h->n);
    for (int i = 0; i < h->n; i++) {
        h->slots[i].h = h;
        h->slots[i].idx = i;
        h->slots[i].fd = -1;
    }
    if (h->o.max_header_bytes > (64u << 20) || h->o.max_body_bytes > (1u << 30)) {
        rc = MX_EINVAL;
        goto out_free;
    }
    rc = parse_addr(o->addr, &h->bind_addr, &h->port);
    if (rc != 0) {
        MX_ERROR("MX_HTTP_ADDR %s: not host:port", h->addr_text);
        goto out_free;
    }
    rc = mx__http_router_init(&h->rt, app->routes, app->nroutes);
    if (rc != 0)
        goto out_free;
    h->app.routes = NULL; /* the compiled copy is used */
    for (int i = 0; i < h->n; i++) {
        struct sockaddr_storage sa = h->bind_addr;
        if (sa.ss_family == AF_INET6)
            ((struct sockaddr_in6 *)&sa)->sin6_port = htons(h->port);
        else
            ((struct sockaddr_in *)&sa)->sin_port = htons(h->port);
        int fd = open_socket(&sa, (int)h->o.backlog, i == 0 ? &h->port : NULL);
        if (fd < 0) {
            MX_ERROR("MX_HTTP_ADDR %s: cannot listen: %s", h->addr_text, strerror(-fd));
            rc = MX_EIO;
            goto out_close;
        }
        h->slots[i].fd = fd;
    }
    int spawned = 0;
    for (int i = 0; i < h->n; i++) {
        struct mx_spawn_opts so = MX_SPAWN_OPTS_DEFAULT;
        so.sched = i;
        so.cap_msgs = 4096; /* replies to the app's requests */
        rc = mx_spawn(sys, &acceptor_behaviour, &h->slots[i], &so, &h->slots[i].addr);
        if (rc != 0)
            break;
        spawned++;
    }
    /* wait for every spawned acceptor to report */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += START_WAIT_MS / 1000;
    int wrc = 0;
    pthread_mutex_lock(&h->mu);
    while (h->started + h->failed < spawned && wrc == 0)
        wrc = pthread_cond_timedwait(&h->cv, &h->mu, &ts);
    bool ok = h->started == h->n && h->failed == 0;
    pthread_mutex_unlock(&h->mu);
    if (!ok) {
        if (rc == 0)
            rc = wrc ? MX_ETIMEDOUT : MX_EIO;
        for (int i = 0; i < spawned; i++)
            mx_actor_stop(sys, h->slots[i].addr);
        wait_live_zero(h, START_WAIT_MS);
        goto out_close;
    }
    for (int i = 0; i < h->n; i++) {
        char inst[32];
        snprintf(inst, sizeof inst, "acceptor-%d", i);
        h->slots[i].metrics_id = mx_metrics_register(
            "http", inst, ctr_desc, sizeof ctr_desc / sizeof *ctr_desc, &h->slots[i].ctr);
    }
    *out = h;
    if (bound_port)
        *bound_port = h->port;
    MX_INFO("http listening on %s (port %u, %d acceptors)", h->addr_text, h->port, h->n);
    return 0;

out_close:
    for (int i = 0; i < h->n; i++)
        if (h->slots[i].fd >= 0)
            close(h->slots[i].fd);
    mx__http_router_fini(&h->rt);
out_free:
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->cv);
    free(h->slots);
    free(h->client_conns);
    free(h);
    return rc;
}

static int send_drain(mx_http_t *h, uint64_t reason)
{
    int first = 0;
    for (int i = 0; i < h->n; i++) {
        struct mx_m_http_drain d = {.reason = reason};
        struct mx_msg *m;
        int rc = mx_msg_encode(MX_T_http_drain, &d, &m);
        if (rc == 0) {
            rc = mx_sys_send(h->sys, h->slots[i].addr, m);
            if (rc != 0)
                mx_msg_free(m);
        }
        if (rc != 0 && first == 0)
            first = rc;
    }
    return first;
}

int mx_http_drain(mx_http_t *h)
{
    /* relaxed: acceptors also learn it from the message */
    atomic_store_explicit(&h->draining, true, memory_order_relaxed);
    return send_drain(h, 0);
}

int mx_http_close_keepalive(mx_http_t *h)
{
    return send_drain(h, MX_HTTP_CLOSE_KEEPALIVE);
}

int mx_http_undrain(mx_http_t *h)
{
    /* relaxed: acceptors also learn it from the message */
    atomic_store_explicit(&h->draining, false, memory_order_relaxed);
    return send_drain(h, MX_HTTP_UNDRAIN);
}

void mx_http_stats(mx_http_t *h, struct mx_http_stats *out)
{
    memset(out, 0, sizeof(*out));
#define LD(x) atomic_load_explicit(&(x), memory_order_relaxed) /* statistics */
    for (int i = 0; i < h->n; i++) {
        struct mx__http_ctr *c = &h->slots[i].ctr;
        out->conns_open += LD(c->conns_open);
        out->conns_lingering += LD(c->conns_lingering);
        out->conns_accepted += LD(c->conns_accepted);
        out->conns_refused += LD(c->conns_refused);
        out->conns_reset += LD(c->conns_reset);
        out->requests += LD(c->requests);
        for (int k = 1; k <= 5; k++)
            out->responses[k] += LD(*mx__http_ctr_class(c, k));
        out->dropped_responses += LD(c->dropped_responses);
        for (int k = 0; k < MX_HTTP_LIM__COUNT; k++)
            out->limits[k] += LD(*mx__http_ctr_limit(c, (enum mx_http_limit)k));
        out->bytes_in += LD(c->bytes_in);
        out->bytes_out += LD(c->bytes_out);
        out->proxy_ok += LD(c->proxy_ok);
        out->proxy_refused += LD(c->proxy_refused);
        out->proxy_malformed += LD(c->proxy_malformed);
        out->mem_trims += LD(c->mem_trims);
        out->mem_closed += LD(c->mem_closed);
    }
    int64_t mem = atomic_load_explicit(&h->mem, memory_order_relaxed); /* statistics */
    out->buffered_bytes = mem > 0 ? (uint64_t)mem : 0;
    out->buffered_peak = LD(h->mem_peak_ever);
#undef LD
}

uint16_t mx_http_port(const mx_http_t *h)
{
    return h->port;
}

int mx_http_stop(mx_http_t *h, uint32_t timeout_ms)
{
    for (int i = 0; i < h->n; i++)
        mx_actor_stop(h->sys, h->slots[i].addr);
    return wait_live_zero(h, timeout_ms ? timeout_ms : 5000);
}

void mx_http_free(mx_http_t *h)
{
    if (!h)
        return;
    for (int i = 0; i < h->n; i++)
        mx_metrics_unregister(h->slots[i].metrics_id);
    for (int i = 0; i < h->n; i++)
        if (h->slots[i].fd >= 0)
            close(h->slots[i].fd);
    mx__http_router_fini(&h->rt);
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->cv);
    free(h->slots);
    free(h->client_conns);
    free(h);
}
