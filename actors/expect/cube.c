/* cube.c - the potential probability table and the two cube engines (see
 * mx_cube.h and docs/expectation.md).
 *
 * Layout after loading: every distinct normalised option text is interned to
 * an id with a parsed (stat kind, value); every (cube type, item slot, grade,
 * level band, line slot) group holds arrays of (option id, rate); every
 * (cube type, item slot, grade) holds its sorted level bands. Lookups go
 * through one small open-addressing string map. The CSV reader is a few lines
 * of field splitting (no Debian package is worth a dependency for it).
 */
#include "mx_cube.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mx_alloc.h"
#include "mx_err.h"

#define MAX_BANDS 32
#define MAX_SUM 512 /* engine (a): contributions are capped below this */

/* ---- string map ---------------------------------------------------------- */

struct smap_ent {
    char *key; /* owned, NULL = empty */
    uint32_t hash;
    int val;
};

struct smap {
    struct smap_ent *e;
    uint32_t cap; /* power of two */
    uint32_t n;
};

static uint32_t fnv1a(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 16777619u;
    }
    return h;
}

static int smap_get(const struct smap *m, const char *key)
{
    if (!m->cap)
        return -1;
    size_t n = strlen(key);
    uint32_t h = fnv1a(key, n);
    for (uint32_t i = h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        const struct smap_ent *e = &m->e[i];
        if (!e->key)
            return -1;
        if (e->hash == h && strcmp(e->key, key) == 0)
            return e->val;
    }
}

static void smap_grow(struct smap *m)
{
    uint32_t ncap = m->cap ? m->cap * 2 : 256;
    struct smap_ent *ne = xcalloc(ncap, sizeof *ne);
    for (uint32_t i = 0; i < m->cap; i++) {
        struct smap_ent *e = &m->e[i];
        if (!e->key)
            continue;
        uint32_t j = e->hash & (ncap - 1);
        while (ne[j].key)
            j = (j + 1) & (ncap - 1);
        ne[j] = *e;
    }
    free(m->e);
    m->e = ne;
    m->cap = ncap;
}

/* Inserts key -> val unless present; returns the stored value. */
static int smap_put(struct smap *m, const char *key, int val)
{
    if ((m->n + 1) * 2 > m->cap)
        smap_grow(m);
    size_t n = strlen(key);
    uint32_t h = fnv1a(key, n);
    uint32_t i = h & (m->cap - 1);
    for (;; i = (i + 1) & (m->cap - 1)) {
        struct smap_ent *e = &m->e[i];
        if (!e->key)
            break;
        if (e->hash == h && strcmp(e->key, key) == 0)
            return e->val;
    }
    m->e[i].key = xcalloc(n + 1, 1);
    memcpy(m->e[i].key, key, n);
    m->e[i].hash = h;
    m->e[i].val = val;
    m->n++;
    return val;
}

static void smap_free(struct smap *m)
{
    for (uint32_t i = 0; i < m->cap; i++)
        free(m->e[i].key);
    free(m->e);
    memset(m, 0, sizeof *m);
}

/* ---- stat kinds ------------------------------------------------------------ */

enum kind {
    K_NONE = 0,
    K_STR,
    K_DEX,
    K_INT,
    K_LUK, /* percent; 올스탯 % counts toward all four */
    K_ATT,
    K_MATT,
    K_BOSS,
    K_DMG,
    K_CRITDMG,
    K_HP,
    K_MP,
    K_DROP,
    K_MESO,
    K_COOLDOWN, /* seconds of 스킬 재사용 대기시간 reduction */
    K_NKINDS
};

static const char *const kind_names[K_NKINDS] = {
    [K_NONE] = "",
    [K_STR] = "STR%",
    [K_DEX] = "DEX%",
    [K_INT] = "INT%",
    [K_LUK] = "LUK%",
    [K_ATT] = "ATT%",
    [K_MATT] = "MATT%",
    [K_BOSS] = "BOSS%",
    [K_DMG] = "DMG%",
    [K_CRITDMG] = "CRIT_DMG%",
    [K_HP] = "HP%",
    [K_MP] = "MP%",
    [K_DROP] = "DROP%",
    [K_MESO] = "MESO%",
    [K_COOLDOWN] = "COOLDOWN_S",
};

