/* doc.c - the expectation document builder (see mx_doc.h, DESIGN.md section 8
 * and docs/expectation.md). Calls the starforce, cube and flame calculators
 * per item, memoising cube and starforce results and keeping one flame
 * score distribution per item structure in the context, and writes the
 * field names of the MapleExpectation service (plus mx's own) with mx_jsonw.
 *
 * Upstream numbers are untrusted: item levels, stars, flame stats and
 * weapon attack outside what the calculators model give a per-item reason,
 * and every meso sum saturates at INT64_MAX.
 */
#include "mx_doc.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mx_err.h"
#include "mx_flame.h"
#include "mx_numfmt.h"
#include "mx_starforce.h"

#define MEMO_KEY_MAX MX_MEMO_KEY_MAX
#define ITEM_LEVEL_MAX 300 /* levels above (and below 0) are not priced */
#define FT_SETS 32         /* flame distribution cache: FT_SETS x FT_WAYS structures */
#define FT_WAYS 4
#define FT_BUDGET (16u << 20) /* default bytes of distributions per context */

/* What a flame distribution depends on (see mx_flame_dist_new): the level
 * only through level / 20 (and level / 40 = tier / 2). */
struct ft_key {
    int tier;
    int base_attack; /* weapons only, else 0 */
    unsigned char weapon, boss, main, secondary, magic, pad[3];
};

struct ft_entry {
    struct ft_key key;
    uint64_t used; /* tick of last use, 0 = empty */
    int rc;        /* of building the distributions */
    struct mx_flame_dist *d[MX_FLAME_NTYPES];
};

