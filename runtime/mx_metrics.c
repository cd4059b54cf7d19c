/* mx_metrics.c - the process's registry of counter blocks (mx_metrics.h)
 * and the two renderers generated from it: Prometheus text and the JSON of
 * mxctl stats. A fixed array under one mutex: registration is rare (actor
 * start/stop), reading is a scrape; the counters themselves never take the
 * lock. Renderers hold the lock while they read, so a block cannot be
 * unregistered (and freed) under them. */
#include "mx_metrics.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mx_alloc.h"
#include "mx_err.h"
#include "mx_jsonw.h"
#include "mx_log.h"

/* The registry's own counters, in slot 0 from the start (id 1), so both
 * outputs show what a full registry refused. */
#define MX_REGISTRY_METRICS(X)                                                                     \
    X(COUNTER, refused, "counter sets not shown: the registry was full (MX_METRICS_MAX_SETS)")
MX_METRICS_STRUCT(registry_metrics, MX_REGISTRY_METRICS);
#define MX_METRICS_TYPE struct registry_metrics
static const struct mx_metric_desc g_self_desc[] = {MX_REGISTRY_METRICS(MX_METRIC_DESC)};
#undef MX_METRICS_TYPE
static struct registry_metrics g_self; /* shared writes (any registering thread) */

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static struct mx_metrics_set g_sets[MX_METRICS_MAX_SETS] = {
    {"metrics", "registry", g_self_desc, 1, &g_self}};
/* g_sets[0..g_n) in registration order (unregistering closes the gap), so
 * a scrape is one pass; g_ids[i] is g_sets[i]'s id */
static int g_ids[MX_METRICS_MAX_SETS] = {1};
static int g_n = 1;
static int g_next_id = 2;

int mx_metrics_register(const char *actor, const char *instance, const struct mx_metric_desc *desc,
                        size_t n, const void *block)
{
    pthread_mutex_lock(&g_mu);
    if (g_n < MX_METRICS_MAX_SETS) {
        struct mx_metrics_set *s = &g_sets[g_n];
        s->actor = actor;
        strncpy(s->instance, instance ? instance : "", sizeof(s->instance) - 1);
        s->instance[sizeof(s->instance) - 1] = '\0';
        s->desc = desc;
        s->n = n;
        s->block = block;
        int id = g_next_id++;
        g_ids[g_n++] = id;
        pthread_mutex_unlock(&g_mu);
        return id;
    }
    pthread_mutex_unlock(&g_mu);
    MX_METRIC_INC_SHARED(&g_self, refused);
    MX_WARN("metrics: the registry is full (MX_METRICS_MAX_SETS %d): %s/%s is not shown",
            MX_METRICS_MAX_SETS, actor, instance ? instance : "");
    return 0;
}

void mx_metrics_register_once(_Atomic int *id, const char *actor, const char *instance,
                              const struct mx_metric_desc *desc, size_t n, const void *block)
{
    int none = 0; /* relaxed: only the winner registers; the id is for show */
    if (!atomic_compare_exchange_strong_explicit(id, &none, -1, memory_order_relaxed,
                                                 memory_order_relaxed))
        return;
    int got = mx_metrics_register(actor, instance, desc, n, block);
    atomic_store_explicit(id, got > 0 ? got : -1, memory_order_relaxed);
}

void mx_metrics_unregister(int id)
{
    if (id <= 0)
        return;
    pthread_mutex_lock(&g_mu);
    for (int i = 0; i < g_n; i++)
        if (g_ids[i] == id) {
            memmove(&g_sets[i], &g_sets[i + 1], (size_t)(g_n - i - 1) * sizeof g_sets[0]);
            memmove(&g_ids[i], &g_ids[i + 1], (size_t)(g_n - i - 1) * sizeof g_ids[0]);
            g_n--;
            break;
        }
    pthread_mutex_unlock(&g_mu);
}

void mx_metrics_foreach(void (*fn)(const struct mx_metrics_set *s, void *arg), void *arg)
{
    pthread_mutex_lock(&g_mu);
    for (int i = 0; i < g_n; i++) /* registration order */
        fn(&g_sets[i], arg);
    pthread_mutex_unlock(&g_mu);
}

uint64_t mx_metrics_value(const struct mx_metrics_set *s, size_t i)
{
    const _Atomic uint64_t *p = (const _Atomic uint64_t *)((const char *)s->block + s->desc[i].off);
    return atomic_load_explicit(p, memory_order_relaxed);
}

uint64_t mx_metrics_refused(void)
{
    return MX_METRIC_GET(&g_self, refused);
}

/* ---- renderers ---- */

