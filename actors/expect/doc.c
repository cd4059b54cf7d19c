/* doc.c - the expectation document builder (see mx_doc.h, DESIGN.md section 8
 * and docs/expectation.md). Calls the starforce, cube and flame calculators
 * per item, memoising cube and flame results in the context, and writes the
 * exact field names of the MapleExpectation service with mx_jsonw.
 */
#include "mx_doc.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mx_err.h"
#include "mx_flame.h"
#include "mx_starforce.h"

#define MEMO_KEY_MAX MX_MEMO_KEY_MAX

struct mx_calc {
    const struct mx_cube_table *table; /* borrowed, read-only */
    struct mx_memo *cube_memo;         /* NULL: no memo */
    struct mx_memo *flame_memo;
    struct mx_memo *sf_memo;
};

struct flame_val {
    int rc;
    double p[MX_FLAME_NTYPES];
};

struct sf_calc {
    int rc;
    struct mx_sf_result plain, shield;
};

struct cost4 {
    int64_t black, red, additional, starforce;
};

void mx_doc_opts_default(struct mx_doc_opts *o)
{
    memset(o, 0, sizeof *o);
    o->star_catch = o->discount = o->sunday = true;
}

int mx_calc_new(const struct mx_cube_table *table, size_t memo_entries, struct mx_calc **out)
{
    struct mx_calc *c;
    int rc = 0;
    if (!out)
        return MX_EINVAL;
    *out = NULL;
    c = calloc(1, sizeof *c);
    if (!c)
        return MX_ENOMEM;
    c->table = table;
    if (memo_entries) {
        if ((rc = mx_memo_new(memo_entries, sizeof(struct mx_cube_result), &c->cube_memo)) ||
            (rc = mx_memo_new(memo_entries, sizeof(struct flame_val), &c->flame_memo)) ||
            (rc = mx_memo_new(memo_entries, sizeof(struct sf_calc), &c->sf_memo)))
            goto out_free_calc;
    }
    *out = c;
    return 0;
out_free_calc:
    mx_calc_free(c);
    return rc;
}

void mx_calc_free(struct mx_calc *c)
{
    if (!c)
        return;
    mx_memo_free(c->cube_memo);
    mx_memo_free(c->flame_memo);
    mx_memo_free(c->sf_memo);
    free(c);
}

void mx_calc_clear_memo(struct mx_calc *c)
{
    if (c && c->cube_memo)
        mx_memo_clear(c->cube_memo);
    if (c && c->flame_memo)
        mx_memo_clear(c->flame_memo);
    if (c && c->sf_memo)
        mx_memo_clear(c->sf_memo);
}

void mx_calc_get_stats(const struct mx_calc *c, struct mx_calc_stats *out)
{
    memset(out, 0, sizeof *out);
    if (c && c->cube_memo)
        mx_memo_get_stats(c->cube_memo, &out->cube);
    if (c && c->flame_memo)
        mx_memo_get_stats(c->flame_memo, &out->flame);
    if (c && c->sf_memo)
        mx_memo_get_stats(c->sf_memo, &out->starforce);
}

int mx_doc_cost_text(int64_t meso, char *buf, size_t cap)
{
    int64_t man, jo, eok, rest;
    size_t len = 0;
    int n;

    if (meso < 0)
        meso = 0;
    man = (meso + 5000) / 10000; /* half-up to 만 */
    jo = man / 100000000;
    eok = (man / 10000) % 10000;
    rest = man % 10000;
    if (!cap)
        return MX_ETOOBIG;
    buf[0] = '\0';
    if (!man) {
        n = snprintf(buf, cap, "0");
        return n < 0 || (size_t)n >= cap ? MX_ETOOBIG : 0;
    }
    if (jo) {
        n = snprintf(buf + len, cap - len, "%lld조", (long long)jo);
        if (n < 0 || (size_t)n >= cap - len)
            return MX_ETOOBIG;
        len += (size_t)n;
    }
    if (eok) {
        n = snprintf(buf + len, cap - len, "%s%lld억", len ? " " : "", (long long)eok);
        if (n < 0 || (size_t)n >= cap - len)
            return MX_ETOOBIG;
        len += (size_t)n;
    }
    if (rest) {
        n = snprintf(buf + len, cap - len, "%s%lld만", len ? " " : "", (long long)rest);
        if (n < 0 || (size_t)n >= cap - len)
            return MX_ETOOBIG;
    }
    return 0;
}

