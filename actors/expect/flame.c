/* flame.c - flame (추가옵션) expectation by DP over option kinds (see
 * mx_flame.h and docs/expectation.md).
 *
 * One flame picks k distinct option kinds uniformly from the item's pool
 * (k = 4 on boss items; 1..4 with 40/40/16/4 % otherwise: Nexon's published
 * table) and a stage per line from the flame's stage distribution. With
 * dp[r][t] = sum over r-subsets of the kinds seen so far of the probability
 * that their score, capped at the target T, is t, P(score >= T | k) =
 * dp[k][T] / C(n, k). Kinds that score 0 under the weights still count in n.
 */
#include "mx_flame.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mx_err.h"

#define NSTAGE 8 /* stages 1..7 */

/* Stage distributions for non-boss items; boss items add 2 to the stage.
 * Powerful and eternal: Nexon's probability page (추가 옵션 등급 설정 확률).
 * Abyss: as used by the MapleExpectation service (not on that page). */
static const double stage_prob[MX_FLAME_NTYPES][NSTAGE] = {
    [MX_FLAME_POWERFUL] = {[1] = .20, [2] = .30, [3] = .36, [4] = .14},
    [MX_FLAME_ETERNAL] = {[2] = .29, [3] = .45, [4] = .25, [5] = .01},
    [MX_FLAME_ABYSS] = {[3] = .63, [4] = .34, [5] = .03},
};

static const double lines_prob[5] = {0, .40, .40, .16, .04};

/* Option kinds of the two pools (Nexon: 무기 / 그 외 장비). */
enum fkind {
    F_STR,
    F_DEX,
    F_INT,
    F_LUK,
    F_STR_DEX,
    F_STR_INT,
    F_STR_LUK,
    F_DEX_INT,
    F_DEX_LUK,
    F_INT_LUK,
    F_HP,
    F_MP,
    F_LEVEL,
    F_DEF,
    F_ATT,
    F_MAG,
    F_SPEED,
    F_JUMP,
    F_ALLSTAT,
    F_BOSS,
    F_DMG,
    F_NKINDS
};

static const enum fkind armor_pool[] = {
    F_STR, F_DEX, F_INT,   F_LUK, F_STR_DEX, F_STR_INT, F_STR_LUK, F_DEX_INT, F_DEX_LUK, F_INT_LUK,
    F_HP,  F_MP,  F_LEVEL, F_DEF, F_ATT,     F_MAG,     F_SPEED,   F_JUMP,    F_ALLSTAT,
};
static const enum fkind weapon_pool[] = {
    F_STR, F_DEX, F_INT,   F_LUK, F_STR_DEX, F_STR_INT, F_STR_LUK, F_DEX_INT, F_DEX_LUK, F_INT_LUK,
    F_HP,  F_MP,  F_LEVEL, F_DEF, F_ATT,     F_MAG,     F_BOSS,    F_DMG,     F_ALLSTAT,
};

static int stat_weight(const struct mx_flame_weights *w, enum mx_stat s)
{
    if (s == w->main)
        return MX_FLAME_W_MAIN;
    if (s == w->secondary)
        return MX_FLAME_W_SECONDARY;
    return 0;
}

int64_t mx_flame_score(const struct mx_flame_stats *f, const struct mx_flame_weights *w)
{
    /* upstream integers are any int: in 64 bits no sum of these can overflow */
    const int st[4] = {f->str, f->dex, f->int_, f->luk};
    int64_t s = 0;
    for (int i = 0; i < 4; i++)
        s += (int64_t)st[i] * stat_weight(w, (enum mx_stat)i);
    s += (int64_t)f->all_stat * MX_FLAME_W_ALLSTAT;
    s += (int64_t)(w->magic ? f->magic : f->attack) * MX_FLAME_W_ATTACK;
    s += ((int64_t)f->damage + f->boss_damage) * MX_FLAME_W_DAMAGE;
    return s;
}

