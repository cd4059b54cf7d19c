/* test_calc.c - starforce, cube, flame, memo and cost-text unit tests with
 * hand-computed values (the arithmetic is written out next to each).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "mx_testutil.h"

#include "mx_cube.h"
#include "mx_doc.h"
#include "mx_err.h"
#include "mx_flame.h"
#include "mx_memo.h"
#include "mx_numfmt.h"
#include "mx_starforce.h"

#define assert_close(a, b, rel)                                                                    \
    do {                                                                                           \
        double a_ = (a), b_ = (b);                                                                 \
        if (!(fabs(a_ - b_) <= (rel)*fmax(1.0, fabs(b_)))) {                                       \
            print_error("%s = %.12g, expected %.12g\n", #a, a_, b_);                               \
            fail();                                                                                \
        }                                                                                          \
    } while (0)

/* ---- starforce ---------------------------------------------------------------- */

static void sf_zero_to_one(void **state)
{
    (void)state;
    struct mx_sf_result r;
    /* level 200, star 0: 1000 + 200^3 * 1 / 36 = 223222.2 -> 223200 (rounded to
     * 100 meso); p = .95 -> 223200 / .95 */
    assert_int_equal(mx_sf_expect(200, 0, 1, false, NULL, &r), 0);
    assert_close(r.cost, 223200.0 / 0.95, 1e-12);
    assert_close(r.attempts, 1.0 / 0.95, 1e-12);
    assert_close(r.destroys, 0.0, 1e-12);
    assert_close(mx_sf_attempt_cost(200, 0, NULL), 223200.0, 0);
    /* discount: 223200 * .7 = 156240 -> 156200 */
    struct mx_sf_opts d = {.discount = true};
    assert_close(mx_sf_attempt_cost(200, 0, &d), 156200.0, 0);
}

static void sf_two_state_chain(void **state)
{
    (void)state;
    struct mx_sf_result r;
    /* Level 150, 15 -> 17, no options. Costs per attempt (rounded to 100):
     * c12 = 16052200, c13 = 26726100, c14 = 47243900, c15 = 30087200,
     * c16 = 35437900. No destruction below 15, so E12 = c12/.4, E13 = c13/.35,
     * E14 = c14/.3. At 15: E15 = (c15 + .021 (E12+E13+E14)) / .3 and at 16:
     * E16 = (c16 + .021 (E12+E13+E14+E15)) / .3. On paper:
     * E12+E13+E14 = 40130500 + 76360285.714 + 157479666.667 = 273970452.381
     * E15 = (30087200 + 5753379.5)/.3 = 119468598.333
     * E16 = (35437900 + .021 * 393439050.714)/.3 = 145667066.883
     * Destroys: D15 = .021/.3 = .07, D16 = (.021 + .021 * .07)/.3 = .0749. */
    assert_int_equal(mx_sf_expect(150, 15, 16, false, NULL, &r), 0);
    assert_close(r.cost, 119468598.33333334, 1e-9);
    assert_close(r.destroys, 0.07, 1e-12);
    assert_int_equal(mx_sf_expect(150, 15, 17, false, NULL, &r), 0);
    assert_close(r.cost, 265135665.21666667, 1e-9);
    assert_close(r.destroys, 0.1449, 1e-12);
    /* attempts: A15 = (1 + .021 (2.5 + 2.857142857 + 3.333333333)) / .3 */
    assert_int_equal(mx_sf_expect(150, 15, 16, false, NULL, &r), 0);
    assert_close(r.attempts, (1 + 0.021 * (2.5 + 1 / 0.35 + 1 / 0.3)) / 0.3, 1e-12);
}

static void sf_scroll_items(void **state)
{
    (void)state;
    struct mx_sf_result r;
    /* scroll items: no meso, no destruction; attempts 1/.6 + 1/.55 */
    assert_int_equal(mx_sf_expect(150, 0, 2, true, NULL, &r), 0);
    assert_close(r.cost, 0.0, 0);
    assert_close(r.destroys, 0.0, 0);
    assert_close(r.attempts, 1 / 0.6 + 1 / 0.55, 1e-12);
    assert_int_equal(mx_sf_expect(150, 0, 16, true, NULL, &r), MX_EINVAL);
}

