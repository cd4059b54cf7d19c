/* app_int.h - shared by the route files of mx_app (acceptor-thread state). */
#ifndef MX_APP_INT_H
#define MX_APP_INT_H

#include "mx_api.h"
#include "mx_metrics.h"
#include "mx_jsonw.h"
#include "mx_jwt.h"
#include "mx_redis.h"

struct mx_character_rec; /* mx_cache.h */

struct acc;

/* What a pending correlation id is waiting for. */
enum pend_kind {
    PEND_CACHE = 0,     /* exp_get of a cache route */
    PEND_LOGIN = 1,     /* fetcher: character list of a login */
    PEND_V1 = 2,        /* exp_get of /api/v1/characters (then its live like count) */
    PEND_LIKE_CHAR = 3, /* exp_get resolving a like route's target (ctx: like_ctx) */
    PEND_LIKE_REP = 4,  /* like-buffer answer of a like route (ctx: like_ctx) */
    PEND_V1_LIKE = 5,   /* like-buffer answer for a V1 record (ctx: like_ctx) */
    PEND_DB = 6,        /* outbox: a MySQL pool job */
    /* compat routes (app_compat.c); ctx is always NULL */
    PEND_EQUIP = 7,         /* v2 equipment: the cached equipment document */
    PEND_EQUIP_GZ = 8,      /* v3 equipment: the same, gzip when accepted */
    PEND_TOTAL = 9,         /* v2/v3 expectation: the V4 document to render */
    PEND_PRESET = 10,       /* v4 preset 1-3 */
    PEND_PRESET_EMPTY = 11, /* v4 preset outside 1-3: the whole document, to check the character */
    PEND_V5 = 12,           /* v5 expectation (a timeout is 202) */
    PEND_V5_RECALC = 13,    /* v5 recalculate */
};
#define PEND_COMPAT_FIRST PEND_EQUIP
#define PEND_COMPAT_LAST PEND_V5_RECALC

/* Route flags (struct mx_http_route.flags of the app's table): the low 24
 * bits are the route's own; these say how mx__app_xcut_begin treats it. */
#define MX__APP_F_DOC (1u << 24)     /* a document with an ETag: Cache-Control no-cache */
#define MX__APP_F_NO_CORS (1u << 25) /* CORS headers are the handler's (OPTIONS) */

/* mx__app_route - the app's table entry of the route r matched (its flags
 * and handler; the http layer sees the entry trampoline instead). */
const struct mx_http_route *mx__app_route(const mx_http_req_t *r);
/* mx__app_routes - the app's route table (without the catch-alls). */
size_t mx__app_routes(const struct mx_http_route **out);

/* cross-cutting headers (app_xcut.c) */
/* mx__app_cors_parse - MX_CORS_ORIGINS into app->cors. 0 or MX_ECONFIG (logged). */
int mx__app_cors_parse(struct mx_app *app, const char *list);
/* mx__app_xcut_layer - the http layer's decorate hook: the correlation id
 * and security headers on the answers the layer writes itself (400/404/405
 * from the router, 408, 413, 431, 500). Acceptor thread. */
void mx__app_xcut_layer(mx_http_req_t *r, void *ctx);

/* mx__app_xcut_begin - X-Correlation-ID, security headers and CORS headers
 * on r (flags: MX__APP_F_*). False when it answered r itself (403
 * CORS_FORBIDDEN for an origin not allowed). */
bool mx__app_xcut_begin(mx_http_req_t *r, struct acc *a, uint32_t flags);
int mx__app_not_found(mx_http_req_t *r, void *st); /* 404, or 405 with Allow */
int mx__app_options(mx_http_req_t *r, void *st);   /* CORS preflight / Allow */

/* actuator and API documents (app_actuator.c) */
int mx__app_health(mx_http_req_t *r, void *st);
int mx__app_liveness(mx_http_req_t *r, void *st);
int mx__app_info(mx_http_req_t *r, void *st);
int mx__app_links(mx_http_req_t *r, void *st);
int mx__app_api_docs(mx_http_req_t *r, void *st); /* flags & 1: the YAML form */

