/* mx_api.h - the MapleExpectation-compatible HTTP routes (DESIGN.md section
 * 5) on the http-acceptor: character lookup and expectation documents
 * through the cache shards, health and readiness, Prometheus metrics, and
 * clear 503 answers for what this node does not serve yet.
 *
 * mx_app_start starts the HTTP server with these routes; every acceptor
 * keeps its own table of requests waiting for a cache reply.
 */
#ifndef MX_API_H
#define MX_API_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "mx_actor.h"
#include "mx_http.h"

struct mx_app_opts {
    uint32_t cache_timeout_ms; /* one cache request; default 25 s */
    uint32_t max_pending; /* requests waiting on the cache per acceptor; default and max 4000 */
    const char *trusted_proxies; /* CIDR list (MX_TRUSTED_PROXIES); may be NULL */
    const char *node_name;
    const char *redis_url;  /* sessions, refresh tokens, rate limits; NULL/"" = none */
    const char *jwt_secret; /* >= 32 bytes; NULL = auth routes answer 503 */
    bool rate_limit;        /* global rate limits on (MX_RATE_LIMIT) */
    uint32_t access_ttl_s;  /* access token lifetime; default 900 */
    uint32_t refresh_ttl_s; /* refresh token / session lifetime; default 7 days */
    uint32_t max_sessions;  /* live sessions per account (fingerprint); past it the oldest
                               is revoked. 0 = 10 */
    struct mx_mysql *mysql; /* outbox: DLQ admin, donations, points; NULL = those answer 503 */
    const char *fingerprint_secret; /* HMAC key of fingerprints (MX_FINGERPRINT_SECRET); NULL/"" =
                                       jwt_secret */
    uint32_t session_ttl_s;         /* idle lifetime of a session, sliding; default 1800 */
    const char *admin_fingerprints; /* bootstrap admins, comma-separated (MX_ADMIN_FINGERPRINTS);
                                       may be NULL */
    const char
        *cors_origins;       /* allowed CORS origins, comma-separated, or "*"; NULL/"" = CORS off */
    uint32_t cors_max_age_s; /* preflight cache lifetime; default 3600 */
    uint32_t v5_wait_ms;     /* /api/v5: wait this long for a document before 202; default 300 */
    bool api_docs;           /* serve /v3/api-docs (MX_API_DOCS); default true */
    const char *metrics_token; /* MX_METRICS_TOKEN: /actuator/prometheus wants "Authorization:
                                  Bearer <it>"; NULL/"" = private client addresses only */
};

/* A parsed CIDR (IPv4 addresses are stored as IPv4-mapped IPv6). */
struct mx_cidr {
    uint8_t addr[16];
    uint8_t bits;
};
#define MX_APP_MAX_PROXIES 32
#define MX_APP_MAX_ORIGINS 16
#define MX_APP_MAX_ADMINS 32

struct mx_app {
    struct mx_app_opts o;
    mx_system_t *sys;
    mx_http_t *http;
    uint32_t nshards;
    _Atomic bool draining; /* readiness answers 503 */
    struct mx_cidr proxies[MX_APP_MAX_PROXIES];
    int nproxies;
    char cors[MX_APP_MAX_ORIGINS][256]; /* MX_CORS_ORIGINS, parsed at start; read-only after */
    int ncors;
    char admins[MX_APP_MAX_ADMINS]
               [64]; /* MX_ADMIN_FINGERPRINTS, parsed at start; read-only after */
    int nadmins;
    uint64_t started_ms; /* wall clock at mx_app_start (/actuator/info) */
    /* the counters are per acceptor: MX_*_METRICS in app_int.h */
};

void mx_app_opts_default(struct mx_app_opts *o);

/* mx_app_start - start the HTTP server on http_opts->addr with the routes.
 * The cache shards (mx_svc_start) must be running. app is the caller's and
 * must outlive the server. Returns 0 or mx_http_start's errors. Not from a
 * scheduler thread. */
int mx_app_start(struct mx_app *app, mx_system_t *sys, const struct mx_http_opts *http_opts,
                 const struct mx_app_opts *o, uint16_t *bound_port);

/* mx_app_parse_cidrs - parse "a.b.c.d/n,x::/m,..." into out (max n).
 * Returns the count, -1 on a malformed entry, or -2 for a range covering
 * every address or every IPv4 address (0.0.0.0/0, ::/0, ::ffff:0:0/96):
 * trusting it would let any client choose its own address. */
int mx_app_parse_cidrs(const char *s, struct mx_cidr *out, int max);

/* mx_app_cidr_match - whether the address (16 bytes, IPv4 mapped) is in c. */
bool mx_app_cidr_match(const struct mx_cidr *c, const uint8_t addr[16]);

/* mx_app_drain - readiness turns 503 and the server stops accepting. */
void mx_app_drain(struct mx_app *app);

/* mx_app_set_ready - readiness answers 200 (true) or 503 (false) while
 * the server keeps accepting and serving: the first phase of a drain, so
 * the load balancer's health checks take the node out before it stops
 * listening. Any thread. */
void mx_app_set_ready(struct mx_app *app, bool ready);

/* mx_app_undrain - undo mx_app_drain: listen again, readiness 200. Any
 * thread. */
void mx_app_undrain(struct mx_app *app);

#endif