static int64_t meso_round(double v)
{
    if (!(v > 0.0) || !isfinite(v))
        return 0;
    if (v > 9.0e18)
        return INT64_MAX;
    return (int64_t)llround(v);
}

/* Expectations are estimates: 15 significant digits are plenty, and one
 * snprintf is several times cheaper than the writer's shortest round-trip
 * search (it dominates a warm document otherwise). */
static void kdouble(struct mx_jsonw *w, const char *key, double v)
{
    char b[40];
    if (!isfinite(v)) {
        mx_jsonw_knull(w, key);
        return;
    }
    int n = snprintf(b, sizeof b, "%.15g", v);
    mx_jsonw_key(w, key);
    mx_jsonw_raw(w, b, (size_t)n);
}

static void kcost(struct mx_jsonw *w, const char *key, int64_t v)
{
    mx_jsonw_kint(w, key, v);
}

static void write_breakdown(struct mx_jsonw *w, const char *key, const struct cost4 *c)
{
    mx_jsonw_key(w, key);
    mx_jsonw_obj_open(w);
    kcost(w, "blackCubeCost", c->black);
    kcost(w, "redCubeCost", c->red);
    kcost(w, "additionalCubeCost", c->additional);
    kcost(w, "starforceCost", c->starforce);
    mx_jsonw_obj_close(w);
}

static int64_t sum4(const struct cost4 *c)
{
    return c->black + c->red + c->additional + c->starforce;
}

static void cost_text(struct mx_jsonw *w, const char *key, int64_t v)
{
    char buf[64];
    mx_doc_cost_text(v, buf, sizeof buf);
    mx_jsonw_kstr(w, key, buf);
}

static void kgrade(struct mx_jsonw *w, const char *key, const char *text)
{
    if (text[0])
        mx_jsonw_kstr(w, key, text);
    else
        mx_jsonw_knull(w, key);
}

/* ---- cube ------------------------------------------------------------------- */

/* key: type \0 slot \0 grade level \0 line1 \0 line2 \0 line3 */
static size_t cube_key(char *k, const struct mx_cube_query *q)
{
    size_t len = 0;
    const char *parts[5] = {q->cube_type, q->item_slot, q->lines[0], q->lines[1], q->lines[2]};
    char gl[32];
    snprintf(gl, sizeof gl, "%d/%d", (int)q->grade, q->level);
    for (int i = 0; i < 6; i++) {
        const char *s = i < 2 ? parts[i] : i == 2 ? gl : parts[i - 1];
        size_t n = s ? strlen(s) + 1 : 1;
        if (len + n > MEMO_KEY_MAX)
            return MEMO_KEY_MAX + 1; /* too long: not memoised */
        if (s)
            memcpy(k + len, s, n);
        else
            k[len] = '\0';
        len += n;
    }
    return len;
}

static void cube_eval(struct mx_calc *c, const struct mx_cube_query *q, struct mx_cube_result *r)
{
    char key[MEMO_KEY_MAX + 1];
    size_t klen = 0;
    if (c->cube_memo) {
        klen = cube_key(key, q);
        if (klen <= MEMO_KEY_MAX && mx_memo_get(c->cube_memo, key, klen, r))
            return;
    }
    mx_cube_expect(c->table, q, r);
    if (c->cube_memo && klen <= MEMO_KEY_MAX)
        mx_memo_put(c->cube_memo, key, klen, r);
}

static const char *engine_name(enum mx_cube_engine e)
{
    switch (e) {
    case MX_CUBE_ENGINE_STAT_SUM: return "STAT_SUM";
    case MX_CUBE_ENGINE_ORDERINGS: return "ORDERINGS";
    default: return "NONE";
    }
}