/* Score of one line of kind k at stage st. */
static int line_score(enum fkind k, int st, const struct mx_flame_item *it,
                      const struct mx_flame_weights *w)
{
    int single = (it->level / 20 + 1) * st;
    int dbl = (it->level / 40 + 1) * st;
    static const enum mx_stat pair[6][2] = {
        {MX_STAT_STR, MX_STAT_DEX}, {MX_STAT_STR, MX_STAT_INT}, {MX_STAT_STR, MX_STAT_LUK},
        {MX_STAT_DEX, MX_STAT_INT}, {MX_STAT_DEX, MX_STAT_LUK}, {MX_STAT_INT, MX_STAT_LUK},
    };
    switch (k) {
    case F_STR:
    case F_DEX:
    case F_INT:
    case F_LUK:
        return single * stat_weight(w, (enum mx_stat)(k - F_STR));
    case F_STR_DEX:
    case F_STR_INT:
    case F_STR_LUK:
    case F_DEX_INT:
    case F_DEX_LUK:
    case F_INT_LUK: {
        const enum mx_stat *pr = pair[k - F_STR_DEX];
        return dbl * (stat_weight(w, pr[0]) + stat_weight(w, pr[1]));
    }
    case F_ATT:
    case F_MAG: {
        if ((k == F_MAG) != w->magic)
            return 0;
        if (!it->weapon)
            return st * MX_FLAME_W_ATTACK;
        /* weapon: base x (floor(L/40)+1) x stage x 1.1^(stage-3) %, rounded up */
        double pct = (it->level / 40 + 1) * st * pow(1.1, st > 3 ? st - 3 : 0);
        return (int)ceil(it->base_attack * pct / 100.0 - 1e-9) * MX_FLAME_W_ATTACK;
    }
    case F_ALLSTAT:
        return st * MX_FLAME_W_ALLSTAT;
    case F_BOSS:
        return 2 * st * MX_FLAME_W_DAMAGE;
    case F_DMG:
        return st * MX_FLAME_W_DAMAGE;
    default:
        return 0; /* HP, MP, level, defence, speed, jump: weight 0 */
    }
}

static double choose(int n, int k)
{
    double c = 1.0;
    if (k < 0 || k > n)
        return 0.0;
    for (int i = 0; i < k; i++)
        c = c * (n - i) / (i + 1);
    return c;
}

struct mx_flame_dist {
    int n;        /* distinct scores of nonzero probability */
    int *score;   /* ascending */
    double *tail; /* tail[i] = P(score >= score[i]) */
};

size_t mx_flame_dist_bytes(const struct mx_flame_dist *d)
{
    return d ? sizeof *d + (size_t)d->n * (sizeof *d->score + sizeof *d->tail) : 0;
}

void mx_flame_dist_free(struct mx_flame_dist *d)
{
    if (!d)
        return;
    free(d->score);
    free(d->tail);
    free(d);
}

static bool item_in_range(const struct mx_flame_item *it)
{
    return it->level >= 0 && it->level <= MX_FLAME_MAX_LEVEL &&
           (!it->weapon || (it->base_attack >= 0 && it->base_attack <= MX_FLAME_MAX_BASE_ATTACK));
}

/*
 * The full score distribution of one flame. Kinds whose lines score 0 at
 * every stage (z of them) only matter through how many lines they take, so
 * the DP runs over the scoring kinds only: dp[j][s] = sum over j-subsets of
 * them of P(their lines sum to s); then P(s | k lines) = sum_j C(z, k-j)
 * dp[j][s] / C(n, k). Scores are not capped at a target: the tail table then
 * answers every target of this structure.
 */
int mx_flame_dist_new(const struct mx_flame_item *it, const struct mx_flame_weights *w,
                      enum mx_flame_type type, struct mx_flame_dist **out)
{
    const enum fkind *pool;
    int n, rc = 0, nz = 0, z = 0;
    int sc[F_NKINDS][NSTAGE], ns = 0, maxk[F_NKINDS];
    double pr[NSTAGE], *dp = NULL, *nx = NULL, *pmf = NULL;
    struct mx_flame_dist *d = NULL;