static void sf_options(void **state)
{
    (void)state;
    double p, d;
    struct mx_sf_opts catch_ = {.star_catch = true};
    /* star catch at 22: p = .15 * 1.05 = .1575; d = .17 * (1-.1575)/(1-.15) */
    assert_int_equal(mx_sf_probs(22, false, &catch_, &p, &d), 0);
    assert_close(p, 0.1575, 1e-12);
    assert_close(d, 0.17 * 0.8425 / 0.85, 1e-12);
    /* Sunday: destroy x.7 below 22 only */
    struct mx_sf_opts sun = {.sunday = true};
    mx_sf_probs(21, false, &sun, &p, &d);
    assert_close(d, 0.1275 * 0.7, 1e-12);
    mx_sf_probs(22, false, &sun, &p, &d);
    assert_close(d, 0.17, 1e-12);
    /* shield: no destroy at 15..17, +2x base cost; not at 18 */
    struct mx_sf_opts sh = {.shield = true};
    mx_sf_probs(17, false, &sh, &p, &d);
    assert_close(d, 0.0, 0);
    mx_sf_probs(18, false, &sh, &p, &d);
    assert_close(d, 0.068, 1e-12);
    assert_close(mx_sf_attempt_cost(150, 15, &sh), 3 * 30087200.0, 0);
    struct mx_sf_opts shd = {.shield = true, .discount = true};
    /* surcharge is on the undiscounted base: 30087200*.7 -> 21061000 (rounded to
     * 100: 21061040 -> 21061000) + 2 * 30087200 */
    assert_close(mx_sf_attempt_cost(150, 15, &shd), 21061000.0 + 2 * 30087200.0, 0);
    /* max star by level */
    assert_int_equal(mx_sf_max_star(94, false), 5);
    assert_int_equal(mx_sf_max_star(107, false), 8);
    assert_int_equal(mx_sf_max_star(117, false), 10);
    assert_int_equal(mx_sf_max_star(127, false), 15);
    assert_int_equal(mx_sf_max_star(137, false), 20);
    assert_int_equal(mx_sf_max_star(138, false), 30);
    assert_int_equal(mx_sf_max_star(200, true), 15);
}

static void sf_invariants(void **state)
{
    (void)state;
    static const int levels[] = {0, 100, 130, 150, 160, 200, 250};
    for (size_t li = 0; li < sizeof levels / sizeof *levels; li++) {
        for (int opt = 0; opt < 16; opt++) {
            struct mx_sf_opts o = {opt & 1, opt & 2, opt & 4, opt & 8};
            struct mx_sf_opts oc = o;
            oc.star_catch = true;
            double prev = -1;
            for (int to = 0; to <= 30; to++) {
                struct mx_sf_result r, rc;
                assert_int_equal(mx_sf_expect(levels[li], 0, to, false, &o, &r), 0);
                assert_int_equal(mx_sf_expect(levels[li], 0, to, false, &oc, &rc), 0);
                TU_ASSERT_CMP(r.cost, >=, prev);                  /* more stars never cost less */
                TU_ASSERT_CMP(rc.cost, <=, r.cost * (1 + 1e-12)); /* catch never costs more */
                assert_true(isfinite(r.cost));
                TU_ASSERT_CMP(r.destroys, >=, 0);
                TU_ASSERT_CMP(r.attempts, >=, to);
                prev = r.cost;
            }
        }
    }
    struct mx_sf_result r;
    assert_int_equal(mx_sf_expect(200, 5, 4, false, NULL, &r), MX_EINVAL);
    assert_int_equal(mx_sf_expect(200, 0, 31, false, NULL, &r), MX_EINVAL);
    assert_int_equal(mx_sf_expect(-1, 0, 1, false, NULL, &r), MX_EINVAL);
}

/* ---- cube --------------------------------------------------------------------- */

/* A toy table: three options per line slot, one item slot, one band. Line 1:
 * STR +12% .2, DEX +12% .3, 최대 HP +12% .5. Lines 2 and 3: STR +12% .1,
 * STR +9% .4, DEX +9% .5. Plus a 장갑 group summing to .5 (flagged) and two
 * malformed rows (rejected). */
