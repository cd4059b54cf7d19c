/* app_compat.c - the routes of the seed's other API versions, served from
 * the same cache shards, engine and fetcher as V1/V4 (docs/http-api.md):
 *
 *   GET  /api/v2/characters/{ign}/equipment     the upstream item-equipment JSON
 *   GET  /api/v3/characters/{ign}/equipment     the same, gzip when accepted
 *   GET  /api/v2|v3/characters/{ign}/expectation TotalExpectationResponse,
 *                                                rendered from the V4 document
 *   GET  /api/v5/characters/{ign}/expectation   200 with the V4 document when it
 *        is ready within MX_V5_WAIT_MS, else 202 and the load goes on in the
 *        cache (the next call is a hit)
 *   POST /api/v5/characters/{ign}/expectation/recalculate   202, recomputing
 *   GET  /api/v4/characters/{ign}/expectation/preset/{n}    with the seed's
 *        200 and empty presets for a preset the character does not have
 *
 * The equipment routes resolve the character (its record carries the ocid)
 * through the cache and then ask the fetcher once: the upstream JSON is not
 * cached by mx (the seed cached it for 10 minutes), so each call costs one
 * upstream request under the fetcher's bounds and breaker.
 * Everything runs on the acceptor's thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app_int.h"
#include "mx_err.h"
#include "mx_fetch.h"
#include "mx_jsonr.h"
#include "mx_jsonw.h"
#include "mx_log.h"
#include "mx_proto.h"
#include "mx_svc.h"

/* ---- equipment (v2, v3) ---- */

static int equipment_next(mx_http_req_t *r, struct acc *a)
{
    bool v3 = mx__app_route(r)->flags & 1;
    return mx__app_ask_doc(r, a, MX_SVC_CHARACTER, 0, false,
                           v3 ? PEND_EQUIP_CHAR_GZ : PEND_EQUIP_CHAR, 0);
}

int mx__app_equipment(mx_http_req_t *r, void *st)
{
    return mx__app_guard(r, st, equipment_next);
}

/* The character record arrived: ask the fetcher for its equipment. */
static void equipment_fetch(struct acc *a, mx_http_req_t *r, struct mx_msg *m, bool gz)
{
    const struct mx_http_doc *d;
    bool stale;
    if (!mx__app_cache_doc(a, r, m, &d, &stale))
        return;
    char ocid[128];
    struct mx_jr_field f[] = {
        {.key = "ocid", .kind = MX_JR_STR, .required = true, .buf = ocid, .cap = sizeof ocid},
    };
    if (mx_jsonr_object((const char *)d->plain->data, d->plain->len, f, 1, NULL, 0) != 0 ||
        !ocid[0]) {
        mx_http_error(r, 500, "S001", "The character record has no usable ocid");
        return;
    }
    struct mx_addr fetcher;
    if (mx_whereis(a->app->sys, MX_FETCH_NAME, &fetcher) != 0) {
        mx_http_add_header(r, "Retry-After", "5");
        mx_http_error(r, 503, "S007", "No fetcher running on this node");
        return;
    }
    struct mx_msg *q;
    uint64_t corr;
    if (mx_fetch_request_new(MX_FETCH_EQUIPMENT, ocid, NULL, false, &q) != 0) {
        mx_http_error(r, 500, "S001", "The character record has no usable ocid");
        return;
    }
    if (a->n >= a->max || mx_http_request(r, fetcher, q, a->app->o.cache_timeout_ms, &corr) != 0) {
        mx_msg_free(q); /* still ours: mx_request takes it only on success */
        mx_http_add_header(r, "Retry-After", "1");
        mx_http_error(r, 503, "S007", "Too many requests in progress on this node");
        return;
    }
    mx__app_pend_put(a, corr, r, gz ? PEND_EQUIP_GZ : PEND_EQUIP, NULL);
}