struct opt_info {
    enum kind kind; /* K_NONE: not summable */
    bool allstat;   /* 올스탯 +n%: contributes n to STR..LUK */
    int value;
};

/* Prefix (normalised text) -> kind; the rest must be "+<int>%" ("-<int>초"
 * for cooldown). Longer prefixes first where one is a prefix of another. */
static const struct {
    const char *prefix;
    enum kind kind;
    bool allstat;
    const char *suffix;
} kind_rules[] = {
    {"STR+", K_STR, false, "%"},
    {"DEX+", K_DEX, false, "%"},
    {"INT+", K_INT, false, "%"},
    {"LUK+", K_LUK, false, "%"},
    {"올스탯+", K_STR, true, "%"},
    {"공격력+", K_ATT, false, "%"},
    {"마력+", K_MATT, false, "%"},
    {"보스몬스터데미지+", K_BOSS, false, "%"},
    {"보스몬스터공격시데미지+", K_BOSS, false, "%"},
    {"크리티컬데미지+", K_CRITDMG, false, "%"},
    {"데미지+", K_DMG, false, "%"},
    {"최대HP+", K_HP, false, "%"},
    {"최대MP+", K_MP, false, "%"},
    {"아이템드롭률+", K_DROP, false, "%"},
    {"메소획득량+", K_MESO, false, "%"},
    {"스킬재사용대기시간-", K_COOLDOWN, false, "초"},
};

static struct opt_info classify(const char *norm)
{
    struct opt_info oi = {K_NONE, false, 0};
    for (size_t r = 0; r < sizeof kind_rules / sizeof kind_rules[0]; r++) {
        size_t pl = strlen(kind_rules[r].prefix);
        if (strncmp(norm, kind_rules[r].prefix, pl) != 0)
            continue;
        const char *p = norm + pl;
        int v = 0, digits = 0;
        while (*p >= '0' && *p <= '9' && digits < 6) {
            v = v * 10 + (*p++ - '0');
            digits++;
        }
        if (!digits || strcmp(p, kind_rules[r].suffix) != 0)
            return oi;
        oi.kind = kind_rules[r].kind;
        oi.allstat = kind_rules[r].allstat;
        oi.value = v;
        return oi;
    }
    return oi;
}

/* Contribution of an option to a kind. */
static int contrib(const struct opt_info *oi, enum kind k)
{
    if (oi->allstat)
        return (k >= K_STR && k <= K_LUK) ? oi->value : 0;
    return oi->kind == k ? oi->value : 0;
}

/* ---- table ------------------------------------------------------------------ */

struct group {
    int n, cap;
    int *opt;
    double *rate;
    double sum;
};

struct bands {
    int n;
    int level[MAX_BANDS];  /* sorted ascending */
    int gid[MAX_BANDS][3]; /* group of (level[i], line j+1), -1 if none: no key lookups per query */
};

struct mx_cube_table {
    struct smap opts; /* normalised option text -> option id */
    struct opt_info *info;
    int nopts, capopts;
    struct smap groups; /* "type\x1fslot\x1fgrade\x1flevel\x1fline" -> group id */
    struct group *g;
    int ng, capg;
    struct smap bandmap; /* "type\x1fslot\x1fgrade" -> bands id */
    struct bands *b;
    int nb, capb;
    struct smap types; /* cube types present */
    long merged;       /* rows merged into an existing (group, option) */
};

int mx_cube_normalize(const char *s, char *buf, size_t cap)
{
    size_t j = 0;
    if (!s)
        s = "";
    for (; *s; s++) {
        if (*s == ' ' || *s == '\t' || *s == ':' || *s == '\r' || *s == '\n')
            continue;
        if (j + 1 >= cap) {
            if (cap)
                buf[0] = '\0';
            return MX_ETOOBIG;
        }
        buf[j++] = *s;
    }
    if (cap)
        buf[j] = '\0';
    return 0;
}

