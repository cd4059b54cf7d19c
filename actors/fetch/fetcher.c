/* fetcher.c - the fetcher actor (mx_fetch.h, docs/fetcher.md).
 *
 * libcurl's multi interface runs on the actor's scheduler loop
 * (mx_curluv.h: the sockets curl names are uv polls, its timeout a uv
 * timer); finished transfers come back on the owner thread, outside the
 * handler, and finish requests by mx_reply. The multi handle keeps the
 * connection cache (keep-alive); finished easy handles are kept in a small
 * pool and reused. Retries wait on runtime timers (a fetch_retry message),
 * so the only uv handles are mx_curluv's.
 *
 * A request takes one of max_inflight slots from its first attempt to its
 * reply (including backoff), so upstream transfers never exceed the bound;
 * the others wait in a FIFO of at most max_queued, and past that are
 * refused. The options and counters live in a block registered per fetcher
 * so that mx_fetch_stats can read them from any thread.
 *
 * Requests that carry the user's own key (logins: MX_FETCH_LIST with
 * api_key) are a second class: they neither consult nor feed the circuit
 * breaker (a user's spent quota says nothing about the service key), and
 * they have their own slots and queue (a quarter of the service's, at
 * least one), so a login flood cannot take upstream away from the cache.
 */
#define _GNU_SOURCE
#include "mx_fetch.h"
#include "mx_curluv.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "mx_breaker.h"
#include "mx_alloc.h"
#include "mx_err.h"
#include "mx_list.h"
#include "mx_log.h"
#include "mx_metrics.h"
#include "mx_url.h"

/* ---- counters and the per-fetcher block ---- */

/* The block (MX_FETCH_METRICS): written only by the fetcher's thread (one
 * writer: MX_METRIC_ADD/SET), read by any (relaxed; each counter is
 * independent, readers want a value, not an ordering). */
MX_METRICS_STRUCT(counters, MX_FETCH_METRICS);
#define MX_METRICS_TYPE struct counters
static const struct mx_metric_desc counters_desc[] = {MX_FETCH_METRICS(MX_METRIC_DESC)};
#undef MX_METRICS_TYPE

/* The spawn argument: options (strings owned) and counters. Created by
 * mx_fetch_spawn, registered by init, unregistered and freed by stop. */
struct shared {
    struct mx_fetch_opts o;
    char *base_url; /* without trailing '/' */
    char *key_hdr;  /* "x-nxopen-api-key: KEY", or NULL without a node key */
    char *via;      /* egress member's name, or NULL */
    mx_system_t *sys;
    struct mx_addr addr;
    struct shared *next; /* registry link, under reg_lock */
    char name[48];       /* the spawn name: the metrics instance */
    int metrics_id;      /* mx_metrics_register's, 0 when refused */
    struct counters c;
};

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct shared *reg_head; /* under reg_lock */

static void reg_add(struct shared *sh)
{
    pthread_mutex_lock(&reg_lock);
    sh->next = reg_head;
    reg_head = sh;
    pthread_mutex_unlock(&reg_lock);
}

static void reg_del(struct shared *sh)
{
    pthread_mutex_lock(&reg_lock);
    for (struct shared **p = &reg_head; *p; p = &(*p)->next)
        if (*p == sh) {
            *p = sh->next;
            break;
        }
    pthread_mutex_unlock(&reg_lock);
}

static void shared_free(struct shared *sh)
{
    if (!sh)
        return;
    free(sh->base_url);
    free(sh->key_hdr);
    free(sh->via);
    free(sh);
}

static const char *const kind_path[] = {
    [MX_FETCH_ID] = "/maplestory/v1/id?character_name=",
    [MX_FETCH_BASIC] = "/maplestory/v1/character/basic?ocid=",
    [MX_FETCH_EQUIPMENT] = "/maplestory/v1/character/item-equipment?ocid=",
    [MX_FETCH_LIST] = "/maplestory/v1/character/list",
};

/* ---- state ---- */

struct fetcher;

struct freq {
    struct mx_list link; /* in f->active, f->waiting or f->waiting_user */
    uint64_t id;
    struct mx_msg *req; /* our copy of the request: where the reply goes */
    enum mx_fetch_kind kind;
    bool inline_body;
    bool probe;           /* the running attempt is a half-open probe */
    bool user;            /* the caller's own key: class USER (no breaker, own slots) */
    bool in_backoff;      /* waiting for its fetch_retry timer */
    uint64_t deadline_ms; /* unix ms, 0 = none (from the request's envelope) */
    uint32_t attempts;
    char *url;
    struct curl_slist *hdrs;
    CURL *easy; /* while an attempt runs */
    char *buf;  /* response body */
    size_t len, cap;
    size_t body_max; /* opts.max_body_bytes */
    bool too_big;
    long http_status;
    int last_status; /* status if no further attempt is made */
    char err[256];   /* reason for last_status */
    char curl_err[CURL_ERROR_SIZE];
};

struct list {
    struct mx_list q;
    uint32_t n; /* elements in q */
};

/* A request passed to the egress node's fetcher, until its answer. */
struct passed {
    struct passed *next;
    uint64_t corr;      /* of our request to the egress fetcher */
    struct mx_msg *req; /* the caller's request: where the answer goes */
};

struct fetcher {
    mx_actor_t *self;
    struct shared *sh;
    struct mx_curluv cu;      /* its timer's close callback frees the fetcher */
    struct list active;       /* requests holding a slot (both classes) */
    struct list waiting;      /* FIFO of service requests waiting for a slot */
    struct list waiting_user; /* FIFO of user-key requests waiting for a slot */
    uint32_t active_user;     /* of active: user-key requests */
    CURL **pool;              /* idle easy handles, up to max_inflight */
    uint32_t npool;
    uint32_t inflight; /* easy handles in the multi */
    uint64_t next_id;
    uint64_t rng;
    struct mx_breaker br;
    bool pumping, stopping;
    struct passed *passed; /* requests at the egress node (at most max_inflight + max_queued) */
    uint32_t npassed;
};

