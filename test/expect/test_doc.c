/* test_doc.c - the expectation documents of both fixtures against golden
 * files, plus document-level invariants (totals, preset filter, warm memo).
 *
 * Golden files: test/expect/golden/{evan,mechanic}.json, written once by
 * running this test with MX_UPDATE_GOLDEN=1 (it writes into
 * $MX_SOURCE_DIR/test/expect/golden) and then REVIEWED BY HAND. Review notes
 * (each recomputed independently in python from the CSV / formulas at
 * authoring time, not with this code):
 *  - evan preset 1, 에테르넬 메이지햇 (level 250, 22 stars, catch+discount+
 *    Sunday): starforce 31,580,864,450 (python: 31,580,864,449.99); with
 *    shield 47,311,233,439. Star 0 by hand: c0 = 1000 + 250^3/36 =
 *    435,027.8 -> 435,000, x.7 -> 304,500; p = .95*1.05 = .9975 ->
 *    E0 = 305,263.16.
 *  - same hat, black cube: "스킬 재사용 대기시간 -2초" x2 + a junk line ->
 *    STAT_SUM on cooldown seconds, target 4, p = 6.2418116283e-4 (python,
 *    same convolution with each line's non-contributing mass = 1 - the
 *    contributing rates), 1602.1 trials x 50M = 80,104,948,655.
 *  - 반지3 결속의 반지 (120): ORDERINGS over (드롭 20%, MP 9%, INT 9%),
 *    p = .0021923055 (python: sum over distinct permutations, identical).
 *  - 얼굴장식 (100): ORDERINGS p = 4.0828920709e-4 (python identical).
 *  - 그리드 펜던트 (level 75 -> lowest band 100): p = 0 -> null + reason.
 *  - 아케인셰이드 메이지글러브: the table has no 장갑/레전드리/200 rows for
 *    line 2 -> null + reason, cost 0.
 *  - additional potential (table cube_probability_additional.csv, reset
 *    prices of its PROVENANCE file): 에테르넬 메이지햇 (모자 250 레전드리)
 *    "스킬 재사용 대기시간 -1초, INT +7%, INT +7%" -> STAT_SUM on INT%,
 *    target 14: p = 0.00952145758715503 (python, same convolution over the
 *    CSV rows, "INT +n%" and "올스탯 +n%" contributing), 98M per reset ->
 *    10,292,541,778 meso, identical.
 *  - unpriced: 슈페리얼 리튬 하트 additional line 2 "최대 MP +5%" is not in
 *    the table -> expectedCost 0, "unpriced":true, "unpricedLine":2, and the
 *    preset's unpricedItems counts it (with 아케인셰이드 메이지글러브 and
 *    그리드 펜던트 above, whose black cube cannot be priced either).
 *  - the other unpriced potentials, each checked against the CSVs: items
 *    below level 100 use the 100 band, whose values differ from the item's
 *    own (하프 이어링 75 "INT +8", 마이스터 올마이티링 75 "올스탯 +3%" and no
 *    legendary 반지1 line-2 rows at 100); 블루 엘리멘탈 글로브 (110) "공격 시
 *    7% 확률로 오토스틸" is in no group; 마이스터 이어링 additional "방어력 +7%"
 *    is not an additional option of 귀고리 140. evan: 2 unpriced items in the
 *    max preset, mechanic: 0.
 *  - invariants checked over every item of both files by a script at
 *    authoring time: item cost = sum of its breakdown; each cube's cost =
 *    round(trials x price) with the price of its type, grade and level tier;
 *    trials x probability = 1; texts = the cost-text rule; currentGrade =
 *    targetGrade = the grade's enum name; potential = the lines joined;
 *    unpriced = a grade but no price; isNoljang = noljang = scrollItem;
 *    enhancePath = the priced steps; preset totals, unpricedItems and the
 *    document's max preset.
 *  - every value present before additional potential was added (black cube,
 *    starforce, flame) was compared with the previous golden files by a
 *    script: identical to 1e-9 relative (the flame distribution is now
 *    built uncapped once per structure, the same sums in another order).
 *  - 훈장/뱃지/포켓 (no grade): black cube null "no potential", cost 0.
 *  - preset totals = sum of item costs; document total = preset 2 (largest)
 *    for evan: 8,376,639,895,747 -> "8조 3766억 3990만" (2,434,183,909,677
 *    before additional potential was priced).
 */
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

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        fclose(f);
        return NULL;
    }
    b[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return b;
}

static char *build(const char *fixture, const char *ign, int preset, struct mx_calc *calc,
                   size_t *outlen)
{
    char path[1024], err[MX_EQUIP_ERR_MAX];
    size_t len;
    snprintf(path, sizeof path, "%s/fixtures/nexon/%s", getenv("MX_SHARED_DIR"), fixture);
    char *json = slurp(path, &len);
    assert_non_null(json);
    struct mx_equip *eq = malloc(sizeof *eq);
    assert_int_equal(mx_equip_parse(parser, json, len, eq, err, sizeof err), 0);
    struct mx_doc_opts o;
    mx_doc_opts_default(&o);
    o.user_ign = ign;
    o.calculated_at = "2025-03-01T00:00:00";
    o.preset = preset;
    struct mx_jsonw w;
    mx_jsonw_init(&w, MX_DOC_MAX_BYTES);
    assert_int_equal(mx_doc_build(calc, eq, &o, &w), 0);
    char *doc = mx_jsonw_take(&w, outlen);
    mx_jsonw_fini(&w);
    free(eq);
    free(json);
    return doc;
}