static const char toy_csv[] =
    "option,rate,slot,potential_option_grade,base_equipment_level,item_equipment_slot,cube_type\n"
    "STR +12%,0.2,1,레전드리,100,모자,BLACK\n"
    "DEX +12%,0.3,1,레전드리,100,모자,BLACK\n"
    "최대 HP +12%,0.5,1,레전드리,100,모자,BLACK\n"
    "STR +12%,0.1,2,레전드리,100,모자,BLACK\n"
    "STR +9%,0.4,2,레전드리,100,모자,BLACK\n"
    "DEX +9%,0.5,2,레전드리,100,모자,BLACK\n"
    "STR +12%,0.1,3,레전드리,100,모자,BLACK\n"
    "STR +9%,0.4,3,레전드리,100,모자,BLACK\n"
    "DEX +9%,0.5,3,레전드리,100,모자,BLACK\n"
    "STR +12%,0.5,1,레전드리,100,장갑,BLACK\n"
    "bad,row\n"
    "STR +12%,1.5,1,레전드리,100,장갑,BLACK\n";

static struct mx_cube_table *toy_table(struct mx_cube_load_stats *st)
{
    /* written to a temp file so the file loader is what is tested */
    char path[] = "/tmp/mx_expect_toyXXXXXX";
    int fd = mkstemp(path);
    TU_ASSERT_CMP(fd, >=, 0);
    assert_int_equal(write(fd, toy_csv, sizeof toy_csv - 1), (ssize_t)(sizeof toy_csv - 1));
    close(fd);
    struct mx_cube_table *t = NULL;
    assert_int_equal(mx_cube_table_load(path, &t, st), 0);
    unlink(path);
    return t;
}

static void cube_toy(void **state)
{
    (void)state;
    struct mx_cube_load_stats st;
    struct mx_cube_table *t = toy_table(&st);
    struct mx_cube_result r;
    assert_int_equal(st.rows_total, 12);
    assert_int_equal(st.rows_accepted, 10);
    assert_int_equal(st.rows_rejected, 2);
    assert_int_equal(st.first_rejected_line, 12);
    assert_int_equal(st.groups, 4);
    assert_int_equal(st.groups_bad_sum, 1);

    /* (b) orderings: HP only fits line 1 (.5); then STR9/DEX9 in lines 2,3 in
     * either order: .5*.4*.5 + .5*.5*.4 = .2 -> 5 trials, 5 * 40M */
    struct mx_cube_query q = {
        "BLACK", "모자", MX_GRADE_LEGENDARY, 120, {"최대 HP +12%", "STR +9%", "DEX +9%"}};
    assert_int_equal(mx_cube_expect(t, &q, &r), 0);
    assert_true(r.ok);
    assert_int_equal(r.engine, MX_CUBE_ENGINE_ORDERINGS);
    assert_int_equal(r.level_band, 100);
    assert_close(r.probability, 0.2, 1e-12);
    assert_close(r.expected_trials, 5.0, 1e-12);
    assert_close(r.expected_cost, 5 * 40e6, 1e-12);

    /* (a) stat sum: STR 12+9+9 = 30. Line 1 gives 12 w.p. .2 (else 0); lines
     * 2,3 give 12 (.1), 9 (.4), 0 (.5). Sum >= 30 needs 12 on line 1 and
     * >= 18 from lines 2+3: .1*.1 + 2*.1*.4 + .4*.4 = .25 -> .2*.25 = .05 */
    struct mx_cube_query qa = {
        "BLACK", "모자", MX_GRADE_LEGENDARY, 100, {"STR : +12%", "STR +9%", "STR  +9%"}};
    assert_int_equal(mx_cube_expect(t, &qa, &r), 0);
    assert_true(r.ok);
    assert_int_equal(r.engine, MX_CUBE_ENGINE_STAT_SUM);
    assert_string_equal(r.stat, "STR%");
    assert_int_equal(r.target, 30);
    assert_close(r.probability, 0.05, 1e-12);
    assert_close(r.expected_trials, 20.0, 1e-12);

    /* blank lines count as 1: (HP, -, -), (-, HP, -), (-, -, HP) = .5 */
    struct mx_cube_query qb = {
        "BLACK", "모자", MX_GRADE_LEGENDARY, 100, {"최대 HP +12%", "", NULL}};
    assert_int_equal(mx_cube_expect(t, &qb, &r), 0);
    assert_close(r.probability, 0.5, 1e-12);

    /* a line missing from the table: null with a reason, never 0/inf */
    struct mx_cube_query qm = {
        "BLACK", "모자", MX_GRADE_LEGENDARY, 100, {"INT +12%", "STR +9%", "DEX +9%"}};
    assert_int_equal(mx_cube_expect(t, &qm, &r), 0);
    assert_false(r.ok);
    assert_non_null(strstr(r.reason, "not in the table"));
    assert_close(r.expected_trials, 0, 0);

    /* p = 0: both +12% lines need line 1 */
    struct mx_cube_query qz = {
        "BLACK", "모자", MX_GRADE_LEGENDARY, 100, {"DEX +12%", "최대 HP +12%", ""}};
    assert_int_equal(mx_cube_expect(t, &qz, &r), 0);
    assert_false(r.ok);
    assert_non_null(strstr(r.reason, "probability is 0"));

    /* below every band: the lowest band is used; no rows for a grade: reason */
    q.level = 50;
    assert_int_equal(mx_cube_expect(t, &q, &r), 0);
    assert_int_equal(r.level_band, 100);
    q.grade = MX_GRADE_EPIC;
    assert_int_equal(mx_cube_expect(t, &q, &r), 0);
    assert_false(r.ok);
    TU_ASSERT_CMP(r.reason[0], !=, '\0');
    assert_true(mx_cube_table_has_type(t, "BLACK"));
    assert_false(mx_cube_table_has_type(t, "ADDITIONAL"));
    mx_cube_table_free(t);
}

