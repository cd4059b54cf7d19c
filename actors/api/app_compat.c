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
 * The equipment routes ask the cache for MX_SVC_EQUIPMENT: the upstream
 * JSON from the tiers the calculation reads it from (L1 5 min, L2 10 min,
 * L3 15 min by default; the seed cached it for 10 minutes), so repeated
 * requests cost no upstream call.
 * Everything runs on the acceptor's thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app_int.h"
#include "mx_err.h"
#include "mx_jsonr.h"
#include "mx_jsonw.h"
#include "mx_log.h"
#include "mx_proto.h"
#include "mx_cache.h"

/* ---- equipment (v2, v3) ---- */

static int equipment_next(mx_http_req_t *r, struct acc *a)
{
    bool v3 = mx__app_route(r)->flags & 1;
    return mx__app_ask_doc(r, a, MX_SVC_EQUIPMENT, 0, false, v3 ? PEND_EQUIP_GZ : PEND_EQUIP, 0);
}

int mx__app_equipment(mx_http_req_t *r, void *st)
{
    return mx__app_guard(r, st, equipment_next);
}

/* The cache's equipment document: v2 sends the upstream's JSON as it is,
 * v3 the stored gzip bytes when the client accepts gzip (with ETags). Stale
 * equipment (upstream down, stored copy past its freshness) is marked with
 * the Warning header only: the body stays the upstream's. */
static void equipment_answer(struct acc *a, mx_http_req_t *r, struct mx_msg *m, bool gz)
{
    const struct mx_http_doc *d;
    bool stale;
    if (!mx__app_cache_doc(a, r, m, &d, &stale))
        return;
    if (stale)
        mx_http_add_header(r, "Warning", "110 - \"Response is Stale\"");
    if (gz)
        mx_http_respond_doc(r, d);
    else
        mx_http_respond_blob(r, 200, "application/json", d->plain);
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

/* The seed's answer for a preset the character does not have: 200, the
 * whole document's userIgn, calculatedAt and fromCache, zero totals, no
 * presets; its builder sets neither totalCostText (null) nor maxPresetNo
 * (an int: 0). d is the whole document. */
static void empty_preset_doc(mx_http_req_t *r, const struct mx_http_doc *d, bool stale)
{
    char ign[256], at[80];
    struct mx_jr_field f[] = {
        {.key = "userIgn", .kind = MX_JR_STR, .required = true, .buf = ign, .cap = sizeof ign},
        {.key = "calculatedAt", .kind = MX_JR_STR, .buf = at, .cap = sizeof at},
        {.key = "fromCache", .kind = MX_JR_BOOL},
    };
    if (mx_jsonr_object((const char *)d->plain->data, d->plain->len, f, 3, NULL, 0) != 0) {
        mx_http_error(r, 500, "S001", "Could not read the expectation document");
        return;
    }
    struct mx_jsonw w;
    mx_jsonw_init(&w, 4096);
    mx_jsonw_obj_open(&w);
    mx_jsonw_kstr(&w, "userIgn", ign);
    if (f[1].present)
        mx_jsonw_kstr(&w, "calculatedAt", at);
    else
        mx_jsonw_knull(&w, "calculatedAt");
    mx_jsonw_kbool(&w, "fromCache", f[2].present && f[2].b);
    mx_jsonw_kint(&w, "totalExpectedCost", 0);
    mx_jsonw_knull(&w, "totalCostText");
    mx_jsonw_key(&w, "totalCostBreakdown");
    mx_jsonw_obj_open(&w);
    mx_jsonw_kint(&w, "blackCubeCost", 0);
    mx_jsonw_kint(&w, "redCubeCost", 0);
    mx_jsonw_kint(&w, "additionalCubeCost", 0);
    mx_jsonw_kint(&w, "starforceCost", 0);
    mx_jsonw_obj_close(&w);
    mx_jsonw_kint(&w, "maxPresetNo", 0);
    mx_jsonw_key(&w, "presets");
    mx_jsonw_arr_open(&w);
    mx_jsonw_arr_close(&w);
    mx_jsonw_obj_close(&w);
    if (stale)
        mx_http_add_header(r, "Warning", "110 - \"Response is Stale\"");
    mx__app_send_json(r, 200, &w);
}

static int preset_next(mx_http_req_t *r, struct acc *a)
{
    /* the seed's presetNo is a Java Integer: an optional sign and digits
     * within its range; anything else is 400 C001 (the seed: 500 S001) */
    const char *p = mx_http_req_param(r, "preset");
    if (p && (*p == '-' || *p == '+'))
        p++;
    size_t n = p ? strlen(p) : 0;
    bool digits = n > 0 && n <= 10;
    for (size_t i = 0; digits && i < n; i++)
        digits = p[i] >= '0' && p[i] <= '9';
    long long no = digits ? strtoll(p, NULL, 10) : 0;
    if (!digits || no > 2147483647LL) {
        mx_http_error(r, 400, "C001", "Preset must be a number");
        return MX_HTTP_DONE;
    }
    if (p != mx_http_req_param(r, "preset") && p[-1] == '-')
        no = -no;
    if (no >= 1 && no <= 3)
        return mx__app_ask_doc(r, a, MX_SVC_EXPECTATION, (uint32_t)no, false, PEND_PRESET, 0);
    /* no such preset anywhere: the whole document says whether the
     * character exists (404 C002 as for the other routes) and gives the
     * empty answer its calculatedAt and fromCache */
    return mx__app_ask_doc(r, a, MX_SVC_EXPECTATION, 0, false, PEND_PRESET_EMPTY, 0);
}

int mx__app_preset(mx_http_req_t *r, void *st)
{
    return mx__app_guard(r, st, preset_next);
}

/* The shard's answer for a preset the equipment lacks (exp_rep.no_preset);
 * every other 404 is an unknown character. */
static bool preset_missing(const struct mx_msg *m)
{
    struct mx_m_exp_rep rep;
    return m->env.type == MX_T_exp_rep && mx_msg_decode(m, &rep) == 0 && rep.status != 0 &&
           rep.no_preset;
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
    case PEND_EQUIP:
    case PEND_EQUIP_GZ:
        equipment_answer(a, r, m, kind == PEND_EQUIP_GZ);
        break;
    case PEND_TOTAL:
        total_answer(a, r, m);
        break;
    case PEND_PRESET:
        if (preset_missing(m)) /* the equipment lacks it: the whole document for the answer */
            mx__app_ask_doc(r, a, MX_SVC_EXPECTATION, 0, false, PEND_PRESET_EMPTY, 0);
        else if (mx__app_cache_doc(a, r, m, &d, &stale))
            mx__app_respond_doc(a, r, d, stale);
        break;
    case PEND_PRESET_EMPTY:
        if (mx__app_cache_doc(a, r, m, &d, &stale))
            empty_preset_doc(r, d, stale);
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
