/* cache_load.c - the load of one key (a "flight") and the requests that
 * wait for it: the state machine from an L1 miss to the answer, through
 * L2 (cache_l2.c), L3 (cache_l3.c), the fetcher and the calculator.
 *
 * A request that misses L1 joins the flight of its key on this shard or
 * starts one; on_get (cache_actor.c) then calls mx__l2_acquire, or
 * mx__l2_force_acquire for a recalculation. Every stage waits for exactly
 * one thing: a Redis reply (found again through mx__rop, by flight id and
 * stage), a MySQL job (f->job), a request to the fetcher or calculator
 * (f->corr), a notice or a tick. "end" answers every waiter and frees the
 * flight (mx__flight_end, which also releases a latch still held);
 * "fail" is mx__finish_upstream_fail: the last L1 document marked stale
 * (end), or a calculation from stale L3 equipment (-> CALC), or 503 (end).
 *
 *  stage      event                                   next
 *  ---------  --------------------------------------  --------------------------------
 *  (new)      request, plain                          L2 (acquire script)
 *  (new)      request, recalculation                  L2 (force script)
 *  L2         value                                   end (stored in L1)
 *  L2         damaged value                           L2 once more (DEL first), then load
 *  L2         unknown-character mark                  end 404
 *  L2         latch taken / force script 1            load (latched)
 *  L2         force script 0 (one under way)         L2 (plain acquire)
 *  L2         latch held, notice came meanwhile       L2
 *  L2         latch held, waited past fetch budget    load
 *  L2         latch held                              WAIT (until its PTTL + 50 ms)
 *  L2         Redis error / no Redis                  load (redis_fallbacks)
 *  WAIT       notice "D <key>" / tick past deadline   L2
 *  load       ocid in L1                              (after ocid)
 *  load       Redis up / down                         OCID_L2 / OCID
 *  OCID_L2    valid ocid                              (after ocid)
 *  OCID_L2    miss, damaged, error                    OCID (fetch id)
 *  OCID       ocid                                    (after ocid; stored L1, L2, L3)
 *  OCID       not found                               end 404 (unknown mark L1, L2)
 *  OCID       upstream error, no stale document       OCID_L3 if L3 takes it, else fail
 *  OCID       other error, timeout                    fail
 *  OCID_L3    ocid read                               (after ocid)
 *  OCID_L3    none                                    fail
 *  (after     character record asked                  BASIC (fetch basic)
 *   ocid)     equipment in L1 (not recalculation)     CALC
 *             recalculation                           EQUIP
 *             Redis up / down                         EQ_L2 / (equipment L3)
 *  EQ_L2      valid equipment                         CALC (stored in L1)
 *  EQ_L2      miss, damaged, error                    (equipment L3)
 *  (eq. L3)   L3 takes the read / not                 EQ_L3 / EQUIP
 *  EQ_L3      fresh row, or upstream already failed   CALC
 *  EQ_L3      stale row, miss, damaged, error         EQUIP (stale row kept for fail)
 *  EQ_L3      same, upstream already failed           fail
 *  EQUIP      equipment                               CALC (stored in L1)
 *  EQUIP      error, timeout                          fail
 *  BASIC      record                                  end (stored L1, L2, L3)
 *  BASIC      error, timeout, unreadable              fail
 *  CALC       equipment document (MX_SVC_EQUIPMENT)   end (L1, L2, L3)
 *  CALC       preset missing                          end 404 no_preset
 *  CALC       unreadable equipment                    fail (equipment dropped L1, L2)
 *  CALC       built from stale equipment              end (stale, nothing stored)
 *  CALC       document, Redis down or plain load      end (L1; L2 done script, L3)
 *  CALC       document of a recalculation, Redis up   PUBLISH (done script + "I" notice)
 *  CALC       refused, or tick past the fetch budget  end 503
 *  CALC       answer without its job, not a refusal   end 500
 *  PUBLISH    script answered: receivers > acks       ACK (at most INVAL_ACK_MS)
 *  PUBLISH    script answered otherwise, or failed    end
 *  ACK        acks reach the receivers / tick late    end
 *  any        shard stopping                          end 503
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache_int.h"
#include "mx_alloc.h"
#include "mx_err.h"
#include "mx_fetch.h"
#include "mx_jsonr.h"
#include "mx_jsonw.h"
#include "mx_log.h"
#include "mx_outbox.h"
#include "mx_store.h"

/* ---- flights ---- */

/* A flight for key a request may join: any for a plain request (a
 * recalculation's result is only newer), only a recalculation for a
 * recalculation (a plain load may serve what it had before). */
struct mx__flight *mx__flight_find_key(struct mx__shard *s, const char *key, size_t klen,
                                       bool force)
{
    for (struct mx__flight *f = s->flights; f; f = f->next)
        if (f->klen == klen && memcmp(f->key, key, klen) == 0 && (!force || f->q.force))
            return f;
    return NULL;
}

struct mx__flight *mx__flight_find_corr(struct mx__shard *s, uint64_t corr)
{
    for (struct mx__flight *f = s->flights; f; f = f->next)
        if (f->corr == corr)
            return f;
    return NULL;
}