static void list_push(struct list *l, struct freq *r)
{
    mx_list_push_back(&l->q, &r->link);
    l->n++;
}

static void list_del(struct list *l, struct freq *r)
{
    mx_list_remove(&r->link);
    l->n--;
}

static struct freq *list_first(struct list *l)
{
    return mx_list_first(&l->q, struct freq, link);
}

static uint64_t rng_next(struct fetcher *f)
{
    /* xorshift64*: jitter only, not security */
    f->rng ^= f->rng >> 12;
    f->rng ^= f->rng << 25;
    f->rng ^= f->rng >> 27;
    return f->rng * 2685821657736338717ull;
}

static void publish_breaker(struct fetcher *f)
{
    MX_METRIC_SET(&f->sh->c, breaker_state, (uint32_t)f->br.state);
    MX_METRIC_SET(&f->sh->c, breaker_opens, f->br.opens);
}

static void publish_counts(struct fetcher *f)
{
    struct counters *c = &f->sh->c;
    MX_METRIC_SET(c, inflight, f->inflight);
    if (f->inflight > MX_METRIC_GET(c, inflight_max))
        MX_METRIC_SET(c, inflight_max, f->inflight);
    MX_METRIC_SET(c, active, f->active.n);
    MX_METRIC_SET(c, queued, f->waiting.n + f->waiting_user.n);
    if (f->waiting.n + f->waiting_user.n > MX_METRIC_GET(c, queued_max))
        MX_METRIC_SET(c, queued_max, f->waiting.n + f->waiting_user.n);
}

/* ---- replies ---- */

static void count_status(struct counters *c, int status, bool breaker)
{
    switch (status) {
    case 0:
        MX_METRIC_ADD(c, ok, 1);
        break;
    case MX_ENOTFOUND:
        MX_METRIC_ADD(c, not_found, 1);
        break;
    case MX_EINVAL:
        MX_METRIC_ADD(c, invalid_key, 1);
        break;
    case MX_ETIMEDOUT:
        MX_METRIC_ADD(c, timeouts, 1);
        break;
    case MX_EUNAVAIL:
        if (breaker)
            MX_METRIC_ADD(c, breaker_rejected, 1);
        else
            MX_METRIC_ADD(c, refused, 1);
        break;
    case MX_EDECODE:
        MX_METRIC_ADD(c, bad_requests, 1);
        break;
    case MX_ESTOPPED:
        break; /* shutting down: not an upstream problem */
    default:
        MX_METRIC_ADD(c, upstream_errors, 1);
        break;
    }
}

void mx_fetch_body_free(struct mx_fetch_body *b)
{
    if (!b)
        return;
    free(b->data);
    free(b);
}

static void body_free_cb(void *p)
{
    mx_fetch_body_free(p);
}

/* Send a fetch_rep for req (borrowed). body (malloc'd, len bytes + NUL) is
 * taken in every case. */
static void send_reply(struct fetcher *f, const struct mx_msg *req, int status, long http,
                       uint32_t attempts, uint64_t retry_after, const char *err, char *body,
                       size_t len, bool inline_body)
{
    struct mx_m_fetch_rep rep = {
        .status = status,
        .http_status = http > 0 ? (uint64_t)http : 0,
        .attempts = attempts,
        .retry_after_ms = retry_after,
        .error = {err ? err : "", err ? (uint32_t)strlen(err) : 0},
        .body = {inline_body && body ? body : "", inline_body && body ? (uint32_t)len : 0},
    };
    struct mx_msg *m;
    int rc = mx_msg_encode(MX_T_fetch_rep, &rep, &m);
    if (rc != 0) {
        /* only a body over MX_ENV_MAX_BODY gets here */
        rep.status = MX_EUPSTREAM;
        rep.error = MX_STR("response too large to inline");
        rep.body = (struct mx_str){"", 0};
        status = MX_EUPSTREAM;
        if (mx_msg_encode(MX_T_fetch_rep, &rep, &m) != 0) {
            free(body);
            return;
        }
    }
    if (body && status == 0 && !inline_body) {
        struct mx_fetch_body *b = xcalloc(1, sizeof(*b));
        b->data = body;
        b->len = len;
        m->ptr = b;
        m->ptr_free = body_free_cb;
        body = NULL;
    }
    free(body);
    memcpy(m->env.trace_id, req->env.trace_id, sizeof(m->env.trace_id));
    memcpy(m->env.span_id, req->env.span_id, sizeof(m->env.span_id));
    rc = mx_reply(f->self, req, m);
    if (rc != 0)
        mx_msg_free(m); /* the caller is gone; the runtime counted it */
    if (rc == MX_EINVAL && inline_body && status == 0)
        /* a body over the transport's frame bound (MX_NNG_MAX_MSG_KB) for
         * a caller on another node: it gets an error, not silence */
        send_reply(f, req, MX_EUPSTREAM, http, attempts, 0,
                   "response too large for the cluster transport", NULL, 0, false);
}

/* Reply at once to a request we do not keep. */
static void reply_now(struct fetcher *f, const struct mx_msg *req, int status, bool breaker,
                      uint64_t retry_after, const char *err)
{
    count_status(&f->sh->c, status, breaker);
    send_reply(f, req, status, 0, 0, retry_after, err, NULL, 0, false);
}

static void freq_free(struct freq *r)
{
    mx_msg_free(r->req);
    free(r->url);
    curl_slist_free_all(r->hdrs);
    free(r->buf);
    free(r);
}

static void release_easy(struct fetcher *f, struct freq *r)
{
    if (!r->easy)
        return;
    curl_multi_remove_handle(f->cu.multi, r->easy);
    f->inflight--;
    if (f->npool < f->sh->o.max_inflight)
        f->pool[f->npool++] = r->easy;
    else
        curl_easy_cleanup(r->easy);
    r->easy = NULL;
}

static void pump(struct fetcher *f);