/* Computes one cube expectation (or the reason it is null). */
static void cube_compute(struct mx_calc *c, const char *cube_type, const struct mx_equip_item *it,
                         enum mx_grade grade, const char *grade_text,
                         const char (*lines)[MX_EQUIP_LINE_MAX], struct mx_cube_result *r)
{
    struct mx_cube_query q = {cube_type, it->slot, grade, it->level,
                              {lines[0], lines[1], lines[2]}};
    memset(r, 0, sizeof *r);
    r->level_band = -1;
    if (grade == MX_GRADE_NONE)
        snprintf(r->reason, sizeof r->reason, "no potential");
    else if (grade == MX_GRADE_UNKNOWN)
        snprintf(r->reason, sizeof r->reason, "unknown grade \"%.60s\"", grade_text);
    else if (!c->table)
        snprintf(r->reason, sizeof r->reason, "no cube table loaded");
    else if (!mx_cube_table_has_type(c->table, cube_type))
        snprintf(r->reason, sizeof r->reason, "cube table has no %s rows", cube_type);
    else
        cube_eval(c, &q, r);
}

static int64_t cube_cost(const struct mx_cube_result *r)
{
    return r->ok ? meso_round(r->expected_cost) : 0;
}

static void write_cube(struct mx_jsonw *w, const char *key, const char *cube_type,
                       const char *grade_text, const char (*lines)[MX_EQUIP_LINE_MAX],
                       const struct mx_cube_result *r)
{
    mx_jsonw_key(w, key);
    mx_jsonw_obj_open(w);
    mx_jsonw_kstr(w, "cubeType", cube_type);
    kgrade(w, "grade", grade_text);
    mx_jsonw_key(w, "options");
    mx_jsonw_arr_open(w);
    for (int i = 0; i < 3; i++)
        if (lines[i][0])
            mx_jsonw_str(w, lines[i]);
        else
            mx_jsonw_null(w);
    mx_jsonw_arr_close(w);
    if (r->level_band >= 0)
        mx_jsonw_kint(w, "levelBand", r->level_band);
    else
        mx_jsonw_knull(w, "levelBand");
    mx_jsonw_kstr(w, "engine", engine_name(r->engine));
    if (r->engine == MX_CUBE_ENGINE_STAT_SUM) {
        mx_jsonw_kstr(w, "stat", r->stat);
        mx_jsonw_kint(w, "statTarget", r->target);
    }
    if (r->ok) {
        kdouble(w, "probability", r->probability);
        kdouble(w, "expectedTrials", r->expected_trials);
    } else {
        mx_jsonw_knull(w, "probability");
        mx_jsonw_knull(w, "expectedTrials");
    }
    kcost(w, "cubePrice", meso_round(r->cube_price));
    kcost(w, "expectedCost", cube_cost(r));
    if (!r->ok)
        mx_jsonw_kstr(w, "reason", r->reason);
    mx_jsonw_obj_close(w);
}

/* ---- starforce -------------------------------------------------------------- */

static void sf_compute(struct mx_calc *c, const struct mx_equip_item *it,
                       const struct mx_doc_opts *o, struct sf_calc *s)
{
    int key[6] = {it->level, it->starforce, it->scroll, o->star_catch, o->discount, o->sunday};
    if (c->sf_memo && mx_memo_get(c->sf_memo, key, sizeof key, s))
        return;
    struct mx_sf_opts plain = {o->star_catch, o->discount, o->sunday, false};
    struct mx_sf_opts shield = plain;
    shield.shield = true;
    memset(s, 0, sizeof *s);
    s->rc = mx_sf_expect(it->level, 0, it->starforce, it->scroll, &plain, &s->plain);
    if (!s->rc)
        s->rc = mx_sf_expect(it->level, 0, it->starforce, it->scroll, &shield, &s->shield);
    if (c->sf_memo)
        mx_memo_put(c->sf_memo, key, sizeof key, s);
}

static int64_t sf_cost(const struct sf_calc *s)
{
    return s->rc ? 0 : meso_round(s->plain.cost);
}

