/* likes_unit_test.c - the liker identity and the key partitioning.
 *
 * The expected account ids were computed outside mx, with Python's hashlib
 * and base64 (urlsafe_b64encode of sha256(",".join(sorted(ocids))), "="
 * stripped), which is the seed's AccountIdGenerator rule. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "mx_testutil.h"

#include "mx_err.h"
#include "mx_likes.h"

static void account_id_matches_the_seed_rule(void **st)
{
    char out[64];
    /* order of the list does not matter: it is sorted */
    assert_int_equal(mx_likes_account_id("b2,a1,c3", out, sizeof out), 0);
    assert_string_equal(out, "6V9Gk8YxdhAnJlZfK7awyRUI8FaBtsDD1knKVqZMSL8");
    assert_int_equal(mx_likes_account_id("c3,a1,b2", out, sizeof out), 0);
    assert_string_equal(out, "6V9Gk8YxdhAnJlZfK7awyRUI8FaBtsDD1knKVqZMSL8");
    /* empty items are ignored */
    assert_int_equal(mx_likes_account_id(",a1,,b2,c3,", out, sizeof out), 0);
    assert_string_equal(out, "6V9Gk8YxdhAnJlZfK7awyRUI8FaBtsDD1knKVqZMSL8");
    assert_int_equal(mx_likes_account_id("37374c8b543d2561daac8230f5e02114", out, sizeof out), 0);
    assert_string_equal(out, "KToDzsLul-jmkfhYvqO0z5VjNbjGR3hEqPGpDKr9ApQ");
    assert_int_equal(strlen(out), MX_LIKES_ACCOUNT_LEN);
}

static void account_id_refuses_what_it_cannot_name(void **st)
{
    char out[64];
    assert_int_equal(mx_likes_account_id("", out, sizeof out), MX_EINVAL);
    assert_int_equal(mx_likes_account_id(",,,", out, sizeof out), MX_EINVAL);
    assert_int_equal(mx_likes_account_id("a", out, 10), MX_ETOOBIG);
}

static void validation(void **st)
{
    assert_true(mx_likes_valid_ocid("37374c8b543d2561daac8230f5e02114", 32));
    assert_false(mx_likes_valid_ocid("", 0));
    assert_false(mx_likes_valid_ocid("a|b", 3));
    assert_false(mx_likes_valid_ocid("a:b", 3));
    char big[80];
    memset(big, 'a', sizeof big);
    assert_false(mx_likes_valid_ocid(big, sizeof big));
    assert_true(mx_likes_valid_account("6V9Gk8YxdhAnJlZfK7awyRUI8FaBtsDD1knKVqZMSL8", 43));
    assert_false(mx_likes_valid_account("a b", 3));
    assert_false(mx_likes_valid_account("a|b", 3));
}

static void partitions_spread(void **st)
{
    int seen[MX_LIKES_PARTITIONS] = {0};
    char o[40];
    for (int i = 0; i < 1000; i++) {
        int n = snprintf(o, sizeof o, "%032x", i * 2654435761u);
        uint32_t p = mx_likes_partition(o, (size_t)n);
        TU_ASSERT_CMP(p, <, MX_LIKES_PARTITIONS);
        assert_int_equal(p, mx_likes_partition(o, (size_t)n)); /* stable */
        seen[p]++;
    }
    for (int p = 0; p < MX_LIKES_PARTITIONS; p++)
        TU_ASSERT_CMP(seen[p], >, 1000 / MX_LIKES_PARTITIONS / 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(account_id_matches_the_seed_rule),
        cmocka_unit_test(account_id_refuses_what_it_cannot_name),
        cmocka_unit_test(validation),
        cmocka_unit_test(partitions_spread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