/* Finish an active request: reply, free, let a waiting one in. */
static void finish(struct fetcher *f, struct freq *r, int status, bool breaker, const char *err)
{
    char *body = NULL;
    size_t len = 0;
    release_easy(f, r);
    if (status == 0) {
        body = r->buf;
        len = r->len;
        r->buf = NULL;
        MX_METRIC_ADD(&f->sh->c, body_bytes, len);
    }
    count_status(&f->sh->c, status, breaker);
    MX_DEBUG("fetch %s done: status %d, http %ld, %u attempts%s", kind_path[r->kind], status,
             r->http_status, r->attempts,
             r->req->env.from.node != mx_system_node_id(f->sh->sys) ? ", for another node" : "");
    send_reply(f, r->req, status, r->http_status, r->attempts,
               breaker ? (uint64_t)mx_breaker_retry_after_ms(&f->br, mx_now_ms()) : 0, err, body,
               len, r->inline_body);
    list_del(&f->active, r);
    if (r->user)
        f->active_user--;
    freq_free(r);
    publish_counts(f);
    pump(f);
}

/* Slot bounds of the two classes. */
static uint32_t user_inflight(const struct fetcher *f)
{
    return f->sh->o.max_inflight / 4 ? f->sh->o.max_inflight / 4 : 1;
}

static bool has_slot(const struct fetcher *f, bool user)
{
    return user ? f->active_user < user_inflight(f)
                : f->active.n - f->active_user < f->sh->o.max_inflight;
}

static void take_slot(struct fetcher *f, struct freq *r)
{
    list_push(&f->active, r);
    if (r->user)
        f->active_user++;
}

/* ---- attempts ---- */

/* curl's write callback: append to the request's bounded body buffer. */
static size_t on_body(char *p, size_t size, size_t nmemb, void *ud)
{
    struct freq *r = ud;
    size_t n = size * nmemb;
    if (mx_curluv_body_append(&r->buf, &r->len, &r->cap, p, n, r->body_max) != n) {
        r->too_big = true;
        return 0; /* CURLE_WRITE_ERROR */
    }
    return n;
}

static int start_attempt(struct fetcher *f, struct freq *r);

static bool deadline_passed(const struct freq *r, uint64_t now_unix)
{
    return r->deadline_ms && now_unix + 1 >= r->deadline_ms;
}

/* Let waiting requests take free slots. Iterative: finish() calls us and
 * start_attempt may finish at once, so a flag stops the recursion. */
static void pump(struct fetcher *f)
{
    if (f->pumping || f->stopping)
        return;
    f->pumping = true;
    for (;;) {
        struct list *q = f->waiting.n && has_slot(f, false)       ? &f->waiting
                         : f->waiting_user.n && has_slot(f, true) ? &f->waiting_user
                                                                  : NULL;
        if (!q)
            break;
        struct freq *r = list_first(q);
        list_del(q, r);
        take_slot(f, r);
        publish_counts(f);
        if (deadline_passed(r, mx_unix_ms())) {
            finish(f, r, MX_ETIMEDOUT, false, "deadline passed while queued");
            continue;
        }
        start_attempt(f, r);
    }
    f->pumping = false;
}

static int attempt_start(struct fetcher *f, struct freq *r);

/* Start an attempt in r's trace: pump and retries run in another request's
 * callback or in a timer's message, whose trace is not r's. */
static int start_attempt(struct fetcher *f, struct freq *r)
{
    struct mx_trace tr, saved;
    mx_trace_of(&r->req->env, &tr);
    mx_trace_enter(&tr, &saved);
    int rc = attempt_start(f, r);
    mx_trace_leave(&saved);
    return rc;
}

static int attempt_start(struct fetcher *f, struct freq *r)
{
    const struct mx_fetch_opts *o = &f->sh->o;
    uint64_t now = mx_unix_ms();
    bool probe;
    CURL *e;

    r->in_backoff = false;
    if (deadline_passed(r, now)) {
        if (r->attempts == 0)
            finish(f, r, MX_ETIMEDOUT, false, "deadline passed before the upstream call");
        else
            finish(f, r, r->last_status, false, r->err);
        return -1;
    }
    if (r->user) {
        probe = false; /* the user's key: the service breaker is not asked */
    } else if (mx_breaker_acquire(&f->br, mx_now_ms(), &probe) != 0) {
        publish_breaker(f);
        if (r->attempts == 0) {
            finish(f, r, MX_EUNAVAIL, true, "circuit breaker open: upstream failing");
        } else {
            char msg[300];
            snprintf(msg, sizeof(msg), "%.200s (not retried: circuit breaker open)", r->err);
            finish(f, r, r->last_status, false, msg);
        }
        return -1;
    }
    publish_breaker(f);
    r->probe = probe;
    e = f->npool ? f->pool[--f->npool] : curl_easy_init();
    if (!e) {
        mx_breaker_cancel(&f->br, probe);
        finish(f, r, MX_EUPSTREAM, false, "curl_easy_init failed");
        return -1;
    }
    curl_easy_reset(e);
    uint64_t total = o->total_timeout_ms;
    if (r->deadline_ms && r->deadline_ms - now < total)
        total = r->deadline_ms - now;
    r->len = 0;
    r->too_big = false;
    r->http_status = 0;
    r->curl_err[0] = '\0';
    curl_easy_setopt(e, CURLOPT_URL, r->url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->hdrs);
    curl_easy_setopt(e, CURLOPT_PRIVATE, r);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->curl_err);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, ""); /* every encoding curl can decode */
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)o->connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(total ? total : 1));
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_NOPROXY, "localhost,127.0.0.1,::1");
    curl_easy_setopt(e, CURLOPT_USERAGENT, "mx-fetch/0.1");
    r->easy = e;
    CURLMcode mc = curl_multi_add_handle(f->cu.multi, e);
    if (mc != CURLM_OK) {
        r->easy = NULL;
        curl_easy_cleanup(e);
        mx_breaker_cancel(&f->br, probe);
        finish(f, r, MX_EUPSTREAM, false, curl_multi_strerror(mc));
        return -1;
    }
    f->inflight++;
    r->attempts++;
    MX_METRIC_ADD(&f->sh->c, upstream_calls, 1);
    if (r->attempts > 1)
        MX_METRIC_ADD(&f->sh->c, retries, 1);
    publish_counts(f);
    return 0;
}

