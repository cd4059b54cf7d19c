/* app_int.h - shared by the route files of mx_app (acceptor-thread state). */
#ifndef MX_APP_INT_H
#define MX_APP_INT_H

#include "mx_app.h"
#include "mx_redis.h"

/* What a pending correlation id is waiting for. */
enum pend_kind { PEND_CACHE = 0, PEND_LOGIN = 1, PEND_DB = 2 /* outbox: a MySQL pool job */ };

struct pend {
    uint64_t corr; /* 0 = free slot */
    mx_http_req_t *r;
    uint8_t kind;  /* enum pend_kind */
    void *ctx;     /* PEND_LOGIN: struct login_ctx */
};

/* One acceptor's app state; owned by the acceptor's thread. */
struct acc {
    struct mx_app *app;
    mx_actor_t *self;
    struct mx_addr *shards;
    uint32_t nshards;
    struct pend *tab; /* open addressing, linear probing; cap a power of two */
    uint32_t cap, n, max;
    mx_redis_t *redis; /* sessions, refresh tokens, rate limits; NULL without MX_REDIS_URL */
    mx_redis_script_t *s_refresh, *s_login; /* registered once, at init */
};

bool mx__app_pend_put(struct acc *a, uint64_t corr, mx_http_req_t *r, uint8_t kind, void *ctx);

/* A handler body run after the rate limit admitted the request. */
typedef int (*mx__app_next_fn)(mx_http_req_t *r, struct acc *a);

/* mx__app_guard - rate limit (per IP, and per user when a valid Bearer
 * token is present) then run next; answers 429 itself. */
int mx__app_guard(mx_http_req_t *r, struct acc *a, mx__app_next_fn next);

/* auth routes (app_auth.c) */
int mx__app_login(mx_http_req_t *r, void *st);
int mx__app_refresh(mx_http_req_t *r, void *st);
int mx__app_logout(mx_http_req_t *r, void *st);
int mx__app_me(mx_http_req_t *r, void *st);
int mx__app_admin(mx_http_req_t *r, void *st);
void mx__app_login_reply(struct acc *a, mx_http_req_t *r, void *ctx, struct mx_msg *m);
void mx__app_login_abort(void *ctx);

int mx__app_auth_init(struct acc *a);
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

/* mx__app_outbox_prom - the outbox's Prometheus lines (relay and routes)
 * into buf; returns the bytes written (< cap). */
size_t mx__app_outbox_prom(char *buf, size_t cap, const char *node);

#endif
