/* app_auth.c - sign-in, tokens, sessions, admin role checks and the global
 * rate limits of the HTTP API (DESIGN.md section 5).
 *
 * Sessions and refresh tokens live in Redis, so every node verifies and
 * revokes the same tokens:
 *   {auth}:sess:<sid>   hash ign, fgp, role, ocids; TTL = the session's idle
 *                       lifetime (MX_SESSION_TTL_S, 30 min as in the seed),
 *                       renewed by every authenticated request and refresh
 *   {auth}:rt:<sha256>  "<sid>|live" or "<sid>|used"; TTL = refresh lifetime
 *   {auth}:admins       set of fingerprints that sign in as ADMIN, besides
 *                       the bootstrap list MX_ADMIN_FINGERPRINTS
 *   {auth}:fsess:<fgp>  sorted set of the account's session ids by login
 *                       time; past max_sessions the oldest are revoked
 * The ADMIN role is re-read from {auth}:admins (and the bootstrap list) at
 * every refresh, admin route and rate-limit exemption: removing a
 * fingerprint takes effect at once, whatever role its tokens or sessions
 * were issued with.
 * A refresh token is "<sid>.<random>"; rotating it marks the old one used
 * and issues a new one in the same family (the session). Presenting a used
 * token again is reuse: the session (the whole family) is deleted.
 *
 * Rate limits are Redis token buckets (mx_ratelimit) per client IP and per
 * signed-in user; when Redis cannot decide, the request passes and a counter
 * says so. Every function here runs on the acceptor's thread.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app_int.h"
#include "mx_err.h"
#include "mx_fetch.h"
#include "mx_jsonr.h"
#include "mx_jsonw.h"
#include "mx_jwt.h"
#include "mx_log.h"
#include "mx_ratelimit.h"

#define CNT(f) MX_METRIC_INC(&a->m, f) /* the acceptor's own block */
#define SID_BYTES 18
#define MAX_OCIDS 64

/* ---- CIDRs and the client address ---- */

static bool parse_ip(const char *s, uint8_t out[16])
{
    struct in_addr v4;
    if (inet_pton(AF_INET, s, &v4) == 1) {
        memset(out, 0, 10);
        out[10] = out[11] = 0xff;
        memcpy(out + 12, &v4, 4);
        return true;
    }
    return inet_pton(AF_INET6, s, out) == 1;
}

int mx_app_parse_cidrs(const char *s, struct mx_cidr *out, int max)
{
    int n = 0;
    while (s && *s) {
        const char *e = strchr(s, ',');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        char item[64];
        while (len && (*s == ' ')) {
            s++;
            len--;
        }
        while (len && s[len - 1] == ' ')
            len--;
        if (len == 0 || len >= sizeof item || n >= max)
            return -1;
        memcpy(item, s, len);
        item[len] = '\0';
        char *slash = strchr(item, '/');
        int bits = -1;
        if (slash) {
            *slash = '\0';
            char *end;
            long b = strtol(slash + 1, &end, 10);
            if (*end || end == slash + 1 || b < 0 || b > 128)
                return -1;
            bits = (int)b;
        }
        if (!parse_ip(item, out[n].addr))
            return -1;
        bool v4 = strchr(item, ':') == NULL;
        if (bits < 0)
            bits = v4 ? 32 : 128;
        if (v4 && bits > 32)
            return -1;
        out[n].bits = (uint8_t)(v4 ? bits + 96 : bits);
        static const uint8_t any_v4[16] = {[10] = 0xff, [11] = 0xff};
        if (out[n].bits == 0 || (out[n].bits <= 96 && mx_app_cidr_match(&out[n], any_v4)))
            return -2; /* every address (or every IPv4 address): no proxy is that */
        n++;
        s = e ? e + 1 : NULL;
    }
    return n;
}

bool mx_app_cidr_match(const struct mx_cidr *c, const uint8_t addr[16])
{
    int full = c->bits / 8, rem = c->bits % 8;
    if (memcmp(c->addr, addr, (size_t)full) != 0)
        return false;
    if (rem == 0)
        return true;
    uint8_t mask = (uint8_t)(0xff << (8 - rem));
    return (c->addr[full] & mask) == (addr[full] & mask);
}

static bool trusted(const struct mx_app *app, const uint8_t addr[16])
{
    for (int i = 0; i < app->nproxies; i++)
        if (mx_app_cidr_match(&app->proxies[i], addr))
            return true;
    return false;
}

/* ---- the PROXY protocol's trust check (mx_http_opts.proxy_trusted) ---- */

bool mx__app_proxy_trusted(const struct sockaddr_storage *peer, void *ctx)
{
    const struct mx_app *app = ctx;
    uint8_t a[16] = {0};
    if (peer->ss_family == AF_INET) {
        a[10] = a[11] = 0xff; /* IPv4-mapped, as mx_app_parse_cidrs stores them */
        memcpy(a + 12, &((const struct sockaddr_in *)peer)->sin_addr, 4);
    } else if (peer->ss_family == AF_INET6) {
        memcpy(a, &((const struct sockaddr_in6 *)peer)->sin6_addr, 16);
    } else {
        return false;
    }
    return trusted(app, a);
}

/* One X-Forwarded-For entry [s, e): true and its address (binary and,
 * when it fits, text into out) when it is an IP address. */
static bool xff_item(const char *s, const char *e, uint8_t ip[16], char *out, size_t cap)
{
    char item[INET6_ADDRSTRLEN];
    while (s < e && (*s == ' ' || *s == '\t'))
        s++;
    while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
    if (e <= s || (size_t)(e - s) >= sizeof item)
        return false;
    memcpy(item, s, (size_t)(e - s));
    item[e - s] = '\0';
    if (!parse_ip(item, ip))
        return false;
    snprintf(out, cap, "%s", item);
    return true;
}

void mx__app_client_ip(struct acc *a, mx_http_req_t *r, char *out, size_t cap)
{
    snprintf(out, cap, "%s", mx_http_req_peer_ip(r));
    uint8_t ip[16];
    if (a->app->nproxies == 0 || !parse_ip(out, ip) || !trusted(a->app, ip))
        return;
    /* every header line, last first (a proxy appends a line or an entry),
     * each read right to left in place: no copy, so no truncation */
    unsigned n = 0;
    while (mx_http_req_header_n(r, "X-Forwarded-For", n))
        n++;
    while (n-- > 0) {
        const char *line = mx_http_req_header_n(r, "X-Forwarded-For", n);
        const char *e = line + strlen(line);
        for (;;) {
            const char *s = e;
            while (s > line && s[-1] != ',')
                s--;
            if (!xff_item(s, e, ip, out, cap) || !trusted(a->app, ip))
                return; /* the client, or garbage: keep the last address we trust */
            if (s == line)
                break;
            e = s - 1;
        }
    }
}