/* ---- outcomes ---- */

static bool body_has(const struct freq *r, const char *needle)
{
    size_t n = r->len < 4096 ? r->len : 4096; /* error bodies are small */
    return r->buf && memmem(r->buf, n, needle, strlen(needle)) != NULL;
}

/* Wait before the next attempt, or give up when the delay would pass the
 * deadline. */
static void retry_later(struct fetcher *f, struct freq *r)
{
    const struct mx_fetch_opts *o = &f->sh->o;
    uint64_t d = o->backoff_base_ms;
    for (uint32_t i = 1; i < r->attempts && d < o->backoff_max_ms; i++)
        d *= 2;
    if (d > o->backoff_max_ms)
        d = o->backoff_max_ms;
    d = d / 2 + (d ? rng_next(f) % (d / 2 + 1) : 0); /* "equal jitter": [d/2, d] */
    if (r->deadline_ms && mx_unix_ms() + d + 1 >= r->deadline_ms) {
        finish(f, r, r->last_status, false, r->err);
        return;
    }
    struct mx_msg *tick;
    uint64_t tid;
    if (mx_msg_encode(MX_T_fetch_retry, &(struct mx_m_fetch_retry){.id = r->id}, &tick) != 0) {
        finish(f, r, r->last_status, false, r->err);
        return;
    }
    if (mx_timer_start(f->self, d, 0, tick, &tid) != 0) {
        mx_msg_free(tick);
        finish(f, r, r->last_status, false, r->err);
        return;
    }
    r->in_backoff = true;
}

static bool conn_error(CURLcode rc)
{
    switch (rc) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        return true;
    default:
        return false;
    }
}

/* An attempt ended: classify, feed the breaker, reply or retry. */
static void attempt_done(struct fetcher *f, struct freq *r, CURLcode rc)
{
    struct counters *c = &f->sh->c;
    long http = 0;
    bool retryable = false, healthy = true;
    int status = MX_EUPSTREAM;

    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &http);
    r->http_status = http;
    release_easy(f, r);
    publish_counts(f);
    const char *cerr = r->curl_err[0] ? r->curl_err : curl_easy_strerror(rc);

    if (rc == CURLE_OK && http >= 200 && http < 300) {
        status = 0;
        r->err[0] = '\0';
    } else if (rc == CURLE_OK && http >= 500) {
        MX_METRIC_ADD(c, attempt_5xx, 1);
        healthy = false;
        retryable = true;
        snprintf(r->err, sizeof(r->err), "upstream answered %ld", http);
    } else if (rc == CURLE_OK && http == 429) {
        healthy = false; /* rate limited: shed load, but a retry would not help */
        snprintf(r->err, sizeof(r->err), "upstream rate limit (429)");
    } else if (rc == CURLE_OK && (body_has(r, "OPENAPI00005") || http == 401 || http == 403)) {
        status = MX_EINVAL;
        snprintf(r->err, sizeof(r->err), "invalid API key (upstream %ld)", http);
    } else if (rc == CURLE_OK && (http == 400 || http == 404) && r->kind != MX_FETCH_LIST) {
        status = MX_ENOTFOUND;
        snprintf(r->err, sizeof(r->err), "%s not found (upstream %ld)",
                 r->kind == MX_FETCH_ID ? "character" : "ocid", http);
    } else if (rc == CURLE_OK) {
        snprintf(r->err, sizeof(r->err), "upstream answered %ld", http);
    } else if (rc == CURLE_OPERATION_TIMEDOUT) {
        MX_METRIC_ADD(c, attempt_timeouts, 1);
        healthy = false;
        retryable = true;
        status = MX_ETIMEDOUT;
        snprintf(r->err, sizeof(r->err), "upstream timed out: %.200s", cerr);
    } else if (conn_error(rc)) {
        MX_METRIC_ADD(c, attempt_conn_errors, 1);
        healthy = false;
        retryable = true;
        snprintf(r->err, sizeof(r->err), "upstream connection failed: %.200s", cerr);
    } else if (rc == CURLE_WRITE_ERROR && r->too_big) {
        snprintf(r->err, sizeof(r->err), "upstream response over %zu bytes", r->body_max);
    } else {
        healthy = false;
        snprintf(r->err, sizeof(r->err), "upstream error: %.200s", cerr);
    }
    r->last_status = status;
    if (!r->user) /* a user's key (spent quota, bad key) says nothing of the service's */
        mx_breaker_record(&f->br, mx_now_ms(), r->probe, healthy);
    r->probe = false;
    publish_breaker(f);
    if (retryable && r->attempts < f->sh->o.max_attempts && !f->stopping)
        retry_later(f, r);
    else
        finish(f, r, status, false, status == 0 ? NULL : r->err);
}

/* A transfer finished (mx_curluv). */
static void transfer_done(void *ctx, CURL *easy, CURLcode rc)
{
    struct fetcher *f = ctx;
    struct freq *r = NULL;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&r);
    if (r && r->easy == easy) {
        /* a libcurl completion, outside any handler: in the request's trace */
        struct mx_trace tr, saved;
        mx_trace_of(&r->req->env, &tr);
        mx_trace_enter(&tr, &saved);
        attempt_done(f, r, rc);
        mx_trace_leave(&saved);
    }
}

/* ---- requests ---- */

static bool key_ok(struct mx_str k)
{
    if (k.len == 0 || k.len > MX_FETCH_KEY_MAX)
        return false;
    for (uint32_t i = 0; i < k.len; i++) {
        unsigned char ch = (unsigned char)k.ptr[i];
        if (ch < 0x21 || ch > 0x7e) /* no spaces, controls (CR LF!) or bytes >= 0x7f */
            return false;
    }
    return true;
}