struct mx__flight *mx__flight_find_id(struct mx__shard *s, uint64_t id)
{
    for (struct mx__flight *f = s->flights; f; f = f->next)
        if (f->id == id)
            return f;
    return NULL;
}

bool mx__flight_wait(struct mx__shard *s, struct mx__flight *f, const struct mx_env *env)
{
    if (f->nw == f->capw) {
        if (f->capw >= s->o.max_waiters)
            return false;
        f->capw = f->capw ? f->capw * 2 : 4;
        if (f->capw > s->o.max_waiters)
            f->capw = s->o.max_waiters;
        f->w = realloc(f->w, f->capw * sizeof *f->w);
        if (!f->w)
            abort();
    }
    f->w[f->nw++].env = *env;
    return true;
}

void mx__flight_end(struct mx__shard *s, struct mx__flight *f)
{
    if (f->latched) /* a load that ended without storing: let the others try */
        mx__l2_done(s, f, 'x', NULL, 0, false, NULL);
    for (struct mx__flight **pp = &s->flights; *pp; pp = &(*pp)->next)
        if (*pp == f) {
            *pp = f->next;
            break;
        }
    s->nflights--;
    mx_blob_unref(f->stale_eq);
    if (f->result)
        mx_http_doc_unref(f->result);
    free(f->w);
    free(f);
}

void mx__finish_value(mx_actor_t *self, struct mx__shard *s, struct mx__flight *f,
                      struct mx_http_doc *doc, struct mx_character_rec *rec, bool stale)
{
    for (uint32_t i = 0; i < f->nw; i++)
        mx__cache_reply_value(self, &f->w[i].env, doc, rec, stale);
    mx__flight_end(s, f);
}

void mx__finish_doc(mx_actor_t *self, struct mx__shard *s, struct mx__flight *f,
                    struct mx_http_doc *doc, bool stale)
{
    mx__finish_value(self, s, f, doc, NULL, stale);
}

void mx__finish_err(mx_actor_t *self, struct mx__shard *s, struct mx__flight *f, int status,
                    uint32_t http, const char *code, const char *msg, uint32_t retry_s)
{
    INC(s, load_errors);
    for (uint32_t i = 0; i < f->nw; i++)
        mx__cache_reply_err(self, &f->w[i].env, status, http, code, msg, retry_s);
    mx__flight_end(s, f);
}

static void finish_not_found(mx_actor_t *self, struct mx__shard *s, struct mx__flight *f)
{
    char nk[KEY_MAX];
    size_t nkl = mx__l1_key(nk, 'n', f->ign, NULL);
    l1_put(s, nk, nkl, K_NEG, NULL, NULL, NULL, s->o.ttl_negative_ms);
    INC(s, not_found);
    mx__l2_done(s, f, 'n', NULL, s->o.ttl2_negative_ms, false, NULL);
    mx__finish_err(self, s, f, MX_ENOTFOUND, 404, "C002", "Character not found", 0);
}

static void start_calc(mx_actor_t *self, struct mx__shard *s, struct mx__flight *f,
                       struct mx_blob *equip);

static struct mx__centry *equip_l1_stale(struct mx__shard *s, const struct mx__flight *f);

/* Upstream trouble: the last stored value (even expired) if any, else 503. */
void mx__finish_upstream_fail(mx_actor_t *self, struct mx__shard *s, struct mx__flight *f,
                              int status, uint32_t retry_ms, const char *why)
{
    struct mx__centry *old =
        f->q.what == MX_SVC_EQUIPMENT ? equip_l1_stale(s, f) : l1_get(s, f->key, f->klen, true);
    if (old && (old->doc || old->rec)) {
        INC(s, l1_stale_served);
        MX_WARN("upstream failed (%s); serving a stale entry for %s", why, f->key);
        mx__finish_value(self, s, f, old->doc, old->rec, true);
        return;
    }
    if (f->stale_eq && f->stage != ST_CALC) {
        /* the last stored equipment (L3, past its freshness): compute from it */
        MX_WARN("upstream failed (%s); computing %s from stored equipment", why, f->key);
        struct mx_blob *eq = f->stale_eq;
        f->stale_eq = NULL;
        f->serve_stale = true;
        start_calc(self, s, f, eq);
        mx_blob_unref(eq);
        return;
    }
    uint32_t retry_s = retry_ms ? (retry_ms + 999) / 1000 : 10;
    /* outbox: nothing to serve; an UPSTREAM_REFETCH event warms it later
     * (a no-op unless MX_OUTBOX_REFETCH_URL is set) */
    mx_outbox_refetch(f->ign, f->q.what == MX_SVC_EXPECTATION);
    if (status == MX_ETIMEDOUT)
        mx__finish_err(self, s, f, status, 503, "S010", "Upstream (Nexon Open API) timed out",
                       retry_s);
    else
        mx__finish_err(self, s, f, status, 503, "S005",
                       why[0] ? why : "Upstream (Nexon Open API) error", retry_s);
}