static void equipment_answer(struct acc *a, mx_http_req_t *r, struct mx_msg *m, bool gz)
{
    struct mx_fetch_result fr;
    if (m->env.type == MX_T_sys_timeout) {
        mx_http_add_header(r, "Retry-After", "5");
        mx_http_error(r, 503, "S010", "Upstream (Nexon Open API) timed out");
        return;
    }
    if (mx_fetch_reply_read(m, &fr) != 0) {
        mx_http_error(r, 500, "S001", "Unreadable reply from the fetcher");
        return;
    }
    if (fr.status == MX_ENOTFOUND) {
        mx_http_error(r, 404, "C002", "Character not found");
        return;
    }
    if (fr.status != 0 || !fr.body) {
        mx__app_upstream_error(r, &fr);
        return;
    }
    if (!gz) {
        mx_http_respond(r, 200, "application/json", fr.body, fr.body_len);
        return;
    }
    /* v3: the gzip variant (and ETag) when the client accepts it */
    struct mx_blob *b = mx_blob_new(fr.body, fr.body_len);
    struct mx_http_doc *d;
    if (mx_http_doc_new("application/json", b, true, &d) != 0) {
        mx_http_respond_blob(r, 200, "application/json", b);
    } else {
        mx_http_respond_doc(r, d);
        mx_http_doc_unref(d);
    }
    mx_blob_unref(b);
}

/* ---- TotalExpectationResponse (v2, v3) ---- */

static int total_next(mx_http_req_t *r, struct acc *a)
{
    return mx__app_ask_doc(r, a, MX_SVC_EXPECTATION, 0, false, PEND_TOTAL, 0);
}

int mx__app_total(mx_http_req_t *r, void *st)
{
    return mx__app_guard(r, st, total_next);
}

static void total_answer(struct acc *a, mx_http_req_t *r, struct mx_msg *m)
{
    const struct mx_http_doc *d;
    bool stale;
    if (!mx__app_cache_doc(a, r, m, &d, &stale))
        return;
    struct mx_jsonw w;
    mx_jsonw_init(&w, 1 << 20);
    int rc = mx__app_total_expectation((const char *)d->plain->data, d->plain->len, &w);
    if (rc != 0) {
        MX_WARN("TotalExpectationResponse from the V4 document: %s", mx_strerror(rc));
        mx_jsonw_fini(&w);
        mx_http_error(r, 500, "S001", "Could not render the expectation");
        return;
    }
    if (stale)
        mx_http_add_header(r, "Warning", "110 - \"Response is Stale\"");
    mx__app_send_json(r, 200, &w);
}

/* ---- V4 preset ---- */

/* The seed's answer for a preset the character does not have: 200, no
 * presets, zero totals (its builder leaves maxPresetNo unset). */
static void empty_preset_doc(mx_http_req_t *r)
{
    struct mx_jsonw w;
    mx_jsonw_init(&w, 4096);
    mx_jsonw_obj_open(&w);
    mx_jsonw_kstr(&w, "userIgn", mx_http_req_param(r, "ign"));
    mx_jsonw_knull(&w, "calculatedAt");
    mx_jsonw_kbool(&w, "fromCache", false);
    mx_jsonw_kint(&w, "totalExpectedCost", 0);
    mx_jsonw_kstr(&w, "totalCostText", "0");
    mx_jsonw_key(&w, "totalCostBreakdown");
    mx_jsonw_obj_open(&w);
    mx_jsonw_kint(&w, "blackCubeCost", 0);
    mx_jsonw_kint(&w, "redCubeCost", 0);
    mx_jsonw_kint(&w, "additionalCubeCost", 0);
    mx_jsonw_kint(&w, "starforceCost", 0);
    mx_jsonw_obj_close(&w);
    mx_jsonw_knull(&w, "maxPresetNo");
    mx_jsonw_key(&w, "presets");
    mx_jsonw_arr_open(&w);
    mx_jsonw_arr_close(&w);
    mx_jsonw_obj_close(&w);
    mx__app_send_json(r, 200, &w);
}