/* The rate-limit bucket of a client address: IPv4 as is (also when
 * IPv4-mapped), IPv6 per /64 (one subscriber's whole prefix). */
static void ip_bucket(const char *ip, char *out, size_t cap)
{
    uint8_t b[16];
    static const uint8_t v4map[12] = {[10] = 0xff, [11] = 0xff};
    char txt[INET6_ADDRSTRLEN];
    if (!parse_ip(ip, b)) {
        snprintf(out, cap, "ip:%s", ip[0] ? ip : "unknown");
    } else if (memcmp(b, v4map, 12) == 0) {
        inet_ntop(AF_INET, b + 12, txt, sizeof txt);
        snprintf(out, cap, "ip:%s", txt);
    } else {
        memset(b + 8, 0, 8);
        inet_ntop(AF_INET6, b, txt, sizeof txt);
        snprintf(out, cap, "ip:%s/64", txt);
    }
}

/* ---- bearer tokens ---- */

static const uint8_t *secret(const struct acc *a, size_t *len)
{
    *len = a->app->o.jwt_secret ? strlen(a->app->o.jwt_secret) : 0;
    return (const uint8_t *)a->app->o.jwt_secret;
}

/* The key of fingerprints: MX_FINGERPRINT_SECRET, as the seed keeps it
 * apart from the JWT secret; the JWT secret when it is not set. */
static const uint8_t *fgp_secret(const struct acc *a, size_t *len)
{
    const char *k = a->app->o.fingerprint_secret;
    if (!k || !k[0])
        return secret(a, len);
    *len = strlen(k);
    return (const uint8_t *)k;
}

/* ---- bootstrap admins (MX_ADMIN_FINGERPRINTS) ---- */

const char *mx__app_list_item(const char **list, size_t *n)
{
    const char *s = *list;
    if (!s || !*s)
        return NULL;
    const char *e = strchr(s, ',');
    size_t len = e ? (size_t)(e - s) : strlen(s);
    *list = e ? e + 1 : s + len;
    while (len && *s == ' ') {
        s++;
        len--;
    }
    while (len && s[len - 1] == ' ')
        len--;
    *n = len;
    return s;
}

int mx__app_admins_parse(struct mx_app *app)
{
    const char *list = app->o.admin_fingerprints, *s;
    size_t n;
    app->nadmins = 0;
    while ((s = mx__app_list_item(&list, &n))) {
        if (n) {
            if (app->nadmins == MX_APP_MAX_ADMINS || n >= sizeof app->admins[0]) {
                MX_ERROR("MX_ADMIN_FINGERPRINTS: at most %d fingerprints of < %zu bytes each",
                         MX_APP_MAX_ADMINS, sizeof app->admins[0]);
                return MX_ECONFIG;
            }
            memcpy(app->admins[app->nadmins], s, n);
            app->admins[app->nadmins++][n] = '\0';
        }
    }
    return 0;
}

bool mx__app_bootstrap_admin(const struct mx_app *app, const char *fgp)
{
    for (int i = 0; i < app->nadmins; i++)
        if (strcmp(app->admins[i], fgp) == 0)
            return true;
    return false;
}

/* Verify the Authorization: Bearer token; true and *c when valid. */
bool mx__app_bearer(struct acc *a, mx_http_req_t *r, struct mx_jwt_claims *c, bool *present)
{
    const char *h = mx_http_req_header(r, "Authorization");
    *present = h != NULL;
    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return false;
    size_t sl;
    const uint8_t *sec = secret(a, &sl);
    if (!sec || sl < MX_JWT_MIN_SECRET)
        return false;
    enum mx_jwt_status st =
        mx_jwt_verify(h + 7, strlen(h + 7), sec, sl, (int64_t)(mx_unix_ms() / 1000), c);
    if (st != MX_JWT_OK) {
        CNT(auth_refused);
        MX_DEBUG("bearer token refused: %s", mx_jwt_status_name(st));
        return false;
    }
    return true;
}

void mx__app_send_json(mx_http_req_t *r, int status, struct mx_jsonw *w)
{
    if (w->err)
        mx_http_error(r, 500, "S001", "Could not build the answer");
    else
        mx_http_respond(r, status, "application/json", w->buf, w->len);
    mx_jsonw_fini(w);
}

void mx__app_upstream_error(mx_http_req_t *r, const struct mx_fetch_result *fr)
{
    char ra[16];
    snprintf(ra, sizeof ra, "%u", fr->retry_after_ms ? (fr->retry_after_ms + 999) / 1000 : 5);
    mx_http_add_header(r, "Retry-After", ra);
    mx_http_error(r, 503, fr->status == MX_ETIMEDOUT ? "S010" : "S005",
                  fr->status == MX_ETIMEDOUT ? "Upstream (Nexon Open API) timed out"
                                             : "Upstream (Nexon Open API) error");
}

void mx__app_redis_down(mx_http_req_t *r)
{
    mx_http_add_header(r, "Retry-After", "5");
    mx_http_error(r, 503, "S007", "Session store (Redis) unavailable");
}

/* ---- rate limits ---- */

struct rl_op {
    struct acc *a;
    mx_http_req_t *r;
    mx__app_next_fn next;
    char user_key[96]; /* "" when no user bucket applies */
    bool user_done;
    uint32_t cost; /* tokens this request takes from each bucket */
};

static void rl_cb(int status, const struct mx_rl_result *res, void *arg);

static void rl_continue(struct rl_op *op, uint32_t remaining)
{
    struct acc *a = op->a;
    mx_http_req_t *r = op->r;
    if (op->user_key[0] && !op->user_done) {
        op->user_done = true;
        struct mx_rl_rule user_rule = MX_RL_RULE_USER;
        user_rule.cost = op->cost;
        if (mx_ratelimit_check(a->redis, op->user_key, &user_rule, rl_cb, op) == 0)
            return;
        CNT(rl_bypassed);
    }
    char rem[16];
    snprintf(rem, sizeof rem, "%u", remaining);
    mx_http_add_header(r, "X-RateLimit-Remaining", rem);
    mx__app_next_fn next = op->next;
    free(op);
    next(r, a);
}