static int fetch(mx_actor_t *self, struct mx__shard *s, struct mx__flight *f,
                 enum mx_fetch_kind kind, const char *arg)
{
    struct mx_msg *m;
    int rc = mx_fetch_request_new(kind, arg, NULL, false, &m);
    if (rc)
        return rc;
    rc = mx_request(self, s->fetcher, m, s->o.fetch_timeout_ms, &f->corr);
    if (rc)
        mx_msg_free(m);
    return rc;
}

static void start_equip_doc(mx_actor_t *self, struct mx__shard *s, struct mx__flight *f,
                            struct mx_blob *equip);

/* Hand j (taken) to the calculator; the answer is exp_calc_done with
 * env.corr == f->corr, by MX__CALC_TAG never a runtime request's id. */
static void ask_calculator(mx_actor_t *self, struct mx__shard *s, struct mx__flight *f,
                           struct mx_calc_job *j)
{
    j->equip_fresh = !f->serve_stale && (f->eq_src == SRC_UPSTREAM || f->eq_src == SRC_L3);
    f->stage = ST_CALC;
    f->corr = MX__CALC_TAG | f->id;
    f->calc_until = mx_now_ms() + s->o.fetch_timeout_ms;
    if (!s->have_calculator)
        s->have_calculator =
            mx_whereis(mx_system_of(self), MX_CALCULATOR_NAME, &s->calculator) == 0;
    if (!s->have_calculator || mx_calculator_ask(self, s->calculator, j, f->corr) != 0) {
        mx_calc_job_free(j);
        mx__finish_err(self, s, f, MX_EFULL, 503, "S007", "Calculator busy, retry shortly", 1);
    }
}

static void start_calc(mx_actor_t *self, struct mx__shard *s, struct mx__flight *f,
                       struct mx_blob *equip)
{
    if (f->q.what == MX_SVC_EQUIPMENT) {
        start_equip_doc(self, s, f, equip);
        return;
    }
    struct mx_calc_job *j = mx_calc_job_new(equip);
    snprintf(j->ign, sizeof j->ign, "%s", f->ign);
    j->preset = (int)f->q.preset;
    j->star_catch = f->q.star_catch;
    j->discount = f->q.discount;
    j->sunday = f->q.sunday;
    ask_calculator(self, s, f, j);
}
/* ---- the load ---- */

static void fetch_equipment(mx_actor_t *self, struct mx__shard *s, struct mx__flight *f)
{
    f->stage = ST_EQUIP;
    if (f->upstream_failed || fetch(self, s, f, MX_FETCH_EQUIPMENT, f->ocid))
        mx__finish_upstream_fail(self, s, f, MX_EUNAVAIL, 1000, "fetcher unavailable");
}

static void equip_l3(mx_actor_t *self, struct mx__shard *s, struct mx__flight *f)
{
    if (!mx__l3_read(s, f, mx__l3_read_job, ST_EQ_L3))
        fetch_equipment(self, s, f);
}
static void after_ocid(mx_actor_t *self, struct mx__shard *s, struct mx__flight *f);
static void fetch_ocid(mx_actor_t *self, struct mx__shard *s, struct mx__flight *f);
static bool ocid_ok(const char *o);

/* EQ_L2 answered: the equipment (borrowed), or NULL */
static void equip_from_l2(struct mx__shard *s, struct mx__flight *f, struct mx_blob *eq)
{
    if (!eq) {
        equip_l3(s->self, s, f);
        return;
    }
    INC(s, l2_hits);
    char ek[KEY_MAX];
    size_t ekl = mx__l1_key(ek, 'e', f->ocid, NULL);
    l1_put(s, ek, ekl, K_EQUIP, NULL, mx_blob_ref(eq), NULL, s->o.ttl_equipment_ms);
    f->eq_src = SRC_CACHE;
    start_calc(s->self, s, f, eq);
}

/* OCID_L2 answered: the framed bytes under rk (borrowed), or NULL */
static void ocid_from_l2(struct mx__shard *s, struct mx__flight *f, const char *rk,
                         struct mx_blob *b)
{
    if (b && b->len < sizeof f->ocid) {
        memcpy(f->ocid, b->data, b->len);
        f->ocid[b->len] = '\0';
        if (ocid_ok(f->ocid)) {
            INC(s, l2_hits);
            char ok[KEY_MAX];
            size_t okl = mx__l1_key(ok, 'o', f->ign, NULL);
            l1_put(s, ok, okl, K_OCID, NULL, NULL, f->ocid, s->o.ttl_ocid_ms);
            after_ocid(s->self, s, f);
            return;
        }
        f->ocid[0] = '\0';
    }
    if (b)
        mx__l2_evict(s, rk, b->len); /* framed well, but not an ocid */
    fetch_ocid(s->self, s, f);
}

/* the L2 key the GET stage of f reads */
static void get_key(const struct mx__shard *s, const struct mx__flight *f, char *rk, size_t cap)
{
    if (f->stage == ST_EQ_L2)
        mx__rk_equip(s, rk, cap, f->ocid);
    else
        mx__rk_ign(s, rk, cap, f->ign, "o");
}