    if (!out)
        return MX_EINVAL;
    *out = NULL;
    if (!it || !w || (int)type < 0 || type >= MX_FLAME_NTYPES || !item_in_range(it))
        return MX_EINVAL;
    pool = it->weapon ? weapon_pool : armor_pool;
    n = it->weapon ? (int)(sizeof weapon_pool / sizeof *pool)
                   : (int)(sizeof armor_pool / sizeof *pool);
    int shift = it->boss ? 2 : 0;
    for (int st = 1; st < NSTAGE; st++)
        if (stage_prob[type][st] != 0.0)
            pr[ns++] = stage_prob[type][st];
    /* per scoring kind: its score at each stage, and its largest */
    for (int i = 0; i < n; i++) {
        int m = 0, k = 0;
        for (int st = 1; st < NSTAGE; st++) {
            if (stage_prob[type][st] == 0.0)
                continue;
            int v = line_score(pool[i], st + shift, it, w); /* bounded by item_in_range */
            sc[nz][k++] = v;
            if (v > m)
                m = v;
        }
        if (m > 0)
            maxk[nz++] = m;
        else
            z++;
    }
    /* the widest sum: the 4 largest maxima */
    int top[4] = {0, 0, 0, 0};
    for (int i = 0; i < nz; i++) {
        int v = maxk[i];
        for (int j = 0; j < 4; j++)
            if (v > top[j]) {
                int t = top[j];
                top[j] = v;
                v = t;
            }
    }
    long maxsum = (long)top[0] + top[1] + top[2] + top[3];
    if (maxsum > MX_FLAME_MAX_WIDTH)
        return MX_ETOOBIG;
    size_t width = (size_t)maxsum + 1;
    dp = calloc(5 * width, sizeof *dp);
    nx = calloc(5 * width, sizeof *nx);
    pmf = calloc(width, sizeof *pmf);
    if (!dp || !nx || !pmf) {
        rc = MX_ENOMEM;
        goto out_free;
    }
    dp[0] = 1.0;                    /* dp[j * width + s] */
    size_t hi[5] = {0, 0, 0, 0, 0}; /* highest s with mass in row j */
    for (int i = 0; i < nz; i++) {
        memcpy(nx, dp, 5 * width * sizeof *dp);
        size_t nhi[5];
        memcpy(nhi, hi, sizeof hi);
        for (int r = 1; r <= 4 && r <= i + 1; r++) {
            const double *src = dp + (size_t)(r - 1) * width;
            double *dst = nx + (size_t)r * width;
            for (size_t t = 0; t <= hi[r - 1]; t++) {
                double base = src[t];
                if (base == 0.0)
                    continue;
                for (int s = 0; s < ns; s++) {
                    size_t nt = t + (size_t)sc[i][s];
                    dst[nt] += base * pr[s];
                    if (nt > nhi[r])
                        nhi[r] = nt;
                }
            }
        }
        memcpy(hi, nhi, sizeof hi);
        double *tmp = dp;
        dp = nx;
        nx = tmp;
    }
    for (int k = 1; k <= 4; k++) {
        double pk = it->boss ? (k == 4) : lines_prob[k];
        if (pk == 0.0)
            continue;
        double denom = choose(n, k);
        for (int j = 0; j <= k && j <= nz; j++) {
            double c = choose(z, k - j);
            if (c == 0.0)
                continue;
            double f = pk * c / denom;
            const double *row = dp + (size_t)j * width;
            for (size_t t = 0; t <= hi[j]; t++)
                pmf[t] += f * row[t];
        }
    }
    d = calloc(1, sizeof *d);
    if (!d) {
        rc = MX_ENOMEM;
        goto out_free;
    }
    for (size_t t = 0; t < width; t++)
        d->n += pmf[t] > 0.0;
    d->score = malloc((size_t)(d->n ? d->n : 1) * sizeof *d->score);
    d->tail = malloc((size_t)(d->n ? d->n : 1) * sizeof *d->tail);
    if (!d->score || !d->tail) {
        rc = MX_ENOMEM;
        goto out_free;
    }
    double acc = 0.0;
    int i = d->n;
    for (size_t t = width; t-- > 0;)
        if (pmf[t] > 0.0) {
            acc += pmf[t];
            i--;
            d->score[i] = (int)t;
            d->tail[i] = acc;
        }
    *out = d;
    d = NULL;
out_free:
    mx_flame_dist_free(d);
    free(dp);
    free(nx);
    free(pmf);
    return rc;
}

