/* mx_metrics.h - one source for every counter (docs/architecture.md).
 *
 * An actor declares its counters once, as an X-macro list in its header:
 *
 *   #define MX_CACHE_METRICS(X)                                \
 *       X(COUNTER, l1_hits, "requests answered from L1")       \
 *       X(GAUGE, l1_entries, "documents held in L1")
 *
 * An entry may name a Prometheus family and a label of its own, so that
 * several fields share one family (mx_http_responses_total{class="2xx"}):
 *
 *       X(COUNTER, responses_2xx, "2xx answers", "responses", "class=\"2xx\"")
 *
 * The family "" means mx_<actor> itself (mx_fetch_total{event="ok"}).
 *
 * and gets its block type and descriptor table from that list:
 *
 *   MX_METRICS_STRUCT(cache_metrics, MX_CACHE_METRICS);
 *   #define MX_METRICS_TYPE struct cache_metrics
 *   static const struct mx_metric_desc cache_desc[] = {MX_CACHE_METRICS(MX_METRIC_DESC)};
 *   #undef MX_METRICS_TYPE
 *
 * Each actor instance owns one block and registers it with its actor kind
 * and instance name (mx_metrics_register); Prometheus text and the stats
 * answer of mxctl are both generated from the registry, so they cannot
 * disagree. The Prometheus name is mx_<actor>_<field> (or
 * mx_<actor>_<family>), with _total added to counters; labels node, actor
 * and instance (and the entry's own label). docs/metrics.md lists them.
 *
 * A block has ONE writer, the thread of the actor instance that owns it:
 * MX_METRIC_INC/ADD/SET are relaxed load + store, no read-modify-write and
 * no cache line shared between instances. Any thread may read
 * (MX_METRIC_GET, relaxed). A block written by several threads must use
 * MX_METRIC_INC_SHARED (relaxed fetch_add) for every write instead.
 */
#ifndef MX_METRICS_H
#define MX_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* SGAUGE: a gauge that may be negative (-1 "unknown"), stored as the two's
 * complement of an int64_t: MX_METRIC_SET(b, f, -1) */
enum mx_metric_kind { MX_METRIC_COUNTER, MX_METRIC_GAUGE, MX_METRIC_SGAUGE };

struct mx_metric_desc {
    const char *name; /* the field: [a-z0-9_]+ */
    const char *help;
    enum mx_metric_kind kind;
    size_t off;         /* of its _Atomic uint64_t in the block */
    const char *family; /* NULL: the field's name; "": mx_<actor> itself */
    const char *label;  /* NULL, or one more label: name="value" */
};

#define MX__METRIC_FIELD(kind, name, ...) _Atomic uint64_t name;
#define MX_METRICS_STRUCT(tag, LIST)                                                               \
    struct tag {                                                                                   \
        LIST(MX__METRIC_FIELD)                                                                     \
    }
/* the optional family and label follow help (a trailing comma is valid) */
#define MX_METRIC_DESC(kind, field, ...)                                                           \
    {#field, MX__METRIC_HELP(__VA_ARGS__, ), MX_METRIC_##kind, offsetof(MX_METRICS_TYPE, field),   \
     MX__METRIC_REST(__VA_ARGS__, )},
#define MX__METRIC_HELP(help, ...) help
#define MX__METRIC_REST(help, ...) __VA_ARGS__

#define MX_METRIC_GET(b, f) atomic_load_explicit(&(b)->f, memory_order_relaxed)
#define MX_METRIC_SET(b, f, v) atomic_store_explicit(&(b)->f, (uint64_t)(v), memory_order_relaxed)
#define MX_METRIC_ADD(b, f, v) MX_METRIC_SET(b, f, MX_METRIC_GET(b, f) + (uint64_t)(v))
#define MX_METRIC_INC(b, f) MX_METRIC_ADD(b, f, 1)
#define MX_METRIC_INC_SHARED(b, f) atomic_fetch_add_explicit(&(b)->f, 1, memory_order_relaxed)
#define MX_METRIC_ADD_SHARED(b, f, v)                                                              \
    atomic_fetch_add_explicit(&(b)->f, (uint64_t)(v), memory_order_relaxed)

#define MX_METRICS_MAX_SETS 1024 /* registered blocks per process, the registry's own included */

struct mx_metrics_set {
    const char *actor; /* kind: "cache", "fetcher", ... ([a-z_]+) */
    char instance[48]; /* "shard-3", "main", ... */
    const struct mx_metric_desc *desc;
    size_t n;
    const void *block; /* the instance's struct, alive while registered */
};

/* mx_metrics_register - add a block (copied set; desc and block must stay
 * alive until unregistered). Returns an id > 0, or 0 when the registry is
 * full (counted in mx_metrics_refused, and logged). Any thread. */
int mx_metrics_register(const char *actor, const char *instance, const struct mx_metric_desc *desc,
                        size_t n, const void *block);

/* mx_metrics_register_once - for a process-wide block with static storage
 * (never freed, never unregistered): register it the first time any
 * thread calls this with that *id (0 before), later calls do nothing.
 * *id ends > 0, or -1 when the registry was full. Any thread. */
void mx_metrics_register_once(_Atomic int *id, const char *actor, const char *instance,
                              const struct mx_metric_desc *desc, size_t n, const void *block);

/* mx_metrics_unregister - remove it (before the block is freed). */
void mx_metrics_unregister(int id);

/* mx_metrics_foreach - call fn for every registered set, in registration
 * order, under the registry lock (fn must not register). Any thread. */
void mx_metrics_foreach(void (*fn)(const struct mx_metrics_set *s, void *arg), void *arg);

/* mx_metrics_value - the value of desc entry i of s. */
uint64_t mx_metrics_value(const struct mx_metrics_set *s, size_t i);

/* mx_metrics_prom - the Prometheus text (format 0.0.4) of every registered
 * set, one # HELP / # TYPE group per family even when several instances
 * share it, each sample labelled node (node_name), actor and instance.
 * Returns a malloc'd NUL-terminated text in *out and its length in *len
 * (the caller frees it); at most max bytes: a family that does not fit is
 * left out whole and MX_ETOOBIG returned with the text so far. Any thread;
 * takes the registry lock. */
int mx_metrics_prom(const char *node_name, size_t max, char **out, size_t *len);

struct mx_jsonw;
/* mx_metrics_json - write one JSON object {actor: {instance: {field:
 * value}}} of every registered set to w (the stats answer of mxctl).
 * Any thread; takes the registry lock. */
void mx_metrics_json(struct mx_jsonw *w);

/* mx_metrics_json_totals - write "field": sum over every instance of actor,
 * one member per field, into the object open in w (a stats section that
 * shows the node's total next to the per-instance values). Nothing when no
 * set of that actor is registered. Any thread; takes the registry lock. */
void mx_metrics_json_totals(struct mx_jsonw *w, const char *actor);

/* mx_metrics_refused - registrations refused because the registry was full
 * (also the registry's own set, actor "metrics", instance "registry":
 * mx_metrics_refused_total; each refusal is logged). */
uint64_t mx_metrics_refused(void);

#endif