static void l2_got(mx_redis_t *rd, int status, const redisReply *rep, void *arg)
{
    (void)rd;
    struct mx__shard *s;
    struct mx__flight *f = mx__rop_flight(arg, status, &s);
    if (!f)
        return;
    char rk[RKEY_MAX];
    get_key(s, f, rk, sizeof rk);
    struct mx_blob *b = NULL;
    if (!mx__l2_value(s, status, rep, rk, &b))
        b = NULL; /* an error or a miss (counted), or a damaged value (evicted) */
    if (f->stage == ST_EQ_L2)
        equip_from_l2(s, f, b);
    else
        ocid_from_l2(s, f, rk, b);
    mx_blob_unref(b);
}

/* GET what stage st (EQ_L2 or OCID_L2) reads; false when Redis cannot be
 * asked (then the caller goes on without L2). */
static bool l2_get(struct mx__shard *s, struct mx__flight *f, enum mx__stage st)
{
    if (!mx__redis_up(s))
        return false;
    f->stage = st;
    char rk[RKEY_MAX];
    get_key(s, f, rk, sizeof rk);
    struct mx__rop *r = mx__rop_new(s, f);
    if (mx_redis_command(s->rc, l2_got, r, "GET %s", rk) == 0)
        return true;
    free(r);
    INC(s, redis_errors);
    return false;
}

/* Next step once the ocid is known. */
static void after_ocid(mx_actor_t *self, struct mx__shard *s, struct mx__flight *f)
{
    if (f->q.what == MX_SVC_CHARACTER) {
        f->stage = ST_BASIC;
        if (f->upstream_failed || fetch(self, s, f, MX_FETCH_BASIC, f->ocid))
            mx__finish_upstream_fail(self, s, f, MX_EUNAVAIL, 1000, "fetcher unavailable");
        return;
    }
    char ek[KEY_MAX];
    size_t ekl = mx__l1_key(ek, 'e', f->ocid, NULL);
    struct mx__centry *e = f->q.force ? NULL : l1_get(s, ek, ekl, false);
    if (e) {
        f->eq_src = SRC_CACHE;
        start_calc(self, s, f, e->blob);
        return;
    }
    if (f->q.force && !f->upstream_failed) {
        fetch_equipment(self, s, f);
        return;
    }
    if (!l2_get(s, f, ST_EQ_L2))
        equip_l3(self, s, f);
}

static bool ocid_ok(const char *o)
{
    size_t n = strlen(o);
    if (n == 0 || n >= 64)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((o[i] >= '0' && o[i] <= '9') || (o[i] >= 'a' && o[i] <= 'z') ||
              (o[i] >= 'A' && o[i] <= 'Z') || o[i] == '-' || o[i] == '_'))
            return false;
    return true;
}

static void fetch_ocid(mx_actor_t *self, struct mx__shard *s, struct mx__flight *f)
{
    f->stage = ST_OCID;
    if (fetch(self, s, f, MX_FETCH_ID, f->ign))
        mx__finish_upstream_fail(self, s, f, MX_EUNAVAIL, 1000, "fetcher unavailable");
}

/* The load proper (we hold the latch, or Redis cannot coordinate). */
void mx__load_start(mx_actor_t *self, struct mx__shard *s, struct mx__flight *f)
{
    INC(s, loads);
    char ok[KEY_MAX];
    size_t okl = mx__l1_key(ok, 'o', f->ign, NULL);
    struct mx__centry *oc = l1_get(s, ok, okl, false);
    if (oc) {
        snprintf(f->ocid, sizeof f->ocid, "%s", oc->ocid);
        after_ocid(self, s, f);
        return;
    }
    if (!l2_get(s, f, ST_OCID_L2))
        fetch_ocid(self, s, f);
}

/* ---- MX_SVC_EQUIPMENT: the raw equipment as a document ---- */

/* The fresh L1 equipment of ign that already has its document, or NULL. */
struct mx__centry *mx__equip_l1(struct mx__shard *s, const char *ign)
{
    char k[KEY_MAX];
    size_t kl = mx__l1_key(k, 'o', ign, NULL);
    struct mx__centry *o = l1_get(s, k, kl, false);
    if (!o)
        return NULL;
    kl = mx__l1_key(k, 'e', o->ocid, NULL);
    struct mx__centry *e = l1_get(s, k, kl, false);
    return e && e->doc ? e : NULL;
}

/* Upstream failed: the L1 equipment of f's character with its document,
 * even expired (the ocid from the flight, or an expired L1 entry), or NULL. */
static struct mx__centry *equip_l1_stale(struct mx__shard *s, const struct mx__flight *f)
{
    char k[KEY_MAX], ocid[64];
    snprintf(ocid, sizeof ocid, "%s", f->ocid);
    if (!ocid[0]) {
        size_t kl = mx__l1_key(k, 'o', f->ign, NULL);
        struct mx__centry *o = l1_get(s, k, kl, true);
        if (!o)
            return NULL;
        snprintf(ocid, sizeof ocid, "%s", o->ocid);
    }
    size_t kl = mx__l1_key(k, 'e', ocid, NULL);
    struct mx__centry *e = l1_get(s, k, kl, true);
    return e && e->doc ? e : NULL;
}