static void cube_prices(void **state)
{
    (void)state;
    assert_close(mx_cube_price(MX_GRADE_LEGENDARY, 0), 40e6, 0);
    assert_close(mx_cube_price(MX_GRADE_LEGENDARY, 160), 42.5e6, 0);
    assert_close(mx_cube_price(MX_GRADE_LEGENDARY, 200), 45e6, 0);
    assert_close(mx_cube_price(MX_GRADE_LEGENDARY, 250), 50e6, 0);
    assert_close(mx_cube_price(MX_GRADE_UNIQUE, 250), 34e6 * 1.25, 1e-15);
    assert_close(mx_cube_price(MX_GRADE_EPIC, 200), 16e6 * 1.125, 1e-15);
    assert_close(mx_cube_price(MX_GRADE_RARE, 160), 4e6 * 1.0625, 1e-15);
    assert_close(mx_cube_price(MX_GRADE_NONE, 160), 0, 0);
}

static void cube_additional_table(void **state)
{
    (void)state;
    const char *dir = getenv("MX_SHARED_DIR");
    char path[1024];
    struct mx_cube_table *t = NULL;
    struct mx_cube_load_stats st;
    struct mx_cube_result r;
    assert_non_null(dir);
    /* reset prices (PROVENANCE section 4) */
    assert_close(mx_cube_type_price("ADDITIONAL", MX_GRADE_LEGENDARY, 150), 78e6, 0);
    assert_close(mx_cube_type_price("ADDITIONAL", MX_GRADE_LEGENDARY, 160), 83e6, 0);
    assert_close(mx_cube_type_price("ADDITIONAL", MX_GRADE_UNIQUE, 200), 74.8e6, 0);
    assert_close(mx_cube_type_price("ADDITIONAL", MX_GRADE_RARE, 160), 10.375e6, 0);
    assert_close(mx_cube_type_price("ADDITIONAL", MX_GRADE_EPIC, 250), 34.3e6, 0);
    assert_close(mx_cube_type_price("BLACK", MX_GRADE_UNIQUE, 160), 36.125e6, 0);
    assert_close(mx_cube_type_price("RED", MX_GRADE_UNIQUE, 160), 0, 0);
    snprintf(path, sizeof path, "%s/data/cube_probability_black.csv", dir);
    assert_int_equal(mx_cube_table_load(path, &t, &st), 0);
    assert_false(mx_cube_table_has_type(t, "ADDITIONAL"));
    /* a damaged second file adds nothing and says so */
    const char junk[] = "option,rate\nx,2,9,레어,100,무기,ADDITIONAL\n";
    assert_int_equal(mx_cube_table_add_mem(t, junk, sizeof junk - 1, &st), MX_EDECODE);
    assert_int_equal(st.rows_rejected, 1);
    assert_false(mx_cube_table_has_type(t, "ADDITIONAL"));
    assert_int_equal(mx_cube_table_add(t, "/nonexistent/a.csv", &st), MX_EIO);
    snprintf(path, sizeof path, "%s/data/cube_probability_additional.csv", dir);
    assert_int_equal(mx_cube_table_add(t, path, &st), 0);
    assert_int_equal(st.rows_total, 71665); /* PROVENANCE: 71,665 rows */
    assert_int_equal(st.rows_rejected, 0);
    assert_true(mx_cube_table_has_type(t, "ADDITIONAL") && mx_cube_table_has_type(t, "BLACK"));
    /* PROVENANCE section 5: a 250 legendary hat never rolls INT +7% on line 1
     * and rolls it at 4.06133 % on lines 2 and 3, so one INT +7% line and two
     * blanks: 0 + 0.0406133 + 0.0406133 */
    struct mx_cube_query q = {"ADDITIONAL", "모자", MX_GRADE_LEGENDARY, 250, {"INT +7%", "", ""}};
    assert_int_equal(mx_cube_expect(t, &q, &r), 0);
    assert_true(r.ok);
    assert_int_equal(r.engine, MX_CUBE_ENGINE_ORDERINGS);
    assert_close(r.probability, 2 * 0.0406133, 1e-9);
    assert_close(r.cube_price, 98e6, 0);
    assert_close(r.expected_cost, 98e6 / (2 * 0.0406133), 1e-9);
    /* a line the table does not know: unpriced, and which line */
    q.lines[1] = "INT +77%";
    assert_int_equal(mx_cube_expect(t, &q, &r), 0);
    assert_false(r.ok);
    assert_int_equal(r.unknown_line, 2);
    mx_cube_table_free(t);
}

