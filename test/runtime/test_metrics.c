/* test_metrics.c - the metrics registry and the two renderers generated
 * from it: one family per group even across instances, labels, escaping,
 * the bound on the Prometheus text, and the JSON of mxctl stats. */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "mx_err.h"
#include "mx_jsonw.h"
#include "mx_metrics.h"

#define T_METRICS(X)                                                                               \
    X(COUNTER, requests, "requests taken", "", "event=\"request\"")                                \
    X(COUNTER, ok, "answered", "", "event=\"ok\"")                                                 \
    X(COUNTER, bytes_out, "bytes written")                                                         \
    X(GAUGE, inflight, "calls in flight")                                                          \
    X(SGAUGE, backlog, "rows waiting; -1 unknown")

MX_METRICS_STRUCT(t_metrics, T_METRICS);
#define MX_METRICS_TYPE struct t_metrics
static const struct mx_metric_desc t_desc[] = {T_METRICS(MX_METRIC_DESC)};
#undef MX_METRICS_TYPE

static void test_prom_and_json(void **st)
{
    struct t_metrics a = {0}, b = {0};
    MX_METRIC_INC(&a, requests);
    MX_METRIC_ADD(&a, bytes_out, 10);
    MX_METRIC_SET(&a, inflight, 2);
    MX_METRIC_SET(&a, backlog, -1);
    MX_METRIC_ADD_SHARED(&b, requests, 3);
    MX_METRIC_INC_SHARED(&b, ok);
    int ia = mx_metrics_register("fetch", "w-0", t_desc, 5, &a);
    int ib = mx_metrics_register("fetch", "w\"1", t_desc, 5, &b);
    assert_true(ia > 0);
    assert_true(ib > ia);
    char *txt;
    size_t len;
    assert_int_equal(mx_metrics_prom("n\\1", 1 << 20, &txt, &len), 0);
    assert_int_equal(strlen(txt), len);
    const char *want =
        "# HELP mx_metrics_refused_total counter sets not shown: the registry was full "
        "(MX_METRICS_MAX_SETS)\n"
        "# TYPE mx_metrics_refused_total counter\n"
        "mx_metrics_refused_total{node=\"n\\\\1\",actor=\"metrics\",instance=\"registry\"} 0\n"
        "# HELP mx_fetch_total request: requests taken; ok: answered\n"
        "# TYPE mx_fetch_total counter\n"
        "mx_fetch_total{node=\"n\\\\1\",actor=\"fetch\",instance=\"w-0\",event=\"request\"} 1\n"
        "mx_fetch_total{node=\"n\\\\1\",actor=\"fetch\",instance=\"w-0\",event=\"ok\"} 0\n"
        "mx_fetch_total{node=\"n\\\\1\",actor=\"fetch\",instance=\"w\\\"1\",event=\"request\"} 3\n"
        "mx_fetch_total{node=\"n\\\\1\",actor=\"fetch\",instance=\"w\\\"1\",event=\"ok\"} 1\n"
        "# HELP mx_fetch_bytes_out_total bytes written\n"
        "# TYPE mx_fetch_bytes_out_total counter\n"
        "mx_fetch_bytes_out_total{node=\"n\\\\1\",actor=\"fetch\",instance=\"w-0\"} 10\n"
        "mx_fetch_bytes_out_total{node=\"n\\\\1\",actor=\"fetch\",instance=\"w\\\"1\"} 0\n"
        "# HELP mx_fetch_inflight calls in flight\n"
        "# TYPE mx_fetch_inflight gauge\n"
        "mx_fetch_inflight{node=\"n\\\\1\",actor=\"fetch\",instance=\"w-0\"} 2\n"
        "mx_fetch_inflight{node=\"n\\\\1\",actor=\"fetch\",instance=\"w\\\"1\"} 0\n"
        "# HELP mx_fetch_backlog rows waiting; -1 unknown\n"
        "# TYPE mx_fetch_backlog gauge\n"
        "mx_fetch_backlog{node=\"n\\\\1\",actor=\"fetch\",instance=\"w-0\"} -1\n"
        "mx_fetch_backlog{node=\"n\\\\1\",actor=\"fetch\",instance=\"w\\\"1\"} 0\n";
    assert_string_equal(txt, want);
    /* bounded: a family that does not fit is left out whole */
    size_t cut = (size_t)(strstr(txt, "# HELP mx_fetch_bytes_out_total") - txt);
    free(txt);
    assert_int_equal(mx_metrics_prom("n\\1", cut + 40, &txt, &len), MX_ETOOBIG);
    assert_int_equal(len, cut);
    assert_memory_equal(txt, want, cut);
    assert_int_equal(txt[len], '\0');
    free(txt);

    struct mx_jsonw w;
    mx_jsonw_init(&w, 4096);
    mx_metrics_json(&w);
    assert_int_equal(w.err, 0);
    assert_string_equal(w.buf, "{\"metrics\":{\"registry\":{\"refused\":0}},"
                               "\"fetch\":{\"w-0\":{\"requests\":1,\"ok\":0,\"bytes_out\":10,"
                               "\"inflight\":2,\"backlog\":-1},\"w\\\"1\":{\"requests\":3,"
                               "\"ok\":1,\"bytes_out\":0,\"inflight\":0,\"backlog\":0}}}");
    mx_jsonw_fini(&w);

    /* a section's totals: every field summed over the actor's instances */
    mx_jsonw_init(&w, 4096);
    mx_jsonw_obj_open(&w);
    mx_metrics_json_totals(&w, "fetch");
    mx_metrics_json_totals(&w, "nobody");
    mx_jsonw_obj_close(&w);
    assert_string_equal(w.buf, "{\"requests\":4,\"ok\":1,\"bytes_out\":10,\"inflight\":2,"
                               "\"backlog\":-1}");
    mx_jsonw_fini(&w);

    mx_metrics_unregister(ia);
    mx_metrics_unregister(ib);
    mx_jsonw_init(&w, 4096);
    mx_metrics_json(&w);
    assert_string_equal(w.buf, "{\"metrics\":{\"registry\":{\"refused\":0}}}");
    mx_jsonw_fini(&w);
}

