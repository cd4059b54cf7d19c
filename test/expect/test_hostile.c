/* test_hostile.c - the calculators on upstream numbers no real item has: a
 * flame stat of 300,000,000, stars of 99 and -3, levels of 9999 and -5, a
 * weapon attack of INT_MAX, every flame stat at INT_MIN or INT_MAX, a
 * potential line the table does not know. Each must give a document (0)
 * whose item says why it is not priced, never undefined behaviour: this is
 * a unit test, so scripts/test runs it under ASan+UBSan too. */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mx_testutil.h"

#include "mx_doc.h"
#include "mx_err.h"
#include "expect_tables.h"
#include "mx_flame.h"
#include "mx_jsonr.h"

struct hitem {
    const char *slot, *name;
    const char *level;                      /* base_equipment_level, a JSON number */
    const char *star;                       /* starforce, a string as Nexon sends */
    const char *base_magic;                 /* item_base_option.magic_power */
    const char *fl_int, *fl_magic, *fl_str; /* item_add_option */
    const char *pot1;
};

/* One item-equipment document of class 에반 with the item in preset 1. */
static char *doc_of(const struct hitem *h)
{
    char *b = malloc(8192);
    assert_non_null(b);
    int n = snprintf(
        b, 8192,
        "{\"character_class\":\"에반\",\"preset_no\":1,\"item_equipment\":[],"
        "\"item_equipment_preset_1\":[{\"item_equipment_part\":\"모자\","
        "\"item_equipment_slot\":\"%s\",\"item_name\":\"%s\",\"item_icon\":\"x\","
        "\"item_base_option\":{\"magic_power\":\"%s\",\"attack_power\":\"0\","
        "\"base_equipment_level\":%s},"
        "\"potential_option_grade\":\"레전드리\",\"potential_option_1\":\"%s\","
        "\"potential_option_2\":\"INT +10%%\",\"potential_option_3\":\"INT +10%%\","
        "\"additional_potential_option_grade\":null,"
        "\"item_add_option\":{\"str\":\"%s\",\"dex\":\"0\",\"int\":\"%s\",\"luk\":\"0\","
        "\"magic_power\":\"%s\",\"attack_power\":\"0\",\"all_stat\":\"0\",\"damage\":\"0\","
        "\"boss_damage\":\"0\"},"
        "\"starforce\":\"%s\",\"starforce_scroll_flag\":\"미사용\",\"special_ring_level\":0}]}",
        h->slot, h->name, h->base_magic, h->level, h->pot1, h->fl_str, h->fl_int, h->fl_magic,
        h->star);
    TU_ASSERT_CMP(n, >, 0);
    TU_ASSERT_CMP(n, <, 8192);
    return b;
}

/* Builds the document of h and checks it is one valid JSON object. */
static char *build(const struct hitem *h)
{
    char err[MX_EQUIP_ERR_MAX];
    char *json = doc_of(h);
    struct mx_equip *eq = malloc(sizeof *eq);
    assert_non_null(eq);
    int rc = mx_equip_parse(parser, json, strlen(json), eq, err, sizeof err);
    if (rc)
        fail_msg("parse: %s: %s", mx_strerror(rc), err);
    struct mx_calc *calc;
    assert_int_equal(mx_calc_new(table, 64, &calc), 0);
    struct mx_doc_opts o;
    mx_doc_opts_default(&o);
    struct mx_jsonw w;
    mx_jsonw_init(&w, MX_DOC_MAX_BYTES);
    assert_int_equal(mx_doc_build(calc, eq, &o, &w), 0);
    size_t len;
    char *doc = mx_jsonw_take(&w, &len);
    mx_jsonw_fini(&w);
    assert_non_null(doc);
    struct mx_jr_field f[] = {
        {.key = "totalExpectedCost", .kind = MX_JR_INT, .required = true},
        {.key = "unpricedItems", .kind = MX_JR_INT, .required = true},
    };
    if (mx_jsonr_object(doc, len, f, 2, err, sizeof err))
        fail_msg("not a valid document: %s: %.300s", err, doc);
    TU_ASSERT_CMP(f[0].i, >=, 0);
    mx_calc_free(calc);
    free(eq);
    free(json);
    return doc;
}

static void has(const char *doc, const char *needle)
{
    if (!strstr(doc, needle))
        fail_msg("document lacks %s: %s", needle, doc);
}

static const struct hitem base = {"모자", "에테르넬 메이지햇", "250", "22", "0", "50", "3",
                                  "0",    "INT +13%"};

static void flame_stat_300m(void **state)
{
    (void)state;
    struct hitem h = base;
    h.fl_int = "300000000";
    char *doc = build(&h);
    has(doc, "\"score\":3000000120,"); /* 64-bit: INT x10 + magic 3 x40, no overflow */
    has(doc, "flame score above the supported maximum");
    has(doc, "\"powerfulFlameTrials\":null");
    has(doc, "\"unpricedItems\":0"); /* the cubes are priced: a flame is not a cost */
    free(doc);
}

static void star_99_and_negative(void **state)
{
    (void)state;
    struct hitem h = base;
    h.star = "99";
    char *doc = build(&h);
    has(doc, "\"reason\":\"star 99 outside 0..30\"");
    has(doc, "\"costWithoutDestroyPrevention\":null");
    has(doc, "\"starforceCost\":0");
    free(doc);
    h.star = "-3";
    doc = build(&h);
    has(doc, "\"reason\":\"star -3 outside 0..30\"");
    free(doc);
}

