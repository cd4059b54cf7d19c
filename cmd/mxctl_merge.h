/* mxctl_merge.h - `mxctl --cluster URL stats`: the members' stats answers
 * merged into one view (docs/cluster.md, "Merged stats").
 *
 * Every numeric leaf of an answer (runtime fields, dead letters, transport,
 * admin, and the JSON stats sections) is named by its dotted path
 * ("sections.fetcher.requests"). Counters are summed per path over the
 * members that answered; gauges (levels such as uptime_ms, inflight,
 * entries, states, flags) are kept per member, so each stays identifiable;
 * members that did not answer are listed with the reason. Single-threaded
 * (mxctl's main thread).
 */
#ifndef MXCTL_MERGE_H
#define MXCTL_MERGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MXM_MAX_PATHS 4096       /* distinct paths kept; more are counted in paths_dropped */
#define MXM_PATH_MAX 192         /* bytes of a path; longer ones are dropped (counted) */
#define MXM_JSON_MAX (16u << 20) /* a section's JSON larger than this is not read */

enum mxm_kind { MXM_INT, MXM_FLOAT, MXM_BOOL };

/* A leaf: its path, kind, value as a double and, for MXM_INT/MXM_BOOL, as
 * an integer. */
typedef void (*mxm_leaf_fn)(void *ctx, const char *path, enum mxm_kind kind, double d, int64_t i);

/* mxm_json_leaves - call fn for every number and boolean of the JSON
 * document json (len bytes), paths prefixed by prefix ("" or NULL: none).
 * Arrays and strings are skipped. Returns 0, MX_EDECODE (not JSON, or over
 * MXM_JSON_MAX) or MX_EINTERNAL. Any thread. */
int mxm_json_leaves(const char *json, size_t len, const char *prefix, mxm_leaf_fn fn, void *ctx);

struct mxm;
struct msgpack_object;

/* mxm_new - a merge of up to members answers (members >= 1). Aborts when
 * out of memory. */
struct mxm *mxm_new(int members);
void mxm_free(struct mxm *m);

/* mxm_is_gauge - whether the leaf at path is a level kept per member
 * rather than a counter summed over members (decided by its last name). */
bool mxm_is_gauge(const char *path);

/* mxm_answer - add member i's stats answer (a msgpack map, borrowed). */
void mxm_answer(struct mxm *m, int i, const struct msgpack_object *answer);

/* mxm_missing - record that member i did not answer, and why (copied). */
void mxm_missing(struct mxm *m, int i, const char *why);

struct mx_jsonw;
/* mxm_json - write the merge as one JSON object {members, answered,
 * missing: [{member, admin, error}], counters: {path: sum}, gauges: {path:
 * {member: value}}, paths_dropped}. names and admins: member i's name and
 * admin address. */
void mxm_json(const struct mxm *m, const char *const *names, const char *const *admins,
              struct mx_jsonw *w);

/* mxm_print - the same as a table for people. */
void mxm_print(const struct mxm *m, const char *const *names, const char *const *admins, FILE *f);

#ifdef __cplusplus
}
#endif

#endif
