/* bench_singleflight.c - cluster single-flight under a cold stampede: two
 * mxnode processes, real Redis, MariaDB and mxstub (upstream latency
 * argv[1] ms, default 200); N (argv[2], default 1000) concurrent requests
 * for one character whose ocid is known and whose equipment and document are
 * cold, split across the nodes. Prints JSON lines: upstream calls, p50/p99/
 * max latency, errors, then the same stampede warm. argv[3] "gzip": clients
 * accept gzip. Run by bench/singleflight.sh. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache_harness.h"

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    int latency = argc > 1 ? atoi(argv[1]) : 200;
    int n = argc > 2 ? atoi(argv[2]) : 1000;
    /* argv[3] "gzip": clients accept gzip, as browsers and most API clients do */
    bool gzip = argc > 3 && strcmp(argv[3], "gzip") == 0;
    if (latency < 0 || n < 1 || n > 10000)
        return 2;
    static struct stack s;
    if (stack_start(&s, 0, 0) != 0) {
        fprintf(stderr, "bench_singleflight: cannot start the stack\n");
        return 1;
    }
    char cfg[64];
    snprintf(cfg, sizeof cfg, "/__stub/config?latency_ms=%d", latency);
    /* As the service being replaced measured it: the character is known
     * (its ocid is stored), its equipment and document are cold. Resolve
     * the ocid first (no latency), then reset the stub's counters. */
    char *warm = NULL;
    if (get(s.node[0].http_port, NULL, "/api/v1/characters/stampede", &warm) != 200) {
        fprintf(stderr, "bench_singleflight: warming the ocid failed\n");
        return 1;
    }
    free(warm);
    stub_post(&s.stub, "/__stub/reset");
    stub_post(&s.stub, cfg);
    struct mreq *r = calloc((size_t)n, sizeof *r);
    double *ms = calloc((size_t)n, sizeof *ms);
    for (int i = 0; i < n; i++) {
        r[i].port = s.node[i % 2].http_port;
        r[i].gzip = gzip;
        snprintf(r[i].path, sizeof r[i].path, "/api/v4/characters/stampede/expectation");
    }
    mreq_run(r, n, 60000);
    int errors = 0;
    for (int i = 0; i < n; i++) {
        errors += r[i].status != 200;
        ms[i] = r[i].ms;
    }
    for (int node = 0; node < 2; node++) {
        double lo = 1e12, hi = 0;
        for (int i = node; i < n; i += 2) {
            lo = r[i].ms < lo ? r[i].ms : lo;
            hi = r[i].ms > hi ? r[i].ms : hi;
        }
        fprintf(stderr, "node %d answers: first %.1f ms, last %.1f ms\n", node, lo, hi);
    }
    qsort(ms, (size_t)n, sizeof *ms, cmp);
    long long calls = stub_stat(&s.stub, "total");
    long long eq = stub_stat(&s.stub, "/maplestory/v1/character/item-equipment");
    printf("{\"bench\": \"singleflight_upstream_calls\", \"value\": %lld, \"unit\": \"calls\"}\n",
           calls); /* goal: 1 */
    printf("{\"bench\": \"singleflight_equipment_calls\", \"value\": %lld, \"unit\": \"calls\"}\n",
           eq);
    printf("{\"bench\": \"singleflight_upstream_latency\", \"value\": %d, \"unit\": \"ms\"}\n",
           latency);
    printf("{\"bench\": \"singleflight_p50\", \"value\": %.1f, \"unit\": \"ms\"}\n", ms[n / 2]);
    printf("{\"bench\": \"singleflight_p99\", \"value\": %.1f, \"unit\": \"ms\"}\n",
           ms[(size_t)(n * 0.99) < (size_t)n ? (size_t)(n * 0.99) : (size_t)n - 1]);
    printf("{\"bench\": \"singleflight_max\", \"value\": %.1f, \"unit\": \"ms\"}\n", ms[n - 1]);
    printf("{\"bench\": \"singleflight_errors\", \"value\": %d, \"unit\": \"requests\"}\n", errors);
    fflush(stdout);
    /* where the time went: each node's counters, summed over its shards */
    for (int i = 0; i < 2; i++) {
        static const char *ev[] = {"load",    "calc_ms", "coalesced", "latch_wait",  "latch_notice",
                                   "l2_hit",  "l2_miss", "refused",   "redis_error", "l3_hit",
                                   "l3_miss", "l1_hit",  "l1_miss"};
        fprintf(stderr, "node %d:", i);
        for (size_t k = 0; k < sizeof ev / sizeof *ev; k++)
            fprintf(stderr, " %s %lld", ev[k], cache_counter(s.node[i].http_port, ev[k]));
        fprintf(stderr, "\n");
    }
    /* the same stampede again, now warm (L1 on both nodes): what the
     * connections alone cost, for comparison */
    mreq_free(r, n);
    for (int i = 0; i < n; i++)
        r[i].status = 0;
    mreq_run(r, n, 60000);
    for (int i = 0; i < n; i++)
        ms[i] = r[i].ms;
    qsort(ms, (size_t)n, sizeof *ms, cmp);
    printf("{\"bench\": \"singleflight_warm_p50\", \"value\": %.1f, \"unit\": \"ms\"}\n",
           ms[n / 2]);
    printf("{\"bench\": \"singleflight_warm_p99\", \"value\": %.1f, \"unit\": \"ms\"}\n",
           ms[(size_t)(n * 0.99) < (size_t)n ? (size_t)(n * 0.99) : (size_t)n - 1]);
    fflush(stdout);
    mreq_free(r, n);
    free(r);
    free(ms);
    stack_stop(&s);
    return 0;
}