double mx_flame_dist_tail(const struct mx_flame_dist *d, int64_t target)
{
    int lo = 0, hi = d->n;
    if (target <= 0)
        return 1.0;
    while (lo < hi) { /* first score >= target */
        int mid = lo + (hi - lo) / 2;
        if (d->score[mid] < target)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < d->n ? d->tail[lo] : 0.0;
}

int mx_flame_prob(const struct mx_flame_item *it, const struct mx_flame_weights *w,
                  enum mx_flame_type type, int64_t target, double *p)
{
    struct mx_flame_dist *d;
    int rc;

    if (!it || !w || !p || (int)type < 0 || type >= MX_FLAME_NTYPES || it->level < 0)
        return MX_EINVAL;
    *p = 0.0;
    if (target > MX_FLAME_MAX_SCORE)
        return MX_ETOOBIG;
    if (target <= 0) {
        *p = 1.0;
        return 0;
    }
    if ((rc = mx_flame_dist_new(it, w, type, &d)))
        return rc;
    *p = mx_flame_dist_tail(d, target);
    mx_flame_dist_free(d);
    return 0;
}

const char *mx_flame_stat_name(enum mx_stat s)
{
    static const char *const names[4] = {"STR", "DEX", "INT", "LUK"};
    return (int)s >= 0 && s <= MX_STAT_LUK ? names[s] : "";
}

static const struct {
    const char *name;
    enum mx_stat main, secondary;
} class_table[] = {
    /* warriors */
    {"히어로", MX_STAT_STR, MX_STAT_DEX},
    {"팔라딘", MX_STAT_STR, MX_STAT_DEX},
    {"다크나이트", MX_STAT_STR, MX_STAT_DEX},
    {"소울마스터", MX_STAT_STR, MX_STAT_DEX},
    {"미하일", MX_STAT_STR, MX_STAT_DEX},
    {"블래스터", MX_STAT_STR, MX_STAT_DEX},
    {"데몬슬레이어", MX_STAT_STR, MX_STAT_DEX},
    {"데몬어벤져", MX_STAT_STR, MX_STAT_DEX},
    {"아란", MX_STAT_STR, MX_STAT_DEX},
    {"카이저", MX_STAT_STR, MX_STAT_DEX},
    {"아델", MX_STAT_STR, MX_STAT_DEX},
    {"제로", MX_STAT_STR, MX_STAT_DEX},
    {"렌", MX_STAT_STR, MX_STAT_DEX},
    /* pirates (STR) */
    {"바이퍼", MX_STAT_STR, MX_STAT_DEX},
    {"캐논마스터", MX_STAT_STR, MX_STAT_DEX},
    {"캐논슈터", MX_STAT_STR, MX_STAT_DEX},
    {"스트라이커", MX_STAT_STR, MX_STAT_DEX},
    {"은월", MX_STAT_STR, MX_STAT_DEX},
    {"아크", MX_STAT_STR, MX_STAT_DEX},
    /* DEX */
    {"보우마스터", MX_STAT_DEX, MX_STAT_STR},
    {"신궁", MX_STAT_DEX, MX_STAT_STR},
    {"패스파인더", MX_STAT_DEX, MX_STAT_STR},
    {"윈드브레이커", MX_STAT_DEX, MX_STAT_STR},
    {"메르세데스", MX_STAT_DEX, MX_STAT_STR},
    {"와일드헌터", MX_STAT_DEX, MX_STAT_STR},
    {"카인", MX_STAT_DEX, MX_STAT_STR},
    {"캡틴", MX_STAT_DEX, MX_STAT_STR},
    {"메카닉", MX_STAT_DEX, MX_STAT_STR},
    {"엔젤릭버스터", MX_STAT_DEX, MX_STAT_STR},
    /* INT */
    {"아크메이지(불,독)", MX_STAT_INT, MX_STAT_LUK},
    {"아크메이지(썬,콜)", MX_STAT_INT, MX_STAT_LUK},
    {"비숍", MX_STAT_INT, MX_STAT_LUK},
    {"플레임위자드", MX_STAT_INT, MX_STAT_LUK},
    {"에반", MX_STAT_INT, MX_STAT_LUK},
    {"루미너스", MX_STAT_INT, MX_STAT_LUK},
    {"배틀메이지", MX_STAT_INT, MX_STAT_LUK},
    {"일리움", MX_STAT_INT, MX_STAT_LUK},
    {"라라", MX_STAT_INT, MX_STAT_LUK},
    {"키네시스", MX_STAT_INT, MX_STAT_LUK},
    /* LUK */
    {"나이트로드", MX_STAT_LUK, MX_STAT_DEX},
    {"섀도어", MX_STAT_LUK, MX_STAT_DEX},
    {"듀얼블레이더", MX_STAT_LUK, MX_STAT_DEX},
    {"나이트워커", MX_STAT_LUK, MX_STAT_DEX},
    {"팬텀", MX_STAT_LUK, MX_STAT_DEX},
    {"카데나", MX_STAT_LUK, MX_STAT_DEX},
    {"호영", MX_STAT_LUK, MX_STAT_DEX},
    {"칼리", MX_STAT_LUK, MX_STAT_DEX},
    {"제논", MX_STAT_LUK, MX_STAT_DEX},
};

bool mx_flame_weights_for_class(const char *cls, struct mx_flame_weights *w)
{
    w->main = MX_STAT_STR;
    w->secondary = MX_STAT_DEX;
    w->magic = false;
    if (!cls)
        return false;
    for (size_t i = 0; i < sizeof class_table / sizeof class_table[0]; i++)
        if (!strcmp(cls, class_table[i].name)) {
            w->main = class_table[i].main;
            w->secondary = class_table[i].secondary;
            w->magic = w->main == MX_STAT_INT;
            return true;
        }
    return false;
}

bool mx_flame_is_boss_item(const char *name)
{
    static const char *const prefixes[] = {
        "에테르넬",
        "아케인셰이드",
        "앱솔랩스",
        "루타비스",
        "하이네스",
        "이글아이",
        "트릭스터",
        "파프니르",
        "카오스",
        "루즈 컨트롤 머신 마크",
        "마력이 깃든 안대",
        "블랙빈 마크",
        "파풀라투스 마크",
        "몽환의 벨트",
        "골든 클로버 벨트",
        "분노한 자쿰의 벨트",
        "혼테일의 목걸이",
        "카오스 혼테일의 목걸이",
        "매커네이터 펜던트",
        "도미네이터 펜던트",
        "데이브레이크 펜던트",
        "고통의 근원",
        "창세의",
        "저주받은",
        "미트라의 분노",
        "거대한 공포",
        "커맨더 포스 이어링",
        "에스텔라 이어링",
        "실버블라썸 링",
        "고귀한 이피아의 반지",
        "응축된 힘의 결정석",
        "아쿠아틱 레터 눈장식",
        "크리스탈 웬투스 뱃지",
        "지옥의 불꽃",
        "블레이즈",
        "제네시스",
    };
    if (!name)
        return false;
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++)
        if (!strncmp(name, prefixes[i], strlen(prefixes[i])))
            return true;
    return false;
}

bool mx_flame_can_have(const char *slot)
{
    static const char *const no[] = {
        "반지1", "반지2", "반지3",    "반지4",     "어깨장식",    "엠블렘",
        "뱃지",  "훈장",  "보조무기", "기계 심장", "포켓 아이템", "",
    };
    if (!slot)
        return false;
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        if (!strcmp(slot, no[i]))
            return false;
    return true;
}
