/* bench_calc - throughput of the expectation engine on one thread (one core).
 *
 *   bench_calc [--runs N] [--seconds S] [--cold-only] FILE...
 *
 * Prints JSON lines {"bench": NAME, "value": X, "unit": U, ...}, each the
 * median of N runs (default 5) of about S seconds (default 0.3) of this
 * thread's CPU time (per core; the load average before and after is
 * printed too):
 *   calc.parse                 MB/s of item-equipment JSON parsed (one reused parser)
 *   calc.document.cold.<FILE>  documents/s of characters never seen before: the
 *                              result memos are emptied before every document, so
 *                              every cube, starforce and flame answer of the
 *                              character is computed; only the flame distributions,
 *                              which depend on the item structure (level tier, class
 *                              weights, boss flag, weapon attack) and not on the
 *                              character, are kept, as in the service. Also prints
 *                              the share of time per calculator, the ratio to the
 *                              replaced service's 235 requests/s (DESIGN.md section
 *                              10) and to the 2,000/s goal of issue 13.
 *   calc.document.first.<FILE> documents/s with a new calculator context (no
 *                              memo) per document: nothing kept at all, the flame
 *                              distributions built for every document (a node's
 *                              first documents after start, per structure).
 *   calc.document.warm         documents/s with the memos filled beforehand
 *   calc.document.warm_with_parse  the same including parsing the JSON
 * Cold and first cycle over nothing: each figure is one fixture. The cube
 * tables come from $MX_CUBE_TABLE and $MX_CUBE_TABLE_ADDITIONAL, else the
 * configure-time MX_SHARED_DIR's data/; the additional table is required
 * (the figure includes additional potential).
 */
#include <stdbool.h>
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
#define ANCHOR_RPS 235.0 /* the replaced service: 235 requests/s on 2 vCPU */
#define GOAL_COLD 2000.0 /* issue 13: cold documents/s per core */

struct input {
    const char *path, *name;
    char *json;
    size_t len;
    struct mx_equip *eq;
};

/* Rates are per second of this thread's CPU time, i.e. per core: the
 * machine is shared (other jobs steal wall time from a single thread, which
 * would make a wall-clock rate a measure of the load, not of the code).
 * Each result also says how much wall time the CPU time was a share of. */