/* The equipment is loaded (from L1, L2, L3 or upstream, by the same steps
 * as for a calculation): answer with its document, made (gzip) on an
 * offload thread unless L1 already holds it. */
static void start_equip_doc(mx_actor_t *self, struct mx__shard *s, struct mx__flight *f,
                            struct mx_blob *equip)
{
    char ek[KEY_MAX];
    size_t ekl = mx__l1_key(ek, 'e', f->ocid, NULL);
    struct mx__centry *e = l1_find(s, ek, ekl);
    if (e && e->blob == equip && e->doc) {
        mx__finish_doc(self, s, f, e->doc, f->serve_stale);
        return;
    }
    struct mx_calc_job *j = mx_calc_job_new(equip);
    snprintf(j->ign, sizeof j->ign, "%s", f->ign);
    j->equip_doc = true;
    ask_calculator(self, s, f, j);
}

static void on_equip_done(mx_actor_t *self, struct mx__shard *s, struct mx__flight *f,
                          struct mx_calc_job *j)
{
    if (j->status) {
        MX_WARN("equipment document for %s failed: %s", f->ign, j->err);
        mx__finish_err(self, s, f, j->status, 500, "S001", "Could not prepare the equipment", 0);
        return;
    }
    if (f->serve_stale) { /* stored equipment past its freshness: answer, keep nothing */
        INC(s, l1_stale_served);
        mx__finish_doc(self, s, f, j->fresh, true);
        return;
    }
    /* L1: the document joins the equipment entry (same bytes), or a new entry */
    char ek[KEY_MAX];
    size_t ekl = mx__l1_key(ek, 'e', f->ocid, NULL);
    struct mx__centry *e = l1_find(s, ek, ekl);
    if (e && e->blob == j->equip && !e->doc) {
        mx__l1_add_doc(&s->l1, e, mx_http_doc_ref(j->fresh));
    } else if (!e || e->blob != j->equip) {
        l1_put(s, ek, ekl, K_EQUIP, mx_http_doc_ref(j->fresh), mx_blob_ref(j->equip), NULL,
               s->o.ttl_equipment_ms);
    }
    if (j->equip_frame) { /* loaded from L3 or upstream: L2 for the other nodes */
        char rk[RKEY_MAX];
        mx__rk_equip(s, rk, sizeof rk, f->ocid);
        mx__l2_set(s, rk, j->equip_frame, s->o.ttl2_equipment_ms);
    }
    uint8_t *rec;
    uint32_t rlen;
    if (s->o.mysql && f->eq_src == SRC_UPSTREAM && j->equip_frame &&
        mx_store_rec_equipment(f->ocid, j->equip_frame->data + MX__FRAME_HDR,
                               j->equip_frame->len - MX__FRAME_HDR, mx_unix_ms(), &rec, &rlen) == 0)
        mx__l3_write(s, MX_STORE_REC_EQUIPMENT, rec, rlen);
    mx__finish_doc(self, s, f, j->fresh, false); /* releases the latch: waiters find L2 */
}
/* ---- results ---- */

static void on_basic(mx_actor_t *self, struct mx__shard *s, struct mx__flight *f, const char *body,
                     size_t len)
{
    char name[96] = "", world[64] = "", cls[96] = "", image[512] = "";
    struct mx_jr_field fl[] = {
        {.key = "character_name", .kind = MX_JR_STR, .buf = name, .cap = sizeof name},
        {.key = "world_name", .kind = MX_JR_STR, .buf = world, .cap = sizeof world},
        {.key = "character_class", .kind = MX_JR_STR, .buf = cls, .cap = sizeof cls},
        {.key = "character_image", .kind = MX_JR_STR, .buf = image, .cap = sizeof image},
    };
    char err[160];
    if (mx_jsonr_object(body, len, fl, 4, err, sizeof err) != 0) {
        MX_WARN("character basic for %s unreadable: %s", f->ign, err);
        mx__finish_upstream_fail(self, s, f, MX_EUPSTREAM, 0,
                                 "Upstream returned an unreadable record");
        return;
    }
    struct mx_character_rec *c = mx_character_rec_new();
    snprintf(c->user_ign, sizeof c->user_ign, "%s", name[0] ? name : f->ign);
    snprintf(c->ocid, sizeof c->ocid, "%s", f->ocid);
    snprintf(c->world_name, sizeof c->world_name, "%s", world);
    snprintf(c->character_class, sizeof c->character_class, "%s", cls);
    snprintf(c->character_image, sizeof c->character_image, "%s", image);
    /* L2: the record's JSON, framed (a few hundred bytes) */
    struct mx_jsonw w;
    mx_jsonw_init(&w, 8192);
    struct mx_blob *frame = NULL;
    if (mx__character_to_json(c, &w) == 0 && mx__frame_encode(w.buf, w.len, 6, &frame) == 0)
        mx__l2_done(s, f, 'v', frame, s->o.ttl2_character_ms, false, NULL);
    mx_blob_unref(frame);
    mx_jsonw_fini(&w);
    struct mx_store_character ch = {.user_ign = f->ign,
                                    .ocid = f->ocid,
                                    .world_name = world,
                                    .character_class = cls,
                                    .character_image = image};
    uint8_t *rec;
    uint32_t rlen;
    if (s->o.mysql && mx_store_rec_character(&ch, mx_unix_ms(), &rec, &rlen) == 0)
        mx__l3_write(s, MX_STORE_REC_CHARACTER, rec, rlen);
    l1_put_rec(s, f->key, f->klen, mx_character_rec_ref(c), s->o.ttl_character_ms);
    mx__finish_value(self, s, f, NULL, c, false);
    mx_character_rec_unref(c);
}

