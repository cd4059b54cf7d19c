/* mxctl_merge_test.c - the --cluster stats merge (cmd/mxctl_merge.c) on
 * hand-built answers: counters summed over the members that answered,
 * gauges kept per member, JSON stats sections read, flags and negative
 * values, a member missing with its reason, and the path bounds (an
 * over-long path and more paths than the table holds are counted, never
 * written past). Under ASan/UBSan in CI. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include <msgpack.h>

#include "mx_admin.h"
#include "mx_jsonw.h"
#include "mxctl_merge.h"

static void key(msgpack_packer *pk, const char *k)
{
    msgpack_pack_str(pk, strlen(k));
    msgpack_pack_str_body(pk, k, strlen(k));
}

/* {"ok":true, "uptime_ms":U, "spawned":S, "deadletters":{"node-down":D},
 *  "sections":{"fetcher": ext JSON {"requests":R,"inflight":I,"ratio":0.5},
 *              "http": ext JSON {"draining":B,"backlog":-1}}} */
static void answer(msgpack_sbuffer *sb, int u, int s, int d, int r, int i, bool b)
{
    msgpack_packer pk;
    msgpack_sbuffer_init(sb);
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 5);
    key(&pk, "ok");
    msgpack_pack_true(&pk);
    key(&pk, "uptime_ms");
    msgpack_pack_int(&pk, u);
    key(&pk, "spawned");
    msgpack_pack_int(&pk, s);
    key(&pk, "deadletters");
    msgpack_pack_map(&pk, 1);
    key(&pk, "node-down");
    msgpack_pack_int(&pk, d);
    key(&pk, "sections");
    msgpack_pack_map(&pk, 2);
    char js[200];
    key(&pk, "fetcher");
    int n = snprintf(js, sizeof js,
                     "{\"requests\":%d,\"inflight\":%d,\"ratio\":0.5,\"list\":[1,2]}", r, i);
    msgpack_pack_ext(&pk, (size_t)n, MX_ADMIN_EXT_JSON);
    msgpack_pack_ext_body(&pk, js, (size_t)n);
    key(&pk, "http");
    n = snprintf(js, sizeof js, "{\"draining\":%s,\"backlog\":-1}", b ? "true" : "false");
    msgpack_pack_ext(&pk, (size_t)n, MX_ADMIN_EXT_JSON);
    msgpack_pack_ext_body(&pk, js, (size_t)n);
}

static void add(struct mxm *m, int i, const msgpack_sbuffer *sb)
{
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    assert_int_equal(msgpack_unpack_next(&up, sb->data, sb->size, &off), MSGPACK_UNPACK_SUCCESS);
    mxm_answer(m, i, &up.data);
    msgpack_unpacked_destroy(&up);
}

static void test_merge(void **st)
{
    const char *names[] = {"a", "b", "c"}, *admins[] = {"tcp://a", "tcp://b", "tcp://c"};
    struct mxm *m = mxm_new(3);
    msgpack_sbuffer a, b;
    answer(&a, 100, 10, 1, 7, 2, false);
    answer(&b, 200, 20, 2, 5, 3, true);
    add(m, 0, &a);
    add(m, 1, &b);
    mxm_missing(m, 2, "no answer within 2000 ms");
    struct mx_jsonw w;
    mx_jsonw_init(&w, 1 << 16);
    mxm_json(m, names, admins, &w);
    assert_int_equal(w.err, 0);
    const char *want[] = {
        "\"members\":3,\"answered\":2",
        "\"missing\":[{\"member\":\"c\",\"admin\":\"tcp://c\",\"error\":\"no answer within 2000 "
        "ms\"}]",
        "\"spawned\":30",
        "\"deadletters.node-down\":3",
        "\"sections.fetcher.requests\":12",
        "\"sections.fetcher.ratio\":1",
        "\"uptime_ms\":{\"a\":100,\"b\":200}",
        "\"sections.fetcher.inflight\":{\"a\":2,\"b\":3}",
        "\"sections.http.draining\":{\"a\":0,\"b\":1}",
        "\"sections.http.backlog\":{\"a\":-1,\"b\":-1}",
        "\"paths_dropped\":0",
    };
    for (size_t i = 0; i < sizeof want / sizeof *want; i++)
        if (!strstr(w.buf, want[i]))
            fail_msg("no %s in %s", want[i], w.buf);
    assert_null(strstr(w.buf, "\"ok\""));
    assert_null(strstr(w.buf, "list"));
    mx_jsonw_fini(&w);
    msgpack_sbuffer_destroy(&a);
    msgpack_sbuffer_destroy(&b);
    mxm_free(m);
}

static void test_gauge_names(void **st)
{
    assert_true(mxm_is_gauge("uptime_ms"));
    assert_true(mxm_is_gauge("sections.fetcher.queued_max"));
    assert_true(mxm_is_gauge("sections.outbox.lag_p99_ms"));
    assert_false(mxm_is_gauge("sections.fetcher.requests"));
    assert_false(mxm_is_gauge("sections.likes.warms"));
    assert_false(mxm_is_gauge("transport.bytes_in"));
}

/* one member with more paths than the table holds and one over-long path */
static void test_bounds(void **st)
{
    const char *names[] = {"a"}, *admins[] = {"tcp://a"};
    struct mxm *m = mxm_new(1);
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, MXM_MAX_PATHS + 11);
    for (int i = 0; i < MXM_MAX_PATHS + 10; i++) {
        char k[32];
        snprintf(k, sizeof k, "c%d", i);
        key(&pk, k);
        msgpack_pack_int(&pk, i);
    }
    char longk[MXM_PATH_MAX + 10];
    memset(longk, 'x', sizeof longk - 1);
    longk[sizeof longk - 1] = '\0';
    key(&pk, longk);
    msgpack_pack_int(&pk, 1);
    add(m, 0, &sb);
    struct mx_jsonw w;
    mx_jsonw_init(&w, 1 << 20);
    mxm_json(m, names, admins, &w);
    assert_int_equal(w.err, 0);
    assert_non_null(strstr(w.buf, "\"paths_dropped\":11"));
    assert_non_null(strstr(w.buf, "\"c4095\":4095"));
    assert_null(strstr(w.buf, "\"c4096\""));
    mx_jsonw_fini(&w);
    msgpack_sbuffer_destroy(&sb);
    mxm_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_merge),
        cmocka_unit_test(test_gauge_names),
        cmocka_unit_test(test_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