static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double wall(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void loadavg(const char *when)
{
    char b[128] = "?";
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (!fgets(b, sizeof b, f))
            snprintf(b, sizeof b, "?");
        fclose(f);
    }
    b[strcspn(b, "\n")] = '\0';
    printf("{\"loadavg_%s\": \"%s\"}\n", when, b);
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

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

static int load_tables(struct mx_cube_table **t)
{
    char p1[4096], p2[4096];
    const char *e1 = getenv("MX_CUBE_TABLE"), *e2 = getenv("MX_CUBE_TABLE_ADDITIONAL");
    snprintf(p1, sizeof p1, "%s",
             e1 && *e1 ? e1 : MX_SHARED_DIR_DEFAULT "/data/cube_probability_black.csv");
    snprintf(p2, sizeof p2, "%s",
             e2 && *e2 ? e2 : MX_SHARED_DIR_DEFAULT "/data/cube_probability_additional.csv");
    if (mx_cube_table_load(p1, t, NULL)) {
        fprintf(stderr, "bench_calc: cannot load cube table %s\n", p1);
        return -1;
    }
    if (mx_cube_table_add(*t, p2, NULL)) {
        fprintf(stderr, "bench_calc: cannot load additional cube table %s\n", p2);
        return -1;
    }
    return 0;
}

/* documents/s over one fixture: cold (memos emptied per document) or first
 * (a new context per document); the calculator shares of the last run. */
static int run_cold(const struct mx_cube_table *t, struct input *x, const struct mx_doc_opts *o,
                    struct mx_jsonw *w, int runs, double secs, bool first, double *rate,
                    struct mx_calc_stats *st)
{
    double samples[64];
    struct mx_calc *c = NULL;
    if (mx_calc_new(t, 4096, &c))
        return -1;
    mx_jsonw_reset(w);
    if (mx_doc_build(c, x->eq, o, w)) /* structures seen once: the service's state */
        goto fail;
    for (int r = 0; r < runs; r++) {
        double t0 = now(), t1;
        long n = 0;
        if (!first) { /* fresh counters per run */
            mx_calc_free(c);
            c = NULL;
            if (mx_calc_new(t, 4096, &c))
                return -1;
            mx_jsonw_reset(w);
            mx_doc_build(c, x->eq, o, w);
            mx_calc_set_timing(c, true);
            t0 = now();
        }
        do {
            if (first) { /* no memo to allocate: presets still share items */
                mx_calc_free(c);
                c = NULL;
                if (mx_calc_new(t, 0, &c))
                    return -1;
            } else {
                mx_calc_clear_memo(c);
            }
            mx_jsonw_reset(w);
            if (mx_doc_build(c, x->eq, o, w))
                goto fail;
            n++;
        } while ((t1 = now()) - t0 < secs);
        samples[r] = (double)n / (t1 - t0);
    }
    mx_calc_get_stats(c, st);
    mx_calc_free(c);
    *rate = median(samples, runs);
    return 0;
fail:
    mx_calc_free(c);
    return -1;
}

int main(int argc, char **argv)
{
    struct input in[MAX_FILES];
    int nin = 0, runs = 5, rc = 1;
    bool cold_only = false; /* for profiling the cold path alone */
    double secs = 0.3, samples[64];
    char err[MX_EQUIP_ERR_MAX];
    struct mx_equip_parser *p = NULL;
    struct mx_cube_table *t = NULL;
    struct mx_calc *warm = NULL;
    struct mx_doc_opts o;
    struct mx_jsonw w;

    memset(in, 0, sizeof in);
    mx_jsonw_init(&w, MX_DOC_MAX_BYTES);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--runs") && i + 1 < argc) {
            runs = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--seconds") && i + 1 < argc) {
            secs = atof(argv[++i]);
        } else if (!strcmp(argv[i], "--cold-only")) {
            cold_only = true;
        } else if (argv[i][0] == '-' || nin == MAX_FILES) {
            goto usage;
        } else {
            in[nin].path = argv[i];
            in[nin].name = base_name(argv[i]);
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
    loadavg("before");
    double wall0 = wall(), cpu0 = now();
    if (load_tables(&t))
        goto out;
    if (mx_equip_parser_new(&p) || mx_calc_new(t, 8192, &warm))
        goto out;
    for (int i = 0; i < nin; i++) {
        in[i].eq = malloc(sizeof *in[i].eq);
        if (!in[i].eq || mx_equip_parse(p, in[i].json, in[i].len, in[i].eq, err, sizeof err)) {
            fprintf(stderr, "bench_calc: %s: %s\n", in[i].path, err);
            goto out;
        }
    }
    mx_doc_opts_default(&o);
    o.calculated_at = "2025-03-01T00:00:00";

    /* parse */
    for (int r = 0; r < runs && !cold_only; r++) {
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
    if (!cold_only)
        emit("calc.parse", median(samples, runs), "MB/s");

    /* cold and first, per fixture */
    for (int i = 0; i < nin; i++) {
        struct mx_calc_stats st;
        double rate, first;
        char name[160];
        first = 0;
        if (run_cold(t, &in[i], &o, &w, runs, secs, false, &rate, &st) ||
            (!cold_only &&
             run_cold(t, &in[i], &o, &w, runs, secs, true, &first, &(struct mx_calc_stats){0}))) {
            fprintf(stderr, "bench_calc: %s: document failed\n", in[i].path);
            goto out;
        }
        double tot = st.ns_total ? (double)st.ns_total : 1.0;
        double cube = (double)st.ns_cube / tot, sf = (double)st.ns_starforce / tot,
               fl = (double)st.ns_flame / tot;
        printf("{\"bench\": \"calc.document.cold.%s\", \"value\": %.1f, \"unit\": "
               "\"documents/s\", \"us_per_document\": %.1f, \"share\": {\"cube\": %.3f, "
               "\"starforce\": %.3f, \"flame\": %.3f, \"writing_and_rest\": %.3f}, "
               "\"vs_anchor_235rps\": %.2f, \"vs_goal_2000\": %.2f, \"flame_structures\": %zu}\n",
               in[i].name, rate, 1e6 / rate, cube, sf, fl, 1.0 - cube - sf - fl, rate / ANCHOR_RPS,
               rate / GOAL_COLD, st.flame.entries);
        snprintf(name, sizeof name, "calc.document.first.%s", in[i].name);
        if (!cold_only)
            emit(name, first, "documents/s");
    }
    if (cold_only) {
        loadavg("after");
        rc = 0;
        goto out;
    }

    /* warm: memo filled once beforehand, cycling over every fixture */
    for (int i = 0; i < nin; i++) {
        mx_jsonw_reset(&w);
        mx_doc_build(warm, in[i].eq, &o, &w);
    }
    for (int r = 0; r < runs; r++) {
        double t0 = now(), t1;
        long n = 0;
        do {
            mx_jsonw_reset(&w);
            if (mx_doc_build(warm, in[n++ % nin].eq, &o, &w))
                goto out;
        } while ((t1 = now()) - t0 < secs);
        samples[r] = (double)n / (t1 - t0);
    }
    emit("calc.document.warm", median(samples, runs), "documents/s");
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
    printf("{\"cpu_share_of_wall\": %.2f}\n", (now() - cpu0) / (wall() - wall0));
    loadavg("after");
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
    mx_calc_free(warm);
    mx_equip_parser_free(p);
    mx_cube_table_free(t);
    return rc;
}
