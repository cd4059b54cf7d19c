/* test_mxcalc.c - runs the mxcalc binary ($MX_BIN_DIR/mxcalc) and checks its
 * exit codes: 0 ok, 1 bad file or table, 2 bad arguments.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "mx_testutil.h"
#include "support/mx_proc.h"

static int run(const char *args)
{
    char out[1];
    int st = mx_proc_run(out, sizeof out, 30000,
                         "env MX_CUBE_TABLE='%s/data/cube_probability_black.csv' '%s/mxcalc' %s"
                         " >/dev/null 2>&1",
                         getenv("MX_SHARED_DIR"), getenv("MX_BIN_DIR"), args);
    TU_ASSERT_CMP(st, >=, 0);
    TU_ASSERT_CMP(st, <, 128); /* an exit, not a signal */
    return st;
}

/* stdout of a command, first line, into buf */
static void output(const char *args, char *buf, size_t cap)
{
    assert_int_equal(
        mx_proc_run(buf, cap, 30000, "'%s/mxcalc' %s 2>/dev/null", getenv("MX_BIN_DIR"), args), 0);
    char *nl = strchr(buf, '\n'); /* its first line, with the newline (as fgets) */
    if (nl)
        nl[1] = '\0';
    assert_true(buf[0] != '\0');
}

static void exit_codes(void **state)
{
    (void)state;
    char a[2048];
    const char *sh = getenv("MX_SHARED_DIR");
    assert_non_null(sh);
    assert_non_null(getenv("MX_BIN_DIR"));
    snprintf(a, sizeof a, "'%s/fixtures/nexon/evan_equip.json'", sh);
    assert_int_equal(run(a), 0);
    snprintf(a, sizeof a,
             "--preset 2 --no-star-catch --no-discount --no-sunday "
             "'%s/fixtures/nexon/mechanic_equip.json'",
             sh);
    assert_int_equal(run(a), 0);
    snprintf(a, sizeof a, "--table /nonexistent.csv '%s/fixtures/nexon/evan_equip.json'", sh);
    assert_int_equal(run(a), 1);
    assert_int_equal(run("/nonexistent/file.json"), 1);
    /* a file that is not item-equipment JSON */
    snprintf(a, sizeof a, "'%s/data/cube_probability_black.csv'", sh);
    assert_int_equal(run(a), 1);
    snprintf(a, sizeof a, "'%s/fixtures/nexon/basic_character_info.json'", sh);
    assert_int_equal(run(a), 0); /* valid JSON object without items: empty document */
    assert_int_equal(run(""), 2);
    assert_int_equal(run("--preset 9 x.json"), 2);
    assert_int_equal(run("--bogus x.json"), 2);
    assert_int_equal(run("a.json b.json"), 2);
    assert_int_equal(run("starforce --level 200 --from 0 --to 22"), 0);
    assert_int_equal(run("starforce --from 0 --to 22"), 2);
    assert_int_equal(run("starforce --level 200 --from 5 --to 3"), 2);
    assert_int_equal(run("starforce --level abc --to 3"), 2);
    assert_int_equal(run("cube --slot 모자 --level 250 --grade 레전드리 --line 'INT +13%' "
                         "--line 'INT +10%' --line '올스탯 +7%'"),
                     0);
    assert_int_equal(run("cube --slot 모자 --level 250 --grade 신화 --line x"), 2);
    assert_int_equal(run("cube --slot 모자 --level 250 --grade epic --line a --line b --line c "
                         "--line d"),
                     2);
    assert_int_equal(run("cube --table /nonexistent.csv --slot 모자 --level 250 --grade epic "
                         "--line a"),
                     1);
}

static void outputs(void **state)
{
    (void)state;
    char buf[1024];
    /* 0 -> 1 at level 200, no options: 223200 / .95 = 234947.37 */
    output("starforce --level 200 --from 0 --to 1", buf, sizeof buf);
    assert_string_equal(buf, "{\"expectedCost\":234947,\"expectedDestroyCount\":0,"
                             "\"expectedAttempts\":1.0526315789473684}\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(exit_codes),
        cmocka_unit_test(outputs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
