/* test_parse.c - item-equipment parsing: both real fixtures, and hostile
 * input (not JSON, wrong shapes, numbers as strings, nulls, huge and empty
 * strings) which must give a clear error and never crash.
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

#include "mx_equip.h"
#include "mx_err.h"

static struct mx_equip_parser *parser;
static struct mx_equip *eq;
static char err[MX_EQUIP_ERR_MAX];

static int setup(void **state)
{
    (void)state;
    eq = malloc(sizeof *eq);
    return (eq && mx_equip_parser_new(&parser) == 0) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    mx_equip_parser_free(parser);
    free(eq);
    return 0;
}

static int parse_str(const char *s)
{
    return mx_equip_parse(parser, s, strlen(s), eq, err, sizeof err);
}

static char *slurp(const char *name, size_t *len)
{
    const char *dir = getenv("MX_SHARED_DIR");
    char path[1024];
    assert_non_null(dir);
    snprintf(path, sizeof path, "%s/fixtures/nexon/%s", dir, name);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
    b[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return b;
}

/* Independent count: the number of "item_equipment_part" keys between the
 * list's key and the next preset key (or "title", which follows the presets
 * in Nexon's responses). Items hold no nested lists, so this counts items. */
static int scan_count(const char *json, const char *key)
{
    char k[64];
    snprintf(k, sizeof k, "\"%s\"", key);
    const char *start = strstr(json, k);
    if (!start)
        return -1;
    start += strlen(k);
    const char *end = strstr(start, "\"item_equipment_preset_");
    const char *title = strstr(start, "\"title\"");
    if (!end || (title && title < end))
        end = title;
    int n = 0;
    for (const char *p = start; (p = strstr(p, "\"item_equipment_part\"")) && (!end || p < end);
         p++)
        n++;
    return n;
}

static void check_fixture(const char *name, const int expect[4], const char *cls)
{
    static const char *keys[4] = {"item_equipment", "item_equipment_preset_1",
                                  "item_equipment_preset_2", "item_equipment_preset_3"};
    size_t len;
    char *json = slurp(name, &len);
    assert_int_equal(mx_equip_parse(parser, json, len, eq, err, sizeof err), 0);
    assert_string_equal(eq->character_class, cls);
    for (int l = 0; l < 4; l++) {
        assert_true(eq->lists[l].present);
        assert_int_equal(eq->lists[l].n, expect[l]);
        assert_int_equal(eq->lists[l].n, scan_count(json, keys[l]));
    }
    /* parse twice with the same parser: same result */
    assert_int_equal(mx_equip_parse(parser, json, len, eq, err, sizeof err), 0);
    assert_int_equal(eq->lists[1].n, expect[1]);
    free(json);
}

static void fixtures(void **state)
{
    (void)state;
    /* Counted at authoring time with python3 json.load():
     * len(d[k]) for k in item_equipment, item_equipment_preset_1..3 ->
     * evan 24/23/24/23, mechanic 24/24/24/24; and again at run time by
     * scan_count() above, which does not use simdjson. */
    static const int evan[4] = {24, 23, 24, 23};
    static const int mech[4] = {24, 24, 24, 24};
    check_fixture("evan_equip.json", evan, "에반");
    /* spot-check fields of evan's preset 1, item 0 (the hat) */
    size_t len;
    char *json = slurp("evan_equip.json", &len);
    assert_int_equal(mx_equip_parse(parser, json, len, eq, err, sizeof err), 0);
    const struct mx_equip_item *it = &eq->lists[1].items[0];
    assert_string_equal(it->slot, "모자");
    assert_string_equal(it->name, "에테르넬 메이지햇");
    assert_int_equal(it->level, 250);
    assert_int_equal(it->starforce, 22);
    assert_false(it->scroll);
    assert_int_equal(it->pot_grade, MX_GRADE_LEGENDARY);
    assert_string_equal(it->pot[0], "스킬 재사용 대기시간 -2초");
    assert_string_equal(it->add[1], "INT +7%");
    assert_true(it->has_flame);
    assert_int_equal(it->flame.int_, 130);
    assert_int_equal(it->flame.all_stat, 5);
    assert_int_equal(it->base_magic, 10);
    /* medal: null grades and lines */
    int medal = -1;
    for (int i = 0; i < eq->lists[1].n; i++)
        if (!strcmp(eq->lists[1].items[i].slot, "훈장"))
            medal = i;
    TU_ASSERT_CMP(medal, >=, 0);
    assert_int_equal(eq->lists[1].items[medal].pot_grade, MX_GRADE_NONE);
    assert_string_equal(eq->lists[1].items[medal].pot[0], "");
    free(json);
    check_fixture("mechanic_equip.json", mech, "메카닉");
}