/* compat routes (app_compat.c) */
int mx__app_equipment(mx_http_req_t *r, void *st); /* flags & 1: v3 (gzip) */
int mx__app_total(mx_http_req_t *r, void *st);
int mx__app_preset(mx_http_req_t *r, void *st);
int mx__app_v5(mx_http_req_t *r, void *st); /* flags & 1: recalculate */
/* mx__app_compat_reply - the reply of a PEND_COMPAT_FIRST..LAST entry. */
void mx__app_compat_reply(struct acc *a, mx_http_req_t *r, uint8_t kind, struct mx_msg *m);
/* mx__app_total_expectation - TotalExpectationResponse from a V4 document
 * (app_compat_json.cpp). Returns 0, MX_EDECODE, MX_ETOOBIG or MX_ENOMEM. */
int mx__app_total_expectation(const char *doc, size_t len, struct mx_jsonw *w);

/* mx__app_ask_doc - exp_get(what, the route's {ign}, preset, force, the
 * boolean query options) to its shard, waiting timeout_ms (0 = the cache
 * timeout); the reply comes back with kind. Returns MX_HTTP_PENDING or
 * MX_HTTP_DONE after answering an error. */
int mx__app_ask_doc(mx_http_req_t *r, struct acc *a, uint32_t what, uint32_t preset, bool force,
                    uint8_t kind, uint32_t timeout_ms);

struct pend {
    uint64_t corr; /* 0 = free slot */
    mx_http_req_t *r;
    uint8_t kind; /* enum pend_kind */
    void *ctx;    /* PEND_LOGIN: struct login_ctx */
};

/* One acceptor's app state; owned by the acceptor's thread. */
/* The API's counters, declared once (mx_metrics.h), one block per acceptor
 * (struct acc, written by its thread only) registered as three sets with
 * instance "acceptor-N": actor "ratelimit" (mx_ratelimit_total{result},
 * mx_ratelimit_bypassed_total), "auth" (mx_auth_total{event}) and "app"
 * (mx_app_<field>_total). */
#define MX_RATELIMIT_METRICS(X)                                                                    \
    X(COUNTER, rl_checked, "requests the rate limiter checked", "", "result=\"checked\"")          \
    X(COUNTER, rl_refused, "requests the rate limiter refused (429)", "", "result=\"refused\"")    \
    X(COUNTER, rl_bypassed, "requests let through: Redis could not decide", "bypassed")
#define MX_AUTH_METRICS(X)                                                                         \
    X(COUNTER, auth_ok, "bearer tokens accepted", "", "event=\"token_ok\"")                        \
    X(COUNTER, auth_refused, "bearer tokens refused", "", "event=\"token_refused\"")               \
    X(COUNTER, logins, "logins", "", "event=\"login\"")                                            \
    X(COUNTER, login_failures, "logins refused or failed", "", "event=\"login_failed\"")           \
    X(COUNTER, refreshes, "token refreshes", "", "event=\"refresh\"")                              \
    X(COUNTER, refresh_reuse, "refresh tokens used twice (the family revoked)", "",                \
      "event=\"refresh_reuse\"")
#define MX_APP_METRICS(X)                                                                          \
    X(COUNTER, pending_refused, "requests refused: the acceptor's pending table is full")          \
    X(COUNTER, cache_timeouts, "cache answers that did not come in cache_timeout_ms")              \
    X(COUNTER, stale_served, "stale documents served because the fresh answer failed")             \
    X(COUNTER, like_count_unknown, "V1 records sent with likeCount null")

struct mx__app_metrics {
    MX_RATELIMIT_METRICS(MX__METRIC_FIELD)
    MX_AUTH_METRICS(MX__METRIC_FIELD)
    MX_APP_METRICS(MX__METRIC_FIELD)
};

struct acc {
    struct mx_app *app;
    mx_actor_t *self;
    struct mx_addr *shards;
    uint32_t nshards;
    struct pend *tab; /* open addressing, linear probing; cap a power of two */
    uint32_t cap, n, max;
    mx_redis_t *redis; /* sessions, refresh tokens, rate limits; NULL without MX_REDIS_URL */
    mx_redis_script_t *s_refresh, *s_login, *s_admin_live; /* registered once, at init */
    struct mx_addr *likes; /* like-buffer actors "likes.<i>"; nlikes 0 = likes not running */
    uint32_t nlikes;
    struct mx__ocid_slot *ocid_cache; /* like routes: name -> ocid (app_likes.c); NULL until used */
    struct mx__app_metrics m;         /* this acceptor's counters (its thread writes) */
    int metrics_ids[3];               /* ratelimit, auth, app */
};

