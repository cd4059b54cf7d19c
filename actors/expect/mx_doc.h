/* mx_doc.h - the expectation document (DESIGN.md section 8): a calculator
 * context (cube table + memo tables) and the builder that writes the JSON.
 *
 * A calculator context belongs to one thread (the calculator actor or its
 * offload worker); the cube table it points to is read-only and may be
 * shared by several contexts. Building never blocks and does no I/O.
 */
#ifndef MX_DOC_H
#define MX_DOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mx_cube.h"
#include "mx_equip.h"
#include "mx_jsonw.h"
#include "mx_memo.h"

#define MX_DOC_MAX_BYTES (4u << 20) /* a sensible mx_jsonw max for one document */

struct mx_doc_opts {
    bool star_catch;           /* starforce options of costWithoutDestroyPrevention; */
    bool discount;             /* costWithDestroyPrevention is the same plus the */
    bool sunday;               /* 15-17 destruction shield */
    int preset;                /* 0: presets 1..3; 1..3: only that preset */
    const char *user_ign;      /* userIgn; NULL writes "" */
    const char *calculated_at; /* calculatedAt, supplied by the caller; NULL writes null */
    bool from_cache;           /* fromCache */
};

struct mx_calc_stats {
    struct mx_memo_stats cube, starforce; /* result memos */
    struct mx_memo_stats flame;           /* flame distributions, one per item structure */
    size_t flame_bytes;                   /* they hold (see mx_calc_set_flame_budget) */
    /* with mx_calc_set_timing on: nanoseconds spent (CLOCK_MONOTONIC) */
    uint64_t documents;                       /* mx_doc_build calls timed */
    uint64_t ns_total;                        /* whole mx_doc_build calls */
    uint64_t ns_cube, ns_starforce, ns_flame; /* inside them, per calculator */
};

struct mx_calc;

/* mx_doc_opts_default - the service defaults: star catch, discount and
 * Sunday on, all presets, empty IGN, calculatedAt null, fromCache false. */
void mx_doc_opts_default(struct mx_doc_opts *o);

/* mx_calc_new - a calculator context over table (borrowed: it must outlive
 * the context; NULL means no cube table: cube expectations are null with a
 * reason). memo_entries bounds each result memo (cube and starforce); 0
 * disables them. The flame distributions (they depend on an item's level
 * tier, class weights, boss flag and weapon attack, never on a character's
 * rolls) are always kept, at most 128 structures. Returns 0, MX_EINVAL or
 * MX_ENOMEM. */
int mx_calc_new(const struct mx_cube_table *table, size_t memo_entries, struct mx_calc **out);

/* mx_calc_free - free a context (NULL is ignored). */
void mx_calc_free(struct mx_calc *c);

/* mx_calc_clear_memo - forget memoised results (counters stay); the flame
 * distributions, which hold nothing about a character, are kept. */
void mx_calc_clear_memo(struct mx_calc *c);

/* mx_calc_set_flame_budget - bound the bytes the flame distributions may
 * hold (default 16 MiB; least recently used structures are dropped past it,
 * the one just built always stays). Fixtures' structures take ~20-120 KB,
 * but hostile weapon attacks can reach ~2 MB. */
void mx_calc_set_flame_budget(struct mx_calc *c, size_t bytes);

/* mx_calc_set_timing - measure time per calculator (mx_calc_stats.ns_*);
 * costs two clock reads per calculator call. Off by default. */
void mx_calc_set_timing(struct mx_calc *c, bool on);

/* mx_calc_get_stats - memo counters of the context. */
void mx_calc_get_stats(const struct mx_calc *c, struct mx_calc_stats *out);

/* mx_doc_build - write the expectation document of eq under opts into w (an
 * initialised writer; the document is appended as one JSON value). Returns
 * 0, MX_EINVAL (NULL arguments, preset outside 0..3), MX_ENOTFOUND (the
 * requested preset is absent from eq), or the writer's error (MX_ETOOBIG,
 * MX_ENOMEM). Deterministic: the same eq and opts give the same bytes. */
int mx_doc_build(struct mx_calc *c, const struct mx_equip *eq, const struct mx_doc_opts *o,
                 struct mx_jsonw *w);

/* mx_doc_cost_text - "X조 Y억 Z만" for a meso amount: rounded half-up to
 * 만 (10^4), zero parts omitted, "0" below 5,000 meso. Returns 0 or
 * MX_ETOOBIG if cap is too small (64 bytes always suffice). */
int mx_doc_cost_text(int64_t meso, char *buf, size_t cap);

#endif