static int preset_next(mx_http_req_t *r, struct acc *a)
{
    const char *p = mx_http_req_param(r, "preset");
    size_t n = p ? strlen(p) : 0;
    bool digits = n > 0 && n <= 9;
    for (size_t i = 0; digits && i < n; i++)
        digits = p[i] >= '0' && p[i] <= '9';
    if (!digits) {
        mx_http_error(r, 400, "C001", "Preset must be a number");
        return MX_HTTP_DONE;
    }
    long no = strtol(p, NULL, 10);
    if (no >= 1 && no <= 3)
        return mx__app_ask_doc(r, a, MX_SVC_EXPECTATION, (uint32_t)no, false, PEND_PRESET, 0);
    /* no such preset anywhere: the whole document says whether the
     * character exists (404 C002 as for the other routes) */
    return mx__app_ask_doc(r, a, MX_SVC_EXPECTATION, 0, false, PEND_PRESET_EMPTY, 0);
}

int mx__app_preset(mx_http_req_t *r, void *st)
{
    return mx__app_guard(r, st, preset_next);
}

/* The shard's answer for a preset the equipment lacks is 404 C002 with this
 * message (actors/svc/svc_cache.c); every other 404 is an unknown character. */
static bool preset_missing(const struct mx_msg *m)
{
    struct mx_m_exp_rep rep;
    static const char missing[] = "Preset not found";
    return m->env.type == MX_T_exp_rep && mx_msg_decode(m, &rep) == 0 && rep.status != 0 &&
           rep.http_status == 404 && rep.message.len >= sizeof missing - 1 &&
           memcmp(rep.message.ptr, missing, sizeof missing - 1) == 0;
}

/* ---- V5 ---- */

static int v5_next(mx_http_req_t *r, struct acc *a)
{
    bool recalc = mx__app_route(r)->flags & 1;
    return mx__app_ask_doc(r, a, MX_SVC_EXPECTATION, 0, recalc, recalc ? PEND_V5_RECALC : PEND_V5,
                           a->app->o.v5_wait_ms);
}

int mx__app_v5(mx_http_req_t *r, void *st)
{
    return mx__app_guard(r, st, v5_next);
}

static void accepted(mx_http_req_t *r)
{
    mx_http_respond(r, 202, NULL, NULL, 0);
}

/* ---- replies ---- */

void mx__app_compat_reply(struct acc *a, mx_http_req_t *r, uint8_t kind, struct mx_msg *m)
{
    const struct mx_http_doc *d;
    bool stale;
    switch (kind) {
    case PEND_EQUIP_CHAR:
    case PEND_EQUIP_CHAR_GZ:
        equipment_fetch(a, r, m, kind == PEND_EQUIP_CHAR_GZ);
        break;
    case PEND_EQUIP:
    case PEND_EQUIP_GZ:
        equipment_answer(a, r, m, kind == PEND_EQUIP_GZ);
        break;
    case PEND_TOTAL:
        total_answer(a, r, m);
        break;
    case PEND_PRESET:
        if (preset_missing(m))
            empty_preset_doc(r);
        else if (mx__app_cache_doc(a, r, m, &d, &stale))
            mx__app_respond_doc(a, r, d, stale);
        break;
    case PEND_PRESET_EMPTY:
        if (mx__app_cache_doc(a, r, m, &d, &stale))
            empty_preset_doc(r);
        break;
    case PEND_V5:
    case PEND_V5_RECALC:
        /* not ready within MX_V5_WAIT_MS: the shard goes on loading (or
         * recomputing) and stores the result; the answer is 202 */
        if (m->env.type == MX_T_sys_timeout)
            accepted(r);
        else if (mx__app_cache_doc(a, r, m, &d, &stale)) {
            if (kind == PEND_V5_RECALC)
                accepted(r);
            else
                mx__app_respond_doc(a, r, d, stale);
        }
        break;
    default:
        mx_http_error(r, 500, "S001", "internal error");
        break;
    }
}