bool mx__app_pend_put(struct acc *a, uint64_t corr, mx_http_req_t *r, uint8_t kind, void *ctx);

/* A handler body run after the rate limit admitted the request. */
typedef int (*mx__app_next_fn)(mx_http_req_t *r, struct acc *a);

/* mx__app_guard - rate limit (per IP, and per user when a valid Bearer
 * token is present) then run next; answers 429 itself. */
int mx__app_guard(mx_http_req_t *r, struct acc *a, mx__app_next_fn next);
/* mx__app_guard_cost - mx__app_guard for a request that takes cost tokens
 * (<= the buckets' capacity) from each bucket: a recalculation. */
int mx__app_guard_cost(mx_http_req_t *r, struct acc *a, mx__app_next_fn next, uint32_t cost);

/* auth routes (app_auth.c) */
int mx__app_login(mx_http_req_t *r, void *st);
int mx__app_refresh(mx_http_req_t *r, void *st);
int mx__app_logout(mx_http_req_t *r, void *st);
int mx__app_me(mx_http_req_t *r, void *st);
int mx__app_admin(mx_http_req_t *r, void *st);
void mx__app_login_reply(struct acc *a, mx_http_req_t *r, void *ctx, struct mx_msg *m);
void mx__app_login_abort(void *ctx);

/* mx__app_proxy_trusted - mx_http_opts.proxy_trusted: the peer is in
 * MX_TRUSTED_PROXIES (ctx = struct mx_app). Any thread. */
bool mx__app_proxy_trusted(const struct sockaddr_storage *peer, void *ctx);

int mx__app_auth_init(struct acc *a);

/* mx__app_client_ip - the client's address as text into out: the peer, or,
 * when the peer is in MX_TRUSTED_PROXIES, the right-most X-Forwarded-For
 * entry (over every header line) that is not itself a trusted proxy. */
void mx__app_client_ip(struct acc *a, mx_http_req_t *r, char *out, size_t cap);

/* mx__app_bearer - verify the Authorization: Bearer token; true and *c when
 * valid; *present says whether the header was there. */
bool mx__app_bearer(struct acc *a, mx_http_req_t *r, struct mx_jwt_claims *c, bool *present);
/* mx__app_session_touch - renew session sid's idle lifetime (sliding). */
void mx__app_session_touch(struct acc *a, const char *sid);
/* mx__app_admins_parse - MX_ADMIN_FINGERPRINTS into app->admins. 0 or MX_ECONFIG. */
/* mx__app_ign_trim - *ign (a path parameter, may be NULL) without leading
 * and trailing spaces and tabs, as the seed trims names; *len its length
 * (the result is not NUL-terminated at *len). */
void mx__app_ign_trim(const char **ign, size_t *len);

/* mx__app_bootstrap_admin - whether fgp is in MX_ADMIN_FINGERPRINTS. Any thread. */
bool mx__app_bootstrap_admin(const struct mx_app *app, const char *fgp);
int mx__app_admins_parse(struct mx_app *app);
/* mx__app_send_json - answer status with w's JSON (500 S001 if w failed);
 * frees w's buffer. */
void mx__app_send_json(mx_http_req_t *r, int status, struct mx_jsonw *w);
/* mx__app_upstream_error - answer a failed fetch_rep: 503 S010 (timeout) or
 * S005 with Retry-After. */
struct mx_fetch_result;
void mx__app_upstream_error(mx_http_req_t *r, const struct mx_fetch_result *fr);
/* mx__app_list_item - the next item of a comma-separated list, blanks
 * trimmed (*n = its length, 0 for an empty item); *list moves past it.
 * NULL at the end. */
const char *mx__app_list_item(const char **list, size_t *n);
/* mx__app_redis_down - answer 503: the session store is unavailable. */
void mx__app_redis_down(mx_http_req_t *r);

/* mx__app_ask_character - send exp_get(character record of ign) to its
 * cache shard; the reply is dispatched by kind with ctx. Returns
 * MX_HTTP_PENDING, or MX_HTTP_DONE after answering an error itself (ctx
 * stays the caller's). */
int mx__app_ask_character(struct acc *a, mx_http_req_t *r, const char *ign, uint8_t kind,
                          void *ctx);