/* The live slots in registration order (the array is kept in it); under
 * g_mu. */
static int ordered_slots(int *slot)
{
    for (int i = 0; i < g_n; i++)
        slot[i] = i;
    return g_n;
}

/* Is s the first of the ordered sets with its actor kind? */
static bool first_of_actor(const int *slot, int k)
{
    for (int j = 0; j < k; j++)
        if (strcmp(g_sets[slot[j]].actor, g_sets[slot[k]].actor) == 0)
            return false;
    return true;
}

static const char *family_of(const struct mx_metric_desc *d)
{
    return d->family ? d->family : d->name;
}

/* Is set k the first of its actor kind with its descriptor table? (Sets of
 * one kind usually share one table; one with a table of its own may add
 * families.) */
static bool first_table(const int *slot, int k)
{
    const struct mx_metrics_set *s = &g_sets[slot[k]];
    for (int j = 0; j < k; j++)
        if (g_sets[slot[j]].desc == s->desc && strcmp(g_sets[slot[j]].actor, s->actor) == 0)
            return false;
    return true;
}

/* Did an earlier set of the same actor kind (another table) have d's family? */
static bool family_seen(const int *slot, int k, const struct mx_metric_desc *d)
{
    const char *actor = g_sets[slot[k]].actor;
    for (int j = 0; j < k; j++) {
        const struct mx_metrics_set *e = &g_sets[slot[j]];
        if (strcmp(e->actor, actor) != 0 || !first_table(slot, j))
            continue;
        for (size_t i = 0; i < e->n; i++)
            if (strcmp(family_of(&e->desc[i]), family_of(d)) == 0)
                return true;
    }
    return false;
}

/* Is entry i of desc the first with its family? */
static bool first_of_family(const struct mx_metric_desc *desc, size_t i)
{
    for (size_t j = 0; j < i; j++)
        if (strcmp(family_of(&desc[j]), family_of(&desc[i])) == 0)
            return false;
    return true;
}

struct text {
    char *buf;
    size_t len, cap, max;
    bool full;
};

static void put(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct text *t, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if (t->len + (size_t)n < t->cap) {
            t->len += (size_t)n;
            return;
        }
        if (t->len + (size_t)n >= t->max) {
            t->full = true;
            return;
        }
        t->cap = t->cap * 2 > t->max ? t->max : t->cap * 2;
        t->buf = xrealloc(t->buf, t->cap);
    }
}

/* A label value in the text format: backslash, quote and newline escaped. */
static void put_label(struct text *t, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            put(t, "\\%c", *v);
        else if (*v == '\n')
            put(t, "\\n");
        else
            put(t, "%c", *v);
    }
}

static void put_name(struct text *t, const char *actor, const struct mx_metric_desc *d)
{
    const char *fam = family_of(d);
    put(t, "mx_%s%s%s%s", actor, *fam ? "_" : "", fam,
        d->kind == MX_METRIC_COUNTER ? "_total" : "");
}

/* The HELP text: the entry's help, or for a family whose entries carry
 * labels and helps of their own, "value: help" of each (desc is the first
 * set's table). */
static void put_help(struct text *t, const struct mx_metric_desc *desc, size_t n,
                     const struct mx_metric_desc *head)
{
    bool same = true; /* one help for every label value: say it once */
    for (size_t i = 0; i < n && head->label; i++)
        if (strcmp(family_of(&desc[i]), family_of(head)) == 0 &&
            strcmp(desc[i].help, head->help) != 0)
            same = false;
    if (!head->label || same) {
        put(t, " %s", head->help);
        return;
    }
    const char *sep = " ";
    for (size_t i = 0; i < n; i++) {
        const struct mx_metric_desc *d = &desc[i];
        if (!d->label || strcmp(family_of(d), family_of(head)) != 0)
            continue;
        const char *v = strchr(d->label, '"'), *e = v ? strchr(v + 1, '"') : NULL;
        if (v && e)
            put(t, "%s%.*s: %s", sep, (int)(e - v - 1), v + 1, d->help);
        sep = "; ";
    }
}