static void not_json(void **state)
{
    (void)state;
    assert_int_equal(parse_str("this is not json"), MX_EDECODE);
    assert_non_null(strstr(err, "not JSON"));
    assert_int_equal(parse_str(""), MX_EDECODE);
    assert_int_equal(parse_str("{\"item_equipment\": [ {"), MX_EDECODE);
    assert_int_equal(mx_equip_parse(parser, NULL, 0, eq, err, sizeof err), MX_EDECODE);
    assert_int_equal(mx_equip_parse(NULL, "{}", 2, eq, err, sizeof err), MX_EINVAL);
    /* deep nesting is refused by simdjson's depth limit, not a stack overflow */
    size_t n = 100000;
    char *deep = malloc(2 * n + 1);
    memset(deep, '[', n);
    memset(deep + n, ']', n);
    deep[2 * n] = '\0';
    assert_int_equal(parse_str(deep), MX_EDECODE);
    free(deep);
    /* a NUL in the middle is not JSON either */
    assert_int_equal(mx_equip_parse(parser, "{}\0{}", 5, eq, err, sizeof err), MX_EDECODE);
}

static void wrong_shapes(void **state)
{
    (void)state;
    assert_int_equal(parse_str("[]"), MX_EDECODE);
    assert_string_equal(err, "$: expected object");
    assert_int_equal(parse_str("42"), MX_EDECODE);
    assert_int_equal(parse_str("{\"item_equipment_preset_1\": {}}"), MX_EDECODE);
    assert_string_equal(err, "item_equipment_preset_1: expected array of items");
    assert_int_equal(parse_str("{\"item_equipment_preset_1\": [1]}"), MX_EDECODE);
    assert_string_equal(err, "item_equipment_preset_1[0]: expected object");
    assert_int_equal(parse_str("{\"item_equipment_preset_2\": [{},{},{},{\"starforce\": true}]}"),
                     MX_EDECODE);
    assert_string_equal(err, "item_equipment_preset_2[3].starforce: expected string or number");
    assert_int_equal(parse_str("{\"item_equipment\": [{\"starforce\": \"abc\"}]}"), MX_EDECODE);
    assert_string_equal(err, "item_equipment[0].starforce: expected an integer in the string");
    assert_int_equal(parse_str("{\"item_equipment\": [{\"item_name\": 5}]}"), MX_EDECODE);
    assert_string_equal(err, "item_equipment[0].item_name: expected string");
    assert_int_equal(parse_str("{\"item_equipment\": [{\"item_base_option\": \"x\"}]}"),
                     MX_EDECODE);
    assert_string_equal(err, "item_equipment[0].item_base_option: expected object");
    assert_int_equal(
        parse_str("{\"item_equipment\": [{\"item_base_option\": {\"base_equipment_level\": []}}]}"),
        MX_EDECODE);
    assert_string_equal(err, "item_equipment[0].item_base_option.base_equipment_level: "
                             "expected string or number");
    assert_int_equal(parse_str("{\"item_equipment\": [{\"item_add_option\": {\"int\": 1.5}}]}"),
                     MX_EDECODE);
    assert_string_equal(err, "item_equipment[0].item_add_option.int: expected an integer");
    /* a star of 99 is kept (the calculators give the item a reason:
     * test_hostile.c); a number that is not an int is not */
    assert_int_equal(parse_str("{\"item_equipment\": [{\"starforce\": 99}]}"), 0);
    assert_int_equal(eq->lists[0].items[0].starforce, 99);
    assert_int_equal(parse_str("{\"item_equipment\": [{\"starforce\": 1e300}]}"), MX_EDECODE);
    assert_int_equal(parse_str("{\"item_equipment\": [{\"starforce\": 18446744073709551615}]}"),
                     MX_EDECODE);
    /* on error the output is zeroed */
    assert_false(eq->lists[0].present);
}