/* Build the request's URL and headers, or reply and return false. */
static bool prepare(struct fetcher *f, const struct mx_msg *m, const struct mx_m_fetch_req *q,
                    struct freq *r)
{
    struct shared *sh = f->sh;
    if (q->kind < MX_FETCH_ID || q->kind > MX_FETCH_LIST) {
        reply_now(f, m, MX_EDECODE, false, 0, "unknown fetch kind");
        return false;
    }
    r->kind = (enum mx_fetch_kind)q->kind;
    if (q->api_key.len) {
        if (!key_ok(q->api_key)) {
            reply_now(f, m, MX_EINVAL, false, 0, "invalid API key (malformed)");
            return false;
        }
        char hdr[sizeof("x-nxopen-api-key: ") + MX_FETCH_KEY_MAX];
        snprintf(hdr, sizeof(hdr), "x-nxopen-api-key: %.*s", (int)q->api_key.len, q->api_key.ptr);
        r->hdrs = curl_slist_append(NULL, hdr);
    } else if (r->kind == MX_FETCH_LIST || !sh->key_hdr) {
        reply_now(f, m, MX_EINVAL, false, 0, "invalid API key (none given)");
        return false;
    } else {
        r->hdrs = curl_slist_append(NULL, sh->key_hdr);
    }
    if (!r->hdrs || !(r->hdrs = curl_slist_append(r->hdrs, "Accept: application/json"))) {
        reply_now(f, m, MX_EUPSTREAM, false, 0, "out of memory");
        return false;
    }
    static const uint8_t no_span[8];
    if (mx_env_has_trace(&m->env) && memcmp(m->env.span_id, no_span, sizeof no_span) != 0) {
        /* the request's trace goes upstream too (W3C trace context); the
         * parent is the caller's span: the fetcher makes none of its own */
        static const char hx[] = "0123456789abcdef";
        char tp[sizeof "traceparent: 00-" + 32 + 1 + 16 + 3], *p = tp;
        p += snprintf(tp, sizeof tp, "traceparent: 00-");
        mx_env_trace_hex(&m->env, p);
        p += 32;
        *p++ = '-';
        for (int i = 0; i < 8; i++) {
            *p++ = hx[m->env.span_id[i] >> 4];
            *p++ = hx[m->env.span_id[i] & 15];
        }
        snprintf(p, sizeof tp - (size_t)(p - tp), "-01");
        struct curl_slist *h = curl_slist_append(r->hdrs, tp);
        if (!h) {
            reply_now(f, m, MX_EUPSTREAM, false, 0, "out of memory");
            return false;
        }
        r->hdrs = h;
    }
    if (r->kind != MX_FETCH_LIST) {
        if (q->arg.len == 0 || q->arg.len > MX_FETCH_ARG_MAX ||
            memchr(q->arg.ptr, '\0', q->arg.len)) {
            reply_now(f, m, MX_ENOTFOUND, false, 0,
                      r->kind == MX_FETCH_ID ? "character not found (invalid name)"
                                             : "ocid not found (invalid ocid)");
            return false;
        }
        char *esc = curl_easy_escape(NULL, q->arg.ptr, (int)q->arg.len); /* UTF-8 -> %XX */
        if (!esc) {
            reply_now(f, m, MX_EUPSTREAM, false, 0, "out of memory");
            return false;
        }
        size_t n = strlen(sh->base_url) + strlen(kind_path[r->kind]) + strlen(esc) + 1;
        r->url = xcalloc(1, n);
        snprintf(r->url, n, "%s%s%s", sh->base_url, kind_path[r->kind], esc);
        curl_free(esc);
    } else {
        size_t n = strlen(sh->base_url) + strlen(kind_path[r->kind]) + 1;
        r->url = xcalloc(1, n);
        snprintf(r->url, n, "%s%s", sh->base_url, kind_path[r->kind]);
    }
    return true;
}

/* ---- the egress node ---- */

/* Pass m (a local service-key request) to the egress node's fetcher. False
 * when it is to be served here: the member is unknown, is this node, or
 * the send failed (counted in via_local). Answers m itself when the bound
 * of passed requests is reached. */
static bool pass_on(struct fetcher *f, const struct mx_msg *m, const struct mx_m_fetch_req *q)
{
    struct shared *sh = f->sh;
    uint64_t node = 0;
    if (!sh->o.resolve || sh->o.resolve(sh->o.resolve_ctx, sh->via, &node) != 0 || node == 0 ||
        node == mx_system_node_id(sh->sys)) {
        MX_METRIC_ADD(&sh->c, via_local, 1);
        return false;
    }
    if (f->npassed >= sh->o.max_inflight + sh->o.max_queued) {
        char msg[160];
        snprintf(msg, sizeof msg, "fetcher overloaded: %u requests at egress node %s", f->npassed,
                 sh->via);
        reply_now(f, m, MX_EUNAVAIL, false, 0, msg);
        return true;
    }
    struct mx_msg *out;
    char arg[MX_FETCH_ARG_MAX + 1];
    snprintf(arg, sizeof arg, "%.*s", (int)q->arg.len, q->arg.ptr);
    uint64_t now = mx_unix_ms();
    uint64_t left = m->env.deadline_ms > now + 1
                        ? m->env.deadline_ms - now
                        : (uint64_t)sh->o.total_timeout_ms * sh->o.max_attempts;
    struct passed *p = xcalloc(1, sizeof *p);
    if (mx_fetch_request_new((enum mx_fetch_kind)q->kind, arg, NULL, true, &out) != 0) {
        free(p);
        return false; /* prepare() answers the bad request */
    }
    /* the handler's trace (m's) is stamped on out, so the egress node logs under it */
    if (mx_request_named_on(f->self, node, MX_FETCH_NAME, out,
                            left > UINT32_MAX ? UINT32_MAX : (uint32_t)left, &p->corr) != 0) {
        mx_msg_free(out);
        free(p);
        MX_METRIC_ADD(&sh->c, via_local, 1);
        MX_DEBUG("fetch: egress node %s unreachable; serving here", sh->via);
        return false;
    }
    MX_DEBUG("fetch %s passed to egress node %s", kind_path[q->kind], sh->via);
    p->req = mx_msg_share(m);
    p->next = f->passed;
    f->passed = p;
    f->npassed++;
    MX_METRIC_ADD(&sh->c, via_passed, 1);
    MX_METRIC_SET(&sh->c, via_pending, f->npassed);
    return true;
}

