/* app_int.h - shared by the route files of mx_app (acceptor-thread state). */
#ifndef MX_APP_INT_H
#define MX_APP_INT_H

#include "mx_app.h"
#include "mx_redis.h"

/* What a pending correlation id is waiting for. */
enum pend_kind { PEND_CACHE = 0, PEND_LOGIN = 1 };

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

/* mx__app_proxy_trusted - mx_http_opts.proxy_trusted: the peer is in
 * MX_TRUSTED_PROXIES (ctx = struct mx_app). Any thread. */
bool mx__app_proxy_trusted(const struct sockaddr_storage *peer, void *ctx);

int mx__app_auth_init(struct acc *a);
void mx__app_auth_fini(struct acc *a);

#endif
