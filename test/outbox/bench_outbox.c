/* bench_outbox.c - outbox relay throughput and commit -> delivery lag
 * (run by bench/outbox.sh; not a test).
 *
 * One mxnode relays to mxstub's webhook sink, with a real mariadbd and
 * redis-server. Three phases:
 *   A. N rows committed at once, sink answering at once: events/s from
 *      the commit to the last row DONE;
 *   B. the same with the sink answering after 50 ms;
 *   C. rows committed at a steady rate below the relay's capacity: p50 /
 *      p99 / max of delivered_at - created_at (commit to completion
 *      recorded, which is after the sink's 2xx) over every row.
 * Usage: bench_outbox [N] [RATE] [SECONDS] [CONCURRENCY]
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ob_harness.h"

static struct ob_world W;

static long long not_done(const char *prefix)
{
    return ob_sql_int(&W,
                      "SELECT COUNT(*) FROM mx.outbox WHERE status <> 'DONE' AND"
                      " idempotency_key LIKE '%s%%'",
                      prefix);
}

static double drain(const char *prefix, long n)
{
    int64_t t0 = ob_now_ms();
    if (ob_bulk(&W, "BENCH_EVENT", prefix, 1, n) != 0) {
        fprintf(stderr, "insert failed\n");
        exit(1);
    }
    int64_t t1 = ob_now_ms();
    while (not_done(prefix) > 0) {
        if (ob_now_ms() - t1 > 300000) {
            fprintf(stderr, "not drained in 300 s\n");
            exit(1);
        }
        usleep(20000);
    }
    int64_t t2 = ob_now_ms();
    printf("  insert+commit of %ld rows: %lld ms; commit -> all DONE: %lld ms\n", n,
           (long long)(t1 - t0), (long long)(t2 - t1));
    return (double)n * 1000.0 / (double)(t2 - t1 > 0 ? t2 - t1 : 1);
}

static long long pct(const char *prefix, double p)
{
    return ob_sql_int(&W,
                      "SELECT CAST(MAX(x) AS SIGNED) FROM (SELECT PERCENTILE_CONT(%f) WITHIN GROUP"
                      " (ORDER BY TIMESTAMPDIFF(MICROSECOND, created_at, delivered_at) / 1000)"
                      " OVER () x FROM mx.outbox WHERE idempotency_key LIKE '%s%%') t",
                      p, prefix);
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 20000;
    long rate = argc > 2 ? atol(argv[2]) : 2000;
    long secs = argc > 3 ? atol(argv[3]) : 10;
    const char *conc = argc > 4 ? argv[4] : "256";
    static char cenv[64];
    snprintf(cenv, sizeof cenv, "MX_OUTBOX_CONCURRENCY=%s", conc);
    const char *extra[] = {cenv,
                           "MX_OUTBOX_BATCH=1000",
                           "MX_OUTBOX_POLL_MS=20",
                           "MX_MYSQL_POOL=4",
                           "MX_LOG_LEVEL=warn",
                           NULL};
    if (ob_start(&W, 1, extra) != 0) {
        fprintf(stderr, "cannot start the servers\n");
        return 1;
    }
    while (ob_holder(&W, -1) < 0)
        usleep(50000);
    printf("outbox relay benchmark: 1 mxnode (batch 1000, concurrency %s), mariadbd,"
           " mxstub sink\n",
           conc);

    printf("A. sink answers at once, %ld events\n", n);
    double a = drain("a:", n);
    printf("  => %.0f events/s (goal >= 5000)\n", a);

    ob_sink_ctl(&W, "latency_ms=50");
    printf("B. sink answers after 50 ms, %ld events\n", n / 2);
    double b = drain("b:", n / 2);
    printf("  => %.0f events/s (bound by concurrency / 50 ms = %.0f/s)\n", b, atof(conc) / 0.050);
    ob_sink_ctl(&W, "latency_ms=0");

    printf("C. steady %ld events/s for %ld s, sink answers at once\n", rate, secs);
    long chunk = rate / 20, done = 0; /* every 50 ms */
    int64_t t0 = ob_now_ms();
    for (long k = 0; k < secs * 20; k++) {
        int64_t due = t0 + k * 50;
        while (ob_now_ms() < due)
            usleep(1000);
        if (ob_bulk(&W, "BENCH_EVENT", "c:", done + 1, chunk) != 0) {
            fprintf(stderr, "insert failed\n");
            return 1;
        }
        done += chunk;
    }
    while (not_done("c:") > 0)
        usleep(20000);
    printf("  %ld events; lag commit -> DONE: p50 %lld ms, p99 %lld ms, max %lld ms"
           " (goal p99 <= 1000 ms)\n",
           done, pct("c:", 0.5), pct("c:", 0.99),
           ob_sql_int(&W, "SELECT CAST(MAX(TIMESTAMPDIFF(MICROSECOND, created_at, delivered_at))"
                          " / 1000 AS SIGNED) FROM mx.outbox WHERE idempotency_key LIKE 'c:%%'"));
    printf("  relay's own lag (commit -> 2xx) over all phases: p99 %lld ms\n",
           ob_outbox_int(&W, 0, "lag_p99_ms"));
    printf("sink: accepted %lld, unique %lld, repeats %lld\n", ob_sink(&W, "accepted"),
           ob_sink(&W, "unique"), ob_sink(&W, "duplicates"));
    ob_stop(&W);
    return 0;
}
