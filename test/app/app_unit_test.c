/* app_unit_test.c - the pure parts of mx_app without sockets (run under
 * ASan and UBSan in CI):
 * - TotalExpectationResponse rendered from the golden V4 documents: the
 *   totals and the items are those of the document's maxPresetNo preset,
 *   potential lines joined by " | ", garbage refused;
 * - the comma-list reader behind MX_CORS_ORIGINS and MX_ADMIN_FINGERPRINTS;
 * - MX_CORS_ORIGINS and MX_ADMIN_FINGERPRINTS parsing and their bounds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "app_int.h"
#include "mx_err.h"

static char *slurp(const char *name, size_t *len)
{
    const char *src = getenv("MX_SOURCE_DIR");
    assert_non_null(src);
    char path[1024];
    snprintf(path, sizeof path, "%s/test/expect/golden/%s", src, name);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static long long number_after(const char *s, const char *key)
{
    const char *p = strstr(s, key);
    assert_non_null(p);
    return atoll(p + strlen(key));
}

static int count(const char *from, const char *to, const char *needle)
{
    int n = 0;
    for (const char *p = from; (p = strstr(p, needle)) && (!to || p < to); p++)
        n++;
    return n;
}

static void check_total(const char *golden)
{
    size_t len;
    char *doc = slurp(golden, &len);
    struct mx_jsonw w;
    mx_jsonw_init(&w, 1 << 20);
    assert_int_equal(mx__app_total_expectation(doc, len, &w), 0);
    /* the document's top-level total (its first totalExpectedCost) is the
     * maxPresetNo preset's, and so is the receipt's */
    char want[64];
    snprintf(want, sizeof want, "\"totalCost\":%lld", number_after(doc, "\"totalExpectedCost\":"));
    assert_non_null(strstr(w.buf, want));
    /* one receipt line per item of that preset */
    long long best = number_after(doc, "\"maxPresetNo\":");
    char key[32];
    snprintf(key, sizeof key, "\"presetNo\":%lld,", best);
    const char *from = strstr(doc, key);
    assert_non_null(from);
    const char *to = strstr(from + 1, "\"presetNo\":");
    assert_int_equal(count(w.buf, NULL, "\"itemName\":"), count(from, to, "\"itemName\":"));
    assert_int_equal(count(w.buf, NULL, "\"expectedCount\":"), count(from, to, "\"itemName\":"));
    /* three-line potentials are joined as the seed printed them */
    assert_non_null(strstr(w.buf, " | "));
    assert_null(strstr(w.buf, "\"potential\":\"\"")); /* NON_EMPTY */
    mx_jsonw_fini(&w);
    free(doc);
}

static void test_total_expectation(void **st)
{
    check_total("evan.json");
    check_total("mechanic.json");
    struct mx_jsonw w;
    mx_jsonw_init(&w, 4096);
    assert_int_equal(mx__app_total_expectation("{\"presets\":[", 12, &w), MX_EDECODE);
    mx_jsonw_reset(&w);
    assert_int_equal(mx__app_total_expectation("[1,2]", 5, &w), MX_EDECODE);
    mx_jsonw_reset(&w);
    assert_int_equal(mx__app_total_expectation("{}", 2, &w), 0);
    assert_string_equal(w.buf, "{\"totalCost\":0}");
    mx_jsonw_fini(&w);
}

static void test_list_item(void **st)
{
    const char *list = " a , ,b,  c c ", *s;
    size_t n;
    char got[64] = "";
    while ((s = mx__app_list_item(&list, &n)))
        snprintf(got + strlen(got), sizeof got - strlen(got), "[%.*s]", (int)n, s);
    assert_string_equal(got, "[a][][b][c c]");
    list = NULL;
    assert_null(mx__app_list_item(&list, &n));
}

static void test_cors_and_admins(void **st)
{
    static struct mx_app app;
    assert_int_equal(mx__app_cors_parse(&app, "https://a.example/, http://b.example:8080"), 0);
    assert_int_equal(app.ncors, 2);
    assert_string_equal(app.cors[0], "https://a.example");
    assert_string_equal(app.cors[1], "http://b.example:8080");
    assert_int_equal(mx__app_cors_parse(&app, ""), 0);
    assert_int_equal(app.ncors, 0);
    assert_int_equal(mx__app_cors_parse(&app, "*"), 0);
    assert_int_equal(app.ncors, 1);
    assert_int_equal(mx__app_cors_parse(&app, "a.example"), MX_ECONFIG);
    /* origins are read by util/mx_url: no path, no bad port or host */
    assert_int_equal(mx__app_cors_parse(&app, "https://a.example/app"), MX_ECONFIG);
    assert_int_equal(mx__app_cors_parse(&app, "https://a.example:99999"), MX_ECONFIG);
    assert_int_equal(mx__app_cors_parse(&app, "https://"), MX_ECONFIG);
    assert_int_equal(mx__app_cors_parse(&app, "https://[::1]:8443"), 0);
    char many[2048] = "";
    for (int i = 0; i <= MX_APP_MAX_ORIGINS; i++)
        snprintf(many + strlen(many), sizeof many - strlen(many), "https://o%d.example,", i);
    assert_int_equal(mx__app_cors_parse(&app, many), MX_ECONFIG);

    app.o.admin_fingerprints = "fp-one, fp-two";
    assert_int_equal(mx__app_admins_parse(&app), 0);
    assert_int_equal(app.nadmins, 2);
    assert_true(mx__app_bootstrap_admin(&app, "fp-two"));
    assert_false(mx__app_bootstrap_admin(&app, "fp-three"));
    assert_false(mx__app_bootstrap_admin(&app, "fp"));
    char longfp[128];
    memset(longfp, 'x', sizeof longfp - 1);
    longfp[sizeof longfp - 1] = '\0';
    app.o.admin_fingerprints = longfp;
    assert_int_equal(mx__app_admins_parse(&app), MX_ECONFIG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_total_expectation),
        cmocka_unit_test(test_list_item),
        cmocka_unit_test(test_cors_and_admins),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
