/* mxstub_data.c - the answers mxstub makes up.
 *
 * mxstub must answer for any character name, and the same name must get the
 * same answer in every run, so tests and benchmarks are reproducible without
 * a copy of the real API. Everything here is derived from a hash of the name,
 * ocid or API key. The equipment documents copy the shape and the option-line
 * formats of real item-equipment responses ("STR : +12%" style lines such as
 * "INT +12%", "캐릭터 기준 9레벨 당 DEX +2", "보스 몬스터 데미지 +35%"), so
 * the parser and the calculators see realistic input.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mx_err.h"
#include "mxstub_int.h"

/* ---- hashing --------------------------------------------------------- */

static uint64_t mix64(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

uint64_t mx__stub_hash64(const void *p, size_t n, uint64_t seed)
{
    const unsigned char *s = p;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 0x100000001b3ULL;
    }
    return mix64(h ^ mix64(seed));
}

void mx__stub_ocid(const char *name, size_t n, char out[MX__STUB_OCID_LEN + 1])
{
    uint64_t a = mx__stub_hash64(name, n, 1);
    uint64_t b = mx__stub_hash64(name, n, 2);
    snprintf(out, MX__STUB_OCID_LEN + 1, "%016llx%016llx", (unsigned long long)a,
             (unsigned long long)b);
}

