/* mxcalc - the expectation calculator offline: the expectation document of an
 * item-equipment JSON file, or one starforce or cube calculation.
 *
 *   mxcalc [--preset N] [--no-star-catch] [--no-discount] [--no-sunday]
 *          [--table CSV] [--ign NAME] [--calculated-at TEXT] FILE
 *   mxcalc starforce --level L --from S --to T [--star-catch] [--discount]
 *          [--sunday] [--shield] [--scroll]
 *   mxcalc cube --slot SLOT --level L --grade GRADE --line TEXT [--line TEXT
 *          [--line TEXT]] [--table CSV] [--cube-type TYPE]
 *
 * Cube table: --table, else $MX_CUBE_TABLE, else <repo>/../shared/data/
 * cube_probability_black.csv where <repo> is two directories above the
 * executable (build/bin/mxcalc), else the MX_SHARED_DIR given at configure
 * time. The additional-potential table is added from $MX_CUBE_TABLE_ADDITIONAL
 * ("" for none), else from cube_probability_additional.csv beside the cube
 * table when that file exists. Exit status: 0 ok, 1 bad input file or
 * table, 2 bad arguments.
 */
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mx_cube.h"
#include "mx_doc.h"
#include "mx_equip.h"
#include "mx_err.h"
#include "mx_jsonw.h"
#include "mx_starforce.h"

#ifndef MX_SHARED_DIR_DEFAULT
#define MX_SHARED_DIR_DEFAULT "../shared"
#endif
#define TABLE_REL "data/cube_probability_black.csv"

static void usage(void)
{
    fputs("usage: mxcalc [--preset N] [--no-star-catch] [--no-discount] [--no-sunday]\n"
          "              [--table CSV] [--ign NAME] [--calculated-at TEXT] FILE\n"
          "       mxcalc starforce --level L --from S --to T [--star-catch] [--discount]\n"
          "              [--sunday] [--shield] [--scroll]\n"
          "       mxcalc cube --slot SLOT --level L --grade GRADE --line TEXT [--line TEXT]\n"
          "              [--line TEXT] [--table CSV] [--cube-type TYPE]\n",
          stderr);
}

static int parse_num(const char *s, int lo, int hi, int *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

/* Picks the cube table path (see the file comment). */
static const char *table_path(const char *opt, char *buf, size_t cap)
{
    const char *env = getenv("MX_CUBE_TABLE");
    char exe[PATH_MAX];
    ssize_t n;
    if (opt)
        return opt;
    if (env && *env)
        return env;
    n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *bin = dirname(exe); /* <repo>/build/bin */
        snprintf(buf, cap, "%s/../../../shared/" TABLE_REL, bin);
        if (access(buf, R_OK) == 0)
            return buf;
    }
    snprintf(buf, cap, "%s/" TABLE_REL, MX_SHARED_DIR_DEFAULT);
    return buf;
}

static void table_note(const char *path, const struct mx_cube_load_stats *st)
{
    if (st->rows_rejected || st->groups_bad_sum)
        fprintf(stderr,
                "mxcalc: cube table %s: %ld rows, %ld rejected (first at line %ld; 0: none), "
                "%ld merged, %ld of %ld groups with rates not summing to 1\n",
                path, st->rows_total, st->rows_rejected, st->first_rejected_line, st->rows_merged,
                st->groups_bad_sum, st->groups);
}

static int load_table(const char *path, struct mx_cube_table **t)
{
    struct mx_cube_load_stats st;
    char abuf[PATH_MAX + 64], dbuf[PATH_MAX];
    const char *add = getenv("MX_CUBE_TABLE_ADDITIONAL");
    int rc = mx_cube_table_load(path, t, &st);
    if (rc) {
        fprintf(stderr, "mxcalc: cube table %s: %s\n", path, mx_strerror(rc));
        return rc;
    }
    table_note(path, &st);
    if (!add) { /* beside the main table, when there */
        snprintf(dbuf, sizeof dbuf, "%s", path);
        snprintf(abuf, sizeof abuf, "%s/cube_probability_additional.csv", dirname(dbuf));
        add = access(abuf, R_OK) == 0 ? abuf : "";
    }
    if (!add[0])
        return 0;
    if ((rc = mx_cube_table_add(*t, add, &st))) {
        fprintf(stderr, "mxcalc: additional cube table %s: %s\n", add, mx_strerror(rc));
        mx_cube_table_free(*t);
        *t = NULL;
        return rc;
    }
    table_note(add, &st);
    return 0;
}