static void rl_cb(int status, const struct mx_rl_result *res, void *arg)
{
    struct rl_op *op = arg;
    struct acc *a = op->a;
    CNT(rl_checked);
    if (status == MX_ESTOPPED) {
        mx_http_add_header(op->r, "Retry-After", "1");
        mx_http_error(op->r, 503, "S007", "Node is stopping");
        free(op);
        return;
    }
    if (status != 0 || !res) {
        CNT(rl_bypassed); /* Redis could not decide: let it pass */
        rl_continue(op, 0);
        return;
    }
    if (!res->allowed) {
        CNT(rl_refused);
        char ra[24];
        snprintf(ra, sizeof ra, "%u",
                 (res->retry_after_ms + 999) / 1000 ? (res->retry_after_ms + 999) / 1000 : 1);
        mx_http_add_header(op->r, "Retry-After", ra);
        mx_http_add_header(op->r, "X-RateLimit-Remaining", "0");
        mx_http_error(op->r, 429, "R001", "Too many requests: rate limit exceeded");
        free(op);
        return;
    }
    rl_continue(op, res->remaining);
}

/* The per-IP check, then the user's (rl_continue). Returns what
 * mx__app_guard returns. */
static int rl_start(struct rl_op *op)
{
    struct acc *a = op->a;
    mx_http_req_t *r = op->r;
    char ip[80], key[96];
    mx__app_client_ip(a, r, ip, sizeof ip);
    ip_bucket(ip, key, sizeof key);
    struct mx_rl_rule ip_rule = MX_RL_RULE_IP;
    ip_rule.cost = op->cost;
    if (mx_ratelimit_check(a->redis, key, &ip_rule, rl_cb, op) != 0) {
        CNT(rl_bypassed);
        mx__app_next_fn next = op->next;
        free(op);
        return next(r, a);
    }
    return MX_HTTP_PENDING;
}

/* 1 when the session is live and its fingerprint is an admin now (in
 * {auth}:admins, or ARGV[2] == "1": a bootstrap admin) */
static const char admin_live_lua[] =
    "local f = redis.call('HGET', KEYS[1], 'fgp')\n"
    "if not f or f ~= ARGV[1] then return 0 end\n"
    "if ARGV[2] == '1' or redis.call('SISMEMBER', KEYS[2], f) == 1 then return 1 end\n"
    "return 0\n";

static void admin_live_cb(mx_redis_t *rd, int status, const redisReply *rep, void *arg)
{
    struct rl_op *op = arg;
    if (status == MX_ESTOPPED) {
        mx_http_error(op->r, 503, "S007", "Node is stopping");
        free(op);
    } else if (status == 0 && rep && rep->type == REDIS_REPLY_INTEGER && rep->integer == 1) {
        mx__app_next_fn next = op->next; /* a live admin session: exempt */
        struct acc *a = op->a;
        mx_http_req_t *r = op->r;
        free(op);
        next(r, a);
    } else {
        rl_start(op); /* not (or no longer) an admin: limited like anyone */
    }
}

int mx__app_guard(mx_http_req_t *r, struct acc *a, mx__app_next_fn next)
{
    return mx__app_guard_cost(r, a, next, 1);
}

int mx__app_guard_cost(mx_http_req_t *r, struct acc *a, mx__app_next_fn next, uint32_t cost)
{
    if (!a->app->o.rate_limit || !a->redis)
        return next(r, a);
    struct mx_jwt_claims c;
    bool present;
    bool user = mx__app_bearer(a, r, &c, &present);
    struct rl_op *op = calloc(1, sizeof *op);
    if (!op)
        abort();
    op->a = a;
    op->r = r;
    op->next = next;
    op->cost = cost;
    if (user)
        snprintf(op->user_key, sizeof op->user_key, "user:%s", c.fgp[0] ? c.fgp : c.sub);
    if (user && strcmp(c.role, "ADMIN") == 0 && a->s_admin_live) {
        /* the claim is only a hint: the exemption needs the live session of
         * a fingerprint that is still an admin */
        char sk[128];
        snprintf(sk, sizeof sk, "{auth}:sess:%s", c.sub);
        const char *argv[] = {sk, "{auth}:admins", c.fgp,
                              mx__app_bootstrap_admin(a->app, c.fgp) ? "1" : "0"};
        if (mx_redis_eval(a->redis, a->s_admin_live, admin_live_cb, op, 2, 4, argv, NULL) == 0)
            return MX_HTTP_PENDING;
    }
    return rl_start(op);
}

/* ---- login ---- */

struct login_ctx {
    struct acc *a;
    mx_http_req_t *r;
    char ign[72];
    char fgp[44];
    char sid[32];
    char refresh[96];
    char rt_key[96];
    char sess_key[64];
    char ocids[MAX_OCIDS * 40];
};

void mx__app_login_abort(void *ctx)
{
    free(ctx);
}