static void numfmt_matches_printf(void **state)
{
    (void)state;
    char a[MX_NUMFMT_MAX], b[64];
    static const double fixed[] = {0.0,
                                   1.0,
                                   0.1,
                                   1e-7,
                                   1.5e-300,
                                   123456789012345678.0,
                                   1e21,
                                   1602.1234567891011,
                                   2.5,
                                   0.000123456789012345,
                                   9.999999999999999e14,
                                   -3.25,
                                   4.0828920709e-4};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
        size_t n = mx_fmt_g15(fixed[i], a);
        snprintf(b, sizeof b, "%.15g", fixed[i]);
        assert_string_equal(a, b);
        assert_int_equal(n, strlen(b));
    }
    double v = 1e-12;
    for (int i = 0; i < 200000; i++, v *= 1.000271) { /* 1e-12 .. 1e11, odd steps */
        mx_fmt_g15(v, a);
        snprintf(b, sizeof b, "%.15g", v);
        if (strcmp(a, b))
            fail_msg("%s != %s", a, b);
    }
}

static void cube_hostile_table(void **state)
{
    (void)state;
    struct mx_cube_table *t = NULL;
    struct mx_cube_load_stats st;
    assert_int_equal(mx_cube_table_load("/nonexistent/x.csv", &t, &st), MX_EIO);
    assert_null(t);
    assert_int_equal(mx_cube_table_load_mem("", 0, &t, &st), MX_EDECODE);
    const char junk[] = "a,b,c\n\"unterminated,1,1\n,,,,,,\nx,nan,1,레어,100,무기,BLACK\n";
    assert_int_equal(mx_cube_table_load_mem(junk, sizeof junk - 1, &t, &st), MX_EDECODE);
    assert_int_equal(st.rows_rejected, 4);
    char *big = malloc(5000);
    memset(big, 'x', 4999);
    big[4999] = '\n';
    assert_int_equal(mx_cube_table_load_mem(big, 5000, &t, &st), MX_ETOOBIG);
    free(big);
}