/* mx__app_cache_ptr - read an exp_rep: true and *p (its payload, borrowed
 * from m: a struct mx_http_doc, or a struct mx_character_rec for
 * MX_SVC_CHARACTER) and *stale on success; otherwise the error is answered
 * and false returned. mx__app_cache_doc is the same for documents. */
bool mx__app_cache_ptr(struct acc *a, mx_http_req_t *r, struct mx_msg *m, const void **p,
                       bool *stale);
bool mx__app_cache_doc(struct acc *a, mx_http_req_t *r, struct mx_msg *m,
                       const struct mx_http_doc **d, bool *stale);
/* mx__app_respond_character - answer with the JSON of a character record:
 * likeCount is 0 when !live (no like-buffers; the answer then has an
 * ETag), else likes, or null when likes < 0 (the count is unknown). A
 * stale record starts with "stale": true and has a Warning header. */
void mx__app_respond_character(struct acc *a, mx_http_req_t *r, const struct mx_character_rec *c,
                               bool stale, bool live, int64_t likes);
/* mx__app_respond_doc - answer with a cached document (stale marking too). */
void mx__app_respond_doc(struct acc *a, mx_http_req_t *r, const struct mx_http_doc *d, bool stale);

/* like routes (app_likes.c) */
int mx__app_like_toggle(mx_http_req_t *r, void *st);
int mx__app_like_status(mx_http_req_t *r, void *st);
/* mx__app_like_reply - a reply for a PEND_LIKE_* or PEND_V1_LIKE entry. */
void mx__app_like_reply(struct acc *a, mx_http_req_t *r, uint8_t kind, void *ctx, struct mx_msg *m);
/* mx__app_v1_live - a V1 record arrived: ask for its live like count and
 * answer when it comes (a reference of c is kept until then). Returns true
 * when pending (the reply completes it), false when the record should be
 * answered without a live count. */
bool mx__app_v1_live(struct acc *a, mx_http_req_t *r, const struct mx_character_rec *c, bool stale);
void mx__app_like_abort(void *ctx);
/* mx__app_likes_fini - free what the like routes kept on the acceptor. */
void mx__app_likes_fini(struct acc *a);
void mx__app_auth_fini(struct acc *a);

/* ---- outbox, DLQ admin and donations (app_outbox.c) ---- */

/* MySQL pool job ids share the pending table with request correlation
 * ids: they are stored with this bit set so the two never collide. Every
 * store_job_done the acceptor receives is looked up with the tag and
 * answered by mx__app_db_reply (kind PEND_DB). */
#define MX__APP_DB_TAG (UINT64_C(1) << 63)

/* A session-checked route's body: runs after the bearer token and the
 * session matched; ocids is the session's comma-separated list ("" if
 * none), fgp the user's fingerprint. Must answer r (now or later). */
typedef void (*mx__app_user_fn)(struct acc *a, mx_http_req_t *r, const char *ocids,
                                const char *fgp);

/* mx__app_with_user - check the bearer token and the session (401 / 503
 * answered here), then run fn. Returns MX_HTTP_DONE or MX_HTTP_PENDING. */
int mx__app_with_user(mx_http_req_t *r, struct acc *a, mx__app_user_fn fn);

/* mx__app_admin_outbox - the admin routes under /api/admin/ that the
 * outbox serves ("dlq...", "points", "alerts/test"); rest is the path after
 * /api/admin/. Returns false (nothing answered) for other paths. */
bool mx__app_admin_outbox(struct acc *a, mx_http_req_t *r, const char *rest, const char *method);

/* mx__app_db_reply - a PEND_DB request's pool job finished (m is the
 * store_job_done carrying the struct mx_outbox_job). */
void mx__app_db_reply(struct acc *a, mx_http_req_t *r, struct mx_msg *m);

/* routes (app_outbox.c) */
int mx__app_donate(mx_http_req_t *r, void *st);
int mx__app_points(mx_http_req_t *r, void *st);

/* mx__app_outbox_prom - the outbox's Prometheus lines the registry cannot
 * give (the relay's lag percentile) into buf; returns the bytes written
 * (< cap). The counters are registered sets (docs/metrics.md). */
size_t mx__app_outbox_prom(char *buf, size_t cap, const char *node);

/* mx__app_outbox_register - register the outbox routes' counters (actor
 * outbox_api) once per process. mx_app_start calls it. */
void mx__app_outbox_register(void);

#endif