static struct passed *passed_take(struct fetcher *f, uint64_t corr)
{
    for (struct passed **pp = &f->passed; *pp; pp = &(*pp)->next)
        if ((*pp)->corr == corr) {
            struct passed *p = *pp;
            *pp = p->next;
            f->npassed--;
            MX_METRIC_SET(&f->sh->c, via_pending, f->npassed);
            return p;
        }
    return NULL;
}

/* The egress node answered (a fetch_rep) or did not in time (sys_timeout):
 * answer our caller as if we had fetched it ourselves. */
static void on_passed_answer(struct fetcher *f, const struct mx_msg *m)
{
    struct passed *p = passed_take(f, m->env.corr);
    if (!p) {
        MX_METRIC_ADD(&f->sh->c, bad_requests, 1);
        return;
    }
    struct mx_fetch_result r;
    struct mx_m_fetch_req q;
    bool inl = mx_msg_decode(p->req, &q) == 0 && q.inline_body;
    if (m->env.type == MX_T_sys_timeout) {
        reply_now(f, p->req, MX_ETIMEDOUT, false, 0, "egress node did not answer in time");
    } else if (mx_fetch_reply_read(m, &r) != 0) {
        reply_now(f, p->req, MX_EUPSTREAM, false, 0, "egress node's answer unreadable");
    } else {
        char *body = NULL;
        if (r.body) {
            body = xcalloc(1, r.body_len + 1);
            memcpy(body, r.body, r.body_len);
        }
        char err[256];
        snprintf(err, sizeof err, "%.*s", (int)r.error.len, r.error.ptr);
        count_status(&f->sh->c, r.status, false);
        MX_DEBUG("fetch answered by egress node %s: status %d http %u", f->sh->via, r.status,
                 r.http_status);
        send_reply(f, p->req, r.status, r.http_status, r.attempts, r.retry_after_ms,
                   r.status ? err : NULL, body, r.body_len, inl);
    }
    mx_msg_free(p->req);
    free(p);
}

static void on_request(struct fetcher *f, const struct mx_msg *m)
{
    struct shared *sh = f->sh;
    struct mx_m_fetch_req q;

    MX_METRIC_ADD(&sh->c, requests, 1);
    if (!(m->env.flags & MX_ENVF_REQUEST) || m->env.from.actor == 0) {
        MX_METRIC_ADD(&sh->c, bad_requests, 1); /* nobody to answer: counted, dropped */
        MX_DEBUG("fetch_req without a reply address dropped");
        return;
    }
    if (mx_msg_decode(m, &q) != 0) {
        reply_now(f, m, MX_EDECODE, false, 0, "malformed fetch_req");
        return;
    }
    if (sh->via && q.api_key.len == 0 && m->env.from.node == mx_system_node_id(sh->sys) &&
        pass_on(f, m, &q))
        return;
    /* fail fast while open; a half-open breaker is asked at the attempt */
    int64_t now = mx_now_ms();
    bool user = q.api_key.len > 0;
    if (!user && mx_breaker_state_at(&f->br, now) == MX_BREAKER_OPEN) {
        reply_now(f, m, MX_EUNAVAIL, true, (uint64_t)mx_breaker_retry_after_ms(&f->br, now),
                  "circuit breaker open: upstream failing");
        return;
    }
    bool slot = has_slot(f, user);
    struct list *wq = user ? &f->waiting_user : &f->waiting;
    uint32_t qmax = user ? (sh->o.max_queued / 4 ? sh->o.max_queued / 4 : 1) : sh->o.max_queued;
    if (!slot && wq->n >= qmax) {
        char msg[160];
        snprintf(msg, sizeof(msg), "fetcher overloaded: %u in flight, %u queued%s", f->active.n,
                 wq->n, user ? " (user keys)" : "");
        reply_now(f, m, MX_EUNAVAIL, false, 0, msg);
        return;
    }
    struct freq *r = xcalloc(1, sizeof(*r));
    if (!prepare(f, m, &q, r)) {
        freq_free(r);
        return;
    }
    r->id = ++f->next_id;
    r->req = mx_msg_share(m);
    r->deadline_ms = m->env.deadline_ms;
    r->body_max = sh->o.max_body_bytes;
    r->inline_body = q.inline_body || m->env.from.node != mx_system_node_id(sh->sys);
    r->last_status = MX_EUPSTREAM;
    r->user = user;
    if (slot) {
        take_slot(f, r);
        publish_counts(f);
        start_attempt(f, r);
    } else {
        list_push(wq, r);
        publish_counts(f);
    }
}

static void on_retry(struct fetcher *f, const struct mx_msg *m)
{
    struct mx_m_fetch_retry t;
    if (mx_msg_decode(m, &t) != 0)
        return;
    struct freq *r;
    mx_list_each (r, &f->active.q, link)
        if (r->id == t.id && r->in_backoff) {
            start_attempt(f, r);
            return;
        }
}

static int fetch_receive(mx_actor_t *self, void *state, struct mx_msg *m)
{
    struct fetcher *f = state;
    if (m->env.type == MX_T_fetch_req)
        on_request(f, m);
    else if (m->env.type == MX_T_fetch_retry)
        on_retry(f, m);
    else if (m->env.type == MX_T_fetch_rep || m->env.type == MX_T_sys_timeout)
        on_passed_answer(f, m);
    else
        MX_METRIC_ADD(&f->sh->c, bad_requests, 1);
    return 0; /* never an error: no restarts (see mx_fetch_spawn) */
}