static void lenient_values(void **state)
{
    (void)state;
    /* numbers as strings or numbers, nulls, missing fields, empty strings,
     * unknown grades: all accepted */
    assert_int_equal(
        parse_str("{\"item_equipment_preset_1\": ["
                  "{\"starforce\": \"17\", \"special_ring_level\": \"3\","
                  " \"item_base_option\": {\"base_equipment_level\": \"160\"},"
                  " \"potential_option_grade\": \"신화\", \"potential_option_1\": null,"
                  " \"starforce_scroll_flag\": \"사용\", \"item_add_option\": null},"
                  "{\"starforce\": 12, \"item_base_option\": null, \"item_name\": \"\","
                  " \"potential_option_grade\": null, \"item_add_option\": {\"str\": \" 7 \"}},"
                  "{\"starforce\": null, \"starforce_scroll_flag\": null},"
                  "{}],"
                  " \"item_equipment_preset_2\": null, \"preset_no\": \"2\"}"),
        0);
    assert_int_equal(eq->preset_no, 2);
    assert_true(eq->lists[1].present);
    assert_false(eq->lists[2].present);
    assert_int_equal(eq->lists[1].n, 4);
    const struct mx_equip_item *a = &eq->lists[1].items[0], *b = &eq->lists[1].items[1];
    assert_int_equal(a->starforce, 17);
    assert_int_equal(a->special_ring_level, 3);
    assert_int_equal(a->level, 160);
    assert_int_equal(a->pot_grade, MX_GRADE_UNKNOWN);
    assert_string_equal(a->pot_grade_text, "신화");
    assert_true(a->scroll);
    assert_false(a->has_flame);
    assert_int_equal(b->starforce, 12);
    assert_int_equal(b->pot_grade, MX_GRADE_NONE);
    assert_int_equal(b->flame.str, 7);
    assert_int_equal(eq->lists[1].items[2].starforce, 0);
    /* an empty object is a valid (empty) response */
    assert_int_equal(parse_str("{}"), 0);
    assert_false(eq->lists[1].present);
}

static void bounds(void **state)
{
    (void)state;
    /* a huge string is refused with the field named, not truncated */
    size_t n = 100000;
    char *s = malloc(n + 128);
    int k = snprintf(s, n + 128, "{\"item_equipment\": [{\"item_name\": \"");
    memset(s + k, 'A', n);
    strcpy(s + k + n, "\"}]}");
    assert_int_equal(parse_str(s), MX_ETOOBIG);
    assert_string_equal(err, "item_equipment[0].item_name: string longer than 127 bytes");
    free(s);
    /* exactly at the bound is fine: 127 bytes */
    char ok[256];
    k = snprintf(ok, sizeof ok, "{\"item_equipment\": [{\"item_name\": \"");
    memset(ok + k, 'B', 127);
    strcpy(ok + k + 127, "\"}]}");
    assert_int_equal(parse_str(ok), 0);
    assert_int_equal(strlen(eq->lists[0].items[0].name), 127);
    /* too many items */
    char *many = malloc(64 * 4 + 64);
    k = sprintf(many, "{\"item_equipment\": [");
    for (int i = 0; i < MX_EQUIP_MAX_ITEMS + 1; i++)
        k += sprintf(many + k, "%s{}", i ? "," : "");
    strcpy(many + k, "]}");
    assert_int_equal(parse_str(many), MX_ETOOBIG);
    assert_string_equal(err, "item_equipment: more than 48 items");
    free(many);
    /* oversized input is refused before parsing */
    assert_int_equal(
        mx_equip_parse(parser, "{}", (size_t)MX_EQUIP_MAX_INPUT + 1, eq, err, sizeof err),
        MX_ETOOBIG);
}

static void ints(void **state)
{
    (void)state;
    int v;
    assert_int_equal(mx_equip_parse_int("22", 2, &v), 0);
    assert_int_equal(v, 22);
    assert_int_equal(mx_equip_parse_int("", 0, &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(mx_equip_parse_int("-3", 2, &v), 0);
    assert_int_equal(v, -3);
    assert_int_equal(mx_equip_parse_int("2x", 2, &v), MX_EINVAL);
    assert_int_equal(mx_equip_parse_int("-", 1, &v), MX_EINVAL);
    assert_int_equal(mx_equip_parse_int("99999999999", 11, &v), MX_EINVAL);
    assert_int_equal(mx_equip_grade_from_text("레전드리"), MX_GRADE_LEGENDARY);
    assert_int_equal(mx_equip_grade_from_text(""), MX_GRADE_NONE);
    assert_int_equal(mx_equip_grade_from_text("x"), MX_GRADE_UNKNOWN);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fixtures),     cmocka_unit_test(not_json),
        cmocka_unit_test(wrong_shapes), cmocka_unit_test(lenient_values),
        cmocka_unit_test(bounds),       cmocka_unit_test(ints),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