static void cube_shared_table(void **state)
{
    (void)state;
    const char *dir = getenv("MX_SHARED_DIR");
    char path[1024];
    struct mx_cube_table *t = NULL;
    struct mx_cube_load_stats st;
    struct mx_cube_result r;
    assert_non_null(dir);
    snprintf(path, sizeof path, "%s/data/cube_probability_black.csv", dir);
    assert_int_equal(mx_cube_table_load(path, &t, &st), 0);
    /* counted at authoring time with python's csv module: 34488 rows, 2000
     * groups, 254 whose rates (all rows of the group summed) are off 1 by more
     * than .01, 73 rows repeating
     * an option already in their group (e.g. 엠블렘 에픽 line 2 lists
     * "몬스터 방어율 무시 +15%" twice: lines 137 and 151) */
    assert_int_equal(st.rows_total, 34488);
    assert_int_equal(st.rows_rejected, 0);
    assert_int_equal(st.rows_merged, 73);
    assert_int_equal(st.groups, 2000);
    assert_int_equal(st.groups_bad_sum, 254);
    /* evan's hat: INT 13/10 + 올스탯 7 -> STAT_SUM on INT%, target 30 */
    struct mx_cube_query q = {
        "BLACK", "상의", MX_GRADE_LEGENDARY, 250, {"INT +13%", "INT +10%", "올스탯 +7%"}};
    assert_int_equal(mx_cube_expect(t, &q, &r), 0);
    assert_true(r.ok);
    assert_int_equal(r.engine, MX_CUBE_ENGINE_STAT_SUM);
    assert_int_equal(r.target, 30);
    TU_ASSERT_CMP(r.probability, >, 0);
    TU_ASSERT_CMP(r.probability, <, 1);
    mx_cube_table_free(t);
}

/* ---- flame / memo / text ------------------------------------------------------ */

static void flame_basics(void **state)
{
    (void)state;
    struct mx_flame_weights w;
    assert_true(mx_flame_weights_for_class("에반", &w));
    assert_int_equal(w.main, MX_STAT_INT);
    assert_int_equal(w.secondary, MX_STAT_LUK);
    assert_true(w.magic);
    /* evan's hat flame: int 130, luk 42, dex 28, all stat 5:
     * 130*10 + 42*1 + 5*100 = 1842 */
    struct mx_flame_stats f = {.dex = 28, .int_ = 130, .luk = 42, .all_stat = 5};
    assert_int_equal(mx_flame_score(&f, &w), 1842);

    /* One-kind check by hand: a level-0 non-boss armour with target = one
     * all-stat stage-4 line (400). Only ALLSTAT (1 of 19 kinds) can reach it in
     * one line, at stage 4 (powerful: .14). Two lines: ALLSTAT >=4 alone, or
     * ALLSTAT stage s plus INT (stage t, 1 point per stage at level 0 ->
     * 10*t)... keep it simple: k=1 term = .40 * (1/19) * .14 is a lower bound
     * and the probability must not exceed P(ALLSTAT among the k kinds). */
    struct mx_flame_item it = {0, false, false, 0};
    double p;
    assert_int_equal(mx_flame_prob(&it, &w, MX_FLAME_POWERFUL, 400, &p), 0);
    double upper = 0.40 * (1.0 / 19) + 0.40 * (2.0 / 19) + 0.16 * (3.0 / 19) + 0.04 * (4.0 / 19);
    TU_ASSERT_CMP(p, >=, 0.40 * (1.0 / 19) * 0.14 - 1e-15);
    TU_ASSERT_CMP(p, <=, upper + 1e-15);
    /* eternal reaches further than powerful; abyss further than eternal */
    double pe, pa;
    mx_flame_prob(&it, &w, MX_FLAME_ETERNAL, 400, &pe);
    mx_flame_prob(&it, &w, MX_FLAME_ABYSS, 400, &pa);
    TU_ASSERT_CMP(pe, >, p);
    TU_ASSERT_CMP(pa, >, pe);
    /* target 0 is certain; absurd targets are refused */
    assert_int_equal(mx_flame_prob(&it, &w, MX_FLAME_POWERFUL, 0, &p), 0);
    assert_close(p, 1.0, 0);
    assert_int_equal(mx_flame_prob(&it, &w, MX_FLAME_POWERFUL, 1 << 30, &p), MX_ETOOBIG);
    /* boss items: 4 lines always and stages +2 -> more likely */
    struct mx_flame_item boss = {200, false, true, 0};
    struct mx_flame_item norm = {200, false, false, 0};
    double pb, pn;
    mx_flame_prob(&boss, &w, MX_FLAME_POWERFUL, 1000, &pb);
    mx_flame_prob(&norm, &w, MX_FLAME_POWERFUL, 1000, &pn);
    TU_ASSERT_CMP(pb, >, pn);
    assert_true(mx_flame_is_boss_item("에테르넬 메이지햇"));
    assert_false(mx_flame_is_boss_item("트와일라이트 마크"));
}