static void write_starforce(struct mx_jsonw *w, const struct mx_equip_item *it,
                            const struct mx_doc_opts *o, const struct sf_calc *s)
{
    mx_jsonw_key(w, "starforceExpectation");
    mx_jsonw_obj_open(w);
    mx_jsonw_kint(w, "fromStar", 0);
    mx_jsonw_kint(w, "toStar", it->starforce);
    mx_jsonw_kint(w, "maxStar", mx_sf_max_star(it->level, it->scroll));
    mx_jsonw_kbool(w, "scrollItem", it->scroll);
    if (s->rc) {
        mx_jsonw_knull(w, "costWithoutDestroyPrevention");
        mx_jsonw_knull(w, "costWithDestroyPrevention");
        mx_jsonw_knull(w, "expectedDestroyCount");
        mx_jsonw_knull(w, "expectedDestroyCountWithDestroyPrevention");
        mx_jsonw_knull(w, "expectedAttempts");
        mx_jsonw_kstr(w, "reason", it->scroll ? "scroll item above 15 stars"
                                              : "star out of range");
    } else {
        kcost(w, "costWithoutDestroyPrevention", meso_round(s->plain.cost));
        kcost(w, "costWithDestroyPrevention", meso_round(s->shield.cost));
        kdouble(w, "expectedDestroyCount", s->plain.destroys);
        kdouble(w, "expectedDestroyCountWithDestroyPrevention", s->shield.destroys);
        kdouble(w, "expectedAttempts", s->plain.attempts);
        if (it->scroll)
            mx_jsonw_kstr(w, "reason", "scroll item: attempts are scrolls, no meso");
    }
    mx_jsonw_key(w, "options");
    mx_jsonw_obj_open(w);
    mx_jsonw_kbool(w, "starCatch", o->star_catch);
    mx_jsonw_kbool(w, "discount", o->discount);
    mx_jsonw_kbool(w, "sunday", o->sunday);
    mx_jsonw_obj_close(w);
    mx_jsonw_obj_close(w);
}

/* ---- flame ------------------------------------------------------------------ */

static void write_flame(struct mx_calc *c, struct mx_jsonw *w, const struct mx_equip_item *it,
                        const struct mx_flame_weights *fw)
{
    static const char *const keys[MX_FLAME_NTYPES] = {
        "powerfulFlameTrials", "eternalFlameTrials", "abyssFlameTrials"};
    struct mx_flame_item fi = {it->level, !strcmp(it->slot, "무기"),
                               mx_flame_is_boss_item(it->name), 0};
    int score = it->has_flame ? mx_flame_score(&it->flame, fw) : 0;
    const char *reason = NULL;
    struct flame_val v;

    memset(&v, 0, sizeof v);
    fi.base_attack = fi.weapon ? (fw->magic ? it->base_magic : it->base_attack) : 0;
    if (!it->has_flame) {
        reason = "no item_add_option";
    } else if (score <= 0) {
        reason = mx_flame_can_have(it->slot) ? "no flame score for this class"
                                             : "item cannot carry flames";
    } else {
        struct {
            struct mx_flame_item fi;
            struct mx_flame_weights fw;
            int score;
        } key;
        memset(&key, 0, sizeof key); /* padding bytes are part of the key */
        key.fi = fi;
        key.fw = *fw;
        key.score = score;
        if (!c->flame_memo || !mx_memo_get(c->flame_memo, &key, sizeof key, &v)) {
            for (int t = 0; t < MX_FLAME_NTYPES && !v.rc; t++)
                v.rc = mx_flame_prob(&fi, fw, (enum mx_flame_type)t, score, &v.p[t]);
            if (c->flame_memo)
                mx_memo_put(c->flame_memo, &key, sizeof key, &v);
        }
        if (v.rc)
            reason = v.rc == MX_ETOOBIG ? "flame score above the supported maximum"
                                        : "flame calculation failed";
    }

    mx_jsonw_key(w, "flameExpectation");
    mx_jsonw_obj_open(w);
    mx_jsonw_kint(w, "score", score);
    mx_jsonw_kstr(w, "mainStat", mx_flame_stat_name(fw->main));
    mx_jsonw_kbool(w, "bossEquipment", fi.boss);
    bool all = true;
    for (int t = 0; t < MX_FLAME_NTYPES; t++) {
        if (!reason && v.p[t] > 0.0) {
            kdouble(w, keys[t], 1.0 / v.p[t]);
        } else {
            mx_jsonw_knull(w, keys[t]);
            all = false;
        }
    }
    if (reason)
        mx_jsonw_kstr(w, "reason", reason);
    else if (!all)
        mx_jsonw_kstr(w, "reason", "score unreachable with some flame types");
    mx_jsonw_obj_close(w);
}

