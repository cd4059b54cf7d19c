/* cache_record_test.c - the character record's L2 value (cache_record.c):
 * what a node writes it reads back field for field; the value the old
 * nodes wrote (the API's JSON, likeCount 0) reads the same; anything that
 * is not such a record (not JSON, no ocid, a field too long for the
 * record, a control character) is refused, so a damaged value is evicted
 * and reloaded instead of served. References count as documents' do. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "cache_int.h"
#include "mx_err.h"
#include "mx_jsonw.h"

static int decode(const char *json, struct mx_character_rec *c)
{
    memset(c, 0, sizeof *c);
    return mx__character_from_json(json, strlen(json), c);
}

static void roundtrip(void **st)
{
    (void)st;
    struct mx_character_rec *c = mx_character_rec_new();
    snprintf(c->user_ign, sizeof c->user_ign, "%s", "아델\"quote\\");
    snprintf(c->ocid, sizeof c->ocid, "%s", "0123abcd");
    snprintf(c->world_name, sizeof c->world_name, "%s", "스카니아");
    snprintf(c->character_class, sizeof c->character_class, "%s", "Adele");
    snprintf(c->character_image, sizeof c->character_image, "%s", "https://img/x.png?a=1&b=2");
    struct mx_jsonw w;
    mx_jsonw_init(&w, 8192);
    assert_int_equal(mx__character_to_json(c, &w), 0);
    assert_non_null(strstr(w.buf, "\"likeCount\":0")); /* what old nodes serve as it is */
    struct mx_character_rec back;
    assert_int_equal(decode(w.buf, &back), 0);
    assert_string_equal(back.user_ign, c->user_ign);
    assert_string_equal(back.ocid, c->ocid);
    assert_string_equal(back.world_name, c->world_name);
    assert_string_equal(back.character_class, c->character_class);
    assert_string_equal(back.character_image, c->character_image);
    mx_jsonw_fini(&w);
    assert_ptr_equal(mx_character_rec_ref(c), c);
    assert_int_equal(c->refs, 2);
    mx_character_rec_unref(c);
    assert_int_equal(c->refs, 1);
    mx_character_rec_unref(c);
    mx_character_rec_unref(NULL);
}

static void old_value(void **st)
{
    (void)st;
    struct mx_character_rec c;
    assert_int_equal(decode("{\"userIgn\":\"hero\",\"ocid\":\"abc\",\"likeCount\":0,"
                            "\"worldName\":\"w\",\"characterClass\":\"k\","
                            "\"characterImage\":\"i\"}",
                            &c),
                     0);
    assert_string_equal(c.user_ign, "hero");
    assert_string_equal(c.character_image, "i");
    /* only the ocid is required: the basic record's other fields may lack */
    assert_int_equal(decode("{\"ocid\":\"abc\"}", &c), 0);
    assert_string_equal(c.world_name, "");
}

static void refused(void **st)
{
    (void)st;
    struct mx_character_rec c;
    assert_int_equal(decode("", &c), MX_EDECODE);
    assert_int_equal(decode("[1,2]", &c), MX_EDECODE);
    assert_int_equal(decode("{\"ocid\":\"abc\"", &c), MX_EDECODE);      /* truncated */
    assert_int_equal(decode("{\"userIgn\":\"hero\"}", &c), MX_EDECODE); /* no ocid */
    assert_int_equal(decode("{\"ocid\":\"\"}", &c), MX_EDECODE);        /* empty ocid */
    assert_int_equal(decode("{\"ocid\":12}", &c), MX_EDECODE);          /* wrong type */
    assert_int_equal(decode("{\"ocid\":\"a\\u0000b\"}", &c), MX_EDECODE);
    char big[700];
    int n = snprintf(big, sizeof big, "{\"ocid\":\"abc\",\"characterImage\":\"");
    memset(big + n, 'x', 600);
    snprintf(big + n + 600, sizeof big - (size_t)n - 600, "\"}");
    assert_int_equal(decode(big, &c), MX_EDECODE); /* longer than the record holds */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(roundtrip),
        cmocka_unit_test(old_value),
        cmocka_unit_test(refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