/* ---- lifecycle ---- */

static int fetch_init(mx_actor_t *self, void *arg, void **state)
{
    struct shared *sh = arg;
    struct fetcher *f = xcalloc(1, sizeof(*f));
    f->self = self;
    f->sh = sh;
    mx_list_init(&f->active.q);
    mx_list_init(&f->waiting.q);
    mx_list_init(&f->waiting_user.q);
    f->pool = xcalloc(sh->o.max_inflight, sizeof(*f->pool));
    f->rng = (uint64_t)mx_now_ms() ^ mx_self(self).actor ^ 0x9e3779b97f4a7c15ull;
    if (!f->rng)
        f->rng = 1;
    mx_breaker_init(&f->br, sh->o.breaker_window, sh->o.breaker_threshold_pct,
                    sh->o.breaker_open_ms, sh->o.breaker_probes);
    if (mx_curluv_init(&f->cu, mx_actor_loop(self), transfer_done, f) != 0) {
        MX_ERROR("fetcher: curl_multi_init failed");
        free(f->pool);
        free(f);
        shared_free(sh); /* init at spawn failing stops the actor for good */
        return MX_EINTERNAL;
    }
    /* keep one idle connection per slot for keep-alive */
    curl_multi_setopt(f->cu.multi, CURLMOPT_MAXCONNECTS, (long)sh->o.max_inflight);
    sh->sys = mx_system_of(self);
    sh->addr = mx_self(self);
    reg_add(sh);
    sh->metrics_id = mx_metrics_register("fetch", sh->name, counters_desc,
                                         sizeof counters_desc / sizeof *counters_desc, &sh->c);
    *state = f;
    return 0;
}

static void on_state_closed(void *ctx)
{
    free(ctx);
}

static void fetch_stop(mx_actor_t *self, void *state)
{
    struct fetcher *f = state;
    struct freq *r;
    f->stopping = true;
    /* everyone still waiting gets an answer: the fetcher is going away */
    while ((r = list_first(&f->waiting)) || (r = list_first(&f->waiting_user))) {
        list_del(r->user ? &f->waiting_user : &f->waiting, r);
        count_status(&f->sh->c, MX_ESTOPPED, false);
        send_reply(f, r->req, MX_ESTOPPED, 0, 0, 0, "fetcher stopped", NULL, 0, false);
        freq_free(r);
    }
    while ((r = list_first(&f->active))) {
        release_easy(f, r);
        mx_breaker_cancel(&f->br, r->probe);
        list_del(&f->active, r);
        count_status(&f->sh->c, MX_ESTOPPED, false);
        send_reply(f, r->req, MX_ESTOPPED, r->http_status, r->attempts, 0, "fetcher stopped", NULL,
                   0, false);
        freq_free(r);
    }
    for (struct passed *p; (p = f->passed);) {
        f->passed = p->next;
        count_status(&f->sh->c, MX_ESTOPPED, false);
        send_reply(f, p->req, MX_ESTOPPED, 0, 0, 0, "fetcher stopped", NULL, 0, false);
        mx_msg_free(p->req);
        free(p);
    }
    for (uint32_t i = 0; i < f->npool; i++)
        curl_easy_cleanup(f->pool[i]);
    free(f->pool);
    mx_metrics_unregister(f->sh->metrics_id);
    reg_del(f->sh);
    shared_free(f->sh);
    mx_curluv_close(&f->cu, on_state_closed); /* frees f once closed */
}

static const struct mx_behaviour fetch_beh = {"fetcher", fetch_init, fetch_receive, fetch_stop};

/* ---- public API ---- */

void mx_fetch_opts_default(struct mx_fetch_opts *o)
{
    *o = (struct mx_fetch_opts)MX_FETCH_OPTS_DEFAULT;
}

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc;

