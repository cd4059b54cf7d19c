/* app_likes.c - the like routes and the live like count of V1 records.
 *
 *   POST /api/v2/characters/{ign}/like          toggle (Bearer, USER or ADMIN)
 *   GET  /api/v2/characters/{ign}/like/status   Bearer optional
 *
 * A toggle goes: token -> session (Redis: the account's ocids) -> the
 * target's record through its cache shard (the ocid; 404 C002 for an
 * unknown name) -> self-like check (403 A003 when the target is one of the
 * caller's own characters) -> the like-buffer actor of the target's
 * partition, which answers after Redis acknowledged. The liker is the
 * seed's account id (mx_likes_account_id over the session's ocids).
 * A V1 record asks the same actor for the live count before it is sent.
 * Everything here runs on the acceptor's thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app_int.h"
#include "mx_cache.h"
#include "mx_err.h"
#include "mx_jsonw.h"
#include "mx_likes.h"
#include "mx_log.h"
#include "mx_proto.h"

#define LIKE_TIMEOUT_MS 5000
#define OCIDS_MAX (64 * 40)

struct like_ctx {
    struct acc *a;
    mx_http_req_t *r;
    uint32_t op; /* MX_LIKE_TOGGLE / MX_LIKE_STATUS; 0 = a V1 record */
    bool signed_in;
    char acct[MX_LIKES_ACCOUNT_LEN + 1];
    char ocids[OCIDS_MAX]; /* the session's, comma-separated */
    char ign[72];
    char ocid[MX_LIKES_OCID_MAX + 1];
    char sess_key[64];
    struct mx_jwt_claims c;
    /* V1: the record waiting for its count (one reference) */
    struct mx_character_rec *rec;
    bool stale;
};

void mx__app_like_abort(void *ctx)
{
    struct like_ctx *lc = ctx;
    mx_character_rec_unref(lc->rec);
    free(lc);
}

static void unauthorized(mx_http_req_t *r, const char *msg)
{
    mx_http_error(r, 401, "UNAUTHORIZED", msg);
}

static void like_unavailable(mx_http_req_t *r, const char *why)
{
    mx_http_add_header(r, "Retry-After", "5");
    mx_http_error(r, 503, "S007", why);
}

static void answer_like(mx_http_req_t *r, bool liked, int64_t count)
{
    char b[128];
    int n = snprintf(b, sizeof b, "{\"success\":true,\"data\":{\"liked\":%s,\"likeCount\":%lld}}",
                     liked ? "true" : "false", (long long)(count < 0 ? 0 : count));
    mx_http_respond(r, 200, "application/json", b, (size_t)n);
}

/* Send the like_req for lc's target; the answer comes back as kind. */
static bool send_like(struct like_ctx *lc, uint32_t op, const char *acct, uint8_t kind)
{
    struct acc *a = lc->a;
    size_t ol = strlen(lc->ocid);
    /* the like-buffer on this acceptor's own scheduler: no thread hop */
    int sched = mx_actor_sched(a->self);
    uint32_t idx = sched >= 0 && (uint32_t)sched < a->nlikes
                       ? (uint32_t)sched
                       : mx_likes_partition(lc->ocid, ol) % a->nlikes;
    struct mx_m_like_req q = {.op = op,
                              .ocid = {lc->ocid, (uint32_t)ol},
                              .account = {acct, (uint32_t)strlen(acct)},
                              .ign = {lc->ign, (uint32_t)strlen(lc->ign)}};
    struct mx_msg *m;
    uint64_t corr;
    if (a->n >= a->max || mx_msg_encode(MX_T_like_req, &q, &m) != 0)
        return false;
    if (mx_http_request(lc->r, a->likes[idx], m, LIKE_TIMEOUT_MS, &corr) != 0) {
        mx_msg_free(m);
        return false;
    }
    mx__app_pend_put(a, corr, lc->r, kind, lc); /* cannot fail: checked a->n */
    return true;
}

/* The target's ocid from its V1 record. */
/* the record's ocid, if the like store can use it */
static bool rec_ocid(const struct mx_character_rec *c, char *out, size_t cap)
{
    size_t n = strlen(c->ocid);
    if (n >= cap || !mx_likes_valid_ocid(c->ocid, n))
        return false;
    memcpy(out, c->ocid, n + 1);
    return true;
}