static void level_9999_and_negative(void **state)
{
    (void)state;
    struct hitem h = base;
    h.level = "9999";
    char *doc = build(&h);
    has(doc, "\"reason\":\"item level 9999 outside 0..300\""); /* cube and starforce */
    has(doc, "\"reason\":\"item level outside 0..300\"");      /* flame */
    has(doc, "\"unpricedItems\":1");                           /* the cube is not priced */
    free(doc);
    h.level = "-5";
    doc = build(&h);
    has(doc, "\"reason\":\"item level -5 outside 0..300\"");
    free(doc);
}

static void weapon_attack_int_max(void **state)
{
    (void)state;
    struct hitem h = base;
    h.slot = "무기";
    h.name = "제네시스 스태프";
    h.level = "200";
    h.base_magic = "2147483647";
    char *doc = build(&h);
    has(doc, "weapon base attack outside 0..1000");
    free(doc);
}

static void flame_stats_at_int_limits(void **state)
{
    (void)state;
    struct hitem h = base;
    h.fl_int = "2147483647";
    h.fl_magic = "2147483647";
    h.fl_str = "-2147483647";
    char *doc = build(&h);
    has(doc, "flame score above the supported maximum");
    free(doc);
    h.fl_int = "-2147483647";
    h.fl_magic = "-2147483647";
    doc = build(&h);
    has(doc, "no flame score for this class");
    free(doc);
    /* and the score function itself, in 64 bits */
    struct mx_flame_stats f = {.int_ = INT_MAX,
                               .magic = INT_MAX,
                               .all_stat = INT_MAX,
                               .damage = INT_MAX,
                               .boss_damage = INT_MAX};
    struct mx_flame_weights w;
    mx_flame_weights_for_class("에반", &w);
    assert_true(mx_flame_score(&f, &w) ==
                (int64_t)INT_MAX * (MX_FLAME_W_MAIN + MX_FLAME_W_ALLSTAT + MX_FLAME_W_ATTACK +
                                    2 * MX_FLAME_W_DAMAGE));
}

static void unknown_line_unpriced(void **state)
{
    (void)state;
    struct hitem h = base;
    h.pot1 = "INT +999%";
    char *doc = build(&h);
    has(doc, "\"unpricedLine\":1");
    has(doc, "line 1 \\\"INT +999%\\\" not in the table");
    has(doc, "\"unpricedItems\":1");
    has(doc, "\"blackCubeCost\":0");
    free(doc);
}

/* Weapons with an attack of 1,000 at level 300 have the widest flame
 * distributions (~120 KB each here): many of them must not grow a calculator
 * context past its flame budget (set small, so that it is what evicts). */
static void flame_budget(void **state)
{
    (void)state;
    char err[MX_EQUIP_ERR_MAX];
    struct mx_calc *calc;
    struct mx_doc_opts o;
    struct mx_jsonw w;
    struct mx_calc_stats st;
    struct mx_equip *eq = malloc(sizeof *eq);
    assert_non_null(eq);
    assert_int_equal(mx_calc_new(table, 64, &calc), 0);
    mx_calc_set_flame_budget(calc, 512u << 10);
    mx_doc_opts_default(&o);
    mx_jsonw_init(&w, MX_DOC_MAX_BYTES);
    for (int i = 0; i < 12; i++) {
        char atk[16];
        snprintf(atk, sizeof atk, "%d", 1000 - i);
        struct hitem h = base;
        h.slot = "무기";
        h.name = "제네시스 스태프";
        h.level = "300";
        h.base_magic = atk;
        char *json = doc_of(&h);
        assert_int_equal(mx_equip_parse(parser, json, strlen(json), eq, err, sizeof err), 0);
        mx_jsonw_reset(&w);
        assert_int_equal(mx_doc_build(calc, eq, &o, &w), 0);
        mx_calc_get_stats(calc, &st);
        TU_ASSERT_CMP(st.flame_bytes, <=, (512u << 10));
        free(json);
    }
    assert_int_equal(st.flame.misses, 12);
    TU_ASSERT_CMP(st.flame.evictions, >, 0); /* the budget, not the 128 slots, evicted */
    TU_ASSERT_CMP(st.flame.entries, <, 12);
    TU_ASSERT_CMP(st.flame.entries, >, 0);
    assert_int_equal(st.flame.entries + st.flame.evictions, 12);
    mx_jsonw_fini(&w);
    mx_calc_free(calc);
    free(eq);
}

static void calculators_refuse_out_of_range(void **state)
{
    (void)state;
    struct mx_flame_weights w;
    mx_flame_weights_for_class("에반", &w);
    struct mx_flame_item it = {9999, false, false, 0};
    double p = -1;
    assert_int_equal(mx_flame_prob(&it, &w, MX_FLAME_POWERFUL, 100, &p), MX_EINVAL);
    struct mx_flame_item wp = {200, true, false, INT_MAX};
    assert_int_equal(mx_flame_prob(&wp, &w, MX_FLAME_POWERFUL, 100, &p), MX_EINVAL);
    struct mx_flame_dist *d = NULL;
    assert_int_equal(mx_flame_dist_new(&wp, &w, MX_FLAME_ABYSS, &d), MX_EINVAL);
    assert_null(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(flame_stat_300m),
        cmocka_unit_test(star_99_and_negative),
        cmocka_unit_test(level_9999_and_negative),
        cmocka_unit_test(weapon_attack_int_max),
        cmocka_unit_test(flame_stats_at_int_limits),
        cmocka_unit_test(unknown_line_unpriced),
        cmocka_unit_test(flame_budget),
        cmocka_unit_test(calculators_refuse_out_of_range),
    };
    return cmocka_run_group_tests(tests, tables_setup, tables_teardown);
}
