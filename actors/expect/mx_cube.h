/* mx_cube.h - potential ("cube") probability table and the two engines that
 * turn an item's three lines into a probability, expected trials and cost.
 *
 * The table is the CSV of DESIGN.md section 8 (option, rate, slot, grade,
 * level band, item slot, cube type), loaded once, read-only afterwards: a
 * loaded table may be shared by any number of threads without locks.
 * Option texts are normalised (spaces and ':' removed) on both sides so that
 * "STR : +12%" and "STR +12%" match.
 */
#ifndef MX_CUBE_H
#define MX_CUBE_H

#include <stdbool.h>
#include <stddef.h>

#include "mx_equip.h"

#define MX_CUBE_MAX_FILE (64u << 20) /* bytes of CSV accepted */
#define MX_CUBE_MAX_ROWS 500000      /* rows accepted */
#define MX_CUBE_MAX_LINE 1024        /* bytes per CSV line */
#define MX_CUBE_OPT_MAX 128          /* bytes incl. NUL of one option text */
#define MX_CUBE_REASON_MAX 160       /* bytes of a "reason" text */
#define MX_CUBE_RATE_TOLERANCE 0.01  /* |sum of a group's rates - 1| allowed */

struct mx_cube_table;

/* What loading found; the caller logs it. */
struct mx_cube_load_stats {
    long rows_total; /* data rows read (header excluded) */
    long rows_accepted;
    long rows_rejected;       /* malformed: field count, rate, slot, grade, level... */
    long rows_merged;         /* accepted rows repeating an option of their group: rates added */
    long groups;              /* distinct (cube type, item slot, grade, level, slot) */
    long groups_bad_sum;      /* groups whose rates do not sum to 1 +- tolerance */
    long first_rejected_line; /* 1-based line number of the first rejected row, 0 if none */
};

/* mx_cube_table_load - read and validate the CSV at path. On success *out is
 * a table the caller frees with mx_cube_table_free, and *stats (may be NULL)
 * holds the counts. Returns 0, MX_EIO (cannot open/read), MX_ETOOBIG (file
 * or row bound exceeded), MX_EDECODE (no valid row at all), MX_ENOMEM.
 * Blocks on file I/O: call it at start-up or from an offload worker. */
int mx_cube_table_load(const char *path, struct mx_cube_table **out,
                       struct mx_cube_load_stats *stats);

/* mx_cube_table_load_mem - the same from a buffer (tests, embedded tables). */
int mx_cube_table_load_mem(const char *csv, size_t len, struct mx_cube_table **out,
                           struct mx_cube_load_stats *stats);

/* mx_cube_table_add - read the CSV at path into an existing table t, next to
 * the rows it holds (e.g. the ADDITIONAL rows beside the BLACK ones): same
 * validation and bounds as mx_cube_table_load (MX_CUBE_MAX_ROWS per file);
 * stats count this file's rows, and groups/groups_bad_sum the whole table.
 * On MX_EDECODE/MX_ETOOBIG the rows read before the error stay in t: callers
 * treat a failure as fatal and free t. Blocks on file I/O; call it before
 * the table is shared. */
int mx_cube_table_add(struct mx_cube_table *t, const char *path, struct mx_cube_load_stats *stats);

/* mx_cube_table_add_mem - the same from a buffer. */
int mx_cube_table_add_mem(struct mx_cube_table *t, const char *csv, size_t len,
                          struct mx_cube_load_stats *stats);

/* mx_cube_table_free - free a table (NULL is ignored). */
void mx_cube_table_free(struct mx_cube_table *t);

/* mx_cube_table_has_type - whether the table holds any row of cube_type
 * (e.g. "BLACK", "ADDITIONAL"). */
bool mx_cube_table_has_type(const struct mx_cube_table *t, const char *cube_type);

enum mx_cube_engine {
    MX_CUBE_ENGINE_NONE = 0,
    MX_CUBE_ENGINE_STAT_SUM, /* (a) one stat kind: P(sum over slots >= item total) */
    MX_CUBE_ENGINE_ORDERINGS /* (b) sum over distinct orderings of per-slot rates */
};

struct mx_cube_query {
    const char *cube_type; /* "BLACK" */
    const char *item_slot; /* item_equipment_slot, e.g. "모자" */
    enum mx_grade grade;   /* RARE..LEGENDARY */
    int level;             /* item level */
    const char *lines[3];  /* the three lines; NULL or "" = blank */
};

struct mx_cube_result {
    bool ok;                /* probability > 0 and every line known */
    double probability;     /* p (0 when !ok) */
    double expected_trials; /* 1/p (0 when !ok: report null) */
    double cube_price;      /* meso per cube at grade and level (0 if no grade) */
    double expected_cost;   /* trials x price (0 when !ok) */
    int level_band;         /* table band used, -1 if none */
    enum mx_cube_engine engine;
    char stat[24];                   /* engine (a): the stat kind, e.g. "INT%" */
    int target;                      /* engine (a): the item's total of that stat */
    int unknown_line;                /* 1..3: that line's text is not in the table; 0 otherwise */
    char reason[MX_CUBE_REASON_MAX]; /* why !ok, "" when ok */
};

/* mx_cube_expect - probability of rolling q's three lines with one cube of
 * q->cube_type at q's grade and level band, plus trials and cost. Level band
 * = highest band of the table <= level for that (cube type, item slot,
 * grade); an item below every band uses the lowest band (noted in the result
 * as level_band). Returns 0 (a result with ok=false and a reason is still 0),
 * or MX_EINVAL for NULL arguments. Pure: thread-safe on a shared table. */
int mx_cube_expect(const struct mx_cube_table *t, const struct mx_cube_query *q,
                   struct mx_cube_result *out);

/* mx_cube_price - meso per black cube at grade and item level: legendary
 * 40M/42.5M/45M/50M at level 0/160/200/250, unique 34M, epic 16M, rare 4M
 * scaled by the same factors; 0 for NONE/UNKNOWN. */
double mx_cube_price(enum mx_grade grade, int level);

/* mx_cube_type_price - meso per use of cube_type: "BLACK" as mx_cube_price,
 * "ADDITIONAL" the additional-potential reset (legendary 78M/83M/88M/98M,
 * unique 66.3M/70.55M/74.8M/83.3M, epic 27.3M/29.05M/30.8M/34.3M, rare
 * 9.75M/10.375M/11M/12.25M at level 0/160/200/250); 0 for other types and
 * grades. Pure. */
double mx_cube_type_price(const char *cube_type, enum mx_grade grade, int level);

/* mx_cube_normalize - write the normalised form of an option text (spaces,
 * tabs and ':' removed) into buf (cap bytes). Returns 0 or MX_ETOOBIG. */
int mx_cube_normalize(const char *s, char *buf, size_t cap);

#endif
