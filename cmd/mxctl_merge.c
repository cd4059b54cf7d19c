/* mxctl_merge.c - the members' stats answers merged per path (see
 * mxctl_merge.h). The answer's msgpack tree is walked here; the JSON stats
 * sections inside it (ext type 1) go through mxm_json_leaves (simdjson).
 * Paths are kept in arrival order in a bounded table with a small open
 * hash over it; values are kept per member so both the sum and each
 * member's own value can be shown.
 */
#include "mxctl_merge.h"

#include <inttypes.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "mx_admin.h"
#include "mx_alloc.h"
#include "mx_jsonw.h"

#define HASH_SLOTS (2 * MXM_MAX_PATHS) /* power of two, load <= 1/2 */

struct value {
    bool set;
    double d;
    int64_t i;
};

struct path {
    char name[MXM_PATH_MAX];
    bool gauge;
    bool flt;           /* some member sent a non-integer: sum as a double */
    struct value *vals; /* one per member */
};

struct mxm {
    int members;
    int answered;
    char **missing; /* per member: why it did not answer, or NULL */
    struct path *paths;
    uint32_t npaths;
    int32_t slot[HASH_SLOTS]; /* index into paths + 1; 0 = empty */
    uint64_t paths_dropped;   /* over MXM_MAX_PATHS or MXM_PATH_MAX */
    int cur;                  /* member being added */
};

struct mxm *mxm_new(int members)
{
    struct mxm *m = xcalloc(1, sizeof *m);
    m->members = members;
    m->missing = xcalloc((size_t)members, sizeof *m->missing);
    m->paths = xcalloc(MXM_MAX_PATHS, sizeof *m->paths);
    return m;
}

void mxm_free(struct mxm *m)
{
    if (!m)
        return;
    for (int i = 0; i < m->members; i++)
        free(m->missing[i]);
    for (uint32_t i = 0; i < m->npaths; i++)
        free(m->paths[i].vals);
    free(m->missing);
    free(m->paths);
    free(m);
}

/* Levels, not totals: summing them over members means nothing (docs/cluster.md). */
static const char *const gauge_names[] = {
    "uptime_ms",   "schedulers",      "live_actors",   "peers",     "peers_up",
    "tls",         "conns_open",      "entries",       "bytes",     "breaker_state",
    "inflight",    "active",          "queued",        "depth",     "hwm",
    "held",        "state",           "epoch",         "backlog",   "dlq_size",
    "via_pending", "pending_targets", "journals_open", "holding",   "sync_holder",
    "draining",    "age_ms",          "oldest_age_ms", "lag_count", "up",
};
static const char *const gauge_suffixes[] = {"_max",    "_ms_p50", "_p50_ms", "_p99_ms", "_max_ms",
                                             "_age_ms", "_at_ms",  "_lag_ms", "_open",   "_size"};

bool mxm_is_gauge(const char *path)
{
    const char *leaf = strrchr(path, '.');
    leaf = leaf ? leaf + 1 : path;
    for (size_t i = 0; i < sizeof gauge_names / sizeof *gauge_names; i++)
        if (!strcmp(leaf, gauge_names[i]))
            return true;
    size_t n = strlen(leaf);
    for (size_t i = 0; i < sizeof gauge_suffixes / sizeof *gauge_suffixes; i++) {
        size_t k = strlen(gauge_suffixes[i]);
        if (n > k && !strcmp(leaf + n - k, gauge_suffixes[i]))
            return true;
    }
    return false;
}

static uint32_t hash(const char *s)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

static struct path *find(struct mxm *m, const char *name)
{
    if (strlen(name) >= MXM_PATH_MAX) {
        m->paths_dropped++;
        return NULL;
    }
    for (uint32_t h = hash(name) & (HASH_SLOTS - 1);; h = (h + 1) & (HASH_SLOTS - 1)) {
        if (m->slot[h]) {
            struct path *p = &m->paths[m->slot[h] - 1];
            if (!strcmp(p->name, name))
                return p;
            continue;
        }
        if (m->npaths == MXM_MAX_PATHS) {
            m->paths_dropped++;
            return NULL;
        }
        struct path *p = &m->paths[m->npaths++];
        m->slot[h] = (int32_t)m->npaths;
        snprintf(p->name, sizeof p->name, "%s", name);
        p->gauge = mxm_is_gauge(name);
        p->vals = xcalloc((size_t)m->members, sizeof *p->vals);
        return p;
    }
}

static void leaf(void *ctx, const char *path, enum mxm_kind kind, double d, int64_t i)
{
    struct mxm *m = ctx;
    if (!strcmp(path, "ok"))
        return; /* the answer's envelope, not a statistic */
    struct path *p = find(m, path);
    if (!p)
        return;
    if (kind == MXM_BOOL)
        p->gauge = true; /* a flag is a state, never a total */
    if (kind == MXM_FLOAT)
        p->flt = true;
    p->vals[m->cur] = (struct value){.set = true, .d = d, .i = i};
}

