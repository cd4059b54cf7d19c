/* mx_metrics.h - one source for every counter (docs/architecture.md).
 *
 * An actor declares its counters once, as an X-macro list in its header:
 *
 *   #define MX_CACHE_METRICS(X)                                \
 *       X(COUNTER, l1_hits, "requests answered from L1")       \
 *       X(GAUGE, l1_entries, "documents held in L1")
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
 * disagree. The Prometheus name is mx_<actor>_<field>, with _total added
 * to counters; labels node, actor and instance.
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

enum mx_metric_kind { MX_METRIC_COUNTER, MX_METRIC_GAUGE };

struct mx_metric_desc {
    const char *name; /* the field: [a-z0-9_]+ */
    const char *help;
    enum mx_metric_kind kind;
    size_t off; /* of its _Atomic uint64_t in the block */
};

#define MX__METRIC_FIELD(kind, name, help) _Atomic uint64_t name;
#define MX_METRICS_STRUCT(tag, LIST)                                                               \
    struct tag {                                                                                   \
        LIST(MX__METRIC_FIELD)                                                                     \
    }
#define MX_METRIC_DESC(kind, field, help)                                                          \
    {#field, help, MX_METRIC_##kind, offsetof(MX_METRICS_TYPE, field)},

#define MX_METRIC_GET(b, f) atomic_load_explicit(&(b)->f, memory_order_relaxed)
#define MX_METRIC_SET(b, f, v) atomic_store_explicit(&(b)->f, (uint64_t)(v), memory_order_relaxed)
#define MX_METRIC_ADD(b, f, v) MX_METRIC_SET(b, f, MX_METRIC_GET(b, f) + (uint64_t)(v))
#define MX_METRIC_INC(b, f) MX_METRIC_ADD(b, f, 1)
#define MX_METRIC_INC_SHARED(b, f) atomic_fetch_add_explicit(&(b)->f, 1, memory_order_relaxed)
#define MX_METRIC_ADD_SHARED(b, f, v)                                                              \
    atomic_fetch_add_explicit(&(b)->f, (uint64_t)(v), memory_order_relaxed)

#define MX_METRICS_MAX_SETS 1024 /* registered blocks per process */

struct mx_metrics_set {
    const char *actor; /* kind: "cache", "fetcher", ... ([a-z_]+) */
    char instance[48]; /* "shard-3", "main", ... */
    const struct mx_metric_desc *desc;
    size_t n;
    const void *block; /* the instance's struct, alive while registered */
};

/* mx_metrics_register - add a block (copied set; desc and block must stay
 * alive until unregistered). Returns an id > 0, or 0 when the registry is
 * full (counted in mx_metrics_refused). Any thread. */
int mx_metrics_register(const char *actor, const char *instance, const struct mx_metric_desc *desc,
                        size_t n, const void *block);

/* mx_metrics_unregister - remove it (before the block is freed). */
void mx_metrics_unregister(int id);

/* mx_metrics_foreach - call fn for every registered set, in registration
 * order, under the registry lock (fn must not register). Any thread. */
void mx_metrics_foreach(void (*fn)(const struct mx_metrics_set *s, void *arg), void *arg);

/* mx_metrics_value - the value of desc entry i of s. */
uint64_t mx_metrics_value(const struct mx_metrics_set *s, size_t i);

/* mx_metrics_refused - registrations refused because the registry was full. */
uint64_t mx_metrics_refused(void);

#endif
