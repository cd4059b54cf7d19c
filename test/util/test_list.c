/* test_list.c - util/mx_list.h: order after pushes and inserts, removal
 * anywhere (also while iterating), a second remove, NULL at both ends, one
 * element in two lists at once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "mx_list.h"

struct item {
    int v;
    struct mx_list by_order; /* in the test's list a */
    struct mx_list by_other; /* in list b */
};

/* the values of list l front to back, and back to front, as digits */
static void spell(struct mx_list *l, char *fwd, char *bwd)
{
    struct item *it;
    size_t n = 0;
    mx_list_each (it, l, by_order)
        fwd[n++] = (char)('0' + it->v);
    fwd[n] = '\0';
    n = 0;
    for (it = mx_list_last(l, struct item, by_order); it; it = mx_list_prev(l, it, by_order))
        bwd[n++] = (char)('0' + it->v);
    bwd[n] = '\0';
}

#define ASSERT_SPELLS(l, want, rwant)                                                              \
    do {                                                                                           \
        char f_[16], b_[16];                                                                       \
        spell(l, f_, b_);                                                                          \
        assert_string_equal(f_, want);                                                             \
        assert_string_equal(b_, rwant);                                                            \
    } while (0)

static void test_order_and_remove(void **st)
{
    (void)st;
    struct mx_list a = MX_LIST_INIT(a);
    struct item it[6] = {{0}};
    assert_true(mx_list_empty(&a));
    assert_null(mx_list_first(&a, struct item, by_order));
    assert_null(mx_list_last(&a, struct item, by_order));
    for (int i = 0; i < 6; i++) {
        it[i].v = i;
        assert_false(mx_list_linked(&it[i].by_order)); /* zeroed: in no list */
    }
    mx_list_push_back(&a, &it[1].by_order);
    mx_list_push_back(&a, &it[2].by_order);
    mx_list_push_front(&a, &it[0].by_order);
    mx_list_insert_after(&it[2].by_order, &it[4].by_order);
    mx_list_insert_after(&it[2].by_order, &it[3].by_order);
    ASSERT_SPELLS(&a, "01234", "43210");
    assert_true(mx_list_linked(&it[3].by_order));
    assert_int_equal(mx_list_first(&a, struct item, by_order)->v, 0);
    assert_int_equal(mx_list_last(&a, struct item, by_order)->v, 4);
    assert_null(mx_list_next(&a, &it[4], by_order));
    assert_null(mx_list_prev(&a, &it[0], by_order));
    assert_int_equal(mx_list_next(&a, &it[1], by_order)->v, 2);

    mx_list_remove(&it[0].by_order); /* first */
    mx_list_remove(&it[4].by_order); /* last */
    mx_list_remove(&it[2].by_order); /* middle */
    ASSERT_SPELLS(&a, "13", "31");
    assert_false(mx_list_linked(&it[2].by_order));
    mx_list_remove(&it[2].by_order); /* again: harmless */
    ASSERT_SPELLS(&a, "13", "31");
    mx_list_remove(&it[1].by_order);
    mx_list_remove(&it[3].by_order);
    assert_true(mx_list_empty(&a));
    ASSERT_SPELLS(&a, "", "");
}

static void test_remove_while_iterating(void **st)
{
    (void)st;
    struct mx_list a;
    mx_list_init(&a);
    for (int i = 0; i < 8; i++) {
        struct item *x = calloc(1, sizeof *x);
        assert_non_null(x);
        x->v = i;
        mx_list_push_back(&a, &x->by_order);
    }
    struct item *e, *t;
    mx_list_each_safe (e, t, &a, by_order) {
        if (e->v % 2) {
            mx_list_remove(&e->by_order);
            free(e);
        }
    }
    ASSERT_SPELLS(&a, "0246", "6420");
    mx_list_each_safe (e, t, &a, by_order) {
        mx_list_remove(&e->by_order);
        free(e);
    }
    assert_true(mx_list_empty(&a));
}

/* a sorted insert from the back, as the Redis client's deadline list does */
static void test_sorted_insert_and_two_lists(void **st)
{
    (void)st;
    struct mx_list a = MX_LIST_INIT(a), b = MX_LIST_INIT(b);
    static const int vals[] = {5, 1, 4, 1, 9, 2, 6};
    struct item it[7] = {{0}};
    for (int i = 0; i < 7; i++) {
        it[i].v = vals[i];
        struct item *at = mx_list_last(&a, struct item, by_order);
        while (at && at->v > it[i].v)
            at = mx_list_prev(&a, at, by_order);
        mx_list_insert_after(at ? &at->by_order : &a, &it[i].by_order);
        mx_list_push_front(&b, &it[i].by_other);
    }
    ASSERT_SPELLS(&a, "1124569", "9654211");
    /* b holds the same items in reverse arrival order, untouched by a */
    char got[16];
    size_t n = 0;
    struct item *e;
    mx_list_each (e, &b, by_other)
        got[n++] = (char)('0' + e->v);
    got[n] = '\0';
    assert_string_equal(got, "6291415");
    mx_list_remove(&it[4].by_order); /* the 9 leaves a, stays in b */
    ASSERT_SPELLS(&a, "112456", "654211");
    assert_true(mx_list_linked(&it[4].by_other));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_and_remove),
        cmocka_unit_test(test_remove_while_iterating),
        cmocka_unit_test(test_sorted_insert_and_two_lists),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
