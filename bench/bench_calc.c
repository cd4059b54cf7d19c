/* bench_calc - throughput of the expectation engine on one thread.
 *
 *   bench_calc [--runs N] [--seconds S] FILE...
 *
 * Prints JSON lines {"bench": NAME, "value": X, "unit": U}, each the median
 * of N runs (default 5) of about S seconds (default 0.3):
 *   calc.parse           MB/s of item-equipment JSON parsed (one reused parser)
 *   calc.document.cold   documents/s built from parsed equipment, no memo
 *   calc.document.warm   documents/s with memoised cube/flame results
 *   calc.document.warm_with_parse  documents/s including parsing the JSON
 * Documents cycle over the given files. The cube table comes from
 * $MX_CUBE_TABLE, else the configure-time MX_SHARED_DIR.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mx_doc.h"
#include "mx_equip.h"
#include "mx_err.h"

#ifndef MX_SHARED_DIR_DEFAULT
#define MX_SHARED_DIR_DEFAULT "../shared"
#endif
#define MAX_FILES 16

struct input {
    char *json;
    size_t len;
    struct mx_equip *eq;
};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *b = NULL;
    long n;
    if (!f)
        return NULL;
    if (!fseek(f, 0, SEEK_END) && (n = ftell(f)) >= 0 && !fseek(f, 0, SEEK_SET)) {
        b = malloc((size_t)n + 1);
        if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
            free(b);
            b = NULL;
        }
        *len = (size_t)n;
    }
    fclose(f);
    return b;
}

static void emit(const char *name, double v, const char *unit)
{
    printf("{\"bench\": \"%s\", \"value\": %.1f, \"unit\": \"%s\"}\n", name, v, unit);
}

int main(int argc, char **argv)
{
    struct input in[MAX_FILES];
    int nin = 0, runs = 5, rc = 1;
    double secs = 0.3, samples[64];
    char err[MX_EQUIP_ERR_MAX], tpath[4096];
    struct mx_equip_parser *p = NULL;
    struct mx_cube_table *t = NULL;
    struct mx_calc *cold = NULL, *warm = NULL;
    struct mx_doc_opts o;
    struct mx_jsonw w;

    memset(in, 0, sizeof in);
    mx_jsonw_init(&w, MX_DOC_MAX_BYTES);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--runs") && i + 1 < argc) {
            runs = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--seconds") && i + 1 < argc) {
            secs = atof(argv[++i]);
        } else if (argv[i][0] == '-' || nin == MAX_FILES) {
            goto usage;
        } else {
            in[nin].json = slurp(argv[i], &in[nin].len);
            if (!in[nin].json) {
                fprintf(stderr, "bench_calc: cannot read %s\n", argv[i]);
                goto out;
            }
            nin++;
        }
    }
    if (!nin || runs < 1 || runs > 64 || !(secs > 0))
        goto usage;
    const char *env = getenv("MX_CUBE_TABLE");
    snprintf(tpath, sizeof tpath, "%s", env && *env ? env
             : MX_SHARED_DIR_DEFAULT "/data/cube_probability_black.csv");
    if (mx_cube_table_load(tpath, &t, NULL)) {
        fprintf(stderr, "bench_calc: cannot load cube table %s\n", tpath);
        goto out;
    }
    if (mx_equip_parser_new(&p) || mx_calc_new(t, 0, &cold) || mx_calc_new(t, 8192, &warm))
        goto out;
    for (int i = 0; i < nin; i++) {
        in[i].eq = malloc(sizeof *in[i].eq);
        if (!in[i].eq || mx_equip_parse(p, in[i].json, in[i].len, in[i].eq, err, sizeof err)) {
            fprintf(stderr, "bench_calc: %s: %s\n", argv[i + 1], err);
            goto out;
        }
    }
    mx_doc_opts_default(&o);
    o.calculated_at = "2025-03-01T00:00:00";

    /* parse */
    for (int r = 0; r < runs; r++) {
        double t0 = now(), t1;
        size_t bytes = 0;
        long n = 0;
        do {
            struct input *x = &in[n++ % nin];
            mx_equip_parse(p, x->json, x->len, x->eq, err, sizeof err);
            bytes += x->len;
        } while ((t1 = now()) - t0 < secs);
        samples[r] = (double)bytes / (t1 - t0) / 1e6;
    }
    emit("calc.parse", median(samples, runs), "MB/s");

    /* documents: cold (no memo), warm (memo filled once beforehand) */
    struct mx_calc *ctx[2] = {cold, warm};
    static const char *names[2] = {"calc.document.cold", "calc.document.warm"};
    for (int k = 0; k < 2; k++) {
        for (int i = 0; i < nin; i++) { /* warm-up (fills the memo for "warm") */
            mx_jsonw_reset(&w);
            mx_doc_build(ctx[k], in[i].eq, &o, &w);
        }
        for (int r = 0; r < runs; r++) {
            double t0 = now(), t1;
            long n = 0;
            do {
                mx_jsonw_reset(&w);
                if (mx_doc_build(ctx[k], in[n++ % nin].eq, &o, &w))
                    goto out;
            } while ((t1 = now()) - t0 < secs);
            samples[r] = (double)n / (t1 - t0);
        }
        emit(names[k], median(samples, runs), "documents/s");
    }
    for (int r = 0; r < runs; r++) {
        double t0 = now(), t1;
        long n = 0;
        do {
            struct input *x = &in[n++ % nin];
            mx_equip_parse(p, x->json, x->len, x->eq, err, sizeof err);
            mx_jsonw_reset(&w);
            if (mx_doc_build(warm, x->eq, &o, &w))
                goto out;
        } while ((t1 = now()) - t0 < secs);
        samples[r] = (double)n / (t1 - t0);
    }
    emit("calc.document.warm_with_parse", median(samples, runs), "documents/s");
    rc = 0;
    goto out;
usage:
    fprintf(stderr, "usage: bench_calc [--runs N] [--seconds S] FILE...\n");
    rc = 2;
out:
    for (int i = 0; i < nin; i++) {
        free(in[i].json);
        free(in[i].eq);
    }
    mx_jsonw_fini(&w);
    mx_calc_free(cold);
    mx_calc_free(warm);
    mx_equip_parser_free(p);
    mx_cube_table_free(t);
    return rc;
}