/* Class -> weights, else the stat named most often in potential lines. */
static void doc_weights(const struct mx_equip *eq, struct mx_flame_weights *fw)
{
    static const enum mx_stat second[4] = {MX_STAT_DEX, MX_STAT_STR, MX_STAT_LUK, MX_STAT_DEX};
    int count[4] = {0};
    if (mx_flame_weights_for_class(eq->character_class, fw))
        return;
    for (int l = 0; l < MX_EQUIP_NLISTS; l++)
        for (int i = 0; i < eq->lists[l].n; i++) {
            const struct mx_equip_item *it = &eq->lists[l].items[i];
            for (int j = 0; j < 6; j++) {
                const char *s = j < 3 ? it->pot[j] : it->add[j - 3];
                for (int k = 0; k < 4; k++)
                    if (!strncmp(s, mx_flame_stat_name((enum mx_stat)k), 3))
                        count[k]++;
            }
        }
    int best = 0;
    for (int k = 1; k < 4; k++)
        if (count[k] > count[best])
            best = k;
    fw->main = (enum mx_stat)best;
    fw->secondary = second[best];
    fw->magic = best == MX_STAT_INT;
}

/* ---- items and presets ------------------------------------------------------ */

struct item_calc {
    struct mx_cube_result black, additional;
    struct sf_calc sf;
    struct cost4 cost;
};

static void item_compute(struct mx_calc *c, const struct mx_equip_item *it,
                         const struct mx_doc_opts *o, struct item_calc *ic)
{
    cube_compute(c, "BLACK", it, it->pot_grade, it->pot_grade_text, it->pot, &ic->black);
    cube_compute(c, "ADDITIONAL", it, it->add_grade, it->add_grade_text, it->add,
                 &ic->additional);
    sf_compute(c, it, o, &ic->sf);
    ic->cost.black = cube_cost(&ic->black);
    ic->cost.red = 0; /* the design prices black cubes only */
    ic->cost.additional = cube_cost(&ic->additional);
    ic->cost.starforce = sf_cost(&ic->sf);
}

static void write_item(struct mx_calc *c, struct mx_jsonw *w, const struct mx_equip_item *it,
                       const struct mx_doc_opts *o, const struct mx_flame_weights *fw,
                       const struct item_calc *ic)
{
    int64_t total = sum4(&ic->cost);
    mx_jsonw_obj_open(w);
    mx_jsonw_kstr(w, "itemName", it->name);
    mx_jsonw_kstr(w, "itemIcon", it->icon);
    mx_jsonw_kstr(w, "itemPart", it->part);
    mx_jsonw_kstr(w, "itemSlot", it->slot);
    mx_jsonw_kint(w, "itemLevel", it->level);
    kcost(w, "expectedCost", total);
    cost_text(w, "expectedCostText", total);
    write_breakdown(w, "costBreakdown", &ic->cost);
    kgrade(w, "potentialGrade", it->pot_grade_text);
    kgrade(w, "additionalPotentialGrade", it->add_grade_text);
    mx_jsonw_kint(w, "currentStar", it->starforce);
    mx_jsonw_kint(w, "targetStar", it->starforce);
    mx_jsonw_kbool(w, "isNoljang", it->scroll);
    mx_jsonw_kint(w, "specialRingLevel", it->special_ring_level);
    write_cube(w, "blackCubeExpectation", "BLACK", it->pot_grade_text, it->pot, &ic->black);
    write_cube(w, "additionalCubeExpectation", "ADDITIONAL", it->add_grade_text, it->add,
               &ic->additional);
    write_starforce(w, it, o, &ic->sf);
    write_flame(c, w, it, fw);
    mx_jsonw_obj_close(w);
}