struct mx_calc {
    const struct mx_cube_table *table; /* borrowed, read-only */
    struct mx_memo *cube_memo;         /* NULL: no memo */
    struct mx_memo *sf_memo;
    struct ft_entry ft[FT_SETS * FT_WAYS]; /* always on; bounded by slots and ft_budget */
    uint64_t ft_tick;
    size_t ft_bytes;  /* held by the distributions, <= ft_budget after each insert */
    size_t ft_budget; /* FT_BUDGET unless set */
    struct mx_memo_stats ft_stats;
    bool timing;
    uint64_t documents, ns_total, ns_cube, ns_starforce, ns_flame;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void mx_calc_set_flame_budget(struct mx_calc *c, size_t bytes)
{
    if (c)
        c->ft_budget = bytes;
}

void mx_calc_set_timing(struct mx_calc *c, bool on)
{
    if (c)
        c->timing = on;
}

struct sf_calc {
    int rc;
    struct mx_sf_result plain, shield;
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
    c->ft_stats.capacity = FT_SETS * FT_WAYS;
    c->ft_budget = FT_BUDGET;
    if (memo_entries) {
        if ((rc = mx_memo_new(memo_entries, sizeof(struct mx_cube_result), &c->cube_memo)) ||
            (rc = mx_memo_new(memo_entries, sizeof(struct sf_calc), &c->sf_memo)))
            goto out_free_calc;
    }
    *out = c;
    return 0;
out_free_calc:
    mx_calc_free(c);
    return rc;
}

/* Frees one structure's distributions and marks its slot empty. */
static void ft_drop(struct mx_calc *c, struct ft_entry *e)
{
    for (int t = 0; t < MX_FLAME_NTYPES; t++) {
        c->ft_bytes -= mx_flame_dist_bytes(e->d[t]);
        mx_flame_dist_free(e->d[t]);
    }
    if (e->used)
        c->ft_stats.entries--;
    memset(e, 0, sizeof *e);
}

static void ft_clear(struct mx_calc *c)
{
    for (size_t i = 0; i < FT_SETS * FT_WAYS; i++)
        ft_drop(c, &c->ft[i]);
}

void mx_calc_free(struct mx_calc *c)
{
    if (!c)
        return;
    mx_memo_free(c->cube_memo);
    mx_memo_free(c->sf_memo);
    ft_clear(c);
    free(c);
}

void mx_calc_clear_memo(struct mx_calc *c)
{
    if (c && c->cube_memo)
        mx_memo_clear(c->cube_memo);
    if (c && c->sf_memo)
        mx_memo_clear(c->sf_memo);
}

void mx_calc_get_stats(const struct mx_calc *c, struct mx_calc_stats *out)
{
    memset(out, 0, sizeof *out);
    if (c && c->cube_memo)
        mx_memo_get_stats(c->cube_memo, &out->cube);
    if (c) {
        out->flame = c->ft_stats;
        out->flame_bytes = c->ft_bytes;
    }
    if (c && c->sf_memo)
        mx_memo_get_stats(c->sf_memo, &out->starforce);
    if (c) {
        out->documents = c->documents;
        out->ns_total = c->ns_total;
        out->ns_cube = c->ns_cube;
        out->ns_starforce = c->ns_starforce;
        out->ns_flame = c->ns_flame;
    }
}

/* Appends the decimal digits of v (>= 0) at p; returns the new end. */
static char *put_uint(char *p, uint64_t v)
{
    char d[24];
    int n = 0;
    do
        d[n++] = (char)('0' + v % 10);
    while (v /= 10);
    while (n)
        *p++ = d[--n];
    return p;
}

int mx_doc_cost_text(int64_t meso, char *buf, size_t cap)
{
    /* "X조 Y억 Z만": at most 19 digits + 3 x 3-byte units + 2 spaces + NUL */
    char tmp[64], *p = tmp;
    int64_t man, parts[3];
    static const char *const unit[3] = {"조", "억", "만"};

    if (!cap)
        return MX_ETOOBIG;
    if (meso < 0)
        meso = 0;
    man = meso / 10000 + (meso % 10000 >= 5000); /* half-up to 만, no overflow */
    parts[0] = man / 100000000;
    parts[1] = (man / 10000) % 10000;
    parts[2] = man % 10000;
    if (!man) {
        *p++ = '0';
    } else {
        for (int i = 0; i < 3; i++) {
            if (!parts[i])
                continue;
            if (p != tmp)
                *p++ = ' ';
            p = put_uint(p, (uint64_t)parts[i]);
            memcpy(p, unit[i], 3); /* each unit is 3 bytes of UTF-8 */
            p += 3;
        }
    }
    size_t n = (size_t)(p - tmp);
    if (n >= cap) {
        buf[0] = '\0';
        return MX_ETOOBIG;
    }
    memcpy(buf, tmp, n);
    buf[n] = '\0';
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

/* Meso sums saturate: a hostile document cannot overflow a total. */
static int64_t sat_add(int64_t a, int64_t b)
{
    return b > 0 && a > INT64_MAX - b ? INT64_MAX : a + b;
}

/* ---- writing ----------------------------------------------------------------
 * Keys are literals known to need no escaping, so they are written as raw
 * bytes (the writer's own comma logic still applies), and integers with a
 * small itoa: with the calculations memoised or precomputed, formatting is
 * most of a document's cost. */

static void wkey(struct mx_jsonw *w, const char *quoted, size_t n)
{
    mx_jsonw_raw(w, quoted, n); /* comma (if due), then "key": */
    w->after_key = true;        /* the value that follows takes no comma */
}
#define K(w, name) wkey((w), "\"" name "\":", sizeof("\"" name "\":") - 1)

static void wint(struct mx_jsonw *w, int64_t v)
{
    char b[24], *p = b + sizeof b;
    uint64_t u = v < 0 ? 0u - (uint64_t)v : (uint64_t)v;
    do
        *--p = (char)('0' + u % 10);
    while (u /= 10);
    if (v < 0)
        *--p = '-';
    mx_jsonw_raw(w, p, (size_t)(b + sizeof b - p));
}

static void kint(struct mx_jsonw *w, const char *quoted, size_t n, int64_t v)
{
    wkey(w, quoted, n);
    wint(w, v);
}
#define KINT(w, name, v) kint((w), "\"" name "\":", sizeof("\"" name "\":") - 1, (v))

/* Expectations are estimates: 15 significant digits are plenty (and much
 * cheaper than the writer's shortest round-trip search). */
static void wdouble(struct mx_jsonw *w, double v)
{
    char b[MX_NUMFMT_MAX];
    if (!isfinite(v)) {
        mx_jsonw_null(w);
        return;
    }
    mx_jsonw_raw(w, b, mx_fmt_g15(v, b));
}

static void wnull(struct mx_jsonw *w)
{
    mx_jsonw_raw(w, "null", 4);
}

/* v when known, else null */
static void wdouble_if(struct mx_jsonw *w, bool known, double v)
{
    if (known)
        wdouble(w, v);
    else
        wnull(w);
}

static void wbool(struct mx_jsonw *w, bool v)
{
    mx_jsonw_raw(w, v ? "true" : "false", v ? 4 : 5);
}

static void cost_text(struct mx_jsonw *w, int64_t v)
{
    char buf[64];
    mx_doc_cost_text(v, buf, sizeof buf);
    mx_jsonw_str(w, buf);
}

struct cost4 {
    int64_t black, red, additional, starforce;
};

static int64_t sum4(const struct cost4 *c)
{
    return sat_add(sat_add(sat_add(c->black, c->red), c->additional), c->starforce);
}

static void add4(struct cost4 *a, const struct cost4 *b)
{
    a->black = sat_add(a->black, b->black);
    a->red = sat_add(a->red, b->red);
    a->additional = sat_add(a->additional, b->additional);
    a->starforce = sat_add(a->starforce, b->starforce);
}

static void write_breakdown(struct mx_jsonw *w, const struct cost4 *c)
{
    mx_jsonw_obj_open(w);
    KINT(w, "blackCubeCost", c->black);
    KINT(w, "redCubeCost", c->red);
    KINT(w, "additionalCubeCost", c->additional);
    KINT(w, "starforceCost", c->starforce);
    mx_jsonw_obj_close(w);
}

static void wgrade(struct mx_jsonw *w, const char *text)
{
    if (text[0])
        mx_jsonw_str(w, text);
    else
        wnull(w);
}

static bool level_ok(int level)
{
    return level >= 0 && level <= ITEM_LEVEL_MAX;
}

/* ---- cube ------------------------------------------------------------------- */

/* key: type \0 slot \0 grade level \0 line1 \0 line2 \0 line3 */
static size_t cube_key(char *k, const struct mx_cube_query *q)
{
    size_t len = 0;
    const char *parts[5] = {q->cube_type, q->item_slot, q->lines[0], q->lines[1], q->lines[2]};
    char gl[32], *g = gl; /* "grade/level"; level is 0..300 here (level_ok) */
    g = put_uint(g, (uint64_t)q->grade);
    *g++ = '/';
    g = put_uint(g, (uint64_t)(q->level < 0 ? 0 : q->level));
    *g = '\0';
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
    case MX_CUBE_ENGINE_STAT_SUM:
        return "STAT_SUM";
    case MX_CUBE_ENGINE_ORDERINGS:
        return "ORDERINGS";
    default:
        return "NONE";
    }
}

/* The seed's grade names (CubeExpectationDto.currentGrade/targetGrade). */
static const char *grade_enum(enum mx_grade g)
{
    switch (g) {
    case MX_GRADE_RARE:
        return "RARE";
    case MX_GRADE_EPIC:
        return "EPIC";
    case MX_GRADE_UNIQUE:
        return "UNIQUE";
    case MX_GRADE_LEGENDARY:
        return "LEGENDARY";
    default:
        return NULL;
    }
}

/* Computes one cube expectation (or the reason it is null). */
static void cube_compute(struct mx_calc *c, const char *cube_type, const struct mx_equip_item *it,
                         enum mx_grade grade, const char *grade_text,
                         const char (*lines)[MX_EQUIP_LINE_MAX], struct mx_cube_result *r)
{
    struct mx_cube_query q = {
        cube_type, it->slot, grade, it->level, {lines[0], lines[1], lines[2]}};
    memset(r, 0, sizeof *r);
    r->level_band = -1;
    if (grade == MX_GRADE_NONE)
        snprintf(r->reason, sizeof r->reason, "no potential");
    else if (grade == MX_GRADE_UNKNOWN)
        snprintf(r->reason, sizeof r->reason, "unknown grade \"%.60s\"", grade_text);
    else if (!level_ok(it->level))
        snprintf(r->reason, sizeof r->reason, "item level %d outside 0..%d", it->level,
                 ITEM_LEVEL_MAX);
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

/* An item has a potential that could not be priced (its cost counts as 0
 * in the totals, which are then a lower bound). */
static bool cube_unpriced(enum mx_grade grade, const struct mx_cube_result *r)
{
    return grade != MX_GRADE_NONE && !r->ok;
}

static void write_cube(struct mx_jsonw *w, const char *cube_type, enum mx_grade grade,
                       const char *grade_text, const char (*lines)[MX_EQUIP_LINE_MAX],
                       const struct mx_cube_result *r)
{
    const char *ge = grade_enum(grade);
    int64_t cost = cube_cost(r);
    mx_jsonw_obj_open(w);
    K(w, "cubeType");
    mx_jsonw_str(w, cube_type);
    K(w, "grade");
    wgrade(w, grade_text);
    K(w, "currentGrade"); /* the cube rerolls the lines at the item's grade */
    mx_jsonw_str(w, ge);
    K(w, "targetGrade");
    mx_jsonw_str(w, ge);
    K(w, "potential");
    {
        char buf[3 * MX_EQUIP_LINE_MAX + 8];
        size_t len = 0;
        for (int i = 0; i < 3; i++) {
            size_t n = strlen(lines[i]);
            if (!n)
                continue;
            if (len) {
                memcpy(buf + len, ", ", 2);
                len += 2;
            }
            memcpy(buf + len, lines[i], n);
            len += n;
        }
        mx_jsonw_strn(w, buf, len);
    }
    K(w, "options");
    mx_jsonw_arr_open(w);
    for (int i = 0; i < 3; i++)
        if (lines[i][0])
            mx_jsonw_str(w, lines[i]);
        else
            mx_jsonw_null(w);
    mx_jsonw_arr_close(w);
    K(w, "levelBand");
    if (r->level_band >= 0)
        wint(w, r->level_band);
    else
        wnull(w);
    K(w, "engine");
    mx_jsonw_str(w, engine_name(r->engine));
    if (r->engine == MX_CUBE_ENGINE_STAT_SUM) {
        K(w, "stat");
        mx_jsonw_str(w, r->stat);
        KINT(w, "statTarget", r->target);
    }
    K(w, "probability");
    wdouble_if(w, r->ok, r->probability);
    K(w, "expectedTrials");
    wdouble_if(w, r->ok, r->expected_trials);
    KINT(w, "cubePrice", meso_round(r->cube_price));
    KINT(w, "expectedCost", cost);
    K(w, "expectedCostText");
    cost_text(w, cost);
    K(w, "unpriced");
    wbool(w, cube_unpriced(grade, r));
    if (r->unknown_line)
        KINT(w, "unpricedLine", r->unknown_line);
    if (!r->ok) {
        K(w, "reason");
        mx_jsonw_str(w, r->reason);
    }
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
    /* mx_sf_expect range-checks level and stars itself (MX_EINVAL) */
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
    char reason[96];
    mx_jsonw_obj_open(w);
    /* the priced climb is 0 -> the item's star: the seed's names, then mx's */
    KINT(w, "currentStar", 0);
    KINT(w, "targetStar", it->starforce);
    K(w, "isNoljang");
    wbool(w, it->scroll);
    K(w, "noljang");
    wbool(w, it->scroll);
    KINT(w, "fromStar", 0);
    KINT(w, "toStar", it->starforce);
    KINT(w, "maxStar", mx_sf_max_star(it->level, it->scroll));
    K(w, "scrollItem");
    wbool(w, it->scroll);
    if (s->rc) {
        static const char *const nulls[] = {"\"costWithoutDestroyPrevention\":",
                                            "\"costWithoutDestroyPreventionText\":",
                                            "\"expectedDestroyCountWithout\":",
                                            "\"costWithDestroyPrevention\":",
                                            "\"costWithDestroyPreventionText\":",
                                            "\"expectedDestroyCountWith\":",
                                            "\"expectedDestroyCount\":",
                                            "\"expectedDestroyCountWithDestroyPrevention\":",
                                            "\"expectedAttempts\":"};
        for (size_t i = 0; i < sizeof nulls / sizeof nulls[0]; i++) {
            wkey(w, nulls[i], strlen(nulls[i]));
            wnull(w);
        }
        if (!level_ok(it->level))
            snprintf(reason, sizeof reason, "item level %d outside 0..%d", it->level,
                     ITEM_LEVEL_MAX);
        else
            snprintf(reason, sizeof reason, "star %d outside 0..%d%s", it->starforce,
                     it->scroll ? MX_SF_SCROLL_MAX_STAR : MX_SF_MAX_STAR,
                     it->scroll ? " (scroll item)" : "");
        K(w, "reason");
        mx_jsonw_str(w, reason);
    } else {
        int64_t plain = meso_round(s->plain.cost), shield = meso_round(s->shield.cost);
        char dp[MX_NUMFMT_MAX], ds[MX_NUMFMT_MAX];
        mx_fmt_g15(s->plain.destroys, dp); /* finite: sums of finite quotients */
        mx_fmt_g15(s->shield.destroys, ds);
        KINT(w, "costWithoutDestroyPrevention", plain);
        K(w, "costWithoutDestroyPreventionText");
        cost_text(w, plain);
        K(w, "expectedDestroyCountWithout");
        mx_jsonw_raw(w, dp, strlen(dp));
        KINT(w, "costWithDestroyPrevention", shield);
        K(w, "costWithDestroyPreventionText");
        cost_text(w, shield);
        K(w, "expectedDestroyCountWith");
        mx_jsonw_raw(w, ds, strlen(ds));
        K(w, "expectedDestroyCount");
        mx_jsonw_raw(w, dp, strlen(dp));
        K(w, "expectedDestroyCountWithDestroyPrevention");
        mx_jsonw_raw(w, ds, strlen(ds));
        K(w, "expectedAttempts");
        wdouble(w, s->plain.attempts);
        if (it->scroll) {
            K(w, "reason");
            mx_jsonw_str(w, "scroll item: attempts are scrolls, no meso");
        }
    }
    K(w, "options");
    mx_jsonw_obj_open(w);
    K(w, "starCatch");
    wbool(w, o->star_catch);
    K(w, "discount");
    wbool(w, o->discount);
    K(w, "sunday");
    wbool(w, o->sunday);
    mx_jsonw_obj_close(w);
    mx_jsonw_obj_close(w);
}

/* ---- flame ------------------------------------------------------------------ */

static uint64_t ft_hash(const struct ft_key *k)
{
    const unsigned char *p = (const unsigned char *)k;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < sizeof *k; i++) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    return h ^ (h >> 31);
}

/* The three flame distributions of a structure, built on first use and
 * kept (LRU within a 4-way set). NULL entry->rc != 0 when they cannot be. */
static const struct ft_entry *ft_get(struct mx_calc *c, const struct mx_flame_item *fi,
                                     const struct mx_flame_weights *fw)
{
    struct ft_key k;
    memset(&k, 0, sizeof k); /* padding is part of the key */
    k.tier = fi->level / 20;
    k.base_attack = fi->weapon ? fi->base_attack : 0;
    k.weapon = fi->weapon;
    k.boss = fi->boss;
    k.main = (unsigned char)fw->main;
    k.secondary = (unsigned char)fw->secondary;
    k.magic = fw->magic;
    struct ft_entry *set = &c->ft[(ft_hash(&k) % FT_SETS) * FT_WAYS], *victim = &set[0];
    for (int i = 0; i < FT_WAYS; i++) {
        if (set[i].used && !memcmp(&set[i].key, &k, sizeof k)) {
            set[i].used = ++c->ft_tick;
            c->ft_stats.hits++;
            return &set[i];
        }
        if (set[i].used < victim->used)
            victim = &set[i];
    }
    c->ft_stats.misses++;
    if (victim->used)
        c->ft_stats.evictions++;
    ft_drop(c, victim);
    victim->key = k;
    for (int t = 0; t < MX_FLAME_NTYPES && !victim->rc; t++) {
        victim->rc = mx_flame_dist_new(fi, fw, (enum mx_flame_type)t, &victim->d[t]);
        c->ft_bytes += mx_flame_dist_bytes(victim->d[t]);
    }
    /* over the byte budget: drop the least recently used other structures */
    while (c->ft_bytes > c->ft_budget) {
        struct ft_entry *lru = NULL;
        for (size_t i = 0; i < FT_SETS * FT_WAYS; i++)
            if (c->ft[i].used && (!lru || c->ft[i].used < lru->used))
                lru = &c->ft[i];
        if (!lru)
            break; /* only the new one is left: one structure is at most ~2 MB */
        c->ft_stats.evictions++;
        ft_drop(c, lru);
    }
    victim->used = ++c->ft_tick;
    c->ft_stats.entries++;
    c->ft_stats.inserts++;
    return victim;
}

struct flame_calc {
    int64_t score;
    bool boss;
    const char *reason; /* NULL: computed */
    double p[MX_FLAME_NTYPES];
};

static void flame_compute(struct mx_calc *c, const struct mx_equip_item *it,
                          const struct mx_flame_weights *fw, struct flame_calc *f)
{
    struct mx_flame_item fi = {it->level, !strcmp(it->slot, "무기"),
                               mx_flame_is_boss_item(it->name), 0};
    memset(f, 0, sizeof *f);
    f->boss = fi.boss;
    f->score = it->has_flame ? mx_flame_score(&it->flame, fw) : 0;
    fi.base_attack = fi.weapon ? (fw->magic ? it->base_magic : it->base_attack) : 0;
    if (!it->has_flame) {
        f->reason = "no item_add_option";
    } else if (f->score <= 0) {
        f->reason = mx_flame_can_have(it->slot) ? "no flame score for this class"
                                                : "item cannot carry flames";
    } else if (f->score > MX_FLAME_MAX_SCORE) {
        f->reason = "flame score above the supported maximum";
    } else if (!level_ok(it->level)) {
        f->reason = "item level outside 0..300";
    } else if (fi.weapon && (fi.base_attack < 0 || fi.base_attack > MX_FLAME_MAX_BASE_ATTACK)) {
        f->reason = "weapon base attack outside 0..1000";
    } else {
        const struct ft_entry *e = ft_get(c, &fi, fw);
        if (e->rc) {
            f->reason = "flame calculation failed";
            return;
        }
        for (int t = 0; t < MX_FLAME_NTYPES; t++)
            f->p[t] = mx_flame_dist_tail(e->d[t], f->score);
    }
}

static void write_flame(struct mx_jsonw *w, const struct mx_flame_weights *fw,
                        const struct flame_calc *f)
{
    static const char *const keys[MX_FLAME_NTYPES] = {
        "\"powerfulFlameTrials\":", "\"eternalFlameTrials\":", "\"abyssFlameTrials\":"};
    mx_jsonw_obj_open(w);
    KINT(w, "score", f->score);
    K(w, "mainStat");
    mx_jsonw_str(w, mx_flame_stat_name(fw->main));
    K(w, "bossEquipment");
    wbool(w, f->boss);
    bool all = true;
    for (int t = 0; t < MX_FLAME_NTYPES; t++) {
        bool known = !f->reason && f->p[t] > 0.0;
        wkey(w, keys[t], strlen(keys[t]));
        wdouble_if(w, known, known ? 1.0 / f->p[t] : 0.0);
        all = all && known;
    }
    if (f->reason) {
        K(w, "reason");
        mx_jsonw_str(w, f->reason);
    } else if (!all) {
        K(w, "reason");
        mx_jsonw_str(w, "score unreachable with some flame types");
    }
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
    struct flame_calc flame;
    struct cost4 cost;
    bool unpriced; /* a potential could not be priced: its cost counts as 0 */
};

static void item_compute(struct mx_calc *c, const struct mx_equip_item *it,
                         const struct mx_doc_opts *o, const struct mx_flame_weights *fw,
                         struct item_calc *ic)
{
    uint64_t t0 = c->timing ? now_ns() : 0, t1 = 0, t2 = 0;
    cube_compute(c, "BLACK", it, it->pot_grade, it->pot_grade_text, it->pot, &ic->black);
    cube_compute(c, "ADDITIONAL", it, it->add_grade, it->add_grade_text, it->add, &ic->additional);
    if (c->timing)
        t1 = now_ns();
    sf_compute(c, it, o, &ic->sf);
    if (c->timing)
        t2 = now_ns();
    flame_compute(c, it, fw, &ic->flame);
    if (c->timing) {
        uint64_t t3 = now_ns();
        c->ns_cube += t1 - t0;
        c->ns_starforce += t2 - t1;
        c->ns_flame += t3 - t2;
    }
    ic->cost.black = cube_cost(&ic->black);
    ic->cost.red = 0; /* the design prices black cubes only */
    ic->cost.additional = cube_cost(&ic->additional);
    ic->cost.starforce = sf_cost(&ic->sf);
    ic->unpriced =
        cube_unpriced(it->pot_grade, &ic->black) || cube_unpriced(it->add_grade, &ic->additional);
}

/* "블랙큐브(윗잠) > 에디셔널큐브(아랫잠) > 스타포스(0→22성)": the steps priced
 * for the item, in the seed's words; "" when there are none. */
static void write_enhance_path(struct mx_jsonw *w, const struct mx_equip_item *it)
{
    char buf[128];
    int n = 0;
    if (it->pot_grade != MX_GRADE_NONE)
        n += snprintf(buf + n, sizeof buf - (size_t)n, "블랙큐브(윗잠)");
    if (it->add_grade != MX_GRADE_NONE)
        n += snprintf(buf + n, sizeof buf - (size_t)n, "%s에디셔널큐브(아랫잠)", n ? " > " : "");
    if (it->starforce > 0)
        n += snprintf(buf + n, sizeof buf - (size_t)n, "%s스타포스(0→%d성)", n ? " > " : "",
                      it->starforce);
    mx_jsonw_strn(w, buf, (size_t)n);
}

static void write_item(struct mx_jsonw *w, const struct mx_equip_item *it,
                       const struct mx_doc_opts *o, const struct mx_flame_weights *fw,
                       const struct item_calc *ic)
{
    int64_t total = sum4(&ic->cost);
    mx_jsonw_obj_open(w);
    K(w, "itemName");
    mx_jsonw_str(w, it->name);
    K(w, "itemIcon");
    mx_jsonw_str(w, it->icon);
    K(w, "itemPart");
    mx_jsonw_str(w, it->part);
    K(w, "itemSlot");
    mx_jsonw_str(w, it->slot);
    KINT(w, "itemLevel", it->level);
    KINT(w, "expectedCost", total);
    K(w, "expectedCostText");
    cost_text(w, total);
    K(w, "costBreakdown");
    write_breakdown(w, &ic->cost);
    K(w, "enhancePath");
    write_enhance_path(w, it);
    K(w, "potentialGrade");
    wgrade(w, it->pot_grade_text);
    K(w, "additionalPotentialGrade");
    wgrade(w, it->add_grade_text);
    KINT(w, "currentStar", it->starforce);
    KINT(w, "targetStar", it->starforce);
    K(w, "isNoljang");
    wbool(w, it->scroll);
    K(w, "noljang"); /* what Jackson makes of the seed's boolean isNoljang getter */
    wbool(w, it->scroll);
    KINT(w, "specialRingLevel", it->special_ring_level);
    K(w, "unpriced");
    wbool(w, ic->unpriced);
    K(w, "blackCubeExpectation");
    write_cube(w, "BLACK", it->pot_grade, it->pot_grade_text, it->pot, &ic->black);
    K(w, "additionalCubeExpectation");
    write_cube(w, "ADDITIONAL", it->add_grade, it->add_grade_text, it->add, &ic->additional);
    K(w, "starforceExpectation");
    write_starforce(w, it, o, &ic->sf);
    K(w, "flameExpectation");
    write_flame(w, fw, &ic->flame);
    mx_jsonw_obj_close(w);
}

struct preset_calc {
    int no;
    const struct mx_equip_list *list;
    struct cost4 cost;
    int unpriced; /* items with an unpriced potential */
};

/* A document's presets share most items (34 distinct of 70 in the
 * fixtures): each distinct item is computed and written once per document,
 * its JSON bytes copied for the other presets. Items are compared as whole
 * structs (the parser fills them field by field from zeroed memory). */
struct seen_item {
    uint64_t hash;
    const struct mx_equip_item *it;
    const struct item_calc *ic;
    size_t off, len; /* its JSON in the writer, once written (len 0 before) */
};

static uint64_t item_hash(const struct mx_equip_item *it)
{
    const unsigned char *p = (const unsigned char *)it;
    uint64_t h = 0x9e3779b97f4a7c15ull;
    size_t i = 0;
    for (; i + 8 <= sizeof *it; i += 8) {
        uint64_t v;
        memcpy(&v, p + i, 8);
        h = (h ^ v) * 0x100000001b3ull;
        h ^= h >> 29;
    }
    for (; i < sizeof *it; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

static struct seen_item *seen_find(struct seen_item *seen, int n, uint64_t h,
                                   const struct mx_equip_item *it)
{
    for (int i = 0; i < n; i++)
        if (seen[i].hash == h && !memcmp(seen[i].it, it, sizeof *it))
            return &seen[i];
    return NULL;
}

static void preset_compute(struct mx_calc *c, struct preset_calc *p, const struct mx_doc_opts *o,
                           const struct mx_flame_weights *fw, struct item_calc *items,
                           struct seen_item *seen, int *nseen, int *first_seen)
{
    memset(&p->cost, 0, sizeof p->cost);
    p->unpriced = 0;
    for (int i = 0; i < p->list->n; i++) {
        const struct mx_equip_item *it = &p->list->items[i];
        uint64_t h = item_hash(it);
        struct seen_item *s = seen_find(seen, *nseen, h, it);
        if (s) {
            items[i] = *s->ic;
        } else {
            item_compute(c, it, o, fw, &items[i]);
            s = &seen[(*nseen)++];
            *s = (struct seen_item){h, it, &items[i], 0, 0};
        }
        first_seen[i] = (int)(s - seen);
        add4(&p->cost, &items[i].cost);
        p->unpriced += items[i].unpriced;
    }
}

/* Writes one preset item, or copies the bytes of its first copy. */
static void write_item_once(struct mx_jsonw *w, struct seen_item *s, const struct mx_doc_opts *o,
                            const struct mx_flame_weights *fw)
{
    if (s->len) {
        char stack[4096];
        char *tmp = s->len <= sizeof stack ? stack : malloc(s->len);
        if (!tmp) {
            w->err = MX_ENOMEM;
            return;
        }
        /* copied out first: the raw write may move the writer's buffer */
        memcpy(tmp, w->buf + s->off, s->len);
        mx_jsonw_raw(w, tmp, s->len);
        if (tmp != stack)
            free(tmp);
        return;
    }
    size_t start = w->len;
    write_item(w, s->it, o, fw, s->ic);
    if (w->err)
        return;
    if (w->buf[start] == ',')
        start++; /* the separator belongs to the position, not the item */
    s->off = start;
    s->len = w->len - start;
}

int mx_doc_build(struct mx_calc *c, const struct mx_equip *eq, const struct mx_doc_opts *o,
                 struct mx_jsonw *w)
{
    struct preset_calc pre[3];
    struct item_calc *items = NULL;
    struct seen_item *seen = NULL;
    int nseen = 0, *first_seen = NULL;
    struct mx_flame_weights fw;
    int np = 0, best = -1, rc = 0;

    if (!c || !eq || !o || !w || o->preset < 0 || o->preset > 3)
        return MX_EINVAL;
    uint64_t t_start = c->timing ? now_ns() : 0;
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
    size_t nslots = (size_t)(np ? np : 1) * MX_EQUIP_MAX_ITEMS;
    items = malloc(nslots * sizeof *items);
    seen = malloc(nslots * sizeof *seen);
    first_seen = malloc(nslots * sizeof *first_seen);
    if (!items || !seen || !first_seen) {
        rc = MX_ENOMEM;
        goto out_free;
    }
    doc_weights(eq, &fw);
    for (int p = 0; p < np; p++) {
        preset_compute(c, &pre[p], o, &fw, items + (size_t)p * MX_EQUIP_MAX_ITEMS, seen, &nseen,
                       first_seen + (size_t)p * MX_EQUIP_MAX_ITEMS);
        if (best < 0 || sum4(&pre[p].cost) > sum4(&pre[best].cost))
            best = p; /* ties keep the lower preset number */
    }

    struct cost4 zero = {0};
    const struct cost4 *top = best >= 0 ? &pre[best].cost : &zero;
    mx_jsonw_obj_open(w);
    K(w, "userIgn");
    mx_jsonw_str(w, o->user_ign ? o->user_ign : "");
    K(w, "calculatedAt");
    if (o->calculated_at)
        mx_jsonw_str(w, o->calculated_at);
    else
        wnull(w);
    K(w, "fromCache");
    wbool(w, o->from_cache);
    KINT(w, "totalExpectedCost", sum4(top));
    K(w, "totalCostText");
    cost_text(w, sum4(top));
    K(w, "totalCostBreakdown");
    write_breakdown(w, top);
    KINT(w, "unpricedItems", best >= 0 ? pre[best].unpriced : 0);
    K(w, "maxPresetNo");
    if (best >= 0)
        wint(w, pre[best].no);
    else
        wnull(w);
    K(w, "presets");
    mx_jsonw_arr_open(w);
    for (int p = 0; p < np; p++) {
        const int *fs = first_seen + (size_t)p * MX_EQUIP_MAX_ITEMS;
        mx_jsonw_obj_open(w);
        KINT(w, "presetNo", pre[p].no);
        KINT(w, "totalExpectedCost", sum4(&pre[p].cost));
        K(w, "totalCostText");
        cost_text(w, sum4(&pre[p].cost));
        K(w, "costBreakdown");
        write_breakdown(w, &pre[p].cost);
        KINT(w, "unpricedItems", pre[p].unpriced);
        K(w, "items");
        mx_jsonw_arr_open(w);
        for (int i = 0; i < pre[p].list->n; i++)
            write_item_once(w, &seen[fs[i]], o, &fw);
        mx_jsonw_arr_close(w);
        mx_jsonw_obj_close(w);
    }
    mx_jsonw_arr_close(w);
    mx_jsonw_obj_close(w);
    rc = w->err;
out_free:
    free(items);
    free(seen);
    free(first_seen);
    if (c->timing) {
        c->documents++;
        c->ns_total += now_ns() - t_start;
    }
    return rc;
}