static int read_file(const char *path, char **buf, size_t *len)
{
    FILE *f = fopen(path, "rb");
    long sz;
    int rc = 0;
    *buf = NULL;
    if (!f)
        return MX_EIO;
    if (fseek(f, 0, SEEK_END) || (sz = ftell(f)) < 0 || fseek(f, 0, SEEK_SET)) {
        rc = MX_EIO;
        goto out_close;
    }
    if ((unsigned long)sz > MX_EQUIP_MAX_INPUT) {
        rc = MX_ETOOBIG;
        goto out_close;
    }
    *buf = malloc((size_t)sz + 1);
    if (!*buf) {
        rc = MX_ENOMEM;
        goto out_close;
    }
    if (fread(*buf, 1, (size_t)sz, f) != (size_t)sz) {
        free(*buf);
        *buf = NULL;
        rc = MX_EIO;
        goto out_close;
    }
    *len = (size_t)sz;
out_close:
    fclose(f);
    return rc;
}

static int cmd_starforce(int argc, char **argv)
{
    static const struct option lo[] = {
        {"level", required_argument, 0, 'l'}, {"from", required_argument, 0, 'f'},
        {"to", required_argument, 0, 't'},    {"star-catch", no_argument, 0, 'c'},
        {"discount", no_argument, 0, 'd'},    {"sunday", no_argument, 0, 's'},
        {"shield", no_argument, 0, 'p'},      {"scroll", no_argument, 0, 'r'},
        {"help", no_argument, 0, 'h'},        {0, 0, 0, 0}};
    struct mx_sf_opts o = {0};
    struct mx_sf_result r;
    int level = -1, from = 0, to = -1, ch;
    bool scroll = false;

    optind = 1;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 'l':
            if (parse_num(optarg, 0, 300, &level))
                goto bad;
            break;
        case 'f':
            if (parse_num(optarg, 0, 30, &from))
                goto bad;
            break;
        case 't':
            if (parse_num(optarg, 0, 30, &to))
                goto bad;
            break;
        case 'c':
            o.star_catch = true;
            break;
        case 'd':
            o.discount = true;
            break;
        case 's':
            o.sunday = true;
            break;
        case 'p':
            o.shield = true;
            break;
        case 'r':
            scroll = true;
            break;
        default:
            goto bad;
        }
    }
    if (optind != argc || level < 0 || to < 0)
        goto bad;
    if (mx_sf_expect(level, from, to, scroll, &o, &r)) {
        fprintf(stderr, "mxcalc: starforce: need 0 <= from <= to <= %d\n",
                scroll ? MX_SF_SCROLL_MAX_STAR : MX_SF_MAX_STAR);
        goto bad;
    }
    struct mx_jsonw w;
    mx_jsonw_init(&w, 4096);
    mx_jsonw_obj_open(&w);
    mx_jsonw_kint(&w, "expectedCost", (int64_t)llround(r.cost));
    mx_jsonw_kdouble(&w, "expectedDestroyCount", r.destroys);
    mx_jsonw_kdouble(&w, "expectedAttempts", r.attempts);
    mx_jsonw_obj_close(&w);
    printf("%s\n", w.buf);
    mx_jsonw_fini(&w);
    return 0;
bad:
    usage();
    return 2;
}

static enum mx_grade grade_arg(const char *s)
{
    static const char *const en[] = {"", "rare", "epic", "unique", "legendary"};
    enum mx_grade g = mx_equip_grade_from_text(s);
    for (int i = 1; i <= 4 && g == MX_GRADE_UNKNOWN; i++)
        if (!strcasecmp(s, en[i]))
            g = (enum mx_grade)i;
    return g;
}