struct preset_calc {
    int no;
    const struct mx_equip_list *list;
    struct cost4 cost;
};

static void preset_compute(struct mx_calc *c, struct preset_calc *p, const struct mx_doc_opts *o,
                           struct item_calc *items)
{
    memset(&p->cost, 0, sizeof p->cost);
    for (int i = 0; i < p->list->n; i++) {
        item_compute(c, &p->list->items[i], o, &items[i]);
        p->cost.black += items[i].cost.black;
        p->cost.red += items[i].cost.red;
        p->cost.additional += items[i].cost.additional;
        p->cost.starforce += items[i].cost.starforce;
    }
}

int mx_doc_build(struct mx_calc *c, const struct mx_equip *eq, const struct mx_doc_opts *o,
                 struct mx_jsonw *w)
{
    struct preset_calc pre[3];
    struct item_calc *items = NULL;
    struct mx_flame_weights fw;
    int np = 0, best = -1, rc = 0;

    if (!c || !eq || !o || !w || o->preset < 0 || o->preset > 3)
        return MX_EINVAL;
    for (int n = 1; n <= 3; n++) {
        if (o->preset && o->preset != n)
            continue;
        if (!eq->lists[n].present)
            continue;
        pre[np].no = n;
        pre[np].list = &eq->lists[n];
        np++;
    }
    if (!np && o->preset)
        return MX_ENOTFOUND;
    if (!np && eq->lists[MX_EQUIP_CURRENT].present) {
        /* a response without presets: the worn items stand for preset 1 */
        pre[0].no = eq->preset_no >= 1 && eq->preset_no <= 3 ? eq->preset_no : 1;
        pre[0].list = &eq->lists[MX_EQUIP_CURRENT];
        np = 1;
    }
    items = calloc((size_t)(np ? np : 1) * MX_EQUIP_MAX_ITEMS, sizeof *items);
    if (!items)
        return MX_ENOMEM;
    doc_weights(eq, &fw);
    for (int p = 0; p < np; p++) {
        preset_compute(c, &pre[p], o, items + (size_t)p * MX_EQUIP_MAX_ITEMS);
        if (best < 0 || sum4(&pre[p].cost) > sum4(&pre[best].cost))
            best = p; /* ties keep the lower preset number */
    }

    struct cost4 zero = {0};
    const struct cost4 *top = best >= 0 ? &pre[best].cost : &zero;
    mx_jsonw_obj_open(w);
    mx_jsonw_kstr(w, "userIgn", o->user_ign ? o->user_ign : "");
    if (o->calculated_at)
        mx_jsonw_kstr(w, "calculatedAt", o->calculated_at);
    else
        mx_jsonw_knull(w, "calculatedAt");
    mx_jsonw_kbool(w, "fromCache", o->from_cache);
    kcost(w, "totalExpectedCost", sum4(top));
    cost_text(w, "totalCostText", sum4(top));
    write_breakdown(w, "totalCostBreakdown", top);
    if (best >= 0)
        mx_jsonw_kint(w, "maxPresetNo", pre[best].no);
    else
        mx_jsonw_knull(w, "maxPresetNo");
    mx_jsonw_key(w, "presets");
    mx_jsonw_arr_open(w);
    for (int p = 0; p < np; p++) {
        const struct item_calc *ic = items + (size_t)p * MX_EQUIP_MAX_ITEMS;
        mx_jsonw_obj_open(w);
        mx_jsonw_kint(w, "presetNo", pre[p].no);
        kcost(w, "totalExpectedCost", sum4(&pre[p].cost));
        cost_text(w, "totalCostText", sum4(&pre[p].cost));
        write_breakdown(w, "costBreakdown", &pre[p].cost);
        mx_jsonw_key(w, "items");
        mx_jsonw_arr_open(w);
        for (int i = 0; i < pre[p].list->n; i++)
            write_item(c, w, &pre[p].list->items[i], o, &fw, &ic[i]);
        mx_jsonw_arr_close(w);
        mx_jsonw_obj_close(w);
    }
    mx_jsonw_arr_close(w);
    mx_jsonw_obj_close(w);
    rc = w->err;
    free(items);
    return rc;
}