/* One family: its header and every sample of every set of the actor. */
static void put_family(struct text *t, const int *slot, int nslot, const char *actor,
                       const struct mx_metric_desc *desc, size_t n,
                       const struct mx_metric_desc *head, const char *node)
{
    put(t, "# HELP ");
    put_name(t, actor, head);
    put_help(t, desc, n, head);
    put(t, "\n# TYPE ");
    put_name(t, actor, head);
    put(t, " %s\n", head->kind == MX_METRIC_COUNTER ? "counter" : "gauge");
    for (int k = 0; k < nslot; k++) {
        const struct mx_metrics_set *s = &g_sets[slot[k]];
        if (strcmp(s->actor, actor) != 0)
            continue;
        for (size_t i = 0; i < s->n; i++) {
            if (strcmp(family_of(&s->desc[i]), family_of(head)) != 0)
                continue;
            put_name(t, actor, &s->desc[i]);
            put(t, "{node=\"");
            put_label(t, node);
            put(t, "\",actor=\"%s\",instance=\"", actor);
            put_label(t, s->instance);
            put(t, "\"%s%s} ", s->desc[i].label ? "," : "",
                s->desc[i].label ? s->desc[i].label : "");
            uint64_t v = mx_metrics_value(s, i);
            if (s->desc[i].kind == MX_METRIC_SGAUGE)
                put(t, "%lld\n", (long long)(int64_t)v);
            else
                put(t, "%llu\n", (unsigned long long)v);
        }
    }
}

int mx_metrics_prom(const char *node_name, size_t max, char **out, size_t *len)
{
    struct text t = {.cap = max < 16384 ? max : 16384, .max = max};
    t.buf = xmalloc(t.cap ? t.cap : 1);
    t.buf[0] = '\0';
    int *slot = xmalloc(sizeof(int) * MX_METRICS_MAX_SETS);
    pthread_mutex_lock(&g_mu);
    int n = ordered_slots(slot);
    int rc = 0;
    for (int k = 0; k < n; k++) {
        const struct mx_metrics_set *s = &g_sets[slot[k]];
        if (!first_table(slot, k))
            continue;
        for (size_t i = 0; i < s->n; i++) {
            if (!first_of_family(s->desc, i) || family_seen(slot, k, &s->desc[i]))
                continue;
            size_t mark = t.len;
            put_family(&t, slot, n, s->actor, s->desc, s->n, &s->desc[i],
                       node_name ? node_name : "");
            if (t.full) { /* leave the family out whole */
                t.len = mark;
                t.buf[mark] = '\0';
                t.full = false;
                rc = MX_ETOOBIG;
            }
        }
    }
    pthread_mutex_unlock(&g_mu);
    free(slot);
    *out = t.buf;
    *len = t.len;
    return rc;
}

static void put_json(struct mx_jsonw *w, const struct mx_metric_desc *d, uint64_t v)
{
    if (d->kind == MX_METRIC_SGAUGE)
        mx_jsonw_kint(w, d->name, (int64_t)v);
    else
        mx_jsonw_kuint(w, d->name, v);
}

void mx_metrics_json(struct mx_jsonw *w)
{
    int *slot = xmalloc(sizeof(int) * MX_METRICS_MAX_SETS);
    pthread_mutex_lock(&g_mu);
    int n = ordered_slots(slot);
    mx_jsonw_obj_open(w);
    for (int k = 0; k < n; k++) {
        const char *actor = g_sets[slot[k]].actor;
        if (!first_of_actor(slot, k))
            continue;
        mx_jsonw_key(w, actor);
        mx_jsonw_obj_open(w);
        for (int j = k; j < n; j++) {
            const struct mx_metrics_set *s = &g_sets[slot[j]];
            if (strcmp(s->actor, actor) != 0)
                continue;
            mx_jsonw_key(w, s->instance);
            mx_jsonw_obj_open(w);
            for (size_t i = 0; i < s->n; i++)
                put_json(w, &s->desc[i], mx_metrics_value(s, i));
            mx_jsonw_obj_close(w);
        }
        mx_jsonw_obj_close(w);
    }
    mx_jsonw_obj_close(w);
    pthread_mutex_unlock(&g_mu);
    free(slot);
}

void mx_metrics_json_totals(struct mx_jsonw *w, const char *actor)
{
    int *slot = xmalloc(sizeof(int) * MX_METRICS_MAX_SETS);
    pthread_mutex_lock(&g_mu);
    int n = ordered_slots(slot), first = -1;
    for (int k = 0; k < n && first < 0; k++)
        if (strcmp(g_sets[slot[k]].actor, actor) == 0)
            first = k;
    if (first >= 0) {
        const struct mx_metrics_set *h = &g_sets[slot[first]];
        for (size_t i = 0; i < h->n; i++) {
            uint64_t sum = 0;
            for (int k = first; k < n; k++) {
                const struct mx_metrics_set *s = &g_sets[slot[k]];
                if (strcmp(s->actor, actor) == 0 && i < s->n && s->desc == h->desc)
                    sum += mx_metrics_value(s, i);
            }
            put_json(w, &h->desc[i], sum);
        }
    }
    pthread_mutex_unlock(&g_mu);
    free(slot);
}
