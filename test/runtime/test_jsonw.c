/* test_jsonw.c - the bounded JSON writer: escaping, UTF-8 repair, limits. */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "mx_err.h"
#include "mx_jsonw.h"

static void test_shapes(void **st)
{
    struct mx_jsonw w;
    mx_jsonw_init(&w, 1024);
    mx_jsonw_obj_open(&w);
    mx_jsonw_kstr(&w, "a", "x\"y\\z\n");
    mx_jsonw_kint(&w, "b", -5);
    mx_jsonw_key(&w, "c");
    mx_jsonw_arr_open(&w);
    mx_jsonw_double(&w, 0.1);
    mx_jsonw_double(&w, NAN);
    mx_jsonw_bool(&w, true);
    mx_jsonw_null(&w);
    mx_jsonw_arr_close(&w);
    mx_jsonw_kstr(&w, "ctl", "\x01");
    mx_jsonw_obj_close(&w);
    assert_int_equal(w.err, 0);
    assert_string_equal(w.buf, "{\"a\":\"x\\\"y\\\\z\\n\",\"b\":-5,\"c\":[0.1,null,true,null],"
                               "\"ctl\":\"\\u0001\"}");
    mx_jsonw_fini(&w);
}

static void test_invalid_utf8(void **st)
{
    struct mx_jsonw w;
    mx_jsonw_init(&w, 1024);
    mx_jsonw_strn(&w, "a\xff\xc3(b\xed\xa0\x80", 8); /* bad byte, bad pair, surrogate */
    assert_string_equal(w.buf,
                        "\"a\xef\xbf\xbd\xef\xbf\xbd(b\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"");
    mx_jsonw_reset(&w);
    mx_jsonw_str(&w, "메이플");
    assert_string_equal(w.buf, "\"메이플\"");
    mx_jsonw_fini(&w);
}

static void test_limit(void **st)
{
    struct mx_jsonw w;
    mx_jsonw_init(&w, 10);
    mx_jsonw_str(&w, "0123456789abc");
    assert_int_equal(w.err, MX_ETOOBIG);
    size_t len;
    assert_null(mx_jsonw_take(&w, &len));
    assert_int_equal(len, 0);
    mx_jsonw_fini(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shapes),
        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