static void memo_bounded(void **state)
{
    (void)state;
    struct mx_memo *m;
    struct mx_memo_stats st;
    int v;
    assert_int_equal(mx_memo_new(8, sizeof(int), &m), 0);
    for (int i = 0; i < 100; i++)
        mx_memo_put(m, &i, sizeof i, &i);
    mx_memo_get_stats(m, &st);
    assert_int_equal(st.capacity, 8);
    TU_ASSERT_CMP(st.entries, <=, 8);
    assert_int_equal(st.inserts, 100);
    assert_int_equal(st.evictions, 100 - st.entries);
    int k = 99;
    assert_true(mx_memo_get(m, &k, sizeof k, &v)); /* most recent survives */
    assert_int_equal(v, 99);
    char big[MX_MEMO_KEY_MAX + 1] = {0};
    mx_memo_put(m, big, sizeof big, &v);
    mx_memo_get_stats(m, &st);
    assert_int_equal(st.refused, 1);
    /* clearing forgets everything at once; the memo works on afterwards */
    mx_memo_clear(m);
    assert_false(mx_memo_get(m, &k, sizeof k, &v));
    mx_memo_get_stats(m, &st);
    assert_int_equal(st.entries, 0);
    mx_memo_put(m, &k, sizeof k, &k);
    assert_true(mx_memo_get(m, &k, sizeof k, &v));
    assert_int_equal(v, 99);
    mx_memo_free(m);
}

static void cost_text(void **state)
{
    (void)state;
    char b[64];
    mx_doc_cost_text(0, b, sizeof b);
    assert_string_equal(b, "0");
    mx_doc_cost_text(4999, b, sizeof b);
    assert_string_equal(b, "0");
    mx_doc_cost_text(5000, b, sizeof b);
    assert_string_equal(b, "1만");
    mx_doc_cost_text(100000000, b, sizeof b);
    assert_string_equal(b, "1억");
    mx_doc_cost_text(1234567890123LL, b, sizeof b);
    assert_string_equal(b, "1조 2345억 6789만");
    mx_doc_cost_text(1000000050000LL, b, sizeof b);
    assert_string_equal(b, "1조 5만");
    mx_doc_cost_text(99999995000LL, b, sizeof b); /* rounds up into 조 */
    assert_string_equal(b, "1000억");
    assert_int_equal(mx_doc_cost_text(1234567890123LL, b, 4), MX_ETOOBIG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sf_zero_to_one),        cmocka_unit_test(sf_two_state_chain),
        cmocka_unit_test(sf_scroll_items),       cmocka_unit_test(sf_options),
        cmocka_unit_test(sf_invariants),         cmocka_unit_test(cube_toy),
        cmocka_unit_test(cube_prices),           cmocka_unit_test(cube_hostile_table),
        cmocka_unit_test(cube_shared_table),     cmocka_unit_test(flame_basics),
        cmocka_unit_test(memo_bounded),          cmocka_unit_test(cost_text),
        cmocka_unit_test(cube_additional_table), cmocka_unit_test(numfmt_matches_printf),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