bool mx__stub_ocid_valid(const char *s)
{
    size_t i;
    for (i = 0; s[i]; i++) {
        char c = s[i];
        if (i >= MX__STUB_OCID_LEN || !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
    }
    return i == MX__STUB_OCID_LEN;
}

bool mx__stub_name_valid(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    if (n == 0 || n > MX__STUB_NAME_MAX)
        return false;
    for (size_t i = 0; i < n;) {
        unsigned char c = u[i];
        size_t len;
        uint32_t cp;
        if (c < 0x80) {
            if (c < 0x20 || c == 0x7f)
                return false;
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            len = 2;
            cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            len = 3;
            cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            len = 4;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (i + len > n)
            return false;
        for (size_t k = 1; k < len; k++) {
            if ((u[i + k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (u[i + k] & 0x3f);
        }
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
            (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += len;
    }
    return true;
}

/* ---- ocid -> name registry ------------------------------------------- */

struct reg_entry {
    char ocid[MX__STUB_OCID_LEN + 1]; /* "" = empty slot */
    char name[MX__STUB_NAME_MAX + 1];
};

static struct reg_entry *registry; /* MX__STUB_REGISTRY_CAP slots, lazily */
static size_t registry_used;       /* filled slots; kept <= 3/4 of cap */

static size_t reg_slot(const char *ocid)
{
    return (size_t)mx__stub_hash64(ocid, MX__STUB_OCID_LEN, 7) & (MX__STUB_REGISTRY_CAP - 1);
}

int mx__stub_registry_put(const char *ocid, const char *name)
{
    if (!registry) {
        registry = calloc(MX__STUB_REGISTRY_CAP, sizeof(*registry));
        if (!registry) {
            fprintf(stderr, "mxstub: out of memory\n");
            abort();
        }
    }
    for (size_t i = reg_slot(ocid), probes = 0; probes < MX__STUB_REGISTRY_CAP;
         i = (i + 1) & (MX__STUB_REGISTRY_CAP - 1), probes++) {
        struct reg_entry *e = &registry[i];
        if (e->ocid[0] == '\0') {
            if (registry_used >= MX__STUB_REGISTRY_CAP / 4 * 3)
                return MX_EFULL;
            memcpy(e->ocid, ocid, MX__STUB_OCID_LEN + 1);
            snprintf(e->name, sizeof(e->name), "%s", name);
            registry_used++;
            return 0;
        }
        if (memcmp(e->ocid, ocid, MX__STUB_OCID_LEN) == 0)
            return 0;
    }
    return MX_EFULL;
}

const char *mx__stub_registry_get(const char *ocid)
{
    if (!registry || !mx__stub_ocid_valid(ocid))
        return NULL;
    for (size_t i = reg_slot(ocid), probes = 0; probes < MX__STUB_REGISTRY_CAP;
         i = (i + 1) & (MX__STUB_REGISTRY_CAP - 1), probes++) {
        struct reg_entry *e = &registry[i];
        if (e->ocid[0] == '\0')
            return NULL;
        if (memcmp(e->ocid, ocid, MX__STUB_OCID_LEN) == 0)
            return e->name;
    }
    return NULL;
}

void mx__stub_registry_clear(void)
{
    free(registry);
    registry = NULL;
    registry_used = 0;
}

/* ---- a deterministic generator --------------------------------------- */

struct rng {
    uint64_t s;
};

static uint64_t rng_next(struct rng *r)
{
    r->s += 0x9e3779b97f4a7c15ULL;
    return mix64(r->s);
}

/* uniform in [0, n) for small n */
static unsigned rng_below(struct rng *r, unsigned n)
{
    return (unsigned)(rng_next(r) % n);
}

static int rng_range(struct rng *r, int lo, int hi)
{
    return lo + (int)rng_below(r, (unsigned)(hi - lo + 1));
}

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* ---- tables ---------------------------------------------------------- */

static const char *const worlds[] = {"스카니아", "베라",     "루나",     "제니스",  "크로아",
                                     "유니온",   "엘리시움", "이노시스", "레드",    "오로라",
                                     "아케인",   "노바",     "에오스",   "핼리오스"};

enum stat { S_STR, S_DEX, S_INT, S_LUK };
static const char *const stat_name[] = {"STR", "DEX", "INT", "LUK"};

struct cls {
    const char *name;
    enum stat main, second;
    bool magic;           /* 마력 rather than 공격력 */
    const char *arch;     /* armor name part: 나이트, 메이지, 아처, 시프, 파이렛 */
    const char *weapon;   /* item_equipment_part of the weapon */
    const char *sub_part; /* item_equipment_part of the secondary weapon */
    const char *sub_name;
};

static const struct cls classes[] = {
    {"히어로", S_STR, S_DEX, false, "나이트", "두손검", "블레이드", "히어로의 메달"},
    {"팔라딘", S_STR, S_DEX, false, "나이트", "한손둔기", "방패", "성기사의 방패"},
    {"다크나이트", S_STR, S_DEX, false, "나이트", "창", "블레이드", "다크나이트의 자드"},
    {"아크메이지(불,독)", S_INT, S_LUK, true, "메이지", "스태프", "마법서", "불독의 마법서"},
    {"아크메이지(썬,콜)", S_INT, S_LUK, true, "메이지", "스태프", "마법서", "썬콜의 마법서"},
    {"비숍", S_INT, S_LUK, true, "메이지", "완드", "마법서", "비숍의 마법서"},
    {"에반", S_INT, S_LUK, true, "메이지", "스태프", "문서", "드래곤마스터의 유산"},
    {"보우마스터", S_DEX, S_STR, false, "아처", "활", "화살깃", "보우마스터의 화살깃"},
    {"신궁", S_DEX, S_STR, false, "아처", "석궁", "화살촉", "신궁의 화살촉"},
    {"나이트로드", S_LUK, S_DEX, false, "시프", "아대", "부적", "나이트로드의 부적"},
    {"섀도어", S_LUK, S_DEX, false, "시프", "단검", "단도", "섀도어의 단도"},
    {"캡틴", S_DEX, S_STR, false, "파이렛", "건", "권총", "캡틴의 권총"},
    {"메카닉", S_DEX, S_STR, false, "파이렛", "건", "매그넘", "메카닉의 매그넘"},
    {"아델", S_STR, S_DEX, false, "나이트", "튜너", "브레이슬릿", "아델의 브레이슬릿"},
};

static const char *const grades[] = {"레어", "에픽", "유니크", "레전드리"};

/* how an item's slot behaves in the generator */
enum kind {
    K_ARMOR, /* hat, top, bottom, shoes, gloves, cape, shoulder */
    K_ACC,   /* face, eye, earring, pendants, belt, rings 2-4 */
    K_WEAPON,
    K_SUB, /* secondary weapon */
    K_EMBLEM,
    K_SPECIAL, /* special skill ring (반지1) */
    K_HEART,
    K_POCKET,
    K_PLAIN /* medal, badge: no potential, no stars */
};

struct slot {
    const char *slot, *part; /* part NULL: taken from the class */
    enum kind kind;
    const char *armor_word; /* for K_ARMOR: 햇, 슈트 ... */
    bool flame;             /* can carry item_add_option */
    bool gloves, hat;
};

static const struct slot slots[] = {
    {"모자", "모자", K_ARMOR, "햇", true, false, true},
    {"얼굴장식", "얼굴장식", K_ACC, NULL, true, false, false},
    {"눈장식", "눈장식", K_ACC, NULL, true, false, false},
    {"귀고리", "귀고리", K_ACC, NULL, true, false, false},
    {"상의", "상의", K_ARMOR, "셔츠", true, false, false},
    {"하의", "하의", K_ARMOR, "팬츠", true, false, false},
    {"신발", "신발", K_ARMOR, "슈즈", true, false, false},
    {"장갑", "장갑", K_ARMOR, "글러브", true, true, false},
    {"망토", "망토", K_ARMOR, "케이프", true, false, false},
    {"보조무기", NULL, K_SUB, NULL, false, false, false},
    {"무기", NULL, K_WEAPON, NULL, true, false, false},
    {"반지1", "반지", K_SPECIAL, NULL, false, false, false},
    {"반지2", "반지", K_ACC, NULL, false, false, false},
    {"반지3", "반지", K_ACC, NULL, false, false, false},
    {"반지4", "반지", K_ACC, NULL, false, false, false},
    {"펜던트", "펜던트", K_ACC, NULL, true, false, false},
    {"훈장", "훈장", K_PLAIN, NULL, false, false, false},
    {"벨트", "벨트", K_ACC, NULL, true, false, false},
    {"어깨장식", "어깨장식", K_ARMOR, "숄더", false, false, false},
    {"포켓 아이템", "포켓 아이템", K_POCKET, NULL, true, false, false},
    {"기계 심장", "기계 심장", K_HEART, NULL, false, false, false},
    {"뱃지", "뱃지", K_PLAIN, NULL, false, false, false},
    {"엠블렘", "엠블렘", K_EMBLEM, NULL, false, false, false},
    {"펜던트2", "펜던트", K_ACC, NULL, true, false, false},
};

struct named {
    const char *name;
    int level;
};

/* accessories per slot, by slot name; a few real items of each */
struct acc_list {
    const char *slot;
    struct named items[3];
};

static const struct acc_list accs[] = {
    {"얼굴장식",
     {{"루즈 컨트롤 머신 마크", 160}, {"트와일라이트 마크", 140}, {"응축된 힘의 결정석", 110}}},
    {"눈장식", {{"마력이 깃든 안대", 160}, {"블랙빈 마크", 135}, {"파풀라투스 마크", 145}}},
    {"귀고리",
     {{"커맨더 포스 이어링", 200}, {"에스텔라 이어링", 160}, {"데아 시두스 이어링", 160}}},
    {"반지2", {{"거대한 공포", 200}, {"마이스터링", 140}, {"실버블라썸 링", 110}}},
    {"반지3", {{"여명의 가디언 엔젤 링", 160}, {"고귀한 이피아의 반지", 200}, {"마이스터링", 140}}},
    {"반지4", {{"마이스터링", 140}, {"어웨이크 링", 30}, {"글로리온 링 : 슈프림", 130}}},
    {"펜던트", {{"데이브레이크 펜던트", 140}, {"도미네이터 펜던트", 140}, {"고통의 근원", 160}}},
    {"펜던트2",
     {{"고통의 근원", 160}, {"카오스 혼테일의 목걸이", 120}, {"데이브레이크 펜던트", 140}}},
    {"벨트", {{"몽환의 벨트", 200}, {"골든 클로버 벨트", 140}, {"타일런트 헤르메스 벨트", 150}}},
};

static const struct named specials[] = {{"리스트레인트 링", 110},
                                        {"웨폰퍼프 - I 링", 110},
                                        {"컨티뉴어스 링", 110},
                                        {"리스크테이커 링", 110}};
static const struct named medals[] = {{"칠요의 몬스터파커", 100}, {"핑크빈 슬레이어", 100}};
static const struct named badges[] = {{"칠요의 뱃지", 100}, {"크리스탈 웬투스 뱃지", 130}};
static const struct named pockets[] = {{"핑크빛 성배", 140}, {"저주받은 청의 마도서", 160}};
static const struct named hearts[] = {{"티타늄 하트", 100}, {"페어리 하트", 100}};
static const struct named emblems[] = {{"골드 메이플리프 엠블렘", 100}, {"미트라의 분노", 200}};

/* armor and weapon sets: name prefix, level */
static const struct named sets[] = {{"앱솔랩스", 160}, {"아케인셰이드", 200}, {"에테르넬", 250}};

/* ---- basic ----------------------------------------------------------- */

static void look_code(struct rng *r, char *out, size_t n)
{
    for (size_t i = 0; i + 1 < n; i++)
        out[i] = (char)('A' + rng_below(r, 16));
    out[n - 1] = '\0';
}

static const struct cls *class_of(const char *ocid)
{
    return &classes[mx__stub_hash64(ocid, strlen(ocid), 11) % NELEM(classes)];
}

/* world and level depend on the ocid alone, so basic and list agree */
static const char *world_of(const char *ocid)
{
    return worlds[mx__stub_hash64(ocid, strlen(ocid), 15) % NELEM(worlds)];
}

static int level_of(const char *ocid)
{
    return 200 + (int)(mx__stub_hash64(ocid, strlen(ocid), 16) % 100);
}

void mx__stub_gen_basic(struct mx_jsonw *w, const char *ocid, const char *name, const char *cls)
{
    struct rng r = {mx__stub_hash64(ocid, strlen(ocid), 12)};
    char made_name[32], buf[64], look[161], url[256];
    int level = level_of(ocid);

    if (!name) {
        snprintf(made_name, sizeof(made_name), "stub%.8s", ocid);
        name = made_name;
    }
    if (!cls || !cls[0])
        cls = class_of(ocid)->name;
    mx_jsonw_obj_open(w);
    mx_jsonw_knull(w, "date");
    mx_jsonw_kstr(w, "character_name", name);
    mx_jsonw_kstr(w, "world_name", world_of(ocid));
    mx_jsonw_kstr(w, "character_gender", rng_below(&r, 2) ? "남" : "여");
    mx_jsonw_kstr(w, "character_class", cls);
    mx_jsonw_kstr(w, "character_class_level", "6");
    mx_jsonw_kint(w, "character_level", level);
    mx_jsonw_kint(w, "character_exp", (int64_t)(rng_next(&r) % 900000000000000ULL));
    snprintf(buf, sizeof(buf), "%u.%03u", rng_below(&r, 100), rng_below(&r, 1000));
    mx_jsonw_kstr(w, "character_exp_rate", buf);
    snprintf(buf, sizeof(buf), "길드%u", rng_below(&r, 1000));
    mx_jsonw_kstr(w, "character_guild_name", buf);
    look_code(&r, look, sizeof(look));
    snprintf(url, sizeof(url),
             "https://open.api.nexon.com/static/maplestory/character/look/%s?wmotion=W02", look);
    mx_jsonw_kstr(w, "character_image", url);
    snprintf(buf, sizeof(buf), "20%02u-%02u-%02uT00:00+09:00", 10 + rng_below(&r, 14),
             1 + rng_below(&r, 12), 1 + rng_below(&r, 28));
    mx_jsonw_kstr(w, "character_date_create", buf);
    mx_jsonw_kstr(w, "access_flag", "true");
    mx_jsonw_kstr(w, "liberation_quest_clear", rng_below(&r, 3) ? "2" : "0");
    mx_jsonw_obj_close(w);
}

/* ---- equipment ------------------------------------------------------- */

enum {
    O_STR,
    O_DEX,
    O_INT,
    O_LUK,
    O_HP,
    O_MP,
    O_ATT,
    O_MATT,
    O_ARMOR,
    O_SPEED,
    O_JUMP,
    O_BOSS,
    O_IGNORE,
    O_ALL,
    O_DAMAGE,
    O_HPR,
    O_MPR,
    O__N
};

static const char *const opt_key[O__N] = {"str",
                                          "dex",
                                          "int",
                                          "luk",
                                          "max_hp",
                                          "max_mp",
                                          "attack_power",
                                          "magic_power",
                                          "armor",
                                          "speed",
                                          "jump",
                                          "boss_damage",
                                          "ignore_monster_armor",
                                          "all_stat",
                                          "damage",
                                          "max_hp_rate",
                                          "max_mp_rate"};

/* The key lists of each option object, in the real API's order. */
static const int total_keys[] = {O_STR,    O_DEX,  O_INT,    O_LUK,   O_HP,   O_MP,
                                 O_ATT,    O_MATT, O_ARMOR,  O_SPEED, O_JUMP, O_BOSS,
                                 O_IGNORE, O_ALL,  O_DAMAGE, -1,      O_HPR,  O_MPR};
static const int base_keys[] = {O_STR,   O_DEX,   O_INT,  O_LUK,  O_HP,     O_MP,  O_ATT, O_MATT,
                                O_ARMOR, O_SPEED, O_JUMP, O_BOSS, O_IGNORE, O_ALL, O_HPR, O_MPR};
static const int exc_keys[] = {O_STR, O_DEX, O_INT, O_LUK, O_HP, O_MP, O_ATT, O_MATT};
static const int add_keys[] = {O_STR,   O_DEX,   O_INT,  O_LUK,  O_HP,     O_MP,  O_ATT, O_MATT,
                               O_ARMOR, O_SPEED, O_JUMP, O_BOSS, O_DAMAGE, O_ALL, -1};
static const int etc_keys[] = {O_STR, O_DEX,  O_INT,   O_LUK,   O_HP,  O_MP,
                               O_ATT, O_MATT, O_ARMOR, O_SPEED, O_JUMP};

/* Open one option object under key and write its members; -1 in keys is
 * "equipment_level_decrease": 0. The caller may add members, then closes it. */
static void open_opts(struct mx_jsonw *w, const char *key, const int *v, const int *keys,
                      size_t nkeys)
{
    char buf[24];
    mx_jsonw_key(w, key);
    mx_jsonw_obj_open(w);
    for (size_t i = 0; i < nkeys; i++) {
        if (keys[i] < 0) {
            mx_jsonw_kint(w, "equipment_level_decrease", 0);
            continue;
        }
        snprintf(buf, sizeof(buf), "%d", v[keys[i]]);
        mx_jsonw_kstr(w, opt_key[keys[i]], buf);
    }
}

/* One potential line in the real format. add: additional potential. */
static void pot_line(struct rng *r, char *out, size_t n, const struct cls *c, const struct slot *s,
                     int grade, int level, bool add, bool first)
{
    const char *att = c->magic ? "마력" : "공격력";
    const char *ms = stat_name[c->main];
    int prime = 3 * (grade + 1) + (level >= 250 ? 1 : 0);
    int addp = (int[]){2, 4, 6, 7}[grade] + (level >= 200 && grade == 3 ? 1 : 0);
    unsigned pick = rng_below(r, 10);

    if (!add) {
        int v = (first || pick < 5 || prime <= 3) ? prime : prime - 3;
        if (s->kind == K_WEAPON || s->kind == K_SUB || s->kind == K_EMBLEM) {
            int wv = 3 * (grade + 1); /* rare 3, epic 6, unique 9, legendary 12 */
            if (!first && pick < 3 && grade >= 2 && s->kind != K_EMBLEM)
                snprintf(out, n, "보스 몬스터 데미지 +%d%%", grade == 3 ? (pick ? 35 : 40) : 30);
            else if (!first && pick < 5 && grade >= 2)
                snprintf(out, n, "몬스터 방어율 무시 +%d%%", grade == 3 ? 35 : 30);
            else
                snprintf(out, n, "%s +%d%%", att, (first || pick < 8 || wv <= 3) ? wv : wv - 3);
        } else if (s->gloves && grade == 3 && pick < 4) {
            snprintf(out, n, "크리티컬 데미지 +8%%");
        } else if (s->hat && grade == 3 && pick < 2) {
            snprintf(out, n, "스킬 재사용 대기시간 -%d초", pick ? 1 : 2);
        } else if (s->kind == K_ACC && !first && pick >= 8 && grade >= 2) {
            snprintf(out, n, pick == 8 ? "아이템 드롭률 +20%%" : "메소 획득량 +20%%");
        } else if (pick == 7 && v > 3) {
            snprintf(out, n, "올스탯 +%d%%", v - 3);
        } else if (pick == 6 && !first) {
            snprintf(out, n, "%s +%d%%", stat_name[c->second], v);
        } else {
            snprintf(out, n, "%s +%d%%", ms, v);
        }
        return;
    }
    if (s->kind == K_WEAPON || s->kind == K_SUB || s->kind == K_EMBLEM) {
        if (pick < 6)
            snprintf(out, n, "%s +%d%%", att, 3 * (grade + 1));
        else if (pick < 8)
            snprintf(out, n, "%s +%d", att, 8 + 3 * grade);
        else
            snprintf(out, n, "%s +%d%%", ms, addp - 1);
    } else if (s->gloves && pick < 2 && grade >= 2) {
        snprintf(out, n, "크리티컬 데미지 +%d%%", grade == 3 ? 3 : 1);
    } else if (pick < 5) {
        snprintf(out, n, "%s +%d%%", ms, first ? addp : addp - (int)rng_below(r, 2));
    } else if (pick < 7) {
        snprintf(out, n, "캐릭터 기준 9레벨 당 %s +%d", ms, grade >= 3 ? 2 : 1);
    } else if (pick < 9) {
        snprintf(out, n, "%s +%d", att, 10 + 2 * grade + (int)rng_below(r, 3));
    } else {
        snprintf(out, n, "올스탯 +%d%%", addp > 2 ? addp - 2 : 1);
    }
}

static int max_star(int level)
{
    if (level <= 94)
        return 5;
    if (level <= 107)
        return 8;
    if (level <= 117)
        return 10;
    if (level <= 127)
        return 15;
    if (level <= 137)
        return 20;
    return 30;
}

static void icon_url(struct rng *r, char *out, size_t n)
{
    char code[9];
    for (int i = 0; i < 8; i++)
        code[i] = (char)('A' + rng_below(r, 16));
    code[8] = '\0';
    snprintf(out, n, "https://open.api.nexon.com/static/maplestory/item/icon/K%s", code + 1);
}

static struct named pick_named(struct rng *r, const struct named *list, size_t n)
{
    return list[rng_below(r, (unsigned)n)];
}

static void write_item(struct mx_jsonw *w, struct rng *r, const struct cls *c, const struct slot *s,
                       int tier)
{
    char name[128], icon[128], line[96], buf[48];
    const char *part = s->part;
    struct named it = {NULL, 0};
    int level, star = 0, grade = -1, agrade = -1, special = 0;
    bool scroll = false;
    int base[O__N] = {0}, add[O__N] = {0}, sf[O__N] = {0}, etc[O__N] = {0}, exc[O__N] = {0};
    int total[O__N];

    switch (s->kind) {
    case K_ARMOR:
        snprintf(name, sizeof(name), "%s %s%s", sets[tier].name, c->arch, s->armor_word);
        level = sets[tier].level;
        break;
    case K_WEAPON:
        snprintf(name, sizeof(name), "%s %s", tier == 2 ? "제네시스" : sets[tier].name, c->weapon);
        level = tier == 2 ? 200 : sets[tier].level;
        part = c->weapon;
        break;
    case K_SUB:
        snprintf(name, sizeof(name), "%s", c->sub_name);
        level = 100;
        part = c->sub_part;
        break;
    default:
        if (s->kind == K_ACC) {
            for (size_t i = 0; i < NELEM(accs); i++)
                if (strcmp(accs[i].slot, s->slot) == 0)
                    it = pick_named(r, accs[i].items, 3);
        } else if (s->kind == K_SPECIAL) {
            it = pick_named(r, specials, NELEM(specials));
        } else if (s->kind == K_PLAIN) {
            it = strcmp(s->slot, "훈장") == 0 ? pick_named(r, medals, NELEM(medals))
                                              : pick_named(r, badges, NELEM(badges));
        } else if (s->kind == K_POCKET) {
            it = pick_named(r, pockets, NELEM(pockets));
        } else if (s->kind == K_HEART) {
            it = pick_named(r, hearts, NELEM(hearts));
        } else {
            it = pick_named(r, emblems, NELEM(emblems));
        }
        snprintf(name, sizeof(name), "%s", it.name ? it.name : s->slot);
        level = it.name ? it.level : 100;
        break;
    }
    icon_url(r, icon, sizeof(icon));

    if (s->kind != K_PLAIN && s->kind != K_POCKET && s->kind != K_SPECIAL) {
        unsigned g = rng_below(r, 20); /* 45% legendary, 35% unique, 15% epic, 5% rare */
        grade = g < 9 ? 3 : g < 16 ? 2 : g < 19 ? 1 : 0;
        unsigned a = rng_below(r, 10);
        agrade = a < 2 ? 3 : a < 5 ? 2 : a < 8 ? 1 : 0;
    }
    if (s->kind == K_SPECIAL)
        special = rng_range(r, 1, 4);
    if (s->kind == K_ARMOR || s->kind == K_ACC || s->kind == K_WEAPON || s->kind == K_HEART) {
        static const int common[] = {12, 15, 17, 17, 18, 18, 20, 21, 22, 22, 22, 23};
        star = common[rng_below(r, NELEM(common))];
        if (s->kind == K_HEART)
            star = rng_range(r, 0, 8);
        if (level <= 150 && s->kind == K_ACC && rng_below(r, 6) == 0) {
            scroll = true;
            star = rng_range(r, 5, 12);
        }
        if (star > max_star(level))
            star = max_star(level);
    }

    /* base, flame, starforce and scroll numbers: plausible, not exact */
    base[c->main] = base[c->second] = level / 4;
    base[c->magic ? O_MATT : O_ATT] = s->kind == K_WEAPON ? level + 50 : level / 40;
    base[O_ARMOR] = s->kind == K_ARMOR ? level * 3 : 0;
    if (s->kind == K_WEAPON || s->kind == K_SUB)
        base[O_IGNORE] = 10;
    if (s->flame) {
        int step = level / 20 + 1;
        add[c->main] = step * rng_range(r, 0, 7);
        add[c->second] = step * rng_range(r, 0, 5);
        add[O_ALL] = rng_range(r, 0, 7);
        if (s->kind == K_WEAPON) {
            add[c->magic ? O_MATT : O_ATT] = (level / 10) * rng_range(r, 0, 5);
            add[O_BOSS] = 2 * rng_range(r, 0, 6);
            add[O_DAMAGE] = rng_range(r, 0, 7);
        } else {
            add[c->magic ? O_MATT : O_ATT] = rng_range(r, 0, 7);
        }
    }
    if (star > 0) {
        int stat = star <= 15 ? star * 3 : 45 + (star - 15) * 15;
        for (int k = S_STR; k <= S_LUK; k++)
            sf[k] = stat;
        sf[c->magic ? O_MATT : O_ATT] = star > 15 ? (star - 15) * 10 : 0;
    }
    etc[c->main] = scroll ? 0 : rng_range(r, 0, 30);
    for (int k = 0; k < O__N; k++)
        total[k] = base[k] + add[k] + sf[k] + etc[k] + exc[k];

    mx_jsonw_obj_open(w);
    mx_jsonw_kstr(w, "item_equipment_part", part);
    mx_jsonw_kstr(w, "item_equipment_slot", s->slot);
    mx_jsonw_kstr(w, "item_name", name);
    mx_jsonw_kstr(w, "item_icon", icon);
    mx_jsonw_knull(w, "item_description");
    mx_jsonw_kstr(w, "item_shape_name", name);
    mx_jsonw_kstr(w, "item_shape_icon", icon);
    mx_jsonw_knull(w, "item_gender");
    open_opts(w, "item_total_option", total, total_keys, NELEM(total_keys));
    mx_jsonw_obj_close(w);
    open_opts(w, "item_base_option", base, base_keys, NELEM(base_keys));
    mx_jsonw_kint(w, "base_equipment_level", level);
    mx_jsonw_obj_close(w);
    mx_jsonw_kstr(w, "potential_option_grade", grade >= 0 ? grades[grade] : NULL);
    mx_jsonw_kstr(w, "additional_potential_option_grade", agrade >= 0 ? grades[agrade] : NULL);
    mx_jsonw_kstr(w, "potential_option_flag", "false");
    for (int i = 1; i <= 3; i++) {
        snprintf(buf, sizeof(buf), "potential_option_%d", i);
        if (grade >= 0) {
            pot_line(r, line, sizeof(line), c, s, grade, level, false, i == 1);
            mx_jsonw_kstr(w, buf, line);
        } else {
            mx_jsonw_knull(w, buf);
        }
    }
    mx_jsonw_kstr(w, "additional_potential_option_flag", "false");
    for (int i = 1; i <= 3; i++) {
        snprintf(name, sizeof(name), "additional_potential_option_%d", i);
        if (agrade >= 0) {
            pot_line(r, line, sizeof(line), c, s, agrade, level, true, i == 1);
            mx_jsonw_kstr(w, name, line);
        } else {
            mx_jsonw_knull(w, name);
        }
    }
    mx_jsonw_kint(w, "equipment_level_increase", 0);
    open_opts(w, "item_exceptional_option", exc, exc_keys, NELEM(exc_keys));
    mx_jsonw_kint(w, "exceptional_upgrade", 0);
    mx_jsonw_obj_close(w);
    open_opts(w, "item_add_option", add, add_keys, NELEM(add_keys));
    mx_jsonw_obj_close(w);
    mx_jsonw_kint(w, "growth_exp", 0);
    mx_jsonw_kint(w, "growth_level", 0);
    snprintf(buf, sizeof(buf), "%d", scroll ? 0 : (s->kind == K_PLAIN ? 0 : rng_range(r, 0, 12)));
    mx_jsonw_kstr(w, "scroll_upgrade", buf);
    mx_jsonw_kstr(w, "cuttable_count", s->kind == K_ARMOR || s->kind == K_WEAPON ? "8" : "255");
    mx_jsonw_kstr(w, "golden_hammer_flag", "미적용");
    mx_jsonw_kstr(w, "scroll_resilience_count", "0");
    mx_jsonw_kstr(w, "scroll_upgradeable_count", "0");
    mx_jsonw_knull(w, "soul_name");
    mx_jsonw_knull(w, "soul_option");
    open_opts(w, "item_etc_option", etc, etc_keys, NELEM(etc_keys));
    mx_jsonw_obj_close(w);
    snprintf(buf, sizeof(buf), "%d", star);
    mx_jsonw_kstr(w, "starforce", buf);
    mx_jsonw_kstr(w, "starforce_scroll_flag", scroll ? "사용" : "미사용");
    open_opts(w, "item_starforce_option", sf, etc_keys, NELEM(etc_keys));
    mx_jsonw_obj_close(w);
    mx_jsonw_kint(w, "special_ring_level", special);
    mx_jsonw_knull(w, "date_expire");
    mx_jsonw_kstr(w, "freestyle_flag", "0");
    mx_jsonw_obj_close(w);
}

static void write_preset(struct mx_jsonw *w, const char *key, const char *ocid, const struct cls *c,
                         int preset)
{
    struct rng r = {mx__stub_hash64(ocid, strlen(ocid), 100 + (uint64_t)preset)};
    int tier = (int)(mx__stub_hash64(ocid, strlen(ocid), 13) % 3);
    mx_jsonw_key(w, key);
    mx_jsonw_arr_open(w);
    for (size_t i = 0; i < NELEM(slots); i++) {
        /* presets differ a little: some drop the pocket or the badge */
        if (preset != 2 && (slots[i].kind == K_POCKET || slots[i].kind == K_PLAIN) &&
            rng_below(&r, 2) == 0)
            continue;
        write_item(w, &r, c, &slots[i], tier);
    }
    mx_jsonw_arr_close(w);
}

void mx__stub_gen_equipment(struct mx_jsonw *w, const char *ocid)
{
    const struct cls *c = class_of(ocid);
    struct rng r = {mx__stub_hash64(ocid, strlen(ocid), 14)};
    int preset_no = rng_range(&r, 1, 3);
    char key[48], icon[128];

    mx_jsonw_obj_open(w);
    mx_jsonw_knull(w, "date");
    mx_jsonw_kstr(w, "character_gender", rng_below(&r, 2) ? "남" : "여");
    mx_jsonw_kstr(w, "character_class", c->name);
    mx_jsonw_kint(w, "preset_no", preset_no);
    write_preset(w, "item_equipment", ocid, c, preset_no);
    for (int p = 1; p <= 3; p++) {
        snprintf(key, sizeof(key), "item_equipment_preset_%d", p);
        write_preset(w, key, ocid, c, p);
    }
    mx_jsonw_key(w, "title");
    mx_jsonw_obj_open(w);
    icon_url(&r, icon, sizeof(icon));
    mx_jsonw_kstr(w, "title_name", "예티X핑크빈");
    mx_jsonw_kstr(w, "title_icon", icon);
    mx_jsonw_kstr(w, "title_description", "올스탯 +20\n공격력/마력+10\n보스 몬스터 데미지+10%");
    mx_jsonw_knull(w, "date_expire");
    mx_jsonw_knull(w, "date_option_expire");
    mx_jsonw_knull(w, "title_shape_name");
    mx_jsonw_knull(w, "title_shape_icon");
    mx_jsonw_knull(w, "title_shape_description");
    mx_jsonw_obj_close(w);
    mx_jsonw_key(w, "medal_shape");
    mx_jsonw_null(w);
    mx_jsonw_key(w, "dragon_equipment");
    mx_jsonw_arr_open(w);
    mx_jsonw_arr_close(w);
    mx_jsonw_key(w, "mechanic_equipment");
    mx_jsonw_arr_open(w);
    mx_jsonw_arr_close(w);
    mx_jsonw_obj_close(w);
}

/* ---- character list -------------------------------------------------- */

static const char *const syllables[] = {"가", "나", "다", "라", "마", "바", "사", "아",
                                        "자", "차", "카", "타", "파", "하", "별", "달",
                                        "빛", "꽃", "린", "윤", "솔", "해", "온", "결"};

static void list_entry(struct mx_jsonw *w, const char *name, size_t len, uint64_t *refused)
{
    char ocid[MX__STUB_OCID_LEN + 1];
    mx__stub_ocid(name, len, ocid);
    if (mx__stub_registry_put(ocid, name) != 0)
        (*refused)++;
    mx_jsonw_obj_open(w);
    mx_jsonw_kstr(w, "ocid", ocid);
    mx_jsonw_kstr(w, "character_name", name);
    mx_jsonw_kstr(w, "world_name", world_of(ocid));
    mx_jsonw_kstr(w, "character_class", class_of(ocid)->name);
    mx_jsonw_kint(w, "character_level", level_of(ocid));
    mx_jsonw_obj_close(w);
}

void mx__stub_gen_list(struct mx_jsonw *w, const char *key, size_t key_len,
                       const char *const *extra, size_t nextra, uint64_t *refused)
{
    struct rng r = {mx__stub_hash64(key, key_len, 21)};
    int accounts = rng_below(&r, 4) == 0 ? 2 : 1;
    char buf[64], name[MX__STUB_NAME_MAX + 1];

    mx_jsonw_obj_open(w);
    mx_jsonw_key(w, "account_list");
    mx_jsonw_arr_open(w);
    for (int a = 0; a < accounts; a++) {
        int chars = rng_range(&r, 2, 6);
        mx_jsonw_obj_open(w);
        snprintf(buf, sizeof(buf), "%llu",
                 (unsigned long long)(rng_next(&r) % 9000000000ULL + 1000000000ULL));
        mx_jsonw_kstr(w, "account_id", buf);
        mx_jsonw_key(w, "character_list");
        mx_jsonw_arr_open(w);
        for (int i = 0; i < chars; i++) {
            int n = rng_range(&r, 2, 5);
            size_t len = 0;
            for (int k = 0; k < n; k++) {
                const char *sy = syllables[rng_below(&r, NELEM(syllables))];
                memcpy(name + len, sy, strlen(sy));
                len += strlen(sy);
            }
            name[len] = '\0';
            list_entry(w, name, len, refused);
        }
        for (size_t i = 0; a == 0 && i < nextra; i++)
            list_entry(w, extra[i], strlen(extra[i]), refused);
        mx_jsonw_arr_close(w);
        mx_jsonw_obj_close(w);
    }
    mx_jsonw_arr_close(w);
    mx_jsonw_obj_close(w);
}