static void on_ocid(mx_actor_t *self, struct mx__shard *s, struct mx__flight *f)
{
    char ok[KEY_MAX];
    size_t okl = mx__l1_key(ok, 'o', f->ign, NULL);
    l1_put(s, ok, okl, K_OCID, NULL, NULL, f->ocid, s->o.ttl_ocid_ms);
    struct mx_blob *frame;
    if (mx__redis_up(s) && mx__frame_encode(f->ocid, strlen(f->ocid), 6, &frame) == 0) {
        char rk[RKEY_MAX];
        mx__rk_ign(s, rk, sizeof rk, f->ign, "o");
        mx__l2_set(s, rk, frame, s->o.ttl2_ocid_ms);
        mx_blob_unref(frame);
    }
    struct mx_store_character ch = {.user_ign = f->ign, .ocid = f->ocid};
    uint8_t *rec;
    uint32_t rlen;
    if (s->o.mysql && f->q.what == MX_SVC_EXPECTATION &&
        mx_store_rec_character(&ch, mx_unix_ms(), &rec, &rlen) == 0)
        mx__l3_write(s, MX_STORE_REC_CHARACTER, rec, rlen);
    after_ocid(self, s, f);
}

static void on_fetch_rep(mx_actor_t *self, struct mx__shard *s, struct mx__flight *f,
                         struct mx_msg *m)
{
    struct mx_fetch_result r;
    if (mx_fetch_reply_read(m, &r) != 0) {
        mx__finish_upstream_fail(self, s, f, MX_EUPSTREAM, 0, "Fetcher reply unreadable");
        return;
    }
    if (r.status == MX_ENOTFOUND && f->stage == ST_OCID) {
        finish_not_found(self, s, f);
        return;
    }
    if (r.status != 0) {
        char why[200];
        snprintf(why, sizeof why, "Upstream (Nexon Open API) error: %.*s", (int)r.error.len,
                 r.error.ptr);
        if (f->stage == ST_OCID && !f->upstream_failed && !l1_get(s, f->key, f->klen, true)) {
            /* no ocid: the one MySQL knows leads to the stored equipment */
            f->upstream_failed = true;
            if (mx__l3_read(s, f, mx__l3_ocid_job, ST_OCID_L3))
                return;
        }
        mx__finish_upstream_fail(self, s, f, r.status, r.retry_after_ms, why);
        return;
    }
    switch (f->stage) {
    case ST_OCID: {
        struct mx_jr_field fl[] = {
            {.key = "ocid",
             .kind = MX_JR_STR,
             .required = true,
             .buf = f->ocid,
             .cap = sizeof f->ocid},
        };
        if (!r.body || mx_jsonr_object(r.body, r.body_len, fl, 1, NULL, 0) != 0 ||
            !ocid_ok(f->ocid)) {
            f->ocid[0] = '\0';
            mx__finish_upstream_fail(self, s, f, MX_EUPSTREAM, 0, "Upstream returned no ocid");
            return;
        }
        on_ocid(self, s, f);
        return;
    }
    case ST_EQUIP: {
        struct mx_fetch_body *b = mx_fetch_reply_take_body(m);
        if (!b) {
            mx__finish_upstream_fail(self, s, f, MX_EUPSTREAM, 0, "Upstream returned no equipment");
            return;
        }
        /* one copy of the body into a shareable blob (the L1 keeps it) */
        struct mx_blob *eq = mx_blob_new(b->data, b->len);
        mx_fetch_body_free(b);
        char ek[KEY_MAX];
        size_t ekl = mx__l1_key(ek, 'e', f->ocid, NULL);
        l1_put(s, ek, ekl, K_EQUIP, NULL, mx_blob_ref(eq), NULL, s->o.ttl_equipment_ms);
        mx_blob_unref(f->stale_eq);
        f->stale_eq = NULL;
        f->eq_src = SRC_UPSTREAM;
        start_calc(self, s, f, eq);
        mx_blob_unref(eq);
        return;
    }
    case ST_BASIC:
        if (!r.body) {
            mx__finish_upstream_fail(self, s, f, MX_EUPSTREAM, 0, "Upstream returned no record");
            return;
        }
        on_basic(self, s, f, r.body, r.body_len);
        return;
    default:
        return;
    }
}