static void sha256_hex(const char *s, char out[65])
{
    uint8_t d[32];
    SHA256((const unsigned char *)s, strlen(s), d);
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static void write_tokens(struct acc *a, mx_http_req_t *r, const char *sid, const char *role,
                         const char *fgp, const char *refresh)
{
    struct mx_jwt_claims c = {0};
    snprintf(c.sub, sizeof c.sub, "%s", sid);
    snprintf(c.fgp, sizeof c.fgp, "%s", fgp);
    snprintf(c.role, sizeof c.role, "%s", role);
    c.iat = (int64_t)(mx_unix_ms() / 1000);
    c.exp = c.iat + a->app->o.access_ttl_s;
    char tok[MX_JWT_MAX_TOKEN];
    size_t sl;
    const uint8_t *sec = secret(a, &sl);
    if (mx_jwt_sign(&c, sec, sl, tok, sizeof tok) != 0) {
        mx_http_error(r, 500, "S001", "Could not sign the token");
        return;
    }
    struct mx_jsonw w;
    mx_jsonw_init(&w, 8192);
    mx_jsonw_obj_open(&w);
    mx_jsonw_kbool(&w, "success", true);
    mx_jsonw_key(&w, "data");
    mx_jsonw_obj_open(&w);
    mx_jsonw_kstr(&w, "accessToken", tok);
    /* the seed names it expiresIn at login and accessExpiresIn at refresh:
     * both, on both */
    mx_jsonw_kint(&w, "accessExpiresIn", a->app->o.access_ttl_s);
    mx_jsonw_kint(&w, "expiresIn", a->app->o.access_ttl_s);
    mx_jsonw_kstr(&w, "role", role);
    mx_jsonw_kstr(&w, "fingerprint", fgp);
    mx_jsonw_kstr(&w, "refreshToken", refresh);
    mx_jsonw_kint(&w, "refreshExpiresIn", a->app->o.refresh_ttl_s);
    mx_jsonw_obj_close(&w);
    mx_jsonw_obj_close(&w);
    mx__app_send_json(r, 200, &w);
}

/* KEYS: session, refresh token, admins, the account's session set.
 * ARGV: ign, fgp, ocids, refresh TTL, sid, session TTL, "1" = bootstrap
 * admin, now (ms), max sessions. Sessions are ranked by login (strictly
 * increasing, even within one millisecond); the oldest past the cap are
 * deleted (their refresh tokens then find no session: A013). */
static const char login_lua[] =
    "local role = 'USER'\n"
    "if ARGV[7] == '1' or redis.call('SISMEMBER', KEYS[3], ARGV[2]) == 1 then role = 'ADMIN' end\n"
    "redis.call('HSET', KEYS[1], 'ign', ARGV[1], 'fgp', ARGV[2], 'ocids', ARGV[3], 'role', role)\n"
    "redis.call('EXPIRE', KEYS[1], ARGV[6])\n"
    "redis.call('SET', KEYS[2], ARGV[5] .. '|live', 'EX', ARGV[4])\n"
    "local top = redis.call('ZREVRANGE', KEYS[4], 0, 0, 'WITHSCORES')\n"
    "local at = math.max(tonumber(ARGV[8]), (tonumber(top[2]) or 0) + 1)\n"
    "redis.call('ZADD', KEYS[4], at, ARGV[5])\n"
    "redis.call('EXPIRE', KEYS[4], ARGV[4])\n"
    "local over = redis.call('ZCARD', KEYS[4]) - tonumber(ARGV[9])\n"
    "if over > 0 then\n"
    "  for _, sid in ipairs(redis.call('ZRANGE', KEYS[4], 0, over - 1)) do\n"
    "    redis.call('DEL', '{auth}:sess:' .. sid)\n"
    "  end\n"
    "  redis.call('ZREMRANGEBYRANK', KEYS[4], 0, over - 1)\n"
    "end\n"
    "return role\n";

static void login_stored(mx_redis_t *rd, int status, const redisReply *rep, void *arg)
{
    struct login_ctx *lc = arg;
    struct acc *a = lc->a;
    if (status == MX_ESTOPPED) {
        mx_http_error(lc->r, 503, "S007", "Node is stopping");
    } else if (status != 0 || !rep || rep->type != REDIS_REPLY_STRING) {
        CNT(login_failures);
        mx__app_redis_down(lc->r);
    } else {
        CNT(logins);
        write_tokens(a, lc->r, lc->sid, rep->str, lc->fgp, lc->refresh);
    }
    free(lc);
}

void mx__app_login_reply(struct acc *a, mx_http_req_t *r, void *ctx, struct mx_msg *m)
{
    struct login_ctx *lc = ctx;
    struct mx_fetch_result fr;
    if (m->env.type == MX_T_sys_timeout) {
        mx_http_add_header(r, "Retry-After", "5");
        mx_http_error(r, 503, "S010", "Upstream (Nexon Open API) timed out");
        goto out;
    }
    if (mx_fetch_reply_read(m, &fr) != 0) {
        mx_http_error(r, 500, "S001", "Unreadable reply from the fetcher");
        goto out;
    }
    if (fr.status == MX_EINVAL || fr.status == MX_ENOTFOUND) {
        CNT(login_failures);
        mx_http_error(r, 401, "A001", "Invalid API key");
        goto out;
    }
    if (fr.status != 0 || !fr.body) {
        mx__app_upstream_error(r, &fr);
        goto out;
    }
    struct mx_jr_character *chars = calloc(MAX_OCIDS, sizeof *chars);
    if (!chars)
        abort();
    size_t n = 0, total = 0;
    bool mine = false;
    if (mx_jsonr_character_list(fr.body, fr.body_len, chars, MAX_OCIDS, &n, &total, NULL, 0) == 0) {
        size_t o = 0;
        for (size_t i = 0; i < n; i++) {
            if (strcasecmp(chars[i].name, lc->ign) == 0) /* as the seed compares */
                mine = true;
            int k =
                snprintf(lc->ocids + o, sizeof lc->ocids - o, "%s%s", o ? "," : "", chars[i].ocid);
            if (k > 0 && (size_t)k < sizeof lc->ocids - o)
                o += (size_t)k;
        }
    }
    free(chars);
    if (!mine) {
        CNT(login_failures);
        mx_http_error(r, 403, "A002", "userIgn is not a character of this API key's account");
        goto out;
    }
    if (!a->redis || !mx_redis_connected(a->redis)) {
        mx__app_redis_down(r);
        goto out;
    }
    char hash[65];
    sha256_hex(lc->refresh, hash);
    snprintf(lc->rt_key, sizeof lc->rt_key, "{auth}:rt:%s", hash);
    snprintf(lc->sess_key, sizeof lc->sess_key, "{auth}:sess:%s", lc->sid);
    char ttl[16], sttl[16], now[24], cap[16], fsess[80];
    snprintf(ttl, sizeof ttl, "%u", a->app->o.refresh_ttl_s);
    snprintf(sttl, sizeof sttl, "%u", a->app->o.session_ttl_s);
    snprintf(now, sizeof now, "%llu", (unsigned long long)mx_unix_ms());
    snprintf(cap, sizeof cap, "%u", a->app->o.max_sessions ? a->app->o.max_sessions : 10);
    snprintf(fsess, sizeof fsess, "{auth}:fsess:%s", lc->fgp);
    const char *argv[] = {lc->sess_key,
                          lc->rt_key,
                          "{auth}:admins",
                          fsess,
                          lc->ign,
                          lc->fgp,
                          lc->ocids,
                          ttl,
                          lc->sid,
                          sttl,
                          mx__app_bootstrap_admin(a->app, lc->fgp) ? "1" : "0",
                          now,
                          cap};
    lc->r = r;
    if (!a->s_login ||
        mx_redis_eval(a->redis, a->s_login, login_stored, lc, 4, 13, argv, NULL) != 0) {
        mx__app_redis_down(r);
        goto out;
    }
    return; /* login_stored answers and frees lc */
out:
    free(lc);
}

static int login_next(mx_http_req_t *r, struct acc *a)
{
    size_t blen;
    const uint8_t *body = mx_http_req_body(r, &blen);
    char key[MX_FETCH_KEY_MAX + 1], ign[72], err[160];
    struct mx_jr_field f[] = {
        {.key = "apiKey", .kind = MX_JR_STR, .required = true, .buf = key, .cap = sizeof key},
        {.key = "userIgn", .kind = MX_JR_STR, .required = true, .buf = ign, .cap = sizeof ign},
    };
    int rc = body ? mx_jsonr_object((const char *)body, blen, f, 2, err, sizeof err) : MX_EDECODE;
    if (rc != 0 || f[0].len == 0 || f[1].len == 0) {
        mx_http_error(r, 400, "C001",
                      rc == 0 ? "apiKey and userIgn must not be empty"
                      : !body ? "Body must be JSON: {\"apiKey\": ..., \"userIgn\": ...}"
                              : err);
        return MX_HTTP_DONE;
    }
    if (!a->redis || !mx_redis_connected(a->redis)) {
        mx__app_redis_down(r);
        return MX_HTTP_DONE;
    }
    struct mx_addr fetcher;
    if (mx_whereis(a->app->sys, MX_FETCH_NAME, &fetcher) != 0) {
        mx_http_error(r, 503, "S007", "No fetcher running on this node");
        return MX_HTTP_DONE;
    }
    struct login_ctx *lc = calloc(1, sizeof *lc);
    if (!lc)
        abort();
    lc->a = a;
    snprintf(lc->ign, sizeof lc->ign, "%s", ign);
    size_t sl;
    const uint8_t *sec = fgp_secret(a, &sl);
    mx_jwt_fingerprint(sec, sl, key, f[0].len, lc->fgp);
    char rnd[64];
    if (mx_random_token(SID_BYTES, lc->sid, sizeof lc->sid) != 0 ||
        mx_random_token(32, rnd, sizeof rnd) != 0) {
        free(lc);
        mx_http_error(r, 500, "S001", "No randomness");
        return MX_HTTP_DONE;
    }
    snprintf(lc->refresh, sizeof lc->refresh, "%s.%s", lc->sid, rnd);
    struct mx_msg *m;
    uint64_t corr;
    if (mx_fetch_request_new(MX_FETCH_LIST, NULL, key, false, &m) != 0) {
        free(lc);
        mx_http_error(r, 400, "C001", "apiKey is too long");
        return MX_HTTP_DONE;
    }
    if (mx_http_request(r, fetcher, m, a->app->o.cache_timeout_ms, &corr) != 0) {
        mx_msg_free(m);
        free(lc);
        mx_http_add_header(r, "Retry-After", "1");
        mx_http_error(r, 503, "S007", "Fetcher busy");
        return MX_HTTP_DONE;
    }
    if (!mx__app_pend_put(a, corr, r, PEND_LOGIN, lc)) {
        /* the reply will find no entry and be ignored */
        free(lc);
        mx_http_add_header(r, "Retry-After", "1");
        mx_http_error(r, 503, "S007", "Too many requests in progress on this node");
        return MX_HTTP_DONE;
    }
    return MX_HTTP_PENDING;
}

int mx__app_login(mx_http_req_t *r, void *st)
{
    return mx__app_guard(r, st, login_next);
}

/* ---- refresh ---- */

static const char refresh_lua[] =
    "local v = redis.call('GET', KEYS[1])\n"
    "if not v then return {'A010'} end\n"
    "local sid, state = string.match(v, '^(.*)|(%a+)$')\n"
    "if sid ~= ARGV[1] then return {'A010'} end\n"
    "if state ~= 'live' then redis.call('DEL', KEYS[3]) return {'A012'} end\n"
    "if redis.call('EXISTS', KEYS[3]) == 0 then return {'A013'} end\n"
    "redis.call('SET', KEYS[1], sid .. '|used', 'KEEPTTL')\n"
    "redis.call('SET', KEYS[2], sid .. '|live', 'EX', ARGV[2])\n"
    "redis.call('EXPIRE', KEYS[3], ARGV[3])\n"
    "local f = redis.call('HGET', KEYS[3], 'fgp') or ''\n"
    "local role = 'USER'\n"
    "if f ~= '' then\n"
    "  if redis.call('SISMEMBER', KEYS[4], f) == 1 then role = 'ADMIN' end\n"
    "  for i = 4, #ARGV do if ARGV[i] == f then role = 'ADMIN' end end\n"
    "  redis.call('EXPIRE', '{auth}:fsess:' .. f, ARGV[2])\n"
    "end\n"
    "redis.call('HSET', KEYS[3], 'role', role)\n"
    "return {'OK', role, f}\n";

struct refresh_ctx {
    struct acc *a;
    mx_http_req_t *r;
    char sid[32];
    char next[96];
};

static void refreshed(mx_redis_t *rd, int status, const redisReply *rep, void *arg)
{
    struct refresh_ctx *rc = arg;
    struct acc *a = rc->a;
    if (status == MX_ESTOPPED) {
        mx_http_error(rc->r, 503, "S007", "Node is stopping");
    } else if (status != 0 || !rep || rep->type != REDIS_REPLY_ARRAY || rep->elements < 1 ||
               rep->element[0]->type != REDIS_REPLY_STRING) {
        mx__app_redis_down(rc->r);
    } else if (strcmp(rep->element[0]->str, "OK") == 0 && rep->elements >= 3) {
        CNT(refreshes);
        write_tokens(a, rc->r, rc->sid, rep->element[1]->str ? rep->element[1]->str : "USER",
                     rep->element[2]->str ? rep->element[2]->str : "", rc->next);
    } else {
        const char *code = rep->element[0]->str;
        const char *msg = strcmp(code, "A012") == 0
                              ? "Refresh token reused: every token of this session is revoked"
                          : strcmp(code, "A013") == 0 ? "Session revoked or expired"
                                                      : "Refresh token unknown or expired";
        if (strcmp(code, "A012") == 0) {
            CNT(refresh_reuse);
            MX_WARN("refresh token reuse: session %s revoked", rc->sid);
        }
        mx_http_error(rc->r, 401, code, msg);
    }
    free(rc);
}

static int refresh_next(mx_http_req_t *r, struct acc *a)
{
    size_t blen;
    const uint8_t *body = mx_http_req_body(r, &blen);
    char tok[128];
    struct mx_jr_field f[] = {
        {.key = "refreshToken", .kind = MX_JR_STR, .required = true, .buf = tok, .cap = sizeof tok},
    };
    const char *dot;
    /* as the seed: a missing or blank token fails validation (400 C001); a
     * token that cannot be ours is as unknown as one Redis lacks (A010) */
    if (!body || mx_jsonr_object((const char *)body, blen, f, 1, NULL, 0) != 0 ||
        tok[strspn(tok, " \t\r\n")] == '\0') {
        mx_http_error(r, 400, "C001", "refreshToken is required");
        return MX_HTTP_DONE;
    }
    if (!(dot = strchr(tok, '.')) || dot == tok || (size_t)(dot - tok) >= 32 || !dot[1]) {
        mx_http_error(r, 401, "A010", "Refresh token invalid");
        return MX_HTTP_DONE;
    }
    if (!a->redis || !mx_redis_connected(a->redis)) {
        mx__app_redis_down(r);
        return MX_HTTP_DONE;
    }
    struct refresh_ctx *rc = calloc(1, sizeof *rc);
    if (!rc)
        abort();
    rc->a = a;
    rc->r = r;
    memcpy(rc->sid, tok, (size_t)(dot - tok));
    char rnd[64];
    if (mx_random_token(32, rnd, sizeof rnd) != 0) {
        free(rc);
        mx_http_error(r, 500, "S001", "No randomness");
        return MX_HTTP_DONE;
    }
    snprintf(rc->next, sizeof rc->next, "%s.%s", rc->sid, rnd);
    char oldh[65], newh[65], k1[96], k2[96], k3[64], ttl[16];
    sha256_hex(tok, oldh);
    sha256_hex(rc->next, newh);
    snprintf(k1, sizeof k1, "{auth}:rt:%s", oldh);
    snprintf(k2, sizeof k2, "{auth}:rt:%s", newh);
    snprintf(k3, sizeof k3, "{auth}:sess:%s", rc->sid);
    char sttl[16];
    snprintf(ttl, sizeof ttl, "%u", a->app->o.refresh_ttl_s);
    snprintf(sttl, sizeof sttl, "%u", a->app->o.session_ttl_s);
    /* ARGV 4..: the bootstrap admins, who are ADMIN without {auth}:admins */
    const char *argv[7 + MX_APP_MAX_ADMINS] = {k1, k2, k3, "{auth}:admins", rc->sid, ttl, sttl};
    int argc = 7;
    for (int i = 0; i < a->app->nadmins && i < MX_APP_MAX_ADMINS; i++)
        argv[argc++] = a->app->admins[i];
    if (!a->s_refresh ||
        mx_redis_eval(a->redis, a->s_refresh, refreshed, rc, 4, argc, argv, NULL) != 0) {
        free(rc);
        mx__app_redis_down(r);
        return MX_HTTP_DONE;
    }
    return MX_HTTP_PENDING;
}

int mx__app_refresh(mx_http_req_t *r, void *st)
{
    return mx__app_guard(r, st, refresh_next);
}

/* ---- session-checked routes: me, logout, admin ---- */

enum sess_op { OP_ME, OP_LOGOUT, OP_ADMIN, OP_USER /* outbox: mx__app_with_user */ };

struct sess_ctx {
    struct acc *a;
    mx_http_req_t *r;
    enum sess_op op;
    mx__app_user_fn user_fn; /* OP_USER */
    struct mx_jwt_claims c;
    char key[64];
    int admin_op; /* ADM_*: what admin_done answers */
    char fp[64];  /* ADM_ADD / ADM_REMOVE: the fingerprint */
};

enum { ADM_LIST, ADM_ADD, ADM_REMOVE };

/* The seed's ApiResponse failure: {"success":false,"error":{code,message}}. */
static void api_fail(mx_http_req_t *r, int status, const char *code, const char *message)
{
    struct mx_jsonw w;
    mx_jsonw_init(&w, 1024);
    mx_jsonw_obj_open(&w);
    mx_jsonw_kbool(&w, "success", false);
    mx_jsonw_key(&w, "error");
    mx_jsonw_obj_open(&w);
    mx_jsonw_kstr(&w, "code", code);
    mx_jsonw_kstr(&w, "message", message);
    mx_jsonw_obj_close(&w);
    mx_jsonw_obj_close(&w);
    mx__app_send_json(r, status, &w);
}

/* "abcd****wxyz", as the seed masks fingerprints in its messages. */
static void mask_fp(const char *fp, char out[16])
{
    size_t n = strlen(fp);
    if (n <= 8)
        snprintf(out, 16, "****");
    else
        snprintf(out, 16, "%.4s****%s", fp, fp + n - 4);
}

static void admin_done(mx_redis_t *rd, int status, const redisReply *rep, void *arg);

static void admin_route(struct sess_ctx *sc)
{
    mx_http_req_t *r = sc->r;
    struct acc *a = sc->a;
    const char *rest = mx_http_req_param(r, "**");
    const char *method = mx_http_req_method(r);
    int rc = -1;
    if (rest && strcmp(rest, "admins") == 0 && strcmp(method, "GET") == 0) {
        sc->admin_op = ADM_LIST;
        rc = mx_redis_command(a->redis, admin_done, sc, "SMEMBERS %s", "{auth}:admins");
    } else if (rest && strcmp(rest, "admins") == 0 && strcmp(method, "POST") == 0) {
        size_t blen;
        const uint8_t *body = mx_http_req_body(r, &blen);
        char fp[64];
        struct mx_jr_field f[] = {
            {.key = "fingerprint",
             .kind = MX_JR_STR,
             .required = true,
             .buf = fp,
             .cap = sizeof fp},
        };
        if (!body || mx_jsonr_object((const char *)body, blen, f, 1, NULL, 0) != 0 || !fp[0]) {
            mx_http_error(r, 400, "C001", "Body must be {\"fingerprint\": \"...\"}");
            free(sc);
            return;
        }
        sc->admin_op = ADM_ADD;
        snprintf(sc->fp, sizeof sc->fp, "%s", fp);
        rc = mx_redis_command(a->redis, admin_done, sc, "SADD %s %s", "{auth}:admins", fp);
    } else if (rest && strncmp(rest, "admins/", 7) == 0 && rest[7] &&
               strcmp(method, "DELETE") == 0) {
        const char *fp = rest + 7;
        if (strcmp(fp, sc->c.fgp) == 0) {
            api_fail(r, 400, "SELF_REMOVAL_NOT_ALLOWED", "You cannot remove your own admin role");
            free(sc);
            return;
        }
        if (mx__app_bootstrap_admin(a->app, fp)) {
            api_fail(r, 400, "BOOTSTRAP_ADMIN",
                     "A bootstrap admin (MX_ADMIN_FINGERPRINTS) cannot be removed");
            free(sc);
            return;
        }
        sc->admin_op = ADM_REMOVE;
        snprintf(sc->fp, sizeof sc->fp, "%s", fp);
        rc = mx_redis_command(a->redis, admin_done, sc, "SREM %s %s", "{auth}:admins", fp);
    } else if (rest && mx__app_admin_outbox(a, r, rest, method)) {
        free(sc); /* outbox: DLQ admin API and points (app_outbox.c) answered or took r */
        return;
    } else {
        mx_http_error(r, 404, "NOT_FOUND", "No such admin resource");
        free(sc);
        return;
    }
    if (rc != 0) {
        mx__app_redis_down(r);
        free(sc);
    }
}

static void admin_done(mx_redis_t *rd, int status, const redisReply *rep, void *arg)
{
    struct sess_ctx *sc = arg;
    if (status != 0 || !rep) {
        if (status == MX_ESTOPPED)
            mx_http_error(sc->r, 503, "S007", "Node is stopping");
        else
            mx__app_redis_down(sc->r);
        free(sc);
        return;
    }
    char masked[16], msg[96];
    mask_fp(sc->fp, masked);
    if (sc->admin_op == ADM_REMOVE && rep->type == REDIS_REPLY_INTEGER && rep->integer == 0) {
        /* the seed answers a fingerprint that was no admin as it answers a
         * bootstrap admin: 400 BOOTSTRAP_ADMIN */
        api_fail(sc->r, 400, "BOOTSTRAP_ADMIN", "Not a removable admin (not in the admin list)");
        free(sc);
        return;
    }
    struct mx_jsonw w;
    mx_jsonw_init(&w, 1 << 20);
    mx_jsonw_obj_open(&w);
    mx_jsonw_kbool(&w, "success", true);
    mx_jsonw_key(&w, "data");
    if (sc->admin_op == ADM_LIST) {
        /* the bootstrap list, then the Redis set without repeating it */
        mx_jsonw_arr_open(&w);
        for (int i = 0; i < sc->a->app->nadmins; i++)
            mx_jsonw_str(&w, sc->a->app->admins[i]);
        for (size_t i = 0; rep->type == REDIS_REPLY_ARRAY && i < rep->elements; i++)
            if (rep->element[i]->type == REDIS_REPLY_STRING &&
                !mx__app_bootstrap_admin(sc->a->app, rep->element[i]->str))
                mx_jsonw_strn(&w, rep->element[i]->str, rep->element[i]->len);
        mx_jsonw_arr_close(&w);
    } else {
        snprintf(msg, sizeof msg, "Admin %s successfully: %s",
                 sc->admin_op == ADM_ADD ? "added" : "removed", masked);
        mx_jsonw_str(&w, msg);
    }
    mx_jsonw_obj_close(&w);
    mx__app_send_json(sc->r, 200, &w);
    free(sc);
}

static void logged_out(mx_redis_t *rd, int status, const redisReply *rep, void *arg)
{
    mx_http_req_t *r = arg;
    if (status == MX_ESTOPPED) {
        mx_http_error(r, 503, "S007", "Node is stopping");
    } else if (status != 0) {
        mx__app_redis_down(r);
    } else {
        const char *ok = "{\"success\":true}"; /* the seed's wrapper omits a null data */
        mx_http_respond(r, 200, "application/json", ok, strlen(ok));
    }
}

static void admin_member(mx_redis_t *rd, int status, const redisReply *rep, void *arg)
{
    struct sess_ctx *sc = arg;
    if (status == MX_ESTOPPED) {
        mx_http_error(sc->r, 503, "S007", "Node is stopping");
    } else if (status != 0 || !rep || rep->type != REDIS_REPLY_INTEGER) {
        mx__app_redis_down(sc->r);
    } else if (rep->integer != 1) {
        mx_http_error(sc->r, 403, "FORBIDDEN", "Admin role required");
    } else {
        admin_route(sc); /* answers and frees sc */
        return;
    }
    free(sc);
}

static void sess_loaded(mx_redis_t *rd, int status, const redisReply *rep, void *arg)
{
    struct sess_ctx *sc = arg;
    struct acc *a = sc->a;
    mx_http_req_t *r = sc->r;
    if (status == MX_ESTOPPED) {
        mx_http_error(r, 503, "S007", "Node is stopping");
        goto out;
    }
    if (status != 0 || !rep || rep->type != REDIS_REPLY_ARRAY || rep->elements != 4) {
        mx__app_redis_down(r);
        goto out;
    }
    redisReply **e = rep->element;
    if (e[0]->type != REDIS_REPLY_STRING || e[1]->type != REDIS_REPLY_STRING ||
        strcmp(e[1]->str, sc->c.fgp) != 0) {
        CNT(auth_refused);
        mx_http_error(r, 401, "UNAUTHORIZED", "Session revoked or expired");
        goto out;
    }
    const char *role = e[2]->type == REDIS_REPLY_STRING ? e[2]->str : "USER";
    CNT(auth_ok);
    if (sc->op == OP_ADMIN) {
        /* current membership, not the role the session was given */
        if (mx__app_bootstrap_admin(a->app, sc->c.fgp)) {
            admin_route(sc); /* answers and frees sc */
            return;
        }
        if (mx_redis_command(a->redis, admin_member, sc, "SISMEMBER %s %s", "{auth}:admins",
                             sc->c.fgp) != 0) {
            mx__app_redis_down(r);
            goto out;
        }
        return;
    }
    if (sc->op == OP_USER) { /* outbox: a signed-in user's route */
        sc->user_fn(a, r, e[3]->type == REDIS_REPLY_STRING ? e[3]->str : "", sc->c.fgp);
        goto out;
    }
    if (sc->op == OP_LOGOUT) {
        /* answered once Redis deleted the session: a token must not work
         * after its logout answered */
        if (mx_redis_command(a->redis, logged_out, r, "DEL %s", sc->key) != 0)
            mx__app_redis_down(r);
        goto out;
    }
    struct mx_jsonw w;
    mx_jsonw_init(&w, 16384);
    mx_jsonw_obj_open(&w);
    mx_jsonw_kbool(&w, "success", true);
    mx_jsonw_key(&w, "data");
    mx_jsonw_obj_open(&w);
    mx_jsonw_kstr(&w, "sessionId", sc->c.sub);
    mx_jsonw_kstr(&w, "fingerprint", sc->c.fgp);
    mx_jsonw_kstr(&w, "role", role);
    mx_jsonw_key(&w, "userIgn");
    mx_jsonw_strn(&w, e[0]->str, e[0]->len);
    int nchars = 0;
    mx_jsonw_key(&w, "ocids");
    mx_jsonw_arr_open(&w);
    if (e[3]->type == REDIS_REPLY_STRING) {
        const char *p = e[3]->str;
        while (*p) {
            const char *c = strchr(p, ',');
            size_t n = c ? (size_t)(c - p) : strlen(p);
            if (n) {
                mx_jsonw_strn(&w, p, n);
                nchars++;
            }
            p += n + (c ? 1 : 0);
        }
    }
    mx_jsonw_arr_close(&w);
    mx_jsonw_kint(&w, "characterCount", nchars);
    mx_jsonw_kint(&w, "expiresAt", sc->c.exp);
    mx_jsonw_obj_close(&w);
    mx_jsonw_obj_close(&w);
    mx__app_send_json(r, 200, &w);
out:
    free(sc);
}

static int session_route_fn(mx_http_req_t *r, struct acc *a, enum sess_op op, mx__app_user_fn fn)
{
    struct sess_ctx *sc = calloc(1, sizeof *sc);
    if (!sc)
        abort();
    bool present;
    if (!mx__app_bearer(a, r, &sc->c, &present)) {
        free(sc);
        mx_http_error(r, 401, "UNAUTHORIZED",
                      present ? "Invalid or expired token" : "Bearer token required");
        return MX_HTTP_DONE;
    }
    if (!a->redis || !mx_redis_connected(a->redis)) {
        free(sc);
        mx__app_redis_down(r);
        return MX_HTTP_DONE;
    }
    sc->a = a;
    sc->r = r;
    sc->op = op;
    sc->user_fn = fn;
    snprintf(sc->key, sizeof sc->key, "{auth}:sess:%s", sc->c.sub);
    /* the session's idle lifetime starts again; sent before the read on the
     * same connection, so it is done before the answer leaves */
    if (op != OP_LOGOUT)
        mx__app_session_touch(a, sc->c.sub);
    if (mx_redis_command(a->redis, sess_loaded, sc, "HMGET %s ign fgp role ocids", sc->key) != 0) {
        free(sc);
        mx__app_redis_down(r);
        return MX_HTTP_DONE;
    }
    return MX_HTTP_PENDING;
}

static int session_route(mx_http_req_t *r, struct acc *a, enum sess_op op)
{
    return session_route_fn(r, a, op, NULL);
}

static int me_next(mx_http_req_t *r, struct acc *a)
{
    return session_route(r, a, OP_ME);
}

static int logout_next(mx_http_req_t *r, struct acc *a)
{
    return session_route(r, a, OP_LOGOUT);
}

static int admin_next(mx_http_req_t *r, struct acc *a)
{
    return session_route(r, a, OP_ADMIN);
}

/* outbox: session-checked routes of app_outbox.c */
int mx__app_with_user(mx_http_req_t *r, struct acc *a, mx__app_user_fn fn)
{
    return session_route_fn(r, a, OP_USER, fn);
}

int mx__app_me(mx_http_req_t *r, void *st)
{
    return mx__app_guard(r, st, me_next);
}

int mx__app_logout(mx_http_req_t *r, void *st)
{
    return mx__app_guard(r, st, logout_next);
}

int mx__app_admin(mx_http_req_t *r, void *st)
{
    /* live admin sessions are exempt; anyone else is limited before the
     * session lookup, so a USER token cannot flood Redis here */
    return mx__app_guard(r, st, admin_next);
}

/* The session's idle lifetime starts again (the seed's sliding 30 min):
 * fire and forget - a lost EXPIRE only shortens the session. The token's
 * signature is checked before, so only a real session id gets here. */
void mx__app_session_touch(struct acc *a, const char *sid)
{
    char key[112];
    snprintf(key, sizeof key, "{auth}:sess:%s", sid);
    if (a->redis)
        mx_redis_command(a->redis, NULL, NULL, "EXPIRE %s %u", key, a->app->o.session_ttl_s);
}

/* ---- lifecycle ---- */

int mx__app_auth_init(struct acc *a)
{
    const char *url = a->app->o.redis_url;
    if (!url || !url[0])
        return 0;
    struct mx_redis_opts ro = {.name = "redis-http", .timeout_ms = 500};
    int rc = mx_redis_open(mx_actor_loop(a->self), url, &ro, &a->redis);
    if (rc) {
        MX_ERROR("MX_REDIS_URL: cannot use %s: %s", url, mx_strerror(rc));
        return rc;
    }
    mx_redis_script(a->redis, refresh_lua, &a->s_refresh);
    mx_redis_script(a->redis, login_lua, &a->s_login);
    mx_redis_script(a->redis, admin_live_lua, &a->s_admin_live);
    return 0;
}

void mx__app_auth_fini(struct acc *a)
{
    if (a->redis) {
        /* pending commands get MX_ESTOPPED now: their callbacks answer */
        mx_redis_close(a->redis, NULL, NULL);
        a->redis = NULL;
    }
}