static void global_init(void)
{
    global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int mx_fetch_global_init(void)
{
    pthread_once(&global_once, global_init);
    return global_rc == CURLE_OK ? 0 : MX_EINTERNAL;
}

static bool url_ok(const char *u)
{
    size_t n = u ? strlen(u) : 0;
    if (n < 8 || n > 512)
        return false;
    return mx_http_url_error(u, false) == NULL;
}

int mx_fetch_spawn(mx_system_t *sys, const struct mx_fetch_opts *o, const struct mx_spawn_opts *so,
                   struct mx_addr *out)
{
    struct mx_spawn_opts sopts = MX_SPAWN_OPTS_DEFAULT;
    const char *why = NULL;

    if (!sys || !o)
        return MX_EINVAL;
    if (!url_ok(o->base_url))
        why = "base_url must be http(s)://host[:port][/path] without query";
    else if (o->api_key && *o->api_key &&
             !key_ok((struct mx_str){o->api_key, (uint32_t)strlen(o->api_key)}))
        why = "api_key must be 1..512 printable ASCII bytes without spaces";
    else if (o->max_attempts < 1 || o->max_attempts > 10)
        why = "max_attempts must be 1..10";
    else if (o->max_inflight < 1 || o->max_inflight > 4096)
        why = "max_inflight must be 1..4096";
    else if (o->max_queued > 1000000)
        why = "max_queued must be <= 1000000";
    else if (o->total_timeout_ms < 1 || o->connect_timeout_ms < 1)
        why = "timeouts must be >= 1 ms";
    else if (o->max_body_bytes < 1024 || o->max_body_bytes > MX_ENV_MAX_BODY)
        why = "max_body_bytes must be 1 KiB..16 MiB";
    else if (o->breaker_window < 1 || o->breaker_window > MX_BREAKER_WINDOW_MAX ||
             o->breaker_threshold_pct < 1 || o->breaker_threshold_pct > 100 ||
             o->breaker_probes < 1)
        why = "breaker: window 1..64, threshold 1..100 %, probes >= 1";
    if (why) {
        MX_ERROR("mx_fetch_spawn: %s", why);
        return MX_EINVAL;
    }
    if (mx_fetch_global_init() != 0)
        return MX_EINTERNAL;

    struct shared *sh = xcalloc(1, sizeof(*sh));
    sh->o = *o;
    sh->base_url = xstrdup(o->base_url);
    size_t n = strlen(sh->base_url);
    while (n > 8 && sh->base_url[n - 1] == '/')
        sh->base_url[--n] = '\0';
    sh->o.base_url = sh->base_url;
    if (o->api_key && *o->api_key) {
        size_t hn = strlen(o->api_key) + sizeof("x-nxopen-api-key: ");
        sh->key_hdr = xcalloc(1, hn);
        snprintf(sh->key_hdr, hn, "x-nxopen-api-key: %s", o->api_key);
    }
    sh->o.api_key = NULL; /* the header holds it; do not keep the caller's pointer */
    if (o->via && *o->via)
        sh->via = xstrdup(o->via);
    sh->o.via = sh->via;
    if (so)
        sopts = *so;
    if (!sopts.name)
        sopts.name = MX_FETCH_NAME;
    snprintf(sh->name, sizeof sh->name, "%s", sopts.name);
    int rc = mx_spawn(sys, &fetch_beh, sh, &sopts, out);
    if (rc != 0)
        shared_free(sh);
    return rc;
}

int mx_fetch_stats(mx_system_t *sys, struct mx_addr fetcher, struct mx_fetch_stats *out)
{
    int rc = MX_ENOTFOUND;
    pthread_mutex_lock(&reg_lock);
    for (struct shared *sh = reg_head; sh; sh = sh->next) {
        if (sh->sys != sys || sh->addr.actor != fetcher.actor || sh->addr.node != fetcher.node)
            continue;
        struct counters *c = &sh->c;
        *out = (struct mx_fetch_stats){
            .requests = MX_METRIC_GET(c, requests),
            .ok = MX_METRIC_GET(c, ok),
            .not_found = MX_METRIC_GET(c, not_found),
            .invalid_key = MX_METRIC_GET(c, invalid_key),
            .timeouts = MX_METRIC_GET(c, timeouts),
            .upstream_errors = MX_METRIC_GET(c, upstream_errors),
            .breaker_rejected = MX_METRIC_GET(c, breaker_rejected),
            .refused = MX_METRIC_GET(c, refused),
            .bad_requests = MX_METRIC_GET(c, bad_requests),
            .upstream_calls = MX_METRIC_GET(c, upstream_calls),
            .retries = MX_METRIC_GET(c, retries),
            .attempt_timeouts = MX_METRIC_GET(c, attempt_timeouts),
            .attempt_conn_errors = MX_METRIC_GET(c, attempt_conn_errors),
            .attempt_5xx = MX_METRIC_GET(c, attempt_5xx),
            .body_bytes = MX_METRIC_GET(c, body_bytes),
            .breaker_opens = MX_METRIC_GET(c, breaker_opens),
            .breaker_state = MX_METRIC_GET(c, breaker_state),
            .inflight = MX_METRIC_GET(c, inflight),
            .inflight_max = MX_METRIC_GET(c, inflight_max),
            .active = MX_METRIC_GET(c, active),
            .queued = MX_METRIC_GET(c, queued),
            .queued_max = MX_METRIC_GET(c, queued_max),
            .via_passed = MX_METRIC_GET(c, via_passed),
            .via_local = MX_METRIC_GET(c, via_local),
            .via_pending = (uint32_t)MX_METRIC_GET(c, via_pending),
        };
        rc = 0;
        break;
    }
    pthread_mutex_unlock(&reg_lock);
    return rc;
}

int mx_fetch_request_new(enum mx_fetch_kind kind, const char *arg, const char *api_key,
                         bool inline_body, struct mx_msg **out)
{
    size_t al = arg ? strlen(arg) : 0, kl = api_key ? strlen(api_key) : 0;
    if (kind < MX_FETCH_ID || kind > MX_FETCH_LIST || al > MX_FETCH_ARG_MAX ||
        kl > MX_FETCH_KEY_MAX)
        return MX_EINVAL;
    struct mx_m_fetch_req q = {
        .kind = (uint64_t)kind,
        .arg = {arg ? arg : "", (uint32_t)al},
        .api_key = {api_key ? api_key : "", (uint32_t)kl},
        .inline_body = inline_body,
    };
    return mx_msg_encode(MX_T_fetch_req, &q, out);
}

int mx_fetch_reply_read(const struct mx_msg *m, struct mx_fetch_result *out)
{
    struct mx_m_fetch_rep rep;
    if (!m || m->env.type != MX_T_fetch_rep || mx_msg_decode(m, &rep) != 0)
        return MX_EDECODE;
    if (rep.status > 0 || rep.status < -100000 || rep.http_status > 999 || rep.attempts > 1000)
        return MX_EDECODE;
    *out = (struct mx_fetch_result){
        .status = (int)rep.status,
        .http_status = (uint32_t)rep.http_status,
        .attempts = (uint32_t)rep.attempts,
        .retry_after_ms =
            rep.retry_after_ms > UINT32_MAX ? UINT32_MAX : (uint32_t)rep.retry_after_ms,
        .error = rep.error,
    };
    if (m->ptr && m->ptr_free == body_free_cb) {
        const struct mx_fetch_body *b = m->ptr;
        out->body = b->data;
        out->body_len = b->len;
    } else if (rep.body.len) {
        out->body = rep.body.ptr;
        out->body_len = rep.body.len;
    }
    return 0;
}

struct mx_fetch_body *mx_fetch_reply_take_body(struct mx_msg *m)
{
    if (!m || m->env.type != MX_T_fetch_rep || !m->ptr || m->ptr_free != body_free_cb)
        return NULL;
    struct mx_fetch_body *b = m->ptr;
    m->ptr = NULL;
    m->ptr_free = NULL;
    return b;
}