static int intern_opt(struct mx_cube_table *t, const char *norm)
{
    int id = smap_get(&t->opts, norm);
    if (id >= 0)
        return id;
    if (t->nopts == t->capopts) {
        t->capopts = t->capopts ? t->capopts * 2 : 256;
        t->info = xrealloc(t->info, (size_t)t->capopts * sizeof *t->info);
    }
    id = t->nopts++;
    t->info[id] = classify(norm);
    smap_put(&t->opts, norm, id);
    return id;
}

/* Appends s and a unit separator; keys are built often (each cube query),
 * so no snprintf. cap is always >= 512 and the parts are bounded (slot <
 * MX_EQUIP_SLOT_MAX, type < 32), so nothing is cut. */
static char *kput(char *p, const char *end, const char *s)
{
    while (*s && p < end - 1)
        *p++ = *s++;
    *p++ = '\x1f';
    return p;
}

static char *kint(char *p, const char *end, int v)
{
    char d[12];
    int n = 0;
    unsigned u = v < 0 ? 0u - (unsigned)v : (unsigned)v;
    do
        d[n++] = (char)('0' + u % 10);
    while ((u /= 10) && n < 11);
    if (v < 0 && p < end - 1)
        *p++ = '-';
    while (n && p < end - 1)
        *p++ = d[--n];
    *p++ = '\x1f';
    return p;
}

static void bands_key(char *buf, size_t cap, const char *type, const char *slot, int grade)
{
    const char *end = buf + cap - 1;
    char *p = kput(buf, end, type);
    p = kput(p, end, slot);
    p = kint(p, end, grade);
    p[-1] = '\0';
}

static void group_key(char *buf, size_t cap, const char *type, const char *slot, int grade,
                      int level, int line)
{
    const char *end = buf + cap - 1;
    char *p = kput(buf, end, type);
    p = kput(p, end, slot);
    p = kint(p, end, grade);
    p = kint(p, end, level);
    p = kint(p, end, line);
    p[-1] = '\0';
}

/* Splits one CSV line in place (double quotes with "" escapes); returns the
 * field count (> max means too many). */
static int split_csv(char *line, char **f, int max)
{
    int n = 0;
    char *p = line;
    for (;;) {
        char *start = p, *w = p;
        if (*p == '"') {
            p++;
            start = w = p;
            for (;;) {
                if (!*p)
                    break;
                if (*p == '"' && p[1] == '"') {
                    *w++ = '"';
                    p += 2;
                } else if (*p == '"') {
                    p++;
                    break;
                } else {
                    *w++ = *p++;
                }
            }
            while (*p && *p != ',')
                p++; /* junk after a closing quote is ignored */
        } else {
            while (*p && *p != ',')
                p++;
            w = p;
        }
        char sep = *p;
        *w = '\0';
        if (n < max)
            f[n] = start;
        n++;
        if (sep != ',')
            break;
        p++;
    }
    return n;
}

static bool parse_int_field(const char *s, int lo, int hi, int *out)
{
    return mx_equip_parse_int(s, strlen(s), out) == 0 && *s && *out >= lo && *out <= hi;
}

static enum mx_grade grade_field(const char *s)
{
    enum mx_grade g = mx_equip_grade_from_text(s);
    if (g != MX_GRADE_UNKNOWN)
        return g;
    if (!strcmp(s, "RARE"))
        return MX_GRADE_RARE;
    if (!strcmp(s, "EPIC"))
        return MX_GRADE_EPIC;
    if (!strcmp(s, "UNIQUE"))
        return MX_GRADE_UNIQUE;
    if (!strcmp(s, "LEGENDARY"))
        return MX_GRADE_LEGENDARY;
    return MX_GRADE_UNKNOWN;
}

