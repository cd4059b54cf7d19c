/* mx_metrics.c - the process's registry of counter blocks (mx_metrics.h).
 * A fixed array under one mutex: registration is rare (actor start/stop),
 * reading is a scrape; the counters themselves never take the lock. */
#include "mx_metrics.h"

#include <pthread.h>
#include <string.h>

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static struct mx_metrics_set g_sets[MX_METRICS_MAX_SETS];
static int g_ids[MX_METRICS_MAX_SETS]; /* 0: free slot */
static int g_next_id = 1;
static _Atomic uint64_t g_refused;

int mx_metrics_register(const char *actor, const char *instance, const struct mx_metric_desc *desc,
                        size_t n, const void *block)
{
    pthread_mutex_lock(&g_mu);
    for (int i = 0; i < MX_METRICS_MAX_SETS; i++) {
        if (g_ids[i])
            continue;
        struct mx_metrics_set *s = &g_sets[i];
        s->actor = actor;
        strncpy(s->instance, instance ? instance : "", sizeof(s->instance) - 1);
        s->instance[sizeof(s->instance) - 1] = '\0';
        s->desc = desc;
        s->n = n;
        s->block = block;
        int id = g_next_id++;
        g_ids[i] = id;
        pthread_mutex_unlock(&g_mu);
        return id;
    }
    pthread_mutex_unlock(&g_mu);
    atomic_fetch_add_explicit(&g_refused, 1, memory_order_relaxed);
    return 0;
}

void mx_metrics_unregister(int id)
{
    if (id <= 0)
        return;
    pthread_mutex_lock(&g_mu);
    for (int i = 0; i < MX_METRICS_MAX_SETS; i++)
        if (g_ids[i] == id) {
            g_ids[i] = 0;
            break;
        }
    pthread_mutex_unlock(&g_mu);
}

void mx_metrics_foreach(void (*fn)(const struct mx_metrics_set *s, void *arg), void *arg)
{
    pthread_mutex_lock(&g_mu);
    /* registration order = id order; slots are reused, so sort by id */
    int last = 0;
    for (;;) {
        int best = -1;
        for (int i = 0; i < MX_METRICS_MAX_SETS; i++)
            if (g_ids[i] > last && (best < 0 || g_ids[i] < g_ids[best]))
                best = i;
        if (best < 0)
            break;
        last = g_ids[best];
        fn(&g_sets[best], arg);
    }
    pthread_mutex_unlock(&g_mu);
}

uint64_t mx_metrics_value(const struct mx_metrics_set *s, size_t i)
{
    const _Atomic uint64_t *p = (const _Atomic uint64_t *)((const char *)s->block + s->desc[i].off);
    return atomic_load_explicit(p, memory_order_relaxed);
}

uint64_t mx_metrics_refused(void)
{
    return atomic_load_explicit(&g_refused, memory_order_relaxed);
}