static int cmd_cube(int argc, char **argv)
{
    static const struct option lo[] = {
        {"slot", required_argument, 0, 's'},  {"level", required_argument, 0, 'l'},
        {"grade", required_argument, 0, 'g'}, {"line", required_argument, 0, 'n'},
        {"table", required_argument, 0, 't'}, {"cube-type", required_argument, 0, 'c'},
        {"help", no_argument, 0, 'h'},        {0, 0, 0, 0}};
    struct mx_cube_query q = {"BLACK", NULL, MX_GRADE_NONE, -1, {NULL, NULL, NULL}};
    const char *topt = NULL;
    char pbuf[PATH_MAX + 64];
    struct mx_cube_table *t = NULL;
    struct mx_cube_result r;
    int nlines = 0, ch, rc;

    optind = 1;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 's':
            q.item_slot = optarg;
            break;
        case 'l':
            if (parse_num(optarg, 0, 300, &q.level))
                goto bad;
            break;
        case 'g':
            q.grade = grade_arg(optarg);
            break;
        case 'n':
            if (nlines == 3)
                goto bad;
            q.lines[nlines++] = optarg;
            break;
        case 't':
            topt = optarg;
            break;
        case 'c':
            q.cube_type = optarg;
            break;
        default:
            goto bad;
        }
    }
    if (optind != argc || !q.item_slot || q.level < 0 || q.grade == MX_GRADE_NONE ||
        q.grade == MX_GRADE_UNKNOWN || nlines == 0)
        goto bad;
    if (load_table(table_path(topt, pbuf, sizeof pbuf), &t))
        return 1;
    rc = mx_cube_expect(t, &q, &r);
    mx_cube_table_free(t);
    if (rc) {
        fprintf(stderr, "mxcalc: cube: %s\n", mx_strerror(rc));
        return 1;
    }
    struct mx_jsonw w;
    mx_jsonw_init(&w, 4096);
    mx_jsonw_obj_open(&w);
    if (r.ok) {
        mx_jsonw_kdouble(&w, "probability", r.probability);
        mx_jsonw_kdouble(&w, "expectedTrials", r.expected_trials);
    } else {
        mx_jsonw_knull(&w, "probability");
        mx_jsonw_knull(&w, "expectedTrials");
    }
    mx_jsonw_kstr(&w, "engine",
                  r.engine == MX_CUBE_ENGINE_STAT_SUM    ? "STAT_SUM"
                  : r.engine == MX_CUBE_ENGINE_ORDERINGS ? "ORDERINGS"
                                                         : "NONE");
    if (r.engine == MX_CUBE_ENGINE_STAT_SUM) {
        mx_jsonw_kstr(&w, "stat", r.stat);
        mx_jsonw_kint(&w, "statTarget", r.target);
    }
    mx_jsonw_kint(&w, "levelBand", r.level_band);
    mx_jsonw_kint(&w, "expectedCost", r.ok ? (int64_t)llround(r.expected_cost) : 0);
    if (!r.ok)
        mx_jsonw_kstr(&w, "reason", r.reason);
    mx_jsonw_obj_close(&w);
    printf("%s\n", w.buf);
    mx_jsonw_fini(&w);
    return 0;
bad:
    usage();
    return 2;
}

static int cmd_doc(int argc, char **argv)
{
    static const struct option lo[] = {{"preset", required_argument, 0, 'p'},
                                       {"no-star-catch", no_argument, 0, 'c'},
                                       {"no-discount", no_argument, 0, 'd'},
                                       {"no-sunday", no_argument, 0, 's'},
                                       {"table", required_argument, 0, 't'},
                                       {"ign", required_argument, 0, 'i'},
                                       {"calculated-at", required_argument, 0, 'a'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
    struct mx_doc_opts o;
    const char *topt = NULL;
    char pbuf[PATH_MAX + 64], when[32], err[MX_EQUIP_ERR_MAX];
    struct mx_cube_table *t = NULL;
    struct mx_equip_parser *p = NULL;
    struct mx_equip *eq = NULL;
    struct mx_calc *calc = NULL;
    char *json = NULL;
    size_t len = 0;
    int ch, rc, status = 1;

    mx_doc_opts_default(&o);
    optind = 1;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 'p':
            if (parse_num(optarg, 1, 3, &o.preset))
                goto bad;
            break;
        case 'c':
            o.star_catch = false;
            break;
        case 'd':
            o.discount = false;
            break;
        case 's':
            o.sunday = false;
            break;
        case 't':
            topt = optarg;
            break;
        case 'i':
            o.user_ign = optarg;
            break;
        case 'a':
            o.calculated_at = optarg;
            break;
        default:
            goto bad;
        }
    }
    if (optind != argc - 1)
        goto bad;
    if (!o.calculated_at) {
        time_t now = time(NULL);
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
        o.calculated_at = when;
    }
    if ((rc = read_file(argv[optind], &json, &len))) {
        fprintf(stderr, "mxcalc: %s: %s\n", argv[optind], mx_strerror(rc));
        goto out;
    }
    if (load_table(table_path(topt, pbuf, sizeof pbuf), &t))
        goto out;
    eq = malloc(sizeof *eq);
    if (!eq || mx_equip_parser_new(&p) || mx_calc_new(t, 4096, &calc)) {
        fprintf(stderr, "mxcalc: out of memory\n");
        goto out;
    }
    if ((rc = mx_equip_parse(p, json, len, eq, err, sizeof err))) {
        fprintf(stderr, "mxcalc: %s: %s\n", argv[optind], err);
        goto out;
    }
    struct mx_jsonw w;
    mx_jsonw_init(&w, MX_DOC_MAX_BYTES);
    rc = mx_doc_build(calc, eq, &o, &w);
    if (rc) {
        fprintf(stderr, "mxcalc: %s: %s\n", argv[optind],
                rc == MX_ENOTFOUND ? "no such preset" : mx_strerror(rc));
    } else {
        printf("%s\n", w.buf);
        status = 0;
    }
    mx_jsonw_fini(&w);
out:
    mx_calc_free(calc);
    mx_equip_parser_free(p);
    mx_cube_table_free(t);
    free(eq);
    free(json);
    return status;
bad:
    usage();
    return 2;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "starforce"))
        return cmd_starforce(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "cube"))
        return cmd_cube(argc - 1, argv + 1);
    return cmd_doc(argc, argv);
}