/* Validates and stores one row; false = rejected. */
static bool add_row(struct mx_cube_table *t, char *line)
{
    char *f[8];
    char norm[MX_CUBE_OPT_MAX], key[512];
    int slot, level;
    char *end;

    if (split_csv(line, f, 8) != 7)
        return false;
    if (mx_cube_normalize(f[0], norm, sizeof norm) || !norm[0])
        return false;
    errno = 0;
    double rate = strtod(f[1], &end);
    if (errno || end == f[1] || *end || !isfinite(rate) || rate <= 0.0 || rate > 1.0)
        return false;
    if (!parse_int_field(f[2], 1, 3, &slot) || !parse_int_field(f[4], 0, 300, &level))
        return false;
    enum mx_grade grade = grade_field(f[3]);
    if (grade == MX_GRADE_NONE || grade == MX_GRADE_UNKNOWN)
        return false;
    if (!f[5][0] || strlen(f[5]) >= MX_EQUIP_SLOT_MAX || !f[6][0] || strlen(f[6]) >= 32)
        return false;

    group_key(key, sizeof key, f[6], f[5], grade, level, slot);
    int gid = smap_get(&t->groups, key);
    if (gid < 0) {
        if (t->ng == t->capg) {
            t->capg = t->capg ? t->capg * 2 : 256;
            t->g = xrealloc(t->g, (size_t)t->capg * sizeof *t->g);
        }
        gid = t->ng++;
        memset(&t->g[gid], 0, sizeof t->g[gid]);
        smap_put(&t->groups, key, gid);

        bands_key(key, sizeof key, f[6], f[5], grade);
        int bid = smap_get(&t->bandmap, key);
        if (bid < 0) {
            if (t->nb == t->capb) {
                t->capb = t->capb ? t->capb * 2 : 64;
                t->b = xrealloc(t->b, (size_t)t->capb * sizeof *t->b);
            }
            bid = t->nb++;
            t->b[bid].n = 0;
            smap_put(&t->bandmap, key, bid);
        }
        struct bands *b = &t->b[bid];
        int i;
        for (i = 0; i < b->n && b->level[i] != level; i++)
            ;
        if (i == b->n && b->n < MAX_BANDS) {
            int j = b->n++;
            while (j > 0 && b->level[j - 1] > level) {
                b->level[j] = b->level[j - 1];
                memcpy(b->gid[j], b->gid[j - 1], sizeof b->gid[j]);
                j--;
            }
            b->level[j] = level;
            b->gid[j][0] = b->gid[j][1] = b->gid[j][2] = -1;
            i = j;
        }
        if (i < b->n)
            b->gid[i][slot - 1] = gid;
        smap_put(&t->types, f[6], 1);
    }
    struct group *g = &t->g[gid];
    int oid = intern_opt(t, norm);
    for (int i = 0; i < g->n; i++)
        if (g->opt[i] == oid) {
            /* The same text listed twice in a group: lines 2 and 3 can roll
             * the grade below, whose option may read the same; the chance of
             * the text is the sum. */
            g->rate[i] += rate;
            g->sum += rate;
            t->merged++;
            return true;
        }
    if (g->n == g->cap) {
        g->cap = g->cap ? g->cap * 2 : 16;
        g->opt = xrealloc(g->opt, (size_t)g->cap * sizeof *g->opt);
        g->rate = xrealloc(g->rate, (size_t)g->cap * sizeof *g->rate);
    }
    g->opt[g->n] = oid;
    g->rate[g->n] = rate;
    g->n++;
    g->sum += rate;
    return true;
}

void mx_cube_table_free(struct mx_cube_table *t)
{
    if (!t)
        return;
    for (int i = 0; i < t->ng; i++) {
        free(t->g[i].opt);
        free(t->g[i].rate);
    }
    free(t->g);
    free(t->b);
    free(t->info);
    smap_free(&t->opts);
    smap_free(&t->groups);
    smap_free(&t->bandmap);
    smap_free(&t->types);
    free(t);
}

/* Reads the rows of one CSV into t (which may already hold rows). */
static int load_rows(struct mx_cube_table *t, const char *csv, size_t len,
                     struct mx_cube_load_stats *stp)
{
    struct mx_cube_load_stats st = {0};
    char line[MX_CUBE_MAX_LINE + 1];
    size_t pos = 0;
    long lineno = 0, merged0 = t->merged;
    int rc = 0;