static void walk(struct mxm *m, const msgpack_object *o, char *path, size_t len)
{
    switch (o->type) {
    case MSGPACK_OBJECT_POSITIVE_INTEGER: {
        uint64_t u = o->via.u64;
        leaf(m, path, MXM_INT, (double)u, u > INT64_MAX ? INT64_MAX : (int64_t)u);
        break;
    }
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        leaf(m, path, MXM_INT, (double)o->via.i64, o->via.i64);
        break;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        leaf(m, path, MXM_FLOAT, o->via.f64, 0);
        break;
    case MSGPACK_OBJECT_BOOLEAN:
        leaf(m, path, MXM_BOOL, o->via.boolean, o->via.boolean);
        break;
    case MSGPACK_OBJECT_EXT:
        if (o->via.ext.type == MX_ADMIN_EXT_JSON && o->via.ext.size > 0)
            mxm_json_leaves(o->via.ext.ptr, o->via.ext.size, path, leaf, m);
        break;
    case MSGPACK_OBJECT_MAP:
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            const msgpack_object_kv *kv = &o->via.map.ptr[i];
            if (kv->key.type != MSGPACK_OBJECT_STR)
                continue;
            int k = snprintf(path + len, MXM_PATH_MAX - len, "%s%.*s", len ? "." : "",
                             (int)kv->key.via.str.size, kv->key.via.str.ptr);
            if (k < 0 || len + (size_t)k >= MXM_PATH_MAX) {
                m->paths_dropped++;
                continue;
            }
            walk(m, &kv->val, path, len + (size_t)k);
        }
        path[len] = '\0';
        break;
    default: /* strings (names, states) and arrays stay in each member's answer */
        break;
    }
}

void mxm_answer(struct mxm *m, int i, const struct msgpack_object *answer)
{
    if (i < 0 || i >= m->members)
        return;
    char path[MXM_PATH_MAX] = "";
    m->cur = i;
    m->answered++;
    walk(m, answer, path, 0);
}

void mxm_missing(struct mxm *m, int i, const char *why)
{
    if (i < 0 || i >= m->members || m->missing[i])
        return;
    m->missing[i] = xstrdup(why && *why ? why : "no answer");
}

static void json_value(struct mx_jsonw *w, const struct path *p, const struct value *v)
{
    if (p->flt)
        mx_jsonw_double(w, v->d);
    else
        mx_jsonw_int(w, v->i);
}

static struct value sum_of(const struct mxm *m, const struct path *p)
{
    struct value s = {.set = true};
    for (int i = 0; i < m->members; i++)
        if (p->vals[i].set) {
            s.d += p->vals[i].d;
            s.i += p->vals[i].i;
        }
    return s;
}

void mxm_json(const struct mxm *m, const char *const *names, const char *const *admins,
              struct mx_jsonw *w)
{
    mx_jsonw_obj_open(w);
    mx_jsonw_kint(w, "members", m->members);
    mx_jsonw_kint(w, "answered", m->answered);
    mx_jsonw_key(w, "missing");
    mx_jsonw_arr_open(w);
    for (int i = 0; i < m->members; i++)
        if (m->missing[i]) {
            mx_jsonw_obj_open(w);
            mx_jsonw_kstr(w, "member", names[i]);
            mx_jsonw_kstr(w, "admin", admins[i]);
            mx_jsonw_kstr(w, "error", m->missing[i]);
            mx_jsonw_obj_close(w);
        }
    mx_jsonw_arr_close(w);
    mx_jsonw_key(w, "counters");
    mx_jsonw_obj_open(w);
    for (uint32_t k = 0; k < m->npaths; k++)
        if (!m->paths[k].gauge) {
            struct value s = sum_of(m, &m->paths[k]);
            mx_jsonw_key(w, m->paths[k].name);
            json_value(w, &m->paths[k], &s);
        }
    mx_jsonw_obj_close(w);
    mx_jsonw_key(w, "gauges");
    mx_jsonw_obj_open(w);
    for (uint32_t k = 0; k < m->npaths; k++) {
        const struct path *p = &m->paths[k];
        if (!p->gauge)
            continue;
        mx_jsonw_key(w, p->name);
        mx_jsonw_obj_open(w);
        for (int i = 0; i < m->members; i++)
            if (p->vals[i].set) {
                mx_jsonw_key(w, names[i]);
                json_value(w, p, &p->vals[i]);
            }
        mx_jsonw_obj_close(w);
    }
    mx_jsonw_obj_close(w);
    mx_jsonw_kuint(w, "paths_dropped", m->paths_dropped);
    mx_jsonw_obj_close(w);
}

static void print_value(FILE *f, const struct path *p, const struct value *v)
{
    if (p->flt)
        fprintf(f, "%g", v->d);
    else
        fprintf(f, "%" PRId64, v->i);
}

void mxm_print(const struct mxm *m, const char *const *names, const char *const *admins, FILE *f)
{
    fprintf(f, "== cluster: %d of %d members answered\n", m->answered, m->members);
    for (int i = 0; i < m->members; i++)
        if (m->missing[i])
            fprintf(f, "missing  %s (%s): %s\n", names[i], admins[i], m->missing[i]);
    for (uint32_t k = 0; k < m->npaths; k++) {
        const struct path *p = &m->paths[k];
        if (p->gauge)
            continue;
        struct value s = sum_of(m, p);
        if (!s.i && !s.d)
            continue; /* a table of zeros helps nobody; --json lists them all */
        fprintf(f, "%-48s ", p->name);
        print_value(f, p, &s);
        fputc('\n', f);
    }
    for (uint32_t k = 0; k < m->npaths; k++) {
        const struct path *p = &m->paths[k];
        if (!p->gauge)
            continue;
        fprintf(f, "%-48s", p->name);
        for (int i = 0; i < m->members; i++)
            if (p->vals[i].set) {
                fprintf(f, " %s=", names[i]);
                print_value(f, p, &p->vals[i]);
            }
        fputc('\n', f);
    }
    if (m->paths_dropped)
        fprintf(f, "(%" PRIu64 " paths not merged: over %d paths or %d bytes)\n", m->paths_dropped,
                MXM_MAX_PATHS, MXM_PATH_MAX);
}