static void published_cb(mx_redis_t *rd, int status, const redisReply *rep, void *arg);

/* Store what a load produced in L2 and L3. Returns true when the answer
 * must wait for the done script (a recalculation: the invalidation is
 * published before anyone is told the new document exists). */
static bool store_results(struct mx__shard *s, struct mx__flight *f, struct mx_calc_job *j)
{
    bool wait = false;
    /* L2: the equipment first, then the document with the notice */
    if (j->equip_frame) {
        char rk[RKEY_MAX];
        mx__rk_equip(s, rk, sizeof rk, f->ocid);
        mx__l2_set(s, rk, j->equip_frame, s->o.ttl2_equipment_ms);
    }
    char inval[RKEY_MAX];
    if (f->q.force) {
        /* every node drops its L1 copies; this one keeps what it just made */
        /* every subscriber acks it ("A <nonce>") once applied: the answer
         * waits for them (bounded), so the next read anywhere sees the new
         * document */
        snprintf(f->ack_nonce, sizeof f->ack_nonce, "%016" PRIx64 ":%d:%" PRIu64, s->node_id,
                 s->index, f->id);
        f->acks = 0;
        f->acks_needed = -1;
        snprintf(inval, sizeof inval, "I %016" PRIx64 " %s %s %s", s->node_id, f->ign,
                 f->ocid[0] ? f->ocid : "-", f->ack_nonce);
        mx__l1_drop_character(&s->l1, f->ign, NULL, f->key, f->klen);
        INC(s, invalidations_sent);
    }
    if (mx__redis_up(s)) {
        f->stage = ST_PUBLISH;
        struct mx__rop *r = f->q.force ? mx__rop_new(s, f) : NULL;
        int rc = mx__l2_done_cb(s, f, j->doc_frame ? 'v' : 'x', j->doc_frame, s->o.ttl2_doc_ms,
                                f->q.force, f->q.force ? inval : NULL, r ? published_cb : NULL, r);
        if (r && rc != 0)
            free(r);
        wait = r && rc == 0;
    } else {
        mx__l2_done(s, f, 'x', NULL, 0, false, NULL);
    }
    if (!s->o.mysql)
        return wait;
    uint64_t now = mx_unix_ms();
    uint8_t *rec;
    uint32_t rlen;
    if (f->eq_src == SRC_UPSTREAM && j->equip_frame &&
        mx_store_rec_equipment(f->ocid, j->equip_frame->data + MX__FRAME_HDR,
                               j->equip_frame->len - MX__FRAME_HDR, now, &rec, &rlen) == 0)
        mx__l3_write(s, MX_STORE_REC_EQUIPMENT, rec, rlen);
    /* summaries describe the API's default calculation (every option on) */
    if (!f->q.star_catch || !f->q.discount || !f->q.sunday)
        return wait;
    for (int i = 0; i < j->nsums; i++) {
        struct mx_store_summary sm = {.ocid = f->ocid,
                                      .user_ign = f->ign,
                                      .preset_no = j->sums[i].preset_no,
                                      .total_expected_cost = j->sums[i].total,
                                      .black_cube_cost = j->sums[i].black,
                                      .additional_cube_cost = j->sums[i].additional,
                                      .starforce_cost = j->sums[i].starforce};
        if (mx_store_rec_summary(&sm, now, &rec, &rlen) == 0)
            mx__l3_write(s, MX_STORE_REC_SUMMARY, rec, rlen);
    }
    return wait;
}

static void published_cb(mx_redis_t *rd, int status, const redisReply *rep, void *arg)
{
    (void)rd;
    struct mx__shard *s;
    struct mx__flight *f = mx__rop_flight(arg, status, &s);
    if (status != 0 && status != MX_ESTOPPED)
        INC(s, redis_errors);
    if (!f || !f->result)
        return;
    if (status == 0 && rep && rep->type == REDIS_REPLY_INTEGER && rep->integer > f->acks) {
        f->acks_needed = rep->integer;
        f->stage = ST_ACK;
        f->ack_until = mx_now_ms() + INVAL_ACK_MS;
        return; /* on_notice (the last ack) or on_tick (the deadline) answers */
    }
    mx__finish_doc(s->self, s, f, f->result, false);
}

/* The character's equipment has no such preset: 404 C002 with no_preset
 * set, so a caller tells it from an unknown character without reading
 * the message. */
static void finish_no_preset(mx_actor_t *self, struct mx__shard *s, struct mx__flight *f)
{
    static const char code[] = "C002", msg[] = "Preset not found for this character";
    struct mx_m_exp_rep r = {.status = MX_ENOTFOUND,
                             .http_status = 404,
                             .code = {code, sizeof code - 1},
                             .message = {msg, sizeof msg - 1},
                             .no_preset = true};
    INC(s, load_errors);
    for (uint32_t i = 0; i < f->nw; i++) {
        struct mx_msg *m;
        if (mx_msg_encode(MX_T_exp_rep, &r, &m) == 0)
            mx__cache_send_reply(self, &f->w[i].env, m);
    }
    mx__flight_end(s, f);
}