    while (pos < len) {
        const char *nl = memchr(csv + pos, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - (csv + pos)) : len - pos;
        lineno++;
        if (n > MX_CUBE_MAX_LINE) {
            rc = MX_ETOOBIG;
            goto out;
        }
        memcpy(line, csv + pos, n);
        line[n] = '\0';
        pos += n + (nl ? 1 : 0);
        if (n && line[n - 1] == '\r')
            line[--n] = '\0';
        if (lineno == 1 && !strncmp(line, "\xEF\xBB\xBF", 3))
            memmove(line, line + 3, n - 2);
        if (!line[0])
            continue;
        if (lineno == 1 && !strncmp(line, "option,", 7))
            continue; /* header */
        if (++st.rows_total > MX_CUBE_MAX_ROWS) {
            rc = MX_ETOOBIG;
            goto out;
        }
        if (add_row(t, line)) {
            st.rows_accepted++;
        } else {
            st.rows_rejected++;
            if (!st.first_rejected_line)
                st.first_rejected_line = lineno;
        }
    }
    if (!st.rows_accepted) {
        rc = MX_EDECODE;
        goto out;
    }
    st.groups = t->ng;
    st.rows_merged = t->merged - merged0;
    for (int i = 0; i < t->ng; i++)
        if (fabs(t->g[i].sum - 1.0) > MX_CUBE_RATE_TOLERANCE)
            st.groups_bad_sum++;
out:
    if (stp)
        *stp = st;
    return rc;
}

int mx_cube_table_load_mem(const char *csv, size_t len, struct mx_cube_table **out,
                           struct mx_cube_load_stats *stats)
{
    struct mx_cube_table *t;
    int rc;