/* A second table for one actor kind may add families; shared ones stay one
 * group. */
#define U_METRICS(X)                                                                               \
    X(COUNTER, requests, "requests taken", "", "event=\"request\"")                                \
    X(GAUGE, extra, "a gauge only the second table has")
MX_METRICS_STRUCT(u_metrics, U_METRICS);
#define MX_METRICS_TYPE struct u_metrics
static const struct mx_metric_desc u_desc[] = {U_METRICS(MX_METRIC_DESC)};
#undef MX_METRICS_TYPE

static void test_mixed_tables(void **st)
{
    struct t_metrics a = {0};
    struct u_metrics b = {0};
    MX_METRIC_SET(&b, extra, 7);
    int ia = mx_metrics_register("mix", "a", t_desc, 5, &a);
    int ib = mx_metrics_register("mix", "b", u_desc, 2, &b);
    char *txt;
    size_t len;
    assert_int_equal(mx_metrics_prom("n", 1 << 20, &txt, &len), 0);
    const char *f = strstr(txt, "# TYPE mx_mix_total counter\n");
    assert_non_null(f);
    assert_null(strstr(f + 1, "# TYPE mx_mix_total counter\n")); /* one group */
    assert_non_null(strstr(txt, "mx_mix_total{node=\"n\",actor=\"mix\",instance=\"b\",event="
                                "\"request\"} 0\n"));
    assert_non_null(strstr(txt, "# TYPE mx_mix_extra gauge\n"
                                "mx_mix_extra{node=\"n\",actor=\"mix\",instance=\"b\"} 7\n"));
    free(txt);
    mx_metrics_unregister(ia);
    mx_metrics_unregister(ib);
}

static void test_full_registry(void **st)
{
    static struct t_metrics b;
    static int ids[MX_METRICS_MAX_SETS];
    uint64_t refused = mx_metrics_refused();
    for (int i = 0; i < MX_METRICS_MAX_SETS - 1; i++) { /* slot 0: the registry's own */
        ids[i] = mx_metrics_register("t", "x", t_desc, 5, &b);
        assert_true(ids[i] > 0);
    }
    assert_int_equal(mx_metrics_register("t", "y", t_desc, 5, &b), 0);
    assert_int_equal(mx_metrics_refused(), refused + 1);
    mx_metrics_unregister(ids[7]);
    assert_true(mx_metrics_register("t", "z", t_desc, 5, &b) > ids[MX_METRICS_MAX_SETS - 2]);
    /* the refusal is in both outputs, through the registry's own set */
    char *txt;
    size_t len;
    mx_metrics_prom("n", 1 << 20, &txt, &len);
    char want[160];
    snprintf(want, sizeof want,
             "mx_metrics_refused_total{node=\"n\",actor=\"metrics\",instance=\"registry\"} %llu\n",
             (unsigned long long)(refused + 1));
    assert_non_null(strstr(txt, want));
    free(txt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prom_and_json),
        cmocka_unit_test(test_mixed_tables),
        cmocka_unit_test(test_full_registry),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