static void on_calc_done(mx_actor_t *self, struct mx__shard *s, struct mx__flight *f,
                         struct mx_msg *m)
{
    struct mx_calc_job *j = m->ptr;
    struct mx_m_exp_calc_done d;
    if (!j && mx_msg_decode(m, &d) == 0 && d.status == MX_EFULL) {
        mx__finish_err(self, s, f, MX_EFULL, 503, "S007", "Calculator busy, retry shortly", 1);
        return;
    }
    if (!j) {
        mx__finish_err(self, s, f, MX_EINTERNAL, 500, "S001", "Calculation failed", 0);
        return;
    }
    if (j->equip_doc) {
        on_equip_done(self, s, f, j);
        return;
    }
    ADD(s, calcs, 1);
    ADD(s, calc_ms_total, (uint64_t)j->calc_ms);
    if (j->status == MX_ENOTFOUND) {
        finish_no_preset(self, s, f);
        return;
    }
    if (j->status) {
        MX_WARN("calculation for %s failed: %s", f->ign, j->err);
        /* the equipment we hold is unusable: drop it so the next load refetches */
        char ek[KEY_MAX], rk[RKEY_MAX];
        size_t ekl = mx__l1_key(ek, 'e', f->ocid, NULL);
        struct mx__centry *e = l1_find(s, ek, ekl);
        if (e)
            mx__l1_remove(&s->l1, e);
        mx__rk_equip(s, rk, sizeof rk, f->ocid);
        mx__l2_del(s, rk);
        mx_blob_unref(f->stale_eq);
        f->stale_eq = NULL;
        mx__finish_upstream_fail(self, s, f, MX_EUPSTREAM, 0,
                                 "Upstream returned equipment that could not be read");
        return;
    }
    if (f->serve_stale) {
        /* built from equipment past its freshness: answer, do not store */
        INC(s, l1_stale_served);
        mx__finish_doc(self, s, f, j->fresh, true);
        return;
    }
    l1_put(s, f->key, f->klen, K_DOC, mx_http_doc_ref(j->cached), NULL, NULL, s->o.ttl_doc_ms);
    if (store_results(s, f, j)) {
        f->result = mx_http_doc_ref(j->fresh);
        return; /* published_cb answers */
    }
    mx__finish_doc(self, s, f, j->fresh, false);
}

void mx__load_on_l3_done(mx_actor_t *self, struct mx__shard *s, struct mx__flight *f, int status,
                         struct mx__l3_read *r)
{
    if (f->stage == ST_OCID_L3) {
        if (status == 0 && r && ocid_ok(r->ocid)) {
            snprintf(f->ocid, sizeof f->ocid, "%s", r->ocid);
            after_ocid(self, s, f);
        } else {
            mx__finish_upstream_fail(self, s, f, MX_EUNAVAIL, 0, "Upstream (Nexon Open API) error");
        }
        return;
    }
    /* ST_EQ_L3 */
    if (status == 0 && r && r->equip) {
        uint64_t now = mx_unix_ms();
        if (r->at_ms + s->o.l3_fresh_ms >= now || f->upstream_failed) {
            INC(s, l3_hits);
            char ek[KEY_MAX];
            size_t ekl = mx__l1_key(ek, 'e', f->ocid, NULL);
            if (!f->upstream_failed)
                l1_put(s, ek, ekl, K_EQUIP, NULL, mx_blob_ref(r->equip), NULL,
                       s->o.ttl_equipment_ms);
            f->eq_src = SRC_L3;
            f->serve_stale = f->upstream_failed && r->at_ms + s->o.l3_fresh_ms < now;
            start_calc(self, s, f, r->equip);
            return;
        }
        INC(s, l3_stale);
        mx_blob_unref(f->stale_eq);
        f->stale_eq = mx_blob_ref(r->equip);
    } else if (status == MX_EDECODE) {
        INC(s, l3_corrupt);
    } else if (status == MX_ENOTFOUND) {
        INC(s, l3_misses);
    } else {
        INC(s, l3_errors);
    }
    if (f->upstream_failed) {
        mx__finish_upstream_fail(self, s, f, MX_EUNAVAIL, 0, "Upstream (Nexon Open API) error");
        return;
    }
    fetch_equipment(self, s, f);
}

void mx__load_on_reply(mx_actor_t *self, struct mx__shard *s, struct mx__flight *f,
                       struct mx_msg *m)
{
    switch (m->env.type) {
    case MX_T_fetch_rep:
        if (f->stage == ST_OCID || f->stage == ST_EQUIP || f->stage == ST_BASIC)
            on_fetch_rep(self, s, f, m);
        break;
    case MX_T_exp_calc_done:
        if (f->stage == ST_CALC)
            on_calc_done(self, s, f, m);
        break;
    case MX_T_sys_timeout:
        if (f->stage == ST_OCID || f->stage == ST_EQUIP || f->stage == ST_BASIC)
            mx__finish_upstream_fail(self, s, f, MX_ETIMEDOUT, 0, "timeout");
        break;
    default:
        break;
    }
}