    if (!out || (!csv && len))
        return MX_EINVAL;
    *out = NULL;
    t = xcalloc(1, sizeof *t);
    if ((rc = mx_cube_table_add_mem(t, csv, len, stats))) {
        mx_cube_table_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

int mx_cube_table_add_mem(struct mx_cube_table *t, const char *csv, size_t len,
                          struct mx_cube_load_stats *stats)
{
    if (!t || (!csv && len))
        return MX_EINVAL;
    if (len > MX_CUBE_MAX_FILE) {
        if (stats)
            memset(stats, 0, sizeof *stats);
        return MX_ETOOBIG;
    }
    return load_rows(t, csv, len, stats);
}

/* Reads a whole file (at most MX_CUBE_MAX_FILE bytes) into a new buffer. */
static int read_csv(const char *path, char **out, size_t *len)
{
    FILE *f;
    char *buf = NULL;
    long sz;
    int rc = 0;

    *out = NULL;
    f = fopen(path, "rb");
    if (!f)
        return MX_EIO;
    if (fseek(f, 0, SEEK_END) || (sz = ftell(f)) < 0 || fseek(f, 0, SEEK_SET)) {
        rc = MX_EIO;
        goto out_close;
    }
    if ((unsigned long)sz > MX_CUBE_MAX_FILE) {
        rc = MX_ETOOBIG;
        goto out_close;
    }
    buf = xcalloc((size_t)sz + 1, 1);
    if (fread(buf, 1, (size_t)sz, f) != (size_t)sz) {
        free(buf);
        rc = MX_EIO;
        goto out_close;
    }
    *out = buf;
    *len = (size_t)sz;
out_close:
    fclose(f);
    return rc;
}

int mx_cube_table_add(struct mx_cube_table *t, const char *path, struct mx_cube_load_stats *stats)
{
    char *buf;
    size_t len;
    int rc;

    if (!t || !path)
        return MX_EINVAL;
    if (stats)
        memset(stats, 0, sizeof *stats);
    if ((rc = read_csv(path, &buf, &len)))
        return rc;
    rc = mx_cube_table_add_mem(t, buf, len, stats);
    free(buf);
    return rc;
}

int mx_cube_table_load(const char *path, struct mx_cube_table **out,
                       struct mx_cube_load_stats *stats)
{
    struct mx_cube_table *t;
    int rc;

    if (!path || !out)
        return MX_EINVAL;
    *out = NULL;
    t = xcalloc(1, sizeof *t);
    if ((rc = mx_cube_table_add(t, path, stats))) {
        mx_cube_table_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

bool mx_cube_table_has_type(const struct mx_cube_table *t, const char *cube_type)
{
    return t && cube_type && smap_get(&t->types, cube_type) >= 0;
}

/* ---- engines ---------------------------------------------------------------- */

/* Meso per use by level tier (<160, 160-199, 200-249, >=250) and grade
 * (rare, epic, unique, legendary). Black cube: MapleExpectation's table;
 * additional reset: Nexon's update notes as carried by three independent
 * sources (data/cube_probability_additional.PROVENANCE.md, section 4). */
static const double black_price[4][4] = {
    {4e6, 16e6, 34e6, 40e6},
    {4.25e6, 17e6, 36.125e6, 42.5e6},
    {4.5e6, 18e6, 38.25e6, 45e6},
    {5e6, 20e6, 42.5e6, 50e6},
};
static const double additional_price[4][4] = {
    {9.75e6, 27.3e6, 66.3e6, 78e6},
    {10.375e6, 29.05e6, 70.55e6, 83e6},
    {11e6, 30.8e6, 74.8e6, 88e6},
    {12.25e6, 34.3e6, 83.3e6, 98e6},
};

static double price_of(const double (*tab)[4], enum mx_grade grade, int level)
{
    int tier = level >= 250 ? 3 : level >= 200 ? 2 : level >= 160 ? 1 : 0;
    if (grade < MX_GRADE_RARE || grade > MX_GRADE_LEGENDARY)
        return 0.0;
    return tab[tier][grade - MX_GRADE_RARE];
}

double mx_cube_price(enum mx_grade grade, int level)
{
    return price_of(black_price, grade, level);
}

double mx_cube_type_price(const char *cube_type, enum mx_grade grade, int level)
{
    if (cube_type && !strcmp(cube_type, "BLACK"))
        return price_of(black_price, grade, level);
    if (cube_type && !strcmp(cube_type, "ADDITIONAL"))
        return price_of(additional_price, grade, level);
    return 0.0;
}

static double group_rate(const struct group *g, int oid)
{
    for (int i = 0; i < g->n; i++)
        if (g->opt[i] == oid)
            return g->rate[i];
    return 0.0;
}

static bool blank_line(const char *norm)
{
    return !norm[0] || !strcmp(norm, "-") || !strcmp(norm, "없음");
}

int mx_cube_expect(const struct mx_cube_table *t, const struct mx_cube_query *q,
                   struct mx_cube_result *r)
{
    char key[512], norm[3][MX_CUBE_OPT_MAX];
    const struct group *g[3];
    int oid[3]; /* -1 blank, -2 unknown text */

    if (!t || !q || !r || !q->cube_type || !q->item_slot)
        return MX_EINVAL;
    memset(r, 0, sizeof *r);
    r->level_band = -1;
    r->cube_price = mx_cube_type_price(q->cube_type, q->grade, q->level);
    if (q->grade == MX_GRADE_NONE || q->grade == MX_GRADE_UNKNOWN) {
        snprintf(r->reason, sizeof r->reason, "no potential grade");
        return 0;
    }
    bands_key(key, sizeof key, q->cube_type, q->item_slot, q->grade);
    int bid = smap_get(&t->bandmap, key);
    if (bid < 0) {
        snprintf(r->reason, sizeof r->reason, "no %s rows for slot %s at grade %s", q->cube_type,
                 q->item_slot, mx_equip_grade_name(q->grade));
        return 0;
    }
    const struct bands *b = &t->b[bid];
    int band = 0; /* below every band: use the lowest */
    for (int i = 0; i < b->n; i++)
        if (b->level[i] <= q->level)
            band = i;
    r->level_band = b->level[band];
    for (int j = 0; j < 3; j++) {
        int gid = b->gid[band][j];
        if (gid < 0) {
            snprintf(r->reason, sizeof r->reason, "no %s rows for line %d of %s %s level %d",
                     q->cube_type, j + 1, q->item_slot, mx_equip_grade_name(q->grade),
                     r->level_band);
            return 0;
        }
        g[j] = &t->g[gid];
    }
    for (int i = 0; i < 3; i++) {
        if (mx_cube_normalize(q->lines[i], norm[i], sizeof norm[i])) {
            snprintf(r->reason, sizeof r->reason, "line %d is too long", i + 1);
            return 0;
        }
        if (blank_line(norm[i])) {
            oid[i] = -1;
            continue;
        }
        oid[i] = smap_get(&t->opts, norm[i]);
        bool known = false;
        for (int j = 0; oid[i] >= 0 && j < 3 && !known; j++)
            known = group_rate(g[j], oid[i]) > 0.0;
        if (!known) {
            r->unknown_line = i + 1;
            snprintf(r->reason, sizeof r->reason, "line %d \"%.80s\" not in the table", i + 1,
                     q->lines[i]);
            return 0;
        }
    }

    /* Engine choice: a kind that 2+ lines contribute to (올스탯 counts
     * toward each main stat); ties -> larger total, then more direct lines. */
    enum kind best = K_NONE;
    int best_total = 0, best_direct = 0;
    for (int k = K_STR; k < K_NKINDS; k++) {
        int count = 0, total = 0, direct = 0;
        for (int i = 0; i < 3; i++) {
            if (oid[i] < 0)
                continue;
            int v = contrib(&t->info[oid[i]], (enum kind)k);
            if (v > 0) {
                count++;
                total += v;
                direct += !t->info[oid[i]].allstat;
            }
        }
        if (count >= 2 && (total > best_total || (total == best_total && direct > best_direct))) {
            best = (enum kind)k;
            best_total = total;
            best_direct = direct;
        }
    }

    double p = 0.0;
    if (best != K_NONE && best_total < MAX_SUM) {
        /* (a) P(sum of the three slots' contributions >= target) */
        double dist[MAX_SUM], next[MAX_SUM];
        r->engine = MX_CUBE_ENGINE_STAT_SUM;
        snprintf(r->stat, sizeof r->stat, "%s", kind_names[best]);
        r->target = best_total;
        size_t used = (size_t)best_total + 1; /* entries of dist that matter */
        memset(dist, 0, used * sizeof *dist);
        dist[0] = 1.0;
        for (int j = 0; j < 3; j++) {
            memset(next, 0, used * sizeof *next);
            double rest = 1.0; /* mass of rows contributing 0, and missing mass */
            for (int i = 0; i < g[j]->n; i++) {
                int v = contrib(&t->info[g[j]->opt[i]], best);
                if (v <= 0)
                    continue;
                if (v > best_total)
                    v = best_total; /* capped: only ">= target" matters */
                rest -= g[j]->rate[i];
                for (int s = 0; s <= best_total; s++) {
                    if (dist[s] == 0.0)
                        continue;
                    int ns = s + v > best_total ? best_total : s + v;
                    next[ns] += dist[s] * g[j]->rate[i];
                }
            }
            if (rest < 0.0)
                rest = 0.0;
            for (int s = 0; s <= best_total; s++)
                next[s] += dist[s] * rest;
            memcpy(dist, next, used * sizeof *dist);
        }
        p = dist[best_total];
    } else {
        /* (b) sum over distinct orderings of the product of per-slot rates */
        static const int perm[6][3] = {{0, 1, 2}, {0, 2, 1}, {1, 0, 2},
                                       {1, 2, 0}, {2, 0, 1}, {2, 1, 0}};
        int seen[6][3], nseen = 0;
        r->engine = MX_CUBE_ENGINE_ORDERINGS;
        for (int k = 0; k < 6; k++) {
            int seq[3];
            for (int j = 0; j < 3; j++)
                seq[j] = oid[perm[k][j]];
            bool dup = false;
            for (int s = 0; s < nseen && !dup; s++)
                dup = !memcmp(seen[s], seq, sizeof seq);
            if (dup)
                continue;
            memcpy(seen[nseen++], seq, sizeof seq);
            double prod = 1.0;
            for (int j = 0; j < 3; j++)
                prod *= seq[j] < 0 ? 1.0 : group_rate(g[j], seq[j]);
            p += prod;
        }
    }
    if (p > 1.0)
        p = 1.0; /* all-blank lines, or a table whose rates sum above 1 */
    if (!(p > 0.0)) {
        snprintf(r->reason, sizeof r->reason, "probability is 0 for these lines");
        return 0;
    }
    r->ok = true;
    r->probability = p;
    r->expected_trials = 1.0 / p;
    r->expected_cost = r->expected_trials * r->cube_price;
    return 0;
}