static bool ocid_in(const char *csv, const char *ocid)
{
    size_t ol = strlen(ocid);
    for (const char *p = csv; *p;) {
        const char *c = strchr(p, ',');
        size_t n = c ? (size_t)(c - p) : strlen(p);
        if (n == ol && memcmp(p, ocid, n) == 0)
            return true;
        p += n + (c ? 1 : 0);
    }
    return false;
}

/* ---- name -> ocid, kept on the acceptor ----
 * A toggle needs the target's ocid, which the cache shard of its name
 * knows: one actor hop per toggle. The acceptor keeps the answers in a
 * small direct-mapped table (OCID_SLOTS entries, OCID_TTL_MS each), well
 * inside the cache's own ocid lifetime, so the hop is made once a minute
 * per name instead of on every toggle. */

#define OCID_SLOTS 4096 /* a power of two */
#define OCID_TTL_MS 60000

struct mx__ocid_slot {
    char ign[72];
    char ocid[MX_LIKES_OCID_MAX + 1];
    int64_t until_ms; /* mx_now_ms; 0 = empty */
};

static uint32_t ocid_slot(const char *ign)
{
    uint32_t h = 2166136261u;
    for (const char *p = ign; *p; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    return h & (OCID_SLOTS - 1);
}

static bool ocid_get(struct acc *a, const char *ign, char *out, size_t cap)
{
    if (!a->ocid_cache)
        return false;
    struct mx__ocid_slot *s = &a->ocid_cache[ocid_slot(ign)];
    if (!s->until_ms || s->until_ms < mx_now_ms() || strcmp(s->ign, ign) != 0)
        return false;
    snprintf(out, cap, "%s", s->ocid);
    return true;
}

static void ocid_put(struct acc *a, const char *ign, const char *ocid)
{
    if (!a->ocid_cache && !(a->ocid_cache = calloc(OCID_SLOTS, sizeof *a->ocid_cache)))
        abort();
    if (strlen(ign) >= sizeof a->ocid_cache->ign)
        return;
    struct mx__ocid_slot *s = &a->ocid_cache[ocid_slot(ign)];
    snprintf(s->ign, sizeof s->ign, "%s", ign);
    snprintf(s->ocid, sizeof s->ocid, "%s", ocid);
    s->until_ms = mx_now_ms() + OCID_TTL_MS;
}

void mx__app_likes_fini(struct acc *a)
{
    free(a->ocid_cache);
    a->ocid_cache = NULL;
}

/* The target's ocid is in lc->ocid: the self-like check, then the
 * like-buffer. Returns MX_HTTP_PENDING (lc now waits for the like-buffer)
 * or MX_HTTP_DONE (answered; lc is still the caller's to free). */
static int target_ready(struct like_ctx *lc)
{
    mx_http_req_t *r = lc->r;
    if (lc->op == MX_LIKE_TOGGLE && ocid_in(lc->ocids, lc->ocid)) {
        mx_http_error(r, 403, "A003", "You cannot like your own character");
        return MX_HTTP_DONE;
    }
    if (!send_like(lc, lc->op, lc->signed_in ? lc->acct : "", PEND_LIKE_REP)) {
        like_unavailable(r, "Like service busy");
        return MX_HTTP_DONE;
    }
    return MX_HTTP_PENDING;
}

/* Resolve lc's target: from the acceptor's table, else through its cache
 * shard (answered in target_known). Returns MX_HTTP_PENDING or MX_HTTP_DONE
 * (the error answered; lc is the caller's to free). */
static int resolve_target(struct like_ctx *lc)
{
    if (ocid_get(lc->a, lc->ign, lc->ocid, sizeof lc->ocid))
        return target_ready(lc);
    return mx__app_ask_character(lc->a, lc->r, lc->ign, PEND_LIKE_CHAR, lc);
}

/* ---- the target's record arrived (PEND_LIKE_CHAR) ---- */

static void target_known(struct like_ctx *lc, struct mx_msg *m)
{
    mx_http_req_t *r = lc->r;
    struct acc *a = lc->a;
    /* an anonymous status of an unknown name is a zero, not a 404 (seed) */
    struct mx_m_exp_rep rep;
    if (lc->op == MX_LIKE_STATUS && !lc->signed_in && m->env.type == MX_T_exp_rep &&
        mx_msg_decode(m, &rep) == 0 && rep.status != 0 && rep.http_status == 404) {
        answer_like(r, false, 0);
        mx__app_like_abort(lc);
        return;
    }
    const void *p;
    bool stale;
    if (!mx__app_cache_ptr(a, r, m, &p, &stale)) {
        mx__app_like_abort(lc);
        return;
    }
    if (!rec_ocid(p, lc->ocid, sizeof lc->ocid)) {
        mx_http_error(r, 500, "S001", "The character record has no usable ocid");
        mx__app_like_abort(lc);
        return;
    }
    ocid_put(a, lc->ign, lc->ocid);
    if (target_ready(lc) == MX_HTTP_DONE)
        mx__app_like_abort(lc);
}

/* ---- the like-buffer answered (PEND_LIKE_REP, PEND_V1_LIKE) ---- */

static bool read_like_rep(struct mx_msg *m, struct mx_m_like_rep *rep)
{
    if (m->env.type == MX_T_sys_timeout)
        return rep->status = MX_ETIMEDOUT, true;
    return m->env.type == MX_T_like_rep && mx_msg_decode(m, rep) == 0;
}

static void like_answered(struct like_ctx *lc, struct mx_msg *m)
{
    mx_http_req_t *r = lc->r;
    struct mx_m_like_rep rep = {0};
    if (!read_like_rep(m, &rep)) {
        mx_http_error(r, 500, "S001", "Unreadable reply from the like service");
    } else if (rep.status == 0) {
        answer_like(r, rep.liked, rep.count);
    } else if (rep.status == MX_EINVAL) {
        mx_http_error(r, 400, "C001", "Invalid like request");
    } else if (rep.status == MX_EFULL) {
        mx_http_add_header(r, "Retry-After", "1");
        mx_http_error(r, 503, "S007", "Like service busy");
    } else {
        like_unavailable(r, rep.status == MX_ETIMEDOUT
                                ? "Timed out waiting for the like store"
                                : "Like store (Redis) unavailable; nothing was changed by this "
                                  "answer's request unless its status says so");
    }
    mx__app_like_abort(lc);
}

/* V1: the record with its live count. */
static void v1_answered(struct like_ctx *lc, struct mx_msg *m)
{
    struct mx_m_like_rep rep = {0};
    bool ok = read_like_rep(m, &rep) && rep.status == 0;
    if (!ok)
        MX_METRIC_INC(&lc->a->m, like_count_unknown);
    mx__app_respond_character(lc->a, lc->r, lc->rec, lc->stale, true,
                              ok ? (rep.count < 0 ? 0 : rep.count) : -1);
    mx__app_like_abort(lc);
}

void mx__app_like_reply(struct acc *a, mx_http_req_t *r, uint8_t kind, void *ctx, struct mx_msg *m)
{
    struct like_ctx *lc = ctx;
    if (kind == PEND_LIKE_CHAR)
        target_known(lc, m);
    else if (kind == PEND_LIKE_REP)
        like_answered(lc, m);
    else if (kind == PEND_V1_LIKE)
        v1_answered(lc, m);
    else
        mx__app_like_abort(lc);
}

bool mx__app_v1_live(struct acc *a, mx_http_req_t *r, const struct mx_character_rec *c, bool stale)
{
    struct like_ctx *lc = calloc(1, sizeof *lc);
    if (!lc)
        abort();
    lc->a = a;
    lc->r = r;
    if (!rec_ocid(c, lc->ocid, sizeof lc->ocid)) {
        free(lc);
        return false;
    }
    /* the record is immutable and shared: keep a reference, not a copy */
    lc->rec = mx_character_rec_ref((struct mx_character_rec *)c);
    lc->stale = stale;
    if (!send_like(lc, MX_LIKE_STATUS, "", PEND_V1_LIKE)) {
        mx__app_like_abort(lc);
        return false;
    }
    return true;
}

/* ---- the session of a toggle (or a signed-in status) ---- */

static void sess_loaded(mx_redis_t *rd, int status, const redisReply *rep, void *arg)
{
    struct like_ctx *lc = arg;
    mx_http_req_t *r = lc->r;
    if (status == MX_ESTOPPED) {
        mx_http_error(r, 503, "S007", "Node is stopping");
        goto out;
    }
    if (status != 0 || !rep || rep->type != REDIS_REPLY_ARRAY || rep->elements != 2) {
        mx__app_redis_down(r);
        goto out;
    }
    redisReply **e = rep->element;
    if (e[0]->type != REDIS_REPLY_STRING || strcmp(e[0]->str, lc->c.fgp) != 0) {
        if (lc->op == MX_LIKE_TOGGLE) {
            unauthorized(r, "Session revoked or expired");
            goto out;
        }
        lc->signed_in = false; /* a status read goes on as anonymous */
    } else {
        if (e[1]->type == REDIS_REPLY_STRING && e[1]->len < sizeof lc->ocids)
            memcpy(lc->ocids, e[1]->str, e[1]->len + 1);
        if (mx_likes_account_id(lc->ocids, lc->acct, sizeof lc->acct) != 0) {
            if (lc->op == MX_LIKE_TOGGLE) {
                unauthorized(r, "The session has no characters to like with");
                goto out;
            }
            lc->signed_in = false;
        }
    }
    if (resolve_target(lc) == MX_HTTP_PENDING)
        return;
out:
    mx__app_like_abort(lc);
}

static int like_next(mx_http_req_t *r, struct acc *a, uint32_t op)
{
    if (!a->nlikes) {
        mx_http_add_header(r, "Retry-After", "60");
        mx_http_error(r, 503, "S007", "Likes are not served by this node (no Redis configured)");
        return MX_HTTP_DONE;
    }
    const char *ign = mx_http_req_param(r, "ign");
    size_t il;
    mx__app_ign_trim(&ign, &il); /* the seed trims the name */
    if (il == 0 || il > 64) {
        mx_http_error(r, 400, "C001", "Invalid character name");
        return MX_HTTP_DONE;
    }
    struct like_ctx *lc = calloc(1, sizeof *lc);
    if (!lc)
        abort();
    lc->a = a;
    lc->r = r;
    lc->op = op;
    memcpy(lc->ign, ign, il);
    bool present;
    lc->signed_in = mx__app_bearer(a, r, &lc->c, &present);
    if (!lc->signed_in && op == MX_LIKE_TOGGLE) {
        free(lc);
        unauthorized(r, present ? "Invalid or expired token" : "Bearer token required");
        return MX_HTTP_DONE;
    }
    if (!lc->signed_in) {
        int rc = resolve_target(lc);
        if (rc != MX_HTTP_PENDING)
            free(lc);
        return rc;
    }
    if (!a->redis || !mx_redis_connected(a->redis)) {
        free(lc);
        if (op == MX_LIKE_TOGGLE) {
            mx__app_redis_down(r);
            return MX_HTTP_DONE;
        }
        /* a status read without the session store: answered as anonymous */
        lc = NULL;
        struct like_ctx *an = calloc(1, sizeof *an);
        if (!an)
            abort();
        an->a = a;
        an->r = r;
        an->op = op;
        memcpy(an->ign, ign, il);
        int rc = resolve_target(an);
        if (rc != MX_HTTP_PENDING)
            free(an);
        return rc;
    }
    snprintf(lc->sess_key, sizeof lc->sess_key, "{auth}:sess:%s", lc->c.sub);
    mx__app_session_touch(a, lc->c.sub); /* sliding session lifetime (app_auth.c) */
    if (mx_redis_command(a->redis, sess_loaded, lc, "HMGET %s fgp ocids", lc->sess_key) != 0) {
        free(lc);
        mx__app_redis_down(r);
        return MX_HTTP_DONE;
    }
    return MX_HTTP_PENDING;
}

static int toggle_next(mx_http_req_t *r, struct acc *a)
{
    return like_next(r, a, MX_LIKE_TOGGLE);
}

static int status_next(mx_http_req_t *r, struct acc *a)
{
    return like_next(r, a, MX_LIKE_STATUS);
}

int mx__app_like_toggle(mx_http_req_t *r, void *st)
{
    return mx__app_guard(r, st, toggle_next);
}

int mx__app_like_status(mx_http_req_t *r, void *st)
{
    return mx__app_guard(r, st, status_next);
}