static void golden(const char *fixture, const char *ign, const char *gname)
{
    struct mx_calc *calc;
    size_t len, glen;
    char gpath[1024];
    assert_int_equal(mx_calc_new(table, 4096, &calc), 0);
    char *doc = build(fixture, ign, 0, calc, &len);
    snprintf(gpath, sizeof gpath, "%s/test/expect/golden/%s", getenv("MX_SOURCE_DIR"), gname);
    if (getenv("MX_UPDATE_GOLDEN")) {
        FILE *f = fopen(gpath, "wb");
        assert_non_null(f);
        fwrite(doc, 1, len, f);
        fputc('\n', f);
        fclose(f);
    }
    char *want = slurp(gpath, &glen);
    assert_non_null(want);
    if (glen && want[glen - 1] == '\n')
        want[--glen] = '\0';
    if (glen != len || memcmp(want, doc, len)) {
        size_t i = 0;
        while (i < len && i < glen && want[i] == doc[i])
            i++;
        size_t from = i > 60 ? i - 60 : 0;
        print_error("document differs from %s at byte %zu:\n got: %.120s\nwant: %.120s\n", gpath, i,
                    doc + from, want + from);
        fail();
    }
    /* warm: the same document again from memoised results, byte-identical */
    struct mx_calc_stats st;
    char *doc2 = build(fixture, ign, 0, calc, &len);
    assert_string_equal(doc, doc2);
    mx_calc_get_stats(calc, &st);
    TU_ASSERT_CMP(st.cube.hits, >, 0);
    TU_ASSERT_CMP(st.flame.hits, >, 0);
    /* no memo: identical bytes too */
    struct mx_calc *cold;
    assert_int_equal(mx_calc_new(table, 0, &cold), 0);
    char *doc3 = build(fixture, ign, 0, cold, &len);
    assert_string_equal(doc, doc3);
    mx_calc_free(cold);
    free(doc);
    free(doc2);
    free(doc3);
    free(want);
    mx_calc_free(calc);
}

static void golden_evan(void **state)
{
    (void)state;
    golden("evan_equip.json", "evan", "evan.json");
}

static void golden_mechanic(void **state)
{
    (void)state;
    golden("mechanic_equip.json", "mechanic", "mechanic.json");
}

static int64_t field_int(const char *doc, const char *key)
{
    char k[64];
    snprintf(k, sizeof k, "\"%s\":", key);
    const char *p = strstr(doc, k);
    assert_non_null(p);
    return strtoll(p + strlen(k), NULL, 10);
}

static void preset_filter(void **state)
{
    (void)state;
    struct mx_calc *calc;
    size_t len;
    assert_int_equal(mx_calc_new(table, 64, &calc), 0); /* small memo: evictions */
    char *all = build("evan_equip.json", "evan", 0, calc, &len);
    int64_t total = field_int(all, "totalExpectedCost");
    int64_t max = 0;
    int maxno = 0;
    for (int p = 1; p <= 3; p++) {
        char *one = build("evan_equip.json", "evan", p, calc, &len);
        assert_int_equal(field_int(one, "maxPresetNo"), p);
        assert_int_equal(field_int(one, "presetNo"), p);
        int64_t t = field_int(one, "totalExpectedCost");
        if (t > max) {
            max = t;
            maxno = p;
        }
        free(one);
    }
    assert_int_equal(total, max);
    assert_int_equal(field_int(all, "maxPresetNo"), maxno);
    struct mx_calc_stats st;
    mx_calc_get_stats(calc, &st);
    TU_ASSERT_CMP(st.cube.evictions, >, 0);
    TU_ASSERT_CMP(st.cube.entries, <=, 64);
    free(all);

    /* absent preset: MX_ENOTFOUND; bad preset: MX_EINVAL */
    struct mx_equip *eq = calloc(1, sizeof *eq);
    struct mx_doc_opts o;
    struct mx_jsonw w;
    mx_doc_opts_default(&o);
    mx_jsonw_init(&w, 1 << 20);
    o.preset = 2;
    assert_int_equal(mx_doc_build(calc, eq, &o, &w), MX_ENOTFOUND);
    o.preset = 4;
    assert_int_equal(mx_doc_build(calc, eq, &o, &w), MX_EINVAL);
    /* empty equipment: a valid document with no presets and total 0 */
    o.preset = 0;
    mx_jsonw_reset(&w);
    assert_int_equal(mx_doc_build(calc, eq, &o, &w), 0);
    assert_string_equal(w.buf, "{\"userIgn\":\"\",\"calculatedAt\":null,\"fromCache\":false,"
                               "\"totalExpectedCost\":0,\"totalCostText\":\"0\","
                               "\"totalCostBreakdown\":{\"blackCubeCost\":0,\"redCubeCost\":0,"
                               "\"additionalCubeCost\":0,\"starforceCost\":0},"
                               "\"unpricedItems\":0,\"maxPresetNo\":null,\"presets\":[]}");
    /* a writer too small: the writer's error comes back */
    struct mx_jsonw tiny;
    mx_jsonw_init(&tiny, 16);
    assert_int_equal(mx_doc_build(calc, eq, &o, &tiny), MX_ETOOBIG);
    mx_jsonw_fini(&tiny);
    mx_jsonw_fini(&w);
    free(eq);
    mx_calc_free(calc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(golden_evan),
        cmocka_unit_test(golden_mechanic),
        cmocka_unit_test(preset_filter),
    };
    return cmocka_run_group_tests(tests, tables_setup, tables_teardown);
}
